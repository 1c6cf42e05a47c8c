#!/bin/sh
# The whole test suite from a fresh Debian 12 machine, as root:
#   installs the build and test dependencies, then
#   1. builds the Debian package, lintian, installs it on this machine,
#      runs its ewsgw --check-config, purges it (tests/package.sh; the
#      package's sysusers entry leaves the ewsgw user the install test
#      runs the service as);
#   2. make check (warnings are errors), the unit tests under valgrind,
#      and make distcheck;
#   3. make check again under AddressSanitizer + UndefinedBehaviorSanitizer;
#   4. a build without libsystemd;
#   5. every libFuzzer target for a short smoke run;
#   6. the README's install sequence as written (tests/readme-install.sh:
#      its own make check and make install into a staging root, the
#      installed service against the simulator, then tests/demo.sh).
# Every build happens out of tree under _build/, from a clean copy of
# the tree (tests/copy-tree.sh): the tree itself is never configured,
# cleaned or changed.  EWSGW_CI_NO_SKIP=1 is exported: CI has what every
# test needs, so a test that skips fails.
# Exit status 0 only if everything passed.
#   tests/ci.sh [--no-install]
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
start=$(date +%s)

if [ "${1:-}" != "--no-install" ]; then
	"$top/tests/install-deps.sh"
fi

jobs=$(nproc 2>/dev/null || echo 2)
builds="$top/_build"
rm -rf "$builds"
mkdir -p "$builds"
src="$builds/src"
"$top/tests/copy-tree.sh" "$top" "$src"

EWSGW_CI_NO_SKIP=1
export EWSGW_CI_NO_SKIP
# The official EWS schema beside the tree (the copies and distcheck's
# tree are elsewhere): the simulator and the unit tests validate with it.
if [ -d "$top/../shared/ews-schema" ]; then
	EWSSIM_SCHEMA_DIR=$(cd "$top/../shared/ews-schema" && pwd)
	export EWSSIM_SCHEMA_DIR
fi

# ---- test servers -------------------------------------------------------
# Start here whatever server a test needs (loopback, ephemeral ports),
# export where it listens, and add its stop to stop_servers.
stop_servers() {
	:
}
trap stop_servers EXIT
trap 'exit 130' INT TERM
# -------------------------------------------------------------------------

echo "== autoreconf"
(cd "$src" && autoreconf -fi) >"$builds/autoreconf.log" 2>&1 \
    || { cat "$builds/autoreconf.log"; exit 1; }

status=0
consoles=""	# console logs of make check and distcheck, for the summary
steps_pass=0 steps_fail=0

step() {	# name, command...: a CI step that counts as one test
	name=$1; shift
	echo "== $name"
	if "$@" >"$builds/$name.log" 2>&1; then
		steps_pass=$((steps_pass + 1))
		tail -3 "$builds/$name.log"
		echo "PASS: $name"
	else
		steps_fail=$((steps_fail + 1))
		tail -80 "$builds/$name.log"
		echo "FAIL: $name (log: $builds/$name.log)"
		status=1
	fi
}

run_build() {	# name, make targets, configure args...
	name=$1; targets=$2; shift 2
	dir="$builds/$name"
	mkdir -p "$dir"
	echo "== [$name] configure $*"
	(cd "$dir" && "$src/configure" "$@" >configure.log 2>&1) \
	    || { tail -30 "$dir/configure.log"; return 1; }
	echo "== [$name] make"
	(cd "$dir" && make -j"$jobs" >make.log 2>&1) \
	    || { tail -60 "$dir/make.log"; return 1; }
	for t in $targets; do
		echo "== [$name] make $t"
		case $t in check|distcheck) consoles="$consoles $dir/$t.log" ;; esac
		if ! (cd "$dir" && make -j"$jobs" "$t" >"$t.log" 2>&1); then
			tail -80 "$dir/$t.log"
			for f in $(cd "$dir" && grep -l '^:test-result: \(FAIL\|ERROR\)' \
			    $(find . -name '*.trs') 2>/dev/null); do
				echo "---- ${f%.trs}.log"
				tail -60 "$dir/${f%.trs}.log"
			done
			return 1
		fi
		grep -E '^(# (TOTAL|PASS|SKIP|FAIL|ERROR)|SKIP: )' "$dir/$t.log" || true
	done
}

step package "$top/tests/package.sh" "$src"
# --with-sip --with-xmpp: CI has their libraries, so configure must
# build both sinks (it would leave them out quietly otherwise).
run_build default "check check-valgrind distcheck" --enable-werror \
    --with-sip --with-xmpp || status=1
run_build sanitizers "check" --enable-werror --enable-sanitizers \
    --with-sip --with-xmpp || status=1
# Without libsystemd it must still build and start.
if run_build nosystemd "" --enable-werror --without-systemd; then
	step nosystemd-version "$builds/nosystemd/ewsgw" --version
else
	status=1
fi
if command -v clang >/dev/null; then
	run_build fuzz "fuzz" CC=clang --enable-fuzzing || status=1
fi
step readme-install "$top/tests/readme-install.sh" "$src"

# The closing line: every automake summary of every make check and
# distcheck run (each counts the unittest cases skipped inside a passing
# program too, see tests/skip-driver.sh), plus the CI steps above.
pass=$steps_pass fail=$steps_fail skip=0
for l in $consoles; do
	[ -f "$l" ] || continue
	eval "$(awk '
		/^# PASS:/  { p += $3 } /^# XFAIL:/ { p += $3 }
		/^# FAIL:/  { f += $3 } /^# XPASS:/ { f += $3 }
		/^# ERROR:/ { f += $3 } /^# SKIP:/  { s += $3 }
		END { printf "p=%d f=%d s=%d\n", p, f, s }' "$l")"
	pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
done
if [ "$skip" -gt 0 ]; then
	echo "skipped tests although EWSGW_CI_NO_SKIP=1 (see SKIP: lines above)"
	status=1
fi
[ "$status" -eq 0 ] || [ "$fail" -gt 0 ] || fail=1
echo "CI took $(( ($(date +%s) - start) / 60 )) min"
echo "tests: $pass passed, $fail failed, $skip skipped"
exit "$status"
