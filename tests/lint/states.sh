#!/bin/sh
# Every state assignment goes through its state-change function: in
# every C source of src/, "X->state =" may appear only inside the
# file's state-change function (named set_state or ending in
# _set_state, the house style of DESIGN.md) and in a constructor (a
# function ending in _new), where the object takes its first state.  A
# file that assigns a state and has no such function fails too.  The
# files below hold no object with a life cycle in a "state" field, and
# are passed over:
#   ews/stream.c, io/push_req.c
#                       lexers and parsers: the state is the scanner's
#                       place in its input, changed per character class
#   presence/presence.c the pure presence function fills in its result
#   ews/ews_parse.c, graph/graph_cal.c
#                       an out-of-office setting parsed into its struct
# Exit 1 on a breach, naming FILE:LINE and the function.  STATES_SRC
# checks another tree (the script's own test uses it).
set -eu
top=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "${STATES_SRC:-$top/src}"

not_objects=" ews/stream.c io/push_req.c presence/presence.c
    ews/ews_parse.c graph/graph_cal.c "

bad=0
nset=0
for f in $(ls */*.[ch] 2>/dev/null | LC_ALL=C sort); do
	case " $(echo $not_objects) " in
	*" $f "*) continue ;;
	esac
	grep -qE '[a-z_][a-z_0-9]*->state[ 	]*=[^=]' "$f" || continue
	# KNF: a definition starts with its name in column 0.
	LC_ALL=C awk -v f="src/$f" '
	    /^[a-z_][a-z_0-9]*\(/ {
		fn = $0; sub(/\(.*/, "", fn)
		if (fn ~ /^([a-z_0-9]+_)?set_state$/)
			setter = 1
	    }
	    /[a-z_][a-z_0-9]*->state[ \t]*=[^=]/ {
		if (fn ~ /^([a-z_0-9]+_)?set_state$/ || fn ~ /_new$/)
			next
		printf "%s:%d: state assigned in %s(), not through its " \
		    "state-change function\n", f, FNR, fn
		bad = 1
	    }
	    END {
		if (!setter) {
			printf "%s: assigns a state and has no state-change " \
			    "function (set_state or *_set_state)\n", f
			bad = 1
		}
		exit bad
	    }' "$f" || bad=1
	nset=$((nset + 1))
done
[ $nset -gt 0 ] || { echo "states: no state assignment found"; exit 1; }
[ $bad -eq 0 ] && echo "states: every state assignment goes through its" \
    "function ($nset files)"
exit $bad
