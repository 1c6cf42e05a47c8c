/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * One deferred run and one wake-up timer for the budget scheduler.
 */
#include "config.h"

#include <stdlib.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "io/throttle_drive.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

struct throttle_drive {
	struct throttle	*throttle;
	struct event	 kick;		/* run the scheduler soon */
	struct event	 wake;		/* scheduler's next wake-up */
};

static void
run_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct throttle_drive	*d = arg;
	int64_t			 next;
	struct timeval		 tv;

	throttle_run(d->throttle, time_mono_ms());
	next = throttle_next_wakeup(d->throttle, time_mono_ms());
	if (next == THROTTLE_NEVER) {
		evtimer_del(&d->wake);
		return;
	}
	evtimer_add(&d->wake, time_ms_tv(&tv, next - time_mono_ms()));
}

struct throttle_drive *
throttle_drive_new(struct event_base *base, const struct throttle_limits *l)
{
	struct throttle_drive	*d;

	d = xcalloc(1, sizeof(*d));
	d->throttle = throttle_new(l);
	event_assign(&d->kick, base, -1, 0, run_cb, d);
	evtimer_assign(&d->wake, base, run_cb, d);
	return (d);
}

void
throttle_drive_free(struct throttle_drive *d)
{
	if (d == NULL)
		return;
	event_del(&d->kick);
	evtimer_del(&d->wake);
	throttle_free(d->throttle);
	free(d);
}

struct throttle *
throttle_drive_throttle(struct throttle_drive *d)
{
	return (d->throttle);
}

void
throttle_drive_kick(struct throttle_drive *d)
{
	event_active(&d->kick, EV_TIMEOUT, 0);
}
