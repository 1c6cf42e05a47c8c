/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The benches' clock: CPU time of the calling thread, which waiting for
 * a core on a loaded machine does not inflate.
 */
#ifndef EWSGW_BENCH_CPUTIME_H
#define EWSGW_BENCH_CPUTIME_H

#include <stdint.h>
#include <time.h>

/* CLOCK_THREAD_CPUTIME_ID in nanoseconds. */
static inline int64_t
thread_cpu_ns(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

#endif
