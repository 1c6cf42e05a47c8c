/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * SIP message handling for the sip sink.  Parsing is libosip2's (GNU
 * oSIP: header grammar, compact forms, folding, authentication
 * parameters); what is hand-written here is only the stream framing
 * (finding Content-Length before a message is complete, which needs no
 * full parse) and the PUBLISH text, a fixed template.
 */
#include "config.h"

#include <osipparser2/osip_parser.h>
#include <osipparser2/osip_port.h>
#include <osipparser2/osip_uri.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "sinks/sip_msg.h"

static void	 osip_once(void);
static void	 osip_quiet(const char *, int, osip_trace_level_t,
		    const char *, va_list);
static char	*dup_unquoted(const char *);
static int64_t	 header_int(osip_message_t *, const char *);
static bool	 header_name_is(const char *, size_t, const char *,
		    const char *);

/*
 * libosip2 builds its header table once per process, and traces parse
 * errors to stderr unless told not to: what a server sends wrong is
 * logged by the sink, once, in the daemon's words.
 */
static void
osip_once(void)
{
	static bool	 done;
	int		 l;

	if (!done) {
		parser_init();
		osip_trace_initialize_func(TRACE_LEVEL0, osip_quiet);
		for (l = TRACE_LEVEL0; l < END_TRACE_LEVEL; l++)
			osip_trace_disable_level((osip_trace_level_t)l);
		done = true;
	}
}

static void
osip_quiet(const char *file, int line, osip_trace_level_t level,
    const char *fmt, va_list ap)
{
}

/* ---- framing ---- */

/* Is the header line name (len bytes, before ':') long or compact? */
static bool
header_name_is(const char *name, size_t len, const char *full,
    const char *compact)
{
	while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t'))
		len--;
	return ((len == strlen(full) && strncasecmp(name, full, len) == 0) ||
	    (len == strlen(compact) && strncasecmp(name, compact, len) == 0));
}

int
sip_frame(const char *data, size_t n, size_t max, size_t *skip, size_t *len,
    char **cause)
{
	const char	*p, *end, *line, *eol, *colon, *v;
	size_t		 hlen, clen = 0;
	bool		 have_clen = false;
	char		*e;
	unsigned long	 cl;

	*skip = 0;
	while (*skip < n && (data[*skip] == '\r' || data[*skip] == '\n'))
		(*skip)++;
	p = data + *skip;
	n -= *skip;
	end = NULL;
	for (line = p; line + 3 < p + n; line++) {
		if (line[0] == '\r' && line[1] == '\n' && line[2] == '\r' &&
		    line[3] == '\n') {
			end = line;
			break;
		}
	}
	if (end == NULL) {
		if (n > max) {
			xasprintf(cause, "SIP headers longer than %zu bytes",
			    max);
			return (-1);
		}
		return (0);
	}
	hlen = (size_t)(end - p) + 4;
	/* The start line, then one header per line (folding: leading
	 * white space continues the previous one, never Content-Length). */
	line = memchr(p, '\n', hlen);
	for (line = line + 1; line < end; line = eol + 1) {
		eol = memchr(line, '\n', (size_t)(end + 2 - line));
		if (eol == NULL)
			break;
		if (*line == ' ' || *line == '\t')
			continue;
		colon = memchr(line, ':', (size_t)(eol - line));
		if (colon == NULL ||
		    !header_name_is(line, (size_t)(colon - line),
		    "Content-Length", "l"))
			continue;
		for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		errno = 0;
		cl = strtoul(v, &e, 10);
		while (e < eol && (*e == ' ' || *e == '\t' || *e == '\r'))
			e++;
		if (!isdigit((unsigned char)*v) || errno != 0 || e != eol ||
		    (have_clen && cl != clen)) {
			*cause = xstrdup("bad Content-Length");
			return (-1);
		}
		clen = cl;
		have_clen = true;
	}
	if (!have_clen) {
		*cause = xstrdup("SIP message without Content-Length on a "
		    "stream");
		return (-1);
	}
	if (clen > max || hlen + clen > max) {
		xasprintf(cause, "SIP message of %zu bytes (at most %zu)",
		    hlen + clen, max);
		return (-1);
	}
	if (n < hlen + clen)
		return (0);
	*len = hlen + clen;
	return (1);
}

/* ---- responses ---- */

static char *
dup_unquoted(const char *s)
{
	char	*d;

	if (s == NULL)
		return (NULL);
	d = xstrdup(s);
	osip_dequote(d);
	return (d);
}

/* A header's value as a non-negative integer, or -1. */
static int64_t
header_int(osip_message_t *m, const char *name)
{
	osip_header_t	*h = NULL;
	char		*e;
	long long	 v;

	if (osip_message_header_get_byname(m, name, 0, &h) < 0 || h == NULL ||
	    h->hvalue == NULL)
		return (-1);
	errno = 0;
	v = strtoll(h->hvalue, &e, 10);
	if (!isdigit((unsigned char)h->hvalue[0]) || errno != 0 || v < 0 ||
	    (*e != '\0' && *e != ' ' && *e != '\t' && *e != ';'))
		return (-1);
	return (v);
}

int
sip_response_parse(const char *data, size_t n, struct sip_response *r,
    char **cause)
{
	osip_message_t		*m = NULL;
	osip_via_t		*via = NULL;
	osip_generic_param_t	*br = NULL;
	osip_header_t		*h = NULL;
	osip_www_authenticate_t	*wa = NULL;
	char			*e;
	unsigned long		 cs;
	int			 i, rc = -1;

	osip_once();
	if (n > SIP_MSG_MAX) {
		*cause = xstrdup("SIP message too large");
		return (-1);
	}
	if (osip_message_init(&m) != 0) {
		*cause = xstrdup("out of memory");
		return (-1);
	}
	if (osip_message_parse(m, data, n) != 0) {
		*cause = xstrdup("not a SIP message");
		goto done;
	}
	if (!MSG_IS_RESPONSE(m)) {
		rc = 0;
		goto done;
	}
	memset(r, 0, sizeof *r);
	r->expires = r->min_expires = -1;
	r->status = m->status_code;
	if (r->status < 100 || r->status > 699) {
		xasprintf(cause, "SIP status %d", r->status);
		goto fail;
	}
	r->reason = xstrdup(m->reason_phrase != NULL ? m->reason_phrase : "");
	if (osip_message_get_via(m, 0, &via) < 0 || via == NULL ||
	    osip_via_param_get_byname(via, "branch", &br) < 0 || br == NULL ||
	    br->gvalue == NULL) {
		*cause = xstrdup("response without a Via branch");
		goto fail;
	}
	r->branch = xstrdup(br->gvalue);
	if (m->call_id == NULL || m->call_id->number == NULL) {
		*cause = xstrdup("response without Call-ID");
		goto fail;
	}
	if (m->call_id->host != NULL)
		xasprintf(&r->call_id, "%s@%s", m->call_id->number,
		    m->call_id->host);
	else
		r->call_id = xstrdup(m->call_id->number);
	if (m->cseq == NULL || m->cseq->number == NULL ||
	    m->cseq->method == NULL) {
		*cause = xstrdup("response without CSeq");
		goto fail;
	}
	errno = 0;
	cs = strtoul(m->cseq->number, &e, 10);
	if (*e != '\0' || errno != 0 || cs > UINT32_MAX) {
		*cause = xstrdup("bad CSeq number");
		goto fail;
	}
	r->cseq = (uint32_t)cs;
	r->cseq_method = xstrdup(m->cseq->method);
	if (osip_message_header_get_byname(m, "sip-etag", 0, &h) >= 0 &&
	    h != NULL && h->hvalue != NULL && h->hvalue[0] != '\0')
		r->etag = xstrdup(h->hvalue);
	r->expires = header_int(m, "expires");
	r->min_expires = header_int(m, "min-expires");

	/* The first Digest challenge of the kind this status asks for. */
	for (i = 0; r->status == 401 || r->status == 407; i++) {
		wa = NULL;
		if (r->status == 401 ?
		    osip_message_get_www_authenticate(m, i, &wa) < 0 :
		    osip_message_get_proxy_authenticate(m, i, &wa) < 0)
			break;
		if (wa == NULL || wa->auth_type == NULL ||
		    strcasecmp(wa->auth_type, "Digest") != 0)
			continue;
		r->has_challenge = true;
		r->challenge.proxy = r->status == 407;
		r->challenge.realm = dup_unquoted(wa->realm);
		r->challenge.nonce = dup_unquoted(wa->nonce);
		r->challenge.opaque = dup_unquoted(wa->opaque);
		r->challenge.algorithm = dup_unquoted(wa->algorithm);
		r->challenge.qop = dup_unquoted(wa->qop_options);
		r->challenge.stale = wa->stale != NULL &&
		    strcasecmp(wa->stale, "true") == 0;
		break;
	}
	rc = 1;
	goto done;
fail:
	sip_response_clear(r);
done:
	osip_message_free(m);
	return (rc);
}

void
sip_response_clear(struct sip_response *r)
{
	free(r->reason);
	free(r->branch);
	free(r->call_id);
	free(r->cseq_method);
	free(r->etag);
	sip_challenge_clear(&r->challenge);
	memset(r, 0, sizeof *r);
	r->expires = r->min_expires = -1;
}

/* ---- requests ---- */

void
sip_publish_write(struct buf *out, const struct sip_publish *p)
{
	buf_printf(out, "PUBLISH %s SIP/2.0\r\n", p->uri);
	buf_printf(out, "Via: SIP/2.0/%s %s;branch=%s;rport\r\n",
	    p->transport, p->via_host, p->branch);
	buf_puts(out, "Max-Forwards: 70\r\n");
	buf_printf(out, "From: <%s>;tag=%s\r\n", p->from, p->from_tag);
	buf_printf(out, "To: <%s>\r\n", p->uri);
	buf_printf(out, "Call-ID: %s\r\n", p->call_id);
	buf_printf(out, "CSeq: %u PUBLISH\r\n", p->cseq);
	buf_puts(out, "Event: presence\r\n");
	buf_printf(out, "Expires: %lld\r\n", (long long)p->expires);
	if (p->if_match != NULL)
		buf_printf(out, "SIP-If-Match: %s\r\n", p->if_match);
	if (p->authorization != NULL)
		buf_printf(out, "%s: %s\r\n", p->proxy_auth ?
		    "Proxy-Authorization" : "Authorization", p->authorization);
	if (p->user_agent != NULL)
		buf_printf(out, "User-Agent: %s\r\n", p->user_agent);
	if (p->body != NULL) {
		buf_puts(out, "Content-Type: application/pidf+xml\r\n");
		buf_printf(out, "Content-Length: %zu\r\n\r\n", p->body_len);
		buf_append(out, p->body, p->body_len);
	} else
		buf_puts(out, "Content-Length: 0\r\n\r\n");
}

/* ---- URIs ---- */

int
sip_uri_target(const char *uri, char *host, size_t hostlen, uint16_t *port,
    bool *tls, char *transport, size_t tlen)
{
	osip_uri_t		*u = NULL;
	osip_uri_param_t	*tp = NULL;
	const char		*h;
	size_t			 l;
	char			*e;
	unsigned long		 pn;
	int			 rc = -1;

	osip_once();
	*port = 0;
	*tls = false;
	transport[0] = '\0';
	host[0] = '\0';
	if (osip_uri_init(&u) != 0)
		return (-1);
	if (osip_uri_parse(u, uri) != 0 || u->scheme == NULL ||
	    u->host == NULL || u->host[0] == '\0')
		goto done;
	if (strcasecmp(u->scheme, "sips") == 0)
		*tls = true;
	else if (strcasecmp(u->scheme, "sip") != 0)
		goto done;
	h = u->host;
	l = strlen(h);
	if (h[0] == '[' && l > 2 && h[l - 1] == ']') {
		h++;
		l -= 2;
	}
	if (l + 1 > hostlen)
		goto done;
	memcpy(host, h, l);
	host[l] = '\0';
	if (u->port != NULL && u->port[0] != '\0') {
		errno = 0;
		pn = strtoul(u->port, &e, 10);
		if (*e != '\0' || errno != 0 || pn == 0 || pn > 65535)
			goto done;
		*port = (uint16_t)pn;
	}
	if (osip_uri_uparam_get_byname(u, "transport", &tp) == 0 &&
	    tp != NULL && tp->gvalue != NULL) {
		if (strlen(tp->gvalue) + 1 > tlen)
			goto done;
		for (l = 0; tp->gvalue[l] != '\0'; l++)
			transport[l] = (char)tolower(
			    (unsigned char)tp->gvalue[l]);
		transport[l] = '\0';
	}
	rc = 0;
done:
	osip_uri_free(u);
	return (rc);
}
