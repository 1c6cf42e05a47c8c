# Sourced by the lints' self-tests (tests/lint/*_selftest.sh): a made-up
# tree in $tmp, removed on exit, and checks that the lint passes it or
# fails it naming the breach.  The self-test sets lint (the lint's path),
# lint_var (the variable that points the lint at another tree) and
# lint_tree (that tree) before it calls them.
set -eu
top=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The lint on the made-up tree; its output in $tmp/out.
run_lint() {
	env "$lint_var=$lint_tree" sh "$lint" >"$tmp/out"
}

# must_pass WHAT: the lint accepts the tree as it stands.
must_pass() {
	run_lint || { echo "FAIL: $1 was refused"; cat "$tmp/out"; exit 1; }
}

# must_fail WHAT PATTERN...: the lint refuses the tree, and its output
# matches every (extended) PATTERN.
must_fail() {
	what=$1
	shift
	if run_lint; then
		echo "FAIL: passed with $what"; cat "$tmp/out"; exit 1
	fi
	for pattern; do
		grep -Eq -- "$pattern" "$tmp/out" || {
			echo "FAIL: $what not named as '$pattern'"
			cat "$tmp/out"; exit 1; }
	done
}
