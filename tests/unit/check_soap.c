/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: request builders.  Every request kind is validated against
 * the official EWS schema when ../shared is beside the tree.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlschemas.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "base/buf.h"
#include "ews/soap.h"
#include "base/xmalloc.h"

#define T0	1795946400LL	/* 2026-11-29T10:00:00Z */

static xmlSchema	*schema;
static int		 schema_missing;

static void
schema_setup(void)
{
	static const char *const rel[] = {
		"/../shared/ews-schema/validate/ews-messages-wrapper.xsd",
		"/../../shared/ews-schema/validate/ews-messages-wrapper.xsd",
	};
	xmlSchemaParserCtxt	*pc;
	const char		*dir = getenv("EWSSIM_SCHEMA_DIR");
	char			*path;
	size_t			 i;

	/* As the simulator: $EWSSIM_SCHEMA_DIR, else beside the tree. */
	for (i = 0; i < sizeof(rel) / sizeof(rel[0]) + 1 && schema == NULL;
	    i++) {
		if (i == 0 && (dir == NULL || *dir == '\0'))
			continue;
		if (i == 0)
			xasprintf(&path, "%s/validate/ews-messages-wrapper.xsd",
			    dir);
		else
			xasprintf(&path, "%s%s", EWSGW_TEST_SRCDIR, rel[i - 1]);
		if (access(path, R_OK) == 0) {
			pc = xmlSchemaNewParserCtxt(path);
			schema = xmlSchemaParse(pc);
			xmlSchemaFreeParserCtxt(pc);
			ck_assert_msg(schema != NULL, "cannot compile %s",
			    path);
		}
		free(path);
	}
	if (schema == NULL) {
		/* CI has the schema: there a skip is a failure. */
		dir = getenv("EWSGW_CI_NO_SKIP");
		ck_assert_msg(dir == NULL || strcmp(dir, "1") != 0,
		    "no ../shared/ews-schema, but EWSGW_CI_NO_SKIP=1");
		schema_missing = 1;
		printf("SKIP: schema validation (no ../shared/ews-schema)\n");
	}
}

static void
schema_teardown(void)
{
	if (schema != NULL)
		xmlSchemaFree(schema);
	schema = NULL;
}

static void
collect_error(void *arg, xmlError *e)
{
	struct buf	*b = arg;

	if (e != NULL && e->message != NULL)
		buf_printf(b, "[line %d] %s", e->line, e->message);
}

/* Validate one element as the root of its own document. */
static void
validate_element(xmlNode *el)
{
	xmlSchemaValidCtxt	*vc;
	xmlDoc			*doc;
	xmlNode			*copy;
	struct buf		 err = BUF_INIT;
	int			 rc;

	if (schema == NULL)
		return;
	doc = xmlNewDoc((const xmlChar *)"1.0");
	copy = xmlDocCopyNode(el, doc, 1);
	xmlDocSetRootElement(doc, copy);
	xmlReconciliateNs(doc, copy);
	vc = xmlSchemaNewValidCtxt(schema);
	xmlSchemaSetValidStructuredErrors(vc, collect_error, &err);
	rc = xmlSchemaValidateDoc(vc, doc);
	ck_assert_msg(rc == 0, "%s fails schema validation: %s",
	    (const char *)el->name, buf_str(&err));
	xmlSchemaFreeValidCtxt(vc);
	xmlFreeDoc(doc);
	buf_free(&err);
}

static xmlNode *
first_el(xmlNode *n)
{
	for (n = n->children; n != NULL; n = n->next)
		if (n->type == XML_ELEMENT_NODE)
			return (n);
	return (NULL);
}

static xmlNode *
next_el(xmlNode *n)
{
	for (n = n->next; n != NULL; n = n->next)
		if (n->type == XML_ELEMENT_NODE)
			return (n);
	return (NULL);
}

/*
 * Parse a built request, check the envelope shape, validate every header
 * child and the Body payload; returns the document (caller frees).
 */
static xmlDoc *
check_request(const struct buf *b, const char *payload)
{
	xmlDoc	*doc;
	xmlNode	*root, *hdr, *body, *c;

	ck_assert_uint_gt(b->len, 0);
	doc = xmlReadMemory(b->data, (int)b->len, NULL, NULL,
	    XML_PARSE_NONET);
	ck_assert_msg(doc != NULL, "not well-formed: %s", buf_str(b));
	root = xmlDocGetRootElement(doc);
	ck_assert_str_eq((const char *)root->name, "Envelope");
	ck_assert_str_eq((const char *)root->ns->href, SOAP_NS_ENV);
	hdr = first_el(root);
	ck_assert_str_eq((const char *)hdr->name, "Header");
	body = next_el(hdr);
	ck_assert_ptr_nonnull(body);
	ck_assert_str_eq((const char *)body->name, "Body");
	ck_assert_ptr_null(next_el(body));
	for (c = first_el(hdr); c != NULL; c = next_el(c))
		validate_element(c);
	c = first_el(body);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq((const char *)c->name, payload);
	ck_assert_str_eq((const char *)c->ns->href, SOAP_NS_M);
	ck_assert_ptr_null(next_el(c));
	validate_element(c);
	return (doc);
}

/* XPath string value with s/m/t prefixes; allocated. */
static char *
xp(xmlDoc *doc, const char *expr)
{
	xmlXPathContext	*ctx;
	xmlXPathObject	*o;
	char		*s;

	ctx = xmlXPathNewContext(doc);
	xmlXPathRegisterNs(ctx, (const xmlChar *)"s",
	    (const xmlChar *)SOAP_NS_ENV);
	xmlXPathRegisterNs(ctx, (const xmlChar *)"m",
	    (const xmlChar *)SOAP_NS_M);
	xmlXPathRegisterNs(ctx, (const xmlChar *)"t",
	    (const xmlChar *)SOAP_NS_T);
	xmlXPathRegisterNs(ctx, (const xmlChar *)"a",
	    (const xmlChar *)AD_NS);
	xmlXPathRegisterNs(ctx, (const xmlChar *)"wsa",
	    (const xmlChar *)AD_NS_WSA);
	o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
	ck_assert_msg(o != NULL, "bad xpath %s", expr);
	s = xstrdup(o->type == XPATH_STRING ? (const char *)o->stringval :
	    o->type == XPATH_NUMBER ? "num" : "?");
	if (o->type == XPATH_NUMBER) {
		free(s);
		xasprintf(&s, "%g", o->floatval);
	}
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(ctx);
	return (s);
}

static void
assert_xp(xmlDoc *doc, const char *expr, const char *want)
{
	char	*got;

	got = xp(doc, expr);
	ck_assert_msg(strcmp(got, want) == 0, "%s = '%s', want '%s'", expr,
	    got, want);
	free(got);
}

static const struct soap_ident smtp_id = { CONF_ID_SMTP,
	"alice@contoso.com" };
static const struct soap_header hdr_imp = { "Exchange2013_SP1", &smtp_id };
static const struct soap_header hdr_plain = { "Exchange2010_SP1", NULL };

START_TEST(test_subscribe)
{
	struct buf	 b = BUF_INIT;
	xmlDoc		*doc;

	ck_assert_int_eq(soap_subscribe_streaming(&b, &hdr_imp,
	    SOAP_EV_CALENDAR), 0);
	doc = check_request(&b, "Subscribe");
	assert_xp(doc, "string(//m:StreamingSubscriptionRequest/t:FolderIds/"
	    "t:DistinguishedFolderId/@Id)", "calendar");
	assert_xp(doc, "count(//t:EventTypes/t:EventType)", "6");
	assert_xp(doc, "count(//t:EventType[.='NewMailEvent'])", "0");
	assert_xp(doc, "count(//t:EventType[.='FreeBusyChangedEvent'])",
	    "1");
	xmlFreeDoc(doc);

	ck_assert_int_eq(soap_subscribe_push(&b, &hdr_imp, SOAP_EV_ALL,
	    "https://gw.example.com:8443/ews/push?token=a&b=c", 30,
	    "AQAAAA=="), 0);
	doc = check_request(&b, "Subscribe");
	assert_xp(doc, "string(//m:PushSubscriptionRequest/t:URL)",
	    "https://gw.example.com:8443/ews/push?token=a&b=c");
	assert_xp(doc, "string(//t:Watermark)", "AQAAAA==");
	assert_xp(doc, "string(//t:StatusFrequency)", "30");
	assert_xp(doc, "count(//t:EventType)", "7");
	xmlFreeDoc(doc);

	ck_assert_int_eq(soap_subscribe_push(&b, &hdr_plain, SOAP_EV_CREATED,
	    "http://127.0.0.1/x", 1440, NULL), 0);
	doc = check_request(&b, "Subscribe");
	assert_xp(doc, "count(//t:Watermark)", "0");
	xmlFreeDoc(doc);

	ck_assert_int_eq(soap_subscribe_pull(&b, &hdr_imp, SOAP_EV_CALENDAR,
	    1440, "AQAAAB=="), 0);
	doc = check_request(&b, "Subscribe");
	assert_xp(doc, "string(//m:PullSubscriptionRequest/t:Timeout)",
	    "1440");
	xmlFreeDoc(doc);
	ck_assert_int_eq(soap_subscribe_pull(&b, NULL, SOAP_EV_DELETED, 1,
	    NULL), 0);
	doc = check_request(&b, "Subscribe");
	assert_xp(doc, "count(//t:RequestServerVersion)", "0");
	xmlFreeDoc(doc);

	/* A delegate's subscription: the calendar of a named mailbox. */
	ck_assert_int_eq(soap_subscribe_streaming_delegate(&b, &hdr_plain,
	    SOAP_EV_CALENDAR, "b&b@contoso.com"), 0);
	doc = check_request(&b, "Subscribe");
	assert_xp(doc, "string(//m:StreamingSubscriptionRequest/t:FolderIds/"
	    "t:DistinguishedFolderId[@Id='calendar']/t:Mailbox/"
	    "t:EmailAddress)", "b&b@contoso.com");
	assert_xp(doc, "count(//t:ExchangeImpersonation)", "0");
	xmlFreeDoc(doc);
	ck_assert_int_eq(soap_subscribe_streaming_delegate(&b, &hdr_plain,
	    SOAP_EV_CALENDAR, NULL), 0);
	doc = check_request(&b, "Subscribe");
	assert_xp(doc, "count(//t:Mailbox)", "0");
	xmlFreeDoc(doc);
	ck_assert_int_eq(soap_subscribe_streaming_delegate(&b, &hdr_plain,
	    SOAP_EV_CALENDAR, ""), -1);
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
}
END_TEST

START_TEST(test_streaming_events)
{
	const char	*ids[SOAP_MAX_STREAM_IDS];
	char		 names[SOAP_MAX_STREAM_IDS][16];
	struct buf	 b = BUF_INIT;
	xmlDoc		*doc;
	size_t		 i;

	for (i = 0; i < SOAP_MAX_STREAM_IDS; i++) {
		snprintf(names[i], sizeof(names[i]), "SUB-%zu", i);
		ids[i] = names[i];
	}
	ck_assert_int_eq(soap_get_streaming_events(&b, &hdr_imp, ids,
	    SOAP_MAX_STREAM_IDS, 30), 0);
	doc = check_request(&b, "GetStreamingEvents");
	assert_xp(doc, "count(//m:SubscriptionIds/t:SubscriptionId)", "200");
	assert_xp(doc, "string(//m:SubscriptionIds/t:SubscriptionId[200])",
	    "SUB-199");
	assert_xp(doc, "string(//m:ConnectionTimeout)", "30");
	xmlFreeDoc(doc);

	/* Exact bytes for one small request: the wire format is fixed. */
	ck_assert_int_eq(soap_get_streaming_events(&b, &hdr_plain, ids, 2,
	    1), 0);
	ck_assert_str_eq(buf_str(&b),
	    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<soap:Envelope xmlns:soap=\"" SOAP_NS_ENV "\" xmlns:m=\""
	    SOAP_NS_M "\" xmlns:t=\"" SOAP_NS_T "\"><soap:Header>"
	    "<t:RequestServerVersion Version=\"Exchange2010_SP1\"/>"
	    "</soap:Header><soap:Body><m:GetStreamingEvents>"
	    "<m:SubscriptionIds><t:SubscriptionId>SUB-0</t:SubscriptionId>"
	    "<t:SubscriptionId>SUB-1</t:SubscriptionId></m:SubscriptionIds>"
	    "<m:ConnectionTimeout>1</m:ConnectionTimeout>"
	    "</m:GetStreamingEvents></soap:Body></soap:Envelope>\n");

	ck_assert_int_eq(soap_get_events(&b, &hdr_imp, "PULL-1", "AQ=="), 0);
	doc = check_request(&b, "GetEvents");
	assert_xp(doc, "string(//m:GetEvents/m:SubscriptionId)", "PULL-1");
	assert_xp(doc, "string(//m:GetEvents/m:Watermark)", "AQ==");
	xmlFreeDoc(doc);

	ck_assert_int_eq(soap_unsubscribe(&b, &hdr_imp, "SUB-9"), 0);
	doc = check_request(&b, "Unsubscribe");
	assert_xp(doc, "string(//m:Unsubscribe/m:SubscriptionId)", "SUB-9");
	xmlFreeDoc(doc);
	buf_free(&b);
}
END_TEST

START_TEST(test_calendar_requests)
{
	const char	*ids[] = { "AAMk-1", "AAMk-2&<>" };
	const char	*addrs[SOAP_MAX_AVAIL_MAILBOXES];
	char		 names[SOAP_MAX_AVAIL_MAILBOXES][32];
	struct buf	 b = BUF_INIT;
	xmlDoc		*doc;
	size_t		 i;

	ck_assert_int_eq(soap_find_calendar_view(&b, &hdr_imp, T0,
	    T0 + 86400, 500), 0);
	doc = check_request(&b, "FindItem");
	assert_xp(doc, "string(//m:FindItem/@Traversal)", "Shallow");
	assert_xp(doc, "string(//m:CalendarView/@StartDate)",
	    "2026-11-29T10:00:00Z");
	assert_xp(doc, "string(//m:CalendarView/@EndDate)",
	    "2026-11-30T10:00:00Z");
	assert_xp(doc, "string(//m:CalendarView/@MaxEntriesReturned)", "500");
	assert_xp(doc, "string(//t:BaseShape)", "IdOnly");
	assert_xp(doc, "count(//t:AdditionalProperties/t:FieldURI)", "8");
	assert_xp(doc, "count(//t:FieldURI[@FieldURI='calendar:"
	    "LegacyFreeBusyStatus'])", "1");
	assert_xp(doc, "string(//m:ParentFolderIds/t:DistinguishedFolderId/"
	    "@Id)", "calendar");
	xmlFreeDoc(doc);
	ck_assert_int_eq(soap_find_calendar_view(&b, &hdr_imp, T0, T0 + 60,
	    0), 0);
	doc = check_request(&b, "FindItem");
	assert_xp(doc, "count(//m:CalendarView/@MaxEntriesReturned)", "0");
	xmlFreeDoc(doc);

	ck_assert_int_eq(soap_get_item(&b, &hdr_imp, ids, 2), 0);
	doc = check_request(&b, "GetItem");
	assert_xp(doc, "string(//m:ItemIds/t:ItemId[2]/@Id)", "AAMk-2&<>");
	assert_xp(doc, "count(//t:AdditionalProperties/t:FieldURI)", "8");
	xmlFreeDoc(doc);

	for (i = 0; i < SOAP_MAX_AVAIL_MAILBOXES; i++) {
		snprintf(names[i], sizeof(names[i]), "user%zu@contoso.com", i);
		addrs[i] = names[i];
	}
	ck_assert_int_eq(soap_get_user_availability(&b, &hdr_plain, addrs,
	    SOAP_MAX_AVAIL_MAILBOXES, T0, T0 + 7 * 86400, 15,
	    SOAP_FB_VIEW_FREEBUSY), 0);
	doc = check_request(&b, "GetUserAvailabilityRequest");
	assert_xp(doc, "count(//t:MailboxData)", "100");
	assert_xp(doc, "string(//t:MailboxData[100]/t:Email/t:Address)",
	    "user99@contoso.com");
	assert_xp(doc, "string(//t:TimeZone/t:Bias)", "0");
	assert_xp(doc, "string(//t:TimeWindow/t:StartTime)",
	    "2026-11-29T10:00:00Z");
	assert_xp(doc, "string(//t:MergedFreeBusyIntervalInMinutes)", "15");
	assert_xp(doc, "string(//t:RequestedView)", "FreeBusy");
	xmlFreeDoc(doc);
	ck_assert_int_eq(soap_get_user_availability(&b, &hdr_imp, addrs, 1,
	    T0, T0 + 3600, 30, SOAP_FB_VIEW_DETAILED), 0);
	doc = check_request(&b, "GetUserAvailabilityRequest");
	assert_xp(doc, "string(//t:RequestedView)", "Detailed");
	xmlFreeDoc(doc);
	ck_assert_int_eq(soap_get_user_availability(&b, &hdr_imp, addrs, 1,
	    T0, T0 + 3600, 30, SOAP_FB_VIEW_FREEBUSY_MERGED), 0);
	doc = check_request(&b, "GetUserAvailabilityRequest");
	xmlFreeDoc(doc);

	ck_assert_int_eq(soap_get_user_oof_settings(&b, &hdr_imp,
	    "alice@contoso.com"), 0);
	doc = check_request(&b, "GetUserOofSettingsRequest");
	assert_xp(doc, "string(//m:GetUserOofSettingsRequest/t:Mailbox/"
	    "t:Address)", "alice@contoso.com");
	xmlFreeDoc(doc);
	buf_free(&b);
}
END_TEST

START_TEST(test_notification_result)
{
	struct buf	 b = BUF_INIT;
	xmlDoc		*doc;
	xmlNode		*body;

	soap_send_notification_result(&b, false);
	doc = xmlReadMemory(b.data, (int)b.len, NULL, NULL, XML_PARSE_NONET);
	ck_assert_ptr_nonnull(doc);
	assert_xp(doc, "string(/s:Envelope/s:Body/m:SendNotificationResult/"
	    "m:SubscriptionStatus)", "OK");
	body = first_el(xmlDocGetRootElement(doc));
	ck_assert_str_eq((const char *)body->name, "Body");
	validate_element(first_el(body));
	xmlFreeDoc(doc);
	soap_send_notification_result(&b, true);
	doc = xmlReadMemory(b.data, (int)b.len, NULL, NULL, XML_PARSE_NONET);
	assert_xp(doc, "string(//m:SubscriptionStatus)", "Unsubscribe");
	validate_element(first_el(first_el(xmlDocGetRootElement(doc))));
	xmlFreeDoc(doc);
	buf_free(&b);
}
END_TEST

START_TEST(test_escaping)
{
	/* Quotes, markup characters, CR/LF/tab, non-ASCII (é, ß, 😀). */
	const char		*nasty =
	    "o'b\"r<i>&en\r\n\tz@ex\xc3\xa4mple.com";
	const char		*uni = "j\xc3\xbcrgen.m\xc3\xbc\xc3\x9f"
	    "er@m\xc3\xbcnchen.de \xf0\x9f\x98\x80";
	struct soap_ident	 id = { CONF_ID_UPN, "x\"<&>'@corp.local" };
	struct soap_header	 h = { "Exchange2013\"_SP1", &id };
	const char		*ids[1];
	struct buf		 b = BUF_INIT;
	xmlDoc			*doc;

	ck_assert_int_eq(soap_get_user_oof_settings(&b, &hdr_imp, nasty), 0);
	ck_assert_ptr_null(strstr(b.data, "<i>"));
	doc = check_request(&b, "GetUserOofSettingsRequest");
	assert_xp(doc, "string(//t:Address)", nasty);
	xmlFreeDoc(doc);

	ck_assert_int_eq(soap_get_user_oof_settings(&b, &hdr_imp, uni), 0);
	doc = check_request(&b, "GetUserOofSettingsRequest");
	assert_xp(doc, "string(//t:Address)", uni);
	xmlFreeDoc(doc);

	/* Attribute values keep CR, LF and tab through normalisation. */
	ids[0] = nasty;
	ck_assert_int_eq(soap_get_item(&b, &hdr_imp, ids, 1), 0);
	doc = xmlReadMemory(b.data, (int)b.len, NULL, NULL, XML_PARSE_NONET);
	assert_xp(doc, "string(//t:ItemId/@Id)", nasty);
	xmlFreeDoc(doc);

	/* Header values are escaped too (schema rejects the version). */
	ck_assert_int_eq(soap_unsubscribe(&b, &h, "S"), 0);
	doc = xmlReadMemory(b.data, (int)b.len, NULL, NULL, XML_PARSE_NONET);
	ck_assert_ptr_nonnull(doc);
	assert_xp(doc, "string(//t:RequestServerVersion/@Version)",
	    "Exchange2013\"_SP1");
	assert_xp(doc, "string(//t:ConnectingSID/t:PrincipalName)",
	    "x\"<&>'@corp.local");
	xmlFreeDoc(doc);

	/* Invalid UTF-8, forbidden characters: refused, buffer emptied. */
	ck_assert_int_eq(soap_get_user_oof_settings(&b, &hdr_imp,
	    "bad\xff@x.com"), -1);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(soap_get_user_oof_settings(&b, &hdr_imp,
	    "over\xc0\xaflong@x.com"), -1);
	ck_assert_int_eq(soap_get_user_oof_settings(&b, &hdr_imp,
	    "surrogate\xed\xa0\x80@x.com"), -1);
	ck_assert_int_eq(soap_get_user_oof_settings(&b, &hdr_imp,
	    "trunc\xe2\x82"), -1);
	ck_assert_int_eq(soap_get_user_oof_settings(&b, &hdr_imp,
	    "ctl\x01@x.com"), -1);
	ck_assert_int_eq(soap_unsubscribe(&b, &hdr_imp, "id\x1b"), -1);
	ck_assert_uint_eq(b.len, 0);

	/* soap_escape itself. */
	buf_reset(&b);
	ck_assert_int_eq(soap_escape(&b, "a<b>&\"'\n", false), 0);
	ck_assert_str_eq(buf_str(&b), "a&lt;b&gt;&amp;&quot;&apos;\n");
	buf_reset(&b);
	ck_assert_int_eq(soap_escape(&b, "\t\n\r", true), 0);
	ck_assert_str_eq(buf_str(&b), "&#9;&#10;&#13;");
	buf_reset(&b);
	ck_assert_int_eq(soap_escape(&b, "ok\xff", false), -1);
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
}
END_TEST

START_TEST(test_impersonation)
{
	static const struct {
		enum conf_idtype	 type;
		const char		*value;
		const char		*element;
	} cases[] = {
		{ CONF_ID_SMTP, "alice@contoso.com", "SmtpAddress" },
		{ CONF_ID_UPN, "alice@corp.contoso.local", "PrincipalName" },
		{ CONF_ID_SID, "S-1-5-21-3623811015-3361044348-30300820-1013",
		    "SID" },
	};
	struct soap_ident	 id;
	struct soap_header	 h = { "Exchange2013_SP1", &id };
	struct buf		 b = BUF_INIT;
	xmlDoc			*doc;
	char			*expr;
	size_t			 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		id.type = cases[i].type;
		id.value = cases[i].value;
		ck_assert_int_eq(soap_subscribe_streaming(&b, &h,
		    SOAP_EV_CALENDAR), 0);
		doc = check_request(&b, "Subscribe");
		xasprintf(&expr, "string(/s:Envelope/s:Header/"
		    "t:ExchangeImpersonation/t:ConnectingSID/t:%s)",
		    cases[i].element);
		assert_xp(doc, expr, cases[i].value);
		free(expr);
		assert_xp(doc, "count(//t:ConnectingSID/*)", "1");
		assert_xp(doc, "string(//t:RequestServerVersion/@Version)",
		    "Exchange2013_SP1");
		xmlFreeDoc(doc);
	}
	/* No impersonation: no header element at all. */
	ck_assert_int_eq(soap_subscribe_streaming(&b, &hdr_plain,
	    SOAP_EV_CALENDAR), 0);
	doc = check_request(&b, "Subscribe");
	assert_xp(doc, "count(//t:ExchangeImpersonation)", "0");
	xmlFreeDoc(doc);
	/* An empty id would be ErrorInvalidExchangeImpersonationHeaderData. */
	id.type = CONF_ID_SMTP;
	id.value = "";
	ck_assert_int_eq(soap_unsubscribe(&b, &h, "S"), -1);
	id.value = NULL;
	ck_assert_int_eq(soap_unsubscribe(&b, &h, "S"), -1);
	id.type = (enum conf_idtype)42;
	id.value = "x";
	ck_assert_int_eq(soap_unsubscribe(&b, &h, "S"), -1);
	buf_free(&b);
}
END_TEST

START_TEST(test_ranges)
{
	const char	*ids[SOAP_MAX_STREAM_IDS + 1];
	const char	*empty[] = { "" };
	char		 url[SOAP_MAX_URL_LEN + 2];
	struct buf	 b = BUF_INIT;
	size_t		 i;

	for (i = 0; i <= SOAP_MAX_STREAM_IDS; i++)
		ids[i] = "S";
	ck_assert_int_eq(soap_get_streaming_events(&b, &hdr_imp, ids, 0, 5),
	    -1);
	ck_assert_int_eq(soap_get_streaming_events(&b, &hdr_imp, ids,
	    SOAP_MAX_STREAM_IDS + 1, 5), -1);
	ck_assert_int_eq(soap_get_streaming_events(&b, &hdr_imp, ids, 1, 0),
	    -1);
	ck_assert_int_eq(soap_get_streaming_events(&b, &hdr_imp, ids, 1, 31),
	    -1);
	ck_assert_int_eq(soap_get_streaming_events(&b, &hdr_imp, empty, 1,
	    5), -1);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(soap_subscribe_streaming(&b, &hdr_imp, 0), -1);
	ck_assert_int_eq(soap_subscribe_streaming(&b, &hdr_imp, 0x80), -1);
	ck_assert_int_eq(soap_subscribe_push(&b, &hdr_imp, SOAP_EV_ALL,
	    "http://x/", 0, NULL), -1);
	ck_assert_int_eq(soap_subscribe_push(&b, &hdr_imp, SOAP_EV_ALL,
	    "http://x/", 1441, NULL), -1);
	ck_assert_int_eq(soap_subscribe_push(&b, &hdr_imp, SOAP_EV_ALL, "",
	    30, NULL), -1);
	memset(url, 'a', sizeof(url) - 1);
	url[sizeof(url) - 1] = '\0';
	ck_assert_int_eq(soap_subscribe_push(&b, &hdr_imp, SOAP_EV_ALL, url,
	    30, NULL), -1);
	url[SOAP_MAX_URL_LEN] = '\0';
	ck_assert_int_eq(soap_subscribe_push(&b, &hdr_imp, SOAP_EV_ALL, url,
	    30, NULL), 0);
	ck_assert_int_eq(soap_subscribe_push(&b, &hdr_imp, SOAP_EV_ALL,
	    "http://x/", 30, ""), -1);
	ck_assert_int_eq(soap_subscribe_pull(&b, &hdr_imp, SOAP_EV_ALL, 0,
	    NULL), -1);
	ck_assert_int_eq(soap_get_events(&b, &hdr_imp, "S", NULL), -1);
	ck_assert_int_eq(soap_get_events(&b, &hdr_imp, NULL, "W"), -1);
	ck_assert_int_eq(soap_unsubscribe(&b, &hdr_imp, NULL), -1);
	ck_assert_int_eq(soap_find_calendar_view(&b, &hdr_imp, T0, T0, 0),
	    -1);
	ck_assert_int_eq(soap_find_calendar_view(&b, &hdr_imp, T0, T0 - 1,
	    0), -1);
	ck_assert_int_eq(soap_get_item(&b, &hdr_imp, ids, 0), -1);
	ck_assert_int_eq(soap_get_item(&b, &hdr_imp, empty, 1), -1);
	ck_assert_int_eq(soap_get_user_availability(&b, &hdr_imp, ids,
	    SOAP_MAX_AVAIL_MAILBOXES + 1, T0, T0 + 60, 30,
	    SOAP_FB_VIEW_FREEBUSY), -1);
	ck_assert_int_eq(soap_get_user_availability(&b, &hdr_imp, ids, 0,
	    T0, T0 + 60, 30, SOAP_FB_VIEW_FREEBUSY), -1);
	ck_assert_int_eq(soap_get_user_availability(&b, &hdr_imp, ids, 1,
	    T0, T0 + 60, 4, SOAP_FB_VIEW_FREEBUSY), -1);
	ck_assert_int_eq(soap_get_user_availability(&b, &hdr_imp, ids, 1,
	    T0, T0 + 60, 1441, SOAP_FB_VIEW_FREEBUSY), -1);
	ck_assert_int_eq(soap_get_user_availability(&b, &hdr_imp, ids, 1,
	    T0 + 60, T0, 30, SOAP_FB_VIEW_FREEBUSY), -1);
	ck_assert_int_eq(soap_get_user_availability(&b, &hdr_imp, ids, 1,
	    T0, T0 + 60, 30, (enum soap_fb_view)9), -1);
	ck_assert_int_eq(soap_get_user_oof_settings(&b, &hdr_imp, ""), -1);
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
}
END_TEST

/*
 * Autodiscover GetUserSettings.  No Autodiscover schema is vendored: the
 * request is held to the structure of Microsoft's documented example
 * (GetUserSettings operation (SOAP)): Header RequestedServerVersion,
 * wsa:Action, wsa:To; Body GetUserSettingsRequestMessage/Request/Users/
 * User/Mailbox, then RequestedSettings/Setting, every element in the
 * Autodiscover namespace but the WS-Addressing ones.
 */
START_TEST(test_user_settings)
{
	static const char *const order[] = {
		"Envelope", "Header", "RequestedServerVersion", "Action", "To",
		"Body", "GetUserSettingsRequestMessage", "Request", "Users",
		"User", "Mailbox", "User", "Mailbox", "RequestedSettings",
		"Setting", "Setting", "Setting", "Setting", "Setting", NULL
	};
	const char	*addrs[AD_MAX_USERS + 1];
	char		 names[AD_MAX_USERS + 1][32];
	const char	*two[] = { "alfred@contoso.com", "s&die<@contoso.com" };
	const char	*to = "https://autodiscover.contoso.com/autodiscover/"
	    "autodiscover.svc";
	struct buf	 b = BUF_INIT;
	xmlDoc		*doc;
	xmlNode		*n;
	size_t		 i;

	ck_assert_int_eq(soap_get_user_settings(&b, to, "Exchange2013_SP1",
	    two, 2, AD_SETTINGS_ALL), 0);
	doc = xmlReadMemory(b.data, (int)b.len, NULL, NULL, XML_PARSE_NONET);
	ck_assert_msg(doc != NULL, "not well-formed: %s", buf_str(&b));
	/* Document order, element by element. */
	n = xmlDocGetRootElement(doc);
	for (i = 0; order[i] != NULL; i++) {
		ck_assert_ptr_nonnull(n);
		ck_assert_str_eq((const char *)n->name, order[i]);
		ck_assert_str_eq((const char *)n->ns->href, i <= 1 || i == 5 ?
		    SOAP_NS_ENV : i == 3 || i == 4 ? AD_NS_WSA : AD_NS);
		/* Next element in document order. */
		if (first_el(n) != NULL)
			n = first_el(n);
		else {
			while (n != NULL && next_el(n) == NULL)
				n = n->parent != NULL && n->parent->type ==
				    XML_ELEMENT_NODE ? n->parent : NULL;
			n = n != NULL ? next_el(n) : NULL;
		}
	}
	ck_assert_ptr_null(n);
	assert_xp(doc, "string(/s:Envelope/s:Header/a:RequestedServerVersion)",
	    "Exchange2013_SP1");
	assert_xp(doc, "string(/s:Envelope/s:Header/wsa:Action)",
	    "http://schemas.microsoft.com/exchange/2010/Autodiscover/"
	    "Autodiscover/GetUserSettings");
	assert_xp(doc, "string(/s:Envelope/s:Header/wsa:To)", to);
	assert_xp(doc, "string(//a:Users/a:User[2]/a:Mailbox)",
	    "s&die<@contoso.com");
	assert_xp(doc, "string(//a:RequestedSettings/a:Setting[1])",
	    "GroupingInformation");
	assert_xp(doc, "string(//a:RequestedSettings/a:Setting[2])",
	    "ExternalEwsUrl");
	assert_xp(doc, "string(//a:RequestedSettings/a:Setting[3])",
	    "InternalEwsUrl");
	assert_xp(doc, "string(//a:RequestedSettings/a:Setting[4])",
	    "InternalMailboxServer");
	assert_xp(doc, "string(//a:RequestedSettings/a:Setting[5])",
	    "ExternalMailboxServer");
	xmlFreeDoc(doc);

	/* A full batch, one setting, no version. */
	for (i = 0; i <= AD_MAX_USERS; i++) {
		snprintf(names[i], sizeof(names[i]), "user%zu@contoso.com", i);
		addrs[i] = names[i];
	}
	ck_assert_int_eq(soap_get_user_settings(&b, to, NULL, addrs,
	    AD_MAX_USERS, AD_SETTING_BIT(AD_GROUPING_INFORMATION)), 0);
	doc = xmlReadMemory(b.data, (int)b.len, NULL, NULL, XML_PARSE_NONET);
	ck_assert_ptr_nonnull(doc);
	assert_xp(doc, "count(//a:Users/a:User/a:Mailbox)", "100");
	assert_xp(doc, "string(//a:User[100]/a:Mailbox)",
	    "user99@contoso.com");
	assert_xp(doc, "count(//a:RequestedServerVersion)", "0");
	assert_xp(doc, "count(//a:Setting)", "1");
	xmlFreeDoc(doc);

	/* Out of range: nothing is written. */
	ck_assert_int_eq(soap_get_user_settings(&b, to, NULL, addrs,
	    AD_MAX_USERS + 1, AD_SETTINGS_ALL), -1);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(soap_get_user_settings(&b, to, NULL, addrs, 0,
	    AD_SETTINGS_ALL), -1);
	ck_assert_int_eq(soap_get_user_settings(&b, to, NULL, addrs, 1, 0),
	    -1);
	ck_assert_int_eq(soap_get_user_settings(&b, to, NULL, addrs, 1,
	    AD_SETTINGS_ALL + 1), -1);
	ck_assert_int_eq(soap_get_user_settings(&b, NULL, NULL, addrs, 1,
	    AD_SETTINGS_ALL), -1);
	ck_assert_int_eq(soap_get_user_settings(&b, "", NULL, addrs, 1,
	    AD_SETTINGS_ALL), -1);
	ck_assert_int_eq(soap_get_user_settings(&b, to, "", addrs, 1,
	    AD_SETTINGS_ALL), -1);
	addrs[0] = "";
	ck_assert_int_eq(soap_get_user_settings(&b, to, NULL, addrs, 1,
	    AD_SETTINGS_ALL), -1);
	addrs[0] = "bad\x01@contoso.com";
	ck_assert_int_eq(soap_get_user_settings(&b, to, NULL, addrs, 1,
	    AD_SETTINGS_ALL), -1);
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
}
END_TEST

START_TEST(test_event_names)
{
	ck_assert_str_eq(soap_event_name(SOAP_EV_CREATED), "CreatedEvent");
	ck_assert_str_eq(soap_event_name(SOAP_EV_FREEBUSY),
	    "FreeBusyChangedEvent");
	ck_assert_str_eq(soap_event_name(SOAP_EV_NEWMAIL), "NewMailEvent");
	ck_assert_ptr_null(soap_event_name(SOAP_EV_CREATED |
	    SOAP_EV_MODIFIED));
	ck_assert_ptr_null(soap_event_name(0));
}
END_TEST

static Suite *
soap_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("soap");
	tc = tcase_create("requests");
	tcase_set_timeout(tc, 30);
	tcase_add_unchecked_fixture(tc, schema_setup, schema_teardown);
	tcase_add_test(tc, test_subscribe);
	tcase_add_test(tc, test_streaming_events);
	tcase_add_test(tc, test_calendar_requests);
	tcase_add_test(tc, test_notification_result);
	tcase_add_test(tc, test_escaping);
	tcase_add_test(tc, test_impersonation);
	suite_add_tcase(s, tc);
	tc = tcase_create("limits");
	tcase_add_test(tc, test_ranges);
	tcase_add_test(tc, test_event_names);
	tcase_add_test(tc, test_user_settings);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(soap_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	xmlCleanupParser();
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
