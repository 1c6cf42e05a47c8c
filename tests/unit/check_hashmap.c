/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the string-keyed hash map (growth, deletes, iteration).
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/xmalloc.h"

#define MANY	100000

static int	freed;

static void
count_free(void *v)
{
	freed++;
	free(v);
}

static void
key_of(char *buf, size_t len, unsigned i)
{
	snprintf(buf, len, "user%u@example.com", i);
}

START_TEST(test_basic)
{
	struct hashmap	*m = hashmap_new();
	int		 a = 1, b = 2, c = 3;
	char		 key[8];

	ck_assert_uint_eq(hashmap_count(m), 0);
	ck_assert_ptr_null(hashmap_get(m, "x"));
	ck_assert_ptr_null(hashmap_put(m, "x", &a));
	ck_assert_ptr_null(hashmap_put(m, "", &b));
	ck_assert_ptr_eq(hashmap_get(m, "x"), &a);
	ck_assert_ptr_eq(hashmap_get(m, ""), &b);
	ck_assert_uint_eq(hashmap_count(m), 2);
	/* Replacing hands the old value back and keeps the count. */
	ck_assert_ptr_eq(hashmap_put(m, "x", &c), &a);
	ck_assert_ptr_eq(hashmap_get(m, "x"), &c);
	ck_assert_uint_eq(hashmap_count(m), 2);
	/* The key is copied. */
	strcpy(key, "abc");
	hashmap_put(m, key, &a);
	strcpy(key, "zzz");
	ck_assert_ptr_eq(hashmap_get(m, "abc"), &a);
	ck_assert_ptr_null(hashmap_get(m, "zzz"));
	/* Case matters; prefixes are different keys. */
	ck_assert_ptr_null(hashmap_get(m, "X"));
	ck_assert_ptr_null(hashmap_get(m, "ab"));
	ck_assert_ptr_eq(hashmap_remove(m, "x"), &c);
	ck_assert_ptr_null(hashmap_remove(m, "x"));
	ck_assert_ptr_null(hashmap_get(m, "x"));
	ck_assert_uint_eq(hashmap_count(m), 2);
	hashmap_free(m, NULL);
	hashmap_free(NULL, NULL);
}
END_TEST

/* Many keys, through several incremental growths, then half deleted. */
START_TEST(test_many)
{
	struct hashmap	*m = hashmap_new();
	char		 key[64];
	unsigned	 i;
	uintptr_t	 v;

	for (i = 0; i < MANY; i++) {
		key_of(key, sizeof(key), i);
		ck_assert_ptr_null(hashmap_put(m, key,
		    (void *)(uintptr_t)(i + 1)));
		/* Entries stay reachable while tables are being moved. */
		if (i % 997 == 0) {
			key_of(key, sizeof(key), i / 2);
			ck_assert_uint_eq((uintptr_t)hashmap_get(m, key),
			    i / 2 + 1);
		}
	}
	ck_assert_uint_eq(hashmap_count(m), MANY);
	for (i = 0; i < MANY; i++) {
		key_of(key, sizeof(key), i);
		ck_assert_uint_eq((uintptr_t)hashmap_get(m, key), i + 1);
	}
	for (i = 0; i < MANY; i += 2) {
		key_of(key, sizeof(key), i);
		ck_assert_uint_eq((uintptr_t)hashmap_remove(m, key), i + 1);
	}
	ck_assert_uint_eq(hashmap_count(m), MANY / 2);
	for (i = 0; i < MANY; i++) {
		key_of(key, sizeof(key), i);
		v = (uintptr_t)hashmap_get(m, key);
		ck_assert_uint_eq(v, i % 2 == 0 ? 0 : i + 1);
	}
	/* Deleted keys can come back. */
	key_of(key, sizeof(key), 4);
	ck_assert_ptr_null(hashmap_put(m, key, (void *)(uintptr_t)7));
	ck_assert_uint_eq((uintptr_t)hashmap_get(m, key), 7);
	ck_assert_uint_eq(hashmap_count(m), MANY / 2 + 1);
	hashmap_free(m, NULL);
}
END_TEST

/* Iteration sees every entry exactly once, also in the middle of growth. */
START_TEST(test_iterate)
{
	struct hashmap		*m = hashmap_new();
	struct hashmap_iter	 it;
	unsigned char		*seen;
	const char		*k;
	void			*v;
	char			 key[64];
	unsigned		 i, n, total, stops[] = { 0, 1, 17, 300, 5000 };
	size_t			 s;

	seen = xcalloc(5001, 1);
	total = 0;
	for (s = 0; s < sizeof(stops) / sizeof(stops[0]); s++) {
		for (i = total; i < stops[s]; i++) {
			key_of(key, sizeof(key), i);
			hashmap_put(m, key, (void *)(uintptr_t)(i + 1));
		}
		total = stops[s];
		memset(seen, 0, 5001);
		n = 0;
		hashmap_iter_init(&it, m);
		while (hashmap_iter_next(&it, &k, &v)) {
			i = (unsigned)(uintptr_t)v - 1;
			ck_assert_uint_lt(i, total);
			key_of(key, sizeof(key), i);
			ck_assert_str_eq(k, key);
			ck_assert_uint_eq(seen[i], 0);
			seen[i] = 1;
			n++;
		}
		ck_assert_uint_eq(n, total);
		ck_assert(!hashmap_iter_next(&it, NULL, NULL));
	}
	free(seen);
	hashmap_free(m, NULL);
}
END_TEST

/* Removing the current entry while iterating is allowed. */
START_TEST(test_iter_remove)
{
	struct hashmap		*m = hashmap_new();
	struct hashmap_iter	 it;
	char			 key[64];
	void			*v;
	unsigned		 i, n = 0, kept = 0;

	/* 3000 leaves the map in the middle of moving to a bigger table. */
	for (i = 0; i < 3000; i++) {
		key_of(key, sizeof(key), i);
		hashmap_put(m, key, (void *)(uintptr_t)(i + 1));
	}
	hashmap_iter_init(&it, m);
	while (hashmap_iter_next(&it, NULL, &v)) {
		n++;
		if ((uintptr_t)v % 3 == 0)
			ck_assert_ptr_eq(hashmap_iter_remove(&it), v);
		else
			kept++;
	}
	ck_assert_uint_eq(n, 3000);
	ck_assert_uint_eq(hashmap_count(m), kept);
	hashmap_iter_init(&it, m);
	n = 0;
	while (hashmap_iter_next(&it, NULL, &v)) {
		ck_assert_uint_ne((uintptr_t)v % 3, 0);
		n++;
	}
	ck_assert_uint_eq(n, kept);
	hashmap_free(m, NULL);
}
END_TEST

/*
 * Random puts, removes and lookups agree with a plain array; in a
 * copying map (_i 0) and in a borrowing one (_i 1), whose removed nodes
 * are used again by later insertions.
 */
START_TEST(test_random)
{
	struct hashmap		*m = _i ? hashmap_new_borrowing() :
				    hashmap_new();
	struct hashmap_iter	 it;
	uintptr_t		*ref, v;
	uint64_t		 x = 88172645463325252ULL;
	char			**keys, *key;
	unsigned		 i, k, n = 4000, count = 0, seen;
	void			*val;

	ref = xcalloc(n, sizeof(*ref));
	keys = xcalloc(n, sizeof(*keys));
	for (i = 0; i < n; i++) {
		keys[i] = xmalloc(64);
		key_of(keys[i], 64, i);
	}
	for (i = 0; i < 200000; i++) {
		/* xorshift64: deterministic and good enough here. */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		k = (unsigned)(x % n);
		key = keys[k];
		switch ((x >> 32) % 4) {
		case 0:
		case 1:
			v = (uintptr_t)(i + 1);
			ck_assert_uint_eq((uintptr_t)hashmap_put(m, key,
			    (void *)v), ref[k]);
			if (ref[k] == 0)
				count++;
			ref[k] = v;
			break;
		case 2:
			ck_assert_uint_eq((uintptr_t)hashmap_remove(m, key),
			    ref[k]);
			if (ref[k] != 0)
				count--;
			ref[k] = 0;
			break;
		default:
			ck_assert_uint_eq((uintptr_t)hashmap_get(m, key),
			    ref[k]);
			break;
		}
		ck_assert_uint_eq(hashmap_count(m), count);
	}
	seen = 0;
	hashmap_iter_init(&it, m);
	while (hashmap_iter_next(&it, NULL, &val)) {
		ck_assert_ptr_nonnull(val);
		seen++;
	}
	ck_assert_uint_eq(seen, count);
	hashmap_free(m, NULL);
	for (i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	free(ref);
}
END_TEST

/* Clear frees every value and leaves the map usable; both kinds of map
 * (the value holds its key). */
START_TEST(test_free_values)
{
	struct hashmap	*m = _i ? hashmap_new_borrowing() : hashmap_new();
	char		 key[64], *v;
	unsigned	 i, round;

	for (round = 0; round < 2; round++) {
		for (i = 0; i < 3000; i++) {
			key_of(key, sizeof(key), i);
			v = xstrdup(key);
			ck_assert_ptr_null(hashmap_put(m, v, v));
		}
		freed = 0;
		hashmap_clear(m, count_free);
		ck_assert_int_eq(freed, 3000);
		ck_assert_uint_eq(hashmap_count(m), 0);
		ck_assert_ptr_null(hashmap_get(m, "user1@example.com"));
	}
	v = xstrdup("again");
	hashmap_put(m, v, v);
	ck_assert_ptr_eq(hashmap_get(m, "again"), v);
	freed = 0;
	hashmap_free(m, count_free);
	ck_assert_int_eq(freed, 1);
}
END_TEST

/*
 * A borrowing map keeps the caller's key pointers: values holding their
 * own keys, through growth, replacement (the new key is taken: the old
 * one may be freed), iteration and removal.
 */
START_TEST(test_borrowing)
{
	struct hashmap		*m = hashmap_new_borrowing();
	struct hashmap_iter	 it;
	char			**keys, *again;
	const char		*k;
	void			*v;
	unsigned		 i, n = 0;

	keys = xcalloc(MANY, sizeof *keys);
	for (i = 0; i < MANY; i++) {
		keys[i] = xmalloc(32);
		key_of(keys[i], 32, i);
		ck_assert_ptr_null(hashmap_put(m, keys[i], keys[i]));
	}
	ck_assert_uint_eq(hashmap_count(m), MANY);
	/* Not a copy: the very pointer comes back from iteration. */
	hashmap_iter_init(&it, m);
	while (hashmap_iter_next(&it, &k, &v)) {
		ck_assert_ptr_eq(k, v);
		n++;
	}
	ck_assert_uint_eq(n, MANY);
	/* Replace key 7's value with one holding an equal key of its own;
	 * the first copy goes. */
	again = xstrdup(keys[7]);
	ck_assert_ptr_eq(hashmap_put(m, again, again), keys[7]);
	free(keys[7]);
	keys[7] = again;
	ck_assert_ptr_eq(hashmap_get(m, "user7@example.com"), again);
	hashmap_iter_init(&it, m);
	while (hashmap_iter_next(&it, &k, &v))
		if (v == again)
			ck_assert_ptr_eq(k, again);
	/* Every other key removed, with the iterator or directly. */
	hashmap_iter_init(&it, m);
	while (hashmap_iter_next(&it, &k, &v)) {
		i = (unsigned)strtoul(k + 4, NULL, 10);
		if (i % 4 == 0)
			ck_assert_ptr_eq(hashmap_iter_remove(&it), keys[i]);
	}
	for (i = 2; i < MANY; i += 4)
		ck_assert_ptr_eq(hashmap_remove(m, keys[i]), keys[i]);
	ck_assert_uint_eq(hashmap_count(m), MANY / 2);
	for (i = 0; i < MANY; i++) {
		if (i % 2 == 0)
			ck_assert_ptr_null(hashmap_get(m, keys[i]));
		else
			ck_assert_ptr_eq(hashmap_get(m, keys[i]), keys[i]);
	}
	hashmap_free(m, NULL);
	for (i = 0; i < MANY; i++)
		free(keys[i]);
	free(keys);
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("hashmap");
	TCase	*tc = tcase_create("core");

	/* 100,000 keys take about 6 s of CPU under the sanitizers: room
	 * for a loaded machine, not a timing goal. */
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_basic);
	tcase_add_test(tc, test_many);
	tcase_add_test(tc, test_iterate);
	tcase_add_test(tc, test_iter_remove);
	tcase_add_loop_test(tc, test_random, 0, 2);
	tcase_add_loop_test(tc, test_free_values, 0, 2);
	tcase_add_test(tc, test_borrowing);
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
