/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * One Graph mailbox's reads, through the Graph client: a delta round
 * over the presence window (calendarView/delta, its deltaLink kept for
 * the next round), the window read whole with calendarView when a round
 * saw a change, and the automatic replies.  The first round of a token
 * returns the whole window and is taken as it is; a later round that
 * reports any change or removal is followed by a calendarView read
 * (the timeline keeps no item ids to apply changes to).  A token the
 * server forgot (410) or a window that has slid too far starts a fresh
 * round.  What the reads find goes back through one callback, in the
 * backend-neutral timeline items and the EWS out-of-office struct that
 * the EWS path also produces.  With change notifications it also makes
 * and renews the mailbox's subscription on its events.
 */
#ifndef EWSGW_GRAPHREAD_H
#define EWSGW_GRAPHREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "graph/graph_error.h"

struct ews_oof;
struct graphread;
struct json_writer;
struct subs_env;
struct timeline_item;

enum graphread_kind {
	GRAPHREAD_ROUND,	/* delta round, calendarView after a change,
				   automatic replies */
	GRAPHREAD_FULL,		/* calendarView, automatic replies */
	GRAPHREAD_CALENDAR	/* calendarView */
};

/* Borrowed for the callback. */
struct graphread_result {
	const char		*code;	/* NULL: read; else why not */
	enum graph_action	 action;	/* of the failure */
	const struct timeline_item *items; /* the window's content */
	size_t			 nitems;
	bool			 calendar;	/* items is the window (false: a
						   round saw no change) */
	const struct ews_oof	*oof;		/* or NULL: not read */
};
typedef void	 (*graphread_cb)(const struct graphread_result *, void *);

/*
 * Reads for user (an address or UPN, copied) on env's Graph client;
 * env borrowed for its life.  Allocated, free with graphread_free.
 */
struct graphread *graphread_new(const struct subs_env *, const char *user,
		    graphread_cb, void *arg);
/* Cancel what runs (no callback) and free. NULL is fine. */
void		 graphread_free(struct graphread *);
/* Start a read; the callback runs once, from the loop.  Not if busy. */
void		 graphread_start(struct graphread *, enum graphread_kind);
bool		 graphread_busy(const struct graphread *);
/* Cancel the running read (no callback); the delta token stays. */
void		 graphread_cancel(struct graphread *);
/* A subscription made or renewed (id, expires), or why not (code). */
struct graphsub_result {
	const char		*code;		/* NULL: done */
	enum graph_action	 action;	/* of the failure */
	const char		*id;
	int64_t			 expires;	/* epoch seconds */
};
typedef void	 (*graphsub_cb)(const struct graphsub_result *, void *);

/*
 * Subscribe to the user's events with notifications to url and
 * lifecycle notifications to lc_url, clientState client_state (all
 * borrowed for the call; they hold secrets), until expires (epoch s).
 * cb runs once, with graphread_new's arg.  Not if one runs already.
 */
void		 graphread_subscribe(struct graphread *, const char *url,
		    const char *lc_url, const char *client_state,
		    int64_t expires, graphsub_cb);
/* Renew subscription id until expires. */
void		 graphread_renew(struct graphread *, const char *id,
		    int64_t expires, graphsub_cb);
/*
 * Delete subscription id (at stop: it would otherwise send notifications
 * until it expires).  cb's code is NULL when it is gone (also when the
 * server no longer knew it).
 */
void		 graphread_unsubscribe(struct graphread *, const char *id,
		    graphsub_cb);
bool		 graphread_sub_busy(const struct graphread *);
void		 graphread_sub_cancel(struct graphread *);
/* Status: "delta" object (token held, its age, rounds, re-reads). */
void		 graphread_json(const struct graphread *, struct json_writer *);

#endif
