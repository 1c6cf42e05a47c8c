/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the GetStreamingEvents decoder.  A recorded-style session
 * must decode to the same events whatever the chunk boundaries.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "base/buf.h"
#include "proto_test.h"
#include "ews/ews_parse.h"
#include "ews/stream.h"
#include "base/xmalloc.h"

/* What stream-session.xml must decode to. */
static const char session_log[] =
    "N SUB-1 prev=- more=0\n"
    "  CreatedEvent wm=- ts=1795946401 item=ITEM-1 parent=CAL-1 old=- "
    "oldparent=-\n"
    "  ModifiedEvent wm=- ts=1795946402 folder=CAL-1 parent=ROOT-1 old=- "
    "oldparent=-\n"
    "N SUB-2 prev=- more=0\n"
    "  FreeBusyChangedEvent wm=- ts=1795946403 item=ITEM-2 parent=CAL-2 "
    "old=- oldparent=-\n"
    "C OK\n"
    "N SUB-3 prev=- more=0\n"
    "  DeletedEvent wm=- ts=1795946700 item=id>with/\"slash\"> "
    "parent=CAL-3 old=- oldparent=-\n"
    "  MovedEvent wm=- ts=1795946701 item=ITEM-4 parent=TRASH "
    "old=ITEM-4-OLD oldparent=CAL-3\n"
    "E Error ErrorServerBusy backoff=30000 msg=The server cannot service "
    "this request right now. Try again later.\n"
    "X Error ErrorInvalidSubscription backoff=0 msg=Subscription is "
    "invalid. ids=SUB-1,SUB-2\n"
    "C Closed\n";

/*
 * What stream-realserver.xml must decode to: a server with its own
 * prefixes, an XML declaration on the first chunk only, a notification for
 * every subscription in every envelope (StatusEvents without watermarks),
 * the status envelope carrying notifications too, nine fractional digits,
 * and ConnectionStatus Closed twice before the body ends.
 */
static const char realserver_log[] =
    "N SUB-A prev=- more=0\n"
    "  StatusEvent wm=- ts=0 item=- parent=- old=- oldparent=-\n"
    "N SUB-B prev=- more=0\n"
    "  CreatedEvent wm=- ts=1795946401 item=ITEM-B1 parent=CAL-B old=- "
    "oldparent=-\n"
    "N SUB-C prev=- more=0\n"
    "  StatusEvent wm=- ts=0 item=- parent=- old=- oldparent=-\n"
    "N SUB-A prev=- more=0\n"
    "  StatusEvent wm=- ts=0 item=- parent=- old=- oldparent=-\n"
    "N SUB-B prev=- more=0\n"
    "  StatusEvent wm=- ts=0 item=- parent=- old=- oldparent=-\n"
    "N SUB-C prev=- more=0\n"
    "  StatusEvent wm=- ts=0 item=- parent=- old=- oldparent=-\n"
    "C OK\n"
    "N SUB-A prev=- more=0\n"
    "  ModifiedEvent wm=- ts=1795946445 folder=CAL-A parent=ROOT-A old=- "
    "oldparent=-\n"
    "  DeletedEvent wm=- ts=1795946445 item=ITEM-A1 parent=CAL-A old=- "
    "oldparent=-\n"
    "N SUB-B prev=- more=0\n"
    "  StatusEvent wm=- ts=0 item=- parent=- old=- oldparent=-\n"
    "N SUB-C prev=- more=0\n"
    "  StatusEvent wm=- ts=0 item=- parent=- old=- oldparent=-\n"
    "N SUB-A prev=- more=0\n"
    "  StatusEvent wm=- ts=0 item=- parent=- old=- oldparent=-\n"
    "N SUB-B prev=- more=0\n"
    "  StatusEvent wm=- ts=0 item=- parent=- old=- oldparent=-\n"
    "N SUB-C prev=- more=0\n"
    "  StatusEvent wm=- ts=0 item=- parent=- old=- oldparent=-\n"
    "C Closed\n"
    "C Closed\n";

struct rec {
	struct buf	 log;
	unsigned	 heartbeats;
};

static void
on_notification(void *arg, const struct ews_notification *n)
{
	struct rec	*r = arg;

	pt_fmt_notification(&r->log, n);
}

static void
on_connection(void *arg, enum ews_conn_status cs)
{
	struct rec	*r = arg;

	buf_printf(&r->log, "C %s\n", cs == EWS_CONN_OK ? "OK" :
	    cs == EWS_CONN_CLOSED ? "Closed" : "?");
	if (cs == EWS_CONN_OK)
		r->heartbeats++;
}

static void
on_sub_error(void *arg, const struct ews_status *st, char *const *ids,
    size_t n)
{
	struct rec	*r = arg;
	size_t		 i;

	buf_puts(&r->log, "X ");
	pt_fmt_status(&r->log, st);
	buf_puts(&r->log, " ids=");
	for (i = 0; i < n; i++)
		buf_printf(&r->log, "%s%s", i > 0 ? "," : "", ids[i]);
	buf_putc(&r->log, '\n');
}

static void
on_error(void *arg, const struct ews_status *st)
{
	struct rec	*r = arg;

	buf_puts(&r->log, "E ");
	pt_fmt_status(&r->log, st);
	buf_putc(&r->log, '\n');
}

static const struct stream_cb cbs = {
	on_notification, on_connection, on_sub_error, on_error
};

START_TEST(test_whole)
{
	struct rec	 r = { BUF_INIT, 0 };
	struct stream	*s;
	char		*doc;
	size_t		 len;

	doc = pt_fixture("stream-session.xml", &len);
	s = stream_new(&cbs, &r, 0);
	ck_assert_int_eq(stream_feed(s, doc, len), 0);
	ck_assert_int_eq(stream_end(s), 0);
	ck_assert_str_eq(buf_str(&r.log), session_log);
	ck_assert_uint_eq(stream_count(s), 5);
	ck_assert_ptr_null(stream_error(s));
	/* Reusable for the next connection. */
	stream_reset(s);
	buf_reset(&r.log);
	ck_assert_int_eq(stream_feed(s, doc, len), 0);
	ck_assert_str_eq(buf_str(&r.log), session_log);
	stream_free(s);
	buf_free(&r.log);
	free(doc);
}
END_TEST

/*
 * Decode a fixture split at every offset and byte by byte: each way must
 * give want, with the given number of envelopes.
 */
static void
decode_every_way(const char *name, const char *want, uint64_t envelopes)
{
	struct rec	 r = { BUF_INIT, 0 };
	struct stream	*s;
	char		*doc;
	size_t		 len, k;

	doc = pt_fixture(name, &len);
	s = stream_new(&cbs, &r, 0);
	for (k = 0; k <= len; k++) {
		stream_reset(s);
		buf_reset(&r.log);
		ck_assert_int_eq(stream_feed(s, doc, k), 0);
		ck_assert_int_eq(stream_feed(s, doc + k, len - k), 0);
		ck_assert_int_eq(stream_end(s), 0);
		ck_assert_msg(strcmp(buf_str(&r.log), want) == 0,
		    "%s split at %zu:\n%s", name, k, buf_str(&r.log));
		ck_assert_uint_eq(stream_count(s), envelopes);
	}
	stream_reset(s);
	buf_reset(&r.log);
	for (k = 0; k < len; k++)
		ck_assert_int_eq(stream_feed(s, doc + k, 1), 0);
	ck_assert_int_eq(stream_end(s), 0);
	ck_assert_str_eq(buf_str(&r.log), want);
	stream_free(s);
	buf_free(&r.log);
	free(doc);
}

START_TEST(test_every_split)
{
	decode_every_way("stream-session.xml", session_log, 5);
}
END_TEST

START_TEST(test_bytewise)
{
	struct rec	 r = { BUF_INIT, 0 };
	struct stream	*s;
	char		*doc;
	size_t		 len, k, n;
	uint32_t	 seed = 12345;

	/* Irregular chunks, including empty ones. */
	doc = pt_fixture("stream-session.xml", &len);
	s = stream_new(&cbs, &r, 0);
	for (k = 0; k < len; k += n) {
		seed = seed * 1103515245 + 12345;
		n = (seed >> 16) % 97;
		if (n > len - k)
			n = len - k;
		ck_assert_int_eq(stream_feed(s, doc + k, n), 0);
	}
	ck_assert_str_eq(buf_str(&r.log), session_log);
	stream_free(s);
	buf_free(&r.log);
	free(doc);
}
END_TEST

START_TEST(test_real_server)
{
	decode_every_way("stream-realserver.xml", realserver_log, 5);
}
END_TEST

START_TEST(test_cap)
{
	struct rec	 r = { BUF_INIT, 0 };
	struct stream	*s;
	struct buf	 big = BUF_INIT;
	char		*doc, *hb;
	size_t		 len, hblen, i;

	doc = pt_fixture("stream-session.xml", &len);
	/* The first envelope is ~1.4 KiB. */
	s = stream_new(&cbs, &r, 1024);
	ck_assert_int_eq(stream_feed(s, doc, len), -1);
	ck_assert_ptr_nonnull(strstr(stream_error(s), "larger than 1024"));
	ck_assert_str_eq(buf_str(&r.log), "");
	ck_assert_uint_eq(stream_buffered(s), 0);
	/* Broken until reset. */
	ck_assert_int_eq(stream_feed(s, "\n", 1), -1);
	ck_assert_int_eq(stream_end(s), -1);
	stream_free(s);

	/* The default cap over many small chunks: memory stays bounded. */
	hb = pt_fixture("stream-heartbeat.xml", &hblen);
	buf_append(&big, hb, hblen);
	i = strstr(hb, "</ResponseCode>") - hb;
	buf_reset(&big);
	buf_append(&big, hb, i);
	buf_puts(&big, "</ResponseCode><Pad>");
	while (big.len < STREAM_MAX_ENVELOPE + 100)
		buf_puts(&big, "0123456789abcdef");
	buf_puts(&big, "</Pad>");
	buf_puts(&big, hb + i + strlen("</ResponseCode>"));
	s = stream_new(&cbs, &r, 0);
	ck_assert_int_eq(stream_feed(s, hb, hblen), 0);
	for (i = 0; i < big.len; i += 4096) {
		if (stream_feed(s, big.data + i, big.len - i < 4096 ?
		    big.len - i : 4096) == -1)
			break;
		ck_assert_uint_le(stream_buffered(s),
		    2 * STREAM_MAX_ENVELOPE + 2);
	}
	ck_assert_uint_lt(i, big.len);
	ck_assert_ptr_nonnull(strstr(stream_error(s), "larger than"));
	ck_assert_uint_eq(r.heartbeats, 1);
	stream_free(s);

	/* Just under the cap is fine, and the buffer is given back. */
	buf_reset(&big);
	i = strstr(hb, "</ResponseCode>") - hb;
	buf_append(&big, hb, i);
	buf_puts(&big, "</ResponseCode><Pad>");
	while (big.len < 200 * 1024)
		buf_puts(&big, "0123456789abcdef");
	buf_puts(&big, "</Pad>");
	buf_puts(&big, hb + i + strlen("</ResponseCode>"));
	s = stream_new(&cbs, &r, 0);
	ck_assert_int_eq(stream_feed(s, big.data, big.len / 2), 0);
	ck_assert_uint_ge(stream_buffered(s), big.len / 2);
	ck_assert_int_eq(stream_feed(s, big.data + big.len / 2,
	    big.len - big.len / 2), 0);
	ck_assert_uint_eq(r.heartbeats, 2);
	ck_assert_uint_eq(stream_buffered(s), 0);
	stream_free(s);
	buf_free(&big);
	buf_free(&r.log);
	free(hb);
	free(doc);
}
END_TEST

/* Feed a then b; return the result of the second feed. */
static int
feed2(struct rec *r, const char *a, const char *b, char **err)
{
	struct stream	*s;
	int		 rc;

	s = stream_new(&cbs, r, 0);
	rc = stream_feed(s, a, strlen(a));
	ck_assert_int_eq(rc, 0);
	rc = stream_feed(s, b, strlen(b));
	*err = stream_error(s) != NULL ? xstrdup(stream_error(s)) : NULL;
	stream_free(s);
	return (rc);
}

START_TEST(test_between)
{
	static const char *const bad[] = {
		"garbage",
		"\xef\xbb\xbf",			/* BOM, but not at the start */
		"<!DOCTYPE x [<!ENTITY a \"b\">]>",
		"<![CDATA[x]]>",
		"</s:Envelope>",
		"< Envelope/>",
		"<!-x->",
	};
	static const char *const good[] = {
		"  \r\n\t",
		"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n",
		"<!-- keep-alive -->",
		"",
	};
	struct rec	 r = { BUF_INIT, 0 };
	char		*hb, *err;
	size_t		 hblen, i;

	hb = pt_fixture("stream-heartbeat.xml", &hblen);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r.heartbeats = 0;
		ck_assert_msg(feed2(&r, hb, bad[i], &err) == -1, "accepted %s",
		    bad[i]);
		ck_assert_uint_eq(r.heartbeats, 1);
		ck_assert_ptr_nonnull(err);
		free(err);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		r.heartbeats = 0;
		ck_assert_msg(feed2(&r, good[i], hb, &err) == 0, "refused %s",
		    good[i]);
		ck_assert_uint_eq(r.heartbeats, 1);
		ck_assert_ptr_null(err);
	}
	/* A BOM may open the body. */
	r.heartbeats = 0;
	ck_assert_int_eq(feed2(&r, "\xef\xbb\xbf", hb, &err), 0);
	ck_assert_uint_eq(r.heartbeats, 1);
	/* Framed but not a SOAP envelope: broken. */
	ck_assert_int_eq(feed2(&r, "", "<x:Envelope xmlns:x=\"urn:no\"/>",
	    &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "envelope 1"));
	free(err);
	ck_assert_int_eq(feed2(&r, "", "<a><b></a></b>", &err), -1);
	free(err);
	buf_free(&r.log);
	free(hb);
}
END_TEST

START_TEST(test_end_and_fault)
{
	struct rec	 r = { BUF_INIT, 0 };
	struct stream	*s;
	char		*hb, *fault;
	size_t		 hblen, flen;

	hb = pt_fixture("stream-heartbeat.xml", &hblen);
	s = stream_new(&cbs, &r, 0);
	ck_assert_int_eq(stream_feed(s, hb, hblen - 20), 0);
	ck_assert_int_eq(stream_end(s), -1);
	ck_assert_ptr_nonnull(strstr(stream_error(s), "inside an envelope"));
	stream_free(s);

	/* A SOAP Fault on the stream is a connection error. */
	fault = pt_fixture("fault-server-busy.xml", &flen);
	s = stream_new(&cbs, &r, 0);
	ck_assert_int_eq(stream_feed(s, fault, flen), 0);
	ck_assert_int_eq(stream_end(s), 0);
	ck_assert_str_eq(buf_str(&r.log), "E Error ErrorServerBusy "
	    "backoff=297749 msg=The server cannot service this request right "
	    "now. Try again later.\n");
	stream_free(s);

	/* Empty feeds mid-envelope change nothing. */
	s = stream_new(&cbs, &r, 0);
	r.heartbeats = 0;
	ck_assert_int_eq(stream_feed(s, hb, 10), 0);
	ck_assert_int_eq(stream_feed(s, NULL, 0), 0);
	ck_assert_int_eq(stream_feed(s, hb + 10, hblen - 10), 0);
	ck_assert_uint_eq(r.heartbeats, 1);
	stream_free(s);

	/* No callbacks at all is legal. */
	s = stream_new(NULL, NULL, 0);
	ck_assert_int_eq(stream_feed(s, hb, hblen), 0);
	ck_assert_uint_eq(stream_count(s), 1);
	stream_free(s);
	buf_free(&r.log);
	free(fault);
	free(hb);
}
END_TEST

/* Hours of heartbeats: the decoder's memory does not grow. */
START_TEST(test_constant_memory)
{
	struct rec	 r = { BUF_INIT, 0 };
	struct stream	*s;
	char		*hb;
	size_t		 hblen, i, cut, high = 0;

	hb = pt_fixture("stream-heartbeat.xml", &hblen);
	s = stream_new(&cbs, &r, 0);
	for (i = 0; i < 10000; i++) {
		cut = (i * 7919) % hblen;
		ck_assert_int_eq(stream_feed(s, hb, cut), 0);
		ck_assert_int_eq(stream_feed(s, hb + cut, hblen - cut), 0);
		if (stream_buffered(s) > high)
			high = stream_buffered(s);
		if (i % 100 == 99)
			buf_free(&r.log);
	}
	ck_assert_uint_eq(stream_count(s), 10000);
	ck_assert_uint_eq(r.heartbeats, 10000);
	ck_assert_uint_le(high, 4 * hblen);
	stream_free(s);
	buf_free(&r.log);
	free(hb);
}
END_TEST

static Suite *
stream_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("stream");
	tc = tcase_create("framing");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_whole);
	tcase_add_test(tc, test_every_split);
	tcase_add_test(tc, test_bytewise);
	tcase_add_test(tc, test_real_server);
	tcase_add_test(tc, test_cap);
	tcase_add_test(tc, test_between);
	tcase_add_test(tc, test_end_and_fault);
	tcase_add_test(tc, test_constant_memory);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(stream_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	ews_parse_cleanup();
	xmlCleanupParser();
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
