/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the subset reader takes the EWS answers the daemon reads,
 * refuses what it must leave to libxml2, and gives the streaming reader
 * exactly the events libxml2 gives it: every element, name, namespace,
 * attribute and text of every fixture and corpus file, cut short and
 * mutated (a fixed seed), read both ways and compared.
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "ews/soap.h"
#include "ews/xmlread.h"
#include "ews/xmlscan.h"
#include "ews/xmlsubset.h"

#include "proto_test.h"

#define MUTATIONS	100
#define XSI_NS		"http://www.w3.org/2001/XMLSchema-instance"

static const char *const dirs[] = {
	"tests/fixtures", "tests/fuzz/corpus/ews_parse",
	"tests/fuzz/corpus/stream"
};

/* Attributes the trace reads on every element (EWS answers' own). */
static const char *const anames[] = {
	"Id", "ChangeKey", "ResponseClass", "Name", "MajorVersion",
	"MinorVersion", "Version", "Key", "Kind", "nil", "x"
};

/* Every element at every depth, all of its text: rows chained. */
static struct xr_shape	 trace_rows[XR_MAX_SHAPES];

static void
trace_start(struct xr *x, unsigned row, void *arg)
{
	struct buf	*b = arg;
	const char	*v;
	size_t		 i;

	buf_printf(b, "<%u %s {%s} parent=%s", row, xr_name(x),
	    xr_uri(x) != NULL ? xr_uri(x) : "-", xr_parent_name(x));
	for (i = 0; i < sizeof anames / sizeof anames[0]; i++) {
		if ((v = xr_attr(x, anames[i], NULL)) != NULL)
			buf_printf(b, " %s=[%s]", anames[i], v);
		if ((v = xr_attr(x, anames[i], XSI_NS)) != NULL)
			buf_printf(b, " xsi:%s=[%s]", anames[i], v);
		if ((v = xr_attr(x, anames[i], SOAP_NS_T)) != NULL)
			buf_printf(b, " t:%s=[%s]", anames[i], v);
	}
	buf_puts(b, ">\n");
}

static void
trace_end(struct xr *x, unsigned row, const char *text, void *arg)
{
	buf_printf(arg, "</%u %s [%s]>\n", row, xr_name(x),
	    text != NULL ? text : "(null)");
}

static const struct xr_parser trace = {
	trace_rows, XR_MAX_SHAPES, trace_start, trace_end, NULL
};

static void
trace_init(void)
{
	unsigned	 i;

	trace_rows[0].flags = XR_TEXT;
	for (i = 1; i < XR_MAX_SHAPES; i++) {
		trace_rows[i].parent = (uint8_t)(i - 1);
		trace_rows[i].flags = XR_EACH | XR_TEXT;
	}
}

/* The trace of one read, subset reader on or off. */
static int
read_trace(const char *d, size_t len, bool subset, struct buf *b)
{
	char	*cause = NULL;
	int	 rc;

	buf_reset(b);
	xr_set_subset(subset);
	rc = xr_read(&trace, b, d, len, &cause);
	xr_set_subset(true);
	buf_printf(b, "rc %d cause %s\n", rc, cause != NULL ? cause : "-");
	free(cause);
	return (rc);
}

static unsigned	 checked, taken, mutated, mutated_taken;
static struct xs_doc	 xs;

/* Both ways alike; counts the documents the subset reader took. */
static void
same(const char *what, const char *d, size_t len)
{
	struct buf	 a = BUF_INIT, b = BUF_INIT;

	checked++;
	if (xs_read(&xs, d, len) == 0)
		taken++;
	read_trace(d, len, true, &a);
	read_trace(d, len, false, &b);
	if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) {
		fprintf(stderr, "%s (%zu bytes):\n%.*s\n-- subset:\n%s"
		    "-- libxml2:\n%s", what, len, (int)len, d, buf_str(&a),
		    buf_str(&b));
		ck_abort_msg("%s: the readers disagree (see above)", what);
	}
	buf_free(&a);
	buf_free(&b);
}

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static size_t
pick(size_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (n == 0 ? 0 : (size_t)(rng_state % n));
}

/* Pieces a mutation inserts: what each reader treats specially. */
static const char *const snippets[] = {
	" ", "\t", "\n", "  \n ", "\r\n", "\r", "&amp;", "&lt;&gt;",
	"&quot;&apos;", "&#38;", "&#x41;", "&#65;", "&#x10FFFF;", "&#xD;",
	"&#0;", "&#xFFFE;", "&bogus;", "&", "&#;", "<!---->", "<?p x?>",
	"<![CDATA[ c ]]>", "]]>", "é", "\xc3", "\xef\xbf\xbf", "\xed\xa0\x80",
	"\xf0\x9f\x98\x80", "<x/>", "<x> </x>", "<q:y/>", "<x a='1'/>",
	" x=\"v\"", " x='a&amp;b'", " x=\"a\tb\nc\"", " x=\"<\"",
	" t:Id=\"v\"", " xsi:nil=\"true\"", " xmlns=\"\"", " xmlns=\"urn:d\"",
	" xmlns:q=\"urn:q\"", " xmlns:q=\"\"", " xml:lang=\"en\"",
	" xmlns:t=\"" SOAP_NS_M "\"", " Id=\"1\" Id=\"2\"", "/", "=", "\"",
	"'", "<", ">", ":", "x:", "<?xml version=\"1.0\"?>", "\0"
};

static void
mutate(const char *d, size_t len, struct buf *out)
{
	const char	*s;
	size_t		 a = pick(len + 1), b, slen;

	buf_reset(out);
	switch (pick(4)) {
	case 0:
	case 1:		/* a snippet anywhere */
		s = snippets[pick(sizeof snippets / sizeof snippets[0])];
		slen = *s == '\0' ? 1 : strlen(s);
		buf_append(out, d, a);
		buf_append(out, s, slen);
		buf_append(out, d + a, len - a);
		break;
	case 2:		/* a span deleted */
		b = a + pick(len - a + 1) % 32;
		buf_append(out, d, a);
		buf_append(out, d + b, len - b);
		break;
	default:	/* one byte changed */
		buf_append(out, d, len);
		if (len > 0)
			out->data[pick(len)] = " \t\n<>&/=\"':x;#"[pick(14)];
		break;
	}
}

/* One file: whole, cut short, mutated. */
static void
corpus_file(const char *path, const char *doc, size_t len, void *arg)
{
	struct buf	 m = BUF_INIT;
	unsigned	*whole = arg, j;
	char		*what, *once;
	size_t		 k, olen;

	if (xs_read(&xs, doc, len) == 0)
		(*whole)++;
	same(path, doc, len);
	for (k = 0; k < len; k += k < 300 ? 13 : 151) {
		xasprintf(&what, "%s cut at %zu", path, k);
		same(what, doc, k);
		free(what);
	}
	for (j = 0; j < MUTATIONS; j++) {
		mutate(doc, len, &m);
		if (j % 2 == 0) {
			olen = m.len;
			once = xmalloc(olen + 1);
			memcpy(once, m.data, olen);
			mutate(once, olen, &m);
			free(once);
		}
		xasprintf(&what, "%s mutation %u", path, j);
		mutated++;
		if (xs_read(&xs, m.data, m.len) == 0)
			mutated_taken++;
		same(what, m.data, m.len);
		free(what);
	}
	buf_free(&m);
}

START_TEST(test_corpus)
{
	unsigned	 files, whole = 0;

	trace_init();
	files = pt_each_file(dirs, sizeof dirs / sizeof dirs[0],
	    corpus_file, &whole);
	ck_assert_uint_ge(files, 40);
	/* The answers as servers write them are read without libxml2. */
	ck_assert_msg(whole * 10 >= files * 7, "subset took %u of %u files",
	    whole, files);
	/* Mutations reach both readers. */
	ck_assert_msg(mutated_taken > mutated / 20 &&
	    mutated_taken < mutated * 4 / 5, "subset took %u of %u mutations",
	    mutated_taken, mutated);
	fprintf(stderr, "xmlsubset: %u documents from %u files (%u whole "
	    "ones, %u of %u mutations, %u in all in the subset), both "
	    "readers alike\n", checked, files, whole, mutated_taken, mutated,
	    taken);
}
END_TEST

/* What the daemon reads most: taken, and read as libxml2 reads it. */
START_TEST(test_fixtures_taken)
{
	static const char *const names[] = {
		"oof-realserver.xml", "oof-scheduled.xml",
		"oof-disabled.xml", "finditem-calendarview.xml",
		"finditem-realserver.xml", "stream-heartbeat.xml",
		"send-notification.xml",
		"subscribe-streaming.xml", "getevents.xml"
	};
	char		*doc;
	size_t		 i, len;

	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		doc = pt_fixture(names[i], &len);
		ck_assert_msg(xs_read(&xs, doc, len) == 0, "%s not taken",
		    names[i]);
		ck_assert_uint_gt(xs.nev, 4);
		free(doc);
	}
	xs_free(&xs);
}
END_TEST

static const char *
first_text(const struct xs_doc *d)
{
	static char	 t[256];
	size_t		 i;

	for (i = 0; i < d->nev; i++)
		if (d->ev[i].kind == XS_TEXT) {
			snprintf(t, sizeof t, "%.*s", (int)d->ev[i].a,
			    d->ev[i].name);
			return (t);
		}
	return ("");
}

START_TEST(test_decoding)
{
	const char	*d;

	d = "<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\n"
	    "<a xmlns='urn:d' xmlns:p=\"urn:p\"> <p:b p:k='x&#9;&lt;"
	    "\ty' k=\"&#x20AC;\">&lt;&amp;&gt;&quot;&apos; &#233;\xc3\xa9"
	    "</p:b>\n<c xmlns=''/></a>\n";
	ck_assert_int_eq(xs_read(&xs, d, strlen(d)), 0);
	ck_assert_uint_eq(xs.nev, 7);	/* a, b, text, /b, c, /c, /a */
	ck_assert_str_eq(xs.ev[0].name, "a");
	ck_assert_str_eq(xs.ev[0].uri, "urn:d");
	ck_assert_uint_eq(xs.ev[0].n, 0);
	ck_assert_str_eq(xs.ev[1].name, "b");
	ck_assert_str_eq(xs.ev[1].uri, "urn:p");
	ck_assert_uint_eq(xs.ev[1].n, 2);
	ck_assert_str_eq(xs.attrs[0].local, "k");
	ck_assert(xs.attrs[0].prefixed);
	ck_assert_str_eq(xs.attrs[0].uri, "urn:p");
	ck_assert_str_eq(xs.attrs[0].value, "x\t< y");
	ck_assert(!xs.attrs[1].prefixed);
	ck_assert_ptr_null(xs.attrs[1].uri);
	ck_assert_str_eq(xs.attrs[1].value, "\xe2\x82\xac");
	ck_assert_str_eq(first_text(&xs), "<&>\"' \xc3\xa9\xc3\xa9");
	ck_assert_str_eq(xs.ev[4].name, "c");
	ck_assert_ptr_null(xs.ev[4].uri);	/* xmlns="" */
	xs_free(&xs);
}
END_TEST

/* Not in the subset: left to libxml2. */
START_TEST(test_refused)
{
	static const char *const docs[] = {
		"", " ", "<a>", "<a></b>", "<a/><b/>", "<a/>x", "x<a/>",
		"<a><!-- c --></a>", "<a><?p?></a>", "<a><![CDATA[x]]></a>",
		"<!DOCTYPE a><a/>", "<a>\r\n</a>", "<a>&bogus;</a>",
		"<a>&#0;</a>", "<a>&#xFFFE;</a>", "<a>]]></a>", "<a>\x01</a>",
		"<a>\xc3</a>", "<a>\xc0\x80</a>", "<a>\xed\xa0\x80</a>",
		"<a>\xef\xbf\xbe</a>", "<p:a/>", "<a p:x='1'/>",
		"<a x='1' x='2'/>", "<a xml:space='preserve'/>",
		"<a xmlns='u&amp;'/>",
		"<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>", "<a x='<'/>",
		"<a x='1'y='2'/>",
		"<a xmlns:p=''/>", "<xmlns:a/>",
		"<a xmlns:xml='u'/>", "<a>x<b/></a>", "<a><b/>x</a>",
		"<a>&amp;<b/></a>", "<?xml version='1.1'?><a/>",
		"<?xml version='1.0' encoding='ISO-8859-1'?><a/>",
		"\xef\xbb\xbf<a/>", "<a:b:c/>", "<1a/>", "<a>\0</a>",
	};
	size_t		 i, len;

	for (i = 0; i < sizeof docs / sizeof docs[0]; i++) {
		len = strlen(docs[i]);
		ck_assert_msg(xs_read(&xs, docs[i], len) == -1, "taken: %s",
		    docs[i]);
	}
	/* A NUL inside: the bytes, not the C string. */
	ck_assert_int_eq(xs_read(&xs, "<a>\0</a>", 8), -1);
	/* Nested deeper than the limit. */
	{
		struct buf	 b = BUF_INIT;

		for (i = 0; i <= XS_MAX_DEPTH; i++)
			buf_puts(&b, "<a>");
		for (i = 0; i <= XS_MAX_DEPTH; i++)
			buf_puts(&b, "</a>");
		ck_assert_int_eq(xs_read(&xs, b.data, b.len), -1);
		buf_reset(&b);
		for (i = 0; i < XS_MAX_DEPTH; i++)
			buf_puts(&b, "<a>");
		for (i = 0; i < XS_MAX_DEPTH; i++)
			buf_puts(&b, "</a>");
		ck_assert_int_eq(xs_read(&xs, b.data, b.len), 0);
		/* The pre-scan's other limits: attributes, nodes. */
		buf_reset(&b);
		buf_puts(&b, "<a");
		for (i = 0; i < XML_MAX_ATTRS; i++)
			buf_printf(&b, " a%zu='1'", i);
		buf_puts(&b, "/>");
		ck_assert_int_eq(xs_read(&xs, b.data, b.len), 0);
		b.len -= 2;
		buf_puts(&b, " z='1'/>");
		ck_assert_int_eq(xs_read(&xs, b.data, b.len), -1);
		ck_assert_int_eq(xml_prescan(b.data, b.len, &xml_limits_default,
		    NULL), -1);
		/* Size: up to XS_MAX_DOC bytes. */
		buf_reset(&b);
		buf_puts(&b, "<a>");
		while (b.len < XS_MAX_DOC - 4)
			buf_putc(&b, 'x');
		buf_puts(&b, "</a>");
		ck_assert_int_eq(xs_read(&xs, b.data, b.len), 0);
		buf_putc(&b, ' ');
		ck_assert_int_eq(xs_read(&xs, b.data, b.len), -1);
		buf_free(&b);
	}
	xs_free(&xs);
}
END_TEST

/* Each refused document still reads as libxml2 reads it. */
START_TEST(test_blanks_alike)
{
	static const char *const docs[] = {
		"<a>  <b> x </b>\n\t<c>  </c> <d/> </a>",
		"<a><b>  </b></a>", "<a>\n</a>", "<a> <b/></a>",
		"<a xmlns='urn:x' xmlns:y='urn:y'><y:b y:Id='1' Id='2'>t"
		    "</y:b><b xmlns='urn:z'/></a>",
		"<a>x<b/> y</a>", "<a><!-- c -->  <b/></a>",
	};
	struct buf	 a = BUF_INIT;
	size_t		 i;

	trace_init();
	for (i = 0; i < sizeof docs / sizeof docs[0]; i++)
		same(docs[i], docs[i], strlen(docs[i]));
	read_trace(docs[0], strlen(docs[0]), true, &a);
	ck_assert_msg(strstr(buf_str(&a), "</1 b [x]>") != NULL &&
	    strstr(buf_str(&a), "</0 a [x]>") != NULL, "%s", buf_str(&a));
	buf_free(&a);
}
END_TEST

static Suite *
xmlsubset_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("xmlsubset");
	tc = tcase_create("subset");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_fixtures_taken);
	tcase_add_test(tc, test_decoding);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_blanks_alike);
	tcase_add_test(tc, test_corpus);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(xmlsubset_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	xs_free(&xs);
	xr_cleanup();
	xmlCleanupParser();
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
