/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Binary min-heap of embedded timer entries, ordered by (deadline,
 * scheduling order).
 */
#include "config.h"

#include <stdlib.h>

#include "base/timerheap.h"
#include "base/xmalloc.h"

static bool	 before(const struct timerheap_entry *,
		    const struct timerheap_entry *);
static void	 place(struct timerheap *, struct timerheap_entry *, uint32_t);
static void	 sift_up(struct timerheap *, uint32_t);
static void	 sift_down(struct timerheap *, uint32_t);

void
timerheap_init(struct timerheap *h)
{
	h->heap = NULL;
	h->n = h->cap = 0;
	h->seq = 0;
	h->renumbered = 0;
}

void
timerheap_free(struct timerheap *h)
{
	uint32_t	 i;

	for (i = 0; i < h->n; i++)
		h->heap[i]->index = 0;
	free(h->heap);
	timerheap_init(h);
}

void
timerheap_entry_init(struct timerheap_entry *e)
{
	e->deadline = 0;
	e->index = 0;
	e->seq = 0;
}

/* Sequence numbers never wrap (renumber), so ties stay first-set first. */
static bool
before(const struct timerheap_entry *a, const struct timerheap_entry *b)
{
	if (a->deadline != b->deadline)
		return (a->deadline < b->deadline);
	return (a->seq < b->seq);
}

static void
place(struct timerheap *h, struct timerheap_entry *e, uint32_t i)
{
	h->heap[i] = e;
	e->index = i + 1;
}

static void
sift_up(struct timerheap *h, uint32_t i)
{
	struct timerheap_entry	*e = h->heap[i];
	uint32_t		 parent;

	while (i > 0) {
		parent = (i - 1) / 2;
		if (!before(e, h->heap[parent]))
			break;
		place(h, h->heap[parent], i);
		i = parent;
	}
	place(h, e, i);
}

static void
sift_down(struct timerheap *h, uint32_t i)
{
	struct timerheap_entry	*e = h->heap[i];
	uint32_t		 child;

	for (;;) {
		child = 2 * i + 1;
		if (child >= h->n)
			break;
		if (child + 1 < h->n && before(h->heap[child + 1],
		    h->heap[child]))
			child++;
		if (!before(h->heap[child], e))
			break;
		place(h, h->heap[child], i);
		i = child;
	}
	place(h, e, i);
}

static int
cmp_entries(const void *a, const void *b)
{
	const struct timerheap_entry	*x = *(const struct timerheap_entry *
					    const *)a;
	const struct timerheap_entry	*y = *(const struct timerheap_entry *
					    const *)b;

	return (before(x, y) ? -1 : before(y, x) ? 1 : 0);
}

/*
 * The next number would wrap: number the entries 0..n-1 in their order
 * (deadline, then seq).  The sorted array is a valid heap.  Once every
 * 4 billion settings, O(n log n).
 */
static void
renumber(struct timerheap *h)
{
	uint32_t	 i;

	qsort(h->heap, h->n, sizeof(*h->heap), cmp_entries);
	for (i = 0; i < h->n; i++) {
		h->heap[i]->seq = i;
		place(h, h->heap[i], i);
	}
	h->seq = h->n;
	h->renumbered++;
}

void
timerheap_set(struct timerheap *h, struct timerheap_entry *e,
    int64_t deadline)
{
	if (h->seq == UINT32_MAX)
		renumber(h);
	e->deadline = deadline;
	e->seq = h->seq++;
	if (e->index != 0) {
		/* Moved: it goes one way or the other, never both. */
		sift_up(h, e->index - 1);
		sift_down(h, e->index - 1);
		return;
	}
	if (h->n == h->cap) {
		h->cap = h->cap == 0 ? 64 : h->cap * 2;
		h->heap = xreallocarray(h->heap, h->cap, sizeof(*h->heap));
	}
	place(h, e, h->n);
	h->n++;
	sift_up(h, h->n - 1);
}

void
timerheap_remove(struct timerheap *h, struct timerheap_entry *e)
{
	struct timerheap_entry	*last;
	uint32_t		 i;

	if (e->index == 0)
		return;
	i = e->index - 1;
	e->index = 0;
	last = h->heap[--h->n];
	if (i == h->n)
		return;		/* it was the last slot */
	place(h, last, i);
	sift_up(h, i);
	sift_down(h, last->index - 1);
}

bool
timerheap_scheduled(const struct timerheap_entry *e)
{
	return (e->index != 0);
}

size_t
timerheap_count(const struct timerheap *h)
{
	return (h->n);
}

struct timerheap_entry *
timerheap_peek(const struct timerheap *h)
{
	return (h->n == 0 ? NULL : h->heap[0]);
}

struct timerheap_entry *
timerheap_pop(struct timerheap *h)
{
	struct timerheap_entry	*e;

	if (h->n == 0)
		return (NULL);
	e = h->heap[0];
	timerheap_remove(h, e);
	return (e);
}

size_t
timerheap_pop_due(struct timerheap *h, int64_t now, size_t max,
    timerheap_cb cb, void *arg)
{
	struct timerheap_entry	*e;
	uint32_t		 start = h->seq;
	uint32_t		 renumbered = h->renumbered;
	size_t			 fired = 0;

	while (fired < max &&
	    (e = timerheap_peek(h)) != NULL && e->deadline <= now) {
		/* Set during this pass: leave it (and what follows) for the
		 * next one.  Numbered again during it: the rest too. */
		if (h->renumbered != renumbered || e->seq >= start)
			break;
		timerheap_remove(h, e);
		fired++;
		cb(e, arg);
	}
	return (fired);
}
