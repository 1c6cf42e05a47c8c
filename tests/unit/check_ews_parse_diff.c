/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The streaming EWS parsers against the tree ones on every fixture,
 * every file of the fuzz corpora, each cut short, and each mutated many
 * times over (a fixed seed: the same documents every run); the streaming
 * ones with the subset reader in front of libxml2 and with libxml2 alone.
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
#include "ews/ews_parse.h"
#include "ews/xmlread.h"

#include "ews_parse_diff.h"
#include "proto_test.h"

/* Mutations per file; each is checked. */
#define MUTATIONS	60

static const char *const dirs[] = {
	"tests/fixtures", "tests/fuzz/corpus/ews_parse",
	"tests/fuzz/corpus/stream"
};

/* Pieces a mutation inserts: markup the parsers treat specially. */
static const char *const snippets[] = {
	"<!---->", "<?pi x?>", "&amp;", "&#38;", "&#38;amp;", "&#x20;", " ",
	"\r\n", "\t", "  \n  ", "<![CDATA[ x ]]>", "<![CDATA[]]>",
	" xml:space=\"preserve\"", "<t:Foo/>", "<q:Bar/>", "<x/>", "m:",
	"t:", "q:", " Id=\"a&amp;b\"", " Name=\"BackOffMilliseconds\"",
	"<t:Value Name=\"BackOffMilliseconds\"> 42 </t:Value>",
	" ResponseClass=\"Error\"", " ResponseClass=\"Warning\"",
	" xmlns:q=\"urn:q\"",
	" xmlns=\"http://schemas.microsoft.com/exchange/services/2006/types\"",
	"<t:TimeStamp>2024-01-01T00:00:00Z</t:TimeStamp>",
	"<t:ItemId Id=\"x\"/>", "<t:FolderId Id=\"f\"/>",
	"<t:SubscriptionId>s</t:SubscriptionId>",
	"<m:ResponseCode>ErrorServerBusy</m:ResponseCode>",
	"<m:MessageText>m</m:MessageText>",
	"<a:ErrorMessage xsi:nil=\"true\"/>",
	" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"",
	"<t:Start>bad</t:Start>", "<t:End>2024-01-01T01:00:00Z</t:End>",
	"<t:StatusEvent><t:Watermark>w</t:Watermark></t:StatusEvent>",
};

/* Names a mutation swaps in for an element's. */
static const char *const names[] = {
	"ResponseCode", "MessageText", "MessageXml", "SubscriptionId",
	"Notification", "Notifications", "CalendarItem", "ItemId", "Start",
	"End", "RootFolder", "Items", "ResponseMessages", "ResponseMessage",
	"Watermark", "TimeStamp", "CreatedEvent", "StatusEvent", "MovedEvent",
	"OldItemId", "ParentFolderId", "FolderId", "ConnectionStatus",
	"ErrorSubscriptionIds", "OofState", "Duration", "OofSettings",
	"FreeBusyView", "CalendarEvent", "MergedFreeBusy", "UserResponse",
	"UserSetting", "Value", "Name", "detail", "faultcode", "faultstring",
	"Fault", "Body", "Header", "Envelope", "ServerVersionInfo",
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (rng_state);
}

static size_t
pick(size_t n)
{
	return (n == 0 ? 0 : (size_t)(rng() % n));
}

static unsigned	 checked, accepted;

/*
 * Both ways: with the subset reader in front of libxml2, as the daemon
 * reads, and with libxml2 alone.
 */
static void
check(const char *what, const char *d, size_t len)
{
	char		*report = NULL;
	unsigned	 ok = 0;
	int		 subset;

	checked++;
	for (subset = 1; subset >= 0; subset--) {
		xr_set_subset(subset);
		if (ews_parse_diff(d, len, &report, &ok) != 0) {
			/* check(3) caps its messages: all of it on stderr. */
			fprintf(stderr, "%s (%zu bytes, %s):\n%.*s\n%s", what,
			    len, subset ? "subset reader" : "libxml2 alone",
			    (int)len, d, report);
			ck_abort_msg("%s: the parsers disagree (see above)",
			    what);
		}
		free(report);
		report = NULL;
	}
	xr_set_subset(true);
	if (ok > 0)
		accepted++;
}

/* Where the next start tag from a ends ('>' or "/>"), or len. */
static size_t
tag_end(const char *doc, size_t len, size_t a)
{
	const char	*p;

	for (;;) {
		if ((p = memchr(doc + a, '<', len - a)) == NULL)
			return (len);
		a = (size_t)(p - doc) + 1;
		if (a < len && (doc[a] == '/' || doc[a] == '?' ||
		    doc[a] == '!'))
			continue;
		if ((p = memchr(doc + a, '>', len - a)) == NULL)
			return (len);
		a = (size_t)(p - doc);
		return (a > 0 && doc[a - 1] == '/' ? a - 1 : a);
	}
}

/* Every tag named like the one after a renamed to name. */
static void
rename_all(const char *doc, size_t len, size_t a, const char *name,
    struct buf *out)
{
	const char	*lt, *s;
	char		*old;
	size_t		 i, n, olen;

	if ((lt = memchr(doc + a, '<', len - a)) == NULL) {
		buf_append(out, doc, len);
		return;
	}
	s = lt + 1;
	if (s < doc + len && *s == '/')
		s++;
	for (i = 0; s + i < doc + len && s[i] != ':' && s[i] != '>' &&
	    s[i] != ' ' && s[i] != '/'; i++)
		;
	if (s + i < doc + len && s[i] == ':')
		s += i + 1;
	for (i = 0; s + i < doc + len && s[i] != '>' && s[i] != ' ' &&
	    s[i] != '/'; i++)
		;
	if (i == 0) {
		buf_append(out, doc, len);
		return;
	}
	old = xstrndup(s, i);
	olen = i;
	for (n = 0; n < len; n++) {
		/* A name right after '<', "</" or a prefix's ':' in a tag. */
		if (n + olen < len && memcmp(doc + n, old, olen) == 0 &&
		    n > 0 && (doc[n - 1] == '<' || doc[n - 1] == ':' ||
		    doc[n - 1] == '/') && (doc[n + olen] == '>' ||
		    doc[n + olen] == ' ' || doc[n + olen] == '/')) {
			buf_puts(out, name);
			n += olen - 1;
			continue;
		}
		buf_putc(out, doc[n]);
	}
	free(old);
}

/* One random change of doc into out. */
static void
mutate(const char *doc, size_t len, struct buf *out)
{
	const char	*snip;
	size_t		 a, b, n;

	buf_reset(out);
	a = pick(len + 1);
	switch (rng() % 7) {
	case 0:		/* a snippet in content or in a start tag */
	case 1:
		snip = snippets[pick(sizeof(snippets) / sizeof(snippets[0]))];
		b = tag_end(doc, len, a);
		if (*snip != ' ' && b < len)
			b += doc[b] == '/' ? 2 : 1;	/* after the tag */
		buf_append(out, doc, b);
		buf_puts(out, snip);
		buf_append(out, doc + b, len - b);
		break;
	case 2:		/* rename an element, start and end tags */
	case 3:
		rename_all(doc, len, a, names[pick(sizeof(names) /
		    sizeof(names[0]))], out);
		break;
	case 4:		/* delete a span */
		b = a + pick(len - a + 1) % 64;
		buf_append(out, doc, a);
		buf_append(out, doc + b, len - b);
		break;
	case 5:		/* a character in the text */
		buf_append(out, doc, len);
		if (len > 0)
			out->data[pick(len)] = " \t\n\r<>&/=\"'x:"[rng() % 13];
		break;
	default:	/* a span repeated elsewhere */
		b = a + pick(len - a + 1) % 400;
		n = pick(len + 1);
		buf_append(out, doc, n);
		buf_append(out, doc + a, b - a);
		buf_append(out, doc + n, len - n);
		break;
	}
}

/* One file: whole, cut short, mutated. */
static void
corpus_file(const char *path, const char *doc, size_t len, void *arg)
{
	struct buf	*m = arg;
	char		*what;
	size_t		 k;
	int		 j;

	check(path, doc, len);
	/* Cut short, in the envelope's head and further on. */
	for (k = 0; k < len; k += k < 300 ? 17 : 149) {
		xasprintf(&what, "%s cut at %zu", path, k);
		check(what, doc, k);
		free(what);
	}
	for (j = 0; j < MUTATIONS; j++) {
		mutate(doc, len, m);
		/* Twice mutated, now and then. */
		if (j % 3 == 0) {
			char	*once = xstrdup(buf_str(m));
			size_t	 olen = m->len;

			mutate(once, olen, m);
			free(once);
		}
		xasprintf(&what, "%s mutation %d", path, j);
		check(what, m->data, m->len);
		free(what);
	}
}

START_TEST(test_diff_corpus)
{
	struct buf	 m = BUF_INIT;
	unsigned	 files;

	files = pt_each_file(dirs, sizeof(dirs) / sizeof(dirs[0]),
	    corpus_file, &m);
	buf_free(&m);
	ck_assert_uint_ge(files, 40);
	/* Not everything refused: many mutations still parse. */
	ck_assert_msg(accepted > checked / 5, "only %u of %u documents "
	    "accepted by some parser", accepted, checked);
	fprintf(stderr, "ews_parse_diff: %u documents from %u files, %u "
	    "accepted by some parser, tree and streaming alike\n", checked,
	    files, accepted);
}
END_TEST

/* White space the tree drops: what libxml2 calls ignorable. */
START_TEST(test_diff_blanks)
{
	static const char *const docs[] = {
		"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/"
		    "envelope/\"><s:Body><m:UnsubscribeResponse xmlns:m=\""
		    "http://schemas.microsoft.com/exchange/services/2006/"
		    "messages\"><m:ResponseMessages><m:X ResponseClass=\"Error"
		    "\"><m:ResponseCode><a>Error</a>  <b>Busy</b>\r\n<c/>x"
		    "</m:ResponseCode><m:MessageText><!-- c -->  <!-- d -->y "
		    "<?p?> z</m:MessageText></m:X></m:ResponseMessages>"
		    "</m:UnsubscribeResponse></s:Body></s:Envelope>",
		"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/"
		    "envelope/\"><s:Body><m:UnsubscribeResponse xmlns:m=\""
		    "http://schemas.microsoft.com/exchange/services/2006/"
		    "messages\"><m:ResponseMessages><m:X ResponseClass=\"Error"
		    "\" xml:space=\"preserve\"><m:ResponseCode><a>A</a>  <b>B"
		    "</b></m:ResponseCode><m:MessageText><![CDATA[]]> <a/> q"
		    "</m:MessageText></m:X></m:ResponseMessages>"
		    "</m:UnsubscribeResponse></s:Body></s:Envelope>",
	};
	size_t	 i;

	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		check(docs[i], docs[i], strlen(docs[i]));
}
END_TEST

static Suite *
diff_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("ews_parse_diff");
	tc = tcase_create("diff");
	tcase_set_timeout(tc, 1200);
	tcase_add_test(tc, test_diff_blanks);
	tcase_add_test(tc, test_diff_corpus);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(diff_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	ews_parse_cleanup();
	xmlCleanupParser();
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
