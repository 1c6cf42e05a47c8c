/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The budget scheduler: every EWS request asks it for a slot first, so
 * ewsgw never exceeds Exchange's throttling budgets (EWS-NOTES 8).
 *
 * Pure and deterministic: no I/O, no clock, no libevent.  The caller
 * passes "now" (monotonic ms), calls throttle_run() after every
 * completion and when the timer it armed for throttle_next_wakeup()
 * fires; grants are delivered through the tickets' callbacks from
 * inside throttle_run() only.  Every operation is O(1) (a budget in
 * back-off costs O(log budgets) once), independent of the number of
 * mailboxes or queued tickets.  The event loop side (one deferred run,
 * one wake-up timer) is io/throttle_drive.h, shared by the EWS call
 * path and the Graph client.
 *
 * Who is charged (EWS-NOTES 8.2):
 *   SHORT requests (Subscribe, Unsubscribe, FindItem, GetItem,
 *     GetUserAvailability, GetUserOofSettings, GetEvents) always take a
 *     slot of the service account's concurrency budget (max_concurrency).
 *   STREAM requests (GetStreamingEvents) hold their slot for their whole
 *     life.  Under service-account charging that is a slot of the same
 *     concurrency budget, but only beyond the share reserved for SHORT
 *     requests.  Under impersonated charging it is a slot of the
 *     anchor's own streaming budget (streaming_connections_per_anchor)
 *     and does not touch the service account's concurrency; a NULL
 *     anchor means "not impersonating", charged to the service account's
 *     own streaming budget (same limit).
 *   Subscriptions are counted separately (throttle_subscription_*):
 *     against max_subscriptions in total under service-account
 *     charging, per target mailbox under impersonated charging.
 *
 * Use from the daemon:
 *   - throttle_limits_from_conf() with a seed from the clock and pid,
 *     throttle_new(); throttle_set_limits() on reload.
 *   - Each request owner embeds a struct throttle_ticket and calls
 *     throttle_submit(); in the callback it starts the HTTP request.
 *   - On completion: throttle_release() with the outcome the HTTP
 *     result maps to: success -> THROTTLE_OK; ErrorServerBusy with
 *     BackOffMilliseconds -> THROTTLE_BUSY; 503, ErrorExceededConnection-
 *     Count, connect/timeout/reset -> THROTTLE_TRANSIENT; any other
 *     answer (a request-level EWS error) -> THROTTLE_DONE.
 *   - After completions (once per loop iteration is enough) and when the
 *     timer fires: throttle_run(now), then re-arm one timer for
 *     throttle_next_wakeup(now) (none if THROTTLE_NEVER).
 *   - An owner going away calls throttle_cancel() first.
 * The manager forms no more stream groups than throttle_streams_total()
 * allows and no more subscriptions than the subscription budget holds
 * (subs/manager.c); a mailbox that finds no room is polled instead, with
 * GetUserAvailability in batches (subs/poller.c), and promoted to a
 * stream when room appears.  There is no pull (GetEvents) fallback.
 *
 * GRAPH requests (Microsoft Graph, io/graph_client.c) are charged to a
 *   budget of their own per (app, target mailbox), named by the anchor
 *   argument (the mailbox address; "" for the app's own calls):
 *   graph_concurrency slots (4 in flight) and a rate, graph_rate per
 *   graph_window_ms (10,000 per 10 minutes); every grant also needs the
 *   app-wide rate, graph_app_rate per graph_app_window_ms (130,000 per
 *   10 s).  A rate is a token bucket holding a tenth of it, refilled
 *   with the rest over the window, so no window ever sees more than the
 *   rate.  A budget whose rate is exhausted waits like a budget in
 *   back-off, until its refill time; budgets stopped by the app rate
 *   wait on one list for the app's refill.  Each step of a JSON $batch
 *   is its own ticket (charged as one request).  429/503 with
 *   Retry-After is THROTTLE_BUSY with that time, clamped like
 *   BackOffMilliseconds (THROTTLE_BUSY_MAX_MS): it pauses that mailbox
 *   only.  Graph budgets are not behind the account gate and are never
 *   charged to an EWS budget, nor an EWS request to them: a refused EWS
 *   service account does not stop Graph, and a 429 on one Graph mailbox
 *   touches no EWS budget.  A Graph budget is freed once idle with its
 *   bucket full again (so forgetting it forgets nothing).
 *
 * The account gate stands in front of every budget.  When the service
 * account itself is refused (its credentials, or impersonation across
 * the board) or Exchange cannot be reached, more requests only add
 * failed logins or load: the gate is closed (nothing is granted until a
 * given time), then probing (exactly one request, the probe, is granted
 * and nothing else until the gate is set again or the probe is
 * released).  Who decides is the caller (account.h); the scheduler only
 * obeys.  While probing, short requests are preferred as probes.
 */
#ifndef EWSGW_THROTTLE_H
#define EWSGW_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "base/backoff.h"
#include "base/buf.h"
#include "base/conf.h"
#include "base/json.h"

#define THROTTLE_NEVER		INT64_MAX	/* no wake-up needed */
#define THROTTLE_UNLIMITED	UINT32_MAX	/* no client-side bound */

enum throttle_class {
	THROTTLE_SHORT,
	THROTTLE_STREAM,
	THROTTLE_GRAPH,		/* a Graph request (not behind the gate) */
	THROTTLE_CLASS_MAX
};

/* Sanity bound on a server-sent BackOffMilliseconds or Retry-After. */
#define THROTTLE_BUSY_MAX_MS		(60 * 60 * 1000LL)

/* Microsoft Graph's documented limits for Outlook resources. */
#define THROTTLE_GRAPH_CONCURRENCY	4	/* per app per mailbox */
#define THROTTLE_GRAPH_RATE		10000	/* requests ... */
#define THROTTLE_GRAPH_WINDOW_MS	600000	/* ... per 10 minutes */
#define THROTTLE_GRAPH_APP_RATE		130000	/* requests ... */
#define THROTTLE_GRAPH_APP_WINDOW_MS	10000	/* ... per 10 seconds */

/* Lower value is served first; FIFO within one class and priority. */
enum throttle_prio {
	THROTTLE_PRIO_HIGH,	/* recovery: resubscribe, resync after errors */
	THROTTLE_PRIO_NORMAL,
	THROTTLE_PRIO_LOW,	/* periodic resync */
	THROTTLE_PRIO_MAX
};

enum throttle_result {
	/* Success: resets the budget's exponential back-off. */
	THROTTLE_OK,
	/* Finished without telling anything about the budget (cancelled,
	 * request-level error such as ErrorInvalidSubscription). */
	THROTTLE_DONE,
	/* ErrorServerBusy, or Graph's 429/503 with Retry-After: nothing
	 * charged to the budget before now + backoff_ms (+ jitter),
	 * clamped to THROTTLE_BUSY_MAX_MS; 0 means "not given". */
	THROTTLE_BUSY,
	/* 503, ErrorExceededConnectionCount, connection errors: jittered
	 * exponential back-off of the budget. */
	THROTTLE_TRANSIENT
};

struct throttle_outcome {
	enum throttle_result	 result;
	int64_t			 backoff_ms;	/* THROTTLE_BUSY only */
};

enum throttle_gate {
	THROTTLE_GATE_OPEN,	/* grant as the budgets allow */
	THROTTLE_GATE_PROBE,	/* one granted request (the probe) at a time */
	THROTTLE_GATE_CLOSED,	/* nothing until gate_until, then PROBE */
	THROTTLE_GATE_MAX
};

struct throttle;
struct throttle_budget;
struct throttle_ticket;

/* Called from throttle_run() when the ticket got its slot. */
typedef void (*throttle_cb)(struct throttle_ticket *, void *);

enum throttle_ticket_state {
	THROTTLE_TICKET_IDLE,
	THROTTLE_TICKET_QUEUED,
	THROTTLE_TICKET_GRANTED
};

/*
 * One request's place in the scheduler, embedded in the caller's object
 * (no allocation per request).  Zero it (or throttle_ticket_init) once;
 * a ticket is reusable after release or cancel.  Fields are private.
 */
struct throttle_ticket {
	TAILQ_ENTRY(throttle_ticket)	 entry;
	struct throttle_budget		*budget;
	throttle_cb			 cb;
	void				*arg;
	uint64_t			 seq;		/* submit order */
	uint64_t			 grant_no;	/* grant order */
	uint8_t				 klass;
	uint8_t				 prio;
	uint8_t				 state;
};

struct throttle_limits {
	unsigned		 max_concurrency;
	unsigned		 short_request_share;	/* percent */
	enum conf_charging	 charging;
	unsigned		 streaming_connections_per_anchor;
	unsigned		 max_subscriptions;	/* 0 = no cap */
	/*
	 * A share of an account budget split among cluster nodes: a
	 * max_concurrency of 0 (and, under service-account charging, a
	 * max_subscriptions of 0) then means none at all.
	 */
	bool			 shared;
	int64_t			 backoff_base_ms;
	int64_t			 backoff_max_ms;
	enum backoff_jitter	 jitter;
	/* BackOffMilliseconds gets uniform [0, min(ms/10, this)] added. */
	int64_t			 busy_jitter_max_ms;
	/* Start-up ramp: minimum time between two grants, 0 = none. */
	int64_t			 grant_separation_ms;
	uint64_t		 seed;		/* PRNG seed */
	/* Graph ([graph] section); 0 = Graph's documented limit. */
	unsigned		 graph_concurrency;
	unsigned		 graph_rate;
	int64_t			 graph_window_ms;
	unsigned		 graph_app_rate;
	int64_t			 graph_app_window_ms;
};

/* Capacity of one streaming budget (throttle_stream_capacity). */
struct throttle_capacity {
	unsigned	 limit;		/* streams this budget may hold */
	unsigned	 in_use;	/* streams holding a slot */
	unsigned	 queued;	/* streams waiting */
	unsigned	 free_now;	/* slots a stream could take now */
	unsigned	 available;	/* more streams worth submitting */
	unsigned	 excess;	/* in_use beyond limit (reload) */
	int64_t		 backoff_until;	/* 0 or the end of a back-off */
};

struct throttle_stats {
	enum conf_charging charging;
	unsigned	 concurrency_limit;
	unsigned	 concurrency_in_use;	/* of the service account */
	unsigned	 short_reserve;
	unsigned	 stream_limit;		/* total; THROTTLE_UNLIMITED */
	unsigned	 per_anchor_limit;
	unsigned	 in_use[THROTTLE_CLASS_MAX];
	unsigned	 queued[THROTTLE_CLASS_MAX];
	unsigned	 budgets;		/* streaming budgets */
	unsigned	 budgets_in_backoff;	/* of all budgets */
	int64_t		 backoff_until;		/* service account; 0 = none */
	unsigned	 subscriptions;
	unsigned	 subscription_limit;
	uint64_t	 grants[THROTTLE_CLASS_MAX];
	uint64_t	 cancels;
	uint64_t	 backoffs;		/* exponential back-offs */
	uint64_t	 server_busy;		/* ErrorServerBusy */
	enum throttle_gate gate;
	int64_t		 gate_until;		/* CLOSED: mono ms */
	uint64_t	 probes;		/* requests granted as probes */
	uint64_t	 requeued;		/* throttle_requeue calls */
	/*
	 * Service account slots held by short requests, summed over time
	 * (slot x ms): occupancy = slot_busy_ms / (max_concurrency x ms).
	 */
	uint64_t	 slot_busy_ms;
};

/* The Graph budgets' figures (throttle_graph_stats). */
struct throttle_graph_stats {
	uint64_t	 granted;
	uint64_t	 waited_slot;	/* submitted to a budget with no slot */
	uint64_t	 waited_rate;	/* a budget stopped by its rate */
	uint64_t	 waited_app;	/* ... by the app-wide rate */
	uint64_t	 waited_pause;	/* submitted during a Retry-After */
	uint64_t	 pauses;	/* THROTTLE_BUSY outcomes */
	unsigned	 in_flight;	/* over all mailboxes */
	unsigned	 queued;
	unsigned	 max_in_flight_mailbox;	/* the highest seen */
	/* Most requests one mailbox / the app made in one window. */
	uint64_t	 max_window_requests;
	uint64_t	 max_app_window_requests;
	size_t		 mailboxes;	/* Graph budgets alive */
	size_t		 paused;	/* of those, in a Retry-After pause */
	/* The limits in force. */
	unsigned	 concurrency;
	unsigned	 rate;
	int64_t		 window_ms;
	unsigned	 app_rate;
	int64_t		 app_window_ms;
};

/* Defaults matching Exchange 2013+ / Online (EWS-NOTES 8.1). */
void	 throttle_limits_default(struct throttle_limits *);
/*
 * Defaults, then the [throttling] keys and [graph]'s limits of a parsed
 * configuration (borrowed); l->seed is kept as the caller set it.
 */
void	 throttle_limits_from_conf(struct throttle_limits *,
	    const struct config *);
/* SHORT slots streams may not take, from max_concurrency and the share. */
unsigned throttle_limits_short_reserve(const struct throttle_limits *);

/* Returns a new scheduler (free with throttle_free); copies limits. */
struct throttle	*throttle_new(const struct throttle_limits *);
/*
 * Free the scheduler.  Tickets still queued or granted are detached
 * (they become IDLE, their callbacks never fire).  NULL is fine.
 */
void	 throttle_free(struct throttle *);

/*
 * New limits for new grants (reload).  Existing grants keep their slots;
 * returns how many streams now exceed their budgets (see
 * throttle_stream_capacity for which), so the manager can close some.
 */
unsigned throttle_set_limits(struct throttle *, const struct throttle_limits *);

void	 throttle_ticket_init(struct throttle_ticket *);
/*
 * Queue a request.  The ticket (borrowed until it is released or
 * cancelled) must be IDLE; anchor (copied when needed) selects the
 * streaming budget of a STREAM under impersonated charging, the target
 * mailbox of a GRAPH request, and is ignored otherwise.
 * cb(ticket, arg) fires from a later throttle_run().
 */
void	 throttle_submit(struct throttle *, struct throttle_ticket *,
	    enum throttle_class, const char *anchor, enum throttle_prio,
	    throttle_cb, void *);
/*
 * The request finished: return the slot.  outcome (NULL = THROTTLE_DONE)
 * may put the budget in back-off from now on.
 */
void	 throttle_release(struct throttle *, struct throttle_ticket *,
	    int64_t now, const struct throttle_outcome *);
/*
 * The granted request failed for a reason the gate now deals with:
 * return the slot as throttle_release does, and queue the same ticket
 * again (same class, priority, budget and callback, behind the tickets
 * already waiting there).  Its callback fires again from a later run.
 */
void	 throttle_requeue(struct throttle *, struct throttle_ticket *,
	    int64_t now, const struct throttle_outcome *);
/*
 * The owner goes away: a queued ticket leaves its queue, a granted one
 * is released as THROTTLE_DONE, an idle one is left alone.
 */
void	 throttle_cancel(struct throttle *, struct throttle_ticket *);
bool	 throttle_ticket_queued(const struct throttle_ticket *);
bool	 throttle_ticket_granted(const struct throttle_ticket *);

/*
 * Grant every slot that can be granted at now, calling the callbacks.
 * Callbacks may submit, release and cancel (also their own ticket), but
 * not call throttle_run or throttle_free.  Tickets submitted during the
 * run wait for the next one.  Returns the number of grants.
 */
unsigned throttle_run(struct throttle *, int64_t now);
/*
 * Earliest time (>= now) at which throttle_run could grant something or
 * has housekeeping to do; THROTTLE_NEVER if nothing is waiting.
 */
int64_t	 throttle_next_wakeup(const struct throttle *, int64_t now);

/*
 * Set the gate.  until is only used for THROTTLE_GATE_CLOSED.  A probe
 * in flight stays the probe until it is released (or the gate opens),
 * so setting PROBE again does not let a second one through.
 */
void	 throttle_gate_set(struct throttle *, enum throttle_gate,
	    int64_t until);
/*
 * While probing, take a short request chosen at random as the probe
 * instead of the oldest, so that a run of requests that fail for their
 * own reason (a block of mailboxes outside a scope) does not hold every
 * probe.
 */
void	 throttle_gate_spread(struct throttle *, bool);
/* The gate at now (a CLOSED gate past its time reads PROBE). */
enum throttle_gate throttle_gate_get(const struct throttle *, int64_t now);
/* End of a CLOSED gate (mono ms); 0 when not closed. */
int64_t	 throttle_gate_until(const struct throttle *);
/* Whether the granted ticket is the gate's probe. */
bool	 throttle_ticket_is_probe(const struct throttle *,
	    const struct throttle_ticket *);
/* The probe answered enough (e.g. a stream's first bytes): no longer
 * the probe; the gate stays as it is. */
void	 throttle_probe_done(struct throttle *, const struct throttle_ticket *);
const char *throttle_gate_name(enum throttle_gate);

/*
 * Streaming capacity of the budget a STREAM for anchor would be charged
 * to (anchor ignored under service-account charging).  The daemon sizes
 * its groups with throttle_streams_total(); this per-budget view is for
 * the unit tests, which check the accounting behind both.
 */
void	 throttle_stream_capacity(const struct throttle *, const char *anchor,
	    struct throttle_capacity *);
/* Streams possible in total; THROTTLE_UNLIMITED under impersonation. */
unsigned throttle_streams_total(const struct throttle *);

/*
 * Count one more subscription for mailbox; 0 if the budget allowed it,
 * -1 (nothing counted) if it is full and the mailbox must be polled.
 * The string is borrowed until the matching release: each holder passes
 * its own copy of the address, alive and unchanged while it holds the
 * subscription (the mailbox's own address).
 */
int	 throttle_subscription_acquire(struct throttle *, const char *mailbox);
/* The subscription ended (unsubscribed, expired, Subscribe failed). */
void	 throttle_subscription_release(struct throttle *, const char *mailbox);
/* Subscriptions held for mailbox (NULL: in total). */
unsigned throttle_subscriptions(const struct throttle *, const char *mailbox);

/* Counters and gauges at now (O(streaming budgets)). */
void	 throttle_stats(const struct throttle *, int64_t now,
	    struct throttle_stats *);
/* The Graph budgets at now (O(Graph budgets) for the paused count). */
void	 throttle_graph_stats(const struct throttle *, int64_t now,
	    struct throttle_graph_stats *);
/* Write the status as one JSON object value (bounded in size). */
void	 throttle_json(const struct throttle *, int64_t now,
	    struct json_writer *);
/* Append Prometheus text exposition lines (ewsgw_throttle_*). */
void	 throttle_prometheus(const struct throttle *, int64_t now,
	    struct buf *);

/*
 * Check every internal invariant (counters against lists, limits at
 * grant time, queue order); O(everything), for tests and debug builds.
 * Returns NULL or a static description of the first violation.
 */
const char *throttle_verify(const struct throttle *);

#endif
