/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Timer heap on the libevent loop: a single one-shot timer follows the
 * earliest deadline and is re-armed after each pass over the due ones.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "presence/boundary.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

/* Longest single sleep: far deadlines are simply re-checked daily. */
#define BOUNDARY_MAX_SLEEP_MS	86400000

struct boundary {
	struct event		 ev;
	struct timerheap	 heap;
	enum boundary_clock	 clock;
	boundary_cb		 cb;
	void			*arg;
	int64_t			 armed;		/* deadline armed, or -1 */
	bool			 firing;	/* inside the pass */
};

static void	 boundary_fire(evutil_socket_t, short, void *);
static void	 boundary_arm(struct boundary *);

struct boundary *
boundary_new(struct event_base *base, enum boundary_clock clock,
    boundary_cb cb, void *arg)
{
	struct boundary	*b;

	b = xcalloc(1, sizeof(*b));
	timerheap_init(&b->heap);
	b->clock = clock;
	b->cb = cb;
	b->arg = arg;
	b->armed = -1;
	evtimer_assign(&b->ev, base, boundary_fire, b);
	return (b);
}

void
boundary_free(struct boundary *b)
{
	if (b == NULL)
		return;
	evtimer_del(&b->ev);
	timerheap_free(&b->heap);
	free(b);
}

int64_t
boundary_now(const struct boundary *b)
{
	return (b->clock == BOUNDARY_WALL ? time_wall_ms() : time_mono_ms());
}

size_t
boundary_count(const struct boundary *b)
{
	return (timerheap_count(&b->heap));
}

/* Arm the loop timer for the earliest deadline (or disarm). */
static void
boundary_arm(struct boundary *b)
{
	struct timerheap_entry	*e;
	struct timeval		 tv;
	int64_t			 delay;

	if ((e = timerheap_peek(&b->heap)) == NULL) {
		if (b->armed != -1)
			evtimer_del(&b->ev);
		b->armed = -1;
		return;
	}
	if (b->armed == e->deadline)
		return;
	delay = e->deadline - boundary_now(b);
	if (delay < 0)
		delay = 0;
	if (b->clock == BOUNDARY_WALL && delay > BOUNDARY_WALL_RECHECK_MS)
		delay = BOUNDARY_WALL_RECHECK_MS;
	if (delay > BOUNDARY_MAX_SLEEP_MS)
		delay = BOUNDARY_MAX_SLEEP_MS;
	if (evtimer_add(&b->ev, time_ms_tv(&tv, delay)) == -1) {
		log_warnx("boundary: cannot arm the timer");
		b->armed = -1;
		return;
	}
	b->armed = e->deadline;
}

static void
boundary_fire(evutil_socket_t fd, short what, void *arg)
{
	struct boundary	*b = arg;

	(void)fd;
	(void)what;
	b->armed = -1;
	b->firing = true;
	timerheap_pop_due(&b->heap, boundary_now(b), BOUNDARY_PASS_MAX,
	    b->cb, b->arg);
	b->firing = false;
	/* Entries still due (more than a pass) re-arm with no delay. */
	boundary_arm(b);
}

void
boundary_schedule(struct boundary *b, struct timerheap_entry *e,
    int64_t deadline_ms)
{
	timerheap_set(&b->heap, e, deadline_ms);
	/* Only an earlier head needs the timer moved; the pass re-arms. */
	if (!b->firing && (b->armed == -1 || deadline_ms < b->armed))
		boundary_arm(b);
}

void
boundary_cancel(struct boundary *b, struct timerheap_entry *e)
{
	timerheap_remove(&b->heap, e);
	/* A timer left armed for a cancelled head just finds nothing due;
	 * only an empty heap disarms, to leave the loop idle. */
	if (!b->firing && timerheap_count(&b->heap) == 0)
		boundary_arm(b);
}
