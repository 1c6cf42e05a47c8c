/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the xmpp sink's stream reader and writers.  A server's
 * stream in one piece and byte by byte gives the same events; DTDs,
 * entities, processing instructions, deep nesting and huge stanzas are
 * refused; the handshake is SHA-1 of id and secret; stanzas escape.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "sinks/xmpp_stream.h"

/* Every event as one line: "open id", "stanza name type from to child". */
static void
record(enum xmpp_event ev, const struct xmpp_stanza *st, void *arg)
{
	struct buf	*b = arg;

	switch (ev) {
	case XMPP_EV_OPEN:
		buf_printf(b, "open %s %s\n", st->id ? st->id : "-",
		    st->from ? st->from : "-");
		break;
	case XMPP_EV_STANZA:
		buf_printf(b, "stanza %s %s %s %s %s %s\n", st->name,
		    st->type ? st->type : "-", st->from ? st->from : "-",
		    st->to ? st->to : "-", st->child ? st->child : "-",
		    st->ns[0] ? st->ns : "-");
		break;
	case XMPP_EV_CLOSE:
		buf_puts(b, "close\n");
		break;
	}
}

static const char stream[] =
    "<?xml version='1.0'?><stream:stream "
    "xmlns:stream='http://etherx.jabber.org/streams' "
    "xmlns='jabber:component:accept' from='presence.localhost' "
    "id='3BF96D32'>"
    "<handshake/>"
    "<presence from='w@localhost/res' to='a@presence.localhost' "
    "type='subscribe'><status>let me &amp; see</status></presence>"
    "<iq type='get' id='i1' from='w@localhost' to='presence.localhost'>"
    "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    "<stream:error><not-authorized "
    "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
    "</stream:stream>";

static const char want[] =
    "open 3BF96D32 presence.localhost\n"
    "stanza handshake - - - - jabber:component:accept\n"
    "stanza presence subscribe w@localhost/res a@presence.localhost "
    "status jabber:component:accept\n"
    "stanza iq get w@localhost presence.localhost query "
    "jabber:component:accept\n"
    "stanza error - - - not-authorized http://etherx.jabber.org/streams\n"
    "close\n";

START_TEST(test_reader_whole_and_bytewise)
{
	struct xmpp_reader	*r;
	struct buf		 got = BUF_INIT;
	char			*cause = NULL;
	size_t			 i;

	r = xmpp_reader_new(record, &got);
	ck_assert_int_eq(xmpp_reader_feed(r, stream, strlen(stream), &cause),
	    0);
	xmpp_reader_free(r);
	ck_assert_str_eq(buf_str(&got), want);
	buf_free(&got);

	r = xmpp_reader_new(record, &got);
	for (i = 0; i < strlen(stream); i++)
		ck_assert_int_eq(xmpp_reader_feed(r, stream + i, 1, &cause),
		    0);
	xmpp_reader_free(r);
	ck_assert_str_eq(buf_str(&got), want);
	buf_free(&got);
}
END_TEST

static void
refused(const char *text, const char *why)
{
	struct xmpp_reader	*r;
	struct buf		 got = BUF_INIT;
	char			*cause = NULL;

	r = xmpp_reader_new(record, &got);
	ck_assert_msg(xmpp_reader_feed(r, text, strlen(text), &cause) == -1,
	    "accepted (%s): %.60s", why, text);
	ck_assert_msg(strstr(cause, why) != NULL, "'%s' does not say '%s'",
	    cause, why);
	free(cause);
	/* Unusable afterwards, without crashing. */
	ck_assert_int_eq(xmpp_reader_feed(r, "<x/>", 4, &cause), -1);
	free(cause);
	xmpp_reader_free(r);
	buf_free(&got);
}

#define HEAD	"<stream:stream xmlns:stream='http://etherx.jabber.org/" \
		"streams' xmlns='jabber:component:accept' id='1'>"

START_TEST(test_reader_refuses)
{
	struct buf	 b = BUF_INIT;
	int		 i;

	refused("<!DOCTYPE x [<!ENTITY a 'b'>]>" HEAD, "DOCTYPE");
	refused(HEAD "<presence>&lol;</presence>", "entit");
	refused(HEAD "<?evil x?>", "processing instruction");
	refused("<stream xmlns='jabber:client'>", "not an XMPP stream");
	refused(HEAD "<a><b></a>", "");
	refused("<html><body>", "not an XMPP stream");

	buf_puts(&b, HEAD);
	for (i = 0; i < 40; i++)
		buf_puts(&b, "<x>");
	refused(buf_str(&b), "too deep");
	buf_free(&b);

	buf_puts(&b, HEAD "<message><body>");
	/* Counted in 4 KiB steps once inside the stanza: go well over. */
	for (i = 0; i < XMPP_STANZA_MAX / 16 + 1024; i++)
		buf_puts(&b, "0123456789abcdef");
	refused(buf_str(&b), "too large");
	buf_free(&b);
}
END_TEST

START_TEST(test_writers)
{
	struct buf	 b = BUF_INIT;

	/* SHA-1("3BF96D32" "sesame"), computed independently. */
	xmpp_write_handshake(&b, "3BF96D32", "sesame");
	ck_assert_str_eq(buf_str(&b), "<handshake>7a98dc4c9e92493d7fd66a25364c8"
	    "62637789c45</handshake>");
	buf_free(&b);

	xmpp_write_open(&b, "presence.example.com");
	ck_assert_ptr_nonnull(strstr(buf_str(&b),
	    "xmlns='jabber:component:accept'"));
	ck_assert_ptr_nonnull(strstr(buf_str(&b),
	    "to='presence.example.com'>"));
	buf_free(&b);

	xmpp_write_presence(&b, "a@p", "w@h", NULL, "dnd", "In a <meeting> & "
	    "'out'");
	ck_assert_str_eq(buf_str(&b), "<presence from='a@p' to='w@h'><show>dnd"
	    "</show><status>In a &lt;meeting&gt; &amp; &apos;out&apos;"
	    "</status></presence>");
	buf_free(&b);
	xmpp_write_presence(&b, "a@p", "w@h", NULL, NULL, "Available");
	ck_assert_str_eq(buf_str(&b), "<presence from='a@p' to='w@h'>"
	    "<status>Available</status></presence>");
	buf_free(&b);
	xmpp_write_presence(&b, "a@p", "w'x@h", "unavailable", "dnd", NULL);
	ck_assert_str_eq(buf_str(&b), "<presence from='a@p' to='w&apos;x@h' "
	    "type='unavailable'/>");
	buf_free(&b);
	xmpp_write_iq_error(&b, "p", "w@h/r", "q&1");
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "id='q&amp;1'"));
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "<service-unavailable"));
	buf_free(&b);
}
END_TEST

static Suite *
xmpp_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("xmpp");
	tc = tcase_create("core");
	tcase_add_test(tc, test_reader_whole_and_bytewise);
	tcase_add_test(tc, test_reader_refuses);
	tcase_add_test(tc, test_writers);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(xmpp_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	xmlCleanupParser();
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
