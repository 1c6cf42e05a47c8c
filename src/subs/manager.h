/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The subscription manager: every configured mailbox watched (streaming,
 * push or polling) inside Exchange's budgets, through drops, restarts and
 * back-off; presence computed and published.  This header is the
 * daemon's view plus the state the manager's modules (mailbox.c,
 * group.c, poller.c, pushrecv.c) share.
 */
#ifndef EWSGW_MANAGER_H
#define EWSGW_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/backoff.h"
#include "presence/presence.h"

struct buf;
struct config;
struct event;
struct event_base;
struct json_writer;
struct sinkset;

typedef void (*manager_done_cb)(void *);

struct manager {
	struct event_base	*base;
	const struct config	*conf;		/* borrowed from the daemon */
	struct sinkset		*sinks;		/* borrowed */
	struct ews_ctx		*ews;
	struct presence_rules	 rules;
	struct backoff_rng	 rng;

	struct hashmap		*by_address;	/* address -> mailbox */
	struct hashmap		*by_subid;	/* subscription id -> mailbox */
	struct mailbox		**all;		/* sorted by address */
	size_t			 nall;

	struct group		**groups;
	size_t			 ngroups;
	unsigned		 next_group_id;

	struct boundary		*presence_timers; /* wall clock */
	struct boundary		*action_timers;	/* monotonic */
	struct poller		*poller;
	struct pushrecv		*push;

	struct event		*rebalance_ev;	/* deferred re-assignment */
	bool			 started;
	bool			 stopping;
	manager_done_cb		 stop_cb;
	void			*stop_arg;
	struct event		*stop_timer;

	uint64_t		 published;	/* presence changes */
	uint64_t		 notifications;	/* calendar events seen */
	uint64_t		 resubscribes;
	uint64_t		 resyncs;
};

/* Returns NULL with *cause on failure. */
struct manager	*manager_new(struct event_base *, const struct config *,
		    struct sinkset *, char **cause);
void		 manager_start(struct manager *);
/* The new config is borrowed and must stay alive (the daemon owns it). */
void		 manager_reload(struct manager *, const struct config *);
/* Release subscriptions within timeout_ms, then call cb once. */
void		 manager_shutdown(struct manager *, int64_t timeout_ms,
		    manager_done_cb, void *);
void		 manager_free(struct manager *);

/* Status socket: members of the answer object.  Returns healthy. */
int		 manager_status_json(struct manager *, struct json_writer *);
void		 manager_mailboxes_json(struct manager *, struct json_writer *);
int		 manager_mailbox_json(struct manager *, const char *,
		    struct json_writer *);
void		 manager_connections_json(struct manager *,
		    struct json_writer *);
int		 manager_resync(struct manager *, const char *, char **cause);
void		 manager_metrics(struct manager *, struct buf *);
/* One line for systemd's STATUS=. */
void		 manager_summary(struct manager *, char *, size_t);

/* For the modules: schedule a re-assignment of modes and groups. */
void		 manager_rebalance_soon(struct manager *);
/* A mailbox finished mailbox_stop(). */
void		 manager_mailbox_stopped(struct manager *, struct mailbox *);
/* Look-ups (borrowed). */
struct mailbox	*manager_mailbox_by_subid(struct manager *, const char *);

#endif
