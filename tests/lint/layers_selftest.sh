#!/bin/sh
# tests/lint/layers.sh on made-up trees: it passes a clean one and fails
# one with an include cycle between two modules of a folder, one with an
# include of a folder above, and one whose folders include each other in
# a cycle.
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

# A table that lets base include subs: each include is allowed, the
# folders are a cycle.
LAYERS_EXTRA="base:subs"
export LAYERS_EXTRA
must_fail "a cycle of folders" "^src: folders include each other in a cycle" \
    "^    (base -> subs|subs -> base)$"
rm "$tmp/src/base/c.c"
must_pass "the wider table without the include back"
echo "layers self-test: clean tree passes, cycles of modules and of" \
    "folders and a breach fail"
