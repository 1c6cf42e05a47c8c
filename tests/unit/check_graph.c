/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the pure Graph modules against fixtures written from
 * Microsoft's documented examples (tests/fixtures/graph), plus hostile
 * input, the per-mailbox scheduler and the client assertion.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "base/buf.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "graph/gjson.h"
#include "graph/graph_batch.h"
#include "graph/graph_cal.h"
#include "graph/graph_error.h"
#include "graph/graph_jwt.h"
#include "graph/graph_sub.h"
#include "graph_fuzz_body.h"
#include "proto_test.h"

static int64_t
iso(const char *s)
{
	int64_t	 t;

	ck_assert_int_eq(time_parse_iso8601(s, strlen(s), &t), 0);
	return (t);
}

START_TEST(test_gjson_limits)
{
	struct buf	 b = BUF_INIT;
	char		*cause = NULL;
	gjson_t		*j;
	int		 i;

	/* 32 levels pass, 33 do not, whatever Jansson's own limit. */
	for (i = 0; i < GJSON_MAX_DEPTH; i++)
		buf_puts(&b, i == 0 ? "{\"a\":" : "[");
	buf_puts(&b, "1");
	for (i = 0; i < GJSON_MAX_DEPTH; i++)
		buf_puts(&b, i == GJSON_MAX_DEPTH - 1 ? "}" : "]");
	j = gjson_parse(b.data, b.len, 0, &cause);
	ck_assert_ptr_nonnull(j);
	gjson_free(j);
	buf_reset(&b);
	for (i = 0; i <= GJSON_MAX_DEPTH; i++)
		buf_puts(&b, i == 0 ? "{\"a\":" : "[");
	for (i = 0; i <= GJSON_MAX_DEPTH; i++)
		buf_puts(&b, i == GJSON_MAX_DEPTH ? "}" : "]");
	ck_assert_ptr_null(gjson_parse(b.data, b.len, 0, &cause));
	ck_assert_ptr_nonnull(strstr(cause, "deeper"));
	free(cause);
	/* Brackets inside strings do not count. */
	buf_reset(&b);
	buf_puts(&b, "{\"a\":\"");
	for (i = 0; i < 100; i++)
		buf_puts(&b, "[{\\\"");
	buf_puts(&b, "\"}");
	j = gjson_parse(b.data, b.len, 0, &cause);
	ck_assert_ptr_nonnull(j);
	gjson_free(j);
	/* Size cap, duplicate members, NUL in strings, not an object. */
	ck_assert_ptr_null(gjson_parse(b.data, b.len, 10, &cause));
	ck_assert_ptr_nonnull(strstr(cause, "more than 10"));
	free(cause);
	ck_assert_ptr_null(gjson_parse("{\"a\":1,\"a\":2}", 13, 0, &cause));
	free(cause);
	ck_assert_ptr_null(gjson_parse("{\"a\":\"x\\u0000y\"}", 16, 0,
	    &cause));
	free(cause);
	ck_assert_ptr_null(gjson_parse("[1]", 3, 0, &cause));
	free(cause);
	ck_assert_ptr_null(gjson_parse("{\"a\":\"\xff\"}", 9, 0, &cause));
	free(cause);
	buf_free(&b);
}
END_TEST

START_TEST(test_calview_url)
{
	struct buf	 b = BUF_INIT;
	int64_t		 s = iso("2026-03-02T00:00:00Z");

	graph_calview_url(&b, NULL, "adele@contoso.com", s, s + 7 * 86400,
	    false);
	ck_assert_str_eq(buf_str(&b), "https://graph.microsoft.com/v1.0/"
	    "users/adele@contoso.com/calendarView?startDateTime="
	    "2026-03-02T00:00:00Z&endDateTime=2026-03-09T00:00:00Z&$select="
	    "id,subject,showAs,isAllDay,sensitivity,isCancelled,start,end,"
	    "type&$top=100");
	buf_reset(&b);
	/* Path characters are encoded; delta carries no $select. */
	graph_calview_path(&b, "a/b c?d", s, s + 60, true);
	ck_assert_str_eq(buf_str(&b), "/users/a%2Fb%20c%3Fd/calendarView/"
	    "delta?startDateTime=2026-03-02T00:00:00Z&endDateTime="
	    "2026-03-02T00:01:00Z");
	buf_reset(&b);
	graph_auto_replies_url(&b, "http://127.0.0.1:1/v1.0", "u1");
	ck_assert_str_eq(buf_str(&b), "http://127.0.0.1:1/v1.0/users/u1/"
	    "mailboxSettings/automaticRepliesSetting");
	buf_free(&b);
}
END_TEST

START_TEST(test_calview_page)
{
	struct graph_page	 pg;
	char			*doc, *cause = NULL;
	size_t			 len;

	doc = pt_fixture("graph/calview-page.json", &len);
	ck_assert_int_eq(graph_parse_calview(doc, len, &pg, &cause), 0);
	ck_assert_uint_eq(pg.nitems, 5);
	ck_assert_uint_eq(pg.nskipped, 1);	/* Pacific Standard Time */
	ck_assert_uint_eq(pg.nremoved, 0);
	ck_assert_ptr_nonnull(pg.next_link);
	ck_assert_ptr_nonnull(strstr(pg.next_link, "%24skip=100"));
	ck_assert_ptr_null(pg.delta_link);

	ck_assert_str_eq(pg.items[0].id, "AAMkAGI2TGuLAAA=");
	ck_assert_int_eq(pg.items[0].start, iso("2026-03-02T09:00:00Z"));
	ck_assert_int_eq(pg.items[0].end, iso("2026-03-02T10:00:00Z"));
	ck_assert_int_eq(pg.items[0].fb, EWS_FB_BUSY);
	ck_assert_int_eq(pg.items[0].type, EWS_ITEM_SINGLE);
	ck_assert_str_eq(pg.items[0].change_key,
	    "W/\"ZlnW4RIAV06KYYwlrfNZvQAAKGWwbw==\"");
	ck_assert_int_eq(pg.items[1].fb, EWS_FB_OOF);
	ck_assert_int_eq(pg.items[1].sensitivity, EWS_SENS_PRIVATE);
	ck_assert_int_eq(pg.items[1].type, EWS_ITEM_OCCURRENCE);
	ck_assert_int_eq(pg.items[2].fb, EWS_FB_WORKING_ELSEWHERE);
	ck_assert(pg.items[2].all_day);
	ck_assert_int_eq(pg.items[2].sensitivity, EWS_SENS_CONFIDENTIAL);
	ck_assert_int_eq(pg.items[2].type, EWS_ITEM_EXCEPTION);
	ck_assert_int_eq(pg.items[3].fb, EWS_FB_TENTATIVE);
	ck_assert(pg.items[3].cancelled);
	ck_assert_ptr_null(pg.items[3].subject);
	ck_assert_int_eq(pg.items[4].fb, EWS_FB_NODATA);	/* unknown */
	graph_page_free(&pg);
	free(doc);

	doc = pt_fixture("graph/delta-final.json", &len);
	ck_assert_int_eq(graph_parse_calview(doc, len, &pg, &cause), 0);
	ck_assert_uint_eq(pg.nitems, 1);
	ck_assert_uint_eq(pg.nremoved, 1);
	ck_assert_str_eq(pg.removed[0], "AAMkADNVxSAAA=");
	ck_assert_ptr_null(pg.next_link);
	ck_assert_ptr_nonnull(strstr(pg.delta_link, "$deltatoken="));
	graph_page_free(&pg);
	free(doc);

	/* Broken pages say why. */
	ck_assert_int_eq(graph_parse_calview("{\"values\":[]}", 13, &pg,
	    &cause), -1);
	ck_assert_str_eq(cause, "no \"value\" array");
	free(cause);
	graph_page_free(&pg);
	ck_assert_int_eq(graph_parse_calview("{\"value\":[],"
	    "\"@odata.nextLink\":\"javascript:1\"}", 46, &pg, &cause), -1);
	free(cause);
	graph_page_free(&pg);
}
END_TEST

START_TEST(test_auto_replies)
{
	struct ews_oof	 oof;
	char		*doc, *cause = NULL;
	size_t		 len;
	static const char dis[] = "{\"status\":\"disabled\"}";
	static const char sched_local[] = "{\"status\":\"scheduled\","
	    "\"scheduledStartDateTime\":{\"dateTime\":\"2026-03-16T08:00:00\","
	    "\"timeZone\":\"W. Europe Standard Time\"},"
	    "\"scheduledEndDateTime\":{\"dateTime\":\"2026-03-17T08:00:00\","
	    "\"timeZone\":\"W. Europe Standard Time\"}}";

	doc = pt_fixture("graph/auto-replies-scheduled.json", &len);
	ck_assert_int_eq(graph_parse_auto_replies(doc, len, &oof, &cause), 0);
	ck_assert_int_eq(oof.state, EWS_OOF_SCHEDULED);
	ck_assert(oof.has_duration);
	ck_assert_int_eq(oof.start, iso("2026-03-16T08:00:00Z"));
	ck_assert_int_eq(oof.end, iso("2026-03-20T17:00:00Z"));
	ews_oof_free(&oof);
	free(doc);
	doc = pt_fixture("graph/mailbox-settings.json", &len);
	ck_assert_int_eq(graph_parse_auto_replies(doc, len, &oof, &cause), 0);
	ck_assert_int_eq(oof.state, EWS_OOF_ENABLED);
	ck_assert(!oof.has_duration);
	ews_oof_free(&oof);
	free(doc);
	ck_assert_int_eq(graph_parse_auto_replies(dis, sizeof dis - 1, &oof,
	    &cause), 0);
	ck_assert_int_eq(oof.state, EWS_OOF_DISABLED);
	ews_oof_free(&oof);
	/* A schedule in a zone we cannot convert is refused, not guessed. */
	ck_assert_int_eq(graph_parse_auto_replies(sched_local,
	    sizeof sched_local - 1, &oof, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "UTC"));
	free(cause);
	ews_oof_free(&oof);
}
END_TEST

START_TEST(test_subscription)
{
	struct graph_sub_req		 r;
	struct graph_subscription	 sub;
	struct buf			 b = BUF_INIT;
	char				*doc, *cause = NULL;
	size_t				 len;
	int64_t				 now = iso("2026-03-02T00:00:00Z");

	ck_assert_int_eq(graph_sub_max_expiry(now), now + 4230 * 60 - 600);
	memset(&r, 0, sizeof r);
	r.user = "adele@contoso.com";
	r.notification_url = "https://gw.example/graph/notify?t=x";
	r.lifecycle_url = "https://gw.example/graph/lifecycle";
	r.client_state = "s3cr\"et";
	r.expires = now + 3600;
	graph_sub_create_body(&b, &r);
	ck_assert_str_eq(buf_str(&b), "{\"changeType\":"
	    "\"created,updated,deleted\",\"notificationUrl\":"
	    "\"https://gw.example/graph/notify?t=x\","
	    "\"lifecycleNotificationUrl\":"
	    "\"https://gw.example/graph/lifecycle\",\"resource\":"
	    "\"/users/adele@contoso.com/events\",\"expirationDateTime\":"
	    "\"2026-03-02T01:00:00Z\",\"clientState\":\"s3cr\\\"et\"}");
	buf_reset(&b);
	graph_sub_renew_body(&b, now);
	ck_assert_str_eq(buf_str(&b),
	    "{\"expirationDateTime\":\"2026-03-02T00:00:00Z\"}");
	buf_reset(&b);
	graph_sub_url(&b, NULL, "7f10/x");
	ck_assert_str_eq(buf_str(&b),
	    "https://graph.microsoft.com/v1.0/subscriptions/7f10%2Fx");
	buf_free(&b);

	doc = pt_fixture("graph/subscription.json", &len);
	ck_assert_int_eq(graph_parse_subscription(doc, len, &sub, &cause), 0);
	ck_assert_str_eq(sub.id, "7f105c7d-2dc5-4530-97cd-4e7ae6534c07");
	ck_assert_str_eq(sub.resource, "/users/adele@contoso.com/events");
	ck_assert_int_eq(sub.expires, iso("2026-03-04T18:23:45Z"));
	graph_subscription_free(&sub);
	free(doc);
	ck_assert_int_eq(graph_parse_subscription("{\"id\":\"x\"}", 10, &sub,
	    &cause), -1);
	free(cause);
	graph_subscription_free(&sub);
}
END_TEST

START_TEST(test_validation_token)
{
	static const char q[] = "a=1&validationToken=Validation%3a+Testing"
	    "+client+application+reachability&b=2";
	char	*tok;

	ck_assert_int_eq(graph_validation_token(q, sizeof q - 1, &tok), 1);
	ck_assert_str_eq(tok, "Validation: Testing client application "
	    "reachability");
	free(tok);
	ck_assert_int_eq(graph_validation_token("x=1", 3, &tok), 0);
	ck_assert_ptr_null(tok);
	ck_assert_int_eq(graph_validation_token("validationToken=", 16,
	    &tok), -1);
	ck_assert_int_eq(graph_validation_token("validationToken=a%0d%0a"
	    "Set-Cookie:x", 35, &tok), -1);
	ck_assert_int_eq(graph_validation_token("validationToken=%zz", 19,
	    &tok), -1);
	ck_assert_int_eq(graph_validation_token("validationToken=%4", 18,
	    &tok), -1);
	ck_assert_ptr_null(tok);
}
END_TEST

START_TEST(test_notifications)
{
	struct graph_notifs	 ns;
	char			*doc, *cause = NULL;
	size_t			 len;

	doc = pt_fixture("graph/notify-change.json", &len);
	ck_assert_int_eq(graph_parse_notifications(doc, len,
	    "secretClientValue", &ns, &cause), 0);
	ck_assert_uint_eq(ns.n, 1);
	ck_assert_uint_eq(ns.bad_state, 2);	/* forged and absent */
	ck_assert_uint_eq(ns.bad_shape, 1);	/* no subscriptionId */
	ck_assert_int_eq(ns.v[0].kind, GRAPH_NOTIF_CHANGE);
	ck_assert_int_eq(ns.v[0].change, GRAPH_CHANGE_UPDATED);
	ck_assert_str_eq(ns.v[0].subscription_id,
	    "7f105c7d-2dc5-4530-97cd-4e7ae6534c07");
	ck_assert_str_eq(ns.v[0].item_id, "AAMkAGI2TGuLAAA=");
	ck_assert_int_eq(ns.v[0].sub_expires, iso("2026-03-04T18:23:45Z"));
	graph_notifs_free(&ns);
	/* Without the secret nothing passes. */
	ck_assert_int_eq(graph_parse_notifications(doc, len, "secretClient",
	    &ns, &cause), 0);
	ck_assert_uint_eq(ns.n, 0);
	ck_assert_uint_eq(ns.bad_state, 3);
	graph_notifs_free(&ns);
	free(doc);

	doc = pt_fixture("graph/notify-lifecycle.json", &len);
	ck_assert_int_eq(graph_parse_notifications(doc, len,
	    "secretClientValue", &ns, &cause), 0);
	ck_assert_uint_eq(ns.n, 3);
	ck_assert_int_eq(ns.v[0].kind, GRAPH_NOTIF_REAUTHORIZE);
	ck_assert_int_eq(ns.v[1].kind, GRAPH_NOTIF_REMOVED);
	ck_assert_int_eq(ns.v[2].kind, GRAPH_NOTIF_MISSED);
	ck_assert_str_eq(graph_notif_kind_name(ns.v[2].kind), "missed");
	graph_notifs_free(&ns);
	free(doc);

	ck_assert(graph_secret_eq("abc", "abc"));
	ck_assert(!graph_secret_eq("abc", "abd"));
	ck_assert(!graph_secret_eq("ab", "abc"));
	ck_assert(!graph_secret_eq("abcd", "abc"));
	ck_assert(!graph_secret_eq("", "abc"));
}
END_TEST

START_TEST(test_batch)
{
	struct graph_batch_req	 r[GRAPH_BATCH_MAX + 1];
	struct graph_batch	 bt;
	const struct graph_batch_resp *x;
	struct buf		 b = BUF_INIT;
	char			*doc, *cause = NULL;
	char			 ids[GRAPH_BATCH_MAX + 1][4];
	size_t			 len, i;
	gjson_t			*j;

	memset(r, 0, sizeof r);
	r[0].id = "1";
	r[0].method = "GET";
	r[0].url = "/users/a/calendarView?startDateTime=x";
	r[0].prefer = GRAPH_PREFER_UTC;
	r[1].id = "2";
	r[1].method = "PATCH";
	r[1].url = "/subscriptions/s1";
	r[1].body = "{\"expirationDateTime\":\"2026-03-02T00:00:00Z\"}";
	ck_assert_int_eq(graph_batch_body(&b, r, 2, &cause), 0);
	ck_assert_str_eq(buf_str(&b), "{\"requests\":[{\"id\":\"1\",\"method\":"
	    "\"GET\",\"url\":\"/users/a/calendarView?startDateTime=x\","
	    "\"headers\":{\"Prefer\":\"outlook.timezone=\\\"UTC\\\"\"}},"
	    "{\"id\":\"2\",\"method\":\"PATCH\",\"url\":\"/subscriptions/s1\","
	    "\"headers\":{\"Content-Type\":\"application/json\"},\"body\":"
	    "{\"expirationDateTime\":\"2026-03-02T00:00:00Z\"}}]}");
	/* What we write, Jansson reads back. */
	j = gjson_parse(b.data, b.len, 0, &cause);
	ck_assert_ptr_nonnull(j);
	gjson_free(j);

	for (i = 0; i <= GRAPH_BATCH_MAX; i++) {
		snprintf(ids[i], sizeof ids[i], "%zu", i);
		r[i].id = ids[i];
		r[i].method = "GET";
		r[i].url = "/users/a/events";
		r[i].body = NULL;
	}
	buf_reset(&b);
	ck_assert_int_eq(graph_batch_body(&b, r, GRAPH_BATCH_MAX, &cause), 0);
	ck_assert_int_eq(graph_batch_body(&b, r, GRAPH_BATCH_MAX + 1,
	    &cause), -1);
	free(cause);
	r[1].id = "0";
	ck_assert_int_eq(graph_batch_body(&b, r, 2, &cause), -1);
	free(cause);
	r[1].id = "1";
	r[1].url = "https://graph.microsoft.com/v1.0/users/a/events";
	ck_assert_int_eq(graph_batch_body(&b, r, 2, &cause), -1);
	free(cause);
	r[1].url = "/x";
	r[1].body = "{\"a\":";
	ck_assert_int_eq(graph_batch_body(&b, r, 2, &cause), -1);
	free(cause);
	buf_free(&b);

	doc = pt_fixture("graph/batch-response.json", &len);
	ck_assert_int_eq(graph_parse_batch(doc, len, &bt, &cause), 0);
	ck_assert_uint_eq(bt.n, 3);
	x = graph_batch_find(&bt, "1");
	ck_assert_int_eq(x->status, 429);
	ck_assert_int_eq(x->retry_after_s, 7);
	x = graph_batch_find(&bt, "2");
	ck_assert_int_eq(x->status, 200);
	ck_assert_int_eq(x->retry_after_s, -1);
	{
		struct ews_oof	 oof;

		ck_assert_int_eq(graph_parse_auto_replies(x->body,
		    x->body_len, &oof, &cause), 0);
		ck_assert_int_eq(oof.state, EWS_OOF_DISABLED);
		ews_oof_free(&oof);
	}
	x = graph_batch_find(&bt, "3");
	ck_assert_int_eq(x->status, 403);
	{
		struct graph_error	 e;

		ck_assert_int_eq(graph_parse_error(x->body, x->body_len, &e),
		    0);
		ck_assert_str_eq(e.code, "ErrorAccessDenied");
		ck_assert_int_eq(graph_classify(x->status, e.code),
		    GRAPH_ACT_DENIED);
		graph_error_free(&e);
	}
	ck_assert_ptr_null(graph_batch_find(&bt, "4"));
	graph_batch_free(&bt);
	free(doc);
}
END_TEST

START_TEST(test_errors)
{
	struct graph_error	 e;
	char			*doc;
	size_t			 len;
	int64_t			 now = iso("2026-03-02T09:00:00Z");

	doc = pt_fixture("graph/error-throttled.json", &len);
	ck_assert_int_eq(graph_parse_error(doc, len, &e), 0);
	ck_assert_str_eq(e.code, "ApplicationThrottled");
	ck_assert_ptr_nonnull(strstr(e.message, "MailboxConcurrency"));
	graph_error_free(&e);
	free(doc);
	ck_assert_int_eq(graph_parse_error("{\"value\":[]}", 12, &e), -1);

	ck_assert_int_eq(graph_classify(200, NULL), GRAPH_ACT_OK);
	ck_assert_int_eq(graph_classify(202, NULL), GRAPH_ACT_OK);
	ck_assert_int_eq(graph_classify(429, NULL), GRAPH_ACT_THROTTLED);
	ck_assert_int_eq(graph_classify(503, NULL), GRAPH_ACT_THROTTLED);
	ck_assert_int_eq(graph_classify(401, NULL), GRAPH_ACT_AUTH);
	ck_assert_int_eq(graph_classify(404, NULL), GRAPH_ACT_NOT_FOUND);
	ck_assert_int_eq(graph_classify(410, NULL), GRAPH_ACT_RESYNC);
	ck_assert_int_eq(graph_classify(400, "syncStateNotFound"),
	    GRAPH_ACT_RESYNC);
	ck_assert_int_eq(graph_classify(502, NULL), GRAPH_ACT_TRANSIENT);
	ck_assert_int_eq(graph_classify(0, NULL), GRAPH_ACT_TRANSIENT);
	ck_assert_int_eq(graph_classify(400, "BadRequest"), GRAPH_ACT_FATAL);
	/* No mailbox in Exchange Online, whatever the 4xx status. */
	ck_assert_int_eq(graph_classify(400, "MailboxNotEnabledForRESTAPI"),
	    GRAPH_ACT_NOT_FOUND);
	ck_assert_int_eq(graph_classify(404, "ErrorInvalidUser"),
	    GRAPH_ACT_NOT_FOUND);
	ck_assert_int_eq(graph_classify(503, "MailboxNotEnabledForRESTAPI"),
	    GRAPH_ACT_THROTTLED);
	ck_assert(graph_no_mailbox("MailboxNotEnabledForRESTAPI"));
	ck_assert(graph_no_mailbox("mailboxnotsupportedforrestapi"));
	ck_assert(graph_no_mailbox("ErrorInvalidUser"));
	ck_assert(graph_no_mailbox("ResourceNotFound"));
	ck_assert(!graph_no_mailbox("ErrorAccessDenied"));
	ck_assert(!graph_no_mailbox("ErrorItemNotFound"));
	ck_assert(!graph_no_mailbox(NULL));

	ck_assert_int_eq(graph_retry_after("7", now), 7);
	ck_assert_int_eq(graph_retry_after(" 0 ", now), 0);
	/* Saturated, not clamped: the scheduler's clamp is the one. */
	ck_assert_int_eq(graph_retry_after("99999999999999999999", now),
	    GRAPH_RETRY_AFTER_SAT_S);
	ck_assert_int_eq(graph_retry_after("7200", now), 7200);
	ck_assert_int_eq(graph_retry_after("Mon, 02 Mar 2026 09:00:30 GMT",
	    now), 30);
	ck_assert_int_eq(graph_retry_after("Mon, 02 Mar 2026 08:00:00 GMT",
	    now), 0);
	ck_assert_int_eq(graph_retry_after("7s", now), -1);
	ck_assert_int_eq(graph_retry_after("-3", now), -1);
	ck_assert_int_eq(graph_retry_after("soon", now), -1);
	ck_assert_int_eq(graph_retry_after(NULL, now), -1);
}
END_TEST

/* A self-signed RSA certificate and its key as PEM text. */
static void
make_cert(struct buf *cert, struct buf *key)
{
	EVP_PKEY	*pk = EVP_RSA_gen(2048);
	X509		*x = X509_new();
	BIO		*b;
	char		*p;
	long		 n;

	ck_assert_ptr_nonnull(pk);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, pk);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_ASC, (const unsigned char *)"ewsgw-test", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	ck_assert_int_gt(X509_sign(x, pk, EVP_sha256()), 0);
	b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &p);
	buf_append(cert, p, (size_t)n);
	BIO_free(b);
	b = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(b, &p);
	buf_append(key, p, (size_t)n);
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(pk);
}

static int
b64url_dec(const char *s, size_t len, unsigned char *out)
{
	struct buf	 t = BUF_INIT;
	size_t		 i;
	int		 n;

	for (i = 0; i < len; i++)
		buf_putc(&t, s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i]);
	while (t.len % 4 != 0)
		buf_putc(&t, '=');
	n = EVP_DecodeBlock(out, (const unsigned char *)t.data, (int)t.len);
	if (n >= 0)
		n -= (int)(len % 4 == 2 ? 2 : len % 4 == 3 ? 1 : 0);
	buf_free(&t);
	return (n);
}

START_TEST(test_jwt)
{
	struct buf		 cert = BUF_INIT, key = BUF_INIT;
	struct buf		 other = BUF_INIT, okey = BUF_INIT;
	struct graph_jwt_key	*k;
	char			*a, *cause = NULL, *d1, *d2;
	unsigned char		 part[4096];
	int			 n;
	gjson_t			*h, *c;
	BIO			*bio;
	X509			*x;
	EVP_PKEY		*pub;
	EVP_MD_CTX		*ctx;
	EVP_PKEY_CTX		*pctx;

	make_cert(&cert, &key);
	make_cert(&other, &okey);
	/* A key that is not the certificate's is refused. */
	ck_assert_ptr_null(graph_jwt_key_new(cert.data, cert.len, okey.data,
	    okey.len, &cause));
	ck_assert_ptr_nonnull(strstr(cause, "does not match"));
	free(cause);
	ck_assert_ptr_null(graph_jwt_key_new("x", 1, key.data, key.len,
	    &cause));
	free(cause);
	k = graph_jwt_key_new(cert.data, cert.len, key.data, key.len, &cause);
	ck_assert_ptr_nonnull(k);
	a = graph_jwt_assertion(k, "cid-1", "https://login.example/t/oauth2/"
	    "v2.0/token", 1772400000, &cause);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(d1 = strchr(a, '.'));
	ck_assert_ptr_nonnull(d2 = strchr(d1 + 1, '.'));

	n = b64url_dec(a, (size_t)(d1 - a), part);
	h = gjson_parse((char *)part, (size_t)n, 0, &cause);
	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(gjson_str(h, "alg"), "PS256");
	ck_assert_str_eq(gjson_str(h, "x5t#S256"), graph_jwt_thumbprint(k));
	ck_assert_uint_eq(strlen(graph_jwt_thumbprint(k)), 43);
	gjson_free(h);
	n = b64url_dec(d1 + 1, (size_t)(d2 - d1 - 1), part);
	c = gjson_parse((char *)part, (size_t)n, 0, &cause);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(gjson_str(c, "aud"),
	    "https://login.example/t/oauth2/v2.0/token");
	ck_assert_str_eq(gjson_str(c, "iss"), "cid-1");
	ck_assert_str_eq(gjson_str(c, "sub"), "cid-1");
	ck_assert_int_eq(gjson_int(c, "nbf", 0), 1772400000);
	ck_assert_int_eq(gjson_int(c, "exp", 0), 1772400000 + 600);
	ck_assert_uint_eq(strlen(gjson_str(c, "jti")), 22);
	gjson_free(c);

	/* The signature verifies with the certificate's public key. */
	n = b64url_dec(d2 + 1, strlen(d2 + 1), part);
	ck_assert_int_eq(n, 256);
	bio = BIO_new_mem_buf(cert.data, (int)cert.len);
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	pub = X509_get_pubkey(x);
	ctx = EVP_MD_CTX_new();
	ck_assert_int_eq(EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL,
	    pub), 1);
	EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
	EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
	ck_assert_int_eq(EVP_DigestVerify(ctx, part, (size_t)n,
	    (const unsigned char *)a, (size_t)(d2 - a)), 1);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pub);
	X509_free(x);
	BIO_free(bio);
	xfree_secret(a);
	graph_jwt_key_free(k);
	buf_free(&cert);
	buf_free(&key);
	buf_free(&other);
	buf_free_secret(&okey);
}
END_TEST

/* The fuzzer's seed corpus, replayed: hostile shapes stay refused. */
START_TEST(test_fuzz_corpus)
{
	DIR		*d;
	struct dirent	*de;
	char		*path, *doc;
	size_t		 len;
	int		 n = 0;

	xasprintf(&path, "%s/tests/fuzz/corpus/graph", EWSGW_TEST_SRCDIR);
	ck_assert_ptr_nonnull(d = opendir(path));
	free(path);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		xasprintf(&path, "../fuzz/corpus/graph/%s", de->d_name);
		doc = pt_fixture(path, &len);
		graph_fuzz_one(doc, len);
		free(doc);
		free(path);
		n++;
	}
	closedir(d);
	ck_assert_int_ge(n, 14);
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("graph");
	TCase	*tc = tcase_create("graph");

	tcase_add_test(tc, test_gjson_limits);
	tcase_add_test(tc, test_calview_url);
	tcase_add_test(tc, test_calview_page);
	tcase_add_test(tc, test_auto_replies);
	tcase_add_test(tc, test_subscription);
	tcase_add_test(tc, test_validation_token);
	tcase_add_test(tc, test_notifications);
	tcase_add_test(tc, test_batch);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_jwt);
	tcase_add_test(tc, test_fuzz_corpus);
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
