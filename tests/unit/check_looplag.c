/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the loop stall probe sees a callback that holds the loop,
 * and reports it the same way in the status and in the metrics.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

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

/* Holds the loop for 60 ms, as a slow callback would. */
static void
hog_cb(evutil_socket_t fd, short what, void *arg)
{
	/* In microseconds: a millisecond clock could end it up to 1 ms
	 * early, and the probe's lateness is measured in microseconds. */
	int64_t	 end = time_mono_us() + 60000;

	while (time_mono_us() < end)
		;
	*(bool *)arg = true;
}

START_TEST(test_stall_seen)
{
	struct event_base	*base = event_base_new();
	struct looplag		*l = looplag_new(base);
	struct event		*hog;
	struct json_value	*v;
	const struct json_value	*loop, *h, *e;
	struct timeval		 tv = { 0, 50000 };
	struct buf		 m = BUF_INIT;
	double			 samples, in_hist = 0;
	bool			 hogged = false;
	char			*line;

	hog = evtimer_new(base, hog_cb, &hogged);
	evtimer_add(hog, &tv);
	ck_assert(evtest_run_until(base, &hogged, 5000));
	evtest_run_for(base, 100);

	v = status_of(l);
	loop = json_get(v, "loop");
	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(json_get_num(loop, "probe_ms", 0), LOOPLAG_PERIOD_MS);
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
	/* The stall is in a bucket of its own, 10 ms wide past 100 ms. */
	ck_assert(h->child != NULL);
	/* The loop was busy, not waiting for a CPU, most of that time. */
	ck_assert(json_get_num(loop, "busy_max_ms", 0) > 0);
	ck_assert(json_get_num(loop, "busy_max_ms", 0) <=
	    json_get_num(loop, "lag_max_ms", 0));
	ck_assert(json_get(loop, "busy_histogram") != NULL);

	looplag_metrics(l, &m);
	xasprintf(&line, "ewsgw_loop_lag_seconds_count %.0f\n", samples);
	ck_assert_msg(strstr(buf_str(&m), line) != NULL, "%s", buf_str(&m));
	free(line);
	xasprintf(&line, "ewsgw_loop_lag_seconds_bucket{le=\"+Inf\"} %.0f\n",
	    samples);
	ck_assert(strstr(buf_str(&m), line) != NULL);
	free(line);
	/* The stall is past the 20 ms bucket, and it is the maximum. */
	ck_assert(metric(&m, "ewsgw_loop_lag_seconds_bucket{le=\"0.02\"}") <
	    samples);
	ck_assert(metric(&m, "ewsgw_loop_lag_seconds_bucket{le=\"0.001\"}")
	    <= metric(&m, "ewsgw_loop_lag_seconds_bucket{le=\"0.02\"}"));
	ck_assert(metric(&m, "ewsgw_loop_lag_max_seconds") >= 0.05);
	ck_assert(metric(&m, "ewsgw_loop_busy_max_seconds") > 0);
	buf_free(&m);
	json_free(v);
	event_free(hog);
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
