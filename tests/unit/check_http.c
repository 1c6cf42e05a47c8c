/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests for the HTTP engine against a libevent evhttp server on
 * 127.0.0.1 running in the same loop.
 */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "base/buf.h"
#include "evtest.h"
#include "base/json.h"
#include "io/http.h"
#include "base/log.h"
#include "base/xmalloc.h"

#define STREAM_CHUNKS	5

/* What the test server saw of the last request. */
struct seen {
	int		 count;
	char		 method[8];
	char		*body;
	char		*anchor;
	char		*affinity;
	char		*cookie;
	char		*ctype;
	char		*accept;
	char		*auth;
	char		*expect;
	char		*custom;
	unsigned	 ports[8];	/* client port per request */
};

/* A chunked reply the server sends on a timer. */
struct stream {
	struct evhttp_request	*req;
	struct event		*timer;
	int			 sent;
	bool			 closed;
};

/* What the client saw. */
struct result {
	bool			 done;
	int			 ndone;
	struct http_response	 resp;
	char			*body;
	char			*cookie;
	char			*wwwauth;
	char			*error;
	char			*ctype;
	char			*url;
	struct buf		 data;
	int			 ndata;
	int			 sent_at_first_data;
	int			 data_action;	/* what the data cb does */
	struct event		*resume;	/* ACT_PAUSE: armed on pause */
	struct http_request	*req;
};

enum { ACT_NONE, ACT_CANCEL, ACT_ABORT, ACT_PAUSE };

static struct event_base	*base;
static struct evhttp		*server;
static unsigned			 port;
static struct http_engine	*eng;
static struct seen		 seen;
static struct stream		 stream;
static struct evhttp_request	*slow_req;
static struct evhttp_connection	*last_conn;	/* server side */

static void
seen_free_fields(void)
{
	free(seen.body);
	free(seen.anchor);
	free(seen.affinity);
	free(seen.cookie);
	free(seen.ctype);
	free(seen.accept);
	free(seen.auth);
	free(seen.expect);
	free(seen.custom);
}

static void
seen_clear(void)
{
	seen_free_fields();
	memset(&seen, 0, sizeof seen);
}

static void
stream_close(struct evhttp_connection *conn, void *arg)
{
	/* libevent detached the unfinished reply; stream_free frees it. */
	stream.closed = true;
}

static void
stream_free(void)
{
	if (stream.req != NULL && stream.closed) {
		/* Frees a request whose connection is gone. */
		evhttp_send_reply_end(stream.req);
		stream.req = NULL;
	}
}

static void
stream_tick(evutil_socket_t fd, short ev, void *arg)
{
	struct evbuffer	*b;
	struct timeval	 tv = { 0, 30000 };

	if (stream.closed) {
		stream_free();
		return;
	}
	if (stream.sent == STREAM_CHUNKS) {
		evhttp_send_reply_end(stream.req);
		stream.req = NULL;
		return;
	}
	b = evbuffer_new();
	evbuffer_add_printf(b, "<chunk n=\"%d\"/>", stream.sent);
	evhttp_send_reply_chunk(stream.req, b);
	evbuffer_free(b);
	stream.sent++;
	evtimer_add(stream.timer, &tv);
}

static void
server_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer			*out;
	struct evkeyvalq		*oh;
	struct evhttp_connection	*conn;
	const char			*uri = evhttp_request_get_uri(req);
	char				*peer;
	ev_uint16_t			 pport;

	conn = evhttp_request_get_connection(req);
	last_conn = conn;
	evhttp_connection_get_peer(conn, &peer, &pport);
	if (seen.count < 8)
		seen.ports[seen.count] = pport;
	seen.count++;
	seen_free_fields();
	snprintf(seen.method, sizeof seen.method, "%s",
	    evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST" :
	    "GET");
	seen.body = evtest_body(req);
	seen.anchor = evtest_header(req, "X-AnchorMailbox");
	seen.affinity = evtest_header(req, "X-PreferServerAffinity");
	seen.cookie = evtest_header(req, "Cookie");
	seen.ctype = evtest_header(req, "Content-Type");
	seen.accept = evtest_header(req, "Accept");
	seen.auth = evtest_header(req, "Authorization");
	seen.expect = evtest_header(req, "Expect");
	seen.custom = evtest_header(req, "X-Custom");

	oh = evhttp_request_get_output_headers(req);
	out = evbuffer_new();
	if (strcmp(uri, "/echo") == 0) {
		evhttp_add_header(oh, "Content-Type",
		    "text/xml; charset=utf-8");
		evbuffer_add_printf(out, "pong:%s", seen.body);
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strcmp(uri, "/big") == 0) {
		for (int i = 0; i < 100; i++)
			evbuffer_add_printf(out, "%01024d", i);
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strcmp(uri, "/401") == 0) {
		evhttp_add_header(oh, "WWW-Authenticate", "Negotiate");
		evhttp_add_header(oh, "WWW-Authenticate", "NTLM");
		evhttp_add_header(oh, "WWW-Authenticate",
		    "Basic realm=\"ex.example\"");
		evbuffer_add_printf(out, "denied");
		evhttp_send_reply(req, 401, "Unauthorized", out);
	} else if (strcmp(uri, "/cookie") == 0) {
		evhttp_add_header(oh, "Set-Cookie", "other=1; path=/");
		evhttp_add_header(oh, "Set-Cookie", "X-BackEndOverrideCookie="
		    "EXMB01.contoso.com~1942062522; path=/EWS");
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strcmp(uri, "/fault") == 0) {
		evbuffer_add_printf(out, "<soap:Fault>ErrorServerBusy"
		    "</soap:Fault>");
		evhttp_send_reply(req, 500, "Internal Server Error", out);
	} else if (strcmp(uri, "/404") == 0) {
		evhttp_send_reply(req, 404, "Not Found", out);
	} else if (strcmp(uri, "/slow") == 0) {
		/* Never answered; freed with the server. */
		slow_req = req;
	} else if (strcmp(uri, "/stream") == 0) {
		struct timeval tv = { 0, 30000 };

		stream.req = req;
		stream.sent = 0;
		stream.closed = false;
		evhttp_connection_set_closecb(conn, stream_close, NULL);
		evhttp_send_reply_start(req, 200, "OK");
		evtimer_add(stream.timer, &tv);
	} else
		evhttp_send_reply(req, 400, "Bad Request", out);
	evbuffer_free(out);
}

static void
setup(void)
{
	struct http_engine_opts		 o;
	char				*cause = NULL;

	log_init("check_http", LOG_TARGET_STDERR, LOG_NOTICE);
	base = event_base_new();
	server = evtest_server(base, server_cb, NULL, &port);
	ck_assert_ptr_nonnull(server);
	stream.timer = evtimer_new(base, stream_tick, NULL);
	memset(&o, 0, sizeof o);
	o.tls_verify = true;
	eng = http_engine_new(base, &o, &cause);
	ck_assert_ptr_nonnull(eng);
}

static void
teardown(void)
{
	http_engine_free(eng);
	eng = NULL;
	stream_free();
	event_free(stream.timer);
	memset(&stream, 0, sizeof stream);
	evhttp_free(server);
	slow_req = NULL;
	last_conn = NULL;
	event_base_free(base);
	seen_clear();
}

static void
result_free(struct result *r)
{
	free(r->body);
	free(r->cookie);
	free(r->wwwauth);
	free(r->error);
	free(r->ctype);
	free(r->url);
	buf_free(&r->data);
}

static void
on_done(struct http_request *req, const struct http_response *resp,
    void *arg)
{
	struct result	*r = arg;

	r->done = true;
	r->ndone++;
	r->resp = *resp;
	free(r->body);
	r->body = xstrndup(resp->body, resp->body_len);
	r->cookie = resp->cookie_backend ? xstrdup(resp->cookie_backend) :
	    NULL;
	r->wwwauth = resp->www_authenticate ?
	    xstrdup(resp->www_authenticate) : NULL;
	r->error = resp->error ? xstrdup(resp->error) : NULL;
	r->ctype = resp->content_type ? xstrdup(resp->content_type) : NULL;
	/* Dangling after return: never look at these again. */
	r->resp.body = r->resp.error = NULL;
	r->resp.cookie_backend = r->resp.www_authenticate = NULL;
	r->resp.content_type = NULL;
}

static int
on_data(const char *p, size_t len, void *arg)
{
	struct result	*r = arg;

	if (r->ndata++ == 0)
		r->sent_at_first_data = stream.sent;
	switch (r->data_action) {
	case ACT_CANCEL:
		http_request_cancel(r->req);
		r->done = true;		/* stop the loop */
		return (HTTP_DATA_OK);
	case ACT_ABORT:
		return (HTTP_DATA_ABORT);
	case ACT_PAUSE:
		if (r->ndata == 1) {
			struct timeval	 tv = { 0, 100000 };

			/* Resumed from the loop 100 ms after this pause. */
			evtimer_add(r->resume, &tv);
			return (HTTP_DATA_PAUSE);
		}
		break;
	}
	buf_append(&r->data, p, len);
	return (HTTP_DATA_OK);
}

static bool
run_until(bool *flag, int ms)
{
	return (evtest_run_until(base, flag, ms));
}

static void
run_for(int ms)
{
	evtest_run_for(base, ms);
}

static char *
url(const char *path)
{
	char	*u;

	xasprintf(&u, "http://127.0.0.1:%u%s", port, path);
	return (u);
}

/*
 * Start a request to path on the test server with options o (NULL for
 * defaults); data callback on_data when streaming.
 */
static struct http_request *
start(struct http_engine *e, struct result *r, struct http_request_opts *o,
    enum http_method method, const char *path, bool streaming)
{
	struct http_request_opts	 def = { 0 };

	if (o == NULL)
		o = &def;
	free(r->url);
	r->url = url(path);
	o->method = method;
	o->url = r->url;
	r->req = http_request_start(e, o, on_done,
	    streaming ? on_data : NULL, r);
	return (r->req);
}

/* Run until r's done callback ran; fail the test after 5 s. */
static void
wait_done(struct result *r)
{
	ck_assert(run_until(&r->done, 5000));
}

START_TEST(test_unary_post)
{
	struct result			 r = { 0 };
	struct http_request_opts	 o = { 0 };
	const char			*extra[] = { "X-Custom: yes", NULL };

	o.body = "<Envelope/>";
	o.body_len = strlen(o.body);
	o.anchor_mailbox = "anchor@example.com";
	o.prefer_affinity = true;
	o.backend_cookie = "EXMB01.contoso.com~1942062522";
	o.headers = extra;
	o.timeout_ms = 5000;
	start(eng, &r, &o, HTTP_POST, "/echo", false);
	wait_done(&r);
	ck_assert_int_eq(r.resp.result, HTTP_RESULT_OK);
	ck_assert_int_eq(r.resp.status, 200);
	ck_assert_str_eq(r.body, "pong:<Envelope/>");
	ck_assert_str_eq(r.ctype, "text/xml; charset=utf-8");
	ck_assert_str_eq(seen.method, "POST");
	ck_assert_str_eq(seen.body, "<Envelope/>");
	ck_assert_str_eq(seen.anchor, "anchor@example.com");
	ck_assert_str_eq(seen.affinity, "true");
	ck_assert_str_eq(seen.cookie,
	    "X-BackEndOverrideCookie=EXMB01.contoso.com~1942062522");
	ck_assert_str_eq(seen.ctype, "text/xml; charset=utf-8");
	ck_assert_str_eq(seen.accept, "text/xml");
	ck_assert_str_eq(seen.custom, "yes");
	ck_assert_ptr_null(seen.auth);
	ck_assert_ptr_null(seen.expect);
	ck_assert_ptr_null(r.cookie);
	ck_assert_int_eq(http_engine_stats(eng)->results[HTTP_RESULT_OK], 1);
	ck_assert_int_eq(http_engine_stats(eng)->bytes_out, 11);
	ck_assert_int_eq(http_engine_stats(eng)->in_flight, 0);
	{
		struct buf		 b = BUF_INIT;
		struct json_writer	 w;

		json_writer_init(&w, &b);
		http_stats_json(http_engine_stats(eng), &w);
		ck_assert_ptr_nonnull(strstr(buf_str(&b), "\"started\":1,"));
		ck_assert_ptr_nonnull(strstr(buf_str(&b),
		    "\"results\":{\"ok\":1,\"auth\":0,"));
		buf_free(&b);
	}
	result_free(&r);
}
END_TEST

/* Second request started from the first one's done callback. */
struct chain {
	struct result	 first, second;
};

static void
chain_done(struct http_request *req, const struct http_response *resp,
    void *arg)
{
	struct chain			*c = arg;
	struct http_request_opts	 o = { 0 };

	on_done(req, resp, &c->first);
	o.body = "two";
	o.body_len = 3;
	start(eng, &c->second, &o, HTTP_POST, "/echo", false);
}

START_TEST(test_keepalive)
{
	struct chain			 c = { 0 };
	struct http_request_opts	 o = { 0 };

	o.body = "one";
	o.body_len = 3;
	o.method = HTTP_POST;
	o.url = c.first.url = url("/echo");
	http_request_start(eng, &o, chain_done, NULL, &c);
	wait_done(&c.second);
	ck_assert_int_eq(c.first.resp.result, HTTP_RESULT_OK);
	ck_assert_int_eq(c.second.resp.result, HTTP_RESULT_OK);
	ck_assert_str_eq(c.second.body, "pong:two");
	ck_assert_int_eq(seen.count, 2);
	/* Same client port: one TCP connection carried both. */
	ck_assert_uint_eq(seen.ports[0], seen.ports[1]);
	result_free(&c.first);
	result_free(&c.second);
}
END_TEST

/*
 * The connection curl keeps after a request is close-on-exec (an exec
 * sink's child would inherit it otherwise).  Found by its local port,
 * which the server saw.
 */
START_TEST(test_sockets_cloexec)
{
	struct result		 r = { 0 };
	struct sockaddr_in	 sin;
	socklen_t		 len;
	struct dirent		*de;
	DIR			*d;
	int			 fd, found = 0;

	start(eng, &r, NULL, HTTP_GET, "/echo", false);
	wait_done(&r);
	ck_assert_int_eq(r.resp.result, HTTP_RESULT_OK);
	ck_assert_uint_ne(seen.ports[0], 0);
	d = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		fd = atoi(de->d_name);
		len = sizeof sin;
		if (de->d_name[0] == '.' || fd == dirfd(d) ||
		    getsockname(fd, (struct sockaddr *)&sin, &len) == -1 ||
		    sin.sin_family != AF_INET ||
		    ntohs(sin.sin_port) != seen.ports[0])
			continue;
		found++;
		ck_assert_msg(fcntl(fd, F_GETFD) & FD_CLOEXEC,
		    "curl's socket %d is not close-on-exec", fd);
	}
	closedir(d);
	ck_assert_int_eq(found, 1);
	result_free(&r);
}
END_TEST

static void
flag_cb(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/*
 * A connection's socket stays with the loop while the connection waits
 * in curl's pool.  When the server closes it there, the loop wakes for
 * that once, not on every pass (the socket stays readable); the next
 * request finds the connection dead and makes a new one, and the old
 * socket is forgotten when curl closes it.
 */
START_TEST(test_idle_conn_closed)
{
	struct result	 r[2] = { 0 };
	struct timeval	 tv = { 0, 200000 };
	struct event	*t;
	bool		 expired = false;
	int		 passes = 0;

	start(eng, &r[0], NULL, HTTP_GET, "/echo", false);
	wait_done(&r[0]);
	ck_assert_int_eq(r[0].resp.result, HTTP_RESULT_OK);
	ck_assert_uint_eq(http_engine_stats(eng)->sockets, 1);
	ck_assert_ptr_nonnull(last_conn);
	evhttp_connection_free(last_conn);	/* the server closes it */
	last_conn = NULL;
	t = evtimer_new(base, flag_cb, &expired);
	evtimer_add(t, &tv);
	while (!expired) {
		ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE), 0);
		passes++;
	}
	event_free(t);
	ck_assert_msg(passes <= 10, "%d loop passes in 200 ms", passes);
	ck_assert_uint_eq(http_engine_stats(eng)->sockets, 1);

	start(eng, &r[1], NULL, HTTP_GET, "/echo", false);
	wait_done(&r[1]);
	ck_assert_int_eq(r[1].resp.result, HTTP_RESULT_OK);
	ck_assert_int_eq(seen.count, 2);
	ck_assert_uint_ne(seen.ports[0], seen.ports[1]);
	ck_assert_uint_eq(http_engine_stats(eng)->sockets, 1);
	result_free(&r[0]);
	result_free(&r[1]);
}
END_TEST

static const char stream_all[] = "<chunk n=\"0\"/><chunk n=\"1\"/>"
    "<chunk n=\"2\"/><chunk n=\"3\"/><chunk n=\"4\"/>";

START_TEST(test_stream)
{
	struct result			 r = { 0 };
	struct http_request_opts	 o = { 0 };

	o.body = "<GetStreamingEvents/>";
	o.body_len = strlen(o.body);
	start(eng, &r, &o, HTTP_POST, "/stream", true);
	wait_done(&r);
	ck_assert_int_eq(r.resp.result, HTTP_RESULT_OK);
	ck_assert_int_eq(r.resp.body_len, 0);
	ck_assert_str_eq(buf_str(&r.data), stream_all);
	/* Delivered as it arrived, not at the end. */
	ck_assert_int_ge(r.ndata, 2);
	ck_assert_int_lt(r.sent_at_first_data, STREAM_CHUNKS);
	ck_assert_int_eq(http_engine_stats(eng)->bytes_in, strlen(stream_all));
	result_free(&r);
}
END_TEST

START_TEST(test_stream_cancel_inside)
{
	struct result	 r = { 0 };

	r.data_action = ACT_CANCEL;
	start(eng, &r, NULL, HTTP_GET, "/stream", true);
	wait_done(&r);
	ck_assert(run_until(&stream.closed, 5000));
	run_for(50);
	ck_assert_int_eq(r.ndone, 0);
	ck_assert_int_eq(r.ndata, 1);
	ck_assert_int_eq(http_engine_stats(eng)->in_flight, 0);
	ck_assert_int_eq(http_engine_stats(eng)->cancelled, 1);
	result_free(&r);
}
END_TEST

START_TEST(test_stream_cancel_outside)
{
	struct result	 r = { 0 };

	start(eng, &r, NULL, HTTP_GET, "/stream", true);
	while (r.ndata == 0 && !r.done)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_gt(r.ndata, 0);
	http_request_cancel(r.req);
	ck_assert(run_until(&stream.closed, 5000));
	run_for(100);
	ck_assert_int_eq(r.ndone, 0);
	ck_assert_int_lt(stream.sent, STREAM_CHUNKS);
	ck_assert_int_eq(http_engine_stats(eng)->in_flight, 0);
	result_free(&r);
}
END_TEST

START_TEST(test_stream_abort)
{
	struct result	 r = { 0 };

	r.data_action = ACT_ABORT;
	start(eng, &r, NULL, HTTP_GET, "/stream", true);
	wait_done(&r);
	ck_assert_int_eq(r.resp.result, HTTP_RESULT_ABORTED);
	ck_assert_int_eq(r.ndata, 1);
	result_free(&r);
}
END_TEST

static void
resume_later(evutil_socket_t fd, short ev, void *arg)
{
	struct result	*r = arg;

	http_request_resume(r->req);
}

START_TEST(test_stream_pause)
{
	struct result	 r = { 0 };

	r.data_action = ACT_PAUSE;
	r.resume = evtimer_new(base, resume_later, &r);
	start(eng, &r, NULL, HTTP_GET, "/stream", true);
	wait_done(&r);
	ck_assert_int_eq(r.resp.result, HTTP_RESULT_OK);
	/* The refused first chunk came again after the resume. */
	ck_assert_str_eq(buf_str(&r.data), stream_all);
	event_free(r.resume);
	result_free(&r);
}
END_TEST

START_TEST(test_toobig)
{
	struct result			 r = { 0 }, r2 = { 0 };
	struct http_request_opts	 o = { 0 };

	o.max_response = 10 * 1024;
	start(eng, &r, &o, HTTP_GET, "/big", false);
	wait_done(&r);
	ck_assert_int_eq(r.resp.result, HTTP_RESULT_TOOBIG);
	ck_assert_ptr_nonnull(r.error);

	/* The same body fits the default cap. */
	start(eng, &r2, NULL, HTTP_GET, "/big", false);
	wait_done(&r2);
	ck_assert_int_eq(r2.resp.result, HTTP_RESULT_OK);
	ck_assert_uint_eq(r2.resp.body_len, 100 * 1024);
	result_free(&r);
	result_free(&r2);
}
END_TEST

START_TEST(test_timeout)
{
	struct result			 r = { 0 };
	struct http_request_opts	 o = { 0 };

	/*
	 * The timeout counts from the start, connect included: on a
	 * loaded machine 200 ms can pass before the server has the
	 * request.  That run proves nothing about a server that does not
	 * answer, so it is run again with twice the time.
	 */
	for (o.timeout_ms = 200; o.timeout_ms <= 3200; o.timeout_ms *= 2) {
		result_free(&r);
		memset(&r, 0, sizeof r);
		start(eng, &r, &o, HTTP_GET, "/slow", false);
		wait_done(&r);
		ck_assert_int_eq(r.resp.result, HTTP_RESULT_TRANSIENT);
		/* CURLE_OPERATION_TIMEDOUT */
		ck_assert_int_eq(r.resp.curl_code, 28);
		ck_assert_int_ge(r.resp.elapsed_ms, o.timeout_ms * 3 / 4);
		if (slow_req != NULL)
			break;
	}
	ck_assert_ptr_nonnull(slow_req);
	result_free(&r);
}
END_TEST

START_TEST(test_401)
{
	struct result	 r = { 0 };

	start(eng, &r, NULL, HTTP_POST, "/401", false);
	wait_done(&r);
	ck_assert_int_eq(r.resp.result, HTTP_RESULT_AUTH);
	ck_assert_int_eq(r.resp.status, 401);
	ck_assert_str_eq(r.wwwauth,
	    "Negotiate\nNTLM\nBasic realm=\"ex.example\"");
	ck_assert_str_eq(r.body, "denied");
	result_free(&r);
}
END_TEST

START_TEST(test_status_classes)
{
	static const struct {
		const char	*path;
		enum http_result result;
		long		 status;
	} cases[] = {
		{ "/fault", HTTP_RESULT_THROTTLED, 500 },
		{ "/404", HTTP_RESULT_FATAL, 404 },
		{ "/cookie", HTTP_RESULT_OK, 200 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct result	 r = { 0 };

		start(eng, &r, NULL, HTTP_POST, cases[i].path, false);
		wait_done(&r);
		ck_assert_int_eq(r.resp.result, cases[i].result);
		ck_assert_int_eq(r.resp.status, cases[i].status);
		if (cases[i].status == 500)
			ck_assert_str_eq(r.body,
			    "<soap:Fault>ErrorServerBusy</soap:Fault>");
		if (cases[i].status == 200)
			ck_assert_str_eq(r.cookie,
			    "EXMB01.contoso.com~1942062522");
		else
			ck_assert_ptr_null(r.cookie);
		result_free(&r);
	}
}
END_TEST

/* A loopback port nobody listens on: bind, learn it, close. */
static unsigned
unused_port(void)
{
	struct sockaddr_in	 sin;
	socklen_t		 slen = sizeof sin;
	int			 fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ne(fd, -1);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	close(fd);
	return (ntohs(sin.sin_port));
}

START_TEST(test_refused)
{
	struct result			 r = { 0 };
	struct http_request_opts	 o = { 0 };
	char				*u;

	xasprintf(&u, "http://127.0.0.1:%u/", unused_port());
	o.method = HTTP_GET;
	o.url = u;
	http_request_start(eng, &o, on_done, NULL, &r);
	wait_done(&r);
	ck_assert_int_eq(r.resp.result, HTTP_RESULT_TRANSIENT);
	ck_assert_int_eq(r.resp.curl_code, 7);	/* CURLE_COULDNT_CONNECT */
	ck_assert_ptr_nonnull(r.error);
	result_free(&r);
	free(u);
}
END_TEST

START_TEST(test_bad_header)
{
	struct result			 r = { 0 };
	struct http_request_opts	 o = { 0 };

	o.anchor_mailbox = "a@example.com\r\nX-Evil: 1";
	ck_assert_ptr_nonnull(start(eng, &r, &o, HTTP_POST, "/echo", false));
	ck_assert(!r.done);	/* reported later, from the loop */
	wait_done(&r);
	ck_assert_int_eq(r.resp.result, HTTP_RESULT_FATAL);
	ck_assert_int_eq(seen.count, 0);
	result_free(&r);
}
END_TEST

START_TEST(test_cancel_before_run)
{
	struct result	 r = { 0 };

	http_request_cancel(start(eng, &r, NULL, HTTP_GET, "/echo", false));
	run_for(100);
	ck_assert_int_eq(r.ndone, 0);
	ck_assert_int_eq(seen.count, 0);
	/* Pending requests are cancelled quietly by engine teardown. */
	start(eng, &r, NULL, HTTP_GET, "/echo", false);
	result_free(&r);
}
END_TEST

START_TEST(test_basic_auth)
{
	struct result			 r = { 0 }, r2 = { 0 };
	struct http_request_opts	 o = { 0 };
	struct http_engine_opts		 eo = { 0 };
	struct http_engine		*e2;
	char				*cause = NULL;

	eo.cred = HTTP_CRED_BASIC;
	eo.username = "EXAMPLE\\svc";
	eo.password = "s3cret";
	eo.tls_verify = true;
	e2 = http_engine_new(base, &eo, &cause);
	ck_assert_ptr_nonnull(e2);
	o.body = "x";
	o.body_len = 1;
	/* Trace at debug level too: exercises the redacting tracer. */
	log_set_level(LOG_DEBUG);
	start(e2, &r, &o, HTTP_POST, "/echo", false);
	wait_done(&r);
	log_set_level(LOG_NOTICE);
	ck_assert_int_eq(r.resp.result, HTTP_RESULT_OK);
	/* base64("EXAMPLE\svc:s3cret") */
	ck_assert_str_eq(seen.auth, "Basic RVhBTVBMRVxzdmM6czNjcmV0");

	/* no_auth requests carry no credentials. */
	o.no_auth = true;
	start(e2, &r2, &o, HTTP_POST, "/echo", false);
	wait_done(&r2);
	ck_assert_int_eq(r2.resp.result, HTTP_RESULT_OK);
	ck_assert_ptr_null(seen.auth);
	result_free(&r);
	result_free(&r2);
	http_engine_free(e2);
}
END_TEST

START_TEST(test_bad_tls_files)
{
	struct http_engine_opts	 eo = { 0 };
	char			*cause = NULL;

	eo.tls_verify = true;
	eo.ca_file = "/nonexistent/ca.pem";
	ck_assert_ptr_null(http_engine_new(base, &eo, &cause));
	ck_assert_ptr_nonnull(strstr(cause, "/nonexistent/ca.pem"));
	free(cause);
	eo.ca_file = NULL;
	eo.client_key = "/dev/null";
	cause = NULL;
	ck_assert_ptr_null(http_engine_new(base, &eo, &cause));
	ck_assert_ptr_nonnull(strstr(cause, "client_cert"));
	free(cause);
}
END_TEST

static void
redact_eq(const char *in, const char *want)
{
	struct buf	 b = BUF_INIT;

	http_redact_header(in, strlen(in), &b);
	ck_assert_str_eq(buf_str(&b), want);
	buf_free(&b);
}

START_TEST(test_redact)
{
	redact_eq("Authorization: NTLM TlRMTVNTUAABAAAAB4IIog==",
	    "Authorization: NTLM <redacted>");
	redact_eq("authorization: Basic dXNlcjpwYXNz\r\n",
	    "authorization: Basic <redacted>");
	redact_eq("Authorization: Bearer eyJ0eXAiOiJKV1Qi",
	    "Authorization: Bearer <redacted>");
	redact_eq("Proxy-Authorization: secretwithoutscheme",
	    "Proxy-Authorization: <redacted>");
	redact_eq("Cookie: X-BackEndOverrideCookie=be~1",
	    "Cookie: <redacted>");
	redact_eq("Set-Cookie: a=b; path=/", "Set-Cookie: <redacted>");
	redact_eq("WWW-Authenticate: NTLM TlRMTVNTUAACAAAADAAMADgAAAA=",
	    "WWW-Authenticate: NTLM <redacted>");
	redact_eq("WWW-Authenticate: Negotiate YIIGhgYJKoZIhvcS",
	    "WWW-Authenticate: Negotiate <redacted>");
	redact_eq("WWW-Authenticate: Basic realm=\"x\"",
	    "WWW-Authenticate: Basic realm=\"x\"");
	redact_eq("WWW-Authenticate: NTLM", "WWW-Authenticate: NTLM");
	redact_eq("X-AnchorMailbox: a@b.c", "X-AnchorMailbox: a@b.c");
	redact_eq("X-Weird: a\x01\x1b[31mb", "X-Weird: a??[31mb");
	/* Not fooled by a prefix. */
	redact_eq("Authorizationx: abc", "Authorizationx: abc");
}
END_TEST

START_TEST(test_result_names)
{
	ck_assert_str_eq(http_result_name(HTTP_RESULT_OK), "ok");
	ck_assert_str_eq(http_result_name(HTTP_RESULT_TOOBIG), "toobig");
	ck_assert_str_eq(http_result_name(HTTP_RESULT_ABORTED), "aborted");
	ck_assert_str_eq(http_result_name(HTTP_RESULT_MAX), "unknown");
}
END_TEST

/*
 * Requests one after another reuse one curl easy handle; what the first
 * set (credentials, method, headers) is gone in the next.
 */
START_TEST(test_handle_reuse)
{
	struct result			 r[3] = { 0 };
	struct http_request_opts	 o = { 0 };
	const char			*extra[] = { "X-Custom: yes", NULL };
	int				 i;

	o.body = "one";
	o.body_len = 3;
	o.anchor_mailbox = "anchor@example.com";
	o.headers = extra;
	start(eng, &r[0], &o, HTTP_POST, "/echo", false);
	wait_done(&r[0]);
	ck_assert_str_eq(seen.custom, "yes");
	start(eng, &r[1], NULL, HTTP_GET, "/echo", false);
	wait_done(&r[1]);
	ck_assert_str_eq(seen.method, "GET");
	ck_assert_ptr_null(seen.custom);
	ck_assert_ptr_null(seen.anchor);
	ck_assert_ptr_null(seen.ctype);
	start(eng, &r[2], NULL, HTTP_GET, "/404", false);
	wait_done(&r[2]);
	ck_assert_int_eq(r[2].resp.status, 404);
	ck_assert_int_eq(r[0].resp.result, HTTP_RESULT_OK);
	ck_assert_int_eq(r[1].resp.result, HTTP_RESULT_OK);
	ck_assert_uint_eq(http_engine_stats(eng)->started, 3);
	ck_assert_uint_eq(http_engine_stats(eng)->handles, 1);
	for (i = 0; i < 3; i++)
		result_free(&r[i]);
}
END_TEST

/*
 * Proxy variables in the environment (read when the engine is made)
 * are still honoured: a proxy nobody listens on makes the request fail
 * to connect, unless no_proxy exempts the host; none at all, and the
 * request goes straight to the server.
 */
START_TEST(test_proxy_env)
{
	struct result			 r = { 0 };
	struct http_engine_opts		 eo = { 0 };
	struct http_engine		*e2;
	char				*cause = NULL, *proxy;
	int				 pass;

	xasprintf(&proxy, "http://127.0.0.1:%u", unused_port());
	eo.tls_verify = true;
	for (pass = 0; pass < 3; pass++) {
		unsetenv("no_proxy");
		unsetenv("NO_PROXY");
		unsetenv("http_proxy");
		unsetenv("all_proxy");
		unsetenv("ALL_PROXY");
		if (pass < 2)
			ck_assert_int_eq(setenv("http_proxy", proxy, 1), 0);
		if (pass == 1)
			ck_assert_int_eq(setenv("no_proxy", "127.0.0.1", 1),
			    0);
		e2 = http_engine_new(base, &eo, &cause);
		ck_assert_ptr_nonnull(e2);
		memset(&r, 0, sizeof r);
		start(e2, &r, NULL, HTTP_GET, "/echo", false);
		wait_done(&r);
		if (pass == 0) {
			ck_assert_int_eq(r.resp.result,
			    HTTP_RESULT_TRANSIENT);
			ck_assert_int_eq(r.resp.curl_code, 7);
		} else
			ck_assert_int_eq(r.resp.result, HTTP_RESULT_OK);
		result_free(&r);
		http_engine_free(e2);
	}
	unsetenv("http_proxy");
	unsetenv("no_proxy");
	free(proxy);
}
END_TEST

static Suite *
http_suite(void)
{
	Suite	*s = suite_create("http");
	TCase	*tc = tcase_create("engine");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_unary_post);
	tcase_add_test(tc, test_keepalive);
	tcase_add_test(tc, test_sockets_cloexec);
	tcase_add_test(tc, test_idle_conn_closed);
	tcase_add_test(tc, test_stream);
	tcase_add_test(tc, test_stream_cancel_inside);
	tcase_add_test(tc, test_stream_cancel_outside);
	tcase_add_test(tc, test_stream_abort);
	tcase_add_test(tc, test_stream_pause);
	tcase_add_test(tc, test_toobig);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_401);
	tcase_add_test(tc, test_status_classes);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_bad_header);
	tcase_add_test(tc, test_cancel_before_run);
	tcase_add_test(tc, test_basic_auth);
	tcase_add_test(tc, test_bad_tls_files);
	tcase_add_test(tc, test_handle_reuse);
	tcase_add_test(tc, test_proxy_env);
	suite_add_tcase(s, tc);

	tc = tcase_create("pure");
	tcase_add_test(tc, test_redact);
	tcase_add_test(tc, test_result_names);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(http_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
