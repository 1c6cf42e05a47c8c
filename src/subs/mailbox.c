/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Per-mailbox state machine.  Input handlers (answers, timers, calls
 * from the layer above) decide which state comes next; set_state() is
 * the only place that assigns it, logs the change and runs the entry
 * actions.  mailbox.h lists the transitions.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ewsgw/sink.h>

#include "base/backoff.h"
#include "base/conf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "ews/calendar.h"
#include "ews/ews_parse.h"
#include "ews/soap.h"
#include "io/ews.h"
#include "io/throttle.h"
#include "presence/boundary.h"
#include "presence/presence.h"
#include "presence/timeline.h"
#include "subs/env.h"
#include "graph/graph_error.h"
#include "graph/graph_sub.h"
#include "subs/graphread.h"
#include "subs/mailbox.h"

/* A refused mailbox is tried again this rarely. */
#define PARK_RETRY_MS		(60 * 60 * 1000)
#define RETRY_BASE_MS		1000
#define FIRST_RESYNC_MIN_MS	60000
/* Longest error code kept (Exchange's ResponseCode names are shorter). */
#define ERROR_MAX		63

/* Why a calendar read runs: the source of what it publishes. */
enum mailbox_source {
	SOURCE_STARTUP,		/* first read after the first Subscribe */
	SOURCE_RESUBSCRIBE,	/* first read after a new subscription */
	SOURCE_CALENDAR,	/* a calendar notification */
	SOURCE_RESYNC,		/* periodic, or asked for */
	SOURCE_TIMER,		/* a presence boundary passed */
	SOURCE_POLL,		/* free/busy polled */
	SOURCE_OOF,		/* the automatic-replies cycle */
	SOURCE_MAX
};

static const char *const source_names[SOURCE_MAX] = {
	"startup", "resubscribe", "calendar", "resync", "timer", "poll", "oof"
};

/*
 * Whether a read for this source also asks GetUserOofSettings.  Not
 * after a calendar notification: changing automatic replies raises no
 * calendar event, so that read would only double the cost.
 */
static const bool source_reads_oof[SOURCE_MAX] = {
	[SOURCE_STARTUP] = true,
	[SOURCE_RESUBSCRIBE] = true,
	[SOURCE_RESYNC] = true,
};

/* Where a subscription is released before subscribing again. */
struct release {
	char			*anchor;	/* owned */
	char			*cookie;	/* owned or NULL */
};

/*
 * What only some mailboxes need: Graph's (its reads, the subscription's
 * renewal), EWS push's (watermark, deadline), a release and the last
 * error.  Allocated on first use (at creation on Graph) and kept until
 * the mailbox is freed; most mailboxes (EWS streaming, no error) never
 * have one.
 */
struct mailbox_side {
	struct graphread	*gr;		/* Graph's reads; NULL on EWS */
	char			*watermark;	/* push only; owned or NULL */
	char			*error;		/* last error code, owned;
						   NULL: none */
	struct release		*release;	/* owned; set while
						   unsubscribing to
						   subscribe again */
	int64_t			 push_deadline;	/* EWS push (mono) */
	int64_t			 renew_at;	/* Graph: renew the
						   subscription (mono) */
	int64_t			 sub_expires;	/* Graph: its expiry (wall s) */
};

/*
 * 100,000 of these: 232 bytes (a 240-byte malloc chunk) on x86-64;
 * check_mailbox asserts the bound.
 */
struct mailbox {
	char			*address;	/* owned, lower case */
	char			*imp_id;	/* UPN or SID; NULL: none or
						   the address */
	const struct mailbox_ctx *ctx;		/* borrowed */
	struct group		*group;		/* the layer above's link */
	char			*sub_id;	/* owned; NULL: not
						   subscribed */
	struct mailbox_side	*side;		/* owned or NULL */

	/*
	 * Its requests, each call allocated while its request is queued
	 * or in flight and freed when answered or cancelled (idle in
	 * almost every mailbox): NULL when none.  Owned.
	 */
	struct ews_call		*sub_call;	/* Subscribe / Unsubscribe */
	struct ews_call		*read_call;	/* FindItem /
						   GetUserOofSettings */

	struct calendar_read	*cal;		/* a CalendarView being read */
	struct timeline		 tl;
	struct presence_oof	 oof;
	struct presence		 pres;

	struct timerheap_entry	 boundary;	/* next presence change */
	struct timerheap_entry	 action;	/* next of the *_at below */
	int64_t			 retry_at;	/* mono ms, 0 = none */
	int64_t			 sync_at;
	int64_t			 resync_at;
	int64_t			 last_event_ms;	/* mono */
	int64_t			 window_end;	/* mono: until then a
						   notification waits for
						   the trailing read */
	uint32_t		 seq;		/* publications (a status
						   figure) */
	uint32_t		 oof_at;	/* mono s of the last automatic-
						   replies answer, 0 = none */

	uint8_t			 state;		/* enum mailbox_state */
	uint8_t			 mode;		/* enum mailbox_mode */
	uint8_t			 reason;	/* enum mailbox_reason */
	uint8_t			 idtype;
	uint8_t			 failures;	/* consecutive, for back-off */
	uint8_t			 source;	/* of the running read */
	/* Flags as bit-fields: 100,000 mailboxes. */
	bool			 has_presence:1; /* published at least
						   once */
	bool			 dirty:1;	/* read again after this one */
	bool			 have_sub_budget:1; /* counted in
						   throttle */
	bool			 stopping:1;	/* stop once Subscribe
						   (or the release)
						   answers */
	bool			 urgent:1;	/* the next Subscribe is
						   recovery (high priority) */
	bool			 online:1;	/* MAILBOX_BACKEND_NONE */
	/* The calls' served flags (ews.h) between their requests. */
	bool			 sub_served:1;
	bool			 read_served:1;
};

static const char *const state_names[MAILBOX_STATE_MAX] = {
	"idle", "subscribing", "syncing", "watching", "backoff", "parked",
	"unsubscribing", "stopped"
};
static const char *const status_names[MAILBOX_STATUS_MAX] = {
	"idle", "subscribing", "syncing", "streaming", "push", "polling",
	"delta", "backoff", "parked", "unsubscribing", "stopped",
	"exchange_online"
};
static const char *const mode_names[MAILBOX_MODE_MAX] = {
	"streaming", "push", "poll", "delta"
};
static const char *const reason_names[MAILBOX_WHY_MAX] = {
	"configured", "subscription budget full",
	"no streaming connection budget", "subscription refused"
};

static void	 set_state(struct mailbox *, enum mailbox_state);
static void	 read_start(struct mailbox *, enum mailbox_source,
		    enum throttle_prio);
static void	 arm_action(struct mailbox *);
static void	 publish(struct mailbox *, enum mailbox_source);
static int	 build_subscribe(struct ews_call *, struct ews_send *, void *);
static void	 subscribe_done(struct ews_call *, const struct ews_reply *,
		    void *);
static int	 build_unsubscribe(struct ews_call *, struct ews_send *,
		    void *);
static void	 unsubscribe_done(struct ews_call *, const struct ews_reply *,
		    void *);
static int	 build_calview(struct ews_call *, struct ews_send *, void *);
static void	 calview_done(struct ews_call *, const struct ews_reply *,
		    void *);
static int	 build_oof(struct ews_call *, struct ews_send *, void *);
static void	 oof_done(struct ews_call *, const struct ews_reply *, void *);
static void	 graph_done(const struct graphread_result *, void *);
static void	 graph_sub_start(struct mailbox *);
static void	 graph_renew(struct mailbox *);
static void	 graph_unsubscribed(const struct graphsub_result *, void *);

static const struct ews_call_ops subscribe_ops = {
	.op = EWS_OP_SUBSCRIBE,
	.klass = THROTTLE_SHORT,
	.build = build_subscribe,
	.done = subscribe_done,
};
static const struct ews_call_ops unsubscribe_ops = {
	.op = EWS_OP_UNSUBSCRIBE,
	.klass = THROTTLE_SHORT,
	.build = build_unsubscribe,
	.done = unsubscribe_done,
};
static const struct ews_call_ops calview_ops = {
	.op = EWS_OP_FIND_ITEM,
	.klass = THROTTLE_SHORT,
	.build = build_calview,
	.done = calview_done,
};
static const struct ews_call_ops oof_ops = {
	.op = EWS_OP_GET_USER_OOF_SETTINGS,
	.klass = THROTTLE_SHORT,
	.build = build_oof,
	.done = oof_done,
};

const char *
mailbox_state_name(enum mailbox_state s)
{
	return ((unsigned)s < MAILBOX_STATE_MAX ? state_names[s] : "?");
}

const char *
mailbox_status_name(enum mailbox_status s)
{
	return ((unsigned)s < MAILBOX_STATUS_MAX ? status_names[s] : "?");
}

const char *
mailbox_mode_name(enum mailbox_mode m)
{
	return ((unsigned)m < MAILBOX_MODE_MAX ? mode_names[m] : "?");
}

const char *
mailbox_reason_name(enum mailbox_reason r)
{
	return ((unsigned)r < MAILBOX_WHY_MAX ? reason_names[r] : "?");
}

/* Its side allocation, made on first use. */
static struct mailbox_side *
side(struct mailbox *mb)
{
	if (mb->side == NULL)
		mb->side = xcalloc(1, sizeof *mb->side);
	return (mb->side);
}

/* Graph's reads, or NULL on EWS (and for MAILBOX_BACKEND_NONE). */
static struct graphread *
graph_of(const struct mailbox *mb)
{
	return (mb->side != NULL ? mb->side->gr : NULL);
}

static struct release *
release_of(const struct mailbox *mb)
{
	return (mb->side != NULL ? mb->side->release : NULL);
}

/* No push deadline and no Graph renewal due. */
static void
clear_sub_due(struct mailbox *mb)
{
	if (mb->side == NULL)
		return;
	mb->side->push_deadline = 0;
	mb->side->renew_at = 0;
}

static void
clear_renewal(struct mailbox *mb)
{
	if (mb->side != NULL)
		mb->side->renew_at = 0;
}

static void
clear_watermark(struct mailbox *mb)
{
	if (mb->side == NULL)
		return;
	free(mb->side->watermark);
	mb->side->watermark = NULL;
}

struct mailbox *
mailbox_new(const struct mailbox_ctx *ctx, const char *address, int idtype,
    const char *imp_id, enum mailbox_backend backend)
{
	struct mailbox	*mb;

	mb = xcalloc(1, sizeof *mb);
	mb->ctx = ctx;
	mb->address = xstrdup(address);
	mb->idtype = (uint8_t)idtype;
	/* An id equal to the address (UPN impersonation's default) is
	 * not kept twice: mailbox_ident gives the address then. */
	mb->imp_id = imp_id != NULL && strcmp(imp_id, address) != 0 ?
	    xstrdup(imp_id) : NULL;
	timeline_init(&mb->tl);
	timerheap_entry_init(&mb->boundary);
	timerheap_entry_init(&mb->action);
	mb->pres.state = PRESENCE_UNKNOWN;
	mb->state = MAILBOX_IDLE;
	mb->online = backend == MAILBOX_BACKEND_NONE;
	if (backend == MAILBOX_BACKEND_GRAPH) {
		mb->mode = MAILBOX_MODE_DELTA;	/* until started */
		side(mb)->gr = graphread_new(ctx->env, mb->imp_id != NULL ?
		    mb->imp_id : mb->address, graph_done, mb);
	}
	return (mb);
}

/*
 * Queue a request on *cp (&mb->sub_call or &mb->read_call), allocating
 * the call if none is there.  What the call path learnt of the
 * mailbox's earlier requests on it (served) carries over.
 */
static void
call_submit(struct mailbox *mb, struct ews_call **cp,
    const struct ews_call_ops *ops, enum throttle_prio prio)
{
	if (*cp == NULL) {
		*cp = xmalloc(sizeof **cp);
		ews_call_init(*cp, mb->ctx->env->ews);
		(*cp)->served = cp == &mb->sub_call ? mb->sub_served :
		    mb->read_served;
	}
	ews_call_submit(*cp, ops, prio, NULL, mb);
}

/*
 * Cancel the request on *cp, if any, and free its call.  Its done
 * handler calls this first: the call path touches the call no more
 * once done returns.
 */
static void
call_end(struct mailbox *mb, struct ews_call **cp)
{
	struct ews_call	*call = *cp;

	if (call == NULL)
		return;
	*cp = NULL;
	ews_call_cancel(call);
	if (cp == &mb->sub_call)
		mb->sub_served = call->served;
	else
		mb->read_served = call->served;
	free(call);
}

static void
cal_free(struct mailbox *mb)
{
	if (mb->cal == NULL)
		return;
	calendar_read_free(mb->cal);
	free(mb->cal);
	mb->cal = NULL;
}

/* Drop the subscription id; report = tell the layer above. */
static void
drop_subscription(struct mailbox *mb, bool report)
{
	const struct mailbox_ctx	*ctx = mb->ctx;
	char				*old = mb->sub_id;

	mb->sub_id = NULL;
	if (old != NULL && report)
		ctx->hooks->subscription(mb, old, ctx->arg);
	free(old);
	clear_watermark(mb);
	if (mb->have_sub_budget) {
		throttle_subscription_release(ews_ctx_throttle(ctx->env->ews),
		    mb->address);
		mb->have_sub_budget = false;
	}
}

static void
forget_subscription(struct mailbox *mb)
{
	drop_subscription(mb, true);
}

static void
release_free(struct mailbox *mb)
{
	struct release	*r = release_of(mb);

	if (r == NULL)
		return;
	free(r->anchor);
	free(r->cookie);
	free(r);
	mb->side->release = NULL;
}

void
mailbox_free(struct mailbox *mb)
{
	const struct mailbox_ctx	*ctx = mb->ctx;

	call_end(mb, &mb->sub_call);
	call_end(mb, &mb->read_call);
	graphread_free(graph_of(mb));
	boundary_cancel(ctx->presence_timers, &mb->boundary);
	boundary_cancel(ctx->action_timers, &mb->action);
	drop_subscription(mb, false);
	release_free(mb);
	cal_free(mb);
	timeline_free(&mb->tl);
	free(mb->address);
	free(mb->imp_id);
	if (mb->side != NULL) {
		free(mb->side->error);
		free(mb->side);
	}
	free(mb);
}

/* ---- helpers ---- */

static void
header_for(const struct mailbox *mb, struct soap_ident *id,
    struct soap_header *h)
{
	const struct config	*conf = mb->ctx->env->conf;

	mailbox_ident(mb, id);
	h->version = conf->exchange.version;
	h->impersonate = id;
}

/* The error code kept, or none (code NULL); at most ERROR_MAX bytes. */
static void
set_error(struct mailbox *mb, const char *code)
{
	char	*old;

	if (code == NULL || code[0] == '\0') {
		if (mb->side == NULL)
			return;
		old = mb->side->error;
		mb->side->error = NULL;
	} else {
		old = side(mb)->error;
		mb->side->error = xstrndup(code, ERROR_MAX);
	}
	free(old);
}

static int64_t
retry_delay(struct mailbox *mb)
{
	const struct config	*conf = mb->ctx->env->conf;
	int64_t			 cap = conf->throttling.backoff_max_ms, d;
	unsigned		 n = mb->failures < 20 ? mb->failures : 20;

	d = (int64_t)RETRY_BASE_MS << (n > 0 ? n - 1 : 0);
	if (d > cap || d <= 0)
		d = cap;
	/* Full jitter, at least half of the step. */
	return (d / 2 + backoff_rng_range(mb->ctx->env->rng, 0, d / 2));
}

/* No push notification for this long: the subscription is gone. */
static int64_t
push_timeout(const struct config *conf)
{
	if (conf->push.heartbeat_timeout_ms > 0)
		return (conf->push.heartbeat_timeout_ms);
	/* Two StatusFrequency intervals, plus Exchange's slack. */
	return (2 * 60000 * (int64_t)conf->push.status_frequency + 30000);
}

static void
arm_action(struct mailbox *mb)
{
	int64_t	 t = INT64_MAX;

	if (mb->retry_at != 0 && mb->retry_at < t)
		t = mb->retry_at;
	if (mb->sync_at != 0 && mb->sync_at < t)
		t = mb->sync_at;
	if (mb->resync_at != 0 && mb->resync_at < t)
		t = mb->resync_at;
	if (mb->side != NULL && mb->side->push_deadline != 0 &&
	    mb->side->push_deadline < t)
		t = mb->side->push_deadline;
	if (mb->side != NULL && mb->side->renew_at != 0 &&
	    mb->side->renew_at < t)
		t = mb->side->renew_at;
	if (t == INT64_MAX)
		boundary_cancel(mb->ctx->action_timers, &mb->action);
	else
		boundary_schedule(mb->ctx->action_timers, &mb->action, t);
}

/* Watching through a subscription (a stream or push), not by polling. */
static bool
subscribed_mode(const struct mailbox *mb)
{
	return (mb->mode != MAILBOX_MODE_POLL);
}

/* The state a mailbox (re)starts in: Graph reads at once. */
static enum mailbox_state
start_state(const struct mailbox *mb)
{
	if (graph_of(mb) != NULL && mb->mode == MAILBOX_MODE_DELTA)
		return (MAILBOX_SYNCING);
	return (subscribed_mode(mb) ? MAILBOX_SUBSCRIBING : MAILBOX_WATCHING);
}

/* A calendar read (or Graph round) is running. */
static bool
reading(const struct mailbox *mb)
{
	return (mb->read_call != NULL ||
	    (graph_of(mb) != NULL && graphread_busy(graph_of(mb))));
}

static void
read_cancel(struct mailbox *mb)
{
	call_end(mb, &mb->read_call);
	if (graph_of(mb) != NULL)
		graphread_cancel(graph_of(mb));
}

/* ---- the single state change ---- */

static void
set_state(struct mailbox *mb, enum mailbox_state s)
{
	const struct mailbox_ctx	*ctx = mb->ctx;
	enum mailbox_state		 old = mb->state;
	int64_t				 now = time_mono_ms();

	if (old != s)
		mlog(LOG_DEBUG, mb->address, "%s -> %s",
		    mailbox_state_name(old), mailbox_state_name(s));
	mb->state = (uint8_t)s;
	switch (s) {
	case MAILBOX_IDLE:
		break;
	case MAILBOX_SUBSCRIBING:
		/* A fresh subscription for the current mode. */
		mb->retry_at = 0;
		clear_sub_due(mb);
		if (graph_of(mb) != NULL) {
			/* One a parked mailbox kept is deleted first. */
			graph_sub_start(mb);
			break;
		}
		forget_subscription(mb);
		call_end(mb, &mb->sub_call);
		call_submit(mb, &mb->sub_call, &subscribe_ops, mb->urgent ?
		    THROTTLE_PRIO_HIGH : THROTTLE_PRIO_NORMAL);
		break;
	case MAILBOX_SYNCING:
		mb->failures = 0;
		if (mb->mode == MAILBOX_MODE_PUSH && graph_of(mb) == NULL)
			side(mb)->push_deadline = now +
			    push_timeout(ctx->env->conf);
		/* Presence first for mailboxes already subscribed. */
		read_start(mb, mb->has_presence ? SOURCE_RESUBSCRIBE :
		    SOURCE_STARTUP, THROTTLE_PRIO_HIGH);
		break;
	case MAILBOX_WATCHING:
		mb->retry_at = 0;
		if (subscribed_mode(mb)) {
			mb->failures = 0;
			set_error(mb, NULL);
		} else {
			/* The poller reads it from now on. */
			forget_subscription(mb);
			mb->resync_at = 0;
			if (mb->side != NULL)
				mb->side->push_deadline = 0;
		}
		break;
	case MAILBOX_BACKOFF:
		if (mb->failures < UINT8_MAX)
			mb->failures++;
		mb->retry_at = now + retry_delay(mb);
		break;
	case MAILBOX_PARKED:
		log_emit(LOG_WARNING, &(struct log_ctx){ .mailbox =
		    mb->address, .response_code = mailbox_error(mb) },
		    "Exchange refuses this mailbox (%s); parked, next try in "
		    "%d minutes", mailbox_error(mb), PARK_RETRY_MS / 60000);
		call_end(mb, &mb->sub_call);
		/* A Graph subscription may live on: deleted at stop. */
		if (graph_of(mb) != NULL)
			graphread_sub_cancel(graph_of(mb));
		else
			forget_subscription(mb);
		clear_renewal(mb);
		mb->retry_at = now + PARK_RETRY_MS;
		break;
	case MAILBOX_UNSUBSCRIBING:
		mb->retry_at = 0;
		clear_sub_due(mb);
		call_end(mb, &mb->sub_call);
		if (graph_of(mb) != NULL) {
			graphread_sub_cancel(graph_of(mb));
			graphread_unsubscribe(graph_of(mb), mb->sub_id,
			    graph_unsubscribed);
		} else
			call_submit(mb, &mb->sub_call, &unsubscribe_ops,
			    THROTTLE_PRIO_HIGH);
		break;
	case MAILBOX_STOPPED:
		read_cancel(mb);
		if (graph_of(mb) != NULL)
			graphread_sub_cancel(graph_of(mb));
		call_end(mb, &mb->sub_call);
		boundary_cancel(ctx->presence_timers, &mb->boundary);
		forget_subscription(mb);
		cal_free(mb);
		mb->retry_at = mb->sync_at = mb->resync_at = 0;
		clear_sub_due(mb);
		break;
	default:
		break;
	}
	arm_action(mb);
	if (old != s)
		ctx->hooks->state(mb, old, ctx->arg);
}

/* ---- Subscribe ---- */

static int
build_subscribe(struct ews_call *call, struct ews_send *s, void *arg)
{
	struct mailbox		*mb = arg;
	const struct config	*conf = mb->ctx->env->conf;
	struct soap_ident	 id;
	struct soap_header	 h;
	int			 r;

	header_for(mb, &id, &h);
	if (mb->mode == MAILBOX_MODE_PUSH) {
		r = soap_subscribe_push(&s->body, &h, SOAP_EV_CALENDAR,
		    mb->ctx->push_url, conf->push.status_frequency, NULL);
		s->secret = true;	/* the URL holds the token */
	} else
		r = soap_subscribe_streaming(&s->body, &h, SOAP_EV_CALENDAR);
	if (r == -1) {
		mlog(LOG_ERR, mb->address, "cannot build Subscribe");
		return (-1);
	}
	mb->ctx->hooks->affinity(mb, &s->anchor, &s->cookie, mb->ctx->arg);
	s->tag = mb->address;
	return (0);
}

static void
subscribe_done(struct ews_call *call, const struct ews_reply *r, void *arg)
{
	struct mailbox		*mb = arg;
	const struct mailbox_ctx *ctx = mb->ctx;
	struct ews_subscribe	 sr;
	char			*cause = NULL;

	call_end(mb, &mb->sub_call);
	if (mb->state != MAILBOX_SUBSCRIBING)
		return;
	memset(&sr, 0, sizeof sr);
	if (mb->stopping) {
		/* Stopped while the server made it: release it again. */
		if (r->action == EWS_ACT_OK && r->http->body != NULL &&
		    ews_parse_subscribe(r->http->body, r->http->body_len, &sr,
		    &cause) == 0 && sr.subscription_id != NULL &&
		    mb->mode == MAILBOX_MODE_STREAMING) {
			mb->sub_id = sr.subscription_id;
			sr.subscription_id = NULL;
			if (r->http->cookie_backend != NULL)
				ctx->hooks->cookie(mb, r->http->cookie_backend,
				    ctx->arg);
			ews_subscribe_free(&sr);
			set_state(mb, MAILBOX_UNSUBSCRIBING);
			return;
		}
		free(cause);
		ews_subscribe_free(&sr);
		set_state(mb, MAILBOX_STOPPED);
		return;
	}
	if (r->action == EWS_ACT_OK && (r->http->body == NULL ||
	    ews_parse_subscribe(r->http->body, r->http->body_len, &sr,
	    &cause) == -1 || sr.subscription_id == NULL)) {
		mlog(LOG_WARNING, mb->address, "Subscribe: unusable answer: %s",
		    cause != NULL ? cause : "no SubscriptionId");
		free(cause);
		ews_subscribe_free(&sr);
		set_error(mb, "BadResponse");
		set_state(mb, MAILBOX_BACKOFF);
		return;
	}
	if (r->action != EWS_ACT_OK) {
		ews_subscribe_free(&sr);
		if (strcmp(r->code, "ErrorExceededSubscriptionCount") == 0) {
			mlog(LOG_WARNING, mb->address, "subscription budget "
			    "exhausted on the server; polling instead");
			ctx->hooks->refused(mb, ctx->arg);
			return;
		}
		set_error(mb, r->code);
		if (mailbox_move_code(r->code) && ctx->hooks->moving != NULL)
			ctx->hooks->moving(mb, r->code, ctx->arg);
		set_state(mb, r->action == EWS_ACT_PARK ? MAILBOX_PARKED :
		    MAILBOX_BACKOFF);
		return;
	}
	if (r->http->cookie_backend != NULL)
		ctx->hooks->cookie(mb, r->http->cookie_backend, ctx->arg);
	forget_subscription(mb);
	mb->sub_id = sr.subscription_id;
	sr.subscription_id = NULL;
	/* Kept for push only: a streaming mailbox needs no side. */
	if (sr.watermark != NULL && mb->mode == MAILBOX_MODE_PUSH) {
		side(mb)->watermark = sr.watermark;
		sr.watermark = NULL;
	}
	ews_subscribe_free(&sr);
	if (throttle_subscription_acquire(ews_ctx_throttle(ctx->env->ews),
	    mb->address) == 0)
		mb->have_sub_budget = true;
	ctx->hooks->subscription(mb, NULL, ctx->arg);
	set_state(mb, MAILBOX_SYNCING);
}

/* ---- Unsubscribe ---- */

static int
build_unsubscribe(struct ews_call *call, struct ews_send *s, void *arg)
{
	struct mailbox		*mb = arg;
	struct soap_ident	 id;
	struct soap_header	 h;

	if (mb->sub_id == NULL)
		return (-1);
	header_for(mb, &id, &h);
	if (soap_unsubscribe(&s->body, &h, mb->sub_id) == -1)
		return (-1);
	mb->ctx->hooks->affinity(mb, &s->anchor, &s->cookie, mb->ctx->arg);
	if (release_of(mb) != NULL) {
		/* Where it was made, not where it goes. */
		s->anchor = mb->side->release->anchor;
		s->cookie = mb->side->release->cookie;
	}
	s->tag = mb->address;
	return (0);
}

/*
 * Answered, refused or never sent: the subscription is released; a
 * new one follows unless the mailbox was stopped meanwhile.
 */
static void
unsubscribe_done(struct ews_call *call, const struct ews_reply *r, void *arg)
{
	struct mailbox	*mb = arg;

	call_end(mb, &mb->sub_call);
	if (release_of(mb) != NULL) {
		release_free(mb);
		if (!mb->stopping) {
			set_state(mb, MAILBOX_SUBSCRIBING);
			return;
		}
	}
	set_state(mb, MAILBOX_STOPPED);
}

/* ---- calendar read: CalendarView in pages, then automatic replies ---- */

static int
build_calview(struct ews_call *call, struct ews_send *s, void *arg)
{
	struct mailbox		*mb = arg;
	const struct config	*conf = mb->ctx->env->conf;
	struct soap_ident	 id;
	struct soap_header	 h;
	int64_t			 now = time_wall_ms() / 1000, start;

	/* The window's start; a later page's own (after the first answer). */
	start = now - conf->presence.lookback_ms / 1000;
	if (mb->cal != NULL)
		start = calendar_read_from(mb->cal, start);
	header_for(mb, &id, &h);
	if (soap_find_calendar_view(&s->body, &h, start,
	    now + conf->presence.horizon_ms / 1000,
	    conf->throttling.find_count_limit) == -1)
		return (-1);
	s->anchor = mb->address;
	s->tag = mb->address;
	return (0);
}

int
mailbox_oof_build(const struct mailbox *mb, struct ews_send *s)
{
	struct soap_ident	 id;
	struct soap_header	 h;

	header_for(mb, &id, &h);
	if (soap_get_user_oof_settings(&s->body, &h, mb->address) == -1)
		return (-1);
	s->anchor = mb->address;
	s->tag = mb->address;
	return (0);
}

static int
build_oof(struct ews_call *call, struct ews_send *s, void *arg)
{
	return (mailbox_oof_build(arg, s));
}

/* The read failed: keep what we know, read again later (or park). */
static void
read_failed(struct mailbox *mb, const char *code, enum ews_action action)
{
	const struct config	*conf = mb->ctx->env->conf;
	int64_t			 now = time_mono_ms(), d;

	set_error(mb, code);
	cal_free(mb);
	if (action == EWS_ACT_PARK) {
		set_state(mb, MAILBOX_PARKED);
		return;
	}
	if (mb->failures < UINT8_MAX)
		mb->failures++;
	d = retry_delay(mb);
	mb->sync_at = now + (d > conf->throttling.backoff_max_ms ?
	    conf->throttling.backoff_max_ms : d);
	if (mb->state == MAILBOX_SYNCING)
		set_state(mb, MAILBOX_WATCHING);
	else
		arm_action(mb);
}

/* The read is complete: publish, schedule the next periodic one. */
static void
read_finished(struct mailbox *mb)
{
	const struct config	*conf = mb->ctx->env->conf;
	int64_t			 now, interval;

	mb->failures = 0;
	if (mb->side != NULL && mb->side->error != NULL &&
	    mb->state != MAILBOX_BACKOFF)
		set_error(mb, NULL);
	publish(mb, (enum mailbox_source)mb->source);
	now = time_mono_ms();
	if (graph_of(mb) != NULL && mb->sync_at == 0) {
		/* The next delta round; the first at a random phase, so
		 * that the mailboxes' rounds spread over the interval. */
		interval = conf->graph.delta_interval_ms;
		mb->sync_at = now + (mb->state == MAILBOX_SYNCING ?
		    backoff_rng_range(mb->ctx->env->rng, 1, interval) :
		    interval);
	}
	if (mb->state == MAILBOX_SYNCING)
		set_state(mb, MAILBOX_WATCHING);
	if (mb->resync_at == 0 || mb->resync_at <= now)
		mb->resync_at = now + conf->presence.resync_interval_ms;
	if (mb->dirty) {
		/* Changes came while it read: one trailing read. */
		mb->dirty = false;
		if (mb->sync_at == 0)
			mb->sync_at = mb->window_end > now ? mb->window_end :
			    now;
	}
	arm_action(mb);
}

static void
calview_done(struct ews_call *call, const struct ews_reply *r, void *arg)
{
	struct mailbox		*mb = arg;
	const struct config	*conf = mb->ctx->env->conf;
	struct ews_calendar	 cal;
	enum calendar_next	 next;
	char			*cause = NULL;

	call_end(mb, &mb->read_call);
	if (r->action != EWS_ACT_OK) {
		read_failed(mb, r->code, r->action);
		return;
	}
	memset(&cal, 0, sizeof cal);
	if (ews_parse_find_item(r->http->body, r->http->body_len, &cal,
	    &cause) == -1) {
		mlog(LOG_WARNING, mb->address, "FindItem: %s", cause);
		free(cause);
		ews_calendar_free(&cal);
		read_failed(mb, "BadResponse", EWS_ACT_TRANSIENT);
		return;
	}
	if (mb->cal == NULL) {
		mb->cal = xmalloc(sizeof *mb->cal);
		calendar_read_init(mb->cal);
	}
	next = calendar_read_add(mb->cal, &cal);
	ews_calendar_free(&cal);
	if (next == CALENDAR_MORE) {
		call_submit(mb, &mb->read_call, &calview_ops,
		    THROTTLE_PRIO_NORMAL);
		return;
	}
	if (next == CALENDAR_TRUNCATED)
		mlog(LOG_NOTICE, mb->address, "calendar has more items than "
		    "%u pages of find_count_limit (%u) in the horizon; reading "
		    "again later", CALENDAR_MAX_PAGES,
		    conf->throttling.find_count_limit);
	timeline_update(&mb->tl, mb->cal->items, mb->cal->n,
	    time_wall_ms() / 1000, conf->presence.lookback_ms / 1000,
	    conf->presence.horizon_ms / 1000);
	cal_free(mb);
	if (!source_reads_oof[mb->source]) {
		read_finished(mb);
		return;
	}
	/* A mailbox already under way goes ahead of those not yet started. */
	call_submit(mb, &mb->read_call, &oof_ops, THROTTLE_PRIO_HIGH);
}

/* What GetUserOofSettings said, taken as the mailbox's settings. */
static void
set_oof(struct mailbox *mb, const struct ews_oof *oof)
{
	mb->oof.state = (enum presence_oof_state)oof->state;
	mb->oof.start = oof->has_duration ? oof->start : 0;
	mb->oof.end = oof->has_duration ? oof->end : 0;
	mb->oof_at = (uint32_t)(time_mono_ms() / 1000);
	if (mb->oof_at == 0)
		mb->oof_at = 1;
}

static void
oof_done(struct ews_call *call, const struct ews_reply *r, void *arg)
{
	struct mailbox		*mb = arg;
	struct ews_oof		 oof;
	char			*cause = NULL;

	call_end(mb, &mb->read_call);
	if (r->action != EWS_ACT_OK) {
		read_failed(mb, r->code, r->action);
		return;
	}
	memset(&oof, 0, sizeof oof);
	if (ews_parse_oof(r->http->body, r->http->body_len, &oof,
	    &cause) == -1) {
		mlog(LOG_WARNING, mb->address, "GetUserOofSettings: %s", cause);
		free(cause);
		ews_oof_free(&oof);
		read_failed(mb, "BadResponse", EWS_ACT_TRANSIENT);
		return;
	}
	set_oof(mb, &oof);
	ews_oof_free(&oof);
	read_finished(mb);
}

/*
 * What parks a Graph mailbox: 403 (the app may not read it: access
 * policy, rights) and no mailbox for the user in Exchange Online (on
 * premises again, unlicensed: the manager asks Autodiscover where).
 */
static bool
graph_parks(enum graph_action a)
{
	return (a == GRAPH_ACT_DENIED || a == GRAPH_ACT_NOT_FOUND);
}

/*
 * The mailbox's error for a Graph failure of a read or subscription:
 * 403 as Exchange's refusal, anything else as it came.
 */
static const char *
graph_error_code(enum graph_action a, const char *code)
{
	return (a == GRAPH_ACT_DENIED ? "ErrorAccessDenied" : code);
}

/*
 * A Graph read answered: its window into the timeline, its automatic
 * replies into the out-of-office state, as the EWS reads do.
 */
static void
graph_done(const struct graphread_result *r, void *arg)
{
	struct mailbox		*mb = arg;
	const struct config	*conf = mb->ctx->env->conf;

	if (r->code != NULL) {
		read_failed(mb, graph_error_code(r->action, r->code),
		    graph_parks(r->action) ? EWS_ACT_PARK : EWS_ACT_TRANSIENT);
		return;
	}
	if (r->calendar)
		timeline_update(&mb->tl, r->items, r->nitems,
		    time_wall_ms() / 1000, conf->presence.lookback_ms / 1000,
		    conf->presence.horizon_ms / 1000);
	if (r->oof != NULL)
		set_oof(mb, r->oof);
	read_finished(mb);
}

/*
 * What a Graph mailbox reads for a source.  With notifications there
 * are no delta rounds: the first read and the periodic one (which
 * also catches automatic replies, which notify nothing) read all.
 */
static enum graphread_kind
graph_kind(const struct mailbox *mb, enum mailbox_source source)
{
	bool	 push = mb->mode == MAILBOX_MODE_PUSH;

	switch (source) {
	case SOURCE_STARTUP:
	case SOURCE_RESUBSCRIBE:
	case SOURCE_POLL:
		return (push ? GRAPHREAD_FULL : GRAPHREAD_ROUND);
	default:
		return (source_reads_oof[source] ? GRAPHREAD_FULL :
		    GRAPHREAD_CALENDAR);
	}
}

/* Read the calendar now, or right after the read already running. */
static void
read_start(struct mailbox *mb, enum mailbox_source source,
    enum throttle_prio prio)
{
	if (reading(mb)) {
		mb->dirty = true;
		return;
	}
	mb->sync_at = 0;
	mb->source = (uint8_t)source;
	/* Changes within debounce of this read wait for one more. */
	if (source == SOURCE_CALENDAR)
		mb->window_end = time_mono_ms() +
		    mb->ctx->env->conf->presence.debounce_ms;
	cal_free(mb);
	if (graph_of(mb) != NULL)
		graphread_start(graph_of(mb), graph_kind(mb, source));
	else
		call_submit(mb, &mb->read_call, &calview_ops, prio);
	arm_action(mb);
}

/* ---- presence ---- */

static void
publish(struct mailbox *mb, enum mailbox_source source)
{
	const struct mailbox_ctx	*ctx = mb->ctx;
	struct presence			 p;
	struct ewsgw_presence_change	 ch;
	int64_t				 now = time_wall_ms() / 1000;

	presence_compute(&mb->tl, &mb->oof, now, ctx->rules, &p);
	if (p.until != PRESENCE_NO_UNTIL)
		boundary_schedule(ctx->presence_timers, &mb->boundary,
		    p.until * 1000);
	else
		boundary_cancel(ctx->presence_timers, &mb->boundary);
	if (mb->has_presence && presence_equal(&p, &mb->pres)) {
		/* Same state; keep the original since, track the new until. */
		mb->pres.until = p.until;
		return;
	}
	presence_change(&p, &mb->pres, &ch);
	ch.mailbox = mb->address;
	ch.source = source_names[source];
	/* ch.seq is numbered by the publisher (the hook), not here. */
	mb->seq++;
	mb->pres = p;
	mb->has_presence = true;
	ctx->hooks->publish(mb, &ch, ctx->arg);
}

void
mailbox_presence_timer(struct timerheap_entry *e, void *arg)
{
	struct mailbox	*mb = timerheap_owner(e, struct mailbox, boundary);

	if (mb->state == MAILBOX_STOPPED)
		return;
	publish(mb, SOURCE_TIMER);
}

void
mailbox_recompute(struct mailbox *mb)
{
	if (mb->state == MAILBOX_STOPPED || !mb->has_presence)
		return;
	publish(mb, SOURCE_TIMER);
}

/* ---- inputs ---- */

void
mailbox_start(struct mailbox *mb)
{
	const struct config	*conf = mb->ctx->env->conf;
	int64_t			 spread;

	if (mb->state != MAILBOX_IDLE || mb->online)
		return;
	/* Stagger periodic re-reads over the interval. */
	spread = conf->presence.resync_interval_ms;
	if (spread < FIRST_RESYNC_MIN_MS)
		spread = FIRST_RESYNC_MIN_MS;
	mb->resync_at = time_mono_ms() + spread / 2 +
	    backoff_rng_range(mb->ctx->env->rng, 0, spread / 2);
	mb->urgent = false;
	/* The manager's context is complete by now. */
	if (graph_of(mb) != NULL)
		mb->mode = mb->ctx->graph_url != NULL ? MAILBOX_MODE_PUSH :
		    MAILBOX_MODE_DELTA;
	set_state(mb, start_state(mb));
}

void
mailbox_set_mode(struct mailbox *mb, enum mailbox_mode mode,
    enum mailbox_reason why)
{
	enum mailbox_mode	 old = mb->mode;

	mb->reason = (uint8_t)why;
	if (old == mode && mb->state != MAILBOX_IDLE)
		return;
	mb->mode = (uint8_t)mode;
	if (mb->state == MAILBOX_IDLE || mb->state == MAILBOX_STOPPED ||
	    mb->state == MAILBOX_UNSUBSCRIBING)
		return;
	mlog(LOG_NOTICE, mb->address, "mode %s -> %s (%s)",
	    mailbox_mode_name(old), mailbox_mode_name(mode),
	    mailbox_reason_name(why));
	call_end(mb, &mb->sub_call);
	mb->urgent = false;
	set_state(mb, subscribed_mode(mb) ? MAILBOX_SUBSCRIBING :
	    MAILBOX_WATCHING);
}

void
mailbox_events(struct mailbox *mb, const struct ews_event *ev, size_t n)
{
	const struct config	*conf = mb->ctx->env->conf;
	size_t			 i;
	bool			 calendar = false;

	mb->last_event_ms = time_mono_ms();
	if (mb->mode == MAILBOX_MODE_PUSH && mb->side != NULL &&
	    mb->side->push_deadline != 0)
		mb->side->push_deadline = mb->last_event_ms +
		    push_timeout(conf);
	/* Graph's notifications carry no EWS events: a change. */
	calendar = ev == NULL && graph_of(mb) != NULL;
	for (i = 0; i < n; i++) {
		if (ev[i].type == EWS_EV_STATUS)
			continue;
		calendar = true;
		if (ev[i].watermark != NULL && mb->mode == MAILBOX_MODE_PUSH) {
			free(side(mb)->watermark);
			mb->side->watermark = xstrdup(ev[i].watermark);
		}
	}
	if (!calendar) {
		arm_action(mb);
		return;
	}
	mb->ctx->hooks->count(mb, MAILBOX_COUNT_NOTIFICATION, mb->ctx->arg);
	/*
	 * The first change of a burst is read at once (leading edge); the
	 * changes that come while that read runs or within debounce of its
	 * start are read once more, together, at the end of the window
	 * (trailing edge).
	 */
	if (reading(mb))
		mb->dirty = true;
	else if (mb->sync_at != 0 && graph_of(mb) == NULL)
		;			/* a read is due already */
	else if (mb->last_event_ms >= mb->window_end &&
	    (mb->state == MAILBOX_WATCHING || mb->state == MAILBOX_SYNCING))
		read_start(mb, SOURCE_CALENDAR, THROTTLE_PRIO_NORMAL);
	else
		mb->sync_at = mb->window_end > mb->last_event_ms ?
		    mb->window_end : mb->last_event_ms;
	arm_action(mb);
}

/* ---- Graph subscriptions ---- */

/* When to renew: 75% into its life or 6 h before the end, jittered. */
static void
graph_renew_plan(struct mailbox *mb, int64_t expires)
{
	int64_t	 now = time_wall_ms() / 1000, life, at, early;

	mb->side->sub_expires = expires;
	life = expires - now;
	if (life < 2)
		life = 2;
	at = life * 3 / 4;
	if (life - 6 * 3600 < at)
		at = life - 6 * 3600;
	if (at < life / 2)
		at = life / 2;
	/* Up to a tenth earlier, so that renewals spread out. */
	early = backoff_rng_range(mb->ctx->env->rng, 0, at / 10);
	mb->side->renew_at = time_mono_ms() + (at - early) * 1000;
}

static void
graph_subscribed(const struct graphsub_result *r, void *arg)
{
	struct mailbox		*mb = arg;
	const struct mailbox_ctx *ctx = mb->ctx;

	if (mb->state != MAILBOX_SUBSCRIBING)
		return;
	if (mb->stopping) {
		/* Stopped while the server made it: delete it again. */
		if (r->code == NULL) {
			forget_subscription(mb);
			mb->sub_id = xstrdup(r->id);
			set_state(mb, MAILBOX_UNSUBSCRIBING);
		} else
			set_state(mb, MAILBOX_STOPPED);
		return;
	}
	if (r->code != NULL) {
		mlog(LOG_WARNING, mb->address, "Graph subscription refused: "
		    "%s", r->code);
		set_error(mb, graph_error_code(r->action, r->code));
		set_state(mb, graph_parks(r->action) ? MAILBOX_PARKED :
		    MAILBOX_BACKOFF);
		return;
	}
	forget_subscription(mb);
	mb->sub_id = xstrdup(r->id);
	graph_renew_plan(mb, r->expires);
	ctx->hooks->subscription(mb, NULL, ctx->arg);
	set_state(mb, MAILBOX_SYNCING);
}

static void	 graph_old_deleted(const struct graphsub_result *, void *);

/*
 * Subscribe afresh.  A subscription still held (a parked mailbox keeps
 * its own) is deleted first: forgotten, it would send notifications
 * until it expires.
 */
static void
graph_sub_start(struct mailbox *mb)
{
	const struct mailbox_ctx *ctx = mb->ctx;
	const struct config	*conf = ctx->env->conf;
	int64_t			 now = time_wall_ms() / 1000, exp;

	graphread_sub_cancel(graph_of(mb));
	if (mb->sub_id != NULL) {
		graphread_unsubscribe(graph_of(mb), mb->sub_id,
		    graph_old_deleted);
		return;
	}
	exp = now + conf->graph.subscription_lifetime_ms / 1000;
	if (exp > graph_sub_max_expiry(now))
		exp = graph_sub_max_expiry(now);
	graphread_subscribe(graph_of(mb), ctx->graph_url, ctx->graph_lc_url,
	    ctx->client_state, exp, graph_subscribed);
}

/*
 * The old subscription deleted (or unknown to the server): the new one
 * is made.  A throttled or failed delete backs off and is tried again;
 * one refused for good is forgotten (it ends when it expires).
 */
static void
graph_old_deleted(const struct graphsub_result *r, void *arg)
{
	struct mailbox	*mb = arg;

	if (mb->state != MAILBOX_SUBSCRIBING)
		return;
	if (r->code != NULL && !mb->stopping &&
	    (r->action == GRAPH_ACT_THROTTLED ||
	    r->action == GRAPH_ACT_AUTH || r->action == GRAPH_ACT_TRANSIENT)) {
		mlog(LOG_NOTICE, mb->address, "old Graph subscription not "
		    "deleted (%s); trying again", r->code);
		set_error(mb, r->code);
		set_state(mb, MAILBOX_BACKOFF);
		return;
	}
	if (r->code != NULL)
		mlog(LOG_NOTICE, mb->address, "old Graph subscription not "
		    "deleted (%s); it ends when it expires", r->code);
	forget_subscription(mb);
	if (mb->stopping)
		set_state(mb, MAILBOX_STOPPED);
	else
		graph_sub_start(mb);
}

static void
graph_renewed(const struct graphsub_result *r, void *arg)
{
	struct mailbox	*mb = arg;
	int64_t		 now = time_wall_ms() / 1000;

	if (mb->sub_id == NULL || (mb->state != MAILBOX_WATCHING &&
	    mb->state != MAILBOX_SYNCING))
		return;
	if (r->code == NULL) {
		mb->failures = 0;
		graph_renew_plan(mb, r->expires);
		arm_action(mb);
		return;
	}
	if (r->action == GRAPH_ACT_NOT_FOUND || mb->side->sub_expires <= now) {
		mailbox_subscription_lost(mb, "SubscriptionNotFound", true);
		return;
	}
	mlog(LOG_NOTICE, mb->address, "Graph subscription renewal failed "
	    "(%s); trying again", r->code);
	if (mb->failures < UINT8_MAX)
		mb->failures++;
	mb->side->renew_at = time_mono_ms() + retry_delay(mb);
	arm_action(mb);
}

/* Deleted, refused or never sent: the mailbox has stopped either way. */
static void
graph_unsubscribed(const struct graphsub_result *r, void *arg)
{
	struct mailbox	*mb = arg;

	if (r->code != NULL)
		mlog(LOG_NOTICE, mb->address, "Graph subscription not "
		    "deleted (%s); it ends when it expires", r->code);
	set_state(mb, MAILBOX_STOPPED);
}

static void
graph_renew(struct mailbox *mb)
{
	const struct config	*conf = mb->ctx->env->conf;
	int64_t			 now = time_wall_ms() / 1000, exp;

	mb->side->renew_at = 0;
	exp = now + conf->graph.subscription_lifetime_ms / 1000;
	if (exp > graph_sub_max_expiry(now))
		exp = graph_sub_max_expiry(now);
	graphread_renew(graph_of(mb), mb->sub_id, exp, graph_renewed);
}

void
mailbox_graph_notify(struct mailbox *mb, int kind)
{
	if (graph_of(mb) == NULL || (mb->state != MAILBOX_WATCHING &&
	    mb->state != MAILBOX_SYNCING))
		return;
	switch (kind) {
	case GRAPH_NOTIF_CHANGE:
		mailbox_events(mb, NULL, 0);
		break;
	case GRAPH_NOTIF_MISSED:
		mlog(LOG_NOTICE, mb->address, "Graph missed notifications; "
		    "reading again");
		read_start(mb, SOURCE_RESYNC, THROTTLE_PRIO_HIGH);
		break;
	case GRAPH_NOTIF_REMOVED:
		mailbox_subscription_lost(mb, "subscriptionRemoved", true);
		break;
	case GRAPH_NOTIF_REAUTHORIZE:
		if (!graphread_sub_busy(graph_of(mb)))
			graph_renew(mb);
		break;
	default:
		mlog(LOG_INFO, mb->address, "Graph lifecycle event ignored");
		break;
	}
}

void
mailbox_subscription_lost(struct mailbox *mb, const char *code,
    bool missed_events)
{
	if (mb->state == MAILBOX_UNSUBSCRIBING || mb->state == MAILBOX_STOPPED)
		return;
	log_emit(LOG_NOTICE, &(struct log_ctx){ .mailbox = mb->address,
	    .response_code = code }, "subscription lost (%s)%s; subscribing "
	    "again", code, missed_events ? ", events missed" : "");
	set_error(mb, code);
	mb->ctx->hooks->count(mb, MAILBOX_COUNT_RESUBSCRIBE, mb->ctx->arg);
	if (!subscribed_mode(mb)) {
		forget_subscription(mb);
		return;
	}
	/*
	 * A move ends the mailbox's subscriptions and, once it is done,
	 * its group's cookie routes to the server it left: subscribe it
	 * where its own address routes, placed again once located.
	 */
	if ((mailbox_move_code(code) || strcmp(code,
	    "ErrorSubscriptionNotFound") == 0) &&
	    mb->ctx->hooks->moving != NULL)
		mb->ctx->hooks->moving(mb, code, mb->ctx->arg);
	/* Gone on the server: nothing to delete. */
	forget_subscription(mb);
	mb->urgent = true;
	set_state(mb, MAILBOX_SUBSCRIBING);
}

bool
mailbox_move_code(const char *code)
{
	return (code != NULL && (strcmp(code, "ErrorMailboxMoveInProgress") ==
	    0 || strcmp(code, "ErrorMailboxStoreUnavailable") == 0 ||
	    ews_classify(code) == EWS_ACT_REDISCOVER));
}

void
mailbox_resubscribe(struct mailbox *mb, const char *why, const char *anchor,
    const char *cookie)
{
	if (!subscribed_mode(mb) || mb->state == MAILBOX_IDLE ||
	    mb->state == MAILBOX_UNSUBSCRIBING ||
	    mb->state == MAILBOX_STOPPED || mb->state == MAILBOX_PARKED ||
	    mb->stopping)
		return;
	mlog(LOG_NOTICE, mb->address, "subscribing again: %s", why);
	mb->ctx->hooks->count(mb, MAILBOX_COUNT_RESUBSCRIBE, mb->ctx->arg);
	mb->urgent = true;
	if (mb->sub_id != NULL && mb->mode == MAILBOX_MODE_STREAMING &&
	    anchor != NULL && mb->state != MAILBOX_SUBSCRIBING) {
		release_free(mb);
		side(mb)->release = xcalloc(1, sizeof *mb->side->release);
		mb->side->release->anchor = xstrdup(anchor);
		mb->side->release->cookie = cookie != NULL ?
		    xstrdup(cookie) : NULL;
		set_state(mb, MAILBOX_UNSUBSCRIBING);
		return;
	}
	set_state(mb, MAILBOX_SUBSCRIBING);
}

void
mailbox_resync(struct mailbox *mb)
{
	if (mb->state == MAILBOX_STOPPED ||
	    mb->state == MAILBOX_UNSUBSCRIBING || mb->online)
		return;
	if (!subscribed_mode(mb)) {
		mb->sync_at = time_mono_ms();
		arm_action(mb);
		return;
	}
	read_start(mb, SOURCE_RESYNC, THROTTLE_PRIO_HIGH);
}

void
mailbox_carry_presence(struct mailbox *mb, const struct mailbox *from)
{
	if (mb->state != MAILBOX_IDLE || mb->has_presence ||
	    !from->has_presence)
		return;
	mb->pres = from->pres;
	mb->has_presence = true;
}

void
mailbox_poll_result(struct mailbox *mb, const struct ews_fb_event *ev,
    size_t n, const char *code)
{
	const struct config	*conf = mb->ctx->env->conf;
	struct timeline_item	*items;

	if (code != NULL) {
		set_error(mb, code);
		if (ews_classify(code) == EWS_ACT_PARK)
			set_state(mb, MAILBOX_PARKED);
		return;
	}
	set_error(mb, NULL);
	items = calendar_from_freebusy(ev, n);
	timeline_update(&mb->tl, items, n, time_wall_ms() / 1000,
	    conf->presence.lookback_ms / 1000,
	    conf->presence.horizon_ms / 1000);
	free(items);
	publish(mb, SOURCE_POLL);
}

void
mailbox_oof_result(struct mailbox *mb, const struct ews_oof *oof,
    const char *code)
{
	if (mb->state != MAILBOX_WATCHING)
		return;		/* read elsewhere, or not watched now */
	if (oof == NULL) {
		if (ews_classify(code) == EWS_ACT_PARK) {
			set_error(mb, code);
			set_state(mb, MAILBOX_PARKED);
		}
		return;		/* the next cycle reads it again */
	}
	set_oof(mb, oof);
	/* Before the calendar is known (first read or poll to come), the
	 * settings wait for it. */
	if (mb->has_presence)
		publish(mb, SOURCE_OOF);
}

int64_t
mailbox_oof_read_at(const struct mailbox *mb)
{
	return ((int64_t)mb->oof_at * 1000);
}

void
mailbox_stop(struct mailbox *mb)
{
	if (mb->state == MAILBOX_UNSUBSCRIBING && release_of(mb) != NULL) {
		mb->stopping = true;	/* stopped once released */
		return;
	}
	if (mb->state == MAILBOX_UNSUBSCRIBING ||
	    mb->state == MAILBOX_STOPPED || mb->stopping)
		return;
	read_cancel(mb);
	boundary_cancel(mb->ctx->presence_timers, &mb->boundary);
	/*
	 * A Subscribe on the wire may already have made a subscription on
	 * the server: wait for its answer and release that, or it would
	 * count against the account until it expires.
	 */
	if (mb->state == MAILBOX_SUBSCRIBING &&
	    ((mb->sub_call != NULL && ews_call_request(mb->sub_call) !=
	    NULL) || (graph_of(mb) != NULL &&
	    graphread_sub_busy(graph_of(mb))))) {
		mb->stopping = true;
		return;
	}
	call_end(mb, &mb->sub_call);
	/*
	 * EWS push subscriptions end when the listener answers Unsubscribe;
	 * Graph's are deleted.
	 */
	if (mb->sub_id == NULL || (mb->mode != MAILBOX_MODE_STREAMING &&
	    graph_of(mb) == NULL))
		set_state(mb, MAILBOX_STOPPED);
	else
		set_state(mb, MAILBOX_UNSUBSCRIBING);
}

void
mailbox_action_timer(struct timerheap_entry *e, void *arg)
{
	struct mailbox	*mb = timerheap_owner(e, struct mailbox, action);
	int64_t		 now = time_mono_ms();
	bool		 watching;

	if (mb->retry_at != 0 && mb->retry_at <= now) {
		mb->retry_at = 0;
		if (mb->state == MAILBOX_BACKOFF ||
		    mb->state == MAILBOX_PARKED) {
			mb->urgent = true;
			set_state(mb, start_state(mb));
		}
	}
	if (graph_of(mb) != NULL && mb->side->renew_at != 0 &&
	    mb->side->renew_at <= now && mb->sub_id != NULL &&
	    !graphread_sub_busy(graph_of(mb)) &&
	    (mb->state == MAILBOX_WATCHING || mb->state == MAILBOX_SYNCING))
		graph_renew(mb);
	if (mb->side != NULL && mb->side->push_deadline != 0 &&
	    mb->side->push_deadline <= now) {
		mb->side->push_deadline = 0;
		if (mb->mode == MAILBOX_MODE_PUSH &&
		    (mb->state == MAILBOX_WATCHING ||
		    mb->state == MAILBOX_SYNCING)) {
			mlog(LOG_NOTICE, mb->address, "no push notification "
			    "for two status intervals; subscribing again");
			mailbox_subscription_lost(mb, "PushTimeout", false);
		}
	}
	watching = mb->state == MAILBOX_WATCHING;
	if (mb->sync_at != 0 && mb->sync_at <= now) {
		mb->sync_at = 0;
		if (watching && graph_of(mb) != NULL)
			read_start(mb, SOURCE_POLL, THROTTLE_PRIO_NORMAL);
		else if (watching && !subscribed_mode(mb))
			mb->ctx->hooks->poll(mb, mb->ctx->arg);
		else if (watching || mb->state == MAILBOX_SYNCING)
			read_start(mb, SOURCE_CALENDAR, THROTTLE_PRIO_NORMAL);
	}
	if (mb->resync_at != 0 && mb->resync_at <= now) {
		mb->resync_at = now +
		    mb->ctx->env->conf->presence.resync_interval_ms;
		if (watching && subscribed_mode(mb))
			read_start(mb, SOURCE_RESYNC, THROTTLE_PRIO_LOW);
	}
	arm_action(mb);
}

/* ---- status ---- */

void
mailbox_json(const struct mailbox *mb, struct json_writer *w, bool detail,
    int64_t connection)
{
	int64_t	 now = time_mono_ms();
	bool	 sched;

	json_obj_begin(w);
	json_kv_str(w, "address", mb->address);
	json_kv_str(w, "state", mailbox_status_name(mailbox_status(mb)));
	json_kv_str(w, "backend", graph_of(mb) != NULL ? "graph" : mb->online ?
	    "none" : "ews");
	json_kv_str(w, "mode", mb->online ? NULL :
	    mailbox_mode_name(mb->mode));
	json_kv_str(w, "reason", mb->mode == MAILBOX_MODE_POLL ||
	    mb->reason != MAILBOX_WHY_CONFIG ?
	    mailbox_reason_name(mb->reason) : NULL);
	json_kv_str(w, "presence", mb->has_presence ?
	    presence_state_name(mb->pres.state) : "unknown");
	json_kv_str(w, "activity", mb->has_presence &&
	    mb->pres.activity != PRESENCE_ACT_NONE ?
	    presence_activity_name(mb->pres.activity) : NULL);
	json_kv_time(w, "since", mb->has_presence ? mb->pres.since : 0);
	json_kv_time(w, "until", mb->has_presence ? mb->pres.until : 0);
	json_key(w, "connection");
	if (connection >= 0)
		json_int(w, connection);
	else
		json_null(w);
	json_kv_str(w, "error", mb->side != NULL ? mb->side->error : NULL);
	json_kv_time(w, "backoff_until", mb->retry_at != 0 &&
	    (mb->state == MAILBOX_BACKOFF || mb->state == MAILBOX_PARKED) ?
	    time_wall_ms() / 1000 + (mb->retry_at - now) / 1000 : 0);
	json_kv_int(w, "publications", (int64_t)mb->seq);
	if (detail) {
		json_kv_bool(w, "subscribed", mb->sub_id != NULL);
		json_kv_bool(w, "reading", reading(mb));
		if (graph_of(mb) != NULL) {
			json_key(w, "delta");
			graphread_json(graph_of(mb), w);
			json_kv_time(w, "subscription_expires",
			    mb->sub_id != NULL ? mb->side->sub_expires : 0);
		}
		json_kv_time(w, "read_due", mb->sync_at != 0 ?
		    time_wall_ms() / 1000 + (mb->sync_at - now + 999) / 1000 :
		    0);
		json_key(w, "timeline");
		timeline_json(&mb->tl, w);
		json_key(w, "oof");
		json_obj_begin(w);
		json_kv_str(w, "state", presence_oof_state_name(mb->oof.state));
		sched = mb->oof.state == PRESENCE_OOF_SCHEDULED;
		json_kv_time(w, "start", sched ? mb->oof.start : 0);
		json_kv_time(w, "end", sched ? mb->oof.end : 0);
		json_obj_end(w);
	}
	json_obj_end(w);
}

/* ---- views ---- */

enum mailbox_status
mailbox_status(const struct mailbox *mb)
{
	static const enum mailbox_status watching[MAILBOX_MODE_MAX] = {
		[MAILBOX_MODE_STREAMING] = MAILBOX_STATUS_STREAMING,
		[MAILBOX_MODE_PUSH] = MAILBOX_STATUS_PUSH,
		[MAILBOX_MODE_POLL] = MAILBOX_STATUS_POLLING,
		[MAILBOX_MODE_DELTA] = MAILBOX_STATUS_DELTA,
	};

	if (mb->online)
		return (mb->state == MAILBOX_IDLE ?
		    MAILBOX_STATUS_EXCHANGE_ONLINE : MAILBOX_STATUS_STOPPED);
	switch (mb->state) {
	case MAILBOX_IDLE:		return (MAILBOX_STATUS_IDLE);
	case MAILBOX_SUBSCRIBING:	return (MAILBOX_STATUS_SUBSCRIBING);
	case MAILBOX_SYNCING:		return (MAILBOX_STATUS_SYNCING);
	case MAILBOX_WATCHING:		return (watching[mb->mode]);
	case MAILBOX_BACKOFF:		return (MAILBOX_STATUS_BACKOFF);
	case MAILBOX_PARKED:		return (MAILBOX_STATUS_PARKED);
	case MAILBOX_UNSUBSCRIBING:	return (MAILBOX_STATUS_UNSUBSCRIBING);
	default:			return (MAILBOX_STATUS_STOPPED);
	}
}

const char *
mailbox_address(const struct mailbox *mb)
{
	return (mb->address);
}

enum mailbox_state
mailbox_state(const struct mailbox *mb)
{
	return ((enum mailbox_state)mb->state);
}

enum mailbox_mode
mailbox_mode(const struct mailbox *mb)
{
	return ((enum mailbox_mode)mb->mode);
}

enum mailbox_reason
mailbox_reason(const struct mailbox *mb)
{
	return ((enum mailbox_reason)mb->reason);
}

enum mailbox_backend
mailbox_backend(const struct mailbox *mb)
{
	if (mb->online)
		return (MAILBOX_BACKEND_NONE);
	return (graph_of(mb) != NULL ? MAILBOX_BACKEND_GRAPH :
	    MAILBOX_BACKEND_EWS);
}

const char *
mailbox_sub_id(const struct mailbox *mb)
{
	return (mb->sub_id);
}

void
mailbox_ident(const struct mailbox *mb, struct soap_ident *id)
{
	id->type = (enum conf_idtype)mb->idtype;
	id->value = mb->imp_id != NULL ? mb->imp_id : mb->address;
}

const struct presence *
mailbox_presence(const struct mailbox *mb)
{
	return (mb->has_presence ? &mb->pres : NULL);
}

const char *
mailbox_error(const struct mailbox *mb)
{
	return (mb->side != NULL && mb->side->error != NULL ?
	    mb->side->error : "");
}

struct group *
mailbox_group(const struct mailbox *mb)
{
	return (mb->group);
}

void
mailbox_set_group(struct mailbox *mb, struct group *g)
{
	mb->group = g;
}
