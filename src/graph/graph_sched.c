/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Per-mailbox concurrency, per-mailbox and app-wide rates, Retry-After
 * pauses for Graph.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "graph/graph_sched.h"
#include "base/hashmap.h"
#include "base/xmalloc.h"

/* A rate as a token bucket in milli-tokens: no floating point, no drift. */
struct gs_rate {
	int64_t		 cap;		/* milli-requests */
	int64_t		 refill_num;	/* milli-requests per ... */
	int64_t		 refill_den;	/* ... this many ms */
	unsigned	 rate;
	int64_t		 window;
};

/* One bucket's fill, and the requests of the window being counted. */
struct gs_bucket {
	int64_t		 tokens;	/* milli-requests */
	int64_t		 refilled_at;	/* ms */
	int64_t		 win_start;	/* ms */
	uint64_t	 win_count;
};

struct gs_mailbox {
	unsigned	 in_flight;
	struct gs_bucket bucket;
	int64_t		 paused_until;	/* ms, 0 = none */
};

struct graph_sched {
	struct hashmap	*mb;		/* address -> struct gs_mailbox */
	unsigned	 concurrency;
	struct gs_rate	 mrate;		/* per mailbox */
	struct gs_rate	 arate;		/* per app */
	struct gs_bucket app;
	bool		 app_started;
	struct graph_sched_stats st;
};

/*
 * A burst of a tenth of the rate, at least one request; the rest flows
 * in over the window, so no window ever sees more than rate.
 */
static void
gs_rate_init(struct gs_rate *r, unsigned rate, int64_t window)
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
gs_bucket_init(struct gs_bucket *b, const struct gs_rate *r, int64_t now)
{
	memset(b, 0, sizeof *b);
	b->tokens = r->cap;
	b->refilled_at = now;
}

/* Refill b up to now; 0 if a request may go, else the ms to wait. */
static int64_t
gs_bucket_wait(struct gs_bucket *b, const struct gs_rate *r, int64_t now)
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

/* Take one request from b (gs_bucket_wait said 0); its window count. */
static uint64_t
gs_bucket_take(struct gs_bucket *b, const struct gs_rate *r, int64_t now)
{
	b->tokens -= 1000;
	if (b->win_count == 0 || now - b->win_start >= r->window) {
		b->win_start = now;
		b->win_count = 0;
	}
	return (++b->win_count);
}

struct graph_sched *
graph_sched_new(const struct graph_sched_opts *o)
{
	struct graph_sched	*s;

	s = xcalloc(1, sizeof *s);
	s->mb = hashmap_new();
	s->concurrency = o != NULL && o->concurrency > 0 ? o->concurrency :
	    GRAPH_MAILBOX_CONCURRENCY;
	gs_rate_init(&s->mrate, o != NULL && o->rate > 0 ? o->rate :
	    GRAPH_MAILBOX_RATE, o != NULL && o->window_ms > 0 ? o->window_ms :
	    GRAPH_MAILBOX_WINDOW_MS);
	gs_rate_init(&s->arate, o != NULL && o->app_rate > 0 ? o->app_rate :
	    GRAPH_APP_RATE, o != NULL && o->app_window_ms > 0 ?
	    o->app_window_ms : GRAPH_APP_WINDOW_MS);
	return (s);
}

void
graph_sched_free(struct graph_sched *s)
{
	if (s == NULL)
		return;
	hashmap_free(s->mb, free);
	free(s);
}

static struct gs_mailbox *
gs_get(struct graph_sched *s, const char *mailbox, int64_t now)
{
	struct gs_mailbox	*m;

	if ((m = hashmap_get(s->mb, mailbox)) == NULL) {
		m = xcalloc(1, sizeof *m);
		gs_bucket_init(&m->bucket, &s->mrate, now);
		hashmap_put(s->mb, mailbox, m);
	}
	return (m);
}

int64_t
graph_sched_acquire(struct graph_sched *s, const char *mailbox, int64_t now)
{
	struct gs_mailbox	*m = gs_get(s, mailbox, now);
	int64_t			 w;
	uint64_t		 n;

	if (m->paused_until > now) {
		s->st.waited_pause++;
		return (m->paused_until - now);
	}
	if (m->in_flight >= s->concurrency) {
		s->st.waited_slot++;
		return (-1);
	}
	if ((w = gs_bucket_wait(&m->bucket, &s->mrate, now)) > 0) {
		s->st.waited_rate++;
		return (w);
	}
	if (!s->app_started) {
		gs_bucket_init(&s->app, &s->arate, now);
		s->app_started = true;
	}
	if ((w = gs_bucket_wait(&s->app, &s->arate, now)) > 0) {
		s->st.waited_app++;
		return (w);
	}
	if ((n = gs_bucket_take(&m->bucket, &s->mrate, now)) >
	    s->st.max_window_requests)
		s->st.max_window_requests = n;
	if ((n = gs_bucket_take(&s->app, &s->arate, now)) >
	    s->st.max_app_window_requests)
		s->st.max_app_window_requests = n;
	m->in_flight++;
	s->st.in_flight++;
	s->st.granted++;
	if (m->in_flight > s->st.max_in_flight_mailbox)
		s->st.max_in_flight_mailbox = m->in_flight;
	return (0);
}

void
graph_sched_release(struct graph_sched *s, const char *mailbox)
{
	struct gs_mailbox	*m = hashmap_get(s->mb, mailbox);

	if (m == NULL || m->in_flight == 0)
		return;
	m->in_flight--;
	s->st.in_flight--;
}

void
graph_sched_pause(struct graph_sched *s, const char *mailbox, int64_t until)
{
	struct gs_mailbox	*m = gs_get(s, mailbox, until);

	s->st.pauses++;
	if (until > m->paused_until)
		m->paused_until = until;
}

void
graph_sched_forget(struct graph_sched *s, const char *mailbox)
{
	struct gs_mailbox	*m = hashmap_get(s->mb, mailbox);

	if (m == NULL || m->in_flight > 0)
		return;
	free(hashmap_remove(s->mb, mailbox));
}

void
graph_sched_stats(const struct graph_sched *s, int64_t now,
    struct graph_sched_stats *st)
{
	struct hashmap_iter	 it;
	struct gs_mailbox	*m;

	*st = s->st;
	st->mailboxes = hashmap_count(s->mb);
	st->concurrency = s->concurrency;
	st->rate = s->mrate.rate;
	st->window_ms = s->mrate.window;
	st->app_rate = s->arate.rate;
	st->app_window_ms = s->arate.window;
	st->paused = 0;
	hashmap_iter_init(&it, s->mb);
	while (hashmap_iter_next(&it, NULL, (void **)&m))
		if (m->paused_until > now)
			st->paused++;
}

unsigned
graph_sched_in_flight(const struct graph_sched *s, const char *mailbox)
{
	struct gs_mailbox	*m = hashmap_get(s->mb, mailbox);

	return (m != NULL ? m->in_flight : 0);
}
