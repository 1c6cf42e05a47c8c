/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * A streaming group: up to subscriptions_per_connection (<= 200)
 * mailboxes whose subscriptions share one GetStreamingEvents connection,
 * with server affinity (X-AnchorMailbox of the group's first mailbox,
 * X-PreferServerAffinity, the X-BackEndOverrideCookie replayed).
 */
#ifndef EWSGW_GROUP_H
#define EWSGW_GROUP_H

#include <stdbool.h>
#include <stdint.h>

#include "base/backoff.h"
#include "io/ews.h"

struct event;
struct json_writer;
struct mailbox;
struct manager;
struct stream;

enum group_state {
	GROUP_IDLE,		/* nothing to stream yet */
	GROUP_QUEUED,		/* waiting for a streaming slot */
	GROUP_OPEN,		/* GetStreamingEvents running */
	GROUP_BACKOFF,		/* reconnecting later */
	GROUP_STATE_MAX
};

struct group {
	unsigned		 id;
	struct manager		*mgr;
	struct mailbox		**members;	/* sorted by address */
	unsigned		 n, cap;
	char			*anchor;	/* owned copy of members[0] */
	char			*cookie;	/* X-BackEndOverrideCookie */
	enum group_state	 state;
	struct ews_call		 call;
	struct stream		*parser;
	struct event		*idle_ev;	/* dead-stream detection */
	struct event		*retry_ev;	/* reconnect / settle timer */
	struct event		*eval_ev;	/* deferred evaluate() */
	struct backoff		 backoff;
	unsigned		 streamed;	/* ids on the open connection */
	bool			 reopen;	/* membership changed */
	bool			 closed_by_server; /* ConnectionStatus Closed */
	int64_t			 opened_at;	/* wall ms */
	int64_t			 last_data_at;	/* last whole envelope, wall ms */
	uint64_t		 connects, drops, envelopes;
	char			 last_error[64];
};

struct group	*group_new(struct manager *, unsigned id);
void		 group_free(struct group *);
void		 group_add(struct group *, struct mailbox *);
void		 group_remove(struct group *, struct mailbox *);
/* A member's state or subscription changed: maybe (re)connect. */
void		 group_member_changed(struct group *);
/* Close the connection (shutdown). */
void		 group_close(struct group *);
const char	*group_anchor(const struct group *);
const char	*group_cookie(const struct group *);
void		 group_set_cookie(struct group *, const char *);
unsigned	 group_id(const struct group *);
const char	*group_state_name(enum group_state);
void		 group_json(const struct group *, struct json_writer *);

#endif
