/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The EWS subset of XML read in one pass over a copy of the document:
 * names are NUL-terminated and references decoded in place (a decoded
 * reference is never longer than the reference), so every string the
 * events carry points into the copy.  Whatever is not plainly in the
 * subset is refused, never guessed at: the caller then reads the
 * document with libxml2, which decides whether it is well-formed.
 *
 * White space, as libxml2 reports it with XML_PARSE_NOBLANKS and no DTD
 * (areBlanks() in its parser.c): a run of white space between two tags
 * is dropped when the element around it has an element child (it is
 * then the only kind of text that element may hold here: mixed content
 * is not in the subset); the text of an element without element
 * children is reported whole, white space included.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/xmalloc.h"
#include "ews/xmlscan.h"
#include "ews/xmlsubset.h"

#define XS_MAX_NAME	1000		/* bytes in a qualified name */
#define XS_MAX_RUN	(1024 * 1024)	/* bytes in one text run or value */

#define XS_NS_XML	"http://www.w3.org/XML/1998/namespace"
#define XS_NS_XMLNS	"http://www.w3.org/2000/xmlns/"

/* An element open. */
struct xs_open {
	const char	*qname;		/* as in the start tag, qlen bytes */
	size_t		 qlen;
	size_t		 nns;		/* d->nns before its declarations */
	bool		 child;		/* has an element child */
};

/* An attribute of the start tag being read. */
struct xs_tagattr {
	char		*q;
	size_t		 qlen;
	size_t		 colon;		/* where the prefix's ':' is; 0: none */
	char		*value;
	char		*vend;
	bool		 refs;		/* the value held a reference */
};

struct xs_state {
	struct xs_doc	*d;
	char		*p;
	unsigned	 depth;
	struct xs_open	 open[XS_MAX_DEPTH + 1];
};

static inline bool
xs_name_start(unsigned char c)
{
	return (((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_');
}

static inline bool
xs_name_char(unsigned char c)
{
	return (xs_name_start(c) || (c >= '0' && c <= '9') || c == '.' ||
	    c == '-');
}

/* Character data that stands for itself, in text and in values. */
static inline bool
xs_plain(unsigned char c)
{
	return (c > 0x20 && c < 0x7f && c != '<' && c != '&' && c != ']' &&
	    c != '"' && c != '\'');
}

static inline bool
xs_ws(char c)
{
	/* A carriage return is not in the subset (libxml2 rewrites it). */
	return (c == ' ' || c == '\n' || c == '\t');
}

static char *
xs_skip_ws(char *p)
{
	while (xs_ws(*p))
		p++;
	return (p);
}

/*
 * A qualified name at p: [A-Za-z_][A-Za-z0-9._-]*, at most one ':'
 * between two such parts.  Returns its length, 0 when there is none.
 */
static size_t
xs_qname(const char *p, size_t *colon)
{
	size_t	 i;

	*colon = 0;
	if (!xs_name_start((unsigned char)p[0]))
		return (0);
	for (i = 1;; i++) {
		if (xs_name_char((unsigned char)p[i]))
			continue;
		if (p[i] == ':' && *colon == 0 &&
		    xs_name_start((unsigned char)p[i + 1])) {
			*colon = i;
			continue;
		}
		break;
	}
	return (i > XS_MAX_NAME ? 0 : i);
}

static bool
xs_char_ok(uint32_t c)
{
	return (c == 0x9 || c == 0xa || c == 0xd ||
	    (c >= 0x20 && c <= 0xd7ff) || (c >= 0xe000 && c <= 0xfffd) ||
	    (c >= 0x10000 && c <= 0x10ffff));
}

/* A reference at *rp ('&'), decoded to *wp.  -1: not in the subset. */
static int
xs_ref(char **rp, char **wp)
{
	static const struct {
		const char	*name;
		size_t		 len;
		char		 c;
	} pre[] = {
		{ "lt;", 3, '<' }, { "gt;", 3, '>' }, { "amp;", 4, '&' },
		{ "apos;", 5, '\'' }, { "quot;", 5, '"' }
	};
	char		*r = *rp + 1, *w = *wp;
	uint32_t	 c = 0, v;
	size_t		 i, n;

	if (*r != '#') {
		for (i = 0; i < sizeof pre / sizeof pre[0]; i++)
			if (strncmp(r, pre[i].name, pre[i].len) == 0)
				break;
		if (i == sizeof pre / sizeof pre[0])
			return (-1);
		*w++ = pre[i].c;
		*rp = r + pre[i].len;
		*wp = w;
		return (0);
	}
	r++;
	if (*r == 'x') {
		for (r++, n = 0;; r++, n++) {
			if (*r >= '0' && *r <= '9')
				v = (uint32_t)(*r - '0');
			else if (*r >= 'a' && *r <= 'f')
				v = (uint32_t)(*r - 'a' + 10);
			else if (*r >= 'A' && *r <= 'F')
				v = (uint32_t)(*r - 'A' + 10);
			else
				break;
			if ((c = c * 16 + v) > 0x10ffff)
				return (-1);
		}
	} else {
		for (n = 0; *r >= '0' && *r <= '9'; r++, n++)
			if ((c = c * 10 + (uint32_t)(*r - '0')) > 0x10ffff)
				return (-1);
	}
	if (n == 0 || *r != ';' || !xs_char_ok(c))
		return (-1);
	/* UTF-8: never longer than the reference ("&#N;" and up). */
	if (c < 0x80)
		*w++ = (char)c;
	else if (c < 0x800) {
		*w++ = (char)(0xc0 | (c >> 6));
		*w++ = (char)(0x80 | (c & 0x3f));
	} else if (c < 0x10000) {
		*w++ = (char)(0xe0 | (c >> 12));
		*w++ = (char)(0x80 | ((c >> 6) & 0x3f));
		*w++ = (char)(0x80 | (c & 0x3f));
	} else {
		*w++ = (char)(0xf0 | (c >> 18));
		*w++ = (char)(0x80 | ((c >> 12) & 0x3f));
		*w++ = (char)(0x80 | ((c >> 6) & 0x3f));
		*w++ = (char)(0x80 | (c & 0x3f));
	}
	*rp = r + 1;
	*wp = w;
	return (0);
}

static inline bool
xs_cont(unsigned char c)
{
	return ((c & 0xc0) == 0x80);
}

/*
 * One UTF-8 sequence at *rp of an XML character (not U+FFFE, U+FFFF or
 * a surrogate), copied to *wp.  -1: not.  Stops at the first byte that
 * is wrong, so it never reads past the copy's final NUL.
 */
static int
xs_utf8(char **rp, char **wp)
{
	const unsigned char	*r = (const unsigned char *)*rp;
	size_t			 n, i;

	if (r[0] >= 0xc2 && r[0] <= 0xdf)
		n = xs_cont(r[1]) ? 2 : 0;
	else if (r[0] == 0xe0)
		n = r[1] >= 0xa0 && r[1] <= 0xbf && xs_cont(r[2]) ? 3 : 0;
	else if (r[0] == 0xed)
		n = r[1] >= 0x80 && r[1] <= 0x9f && xs_cont(r[2]) ? 3 : 0;
	else if (r[0] >= 0xe1 && r[0] <= 0xef) {
		n = xs_cont(r[1]) && xs_cont(r[2]) ? 3 : 0;
		if (r[0] == 0xef && r[1] == 0xbf && r[2] >= 0xbe)
			n = 0;
	} else if (r[0] == 0xf0)
		n = r[1] >= 0x90 && r[1] <= 0xbf && xs_cont(r[2]) &&
		    xs_cont(r[3]) ? 4 : 0;
	else if (r[0] >= 0xf1 && r[0] <= 0xf3)
		n = xs_cont(r[1]) && xs_cont(r[2]) && xs_cont(r[3]) ? 4 : 0;
	else if (r[0] == 0xf4)
		n = r[1] >= 0x80 && r[1] <= 0x8f && xs_cont(r[2]) &&
		    xs_cont(r[3]) ? 4 : 0;
	else
		n = 0;
	if (n == 0)
		return (-1);
	for (i = 0; i < n; i++)
		*(*wp)++ = *(*rp)++;
	return (0);
}

/*
 * Character data from *pp up to the byte stop ('<' for text, the quote
 * for an attribute value), references decoded in place.  In a value,
 * white space becomes a space and '<' is not allowed.  Leaves *pp at
 * stop; returns the end of the decoded bytes (from the old *pp), NULL
 * when not in the subset.  *blank: only literal white space was read;
 * *refs: a reference was decoded.
 */
static char *
xs_chars(char **pp, char stop, bool value, bool *blank, bool *refs)
{
	char		*start = *pp, *r = *pp, *w = *pp;
	unsigned char	 c;
	bool		 bl = true;

	*refs = false;
	for (;;) {
		c = (unsigned char)*r;
		if (xs_plain(c)) {
			*w++ = *r++;
			bl = false;
			continue;
		}
		if (c == (unsigned char)stop)
			break;
		switch (c) {
		case ' ':
		case '\n':
		case '\t':
			*w++ = value ? ' ' : (char)c;
			r++;
			continue;
		case '&':
			if (xs_ref(&r, &w) != 0)
				return (NULL);
			bl = false;
			*refs = true;
			continue;
		case ']':
			if (!value && r[1] == ']' && r[2] == '>')
				return (NULL);
			/* FALLTHROUGH */
		case '"':
		case '\'':
			*w++ = *r++;
			bl = false;
			continue;
		default:
			/* '<' in a value, controls, '\r', NUL (the end). */
			if (c < 0x80 || xs_utf8(&r, &w) != 0)
				return (NULL);
			bl = false;
			continue;
		}
	}
	if ((size_t)(r - start) > XS_MAX_RUN)
		return (NULL);
	*pp = r;
	*blank = bl;
	return (w);
}

static struct xs_event *
xs_event(struct xs_doc *d, enum xs_kind kind)
{
	struct xs_event	*ev;

	if (d->nev == d->evcap) {
		d->evcap = d->evcap == 0 ? 64 : d->evcap * 2;
		d->ev = xreallocarray(d->ev, d->evcap, sizeof *d->ev);
	}
	ev = &d->ev[d->nev++];
	memset(ev, 0, sizeof *ev);
	ev->kind = (uint8_t)kind;
	return (ev);
}

/* The namespace prefix (plen bytes; NULL: the default) is bound to. */
static const struct xs_ns *
xs_lookup(const struct xs_doc *d, const char *prefix, size_t plen)
{
	size_t	 i;

	for (i = d->nns; i-- > 0;) {
		if (prefix == NULL ? d->ns[i].prefix == NULL :
		    (d->ns[i].prefix != NULL && d->ns[i].plen == plen &&
		    memcmp(d->ns[i].prefix, prefix, plen) == 0))
			return (&d->ns[i]);
	}
	return (NULL);
}

static bool
xs_is(const char *p, size_t len, const char *s)
{
	return (len == strlen(s) && memcmp(p, s, len) == 0);
}

/* A namespace declaration; -1 when not one the subset takes. */
static int
xs_declare(struct xs_doc *d, const struct xs_tagattr *a)
{
	struct xs_ns	*ns;
	const char	*prefix = NULL;
	size_t		 plen = 0;

	/* libxml2 keeps an '&' in a namespace name as "&#38;". */
	if (a->refs)
		return (-1);
	if (a->colon != 0) {
		prefix = a->q + a->colon + 1;
		plen = a->qlen - a->colon - 1;
		if (xs_is(prefix, plen, "xml") ||
		    xs_is(prefix, plen, "xmlns") || *a->value == '\0')
			return (-1);
	}
	if (strcmp(a->value, XS_NS_XML) == 0 ||
	    strcmp(a->value, XS_NS_XMLNS) == 0)
		return (-1);
	if (d->nns == d->nscap) {
		d->nscap = d->nscap == 0 ? 16 : d->nscap * 2;
		d->ns = xreallocarray(d->ns, d->nscap, sizeof *d->ns);
	}
	ns = &d->ns[d->nns++];
	ns->prefix = prefix;
	ns->plen = plen;
	ns->uri = *a->value == '\0' ? NULL : a->value;
	return (0);
}

/*
 * A prefix of a qualified name in use: its URI, NULL when unbound.  On
 * an attribute "xml" is bound (xml:lang; xml:space changes how libxml2
 * treats white space: not in the subset).
 */
static const char *
xs_resolve(const struct xs_doc *d, const char *q, size_t colon, bool attr)
{
	const struct xs_ns	*ns;

	if (attr && xs_is(q, colon, "xml"))
		return (strcmp(q + colon + 1, "space") == 0 ? NULL :
		    XS_NS_XML);
	if (xs_is(q, colon, "xml") || xs_is(q, colon, "xmlns"))
		return (NULL);
	ns = xs_lookup(d, q, colon);
	return (ns != NULL ? ns->uri : NULL);
}

/* A start tag at s->p ('<'). */
static int
xs_start(struct xs_state *s)
{
	struct xs_doc		*d = s->d;
	struct xs_tagattr	 ta[XML_MAX_ATTRS], *a;
	struct xs_event		*ev;
	struct xs_attr		*xa;
	struct xs_open		*o;
	const struct xs_ns	*ns;
	const char		*uri;
	char			*p = s->p + 1, *qname = p, q;
	size_t			 qlen, colon, nta = 0, nns = d->nns, i, j;
	bool			 ws, empty = false, blank;

	if (s->depth >= XS_MAX_DEPTH || (qlen = xs_qname(p, &colon)) == 0)
		return (-1);
	p += qlen;
	for (;;) {
		ws = xs_ws(*p);
		p = xs_skip_ws(p);
		if (*p == '>') {
			p++;
			break;
		}
		if (p[0] == '/' && p[1] == '>') {
			p += 2;
			empty = true;
			break;
		}
		if (!ws || nta == XML_MAX_ATTRS)
			return (-1);
		a = &ta[nta++];
		a->q = p;
		if ((a->qlen = xs_qname(p, &a->colon)) == 0)
			return (-1);
		p = xs_skip_ws(p + a->qlen);
		if (*p++ != '=')
			return (-1);
		p = xs_skip_ws(p);
		if ((q = *p) != '"' && q != '\'')
			return (-1);
		a->value = ++p;
		if ((a->vend = xs_chars(&p, q, true, &blank, &a->refs)) ==
		    NULL)
			return (-1);
		p++;	/* the closing quote */
	}
	/* Every byte of the tag is read: terminate names and values. */
	qname[qlen] = '\0';
	for (i = 0; i < nta; i++) {
		a = &ta[i];
		a->q[a->qlen] = '\0';
		*a->vend = '\0';
		for (j = 0; j < i; j++)
			if (ta[j].qlen == a->qlen &&
			    memcmp(ta[j].q, a->q, a->qlen) == 0)
				return (-1);	/* the same attribute twice */
	}
	for (i = 0; i < nta; i++) {
		a = &ta[i];
		if (((a->colon == 5 && memcmp(a->q, "xmlns", 5) == 0) ||
		    xs_is(a->q, a->qlen, "xmlns")) && xs_declare(d, a) != 0)
			return (-1);
	}
	if (d->nns > XML_MAX_NS)
		return (-1);
	/* The element's namespace. */
	if (colon != 0) {
		if ((uri = xs_resolve(d, qname, colon, false)) == NULL)
			return (-1);
	} else
		uri = (ns = xs_lookup(d, NULL, 0)) != NULL ? ns->uri : NULL;
	ev = xs_event(d, XS_START);
	ev->name = colon != 0 ? qname + colon + 1 : qname;
	ev->uri = uri;
	ev->a = (uint32_t)d->nattrs;
	for (i = 0; i < nta; i++) {
		a = &ta[i];
		if ((a->colon == 5 && memcmp(a->q, "xmlns", 5) == 0) ||
		    xs_is(a->q, a->qlen, "xmlns"))
			continue;
		if (d->nattrs == d->attrcap) {
			d->attrcap = d->attrcap == 0 ? 64 : d->attrcap * 2;
			d->attrs = xreallocarray(d->attrs, d->attrcap,
			    sizeof *d->attrs);
		}
		xa = &d->attrs[d->nattrs];
		xa->value = a->value;
		xa->prefixed = a->colon != 0;
		xa->local = a->colon != 0 ? a->q + a->colon + 1 : a->q;
		xa->uri = NULL;
		if (a->colon != 0 &&
		    (xa->uri = xs_resolve(d, a->q, a->colon, true)) == NULL)
			return (-1);
		/* The same name in the same namespace twice. */
		for (j = ev->a; j < d->nattrs; j++)
			if (d->attrs[j].prefixed && xa->prefixed &&
			    strcmp(d->attrs[j].local, xa->local) == 0 &&
			    strcmp(d->attrs[j].uri, xa->uri) == 0)
				return (-1);
		d->nattrs++;
		ev->n++;
	}
	if (s->depth > 0)
		s->open[s->depth].child = true;
	s->p = p;
	if (empty) {
		d->nns = nns;
		xs_event(d, XS_END);
		return (0);
	}
	o = &s->open[++s->depth];
	o->qname = qname;
	o->qlen = qlen;
	o->nns = nns;
	o->child = false;
	return (0);
}

/* An end tag at s->p ("</"). */
static int
xs_end(struct xs_state *s)
{
	struct xs_open	*o;
	char		*p = s->p + 2;

	if (s->depth == 0)
		return (-1);
	o = &s->open[s->depth];
	/* The start tag's name is NUL-terminated: compare its qlen bytes. */
	if (strncmp(p, o->qname, o->qlen) != 0)
		return (-1);
	p = xs_skip_ws(p + o->qlen);
	if (*p != '>')
		return (-1);
	s->p = p + 1;
	s->d->nns = o->nns;
	s->depth--;
	xs_event(s->d, XS_END);
	return (0);
}

/* <?xml version="1.0" [encoding="UTF-8"] [standalone="yes|no"]?> */
static int
xs_decl(struct xs_state *s)
{
	static const char *const attr[] = { "version", "encoding",
	    "standalone" };
	char		*p = s->p + 5, q;
	size_t		 i, n;
	bool		 ws = false;

	for (i = 0; i < 3; i++) {
		if (xs_ws(*p)) {
			ws = true;
			p = xs_skip_ws(p);
		}
		n = strlen(attr[i]);
		if (!ws || strncmp(p, attr[i], n) != 0) {
			if (i == 0)
				return (-1);
			continue;
		}
		p = xs_skip_ws(p + n);
		if (*p++ != '=')
			return (-1);
		p = xs_skip_ws(p);
		if ((q = *p++) != '"' && q != '\'')
			return (-1);
		if (i == 0 && strncmp(p, "1.0", 3) == 0 && p[3] == q)
			p += 4;
		else if (i == 1 && strncasecmp(p, "utf-8", 5) == 0 &&
		    p[5] == q)
			p += 6;
		else if (i == 2 && strncmp(p, "yes", 3) == 0 && p[3] == q)
			p += 4;
		else if (i == 2 && strncmp(p, "no", 2) == 0 && p[2] == q)
			p += 3;
		else
			return (-1);
		ws = false;
	}
	p = xs_skip_ws(p);
	if (p[0] != '?' || p[1] != '>')
		return (-1);
	s->p = p + 2;
	return (0);
}

int
xs_read(struct xs_doc *d, const char *data, size_t len)
{
	struct xs_state	 s;
	struct xs_event	*ev;
	char		*t, *e, *end;
	bool		 blank, refs;

	d->nev = d->nattrs = d->nns = 0;
	if (len == 0 || len > XS_MAX_DOC)
		return (-1);
	if (d->copycap < len + 1) {
		free(d->copy);
		d->copycap = len + 1;
		d->copy = xmalloc(d->copycap);
	}
	memcpy(d->copy, data, len);
	d->copy[len] = '\0';
	end = d->copy + len;
	s.d = d;
	s.p = d->copy;
	s.depth = 0;
	if (strncmp(s.p, "<?xml", 5) == 0 && xs_decl(&s) != 0)
		return (-1);
	s.p = xs_skip_ws(s.p);
	for (;;) {
		if (*s.p != '<')
			return (-1);
		if (s.p[1] == '/') {
			if (xs_end(&s) != 0)
				return (-1);
		} else if (s.p[1] == '!' || s.p[1] == '?')
			return (-1);	/* comment, CDATA, DOCTYPE, PI */
		else if (xs_start(&s) != 0)
			return (-1);
		if (s.depth == 0)
			break;
		t = s.p;
		if ((e = xs_chars(&s.p, '<', false, &blank, &refs)) == NULL)
			return (-1);
		if (e == t)
			continue;
		if (s.p[1] == '/' && !s.open[s.depth].child) {
			ev = xs_event(d, XS_TEXT);
			ev->name = t;
			ev->a = (uint32_t)(e - t);
		} else if (!blank)
			return (-1);	/* mixed content */
		/* else: white space between elements, dropped */
	}
	if (xs_skip_ws(s.p) != end)
		return (-1);
	return (0);
}

void
xs_free(struct xs_doc *d)
{
	free(d->copy);
	free(d->ev);
	free(d->attrs);
	free(d->ns);
	memset(d, 0, sizeof *d);
}
