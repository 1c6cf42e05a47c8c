#!/bin/sh
# tests/lint/states.sh on made-up trees: it passes state assignments in
# the state-change function and the constructor, and fails one anywhere
# else, naming it.
. "$(dirname "$0")/selftest.sh"
lint="$top/tests/lint/states.sh"
lint_var=STATES_SRC
lint_tree=$tmp/src

mkdir -p "$tmp/src/subs"
cat >"$tmp/src/subs/thing.c" <<'C'
struct thing *
thing_new(void)
{
	t->state = THING_IDLE;
}

static void
set_state(struct thing *t, enum thing_state s)
{
	t->state = s;
}

static void
thing_done(struct thing *t)
{
	if (t->state == THING_BUSY)
		set_state(t, THING_IDLE);
}
C
must_pass "assignments in set_state and the constructor"

printf 'static void\nthing_fail(struct thing *t)\n{\n\tt->state = THING_IDLE;\n}\n' \
    >>"$tmp/src/subs/thing.c"
must_fail "an assignment elsewhere" \
    "^src/subs/thing\.c:22: state assigned in thing_fail\(\)"
echo "states self-test: assignments through the function pass, others fail"
