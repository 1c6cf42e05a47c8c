/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the presence function, as a table of calendars, OOF
 * settings, rules and instants with the expected state, since and until.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/json.h"
#include "presence/presence.h"
#include "presence/timeline.h"

#define MIN	INT64_C(60)
#define HOUR	INT64_C(3600)
#define DAY	INT64_C(86400)
/* Monday 2026-11-30T00:00:00Z. */
#define D	INT64_C(1795996800)
#define AT(h, m)	(D + (h) * HOUR + (m) * MIN)
/* Sunday 2026-03-29T00:00:00Z: Europe switches to summer time at 01:00Z. */
#define DST	INT64_C(1774742400)

#define NONE	PRESENCE_NO_SINCE
#define NEVER	PRESENCE_NO_UNTIL

#define BUSY(s, e)	{ (s), (e), TL_BUSY, false, false, TL_NORMAL }
#define TENT(s, e)	{ (s), (e), TL_TENTATIVE, false, false, TL_NORMAL }
#define FREE(s, e)	{ (s), (e), TL_FREE, false, false, TL_NORMAL }
#define OOFI(s, e)	{ (s), (e), TL_OOF, false, false, TL_NORMAL }
#define WE(s, e)	{ (s), (e), TL_WORKING_ELSEWHERE, false, false, \
			    TL_NORMAL }
#define NODATA(s, e)	{ (s), (e), TL_NODATA, false, false, TL_NORMAL }
#define ALLDAY(st, d)	{ (d), (d) + DAY, (st), true, false, TL_NORMAL }
#define CANCELLED(s, e)	{ (s), (e), TL_BUSY, false, true, TL_NORMAL }
#define PRIVATE(s, e)	{ (s), (e), TL_BUSY, false, false, TL_PRIVATE }

#define OOF_OFF		{ PRESENCE_OOF_DISABLED, 0, 0 }
#define OOF_ON		{ PRESENCE_OOF_ENABLED, 0, 0 }
#define OOF_SCHED(s, e)	{ PRESENCE_OOF_SCHEDULED, (s), (e) }

#define MAXITEMS	6

struct pcase {
	const char		*name;
	bool			 no_timeline;
	struct timeline_item	 items[MAXITEMS];	/* end == 0 ends */
	bool			 has_oof;
	struct presence_oof	 oof;
	const char		*rules;		/* "key=value,..." */
	int64_t			 now;
	enum presence_state	 state;
	enum presence_activity	 act;
	int64_t			 since;
	int64_t			 until;
};

#define AV	PRESENCE_AVAILABLE
#define BZ	PRESENCE_BUSY
#define AW	PRESENCE_AWAY
#define UNK	PRESENCE_UNKNOWN
#define A_NONE	PRESENCE_ACT_NONE
#define A_MEET	PRESENCE_ACT_MEETING
#define A_OOF	PRESENCE_ACT_OUT_OF_OFFICE
#define A_WE	PRESENCE_ACT_WORKING_ELSEWHERE
#define A_TENT	PRESENCE_ACT_TENTATIVE

static const struct pcase cases[] = {
	/* No data. */
	{ "never loaded", .no_timeline = true, .now = AT(10, 0),
	    .state = UNK, .act = A_NONE, .since = NONE, .until = NEVER },
	{ "never loaded, OOF enabled", .no_timeline = true, .has_oof = true,
	    .oof = OOF_ON, .now = AT(10, 0),
	    .state = UNK, .act = A_NONE, .since = NONE, .until = NEVER },
	{ "empty calendar", .now = AT(10, 0),
	    .state = AV, .act = A_NONE, .since = NONE, .until = NEVER },

	/* One meeting, and the exact edges. */
	{ "before a meeting", .items = { BUSY(AT(10, 0), AT(11, 0)) },
	    .now = AT(9, 0), .state = AV, .since = NONE, .until = AT(10, 0) },
	{ "one second before start", .items = { BUSY(AT(10, 0), AT(11, 0)) },
	    .now = AT(10, 0) - 1, .state = AV, .since = NONE,
	    .until = AT(10, 0) },
	{ "at start", .items = { BUSY(AT(10, 0), AT(11, 0)) },
	    .now = AT(10, 0), .state = BZ, .act = A_MEET, .since = AT(10, 0),
	    .until = AT(11, 0) },
	{ "inside", .items = { BUSY(AT(10, 0), AT(11, 0)) },
	    .now = AT(10, 30), .state = BZ, .act = A_MEET, .since = AT(10, 0),
	    .until = AT(11, 0) },
	{ "one second before end", .items = { BUSY(AT(10, 0), AT(11, 0)) },
	    .now = AT(11, 0) - 1, .state = BZ, .act = A_MEET,
	    .since = AT(10, 0), .until = AT(11, 0) },
	{ "at end", .items = { BUSY(AT(10, 0), AT(11, 0)) },
	    .now = AT(11, 0), .state = AV, .since = AT(11, 0), .until = NEVER },
	{ "between two", .items = { BUSY(AT(9, 0), AT(10, 0)),
	    BUSY(AT(14, 0), AT(15, 0)) },
	    .now = AT(12, 0), .state = AV, .since = AT(10, 0),
	    .until = AT(14, 0) },

	/* Back-to-back and overlapping meetings: one busy period. */
	{ "back-to-back, first", .items = { BUSY(AT(10, 0), AT(11, 0)),
	    BUSY(AT(11, 0), AT(12, 0)) },
	    .now = AT(10, 30), .state = BZ, .act = A_MEET, .since = AT(10, 0),
	    .until = AT(12, 0) },
	{ "back-to-back, at the seam", .items = { BUSY(AT(10, 0), AT(11, 0)),
	    BUSY(AT(11, 0), AT(12, 0)) },
	    .now = AT(11, 0), .state = BZ, .act = A_MEET, .since = AT(10, 0),
	    .until = AT(12, 0) },
	{ "back-to-back, three", .items = { BUSY(AT(11, 0), AT(12, 0)),
	    BUSY(AT(10, 0), AT(11, 0)), BUSY(AT(12, 0), AT(12, 30)) },
	    .now = AT(12, 10), .state = BZ, .act = A_MEET, .since = AT(10, 0),
	    .until = AT(12, 30) },
	{ "overlapping", .items = { BUSY(AT(10, 0), AT(11, 30)),
	    BUSY(AT(11, 0), AT(12, 0)) },
	    .now = AT(11, 45), .state = BZ, .act = A_MEET, .since = AT(10, 0),
	    .until = AT(12, 0) },
	{ "nested", .items = { BUSY(AT(10, 0), AT(13, 0)),
	    BUSY(AT(11, 0), AT(12, 0)) },
	    .now = AT(11, 30), .state = BZ, .act = A_MEET, .since = AT(10, 0),
	    .until = AT(13, 0) },
	{ "a one-minute gap is a change", .items = {
	    BUSY(AT(10, 0), AT(11, 0)), BUSY(AT(11, 1), AT(12, 0)) },
	    .now = AT(10, 30), .state = BZ, .act = A_MEET, .since = AT(10, 0),
	    .until = AT(11, 0) },

	/* Tentative, both rules. */
	{ "tentative, rule busy", .items = { TENT(AT(10, 0), AT(11, 0)) },
	    .now = AT(10, 30), .state = BZ, .act = A_TENT, .since = AT(10, 0),
	    .until = AT(11, 0) },
	{ "tentative, rule available", .items = { TENT(AT(10, 0), AT(11, 0)) },
	    .rules = "tentative=available",
	    .now = AT(10, 30), .state = AV, .act = A_TENT, .since = AT(10, 0),
	    .until = AT(11, 0) },
	{ "busy then tentative: activity changes", .items = {
	    BUSY(AT(10, 0), AT(11, 0)), TENT(AT(11, 0), AT(12, 0)) },
	    .now = AT(10, 30), .state = BZ, .act = A_MEET, .since = AT(10, 0),
	    .until = AT(11, 0) },
	{ "busy inside tentative", .items = { TENT(AT(10, 0), AT(12, 0)),
	    BUSY(AT(10, 30), AT(11, 0)) },
	    .now = AT(10, 45), .state = BZ, .act = A_MEET, .since = AT(10, 30),
	    .until = AT(11, 0) },
	{ "tentative resumes after busy", .items = {
	    TENT(AT(10, 0), AT(12, 0)), BUSY(AT(10, 30), AT(11, 0)) },
	    .now = AT(11, 0), .state = BZ, .act = A_TENT, .since = AT(11, 0),
	    .until = AT(12, 0) },

	/* OOF settings. */
	{ "OOF enabled", .has_oof = true, .oof = OOF_ON, .now = AT(10, 0),
	    .state = AW, .act = A_OOF, .since = NONE, .until = NEVER },
	{ "OOF enabled, rule busy", .has_oof = true, .oof = OOF_ON,
	    .rules = "oof=busy", .now = AT(10, 0),
	    .state = BZ, .act = A_OOF, .since = NONE, .until = NEVER },
	{ "OOF enabled beats a meeting", .has_oof = true, .oof = OOF_ON,
	    .items = { BUSY(AT(10, 0), AT(11, 0)) }, .now = AT(10, 30),
	    .state = AW, .act = A_OOF, .since = NONE, .until = NEVER },
	{ "OOF disabled, duration ignored", .has_oof = true,
	    .oof = { PRESENCE_OOF_DISABLED, AT(0, 0), AT(23, 0) },
	    .now = AT(10, 0), .state = AV, .since = NONE, .until = NEVER },
	{ "OOF enabled, duration ignored", .has_oof = true,
	    .oof = { PRESENCE_OOF_ENABLED, AT(0, 0), AT(1, 0) },
	    .now = AT(10, 0), .state = AW, .act = A_OOF, .since = NONE,
	    .until = NEVER },
	{ "OOF scheduled, before", .has_oof = true,
	    .oof = OOF_SCHED(AT(8, 0), AT(18, 0)), .now = AT(7, 0),
	    .state = AV, .since = NONE, .until = AT(8, 0) },
	{ "OOF scheduled, at start", .has_oof = true,
	    .oof = OOF_SCHED(AT(8, 0), AT(18, 0)), .now = AT(8, 0),
	    .state = AW, .act = A_OOF, .since = AT(8, 0), .until = AT(18, 0) },
	{ "OOF scheduled, inside", .has_oof = true,
	    .oof = OOF_SCHED(AT(8, 0), AT(18, 0)), .now = AT(12, 0),
	    .state = AW, .act = A_OOF, .since = AT(8, 0), .until = AT(18, 0) },
	{ "OOF scheduled, last second", .has_oof = true,
	    .oof = OOF_SCHED(AT(8, 0), AT(18, 0)), .now = AT(18, 0) - 1,
	    .state = AW, .act = A_OOF, .since = AT(8, 0), .until = AT(18, 0) },
	{ "OOF scheduled, at end", .has_oof = true,
	    .oof = OOF_SCHED(AT(8, 0), AT(18, 0)), .now = AT(18, 0),
	    .state = AV, .since = AT(18, 0), .until = NEVER },
	{ "OOF scheduled, after", .has_oof = true,
	    .oof = OOF_SCHED(AT(8, 0), AT(18, 0)), .now = AT(20, 0),
	    .state = AV, .since = AT(18, 0), .until = NEVER },
	{ "OOF scheduled, empty duration", .has_oof = true,
	    .oof = OOF_SCHED(AT(18, 0), AT(8, 0)), .now = AT(12, 0),
	    .state = AV, .since = NONE, .until = NEVER },
	{ "meeting inside an OOF window", .has_oof = true,
	    .oof = OOF_SCHED(AT(8, 0), AT(18, 0)),
	    .items = { BUSY(AT(10, 0), AT(11, 0)) }, .now = AT(10, 30),
	    .state = AW, .act = A_OOF, .since = AT(8, 0), .until = AT(18, 0) },
	{ "meeting outlasting an OOF window", .has_oof = true,
	    .oof = OOF_SCHED(AT(8, 0), AT(12, 0)),
	    .items = { BUSY(AT(11, 0), AT(13, 0)) }, .now = AT(12, 0),
	    .state = BZ, .act = A_MEET, .since = AT(12, 0),
	    .until = AT(13, 0) },
	{ "OOF window starting in a meeting", .has_oof = true,
	    .oof = OOF_SCHED(AT(10, 30), AT(18, 0)),
	    .items = { BUSY(AT(10, 0), AT(11, 0)) }, .now = AT(10, 10),
	    .state = BZ, .act = A_MEET, .since = AT(10, 0),
	    .until = AT(10, 30) },

	/* OOF calendar items. */
	{ "OOF item", .items = { OOFI(AT(9, 0), AT(17, 0)) },
	    .now = AT(9, 0), .state = AW, .act = A_OOF, .since = AT(9, 0),
	    .until = AT(17, 0) },
	{ "OOF item, rule busy", .items = { OOFI(AT(9, 0), AT(17, 0)) },
	    .rules = "oof=busy", .now = AT(12, 0), .state = BZ, .act = A_OOF,
	    .since = AT(9, 0), .until = AT(17, 0) },
	{ "OOF item beats a meeting", .items = { OOFI(AT(9, 0), AT(17, 0)),
	    BUSY(AT(8, 0), AT(10, 0)) },
	    .now = AT(9, 30), .state = AW, .act = A_OOF, .since = AT(9, 0),
	    .until = AT(17, 0) },
	{ "OOF item and OOF settings join", .has_oof = true,
	    .oof = OOF_SCHED(AT(12, 0), AT(20, 0)),
	    .items = { OOFI(AT(9, 0), AT(13, 0)) },
	    .now = AT(15, 0), .state = AW, .act = A_OOF, .since = AT(9, 0),
	    .until = AT(20, 0) },
	{ "all-day OOF item counts even when all-day is ignored",
	    .items = { ALLDAY(TL_OOF, D) }, .rules = "all_day=ignore",
	    .now = AT(12, 0), .state = AW, .act = A_OOF, .since = D,
	    .until = D + DAY },

	/* All-day items, three rules. */
	{ "all-day busy, rule busy", .items = { ALLDAY(TL_BUSY, D) },
	    .rules = "all_day=busy", .now = AT(12, 0), .state = BZ,
	    .act = A_MEET, .since = D, .until = D + DAY },
	{ "all-day busy, default rule available",
	    .items = { ALLDAY(TL_BUSY, D) }, .now = AT(12, 0), .state = AV,
	    .since = NONE, .until = NEVER },
	{ "all-day busy, rule ignore", .items = { ALLDAY(TL_BUSY, D),
	    BUSY(AT(14, 0), AT(15, 0)) },
	    .rules = "all_day=ignore", .now = AT(12, 0), .state = AV,
	    .since = NONE, .until = AT(14, 0) },
	{ "all-day tentative, rule available",
	    .items = { ALLDAY(TL_TENTATIVE, D) },
	    .rules = "all_day=available", .now = AT(12, 0), .state = AV,
	    .act = A_TENT, .since = D, .until = D + DAY },
	{ "all-day busy with a meeting inside: one period",
	    .items = { ALLDAY(TL_BUSY, D), BUSY(AT(10, 0), AT(11, 0)) },
	    .rules = "all_day=busy",
	    .now = AT(10, 30), .state = BZ, .act = A_MEET, .since = D,
	    .until = D + DAY },
	{ "meeting inside an available all-day item",
	    .items = { ALLDAY(TL_BUSY, D), BUSY(AT(10, 0), AT(11, 0)) },
	    .rules = "all_day=available", .now = AT(10, 30), .state = BZ,
	    .act = A_MEET, .since = AT(10, 0), .until = AT(11, 0) },
	{ "all-day free (a birthday)", .items = { ALLDAY(TL_FREE, D) },
	    .now = AT(12, 0), .state = AV, .since = NONE, .until = NEVER },

	/* Free items. */
	{ "free item, rule available", .items = { FREE(AT(10, 0), AT(11, 0)) },
	    .now = AT(10, 30), .state = AV, .since = NONE, .until = NEVER },
	{ "free item, rule busy", .items = { FREE(AT(10, 0), AT(11, 0)) },
	    .rules = "free=busy", .now = AT(10, 30), .state = BZ,
	    .act = A_MEET, .since = AT(10, 0), .until = AT(11, 0) },
	{ "free=busy joins a busy meeting", .items = {
	    FREE(AT(10, 0), AT(11, 0)), BUSY(AT(11, 0), AT(12, 0)) },
	    .rules = "free=busy", .now = AT(10, 30), .state = BZ,
	    .act = A_MEET, .since = AT(10, 0), .until = AT(12, 0) },

	/* Working elsewhere, three rules. */
	{ "working elsewhere, rule available",
	    .items = { WE(AT(9, 0), AT(17, 0)) }, .now = AT(12, 0),
	    .state = AV, .act = A_WE, .since = AT(9, 0), .until = AT(17, 0) },
	{ "working elsewhere, rule away", .items = { WE(AT(9, 0), AT(17, 0)) },
	    .rules = "working_elsewhere=away", .now = AT(12, 0), .state = AW,
	    .act = A_WE, .since = AT(9, 0), .until = AT(17, 0) },
	{ "working elsewhere, rule busy", .items = { WE(AT(9, 0), AT(17, 0)) },
	    .rules = "working_elsewhere=busy", .now = AT(12, 0), .state = BZ,
	    .act = A_WE, .since = AT(9, 0), .until = AT(17, 0) },
	{ "meeting while working elsewhere", .items = {
	    WE(AT(9, 0), AT(17, 0)), BUSY(AT(10, 0), AT(11, 0)) },
	    .rules = "working_elsewhere=away", .now = AT(10, 30), .state = BZ,
	    .act = A_MEET, .since = AT(10, 0), .until = AT(11, 0) },
	{ "available tentative does not hide working elsewhere away",
	    .items = { WE(AT(9, 0), AT(17, 0)), TENT(AT(10, 0), AT(11, 0)) },
	    .rules = "working_elsewhere=away,tentative=available",
	    .now = AT(10, 30), .state = AW, .act = A_WE, .since = AT(9, 0),
	    .until = AT(17, 0) },
	{ "busy tentative beats working elsewhere", .items = {
	    WE(AT(9, 0), AT(17, 0)), TENT(AT(10, 0), AT(11, 0)) },
	    .rules = "working_elsewhere=away", .now = AT(10, 30), .state = BZ,
	    .act = A_TENT, .since = AT(10, 0), .until = AT(11, 0) },

	/* Items that do not count, and private ones that do. */
	{ "cancelled meeting", .items = { CANCELLED(AT(10, 0), AT(11, 0)) },
	    .now = AT(10, 30), .state = AV, .since = NONE, .until = NEVER },
	{ "cancelled meeting between two", .items = {
	    BUSY(AT(9, 0), AT(10, 0)), CANCELLED(AT(10, 0), AT(11, 0)),
	    BUSY(AT(11, 0), AT(12, 0)) },
	    .now = AT(9, 30), .state = BZ, .act = A_MEET, .since = AT(9, 0),
	    .until = AT(10, 0) },
	{ "no-data item", .items = { NODATA(AT(10, 0), AT(11, 0)) },
	    .now = AT(10, 30), .state = AV, .since = NONE, .until = NEVER },
	{ "private meeting is busy", .items = {
	    PRIVATE(AT(10, 0), AT(11, 0)) },
	    .now = AT(10, 30), .state = BZ, .act = A_MEET, .since = AT(10, 0),
	    .until = AT(11, 0) },

	/* The Europe DST switch (01:00Z): UTC instants are unaffected. */
	{ "DST day, meeting across the switch", .items = {
	    BUSY(DST + 30 * MIN, DST + 90 * MIN),
	    BUSY(DST + 7 * HOUR, DST + 8 * HOUR) },
	    .now = DST + HOUR, .state = BZ, .act = A_MEET,
	    .since = DST + 30 * MIN, .until = DST + 90 * MIN },
	{ "DST day, after the switch", .items = {
	    BUSY(DST + 30 * MIN, DST + 90 * MIN),
	    BUSY(DST + 7 * HOUR, DST + 8 * HOUR) },
	    .now = DST + 3 * HOUR, .state = AV, .since = DST + 90 * MIN,
	    .until = DST + 7 * HOUR },
	{ "DST day, all-day item is 24 hours of UTC", .items = {
	    ALLDAY(TL_BUSY, DST) }, .rules = "all_day=busy",
	    .now = DST + 23 * HOUR, .state = BZ, .act = A_MEET, .since = DST,
	    .until = DST + DAY },
};

/* Apply "key=value,..." to the default rules. */
static void
rules_parse(const char *spec, struct presence_rules *r)
{
	char		*copy, *tok, *save = NULL, *eq;
	enum conf_show	*field, v;

	presence_rules_default(r);
	if (spec == NULL)
		return;
	copy = strdup(spec);
	ck_assert_ptr_nonnull(copy);
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		eq = strchr(tok, '=');
		ck_assert_ptr_nonnull(eq);
		*eq++ = '\0';
		if (strcmp(tok, "tentative") == 0)
			field = &r->tentative;
		else if (strcmp(tok, "all_day") == 0)
			field = &r->all_day;
		else if (strcmp(tok, "working_elsewhere") == 0)
			field = &r->working_elsewhere;
		else if (strcmp(tok, "free") == 0)
			field = &r->free;
		else if (strcmp(tok, "oof") == 0)
			field = &r->oof;
		else
			ck_abort_msg("bad rule %s", tok);
		if (strcmp(eq, "busy") == 0)
			v = CONF_SHOW_BUSY;
		else if (strcmp(eq, "available") == 0)
			v = CONF_SHOW_AVAILABLE;
		else if (strcmp(eq, "away") == 0)
			v = CONF_SHOW_AWAY;
		else if (strcmp(eq, "ignore") == 0)
			v = CONF_SHOW_IGNORE;
		else
			ck_abort_msg("bad value %s", eq);
		*field = v;
	}
	free(copy);
}

static size_t
case_items(const struct pcase *c)
{
	size_t	 n = 0;

	while (n < MAXITEMS && c->items[n].end != 0)
		n++;
	return (n);
}

/* Build the case's timeline around a fixed instant, as the daemon does. */
static void
case_timeline(const struct pcase *c, struct timeline *tl)
{
	timeline_init(tl);
	if (!c->no_timeline)
		timeline_build(tl, c->items, case_items(c), c->now, 7 * DAY,
		    7 * DAY);
}

START_TEST(test_table)
{
	const struct pcase	*c = &cases[_i];
	struct presence_rules	 rules;
	struct timeline		 tl;
	struct presence		 p;

	rules_parse(c->rules, &rules);
	case_timeline(c, &tl);
	presence_compute(&tl, c->has_oof ? &c->oof : NULL, c->now, &rules,
	    &p);
	ck_assert_msg(p.state == c->state, "%s: state %s, want %s", c->name,
	    presence_state_name(p.state), presence_state_name(c->state));
	ck_assert_msg(p.activity == c->act, "%s: activity %d, want %d",
	    c->name, p.activity, c->act);
	ck_assert_msg(p.since == c->since, "%s: since %lld, want %lld",
	    c->name, (long long)(p.since - D), (long long)(c->since - D));
	ck_assert_msg(p.until == c->until, "%s: until %lld, want %lld",
	    c->name, (long long)(p.until - D), (long long)(c->until - D));
	timeline_free(&tl);
}
END_TEST

/*
 * since/until agree with point evaluations: the same presence holds on
 * every minute of [since, until), and a different one just outside.
 */
START_TEST(test_table_consistent)
{
	const struct pcase	*c = &cases[_i];
	struct presence_rules	 rules;
	struct timeline		 tl;
	struct presence		 p, q;
	int64_t			 t, lo, hi;

	rules_parse(c->rules, &rules);
	case_timeline(c, &tl);
	presence_compute(&tl, c->has_oof ? &c->oof : NULL, c->now, &rules,
	    &p);
	lo = p.since == NONE ? c->now - DAY : p.since;
	hi = p.until == NEVER ? c->now + DAY : p.until;
	for (t = lo; t < hi; t += MIN) {
		presence_compute(&tl, c->has_oof ? &c->oof : NULL, t, &rules,
		    &q);
		ck_assert_msg(presence_equal(&p, &q), "%s at %lld", c->name,
		    (long long)(t - D));
		ck_assert_int_eq(q.since, p.since);
		ck_assert_int_eq(q.until, p.until);
	}
	if (p.since != NONE) {
		presence_compute(&tl, c->has_oof ? &c->oof : NULL,
		    p.since - 1, &rules, &q);
		ck_assert_msg(!presence_equal(&p, &q), "%s before since",
		    c->name);
		ck_assert_int_eq(q.until, p.since);
	}
	if (p.until != NEVER) {
		presence_compute(&tl, c->has_oof ? &c->oof : NULL, p.until,
		    &rules, &q);
		ck_assert_msg(!presence_equal(&p, &q), "%s at until", c->name);
		ck_assert_int_eq(q.since, p.until);
	}
	timeline_free(&tl);
}
END_TEST

/* Local time must not matter: the DST cases again in Berlin time. */
START_TEST(test_dst_local_zone)
{
	struct presence_rules	 rules;
	struct timeline		 tl;
	struct presence		 p;
	struct timeline_item	 it[] = {
		BUSY(DST + 30 * MIN, DST + 90 * MIN),
		BUSY(DST + 90 * MIN, DST + 150 * MIN),
	};

	setenv("TZ", "Europe/Berlin", 1);
	tzset();
	presence_rules_default(&rules);
	timeline_init(&tl);
	timeline_build(&tl, it, 2, DST, DAY, DAY);
	presence_compute(&tl, NULL, DST + HOUR, &rules, &p);
	ck_assert_int_eq(p.state, PRESENCE_BUSY);
	ck_assert_int_eq(p.since, DST + 30 * MIN);
	ck_assert_int_eq(p.until, DST + 150 * MIN);
	ck_assert_int_eq(p.until - p.since, 2 * HOUR);
	timeline_free(&tl);
	unsetenv("TZ");
	tzset();
}
END_TEST

/* Many overlapping entries go through the heap-allocated path. */
START_TEST(test_many_entries)
{
	struct presence_rules	 rules;
	struct timeline_item	*it;
	struct timeline		 tl;
	struct presence		 p;
	size_t			 i, n = 500;

	it = calloc(n, sizeof(*it));
	ck_assert_ptr_nonnull(it);
	/* 500 half-hour meetings every 15 minutes, then a gap. */
	for (i = 0; i < n; i++) {
		it[i].start = D + (int64_t)i * 15 * MIN;
		it[i].end = it[i].start + 30 * MIN;
		it[i].status = TL_BUSY;
	}
	presence_rules_default(&rules);
	timeline_init(&tl);
	timeline_build(&tl, it, n, D, 30 * DAY, 30 * DAY);
	ck_assert_uint_eq(timeline_count(&tl), n);
	presence_compute(&tl, NULL, D + 50 * HOUR, &rules, &p);
	ck_assert_int_eq(p.state, PRESENCE_BUSY);
	ck_assert_int_eq(p.since, D);
	ck_assert_int_eq(p.until, D + (int64_t)(n - 1) * 15 * MIN + 30 * MIN);
	timeline_free(&tl);
	free(it);
}
END_TEST

/* Private items: presence uses them, the dump shows no text at all. */
START_TEST(test_private_dump)
{
	struct timeline_item	 it[] = {
		PRIVATE(AT(10, 0), AT(11, 0)),
		{ AT(12, 0), AT(13, 0), TL_TENTATIVE, false, false,
		    TL_CONFIDENTIAL },
		{ AT(14, 0), AT(15, 0), TL_BUSY, false, false, TL_PERSONAL },
	};
	struct timeline		 tl;
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;
	struct json_value	*v;
	const struct json_value	*e;
	char			*cause = NULL;

	timeline_init(&tl);
	timeline_build(&tl, it, 3, D, DAY, DAY);
	json_writer_init(&w, &b);
	timeline_json(&tl, &w);
	ck_assert_ptr_null(strstr(buf_str(&b), "subject"));
	v = json_parse(b.data, b.len, &cause);
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(v->type, JSON_ARRAY);
	e = v->child;
	ck_assert_str_eq(json_get_str(e, "start", ""), "2026-11-30T10:00:00Z");
	ck_assert_str_eq(json_get_str(e, "end", ""), "2026-11-30T11:00:00Z");
	ck_assert_str_eq(json_get_str(e, "status", ""), "Busy");
	ck_assert(json_get_bool(e, "private", false));
	ck_assert(!json_get_bool(e, "all_day", true));
	e = e->next;
	ck_assert_str_eq(json_get_str(e, "status", ""), "Tentative");
	ck_assert(json_get_bool(e, "private", false));
	e = e->next;
	ck_assert(!json_get_bool(e, "private", true));
	ck_assert_ptr_null(e->next);
	/* Exactly the five documented members. */
	for (e = v->child->child; e != NULL; e = e->next)
		ck_assert_msg(strcmp(e->key, "start") == 0 ||
		    strcmp(e->key, "end") == 0 ||
		    strcmp(e->key, "status") == 0 ||
		    strcmp(e->key, "all_day") == 0 ||
		    strcmp(e->key, "private") == 0, "member %s", e->key);
	json_free(v);
	buf_free(&b);
	timeline_free(&tl);
}
END_TEST

START_TEST(test_names_equal)
{
	struct presence		 a = { PRESENCE_BUSY, PRESENCE_ACT_MEETING,
				    10, 20 };
	struct presence		 b = { PRESENCE_BUSY, PRESENCE_ACT_MEETING,
				    5, 50 };
	enum presence_oof_state	 st;

	ck_assert(presence_equal(&a, &b));
	b.activity = PRESENCE_ACT_TENTATIVE;
	ck_assert(!presence_equal(&a, &b));
	b.activity = PRESENCE_ACT_MEETING;
	b.state = PRESENCE_AWAY;
	ck_assert(!presence_equal(&a, &b));

	ck_assert_str_eq(presence_state_name(PRESENCE_UNKNOWN), "unknown");
	ck_assert_str_eq(presence_state_name(PRESENCE_AVAILABLE),
	    "available");
	ck_assert_str_eq(presence_state_name(PRESENCE_BUSY), "busy");
	ck_assert_str_eq(presence_state_name(PRESENCE_AWAY), "away");
	ck_assert_str_eq(presence_state_name(PRESENCE_STATE_MAX), "unknown");
	ck_assert_ptr_null(presence_activity_name(PRESENCE_ACT_NONE));
	ck_assert_str_eq(presence_activity_name(PRESENCE_ACT_MEETING),
	    "meeting");
	ck_assert_str_eq(presence_activity_name(PRESENCE_ACT_OUT_OF_OFFICE),
	    "out-of-office");
	ck_assert_str_eq(presence_activity_name(
	    PRESENCE_ACT_WORKING_ELSEWHERE), "working-elsewhere");
	ck_assert_str_eq(presence_activity_name(PRESENCE_ACT_TENTATIVE),
	    "tentative");

	ck_assert_int_eq(presence_oof_state_parse("Scheduled", 9, &st), 0);
	ck_assert_int_eq(st, PRESENCE_OOF_SCHEDULED);
	ck_assert_int_eq(presence_oof_state_parse("Enabled", 7, &st), 0);
	ck_assert_int_eq(st, PRESENCE_OOF_ENABLED);
	ck_assert_int_eq(presence_oof_state_parse("Enable", 6, &st), -1);
	ck_assert_str_eq(presence_oof_state_name(PRESENCE_OOF_DISABLED),
	    "Disabled");
}
END_TEST

START_TEST(test_presence_json)
{
	struct presence		 p = { PRESENCE_BUSY, PRESENCE_ACT_MEETING,
				    AT(10, 0), AT(11, 30) };
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;

	json_writer_init(&w, &b);
	presence_json(&p, &w);
	ck_assert_str_eq(buf_str(&b), "{\"state\":\"busy\",\"activity\":"
	    "\"meeting\",\"since\":\"2026-11-30T10:00:00Z\",\"until\":"
	    "\"2026-11-30T11:30:00Z\"}");
	buf_reset(&b);
	p = (struct presence){ PRESENCE_AVAILABLE, PRESENCE_ACT_NONE,
	    PRESENCE_NO_SINCE, PRESENCE_NO_UNTIL };
	json_writer_init(&w, &b);
	presence_json(&p, &w);
	ck_assert_str_eq(buf_str(&b), "{\"state\":\"available\","
	    "\"activity\":null,\"since\":null,\"until\":null}");
	buf_free(&b);
}
END_TEST

/* Rule values a key does not allow fall back to the default. */
START_TEST(test_rules_sanitised)
{
	struct presence_rules	 r;
	struct timeline_item	 it[] = { TENT(AT(10, 0), AT(11, 0)) };
	struct timeline		 tl;
	struct presence		 p;

	presence_rules_default(&r);
	r.tentative = CONF_SHOW_IGNORE;		/* not allowed: busy */
	r.oof = CONF_SHOW_AVAILABLE;		/* not allowed: away */
	timeline_init(&tl);
	timeline_build(&tl, it, 1, D, DAY, DAY);
	presence_compute(&tl, NULL, AT(10, 0), &r, &p);
	ck_assert_int_eq(p.state, PRESENCE_BUSY);
	ck_assert_int_eq(p.activity, PRESENCE_ACT_TENTATIVE);
	presence_compute(&tl, &(struct presence_oof){ PRESENCE_OOF_ENABLED,
	    0, 0 }, AT(10, 0), &r, &p);
	ck_assert_int_eq(p.state, PRESENCE_AWAY);
	timeline_free(&tl);
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("presence");
	TCase	*tc = tcase_create("core");
	int	 n = (int)(sizeof(cases) / sizeof(cases[0]));

	tcase_add_loop_test(tc, test_table, 0, n);
	tcase_add_loop_test(tc, test_table_consistent, 0, n);
	tcase_add_test(tc, test_dst_local_zone);
	tcase_add_test(tc, test_many_entries);
	tcase_add_test(tc, test_private_dump);
	tcase_add_test(tc, test_names_equal);
	tcase_add_test(tc, test_rules_sanitised);
	tcase_add_test(tc, test_presence_json);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
