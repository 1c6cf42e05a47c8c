/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * A linear pre-scan of an XML document before libxml2 sees it: counts
 * what makes a DOM parse slow or big (attributes per element, namespace
 * declarations in scope, nesting, nodes) in one pass over the bytes, so a
 * hostile document is refused in time proportional to its size.  Pure.
 */
#ifndef EWSGW_XMLSCAN_H
#define EWSGW_XMLSCAN_H

#include <stddef.h>

struct xml_limits {
	unsigned	 max_depth;	/* open elements */
	unsigned	 max_attrs;	/* attributes on one element, xmlns
					   declarations included */
	unsigned	 max_ns;	/* xmlns declarations in scope */
	size_t		 max_nodes;	/* elements + attributes + text runs */
};

/*
 * What a document of this size may hold, for any EWS answer: libxml2's
 * memory is then bounded by about 200 bytes a node (a few tens of MiB),
 * and its attribute checks, quadratic per element, stay small.
 */
#define XML_MAX_DEPTH	64
#define XML_MAX_ATTRS	32
#define XML_MAX_NS	64
#define XML_MAX_NODES	300000
extern const struct xml_limits xml_limits_default;

/*
 * Scan len bytes (need not be NUL-terminated).  Returns 0 if the document
 * keeps within lim, -1 with *cause (allocated, caller frees; cause may be
 * NULL) when it does not, or when it holds a DOCTYPE or another markup
 * declaration.  Not a well-formedness check: whatever passes still goes
 * to the parser, which rejects what is malformed.  Stops at the first
 * limit exceeded; never reads past len.
 */
int	 xml_prescan(const char *, size_t, const struct xml_limits *,
	    char **cause);

#endif
