/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Loop stall probe: a one-shot timer re-armed LOOPLAG_PERIOD_MS ahead
 * each time it runs, and a fixed histogram of how late it ran.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "daemon/looplag.h"

#define FINE_US		100		/* bucket width up to FINE_MAX_US */
#define FINE_MAX_US	100000
#define COARSE_US	10000		/* bucket width above */
#define NFINE		(FINE_MAX_US / FINE_US)
#define NCOARSE		990		/* up to 10 s */
#define NBUCKETS	(NFINE + NCOARSE + 1)	/* the last: beyond */

struct looplag {
	struct event	 ev;
	int64_t		 due_us;	/* when the probe should run */
	uint64_t	 samples;
	uint64_t	 sum_us;
	int64_t		 max_us;
	int64_t		 max_at;	/* epoch s of the worst one */
	uint64_t	 hist[NBUCKETS];
};

static void	 looplag_arm(struct looplag *);
static void	 looplag_cb(evutil_socket_t, short, void *);
static size_t	 bucket_of(int64_t);
static int64_t	 bucket_upper_us(size_t);
static int64_t	 quantile_us(const struct looplag *, double);

static const double prom_le[] = {
	0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10
};

struct looplag *
looplag_new(struct event_base *base)
{
	struct looplag	*l;

	l = xcalloc(1, sizeof *l);
	evtimer_assign(&l->ev, base, looplag_cb, l);
	looplag_arm(l);
	return (l);
}

void
looplag_free(struct looplag *l)
{
	if (l == NULL)
		return;
	evtimer_del(&l->ev);
	free(l);
}

static void
looplag_arm(struct looplag *l)
{
	struct timeval	 tv;

	l->due_us = time_mono_us() + LOOPLAG_PERIOD_MS * 1000;
	evtimer_add(&l->ev, time_ms_tv(&tv, LOOPLAG_PERIOD_MS));
}

static void
looplag_cb(evutil_socket_t fd, short what, void *arg)
{
	struct looplag	*l = arg;
	int64_t		 late = time_mono_us() - l->due_us;

	if (late < 0)
		late = 0;
	l->samples++;
	l->sum_us += (uint64_t)late;
	l->hist[bucket_of(late)]++;
	if (late > l->max_us) {
		l->max_us = late;
		l->max_at = time_wall_ms() / 1000;
	}
	looplag_arm(l);
}

static size_t
bucket_of(int64_t us)
{
	if (us < FINE_MAX_US)
		return ((size_t)(us / FINE_US));
	us = (us - FINE_MAX_US) / COARSE_US;
	return (us < NCOARSE ? NFINE + (size_t)us : NBUCKETS - 1);
}

/* The bucket's upper bound; INT64_MAX for the last one. */
static int64_t
bucket_upper_us(size_t i)
{
	if (i < NFINE)
		return ((int64_t)(i + 1) * FINE_US);
	if (i < NFINE + NCOARSE)
		return (FINE_MAX_US + (int64_t)(i - NFINE + 1) * COARSE_US);
	return (INT64_MAX);
}

/* The q-quantile as its bucket's upper bound, never above the maximum. */
static int64_t
quantile_us(const struct looplag *l, double q)
{
	uint64_t	 want, seen = 0;
	size_t		 i;

	if (l->samples == 0)
		return (0);
	want = (uint64_t)(q * (double)l->samples);
	if (want == 0)
		want = 1;
	for (i = 0; i < NBUCKETS; i++) {
		seen += l->hist[i];
		if (seen >= want)
			break;
	}
	return (i < NBUCKETS && bucket_upper_us(i) < l->max_us ?
	    bucket_upper_us(i) : l->max_us);
}

void
looplag_status_json(const struct looplag *l, struct json_writer *w)
{
	size_t	 i;

	json_key(w, "loop");
	json_obj_begin(w);
	json_kv_int(w, "probe_ms", LOOPLAG_PERIOD_MS);
	json_kv_int(w, "samples", (int64_t)l->samples);
	json_key(w, "lag_p50_ms");
	json_double(w, (double)quantile_us(l, 0.5) / 1000.0);
	json_key(w, "lag_p99_ms");
	json_double(w, (double)quantile_us(l, 0.99) / 1000.0);
	json_key(w, "lag_p999_ms");
	json_double(w, (double)quantile_us(l, 0.999) / 1000.0);
	json_key(w, "lag_max_ms");
	json_double(w, (double)l->max_us / 1000.0);
	json_kv_time(w, "lag_max_at", l->max_at);
	json_key(w, "histogram");
	json_arr_begin(w);
	for (i = 0; i < NBUCKETS; i++) {
		if (l->hist[i] == 0)
			continue;
		json_arr_begin(w);
		if (i == NBUCKETS - 1)
			json_null(w);
		else
			json_double(w, (double)bucket_upper_us(i) / 1000.0);
		json_int(w, (int64_t)l->hist[i]);
		json_arr_end(w);
	}
	json_arr_end(w);
	json_obj_end(w);
}

void
looplag_metrics(const struct looplag *l, struct buf *b)
{
	uint64_t	 n = 0;
	size_t		 i = 0, j;

	buf_puts(b, "# HELP ewsgw_loop_lag_seconds How late the event loop "
	    "ran a timer due every 10 ms.\n"
	    "# TYPE ewsgw_loop_lag_seconds histogram\n");
	for (j = 0; j < sizeof(prom_le) / sizeof(*prom_le); j++) {
		/* Every le is a bucket boundary, so the count is exact. */
		for (; i < NBUCKETS && bucket_upper_us(i) <=
		    (int64_t)(prom_le[j] * 1e6 + 0.5); i++)
			n += l->hist[i];
		buf_printf(b, "ewsgw_loop_lag_seconds_bucket{le=\"%g\"} "
		    "%llu\n", prom_le[j], (unsigned long long)n);
	}
	buf_printf(b, "ewsgw_loop_lag_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "ewsgw_loop_lag_seconds_sum %.6f\n"
	    "ewsgw_loop_lag_seconds_count %llu\n",
	    (unsigned long long)l->samples, (double)l->sum_us / 1e6,
	    (unsigned long long)l->samples);
	buf_printf(b, "# HELP ewsgw_loop_lag_max_seconds The longest the "
	    "event loop was late for its probe since start.\n"
	    "# TYPE ewsgw_loop_lag_max_seconds gauge\n"
	    "ewsgw_loop_lag_max_seconds %.6f\n", (double)l->max_us / 1e6);
}
