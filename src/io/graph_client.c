/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Graph calls: token, a grant of the shared scheduler (the mailbox's
 * slot and rates), request, Retry-After, retry.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/stat.h>

#include <assert.h>
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
#include "graph/graph_batch.h"
#include "graph/graph_cal.h"
#include "graph/graph_jwt.h"

#define GC_DEFAULT_TIMEOUT_MS	60000
#define GC_MAX_PEM		(64 * 1024)
#define GC_MAX_RESPONSE		(16 * 1024 * 1024)

/*
 * idle -> gathering (a batchable first attempt, for GRAPH_BATCH_WAIT_MS)
 * or queued (in the scheduler); queued -> running, or -> collected when
 * it was gathered (granted in the first run after the gathering, to go
 * in a $batch with the others granted in it); collected ->
 * batched or running (alone); running, batched -> queued again (429)
 * or idle.
 */
enum gc_state { GC_IDLE, GC_GATHERING, GC_QUEUED, GC_COLLECTED, GC_RUNNING,
	GC_BATCHED };
#define GC_STATE_MAX	(GC_BATCHED + 1)

static const char *const gc_state_names[GC_STATE_MAX] = {
	"idle", "gathering", "queued", "collected", "running", "batched"
};

struct gc_batch;

struct graph_call {
	struct graph_client	*c;
	enum gc_state		 state;
	enum http_method	 method;
	char			*url;
	char			*body;
	char			*mailbox;	/* "" = the app's */
	char			*prefer;	/* "Prefer: ..." or NULL */
	char			*tag;
	bool			 batchable;
	bool			 gathered;	/* goes in a $batch if it can */
	struct gc_batch		*batch;		/* GC_BATCHED: its batch */
	unsigned		 attempts;
	graph_done_cb		 done;
	void			*arg;
	struct http_request	*http;
	struct throttle_ticket	 ticket;	/* its mailbox's budget */
	TAILQ_ENTRY(graph_call)	 entry;		/* c->calls */
	TAILQ_ENTRY(graph_call)	 bentry;	/* the list of its state */
};
TAILQ_HEAD(gc_list, graph_call);

struct graph_client {
	struct event_base	*base;
	struct http_engine	*eng;		/* Graph */
	struct http_engine	*token_eng;	/* token endpoint */
	struct auth		*auth;
	struct throttle_drive	*drive;		/* shared with EWS */
	struct throttle		*throttle;	/* drive's */
	struct graph_jwt_key	*key;
	char			*graph_url;
	char			*token_url;
	char			*client_id;
	int64_t			 timeout_ms;
	unsigned		 max_attempts;
	struct gc_list		 calls;		/* every live call */
	struct gc_list		 gathering;	/* GC_GATHERING */
	struct gc_list		 pending;	/* gathered, not granted yet */
	struct gc_list		 collected;	/* GC_COLLECTED */
	struct event		 batch_ev;	/* gathering ends */
	bool			 batch_armed;
	struct event		 collect_ev;	/* a run's grants to $batch */
	struct graph_client_stats st;
};

/* One $batch on the wire: its calls, each holding its mailbox's slot. */
struct gc_batch {
	struct graph_client	*c;
	struct graph_call	*v[GRAPH_BATCH_MAX];	/* NULL: cancelled */
	size_t			 n;
	size_t			 live;
	struct http_request	*http;
};

static void	 gc_set_state(struct graph_call *, enum gc_state);
static void	 gc_submit(struct graph_call *);
static void	 gc_granted(struct throttle_ticket *, void *);
static void	 gc_release(struct graph_call *,
		    const struct throttle_outcome *);
static void	 gc_http_done(struct http_request *,
		    const struct http_response *, void *);
static void	 gc_free(struct graph_call *);
static void	 gc_send(struct graph_call *);
static void	 gc_batch_drop(struct graph_call *);
static void	 gc_gather_cb(evutil_socket_t, short, void *);
static void	 gc_collect_cb(evutil_socket_t, short, void *);

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
	assert(o->drive != NULL);
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
	TAILQ_INIT(&c->gathering);
	TAILQ_INIT(&c->pending);
	TAILQ_INIT(&c->collected);
	c->drive = o->drive;
	c->throttle = throttle_drive_throttle(o->drive);
	evtimer_assign(&c->batch_ev, base, gc_gather_cb, c);
	event_assign(&c->collect_ev, base, -1, 0, gc_collect_cb, c);
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
	event_del(&c->batch_ev);
	event_del(&c->collect_ev);
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
	struct timeval		 tv;

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
	gc->batchable = r->batchable && r->method == HTTP_GET &&
	    r->body == NULL && gc->mailbox[0] != '\0' &&
	    strncmp(gc->url, c->graph_url, strlen(c->graph_url)) == 0 &&
	    gc->url[strlen(c->graph_url)] == '/';
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
	throttle_ticket_init(&gc->ticket);
	TAILQ_INSERT_TAIL(&c->calls, gc, entry);
	c->st.calls++;
	/* Nothing calls back from here: grants come from the loop. */
	if (gc->batchable) {
		/* Gather the others of these few milliseconds. */
		gc_set_state(gc, GC_GATHERING);
		TAILQ_INSERT_TAIL(&c->gathering, gc, bentry);
		if (!c->batch_armed) {
			c->batch_armed = true;
			evtimer_add(&c->batch_ev, time_ms_tv(&tv,
			    GRAPH_BATCH_WAIT_MS));
		}
	} else
		gc_submit(gc);
	return (gc);
}

/*
 * The single state change of a call: the debug line, and the count of
 * calls waiting in the scheduler kept on entry and exit.
 */
static void
gc_set_state(struct graph_call *gc, enum gc_state s)
{
	bool	 was, is;

	assert((unsigned)s < GC_STATE_MAX);
	if (gc->state == s)
		return;
	log_debug("graph %s of %s: %s -> %s", gc->tag, gc->mailbox[0] !=
	    '\0' ? gc->mailbox : "the app", gc_state_names[gc->state],
	    gc_state_names[s]);
	was = gc->state == GC_QUEUED;
	is = s == GC_QUEUED;
	if (was && !is)
		gc->c->st.waiting--;
	else if (is && !was)
		gc->c->st.waiting++;
	gc->state = s;
}

static void
gc_free(struct graph_call *gc)
{
	gc_set_state(gc, GC_IDLE);
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

	if (gc == NULL)
		return;
	c = gc->c;
	switch (gc->state) {
	case GC_GATHERING:
		TAILQ_REMOVE(&c->gathering, gc, bentry);
		break;
	case GC_QUEUED:
		if (gc->gathered)
			TAILQ_REMOVE(&c->pending, gc, bentry);
		throttle_cancel(c->throttle, &gc->ticket);
		break;
	case GC_COLLECTED:
		TAILQ_REMOVE(&c->collected, gc, bentry);
		gc_release(gc, NULL);
		break;
	case GC_BATCHED:
		gc_batch_drop(gc);
		gc_release(gc, NULL);
		break;
	case GC_RUNNING:
		http_request_cancel(gc->http);
		gc_release(gc, NULL);
		break;
	default:
		break;
	}
	gc_free(gc);
}

/* Wait for the scheduler's grant for the call's mailbox. */
static void
gc_submit(struct graph_call *gc)
{
	struct graph_client	*c = gc->c;

	gc_set_state(gc, GC_QUEUED);
	throttle_submit(c->throttle, &gc->ticket, THROTTLE_GRAPH, gc->mailbox,
	    THROTTLE_PRIO_NORMAL, gc_granted, gc);
	throttle_drive_kick(c->drive);
}

/* The slot is given back (o NULL: told nothing); the next may go. */
static void
gc_release(struct graph_call *gc, const struct throttle_outcome *o)
{
	struct graph_client	*c = gc->c;

	throttle_release(c->throttle, &gc->ticket, time_mono_ms(), o);
	throttle_drive_kick(c->drive);
}

/*
 * From the scheduler's run: the mailbox's slot and a token of its rate
 * and the app's are held.  A gathered call waits for the run's end, to
 * go in a $batch with the others granted in the same run.
 */
static void
gc_granted(struct throttle_ticket *tk, void *arg)
{
	struct graph_call	*gc = arg;
	struct graph_client	*c = gc->c;

	if (gc->gathered) {
		gc->gathered = false;
		TAILQ_REMOVE(&c->pending, gc, bentry);
		gc_set_state(gc, GC_COLLECTED);
		TAILQ_INSERT_TAIL(&c->collected, gc, bentry);
		return;
	}
	gc_send(gc);
}

/* Send now: the mailbox's slot is held. */
static void
gc_send(struct graph_call *gc)
{
	struct graph_client		*c = gc->c;
	struct http_request_opts	 o;
	const char			*hdrs[2] = { NULL, NULL };

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
	gc_set_state(gc, GC_RUNNING);
	gc->http = http_request_start(c->eng, &o, gc_http_done, NULL, gc);
}

static void
gc_http_done(struct http_request *req, const struct http_response *resp,
    void *arg)
{
	struct graph_call	*gc = arg;
	struct graph_client	*c = gc->c;
	struct graph_result	 res;
	struct graph_error	 err;
	struct throttle_outcome	 out = { THROTTLE_DONE, 0 };
	int64_t			 ra;

	gc->http = NULL;
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
		/* The mailbox's budget pauses (clamped there), no other. */
		out.result = THROTTLE_BUSY;
		out.backoff_ms = ra * 1000;
		gc_release(gc, &out);
		log_info("graph %s: %ld for %s, Retry-After %lld s%s",
		    gc->tag, resp->status, gc->mailbox[0] != '\0' ?
		    gc->mailbox : "the app", (long long)ra,
		    gc->attempts < c->max_attempts ? "" : ", giving up");
		if (gc->attempts < c->max_attempts) {
			c->st.retries++;
			graph_error_free(&err);
			gc_submit(gc);	/* waits out the pause */
			return;
		}
	} else {
		if (res.action == GRAPH_ACT_OK)
			out.result = THROTTLE_OK;
		gc_release(gc, &out);
	}
	res.body = resp->body;
	res.body_len = resp->body_len;
	res.code = err.code;
	res.error = resp->error;
	res.attempts = gc->attempts;
	c->st.results[res.action]++;
	gc_set_state(gc, GC_IDLE);
	gc->done(&res, gc->arg);
	graph_error_free(&err);
	gc_free(gc);
}

/* ---- JSON batching ---- */

static const char *const gc_batch_ids[GRAPH_BATCH_MAX] = {
	"1", "2", "3", "4", "5", "6", "7", "8", "9", "10",
	"11", "12", "13", "14", "15", "16", "17", "18", "19", "20"
};

/* A cancelled call leaves its batch; the last one ends the request. */
static void
gc_batch_drop(struct graph_call *gc)
{
	struct gc_batch	*bt = gc->batch;
	size_t		 i;

	for (i = 0; i < bt->n; i++)
		if (bt->v[i] == gc)
			bt->v[i] = NULL;
	gc->batch = NULL;
	if (--bt->live == 0 && bt->http != NULL) {
		http_request_cancel(bt->http);
		free(bt);
	}
}

/*
 * The answer of one step, handed on as if its call had gone alone (its
 * slot is released, a 429 pauses the mailbox and tries it again alone).
 */
static void
gc_step_done(struct graph_call *gc, const struct graph_batch_resp *r)
{
	struct http_response	 resp;
	char			 ra[24];

	memset(&resp, 0, sizeof resp);
	if (r == NULL) {
		resp.result = HTTP_RESULT_TRANSIENT;
		resp.error = "no answer for it in the batch";
	} else {
		resp.status = r->status;
		resp.result = r->status >= 200 && r->status < 300 ?
		    HTTP_RESULT_OK : r->status == 429 || r->status == 503 ?
		    HTTP_RESULT_THROTTLED : r->status == 401 ?
		    HTTP_RESULT_AUTH : HTTP_RESULT_FATAL;
		resp.body = r->body != NULL ? r->body : "";
		resp.body_len = r->body != NULL ? r->body_len : 0;
		if (r->retry_after_s >= 0) {
			snprintf(ra, sizeof ra, "%lld",
			    (long long)r->retry_after_s);
			resp.retry_after = ra;
		}
	}
	gc_http_done(NULL, &resp, gc);
}

static void
gc_batch_done(struct http_request *req, const struct http_response *resp,
    void *arg)
{
	struct gc_batch		*bt = arg;
	struct graph_batch	 gb;
	struct graph_call	*gc;
	char			*cause = NULL;
	bool			 ok;
	size_t			 i;

	bt->http = NULL;
	memset(&gb, 0, sizeof gb);
	ok = resp->result == HTTP_RESULT_OK && resp->status == 200 &&
	    graph_parse_batch(resp->body, resp->body_len, &gb, &cause) == 0;
	if (!ok)
		log_info("graph $batch of %zu: %s; each tried alone", bt->live,
		    cause != NULL ? cause : resp->error != NULL ?
		    resp->error : "refused");
	free(cause);
	for (i = 0; i < bt->n; i++) {
		if ((gc = bt->v[i]) == NULL)
			continue;
		bt->v[i] = NULL;
		bt->live--;
		gc->batch = NULL;
		gc_set_state(gc, GC_IDLE);
		if (ok) {
			gc_step_done(gc, graph_batch_find(&gb,
			    gc_batch_ids[i]));
			continue;
		}
		/* The batch as a whole failed: alone, with its slot. */
		gc_send(gc);
	}
	graph_batch_free(&gb);
	free(bt);
}

/* Send the batch of n calls (slots held); one alone goes alone. */
static void
gc_batch_send(struct graph_client *c, struct gc_batch *bt)
{
	struct graph_batch_req		 reqs[GRAPH_BATCH_MAX];
	struct http_request_opts	 o;
	struct buf			 b = BUF_INIT, u = BUF_INIT;
	size_t				 i, plen = strlen(GRAPH_PREFER ": ");
	char				*cause = NULL;

	memset(reqs, 0, sizeof reqs);
	for (i = 0; i < bt->n; i++) {
		reqs[i].id = gc_batch_ids[i];
		reqs[i].method = "GET";
		reqs[i].url = bt->v[i]->url + strlen(c->graph_url);
		reqs[i].prefer = bt->v[i]->prefer != NULL ?
		    bt->v[i]->prefer + plen : NULL;
	}
	if (bt->n < 2 || graph_batch_body(&b, reqs, bt->n, &cause) == -1) {
		if (cause != NULL)
			log_warnx("graph $batch: %s", cause);
		free(cause);
		for (i = 0; i < bt->n; i++) {
			bt->v[i]->batch = NULL;
			gc_send(bt->v[i]);
		}
		buf_free(&b);
		free(bt);
		return;
	}
	for (i = 0; i < bt->n; i++) {
		gc_set_state(bt->v[i], GC_BATCHED);
		bt->v[i]->attempts++;
	}
	c->st.batches++;
	c->st.batched += bt->n;
	buf_printf(&u, "%s/$batch", c->graph_url);
	memset(&o, 0, sizeof o);
	o.method = HTTP_POST;
	o.url = buf_str(&u);
	o.body = buf_str(&b);
	o.body_len = b.len;
	o.content_type = "application/json";
	o.accept = "application/json";
	o.timeout_ms = c->timeout_ms;
	o.tag = "$batch";
	bt->http = http_request_start(c->eng, &o, gc_batch_done, NULL, bt);
	buf_free(&u);
	buf_free(&b);
}

/*
 * Gathering is over: every gathered call asks the scheduler for its
 * mailbox's slot.  The scheduler's run (the driver's kick, activated
 * first, so run first) grants what it can at once; then gc_collect_cb
 * puts those in batches, and the others go alone when their turn comes.
 */
static void
gc_gather_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct graph_client	*c = arg;
	struct graph_call	*gc;

	c->batch_armed = false;
	while ((gc = TAILQ_FIRST(&c->gathering)) != NULL) {
		TAILQ_REMOVE(&c->gathering, gc, bentry);
		gc_submit(gc);
		gc->gathered = true;
		TAILQ_INSERT_TAIL(&c->pending, gc, bentry);
	}
	event_active(&c->collect_ev, EV_TIMEOUT, 0);
}

/*
 * The run after the gathering is over: the calls it granted go in
 * batches of up to GRAPH_BATCH_MAX, each holding its own slot (so a
 * batch never carries more of a mailbox than its free slots), one alone
 * goes alone; those still waiting will go alone.
 */
static void
gc_collect_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct graph_client	*c = arg;
	struct graph_call	*gc;
	struct gc_batch		*bt;

	while ((gc = TAILQ_FIRST(&c->pending)) != NULL) {
		TAILQ_REMOVE(&c->pending, gc, bentry);
		gc->gathered = false;
	}

	while (!TAILQ_EMPTY(&c->collected)) {
		bt = xcalloc(1, sizeof *bt);
		bt->c = c;
		while (bt->n < GRAPH_BATCH_MAX &&
		    (gc = TAILQ_FIRST(&c->collected)) != NULL) {
			TAILQ_REMOVE(&c->collected, gc, bentry);
			gc_set_state(gc, GC_IDLE);
			gc->batch = bt;
			bt->v[bt->n++] = gc;
			bt->live++;
		}
		gc_batch_send(c, bt);
	}
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
	throttle_graph_stats(c->throttle, time_mono_ms(), &st->sched);
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
	json_kv_int(w, "batches", (int64_t)st.batches);
	json_kv_int(w, "batched", (int64_t)st.batched);
	json_kv_int(w, "waiting", st.waiting);
	json_key(w, "results");
	json_obj_begin(w);
	for (i = 0; i < GRAPH_ACT_MAX; i++)
		json_kv_int(w, graph_action_name(i), (int64_t)st.results[i]);
	json_obj_end(w);
	json_kv_int(w, "in_flight", st.sched.in_flight);
	json_kv_int(w, "max_in_flight_mailbox", st.sched.max_in_flight_mailbox);
	json_kv_int(w, "mailbox_concurrency", st.sched.concurrency);
	json_kv_int(w, "max_window_requests",
	    (int64_t)st.sched.max_window_requests);
	json_kv_int(w, "mailbox_rate", st.sched.rate);
	json_kv_int(w, "mailbox_rate_window_s", st.sched.window_ms / 1000);
	json_kv_int(w, "max_app_window_requests",
	    (int64_t)st.sched.max_app_window_requests);
	json_kv_int(w, "app_rate", st.sched.app_rate);
	json_kv_int(w, "app_rate_window_s", st.sched.app_window_ms / 1000);
	json_kv_int(w, "mailboxes", (int64_t)st.sched.mailboxes);
	json_kv_int(w, "paused", (int64_t)st.sched.paused);
	json_kv_int(w, "pauses", (int64_t)st.sched.pauses);
	json_kv_int(w, "waited_slot", (int64_t)st.sched.waited_slot);
	json_kv_int(w, "waited_rate", (int64_t)st.sched.waited_rate);
	json_kv_int(w, "waited_app", (int64_t)st.sched.waited_app);
	json_kv_int(w, "waited_pause", (int64_t)st.sched.waited_pause);
	/* The token's state, never the token. */
	json_kv_str(w, "token", st.auth.expires_in_ms > 0 ? "valid" : "none");
	json_kv_int(w, "token_expires_s", st.auth.expires_in_ms / 1000);
	json_kv_int(w, "token_fetches", (int64_t)st.auth.fetches);
	json_kv_int(w, "token_failures", (int64_t)st.auth.failures);
	json_obj_end(w);
}
