/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: boundary timers on a real libevent loop: firing order,
 * never early, cancel, move, re-arm from a callback, both clocks.
 */
#include "config.h"

#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "presence/boundary.h"
#include "base/timeutil.h"

struct owner {
	int			 id;
	int64_t			 deadline;
	struct timerheap_entry	 timer;
};

struct ctx {
	struct boundary		*b;
	int			 order[16];
	int64_t			 late[16];	/* fired at - deadline */
	int			 n;
	int			 rearm;		/* times owner 9 re-arms */
};

static void
fired_cb(struct timerheap_entry *e, void *arg)
{
	struct ctx	*c = arg;
	struct owner	*o = timerheap_owner(e, struct owner, timer);

	ck_assert_int_lt(c->n, 16);
	c->late[c->n] = boundary_now(c->b) - o->deadline;
	c->order[c->n++] = o->id;
	if (o->id == 9 && c->rearm > 0) {
		c->rearm--;
		o->deadline = boundary_now(c->b) + 2;
		boundary_schedule(c->b, e, o->deadline);
	}
}

/* Stop a broken test instead of hanging. */
static void
guard_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
	ck_abort_msg("loop did not finish");
}

static void
run(struct event_base *base)
{
	struct event	*guard;
	struct timeval	 tv = { 10, 0 };

	guard = evtimer_new(base, guard_cb, base);
	ck_assert_ptr_nonnull(guard);
	evtimer_add(guard, &tv);
	/* Run until only the guard is left. */
	while (event_base_loop(base, EVLOOP_ONCE) == 0) {
		if (event_base_get_num_events(base,
		    EVENT_BASE_COUNT_ADDED) <= 1)
			break;
	}
	event_free(guard);
}

static void
order_test(enum boundary_clock clock)
{
	struct event_base	*base;
	struct ctx		 c;
	struct owner		 o[4];
	int64_t			 now;
	int			 i;

	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	memset(&c, 0, sizeof(c));
	c.b = boundary_new(base, clock, fired_cb, &c);
	now = boundary_now(c.b);
	for (i = 0; i < 4; i++) {
		o[i].id = i;
		timerheap_entry_init(&o[i].timer);
	}
	/* Scheduled out of order; 3 is cancelled and must never fire. */
	o[0].deadline = now + 30;
	o[1].deadline = now + 10;
	o[2].deadline = now + 20;
	o[3].deadline = now + 15;
	for (i = 0; i < 4; i++)
		boundary_schedule(c.b, &o[i].timer, o[i].deadline);
	ck_assert_uint_eq(boundary_count(c.b), 4);
	boundary_cancel(c.b, &o[3].timer);
	boundary_cancel(c.b, &o[3].timer);	/* twice is harmless */
	ck_assert_uint_eq(boundary_count(c.b), 3);

	run(base);
	ck_assert_int_eq(c.n, 3);
	ck_assert_int_eq(c.order[0], 1);
	ck_assert_int_eq(c.order[1], 2);
	ck_assert_int_eq(c.order[2], 0);
	for (i = 0; i < c.n; i++)
		ck_assert_int_ge(c.late[i], 0);		/* never early */
	ck_assert_uint_eq(boundary_count(c.b), 0);
	boundary_free(c.b);
	event_base_free(base);
}

START_TEST(test_order_mono)
{
	order_test(BOUNDARY_MONO);
}
END_TEST

START_TEST(test_order_wall)
{
	order_test(BOUNDARY_WALL);
}
END_TEST

/* Moving a far timer near fires it at the near deadline. */
START_TEST(test_move_and_rearm)
{
	struct event_base	*base;
	struct ctx		 c;
	struct owner		 far, chain;
	int64_t			 start;

	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	memset(&c, 0, sizeof(c));
	c.b = boundary_new(base, BOUNDARY_MONO, fired_cb, &c);
	start = boundary_now(c.b);
	far.id = 1;
	timerheap_entry_init(&far.timer);
	far.deadline = start + 60000;
	boundary_schedule(c.b, &far.timer, far.deadline);
	far.deadline = start + 5;
	boundary_schedule(c.b, &far.timer, far.deadline);
	/* A callback that re-arms itself three times. */
	chain.id = 9;
	timerheap_entry_init(&chain.timer);
	chain.deadline = start + 1;
	c.rearm = 3;
	boundary_schedule(c.b, &chain.timer, chain.deadline);

	run(base);
	ck_assert_int_eq(c.n, 5);
	ck_assert_int_eq(c.rearm, 0);
	ck_assert_int_eq(c.order[0], 9);
	ck_assert_int_lt(boundary_now(c.b) - start, 60000);
	boundary_free(c.b);
	event_base_free(base);
}
END_TEST

struct crowd {
	struct boundary		*b;
	int			 fired;
	int			 last_id;
	bool			 ordered;
};

static void
crowd_cb(struct timerheap_entry *e, void *arg)
{
	struct crowd	*c = arg;
	struct owner	*o = timerheap_owner(e, struct owner, timer);

	if (o->id <= c->last_id)
		c->ordered = false;
	c->last_id = o->id;
	c->fired++;
}

/*
 * More entries due at once than a pass takes: each loop pass fires at
 * most BOUNDARY_PASS_MAX, earliest first, and the rest follow in the
 * next passes without waiting for anything else.
 */
START_TEST(test_crowd_in_passes)
{
	enum { N = 3 * BOUNDARY_PASS_MAX + 7 };
	struct event_base	*base;
	struct crowd		 c;
	struct owner		*o;
	int64_t			 now;
	int			 i, before, passes = 0, most = 0;

	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	memset(&c, 0, sizeof(c));
	c.last_id = -1;
	c.ordered = true;
	c.b = boundary_new(base, BOUNDARY_MONO, crowd_cb, &c);
	o = calloc(N, sizeof(*o));
	ck_assert_ptr_nonnull(o);
	now = boundary_now(c.b);
	/* All due at the same instant, scheduled in id order. */
	for (i = 0; i < N; i++) {
		o[i].id = i;
		timerheap_entry_init(&o[i].timer);
		boundary_schedule(c.b, &o[i].timer, now);
	}
	while (c.fired < N && passes < 100) {
		before = c.fired;
		ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE), 0);
		if (c.fired - before > most)
			most = c.fired - before;
		passes++;
	}
	ck_assert_int_eq(c.fired, N);
	ck_assert(c.ordered);
	ck_assert_int_eq(most, BOUNDARY_PASS_MAX);
	ck_assert_int_eq(passes, 4);
	ck_assert_uint_eq(boundary_count(c.b), 0);
	boundary_free(c.b);
	free(o);
	event_base_free(base);
}
END_TEST

/* Freeing with entries still scheduled fires nothing and unschedules. */
START_TEST(test_free_pending)
{
	struct event_base	*base;
	struct ctx		 c;
	struct owner		 o;

	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	memset(&c, 0, sizeof(c));
	c.b = boundary_new(base, BOUNDARY_MONO, fired_cb, &c);
	o.id = 1;
	timerheap_entry_init(&o.timer);
	o.deadline = boundary_now(c.b) + 100000;
	boundary_schedule(c.b, &o.timer, o.deadline);
	ck_assert(timerheap_scheduled(&o.timer));
	boundary_free(c.b);
	ck_assert(!timerheap_scheduled(&o.timer));
	ck_assert_int_eq(event_base_loop(base, EVLOOP_NONBLOCK), 1);
	ck_assert_int_eq(c.n, 0);
	event_base_free(base);
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("boundary");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_order_mono);
	tcase_add_test(tc, test_order_wall);
	tcase_add_test(tc, test_move_and_rearm);
	tcase_add_test(tc, test_free_pending);
	tcase_add_test(tc, test_crowd_in_passes);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
