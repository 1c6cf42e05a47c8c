/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Push-notification listener: accept (allowlist, connection cap),
 * bufferevents (plain or OpenSSL) with one absolute deadline per
 * request, and the request path itself (push_session), which frames the
 * request, checks its head, pre-scans and parses the body and answers.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "base/buf.h"
#include "base/cidr.h"
#include "base/conf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "ews/ews_parse.h"
#include "ews/soap.h"
#include "ews/xmlscan.h"
#include "graph/graph_sub.h"
#include "io/push.h"
#include "io/push_req.h"
#include "io/tls.h"

#define PUSH_LINGER_MS		1000	/* reading and dropping after a
					   refusal, so the answer is not
					   lost to a reset */
#define PUSH_LINGER_MAX		(256 * 1024)
#define PUSH_ACCEPT_RETRY_MS	100	/* after EMFILE and friends */
#define PUSH_EVICT_GRACE_MS	1000	/* spared while older ones exist */
/*
 * Connections the kernel completes before we accept them.  With a short
 * queue, a crowd reconnecting as fast as it is closed keeps it full and
 * the kernel drops Exchange's SYNs (retried after 1 s, 3 s, ...); the
 * kernel caps it at net.core.somaxconn (4096).
 */
#define PUSH_BACKLOG		4096
/*
 * libevent accepts the whole queue in one callback; new connections
 * would then make room by closing the ones accepted just before, whose
 * requests were not even read yet.  Accept this many at a time, then let
 * a loop pass read them.
 */
#define PUSH_ACCEPT_BURST	16
#define PUSH_WARN_INTERVAL_MS	10000
#define PUSH_WARN_BURST		10

/*
 * A SendNotification is small: at most 50 events of a dozen nodes each
 * (EWS-NOTES 4, 5).  These limits leave room for that many times over
 * and keep libxml2's time on any accepted body far below a millisecond.
 */
static const struct xml_limits push_xml_limits = {
	24,		/* depth: Envelope ... ItemId is 8 */
	16,		/* attributes on one element */
	16,		/* namespace declarations in scope */
	8192		/* nodes */
};

struct push_session {
	struct push	*p;
	struct push_req	 req;
	char		 peer[64];
	bool		 counted;	/* this request is in stats.requests */
	bool		 answered;	/* the next feed starts a request */
};

enum push_conn_state {
	PC_READ,	/* reading a request (or waiting for one) */
	PC_ANSWER,	/* writing an answer, then the next request */
	PC_CLOSE,	/* writing a final answer */
	PC_LINGER	/* answer sent: dropping input until EOF */
};
#define PC_STATE_MAX	(PC_LINGER + 1)

static const char *const push_conn_state_names[PC_STATE_MAX] = {
	"read", "answer", "close", "linger"
};

/*
 * Which connections make room at the cap, first to last: those already
 * answered with a refusal; those with part of a request head and no more
 * (a slow or never-ending head); those with nothing of a request (just
 * accepted, or idle between keep-alive requests); the rest.  Within a
 * class the one that entered it first goes first.  Exchange sends a whole
 * request at once, so its connections go from IDLE to ACTIVE in one read
 * and are never PARTIAL; and a connection less than PUSH_EVICT_GRACE_MS
 * in its class is spared while an older one of any class is there.
 */
enum push_conn_class {
	PCL_DONE,
	PCL_PARTIAL,
	PCL_IDLE,
	PCL_ACTIVE,
	PCL_MAX
};

/* One accepted connection, from accept to close. */
struct push_conn {
	struct push		*p;
	struct bufferevent	*bev;
	struct event		 deadline;	/* of the current request */
	TAILQ_ENTRY(push_conn)	 entry;		/* p->conns[cls] */
	enum push_conn_class	 cls;
	int64_t			 since;		/* in cls, monotonic ms */
	enum push_conn_state	 state;
	struct push_session	 s;
	struct buf		 out;
	size_t			 lingered;
	bool			 tls;
};
TAILQ_HEAD(push_conns, push_conn);

struct push {
	struct event_base	*base;		/* borrowed */
	struct evconnlistener	*listener;
	struct event		 accept_retry;	/* after an accept error */
	struct event		 accept_resume;	/* after a burst */
	unsigned		 burst;		/* accepted in this one */
	struct event		 warn_flush;
	SSL_CTX			*ssl;		/* NULL: plain HTTP */
	struct cidr_list	 allow;		/* empty: anyone */
	char			*path;		/* without the token */
	char			*target;	/* path/token: what may POST */
	char			*graph_target;	/* graph_path/token, or NULL */
	char			*graph_lc_target; /* .../lifecycle */
	push_graph_cb		 graph_cb;
	char			 token[PUSH_TOKEN_LEN + 1];
	unsigned		 port;
	unsigned		 max_conns;
	size_t			 max_body;
	int64_t			 timeout_ms;
	struct push_conns	 conns[PCL_MAX];	/* by class, oldest
							   first */
	int			 devnull;	/* see push_conn_free */
	struct log_rate		 warn;
	push_notify_cb		 cb;
	void			*arg;
	struct push_stats	 stats;
};

static int	 push_parse_listen(const char *, struct sockaddr_storage *,
		    int *, char **);
static int	 push_token_new(char *, const char *, char **);
static bool	 push_target_ok(const char *, const char *);
static void	 push_warn(struct push *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 push_warn_flush(evutil_socket_t, short, void *);
static void	 push_accept(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	 push_accept_error(struct evconnlistener *, void *);
static void	 push_accept_retry(evutil_socket_t, short, void *);
static void	 push_accept_resume(evutil_socket_t, short, void *);
static void	 push_conn_free(struct push_conn *);
static void	 push_conn_arm(struct push_conn *, int64_t);
static void	 push_conn_classify(struct push_conn *);
static struct push_conn *push_conn_victim(struct push *);
static void	 push_conn_deadline(evutil_socket_t, short, void *);
static void	 push_conn_read(struct bufferevent *, void *);
static void	 push_conn_write(struct bufferevent *, void *);
static void	 push_conn_event(struct bufferevent *, short, void *);
static void	 push_conn_input(struct push_conn *);
static void	 push_session_init(struct push_session *, struct push *,
		    const char *);
static int	 push_answer(struct push_session *, int, const char *,
		    const char *, struct buf *);
static int	 push_refuse(struct push_session *, int, const char *,
		    const char *, struct buf *);
static int	 push_head(struct push_session *, struct buf *);
static int	 push_body(struct push_session *, struct buf *);
static const char *push_reason(int);
static int64_t	 push_cpu_us(void);
static void	 push_busy(struct push *, int64_t);

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
	o->allow = conf->push.allow;
	o->max_body = conf->push.max_body;
	o->max_connections = conf->push.max_connections;
	o->timeout_ms = conf->push.request_timeout_ms;
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

/* The given token, or PUSH_TOKEN_LEN hex digits from the CSPRNG. */
static int
push_token_new(char *out, const char *given, char **cause)
{
	static const char	 hex[] = "0123456789abcdef";
	unsigned char		 raw[PUSH_TOKEN_LEN / 2];
	size_t			 i;

	if (given != NULL) {
		if (strlen(given) != PUSH_TOKEN_LEN ||
		    strspn(given, hex) != PUSH_TOKEN_LEN) {
			xasprintf(cause, "push token: want %d hex digits",
			    PUSH_TOKEN_LEN);
			return (-1);
		}
		memcpy(out, given, PUSH_TOKEN_LEN + 1);
		return (0);
	}
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
push_target_ok(const char *target, const char *uri)
{
	size_t	 n;

	if (target == NULL)
		return (false);
	n = strlen(target);
	if (strcspn(uri, "?#") != n)
		return (false);
	return (CRYPTO_memcmp(uri, target, n) == 0);
}

/* Which route a request target takes. */
enum push_route { ROUTE_NONE, ROUTE_EWS, ROUTE_GRAPH, ROUTE_GRAPH_LC };

static enum push_route
push_route(const struct push *p, const char *uri)
{
	if (push_target_ok(p->target, uri))
		return (ROUTE_EWS);
	if (push_target_ok(p->graph_target, uri))
		return (ROUTE_GRAPH);
	if (push_target_ok(p->graph_lc_target, uri))
		return (ROUTE_GRAPH_LC);
	return (ROUTE_NONE);
}

/* ---- set-up ---- */

struct push *
push_new(struct event_base *base, const struct push_opts *o,
    push_notify_cb cb, void *arg, char **cause)
{
	struct push		*p;
	struct sockaddr_storage	 ss;
	int			 sslen = 0;
	socklen_t		 blen = sizeof ss;
	size_t			 n;

	*cause = NULL;
	if (o->listen != NULL &&
	    push_parse_listen(o->listen, &ss, &sslen, cause) != 0)
		return (NULL);
	p = xcalloc(1, sizeof *p);
	p->base = base;
	p->cb = cb;
	p->arg = arg;
	p->max_conns = o->max_connections > 0 ? o->max_connections :
	    PUSH_DEFAULT_MAX_CONNS;
	p->max_body = o->max_body > 0 ? o->max_body : PUSH_DEFAULT_MAX_BODY;
	p->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms :
	    PUSH_DEFAULT_TIMEOUT_MS;
	p->warn = (struct log_rate)LOG_RATE_INIT("push: ",
	    PUSH_WARN_INTERVAL_MS, PUSH_WARN_BURST);
	for (n = 0; n < PCL_MAX; n++)
		TAILQ_INIT(&p->conns[n]);
	p->devnull = -1;
	evtimer_assign(&p->accept_retry, base, push_accept_retry, p);
	evtimer_assign(&p->accept_resume, base, push_accept_resume, p);
	evtimer_assign(&p->warn_flush, base, push_warn_flush, p);
	p->path = xstrdup(o->path != NULL ? o->path : "");
	p->path[strcspn(p->path, "?#")] = '\0';
	for (n = strlen(p->path); n > 0 && p->path[n - 1] == '/'; n--)
		p->path[n - 1] = '\0';
	if (push_token_new(p->token, o->token, cause) != 0)
		goto fail;
	xasprintf(&p->target, "%s/%s", p->path, p->token);
	if (o->graph_path != NULL) {
		n = strcspn(o->graph_path, "?#");
		while (n > 0 && o->graph_path[n - 1] == '/')
			n--;
		xasprintf(&p->graph_target, "%.*s/%s", (int)n, o->graph_path,
		    p->token);
		xasprintf(&p->graph_lc_target, "%s/lifecycle",
		    p->graph_target);
		p->graph_cb = o->graph_cb;
	}
	if (o->allow != NULL && cidr_list_parse(o->allow, &p->allow,
	    cause) != 0)
		goto fail;
	if (o->certificate != NULL &&
	    (p->ssl = tls_server_ctx_new(o->certificate, o->key,
	    cause)) == NULL)
		goto fail;
	if (o->listen == NULL)
		return (p);
	if ((p->devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1) {
		xasprintf(cause, "/dev/null: %s", strerror(errno));
		goto fail;
	}

	/*
	 * Deferred accept (TCP_DEFER_ACCEPT): a connection reaches us with
	 * its first bytes, so Exchange's whole request is read at once and
	 * peers that connect and say nothing never take a slot.
	 */
	p->listener = evconnlistener_new_bind(base, push_accept, p,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
	    LEV_OPT_REUSEABLE | LEV_OPT_DEFERRED_ACCEPT, PUSH_BACKLOG,
	    (struct sockaddr *)&ss, sslen);
	if (p->listener == NULL) {
		xasprintf(cause, "listen on %s: %s", o->listen,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		goto fail;
	}
	evconnlistener_set_error_cb(p->listener, push_accept_error);
	if (getsockname(evconnlistener_get_fd(p->listener),
	    (struct sockaddr *)&ss, &blen) == 0)
		p->port = ntohs(ss.ss_family == AF_INET6 ?
		    ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port);
	log_info("push listener on %s (%s, port %u, %u connections, "
	    "%zu-byte bodies, %lld ms per request%s%s)", o->listen,
	    p->ssl != NULL ? "https" : "http", p->port, p->max_conns,
	    p->max_body, (long long)p->timeout_ms,
	    p->allow.n > 0 ? ", from " : "", p->allow.n > 0 ? o->allow : "");
	return (p);
fail:
	push_free(p);
	return (NULL);
}

void
push_free(struct push *p)
{
	struct push_conn	*c;
	int			 i;

	if (p == NULL)
		return;
	if (p->listener != NULL)
		evconnlistener_free(p->listener);
	for (i = 0; i < PCL_MAX; i++)
		while ((c = TAILQ_FIRST(&p->conns[i])) != NULL)
			push_conn_free(c);
	event_del(&p->accept_retry);
	event_del(&p->accept_resume);
	event_del(&p->warn_flush);
	log_rate_flush(&p->warn, INT64_MAX / 2, LOG_WARNING);
	if (p->ssl != NULL)
		SSL_CTX_free(p->ssl);
	cidr_list_free(&p->allow);
	if (p->devnull != -1)
		close(p->devnull);
	explicit_bzero(p->token, sizeof p->token);
	if (p->target != NULL) {
		explicit_bzero(p->target, strlen(p->target));
		free(p->target);
	}
	if (p->graph_target != NULL) {
		explicit_bzero(p->graph_target, strlen(p->graph_target));
		explicit_bzero(p->graph_lc_target, strlen(p->graph_lc_target));
		free(p->graph_target);
		free(p->graph_lc_target);
	}
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
	json_kv_int(w, "accepted", (int64_t)st->accepted);
	json_kv_int(w, "denied", (int64_t)st->denied);
	json_kv_int(w, "evicted", (int64_t)st->evicted);
	json_kv_int(w, "timeouts", (int64_t)st->timeouts);
	json_kv_int(w, "requests", (int64_t)st->requests);
	json_kv_int(w, "ok", (int64_t)st->ok);
	json_kv_int(w, "unsubscribe", (int64_t)st->unsubscribe);
	json_kv_int(w, "refused", (int64_t)st->bad);
	json_kv_int(w, "forbidden", (int64_t)st->forbidden);
	json_kv_int(w, "too_large", (int64_t)st->too_large);
	json_kv_int(w, "unparsable", (int64_t)st->unparsable);
	json_kv_int(w, "log_suppressed", (int64_t)st->log_suppressed);
	json_kv_int(w, "graph_validations", (int64_t)st->graph_validations);
	json_kv_int(w, "graph_notifications", (int64_t)st->graph_ok);
	json_kv_int(w, "busy_max_us", st->busy_max_us);
	json_obj_end(w);
}

/* ---- rate-limited warnings ---- */

static void
push_warn(struct push *p, const char *fmt, ...)
{
	struct timeval	 tv;
	va_list		 ap;
	int64_t		 now = time_mono_ms(), wait;

	if (log_rate_allow(&p->warn, now, LOG_WARNING)) {
		va_start(ap, fmt);
		log_vemit(LOG_WARNING, NULL, fmt, ap);
		va_end(ap);
		return;
	}
	p->stats.log_suppressed++;
	if (!evtimer_pending(&p->warn_flush, NULL) &&
	    (wait = log_rate_flush(&p->warn, now, LOG_WARNING)) >= 0)
		evtimer_add(&p->warn_flush, time_ms_tv(&tv, wait));
}

static void
push_warn_flush(evutil_socket_t fd, short ev, void *arg)
{
	struct push	*p = arg;
	struct timeval	 tv;
	int64_t		 wait;

	if ((wait = log_rate_flush(&p->warn, time_mono_ms(),
	    LOG_WARNING)) >= 0)
		evtimer_add(&p->warn_flush, time_ms_tv(&tv, wait));
}

/* ---- connections ---- */

/* CPU time of this thread: what a callback costs the loop, load aside. */
static int64_t
push_cpu_us(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == -1)
		return (0);
	return ((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

static void
push_busy(struct push *p, int64_t t0)
{
	int64_t	 d = push_cpu_us() - t0;

	if (d > p->stats.busy_max_us)
		p->stats.busy_max_us = d;
}

static void
push_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct push	*p = arg;
	struct push_conn *c;
	char		 host[INET6_ADDRSTRLEN] = "?";
	const void	*addr;
	SSL		*ssl;
	int64_t		 t0 = push_cpu_us();

	addr = sa->sa_family == AF_INET6 ?
	    (const void *)&((struct sockaddr_in6 *)sa)->sin6_addr :
	    (const void *)&((struct sockaddr_in *)sa)->sin_addr;
	evutil_inet_ntop(sa->sa_family, addr, host, sizeof host);
	if (p->allow.n > 0 && !cidr_list_match(&p->allow, sa)) {
		p->stats.denied++;
		push_warn(p, "push: connection from %s refused: not in allow",
		    host);
		evutil_closesocket(fd);
		push_busy(p, t0);
		return;
	}
	/* Strict cap: one connection makes room (see push_conn_class). */
	if (p->stats.connections >= p->max_conns &&
	    (c = push_conn_victim(p)) != NULL) {
		p->stats.evicted++;
		push_warn(p, "push: %u connections: closing one from %s",
		    p->stats.connections, c->s.peer);
		push_conn_free(c);
	}
	c = xcalloc(1, sizeof *c);
	c->p = p;
	push_session_init(&c->s, p, host);
	buf_init(&c->out);
	if (p->ssl != NULL && (ssl = SSL_new(p->ssl)) != NULL) {
		c->tls = true;
		c->bev = bufferevent_openssl_socket_new(p->base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		if (c->bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(c->bev,
			    1);
	} else if (p->ssl != NULL)
		c->bev = NULL;	/* no SSL object: no plain fallback */
	else
		c->bev = bufferevent_socket_new(p->base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		evutil_closesocket(fd);
		push_req_free(&c->s.req);
		free(c);
		return;
	}
	evtimer_assign(&c->deadline, p->base, push_conn_deadline, c);
	c->cls = PCL_IDLE;
	c->since = time_mono_ms();
	TAILQ_INSERT_TAIL(&p->conns[c->cls], c, entry);
	p->stats.connections++;
	p->stats.accepted++;
	push_conn_arm(c, p->timeout_ms);
	bufferevent_setcb(c->bev, push_conn_read, push_conn_write,
	    push_conn_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (++p->burst >= PUSH_ACCEPT_BURST &&
	    !evtimer_pending(&p->accept_retry, NULL)) {
		struct timeval	 now = { 0, 0 };

		evconnlistener_disable(l);
		evtimer_add(&p->accept_resume, &now);
	}
	push_busy(p, t0);
}

/* Out of descriptors (or similar): stop accepting for a moment. */
static void
push_accept_error(struct evconnlistener *l, void *arg)
{
	struct push	*p = arg;
	struct timeval	 tv = { 0, PUSH_ACCEPT_RETRY_MS * 1000 };

	push_warn(p, "push: accept: %s", evutil_socket_error_to_string(
	    EVUTIL_SOCKET_ERROR()));
	evconnlistener_disable(l);
	evtimer_add(&p->accept_retry, &tv);
}

static void
push_accept_retry(evutil_socket_t fd, short ev, void *arg)
{
	struct push	*p = arg;

	p->burst = 0;
	evconnlistener_enable(p->listener);
}

/* A loop pass after a burst: the connections it brought were read. */
static void
push_accept_resume(evutil_socket_t fd, short ev, void *arg)
{
	struct push	*p = arg;

	p->burst = 0;
	if (!evtimer_pending(&p->accept_retry, NULL))
		evconnlistener_enable(p->listener);
}

/* A new deadline ms from now. */
static void
push_conn_arm(struct push_conn *c, int64_t ms)
{
	struct timeval	 tv;

	evtimer_add(&c->deadline, time_ms_tv(&tv, ms));
}

/* Move the connection to the class its state says; last in it. */
static void
push_conn_classify(struct push_conn *c)
{
	enum push_conn_class	 cls;

	if (c->state == PC_CLOSE || c->state == PC_LINGER)
		cls = PCL_DONE;
	else if (c->state != PC_READ)
		cls = PCL_ACTIVE;
	else if (c->s.answered || c->s.req.state == PUSH_REQ_IDLE)
		cls = PCL_IDLE;
	else if (c->s.req.state == PUSH_REQ_HEAD)
		cls = PCL_PARTIAL;
	else
		cls = PCL_ACTIVE;
	if (cls == c->cls)
		return;
	TAILQ_REMOVE(&c->p->conns[c->cls], c, entry);
	c->cls = cls;
	c->since = time_mono_ms();
	TAILQ_INSERT_TAIL(&c->p->conns[cls], c, entry);
}

/*
 * The single state change of a connection: the debug line, and the
 * class at the cap its new state puts it in.
 */
static void
push_conn_set_state(struct push_conn *c, enum push_conn_state s)
{
	assert((unsigned)s < PC_STATE_MAX);
	if (c->state != s)
		log_debug("push: connection from %s: %s -> %s", c->s.peer,
		    push_conn_state_names[c->state], push_conn_state_names[s]);
	c->state = s;
	push_conn_classify(c);
}

/* The connection to close at the cap, in push_conn_class order. */
static struct push_conn *
push_conn_victim(struct push *p)
{
	struct push_conn	*c;
	int64_t			 now = time_mono_ms();
	int			 i;

	if ((c = TAILQ_FIRST(&p->conns[PCL_DONE])) != NULL)
		return (c);
	for (i = PCL_PARTIAL; i < PCL_MAX; i++)
		if ((c = TAILQ_FIRST(&p->conns[i])) != NULL &&
		    now - c->since >= PUSH_EVICT_GRACE_MS)
			return (c);
	for (i = PCL_PARTIAL; i < PCL_MAX; i++)
		if ((c = TAILQ_FIRST(&p->conns[i])) != NULL)
			return (c);
	return (NULL);
}

/*
 * libevent closes a bufferevent's socket from a finalizer that runs
 * after the current callbacks, and accepts a whole backlog in one
 * callback: a connection closed to make room would stay open next to its
 * replacement for a moment.  Its events are gone once bufferevent_free
 * returns, so the socket is closed right then by pointing its descriptor
 * at /dev/null; the finalizer closes that later.  The cap holds for
 * sockets at every instant.
 */
static void
push_conn_free(struct push_conn *c)
{
	struct push	*p = c->p;
	evutil_socket_t	 fd = bufferevent_getfd(c->bev);

	TAILQ_REMOVE(&p->conns[c->cls], c, entry);
	p->stats.connections--;
	event_del(&c->deadline);
	bufferevent_free(c->bev);
	if (fd != -1 && p->devnull != -1)
		dup2(p->devnull, fd);
	push_req_free(&c->s.req);
	buf_free(&c->out);
	free(c);
}

static void
push_conn_deadline(evutil_socket_t fd, short ev, void *arg)
{
	struct push_conn	*c = arg;

	if (c->state != PC_LINGER && (c->state != PC_READ ||
	    c->s.req.state != PUSH_REQ_IDLE)) {
		c->p->stats.timeouts++;
		push_warn(c->p, "push: request from %s took longer than "
		    "%lld ms: closed", c->s.peer, (long long)c->p->timeout_ms);
	}
	push_conn_free(c);
}

/* Feed what has arrived; write answers; stop after each one. */
static void
push_conn_input(struct push_conn *c)
{
	struct evbuffer	*in = bufferevent_get_input(c->bev);
	size_t		 n, used;
	int		 verdict = PUSH_SESSION_MORE;

	while (c->state == PC_READ && (n = evbuffer_get_length(in)) > 0) {
		n = evbuffer_get_contiguous_space(in);
		verdict = push_session_feed(&c->s,
		    (const char *)evbuffer_pullup(in, (ev_ssize_t)n), n, &used,
		    &c->out);
		evbuffer_drain(in, used);
		if (c->out.len > 0) {
			bufferevent_write(c->bev, c->out.data, c->out.len);
			buf_reset(&c->out);
		}
		if (verdict == PUSH_SESSION_ANSWERED)
			push_conn_set_state(c, PC_ANSWER);
		else if (verdict == PUSH_SESSION_CLOSE)
			push_conn_set_state(c, PC_CLOSE);
	}
	push_conn_classify(c);
}

static void
push_conn_read(struct bufferevent *bev, void *arg)
{
	struct push_conn	*c = arg;
	struct push		*p = c->p;
	struct evbuffer		*in = bufferevent_get_input(bev);
	size_t			 n;
	int64_t			 t0 = push_cpu_us();

	switch (c->state) {
	case PC_READ:
		push_conn_input(c);
		push_busy(p, t0);
		break;
	case PC_LINGER:
		n = evbuffer_get_length(in);
		evbuffer_drain(in, n);
		c->lingered += n;
		if (c->lingered > PUSH_LINGER_MAX)
			push_conn_free(c);
		break;
	case PC_ANSWER:
	case PC_CLOSE:
		/* Pipelined bytes wait until the answer is out. */
		break;
	}
}

static void
push_conn_write(struct bufferevent *bev, void *arg)
{
	struct push_conn	*c = arg;
	int64_t			 t0;

	switch (c->state) {
	case PC_ANSWER:
		/* Keep-alive: the next request has its own deadline. */
		t0 = push_cpu_us();
		push_conn_set_state(c, PC_READ);
		push_conn_arm(c, c->p->timeout_ms);
		push_conn_input(c);
		push_busy(c->p, t0);
		break;
	case PC_CLOSE:
		/*
		 * Closing with unread input would reset the connection and
		 * could destroy the answer on its way: half-close, drop
		 * what still comes for a moment, then close.
		 */
		push_conn_set_state(c, PC_LINGER);
		if (!c->tls)
			shutdown(bufferevent_getfd(bev), SHUT_WR);
		evbuffer_drain(bufferevent_get_input(bev),
		    evbuffer_get_length(bufferevent_get_input(bev)));
		if (event_pending(&c->deadline, EV_TIMEOUT, NULL)) {
			struct timeval tv = { 0, PUSH_LINGER_MS * 1000 };

			evtimer_add(&c->deadline, &tv);
		}
		break;
	case PC_READ:
	case PC_LINGER:
		break;
	}
}

static void
push_conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct push_conn	*c = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		push_conn_free(c);
}

/* ---- the request path ---- */

static void
push_session_init(struct push_session *s, struct push *p, const char *peer)
{
	memset(s, 0, sizeof *s);
	s->p = p;
	snprintf(s->peer, sizeof s->peer, "%s", peer != NULL ? peer : "?");
	push_req_init(&s->req, p->max_body);
}

struct push_session *
push_session_new(struct push *p, const char *peer)
{
	struct push_session	*s;

	s = xcalloc(1, sizeof *s);
	push_session_init(s, p, peer);
	return (s);
}

void
push_session_free(struct push_session *s)
{
	if (s == NULL)
		return;
	push_req_free(&s->req);
	free(s);
}

static const char *
push_reason(int code)
{
	switch (code) {
	case 100:
		return ("Continue");
	case 200:
		return ("OK");
	case 202:
		return ("Accepted");
	case 400:
		return ("Bad Request");
	case 403:
		return ("Forbidden");
	case 405:
		return ("Method Not Allowed");
	case 411:
		return ("Length Required");
	case 413:
		return ("Content Too Large");
	case 414:
		return ("URI Too Long");
	case 417:
		return ("Expectation Failed");
	case 431:
		return ("Request Header Fields Too Large");
	case 501:
		return ("Not Implemented");
	case 505:
		return ("HTTP Version Not Supported");
	default:
		return ("Error");
	}
}

/* An answer with a body; returns what push_session_feed returns. */
static int
push_answer(struct push_session *s, int code, const char *ctype,
    const char *body, struct buf *out)
{
	bool	 close = code / 100 != 2 || s->req.close;

	buf_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%s%s\r\n%s", code, push_reason(code),
	    ctype, strlen(body), code == 405 ? "Allow: POST\r\n" : "",
	    close ? "Connection: close\r\n" : "", body);
	return (close ? PUSH_SESSION_CLOSE : PUSH_SESSION_ANSWERED);
}

static int
push_refuse(struct push_session *s, int code, const char *why,
    const char *detail, struct buf *out)
{
	char	 text[64];

	s->p->stats.bad++;
	if (code == 403)
		s->p->stats.forbidden++;
	else if (code == 413)
		s->p->stats.too_large++;
	push_warn(s->p, "push: %d %s from %s: %s%s%.200s", code,
	    push_reason(code), s->peer, why, detail != NULL ? ": " : "",
	    detail != NULL ? detail : "");
	snprintf(text, sizeof text, "%d %s\n", code, push_reason(code));
	return (push_answer(s, code, "text/plain", text, out));
}

/* The head is in: refuse now, or read the body. */
static int
push_head(struct push_session *s, struct buf *out)
{
	struct push_req	*r = &s->req;
	const char	*ct = r->content_type;

	enum push_route	 route = push_route(s->p, r->target);

	if (route == ROUTE_NONE)
		return (push_refuse(s, 403, "no valid token", NULL, out));
	if (strcmp(r->method, "POST") != 0)
		return (push_refuse(s, 405, "not a POST", NULL, out));
	if (!r->chunked && r->content_length < 0)
		return (push_refuse(s, 411, "no Content-Length", NULL, out));
	/* Graph's handshake carries text/plain; its notifications JSON. */
	if (route == ROUTE_EWS && ct[0] != '\0' &&
	    strcasestr(ct, "xml") == NULL)
		return (push_refuse(s, 400, "not XML", NULL, out));
	if (r->expect_continue)
		buf_printf(out, "HTTP/1.1 100 Continue\r\n\r\n");
	push_req_body(r);
	return (PUSH_SESSION_MORE);
}

/*
 * A Graph request, whole: the validation handshake answered with its
 * token, or notifications handed to the owner.
 */
static int
push_graph_body(struct push_session *s, enum push_route route,
    struct buf *out)
{
	struct push	*p = s->p;
	struct push_req	*r = &s->req;
	const char	*q = strchr(r->target, '?');
	char		*token = NULL;
	int		 v, rc;

	v = q != NULL ? graph_validation_token(q + 1, strlen(q + 1),
	    &token) : 0;
	if (v == -1)
		return (push_refuse(s, 400, "bad validationToken", NULL, out));
	if (v == 1) {
		p->stats.graph_validations++;
		p->stats.ok++;
		rc = push_answer(s, 200, "text/plain; charset=utf-8", token,
		    out);
		free(token);
		return (rc);
	}
	if (strcasestr(r->content_type, "json") == NULL)
		return (push_refuse(s, 400, "not JSON", NULL, out));
	if (p->graph_cb == NULL || p->graph_cb(route == ROUTE_GRAPH_LC,
	    r->body.data, r->body.len, p->arg) == PUSH_BAD) {
		p->stats.unparsable++;
		return (push_refuse(s, 400, "not a notification collection",
		    NULL, out));
	}
	p->stats.graph_ok++;
	p->stats.ok++;
	return (push_answer(s, 202, "text/plain", "", out));
}

/* The whole request is in: pre-scan, parse, ask the owner, answer. */
static int
push_body(struct push_session *s, struct buf *out)
{
	struct push		*p = s->p;
	struct push_req		*r = &s->req;
	struct ews_notifications n;
	struct buf		 env = BUF_INIT;
	char			*cause = NULL;
	enum push_route		 route;
	int			 verdict, rc;

	memset(&n, 0, sizeof n);
	buf_putc(&r->body, '\0');	/* a NUL-terminated empty body */
	r->body.len--;
	if ((route = push_route(p, r->target)) != ROUTE_EWS)
		return (push_graph_body(s, route, out));
	if (xml_prescan(r->body.data, r->body.len, &push_xml_limits,
	    &cause) != 0 || ews_parse_send_notification(r->body.data,
	    r->body.len, &n, &cause) != 0) {
		p->stats.unparsable++;
		rc = push_refuse(s, 400, "not a SendNotification", cause, out);
		free(cause);
		ews_notifications_free(&n);
		return (rc);
	}
	verdict = p->cb != NULL ? p->cb(&n, r->body.data, r->body.len,
	    p->arg) : PUSH_UNSUBSCRIBE;
	ews_notifications_free(&n);
	if (verdict != PUSH_OK && verdict != PUSH_UNSUBSCRIBE)
		return (push_refuse(s, 400, "refused by the owner", NULL,
		    out));
	if (verdict == PUSH_OK)
		p->stats.ok++;
	else
		p->stats.unsubscribe++;
	soap_send_notification_result(&env, verdict == PUSH_UNSUBSCRIBE);
	rc = push_answer(s, 200, "text/xml; charset=utf-8", buf_str(&env),
	    out);
	buf_free(&env);
	return (rc);
}

int
push_session_feed(struct push_session *s, const char *data, size_t len,
    size_t *used, struct buf *out)
{
	struct push_req	*r = &s->req;
	size_t		 n;
	int		 rc;

	*used = 0;
	if (s->answered) {
		push_req_reset(r);
		s->counted = s->answered = false;
	}
	for (;;) {
		switch (r->state) {
		case PUSH_REQ_HEAD_DONE:
			if ((rc = push_head(s, out)) != PUSH_SESSION_MORE) {
				s->answered = true;
				return (rc);
			}
			continue;
		case PUSH_REQ_DONE:
			s->answered = true;
			return (push_body(s, out));
		case PUSH_REQ_ERROR:
			s->answered = true;
			return (push_refuse(s, r->status, r->error, NULL,
			    out));
		case PUSH_REQ_IDLE:
		case PUSH_REQ_HEAD:
		case PUSH_REQ_BODY:
		default:
			break;
		}
		if (*used == len)
			return (PUSH_SESSION_MORE);
		n = push_req_feed(r, data + *used, len - *used);
		*used += n;
		if (!s->counted && r->state != PUSH_REQ_IDLE) {
			s->counted = true;
			s->p->stats.requests++;
		}
	}
}
