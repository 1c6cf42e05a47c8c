#!/bin/sh
# tests/lint/layers.sh on made-up trees: it passes a clean one and fails
# one with an include cycle between two modules of a folder, and one
# with an include of a folder above.
set -eu
top=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
lint="$top/tests/lint/layers.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/src/base" "$tmp/src/subs"
printf '#include "base/a.h"\n' >"$tmp/src/base/b.c"
printf '\n' >"$tmp/src/base/a.h"
printf '#include "subs/low.h"\n#include "base/a.h"\n' >"$tmp/src/subs/high.c"
printf '\n' >"$tmp/src/subs/low.h"
LAYERS_SRC="$tmp/src" sh "$lint" >"$tmp/out" || {
	echo "FAIL: a clean tree was refused"; cat "$tmp/out"; exit 1; }

# low.c includes high.h: low -> high -> low.
printf '#include "subs/high.h"\n' >"$tmp/src/subs/low.c"
printf '\n' >"$tmp/src/subs/high.h"
if LAYERS_SRC="$tmp/src" sh "$lint" >"$tmp/out"; then
	echo "FAIL: an include cycle passed"; cat "$tmp/out"; exit 1
fi
grep -q "src/subs: modules include each other in a cycle" "$tmp/out" || {
	echo "FAIL: the cycle was not named"; cat "$tmp/out"; exit 1; }
grep -Eq "^    (high -> low|low -> high)$" "$tmp/out" || {
	echo "FAIL: the cycle's modules were not listed"; cat "$tmp/out"; exit 1; }
rm "$tmp/src/subs/low.c"

printf '#include "subs/low.h"\n' >"$tmp/src/base/c.c"
if LAYERS_SRC="$tmp/src" sh "$lint" >"$tmp/out"; then
	echo "FAIL: base including subs passed"; cat "$tmp/out"; exit 1
fi
grep -q "src/base/c.c includes subs/" "$tmp/out" || {
	echo "FAIL: the breach was not named"; cat "$tmp/out"; exit 1; }
echo "layers self-test: clean tree passes, cycle and breach fail"
