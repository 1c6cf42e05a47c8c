/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Generic hash map: NUL-terminated string key -> non-NULL void *.
 *
 * Separate chaining with a power-of-two bucket array, O(1) average for
 * get, put and remove.  Growth is incremental (as in Redis' dict): when
 * the map outgrows its table a second table twice the size is allocated
 * and each later insertion moves a couple of buckets across, so no single
 * insertion ever rehashes 100,000 entries at once.  The map never shrinks.
 *
 * Ownership: the map copies keys (the copies live as long as the entry),
 * or, made with hashmap_new_borrowing, borrows them: then each key given
 * to hashmap_put must stay alive and unchanged while its entry is in the
 * map (a put that replaces a value takes the new key), which saves a
 * copy per entry where the value holds its own key; such a map's entries
 * live in slabs it keeps until hashmap_clear or hashmap_free, without a
 * malloc header each (removed ones are used again).  Values are
 * borrowed, the map never frees them except through the callback given
 * to hashmap_free/hashmap_clear.
 *
 * Iteration visits every entry once, in no particular order.  While
 * iterating, the entry just returned may be removed (hashmap_remove or
 * hashmap_iter_remove); any other change (an insertion, removing another
 * entry) ends the guarantee and the iterator must not be used again.
 */
#ifndef EWSGW_HASHMAP_H
#define EWSGW_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>

struct hashmap;
struct hashmap_node;

struct hashmap_iter {
	struct hashmap		*map;		/* borrowed */
	int			 table;		/* 0 or 1 */
	size_t			 bucket;	/* next bucket to look at */
	struct hashmap_node	*cur;		/* last returned */
	struct hashmap_node	*next;		/* next in the current chain */
};

/* Return a new empty map (allocated, free with hashmap_free). */
struct hashmap	*hashmap_new(void);
/* The same, borrowing its keys (see above). */
struct hashmap	*hashmap_new_borrowing(void);
/*
 * Free the map and its key copies; free_value (may be NULL) is called
 * once for every value still in it.  NULL map is fine.
 */
void		 hashmap_free(struct hashmap *, void (*free_value)(void *));
/* Remove every entry (as hashmap_free) but keep the map usable. */
void		 hashmap_clear(struct hashmap *, void (*free_value)(void *));

/* The value for key, or NULL.  Borrowed. */
void		*hashmap_get(const struct hashmap *, const char *key);
/*
 * Set key to value (value must not be NULL).  Returns the value it
 * replaced (the caller owns it again) or NULL if the key was new.
 */
void		*hashmap_put(struct hashmap *, const char *key, void *value);
/* Remove key; returns its value (the caller owns it) or NULL if absent. */
void		*hashmap_remove(struct hashmap *, const char *key);
/* Number of entries. */
size_t		 hashmap_count(const struct hashmap *);

void		 hashmap_iter_init(struct hashmap_iter *, struct hashmap *);
/*
 * Next entry: true with *key (borrowed, valid until the entry goes) and
 * *value set, or false at the end.  key or value may be NULL.
 */
bool		 hashmap_iter_next(struct hashmap_iter *, const char **key,
		    void **value);
/* Remove the entry last returned by hashmap_iter_next; returns its value. */
void		*hashmap_iter_remove(struct hashmap_iter *);

#endif
