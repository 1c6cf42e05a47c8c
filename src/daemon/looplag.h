/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Loop stall probe: how late the event loop runs a timer due every
 * 10 ms, as a histogram for the status socket and the metrics.
 */
#ifndef EWSGW_LOOPLAG_H
#define EWSGW_LOOPLAG_H

#include "base/buf.h"
#include "base/json.h"

struct event_base;
struct looplag;

/*
 * Start probing base: a timer due every LOOPLAG_PERIOD_MS, whose
 * lateness (the time the loop spent on other work past its deadline)
 * is recorded, and so is the loop thread's CPU time over the same
 * stretch.  A callback that holds the loop for S ms delays the next
 * probe by between S - LOOPLAG_PERIOD_MS and S, so the histogram bounds
 * the loop's stalls; its cost is one clock read and a counter per probe.
 * Returns allocated, free with looplag_free().
 */
#define LOOPLAG_PERIOD_MS	10
struct looplag	*looplag_new(struct event_base *);
void		 looplag_free(struct looplag *);

/*
 * "loop": {"probe_ms", "samples", "lag_p50_ms", "lag_p99_ms",
 * "lag_p999_ms", "lag_max_ms", "lag_max_at", "lag_histogram": [[upper_ms,
 * count], ...] (only buckets that counted; 0.1 ms wide up to 100 ms,
 * 10 ms wide above), and the same with "busy_": the part of each
 * lateness the loop's thread spent on the CPU, i.e. without the time a
 * loaded machine kept it waiting for one}: a member of the status
 * answer.
 */
void		 looplag_status_json(const struct looplag *,
		    struct json_writer *);
/*
 * ewsgw_loop_lag_seconds (histogram), ewsgw_loop_lag_max_seconds and
 * ewsgw_loop_busy_max_seconds.
 */
void		 looplag_metrics(const struct looplag *, struct buf *);

#endif
