/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the budget scheduler, with a fake clock and seeded
 * randomness, including a property test over random operation sequences.
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/backoff.h"
#include "base/json.h"
#include "io/throttle.h"
#include "base/xmalloc.h"

struct req {
	struct throttle_ticket	 tk;
	int			 id;
	enum throttle_class	 klass;
	const char		*anchor;
	unsigned		 grants;
	int64_t			 granted_at;
};

static struct throttle	*T;
static int64_t		 now;
static int		 order[256];
static unsigned		 norder;

static void
on_grant(struct throttle_ticket *tk, void *arg)
{
	struct req	*r = arg;

	ck_assert_ptr_eq(&r->tk, tk);
	ck_assert(throttle_ticket_granted(tk));
	r->grants++;
	r->granted_at = now;
	if (norder < sizeof(order) / sizeof(order[0]))
		order[norder++] = r->id;
}

static struct throttle *
mk(unsigned mc, unsigned share, enum conf_charging charging, unsigned spa)
{
	struct throttle_limits	l;

	throttle_limits_default(&l);
	l.max_concurrency = mc;
	l.short_request_share = share;
	l.charging = charging;
	l.streaming_connections_per_anchor = spa;
	l.busy_jitter_max_ms = 0;
	l.seed = 12345;
	norder = 0;
	now = 1000;
	return (throttle_new(&l));
}

static void
submit(struct req *r, int id, enum throttle_class c, const char *anchor,
    enum throttle_prio p)
{
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->klass = c;
	r->anchor = anchor;
	throttle_submit(T, &r->tk, c, anchor, p, on_grant, r);
}

static void
release(struct req *r, enum throttle_result res, int64_t ms)
{
	struct throttle_outcome	o = { res, ms };

	throttle_release(T, &r->tk, now, &o);
}

static unsigned
granted(struct req *v, unsigned n)
{
	unsigned	i, g = 0;

	for (i = 0; i < n; i++)
		if (throttle_ticket_granted(&v[i].tk))
			g++;
	return (g);
}

static void
verify(void)
{
	const char	*err = throttle_verify(T);

	ck_assert_msg(err == NULL, "invariant: %s", err);
}

START_TEST(test_reserve_table)
{
	static const struct {
		unsigned mc, share, reserve;
	} tab[] = {
		{ 27, 20, 6 }, { 27, 0, 1 }, { 10, 5, 1 }, { 10, 50, 5 },
		{ 2, 0, 1 }, { 2, 100, 1 }, { 10, 100, 9 }, { 1, 0, 0 },
		{ 1, 50, 1 }, { 3, 34, 2 }, { 100, 1, 1 },
	};
	struct throttle_limits	l;
	size_t			i;

	throttle_limits_default(&l);
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		l.max_concurrency = tab[i].mc;
		l.short_request_share = tab[i].share;
		ck_assert_msg(throttle_limits_short_reserve(&l) ==
		    tab[i].reserve, "mc %u share %u: got %u want %u",
		    tab[i].mc, tab[i].share,
		    throttle_limits_short_reserve(&l), tab[i].reserve);
	}
}
END_TEST

START_TEST(test_limits_from_conf)
{
	struct config		 cf;
	struct throttle_limits	 l;
	struct throttle_stats	 st;

	memset(&cf, 0, sizeof(cf));
	cf.throttling.max_concurrency = 12;
	cf.throttling.max_subscriptions = 300;
	cf.throttling.charging = CONF_CHARGING_SERVICE_ACCOUNT;
	cf.throttling.streaming_connections_per_anchor = 3;
	cf.throttling.short_request_share = 40;
	cf.throttling.backoff_max_ms = 90000;
	l.seed = 77;
	throttle_limits_from_conf(&l, &cf);
	ck_assert_uint_eq(l.max_concurrency, 12);
	ck_assert_uint_eq(l.max_subscriptions, 300);
	ck_assert_int_eq(l.charging, CONF_CHARGING_SERVICE_ACCOUNT);
	ck_assert_uint_eq(l.streaming_connections_per_anchor, 3);
	ck_assert_uint_eq(l.short_request_share, 40);
	ck_assert_int_eq(l.backoff_max_ms, 90000);
	ck_assert_uint_eq(l.seed, 77);
	ck_assert_uint_eq(throttle_limits_short_reserve(&l), 5);
	/* Zero (unset) values become usable ones in the scheduler. */
	memset(&cf, 0, sizeof(cf));
	throttle_limits_from_conf(&l, &cf);
	T = throttle_new(&l);
	/* Service-account charging (0), one slot, no reserve: one stream. */
	ck_assert_uint_eq(throttle_streams_total(T), 1);
	throttle_stats(T, 0, &st);
	ck_assert_uint_eq(st.concurrency_limit, 1);
	ck_assert_uint_eq(st.per_anchor_limit, 1);
	throttle_free(T);
}
END_TEST

START_TEST(test_concurrency_cap)
{
	struct req	r[20];
	unsigned	i;

	T = mk(5, 20, CONF_CHARGING_IMPERSONATED, 10);
	for (i = 0; i < 20; i++)
		submit(&r[i], (int)i, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_NORMAL);
	/* Nothing is granted outside throttle_run. */
	ck_assert_uint_eq(granted(r, 20), 0);
	ck_assert_int_eq(throttle_next_wakeup(T, now), now);
	ck_assert_uint_eq(throttle_run(T, now), 5);
	ck_assert_uint_eq(granted(r, 20), 5);
	verify();
	/* Full: no wake-up needed until something is released. */
	ck_assert_int_eq(throttle_next_wakeup(T, now), THROTTLE_NEVER);
	ck_assert_uint_eq(throttle_run(T, now), 0);
	release(&r[2], THROTTLE_OK, 0);
	ck_assert_int_eq(throttle_next_wakeup(T, now), now);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert_uint_eq(granted(r, 20), 5);
	ck_assert(throttle_ticket_granted(&r[5].tk));
	/* Grants in submit order. */
	for (i = 0; i < norder; i++)
		ck_assert_int_eq(order[i], (int)i);
	while (norder < 20) {
		for (i = 0; i < 20; i++)
			if (throttle_ticket_granted(&r[i].tk))
				release(&r[i], THROTTLE_OK, 0);
		throttle_run(T, now);
		verify();
		ck_assert_uint_le(granted(r, 20), 5);
	}
	for (i = 0; i < 20; i++) {
		ck_assert_int_eq(order[i], (int)i);
		ck_assert_uint_eq(r[i].grants, 1);
	}
	throttle_free(T);
}
END_TEST

START_TEST(test_short_reserve)
{
	struct req			s[10], st[20];
	struct throttle_capacity	cap;
	unsigned			i, k;

	/* 10 slots, 20 % kept for short requests: 8 for streams. */
	T = mk(10, 20, CONF_CHARGING_SERVICE_ACCOUNT, 10);
	ck_assert_uint_eq(throttle_streams_total(T), 8);
	throttle_stream_capacity(T, "ignored", &cap);
	ck_assert_uint_eq(cap.limit, 8);
	ck_assert_uint_eq(cap.free_now, 8);
	ck_assert_uint_eq(cap.available, 8);
	for (i = 0; i < 20; i++)
		submit(&st[i], (int)i, THROTTLE_STREAM, "a@x",
		    THROTTLE_PRIO_NORMAL);
	throttle_run(T, now);
	ck_assert_uint_eq(granted(st, 20), 8);
	throttle_stream_capacity(T, NULL, &cap);
	ck_assert_uint_eq(cap.in_use, 8);
	ck_assert_uint_eq(cap.queued, 12);
	ck_assert_uint_eq(cap.free_now, 0);
	ck_assert_uint_eq(cap.available, 0);
	/* Short requests still flow through the reserved slots. */
	for (i = 0; i < 10; i++)
		submit(&s[i], 100 + (int)i, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_LOW);
	throttle_run(T, now);
	ck_assert_uint_eq(granted(s, 10), 2);
	ck_assert_uint_eq(granted(st, 20), 8);
	/* Two at a time, all the way through, streams untouched. */
	for (k = 0; k < 5; k++) {
		ck_assert_uint_eq(granted(s, 10), 2);
		ck_assert(throttle_ticket_granted(&s[2 * k].tk));
		ck_assert(throttle_ticket_granted(&s[2 * k + 1].tk));
		release(&s[2 * k], THROTTLE_OK, 0);
		release(&s[2 * k + 1], THROTTLE_OK, 0);
		ck_assert_uint_eq(throttle_run(T, now), k < 4 ? 2 : 0);
		ck_assert_uint_eq(granted(st, 20), 8);
		verify();
	}
	/* A stream ending frees a stream slot, not a short one. */
	release(&st[0], THROTTLE_DONE, 0);
	throttle_run(T, now);
	ck_assert_uint_eq(granted(st, 20), 8);
	ck_assert(throttle_ticket_granted(&st[8].tk));
	for (i = 0; i < 20; i++)
		throttle_cancel(T, &st[i].tk);
	for (i = 0; i < 10; i++)
		throttle_cancel(T, &s[i].tk);
	verify();
	throttle_free(T);

	/* Short requests may borrow unused stream slots... */
	T = mk(4, 25, CONF_CHARGING_SERVICE_ACCOUNT, 10);
	for (i = 0; i < 4; i++)
		submit(&s[i], (int)i, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_NORMAL);
	throttle_run(T, now);
	ck_assert_uint_eq(granted(s, 4), 4);
	submit(&st[0], 50, THROTTLE_STREAM, NULL, THROTTLE_PRIO_HIGH);
	ck_assert_uint_eq(throttle_run(T, now), 0);
	ck_assert(!throttle_ticket_granted(&st[0].tk));
	/* ...and a stream gets the next free slot beyond the reserve. */
	release(&s[0], THROTTLE_OK, 0);
	throttle_run(T, now);
	ck_assert(throttle_ticket_granted(&st[0].tk));
	verify();
	throttle_free(T);
}
END_TEST

START_TEST(test_server_busy)
{
	struct req			s[6], a, b;
	struct throttle_capacity	cap;
	unsigned			i;

	T = mk(3, 20, CONF_CHARGING_IMPERSONATED, 2);
	for (i = 0; i < 3; i++)
		submit(&s[i], (int)i, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_NORMAL);
	throttle_run(T, now);
	ck_assert_uint_eq(granted(s, 3), 3);
	for (i = 3; i < 6; i++)
		submit(&s[i], (int)i, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_NORMAL);
	release(&s[0], THROTTLE_BUSY, 5000);
	release(&s[1], THROTTLE_OK, 0);
	release(&s[2], THROTTLE_OK, 0);
	ck_assert_uint_eq(throttle_run(T, now), 0);
	ck_assert_int_eq(throttle_next_wakeup(T, now), 6000);
	/* Another budget is not affected. */
	submit(&a, 10, THROTTLE_STREAM, "anchor@x", THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert(throttle_ticket_granted(&a.tk));
	ck_assert_int_eq(throttle_next_wakeup(T, now), 6000);
	now = 5999;
	ck_assert_uint_eq(throttle_run(T, now), 0);
	now = 6000;
	ck_assert_uint_eq(throttle_run(T, now), 3);
	ck_assert_uint_eq(granted(s, 6), 3);
	verify();
	for (i = 3; i < 6; i++)
		release(&s[i], THROTTLE_OK, 0);

	/* A stream budget told to back off blocks only that anchor. */
	release(&a, THROTTLE_BUSY, 2000);
	submit(&a, 11, THROTTLE_STREAM, "anchor@x", THROTTLE_PRIO_NORMAL);
	submit(&b, 12, THROTTLE_STREAM, "other@x", THROTTLE_PRIO_NORMAL);
	submit(&s[0], 13, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 2);
	ck_assert(!throttle_ticket_granted(&a.tk));
	throttle_stream_capacity(T, "anchor@x", &cap);
	ck_assert_int_eq(cap.backoff_until, 8000);
	ck_assert_int_eq(throttle_next_wakeup(T, now), 8000);
	now = 8000;
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert(throttle_ticket_granted(&a.tk));
	verify();

	/* A back-off with nothing waiting needs no wake-up... */
	release(&s[0], THROTTLE_BUSY, 1000);
	ck_assert_uint_eq(throttle_run(T, now), 0);
	ck_assert_int_eq(throttle_next_wakeup(T, now), THROTTLE_NEVER);
	/* ...until something is submitted to that budget. */
	now = 8500;
	submit(&s[1], 14, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 0);
	ck_assert_int_eq(throttle_next_wakeup(T, now), 9000);
	now = 9000;
	ck_assert_uint_eq(throttle_run(T, now), 1);
	verify();
	throttle_free(T);
}
END_TEST

/* With jitter the wake-up time is the exact end of the back-off. */
START_TEST(test_server_busy_jitter)
{
	struct throttle_limits	l;
	struct req		s[2];
	int64_t			w;
	unsigned		run;

	for (run = 0; run < 20; run++) {
		throttle_limits_default(&l);
		l.max_concurrency = 1;
		l.seed = run;
		T = throttle_new(&l);
		now = 0;
		submit(&s[0], 0, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
		throttle_run(T, now);
		submit(&s[1], 1, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
		release(&s[0], THROTTLE_BUSY, 4000);
		throttle_run(T, now);
		w = throttle_next_wakeup(T, now);
		ck_assert_int_ge(w, 4000);
		ck_assert_int_le(w, 4400);
		now = w - 1;
		ck_assert_uint_eq(throttle_run(T, now), 0);
		now = w;
		ck_assert_uint_eq(throttle_run(T, now), 1);
		throttle_free(T);
	}
}
END_TEST

/* Nonsense from the server neither overflows nor blocks for ever. */
START_TEST(test_server_busy_bounds)
{
	struct req	s[2];

	T = mk(1, 20, CONF_CHARGING_IMPERSONATED, 2);
	now = 0;
	submit(&s[0], 0, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	throttle_run(T, now);
	submit(&s[1], 1, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	release(&s[0], THROTTLE_BUSY, INT64_MAX);
	throttle_run(T, now);
	ck_assert_int_eq(throttle_next_wakeup(T, now), 3600 * 1000);
	now = 3600 * 1000;
	ck_assert_uint_eq(throttle_run(T, now), 1);
	/* No or a negative time: an exponential back-off from the base. */
	submit(&s[0], 2, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	release(&s[1], THROTTLE_BUSY, -5);
	throttle_run(T, now);
	ck_assert_int_ge(throttle_next_wakeup(T, now), now + 1000);
	ck_assert_int_le(throttle_next_wakeup(T, now), now + 3000);
	verify();
	throttle_free(T);
}
END_TEST

START_TEST(test_exponential)
{
	struct throttle_limits	l;
	struct throttle_stats	st;
	struct req		r[3], *cur, *nxt, *tmp;
	int64_t			d, prev = 1000;
	unsigned		i, at_cap = 0;

	throttle_limits_default(&l);
	l.max_concurrency = 3;
	l.backoff_base_ms = 1000;
	l.backoff_max_ms = 8000;
	T = throttle_new(&l);
	now = 0;
	cur = &r[0];
	nxt = &r[1];
	submit(cur, 0, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	for (i = 0; i < 30; i++) {
		release(cur, THROTTLE_TRANSIENT, 0);
		submit(nxt, (int)i + 1, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_NORMAL);
		ck_assert_uint_eq(throttle_run(T, now), 0);
		d = throttle_next_wakeup(T, now) - now;
		ck_assert_int_ge(d, 1000);
		ck_assert_int_le(d, 8000);
		ck_assert_int_le(d, prev * 3);
		if (d == 8000)
			at_cap++;
		prev = d;
		/* Nothing before the end, the waiting one right at it. */
		ck_assert_uint_eq(throttle_run(T, now + d - 1), 0);
		now += d;
		ck_assert_uint_eq(throttle_run(T, now), 1);
		ck_assert(throttle_ticket_granted(&nxt->tk));
		tmp = cur;
		cur = nxt;
		nxt = tmp;
	}
	ck_assert_uint_gt(at_cap, 0);
	throttle_stats(T, now, &st);
	ck_assert_uint_eq(st.backoffs, 30);

	/* Success resets: the next failure starts from the base again. */
	release(cur, THROTTLE_OK, 0);
	submit(cur, 201, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	release(cur, THROTTLE_TRANSIENT, 0);
	submit(nxt, 202, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 0);
	d = throttle_next_wakeup(T, now) - now;
	ck_assert_int_ge(d, 1000);
	ck_assert_int_le(d, 3000);
	now += d;
	throttle_run(T, now);
	ck_assert(throttle_ticket_granted(&nxt->tk));
	release(nxt, THROTTLE_OK, 0);

	/* Requests in flight together failing together escalate once. */
	throttle_stats(T, now, &st);
	prev = (int64_t)st.backoffs;
	for (i = 0; i < 3; i++)
		submit(&r[i], (int)i, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 3);
	for (i = 0; i < 3; i++)
		release(&r[i], THROTTLE_TRANSIENT, 0);
	throttle_stats(T, now, &st);
	ck_assert_uint_eq(st.backoffs, (uint64_t)prev + 1);
	verify();
	throttle_free(T);
}
END_TEST

START_TEST(test_impersonated_streams)
{
	struct req			a[3], b[3], sa, s[3];
	struct throttle_capacity	cap;
	struct throttle_stats		st;
	int				i;

	T = mk(3, 20, CONF_CHARGING_IMPERSONATED, 2);
	ck_assert_uint_eq(throttle_streams_total(T), THROTTLE_UNLIMITED);
	for (i = 0; i < 3; i++) {
		submit(&a[i], i, THROTTLE_STREAM, "a@x", THROTTLE_PRIO_NORMAL);
		submit(&b[i], 10 + i, THROTTLE_STREAM, "b@x",
		    THROTTLE_PRIO_NORMAL);
		submit(&s[i], 20 + i, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_NORMAL);
	}
	submit(&sa, 30, THROTTLE_STREAM, NULL, THROTTLE_PRIO_NORMAL);
	/* 2 + 2 + 1 streams and 3 shorts: streams do not use the SA slots. */
	ck_assert_uint_eq(throttle_run(T, now), 8);
	ck_assert_uint_eq(granted(a, 3), 2);
	ck_assert_uint_eq(granted(b, 3), 2);
	ck_assert_uint_eq(granted(s, 3), 3);
	ck_assert(throttle_ticket_granted(&sa.tk));
	throttle_stats(T, now, &st);
	ck_assert_uint_eq(st.concurrency_in_use, 3);
	ck_assert_uint_eq(st.in_use[THROTTLE_STREAM], 5);
	ck_assert_uint_eq(st.budgets, 3);
	throttle_stream_capacity(T, "a@x", &cap);
	ck_assert_uint_eq(cap.limit, 2);
	ck_assert_uint_eq(cap.in_use, 2);
	ck_assert_uint_eq(cap.queued, 1);
	ck_assert_uint_eq(cap.free_now, 0);
	ck_assert_uint_eq(cap.available, 0);
	throttle_stream_capacity(T, NULL, &cap);
	ck_assert_uint_eq(cap.in_use, 1);
	ck_assert_uint_eq(cap.free_now, 1);
	ck_assert_uint_eq(cap.available, 1);
	throttle_stream_capacity(T, "new@x", &cap);
	ck_assert_uint_eq(cap.limit, 2);
	ck_assert_uint_eq(cap.available, 2);
	release(&a[0], THROTTLE_OK, 0);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert(throttle_ticket_granted(&a[2].tk));
	verify();
	/* Idle streaming budgets are freed. */
	throttle_cancel(T, &a[1].tk);
	throttle_cancel(T, &a[2].tk);
	throttle_run(T, now);
	throttle_stats(T, now, &st);
	ck_assert_uint_eq(st.budgets, 2);
	verify();
	throttle_free(T);
}
END_TEST

START_TEST(test_subscriptions)
{
	struct throttle_limits	l;
	char			(*key)[32], *m1a, *m1b;
	int			i;

	T = mk(3, 20, CONF_CHARGING_SERVICE_ACCOUNT, 2);
	throttle_limits_default(&l);
	l.charging = CONF_CHARGING_SERVICE_ACCOUNT;
	l.max_subscriptions = 3;
	throttle_set_limits(T, &l);
	ck_assert_int_eq(throttle_subscription_acquire(T, "a"), 0);
	ck_assert_int_eq(throttle_subscription_acquire(T, "b"), 0);
	ck_assert_int_eq(throttle_subscription_acquire(T, "c"), 0);
	ck_assert_int_eq(throttle_subscription_acquire(T, "d"), -1);
	ck_assert_uint_eq(throttle_subscriptions(T, NULL), 3);
	ck_assert_uint_eq(throttle_subscriptions(T, "d"), 0);
	throttle_subscription_release(T, "b");
	throttle_subscription_release(T, "never");
	ck_assert_uint_eq(throttle_subscriptions(T, NULL), 2);
	ck_assert_int_eq(throttle_subscription_acquire(T, "d"), 0);
	ck_assert_int_eq(throttle_subscription_acquire(T, "e"), -1);
	/* A smaller limit at reload: no new ones until below it. */
	l.max_subscriptions = 2;
	throttle_set_limits(T, &l);
	throttle_subscription_release(T, "a");
	ck_assert_int_eq(throttle_subscription_acquire(T, "e"), -1);
	throttle_subscription_release(T, "c");
	ck_assert_int_eq(throttle_subscription_acquire(T, "e"), 0);
	ck_assert_uint_eq(throttle_subscriptions(T, NULL), 2);
	throttle_free(T);

	/* Impersonated: the limit is per target mailbox. */
	T = mk(3, 20, CONF_CHARGING_IMPERSONATED, 2);
	throttle_limits_default(&l);
	l.max_subscriptions = 2;
	throttle_set_limits(T, &l);
	/* Each holder's address is borrowed while it holds one. */
	key = calloc(1000, sizeof(*key));
	ck_assert_ptr_nonnull(key);
	for (i = 0; i < 1000; i++) {
		snprintf(key[i], sizeof(key[i]), "m%d", i);
		ck_assert_int_eq(throttle_subscription_acquire(T, key[i]), 0);
	}
	ck_assert_int_eq(throttle_subscription_acquire(T, "m1"), 0);
	ck_assert_int_eq(throttle_subscription_acquire(T, "m1"), -1);
	ck_assert_uint_eq(throttle_subscriptions(T, "m1"), 2);
	ck_assert_uint_eq(throttle_subscriptions(T, NULL), 1001);
	throttle_subscription_release(T, "m1");
	ck_assert_uint_eq(throttle_subscriptions(T, "m1"), 1);
	ck_assert_int_eq(throttle_subscription_acquire(T, "m1"), 0);
	/* Two holders of one address, the first gone (its string freed
	 * and overwritten) before the second releases: the count stays
	 * right and nothing reads the first's string (valgrind, ASan). */
	m1a = strdup("m2000");
	m1b = strdup("m2000");
	ck_assert_ptr_nonnull(m1a);
	ck_assert_ptr_nonnull(m1b);
	ck_assert_int_eq(throttle_subscription_acquire(T, m1a), 0);
	ck_assert_int_eq(throttle_subscription_acquire(T, m1b), 0);
	ck_assert_int_eq(throttle_subscription_acquire(T, "m2000"), -1);
	throttle_subscription_release(T, m1a);
	memset(m1a, 'x', 5);
	free(m1a);
	ck_assert_uint_eq(throttle_subscriptions(T, "m2000"), 1);
	ck_assert_int_eq(throttle_subscription_acquire(T, "m2000"), 0);
	throttle_subscription_release(T, "m2000");
	throttle_subscription_release(T, m1b);
	ck_assert_uint_eq(throttle_subscriptions(T, "m2000"), 0);
	throttle_subscription_release(T, m1b);
	ck_assert_uint_eq(throttle_subscriptions(T, NULL), 1001);
	/* One holder: released and freed, then a new holder. */
	throttle_subscription_release(T, key[7]);
	memset(key[7], 'x', 2);
	ck_assert_uint_eq(throttle_subscriptions(T, "m7"), 0);
	free(m1b);
	/* 0: no client-side cap at all. */
	l.max_subscriptions = 0;
	throttle_set_limits(T, &l);
	for (i = 0; i < 50; i++)
		ck_assert_int_eq(throttle_subscription_acquire(T, "m1"), 0);
	ck_assert_uint_eq(throttle_subscriptions(T, "m1"), 52);
	throttle_free(T);
	free(key);
}
END_TEST

static struct req	*cancel_victim;

static void
on_grant_cancel_other(struct throttle_ticket *tk, void *arg)
{
	on_grant(tk, arg);
	throttle_cancel(T, &cancel_victim->tk);
}

START_TEST(test_cancel)
{
	struct req	r[5];
	unsigned	i;

	T = mk(1, 20, CONF_CHARGING_IMPERSONATED, 2);
	for (i = 0; i < 4; i++)
		submit(&r[i], (int)i, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_NORMAL);
	throttle_cancel(T, &r[0].tk);
	ck_assert(!throttle_ticket_queued(&r[0].tk));
	throttle_cancel(T, &r[0].tk);	/* idle: no effect */
	throttle_run(T, now);
	ck_assert(throttle_ticket_granted(&r[1].tk));
	ck_assert_uint_eq(r[0].grants, 0);
	/* Cancelling a granted ticket gives the slot back. */
	throttle_cancel(T, &r[1].tk);
	ck_assert(!throttle_ticket_granted(&r[1].tk));
	verify();
	/* A grant callback cancelling another queued ticket. */
	throttle_cancel(T, &r[2].tk);
	memset(&r[2], 0, sizeof(r[2]));
	r[2].id = 2;
	throttle_submit(T, &r[2].tk, THROTTLE_SHORT, NULL, THROTTLE_PRIO_HIGH,
	    on_grant_cancel_other, &r[2]);
	cancel_victim = &r[3];
	throttle_run(T, now);
	ck_assert(throttle_ticket_granted(&r[2].tk));
	ck_assert(!throttle_ticket_queued(&r[3].tk));
	release(&r[2], THROTTLE_OK, 0);
	ck_assert_uint_eq(throttle_run(T, now), 0);
	ck_assert_uint_eq(r[3].grants, 0);
	verify();
	/* A ticket is reusable; free detaches what is left. */
	submit(&r[4], 4, THROTTLE_STREAM, "z@x", THROTTLE_PRIO_NORMAL);
	submit(&r[0], 0, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	throttle_run(T, now);
	submit(&r[1], 1, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	throttle_free(T);
	ck_assert(!throttle_ticket_granted(&r[0].tk));
	ck_assert(!throttle_ticket_queued(&r[1].tk));
	ck_assert(!throttle_ticket_granted(&r[4].tk));
}
END_TEST

START_TEST(test_slot_busy)
{
	struct throttle_stats	 st;
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;
	struct json_value	*v;
	struct req		 r[4];
	char			*cause = NULL;

	/* Streams hold account slots here, but only short ones count. */
	T = mk(4, 50, CONF_CHARGING_SERVICE_ACCOUNT, 2);
	submit(&r[0], 0, THROTTLE_STREAM, NULL, THROTTLE_PRIO_NORMAL);
	submit(&r[1], 1, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	submit(&r[2], 2, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	throttle_stats(T, now, &st);
	ck_assert_uint_eq(st.slot_busy_ms, 0);
	ck_assert_uint_eq(throttle_run(T, now), 3);
	now += 20;			/* two short slots for 20 ms */
	release(&r[1], THROTTLE_OK, 0);
	now += 10;			/* one for 10 ms */
	throttle_stats(T, now, &st);
	ck_assert_uint_eq(st.slot_busy_ms, 50);
	/* Status does not move the count on: asking twice is the same. */
	throttle_stats(T, now, &st);
	ck_assert_uint_eq(st.slot_busy_ms, 50);
	throttle_run(T, now);
	now += 5;
	/* A cancelled grant counts up to the last run (now - 5). */
	throttle_cancel(T, &r[2].tk);
	throttle_stats(T, now + 100, &st);
	ck_assert_uint_eq(st.slot_busy_ms, 50);
	/* A new short request after idle time adds only its own. */
	now += 1000;
	submit(&r[3], 3, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	throttle_run(T, now);
	now += 7;
	release(&r[3], THROTTLE_OK, 0);
	throttle_stats(T, now + 50, &st);
	ck_assert_uint_eq(st.slot_busy_ms, 57);
	json_writer_init(&w, &b);
	throttle_json(T, now, &w);
	v = json_parse(b.data, b.len, &cause);
	ck_assert_msg(v != NULL, "%s: %s", cause, b.data);
	ck_assert_int_eq(json_get_num(v, "slot_busy_ms", -1), 57);
	json_free(v);
	buf_reset(&b);
	throttle_prometheus(T, now, &b);
	ck_assert_ptr_nonnull(strstr(buf_str(&b),
	    "\newsgw_throttle_slot_busy_seconds_total 0.057\n"));
	buf_free(&b);
	release(&r[0], THROTTLE_OK, 0);
	verify();
	throttle_free(T);
}
END_TEST

START_TEST(test_shrink)
{
	struct throttle_limits		l;
	struct throttle_capacity	cap;
	struct req			st[10], s[3], a[4];
	unsigned			i;

	T = mk(10, 20, CONF_CHARGING_SERVICE_ACCOUNT, 4);
	for (i = 0; i < 10; i++)
		submit(&st[i], (int)i, THROTTLE_STREAM, NULL,
		    THROTTLE_PRIO_NORMAL);
	throttle_run(T, now);
	ck_assert_uint_eq(granted(st, 10), 8);
	throttle_limits_default(&l);
	l.charging = CONF_CHARGING_SERVICE_ACCOUNT;
	l.max_concurrency = 5;		/* reserve 1: 4 stream slots */
	l.short_request_share = 20;
	ck_assert_uint_eq(throttle_set_limits(T, &l), 4);
	throttle_stream_capacity(T, NULL, &cap);
	ck_assert_uint_eq(cap.limit, 4);
	ck_assert_uint_eq(cap.excess, 4);
	ck_assert_uint_eq(cap.free_now, 0);
	for (i = 0; i < 3; i++)
		submit(&s[i], 20 + (int)i, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_NORMAL);
	/* 8 in use, limit 5: nothing until enough streams close. */
	ck_assert_uint_eq(throttle_run(T, now), 0);
	for (i = 0; i < 3; i++) {
		release(&st[i], THROTTLE_DONE, 0);
		ck_assert_uint_eq(throttle_run(T, now), 0);
	}
	release(&st[3], THROTTLE_DONE, 0);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert_uint_eq(granted(s, 3), 1);
	ck_assert_uint_eq(granted(st, 10), 4);
	verify();
	for (i = 0; i < 10; i++)
		throttle_cancel(T, &st[i].tk);
	for (i = 0; i < 3; i++)
		throttle_cancel(T, &s[i].tk);
	throttle_free(T);

	/* Per-anchor limit shrinking under impersonation. */
	T = mk(10, 20, CONF_CHARGING_IMPERSONATED, 4);
	for (i = 0; i < 4; i++)
		submit(&a[i], (int)i, THROTTLE_STREAM, "a@x",
		    THROTTLE_PRIO_NORMAL);
	throttle_run(T, now);
	ck_assert_uint_eq(granted(a, 4), 4);
	throttle_limits_default(&l);
	l.streaming_connections_per_anchor = 3;
	ck_assert_uint_eq(throttle_set_limits(T, &l), 1);
	throttle_stream_capacity(T, "a@x", &cap);
	ck_assert_uint_eq(cap.excess, 1);
	release(&a[0], THROTTLE_OK, 0);
	submit(&a[0], 9, THROTTLE_STREAM, "a@x", THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 0);
	release(&a[1], THROTTLE_OK, 0);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	/* Growing limits let waiting tickets through. */
	submit(&a[1], 10, THROTTLE_STREAM, "a@x", THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 0);
	l.streaming_connections_per_anchor = 4;
	ck_assert_uint_eq(throttle_set_limits(T, &l), 0);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	verify();
	throttle_free(T);
}
END_TEST

START_TEST(test_charging_change)
{
	struct throttle_limits	l;
	struct req		st[6];
	unsigned		i;

	/* Service account with room for one stream only. */
	T = mk(2, 50, CONF_CHARGING_SERVICE_ACCOUNT, 10);
	for (i = 0; i < 6; i++)
		submit(&st[i], (int)i, THROTTLE_STREAM, NULL,
		    i % 2 ? THROTTLE_PRIO_HIGH : THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert(throttle_ticket_granted(&st[1].tk));
	/* Switching to impersonated charging moves the waiting streams. */
	throttle_limits_default(&l);
	l.streaming_connections_per_anchor = 3;
	ck_assert_uint_eq(throttle_set_limits(T, &l), 1);
	verify();
	ck_assert_uint_eq(throttle_run(T, now), 3);
	ck_assert(throttle_ticket_granted(&st[3].tk));
	ck_assert(throttle_ticket_granted(&st[5].tk));
	ck_assert(throttle_ticket_granted(&st[0].tk));
	verify();
	release(&st[1], THROTTLE_OK, 0);
	verify();
	/* And back. */
	l.charging = CONF_CHARGING_SERVICE_ACCOUNT;
	l.max_concurrency = 10;
	ck_assert_uint_eq(throttle_set_limits(T, &l), 3);
	ck_assert_uint_eq(throttle_run(T, now), 2);
	verify();
	throttle_free(T);
}
END_TEST

START_TEST(test_priority_fifo)
{
	struct req	hold, r[7];
	static const int want[] = { 2, 3, 5, 1, 4, 6, 0 };
	unsigned	i;

	T = mk(1, 20, CONF_CHARGING_IMPERSONATED, 2);
	submit(&hold, 99, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	throttle_run(T, now);
	submit(&r[0], 0, THROTTLE_SHORT, NULL, THROTTLE_PRIO_LOW);
	submit(&r[1], 1, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	submit(&r[2], 2, THROTTLE_SHORT, NULL, THROTTLE_PRIO_HIGH);
	submit(&r[3], 3, THROTTLE_SHORT, NULL, THROTTLE_PRIO_HIGH);
	submit(&r[4], 4, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	submit(&r[5], 5, THROTTLE_SHORT, NULL, THROTTLE_PRIO_HIGH);
	submit(&r[6], 6, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	norder = 0;
	release(&hold, THROTTLE_OK, 0);
	for (i = 0; i < 7; i++) {
		ck_assert_uint_eq(throttle_run(T, now), 1);
		ck_assert_int_eq(order[i], want[i]);
		release(&r[want[i]], THROTTLE_OK, 0);
		verify();
	}
	throttle_free(T);

	/* Across classes on one budget: oldest first within a priority. */
	T = mk(3, 34, CONF_CHARGING_SERVICE_ACCOUNT, 2);
	submit(&hold, 99, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	submit(&r[6], 98, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	submit(&r[5], 97, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	throttle_run(T, now);
	submit(&r[0], 0, THROTTLE_STREAM, NULL, THROTTLE_PRIO_NORMAL);
	submit(&r[1], 1, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	submit(&r[2], 2, THROTTLE_STREAM, NULL, THROTTLE_PRIO_NORMAL);
	norder = 0;
	release(&hold, THROTTLE_OK, 0);
	throttle_run(T, now);
	ck_assert_int_eq(order[0], 0);
	release(&r[6], THROTTLE_OK, 0);
	throttle_run(T, now);
	/* The second stream would exceed the stream share: short goes. */
	ck_assert_int_eq(order[1], 1);
	ck_assert_uint_eq(norder, 2);
	for (i = 0; i < 7; i++)
		throttle_cancel(T, &r[i].tk);
	throttle_free(T);
}
END_TEST

static int	resubmits;

/* A callback that finishes at once and asks again. */
static void
on_grant_again(struct throttle_ticket *tk, void *arg)
{
	struct throttle_outcome	o = { THROTTLE_OK, 0 };

	on_grant(tk, arg);
	throttle_release(T, tk, now, &o);
	if (resubmits-- > 0)
		throttle_submit(T, tk, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_HIGH, on_grant_again, arg);
}

START_TEST(test_next_wakeup)
{
	struct throttle_limits	l;
	struct req		r[5];
	unsigned		i, runs;

	T = mk(2, 20, CONF_CHARGING_IMPERSONATED, 2);
	ck_assert_int_eq(throttle_next_wakeup(T, now), THROTTLE_NEVER);
	ck_assert_uint_eq(throttle_run(T, now), 0);
	/* A callback resubmitting does not keep one run going forever. */
	resubmits = 1000;
	memset(&r[0], 0, sizeof(r[0]));
	throttle_submit(T, &r[0].tk, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL,
	    on_grant_again, &r[0]);
	for (runs = 0; runs < 2000 && resubmits >= 0; runs++) {
		ck_assert_int_eq(throttle_next_wakeup(T, now), now);
		ck_assert_uint_eq(throttle_run(T, now), 1);
	}
	ck_assert_uint_eq(r[0].grants, 1001);
	throttle_run(T, now);
	ck_assert_int_eq(throttle_next_wakeup(T, now), THROTTLE_NEVER);
	verify();
	throttle_free(T);

	/* Start-up ramp: grants at least 100 ms apart. */
	throttle_limits_default(&l);
	l.max_concurrency = 10;
	l.grant_separation_ms = 100;
	T = throttle_new(&l);
	now = 0;
	for (i = 0; i < 5; i++)
		submit(&r[i], (int)i, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_NORMAL);
	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(throttle_next_wakeup(T, now), now);
		ck_assert_uint_eq(throttle_run(T, now), 1);
		ck_assert_uint_eq(granted(r, 5), i + 1);
		if (i < 4) {
			ck_assert_int_eq(throttle_next_wakeup(T, now),
			    now + 100);
			ck_assert_uint_eq(throttle_run(T, now + 99), 0);
		}
		now += 100;
	}
	verify();
	throttle_free(T);
}
END_TEST

/* 100,000 queued tickets drain through 27 slots. */
static struct req	*inflight[64];
static unsigned		 ninflight;

static void
on_grant_track(struct throttle_ticket *tk, void *arg)
{
	struct req	*r = arg;

	r->grants++;
	ck_assert_uint_lt(ninflight, 64);
	inflight[ninflight++] = r;
}

START_TEST(test_scale)
{
	struct throttle_stats	 st;
	struct req		*r;
	unsigned		 i, n = 100000, done = 0, rounds = 0;
	char			 anchor[32];

	r = xcalloc(n, sizeof(*r));
	T = mk(27, 20, CONF_CHARGING_IMPERSONATED, 10);
	for (i = 0; i < n; i++) {
		r[i].id = (int)i;
		throttle_submit(T, &r[i].tk, THROTTLE_SHORT, NULL,
		    i % 3 == 0 ? THROTTLE_PRIO_LOW : THROTTLE_PRIO_NORMAL,
		    on_grant_track, &r[i]);
	}
	ninflight = 0;
	while (done < n) {
		ck_assert_uint_eq(throttle_run(T, now), n - done < 27 ?
		    n - done : 27);
		/* Low priority only once every normal one went through. */
		for (i = 0; i < ninflight; i++) {
			if (done + i < n - n / 3 - 1)
				ck_assert_int_ne(inflight[i]->id % 3, 0);
			release(inflight[i], THROTTLE_OK, 0);
		}
		done += ninflight;
		ninflight = 0;
		ck_assert_uint_lt(++rounds, n);
	}
	for (i = 0; i < n; i++)
		ck_assert_uint_eq(r[i].grants, 1);
	verify();
	throttle_free(T);

	/* 20,000 anchors, one stream each, then all gone. */
	T = mk(27, 20, CONF_CHARGING_IMPERSONATED, 10);
	for (i = 0; i < 20000; i++) {
		snprintf(anchor, sizeof(anchor), "anchor%u@x", i);
		submit(&r[i], (int)i, THROTTLE_STREAM, anchor,
		    THROTTLE_PRIO_NORMAL);
	}
	ck_assert_uint_eq(throttle_run(T, now), 20000);
	throttle_stats(T, now, &st);
	ck_assert_uint_eq(st.budgets, 20000);
	verify();
	for (i = 0; i < 20000; i++)
		release(&r[i], THROTTLE_OK, 0);
	throttle_run(T, now);
	throttle_stats(T, now, &st);
	ck_assert_uint_eq(st.budgets, 0);
	throttle_free(T);
	free(r);
}
END_TEST

/*
 * Property test: random submit/release/cancel/time/limit changes; after
 * every step the invariants hold, and every grant respects the limits
 * and back-offs in force at that moment.
 */
#define P_REQS		400
#define P_ANCHORS	6

static struct throttle_limits	 plim;
static struct req		 preq[P_REQS];
static const char		*panchors[P_ANCHORS] = {
	"a0@x", "a1@x", "a2@x", "a3@x", "a4@x", NULL
};

static void
p_on_grant(struct throttle_ticket *tk, void *arg)
{
	struct req			*r = arg;
	struct throttle_capacity	 cap;
	struct throttle_stats		 st;
	unsigned			 i, in_use = 0, streams = 0;

	on_grant(tk, arg);
	/* While probing, this is the probe, and no other probe is out. */
	if (throttle_gate_get(T, now) != THROTTLE_GATE_OPEN) {
		ck_assert_int_eq(throttle_gate_get(T, now),
		    THROTTLE_GATE_PROBE);
		ck_assert(throttle_ticket_is_probe(T, tk));
	}
	/* Count what this grant's budget holds, from the tickets. */
	for (i = 0; i < P_REQS; i++) {
		if (!throttle_ticket_granted(&preq[i].tk) ||
		    preq[i].tk.budget != r->tk.budget)
			continue;
		in_use++;
		if (preq[i].klass == THROTTLE_STREAM)
			streams++;
	}
	if (r->klass == THROTTLE_SHORT ||
	    plim.charging == CONF_CHARGING_SERVICE_ACCOUNT) {
		/* The service account's concurrency budget. */
		ck_assert_uint_le(in_use, plim.max_concurrency);
		if (r->klass == THROTTLE_STREAM)
			ck_assert_uint_le(streams, plim.max_concurrency -
			    throttle_limits_short_reserve(&plim));
		throttle_stats(T, now, &st);
		ck_assert_int_le(st.backoff_until, now);
	} else {
		ck_assert_uint_le(in_use,
		    plim.streaming_connections_per_anchor);
		throttle_stream_capacity(T, r->anchor, &cap);
		ck_assert_int_le(cap.backoff_until, now);
		ck_assert_uint_eq(cap.in_use, streams);
	}
}

START_TEST(test_property)
{
	struct backoff_rng	 rng;
	struct req		*r;
	struct throttle_outcome	 o;
	unsigned		 step, i, k, waiting;
	int64_t			 w;

	backoff_rng_seed(&rng, (uint64_t)_i + 1);
	throttle_limits_default(&plim);
	plim.max_concurrency = 8;
	plim.streaming_connections_per_anchor = 3;
	plim.charging = _i % 2 ? CONF_CHARGING_SERVICE_ACCOUNT :
	    CONF_CHARGING_IMPERSONATED;
	plim.backoff_max_ms = 20000;
	plim.seed = (uint64_t)_i;
	T = throttle_new(&plim);
	now = 0;
	memset(preq, 0, sizeof(preq));
	for (i = 0; i < P_REQS; i++)
		preq[i].id = (int)i;

	for (step = 0; step < 5000; step++) {
		k = (unsigned)backoff_rng_range(&rng, 0, 99);
		r = &preq[backoff_rng_range(&rng, 0, P_REQS - 1)];
		if (k < 40) {
			if (r->tk.state == THROTTLE_TICKET_IDLE) {
				r->klass = backoff_rng_range(&rng, 0, 2) == 0 ?
				    THROTTLE_STREAM : THROTTLE_SHORT;
				r->anchor = panchors[backoff_rng_range(&rng,
				    0, P_ANCHORS - 1)];
				throttle_submit(T, &r->tk, r->klass, r->anchor,
				    (enum throttle_prio)backoff_rng_range(&rng,
				    0, THROTTLE_PRIO_MAX - 1), p_on_grant, r);
			}
		} else if (k < 75) {
			if (throttle_ticket_granted(&r->tk)) {
				i = (unsigned)backoff_rng_range(&rng, 0, 9);
				o.result = i < 6 ? THROTTLE_OK : i < 7 ?
				    THROTTLE_DONE : i < 8 ? THROTTLE_BUSY :
				    THROTTLE_TRANSIENT;
				o.backoff_ms = backoff_rng_range(&rng, 0, 3000);
				throttle_release(T, &r->tk, now, &o);
			}
		} else if (k < 82) {
			throttle_cancel(T, &r->tk);
		} else if (k < 95) {
			now += backoff_rng_range(&rng, 0, 500);
		} else if (k < 97) {
			/* The account gate, as the account module moves it. */
			i = (unsigned)backoff_rng_range(&rng, 0, 5);
			if (i == 0)
				throttle_gate_set(T, THROTTLE_GATE_CLOSED, now +
				    backoff_rng_range(&rng, 0, 2000));
			else if (i == 1)
				throttle_gate_set(T, THROTTLE_GATE_PROBE, 0);
			else if (i == 2 && throttle_ticket_granted(&r->tk))
				throttle_requeue(T, &r->tk, now, NULL);
			else if (i == 3)
				throttle_gate_spread(T,
				    backoff_rng_range(&rng, 0, 1) == 1);
			else
				throttle_gate_set(T, THROTTLE_GATE_OPEN, 0);
		} else {
			plim.max_concurrency =
			    (unsigned)backoff_rng_range(&rng, 1, 12);
			plim.streaming_connections_per_anchor =
			    (unsigned)backoff_rng_range(&rng, 1, 4);
			plim.short_request_share =
			    (unsigned)backoff_rng_range(&rng, 0, 60);
			if (backoff_rng_range(&rng, 0, 4) == 0) {
				plim.charging = plim.charging ==
				    CONF_CHARGING_IMPERSONATED ?
				    CONF_CHARGING_SERVICE_ACCOUNT :
				    CONF_CHARGING_IMPERSONATED;
				/* Waiting streams move to the service
				 * account's own streaming budget. */
				for (i = 0; i < P_REQS; i++)
					if (throttle_ticket_queued(&preq[i].tk))
						preq[i].anchor = NULL;
			}
			throttle_set_limits(T, &plim);
		}
		verify();
		if (backoff_rng_range(&rng, 0, 2) != 0) {
			throttle_run(T, now);
			verify();
		}
		w = throttle_next_wakeup(T, now);
		ck_assert_int_ge(w, now);
	}

	/* Liveness: following next_wakeup drains every queue. */
	throttle_gate_set(T, THROTTLE_GATE_OPEN, 0);
	for (k = 0; k < 100000; k++) {
		waiting = 0;
		for (i = 0; i < P_REQS; i++) {
			if (throttle_ticket_granted(&preq[i].tk)) {
				o.result = THROTTLE_OK;
				throttle_release(T, &preq[i].tk, now, &o);
			}
			if (throttle_ticket_queued(&preq[i].tk))
				waiting++;
		}
		w = throttle_next_wakeup(T, now);
		if (waiting == 0 && w == THROTTLE_NEVER)
			break;
		ck_assert_int_ne(w, THROTTLE_NEVER);
		now = w;
		throttle_run(T, now);
		verify();
	}
	ck_assert_uint_lt(k, 100000);
	throttle_free(T);
}
END_TEST

/* The account gate: closed grants nothing, probing one request at a time. */
START_TEST(test_gate_probe)
{
	struct req		 r[12];
	struct throttle_stats	 st;
	unsigned		 i;

	T = mk(5, 20, CONF_CHARGING_IMPERSONATED, 3);
	throttle_gate_set(T, THROTTLE_GATE_PROBE, 0);
	submit(&r[10], 10, THROTTLE_STREAM, "a@x", THROTTLE_PRIO_HIGH);
	for (i = 0; i < 10; i++)
		submit(&r[i], (int)i, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_NORMAL);
	/* One probe, and a short one although the stream is older. */
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert_uint_eq(granted(r, 11), 1);
	ck_assert(throttle_ticket_granted(&r[0].tk));
	ck_assert(throttle_ticket_is_probe(T, &r[0].tk));
	verify();
	ck_assert_int_eq(throttle_next_wakeup(T, now), THROTTLE_NEVER);
	ck_assert_uint_eq(throttle_run(T, now), 0);

	/* Refused: the same ticket waits again, behind the others. */
	throttle_gate_set(T, THROTTLE_GATE_CLOSED, now + 5000);
	throttle_requeue(T, &r[0].tk, now, NULL);
	ck_assert(throttle_ticket_queued(&r[0].tk));
	ck_assert(!throttle_ticket_is_probe(T, &r[0].tk));
	verify();
	ck_assert_int_eq(throttle_next_wakeup(T, now), now + 5000);
	ck_assert_uint_eq(throttle_run(T, now + 4999), 0);
	ck_assert_int_eq(throttle_gate_get(T, now + 4999),
	    THROTTLE_GATE_CLOSED);
	ck_assert_int_eq(throttle_gate_get(T, now + 5000), THROTTLE_GATE_PROBE);
	now += 5000;
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert(throttle_ticket_is_probe(T, &r[1].tk));
	ck_assert_uint_eq(r[0].grants, 1);
	verify();

	/* Answered without telling anything: the next one probes. */
	release(&r[1], THROTTLE_DONE, 0);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert(throttle_ticket_is_probe(T, &r[2].tk));

	/* Accepted: open; the probe is an ordinary grant from now on. */
	throttle_gate_set(T, THROTTLE_GATE_OPEN, 0);
	ck_assert(!throttle_ticket_is_probe(T, &r[2].tk));
	/* Four more short ones; the stream has a budget of its own. */
	ck_assert_uint_eq(throttle_run(T, now), 5);
	ck_assert_uint_eq(granted(r, 11), 6);
	throttle_stats(T, now, &st);
	ck_assert_int_eq(st.gate, THROTTLE_GATE_OPEN);
	ck_assert_uint_eq(st.probes, 3);
	ck_assert_uint_eq(st.requeued, 1);
	verify();
	throttle_free(T);
}
END_TEST

/* Only streams waiting: one of them probes; its first bytes end that. */
START_TEST(test_gate_stream_probe)
{
	struct req	 r[3];
	unsigned	 i;

	T = mk(10, 20, CONF_CHARGING_IMPERSONATED, 3);
	throttle_gate_set(T, THROTTLE_GATE_CLOSED, now + 100);
	for (i = 0; i < 3; i++)
		submit(&r[i], (int)i, THROTTLE_STREAM, "a@x",
		    THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 0);
	verify();
	now += 100;
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert(throttle_ticket_is_probe(T, &r[0].tk));
	ck_assert_uint_eq(throttle_run(T, now), 0);
	throttle_probe_done(T, &r[0].tk);
	ck_assert(!throttle_ticket_is_probe(T, &r[0].tk));
	ck_assert(throttle_ticket_granted(&r[0].tk));
	ck_assert_int_eq(throttle_next_wakeup(T, now), now);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert(throttle_ticket_is_probe(T, &r[1].tk));
	verify();
	/* Cancelling the probe lets the next one through. */
	throttle_cancel(T, &r[1].tk);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert(throttle_ticket_is_probe(T, &r[2].tk));
	verify();
	throttle_free(T);
}
END_TEST

/* A probe waits for its budget's back-off; nothing spins meanwhile. */
START_TEST(test_gate_probe_backoff)
{
	struct req	 r[3];
	unsigned	 i;

	T = mk(4, 20, CONF_CHARGING_IMPERSONATED, 3);
	for (i = 0; i < 2; i++)
		submit(&r[i], (int)i, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_NORMAL);
	submit(&r[2], 2, THROTTLE_STREAM, "a@x", THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 3);
	throttle_gate_set(T, THROTTLE_GATE_PROBE, 0);
	release(&r[0], THROTTLE_BUSY, 2000);
	throttle_requeue(T, &r[1].tk, now, NULL);
	release(&r[2], THROTTLE_OK, 0);
	submit(&r[2], 2, THROTTLE_STREAM, "a@x", THROTTLE_PRIO_NORMAL);
	submit(&r[0], 0, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	/* The short budget waits 2 s: the stream may probe meanwhile. */
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert(throttle_ticket_is_probe(T, &r[2].tk));
	verify();
	ck_assert_int_eq(throttle_next_wakeup(T, now), THROTTLE_NEVER);
	release(&r[2], THROTTLE_DONE, 0);
	ck_assert_uint_eq(throttle_run(T, now), 0);
	ck_assert_int_eq(throttle_next_wakeup(T, now), now + 2000);
	verify();
	now += 2000;
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert(throttle_ticket_is_probe(T, &r[1].tk));
	verify();
	throttle_free(T);
}
END_TEST

START_TEST(test_status)
{
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;
	struct json_value	*v;
	const struct json_value	*sa;
	struct req		 r[3];
	char			*cause = NULL;

	T = mk(2, 20, CONF_CHARGING_IMPERSONATED, 2);
	submit(&r[0], 0, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	submit(&r[1], 1, THROTTLE_STREAM, "a\"b@x", THROTTLE_PRIO_NORMAL);
	throttle_run(T, now);
	submit(&r[2], 2, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	release(&r[0], THROTTLE_BUSY, 3000);
	json_writer_init(&w, &b);
	throttle_json(T, now, &w);
	v = json_parse(b.data, b.len, &cause);
	ck_assert_msg(v != NULL, "%s: %s", cause, b.data);
	ck_assert_str_eq(json_get_str(v, "charging", ""), "impersonated");
	sa = json_get(v, "service_account");
	ck_assert_ptr_nonnull(sa);
	ck_assert_int_eq(json_get_num(sa, "limit", -1), 2);
	ck_assert_int_eq(json_get_num(sa, "in_use", -1), 0);
	ck_assert_int_eq(json_get_num(sa, "queued", -1), 1);
	ck_assert_int_eq(json_get_num(sa, "backoff_remaining_ms", -1), 3000);
	ck_assert_int_eq(json_get_num(json_get(v, "queued"), "short", -1), 1);
	ck_assert_int_eq(json_get_num(json_get(v, "in_use"), "stream", -1), 1);
	ck_assert_int_eq(json_get_num(v, "server_busy", -1), 1);
	ck_assert_str_eq(json_get_str(json_get(v, "anchors")->child,
	    "anchor", ""), "a\"b@x");
	json_free(v);

	buf_reset(&b);
	throttle_prometheus(T, now, &b);
	ck_assert_ptr_nonnull(strstr(b.data,
	    "# TYPE ewsgw_throttle_backoffs_total counter\n"));
	ck_assert_ptr_nonnull(strstr(b.data,
	    "\newsgw_throttle_server_busy_total 1\n"));
	ck_assert_ptr_nonnull(strstr(b.data,
	    "\newsgw_throttle_grants_total{class=\"stream\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(b.data,
	    "\newsgw_throttle_queued{class=\"short\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(b.data,
	    "\newsgw_throttle_backoff_remaining_seconds 3.000\n"));
	buf_free(&b);
	throttle_free(T);
}
END_TEST

/* ---- Graph budgets: per (app, mailbox) and per app ---- */

/* A scheduler with Graph limits of the test's own (0: Graph's). */
static struct throttle *
mk_graph(unsigned conc, unsigned rate, int64_t window, unsigned app_rate,
    int64_t app_window)
{
	struct throttle_limits	l;

	throttle_limits_default(&l);
	l.busy_jitter_max_ms = 0;
	l.seed = 12345;
	l.graph_concurrency = conc;
	l.graph_rate = rate;
	l.graph_window_ms = window;
	l.graph_app_rate = app_rate;
	l.graph_app_window_ms = app_window;
	norder = 0;
	now = 1000;
	return (throttle_new(&l));
}

/* A released Graph ticket goes straight back into its queue. */
static void
on_grant_graph_again(struct throttle_ticket *tk, void *arg)
{
	struct req	*r = arg;

	on_grant(tk, arg);
	throttle_release(T, tk, now, NULL);
	throttle_submit(T, tk, THROTTLE_GRAPH, r->anchor, THROTTLE_PRIO_NORMAL,
	    on_grant_graph_again, r);
}

/* Four in flight per mailbox, Graph's documented limit by default. */
START_TEST(test_graph_slots)
{
	struct throttle_graph_stats	 gs;
	struct req			 a[6], b;
	unsigned			 i;

	T = mk_graph(0, 0, 0, 0, 0);
	for (i = 0; i < 6; i++)
		submit(&a[i], (int)i, THROTTLE_GRAPH, "a@x",
		    THROTTLE_PRIO_NORMAL);
	submit(&b, 9, THROTTLE_GRAPH, "b@x", THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 5);
	ck_assert_uint_eq(granted(a, 6), 4);
	ck_assert(throttle_ticket_granted(&b.tk));
	verify();
	/* Waiting for a release, not for time: no wake-up. */
	ck_assert_int_eq(throttle_next_wakeup(T, now), THROTTLE_NEVER);
	release(&a[0], THROTTLE_OK, 0);
	ck_assert_int_eq(throttle_next_wakeup(T, now), now);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert(throttle_ticket_granted(&a[4].tk));
	ck_assert_uint_eq(granted(a, 6), 4);
	verify();
	throttle_graph_stats(T, now, &gs);
	ck_assert_uint_eq(gs.concurrency, THROTTLE_GRAPH_CONCURRENCY);
	ck_assert_uint_eq(gs.rate, THROTTLE_GRAPH_RATE);
	ck_assert_int_eq(gs.window_ms, THROTTLE_GRAPH_WINDOW_MS);
	ck_assert_uint_eq(gs.app_rate, THROTTLE_GRAPH_APP_RATE);
	ck_assert_int_eq(gs.app_window_ms, THROTTLE_GRAPH_APP_WINDOW_MS);
	ck_assert_uint_eq(gs.in_flight, 5);
	ck_assert_uint_eq(gs.queued, 1);
	ck_assert_uint_eq(gs.max_in_flight_mailbox, 4);
	ck_assert_uint_eq(gs.waited_slot, 2);
	ck_assert_uint_eq(gs.granted, 6);
	ck_assert_uint_eq(gs.mailboxes, 2);
	/* Nothing of it touched the EWS budgets. */
	ck_assert_uint_eq(throttle_subscriptions(T, NULL), 0);
	for (i = 0; i < 6; i++)
		throttle_cancel(T, &a[i].tk);
	throttle_cancel(T, &b.tk);
	verify();
	throttle_free(T);
}
END_TEST

/*
 * A mailbox's rate: a burst of a tenth, then grants as the bucket
 * refills; no window ever sees more than the rate, and the budget waits
 * in the heap for its refill (the wake-up is that time, not now).
 */
START_TEST(test_graph_rate)
{
	struct throttle_graph_stats	 gs;
	struct req			 r;
	int64_t				 times[400], w;
	size_t				 n = 0, i, j;

	T = mk_graph(4, 100, 10000, 0, 0);
	memset(&r, 0, sizeof(r));
	r.anchor = "a@x";
	throttle_submit(T, &r.tk, THROTTLE_GRAPH, "a@x", THROTTLE_PRIO_NORMAL,
	    on_grant_graph_again, &r);
	for (;;) {
		w = throttle_next_wakeup(T, now);
		ck_assert_int_ge(w, now);
		if (w >= 31000)
			break;
		now = w;
		i = r.grants;
		throttle_run(T, now);
		while (i++ < r.grants) {
			ck_assert_uint_lt(n, 400);
			times[n++] = now;
		}
		verify();
	}
	/* The burst: ten at once, then one every 100 ms or so. */
	ck_assert_int_eq(times[9], 1000);
	ck_assert_int_gt(times[10], 1000);
	for (i = 0, j = 0; i < n; i++) {
		while (times[i] - times[j] >= 10000)
			j++;
		ck_assert_uint_le(i - j + 1, 100);
	}
	ck_assert_uint_ge(n, 3 * 90);
	throttle_graph_stats(T, now, &gs);
	ck_assert_uint_gt(gs.waited_rate, 0);
	ck_assert_uint_eq(gs.waited_app, 0);
	ck_assert_uint_le(gs.max_window_requests, 100);
	ck_assert_uint_ge(gs.max_window_requests, 95);
	throttle_cancel(T, &r.tk);
	throttle_free(T);
}
END_TEST

/*
 * The app-wide rate: forty mailboxes, each far inside its own budget,
 * together never exceed it in any window; the budgets it stops wait on
 * one list, woken by the app's refill.
 */
START_TEST(test_graph_app_rate)
{
	struct throttle_graph_stats	 gs;
	static struct req		 r[40];
	static char			 mb[40][16];
	static int64_t			 times[4000];
	int64_t				 w;
	size_t				 n = 0, i, j, before;
	unsigned			 k, tot;

	T = mk_graph(4, 0, 0, 50, 1000);
	for (k = 0; k < 40; k++) {
		snprintf(mb[k], sizeof(mb[k]), "m%u@x", k);
		memset(&r[k], 0, sizeof(r[k]));
		r[k].anchor = mb[k];
		throttle_submit(T, &r[k].tk, THROTTLE_GRAPH, mb[k],
		    THROTTLE_PRIO_NORMAL, on_grant_graph_again, &r[k]);
	}
	for (now = 0;;) {
		w = throttle_next_wakeup(T, now);
		ck_assert_int_ge(w, now);
		if (w >= 5000)
			break;
		now = w;
		for (k = 0, before = 0; k < 40; k++)
			before += r[k].grants;
		throttle_run(T, now);
		for (k = 0, tot = 0; k < 40; k++)
			tot += r[k].grants;
		for (i = before; i < tot; i++) {
			ck_assert_uint_lt(n, 4000);
			times[n++] = now;
		}
		verify();
	}
	for (i = 0, j = 0; i < n; i++) {
		while (times[i] - times[j] >= 1000)
			j++;
		ck_assert_uint_le(i - j + 1, 50);
	}
	ck_assert_uint_ge(n, 4 * 50);
	throttle_graph_stats(T, now, &gs);
	ck_assert_uint_gt(gs.waited_app, 0);
	ck_assert_uint_eq(gs.waited_rate, 0);
	ck_assert_uint_le(gs.max_app_window_requests, 50);
	ck_assert_uint_eq(gs.app_rate, 50);
	for (k = 0; k < 40; k++)
		throttle_cancel(T, &r[k].tk);
	verify();
	throttle_free(T);
}
END_TEST

/*
 * The steps of a JSON $batch are a ticket each: twenty steps for one
 * mailbox take its four slots and a token each, so a bucket of two
 * (a rate of 20 per second) lets two of them go, not the batch.
 */
START_TEST(test_graph_batch_steps)
{
	struct throttle_graph_stats	 gs;
	struct req			 st[20];
	unsigned			 i;

	T = mk_graph(4, 20, 1000, 0, 0);
	for (i = 0; i < 20; i++)
		submit(&st[i], (int)i, THROTTLE_GRAPH, "a@x",
		    THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 2);
	ck_assert_uint_eq(granted(st, 20), 2);
	/* The next token in 1000 / 18 ms, rounded up. */
	ck_assert_int_eq(throttle_next_wakeup(T, now), now + 56);
	verify();
	now += 56;
	ck_assert_uint_eq(throttle_run(T, now), 1);
	now += 56;
	ck_assert_uint_eq(throttle_run(T, now), 1);
	/* Four in flight: tokens accrue, slots do not. */
	now += 1000;
	ck_assert_uint_eq(throttle_run(T, now), 0);
	ck_assert_uint_eq(granted(st, 20), 4);
	ck_assert_int_eq(throttle_next_wakeup(T, now), THROTTLE_NEVER);
	for (i = 0; i < 4; i++)
		release(&st[i], THROTTLE_OK, 0);
	ck_assert_uint_eq(throttle_run(T, now), 2);
	throttle_graph_stats(T, now, &gs);
	ck_assert_uint_eq(gs.granted, 6);
	/* Two, then one and one in the first second. */
	ck_assert_uint_eq(gs.max_window_requests, 4);
	verify();
	throttle_free(T);
}
END_TEST

/*
 * Retry-After is THROTTLE_BUSY: it pauses that mailbox only, under the
 * same clamp as BackOffMilliseconds; no EWS budget notices.
 */
START_TEST(test_graph_retry_after)
{
	struct throttle_graph_stats	 gs;
	struct throttle_stats		 st;
	struct req			 d[2], e, s;

	T = mk_graph(0, 0, 0, 0, 0);
	submit(&d[0], 0, THROTTLE_GRAPH, "d@x", THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	/* 429, Retry-After: 5 */
	release(&d[0], THROTTLE_BUSY, 5000);
	submit(&d[1], 1, THROTTLE_GRAPH, "d@x", THROTTLE_PRIO_NORMAL);
	submit(&e, 2, THROTTLE_GRAPH, "e@x", THROTTLE_PRIO_NORMAL);
	submit(&s, 3, THROTTLE_SHORT, NULL, THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 2);
	ck_assert(throttle_ticket_granted(&e.tk));
	ck_assert(throttle_ticket_granted(&s.tk));
	ck_assert(throttle_ticket_queued(&d[1].tk));
	ck_assert_int_eq(throttle_next_wakeup(T, now), now + 5000);
	ck_assert_uint_eq(throttle_run(T, now + 4999), 0);
	throttle_graph_stats(T, now, &gs);
	ck_assert_uint_eq(gs.pauses, 1);
	ck_assert_uint_eq(gs.paused, 1);
	ck_assert_uint_eq(gs.waited_pause, 1);
	throttle_stats(T, now, &st);
	ck_assert_uint_eq(st.server_busy, 0);
	ck_assert_uint_eq(st.budgets_in_backoff, 0);
	ck_assert_int_eq(st.backoff_until, 0);
	ck_assert_int_eq(st.gate, THROTTLE_GATE_OPEN);
	verify();
	now += 5000;
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert(throttle_ticket_granted(&d[1].tk));

	/* Two hours asked: one hour, the one clamp of both protocols. */
	release(&d[1], THROTTLE_BUSY, 2 * 3600 * 1000LL);
	submit(&d[0], 4, THROTTLE_GRAPH, "d@x", THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 0);
	ck_assert_int_eq(throttle_next_wakeup(T, now),
	    now + THROTTLE_BUSY_MAX_MS);
	/* Success elsewhere does not shorten it. */
	release(&e, THROTTLE_OK, 0);
	release(&s, THROTTLE_OK, 0);
	ck_assert_uint_eq(throttle_run(T, now + THROTTLE_BUSY_MAX_MS - 1), 0);
	ck_assert_uint_eq(throttle_run(T, now + THROTTLE_BUSY_MAX_MS), 1);
	verify();
	throttle_free(T);
}
END_TEST

/*
 * Graph is not behind the EWS account gate: a refused service account
 * (gate closed, then one probe out) stops EWS requests, not Graph's.
 */
START_TEST(test_graph_gate)
{
	struct req	s[2], g[3];

	T = mk_graph(0, 0, 0, 0, 0);
	throttle_gate_set(T, THROTTLE_GATE_CLOSED, now + 60000);
	submit(&s[0], 0, THROTTLE_SHORT, NULL, THROTTLE_PRIO_HIGH);
	submit(&g[0], 1, THROTTLE_GRAPH, "a@x", THROTTLE_PRIO_NORMAL);
	ck_assert_int_eq(throttle_next_wakeup(T, now), now);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert(throttle_ticket_granted(&g[0].tk));
	ck_assert(throttle_ticket_queued(&s[0].tk));
	/* The gate's time is the only wake-up left. */
	ck_assert_int_eq(throttle_next_wakeup(T, now), now + 60000);
	verify();

	/* Probing, the probe out: Graph still goes. */
	now += 60000;
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert(throttle_ticket_is_probe(T, &s[0].tk));
	submit(&s[1], 2, THROTTLE_SHORT, NULL, THROTTLE_PRIO_HIGH);
	submit(&g[1], 3, THROTTLE_GRAPH, "a@x", THROTTLE_PRIO_NORMAL);
	submit(&g[2], 4, THROTTLE_GRAPH, "b@x", THROTTLE_PRIO_NORMAL);
	ck_assert_int_eq(throttle_next_wakeup(T, now), now);
	ck_assert_uint_eq(throttle_run(T, now), 2);
	ck_assert(throttle_ticket_queued(&s[1].tk));
	ck_assert_int_eq(throttle_next_wakeup(T, now), THROTTLE_NEVER);
	verify();
	throttle_free(T);
}
END_TEST

/*
 * A Graph budget is freed once idle with its bucket full again, never
 * before (a new bucket would forget what the window already spent).
 * New limits apply to queued tickets at once.
 */
START_TEST(test_graph_forget_reload)
{
	struct throttle_graph_stats	 gs;
	struct throttle_limits		 l;
	struct req			 r[4];
	unsigned			 i;

	T = mk_graph(2, 100, 10000, 0, 0);
	for (i = 0; i < 4; i++)
		submit(&r[i], (int)i, THROTTLE_GRAPH, "a@x",
		    THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 2);
	throttle_limits_default(&l);
	l.graph_concurrency = 3;
	l.graph_rate = 100;
	l.graph_window_ms = 10000;
	ck_assert_uint_eq(throttle_set_limits(T, &l), 0);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	ck_assert_uint_eq(granted(r, 4), 3);
	release(&r[0], THROTTLE_OK, 0);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	for (i = 1; i < 4; i++)
		release(&r[i], THROTTLE_OK, 0);
	throttle_run(T, now);
	throttle_graph_stats(T, now, &gs);
	ck_assert_uint_eq(gs.mailboxes, 1);	/* four tokens short */
	ck_assert_uint_eq(gs.concurrency, 3);
	/* Refilled: the next look at it frees it. */
	now += 10000;
	submit(&r[0], 0, THROTTLE_GRAPH, "b@x", THROTTLE_PRIO_NORMAL);
	throttle_cancel(T, &r[0].tk);
	throttle_run(T, now);
	throttle_graph_stats(T, now, &gs);
	ck_assert_uint_eq(gs.mailboxes, 1);	/* "a" waits for a use */
	submit(&r[1], 1, THROTTLE_GRAPH, "a@x", THROTTLE_PRIO_NORMAL);
	ck_assert_uint_eq(throttle_run(T, now), 1);
	release(&r[1], THROTTLE_OK, 0);
	now += 10000;
	throttle_run(T, now);
	verify();
	throttle_free(T);
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("throttle");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_reserve_table);
	tcase_add_test(tc, test_limits_from_conf);
	tcase_add_test(tc, test_concurrency_cap);
	tcase_add_test(tc, test_short_reserve);
	tcase_add_test(tc, test_server_busy);
	tcase_add_test(tc, test_server_busy_jitter);
	tcase_add_test(tc, test_server_busy_bounds);
	tcase_add_test(tc, test_exponential);
	tcase_add_test(tc, test_impersonated_streams);
	tcase_add_test(tc, test_subscriptions);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_slot_busy);
	tcase_add_test(tc, test_shrink);
	tcase_add_test(tc, test_charging_change);
	tcase_add_test(tc, test_priority_fifo);
	tcase_add_test(tc, test_next_wakeup);
	tcase_add_test(tc, test_scale);
	tcase_add_test(tc, test_gate_probe);
	tcase_add_test(tc, test_gate_stream_probe);
	tcase_add_test(tc, test_gate_probe_backoff);
	tcase_add_loop_test(tc, test_property, 0, 6);
	tcase_add_test(tc, test_status);
	tcase_add_test(tc, test_graph_slots);
	tcase_add_test(tc, test_graph_rate);
	tcase_add_test(tc, test_graph_app_rate);
	tcase_add_test(tc, test_graph_batch_steps);
	tcase_add_test(tc, test_graph_retry_after);
	tcase_add_test(tc, test_graph_gate);
	tcase_add_test(tc, test_graph_forget_reload);
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
