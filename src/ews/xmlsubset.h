/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * A reader for the subset of XML that EWS answers are written in, without
 * libxml2: UTF-8, elements with namespace prefixes, attributes, text with
 * the five predefined entities and character references.  Anything else
 * (a DOCTYPE, comments, processing instructions, CDATA, carriage returns,
 * another encoding, an undeclared prefix, mixed content, anything not
 * well-formed) is "not in the subset" and left to libxml2, so a document
 * read here gives exactly the events libxml2's SAX2 parser gives xmlread.c
 * under XML_PARSE_NOBLANKS: white space between elements is dropped, the
 * text of an element without element children is kept whole.  Pure.
 */
#ifndef EWSGW_XMLSUBSET_H
#define EWSGW_XMLSUBSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ews/xmlscan.h"

enum xs_kind { XS_START, XS_END, XS_TEXT };

/* An attribute of a start tag; xmlns declarations are not among them. */
struct xs_attr {
	const char	*local;
	const char	*uri;		/* NULL without a prefix */
	const char	*value;		/* references decoded */
	bool		 prefixed;
};

struct xs_event {
	uint8_t		 kind;		/* enum xs_kind */
	const char	*name;		/* XS_START: local name;
					   XS_TEXT: text */
	const char	*uri;		/* XS_START: namespace URI or NULL */
	uint32_t	 a;		/* XS_START: first attribute; XS_TEXT:
					   length (not NUL-terminated) */
	uint32_t	 n;		/* XS_START: attributes */
};

struct xs_ns {
	const char	*prefix;	/* NULL: the default namespace */
	size_t		 plen;
	const char	*uri;		/* NULL: xmlns="" */
};

/*
 * A document read: every string points into copy.  Kept from document to
 * document (the arrays grow to the largest one read).
 */
struct xs_doc {
	char		*copy;
	size_t		 copycap;
	struct xs_event	*ev;
	size_t		 nev, evcap;
	struct xs_attr	*attrs;
	size_t		 nattrs, attrcap;
	struct xs_ns	*ns;
	size_t		 nns, nscap;
};

/*
 * A document in the subset keeps within the pre-scan's limits
 * (xml_limits_default in xmlscan.h): nesting, attributes, namespace
 * declarations in scope, and nodes (XS_MAX_DOC bytes hold far fewer), so
 * the pre-scan need not run on it.  Larger documents are not in the
 * subset: their events would take several times their size, libxml2
 * reads them in constant memory.
 */
#define XS_MAX_DOC	(64 * 1024)
#define XS_MAX_DEPTH	XML_MAX_DEPTH

/*
 * Read len bytes (borrowed; copied).  Returns 0 with d's events filled
 * in, or -1 when the document is not in the subset (d's events are then
 * meaningless).
 */
int	 xs_read(struct xs_doc *, const char *, size_t);
/* Free d's memory (d may be read into again). */
void	 xs_free(struct xs_doc *);

#endif
