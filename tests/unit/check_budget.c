/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the budget split and the shrink-before-grow plan, step by
 * step and in a randomised model of nodes, etcd records, joins and
 * crashes that checks after every step that the records (and so what
 * the nodes use) never add up to more than the budget and that no
 * mailbox is held by two nodes.
 */
#include "config.h"

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/backoff.h"
#include "cluster/budget.h"
#include "cluster/hrw.h"

START_TEST(test_split_equal)
{
	unsigned	 out[8], t, sum;
	size_t		 n, i;

	budget_split(10, NULL, 3, out);
	ck_assert_uint_eq(out[0], 4);
	ck_assert_uint_eq(out[1], 3);
	ck_assert_uint_eq(out[2], 3);
	budget_split(2, NULL, 3, out);
	ck_assert_uint_eq(out[0], 1);
	ck_assert_uint_eq(out[1], 1);
	ck_assert_uint_eq(out[2], 0);
	for (t = 0; t < 300; t++) {
		for (n = 1; n <= 8; n++) {
			budget_split(t, NULL, n, out);
			for (sum = 0, i = 0; i < n; i++) {
				sum += out[i];
				/* Within one of each other. */
				ck_assert_uint_le(out[i], out[0]);
				ck_assert_uint_ge(out[i] + 1, out[0]);
			}
			ck_assert_uint_eq(sum, t);
		}
	}
}
END_TEST

START_TEST(test_split_weighted)
{
	uint64_t	 w[4] = { 1, 1, 2, 0 }, z[3] = { 0, 0, 0 };
	uint64_t	 big[3] = { UINT64_MAX / 2, UINT64_MAX / 4, 3 };
	unsigned	 out[4];

	budget_split(100, w, 3, out);
	ck_assert_uint_eq(out[0], 25);
	ck_assert_uint_eq(out[1], 25);
	ck_assert_uint_eq(out[2], 50);
	/* 7 * (1, 1, 2) / 4 = 1.75, 1.75, 3.5: the two .75s get a unit. */
	budget_split(7, w, 3, out);
	ck_assert_uint_eq(out[0], 2);
	ck_assert_uint_eq(out[1], 2);
	ck_assert_uint_eq(out[2], 3);
	/* A member owning nothing gets nothing. */
	budget_split(9, w, 4, out);
	ck_assert_uint_eq(out[3], 0);
	ck_assert_uint_eq(out[0] + out[1] + out[2], 9);
	/* All zero: equal. */
	budget_split(9, z, 3, out);
	ck_assert_uint_eq(out[0], 3);
	/* No overflow with huge weights. */
	budget_split(1000000, big, 3, out);
	ck_assert_uint_eq(out[0] + out[1] + out[2], 1000000);
	ck_assert_uint_gt(out[0], out[1]);
}
END_TEST

static void
input(struct budget_input *in, struct budget_peer *peers, size_t n,
    size_t self)
{
	memset(in, 0, sizeof *in);
	in->total.v[BUDGET_CONCURRENCY] = 10;
	in->total.v[BUDGET_SUBSCRIPTIONS] = 1000;
	in->total.v[BUDGET_STREAMS] = 3;
	in->split[BUDGET_CONCURRENCY] = true;
	in->split[BUDGET_SUBSCRIPTIONS] = true;
	in->peers = peers;
	in->n = n;
	in->self = self;
	in->epoch = 77;
}

START_TEST(test_plan_alone)
{
	struct budget_peer	 me = { true, { { 0, 0, 0 } }, 0 };
	struct budget_input	 in;
	struct budget_plan	 p;

	input(&in, &me, 1, 0);
	budget_plan(&in, &p);
	/* Nothing recorded yet: use nothing, record the share first. */
	ck_assert_uint_eq(p.limits.v[BUDGET_CONCURRENCY], 0);
	ck_assert(p.write);
	ck_assert_uint_eq(p.record.v[BUDGET_CONCURRENCY], 10);
	ck_assert_uint_eq(p.record.v[BUDGET_SUBSCRIPTIONS], 1000);
	/* Not shared: the whole of it, at once. */
	ck_assert_uint_eq(p.limits.v[BUDGET_STREAMS], 3);
	ck_assert(!p.may_acquire);
	/* Written (epoch not yet released): grow to it. */
	me.record = p.record;
	budget_plan(&in, &p);
	ck_assert_uint_eq(p.limits.v[BUDGET_CONCURRENCY], 10);
	ck_assert(!p.write);
	ck_assert(!p.may_acquire);
	in.released = 77;
	budget_plan(&in, &p);
	ck_assert(p.write);
	ck_assert_uint_eq(p.record_epoch, 77);
	me.epoch = 77;
	budget_plan(&in, &p);
	ck_assert(!p.write);
	ck_assert(p.may_acquire);
	ck_assert(!p.settled);		/* applied is still 0 */
	in.applied = p.limits;
	budget_plan(&in, &p);
	ck_assert(p.settled);
}
END_TEST

START_TEST(test_plan_shrink_then_grow)
{
	struct budget_peer	 peers[2] = {
		{ true, { { 10, 1000, 3 } }, 5 },	/* a, alone before */
		{ true, { { 0, 0, 0 } }, 0 }		/* b, joining */
	};
	struct budget_input	 a, b;
	struct budget_plan	 pa, pb;

	input(&a, peers, 2, 0);
	input(&b, peers, 2, 1);
	a.applied = peers[0].record;
	/* b may not grow while a's record holds everything. */
	budget_plan(&b, &pb);
	ck_assert_uint_eq(pb.limits.v[BUDGET_CONCURRENCY], 0);
	ck_assert_uint_eq(pb.record.v[BUDGET_CONCURRENCY], 0);
	/* a shrinks at once but keeps its record until it applied. */
	budget_plan(&a, &pa);
	ck_assert_uint_eq(pa.share.v[BUDGET_CONCURRENCY], 5);
	ck_assert_uint_eq(pa.limits.v[BUDGET_CONCURRENCY], 5);
	ck_assert_uint_eq(pa.record.v[BUDGET_CONCURRENCY], 10);
	a.applied = pa.limits;
	budget_plan(&a, &pa);
	ck_assert_uint_eq(pa.record.v[BUDGET_CONCURRENCY], 5);
	ck_assert_uint_eq(pa.record.v[BUDGET_SUBSCRIPTIONS], 500);
	ck_assert(pa.write);
	peers[0].record = pa.record;
	/* Now b's record may take the rest, and then its limits follow. */
	budget_plan(&b, &pb);
	ck_assert_uint_eq(pb.limits.v[BUDGET_CONCURRENCY], 0);
	ck_assert_uint_eq(pb.record.v[BUDGET_CONCURRENCY], 5);
	peers[1].record = pb.record;
	budget_plan(&b, &pb);
	ck_assert_uint_eq(pb.limits.v[BUDGET_CONCURRENCY], 5);
	ck_assert_uint_eq(pb.limits.v[BUDGET_SUBSCRIPTIONS], 500);
}
END_TEST

START_TEST(test_plan_unreadable_peer)
{
	struct budget_peer	 peers[2] = {
		{ true, { { 0, 0, 0 } }, 77 },
		{ false, { { 0, 0, 0 } }, 77 }
	};
	struct budget_input	 in;
	struct budget_plan	 p;

	input(&in, peers, 2, 0);
	in.released = 77;
	budget_plan(&in, &p);
	ck_assert_uint_eq(p.record.v[BUDGET_CONCURRENCY], 0);
	ck_assert_uint_eq(p.limits.v[BUDGET_CONCURRENCY], 0);
	ck_assert(!p.may_acquire);
}
END_TEST

/* ---- the randomised model ---- */

#define MAXN	6
#define NMB	300

struct mnode {
	char			 name[4];
	bool			 alive;		/* registered in "etcd" */
	struct budget_peer	 rec;		/* its record in "etcd" */
	/* The node's own state. */
	bool			 has_view;
	int64_t			 vrev;
	size_t			 vn;
	size_t			 vidx[MAXN];	/* members, sorted */
	struct budget_peer	 vpeer[MAXN];	/* records as read */
	uint64_t		 vepoch;
	bool			 release_due;
	uint64_t		 released;
	struct budget		 limits;
	struct budget		 applied;
	bool			 held[NMB];
};

struct model {
	struct mnode		 node[MAXN];
	int64_t			 rev;
	struct budget		 total;
	bool			 split[BUDGET_RES_MAX];
	bool			 weighted;
	char			 mb[NMB][12];
	struct hrw_item		 items[NMB];
	uint64_t		 ih[NMB];	/* item hashes */
	uint64_t		 mh[MAXN];	/* member hashes */
	struct backoff_rng	 rng;
	unsigned		 cas_conflicts;
	unsigned		 shrinks;	/* limits below applied seen */
};

static void
members(const struct model *m, size_t *idx, size_t *n)
{
	size_t	 i;

	for (*n = 0, i = 0; i < MAXN; i++)	/* names sort as indices */
		if (m->node[i].alive)
			idx[(*n)++] = i;
}

static uint64_t
epoch_of(const size_t *idx, size_t n)
{
	uint64_t	 e = 0;
	size_t		 i;

	for (i = 0; i < n; i++)
		e |= 1ULL << idx[i];
	return (e + 1);
}

/* Owner (node index) of mailbox k under a member list. */
static size_t
owner_of(const struct model *m, const size_t *idx, size_t n, size_t k)
{
	const char	*names[MAXN];
	uint64_t	 h[MAXN];
	size_t		 i;

	for (i = 0; i < n; i++) {
		names[i] = m->node[idx[i]].name;
		h[i] = m->mh[idx[i]];
	}
	return (idx[hrw_owner(names, h, n, m->ih[k])]);
}

/* Range of the prefix: the node's view becomes etcd's state. */
static void
refresh(struct model *m, size_t i)
{
	struct mnode	*nd = &m->node[i];
	size_t		 k;

	members(m, nd->vidx, &nd->vn);
	for (k = 0; k < nd->vn; k++)
		nd->vpeer[k] = m->node[nd->vidx[k]].rec;
	nd->vrev = m->rev;
	if (!nd->has_view || epoch_of(nd->vidx, nd->vn) != nd->vepoch) {
		nd->vepoch = epoch_of(nd->vidx, nd->vn);
		nd->release_due = true;
	}
	nd->has_view = true;
}

/* The manager drops what it no longer owns, then says so. */
static void
release(struct model *m, size_t i)
{
	struct mnode	*nd = &m->node[i];
	size_t		 k;

	if (!nd->release_due)
		return;
	for (k = 0; k < NMB; k++)
		if (nd->held[k] && owner_of(m, nd->vidx, nd->vn, k) != i)
			nd->held[k] = false;
	nd->released = nd->vepoch;
	nd->release_due = false;
}

static void
plan_of(struct model *m, size_t i, struct budget_plan *p)
{
	struct mnode		*nd = &m->node[i];
	struct budget_input	 in;
	uint64_t		 w[MAXN];
	size_t			 k, self = 0;

	for (k = 0; k < nd->vn; k++)
		if (nd->vidx[k] == i)
			self = k;
	memset(&in, 0, sizeof in);
	in.total = m->total;
	memcpy(in.split, m->split, sizeof in.split);
	if (m->weighted) {
		memset(w, 0, sizeof w);
		for (k = 0; k < NMB; k++) {
			size_t o = owner_of(m, nd->vidx, nd->vn, k), j;

			for (j = 0; j < nd->vn; j++)
				if (nd->vidx[j] == o)
					w[j]++;
		}
		in.sub_weights = w;
	}
	in.peers = nd->vpeer;
	in.n = nd->vn;
	in.self = self;
	in.epoch = nd->vepoch;
	in.released = nd->released;
	in.applied = nd->applied;
	budget_plan(&in, p);
}

/* Plan and, if it says so, write the record by compare-and-swap. */
static void
plan_write(struct model *m, size_t i)
{
	struct mnode		*nd = &m->node[i];
	struct budget_plan	 p;
	size_t			 k;
	int			 x;

	plan_of(m, i, &p);
	for (x = 0; x < BUDGET_RES_MAX; x++)
		if (p.limits.v[x] < nd->applied.v[x])
			m->shrinks++;
	nd->limits = p.limits;
	if (!p.write)
		return;
	if (nd->vrev != m->rev) {
		m->cas_conflicts++;
		refresh(m, i);		/* the failure branch's range */
		return;
	}
	nd->rec.valid = true;
	nd->rec.record = p.record;
	nd->rec.epoch = p.record_epoch;
	m->rev++;
	nd->vrev = m->rev;
	for (k = 0; k < nd->vn; k++)
		if (nd->vidx[k] == i)
			nd->vpeer[k] = nd->rec;
}

/* The scheduler reaches its limits (shrinking takes a while). */
static void
apply(struct model *m, size_t i)
{
	m->node[i].applied = m->node[i].limits;
}

static void
acquire(struct model *m, size_t i)
{
	struct mnode		*nd = &m->node[i];
	struct budget_plan	 p;
	size_t			 k;

	plan_of(m, i, &p);
	if (!p.may_acquire)
		return;
	for (k = 0; k < NMB; k++)
		if (owner_of(m, nd->vidx, nd->vn, k) == i)
			nd->held[k] = true;
}

static void
join(struct model *m, size_t i)
{
	struct mnode	*nd = &m->node[i];
	char		 name[4];

	memcpy(name, nd->name, sizeof name);
	memset(nd, 0, sizeof *nd);
	memcpy(nd->name, name, sizeof name);
	nd->alive = true;
	nd->rec.valid = true;	/* registered with a zero record */
	m->rev++;
}

/* Crash or partition: it fenced itself before its lease (and key) went. */
static void
crash(struct model *m, size_t i)
{
	m->node[i].alive = false;
	memset(m->node[i].held, 0, sizeof m->node[i].held);
	memset(&m->node[i].applied, 0, sizeof m->node[i].applied);
	m->rev++;
}

/* Plain tests in the hot loop: check logs every passing assertion. */
static void
check_invariants(const struct model *m)
{
	uint64_t	 sum;
	size_t		 i, k, holders;
	int		 x;

	for (x = 0; x < BUDGET_RES_MAX; x++) {
		for (sum = 0, i = 0; i < MAXN; i++) {
			if (!m->node[i].alive || !m->split[x])
				continue;
			/* I1: what a node uses is covered by its record. */
			if (m->node[i].applied.v[x] >
			    m->node[i].rec.record.v[x])
				ck_abort_msg("%s uses %u %s, its record says "
				    "%u", m->node[i].name,
				    m->node[i].applied.v[x],
				    budget_res_name(x),
				    m->node[i].rec.record.v[x]);
			sum += m->node[i].rec.record.v[x];
		}
		/* I2: records (and so uses) fit the account's budget. */
		if (m->split[x] && sum > m->total.v[x])
			ck_abort_msg("records hold %llu %s of %u",
			    (unsigned long long)sum, budget_res_name(x),
			    m->total.v[x]);
	}
	for (k = 0; k < NMB; k++) {
		for (holders = 0, i = 0; i < MAXN; i++)
			holders += m->node[i].alive && m->node[i].held[k];
		if (holders > 1)
			ck_abort_msg("mailbox %zu held by %zu nodes", k,
			    holders);
	}
}

static void
model_init(struct model *m, uint64_t seed, bool weighted)
{
	size_t	 i;

	memset(m, 0, sizeof *m);
	for (i = 0; i < MAXN; i++) {
		snprintf(m->node[i].name, sizeof m->node[i].name, "n%zu", i);
		m->mh[i] = hrw_member_hash(m->node[i].name);
	}
	for (i = 0; i < NMB; i++) {
		snprintf(m->mb[i], sizeof m->mb[i], "m%zu@x", i);
		m->items[i].address = m->mb[i];
		m->ih[i] = hrw_item_hash(&m->items[i], 1);
	}
	m->total.v[BUDGET_CONCURRENCY] = 10;
	m->total.v[BUDGET_SUBSCRIPTIONS] = 250;
	m->total.v[BUDGET_STREAMS] = 3;
	m->split[BUDGET_CONCURRENCY] = true;
	m->split[BUDGET_SUBSCRIPTIONS] = true;
	m->weighted = weighted;
	backoff_rng_seed(&m->rng, seed);
}

static void
run_model(uint64_t seed, bool weighted)
{
	struct model		 m;
	struct budget_plan	 p;
	size_t			 i, k, idx[MAXN], n;
	unsigned		 step, round;

	model_init(&m, seed, weighted);
	join(&m, 0);
	for (step = 0; step < 20000; step++) {
		i = (size_t)backoff_rng_range(&m.rng, 0, MAXN - 1);
		switch (backoff_rng_range(&m.rng, 0, 20)) {
		case 0:
			if (m.node[i].alive) {
				members(&m, idx, &n);
				if (n > 1)
					crash(&m, i);
			} else
				join(&m, i);
			break;
		case 1: case 2: case 3: case 4:
			if (m.node[i].alive)
				refresh(&m, i);
			break;
		case 5: case 6: case 7:
			if (m.node[i].alive && m.node[i].has_view)
				release(&m, i);
			break;
		case 8: case 9: case 10: case 11: case 12:
			if (m.node[i].alive && m.node[i].has_view)
				plan_write(&m, i);
			break;
		case 13: case 14: case 15: case 16:
			if (m.node[i].alive && m.node[i].has_view)
				apply(&m, i);
			break;
		default:
			if (m.node[i].alive && m.node[i].has_view)
				acquire(&m, i);
			break;
		}
		check_invariants(&m);
	}
	/* The faults must really have happened. */
	ck_assert_uint_gt(m.cas_conflicts, 0);
	ck_assert_uint_gt(m.shrinks, 0);

	/* Quiet now: every node settles at its share, owning its own. */
	for (round = 0; round < 20; round++) {
		for (i = 0; i < MAXN; i++) {
			if (!m.node[i].alive)
				continue;
			refresh(&m, i);
			release(&m, i);
			plan_write(&m, i);
			apply(&m, i);
			plan_write(&m, i);
			apply(&m, i);
			acquire(&m, i);
			check_invariants(&m);
		}
	}
	members(&m, idx, &n);
	for (i = 0; i < MAXN; i++) {
		if (!m.node[i].alive)
			continue;
		plan_of(&m, i, &p);
		ck_assert_msg(p.settled, "node %zu not settled", i);
		ck_assert_mem_eq(&m.node[i].applied, &p.share,
		    sizeof p.share);
	}
	for (k = 0; k < NMB; k++)
		if (!m.node[owner_of(&m, idx, n, k)].held[k])
			ck_abort_msg("mailbox %zu not held by its owner", k);
}

START_TEST(test_model_equal)
{
	run_model(1, false);
	run_model(2, false);
	run_model(3, false);
}
END_TEST

START_TEST(test_model_weighted)
{
	run_model(4, true);
	run_model(5, true);
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("budget");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_split_equal);
	tcase_add_test(tc, test_split_weighted);
	tcase_add_test(tc, test_plan_alone);
	tcase_add_test(tc, test_plan_shrink_then_grow);
	tcase_add_test(tc, test_plan_unreadable_peer);
	tcase_add_test(tc, test_model_equal);
	tcase_add_test(tc, test_model_weighted);
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
