/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the xmpp sink's stream reader and writers.  A server's
 * stream in one piece and byte by byte gives the same events; DTDs,
 * entities, processing instructions, deep nesting and huge stanzas are
 * refused; the handshake is SHA-1 of id and secret; stanzas escape.
 * Then the sink itself against a fake component port on loopback: what
 * a reload's new instance takes over from the old one.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>

#include "base/buf.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "sinks/sinks.h"
#include "sinks/xmpp_stream.h"
#include "sinktest.h"

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

/* ---- the sink against a fake component port ---- */

/*
 * One XMPP server's component port, as far as the sink needs: it
 * answers the stream header and the handshake (any secret) and keeps
 * everything the sink sent on its latest connection.
 */
struct fake_comp {
	struct evconnlistener	*l;
	uint16_t		 port;
	struct bufferevent	*bev;		/* the latest connection */
	struct buf		 in;		/* what came on it */
	unsigned		 accepts;
	unsigned		 handshakes;
	unsigned		 closed;	/* connections the sink ended */
	bool			 greeted;
};

static void
comp_read(struct bufferevent *bev, void *arg)
{
	struct fake_comp	*f = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	char			 chunk[4096];
	size_t			 n;
	static const char	 hdr[] = "<?xml version='1.0'?><stream:stream "
	    "xmlns:stream='http://etherx.jabber.org/streams' "
	    "xmlns='jabber:component:accept' from='presence.test' "
	    "id='s1'>";

	while ((n = evbuffer_remove(in, chunk, sizeof chunk)) > 0)
		buf_append(&f->in, chunk, n);
	if (!f->greeted && strstr(buf_str(&f->in), "<stream:stream") !=
	    NULL) {
		f->greeted = true;
		bufferevent_write(bev, hdr, sizeof hdr - 1);
	}
	if (f->greeted && strstr(buf_str(&f->in), "</handshake>") != NULL &&
	    strstr(buf_str(&f->in), "<handshake/>") == NULL) {
		f->handshakes++;
		bufferevent_write(bev, "<handshake/>", 12);
		/* Marks the handshake answered. */
		buf_puts(&f->in, "<handshake/>");
	}
}

static void
comp_event(struct bufferevent *bev, short what, void *arg)
{
	struct fake_comp	*f = arg;

	if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) == 0)
		return;
	f->closed++;
	bufferevent_free(bev);
	if (f->bev == bev)
		f->bev = NULL;
}

static void
comp_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct fake_comp	*f = arg;

	if (f->bev != NULL)
		bufferevent_free(f->bev);
	f->accepts++;
	f->greeted = false;
	buf_reset(&f->in);
	f->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(f->bev, comp_read, NULL, comp_event, f);
	bufferevent_enable(f->bev, EV_READ | EV_WRITE);
}

static void
comp_start(struct fake_comp *f, struct event_base *base)
{
	struct sockaddr_in	 sin;
	socklen_t		 sl = sizeof sin;

	memset(f, 0, sizeof *f);
	buf_init(&f->in);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->l = evconnlistener_new_bind(base, comp_accept, f,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8,
	    (struct sockaddr *)&sin, sizeof sin);
	ck_assert_ptr_nonnull(f->l);
	ck_assert_int_eq(getsockname(evconnlistener_get_fd(f->l),
	    (struct sockaddr *)&sin, &sl), 0);
	f->port = ntohs(sin.sin_port);
}

static void
comp_stop(struct fake_comp *f)
{
	if (f->bev != NULL)
		bufferevent_free(f->bev);
	evconnlistener_free(f->l);
	buf_free(&f->in);
}

/* Run until what the latest connection carried holds text. */
static bool
comp_wait(struct event_base *base, struct fake_comp *f, const char *text,
    int ms)
{
	int64_t	 end = time_mono_ms() + ms;

	while (strstr(buf_str(&f->in), text) == NULL) {
		if (time_mono_ms() >= end)
			return (false);
		sinktest_run(base, 20);
	}
	return (true);
}

/* Run until the sink says it is online (its handshake answered). */
static bool
online(struct event_base *base, struct ewsgw_sink *s, int ms)
{
	int64_t	 end = time_mono_ms() + ms;
	char	 detail[300];

	while (sink_xmpp_ops.health(s, detail, sizeof detail) != 1) {
		if (time_mono_ms() >= end)
			return (false);
		sinktest_run(base, 20);
	}
	return (true);
}

/* A probe of jid from w@test, as a subscriber's server sends it. */
static void
comp_probe(struct fake_comp *f, const char *jid)
{
	char	 st[200];

	snprintf(st, sizeof st, "<presence from='w@test/r' to='%s' "
	    "type='probe'/>", jid);
	ck_assert_ptr_nonnull(f->bev);
	bufferevent_write(f->bev, st, strlen(st));
}

#define DND_A	"<presence from='a@presence.test' to='w@test'><show>dnd" \
		"</show><status>In a meeting</status></presence>"
#define DND_XA	"<presence from='x-a@presence.test' to='w@test'><show>dnd" \
		"</show><status>In a meeting</status></presence>"

/* What the host does at a reload; h's log must say said. */
static void
replace(struct ewsgw_sink *s, struct ewsgw_sink *old, struct sinktest *h,
    const char *said)
{
	sink_xmpp_ops.takeover(s, old);
	sink_xmpp_ops.destroy(old);
	ck_assert_msg(strstr(buf_str(&h->log), said) != NULL, "%s",
	    buf_str(&h->log));
}

START_TEST(test_takeover)
{
	struct event_base	*base = event_base_new();
	struct fake_comp	 f, g;
	struct sinktest		 h1, h2, h3, h4;
	struct ewsgw_sink	*s1, *s2, *s3, *s4;
	char			 dir[] = "/tmp/check_xmpp.XXXXXX";
	char			 secret[64], kfile[80], kf[40], kg[40];
	const char		*kv1[] = { NULL, "domain=presence.test", NULL,
	    "timeout=5s", NULL };
	const char		*kv2[] = { NULL, "domain=presence.test", NULL,
	    "timeout=4s", NULL };
	const char		*kv3[] = { NULL, "domain=presence.test", NULL,
	    "timeout=4s", "jid=x-%l@presence.test", NULL };
	const char		*kv4[] = { NULL, "domain=presence.test", NULL,
	    "timeout=4s", "jid=x-%l@presence.test", NULL };
	FILE			*fp;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(secret, sizeof secret, "%s/secret", dir);
	ck_assert_ptr_nonnull(fp = fopen(secret, "w"));
	fputs("sesame\n", fp);
	fclose(fp);
	ck_assert_int_eq(chmod(secret, 0600), 0);
	snprintf(kfile, sizeof kfile, "secret_file=%s", secret);
	comp_start(&f, base);
	comp_start(&g, base);
	snprintf(kf, sizeof kf, "server=127.0.0.1:%u", f.port);
	snprintf(kg, sizeof kg, "server=127.0.0.1:%u", g.port);
	kv1[0] = kv2[0] = kv3[0] = kf;
	kv4[0] = kg;
	kv1[2] = kv2[2] = kv3[2] = kv4[2] = kfile;
	sinktest_init(&h1, base, "xmpp");
	sinktest_init(&h2, base, "xmpp");
	sinktest_init(&h3, base, "xmpp");
	sinktest_init(&h4, base, "xmpp");

	s1 = sinktest_create(&h1, &sink_xmpp_ops, kv1);
	ck_assert(online(base, s1, 10000));
	ck_assert_uint_eq(f.handshakes, 1);
	ck_assert_int_eq(sinktest_publish(&h1, &sink_xmpp_ops, s1, "a@x",
	    "busy", "meeting", 1), EWSGW_SINK_OK);
	comp_probe(&f, "a@presence.test");
	ck_assert(comp_wait(base, &f, DND_A, 5000));

	/* Another timeout: the stream stays, and so does a's presence. */
	buf_reset(&f.in);
	s2 = sinktest_create(&h2, &sink_xmpp_ops, kv2);
	replace(s2, s1, &h2, "presence of 1 JIDs taken over, 0 to announce; "
	    "keeping the stream");
	comp_probe(&f, "a@presence.test");
	ck_assert_msg(comp_wait(base, &f, DND_A, 5000), "probe answered: %s",
	    buf_str(&f.in));
	ck_assert_uint_eq(f.accepts, 1);
	ck_assert_uint_eq(f.handshakes, 1);
	ck_assert_int_eq(sinktest_publish(&h2, &sink_xmpp_ops, s2, "a@x",
	    "away", "out-of-office", 2), EWSGW_SINK_OK);
	ck_assert(comp_wait(base, &f, "<presence from='a@presence.test' "
	    "to='w@test'><show>xa</show>", 5000));

	/* Another JID pattern: the old JID goes unavailable for its
	 * subscriber, the new one answers probes. */
	ck_assert_int_eq(sinktest_publish(&h2, &sink_xmpp_ops, s2, "a@x",
	    "busy", "meeting", 3), EWSGW_SINK_OK);
	buf_reset(&f.in);
	s3 = sinktest_create(&h3, &sink_xmpp_ops, kv3);
	replace(s3, s2, &h3, "presence of 1 JIDs taken over, 2 to announce; "
	    "keeping the stream");
	ck_assert(comp_wait(base, &f, "<presence from='a@presence.test' "
	    "to='w@test' type='unavailable'/>", 5000));
	comp_probe(&f, "x-a@presence.test");
	ck_assert(comp_wait(base, &f, DND_XA, 5000));
	ck_assert_uint_eq(f.handshakes, 1);

	/* Another server: a new stream, which answers as the old did and
	 * knows the subscriber. */
	s4 = sinktest_create(&h4, &sink_xmpp_ops, kv4);
	replace(s4, s3, &h4, "presence of 1 JIDs taken over, 0 to announce; "
	    "connecting anew");
	ck_assert(online(base, s4, 10000));
	ck_assert_uint_eq(g.handshakes, 1);
	comp_probe(&g, "x-a@presence.test");
	ck_assert(comp_wait(base, &g, DND_XA, 5000));
	ck_assert_int_eq(sinktest_publish(&h4, &sink_xmpp_ops, s4, "a@x",
	    "available", NULL, 4), EWSGW_SINK_OK);
	ck_assert(comp_wait(base, &g, "<presence from='x-a@presence.test' "
	    "to='w@test'><status>Available</status></presence>", 5000));
	sinktest_run(base, 50);
	ck_assert_uint_eq(f.closed, 1);		/* the old stream ended */

	sink_xmpp_ops.destroy(s4);
	sinktest_free(&h1);
	sinktest_free(&h2);
	sinktest_free(&h3);
	sinktest_free(&h4);
	comp_stop(&f);
	comp_stop(&g);
	unlink(secret);
	rmdir(dir);
	event_base_free(base);
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
	tc = tcase_create("takeover");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_takeover);
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
