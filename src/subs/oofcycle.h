/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The automatic-replies cycle.  Exchange raises no notification when a
 * user switches automatic replies on or off, so the settings of every
 * watched mailbox are read in turn (GetUserOofSettings, one mailbox per
 * request), over and over.  The cycle keeps at most `slots' requests in
 * flight: [presence] oof_share percent of max_concurrency, at least one,
 * so it never takes more than that share of the concurrency budget.
 * The reads of one cycle are spread over oof_interval; when the
 * mailboxes need longer than that at the share's pace (mailboxes x round
 * trip / slots), the cycle stretches to what the share allows.  A
 * mailbox whose settings were read since the cycle began (its first
 * read, a resync) is skipped.  Scheduled automatic replies need no
 * cycle to flip: their start and end are presence boundaries.
 *
 * No cheaper signal is relied on: the setting is kept with the Inbox
 * rules, outside the calendar folder the subscriptions watch, and an
 * Inbox subscription would cost a second subscription per mailbox
 * against the budget and report every mail, never the setting itself.
 *
 * Every transition goes through set_state() in oofcycle.c, which logs
 * it at debug and runs the entry actions:
 *
 *   OFF     -> RUNNING   started, or reloaded, with a share above 0:
 *                        a cycle begins (position 0, slots from the
 *                        share)
 *   RUNNING -> WAITING   every mailbox of the cycle read or skipped and
 *                        every read answered: the cycle's time is kept
 *                        (if it read anything);
 *                        the next begins oof_interval after this one
 *                        began (at once if that has passed)
 *   WAITING -> RUNNING   the next cycle's time
 *   RUNNING,
 *   WAITING -> OFF       reloaded with share 0 (reads in flight
 *                        cancelled)
 *   any     -> STOPPED   shutdown; final
 */
#ifndef EWSGW_OOFCYCLE_H
#define EWSGW_OOFCYCLE_H

#include <stdint.h>

struct buf;
struct json_writer;
struct oofcycle;
struct registry;
struct subs_env;

enum oofcycle_state {
	OOFCYCLE_OFF,		/* share 0, or not started */
	OOFCYCLE_RUNNING,	/* reading the mailboxes of a cycle */
	OOFCYCLE_WAITING,	/* cycle done before oof_interval */
	OOFCYCLE_STOPPED,	/* shut down for good */
	OOFCYCLE_STATE_MAX
};

/*
 * A cycle over the mailboxes of reg (env and reg borrowed for its
 * life), OFF until oofcycle_start.  Allocated, free with oofcycle_free.
 */
struct oofcycle	*oofcycle_new(const struct subs_env *, struct registry *);
void		 oofcycle_free(struct oofcycle *);
void		 oofcycle_start(struct oofcycle *);
/* Share or interval changed (env's configuration already replaced). */
void		 oofcycle_reload(struct oofcycle *);
/* Cancel what is in flight and read nothing more (shutdown). */
void		 oofcycle_stop(struct oofcycle *);
/* The pacing timer (the tests call it directly). */
void		 oofcycle_tick(struct oofcycle *);

enum oofcycle_state oofcycle_state(const struct oofcycle *);
const char	*oofcycle_state_name(enum oofcycle_state);
/* Requests it may have in flight. */
unsigned	 oofcycle_slots(const struct oofcycle *);
/* Duration of the last complete cycle in ms, -1 before the first. */
int64_t		 oofcycle_last_ms(const struct oofcycle *);
/* The status object ("oof" in ewsgwctl status) and the metrics. */
void		 oofcycle_json(const struct oofcycle *, struct json_writer *);
void		 oofcycle_metrics(const struct oofcycle *, struct buf *);

#endif
