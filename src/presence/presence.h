/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The presence function: (timeline, OOF settings, now, rules) -> the
 * presence state, when it began and when it next changes.  Pure: no
 * clock, no allocation visible to the caller, no local time (all UTC
 * epoch seconds, so DST and time zones cannot move a boundary).
 */
#ifndef EWSGW_PRESENCE_H
#define EWSGW_PRESENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/conf.h"

struct config;
struct json_writer;
struct timeline;

enum presence_state {
	PRESENCE_UNKNOWN,
	PRESENCE_AVAILABLE,
	PRESENCE_BUSY,
	PRESENCE_AWAY,
	PRESENCE_STATE_MAX
};

enum presence_activity {
	PRESENCE_ACT_NONE,
	PRESENCE_ACT_MEETING,
	PRESENCE_ACT_OUT_OF_OFFICE,
	PRESENCE_ACT_WORKING_ELSEWHERE,
	PRESENCE_ACT_TENTATIVE,
	PRESENCE_ACT_MAX
};

/* GetUserOofSettings OofState. */
enum presence_oof_state {
	PRESENCE_OOF_DISABLED,
	PRESENCE_OOF_ENABLED,
	PRESENCE_OOF_SCHEDULED,
	PRESENCE_OOF_STATE_MAX
};

/* GetUserOofSettings: Duration only matters when Scheduled. */
struct presence_oof {
	enum presence_oof_state	 state;
	int64_t			 start;		/* epoch seconds, UTC */
	int64_t			 end;		/* exclusive */
};

/*
 * How calendar statuses are shown ([presence] in the configuration).
 * Allowed values: tentative busy|available; all_day busy|available|
 * ignore; working_elsewhere busy|available|away; free available|busy;
 * oof away|busy.  Other values fall back to the default shown first.
 */
struct presence_rules {
	enum conf_show	 tentative;
	enum conf_show	 all_day;
	enum conf_show	 working_elsewhere;
	enum conf_show	 free;
	enum conf_show	 oof;
};

#define PRESENCE_NO_SINCE	0		/* began before known data */
#define PRESENCE_NO_UNTIL	INT64_MAX	/* no known change ahead */

struct presence {
	enum presence_state	 state;
	enum presence_activity	 activity;
	int64_t			 since;	/* start of this state, or NO_SINCE */
	int64_t			 until;	/* next change, or NO_UNTIL */
};

/*
 * Defaults, as in the configuration: tentative busy, all_day available,
 * working_elsewhere available, free available, oof away.
 */
void	 presence_rules_default(struct presence_rules *);
/* The [presence] rules of a configuration (borrowed, only read). */
void	 presence_rules_from_conf(struct presence_rules *,
	    const struct config *);

/*
 * Compute the presence at now.  tl and rules are borrowed; oof may be
 * NULL (unknown, treated as disabled).  A timeline that was never loaded
 * gives PRESENCE_UNKNOWN.
 *
 * At an instant t an entry counts if start <= t < end (the OOF Duration
 * likewise); NoData entries count as nothing.  Precedence, highest
 * first:
 *   OOF (settings or calendar item)          -> oof rule, out-of-office
 *   Busy                                     -> busy, meeting
 *   Tentative, when the rule is busy         -> busy, tentative
 *   WorkingElsewhere, rule busy or away      -> that, working-elsewhere
 *   Free, when the rule is busy              -> busy, meeting
 *   Tentative, rule available                -> available, tentative
 *   WorkingElsewhere, rule available         -> available, working-elsewhere
 *   nothing / Free                           -> available, none
 * All-day items (other than OOF ones, which always count) follow the
 * all_day rule: busy = treated like any other item, available = never
 * more than available (a Busy one gives available, none), ignore =
 * dropped.
 *
 * since is the start of the contiguous run of instants with the same
 * state and activity (so back-to-back or overlapping meetings are one
 * busy period), until the first instant after now where state or
 * activity differ.  Only what the timeline holds is known: outside its
 * window the calendar counts as free, so the caller refreshes the
 * timeline well before now + horizon.
 */
void	 presence_compute(const struct timeline *, const struct presence_oof *,
	    int64_t now, const struct presence_rules *, struct presence *);

/*
 * Write {"state", "activity" (null for none), "since", "until"} as a
 * JSON object, times in ISO 8601 UTC or null when unknown or none.
 */
void	 presence_json(const struct presence *, struct json_writer *);

/* Same state and activity (since/until are not compared). */
bool	 presence_equal(const struct presence *, const struct presence *);

/*
 * The change from prev to p in the terms of the sink ABI
 * (include/ewsgw/sink.h): size, presence, previous, activity, since and
 * until set, every other member zeroed; mailbox, source and seq are the
 * caller's to set.
 */
struct ewsgw_presence_change;
void	 presence_change(const struct presence *p,
	    const struct presence *prev, struct ewsgw_presence_change *);

/* "unknown", "available", "busy", "away". */
const char *presence_state_name(enum presence_state);
/* "meeting", "out-of-office", "working-elsewhere", "tentative"; NULL
 * for none. */
const char *presence_activity_name(enum presence_activity);
/* "Disabled", "Enabled", "Scheduled"; parse returns 0 or -1. */
const char *presence_oof_state_name(enum presence_oof_state);
int	 presence_oof_state_parse(const char *, size_t,
	    enum presence_oof_state *);

#endif
