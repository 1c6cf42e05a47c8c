/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The cluster's group map followed in etcd, so that every node places
 * a mailbox by the same group key (hrw.h, cluster.h).
 *
 * Keys: /ewsgw/CLUSTER/groups/ADDRESS, plain keys (no lease: a group
 * key is a fact about the mailbox, not about the node that learnt it),
 * the value the group key.  The node that owns a mailbox learns its key
 * from Autodiscover and writes it when it differs from the map's; the
 * writes are batched into transactions of at most GROUPS_TXN_MAX puts.
 *
 * Reading.  A full read, in pages of GROUPS_PAGE keys all at the
 * revision of the first page, starts the map; a watch on the prefix from
 * the revision after it then asks for a delta read (the keys modified
 * since the last read, min_mod_revision) shortly after each change, so
 * that a burst of writes costs one read.  A delete seen by the watch, a
 * watch that ended, or a (re)start asks for a full read.  Pages are
 * staged and applied at once when the read is complete, so the map is
 * always etcd's at one revision.  changed() is called when the map's
 * content changed.
 */
#ifndef EWSGW_GROUPS_H
#define EWSGW_GROUPS_H

#include <stdint.h>

#include "base/json.h"
#include "cluster/etcd.h"
#include "cluster/groupmap.h"

#define GROUPS_PAGE		1000	/* keys per page of a read */
#define GROUPS_TXN_MAX		100	/* puts per transaction */
#define GROUPS_READ_DELAY_MS	500	/* from a watched change to a read */
#define GROUPS_WRITE_DELAY_MS	200	/* from a learnt key to its write */

struct event_base;
struct groups;

/*
 * New and idle.  base and etcd are borrowed, cluster is copied (a valid
 * cluster name).
 */
struct groups	*groups_new(struct event_base *, struct etcd *,
		    const char *cluster, void (*changed)(void *), void *arg);
/* NULL is fine. */
void		 groups_free(struct groups *);
/*
 * Follow etcd (the node is a member): a full read, then the watch, and
 * the writes of keys learnt meanwhile.  Calls time out after timeout_ms,
 * failures are retried after retry_ms.
 */
void		 groups_start(struct groups *, int64_t timeout_ms,
		    int64_t retry_ms);
/* Stop every call and the watch (the map and unwritten keys stay). */
void		 groups_stop(struct groups *);
/* Read what changed since the last read (a stalled watch's bound). */
void		 groups_audit(struct groups *);
/*
 * The owner of address learnt its group key (copied): written to etcd
 * unless the map already says so.
 */
void		 groups_learnt(struct groups *, const char *address,
		    const char *key);
/* The map as last read. */
const struct groupmap *groups_map(const struct groups *);
/* Counters and the map's size as one JSON object value. */
void		 groups_status_json(const struct groups *,
		    struct json_writer *);

#endif
