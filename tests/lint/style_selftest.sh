#!/bin/sh
# tests/lint/style.sh on made-up trees: it passes a clean one and fails
# each kind of breach, naming the file and line; a long line outside
# the folders held to 80 columns passes.
set -eu
top=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
lint="$top/tests/lint/style.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/src/sinks" "$tmp/src/io"
clean() {
	printf 'int\nf(int a,\n    int b)\n{\n\t/*\n\t * x\n\t */\n\treturn (a);\n}\n' \
	    >"$tmp/src/sinks/a.c"
}
long=$(printf '%090d' 0)
clean
printf '\tint x; /* %s */\n' "$long" >"$tmp/src/io/b.c"
STYLE_TOP="$tmp" sh "$lint" >"$tmp/out" || {
	echo "FAIL: a clean tree was refused"; cat "$tmp/out"; exit 1; }

# breach expected-message: the lint must fail and name it.
breach() {
	if STYLE_TOP="$tmp" sh "$lint" >"$tmp/out"; then
		echo "FAIL: passed with $1"; cat "$tmp/out"; exit 1
	fi
	grep -qF "$2" "$tmp/out" || {
		echo "FAIL: $1 not named as '$2'"; cat "$tmp/out"; exit 1; }
	clean
}
printf 'int x; \n' >>"$tmp/src/sinks/a.c"
breach "trailing white space" "src/sinks/a.c:10: trailing white space"
printf '        int y;\n' >>"$tmp/src/sinks/a.c"
breach "space indentation" "src/sinks/a.c:10: indented with spaces"
printf '\tint x; /* %s */\n' "$long" >>"$tmp/src/sinks/a.c"
breach "a long line" "src/sinks/a.c:10: longer than 80 columns"
printf 'int z;' >>"$tmp/src/sinks/a.c"
breach "no final newline" "src/sinks/a.c: no newline at the end"
echo "style self-test: clean tree passes, each breach fails"
