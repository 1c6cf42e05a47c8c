/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * libFuzzer target: every Graph JSON parser on the same bytes
 * (calendarView/delta pages, automatic replies, subscriptions,
 * notifications, $batch, error bodies) and the validation-token decoder.
 * Whatever the bytes, each returns, says why when it refuses, and hands
 * out only what it says it holds.  tests/unit/check_graph replays the
 * seed corpus through graph_fuzz_one in make check.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graph_fuzz_body.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	graph_fuzz_one((const char *)data, len);
	return (0);
}
