#!/bin/sh
# The whole test suite from a fresh Debian 12 machine, as root:
#   installs the build and test dependencies, builds ewsgw, and runs
#   1. make check (warnings are errors) and make distcheck,
#   2. make check again under AddressSanitizer + UndefinedBehaviorSanitizer,
#   3. the unit tests under valgrind,
#   4. a build without libsystemd,
#   5. every libFuzzer target for a short smoke run.
# Exit status 0 only if everything passed.  Usage: tests/ci.sh [--no-install]
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [ "${1:-}" != "--no-install" ]; then
	"$top/tests/install-deps.sh"
fi

jobs=$(nproc 2>/dev/null || echo 2)
builds="$top/_build"
rm -rf "$builds"
mkdir -p "$builds"
[ -f config.status ] && make distclean >/dev/null 2>&1 || true

echo "== autoreconf"
autoreconf -fi >"$builds/autoreconf.log" 2>&1 || { cat "$builds/autoreconf.log"; exit 1; }

status=0
logs=""

run_build() {	# name, make targets, configure args...
	name=$1; targets=$2; shift 2
	dir="$builds/$name"
	mkdir -p "$dir"
	echo "== [$name] configure $*"
	(cd "$dir" && "$top/configure" "$@" >configure.log 2>&1) \
	    || { tail -30 "$dir/configure.log"; return 1; }
	echo "== [$name] make"
	(cd "$dir" && make -j"$jobs" >make.log 2>&1) \
	    || { tail -60 "$dir/make.log"; return 1; }
	logs="$logs $dir/test-suite.log"
	for t in $targets; do
		echo "== [$name] make $t"
		if ! (cd "$dir" && make -j"$jobs" "$t" >"$t.log" 2>&1); then
			tail -80 "$dir/$t.log"
			for f in $(cd "$dir" && grep -l '^:test-result: \(FAIL\|ERROR\)' \
			    $(find . -name '*.trs') 2>/dev/null); do
				echo "---- ${f%.trs}.log"
				tail -60 "$dir/${f%.trs}.log"
			done
			return 1
		fi
		grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR)' "$dir/$t.log" || true
	done
}

run_build default "check check-valgrind distcheck" --enable-werror || status=1
run_build sanitizers "check" --enable-werror --enable-sanitizers || status=1
# Without libsystemd it must still build and start.
run_build nosystemd "" --enable-werror --without-systemd || status=1
if [ -x "$builds/nosystemd/ewsgw" ]; then
	"$builds/nosystemd/ewsgw" --version || status=1
fi
if command -v clang >/dev/null; then
	run_build fuzz "fuzz" CC=clang --enable-fuzzing || status=1
fi

# One closing line for whoever reads the log.
pass=0; fail=0; skip=0
for l in $logs; do
	[ -f "$l" ] || continue
	p=$(sed -n 's/^# PASS: *//p' "$l" | head -1)
	f=$(sed -n 's/^# FAIL: *//p' "$l" | head -1)
	e=$(sed -n 's/^# ERROR: *//p' "$l" | head -1)
	s=$(sed -n 's/^# SKIP: *//p' "$l" | head -1)
	pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0} + ${e:-0}))
	skip=$((skip + ${s:-0}))
done
[ "$status" -eq 0 ] || [ "$fail" -gt 0 ] || fail=1
echo "tests: $pass passed, $fail failed, $skip skipped"
exit "$status"
