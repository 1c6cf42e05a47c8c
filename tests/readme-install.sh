#!/bin/sh
# ewsgw - Exchange calendar presence gateway
# SPDX-License-Identifier: ISC
#
# The README's install sequence, run as written (as root; tests/ci.sh
# runs it):  tests/readme-install.sh [SOURCE-TREE]
#
# The lines between "<!-- install:begin" and "<!-- install:end -->" in
# README.md run one by one under bash -e, in a clean copy of the source
# tree (tests/copy-tree.sh), with one substitution:
# every absolute path under /etc, /usr, /var and /run gets a staging
# root in front, so the configure line installs below the root and
# every later line finds what it installed there.  Around them:
#   PATH      starts with ROOT/usr/sbin:ROOT/usr/bin (the installed ewsgw)
#   EDITOR    points the configuration at an EWS simulator that knows
#             EXAMPLE\svc-ewsgw with password "the-service-password"
#             and someone@example.com
#   systemctl "enable --now ewsgw" starts the installed unit the way
#             systemd would (tests/install/unitrun.py) and waits until
#             the installed ewsgwctl says healthy
#   MAKEFLAGS -j2 unless set
# Then tests/demo.sh runs for a while on the in-tree build the README
# made, and must show presence changing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=${1:-$(cd "$here/.." && pwd)}
[ "$(id -u)" -eq 0 ] || { echo "readme-install.sh: run as root (the README's sequence is)"; exit 1; }
command -v bash >/dev/null || { echo "readme-install.sh: needs bash"; exit 1; }

work=$(mktemp -d /tmp/ewsgw-readme.XXXXXX)
chmod 0755 "$work"
sim_pid=""
cleanup() {
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
root=$work/root
tree=$work/src
mkdir -p "$root"

"$here/copy-tree.sh" "$src" "$tree"

# The simulator: the account the shipped ewsgw.conf names, and the
# mailbox the README's --verify line asks for.
cat >"$work/org.json" <<'JSON'
{"accounts": [{"username": "svc-ewsgw", "password": "the-service-password",
               "domain": "EXAMPLE", "impersonate": "*"}],
 "mailboxes": [{"smtp": "someone@example.com", "oof": {"state": "Disabled"},
                "items": [{"subject": "Standing meeting", "start": "now-5m",
                           "end": "now+55m", "freebusy": "Busy"}]}]}
JSON
/usr/bin/python3 "$tree/tests/sim/ewssim.py" --directory "$work/org.json" \
	--listen 127.0.0.1:0 --control 127.0.0.1:0 --ready-file "$work/sim.json" \
	--heartbeat-seconds 5 2>"$work/sim.log" &
sim_pid=$!
i=0
while [ ! -s "$work/sim.json" ]; do
	i=$((i + 1)); [ $i -lt 300 ] || { cat "$work/sim.log"; exit 1; }
	sleep 0.1
done
url=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ews_url"])' "$work/sim.json")

# $EDITOR: what an administrator types into the shipped file.
cat >"$work/editor" <<EOF
#!/bin/sh
set -e
sed -i -e 's|^url = .*|url = $url|' \\
    -e 's|^#mailbox = alice@example.com|mailbox = someone@example.com|' "\$1"
grep -q '^mailbox = someone@example.com' "\$1"
EOF
chmod +x "$work/editor"

# The block, each line with the staging root in front of its paths.
sed -n '/^<!-- install:begin/,/^<!-- install:end/p' "$src/README.md" |
    sed -n 's/^    //p' >"$work/block"
[ -s "$work/block" ] || { echo "README.md: no install block"; exit 1; }
sed -E "s#(^|[ =])/(etc|usr|var|run)([/ ]|\$)#\\1$root/\\2\\3#g" \
    "$work/block" >"$work/block.staged"

{
	echo "set -e"
	echo "cd '$tree'"
	echo "export PATH='$root/usr/sbin:$root/usr/bin':\"\$PATH\""
	echo "export EDITOR='$work/editor'"
	echo "export MAKEFLAGS='${MAKEFLAGS:--j2}'"
	cat <<EOF
# After a failed make check: the logs of the tests that failed.
failed_tests() {
	for t in \$(grep -l '^:test-result: \\(FAIL\\|ERROR\\)' \$(find '$tree' -name '*.trs') 2>/dev/null); do
		echo "---- \${t%.trs}.log"
		tail -80 "\${t%.trs}.log"
	done
}
systemctl() {
	[ "\$*" = "enable --now ewsgw" ] || { echo "systemctl \$*: not emulated" >&2; return 1; }
	/usr/bin/python3 '$tree/tests/install/unitrun.py' --root '$root' \\
	    '$root/usr/lib/systemd/system/ewsgw.service' check-status \\
	    '$root/usr/bin/ewsgwctl'
}
EOF
	n=0
	while IFS= read -r line; do
		n=$((n + 1))
		log="$work/line$n.log"
		echo "sed -n '${n}s/^/README \$ /p' '$work/block'"
		printf '{ %s\n} >"%s" 2>&1 || { tail -60 "%s"; failed_tests; echo "README line %d failed"; exit 1; }\n' \
		    "$line" "$log" "$log" "$n"
	done <"$work/block.staged"
} >"$work/run.sh"

bash "$work/run.sh"
tail -3 "$work/line$(wc -l <"$work/block")".log

# The service's user exists now, as the README made it.
id ewsgw >/dev/null

# tests/demo.sh on the in-tree build the README just made.
echo "== tests/demo.sh after the README's in-tree build"
(cd "$tree" && timeout -s INT 45 tests/demo.sh --no-install) >"$work/demo.log" 2>&1 || true
if ! grep -Eq -- '-> busy' "$work/demo.log"; then
	cat "$work/demo.log"
	echo "FAIL: the demo showed no presence change"
	exit 1
fi
grep -E -- '->' "$work/demo.log" | head -3
echo "README install sequence: ok"
