/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Autodiscover runs: rows (one per address) wait until due, are batched
 * by the URL they are to ask next, and go out as GetUserSettings through
 * the EWS call path; each answer moves every row on (done, redirected,
 * retried later, or on to its next URL).  One deferred event decides
 * what to send next and when the run is over; one timer wakes rows that
 * wait for a retry.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "ews/ews_parse.h"
#include "ews/soap.h"
#include "io/discover.h"
#include "io/ews.h"

#define DISCOVER_MAX_HOPS	3
#define DISCOVER_MAX_ATTEMPTS	3
#define DISCOVER_RETRY_MS	1000
#define DISCOVER_RETRY_CAP_MS	(5 * 60 * 1000)

/* One address's progress. */
struct row {
	char		*current;	/* the address asked now (owned) */
	char		**urls;		/* URLs to try in order (owned) */
	size_t		 nurls;
	size_t		 iurl;		/* the URL asked now */
	unsigned	 attempts;	/* tries of urls[iurl] */
	int64_t		 due_ms;	/* monotonic; may be asked from then */
	bool		 busy;		/* in a batch in flight */
	bool		 final;		/* result complete */
};

/* One GetUserSettings in flight: up to 100 rows of one URL. */
struct batch {
	struct ews_call	 call;
	struct discover	*d;
	char		*url;		/* owned */
	size_t		*rows;		/* row indices, owned */
	size_t		 n;
	struct batch	*next;
};

struct discover {
	struct event_base	*base;
	struct ews_ctx		*ews;
	char			*url;		/* opts url, owned */
	char			*version;	/* owned */
	unsigned		 settings;
	unsigned		 max_hops;
	unsigned		 max_attempts;
	int64_t			 retry_ms;
	unsigned		 per_batch;

	struct discover_result	*res;		/* owned, n rows */
	struct row		*rows;		/* owned, n rows */
	size_t			 n;
	size_t			 open;		/* rows not final */
	struct batch		*batches;	/* in flight */
	struct event		 kick;		/* deferred: send, finish */
	struct event		 wake;		/* earliest due row */
	discover_done_cb	 done;
	void			*arg;
	bool			 called;
	struct discover_stats	 stats;
};

static const char *const status_names[DISCOVER_STATUS_MAX] = {
	"ok", "invalid-user", "failed", "exchange-online"
};

static void	 kick(struct discover *);
static void	 kick_cb(evutil_socket_t, short, void *);
static void	 set_urls(struct discover *, struct row *, const char *);
static void	 finish(struct discover *, size_t, enum discover_status,
		    const char *);
static void	 retry(struct discover *, size_t, const char *);
static void	 next_url(struct discover *, size_t, const char *);
static void	 answer(struct discover *, struct batch *, size_t,
		    struct ad_user *);
static void	 send_batches(struct discover *, int64_t);
static int	 build(struct ews_call *, struct ews_send *, void *);
static void	 reply(struct ews_call *, const struct ews_reply *, void *);
static void	 batch_free(struct batch *);
static void	 row_free(struct row *);
static bool	 writable(const char *);
static int	 judge(const struct http_response *,
		    struct ews_user_settings *, const char *, char *, size_t);

/* GetUserSettings, a short request: posted to the Autodiscover URL. */
static const struct ews_call_ops get_user_settings_ops = {
	.op = EWS_OP_GET_USER_SETTINGS,
	.klass = THROTTLE_SHORT,
	.build = build,
	.done = reply,
};

const char *
discover_status_name(enum discover_status s)
{
	if ((unsigned)s >= DISCOVER_STATUS_MAX)
		return ("unknown");
	return (status_names[s]);
}

const struct discover_stats *
discover_stats(const struct discover *d)
{
	return (&d->stats);
}

/* Whether an address can go into a request (UTF-8, XML characters). */
static bool
writable(const char *s)
{
	struct buf	 b = BUF_INIT;
	bool		 ok;

	ok = *s != '\0' && soap_escape(&b, s, false) == 0;
	buf_free(&b);
	return (ok);
}

static void
kick(struct discover *d)
{
	event_active(&d->kick, EV_TIMEOUT, 0);
}

static void
row_free(struct row *r)
{
	size_t	 i;

	for (i = 0; i < r->nurls; i++)
		free(r->urls[i]);
	free(r->urls);
	r->urls = NULL;
	r->nurls = r->iurl = 0;
	free(r->current);
	r->current = NULL;
}

/* The URLs a row asks, for its current address. */
static void
set_urls(struct discover *d, struct row *r, const char *only)
{
	char	*cand[AD_MAX_CANDIDATES], *cur;
	size_t	 i;

	cur = r->current;
	r->current = NULL;
	row_free(r);
	r->current = cur;
	r->attempts = 0;
	r->due_ms = 0;
	if (only != NULL || d->url != NULL) {
		r->urls = xcalloc(1, sizeof(*r->urls));
		r->urls[0] = xstrdup(only != NULL ? only : d->url);
		r->nurls = 1;
		return;
	}
	r->nurls = ad_candidates(r->current, cand);
	if (r->nurls == 0)
		return;
	r->urls = xcalloc(r->nurls, sizeof(*r->urls));
	for (i = 0; i < r->nurls; i++)
		r->urls[i] = cand[i];
}

static void
finish(struct discover *d, size_t i, enum discover_status st,
    const char *code)
{
	struct row		*r = &d->rows[i];
	struct discover_result	*res = &d->res[i];

	if (r->final)
		return;
	r->final = true;
	d->open--;
	res->status = st;
	if (code != NULL)
		snprintf(res->code, sizeof(res->code), "%s", code);
	if (strcasecmp(r->current, res->address) != 0) {
		free(res->as);
		res->as = xstrdup(r->current);
	}
}

/* Ask the same URL again later, while attempts last. */
static void
retry(struct discover *d, size_t i, const char *code)
{
	struct row	*r = &d->rows[i];
	int64_t		 delay;
	unsigned	 k;

	if (++r->attempts >= d->max_attempts) {
		next_url(d, i, code);
		return;
	}
	d->stats.retries++;
	delay = d->retry_ms;
	for (k = 1; k < r->attempts && delay < DISCOVER_RETRY_CAP_MS; k++)
		delay *= 2;
	if (delay > DISCOVER_RETRY_CAP_MS)
		delay = DISCOVER_RETRY_CAP_MS;
	r->due_ms = time_mono_ms() + delay;
	snprintf(d->res[i].code, sizeof(d->res[i].code), "%s", code);
}

/* This URL will not answer for the row: the next one, or give up. */
static void
next_url(struct discover *d, size_t i, const char *code)
{
	struct row	*r = &d->rows[i];

	if (r->iurl + 1 >= r->nurls) {
		finish(d, i, DISCOVER_FAILED, code);
		return;
	}
	d->stats.next_url++;
	r->iurl++;
	r->attempts = 0;
	r->due_ms = 0;
	snprintf(d->res[i].code, sizeof(d->res[i].code), "%s", code);
}

/* One UserResponse for row i (takes the strings of u). */
static void
answer(struct discover *d, struct batch *b, size_t i, struct ad_user *u)
{
	struct row		*r = &d->rows[i];
	struct discover_result	*res = &d->res[i];
	bool			 exo = false;

	switch (u->error) {
	case AD_ERR_NONE:
		if (ad_exchange_online(u->values[AD_EXTERNAL_EWS_URL]))
			exo = true;
		ad_user_free(&res->user);
		res->user = *u;
		memset(u, 0, sizeof(*u));
		free(res->via);
		res->via = xstrdup(b->url);
		finish(d, i, exo ? DISCOVER_EXCHANGE_ONLINE : DISCOVER_OK,
		    "NoError");
		return;
	case AD_ERR_REDIRECT_ADDRESS:
		if (ad_exchange_online(u->redirect) && writable(u->redirect)) {
			/* Its remote routing address: the mailbox is in
			 * Exchange Online, whose EWS is not ours to use. */
			free(r->current);
			r->current = xstrdup(u->redirect);
			finish(d, i, DISCOVER_EXCHANGE_ONLINE, u->code);
			return;
		}
		if (u->redirect == NULL || strcasecmp(u->redirect,
		    r->current) == 0 || res->hops >= d->max_hops ||
		    !writable(u->redirect))
			break;
		d->stats.redirects++;
		res->hops++;
		free(r->current);
		r->current = xstrdup(u->redirect);
		set_urls(d, r, NULL);
		if (r->nurls == 0)
			finish(d, i, DISCOVER_FAILED, "InvalidAddress");
		return;
	case AD_ERR_REDIRECT_URL:
		if (ad_redirect_url_ok(u->redirect) &&
		    ad_exchange_online(u->redirect)) {
			free(res->via);
			res->via = xstrdup(u->redirect);
			finish(d, i, DISCOVER_EXCHANGE_ONLINE, u->code);
			return;
		}
		if (!ad_redirect_url_ok(u->redirect) ||
		    strcmp(u->redirect, b->url) == 0 ||
		    res->hops >= d->max_hops)
			break;
		d->stats.redirects++;
		res->hops++;
		set_urls(d, r, u->redirect);
		return;
	case AD_ERR_INVALID_USER:
		finish(d, i, DISCOVER_INVALID_USER, u->code);
		return;
	default:
		if (ad_error_transient(u->error)) {
			retry(d, i, u->code);
			return;
		}
		break;
	}
	finish(d, i, DISCOVER_FAILED, u->code[0] != '\0' ? u->code :
	    ad_error_name(u->error));
}

/*
 * What a whole answer means for its rows: -1 retry later, 0 go on to the
 * per-user answers, 1 this URL is no Autodiscover service for them.
 */
static int
judge(const struct http_response *h, struct ews_user_settings *us,
    const char *transport, char *code, size_t len)
{
	enum ews_action	 act;
	char		*cause = NULL;
	int		 parsed;

	snprintf(code, len, "%s", transport);
	if (h->result != HTTP_RESULT_OK && h->status != 500)
		return (h->result == HTTP_RESULT_THROTTLED ||
		    h->result == HTTP_RESULT_TRANSIENT ? -1 : 1);
	parsed = ews_parse_user_settings(h->body, h->body_len, us, &cause);
	free(cause);
	if (parsed == -1) {
		/* A 500 error page: later; a 200 that is no answer: next. */
		if (h->result != HTTP_RESULT_OK)
			return (-1);
		snprintf(code, len, "NotAutodiscover");
		return (1);
	}
	snprintf(code, len, "%s", us->r.status.code);
	if (us->r.fault) {
		act = ews_classify(us->r.status.code);
		return (act == EWS_ACT_THROTTLED || act == EWS_ACT_TRANSIENT ?
		    -1 : 1);
	}
	if (us->error != AD_ERR_NONE)
		return (ad_error_transient(us->error) ? -1 : 1);
	return (0);
}

static void
reply(struct ews_call *call, const struct ews_reply *rep, void *arg)
{
	struct batch			*b = arg, **pb;
	struct discover			*d = b->d;
	struct ews_user_settings	 us;
	char				 code[64];
	size_t				 k;
	int				 v;

	for (pb = &d->batches; *pb != b; pb = &(*pb)->next)
		;
	*pb = b->next;
	for (k = 0; k < b->n; k++)
		d->rows[b->rows[k]].busy = false;
	memset(&us, 0, sizeof(us));
	snprintf(code, sizeof(code), "%s", rep->code != NULL ? rep->code :
	    "NotSent");
	v = rep->http == NULL ? -1 : judge(rep->http, &us, rep->code, code,
	    sizeof(code));
	if (v == 1)
		log_info("Autodiscover %s: %s; trying the next URL", b->url,
		    code);
	for (k = 0; k < b->n; k++) {
		if (v == -1)
			retry(d, b->rows[k], code);
		else if (v == 1)
			next_url(d, b->rows[k], code);
		else if (k < us.nusers)
			answer(d, b, b->rows[k], &us.users[k]);
		else	/* a busy server stops early */
			retry(d, b->rows[k], "NoAnswer");
	}
	ews_user_settings_free(&us);
	batch_free(b);
	kick(d);
}

static int
build(struct ews_call *call, struct ews_send *s, void *arg)
{
	struct batch	*b = arg;
	struct discover	*d = b->d;
	const char	**addrs;
	size_t		 k;
	int		 rc;

	addrs = xcalloc(b->n, sizeof(*addrs));
	for (k = 0; k < b->n; k++)
		addrs[k] = d->rows[b->rows[k]].current;
	rc = soap_get_user_settings(&s->body, b->url, d->version, addrs, b->n,
	    d->settings);
	free(addrs);
	if (rc == -1)
		return (-1);	/* the rows were checked: cannot happen */
	d->stats.requests++;
	d->stats.users += b->n;
	s->url = b->url;
	s->anchor = d->rows[b->rows[0]].current;	/* OAuth wants one */
	s->tag = "autodiscover";
	return (0);
}

static void
batch_free(struct batch *b)
{
	free(b->url);
	free(b->rows);
	free(b);
}

/* Put every due row into a batch of its URL. */
static void
send_batches(struct discover *d, int64_t now)
{
	struct batch	*b;
	struct row	*r, *o;
	size_t		 i, j;

	for (i = 0; i < d->n; i++) {
		r = &d->rows[i];
		if (r->final || r->busy || r->due_ms > now)
			continue;
		b = xcalloc(1, sizeof(*b));
		b->d = d;
		b->url = xstrdup(r->urls[r->iurl]);
		b->rows = xcalloc(d->per_batch, sizeof(*b->rows));
		for (j = i; j < d->n && b->n < d->per_batch; j++) {
			o = &d->rows[j];
			if (o->final || o->busy || o->due_ms > now ||
			    strcmp(o->urls[o->iurl], b->url) != 0)
				continue;
			o->busy = true;
			b->rows[b->n++] = j;
		}
		b->next = d->batches;
		d->batches = b;
		ews_call_init(&b->call, d->ews);
		ews_call_submit(&b->call, &get_user_settings_ops,
		    THROTTLE_PRIO_LOW, NULL, b);
	}
}

static void
kick_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct discover	*d = arg;
	struct timeval	 tv;
	int64_t		 now, next = 0;
	size_t		 i;

	if (d->open == 0) {
		if (!d->called) {
			d->called = true;
			d->done(d, d->res, d->n, d->arg);	/* may free d */
		}
		return;
	}
	now = time_mono_ms();
	send_batches(d, now);
	for (i = 0; i < d->n; i++)
		if (!d->rows[i].final && !d->rows[i].busy &&
		    (next == 0 || d->rows[i].due_ms < next))
			next = d->rows[i].due_ms;
	if (next > now)
		evtimer_add(&d->wake, time_ms_tv(&tv, next - now));
}

struct discover *
discover_start(struct event_base *base, struct ews_ctx *ews,
    const struct discover_opts *o, const char *const *addresses, size_t n,
    discover_done_cb done, void *arg, char **cause)
{
	struct discover	*d;
	size_t		 i;

	if (n == 0 || addresses == NULL) {
		*cause = xstrdup("no addresses");
		return (NULL);
	}
	if ((o->settings & ~AD_SETTINGS_ALL) != 0 || o->batch > AD_MAX_USERS ||
	    (o->url != NULL && *o->url == '\0') ||
	    (o->version != NULL && *o->version == '\0')) {
		*cause = xstrdup("Autodiscover options out of range");
		return (NULL);
	}
	d = xcalloc(1, sizeof(*d));
	d->base = base;
	d->ews = ews;
	d->url = o->url != NULL ? xstrdup(o->url) : NULL;
	d->version = o->version != NULL ? xstrdup(o->version) : NULL;
	d->settings = o->settings != 0 ? o->settings : AD_SETTINGS_ALL;
	d->max_hops = o->max_hops != 0 ? o->max_hops : DISCOVER_MAX_HOPS;
	d->max_attempts = o->max_attempts != 0 ? o->max_attempts :
	    DISCOVER_MAX_ATTEMPTS;
	d->retry_ms = o->retry_ms > 0 ? o->retry_ms : DISCOVER_RETRY_MS;
	d->per_batch = o->batch != 0 ? o->batch : AD_MAX_USERS;
	d->done = done;
	d->arg = arg;
	d->n = d->open = n;
	d->res = xcalloc(n, sizeof(*d->res));
	d->rows = xcalloc(n, sizeof(*d->rows));
	event_assign(&d->kick, base, -1, 0, kick_cb, d);
	evtimer_assign(&d->wake, base, kick_cb, d);
	for (i = 0; i < n; i++) {
		d->res[i].address = xstrdup(addresses[i] != NULL ?
		    addresses[i] : "");
		d->rows[i].current = xstrdup(d->res[i].address);
		set_urls(d, &d->rows[i], NULL);
		if (d->rows[i].nurls == 0 || !writable(d->rows[i].current))
			finish(d, i, DISCOVER_FAILED, "InvalidAddress");
	}
	kick(d);
	return (d);
}

void
discover_free(struct discover *d)
{
	struct batch	*b;
	size_t		 i;

	if (d == NULL)
		return;
	while ((b = d->batches) != NULL) {
		d->batches = b->next;
		ews_call_cancel(&b->call);
		batch_free(b);
	}
	event_del(&d->kick);
	evtimer_del(&d->wake);
	for (i = 0; i < d->n; i++) {
		free(d->res[i].address);
		free(d->res[i].via);
		free(d->res[i].as);
		ad_user_free(&d->res[i].user);
		row_free(&d->rows[i]);
	}
	free(d->res);
	free(d->rows);
	free(d->url);
	free(d->version);
	free(d);
}
