#!/bin/sh
# tests/lint/transitions.sh on a made-up tree: it passes when every
# transition of a header's table is named by a registered unit test, and
# fails, naming the place, on a transition no test names, a variant
# named without its mark, a tag for a transition no table lists, a
# state the enum lacks, and a tag on a test in no test case.
. "$(dirname "$0")/selftest.sh"
lint="$top/tests/lint/transitions.sh"
lint_var=TRANSITIONS_TREE
lint_tree=$tmp

mkdir -p "$tmp/src/subs" "$tmp/tests/unit"
cat >"$tmp/src/subs/thing.h" <<'C'
/*
 * A thing.  Prose that names IDLE: or BUSY in passing is no row.
 *
 *   IDLE    -> BUSY        started
 *   IDLE,
 *   BUSY    -> DONE | IDLE stopped, or
 *                          (IDLE -> BUSY) in the text is no row
 *   BUSY    -> IDLE (late) a late answer
 *   any     -> DONE        shutdown
 */
enum thing_state {
	THING_IDLE,
	THING_BUSY,
	THING_DONE,
	THING_STATE_MAX
};
C
cat >"$tmp/tests/unit/check_thing.c" <<'C'
/* transition: THING IDLE -> BUSY: started. */
START_TEST(test_start)
{
	/* transition: THING IDLE, BUSY -> DONE | IDLE */
}
END_TEST

/*
 * transition: THING BUSY -> IDLE (late)
 * transition: THING any -> DONE
 */
START_TEST(test_late)
{
}
END_TEST

	tcase_add_test(tc, test_start);
	tcase_add_loop_test(tc, test_late, 0, 2);
C
must_pass "every transition named"

cp "$tmp/tests/unit/check_thing.c" "$tmp/keep.c"
sed -i 's/BUSY -> IDLE (late)/BUSY -> IDLE/' "$tmp/tests/unit/check_thing.c"
must_fail "a variant named without its mark" \
    "^src/subs/thing\.h:8: THING BUSY -> IDLE \(late\): no unit test"

cp "$tmp/keep.c" "$tmp/tests/unit/check_thing.c"
sed -i 's/IDLE, BUSY -> DONE | IDLE/IDLE, BUSY -> DONE/' \
    "$tmp/tests/unit/check_thing.c"
must_fail "a pair of a list not named" \
    "^src/subs/thing\.h:6: THING IDLE -> IDLE: no unit test" \
    "^src/subs/thing\.h:6: THING BUSY -> IDLE: no unit test"

cp "$tmp/keep.c" "$tmp/tests/unit/check_thing.c"
echo '/* transition: THING DONE -> IDLE */' >"$tmp/extra"
sed -i '1r '"$tmp/extra" "$tmp/tests/unit/check_thing.c"
must_fail "a tag for a transition no table lists" \
    "^tests/unit/check_thing\.c:2: THING DONE -> IDLE is in no table"

cp "$tmp/keep.c" "$tmp/tests/unit/check_thing.c"
sed -i 's/tcase_add_loop_test(tc, test_late, 0, 2);//' \
    "$tmp/tests/unit/check_thing.c"
must_fail "a tag on a test in no test case" \
    "^tests/unit/check_thing\.c:9: the tag's test test_late is in no test"

cp "$tmp/keep.c" "$tmp/tests/unit/check_thing.c"
sed -i 's/any     -> DONE/any     -> GONE/' "$tmp/src/subs/thing.h"
must_fail "a state the enum lacks" \
    "^src/subs/thing\.h:9: GONE is no state of enum thing_state"
echo "transitions self-test: named transitions pass, every gap fails"
