#!/bin/sh
# The push listener's parse memory has a bound (issue: "parse memory up
# to ~33x the input"): bench/parsemem counts the heap of every shape of
# SendNotification body from 64 KiB to 4 MiB and fails if the pre-scan
# and parse ever need more than PARSE_MAX x the body, or a whole request
# (head, body buffer, parse, answer) more than REQUEST_MAX x the body.
# The same bound must be broken by the DOM parse the listener used
# before (-d): otherwise the bound would prove nothing.  Built only
# without sanitizers (they own malloc), so not run under them.
set -u

PARSE_MAX=2.5
REQUEST_MAX=6
bin=${top_builddir:-.}/bench/parsemem
sizes="64k 256k 1M 4M"

if [ ! -x "$bin" ]; then
	echo "FAIL: $bin not built"
	exit 1
fi
# shellcheck disable=SC2086
if ! "$bin" -m "$PARSE_MAX" -r "$REQUEST_MAX" $sizes; then
	echo "FAIL: the streaming parse is over its bound"
	exit 1
fi
# shellcheck disable=SC2086
out=$("$bin" -d -m "$PARSE_MAX" $sizes)
rc=$?
printf '%s\n' "$out"
if [ "$rc" -ne 1 ] || ! printf '%s\n' "$out" | grep -q "parse peak over"; then
	echo "FAIL: the DOM parse stayed within $PARSE_MAX x (rc $rc):" \
	    "the bound does not tell the parsers apart"
	exit 1
fi
echo "ok: parse <= $PARSE_MAX x and request <= $REQUEST_MAX x the body;" \
    "the DOM parse is over it"
