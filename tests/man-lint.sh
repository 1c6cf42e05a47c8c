#!/bin/sh
# Every manual page in man/ must pass "mandoc -T lint -W warning": no
# warning, error or unsupported request.  Skipped without mandoc.
set -u

if [ -z "${MANDOC:-}" ]; then
	echo "mandoc not found: skipping (apt-get install mandoc)"
	exit 77
fi
top=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}

status=0
count=0
for page in "$top"/man/*.[0-9]; do
	[ -f "$page" ] || continue
	count=$((count + 1))
	if out=$("$MANDOC" -T lint -W warning "$page" 2>&1) && [ -z "$out" ]; then
		echo "ok: ${page##*/}"
	else
		echo "FAIL: ${page##*/}"
		printf '%s\n' "$out"
		status=1
	fi
done
if [ "$count" -eq 0 ]; then
	echo "no manual pages under $top/man"
	exit 1
fi
exit $status
