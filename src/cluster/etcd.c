/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * etcd v3 JSON gateway client: calls with endpoint fail-over and line-
 * framed watch streams, on its own HTTP engine (no credentials, its own
 * TLS files) sharing the daemon's loop.
 */
#include "config.h"

#include <sys/queue.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "cluster/etcd.h"
#include "cluster/etcd_msg.h"
#include "io/http.h"

#define ETCD_CONNECT_MS		2000

struct etcd_call {
	struct etcd		*etcd;
	TAILQ_ENTRY(etcd_call)	 entry;
	struct http_request	*req;
	char			*path;
	struct buf		 body;
	int64_t			 timeout_ms;
	int64_t			 started_ms;
	size_t			 ep;		/* endpoint of this try */
	size_t			 tries;
	etcd_done_cb		 done;
	void			*arg;
};

struct etcd_watch {
	struct etcd		*etcd;
	TAILQ_ENTRY(etcd_watch)	 entry;
	struct http_request	*req;
	size_t			 ep;
	struct buf		 line;		/* an unfinished line */
	etcd_watch_cb		 cb;
	void			*arg;
	bool			 in_cb;		/* owner's callback running */
	bool			 dead;		/* cancelled from it */
	char			*why;		/* how the stream broke */
};

struct etcd {
	struct event_base	*base;		/* borrowed */
	struct http_engine	*http;
	char			**endpoints;
	size_t			 n;
	size_t			 cur;		/* first to try */
	TAILQ_HEAD(, etcd_call)	 calls;
	TAILQ_HEAD(, etcd_watch) watches;
	struct etcd_stats	 stats;
};

static void	 call_send(struct etcd_call *);
static void	 call_done(struct http_request *, const struct http_response *,
		    void *);
static void	 call_finish(struct etcd_call *, enum etcd_status,
		    const struct etcd_resp *, const char *);
static void	 call_free(struct etcd_call *);
static void	 req_opts(struct etcd *, size_t, const char *,
		    const struct buf *, int64_t, char **,
		    struct http_request_opts *);
static int	 watch_data(const char *, size_t, void *);
static void	 watch_done(struct http_request *,
		    const struct http_response *, void *);
static void	 watch_free(struct etcd_watch *);
static void	 next_endpoint(struct etcd *, size_t);

struct etcd *
etcd_new(struct event_base *base, const struct etcd_opts *o, char **cause)
{
	struct http_engine_opts	 ho;
	struct etcd		*e;
	size_t			 i;

	if (o->nendpoints == 0) {
		*cause = xstrdup("no etcd endpoint");
		return (NULL);
	}
	memset(&ho, 0, sizeof ho);
	ho.cred = HTTP_CRED_NONE;
	ho.ca_file = o->ca_file;
	ho.client_cert = o->client_cert;
	ho.client_key = o->client_key;
	ho.tls_verify = true;
	ho.connect_timeout_ms = o->connect_timeout_ms > 0 ?
	    o->connect_timeout_ms : ETCD_CONNECT_MS;
	ho.max_response = ETCD_MSG_MAX;
	e = xcalloc(1, sizeof *e);
	if ((e->http = http_engine_new(base, &ho, cause)) == NULL) {
		free(e);
		return (NULL);
	}
	e->base = base;
	e->n = o->nendpoints;
	e->endpoints = xcalloc(e->n, sizeof *e->endpoints);
	for (i = 0; i < e->n; i++) {
		/* "https://h:2379/" and "https://h:2379" are the same. */
		e->endpoints[i] = xstrdup(o->endpoints[i]);
		while (strlen(e->endpoints[i]) > 0 &&
		    e->endpoints[i][strlen(e->endpoints[i]) - 1] == '/')
			e->endpoints[i][strlen(e->endpoints[i]) - 1] = '\0';
	}
	TAILQ_INIT(&e->calls);
	TAILQ_INIT(&e->watches);
	return (e);
}

void
etcd_free(struct etcd *e)
{
	struct etcd_call	*c;
	struct etcd_watch	*w;
	size_t			 i;

	if (e == NULL)
		return;
	while ((c = TAILQ_FIRST(&e->calls)) != NULL)
		etcd_call_cancel(c);
	while ((w = TAILQ_FIRST(&e->watches)) != NULL) {
		http_request_cancel(w->req);
		w->req = NULL;
		watch_free(w);
	}
	http_engine_free(e->http);
	for (i = 0; i < e->n; i++)
		free(e->endpoints[i]);
	free(e->endpoints);
	free(e);
}

const char *
etcd_endpoint(const struct etcd *e)
{
	return (e->endpoints[e->cur]);
}

const struct etcd_stats *
etcd_stats(const struct etcd *e)
{
	return (&e->stats);
}

/* A try on endpoint ep failed: later calls start at the next one. */
static void
next_endpoint(struct etcd *e, size_t ep)
{
	if (e->cur == ep && e->n > 1) {
		e->cur = (ep + 1) % e->n;
		e->stats.failovers++;
		log_info("etcd: %s failed, using %s", e->endpoints[ep],
		    e->endpoints[e->cur]);
	}
}

/* Options for one request; *url is allocated, caller frees. */
static void
req_opts(struct etcd *e, size_t ep, const char *path, const struct buf *body,
    int64_t timeout_ms, char **url, struct http_request_opts *ro)
{
	xasprintf(url, "%s%s", e->endpoints[ep], path);
	memset(ro, 0, sizeof *ro);
	ro->method = HTTP_POST;
	ro->url = *url;
	ro->body = buf_str(body);
	ro->body_len = body->len;
	ro->content_type = "application/json";
	ro->accept = "application/json";
	ro->timeout_ms = timeout_ms;
	ro->max_response = ETCD_MSG_MAX;
	ro->tag = "etcd";
}

/* ---- calls ---- */

struct etcd_call *
etcd_call_start(struct etcd *e, const char *path, const struct buf *body,
    int64_t timeout_ms, etcd_done_cb done, void *arg)
{
	struct etcd_call	*c;

	c = xcalloc(1, sizeof *c);
	c->etcd = e;
	c->path = xstrdup(path);
	buf_init(&c->body);
	buf_append(&c->body, buf_str(body), body->len);
	c->timeout_ms = timeout_ms;
	c->started_ms = time_mono_ms();
	c->ep = e->cur;
	c->done = done;
	c->arg = arg;
	TAILQ_INSERT_TAIL(&e->calls, c, entry);
	e->stats.calls++;
	call_send(c);
	return (c);
}

static void
call_send(struct etcd_call *c)
{
	struct http_request_opts ro;
	char			*url;

	c->tries++;
	req_opts(c->etcd, c->ep, c->path, &c->body, c->timeout_ms, &url, &ro);
	c->req = http_request_start(c->etcd->http, &ro, call_done, NULL, c);
	free(url);
}

static void
call_done(struct http_request *req, const struct http_response *hr,
    void *arg)
{
	struct etcd_call	*c = arg;
	struct etcd		*e = c->etcd;
	struct etcd_resp	 r;
	char			*cause = NULL, *why = NULL;
	bool			 parsed = false;

	c->req = NULL;
	/* etcd answers errors with a JSON body and a non-2xx status. */
	if ((hr->result == HTTP_RESULT_OK || hr->status >= 400) &&
	    hr->body_len > 0 &&
	    etcd_resp_parse(hr->body, hr->body_len, &r, &cause) == 0)
		parsed = true;
	if (parsed && hr->result == HTTP_RESULT_OK && !r.error) {
		call_finish(c, ETCD_OK, &r, NULL);
		etcd_resp_free(&r);
		return;
	}
	if (parsed && r.error && r.code != ETCD_CODE_UNAVAILABLE) {
		xasprintf(&why, "%s (code %d)", r.message, r.code);
		call_finish(c, ETCD_ERROR, &r, why);
		etcd_resp_free(&r);
		free(why);
		return;
	}
	/* Not an answer, or "cannot serve now": the next endpoint. */
	if (parsed)
		xasprintf(&why, "%s: %s", e->endpoints[c->ep], r.message);
	else if (hr->result == HTTP_RESULT_OK || hr->status >= 400)
		xasprintf(&why, "%s: not an etcd answer (HTTP %ld%s%s)",
		    e->endpoints[c->ep], hr->status, cause != NULL ? ": " : "",
		    cause != NULL ? cause : "");
	else
		xasprintf(&why, "%s: %s", e->endpoints[c->ep],
		    hr->error != NULL ? hr->error :
		    http_result_name(hr->result));
	if (parsed)
		etcd_resp_free(&r);
	free(cause);
	log_debug("etcd: %s %s", c->path, why);
	next_endpoint(e, c->ep);
	if (c->tries < e->n) {
		c->ep = (c->ep + 1) % e->n;
		free(why);
		call_send(c);
		return;
	}
	e->stats.unreachable++;
	call_finish(c, ETCD_UNREACHABLE, NULL, why);
	free(why);
	(void)req;
}

static void
call_finish(struct etcd_call *c, enum etcd_status st,
    const struct etcd_resp *r, const char *why)
{
	struct etcd_result	 res;

	memset(&res, 0, sizeof res);
	res.status = st;
	res.resp = r;
	res.error = why;
	res.endpoint = c->etcd->endpoints[c->ep];
	res.elapsed_ms = time_mono_ms() - c->started_ms;
	TAILQ_REMOVE(&c->etcd->calls, c, entry);
	c->done(&res, c->arg);
	call_free(c);
}

static void
call_free(struct etcd_call *c)
{
	free(c->path);
	buf_free(&c->body);
	free(c);
}

void
etcd_call_cancel(struct etcd_call *c)
{
	if (c == NULL)
		return;
	http_request_cancel(c->req);
	TAILQ_REMOVE(&c->etcd->calls, c, entry);
	call_free(c);
}

/* ---- watches ---- */

struct etcd_watch *
etcd_watch_start(struct etcd *e, const struct buf *body, etcd_watch_cb cb,
    void *arg)
{
	struct http_request_opts ro;
	struct etcd_watch	*w;
	char			*url;

	w = xcalloc(1, sizeof *w);
	w->etcd = e;
	w->ep = e->cur;
	w->cb = cb;
	w->arg = arg;
	buf_init(&w->line);
	TAILQ_INSERT_TAIL(&e->watches, w, entry);
	e->stats.watches++;
	req_opts(e, w->ep, "/v3/watch", body, 0, &url, &ro);
	w->req = http_request_start(e->http, &ro, watch_done, watch_data, w);
	free(url);
	return (w);
}

/* Inside curl: frame lines, hand each answer to the owner. */
static int
watch_data(const char *p, size_t len, void *arg)
{
	struct etcd_watch	*w = arg;
	struct etcd_resp	 r;
	const char		*nl;
	char			*cause;
	size_t			 n;
	int			 rc = HTTP_DATA_OK;

	buf_append(&w->line, p, len);
	w->in_cb = true;
	while (!w->dead && (nl = memchr(buf_str(&w->line), '\n',
	    w->line.len)) != NULL) {
		n = (size_t)(nl - w->line.data);
		if (n > 0 && etcd_resp_parse(w->line.data, n, &r,
		    &cause) == -1) {
			xasprintf(&w->why, "bad watch answer: %s", cause);
			free(cause);
			etcd_resp_free(&r);
			rc = HTTP_DATA_ABORT;
			break;
		}
		buf_consume(&w->line, n + 1);
		if (n > 0) {
			w->cb(&r, NULL, w->arg);
			etcd_resp_free(&r);
		}
	}
	if (rc == HTTP_DATA_OK && w->line.len > ETCD_MSG_MAX) {
		w->why = xstrdup("watch answer too large");
		rc = HTTP_DATA_ABORT;
	}
	w->in_cb = false;
	if (w->dead) {
		/* The owner cancelled the watch: its request is gone too. */
		watch_free(w);
		return (HTTP_DATA_OK);
	}
	return (rc);
}

static void
watch_done(struct http_request *req, const struct http_response *hr,
    void *arg)
{
	struct etcd_watch	*w = arg;
	struct etcd		*e = w->etcd;
	struct etcd_resp	 r;
	char			*why = NULL, *cause = NULL;
	etcd_watch_cb		 cb = w->cb;
	void			*cbarg = w->arg;

	memset(&r, 0, sizeof r);
	w->req = NULL;
	if (w->why != NULL)
		why = xstrdup(w->why);
	else if (hr->result == HTTP_RESULT_OK)
		why = xstrdup("stream closed by etcd");
	else if (hr->status >= 400 && hr->body_len > 0 &&
	    etcd_resp_parse(hr->body, hr->body_len, &r, &cause) == 0 &&
	    r.error) {
		xasprintf(&why, "%s (code %d)", r.message, r.code);
		etcd_resp_free(&r);
	} else {
		xasprintf(&why, "%s", hr->error != NULL ? hr->error :
		    http_result_name(hr->result));
		etcd_resp_free(&r);
	}
	free(cause);
	if (hr->result != HTTP_RESULT_OK && hr->status < 400)
		next_endpoint(e, w->ep);
	watch_free(w);
	cb(NULL, why, cbarg);
	free(why);
	(void)req;
}

static void
watch_free(struct etcd_watch *w)
{
	TAILQ_REMOVE(&w->etcd->watches, w, entry);
	buf_free(&w->line);
	free(w->why);
	free(w);
}

void
etcd_watch_cancel(struct etcd_watch *w)
{
	if (w == NULL || w->dead)
		return;
	http_request_cancel(w->req);
	w->req = NULL;
	if (w->in_cb) {
		w->dead = true;		/* watch_data frees it */
		return;
	}
	watch_free(w);
}
