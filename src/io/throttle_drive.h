/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The budget scheduler (throttle.h) on the event loop: one deferred
 * run after submits and releases, one timer for the scheduler's next
 * wake-up.  The EWS call path (ews.h) owns one; the Graph client
 * (graph_client.h) borrows it, so EWS and Graph requests are granted by
 * the same scheduler, in the same run, with one wake-up.  No state
 * machine.
 */
#ifndef EWSGW_THROTTLE_DRIVE_H
#define EWSGW_THROTTLE_DRIVE_H

#include "io/throttle.h"

struct event_base;
struct throttle_drive;

/* A new scheduler with limits (copied), driven on base. */
struct throttle_drive *throttle_drive_new(struct event_base *,
	    const struct throttle_limits *);
/* Free the driver and its scheduler (throttle_free).  NULL is fine. */
void	 throttle_drive_free(struct throttle_drive *);
/* The scheduler, owned by the driver. */
struct throttle *throttle_drive_throttle(struct throttle_drive *);
/*
 * Something was submitted or released: run the scheduler from the loop
 * soon (once, however often this is called before).
 */
void	 throttle_drive_kick(struct throttle_drive *);

#endif
