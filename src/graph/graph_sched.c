/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Per-mailbox concurrency, rate and Retry-After pauses for Graph.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "graph/graph_sched.h"
#include "base/hashmap.h"
#include "base/xmalloc.h"

/* Token bucket in milli-tokens: no floating point, no drift. */
struct gs_mailbox {
	unsigned	 in_flight;
	int64_t		 tokens;	/* milli-requests */
	int64_t		 refilled_at;	/* ms */
	int64_t		 paused_until;	/* ms, 0 = none */
};

struct graph_sched {
	struct hashmap	*mb;		/* address -> struct gs_mailbox */
	unsigned	 concurrency;
	int64_t		 cap;		/* milli-requests */
	int64_t		 refill_num;	/* milli-requests per ... */
	int64_t		 refill_den;	/* ... this many ms */
	struct graph_sched_stats st;
};

struct graph_sched *
graph_sched_new(const struct graph_sched_opts *o)
{
	struct graph_sched	*s;
	unsigned		 rate;
	int64_t			 window;

	s = xcalloc(1, sizeof *s);
	s->mb = hashmap_new();
	s->concurrency = o != NULL && o->concurrency > 0 ? o->concurrency :
	    GRAPH_MAILBOX_CONCURRENCY;
	rate = o != NULL && o->rate > 0 ? o->rate : GRAPH_MAILBOX_RATE;
	window = o != NULL && o->window_ms > 0 ? o->window_ms :
	    GRAPH_MAILBOX_WINDOW_MS;
	/*
	 * A burst of a tenth of the rate, at least one request; the rest
	 * flows in over the window, so no window ever sees more than rate.
	 */
	s->cap = (rate / 10 > 0 ? rate / 10 : 1) * 1000;
	s->refill_num = (int64_t)rate * 1000 - s->cap;
	if (s->refill_num <= 0)
		s->refill_num = 1;
	s->refill_den = window;
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
		m->tokens = s->cap;
		m->refilled_at = now;
		hashmap_put(s->mb, mailbox, m);
	}
	return (m);
}

static void
gs_refill(struct graph_sched *s, struct gs_mailbox *m, int64_t now)
{
	int64_t	 dt = now - m->refilled_at, add;

	if (dt <= 0)
		return;
	add = dt * s->refill_num / s->refill_den;
	if (add == 0)
		return;		/* keep the remainder for later */
	m->tokens += add;
	if (m->tokens >= s->cap) {
		m->tokens = s->cap;
		m->refilled_at = now;
	} else
		m->refilled_at += add * s->refill_den / s->refill_num;
}

int64_t
graph_sched_acquire(struct graph_sched *s, const char *mailbox, int64_t now)
{
	struct gs_mailbox	*m = gs_get(s, mailbox, now);
	int64_t			 need;

	if (m->paused_until > now) {
		s->st.waited_pause++;
		return (m->paused_until - now);
	}
	if (m->in_flight >= s->concurrency) {
		s->st.waited_slot++;
		return (-1);
	}
	gs_refill(s, m, now);
	if (m->tokens < 1000) {
		need = 1000 - m->tokens;
		s->st.waited_rate++;
		/* Round up: never answer 0 for "not yet". */
		return ((need * s->refill_den + s->refill_num - 1) /
		    s->refill_num);
	}
	m->tokens -= 1000;
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
graph_sched_stats(const struct graph_sched *s, struct graph_sched_stats *st)
{
	*st = s->st;
	st->mailboxes = hashmap_count(s->mb);
}

unsigned
graph_sched_in_flight(const struct graph_sched *s, const char *mailbox)
{
	struct gs_mailbox	*m = hashmap_get(s->mb, mailbox);

	return (m != NULL ? m->in_flight : 0);
}
