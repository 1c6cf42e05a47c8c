/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the XML pre-scan counts what it must, lets ordinary EWS
 * documents through, and refuses the shapes that make libxml2 slow or
 * big before libxml2 sees them.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "ews/ews_parse.h"
#include "ews/xmlscan.h"
#include "base/xmalloc.h"

#define ENV_OPEN	"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/" \
	"soap/envelope/\"><s:Body><m:SendNotification xmlns:m=\"http://" \
	"schemas.microsoft.com/exchange/services/2006/messages\">"
#define ENV_CLOSE	"</m:SendNotification></s:Body></s:Envelope>"

static const struct xml_limits small = { 4, 3, 2, 20 };

static int
scan(const char *doc, const struct xml_limits *lim, char **cause)
{
	return (xml_prescan(doc, strlen(doc), lim, cause));
}

static void
refused(const char *doc, const struct xml_limits *lim, const char *why)
{
	char	*cause = NULL;

	ck_assert_msg(scan(doc, lim, &cause) == -1, "accepted: %s", doc);
	ck_assert_msg(cause != NULL && strstr(cause, why) != NULL,
	    "%s: cause %s, want %s", doc, cause != NULL ? cause : "-", why);
	free(cause);
}

START_TEST(test_ordinary)
{
	char	*cause = (char *)"unset";

	ck_assert_int_eq(scan("<?xml version=\"1.0\"?><a x='1' y=\"2\">"
	    "text<b/><!-- a > b --><![CDATA[<not><a><tag>]]>"
	    "<c z=\"a>b\" w='\"'/><?pi x > y?></a>", NULL, &cause), 0);
	ck_assert_ptr_null(cause);
	/* Exactly at every limit. */
	ck_assert_int_eq(scan("<a xmlns='1' b='2' c='3'><b xmlns:x='y'>"
	    "<c><d/></c></b></a>", &small, NULL), 0);
	/* Declarations go out of scope with their element. */
	ck_assert_int_eq(scan("<a><b xmlns='1' xmlns:p='2'/><b xmlns='1' "
	    "xmlns:p='2'/><b xmlns='1' xmlns:p='2'></b></a>", &small, NULL),
	    0);
	/* Attribute names that only look like declarations. */
	ck_assert_int_eq(scan("<a xmlnsx='1' xmlnsy='2' xmln='3'/>",
	    &small, NULL), 0);
	ck_assert_int_eq(scan("", &small, NULL), 0);
}
END_TEST

START_TEST(test_limits)
{
	refused("<a b='1' c='2' d='3' e='4'/>", &small, "attributes");
	refused("<a><b><c><d><e/></d></c></b></a>", &small, "deeper");
	refused("<a xmlns='1'><b xmlns:x='2'><c xmlns:y='3'/></b></a>",
	    &small, "namespace");
	refused("<a xmlns='1' xmlns:p='2' xmlns:q='3'/>", &small,
	    "namespace");
	/* 22 nodes: 10 elements, 2 attributes, 9 text runs, a comment. */
	refused("<a>1<b/>2<b/>3<b/>4<b/>5<b x='1' y='2'/>6<!--c--><b/>7<b/>"
	    "8<b/>9<b/></a>", &small, "nodes");
	refused("<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>", NULL, "DOCTYPE");
	refused("<a><!ENTITY e 'x'></a>", NULL, "declaration");
	refused("<a><!x></a>", NULL, "declaration");
}
END_TEST

/*
 * Text runs, attribute values and end tags are passed over whole: what
 * they hold is not markup, and a run counts once however long it is.
 */
START_TEST(test_runs)
{
	static const struct xml_limits four = { 4, 3, 2, 4 };
	static const struct xml_limits three = { 4, 3, 2, 3 };
	static const char doc[] = "<a x='<b><c>' y=\"'>\">t>e>x>t</a b>";
	struct buf	 b = BUF_INIT;
	int		 i;

	/* a, x, y and one text run. */
	ck_assert_int_eq(scan(doc, &four, NULL), 0);
	refused(doc, &three, "nodes");
	/* A long run at the end, with no '<' after it. */
	buf_puts(&b, "<a>");
	for (i = 0; i < 1000; i++)
		buf_puts(&b, "text > text ");
	ck_assert_int_eq(xml_prescan(b.data, b.len, &three, NULL), 0);
	buf_puts(&b, "</a><b/><c/>");
	ck_assert_int_eq(xml_prescan(b.data, b.len, &three, NULL), -1);
	buf_free(&b);
	/* A value never closed: the scan ends with the bytes. */
	ck_assert_int_eq(scan("<a x='<b/><c/><d/><e/>", &three, NULL), 0);
}
END_TEST

/* The shape from the report: one element, ~100k distinct attributes. */
START_TEST(test_attribute_flood)
{
	struct ews_notifications n;
	struct buf		 b = BUF_INIT;
	char			*cause = NULL;
	int			 i;

	buf_puts(&b, ENV_OPEN "<m:ResponseMessages");
	for (i = 0; i < 100000; i++)
		buf_printf(&b, " a%d=\"\"", i);
	buf_puts(&b, "/>" ENV_CLOSE);
	ck_assert_int_eq(xml_prescan(b.data, b.len, NULL, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "attributes"));
	free(cause);
	cause = NULL;
	ck_assert_int_eq(ews_parse_send_notification(b.data, b.len, &n,
	    &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "attributes"));
	free(cause);
	ews_notifications_free(&n);
	buf_free(&b);
}
END_TEST

/*
 * Parse memory: a 2.4 MB answer of empty elements would cost libxml2
 * some 30 times its size; the node count refuses it first.
 */
START_TEST(test_node_flood)
{
	struct ews_response	 r;
	struct buf		 b = BUF_INIT;
	char			*cause = NULL;
	size_t			 i;

	buf_puts(&b, "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/"
	    "envelope/\"><s:Body><m:UnsubscribeResponse xmlns:m=\"http://"
	    "schemas.microsoft.com/exchange/services/2006/messages\">");
	for (i = 0; i <= XML_MAX_NODES; i++)
		buf_puts(&b, "<x/>");
	buf_puts(&b, "</m:UnsubscribeResponse></s:Body></s:Envelope>");
	ck_assert_int_eq(ews_parse_response(b.data, b.len, &r, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "nodes"));
	free(cause);
	ews_response_free(&r);
	buf_free(&b);
}
END_TEST

/* Whatever the input, the scan never reads past len. */
START_TEST(test_truncated)
{
	static const char doc[] = "<a b='1'><![CDATA[x]]><!--y--><?p?></a>";
	size_t	 n;
	char	*copy;

	for (n = 0; n <= sizeof doc - 1; n++) {
		copy = xmalloc(n + 1);
		memcpy(copy, doc, n);
		ck_assert_int_eq(xml_prescan(copy, n, NULL, NULL), 0);
		free(copy);
	}
}
END_TEST

static Suite *
xmlscan_suite(void)
{
	Suite	*s = suite_create("xmlscan");
	TCase	*tc = tcase_create("prescan");

	tcase_add_test(tc, test_ordinary);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_runs);
	tcase_add_test(tc, test_attribute_flood);
	tcase_add_test(tc, test_node_flood);
	tcase_add_test(tc, test_truncated);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(xmlscan_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
