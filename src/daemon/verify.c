/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Preflight diagnostics: one request at a time against the configured
 * Exchange server, each answer turned into PASS / WARN / FAIL with what
 * was seen and the fix an Exchange administrator applies.
 *
 * Every request goes through the EWS call path (io/ews.h) and so waits
 * for a slot of the throttling budget: inside the daemon, the daemon's
 * own, so that checks started from the status socket never add to what
 * the daemon already has in flight; from the shell, one built for the
 * run.  Only the explicit concurrency probe (--probe-throttling), whose
 * point is to go past the configured limit, opens its streams directly.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "io/auth.h"
#include "io/graph_client.h"
#include "graph/graph_cal.h"
#include "graph/graph_error.h"
#include "io/ews.h"
#include "base/buf.h"
#include "base/conf.h"
#include "control/control.h"
#include "ews/ews_parse.h"
#include "io/http.h"
#include "base/json.h"
#include "ews/soap.h"
#include "ews/stream.h"
#include "base/timeutil.h"
#include "daemon/verify.h"
#include "io/verify_tls.h"
#include "base/xmalloc.h"

#define V_CERT_DAYS	30	/* certificate expiry warning */
#define V_PROBE_MAX	64	/* probe connections at most */
#define V_SETTLE_MS	3000	/* probe: how long open streams must hold */
#define V_GRACE_MS	500	/* probe: after the first refusal */
#define V_RETRIES	3	/* ErrorServerBusy retries for cleanup */

#define FIX_VDIR	"Set-WebServicesVirtualDirectory -Identity " \
	"'SERVER\\EWS (Default Web Site)'"

struct verify_check {
	char			*name;
	enum verify_verdict	 verdict;
	char			*summary;
	char			*seen;
	char			*fix;
	char			*mailbox;
};

struct v_mailbox {
	char		*address;
	enum conf_idtype type;
	char		*id;		/* what is sent: address, UPN or SID */
};

enum v_step {
	ST_CONNECT, ST_SCHEMES, ST_LOGIN, ST_IMPERSONATE,
	ST_SUBSCRIBE, ST_UNSUBSCRIBE, ST_FIND, ST_PROBE_SUB, ST_PROBE_GSE,
	ST_PROBE_UNSUB, ST_G_TOKEN, ST_G_CALENDAR, ST_G_SETTINGS,
	ST_G_OUTSIDE, ST_DONE
};

struct verify;

/* One probe connection: its own subscription and GetStreamingEvents. */
struct v_probe {
	struct verify		*v;
	char			*sub_id;
	char			*cookie;
	struct http_request	*req;
	struct stream		*st;
	bool			 open;		/* request running */
	bool			 refused;
	bool			 removed;
};

struct verify {
	struct event_base	*base;
	const struct config	*conf;		/* &snap */
	struct config		 snap;		/* what the checks read */
	bool			 probe;
	verify_done_cb		 done;
	void			*arg;

	struct ews_ctx		*ews;		/* the call path: borrowed
						   (daemon) or own_ews */
	struct ews_ctx		*own_ews;	/* run from the shell */
	struct ews_call		 call;		/* the one request */
	bool			 call_ready;	/* call initialised */
	const char		*anchor;	/* of the request, borrowed */
	const char		*cookie_out;	/* of the request, borrowed */
	bool			 no_auth;	/* of the request */
	struct http_engine	*eng;		/* the probe's streams only */
	struct http_engine	*token_eng;	/* the probe, oauth2 only */
	struct auth		*auth;
	struct verify_tls	*tls;
	struct event		 timer;
	void			(*timer_fn)(struct verify *);
	struct buf		 body;

	enum v_step		 step;
	bool			 stopped;	/* a FAIL: later checks moot */
	bool			 finished;
	bool			 aborted;

	struct verify_check	*checks;
	size_t			 nchecks;

	char			*offers;	/* WWW-Authenticate schemes */
	struct ews_version	 server;
	bool			 version_fault;
	bool			 mode_ok;

	struct v_mailbox	*mbx;
	size_t			 nmbx;
	size_t			 imbx;
	struct v_mailbox	*good;		/* first that impersonated */

	char			*sub_id;
	char			*cookie;

	struct v_probe		*pr;
	size_t			 npr;
	size_t			 ipr;
	unsigned		 limit;
	bool			 limit_conc;	/* limit is max_concurrency */
	int64_t			 backoff_ms;
	int			 retries;
	char			*probe_code;

	/* Graph: after the EWS checks, whatever they found. */
	struct graph_client	*graph;		/* borrowed (daemon) or
						   own_graph; NULL: none */
	struct graph_client	*own_graph;
	struct graph_call	*gcall;
	struct auth_wait	*gtoken;
	char			*guser;		/* first Graph mailbox */
	bool			 gcal_ok;
	bool			 graph_ran;
};

static void	 v_next(struct verify *);
static void	 v_finish(struct verify *);
static void	 v_ews_done(struct ews_call *, const struct ews_reply *,
		    void *);
static void	 v_after(struct verify *, int64_t, void (*)(struct verify *));

/* ---- the report ---- */

static struct verify_check *
v_add(struct verify *v, const char *name, enum verify_verdict verdict,
    const char *mailbox, const char *fix, const char *seen,
    const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static struct verify_check *
v_add(struct verify *v, const char *name, enum verify_verdict verdict,
    const char *mailbox, const char *fix, const char *seen,
    const char *fmt, ...)
{
	struct verify_check	*c;
	struct buf		 b = BUF_INIT;
	va_list			 ap;

	v->checks = xreallocarray(v->checks, v->nchecks + 1,
	    sizeof *v->checks);
	c = &v->checks[v->nchecks++];
	memset(c, 0, sizeof *c);
	c->name = xstrdup(name);
	c->verdict = verdict;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	c->summary = buf_steal(&b);
	c->seen = seen != NULL ? xstrdup(seen) : NULL;
	c->fix = fix != NULL ? xstrdup(fix) : NULL;
	c->mailbox = mailbox != NULL ? xstrdup(mailbox) : NULL;
	return (c);
}

static void
v_check_free(struct verify_check *c)
{
	free(c->name);
	free(c->summary);
	free(c->seen);
	free(c->fix);
	free(c->mailbox);
}

static const char *
v_verdict_name(enum verify_verdict vd)
{
	switch (vd) {
	case VERIFY_PASS:
		return ("PASS");
	case VERIFY_WARN:
		return ("WARN");
	case VERIFY_FAIL:
		break;
	}
	return ("FAIL");
}

bool
verify_failed(const struct verify *v)
{
	size_t	 i;

	if (v->aborted)
		return (true);
	for (i = 0; i < v->nchecks; i++)
		if (v->checks[i].verdict == VERIFY_FAIL)
			return (true);
	return (false);
}

void
verify_write_checks(const struct verify *v, struct json_writer *w)
{
	const struct verify_check	*c;
	size_t				 i;

	json_kv_bool(w, "passed", !verify_failed(v));
	json_kv_bool(w, "complete", !v->stopped && !v->aborted);
	json_key(w, "checks");
	json_arr_begin(w);
	for (i = 0; i < v->nchecks; i++) {
		c = &v->checks[i];
		json_obj_begin(w);
		json_kv_str(w, "name", c->name);
		json_kv_str(w, "verdict", v_verdict_name(c->verdict));
		json_kv_str(w, "summary", c->summary);
		json_kv_str(w, "seen", c->seen);
		json_kv_str(w, "fix", c->fix);
		if (c->mailbox != NULL)
			json_kv_str(w, "mailbox", c->mailbox);
		json_obj_end(w);
	}
	json_arr_end(w);
}

void
verify_print(const struct verify *v, FILE *fp, bool json)
{
	const struct verify_check	*c;
	struct json_writer		 w;
	struct buf			 b = BUF_INIT;
	size_t				 i, n[3] = { 0, 0, 0 };

	if (json) {
		json_writer_init(&w, &b);
		json_obj_begin(&w);
		json_kv_bool(&w, "ok", !verify_failed(v));
		verify_write_checks(v, &w);
		json_obj_end(&w);
		fprintf(fp, "%s\n", buf_str(&b));
		buf_free(&b);
		return;
	}
	for (i = 0; i < v->nchecks; i++) {
		c = &v->checks[i];
		n[c->verdict]++;
		fprintf(fp, "%s  %-12s %s\n", v_verdict_name(c->verdict),
		    c->name, c->summary);
		if (c->seen != NULL)
			fprintf(fp, "      seen: %s\n", c->seen);
		if (c->fix != NULL)
			fprintf(fp, "      fix:  %s\n", c->fix);
	}
	if (v->aborted)
		fprintf(fp, "stopped before the end: the checks took too "
		    "long\n");
	else if (v->stopped)
		fprintf(fp, "later checks not run: they need the one that "
		    "failed\n");
	fprintf(fp, "%zu passed, %zu warnings, %zu failed\n", n[VERIFY_PASS],
	    n[VERIFY_WARN], n[VERIFY_FAIL]);
}

/* ---- helpers ---- */

static char *
v_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
v_fmt(const char *fmt, ...)
{
	char	*s;
	va_list	 ap;

	va_start(ap, fmt);
	xvasprintf(&s, fmt, ap);
	va_end(ap);
	return (s);
}

/* The account name without its domain, for PowerShell examples. */
static char *
v_account(const struct config *conf)
{
	const char	*u = conf->exchange.username, *p;

	if (u == NULL)
		return (xstrdup("SERVICE-ACCOUNT"));
	if ((p = strchr(u, '\\')) != NULL)
		return (xstrdup(p + 1));
	return (xstrdup(u));
}

static const char *
v_idtype_element(enum conf_idtype t)
{
	switch (t) {
	case CONF_ID_UPN:
		return ("PrincipalName");
	case CONF_ID_SID:
		return ("SID");
	case CONF_ID_SMTP:
		break;
	}
	return ("SmtpAddress");
}

/* Server version as a comparable number: major * 1000 + minor. */
static int
v_server_rank(const struct ews_version *sv)
{
	return (sv->major * 1000 + sv->minor);
}

/* The oldest server that accepts a RequestServerVersion value. */
static int
v_request_rank(const char *rv)
{
	static const struct { const char *name; int rank; } tab[] = {
		{ "Exchange2007", 8000 }, { "Exchange2007_SP1", 8001 },
		{ "Exchange2009", 14000 }, { "Exchange2010", 14000 },
		{ "Exchange2010_SP1", 14001 }, { "Exchange2010_SP2", 14002 },
		{ "Exchange2012", 15000 }, { "Exchange2013", 15000 },
		{ "Exchange2013_SP1", 15000 }, { "Exchange2015", 15001 },
		{ "Exchange2016", 15001 }
	};
	size_t	 i;

	if (rv == NULL)
		return (0);
	for (i = 0; i < sizeof tab / sizeof tab[0]; i++)
		if (strcmp(tab[i].name, rv) == 0)
			return (tab[i].rank);
	/* V2015_10_05 ... V2017_07_11: Exchange 2016 and later. */
	if (rv[0] == 'V' && strncmp(rv, "V2018", 5) < 0)
		return (15001);
	if (rv[0] == 'V')
		return (15020);
	return (0);
}

/* The newest RequestServerVersion a server accepts. */
static const char *
v_version_for(const struct ews_version *sv)
{
	if (sv->major < 14)
		return ("Exchange2007_SP1");
	if (sv->major == 14 && sv->minor == 0)
		return ("Exchange2010");
	if (sv->major == 14 && sv->minor == 1)
		return ("Exchange2010_SP1");
	if (sv->major == 14)
		return ("Exchange2010_SP2");
	return ("Exchange2013_SP1");
}

static void
v_product(const struct ews_version *sv, char *out, size_t outsz)
{
	const char	*name = "Exchange", *sp = "";

	if (sv->major == 8) {
		name = "Exchange 2007";
		sp = sv->minor == 1 ? " SP1" : sv->minor == 2 ? " SP2" :
		    sv->minor >= 3 ? " SP3" : "";
	} else if (sv->major == 14) {
		name = "Exchange 2010";
		sp = sv->minor == 1 ? " SP1" : sv->minor == 2 ? " SP2" :
		    sv->minor >= 3 ? " SP3" : "";
	} else if (sv->major == 15 && sv->minor == 0)
		name = "Exchange 2013";
	else if (sv->major == 15 && sv->minor == 1)
		name = "Exchange 2016";
	else if (sv->major == 15 && sv->minor == 2)
		name = "Exchange 2019";
	else if (sv->major == 15 && sv->minor >= 20)
		name = "Exchange Online";
	snprintf(out, outsz, "%s%s (%d.%d.%d.%d)", name, sp, sv->major,
	    sv->minor, sv->major_build, sv->minor_build);
}

static bool
v_code_is(const struct ews_response *r, const char *code)
{
	return (strcmp(r->status.code, code) == 0);
}

/* "CODE: message" of an EWS answer, for seen: lines. */
static char *
v_status_text(const struct ews_response *r)
{
	const char	*msg = r->status.message != NULL ? r->status.message :
	    r->faultstring;

	if (r->status.code[0] == '\0')
		return (xstrdup(msg != NULL ? msg : "no response code"));
	if (msg == NULL)
		return (xstrdup(r->status.code));
	return (v_fmt("%s: %s", r->status.code, msg));
}

/* The slot is granted: the body v_next wrote goes out as it is. */
static int
v_build(struct ews_call *call, struct ews_send *s, void *arg)
{
	struct verify	*v = arg;

	(void)call;
	s->body = v->body;
	buf_init(&v->body);
	s->anchor = v->anchor;
	s->cookie = v->cookie_out;
	s->no_auth = v->no_auth;
	s->tag = "verify";
	return (0);
}

/* One set of operations per request kind, each answered by v_ews_done. */
static const struct ews_call_ops v_find_ops = {
	.op = EWS_OP_FIND_ITEM, .klass = THROTTLE_SHORT,
	.build = v_build, .done = v_ews_done, .diagnostic = true
};
static const struct ews_call_ops v_subscribe_ops = {
	.op = EWS_OP_SUBSCRIBE, .klass = THROTTLE_SHORT,
	.build = v_build, .done = v_ews_done, .diagnostic = true
};
static const struct ews_call_ops v_unsubscribe_ops = {
	.op = EWS_OP_UNSUBSCRIBE, .klass = THROTTLE_SHORT,
	.build = v_build, .done = v_ews_done, .diagnostic = true
};

/*
 * Queue the request in v->body for a slot of the budget.  anchor may be
 * NULL; cookie is the affinity cookie of a subscription; no_auth sends
 * no credentials.  An administrator waits for the answer: the checks
 * go before the daemon's routine work, never past the budget.
 */
static void
v_post(struct verify *v, const struct ews_call_ops *ops, const char *anchor,
    const char *cookie, bool no_auth)
{
	v->anchor = anchor;
	v->cookie_out = cookie;
	v->no_auth = no_auth;
	ews_call_submit(&v->call, ops, THROTTLE_PRIO_HIGH, anchor, v);
}

static void
v_header(const struct verify *v, struct soap_header *h,
    struct soap_ident *id, const struct v_mailbox *m)
{
	memset(h, 0, sizeof *h);
	h->version = v->conf->exchange.version;
	if (m != NULL) {
		id->type = m->type;
		id->value = m->id;
		h->impersonate = id;
	}
}

/* A CalendarView of the next hour, one entry: cheap, needs a mailbox. */
static int
v_small_find(struct verify *v, const struct v_mailbox *m)
{
	struct soap_header	 h;
	struct soap_ident	 id;
	int64_t			 now = time_wall_ms() / 1000;

	v_header(v, &h, &id, m);
	return (soap_find_calendar_view(&v->body, &h, now, now + 3600, 1));
}

/* Whether the server answered with something to parse as EWS. */
static bool
v_answered(const struct http_response *resp)
{
	switch (resp->result) {
	case HTTP_RESULT_OK:
	case HTTP_RESULT_AUTH:
		return (true);
	case HTTP_RESULT_THROTTLED:
	case HTTP_RESULT_FATAL:
		/* A SOAP fault comes with HTTP 500. */
		return (resp->status == 500 && resp->body_len > 0);
	default:
		return (false);
	}
}

/* An HTTP-level failure in words (allocated), or NULL if v_answered. */
static char *
v_transport_problem(const struct http_response *resp)
{
	if (v_answered(resp))
		return (NULL);
	if (resp->status != 0)
		return (v_fmt("HTTP %ld%s%s", resp->status,
		    resp->error != NULL ? ": " : "",
		    resp->error != NULL ? resp->error : ""));
	return (v_fmt("%s", resp->error != NULL ? resp->error :
	    http_result_name(resp->result)));
}

static void
v_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct verify	*v = arg;
	void		(*fn)(struct verify *) = v->timer_fn;

	(void)fd;
	(void)what;
	v->timer_fn = NULL;
	if (fn != NULL)
		fn(v);
}

/* Run fn from the loop after ms (replacing any pending one). */
static void
v_after(struct verify *v, int64_t ms, void (*fn)(struct verify *))
{
	struct timeval	 tv;

	v->timer_fn = fn;
	evtimer_add(&v->timer, time_ms_tv(&tv, ms));
}

/* ---- check 1: DNS, TCP, TLS ---- */

static bool
v_loopback(const char *host)
{
	return (strcasecmp(host, "localhost") == 0 ||
	    strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0);
}

static void
v_tls_done(const struct verify_tls_info *ti, void *arg)
{
	struct verify	*v = arg;
	const char	*name = ti->https ? "tls" : "connect";
	char		 date[TIME_ISO8601_LEN], *seen = NULL, *fix = NULL;
	int64_t		 now = time_wall_ms() / 1000, days;

	switch (ti->stage) {
	case VERIFY_TLS_URL:
		v_add(v, name, VERIFY_FAIL, NULL,
		    "set url = https://HOST/EWS/Exchange.asmx in [exchange]",
		    NULL, "cannot parse url %s", v->conf->exchange.url);
		v->stopped = true;
		break;
	case VERIFY_TLS_RESOLVE:
		v_add(v, name, VERIFY_FAIL, NULL, "check the host name in url "
		    "in [exchange] and this machine's DNS resolver",
		    ti->error, "cannot resolve %s", ti->host);
		v->stopped = true;
		break;
	case VERIFY_TLS_CONNECT:
	case VERIFY_TLS_TIMEOUT:
		v_add(v, name, VERIFY_FAIL, NULL, "check host and port in url "
		    "in [exchange], firewalls on the way, and that IIS runs "
		    "on the Exchange server", ti->error,
		    "cannot connect to %s port %d", ti->host, ti->port);
		v->stopped = true;
		break;
	case VERIFY_TLS_HANDSHAKE:
		v_add(v, name, VERIFY_FAIL, NULL, "make sure the port serves "
		    "https with TLS 1.2 or later (IIS: bind a certificate to "
		    "the Default Web Site)", ti->error,
		    "TLS handshake with %s port %d failed", ti->host,
		    ti->port);
		v->stopped = true;
		break;
	case VERIFY_TLS_DONE:
		if (!ti->https && v_loopback(ti->host)) {
			v_add(v, name, VERIFY_PASS, NULL, NULL, NULL,
			    "connected to %s port %d (plain http: no TLS)",
			    ti->host, ti->port);
			break;
		}
		if (!ti->https) {
			v_add(v, name, VERIFY_WARN, NULL, "use an https:// url "
			    "in [exchange]", "http:// to a host other than "
			    "this one", "connected to %s port %d, but over "
			    "plain http: calendars%s cross the network "
			    "unencrypted", ti->host, ti->port,
			    v->conf->exchange.auth == CONF_AUTH_BASIC ?
			    " and the password" : "");
			break;
		}
		time_format_iso8601(ti->not_after, date);
		date[10] = '\0';
		seen = v_fmt("%s; certificate for %s issued by %s, valid "
		    "until %s", ti->tls_version, ti->cert_name, ti->issuer,
		    date);
		days = (ti->not_after - now) / 86400;
		if (ti->verify_code == 10 /* X509_V_ERR_CERT_HAS_EXPIRED */) {
			v_add(v, name, v->conf->exchange.tls_verify ?
			    VERIFY_FAIL : VERIFY_WARN, NULL,
			    "renew the Exchange certificate and bind it to "
			    "IIS: New-ExchangeCertificate, then "
			    "Enable-ExchangeCertificate -Thumbprint THUMBPRINT "
			    "-Services IIS", seen,
			    "certificate for %s expired on %s", ti->host, date);
			if (v->conf->exchange.tls_verify)
				v->stopped = true;
		} else if (ti->verify_code != 0) {
			v_add(v, name, v->conf->exchange.tls_verify ?
			    VERIFY_FAIL : VERIFY_WARN, NULL,
			    "install the issuing CA certificate on this "
			    "machine (/usr/local/share/ca-certificates, then "
			    "update-ca-certificates) or set ca_file = "
			    "/path/to/ca.pem in [exchange]", seen,
			    "certificate for %s is not trusted: %s", ti->host,
			    ti->verify_error);
			if (v->conf->exchange.tls_verify)
				v->stopped = true;
		} else if (!ti->host_ok) {
			v_add(v, name, v->conf->exchange.tls_verify ?
			    VERIFY_FAIL : VERIFY_WARN, NULL,
			    "use a host name the certificate names in url in "
			    "[exchange], or add this name to the "
			    "certificate's subject alternative names", seen,
			    "certificate does not name %s (it is for %s)",
			    ti->host, ti->cert_name);
			if (v->conf->exchange.tls_verify)
				v->stopped = true;
		} else if (ti->not_after != 0 &&
		    ti->not_after - now < V_CERT_DAYS * 86400) {
			fix = v_fmt("renew the Exchange certificate before %s: "
			    "New-ExchangeCertificate, then "
			    "Enable-ExchangeCertificate -Thumbprint THUMBPRINT "
			    "-Services IIS", date);
			v_add(v, name, VERIFY_WARN, NULL, fix, seen,
			    "certificate for %s expires in %lld days (%s)",
			    ti->host, (long long)days, date);
		} else
			v_add(v, name, VERIFY_PASS, NULL, NULL, seen,
			    "certificate for %s valid until %s", ti->host,
			    date);
		break;
	}
	free(seen);
	free(fix);
	verify_tls_cancel(v->tls);
	v->tls = NULL;
	v->step = ST_SCHEMES;
	v_next(v);
}

/* ---- check 2: authentication schemes ---- */

/* "NTLM, Negotiate, Basic" from the '\n'-separated offers. */
static char *
v_schemes(const char *offers)
{
	struct buf	 b = BUF_INIT;
	const char	*p = offers;
	size_t		 n;

	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == '\n')
			p++;
		n = strcspn(p, " \n,");
		if (n > 0 && n < 32) {
			if (b.len > 0)
				buf_puts(&b, ", ");
			buf_append(&b, p, n);
		}
		p = strchr(p, '\n');
	}
	if (b.len == 0)
		buf_puts(&b, "none");
	return (buf_steal(&b));
}

static bool
v_offers(const struct verify *v, const char *scheme)
{
	const char	*p = v->offers;
	size_t		 n = strlen(scheme);

	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == '\n' || *p == ',')
			p++;
		if (strncasecmp(p, scheme, n) == 0 &&
		    (p[n] == '\0' || p[n] == ' ' || p[n] == ',' ||
		    p[n] == '\n'))
			return (true);
		p += strcspn(p, " ,\n");
	}
	return (false);
}

static void
v_on_schemes(struct verify *v, const struct http_response *resp)
{
	enum conf_auth	 a = v->conf->exchange.auth;
	const char	*need;
	char		*offered, *fix, *prob;
	bool		 ok;

	if (resp->status == 401) {
		v->offers = xstrdup(resp->www_authenticate != NULL ?
		    resp->www_authenticate : "");
		offered = v_schemes(v->offers);
		switch (a) {
		case CONF_AUTH_NTLM:
			need = "NTLM";
			ok = v_offers(v, "NTLM");
			fix = v_fmt("enable Windows Authentication (NTLM) on "
			    "the EWS virtual directory: " FIX_VDIR
			    " -WindowsAuthentication $true%s",
			    v_offers(v, "Basic") ?
			    "; or set auth = basic in [exchange]" : "");
			break;
		case CONF_AUTH_BASIC:
			need = "Basic";
			ok = v_offers(v, "Basic");
			fix = v_fmt("enable Basic authentication on the EWS "
			    "virtual directory: " FIX_VDIR
			    " -BasicAuthentication $true%s",
			    v_offers(v, "NTLM") ?
			    "; or set auth = ntlm in [exchange]" : "");
			break;
		case CONF_AUTH_NEGOTIATE:
			need = "Negotiate";
			ok = v_offers(v, "Negotiate");
			fix = v_fmt("enable Windows Authentication (Negotiate) "
			    "on the EWS virtual directory: " FIX_VDIR
			    " -WindowsAuthentication $true%s",
			    v_offers(v, "NTLM") ?
			    "; or set auth = ntlm in [exchange]" : "");
			break;
		case CONF_AUTH_OAUTH2:
		default:
			need = "Bearer";
			ok = v_offers(v, "Bearer");
			fix = v_fmt("enable OAuth on the EWS virtual "
			    "directory: " FIX_VDIR " -OAuthAuthentication "
			    "$true (Exchange Online always offers it)");
			break;
		}
		if (ok)
			v_add(v, "auth-schemes", VERIFY_PASS, NULL, NULL, NULL,
			    "server offers %s; auth = %s", offered,
			    conf_auth_name(a));
		else {
			char *seen = v_fmt("WWW-Authenticate schemes on the "
			    "401 answer: %s", offered);

			v_add(v, "auth-schemes", VERIFY_FAIL, NULL, fix, seen,
			    "server offers %s, not %s (auth = %s)", offered,
			    need, conf_auth_name(a));
			free(seen);
			v->stopped = true;
		}
		free(offered);
		free(fix);
		v->step = ST_LOGIN;
		v_next(v);
		return;
	}
	if (resp->status == 404) {
		v_add(v, "auth-schemes", VERIFY_FAIL, NULL,
		    "url in [exchange] must name the EWS endpoint, e.g. "
		    "https://mail.example.com/EWS/Exchange.asmx",
		    "HTTP 404 Not Found", "no EWS endpoint at %s",
		    v->conf->exchange.url);
		v->stopped = true;
	} else if ((prob = v_transport_problem(resp)) != NULL) {
		v_add(v, "auth-schemes", VERIFY_FAIL, NULL,
		    "check url in [exchange] and the server's IIS logs", prob,
		    "the EWS endpoint did not answer properly");
		free(prob);
		v->stopped = true;
	} else
		v_add(v, "auth-schemes", VERIFY_WARN, NULL,
		    "require authentication on the EWS virtual directory: "
		    FIX_VDIR " -WindowsAuthentication $true",
		    NULL, "the server answered without asking for "
		    "credentials (HTTP %ld)", resp->status);
	v->step = ST_LOGIN;
	v_next(v);
}

/* ---- check 3: login ---- */

/*
 * The login was refused.  Only the configured scheme is ever tried: a
 * retry over Basic would send the password in the clear to whoever
 * answered 401 (an on-path attacker on http:// or without
 * verification).  So an NTLM refusal names both causes it can have.
 */
static void
v_login_failed(struct verify *v, const char *seen)
{
	const char	*user = v->conf->exchange.username != NULL ?
	    v->conf->exchange.username : "(no username)";

	if (v->conf->exchange.auth == CONF_AUTH_NTLM)
		v_add(v, "login", VERIFY_FAIL, NULL, "check username "
		    "(DOMAIN\\user or user@domain) and the password in "
		    "password_file, and that the account is neither locked "
		    "nor expired (Get-ADUser NAME -Properties "
		    "LockedOut,PasswordExpired); if they are right, client "
		    "and server disagree about NTLM: let the server accept "
		    "NTLMv2 (Local Security Policy \"Network security: LAN "
		    "Manager authentication level\", registry "
		    "LmCompatibilityLevel, on the Exchange server and the "
		    "domain controllers), and if Extended Protection is on "
		    "for /EWS, set " FIX_VDIR
		    " -ExtendedProtectionTokenChecking None", seen,
		    "the server refused the login of %s (ntlm: "
		    "a wrong password, a locked account, or an NTLM version "
		    "or session security mismatch)", user);
	else
		v_add(v, "login", VERIFY_FAIL, NULL, "check username "
		    "(DOMAIN\\user or user@domain) and the password in "
		    "password_file; check that the account is neither locked "
		    "nor expired (Get-ADUser NAME -Properties "
		    "LockedOut,PasswordExpired)", seen,
		    "the server refused the login of %s (%s)", user,
		    conf_auth_name(v->conf->exchange.auth));
	v->stopped = true;
}

static void v_check_version(struct verify *);

static void
v_on_login(struct verify *v, const struct http_response *resp)
{
	struct ews_response	 r;
	char			*prob, *cause = NULL;

	if (resp->status == 401 || resp->result == HTTP_RESULT_AUTH) {
		v_login_failed(v, resp->status != 401 && resp->error != NULL ?
		    resp->error : "HTTP 401 after the authentication "
		    "handshake");
		v->step = ST_DONE;
		v_next(v);
		return;
	}
	if ((prob = v_transport_problem(resp)) != NULL) {
		v_add(v, "login", VERIFY_FAIL, NULL, "check url in [exchange] "
		    "and the server's IIS and EWS logs", prob,
		    "the authenticated request failed");
		free(prob);
		v->stopped = true;
		v->step = ST_DONE;
		v_next(v);
		return;
	}
	if (ews_parse_response(resp->body, resp->body_len, &r, &cause) ==
	    -1) {
		v_add(v, "login", VERIFY_FAIL, NULL, "url in [exchange] must "
		    "name the EWS endpoint, e.g. "
		    "https://mail.example.com/EWS/Exchange.asmx",
		    cause != NULL ? cause : "unparsable answer",
		    "HTTP %ld, but not an EWS answer", resp->status);
		free(cause);
		ews_response_free(&r);
		v->stopped = true;
		v->step = ST_DONE;
		v_next(v);
		return;
	}
	v_add(v, "login", VERIFY_PASS, NULL, NULL, NULL,
	    "%s logged in (%s)", v->conf->exchange.username != NULL ?
	    v->conf->exchange.username : "the service account",
	    conf_auth_name(v->conf->exchange.auth));
	v->server = r.version;
	v->version_fault = v_code_is(&r, "ErrorInvalidServerVersion");
	ews_response_free(&r);
	v_check_version(v);
}

/* ---- check 4: server version and notification mode ---- */

static void
v_check_version(struct verify *v)
{
	const struct config	*conf = v->conf;
	const char		*rv = conf->exchange.version;
	char			 prod[96], *fix, *seen;
	int			 srank;

	v->mode_ok = true;
	v->step = ST_IMPERSONATE;
	if (!v->server.present) {
		if (v->version_fault) {
			v_add(v, "version", VERIFY_FAIL, NULL, "set version = "
			    "Exchange2007_SP1 (or the server's release) in "
			    "[exchange]", "ErrorInvalidServerVersion",
			    "the server refuses RequestServerVersion %s", rv);
			v->stopped = true;
			v->step = ST_DONE;
		} else
			v_add(v, "version", VERIFY_WARN, NULL, NULL, NULL,
			    "the server sent no ServerVersionInfo; "
			    "RequestServerVersion %s could not be checked",
			    rv);
		v_next(v);
		return;
	}
	v_product(&v->server, prod, sizeof prod);
	srank = v_server_rank(&v->server);
	seen = v_fmt("ServerVersionInfo %d.%d.%d.%d%s%s", v->server.major,
	    v->server.minor, v->server.major_build, v->server.minor_build,
	    v->server.version[0] != '\0' ? " Version=" : "",
	    v->server.version);
	if (v->version_fault || v_request_rank(rv) > srank) {
		fix = v_fmt("set version = %s in [exchange]",
		    v_version_for(&v->server));
		v_add(v, "version", VERIFY_FAIL, NULL, fix, seen,
		    "RequestServerVersion %s is newer than the server, %s",
		    rv, prod);
		free(fix);
		free(seen);
		v->stopped = true;
		v->step = ST_DONE;
		v_next(v);
		return;
	}
	v_add(v, "version", VERIFY_PASS, NULL, NULL, seen,
	    "%s accepts RequestServerVersion %s", prod, rv);
	free(seen);

	switch (conf->exchange.mode) {
	case CONF_MODE_STREAMING:
		if (srank >= 14001) {
			v_add(v, "mode", VERIFY_PASS, NULL, NULL, NULL,
			    "mode = streaming: %s supports streaming "
			    "notifications", prod);
			break;
		}
		v->mode_ok = false;
		v_add(v, "mode", VERIFY_FAIL, NULL, v->server.major < 14 ?
		    "use mode = push (Exchange 2007 SP1 supports push "
		    "notifications)" : "install Exchange 2010 SP1 or later, "
		    "or use mode = push", "streaming notifications need "
		    "Exchange 2010 SP1 (14.1) or later",
		    "mode = streaming, but %s has no streaming notifications",
		    prod);
		break;
	case CONF_MODE_PUSH:
		if (srank >= 8001) {
			v_add(v, "mode", VERIFY_PASS, NULL, NULL, NULL,
			    "mode = push: %s supports push notifications",
			    prod);
			break;
		}
		v->mode_ok = false;
		v_add(v, "mode", VERIFY_FAIL, NULL, "install Exchange 2007 "
		    "SP1 or later", NULL, "mode = push, but %s has no push "
		    "notifications", prod);
		break;
	case CONF_MODE_POLL:
		v_add(v, "mode", VERIFY_PASS, NULL, NULL, NULL,
		    "mode = poll: %s supports pull subscriptions", prod);
		break;
	}
	v_next(v);
}

/* ---- check 5: impersonation ---- */

static char *
v_rights_fix(const struct verify *v)
{
	char	*acct = v_account(v->conf), *fix;

	if (v->conf->exchange.auth == CONF_AUTH_OAUTH2 ||
	    (v->server.present && v->server.major == 15 &&
	    v->server.minor >= 20))
		fix = v_fmt("grant the application the full_access_as_app "
		    "application permission of Office 365 Exchange Online "
		    "(with admin consent), limited with an Application Access "
		    "Policy if needed");
	else if (v->server.present && v->server.major < 14)
		fix = v_fmt("grant %s ms-Exch-EPI-Impersonation on the Client "
		    "Access server and ms-Exch-EPI-May-Impersonate on the "
		    "mailbox database: Add-ADPermission -Identity "
		    "(Get-ExchangeServer CAS).DistinguishedName -User %s "
		    "-ExtendedRights ms-Exch-EPI-Impersonation; "
		    "Add-ADPermission -Identity (Get-MailboxDatabase "
		    "DB).DistinguishedName -User %s -ExtendedRights "
		    "ms-Exch-EPI-May-Impersonate", acct, acct, acct);
	else
		fix = v_fmt("New-ManagementRoleAssignment -Name "
		    "ewsgw-impersonation -Role ApplicationImpersonation -User "
		    "%s (add -CustomRecipientWriteScope SCOPE to limit it to "
		    "the watched mailboxes)", acct);
	free(acct);
	return (fix);
}

static void
v_on_impersonate(struct verify *v, const struct http_response *resp)
{
	struct v_mailbox	*m = &v->mbx[v->imbx];
	struct ews_response	 r;
	const char		*how = v_idtype_element(m->type);
	char			*prob, *cause = NULL, *seen, *fix;
	int64_t			 wait = 0;

	v->imbx++;
	if ((prob = v_transport_problem(resp)) != NULL ||
	    resp->status == 401) {
		v_add(v, "impersonation", VERIFY_FAIL, m->address, NULL,
		    prob != NULL ? prob : "HTTP 401",
		    "%s: the request failed", m->address);
		free(prob);
		v_next(v);
		return;
	}
	if (ews_parse_response(resp->body, resp->body_len, &r, &cause) ==
	    -1) {
		v_add(v, "impersonation", VERIFY_FAIL, m->address, NULL,
		    cause, "%s: not an EWS answer", m->address);
		free(cause);
		ews_response_free(&r);
		v_next(v);
		return;
	}
	seen = v_status_text(&r);
	if (!r.fault && r.status.class != EWS_CLASS_ERROR) {
		v_add(v, "impersonation", VERIFY_PASS, m->address, NULL, NULL,
		    "%s: impersonated by %s %s", m->address, how, m->id);
		if (v->good == NULL)
			v->good = m;
	} else if (v_code_is(&r, "ErrorImpersonateUserDenied") ||
	    v_code_is(&r, "ErrorImpersonationDenied") ||
	    v_code_is(&r, "ErrorImpersonationFailed")) {
		fix = v_rights_fix(v);
		v_add(v, "impersonation", VERIFY_FAIL, m->address, fix, seen,
		    "%s: %s may not impersonate this mailbox (%s)",
		    m->address, v->conf->exchange.username, r.status.code);
		free(fix);
	} else if (v_code_is(&r, "ErrorNonExistentMailbox") ||
	    v_code_is(&r, "ErrorInvalidExchangeImpersonationHeaderData")) {
		switch (m->type) {
		case CONF_ID_SMTP:
			fix = v_fmt("if the SMTP address is not the primary "
			    "alias@FQDN, impersonate by UPN: write "
			    "upn=user@ad.domain after it in the mailbox list");
			break;
		case CONF_ID_UPN:
			fix = v_fmt("check upn= of this mailbox: it must be "
			    "the account's userPrincipalName (Get-Mailbox %s "
			    "| Format-List UserPrincipalName)", m->address);
			break;
		case CONF_ID_SID:
		default:
			fix = v_fmt("check sid= of this mailbox (Get-Mailbox "
			    "%s | Format-List Sid)", m->address);
			break;
		}
		v_add(v, "impersonation", VERIFY_FAIL, m->address, fix, seen,
		    "%s: no mailbox found for %s %s", m->address, how, m->id);
		free(fix);
	} else if (v_code_is(&r, "ErrorServerBusy")) {
		v_add(v, "impersonation", VERIFY_WARN, m->address,
		    "run --verify again later; if this persists, check the "
		    "throttling policy of the service account "
		    "(Get-ThrottlingPolicyAssociation)", seen,
		    "%s: the server is busy (throttled), not tested",
		    m->address);
		wait = r.status.backoff_ms;
	} else
		v_add(v, "impersonation", VERIFY_FAIL, m->address, NULL, seen,
		    "%s: impersonation by %s failed (%s)", m->address, how,
		    r.status.code);
	free(seen);
	ews_response_free(&r);
	if (wait > 0)
		v_after(v, wait > 60000 ? 60000 : wait, v_next);
	else
		v_next(v);
}

/* ---- check 6: a subscription, created and removed ---- */

static unsigned
v_events(const struct verify *v)
{
	/* FreeBusyChangedEvent exists from Exchange 2010 SP1 on. */
	if (v->server.present && v_server_rank(&v->server) < 14001)
		return (SOAP_EV_CALENDAR & ~SOAP_EV_FREEBUSY);
	return (SOAP_EV_CALENDAR);
}

static char *
v_subscribe_fix(const struct verify *v, const struct ews_response *r)
{
	char	*acct, *fix;

	if (v_code_is(r, "ErrorExceededSubscriptionCount")) {
		acct = v_account(v->conf);
		fix = v_fmt("raise EWSMaxSubscriptions: Set-ThrottlingPolicy "
		    "POLICY -EWSMaxSubscriptions N "
		    "(Get-ThrottlingPolicyAssociation %s names POLICY), or "
		    "remove subscriptions other applications keep on the "
		    "mailbox", acct);
		free(acct);
		return (fix);
	}
	if (v_code_is(r, "ErrorInvalidPushSubscriptionUrl"))
		return (v_fmt("set url in [push] to an http(s) URL the "
		    "Exchange server can reach"));
	if (v_code_is(r, "ErrorSchemaValidation") &&
	    v->conf->exchange.mode == CONF_MODE_STREAMING)
		return (v_fmt("use mode = push (the server does not know "
		    "streaming subscriptions)"));
	return (NULL);
}

static void
v_on_subscribe(struct verify *v, const struct http_response *resp)
{
	struct ews_subscribe	 s;
	char			*prob, *cause = NULL, *seen, *fix;
	const char		*kind = conf_mode_name(v->conf->exchange.mode);

	v->step = ST_FIND;
	if ((prob = v_transport_problem(resp)) != NULL) {
		v_add(v, "subscription", VERIFY_FAIL, v->good->address, NULL,
		    prob, "Subscribe failed");
		free(prob);
		v_next(v);
		return;
	}
	if (ews_parse_subscribe(resp->body, resp->body_len, &s, &cause) ==
	    -1) {
		v_add(v, "subscription", VERIFY_FAIL, v->good->address, NULL,
		    cause, "Subscribe: not an EWS answer");
		free(cause);
		ews_subscribe_free(&s);
		v_next(v);
		return;
	}
	if (s.r.fault || s.r.status.class == EWS_CLASS_ERROR ||
	    s.subscription_id == NULL) {
		seen = v_status_text(&s.r);
		fix = v_subscribe_fix(v, &s.r);
		v_add(v, "subscription", v_code_is(&s.r, "ErrorServerBusy") ?
		    VERIFY_WARN : VERIFY_FAIL, v->good->address, fix, seen,
		    "a %s subscription on the calendar of %s was refused "
		    "(%s)", kind, v->good->address, s.r.status.code);
		free(seen);
		free(fix);
		ews_subscribe_free(&s);
		v_next(v);
		return;
	}
	if (v->conf->exchange.mode == CONF_MODE_PUSH) {
		/* Push cannot be unsubscribed: it ends on our answer. */
		v_add(v, "subscription", VERIFY_PASS, v->good->address, NULL,
		    "push subscriptions cannot be removed with Unsubscribe: "
		    "this one ends when ewsgw answers its next notification "
		    "with Unsubscribe, or expires when nobody answers",
		    "push subscription on the calendar of %s created; "
		    "Exchange will call %s", v->good->address,
		    v->conf->push.url);
		ews_subscribe_free(&s);
		v_next(v);
		return;
	}
	v->sub_id = xstrdup(s.subscription_id);
	free(v->cookie);
	v->cookie = resp->cookie_backend != NULL ?
	    xstrdup(resp->cookie_backend) : NULL;
	ews_subscribe_free(&s);
	v->retries = 0;
	v->step = ST_UNSUBSCRIBE;
	v_next(v);
}

static void
v_on_unsubscribe(struct verify *v, const struct http_response *resp)
{
	struct ews_response	 r;
	char			*seen = NULL, *cause = NULL;
	const char		*kind = conf_mode_name(v->conf->exchange.mode);
	bool			 ok = false;

	memset(&r, 0, sizeof r);
	if (v_answered(resp) &&
	    ews_parse_response(resp->body, resp->body_len, &r, &cause) == 0) {
		ok = !r.fault && r.status.class != EWS_CLASS_ERROR;
		if (!ok && v_code_is(&r, "ErrorServerBusy") &&
		    v->retries++ < V_RETRIES) {
			int64_t wait = r.status.backoff_ms > 0 ?
			    r.status.backoff_ms : 1000;

			ews_response_free(&r);
			v_after(v, wait > 60000 ? 60000 : wait, v_next);
			return;
		}
		if (!ok)
			seen = v_status_text(&r);
	} else {
		seen = cause != NULL ? cause : v_transport_problem(resp);
		cause = NULL;
	}
	ews_response_free(&r);
	free(cause);
	if (ok)
		v_add(v, "subscription", VERIFY_PASS, v->good->address, NULL,
		    NULL, "%s subscription on the calendar of %s created and "
		    "removed again", kind, v->good->address);
	else
		v_add(v, "subscription", VERIFY_WARN, v->good->address,
		    NULL, seen, "%s subscription on the calendar of %s "
		    "created, but Unsubscribe failed: it expires by itself "
		    "(streaming: 30 minutes without a connection; pull: "
		    "10 minutes without GetEvents)", kind,
		    v->good->address);
	free(seen);
	v->step = ST_FIND;
	v_next(v);
}

/* ---- check 7: FindItem within EWSFindCountLimit ---- */

static void
v_on_find(struct verify *v, const struct http_response *resp)
{
	struct ews_calendar	 cal;
	unsigned		 limit = v->conf->throttling.find_count_limit;
	char			*prob, *cause = NULL, *seen, *fix, *acct;

	v->step = ST_PROBE_SUB;
	if ((prob = v_transport_problem(resp)) != NULL) {
		v_add(v, "find-count", VERIFY_FAIL, v->good->address, NULL,
		    prob, "FindItem failed");
		free(prob);
		v_next(v);
		return;
	}
	if (ews_parse_find_item(resp->body, resp->body_len, &cal, &cause) ==
	    -1) {
		v_add(v, "find-count", VERIFY_FAIL, v->good->address, NULL,
		    cause, "FindItem: not an EWS answer");
		free(cause);
		ews_calendar_free(&cal);
		v_next(v);
		return;
	}
	acct = v_account(v->conf);
	if (cal.r.fault || cal.r.status.class == EWS_CLASS_ERROR) {
		seen = v_status_text(&cal.r);
		fix = v_code_is(&cal.r, "ErrorExceededFindCountLimit") ?
		    v_fmt("raise EWSFindCountLimit: Set-ThrottlingPolicy "
		    "POLICY -EWSFindCountLimit %u "
		    "(Get-ThrottlingPolicyAssociation %s names POLICY), or "
		    "lower find_count_limit in [throttling]", limit, acct) :
		    NULL;
		v_add(v, "find-count", VERIFY_FAIL, v->good->address, fix,
		    seen, "FindItem CalendarView with MaxEntriesReturned %u "
		    "was refused (%s)", limit, cal.r.status.code);
		free(fix);
		free(seen);
	} else if (!cal.includes_last && cal.nitems < limit) {
		seen = v_fmt("%zu of %u items returned, "
		    "IncludesLastItemInRange=false", cal.nitems,
		    cal.total_in_view);
		fix = v_fmt("raise EWSFindCountLimit: Set-ThrottlingPolicy "
		    "POLICY -EWSFindCountLimit %u "
		    "(Get-ThrottlingPolicyAssociation %s names POLICY), or "
		    "set find_count_limit = %zu in [throttling]", limit,
		    acct, cal.nitems);
		v_add(v, "find-count", VERIFY_WARN, v->good->address, fix,
		    seen, "the server cut FindItem at %zu items: its "
		    "EWSFindCountLimit is below find_count_limit = %u",
		    cal.nitems, limit);
		free(seen);
		free(fix);
	} else
		v_add(v, "find-count", VERIFY_PASS, v->good->address, NULL,
		    NULL, "FindItem CalendarView with MaxEntriesReturned %u "
		    "accepted (%zu items)", limit, cal.nitems);
	free(acct);
	ews_calendar_free(&cal);
	v_next(v);
}

/* ---- check 8: the concurrency the server really allows ---- */

static bool
v_refusal(const struct ews_status *st)
{
	return (strcmp(st->code, "ErrorExceededConnectionCount") == 0 ||
	    strcmp(st->code, "ErrorServerBusy") == 0);
}

static void
v_probe_refused(struct v_probe *p, const struct ews_status *st)
{
	struct verify	*v = p->v;

	if (p->refused)
		return;
	p->refused = true;
	if (st->backoff_ms > v->backoff_ms)
		v->backoff_ms = st->backoff_ms;
	if (v->probe_code == NULL)
		v->probe_code = xstrdup(st->code);
}

static void
v_stream_error(void *arg, const struct ews_status *st)
{
	struct v_probe	*p = arg;

	if (v_refusal(st))
		v_probe_refused(p, st);
}

static void
v_stream_sub_error(void *arg, const struct ews_status *st,
    char *const *ids, size_t nids)
{
	(void)ids;
	(void)nids;
	v_stream_error(arg, st);
}

static const struct stream_cb v_stream_cb = {
	.error = v_stream_error,
	.sub_error = v_stream_sub_error
};

static int
v_probe_data(const char *data, size_t len, void *arg)
{
	struct v_probe	*p = arg;

	/* A broken stream is not a refusal; stop decoding it. */
	if (p->st != NULL && stream_feed(p->st, data, len) == -1) {
		stream_free(p->st);
		p->st = NULL;
	}
	return (HTTP_DATA_OK);
}

static void
v_probe_done(struct http_request *req, const struct http_response *resp,
    void *arg)
{
	struct v_probe		*p = arg;
	struct ews_response	 r;

	(void)req;
	p->req = NULL;
	p->open = false;
	memset(&r, 0, sizeof r);
	if (resp->body_len > 0 && ews_parse_response(resp->body,
	    resp->body_len, &r, NULL) == 0) {
		if (v_refusal(&r.status))
			v_probe_refused(p, &r.status);
	} else if (resp->status == 503 || resp->status == 429) {
		struct ews_status st;

		memset(&st, 0, sizeof st);
		snprintf(st.code, sizeof st.code, "HTTP %ld", resp->status);
		v_probe_refused(p, &st);
	}
	ews_response_free(&r);
}

static void
v_probe_settled(struct verify *v)
{
	size_t	 i;

	for (i = 0; i < v->npr; i++) {
		if (v->pr[i].req != NULL)
			http_request_cancel(v->pr[i].req);
		v->pr[i].req = NULL;
		v->pr[i].open = false;
		stream_free(v->pr[i].st);
		v->pr[i].st = NULL;
	}
	v->step = ST_PROBE_UNSUB;
	v->ipr = 0;
	v->retries = 0;
	/* Let the server notice the closed streams; honour any back-off. */
	v_after(v, v->backoff_ms > 500 ? v->backoff_ms : 500, v_next);
}

static void
v_probe_start_streams(struct verify *v)
{
	struct soap_header		 h;
	struct soap_ident		 id;
	struct http_request_opts	 o;
	struct v_probe			*p;
	size_t				 i;
	const char			*ids[1];

	v_header(v, &h, &id, v->good);
	for (i = 0; i < v->npr; i++) {
		p = &v->pr[i];
		ids[0] = p->sub_id;
		if (soap_get_streaming_events(&v->body, &h, ids, 1, 1) == -1)
			continue;
		p->st = stream_new(&v_stream_cb, p, 0);
		memset(&o, 0, sizeof o);
		o.method = HTTP_POST;
		o.url = v->conf->exchange.url;
		o.body = v->body.data;
		o.body_len = v->body.len;
		o.anchor_mailbox = v->good->address;
		o.backend_cookie = p->cookie;
		o.prefer_affinity = p->cookie != NULL;
		o.tag = "verify-probe";
		p->open = true;
		p->req = http_request_start(v->eng, &o, v_probe_done,
		    v_probe_data, p);
	}
	v_after(v, V_SETTLE_MS, v_probe_settled);
}

static void
v_on_probe_sub(struct verify *v, const struct http_response *resp)
{
	struct ews_subscribe	 s;
	struct v_probe		*p = &v->pr[v->ipr];

	memset(&s, 0, sizeof s);
	if (v_answered(resp) &&
	    ews_parse_subscribe(resp->body, resp->body_len, &s, NULL) == 0 &&
	    s.subscription_id != NULL && !s.r.fault &&
	    s.r.status.class != EWS_CLASS_ERROR) {
		p->sub_id = xstrdup(s.subscription_id);
		p->cookie = resp->cookie_backend != NULL ?
		    xstrdup(resp->cookie_backend) : NULL;
		v->ipr++;
	} else {
		/* Cannot set the probe up: clean up what exists. */
		free(v->probe_code);
		v->probe_code = s.r.status.code[0] != '\0' ?
		    v_fmt("Subscribe: %s", s.r.status.code) :
		    xstrdup("Subscribe failed");
		v->npr = v->ipr;
		v->step = ST_PROBE_UNSUB;
		v->ipr = 0;
		v->limit = 0;
	}
	ews_subscribe_free(&s);
	v_next(v);
}

static void
v_on_probe_unsub(struct verify *v, const struct http_response *resp)
{
	struct ews_response	 r;
	struct v_probe		*p = &v->pr[v->ipr];

	memset(&r, 0, sizeof r);
	if (v_answered(resp) &&
	    ews_parse_response(resp->body, resp->body_len, &r, NULL) == 0) {
		if (!r.fault && r.status.class != EWS_CLASS_ERROR)
			p->removed = true;
		else if (v_code_is(&r, "ErrorServerBusy") &&
		    v->retries++ < V_RETRIES) {
			int64_t wait = r.status.backoff_ms > 0 ?
			    r.status.backoff_ms : 1000;

			ews_response_free(&r);
			v_after(v, wait > 60000 ? 60000 : wait, v_next);
			return;
		}
	}
	ews_response_free(&r);
	v->retries = 0;
	v->ipr++;
	v_next(v);
}

static void
v_probe_report(struct verify *v)
{
	size_t	 i, refused = 0, left = 0;
	unsigned measured;
	char	*seen, *fix, *acct;
	const char *what = v->limit_conc ? "max_concurrency" :
	    "streaming_connections_per_anchor";

	for (i = 0; i < v->npr; i++) {
		if (v->pr[i].refused)
			refused++;
		if (!v->pr[i].removed)
			left++;
	}
	if (v->limit == 0) {
		seen = left > 0 ? v_fmt("%zu probe subscriptions could not "
		    "be removed; they expire after 30 minutes", left) : NULL;
		v_add(v, "throttling", VERIFY_WARN, v->good->address, NULL,
		    seen, "probe not completed (%s)", v->probe_code);
		free(seen);
		return;
	}
	measured = (unsigned)(v->npr - refused);
	seen = v_fmt("%zu concurrent GetStreamingEvents opened, %zu refused"
	    "%s%s%s", v->npr, refused, refused > 0 ? " (" : "",
	    refused > 0 ? v->probe_code : "", refused > 0 ? ")" : "");
	if (left > 0) {
		char *s2 = v_fmt("%s; %zu probe subscriptions could not be "
		    "removed, they expire after 30 minutes", seen, left);

		free(seen);
		seen = s2;
	}
	acct = v_account(v->conf);
	if (refused == 0)
		v_add(v, "throttling", VERIFY_PASS, v->good->address, NULL,
		    seen, "the server allowed all %u probe connections; "
		    "%s = %u is configured", measured, what, v->limit);
	else if (measured < v->limit) {
		if (v->limit_conc)
			fix = v_fmt("raise EWSMaxConcurrency: "
			    "Set-ThrottlingPolicy POLICY -EWSMaxConcurrency %u "
			    "(Get-ThrottlingPolicyAssociation %s names "
			    "POLICY), or set max_concurrency = %u in "
			    "[throttling]", v->limit, acct, measured);
		else
			fix = v_fmt("raise HangingConnectionLimit in the EWS "
			    "web.config on the Client Access servers to %u, "
			    "or set streaming_connections_per_anchor = %u in "
			    "[throttling]", v->limit, measured);
		v_add(v, "throttling", VERIFY_WARN, v->good->address, fix,
		    seen, "measured concurrency %u is below %s = %u",
		    measured, what, v->limit);
		free(fix);
	} else
		v_add(v, "throttling", VERIFY_PASS, v->good->address, NULL,
		    seen, "measured concurrency %u, %s = %u is configured",
		    measured, what, v->limit);
	free(acct);
	free(seen);
}

/* Set the probe up: which limit applies, how many connections. */
static bool
v_probe_plan(struct verify *v)
{
	const struct config	*conf = v->conf;
	bool			 sa;

	if (v->server.present && v_server_rank(&v->server) < 14001) {
		v_add(v, "throttling", VERIFY_WARN, NULL, NULL, NULL,
		    "probe not run: it needs streaming notifications "
		    "(Exchange 2010 SP1 or later)");
		return (false);
	}
	if (v->good == NULL) {
		v_add(v, "throttling", VERIFY_WARN, NULL, NULL, NULL,
		    "probe not run: no mailbox could be impersonated");
		return (false);
	}
	/*
	 * Before 2010 SP2 RU4 every open stream is charged to the service
	 * account's EWSMaxConcurrency; later, streams have their own
	 * per-mailbox limit (HangingConnectionLimit).
	 */
	if (conf->throttling.charging_set)
		sa = conf->throttling.charging ==
		    CONF_CHARGING_SERVICE_ACCOUNT;
	else if (v->server.present)
		sa = v_server_rank(&v->server) < 14002;
	else
		sa = conf->throttling.charging ==
		    CONF_CHARGING_SERVICE_ACCOUNT;
	v->limit_conc = sa;
	v->limit = sa ? conf->throttling.max_concurrency :
	    conf->throttling.streaming_connections_per_anchor;
	if (v->limit == 0)
		v->limit = 10;
	v->npr = v->limit + 1;
	if (v->npr > V_PROBE_MAX)
		v->npr = V_PROBE_MAX;
	v->pr = xcalloc(v->npr, sizeof *v->pr);
	for (size_t i = 0; i < v->npr; i++)
		v->pr[i].v = v;
	v->ipr = 0;
	return (true);
}

/* ---- the Graph side: token, permissions, application access policy ---- */

#define V_FIX_CONSENT	"in Entra ID, App registrations > the app > API " \
	"permissions: add Microsoft Graph > Application permissions > %s, " \
	"then Grant admin consent"

/* The first Graph mailbox as Graph names it (UPN or address). */
static char *
v_graph_user(const struct config *conf)
{
	const struct conf_mailbox	*cm;
	size_t				 i;

	for (i = 0; i < conf->nmailboxes; i++) {
		cm = &conf->mailboxes[i];
		if (cm->backend != CONF_BACKEND_GRAPH)
			continue;
		return (xstrdup(cm->idtype != CONF_ID_SMTP && cm->id != NULL ?
		    cm->id : cm->address));
	}
	return (NULL);
}

/* A 403 from the application access policy rather than a permission. */
static bool
v_graph_policy_refusal(const struct graph_result *r)
{
	struct graph_error	 err;
	bool			 policy;

	if (graph_parse_error(r->body, r->body_len, &err) == -1)
		return (false);
	policy = err.message != NULL && (strstr(err.message, "AccessPolicy") !=
	    NULL || strstr(err.message, "RAOP") != NULL);
	graph_error_free(&err);
	return (policy);
}

/* What the server answered, for "seen". */
static char *
v_graph_seen(const struct graph_result *r)
{
	struct graph_error	 err;
	char			*s;

	if (r->status == 0)
		return (v_fmt("no answer: %s", r->error != NULL ? r->error :
		    "unknown error"));
	if (graph_parse_error(r->body, r->body_len, &err) == -1)
		return (v_fmt("HTTP %ld", r->status));
	s = v_fmt("HTTP %ld %s%s%s", r->status, err.code,
	    err.message != NULL ? ": " : "",
	    err.message != NULL ? err.message : "");
	graph_error_free(&err);
	return (s);
}

static void	v_graph_done(const struct graph_result *, void *);

/* GET path (built by the caller into v->body) on mailbox's budget. */
static void
v_graph_get(struct verify *v, const char *mailbox)
{
	v->gcall = graph_call_start(v->graph, &(struct graph_req){
	    .method = HTTP_GET, .url = v->body.data, .mailbox = mailbox,
	    .prefer_utc = true, .tag = "verify" }, v_graph_done, v);
}

static void
v_graph_token_done(const char *token, const char *error, void *arg)
{
	struct verify	*v = arg;
	const char	*url = v->conf->graph.token_url;

	v->gtoken = NULL;
	if (token != NULL) {
		v_add(v, "graph-token", VERIFY_PASS, NULL, NULL, NULL,
		    "an app-only token for client %s from %s",
		    v->conf->graph.client_id, url);
		v->step = ST_G_CALENDAR;
	} else {
		v_add(v, "graph-token", VERIFY_FAIL, NULL, "check tenant_id "
		    "and client_id in [graph] against the app registration in "
		    "Entra ID, and that its client secret (not expired) or "
		    "certificate is the one configured", error,
		    "no token from %s for client %s", url,
		    v->conf->graph.client_id);
		v->step = ST_DONE;
	}
	v_next(v);
}

/* A refused read of the watched mailbox: which permission, or policy. */
static void
v_graph_refused(struct verify *v, const struct graph_result *r,
    const char *name, const char *role, const char *what)
{
	char	*seen, *fix;

	seen = v_graph_seen(r);
	if (r->action == GRAPH_ACT_DENIED && v_graph_policy_refusal(r)) {
		fix = v_fmt("add %s to the mail-enabled security group the "
		    "application access policy names (Test-"
		    "ApplicationAccessPolicy -Identity %s -AppId %s shows "
		    "the verdict)", v->guser, v->guser,
		    v->conf->graph.client_id);
		v_add(v, name, VERIFY_FAIL, v->guser, fix, seen, "the "
		    "application access policy refuses %s, a watched "
		    "mailbox", v->guser);
	} else if (r->action == GRAPH_ACT_DENIED) {
		fix = v_fmt(V_FIX_CONSENT, role);
		v_add(v, name, VERIFY_FAIL, v->guser, fix, seen, "the app "
		    "lacks the application permission %s (%s was refused)",
		    role, what);
	} else if (r->action == GRAPH_ACT_NOT_FOUND) {
		fix = v_fmt("check the address: the mailbox must be in "
		    "Exchange Online (Get-EXOMailbox %s); a mailbox on "
		    "premises belongs in [mailboxes]", v->guser);
		v_add(v, name, VERIFY_FAIL, v->guser, fix, seen, "Graph "
		    "does not know %s", v->guser);
	} else {
		fix = NULL;
		v_add(v, name, VERIFY_FAIL, v->guser, NULL, seen, "%s "
		    "failed", what);
	}
	free(fix);
	free(seen);
}

static void
v_graph_outside(struct verify *v, const struct graph_result *r)
{
	const char	*out = v->conf->graph.verify_outside;
	char		*seen, *fix;

	seen = v_graph_seen(r);
	fix = v_fmt("restrict the app to the watched mailboxes: "
	    "New-ApplicationAccessPolicy -AppId %s -PolicyScopeGroupId "
	    "GROUP -AccessRight RestrictAccess -Description ewsgw (GROUP: a "
	    "mail-enabled security group holding the watched mailboxes)",
	    v->conf->graph.client_id);
	if (r->action == GRAPH_ACT_OK)
		v_add(v, "graph-access-policy", VERIFY_WARN, out, fix, "HTTP "
		    "200", "the app read the calendar of %s, outside the "
		    "watched mailboxes: no application access policy limits "
		    "it", out);
	else if (r->action == GRAPH_ACT_DENIED)
		v_add(v, "graph-access-policy", VERIFY_PASS, out, NULL, seen,
		    "%s, outside the watched mailboxes, was refused: an "
		    "application access policy limits the app", out);
	else
		v_add(v, "graph-access-policy", VERIFY_WARN, out,
		    "set verify_outside in [graph] to an existing mailbox "
		    "in Exchange Online that ewsgw does not watch", seen,
		    "cannot tell whether an application access policy "
		    "limits the app: reading %s did not answer 403", out);
	free(fix);
	free(seen);
}

static void
v_graph_done(const struct graph_result *r, void *arg)
{
	struct verify	*v = arg;

	v->gcall = NULL;
	switch (v->step) {
	case ST_G_CALENDAR:
		v->step = ST_G_SETTINGS;
		if (r->action == GRAPH_ACT_OK) {
			v->gcal_ok = true;
			v_add(v, "graph-calendars", VERIFY_PASS, v->guser,
			    NULL, NULL, "Calendars.Read: a one-minute "
			    "calendarView of %s answered", v->guser);
		} else
			v_graph_refused(v, r, "graph-calendars",
			    "Calendars.Read", "a one-minute calendarView");
		break;
	case ST_G_SETTINGS:
		v->step = ST_G_OUTSIDE;
		if (r->action == GRAPH_ACT_OK)
			v_add(v, "graph-mailbox-settings", VERIFY_PASS,
			    v->guser, NULL, NULL, "MailboxSettings.Read: the "
			    "automaticRepliesSetting of %s answered",
			    v->guser);
		else
			v_graph_refused(v, r, "graph-mailbox-settings",
			    "MailboxSettings.Read", "automaticRepliesSetting");
		break;
	case ST_G_OUTSIDE:
		v->step = ST_DONE;
		v_graph_outside(v, r);
		break;
	default:
		break;
	}
	v_next(v);
}

/* One step of the Graph checks; false when they are over. */
static bool
v_graph_step(struct verify *v)
{
	int64_t	 now;

	buf_reset(&v->body);
	switch (v->step) {
	case ST_G_TOKEN:
		v->gtoken = graph_client_token(v->graph, v_graph_token_done,
		    v);
		return (true);
	case ST_G_CALENDAR:
		now = time_wall_ms() / 1000;
		graph_calview_path(&v->body, v->guser, now, now + 60, false);
		v_graph_get(v, v->guser);
		return (true);
	case ST_G_SETTINGS:
		graph_auto_replies_path(&v->body, v->guser);
		v_graph_get(v, v->guser);
		return (true);
	case ST_G_OUTSIDE:
		if (!v->gcal_ok) {
			v_add(v, "graph-access-policy", VERIFY_WARN, NULL,
			    NULL, NULL, "not checked: the app cannot read "
			    "the watched mailbox's calendar");
			break;
		}
		if (v->conf->graph.verify_outside == NULL) {
			v_add(v, "graph-access-policy", VERIFY_WARN, NULL,
			    "set verify_outside in [graph] to a mailbox in "
			    "Exchange Online that ewsgw does not watch; "
			    "restrict the app with New-ApplicationAccessPolicy "
			    "-AccessRight RestrictAccess", NULL, "not "
			    "checked: without an application access policy "
			    "the app can read every mailbox of the tenant");
			break;
		}
		now = time_wall_ms() / 1000;
		graph_calview_path(&v->body, v->conf->graph.verify_outside,
		    now, now + 60, false);
		v_graph_get(v, v->conf->graph.verify_outside);
		return (true);
	default:
		break;
	}
	return (false);
}

/* ---- the sequence ---- */

static void
v_next(struct verify *v)
{
	const struct config	*conf = v->conf;
	struct soap_header	 h;
	struct soap_ident	 id;
	struct v_probe		*p;
	int64_t			 now, horizon;
	int			 rv;

	for (;;) {
		if (v->finished)
			return;
		if (v->stopped && v->step < ST_PROBE_UNSUB)
			v->step = ST_DONE;
		switch (v->step) {
		case ST_CONNECT:
			v->tls = verify_tls_start(v->base, conf->exchange.url,
			    conf->exchange.ca_file, 15000, v_tls_done, v);
			return;
		case ST_SCHEMES:
		case ST_LOGIN:
			if (v_small_find(v, NULL) == -1) {
				v->step = ST_DONE;
				break;
			}
			v_post(v, &v_find_ops, NULL, NULL,
			    v->step == ST_SCHEMES);
			return;
		case ST_IMPERSONATE:
			if (v->imbx >= v->nmbx) {
				if (v->nmbx == 0)
					v_add(v, "impersonation", VERIFY_WARN,
					    NULL, "list mailboxes in "
					    "[mailboxes] or give --mailbox "
					    "ADDRESS", NULL, "no mailbox to "
					    "test");
				v->step = ST_SUBSCRIBE;
				break;
			}
			if (v_small_find(v, &v->mbx[v->imbx]) == -1) {
				v_add(v, "impersonation", VERIFY_FAIL,
				    v->mbx[v->imbx].address, NULL, NULL,
				    "%s: cannot be written into a request",
				    v->mbx[v->imbx].address);
				v->imbx++;
				break;
			}
			v_post(v, &v_find_ops, v->mbx[v->imbx].address,
			    NULL, false);
			return;
		case ST_SUBSCRIBE:
			if (v->good == NULL || !v->mode_ok) {
				v->step = ST_FIND;
				break;
			}
			v_header(v, &h, &id, v->good);
			if (conf->exchange.mode == CONF_MODE_PUSH)
				rv = conf->push.url == NULL ? -1 :
				    soap_subscribe_push(&v->body, &h,
				    v_events(v), conf->push.url,
				    conf->push.status_frequency, NULL);
			else if (conf->exchange.mode == CONF_MODE_POLL)
				rv = soap_subscribe_pull(&v->body, &h,
				    v_events(v), 10, NULL);
			else
				rv = soap_subscribe_streaming(&v->body, &h,
				    v_events(v));
			if (rv == -1) {
				v_add(v, "subscription", VERIFY_FAIL,
				    v->good->address, "set url in [push]",
				    NULL, "cannot build the Subscribe request");
				v->step = ST_FIND;
				break;
			}
			v_post(v, &v_subscribe_ops, v->good->address, NULL,
			    false);
			return;
		case ST_UNSUBSCRIBE:
			v_header(v, &h, &id, v->good);
			if (soap_unsubscribe(&v->body, &h, v->sub_id) == -1) {
				v->step = ST_FIND;
				break;
			}
			v_post(v, &v_unsubscribe_ops, v->good->address,
			    v->cookie, false);
			return;
		case ST_FIND:
			if (v->good == NULL) {
				v->step = ST_PROBE_SUB;
				break;
			}
			v_header(v, &h, &id, v->good);
			now = time_wall_ms() / 1000;
			horizon = conf->presence.horizon_ms > 0 ?
			    conf->presence.horizon_ms / 1000 : 86400;
			if (soap_find_calendar_view(&v->body, &h, now,
			    now + horizon,
			    conf->throttling.find_count_limit) == -1) {
				v->step = ST_PROBE_SUB;
				break;
			}
			v_post(v, &v_find_ops, v->good->address, NULL, false);
			return;
		case ST_PROBE_SUB:
			if (!v->probe) {
				v->step = ST_DONE;
				break;
			}
			if (v->pr == NULL && !v_probe_plan(v)) {
				v->step = ST_DONE;
				break;
			}
			if (v->ipr >= v->npr) {
				v->step = ST_PROBE_GSE;
				break;
			}
			v_header(v, &h, &id, v->good);
			if (soap_subscribe_streaming(&v->body, &h,
			    SOAP_EV_CALENDAR) == -1) {
				v->step = ST_DONE;
				break;
			}
			v_post(v, &v_subscribe_ops, v->good->address, NULL,
			    false);
			return;
		case ST_PROBE_GSE:
			v_probe_start_streams(v);
			return;
		case ST_PROBE_UNSUB:
			if (v->ipr >= v->npr) {
				v_probe_report(v);
				v->step = ST_DONE;
				break;
			}
			p = &v->pr[v->ipr];
			v_header(v, &h, &id, v->good);
			if (p->sub_id == NULL ||
			    soap_unsubscribe(&v->body, &h, p->sub_id) == -1) {
				v->ipr++;
				break;
			}
			v_post(v, &v_unsubscribe_ops, v->good->address,
			    p->cookie, false);
			return;
		case ST_G_TOKEN:
		case ST_G_CALENDAR:
		case ST_G_SETTINGS:
		case ST_G_OUTSIDE:
			if (v_graph_step(v))
				return;
			v->step = ST_DONE;
			break;
		case ST_DONE:
			if (v->graph != NULL && !v->graph_ran) {
				v->graph_ran = true;
				v->step = ST_G_TOKEN;
				break;
			}
			v_finish(v);
			return;
		}
	}
}

static void
v_ews_done(struct ews_call *call, const struct ews_reply *reply, void *arg)
{
	struct verify			*v = arg;
	const struct http_response	*resp = reply->http;
	struct http_response		 unsent;

	(void)call;
	if (resp == NULL) {
		/* Not sent (v_build never refuses): a failed request. */
		memset(&unsent, 0, sizeof unsent);
		unsent.result = HTTP_RESULT_FATAL;
		unsent.error = "not sent";
		resp = &unsent;
	}
	switch (v->step) {
	case ST_SCHEMES:
		v_on_schemes(v, resp);
		break;
	case ST_LOGIN:
		v_on_login(v, resp);
		break;
	case ST_IMPERSONATE:
		v_on_impersonate(v, resp);
		break;
	case ST_SUBSCRIBE:
		v_on_subscribe(v, resp);
		break;
	case ST_UNSUBSCRIBE:
		v_on_unsubscribe(v, resp);
		break;
	case ST_FIND:
		v_on_find(v, resp);
		break;
	case ST_PROBE_SUB:
		v_on_probe_sub(v, resp);
		break;
	case ST_PROBE_UNSUB:
		v_on_probe_unsub(v, resp);
		break;
	default:
		break;
	}
}

/* ---- life cycle ---- */

static void
v_call_done(struct verify *v)
{
	if (v->done != NULL)
		v->done(v, v->arg);
}

static void
v_finish(struct verify *v)
{
	if (v->finished)
		return;
	v->finished = true;
	v->step = ST_DONE;
	/* Always from the loop, never from inside verify_start. */
	v_after(v, 0, v_call_done);
}

/*
 * One mailbox to try: "ADDRESS" or "ADDRESS upn=UPN|sid=SID" (so an
 * administrator can try an id before writing it into the mailbox list);
 * without an id, the configured line of that address decides.
 */
static void
v_add_mailbox(struct verify *v, const struct config *conf, const char *spec)
{
	const struct conf_mailbox *cm = NULL;
	struct v_mailbox	*m;
	const char		*opt;
	size_t			 i, alen;

	alen = strcspn(spec, " \t");
	opt = spec + alen + strspn(spec + alen, " \t");
	m = &v->mbx[v->nmbx++];
	m->address = xstrndup(spec, alen);
	if (strncasecmp(opt, "upn=", 4) == 0 && opt[4] != '\0') {
		m->type = CONF_ID_UPN;
		m->id = xstrdup(opt + 4);
		return;
	}
	if (strncasecmp(opt, "sid=", 4) == 0 && opt[4] != '\0') {
		m->type = CONF_ID_SID;
		m->id = xstrdup(opt + 4);
		return;
	}
	for (i = 0; i < conf->nmailboxes; i++)
		if (strcasecmp(conf->mailboxes[i].address, m->address) == 0) {
			cm = &conf->mailboxes[i];
			break;
		}
	if (cm != NULL && cm->idtype != CONF_ID_SMTP && cm->id != NULL) {
		m->type = cm->idtype;
		m->id = xstrdup(cm->id);
	} else if (cm == NULL && conf->exchange.impersonation == CONF_ID_UPN) {
		/* No UPN known: many directories use the address. */
		m->type = CONF_ID_UPN;
		m->id = xstrdup(m->address);
	} else {
		m->type = CONF_ID_SMTP;
		m->id = xstrdup(m->address);
	}
}

static char *
v_dup(const char *s)
{
	return (s != NULL ? xstrdup(s) : NULL);
}

/*
 * The settings the checks read, copied: a daemon may reload (and free)
 * its configuration while the checks run.  Mailboxes are not needed:
 * the sample is copied at the start.
 */
static void
v_snapshot(struct config *dst, const struct config *src)
{
	memset(dst, 0, sizeof *dst);
	dst->path = v_dup(src->path);
	dst->exchange = src->exchange;
	dst->exchange.url = v_dup(src->exchange.url);
	dst->exchange.version = v_dup(src->exchange.version);
	dst->exchange.username = v_dup(src->exchange.username);
	dst->exchange.password = v_dup(src->exchange.password);
	dst->exchange.password_file = v_dup(src->exchange.password_file);
	dst->exchange.ca_file = v_dup(src->exchange.ca_file);
	dst->exchange.client_cert = v_dup(src->exchange.client_cert);
	dst->exchange.client_key = v_dup(src->exchange.client_key);
	dst->exchange.tenant = v_dup(src->exchange.tenant);
	dst->exchange.client_id = v_dup(src->exchange.client_id);
	dst->exchange.client_secret = v_dup(src->exchange.client_secret);
	dst->exchange.client_secret_file =
	    v_dup(src->exchange.client_secret_file);
	dst->exchange.token_url = v_dup(src->exchange.token_url);
	dst->exchange.token_ca_file = v_dup(src->exchange.token_ca_file);
	dst->exchange.autodiscover_url = v_dup(src->exchange.autodiscover_url);
	dst->push = src->push;
	dst->push.listen = v_dup(src->push.listen);
	dst->push.url = v_dup(src->push.url);
	dst->push.certificate = v_dup(src->push.certificate);
	dst->push.key = v_dup(src->push.key);
	dst->push.allow = v_dup(src->push.allow);
	dst->graph.client_id = v_dup(src->graph.client_id);
	dst->graph.token_url = v_dup(src->graph.token_url);
	dst->graph.verify_outside = v_dup(src->graph.verify_outside);
	dst->throttling = src->throttling;
	dst->presence = src->presence;
	dst->log = src->log;
}

static void
v_snapshot_free(struct config *c)
{
	free(c->path);
	free(c->exchange.url);
	free(c->exchange.version);
	free(c->exchange.username);
	if (c->exchange.password != NULL)
		xfree_secret(c->exchange.password);
	free(c->exchange.password_file);
	free(c->exchange.ca_file);
	free(c->exchange.client_cert);
	free(c->exchange.client_key);
	free(c->exchange.tenant);
	free(c->exchange.client_id);
	if (c->exchange.client_secret != NULL)
		xfree_secret(c->exchange.client_secret);
	free(c->exchange.client_secret_file);
	free(c->exchange.token_url);
	free(c->exchange.token_ca_file);
	free(c->exchange.autodiscover_url);
	free(c->push.listen);
	free(c->push.url);
	free(c->push.certificate);
	free(c->push.key);
	free(c->push.allow);
	free(c->graph.client_id);
	free(c->graph.token_url);
	free(c->graph.verify_outside);
}

/* Set v up to fail at once with a "setup" check. */
static struct verify *
v_setup_failed(struct verify *v, const char *summary, char *cause)
{
	v_add(v, "setup", VERIFY_FAIL, NULL, NULL, cause, "%s", summary);
	free(cause);
	v->stopped = true;
	v_finish(v);
	return (v);
}

/* The probe's own HTTP client: its streams go past the budget. */
static int
v_probe_engine(struct verify *v, char **cause)
{
	struct http_engine_opts	 eo;
	struct auth_opts	 ao;

	http_engine_opts_from_config(&eo, v->conf);
	if ((v->eng = http_engine_new(v->base, &eo, cause)) == NULL)
		return (-1);
	if (v->conf->exchange.auth != CONF_AUTH_OAUTH2)
		return (0);
	v->token_eng = auth_token_engine_new(v->base, v->conf, cause);
	if (v->token_eng == NULL)
		return (-1);
	auth_opts_from_config(&ao, v->conf);
	ao.token_engine = v->token_eng;
	v->auth = auth_new(v->base, v->eng, &ao);
	return (0);
}

struct verify *
verify_start(struct event_base *base, struct ews_ctx *ews,
    struct graph_client *graph, const struct config *conf,
    const struct verify_opts *opts,
    verify_done_cb done, void *arg)
{
	struct verify		*v;
	struct graph_client_opts go;
	char			*cause = NULL;
	size_t			 i, n;

	v = xcalloc(1, sizeof *v);
	v->base = base;
	v_snapshot(&v->snap, conf);
	v->conf = &v->snap;
	v->probe = opts != NULL && opts->probe;
	v->done = done;
	v->arg = arg;
	evtimer_assign(&v->timer, base, v_timer_cb, v);
	buf_init(&v->body);

	if (opts != NULL && opts->nmailboxes > 0) {
		v->mbx = xcalloc(opts->nmailboxes, sizeof *v->mbx);
		for (i = 0; i < opts->nmailboxes; i++)
			v_add_mailbox(v, conf, opts->mailboxes[i]);
	} else {
		/* The EWS mailboxes: Graph's are checked on their own. */
		v->mbx = xcalloc(VERIFY_SAMPLE, sizeof *v->mbx);
		for (i = 0, n = 0; i < conf->nmailboxes && n < VERIFY_SAMPLE;
		    i++)
			if (conf->mailboxes[i].backend == CONF_BACKEND_EWS) {
				v_add_mailbox(v, conf,
				    conf->mailboxes[i].address);
				n++;
			}
	}

	if (ews == NULL) {
		/* From the shell: a call path and scheduler of its own. */
		if ((v->own_ews = ews_ctx_new(base, v->conf, &cause)) == NULL)
			return (v_setup_failed(v, "the HTTP client could not "
			    "be set up", cause));
		ews = v->own_ews;
	}
	v->ews = ews;

	if ((v->guser = v_graph_user(conf)) != NULL) {
		if (graph == NULL) {
			/* From the shell: a Graph client of its own. */
			graph_client_opts_from_config(&go, conf);
			go.drive = ews_ctx_drive(ews);
			v->own_graph = graph_client_new(base, &go, &cause);
			if (v->own_graph == NULL) {
				v_add(v, "graph-token", VERIFY_FAIL, NULL,
				    NULL, cause, "the Graph client could not "
				    "be set up");
				free(cause);
				cause = NULL;
			}
			graph = v->own_graph;
		}
		v->graph = graph;
	}

	ews_call_init(&v->call, ews);
	v->call_ready = true;
	if (v->probe && v_probe_engine(v, &cause) == -1)
		return (v_setup_failed(v, "the probe's HTTP client could not "
		    "be set up", cause));
	v->step = ST_CONNECT;
	v_next(v);
	return (v);
}

static void
v_cancel_all(struct verify *v)
{
	size_t	 i;

	if (v->call_ready)
		ews_call_cancel(&v->call);
	graph_call_cancel(v->gcall);
	v->gcall = NULL;
	if (v->gtoken != NULL)
		graph_client_token_cancel(v->graph, v->gtoken);
	v->gtoken = NULL;
	verify_tls_cancel(v->tls);
	v->tls = NULL;
	for (i = 0; i < v->npr; i++) {
		if (v->pr[i].req != NULL)
			http_request_cancel(v->pr[i].req);
		v->pr[i].req = NULL;
		stream_free(v->pr[i].st);
		v->pr[i].st = NULL;
	}
	evtimer_del(&v->timer);
	v->timer_fn = NULL;
}

void
verify_stop(struct verify *v)
{
	if (v == NULL || v->finished)
		return;
	v_cancel_all(v);
	v->aborted = true;
	v_finish(v);
}

void
verify_free(struct verify *v)
{
	size_t	 i;

	if (v == NULL)
		return;
	v_cancel_all(v);
	if (v->auth != NULL)
		auth_free(v->auth);
	http_engine_free(v->token_eng);
	http_engine_free(v->eng);
	/* The Graph client first: it uses the call path's scheduler. */
	graph_client_free(v->own_graph);
	ews_ctx_free(v->own_ews);
	free(v->guser);
	evtimer_del(&v->timer);
	buf_free(&v->body);
	for (i = 0; i < v->nchecks; i++)
		v_check_free(&v->checks[i]);
	free(v->checks);
	for (i = 0; i < v->nmbx; i++) {
		free(v->mbx[i].address);
		free(v->mbx[i].id);
	}
	free(v->mbx);
	for (i = 0; i < v->npr; i++) {
		free(v->pr[i].sub_id);
		free(v->pr[i].cookie);
	}
	free(v->pr);
	free(v->offers);
	free(v->sub_id);
	free(v->cookie);
	free(v->probe_code);
	v_snapshot_free(&v->snap);
	free(v);
}

/* ---- synchronous runners ---- */

struct v_sync {
	struct event_base	*base;
	bool			 done;
};

static void
v_sync_done(struct verify *v, void *arg)
{
	struct v_sync	*s = arg;

	(void)v;
	s->done = true;
	event_base_loopbreak(s->base);
}

/* Run to the end on a private loop. */
static struct verify *
v_sync(struct event_base *base, const struct config *conf,
    const struct verify_opts *opts)
{
	struct v_sync	 s;
	struct verify	*v;

	s.base = base;
	s.done = false;
	v = verify_start(base, NULL, NULL, conf, opts, v_sync_done, &s);
	while (!s.done)
		if (event_base_loop(base, EVLOOP_ONCE) == -1)
			break;
	return (v);
}

int
verify_run(const struct config *conf, const struct verify_opts *opts)
{
	struct event_base	*base;
	struct verify		*v;
	int			 rv;

	if ((base = event_base_new()) == NULL) {
		fprintf(stderr, "ewsgw: cannot create an event loop\n");
		return (1);
	}
	v = v_sync(base, conf, opts);
	verify_print(v, stdout, opts != NULL && opts->json);
	fflush(stdout);
	rv = verify_failed(v) ? 1 : 0;
	verify_free(v);
	event_base_free(base);
	return (rv);
}

/* ---- the control socket: the checks on the daemon's own loop ---- */

struct v_ctl {
	struct ctl_reply	*reply;
	struct verify		*v;
	struct event		 tmo;
	struct v_ctl		**slot;		/* the caller's running one */
};

static void
v_ctl_free(struct v_ctl *c)
{
	verify_free(c->v);
	evtimer_del(&c->tmo);
	if (*c->slot == c)
		*c->slot = NULL;
	free(c);
}

static void
v_ctl_done(struct verify *v, void *arg)
{
	struct v_ctl	*c = arg;

	verify_write_checks(v, control_reply_writer(c->reply));
	control_reply_done(c->reply);	/* frees the reply */
	v_ctl_free(c);
}

/* The client went away or the control server closes. */
static void
v_ctl_cancel(void *arg)
{
	v_ctl_free(arg);
}

static void
v_ctl_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct v_ctl	*c = arg;

	(void)fd;
	(void)what;
	verify_stop(c->v);	/* done follows with what was checked */
}

int
verify_control(struct ctl_reply *reply, struct event_base *base,
    struct ews_ctx *ews, struct graph_client *graph,
    const struct config *conf, int64_t timeout_ms,
    struct v_ctl **slot, char **cause)
{
	struct v_ctl		*c;
	struct verify_opts	 o = { NULL, 0, 0, 0 };
	struct timeval		 tv;

	/* One at a time: each run costs requests on the account's budget. */
	if (*slot != NULL) {
		*cause = xstrdup("verify: already running; try again when "
		    "it is over");
		return (-1);
	}
	c = xcalloc(1, sizeof *c);
	c->reply = reply;
	c->slot = slot;
	*slot = c;
	evtimer_assign(&c->tmo, base, v_ctl_timeout, c);
	if (timeout_ms > 0)
		evtimer_add(&c->tmo, time_ms_tv(&tv, timeout_ms));
	control_reply_on_cancel(reply, v_ctl_cancel, c);
	c->v = verify_start(base, ews, graph, conf, &o, v_ctl_done, c);
	return (0);
}
