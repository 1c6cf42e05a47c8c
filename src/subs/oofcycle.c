/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The automatic-replies cycle: GetUserOofSettings for every watched
 * mailbox in turn, within a share of the concurrency budget.
 * oofcycle.h lists the transitions; set_state() is the only place that
 * makes them.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "base/buf.h"
#include "base/conf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "ews/ews_parse.h"
#include "io/ews.h"
#include "subs/env.h"
#include "subs/mailbox.h"
#include "subs/oofcycle.h"
#include "subs/registry.h"

struct oof_slot {
	struct oofcycle	*oc;
	struct ews_call	 call;
	char		*addr;		/* owned; NULL: the slot is free */
};

struct oofcycle {
	const struct subs_env	*env;		/* borrowed */
	struct registry		*reg;		/* borrowed */
	enum oofcycle_state	 state;
	struct event		 tick;		/* pacing, next cycle */
	struct oof_slot		**slot;		/* each allocated: an ews_call
						   must not move */
	unsigned		 nslot;		/* allocated */
	unsigned		 slots;		/* in use this cycle */
	size_t			 cursor;	/* next registry index */
	int64_t			 begun;		/* mono ms of this cycle */
	int64_t			 begun_wall;	/* wall ms of this cycle */
	int64_t			 last_ms;	/* the last whole cycle, -1 */
	unsigned		 sent;		/* reads of this cycle */
	uint64_t		 cycles, reads, errors, skipped;
};

static const char *const state_names[OOFCYCLE_STATE_MAX] = {
	"off", "running", "waiting", "stopped"
};

static void	 set_state(struct oofcycle *, enum oofcycle_state);
static void	 pump(struct oofcycle *);
static int	 build(struct ews_call *, struct ews_send *, void *);
static void	 done(struct ews_call *, const struct ews_reply *, void *);

static const struct ews_call_ops oof_ops = {
	.op = EWS_OP_GET_USER_OOF_SETTINGS,
	.klass = THROTTLE_SHORT,
	.build = build,
	.done = done,
};

const char *
oofcycle_state_name(enum oofcycle_state s)
{
	return ((unsigned)s < OOFCYCLE_STATE_MAX ? state_names[s] : "?");
}

/* The share of max_concurrency, in requests, at least one; 0 is off. */
static unsigned
slots_for(const struct config *conf)
{
	unsigned	 n;

	if (conf->presence.oof_share == 0)
		return (0);
	n = conf->throttling.max_concurrency * conf->presence.oof_share / 100;
	return (n > 0 ? n : 1);
}

static void
arm_at(struct oofcycle *oc, int64_t at)
{
	struct timeval	 tv;
	int64_t		 now = time_mono_ms();

	evtimer_add(&oc->tick, time_ms_tv(&tv, at > now ? at - now : 0));
}

static void
slot_release(struct oof_slot *s)
{
	ews_call_cancel(&s->call);
	free(s->addr);
	s->addr = NULL;
}

static unsigned
busy_slots(const struct oofcycle *oc)
{
	unsigned	 i, n = 0;

	for (i = 0; i < oc->nslot; i++)
		if (oc->slot[i]->addr != NULL)
			n++;
	return (n);
}

/* Take the share's number of slots, allocating what is missing. */
static void
set_slots(struct oofcycle *oc)
{
	oc->slots = slots_for(oc->env->conf);
	while (oc->nslot < oc->slots) {
		oc->slot = xreallocarray(oc->slot, oc->nslot + 1,
		    sizeof *oc->slot);
		oc->slot[oc->nslot] = xcalloc(1, sizeof **oc->slot);
		oc->slot[oc->nslot]->oc = oc;
		ews_call_init(&oc->slot[oc->nslot]->call, oc->env->ews);
		oc->nslot++;
	}
}

/* ---- the single state change ---- */

static void
set_state(struct oofcycle *oc, enum oofcycle_state s)
{
	enum oofcycle_state	 old = oc->state;
	int64_t			 now = time_mono_ms();
	unsigned		 i;

	if (old != s)
		log_debug("automatic-replies cycle: %s -> %s",
		    oofcycle_state_name(old), oofcycle_state_name(s));
	oc->state = s;
	switch (s) {
	case OOFCYCLE_RUNNING:
		evtimer_del(&oc->tick);
		set_slots(oc);
		oc->cursor = 0;
		oc->sent = 0;
		oc->begun = now;
		oc->begun_wall = time_wall_ms();
		pump(oc);
		break;
	case OOFCYCLE_WAITING:
		/* One that read nothing (no mailbox watched yet, all read
		 * by their own reads) says nothing of the cycle time. */
		if (oc->sent > 0) {
			oc->last_ms = now - oc->begun;
			oc->cycles++;
		}
		arm_at(oc, oc->begun + oc->env->conf->presence.oof_interval_ms);
		break;
	case OOFCYCLE_OFF:
	case OOFCYCLE_STOPPED:
		evtimer_del(&oc->tick);
		for (i = 0; i < oc->nslot; i++)
			slot_release(oc->slot[i]);
		break;
	default:
		break;
	}
}

/* ---- reading ---- */

/*
 * A mailbox the cycle reads: watched, and not read since the cycle began
 * (by a resync, say; the time is whole seconds, so a read in the second
 * the cycle began in may be read again).
 */
static bool
due(const struct oofcycle *oc, const struct mailbox *mb)
{
	/* Graph mailboxes read theirs with each delta round. */
	return (mailbox_state(mb) == MAILBOX_WATCHING &&
	    mailbox_backend(mb) == MAILBOX_BACKEND_EWS &&
	    mailbox_oof_read_at(mb) < oc->begun);
}

static struct oof_slot *
free_slot(struct oofcycle *oc)
{
	unsigned	 i;

	for (i = 0; i < oc->slots && i < oc->nslot; i++)
		if (oc->slot[i]->addr == NULL)
			return (oc->slot[i]);
	return (NULL);
}

/*
 * Start the reads that are due while a slot is free: the i-th mailbox of
 * n not before begun + i * oof_interval / n.  Ends the cycle when every
 * mailbox is behind the cursor and every read has come back.
 */
static void
pump(struct oofcycle *oc)
{
	const struct config	*conf = oc->env->conf;
	size_t			 n = registry_count(oc->reg);
	int64_t			 now = time_mono_ms(), at;
	struct oof_slot		*s;
	struct mailbox		*mb;

	if (oc->state != OOFCYCLE_RUNNING)
		return;
	while (oc->cursor < n) {
		mb = registry_at(oc->reg, oc->cursor);
		if (!due(oc, mb)) {
			oc->cursor++;
			oc->skipped++;
			continue;
		}
		if ((s = free_slot(oc)) == NULL)
			return;		/* an answer pumps again */
		at = oc->begun +
		    (int64_t)((double)conf->presence.oof_interval_ms *
		    (double)oc->cursor / (double)n);
		if (at > now) {
			arm_at(oc, at);
			return;
		}
		oc->cursor++;
		oc->sent++;
		s->addr = xstrdup(mailbox_address(mb));
		ews_call_submit(&s->call, &oof_ops, THROTTLE_PRIO_NORMAL,
		    NULL, s);
	}
	if (busy_slots(oc) == 0)
		set_state(oc, OOFCYCLE_WAITING);
}

static int
build(struct ews_call *call, struct ews_send *snd, void *arg)
{
	struct oof_slot		*s = arg;
	struct mailbox		*mb;

	/* Gone, or no longer watched, while it waited for its slot. */
	if ((mb = registry_find(s->oc->reg, s->addr)) == NULL ||
	    mailbox_state(mb) != MAILBOX_WATCHING)
		return (-1);
	if (mailbox_oof_build(mb, snd) == -1)
		return (-1);
	/* The slot's copy: the mailbox may go (reload) before the answer. */
	snd->anchor = s->addr;
	snd->tag = s->addr;
	return (0);
}

static void
done(struct ews_call *call, const struct ews_reply *r, void *arg)
{
	struct oof_slot		*s = arg;
	struct oofcycle		*oc = s->oc;
	struct mailbox		*mb;
	struct ews_oof		 oof;
	char			*cause = NULL;

	mb = registry_find(oc->reg, s->addr);
	if (strcmp(r->code, "NotSent") != 0)
		oc->reads++;
	memset(&oof, 0, sizeof oof);
	if (strcmp(r->code, "NotSent") == 0)
		;			/* not watched any more */
	else if (r->action != EWS_ACT_OK || r->http == NULL) {
		oc->errors++;
		if (mb != NULL)
			mailbox_oof_result(mb, NULL, r->code);
	} else if (ews_parse_oof(r->http->body, r->http->body_len, &oof,
	    &cause) == -1) {
		oc->errors++;
		log_emit(LOG_WARNING, &(struct log_ctx){ .mailbox = s->addr,
		    .operation = "GetUserOofSettings" }, "unusable answer: %s",
		    cause);
		free(cause);
	} else if (mb != NULL)
		mailbox_oof_result(mb, &oof, NULL);
	ews_oof_free(&oof);
	free(s->addr);
	s->addr = NULL;
	pump(oc);
}

/* ---- timers and inputs ---- */

void
oofcycle_tick(struct oofcycle *oc)
{
	if (oc->state == OOFCYCLE_WAITING)
		set_state(oc, OOFCYCLE_RUNNING);
	else
		pump(oc);
}

static void
tick_cb(evutil_socket_t fd, short ev, void *arg)
{
	oofcycle_tick(arg);
}

struct oofcycle *
oofcycle_new(const struct subs_env *env, struct registry *reg)
{
	struct oofcycle	*oc;

	oc = xcalloc(1, sizeof *oc);
	oc->env = env;
	oc->reg = reg;
	oc->state = OOFCYCLE_OFF;
	oc->last_ms = -1;
	evtimer_assign(&oc->tick, env->base, tick_cb, oc);
	return (oc);
}

void
oofcycle_free(struct oofcycle *oc)
{
	unsigned	 i;

	if (oc == NULL)
		return;
	for (i = 0; i < oc->nslot; i++) {
		slot_release(oc->slot[i]);
		free(oc->slot[i]);
	}
	free(oc->slot);
	event_del(&oc->tick);
	free(oc);
}

void
oofcycle_start(struct oofcycle *oc)
{
	if (oc->state == OOFCYCLE_OFF && slots_for(oc->env->conf) > 0)
		set_state(oc, OOFCYCLE_RUNNING);
}

void
oofcycle_reload(struct oofcycle *oc)
{
	switch (oc->state) {
	case OOFCYCLE_OFF:
		oofcycle_start(oc);
		break;
	case OOFCYCLE_RUNNING:
	case OOFCYCLE_WAITING:
		if (slots_for(oc->env->conf) == 0) {
			set_state(oc, OOFCYCLE_OFF);
			break;
		}
		/* The new share and interval count from now on. */
		set_slots(oc);
		if (oc->state == OOFCYCLE_WAITING)
			arm_at(oc, oc->begun +
			    oc->env->conf->presence.oof_interval_ms);
		else
			pump(oc);
		break;
	default:
		break;
	}
}

void
oofcycle_stop(struct oofcycle *oc)
{
	set_state(oc, OOFCYCLE_STOPPED);
}

/* ---- views ---- */

enum oofcycle_state
oofcycle_state(const struct oofcycle *oc)
{
	return (oc->state);
}

unsigned
oofcycle_slots(const struct oofcycle *oc)
{
	return (oc->state == OOFCYCLE_RUNNING ||
	    oc->state == OOFCYCLE_WAITING ? oc->slots : 0);
}

int64_t
oofcycle_last_ms(const struct oofcycle *oc)
{
	return (oc->last_ms);
}

void
oofcycle_json(const struct oofcycle *oc, struct json_writer *w)
{
	const struct config	*conf = oc->env->conf;

	json_obj_begin(w);
	json_kv_str(w, "state", oofcycle_state_name(oc->state));
	json_kv_int(w, "share_percent", conf->presence.oof_share);
	json_kv_int(w, "slots", oofcycle_slots(oc));
	json_kv_int(w, "concurrency_limit", conf->throttling.max_concurrency);
	json_kv_int(w, "interval_s", conf->presence.oof_interval_ms / 1000);
	json_key(w, "cycle_s");
	if (oc->last_ms >= 0)
		json_double(w, (double)oc->last_ms / 1000.0);
	else
		json_null(w);
	json_kv_time(w, "cycle_started", oc->state == OOFCYCLE_RUNNING ?
	    oc->begun_wall / 1000 : 0);
	json_kv_int(w, "position", (int64_t)oc->cursor);
	json_kv_int(w, "mailboxes", (int64_t)registry_count(oc->reg));
	json_kv_int(w, "in_flight", busy_slots(oc));
	json_kv_int(w, "cycles", (int64_t)oc->cycles);
	json_kv_int(w, "reads", (int64_t)oc->reads);
	json_kv_int(w, "errors", (int64_t)oc->errors);
	json_kv_int(w, "skipped", (int64_t)oc->skipped);
	json_obj_end(w);
}

void
oofcycle_metrics(const struct oofcycle *oc, struct buf *b)
{
	buf_printf(b, "# HELP ewsgw_oof_cycle_seconds Duration of the last "
	    "complete automatic-replies cycle over all mailboxes.\n"
	    "# TYPE ewsgw_oof_cycle_seconds gauge\n"
	    "ewsgw_oof_cycle_seconds %.3f\n",
	    oc->last_ms >= 0 ? (double)oc->last_ms / 1000.0 : 0.0);
	buf_printf(b, "# HELP ewsgw_oof_slots Automatic-replies reads the "
	    "cycle may have in flight (its share of max_concurrency).\n"
	    "# TYPE ewsgw_oof_slots gauge\newsgw_oof_slots %u\n",
	    oofcycle_slots(oc));
	buf_printf(b, "# HELP ewsgw_oof_cycles_total Automatic-replies "
	    "cycles completed.\n# TYPE ewsgw_oof_cycles_total counter\n"
	    "ewsgw_oof_cycles_total %llu\n", (unsigned long long)oc->cycles);
	buf_printf(b, "# HELP ewsgw_oof_reads_total GetUserOofSettings "
	    "requests of the cycle.\n# TYPE ewsgw_oof_reads_total counter\n"
	    "ewsgw_oof_reads_total %llu\n", (unsigned long long)oc->reads);
	buf_printf(b, "# HELP ewsgw_oof_read_errors_total Cycle reads that "
	    "failed.\n# TYPE ewsgw_oof_read_errors_total counter\n"
	    "ewsgw_oof_read_errors_total %llu\n",
	    (unsigned long long)oc->errors);
}
