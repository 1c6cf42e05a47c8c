#!/bin/sh
# The source tree's layering, checked: every #include "DIR/..." in
# src/DIR1/ must name a folder DIR1 may use (src/README.md draws the
# layers), no folder may include one above it, and inside a folder the
# modules (foo.c and foo.h are one module) must not include each other
# in a cycle; the folders, by the includes they really make, must not
# either (the table below is meant to be a ladder: this keeps it one).
# Exit 1 on a breach.  LAYERS_SRC checks another tree, and LAYERS_EXTRA
# ("dir:other ...") allows more includes than the table; the script's
# own test uses both.
set -eu
top=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "${LAYERS_SRC:-$top/src}"

# folder: the folders it may include besides itself
allowed() {
	case $1 in
	base)     echo "" ;;
	presence) echo "base" ;;
	ews)      echo "base presence" ;;
	graph)    echo "base ews" ;;
	control)  echo "base" ;;
	io)       echo "base ews graph" ;;
	sinks)    echo "base io" ;;
	cluster)  echo "base io" ;;
	subs)     echo "base ews graph io presence sinks" ;;
	daemon)   echo "base ews graph io presence sinks subs cluster control" ;;
	*)        echo "?" ;;
	esac
	for e in ${LAYERS_EXTRA:-}; do
		[ "${e%%:*}" = "$1" ] && echo "${e#*:}"
	done
}

# "from to" for every include of one module of folder $1 by another.
module_edges() {
	for f in "$1"/*.[ch]; do
		[ -f "$f" ] || continue
		m=$(basename "$f")
		m=${m%.[ch]}
		for inc in $(sed -n "s/^#include \"$1\/\([a-z_0-9]*\)\.h\".*/\1/p" \
		    "$f"); do
			[ "$inc" = "$m" ] || echo "$m $inc"
		done
	done
}

# tsort's loops (on stdin) as "    a -> b -> c" lines.
loops() {
	awk '
	    /contains a loop/ { if (l != "") print "    " l; l = ""; next }
	    /^tsort: [a-z_0-9]+$/ { l = l (l == "" ? "" : " -> ") $2 }
	    END { if (l != "") print "    " l }'
}

bad=0
folder_edges=""
for dir in */; do
	dir=${dir%/}
	ok=$(allowed "$dir" | tr "\n" " " | sed "s/ *$//")
	if [ "$ok" = "?" ]; then
		echo "src/$dir: folder not in the layer table of tests/lint/layers.sh"
		bad=1
		continue
	fi
	for f in "$dir"/*.[ch]; do
		[ -f "$f" ] || continue
		for inc in $(sed -n 's/^#include "\([a-z_]*\)\/[^"]*".*/\1/p' "$f"); do
			[ "$inc" = "$dir" ] && continue
			folder_edges="$folder_edges$dir $inc
"
			case " $ok " in
			*" $inc "*) ;;
			*) echo "src/$f includes $inc/: $dir may use only: ${ok:-nothing}"
			   bad=1 ;;
			esac
		done
	done
	# tsort names the modules of each loop it finds on stderr.
	if ! loops=$(module_edges "$dir" | sort -u | tsort 2>&1 >/dev/null); then
		echo "src/$dir: modules include each other in a cycle:"
		echo "$loops" | loops
		bad=1
	fi
done
if ! loops=$(printf '%s' "$folder_edges" | sort -u | tsort 2>&1 >/dev/null)
then
	echo "src: folders include each other in a cycle:"
	echo "$loops" | loops
	bad=1
fi
[ $bad -eq 0 ] && echo "layers: every include follows src/README.md"
exit $bad
