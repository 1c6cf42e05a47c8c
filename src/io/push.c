/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Push-notification listener: evhttp (plain or over OpenSSL) receiving
 * SendNotification POSTs, bounded in body size, connections and time.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "base/buf.h"
#include "base/conf.h"
#include "ews/ews_parse.h"
#include "base/json.h"
#include "base/log.h"
#include "io/push.h"
#include "ews/soap.h"
#include "io/tls.h"
#include "base/xmalloc.h"

#define PUSH_DEFAULT_MAX_BODY	(1024 * 1024)
#define PUSH_DEFAULT_MAX_CONNS	256
#define PUSH_DEFAULT_TIMEOUT_S	30

/*
 * One accepted connection.  evhttp tells us when a connection closes only
 * through a close callback set on the connection, which we first see with
 * its first request; until then the slot expires on its own shortly after
 * evhttp's read timeout would have closed the connection.
 */
struct push_conn {
	struct push		*p;
	struct bufferevent	*bev;		/* its id (borrowed) */
	struct event		 expiry;	/* while no request came */
	TAILQ_ENTRY(push_conn)	 entry;		/* on p->pending */
	int			 pending;
};

struct push {
	struct event_base	*base;		/* borrowed */
	struct evhttp		*http;
	struct evconnlistener	*listener;	/* owned by http */
	SSL_CTX			*ssl;		/* NULL: plain HTTP */
	char			*path;		/* without the token */
	char			*target;	/* path/token: what may POST */
	char			 token[PUSH_TOKEN_LEN + 1];
	unsigned		 port;
	unsigned		 max_conns;
	int			 timeout_s;
	bool			 paused;	/* accept off (limit) */
	bool			 freeing;
	push_notify_cb		 cb;
	void			*arg;
	TAILQ_HEAD(, push_conn)	 pending;
	struct push_stats	 stats;
};

static struct bufferevent *push_bevcb(struct event_base *, void *);
static void	 push_conn_expired(evutil_socket_t, short, void *);
static void	 push_conn_closed(struct evhttp_connection *, void *);
static void	 push_conn_release(struct push_conn *);
static void	 push_conn_track(struct push *, struct evhttp_request *);
static void	 push_request(struct evhttp_request *, void *);
static void	 push_refuse(struct push *, struct evhttp_request *, int,
		    const char *, const char *);
static int	 push_parse_listen(const char *, struct sockaddr_storage *,
		    int *, char **);
static int	 push_token_new(char *, char **);
static bool	 push_target_ok(const struct push *, const char *);

void
push_opts_from_config(struct push_opts *o, char **path,
    const struct config *conf)
{
	const char	*u = conf->push.url, *s;
	size_t		 n;

	memset(o, 0, sizeof *o);
	o->listen = conf->push.listen;
	o->certificate = conf->push.certificate;
	o->key = conf->push.key;
	*path = NULL;
	/* "https://host:port/path?x" -> "/path" */
	if (u != NULL && (s = strstr(u, "://")) != NULL &&
	    (s = strchr(s + 3, '/')) != NULL) {
		n = strcspn(s, "?#");
		if (n > 1)
			*path = xstrndup(s, n);
	}
	o->path = *path;
}

static int
push_parse_listen(const char *listen, struct sockaddr_storage *ss,
    int *sslen, char **cause)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	const char		*colon;
	char			*host = NULL, *end;
	long			 port;
	int			 rc = -1;

	memset(ss, 0, sizeof *ss);
	if (listen == NULL || (colon = strrchr(listen, ':')) == NULL)
		goto bad;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535)
		goto bad;
	/* "[v6]:port", "v4:port"; "*:port" or ":port" = every IPv4. */
	if (listen[0] == '[' && colon > listen && colon[-1] == ']')
		host = xstrndup(listen + 1, colon - listen - 2);
	else
		host = xstrndup(listen, colon - listen);
	if (*host == '\0' || strcmp(host, "*") == 0) {
		free(host);
		host = xstrdup("0.0.0.0");
	}
	if (evutil_inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*sslen = sizeof *sin;
		rc = 0;
	} else if (evutil_inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*sslen = sizeof *sin6;
		rc = 0;
	}
	free(host);
	if (rc == 0)
		return (0);
bad:
	xasprintf(cause, "bad listen address \"%s\" (want address:port)",
	    listen != NULL ? listen : "");
	return (-1);
}

/* PUSH_TOKEN_LEN hex digits from the OpenSSL CSPRNG into out. */
static int
push_token_new(char *out, char **cause)
{
	static const char	 hex[] = "0123456789abcdef";
	unsigned char		 raw[PUSH_TOKEN_LEN / 2];
	size_t			 i;

	if (RAND_bytes(raw, sizeof raw) != 1) {
		*cause = xstrdup("no random bytes for the push token");
		return (-1);
	}
	for (i = 0; i < sizeof raw; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[PUSH_TOKEN_LEN] = '\0';
	explicit_bzero(raw, sizeof raw);
	return (0);
}

char *
push_notify_url(const struct push *p, const char *url)
{
	const char	*s, *path, *rest;
	char		*u;

	/* "scheme://authority[/path][?query]" -> ".../path/TOKEN?query" */
	if (url == NULL || (s = strstr(url, "://")) == NULL)
		return (NULL);
	path = s + 3 + strcspn(s + 3, "/?#");
	rest = path + strcspn(path, "?#");
	while (rest > path && rest[-1] == '/')
		rest--;
	xasprintf(&u, "%.*s/%s%s", (int)(rest - url), url, p->token,
	    rest + strspn(rest, "/"));
	return (u);
}

/*
 * Whether a request target names the listener's path and token (a query
 * may follow).  The token compares in constant time.
 */
static bool
push_target_ok(const struct push *p, const char *uri)
{
	size_t	 n = strlen(p->target), ulen;

	if (uri == NULL)
		return (false);
	ulen = strcspn(uri, "?#");
	if (ulen != n)
		return (false);
	return (CRYPTO_memcmp(uri, p->target, n) == 0);
}

struct push *
push_new(struct event_base *base, const struct push_opts *o,
    push_notify_cb cb, void *arg, char **cause)
{
	struct push			*p;
	struct sockaddr_storage		 ss;
	struct evhttp_bound_socket	*bs;
	struct evconnlistener		*l;
	int				 sslen;
	socklen_t			 blen = sizeof ss;
	size_t				 n;

	*cause = NULL;
	if (push_parse_listen(o->listen, &ss, &sslen, cause) != 0)
		return (NULL);
	p = xcalloc(1, sizeof *p);
	p->base = base;
	p->cb = cb;
	p->arg = arg;
	p->max_conns = o->max_connections > 0 ? o->max_connections :
	    PUSH_DEFAULT_MAX_CONNS;
	p->timeout_s = o->timeout_s > 0 ? o->timeout_s :
	    PUSH_DEFAULT_TIMEOUT_S;
	p->path = xstrdup(o->path != NULL ? o->path : "");
	p->path[strcspn(p->path, "?#")] = '\0';
	for (n = strlen(p->path); n > 0 && p->path[n - 1] == '/'; n--)
		p->path[n - 1] = '\0';
	TAILQ_INIT(&p->pending);
	if (push_token_new(p->token, cause) != 0) {
		free(p->path);
		free(p);
		return (NULL);
	}
	xasprintf(&p->target, "%s/%s", p->path, p->token);
	if (o->certificate != NULL &&
	    (p->ssl = tls_server_ctx_new(o->certificate, o->key,
	    cause)) == NULL) {
		free(p->target);
		free(p->path);
		free(p);
		return (NULL);
	}

	p->http = evhttp_new(base);
	evhttp_set_gencb(p->http, push_request, p);
	evhttp_set_bevcb(p->http, push_bevcb, p);
	evhttp_set_max_body_size(p->http, o->max_body > 0 ?
	    (ev_ssize_t)o->max_body : PUSH_DEFAULT_MAX_BODY);
	evhttp_set_max_headers_size(p->http, 64 * 1024);
	evhttp_set_timeout(p->http, p->timeout_s);
	/* Accept every method so the wrong ones get 405, not 501. */
	evhttp_set_allowed_methods(p->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);

	l = evconnlistener_new_bind(base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE, 128,
	    (struct sockaddr *)&ss, sslen);
	if (l == NULL) {
		xasprintf(cause, "listen on %s: %s", o->listen,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		goto fail;
	}
	if ((bs = evhttp_bind_listener(p->http, l)) == NULL) {
		evconnlistener_free(l);
		xasprintf(cause, "listen on %s: cannot bind", o->listen);
		goto fail;
	}
	p->listener = evhttp_bound_socket_get_listener(bs);
	if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss,
	    &blen) == 0)
		p->port = ntohs(ss.ss_family == AF_INET6 ?
		    ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port);
	log_info("push listener on %s (%s, port %u)", o->listen,
	    p->ssl != NULL ? "https" : "http", p->port);
	return (p);
fail:
	evhttp_free(p->http);
	if (p->ssl != NULL)
		SSL_CTX_free(p->ssl);
	free(p->target);
	free(p->path);
	free(p);
	return (NULL);
}

void
push_free(struct push *p)
{
	struct push_conn	*c;

	if (p == NULL)
		return;
	p->freeing = true;
	/* Runs our close callbacks for connections that made requests. */
	evhttp_free(p->http);
	while ((c = TAILQ_FIRST(&p->pending)) != NULL)
		push_conn_release(c);
	if (p->ssl != NULL)
		SSL_CTX_free(p->ssl);
	explicit_bzero(p->token, sizeof p->token);
	explicit_bzero(p->target, strlen(p->target));
	free(p->target);
	free(p->path);
	free(p);
}

unsigned
push_port(const struct push *p)
{
	return (p->port);
}

const struct push_stats *
push_get_stats(const struct push *p)
{
	return (&p->stats);
}

void
push_stats_json(const struct push_stats *st, struct json_writer *w)
{
	json_obj_begin(w);
	json_kv_int(w, "connections", st->connections);
	json_kv_int(w, "requests", (int64_t)st->requests);
	json_kv_int(w, "ok", (int64_t)st->ok);
	json_kv_int(w, "unsubscribe", (int64_t)st->unsubscribe);
	json_kv_int(w, "refused", (int64_t)st->bad);
	json_kv_int(w, "forbidden", (int64_t)st->forbidden);
	json_kv_int(w, "unparsable", (int64_t)st->unparsable);
	json_kv_int(w, "paused", (int64_t)st->paused);
	json_obj_end(w);
}

/* ---- connection accounting ---- */

static struct bufferevent *
push_bevcb(struct event_base *base, void *arg)
{
	struct push		*p = arg;
	struct push_conn	*c;
	struct bufferevent	*bev;
	struct timeval		 tv = { p->timeout_s + 2, 0 };
	SSL			*ssl;

	if (p->ssl != NULL && (ssl = SSL_new(p->ssl)) != NULL)
		bev = bufferevent_openssl_socket_new(base, -1, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	else
		/* Without an SSL object the handshake fails: no plain
		 * fallback on an HTTPS port. */
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	c = xcalloc(1, sizeof *c);
	c->p = p;
	c->bev = bev;
	c->pending = 1;
	evtimer_assign(&c->expiry, base, push_conn_expired, c);
	evtimer_add(&c->expiry, &tv);
	TAILQ_INSERT_TAIL(&p->pending, c, entry);
	if (++p->stats.connections >= p->max_conns && !p->paused) {
		/* New connections wait in the kernel backlog. */
		log_warnx("push: %u connections, pausing accept",
		    p->stats.connections);
		evconnlistener_disable(p->listener);
		p->paused = true;
		p->stats.paused++;
	}
	return (bev);
}

static void
push_conn_expired(evutil_socket_t fd, short ev, void *arg)
{
	push_conn_release(arg);
}

static void
push_conn_closed(struct evhttp_connection *evcon, void *arg)
{
	push_conn_release(arg);
}

static void
push_conn_release(struct push_conn *c)
{
	struct push	*p = c->p;

	if (c->pending) {
		evtimer_del(&c->expiry);
		TAILQ_REMOVE(&p->pending, c, entry);
	}
	free(c);
	p->stats.connections--;
	if (p->paused && !p->freeing &&
	    p->stats.connections < p->max_conns) {
		evconnlistener_enable(p->listener);
		p->paused = false;
	}
}

/* First request on a connection: follow it until it closes. */
static void
push_conn_track(struct push *p, struct evhttp_request *req)
{
	struct evhttp_connection	*evcon;
	struct bufferevent		*bev;
	struct push_conn		*c;

	if ((evcon = evhttp_request_get_connection(req)) == NULL)
		return;
	bev = evhttp_connection_get_bufferevent(evcon);
	TAILQ_FOREACH(c, &p->pending, entry) {
		if (c->bev == bev)
			break;
	}
	if (c == NULL)
		return;		/* already followed */
	evtimer_del(&c->expiry);
	TAILQ_REMOVE(&p->pending, c, entry);
	c->pending = 0;
	evhttp_connection_set_closecb(evcon, push_conn_closed, c);
}

/* ---- requests ---- */

static void
push_refuse(struct push *p, struct evhttp_request *req, int code,
    const char *reason, const char *why)
{
	struct evhttp_connection	*evcon;
	struct evbuffer			*out;
	char				*host = NULL;
	ev_uint16_t			 port = 0;

	if ((evcon = evhttp_request_get_connection(req)) != NULL)
		evhttp_connection_get_peer(evcon, &host, &port);
	log_warnx("push: %d %s from %s: %s", code, reason,
	    host != NULL ? host : "?", why);
	p->stats.bad++;
	/* Not evhttp_send_error: it drops our headers (Allow). */
	out = evbuffer_new();
	evbuffer_add_printf(out, "%d %s\n", code, reason);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain");
	evhttp_send_reply(req, code, reason, out);
	evbuffer_free(out);
}

static void
push_request(struct evhttp_request *req, void *arg)
{
	struct push		*p = arg;
	struct evbuffer		*in, *out;
	struct evkeyvalq	*oh;
	const char		*uri, *ct;
	char			*body, *cause = NULL;
	struct ews_notifications n;
	struct buf		 env = BUF_INIT;
	size_t			 len;
	int			 verdict;

	push_conn_track(p, req);
	p->stats.requests++;
	uri = evhttp_request_get_uri(req);
	if (!push_target_ok(p, uri)) {
		p->stats.forbidden++;
		push_refuse(p, req, 403, "Forbidden", "no valid token");
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "POST");
		push_refuse(p, req, 405, "Method Not Allowed", "not a POST");
		return;
	}
	ct = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Content-Type");
	if (ct != NULL && strstr(ct, "xml") == NULL) {
		push_refuse(p, req, 400, "Bad Request", "not XML");
		return;
	}
	in = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(in);
	body = xmalloc(len + 1);
	evbuffer_remove(in, body, len);
	body[len] = '\0';
	memset(&n, 0, sizeof n);
	if (ews_parse_send_notification(body, len, &n, &cause) != 0) {
		p->stats.unparsable++;
		push_refuse(p, req, 400, "Bad Request", cause != NULL ? cause :
		    "not a SendNotification");
		free(cause);
		ews_notifications_free(&n);
		free(body);
		return;
	}
	verdict = p->cb(&n, body, len, p->arg);
	ews_notifications_free(&n);
	free(body);
	if (verdict != PUSH_OK && verdict != PUSH_UNSUBSCRIBE) {
		push_refuse(p, req, 400, "Bad Request", "refused by the owner");
		return;
	}
	if (verdict == PUSH_OK)
		p->stats.ok++;
	else
		p->stats.unsubscribe++;
	soap_send_notification_result(&env, verdict == PUSH_UNSUBSCRIBE);
	oh = evhttp_request_get_output_headers(req);
	evhttp_add_header(oh, "Content-Type", "text/xml; charset=utf-8");
	out = evbuffer_new();
	evbuffer_add(out, env.data, env.len);
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
	buf_free(&env);
}
