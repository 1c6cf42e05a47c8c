/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the timer heap against a brute-force model, at scale, and
 * callbacks that reschedule or cancel during timerheap_pop_due().
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/timerheap.h"

/* An owner with the entry embedded, as a mailbox will have it. */
struct owner {
	int			 id;
	struct timerheap_entry	 timer;
	/* The model. */
	bool			 scheduled;
	int64_t			 deadline;
	uint64_t		 order;		/* when last set */
};

/* Deterministic generator, so a failure can be replayed. */
static uint64_t	 rng_state;

static uint32_t
rng(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return ((uint32_t)(rng_state >> 33));
}

/* The heap property and every back index. */
static void
check_invariant(const struct timerheap *h)
{
	uint32_t	 i, parent;

	for (i = 0; i < h->n; i++) {
		ck_assert_uint_eq(h->heap[i]->index, i + 1);
		if (i == 0)
			continue;
		parent = (i - 1) / 2;
		ck_assert(h->heap[parent]->deadline < h->heap[i]->deadline ||
		    (h->heap[parent]->deadline == h->heap[i]->deadline &&
		    h->heap[parent]->seq < h->heap[i]->seq));
	}
}

/* The model's earliest (deadline, then first set), or NULL. */
static struct owner *
model_min(struct owner *o, size_t n)
{
	struct owner	*best = NULL;
	size_t		 i;

	for (i = 0; i < n; i++) {
		if (!o[i].scheduled)
			continue;
		if (best == NULL || o[i].deadline < best->deadline ||
		    (o[i].deadline == best->deadline &&
		    o[i].order < best->order))
			best = &o[i];
	}
	return (best);
}

struct fired {
	struct owner	**list;
	size_t		  n;
};

static void
record_cb(struct timerheap_entry *e, void *arg)
{
	struct fired	*f = arg;
	struct owner	*o = timerheap_owner(e, struct owner, timer);

	ck_assert(!timerheap_scheduled(e));
	f->list[f->n++] = o;
}

START_TEST(test_model)
{
	enum { N = 300, OPS = 20000 };
	struct owner		*o, *m, *got;
	struct timerheap	 h;
	struct timerheap_entry	*e;
	struct fired		 f;
	uint64_t		 order = 0;
	int64_t			 now;
	size_t			 i, k, count = 0;
	int			 op;

	rng_state = 42;
	o = calloc(N, sizeof(*o));
	f.list = calloc(N, sizeof(*f.list));
	ck_assert_ptr_nonnull(o);
	ck_assert_ptr_nonnull(f.list);
	timerheap_init(&h);
	for (i = 0; i < N; i++) {
		o[i].id = (int)i;
		timerheap_entry_init(&o[i].timer);
	}
	for (op = 0; op < OPS; op++) {
		i = rng() % N;
		switch (rng() % 8) {
		case 0: case 1: case 2:		/* add or update */
			/* Few distinct deadlines, to exercise ties. */
			o[i].deadline = (int64_t)(rng() % 500) - 50;
			timerheap_set(&h, &o[i].timer, o[i].deadline);
			if (!o[i].scheduled)
				count++;
			o[i].scheduled = true;
			o[i].order = order++;
			break;
		case 3: case 4:			/* remove, maybe twice */
			timerheap_remove(&h, &o[i].timer);
			if (o[i].scheduled)
				count--;
			o[i].scheduled = false;
			break;
		case 5:				/* pop */
			m = model_min(o, N);
			e = timerheap_pop(&h);
			if (m == NULL) {
				ck_assert_ptr_null(e);
				break;
			}
			ck_assert_ptr_nonnull(e);
			got = timerheap_owner(e, struct owner, timer);
			ck_assert_int_eq(got->id, m->id);
			ck_assert(!timerheap_scheduled(e));
			m->scheduled = false;
			count--;
			break;
		case 6:				/* fire what is due */
			now = (int64_t)(rng() % 200) - 60;
			f.n = 0;
			k = timerheap_pop_due(&h, now, SIZE_MAX, record_cb, &f);
			ck_assert_uint_eq(k, f.n);
			for (k = 0; k < f.n; k++) {
				m = model_min(o, N);
				ck_assert_ptr_nonnull(m);
				ck_assert_int_le(m->deadline, now);
				ck_assert_int_eq(f.list[k]->id, m->id);
				m->scheduled = false;
				count--;
			}
			m = model_min(o, N);
			ck_assert(m == NULL || m->deadline > now);
			break;
		default:			/* peek */
			m = model_min(o, N);
			e = timerheap_peek(&h);
			if (m == NULL)
				ck_assert_ptr_null(e);
			else {
				ck_assert_ptr_eq(e, &m->timer);
				ck_assert_int_eq(e->deadline, m->deadline);
			}
			break;
		}
		ck_assert_uint_eq(timerheap_count(&h), count);
		ck_assert(timerheap_scheduled(&o[i].timer) == o[i].scheduled);
		if (op % 97 == 0)
			check_invariant(&h);
	}
	check_invariant(&h);
	timerheap_free(&h);
	for (i = 0; i < N; i++)
		ck_assert(!timerheap_scheduled(&o[i].timer));
	free(f.list);
	free(o);
}
END_TEST

START_TEST(test_scale)
{
	enum { N = 100000 };
	struct owner		*o;
	struct timerheap	 h;
	struct timerheap_entry	*e;
	int64_t			 last = INT64_MIN;
	size_t			 i, n = 0;

	rng_state = 7;
	o = calloc(N, sizeof(*o));
	ck_assert_ptr_nonnull(o);
	timerheap_init(&h);
	for (i = 0; i < N; i++) {
		o[i].id = (int)i;
		timerheap_entry_init(&o[i].timer);
		timerheap_set(&h, &o[i].timer, (int64_t)(rng() % 86400000));
	}
	/* Move a tenth, remove a tenth. */
	for (i = 0; i < N; i += 10)
		timerheap_set(&h, &o[i].timer, (int64_t)(rng() % 86400000));
	for (i = 5; i < N; i += 10)
		timerheap_remove(&h, &o[i].timer);
	ck_assert_uint_eq(timerheap_count(&h), N - N / 10);
	check_invariant(&h);
	while ((e = timerheap_pop(&h)) != NULL) {
		ck_assert_int_ge(e->deadline, last);
		last = e->deadline;
		n++;
	}
	ck_assert_uint_eq(n, N - N / 10);
	timerheap_free(&h);
	free(o);
}
END_TEST

/* Equal deadlines fire in the order they were set. */
START_TEST(test_ties_fifo)
{
	struct owner		 o[5];
	struct timerheap	 h;
	struct owner		*list[5];
	struct fired		 f = { list, 0 };
	int			 i;

	timerheap_init(&h);
	for (i = 0; i < 5; i++) {
		o[i].id = i;
		timerheap_entry_init(&o[i].timer);
	}
	timerheap_set(&h, &o[3].timer, 100);
	timerheap_set(&h, &o[1].timer, 100);
	timerheap_set(&h, &o[4].timer, 100);
	timerheap_set(&h, &o[0].timer, 100);
	timerheap_set(&h, &o[2].timer, 50);
	ck_assert_uint_eq(timerheap_pop_due(&h, 99, SIZE_MAX, record_cb, &f),
	    1);
	/* At most two per call: earliest first, the rest stay due. */
	ck_assert_uint_eq(timerheap_pop_due(&h, 100, 2, record_cb, &f), 2);
	ck_assert_uint_eq(timerheap_count(&h), 2);
	ck_assert_uint_eq(timerheap_pop_due(&h, 100, SIZE_MAX, record_cb, &f),
	    2);
	ck_assert_int_eq(list[0]->id, 2);
	ck_assert_int_eq(list[1]->id, 3);
	ck_assert_int_eq(list[2]->id, 1);
	ck_assert_int_eq(list[3]->id, 4);
	ck_assert_int_eq(list[4]->id, 0);
	ck_assert_uint_eq(timerheap_count(&h), 0);
	ck_assert_ptr_null(timerheap_peek(&h));
	ck_assert_ptr_null(timerheap_pop(&h));
	timerheap_free(&h);
}
END_TEST

/* Callbacks that re-arm at now, cancel another due entry, or free. */
struct ctx {
	struct timerheap	*h;
	struct owner		*o;
	int			 fired[4];
	struct owner		*heap_owner;	/* freed in its callback */
};

static void
mean_cb(struct timerheap_entry *e, void *arg)
{
	struct ctx	*c = arg;
	struct owner	*o = timerheap_owner(e, struct owner, timer);

	if (o == c->heap_owner) {
		free(o);
		c->heap_owner = NULL;
		return;
	}
	c->fired[o->id]++;
	if (o->id == 0)			/* re-arm at now, forever */
		timerheap_set(c->h, e, 10);
	if (o->id == 1)			/* cancel a due one */
		timerheap_remove(c->h, &c->o[2].timer);
}

START_TEST(test_callbacks)
{
	struct owner		 o[4];
	struct timerheap	 h;
	struct ctx		 c;
	int			 i;

	timerheap_init(&h);
	memset(&c, 0, sizeof(c));
	c.h = &h;
	c.o = o;
	for (i = 0; i < 4; i++) {
		o[i].id = i;
		timerheap_entry_init(&o[i].timer);
	}
	c.heap_owner = calloc(1, sizeof(*c.heap_owner));
	ck_assert_ptr_nonnull(c.heap_owner);
	timerheap_entry_init(&c.heap_owner->timer);
	timerheap_set(&h, &c.heap_owner->timer, 4);
	timerheap_set(&h, &o[0].timer, 5);
	timerheap_set(&h, &o[1].timer, 6);
	timerheap_set(&h, &o[2].timer, 7);
	timerheap_set(&h, &o[3].timer, 8);

	/* 0 re-arms itself at 10 <= now: not again in this pass. */
	ck_assert_uint_eq(timerheap_pop_due(&h, 10, SIZE_MAX, mean_cb, &c), 4);
	ck_assert_ptr_null(c.heap_owner);
	ck_assert_int_eq(c.fired[0], 1);
	ck_assert_int_eq(c.fired[1], 1);
	ck_assert_int_eq(c.fired[2], 0);	/* cancelled by 1 */
	ck_assert_int_eq(c.fired[3], 1);
	ck_assert(timerheap_scheduled(&o[0].timer));
	/* The next pass fires it once more (and it re-arms again). */
	ck_assert_uint_eq(timerheap_pop_due(&h, 10, SIZE_MAX, mean_cb, &c), 1);
	ck_assert_int_eq(c.fired[0], 2);
	ck_assert_uint_eq(timerheap_count(&h), 1);
	timerheap_remove(&h, &o[0].timer);
	ck_assert_uint_eq(timerheap_pop_due(&h, 10, SIZE_MAX, mean_cb, &c), 0);
	timerheap_free(&h);
}
END_TEST

START_TEST(test_entry_size)
{
	ck_assert_uint_le(sizeof(struct timerheap_entry), 16);
}
END_TEST

/* Fire and move the entry later (to 20), recording it. */
struct later {
	struct timerheap	*h;
	struct fired		 f;
};

static void
later_cb(struct timerheap_entry *e, void *arg)
{
	struct later	*l = arg;

	l->f.list[l->f.n++] = timerheap_owner(e, struct owner, timer);
	timerheap_set(l->h, e, 20);
}

/*
 * The 32-bit scheduling number about to wrap: the heap numbers its
 * entries again in their order, ties stay first-set first, and a pass
 * of timerheap_pop_due() that renumbers stops there.
 */
START_TEST(test_renumber)
{
	struct owner		 o[6];
	struct owner		*list[8];
	struct timerheap	 h;
	struct fired		 f = { list, 0 };
	struct later		 l;
	int			 i;

	timerheap_init(&h);
	for (i = 0; i < 6; i++) {
		o[i].id = i;
		timerheap_entry_init(&o[i].timer);
	}
	timerheap_set(&h, &o[0].timer, 100);
	timerheap_set(&h, &o[1].timer, 50);
	timerheap_set(&h, &o[2].timer, 100);
	h.seq = UINT32_MAX - 1;
	timerheap_set(&h, &o[3].timer, 100);
	ck_assert_uint_eq(o[3].timer.seq, UINT32_MAX - 1);
	ck_assert_uint_eq(h.renumbered, 0);
	timerheap_set(&h, &o[4].timer, 100);
	ck_assert_uint_eq(h.renumbered, 1);
	ck_assert_uint_eq(o[1].timer.seq, 0);
	ck_assert_uint_eq(o[3].timer.seq, 3);
	ck_assert_uint_eq(o[4].timer.seq, 4);
	check_invariant(&h);
	timerheap_set(&h, &o[5].timer, 100);
	ck_assert_uint_eq(timerheap_pop_due(&h, 100, SIZE_MAX, record_cb, &f),
	    6);
	ck_assert_int_eq(list[0]->id, 1);
	for (i = 1; i < 6; i++)
		ck_assert_int_eq(list[i]->id, i == 1 ? 0 : i);
	timerheap_free(&h);

	/* A callback's setting renumbers: the pass ends, the next fires
	 * the rest. */
	timerheap_init(&h);
	timerheap_set(&h, &o[0].timer, 10);
	timerheap_set(&h, &o[1].timer, 10);
	h.seq = UINT32_MAX;
	l.h = &h;
	l.f.list = list;
	l.f.n = 0;
	ck_assert_uint_eq(timerheap_pop_due(&h, 10, SIZE_MAX, later_cb, &l),
	    1);
	ck_assert_uint_eq(h.renumbered, 1);
	check_invariant(&h);
	ck_assert_uint_eq(timerheap_pop_due(&h, 10, SIZE_MAX, later_cb, &l),
	    1);
	ck_assert_int_eq(list[0]->id, 0);
	ck_assert_int_eq(list[1]->id, 1);
	ck_assert_uint_eq(timerheap_count(&h), 2);
	ck_assert_ptr_eq(timerheap_peek(&h), &o[0].timer);
	timerheap_free(&h);
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("timerheap");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_model);
	tcase_add_test(tc, test_scale);
	tcase_add_test(tc, test_ties_fifo);
	tcase_add_test(tc, test_callbacks);
	tcase_add_test(tc, test_entry_size);
	tcase_add_test(tc, test_renumber);
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
