/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * HTTP client engine: libcurl multi socket interface on the libevent loop
 * (socket contexts, one timer, completion dispatch), request objects and
 * result classification.  The only file that calls curl_multi_*.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "base/buf.h"
#include "base/conf.h"
#include "io/http.h"
#include "base/json.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "io/tls.h"
#include "base/xmalloc.h"

#define HTTP_DEFAULT_MAX_RESPONSE	(16 * 1024 * 1024)
#define HTTP_DEFAULT_CONNECT_MS		30000
#define HTTP_MAX_CAPTURE		8192	/* per captured header */
#define HTTP_TRACE_BODY			512	/* body bytes traced */
/*
 * Easy handles kept for reuse: a new handle per request costs its
 * set-up and teardown on every calendar change.  More than the requests
 * that run at once are rarely needed; beyond this many idle ones go.
 */
#define HTTP_POOL_MAX			64
/*
 * Receive buffer of a streaming request (a data callback).  libcurl
 * allocates the buffer per transfer (16 KiB by default) and a stream
 * keeps it for as long as it runs, one per 200 mailboxes, while its
 * envelopes (heartbeats, a few notifications) rarely exceed a page.
 * curl_easy_reset restores the default, so it is set for every use.
 */
#define HTTP_STREAM_BUFFER		4096

/*
 * One fd curl asked us to watch, or a connection's socket between its
 * transfers; curl owns the fd itself.  A connection's socket (opened by
 * http_open_socket, closed by http_close_socket) stays registered with
 * the loop while the connection waits in curl's pool: curl says
 * CURL_POLL_REMOVE when a transfer ends, and the next transfer on the
 * connection would otherwise cost an epoll_ctl to add it and one to
 * remove it again.  Such a socket is "idle": on eng->idle, not known to
 * curl's socket hash, and still watched for reading (an idle
 * connection's close or stray bytes wake us once; then it is unwatched
 * until curl uses it again or closes it).
 */
struct http_sock {
	struct http_engine	*eng;
	curl_socket_t		 fd;
	int			 what;		/* CURL_POLL_* armed */
	bool			 conn;		/* a connection's socket */
	bool			 idle;		/* on eng->idle */
	struct event		 ev;
	TAILQ_ENTRY(http_sock)	 entry;		/* eng->socks or eng->idle */
};

/* Work a request postpones to the next loop pass. */
enum http_defer {
	DEFER_NONE,
	DEFER_LAUNCH,	/* add to the multi (was inside curl) */
	DEFER_RESUME,	/* unpause (was inside curl) */
	DEFER_FAIL,	/* report fail_result through done */
	DEFER_FREE	/* cancelled inside curl: destroy */
};

struct http_request {
	struct http_engine	*eng;
	TAILQ_ENTRY(http_request) entry;
	unsigned		 id;
	CURL			*easy;
	struct curl_slist	*headers;
	char			*body;		/* request body, copy */
	size_t			 body_len;
	char			 errbuf[CURL_ERROR_SIZE];
	char			*tag;		/* for log lines */
	char			*method_url;	/* "POST https://..." */

	http_done_cb		 done;
	http_data_cb		 data;		/* NULL = unary */
	void			*arg;

	size_t			 max_response;
	bool			 no_auth;
	bool			 secret;
	bool			 in_multi;	/* added to eng->multi */
	bool			 cancelled;	/* owner gone */
	bool			 in_done;	/* done callback running */
	bool			 paused;
	bool			 toobig;
	bool			 aborted;	/* data cb said stop */
	bool			 retried;	/* bearer retry used */

	void			*token_wait;	/* token fetch */
	char			*token;		/* bearer in use */

	enum http_defer		 defer;
	struct event		 ev;		/* deferred work */
	enum http_result	 fail_result;
	char			*fail_msg;

	/* The current response (reset on every status line). */
	long			 status;
	struct buf		 resp;		/* unary or non-2xx */
	struct buf		 wwwauth;	/* offers, '\n'-separated */
	char			*ctype;
	char			*cookie;	/* backend cookie */
	char			*retry_after;	/* Retry-After value */
	int64_t			 started_ms;
};

struct http_engine {
	struct event_base	*base;		/* borrowed */
	CURLM			*multi;
	struct event		 timer;
	bool			 timer_now;	/* curl asked for 0 ms */
	int			 in_curl;	/* curl on the stack */

	enum http_cred		 cred;
	char			*username;
	char			*password;	/* secret */
	struct tls_client_opts	 tls;		/* strings owned */
	long			 connect_timeout_ms;
	size_t			 max_response;
	char			*user_agent;
	const struct http_token_source *tokens;	/* borrowed */
	/* No proxy variable in the environment: tell each transfer so,
	 * instead of libcurl looking them up per transfer. */
	bool			 no_proxy_env;
	CURL			*pool[HTTP_POOL_MAX];	/* idle, reset */
	unsigned		 npool;

	TAILQ_HEAD(, http_sock)	 socks;		/* curl's, assigned */
	TAILQ_HEAD(, http_sock)	 idle;		/* connections' between
						   transfers, or not yet
						   handed to us by curl */
	TAILQ_HEAD(, http_request) reqs;
	unsigned		 next_id;
	struct http_stats	 stats;
};

static int	 http_sock_cb(CURL *, curl_socket_t, int, void *, void *);
static curl_socket_t http_open_socket(void *, curlsocktype,
		    struct curl_sockaddr *);
static int	 http_close_socket(void *, curl_socket_t);
static struct http_sock *http_sock_new(struct http_engine *, curl_socket_t,
		    bool);
static void	 http_sock_arm(struct http_sock *, int);
static void	 http_sock_event(evutil_socket_t, short, void *);
static void	 http_sock_free(struct http_engine *, struct http_sock *);
static int	 http_timer_cb(CURLM *, long, void *);
static void	 http_timer_event(evutil_socket_t, short, void *);
static void	 http_action(struct http_engine *, curl_socket_t, int);
static void	 http_kick(struct http_engine *);
static void	 http_drain(struct http_engine *);
static void	 http_finish(struct http_request *, CURLcode);
static enum http_result http_classify(const struct http_request *, CURLcode,
		    long);
static void	 http_authorize(struct http_request *);
static void	 http_token_done(const char *, const char *, void *);
static void	 http_launch(struct http_request *);
static void	 http_fail(struct http_request *, enum http_result,
		    const char *);
static void	 http_defer(struct http_request *, enum http_defer);
static void	 http_defer_event(evutil_socket_t, short, void *);
static void	 http_deliver_fail(struct http_request *);
static void	 http_destroy(struct http_request *);
static void	 http_reset_response(struct http_request *);
static bool	 http_proxy_env(void);
static CURL	*http_easy_get(struct http_engine *);
static void	 http_easy_put(struct http_engine *, CURL *);
static int	 http_setup(struct http_request *,
		    const struct http_request_opts *, char **);
static int	 http_add_header(struct http_request *, const char *,
		    const char *, char **);
static size_t	 http_write_cb(char *, size_t, size_t, void *);
static size_t	 http_header_cb(char *, size_t, size_t, void *);
static int	 http_debug_cb(CURL *, curl_infotype, char *, size_t, void *);
static bool	 http_header_is(const char *, size_t, const char *,
		    const char **, size_t *);
static void	 http_sanitize(const char *, size_t, struct buf *);

static const char *
http_method_name(enum http_method m)
{
	switch (m) {
	case HTTP_GET:		return ("GET");
	case HTTP_PATCH:	return ("PATCH");
	case HTTP_DELETE:	return ("DELETE");
	default:		return ("POST");
	}
}

static const char *http_result_names[HTTP_RESULT_MAX] = {
	"ok", "auth", "throttled", "transient", "fatal", "toobig", "aborted"
};

const char *
http_result_name(enum http_result r)
{
	if ((unsigned)r >= HTTP_RESULT_MAX)
		return ("unknown");
	return (http_result_names[r]);
}

void
http_engine_opts_from_config(struct http_engine_opts *o,
    const struct config *conf)
{
	memset(o, 0, sizeof *o);
	switch (conf->exchange.auth) {
	case CONF_AUTH_NTLM:
		o->cred = HTTP_CRED_NTLM;
		break;
	case CONF_AUTH_BASIC:
		o->cred = HTTP_CRED_BASIC;
		break;
	case CONF_AUTH_NEGOTIATE:
		o->cred = HTTP_CRED_NEGOTIATE;
		break;
	case CONF_AUTH_OAUTH2:
		o->cred = HTTP_CRED_BEARER;
		break;
	}
	o->username = conf->exchange.username;
	o->password = conf->exchange.password;
	o->ca_file = conf->exchange.ca_file;
	o->client_cert = conf->exchange.client_cert;
	o->client_key = conf->exchange.client_key;
	o->tls_verify = conf->exchange.tls_verify;
	o->connect_timeout_ms = (long)conf->exchange.connect_timeout_ms;
}

struct http_engine *
http_engine_new(struct event_base *base, const struct http_engine_opts *o,
    char **cause)
{
	struct http_engine		*eng;
	struct tls_client_opts		 tls;
	const curl_version_info_data	*vi;
	CURLcode			 cc;

	/* Bad paths are start-up errors, not a failure per request. */
	tls.ca_file = o->ca_file;
	tls.client_cert = o->client_cert;
	tls.client_key = o->client_key;
	tls.verify = o->tls_verify;
	if (tls_client_check(&tls, cause) != 0)
		return (NULL);
	if ((cc = curl_global_init(CURL_GLOBAL_DEFAULT)) != CURLE_OK) {
		xasprintf(cause, "curl_global_init: %s",
		    curl_easy_strerror(cc));
		return (NULL);
	}
	vi = curl_version_info(CURLVERSION_NOW);
	if ((o->cred == HTTP_CRED_NTLM &&
	    !(vi->features & CURL_VERSION_NTLM)) ||
	    (o->cred == HTTP_CRED_NEGOTIATE &&
	    !(vi->features & CURL_VERSION_SPNEGO))) {
		xasprintf(cause, "libcurl %s was built without %s support",
		    vi->version, o->cred == HTTP_CRED_NTLM ? "NTLM" :
		    "SPNEGO (GSS-API)");
		curl_global_cleanup();
		return (NULL);
	}
	eng = xcalloc(1, sizeof *eng);
	eng->base = base;
	TAILQ_INIT(&eng->socks);
	TAILQ_INIT(&eng->idle);
	TAILQ_INIT(&eng->reqs);
	if ((eng->multi = curl_multi_init()) == NULL) {
		*cause = xstrdup("curl_multi_init failed");
		free(eng);
		curl_global_cleanup();
		return (NULL);
	}
	evtimer_assign(&eng->timer, base, http_timer_event, eng);
	eng->no_proxy_env = !http_proxy_env();

	eng->cred = o->cred;
	eng->username = o->username != NULL ? xstrdup(o->username) : NULL;
	eng->password = o->password != NULL ? xstrdup(o->password) : NULL;
	eng->tls.ca_file = o->ca_file != NULL ? xstrdup(o->ca_file) : NULL;
	eng->tls.client_cert = o->client_cert != NULL ?
	    xstrdup(o->client_cert) : NULL;
	eng->tls.client_key = o->client_key != NULL ?
	    xstrdup(o->client_key) : NULL;
	eng->tls.verify = o->tls_verify;
	eng->connect_timeout_ms = o->connect_timeout_ms > 0 ?
	    o->connect_timeout_ms : HTTP_DEFAULT_CONNECT_MS;
	eng->max_response = o->max_response > 0 ? o->max_response :
	    HTTP_DEFAULT_MAX_RESPONSE;
	if (o->user_agent != NULL)
		eng->user_agent = xstrdup(o->user_agent);
	else
		xasprintf(&eng->user_agent, "ewsgw/%s", PACKAGE_VERSION);

	curl_multi_setopt(eng->multi, CURLMOPT_SOCKETFUNCTION, http_sock_cb);
	curl_multi_setopt(eng->multi, CURLMOPT_SOCKETDATA, eng);
	curl_multi_setopt(eng->multi, CURLMOPT_TIMERFUNCTION, http_timer_cb);
	curl_multi_setopt(eng->multi, CURLMOPT_TIMERDATA, eng);
	curl_multi_setopt(eng->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    o->max_host_connections);
	curl_multi_setopt(eng->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
	    o->max_total_connections);
	/* NTLM binds to a connection: never multiplex or pipeline. */
	curl_multi_setopt(eng->multi, CURLMOPT_PIPELINING, CURLPIPE_NOTHING);

	if (!eng->tls.verify)
		log_warnx("TLS verification of %s is off: the connection is "
		    "not authenticated", o->peer != NULL ? o->peer :
		    "the Exchange server (tls_verify = no)");
	return (eng);
}

void
http_engine_set_credentials(struct http_engine *eng, const char *username,
    const char *password)
{
	free(eng->username);
	xfree_secret(eng->password);
	eng->username = username != NULL ? xstrdup(username) : NULL;
	eng->password = password != NULL ? xstrdup(password) : NULL;
}

void
http_engine_set_connect_timeout(struct http_engine *eng, long ms)
{
	eng->connect_timeout_ms = ms > 0 ? ms : HTTP_DEFAULT_CONNECT_MS;
}

void
http_engine_set_token_source(struct http_engine *eng,
    const struct http_token_source *src)
{
	eng->tokens = src;
}

void
http_engine_free(struct http_engine *eng)
{
	struct http_request	*r;
	struct http_sock	*sk;

	if (eng == NULL)
		return;
	while ((r = TAILQ_FIRST(&eng->reqs)) != NULL) {
		r->cancelled = true;
		eng->stats.cancelled++;
		http_destroy(r);
	}
	while (eng->npool > 0)
		curl_easy_cleanup(eng->pool[--eng->npool]);
	/* May still call the socket callbacks: the base must exist. */
	curl_multi_cleanup(eng->multi);
	while ((sk = TAILQ_FIRST(&eng->socks)) != NULL)
		http_sock_free(eng, sk);
	while ((sk = TAILQ_FIRST(&eng->idle)) != NULL)
		http_sock_free(eng, sk);
	event_del(&eng->timer);
	free(eng->username);
	xfree_secret(eng->password);
	free((char *)eng->tls.ca_file);
	free((char *)eng->tls.client_cert);
	free((char *)eng->tls.client_key);
	free(eng->user_agent);
	free(eng);
	curl_global_cleanup();
}

const struct http_stats *
http_engine_stats(const struct http_engine *eng)
{
	return (&eng->stats);
}

void
http_stats_json(const struct http_stats *st, struct json_writer *w)
{
	int	 i;

	json_obj_begin(w);
	json_kv_int(w, "started", st->started);
	json_kv_int(w, "in_flight", st->in_flight);
	json_kv_int(w, "cancelled", st->cancelled);
	json_kv_int(w, "retried_auth", st->retried_auth);
	json_kv_int(w, "bytes_in", st->bytes_in);
	json_kv_int(w, "bytes_out", st->bytes_out);
	json_kv_int(w, "sockets", st->sockets);
	json_key(w, "results");
	json_obj_begin(w);
	for (i = 0; i < HTTP_RESULT_MAX; i++)
		json_kv_int(w, http_result_name(i), st->results[i]);
	json_obj_end(w);
	json_obj_end(w);
}

/* ---- curl <-> libevent glue ---- */

/*
 * curl's sockets, created close-on-exec: a child the daemon starts (the
 * exec sink's command) never inherits a connection to Exchange.
 */
static curl_socket_t
http_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct http_engine	*eng = arg;
	int			 fd;

	(void)purpose;
	fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	if (fd == -1)
		return (CURL_SOCKET_BAD);
	/* Idle until curl first asks us to watch it. */
	(void)http_sock_new(eng, fd, true);
	return (fd);
}

/* Only now may a connection's socket leave the loop. */
static int
http_close_socket(void *arg, curl_socket_t fd)
{
	struct http_engine	*eng = arg;
	struct http_sock	*sk;

	TAILQ_FOREACH(sk, &eng->idle, entry)
		if (sk->fd == fd)
			break;
	if (sk == NULL)		/* curl said no CURL_POLL_REMOVE first */
		TAILQ_FOREACH(sk, &eng->socks, entry)
			if (sk->fd == fd)
				break;
	if (sk != NULL)
		http_sock_free(eng, sk);
	return (close(fd));
}

static struct http_sock *
http_sock_new(struct http_engine *eng, curl_socket_t fd, bool conn)
{
	struct http_sock	*sk;

	sk = xcalloc(1, sizeof *sk);
	sk->eng = eng;
	sk->fd = fd;
	sk->conn = conn;
	sk->idle = conn;
	if (sk->idle)
		TAILQ_INSERT_TAIL(&eng->idle, sk, entry);
	else
		TAILQ_INSERT_TAIL(&eng->socks, sk, entry);
	eng->stats.sockets++;
	return (sk);
}

static int
http_sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct http_engine	*eng = userp;
	struct http_sock	*sk = sockp;

	if (what == CURL_POLL_REMOVE) {
		if (sk == NULL)
			return (0);
		curl_multi_assign(eng->multi, fd, NULL);
		if (!sk->conn) {
			http_sock_free(eng, sk);
			return (0);
		}
		/* Between transfers: stay registered for reading. */
		TAILQ_REMOVE(&eng->socks, sk, entry);
		TAILQ_INSERT_TAIL(&eng->idle, sk, entry);
		sk->idle = true;
		if (sk->what & CURL_POLL_OUT)
			http_sock_arm(sk, 0);
		return (0);
	}
	if (sk == NULL) {
		TAILQ_FOREACH(sk, &eng->idle, entry)
			if (sk->fd == fd)
				break;
		if (sk != NULL) {
			TAILQ_REMOVE(&eng->idle, sk, entry);
			TAILQ_INSERT_TAIL(&eng->socks, sk, entry);
			sk->idle = false;
		} else	/* not a connection's (resolver, internal) */
			sk = http_sock_new(eng, fd, false);
		curl_multi_assign(eng->multi, fd, sk);
	}
	http_sock_arm(sk, what);
	return (0);
}

/* Watch sk for what (CURL_POLL_*, 0: not at all); unchanged costs nothing. */
static void
http_sock_arm(struct http_sock *sk, int what)
{
	short	 flags;

	if (sk->what == what)
		return;
	if (sk->what != 0)
		event_del(&sk->ev);
	sk->what = what;
	if (what == 0)
		return;
	flags = EV_PERSIST;
	if (what & CURL_POLL_IN)
		flags |= EV_READ;
	if (what & CURL_POLL_OUT)
		flags |= EV_WRITE;
	event_assign(&sk->ev, sk->eng->base, sk->fd, flags, http_sock_event,
	    sk);
	if (event_add(&sk->ev, NULL) != 0) {
		log_warnx("http: cannot watch fd %d", (int)sk->fd);
		sk->what = 0;
	}
}

static void
http_sock_free(struct http_engine *eng, struct http_sock *sk)
{
	if (sk->what != 0)
		event_del(&sk->ev);
	if (sk->idle)
		TAILQ_REMOVE(&eng->idle, sk, entry);
	else
		TAILQ_REMOVE(&eng->socks, sk, entry);
	eng->stats.sockets--;
	free(sk);
}

static void
http_sock_event(evutil_socket_t fd, short events, void *arg)
{
	struct http_sock	*sk = arg;
	struct http_engine	*eng = sk->eng;
	int			 action = 0;

	if (sk->idle) {
		/* Closed or stray bytes between transfers: curl finds out
		 * when it next uses the connection.  Until then, quiet. */
		http_sock_arm(sk, 0);
		return;
	}
	if (events & EV_READ)
		action |= CURL_CSELECT_IN;
	if (events & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	/* sk may be freed inside: use only eng from here on. */
	http_action(eng, fd, action);
}

static int
http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_engine	*eng = userp;
	struct timeval		 tv;

	/*
	 * Only (re)arm: calling curl from here is not allowed, so even a
	 * zero timeout fires from the loop on its next pass.
	 */
	eng->timer_now = timeout_ms == 0;
	if (timeout_ms < 0) {
		evtimer_del(&eng->timer);
		return (0);
	}
	evtimer_add(&eng->timer, time_ms_tv(&tv, timeout_ms));
	return (0);
}

static void
http_timer_event(evutil_socket_t fd, short events, void *arg)
{
	struct http_engine	*eng = arg;

	eng->timer_now = false;
	http_action(eng, CURL_SOCKET_TIMEOUT, 0);
}

/*
 * Run now what curl asked to run at once (a transfer just added), not
 * on the timer in the next pass of the loop: one pass and one wake-up
 * of the loop less per request.  Only from the loop itself (curl not on
 * the stack, no owner's call in progress): done callbacks may run.
 */
static void
http_kick(struct http_engine *eng)
{
	if (!eng->timer_now || eng->in_curl > 0)
		return;
	evtimer_del(&eng->timer);
	eng->timer_now = false;
	http_action(eng, CURL_SOCKET_TIMEOUT, 0);
}

static void
http_action(struct http_engine *eng, curl_socket_t fd, int action)
{
	CURLMcode	 mc;
	int		 running;

	eng->in_curl++;
	mc = curl_multi_socket_action(eng->multi, fd, action, &running);
	eng->in_curl--;
	if (mc != CURLM_OK)
		log_err("http: curl_multi_socket_action: %s",
		    curl_multi_strerror(mc));
	http_drain(eng);
}

/*
 * The only place that calls owners' done callbacks (besides deferred
 * failures): one message at a time, because a done callback may cancel
 * another request, and removing a handle drops its pending message.
 */
static void
http_drain(struct http_engine *eng)
{
	CURLMsg			*msg;
	struct http_request	*r;
	CURLcode		 cc;
	CURL			*e;
	int			 left;

	while ((msg = curl_multi_info_read(eng->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		e = msg->easy_handle;
		cc = msg->data.result;
		r = NULL;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
		curl_multi_remove_handle(eng->multi, e);
		if (r == NULL)
			continue;
		r->in_multi = false;
		http_finish(r, cc);
	}
}

/* Whether the request never got a connection to the server. */
static bool
http_unreachable(const struct http_request *r, CURLcode cc, long status)
{
	curl_off_t	 connected = 0;

	if (status != 0)
		return (false);
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
		return (true);
	case CURLE_OPERATION_TIMEDOUT:
		/* The connect timeout, not a slow answer. */
		if (curl_easy_getinfo(r->easy, CURLINFO_CONNECT_TIME_T,
		    &connected) != CURLE_OK)
			return (false);
		return (connected == 0);
	default:
		return (false);
	}
}

static enum http_result
http_classify(const struct http_request *r, CURLcode cc, long status)
{
	if (r->toobig)
		return (HTTP_RESULT_TOOBIG);
	if (r->aborted)
		return (HTTP_RESULT_ABORTED);
	switch (cc) {
	case CURLE_OK:
		break;
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_AGAIN:
		return (HTTP_RESULT_TRANSIENT);
	default:
		return (HTTP_RESULT_FATAL);
	}
	if (status >= 200 && status < 300)
		return (HTTP_RESULT_OK);
	switch (status) {
	case 401:
	case 407:
		return (HTTP_RESULT_AUTH);
	case 429:
	case 500:
	case 503:
		return (HTTP_RESULT_THROTTLED);
	case 502:
	case 504:
		/* A proxy or load balancer lost the backend. */
		return (HTTP_RESULT_TRANSIENT);
	default:
		return (HTTP_RESULT_FATAL);
	}
}

static void
http_finish(struct http_request *r, CURLcode cc)
{
	struct http_engine		*eng = r->eng;
	const struct http_token_source	*ts = eng->tokens;
	struct http_response		 resp;
	char				*msg = NULL;
	long				 status = 0;

	if (r->cancelled) {
		http_destroy(r);
		return;
	}
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status == 0)
		status = r->status;

	/* A refused bearer token: fetch a fresh one and try once more. */
	if (cc == CURLE_OK && status == 401 && eng->cred == HTTP_CRED_BEARER &&
	    !r->no_auth && !r->retried && ts != NULL) {
		log_debug("http %u: token refused, refreshing", r->id);
		if (r->token != NULL)
			ts->invalidate(ts->src, r->token);
		r->retried = true;
		eng->stats.retried_auth++;
		http_reset_response(r);
		r->errbuf[0] = '\0';
		http_authorize(r);
		return;
	}

	memset(&resp, 0, sizeof resp);
	resp.result = http_classify(r, cc, status);
	resp.status = status;
	resp.curl_code = cc;
	resp.unreachable = http_unreachable(r, cc, status);
	if (resp.result == HTTP_RESULT_TOOBIG)
		xasprintf(&msg, "response larger than %zu bytes",
		    r->max_response);
	else if (resp.result == HTTP_RESULT_ABORTED)
		msg = xstrdup("aborted by the receiver");
	else if (cc != CURLE_OK)
		msg = xstrdup(r->errbuf[0] != '\0' ? r->errbuf :
		    curl_easy_strerror(cc));
	else if (resp.result != HTTP_RESULT_OK)
		xasprintf(&msg, "HTTP status %ld", status);
	resp.error = msg;
	resp.body = buf_str(&r->resp);
	resp.body_len = r->resp.len;
	resp.cookie_backend = r->cookie;
	resp.www_authenticate = r->wwwauth.len > 0 ? buf_str(&r->wwwauth) :
	    NULL;
	resp.content_type = r->ctype;
	resp.retry_after = r->retry_after;
	resp.elapsed_ms = time_mono_ms() - r->started_ms;

	log_debug("http %u: %s -> %s status %ld (%s) in %lld ms", r->id,
	    r->method_url, http_result_name(resp.result), status,
	    msg != NULL ? msg : "ok", (long long)resp.elapsed_ms);
	eng->stats.results[resp.result]++;
	r->in_done = true;
	r->done(r, &resp, r->arg);
	free(msg);
	http_destroy(r);
}

/* ---- request life cycle ---- */

struct http_request *
http_request_start(struct http_engine *eng,
    const struct http_request_opts *o, http_done_cb done, http_data_cb data,
    void *arg)
{
	struct http_request	*r;
	char			*cause = NULL;

	r = xcalloc(1, sizeof *r);
	r->eng = eng;
	r->id = ++eng->next_id;
	r->done = done;
	r->data = data;
	r->arg = arg;
	r->no_auth = o->no_auth;
	r->secret = o->secret;
	r->max_response = o->max_response > 0 ? o->max_response :
	    eng->max_response;
	r->tag = xstrdup(o->tag != NULL ? o->tag : "-");
	xasprintf(&r->method_url, "%s %s", http_method_name(o->method),
	    o->url != NULL ? o->url : "(null)");
	buf_init(&r->resp);
	if (r->secret)
		buf_set_secret(&r->resp);
	buf_init(&r->wwwauth);
	r->started_ms = time_mono_ms();
	event_assign(&r->ev, eng->base, -1, 0, http_defer_event, r);
	TAILQ_INSERT_TAIL(&eng->reqs, r, entry);
	eng->stats.started++;
	eng->stats.in_flight++;

	if (http_setup(r, o, &cause) != 0) {
		http_fail(r, HTTP_RESULT_FATAL, cause);
		free(cause);
		return (r);
	}
	log_debug("http %u: %s %s%s", r->id, r->tag, r->method_url,
	    data != NULL ? " (streaming)" : "");
	http_authorize(r);
	return (r);
}

static int
http_setup(struct http_request *r, const struct http_request_opts *o,
    char **cause)
{
	struct http_engine	*eng = r->eng;
	CURL			*e;
	CURLcode		 cc = CURLE_OK;
	const char * const	*h;

	if (o->url == NULL) {
		*cause = xstrdup("no URL");
		return (-1);
	}
	if ((r->easy = e = http_easy_get(eng)) == NULL) {
		*cause = xstrdup("curl_easy_init failed");
		return (-1);
	}

	/* Headers first: they validate owner input. */
	if (http_add_header(r, "Expect", "", cause) != 0 ||
	    http_add_header(r, "Accept", o->accept != NULL ? o->accept :
	    "text/xml", cause) != 0)
		return (-1);
	if ((o->method == HTTP_POST || o->method == HTTP_PATCH) &&
	    http_add_header(r, "Content-Type",
	    o->content_type != NULL ? o->content_type :
	    "text/xml; charset=utf-8", cause) != 0)
		return (-1);
	if (o->anchor_mailbox != NULL &&
	    http_add_header(r, "X-AnchorMailbox", o->anchor_mailbox,
	    cause) != 0)
		return (-1);
	if (o->prefer_affinity &&
	    http_add_header(r, "X-PreferServerAffinity", "true", cause) != 0)
		return (-1);
	if (o->backend_cookie != NULL) {
		char	*v;
		int	 rc;

		xasprintf(&v, "X-BackEndOverrideCookie=%s", o->backend_cookie);
		rc = http_add_header(r, "Cookie", v, cause);
		free(v);
		if (rc != 0)
			return (-1);
	}
	for (h = o->headers; h != NULL && *h != NULL; h++) {
		const char *colon = strchr(*h, ':');

		if (colon == NULL || colon == *h) {
			xasprintf(cause, "bad header \"%s\"", *h);
			return (-1);
		}
		{
			char	*name = xstrndup(*h, colon - *h);
			int	 rc;

			colon++;
			while (*colon == ' ')
				colon++;
			rc = http_add_header(r, name, colon, cause);
			free(name);
			if (rc != 0)
				return (-1);
		}
	}

#define SET(opt, val) do {						\
	if (cc == CURLE_OK)						\
		cc = curl_easy_setopt(e, (opt), (val));			\
} while (0)
	SET(CURLOPT_PRIVATE, r);
	SET(CURLOPT_OPENSOCKETFUNCTION, http_open_socket);
	SET(CURLOPT_OPENSOCKETDATA, eng);
	SET(CURLOPT_CLOSESOCKETFUNCTION, http_close_socket);
	SET(CURLOPT_CLOSESOCKETDATA, eng);
	SET(CURLOPT_URL, o->url);
	SET(CURLOPT_ERRORBUFFER, r->errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	if (eng->no_proxy_env) {
		/* The same as libcurl's default here, without its getenv()
		 * calls per transfer. */
		SET(CURLOPT_PROXY, "");
		SET(CURLOPT_NOPROXY, "");
	}
	/* NTLM and Negotiate authenticate the TCP connection. */
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_USERAGENT, eng->user_agent);
	SET(CURLOPT_HTTPHEADER, r->headers);
	SET(CURLOPT_CONNECTTIMEOUT_MS, eng->connect_timeout_ms);
	if (o->fresh_connect)
		SET(CURLOPT_FRESH_CONNECT, 1L);
	SET(CURLOPT_TIMEOUT_MS, (long)(o->timeout_ms > 0 ? o->timeout_ms : 0));
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_TCP_KEEPIDLE, 60L);
	SET(CURLOPT_TCP_KEEPINTVL, 30L);
	SET(CURLOPT_WRITEFUNCTION, http_write_cb);
	SET(CURLOPT_WRITEDATA, r);
	SET(CURLOPT_HEADERFUNCTION, http_header_cb);
	SET(CURLOPT_HEADERDATA, r);
	if (r->data != NULL)
		SET(CURLOPT_BUFFERSIZE, (long)HTTP_STREAM_BUFFER);
	if (o->method == HTTP_POST || o->method == HTTP_PATCH) {
		r->body_len = o->body != NULL ? o->body_len : 0;
		r->body = xmalloc(r->body_len + 1);
		if (r->body_len > 0)
			memcpy(r->body, o->body, r->body_len);
		r->body[r->body_len] = '\0';
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_POSTFIELDS, r->body);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
		eng->stats.bytes_out += r->body_len;
		if (o->method == HTTP_PATCH)
			SET(CURLOPT_CUSTOMREQUEST, "PATCH");
	} else {
		SET(CURLOPT_HTTPGET, 1L);
		if (o->method == HTTP_DELETE)
			SET(CURLOPT_CUSTOMREQUEST, "DELETE");
	}
	if (!r->no_auth) {
		switch (eng->cred) {
		case HTTP_CRED_NONE:
			break;
		case HTTP_CRED_NTLM:
			SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_NTLM);
			break;
		case HTTP_CRED_BASIC:
			SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
			break;
		case HTTP_CRED_NEGOTIATE:
			SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_NEGOTIATE);
			break;
		case HTTP_CRED_BEARER:
			SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
			break;
		}
		if (eng->cred == HTTP_CRED_NTLM ||
		    eng->cred == HTTP_CRED_BASIC ||
		    eng->cred == HTTP_CRED_NEGOTIATE) {
			/* Never in the URL. Negotiate uses the ccache. */
			SET(CURLOPT_USERNAME, eng->username != NULL ?
			    eng->username : "");
			SET(CURLOPT_PASSWORD, eng->password != NULL ?
			    eng->password : "");
		}
	}
	if (log_enabled(LOG_DEBUG)) {
		SET(CURLOPT_DEBUGFUNCTION, http_debug_cb);
		SET(CURLOPT_DEBUGDATA, r);
		SET(CURLOPT_VERBOSE, 1L);
	}
#undef SET
	if (cc != CURLE_OK) {
		xasprintf(cause, "curl setup: %s", curl_easy_strerror(cc));
		return (-1);
	}
	return (tls_curl_apply(e, &eng->tls, cause));
}

/*
 * Whether the environment names a proxy that libcurl would use for
 * http or https (it reads these for every transfer unless told a
 * proxy).  Read once: the daemon never changes its environment.
 */
static bool
http_proxy_env(void)
{
	static const char *const vars[] = {
		"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
		"all_proxy", "ALL_PROXY", NULL
	};
	const char		*v;
	const char *const	*n;

	for (n = vars; *n != NULL; n++)
		if ((v = getenv(*n)) != NULL && *v != '\0')
			return (true);
	return (false);
}

/* An easy handle in its initial state: an idle one, or a new one. */
static CURL *
http_easy_get(struct http_engine *eng)
{
	if (eng->npool > 0)
		return (eng->pool[--eng->npool]);
	eng->stats.handles++;
	return (curl_easy_init());
}

/*
 * A handle out of the multi, done with: reset to its initial state
 * (options, credentials and authentication state; libcurl keeps only
 * caches such as TLS sessions) and kept, or freed if enough are idle.
 */
static void
http_easy_put(struct http_engine *eng, CURL *e)
{
	if (eng->npool == HTTP_POOL_MAX) {
		curl_easy_cleanup(e);
		return;
	}
	curl_easy_reset(e);
	eng->pool[eng->npool++] = e;
}

/* Header values are owner or server data: no line breaks allowed. */
static int
http_add_header(struct http_request *r, const char *name, const char *value,
    char **cause)
{
	struct curl_slist	*l;
	char			*line;
	size_t			 nlen, vlen;

	if (strpbrk(name, "\r\n: ") != NULL || strpbrk(value, "\r\n") != NULL) {
		xasprintf(cause, "bad header %s", name);
		return (-1);
	}
	/*
	 * "Name:" without a value removes a header curl would add.  Joined
	 * by hand: several headers per request, printf's two passes show.
	 */
	nlen = strlen(name);
	vlen = strlen(value);
	line = xmalloc(nlen + vlen + 3);
	memcpy(line, name, nlen);
	line[nlen] = ':';
	if (vlen > 0) {
		line[nlen + 1] = ' ';
		memcpy(line + nlen + 2, value, vlen);
		line[nlen + 2 + vlen] = '\0';
	} else
		line[nlen + 1] = '\0';
	l = curl_slist_append(r->headers, line);
	free(line);
	if (l == NULL) {
		*cause = xstrdup("out of memory");
		return (-1);
	}
	r->headers = l;
	return (0);
}

static void
http_authorize(struct http_request *r)
{
	struct http_engine		*eng = r->eng;
	const struct http_token_source	*ts = eng->tokens;
	const char			*tok;

	if (r->no_auth || eng->cred != HTTP_CRED_BEARER) {
		http_launch(r);
		return;
	}
	if (ts == NULL) {
		http_fail(r, HTTP_RESULT_AUTH, "no OAuth2 token source");
		return;
	}
	if ((tok = ts->current(ts->src)) != NULL) {
		http_token_done(tok, NULL, r);
		return;
	}
	r->token_wait = ts->get(ts->src, http_token_done, r);
}

static void
http_token_done(const char *token, const char *error, void *arg)
{
	struct http_request	*r = arg;
	char			*msg;

	r->token_wait = NULL;
	if (token == NULL) {
		xasprintf(&msg, "no OAuth2 token: %s",
		    error != NULL ? error : "unknown error");
		http_fail(r, HTTP_RESULT_AUTH, msg);
		free(msg);
		return;
	}
	xfree_secret(r->token);
	r->token = xstrdup(token);
	curl_easy_setopt(r->easy, CURLOPT_XOAUTH2_BEARER, r->token);
	http_launch(r);
}

static void
http_launch(struct http_request *r)
{
	struct http_engine	*eng = r->eng;
	CURLMcode		 mc;
	char			*msg;

	if (eng->in_curl > 0) {
		http_defer(r, DEFER_LAUNCH);
		return;
	}
	if ((mc = curl_multi_add_handle(eng->multi, r->easy)) != CURLM_OK) {
		xasprintf(&msg, "curl_multi_add_handle: %s",
		    curl_multi_strerror(mc));
		http_fail(r, HTTP_RESULT_FATAL, msg);
		free(msg);
		return;
	}
	r->in_multi = true;
}

/* Report a failure through done on the next loop pass. */
static void
http_fail(struct http_request *r, enum http_result result, const char *msg)
{
	r->fail_result = result;
	free(r->fail_msg);
	r->fail_msg = xstrdup(msg);
	http_defer(r, DEFER_FAIL);
}

static void
http_defer(struct http_request *r, enum http_defer what)
{
	r->defer = what;
	event_active(&r->ev, EV_TIMEOUT, 1);
}

static void
http_defer_event(evutil_socket_t fd, short events, void *arg)
{
	struct http_request	*r = arg;
	struct http_engine	*eng;
	enum http_defer		 what = r->defer;

	r->defer = DEFER_NONE;
	switch (what) {
	case DEFER_NONE:
		break;
	case DEFER_LAUNCH:
		eng = r->eng;
		http_launch(r);		/* r may be gone after the kick */
		http_kick(eng);
		break;
	case DEFER_RESUME:
		http_request_resume(r);
		break;
	case DEFER_FAIL:
		http_deliver_fail(r);
		break;
	case DEFER_FREE:
		http_destroy(r);
		break;
	}
}

static void
http_deliver_fail(struct http_request *r)
{
	struct http_response	 resp;

	memset(&resp, 0, sizeof resp);
	resp.result = r->fail_result;
	resp.error = r->fail_msg;
	resp.body = "";
	resp.elapsed_ms = time_mono_ms() - r->started_ms;
	log_debug("http %u: %s -> %s (%s)", r->id, r->method_url,
	    http_result_name(resp.result), r->fail_msg);
	r->eng->stats.results[resp.result]++;
	r->in_done = true;
	r->done(r, &resp, r->arg);
	http_destroy(r);
}

static void
http_destroy(struct http_request *r)
{
	struct http_engine		*eng = r->eng;
	const struct http_token_source	*ts = eng->tokens;

	event_del(&r->ev);
	if (r->in_multi) {
		curl_multi_remove_handle(eng->multi, r->easy);
		r->in_multi = false;
	}
	if (r->token_wait != NULL && ts != NULL)
		ts->cancel(ts->src, r->token_wait);
	TAILQ_REMOVE(&eng->reqs, r, entry);
	eng->stats.in_flight--;
	if (r->easy != NULL)
		http_easy_put(eng, r->easy);
	curl_slist_free_all(r->headers);
	if (r->secret && r->body != NULL)
		explicit_bzero(r->body, r->body_len);
	free(r->body);
	free(r->tag);
	free(r->method_url);
	free(r->fail_msg);
	xfree_secret(r->token);
	if (r->secret)
		buf_free_secret(&r->resp);
	else
		buf_free(&r->resp);
	buf_free(&r->wwwauth);
	free(r->ctype);
	free(r->cookie);
	free(r->retry_after);
	free(r);
}

void
http_request_cancel(struct http_request *r)
{
	struct http_engine	*eng;

	if (r == NULL || r->cancelled || r->in_done)
		return;
	eng = r->eng;
	r->cancelled = true;
	r->done = NULL;
	r->data = NULL;
	eng->stats.cancelled++;
	log_debug("http %u: cancelled", r->id);
	if (eng->in_curl > 0) {
		/* curl is on the stack: the write callback now refuses
		 * data and the loop frees it on its next pass. */
		http_defer(r, DEFER_FREE);
		return;
	}
	http_destroy(r);
}

void
http_request_resume(struct http_request *r)
{
	struct http_engine	*eng = r->eng;

	if (r->cancelled || !r->paused || !r->in_multi)
		return;
	if (eng->in_curl > 0) {
		http_defer(r, DEFER_RESUME);
		return;
	}
	r->paused = false;
	/* May deliver the held bytes right away, into the data callback. */
	eng->in_curl++;
	curl_easy_pause(r->easy, CURLPAUSE_CONT);
	eng->in_curl--;
	/* curl arranged a timeout to continue the transfer; nothing else. */
}

static void
http_reset_response(struct http_request *r)
{
	r->status = 0;
	buf_reset(&r->resp);
	buf_reset(&r->wwwauth);
	free(r->ctype);
	r->ctype = NULL;
	free(r->retry_after);
	r->retry_after = NULL;
}

/* ---- curl callbacks ---- */

static size_t
http_write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct http_request	*r = arg;
	size_t			 len = size * n;
	int			 rc;

	if (r->cancelled)
		return (0);
	if (r->data != NULL && r->status >= 200 && r->status < 300) {
		rc = r->data(p, len, r->arg);
		if (r->cancelled)
			return (0);
		if (rc == HTTP_DATA_PAUSE) {
			r->paused = true;
			return (CURL_WRITEFUNC_PAUSE);
		}
		if (rc < 0) {
			r->aborted = true;
			return (0);
		}
		r->eng->stats.bytes_in += len;
		return (len);
	}
	if (len > r->max_response || r->resp.len > r->max_response - len) {
		r->toobig = true;
		return (0);
	}
	buf_append(&r->resp, p, len);
	r->eng->stats.bytes_in += len;
	return (len);
}

/* Is line "Name: value"?  Sets the trimmed value. */
static bool
http_header_is(const char *line, size_t len, const char *name,
    const char **val, size_t *vlen)
{
	size_t	 nl = strlen(name);

	if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
		return (false);
	line += nl + 1;
	len -= nl + 1;
	while (len > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	*val = line;
	*vlen = len;
	return (true);
}

static size_t
http_header_cb(char *p, size_t size, size_t n, void *arg)
{
	struct http_request	*r = arg;
	size_t			 len = size * n, total = len, vlen, i;
	const char		*v;
	static const char	 ck[] = "X-BackEndOverrideCookie=";

	while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
		len--;
	if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
		/* A new response (after 100, a redirect or a 401 leg). */
		http_reset_response(r);
		for (i = 5; i < len && p[i] != ' '; i++)
			;
		for (; i < len && p[i] == ' '; i++)
			;
		for (; i < len && isdigit((unsigned char)p[i]); i++)
			r->status = r->status * 10 + (p[i] - '0');
		if (r->status > 999)
			r->status = 0;
		return (total);
	}
	if (http_header_is(p, len, "WWW-Authenticate", &v, &vlen)) {
		if (r->wwwauth.len + vlen < HTTP_MAX_CAPTURE) {
			if (r->wwwauth.len > 0)
				buf_putc(&r->wwwauth, '\n');
			buf_append(&r->wwwauth, v, vlen);
		}
	} else if (http_header_is(p, len, "Retry-After", &v, &vlen)) {
		free(r->retry_after);
		r->retry_after = xstrndup(v, vlen < 64 ? vlen : 64);
	} else if (http_header_is(p, len, "Content-Type", &v, &vlen)) {
		free(r->ctype);
		r->ctype = xstrndup(v, vlen < HTTP_MAX_CAPTURE ? vlen :
		    HTTP_MAX_CAPTURE);
	} else if (http_header_is(p, len, "Set-Cookie", &v, &vlen) &&
	    vlen > sizeof ck - 1 && strncasecmp(v, ck, sizeof ck - 1) == 0) {
		v += sizeof ck - 1;
		vlen -= sizeof ck - 1;
		for (i = 0; i < vlen && v[i] != ';'; i++)
			;
		while (i > 0 && v[i - 1] == ' ')
			i--;
		if (i > 0 && i < HTTP_MAX_CAPTURE) {
			free(r->cookie);
			r->cookie = xstrndup(v, i);
		}
	}
	return (total);
}

/* Printable copy: control bytes and non-ASCII become '?'. */
static void
http_sanitize(const char *p, size_t len, struct buf *out)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		buf_putc(out, (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?');
}

void
http_redact_header(const char *line, size_t len, struct buf *out)
{
	static const char *const secret[] = {
		"Authorization", "Proxy-Authorization", NULL
	};
	static const char *const cookie[] = {
		"Cookie", "Set-Cookie", NULL
	};
	static const char *const challenge[] = {
		"WWW-Authenticate", "Proxy-Authenticate", NULL
	};
	const char	*v, *sp;
	size_t		 vlen, nlen, i;

	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	for (i = 0; secret[i] != NULL; i++) {
		if (!http_header_is(line, len, secret[i], &v, &vlen))
			continue;
		nlen = strlen(secret[i]);
		http_sanitize(line, nlen, out);
		buf_puts(out, ": ");
		/* Keep the scheme ("NTLM", "Bearer"), drop credentials. */
		sp = memchr(v, ' ', vlen);
		if (sp != NULL) {
			http_sanitize(v, sp - v, out);
			buf_putc(out, ' ');
		}
		buf_puts(out, "<redacted>");
		return;
	}
	for (i = 0; cookie[i] != NULL; i++) {
		if (!http_header_is(line, len, cookie[i], &v, &vlen))
			continue;
		http_sanitize(line, strlen(cookie[i]), out);
		buf_puts(out, ": <redacted>");
		return;
	}
	for (i = 0; challenge[i] != NULL; i++) {
		if (!http_header_is(line, len, challenge[i], &v, &vlen))
			continue;
		sp = memchr(v, ' ', vlen);
		if (sp == NULL || !((sp - v == 4 &&
		    strncasecmp(v, "NTLM", 4) == 0) || (sp - v == 9 &&
		    strncasecmp(v, "Negotiate", 9) == 0)))
			break;
		/* A handshake blob: carries the server challenge. */
		http_sanitize(line, strlen(challenge[i]), out);
		buf_puts(out, ": ");
		http_sanitize(v, sp - v, out);
		buf_puts(out, " <redacted>");
		return;
	}
	http_sanitize(line, len, out);
}

static int
http_debug_cb(CURL *e, curl_infotype type, char *data, size_t size,
    void *arg)
{
	struct http_request	*r = arg;
	struct buf		 b = BUF_INIT;
	const char		*p, *end, *nl;
	size_t			 len;

	switch (type) {
	case CURLINFO_TEXT:
		len = size;
		while (len > 0 && (data[len - 1] == '\n' ||
		    data[len - 1] == '\r'))
			len--;
		http_sanitize(data, len, &b);
		log_debug("http %u: * %s", r->id, buf_str(&b));
		break;
	case CURLINFO_HEADER_IN:
	case CURLINFO_HEADER_OUT:
		/* Outgoing headers come as one block, incoming per line. */
		for (p = data, end = data + size; p < end; p = nl + 1) {
			if ((nl = memchr(p, '\n', end - p)) == NULL)
				nl = end;
			len = nl - p;
			if (len > 0 && p[len - 1] == '\r')
				len--;
			if (len > 0) {
				buf_reset(&b);
				http_redact_header(p, len, &b);
				log_debug("http %u: %c %s", r->id,
				    type == CURLINFO_HEADER_IN ? '<' : '>',
				    buf_str(&b));
			}
		}
		break;
	case CURLINFO_DATA_IN:
	case CURLINFO_DATA_OUT:
		if (r->secret) {
			log_debug("http %u: %c %zu body bytes (not shown)",
			    r->id, type == CURLINFO_DATA_IN ? '<' : '>', size);
			break;
		}
		http_sanitize(data, size < HTTP_TRACE_BODY ? size :
		    HTTP_TRACE_BODY, &b);
		log_debug("http %u: %c %zu body bytes: %s%s", r->id,
		    type == CURLINFO_DATA_IN ? '<' : '>', size, buf_str(&b),
		    size > HTTP_TRACE_BODY ? "..." : "");
		break;
	default:
		break;
	}
	buf_free(&b);
	return (0);
}
