/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the group map (content digest, shared keys, merge) and
 * placement by it: nodes holding the same map place alike whatever
 * order they learnt it in, a group lands on one member, a mailbox
 * without a key goes by its address, and a newly learnt key moves that
 * mailbox alone.
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "cluster/groupmap.h"
#include "cluster/hrw.h"

#define NADDR	3000
#define NGROUP	7

static char	*addrs[NADDR];
static char	*gkeys[NGROUP];
static const char *const members[] = { "a", "b", "c" };
static uint64_t	 mh[3];

static void
setup(void)
{
	size_t	 i;

	for (i = 0; i < NADDR; i++)
		xasprintf(&addrs[i], "user%06zu@example.com", i);
	for (i = 0; i < NGROUP; i++)
		xasprintf(&gkeys[i], "https://mail.example.com/EWS/"
		    "Exchange.asmx\nDAG%02zu", i);
	for (i = 0; i < 3; i++)
		mh[i] = hrw_member_hash(members[i]);
}

static void
teardown(void)
{
	size_t	 i;

	for (i = 0; i < NADDR; i++)
		free(addrs[i]);
	for (i = 0; i < NGROUP; i++)
		free(gkeys[i]);
}

/* Mailbox i's group, or -1 for every tenth (no key known). */
static int
group_of(size_t i)
{
	return (i % 10 == 9 ? -1 : (int)(i * 7919 % NGROUP));
}

static struct groupmap *
filled(bool backwards)
{
	struct groupmap	*g = groupmap_new();
	size_t		 i, k;

	for (k = 0; k < NADDR; k++) {
		i = backwards ? NADDR - 1 - k : k;
		if (group_of(i) >= 0)
			ck_assert(groupmap_set(g, addrs[i],
			    gkeys[group_of(i)]));
	}
	return (g);
}

static size_t
owner(const struct groupmap *g, size_t i, unsigned slices, size_t n)
{
	return (hrw_owner(members, mh, n,
	    groupmap_place_hash(g, addrs[i], slices)));
}

START_TEST(test_digest_is_content)
{
	struct groupmap	*a = filled(false), *b = filled(true);
	uint64_t	 d;

	ck_assert_uint_eq(groupmap_count(a), NADDR - NADDR / 10);
	ck_assert_uint_eq(groupmap_groups(a), NGROUP);
	ck_assert_uint_ne(groupmap_digest(a), 0);
	ck_assert_uint_eq(groupmap_digest(a), groupmap_digest(b));
	/* Setting the same key again changes nothing. */
	d = groupmap_digest(a);
	ck_assert(!groupmap_set(a, addrs[0], gkeys[group_of(0)]));
	ck_assert_uint_eq(groupmap_digest(a), d);
	/* Another key changes it; back again restores it. */
	ck_assert(groupmap_set(a, addrs[0], gkeys[(group_of(0) + 1) %
	    NGROUP]));
	ck_assert_uint_ne(groupmap_digest(a), d);
	ck_assert(groupmap_set(a, addrs[0], gkeys[group_of(0)]));
	ck_assert_uint_eq(groupmap_digest(a), d);
	/* Removing every entry gives the empty map's digest and groups. */
	groupmap_clear(b);
	ck_assert_uint_eq(groupmap_digest(b), 0);
	ck_assert_uint_eq(groupmap_groups(b), 0);
	ck_assert(!groupmap_set(b, addrs[0], NULL));
	ck_assert(groupmap_set(b, addrs[0], gkeys[0]));
	ck_assert_uint_eq(groupmap_groups(b), 1);
	ck_assert(groupmap_set(b, addrs[0], NULL));
	ck_assert_uint_eq(groupmap_digest(b), 0);
	ck_assert_uint_eq(groupmap_groups(b), 0);
	ck_assert_ptr_null(groupmap_get(b, addrs[0]));
	groupmap_free(a);
	groupmap_free(b);
}
END_TEST

START_TEST(test_bounds_and_merge)
{
	struct groupmap	*a = groupmap_new(), *b = filled(false);
	char		 big[GROUPMAP_KEY_MAX + 2];

	memset(big, 'k', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ck_assert(!groupmap_set(a, addrs[1], big));
	ck_assert_uint_eq(groupmap_count(a), 0);
	/* Merged in parts, a map ends as the one read whole. */
	ck_assert(groupmap_set(a, addrs[0], gkeys[3]));
	ck_assert(groupmap_merge(a, b));
	ck_assert(!groupmap_merge(a, b));
	ck_assert_uint_eq(groupmap_digest(a), groupmap_digest(b));
	ck_assert_str_eq(groupmap_get(a, addrs[0]), gkeys[group_of(0)]);
	groupmap_swap(a, b);
	ck_assert_uint_eq(groupmap_digest(a), groupmap_digest(b));
	groupmap_free(a);
	groupmap_free(b);
	groupmap_free(NULL);
}
END_TEST

START_TEST(test_groups_on_one_member)
{
	struct groupmap	*a = filled(false), *b = filled(true);
	size_t		 where[NGROUP], i, o, seen[3] = { 0, 0, 0 };
	int		 gi;

	for (gi = 0; gi < NGROUP; gi++)
		where[gi] = SIZE_MAX;
	for (i = 0; i < NADDR; i++) {
		o = owner(a, i, 1, 3);
		/* The same on a node that learnt the map the other way. */
		ck_assert_uint_eq(owner(b, i, 1, 3), o);
		seen[o]++;
		if ((gi = group_of(i)) < 0) {
			/* No key: by its address, as without a map. */
			ck_assert_uint_eq(o, owner(NULL, i, 1, 3));
			continue;
		}
		if (where[gi] == SIZE_MAX)
			where[gi] = o;
		ck_assert_uint_eq(o, where[gi]);
		/* group_slices 0: by address, whatever the map says. */
		ck_assert_uint_eq(owner(a, i, 0, 3), owner(NULL, i, 1, 3));
	}
	/* Groups are units: a member leaving moves only its own groups. */
	for (i = 0; i < NADDR; i++)
		if (owner(a, i, 1, 3) != 2)
			ck_assert_uint_eq(owner(a, i, 1, 2), owner(a, i, 1, 3));
	groupmap_free(a);
	groupmap_free(b);
}
END_TEST

START_TEST(test_learnt_key_moves_that_mailbox)
{
	struct groupmap	*g = filled(false);
	size_t		 before[NADDR], i, j, j0;
	int		 k;

	for (i = 0; i < NADDR; i++)
		before[i] = owner(g, i, 1, 3);
	/* Mailboxes without a key learn one, one at a time. */
	for (i = 9; i < 300; i += 10) {
		k = (int)(i % NGROUP);
		for (j0 = 0; group_of(j0) != k; j0++)
			;
		groupmap_set(g, addrs[i], gkeys[k]);
		/* It joins its group's member; nothing else moves. */
		ck_assert_uint_eq(owner(g, i, 1, 3), owner(g, j0, 1, 3));
		for (j = 0; j < NADDR; j++)
			if (j != i)
				ck_assert_uint_eq(owner(g, j, 1, 3),
				    before[j]);
		before[i] = owner(g, i, 1, 3);
	}
	groupmap_free(g);
}
END_TEST

START_TEST(test_slices_keep_parts_together)
{
	struct groupmap	*g = groupmap_new();
	size_t		 i, counts[3] = { 0, 0, 0 }, o, o1;
	struct hrw_item	 it;
	struct buf	 key = BUF_INIT;

	/* One group for everybody: whole, it lands on one member. */
	for (i = 0; i < NADDR; i++)
		groupmap_set(g, addrs[i], gkeys[0]);
	o1 = owner(g, 0, 1, 3);
	for (i = 0; i < NADDR; i++)
		ck_assert_uint_eq(owner(g, i, 1, 3), o1);
	/* In 16 slices it spreads, each slice on one member. */
	for (i = 0; i < NADDR; i++) {
		o = owner(g, i, 16, 3);
		counts[o]++;
		it.address = addrs[i];
		it.group = gkeys[0];
		buf_reset(&key);
		hrw_item_key(&it, 16, &key);
		ck_assert_uint_eq(groupmap_place_hash(g, addrs[i], 16),
		    hrw_key_hash(buf_str(&key), key.len));
	}
	for (i = 0; i < 3; i++)
		ck_assert_uint_gt(counts[i], NADDR / 10);
	buf_free(&key);
	groupmap_free(g);
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("groupmap");
	TCase	*tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_digest_is_content);
	tcase_add_test(tc, test_bounds_and_merge);
	tcase_add_test(tc, test_groups_on_one_member);
	tcase_add_test(tc, test_learnt_key_moves_that_mailbox);
	tcase_add_test(tc, test_slices_keep_parts_together);
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
