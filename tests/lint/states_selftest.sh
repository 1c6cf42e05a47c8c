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
cp "$tmp/src/subs/thing.c" "$tmp/thing.c"

printf 'static void\nthing_fail(struct thing *t)\n{\n\tt->state = THING_IDLE;\n}\n' \
    >>"$tmp/src/subs/thing.c"
must_fail "an assignment elsewhere" \
    "^src/subs/thing\.c:22: state assigned in thing_fail\(\)"

# A file of objects with a state and no state-change function at all.
cp "$tmp/thing.c" "$tmp/src/subs/thing.c"
mkdir -p "$tmp/src/io"
printf 'static void\nconn_read(struct conn *c)\n{\n\tc->state = C_READ;\n}\n' \
    >"$tmp/src/io/conn.c"
must_fail "a file without a state-change function" \
    "^src/io/conn\.c:4: state assigned in conn_read\(\)" \
    "^src/io/conn\.c: assigns a state and has no state-change function"

# A lexer's place in its input is not an object's state.
mkdir -p "$tmp/src/ews"
mv "$tmp/src/io/conn.c" "$tmp/src/ews/stream.c"
must_pass "a lexer that moves its own state"
echo "states self-test: assignments through the function pass, others fail," \
    "also in a file without one"
