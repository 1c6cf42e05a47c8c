/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: buffers, JSON writer and parser, time helpers, address
 * allowlists, rate-limited log lines.
 */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/cidr.h"
#include "base/log.h"
#include "base/secretfile.h"
#include "base/json.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

START_TEST(test_buf)
{
	struct buf	 b = BUF_INIT;
	char		*s;

	ck_assert_str_eq(buf_str(&b), "");
	buf_puts(&b, "hello");
	buf_printf(&b, " %d", 42);
	ck_assert_str_eq(buf_str(&b), "hello 42");
	buf_consume(&b, 6);
	ck_assert_str_eq(buf_str(&b), "42");
	ck_assert_uint_eq(b.len, 2);
	for (int i = 0; i < 1000; i++)
		buf_putc(&b, 'x');
	ck_assert_uint_eq(b.len, 1002);
	s = buf_steal(&b);
	ck_assert_uint_eq(strlen(s), 1002);
	ck_assert_ptr_null(b.data);
	free(s);
}
END_TEST

/*
 * This program links with -Wl,--wrap=free: every free() in it and in the
 * library it links comes here first, so a test can look at the bytes of
 * a block it watches just before the block is released.
 */
void	 __real_free(void *);
void	 __wrap_free(void *);

static const char	*watch_block;	/* the block to look at */
static size_t		 watch_len;	/* its bytes to look at */
static int		 watch_freed;	/* times it was released */
static int		 watch_dirty;	/* ... with a byte not zero */

void
__wrap_free(void *p)
{
	size_t	 i;

	if (p != NULL && p == watch_block) {
		watch_freed++;
		for (i = 0; i < watch_len; i++)
			if (watch_block[i] != '\0') {
				watch_dirty++;
				break;
			}
		watch_block = NULL;
	}
	__real_free(p);
}

static void
watch(const void *p, size_t len)
{
	watch_block = p;
	watch_len = len;
	watch_freed = watch_dirty = 0;
}

/*
 * A secret buffer grows by copy-and-wipe: the contents stay whole, and
 * neither the block growth leaves behind nor the last one keeps a byte.
 */
START_TEST(test_buf_secret)
{
	struct buf	 b = BUF_INIT_SECRET, c = BUF_INIT;
	char		*s;
	size_t		 cap;
	int		 i, grown = 0;

	for (i = 0; i < 1000; i++) {
		/* Watch the block the next append may move away from. */
		watch(b.data, b.len);
		cap = b.cap;
		buf_printf(&b, "%03d", i);
		buf_printf(&c, "%03d", i);
		if (b.cap != cap && cap != 0) {
			grown++;
			ck_assert_int_eq(watch_freed, 1);
			ck_assert_int_eq(watch_dirty, 0);
		} else
			ck_assert_int_eq(watch_freed, 0);
	}
	ck_assert_int_ge(grown, 5);
	ck_assert(b.secret);
	ck_assert_uint_eq(b.len, 3000);
	ck_assert_str_eq(buf_str(&b), buf_str(&c));

	/* The watch sees what an ordinary buffer leaves behind. */
	watch(c.data, c.len);
	buf_free(&c);
	ck_assert_int_eq(watch_freed, 1);
	ck_assert_int_eq(watch_dirty, 1);

	/* Freeing a secret buffer wipes it, and resets it. */
	watch(b.data, b.len);
	buf_free(&b);
	ck_assert_int_eq(watch_freed, 1);
	ck_assert_int_eq(watch_dirty, 0);
	ck_assert(!b.secret);
	ck_assert_ptr_null(b.data);

	/* A stolen secret goes with xfree_secret, wiped. */
	buf_set_secret(&b);
	buf_puts(&b, "again");
	buf_reset(&b);
	ck_assert(b.secret);
	buf_puts(&b, "again");
	s = buf_steal(&b);
	ck_assert_str_eq(s, "again");
	ck_assert(!b.secret);
	watch(s, strlen(s));
	xfree_secret(s);
	ck_assert_int_eq(watch_freed, 1);
	ck_assert_int_eq(watch_dirty, 0);

	/* buf_free_secret wipes a buffer not marked secret. */
	buf_puts(&c, "password");
	watch(c.data, c.len);
	buf_free_secret(&c);
	ck_assert_int_eq(watch_freed, 1);
	ck_assert_int_eq(watch_dirty, 0);
	watch(NULL, 0);
}
END_TEST

START_TEST(test_json_writer)
{
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;

	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_str(&w, "a", "x\"y\\z\n\x01");
	json_kv_int(&w, "n", -5);
	json_key(&w, "l");
	json_arr_begin(&w);
	json_bool(&w, true);
	json_null(&w);
	json_str(&w, "caf\xc3\xa9");
	json_str(&w, "bad\xff");
	json_arr_end(&w);
	json_kv_str(&w, "nil", NULL);
	json_obj_end(&w);
	ck_assert_str_eq(buf_str(&b), "{\"a\":\"x\\\"y\\\\z\\n\\u0001\","
	    "\"n\":-5,\"l\":[true,null,\"caf\xc3\xa9\",\"bad\\ufffd\"],"
	    "\"nil\":null}");
	buf_free(&b);
}
END_TEST

START_TEST(test_json_parse)
{
	const char		*doc = " {\"ok\": true, \"n\": 12.5, \"s\": "
	    "\"a\\u00e9\\n\", \"arr\": [1, {\"k\": null}], \"e\": {}} ";
	struct json_value	*v;
	const struct json_value	*arr;
	char			*cause = NULL;

	v = json_parse(doc, strlen(doc), &cause);
	ck_assert_ptr_nonnull(v);
	ck_assert(json_get_bool(v, "ok", false));
	ck_assert(json_get_num(v, "n", 0) == 12.5);
	ck_assert_str_eq(json_get_str(v, "s", ""), "a\xc3\xa9\n");
	arr = json_get(v, "arr");
	ck_assert_ptr_nonnull(arr);
	ck_assert_int_eq(arr->type, JSON_ARRAY);
	ck_assert_int_eq(arr->child->next->type, JSON_OBJECT);
	ck_assert_ptr_null(json_get(v, "missing"));
	json_free(v);
}
END_TEST

START_TEST(test_json_parse_errors)
{
	static const char *bad[] = { "", "{", "[1,]", "{\"a\" 1}", "\"abc",
	    "tru", "{} x", "[\"\\q\"]", "{\"a\":1,}", "-", "\"\x01\"" };
	char	 deep[200];
	size_t	 i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *cause = NULL;
		struct json_value *v = json_parse(bad[i], strlen(bad[i]),
		    &cause);
		ck_assert_msg(v == NULL, "accepted: %s", bad[i]);
		ck_assert_ptr_nonnull(cause);
		free(cause);
	}
	memset(deep, '[', sizeof deep);
	ck_assert_ptr_null(json_parse(deep, sizeof deep, NULL));
}
END_TEST

START_TEST(test_iso8601)
{
	int64_t	 t;
	char	 out[TIME_ISO8601_LEN];

	ck_assert_int_eq(time_parse_iso8601("1970-01-01T00:00:00Z", 20, &t), 0);
	ck_assert_int_eq(t, 0);
	ck_assert_int_eq(time_parse_iso8601("2026-11-29T10:40:02Z", 20, &t), 0);
	ck_assert_int_eq(t, 1795948802);
	time_format_iso8601(t, out);
	ck_assert_str_eq(out, "2026-11-29T10:40:02Z");
	/* Offsets and fractions; no zone means UTC. */
	ck_assert_int_eq(time_parse_iso8601("2026-11-29T11:40:02.123+01:00",
	    29, &t), 0);
	ck_assert_int_eq(t, 1795948802);
	ck_assert_int_eq(time_parse_iso8601(" 2026-11-29T10:40:02 ", 21,
	    &t), 0);
	ck_assert_int_eq(t, 1795948802);
	/* Leap day, end of day. */
	ck_assert_int_eq(time_parse_iso8601("2024-02-29T24:00:00Z", 20, &t), 0);
	time_format_iso8601(t, out);
	ck_assert_str_eq(out, "2024-03-01T00:00:00Z");
	ck_assert_int_eq(time_parse_iso8601("2026-02-30T00:00:00Z", 20,
	    &t), -1);
	ck_assert_int_eq(time_parse_iso8601("2026-11-29 10:40", 16, &t), -1);
	ck_assert_int_eq(time_parse_iso8601("2026-11-29T10:40:02X", 20,
	    &t), -1);
	ck_assert_int_eq(time_parse_iso8601("2026-11-29T10:40:02+1:00", 24, &t),
	    -1);
}
END_TEST

START_TEST(test_duration)
{
	int64_t	 ms;

	ck_assert_int_eq(time_parse_duration("30s", 1000, &ms), 0);
	ck_assert_int_eq(ms, 30000);
	ck_assert_int_eq(time_parse_duration("5m", 1000, &ms), 0);
	ck_assert_int_eq(ms, 300000);
	ck_assert_int_eq(time_parse_duration("24h", 1000, &ms), 0);
	ck_assert_int_eq(ms, 86400000);
	ck_assert_int_eq(time_parse_duration("250ms", 1000, &ms), 0);
	ck_assert_int_eq(ms, 250);
	ck_assert_int_eq(time_parse_duration("7", 60000, &ms), 0);
	ck_assert_int_eq(ms, 420000);
	ck_assert_int_eq(time_parse_duration("5x", 1000, &ms), -1);
	ck_assert_int_eq(time_parse_duration("-5s", 1000, &ms), -1);
	ck_assert_int_eq(time_parse_duration("", 1000, &ms), -1);
	ck_assert_int_eq(time_parse_duration("99999999999999999999d", 1000,
	    &ms), -1);
}
END_TEST

START_TEST(test_json_time)
{
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;

	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_time(&w, "t", 1764412802);
	json_kv_time(&w, "none", 0);
	json_kv_time(&w, "never", INT64_MAX);
	json_obj_end(&w);
	ck_assert_str_eq(buf_str(&b), "{\"t\":\"2025-11-29T10:40:02Z\","
	    "\"none\":null,\"never\":null}");
	buf_free(&b);
}
END_TEST

START_TEST(test_ms_tv)
{
	struct timeval	 tv;

	ck_assert_ptr_eq(time_ms_tv(&tv, 12345), &tv);
	ck_assert_int_eq(tv.tv_sec, 12);
	ck_assert_int_eq(tv.tv_usec, 345000);
	time_ms_tv(&tv, -5);
	ck_assert_int_eq(tv.tv_sec, 0);
	ck_assert_int_eq(tv.tv_usec, 0);
}
END_TEST

static bool
in_list(const struct cidr_list *l, const char *addr)
{
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;

	memset(&sin, 0, sizeof sin);
	memset(&sin6, 0, sizeof sin6);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		return (cidr_list_match(l, (struct sockaddr *)&sin));
	}
	ck_assert_int_eq(inet_pton(AF_INET6, addr, &sin6.sin6_addr), 1);
	sin6.sin6_family = AF_INET6;
	return (cidr_list_match(l, (struct sockaddr *)&sin6));
}

START_TEST(test_cidr)
{
	struct cidr_list	 l = CIDR_LIST_INIT;
	char			*cause = NULL;

	ck_assert_int_eq(cidr_list_parse("192.0.2.0/24, 10.1.2.3 "
	    "2001:db8::/33\t0.0.0.0/0", &l, &cause), 0);
	ck_assert_uint_eq(l.n, 4);
	ck_assert(in_list(&l, "192.0.2.200"));
	ck_assert(in_list(&l, "2001:db8:7fff::1"));
	ck_assert(!in_list(&l, "2001:db8:8000::1"));
	ck_assert(in_list(&l, "::ffff:10.1.2.3"));	/* v4-mapped */
	cidr_list_free(&l);
	ck_assert_int_eq(cidr_list_parse("192.0.2.0/24 10.1.2.3", &l, NULL),
	    0);
	ck_assert(in_list(&l, "10.1.2.3"));
	ck_assert(!in_list(&l, "10.1.2.4"));
	ck_assert(!in_list(&l, "192.0.3.1"));
	ck_assert(!in_list(&l, "::1"));
	ck_assert(in_list(&l, "::ffff:192.0.2.9"));
	cidr_list_free(&l);
	ck_assert_int_eq(cidr_list_parse("11.0.0.0/7", &l, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "11.0.0.0/7"));
	ck_assert_uint_eq(l.n, 0);
	free(cause);
	ck_assert_int_eq(cidr_list_parse("1.2.3.4/", &l, &cause), -1);
	free(cause);
	ck_assert_int_eq(cidr_list_parse("/8", &l, &cause), -1);
	free(cause);
	ck_assert_int_eq(cidr_list_parse("", &l, NULL), 0);
	ck_assert_uint_eq(l.n, 0);
}
END_TEST

START_TEST(test_log_rate)
{
	struct log_rate	 rl = LOG_RATE_INIT("t: ", 1000, 3);
	int		 i, logged = 0;

	log_init("check_foundation", LOG_TARGET_STDERR, LOG_CRIT);
	for (i = 0; i < 10; i++)
		logged += log_rate_emit(&rl, 5000, LOG_WARNING, "line %d", i);
	ck_assert_int_eq(logged, 3);
	ck_assert_uint_eq(rl.dropped, 7);
	/* Nothing to say before the interval is over ... */
	ck_assert_int_eq(log_rate_flush(&rl, 5400, LOG_WARNING), 600);
	ck_assert_uint_eq(rl.dropped, 7);
	/* ... then the summary, and a fresh allowance. */
	ck_assert_int_eq(log_rate_flush(&rl, 6000, LOG_WARNING), -1);
	ck_assert_uint_eq(rl.dropped, 0);
	ck_assert_uint_eq(rl.dropped_total, 7);
	ck_assert(log_rate_emit(&rl, 6001, LOG_WARNING, "again"));
}
END_TEST

/* Every secret file is judged alike: mode first, then owner. */
START_TEST(test_secret_file_judge)
{
	struct stat	 sb;
	char		 why[256];

	memset(&sb, 0, sizeof sb);
	sb.st_mode = S_IFREG | 0600;
	sb.st_uid = 1000;
	ck_assert_int_eq(secret_file_judge(&sb, false, 1000, why, sizeof why),
	    SECRET_OK);
	sb.st_uid = 0;
	ck_assert_int_eq(secret_file_judge(&sb, false, 1000, why, sizeof why),
	    SECRET_OK);

	sb.st_mode = S_IFREG | 0644;
	ck_assert_int_eq(secret_file_judge(&sb, true, 1000, why, sizeof why),
	    SECRET_REFUSE);
	ck_assert_str_eq(why, "is readable by everyone (mode 0644): chmod "
	    "0600 it, or load it as a systemd credential");

	sb.st_mode = S_IFREG | 0640;
	ck_assert_int_eq(secret_file_judge(&sb, false, 1000, why, sizeof why),
	    SECRET_WARN);
	ck_assert_str_eq(why, "is readable by its group (mode 0640): chmod "
	    "0600 it, or load it as a systemd credential");
	/* systemd keeps its credentials directory private. */
	ck_assert_int_eq(secret_file_judge(&sb, true, 1000, why, sizeof why),
	    SECRET_OK);

	/* Another user's file: that user reads or replaces the secret. */
	sb.st_mode = S_IFREG | 0600;
	sb.st_uid = 1001;
	ck_assert_int_eq(secret_file_judge(&sb, true, 1000, why, sizeof why),
	    SECRET_REFUSE);
	ck_assert_str_eq(why, "belongs to uid 1001, neither root nor the "
	    "daemon's user (uid 1000), who can read or replace it: chown it "
	    "to one of them");
	/* Root (a shell's --check-config) cannot tell the daemon's user. */
	ck_assert_int_eq(secret_file_judge(&sb, true, 0, why, sizeof why),
	    SECRET_OK);

	setenv("CREDENTIALS_DIRECTORY", "/run/credentials/ewsgw.service", 1);
	ck_assert(secret_file_is_credential(
	    "/run/credentials/ewsgw.service/pw"));
	ck_assert(!secret_file_is_credential(
	    "/run/credentials/ewsgw.service2/pw"));
	ck_assert(!secret_file_is_credential("/etc/ewsgw/pw"));
	unsetenv("CREDENTIALS_DIRECTORY");
	ck_assert(!secret_file_is_credential(
	    "/run/credentials/ewsgw.service/pw"));
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("foundation");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_buf);
	tcase_add_test(tc, test_buf_secret);
	tcase_add_test(tc, test_json_writer);
	tcase_add_test(tc, test_json_parse);
	tcase_add_test(tc, test_json_parse_errors);
	tcase_add_test(tc, test_iso8601);
	tcase_add_test(tc, test_duration);
	tcase_add_test(tc, test_json_time);
	tcase_add_test(tc, test_ms_tv);
	tcase_add_test(tc, test_cidr);
	tcase_add_test(tc, test_log_rate);
	tcase_add_test(tc, test_secret_file_judge);
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
