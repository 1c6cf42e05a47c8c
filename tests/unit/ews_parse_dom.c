/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The EWS response parsers as they were on a libxml2 tree, kept as the
 * reference the streaming parsers (src/ews/ews_parse.c) are checked
 * against: same documents in, same structs and causes out.  Test code.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "ews/ews_parse.h"
#include "ews/xmlscan.h"
#include "ews/soap.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

#include "ews_parse_dom.h"

/* Parse state shared by the walkers of one document. */
struct pctx {
	char		**cause;
	int		 failed;
};

typedef int (*body_fn)(struct pctx *, xmlNode *, void *);

static void	 quiet_error(void *, xmlError *);
static void	 on_doctype(void *, const xmlChar *, const xmlChar *,
		    const xmlChar *);
static xmlDoc	*doc_read(const char *, size_t, char **);
static int	 depth_ok(xmlNode *);
static int	 fail(struct pctx *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static bool	 is_ns(const xmlNode *, const char *);
static bool	 is_ews(const xmlNode *, const char *);
static xmlNode	*first_el(const xmlNode *);
static xmlNode	*next_el(const xmlNode *);
static xmlNode	*ews_child(const xmlNode *, const char *);
static xmlNode	*any_child(const xmlNode *, const char *);
static char	*node_text(const xmlNode *);
static void	 node_text_buf(const xmlNode *, char *, size_t);
static char	*attr_dup(const xmlNode *, const char *);
static bool	 text_is(const xmlNode *, const char *);
static bool	 node_bool(const xmlNode *);
static int	 node_time(struct pctx *, const xmlNode *, const char *,
		    int64_t *);
static int64_t	 parse_int(const char *, int64_t);
static void	*grow(void *, size_t, size_t *, size_t);
static void	 parse_backoff(const xmlNode *, struct ews_status *);
static void	 parse_status(const xmlNode *, struct ews_status *);
static void	 parse_version(const xmlNode *, struct ews_version *);
static void	 parse_fault(const xmlNode *, struct ews_response *);
static void	 note_status(struct ews_response *, const struct ews_status *);
static int	 parse_envelope(const char *, size_t, const char *,
		    struct ews_response *, body_fn, void *, char **);
static int	 parse_envelope_ns(const char *, size_t, const char *,
		    const char *, struct ews_response *, body_fn, void *,
		    char **);
static xmlNode	*ad_child(const xmlNode *, const char *);
static bool	 is_nil(const xmlNode *);
static char	*ad_text(const xmlNode *);
static void	 parse_ad_user(const xmlNode *, struct ad_user *);
static int	 body_user_settings(struct pctx *, xmlNode *, void *);
static int	 parse_notification(struct pctx *, const xmlNode *,
		    struct ews_notification *);
static int	 parse_event(struct pctx *, const xmlNode *,
		    enum ews_event_type, struct ews_event *);
static int	 parse_cal_item(struct pctx *, const xmlNode *,
		    struct ews_cal_item *);
static enum ews_fb fb_parse(const xmlNode *);
static int	 body_generic(struct pctx *, xmlNode *, void *);
static int	 body_subscribe(struct pctx *, xmlNode *, void *);
static int	 body_notifications(struct pctx *, xmlNode *, void *);
static int	 body_streaming(struct pctx *, xmlNode *, void *);
static int	 body_find_item(struct pctx *, xmlNode *, void *);
static int	 body_get_item(struct pctx *, xmlNode *, void *);
static int	 body_availability(struct pctx *, xmlNode *, void *);
static int	 body_oof(struct pctx *, xmlNode *, void *);

#define DOCTYPE_SEEN	((void *)1)

static const char *const fb_names[] = {
	"Free", "Tentative", "Busy", "OOF", "WorkingElsewhere", "NoData"
};

/* Element names, indexed by enum ews_event_type. */
static const char *const event_names[] = {
	"CreatedEvent", "ModifiedEvent", "DeletedEvent", "MovedEvent",
	"CopiedEvent", "NewMailEvent", "FreeBusyChangedEvent", "StatusEvent"
};

/* ---- document and node helpers ------------------------------------- */

static void
quiet_error(void *arg, xmlError *err)
{
	/* Errors are read back from the context; keep stderr clean. */
}

/*
 * SAX hook for <!DOCTYPE: stop before the internal subset is read, so no
 * entity is ever declared, expanded or fetched.
 */
static void
on_doctype(void *arg, const xmlChar *name, const xmlChar *ext,
    const xmlChar *sys)
{
	xmlParserCtxt	*ctxt = arg;

	ctxt->_private = DOCTYPE_SEEN;
	xmlStopParser(ctxt);
}

static xmlDoc *
doc_read(const char *data, size_t len, char **cause)
{
	static bool	 inited;
	xmlParserCtxt	*ctxt;
	xmlDoc		*doc;
	const xmlError	*e;
	char		*msg, *nl;

	if (len > EWS_MAX_DOC) {
		xasprintf(cause, "document too large (%zu bytes)", len);
		return (NULL);
	}
	if (len == 0 || len > INT_MAX) {
		*cause = xstrdup("empty document");
		return (NULL);
	}
	/* Linear, before the parser: what would make it slow or big. */
	if (xml_prescan(data, len, &xml_limits_default, cause) != 0)
		return (NULL);
	if (!inited) {
		xmlInitParser();
		inited = true;
	}
	if ((ctxt = xmlNewParserCtxt()) == NULL) {
		*cause = xstrdup("out of memory for the XML parser");
		return (NULL);
	}
	ctxt->sax->internalSubset = on_doctype;
	ctxt->sax->serror = quiet_error;
	ctxt->_private = NULL;
	doc = xmlCtxtReadMemory(ctxt, data, (int)len, NULL, NULL,
	    XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR |
	    XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
	if (ctxt->_private == DOCTYPE_SEEN) {
		*cause = xstrdup("DOCTYPE not allowed");
		xmlFreeDoc(doc);
		doc = NULL;
	} else if (doc == NULL || !ctxt->wellFormed) {
		e = xmlCtxtGetLastError(ctxt);
		msg = xstrdup(e != NULL && e->message != NULL ? e->message :
		    "parse error");
		if ((nl = strchr(msg, '\n')) != NULL)
			*nl = '\0';
		xasprintf(cause, "malformed XML: line %d: %s",
		    e != NULL ? e->line : 0, msg);
		free(msg);
		xmlFreeDoc(doc);
		doc = NULL;
	} else if (!depth_ok(xmlDocGetRootElement(doc))) {
		xasprintf(cause, "document nested deeper than %d",
		    EWS_MAX_DEPTH);
		xmlFreeDoc(doc);
		doc = NULL;
	}
	xmlFreeParserCtxt(ctxt);
	return (doc);
}

/* Iterative, so hostile nesting cannot exhaust the stack. */
static int
depth_ok(xmlNode *n)
{
	int	 d = 1;

	if (n == NULL)
		return (1);
	for (;;) {
		if (d > EWS_MAX_DEPTH)
			return (0);
		if (n->children != NULL) {
			n = n->children;
			d++;
			continue;
		}
		for (;;) {
			if (d == 1)
				return (1);
			if (n->next != NULL) {
				n = n->next;
				break;
			}
			n = n->parent;
			d--;
		}
	}
}

static int
fail(struct pctx *p, const char *fmt, ...)
{
	va_list	 ap;

	if (!p->failed && p->cause != NULL) {
		va_start(ap, fmt);
		xvasprintf(p->cause, fmt, ap);
		va_end(ap);
	}
	p->failed = 1;
	return (-1);
}

static bool
is_ns(const xmlNode *n, const char *ns)
{
	return (n->ns != NULL && n->ns->href != NULL &&
	    strcmp((const char *)n->ns->href, ns) == 0);
}

/*
 * An EWS element in the messages or the types namespace: servers put
 * Notification and SubscriptionId in either, so accept both everywhere.
 */
static bool
is_ews(const xmlNode *n, const char *name)
{
	return (n != NULL && n->type == XML_ELEMENT_NODE &&
	    strcmp((const char *)n->name, name) == 0 &&
	    (is_ns(n, SOAP_NS_M) || is_ns(n, SOAP_NS_T)));
}

static xmlNode *
first_el(const xmlNode *n)
{
	xmlNode	*c;

	for (c = n->children; c != NULL; c = c->next)
		if (c->type == XML_ELEMENT_NODE)
			return (c);
	return (NULL);
}

static xmlNode *
next_el(const xmlNode *n)
{
	for (n = n->next; n != NULL; n = n->next)
		if (n->type == XML_ELEMENT_NODE)
			return ((xmlNode *)n);
	return (NULL);
}

static xmlNode *
ews_child(const xmlNode *n, const char *name)
{
	xmlNode	*c;

	if (n == NULL)
		return (NULL);
	for (c = first_el(n); c != NULL; c = next_el(c))
		if (is_ews(c, name))
			return (c);
	return (NULL);
}

/* SOAP Fault children are unqualified; match the local name only. */
static xmlNode *
any_child(const xmlNode *n, const char *name)
{
	xmlNode	*c;

	if (n == NULL)
		return (NULL);
	for (c = first_el(n); c != NULL; c = next_el(c))
		if (strcmp((const char *)c->name, name) == 0)
			return (c);
	return (NULL);
}

/* Text content without surrounding whitespace; allocated. */
static char *
node_text(const xmlNode *n)
{
	xmlChar	*x;
	char	*s, *b, *e;

	if (n == NULL || (x = xmlNodeGetContent(n)) == NULL)
		return (xstrdup(""));
	for (b = (char *)x; isspace((unsigned char)*b); b++)
		;
	e = b + strlen(b);
	while (e > b && isspace((unsigned char)e[-1]))
		e--;
	s = xstrndup(b, (size_t)(e - b));
	xmlFree(x);
	return (s);
}

static void
node_text_buf(const xmlNode *n, char *out, size_t size)
{
	char	*s;

	s = node_text(n);
	strncpy(out, s, size - 1);
	out[size - 1] = '\0';
	free(s);
}

static char *
attr_dup(const xmlNode *n, const char *name)
{
	xmlChar	*x;
	char	*s;

	if (n == NULL || (x = xmlGetNoNsProp(n, (const xmlChar *)name)) ==
	    NULL)
		return (NULL);
	s = xstrdup((const char *)x);
	xmlFree(x);
	return (s);
}

static bool
text_is(const xmlNode *n, const char *want)
{
	char	*s;
	bool	 r;

	s = node_text(n);
	r = strcmp(s, want) == 0;
	free(s);
	return (r);
}

static bool
node_bool(const xmlNode *n)
{
	return (text_is(n, "true") || text_is(n, "1"));
}

/* A required xs:dateTime child. */
static int
node_time(struct pctx *p, const xmlNode *parent, const char *name,
    int64_t *out)
{
	xmlNode	*n;
	char	*s;
	int	 r;

	if ((n = ews_child(parent, name)) == NULL)
		return (fail(p, "%s without %s", (const char *)parent->name,
		    name));
	s = node_text(n);
	r = time_parse_iso8601(s, strlen(s), out);
	if (r == -1)
		fail(p, "%s: bad dateTime '%.40s'", name, s);
	free(s);
	return (r);
}

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

/* ---- common structure ---------------------------------------------- */

/* MessageXml: <t:Value Name="BackOffMilliseconds">12345</t:Value>. */
static void
parse_backoff(const xmlNode *mx, struct ews_status *st)
{
	xmlNode	*v;
	char	*name, *s;
	int64_t	 ms;

	if (mx == NULL)
		return;
	for (v = first_el(mx); v != NULL; v = next_el(v)) {
		if (strcmp((const char *)v->name, "Value") != 0)
			continue;
		name = attr_dup(v, "Name");
		if (name != NULL && strcmp(name, "BackOffMilliseconds") == 0) {
			s = node_text(v);
			ms = parse_int(s, 0);
			st->backoff_ms = ms > 0 ? ms : 0;
			free(s);
		}
		free(name);
	}
}

/* A ResponseMessageType element. */
static void
parse_status(const xmlNode *n, struct ews_status *st)
{
	char	*cls;
	xmlNode	*c;

	memset(st, 0, sizeof(*st));
	cls = attr_dup(n, "ResponseClass");
	if (cls == NULL)
		st->class = EWS_CLASS_NONE;
	else if (strcmp(cls, "Success") == 0)
		st->class = EWS_CLASS_SUCCESS;
	else if (strcmp(cls, "Warning") == 0)
		st->class = EWS_CLASS_WARNING;
	else
		st->class = EWS_CLASS_ERROR;	/* unknown: assume the worst */
	free(cls);
	if ((c = ews_child(n, "ResponseCode")) != NULL)
		node_text_buf(c, st->code, sizeof(st->code));
	if ((c = ews_child(n, "MessageText")) != NULL)
		st->message = node_text(c);
	parse_backoff(ews_child(n, "MessageXml"), st);
}

static void
parse_version(const xmlNode *hdr, struct ews_version *v)
{
	xmlNode	*n;
	char	*s;

	if ((n = ews_child(hdr, "ServerVersionInfo")) == NULL)
		return;
	v->present = true;
	s = attr_dup(n, "MajorVersion");
	v->major = (int)parse_int(s, 0);
	free(s);
	s = attr_dup(n, "MinorVersion");
	v->minor = (int)parse_int(s, 0);
	free(s);
	s = attr_dup(n, "MajorBuildNumber");
	v->major_build = (int)parse_int(s, 0);
	free(s);
	s = attr_dup(n, "MinorBuildNumber");
	v->minor_build = (int)parse_int(s, 0);
	free(s);
	if ((s = attr_dup(n, "Version")) != NULL) {
		strncpy(v->version, s, sizeof(v->version) - 1);
		free(s);
	}
}

static void
parse_fault(const xmlNode *f, struct ews_response *r)
{
	xmlNode	*detail, *c;
	char	*code, *colon;

	r->fault = true;
	r->status.class = EWS_CLASS_ERROR;
	if ((c = any_child(f, "faultstring")) != NULL)
		r->faultstring = node_text(c);
	detail = any_child(f, "detail");
	if ((c = any_child(detail, "ResponseCode")) != NULL)
		node_text_buf(c, r->status.code, sizeof(r->status.code));
	else if ((c = any_child(f, "faultcode")) != NULL) {
		/* "a:ErrorServerBusy" or "soap:Client": the local part. */
		code = node_text(c);
		colon = strrchr(code, ':');
		strncpy(r->status.code, colon != NULL ? colon + 1 : code,
		    sizeof(r->status.code) - 1);
		free(code);
	}
	if ((c = any_child(detail, "Message")) != NULL)
		r->status.message = node_text(c);
	else if (r->faultstring != NULL)
		r->status.message = xstrdup(r->faultstring);
	parse_backoff(any_child(detail, "MessageXml"), &r->status);
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

/* An EWS response: the payload is in the messages namespace. */
static int
parse_envelope(const char *data, size_t len, const char *op,
    struct ews_response *r, body_fn fn, void *arg, char **cause)
{
	return (parse_envelope_ns(data, len, SOAP_NS_M, op, r, fn, arg,
	    cause));
}

/*
 * Read the envelope, fill the common part and hand the Body's payload to
 * fn when it is op in namespace ns (op NULL accepts any).
 */
static int
parse_envelope_ns(const char *data, size_t len, const char *ns,
    const char *op, struct ews_response *r, body_fn fn, void *arg,
    char **cause)
{
	struct pctx	 p = { cause, 0 };
	xmlDoc		*doc;
	xmlNode		*root, *c, *body = NULL, *payload;
	char		*dummy = NULL;

	if (cause == NULL)
		p.cause = cause = &dummy;
	*cause = NULL;
	if ((doc = doc_read(data, len, cause)) == NULL) {
		free(dummy);
		return (-1);
	}
	root = xmlDocGetRootElement(doc);
	if (root == NULL || !is_ns(root, SOAP_NS_ENV) ||
	    strcmp((const char *)root->name, "Envelope") != 0) {
		fail(&p, "not a SOAP 1.1 envelope");
		goto out;
	}
	for (c = first_el(root); c != NULL; c = next_el(c)) {
		if (!is_ns(c, SOAP_NS_ENV))
			continue;
		if (strcmp((const char *)c->name, "Header") == 0)
			parse_version(c, &r->version);
		else if (strcmp((const char *)c->name, "Body") == 0 &&
		    body == NULL)
			body = c;
	}
	if (body == NULL) {
		fail(&p, "SOAP envelope without Body");
		goto out;
	}
	if ((payload = first_el(body)) == NULL) {
		fail(&p, "empty SOAP Body");
		goto out;
	}
	if (is_ns(payload, SOAP_NS_ENV) &&
	    strcmp((const char *)payload->name, "Fault") == 0) {
		parse_fault(payload, r);
		goto out;
	}
	if (!is_ns(payload, ns) || (op != NULL &&
	    strcmp((const char *)payload->name, op) != 0)) {
		fail(&p, "unexpected Body element %.64s (want %s)",
		    (const char *)payload->name, op != NULL ? op :
		    "an EWS message");
		goto out;
	}
	fn(&p, payload, arg);
out:
	xmlFreeDoc(doc);
	free(dummy);
	return (p.failed ? -1 : 0);
}

/* ---- notifications ------------------------------------------------- */

static int
parse_event(struct pctx *p, const xmlNode *n, enum ews_event_type type,
    struct ews_event *ev)
{
	xmlNode	*c;

	ev->type = type;
	if ((c = ews_child(n, "Watermark")) != NULL)
		ev->watermark = node_text(c);
	if (type == EWS_EV_STATUS)
		return (0);
	if (node_time(p, n, "TimeStamp", &ev->timestamp) == -1)
		return (-1);
	if ((c = ews_child(n, "ItemId")) == NULL) {
		c = ews_child(n, "FolderId");
		ev->folder = c != NULL;
	}
	if ((ev->id = attr_dup(c, "Id")) == NULL)
		return (fail(p, "%s without ItemId or FolderId",
		    event_names[type]));
	ev->parent_id = attr_dup(ews_child(n, "ParentFolderId"), "Id");
	if (type == EWS_EV_MOVED || type == EWS_EV_COPIED) {
		if ((c = ews_child(n, "OldItemId")) == NULL)
			c = ews_child(n, "OldFolderId");
		ev->old_id = attr_dup(c, "Id");
		ev->old_parent_id = attr_dup(ews_child(n,
		    "OldParentFolderId"), "Id");
	}
	return (0);
}

static int
parse_notification(struct pctx *p, const xmlNode *n,
    struct ews_notification *nt)
{
	xmlNode	*c;
	size_t	 cap = 0;
	unsigned t;

	memset(nt, 0, sizeof(*nt));
	if ((c = ews_child(n, "SubscriptionId")) == NULL)
		return (fail(p, "Notification without SubscriptionId"));
	nt->subscription_id = node_text(c);
	if ((c = ews_child(n, "PreviousWatermark")) != NULL)
		nt->previous_watermark = node_text(c);
	if ((c = ews_child(n, "MoreEvents")) != NULL)
		nt->more_events = node_bool(c);
	for (c = first_el(n); c != NULL; c = next_el(c)) {
		for (t = 0; t <= EWS_EV_STATUS; t++)
			if (is_ews(c, event_names[t]))
				break;
		if (t > EWS_EV_STATUS)
			continue;	/* a future event type */
		nt->events = grow(nt->events, nt->nevents, &cap,
		    sizeof(*nt->events));
		if (parse_event(p, c, t, &nt->events[nt->nevents++]) == -1)
			return (-1);
	}
	return (0);
}

/* GetEvents and SendNotification: ResponseMessages of one shape. */
static int
body_notifications(struct pctx *p, xmlNode *op, void *arg)
{
	struct ews_notifications	*out = arg;
	struct ews_notif_msg		*m;
	xmlNode				*msgs, *c, *n;
	size_t				 cap = 0;

	if ((msgs = ews_child(op, "ResponseMessages")) == NULL)
		return (fail(p, "%s without ResponseMessages",
		    (const char *)op->name));
	for (c = first_el(msgs); c != NULL; c = next_el(c)) {
		out->msgs = grow(out->msgs, out->nmsgs, &cap,
		    sizeof(*out->msgs));
		m = &out->msgs[out->nmsgs++];
		parse_status(c, &m->status);
		note_status(&out->r, &m->status);
		if ((n = ews_child(c, "Notification")) != NULL) {
			m->has_notification = true;
			if (parse_notification(p, n, &m->notification) == -1)
				return (-1);
		} else if (m->status.class == EWS_CLASS_SUCCESS)
			return (fail(p, "%s without Notification",
			    (const char *)c->name));
	}
	return (0);
}

static int
body_streaming(struct pctx *p, xmlNode *op, void *arg)
{
	struct ews_streaming	*out = arg;
	struct ews_stream_msg	*m;
	xmlNode			*msgs, *c, *arr, *n;
	size_t			 cap = 0, ncap, icap;

	if ((msgs = ews_child(op, "ResponseMessages")) == NULL)
		return (fail(p, "GetStreamingEventsResponse without "
		    "ResponseMessages"));
	for (c = first_el(msgs); c != NULL; c = next_el(c)) {
		out->msgs = grow(out->msgs, out->nmsgs, &cap,
		    sizeof(*out->msgs));
		m = &out->msgs[out->nmsgs++];
		parse_status(c, &m->status);
		note_status(&out->r, &m->status);
		if ((arr = ews_child(c, "Notifications")) != NULL) {
			ncap = 0;
			for (n = first_el(arr); n != NULL; n = next_el(n)) {
				if (!is_ews(n, "Notification"))
					continue;
				m->notifications = grow(m->notifications,
				    m->nnotifications, &ncap,
				    sizeof(*m->notifications));
				if (parse_notification(p, n,
				    &m->notifications[m->nnotifications++]) ==
				    -1)
					return (-1);
			}
		}
		if ((arr = ews_child(c, "ErrorSubscriptionIds")) != NULL) {
			icap = 0;
			for (n = first_el(arr); n != NULL; n = next_el(n)) {
				if (!is_ews(n, "SubscriptionId"))
					continue;
				m->error_ids = grow(m->error_ids,
				    m->nerror_ids, &icap,
				    sizeof(*m->error_ids));
				m->error_ids[m->nerror_ids++] = node_text(n);
			}
		}
		if ((n = ews_child(c, "ConnectionStatus")) != NULL) {
			if (text_is(n, "OK"))
				m->conn = EWS_CONN_OK;
			else if (text_is(n, "Closed"))
				m->conn = EWS_CONN_CLOSED;
		}
	}
	return (0);
}

/* ---- calendar ------------------------------------------------------ */

static enum ews_fb
fb_parse(const xmlNode *n)
{
	char		*s;
	unsigned	 i;
	enum ews_fb	 fb = EWS_FB_NODATA;

	s = node_text(n);
	for (i = 0; i <= EWS_FB_NODATA; i++)
		if (strcmp(s, fb_names[i]) == 0)
			fb = (enum ews_fb)i;
	free(s);
	return (fb);
}

static int
parse_cal_item(struct pctx *p, const xmlNode *n, struct ews_cal_item *it)
{
	static const char *const sens[] = {
		"Normal", "Personal", "Private", "Confidential"
	};
	static const char *const types[] = {
		"Single", "Occurrence", "Exception", "RecurringMaster"
	};
	xmlNode	*c;
	unsigned i;

	memset(it, 0, sizeof(*it));
	it->fb = EWS_FB_BUSY;
	if ((c = ews_child(n, "ItemId")) == NULL ||
	    (it->id = attr_dup(c, "Id")) == NULL)
		return (fail(p, "CalendarItem without ItemId"));
	it->change_key = attr_dup(c, "ChangeKey");
	if ((c = ews_child(n, "Subject")) != NULL)
		it->subject = node_text(c);
	if (node_time(p, n, "Start", &it->start) == -1 ||
	    node_time(p, n, "End", &it->end) == -1)
		return (-1);
	if ((c = ews_child(n, "LegacyFreeBusyStatus")) != NULL)
		it->fb = fb_parse(c);
	if ((c = ews_child(n, "Sensitivity")) != NULL)
		for (i = 0; i < 4; i++)
			if (text_is(c, sens[i]))
				it->sensitivity = (enum ews_sensitivity)i;
	if ((c = ews_child(n, "CalendarItemType")) != NULL)
		for (i = 0; i < 4; i++)
			if (text_is(c, types[i]))
				it->type = (enum ews_item_type)i;
	if ((c = ews_child(n, "IsAllDayEvent")) != NULL)
		it->all_day = node_bool(c);
	if ((c = ews_child(n, "IsCancelled")) != NULL)
		it->cancelled = node_bool(c);
	return (0);
}

static int
body_find_item(struct pctx *p, xmlNode *op, void *arg)
{
	struct ews_calendar	*out = arg;
	struct ews_status	 st;
	xmlNode			*msgs, *m, *root, *items, *c;
	size_t			 cap = 0;
	int64_t			 total;
	char			*s;

	if ((msgs = ews_child(op, "ResponseMessages")) == NULL ||
	    (m = ews_child(msgs, "FindItemResponseMessage")) == NULL)
		return (fail(p, "FindItemResponse without "
		    "FindItemResponseMessage"));
	parse_status(m, &st);
	note_status(&out->r, &st);
	ews_status_free(&st);
	if ((root = ews_child(m, "RootFolder")) == NULL) {
		if (out->r.status.class == EWS_CLASS_ERROR)
			return (0);
		return (fail(p, "FindItemResponseMessage without RootFolder"));
	}
	s = attr_dup(root, "TotalItemsInView");
	total = parse_int(s, 0);
	out->total_in_view = total < 0 ? 0 : total > UINT_MAX ? UINT_MAX :
	    (unsigned)total;
	free(s);
	s = attr_dup(root, "IncludesLastItemInRange");
	out->includes_last = s == NULL || strcmp(s, "false") != 0;
	free(s);
	if ((items = ews_child(root, "Items")) == NULL)
		return (0);
	for (c = first_el(items); c != NULL; c = next_el(c)) {
		if (!is_ews(c, "CalendarItem"))
			continue;
		out->items = grow(out->items, out->nitems, &cap,
		    sizeof(*out->items));
		if (parse_cal_item(p, c, &out->items[out->nitems++]) == -1)
			return (-1);
	}
	return (0);
}

static int
body_get_item(struct pctx *p, xmlNode *op, void *arg)
{
	struct ews_items	*out = arg;
	struct ews_item_msg	*m;
	xmlNode			*msgs, *c, *it;
	size_t			 cap = 0;

	if ((msgs = ews_child(op, "ResponseMessages")) == NULL)
		return (fail(p, "GetItemResponse without ResponseMessages"));
	for (c = first_el(msgs); c != NULL; c = next_el(c)) {
		out->msgs = grow(out->msgs, out->nmsgs, &cap,
		    sizeof(*out->msgs));
		m = &out->msgs[out->nmsgs++];
		parse_status(c, &m->status);
		note_status(&out->r, &m->status);
		it = ews_child(ews_child(c, "Items"), "CalendarItem");
		if (it == NULL)
			continue;
		m->has_item = true;
		if (parse_cal_item(p, it, &m->item) == -1)
			return (-1);
	}
	return (0);
}

static int
body_availability(struct pctx *p, xmlNode *op, void *arg)
{
	struct ews_availability	*out = arg;
	struct ews_fb_mailbox	*mb;
	struct ews_fb_event	*ev;
	xmlNode			*arr, *c, *view, *n, *e;
	size_t			 cap = 0, ecap;

	if ((arr = ews_child(op, "FreeBusyResponseArray")) == NULL)
		return (fail(p, "GetUserAvailabilityResponse without "
		    "FreeBusyResponseArray"));
	for (c = first_el(arr); c != NULL; c = next_el(c)) {
		if (!is_ews(c, "FreeBusyResponse"))
			continue;
		out->mailboxes = grow(out->mailboxes, out->nmailboxes, &cap,
		    sizeof(*out->mailboxes));
		mb = &out->mailboxes[out->nmailboxes++];
		if ((n = ews_child(c, "ResponseMessage")) != NULL)
			parse_status(n, &mb->status);
		note_status(&out->r, &mb->status);
		if ((view = ews_child(c, "FreeBusyView")) == NULL)
			continue;
		if ((n = ews_child(view, "MergedFreeBusy")) != NULL)
			mb->merged = node_text(n);
		if ((n = ews_child(view, "CalendarEventArray")) == NULL)
			continue;
		ecap = 0;
		for (e = first_el(n); e != NULL; e = next_el(e)) {
			if (!is_ews(e, "CalendarEvent"))
				continue;
			mb->events = grow(mb->events, mb->nevents, &ecap,
			    sizeof(*mb->events));
			ev = &mb->events[mb->nevents++];
			if (node_time(p, e, "StartTime", &ev->start) == -1 ||
			    node_time(p, e, "EndTime", &ev->end) == -1)
				return (-1);
			ev->busy = EWS_FB_BUSY;
			if ((n = ews_child(e, "BusyType")) != NULL)
				ev->busy = fb_parse(n);
		}
	}
	return (0);
}

static int
body_oof(struct pctx *p, xmlNode *op, void *arg)
{
	struct ews_oof		*out = arg;
	struct ews_status	 st;
	xmlNode			*n, *set, *d;

	if ((n = ews_child(op, "ResponseMessage")) == NULL)
		return (fail(p, "GetUserOofSettingsResponse without "
		    "ResponseMessage"));
	parse_status(n, &st);
	note_status(&out->r, &st);
	ews_status_free(&st);
	if ((set = ews_child(op, "OofSettings")) == NULL) {
		if (out->r.status.class == EWS_CLASS_ERROR)
			return (0);
		return (fail(p, "GetUserOofSettingsResponse without "
		    "OofSettings"));
	}
	if ((n = ews_child(set, "OofState")) == NULL)
		return (fail(p, "OofSettings without OofState"));
	if (text_is(n, "Enabled"))
		out->state = EWS_OOF_ENABLED;
	else if (text_is(n, "Scheduled"))
		out->state = EWS_OOF_SCHEDULED;
	else if (text_is(n, "Disabled"))
		out->state = EWS_OOF_DISABLED;
	else
		return (fail(p, "unknown OofState"));
	if ((d = ews_child(set, "Duration")) != NULL) {
		if (node_time(p, d, "StartTime", &out->start) == -1 ||
		    node_time(p, d, "EndTime", &out->end) == -1)
			return (-1);
		out->has_duration = true;
	}
	return (0);
}

static int
body_subscribe(struct pctx *p, xmlNode *op, void *arg)
{
	struct ews_subscribe	*out = arg;
	struct ews_status	 st;
	xmlNode			*m, *n;

	if ((m = ews_child(ews_child(op, "ResponseMessages"),
	    "SubscribeResponseMessage")) == NULL)
		return (fail(p, "SubscribeResponse without "
		    "SubscribeResponseMessage"));
	parse_status(m, &st);
	note_status(&out->r, &st);
	ews_status_free(&st);
	if ((n = ews_child(m, "SubscriptionId")) != NULL)
		out->subscription_id = node_text(n);
	if ((n = ews_child(m, "Watermark")) != NULL)
		out->watermark = node_text(n);
	if (out->r.status.class != EWS_CLASS_ERROR &&
	    (out->subscription_id == NULL || *out->subscription_id == '\0'))
		return (fail(p, "SubscribeResponseMessage without "
		    "SubscriptionId"));
	return (0);
}

/*
 * Any operation: the status of ResponseMessages/<x>ResponseMessage, or of
 * a bare ResponseMessage (GetUserOofSettings style).
 */
static int
body_generic(struct pctx *p, xmlNode *op, void *arg)
{
	struct ews_response	*r = arg;
	struct ews_status	 st;
	xmlNode			*msgs, *c;

	if ((msgs = ews_child(op, "ResponseMessages")) != NULL) {
		for (c = first_el(msgs); c != NULL; c = next_el(c)) {
			parse_status(c, &st);
			note_status(r, &st);
			ews_status_free(&st);
		}
	} else if ((c = ews_child(op, "ResponseMessage")) != NULL) {
		parse_status(c, &st);
		note_status(r, &st);
		ews_status_free(&st);
	}
	if (r->status.class == EWS_CLASS_NONE)
		return (fail(p, "%s without a response message",
		    (const char *)op->name));
	return (0);
}

/* ---- Autodiscover ------------------------------------------------- */

static xmlNode *
ad_child(const xmlNode *n, const char *name)
{
	xmlNode	*c;

	if (n == NULL)
		return (NULL);
	for (c = first_el(n); c != NULL; c = next_el(c))
		if (is_ns(c, AD_NS) && strcmp((const char *)c->name, name) == 0)
			return (c);
	return (NULL);
}

/* xsi:nil="true": the element stands for no value. */
static bool
is_nil(const xmlNode *n)
{
	xmlChar	*x;
	bool	 nil;

	x = xmlGetNsProp(n, (const xmlChar *)"nil", (const xmlChar *)AD_NS_XSI);
	nil = x != NULL && (strcmp((const char *)x, "true") == 0 ||
	    strcmp((const char *)x, "1") == 0);
	xmlFree(x);
	return (nil);
}

/* Text of an optional element: NULL when absent, nil or empty. */
static char *
ad_text(const xmlNode *n)
{
	char	*s;

	if (n == NULL || is_nil(n))
		return (NULL);
	s = node_text(n);
	if (*s == '\0') {
		free(s);
		return (NULL);
	}
	return (s);
}

static void
parse_ad_user(const xmlNode *n, struct ad_user *u)
{
	xmlNode		*c, *e, *v;
	enum ad_setting	 s;
	char		*name;

	memset(u, 0, sizeof(*u));
	if ((c = ad_child(n, "ErrorCode")) != NULL)
		node_text_buf(c, u->code, sizeof(u->code));
	u->error = ad_error_from_code(u->code);
	u->message = ad_text(ad_child(n, "ErrorMessage"));
	u->redirect = ad_text(ad_child(n, "RedirectTarget"));
	if ((c = ad_child(n, "UserSettingErrors")) != NULL)
		for (e = first_el(c); e != NULL; e = next_el(e)) {
			if (!is_ns(e, AD_NS) || strcmp((const char *)e->name,
			    "UserSettingError") != 0)
				continue;
			name = node_text(ad_child(e, "SettingName"));
			if ((s = ad_setting_from_name(name)) != AD_SETTING_MAX)
				u->missing |= AD_SETTING_BIT(s);
			free(name);
		}
	if ((c = ad_child(n, "UserSettings")) == NULL)
		return;
	/* StringSettings; other kinds carry no Value and are skipped. */
	for (e = first_el(c); e != NULL; e = next_el(e)) {
		if (!is_ns(e, AD_NS) ||
		    strcmp((const char *)e->name, "UserSetting") != 0)
			continue;
		name = node_text(ad_child(e, "Name"));
		s = ad_setting_from_name(name);
		free(name);
		v = ad_child(e, "Value");
		if (s == AD_SETTING_MAX || v == NULL || is_nil(v) ||
		    u->values[s] != NULL)
			continue;
		u->values[s] = node_text(v);
	}
}

static int
body_user_settings(struct pctx *p, xmlNode *op, void *arg)
{
	struct ews_user_settings	*out = arg;
	xmlNode				*resp, *c, *users;
	size_t				 cap = 0;

	if ((resp = ad_child(op, "Response")) == NULL)
		return (fail(p, "GetUserSettingsResponseMessage without "
		    "Response"));
	if ((c = ad_child(resp, "ErrorCode")) != NULL)
		node_text_buf(c, out->r.status.code,
		    sizeof(out->r.status.code));
	out->error = ad_error_from_code(out->r.status.code);
	out->r.status.class = out->error == AD_ERR_NONE ? EWS_CLASS_SUCCESS :
	    EWS_CLASS_ERROR;
	out->r.status.message = ad_text(ad_child(resp, "ErrorMessage"));
	if ((users = ad_child(resp, "UserResponses")) == NULL) {
		if (out->error != AD_ERR_NONE)
			return (0);
		return (fail(p, "Response without UserResponses"));
	}
	for (c = first_el(users); c != NULL; c = next_el(c)) {
		if (!is_ns(c, AD_NS) ||
		    strcmp((const char *)c->name, "UserResponse") != 0)
			continue;
		out->users = grow(out->users, out->nusers, &cap,
		    sizeof(*out->users));
		parse_ad_user(c, &out->users[out->nusers++]);
	}
	return (0);
}

/* ---- entry points -------------------------------------------------- */

int
dom_parse_response(const char *d, size_t len, struct ews_response *out,
    char **cause)
{
	memset(out, 0, sizeof(*out));
	return (parse_envelope(d, len, NULL, out, body_generic, out, cause));
}

int
dom_parse_unsubscribe(const char *d, size_t len, struct ews_response *out,
    char **cause)
{
	memset(out, 0, sizeof(*out));
	return (parse_envelope(d, len, "UnsubscribeResponse", out,
	    body_generic, out, cause));
}

int
dom_parse_subscribe(const char *d, size_t len, struct ews_subscribe *out,
    char **cause)
{
	memset(out, 0, sizeof(*out));
	return (parse_envelope(d, len, "SubscribeResponse", &out->r,
	    body_subscribe, out, cause));
}

int
dom_parse_get_events(const char *d, size_t len,
    struct ews_notifications *out, char **cause)
{
	memset(out, 0, sizeof(*out));
	return (parse_envelope(d, len, "GetEventsResponse", &out->r,
	    body_notifications, out, cause));
}

int
dom_parse_send_notification(const char *d, size_t len,
    struct ews_notifications *out, char **cause)
{
	memset(out, 0, sizeof(*out));
	return (parse_envelope(d, len, "SendNotification", &out->r,
	    body_notifications, out, cause));
}

int
dom_parse_streaming(const char *d, size_t len, struct ews_streaming *out,
    char **cause)
{
	memset(out, 0, sizeof(*out));
	return (parse_envelope(d, len, "GetStreamingEventsResponse", &out->r,
	    body_streaming, out, cause));
}

int
dom_parse_find_item(const char *d, size_t len, struct ews_calendar *out,
    char **cause)
{
	memset(out, 0, sizeof(*out));
	out->includes_last = true;
	return (parse_envelope(d, len, "FindItemResponse", &out->r,
	    body_find_item, out, cause));
}

int
dom_parse_get_item(const char *d, size_t len, struct ews_items *out,
    char **cause)
{
	memset(out, 0, sizeof(*out));
	return (parse_envelope(d, len, "GetItemResponse", &out->r,
	    body_get_item, out, cause));
}

int
dom_parse_availability(const char *d, size_t len,
    struct ews_availability *out, char **cause)
{
	memset(out, 0, sizeof(*out));
	return (parse_envelope(d, len, "GetUserAvailabilityResponse",
	    &out->r, body_availability, out, cause));
}

int
dom_parse_oof(const char *d, size_t len, struct ews_oof *out, char **cause)
{
	memset(out, 0, sizeof(*out));
	return (parse_envelope(d, len, "GetUserOofSettingsResponse", &out->r,
	    body_oof, out, cause));
}

int
dom_parse_user_settings(const char *d, size_t len,
    struct ews_user_settings *out, char **cause)
{
	memset(out, 0, sizeof(*out));
	return (parse_envelope_ns(d, len, AD_NS,
	    "GetUserSettingsResponseMessage", &out->r, body_user_settings, out,
	    cause));
}
