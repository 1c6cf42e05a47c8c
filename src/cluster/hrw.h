/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Rendezvous (highest-random-weight) hashing of mailboxes over the live
 * cluster members.  Pure.
 *
 * A mailbox goes to the member with the highest weight w(member, key),
 * ties to the smaller name.  Weights depend on the member's name and the
 * mailbox's key only, so every node computes the same owner from the
 * same member list, and when a member joins only the keys it now wins
 * move (to it), when it leaves only its own keys move (each to its
 * runner-up).  Nothing else moves.
 *
 * The weight is fmix64(H(member) XOR H(key)), where H is SipHash-2-4
 * under the fixed key "ewsgw-rendezvous" and fmix64 is MurmurHash3's
 * 64-bit finaliser (a bijection with full avalanche).  Both are fixed
 * by their specifications: every build computes the same weights.
 * Changing the function moves nearly every mailbox, so nodes of one
 * cluster must agree on it: it is version 1 of the member record
 * (cluster.h), and a node reading a record of another version stops
 * acquiring mailboxes.  H(key) can be computed once per mailbox and H(member)
 * once per member list; an assignment then costs one multiply-and-shift
 * mix per (mailbox, member) pair.
 *
 * Groups: a mailbox with a group key (Exchange's GroupingInformation)
 * is placed by the group instead of its address, so a whole group
 * lands on one node.  Large groups may be cut into `slices` parts by a
 * hash of the address; each part stays together.  The key never depends
 * on the rest of the mailbox list, so nodes whose lists differ (a
 * reload applied on one node first) still agree on every mailbox they
 * both know -- but the group key of a mailbox must be the same on every
 * node, so it must come from a source all nodes share.
 */
#ifndef EWSGW_HRW_H
#define EWSGW_HRW_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* H(name) of a member (a NUL-terminated node name). */
uint64_t	 hrw_member_hash(const char *);
/* H(key) of len bytes. */
uint64_t	 hrw_key_hash(const char *, size_t);
/* The weight of a (member, key) pair from their hashes. */
uint64_t	 hrw_weight(uint64_t member_hash, uint64_t key_hash);

/*
 * The owner of a key: an index into members[0..n) (n > 0; names
 * borrowed, distinct).  member_hashes[i] = hrw_member_hash(members[i]).
 */
size_t		 hrw_owner(const char *const *members,
		    const uint64_t *member_hashes, size_t n, uint64_t key_hash);

/* A mailbox to place: its address and optional group key (borrowed). */
struct hrw_item {
	const char	*address;
	const char	*group;		/* NULL: placed by its address */
};

/*
 * The placement key of an item, appended to out: the address, or the
 * group key when the item has one, followed by "\n" and the slice
 * number (siphash of the address modulo slices) when slices > 1.
 */
void		 hrw_item_key(const struct hrw_item *, unsigned slices,
		    struct buf *out);
/* H(placement key) of an item. */
uint64_t	 hrw_item_hash(const struct hrw_item *, unsigned slices);

/*
 * Place n items over members[0..nmembers) (nmembers > 0): owner[i] gets
 * the member index of items[i]; counts (may be NULL, nmembers long) gets
 * how many items each member owns.
 */
void		 hrw_assign(const char *const *members, size_t nmembers,
		    const struct hrw_item *, size_t n, unsigned slices,
		    size_t *owner, size_t *counts);

#endif
