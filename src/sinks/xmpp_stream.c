/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * XEP-0114 stream reading and writing for the xmpp sink.  The reader
 * keeps no tree: it remembers the attributes of the current top-level
 * element and the name of its first child, which is all a presence
 * component acts on.
 */
#include "config.h"

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "sinks/sink_text.h"
#include "sinks/xmpp_stream.h"

#define XMPP_MAX_DEPTH	32
#define XMPP_NS_STREAM	"http://etherx.jabber.org/streams"

struct xmpp_reader {
	xmlParserCtxtPtr	 ctxt;
	xmlSAXHandler		 sax;
	xmpp_reader_cb		 cb;
	void			*arg;
	int			 depth;
	size_t			 stanza_bytes;	/* fed inside a stanza */
	char			*error;		/* why parsing stopped */

	/* the current top-level element */
	char			*name, *ns, *type, *from, *to, *id;
	char			*child, *child_ns;
};

static void	 rd_start(void *, const xmlChar *, const xmlChar *,
		    const xmlChar *, int, const xmlChar **, int, int,
		    const xmlChar **);
static void	 rd_end(void *, const xmlChar *, const xmlChar *,
		    const xmlChar *);
static void	 rd_doctype(void *, const xmlChar *, const xmlChar *,
		    const xmlChar *);
static xmlEntityPtr rd_entity(void *, const xmlChar *);
static void	 rd_pi(void *, const xmlChar *, const xmlChar *);
static void	 rd_serror(void *, xmlErrorPtr);
static void	 rd_stop(struct xmpp_reader *, const char *);
static void	 rd_clear(struct xmpp_reader *);
static char	*attr(int, const xmlChar **, const char *);

struct xmpp_reader *
xmpp_reader_new(xmpp_reader_cb cb, void *arg)
{
	struct xmpp_reader	*r;

	xmlInitParser();
	r = xcalloc(1, sizeof *r);
	r->cb = cb;
	r->arg = arg;
	memset(&r->sax, 0, sizeof r->sax);
	r->sax.initialized = XML_SAX2_MAGIC;
	r->sax.startElementNs = rd_start;
	r->sax.endElementNs = rd_end;
	r->sax.internalSubset = rd_doctype;
	r->sax.externalSubset = rd_doctype;
	r->sax.getEntity = rd_entity;
	r->sax.processingInstruction = rd_pi;
	r->sax.serror = rd_serror;
	r->ctxt = xmlCreatePushParserCtxt(&r->sax, r, NULL, 0, NULL);
	if (r->ctxt == NULL)
		abort();	/* out of memory */
	xmlCtxtUseOptions(r->ctxt, XML_PARSE_NONET | XML_PARSE_NOERROR |
	    XML_PARSE_NOWARNING);
	return (r);
}

void
xmpp_reader_set_arg(struct xmpp_reader *r, void *arg)
{
	r->arg = arg;
}

void
xmpp_reader_free(struct xmpp_reader *r)
{
	if (r == NULL)
		return;
	xmlFreeParserCtxt(r->ctxt);
	rd_clear(r);
	free(r->error);
	free(r);
}

int
xmpp_reader_feed(struct xmpp_reader *r, const char *data, size_t n,
    char **cause)
{
	const xmlError	*e;
	size_t		 off, chunk;

	for (off = 0; off < n && r->error == NULL; off += chunk) {
		chunk = n - off < 4096 ? n - off : 4096;
		if (r->depth > 1) {
			r->stanza_bytes += chunk;
			if (r->stanza_bytes > XMPP_STANZA_MAX) {
				rd_stop(r, "stanza too large");
				break;
			}
		}
		if (xmlParseChunk(r->ctxt, data + off, (int)chunk, 0) != 0 &&
		    r->error == NULL) {
			e = xmlCtxtGetLastError(r->ctxt);
			rd_stop(r, e != NULL && e->message != NULL ?
			    e->message : "malformed XML");
		}
	}
	if (r->error != NULL) {
		*cause = xstrdup(r->error);
		return (-1);
	}
	return (0);
}

/* ---- SAX ---- */

static void
rd_stop(struct xmpp_reader *r, const char *why)
{
	char	*nl;

	if (r->error != NULL)
		return;
	r->error = xstrdup(why);
	if ((nl = strchr(r->error, '\n')) != NULL)
		*nl = '\0';
	xmlStopParser(r->ctxt);
}

static void
rd_clear(struct xmpp_reader *r)
{
	free(r->name);
	free(r->ns);
	free(r->type);
	free(r->from);
	free(r->to);
	free(r->id);
	free(r->child);
	free(r->child_ns);
	r->name = r->ns = r->type = r->from = r->to = r->id = NULL;
	r->child = r->child_ns = NULL;
}

/* The value of an unprefixed attribute (allocated) or NULL. */
static char *
attr(int n, const xmlChar **a, const char *name)
{
	int	 i;

	/* SAX2: localname, prefix, URI, value, end per attribute. */
	for (i = 0; i < n; i++, a += 5)
		if (a[1] == NULL && strcmp((const char *)a[0], name) == 0)
			return (xstrndup((const char *)a[3],
			    (size_t)(a[4] - a[3])));
	return (NULL);
}

static void
rd_start(void *ctx, const xmlChar *local, const xmlChar *prefix,
    const xmlChar *uri, int nns, const xmlChar **ns, int nattr, int ndef,
    const xmlChar **attrs)
{
	struct xmpp_reader	*r = ctx;
	struct xmpp_stanza	 st;
	char			*id, *from;

	if (r->error != NULL)
		return;
	if (++r->depth > XMPP_MAX_DEPTH) {
		rd_stop(r, "elements nested too deep");
		return;
	}
	if (r->depth == 1) {
		if (strcmp((const char *)local, "stream") != 0 || uri == NULL ||
		    strcmp((const char *)uri, XMPP_NS_STREAM) != 0) {
			rd_stop(r, "not an XMPP stream");
			return;
		}
		memset(&st, 0, sizeof st);
		st.name = "stream";
		st.ns = XMPP_NS_STREAM;
		id = attr(nattr, attrs, "id");
		from = attr(nattr, attrs, "from");
		st.id = id;
		st.from = from;
		r->cb(XMPP_EV_OPEN, &st, r->arg);
		free(id);
		free(from);
		return;
	}
	if (r->depth == 2) {
		rd_clear(r);
		r->stanza_bytes = 0;
		r->name = xstrdup((const char *)local);
		r->ns = xstrdup(uri != NULL ? (const char *)uri : "");
		r->type = attr(nattr, attrs, "type");
		r->from = attr(nattr, attrs, "from");
		r->to = attr(nattr, attrs, "to");
		r->id = attr(nattr, attrs, "id");
		return;
	}
	if (r->depth == 3 && r->child == NULL) {
		r->child = xstrdup((const char *)local);
		r->child_ns = xstrdup(uri != NULL ? (const char *)uri : "");
	}
}

static void
rd_end(void *ctx, const xmlChar *local, const xmlChar *prefix,
    const xmlChar *uri)
{
	struct xmpp_reader	*r = ctx;
	struct xmpp_stanza	 st;

	if (r->error != NULL)
		return;
	if (r->depth == 2) {
		memset(&st, 0, sizeof st);
		st.name = r->name;
		st.ns = r->ns;
		st.type = r->type;
		st.from = r->from;
		st.to = r->to;
		st.id = r->id;
		st.child = r->child;
		st.child_ns = r->child_ns;
		r->depth--;
		r->cb(XMPP_EV_STANZA, &st, r->arg);
		rd_clear(r);
		return;
	}
	if (r->depth == 1) {
		memset(&st, 0, sizeof st);
		st.name = "stream";
		r->depth--;
		r->cb(XMPP_EV_CLOSE, &st, r->arg);
		return;
	}
	r->depth--;
}

static void
rd_doctype(void *ctx, const xmlChar *name, const xmlChar *ext,
    const xmlChar *sys)
{
	rd_stop(ctx, "DOCTYPE in an XMPP stream");
}

/* Only the predefined entities (&amp; and friends) exist. */
static xmlEntityPtr
rd_entity(void *ctx, const xmlChar *name)
{
	xmlEntityPtr	 e = xmlGetPredefinedEntity(name);

	if (e == NULL)
		rd_stop(ctx, "entity reference in an XMPP stream");
	return (e);
}

static void
rd_pi(void *ctx, const xmlChar *target, const xmlChar *data)
{
	rd_stop(ctx, "processing instruction in an XMPP stream");
}

static void
rd_serror(void *ctx, xmlErrorPtr e)
{
	/* Read back from the context in xmpp_reader_feed. */
}

/* ---- writing ---- */

void
xmpp_write_open(struct buf *b, const char *domain)
{
	buf_puts(b, "<?xml version='1.0'?><stream:stream "
	    "xmlns='jabber:component:accept' "
	    "xmlns:stream='" XMPP_NS_STREAM "' to='");
	sink_text_xml(b, domain);
	buf_puts(b, "'>");
}

void
xmpp_write_handshake(struct buf *b, const char *stream_id,
    const char *secret)
{
	EVP_MD_CTX	*c;
	unsigned char	 d[EVP_MAX_MD_SIZE];
	unsigned int	 n = 0, i;

	c = EVP_MD_CTX_new();
	EVP_DigestInit_ex(c, EVP_sha1(), NULL);
	EVP_DigestUpdate(c, stream_id, strlen(stream_id));
	EVP_DigestUpdate(c, secret, strlen(secret));
	EVP_DigestFinal_ex(c, d, &n);
	EVP_MD_CTX_free(c);
	buf_puts(b, "<handshake>");
	for (i = 0; i < n; i++)
		buf_printf(b, "%02x", d[i]);
	buf_puts(b, "</handshake>");
}

void
xmpp_write_presence(struct buf *b, const char *from, const char *to,
    const char *type, const char *show, const char *status)
{
	buf_puts(b, "<presence from='");
	sink_text_xml(b, from);
	buf_puts(b, "' to='");
	sink_text_xml(b, to);
	buf_putc(b, '\'');
	if (type != NULL) {
		buf_puts(b, " type='");
		sink_text_xml(b, type);
		buf_putc(b, '\'');
	}
	if ((type != NULL || show == NULL) && status == NULL) {
		buf_puts(b, "/>");
		return;
	}
	buf_putc(b, '>');
	if (type == NULL && show != NULL) {
		buf_puts(b, "<show>");
		sink_text_xml(b, show);
		buf_puts(b, "</show>");
	}
	if (status != NULL) {
		buf_puts(b, "<status>");
		sink_text_xml(b, status);
		buf_puts(b, "</status>");
	}
	buf_puts(b, "</presence>");
}

void
xmpp_write_iq_error(struct buf *b, const char *from, const char *to,
    const char *id)
{
	buf_puts(b, "<iq type='error' from='");
	sink_text_xml(b, from);
	buf_puts(b, "' to='");
	sink_text_xml(b, to);
	buf_puts(b, "' id='");
	sink_text_xml(b, id != NULL ? id : "");
	buf_puts(b, "'><error type='cancel'><service-unavailable "
	    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
}
