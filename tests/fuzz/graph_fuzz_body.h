/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * One input through every Graph parser; shared by the libFuzzer target
 * and the corpus replay in tests/unit/check_graph.  Aborts on a broken
 * invariant.
 */
#ifndef EWSGW_GRAPH_FUZZ_BODY_H
#define EWSGW_GRAPH_FUZZ_BODY_H

#include <stddef.h>

void	 graph_fuzz_one(const char *, size_t);

#endif
