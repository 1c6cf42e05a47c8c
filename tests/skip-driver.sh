#!/bin/sh
# ewsgw - Exchange calendar presence gateway
# SPDX-License-Identifier: ISC
#
# Test driver for every test of "make check": runs automake's
# test-driver (its path and arguments follow), then makes skips honest:
#   - Python unittest cases skipped inside a program that passed, and
#     "SKIP: what" lines of any other program that passed, are listed
#     ("SKIP: NAME: ...") and counted as SKIP results in the .trs file,
#     so the suite's totals include them;
#   - with EWSGW_CI_NO_SKIP=1 (CI has everything every test needs) any
#     skip, whole program or single case, is a failure.
#
# Usage (Makefile): skip-driver.sh SHELL test-driver --test-name N
#   --log-file L --trs-file T [more test-driver options] -- COMMAND...
set -u

name="" log="" trs="" prev=""
for a in "$@"; do
	case $prev in
	--test-name) name=$a ;;
	--log-file) log=$a ;;
	--trs-file) trs=$a ;;
	--) break ;;
	esac
	prev=$a
done

"$@"
rc=$?
[ -n "$trs" ] && [ -f "$trs" ] || exit $rc

# Skipped cases of a unittest program: "... skipped 'why'" lines at
# verbosity 2, or only the count in "OK (skipped=N)" below that.
# Other programs that pass but leave a part out say "SKIP: what".
cases=$(grep -E "( \.\.\. |^)skipped ['\"]" "$log" 2>/dev/null | head -50)
if grep -q '^:test-result: PASS' "$trs"; then
	more=$(grep -E '^SKIP: ' "$log" 2>/dev/null | head -50)
	[ -n "$more" ] && cases=$(printf '%s\n%s' "$cases" "$more" | grep .)
fi
ncases=$(printf '%s' "$cases" | grep -c . || true)
nsum=$(sed -n 's/^\(OK\|FAILED\) (.*skipped=\([0-9]*\).*/\2/p' "$log" \
    2>/dev/null | tail -1)
[ -n "$nsum" ] && [ "$nsum" -gt "$ncases" ] && ncases=$nsum

strict=${EWSGW_CI_NO_SKIP:-0}
whole=no
grep -q '^:test-result: SKIP' "$trs" && whole=yes
[ "$ncases" -gt 0 ] || [ "$whole" = yes ] || exit $rc

if [ "$strict" = 1 ]; then
	verdict=FAIL
else
	verdict=SKIP
fi
if [ "$ncases" -gt 0 ]; then
	printf '%s\n' "$cases" | while IFS= read -r c; do
		[ -n "$c" ] && echo "$verdict: $name: $c"
	done
	[ -n "$cases" ] || echo "$verdict: $name: $ncases unittest cases skipped"
	i=0
	while [ $i -lt "$ncases" ]; do
		echo ":test-result: $verdict" >>"$trs"
		i=$((i + 1))
	done
fi
if [ "$strict" = 1 ]; then
	[ "$whole" = yes ] && echo "FAIL: $name skipped, but EWSGW_CI_NO_SKIP=1 says CI has what it needs"
	sed -e 's/^:test-result: SKIP/:test-result: FAIL/' \
	    -e 's/^:global-test-result: .*/:global-test-result: FAIL/' \
	    -e 's/^:recheck: .*/:recheck: yes/' "$trs" >"$trs.tmp" &&
	    mv -f "$trs.tmp" "$trs"
	{
		echo
		echo "EWSGW_CI_NO_SKIP=1: skipped tests fail"
	} >>"$log"
fi
exit $rc
