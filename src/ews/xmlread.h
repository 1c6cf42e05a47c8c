/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Streaming XML reader: the EWS subset of XML read directly, anything
 * else by libxml2's SAX2 parser, its context reused from document to
 * document, driven by a table of the elements a parser
 * wants.  No tree is built; handlers copy what they keep into their own
 * structs.  Same guards as a tree parse: size cap, linear pre-scan, no
 * DOCTYPE (so no entity is ever declared, expanded or fetched), no
 * network.  Pure.
 */
#ifndef EWSGW_XMLREAD_H
#define EWSGW_XMLREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XR_MAX_DOC	(16 * 1024 * 1024)	/* bytes per document */
#define XR_MAX_DEPTH	64			/* element nesting */
#define XR_MAX_SHAPES	64			/* rows per table */

/* Which namespace a row matches. */
enum xr_ns {
	XR_NS_ANY,	/* any, or none: the local name alone */
	XR_NS_ENV,	/* SOAP 1.1 envelope */
	XR_NS_EWS,	/* EWS messages or types: servers use either */
	XR_NS_M,	/* EWS messages only */
	XR_NS_AD	/* SOAP Autodiscover */
};

/* Row flags. */
#define XR_EACH		0x01	/* every occurrence, not only the first */
#define XR_TEXT		0x02	/* hand the element's text to end() */
#define XR_FIRST_CHILD	0x04	/* only if it is the parent's first element
				   child; when that child matches no such
				   row, unmatched() is told */

/*
 * One row: an element the parser reads, below the row parent (row 0 is
 * the document element; its parent is itself).  Without XR_EACH only the
 * first element matching a row is read, later ones are skipped with
 * everything below them, as are elements no row matches.
 */
struct xr_shape {
	uint8_t		 parent;
	uint8_t		 ns;		/* enum xr_ns */
	uint8_t		 flags;
	const char	*name;		/* local name; NULL: any element */
};

struct xr;

/* XR_DOC in unmatched(): the document element matched row 0 not. */
#define XR_DOC	0xff

struct xr_parser {
	const struct xr_shape	*shapes;	/* at most XR_MAX_SHAPES */
	size_t			 nshapes;
	/* A row's element opened; its attributes are readable. Optional. */
	void	(*start)(struct xr *, unsigned row, void *arg);
	/*
	 * A row's element closed.  text: for XR_TEXT rows all text below
	 * it, surrounding white space trimmed (borrowed for the call);
	 * else NULL.  Optional.
	 */
	void	(*end)(struct xr *, unsigned row, const char *text, void *arg);
	/* See XR_FIRST_CHILD and XR_DOC.  Optional. */
	void	(*unmatched)(struct xr *, unsigned parent, void *arg);
};

/*
 * Read one document of len bytes (borrowed).  Returns 0; -1 when a
 * handler called xr_fail (the document is well-formed; what the handlers
 * filled in so far is theirs to release); -2 when the document itself is
 * refused: empty, over XR_MAX_DOC, over the pre-scan's limits, with a
 * DOCTYPE, not well-formed or nested deeper than XR_MAX_DEPTH (handlers
 * may have run; discard what they built).  *cause (allocated, caller
 * frees; cause may be NULL) says why.
 */
int	 xr_read(const struct xr_parser *, void *arg, const char *, size_t,
	    char **cause);

/*
 * Record why the content is refused (the first call wins) and stop
 * calling handlers; the document is still read to its end so that a
 * malformed one is reported as such.  Returns -1.
 */
int	 xr_fail(struct xr *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

/*
 * The element just opened or closed: its name as a tree parser reports
 * it (the local name; "prefix:name" when the prefix was never declared)
 * and its namespace URI (NULL without one).  Borrowed, valid until the
 * document is read.  The two readers' traces are compared through them.
 */
const char	*xr_name(const struct xr *);
const char	*xr_uri(const struct xr *);
/* In start(): the element's name as xr_name(), of its parent. */
const char	*xr_parent_name(const struct xr *);

/*
 * In start(): the value of the element's attribute name without a
 * namespace (nsuri NULL) or in nsuri, with character references
 * decoded; NULL when absent.  Borrowed until the next call.
 */
const char	*xr_attr(struct xr *, const char *name, const char *nsuri);
/* The same, allocated (caller frees); NULL when absent. */
char		*xr_attr_dup(struct xr *, const char *name);

/*
 * Whether xr_read reads a document in the EWS subset of XML itself
 * (xmlsubset.h) and leaves only the rest to libxml2 (true, the default),
 * or gives every document to libxml2: for tests that compare the two.
 * This thread only.
 */
void	 xr_set_subset(bool);

/* Free this thread's cached parser (at exit; the next read makes one). */
void	 xr_cleanup(void);

#endif
