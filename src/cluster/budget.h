/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The service account's throttling budget split among the live cluster
 * members, and the order in which a membership change is applied so
 * that the sum over the nodes never exceeds the account's budget.
 * Pure: numbers in, numbers out.
 *
 * Resources.  EWSMaxConcurrency, EWSMaxSubscriptions and the service
 * account's own hanging-connection budget are per account, across all
 * servers (EWS-NOTES 8), so two nodes of one account share them.
 * Budgets charged to a target mailbox are not split: the per-anchor
 * hanging-connection budget under impersonated charging belongs to the
 * anchor mailbox, and subscriptions under impersonated charging to each
 * subscribed mailbox; a mailbox (and its group, see hrw.h) is owned by
 * one node at a time, so its owner may use the whole of those.  The
 * caller says per resource whether it is shared (split) or not.
 *
 * Shares.  A shared total T goes to the n members (sorted by name) by
 * largest remainder over weights (equal weights unless given; e.g. the
 * number of mailboxes each member owns for subscriptions): member i gets
 * floor(T * w_i / W) and the T - sum(floor) units left go one each to
 * the largest fractional parts, ties to the lower index.  The shares
 * always add up to exactly T.
 *
 * Records.  Every node keeps a record next to its membership key in
 * etcd: per resource the most it may be using (r_i), and the epoch (the
 * member list, see cluster.h) whose assignment it has fully applied.
 * Two invariants make the sum safe:
 *   (I1) a node's use u_i never exceeds its record: u_i <= r_i.  A node
 *        shrinks its use first and lowers its record after; it raises
 *        its record first and grows its use after the write succeeded.
 *   (I2) sum(r_i) <= T in etcd at every revision.  A record is written
 *        only by a transaction that compares "no key under the members
 *        prefix changed since revision R", R being the revision of the
 *        snapshot the new value was computed from, with
 *        r_self' <= T - sum(r_k, k != self) in that snapshot.  Writes
 *        that lower a record cannot break I2; a write that raises one
 *        is accepted only if no other record changed in between, so two
 *        nodes growing at once are serialised by etcd (the loser
 *        re-reads and recomputes).  A record disappears only with its
 *        node's lease, after that node has fenced itself (cluster.h),
 *        which only lowers the sum.
 * Together: sum(u_i) <= sum(r_i) <= T at every moment.  A member whose
 * record cannot be read counts as using the whole budget, so nobody
 * grows past what it might hold.
 *
 * Shrink before grow.  On a change each node computes its new share
 * t_i.  A node above its share shrinks at once (limits = t_i), confirms
 * once its use is down, then lowers its record.  A node below its share
 * raises its record as far as T - sum(others' records) allows, never
 * above t_i, and grows only after that write.  Because the shares add
 * up to T, every node reaches its share once the shrinking nodes have
 * written their lower records: the order is fixed by the data in etcd,
 * not by timing.
 *
 * Acquiring mailboxes follows the same rule (may_acquire): a node may
 * start mailboxes it gained only when every other member's record shows
 * the current epoch (each has dropped what it no longer owns) and its
 * own record does too.
 */
#ifndef EWSGW_BUDGET_H
#define EWSGW_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/json.h"

enum budget_res {
	BUDGET_CONCURRENCY,	/* EWSMaxConcurrency */
	BUDGET_SUBSCRIPTIONS,	/* EWSMaxSubscriptions */
	BUDGET_STREAMS,		/* the account's own hanging connections */
	BUDGET_RES_MAX
};

struct budget {
	unsigned	 v[BUDGET_RES_MAX];
};

/* "concurrency", "subscriptions", "streams". */
const char	*budget_res_name(enum budget_res);

/*
 * Split total among n members by weights (NULL, or all zero: equal):
 * out[i] gets member i's share; the shares add up to total (n > 0).
 */
void		 budget_split(unsigned total, const uint64_t *weights,
		    size_t n, unsigned *out);

/* One member's record as read from etcd. */
struct budget_peer {
	bool		 valid;		/* false: unreadable, counts as all */
	struct budget	 record;	/* r_i */
	uint64_t	 epoch;		/* applied member list, 0 = none */
};

struct budget_input {
	struct budget		 total;	/* the account's budget */
	bool			 split[BUDGET_RES_MAX];	/* shared resource */
	/* Weights for BUDGET_SUBSCRIPTIONS, nmembers long, or NULL. */
	const uint64_t		*sub_weights;
	const struct budget_peer *peers;	/* every member, sorted */
	size_t			 n;
	size_t			 self;		/* index into peers */
	uint64_t		 epoch;		/* the current member list */
	uint64_t		 released;	/* epoch this node applied */
	struct budget		 applied;	/* limits in force */
};

struct budget_plan {
	struct budget	 share;		/* t_self */
	struct budget	 limits;	/* what the node may use now */
	bool		 write;		/* record differs from etcd's */
	struct budget	 record;	/* the record to write */
	uint64_t	 record_epoch;
	bool		 may_acquire;	/* every record shows epoch */
	bool		 settled;	/* applied == limits == record
					   == share, may_acquire */
};

/*
 * The next step for node self.  limits never exceed the node's record
 * in etcd nor (once applied) its share; record never drops below
 * applied and never rises above share or T - sum(others).
 */
void		 budget_plan(const struct budget_input *, struct budget_plan *);

/* Write b as "concurrency": N, ... members into an open JSON object. */
void		 budget_json(const struct budget *, struct json_writer *);

#endif
