/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: etcd gateway messages -- base64, prefix ends, request
 * bodies, and answers as etcd 3.4 wrote them (captured from a real
 * server), plus broken ones.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "cluster/etcd_msg.h"

START_TEST(test_b64)
{
	static const char *const plain[] = {
		"", "f", "fo", "foo", "foob", "fooba", "foobar"
	};
	static const char *const coded[] = {
		"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"
	};
	static const char *const bad[] = {
		"Zg=", "Z===", "Zh==", "Zm9=", "Zm9v!A==", "====", "Zg==Zg==",
		"Zm\n9v"
	};
	struct buf	 b = BUF_INIT;
	size_t		 i;
	unsigned char	 all[256];

	for (i = 0; i < 7; i++) {
		buf_reset(&b);
		etcd_b64_encode(&b, plain[i], strlen(plain[i]));
		ck_assert_str_eq(buf_str(&b), coded[i]);
		buf_reset(&b);
		ck_assert_int_eq(etcd_b64_decode(coded[i], strlen(coded[i]),
		    &b), 0);
		ck_assert_str_eq(buf_str(&b), plain[i]);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		buf_reset(&b);
		ck_assert_msg(etcd_b64_decode(bad[i], strlen(bad[i]),
		    &b) == -1, "accepted %s", bad[i]);
	}
	for (i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	{
		struct buf	 e = BUF_INIT;

		etcd_b64_encode(&e, all, 256);
		buf_reset(&b);
		ck_assert_int_eq(etcd_b64_decode(e.data, e.len, &b), 0);
		ck_assert_uint_eq(b.len, 256);
		ck_assert_int_eq(memcmp(b.data, all, 256), 0);
		buf_free(&e);
	}
	buf_free(&b);
}
END_TEST

START_TEST(test_prefix_end)
{
	char	*e;

	e = etcd_prefix_end("/ewsgw/c/members/");
	ck_assert_str_eq(e, "/ewsgw/c/members0");
	free(e);
	e = etcd_prefix_end("a\xff\xff");
	ck_assert_str_eq(e, "b");
	free(e);
	ck_assert_ptr_null(etcd_prefix_end("\xff"));
	ck_assert_ptr_null(etcd_prefix_end(""));
}
END_TEST

START_TEST(test_requests)
{
	struct buf	 b = BUF_INIT;
	struct etcd_cmp	 cmp = { ETCD_CMP_MOD, ETCD_CMP_LESS, "/a/", "/a0", 8 };

	etcd_msg_range(&b, "/a/", "/a0", 0);
	ck_assert_str_eq(buf_str(&b), "{\"key\":\"L2Ev\",\"range_end\":"
	    "\"L2Ew\"}");
	buf_reset(&b);
	etcd_msg_put(&b, "k", "v", 0x7fffffffffffffffLL);
	ck_assert_str_eq(buf_str(&b), "{\"key\":\"aw==\",\"value\":\"dg==\","
	    "\"lease\":\"9223372036854775807\"}");
	buf_reset(&b);
	etcd_msg_txn_put(&b, &cmp, "/a/n", "{}", 5, "/a/", "/a0");
	ck_assert_str_eq(buf_str(&b), "{\"compare\":[{\"target\":\"MOD\","
	    "\"result\":\"LESS\",\"key\":\"L2Ev\",\"range_end\":\"L2Ew\","
	    "\"mod_revision\":\"8\"}],\"success\":[{\"request_put\":{\"key\":"
	    "\"L2Evbg==\",\"value\":\"e30=\",\"lease\":\"5\"}}],\"failure\":"
	    "[{\"request_range\":{\"key\":\"L2Ev\",\"range_end\":\"L2Ew\"}}]}");
	buf_reset(&b);
	cmp.target = ETCD_CMP_LEASE;
	cmp.result = ETCD_CMP_EQUAL;
	cmp.range_end = NULL;
	etcd_msg_txn_put(&b, &cmp, "/a/n", "x", 0, NULL, NULL);
	ck_assert_str_eq(buf_str(&b), "{\"compare\":[{\"target\":\"LEASE\","
	    "\"result\":\"EQUAL\",\"key\":\"L2Ev\",\"lease\":\"8\"}],"
	    "\"success\":[{\"request_put\":{\"key\":\"L2Evbg==\",\"value\":"
	    "\"eA==\"}}]}");
	buf_reset(&b);
	etcd_msg_range_page(&b, "/a/", "/a0", 7, 1000, 3);
	ck_assert_str_eq(buf_str(&b), "{\"key\":\"L2Ev\",\"range_end\":"
	    "\"L2Ew\",\"revision\":\"7\",\"limit\":\"1000\","
	    "\"min_mod_revision\":\"3\"}");
	buf_reset(&b);
	etcd_msg_range_page(&b, "/a/", "/a0", 0, 0, 0);
	ck_assert_str_eq(buf_str(&b), "{\"key\":\"L2Ev\",\"range_end\":"
	    "\"L2Ew\"}");
	buf_reset(&b);
	{
		const char *const keys[] = { "/a/x", "/a/y" };
		const char *const vals[] = { "1", "2" };

		etcd_msg_txn_puts(&b, keys, vals, 2);
		ck_assert_str_eq(buf_str(&b), "{\"success\":[{\"request_put\""
		    ":{\"key\":\"L2EveA==\",\"value\":\"MQ==\"}},"
		    "{\"request_put\":{\"key\":\"L2EveQ==\",\"value\":"
		    "\"Mg==\"}}]}");
	}
	buf_reset(&b);
	etcd_msg_lease_grant(&b, 10);
	ck_assert_str_eq(buf_str(&b), "{\"TTL\":\"10\"}");
	buf_reset(&b);
	etcd_msg_lease_id(&b, 904557535444847877LL);
	ck_assert_str_eq(buf_str(&b), "{\"ID\":\"904557535444847877\"}");
	buf_reset(&b);
	etcd_msg_watch(&b, "/a/", "/a0", 12);
	ck_assert_str_eq(buf_str(&b), "{\"create_request\":{\"key\":\"L2Ev\","
	    "\"range_end\":\"L2Ew\",\"start_revision\":\"12\"}}");
	buf_free(&b);
}
END_TEST

static void
parse_ok(const char *s, struct etcd_resp *r)
{
	char	*cause = NULL;

	ck_assert_msg(etcd_resp_parse(s, strlen(s), r, &cause) == 0,
	    "%s: %s", s, cause != NULL ? cause : "?");
	ck_assert_ptr_null(cause);
}

START_TEST(test_answers)
{
	struct etcd_resp	 r;

	parse_ok("{\"header\":{\"cluster_id\":\"585049244405785851\","
	    "\"member_id\":\"10802618708238634125\",\"revision\":\"2\","
	    "\"raft_term\":\"2\"},\"kvs\":[{\"key\":\"Zm9v\","
	    "\"create_revision\":\"2\",\"mod_revision\":\"3\",\"version\":"
	    "\"1\",\"value\":\"YmFy\",\"lease\":\"7587869117402391296\"}],"
	    "\"count\":\"1\"}", &r);
	ck_assert_int_eq(r.revision, 2);
	ck_assert_uint_eq(r.nkvs, 1);
	ck_assert_str_eq(r.kvs[0].key, "foo");
	ck_assert_uint_eq(r.kvs[0].keylen, 3);
	ck_assert_str_eq(r.kvs[0].value, "bar");
	ck_assert_int_eq(r.kvs[0].create_revision, 2);
	ck_assert_int_eq(r.kvs[0].mod_revision, 3);
	ck_assert_int_eq(r.kvs[0].lease, 7587869117402391296LL);
	ck_assert(!r.error);
	ck_assert(!r.more);
	etcd_resp_free(&r);
	/* A page of a range with more keys after it. */
	parse_ok("{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":"
	    "\"Zm9v\",\"mod_revision\":\"3\",\"value\":\"YmFy\"}],"
	    "\"more\":true,\"count\":\"5\"}", &r);
	ck_assert(r.more);
	ck_assert_uint_eq(r.nkvs, 1);
	etcd_resp_free(&r);

	/* A failed txn reads the range in its failure branch. */
	parse_ok("{\"header\":{\"revision\":\"6\"},\"responses\":[{"
	    "\"response_range\":{\"header\":{\"revision\":\"6\"},\"kvs\":[{"
	    "\"key\":\"L2UvYy9tL2E=\",\"create_revision\":\"5\","
	    "\"mod_revision\":\"5\",\"version\":\"1\",\"value\":\"eA==\"},{"
	    "\"key\":\"L2UvYy9tL2I=\",\"create_revision\":\"6\","
	    "\"mod_revision\":\"6\",\"version\":\"1\",\"value\":\"eQ==\"}],"
	    "\"count\":\"2\"}}]}", &r);
	ck_assert(!r.succeeded);
	ck_assert_uint_eq(r.nkvs, 2);
	ck_assert_str_eq(r.kvs[1].key, "/e/c/m/b");
	etcd_resp_free(&r);
	parse_ok("{\"header\":{\"revision\":\"6\"},\"succeeded\":true,"
	    "\"responses\":[{\"response_put\":{\"header\":{\"revision\":"
	    "\"6\"}}}]}", &r);
	ck_assert(r.succeeded);
	ck_assert_uint_eq(r.nkvs, 0);
	etcd_resp_free(&r);

	/* Keepalive: a stream answer; a lost lease has no TTL. */
	parse_ok("{\"result\":{\"header\":{\"revision\":\"2\"},\"ID\":"
	    "\"904557535444847877\",\"TTL\":\"10\"}}", &r);
	ck_assert_int_eq(r.id, 904557535444847877LL);
	ck_assert_int_eq(r.ttl, 10);
	etcd_resp_free(&r);
	parse_ok("{\"result\":{\"header\":{\"revision\":\"2\"},\"ID\":\"1\"}}",
	    &r);
	ck_assert_int_eq(r.ttl, 0);
	etcd_resp_free(&r);

	/* Errors, unary and streamed. */
	parse_ok("{\"error\":\"etcdserver: requested lease not found\","
	    "\"message\":\"etcdserver: requested lease not found\","
	    "\"code\":5}", &r);
	ck_assert(r.error);
	ck_assert_int_eq(r.code, ETCD_CODE_NOT_FOUND);
	ck_assert_str_eq(r.message, "etcdserver: requested lease not found");
	etcd_resp_free(&r);
	parse_ok("{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":"
	    "\"etcdserver: no leader\",\"http_status\":\"Service "
	    "Unavailable\"}}", &r);
	ck_assert(r.error);
	ck_assert_int_eq(r.code, ETCD_CODE_UNAVAILABLE);
	ck_assert_str_eq(r.message, "etcdserver: no leader");
	etcd_resp_free(&r);

	/* Watch: created, a put and a delete, cancelled by compaction. */
	parse_ok("{\"result\":{\"header\":{\"revision\":\"2\"},\"created\":"
	    "true}}", &r);
	ck_assert(r.created);
	etcd_resp_free(&r);
	parse_ok("{\"result\":{\"header\":{\"revision\":\"4\"},\"events\":[{"
	    "\"kv\":{\"key\":\"Zm9v\",\"create_revision\":\"2\","
	    "\"mod_revision\":\"3\",\"version\":\"2\",\"value\":\"YmF6\"}},{"
	    "\"type\":\"DELETE\",\"kv\":{\"key\":\"Zm9v\",\"mod_revision\":"
	    "\"4\"},\"prev_kv\":{\"key\":\"Zm9v\"}}]}}", &r);
	ck_assert_uint_eq(r.nevents, 2);
	ck_assert(!r.events[0].deleted);
	ck_assert_str_eq(r.events[0].kv.value, "baz");
	ck_assert(r.events[1].deleted);
	ck_assert_int_eq(r.events[1].kv.mod_revision, 4);
	ck_assert_str_eq(r.events[1].kv.value, "");
	etcd_resp_free(&r);
	parse_ok("{\"result\":{\"header\":{\"raft_term\":\"2\"},\"canceled\":"
	    "true,\"compact_revision\":\"3\"}}", &r);
	ck_assert(r.canceled);
	ck_assert_int_eq(r.compact_revision, 3);
	etcd_resp_free(&r);
	/* Numbers as JSON numbers are fine too. */
	parse_ok("{\"header\":{\"revision\":17}}", &r);
	ck_assert_int_eq(r.revision, 17);
	etcd_resp_free(&r);
}
END_TEST

START_TEST(test_bad_answers)
{
	static const char *const bad[] = {
		"", "[]", "\"x\"", "{\"result\":3}",
		"{\"header\":{\"revision\":\"1x\"}}",
		"{\"header\":{\"revision\":\"-\"}}",
		"{\"header\":{\"revision\":\"99999999999999999999\"}}",
		"{\"header\":{\"revision\":1.5}}",
		"{\"header\":[]}",
		"{\"kvs\":{}}",
		"{\"kvs\":[{\"value\":\"YmFy\"}]}",
		"{\"kvs\":[{\"key\":\"Zm9\"}]}",
		"{\"kvs\":[{\"key\":7}]}",
		"{\"kvs\":[{\"key\":\"Zm9v\",\"lease\":\"x\"}]}",
		"{\"result\":{\"events\":[{\"type\":\"PATCH\",\"kv\":{\"key\":"
		    "\"Zm9v\"}}]}}",
		"{\"result\":{\"events\":[{\"type\":\"PUT\"}]}}",
		"{\"responses\":[{\"response_range\":[]}]}",
		"{\"responses\":[3]}",
		"{\"error\":\"x\",\"code\":\"abc\"}",
		"{\"error\":\"x\",\"code\":1000}",
		"{\"kvs\":[{\"key\":\"Zm9v\"}]",
	};
	struct etcd_resp	 r;
	char			*cause;
	size_t			 i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cause = NULL;
		ck_assert_msg(etcd_resp_parse(bad[i], strlen(bad[i]), &r,
		    &cause) == -1, "accepted %s", bad[i]);
		ck_assert_ptr_nonnull(cause);
		free(cause);
		etcd_resp_free(&r);
	}
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("etcd_msg");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_b64);
	tcase_add_test(tc, test_prefix_end);
	tcase_add_test(tc, test_requests);
	tcase_add_test(tc, test_answers);
	tcase_add_test(tc, test_bad_answers);
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
