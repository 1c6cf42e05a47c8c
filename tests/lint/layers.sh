#!/bin/sh
# The source tree's layering, checked: every #include "DIR/..." in
# src/DIR1/ must name a folder DIR1 may use (src/README.md draws the
# layers), and no folder may include one above it.  Exit 1 on a breach.
set -eu
top=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top/src"

# folder: the folders it may include besides itself
allowed() {
	case $1 in
	base)     echo "" ;;
	ews)      echo "base" ;;
	presence) echo "base" ;;
	control)  echo "base" ;;
	io)       echo "base ews" ;;
	sinks)    echo "base io" ;;
	cluster)  echo "base io" ;;
	subs)     echo "base ews io presence sinks" ;;
	daemon)   echo "base ews io presence sinks subs cluster control" ;;
	*)        echo "?" ;;
	esac
}

bad=0
for dir in */; do
	dir=${dir%/}
	ok=$(allowed "$dir")
	if [ "$ok" = "?" ]; then
		echo "src/$dir: folder not in the layer table of tests/lint/layers.sh"
		bad=1
		continue
	fi
	for f in "$dir"/*.[ch]; do
		[ -f "$f" ] || continue
		for inc in $(sed -n 's/^#include "\([a-z_]*\)\/[^"]*".*/\1/p' "$f"); do
			[ "$inc" = "$dir" ] && continue
			case " $ok " in
			*" $inc "*) ;;
			*) echo "src/$f includes $inc/: $dir may use only: ${ok:-nothing}"
			   bad=1 ;;
			esac
		done
	done
done
[ $bad -eq 0 ] && echo "layers: every include follows src/README.md"
exit $bad
