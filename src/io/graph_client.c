/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Graph calls: token, per-mailbox slot, request, Retry-After, retry.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "io/graph_client.h"
#include "base/buf.h"
#include "base/conf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "graph/graph_cal.h"
#include "graph/graph_jwt.h"

#define GC_DEFAULT_TIMEOUT_MS	60000
#define GC_MAX_PEM		(64 * 1024)
#define GC_MAX_RESPONSE		(16 * 1024 * 1024)

enum gc_state { GC_IDLE, GC_WAIT_SLOT, GC_WAIT_TIMER, GC_RUNNING };

struct graph_call {
	struct graph_client	*c;
	enum gc_state		 state;
	enum http_method	 method;
	char			*url;
	char			*body;
	char			*mailbox;	/* "" = the app's */
	char			*prefer;	/* "Prefer: ..." or NULL */
	char			*tag;
	unsigned		 attempts;
	graph_done_cb		 done;
	void			*arg;
	struct http_request	*http;
	struct event		 timer;
	TAILQ_ENTRY(graph_call)	 entry;		/* c->calls */
};
TAILQ_HEAD(gc_list, graph_call);

struct graph_client {
	struct event_base	*base;
	struct http_engine	*eng;		/* Graph */
	struct http_engine	*token_eng;	/* token endpoint */
	struct auth		*auth;
	struct graph_sched	*sched;
	struct graph_jwt_key	*key;
	char			*graph_url;
	char			*token_url;
	char			*client_id;
	int64_t			 timeout_ms;
	unsigned		 max_attempts;
	struct gc_list		 calls;		/* every live call */
	struct graph_client_stats st;
};

static void	 gc_try(struct graph_call *);
static void	 gc_timer(evutil_socket_t, short, void *);
static void	 gc_http_done(struct http_request *,
		    const struct http_response *, void *);
static void	 gc_wake(struct graph_client *, const char *);
static void	 gc_free(struct graph_call *);

/* Read a small file whole; NULL with *cause. */
static char *
gc_read(const char *path, size_t *len, char **cause)
{
	struct buf	 b = BUF_INIT_SECRET;
	char		 chunk[4096];
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (NULL);
	}
	while ((n = read(fd, chunk, sizeof chunk)) > 0) {
		buf_append(&b, chunk, (size_t)n);
		if (b.len > GC_MAX_PEM) {
			xasprintf(cause, "%s: larger than %d bytes", path,
			    GC_MAX_PEM);
			n = -1;
			errno = EFBIG;
			break;
		}
	}
	explicit_bzero(chunk, sizeof chunk);
	close(fd);
	if (n < 0) {
		if (*cause == NULL)
			xasprintf(cause, "%s: %s", path, strerror(errno));
		buf_free_secret(&b);
		return (NULL);
	}
	*len = b.len;
	return (buf_steal(&b));
}

static char *
gc_assertion(void *arg, char **cause)
{
	struct graph_client	*c = arg;

	return (graph_jwt_assertion(c->key, c->client_id, c->token_url,
	    time_wall_ms() / 1000, cause));
}

void
graph_client_opts_from_config(struct graph_client_opts *o,
    const struct config *conf)
{
	memset(o, 0, sizeof *o);
	o->graph_url = conf->graph.url;
	o->token_url = conf->graph.token_url;
	o->client_id = conf->graph.client_id;
	o->client_secret = conf->graph.client_secret;
	o->cert_file = conf->graph.certificate_file;
	o->key_file = conf->graph.key_file;
	o->ca_file = conf->graph.ca_file;
	o->tls_verify = conf->graph.tls_verify;
	o->token_ca_file = conf->graph.token_ca_file;
	o->token_tls_verify = conf->graph.token_tls_verify;
	o->sched.concurrency = conf->graph.mailbox_concurrency;
	o->timeout_ms = conf->graph.request_timeout_ms;
	o->max_connections = (long)conf->graph.max_connections;
}

struct graph_client *
graph_client_new(struct event_base *base, const struct graph_client_opts *o,
    char **cause)
{
	struct graph_client	*c;
	struct http_engine_opts	 eo;
	struct auth_opts	 ao;
	char			*cert = NULL, *key = NULL;
	size_t			 clen = 0, klen = 0;

	*cause = NULL;
	if (o->token_url == NULL || o->client_id == NULL ||
	    (o->client_secret == NULL && (o->cert_file == NULL ||
	    o->key_file == NULL))) {
		*cause = xstrdup("Graph needs a token URL, a client id, and "
		    "a client secret or a certificate and its key");
		return (NULL);
	}
	c = xcalloc(1, sizeof *c);
	c->base = base;
	TAILQ_INIT(&c->calls);
	c->graph_url = xstrdup(o->graph_url != NULL ? o->graph_url :
	    GRAPH_DEFAULT_URL);
	c->token_url = xstrdup(o->token_url);
	c->client_id = xstrdup(o->client_id);
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms :
	    GC_DEFAULT_TIMEOUT_MS;
	c->max_attempts = o->max_attempts > 0 ? o->max_attempts :
	    GRAPH_MAX_ATTEMPTS;
	if (o->client_secret == NULL) {
		if ((cert = gc_read(o->cert_file, &clen, cause)) == NULL ||
		    (key = gc_read(o->key_file, &klen, cause)) == NULL)
			goto fail;
		c->key = graph_jwt_key_new(cert, clen, key, klen, cause);
		if (c->key == NULL)
			goto fail;
	}

	memset(&eo, 0, sizeof eo);
	eo.cred = HTTP_CRED_NONE;
	eo.ca_file = o->token_ca_file;
	eo.tls_verify = o->token_tls_verify;
	eo.max_response = 64 * 1024;
	if ((c->token_eng = http_engine_new(base, &eo, cause)) == NULL)
		goto fail;
	memset(&eo, 0, sizeof eo);
	eo.cred = HTTP_CRED_BEARER;
	eo.ca_file = o->ca_file;
	eo.tls_verify = o->tls_verify;
	eo.max_host_connections = o->max_connections > 0 ?
	    o->max_connections : 64;
	eo.max_response = GC_MAX_RESPONSE;
	if ((c->eng = http_engine_new(base, &eo, cause)) == NULL)
		goto fail;

	memset(&ao, 0, sizeof ao);
	ao.token_url = o->token_url;
	ao.client_id = o->client_id;
	ao.client_secret = o->client_secret;
	ao.scope = GRAPH_SCOPE;
	ao.timeout_ms = c->timeout_ms;
	ao.token_engine = c->token_eng;
	if (c->key != NULL) {
		ao.assertion = gc_assertion;
		ao.assertion_arg = c;
	}
	c->auth = auth_new(base, c->eng, &ao);
	c->sched = graph_sched_new(&o->sched);
	if (cert != NULL)
		free(cert);
	if (key != NULL) {
		explicit_bzero(key, klen);
		free(key);
	}
	return (c);
fail:
	free(cert);
	if (key != NULL) {
		explicit_bzero(key, klen);
		free(key);
	}
	graph_client_free(c);
	return (NULL);
}

void
graph_client_free(struct graph_client *c)
{
	struct graph_call	*gc;

	if (c == NULL)
		return;
	while ((gc = TAILQ_FIRST(&c->calls)) != NULL)
		graph_call_cancel(gc);
	auth_free(c->auth);
	http_engine_free(c->eng);
	http_engine_free(c->token_eng);
	graph_sched_free(c->sched);
	graph_jwt_key_free(c->key);
	free(c->graph_url);
	free(c->token_url);
	free(c->client_id);
	free(c);
}

struct graph_call *
graph_call_start(struct graph_client *c, const struct graph_req *r,
    graph_done_cb done, void *arg)
{
	struct graph_call	*gc;
	struct buf		 p = BUF_INIT;

	gc = xcalloc(1, sizeof *gc);
	gc->c = c;
	gc->method = r->method;
	if (r->url != NULL && r->url[0] == '/')
		xasprintf(&gc->url, "%s%s", c->graph_url, r->url);
	else
		gc->url = xstrdup(r->url != NULL ? r->url : "");
	gc->body = r->body != NULL ? xstrdup(r->body) : NULL;
	gc->mailbox = xstrdup(r->mailbox != NULL ? r->mailbox : "");
	gc->tag = xstrdup(r->tag != NULL ? r->tag : "graph");
	if (r->prefer_utc || r->page_size > 0) {
		buf_puts(&p, GRAPH_PREFER ": ");
		if (r->prefer_utc)
			buf_puts(&p, GRAPH_PREFER_UTC);
		if (r->page_size > 0)
			buf_printf(&p, "%sodata.maxpagesize=%u",
			    r->prefer_utc ? ", " : "", r->page_size);
		gc->prefer = buf_steal(&p);
	}
	gc->done = done;
	gc->arg = arg;
	evtimer_assign(&gc->timer, c->base, gc_timer, gc);
	TAILQ_INSERT_TAIL(&c->calls, gc, entry);
	c->st.calls++;
	/* Never call back from here: start from the loop. */
	gc->state = GC_WAIT_TIMER;
	c->st.waiting++;
	event_active(&gc->timer, EV_TIMEOUT, 1);
	return (gc);
}

static void
gc_free(struct graph_call *gc)
{
	if (gc->state == GC_WAIT_SLOT || gc->state == GC_WAIT_TIMER)
		gc->c->st.waiting--;
	event_del(&gc->timer);
	TAILQ_REMOVE(&gc->c->calls, gc, entry);
	free(gc->url);
	free(gc->body);
	free(gc->mailbox);
	free(gc->prefer);
	free(gc->tag);
	free(gc);
}

void
graph_call_cancel(struct graph_call *gc)
{
	struct graph_client	*c;
	char			*mb;

	if (gc == NULL)
		return;
	c = gc->c;
	if (gc->state == GC_RUNNING) {
		http_request_cancel(gc->http);
		graph_sched_release(c->sched, gc->mailbox);
		mb = xstrdup(gc->mailbox);
		gc_free(gc);
		gc_wake(c, mb);
		free(mb);
		return;
	}
	gc_free(gc);
}

static void
gc_timer(evutil_socket_t fd, short ev, void *arg)
{
	struct graph_call	*gc = arg;

	gc->c->st.waiting--;
	gc->state = GC_IDLE;
	gc_try(gc);
}

/* Start now if the mailbox's budget allows, else wait for it. */
static void
gc_try(struct graph_call *gc)
{
	struct graph_client		*c = gc->c;
	struct http_request_opts	 o;
	const char			*hdrs[2] = { NULL, NULL };
	struct timeval			 tv;
	int64_t				 w;

	w = graph_sched_acquire(c->sched, gc->mailbox, time_mono_ms());
	if (w != 0) {
		c->st.waiting++;
		if (w < 0) {
			gc->state = GC_WAIT_SLOT;	/* gc_wake starts it */
			return;
		}
		gc->state = GC_WAIT_TIMER;
		tv.tv_sec = w / 1000;
		tv.tv_usec = (w % 1000) * 1000;
		evtimer_add(&gc->timer, &tv);
		return;
	}
	memset(&o, 0, sizeof o);
	o.method = gc->method;
	o.url = gc->url;
	o.body = gc->body;
	o.body_len = gc->body != NULL ? strlen(gc->body) : 0;
	o.content_type = "application/json";
	o.accept = "application/json";
	if (gc->prefer != NULL)
		hdrs[0] = gc->prefer;
	o.headers = hdrs;
	o.timeout_ms = c->timeout_ms;
	o.tag = gc->tag;
	gc->attempts++;
	gc->state = GC_RUNNING;
	gc->http = http_request_start(c->eng, &o, gc_http_done, NULL, gc);
}

/* A slot of mailbox came free: start the oldest call waiting for one. */
static void
gc_wake(struct graph_client *c, const char *mailbox)
{
	struct graph_call	*gc;

	TAILQ_FOREACH(gc, &c->calls, entry)
		if (gc->state == GC_WAIT_SLOT &&
		    strcmp(gc->mailbox, mailbox) == 0) {
			c->st.waiting--;
			gc->state = GC_IDLE;
			gc_try(gc);
			return;
		}
}

static void
gc_http_done(struct http_request *req, const struct http_response *resp,
    void *arg)
{
	struct graph_call	*gc = arg;
	struct graph_client	*c = gc->c;
	struct graph_result	 res;
	struct graph_error	 err;
	int64_t			 ra;
	char			*mb;

	gc->http = NULL;
	graph_sched_release(c->sched, gc->mailbox);
	memset(&err, 0, sizeof err);
	if (resp->status >= 400)
		(void)graph_parse_error(resp->body, resp->body_len, &err);
	memset(&res, 0, sizeof res);
	res.status = resp->status;
	res.action = resp->result == HTTP_RESULT_OK ?
	    graph_classify(resp->status, NULL) :
	    graph_classify(resp->status != 0 && !resp->unreachable ?
	    resp->status : 0, err.code);
	if (resp->result == HTTP_RESULT_AUTH && resp->status == 0)
		res.action = GRAPH_ACT_AUTH;	/* no token could be had */
	if (res.action == GRAPH_ACT_THROTTLED) {
		c->st.throttled++;
		ra = graph_retry_after(resp->retry_after, time_wall_ms() /
		    1000);
		if (ra < 0)
			ra = GRAPH_RETRY_AFTER_DEFAULT_S;
		graph_sched_pause(c->sched, gc->mailbox, time_mono_ms() +
		    ra * 1000);
		log_info("graph %s: %ld for %s, Retry-After %lld s%s",
		    gc->tag, resp->status, gc->mailbox[0] != '\0' ?
		    gc->mailbox : "the app", (long long)ra,
		    gc->attempts < c->max_attempts ? "" : ", giving up");
		if (gc->attempts < c->max_attempts) {
			c->st.retries++;
			graph_error_free(&err);
			gc->state = GC_IDLE;
			gc_try(gc);	/* waits out the pause */
			return;
		}
	}
	res.body = resp->body;
	res.body_len = resp->body_len;
	res.code = err.code;
	res.error = resp->error;
	res.attempts = gc->attempts;
	c->st.results[res.action]++;
	mb = xstrdup(gc->mailbox);
	gc->state = GC_IDLE;
	gc->done(&res, gc->arg);
	graph_error_free(&err);
	gc_free(gc);
	gc_wake(c, mb);
	free(mb);
}

struct auth_wait *
graph_client_token(struct graph_client *c, auth_token_cb cb, void *arg)
{
	return (auth_get(c->auth, cb, arg));
}

void
graph_client_token_cancel(struct graph_client *c, struct auth_wait *w)
{
	if (w != NULL)
		auth_wait_cancel(c->auth, w);
}

void
graph_client_stats(struct graph_client *c, struct graph_client_stats *st)
{
	*st = c->st;
	graph_sched_stats(c->sched, &st->sched);
	auth_get_stats(c->auth, &st->auth);
}

void
graph_client_stats_json(struct graph_client *c, struct json_writer *w)
{
	struct graph_client_stats	 st;
	int				 i;

	graph_client_stats(c, &st);
	json_obj_begin(w);
	json_kv_int(w, "calls", (int64_t)st.calls);
	json_kv_int(w, "throttled", (int64_t)st.throttled);
	json_kv_int(w, "retries", (int64_t)st.retries);
	json_kv_int(w, "waiting", st.waiting);
	json_key(w, "results");
	json_obj_begin(w);
	for (i = 0; i < GRAPH_ACT_MAX; i++)
		json_kv_int(w, graph_action_name(i), (int64_t)st.results[i]);
	json_obj_end(w);
	json_kv_int(w, "in_flight", st.sched.in_flight);
	json_kv_int(w, "max_in_flight_mailbox", st.sched.max_in_flight_mailbox);
	json_kv_int(w, "waited_slot", (int64_t)st.sched.waited_slot);
	json_kv_int(w, "waited_rate", (int64_t)st.sched.waited_rate);
	json_kv_int(w, "waited_pause", (int64_t)st.sched.waited_pause);
	json_kv_int(w, "token_fetches", (int64_t)st.auth.fetches);
	json_kv_int(w, "token_failures", (int64_t)st.auth.failures);
	json_obj_end(w);
}
