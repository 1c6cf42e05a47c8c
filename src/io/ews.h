/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * One path for every EWS request: wait for a slot from the budget
 * scheduler, build the body only once granted, send it through the HTTP
 * engine, give the slot back with what Exchange said about the budget
 * (BackOffMilliseconds, 503s), count the answer, hand it to the owner.
 */
#ifndef EWSGW_EWS_H
#define EWSGW_EWS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "ews/ews_parse.h"
#include "io/http.h"
#include "io/throttle.h"
#include "io/throttle_drive.h"

struct event_base;
struct config;
struct json_writer;

enum ews_op {
	EWS_OP_SUBSCRIBE,
	EWS_OP_UNSUBSCRIBE,
	EWS_OP_GET_STREAMING_EVENTS,
	EWS_OP_GET_EVENTS,
	EWS_OP_FIND_ITEM,
	EWS_OP_GET_ITEM,
	EWS_OP_GET_USER_AVAILABILITY,
	EWS_OP_GET_USER_OOF_SETTINGS,
	EWS_OP_GET_USER_SETTINGS,	/* SOAP Autodiscover */
	EWS_OP_MAX
};

/* What the owner fills in when the slot is granted. */
struct ews_send {
	struct buf	 body;		/* the SOAP document */
	const char	*url;		/* where to post it, borrowed; NULL:
					   the configured EWS URL */
	const char	*anchor;	/* X-AnchorMailbox, borrowed */
	const char	*cookie;	/* X-BackEndOverrideCookie, borrowed */
	const char	*tag;		/* for log lines (mailbox), borrowed */
	bool		 streaming;	/* body bytes to the data callback */
	bool		 secret;	/* the body holds a secret: never
					   trace it */
	bool		 no_auth;	/* send no credentials (to see
					   which schemes the server offers):
					   the answer says nothing about
					   the account */
};

/* What the owner gets back (borrowed for the call). */
struct ews_reply {
	enum ews_op			 op;
	const struct http_response	*http;	/* NULL: build refused, nothing
						   was sent (code "NotSent") */
	struct ews_response		 generic; /* fault / first message */
	bool				 parsed; /* generic is meaningful */
	const char			*code;	/* ResponseCode, HTTP status
						   or transport class */
	enum ews_action			 action; /* what to do about it */
	bool				 account; /* the service account's
						   failure (refused,
						   unreachable), logged
						   once by the call path */
};

struct ews_call;
/*
 * The slot is granted: fill *send from the owner's current state, and
 * change nothing (what follows a request going out belongs in sent).
 * Return -1 to give the slot back unused: done then gets a reply whose
 * http is NULL.
 */
typedef int	(*ews_build_cb)(struct ews_call *, struct ews_send *, void *);
/* The request went out (right after build). */
typedef void	(*ews_sent_cb)(struct ews_call *, void *);
/* The answer, once per submitted call unless cancelled. */
typedef void	(*ews_done_cb)(struct ews_call *, const struct ews_reply *,
		    void *);
/*
 * A stream ended: what its body said about the budget (an
 * ErrorServerBusy envelope under HTTP 200, say) that its HTTP status
 * could not.  THROTTLE_OK when it said nothing; asked once, before done.
 */
typedef struct throttle_outcome (*ews_verdict_cb)(struct ews_call *, void *);

/*
 * One operation as an owner runs it; static const, one per operation,
 * so each answer has exactly one handler.
 */
struct ews_call_ops {
	enum ews_op		 op;
	enum throttle_class	 klass;
	ews_build_cb		 build;
	ews_sent_cb		 sent;		/* optional */
	ews_done_cb		 done;
	http_data_cb		 data;		/* non-NULL: a streaming call,
						   no total timeout, body
						   bytes to data() */
	ews_verdict_cb		 verdict;	/* optional, streams */
	bool			 diagnostic;	/* the owner hears every
						   answer: never held back
						   at the account gate (a
						   preflight check reports a
						   refused login itself) */
};

/*
 * Embedded in its owner, or allocated by it for one request (freed in
 * done, or after cancel: the call path touches a call no more once its
 * done returns); one request at a time.
 */
struct ews_call {
	struct throttle_ticket		 ticket;
	struct http_request		*req;
	struct ews_ctx			*ctx;
	const struct ews_call_ops	*ops;
	void				*arg;
	bool				 data_seen; /* a stream's first
						   bytes came */
	bool				 served; /* answered past the login
						   and impersonation once;
						   an owner allocating a
						   call per request carries
						   it over */
	bool				 no_auth; /* sent without
						   credentials */
};

struct ews_ctx;

/* Returns NULL with *cause on failure (allocated, caller frees). */
struct ews_ctx	*ews_ctx_new(struct event_base *, const struct config *,
		    char **cause);
void		 ews_ctx_free(struct ews_ctx *);
/* New limits and credentials after a reload (conf borrowed, kept). */
void		 ews_ctx_reload(struct ews_ctx *, const struct config *);
struct throttle	*ews_ctx_throttle(struct ews_ctx *);
/* The scheduler's driver, for the Graph client to share. */
struct throttle_drive *ews_ctx_drive(struct ews_ctx *);
/*
 * Cluster mode: this node's share of the account's budget replaces
 * max_concurrency and max_subscriptions (share NULL: the configured
 * values again).  Kept across reloads.  Returns how many streams now
 * exceed their budgets (throttle_set_limits).
 */
struct ews_share {
	unsigned	 concurrency;
	unsigned	 subscriptions;
};
unsigned	 ews_ctx_set_share(struct ews_ctx *, const struct ews_share *);

void		 ews_call_init(struct ews_call *, struct ews_ctx *);
/*
 * Queue a request for ops (borrowed, static) with arg for its
 * callbacks.  anchor selects the streaming budget under impersonated
 * charging (borrowed until granted).
 */
void		 ews_call_submit(struct ews_call *, const struct ews_call_ops *,
		    enum throttle_prio, const char *anchor, void *arg);
/* Cancel a queued or running call; done is not called. */
void		 ews_call_cancel(struct ews_call *);
bool		 ews_call_busy(const struct ews_call *);
/* A streaming call's request, to pause/resume; NULL when not running. */
struct http_request *ews_call_request(const struct ews_call *);

/* Requests in flight by class, counters by operation and code. */
void		 ews_ctx_metrics(struct ews_ctx *, struct buf *);
void		 ews_ctx_budget_json(struct ews_ctx *, struct json_writer *);
/* Short request header: version + optional impersonation. */
const char	*ews_op_name(enum ews_op);
/*
 * The service account's problem (authentication failing, Exchange
 * unreachable, impersonation refused across the board) as one string
 * appended to the open JSON array at w.  Returns 1 when there is none
 * (healthy), 0 when there is one.
 */
int		 ews_ctx_problems_json(struct ews_ctx *, struct json_writer *);
/* The account's state as one JSON object value at w. */
void		 ews_ctx_account_json(struct ews_ctx *, struct json_writer *);
/* A few upper-case words for systemd's STATUS= line, or NULL. */
const char	*ews_ctx_summary(const struct ews_ctx *);

#endif
