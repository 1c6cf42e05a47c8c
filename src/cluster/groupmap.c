/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The group map: addresses to interned group keys; see groupmap.h.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/siphash.h"
#include "base/xmalloc.h"
#include "cluster/groupmap.h"
#include "cluster/hrw.h"

/* One distinct group key, shared by every address of the group. */
struct gkey {
	size_t		 refs;
	char		 key[];
};

struct groupmap {
	struct hashmap	*byaddr;	/* address -> struct gkey (ref) */
	struct hashmap	*keys;		/* key -> struct gkey (owned) */
	uint64_t	 digest;
};

static const uint8_t digest_key[SIPHASH_KEY_LEN] = {
	'e', 'w', 's', 'g', 'w', '-', 'g', 'r',
	'o', 'u', 'p', 's', '-', 'v', '0', '1'
};

static uint64_t
entry_hash(const char *address, const char *key)
{
	struct siphash	 h;

	siphash_init(&h, digest_key);
	siphash_update(&h, address, strlen(address) + 1);
	siphash_update(&h, key, strlen(key));
	return (siphash_final(&h));
}

struct groupmap *
groupmap_new(void)
{
	struct groupmap	*g;

	g = xcalloc(1, sizeof *g);
	g->byaddr = hashmap_new();
	g->keys = hashmap_new();
	return (g);
}

void
groupmap_clear(struct groupmap *g)
{
	hashmap_clear(g->byaddr, NULL);
	hashmap_clear(g->keys, free);
	g->digest = 0;
}

void
groupmap_free(struct groupmap *g)
{
	if (g == NULL)
		return;
	hashmap_free(g->byaddr, NULL);
	hashmap_free(g->keys, free);
	free(g);
}

static void
unref(struct groupmap *g, struct gkey *k)
{
	if (--k->refs == 0)
		free(hashmap_remove(g->keys, k->key));
}

bool
groupmap_set(struct groupmap *g, const char *address, const char *key)
{
	struct gkey	*old, *k;
	size_t		 len;

	if (strlen(address) > GROUPMAP_ADDRESS_MAX ||
	    (key != NULL && strlen(key) > GROUPMAP_KEY_MAX))
		return (false);
	old = hashmap_get(g->byaddr, address);
	if (old != NULL && key != NULL && strcmp(old->key, key) == 0)
		return (false);
	if (old == NULL && key == NULL)
		return (false);
	if (old != NULL) {
		g->digest -= entry_hash(address, old->key);
		hashmap_remove(g->byaddr, address);
		unref(g, old);
	}
	if (key != NULL) {
		if ((k = hashmap_get(g->keys, key)) == NULL) {
			len = strlen(key);
			k = xmalloc(sizeof *k + len + 1);
			k->refs = 0;
			memcpy(k->key, key, len + 1);
			hashmap_put(g->keys, k->key, k);
		}
		k->refs++;
		hashmap_put(g->byaddr, address, k);
		g->digest += entry_hash(address, key);
	}
	return (true);
}

const char *
groupmap_get(const struct groupmap *g, const char *address)
{
	const struct gkey	*k = hashmap_get(g->byaddr, address);

	return (k != NULL ? k->key : NULL);
}

bool
groupmap_merge(struct groupmap *dst, struct groupmap *src)
{
	struct hashmap_iter	 it;
	const char		*address;
	void			*v;
	bool			 changed = false;

	hashmap_iter_init(&it, src->byaddr);
	while (hashmap_iter_next(&it, &address, &v))
		if (groupmap_set(dst, address, ((struct gkey *)v)->key))
			changed = true;
	return (changed);
}

void
groupmap_swap(struct groupmap *a, struct groupmap *b)
{
	struct groupmap	 t = *a;

	*a = *b;
	*b = t;
}

size_t
groupmap_count(const struct groupmap *g)
{
	return (hashmap_count(g->byaddr));
}

size_t
groupmap_groups(const struct groupmap *g)
{
	return (hashmap_count(g->keys));
}

uint64_t
groupmap_digest(const struct groupmap *g)
{
	return (g->digest);
}

uint64_t
groupmap_place_hash(const struct groupmap *g, const char *address,
    unsigned slices)
{
	struct hrw_item	 it;

	it.address = address;
	it.group = g != NULL && slices > 0 ? groupmap_get(g, address) : NULL;
	return (hrw_item_hash(&it, slices > 0 ? slices : 1));
}
