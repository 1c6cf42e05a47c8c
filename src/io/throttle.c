/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The budget scheduler: per-budget slot accounting, prioritised FIFO
 * queues, BackOffMilliseconds and exponential back-off, start-up pacing,
 * and Graph's per-mailbox and per-app rates as token buckets.
 * Pure: the caller supplies the time and arms the timer.
 */
#include "config.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "io/throttle.h"
#include "base/xmalloc.h"

/* Streaming budgets listed by name in the JSON status, at most. */
#define THROTTLE_JSON_ANCHORS	50

TAILQ_HEAD(ticket_list, throttle_ticket);

/*
 * Where a budget is linked: nowhere, on its ready list, in its heap, or
 * (Graph) on the list waiting for the app-wide rate.
 */
enum budget_where { BUDGET_NOWHERE, BUDGET_READY, BUDGET_HEAP,
	BUDGET_APP_WAIT };

/* A rate as a token bucket in milli-tokens: no floating point, no drift. */
struct rate {
	int64_t		 cap;		/* milli-requests */
	int64_t		 refill_num;	/* milli-requests per ... */
	int64_t		 refill_den;	/* ... this many ms */
	unsigned	 rate;
	int64_t		 window;
};

/* One bucket's fill, and the requests of the window being counted. */
struct bucket {
	int64_t		 tokens;	/* milli-requests */
	int64_t		 refilled_at;	/* ms */
	int64_t		 win_start;	/* ms */
	uint64_t	 win_count;
};

/*
 * One charged account.  The service account's concurrency budget is
 * embedded in struct throttle; streaming budgets (impersonated
 * charging) are created on first use and freed once idle.
 */
struct throttle_budget {
	char			*key;		/* NULL: service account */
	bool			 graph;		/* keyed by (app, mailbox) */
	struct bucket		 bucket;	/* graph: the mailbox's rate */
	int64_t			 rate_until;	/* graph: no token before */
	int64_t			 wake_at;	/* in a heap: its key */
	struct ticket_list	 q[THROTTLE_CLASS_MAX][THROTTLE_PRIO_MAX];
	struct ticket_list	 granted;
	unsigned		 nqueued[THROTTLE_CLASS_MAX];
	unsigned		 in_use;	/* every class */
	unsigned		 streams;	/* STREAM part of in_use */
	struct backoff		 backoff;
	int64_t			 backoff_until;	/* 0 = none */
	uint64_t		 backoff_mark;	/* grants before the last one */
	enum budget_where	 where;
	TAILQ_ENTRY(throttle_budget) rentry;
	size_t			 heap_idx;
};

TAILQ_HEAD(budget_list, throttle_budget);

/* Budgets waiting for a time, min-heap on wake_at. */
struct bheap {
	struct throttle_budget	**v;
	size_t			 n;
	size_t			 cap;
};

struct throttle {
	struct throttle_limits	 lim;
	unsigned		 reserve;	/* SHORT-only slots */
	struct backoff_rng	 rng;

	struct throttle_budget	 account;
	struct hashmap		*anchors;	/* anchor -> streaming budget */

	/* Budgets that may have something to grant or to clean up. */
	struct budget_list	 ready;
	/* Budgets in back-off, min-heap on wake_at. */
	struct bheap		 heap;

	/*
	 * Graph: budgets per target mailbox, with their own ready list and
	 * heap (in back-off or out of tokens) so that the account gate,
	 * which holds EWS budgets on their ready list, never touches them;
	 * the app-wide bucket and the budgets waiting for it.
	 */
	struct hashmap		*graph;		/* mailbox -> budget */
	struct budget_list	 gready;
	struct bheap		 gheap;
	struct rate		 mrate;		/* per mailbox */
	struct rate		 arate;		/* per app */
	struct bucket		 app;
	struct budget_list	 app_wait;
	int64_t			 app_until;
	struct throttle_graph_stats gst;	/* counters only */

	/*
	 * Subscriptions held per mailbox.  One holder (every mailbox but
	 * a few) in a map borrowing the holder's address; two or more
	 * (two mailbox objects for one address for a while, after a
	 * reload or a cluster hand-over) in a map with its own copy, where
	 * the entry stays until the count is 0: then no holder's address
	 * needs to outlive its holder.
	 */
	struct hashmap		*subs_one;	/* mailbox -> 1 */
	struct hashmap		*subs_many;	/* mailbox -> count */
	unsigned		 nsubs;

	uint64_t		 next_seq;
	uint64_t		 ngrants;
	int64_t			 next_grant_at;	/* pacing */
	int64_t			 last_now;	/* of the last run */
	bool			 in_run;

	enum throttle_gate	 gate;
	int64_t			 gate_until;	/* CLOSED */
	struct throttle_ticket	*probe;		/* granted as the probe */
	bool			 probe_spread;	/* probe a random one */
	uint64_t		 probes;
	uint64_t		 requeued;

	unsigned		 queued[THROTTLE_CLASS_MAX];
	unsigned		 in_use[THROTTLE_CLASS_MAX];
	uint64_t		 grants[THROTTLE_CLASS_MAX];
	uint64_t		 cancels;
	uint64_t		 backoffs;
	uint64_t		 server_busy;
	/* Short-request slots of the service account held, slot x ms. */
	uint64_t		 slot_busy_ms;
	int64_t			 slot_busy_at;	/* counted up to here */
};

static void	 limits_sanitise(struct throttle_limits *);
static void	 budget_init(struct throttle *, struct throttle_budget *,
		    const char *);
static struct throttle_budget *budget_for(const struct throttle *,
		    enum throttle_class, const char *);
static struct throttle_budget *budget_get(struct throttle *,
		    enum throttle_class, const char *);
static void	 budget_free(struct throttle *, struct throttle_budget *);
static unsigned	 budget_limit(const struct throttle *,
		    const struct throttle_budget *);
static unsigned	 budget_stream_limit(const struct throttle *,
		    const struct throttle_budget *);
static unsigned	 budget_queued(const struct throttle_budget *);
static bool	 budget_idle(const struct throttle *,
		    const struct throttle_budget *, int64_t);
static bool	 budget_can_grant(const struct throttle *,
		    const struct throttle_budget *, enum throttle_class);
static void	 budget_touch(struct throttle *, struct throttle_budget *);
static void	 budget_extend(struct throttle *, struct throttle_budget *,
		    int64_t);
static void	 budget_detach(struct throttle_budget *);
static void	 ticket_set_state(struct throttle_ticket *,
		    enum throttle_ticket_state);
static void	 budget_settle(struct throttle *, struct throttle_budget *,
		    int64_t, bool);
static struct throttle_ticket *budget_pick(const struct throttle *,
		    struct throttle_budget *, uint64_t, bool, bool *);
static bool	 gate_blocks(const struct throttle *);
static void	 busy_count(struct throttle *, int64_t);
static void	 release_slot(struct throttle *, struct throttle_ticket *,
		    int64_t);
static void	 grant(struct throttle *, struct throttle_budget *,
		    struct throttle_ticket *, int64_t);
static void	 apply_outcome(struct throttle *, struct throttle_budget *,
		    const struct throttle_ticket *, int64_t,
		    const struct throttle_outcome *);
static void	 rehome_streams(struct throttle *);
static void	 budget_reconfigure(struct throttle *,
		    struct throttle_budget *);
static unsigned	 excess_streams(const struct throttle *,
		    const struct throttle_budget *);
static int	 ticket_seq_cmp(const void *, const void *);
static void	 heap_swap(struct bheap *, size_t, size_t);
static void	 heap_up(struct bheap *, size_t);
static void	 heap_down(struct bheap *, size_t);
static void	 heap_push(struct bheap *, struct throttle_budget *);
static void	 heap_remove(struct bheap *, struct throttle_budget *);
static void	 json_capacity(struct json_writer *, const char *,
		    const struct throttle *, const struct throttle_budget *,
		    int64_t);
static void	 prom_metric(struct buf *, const char *, const char *,
		    const char *);

static const char *class_names[THROTTLE_CLASS_MAX] = {
	"short", "stream", "graph"
};
static const char *gate_names[THROTTLE_GATE_MAX] = {
	"open", "probe", "closed"
};

/* ---- limits ---- */

void
throttle_limits_default(struct throttle_limits *l)
{
	memset(l, 0, sizeof(*l));
	l->max_concurrency = 27;
	l->short_request_share = 20;
	l->charging = CONF_CHARGING_IMPERSONATED;
	l->streaming_connections_per_anchor = 10;
	l->max_subscriptions = 20;
	l->backoff_base_ms = 1000;
	l->backoff_max_ms = 5 * 60 * 1000;
	l->jitter = BACKOFF_DECORRELATED;
	l->busy_jitter_max_ms = 1000;
	l->grant_separation_ms = 0;
	l->seed = 0x65777367;	/* "ewsg"; the daemon passes a real seed */
	l->graph_concurrency = THROTTLE_GRAPH_CONCURRENCY;
	l->graph_rate = THROTTLE_GRAPH_RATE;
	l->graph_window_ms = THROTTLE_GRAPH_WINDOW_MS;
	l->graph_app_rate = THROTTLE_GRAPH_APP_RATE;
	l->graph_app_window_ms = THROTTLE_GRAPH_APP_WINDOW_MS;
}

void
throttle_limits_from_conf(struct throttle_limits *l, const struct config *c)
{
	uint64_t	seed = l->seed;

	throttle_limits_default(l);
	l->seed = seed;
	l->max_concurrency = c->throttling.max_concurrency;
	l->max_subscriptions = c->throttling.max_subscriptions;
	l->charging = c->throttling.charging;
	l->streaming_connections_per_anchor =
	    c->throttling.streaming_connections_per_anchor;
	l->short_request_share = c->throttling.short_request_share;
	if (c->throttling.backoff_max_ms > 0)
		l->backoff_max_ms = c->throttling.backoff_max_ms;
	l->graph_concurrency = c->graph.mailbox_concurrency;
	l->graph_rate = c->graph.mailbox_rate;
	l->graph_window_ms = c->graph.mailbox_rate_window_ms;
	l->graph_app_rate = c->graph.app_rate;
	l->graph_app_window_ms = c->graph.app_rate_window_ms;
}

/* Values the scheduler cannot work with become the nearest usable one. */
static void
limits_sanitise(struct throttle_limits *l)
{
	if (l->max_concurrency < 1 && !l->shared)
		l->max_concurrency = 1;
	if (l->streaming_connections_per_anchor < 1)
		l->streaming_connections_per_anchor = 1;
	if (l->short_request_share > 100)
		l->short_request_share = 100;
	if (l->backoff_base_ms < 1)
		l->backoff_base_ms = 1;
	if (l->backoff_max_ms < l->backoff_base_ms)
		l->backoff_max_ms = l->backoff_base_ms;
	if (l->busy_jitter_max_ms < 0)
		l->busy_jitter_max_ms = 0;
	if (l->grant_separation_ms < 0)
		l->grant_separation_ms = 0;
	if (l->graph_concurrency < 1)
		l->graph_concurrency = THROTTLE_GRAPH_CONCURRENCY;
	if (l->graph_rate < 1)
		l->graph_rate = THROTTLE_GRAPH_RATE;
	if (l->graph_window_ms < 1)
		l->graph_window_ms = THROTTLE_GRAPH_WINDOW_MS;
	if (l->graph_app_rate < 1)
		l->graph_app_rate = THROTTLE_GRAPH_APP_RATE;
	if (l->graph_app_window_ms < 1)
		l->graph_app_window_ms = THROTTLE_GRAPH_APP_WINDOW_MS;
}

/*
 * The share rounded up, and at least one slot once there are two, but
 * streams keep at least one slot too: a share of 100 % would otherwise
 * silently disable streaming under service-account charging.
 */
unsigned
throttle_limits_short_reserve(const struct throttle_limits *l)
{
	unsigned	mc = l->max_concurrency, share, r;

	share = l->short_request_share > 100 ? 100 : l->short_request_share;
	r = (unsigned)(((uint64_t)mc * share + 99) / 100);
	if (mc >= 2) {
		if (r < 1)
			r = 1;
		if (r > mc - 1)
			r = mc - 1;
	}
	return (r > mc ? mc : r);
}

/* ---- token buckets (Graph's rates) ---- */

/*
 * A burst of a tenth of the rate, at least one request; the rest flows
 * in over the window, so no window ever sees more than rate.
 */
static void
rate_init(struct rate *r, unsigned rate, int64_t window)
{
	r->rate = rate;
	r->window = window;
	r->cap = (rate / 10 > 0 ? rate / 10 : 1) * 1000;
	r->refill_num = (int64_t)rate * 1000 - r->cap;
	if (r->refill_num <= 0)
		r->refill_num = 1;
	r->refill_den = window;
}

static void
bucket_init(struct bucket *b, const struct rate *r, int64_t now)
{
	memset(b, 0, sizeof(*b));
	b->tokens = r->cap;
	b->refilled_at = now;
}

/* Tokens b holds at now, without changing it. */
static int64_t
bucket_level(const struct bucket *b, const struct rate *r, int64_t now)
{
	int64_t	dt = now - b->refilled_at, t = b->tokens;

	if (dt > 0)
		t += dt * r->refill_num / r->refill_den;
	return (t > r->cap ? r->cap : t);
}

/* Refill b up to now; 0 if a request may go, else the ms to wait. */
static int64_t
bucket_wait(struct bucket *b, const struct rate *r, int64_t now)
{
	int64_t	 dt = now - b->refilled_at, add;

	if (dt > 0 && (add = dt * r->refill_num / r->refill_den) > 0) {
		b->tokens += add;
		if (b->tokens >= r->cap) {
			b->tokens = r->cap;
			b->refilled_at = now;
		} else
			b->refilled_at += add * r->refill_den / r->refill_num;
	}
	if (b->tokens >= 1000)
		return (0);
	/* Round up: never answer 0 for "not yet". */
	return (((1000 - b->tokens) * r->refill_den + r->refill_num - 1) /
	    r->refill_num);
}

/* Take one request from b (bucket_wait said 0); its window count. */
static uint64_t
bucket_take(struct bucket *b, const struct rate *r, int64_t now)
{
	b->tokens -= 1000;
	if (b->win_count == 0 || now - b->win_start >= r->window) {
		b->win_start = now;
		b->win_count = 0;
	}
	return (++b->win_count);
}

/* New rates (reload): no bucket holds more than its new capacity. */
static void
rates_set(struct throttle *t)
{
	struct throttle_budget	*b;
	struct hashmap_iter	 it;

	rate_init(&t->mrate, t->lim.graph_rate, t->lim.graph_window_ms);
	rate_init(&t->arate, t->lim.graph_app_rate,
	    t->lim.graph_app_window_ms);
	if (t->app.tokens > t->arate.cap)
		t->app.tokens = t->arate.cap;
	if (t->graph == NULL)
		return;
	hashmap_iter_init(&it, t->graph);
	while (hashmap_iter_next(&it, NULL, (void **)&b))
		if (b->bucket.tokens > t->mrate.cap)
			b->bucket.tokens = t->mrate.cap;
}

/* ---- budgets ---- */

static void
budget_init(struct throttle *t, struct throttle_budget *b, const char *key)
{
	int	c, p;

	memset(b, 0, sizeof(*b));
	b->key = key != NULL ? xstrdup(key) : NULL;
	for (c = 0; c < THROTTLE_CLASS_MAX; c++)
		for (p = 0; p < THROTTLE_PRIO_MAX; p++)
			TAILQ_INIT(&b->q[c][p]);
	TAILQ_INIT(&b->granted);
	backoff_init(&b->backoff, t->lim.backoff_base_ms,
	    t->lim.backoff_max_ms, t->lim.jitter);
	b->where = BUDGET_NOWHERE;
}

/* The budget a request of class c for anchor is charged to, or NULL. */
static struct throttle_budget *
budget_for(const struct throttle *t, enum throttle_class c,
    const char *anchor)
{
	if (c == THROTTLE_GRAPH)
		return (hashmap_get(t->graph, anchor != NULL ? anchor : ""));
	if (c == THROTTLE_SHORT ||
	    t->lim.charging == CONF_CHARGING_SERVICE_ACCOUNT)
		return ((struct throttle_budget *)&t->account);
	return (hashmap_get(t->anchors, anchor != NULL ? anchor : ""));
}

static struct throttle_budget *
budget_get(struct throttle *t, enum throttle_class c, const char *anchor)
{
	struct throttle_budget	*b;

	if ((b = budget_for(t, c, anchor)) != NULL)
		return (b);
	b = xmalloc(sizeof(*b));
	budget_init(t, b, anchor != NULL ? anchor : "");
	if (c == THROTTLE_GRAPH) {
		b->graph = true;
		bucket_init(&b->bucket, &t->mrate, t->last_now);
		hashmap_put(t->graph, b->key, b);
	} else
		hashmap_put(t->anchors, b->key, b);
	return (b);
}

static void
budget_free(struct throttle *t, struct throttle_budget *b)
{
	assert(b != &t->account);
	assert(b->in_use == 0 && budget_queued(b) == 0);
	if (b->where == BUDGET_READY)
		TAILQ_REMOVE(b->graph ? &t->gready : &t->ready, b, rentry);
	else if (b->where == BUDGET_APP_WAIT)
		TAILQ_REMOVE(&t->app_wait, b, rentry);
	else if (b->where == BUDGET_HEAP)
		heap_remove(b->graph ? &t->gheap : &t->heap, b);
	hashmap_remove(b->graph ? t->graph : t->anchors, b->key);
	free(b->key);
	free(b);
}

static unsigned
budget_limit(const struct throttle *t, const struct throttle_budget *b)
{
	if (b == &t->account)
		return (t->lim.max_concurrency);
	if (b->graph)
		return (t->lim.graph_concurrency);
	return (t->lim.streaming_connections_per_anchor);
}

static unsigned
budget_stream_limit(const struct throttle *t, const struct throttle_budget *b)
{
	if (b->graph)
		return (0);
	if (b != &t->account)
		return (t->lim.streaming_connections_per_anchor);
	if (t->lim.charging != CONF_CHARGING_SERVICE_ACCOUNT)
		return (0);
	return (t->lim.max_concurrency - t->reserve);
}

static unsigned
budget_queued(const struct throttle_budget *b)
{
	unsigned	n = 0;
	int		c;

	for (c = 0; c < THROTTLE_CLASS_MAX; c++)
		n += b->nqueued[c];
	return (n);
}

/*
 * Nothing in it worth keeping: a budget that failed recently keeps its
 * attempt count so the next failure backs off further.
 */
static bool
budget_idle(const struct throttle *t, const struct throttle_budget *b,
    int64_t now)
{
	if (b->graph &&
	    bucket_level(&b->bucket, &t->mrate, now) < t->mrate.cap)
		return (false);	/* its rate still counts what it spent */
	return (b->in_use == 0 && budget_queued(b) == 0 &&
	    b->backoff.attempt == 0 && b->backoff_until <= now);
}

/* The time before which nothing charged to b is granted. */
static int64_t
budget_wake(const struct throttle_budget *b)
{
	return (b->rate_until > b->backoff_until ? b->rate_until :
	    b->backoff_until);
}

/*
 * STREAM may take a slot only beyond the SHORT reserve; SHORT may use
 * any free slot (the reserve is a floor for it, not a ceiling).
 */
static bool
budget_can_grant(const struct throttle *t, const struct throttle_budget *b,
    enum throttle_class c)
{
	if (b->in_use >= budget_limit(t, b))
		return (false);
	if (c == THROTTLE_STREAM && b->streams >= budget_stream_limit(t, b))
		return (false);
	return (true);
}

/* Something changed in b: let the next run look at it. */
static void
budget_touch(struct throttle *t, struct throttle_budget *b)
{
	if (b->where != BUDGET_NOWHERE)
		return;
	TAILQ_INSERT_TAIL(b->graph ? &t->gready : &t->ready, b, rentry);
	b->where = BUDGET_READY;
}

/* Nothing charged to b is granted before until. */
static void
budget_extend(struct throttle *t, struct throttle_budget *b, int64_t until)
{
	/* Requests granted up to now failing later add no new evidence. */
	b->backoff_mark = t->ngrants;
	if (until <= b->backoff_until)
		return;
	b->backoff_until = until;
	if (b->where == BUDGET_HEAP) {
		b->wake_at = budget_wake(b);
		heap_down(b->graph ? &t->gheap : &t->heap, b->heap_idx);
	}
}

/*
 * The single state change of a ticket: idle <-> queued -> granted ->
 * idle or queued again; an idle ticket belongs to no budget.  No log
 * line: a ticket has no name of its own, its request's owner logs.
 */
static void
ticket_set_state(struct throttle_ticket *tk, enum throttle_ticket_state s)
{
	assert(s != tk->state);
	assert(s != THROTTLE_TICKET_GRANTED ||
	    tk->state == THROTTLE_TICKET_QUEUED);
	tk->state = s;
	if (s == THROTTLE_TICKET_IDLE)
		tk->budget = NULL;
}

/* Forget every ticket of b (scheduler going away). */
static void
budget_detach(struct throttle_budget *b)
{
	struct throttle_ticket	*tk;
	int			 c, p;

	for (c = 0; c < THROTTLE_CLASS_MAX; c++) {
		for (p = 0; p < THROTTLE_PRIO_MAX; p++) {
			while ((tk = TAILQ_FIRST(&b->q[c][p])) != NULL) {
				TAILQ_REMOVE(&b->q[c][p], tk, entry);
				ticket_set_state(tk, THROTTLE_TICKET_IDLE);
			}
		}
	}
	while ((tk = TAILQ_FIRST(&b->granted)) != NULL) {
		TAILQ_REMOVE(&b->granted, tk, entry);
		ticket_set_state(tk, THROTTLE_TICKET_IDLE);
	}
}

/* After a run looked at b: park it where its next event will find it. */
static void
budget_settle(struct throttle *t, struct throttle_budget *b, int64_t now,
    bool more)
{
	if (b->where != BUDGET_NOWHERE)
		return;		/* a callback already queued it again */
	if (budget_wake(b) > now) {
		/*
		 * Only a budget with work waits in the heap, so the daemon
		 * never wakes up for nothing; an idle one in back-off is
		 * looked at again when something is submitted to it.
		 */
		if (budget_queued(b) > 0)
			heap_push(b->graph ? &t->gheap : &t->heap, b);
	} else if (more)
		budget_touch(t, b);
	else if (b != &t->account && budget_idle(t, b, now))
		budget_free(t, b);
	/* Otherwise it waits for a release, a submit or new limits. */
}

/*
 * Next ticket to grant: highest priority first; within a priority the
 * oldest head among the classes that may take a slot.  Tickets
 * submitted at or after seq_limit (during this run) are left for the
 * next run, with *more set, so a callback that resubmits cannot keep
 * the run going forever.  short_only leaves STREAM tickets waiting.
 */
static struct throttle_ticket *
budget_pick(const struct throttle *t, struct throttle_budget *b,
    uint64_t seq_limit, bool short_only, bool *more)
{
	struct throttle_ticket	*tk, *best;
	int			 c, p;

	for (p = 0; p < THROTTLE_PRIO_MAX; p++) {
		best = NULL;
		for (c = 0; c < THROTTLE_CLASS_MAX; c++) {
			if (short_only && c == THROTTLE_STREAM)
				continue;
			tk = TAILQ_FIRST(&b->q[c][p]);
			if (tk == NULL || !budget_can_grant(t, b, c))
				continue;
			if (best == NULL || tk->seq < best->seq)
				best = tk;
		}
		if (best != NULL) {
			if (best->seq >= seq_limit) {
				*more = true;
				return (NULL);
			}
			return (best);
		}
	}
	return (NULL);
}

static void
grant(struct throttle *t, struct throttle_budget *b,
    struct throttle_ticket *tk, int64_t now)
{
	enum throttle_class	c = tk->klass;

	if (b == &t->account && c == THROTTLE_SHORT)
		busy_count(t, now);
	TAILQ_REMOVE(&b->q[c][tk->prio], tk, entry);
	b->nqueued[c]--;
	t->queued[c]--;
	TAILQ_INSERT_TAIL(&b->granted, tk, entry);
	b->in_use++;
	if (c == THROTTLE_STREAM)
		b->streams++;
	if (b->graph && b->in_use > t->gst.max_in_flight_mailbox)
		t->gst.max_in_flight_mailbox = b->in_use;
	t->in_use[c]++;
	t->grants[c]++;
	ticket_set_state(tk, THROTTLE_TICKET_GRANTED);
	tk->grant_no = ++t->ngrants;
	/* The one promise of this module. */
	assert(b->in_use <= budget_limit(t, b));
	assert(c != THROTTLE_STREAM || b->streams <= budget_stream_limit(t, b));
	if (t->lim.grant_separation_ms > 0 && !b->graph)
		t->next_grant_at = now + t->lim.grant_separation_ms;
	tk->cb(tk, tk->arg);
}

static void
apply_outcome(struct throttle *t, struct throttle_budget *b,
    const struct throttle_ticket *tk, int64_t now,
    const struct throttle_outcome *o)
{
	int64_t	ms, jitter;

	if (o == NULL)
		return;
	switch (o->result) {
	case THROTTLE_OK:
		backoff_reset(&b->backoff);
		break;
	case THROTTLE_BUSY:
		if (o->backoff_ms > 0) {
			ms = o->backoff_ms > THROTTLE_BUSY_MAX_MS ?
			    THROTTLE_BUSY_MAX_MS : o->backoff_ms;
			jitter = ms / 10 < t->lim.busy_jitter_max_ms ?
			    ms / 10 : t->lim.busy_jitter_max_ms;
			if (b->graph)
				t->gst.pauses++;
			else
				t->server_busy++;
			budget_extend(t, b, now + ms +
			    backoff_rng_range(&t->rng, 0, jitter));
			break;
		}
		/* Busy without a time: treat like any transient failure. */
		/* FALLTHROUGH */
	case THROTTLE_TRANSIENT:
		/*
		 * Only a request granted after the last back-off decision
		 * escalates it: ten requests in flight failing together are
		 * one piece of evidence, not ten.
		 */
		if (tk->grant_no > b->backoff_mark) {
			ms = backoff_next(&b->backoff, &t->rng);
			t->backoffs++;
		} else
			ms = b->backoff.prev_ms;
		budget_extend(t, b, now + ms);
		break;
	case THROTTLE_DONE:
	default:
		break;
	}
}

/* ---- back-off heaps ---- */

static void
heap_swap(struct bheap *h, size_t i, size_t j)
{
	struct throttle_budget	*x = h->v[i];

	h->v[i] = h->v[j];
	h->v[j] = x;
	h->v[i]->heap_idx = i;
	h->v[j]->heap_idx = j;
}

static void
heap_up(struct bheap *h, size_t i)
{
	while (i > 0 && h->v[(i - 1) / 2]->wake_at > h->v[i]->wake_at) {
		heap_swap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct bheap *h, size_t i)
{
	size_t	l, m;

	for (;;) {
		l = 2 * i + 1;
		m = i;
		if (l < h->n && h->v[l]->wake_at < h->v[m]->wake_at)
			m = l;
		if (l + 1 < h->n && h->v[l + 1]->wake_at < h->v[m]->wake_at)
			m = l + 1;
		if (m == i)
			return;
		heap_swap(h, i, m);
		i = m;
	}
}

static void
heap_push(struct bheap *h, struct throttle_budget *b)
{
	assert(b->where == BUDGET_NOWHERE);
	if (h->n == h->cap) {
		h->cap = h->cap == 0 ? 16 : h->cap * 2;
		h->v = xreallocarray(h->v, h->cap, sizeof(*h->v));
	}
	b->wake_at = budget_wake(b);
	b->heap_idx = h->n;
	h->v[h->n++] = b;
	b->where = BUDGET_HEAP;
	heap_up(h, b->heap_idx);
}

static void
heap_remove(struct bheap *h, struct throttle_budget *b)
{
	size_t	i = b->heap_idx;

	assert(b->where == BUDGET_HEAP && h->v[i] == b);
	h->n--;
	if (i != h->n) {
		heap_swap(h, i, h->n);
		heap_down(h, i);
		heap_up(h, i);
	}
	b->where = BUDGET_NOWHERE;
}

/* Budgets of h whose time has come go to their ready list. */
static void
heap_expire(struct throttle *t, struct bheap *h, int64_t now)
{
	struct throttle_budget	*b;

	while (h->n > 0 && h->v[0]->wake_at <= now) {
		b = h->v[0];
		heap_remove(h, b);
		budget_touch(t, b);
	}
}

/* ---- life cycle ---- */

struct throttle *
throttle_new(const struct throttle_limits *l)
{
	struct throttle	*t;

	t = xcalloc(1, sizeof(*t));
	t->lim = *l;
	limits_sanitise(&t->lim);
	t->reserve = throttle_limits_short_reserve(&t->lim);
	backoff_rng_seed(&t->rng, t->lim.seed);
	budget_init(t, &t->account, NULL);
	t->anchors = hashmap_new();
	t->graph = hashmap_new();
	TAILQ_INIT(&t->gready);
	TAILQ_INIT(&t->app_wait);
	rates_set(t);
	bucket_init(&t->app, &t->arate, 0);
	t->subs_one = hashmap_new_borrowing();
	t->subs_many = hashmap_new();
	TAILQ_INIT(&t->ready);
	return (t);
}

/* Free a map of budgets and the budgets, detaching their tickets. */
static void
budgets_free(struct hashmap *map)
{
	struct throttle_budget	*b;
	struct hashmap_iter	 it;

	hashmap_iter_init(&it, map);
	while (hashmap_iter_next(&it, NULL, (void **)&b)) {
		budget_detach(b);
		free(b->key);
		free(b);
	}
	hashmap_free(map, NULL);
}

void
throttle_free(struct throttle *t)
{
	if (t == NULL)
		return;
	assert(!t->in_run);
	budget_detach(&t->account);
	budgets_free(t->anchors);
	budgets_free(t->graph);
	free(t->gheap.v);
	hashmap_free(t->subs_one, NULL);
	hashmap_free(t->subs_many, NULL);
	free(t->heap.v);
	free(t);
}

static int
ticket_seq_cmp(const void *a, const void *b)
{
	const struct throttle_ticket	*x, *y;

	x = *(struct throttle_ticket * const *)a;
	y = *(struct throttle_ticket * const *)b;

	return (x->seq < y->seq ? -1 : x->seq > y->seq);
}

/*
 * The charging mode changed: queued streams move to the budget they are
 * now charged to, in submit order.  Slots already granted stay where
 * they were taken and are returned there.  The anchor is not kept in a
 * ticket, so streams leaving the service account go to its own
 * streaming budget.  Rare (reload) and O(queued streams log n).
 */
static void
rehome_streams(struct throttle *t)
{
	struct throttle_budget	*dst, *b;
	struct throttle_ticket	*tk, **v = NULL;
	struct hashmap_iter	 it;
	size_t			 n, cap, i;
	int			 p;

	dst = budget_get(t, THROTTLE_STREAM, NULL);
	for (p = 0; p < THROTTLE_PRIO_MAX; p++) {
		n = cap = 0;
		/* Gather every queued stream of this priority, dst's too. */
		hashmap_iter_init(&it, t->anchors);
		b = &t->account;
		do {
			while ((tk = TAILQ_FIRST(&b->q[THROTTLE_STREAM][p]))
			    != NULL) {
				TAILQ_REMOVE(&b->q[THROTTLE_STREAM][p], tk,
				    entry);
				b->nqueued[THROTTLE_STREAM]--;
				if (n == cap) {
					cap = cap == 0 ? 64 : cap * 2;
					v = xreallocarray(v, cap, sizeof(*v));
				}
				v[n++] = tk;
			}
			budget_touch(t, b);
		} while (hashmap_iter_next(&it, NULL, (void **)&b));
		if (n > 1)
			qsort(v, n, sizeof(*v), ticket_seq_cmp);
		for (i = 0; i < n; i++) {
			v[i]->budget = dst;
			TAILQ_INSERT_TAIL(&dst->q[THROTTLE_STREAM][p], v[i],
			    entry);
		}
		dst->nqueued[THROTTLE_STREAM] += n;
	}
	free(v);
}

/* New back-off parameters (the failure count stays); look at b again. */
static void
budget_reconfigure(struct throttle *t, struct throttle_budget *b)
{
	backoff_set_limits(&b->backoff, t->lim.backoff_base_ms,
	    t->lim.backoff_max_ms);
	b->backoff.jitter = t->lim.jitter;
	budget_touch(t, b);
}

/*
 * Streams b holds beyond what it may hold now, counting every stream in
 * a budget the current charging mode no longer charges streams to.
 */
static unsigned
excess_streams(const struct throttle *t, const struct throttle_budget *b)
{
	unsigned	limit = budget_stream_limit(t, b);

	if (b != &t->account &&
	    t->lim.charging == CONF_CHARGING_SERVICE_ACCOUNT)
		limit = 0;
	return (b->streams > limit ? b->streams - limit : 0);
}

unsigned
throttle_set_limits(struct throttle *t, const struct throttle_limits *l)
{
	struct throttle_budget	*b;
	struct hashmap_iter	 it;
	enum conf_charging	 old = t->lim.charging;
	uint64_t		 seed = t->lim.seed;
	unsigned		 excess;

	t->lim = *l;
	t->lim.seed = seed;	/* the generator keeps running */
	limits_sanitise(&t->lim);
	t->reserve = throttle_limits_short_reserve(&t->lim);
	if (t->lim.grant_separation_ms == 0)
		t->next_grant_at = 0;

	if (old != t->lim.charging)
		rehome_streams(t);

	/* Larger limits may let queued tickets through: look at all. */
	budget_reconfigure(t, &t->account);
	excess = excess_streams(t, &t->account);
	hashmap_iter_init(&it, t->anchors);
	while (hashmap_iter_next(&it, NULL, (void **)&b)) {
		budget_reconfigure(t, b);
		excess += excess_streams(t, b);
	}
	rates_set(t);
	hashmap_iter_init(&it, t->graph);
	while (hashmap_iter_next(&it, NULL, (void **)&b))
		budget_reconfigure(t, b);
	return (excess);
}

/* ---- tickets ---- */

void
throttle_ticket_init(struct throttle_ticket *tk)
{
	memset(tk, 0, sizeof(*tk));
}

bool
throttle_ticket_queued(const struct throttle_ticket *tk)
{
	return (tk->state == THROTTLE_TICKET_QUEUED);
}

bool
throttle_ticket_granted(const struct throttle_ticket *tk)
{
	return (tk->state == THROTTLE_TICKET_GRANTED);
}

void
throttle_submit(struct throttle *t, struct throttle_ticket *tk,
    enum throttle_class c, const char *anchor, enum throttle_prio p,
    throttle_cb cb, void *arg)
{
	struct throttle_budget	*b;

	assert(tk->state == THROTTLE_TICKET_IDLE);
	assert((unsigned)c < THROTTLE_CLASS_MAX);
	assert((unsigned)p < THROTTLE_PRIO_MAX);
	assert(cb != NULL);

	b = budget_get(t, c, anchor);
	if (b->graph) {
		if (b->backoff_until > t->last_now)
			t->gst.waited_pause++;
		else if (b->in_use + b->nqueued[c] >= budget_limit(t, b))
			t->gst.waited_slot++;
	}
	tk->budget = b;
	tk->cb = cb;
	tk->arg = arg;
	tk->klass = c;
	tk->prio = p;
	tk->seq = t->next_seq++;
	tk->grant_no = 0;
	ticket_set_state(tk, THROTTLE_TICKET_QUEUED);
	TAILQ_INSERT_TAIL(&b->q[c][p], tk, entry);
	b->nqueued[c]++;
	t->queued[c]++;
	budget_touch(t, b);
}

/*
 * Add the short-request slots of the service account held since the
 * last count: called before that number changes and by status.
 */
static void
busy_count(struct throttle *t, int64_t now)
{
	const struct throttle_budget	*b = &t->account;

	if (now > t->slot_busy_at) {
		if (t->slot_busy_at > 0)
			t->slot_busy_ms += (uint64_t)(b->in_use - b->streams) *
			    (uint64_t)(now - t->slot_busy_at);
		t->slot_busy_at = now;
	}
}

/* Give a granted ticket's slot back (it stays on its budget). */
static void
release_slot(struct throttle *t, struct throttle_ticket *tk, int64_t now)
{
	struct throttle_budget	*b = tk->budget;
	enum throttle_class	 c = tk->klass;

	if (b == &t->account && c == THROTTLE_SHORT)
		busy_count(t, now);

	TAILQ_REMOVE(&b->granted, tk, entry);
	assert(b->in_use > 0);
	b->in_use--;
	if (c == THROTTLE_STREAM) {
		assert(b->streams > 0);
		b->streams--;
	}
	t->in_use[c]--;
	if (t->probe == tk)
		t->probe = NULL;
}

void
throttle_release(struct throttle *t, struct throttle_ticket *tk, int64_t now,
    const struct throttle_outcome *o)
{
	struct throttle_budget	*b = tk->budget;

	if (tk->state != THROTTLE_TICKET_GRANTED) {
		/* Detached by throttle_free, or a caller bug. */
		assert(tk->state == THROTTLE_TICKET_IDLE && b == NULL);
		return;
	}
	release_slot(t, tk, now);
	apply_outcome(t, b, tk, now, o);
	ticket_set_state(tk, THROTTLE_TICKET_IDLE);
	budget_touch(t, b);
}

void
throttle_requeue(struct throttle *t, struct throttle_ticket *tk, int64_t now,
    const struct throttle_outcome *o)
{
	struct throttle_budget	*b = tk->budget, *touch_b;

	if (tk->state != THROTTLE_TICKET_GRANTED) {
		assert(tk->state == THROTTLE_TICKET_IDLE && b == NULL);
		return;
	}
	release_slot(t, tk, now);
	apply_outcome(t, b, tk, now, o);
	touch_b = b;
	/* Charging changed since the grant: queue where it is charged now. */
	if (tk->klass == THROTTLE_STREAM && (b == &t->account) !=
	    (t->lim.charging == CONF_CHARGING_SERVICE_ACCOUNT))
		b = budget_get(t, THROTTLE_STREAM, NULL);
	tk->budget = b;
	tk->seq = t->next_seq++;
	tk->grant_no = 0;
	ticket_set_state(tk, THROTTLE_TICKET_QUEUED);
	TAILQ_INSERT_TAIL(&b->q[tk->klass][tk->prio], tk, entry);
	b->nqueued[tk->klass]++;
	t->queued[tk->klass]++;
	t->requeued++;
	budget_touch(t, b);
	budget_touch(t, touch_b);
}

void
throttle_cancel(struct throttle *t, struct throttle_ticket *tk)
{
	struct throttle_budget	*b = tk->budget;

	switch (tk->state) {
	case THROTTLE_TICKET_QUEUED:
		TAILQ_REMOVE(&b->q[tk->klass][tk->prio], tk, entry);
		b->nqueued[tk->klass]--;
		t->queued[tk->klass]--;
		ticket_set_state(tk, THROTTLE_TICKET_IDLE);
		t->cancels++;
		/* Only to free it once idle; nothing new can be granted. */
		if (b->in_use == 0 && budget_queued(b) == 0)
			budget_touch(t, b);
		break;
	case THROTTLE_TICKET_GRANTED:
		t->cancels++;
		/* No clock here: the slot counts as held until the last run. */
		throttle_release(t, tk, t->last_now, NULL);
		break;
	default:
		break;
	}
}

/* ---- the account gate ---- */

const char *
throttle_gate_name(enum throttle_gate g)
{
	return ((unsigned)g < THROTTLE_GATE_MAX ? gate_names[g] : "unknown");
}

void
throttle_gate_set(struct throttle *t, enum throttle_gate g, int64_t until)
{
	assert((unsigned)g < THROTTLE_GATE_MAX);
	t->gate = g;
	t->gate_until = g == THROTTLE_GATE_CLOSED ? until : 0;
	if (g == THROTTLE_GATE_OPEN)
		t->probe = NULL;
}

enum throttle_gate
throttle_gate_get(const struct throttle *t, int64_t now)
{
	if (t->gate == THROTTLE_GATE_CLOSED && now >= t->gate_until)
		return (THROTTLE_GATE_PROBE);
	return (t->gate);
}

int64_t
throttle_gate_until(const struct throttle *t)
{
	return (t->gate == THROTTLE_GATE_CLOSED ? t->gate_until : 0);
}

bool
throttle_ticket_is_probe(const struct throttle *t,
    const struct throttle_ticket *tk)
{
	return (tk != NULL && t->probe == tk);
}

void
throttle_probe_done(struct throttle *t, const struct throttle_ticket *tk)
{
	if (t->probe != NULL && t->probe == tk)
		t->probe = NULL;
}

void
throttle_gate_spread(struct throttle *t, bool on)
{
	t->probe_spread = on;
}

/* A random short ticket of the service account's budget (n > 0). */
static struct throttle_ticket *
pick_spread(struct throttle *t)
{
	struct throttle_budget	*b = &t->account;
	struct throttle_ticket	*tk;
	uint64_t		 k;
	int			 p;

	k = (uint64_t)backoff_rng_range(&t->rng, 0,
	    (int64_t)b->nqueued[THROTTLE_SHORT] - 1);
	for (p = 0; p < THROTTLE_PRIO_MAX; p++)
		TAILQ_FOREACH(tk, &b->q[THROTTLE_SHORT][p], entry)
			if (k-- == 0)
				return (tk);
	return (TAILQ_FIRST(&b->q[THROTTLE_SHORT][0]));	/* not reached */
}

/* No grant now: the gate is closed, or its one probe is out. */
static bool
gate_blocks(const struct throttle *t)
{
	return (t->gate == THROTTLE_GATE_CLOSED ||
	    (t->gate == THROTTLE_GATE_PROBE && t->probe != NULL));
}

/* ---- running ---- */

/*
 * Grant what Graph budget b may grant at now: a slot, a token of its
 * own rate and one of the app's.  Out of its own tokens it waits like a
 * budget in back-off (until the refill); out of the app's it waits on
 * the app's list, which the refill hands back whole.
 */
static unsigned
run_graph_budget(struct throttle *t, struct throttle_budget *b, int64_t now,
    uint64_t seq_limit)
{
	struct throttle_ticket	*tk;
	int64_t			 w;
	uint64_t		 k;
	unsigned		 n = 0;
	bool			 more = false;

	while (budget_wake(b) <= now) {
		tk = budget_pick(t, b, seq_limit, false, &more);
		if (tk == NULL)
			break;
		if ((w = bucket_wait(&b->bucket, &t->mrate, now)) > 0) {
			b->rate_until = now + w;
			t->gst.waited_rate++;
			break;
		}
		if ((w = bucket_wait(&t->app, &t->arate, now)) > 0) {
			t->gst.waited_app++;
			t->app_until = now + w;
			if (b->where == BUDGET_NOWHERE) {
				TAILQ_INSERT_TAIL(&t->app_wait, b, rentry);
				b->where = BUDGET_APP_WAIT;
			}
			return (n);
		}
		if ((k = bucket_take(&b->bucket, &t->mrate, now)) >
		    t->gst.max_window_requests)
			t->gst.max_window_requests = k;
		if ((k = bucket_take(&t->app, &t->arate, now)) >
		    t->gst.max_app_window_requests)
			t->gst.max_app_window_requests = k;
		t->gst.granted++;
		grant(t, b, tk, now);
		n++;
	}
	budget_settle(t, b, now, more);
	return (n);
}

/* Graph's part of a run: the gate has no say in it. */
static unsigned
run_graph(struct throttle *t, int64_t now, uint64_t seq_limit)
{
	struct budget_list	 todo;
	struct throttle_budget	*b;
	unsigned		 n = 0;

	heap_expire(t, &t->gheap, now);
	if (!TAILQ_EMPTY(&t->app_wait) && t->app_until <= now) {
		while ((b = TAILQ_FIRST(&t->app_wait)) != NULL) {
			TAILQ_REMOVE(&t->app_wait, b, rentry);
			b->where = BUDGET_NOWHERE;
			budget_touch(t, b);
		}
	}
	TAILQ_INIT(&todo);
	TAILQ_CONCAT(&todo, &t->gready, rentry);
	while ((b = TAILQ_FIRST(&todo)) != NULL) {
		TAILQ_REMOVE(&todo, b, rentry);
		b->where = BUDGET_NOWHERE;
		n += run_graph_budget(t, b, now, seq_limit);
	}
	return (n);
}

unsigned
throttle_run(struct throttle *t, int64_t now)
{
	struct budget_list	 todo;
	struct throttle_budget	*b;
	struct throttle_ticket	*tk;
	uint64_t		 seq_limit = t->next_seq;
	unsigned		 n = 0;
	bool			 more, short_probe;

	assert(!t->in_run);
	t->in_run = true;
	t->last_now = now;
	if (t->gate == THROTTLE_GATE_CLOSED && now >= t->gate_until) {
		t->gate = THROTTLE_GATE_PROBE;
		t->gate_until = 0;
	}

	heap_expire(t, &t->heap, now);

	/*
	 * A probe is a short request when one can go now: a stream would
	 * hold the probe for its whole life (its first bytes end that, see
	 * throttle_probe_done, but a short answer is quicker).
	 */
	short_probe = t->gate == THROTTLE_GATE_PROBE &&
	    t->account.nqueued[THROTTLE_SHORT] > 0 &&
	    t->account.backoff_until <= now &&
	    budget_can_grant(t, &t->account, THROTTLE_SHORT);

	/* O(queue), once per probe: a few times an hour at most. */
	if (short_probe && t->probe_spread && t->probe == NULL &&
	    (t->lim.grant_separation_ms == 0 || now >= t->next_grant_at)) {
		tk = pick_spread(t);
		t->probe = tk;
		t->probes++;
		grant(t, &t->account, tk, now);
		n++;
	}

	/* Budgets made ready by callbacks wait for the next run. */
	TAILQ_INIT(&todo);
	TAILQ_CONCAT(&todo, &t->ready, rentry);
	while ((b = TAILQ_FIRST(&todo)) != NULL) {
		TAILQ_REMOVE(&todo, b, rentry);
		b->where = BUDGET_NOWHERE;
		more = false;
		while (b->backoff_until <= now) {
			if (gate_blocks(t)) {
				/* Kept on the ready list for when it opens. */
				more = budget_queued(b) > 0;
				break;
			}
			tk = budget_pick(t, b, seq_limit, short_probe, &more);
			if (tk == NULL) {
				if (short_probe &&
				    b->nqueued[THROTTLE_STREAM] > 0)
					more = true;	/* after the probe */
				break;
			}
			if (t->lim.grant_separation_ms > 0 &&
			    now < t->next_grant_at) {
				more = true;	/* start-up ramp */
				break;
			}
			if (t->gate == THROTTLE_GATE_PROBE) {
				/* Before the callback, which may release it. */
				t->probe = tk;
				t->probes++;
			}
			grant(t, b, tk, now);
			n++;
		}
		budget_settle(t, b, now, more);
	}
	n += run_graph(t, now, seq_limit);
	t->in_run = false;
	return (n);
}

int64_t
throttle_next_wakeup(const struct throttle *t, int64_t now)
{
	int64_t	w = THROTTLE_NEVER, g = THROTTLE_NEVER;

	/* Graph first: the gate below does not hold it. */
	if (!TAILQ_EMPTY(&t->gready))
		g = now;
	if (t->gheap.n > 0 && t->gheap.v[0]->wake_at < g)
		g = t->gheap.v[0]->wake_at;
	if (!TAILQ_EMPTY(&t->app_wait) && t->app_until < g)
		g = t->app_until;

	if (t->gate == THROTTLE_GATE_CLOSED && now < t->gate_until)
		w = t->queued[THROTTLE_SHORT] + t->queued[THROTTLE_STREAM] >
		    0 ? t->gate_until : THROTTLE_NEVER;
	else if (t->gate == THROTTLE_GATE_PROBE && t->probe != NULL)
		w = THROTTLE_NEVER;	/* its release kicks a run */
	else {
		if (!TAILQ_EMPTY(&t->ready))
			w = t->next_grant_at > now ? t->next_grant_at : now;
		if (t->heap.n > 0 && t->heap.v[0]->wake_at < w)
			w = t->heap.v[0]->wake_at;
	}
	if (g < w)
		w = g;
	return (w < now ? now : w);
}

/* ---- capacity and subscriptions ---- */

void
throttle_stream_capacity(const struct throttle *t, const char *anchor,
    struct throttle_capacity *cap)
{
	const struct throttle_budget	*b;
	unsigned			 limit, slots, used;

	memset(cap, 0, sizeof(*cap));
	b = budget_for(t, THROTTLE_STREAM, anchor);
	if (b == NULL) {
		/* Not used yet: the whole per-anchor budget is free. */
		cap->limit = cap->free_now = cap->available =
		    t->lim.streaming_connections_per_anchor;
		return;
	}
	limit = budget_stream_limit(t, b);
	cap->limit = limit;
	cap->in_use = b->streams;
	cap->queued = b->nqueued[THROTTLE_STREAM];
	cap->backoff_until = b->backoff_until;
	if (b->streams > limit)
		cap->excess = b->streams - limit;
	else {
		slots = budget_limit(t, b);
		cap->free_now = limit - b->streams;
		if (b->in_use >= slots)
			cap->free_now = 0;
		else if (slots - b->in_use < cap->free_now)
			cap->free_now = slots - b->in_use;
	}
	used = b->streams + cap->queued;
	cap->available = used < limit ? limit - used : 0;
}

unsigned
throttle_streams_total(const struct throttle *t)
{
	if (t->lim.charging == CONF_CHARGING_SERVICE_ACCOUNT)
		return (budget_stream_limit(t, &t->account));
	return (THROTTLE_UNLIMITED);
}

/* Subscriptions held for mailbox. */
static uintptr_t
subs_held(const struct throttle *t, const char *mailbox)
{
	uintptr_t	n = (uintptr_t)hashmap_get(t->subs_many, mailbox);

	if (n == 0 && hashmap_get(t->subs_one, mailbox) != NULL)
		n = 1;
	return (n);
}

int
throttle_subscription_acquire(struct throttle *t, const char *mailbox)
{
	uintptr_t	n = subs_held(t, mailbox);
	unsigned	max = t->lim.max_subscriptions;

	/* 0 = no client-side cap, unless it is a node's share of it. */
	if (max != 0 || (t->lim.shared &&
	    t->lim.charging == CONF_CHARGING_SERVICE_ACCOUNT)) {
		if (t->lim.charging == CONF_CHARGING_SERVICE_ACCOUNT ?
		    t->nsubs >= max : n >= max)
			return (-1);
	}
	if (n == 0)
		hashmap_put(t->subs_one, mailbox, (void *)1);
	else {
		if (n == 1)
			hashmap_remove(t->subs_one, mailbox);
		hashmap_put(t->subs_many, mailbox, (void *)(n + 1));
	}
	t->nsubs++;
	return (0);
}

void
throttle_subscription_release(struct throttle *t, const char *mailbox)
{
	uintptr_t	n = (uintptr_t)hashmap_get(t->subs_many, mailbox);

	if (n > 1)
		hashmap_put(t->subs_many, mailbox, (void *)(n - 1));
	else if (n == 1)
		hashmap_remove(t->subs_many, mailbox);
	else if (hashmap_remove(t->subs_one, mailbox) == NULL)
		return;		/* never counted: nothing to give back */
	t->nsubs--;
}

unsigned
throttle_subscriptions(const struct throttle *t, const char *mailbox)
{
	if (mailbox == NULL)
		return (t->nsubs);
	return ((unsigned)subs_held(t, mailbox));
}

/* ---- status ---- */

void
throttle_stats(const struct throttle *t, int64_t now,
    struct throttle_stats *s)
{
	const struct throttle_budget	*b;
	struct hashmap_iter		 it;
	int				 c;

	memset(s, 0, sizeof(*s));
	s->charging = t->lim.charging;
	s->concurrency_limit = t->lim.max_concurrency;
	s->concurrency_in_use = t->account.in_use;
	s->short_reserve = t->reserve;
	s->stream_limit = throttle_streams_total(t);
	s->per_anchor_limit = t->lim.streaming_connections_per_anchor;
	for (c = 0; c < THROTTLE_CLASS_MAX; c++) {
		s->in_use[c] = t->in_use[c];
		s->queued[c] = t->queued[c];
		s->grants[c] = t->grants[c];
	}
	s->budgets = (unsigned)hashmap_count(t->anchors);
	/* O(streaming budgets): one per group at most, and status is rare. */
	if (t->account.backoff_until > now)
		s->budgets_in_backoff++;
	hashmap_iter_init(&it, t->anchors);
	while (hashmap_iter_next(&it, NULL, (void **)&b))
		if (b->backoff_until > now)
			s->budgets_in_backoff++;
	s->backoff_until = t->account.backoff_until;
	s->subscriptions = t->nsubs;
	s->subscription_limit = t->lim.max_subscriptions;
	s->cancels = t->cancels;
	s->backoffs = t->backoffs;
	s->server_busy = t->server_busy;
	s->gate = throttle_gate_get(t, now);
	s->gate_until = t->gate == THROTTLE_GATE_CLOSED &&
	    t->gate_until > now ? t->gate_until : 0;
	s->probes = t->probes;
	s->requeued = t->requeued;
	s->slot_busy_ms = t->slot_busy_ms;
	if (t->slot_busy_at > 0 && now > t->slot_busy_at)
		s->slot_busy_ms += (uint64_t)(t->account.in_use -
		    t->account.streams) * (uint64_t)(now - t->slot_busy_at);
}

void
throttle_graph_stats(const struct throttle *t, int64_t now,
    struct throttle_graph_stats *s)
{
	const struct throttle_budget	*b;
	struct hashmap_iter		 it;

	*s = t->gst;
	s->in_flight = t->in_use[THROTTLE_GRAPH];
	s->queued = t->queued[THROTTLE_GRAPH];
	s->mailboxes = hashmap_count(t->graph);
	s->paused = 0;
	/* O(Graph budgets), for status only. */
	hashmap_iter_init(&it, t->graph);
	while (hashmap_iter_next(&it, NULL, (void **)&b))
		if (b->backoff_until > now)
			s->paused++;
	s->concurrency = t->lim.graph_concurrency;
	s->rate = t->lim.graph_rate;
	s->window_ms = t->lim.graph_window_ms;
	s->app_rate = t->lim.graph_app_rate;
	s->app_window_ms = t->lim.graph_app_window_ms;
}

static void
json_capacity(struct json_writer *w, const char *name,
    const struct throttle *t, const struct throttle_budget *b, int64_t now)
{
	json_obj_begin(w);
	if (name != NULL)
		json_kv_str(w, "anchor", name);
	json_kv_int(w, "in_use", b->in_use);
	json_kv_int(w, "limit", budget_limit(t, b));
	json_kv_int(w, "streams", b->streams);
	json_kv_int(w, "stream_limit", budget_stream_limit(t, b));
	json_kv_int(w, "queued", budget_queued(b));
	json_kv_int(w, "backoff_remaining_ms",
	    b->backoff_until > now ? b->backoff_until - now : 0);
	json_kv_int(w, "failures", b->backoff.attempt);
	json_obj_end(w);
}

void
throttle_json(const struct throttle *t, int64_t now, struct json_writer *w)
{
	struct throttle_stats	 s;
	struct throttle_budget	*b;
	struct hashmap_iter	 it;
	const char		*key;
	unsigned		 n = 0;
	int			 c;

	throttle_stats(t, now, &s);
	json_obj_begin(w);
	json_kv_str(w, "charging", s.charging == CONF_CHARGING_SERVICE_ACCOUNT ?
	    "service-account" : "impersonated");
	json_key(w, "service_account");
	json_capacity(w, NULL, t, &t->account, now);
	json_kv_int(w, "short_reserve", s.short_reserve);
	json_key(w, "stream_limit");
	if (s.stream_limit == THROTTLE_UNLIMITED)
		json_null(w);
	else
		json_int(w, s.stream_limit);
	json_kv_int(w, "per_anchor_limit", s.per_anchor_limit);
	json_key(w, "in_use");
	json_obj_begin(w);
	for (c = 0; c < THROTTLE_CLASS_MAX; c++)
		json_kv_int(w, class_names[c], s.in_use[c]);
	json_obj_end(w);
	json_key(w, "queued");
	json_obj_begin(w);
	for (c = 0; c < THROTTLE_CLASS_MAX; c++)
		json_kv_int(w, class_names[c], s.queued[c]);
	json_obj_end(w);
	json_key(w, "grants");
	json_obj_begin(w);
	for (c = 0; c < THROTTLE_CLASS_MAX; c++)
		json_kv_int(w, class_names[c], (int64_t)s.grants[c]);
	json_obj_end(w);
	json_kv_int(w, "cancels", (int64_t)s.cancels);
	json_kv_int(w, "backoffs", (int64_t)s.backoffs);
	json_kv_int(w, "server_busy", (int64_t)s.server_busy);
	json_kv_int(w, "budgets_in_backoff", s.budgets_in_backoff);
	json_kv_str(w, "gate", throttle_gate_name(s.gate));
	json_kv_int(w, "gate_remaining_ms", s.gate_until > 0 ?
	    s.gate_until - now : 0);
	json_kv_int(w, "probes", (int64_t)s.probes);
	json_kv_int(w, "requeued", (int64_t)s.requeued);
	json_kv_int(w, "slot_busy_ms", (int64_t)s.slot_busy_ms);
	json_key(w, "subscriptions");
	json_obj_begin(w);
	json_kv_int(w, "held", s.subscriptions);
	json_kv_int(w, "limit", s.subscription_limit);
	json_kv_str(w, "per", s.charging == CONF_CHARGING_SERVICE_ACCOUNT ?
	    "service-account" : "mailbox");
	json_obj_end(w);
	json_kv_int(w, "anchor_budgets", s.budgets);
	/* Bounded: the status reply must stay small at any scale. */
	json_key(w, "anchors");
	json_arr_begin(w);
	hashmap_iter_init(&it, t->anchors);
	while (n < THROTTLE_JSON_ANCHORS &&
	    hashmap_iter_next(&it, &key, (void **)&b)) {
		json_capacity(w, key, t, b, now);
		n++;
	}
	json_arr_end(w);
	json_kv_bool(w, "anchors_truncated", n < s.budgets);
	json_obj_end(w);
}

static void
prom_metric(struct buf *out, const char *name, const char *type,
    const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
throttle_prometheus(const struct throttle *t, int64_t now, struct buf *out)
{
	struct throttle_stats	s;
	int			c;

	throttle_stats(t, now, &s);
	prom_metric(out, "ewsgw_throttle_grants_total", "counter",
	    "Requests granted a slot.");
	for (c = 0; c < THROTTLE_CLASS_MAX; c++)
		buf_printf(out, "ewsgw_throttle_grants_total{class=\"%s\"} "
		    "%llu\n", class_names[c], (unsigned long long)s.grants[c]);
	prom_metric(out, "ewsgw_throttle_in_use", "gauge",
	    "Slots held, by request class.");
	for (c = 0; c < THROTTLE_CLASS_MAX; c++)
		buf_printf(out, "ewsgw_throttle_in_use{class=\"%s\"} %u\n",
		    class_names[c], s.in_use[c]);
	prom_metric(out, "ewsgw_throttle_queued", "gauge",
	    "Requests waiting for a slot, by request class.");
	for (c = 0; c < THROTTLE_CLASS_MAX; c++)
		buf_printf(out, "ewsgw_throttle_queued{class=\"%s\"} %u\n",
		    class_names[c], s.queued[c]);
	prom_metric(out, "ewsgw_throttle_concurrency_limit", "gauge",
	    "Service account concurrency budget (EWSMaxConcurrency).");
	buf_printf(out, "ewsgw_throttle_concurrency_limit %u\n",
	    s.concurrency_limit);
	prom_metric(out, "ewsgw_throttle_concurrency_in_use", "gauge",
	    "Service account concurrency slots held.");
	buf_printf(out, "ewsgw_throttle_concurrency_in_use %u\n",
	    s.concurrency_in_use);
	prom_metric(out, "ewsgw_throttle_slot_busy_seconds_total", "counter",
	    "Service account concurrency slots held by short requests, "
	    "slot-seconds.");
	buf_printf(out, "ewsgw_throttle_slot_busy_seconds_total %.3f\n",
	    (double)s.slot_busy_ms / 1000);
	prom_metric(out, "ewsgw_throttle_backoffs_total", "counter",
	    "Exponential back-offs after transient failures.");
	buf_printf(out, "ewsgw_throttle_backoffs_total %llu\n",
	    (unsigned long long)s.backoffs);
	prom_metric(out, "ewsgw_throttle_server_busy_total", "counter",
	    "ErrorServerBusy answers with BackOffMilliseconds.");
	buf_printf(out, "ewsgw_throttle_server_busy_total %llu\n",
	    (unsigned long long)s.server_busy);
	prom_metric(out, "ewsgw_throttle_cancels_total", "counter",
	    "Requests cancelled by their owner.");
	buf_printf(out, "ewsgw_throttle_cancels_total %llu\n",
	    (unsigned long long)s.cancels);
	prom_metric(out, "ewsgw_throttle_backoff_remaining_seconds", "gauge",
	    "Time until the service account budget may be used again.");
	buf_printf(out, "ewsgw_throttle_backoff_remaining_seconds %.3f\n",
	    s.backoff_until > now ? (double)(s.backoff_until - now) / 1000 : 0);
	prom_metric(out, "ewsgw_throttle_budgets_in_backoff", "gauge",
	    "Budgets currently backing off.");
	buf_printf(out, "ewsgw_throttle_budgets_in_backoff %u\n",
	    s.budgets_in_backoff);
	prom_metric(out, "ewsgw_throttle_anchor_budgets", "gauge",
	    "Streaming budgets of impersonated anchors in use.");
	buf_printf(out, "ewsgw_throttle_anchor_budgets %u\n", s.budgets);
	prom_metric(out, "ewsgw_throttle_subscriptions", "gauge",
	    "Subscriptions counted against EWSMaxSubscriptions.");
	buf_printf(out, "ewsgw_throttle_subscriptions %u\n", s.subscriptions);
	prom_metric(out, "ewsgw_throttle_gate_open", "gauge",
	    "1 when the account gate lets requests through as the budgets "
	    "allow, 0 while it is closed or probing.");
	buf_printf(out, "ewsgw_throttle_gate_open %d\n",
	    s.gate == THROTTLE_GATE_OPEN);
	prom_metric(out, "ewsgw_throttle_probes_total", "counter",
	    "Requests granted alone while the account gate was probing.");
	buf_printf(out, "ewsgw_throttle_probes_total %llu\n",
	    (unsigned long long)s.probes);
}

/* ---- invariants ---- */

static const char *
verify_budget(const struct throttle *t, const struct throttle_budget *b,
    unsigned queued[], unsigned in_use[])
{
	const struct throttle_ticket	*tk;
	const struct bheap		*h;
	unsigned			 n, streams;
	uint64_t			 last;
	int				 c, p;

	for (c = 0; c < THROTTLE_CLASS_MAX; c++) {
		n = 0;
		for (p = 0; p < THROTTLE_PRIO_MAX; p++) {
			last = 0;
			TAILQ_FOREACH(tk, &b->q[c][p], entry) {
				if (tk->state != THROTTLE_TICKET_QUEUED ||
				    tk->budget != b || tk->klass != c ||
				    tk->prio != p)
					return ("queued ticket out of place");
				if (tk != TAILQ_FIRST(&b->q[c][p]) &&
				    tk->seq <= last)
					return ("queue not in FIFO order");
				last = tk->seq;
				n++;
			}
		}
		if (n != b->nqueued[c])
			return ("queued count differs from the queues");
		queued[c] += n;
	}
	n = streams = 0;
	TAILQ_FOREACH(tk, &b->granted, entry) {
		if (tk->state != THROTTLE_TICKET_GRANTED || tk->budget != b)
			return ("granted ticket out of place");
		in_use[tk->klass]++;
		if (tk->klass == THROTTLE_STREAM)
			streams++;
		n++;
	}
	if (n != b->in_use || streams != b->streams)
		return ("in-use count differs from the granted list");
	h = b->graph ? &t->gheap : &t->heap;
	if (b->where == BUDGET_HEAP &&
	    (b->heap_idx >= h->n || h->v[b->heap_idx] != b))
		return ("budget heap index wrong");
	if (b->where == BUDGET_APP_WAIT && !b->graph)
		return ("EWS budget waiting for Graph's app rate");
	if (b != &t->account && b->nqueued[THROTTLE_SHORT] != 0)
		return ("short request queued on a streaming budget");
	if (b->graph ? b->nqueued[THROTTLE_STREAM] != 0 :
	    b->nqueued[THROTTLE_GRAPH] != 0)
		return ("Graph and EWS requests charged to one budget");
	if (b->nqueued[THROTTLE_STREAM] != 0 && (b == &t->account) !=
	    (t->lim.charging == CONF_CHARGING_SERVICE_ACCOUNT))
		return ("stream queued on a budget it is not charged to");
	/*
	 * No lost wake-up: a budget with waiting work that is on no list
	 * must be waiting for a release, not for time to pass.
	 */
	if (b->where == BUDGET_NOWHERE && budget_queued(b) > 0) {
		if (budget_wake(b) > t->last_now)
			return ("budget in back-off with work but no wake-up");
		for (c = 0; c < THROTTLE_CLASS_MAX; c++)
			if (b->nqueued[c] > 0 && budget_can_grant(t, b, c))
				return ("grantable work on no list");
	}
	return (NULL);
}

static const char *
verify_heap(const struct bheap *h, bool graph)
{
	size_t	i;

	for (i = 0; i < h->n; i++) {
		if (h->v[i]->where != BUDGET_HEAP || h->v[i]->heap_idx != i ||
		    h->v[i]->graph != graph)
			return ("heap entry not marked as such");
		if (i > 0 && h->v[(i - 1) / 2]->wake_at > h->v[i]->wake_at)
			return ("heap order broken");
		if (h->v[i]->wake_at < budget_wake(h->v[i]))
			return ("heap entry wakes before its budget may run");
	}
	return (NULL);
}

const char *
throttle_verify(const struct throttle *t)
{
	const struct throttle_budget	*b, *r;
	struct hashmap_iter		 it;
	const char			*key, *err;
	unsigned			 queued[THROTTLE_CLASS_MAX] = { 0 };
	unsigned			 in_use[THROTTLE_CLASS_MAX] = { 0 };
	unsigned			 nready = 0;
	int				 c;

	if ((err = verify_budget(t, &t->account, queued, in_use)) != NULL)
		return (err);
	hashmap_iter_init(&it, t->anchors);
	while (hashmap_iter_next(&it, &key, (void **)&b)) {
		if (b->key == NULL || strcmp(b->key, key) != 0)
			return ("anchor budget under the wrong key");
		if ((err = verify_budget(t, b, queued, in_use)) != NULL)
			return (err);
	}
	hashmap_iter_init(&it, t->graph);
	while (hashmap_iter_next(&it, &key, (void **)&b)) {
		if (!b->graph || b->key == NULL || strcmp(b->key, key) != 0)
			return ("Graph budget under the wrong key");
		if ((err = verify_budget(t, b, queued, in_use)) != NULL)
			return (err);
	}
	for (c = 0; c < THROTTLE_CLASS_MAX; c++) {
		if (queued[c] != t->queued[c])
			return ("total queued count wrong");
		if (in_use[c] != t->in_use[c])
			return ("total in-use count wrong");
	}
	if ((err = verify_heap(&t->heap, false)) != NULL ||
	    (err = verify_heap(&t->gheap, true)) != NULL)
		return (err);
	TAILQ_FOREACH(r, &t->ready, rentry) {
		if (r->where != BUDGET_READY || r->graph)
			return ("ready budget not marked as such");
		nready++;
	}
	if (nready > hashmap_count(t->anchors) + 1)
		return ("ready list longer than the budgets");
	nready = 0;
	TAILQ_FOREACH(r, &t->gready, rentry) {
		if (r->where != BUDGET_READY || !r->graph)
			return ("Graph ready budget not marked as such");
		nready++;
	}
	TAILQ_FOREACH(r, &t->app_wait, rentry) {
		if (r->where != BUDGET_APP_WAIT)
			return ("budget waiting for the app not marked so");
		nready++;
	}
	if (nready > hashmap_count(t->graph))
		return ("Graph lists longer than the budgets");
	if (t->probe != NULL && (t->probe->state != THROTTLE_TICKET_GRANTED ||
	    t->gate == THROTTLE_GATE_OPEN))
		return ("probe not granted, or kept with the gate open");
	return (NULL);
}
