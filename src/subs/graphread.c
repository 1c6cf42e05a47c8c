/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * One Graph mailbox's reads: delta rounds, calendarView and automatic
 * replies, one request at a time, each page bounded.  graphread.h says
 * what a read does.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/conf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "ews/calendar.h"
#include "ews/ews_parse.h"
#include "graph/graph_cal.h"
#include "graph/graph_sub.h"
#include "io/graph_client.h"
#include "presence/timeline.h"
#include "subs/env.h"
#include "subs/graphread.h"

/* Pages of one read (GRAPH_PAGE_SIZE items each). */
#define GRAPHREAD_MAX_PAGES	50
/* A delta token's window may slide this much (and at least ...). */
#define SLIDE_MIN_S		600

enum step { STEP_NONE, STEP_DELTA, STEP_CALVIEW, STEP_OOF };

struct graphread {
	const struct subs_env	*env;		/* borrowed */
	char			*user;		/* owned */
	graphread_cb		 cb;
	void			*arg;
	struct graph_call	*call;		/* running, or NULL */
	struct graph_call	*sub_call;	/* subscribe or renew */
	graphsub_cb		 sub_cb;
	uint8_t			 step;		/* enum step */
	uint8_t			 kind;		/* enum graphread_kind */
	bool			 fresh;		/* began without a token */
	bool			 changed;	/* the round saw a change */
	bool			 resynced;	/* 410 answered once already */
	bool			 have_oof;
	unsigned		 pages;		/* of the running step */
	size_t			 skipped;	/* items not in UTC */
	char			*delta_link;	/* owned: the next round's */
	int64_t			 delta_start;	/* wall s: its window's start */
	int64_t			 round_at;	/* wall s: last round done */
	struct calendar_read	 cal;
	struct ews_oof		 oof;
	uint64_t		 rounds, rereads, resyncs;
};

static void	 step_start(struct graphread *, enum step, const char *url);
static void	 on_answer(const struct graph_result *, void *);

struct graphread *
graphread_new(const struct subs_env *env, const char *user, graphread_cb cb,
    void *arg)
{
	struct graphread	*gr;

	gr = xcalloc(1, sizeof *gr);
	gr->env = env;
	gr->user = xstrdup(user);
	gr->cb = cb;
	gr->arg = arg;
	calendar_read_init(&gr->cal);
	return (gr);
}

/* Drop what the running read collected. */
static void
collected_free(struct graphread *gr)
{
	calendar_read_free(&gr->cal);
	ews_oof_free(&gr->oof);
	memset(&gr->oof, 0, sizeof gr->oof);
	gr->have_oof = false;
	gr->skipped = 0;
	gr->step = STEP_NONE;
}

void
graphread_cancel(struct graphread *gr)
{
	if (gr->call != NULL)
		graph_call_cancel(gr->call);
	gr->call = NULL;
	collected_free(gr);
}

void
graphread_free(struct graphread *gr)
{
	if (gr == NULL)
		return;
	graphread_cancel(gr);
	graphread_sub_cancel(gr);
	free(gr->delta_link);
	free(gr->user);
	free(gr);
}

bool
graphread_busy(const struct graphread *gr)
{
	return (gr->step != STEP_NONE);
}

static void
window(const struct graphread *gr, int64_t *start, int64_t *end)
{
	const struct config	*conf = gr->env->conf;
	int64_t			 now = time_wall_ms() / 1000;

	*start = now - conf->presence.lookback_ms / 1000;
	*end = now + conf->presence.horizon_ms / 1000;
}

/*
 * A link from an answer is followed only under the configured Graph
 * URL: the request carries the bearer token.
 */
static bool
link_ok(const struct graphread *gr, const char *link)
{
	const char	*base = gr->env->conf->graph.url;
	size_t		 n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	return (strncmp(link, base, n) == 0 &&
	    (link[n] == '/' || link[n] == '?'));
}

static void
step_start(struct graphread *gr, enum step step, const char *url)
{
	struct buf	 b = BUF_INIT;
	int64_t		 start, end;

	if (gr->step != step)
		gr->pages = 0;
	gr->step = (uint8_t)step;
	if (url == NULL) {
		window(gr, &start, &end);
		if (step == STEP_OOF)
			graph_auto_replies_path(&b, gr->user);
		else
			graph_calview_path(&b, gr->user, start, end,
			    step == STEP_DELTA);
		if (step == STEP_DELTA)
			gr->delta_start = start;
		url = buf_str(&b);
	}
	gr->call = graph_call_start(gr->env->graph, &(struct graph_req){
	    .method = HTTP_GET, .url = url, .mailbox = gr->user,
	    .prefer_utc = step != STEP_OOF,
	    .page_size = step != STEP_OOF ? GRAPH_PAGE_SIZE : 0,
	    .tag = gr->user, .batchable = true }, on_answer, gr);
	buf_free(&b);
}

/* Tell the owner; gr is idle (and may be started again) by then. */
static void
finish(struct graphread *gr, const char *code, enum graph_action action)
{
	struct graphread_result	 r;
	struct calendar_read	 cal = gr->cal;
	struct ews_oof		 oof = gr->oof;
	bool			 calendar, have_oof = gr->have_oof;

	calendar = gr->kind != GRAPHREAD_ROUND || gr->fresh || gr->changed;
	if (gr->skipped > 0 && code == NULL)
		mlog(LOG_INFO, gr->user, "Graph: %zu calendar items not in "
		    "UTC skipped", gr->skipped);
	calendar_read_init(&gr->cal);
	memset(&gr->oof, 0, sizeof gr->oof);
	gr->have_oof = false;
	gr->skipped = 0;
	gr->step = STEP_NONE;
	memset(&r, 0, sizeof r);
	r.code = code;
	r.action = action;
	if (code == NULL) {
		r.calendar = calendar;
		r.items = cal.items;
		r.nitems = cal.n;
		r.oof = have_oof ? &oof : NULL;
	}
	gr->cb(&r, gr->arg);
	calendar_read_free(&cal);
	ews_oof_free(&oof);
}

void
graphread_start(struct graphread *gr, enum graphread_kind kind)
{
	const struct config	*conf = gr->env->conf;
	int64_t			 slide, start, end;

	if (graphread_busy(gr))
		return;
	gr->kind = (uint8_t)kind;
	gr->changed = gr->resynced = false;
	if (kind != GRAPHREAD_ROUND) {
		step_start(gr, STEP_CALVIEW, NULL);
		return;
	}
	/* The token covers the window it began with: not for ever. */
	slide = conf->presence.horizon_ms / 1000 / 24;
	if (slide < SLIDE_MIN_S)
		slide = SLIDE_MIN_S;
	window(gr, &start, &end);
	if (gr->delta_link != NULL && start - gr->delta_start > slide) {
		free(gr->delta_link);
		gr->delta_link = NULL;
	}
	gr->fresh = gr->delta_link == NULL;
	step_start(gr, STEP_DELTA, gr->delta_link);
}

/* The step after a calendar step's last page. */
static void
next_step(struct graphread *gr)
{
	if (gr->step == STEP_DELTA) {
		gr->rounds++;
		gr->round_at = time_wall_ms() / 1000;
		if (!gr->fresh && gr->changed) {
			gr->rereads++;
			step_start(gr, STEP_CALVIEW, NULL);
			return;
		}
	}
	if (gr->kind == GRAPHREAD_CALENDAR) {
		finish(gr, NULL, GRAPH_ACT_OK);
		return;
	}
	step_start(gr, STEP_OOF, NULL);
}

/* One calendarView or delta page. */
static void
on_page(struct graphread *gr, const struct graph_result *res)
{
	struct graph_page	 pg;
	struct ews_calendar	 cal;
	char			*cause = NULL;
	bool			 keep;

	if (graph_parse_calview(res->body, res->body_len, &pg, &cause) == -1) {
		mlog(LOG_WARNING, gr->user, "Graph calendar page: %s", cause);
		free(cause);
		graph_page_free(&pg);
		finish(gr, "BadResponse", GRAPH_ACT_TRANSIENT);
		return;
	}
	gr->pages++;
	gr->skipped += pg.nskipped;
	keep = gr->step == STEP_CALVIEW || gr->fresh;
	if (gr->step == STEP_DELTA && (pg.nitems > 0 || pg.nremoved > 0))
		gr->changed = true;
	if (keep) {
		memset(&cal, 0, sizeof cal);
		cal.items = pg.items;
		cal.nitems = pg.nitems;
		cal.includes_last = true;
		(void)calendar_read_add(&gr->cal, &cal);
	}
	if ((pg.next_link != NULL && !link_ok(gr, pg.next_link)) ||
	    (pg.delta_link != NULL && !link_ok(gr, pg.delta_link))) {
		mlog(LOG_WARNING, gr->user, "Graph calendar page: a link "
		    "outside the configured Graph URL; not followed");
		graph_page_free(&pg);
		finish(gr, "BadResponse", GRAPH_ACT_TRANSIENT);
		return;
	}
	if (pg.next_link != NULL && gr->pages < GRAPHREAD_MAX_PAGES) {
		step_start(gr, (enum step)gr->step, pg.next_link);
		graph_page_free(&pg);
		return;
	}
	if (pg.next_link != NULL) {
		mlog(LOG_NOTICE, gr->user, "Graph calendar has more than %d "
		    "pages in the window; what was read is used",
		    GRAPHREAD_MAX_PAGES);
		if (gr->step == STEP_DELTA) {
			/* No token for a round not read to its end. */
			free(gr->delta_link);
			gr->delta_link = NULL;
		}
	} else if (gr->step == STEP_DELTA) {
		free(gr->delta_link);
		gr->delta_link = pg.delta_link;
		pg.delta_link = NULL;
	}
	graph_page_free(&pg);
	next_step(gr);
}

static void
on_oof(struct graphread *gr, const struct graph_result *res)
{
	char	*cause = NULL;

	if (graph_parse_auto_replies(res->body, res->body_len, &gr->oof,
	    &cause) == -1) {
		mlog(LOG_WARNING, gr->user, "Graph automatic replies: %s",
		    cause);
		free(cause);
		finish(gr, "BadResponse", GRAPH_ACT_TRANSIENT);
		return;
	}
	gr->have_oof = true;
	finish(gr, NULL, GRAPH_ACT_OK);
}

static void
on_answer(const struct graph_result *res, void *arg)
{
	struct graphread	*gr = arg;

	gr->call = NULL;		/* it ends when this returns */
	if (res->action == GRAPH_ACT_RESYNC && gr->step == STEP_DELTA &&
	    !gr->resynced) {
		/* The server forgot the token: a fresh round, once. */
		mlog(LOG_INFO, gr->user, "Graph delta token refused (%s); "
		    "reading the window afresh", res->code);
		free(gr->delta_link);
		gr->delta_link = NULL;
		gr->resynced = gr->fresh = true;
		gr->resyncs++;
		calendar_read_free(&gr->cal);
		step_start(gr, STEP_DELTA, NULL);
		return;
	}
	if (res->action != GRAPH_ACT_OK) {
		finish(gr, res->code != NULL && res->code[0] != '\0' ?
		    res->code : graph_action_name(res->action), res->action);
		return;
	}
	if (res->body == NULL) {
		finish(gr, "BadResponse", GRAPH_ACT_TRANSIENT);
		return;
	}
	if (gr->step == STEP_OOF)
		on_oof(gr, res);
	else
		on_page(gr, res);
}

/* ---- the subscription ---- */

static void
on_sub(const struct graph_result *res, void *arg)
{
	struct graphread		*gr = arg;
	struct graph_subscription	 sub;
	struct graphsub_result		 r;
	char				*cause = NULL;

	gr->sub_call = NULL;		/* it ends when this returns */
	memset(&r, 0, sizeof r);
	memset(&sub, 0, sizeof sub);
	if (res->action != GRAPH_ACT_OK) {
		r.code = res->code != NULL && res->code[0] != '\0' ?
		    res->code : graph_action_name(res->action);
		r.action = res->action;
	} else if (res->body == NULL || graph_parse_subscription(res->body,
	    res->body_len, &sub, &cause) == -1) {
		mlog(LOG_WARNING, gr->user, "Graph subscription: %s",
		    cause != NULL ? cause : "no body");
		free(cause);
		r.code = "BadResponse";
		r.action = GRAPH_ACT_TRANSIENT;
	} else {
		r.id = sub.id;
		r.expires = sub.expires;
	}
	gr->sub_cb(&r, gr->arg);
	graph_subscription_free(&sub);
}

void
graphread_subscribe(struct graphread *gr, const char *url,
    const char *lc_url, const char *client_state, int64_t expires,
    graphsub_cb cb)
{
	struct buf	 b = BUF_INIT_SECRET;

	if (gr->sub_call != NULL)
		return;
	graph_sub_create_body(&b, &(struct graph_sub_req){ .user = gr->user,
	    .notification_url = url, .lifecycle_url = lc_url,
	    .client_state = client_state, .expires = expires });
	gr->sub_cb = cb;
	gr->sub_call = graph_call_start(gr->env->graph, &(struct graph_req){
	    .method = HTTP_POST, .url = "/subscriptions", .body = buf_str(&b),
	    .mailbox = gr->user, .tag = gr->user }, on_sub, gr);
	buf_free_secret(&b);
}

void
graphread_renew(struct graphread *gr, const char *id, int64_t expires,
    graphsub_cb cb)
{
	struct buf	 u = BUF_INIT, b = BUF_INIT;

	if (gr->sub_call != NULL)
		return;
	graph_sub_url(&u, "", id);
	graph_sub_renew_body(&b, expires);
	gr->sub_cb = cb;
	gr->sub_call = graph_call_start(gr->env->graph, &(struct graph_req){
	    .method = HTTP_PATCH, .url = buf_str(&u), .body = buf_str(&b),
	    .mailbox = gr->user, .tag = gr->user }, on_sub, gr);
	buf_free(&u);
	buf_free(&b);
}

static void
on_unsub(const struct graph_result *res, void *arg)
{
	struct graphread	*gr = arg;
	struct graphsub_result	 r;

	gr->sub_call = NULL;
	memset(&r, 0, sizeof r);
	if (res->action != GRAPH_ACT_OK && res->action != GRAPH_ACT_NOT_FOUND) {
		r.code = res->code != NULL && res->code[0] != '\0' ?
		    res->code : graph_action_name(res->action);
		r.action = res->action;
	}
	gr->sub_cb(&r, gr->arg);
}

void
graphread_unsubscribe(struct graphread *gr, const char *id, graphsub_cb cb)
{
	struct buf	 u = BUF_INIT;

	if (gr->sub_call != NULL)
		return;
	graph_sub_url(&u, "", id);
	gr->sub_cb = cb;
	gr->sub_call = graph_call_start(gr->env->graph, &(struct graph_req){
	    .method = HTTP_DELETE, .url = buf_str(&u), .mailbox = gr->user,
	    .tag = gr->user }, on_unsub, gr);
	buf_free(&u);
}

bool
graphread_sub_busy(const struct graphread *gr)
{
	return (gr->sub_call != NULL);
}

void
graphread_sub_cancel(struct graphread *gr)
{
	if (gr->sub_call != NULL)
		graph_call_cancel(gr->sub_call);
	gr->sub_call = NULL;
}

void
graphread_json(const struct graphread *gr, struct json_writer *w)
{
	json_obj_begin(w);
	json_kv_bool(w, "token", gr->delta_link != NULL);
	json_kv_time(w, "last_round", gr->round_at);
	json_kv_int(w, "rounds", (int64_t)gr->rounds);
	json_kv_int(w, "rereads", (int64_t)gr->rereads);
	json_kv_int(w, "resyncs", (int64_t)gr->resyncs);
	json_obj_end(w);
}
