/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * A streaming group: up to subscriptions_per_connection (<= 200)
 * mailboxes whose subscriptions share one GetStreamingEvents connection,
 * with server affinity (X-AnchorMailbox of the group's first mailbox,
 * X-PreferServerAffinity, the X-BackEndOverrideCookie replayed).
 *
 * A member is ready when it holds a subscription and is SYNCING or
 * STREAMING; the group waits for members still SUBSCRIBING (settle timer,
 * SETTLE_MS) before it connects.  Every transition goes through
 * set_state() in group.c, which logs it and runs the entry actions:
 *
 *   IDLE    -> QUEUED   members ready and none subscribing, or the settle
 *                       timer ran out with some ready: GetStreamingEvents
 *                       submitted to the budget scheduler
 *   QUEUED  -> OPEN     slot granted, request sent (the ready members' ids
 *                       are on it; the silence timer runs)
 *   QUEUED  -> IDLE     slot granted but no member ready any more
 *   OPEN    -> IDLE     Exchange closed it at ConnectionTimeout and said
 *                       nothing against the budget: renewed at once
 *                       (IDLE -> QUEUED)
 *   OPEN    -> BACKOFF  it failed or ended otherwise (wait: Exchange's
 *                       BackOffMilliseconds, else exponential back-off),
 *                       went silent (idle_timeout), or a member that
 *                       subscribed since must join (REOPEN_GAP_MS)
 *   BACKOFF -> IDLE     the wait is over (then IDLE -> QUEUED if ready)
 *   any     -> IDLE     its last member left
 *   any     -> CLOSED   shutdown; final
 */
#ifndef EWSGW_GROUP_H
#define EWSGW_GROUP_H

#include <stdbool.h>
#include <stdint.h>

struct json_writer;
struct mailbox;
struct registry;
struct subs_env;

enum group_state {
	GROUP_IDLE,		/* nothing to stream yet */
	GROUP_QUEUED,		/* waiting for a streaming slot */
	GROUP_OPEN,		/* GetStreamingEvents running */
	GROUP_BACKOFF,		/* reconnecting later */
	GROUP_CLOSED,		/* shut down for good */
	GROUP_STATE_MAX
};

struct group;

/*
 * The server refused the group's stream because it carried several
 * mailboxes' subscriptions: ErrorInvalidSubscription naming every
 * member's id but the anchor's, on a stream opened impersonating the
 * anchor.  The named subscriptions are left as they are (still valid
 * for their owners); the group waits before it connects again.
 */
typedef void	(*group_refused_cb)(struct group *, void *);

/*
 * An empty group of capacity subscriptions_per_connection.  env and
 * reg (where notifications find their mailbox) are borrowed for the
 * group's life.  Allocated, free with group_free.
 */
struct group	*group_new(const struct subs_env *, struct registry *,
		    unsigned id);
/* Free; members are unlinked (mailbox_group() becomes NULL). */
void		 group_free(struct group *);
/* Add mb (borrowed) if there is room; sets mailbox_group(mb). */
void		 group_add(struct group *, struct mailbox *);
/* Take mb out; mailbox_group(mb) becomes NULL. */
void		 group_remove(struct group *, struct mailbox *);
/* A member's state or subscription changed: maybe (re)connect. */
void		 group_member_changed(struct group *);
/* Report a refused grouping to cb(g, arg) (borrowed). */
void		 group_on_refused(struct group *, group_refused_cb, void *);
/*
 * Open the stream impersonating the anchor whatever the charging (a
 * server that accepts a subscription only on its owner's stream).
 */
void		 group_set_owner_only(struct group *, bool);
/* The i-th member in address order (i < group_size). */
struct mailbox	*group_member(const struct group *, unsigned);
/* Reconnect an open stream with the members it has now. */
void		 group_reopen(struct group *);
/* Close the connection for good (shutdown). */
void		 group_close(struct group *);
const char	*group_anchor(const struct group *);
/* What the members share (the Autodiscover grouping), NULL none. */
const char	*group_key(const struct group *);
void		 group_set_key(struct group *, const char *);	/* copied */
const char	*group_cookie(const struct group *);
void		 group_set_cookie(struct group *, const char *);
unsigned	 group_id(const struct group *);
unsigned	 group_size(const struct group *);
bool		 group_full(const struct group *);
enum group_state group_state(const struct group *);
const char	*group_state_name(enum group_state);
void		 group_json(const struct group *, struct json_writer *);

#endif
