/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * EWS response parsing on the streaming XML reader: each operation is a
 * table of the elements it reads and handlers that fill the structs as
 * those elements end.  Elements are matched by namespace URI and local
 * name, unknown ones are skipped; where a tree parser would take the
 * first child of a name, so does this.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ews/ews_parse.h"
#include "ews/xmlread.h"
#include "ews/soap.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

/* ---- classification ------------------------------------------------ */

static const struct {
	const char	*code;
	enum ews_action	 action;
} code_actions[] = {
	{ "NoError", EWS_ACT_OK },

	{ "ErrorServerBusy", EWS_ACT_THROTTLED },
	{ "ErrorExceededConnectionCount", EWS_ACT_THROTTLED },
	{ "ErrorExceededSubscriptionCount", EWS_ACT_THROTTLED },
	{ "ErrorExceededFindCountLimit", EWS_ACT_THROTTLED },
	{ "ErrorTooManyObjectsOpened", EWS_ACT_THROTTLED },
	{ "ErrorInternalServerTransientError", EWS_ACT_TRANSIENT },

	{ "ErrorSubscriptionNotFound", EWS_ACT_RESUBSCRIBE },
	{ "ErrorInvalidSubscription", EWS_ACT_RESUBSCRIBE },
	{ "ErrorExpiredSubscription", EWS_ACT_RESUBSCRIBE },
	{ "ErrorSubscriptionUnsubscribed", EWS_ACT_RESUBSCRIBE },
	/* The id now lives on another stream: a fresh one is the cure. */
	{ "ErrorNewEventStreamConnectionOpened", EWS_ACT_RESUBSCRIBE },

	{ "ErrorMissedNotificationEvents", EWS_ACT_RESYNC },
	{ "ErrorInvalidWatermark", EWS_ACT_RESYNC },

	{ "ErrorProxyRequestNotAllowed", EWS_ACT_REDISCOVER },
	{ "ErrorReadEventsFailed", EWS_ACT_REDISCOVER },
	{ "ErrorProxiedSubscriptionCallFailure", EWS_ACT_REDISCOVER },
	{ "ErrorMailboxMoveInProgress", EWS_ACT_TRANSIENT },

	{ "ErrorImpersonateUserDenied", EWS_ACT_PARK },
	{ "ErrorImpersonationDenied", EWS_ACT_PARK },
	{ "ErrorImpersonationFailed", EWS_ACT_PARK },
	{ "ErrorInvalidExchangeImpersonationHeaderData", EWS_ACT_PARK },
	{ "ErrorNonExistentMailbox", EWS_ACT_PARK },
	{ "ErrorMailRecipientNotFound", EWS_ACT_PARK },
	{ "ErrorInvalidSmtpAddress", EWS_ACT_PARK },
	{ "ErrorNonPrimarySmtpAddress", EWS_ACT_PARK },
	{ "ErrorSubscriptionDelegateAccessNotSupported", EWS_ACT_PARK },
	{ "ErrorMailboxConfiguration", EWS_ACT_PARK },
	{ "ErrorFolderNotFound", EWS_ACT_PARK },

	{ "ErrorAccessDenied", EWS_ACT_AUTH },
	{ "ErrorAccountDisabled", EWS_ACT_AUTH },
	{ "ErrorPasswordExpired", EWS_ACT_AUTH },
	{ "ErrorPasswordChangeRequired", EWS_ACT_AUTH },
	{ "ErrorInvalidLicense", EWS_ACT_AUTH },

	{ "ErrorMailboxStoreUnavailable", EWS_ACT_TRANSIENT },
	{ "ErrorConnectionFailed", EWS_ACT_TRANSIENT },
	{ "ErrorInternalServerError", EWS_ACT_TRANSIENT },
	{ "ErrorTimeoutExpired", EWS_ACT_TRANSIENT },
	{ "ErrorBatchProcessingStopped", EWS_ACT_TRANSIENT },
	{ "ErrorADUnavailable", EWS_ACT_TRANSIENT },
	{ "ErrorMailboxLogonFailed", EWS_ACT_TRANSIENT },
	{ "ErrorNoRespondingCASInDestinationSite", EWS_ACT_TRANSIENT },
	{ "ErrorFreeBusyGenerationFailed", EWS_ACT_TRANSIENT },
};

static const char *const action_names[EWS_ACT_MAX] = {
	"ok", "throttled", "resubscribe", "resync", "rediscover", "park",
	"auth", "transient", "fatal"
};

static bool
code_in(const char *code, const char *const *list)
{
	if (code == NULL)
		return (false);
	for (; *list != NULL; list++)
		if (strcmp(code, *list) == 0)
			return (true);
	return (false);
}

bool
ews_code_login_refused(const char *code)
{
	static const char *const codes[] = {
		"ErrorPasswordExpired", "ErrorPasswordChangeRequired",
		"ErrorAccountDisabled", NULL
	};

	return (code_in(code, codes));
}

bool
ews_code_impersonation_refused(const char *code)
{
	static const char *const codes[] = {
		"ErrorImpersonateUserDenied", "ErrorImpersonationDenied",
		"ErrorImpersonationFailed", NULL
	};

	return (code_in(code, codes));
}

enum ews_action
ews_classify(const char *code)
{
	size_t	 i;

	if (code == NULL || *code == '\0')
		return (EWS_ACT_OK);
	for (i = 0; i < sizeof(code_actions) / sizeof(code_actions[0]); i++)
		if (strcmp(code_actions[i].code, code) == 0)
			return (code_actions[i].action);
	return (EWS_ACT_FATAL);
}

enum ews_action
ews_status_action(const struct ews_status *st)
{
	enum ews_action	 a;

	a = ews_classify(st->code);
	switch (st->class) {
	case EWS_CLASS_NONE:
	case EWS_CLASS_SUCCESS:
		return (EWS_ACT_OK);
	case EWS_CLASS_WARNING:
		return (a);
	case EWS_CLASS_ERROR:
	default:
		/* An error that names no error is still an error. */
		return (a == EWS_ACT_OK ? EWS_ACT_FATAL : a);
	}
}

const char *
ews_action_name(enum ews_action a)
{
	if ((unsigned)a >= EWS_ACT_MAX)
		return ("unknown");
	return (action_names[a]);
}

const char *
ews_class_name(enum ews_class c)
{
	switch (c) {
	case EWS_CLASS_SUCCESS:
		return ("Success");
	case EWS_CLASS_WARNING:
		return ("Warning");
	case EWS_CLASS_ERROR:
		return ("Error");
	default:
		return ("None");
	}
}

static const char *const fb_names[] = {
	"Free", "Tentative", "Busy", "OOF", "WorkingElsewhere", "NoData"
};

const char *
ews_fb_name(enum ews_fb fb)
{
	if ((unsigned)fb > EWS_FB_NODATA)
		return ("NoData");
	return (fb_names[fb]);
}

/* Element names, indexed by enum ews_event_type. */
static const char *const event_names[] = {
	"CreatedEvent", "ModifiedEvent", "DeletedEvent", "MovedEvent",
	"CopiedEvent", "NewMailEvent", "FreeBusyChangedEvent", "StatusEvent"
};

const char *
ews_event_name(enum ews_event_type t)
{
	if ((unsigned)t > EWS_EV_STATUS)
		return ("UnknownEvent");
	return (event_names[t]);
}

/* ---- values ------------------------------------------------------- */

static int64_t
parse_int(const char *s, int64_t dflt)
{
	char		*end;
	long long	 v;

	if (s == NULL)
		return (dflt);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || errno != 0)
		return (dflt);
	while (isspace((unsigned char)*end))
		end++;
	if (*end != '\0')
		return (dflt);
	return (v);
}

static void *
grow(void *arr, size_t n, size_t *cap, size_t size)
{
	void	*p;

	if (n < *cap)
		return (arr);
	*cap = *cap == 0 ? 4 : *cap * 2;
	p = xreallocarray(arr, *cap, size);
	memset((char *)p + n * size, 0, (*cap - n) * size);
	return (p);
}

/* Text into a fixed buffer, truncated. */
static void
text_buf(const char *s, char *out, size_t size)
{
	strncpy(out, s, size - 1);
	out[size - 1] = '\0';
}

static bool
text_bool(const char *s)
{
	return (strcmp(s, "true") == 0 || strcmp(s, "1") == 0);
}

static enum ews_fb
text_fb(const char *s)
{
	unsigned	 i;

	for (i = 0; i <= EWS_FB_NODATA; i++)
		if (strcmp(s, fb_names[i]) == 0)
			return ((enum ews_fb)i);
	return (EWS_FB_NODATA);
}

/* An xs:dateTime element, read as it ends, judged when its parent does. */
struct rd_time {
	bool		 seen;
	bool		 ok;
	int64_t		 t;
	char		 bad[41];	/* the start of a bad value */
};

static void
time_read(struct rd_time *rt, const char *text)
{
	rt->seen = true;
	rt->ok = time_parse_iso8601(text, strlen(text), &rt->t) == 0;
	if (!rt->ok)
		snprintf(rt->bad, sizeof rt->bad, "%s", text);
}

/* A required dateTime child name of parent. */
static int
time_take(struct xr *x, const struct rd_time *rt, const char *parent,
    const char *name, int64_t *out)
{
	if (!rt->seen)
		return (xr_fail(x, "%s without %s", parent, name));
	if (!rt->ok)
		return (xr_fail(x, "%s: bad dateTime '%.40s'", name, rt->bad));
	*out = rt->t;
	return (0);
}

/* ---- the envelope ------------------------------------------------- */

/* Rows every operation's table starts with. */
enum {
	R_ENVELOPE,
	R_HEADER,
	R_VERSION,
	R_BODY,
	R_FAULT,
	R_FSTRING,
	R_FCODE,
	R_DETAIL,
	R_DCODE,
	R_DMSG,
	R_DMXML,
	R_DVALUE,
	R_OP,		/* the operation's answer */
	R_OP_FIRST	/* the operation's rows from here */
};

#define ENVELOPE_ROWS(ns, op)						\
	[R_ENVELOPE] = { R_ENVELOPE, XR_NS_ENV, 0, "Envelope" },	\
	[R_HEADER] = { R_ENVELOPE, XR_NS_ENV, XR_EACH, "Header" },	\
	[R_VERSION] = { R_HEADER, XR_NS_EWS, 0, "ServerVersionInfo" },	\
	[R_BODY] = { R_ENVELOPE, XR_NS_ENV, 0, "Body" },		\
	[R_FAULT] = { R_BODY, XR_NS_ENV, XR_FIRST_CHILD, "Fault" },	\
	/* Fault children are unqualified: the local name is enough. */ \
	[R_FSTRING] = { R_FAULT, XR_NS_ANY, XR_TEXT, "faultstring" },	\
	[R_FCODE] = { R_FAULT, XR_NS_ANY, XR_TEXT, "faultcode" },	\
	[R_DETAIL] = { R_FAULT, XR_NS_ANY, 0, "detail" },		\
	[R_DCODE] = { R_DETAIL, XR_NS_ANY, XR_TEXT, "ResponseCode" },	\
	[R_DMSG] = { R_DETAIL, XR_NS_ANY, XR_TEXT, "Message" },	\
	[R_DMXML] = { R_DETAIL, XR_NS_ANY, 0, "MessageXml" },		\
	[R_DVALUE] = { R_DMXML, XR_NS_ANY, XR_EACH | XR_TEXT, "Value" }, \
	[R_OP] = { R_BODY, ns, XR_FIRST_CHILD, op }

/* A ResponseMessageType's children, below row parent, from row at. */
enum { ST_CODE, ST_TEXT, ST_MXML, ST_VALUE, ST_ROWS };
#define STATUS_ROWS(at, parent)						\
	[(at) + ST_CODE] = { parent, XR_NS_EWS, XR_TEXT, "ResponseCode" }, \
	[(at) + ST_TEXT] = { parent, XR_NS_EWS, XR_TEXT, "MessageText" }, \
	[(at) + ST_MXML] = { parent, XR_NS_EWS, 0, "MessageXml" },	\
	/* Any namespace, as MessageXml's content is free-form. */	\
	[(at) + ST_VALUE] = { (at) + ST_MXML, XR_NS_ANY, XR_EACH | XR_TEXT, \
	    "Value" }

/* What every parse shares; first member of each parse's state. */
struct penv {
	struct ews_response	*r;
	const char		*want;		/* the answer's name */
	bool			 body;		/* a Body was met */
	bool			 payload;	/* ... with an element in it */
	bool			 dcode;		/* detail has a ResponseCode */
	bool			 dmsg;		/* ... a Message */
	char			*fcode;		/* faultcode */
	struct ews_status	*st;		/* the status being read */
	bool			 backoff;	/* the Value being read is
						   BackOffMilliseconds */
};

/* A ResponseMessageType opened: its class; its children follow. */
static void
status_begin(struct xr *x, struct penv *e, struct ews_status *st)
{
	const char	*cls;

	memset(st, 0, sizeof *st);
	if ((cls = xr_attr(x, "ResponseClass", NULL)) == NULL)
		st->class = EWS_CLASS_NONE;
	else if (strcmp(cls, "Success") == 0)
		st->class = EWS_CLASS_SUCCESS;
	else if (strcmp(cls, "Warning") == 0)
		st->class = EWS_CLASS_WARNING;
	else
		st->class = EWS_CLASS_ERROR;	/* unknown: assume the worst */
	e->st = st;
}

/* MessageXml: <t:Value Name="BackOffMilliseconds">12345</t:Value>. */
static void
status_start(struct xr *x, struct penv *e, unsigned k)
{
	const char	*name;

	if (k == ST_VALUE) {
		name = xr_attr(x, "Name", NULL);
		e->backoff = name != NULL &&
		    strcmp(name, "BackOffMilliseconds") == 0;
	}
}

static void
status_end(struct penv *e, unsigned k, const char *text)
{
	struct ews_status	*st = e->st;
	int64_t			 ms;

	switch (k) {
	case ST_CODE:
		text_buf(text, st->code, sizeof st->code);
		break;
	case ST_TEXT:
		st->message = xstrdup(text);
		break;
	case ST_VALUE:
		if (e->backoff) {
			ms = parse_int(text, 0);
			st->backoff_ms = ms > 0 ? ms : 0;
		}
		break;
	}
}

/* Keep the first error, else the first status, as the summary. */
static void
note_status(struct ews_response *r, const struct ews_status *st)
{
	if (r->status.class == EWS_CLASS_ERROR ||
	    (r->status.class != EWS_CLASS_NONE &&
	    st->class != EWS_CLASS_ERROR))
		return;
	ews_status_free(&r->status);
	r->status = *st;
	if (st->message != NULL)
		r->status.message = xstrdup(st->message);
}

static void
env_start(struct xr *x, unsigned row, struct penv *e)
{
	struct ews_version	*v = &e->r->version;
	const char		*s;

	switch (row) {
	case R_VERSION:
		v->present = true;
		v->major = (int)parse_int(xr_attr(x, "MajorVersion", NULL), 0);
		v->minor = (int)parse_int(xr_attr(x, "MinorVersion", NULL), 0);
		v->major_build = (int)parse_int(xr_attr(x, "MajorBuildNumber",
		    NULL), 0);
		v->minor_build = (int)parse_int(xr_attr(x, "MinorBuildNumber",
		    NULL), 0);
		if ((s = xr_attr(x, "Version", NULL)) != NULL)
			strncpy(v->version, s, sizeof(v->version) - 1);
		break;
	case R_BODY:
		e->body = true;
		break;
	case R_FAULT:
		e->payload = true;
		e->r->fault = true;
		e->r->status.class = EWS_CLASS_ERROR;
		e->st = &e->r->status;
		break;
	case R_DCODE:
		e->dcode = true;
		break;
	case R_DMSG:
		e->dmsg = true;
		break;
	case R_DVALUE:
		status_start(x, e, ST_VALUE);
		break;
	case R_OP:
		e->payload = true;
		break;
	}
}

static void
env_end(struct xr *x, unsigned row, const char *text, struct penv *e)
{
	struct ews_response	*r = e->r;
	const char		*colon;

	switch (row) {
	case R_ENVELOPE:
		if (!e->body)
			xr_fail(x, "SOAP envelope without Body");
		break;
	case R_BODY:
		if (!e->payload)
			xr_fail(x, "empty SOAP Body");
		break;
	case R_FSTRING:
		r->faultstring = xstrdup(text);
		break;
	case R_FCODE:
		e->fcode = xstrdup(text);
		break;
	case R_DCODE:
		text_buf(text, r->status.code, sizeof r->status.code);
		break;
	case R_DMSG:
		r->status.message = xstrdup(text);
		break;
	case R_DVALUE:
		status_end(e, ST_VALUE, text);
		break;
	case R_FAULT:
		if (!e->dcode && e->fcode != NULL) {
			/* "a:ErrorServerBusy", "soap:Client": the local part */
			colon = strrchr(e->fcode, ':');
			strncpy(r->status.code, colon != NULL ? colon + 1 :
			    e->fcode, sizeof(r->status.code) - 1);
		}
		if (!e->dmsg && r->faultstring != NULL)
			r->status.message = xstrdup(r->faultstring);
		break;
	}
}

static void
env_unmatched(struct xr *x, unsigned parent, void *arg)
{
	struct penv	*e = arg;

	if (parent == XR_DOC) {
		xr_fail(x, "not a SOAP 1.1 envelope");
		return;
	}
	e->payload = true;
	xr_fail(x, "unexpected Body element %.64s (want %s)", xr_name(x),
	    e->want != NULL ? e->want : "an EWS message");
}

static void
env_init(struct penv *e, struct ews_response *r, const char *want)
{
	memset(e, 0, sizeof *e);
	e->r = r;
	e->want = want;
}

static void
env_done(struct penv *e)
{
	free(e->fcode);
	e->fcode = NULL;
}

/* ---- any operation: the status of its messages --------------------- */

enum {
	G_MSGS = R_OP_FIRST,	/* ResponseMessages */
	G_MSG,			/* any child of it */
	G_MSG_ST,
	G_RMSG = G_MSG_ST + ST_ROWS,	/* a bare ResponseMessage */
	G_RMSG_ST,
	G_ROWS = G_RMSG_ST + ST_ROWS
};

struct rd_generic {
	struct penv		 env;
	bool			 msgs;
	bool			 rmsg;
	struct ews_status	 st;		/* of a G_MSG */
	struct ews_status	 rst;		/* of the G_RMSG */
};

static void
generic_start(struct xr *x, unsigned row, void *arg)
{
	struct rd_generic	*g = arg;

	if (row <= R_OP) {
		env_start(x, row, &g->env);
		return;
	}
	switch (row) {
	case G_MSGS:
		g->msgs = true;
		break;
	case G_MSG:
		status_begin(x, &g->env, &g->st);
		break;
	case G_RMSG:
		g->rmsg = true;
		status_begin(x, &g->env, &g->rst);
		break;
	case G_MSG_ST + ST_VALUE:
	case G_RMSG_ST + ST_VALUE:
		status_start(x, &g->env, ST_VALUE);
		break;
	}
}

static void
generic_end(struct xr *x, unsigned row, const char *text, void *arg)
{
	struct rd_generic	*g = arg;
	struct ews_response	*r = g->env.r;

	if (row >= G_MSG_ST && row < G_MSG_ST + ST_ROWS)
		status_end(&g->env, row - G_MSG_ST, text);
	else if (row >= G_RMSG_ST && row < G_RMSG_ST + ST_ROWS)
		status_end(&g->env, row - G_RMSG_ST, text);
	else if (row == G_MSG) {
		note_status(r, &g->st);
		ews_status_free(&g->st);
	} else if (row == R_OP) {
		/* A bare ResponseMessage counts only without the list. */
		if (!g->msgs && g->rmsg)
			note_status(r, &g->rst);
		if (r->status.class == EWS_CLASS_NONE)
			xr_fail(x, "%s without a response message", xr_name(x));
	} else if (row < R_OP)
		env_end(x, row, text, &g->env);
}

static const struct xr_shape generic_any_rows[G_ROWS] = {
	ENVELOPE_ROWS(XR_NS_M, NULL),
	[G_MSGS] = { R_OP, XR_NS_EWS, 0, "ResponseMessages" },
	[G_MSG] = { G_MSGS, XR_NS_ANY, XR_EACH, NULL },
	STATUS_ROWS(G_MSG_ST, G_MSG),
	[G_RMSG] = { R_OP, XR_NS_EWS, 0, "ResponseMessage" },
	STATUS_ROWS(G_RMSG_ST, G_RMSG),
};

static const struct xr_shape generic_unsubscribe_rows[G_ROWS] = {
	ENVELOPE_ROWS(XR_NS_M, "UnsubscribeResponse"),
	[G_MSGS] = { R_OP, XR_NS_EWS, 0, "ResponseMessages" },
	[G_MSG] = { G_MSGS, XR_NS_ANY, XR_EACH, NULL },
	STATUS_ROWS(G_MSG_ST, G_MSG),
	[G_RMSG] = { R_OP, XR_NS_EWS, 0, "ResponseMessage" },
	STATUS_ROWS(G_RMSG_ST, G_RMSG),
};

static const struct xr_parser generic_any = {
	generic_any_rows, G_ROWS, generic_start, generic_end, env_unmatched
};
static const struct xr_parser generic_unsubscribe = {
	generic_unsubscribe_rows, G_ROWS, generic_start, generic_end,
	env_unmatched
};

static int
read_generic(const struct xr_parser *p, const char *want, const char *d,
    size_t len, struct ews_response *out, char **cause)
{
	struct rd_generic	 g;
	int			 rc;

	memset(out, 0, sizeof(*out));
	memset(&g, 0, sizeof g);
	env_init(&g.env, out, want);
	rc = xr_read(p, &g, d, len, cause);
	env_done(&g.env);
	ews_status_free(&g.st);
	ews_status_free(&g.rst);
	if (rc == -2) {
		ews_response_free(out);
		memset(out, 0, sizeof(*out));
	}
	return (rc == 0 ? 0 : -1);
}

/* ---- Subscribe ----------------------------------------------------- */

enum {
	S_MSGS = R_OP_FIRST,
	S_MSG,			/* SubscribeResponseMessage */
	S_MSG_ST,
	S_SID = S_MSG_ST + ST_ROWS,
	S_WATERMARK,
	S_ROWS
};

struct rd_subscribe {
	struct penv		 env;
	struct ews_subscribe	*out;
	bool			 msg;
	struct ews_status	 st;
};

static void
subscribe_start(struct xr *x, unsigned row, void *arg)
{
	struct rd_subscribe	*s = arg;

	if (row <= R_OP)
		env_start(x, row, &s->env);
	else if (row == S_MSG) {
		s->msg = true;
		status_begin(x, &s->env, &s->st);
	} else if (row == S_MSG_ST + ST_VALUE)
		status_start(x, &s->env, ST_VALUE);
}

static void
subscribe_end(struct xr *x, unsigned row, const char *text, void *arg)
{
	struct rd_subscribe	*s = arg;
	struct ews_subscribe	*out = s->out;

	if (row >= S_MSG_ST && row < S_MSG_ST + ST_ROWS) {
		status_end(&s->env, row - S_MSG_ST, text);
		return;
	}
	switch (row) {
	case S_SID:
		out->subscription_id = xstrdup(text);
		break;
	case S_WATERMARK:
		out->watermark = xstrdup(text);
		break;
	case S_MSG:
		note_status(&out->r, &s->st);
		ews_status_free(&s->st);
		if (out->r.status.class != EWS_CLASS_ERROR &&
		    (out->subscription_id == NULL ||
		    *out->subscription_id == '\0'))
			xr_fail(x, "SubscribeResponseMessage without "
			    "SubscriptionId");
		break;
	case R_OP:
		if (!s->msg)
			xr_fail(x, "SubscribeResponse without "
			    "SubscribeResponseMessage");
		break;
	default:
		if (row < R_OP)
			env_end(x, row, text, &s->env);
		break;
	}
}

static const struct xr_shape subscribe_rows[S_ROWS] = {
	ENVELOPE_ROWS(XR_NS_M, "SubscribeResponse"),
	[S_MSGS] = { R_OP, XR_NS_EWS, 0, "ResponseMessages" },
	[S_MSG] = { S_MSGS, XR_NS_EWS, 0, "SubscribeResponseMessage" },
	STATUS_ROWS(S_MSG_ST, S_MSG),
	[S_SID] = { S_MSG, XR_NS_EWS, XR_TEXT, "SubscriptionId" },
	[S_WATERMARK] = { S_MSG, XR_NS_EWS, XR_TEXT, "Watermark" },
};

static const struct xr_parser subscribe_parser = {
	subscribe_rows, S_ROWS, subscribe_start, subscribe_end, env_unmatched
};

/* ---- notifications ------------------------------------------------- */

/* A m:Notification's children, below row parent, from row at. */
enum {
	NT_SID, NT_PREVIOUS, NT_MORE, NT_EVENT, EV_WATERMARK, EV_TIMESTAMP,
	EV_ITEM, EV_FOLDER, EV_PARENT, EV_OLD_ITEM, EV_OLD_FOLDER,
	EV_OLD_PARENT, NT_ROWS
};
#define NOTIFICATION_ROWS(at, parent)					\
	[(at) + NT_SID] = { parent, XR_NS_EWS, XR_TEXT, "SubscriptionId" }, \
	[(at) + NT_PREVIOUS] = { parent, XR_NS_EWS, XR_TEXT,		\
	    "PreviousWatermark" },					\
	[(at) + NT_MORE] = { parent, XR_NS_EWS, XR_TEXT, "MoreEvents" }, \
	/* Every other child: an event if its name says so. */		\
	[(at) + NT_EVENT] = { parent, XR_NS_EWS, XR_EACH, NULL },	\
	[(at) + EV_WATERMARK] = { (at) + NT_EVENT, XR_NS_EWS, XR_TEXT,	\
	    "Watermark" },						\
	[(at) + EV_TIMESTAMP] = { (at) + NT_EVENT, XR_NS_EWS, XR_TEXT,	\
	    "TimeStamp" },						\
	[(at) + EV_ITEM] = { (at) + NT_EVENT, XR_NS_EWS, 0, "ItemId" },	\
	[(at) + EV_FOLDER] = { (at) + NT_EVENT, XR_NS_EWS, 0, "FolderId" }, \
	[(at) + EV_PARENT] = { (at) + NT_EVENT, XR_NS_EWS, 0,		\
	    "ParentFolderId" },						\
	[(at) + EV_OLD_ITEM] = { (at) + NT_EVENT, XR_NS_EWS, 0,	\
	    "OldItemId" },						\
	[(at) + EV_OLD_FOLDER] = { (at) + NT_EVENT, XR_NS_EWS, 0,	\
	    "OldFolderId" },						\
	[(at) + EV_OLD_PARENT] = { (at) + NT_EVENT, XR_NS_EWS, 0,	\
	    "OldParentFolderId" }

/* One notification being read. */
struct rd_notif {
	struct ews_notification	*nt;
	size_t			 cap;		/* of nt->events */
	bool			 sid;
	/*
	 * An event's failure: reported when the notification ends, after
	 * its own check, which a tree parser makes first.
	 */
	char			*pending;
	struct ews_event	*ev;		/* NULL: not an event */
	struct rd_time		 ts;
	bool			 item, folder, old_item, old_folder;
	char			*item_id, *folder_id, *old_item_id;
	char			*old_folder_id;
};

static void
notif_clear_ids(struct rd_notif *n)
{
	free(n->item_id);
	free(n->folder_id);
	free(n->old_item_id);
	free(n->old_folder_id);
	n->item_id = n->folder_id = n->old_item_id = n->old_folder_id = NULL;
	n->item = n->folder = n->old_item = n->old_folder = false;
}

static void
notif_begin(struct rd_notif *n, struct ews_notification *nt)
{
	memset(nt, 0, sizeof(*nt));
	notif_clear_ids(n);
	free(n->pending);
	memset(n, 0, sizeof(*n));
	n->nt = nt;
}

static void
notif_done(struct rd_notif *n)
{
	notif_clear_ids(n);
	free(n->pending);
	n->pending = NULL;
}

static void
notif_defer(struct rd_notif *n, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
notif_defer(struct rd_notif *n, const char *fmt, ...)
{
	va_list	 ap;

	if (n->pending == NULL) {
		va_start(ap, fmt);
		xvasprintf(&n->pending, fmt, ap);
		va_end(ap);
	}
}

static void
event_finish(struct xr *x, struct rd_notif *n)
{
	struct ews_event	*ev = n->ev;
	const char		*name = event_names[ev->type];

	n->ev = NULL;
	if (ev->type == EWS_EV_STATUS) {
		/* A StatusEvent carries a watermark and nothing else. */
		free(ev->parent_id);
		free(ev->old_parent_id);
		ev->parent_id = ev->old_parent_id = NULL;
		goto out;
	}
	if (!n->ts.seen) {
		notif_defer(n, "%s without TimeStamp", xr_name(x));
		goto out;
	}
	if (!n->ts.ok) {
		notif_defer(n, "TimeStamp: bad dateTime '%.40s'", n->ts.bad);
		goto out;
	}
	ev->timestamp = n->ts.t;
	if (n->item) {
		ev->id = n->item_id;
		n->item_id = NULL;
	} else if (n->folder) {
		ev->folder = true;
		ev->id = n->folder_id;
		n->folder_id = NULL;
	}
	if (ev->id == NULL) {
		notif_defer(n, "%s without ItemId or FolderId", name);
		goto out;
	}
	if (ev->type == EWS_EV_MOVED || ev->type == EWS_EV_COPIED) {
		if (n->old_item) {
			ev->old_id = n->old_item_id;
			n->old_item_id = NULL;
		} else if (n->old_folder) {
			ev->old_id = n->old_folder_id;
			n->old_folder_id = NULL;
		}
	} else {
		free(ev->old_parent_id);
		ev->old_parent_id = NULL;
	}
out:
	notif_clear_ids(n);
}

static void
notif_start(struct xr *x, struct rd_notif *n, unsigned k)
{
	struct ews_notification	*nt = n->nt;
	const char		*name;
	unsigned		 t;

	if (k == NT_EVENT) {
		n->ev = NULL;
		if (n->pending != NULL)
			return;		/* reading stops at a bad event */
		name = xr_name(x);
		for (t = 0; t <= EWS_EV_STATUS; t++)
			if (strcmp(name, event_names[t]) == 0)
				break;
		if (t > EWS_EV_STATUS)
			return;		/* a future event type */
		nt->events = grow(nt->events, nt->nevents, &n->cap,
		    sizeof(*nt->events));
		n->ev = &nt->events[nt->nevents++];
		n->ev->type = (enum ews_event_type)t;
		memset(&n->ts, 0, sizeof n->ts);
		notif_clear_ids(n);
		return;
	}
	if (n->ev == NULL)
		return;
	switch (k) {
	case EV_ITEM:
		n->item = true;
		n->item_id = xr_attr_dup(x, "Id");
		break;
	case EV_FOLDER:
		n->folder = true;
		n->folder_id = xr_attr_dup(x, "Id");
		break;
	case EV_PARENT:
		n->ev->parent_id = xr_attr_dup(x, "Id");
		break;
	case EV_OLD_ITEM:
		n->old_item = true;
		n->old_item_id = xr_attr_dup(x, "Id");
		break;
	case EV_OLD_FOLDER:
		n->old_folder = true;
		n->old_folder_id = xr_attr_dup(x, "Id");
		break;
	case EV_OLD_PARENT:
		n->ev->old_parent_id = xr_attr_dup(x, "Id");
		break;
	}
}

static void
notif_end(struct xr *x, struct rd_notif *n, unsigned k, const char *text)
{
	struct ews_notification	*nt = n->nt;

	switch (k) {
	case NT_SID:
		nt->subscription_id = xstrdup(text);
		n->sid = true;
		return;
	case NT_PREVIOUS:
		nt->previous_watermark = xstrdup(text);
		return;
	case NT_MORE:
		nt->more_events = text_bool(text);
		return;
	}
	if (n->ev == NULL)
		return;
	switch (k) {
	case NT_EVENT:
		event_finish(x, n);
		break;
	case EV_WATERMARK:
		n->ev->watermark = xstrdup(text);
		break;
	case EV_TIMESTAMP:
		time_read(&n->ts, text);
		break;
	}
}

/* The m:Notification element ended. */
static void
notif_finish(struct xr *x, struct rd_notif *n)
{
	if (!n->sid)
		xr_fail(x, "Notification without SubscriptionId");
	else if (n->pending != NULL)
		xr_fail(x, "%s", n->pending);
	notif_done(n);
}

/* GetEvents and SendNotification: ResponseMessages of one shape. */
enum {
	N_MSGS = R_OP_FIRST,
	N_MSG,
	N_MSG_ST,
	N_NOTIF = N_MSG_ST + ST_ROWS,
	N_NT,
	N_ROWS = N_NT + NT_ROWS
};

struct rd_notifications {
	struct penv		 env;
	struct ews_notifications *out;
	size_t			 cap;
	bool			 msgs;
	struct ews_notif_msg	*m;
	struct rd_notif		 n;
};

static void
notifications_start(struct xr *x, unsigned row, void *arg)
{
	struct rd_notifications	*s = arg;
	struct ews_notifications *out = s->out;

	if (row <= R_OP) {
		env_start(x, row, &s->env);
		return;
	}
	if (row >= N_NT) {
		notif_start(x, &s->n, row - N_NT);
		return;
	}
	switch (row) {
	case N_MSGS:
		s->msgs = true;
		break;
	case N_MSG:
		out->msgs = grow(out->msgs, out->nmsgs, &s->cap,
		    sizeof(*out->msgs));
		s->m = &out->msgs[out->nmsgs++];
		status_begin(x, &s->env, &s->m->status);
		break;
	case N_MSG_ST + ST_VALUE:
		status_start(x, &s->env, ST_VALUE);
		break;
	case N_NOTIF:
		s->m->has_notification = true;
		notif_begin(&s->n, &s->m->notification);
		break;
	}
}

static void
notifications_end(struct xr *x, unsigned row, const char *text, void *arg)
{
	struct rd_notifications	*s = arg;

	if (row < R_OP) {
		env_end(x, row, text, &s->env);
		return;
	}
	if (row >= N_NT) {
		notif_end(x, &s->n, row - N_NT, text);
		return;
	}
	if (row >= N_MSG_ST && row < N_MSG_ST + ST_ROWS) {
		status_end(&s->env, row - N_MSG_ST, text);
		return;
	}
	switch (row) {
	case N_NOTIF:
		notif_finish(x, &s->n);
		break;
	case N_MSG:
		note_status(&s->out->r, &s->m->status);
		if (!s->m->has_notification &&
		    s->m->status.class == EWS_CLASS_SUCCESS)
			xr_fail(x, "%s without Notification", xr_name(x));
		break;
	case R_OP:
		if (!s->msgs)
			xr_fail(x, "%s without ResponseMessages", xr_name(x));
		break;
	}
}

#define NOTIFICATIONS_ROWS(op)						\
	ENVELOPE_ROWS(XR_NS_M, op),					\
	[N_MSGS] = { R_OP, XR_NS_EWS, 0, "ResponseMessages" },		\
	[N_MSG] = { N_MSGS, XR_NS_ANY, XR_EACH, NULL },			\
	STATUS_ROWS(N_MSG_ST, N_MSG),					\
	[N_NOTIF] = { N_MSG, XR_NS_EWS, 0, "Notification" },		\
	NOTIFICATION_ROWS(N_NT, N_NOTIF)

static const struct xr_shape get_events_rows[N_ROWS] = {
	NOTIFICATIONS_ROWS("GetEventsResponse")
};
static const struct xr_shape send_notification_rows[N_ROWS] = {
	NOTIFICATIONS_ROWS("SendNotification")
};
static const struct xr_parser get_events_parser = {
	get_events_rows, N_ROWS, notifications_start, notifications_end,
	env_unmatched
};
static const struct xr_parser send_notification_parser = {
	send_notification_rows, N_ROWS, notifications_start,
	notifications_end, env_unmatched
};

static int
read_notifications(const struct xr_parser *p, const char *want,
    const char *d, size_t len, struct ews_notifications *out, char **cause)
{
	struct rd_notifications	 s;
	int			 rc;

	memset(out, 0, sizeof(*out));
	memset(&s, 0, sizeof s);
	env_init(&s.env, &out->r, want);
	s.out = out;
	rc = xr_read(p, &s, d, len, cause);
	env_done(&s.env);
	notif_done(&s.n);
	if (rc == -2) {
		ews_notifications_free(out);
		memset(out, 0, sizeof(*out));
	}
	return (rc == 0 ? 0 : -1);
}

/* ---- GetStreamingEvents -------------------------------------------- */

enum {
	T_MSGS = R_OP_FIRST,
	T_MSG,
	T_MSG_ST,
	T_NOTIFS = T_MSG_ST + ST_ROWS,
	T_NOTIF,
	T_NT,
	T_ERRORS = T_NT + NT_ROWS,
	T_ERROR_ID,
	T_CONN,
	T_ROWS
};

struct rd_streaming {
	struct penv		 env;
	struct ews_streaming	*out;
	size_t			 cap, ncap, icap;
	bool			 msgs;
	struct ews_stream_msg	*m;
	struct rd_notif		 n;
};

static void
streaming_start(struct xr *x, unsigned row, void *arg)
{
	struct rd_streaming	*s = arg;
	struct ews_streaming	*out = s->out;
	struct ews_stream_msg	*m = s->m;

	if (row <= R_OP) {
		env_start(x, row, &s->env);
		return;
	}
	if (row >= T_NT && row < T_NT + NT_ROWS) {
		notif_start(x, &s->n, row - T_NT);
		return;
	}
	switch (row) {
	case T_MSGS:
		s->msgs = true;
		break;
	case T_MSG:
		out->msgs = grow(out->msgs, out->nmsgs, &s->cap,
		    sizeof(*out->msgs));
		s->m = &out->msgs[out->nmsgs++];
		s->ncap = s->icap = 0;
		status_begin(x, &s->env, &s->m->status);
		break;
	case T_MSG_ST + ST_VALUE:
		status_start(x, &s->env, ST_VALUE);
		break;
	case T_NOTIF:
		m->notifications = grow(m->notifications, m->nnotifications,
		    &s->ncap, sizeof(*m->notifications));
		notif_begin(&s->n, &m->notifications[m->nnotifications++]);
		break;
	}
}

static void
streaming_end(struct xr *x, unsigned row, const char *text, void *arg)
{
	struct rd_streaming	*s = arg;
	struct ews_stream_msg	*m = s->m;

	if (row < R_OP) {
		env_end(x, row, text, &s->env);
		return;
	}
	if (row >= T_NT && row < T_NT + NT_ROWS) {
		notif_end(x, &s->n, row - T_NT, text);
		return;
	}
	if (row >= T_MSG_ST && row < T_MSG_ST + ST_ROWS) {
		status_end(&s->env, row - T_MSG_ST, text);
		return;
	}
	switch (row) {
	case T_NOTIF:
		notif_finish(x, &s->n);
		break;
	case T_ERROR_ID:
		m->error_ids = grow(m->error_ids, m->nerror_ids, &s->icap,
		    sizeof(*m->error_ids));
		m->error_ids[m->nerror_ids++] = xstrdup(text);
		break;
	case T_CONN:
		if (strcmp(text, "OK") == 0)
			m->conn = EWS_CONN_OK;
		else if (strcmp(text, "Closed") == 0)
			m->conn = EWS_CONN_CLOSED;
		break;
	case T_MSG:
		note_status(&s->out->r, &m->status);
		break;
	case R_OP:
		if (!s->msgs)
			xr_fail(x, "GetStreamingEventsResponse without "
			    "ResponseMessages");
		break;
	}
}

static const struct xr_shape streaming_rows[T_ROWS] = {
	ENVELOPE_ROWS(XR_NS_M, "GetStreamingEventsResponse"),
	[T_MSGS] = { R_OP, XR_NS_EWS, 0, "ResponseMessages" },
	[T_MSG] = { T_MSGS, XR_NS_ANY, XR_EACH, NULL },
	STATUS_ROWS(T_MSG_ST, T_MSG),
	[T_NOTIFS] = { T_MSG, XR_NS_EWS, 0, "Notifications" },
	[T_NOTIF] = { T_NOTIFS, XR_NS_EWS, XR_EACH, "Notification" },
	NOTIFICATION_ROWS(T_NT, T_NOTIF),
	[T_ERRORS] = { T_MSG, XR_NS_EWS, 0, "ErrorSubscriptionIds" },
	[T_ERROR_ID] = { T_ERRORS, XR_NS_EWS, XR_EACH | XR_TEXT,
	    "SubscriptionId" },
	[T_CONN] = { T_MSG, XR_NS_EWS, XR_TEXT, "ConnectionStatus" },
};

static const struct xr_parser streaming_parser = {
	streaming_rows, T_ROWS, streaming_start, streaming_end, env_unmatched
};

/* ---- calendar items ------------------------------------------------- */

/* A t:CalendarItem's children, below row parent, from row at. */
enum {
	CI_ID, CI_SUBJECT, CI_START, CI_END, CI_FB, CI_SENSITIVITY, CI_TYPE,
	CI_ALL_DAY, CI_CANCELLED, CI_ROWS
};
#define CAL_ITEM_ROWS(at, parent)					\
	[(at) + CI_ID] = { parent, XR_NS_EWS, 0, "ItemId" },		\
	[(at) + CI_SUBJECT] = { parent, XR_NS_EWS, XR_TEXT, "Subject" }, \
	[(at) + CI_START] = { parent, XR_NS_EWS, XR_TEXT, "Start" },	\
	[(at) + CI_END] = { parent, XR_NS_EWS, XR_TEXT, "End" },	\
	[(at) + CI_FB] = { parent, XR_NS_EWS, XR_TEXT,			\
	    "LegacyFreeBusyStatus" },					\
	[(at) + CI_SENSITIVITY] = { parent, XR_NS_EWS, XR_TEXT,	\
	    "Sensitivity" },						\
	[(at) + CI_TYPE] = { parent, XR_NS_EWS, XR_TEXT,		\
	    "CalendarItemType" },					\
	[(at) + CI_ALL_DAY] = { parent, XR_NS_EWS, XR_TEXT,		\
	    "IsAllDayEvent" },						\
	[(at) + CI_CANCELLED] = { parent, XR_NS_EWS, XR_TEXT, "IsCancelled" }

struct rd_item {
	struct ews_cal_item	*it;
	bool			 id;
	struct rd_time		 start, end;
};

static void
item_begin(struct rd_item *ri, struct ews_cal_item *it)
{
	memset(ri, 0, sizeof(*ri));
	memset(it, 0, sizeof(*it));
	it->fb = EWS_FB_BUSY;
	ri->it = it;
}

static void
item_start(struct xr *x, struct rd_item *ri, unsigned k)
{
	if (k == CI_ID) {
		ri->id = true;
		ri->it->id = xr_attr_dup(x, "Id");
		ri->it->change_key = xr_attr_dup(x, "ChangeKey");
	}
}

static void
item_end(struct rd_item *ri, unsigned k, const char *text)
{
	static const char *const sens[] = {
		"Normal", "Personal", "Private", "Confidential"
	};
	static const char *const types[] = {
		"Single", "Occurrence", "Exception", "RecurringMaster"
	};
	struct ews_cal_item	*it = ri->it;
	unsigned		 i;

	switch (k) {
	case CI_SUBJECT:
		it->subject = xstrdup(text);
		break;
	case CI_START:
		time_read(&ri->start, text);
		break;
	case CI_END:
		time_read(&ri->end, text);
		break;
	case CI_FB:
		it->fb = text_fb(text);
		break;
	case CI_SENSITIVITY:
		for (i = 0; i < 4; i++)
			if (strcmp(text, sens[i]) == 0)
				it->sensitivity = (enum ews_sensitivity)i;
		break;
	case CI_TYPE:
		for (i = 0; i < 4; i++)
			if (strcmp(text, types[i]) == 0)
				it->type = (enum ews_item_type)i;
		break;
	case CI_ALL_DAY:
		it->all_day = text_bool(text);
		break;
	case CI_CANCELLED:
		it->cancelled = text_bool(text);
		break;
	}
}

/* The t:CalendarItem element ended. */
static void
item_finish(struct xr *x, struct rd_item *ri)
{
	if (!ri->id || ri->it->id == NULL) {
		xr_fail(x, "CalendarItem without ItemId");
		return;
	}
	if (time_take(x, &ri->start, xr_name(x), "Start",
	    &ri->it->start) == -1)
		return;
	time_take(x, &ri->end, xr_name(x), "End", &ri->it->end);
}

/* ---- FindItem with a CalendarView ----------------------------------- */

enum {
	F_MSGS = R_OP_FIRST,
	F_MSG,			/* FindItemResponseMessage */
	F_MSG_ST,
	F_ROOT = F_MSG_ST + ST_ROWS,
	F_ITEMS,
	F_ITEM,
	F_CI,
	F_ROWS = F_CI + CI_ROWS
};

struct rd_find {
	struct penv		 env;
	struct ews_calendar	*out;
	size_t			 cap;
	bool			 msg;
	bool			 root;
	struct ews_status	 st;
	struct rd_item		 item;
};

static void
find_start(struct xr *x, unsigned row, void *arg)
{
	struct rd_find		*s = arg;
	struct ews_calendar	*out = s->out;
	const char		*v;
	int64_t			 total;

	if (row <= R_OP) {
		env_start(x, row, &s->env);
		return;
	}
	if (row >= F_CI) {
		item_start(x, &s->item, row - F_CI);
		return;
	}
	switch (row) {
	case F_MSG:
		s->msg = true;
		status_begin(x, &s->env, &s->st);
		break;
	case F_MSG_ST + ST_VALUE:
		status_start(x, &s->env, ST_VALUE);
		break;
	case F_ROOT:
		s->root = true;
		total = parse_int(xr_attr(x, "TotalItemsInView", NULL), 0);
		out->total_in_view = total < 0 ? 0 : total > UINT_MAX ?
		    UINT_MAX : (unsigned)total;
		v = xr_attr(x, "IncludesLastItemInRange", NULL);
		out->includes_last = v == NULL || strcmp(v, "false") != 0;
		break;
	case F_ITEM:
		out->items = grow(out->items, out->nitems, &s->cap,
		    sizeof(*out->items));
		item_begin(&s->item, &out->items[out->nitems++]);
		break;
	}
}

static void
find_end(struct xr *x, unsigned row, const char *text, void *arg)
{
	struct rd_find		*s = arg;
	struct ews_calendar	*out = s->out;

	if (row < R_OP) {
		env_end(x, row, text, &s->env);
		return;
	}
	if (row >= F_CI) {
		item_end(&s->item, row - F_CI, text);
		return;
	}
	if (row >= F_MSG_ST && row < F_MSG_ST + ST_ROWS) {
		status_end(&s->env, row - F_MSG_ST, text);
		return;
	}
	switch (row) {
	case F_ITEM:
		item_finish(x, &s->item);
		break;
	case F_MSG:
		note_status(&out->r, &s->st);
		ews_status_free(&s->st);
		if (!s->root && out->r.status.class != EWS_CLASS_ERROR)
			xr_fail(x, "FindItemResponseMessage without "
			    "RootFolder");
		break;
	case R_OP:
		if (!s->msg)
			xr_fail(x, "FindItemResponse without "
			    "FindItemResponseMessage");
		break;
	}
}

static const struct xr_shape find_rows[F_ROWS] = {
	ENVELOPE_ROWS(XR_NS_M, "FindItemResponse"),
	[F_MSGS] = { R_OP, XR_NS_EWS, 0, "ResponseMessages" },
	[F_MSG] = { F_MSGS, XR_NS_EWS, 0, "FindItemResponseMessage" },
	STATUS_ROWS(F_MSG_ST, F_MSG),
	[F_ROOT] = { F_MSG, XR_NS_EWS, 0, "RootFolder" },
	[F_ITEMS] = { F_ROOT, XR_NS_EWS, 0, "Items" },
	[F_ITEM] = { F_ITEMS, XR_NS_EWS, XR_EACH, "CalendarItem" },
	CAL_ITEM_ROWS(F_CI, F_ITEM),
};

static const struct xr_parser find_parser = {
	find_rows, F_ROWS, find_start, find_end, env_unmatched
};

/* ---- GetItem ------------------------------------------------------- */

enum {
	I_MSGS = R_OP_FIRST,
	I_MSG,
	I_MSG_ST,
	I_ITEMS = I_MSG_ST + ST_ROWS,
	I_ITEM,
	I_CI,
	I_ROWS = I_CI + CI_ROWS
};

struct rd_get_item {
	struct penv		 env;
	struct ews_items	*out;
	size_t			 cap;
	bool			 msgs;
	struct ews_item_msg	*m;
	struct rd_item		 item;
};

static void
get_item_start(struct xr *x, unsigned row, void *arg)
{
	struct rd_get_item	*s = arg;
	struct ews_items	*out = s->out;

	if (row <= R_OP) {
		env_start(x, row, &s->env);
		return;
	}
	if (row >= I_CI) {
		item_start(x, &s->item, row - I_CI);
		return;
	}
	switch (row) {
	case I_MSGS:
		s->msgs = true;
		break;
	case I_MSG:
		out->msgs = grow(out->msgs, out->nmsgs, &s->cap,
		    sizeof(*out->msgs));
		s->m = &out->msgs[out->nmsgs++];
		status_begin(x, &s->env, &s->m->status);
		break;
	case I_MSG_ST + ST_VALUE:
		status_start(x, &s->env, ST_VALUE);
		break;
	case I_ITEM:
		s->m->has_item = true;
		item_begin(&s->item, &s->m->item);
		break;
	}
}

static void
get_item_end(struct xr *x, unsigned row, const char *text, void *arg)
{
	struct rd_get_item	*s = arg;

	if (row < R_OP) {
		env_end(x, row, text, &s->env);
		return;
	}
	if (row >= I_CI) {
		item_end(&s->item, row - I_CI, text);
		return;
	}
	if (row >= I_MSG_ST && row < I_MSG_ST + ST_ROWS) {
		status_end(&s->env, row - I_MSG_ST, text);
		return;
	}
	switch (row) {
	case I_ITEM:
		item_finish(x, &s->item);
		break;
	case I_MSG:
		note_status(&s->out->r, &s->m->status);
		break;
	case R_OP:
		if (!s->msgs)
			xr_fail(x, "GetItemResponse without ResponseMessages");
		break;
	}
}

static const struct xr_shape get_item_rows[I_ROWS] = {
	ENVELOPE_ROWS(XR_NS_M, "GetItemResponse"),
	[I_MSGS] = { R_OP, XR_NS_EWS, 0, "ResponseMessages" },
	[I_MSG] = { I_MSGS, XR_NS_ANY, XR_EACH, NULL },
	STATUS_ROWS(I_MSG_ST, I_MSG),
	[I_ITEMS] = { I_MSG, XR_NS_EWS, 0, "Items" },
	[I_ITEM] = { I_ITEMS, XR_NS_EWS, 0, "CalendarItem" },
	CAL_ITEM_ROWS(I_CI, I_ITEM),
};

static const struct xr_parser get_item_parser = {
	get_item_rows, I_ROWS, get_item_start, get_item_end, env_unmatched
};

/* ---- GetUserAvailability ------------------------------------------- */

enum {
	A_ARRAY = R_OP_FIRST,	/* FreeBusyResponseArray */
	A_MAILBOX,		/* FreeBusyResponse */
	A_MSG,			/* its ResponseMessage */
	A_MSG_ST,
	A_VIEW = A_MSG_ST + ST_ROWS,
	A_MERGED,
	A_EVENTS,
	A_EVENT,
	A_START,
	A_END,
	A_BUSY,
	A_ROWS
};

struct rd_availability {
	struct penv		 env;
	struct ews_availability	*out;
	size_t			 cap, ecap;
	bool			 array;
	struct ews_fb_mailbox	*mb;
	struct ews_fb_event	*ev;
	struct rd_time		 start, end;
};

static void
availability_start(struct xr *x, unsigned row, void *arg)
{
	struct rd_availability	*s = arg;
	struct ews_availability	*out = s->out;
	struct ews_fb_mailbox	*mb = s->mb;

	if (row <= R_OP) {
		env_start(x, row, &s->env);
		return;
	}
	switch (row) {
	case A_ARRAY:
		s->array = true;
		break;
	case A_MAILBOX:
		out->mailboxes = grow(out->mailboxes, out->nmailboxes, &s->cap,
		    sizeof(*out->mailboxes));
		s->mb = &out->mailboxes[out->nmailboxes++];
		s->ecap = 0;
		break;
	case A_MSG:
		status_begin(x, &s->env, &mb->status);
		break;
	case A_MSG_ST + ST_VALUE:
		status_start(x, &s->env, ST_VALUE);
		break;
	case A_EVENT:
		mb->events = grow(mb->events, mb->nevents, &s->ecap,
		    sizeof(*mb->events));
		s->ev = &mb->events[mb->nevents++];
		s->ev->busy = EWS_FB_BUSY;
		memset(&s->start, 0, sizeof s->start);
		memset(&s->end, 0, sizeof s->end);
		break;
	}
}

static void
availability_end(struct xr *x, unsigned row, const char *text, void *arg)
{
	struct rd_availability	*s = arg;

	if (row < R_OP) {
		env_end(x, row, text, &s->env);
		return;
	}
	if (row >= A_MSG_ST && row < A_MSG_ST + ST_ROWS) {
		status_end(&s->env, row - A_MSG_ST, text);
		return;
	}
	switch (row) {
	case A_MERGED:
		s->mb->merged = xstrdup(text);
		break;
	case A_START:
		time_read(&s->start, text);
		break;
	case A_END:
		time_read(&s->end, text);
		break;
	case A_BUSY:
		s->ev->busy = text_fb(text);
		break;
	case A_EVENT:
		if (time_take(x, &s->start, xr_name(x), "StartTime",
		    &s->ev->start) == 0)
			time_take(x, &s->end, xr_name(x), "EndTime",
			    &s->ev->end);
		break;
	case A_MAILBOX:
		note_status(&s->out->r, &s->mb->status);
		break;
	case R_OP:
		if (!s->array)
			xr_fail(x, "GetUserAvailabilityResponse without "
			    "FreeBusyResponseArray");
		break;
	}
}

static const struct xr_shape availability_rows[A_ROWS] = {
	ENVELOPE_ROWS(XR_NS_M, "GetUserAvailabilityResponse"),
	[A_ARRAY] = { R_OP, XR_NS_EWS, 0, "FreeBusyResponseArray" },
	[A_MAILBOX] = { A_ARRAY, XR_NS_EWS, XR_EACH, "FreeBusyResponse" },
	[A_MSG] = { A_MAILBOX, XR_NS_EWS, 0, "ResponseMessage" },
	STATUS_ROWS(A_MSG_ST, A_MSG),
	[A_VIEW] = { A_MAILBOX, XR_NS_EWS, 0, "FreeBusyView" },
	[A_MERGED] = { A_VIEW, XR_NS_EWS, XR_TEXT, "MergedFreeBusy" },
	[A_EVENTS] = { A_VIEW, XR_NS_EWS, 0, "CalendarEventArray" },
	[A_EVENT] = { A_EVENTS, XR_NS_EWS, XR_EACH, "CalendarEvent" },
	[A_START] = { A_EVENT, XR_NS_EWS, XR_TEXT, "StartTime" },
	[A_END] = { A_EVENT, XR_NS_EWS, XR_TEXT, "EndTime" },
	[A_BUSY] = { A_EVENT, XR_NS_EWS, XR_TEXT, "BusyType" },
};

static const struct xr_parser availability_parser = {
	availability_rows, A_ROWS, availability_start, availability_end,
	env_unmatched
};

/* ---- GetUserOofSettings -------------------------------------------- */

enum {
	O_MSG = R_OP_FIRST,	/* ResponseMessage */
	O_MSG_ST,
	O_SETTINGS = O_MSG_ST + ST_ROWS,
	O_STATE,
	O_DURATION,
	O_START,
	O_END,
	O_ROWS
};

struct rd_oof {
	struct penv		 env;
	struct ews_oof		*out;
	bool			 msg, settings, state, duration;
	int			 value;		/* OofState, -1: unknown */
	struct ews_status	 st;
	struct rd_time		 start, end;
};

static void
oof_start(struct xr *x, unsigned row, void *arg)
{
	struct rd_oof	*s = arg;

	if (row <= R_OP) {
		env_start(x, row, &s->env);
		return;
	}
	switch (row) {
	case O_MSG:
		s->msg = true;
		status_begin(x, &s->env, &s->st);
		break;
	case O_MSG_ST + ST_VALUE:
		status_start(x, &s->env, ST_VALUE);
		break;
	case O_SETTINGS:
		s->settings = true;
		break;
	case O_DURATION:
		s->duration = true;
		break;
	}
}

/* Judged when the answer ends, in the order a tree parser checks. */
static void
oof_finish(struct xr *x, struct rd_oof *s)
{
	struct ews_oof	*out = s->out;

	if (!s->msg) {
		xr_fail(x, "GetUserOofSettingsResponse without "
		    "ResponseMessage");
		return;
	}
	note_status(&out->r, &s->st);
	if (!s->settings) {
		if (out->r.status.class != EWS_CLASS_ERROR)
			xr_fail(x, "GetUserOofSettingsResponse without "
			    "OofSettings");
		return;
	}
	if (!s->state) {
		xr_fail(x, "OofSettings without OofState");
		return;
	}
	if (s->value < 0) {
		xr_fail(x, "unknown OofState");
		return;
	}
	out->state = (enum ews_oof_state)s->value;
	if (s->duration) {
		if (time_take(x, &s->start, "Duration", "StartTime",
		    &out->start) == -1 || time_take(x, &s->end, "Duration",
		    "EndTime", &out->end) == -1)
			return;
		out->has_duration = true;
	}
}

static void
oof_end(struct xr *x, unsigned row, const char *text, void *arg)
{
	struct rd_oof	*s = arg;

	if (row < R_OP) {
		env_end(x, row, text, &s->env);
		return;
	}
	if (row >= O_MSG_ST && row < O_MSG_ST + ST_ROWS) {
		status_end(&s->env, row - O_MSG_ST, text);
		return;
	}
	switch (row) {
	case O_STATE:
		s->state = true;
		if (strcmp(text, "Enabled") == 0)
			s->value = EWS_OOF_ENABLED;
		else if (strcmp(text, "Scheduled") == 0)
			s->value = EWS_OOF_SCHEDULED;
		else if (strcmp(text, "Disabled") == 0)
			s->value = EWS_OOF_DISABLED;
		else
			s->value = -1;
		break;
	case O_START:
		time_read(&s->start, text);
		break;
	case O_END:
		time_read(&s->end, text);
		break;
	case R_OP:
		oof_finish(x, s);
		break;
	}
}

static const struct xr_shape oof_rows[O_ROWS] = {
	ENVELOPE_ROWS(XR_NS_M, "GetUserOofSettingsResponse"),
	[O_MSG] = { R_OP, XR_NS_EWS, 0, "ResponseMessage" },
	STATUS_ROWS(O_MSG_ST, O_MSG),
	[O_SETTINGS] = { R_OP, XR_NS_EWS, 0, "OofSettings" },
	[O_STATE] = { O_SETTINGS, XR_NS_EWS, XR_TEXT, "OofState" },
	[O_DURATION] = { O_SETTINGS, XR_NS_EWS, 0, "Duration" },
	[O_START] = { O_DURATION, XR_NS_EWS, XR_TEXT, "StartTime" },
	[O_END] = { O_DURATION, XR_NS_EWS, XR_TEXT, "EndTime" },
};

static const struct xr_parser oof_parser = {
	oof_rows, O_ROWS, oof_start, oof_end, env_unmatched
};

/* ---- Autodiscover GetUserSettings ---------------------------------- */

enum {
	U_RESPONSE = R_OP_FIRST,
	U_CODE,
	U_MESSAGE,
	U_USERS,
	U_USER,
	U_USER_CODE,
	U_USER_MESSAGE,
	U_REDIRECT,
	U_ERRORS,
	U_ERROR,
	U_ERROR_NAME,
	U_SETTINGS,
	U_SETTING,
	U_SETTING_NAME,
	U_SETTING_VALUE,
	U_ROWS
};

struct rd_user_settings {
	struct penv		 env;
	struct ews_user_settings *out;
	size_t			 cap;
	bool			 response, users;
	bool			 nil;		/* the element being read */
	struct ad_user		*u;
	enum ad_setting		 setting;	/* of the UserSetting(Error) */
	bool			 value;		/* it has a Value */
	bool			 value_nil;
	char			*value_text;
};

/* xsi:nil="true": the element stands for no value. */
static bool
ad_nil(struct xr *x)
{
	const char	*v;

	v = xr_attr(x, "nil", AD_NS_XSI);
	return (v != NULL && (strcmp(v, "true") == 0 ||
	    strcmp(v, "1") == 0));
}

/* Text of an optional element: NULL when nil or empty. */
static char *
ad_text(bool nil, const char *text)
{
	return (nil || *text == '\0' ? NULL : xstrdup(text));
}

static void
user_settings_start(struct xr *x, unsigned row, void *arg)
{
	struct rd_user_settings	*s = arg;
	struct ews_user_settings *out = s->out;

	if (row <= R_OP) {
		env_start(x, row, &s->env);
		return;
	}
	switch (row) {
	case U_RESPONSE:
		s->response = true;
		break;
	case U_MESSAGE:
	case U_USER_MESSAGE:
	case U_REDIRECT:
		s->nil = ad_nil(x);
		break;
	case U_USERS:
		s->users = true;
		break;
	case U_USER:
		out->users = grow(out->users, out->nusers, &s->cap,
		    sizeof(*out->users));
		s->u = &out->users[out->nusers++];
		break;
	case U_ERROR:
	case U_SETTING:
		s->setting = ad_setting_from_name("");
		s->value = s->value_nil = false;
		free(s->value_text);
		s->value_text = NULL;
		break;
	case U_SETTING_VALUE:
		s->value = true;
		s->value_nil = ad_nil(x);
		break;
	}
}

static void
user_settings_end(struct xr *x, unsigned row, const char *text, void *arg)
{
	struct rd_user_settings	*s = arg;
	struct ews_user_settings *out = s->out;
	struct ad_user		*u = s->u;

	if (row < R_OP) {
		env_end(x, row, text, &s->env);
		return;
	}
	switch (row) {
	case U_CODE:
		text_buf(text, out->r.status.code, sizeof(out->r.status.code));
		break;
	case U_MESSAGE:
		out->r.status.message = ad_text(s->nil, text);
		break;
	case U_RESPONSE:
		out->error = ad_error_from_code(out->r.status.code);
		out->r.status.class = out->error == AD_ERR_NONE ?
		    EWS_CLASS_SUCCESS : EWS_CLASS_ERROR;
		if (!s->users && out->error == AD_ERR_NONE)
			xr_fail(x, "Response without UserResponses");
		break;
	case U_USER_CODE:
		text_buf(text, u->code, sizeof(u->code));
		break;
	case U_USER_MESSAGE:
		u->message = ad_text(s->nil, text);
		break;
	case U_REDIRECT:
		u->redirect = ad_text(s->nil, text);
		break;
	case U_USER:
		u->error = ad_error_from_code(u->code);
		break;
	case U_ERROR_NAME:
	case U_SETTING_NAME:
		s->setting = ad_setting_from_name(text);
		break;
	case U_ERROR:
		if (s->setting != AD_SETTING_MAX)
			u->missing |= AD_SETTING_BIT(s->setting);
		break;
	case U_SETTING_VALUE:
		free(s->value_text);
		s->value_text = xstrdup(text);
		break;
	case U_SETTING:
		if (s->setting != AD_SETTING_MAX && s->value &&
		    !s->value_nil && u->values[s->setting] == NULL) {
			u->values[s->setting] = s->value_text;
			s->value_text = NULL;
		}
		free(s->value_text);
		s->value_text = NULL;
		break;
	case R_OP:
		if (!s->response)
			xr_fail(x, "GetUserSettingsResponseMessage without "
			    "Response");
		break;
	}
}

static const struct xr_shape user_settings_rows[U_ROWS] = {
	ENVELOPE_ROWS(XR_NS_AD, "GetUserSettingsResponseMessage"),
	[U_RESPONSE] = { R_OP, XR_NS_AD, 0, "Response" },
	[U_CODE] = { U_RESPONSE, XR_NS_AD, XR_TEXT, "ErrorCode" },
	[U_MESSAGE] = { U_RESPONSE, XR_NS_AD, XR_TEXT, "ErrorMessage" },
	[U_USERS] = { U_RESPONSE, XR_NS_AD, 0, "UserResponses" },
	[U_USER] = { U_USERS, XR_NS_AD, XR_EACH, "UserResponse" },
	[U_USER_CODE] = { U_USER, XR_NS_AD, XR_TEXT, "ErrorCode" },
	[U_USER_MESSAGE] = { U_USER, XR_NS_AD, XR_TEXT, "ErrorMessage" },
	[U_REDIRECT] = { U_USER, XR_NS_AD, XR_TEXT, "RedirectTarget" },
	[U_ERRORS] = { U_USER, XR_NS_AD, 0, "UserSettingErrors" },
	[U_ERROR] = { U_ERRORS, XR_NS_AD, XR_EACH, "UserSettingError" },
	[U_ERROR_NAME] = { U_ERROR, XR_NS_AD, XR_TEXT, "SettingName" },
	[U_SETTINGS] = { U_USER, XR_NS_AD, 0, "UserSettings" },
	[U_SETTING] = { U_SETTINGS, XR_NS_AD, XR_EACH, "UserSetting" },
	[U_SETTING_NAME] = { U_SETTING, XR_NS_AD, XR_TEXT, "Name" },
	[U_SETTING_VALUE] = { U_SETTING, XR_NS_AD, XR_TEXT, "Value" },
};

static const struct xr_parser user_settings_parser = {
	user_settings_rows, U_ROWS, user_settings_start, user_settings_end,
	env_unmatched
};

/* ---- entry points -------------------------------------------------- */

int
ews_parse_response(const char *d, size_t len, struct ews_response *out,
    char **cause)
{
	return (read_generic(&generic_any, NULL, d, len, out, cause));
}

int
ews_parse_unsubscribe(const char *d, size_t len, struct ews_response *out,
    char **cause)
{
	return (read_generic(&generic_unsubscribe, "UnsubscribeResponse", d,
	    len, out, cause));
}

int
ews_parse_subscribe(const char *d, size_t len, struct ews_subscribe *out,
    char **cause)
{
	struct rd_subscribe	 s;
	int			 rc;

	memset(out, 0, sizeof(*out));
	memset(&s, 0, sizeof s);
	env_init(&s.env, &out->r, "SubscribeResponse");
	s.out = out;
	rc = xr_read(&subscribe_parser, &s, d, len, cause);
	env_done(&s.env);
	ews_status_free(&s.st);
	if (rc == -2) {
		ews_subscribe_free(out);
		memset(out, 0, sizeof(*out));
	}
	return (rc == 0 ? 0 : -1);
}

int
ews_parse_get_events(const char *d, size_t len,
    struct ews_notifications *out, char **cause)
{
	return (read_notifications(&get_events_parser, "GetEventsResponse", d,
	    len, out, cause));
}

int
ews_parse_send_notification(const char *d, size_t len,
    struct ews_notifications *out, char **cause)
{
	return (read_notifications(&send_notification_parser,
	    "SendNotification", d, len, out, cause));
}

int
ews_parse_streaming(const char *d, size_t len, struct ews_streaming *out,
    char **cause)
{
	struct rd_streaming	 s;
	int			 rc;

	memset(out, 0, sizeof(*out));
	memset(&s, 0, sizeof s);
	env_init(&s.env, &out->r, "GetStreamingEventsResponse");
	s.out = out;
	rc = xr_read(&streaming_parser, &s, d, len, cause);
	env_done(&s.env);
	notif_done(&s.n);
	if (rc == -2) {
		ews_streaming_free(out);
		memset(out, 0, sizeof(*out));
	}
	return (rc == 0 ? 0 : -1);
}

int
ews_parse_find_item(const char *d, size_t len, struct ews_calendar *out,
    char **cause)
{
	struct rd_find	 s;
	int		 rc;

	memset(out, 0, sizeof(*out));
	out->includes_last = true;
	memset(&s, 0, sizeof s);
	env_init(&s.env, &out->r, "FindItemResponse");
	s.out = out;
	rc = xr_read(&find_parser, &s, d, len, cause);
	env_done(&s.env);
	ews_status_free(&s.st);
	if (rc == -2) {
		ews_calendar_free(out);
		memset(out, 0, sizeof(*out));
		out->includes_last = true;
	}
	return (rc == 0 ? 0 : -1);
}

int
ews_parse_get_item(const char *d, size_t len, struct ews_items *out,
    char **cause)
{
	struct rd_get_item	 s;
	int			 rc;

	memset(out, 0, sizeof(*out));
	memset(&s, 0, sizeof s);
	env_init(&s.env, &out->r, "GetItemResponse");
	s.out = out;
	rc = xr_read(&get_item_parser, &s, d, len, cause);
	env_done(&s.env);
	if (rc == -2) {
		ews_items_free(out);
		memset(out, 0, sizeof(*out));
	}
	return (rc == 0 ? 0 : -1);
}

int
ews_parse_availability(const char *d, size_t len,
    struct ews_availability *out, char **cause)
{
	struct rd_availability	 s;
	int			 rc;

	memset(out, 0, sizeof(*out));
	memset(&s, 0, sizeof s);
	env_init(&s.env, &out->r, "GetUserAvailabilityResponse");
	s.out = out;
	rc = xr_read(&availability_parser, &s, d, len, cause);
	env_done(&s.env);
	if (rc == -2) {
		ews_availability_free(out);
		memset(out, 0, sizeof(*out));
	}
	return (rc == 0 ? 0 : -1);
}

int
ews_parse_oof(const char *d, size_t len, struct ews_oof *out, char **cause)
{
	struct rd_oof	 s;
	int		 rc;

	memset(out, 0, sizeof(*out));
	memset(&s, 0, sizeof s);
	env_init(&s.env, &out->r, "GetUserOofSettingsResponse");
	s.out = out;
	rc = xr_read(&oof_parser, &s, d, len, cause);
	env_done(&s.env);
	ews_status_free(&s.st);
	if (rc == -2) {
		ews_oof_free(out);
		memset(out, 0, sizeof(*out));
	}
	return (rc == 0 ? 0 : -1);
}

int
ews_parse_user_settings(const char *d, size_t len,
    struct ews_user_settings *out, char **cause)
{
	struct rd_user_settings	 s;
	int			 rc;

	memset(out, 0, sizeof(*out));
	memset(&s, 0, sizeof s);
	env_init(&s.env, &out->r, "GetUserSettingsResponseMessage");
	s.out = out;
	rc = xr_read(&user_settings_parser, &s, d, len, cause);
	env_done(&s.env);
	free(s.value_text);
	if (rc == -2) {
		ews_user_settings_free(out);
		memset(out, 0, sizeof(*out));
	}
	return (rc == 0 ? 0 : -1);
}

void
ews_parse_cleanup(void)
{
	xr_cleanup();
}

/* ---- release ------------------------------------------------------- */

void
ews_status_free(struct ews_status *st)
{
	free(st->message);
	st->message = NULL;
}

void
ews_response_free(struct ews_response *r)
{
	free(r->faultstring);
	r->faultstring = NULL;
	ews_status_free(&r->status);
}

void
ews_subscribe_free(struct ews_subscribe *s)
{
	ews_response_free(&s->r);
	free(s->subscription_id);
	free(s->watermark);
	s->subscription_id = s->watermark = NULL;
}

static void
event_free(struct ews_event *ev)
{
	free(ev->watermark);
	free(ev->id);
	free(ev->parent_id);
	free(ev->old_id);
	free(ev->old_parent_id);
}

static void
ews_notification_free(struct ews_notification *n)
{
	size_t	 i;

	for (i = 0; i < n->nevents; i++)
		event_free(&n->events[i]);
	free(n->events);
	free(n->subscription_id);
	free(n->previous_watermark);
	memset(n, 0, sizeof(*n));
}

void
ews_notifications_free(struct ews_notifications *ns)
{
	size_t	 i;

	ews_response_free(&ns->r);
	for (i = 0; i < ns->nmsgs; i++) {
		ews_status_free(&ns->msgs[i].status);
		ews_notification_free(&ns->msgs[i].notification);
	}
	free(ns->msgs);
	ns->msgs = NULL;
	ns->nmsgs = 0;
}

void
ews_streaming_free(struct ews_streaming *s)
{
	struct ews_stream_msg	*m;
	size_t			 i, j;

	ews_response_free(&s->r);
	for (i = 0; i < s->nmsgs; i++) {
		m = &s->msgs[i];
		ews_status_free(&m->status);
		for (j = 0; j < m->nnotifications; j++)
			ews_notification_free(&m->notifications[j]);
		free(m->notifications);
		for (j = 0; j < m->nerror_ids; j++)
			free(m->error_ids[j]);
		free(m->error_ids);
	}
	free(s->msgs);
	s->msgs = NULL;
	s->nmsgs = 0;
}

static void
cal_item_free(struct ews_cal_item *it)
{
	free(it->id);
	free(it->change_key);
	free(it->subject);
}

void
ews_calendar_free(struct ews_calendar *c)
{
	size_t	 i;

	ews_response_free(&c->r);
	for (i = 0; i < c->nitems; i++)
		cal_item_free(&c->items[i]);
	free(c->items);
	c->items = NULL;
	c->nitems = 0;
}

void
ews_items_free(struct ews_items *it)
{
	size_t	 i;

	ews_response_free(&it->r);
	for (i = 0; i < it->nmsgs; i++) {
		ews_status_free(&it->msgs[i].status);
		cal_item_free(&it->msgs[i].item);
	}
	free(it->msgs);
	it->msgs = NULL;
	it->nmsgs = 0;
}

void
ews_availability_free(struct ews_availability *a)
{
	size_t	 i;

	ews_response_free(&a->r);
	for (i = 0; i < a->nmailboxes; i++) {
		ews_status_free(&a->mailboxes[i].status);
		free(a->mailboxes[i].merged);
		free(a->mailboxes[i].events);
	}
	free(a->mailboxes);
	a->mailboxes = NULL;
	a->nmailboxes = 0;
}

void
ews_oof_free(struct ews_oof *o)
{
	ews_response_free(&o->r);
}

void
ews_user_settings_free(struct ews_user_settings *us)
{
	size_t	 i;

	ews_response_free(&us->r);
	for (i = 0; i < us->nusers; i++)
		ad_user_free(&us->users[i]);
	free(us->users);
	us->users = NULL;
	us->nusers = 0;
}
