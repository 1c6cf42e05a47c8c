/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests for the push listener over HTTP (raw sockets) and HTTPS
 * (the HTTP engine verifying a certificate made at test time).
 */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "base/buf.h"
#include "ews/ews_parse.h"
#include "evtest.h"
#include "io/http.h"
#include "base/log.h"
#include "io/push.h"
#include "io/push_req.h"
#include "base/xmalloc.h"

#define NS_M	"http://schemas.microsoft.com/exchange/services/2006/messages"
#define NS_T	"http://schemas.microsoft.com/exchange/services/2006/types"

/* A SendNotification as Exchange posts it (shape per the schema). */
#define NOTIFICATION(id)						\
	"<?xml version=\"1.0\" encoding=\"utf-8\"?>"			\
	"<soap:Envelope xmlns:soap="					\
	"\"http://schemas.xmlsoap.org/soap/envelope/\">"		\
	"<soap:Header><t:RequestServerVersion xmlns:t=\"" NS_T "\" "	\
	"Version=\"Exchange2013_SP1\"/></soap:Header><soap:Body>"	\
	"<m:SendNotification xmlns:m=\"" NS_M "\" xmlns:t=\"" NS_T "\">" \
	"<m:ResponseMessages><m:SendNotificationResponseMessage "	\
	"ResponseClass=\"Success\"><m:ResponseCode>NoError"		\
	"</m:ResponseCode><m:Notification><t:SubscriptionId>" id	\
	"</t:SubscriptionId><t:PreviousWatermark>AQAAAA==</t:"		\
	"PreviousWatermark><t:MoreEvents>false</t:MoreEvents>"		\
	"<t:StatusEvent><t:Watermark>AQAAAB==</t:Watermark>"		\
	"</t:StatusEvent></m:Notification>"				\
	"</m:SendNotificationResponseMessage></m:ResponseMessages>"	\
	"</m:SendNotification></soap:Body></soap:Envelope>"

/* A well-formed SendNotification with no Notification in it. */
#define NOTIFICATION_EMPTY						\
	"<soap:Envelope xmlns:soap="					\
	"\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>"	\
	"<m:SendNotification xmlns:m=\"" NS_M "\"><m:ResponseMessages>"	\
	"<m:SendNotificationResponseMessage ResponseClass=\"Success\">"	\
	"<m:ResponseCode>NoError</m:ResponseCode>"			\
	"</m:SendNotificationResponseMessage></m:ResponseMessages>"	\
	"</m:SendNotification></soap:Body></soap:Envelope>"

static struct event_base	*base;
static struct push		*push;
static char			 tmpdir[] = "/tmp/check_push.XXXXXX";
static char			*cert_file, *key_file;
static int			 notified;
static char			*last_body;
static char			*target;	/* path/TOKEN of the listener */
/* Extra listener options for the next listen_on (reset in setup). */
static const char		*opt_allow;
static int64_t			 opt_timeout_ms;

/* The owner: knows sub-known, refuses sub-bad, unsubscribes the rest. */
static int
on_notify(const struct ews_notifications *n, const char *body, size_t len,
    void *arg)
{
	const char	*id;

	notified++;
	free(last_body);
	last_body = xstrndup(body, len);
	ck_assert_uint_eq(strlen(body), len);
	if (n->nmsgs != 1 || !n->msgs[0].has_notification)
		return (PUSH_BAD);
	id = n->msgs[0].notification.subscription_id;
	if (strcmp(id, "sub-known") == 0)
		return (PUSH_OK);
	if (strcmp(id, "sub-bad") == 0)
		return (PUSH_BAD);
	return (PUSH_UNSUBSCRIBE);
}

/* A self-signed P-256 certificate for 127.0.0.1, as PEM files. */
static void
make_cert(void)
{
	EVP_PKEY	*pk;
	X509		*x;
	X509_NAME	*n;
	X509_EXTENSION	*ext;
	X509V3_CTX	 v3;
	FILE		*f;

	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	xasprintf(&cert_file, "%s/cert.pem", tmpdir);
	xasprintf(&key_file, "%s/key.pem", tmpdir);
	pk = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(pk);
	x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, pk);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"127.0.0.1", -1, -1, 0);
	X509_set_issuer_name(x, n);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
	    "IP:127.0.0.1");
	ck_assert_ptr_nonnull(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ck_assert_int_gt(X509_sign(x, pk, EVP_sha256()), 0);
	f = fopen(cert_file, "w");
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(key_file, "w");
	PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(pk);
}

static void
setup(void)
{
	log_init("check_push", LOG_TARGET_STDERR, LOG_ERR);
	base = event_base_new();
	make_cert();
	notified = 0;
	opt_allow = NULL;
	opt_timeout_ms = 0;
}

static void
teardown(void)
{
	push_free(push);
	push = NULL;
	event_base_free(base);
	unlink(cert_file);
	unlink(key_file);
	rmdir(tmpdir);
	memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
	free(cert_file);
	free(key_file);
	free(last_body);
	last_body = NULL;
	free(target);
	target = NULL;
}

static char	*push_target(const char *);

static void
listen_on(const char *path, const char *cert, size_t max_body,
    unsigned max_conns)
{
	struct push_opts	 o = { 0 };
	char			*cause = NULL;

	o.listen = "127.0.0.1:0";
	o.path = path;
	o.certificate = cert;
	o.key = cert != NULL ? key_file : NULL;
	o.max_body = max_body;
	o.max_connections = max_conns;
	o.allow = opt_allow;
	o.timeout_ms = opt_timeout_ms;
	push = push_new(base, &o, on_notify, NULL, &cause);
	if (push == NULL)
		ck_abort_msg("push_new: %s", cause);
	ck_assert_uint_gt(push_port(push), 0);
	free(target);
	target = push_target(path);
}

/* The request target for the configured path: its URL's path. */
static char *
push_target(const char *path)
{
	char	*url, *u, *t;

	xasprintf(&url, "http://127.0.0.1:%u%s", push_port(push),
	    path != NULL ? path : "");
	u = push_notify_url(push, url);
	ck_assert_ptr_nonnull(u);
	t = xstrdup(u + strlen("http://127.0.0.1:") +
	    strspn(u + strlen("http://127.0.0.1:"), "0123456789"));
	free(url);
	free(u);
	return (t);
}

/* target with something appended (allocated). */
static char *
target_plus(const char *more)
{
	char	*t;

	xasprintf(&t, "%s%s", target, more);
	return (t);
}

/* ---- a raw HTTP client on the same loop ---- */

struct raw {
	struct bufferevent	*bev;
	struct buf		 in;
	bool			 done;
};

static void
raw_read(struct bufferevent *bev, void *arg)
{
	struct raw	*r = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	size_t		 len = evbuffer_get_length(in);
	char		*p = xmalloc(len);

	evbuffer_remove(in, p, len);
	buf_append(&r->in, p, len);
	free(p);
}

static void
raw_event(struct bufferevent *bev, short what, void *arg)
{
	struct raw	*r = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		raw_read(bev, arg);
		r->done = true;
	}
}

static void
raw_connect(struct raw *r)
{
	struct sockaddr_in	 sin;

	memset(r, 0, sizeof *r);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(push_port(push));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(r->bev, raw_read, NULL, raw_event, r);
	bufferevent_enable(r->bev, EV_READ);
	ck_assert_int_eq(bufferevent_socket_connect(r->bev,
	    (struct sockaddr *)&sin, sizeof sin), 0);
}

static void
raw_send(struct raw *r, const char *method, const char *path,
    const char *ctype, const char *body)
{
	struct buf	 req = BUF_INIT;

	buf_printf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    "Connection: close\r\n", method, path);
	if (ctype != NULL)
		buf_printf(&req, "Content-Type: %s\r\n", ctype);
	buf_printf(&req, "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
	bufferevent_write(r->bev, req.data, req.len);
	buf_free(&req);
}

/* One request, Connection: close; returns the status, *resp the rest. */
static int
raw_request(const char *method, const char *path, const char *ctype,
    const char *body, char **resp)
{
	struct raw	 r;
	int		 status = 0;

	raw_connect(&r);
	raw_send(&r, method, path, ctype, body);
	ck_assert(evtest_run_until(base, &r.done, 5000));
	sscanf(buf_str(&r.in), "HTTP/1.%*d %d", &status);
	bufferevent_free(r.bev);
	if (resp != NULL)
		*resp = buf_steal(&r.in);
	buf_free(&r.in);
	return (status);
}

static const char envelope_ok[] =
    "<m:SendNotificationResult><m:SubscriptionStatus>OK"
    "</m:SubscriptionStatus></m:SendNotificationResult>";
static const char envelope_unsub[] =
    "<m:SendNotificationResult><m:SubscriptionStatus>Unsubscribe"
    "</m:SubscriptionStatus></m:SendNotificationResult>";

START_TEST(test_http_known_and_unknown)
{
	char	*resp;

	listen_on(NULL, NULL, 0, 0);
	ck_assert_int_eq(strlen(target), 1 + PUSH_TOKEN_LEN);
	ck_assert_int_eq(raw_request("POST", target,
	    "text/xml; charset=utf-8", NOTIFICATION("sub-known"), &resp),
	    200);
	ck_assert_ptr_nonnull(strstr(resp, envelope_ok));
	ck_assert_ptr_nonnull(strstr(resp, "xmlns:m=\"" NS_M "\""));
	ck_assert_ptr_nonnull(strstr(resp, "Content-Type: text/xml"));
	ck_assert_str_eq(last_body, NOTIFICATION("sub-known"));
	free(resp);

	ck_assert_int_eq(raw_request("POST", target, "text/xml",
	    NOTIFICATION("sub-gone"), &resp), 200);
	ck_assert_ptr_nonnull(strstr(resp, envelope_unsub));
	free(resp);
	ck_assert_int_eq(notified, 2);
	ck_assert_int_eq(push_get_stats(push)->ok, 1);
	ck_assert_int_eq(push_get_stats(push)->unsubscribe, 1);
}
END_TEST

START_TEST(test_http_refusals)
{
	char	*resp, *t;

	listen_on("/ewsgw/push", NULL, 4096, 0);
	ck_assert_int_eq(strncmp(target, "/ewsgw/push/", 12), 0);
	ck_assert_int_eq(strlen(target), 12 + PUSH_TOKEN_LEN);
	/* Not XML at all: the owner is not even asked. */
	ck_assert_int_eq(raw_request("POST", target, "text/xml",
	    "hello", NULL), 400);
	ck_assert_int_eq(raw_request("POST", target, "text/xml",
	    "", NULL), 400);
	ck_assert_int_eq(raw_request("POST", target,
	    "application/json", "{}", NULL), 400);
	ck_assert_int_eq(notified, 0);
	/* XML, but not a SendNotification. */
	ck_assert_int_eq(raw_request("POST", target, "text/xml",
	    "<a/>", &resp), 400);
	ck_assert_ptr_null(strstr(resp, "SubscriptionStatus"));
	free(resp);
	ck_assert_int_eq(raw_request("POST", target, "text/xml",
	    "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;"
	    "</x>", NULL), 400);
	/* The parser insists on a Notification. */
	ck_assert_int_eq(raw_request("POST", target, "text/xml",
	    NOTIFICATION_EMPTY, NULL), 400);
	ck_assert_int_eq(notified, 0);
	ck_assert_int_eq(push_get_stats(push)->unparsable, 5);
	/* A SendNotification the owner refuses. */
	ck_assert_int_eq(raw_request("POST", target, "text/xml",
	    NOTIFICATION("sub-bad"), NULL), 400);
	ck_assert_int_eq(notified, 1);
	ck_assert_int_eq(raw_request("GET", target, NULL, "",
	    &resp), 405);
	ck_assert_ptr_nonnull(strstr(resp, "Allow: POST"));
	free(resp);
	/* The registered URL with a query still counts. */
	t = target_plus("?t=1");
	ck_assert_int_eq(raw_request("POST", t, "text/xml",
	    NOTIFICATION("sub-known"), NULL), 200);
	free(t);
	ck_assert_int_eq(push_get_stats(push)->bad, 8);
	ck_assert_int_eq(push_get_stats(push)->forbidden, 0);
}
END_TEST

/* Without the secret token nothing is parsed, known ids or not. */
START_TEST(test_token_required)
{
	char	*t;

	listen_on("/ewsgw/push", NULL, 4096, 0);
	ck_assert_int_eq(raw_request("POST", "/ewsgw/push", "text/xml",
	    NOTIFICATION("sub-known"), NULL), 403);
	ck_assert_int_eq(raw_request("POST", "/ewsgw/push/", "text/xml",
	    NOTIFICATION("sub-known"), NULL), 403);
	ck_assert_int_eq(raw_request("POST", "/elsewhere", "text/xml",
	    NOTIFICATION("sub-known"), NULL), 403);
	/* One wrong digit, a prefix, something appended. */
	t = xstrdup(target);
	t[strlen(t) - 1] = t[strlen(t) - 1] == '0' ? '1' : '0';
	ck_assert_int_eq(raw_request("POST", t, "text/xml",
	    NOTIFICATION("sub-known"), NULL), 403);
	t[strlen(t) - 1] = '\0';
	ck_assert_int_eq(raw_request("POST", t, "text/xml",
	    NOTIFICATION("sub-known"), NULL), 403);
	free(t);
	t = target_plus("x");
	ck_assert_int_eq(raw_request("POST", t, "text/xml",
	    NOTIFICATION("sub-known"), NULL), 403);
	free(t);
	t = target_plus("/");
	ck_assert_int_eq(raw_request("POST", t, "text/xml",
	    NOTIFICATION("sub-known"), NULL), 403);
	free(t);
	ck_assert_int_eq(notified, 0);
	ck_assert_int_eq(push_get_stats(push)->forbidden, 7);
	ck_assert_int_eq(push_get_stats(push)->unparsable, 0);
	ck_assert_int_eq(raw_request("POST", target, "text/xml",
	    NOTIFICATION("sub-known"), NULL), 200);
	ck_assert_int_eq(notified, 1);
}
END_TEST

/* Every listener has its own token; the URL keeps its query. */
START_TEST(test_token_url)
{
	char	*u1, *u2;

	listen_on(NULL, NULL, 0, 0);
	u1 = push_notify_url(push, "https://gw.example.com:8443/ews/push/");
	ck_assert_ptr_nonnull(u1);
	ck_assert_int_eq(strncmp(u1, "https://gw.example.com:8443/ews/push/",
	    37), 0);
	ck_assert_int_eq(strlen(u1), 37 + PUSH_TOKEN_LEN);
	ck_assert_int_eq(strspn(u1 + 37, "0123456789abcdef"), PUSH_TOKEN_LEN);
	u2 = push_notify_url(push, "http://gw:81?x=1");
	ck_assert_str_eq(u2 + 13 + PUSH_TOKEN_LEN, "?x=1");
	ck_assert_int_eq(memcmp(u2, "http://gw:81/", 13), 0);
	ck_assert_int_eq(memcmp(u1 + 37, u2 + 13, PUSH_TOKEN_LEN), 0);
	ck_assert_ptr_null(push_notify_url(push, "nonsense"));
	free(u2);
	push_free(push);
	push = NULL;
	listen_on(NULL, NULL, 0, 0);
	u2 = push_notify_url(push, "https://gw.example.com:8443/ews/push");
	ck_assert_int_ne(memcmp(u1 + 37, u2 + 37, PUSH_TOKEN_LEN), 0);
	free(u1);
	free(u2);
}
END_TEST

START_TEST(test_http_oversize)
{
	static const char big[] = "POST / HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: text/xml\r\nContent-Length: 2000000\r\n\r\n";
	struct raw	 r;
	int		 status = 0;

	listen_on(NULL, NULL, 4096, 0);
	/* Headers announce 2 MB; the answer comes before any body. */
	raw_connect(&r);
	bufferevent_write(r.bev, big, strlen(big));
	ck_assert(evtest_run_until(base, &r.done, 5000));
	sscanf(buf_str(&r.in), "HTTP/1.%*d %d", &status);
	ck_assert_int_eq(status, 413);
	ck_assert_int_eq(notified, 0);
	bufferevent_free(r.bev);
	buf_free(&r.in);
}
END_TEST

/* Run until the listener has n connections open. */
static void
wait_connections(unsigned n)
{
	int	 i;

	for (i = 0; i < 1000 && push_get_stats(push)->connections != n; i++)
		evtest_run_for(base, 10);
	ck_assert_uint_eq(push_get_stats(push)->connections, n);
}

/*
 * The cap is strict and counts connections until they close: at the
 * cap, a new connection makes room by closing one, first one stuck in
 * the middle of its head, so slow or idle peers cannot lock Exchange
 * out.
 */
START_TEST(test_connection_cap)
{
	struct raw	 a, b, c, d;

	listen_on(NULL, NULL, 0, 2);
	raw_connect(&a);
	wait_connections(1);
	raw_connect(&b);
	bufferevent_write(b.bev, "POST ", 5);	/* a head begun */
	evtest_run_for(base, 20);
	wait_connections(2);
	/* The slow head goes, though the idle one is older. */
	raw_connect(&c);
	ck_assert(evtest_run_until(base, &b.done, 5000));
	ck_assert(!a.done);
	ck_assert_uint_eq(push_get_stats(push)->connections, 2);
	ck_assert_uint_eq(push_get_stats(push)->evicted, 1);
	/* Then the oldest of those with nothing sent. */
	raw_connect(&d);
	ck_assert(evtest_run_until(base, &a.done, 5000));
	ck_assert(!c.done);
	ck_assert_uint_eq(push_get_stats(push)->evicted, 2);
	raw_send(&c, "POST", target, "text/xml", NOTIFICATION("sub-known"));
	ck_assert(evtest_run_until(base, &c.done, 5000));
	ck_assert_ptr_nonnull(strstr(buf_str(&c.in), envelope_ok));
	ck_assert_int_eq(notified, 1);
	bufferevent_free(a.bev);
	bufferevent_free(b.bev);
	bufferevent_free(c.bev);
	bufferevent_free(d.bev);
	buf_free(&a.in);
	buf_free(&b.in);
	buf_free(&c.in);
	buf_free(&d.in);
	wait_connections(0);
	ck_assert_uint_eq(push_get_stats(push)->accepted, 4);
}
END_TEST

/* A connection already refused makes room before an older idle one. */
START_TEST(test_connection_cap_order)
{
	struct raw	 a, b, c;
	int		 i;

	listen_on(NULL, NULL, 0, 2);
	raw_connect(&a);
	wait_connections(1);
	raw_connect(&b);
	/* Refused (no token) and lingering: b keeps its end open. */
	bufferevent_write(b.bev, "GET / HTTP/1.1\r\n\r\n", 18);
	wait_connections(2);
	while (strstr(buf_str(&b.in), "403") == NULL)
		evtest_run_for(base, 10);
	/* (The listener defers accept until data comes.) */
	raw_connect(&c);
	bufferevent_write(c.bev, "P", 1);
	for (i = 0; i < 500 && push_get_stats(push)->evicted == 0; i++)
		evtest_run_for(base, 10);
	ck_assert(!a.done);
	ck_assert_uint_eq(push_get_stats(push)->evicted, 1);
	ck_assert_uint_eq(push_get_stats(push)->connections, 2);
	{
		struct buf	 rest = BUF_INIT;

		buf_printf(&rest, "OST %s HTTP/1.1\r\nContent-Length: %zu\r\n"
		    "Connection: close\r\n\r\n%s", target,
		    strlen(NOTIFICATION("sub-known")),
		    NOTIFICATION("sub-known"));
		bufferevent_write(c.bev, rest.data, rest.len);
		buf_free(&rest);
	}
	ck_assert(evtest_run_until(base, &c.done, 5000));
	ck_assert_ptr_nonnull(strstr(buf_str(&c.in), envelope_ok));
	bufferevent_free(a.bev);
	bufferevent_free(b.bev);
	bufferevent_free(c.bev);
	buf_free(&a.in);
	buf_free(&b.in);
	buf_free(&c.in);
}
END_TEST

struct trickle {
	struct raw	 r;
	struct event	*ev;
	const char	*data;
	size_t		 off, len;
};

static void
trickle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct trickle	*t = arg;
	struct timeval	 tv = { 0, 20000 };

	if (t->r.done || t->off >= t->len)
		return;
	bufferevent_write(t->r.bev, t->data + t->off++, 1);
	evtimer_add(t->ev, &tv);
}

/*
 * The deadline is absolute: a client that keeps sending a byte every
 * 20 ms is closed when its request's time is up all the same.
 */
START_TEST(test_deadline_ignores_trickle)
{
	struct trickle	 t;
	struct buf	 req = BUF_INIT;

	opt_timeout_ms = 300;
	listen_on(NULL, NULL, 0, 0);
	buf_printf(&req, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
	    "text/xml\r\nContent-Length: %zu\r\n\r\n%s", target,
	    strlen(NOTIFICATION("sub-known")), NOTIFICATION("sub-known"));
	memset(&t, 0, sizeof t);
	raw_connect(&t.r);
	t.data = req.data;
	t.len = req.len;	/* ~1,000 bytes: 20 s at this pace */
	t.ev = evtimer_new(base, trickle_cb, &t);
	trickle_cb(-1, 0, &t);
	ck_assert(evtest_run_until(base, &t.r.done, 10000));
	ck_assert_uint_lt(t.off, t.len);
	ck_assert_uint_eq(push_get_stats(push)->timeouts, 1);
	ck_assert_int_eq(notified, 0);
	event_free(t.ev);
	bufferevent_free(t.r.bev);
	buf_free(&t.r.in);
	buf_free(&req);
	wait_connections(0);
}
END_TEST

/* 403 comes back before the client sends a byte of the body. */
START_TEST(test_forbidden_before_body)
{
	static const char head[] = "POST /no-token HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: text/xml\r\nContent-Length: 100000\r\n\r\n";
	struct raw	 r;
	int		 status = 0;

	listen_on(NULL, NULL, 0, 0);
	raw_connect(&r);
	bufferevent_write(r.bev, head, strlen(head));
	ck_assert(evtest_run_until(base, &r.done, 5000));
	sscanf(buf_str(&r.in), "HTTP/1.%*d %d", &status);
	ck_assert_int_eq(status, 403);
	ck_assert_ptr_nonnull(strstr(buf_str(&r.in), "Connection: close"));
	ck_assert_uint_eq(push_get_stats(push)->forbidden, 1);
	bufferevent_free(r.bev);
	buf_free(&r.in);
}
END_TEST

START_TEST(test_allowlist)
{
	struct raw	 r;

	opt_allow = "192.0.2.0/24 2001:db8::/32";
	listen_on(NULL, NULL, 0, 0);
	raw_connect(&r);
	raw_send(&r, "POST", target, "text/xml", NOTIFICATION("sub-known"));
	ck_assert(evtest_run_until(base, &r.done, 5000));
	ck_assert_uint_eq(r.in.len, 0);
	ck_assert_uint_eq(push_get_stats(push)->denied, 1);
	ck_assert_uint_eq(push_get_stats(push)->accepted, 0);
	ck_assert_int_eq(notified, 0);
	bufferevent_free(r.bev);
	buf_free(&r.in);
	push_free(push);
	push = NULL;

	opt_allow = "192.0.2.0/24, 127.0.0.0/8";
	listen_on(NULL, NULL, 0, 0);
	ck_assert_int_eq(raw_request("POST", target, "text/xml",
	    NOTIFICATION("sub-known"), NULL), 200);
	ck_assert_uint_eq(push_get_stats(push)->denied, 0);
}
END_TEST

/* Keep-alive with pipelining, chunked bodies and 100-continue. */
START_TEST(test_keepalive_chunked_continue)
{
	const char	*n = NOTIFICATION("sub-known");
	struct buf	 req = BUF_INIT;
	struct raw	 r;
	const char	*p;
	int		 answers = 0;

	listen_on(NULL, NULL, 0, 0);
	buf_printf(&req, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: "
	    "%zu\r\n\r\n%s", target, strlen(n), n);
	buf_printf(&req, "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
	    "chunked\r\nExpect: 100-continue\r\n\r\n%zx;ext=1\r\n%.*s\r\n"
	    "%zx\r\n%s\r\n0\r\nTrailer: x\r\n\r\n", target, (size_t)10, 10,
	    n, strlen(n) - 10, n + 10);
	buf_printf(&req, "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close"
	    "\r\nContent-Length: %zu\r\n\r\n%s", target, strlen(n), n);
	raw_connect(&r);
	bufferevent_write(r.bev, req.data, req.len);
	ck_assert(evtest_run_until(base, &r.done, 5000));
	for (p = buf_str(&r.in); (p = strstr(p, "HTTP/1.1 200 OK")) != NULL;
	    p++)
		answers++;
	ck_assert_int_eq(answers, 3);
	ck_assert_ptr_nonnull(strstr(buf_str(&r.in), "HTTP/1.1 100 Continue"));
	ck_assert_int_eq(notified, 3);
	ck_assert_uint_eq(push_get_stats(push)->accepted, 1);
	bufferevent_free(r.bev);
	buf_free(&r.in);
	buf_free(&req);
}
END_TEST

/* A body libxml2 would take but the pre-scan does not. */
START_TEST(test_prescan)
{
	struct buf	 b = BUF_INIT;
	int		 i;

	listen_on(NULL, NULL, 0, 0);
	buf_puts(&b, NOTIFICATION("sub-known"));
	b.len = strlen("<?xml version=\"1.0\" encoding=\"utf-8\"?>"
	    "<soap:Envelope");
	buf_puts(&b, " xmlns:soap=\"http://schemas.xmlsoap.org/soap/"
	    "envelope/\"");
	for (i = 0; i < 20; i++)
		buf_printf(&b, " a%d=\"\"", i);
	buf_puts(&b, strstr(NOTIFICATION("sub-known"), "><soap:Header>"));
	ck_assert_int_eq(raw_request("POST", target, "text/xml", b.data,
	    NULL), 400);
	ck_assert_int_eq(notified, 0);
	ck_assert_uint_eq(push_get_stats(push)->unparsable, 1);
	buf_free(&b);
}
END_TEST

/* Floods of refusals cost a few log lines and a counter. */
START_TEST(test_warnings_rate_limited)
{
	int	 i;

	listen_on(NULL, NULL, 0, 0);
	for (i = 0; i < 40; i++)
		ck_assert_int_eq(raw_request("POST", "/x", "text/xml", "<a/>",
		    NULL), 403);
	ck_assert_uint_eq(push_get_stats(push)->forbidden, 40);
	ck_assert_uint_ge(push_get_stats(push)->log_suppressed, 30);
}
END_TEST

/* The request framing on its own: what it refuses, and why. */
START_TEST(test_request_framing)
{
	static const struct {
		const char	*in;
		int		 status;
	} bad[] = {
		{ "POST / HTTP/1.1\r\nContent-Length: 1\r\n"
		  "Transfer-Encoding: chunked\r\n\r\n", 400 },
		{ "POST / HTTP/1.1\r\nContent-Length: 1\r\n"
		  "Content-Length: 2\r\n\r\n", 400 },
		{ "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400 },
		{ "POST / HTTP/1.1\r\nContent-Length : 1\r\n\r\n", 400 },
		{ "POST / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400 },
		{ "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501 },
		{ "POST / HTTP/2.0\r\n\r\n", 505 },
		{ "POST http://x/ HTTP/1.1\r\n\r\n", 400 },
		{ "POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 417 },
		{ "POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", 413 },
		{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "1001\r\n", 413 },
		{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "zz\r\n", 400 },
		{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "1\r\nab\r\n", 400 },
	};
	struct push_req	 r;
	struct buf	 big = BUF_INIT;
	size_t		 i, n;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		push_req_init(&r, 4096);
		n = push_req_feed(&r, bad[i].in, strlen(bad[i].in));
		if (r.state == PUSH_REQ_HEAD_DONE) {
			push_req_body(&r);
			push_req_feed(&r, bad[i].in + n, strlen(bad[i].in) - n);
		}
		ck_assert_msg(r.state == PUSH_REQ_ERROR && r.status ==
		    bad[i].status, "%zu: state %d status %d, want %d", i,
		    r.state, r.status, bad[i].status);
		push_req_free(&r);
	}
	/* Head caps: size, field count, target length. */
	push_req_init(&r, 4096);
	buf_puts(&big, "POST / HTTP/1.1\r\n");
	while (big.len <= PUSH_REQ_MAX_HEAD)
		buf_puts(&big, "X-Filler: 0123456789012345678901234567\r\n");
	push_req_feed(&r, big.data, big.len);
	ck_assert_int_eq(r.status, 431);
	push_req_free(&r);
	buf_reset(&big);
	push_req_init(&r, 4096);
	buf_puts(&big, "POST / HTTP/1.1\r\n");
	for (i = 0; i <= PUSH_REQ_MAX_HEADERS; i++)
		buf_puts(&big, "X: 1\r\n");
	buf_puts(&big, "\r\n");
	push_req_feed(&r, big.data, big.len);
	ck_assert_int_eq(r.status, 431);
	push_req_free(&r);
	buf_reset(&big);
	push_req_init(&r, 4096);
	buf_puts(&big, "POST /");
	for (i = 0; i <= PUSH_REQ_MAX_TARGET; i++)
		buf_putc(&big, 'a');
	buf_puts(&big, " HTTP/1.1\r\n\r\n");
	push_req_feed(&r, big.data, big.len);
	ck_assert_int_eq(r.status, 414);
	push_req_free(&r);
	buf_free(&big);

	/* One byte at a time gives the same request. */
	{
		static const char ok[] = "\r\nPOST /p?q HTTP/1.0\r\n"
		    "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n"
		    "Content-Type: text/xml\r\n\r\n3\r\nabc\r\n2;x=y\r\nde"
		    "\r\n0\r\n\r\nNEXT";

		push_req_init(&r, 4096);
		for (i = 0; i < sizeof ok - 1 && r.state != PUSH_REQ_DONE;
		    i += n) {
			n = push_req_feed(&r, ok + i, 1);
			if (r.state == PUSH_REQ_HEAD_DONE)
				push_req_body(&r);
		}
		ck_assert_int_eq(r.state, PUSH_REQ_DONE);
		ck_assert_str_eq(ok + i, "NEXT");
		ck_assert_str_eq(r.method, "POST");
		ck_assert_str_eq(r.target, "/p?q");
		ck_assert_str_eq(r.content_type, "text/xml");
		ck_assert_int_eq(r.minor, 0);
		ck_assert(!r.close);
		ck_assert_str_eq(buf_str(&r.body), "abcde");
		push_req_free(&r);
	}
}
END_TEST

struct client {
	bool		 done;
	long		 status;
	int		 result;
	char		*body;
};

static void
on_done(struct http_request *req, const struct http_response *resp,
    void *arg)
{
	struct client	*c = arg;

	c->done = true;
	c->status = resp->status;
	c->result = resp->result;
	c->body = xstrndup(resp->body, resp->body_len);
}

/* POST through the HTTP engine (curl), verifying against ca. */
static void
engine_post(const char *scheme, const char *ca, const char *body,
    struct client *c)
{
	struct http_engine_opts		 eo = { 0 };
	struct http_request_opts	 o = { 0 };
	struct http_engine		*eng;
	char				*cause = NULL, *u;

	eo.tls_verify = true;
	eo.ca_file = ca;
	eng = http_engine_new(base, &eo, &cause);
	ck_assert_ptr_nonnull(eng);
	xasprintf(&u, "%s://127.0.0.1:%u%s", scheme, push_port(push), target);
	o.method = HTTP_POST;
	o.url = u;
	o.body = body;
	o.body_len = strlen(body);
	o.timeout_ms = 5000;
	memset(c, 0, sizeof *c);
	http_request_start(eng, &o, on_done, NULL, c);
	ck_assert(evtest_run_until(base, &c->done, 5000));
	http_engine_free(eng);
	free(u);
}

START_TEST(test_https)
{
	struct client	 c;

	listen_on(NULL, cert_file, 0, 0);
	engine_post("https", cert_file, NOTIFICATION("sub-known"), &c);
	ck_assert_int_eq(c.result, HTTP_RESULT_OK);
	ck_assert_ptr_nonnull(strstr(c.body, envelope_ok));
	free(c.body);
	engine_post("https", cert_file, NOTIFICATION("sub-x"), &c);
	ck_assert_ptr_nonnull(strstr(c.body, envelope_unsub));
	free(c.body);
	/* Plain HTTP on the TLS port gets nowhere. */
	engine_post("http", NULL, NOTIFICATION("sub-known"), &c);
	ck_assert_int_ne(c.result, HTTP_RESULT_OK);
	free(c.body);
	ck_assert_int_eq(notified, 2);
}
END_TEST

START_TEST(test_bad_setup)
{
	struct push_opts	 o = { 0 };
	char			*cause = NULL;

	o.listen = "127.0.0.1:0";
	o.certificate = "/nonexistent/cert.pem";
	ck_assert_ptr_null(push_new(base, &o, on_notify, NULL, &cause));
	ck_assert_ptr_nonnull(strstr(cause, "/nonexistent/cert.pem"));
	free(cause);

	/* The key does not belong to the certificate. */
	o.certificate = cert_file;
	o.key = cert_file;
	cause = NULL;
	ck_assert_ptr_null(push_new(base, &o, on_notify, NULL, &cause));
	ck_assert_ptr_nonnull(cause);
	free(cause);

	o.certificate = NULL;
	o.listen = "nonsense";
	cause = NULL;
	ck_assert_ptr_null(push_new(base, &o, on_notify, NULL, &cause));
	ck_assert_ptr_nonnull(strstr(cause, "nonsense"));
	free(cause);
}
END_TEST

/* The recorded Exchange notification in the fixtures parses and answers. */
START_TEST(test_fixture)
{
	const char	*top = getenv("top_srcdir");
	char		*path, *resp;
	struct buf	 b = BUF_INIT;
	char		 chunk[4096];
	size_t		 n;
	FILE		*f;

	xasprintf(&path, "%s/tests/fixtures/send-notification.xml",
	    top != NULL ? top : ".");
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s missing", path);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	listen_on(NULL, NULL, 0, 0);
	ck_assert_int_eq(raw_request("POST", target,
	    "text/xml; charset=utf-8", buf_str(&b), &resp), 200);
	ck_assert_int_eq(notified, 1);
	ck_assert_ptr_nonnull(strstr(resp, "<m:SubscriptionStatus>"));
	free(resp);
	buf_free(&b);
	free(path);
}
END_TEST

/*
 * The fuzzer's seed corpus (tests/fuzz/corpus/push: two seed bytes, then
 * what a client sends) through the same request path, each with the
 * answer its shape must get.
 */
START_TEST(test_fuzz_corpus)
{
	static const struct {
		const char	*name;
		const char	*want;
	} cases[] = {
		{ "ok", "HTTP/1.1 200 " },
		{ "unsubscribe", "HTTP/1.1 200 " },
		{ "refused-by-owner", "HTTP/1.1 400 " },
		{ "keepalive-pipelined", "HTTP/1.1 200 " },
		{ "chunked-continue", "HTTP/1.1 100 " },
		{ "no-token", "HTTP/1.1 403 " },
		{ "wrong-token", "HTTP/1.1 403 " },
		{ "get", "HTTP/1.1 405 " },
		{ "no-length", "HTTP/1.1 411 " },
		{ "oversize-length", "HTTP/1.1 413 " },
		{ "smuggle", "HTTP/1.1 400 " },
		{ "folded", "HTTP/1.1 400 " },
		{ "json", "HTTP/1.1 400 " },
		{ "attribute-flood", "HTTP/1.1 400 " },
		{ "namespace-flood", "HTTP/1.1 400 " },
		{ "deep", "HTTP/1.1 400 " },
		{ "node-flood", "HTTP/1.1 400 " },
		{ "doctype-entities", "HTTP/1.1 400 " },
		{ "xxe", "HTTP/1.1 400 " },
		{ "head-flood", "HTTP/1.1 431 " },
		{ "slow-partial", "" },
	};
	const char		*top = getenv("top_srcdir");
	struct push_opts	 o = { 0 };
	struct push_session	*ps;
	struct buf		 in = BUF_INIT, out = BUF_INIT;
	char			*path, *cause = NULL, chunk[4096];
	size_t			 i, n, off, used;
	FILE			*f;
	int			 rc;

	o.path = "/ewsgw/push";
	o.token = "0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef";
	o.max_body = 64 * 1024;
	push = push_new(base, &o, on_notify, NULL, &cause);
	ck_assert_msg(push != NULL, "%s", cause);
	ck_assert_uint_eq(push_port(push), 0);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		xasprintf(&path, "%s/tests/fuzz/corpus/push/%s",
		    top != NULL ? top : ".", cases[i].name);
		ck_assert_msg((f = fopen(path, "r")) != NULL, "%s", path);
		while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
			buf_append(&in, chunk, n);
		fclose(f);
		ps = push_session_new(push, "corpus");
		rc = PUSH_SESSION_MORE;
		for (off = 2; off < in.len && rc != PUSH_SESSION_CLOSE;
		    off += used)
			rc = push_session_feed(ps, in.data + off, in.len - off,
			    &used, &out);
		ck_assert_msg(strncmp(buf_str(&out), cases[i].want,
		    strlen(cases[i].want)) == 0, "%s: %.60s", cases[i].name,
		    buf_str(&out));
		if (cases[i].want[0] == '\0')
			ck_assert_uint_eq(out.len, 0);
		push_session_free(ps);
		buf_reset(&in);
		buf_reset(&out);
		free(path);
	}
	/* Two of the three pipelined requests name a known id. */
	ck_assert_uint_eq(push_get_stats(push)->ok, 4);
	buf_free(&in);
	buf_free(&out);
}
END_TEST

static Suite *
push_suite(void)
{
	Suite	*s = suite_create("push");
	TCase	*tc = tcase_create("listener");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_http_known_and_unknown);
	tcase_add_test(tc, test_http_refusals);
	tcase_add_test(tc, test_token_required);
	tcase_add_test(tc, test_token_url);
	tcase_add_test(tc, test_http_oversize);
	tcase_add_test(tc, test_connection_cap);
	tcase_add_test(tc, test_connection_cap_order);
	tcase_add_test(tc, test_deadline_ignores_trickle);
	tcase_add_test(tc, test_forbidden_before_body);
	tcase_add_test(tc, test_allowlist);
	tcase_add_test(tc, test_keepalive_chunked_continue);
	tcase_add_test(tc, test_prescan);
	tcase_add_test(tc, test_warnings_rate_limited);
	tcase_add_test(tc, test_request_framing);
	tcase_add_test(tc, test_fuzz_corpus);
	tcase_add_test(tc, test_https);
	tcase_add_test(tc, test_bad_setup);
	tcase_add_test(tc, test_fixture);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(push_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
