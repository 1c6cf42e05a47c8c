/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The pure presence function.  Each entry is ranked once by the rules;
 * a sweep over the entry boundaries then yields the runs of equal
 * presence, so since/until span back-to-back meetings without flicker.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <ewsgw/sink.h>

#include "base/conf.h"
#include "base/json.h"
#include "presence/presence.h"
#include "presence/timeline.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

/*
 * Ranks, lowest first.  Each rank maps to one fixed state and activity
 * under a given set of rules, so the winner at an instant is simply the
 * highest rank with a covering entry.
 */
enum rank {
	R_NONE,			/* available, none */
	R_AVAIL_WE,		/* available, working-elsewhere */
	R_AVAIL_TENT,		/* available, tentative */
	R_FREE_BUSY,		/* busy, meeting */
	R_WE,			/* busy|away, working-elsewhere */
	R_TENT_BUSY,		/* busy, tentative */
	R_BUSY,			/* busy, meeting */
	R_OOF,			/* away|busy, out-of-office */
	R_MAX
};

/* A boundary of one ranked interval. */
struct pevent {
	int64_t		 t;
	int8_t		 rank;
	int8_t		 delta;		/* +1 start, -1 end */
};

/* Entries handled without touching the heap. */
#define PRESENCE_STACK_EVENTS	128

static void	 rules_sane(const struct presence_rules *,
		    struct presence_rules *);
static enum rank item_rank(const struct timeline_span *,
		    const struct presence_rules *);
static void	 rank_result(enum rank, const struct presence_rules *,
		    struct presence *);
static enum rank winner(const unsigned *);
static int	 pevent_cmp(const void *, const void *);

static const char *const state_names[PRESENCE_STATE_MAX] = {
	[PRESENCE_UNKNOWN] = "unknown",
	[PRESENCE_AVAILABLE] = "available",
	[PRESENCE_BUSY] = "busy",
	[PRESENCE_AWAY] = "away",
};

static const char *const activity_names[PRESENCE_ACT_MAX] = {
	[PRESENCE_ACT_NONE] = NULL,
	[PRESENCE_ACT_MEETING] = "meeting",
	[PRESENCE_ACT_OUT_OF_OFFICE] = "out-of-office",
	[PRESENCE_ACT_WORKING_ELSEWHERE] = "working-elsewhere",
	[PRESENCE_ACT_TENTATIVE] = "tentative",
};

static const char *const oof_names[PRESENCE_OOF_STATE_MAX] = {
	[PRESENCE_OOF_DISABLED] = "Disabled",
	[PRESENCE_OOF_ENABLED] = "Enabled",
	[PRESENCE_OOF_SCHEDULED] = "Scheduled",
};

void
presence_rules_default(struct presence_rules *r)
{
	r->tentative = CONF_SHOW_BUSY;
	r->all_day = CONF_SHOW_AVAILABLE;
	r->working_elsewhere = CONF_SHOW_AVAILABLE;
	r->free = CONF_SHOW_AVAILABLE;
	r->oof = CONF_SHOW_AWAY;
}

void
presence_rules_from_conf(struct presence_rules *r, const struct config *conf)
{
	r->tentative = conf->presence.tentative;
	r->all_day = conf->presence.all_day;
	r->working_elsewhere = conf->presence.working_elsewhere;
	r->free = conf->presence.free;
	r->oof = conf->presence.oof;
}

/* Replace values a rule does not allow by its default. */
static void
rules_sane(const struct presence_rules *in, struct presence_rules *out)
{
	struct presence_rules	 def;

	presence_rules_default(&def);
	*out = *in;
	if (out->tentative != CONF_SHOW_BUSY &&
	    out->tentative != CONF_SHOW_AVAILABLE)
		out->tentative = def.tentative;
	if (out->all_day != CONF_SHOW_BUSY &&
	    out->all_day != CONF_SHOW_AVAILABLE &&
	    out->all_day != CONF_SHOW_IGNORE)
		out->all_day = def.all_day;
	if (out->working_elsewhere != CONF_SHOW_BUSY &&
	    out->working_elsewhere != CONF_SHOW_AVAILABLE &&
	    out->working_elsewhere != CONF_SHOW_AWAY)
		out->working_elsewhere = def.working_elsewhere;
	if (out->free != CONF_SHOW_BUSY && out->free != CONF_SHOW_AVAILABLE)
		out->free = def.free;
	if (out->oof != CONF_SHOW_AWAY && out->oof != CONF_SHOW_BUSY)
		out->oof = def.oof;
}

static enum rank
item_rank(const struct timeline_span *s, const struct presence_rules *r)
{
	enum rank	 rank;

	switch (s->status) {
	case TL_OOF:
		/* A vacation entered as an all-day OOF item always counts. */
		return (R_OOF);
	case TL_BUSY:
		rank = R_BUSY;
		break;
	case TL_TENTATIVE:
		rank = r->tentative == CONF_SHOW_BUSY ? R_TENT_BUSY :
		    R_AVAIL_TENT;
		break;
	case TL_WORKING_ELSEWHERE:
		rank = r->working_elsewhere == CONF_SHOW_AVAILABLE ?
		    R_AVAIL_WE : R_WE;
		break;
	case TL_FREE:
		rank = r->free == CONF_SHOW_BUSY ? R_FREE_BUSY : R_NONE;
		break;
	default:
		return (R_NONE);	/* NoData */
	}
	if (!s->all_day || r->all_day == CONF_SHOW_BUSY)
		return (rank);
	if (r->all_day == CONF_SHOW_IGNORE)
		return (R_NONE);
	/* all_day = available: keep only what is not more than available. */
	switch (rank) {
	case R_TENT_BUSY:
		return (R_AVAIL_TENT);
	case R_WE:
		return (R_AVAIL_WE);
	case R_AVAIL_TENT:
	case R_AVAIL_WE:
		return (rank);
	default:
		return (R_NONE);
	}
}

static void
rank_result(enum rank rank, const struct presence_rules *r,
    struct presence *p)
{
	switch (rank) {
	case R_OOF:
		p->state = r->oof == CONF_SHOW_BUSY ? PRESENCE_BUSY :
		    PRESENCE_AWAY;
		p->activity = PRESENCE_ACT_OUT_OF_OFFICE;
		break;
	case R_BUSY:
	case R_FREE_BUSY:
		p->state = PRESENCE_BUSY;
		p->activity = PRESENCE_ACT_MEETING;
		break;
	case R_TENT_BUSY:
		p->state = PRESENCE_BUSY;
		p->activity = PRESENCE_ACT_TENTATIVE;
		break;
	case R_WE:
		p->state = r->working_elsewhere == CONF_SHOW_AWAY ?
		    PRESENCE_AWAY : PRESENCE_BUSY;
		p->activity = PRESENCE_ACT_WORKING_ELSEWHERE;
		break;
	case R_AVAIL_TENT:
		p->state = PRESENCE_AVAILABLE;
		p->activity = PRESENCE_ACT_TENTATIVE;
		break;
	case R_AVAIL_WE:
		p->state = PRESENCE_AVAILABLE;
		p->activity = PRESENCE_ACT_WORKING_ELSEWHERE;
		break;
	default:
		p->state = PRESENCE_AVAILABLE;
		p->activity = PRESENCE_ACT_NONE;
		break;
	}
}

static enum rank
winner(const unsigned *count)
{
	int	 i;

	for (i = R_MAX - 1; i > R_NONE; i--) {
		if (count[i] > 0)
			return ((enum rank)i);
	}
	return (R_NONE);
}

static int
pevent_cmp(const void *a, const void *b)
{
	const struct pevent	*x = a, *y = b;

	if (x->t != y->t)
		return (x->t < y->t ? -1 : 1);
	return (0);
}

void
presence_compute(const struct timeline *tl, const struct presence_oof *oof,
    int64_t now, const struct presence_rules *rules, struct presence *out)
{
	struct pevent		 stackbuf[PRESENCE_STACK_EVENTS], *ev;
	struct presence_rules	 r;
	struct timeline_span	 s;
	struct presence		 cur, next;
	unsigned		 count[R_MAX];
	size_t			 i, j, nev = 0, max;
	enum rank		 rank;
	bool			 found = false;

	out->state = PRESENCE_UNKNOWN;
	out->activity = PRESENCE_ACT_NONE;
	out->since = PRESENCE_NO_SINCE;
	out->until = PRESENCE_NO_UNTIL;
	if (tl == NULL || !tl->loaded)
		return;
	rules_sane(rules, &r);
	memset(count, 0, sizeof(count));

	max = 2 * (size_t)tl->n + 2;
	ev = max <= PRESENCE_STACK_EVENTS ? stackbuf :
	    xreallocarray(NULL, max, sizeof(*ev));
	for (i = 0; i < tl->n; i++) {
		timeline_get(tl, i, &s);
		if ((rank = item_rank(&s, &r)) == R_NONE)
			continue;
		ev[nev++] = (struct pevent){ s.start, (int8_t)rank, 1 };
		ev[nev++] = (struct pevent){ s.end, (int8_t)rank, -1 };
	}
	if (oof != NULL && oof->state == PRESENCE_OOF_ENABLED)
		count[R_OOF]++;
	else if (oof != NULL && oof->state == PRESENCE_OOF_SCHEDULED &&
	    oof->end > oof->start) {
		ev[nev++] = (struct pevent){ oof->start, R_OOF, 1 };
		ev[nev++] = (struct pevent){ oof->end, R_OOF, -1 };
	}
	if (nev > 1)
		qsort(ev, nev, sizeof(*ev), pevent_cmp);

	/*
	 * Sweep the distinct boundary instants in order.  cur is the run
	 * in force before ev[i].t; once past now, the first change of
	 * state or activity is until.
	 */
	rank_result(winner(count), &r, &cur);
	cur.since = PRESENCE_NO_SINCE;
	cur.until = PRESENCE_NO_UNTIL;
	for (i = 0; i < nev; i = j) {
		if (!found && ev[i].t > now) {
			*out = cur;
			found = true;
		}
		for (j = i; j < nev && ev[j].t == ev[i].t; j++) {
			if (ev[j].delta > 0)
				count[ev[j].rank]++;
			else
				count[ev[j].rank]--;
		}
		rank_result(winner(count), &r, &next);
		if (presence_equal(&cur, &next))
			continue;
		if (found) {
			out->until = ev[i].t;
			break;
		}
		cur.state = next.state;
		cur.activity = next.activity;
		cur.since = ev[i].t;
	}
	if (!found)
		*out = cur;
	if (ev != stackbuf)
		free(ev);
}

void
presence_json(const struct presence *p, struct json_writer *w)
{
	json_obj_begin(w);
	json_kv_str(w, "state", presence_state_name(p->state));
	json_kv_str(w, "activity", presence_activity_name(p->activity));
	json_kv_time(w, "since", p->since);	/* PRESENCE_NO_SINCE: null */
	json_kv_time(w, "until", p->until);	/* PRESENCE_NO_UNTIL: null */
	json_obj_end(w);
}

void
presence_change(const struct presence *p, const struct presence *prev,
    struct ewsgw_presence_change *ch)
{
	memset(ch, 0, sizeof *ch);
	ch->size = sizeof *ch;
	ch->presence = presence_state_name(p->state);
	ch->previous = presence_state_name(prev->state);
	ch->activity = presence_activity_name(p->activity);
	ch->since = p->since != PRESENCE_NO_SINCE ? p->since : 0;
	ch->until = p->until != PRESENCE_NO_UNTIL ? p->until : 0;
}

bool
presence_equal(const struct presence *a, const struct presence *b)
{
	return (a->state == b->state && a->activity == b->activity);
}

const char *
presence_state_name(enum presence_state st)
{
	if ((unsigned)st >= PRESENCE_STATE_MAX)
		return (state_names[PRESENCE_UNKNOWN]);
	return (state_names[st]);
}

const char *
presence_activity_name(enum presence_activity a)
{
	if ((unsigned)a >= PRESENCE_ACT_MAX)
		return (NULL);
	return (activity_names[a]);
}

const char *
presence_oof_state_name(enum presence_oof_state st)
{
	if ((unsigned)st >= PRESENCE_OOF_STATE_MAX)
		return (oof_names[PRESENCE_OOF_DISABLED]);
	return (oof_names[st]);
}

int
presence_oof_state_parse(const char *s, size_t len,
    enum presence_oof_state *out)
{
	unsigned	 i;

	for (i = 0; i < PRESENCE_OOF_STATE_MAX; i++) {
		if (strlen(oof_names[i]) == len &&
		    memcmp(oof_names[i], s, len) == 0) {
			*out = (enum presence_oof_state)i;
			return (0);
		}
	}
	return (-1);
}
