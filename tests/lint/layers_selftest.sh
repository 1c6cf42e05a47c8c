#!/bin/sh
# tests/lint/layers.sh on made-up trees: it passes a clean one and fails
# one with an include cycle between two modules of a folder, and one
# with an include of a folder above.
. "$(dirname "$0")/selftest.sh"
lint="$top/tests/lint/layers.sh"
lint_var=LAYERS_SRC
lint_tree=$tmp/src

mkdir -p "$tmp/src/base" "$tmp/src/subs"
printf '#include "base/a.h"\n' >"$tmp/src/base/b.c"
printf '\n' >"$tmp/src/base/a.h"
printf '#include "subs/low.h"\n#include "base/a.h"\n' >"$tmp/src/subs/high.c"
printf '\n' >"$tmp/src/subs/low.h"
must_pass "a clean tree"

# low.c includes high.h: low -> high -> low.
printf '#include "subs/high.h"\n' >"$tmp/src/subs/low.c"
printf '\n' >"$tmp/src/subs/high.h"
must_fail "an include cycle" \
    "src/subs: modules include each other in a cycle" \
    "^    (high -> low|low -> high)$"
rm "$tmp/src/subs/low.c"

printf '#include "subs/low.h"\n' >"$tmp/src/base/c.c"
must_fail "base including subs" "src/base/c\.c includes subs/"
echo "layers self-test: clean tree passes, cycle and breach fail"
