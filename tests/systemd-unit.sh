#!/bin/sh
# ewsgw - Exchange calendar presence gateway
# SPDX-License-Identifier: ISC
#
# Checks an installed ewsgw.service:  tests/systemd-unit.sh UNIT [ROOT]
# (ROOT: the staging root it was installed into with DESTDIR).  The
# unit passes `systemd-analyze verify` (its ExecStart= is looked up
# below ROOT), rates 1.5 or better in `systemd-analyze security`, and
# loads the credential the shipped configuration names.  Run by the
# install test (tests/install/test_install.py) on the unit that
# "make install" wrote; skips (77) without systemd-analyze.
set -eu
unit=${1:?usage: systemd-unit.sh UNIT [ROOT]}
root=${2:-}
sa=${SYSTEMD_ANALYZE:-$(command -v systemd-analyze || true)}
[ -n "$sa" ] && [ -x "$sa" ] || { echo "SKIP: no systemd-analyze"; exit 77; }
top=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}

if grep -n '@[A-Za-z_][A-Za-z_0-9]*@' "$unit"; then
	echo "FAIL: $unit holds unsubstituted @...@"
	exit 1
fi
# verify looks the executables up: a program the unit names that was
# installed below ROOT is checked there (only that path changes).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
while IFS= read -r line; do
	case $line in
	Exec*=/*)
		key=${line%%=*} cmd=${line#*=} exe=${cmd%% *}
		if [ -n "$root" ] && [ -x "$root$exe" ]; then
			line="$key=$root$cmd"
		fi ;;
	esac
	printf '%s\n' "$line"
done <"$unit" >"$tmp/ewsgw.service"
"$sa" verify --man=no "$tmp/ewsgw.service"
echo "verify: ok"
out=$("$sa" security --offline=yes "$unit" 2>&1)
score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for ewsgw.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || { printf '%s\n' "$out" | tail -5; echo "no exposure score"; exit 1; }
echo "exposure level $score"
awk -v s="$score" 'BEGIN { exit !(s <= 1.5) }' || {
	printf '%s\n' "$out" | grep '✗'
	echo "FAIL: exposure $score > 1.5"
	exit 1
}
# The credential the sample configuration reads is the one the unit loads.
cred=$(sed -n 's/^password_file *= *\([^/ ]*\) *$/\1/p' "$top/etc/ewsgw.conf" | head -1)
[ -n "$cred" ] || { echo "FAIL: sample ewsgw.conf names no credential"; exit 1; }
grep -q "^LoadCredential=$cred:" "$unit" \
    || { echo "FAIL: the unit does not load credential '$cred'"; exit 1; }
echo "credential $cred loaded by the unit"
