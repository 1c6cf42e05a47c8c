/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * This node's membership of an ewsgw cluster, kept in etcd from the
 * event loop: a lease, a key per node bound to it, the live member
 * list, the budget records (budget.h), and fencing.
 *
 * Keys: /ewsgw/CLUSTER/members/NODE, bound to the node's lease, its
 * value the node's budget record {"v":1,"epoch":"HEX","concurrency":N,
 * "subscriptions":N,"streams":N}.  A record of another version, or one
 * that does not parse, counts as "may use everything" (budget.h).
 *
 * Lease.  Granted with the configured TTL, kept alive every TTL/3 (a
 * failed keepalive is retried every TTL/10 on the next endpoint).  The
 * server's lease ends no earlier than TTL after it handled our last
 * successful keepalive, which is after we sent it; so the node fences
 * itself at
 *	deadline = send time of the last successful keepalive + TTL - margin
 * (margin TTL/5, at least 500 ms) on its own monotonic clock, without
 * any answer from etcd: before any other node can see its key vanish.
 * A keepalive answered "no such lease", or the node's key seen deleted
 * or bound to another lease, fences at once.  After fencing, a new lease
 * is granted and the key is taken over from the old lease if it still
 * holds it (so a short outage does not move any mailbox), or created
 * again once it expired.  A name held by another live lease (a second
 * process with the same node name, or a restart within the TTL) is
 * waited for until that lease expires.
 *
 * Members.  A full range of the members prefix gives the view and its
 * revision; a watch on the prefix triggers a new range whenever a key
 * changes after that revision, and a range every TTL bounds how long a
 * silently stalled watch stream (the gateway cannot send progress
 * requests once the request body is closed) can hide a change.  Every
 * view is thus one consistent snapshot at one revision, which the
 * budget transaction compares against.
 *
 * Groups (opts->groups).  The group map (groups.h) is followed next to
 * the members; the epoch covers both: a hash of the sorted names, and
 * of the map's digest once the map is not empty.  Nodes with the same
 * epoch thus place every mailbox alike (by its group key where the map
 * has one, by its address otherwise), and a move caused by a newly
 * learnt group key goes through the same release-before-acquire steps
 * as one caused by a member joining or leaving.
 *
 * What the owner (the subscription manager) does with it:
 *   - view(): the member list or the group map changed (a new epoch)
 *     or may_acquire changed.  Compute the assignment with
 *     hrw_assign over view->members; stop every mailbox this node no
 *     longer owns (stop publishing, close its stream, unsubscribe), and
 *     then call cluster_released(epoch).  Start mailboxes it gained only
 *     while view->may_acquire is true (every other node has released
 *     them); mailboxes it owned before and still owns keep running.
 *   - limits(): enforce these scheduler limits from now on; once the
 *     requests, subscriptions and streams in use are within them, call
 *     cluster_limits_applied() with them (at once when they grew).
 *   - fenced(): the lease is (about to be) lost: stop publishing at once
 *     and drop every mailbox.  Requests (Unsubscribe) may still be sent
 *     until budget_until (monotonic ms), when the node's record may be
 *     gone from etcd and others may use its share; after that, close
 *     connections only.  Limits and releases start again from zero; a
 *     new view comes once the node is back.
 *   - cluster_set_weights(): optional, per view: how many mailboxes each
 *     member owns, to split the subscriptions budget by.
 */
#ifndef EWSGW_CLUSTER_H
#define EWSGW_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/json.h"
#include "cluster/budget.h"
#include "cluster/etcd.h"
#include "cluster/groupmap.h"

struct event_base;
struct cluster;

#define CLUSTER_NAME_MAX	64	/* cluster and node names */

enum cluster_state {
	CLUSTER_IDLE,		/* not started */
	CLUSTER_GRANTING,	/* getting a lease */
	CLUSTER_REGISTERING,	/* putting the member key */
	CLUSTER_MEMBER,		/* registered, lease kept alive */
	CLUSTER_FENCED,		/* lease lost; about to start again */
	CLUSTER_LEAVING,	/* revoking the lease */
	CLUSTER_LEFT,
	CLUSTER_STATE_MAX
};

struct cluster_opts {
	struct etcd_opts etcd;
	const char	*cluster;	/* copied; [A-Za-z0-9._-]+ */
	const char	*node;		/* copied; [A-Za-z0-9._-]+ */
	int64_t		 ttl_ms;	/* whole seconds, >= 2 s */
	int64_t		 margin_ms;	/* 0: TTL/5, at least 500 ms */
	struct budget	 total;		/* the account's budget */
	bool		 split[BUDGET_RES_MAX];	/* shared resources */
	bool		 groups;	/* follow the group map (groups.h) */
};

struct cluster_view {
	uint64_t	 epoch;		/* of members and group map, never 0 */
	const char *const *members;	/* sorted names, borrowed */
	size_t		 n;
	size_t		 self;		/* this node's index */
	int64_t		 revision;	/* etcd revision of the snapshot */
	bool		 may_acquire;
};

/* For tracing (tests, metrics): each lease event. */
enum cluster_lease_event {
	CLUSTER_LEASE_GRANTED,
	CLUSTER_LEASE_KEPT,		/* keepalive answered */
	CLUSTER_LEASE_FAILED		/* keepalive without answer */
};

struct cluster_lease_info {
	enum cluster_lease_event event;
	int64_t		 id;
	int64_t		 ttl_ms;	/* as granted */
	int64_t		 sent_ms;	/* request sent (monotonic) */
	int64_t		 deadline_ms;	/* fencing deadline (monotonic) */
	const char	*error;		/* FAILED only */
};

struct cluster_cbs {
	void	(*view)(const struct cluster_view *, void *);
	void	(*limits)(const struct budget *, void *);
	void	(*fenced)(const char *why, int64_t budget_until_ms, void *);
	void	(*lease)(const struct cluster_lease_info *, void *); /* opt. */
};

/*
 * New, idle; strings in opts are copied, cbs is copied, base and arg
 * are borrowed.  Returns NULL with *cause set (allocated, caller frees).
 */
struct cluster	*cluster_new(struct event_base *, const struct cluster_opts *,
		    const struct cluster_cbs *, void *arg, char **cause);
/* Join: grant a lease, register, follow the members. */
void		 cluster_start(struct cluster *);
/*
 * Leave: revoke the lease (the node's key goes, the others take over at
 * once), then call done (from the loop).  Drop every mailbox first.
 */
void		 cluster_leave(struct cluster *, void (*done)(void *), void *);
/* Cancel everything without callbacks; NULL is fine. */
void		 cluster_free(struct cluster *);

/* Every mailbox not owned under epoch has been stopped. */
void		 cluster_released(struct cluster *, uint64_t epoch);
/* The scheduler is within these limits now. */
void		 cluster_limits_applied(struct cluster *,
		    const struct budget *);
/* Mailboxes per member for the view of epoch (n members, copied). */
void		 cluster_set_weights(struct cluster *, uint64_t epoch,
		    const uint64_t *, size_t n);

/*
 * The group map of the current view, or NULL (groups not followed).
 * Borrowed until the next callback.
 */
const struct groupmap *cluster_groups(const struct cluster *);
/* This node owns address and learnt its group key (copied). */
void		 cluster_group_learnt(struct cluster *, const char *address,
		    const char *key);

/*
 * The budget record of the member named node as last read, or NULL
 * (not a member, or its record is unreadable).  Borrowed until the
 * next callback.
 */
const struct budget *cluster_record(const struct cluster *, const char *node);
const char	*cluster_state_name(enum cluster_state);
/* The state, lease, members and budget as one JSON object value. */
void		 cluster_status_json(const struct cluster *,
		    struct json_writer *);

#endif
