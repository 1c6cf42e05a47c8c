/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The fake clock and EWS call path of subs_fake.h.  A call's state lives
 * in its own ticket, as in the real ews.c: queued, granted or idle.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "subs_fake.h"
#include "base/backoff.h"

#include "base/buf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "proto_test.h"

/* Monday 2026-11-30T08:00:00Z. */
#define FAKE_EPOCH_MS	INT64_C(1796025600000)

int64_t			 fake_mono;
int64_t			 fake_wall;
unsigned		 fake_submits;
unsigned		 fake_cancels;
struct throttle_outcome	 fake_verdict;
static struct throttle	*fake_thr;

void
fake_setup(void)
{
	struct throttle_limits	 lim;

	fake_mono = 1000000;
	fake_wall = FAKE_EPOCH_MS;
	fake_submits = fake_cancels = 0;
	memset(&fake_verdict, 0, sizeof fake_verdict);
	throttle_limits_default(&lim);
	fake_thr = throttle_new(&lim);
}

void
fake_teardown(void)
{
	throttle_free(fake_thr);
	fake_thr = NULL;
}

struct config *
fake_env_setup(struct subs_env *env, const char *text)
{
	static struct backoff_rng	 rng;
	struct config			*conf;
	char				*errors = NULL;

	fake_setup();
	conf = conf_load_buffer("test.conf", text, strlen(text), &errors);
	ck_assert_msg(conf != NULL, "%s", errors);
	backoff_rng_seed(&rng, 7);
	memset(env, 0, sizeof *env);
	env->base = event_base_new();
	env->conf = conf;
	env->rng = &rng;
	return (conf);
}

void
fake_env_teardown(struct subs_env *env, struct config *conf)
{
	event_base_free(env->base);
	conf_free(conf);
	memset(env, 0, sizeof *env);
	fake_teardown();
}

int64_t
time_mono_ms(void)
{
	return (fake_mono);
}

int64_t
time_wall_ms(void)
{
	return (fake_wall);
}

struct throttle *
ews_ctx_throttle(struct ews_ctx *c)
{
	return (fake_thr);
}

void
ews_call_init(struct ews_call *call, struct ews_ctx *c)
{
	memset(call, 0, sizeof *call);
	call->ctx = c;
}

bool
ews_call_busy(const struct ews_call *call)
{
	return (call->ticket.state != THROTTLE_TICKET_IDLE);
}

void
ews_call_submit(struct ews_call *call, const struct ews_call_ops *ops,
    enum throttle_prio prio, const char *anchor, void *arg)
{
	/* As throttle_submit: a ticket is submitted only when idle. */
	ck_assert_msg(!ews_call_busy(call), "%s submitted while busy",
	    ews_op_name(ops->op));
	call->ops = ops;
	call->arg = arg;
	call->ticket.state = THROTTLE_TICKET_QUEUED;
	call->ticket.prio = (uint8_t)prio;
	fake_submits++;
}

/* On the wire once granted: a request that stands for it (never read). */
struct http_request *
ews_call_request(const struct ews_call *call)
{
	static char	 on_the_wire;

	return (call->ticket.state == THROTTLE_TICKET_GRANTED ?
	    (struct http_request *)(void *)&on_the_wire : NULL);
}

void
ews_call_cancel(struct ews_call *call)
{
	if (!ews_call_busy(call))
		return;
	call->ticket.state = THROTTLE_TICKET_IDLE;
	fake_cancels++;
}

bool
fake_queued(const struct ews_call *call, enum ews_op op)
{
	return (call != NULL && call->ticket.state == THROTTLE_TICKET_QUEUED &&
	    call->ops->op == op);
}

bool
fake_sent(const struct ews_call *call)
{
	return (call != NULL && call->ticket.state == THROTTLE_TICKET_GRANTED);
}

enum throttle_prio
fake_prio(const struct ews_call *call)
{
	ck_assert_ptr_nonnull(call);
	return ((enum throttle_prio)call->ticket.prio);
}

int
fake_grant(struct ews_call *call, char **body)
{
	struct ews_send		 s;
	struct ews_reply	 r;

	ck_assert_ptr_nonnull(call);
	ck_assert_int_eq(call->ticket.state, THROTTLE_TICKET_QUEUED);
	memset(&s, 0, sizeof s);
	call->ticket.state = THROTTLE_TICKET_GRANTED;
	if (call->ops->build(call, &s, call->arg) == -1) {
		buf_free(&s.body);
		call->ticket.state = THROTTLE_TICKET_IDLE;
		memset(&r, 0, sizeof r);
		r.op = call->ops->op;
		r.code = "NotSent";
		r.action = EWS_ACT_FATAL;
		call->ops->done(call, &r, call->arg);
		return (-1);
	}
	if (body != NULL)
		*body = xstrdup(buf_str(&s.body));
	buf_free(&s.body);
	if (call->ops->sent != NULL)
		call->ops->sent(call, call->arg);
	return (0);
}

void
fake_answer(struct ews_call *call, const struct fake_answer *a)
{
	struct http_response	 h;
	struct ews_reply	 r;

	ck_assert_msg(fake_sent(call), "answer to a call not sent");
	call->ticket.state = THROTTLE_TICKET_IDLE;
	memset(&h, 0, sizeof h);
	h.result = a->result;
	h.status = a->status;
	h.body = a->body;
	h.body_len = a->body != NULL ? strlen(a->body) : 0;
	h.cookie_backend = a->cookie;
	memset(&r, 0, sizeof r);
	r.op = call->ops->op;
	r.http = &h;
	if (a->code != NULL) {
		r.code = a->code;
		r.action = ews_classify(r.code);
	} else if (a->result == HTTP_RESULT_OK) {
		r.code = "NoError";
		r.action = EWS_ACT_OK;
	} else {
		/* A transport failure, classified as ews.c does. */
		r.code = http_result_name(a->result);
		r.action = a->result == HTTP_RESULT_AUTH ? EWS_ACT_AUTH :
		    a->result == HTTP_RESULT_FATAL ? EWS_ACT_FATAL :
		    EWS_ACT_TRANSIENT;
	}
	if (a->backoff_ms > 0) {
		r.parsed = true;
		snprintf(r.generic.status.code, sizeof r.generic.status.code,
		    "%s", r.code);
		r.generic.status.backoff_ms = a->backoff_ms;
	}
	if (call->ops->verdict != NULL)
		fake_verdict = call->ops->verdict(call, call->arg);
	call->ops->done(call, &r, call->arg);
}

void
fake_ok(struct ews_call *call, const char *fixture)
{
	struct fake_answer	 a = { HTTP_RESULT_OK, 200, NULL, NULL, NULL,
	    0 };
	char			*body = fake_fixture(fixture);

	ck_assert_int_eq(fake_grant(call, NULL), 0);
	a.body = body;
	fake_answer(call, &a);
	free(body);
}

void
fake_error(struct ews_call *call, const char *code)
{
	struct fake_answer	 a = { HTTP_RESULT_OK, 200, NULL, NULL, NULL,
	    0 };

	ck_assert_int_eq(fake_grant(call, NULL), 0);
	a.code = code;
	fake_answer(call, &a);
}

/* ---- the Graph reads ---- */

struct graphread *
graphread_new(const struct subs_env *env, const char *user, graphread_cb cb,
    void *arg)
{
	struct graphread	*gr;

	gr = xcalloc(1, sizeof *gr);
	gr->user = xstrdup(user);
	gr->cb = cb;
	gr->arg = arg;
	return (gr);
}

static void
gsub_clear(struct graphread *gr)
{
	gr->sub_op = FAKE_GSUB_NONE;
	gr->sub_cb = NULL;
	free(gr->sub_id);
	free(gr->url);
	free(gr->lc_url);
	free(gr->client_state);
	gr->sub_id = gr->url = gr->lc_url = gr->client_state = NULL;
}

void
graphread_free(struct graphread *gr)
{
	if (gr == NULL)
		return;
	gsub_clear(gr);
	free(gr->user);
	free(gr);
}

void
graphread_start(struct graphread *gr, enum graphread_kind kind)
{
	/* As graphread.c: one read at a time. */
	ck_assert_msg(!gr->busy, "Graph read started while one runs");
	gr->busy = true;
	gr->kind = kind;
	gr->starts++;
}

bool
graphread_busy(const struct graphread *gr)
{
	return (gr->busy);
}

void
graphread_cancel(struct graphread *gr)
{
	if (!gr->busy)
		return;
	gr->busy = false;
	gr->cancels++;
}

static void
gsub_begin(struct graphread *gr, enum fake_gsub_op op, graphsub_cb cb)
{
	ck_assert_msg(gr->sub_op == FAKE_GSUB_NONE, "Graph subscription "
	    "request made while one runs");
	gr->sub_op = op;
	gr->sub_cb = cb;
}

void
graphread_subscribe(struct graphread *gr, const char *url, const char *lc_url,
    const char *client_state, int64_t expires, graphsub_cb cb)
{
	gsub_begin(gr, FAKE_GSUB_SUBSCRIBE, cb);
	gr->url = url != NULL ? xstrdup(url) : NULL;
	gr->lc_url = lc_url != NULL ? xstrdup(lc_url) : NULL;
	gr->client_state = client_state != NULL ? xstrdup(client_state) :
	    NULL;
	gr->expires = expires;
	gr->subscribes++;
}

void
graphread_renew(struct graphread *gr, const char *id, int64_t expires,
    graphsub_cb cb)
{
	gsub_begin(gr, FAKE_GSUB_RENEW, cb);
	gr->sub_id = xstrdup(id);
	gr->expires = expires;
	gr->renews++;
}

void
graphread_unsubscribe(struct graphread *gr, const char *id, graphsub_cb cb)
{
	gsub_begin(gr, FAKE_GSUB_UNSUBSCRIBE, cb);
	gr->sub_id = xstrdup(id);
	gr->unsubscribes++;
}

bool
graphread_sub_busy(const struct graphread *gr)
{
	return (gr->sub_op != FAKE_GSUB_NONE);
}

void
graphread_sub_cancel(struct graphread *gr)
{
	if (gr->sub_op == FAKE_GSUB_NONE)
		return;
	gsub_clear(gr);
	gr->sub_cancels++;
}

void
graphread_json(const struct graphread *gr, struct json_writer *w)
{
	json_obj_begin(w);
	json_kv_int(w, "rounds", gr->starts);
	json_obj_end(w);
}

void
fake_graph_read(struct graphread *gr, const struct graphread_result *r)
{
	ck_assert_ptr_nonnull(gr);
	ck_assert_msg(gr->busy, "answer to a Graph read not started");
	gr->busy = false;
	gr->cb(r, gr->arg);
}

void
fake_graph_sub(struct graphread *gr, const struct graphsub_result *r)
{
	graphsub_cb	 cb;

	ck_assert_ptr_nonnull(gr);
	ck_assert_msg(gr->sub_op != FAKE_GSUB_NONE, "answer to a Graph "
	    "subscription request not made");
	cb = gr->sub_cb;
	gsub_clear(gr);
	cb(r, gr->arg);
}

char *
fake_fixture(const char *name)
{
	size_t	 len;

	return (pt_fixture(name, &len));
}

static FILE	*log_file;
static int	 log_saved = -1;

void
fake_log_begin(int level)
{
	ck_assert_ptr_nonnull(log_file = tmpfile());
	fflush(stderr);
	log_saved = dup(STDERR_FILENO);
	ck_assert_int_ge(log_saved, 0);
	ck_assert_int_ge(dup2(fileno(log_file), STDERR_FILENO), 0);
	log_init("ewsgw", LOG_TARGET_STDERR, level);
}

char *
fake_log_end(void)
{
	char	*text;
	long	 n;

	fflush(stderr);
	dup2(log_saved, STDERR_FILENO);
	close(log_saved);
	log_init("ewsgw", LOG_TARGET_STDERR, LOG_INFO);
	n = ftell(log_file);
	ck_assert_int_ge(n, 0);
	text = xcalloc(1, (size_t)n + 1);
	rewind(log_file);
	ck_assert_uint_eq(fread(text, 1, (size_t)n, log_file), (size_t)n);
	fclose(log_file);
	log_file = NULL;
	return (text);
}
