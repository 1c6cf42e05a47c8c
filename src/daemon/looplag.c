/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Loop stalls: every pass of the loop timed in the loop thread's CPU
 * time, and a one-shot timer re-armed period_ms ahead each time it runs,
 * in fixed histograms.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

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

struct lag_hist {
	uint64_t	 samples;
	uint64_t	 sum_us;
	int64_t		 max_us;
	int64_t		 max_at;	/* epoch s of the worst one */
	uint64_t	 count[NBUCKETS];
};

struct looplag {
	struct event_base *base;
	struct event	 ev;
	int		 period_ms;
	int64_t		 due_us;	/* when the probe should run */
	struct lag_hist	 late;		/* probe lateness, wall clock */
	struct lag_hist	 busy;		/* CPU time of each pass */
};

static void	 looplag_arm(struct looplag *);
static void	 looplag_cb(evutil_socket_t, short, void *);
static int64_t	 thread_cpu_us(void);
static int	 looplag_pass_from(struct looplag *, int64_t *);
static void	 hist_add(struct lag_hist *, int64_t);
static size_t	 bucket_of(int64_t);
static int64_t	 bucket_upper_us(size_t);
static int64_t	 quantile_us(const struct lag_hist *, double);
static void	 hist_json(const struct lag_hist *, const char *,
		    struct json_writer *);

static const double prom_le[] = {
	0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10
};

struct looplag *
looplag_new(struct event_base *base, int period_ms)
{
	struct looplag	*l;

	l = xcalloc(1, sizeof *l);
	l->base = base;
	l->period_ms = period_ms;
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

static int64_t
thread_cpu_us(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == -1)
		return (0);
	return ((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

/*
 * One measured pass; *cpu holds the thread's CPU clock at its start and
 * gets the clock at its end, which is where a next pass run straight
 * after it starts: one read of the clock (a system call) per pass.
 */
static int
looplag_pass_from(struct looplag *l, int64_t *cpu)
{
	int64_t	 start = *cpu;
	int	 rc;

	rc = event_base_loop(l->base, EVLOOP_ONCE);
	*cpu = thread_cpu_us();
	hist_add(&l->busy, *cpu > start ? *cpu - start : 0);
	return (rc);
}

int
looplag_pass(struct looplag *l)
{
	int64_t	 cpu = thread_cpu_us();

	return (looplag_pass_from(l, &cpu));
}

int
looplag_dispatch(struct looplag *l)
{
	int64_t	 cpu = thread_cpu_us();
	int	 rc;

	for (;;) {
		rc = looplag_pass_from(l, &cpu);
		if (rc != 0)
			return (rc == -1 ? -1 : 0);
		if (event_base_got_break(l->base) ||
		    event_base_got_exit(l->base))
			return (0);
	}
}

static void
looplag_arm(struct looplag *l)
{
	struct timeval	 tv;

	l->due_us = time_mono_us() + l->period_ms * 1000;
	evtimer_add(&l->ev, time_ms_tv(&tv, l->period_ms));
}

static void
looplag_cb(evutil_socket_t fd, short what, void *arg)
{
	struct looplag	*l = arg;
	int64_t		 late = time_mono_us() - l->due_us;

	hist_add(&l->late, late > 0 ? late : 0);
	looplag_arm(l);
}

static void
hist_add(struct lag_hist *h, int64_t us)
{
	h->samples++;
	h->sum_us += (uint64_t)us;
	h->count[bucket_of(us)]++;
	if (us > h->max_us) {
		h->max_us = us;
		h->max_at = time_wall_ms() / 1000;
	}
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
quantile_us(const struct lag_hist *h, double q)
{
	uint64_t	 want, seen = 0;
	size_t		 i;

	if (h->samples == 0)
		return (0);
	want = (uint64_t)(q * (double)h->samples);
	if (want == 0)
		want = 1;
	for (i = 0; i < NBUCKETS; i++) {
		seen += h->count[i];
		if (seen >= want)
			break;
	}
	return (i < NBUCKETS && bucket_upper_us(i) < h->max_us ?
	    bucket_upper_us(i) : h->max_us);
}

/* prefix_p50_ms ... prefix_max_at, prefix_histogram. */
static void
hist_json(const struct lag_hist *h, const char *prefix,
    struct json_writer *w)
{
	static const struct {
		const char	*name;
		double		 q;
	} qs[] = { { "p50", 0.5 }, { "p99", 0.99 }, { "p999", 0.999 } };
	char	 key[64];
	size_t	 i;

	for (i = 0; i < sizeof(qs) / sizeof(*qs); i++) {
		snprintf(key, sizeof key, "%s_%s_ms", prefix, qs[i].name);
		json_key(w, key);
		json_double(w, (double)quantile_us(h, qs[i].q) / 1000.0);
	}
	snprintf(key, sizeof key, "%s_max_ms", prefix);
	json_key(w, key);
	json_double(w, (double)h->max_us / 1000.0);
	snprintf(key, sizeof key, "%s_max_at", prefix);
	json_kv_time(w, key, h->max_at);
	snprintf(key, sizeof key, "%s_histogram", prefix);
	json_key(w, key);
	json_arr_begin(w);
	for (i = 0; i < NBUCKETS; i++) {
		if (h->count[i] == 0)
			continue;
		json_arr_begin(w);
		if (i == NBUCKETS - 1)
			json_null(w);
		else
			json_double(w, (double)bucket_upper_us(i) / 1000.0);
		json_int(w, (int64_t)h->count[i]);
		json_arr_end(w);
	}
	json_arr_end(w);
}

void
looplag_status_json(const struct looplag *l, struct json_writer *w)
{
	json_key(w, "loop");
	json_obj_begin(w);
	json_kv_int(w, "probe_ms", l->period_ms);
	json_kv_int(w, "samples", (int64_t)l->late.samples);
	json_kv_int(w, "passes", (int64_t)l->busy.samples);
	hist_json(&l->late, "lag", w);
	hist_json(&l->busy, "busy", w);
	json_obj_end(w);
}

/* One Prometheus histogram of h in seconds, called name. */
static void
hist_metrics(const struct lag_hist *h, const char *name, const char *help,
    struct buf *b)
{
	uint64_t	 n = 0;
	size_t		 i = 0, j;

	buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help,
	    name);
	for (j = 0; j < sizeof(prom_le) / sizeof(*prom_le); j++) {
		/* Every le is a bucket boundary, so the count is exact. */
		for (; i < NBUCKETS && bucket_upper_us(i) <=
		    (int64_t)(prom_le[j] * 1e6 + 0.5); i++)
			n += h->count[i];
		buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, prom_le[j],
		    (unsigned long long)n);
	}
	buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n"
	    "%s_count %llu\n", name, (unsigned long long)h->samples, name,
	    (double)h->sum_us / 1e6, name, (unsigned long long)h->samples);
}

void
looplag_metrics(const struct looplag *l, struct buf *b)
{
	char	*help;

	xasprintf(&help, "How late the event loop ran a timer due every "
	    "%d ms.", l->period_ms);
	hist_metrics(&l->late, "ewsgw_loop_lag_seconds", help, b);
	free(help);
	hist_metrics(&l->busy, "ewsgw_loop_busy_seconds", "CPU time of each "
	    "pass of the event loop (what one wake-up held it up for).", b);
	buf_printf(b, "# HELP ewsgw_loop_lag_max_seconds The longest the "
	    "event loop was late for its probe since start.\n"
	    "# TYPE ewsgw_loop_lag_max_seconds gauge\n"
	    "ewsgw_loop_lag_max_seconds %.6f\n"
	    "# HELP ewsgw_loop_busy_max_seconds The longest pass of the "
	    "event loop since start, in CPU time.\n"
	    "# TYPE ewsgw_loop_busy_max_seconds gauge\n"
	    "ewsgw_loop_busy_max_seconds %.6f\n",
	    (double)l->late.max_us / 1e6, (double)l->busy.max_us / 1e6);
}
