/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Streaming XML reader: the subset reader (xmlsubset.h) first, libxml2's
 * SAX2 interface for whatever that does not take; both drive the same
 * table.  One parser context per thread is kept and reset for each
 * document (a fresh context, its dictionary and buffers cost more than
 * most EWS answers take to parse).
 * Text is reported as a tree parser would build it: libxml2 drops
 * "ignorable" white space by looking at the node it is building, so a
 * stand-in node per open element carries what that check reads.
 */
#include "config.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/dict.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "ews/soap.h"
#include "ews/autodiscover.h"
#include "ews/xmlread.h"
#include "ews/xmlscan.h"
#include "ews/xmlsubset.h"

/* A context whose dictionary grew past this is replaced. */
#define XR_DICT_MAX	4096

#define XR_SKIP		0xff	/* frame.row of an element nobody reads */

/* One open element. */
struct xr_frame {
	xmlNode		 node;		/* libxml2's blank-text check */
	uint64_t	 seen;		/* rows below it met once */
	unsigned	 nchildren;	/* element children so far */
	size_t		 text_at;	/* text.len when it opened */
	const char	*name;		/* as a tree would name it */
	const char	*uri;
	uint8_t		 row;		/* or XR_SKIP */
};

struct xr {
	xmlParserCtxt		*ctxt;
	const struct xr_parser	*p;
	void			*arg;
	unsigned		 depth;		/* open elements */
	bool			 too_deep;
	bool			 doctype;
	bool			 failed;
	char			*cause;
	unsigned		 texts;		/* XR_TEXT frames open */
	struct buf		 text;
	struct buf		 scratch;	/* attribute values, names */
	/* The element being opened (start()) or closed (end()). */
	const char		*name;
	const char		*uri;
	const xmlChar		**attrs;	/* libxml2's, 5 a row */
	const struct xs_attr	*xattrs;	/* or the subset reader's */
	int			 nattrs;
	struct xs_doc		 xs;
	struct xr_frame		 frames[XR_MAX_DEPTH + 1];
};

/* Stand-ins for the children the blank-text check looks at. */
static xmlNode	 xr_text_node = { .type = XML_TEXT_NODE };
static xmlNode	 xr_elem_node = { .type = XML_ELEMENT_NODE };
static xmlNode	 xr_other_node = { .type = XML_COMMENT_NODE };

static _Thread_local struct xr *xr_cached;
static _Thread_local bool xr_libxml_only;

static void	 xr_start(void *, const xmlChar *, const xmlChar *,
		    const xmlChar *, int, const xmlChar **, int, int,
		    const xmlChar **);
static void	 xr_end(void *, const xmlChar *, const xmlChar *,
		    const xmlChar *);
static void	 xr_chars(void *, const xmlChar *, int);
static void	 xr_comment(void *, const xmlChar *);
static void	 xr_pi(void *, const xmlChar *, const xmlChar *);
static void	 xr_doctype(void *, const xmlChar *, const xmlChar *,
		    const xmlChar *);
static void	 xr_quiet(void *, xmlError *);
static struct xr *xr_get(void);
static void	 xr_put(struct xr *, bool);
static void	 xr_child(struct xr *, xmlNode *);
static bool	 xr_match(const struct xr_shape *, const char *,
		    const char *);
static const char *xr_qname(struct xr *, const xmlChar *, const xmlChar *,
		    const xmlChar *);
static bool	 xr_open(struct xr *, const char *, const char *);
static void	 xr_close(struct xr *);
static void	 xr_text(struct xr *, const char *, size_t);

/* ---- the context ---- */

static struct xr *
xr_get(void)
{
	struct xr	*x;
	xmlSAXHandler	*sax;

	if ((x = xr_cached) != NULL) {
		xr_cached = NULL;
		return (x);
	}
	xmlInitParser();
	x = xcalloc(1, sizeof *x);
	buf_init(&x->text);
	buf_init(&x->scratch);
	if ((x->ctxt = xmlNewParserCtxt()) == NULL) {
		free(x);
		return (NULL);
	}
	sax = x->ctxt->sax;
	memset(sax, 0, sizeof *sax);
	sax->initialized = XML_SAX2_MAGIC;
	sax->startElementNs = xr_start;
	sax->endElementNs = xr_end;
	sax->characters = xr_chars;
	sax->comment = xr_comment;
	sax->processingInstruction = xr_pi;
	sax->internalSubset = xr_doctype;
	sax->serror = xr_quiet;
	return (x);
}

/* Keep x for the next document, unless it is suspect or grown. */
static void
xr_put(struct xr *x, bool keep)
{
	if (keep && x->ctxt->nsNr == 0 && x->ctxt->nameNr == 0 &&
	    xmlDictSize(x->ctxt->dict) <= XR_DICT_MAX && xr_cached == NULL) {
		x->ctxt->_private = NULL;
		/* Constant memory: drop a big buffer, keep a small one. */
		if (x->text.cap > 65536)
			buf_free(&x->text);
		if (x->scratch.cap > 65536)
			buf_free(&x->scratch);
		if (x->xs.copycap > 65536)
			xs_free(&x->xs);
		xr_cached = x;
		return;
	}
	xmlFreeParserCtxt(x->ctxt);
	buf_free(&x->text);
	buf_free(&x->scratch);
	xs_free(&x->xs);
	free(x->cause);
	free(x);
}

void
xr_cleanup(void)
{
	struct xr	*x;

	if ((x = xr_cached) == NULL)
		return;
	xr_cached = NULL;
	xr_put(x, false);
}

/* ---- SAX callbacks ---- */

static void
xr_quiet(void *arg, xmlError *err)
{
	/* Errors are read back from the context; keep stderr clean. */
}

/* Stop before the internal subset is read: no entity is ever declared. */
static void
xr_doctype(void *ctx, const xmlChar *name, const xmlChar *ext,
    const xmlChar *sys)
{
	xmlParserCtxt	*ctxt = ctx;
	struct xr	*x = ctxt->_private;

	x->doctype = true;
	xmlStopParser(ctxt);
}

/* A child node of the open element, as the tree would record it. */
static void
xr_child(struct xr *x, xmlNode *kind)
{
	xmlNode	*n;

	if (x->depth == 0 || x->depth > XR_MAX_DEPTH)
		return;
	n = &x->frames[x->depth].node;
	if (n->children == NULL)
		n->children = kind;
	n->last = kind;
}

/* The name a tree gives an element or attribute. */
static const char *
xr_qname(struct xr *x, const xmlChar *local, const xmlChar *prefix,
    const xmlChar *uri)
{
	const xmlChar	*q;

	if (prefix == NULL || uri != NULL)
		return ((const char *)local);
	/* An undeclared prefix stays part of the name. */
	q = xmlDictQLookup(x->ctxt->dict, prefix, local);
	return (q != NULL ? (const char *)q : (const char *)local);
}

static bool
xr_match(const struct xr_shape *s, const char *name, const char *uri)
{
	if (s->name != NULL && strcmp(s->name, name) != 0)
		return (false);
	switch (s->ns) {
	case XR_NS_ANY:
		return (true);
	case XR_NS_ENV:
		return (uri != NULL && strcmp(uri, SOAP_NS_ENV) == 0);
	case XR_NS_EWS:
		return (uri != NULL && (strcmp(uri, SOAP_NS_M) == 0 ||
		    strcmp(uri, SOAP_NS_T) == 0));
	case XR_NS_M:
		return (uri != NULL && strcmp(uri, SOAP_NS_M) == 0);
	case XR_NS_AD:
		return (uri != NULL && strcmp(uri, AD_NS) == 0);
	default:
		return (false);
	}
}

static void
xr_start(void *ctx, const xmlChar *local, const xmlChar *prefix,
    const xmlChar *uri, int nns, const xmlChar **ns, int nattrs,
    int ndefaulted, const xmlChar **attrs)
{
	xmlParserCtxt		*ctxt = ctx;
	struct xr		*x = ctxt->_private;

	xr_child(x, &xr_elem_node);
	x->attrs = attrs;
	x->nattrs = nattrs;
	if (xr_open(x, xr_qname(x, local, prefix, uri), (const char *)uri))
		ctxt->node = &x->frames[x->depth].node;
	x->attrs = NULL;
	x->nattrs = 0;
}

/*
 * An element opened (its attributes in x->attrs or x->xattrs).  Returns
 * whether it has a frame (it is not too deep).
 */
static bool
xr_open(struct xr *x, const char *name, const char *uri)
{
	const struct xr_parser	*p = x->p;
	struct xr_frame		*parent, *f;
	unsigned		 i, prow;
	uint8_t			 row = XR_SKIP;
	bool			 first;

	if (x->depth >= XR_MAX_DEPTH) {
		x->too_deep = true;
		x->depth++;
		return (false);
	}
	parent = x->depth > 0 ? &x->frames[x->depth] : NULL;
	f = &x->frames[++x->depth];
	f->node.type = XML_ELEMENT_NODE;
	f->node.children = f->node.last = NULL;
	f->node.content = NULL;
	f->seen = 0;
	f->nchildren = 0;
	f->text_at = x->text.len;
	f->name = name;
	f->uri = uri;
	if (x->failed)
		goto out;
	if (parent == NULL) {
		if (xr_match(&p->shapes[0], name, f->uri))
			row = 0;
		else if (p->unmatched != NULL) {
			x->name = name;
			x->uri = f->uri;
			p->unmatched(x, XR_DOC, x->arg);
		}
		goto out;
	}
	if ((prow = parent->row) == XR_SKIP)
		goto out;
	first = parent->nchildren++ == 0;
	for (i = 1; i < p->nshapes; i++) {
		if (p->shapes[i].parent != prow ||
		    ((p->shapes[i].flags & XR_FIRST_CHILD) && !first) ||
		    !xr_match(&p->shapes[i], name, f->uri))
			continue;
		if (!(p->shapes[i].flags & XR_EACH) &&
		    (parent->seen & (1ULL << i)))
			break;		/* a repeat: only the first counts */
		parent->seen |= 1ULL << i;
		row = (uint8_t)i;
		break;
	}
	if (row == XR_SKIP && first && p->unmatched != NULL) {
		for (i = 1; i < p->nshapes; i++)
			if (p->shapes[i].parent == prow &&
			    (p->shapes[i].flags & XR_FIRST_CHILD))
				break;
		if (i < p->nshapes) {
			x->name = name;
			x->uri = f->uri;
			p->unmatched(x, prow, x->arg);
		}
	}
out:
	f->row = row;
	if (row == XR_SKIP)
		return (true);
	if (p->shapes[row].flags & XR_TEXT)
		x->texts++;
	if (p->start != NULL && !x->failed) {
		x->name = name;
		x->uri = f->uri;
		p->start(x, row, x->arg);
	}
	return (true);
}

static void
xr_end(void *ctx, const xmlChar *local, const xmlChar *prefix,
    const xmlChar *uri)
{
	xmlParserCtxt		*ctxt = ctx;
	struct xr		*x = ctxt->_private;

	xr_close(x);
	if (x->depth <= XR_MAX_DEPTH)
		ctxt->node = x->depth > 0 ? &x->frames[x->depth].node : NULL;
}

static void
xr_close(struct xr *x)
{
	const struct xr_parser	*p = x->p;
	struct xr_frame		*f;
	char			*s, *e, keep = 0;
	uint8_t			 row;

	if (x->depth > XR_MAX_DEPTH) {
		x->depth--;
		return;
	}
	f = &x->frames[x->depth];
	row = f->row;
	if (row != XR_SKIP && (p->shapes[row].flags & XR_TEXT)) {
		x->texts--;
		if (!x->failed && p->end != NULL) {
			/* Trimmed in place; the byte after it comes back. */
			buf_reserve(&x->text, 1);
			s = x->text.data + f->text_at;
			e = x->text.data + x->text.len;
			while (s < e && isspace((unsigned char)*s))
				s++;
			while (e > s && isspace((unsigned char)e[-1]))
				e--;
			keep = *e;
			*e = '\0';
			x->name = f->name;
			x->uri = f->uri;
			p->end(x, row, s, x->arg);
			*e = keep;
		}
		if (x->texts == 0)
			x->text.len = 0;
	} else if (row != XR_SKIP && !x->failed && p->end != NULL) {
		x->name = f->name;
		x->uri = f->uri;
		p->end(x, row, NULL, x->arg);
	}
	x->depth--;
}

static void
xr_chars(void *ctx, const xmlChar *ch, int len)
{
	xmlParserCtxt	*ctxt = ctx;
	struct xr	*x = ctxt->_private;

	xr_child(x, &xr_text_node);
	if (len > 0)
		xr_text(x, (const char *)ch, (size_t)len);
}

static void
xr_text(struct xr *x, const char *ch, size_t len)
{
	if (x->texts > 0)
		buf_append(&x->text, ch, len);
}

static void
xr_comment(void *ctx, const xmlChar *value)
{
	xmlParserCtxt	*ctxt = ctx;

	xr_child(ctxt->_private, &xr_other_node);
}

static void
xr_pi(void *ctx, const xmlChar *target, const xmlChar *data)
{
	xmlParserCtxt	*ctxt = ctx;

	xr_child(ctxt->_private, &xr_other_node);
}

/* ---- for handlers ---- */

int
xr_fail(struct xr *x, const char *fmt, ...)
{
	va_list	 ap;

	if (!x->failed) {
		va_start(ap, fmt);
		xvasprintf(&x->cause, fmt, ap);
		va_end(ap);
		x->failed = true;
	}
	return (-1);
}

const char *
xr_name(const struct xr *x)
{
	return (x->name);
}

const char *
xr_uri(const struct xr *x)
{
	return (x->uri);
}

const char *
xr_parent_name(const struct xr *x)
{
	return (x->depth > 1 ? x->frames[x->depth - 1].name : "");
}

const char *
xr_attr(struct xr *x, const char *name, const char *nsuri)
{
	const struct xs_attr	*xa;
	const xmlChar		**a;
	const char		*v, *end, *amp;
	int			 i;

	if (x->xattrs != NULL) {
		/* The subset reader's: decoded already. */
		for (i = 0; i < x->nattrs; i++) {
			xa = &x->xattrs[i];
			if (strcmp(xa->local, name) != 0)
				continue;
			if (nsuri == NULL ? xa->prefixed : (xa->uri == NULL ||
			    strcmp(xa->uri, nsuri) != 0))
				continue;
			return (xa->value);
		}
		return (NULL);
	}
	for (i = 0; i < x->nattrs; i++) {
		a = x->attrs + i * 5;	/* local, prefix, URI, value, end */
		if (strcmp((const char *)a[0], name) != 0)
			continue;
		if (nsuri == NULL ? a[1] != NULL : (a[2] == NULL ||
		    strcmp((const char *)a[2], nsuri) != 0))
			continue;
		v = (const char *)a[3];
		end = (const char *)a[4];
		buf_reset(&x->scratch);
		/*
		 * A value the parser had to rewrite (it ends in a NUL) holds
		 * every '&' as "&#38;", which a tree parser decodes again.
		 */
		while (*end == '\0' && (amp = memmem(v, (size_t)(end - v),
		    "&#38;", 5)) != NULL) {
			buf_append(&x->scratch, v, (size_t)(amp - v));
			buf_putc(&x->scratch, '&');
			v = amp + 5;
		}
		buf_append(&x->scratch, v, (size_t)(end - v));
		return (buf_str(&x->scratch));
	}
	return (NULL);
}

char *
xr_attr_dup(struct xr *x, const char *name)
{
	const char	*v;

	return ((v = xr_attr(x, name, NULL)) != NULL ? xstrdup(v) : NULL);
}

/* ---- reading ---- */

void
xr_set_subset(bool on)
{
	xr_libxml_only = !on;
}

/* The subset reader's events through the table. */
static void
xr_replay(struct xr *x)
{
	const struct xs_event	*ev;
	size_t			 i;

	for (i = 0; i < x->xs.nev; i++) {
		ev = &x->xs.ev[i];
		switch (ev->kind) {
		case XS_START:
			x->xattrs = x->xs.attrs + ev->a;
			x->nattrs = (int)ev->n;
			(void)xr_open(x, ev->name, ev->uri);
			x->xattrs = NULL;
			x->nattrs = 0;
			break;
		case XS_END:
			xr_close(x);
			break;
		case XS_TEXT:
			xr_text(x, ev->name, ev->a);
			break;
		}
	}
}

int
xr_read(const struct xr_parser *p, void *arg, const char *data, size_t len,
    char **cause)
{
	struct xr	*x = NULL;
	const xmlError	*e;
	char		*msg, *nl, *dummy = NULL;
	int		 rc = 0;
	bool		 keep, subset = false;

	if (cause == NULL)
		cause = &dummy;
	*cause = NULL;
	if (len > XR_MAX_DOC)
		xasprintf(cause, "document too large (%zu bytes)", len);
	else if (len == 0 || len > INT_MAX)
		*cause = xstrdup("empty document");
	else if ((x = xr_get()) == NULL)
		*cause = xstrdup("out of memory for the XML parser");
	/*
	 * In the subset: within the pre-scan's limits.  Else the pre-scan,
	 * linear, before libxml2: what would make the parse slow or big.
	 */
	else if (!(subset = !xr_libxml_only &&
	    xs_read(&x->xs, data, len) == 0) &&
	    xml_prescan(data, len, &xml_limits_default, cause) != 0) {
		xr_put(x, true);
		x = NULL;
	}
	if (x == NULL) {
		free(dummy);
		return (-2);
	}
	x->p = p;
	x->arg = arg;
	x->depth = 0;
	x->too_deep = x->doctype = x->failed = false;
	x->texts = 0;
	buf_reset(&x->text);
	if (subset) {
		/* In the subset: well-formed, no DOCTYPE, not too deep. */
		xr_replay(x);
		keep = true;
		if (x->failed) {
			*cause = x->cause;
			x->cause = NULL;
			rc = -1;
		}
		goto out;
	}
	x->ctxt->_private = x;
	xmlCtxtReadMemory(x->ctxt, data, (int)len, NULL, NULL,
	    XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR |
	    XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
	keep = x->ctxt->wellFormed && !x->doctype;
	if (x->doctype) {
		*cause = xstrdup("DOCTYPE not allowed");
		rc = -2;
	} else if (!x->ctxt->wellFormed) {
		e = xmlCtxtGetLastError(x->ctxt);
		msg = xstrdup(e != NULL && e->message != NULL ? e->message :
		    "parse error");
		if ((nl = strchr(msg, '\n')) != NULL)
			*nl = '\0';
		xasprintf(cause, "malformed XML: line %d: %s",
		    e != NULL ? e->line : 0, msg);
		free(msg);
		rc = -2;
	} else if (x->too_deep) {
		xasprintf(cause, "document nested deeper than %d",
		    XR_MAX_DEPTH);
		rc = -2;
	} else if (x->failed) {
		*cause = x->cause;
		x->cause = NULL;
		rc = -1;
	}
out:
	free(x->cause);
	x->cause = NULL;
	x->ctxt->node = NULL;
	xr_put(x, keep);
	free(dummy);
	return (rc);
}
