/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Loop stalls: the CPU time of each pass of the event loop, and how late
 * it runs a periodic timer, as histograms for the status socket and the
 * metrics.
 */
#ifndef EWSGW_LOOPLAG_H
#define EWSGW_LOOPLAG_H

#include "base/buf.h"
#include "base/json.h"

struct event_base;
struct looplag;

/*
 * Watch base's loop.  Two measures:
 *  - busy: the loop thread's CPU time in every pass of the loop that
 *    looplag_pass() or looplag_dispatch() runs (one wake-up and the
 *    callbacks it runs); each pass holds up every event that became
 *    ready meanwhile, so its maximum is the longest stall the daemon
 *    caused itself.  Exact, not sampled: a read of the thread's CPU
 *    clock (a system call) at each pass's end, which under
 *    looplag_dispatch() is the next pass's start; looplag_pass() reads
 *    it at its start too.
 *  - lag: how late a timer due every period_ms runs (wall clock, so
 *    time the process waited for a CPU counts too); a sample.  A
 *    callback that holds the loop for S ms across the probe's deadline
 *    makes it up to S ms late.  Every probe is a wake-up of an
 *    otherwise idle daemon: LOOPLAG_PERIOD_MS keeps that rare.
 * Returns allocated, free with looplag_free().
 */
#define LOOPLAG_PERIOD_MS	1000
struct looplag	*looplag_new(struct event_base *, int period_ms);
void		 looplag_free(struct looplag *);

/*
 * One pass of the loop (event_base_loop(EVLOOP_ONCE)), measured.
 * Returns event_base_loop()'s result.
 */
int		 looplag_pass(struct looplag *);

/*
 * Run passes until event_base_loopbreak() or event_base_loopexit(), an
 * error, or no event left: event_base_dispatch() with every pass
 * measured.  Returns -1 on error, else 0.
 */
int		 looplag_dispatch(struct looplag *);

/*
 * "loop": {"probe_ms", "samples" (probes), "passes", "lag_p50_ms",
 * "lag_p99_ms", "lag_p999_ms", "lag_max_ms", "lag_max_at",
 * "lag_histogram": [[upper_ms, count], ...] (only buckets that
 * counted; 0.1 ms wide up to 100 ms, 10 ms wide above), and the same
 * with "busy_" for the CPU time of each pass}: a member of the status
 * answer.
 */
void		 looplag_status_json(const struct looplag *,
		    struct json_writer *);
/*
 * ewsgw_loop_lag_seconds and ewsgw_loop_busy_seconds (histograms),
 * ewsgw_loop_lag_max_seconds and ewsgw_loop_busy_max_seconds.
 */
void		 looplag_metrics(const struct looplag *, struct buf *);

#endif
