/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * One watched mailbox: its life cycle (subscribe, first read, watch, back
 * off, park, release), its calendar timeline and its presence.  Kept
 * small: 100,000 of these live in one daemon.  A mailbox knows nothing of
 * the others: what concerns the manager (its group, the indexes, the
 * sinks, counters) it reports through struct mailbox_hooks.
 *
 * The state says where the mailbox is in its life; the mode (streaming,
 * push, poll; delta for a mailbox on Graph) says how it is watched,
 * and whether it holds a subscription is mailbox_sub_id() != NULL.
 * The states name no backend or mode (a mailbox of no backend stays
 * IDLE: mailbox_start does nothing).  Every transition goes through
 * set_state() in mailbox.c, which logs "old -> new" at debug and runs
 * the entry actions
 * (SUBSCRIBING submits Subscribe, SYNCING starts the first read,
 * BACKOFF and PARKED arm the retry, UNSUBSCRIBING submits Unsubscribe,
 * STOPPED releases everything):
 *
 *   IDLE        -> SUBSCRIBING    started, streaming or push
 *   IDLE        -> WATCHING       started, poll
 *   SUBSCRIBING -> SYNCING        Subscribe answered with an id
 *   SUBSCRIBING -> BACKOFF        Subscribe failed, or its answer unusable
 *   SUBSCRIBING -> PARKED         Exchange refuses the mailbox (rights,
 *                                 unknown address)
 *   SUBSCRIBING -> WATCHING       Exchange has no subscription left for
 *                                 it: reported refused, the manager
 *                                 polls it (mode poll)
 *   SYNCING     -> WATCHING       the first read is done, or failed (read
 *                                 again later)
 *   SYNCING     -> PARKED         a read says Exchange refuses it
 *   WATCHING    -> PARKED         a read, a poll or an automatic-
 *                                 replies read says so
 *   SYNCING     -> SUBSCRIBING    subscription lost (stream error, no push
 *   WATCHING    -> SUBSCRIBING      notification in time)
 *   BACKOFF     -> SUBSCRIBING    retry time
 *   PARKED      -> SUBSCRIBING    retry time, streaming or push
 *   PARKED      -> WATCHING       retry time, poll
 *   SUBSCRIBING, SYNCING,              mode changed: SUBSCRIBING for
 *   WATCHING, BACKOFF, PARKED            streaming or push, WATCHING for
 *     -> SUBSCRIBING | WATCHING (mode)   poll (again if already there)
 *   SUBSCRIBING, SYNCING,              regrouped (mailbox_resubscribe):
 *   WATCHING, BACKOFF                    a new Subscribe where its group
 *     -> SUBSCRIBING (regroup)           now is
 *   SYNCING, WATCHING                  regrouped holding a streaming
 *     -> UNSUBSCRIBING (regroup)         subscription: released first,
 *                                        where it was made
 *   UNSUBSCRIBING                      released: a new Subscribe
 *     -> SUBSCRIBING (regroup)
 *   SUBSCRIBING, SYNCING, WATCHING     stopped, holding a streaming
 *     -> UNSUBSCRIBING                   subscription (or one that a
 *                                        Subscribe on the wire made)
 *   IDLE, SUBSCRIBING, SYNCING,        stopped otherwise (push
 *   WATCHING, BACKOFF, PARKED            subscriptions end when the
 *     -> STOPPED                         listener answers Unsubscribe)
 *   UNSUBSCRIBING -> STOPPED           Unsubscribe answered or failed
 *
 * A mailbox on Graph (graphread.h) has rows of its own, marked (graph):
 * without change notifications it is read in delta rounds (mode delta)
 * and holds no subscription; with them (mode push) it subscribes to its
 * events first.  Graph's refusal is a 403, or a 404 (no mailbox for
 * the user, or not found); a parked one keeps its subscription id:
 *
 *   IDLE        -> SYNCING (graph)      started, without notifications
 *   IDLE        -> SUBSCRIBING (graph)  started, with notifications
 *   SUBSCRIBING -> SYNCING (graph)      subscription made
 *   SUBSCRIBING -> BACKOFF (graph)      subscription failed
 *   SUBSCRIBING -> PARKED (graph)       subscription refused
 *   SYNCING     -> WATCHING (graph)     the first read is done, or
 *                                       failed (read again later)
 *   SYNCING, WATCHING                   a read refused
 *     -> PARKED (graph)
 *   SYNCING, WATCHING                   subscription removed, or not
 *     -> SUBSCRIBING (graph)              found when renewed
 *   BACKOFF     -> SUBSCRIBING (graph)  retry time
 *   PARKED      -> SUBSCRIBING (graph)  retry time, with notifications
 *   PARKED      -> SYNCING (graph)      retry time, without
 *   SUBSCRIBING, SYNCING, WATCHING,     stopped holding a subscription
 *   PARKED -> UNSUBSCRIBING (graph)       (or one made meanwhile): it
 *                                         is deleted
 *   SUBSCRIBING, SYNCING, WATCHING,     stopped otherwise
 *   PARKED -> STOPPED (graph)
 *   UNSUBSCRIBING -> STOPPED (graph)    deleted, or not (it expires)
 */
#ifndef EWSGW_MAILBOX_H
#define EWSGW_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/timerheap.h"

struct boundary;
struct ews_event;
struct ews_fb_event;
struct ews_oof;
struct ews_send;
struct ewsgw_presence_change;
struct group;
struct json_writer;
struct mailbox;
struct presence;
struct presence_rules;
struct soap_ident;
struct subs_env;

enum mailbox_state {
	MAILBOX_IDLE,		/* not started yet */
	MAILBOX_SUBSCRIBING,	/* Subscribe queued or in flight */
	MAILBOX_SYNCING,	/* subscribed; first calendar read running */
	MAILBOX_WATCHING,	/* changes arrive (stream, push) or are
				   polled */
	MAILBOX_BACKOFF,	/* waiting until the retry time */
	MAILBOX_PARKED,		/* Exchange refuses it; retried rarely */
	MAILBOX_UNSUBSCRIBING,	/* releasing its subscription */
	MAILBOX_STOPPED,	/* released; nothing more to do */
	MAILBOX_STATE_MAX
};

/*
 * What status views call the state: WATCHING by mode, the rest as
 * they are (the names ewsgwctl and the metrics have always shown).
 */
enum mailbox_status {
	MAILBOX_STATUS_IDLE,
	MAILBOX_STATUS_SUBSCRIBING,
	MAILBOX_STATUS_SYNCING,
	MAILBOX_STATUS_STREAMING,
	MAILBOX_STATUS_PUSH,
	MAILBOX_STATUS_POLLING,
	MAILBOX_STATUS_DELTA,
	MAILBOX_STATUS_BACKOFF,
	MAILBOX_STATUS_PARKED,
	MAILBOX_STATUS_UNSUBSCRIBING,
	MAILBOX_STATUS_STOPPED,
	MAILBOX_STATUS_EXCHANGE_ONLINE,	/* MAILBOX_BACKEND_NONE */
	MAILBOX_STATUS_MAX
};

enum mailbox_mode {
	MAILBOX_MODE_STREAMING,
	MAILBOX_MODE_PUSH,
	MAILBOX_MODE_POLL,
	MAILBOX_MODE_DELTA,	/* Graph: delta rounds */
	MAILBOX_MODE_MAX
};

/* Which protocol watches it (as enum conf_backend). */
enum mailbox_backend {
	MAILBOX_BACKEND_EWS,
	MAILBOX_BACKEND_GRAPH,
	/* Autodiscover found it in Exchange Online and Graph is not on for
	 * it ([graph] auto): nothing watches it; it stays IDLE, shown as
	 * status exchange_online. */
	MAILBOX_BACKEND_NONE
};

/* Why a mailbox is in the mode it is in. */
enum mailbox_reason {
	MAILBOX_WHY_CONFIG,		/* [exchange] mode */
	MAILBOX_WHY_SUBSCRIPTIONS,	/* over max_subscriptions */
	MAILBOX_WHY_CONNECTIONS,	/* no streaming connection budget */
	MAILBOX_WHY_REFUSED,		/* Exchange refused the subscription */
	MAILBOX_WHY_MAX
};

/* Things a mailbox counts for the status views. */
enum mailbox_count {
	MAILBOX_COUNT_NOTIFICATION,	/* calendar events seen */
	MAILBOX_COUNT_RESUBSCRIBE,	/* subscription lost, made again */
	MAILBOX_COUNT_MAX
};

/*
 * What a mailbox reports upward; the manager implements them.  All are
 * called from inside the mailbox's own handlers: they may call the
 * mailbox's functions but must not free it.
 */
struct mailbox_hooks {
	/* The state changed from old (entry actions done). */
	void	(*state)(struct mailbox *, enum mailbox_state old, void *);
	/* Its subscription id changed: old (borrowed, may be NULL) is
	 * gone, mailbox_sub_id() is the new one or NULL. */
	void	(*subscription)(struct mailbox *, const char *old, void *);
	/* Exchange will not give it a subscription: poll it. */
	void	(*refused)(struct mailbox *, void *);
	/* Polling mode: read it in the next batch, soon. */
	void	(*poll)(struct mailbox *, void *);
	/* X-AnchorMailbox and X-BackEndOverrideCookie for its Subscribe
	 * and Unsubscribe (both borrowed until the request is sent). */
	void	(*affinity)(const struct mailbox *, const char **anchor,
		    const char **cookie, void *);
	/* A Subscribe answer carried this backend cookie (borrowed). */
	void	(*cookie)(struct mailbox *, const char *, void *);
	/* Presence changed: publish it (borrowed for the call). */
	void	(*publish)(struct mailbox *,
		    const struct ewsgw_presence_change *, void *);
	void	(*count)(struct mailbox *, enum mailbox_count, void *);
	/* Exchange says it is being moved to another database or server
	 * (mailbox_move_code), or its subscription was lost as in a move
	 * (ErrorSubscriptionNotFound): its next Subscribe goes where its
	 * own address routes.  Called before that Subscribe; may take it
	 * out of its group.  May be NULL. */
	void	(*moving)(struct mailbox *, const char *code, void *);
};

/* Shared by all mailboxes; owned by the manager, borrowed here. */
struct mailbox_ctx {
	const struct subs_env		*env;
	struct boundary			*presence_timers; /* wall clock */
	struct boundary			*action_timers;	/* monotonic */
	const struct presence_rules	*rules;
	const char			*push_url;	/* to register for push
							   (holds the listener's
							   token), or NULL */
	/* Graph change notifications (secrets, all or none): the URLs
	 * for changes and lifecycle events, and the clientState. */
	const char			*graph_url;
	const char			*graph_lc_url;
	const char			*client_state;
	const struct mailbox_hooks	*hooks;
	void				*arg;		/* for the hooks */
};

/*
 * A new mailbox (address copied, lower case; imp_id copied or NULL) in
 * state IDLE.  ctx is borrowed for the mailbox's life.  A Graph mailbox
 * reads through ctx->env->graph (which must be set) in mode delta; the
 * layer above never places it in a mode.  Allocated, caller frees with
 * mailbox_free (which reports nothing upward).
 */
struct mailbox	*mailbox_new(const struct mailbox_ctx *, const char *address,
		    int idtype, const char *imp_id, enum mailbox_backend);
void		 mailbox_free(struct mailbox *);
void		 mailbox_start(struct mailbox *);
/* Change mode (streaming/push/poll); restarts the mailbox if needed. */
void		 mailbox_set_mode(struct mailbox *, enum mailbox_mode,
		    enum mailbox_reason);
/* Calendar events arrived for its subscription. */
void		 mailbox_events(struct mailbox *, const struct ews_event *,
		    size_t);
/* What a Graph notification or lifecycle event says (graph_sub.h's
 * enum graph_notif_kind). */
void		 mailbox_graph_notify(struct mailbox *, int kind);
/* Exchange says the subscription is gone (or lost events). */
void		 mailbox_subscription_lost(struct mailbox *, const char *code,
		    bool missed_events);
/*
 * Subscribe again where its group now is (its grouping changed): a
 * fresh subscription, then a calendar read.  A streaming subscription
 * it holds is released first, with an Unsubscribe routed by anchor and
 * cookie (those of the group it was made in; copied), so that none is
 * left on the server; without anchor it is only forgotten.
 */
void		 mailbox_resubscribe(struct mailbox *, const char *why,
		    const char *anchor, const char *cookie);
/*
 * Whether code says the mailbox is being moved (ErrorMailboxMoveInProgress,
 * ErrorMailboxStoreUnavailable) or is served elsewhere now (the codes
 * that ask to rediscover).
 */
bool		 mailbox_move_code(const char *code);
/* Read the calendar now (control "resync"). */
void		 mailbox_resync(struct mailbox *);
/*
 * A new IDLE mailbox takes over from one retired for the same address
 * (moved to another backend): it starts from from's last presence, so
 * that the sinks see only what changes.
 */
void		 mailbox_carry_presence(struct mailbox *,
		    const struct mailbox *from);
/* Presence rules changed (reload): compute and publish again. */
void		 mailbox_recompute(struct mailbox *);
/* Free/busy from a poll: replaces the timeline. */
void		 mailbox_poll_result(struct mailbox *,
		    const struct ews_fb_event *, size_t, const char *code);
/*
 * The automatic-replies cycle read the settings (oof borrowed), or the
 * read failed with code (oof NULL).  Only a WATCHING mailbox takes it.
 */
void		 mailbox_oof_result(struct mailbox *, const struct ews_oof *,
		    const char *code);
/* When automatic replies were last read (mono ms), 0 if never. */
int64_t		 mailbox_oof_read_at(const struct mailbox *);
/* The mailbox's GetUserOofSettings request into s; -1 if none. */
int		 mailbox_oof_build(const struct mailbox *, struct ews_send *);
/* Unsubscribe (streaming) and stop; ends in state STOPPED.  Nothing if
 * already stopping. */
void		 mailbox_stop(struct mailbox *);
/* boundary_cb for the ctx's presence_timers and action_timers. */
void		 mailbox_presence_timer(struct timerheap_entry *, void *);
void		 mailbox_action_timer(struct timerheap_entry *, void *);

/* Read-only views (borrowed strings). */
const char	*mailbox_address(const struct mailbox *);
enum mailbox_state mailbox_state(const struct mailbox *);
enum mailbox_status mailbox_status(const struct mailbox *);
enum mailbox_mode mailbox_mode(const struct mailbox *);
enum mailbox_reason mailbox_reason(const struct mailbox *);
enum mailbox_backend mailbox_backend(const struct mailbox *);
/* The subscription id, or NULL when it holds none. */
const char	*mailbox_sub_id(const struct mailbox *);
/* Its impersonation identity (id borrows from the mailbox). */
void		 mailbox_ident(const struct mailbox *, struct soap_ident *);
/* The last presence published, or NULL before the first. */
const struct presence *mailbox_presence(const struct mailbox *);
/* The last error code ("" if none). */
const char	*mailbox_error(const struct mailbox *);

/*
 * The stream group it is placed in, or NULL.  The mailbox only keeps
 * the link for the layer above (group_add/group_remove set it) and
 * never follows it.
 */
struct group	*mailbox_group(const struct mailbox *);
void		 mailbox_set_group(struct mailbox *, struct group *);

const char	*mailbox_state_name(enum mailbox_state);
const char	*mailbox_status_name(enum mailbox_status);
const char	*mailbox_mode_name(enum mailbox_mode);
const char	*mailbox_reason_name(enum mailbox_reason);
/* One mailbox as a JSON object; connection: its group id or -1. */
void		 mailbox_json(const struct mailbox *, struct json_writer *,
		    bool detail, int64_t connection);

#endif
