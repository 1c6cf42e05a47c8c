/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: SipHash-2-4 against the reference vectors, rendezvous
 * hashing (stability, minimal movement on join and leave, balance,
 * groups kept together).
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/siphash.h"
#include "base/xmalloc.h"
#include "cluster/hrw.h"

#define NADDR	20000

static char	*addrs[NADDR];
static struct hrw_item items[NADDR];

static void
setup(void)
{
	size_t	 i;

	for (i = 0; i < NADDR; i++) {
		xasprintf(&addrs[i], "user%zu@example.com", i);
		items[i].address = addrs[i];
		items[i].group = NULL;
	}
}

static void
teardown(void)
{
	size_t	 i;

	for (i = 0; i < NADDR; i++)
		free(addrs[i]);
}

/* The reference implementation's vectors: key 00..0f, message 00..n-1. */
START_TEST(test_siphash_vectors)
{
	uint8_t		 key[16], msg[64];
	struct siphash	 s;
	size_t		 i, cut;

	for (i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	ck_assert_uint_eq(siphash24(key, msg, 0), 0x726fdb47dd0e0e31ULL);
	ck_assert_uint_eq(siphash24(key, msg, 1), 0x74f839c593dc67fdULL);
	ck_assert_uint_eq(siphash24(key, msg, 15), 0xa129ca6149be45e5ULL);
	/* Fed in pieces, the same value. */
	for (cut = 0; cut <= 63; cut++) {
		siphash_init(&s, key);
		siphash_update(&s, msg, cut);
		siphash_update(&s, msg + cut, 63 - cut);
		ck_assert_uint_eq(siphash_final(&s), siphash24(key, msg, 63));
	}
	siphash_init(&s, key);
	for (i = 0; i < 63; i++)
		siphash_update(&s, msg + i, 1);
	ck_assert_uint_eq(siphash_final(&s), siphash24(key, msg, 63));
}
END_TEST

/*
 * Fixed values: a change here moves mailboxes between the nodes of a
 * running cluster whose nodes run different builds.
 */
START_TEST(test_stable_values)
{
	ck_assert_uint_eq(hrw_member_hash("node-a"), 0xeed295cb919a9becULL);
	ck_assert_uint_eq(hrw_key_hash("alice@example.com", 17),
	    0x347080e084a4b2fdULL);
	ck_assert_uint_eq(hrw_weight(1, 2), 0x0b5181c509f8d8ceULL);
}
END_TEST

START_TEST(test_owner_order_and_ties)
{
	const char	*m1[] = { "a", "b", "c" }, *m2[] = { "c", "a", "b" };
	uint64_t	 h1[3], h2[3], kh;
	size_t		 i, o1, o2;

	for (i = 0; i < 3; i++) {
		h1[i] = hrw_member_hash(m1[i]);
		h2[i] = hrw_member_hash(m2[i]);
	}
	for (i = 0; i < 1000; i++) {
		kh = hrw_key_hash(addrs[i], strlen(addrs[i]));
		o1 = hrw_owner(m1, h1, 3, kh);
		o2 = hrw_owner(m2, h2, 3, kh);
		ck_assert_str_eq(m1[o1], m2[o2]);
	}
	/* Equal weights (same hash given twice): the smaller name wins. */
	h1[0] = h1[1] = h1[2] = 42;
	ck_assert_uint_eq(hrw_owner(m2, h1, 3, 7), 1);
}
END_TEST

/* Owner names of every address over a member list. */
static const char **
owners(const char *const *members, size_t n)
{
	const char	**out = xcalloc(NADDR, sizeof *out);
	size_t		 *own = xcalloc(NADDR, sizeof *own), i;

	hrw_assign(members, n, items, NADDR, 1, own, NULL);
	for (i = 0; i < NADDR; i++)
		out[i] = members[own[i]];
	free(own);
	return (out);
}

START_TEST(test_join_moves_only_to_newcomer)
{
	const char	*four[] = { "n1", "n2", "n3", "n4" };
	const char	*five[] = { "n1", "n2", "n3", "n4", "n5" };
	const char	**before = owners(four, 4), **after = owners(five, 5);
	size_t		 i, moved = 0;

	for (i = 0; i < NADDR; i++) {
		if (strcmp(before[i], after[i]) == 0)
			continue;
		ck_assert_str_eq(after[i], "n5");
		moved++;
	}
	/* About a fifth moves; 20,000 draws keep it well inside this. */
	ck_assert_uint_gt(moved, NADDR / 5 * 9 / 10);
	ck_assert_uint_lt(moved, NADDR / 5 * 11 / 10);
	free(before);
	free(after);
}
END_TEST

START_TEST(test_leave_moves_only_the_leaver)
{
	const char	*four[] = { "n1", "n2", "n3", "n4" };
	const char	*three[] = { "n1", "n3", "n4" };
	const char	**before = owners(four, 4), **after = owners(three, 3);
	size_t		 i, moved = 0;

	for (i = 0; i < NADDR; i++) {
		if (strcmp(before[i], "n2") == 0) {
			moved++;
			continue;
		}
		ck_assert_str_eq(before[i], after[i]);
	}
	ck_assert_uint_gt(moved, 0);
	free(before);
	free(after);
}
END_TEST

START_TEST(test_balance)
{
	const char	*m[] = { "alpha", "beta", "gamma", "delta", "epsilon" };
	size_t		 counts[5], *own = xcalloc(NADDR, sizeof *own), i;

	hrw_assign(m, 5, items, NADDR, 1, own, counts);
	for (i = 0; i < 5; i++) {
		ck_assert_uint_gt(counts[i], NADDR / 5 * 95 / 100);
		ck_assert_uint_lt(counts[i], NADDR / 5 * 105 / 100);
	}
	free(own);
}
END_TEST

START_TEST(test_groups_together)
{
	const char	*m[] = { "n1", "n2", "n3" };
	char		 groups[40][16];
	size_t		*own = xcalloc(NADDR, sizeof *own), i, g;
	size_t		 first[40], seen[3];
	struct buf	 k = BUF_INIT;

	/* Every other mailbox in one of 40 groups, the rest without. */
	for (g = 0; g < 40; g++)
		snprintf(groups[g], sizeof groups[g], "group-%zu", g);
	for (i = 0; i < NADDR; i += 2)
		items[i].group = groups[i / 2 % 40];
	hrw_assign(m, 3, items, NADDR, 1, own, NULL);
	for (g = 0; g < 40; g++)
		first[g] = SIZE_MAX;
	memset(seen, 0, sizeof seen);
	for (i = 0; i < NADDR; i += 2) {
		g = i / 2 % 40;
		if (first[g] == SIZE_MAX)
			first[g] = own[i];
		ck_assert_uint_eq(own[i], first[g]);
	}
	for (g = 0; g < 40; g++)
		seen[first[g]]++;
	for (i = 0; i < 3; i++)
		ck_assert_uint_gt(seen[i], 0);	/* groups spread out */
	/* Ungrouped ones still go by address. */
	for (i = 1; i < NADDR; i += 2)
		ck_assert_uint_eq(own[i], hrw_owner(m, (uint64_t[]){
		    hrw_member_hash("n1"), hrw_member_hash("n2"),
		    hrw_member_hash("n3") }, 3,
		    hrw_key_hash(addrs[i], strlen(addrs[i]))));

	/* Sliced: a group spreads, but each slice stays together. */
	hrw_assign(m, 3, items, NADDR, 4, own, NULL);
	memset(seen, 0, sizeof seen);
	for (i = 0; i < NADDR; i += 2) {
		if (i / 2 % 40 != 0)
			continue;
		buf_reset(&k);
		hrw_item_key(&items[i], 4, &k);
		ck_assert_uint_eq(own[i], hrw_owner(m, (uint64_t[]){
		    hrw_member_hash("n1"), hrw_member_hash("n2"),
		    hrw_member_hash("n3") }, 3, hrw_key_hash(k.data, k.len)));
		seen[own[i]] = 1;
	}
	ck_assert_uint_gt(seen[0] + seen[1] + seen[2], 1);
	buf_free(&k);
	for (i = 0; i < NADDR; i++)
		items[i].group = NULL;
	free(own);
}
END_TEST

START_TEST(test_item_key)
{
	struct hrw_item	 a = { "bob@example.com", NULL };
	struct hrw_item	 b = { "bob@example.com", "g1" };
	struct buf	 k = BUF_INIT;

	hrw_item_key(&a, 4, &k);
	ck_assert_str_eq(buf_str(&k), "bob@example.com");
	buf_reset(&k);
	hrw_item_key(&b, 1, &k);
	ck_assert_str_eq(buf_str(&k), "g1");
	buf_reset(&k);
	hrw_item_key(&b, 4, &k);
	ck_assert_int_eq(strncmp(buf_str(&k), "g1\n", 3), 0);
	ck_assert_uint_eq(k.len, 4);
	ck_assert_uint_eq(hrw_item_hash(&b, 4), hrw_key_hash(k.data, k.len));
	buf_free(&k);
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("hrw");
	TCase	*tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_siphash_vectors);
	tcase_add_test(tc, test_stable_values);
	tcase_add_test(tc, test_owner_order_and_ties);
	tcase_add_test(tc, test_join_moves_only_to_newcomer);
	tcase_add_test(tc, test_leave_moves_only_the_leaver);
	tcase_add_test(tc, test_balance);
	tcase_add_test(tc, test_groups_together);
	tcase_add_test(tc, test_item_key);
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
