/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: PRNG, jittered exponential back-off, spread-out start.
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/backoff.h"

START_TEST(test_rng)
{
	struct backoff_rng	a, b, c;
	int64_t			v;
	unsigned		hist[10] = { 0 }, i;

	backoff_rng_seed(&a, 42);
	backoff_rng_seed(&b, 42);
	backoff_rng_seed(&c, 43);
	for (i = 0; i < 100; i++)
		ck_assert_uint_eq(backoff_rng_next(&a), backoff_rng_next(&b));
	ck_assert_uint_ne(backoff_rng_next(&a), backoff_rng_next(&c));
	/* Range stays inside and hits every value. */
	for (i = 0; i < 10000; i++) {
		v = backoff_rng_range(&a, 5, 14);
		ck_assert_int_ge(v, 5);
		ck_assert_int_le(v, 14);
		hist[v - 5]++;
	}
	for (i = 0; i < 10; i++) {
		ck_assert_uint_gt(hist[i], 800);
		ck_assert_uint_lt(hist[i], 1200);
	}
	ck_assert_int_eq(backoff_rng_range(&a, 7, 7), 7);
	ck_assert_int_eq(backoff_rng_range(&a, -3, -3), -3);
	v = backoff_rng_range(&a, INT64_MIN, INT64_MAX);
	(void)v;
}
END_TEST

START_TEST(test_full_jitter)
{
	struct backoff		b;
	struct backoff_rng	r;
	int64_t			d, ceil, max_seen[12] = { 0 };
	unsigned		run, i;

	backoff_rng_seed(&r, 1);
	backoff_init(&b, 100, 5000, BACKOFF_FULL);
	for (run = 0; run < 200; run++) {
		for (i = 0; i < 12; i++) {
			d = backoff_next(&b, &r);
			ceil = 100LL << i;
			if (ceil > 5000)
				ceil = 5000;
			ck_assert_int_ge(d, 0);
			ck_assert_int_le(d, ceil);
			if (d > max_seen[i])
				max_seen[i] = d;
		}
		ck_assert_uint_eq(b.attempt, 12);
		backoff_reset(&b);
		ck_assert_uint_eq(b.attempt, 0);
	}
	/* The window really doubles: late attempts reach far beyond base. */
	ck_assert_int_le(max_seen[0], 100);
	ck_assert_int_gt(max_seen[3], 400);
	ck_assert_int_gt(max_seen[11], 4000);
	/* After a reset the first delay is back within base. */
	d = backoff_next(&b, &r);
	ck_assert_int_le(d, 100);
}
END_TEST

START_TEST(test_decorrelated)
{
	struct backoff		b;
	struct backoff_rng	r;
	int64_t			d, prev;
	unsigned		i, at_cap = 0;

	backoff_rng_seed(&r, 7);
	backoff_init(&b, 1000, 60000, BACKOFF_DECORRELATED);
	prev = 1000;
	for (i = 0; i < 200; i++) {
		d = backoff_next(&b, &r);
		ck_assert_int_ge(d, 1000);
		ck_assert_int_le(d, 60000);
		ck_assert_int_le(d, prev * 3);
		if (d == 60000)
			at_cap++;
		prev = d;
	}
	ck_assert_uint_gt(at_cap, 0);
	backoff_reset(&b);
	d = backoff_next(&b, &r);
	ck_assert_int_ge(d, 1000);
	ck_assert_int_le(d, 3000);
}
END_TEST

START_TEST(test_limits)
{
	struct backoff		b;
	struct backoff_rng	r;
	unsigned		i;

	backoff_rng_seed(&r, 3);
	/* Nonsense limits are made usable rather than crashing. */
	backoff_init(&b, 0, -5, BACKOFF_FULL);
	ck_assert_int_eq(b.base_ms, 1);
	ck_assert_int_eq(b.cap_ms, 1);
	for (i = 0; i < 100; i++)
		ck_assert_int_le(backoff_next(&b, &r), 1);
	/* A huge cap and many attempts do not overflow. */
	backoff_init(&b, 1000, INT64_MAX / 2, BACKOFF_FULL);
	for (i = 0; i < 200; i++)
		ck_assert_int_ge(backoff_next(&b, &r), 0);
	backoff_init(&b, 1000, INT64_MAX / 2, BACKOFF_DECORRELATED);
	for (i = 0; i < 200; i++)
		ck_assert_int_ge(backoff_next(&b, &r), 1000);
	/* New limits keep the attempt count. */
	backoff_set_limits(&b, 10, 20);
	ck_assert_uint_eq(b.attempt, 200);
	ck_assert_int_le(backoff_next(&b, &r), 20);
}
END_TEST

START_TEST(test_spread)
{
	struct backoff_spread	s;
	struct backoff_rng	r;
	int64_t			at, prev;
	unsigned		i;

	backoff_rng_seed(&r, 9);
	backoff_spread_init(&s, 100, 50);
	/* 1000 mailboxes starting at the same instant get spread out. */
	prev = backoff_spread_next(&s, &r, 5000, 0);
	ck_assert_int_eq(prev, 5000);
	for (i = 1; i < 1000; i++) {
		at = backoff_spread_next(&s, &r, 5000, 0);
		ck_assert_int_ge(at - prev, 100);
		ck_assert_int_le(at - prev, 150);
		prev = at;
	}
	ck_assert_int_ge(prev, 5000 + 999 * 100);
	/* Much later, the next one starts right away (after min_delay). */
	at = backoff_spread_next(&s, &r, prev + 10000, 250);
	ck_assert_int_eq(at, prev + 10250);
	/* Without randomness the spacing is exact. */
	backoff_spread_init(&s, 40, 0);
	ck_assert_int_eq(backoff_spread_next(&s, &r, 0, 0), 0);
	ck_assert_int_eq(backoff_spread_next(&s, &r, 0, 0), 40);
	ck_assert_int_eq(backoff_spread_next(&s, &r, 10, 0), 80);
	ck_assert_int_eq(backoff_spread_next(&s, &r, 10, 100), 120);
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("backoff");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_rng);
	tcase_add_test(tc, test_full_jitter);
	tcase_add_test(tc, test_decorrelated);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_spread);
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
