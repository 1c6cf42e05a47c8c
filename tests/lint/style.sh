#!/bin/sh
# The C sources against .editorconfig's rules (OpenBSD KNF): indented
# with tabs (a continuation line adds at most four spaces, a comment
# line one), no trailing white space, a newline at the end of the file,
# lines of at most 80 columns (tabs every 8, bytes counted).  One rule
# for every C source of the tree.  Exit 1 on a breach, naming FILE:LINE.
# STYLE_TOP checks another tree (the script's own test uses it).
set -eu
top=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "${STYLE_TOP:-$top}"

dirs=
for d in src include tests bench; do
	[ -d "$d" ] && dirs="$dirs $d"
done
[ -n "$dirs" ] || { echo "style: no source folders under $(pwd)"; exit 1; }
# shellcheck disable=SC2086
files=$(find $dirs -name '*.[ch]' -type f | LC_ALL=C sort)
[ -n "$files" ] || { echo "style: no C sources under $(pwd)"; exit 1; }

bad=0
for f in $files; do
	LC_ALL=C awk -v f="$f" '
	function width(s,    i, c, n) {
		n = 0
		for (i = 1; i <= length(s); i++) {
			c = substr(s, i, 1)
			n = c == "\t" ? n - n % 8 + 8 : n + 1
		}
		return n
	}
	{
		match($0, /^[ \t]*/)
		lead = substr($0, 1, RLENGTH)
		if (lead ~ /     /)
			{ print f ":" NR ": indented with spaces"; bad = 1 }
		if ($0 ~ /[ \t]$/)
			{ print f ":" NR ": trailing white space"; bad = 1 }
		if (width($0) > 80)
			{ print f ":" NR ": longer than 80 columns"; bad = 1 }
	}
	END { exit bad }' "$f" || bad=1
	if [ -s "$f" ] && [ "$(tail -c 1 "$f" | od -An -c | tr -d ' ')" != '\n' ]
	then
		echo "$f: no newline at the end"
		bad=1
	fi
done
[ $bad -eq 0 ] && echo "style: the C sources follow .editorconfig"
exit $bad
