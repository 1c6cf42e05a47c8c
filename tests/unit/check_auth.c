/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests for the OAuth2 token cache against a fake token endpoint
 * and a fake EWS endpoint that checks bearer tokens.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "io/auth.h"
#include "evtest.h"
#include "io/http.h"
#include "base/log.h"
#include "base/xmalloc.h"

static struct event_base	*base;
static struct evhttp		*server;
static unsigned			 port;
static struct http_engine	*eng;
static struct auth		*auth;
static int64_t			 fake_now;

/* The fake identity platform and EWS. */
static int	 token_requests;
static char	*token_body;		/* last form body */
static char	*token_ctype;
static bool	 token_fail;		/* answer 400 invalid_client */
static int	 token_expires_in = 3600;
static const char *token_expires_raw;	/* non-NULL: expires_in verbatim */
static char	 ews_accept[64];	/* token EWS accepts */
static char	*ews_auth;		/* last Authorization header */
static int	 ews_requests;

static int64_t
fake_clock(void)
{
	return (fake_now);
}

static void
server_cb(struct evhttp_request *req, void *arg)
{
	const char	*uri = evhttp_request_get_uri(req);
	char		 json[256];

	if (strcmp(uri, "/token") == 0) {
		token_requests++;
		free(token_body);
		free(token_ctype);
		token_body = evtest_body(req);
		token_ctype = evtest_header(req, "Content-Type");
		if (token_fail) {
			evtest_reply(req, 400, "{\"error\":\"invalid_client\","
			    "\"error_description\":\"AADSTS7000215: Invalid "
			    "client secret provided.\"}");
			return;
		}
		if (token_expires_raw != NULL)
			snprintf(json, sizeof json, "{\"token_type\":"
			    "\"Bearer\",\"expires_in\":%s,"
			    "\"access_token\":\"tok-%d\"}", token_expires_raw,
			    token_requests);
		else
			snprintf(json, sizeof json, "{\"token_type\":"
			    "\"Bearer\",\"expires_in\":%d,"
			    "\"ext_expires_in\":%d,\"access_token\":"
			    "\"tok-%d\"}", token_expires_in, token_expires_in,
			    token_requests);
		evtest_reply(req, 200, json);
	} else if (strcmp(uri, "/ews") == 0) {
		char	 want[80];

		ews_requests++;
		free(ews_auth);
		ews_auth = evtest_header(req, "Authorization");
		snprintf(want, sizeof want, "Bearer %s", ews_accept);
		if (ews_auth != NULL && strcmp(ews_auth, want) == 0)
			evtest_reply(req, 200, "ok");
		else {
			evhttp_add_header(
			    evhttp_request_get_output_headers(req),
			    "WWW-Authenticate",
			    "Bearer error=\"invalid_token\"");
			evtest_reply(req, 401, NULL);
		}
	} else
		evtest_reply(req, 404, NULL);
}

static char *
url(const char *path)
{
	char	*u;

	xasprintf(&u, "http://127.0.0.1:%u%s", port, path);
	return (u);
}

static void
setup(void)
{
	struct http_engine_opts	 eo = { 0 };
	struct auth_opts	 ao = { 0 };
	char			*cause = NULL, *tu;

	log_init("check_auth", LOG_TARGET_STDERR, LOG_WARNING);
	base = event_base_new();
	server = evtest_server(base, server_cb, NULL, &port);
	ck_assert_ptr_nonnull(server);
	eo.cred = HTTP_CRED_BEARER;
	eo.tls_verify = true;
	eng = http_engine_new(base, &eo, &cause);
	ck_assert_ptr_nonnull(eng);
	tu = url("/token");
	ao.token_url = tu;
	ao.client_id = "0b2c-client";
	ao.client_secret = "s3cr+t/=&x y~";
	ao.clock = fake_clock;
	auth = auth_new(base, eng, &ao);
	free(tu);
	fake_now = 1000000;
	token_requests = ews_requests = 0;
	token_fail = false;
	token_expires_in = 3600;
	token_expires_raw = NULL;
	snprintf(ews_accept, sizeof ews_accept, "tok-1");
}

static void
teardown(void)
{
	auth_free(auth);
	http_engine_free(eng);
	evhttp_free(server);
	event_base_free(base);
	free(token_body);
	free(token_ctype);
	free(ews_auth);
	token_body = token_ctype = ews_auth = NULL;
}

struct waiter {
	bool	 done;
	char	*token;
	char	*error;
};

static void
on_token(const char *token, const char *error, void *arg)
{
	struct waiter	*w = arg;

	w->done = true;
	w->token = token != NULL ? xstrdup(token) : NULL;
	w->error = error != NULL ? xstrdup(error) : NULL;
}

static void
waiter_free(struct waiter *w)
{
	free(w->token);
	free(w->error);
}

START_TEST(test_fetch_shared)
{
	struct waiter	 w[3] = { 0 }, later = { 0 };

	for (int i = 0; i < 3; i++)
		auth_get(auth, on_token, &w[i]);
	ck_assert(!w[0].done);	/* never from inside auth_get */
	ck_assert(evtest_run_until(base, &w[2].done, 5000));
	ck_assert_int_eq(token_requests, 1);
	for (int i = 0; i < 3; i++) {
		ck_assert(w[i].done);
		ck_assert_str_eq(w[i].token, "tok-1");
		ck_assert_ptr_null(w[i].error);
	}
	ck_assert_str_eq(token_ctype, "application/x-www-form-urlencoded");
	ck_assert_str_eq(token_body, "grant_type=client_credentials&"
	    "client_id=0b2c-client&client_secret=s3cr%2Bt%2F%3D%26x%20y~&"
	    "scope=https%3A%2F%2Foutlook.office365.com%2F.default");
	ck_assert_str_eq(auth_current(auth), "tok-1");

	/* Cached: served later from the loop, no new fetch. */
	auth_get(auth, on_token, &later);
	ck_assert(!later.done);
	ck_assert(evtest_run_until(base, &later.done, 5000));
	ck_assert_str_eq(later.token, "tok-1");
	ck_assert_int_eq(token_requests, 1);
	for (int i = 0; i < 3; i++)
		waiter_free(&w[i]);
	waiter_free(&later);
}
END_TEST

START_TEST(test_refresh_ahead)
{
	struct waiter		 w = { 0 };
	struct auth_stats	 st;

	auth_get(auth, on_token, &w);
	ck_assert(evtest_run_until(base, &w.done, 5000));
	ck_assert_str_eq(w.token, "tok-1");

	/* Half-way through the hour: still cached, no fetch. */
	fake_now += 1800 * 1000;
	ck_assert_str_eq(auth_current(auth), "tok-1");
	evtest_run_for(base, 50);
	ck_assert_int_eq(token_requests, 1);

	/* Past 80%: the old token still answers, a refresh starts. */
	fake_now += 1100 * 1000;
	ck_assert_str_eq(auth_current(auth), "tok-1");
	ck_assert_str_eq(auth_current(auth), "tok-1");	/* one fetch only */
	evtest_run_for(base, 200);
	ck_assert_int_eq(token_requests, 2);
	ck_assert_str_eq(auth_current(auth), "tok-2");
	auth_get_stats(auth, &st);
	ck_assert_int_eq(st.fetches, 2);
	ck_assert_int_gt(st.expires_in_ms, 3500 * 1000);

	/* Long after expiry nothing valid is left. */
	fake_now += 7200 * 1000;
	ck_assert_ptr_null(auth_current(auth));
	waiter_free(&w);
}
END_TEST

struct ews {
	bool		 done;
	int		 ndone;
	enum http_result result;
	char		*error;
};

static void
on_ews(struct http_request *req, const struct http_response *resp,
    void *arg)
{
	struct ews	*e = arg;

	e->done = true;
	e->ndone++;
	e->result = resp->result;
	free(e->error);
	e->error = resp->error != NULL ? xstrdup(resp->error) : NULL;
}

static struct http_request *
ews_start(struct ews *e)
{
	struct http_request_opts	 o = { 0 };
	struct http_request		*r;
	char				*u = url("/ews");

	o.method = HTTP_POST;
	o.url = u;
	o.body = "<x/>";
	o.body_len = 4;
	r = http_request_start(eng, &o, on_ews, NULL, e);
	free(u);
	return (r);
}

START_TEST(test_ews_retry_once)
{
	struct ews	 e[3] = { 0 }, one = { 0 }, bad = { 0 };

	/* First use: the request waits for the first token. */
	ews_start(&one);
	ck_assert(evtest_run_until(base, &one.done, 5000));
	ck_assert_int_eq(one.result, HTTP_RESULT_OK);
	ck_assert_str_eq(ews_auth, "Bearer tok-1");
	ck_assert_int_eq(token_requests, 1);

	/* The server revokes tok-1: three requests, one new token. */
	snprintf(ews_accept, sizeof ews_accept, "tok-2");
	for (int i = 0; i < 3; i++)
		ews_start(&e[i]);
	for (int i = 0; i < 3; i++)
		ck_assert(evtest_run_until(base, &e[i].done, 5000));
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(e[i].result, HTTP_RESULT_OK);
		ck_assert_int_eq(e[i].ndone, 1);
	}
	ck_assert_int_eq(token_requests, 2);
	ck_assert_int_eq(http_engine_stats(eng)->retried_auth, 3);
	ck_assert_str_eq(ews_auth, "Bearer tok-2");

	/* A server that refuses every token: one refresh, then AUTH. */
	snprintf(ews_accept, sizeof ews_accept, "never");
	ews_requests = 0;
	ews_start(&bad);
	ck_assert(evtest_run_until(base, &bad.done, 5000));
	ck_assert_int_eq(bad.result, HTTP_RESULT_AUTH);
	ck_assert_int_eq(token_requests, 3);
	ck_assert_int_eq(ews_requests, 2);
	for (int i = 0; i < 3; i++)
		free(e[i].error);
	free(one.error);
	free(bad.error);
}
END_TEST

START_TEST(test_fetch_failure)
{
	struct ews	 e = { 0 };
	struct waiter	 w = { 0 };

	token_fail = true;
	ews_start(&e);
	auth_get(auth, on_token, &w);
	ck_assert(evtest_run_until(base, &e.done, 5000));
	ck_assert(evtest_run_until(base, &w.done, 5000));
	ck_assert_int_eq(token_requests, 1);
	ck_assert_int_eq(e.result, HTTP_RESULT_AUTH);
	ck_assert_ptr_nonnull(strstr(e.error, "invalid_client"));
	ck_assert_ptr_nonnull(strstr(e.error, "AADSTS7000215"));
	ck_assert_ptr_null(strstr(e.error, "s3cr"));
	ck_assert_ptr_null(w.token);
	ck_assert_ptr_nonnull(w.error);
	ck_assert_int_eq(ews_requests, 0);
	ck_assert_ptr_null(auth_current(auth));

	/* The next attempt fetches again and succeeds. */
	token_fail = false;
	snprintf(ews_accept, sizeof ews_accept, "tok-2");
	e.done = false;
	ews_start(&e);
	ck_assert(evtest_run_until(base, &e.done, 5000));
	ck_assert_int_eq(e.result, HTTP_RESULT_OK);
	ck_assert_int_eq(token_requests, 2);
	free(e.error);
	waiter_free(&w);
}
END_TEST

START_TEST(test_cancel_waiters)
{
	struct waiter		 kept = { 0 }, gone = { 0 };
	struct ews		 e = { 0 };
	struct auth_wait	*aw;
	struct http_request	*r;

	aw = auth_get(auth, on_token, &gone);
	auth_get(auth, on_token, &kept);
	r = ews_start(&e);
	auth_wait_cancel(auth, aw);
	http_request_cancel(r);
	ck_assert(evtest_run_until(base, &kept.done, 5000));
	evtest_run_for(base, 50);
	ck_assert(!gone.done);
	ck_assert(!e.done);
	ck_assert_int_eq(ews_requests, 0);
	ck_assert_str_eq(kept.token, "tok-1");
	waiter_free(&kept);
}
END_TEST

START_TEST(test_invalidate_only_current)
{
	struct waiter	 w = { 0 };

	auth_get(auth, on_token, &w);
	ck_assert(evtest_run_until(base, &w.done, 5000));
	/* A stale token from an older request changes nothing. */
	auth_invalidate(auth, "tok-0");
	ck_assert_str_eq(auth_current(auth), "tok-1");
	auth_invalidate(auth, "tok-1");
	ck_assert_ptr_null(auth_current(auth));
	waiter_free(&w);
}
END_TEST

START_TEST(test_bad_answers)
{
	static const int	 lifetimes[] = { 0, -5 };
	struct waiter		 w = { 0 };

	for (size_t i = 0; i < 2; i++) {
		memset(&w, 0, sizeof w);
		token_expires_in = lifetimes[i];
		auth_get(auth, on_token, &w);
		ck_assert(evtest_run_until(base, &w.done, 5000));
		ck_assert_ptr_null(w.token);
		ck_assert_ptr_nonnull(strstr(w.error, "expires_in"));
		waiter_free(&w);
	}
}
END_TEST

/*
 * A huge expires_in, as a number or a string, is clamped to a day before
 * any arithmetic (it overflowed a signed multiply: the sanitizer build
 * aborted); junk in the string is refused.
 */
START_TEST(test_huge_expires_in)
{
	static const char *const huge[] = { "9223372036854775807",
	    "\"99999999999999999999\"", "1e300", "\"1e30\"" };
	static const char *const junk[] = { "\"-1\"", "\"nan\"", "\"x\"",
	    "-1e300" };
	struct waiter		 w;
	struct auth_stats	 st;
	size_t			 i;

	for (i = 0; i < sizeof huge / sizeof huge[0]; i++) {
		memset(&w, 0, sizeof w);
		auth_invalidate(auth, auth_current(auth));
		token_expires_raw = huge[i];
		auth_get(auth, on_token, &w);
		ck_assert(evtest_run_until(base, &w.done, 5000));
		ck_assert_msg(w.token != NULL, "%s: %s", huge[i], w.error);
		auth_get_stats(auth, &st);
		ck_assert_int_gt(st.expires_in_ms, 86000 * 1000);
		ck_assert_int_le(st.expires_in_ms, 86400 * 1000);
		waiter_free(&w);
	}
	for (i = 0; i < sizeof junk / sizeof junk[0]; i++) {
		memset(&w, 0, sizeof w);
		auth_invalidate(auth, auth_current(auth));
		token_expires_raw = junk[i];
		auth_get(auth, on_token, &w);
		ck_assert(evtest_run_until(base, &w.done, 5000));
		ck_assert_msg(w.token == NULL, "%s accepted", junk[i]);
		ck_assert_ptr_nonnull(strstr(w.error, "expires_in"));
		waiter_free(&w);
	}
}
END_TEST

/* Debug traces of a token fetch and a bearer request hold no secret. */
START_TEST(test_no_secrets_logged)
{
	struct ews	 e = { 0 };
	char		 path[] = "/tmp/check_auth.XXXXXX";
	char		*log;
	FILE		*f;
	long		 len;
	int		 fd, saved;

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	log_set_level(LOG_DEBUG);
	ews_start(&e);
	ck_assert(evtest_run_until(base, &e.done, 5000));
	log_set_level(LOG_WARNING);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ck_assert_int_eq(e.result, HTTP_RESULT_OK);

	f = fdopen(fd, "r");
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	log = xcalloc(1, len + 1);
	ck_assert_int_eq(fread(log, 1, len, f), len);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(log, "Authorization: Bearer <redacted>"));
	ck_assert_ptr_nonnull(strstr(log, "body bytes (not shown)"));
	ck_assert_ptr_null(strstr(log, "tok-1"));
	ck_assert_ptr_null(strstr(log, "s3cr"));
	ck_assert_ptr_null(strstr(log, "client_secret="));
	free(log);
	free(e.error);
}
END_TEST

static Suite *
auth_suite(void)
{
	Suite	*s = suite_create("auth");
	TCase	*tc = tcase_create("oauth2");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_fetch_shared);
	tcase_add_test(tc, test_refresh_ahead);
	tcase_add_test(tc, test_ews_retry_once);
	tcase_add_test(tc, test_fetch_failure);
	tcase_add_test(tc, test_cancel_waiters);
	tcase_add_test(tc, test_invalidate_only_current);
	tcase_add_test(tc, test_bad_answers);
	tcase_add_test(tc, test_huge_expires_in);
	tcase_add_test(tc, test_no_secrets_logged);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(auth_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
