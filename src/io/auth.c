/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * OAuth2 client-credentials token cache: one fetch shared by all waiters,
 * refresh ahead of expiry, invalidation after a refused token.
 */
#include "config.h"

#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "io/auth.h"
#include "base/buf.h"
#include "base/conf.h"
#include "io/http.h"
#include "base/json.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

#define AUTH_DEFAULT_TIMEOUT_MS	30000
#define AUTH_MAX_RESPONSE	(64 * 1024)
#define AUTH_MAX_SKEW_MS	30000	/* treat tokens as expired early */
#define AUTH_REFRESH_AHEAD_MS	300000	/* 5 min before expiry */
#define AUTH_RETRY_MS		30000	/* after a failed refresh */
#define AUTH_MAX_DETAIL		300	/* error_description shown */
#define AUTH_MAX_LIFE_S		86400	/* expires_in beyond: taken as a day */

TAILQ_HEAD(auth_waitq, auth_wait);

struct auth_wait {
	auth_token_cb		 cb;
	void			*arg;
	struct auth_waitq	*q;	/* the list it is on */
	TAILQ_ENTRY(auth_wait)	 entry;
};

struct auth {
	struct event_base	*base;		/* borrowed */
	struct http_engine	*eng;		/* borrowed */
	struct http_engine	*token_eng;	/* borrowed; eng or another */
	char			*(*assertion)(void *, char **);
	void			*assertion_arg;
	char			*token_url;
	char			*client_id;
	char			*client_secret;	/* secret */
	char			*scope;
	int64_t			 timeout_ms;
	int64_t			 (*clock)(void);
	struct http_token_source source;	/* what eng calls */

	char			*token;		/* secret or NULL */
	int64_t			 expires_at;	/* clock ms, less skew */
	int64_t			 refresh_at;	/* clock ms */
	struct http_request	*req;		/* fetch in flight */
	struct auth_waitq	 waiters;
	struct event		 kick;		/* serve from cache */
	struct event		 refresh;	/* ahead of expiry */
	uint64_t		 fetches;
	uint64_t		 failures;
};

static bool	 auth_valid(struct auth *, int64_t);
static void	 auth_fetch(struct auth *);
static void	 auth_fetch_done(struct http_request *,
		    const struct http_response *, void *);
static int	 auth_store(struct auth *, const struct http_response *,
		    char **);
static void	 auth_deliver(struct auth *, const char *, const char *);
static void	 auth_kick(evutil_socket_t, short, void *);
static void	 auth_refresh_timer(evutil_socket_t, short, void *);
static void	 auth_arm_refresh(struct auth *, int64_t);
static void	 auth_form_add(struct buf *, const char *, const char *);
static const char *src_current(void *);
static void	*src_get(void *, http_token_cb, void *);
static void	 src_cancel(void *, void *);
static void	 src_invalidate(void *, const char *);

void
auth_opts_from_config(struct auth_opts *o, const struct config *conf)
{
	memset(o, 0, sizeof *o);
	o->token_url = conf->exchange.token_url;
	o->client_id = conf->exchange.client_id;
	o->client_secret = conf->exchange.client_secret;
	o->timeout_ms = conf->exchange.request_timeout_ms;
}

struct http_engine *
auth_token_engine_new(struct event_base *base, const struct config *conf,
    char **cause)
{
	struct http_engine_opts	 o;

	memset(&o, 0, sizeof o);
	o.cred = HTTP_CRED_NONE;
	o.ca_file = conf->exchange.token_ca_file;
	o.tls_verify = conf->exchange.token_tls_verify;
	o.connect_timeout_ms = (long)conf->exchange.connect_timeout_ms;
	o.max_response = AUTH_MAX_RESPONSE;
	o.peer = "the token endpoint (token_tls_verify = no)";
	return (http_engine_new(base, &o, cause));
}

struct auth *
auth_new(struct event_base *base, struct http_engine *eng,
    const struct auth_opts *o)
{
	struct auth	*a;

	a = xcalloc(1, sizeof *a);
	a->base = base;
	a->eng = eng;
	a->token_eng = o->token_engine != NULL ? o->token_engine : eng;
	a->assertion = o->assertion;
	a->assertion_arg = o->assertion_arg;
	a->token_url = xstrdup(o->token_url != NULL ? o->token_url : "");
	a->client_id = xstrdup(o->client_id != NULL ? o->client_id : "");
	a->client_secret = xstrdup(o->client_secret != NULL ?
	    o->client_secret : "");
	a->scope = xstrdup(o->scope != NULL ? o->scope : AUTH_DEFAULT_SCOPE);
	a->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms :
	    AUTH_DEFAULT_TIMEOUT_MS;
	a->clock = o->clock != NULL ? o->clock : time_mono_ms;
	TAILQ_INIT(&a->waiters);
	event_assign(&a->kick, base, -1, 0, auth_kick, a);
	evtimer_assign(&a->refresh, base, auth_refresh_timer, a);
	a->source.current = src_current;
	a->source.get = src_get;
	a->source.cancel = src_cancel;
	a->source.invalidate = src_invalidate;
	a->source.src = a;
	http_engine_set_token_source(eng, &a->source);
	return (a);
}

void
auth_free(struct auth *a)
{
	struct auth_wait	*w;

	if (a == NULL)
		return;
	/* Requests still waiting for a token never start now. */
	http_engine_set_token_source(a->eng, NULL);
	http_request_cancel(a->req);
	while ((w = TAILQ_FIRST(&a->waiters)) != NULL) {
		TAILQ_REMOVE(&a->waiters, w, entry);
		free(w);
	}
	event_del(&a->kick);
	event_del(&a->refresh);
	free(a->token_url);
	free(a->client_id);
	xfree_secret(a->client_secret);
	free(a->scope);
	xfree_secret(a->token);
	free(a);
}

static bool
auth_valid(struct auth *a, int64_t now)
{
	if (a->token == NULL)
		return (false);
	if (now < a->expires_at)
		return (true);
	xfree_secret(a->token);
	a->token = NULL;
	return (false);
}

const char *
auth_current(struct auth *a)
{
	int64_t	 now = a->clock();

	if (!auth_valid(a, now))
		return (NULL);
	if (now >= a->refresh_at && a->req == NULL)
		auth_fetch(a);
	return (a->token);
}

struct auth_wait *
auth_get(struct auth *a, auth_token_cb cb, void *arg)
{
	struct auth_wait	*w;

	w = xcalloc(1, sizeof *w);
	w->cb = cb;
	w->arg = arg;
	w->q = &a->waiters;
	TAILQ_INSERT_TAIL(&a->waiters, w, entry);
	/* Never call back from here: the caller is not ready for it. */
	if (auth_valid(a, a->clock()))
		event_active(&a->kick, EV_TIMEOUT, 1);
	else if (a->req == NULL)
		auth_fetch(a);
	return (w);
}

void
auth_wait_cancel(struct auth *a, struct auth_wait *w)
{
	if (w == NULL)
		return;
	TAILQ_REMOVE(w->q, w, entry);
	free(w);
}

void
auth_invalidate(struct auth *a, const char *token)
{
	if (a->token == NULL)
		return;
	if (token != NULL && strcmp(token, a->token) != 0)
		return;		/* already replaced: no second fetch */
	log_info("OAuth2 token refused by the server, fetching a new one");
	xfree_secret(a->token);
	a->token = NULL;
	event_del(&a->refresh);
}

void
auth_get_stats(struct auth *a, struct auth_stats *st)
{
	int64_t	 now = a->clock();

	st->fetches = a->fetches;
	st->failures = a->failures;
	st->expires_in_ms = a->token != NULL && a->expires_at > now ?
	    a->expires_at - now : 0;
}

/* Percent-encode for application/x-www-form-urlencoded. */
static void
auth_form_add(struct buf *b, const char *key, const char *val)
{
	static const char	 hex[] = "0123456789ABCDEF";
	const unsigned char	*p;

	if (b->len > 0)
		buf_putc(b, '&');
	buf_puts(b, key);
	buf_putc(b, '=');
	for (p = (const unsigned char *)val; *p != '\0'; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL)
			buf_putc(b, *p);
		else {
			buf_putc(b, '%');
			buf_putc(b, hex[*p >> 4]);
			buf_putc(b, hex[*p & 15]);
		}
	}
}

static void
auth_fetch(struct auth *a)
{
	struct http_request_opts	 o;
	struct buf			 body = BUF_INIT_SECRET;
	char				*jwt, *cause = NULL;

	auth_form_add(&body, "grant_type", "client_credentials");
	auth_form_add(&body, "client_id", a->client_id);
	if (a->assertion != NULL) {
		if ((jwt = a->assertion(a->assertion_arg, &cause)) == NULL) {
			/* As a failed fetch, from the loop: never from here. */
			log_warnx("OAuth2: client assertion: %s",
			    cause != NULL ? cause : "failed");
			free(cause);
			buf_free_secret(&body);
			a->failures++;
			auth_arm_refresh(a, AUTH_RETRY_MS);
			return;
		}
		auth_form_add(&body, "client_assertion_type",
		    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
		auth_form_add(&body, "client_assertion", jwt);
		xfree_secret(jwt);
	} else
		auth_form_add(&body, "client_secret", a->client_secret);
	auth_form_add(&body, "scope", a->scope);
	memset(&o, 0, sizeof o);
	o.method = HTTP_POST;
	o.url = a->token_url;
	o.body = body.data;
	o.body_len = body.len;
	o.content_type = "application/x-www-form-urlencoded";
	o.accept = "application/json";
	o.timeout_ms = a->timeout_ms;
	o.max_response = AUTH_MAX_RESPONSE;
	o.no_auth = true;
	o.secret = true;
	o.tag = "oauth2";
	a->fetches++;
	log_debug("OAuth2: requesting a token from %s", a->token_url);
	a->req = http_request_start(a->token_eng, &o, auth_fetch_done, NULL,
	    a);
	buf_free_secret(&body);
}

/* Parse a token answer into the cache; 0 or -1 with *cause. */
static int
auth_store(struct auth *a, const struct http_response *resp, char **cause)
{
	struct json_value	*root;
	struct json_value	*tv;
	const struct json_value	*ev;
	const char		*type, *err, *desc;
	char			*jcause = NULL;
	int64_t			 now, life, skew, ahead;
	double			 secs;
	int			 rc = -1;

	root = json_parse(resp->body, resp->body_len, &jcause);
	if (resp->result != HTTP_RESULT_OK) {
		err = root != NULL ? json_get_str(root, "error", NULL) : NULL;
		desc = root != NULL ?
		    json_get_str(root, "error_description", NULL) : NULL;
		xasprintf(cause, "token endpoint: %s%s%s%s%.*s",
		    resp->error != NULL ? resp->error : "failed",
		    err != NULL ? ": " : "", err != NULL ? err : "",
		    desc != NULL ? ": " : "", AUTH_MAX_DETAIL,
		    desc != NULL ? desc : "");
		goto out;
	}
	if (root == NULL) {
		xasprintf(cause, "token endpoint: bad JSON: %s", jcause);
		goto out;
	}
	tv = (struct json_value *)json_get(root, "access_token");
	if (tv == NULL || tv->type != JSON_STRING || tv->str[0] == '\0') {
		*cause = xstrdup("token endpoint: no access_token");
		goto out;
	}
	type = json_get_str(root, "token_type", NULL);
	if (type != NULL && strcasecmp(type, "Bearer") != 0) {
		xasprintf(cause, "token endpoint: token_type %.40s, "
		    "not Bearer", type);
		goto out;
	}
	/*
	 * A number, or a string of digits from some servers; clamped before
	 * any arithmetic, so that a huge one cannot overflow.
	 */
	ev = json_get(root, "expires_in");
	if (ev != NULL && ev->type == JSON_STRING)
		secs = strtod(ev->str, NULL);
	else
		secs = json_get_num(root, "expires_in", 0);
	if (!(secs >= 1))		/* NaN too */
		life = 0;
	else if (secs > AUTH_MAX_LIFE_S)
		life = (int64_t)AUTH_MAX_LIFE_S * 1000;
	else
		life = (int64_t)secs * 1000;
	if (life <= 0) {
		*cause = xstrdup("token endpoint: no usable expires_in");
		goto out;
	}
	now = a->clock();
	skew = life / 10 < AUTH_MAX_SKEW_MS ? life / 10 : AUTH_MAX_SKEW_MS;
	/* Refresh at 80% of the lifetime or 5 min before, the earlier,
	 * but not before half of it. */
	ahead = life - AUTH_REFRESH_AHEAD_MS;
	if (life * 8 / 10 < ahead)
		ahead = life * 8 / 10;
	if (ahead < life / 2)
		ahead = life / 2;
	xfree_secret(a->token);
	a->token = xstrdup(tv->str);
	a->expires_at = now + life - skew;
	a->refresh_at = now + ahead;
	auth_arm_refresh(a, a->refresh_at - now);
	log_info("OAuth2 token obtained, valid for %lld s",
	    (long long)(life / 1000));
	rc = 0;
out:
	if (root != NULL) {
		/* The tree holds a copy of the token: wipe it. */
		tv = (struct json_value *)json_get(root, "access_token");
		if (tv != NULL && tv->type == JSON_STRING && tv->str != NULL)
			explicit_bzero(tv->str, strlen(tv->str));
		json_free(root);
	}
	free(jcause);
	return (rc);
}

static void
auth_fetch_done(struct http_request *req, const struct http_response *resp,
    void *arg)
{
	struct auth	*a = arg;
	char		*cause = NULL;

	a->req = NULL;
	if (auth_store(a, resp, &cause) == 0) {
		auth_deliver(a, a->token, NULL);
		return;
	}
	a->failures++;
	log_warnx("OAuth2: %s", cause);
	if (auth_valid(a, a->clock())) {
		/* A background refresh failed: keep using the old token. */
		auth_arm_refresh(a, AUTH_RETRY_MS);
		auth_deliver(a, a->token, NULL);
	} else
		auth_deliver(a, NULL, cause);
	free(cause);
}

/* Call every waiter queued so far; new ones wait for the next round. */
static void
auth_deliver(struct auth *a, const char *token, const char *error)
{
	struct auth_waitq	 q;
	struct auth_wait	*w;
	char			*tok;

	TAILQ_INIT(&q);
	TAILQ_CONCAT(&q, &a->waiters, entry);
	TAILQ_FOREACH(w, &q, entry)
		w->q = &q;
	/* A callback may invalidate the cached token: use a copy. */
	tok = token != NULL ? xstrdup(token) : NULL;
	while ((w = TAILQ_FIRST(&q)) != NULL) {
		TAILQ_REMOVE(&q, w, entry);
		w->cb(tok, tok == NULL ? error : NULL, w->arg);
		free(w);
	}
	xfree_secret(tok);
}

static void
auth_kick(evutil_socket_t fd, short ev, void *arg)
{
	struct auth	*a = arg;

	if (auth_valid(a, a->clock()))
		auth_deliver(a, a->token, NULL);
	else if (a->req == NULL && !TAILQ_EMPTY(&a->waiters))
		auth_fetch(a);
}

static void
auth_arm_refresh(struct auth *a, int64_t ms)
{
	struct timeval	 tv;

	evtimer_add(&a->refresh, time_ms_tv(&tv, ms));
}

static void
auth_refresh_timer(evutil_socket_t fd, short ev, void *arg)
{
	struct auth	*a = arg;

	if (a->req == NULL)
		auth_fetch(a);
}

/* ---- the engine's token source ---- */

static const char *
src_current(void *src)
{
	return (auth_current(src));
}

static void *
src_get(void *src, http_token_cb cb, void *arg)
{
	return (auth_get(src, cb, arg));
}

static void
src_cancel(void *src, void *wait)
{
	auth_wait_cancel(src, wait);
}

static void
src_invalidate(void *src, const char *token)
{
	auth_invalidate(src, token);
}
