#!/bin/sh
# "ewsgw --check-config" end to end: the shipped example files pass, a
# broken file fails with status 78 and FILE:LINE messages on stderr, and
# the password never shows.  Skipped until the daemon is built.
set -u

if [ ! -x "${EWSGW:-}" ]; then
	echo "no ewsgw binary at '${EWSGW:-}': skipping"
	exit 77
fi
top=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0

(umask 077 && printf 'never-print-me\n' >"$tmp/ewsgw-password")
CREDENTIALS_DIRECTORY=$tmp
export CREDENTIALS_DIRECTORY

# check NAME WANTED-STATUS FILE [EXPECTED-STDERR-TEXT]
check() {
	"$EWSGW" --check-config -c "$3" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ "$rc" -ne "$2" ]; then
		echo "FAIL: $1: exit $rc, wanted $2"
		cat "$tmp/err"
		fail=1
		return
	fi
	if [ $# -ge 4 ] && ! grep -qF -- "$4" "$tmp/err"; then
		echo "FAIL: $1: stderr lacks: $4"
		cat "$tmp/err"
		fail=1
		return
	fi
	if grep -q never-print-me "$tmp/out" "$tmp/err"; then
		echo "FAIL: $1: the password was printed"
		fail=1
		return
	fi
	echo "ok: $1"
}

# -h and -V as well as --help and --version.
for opt in -h --help; do
	if "$EWSGW" $opt 2>&1 | grep -q '^usage: ewsgw'; then
		echo "ok: ewsgw $opt"
	else
		echo "FAIL: ewsgw $opt prints no usage"; fail=1
	fi
done
for opt in -V --version; do
	if "$EWSGW" $opt | grep -Eq '^ewsgw [0-9]+\.[0-9]+'; then
		echo "ok: ewsgw $opt"
	else
		echo "FAIL: ewsgw $opt prints no version"; fail=1
	fi
done

check "etc/ewsgw.conf" 0 "$top/etc/ewsgw.conf"

echo "alice@example.com" >"$tmp/mailboxes"
sed "s#/etc/ewsgw/mailboxes#$tmp/mailboxes#" "$top/etc/ewsgw-minimal.conf" \
    >"$tmp/minimal.conf"
check "etc/ewsgw-minimal.conf" 0 "$tmp/minimal.conf"

cat >"$tmp/bad.conf" <<'CONF'
[exchange]
url = https://mail.example.com/EWS/Exchange.asmx
username = svc
password_file = ewsgw-password

[throttling]
max_concurency = 5
CONF
check "unknown key" 78 "$tmp/bad.conf" \
    "$tmp/bad.conf:7: unknown key 'max_concurency' in [throttling] (did you mean 'max_concurrency'?)"

check "missing file" 78 "$tmp/none.conf" "$tmp/none.conf: cannot read"

# A valid [cluster] section passes; one without its name does not.
cat >"$tmp/cluster.conf" <<'CONF'
[exchange]
url = https://mail.example.com/EWS/Exchange.asmx
username = svc
password_file = ewsgw-password

[cluster]
endpoints = https://etcd1.example.com:2379, https://etcd2.example.com:2379
name = presence
node = gw1
CONF
check "cluster mode" 0 "$tmp/cluster.conf"
grep -v '^name = ' "$tmp/cluster.conf" >"$tmp/cluster-noname.conf"
check "cluster without name" 78 "$tmp/cluster-noname.conf" \
    "$tmp/cluster-noname.conf"

exit $fail
