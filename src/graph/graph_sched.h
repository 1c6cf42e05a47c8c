/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Graph's request budgets, pure (the clock is an argument), as
 * Microsoft documents them for Outlook resources (calendar, mailbox
 * settings):
 *   - per app per mailbox: at most GRAPH_MAILBOX_CONCURRENCY requests in
 *     flight and at most GRAPH_MAILBOX_RATE in any GRAPH_MAILBOX_WINDOW_MS;
 *   - per app across all tenants: at most GRAPH_APP_RATE requests in any
 *     GRAPH_APP_WINDOW_MS (Graph's global limit);
 *   - every step of a JSON $batch counts as one request of its mailbox
 *     and of the app (the caller acquires once per step);
 *   - after a 429/503 nothing for that mailbox before its Retry-After.
 * A rate is a token bucket holding a tenth of it, refilled with the rest
 * over the window, so no window ever sees more than the rate.
 *
 * Why this is not a budget inside io/throttle.c: EWS budgets are keyed
 * by the charged account (the service account, or the impersonated
 * anchor for streams) and are concurrency slots with exponential
 * back-off behind the account gate; Graph's are keyed by app and target
 * mailbox, are rates as well as slots, and a refused Graph token or a
 * 429 on one mailbox says nothing about the EWS service account.
 */
#ifndef EWSGW_GRAPH_SCHED_H
#define EWSGW_GRAPH_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GRAPH_MAILBOX_CONCURRENCY	4
#define GRAPH_MAILBOX_RATE		10000	/* requests ... */
#define GRAPH_MAILBOX_WINDOW_MS		600000	/* ... per 10 minutes */
#define GRAPH_APP_RATE			130000	/* requests ... */
#define GRAPH_APP_WINDOW_MS		10000	/* ... per 10 seconds */

struct graph_sched;

struct graph_sched_opts {
	unsigned	 concurrency;	/* 0 = GRAPH_MAILBOX_CONCURRENCY */
	unsigned	 rate;		/* 0 = GRAPH_MAILBOX_RATE */
	int64_t		 window_ms;	/* 0 = GRAPH_MAILBOX_WINDOW_MS */
	unsigned	 app_rate;	/* 0 = GRAPH_APP_RATE */
	int64_t		 app_window_ms;	/* 0 = GRAPH_APP_WINDOW_MS */
};

struct graph_sched *graph_sched_new(const struct graph_sched_opts *);
void	 graph_sched_free(struct graph_sched *);

/*
 * May a request for mailbox start at now (ms, any monotonic clock)?
 * 0: yes, and a slot is taken (release it with graph_sched_release).
 * > 0: not before that many ms (mailbox rate, app rate or Retry-After).
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
	uint64_t	 waited_app;	/* ... for the app-wide rate */
	uint64_t	 waited_pause;	/* ... for a Retry-After pause */
	uint64_t	 pauses;	/* graph_sched_pause calls */
	unsigned	 in_flight;	/* over all mailboxes */
	unsigned	 max_in_flight_mailbox;	/* the highest seen */
	/* Most requests one mailbox / the app made in one window. */
	uint64_t	 max_window_requests;
	uint64_t	 max_app_window_requests;
	size_t		 mailboxes;
	size_t		 paused;	/* mailboxes in a Retry-After pause */
	/* The limits in force. */
	unsigned	 concurrency;
	unsigned	 rate;
	int64_t		 window_ms;
	unsigned	 app_rate;
	int64_t		 app_window_ms;
};
/* At now (ms); O(mailboxes) for the paused count, for status only. */
void	 graph_sched_stats(const struct graph_sched *, int64_t now,
	    struct graph_sched_stats *);
/* In flight for one mailbox now. */
unsigned graph_sched_in_flight(const struct graph_sched *, const char *);

#endif
