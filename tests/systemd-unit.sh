#!/bin/sh
# The shipped unit passes `systemd-analyze verify` and rates 2.0 or better
# in `systemd-analyze security`.  Skips (77) without systemd-analyze.
set -eu
[ -n "${SYSTEMD_ANALYZE:-}" ] && [ -x "$SYSTEMD_ANALYZE" ] || { echo "SKIP: no systemd-analyze"; exit 77; }
unit_in="$top_srcdir/systemd/ewsgw.service.in"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Point ExecStart at a real executable so verify can check it.
sed -e "s|@sbindir@/ewsgw|$EWSGW|g" -e "s|@sysconfdir@|/etc|g" \
    "$unit_in" >"$tmp/ewsgw.service"
"$SYSTEMD_ANALYZE" verify --man=no "$tmp/ewsgw.service"
out=$("$SYSTEMD_ANALYZE" security --offline=yes "$tmp/ewsgw.service" 2>&1)
score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for ewsgw.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || { printf '%s\n' "$out" | tail -5; echo "no exposure score"; exit 1; }
echo "exposure level $score"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { echo "FAIL: exposure $score > 2.0"; exit 1; }
# The credential the sample configuration reads is the one the unit loads.
cred=$(sed -n 's/^password_file *= *\([^/ ]*\) *$/\1/p' "$top_srcdir/etc/ewsgw.conf" | head -1)
[ -n "$cred" ] || { echo "FAIL: sample ewsgw.conf names no credential"; exit 1; }
grep -q "^LoadCredential=$cred:" "$unit_in" \
    || { echo "FAIL: the unit does not load credential '$cred'"; exit 1; }
echo "credential $cred loaded by the unit"
