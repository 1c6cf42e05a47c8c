/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Graph's per-mailbox budget, pure (the clock is an argument): at most
 * GRAPH_MAILBOX_CONCURRENCY requests in flight per app per mailbox, a
 * request rate per mailbox that never exceeds `rate` in any `window`
 * (a token bucket holding a tenth of it, refilled with the rest over the
 * window), and a pause per mailbox after a 429/503's Retry-After.  The
 * EWS scheduler (io/throttle.c) is untouched: Graph's limits are per
 * mailbox and per app, not per service account.
 */
#ifndef EWSGW_GRAPH_SCHED_H
#define EWSGW_GRAPH_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GRAPH_MAILBOX_CONCURRENCY	4
#define GRAPH_MAILBOX_RATE		10000	/* requests ... */
#define GRAPH_MAILBOX_WINDOW_MS		600000	/* ... per 10 minutes */

struct graph_sched;

struct graph_sched_opts {
	unsigned	 concurrency;	/* 0 = GRAPH_MAILBOX_CONCURRENCY */
	unsigned	 rate;		/* 0 = GRAPH_MAILBOX_RATE */
	int64_t		 window_ms;	/* 0 = GRAPH_MAILBOX_WINDOW_MS */
};

struct graph_sched *graph_sched_new(const struct graph_sched_opts *);
void	 graph_sched_free(struct graph_sched *);

/*
 * May a request for mailbox start at now (ms, any monotonic clock)?
 * 0: yes, and a slot is taken (release it with graph_sched_release).
 * > 0: not before that many ms (rate or Retry-After).
 * -1: all slots are busy; try again after a release for this mailbox.
 */
int64_t	 graph_sched_acquire(struct graph_sched *, const char *mailbox,
	    int64_t now);
void	 graph_sched_release(struct graph_sched *, const char *mailbox);
/* Graph said 429/503 for mailbox: no new request before until (ms). */
void	 graph_sched_pause(struct graph_sched *, const char *mailbox,
	    int64_t until);
/* Forget a mailbox with nothing in flight (removed from the watch). */
void	 graph_sched_forget(struct graph_sched *, const char *mailbox);

struct graph_sched_stats {
	uint64_t	 granted;
	uint64_t	 waited_slot;	/* acquire answered -1 */
	uint64_t	 waited_rate;	/* acquire answered > 0 for the rate */
	uint64_t	 waited_pause;	/* ... for a Retry-After pause */
	uint64_t	 pauses;	/* graph_sched_pause calls */
	unsigned	 in_flight;	/* over all mailboxes */
	unsigned	 max_in_flight_mailbox;	/* the highest seen */
	size_t		 mailboxes;
};
void	 graph_sched_stats(const struct graph_sched *,
	    struct graph_sched_stats *);
/* In flight for one mailbox now. */
unsigned graph_sched_in_flight(const struct graph_sched *, const char *);

#endif
