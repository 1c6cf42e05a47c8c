/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * libFuzzer target: the streaming EWS parsers against the tree parsers
 * they replaced (tests/unit/ews_parse_dom.c); any disagreement aborts.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../unit/ews_parse_diff.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*report = NULL;

	if (ews_parse_diff((const char *)data, size, &report, NULL) != 0) {
		fprintf(stderr, "%s\n", report);
		abort();
	}
	free(report);
	return (0);
}
