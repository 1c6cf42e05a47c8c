/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * XML pre-scan: one pass over the bytes, a handful of states (text, tag,
 * quoted value, comment/CDATA/PI), counting elements, attributes, text
 * runs, nesting and the namespace declarations in scope.
 */
#include "config.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ews/xmlscan.h"
#include "base/xmalloc.h"

/* Depth the scanner tracks namespace counts for; deeper is refused. */
#define XS_DEPTH_CAP	256

const struct xml_limits xml_limits_default = {
	XML_MAX_DEPTH, XML_MAX_ATTRS, XML_MAX_NS, XML_MAX_NODES
};

enum xs_state {
	XS_TEXT,	/* character data (or between elements) */
	XS_LT,		/* after '<' */
	XS_STAG,	/* in a start tag, outside quotes */
	XS_VALUE,	/* in a quoted attribute value */
	XS_ETAG,	/* in an end tag */
	XS_BANG,	/* after "<!" */
	XS_SKIP		/* comment, CDATA or PI: until term term '>' */
};

struct xs {
	const struct xml_limits	*lim;
	char			**cause;
	size_t			 nodes;
	unsigned		 depth;
	unsigned		 in_scope;	/* xmlns declarations */
	uint16_t		 ns_at[XS_DEPTH_CAP + 1];
	/* The start tag being read. */
	unsigned		 attrs;
	unsigned		 decls;
	bool			 slash;		/* last char was '/' */
	bool			 in_name;	/* reading a name */
	bool			 elem_name;	/* ... the element's own */
	char			 name[7];	/* first bytes of it */
	size_t			 nlen;
};

static int	 xs_fail(struct xs *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static bool	 xs_name_char(unsigned char);
static bool	 xs_is_xmlns(const struct xs *);
static int	 xs_node(struct xs *);
static int	 xs_open(struct xs *);
static void	 xs_close(struct xs *);
static size_t	 xs_skip(const unsigned char *, size_t, size_t, unsigned char);

static int
xs_fail(struct xs *x, const char *fmt, ...)
{
	va_list	 ap;

	if (x->cause != NULL) {
		va_start(ap, fmt);
		xvasprintf(x->cause, fmt, ap);
		va_end(ap);
	}
	return (-1);
}

static bool
xs_name_char(unsigned char c)
{
	return ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == ':' || c == '-' ||
	    c == '.' || c >= 0x80);
}

/* "xmlns" or "xmlns:..." */
static bool
xs_is_xmlns(const struct xs *x)
{
	return (x->nlen >= 5 && memcmp(x->name, "xmlns", 5) == 0 &&
	    (x->nlen == 5 || x->name[5] == ':'));
}

static int
xs_node(struct xs *x)
{
	if (++x->nodes > x->lim->max_nodes)
		return (xs_fail(x, "more than %zu XML nodes",
		    x->lim->max_nodes));
	return (0);
}

/* '>' of a start tag: the element and its declarations are in scope. */
static int
xs_open(struct xs *x)
{
	if (x->in_scope + x->decls > x->lim->max_ns)
		return (xs_fail(x, "more than %u XML namespace declarations "
		    "in scope", x->lim->max_ns));
	/* An empty element is one level deeper too, for a moment. */
	if (x->depth >= x->lim->max_depth || x->depth >= XS_DEPTH_CAP)
		return (xs_fail(x, "XML nested deeper than %u",
		    x->lim->max_depth < XS_DEPTH_CAP ? x->lim->max_depth :
		    XS_DEPTH_CAP));
	if (x->slash)		/* <empty/>: in and out at once */
		return (0);
	x->depth++;
	x->ns_at[x->depth] = (uint16_t)x->decls;
	x->in_scope += x->decls;
	return (0);
}

static void
xs_close(struct xs *x)
{
	if (x->depth == 0)
		return;		/* stray end tag: the parser says so */
	x->in_scope -= x->ns_at[x->depth];
	x->depth--;
}

/*
 * The index before the next c after i (the loop's i++ lands on it), or
 * the last index when there is none: a run of text, an attribute value
 * or an end tag is passed over at memchr's speed.
 */
static size_t
xs_skip(const unsigned char *p, size_t i, size_t len, unsigned char c)
{
	const unsigned char	*q;

	q = memchr(p + i + 1, c, len - i - 1);
	return (q == NULL ? len - 1 : (size_t)(q - p) - 1);
}

int
xml_prescan(const char *data, size_t len, const struct xml_limits *lim,
    char **cause)
{
	const unsigned char	*p = (const unsigned char *)data;
	struct xs		 x;
	enum xs_state		 st = XS_TEXT;
	unsigned char		 c, quote = 0, term = 0;
	unsigned		 run = 0, nbang = 0;
	bool			 in_text = false;
	size_t			 i;

	memset(&x, 0, sizeof x);
	x.lim = lim != NULL ? lim : &xml_limits_default;
	x.cause = cause;
	if (cause != NULL)
		*cause = NULL;
	for (i = 0; i < len; i++) {
		c = p[i];
		switch (st) {
		case XS_TEXT:
			if (c == '<') {
				st = XS_LT;
				in_text = false;
				break;
			}
			if (!in_text) {
				in_text = true;
				if (xs_node(&x) == -1)
					return (-1);
			}
			i = xs_skip(p, i, len, '<');
			break;
		case XS_LT:
			if (c == '/')
				st = XS_ETAG;
			else if (c == '!') {
				st = XS_BANG;
				nbang = 0;
			} else if (c == '?') {
				st = XS_SKIP;
				term = '?';
				run = 0;
				if (xs_node(&x) == -1)
					return (-1);
			} else {
				/* An element (or garbage the parser refuses) */
				st = XS_STAG;
				x.attrs = x.decls = 0;
				x.slash = false;
				x.in_name = x.elem_name = true;
				if (xs_node(&x) == -1)
					return (-1);
			}
			break;
		case XS_STAG:
			if (c == '"' || c == '\'') {
				st = XS_VALUE;
				quote = c;
				x.in_name = false;
				if (++x.attrs > x.lim->max_attrs)
					return (xs_fail(&x, "more than %u "
					    "attributes on an XML element",
					    x.lim->max_attrs));
				if (xs_node(&x) == -1)
					return (-1);
				if (xs_is_xmlns(&x))
					x.decls++;
				x.nlen = 0;
			} else if (c == '>') {
				if (xs_open(&x) == -1)
					return (-1);
				st = XS_TEXT;
			} else if (xs_name_char(c)) {
				if (!x.in_name) {
					x.in_name = true;
					x.elem_name = false;
					x.nlen = 0;
				}
				if (!x.elem_name && x.nlen < sizeof x.name)
					x.name[x.nlen] = (char)c;
				x.nlen++;
				x.slash = false;
			} else {
				x.in_name = false;
				x.slash = c == '/';
			}
			break;
		case XS_VALUE:
			if (c == quote)
				st = XS_STAG;
			else
				i = xs_skip(p, i, len, quote);
			break;
		case XS_ETAG:
			if (c == '>') {
				xs_close(&x);
				st = XS_TEXT;
			} else
				i = xs_skip(p, i, len, '>');
			break;
		case XS_BANG:
			/* "<!--" comment or "<![CDATA[", nothing else. */
			if (nbang < 2 && c == '-') {
				if (++nbang == 2) {
					st = XS_SKIP;
					term = '-';
					run = 0;
					if (xs_node(&x) == -1)
						return (-1);
				}
				break;
			}
			if (len - i < 7 && (memcmp(p + i, "[CDATA[",
			    len - i) == 0 || memcmp(p + i, "DOCTYPE",
			    len - i) == 0))
				return (0);	/* cut short: the parser says */
			if (nbang == 0 && c == '[' && len - i >= 7 &&
			    memcmp(p + i, "[CDATA[", 7) == 0) {
				i += 6;
				st = XS_SKIP;
				term = ']';
				run = 0;
				if (xs_node(&x) == -1)
					return (-1);
				break;
			}
			if (len - i >= 7 && memcmp(p + i, "DOCTYPE", 7) == 0)
				return (xs_fail(&x, "DOCTYPE not allowed"));
			return (xs_fail(&x, "XML markup declaration not "
			    "allowed"));
		case XS_SKIP:
			if (c == term)
				run++;
			else if (c == '>' && run >= (term == '?' ? 1u : 2u)) {
				st = XS_TEXT;
				in_text = false;
			} else
				run = 0;
			break;
		}
	}
	return (0);
}
