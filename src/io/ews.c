/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The single path every EWS request takes: scheduler slot, body built on
 * grant, HTTP, slot released with Exchange's verdict, counters, owner.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "io/account.h"
#include "io/auth.h"
#include "base/conf.h"
#include "io/ews.h"
#include "base/hashmap.h"
#include "base/json.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

struct ews_ctx {
	struct event_base	*base;
	const struct config	*conf;		/* borrowed; reset on reload */
	struct http_engine	*http;
	struct http_engine	*token_http;	/* oauth2: the token endpoint */
	struct auth		*auth;		/* oauth2 only */
	struct throttle_drive	*drive;		/* shared with Graph */
	struct throttle		*throttle;	/* drive's */
	struct hashmap		*counts;	/* "Op code" -> uint64_t * */
	struct account		*account;	/* gates the scheduler */
	bool			 shared;	/* cluster: share below */
	struct ews_share	 share;
	unsigned		 in_flight[THROTTLE_CLASS_MAX];
};

static const char *const op_names[EWS_OP_MAX] = {
	"Subscribe", "Unsubscribe", "GetStreamingEvents", "GetEvents",
	"FindItem", "GetItem", "GetUserAvailability", "GetUserOofSettings",
	"GetUserSettings"
};

static void	 kick(struct ews_ctx *);

const char *
ews_op_name(enum ews_op op)
{
	return ((unsigned)op < EWS_OP_MAX ? op_names[op] : "unknown");
}

static void
count(struct ews_ctx *c, enum ews_op op, const char *code)
{
	const char	*name = ews_op_name(op);
	char		 small[128], *key = small;
	size_t		 nlen = strlen(name), clen = strlen(code);
	uint64_t	*n;

	/* Once per request: no allocation for the lookup key. */
	if (nlen + clen + 2 > sizeof small)
		key = xmalloc(nlen + clen + 2);
	memcpy(key, name, nlen);
	key[nlen] = ' ';
	memcpy(key + nlen + 1, code, clen + 1);
	if ((n = hashmap_get(c->counts, key)) == NULL) {
		n = xcalloc(1, sizeof *n);
		hashmap_put(c->counts, key, n);
	}
	(*n)++;
	if (key != small)
		free(key);
}

static void
kick(struct ews_ctx *c)
{
	throttle_drive_kick(c->drive);
}

/* ---- context ---- */

/* The configured limits, or this node's share of them. */
static void
limits_of(struct ews_ctx *c, struct throttle_limits *lim)
{
	throttle_limits_from_conf(lim, c->conf);
	if (!c->shared)
		return;
	lim->shared = true;
	lim->max_concurrency = c->share.concurrency;
	if (c->conf->throttling.charging == CONF_CHARGING_SERVICE_ACCOUNT)
		lim->max_subscriptions = c->share.subscriptions;
}

struct ews_ctx *
ews_ctx_new(struct event_base *base, const struct config *conf, char **cause)
{
	struct ews_ctx		*c;
	struct http_engine_opts	 hopts;
	struct throttle_limits	 lim;
	struct auth_opts	 aopts;
	struct account_opts	 acopts;

	c = xcalloc(1, sizeof *c);
	c->base = base;
	c->conf = conf;
	http_engine_opts_from_config(&hopts, conf);
	if ((c->http = http_engine_new(base, &hopts, cause)) == NULL) {
		free(c);
		return (NULL);
	}
	if (conf->exchange.auth == CONF_AUTH_OAUTH2) {
		if ((c->token_http = auth_token_engine_new(base, conf,
		    cause)) == NULL) {
			http_engine_free(c->http);
			free(c);
			return (NULL);
		}
		auth_opts_from_config(&aopts, conf);
		aopts.token_engine = c->token_http;
		c->auth = auth_new(base, c->http, &aopts);
	}
	/* A seed of its own per process, so retries of two daemons differ. */
	lim.seed = (uint64_t)time_wall_ms() ^ ((uint64_t)getpid() << 32);
	throttle_limits_from_conf(&lim, conf);
	c->drive = throttle_drive_new(base, &lim);
	c->throttle = throttle_drive_throttle(c->drive);
	account_opts_from_config(&acopts, conf);
	c->account = account_new(c->throttle, &acopts);
	c->counts = hashmap_new();
	return (c);
}

void
ews_ctx_free(struct ews_ctx *c)
{
	if (c == NULL)
		return;
	if (c->auth != NULL)
		auth_free(c->auth);
	http_engine_free(c->token_http);
	http_engine_free(c->http);
	account_free(c->account);
	throttle_drive_free(c->drive);
	hashmap_free(c->counts, free);
	free(c);
}

void
ews_ctx_reload(struct ews_ctx *c, const struct config *conf)
{
	struct throttle_limits	 lim;
	struct account_opts	 ao;

	c->conf = conf;
	/* A changed password file takes effect on the next request. */
	http_engine_set_credentials(c->http, conf->exchange.username,
	    conf->exchange.password);
	http_engine_set_connect_timeout(c->http,
	    (long)conf->exchange.connect_timeout_ms);
	lim.seed = 0;		/* the scheduler keeps its generator running */
	limits_of(c, &lim);
	throttle_set_limits(c->throttle, &lim);
	/* ... and a refused or unreachable account tries it at once. */
	account_opts_from_config(&ao, conf);
	account_reload(c->account, &ao);
	kick(c);
}

unsigned
ews_ctx_set_share(struct ews_ctx *c, const struct ews_share *share)
{
	struct throttle_limits	 lim;
	unsigned		 excess;

	c->shared = share != NULL;
	if (share != NULL)
		c->share = *share;
	lim.seed = 0;
	limits_of(c, &lim);
	excess = throttle_set_limits(c->throttle, &lim);
	kick(c);
	return (excess);
}

struct throttle *
ews_ctx_throttle(struct ews_ctx *c)
{
	return (c->throttle);
}

struct throttle_drive *
ews_ctx_drive(struct ews_ctx *c)
{
	return (c->drive);
}

int
ews_ctx_problems_json(struct ews_ctx *c, struct json_writer *w)
{
	char	 msg[512];

	if (!account_problem(c->account, msg, sizeof msg))
		return (1);
	json_str(w, msg);
	return (0);
}

void
ews_ctx_account_json(struct ews_ctx *c, struct json_writer *w)
{
	account_json(c->account, w);
}

const char *
ews_ctx_summary(const struct ews_ctx *c)
{
	switch (account_state(c->account)) {
	case ACCOUNT_AUTH_FAILING:
		return ("AUTHENTICATION FAILING");
	case ACCOUNT_UNREACHABLE:
		return ("EXCHANGE UNREACHABLE");
	case ACCOUNT_DENIED:
		return ("IMPERSONATION REFUSED");
	default:
		return (NULL);
	}
}

/* ---- calls ---- */

void
ews_call_init(struct ews_call *call, struct ews_ctx *c)
{
	memset(call, 0, sizeof *call);
	throttle_ticket_init(&call->ticket);
	call->ctx = c;
}

bool
ews_call_busy(const struct ews_call *call)
{
	return (call->req != NULL || throttle_ticket_queued(&call->ticket) ||
	    throttle_ticket_granted(&call->ticket));
}

struct http_request *
ews_call_request(const struct ews_call *call)
{
	return (call->req);
}

/* Map the transport outcome and the generic answer to a verdict. */
static void
classify(struct ews_reply *r, struct throttle_outcome *out)
{
	const struct http_response	*h = r->http;

	out->result = THROTTLE_DONE;
	out->backoff_ms = 0;
	if (r->parsed && r->generic.status.code[0] != '\0') {
		r->code = r->generic.status.code;
		r->action = ews_status_action(&r->generic.status);
	} else if (h->result == HTTP_RESULT_OK) {
		r->code = "NoError";
		r->action = EWS_ACT_OK;
	} else {
		r->code = http_result_name(h->result);
		switch (h->result) {
		case HTTP_RESULT_AUTH:
			r->action = EWS_ACT_AUTH;
			break;
		case HTTP_RESULT_THROTTLED:
		case HTTP_RESULT_TRANSIENT:
		case HTTP_RESULT_TOOBIG:
		case HTTP_RESULT_ABORTED:
			r->action = EWS_ACT_TRANSIENT;
			break;
		default:
			r->action = EWS_ACT_FATAL;
			break;
		}
	}
	if (r->action == EWS_ACT_THROTTLED && r->parsed &&
	    r->generic.status.backoff_ms > 0) {
		out->result = THROTTLE_BUSY;
		out->backoff_ms = r->generic.status.backoff_ms;
	} else if (r->action == EWS_ACT_THROTTLED ||
	    h->result == HTTP_RESULT_THROTTLED ||
	    h->result == HTTP_RESULT_TRANSIENT)
		out->result = THROTTLE_TRANSIENT;
	else if (h->result == HTTP_RESULT_OK && r->action == EWS_ACT_OK)
		out->result = THROTTLE_OK;
}

/*
 * Whether every ResponseClass in a 2xx body says Success.  The owner
 * parses the body for its own fields anyway; the generic parse that finds
 * error codes and BackOffMilliseconds is only needed when something is
 * not a success, so the common answer is parsed once, not twice.
 */
static bool
all_success(const char *body, size_t len)
{
	static const char	 attr[] = "ResponseClass=";
	const char		*p = body, *end = body + len, *q;

	while ((q = memmem(p, (size_t)(end - p), attr, sizeof attr - 1)) !=
	    NULL) {
		q += sizeof attr - 1;
		while (q < end && (*q == ' ' || *q == '\t'))
			q++;
		if (end - q < 8 || (*q != '"' && *q != '\'') ||
		    memcmp(q + 1, "Success", 7) != 0 || q[8] != *q)
			return (false);
		p = q + 8;
	}
	/* No ResponseClass at all is not a success we can vouch for. */
	return (p != body);
}

/* What a finished request says about the service account. */
static enum account_verdict
judge(const struct ews_reply *r, const struct http_response *h)
{
	const char	*code = r->parsed ? r->generic.status.code : NULL;

	if (h->result == HTTP_RESULT_AUTH || ews_code_login_refused(code))
		return (ACCOUNT_V_REFUSED);
	if (ews_code_impersonation_refused(code))
		return (ACCOUNT_V_DENIED);
	/* A 2xx, or a SOAP answer: EWS itself, past the login. */
	if (h->result == HTTP_RESULT_OK || r->parsed)
		return (ACCOUNT_V_ACCEPTED);
	if (h->unreachable)
		return (ACCOUNT_V_UNREACHABLE);
	return (h->status > 0 ? ACCOUNT_V_HTTP : ACCOUNT_V_NONE);
}

static void
http_done(struct http_request *req, const struct http_response *h, void *arg)
{
	struct ews_call		*call = arg;
	struct ews_ctx		*c = call->ctx;
	struct ews_reply	 r;
	struct throttle_outcome	 out, verdict;
	struct account_report	 ar;
	char			*cause = NULL;
	char			 status[32];
	bool			 requeue;

	call->req = NULL;
	c->in_flight[call->ops->klass]--;
	memset(&r, 0, sizeof r);
	r.op = call->ops->op;
	r.http = h;
	/*
	 * Streams deliver a 2xx body elsewhere; unary answers, and a
	 * stream's refusal (a SOAP fault with HTTP 500), parse here.
	 */
	if ((call->ops->data == NULL || h->result != HTTP_RESULT_OK) &&
	    h->body != NULL && h->body_len > 0 &&
	    (h->result != HTTP_RESULT_OK || !all_success(h->body,
	    h->body_len))) {
		if (ews_parse_response(h->body, h->body_len, &r.generic,
		    &cause) == 0)
			r.parsed = true;
		else {
			ews_response_free(&r.generic);
			memset(&r.generic, 0, sizeof r.generic);
			free(cause);
		}
	}
	classify(&r, &out);
	if (call->ops->verdict != NULL) {
		/* A stream's envelopes said what its HTTP status could not. */
		verdict = call->ops->verdict(call, call->arg);
		if (verdict.result != THROTTLE_OK)
			out = verdict;
	}
	if (!r.parsed && h->result != HTTP_RESULT_OK && h->status > 0) {
		snprintf(status, sizeof status, "HTTP%ld", h->status);
		r.code = status;
	}
	memset(&ar, 0, sizeof ar);
	/*
	 * A request without credentials tells nothing about the account,
	 * and a diagnostic one (an administrator trying a mailbox outside
	 * the watched ones, say) is its owner's to judge.
	 */
	ar.verdict = call->no_auth || call->ops->diagnostic ?
	    ACCOUNT_V_NONE : judge(&r, h);
	ar.probe = ar.verdict != ACCOUNT_V_NONE &&
	    throttle_ticket_is_probe(c->throttle, &call->ticket);
	/* A stream carries subscriptions: impersonation worked for them. */
	ar.served = call->served || call->ops->klass == THROTTLE_STREAM;
	ar.started = time_mono_ms() - h->elapsed_ms;
	ar.code = r.code;
	ar.reason = h->error;
	if (call->data_seen && ar.verdict != ACCOUNT_V_REFUSED)
		ar.verdict = ACCOUNT_V_NONE;	/* told on its first bytes */
	account_report(c->account, &ar);
	if (ar.verdict == ACCOUNT_V_ACCEPTED)
		call->served = true;
	/*
	 * The account's problem, not the request's: a short request waits
	 * at the gate again and its owner never hears of it.  A stream
	 * goes back to its group, which reconnects through the gate.
	 */
	requeue = call->ops->klass == THROTTLE_SHORT &&
	    !call->ops->diagnostic && (ar.verdict == ACCOUNT_V_REFUSED ||
	    ar.verdict == ACCOUNT_V_UNREACHABLE) &&
	    account_failing(c->account);
	r.account = account_failing(c->account) &&
	    (ar.verdict == ACCOUNT_V_REFUSED ||
	    ar.verdict == ACCOUNT_V_UNREACHABLE);
	if (account_failing(c->account) && ar.verdict ==
	    ACCOUNT_V_UNREACHABLE) {
		/* The gate paces the attempts, not the budget. */
		out.result = THROTTLE_DONE;
		out.backoff_ms = 0;
	}
	count(c, call->ops->op, r.code);
	/* Account-wide failures are logged once, by the account. */
	if (r.action != EWS_ACT_OK)
		log_emit(call->no_auth || r.account ||
		    ar.verdict == ACCOUNT_V_REFUSED ||
		    ar.verdict == ACCOUNT_V_UNREACHABLE ? LOG_DEBUG :
		    r.action == EWS_ACT_TRANSIENT ||
		    r.action == EWS_ACT_THROTTLED ? LOG_INFO : LOG_WARNING,
		    &(struct log_ctx){ .operation = ews_op_name(call->ops->op),
		    .response_code = r.code }, "%s%s%s: %s%s%s%s",
		    ews_op_name(call->ops->op), h->error ? " " : "",
		    h->error ? h->error : "", r.code,
		    r.parsed && r.generic.status.message ? ": " : "",
		    r.parsed && r.generic.status.message ?
		    r.generic.status.message : "",
		    requeue ? " (waiting for the account)" : "");
	if (requeue) {
		throttle_requeue(c->throttle, &call->ticket, time_mono_ms(),
		    &out);
		kick(c);
		if (r.parsed)
			ews_response_free(&r.generic);
		return;
	}
	throttle_release(c->throttle, &call->ticket, time_mono_ms(), &out);
	kick(c);
	call->ops->done(call, &r, call->arg);
	if (r.parsed)
		ews_response_free(&r.generic);
}

/* Stream bytes go to the owner with the owner's argument. */
static int
http_data(const char *p, size_t n, void *arg)
{
	struct ews_call		*call = arg;
	struct ews_ctx		*c = call->ctx;

	if (!call->data_seen) {
		/* A stream's first bytes prove the login: a probe is done. */
		call->data_seen = true;
		call->served = true;
		account_report(c->account, &(struct account_report){
		    .verdict = ACCOUNT_V_ACCEPTED, .probe =
		    throttle_ticket_is_probe(c->throttle, &call->ticket),
		    .served = true, .started = time_mono_ms(),
		    .code = "NoError" });
		throttle_probe_done(c->throttle, &call->ticket);
		kick(c);
	}
	return (call->ops->data(p, n, call->arg));
}

static void
granted(struct throttle_ticket *tk, void *arg)
{
	struct ews_call		*call = arg;
	struct ews_ctx		*c = call->ctx;
	const struct config	*conf = c->conf;
	struct ews_send		 s;
	struct http_request_opts o;
	struct throttle_outcome	 out = { THROTTLE_DONE, 0 };
	struct ews_reply	 r;

	memset(&s, 0, sizeof s);
	if (call->ops->build(call, &s, call->arg) == -1) {
		buf_free(&s.body);
		throttle_release(c->throttle, &call->ticket, time_mono_ms(),
		    &out);
		kick(c);
		memset(&r, 0, sizeof r);
		r.op = call->ops->op;
		r.code = "NotSent";
		r.action = EWS_ACT_FATAL;
		call->ops->done(call, &r, call->arg);
		return;
	}
	memset(&o, 0, sizeof o);
	o.method = HTTP_POST;
	o.url = s.url != NULL ? s.url : conf->exchange.url;
	o.body = buf_str(&s.body);
	o.body_len = s.body.len;
	o.anchor_mailbox = s.anchor;
	o.prefer_affinity = s.anchor != NULL;
	o.backend_cookie = s.cookie;
	o.timeout_ms = call->ops->data != NULL ? 0 :
	    conf->exchange.request_timeout_ms;
	o.tag = s.tag;
	o.secret = s.secret;
	o.no_auth = s.no_auth;
	call->no_auth = s.no_auth;
	/* A probe tests the login, not a connection NTLM authenticated
	 * before the password changed. */
	o.fresh_connect = throttle_ticket_is_probe(c->throttle, tk);
	call->data_seen = false;
	c->in_flight[call->ops->klass]++;
	call->req = http_request_start(c->http, &o, http_done,
	    call->ops->data != NULL ? http_data : NULL, call);
	if (s.secret)
		buf_free_secret(&s.body);
	else
		buf_free(&s.body);
	if (call->ops->sent != NULL)
		call->ops->sent(call, call->arg);
}

void
ews_call_submit(struct ews_call *call, const struct ews_call_ops *ops,
    enum throttle_prio prio, const char *anchor, void *arg)
{
	call->ops = ops;
	call->arg = arg;
	throttle_submit(call->ctx->throttle, &call->ticket, ops->klass, anchor,
	    prio, granted, call);
	kick(call->ctx);
}

void
ews_call_cancel(struct ews_call *call)
{
	struct ews_ctx		*c = call->ctx;
	struct throttle_outcome	 out = { THROTTLE_DONE, 0 };

	if (call->req != NULL) {
		http_request_cancel(call->req);
		call->req = NULL;
		c->in_flight[call->ops->klass]--;
		throttle_release(c->throttle, &call->ticket, time_mono_ms(),
		    &out);
		kick(c);
	} else if (throttle_ticket_granted(&call->ticket)) {
		throttle_release(c->throttle, &call->ticket, time_mono_ms(),
		    &out);
		kick(c);
	} else if (throttle_ticket_queued(&call->ticket))
		throttle_cancel(c->throttle, &call->ticket);
}

/* ---- observability ---- */

void
ews_ctx_metrics(struct ews_ctx *c, struct buf *b)
{
	struct hashmap_iter	 it;
	const char		*key, *sp;
	void			*v;

	buf_puts(b, "# HELP ewsgw_ews_requests_total EWS requests by "
	    "operation and response code.\n"
	    "# TYPE ewsgw_ews_requests_total counter\n");
	hashmap_iter_init(&it, c->counts);
	while (hashmap_iter_next(&it, &key, &v)) {
		sp = strchr(key, ' ');
		buf_printf(b, "ewsgw_ews_requests_total{operation=\"%.*s\","
		    "code=\"%s\"} %llu\n", (int)(sp - key), key, sp + 1,
		    (unsigned long long)*(uint64_t *)v);
	}
	buf_printf(b, "# HELP ewsgw_ews_in_flight EWS requests in flight.\n"
	    "# TYPE ewsgw_ews_in_flight gauge\n"
	    "ewsgw_ews_in_flight{class=\"short\"} %u\n"
	    "ewsgw_ews_in_flight{class=\"stream\"} %u\n",
	    c->in_flight[THROTTLE_SHORT], c->in_flight[THROTTLE_STREAM]);
	throttle_prometheus(c->throttle, time_mono_ms(), b);
	account_prometheus(c->account, b);
}

void
ews_ctx_budget_json(struct ews_ctx *c, struct json_writer *w)
{
	throttle_json(c->throttle, time_mono_ms(), w);
}
