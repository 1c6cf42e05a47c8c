/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The cluster's group map: mailbox address -> group key (Exchange's
 * GroupingInformation, as ad_group_key builds it), as read from etcd.
 * Pure.  The few distinct group keys are kept once each, however many
 * mailboxes share them.
 *
 * The digest sums a keyed hash of every (address, key) pair, so it
 * depends on the content alone, not on the order the entries came in:
 * two nodes holding the same map have the same digest, and a node can
 * keep it up to date entry by entry.  It is 0 for an empty map.
 */
#ifndef EWSGW_GROUPMAP_H
#define EWSGW_GROUPMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GROUPMAP_ADDRESS_MAX	320	/* bytes of an address */
#define GROUPMAP_KEY_MAX	2048	/* bytes of a group key */

struct groupmap;

struct groupmap	*groupmap_new(void);
/* NULL is fine. */
void		 groupmap_free(struct groupmap *);
void		 groupmap_clear(struct groupmap *);
/*
 * Set address's group key (copied; NULL: remove the address).  Returns
 * whether the map changed.  Longer strings than the maxima are refused
 * (false, nothing changes).
 */
bool		 groupmap_set(struct groupmap *, const char *address,
		    const char *key);
/* The group key of address, or NULL.  Borrowed until the next change. */
const char	*groupmap_get(const struct groupmap *, const char *address);
/* Every entry of src set in dst (src unchanged); whether dst changed. */
bool		 groupmap_merge(struct groupmap *dst, struct groupmap *src);
/* Swap the contents of two maps. */
void		 groupmap_swap(struct groupmap *, struct groupmap *);
size_t		 groupmap_count(const struct groupmap *);
/* Distinct group keys. */
size_t		 groupmap_groups(const struct groupmap *);
uint64_t	 groupmap_digest(const struct groupmap *);

/*
 * The placement hash of a mailbox (hrw.h): by its group key in the map
 * (NULL map: none), cut into slices parts, when slices > 0 and it has
 * one; else by its address.
 */
uint64_t	 groupmap_place_hash(const struct groupmap *,
		    const char *address, unsigned slices);

#endif
