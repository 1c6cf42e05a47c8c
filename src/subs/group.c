/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Streaming groups: one GetStreamingEvents connection for up to 200
 * subscriptions, renewed when the server closes it at ConnectionTimeout,
 * reopened when it goes silent, fails, or its membership changes.
 * Exchange queues events on a subscription while no connection is open,
 * so a reconnect loses nothing.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "base/backoff.h"
#include "base/conf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "ews/ews_parse.h"
#include "ews/soap.h"
#include "ews/stream.h"
#include "io/ews.h"
#include "subs/env.h"
#include "subs/group.h"
#include "subs/mailbox.h"
#include "subs/registry.h"

/* Wait this long for members still subscribing before (re)connecting. */
#define SETTLE_MS		2000
#define RECONNECT_BASE_MS	500
/*
 * Between closing a connection and opening its replacement: the server
 * must have seen the old one go before the same ids arrive again, or it
 * counts them on two connections.
 */
#define REOPEN_GAP_MS		250

struct group {
	unsigned		 id;
	const struct subs_env	*env;		/* borrowed */
	struct registry		*reg;		/* borrowed */
	struct mailbox		**members;	/* sorted by address */
	uint8_t			*on_stream;	/* members[i]'s id is on the
						   open connection */
	unsigned		 n, cap;
	char			*anchor;	/* owned copy of members[0] */
	char			*cookie;	/* X-BackEndOverrideCookie */
	char			*key;		/* owned; what its members share
						   (Autodiscover), NULL none */
	enum group_state	 state;
	struct ews_call		 call;
	struct stream		*parser;
	struct event		 idle_ev;	/* dead-stream detection */
	struct event		 retry_ev;	/* reconnect / settle timer */
	struct event		 eval_ev;	/* deferred evaluate() */
	struct backoff		 backoff;
	int64_t			 wait_ms;	/* how long BACKOFF lasts */
	struct throttle_outcome	 verdict;	/* what the open stream's
						   body said of the budget */
	unsigned		 streamed;	/* ids on the open connection */
	bool			 reopen;	/* membership changed */
	bool			 closed_by_server; /* ConnectionStatus Closed */
	int64_t			 opened_at;	/* wall ms */
	int64_t			 last_data_at;	/* wall ms of the last whole
						   envelope */
	uint64_t		 connects, drops;
	char			 last_error[64];
	bool			 owner_only;	/* impersonate the anchor */
	bool			 refused;	/* the server refused the
						   grouping on this stream */
	group_refused_cb	 refused_cb;
	void			*refused_arg;
};

static const char *const state_names[GROUP_STATE_MAX] = {
	"idle", "queued", "open", "backoff", "closed"
};

static void	 set_state(struct group *, enum group_state);
static void	 evaluate(struct group *);
static int	 build_gse(struct ews_call *, struct ews_send *, void *);
static void	 gse_sent(struct ews_call *, void *);
static void	 gse_done(struct ews_call *, const struct ews_reply *, void *);
static int	 on_data(const char *, size_t, void *);
static struct throttle_outcome gse_verdict(struct ews_call *, void *);

static const struct ews_call_ops gse_ops = {
	.op = EWS_OP_GET_STREAMING_EVENTS,
	.klass = THROTTLE_STREAM,
	.build = build_gse,
	.sent = gse_sent,
	.done = gse_done,
	.data = on_data,
	.verdict = gse_verdict,
};

const char *
group_state_name(enum group_state s)
{
	return ((unsigned)s < GROUP_STATE_MAX ? state_names[s] : "?");
}

static bool
streamable(const struct mailbox *mb)
{
	enum mailbox_state	 s = mailbox_state(mb);

	return (mailbox_sub_id(mb) != NULL && (s == MAILBOX_SYNCING ||
	    s == MAILBOX_WATCHING));
}

static void
set_error(struct group *g, const char *code)
{
	snprintf(g->last_error, sizeof g->last_error, "%s", code ? code : "");
}

static void
arm(struct event *ev, int64_t ms)
{
	struct timeval	 tv;

	evtimer_add(ev, time_ms_tv(&tv, ms));
}

/* ---- the single state change ---- */

/*
 * Entry actions.  Leaving OPEN (for any state) means the connection is
 * gone: no member's id is on a stream any more.
 */
static void
set_state(struct group *g, enum group_state s)
{
	enum group_state	 old = g->state;
	unsigned		 i;

	if (old != s)
		log_debug("connection %u: %s -> %s", g->id,
		    group_state_name(old), group_state_name(s));
	g->state = s;
	if (s != GROUP_OPEN) {
		evtimer_del(&g->idle_ev);
		memset(g->on_stream, 0, g->cap);
	}
	switch (s) {
	case GROUP_IDLE:
		ews_call_cancel(&g->call);
		break;
	case GROUP_QUEUED:
		ews_call_submit(&g->call, &gse_ops, THROTTLE_PRIO_NORMAL,
		    g->anchor, g);
		break;
	case GROUP_OPEN:
		g->streamed = 0;
		for (i = 0; i < g->n; i++) {
			g->on_stream[i] = streamable(g->members[i]);
			g->streamed += g->on_stream[i];
		}
		g->reopen = false;
		g->closed_by_server = false;
		g->refused = false;
		g->verdict.result = THROTTLE_OK;
		g->verdict.backoff_ms = 0;
		g->connects++;
		g->opened_at = g->last_data_at = time_wall_ms();
		stream_reset(g->parser);
		arm(&g->idle_ev, g->env->conf->throttling.idle_timeout_ms);
		break;
	case GROUP_BACKOFF:
		ews_call_cancel(&g->call);
		g->reopen = false;
		arm(&g->retry_ev, g->wait_ms);
		break;
	case GROUP_CLOSED:
		ews_call_cancel(&g->call);
		evtimer_del(&g->retry_ev);
		event_del(&g->eval_ev);
		break;
	default:
		break;
	}
}

/* Leave OPEN for BACKOFF, waiting ms before connecting again. */
static void
back_off(struct group *g, int64_t ms)
{
	g->wait_ms = ms;
	set_state(g, GROUP_BACKOFF);
}

/* ---- timers ---- */

static void
idle_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct group	*g = arg;

	if (g->state != GROUP_OPEN)
		return;
	log_notice("connection %u (anchor %s): no complete message for "
	    "%lld s; reconnecting", g->id, g->anchor,
	    (long long)g->env->conf->throttling.idle_timeout_ms / 1000);
	set_error(g, "IdleTimeout");
	g->drops++;
	back_off(g, backoff_next(&g->backoff, g->env->rng));
}

/* The settle or back-off timer ran out: connect with whoever is ready. */
static void
retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct group	*g = arg;
	unsigned	 i, ready = 0;

	if (g->state == GROUP_CLOSED)
		return;
	if (g->state == GROUP_BACKOFF)
		set_state(g, GROUP_IDLE);
	for (i = 0; i < g->n; i++)
		if (streamable(g->members[i]))
			ready++;
	if (g->state == GROUP_OPEN && g->reopen) {
		/* New subscriptions: close, open a new one shortly. */
		back_off(g, REOPEN_GAP_MS);
		return;
	}
	if (g->state == GROUP_IDLE && ready > 0)
		set_state(g, GROUP_QUEUED);
}

static void
eval_cb(evutil_socket_t fd, short ev, void *arg)
{
	evaluate(arg);
}

/* ---- stream callbacks ---- */

static void
on_notification(void *arg, const struct ews_notification *n)
{
	struct group	*g = arg;
	struct mailbox	*mb;

	mb = registry_by_subid(g->reg, n->subscription_id);
	if (mb == NULL || mailbox_group(mb) != g)
		return;		/* a subscription we already replaced */
	mailbox_events(mb, n->events, n->nevents);
}

static void
on_connection(void *arg, enum ews_conn_status st)
{
	struct group	*g = arg;

	if (st == EWS_CONN_CLOSED)
		g->closed_by_server = true;
	else if (st == EWS_CONN_OK)
		backoff_reset(&g->backoff);	/* the connection works */
}

/*
 * Whether an error naming ids is a server refusing several mailboxes'
 * subscriptions on one stream: ErrorInvalidSubscription for every
 * subscription on the stream but the anchor's own, the stream opened
 * impersonating the anchor.  A subscription that is really gone is
 * named whoever opened the stream, the anchor's too.
 */
static bool
refuses_grouping(struct group *g, const struct ews_status *s,
    char *const *ids, size_t nids)
{
	struct mailbox	*mb;
	unsigned	 i, others = 0;
	size_t		 j, named = 0;

	if (strcmp(s->code, "ErrorInvalidSubscription") !=
	    0 || g->n < 2 || !g->on_stream[0] || (!g->owner_only &&
	    g->env->conf->throttling.charging != CONF_CHARGING_IMPERSONATED))
		return (false);
	for (i = 1; i < g->n; i++)
		if (g->on_stream[i] && strcasecmp(mailbox_address(
		    g->members[i]), g->anchor) != 0)
			others++;
	for (j = 0; j < nids; j++) {
		mb = registry_by_subid(g->reg, ids[j]);
		if (mb == NULL || mailbox_group(mb) != g ||
		    mb == g->members[0] ||
		    strcasecmp(mailbox_address(mb), g->anchor) == 0)
			return (false);
		named++;
	}
	return (others > 0 && named == others);
}

static void
on_sub_error(void *arg, const struct ews_status *s, char *const *ids,
    size_t nids)
{
	struct group	*g = arg;
	struct mailbox	*mb;
	enum ews_action	 act = ews_status_action(s);
	size_t		 i;

	set_error(g, s->code);
	if (refuses_grouping(g, s, ids, nids)) {
		/* Still valid: each on a stream of its own owner. */
		g->refused = true;
		log_debug("connection %u (anchor %s): %zu subscriptions of "
		    "other mailboxes refused on its stream", g->id,
		    g->anchor, nids);
		if (g->refused_cb != NULL)
			g->refused_cb(g, g->refused_arg);
		return;
	}
	for (i = 0; i < nids; i++) {
		mb = registry_by_subid(g->reg, ids[i]);
		if (mb == NULL || mailbox_group(mb) != g)
			continue;
		/* A move ends the subscription, whatever its class. */
		if (act == EWS_ACT_RESUBSCRIBE || act == EWS_ACT_RESYNC ||
		    act == EWS_ACT_REDISCOVER || act == EWS_ACT_PARK ||
		    mailbox_move_code(s->code))
			mailbox_subscription_lost(mb, s->code,
			    act == EWS_ACT_RESYNC);
		else
			log_emit(LOG_WARNING, &(struct log_ctx){ .mailbox =
			    mailbox_address(mb), .operation =
			    "GetStreamingEvents", .response_code = s->code },
			    "stream error %s", s->code);
	}
}

/* An error for the whole connection: remember what it says of the budget. */
static void
on_error(void *arg, const struct ews_status *s)
{
	struct group	*g = arg;
	enum ews_action	 act = ews_status_action(s);

	set_error(g, s->code);
	log_emit(LOG_WARNING, &(struct log_ctx){ .operation =
	    "GetStreamingEvents", .response_code = s->code },
	    "connection %u: %s%s%s", g->id, s->code,
	    s->message ? ": " : "", s->message ? s->message : "");
	if (act == EWS_ACT_THROTTLED) {
		g->verdict.result = s->backoff_ms > 0 ? THROTTLE_BUSY :
		    THROTTLE_TRANSIENT;
		g->verdict.backoff_ms = s->backoff_ms;
	} else if (act != EWS_ACT_OK) {
		g->verdict.result = THROTTLE_TRANSIENT;
		g->verdict.backoff_ms = 0;
	}
}

static const struct stream_cb stream_callbacks = {
	.notification = on_notification,
	.connection = on_connection,
	.sub_error = on_sub_error,
	.error = on_error,
};

/*
 * Liveness counts complete envelopes (a heartbeat is one), not bytes: a
 * peer trickling an endless comment or one never-ending envelope must not
 * keep a dead stream open.
 */
static int
on_data(const char *data, size_t len, void *arg)
{
	struct group	*g = arg;
	uint64_t	 before = stream_count(g->parser);

	if (stream_feed(g->parser, data, len) == -1) {
		log_warnx("connection %u: unusable stream: %s", g->id,
		    stream_error(g->parser));
		set_error(g, "BadStream");
		return (HTTP_DATA_ABORT);
	}
	if (stream_count(g->parser) != before) {
		g->last_data_at = time_wall_ms();
		arm(&g->idle_ev, g->env->conf->throttling.idle_timeout_ms);
	}
	return (HTTP_DATA_OK);
}

/* ---- the connection: one operation, its build, sent, verdict, done ---- */

static int
build_gse(struct ews_call *call, struct ews_send *s, void *arg)
{
	struct group		*g = arg;
	const struct config	*conf = g->env->conf;
	struct soap_ident	 id;
	struct soap_header	 h;
	const char		**ids;
	unsigned		 i, n = 0;
	int			 r;

	ids = xcalloc(g->n ? g->n : 1, sizeof *ids);
	for (i = 0; i < g->n; i++)
		if (streamable(g->members[i]))
			ids[n++] = mailbox_sub_id(g->members[i]);
	if (n == 0) {
		free(ids);
		return (-1);
	}
	h.version = conf->exchange.version;
	h.impersonate = NULL;
	if (conf->throttling.charging == CONF_CHARGING_IMPERSONATED ||
	    g->owner_only) {
		/* Charged to the anchor's copy of the budget. */
		mailbox_ident(g->members[0], &id);
		h.impersonate = &id;
	}
	r = soap_get_streaming_events(&s->body, &h, ids, n,
	    conf->throttling.connection_timeout);
	free(ids);
	if (r == -1)
		return (-1);
	s->anchor = g->anchor;
	s->cookie = g->cookie;
	s->tag = g->anchor;
	s->streaming = true;
	return (0);
}

static void
gse_sent(struct ews_call *call, void *arg)
{
	set_state(arg, GROUP_OPEN);
}

static struct throttle_outcome
gse_verdict(struct ews_call *call, void *arg)
{
	struct group	*g = arg;

	return (g->verdict);
}

static void
gse_done(struct ews_call *call, const struct ews_reply *r, void *arg)
{
	struct group	*g = arg;
	unsigned	 i;

	if (r->http == NULL) {
		/* Granted, but no member is streamable any more. */
		set_state(g, GROUP_IDLE);
		return;
	}
	if (r->action == EWS_ACT_RESUBSCRIBE || r->action == EWS_ACT_RESYNC) {
		/* The server refused the whole request for its ids. */
		set_error(g, r->code);
		for (i = 0; i < g->n; i++)
			if (g->on_stream[i])
				mailbox_subscription_lost(g->members[i],
				    r->code, r->action == EWS_ACT_RESYNC);
	}
	if (r->http->result == HTTP_RESULT_OK && g->closed_by_server &&
	    g->verdict.result == THROTTLE_OK && !g->refused) {
		/* ConnectionTimeout elapsed: renew at once. */
		backoff_reset(&g->backoff);
		set_state(g, GROUP_IDLE);
		evaluate(g);
		return;
	}
	g->drops++;
	if (r->http->result != HTTP_RESULT_OK)
		set_error(g, r->code);
	/* The account's failures are the call path's to log, once. */
	log_emit(r->account ? LOG_DEBUG : LOG_INFO, &(struct log_ctx){
	    .operation = "GetStreamingEvents", .response_code =
	    g->last_error }, "connection %u (anchor %s) ended: %s; "
	    "reconnecting", g->id,
	    g->anchor, g->last_error[0] ? g->last_error : r->code);
	if (r->parsed && r->generic.status.backoff_ms > 0)
		/* Exchange said how long: the scheduler holds the budget. */
		back_off(g, r->generic.status.backoff_ms);
	else if (g->verdict.backoff_ms > 0)
		back_off(g, g->verdict.backoff_ms);
	else
		back_off(g, backoff_next(&g->backoff, g->env->rng));
}

/* ---- membership changes ---- */

/* Decide whether to connect, reconnect or wait. */
static void
evaluate(struct group *g)
{
	unsigned	 i, ready = 0, pending = 0;
	bool		 settled;

	if (g->state == GROUP_CLOSED || g->n == 0)
		return;
	for (i = 0; i < g->n; i++) {
		if (streamable(g->members[i]))
			ready++;
		else if (mailbox_state(g->members[i]) == MAILBOX_SUBSCRIBING)
			pending++;
	}
	settled = pending == 0;
	switch (g->state) {
	case GROUP_IDLE:
		if (ready == 0)
			return;
		if (!settled && !evtimer_pending(&g->retry_ev, NULL)) {
			arm(&g->retry_ev, SETTLE_MS);
			return;
		}
		if (!settled)
			return;
		set_state(g, GROUP_QUEUED);
		break;
	case GROUP_OPEN:
		if (!g->reopen)
			return;
		if (!settled && !evtimer_pending(&g->retry_ev, NULL)) {
			arm(&g->retry_ev, SETTLE_MS);
			return;
		}
		if (!settled)
			return;
		/* New subscriptions: close, open a new one shortly. */
		back_off(g, REOPEN_GAP_MS);
		break;
	case GROUP_QUEUED:
	case GROUP_BACKOFF:
	default:
		break;
	}
}

void
group_member_changed(struct group *g)
{
	unsigned	 i;

	/*
	 * A member whose subscription went is off the connection; one that
	 * just subscribed is not on it yet.
	 */
	for (i = 0; i < g->n; i++) {
		if (!streamable(g->members[i]))
			g->on_stream[i] = 0;
		else if (g->state == GROUP_OPEN && !g->on_stream[i])
			g->reopen = true;
	}
	event_active(&g->eval_ev, EV_TIMEOUT, 0);
}

struct group *
group_new(const struct subs_env *env, struct registry *reg, unsigned id)
{
	struct group	*g;

	g = xcalloc(1, sizeof *g);
	g->id = id;
	g->env = env;
	g->reg = reg;
	g->cap = env->conf->throttling.subscriptions_per_connection;
	g->members = xcalloc(g->cap, sizeof *g->members);
	g->on_stream = xcalloc(g->cap, sizeof *g->on_stream);
	g->state = GROUP_IDLE;
	ews_call_init(&g->call, env->ews);
	g->parser = stream_new(&stream_callbacks, g, STREAM_MAX_ENVELOPE);
	evtimer_assign(&g->idle_ev, env->base, idle_cb, g);
	evtimer_assign(&g->retry_ev, env->base, retry_cb, g);
	event_assign(&g->eval_ev, env->base, -1, 0, eval_cb, g);
	backoff_init(&g->backoff, RECONNECT_BASE_MS,
	    env->conf->throttling.backoff_max_ms, BACKOFF_FULL);
	return (g);
}

void
group_free(struct group *g)
{
	unsigned	 i;

	if (g == NULL)
		return;
	ews_call_cancel(&g->call);
	for (i = 0; i < g->n; i++)
		if (mailbox_group(g->members[i]) == g)
			mailbox_set_group(g->members[i], NULL);
	event_del(&g->idle_ev);
	event_del(&g->retry_ev);
	event_del(&g->eval_ev);
	stream_free(g->parser);
	free(g->members);
	free(g->on_stream);
	free(g->anchor);
	free(g->cookie);
	free(g->key);
	free(g);
}

static void
set_anchor(struct group *g)
{
	free(g->anchor);
	g->anchor = g->n > 0 ? xstrdup(mailbox_address(g->members[0])) : NULL;
}

void
group_add(struct group *g, struct mailbox *mb)
{
	unsigned	 i;

	if (g->n == g->cap)
		return;
	for (i = g->n; i > 0 && strcmp(mailbox_address(g->members[i - 1]),
	    mailbox_address(mb)) > 0; i--) {
		g->members[i] = g->members[i - 1];
		g->on_stream[i] = g->on_stream[i - 1];
	}
	g->members[i] = mb;
	g->on_stream[i] = 0;
	g->n++;
	mailbox_set_group(mb, g);
	if (i == 0)
		set_anchor(g);
}

void
group_remove(struct group *g, struct mailbox *mb)
{
	unsigned	 i;

	for (i = 0; i < g->n && g->members[i] != mb; i++)
		;
	if (i == g->n)
		return;
	memmove(&g->members[i], &g->members[i + 1],
	    (g->n - i - 1) * sizeof *g->members);
	memmove(&g->on_stream[i], &g->on_stream[i + 1], g->n - i - 1);
	g->n--;
	g->on_stream[g->n] = 0;
	mailbox_set_group(mb, NULL);
	if (i == 0)
		set_anchor(g);
	if (g->n == 0 && g->state != GROUP_CLOSED)
		set_state(g, GROUP_IDLE);
}

void
group_on_refused(struct group *g, group_refused_cb cb, void *arg)
{
	g->refused_cb = cb;
	g->refused_arg = arg;
}

void
group_set_owner_only(struct group *g, bool on)
{
	g->owner_only = on;
}

struct mailbox *
group_member(const struct group *g, unsigned i)
{
	return (i < g->n ? g->members[i] : NULL);
}

void
group_reopen(struct group *g)
{
	if (g->state != GROUP_OPEN)
		return;
	g->reopen = true;
	event_active(&g->eval_ev, EV_TIMEOUT, 0);
}

void
group_close(struct group *g)
{
	set_state(g, GROUP_CLOSED);
}

const char *
group_anchor(const struct group *g)
{
	return (g->anchor);
}

const char *
group_key(const struct group *g)
{
	return (g->key);
}

void
group_set_key(struct group *g, const char *key)
{
	free(g->key);
	g->key = key != NULL ? xstrdup(key) : NULL;
}

const char *
group_cookie(const struct group *g)
{
	return (g->cookie);
}

void
group_set_cookie(struct group *g, const char *cookie)
{
	if (g->cookie != NULL && strcmp(g->cookie, cookie) == 0)
		return;
	free(g->cookie);
	g->cookie = xstrdup(cookie);
}

unsigned
group_id(const struct group *g)
{
	return (g->id);
}

unsigned
group_size(const struct group *g)
{
	return (g->n);
}

bool
group_full(const struct group *g)
{
	return (g->n >= g->cap);
}

enum group_state
group_state(const struct group *g)
{
	return (g->state);
}

void
group_json(const struct group *g, struct json_writer *w)
{
	json_obj_begin(w);
	json_kv_int(w, "id", g->id);
	json_kv_str(w, "anchor", g->anchor);
	json_kv_int(w, "members", g->n);
	json_kv_int(w, "subscriptions", g->state == GROUP_OPEN ? g->streamed :
	    0);
	json_kv_str(w, "state", group_state_name(g->state));
	json_kv_time(w, "opened",
	    g->state == GROUP_OPEN ? g->opened_at / 1000 : 0);
	json_kv_time(w, "last_event", g->last_data_at / 1000);
	json_kv_bool(w, "affinity_cookie", g->cookie != NULL);
	json_kv_int(w, "connects", (int64_t)g->connects);
	json_kv_int(w, "drops", (int64_t)g->drops);
	json_kv_str(w, "last_error", g->last_error[0] ? g->last_error : NULL);
	json_obj_end(w);
}
