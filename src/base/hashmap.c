/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * String-keyed hash map with chaining and incremental growth; see
 * hashmap.h for the contract.
 */
#include "config.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/xmalloc.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HM_ASAN	1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(HM_ASAN)
#include <sanitizer/asan_interface.h>
#define HM_POISON(p, n)		ASAN_POISON_MEMORY_REGION((p), (n))
#define HM_UNPOISON(p, n)	ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define HM_POISON(p, n)		do { (void)(p); (void)(n); } while (0)
#define HM_UNPOISON(p, n)	do { (void)(p); (void)(n); } while (0)
#endif

#define HM_MIN_SIZE	16
/* Buckets moved to the new table per insertion while growing. */
#define HM_STEP		2
/* Empty old buckets skipped per step, so one step stays cheap. */
#define HM_EMPTY_VISITS	(HM_STEP * 10)
/* Nodes in a borrowing map's first slab, and at most in one slab. */
#define HM_SLAB_MIN	8
#define HM_SLAB_MAX	1024

/*
 * No stored hash: without it a borrowing map's node is 24 bytes, one
 * 32-byte malloc chunk instead of 48, and there is one in several maps
 * per mailbox.  Growth hashes each key again as it moves it; a look-up
 * compares the keys of its chain, which is short.
 */
struct hashmap_node {
	struct hashmap_node	*next;
	void			*value;
	char			 key[];		/* the key; in a borrowing
						   map a pointer to it */
};

/* A borrowing map's node: the link, the value, the key's address. */
#define HM_BNODE	(sizeof(struct hashmap_node) + sizeof(char *))

/*
 * A borrowing map's nodes are all HM_BNODE bytes: they come from slabs
 * the map owns (without malloc's header and rounding per node: 24 bytes
 * instead of a 32-byte chunk, several per mailbox), each twice the
 * previous one up to HM_SLAB_MAX nodes, freed with the map's entries
 * (hashmap_clear).  A removed node goes to the map's free list for the
 * next insertion; like the buckets, the slabs never shrink.
 */
struct hm_slab {
	struct hm_slab		*next;
	/* nodes follow, HM_BNODE bytes each */
};

struct hm_table {
	struct hashmap_node	**bucket;
	size_t			  size;		/* 0 or a power of two */
};

struct hashmap {
	/*
	 * t[0] is the table in use; while growing, t[1] is the new one and
	 * buckets of t[0] below `moved` are already empty.
	 */
	struct hm_table	 t[2];
	size_t		 moved;
	size_t		 count;
	bool		 borrow;	/* keys borrowed, not copied */
	/* Borrowing maps only: */
	struct hm_slab	*slabs;		/* owned */
	struct hashmap_node *spare;	/* free nodes in the slabs,
					   linked by next */
	size_t		 slab_nodes;	/* nodes in the next slab */
};

static uint64_t			 hm_hash(const char *);
static struct hashmap_node	*hm_node_new(struct hashmap *, const char *);
static void			 hm_node_free(struct hashmap *,
				    struct hashmap_node *);
static bool			 hm_growing(const struct hashmap *);
static void			 hm_grow_step(struct hashmap *, bool);
static struct hashmap_node	**hm_find(const struct hashmap *, const char *,
				    uint64_t);

/*
 * FNV-1a with a final avalanche (MurmurHash3's fmix64), so the low bits
 * used for the bucket index depend on every byte of the key.
 */
static uint64_t
hm_hash(const char *s)
{
	uint64_t	h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (h);
}

/* The key of node n (borrowed). */
static const char *
hm_key(const struct hashmap *m, const struct hashmap_node *n)
{
	const char	*k;

	if (!m->borrow)
		return (n->key);
	memcpy(&k, n->key, sizeof k);
	return (k);
}

/* A node holding key (copied or borrowed); value and next unset. */
static struct hashmap_node *
hm_node_new(struct hashmap *m, const char *key)
{
	struct hashmap_node	*n;
	struct hm_slab		*sl;
	char			*p;
	size_t			 len, i;

	if (!m->borrow) {
		len = strlen(key);
		n = xmalloc(sizeof(*n) + len + 1);
		memcpy(n->key, key, len + 1);
		return (n);
	}
	if (m->spare == NULL) {
		if (m->slab_nodes == 0)
			m->slab_nodes = HM_SLAB_MIN;
		sl = xmalloc(sizeof(*sl) + m->slab_nodes * HM_BNODE);
		sl->next = m->slabs;
		m->slabs = sl;
		p = (char *)(sl + 1);
		for (i = m->slab_nodes; i > 0; i--) {
			n = (struct hashmap_node *)(p + (i - 1) * HM_BNODE);
			n->next = m->spare;
			m->spare = n;
			HM_POISON(n, HM_BNODE);
		}
		if (m->slab_nodes < HM_SLAB_MAX)
			m->slab_nodes *= 2;
	}
	n = m->spare;
	HM_UNPOISON(n, HM_BNODE);
	m->spare = n->next;
	memcpy(n->key, &key, sizeof key);
	return (n);
}

static void
hm_node_free(struct hashmap *m, struct hashmap_node *n)
{
	if (!m->borrow) {
		free(n);
		return;
	}
	n->next = m->spare;
	m->spare = n;
	HM_POISON(n, HM_BNODE);
}

static bool
hm_growing(const struct hashmap *m)
{
	return (m->t[1].size != 0);
}

struct hashmap *
hashmap_new(void)
{
	return (xcalloc(1, sizeof(struct hashmap)));
}

struct hashmap *
hashmap_new_borrowing(void)
{
	struct hashmap	*m = hashmap_new();

	m->borrow = true;
	return (m);
}

void
hashmap_clear(struct hashmap *m, void (*free_value)(void *))
{
	struct hashmap_node	*n, *next;
	struct hm_slab		*sl;
	size_t			 i;
	int			 k;

	for (k = 0; k < 2; k++) {
		for (i = 0; i < m->t[k].size; i++) {
			for (n = m->t[k].bucket[i]; n != NULL; n = next) {
				next = n->next;
				if (free_value != NULL)
					free_value(n->value);
				if (!m->borrow)
					free(n);
			}
		}
		free(m->t[k].bucket);
		m->t[k].bucket = NULL;
		m->t[k].size = 0;
	}
	while ((sl = m->slabs) != NULL) {
		m->slabs = sl->next;
		free(sl);
	}
	m->spare = NULL;
	m->slab_nodes = 0;
	m->moved = 0;
	m->count = 0;
}

void
hashmap_free(struct hashmap *m, void (*free_value)(void *))
{
	if (m == NULL)
		return;
	hashmap_clear(m, free_value);
	free(m);
}

size_t
hashmap_count(const struct hashmap *m)
{
	return (m->count);
}

/*
 * Move HM_STEP non-empty buckets of t[0] into t[1] (all of them if
 * finish), then retire t[0] once it is empty.
 */
static void
hm_grow_step(struct hashmap *m, bool finish)
{
	struct hashmap_node	*n, *next;
	struct hm_table		*old = &m->t[0], *new = &m->t[1];
	size_t			 steps = HM_STEP, empty = HM_EMPTY_VISITS, i;

	while ((finish || steps > 0) && m->moved < old->size) {
		n = old->bucket[m->moved];
		if (n == NULL) {
			m->moved++;
			if (!finish && --empty == 0)
				break;
			continue;
		}
		for (; n != NULL; n = next) {
			next = n->next;
			i = hm_hash(hm_key(m, n)) & (new->size - 1);
			n->next = new->bucket[i];
			new->bucket[i] = n;
		}
		old->bucket[m->moved++] = NULL;
		if (steps > 0)
			steps--;
	}
	if (m->moved == old->size) {
		free(old->bucket);
		*old = *new;
		new->bucket = NULL;
		new->size = 0;
		m->moved = 0;
	}
}

/* Pointer to the link that points at key's node (or at NULL). */
static struct hashmap_node **
hm_find(const struct hashmap *m, const char *key, uint64_t h)
{
	struct hashmap_node	**np;
	const struct hm_table	 *t;
	int			  k;

	for (k = 0; k < 2; k++) {
		t = &m->t[k];
		if (t->size == 0)
			continue;
		np = &t->bucket[h & (t->size - 1)];
		for (; *np != NULL; np = &(*np)->next) {
			if (strcmp(hm_key(m, *np), key) == 0)
				return (np);
		}
	}
	return (NULL);
}

void *
hashmap_get(const struct hashmap *m, const char *key)
{
	struct hashmap_node	**np;

	np = hm_find(m, key, hm_hash(key));
	return (np != NULL ? (*np)->value : NULL);
}

void *
hashmap_put(struct hashmap *m, const char *key, void *value)
{
	struct hashmap_node	**np, *n;
	struct hm_table		 *t;
	uint64_t		  h;
	size_t			  i;
	void			 *old;

	assert(value != NULL);
	h = hm_hash(key);
	if ((np = hm_find(m, key, h)) != NULL) {
		old = (*np)->value;
		(*np)->value = value;
		/* The old key may go with the old value. */
		if (m->borrow)
			memcpy((*np)->key, &key, sizeof key);
		return (old);
	}

	if (hm_growing(m)) {
		/*
		 * Two buckets per insertion finish the move long before the
		 * new table fills up; the check is a safety net only.
		 */
		hm_grow_step(m, m->count + 1 >= m->t[1].size);
	} else if (m->count >= m->t[0].size) {
		if (m->t[0].size == 0) {
			m->t[0].size = HM_MIN_SIZE;
			m->t[0].bucket = xcalloc(HM_MIN_SIZE,
			    sizeof(*m->t[0].bucket));
		} else {
			m->t[1].size = m->t[0].size * 2;
			m->t[1].bucket = xcalloc(m->t[1].size,
			    sizeof(*m->t[1].bucket));
			m->moved = 0;
			hm_grow_step(m, false);
		}
	}

	n = hm_node_new(m, key);
	n->value = value;
	t = hm_growing(m) ? &m->t[1] : &m->t[0];
	i = h & (t->size - 1);
	n->next = t->bucket[i];
	t->bucket[i] = n;
	m->count++;
	return (NULL);
}

void *
hashmap_remove(struct hashmap *m, const char *key)
{
	struct hashmap_node	**np, *n;
	void			 *value;

	if ((np = hm_find(m, key, hm_hash(key))) == NULL)
		return (NULL);
	n = *np;
	*np = n->next;
	value = n->value;
	hm_node_free(m, n);
	m->count--;
	return (value);
}

void
hashmap_iter_init(struct hashmap_iter *it, struct hashmap *m)
{
	memset(it, 0, sizeof(*it));
	it->map = m;
}

bool
hashmap_iter_next(struct hashmap_iter *it, const char **key, void **value)
{
	const struct hm_table	*t;

	while (it->next == NULL) {
		if (it->table > 1)
			return (false);
		t = &it->map->t[it->table];
		if (it->bucket >= t->size) {
			it->table++;
			it->bucket = 0;
			continue;
		}
		it->next = t->bucket[it->bucket++];
	}
	it->cur = it->next;
	it->next = it->cur->next;
	if (key != NULL)
		*key = hm_key(it->map, it->cur);
	if (value != NULL)
		*value = it->cur->value;
	return (true);
}

void *
hashmap_iter_remove(struct hashmap_iter *it)
{
	struct hashmap_node	*n = it->cur;

	assert(n != NULL);
	it->cur = NULL;
	return (hashmap_remove(it->map, hm_key(it->map, n)));
}
