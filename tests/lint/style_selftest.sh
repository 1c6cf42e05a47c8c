#!/bin/sh
# tests/lint/style.sh on made-up trees: it passes a clean one and fails
# each kind of breach, naming the file and line, in any folder.
. "$(dirname "$0")/selftest.sh"
lint="$top/tests/lint/style.sh"
lint_var=STYLE_TOP
lint_tree=$tmp

mkdir -p "$tmp/src/sinks" "$tmp/tests/unit"
clean() {
	printf 'int\nf(int a,\n    int b)\n{\n\t/*\n\t * x\n\t */\n\treturn (a);\n}\n' \
	    >"$tmp/src/sinks/a.c"
	# 80 columns exactly: the limit itself passes.
	printf '/* %074d */\n' 0 >"$tmp/tests/unit/b.c"
}
long=$(printf '%090d' 0)
clean
must_pass "a clean tree"

# Each breach must fail and be named; then the tree is clean again.
printf 'int x; \n' >>"$tmp/src/sinks/a.c"
must_fail "trailing white space" "src/sinks/a\.c:10: trailing white space"
clean
printf '        int y;\n' >>"$tmp/src/sinks/a.c"
must_fail "space indentation" "src/sinks/a\.c:10: indented with spaces"
clean
printf '\tint x; /* %s */\n' "$long" >>"$tmp/src/sinks/a.c"
must_fail "a long line" "src/sinks/a\.c:10: longer than 80 columns"
clean
printf '/* %075d */\n' 0 >"$tmp/tests/unit/b.c"
must_fail "a long line in the tests" \
    "tests/unit/b\.c:1: longer than 80 columns"
clean
printf 'int z;' >>"$tmp/src/sinks/a.c"
must_fail "no final newline" "src/sinks/a\.c: no newline at the end"
echo "style self-test: clean tree passes, each breach fails"
