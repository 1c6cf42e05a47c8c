/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Meeting-boundary timers on the libevent loop: one timer heap and ONE
 * libevent timer armed for its earliest deadline, however many mailboxes
 * are scheduled.
 */
#ifndef EWSGW_BOUNDARY_H
#define EWSGW_BOUNDARY_H

#include <stdint.h>

#include "base/timerheap.h"

struct event_base;
struct boundary;

/*
 * Which clock deadlines are in.  MONO: time_mono_ms(), for intervals.
 * WALL: time_wall_ms() (epoch milliseconds), for calendar instants such
 * as a presence "until": the loop timer is re-armed from the wall clock
 * on every expiry and never sleeps longer than BOUNDARY_WALL_RECHECK_MS,
 * so a wall clock step (NTP, suspend) delays a boundary by at most that.
 */
enum boundary_clock {
	BOUNDARY_MONO,
	BOUNDARY_WALL
};

#define BOUNDARY_WALL_RECHECK_MS	30000

/*
 * Most entries fired in one pass of the loop.  When more are due (10,000
 * meetings starting in the same second), the rest fire in the next
 * passes, earliest first, with the loop's other events in between, so a
 * crowd of boundaries never holds the loop for long (an entry's callback
 * costs in the order of 10 us).
 */
#define BOUNDARY_PASS_MAX		256

/*
 * Called for each due entry, earliest first (at most BOUNDARY_PASS_MAX
 * per loop pass); the entry is unscheduled.
 */
typedef void	(*boundary_cb)(struct timerheap_entry *, void *);

/*
 * A new boundary timer set on base (borrowed).  cb(entry, arg) fires for
 * each due entry; it may schedule or cancel any entry, including its
 * own, and free the entry's owner, but not free the boundary.  Returns
 * allocated, free with boundary_free.
 */
struct boundary	*boundary_new(struct event_base *, enum boundary_clock,
		    boundary_cb, void *);
/* Free; entries still scheduled are unscheduled, never fired. */
void		 boundary_free(struct boundary *);

/*
 * Schedule or move e (embedded in its owner, borrowed until it fires or
 * is cancelled) to deadline_ms in the boundary's clock.  For a presence
 * "until" (epoch seconds) use a BOUNDARY_WALL boundary and until * 1000;
 * PRESENCE_NO_UNTIL means cancel instead.  A deadline already past
 * fires on the next loop pass.
 */
void		 boundary_schedule(struct boundary *, struct timerheap_entry *,
		    int64_t deadline_ms);
/* Unschedule e; nothing if not scheduled. */
void		 boundary_cancel(struct boundary *, struct timerheap_entry *);
/* The current time in the boundary's clock, in milliseconds. */
int64_t		 boundary_now(const struct boundary *);
size_t		 boundary_count(const struct boundary *);

#endif
