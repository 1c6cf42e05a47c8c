/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: ewsgwctl's rendering of control answers into tables, and
 * the exit status each answer implies.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "control/ctl_render.h"

static struct buf	 out, err;

static int
render(const char *cmd, const char *answer, bool json)
{
	buf_free(&out);
	buf_free(&err);
	return (ctl_render(cmd, answer, strlen(answer), json, &out, &err));
}

static void
assert_has(const struct buf *b, const char *want)
{
	ck_assert_msg(strstr(buf_str(b), want) != NULL,
	    "missing \"%s\" in:\n%s", want, buf_str(b));
}

static const char status_ok[] = "{\"ok\":true,\"version\":\"0.1.0\","
    "\"pid\":123,\"uptime_s\":93784,\"config\":\"/etc/ewsgw.conf\","
    "\"mode\":\"streaming\",\"healthy\":true,\"problems\":[],"
    "\"mailboxes\":{\"total\":1000,\"by_state\":{\"streaming\":990,"
    "\"subscribing\":10}},\"budget\":{\"concurrency\":{\"in_use\":4,"
    "\"limit\":10},\"short_reserved\":2,\"subscriptions\":{\"in_use\":1000,"
    "\"limit\":5000},\"streaming_connections\":{\"open\":5,\"limit\":8},"
    "\"charging\":\"service-account\"},\"oof\":{\"state\":\"waiting\","
    "\"share_percent\":10,\"slots\":1,\"concurrency_limit\":10,"
    "\"cycle_s\":72.5,\"mailboxes\":1000},\"sinks\":{\"total\":2,"
    "\"healthy\":2},\"future_field\":{\"x\":1}}\n";

START_TEST(test_status)
{
	ck_assert_int_eq(render("status", status_ok, false), CTL_EXIT_OK);
	ck_assert_str_eq(buf_str(&out),
	    "ewsgw:          0.1.0, pid 123, up 1d02h03m04s\n"
	    "config:         /etc/ewsgw.conf\n"
	    "mode:           streaming\n"
	    "health:         healthy\n"
	    "mailboxes:      1000 (streaming 990, subscribing 10)\n"
	    "concurrency:    4 of 10 in use, 2 reserved for short requests\n"
	    "subscriptions:  1000 of 5000\n"
	    "streams:        5 of 8 open\n"
	    "charging:       service-account\n"
	    "oof cycle:      cycle 1m12s over 1000 mailboxes, 1 of 10 requests "
	    "(10%)\n"
	    "sinks:          2 of 2 healthy\n");
	ck_assert_uint_eq(err.len, 0);
}
END_TEST

/* Graph's budgets next to Exchange's; never the token itself. */
START_TEST(test_status_graph)
{
	const char *a = "{\"ok\":true,\"healthy\":true,\"budget\":"
	    "{\"concurrency\":{\"in_use\":1,\"limit\":27}},\"graph\":"
	    "{\"calls\":120,\"throttled\":2,\"retries\":2,\"waiting\":3,"
	    "\"in_flight\":5,\"max_in_flight_mailbox\":4,"
	    "\"mailbox_concurrency\":4,\"max_window_requests\":37,"
	    "\"mailbox_rate\":10000,\"mailbox_rate_window_s\":600,"
	    "\"max_app_window_requests\":64,\"app_rate\":130000,"
	    "\"app_rate_window_s\":10,\"paused\":1,\"token\":\"valid\","
	    "\"token_expires_s\":3550,\"token_fetches\":2,"
	    "\"token_failures\":0,\"results\":{\"ok\":118}}}";

	ck_assert_int_eq(render("status", a, false), CTL_EXIT_OK);
	ck_assert_str_eq(buf_str(&out),
	    "ewsgw:          ?, pid 0, up 0s\n"
	    "config:         -\n"
	    "mode:           -\n"
	    "health:         healthy\n"
	    "concurrency:    1 of 27 in use\n"
	    "graph:          120 calls, 5 in flight, 3 waiting; token valid "
	    "for 59m10s (2 fetched, 0 refused)\n"
	    "graph mailbox:  4 of 4 in flight at most, 37 of 10000 per 10m00s "
	    "in the busiest window\n"
	    "graph app:      64 of 130000 per 10s in the busiest window\n"
	    "graph 429:      2 answers 429/503 (2 retried), 1 mailboxes paused "
	    "by Retry-After now\n");
	/* Without a token: no time left shown. */
	ck_assert_int_eq(render("status", "{\"ok\":true,\"healthy\":true,"
	    "\"graph\":{\"token\":\"none\",\"token_failures\":3}}", false),
	    CTL_EXIT_OK);
	assert_has(&out, "graph:          0 calls, 0 in flight, 0 waiting; "
	    "token none (0 fetched, 3 refused)\n");
	/* No "graph" object (no Graph mailboxes): no Graph rows. */
	ck_assert_int_eq(render("status", status_ok, false), CTL_EXIT_OK);
	ck_assert_ptr_null(strstr(buf_str(&out), "graph"));
}
END_TEST

START_TEST(test_status_unhealthy)
{
	const char *a = "{\"ok\":true,\"version\":\"0.1.0\",\"pid\":1,"
	    "\"uptime_s\":5,\"healthy\":false,\"problems\":[\"no connection "
	    "to Exchange\",\"sink file: queue full\"]}\n";

	ck_assert_int_eq(render("status", a, false), CTL_EXIT_UNHEALTHY);
	assert_has(&out, "health:   UNHEALTHY\n");
	assert_has(&out, "problem:  no connection to Exchange\n"
	    "problem:  sink file: queue full\n");
	assert_has(&out, "up 5s\n");
	/* The loop's passes and its probe. */
	ck_assert_int_eq(render("status", "{\"ok\":true,\"healthy\":true,"
	    "\"loop\":{\"probe_ms\":1000,\"lag_p99_ms\":2.25,"
	    "\"lag_max_ms\":31.5,\"busy_p99_ms\":0.4,\"busy_max_ms\":"
	    "12.75}}", false), CTL_EXIT_OK);
	assert_has(&out, "event loop:  passes p99 0.4 ms, longest 12.8 ms of "
	    "CPU; 1000 ms probe late by max 31.5 ms\n");
	/* Restart-only keys changed in the file: named, still healthy. */
	ck_assert_int_eq(render("status", "{\"ok\":true,\"healthy\":true,"
	    "\"restart_pending\":[\"exchange.url\",\"exchange.mode\"]}",
	    false), CTL_EXIT_OK);
	assert_has(&out, "restart:  exchange.url, exchange.mode changed: "
	    "restart to apply\n");
	/* A stream limit of 0 is no limit of its own. */
	ck_assert_int_eq(render("status", "{\"ok\":true,\"healthy\":true,"
	    "\"budget\":{\"streaming_connections\":{\"open\":3,"
	    "\"limit\":0}}}", false), CTL_EXIT_OK);
	assert_has(&out, "streams:  3 open\n");
	/* Charged per impersonated anchor: that limit is what bounds it. */
	ck_assert_int_eq(render("status", "{\"ok\":true,\"healthy\":true,"
	    "\"budget\":{\"streaming_connections\":{\"open\":50,"
	    "\"limit\":null,\"per_anchor_limit\":3}}}", false), CTL_EXIT_OK);
	assert_has(&out, "streams:  50 open (at most 3 per anchor)\n");
	/* The automatic-replies cycle: off, or before its first end. */
	ck_assert_int_eq(render("status", "{\"ok\":true,\"healthy\":true,"
	    "\"oof\":{\"state\":\"off\",\"cycle_s\":null}}", false),
	    CTL_EXIT_OK);
	assert_has(&out, "oof cycle:  off\n");
	ck_assert_int_eq(render("status", "{\"ok\":true,\"healthy\":true,"
	    "\"oof\":{\"state\":\"running\",\"cycle_s\":null,\"slots\":2,"
	    "\"share_percent\":10,\"concurrency_limit\":27,"
	    "\"mailboxes\":5}}", false), CTL_EXIT_OK);
	assert_has(&out, "oof cycle:  first cycle over 5 mailboxes, 2 of 27 "
	    "requests (10%)\n");
	/* No "healthy" at all is not healthy either. */
	ck_assert_int_eq(render("status", "{\"ok\":true}", false),
	    CTL_EXIT_UNHEALTHY);
	/* The same with --json: verbatim, same exit status. */
	ck_assert_int_eq(render("status", a, true), CTL_EXIT_UNHEALTHY);
	ck_assert_str_eq(buf_str(&out), a);
	ck_assert_int_eq(render("status", status_ok, true), CTL_EXIT_OK);
	ck_assert_str_eq(buf_str(&out), status_ok);
}
END_TEST

START_TEST(test_mailboxes)
{
	const char *a = "{\"ok\":true,\"mailboxes\":["
	    "{\"address\":\"a@x\",\"state\":\"streaming\","
	    "\"mode\":\"streaming\","
	    "\"presence\":\"busy\",\"activity\":\"meeting\","
	    "\"since\":\"2026-11-29T10:00:00Z\","
	    "\"until\":\"2026-11-29T11:00:00Z\","
	    "\"connection\":3,\"error\":null,\"backoff_until\":null,"
	    "\"reason\":null},"
	    "{\"address\":\"long.name@example.org\",\"state\":\"backoff\","
	    "\"mode\":\"poll\",\"presence\":\"available\",\"activity\":null,"
	    "\"until\":null,\"connection\":null,"
	    "\"error\":\"ErrorMailboxMoveInProgress\","
	    "\"reason\":\"subscription budget full\"}]}";

	ck_assert_int_eq(render("mailboxes", a, false), CTL_EXIT_OK);
	/* Which mode each mailbox is in, and why. */
	ck_assert_str_eq(buf_str(&out),
	    "ADDRESS                STATE      MODE       PRESENCE   ACTIVITY"
	    "  UNTIL                 CONN  ERROR                       WHY\n"
	    "a@x                    streaming  streaming  busy       meeting "
	    "  2026-11-29T11:00:00Z  3     -                           -\n"
	    "long.name@example.org  backoff    poll       available  -       "
	    "  -                     -     ErrorMailboxMoveInProgress  "
	    "subscription budget full\n");
	/* An empty list is a heading only. */
	ck_assert_int_eq(render("mailboxes", "{\"ok\":true,\"mailboxes\":[]}",
	    false), CTL_EXIT_OK);
	ck_assert_str_eq(buf_str(&out), "ADDRESS  STATE  MODE  PRESENCE  "
	    "ACTIVITY  UNTIL  CONN  ERROR  WHY\n");
}
END_TEST

START_TEST(test_mailbox)
{
	const char *a = "{\"ok\":true,\"mailbox\":{\"address\":\"a@x\","
	    "\"state\":\"streaming\",\"presence\":\"busy\",\"error\":null,"
	    "\"timeline\":[{\"start\":\"2026-11-29T10:00:00Z\","
	    "\"end\":\"2026-11-29T11:00:00Z\",\"status\":\"Busy\","
	    "\"all_day\":false,\"private\":true}],"
	    "\"oof\":{\"state\":\"Disabled\"}}}";

	ck_assert_int_eq(render("mailbox", a, false), CTL_EXIT_OK);
	ck_assert_str_eq(buf_str(&out),
	    "address:    a@x\n"
	    "state:      streaming\n"
	    "presence:   busy\n"
	    "error:      -\n"
	    "oof.state:  Disabled\n"
	    "\n"
	    "timeline:\n"
	    "START                 END                   STATUS  ALL DAY  "
	    "PRIVATE\n"
	    "2026-11-29T10:00:00Z  2026-11-29T11:00:00Z  Busy    no       "
	    "yes\n");
}
END_TEST

START_TEST(test_connections_sinks)
{
	const char *c = "{\"ok\":true,\"connections\":[{\"id\":3,"
	    "\"anchor\":\"a@x\",\"subscriptions\":200,\"state\":\"open\","
	    "\"opened\":\"2026-11-29T10:00:00Z\","
	    "\"last_event\":\"2026-11-29T10:05:00Z\","
	    "\"affinity_cookie\":true}]}";
	const char *s = "{\"ok\":true,\"sinks\":[{\"name\":\"file\","
	    "\"type\":\"file\",\"healthy\":true,\"queue\":0,"
	    "\"queue_limit\":10000,\"delivered\":5,\"failed\":0,"
	    "\"retrying\":0,\"last_error\":null},{\"name\":\"hook\","
	    "\"type\":\"webhook\",\"healthy\":false,\"queue\":12,"
	    "\"queue_limit\":10000,\"delivered\":1,\"failed\":2,"
	    "\"retrying\":12,\"last_error\":\"HTTP 503\"}]}";

	ck_assert_int_eq(render("connections", c, false), CTL_EXIT_OK);
	ck_assert_str_eq(buf_str(&out),
	    "ID  ANCHOR  SUBS  STATE  OPENED                "
	    "LAST EVENT            AFFINITY\n"
	    "3   a@x     200   open   2026-11-29T10:00:00Z  "
	    "2026-11-29T10:05:00Z  yes\n");
	ck_assert_int_eq(render("sinks", s, false), CTL_EXIT_OK);
	ck_assert_str_eq(buf_str(&out),
	    "NAME  TYPE     HEALTHY  QUEUE  LIMIT  DELIVERED  FAILED  "
	    "RETRYING  LAST ERROR\n"
	    "file  file     yes      0      10000  5          0       "
	    "0         -\n"
	    "hook  webhook  no       12     10000  1          2       "
	    "12        HTTP 503\n");
}
END_TEST

START_TEST(test_errors)
{
	const char *e = "{\"ok\":false,\"error\":\"unknown mailbox: b@x\"}\n";

	ck_assert_int_eq(render("mailbox", e, false), CTL_EXIT_UNHEALTHY);
	ck_assert_uint_eq(out.len, 0);
	ck_assert_str_eq(buf_str(&err), "error: unknown mailbox: b@x\n");
	ck_assert_int_eq(render("mailbox", e, true), CTL_EXIT_UNHEALTHY);
	ck_assert_str_eq(buf_str(&out), e);
	ck_assert_int_eq(render("reload", "{\"ok\":false}", false),
	    CTL_EXIT_UNHEALTHY);
	ck_assert_str_eq(buf_str(&err), "error: unknown error\n");

	/* Not an answer at all. */
	ck_assert_int_eq(render("status", "", false), CTL_EXIT_FAILURE);
	ck_assert_int_eq(render("status", "\n", false), CTL_EXIT_FAILURE);
	ck_assert_int_eq(render("status", "hello\n", false), CTL_EXIT_FAILURE);
	ck_assert_int_eq(render("status", "{\"ok\":tru", false),
	    CTL_EXIT_FAILURE);
	assert_has(&err, "malformed answer (");
	ck_assert_int_eq(render("status", "{\"healthy\":true}", false),
	    CTL_EXIT_FAILURE);
	ck_assert_int_eq(render("status", "[true]", false), CTL_EXIT_FAILURE);
	ck_assert_uint_eq(out.len, 0);
}
END_TEST

START_TEST(test_metrics_and_misc)
{
	const char *m = "# TYPE ewsgw_up gauge\newsgw_up 1\n# EOF\n";

	ck_assert_int_eq(render("metrics", m, false), CTL_EXIT_OK);
	ck_assert_str_eq(buf_str(&out), m);
	ck_assert_int_eq(render("metrics", m, true), CTL_EXIT_OK);
	ck_assert_str_eq(buf_str(&out), m);
	ck_assert_int_eq(render("metrics", "# EOF\n", false), CTL_EXIT_OK);
	/* Cut short: no terminator. */
	ck_assert_int_eq(render("metrics", "ewsgw_up 1\n", false),
	    CTL_EXIT_FAILURE);
	/* Text where JSON belongs. */
	ck_assert_int_eq(render("status", m, false), CTL_EXIT_FAILURE);
	/* Metrics can fail like any command. */
	ck_assert_int_eq(render("metrics", "{\"ok\":false,\"error\":"
	    "\"metrics: not available\"}\n", false), CTL_EXIT_UNHEALTHY);
	ck_assert_str_eq(buf_str(&err), "error: metrics: not available\n");

	ck_assert_int_eq(render("reload", "{\"ok\":true}\n", false),
	    CTL_EXIT_OK);
	ck_assert_str_eq(buf_str(&out), "ok\n");
	ck_assert_int_eq(render("reload", "{\"ok\":true,\"restart_required\":"
	    "[]}\n", false), CTL_EXIT_OK);
	ck_assert_str_eq(buf_str(&out), "ok\n");
	ck_assert_int_eq(render("reload", "{\"ok\":true,\"restart_required\":"
	    "[\"exchange.url\",\"push.listen\"]}\n", false), CTL_EXIT_OK);
	ck_assert_str_eq(buf_str(&out), "ok\n"
	    "restart needed: exchange.url changed, the running value stays\n"
	    "restart needed: push.listen changed, the running value stays\n");
	ck_assert_int_eq(render("resync", "{\"ok\":true,\"queued\":3,"
	    "\"exchange\":{\"version\":\"Exchange2016\"}}", false),
	    CTL_EXIT_OK);
	ck_assert_str_eq(buf_str(&out), "queued:            3\n"
	    "exchange.version:  Exchange2016\n");

	ck_assert_int_eq(render("help", "{\"ok\":true,\"commands\":["
	    "{\"name\":\"status\",\"usage\":\"status\",\"help\":\"health\","
	    "\"mutates\":false},{\"name\":\"resync\",\"usage\":"
	    "\"resync ADDRESS\",\"help\":\"fetch again\",\"mutates\":true}]}",
	    false), CTL_EXIT_OK);
	ck_assert_str_eq(buf_str(&out), "status          health\n"
	    "resync ADDRESS  fetch again (root or the daemon's user)\n");
}
END_TEST

START_TEST(test_verify)
{
	const char *a = "{\"ok\":true,\"passed\":false,\"complete\":true,"
	    "\"checks\":[{\"name\":\"tls\",\"verdict\":\"PASS\","
	    "\"summary\":\"certificate valid\",\"seen\":\"x\","
	    "\"fix\":\"nothing\"},{\"name\":\"impersonation\","
	    "\"verdict\":\"FAIL\",\"summary\":\"ErrorImpersonateUserDenied\","
	    "\"seen\":\"y\",\"fix\":\"grant ApplicationImpersonation\","
	    "\"mailbox\":\"a@x\"}]}";

	ck_assert_int_eq(render("verify", a, false), CTL_EXIT_UNHEALTHY);
	ck_assert_str_eq(buf_str(&out),
	    "VERDICT  CHECK          MAILBOX  SUMMARY\n"
	    "PASS     tls            -        certificate valid\n"
	    "FAIL     impersonation  a@x      ErrorImpersonateUserDenied\n"
	    "\n"
	    "impersonation: grant ApplicationImpersonation\n"
	    "\n"
	    "result: FAILED\n");
	ck_assert_int_eq(render("verify", "{\"ok\":true,\"passed\":true,"
	    "\"complete\":false,\"checks\":[]}", false), CTL_EXIT_OK);
	ck_assert_str_eq(buf_str(&out), "VERDICT  CHECK  MAILBOX  SUMMARY\n"
	    "\nresult: passed (incomplete)\n");
}
END_TEST

/* Strings from the daemon never reach the terminal as escapes. */
START_TEST(test_sanitize)
{
	ck_assert_int_eq(render("mailboxes", "{\"ok\":true,\"mailboxes\":["
	    "{\"address\":\"evil\\u001b[2J@x\",\"state\":\"a\\nb\"}]}", false),
	    CTL_EXIT_OK);
	ck_assert_ptr_null(strchr(buf_str(&out), '\033'));
	assert_has(&out, "evil?[2J@x");
	assert_has(&out, "a?b");
	ck_assert_int_eq(render("reload", "{\"ok\":false,\"error\":"
	    "\"bad\\u0007\\u001b]0;x\"}", false), CTL_EXIT_UNHEALTHY);
	ck_assert_str_eq(buf_str(&err), "error: bad??]0;x\n");
	/* UTF-8 passes, and counts one column per character. */
	ck_assert_int_eq(render("mailboxes", "{\"ok\":true,\"mailboxes\":["
	    "{\"address\":\"j\\u00fcrg@x\"},{\"address\":\"abcdef\"}]}", false),
	    CTL_EXIT_OK);
	/* Seven bytes, six columns: padded like "abcdef". */
	assert_has(&out, "\nj\xc3\xbcrg@x   -");
	assert_has(&out, "\nabcdef   -");
}
END_TEST

START_TEST(test_duration)
{
	struct buf	 b = BUF_INIT;

	ctl_render_duration(&b, 0);
	ck_assert_str_eq(buf_str(&b), "0s");
	buf_reset(&b);
	ctl_render_duration(&b, 59.9);
	ck_assert_str_eq(buf_str(&b), "59s");
	buf_reset(&b);
	ctl_render_duration(&b, 3600);
	ck_assert_str_eq(buf_str(&b), "1h00m00s");
	buf_reset(&b);
	ctl_render_duration(&b, 61);
	ck_assert_str_eq(buf_str(&b), "1m01s");
	buf_reset(&b);
	ctl_render_duration(&b, -4);
	ck_assert_str_eq(buf_str(&b), "0s");
	buf_free(&b);
}
END_TEST

static void
teardown(void)
{
	buf_free(&out);
	buf_free(&err);
}

static Suite *
suite(void)
{
	Suite	*s = suite_create("ctl_render");
	TCase	*tc = tcase_create("render");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_status);
	tcase_add_test(tc, test_status_graph);
	tcase_add_test(tc, test_status_unhealthy);
	tcase_add_test(tc, test_mailboxes);
	tcase_add_test(tc, test_mailbox);
	tcase_add_test(tc, test_connections_sinks);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_metrics_and_misc);
	tcase_add_test(tc, test_verify);
	tcase_add_test(tc, test_sanitize);
	tcase_add_test(tc, test_duration);
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
