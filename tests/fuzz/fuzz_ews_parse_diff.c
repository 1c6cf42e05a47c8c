/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * libFuzzer target: the streaming EWS parsers against the tree parsers
 * they replaced (tests/unit/ews_parse_dom.c), with the subset reader in
 * front of libxml2 and with libxml2 alone; any disagreement aborts.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ews/xmlread.h"

#include "../unit/ews_parse_diff.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*report = NULL;
	int	 subset;

	for (subset = 1; subset >= 0; subset--) {
		xr_set_subset(subset);
		if (ews_parse_diff((const char *)data, size, &report,
		    NULL) != 0) {
			fprintf(stderr, "%s: %s\n", subset ? "subset reader" :
			    "libxml2 alone", report);
			abort();
		}
		free(report);
		report = NULL;
	}
	xr_set_subset(true);
	return (0);
}
