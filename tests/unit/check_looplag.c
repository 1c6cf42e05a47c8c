/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the loop stall measures see a callback that holds the
 * loop, in its pass's CPU time and in the probe's lateness, and report
 * it the same way in the status and in the metrics.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "daemon/looplag.h"
#include "evtest.h"

static struct json_value *
status_of(struct looplag *l)
{
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;
	struct json_value	*v;
	char			*cause = NULL;

	json_writer_init(&w, &b);
	json_obj_begin(&w);
	looplag_status_json(l, &w);
	json_obj_end(&w);
	v = json_parse(b.data, b.len, &cause);
	ck_assert_msg(v != NULL, "%s", cause);
	buf_free(&b);
	return (v);
}

/* The value of the sample line starting with name. */
static double
metric(const struct buf *b, const char *name)
{
	char		*want;
	const char	*p;
	double		 v;

	xasprintf(&want, "\n%s ", name);
	p = strstr(buf_str(b), want);
	ck_assert_msg(p != NULL, "no %s in:\n%s", name, buf_str(b));
	v = strtod(p + strlen(want), NULL);
	free(want);
	return (v);
}

static int64_t
thread_cpu_us(void)
{
	struct timespec	 ts;

	ck_assert(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0);
	return ((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

/*
 * Holds the loop for 60 ms of its thread's CPU time, as a slow callback
 * would: at least 60 ms of wall clock too, however loaded the machine.
 */
static void
hog_cb(evutil_socket_t fd, short what, void *arg)
{
	int64_t	 end = thread_cpu_us() + 60000;

	while (thread_cpu_us() < end)
		;
	*(bool *)arg = true;
}

static void
expired_cb(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* Measured passes until *flag or ms have passed. */
static void
passes_until(struct looplag *l, struct event_base *base, bool *flag, int ms)
{
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event	*t;
	bool		 expired = false;

	t = evtimer_new(base, expired_cb, &expired);
	evtimer_add(t, &tv);
	while (!*flag && !expired)
		ck_assert_int_eq(looplag_pass(l), 0);
	event_free(t);
}

START_TEST(test_stall_seen)
{
	struct event_base	*base = event_base_new();
	struct looplag		*l = looplag_new(base, 10);
	struct event		*hog;
	struct json_value	*v;
	const struct json_value	*loop, *h, *e;
	struct timeval		 tv = { 0, 50000 };
	struct buf		 m = BUF_INIT;
	double			 samples, passes, in_hist = 0;
	bool			 hogged = false, never = false;
	char			*line;

	hog = evtimer_new(base, hog_cb, &hogged);
	evtimer_add(hog, &tv);
	passes_until(l, base, &hogged, 5000);
	ck_assert(hogged);
	passes_until(l, base, &never, 100);

	v = status_of(l);
	loop = json_get(v, "loop");
	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(json_get_num(loop, "probe_ms", 0), 10);
	samples = json_get_num(loop, "samples", 0);
	ck_assert(samples >= 2);
	/* 60 ms held: the probe due inside it ran at least 50 ms late. */
	ck_assert_msg(json_get_num(loop, "lag_max_ms", 0) >= 50.0, "max %g",
	    json_get_num(loop, "lag_max_ms", 0));
	ck_assert(json_get_num(loop, "lag_p50_ms", -1) <=
	    json_get_num(loop, "lag_p99_ms", -1));
	ck_assert(json_get_num(loop, "lag_p99_ms", -1) <=
	    json_get_num(loop, "lag_max_ms", -1));
	ck_assert_int_eq(json_get(loop, "lag_max_at")->type, JSON_STRING);
	h = json_get(loop, "lag_histogram");
	ck_assert_int_eq(h->type, JSON_ARRAY);
	for (e = h->child; e != NULL; e = e->next)
		in_hist += e->child->next->num;
	ck_assert(in_hist == samples);
	ck_assert(h->child != NULL);
	/*
	 * Every pass was measured: each probe ran in one (several share a
	 * pass with the hog or the test's timer on a loaded machine), and
	 * the hog's pass is the longest: its 60 ms of CPU time and the
	 * little around it.
	 */
	passes = json_get_num(loop, "passes", 0);
	ck_assert_msg(passes >= samples, "%g passes, %g probes", passes,
	    samples);
	ck_assert_msg(json_get_num(loop, "busy_max_ms", 0) >= 60.0 &&
	    json_get_num(loop, "busy_max_ms", 0) < 100.0, "busy max %g",
	    json_get_num(loop, "busy_max_ms", 0));
	/* The others are short: the median pass is in the first bucket. */
	ck_assert_msg(json_get_num(loop, "busy_p50_ms", 1) <= 1.0,
	    "busy p50 %g", json_get_num(loop, "busy_p50_ms", 1));
	h = json_get(loop, "busy_histogram");
	ck_assert(h != NULL);
	in_hist = 0;
	for (e = h->child; e != NULL; e = e->next)
		in_hist += e->child->next->num;
	ck_assert(in_hist == passes);

	looplag_metrics(l, &m);
	xasprintf(&line, "ewsgw_loop_lag_seconds_count %.0f\n", samples);
	ck_assert_msg(strstr(buf_str(&m), line) != NULL, "%s", buf_str(&m));
	free(line);
	xasprintf(&line, "ewsgw_loop_lag_seconds_bucket{le=\"+Inf\"} %.0f\n",
	    samples);
	ck_assert(strstr(buf_str(&m), line) != NULL);
	free(line);
	xasprintf(&line, "ewsgw_loop_busy_seconds_count %.0f\n", passes);
	ck_assert_msg(strstr(buf_str(&m), line) != NULL, "%s", buf_str(&m));
	free(line);
	/* The stall is past the 20 ms bucket, and it is the maximum. */
	ck_assert(metric(&m, "ewsgw_loop_lag_seconds_bucket{le=\"0.02\"}") <
	    samples);
	ck_assert(metric(&m, "ewsgw_loop_lag_seconds_bucket{le=\"0.001\"}")
	    <= metric(&m, "ewsgw_loop_lag_seconds_bucket{le=\"0.02\"}"));
	ck_assert(metric(&m, "ewsgw_loop_busy_seconds_bucket{le=\"0.05\"}") ==
	    passes - 1);
	ck_assert(metric(&m, "ewsgw_loop_lag_max_seconds") >= 0.05);
	ck_assert(metric(&m, "ewsgw_loop_busy_max_seconds") >= 0.06);
	buf_free(&m);
	json_free(v);
	event_free(hog);
	looplag_free(l);
	event_base_free(base);
}
END_TEST

/* looplag_dispatch() ends where event_base_dispatch() would. */
static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

START_TEST(test_dispatch_ends)
{
	struct event_base	*base = event_base_new();
	struct looplag		*l = looplag_new(base, 10);
	struct event		*stop;
	struct timeval		 tv = { 0, 30000 };
	struct json_value	*v;

	stop = evtimer_new(base, stop_cb, base);
	evtimer_add(stop, &tv);
	ck_assert_int_eq(looplag_dispatch(l), 0);
	/* Ended by the break, with the probe still pending. */
	ck_assert(event_base_got_break(base));
	v = status_of(l);
	ck_assert(json_get_num(json_get(v, "loop"), "passes", 0) >= 1);
	json_free(v);
	event_base_loopexit(base, &tv);
	ck_assert_int_eq(looplag_dispatch(l), 0);
	ck_assert(event_base_got_exit(base));
	event_free(stop);
	looplag_free(l);
	event_base_free(base);
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("looplag");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_stall_seen);
	tcase_add_test(tc, test_dispatch_ends);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
