/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Differential check of the streaming EWS parsers against the tree ones
 * (ews_parse_dom.h): every parser, both ways, on the same bytes.  Test
 * code, shared by a unit test and a fuzzer.
 */
#ifndef EWSGW_EWS_PARSE_DIFF_H
#define EWSGW_EWS_PARSE_DIFF_H

#include <stddef.h>

/*
 * Run every ews_parse_*() and its dom_parse_*() twin on len bytes.  Both
 * must accept or refuse alike; when both accept, every field must match;
 * when both refuse, the cause must.  Returns 0, or -1 with *report
 * (allocated, caller frees) showing both results of the first parser
 * that disagrees.  accepted (may be NULL) is increased by the parsers
 * that accepted the bytes.
 */
int	 ews_parse_diff(const char *, size_t, char **report,
	    unsigned *accepted);

#endif
