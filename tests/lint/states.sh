#!/bin/sh
# Every state assignment goes through its state-change function: in a
# C file of src/ that defines one (a function named set_state or
# ending in _set_state, the house style of DESIGN.md), "X->state =" may
# appear only inside that function, and in the constructor (a function
# ending in _new), where the object takes its first state.  Exit 1 on
# a breach, naming FILE:LINE and the function.  STATES_SRC checks
# another tree (the script's own test uses it).
set -eu
top=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "${STATES_SRC:-$top/src}"

bad=0
files=$(grep -lE '^([a-z_0-9]+_)?set_state\(' */*.c 2>/dev/null |
    LC_ALL=C sort) || true
[ -n "$files" ] || { echo "states: no state-change function found"; exit 1; }
for f in $files; do
	# KNF: a definition starts with its name in column 0.
	LC_ALL=C awk -v f="src/$f" '
	    /^[a-z_][a-z_0-9]*\(/ { fn = $0; sub(/\(.*/, "", fn) }
	    /[a-z_][a-z_0-9]*->state[ \t]*=[^=]/ {
		if (fn ~ /^([a-z_0-9]+_)?set_state$/ || fn ~ /_new$/)
			next
		printf "%s:%d: state assigned in %s(), not through its " \
		    "state-change function\n", f, FNR, fn
		bad = 1
	    }
	    END { exit bad }' "$f" || bad=1
done
[ $bad -eq 0 ] && echo "states: every state assignment goes through its" \
    "function ($(echo $files | wc -w) files)"
exit $bad
