/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: EWS response parsing on recorded-style fixtures (several
 * prefix styles, errors, faults) and on hostile documents.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "base/buf.h"
#include "ews/ews_parse.h"
#include "ews/soap.h"
#include "proto_test.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

static int64_t
ts(const char *s)
{
	int64_t	 t;

	ck_assert_int_eq(time_parse_iso8601(s, strlen(s), &t), 0);
	return (t);
}

START_TEST(test_subscribe)
{
	struct ews_subscribe	 s;
	char			*doc, *cause = NULL;
	size_t			 len;

	doc = pt_fixture("subscribe-streaming.xml", &len);
	ck_assert_int_eq(ews_parse_subscribe(doc, len, &s, &cause), 0);
	ck_assert_ptr_null(cause);
	ck_assert(!s.r.fault);
	ck_assert_int_eq(s.r.status.class, EWS_CLASS_SUCCESS);
	ck_assert_str_eq(s.r.status.code, "NoError");
	ck_assert_int_eq(ews_status_action(&s.r.status), EWS_ACT_OK);
	ck_assert_str_eq(s.subscription_id,
	    "JwBleGNoMDEuY29udG9zby5jb20QAAAAr2n+Sbz8Z0yDIX9pBs4p2A==");
	ck_assert_ptr_null(s.watermark);
	ck_assert(s.r.version.present);
	ck_assert_int_eq(s.r.version.major, 15);
	ck_assert_int_eq(s.r.version.minor, 1);
	ck_assert_int_eq(s.r.version.major_build, 2507);
	ck_assert_int_eq(s.r.version.minor_build, 6);
	ck_assert_str_eq(s.r.version.version, "V2017_07_11");
	ews_subscribe_free(&s);
	free(doc);

	/* Default namespaces everywhere, an unknown element, entities. */
	doc = pt_fixture("subscribe-push-default-ns.xml", &len);
	ck_assert_int_eq(ews_parse_subscribe(doc, len, &s, NULL), 0);
	ck_assert_str_eq(s.subscription_id, "PUSH-abc&123");
	ck_assert_str_eq(s.watermark, "AQAAAP8Qx9E=");
	ck_assert_int_eq(s.r.version.major, 14);
	ck_assert_str_eq(s.r.version.version, "Exchange2010_SP2");
	ews_subscribe_free(&s);
	free(doc);

	/* ResponseClass Error is a parsed response, not a parse failure. */
	doc = pt_fixture("subscribe-error.xml", &len);
	ck_assert_int_eq(ews_parse_subscribe(doc, len, &s, &cause), 0);
	ck_assert_int_eq(s.r.status.class, EWS_CLASS_ERROR);
	ck_assert_str_eq(s.r.status.code, "ErrorExceededSubscriptionCount");
	ck_assert_str_eq(s.r.status.message,
	    "You have exceeded the maximum number of subscriptions.");
	ck_assert_int_eq(s.r.status.backoff_ms, 60000);
	ck_assert_int_eq(ews_status_action(&s.r.status), EWS_ACT_THROTTLED);
	ck_assert_ptr_null(s.subscription_id);
	ck_assert_str_eq(s.r.version.version, "V2018_01_08");
	ews_subscribe_free(&s);
	free(doc);

	/* Success without the id is a broken response. */
	doc = pt_fixture("subscribe-missing-id.xml", &len);
	ck_assert_int_eq(ews_parse_subscribe(doc, len, &s, &cause), -1);
	ck_assert_ptr_nonnull(cause);
	ck_assert_ptr_nonnull(strstr(cause, "SubscriptionId"));
	free(cause);
	ews_subscribe_free(&s);
	free(doc);
}
END_TEST

START_TEST(test_faults)
{
	struct ews_subscribe	 s;
	struct ews_streaming	 st;
	struct ews_calendar	 cal;
	struct ews_response	 r;
	char			*doc;
	size_t			 len;

	/* The same fault through several operation parsers. */
	doc = pt_fixture("fault-server-busy.xml", &len);
	ck_assert_int_eq(ews_parse_subscribe(doc, len, &s, NULL), 0);
	ck_assert(s.r.fault);
	ck_assert_int_eq(s.r.status.class, EWS_CLASS_ERROR);
	ck_assert_str_eq(s.r.status.code, "ErrorServerBusy");
	ck_assert_int_eq(s.r.status.backoff_ms, 297749);
	ck_assert_str_eq(s.r.faultstring, "The server cannot service this "
	    "request right now. Try again later.");
	ck_assert_str_eq(s.r.status.message, s.r.faultstring);
	ck_assert_int_eq(ews_status_action(&s.r.status), EWS_ACT_THROTTLED);
	ck_assert_ptr_null(s.subscription_id);
	ck_assert(!s.r.version.present);
	ews_subscribe_free(&s);
	ck_assert_int_eq(ews_parse_streaming(doc, len, &st, NULL), 0);
	ck_assert(st.r.fault);
	ck_assert_int_eq(st.nmsgs, 0);
	ck_assert_int_eq(st.r.status.backoff_ms, 297749);
	ews_streaming_free(&st);
	ck_assert_int_eq(ews_parse_find_item(doc, len, &cal, NULL), 0);
	ck_assert(cal.r.fault);
	ews_calendar_free(&cal);
	free(doc);

	doc = pt_fixture("fault-impersonation.xml", &len);
	ck_assert_int_eq(ews_parse_response(doc, len, &r, NULL), 0);
	ck_assert(r.fault);
	ck_assert_str_eq(r.status.code, "ErrorImpersonateUserDenied");
	ck_assert_int_eq(r.status.backoff_ms, 0);
	ck_assert_int_eq(ews_status_action(&r.status), EWS_ACT_PARK);
	ck_assert_int_eq(r.version.major, 15);
	ck_assert_int_eq(r.version.minor, 2);
	ews_response_free(&r);
	free(doc);

	/* No detail: the faultcode's local part and the faultstring. */
	doc = pt_fixture("fault-schema.xml", &len);
	ck_assert_int_eq(ews_parse_response(doc, len, &r, NULL), 0);
	ck_assert(r.fault);
	ck_assert_str_eq(r.status.code, "Client");
	ck_assert_ptr_nonnull(strstr(r.status.message, "schema validation"));
	ck_assert_int_eq(ews_status_action(&r.status), EWS_ACT_FATAL);
	ews_response_free(&r);
	free(doc);
}
END_TEST

START_TEST(test_unsubscribe)
{
	struct ews_response	 r;
	struct ews_subscribe	 s;
	char			*doc, *cause = NULL;
	size_t			 len;

	doc = pt_fixture("unsubscribe.xml", &len);
	ck_assert_int_eq(ews_parse_unsubscribe(doc, len, &r, NULL), 0);
	ck_assert_int_eq(r.status.class, EWS_CLASS_SUCCESS);
	ck_assert_str_eq(r.status.code, "NoError");
	/* Exchange 2007: numbers but no Version attribute. */
	ck_assert(r.version.present);
	ck_assert_int_eq(r.version.major, 8);
	ck_assert_str_eq(r.version.version, "");
	ews_response_free(&r);
	ck_assert_int_eq(ews_parse_response(doc, len, &r, NULL), 0);
	ck_assert_int_eq(r.status.class, EWS_CLASS_SUCCESS);
	ews_response_free(&r);
	/* Another operation's response is refused. */
	ck_assert_int_eq(ews_parse_subscribe(doc, len, &s, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "UnsubscribeResponse"));
	free(cause);
	ews_subscribe_free(&s);
	free(doc);
}
END_TEST

START_TEST(test_get_events)
{
	struct ews_notifications n;
	struct buf		 b = BUF_INIT;
	char			*doc;
	size_t			 len;

	doc = pt_fixture("getevents.xml", &len);
	ck_assert_int_eq(ews_parse_get_events(doc, len, &n, NULL), 0);
	ck_assert_uint_eq(n.nmsgs, 1);
	ck_assert(n.msgs[0].has_notification);
	ck_assert_int_eq(n.r.status.class, EWS_CLASS_SUCCESS);
	pt_fmt_notification(&b, &n.msgs[0].notification);
	ck_assert_str_eq(buf_str(&b),
	    "N PULL-1 prev=AQAAAA1 more=1\n"
	    "  CreatedEvent wm=AQAAAA2 ts=1795946401 item=ITEM-1 parent=CAL "
	    "old=- oldparent=-\n"
	    "  ModifiedEvent wm=AQAAAA3 ts=1795946402 folder=CAL parent=ROOT "
	    "old=- oldparent=-\n"
	    "  MovedEvent wm=AQAAAA4 ts=1795946403 item=ITEM-2 parent=DELETED "
	    "old=ITEM-2-OLD oldparent=CAL\n"
	    "  FreeBusyChangedEvent wm=AQAAAA6 ts=1795946404 item=ITEM-1 "
	    "parent=CAL old=- oldparent=-\n"
	    "  StatusEvent wm=AQAAAA7 ts=0 item=- parent=- old=- "
	    "oldparent=-\n");
	ews_notifications_free(&n);
	free(doc);
	buf_free(&b);
}
END_TEST

START_TEST(test_send_notification)
{
	struct ews_notifications n;
	struct buf		 b = BUF_INIT;
	char			*doc;
	size_t			 len;

	doc = pt_fixture("send-notification.xml", &len);
	ck_assert_int_eq(ews_parse_send_notification(doc, len, &n, NULL), 0);
	ck_assert_uint_eq(n.nmsgs, 1);
	ck_assert(!n.r.version.present);
	pt_fmt_notification(&b, &n.msgs[0].notification);
	/* 11:30:00.123+01:00 is 10:30:00Z. */
	ck_assert_str_eq(buf_str(&b),
	    "N PUSH-7 prev=AQAAAB1 more=0\n"
	    "  DeletedEvent wm=AQAAAB2 ts=1795948200 item=ITEM-9 parent=CAL "
	    "old=- oldparent=-\n"
	    "  CopiedEvent wm=AQAAAB3 ts=1795948260 folder=SUB parent=CAL "
	    "old=SUB-OLD oldparent=INBOX\n");
	ews_notifications_free(&n);
	/* A GetEvents parser will not take a push body. */
	ck_assert_int_eq(ews_parse_get_events(doc, len, &n, NULL), -1);
	ews_notifications_free(&n);
	free(doc);
	buf_free(&b);
}
END_TEST

START_TEST(test_find_item)
{
	struct ews_calendar	 c;
	const struct ews_cal_item *it;
	char			*doc, *cause = NULL;
	size_t			 len;

	doc = pt_fixture("finditem-calendarview.xml", &len);
	ck_assert_int_eq(ews_parse_find_item(doc, len, &c, &cause), 0);
	ck_assert_int_eq(c.r.status.class, EWS_CLASS_SUCCESS);
	ck_assert_uint_eq(c.total_in_view, 4);
	ck_assert(c.includes_last);
	ck_assert_uint_eq(c.nitems, 4);	/* the t:Message is skipped */
	it = &c.items[0];
	ck_assert_str_eq(it->id, "AAMkAGI2-1");
	ck_assert_str_eq(it->change_key, "DwAAABYA-1");
	ck_assert_str_eq(it->subject, "Weekly sync <team> & friends");
	ck_assert_int_eq(it->start, ts("2026-11-29T09:00:00Z"));
	ck_assert_int_eq(it->end, ts("2026-11-29T09:30:00Z"));
	ck_assert_int_eq(it->fb, EWS_FB_BUSY);
	ck_assert_int_eq(it->sensitivity, EWS_SENS_NORMAL);
	ck_assert_int_eq(it->type, EWS_ITEM_OCCURRENCE);
	ck_assert(!it->all_day);
	ck_assert(!it->cancelled);
	it = &c.items[1];
	ck_assert_int_eq(it->start, ts("2026-11-29T11:00:00Z"));
	ck_assert_int_eq(it->fb, EWS_FB_OOF);
	ck_assert_int_eq(it->sensitivity, EWS_SENS_PRIVATE);
	ck_assert_int_eq(it->type, EWS_ITEM_SINGLE);
	it = &c.items[2];
	ck_assert(it->all_day);
	ck_assert_ptr_null(it->change_key);
	ck_assert_int_eq(it->fb, EWS_FB_WORKING_ELSEWHERE);
	ck_assert_int_eq(it->type, EWS_ITEM_EXCEPTION);
	ck_assert_int_eq(it->end - it->start, 86400);
	it = &c.items[3];
	ck_assert_ptr_null(it->subject);
	ck_assert_int_eq(it->fb, EWS_FB_TENTATIVE);
	ck_assert(it->cancelled);
	ews_calendar_free(&c);
	free(doc);

	/* Swapped prefixes, foreign namespaces with EWS names. */
	doc = pt_fixture("finditem-odd-prefixes.xml", &len);
	ck_assert_int_eq(ews_parse_find_item(doc, len, &c, &cause), 0);
	ck_assert_uint_eq(c.nitems, 1);
	ck_assert(!c.includes_last);
	it = &c.items[0];
	ck_assert_str_eq(it->id, "Z1");
	ck_assert_int_eq(it->start, ts("2026-11-29T08:00:00Z"));
	ck_assert_int_eq(it->fb, EWS_FB_FREE);
	ck_assert_int_eq(it->sensitivity, EWS_SENS_CONFIDENTIAL);
	ck_assert_int_eq(it->type, EWS_ITEM_RECURRING_MASTER);
	ck_assert(it->all_day);
	ews_calendar_free(&c);
	free(doc);

	doc = pt_fixture("finditem-missing-end.xml", &len);
	ck_assert_int_eq(ews_parse_find_item(doc, len, &c, &cause), -1);
	ck_assert_str_eq(cause, "CalendarItem without End");
	free(cause);
	ews_calendar_free(&c);
	free(doc);

	doc = pt_fixture("finditem-error.xml", &len);
	ck_assert_int_eq(ews_parse_find_item(doc, len, &c, NULL), 0);
	ck_assert_int_eq(c.r.status.class, EWS_CLASS_ERROR);
	ck_assert_str_eq(c.r.status.code, "ErrorMailboxStoreUnavailable");
	ck_assert_int_eq(ews_status_action(&c.r.status), EWS_ACT_TRANSIENT);
	ck_assert_uint_eq(c.nitems, 0);
	ews_calendar_free(&c);
	free(doc);
}
END_TEST

START_TEST(test_get_item)
{
	struct ews_items	 it;
	char			*doc;
	size_t			 len;

	doc = pt_fixture("getitem.xml", &len);
	ck_assert_int_eq(ews_parse_get_item(doc, len, &it, NULL), 0);
	ck_assert_uint_eq(it.nmsgs, 2);
	ck_assert(it.msgs[0].has_item);
	ck_assert_str_eq(it.msgs[0].item.id, "GI-1");
	ck_assert_str_eq(it.msgs[0].item.subject, "Planning");
	ck_assert_int_eq(it.msgs[0].item.sensitivity, EWS_SENS_PERSONAL);
	ck_assert_int_eq(it.msgs[0].item.end - it.msgs[0].item.start, 3600);
	ck_assert(!it.msgs[1].has_item);
	ck_assert_int_eq(it.msgs[1].status.class, EWS_CLASS_ERROR);
	ck_assert_str_eq(it.msgs[1].status.code, "ErrorItemNotFound");
	/* The summary is the first error. */
	ck_assert_str_eq(it.r.status.code, "ErrorItemNotFound");
	ews_items_free(&it);
	free(doc);
}
END_TEST

START_TEST(test_availability)
{
	struct ews_availability	 a;
	const struct ews_fb_mailbox *mb;
	char			*doc;
	size_t			 len;

	doc = pt_fixture("availability.xml", &len);
	ck_assert_int_eq(ews_parse_availability(doc, len, &a, NULL), 0);
	ck_assert_uint_eq(a.nmailboxes, 2);
	mb = &a.mailboxes[0];
	ck_assert_int_eq(mb->status.class, EWS_CLASS_SUCCESS);
	ck_assert_str_eq(mb->merged, "0022110003");
	ck_assert_uint_eq(mb->nevents, 3);
	ck_assert_int_eq(mb->events[0].start, ts("2026-11-29T09:00:00Z"));
	ck_assert_int_eq(mb->events[0].end, ts("2026-11-29T10:00:00Z"));
	ck_assert_int_eq(mb->events[0].busy, EWS_FB_BUSY);
	ck_assert_int_eq(mb->events[1].busy, EWS_FB_TENTATIVE);
	ck_assert_int_eq(mb->events[2].busy, EWS_FB_OOF);
	mb = &a.mailboxes[1];
	ck_assert_int_eq(mb->status.class, EWS_CLASS_ERROR);
	ck_assert_str_eq(mb->status.code, "ErrorMailRecipientNotFound");
	ck_assert_int_eq(ews_status_action(&mb->status), EWS_ACT_PARK);
	ck_assert_ptr_null(mb->merged);
	ck_assert_uint_eq(mb->nevents, 0);
	ck_assert_int_eq(a.r.status.class, EWS_CLASS_ERROR);
	ews_availability_free(&a);
	free(doc);
}
END_TEST

START_TEST(test_oof)
{
	struct ews_oof	 o;
	char		*doc;
	size_t		 len;

	doc = pt_fixture("oof-scheduled.xml", &len);
	ck_assert_int_eq(ews_parse_oof(doc, len, &o, NULL), 0);
	ck_assert_int_eq(o.state, EWS_OOF_SCHEDULED);
	ck_assert(o.has_duration);
	ck_assert_int_eq(o.start, ts("2026-12-20T08:00:00Z"));
	ck_assert_int_eq(o.end, ts("2027-01-04T08:00:00Z"));
	ews_oof_free(&o);
	free(doc);

	doc = pt_fixture("oof-disabled.xml", &len);
	ck_assert_int_eq(ews_parse_oof(doc, len, &o, NULL), 0);
	ck_assert_int_eq(o.state, EWS_OOF_DISABLED);
	ck_assert(!o.has_duration);
	ews_oof_free(&o);
	free(doc);
}
END_TEST

/*
 * What real servers send besides Exchange's own shapes: envelope prefixes
 * other than s: and soap:, no XML declaration (so no encoding named
 * anywhere: UTF-8 by default), no watermarks, nine fractional digits,
 * duplicate StartTimeZone/EndTimeZone, Detailed free/busy without
 * MergedFreeBusy.
 */
START_TEST(test_real_servers)
{
	struct ews_subscribe	 s;
	struct ews_notifications n;
	struct ews_calendar	 c;
	struct ews_availability	 a;
	struct ews_oof		 o;
	struct buf		 b = BUF_INIT;
	char			*doc, *cause = NULL;
	size_t			 len;

	doc = pt_fixture("subscribe-push-no-watermark.xml", &len);
	ck_assert_int_eq(ews_parse_subscribe(doc, len, &s, &cause), 0);
	ck_assert_ptr_null(cause);
	ck_assert_str_eq(s.subscription_id, "PUSH-NOWM-1");
	ck_assert_ptr_null(s.watermark);
	ck_assert_int_eq(s.r.version.major, 15);
	ck_assert_str_eq(s.r.version.version, "");
	ews_subscribe_free(&s);
	free(doc);

	doc = pt_fixture("getevents-no-watermark.xml", &len);
	ck_assert_int_eq(ews_parse_get_events(doc, len, &n, &cause), 0);
	ck_assert_uint_eq(n.nmsgs, 1);
	pt_fmt_notification(&b, &n.msgs[0].notification);
	ck_assert_str_eq(buf_str(&b),
	    "N PULL-NOWM-1 prev=- more=0\n"
	    "  CreatedEvent wm=- ts=1795946401 item=ITEM-P1 parent=CAL-P "
	    "old=- oldparent=-\n"
	    "  StatusEvent wm=- ts=0 item=- parent=- old=- oldparent=-\n");
	ews_notifications_free(&n);
	free(doc);

	buf_reset(&b);
	doc = pt_fixture("send-notification-no-watermark.xml", &len);
	ck_assert_int_eq(ews_parse_send_notification(doc, len, &n, &cause),
	    0);
	pt_fmt_notification(&b, &n.msgs[0].notification);
	ck_assert_str_eq(buf_str(&b),
	    "N PUSH-NOWM-1 prev=- more=0\n"
	    "  ModifiedEvent wm=- ts=1795946402 item=ITEM-Q1 parent=CAL-Q "
	    "old=- oldparent=-\n");
	ews_notifications_free(&n);
	free(doc);

	doc = pt_fixture("finditem-realserver.xml", &len);
	ck_assert_int_eq(ews_parse_find_item(doc, len, &c, &cause), 0);
	ck_assert_ptr_null(cause);
	ck_assert_uint_eq(c.nitems, 2);
	ck_assert_str_eq(c.items[0].id, "RS-1");
	ck_assert_str_eq(c.items[0].subject, "Gr\xc3\xbc\xc3\x9f" "e "
	    "\xe2\x98\x95");
	ck_assert_int_eq(c.items[0].start, ts("2026-11-29T10:00:00Z"));
	ck_assert_int_eq(c.items[0].end, ts("2026-11-29T10:30:00Z"));
	ck_assert_int_eq(c.items[0].fb, EWS_FB_BUSY);
	ck_assert_int_eq(c.items[1].start, ts("2026-11-29T11:00:00Z"));
	ck_assert_int_eq(c.items[1].end, ts("2026-11-29T12:00:00Z"));
	ck_assert_int_eq(c.items[1].fb, EWS_FB_TENTATIVE);
	ews_calendar_free(&c);
	free(doc);

	doc = pt_fixture("availability-detailed.xml", &len);
	ck_assert_int_eq(ews_parse_availability(doc, len, &a, &cause), 0);
	ck_assert_uint_eq(a.nmailboxes, 2);
	ck_assert_ptr_null(a.mailboxes[0].merged);
	ck_assert_uint_eq(a.mailboxes[0].nevents, 2);
	ck_assert_int_eq(a.mailboxes[0].events[0].start,
	    ts("2026-11-29T09:00:00Z"));
	ck_assert_int_eq(a.mailboxes[0].events[0].busy, EWS_FB_BUSY);
	ck_assert_int_eq(a.mailboxes[0].events[1].end,
	    ts("2026-11-29T17:00:00Z"));
	ck_assert_int_eq(a.mailboxes[0].events[1].busy, EWS_FB_OOF);
	/* A free day: a view with neither events nor merged digits. */
	ck_assert_int_eq(a.mailboxes[1].status.class, EWS_CLASS_SUCCESS);
	ck_assert_ptr_null(a.mailboxes[1].merged);
	ck_assert_uint_eq(a.mailboxes[1].nevents, 0);
	ews_availability_free(&a);
	free(doc);

	doc = pt_fixture("oof-realserver.xml", &len);
	ck_assert_int_eq(ews_parse_oof(doc, len, &o, &cause), 0);
	ck_assert_int_eq(o.state, EWS_OOF_SCHEDULED);
	ck_assert_int_eq(o.start, ts("2026-11-29T08:00:00Z"));
	ck_assert_int_eq(o.end, ts("2026-12-06T08:00:00Z"));
	ews_oof_free(&o);
	free(doc);
	buf_free(&b);
}
END_TEST

START_TEST(test_user_settings)
{
	struct ews_user_settings us;
	const struct ad_user	*u;
	char			*doc, *cause = NULL, *key;
	size_t			 len;

	doc = pt_fixture("autodiscover-user-settings.xml", &len);
	ck_assert_int_eq(ews_parse_user_settings(doc, len, &us, &cause), 0);
	ck_assert_ptr_null(cause);
	ck_assert(!us.r.fault);
	ck_assert_int_eq(us.error, AD_ERR_NONE);
	ck_assert_int_eq(us.r.status.class, EWS_CLASS_SUCCESS);
	ck_assert_str_eq(us.r.status.code, "NoError");
	ck_assert_ptr_null(us.r.status.message);
	ck_assert_uint_eq(us.nusers, 5);
	u = &us.users[0];
	ck_assert_int_eq(u->error, AD_ERR_NONE);
	ck_assert_str_eq(u->message, "No error.");
	ck_assert_ptr_null(u->redirect);
	ck_assert_uint_eq(u->missing, 0);
	/* The first of a repeated setting counts; entities decoded. */
	ck_assert_str_eq(u->values[AD_GROUPING_INFORMATION], "PRDNA01 & co");
	ck_assert_str_eq(u->values[AD_EXTERNAL_EWS_URL],
	    "https://mail.contoso.com/EWS/Exchange.asmx");
	ck_assert_str_eq(u->values[AD_INTERNAL_EWS_URL],
	    "https://exmb01.corp.contoso.com/EWS/Exchange.asmx");
	ck_assert_str_eq(u->values[AD_INTERNAL_MAILBOX_SERVER],
	    "exmb01.corp.contoso.com");
	ck_assert_str_eq(u->values[AD_EXTERNAL_MAILBOX_SERVER],
	    "mail.contoso.com");
	key = ad_group_key(u);
	ck_assert_str_eq(key, "https://mail.contoso.com/EWS/Exchange.asmx\n"
	    "PRDNA01 & co");
	free(key);
	u = &us.users[1];
	ck_assert_int_eq(u->error, AD_ERR_INVALID_USER);
	ck_assert_str_eq(u->code, "InvalidUser");
	ck_assert_str_eq(u->message, "Invalid user: 'nobody@contoso.com'");
	ck_assert_ptr_null(u->redirect);
	ck_assert_ptr_null(u->values[AD_EXTERNAL_EWS_URL]);
	ck_assert_ptr_null(ad_group_key(u));
	u = &us.users[2];
	ck_assert_int_eq(u->error, AD_ERR_REDIRECT_ADDRESS);
	ck_assert_str_eq(u->redirect, "elvin@mail.contoso.com");
	u = &us.users[3];
	ck_assert_int_eq(u->error, AD_ERR_REDIRECT_URL);
	ck_assert_str_eq(u->redirect, "https://autodiscover.eu.contoso.com/"
	    "autodiscover/autodiscover.svc");
	ck_assert(ad_redirect_url_ok(u->redirect));
	/* Exchange 2010: no GroupingInformation, the server groups. */
	u = &us.users[4];
	ck_assert_int_eq(u->error, AD_ERR_NONE);
	ck_assert_uint_eq(u->missing, AD_SETTING_BIT(AD_GROUPING_INFORMATION));
	ck_assert_ptr_null(u->values[AD_GROUPING_INFORMATION]);
	ck_assert_ptr_null(u->values[AD_INTERNAL_EWS_URL]);	/* nil */
	key = ad_group_key(u);
	ck_assert_str_eq(key, "https://mail.contoso.com/EWS/Exchange.asmx\n"
	    "EXMB02.corp.contoso.com");
	free(key);
	ews_user_settings_free(&us);
	ck_assert_uint_eq(us.nusers, 0);
	/* Not an EWS message. */
	ck_assert_int_eq(ews_parse_response(doc, len, &us.r, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "GetUserSettingsResponseMessage"));
	free(cause);
	cause = NULL;
	ews_response_free(&us.r);
	free(doc);

	/* An error for the whole request. */
	doc = pt_fixture("autodiscover-error.xml", &len);
	ck_assert_int_eq(ews_parse_user_settings(doc, len, &us, &cause), 0);
	ck_assert_int_eq(us.error, AD_ERR_SERVER_BUSY);
	ck_assert(ad_error_transient(us.error));
	ck_assert_int_eq(us.r.status.class, EWS_CLASS_ERROR);
	ck_assert_str_eq(us.r.status.code, "ServerBusy");
	ck_assert_str_eq(us.r.status.message,
	    "The server is too busy to process the request.");
	ck_assert_uint_eq(us.nusers, 0);
	ews_user_settings_free(&us);
	free(doc);

	/* WCF's fault for a request it has no operation for. */
	doc = pt_fixture("autodiscover-fault.xml", &len);
	ck_assert_int_eq(ews_parse_user_settings(doc, len, &us, &cause), 0);
	ck_assert(us.r.fault);
	ck_assert_str_eq(us.r.status.code, "ActionNotSupported");
	ck_assert_uint_eq(us.nusers, 0);
	ews_user_settings_free(&us);
	free(doc);

	/* An EWS answer, or NoError without UserResponses, is not one. */
	doc = pt_fixture("subscribe-streaming.xml", &len);
	ck_assert_int_eq(ews_parse_user_settings(doc, len, &us, &cause), -1);
	free(cause);
	cause = NULL;
	ews_user_settings_free(&us);
	free(doc);
	doc = xstrdup("<s:Envelope xmlns:s=\"" SOAP_NS_ENV "\"><s:Body>"
	    "<GetUserSettingsResponseMessage xmlns=\"" AD_NS "\"><Response>"
	    "<ErrorCode>NoError</ErrorCode></Response>"
	    "</GetUserSettingsResponseMessage></s:Body></s:Envelope>");
	ck_assert_int_eq(ews_parse_user_settings(doc, strlen(doc), &us,
	    &cause), -1);
	ck_assert_str_eq(cause, "Response without UserResponses");
	free(cause);
	ews_user_settings_free(&us);
	free(doc);
}
END_TEST

START_TEST(test_hostile)
{
	static const char *const dtd[] = {
		"bomb.xml", "xxe.xml", "xxe-external-dtd.xml"
	};
	struct ews_user_settings us;
	struct ews_subscribe	 s;
	struct ews_response	 r;
	struct buf		 b = BUF_INIT;
	char			*doc, *cause;
	size_t			 len, i;

	for (i = 0; i < sizeof(dtd) / sizeof(dtd[0]); i++) {
		doc = pt_fixture(dtd[i], &len);
		cause = NULL;
		ck_assert_int_eq(ews_parse_subscribe(doc, len, &s, &cause),
		    -1);
		ck_assert_str_eq(cause, "DOCTYPE not allowed");
		ck_assert_ptr_null(s.subscription_id);
		free(cause);
		ews_subscribe_free(&s);
		cause = NULL;
		ck_assert_int_eq(ews_parse_user_settings(doc, len, &us,
		    &cause), -1);
		ck_assert_str_eq(cause, "DOCTYPE not allowed");
		free(cause);
		ews_user_settings_free(&us);
		free(doc);
	}

	/*
	 * An answer otherwise in the subset of XML the fast reader takes: an
	 * entity reference other than the five predefined ones and character
	 * references is an error (no entity is ever expanded), as is a
	 * reference to a character XML does not allow.
	 */
	{
		static const char *const ref[] = {
			"&xxe;", "a&xxe;b", "&xxe", "&#0;", "&#x110000;",
			"&#xD800;", "&#;", "&;"
		};
		static const char	 id[] = "JwBleGNoMDEuY29udG9zby5jb20Q"
		    "AAAAr2n+Sbz8Z0yDIX9pBs4p2A==";
		const char		*at;

		doc = pt_fixture("subscribe-streaming.xml", &len);
		at = strstr(doc, id);
		ck_assert_ptr_nonnull(at);
		for (i = 0; i < sizeof ref / sizeof ref[0] + 1; i++) {
			buf_reset(&b);
			buf_append(&b, doc, (size_t)(at - doc));
			buf_puts(&b, i < sizeof ref / sizeof ref[0] ? ref[i] :
			    "a&amp;&lt;&gt;&quot;&apos;&#65;&#x42;");
			buf_puts(&b, at + strlen(id));
			cause = NULL;
			if (i == sizeof ref / sizeof ref[0]) {
				/* The predefined and numeric ones: decoded. */
				ck_assert_int_eq(ews_parse_subscribe(b.data,
				    b.len, &s, &cause), 0);
				ck_assert_str_eq(s.subscription_id,
				    "a&<>\"'AB");
			} else {
				ck_assert_msg(ews_parse_subscribe(b.data,
				    b.len, &s, &cause) == -1, "taken: %s",
				    ref[i]);
				ck_assert_ptr_nonnull(strstr(cause,
				    "malformed XML"));
				ck_assert_ptr_null(s.subscription_id);
			}
			free(cause);
			ews_subscribe_free(&s);
		}
		free(doc);
		buf_reset(&b);
	}

	/* Over the size cap: refused before parsing. */
	len = EWS_MAX_DOC + 1;
	doc = xmalloc(len);
	memset(doc, ' ', len);
	ck_assert_int_eq(ews_parse_response(doc, len, &r, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "too large"));
	free(cause);
	ews_response_free(&r);
	free(doc);

	/* Nesting beyond EWS_MAX_DEPTH inside a proper envelope. */
	buf_puts(&b, "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/"
	    "envelope/\"><s:Body><m:UnsubscribeResponse xmlns:m=\"http://"
	    "schemas.microsoft.com/exchange/services/2006/messages\">");
	for (i = 0; i < EWS_MAX_DEPTH; i++)
		buf_puts(&b, "<x>");
	for (i = 0; i < EWS_MAX_DEPTH; i++)
		buf_puts(&b, "</x>");
	buf_puts(&b, "</m:UnsubscribeResponse></s:Body></s:Envelope>");
	ck_assert_int_eq(ews_parse_response(b.data, b.len, &r, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "deeper"));
	free(cause);
	ews_response_free(&r);
	buf_free(&b);
}
END_TEST

START_TEST(test_malformed)
{
	static const char *const bad[] = {
		"",
		"<",
		"not xml at all",
		"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/"
		    "envelope/\"><s:Body>",
		"<foo/>",
		/* SOAP 1.2 is not what EWS speaks. */
		"<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope"
		    "\"><s:Body/></s:Envelope>",
		/* The https trap from the documentation pages. */
		"<s:Envelope xmlns:s=\"https://schemas.xmlsoap.org/soap/"
		    "envelope/\"><s:Body/></s:Envelope>",
		"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/"
		    "envelope/\"><s:Header/></s:Envelope>",
		"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/"
		    "envelope/\"><s:Body/></s:Envelope>",
		/* Undeclared entity, undeclared prefix. */
		"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/"
		    "envelope/\"><s:Body>&x;</s:Body></s:Envelope>",
		"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/"
		    "envelope/\"><s:Body><q:X/></s:Body></s:Envelope>",
		/* Payload outside the messages namespace. */
		"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/"
		    "envelope/\"><s:Body><UnsubscribeResponse/></s:Body>"
		    "</s:Envelope>",
		/* No response message at all. */
		"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/"
		    "envelope/\"><s:Body><m:UnsubscribeResponse xmlns:m=\""
		    "http://schemas.microsoft.com/exchange/services/2006/"
		    "messages\"/></s:Body></s:Envelope>",
	};
	struct ews_response	 r;
	char			*cause;
	size_t			 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cause = NULL;
		ck_assert_msg(ews_parse_response(bad[i], strlen(bad[i]), &r,
		    &cause) == -1, "accepted: %s", bad[i]);
		ck_assert_msg(cause != NULL && *cause != '\0', "no cause: %s",
		    bad[i]);
		free(cause);
		ews_response_free(&r);
	}
}
END_TEST

static const char *const truncated_files[] = {
	"subscribe-streaming.xml", "getevents.xml",
	"finditem-calendarview.xml", "availability.xml",
	"oof-scheduled.xml", "fault-server-busy.xml",
	"send-notification.xml", "getitem.xml",
	"autodiscover-user-settings.xml", "stream-realserver.xml",
};

/*
 * Every fixture, cut short anywhere, is refused without harm by every
 * parser.  One fixture per run (_i): each cut is seven full parses, so
 * a fixture of a few KiB is thousands of them, seconds of CPU under the
 * sanitizers; the time limit holds per fixture, not for all at once.
 */
START_TEST(test_truncated)
{
	struct ews_user_settings us;
	struct ews_calendar	 c;
	struct ews_notifications n;
	struct ews_availability	 a;
	struct ews_oof		 o;
	struct ews_items	 it;
	struct ews_subscribe	 s;
	char			*doc, *cut, *cause;
	size_t			 len, k, end;

	doc = pt_fixture(truncated_files[_i], &len);
	/* Trailing whitespace may go; the last '>' may not. */
	end = len;
	while (end > 0 && doc[end - 1] != '>')
		end--;
	for (k = 0; k < end; k += 3) {
		cut = xmalloc(k + 1);
		memcpy(cut, doc, k);
		cause = NULL;
		ck_assert_int_eq(ews_parse_find_item(cut, k, &c,
		    &cause), -1);
		ck_assert_ptr_nonnull(cause);
		free(cause);
		ews_calendar_free(&c);
		ck_assert_int_eq(ews_parse_get_events(cut, k, &n, NULL),
		    -1);
		ews_notifications_free(&n);
		ck_assert_int_eq(ews_parse_availability(cut, k, &a,
		    NULL), -1);
		ews_availability_free(&a);
		ck_assert_int_eq(ews_parse_oof(cut, k, &o, NULL), -1);
		ews_oof_free(&o);
		ck_assert_int_eq(ews_parse_get_item(cut, k, &it, NULL),
		    -1);
		ews_items_free(&it);
		ck_assert_int_eq(ews_parse_subscribe(cut, k, &s, NULL),
		    -1);
		ews_subscribe_free(&s);
		ck_assert_int_eq(ews_parse_user_settings(cut, k, &us,
		    NULL), -1);
		ews_user_settings_free(&us);
		free(cut);
	}
	free(doc);
}
END_TEST

START_TEST(test_classify)
{
	static const struct {
		const char	*code;
		enum ews_action	 want;
	} cases[] = {
		{ "NoError", EWS_ACT_OK },
		{ "", EWS_ACT_OK },
		{ "ErrorServerBusy", EWS_ACT_THROTTLED },
		{ "ErrorExceededConnectionCount", EWS_ACT_THROTTLED },
		{ "ErrorExceededSubscriptionCount", EWS_ACT_THROTTLED },
		{ "ErrorExceededFindCountLimit", EWS_ACT_THROTTLED },
		{ "ErrorSubscriptionNotFound", EWS_ACT_RESUBSCRIBE },
		{ "ErrorInvalidSubscription", EWS_ACT_RESUBSCRIBE },
		{ "ErrorExpiredSubscription", EWS_ACT_RESUBSCRIBE },
		{ "ErrorMissedNotificationEvents", EWS_ACT_RESYNC },
		{ "ErrorProxyRequestNotAllowed", EWS_ACT_REDISCOVER },
		{ "ErrorImpersonateUserDenied", EWS_ACT_PARK },
		{ "ErrorNonExistentMailbox", EWS_ACT_PARK },
		{ "ErrorImpersonationDenied", EWS_ACT_PARK },
		{ "ErrorImpersonationFailed", EWS_ACT_PARK },
		{ "ErrorAccessDenied", EWS_ACT_AUTH },
		{ "ErrorInternalServerTransientError", EWS_ACT_TRANSIENT },
		{ "ErrorMailboxStoreUnavailable", EWS_ACT_TRANSIENT },
		{ "ErrorConnectionFailed", EWS_ACT_TRANSIENT },
		{ "ErrorMailboxMoveInProgress", EWS_ACT_TRANSIENT },
		{ "ErrorSchemaValidation", EWS_ACT_FATAL },
		{ "ErrorSomethingNew", EWS_ACT_FATAL },
		{ "errorserverbusy", EWS_ACT_FATAL },
	};
	struct ews_status	 st;
	size_t			 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(ews_classify(cases[i].code) == cases[i].want,
		    "%s -> %s", cases[i].code,
		    ews_action_name(ews_classify(cases[i].code)));
	ck_assert_int_eq(ews_classify(NULL), EWS_ACT_OK);
	memset(&st, 0, sizeof(st));
	st.class = EWS_CLASS_ERROR;
	ck_assert_int_eq(ews_status_action(&st), EWS_ACT_FATAL);
	strcpy(st.code, "NoError");
	ck_assert_int_eq(ews_status_action(&st), EWS_ACT_FATAL);
	st.class = EWS_CLASS_SUCCESS;
	strcpy(st.code, "ErrorServerBusy");
	ck_assert_int_eq(ews_status_action(&st), EWS_ACT_OK);
	st.class = EWS_CLASS_WARNING;
	ck_assert_int_eq(ews_status_action(&st), EWS_ACT_THROTTLED);
	ck_assert_str_eq(ews_action_name(EWS_ACT_RESYNC), "resync");
	ck_assert_str_eq(ews_action_name(EWS_ACT_MAX), "unknown");
	ck_assert_str_eq(ews_fb_name(EWS_FB_OOF), "OOF");
	ck_assert_str_eq(ews_event_name(EWS_EV_FREEBUSY),
	    "FreeBusyChangedEvent");
}
END_TEST

static Suite *
ews_parse_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("ews_parse");
	tc = tcase_create("fixtures");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_subscribe);
	tcase_add_test(tc, test_faults);
	tcase_add_test(tc, test_unsubscribe);
	tcase_add_test(tc, test_get_events);
	tcase_add_test(tc, test_send_notification);
	tcase_add_test(tc, test_find_item);
	tcase_add_test(tc, test_get_item);
	tcase_add_test(tc, test_availability);
	tcase_add_test(tc, test_oof);
	tcase_add_test(tc, test_real_servers);
	tcase_add_test(tc, test_user_settings);
	tcase_add_test(tc, test_classify);
	suite_add_tcase(s, tc);
	tc = tcase_create("hostile");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_hostile);
	tcase_add_test(tc, test_malformed);
	tcase_add_loop_test(tc, test_truncated, 0,
	    sizeof(truncated_files) / sizeof(truncated_files[0]));
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(ews_parse_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	ews_parse_cleanup();
	xmlCleanupParser();
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
