#!/bin/sh
# Demo (fresh Debian 12, as root): install, build, start the bundled EWS
# simulator with a small organisation whose meetings begin and end a few
# seconds apart, run ewsgw against it with the log and file sinks, and
# show presence changing live.  Ctrl-C stops everything cleanly.
#   tests/demo.sh [--no-install] [--no-build]
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
install=1 build=1
for a in "$@"; do
	case $a in
	--no-install) install=0 ;;
	--no-build) build=0 ;;
	*) echo "usage: tests/demo.sh [--no-install] [--no-build]" >&2; exit 64 ;;
	esac
done
[ $install -eq 1 ] && "$top/tests/install-deps.sh"

# The README's in-tree build when there is one (configure refuses a
# second, out-of-tree build of a configured tree), else our own.
if [ -f "$top/config.status" ]; then
	bdir=$top
else
	bdir="$top/_build/demo"
fi
if [ $build -eq 1 ] || [ ! -x "$bdir/ewsgw" ]; then
	echo "== building ewsgw in $bdir"
	[ -f "$top/configure" ] || (cd "$top" && autoreconf -fi >/dev/null 2>&1)
	mkdir -p "$bdir"
	(cd "$bdir" && { [ -f Makefile ] || "$top/configure" -q; } &&
	    make -s -j"$(nproc)" ewsgw ewsgwctl) >/dev/null
fi

work=$(mktemp -d /tmp/ewsgw-demo.XXXXXX)
sim_pid="" gw_pid="" tail_pid=""
cleanup() {
	trap - INT TERM EXIT
	echo
	echo "== stopping"
	[ -n "$tail_pid" ] && kill "$tail_pid" 2>/dev/null
	[ -n "$gw_pid" ] && kill -TERM "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
	[ -n "$sim_pid" ] && kill -TERM "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	rm -rf "$work"
	exit 0
}
trap cleanup INT TERM EXIT

# A small organisation; meeting times relative to now, a few seconds apart.
/usr/bin/python3 - "$work/org.json" <<'PY'
import json, sys, time
now = int(time.time())
def at(s): return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + s))
people = ["alice", "bob", "carol", "dave", "erin"]
org = {"accounts": [{"username": "svc-ewsgw", "password": "Passw0rd!",
                     "domain": "CORP", "impersonate": "*"}],
       "mailboxes": []}
for i, p in enumerate(people):
    start = 10 + 8 * i
    items = [{"subject": "Meeting of %s" % p, "start": at(start),
              "end": at(start + 12), "freebusy": "Busy"}]
    if p == "carol":
        items[0]["sensitivity"] = "Private"
    if p == "dave":
        items.append({"subject": "Follow-up", "start": at(start + 12),
                      "end": at(start + 20), "freebusy": "Busy"})
    mb = {"smtp": "%s@example.com" % p, "items": items,
          "oof": {"state": "Disabled"}}
    if p == "erin":
        mb["oof"] = {"state": "Enabled", "internal_reply": "On holiday."}
        mb["items"] = []
    org["mailboxes"].append(mb)
json.dump(org, open(sys.argv[1], "w"), indent=1)
PY

echo "== starting the EWS simulator"
/usr/bin/python3 "$top/tests/sim/ewssim.py" --directory "$work/org.json" \
	--listen 127.0.0.1:0 --control 127.0.0.1:0 --ready-file "$work/sim.json" \
	--minute-seconds 60 --heartbeat-seconds 5 2>"$work/sim.log" &
sim_pid=$!
i=0
while [ ! -s "$work/sim.json" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/sim.log"; exit 1; }
	sleep 0.1
done
url=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ews_url"])' "$work/sim.json")

(umask 077 && printf 'Passw0rd!\n' >"$work/password")
cat >"$work/ewsgw.conf" <<CONF
[exchange]
url = $url
auth = ntlm
username = CORP\\svc-ewsgw
password_file = $work/password

[mailboxes]
mailbox = alice@example.com
mailbox = bob@example.com
mailbox = carol@example.com
mailbox = dave@example.com
mailbox = erin@example.com

[presence]
debounce = 200ms

[sink journal]
type = log

[sink file]
type = file
path = $work/presence.json
log = $work/changes.jsonl

[status]
socket = $work/status.sock
CONF

echo "== starting ewsgw (config $work/ewsgw.conf)"
"$bdir/ewsgw" -f -c "$work/ewsgw.conf" 2>"$work/ewsgw.log" &
gw_pid=$!
touch "$work/changes.jsonl"
echo "== presence changes, times in UTC (meetings start every 8 s; Ctrl-C to stop)"
tail -n +1 -f "$work/changes.jsonl" | /usr/bin/python3 -u -c '
import json, sys, time
for line in sys.stdin:
    c = json.loads(line)
    act = " (%s)" % c["activity"] if c.get("activity") else ""
    until = " until %sZ" % c["until"][11:19] if c.get("until") else ""
    print("%sZ  %-20s %-9s -> %s%s%s" % (time.strftime("%H:%M:%S", time.gmtime()),
          c["mailbox"], c["previous"], c["presence"], act, until))
' &
tail_pid=$!
sleep 3
"$bdir/ewsgwctl" --socket "$work/status.sock" status || true
wait "$gw_pid"
