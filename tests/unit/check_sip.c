/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the sip sink's pure parts.  Digest answers against the
 * RFC 2617 and RFC 7616 examples, response parsing (compact headers,
 * folding, challenges), stream framing, the PUBLISH text, PIDF/RPID
 * documents read back with libxml2, SIP URIs, and the mailbox to
 * address mapping with its file.  Then the sink itself against a fake
 * presence server on a loopback UDP port: what a reload's new instance
 * takes over from the old one.
 */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "sinks/addrmap.h"
#include "sinks/sinks.h"
#include "sinks/sip_digest.h"
#include "sinks/sip_msg.h"
#include "sinks/sip_pidf.h"
#include "sinktest.h"

/* ---- digest ---- */

static void
challenge(struct sip_challenge *ch, const char *realm, const char *nonce,
    const char *alg, const char *qop)
{
	memset(ch, 0, sizeof *ch);
	ch->realm = xstrdup(realm);
	ch->nonce = xstrdup(nonce);
	ch->algorithm = alg != NULL ? xstrdup(alg) : NULL;
	ch->qop = qop != NULL ? xstrdup(qop) : NULL;
}

/* The response="..." value of an answer. */
static char *
response_of(const char *answer)
{
	const char	*p = strstr(answer, "response=\"");

	ck_assert_ptr_nonnull(p);
	p += strlen("response=\"");
	return (xstrndup(p, strcspn(p, "\"")));
}

START_TEST(test_digest_rfc2617)
{
	struct sip_challenge	 ch;
	struct buf		 b = BUF_INIT;
	char			*cause = NULL, *r;

	/* RFC 2617 3.5, the worked example. */
	challenge(&ch, "testrealm@host.com",
	    "dcd98b7102dd2f0e8b11d0f600bfb0c093", NULL, "auth,auth-int");
	ch.opaque = xstrdup("5ccc069c403ebaf9f0171e9517f40e41");
	ck_assert_int_eq(sip_digest_answer(&b, &ch, "Mufasa",
	    "Circle Of Life", "GET", "/dir/index.html", 1, "0a4f113b",
	    &cause), 0);
	r = response_of(buf_str(&b));
	ck_assert_str_eq(r, "6629fae49393a05397450978507c4ef1");
	free(r);
	ck_assert_ptr_nonnull(strstr(buf_str(&b),
	    "Digest username=\"Mufasa\""));
	ck_assert_ptr_nonnull(strstr(buf_str(&b), ", qop=auth, nc=00000001, "
	    "cnonce=\"0a4f113b\""));
	ck_assert_ptr_nonnull(strstr(buf_str(&b),
	    "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
	ck_assert_ptr_null(strstr(buf_str(&b), "Circle"));
	buf_free(&b);

	/* Without qop (RFC 2069 compatibility): no nc, no cnonce. */
	free(ch.qop);
	ch.qop = NULL;
	ck_assert_int_eq(sip_digest_answer(&b, &ch, "Mufasa",
	    "Circle Of Life", "GET", "/dir/index.html", 1, "0a4f113b",
	    &cause), 0);
	r = response_of(buf_str(&b));
	ck_assert_str_eq(r, "670fd8c2df070c60b045671b8b24ff02");
	free(r);
	ck_assert_ptr_null(strstr(buf_str(&b), "cnonce"));
	buf_free(&b);
	sip_challenge_clear(&ch);
}
END_TEST

START_TEST(test_digest_sha256_and_sess)
{
	struct sip_challenge	 ch;
	struct buf		 b = BUF_INIT;
	char			*cause = NULL, *r;

	/* RFC 7616 3.9.1, SHA-256. */
	challenge(&ch, "http-auth@example.org",
	    "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "SHA-256",
	    "auth, auth-int");
	ck_assert_int_eq(sip_digest_answer(&b, &ch, "Mufasa",
	    "Circle of Life", "GET", "/dir/index.html", 1,
	    "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", &cause), 0);
	r = response_of(buf_str(&b));
	ck_assert_str_eq(r, "753927fa0e85d155564e2e272a28d1802ca10daf4496"
	    "794697cf8db5856cb6c1");
	free(r);
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "algorithm=SHA-256"));
	buf_free(&b);
	sip_challenge_clear(&ch);

	/* MD5-sess (value computed independently). */
	challenge(&ch, "testrealm@host.com",
	    "dcd98b7102dd2f0e8b11d0f600bfb0c093", "MD5-sess", "auth");
	ck_assert_int_eq(sip_digest_answer(&b, &ch, "Mufasa",
	    "Circle Of Life", "PUBLISH", "sip:alice@example.com", 42,
	    "0a4f113b", &cause), 0);
	r = response_of(buf_str(&b));
	ck_assert_str_eq(r, "3c98f3e1f5c516725ed94cc207abf82e");
	free(r);
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "nc=0000002a"));
	buf_free(&b);
	sip_challenge_clear(&ch);
}
END_TEST

START_TEST(test_digest_refused)
{
	struct sip_challenge	 ch, copy;
	struct buf		 b = BUF_INIT;
	char			*cause = NULL;

	challenge(&ch, "r", "n", "SHA-512-256", NULL);
	ck_assert_int_eq(sip_digest_answer(&b, &ch, "u", "p", "PUBLISH",
	    "sip:a@b", 1, "c", &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "SHA-512-256"));
	free(cause);
	free(ch.algorithm);
	ch.algorithm = NULL;
	ch.qop = xstrdup("auth-int");
	ck_assert_int_eq(sip_digest_answer(&b, &ch, "u", "p", "PUBLISH",
	    "sip:a@b", 1, "c", &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "auth-int"));
	free(cause);
	ck_assert_uint_eq(b.len, 0);

	/* A quote in a value is escaped, the copy is deep. */
	memset(&copy, 0, sizeof copy);
	free(ch.realm);
	ch.realm = xstrdup("a\"b\\c");
	free(ch.qop);
	ch.qop = NULL;
	sip_challenge_copy(&copy, &ch);
	sip_challenge_clear(&ch);
	ck_assert_int_eq(sip_digest_answer(&b, &copy, "u", "p", "PUBLISH",
	    "sip:a@b", 1, "c", &cause), 0);
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "realm=\"a\\\"b\\\\c\""));
	buf_free(&b);
	sip_challenge_clear(&copy);
}
END_TEST

/* ---- responses ---- */

static const char resp_401[] =
    "SIP/2.0 401 Unauthorized\r\n"
    "v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport=5070\r\n"
    "f: <sip:alice@example.com>;tag=1\r\n"
    "t: <sip:alice@example.com>;tag=2\r\n"
    "i: call-1@host\r\n"
    "CSeq: 7 PUBLISH\r\n"
    "WWW-Authenticate: Digest realm=\"auth.test\",\r\n"
    "  nonce=\"Xyz123\", qop=\"auth\", algorithm=MD5, stale=TRUE,\r\n"
    "  opaque=\"op\"\r\n"
    "l: 0\r\n\r\n";

START_TEST(test_response_parse)
{
	struct sip_response	 r;
	char			*cause = NULL;
	static const char	 ok[] =
	    "SIP/2.0 200 OK\r\n"
	    "Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKxyz\r\n"
	    "Call-ID: plain\r\n"
	    "CSeq: 4294967295 PUBLISH\r\n"
	    "SIP-ETag: a.1796.1168.1.0\r\n"
	    "Expires: 1800\r\n"
	    "Content-Length: 0\r\n\r\n";

	ck_assert_int_eq(sip_response_parse(resp_401, strlen(resp_401), &r,
	    &cause), 1);
	ck_assert_int_eq(r.status, 401);
	ck_assert_str_eq(r.branch, "z9hG4bKabc");
	ck_assert_str_eq(r.call_id, "call-1@host");
	ck_assert_uint_eq(r.cseq, 7);
	ck_assert_str_eq(r.cseq_method, "PUBLISH");
	ck_assert(r.has_challenge);
	ck_assert_str_eq(r.challenge.realm, "auth.test");
	ck_assert_str_eq(r.challenge.nonce, "Xyz123");
	ck_assert_str_eq(r.challenge.qop, "auth");
	ck_assert_str_eq(r.challenge.opaque, "op");
	ck_assert_str_eq(r.challenge.algorithm, "MD5");
	ck_assert(r.challenge.stale);
	ck_assert(!r.challenge.proxy);
	ck_assert_ptr_null(r.etag);
	ck_assert_int_eq(r.expires, -1);
	sip_response_clear(&r);

	ck_assert_int_eq(sip_response_parse(ok, strlen(ok), &r, &cause), 1);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.cseq, 4294967295u);
	ck_assert_str_eq(r.etag, "a.1796.1168.1.0");
	ck_assert_int_eq(r.expires, 1800);
	ck_assert(!r.has_challenge);
	sip_response_clear(&r);
}
END_TEST

START_TEST(test_response_proxy_and_bad)
{
	struct sip_response	 r;
	char			*cause = NULL;
	size_t			 i;
	static const char	 p407[] =
	    "SIP/2.0 407 Proxy Authentication Required\r\n"
	    "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: c\r\n"
	    "CSeq: 1 PUBLISH\r\n"
	    "Proxy-Authenticate: Basic realm=\"x\"\r\n"
	    "Proxy-Authenticate: Digest realm=\"p\", nonce=\"n\"\r\n"
	    "Content-Length: 0\r\n\r\n";
	static const char	 p423[] =
	    "SIP/2.0 423 Interval Too Brief\r\n"
	    "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: c\r\n"
	    "CSeq: 1 PUBLISH\r\nMin-Expires: 600\r\n"
	    "Content-Length: 0\r\n\r\n";
	static const char	 req[] =
	    "OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\r\n"
	    "Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
	static const char *const bad[] = {
	    "",
	    "HTTP/1.1 200 OK\r\n\r\n",
	    "SIP/2.0 200 OK\r\nCall-ID: c\r\nCSeq: 1 PUBLISH\r\n\r\n",
	    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
	    "CSeq: 1 PUBLISH\r\n\r\n",
	    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
	    "Call-ID: c\r\nCSeq: x PUBLISH\r\n\r\n",
	    "SIP/2.0 99 Low\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
	    "Call-ID: c\r\nCSeq: 1 PUBLISH\r\n\r\n",
	};

	ck_assert_int_eq(sip_response_parse(p407, strlen(p407), &r, &cause),
	    1);
	ck_assert(r.has_challenge);
	ck_assert(r.challenge.proxy);
	ck_assert_str_eq(r.challenge.realm, "p");
	sip_response_clear(&r);
	ck_assert_int_eq(sip_response_parse(p423, strlen(p423), &r, &cause),
	    1);
	ck_assert_int_eq(r.min_expires, 600);
	sip_response_clear(&r);
	ck_assert_int_eq(sip_response_parse(req, strlen(req), &r, &cause), 0);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cause = NULL;
		ck_assert_msg(sip_response_parse(bad[i], strlen(bad[i]), &r,
		    &cause) == -1, "bad[%zu] accepted", i);
		ck_assert_ptr_nonnull(cause);
		free(cause);
	}
}
END_TEST

/* ---- framing ---- */

START_TEST(test_frame)
{
	struct buf	 b = BUF_INIT;
	size_t		 skip, len, i;
	char		*cause = NULL;
	const char	*two;

	buf_puts(&b, "\r\n\r\n");	/* keep-alive */
	buf_puts(&b, resp_401);
	buf_puts(&b, "SIP/2.0 200 OK\r\nContent-Length:  5 \r\n\r\nhello");
	ck_assert_int_eq(sip_frame(b.data, b.len, SIP_MSG_MAX, &skip, &len,
	    &cause), 1);
	ck_assert_uint_eq(skip, 4);
	ck_assert_uint_eq(len, strlen(resp_401));
	two = b.data + skip + len;
	ck_assert_int_eq(sip_frame(two, strlen(two), SIP_MSG_MAX, &skip,
	    &len, &cause), 1);
	ck_assert_uint_eq(len, strlen(two));
	/* Every prefix of a message asks for more. */
	for (i = 0; i < strlen(two); i++)
		ck_assert_int_eq(sip_frame(two, i, SIP_MSG_MAX, &skip, &len,
		    &cause), 0);
	buf_free(&b);

	/* No Content-Length, a bad one, two that differ, too large. */
	ck_assert_int_eq(sip_frame("SIP/2.0 200 OK\r\nX: y\r\n\r\n", 24,
	    SIP_MSG_MAX, &skip, &len, &cause), -1);
	free(cause);
	ck_assert_int_eq(sip_frame("SIP/2.0 200 OK\r\nl: -1\r\n\r\n", 25,
	    SIP_MSG_MAX, &skip, &len, &cause), -1);
	free(cause);
	two = "SIP/2.0 200 OK\r\nl: 1\r\nContent-Length: 2\r\n\r\nab";
	ck_assert_int_eq(sip_frame(two, strlen(two), SIP_MSG_MAX, &skip,
	    &len, &cause), -1);
	free(cause);
	two = "SIP/2.0 200 OK\r\nl: 99999999\r\n\r\n";
	ck_assert_int_eq(sip_frame(two, strlen(two), SIP_MSG_MAX, &skip,
	    &len, &cause), -1);
	free(cause);
	b = (struct buf)BUF_INIT;
	buf_puts(&b, "SIP/2.0 200 OK\r\n");
	for (i = 0; i < 100; i++)
		buf_puts(&b, "X-Filler: 0123456789012345678901234567890\r\n");
	ck_assert_int_eq(sip_frame(b.data, b.len, 1024, &skip, &len,
	    &cause), -1);
	free(cause);
	buf_free(&b);
}
END_TEST

/* ---- requests ---- */

START_TEST(test_publish_write)
{
	struct sip_publish	 p;
	struct buf		 b = BUF_INIT;
	struct sip_response	 r;
	char			*cause = NULL;

	memset(&p, 0, sizeof p);
	p.uri = "sip:alice@example.com";
	p.from = p.uri;
	p.from_tag = "ft";
	p.call_id = "cid";
	p.cseq = 3;
	p.transport = "TCP";
	p.via_host = "127.0.0.1:40000";
	p.branch = "z9hG4bKbr";
	p.expires = 3600;
	p.if_match = "etag-1";
	p.authorization = "Digest username=\"u\"";
	p.proxy_auth = true;
	p.body = "<presence/>";
	p.body_len = strlen(p.body);
	p.user_agent = "ewsgw/test";
	sip_publish_write(&b, &p);
	ck_assert_ptr_nonnull(strstr(buf_str(&b),
	    "PUBLISH sip:alice@example.com SIP/2.0\r\n"
	    "Via: SIP/2.0/TCP 127.0.0.1:40000;branch=z9hG4bKbr;rport\r\n"));
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "Event: presence\r\n"));
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "CSeq: 3 PUBLISH\r\n"));
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "SIP-If-Match: etag-1\r\n"));
	ck_assert_ptr_nonnull(strstr(buf_str(&b),
	    "Proxy-Authorization: Digest username=\"u\"\r\n"));
	ck_assert_ptr_nonnull(strstr(buf_str(&b),
	    "Content-Type: application/pidf+xml\r\nContent-Length: 11\r\n"
	    "\r\n<presence/>"));
	/* It frames, and libosip2 reads it as a request. */
	ck_assert_int_eq(sip_response_parse(b.data, b.len, &r, &cause), 0);
	buf_free(&b);

	/* A removal: Expires 0, no body. */
	p.expires = 0;
	p.body = NULL;
	p.authorization = NULL;
	sip_publish_write(&b, &p);
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "Expires: 0\r\n"));
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "Content-Length: 0\r\n\r\n"));
	ck_assert_ptr_null(strstr(buf_str(&b), "Authorization"));
	ck_assert_ptr_null(strstr(buf_str(&b), "Content-Type"));
	buf_free(&b);
}
END_TEST

START_TEST(test_uri_target)
{
	char		 host[64], tp[8];
	uint16_t	 port;
	bool		 tls;

	ck_assert_int_eq(sip_uri_target("sip:alice@example.com", host,
	    sizeof host, &port, &tls, tp, sizeof tp), 0);
	ck_assert_str_eq(host, "example.com");
	ck_assert_uint_eq(port, 0);
	ck_assert(!tls);
	ck_assert_str_eq(tp, "");
	ck_assert_int_eq(sip_uri_target("sips:[::1]:5071;transport=TLS",
	    host, sizeof host, &port, &tls, tp, sizeof tp), 0);
	ck_assert_str_eq(host, "::1");
	ck_assert_uint_eq(port, 5071);
	ck_assert(tls);
	ck_assert_str_eq(tp, "tls");
	ck_assert_int_eq(sip_uri_target("sip:127.0.0.1:5060;transport=tcp",
	    host, sizeof host, &port, &tls, tp, sizeof tp), 0);
	ck_assert_str_eq(tp, "tcp");
	ck_assert_int_eq(sip_uri_target("http://example.com/", host,
	    sizeof host, &port, &tls, tp, sizeof tp), -1);
	ck_assert_int_eq(sip_uri_target("sip:a@b:99999", host, sizeof host,
	    &port, &tls, tp, sizeof tp), -1);
	ck_assert_int_eq(sip_uri_target("sip:a@averyveryverylonghostname."
	    "example.com.example.com.example.com", host, 16, &port, &tls, tp,
	    sizeof tp), -1);
}
END_TEST

/* ---- PIDF ---- */

static xmlDoc *
pidf_doc(const char *presence, const char *activity, int64_t since,
    int64_t until)
{
	struct ewsgw_presence_change	 c;
	struct buf			 b = BUF_INIT;
	xmlDoc				*doc;

	memset(&c, 0, sizeof c);
	c.size = sizeof c;
	c.mailbox = "alice@example.com";
	c.presence = presence;
	c.activity = activity;
	c.since = since;
	c.until = until;
	sip_pidf_write(&b, "sip:alice&co@example.com", &c);
	doc = xmlReadMemory(b.data, (int)b.len, NULL, NULL, XML_PARSE_NONET);
	ck_assert_ptr_nonnull(doc);
	buf_free(&b);
	return (doc);
}

/* The text of the XPath expression (allocated), "" for nothing. */
static char *
xp(xmlDoc *doc, const char *expr)
{
	xmlXPathContext	*ctx = xmlXPathNewContext(doc);
	xmlXPathObject	*o;
	xmlChar		*s;
	char		*out;

	xmlXPathRegisterNs(ctx, BAD_CAST "p",
	    BAD_CAST "urn:ietf:params:xml:ns:pidf");
	xmlXPathRegisterNs(ctx, BAD_CAST "dm",
	    BAD_CAST "urn:ietf:params:xml:ns:pidf:data-model");
	xmlXPathRegisterNs(ctx, BAD_CAST "r",
	    BAD_CAST "urn:ietf:params:xml:ns:pidf:rpid");
	o = xmlXPathEvalExpression(BAD_CAST expr, ctx);
	ck_assert_ptr_nonnull(o);
	s = xmlXPathCastToString(o);
	out = xstrdup((const char *)s);
	xmlFree(s);
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(ctx);
	return (out);
}

static void
xp_is(xmlDoc *doc, const char *expr, const char *want)
{
	char	*got = xp(doc, expr);

	ck_assert_msg(strcmp(got, want) == 0, "%s: got '%s', want '%s'", expr,
	    got, want);
	free(got);
}

START_TEST(test_pidf)
{
	struct ewsgw_presence_change	 c;
	xmlDoc				*d;

	d = pidf_doc("busy", "meeting", 1795946400, 1795950000);
	xp_is(d, "string(/p:presence/@entity)", "sip:alice&co@example.com");
	xp_is(d, "string(/p:presence/p:tuple/p:status/p:basic)", "open");
	xp_is(d, "count(//r:activities/*)", "2");
	xp_is(d, "count(//r:activities/r:busy)", "1");
	xp_is(d, "count(//r:activities/r:meeting)", "1");
	xp_is(d, "string(//r:activities/@from)", "2026-11-29T10:00:00Z");
	xp_is(d, "string(//r:activities/@until)", "2026-11-29T11:00:00Z");
	xp_is(d, "string(/p:presence/p:note)", "In a meeting");
	xp_is(d, "string(/p:presence/dm:person/dm:note)", "In a meeting");
	/* Schema order: tuple, note, then the person. */
	xp_is(d, "local-name(/p:presence/*[1])", "tuple");
	xp_is(d, "local-name(/p:presence/*[2])", "note");
	xp_is(d, "local-name(/p:presence/*[3])", "person");
	xmlFreeDoc(d);

	d = pidf_doc("away", "out-of-office", 0, 0);
	xp_is(d, "count(//r:activities/*)", "2");
	xp_is(d, "count(//r:activities/r:away)", "1");
	xp_is(d, "count(//r:activities/r:vacation)", "1");
	xp_is(d, "count(//r:activities/@from)", "0");
	xp_is(d, "string(/p:presence/p:note)", "Out of office");
	xmlFreeDoc(d);

	d = pidf_doc("available", NULL, 1795946400, 0);
	xp_is(d, "count(//r:activities)", "0");
	xp_is(d, "string(//p:basic)", "open");
	xp_is(d, "string(/p:presence/p:note)", "Available");
	xmlFreeDoc(d);

	d = pidf_doc("available", "working-elsewhere", 0, 0);
	xp_is(d, "string(//r:activities/r:other)", "working elsewhere");
	xp_is(d, "string(/p:presence/p:note)", "Working elsewhere");
	xmlFreeDoc(d);

	d = pidf_doc("busy", "tentative", 0, 0);
	xp_is(d, "count(//r:activities/r:meeting)", "1");
	xp_is(d, "string(/p:presence/p:note)", "Tentatively in a meeting");
	xmlFreeDoc(d);

	memset(&c, 0, sizeof c);
	c.presence = "unknown";
	ck_assert(!sip_pidf_publishes(&c));
	c.presence = "busy";
	ck_assert(sip_pidf_publishes(&c));
}
END_TEST

/* ---- address mapping ---- */

/* A mapping file holding text is refused with why. */
static void
map_refused(const char *path, const char *text, const char *why)
{
	FILE	*f;
	char	*cause = NULL;

	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	ck_assert_ptr_null(addrmap_new("sip:%l@x", ADDRMAP_SIP, path,
	    &cause));
	ck_assert_msg(strstr(cause, why) != NULL, "'%s' lacks '%s'", cause,
	    why);
	free(cause);
}

START_TEST(test_addrmap)
{
	struct addrmap	*m;
	char		*cause = NULL, *a, path[] = "/tmp/check_sip.XXXXXX";
	FILE		*f;
	int		 fd;

	m = addrmap_new("sip:%l@pres.%d", ADDRMAP_SIP, NULL, &cause);
	ck_assert_ptr_nonnull(m);
	a = addrmap_lookup(m, "alice@example.com");
	ck_assert_str_eq(a, "sip:alice@pres.example.com");
	free(a);
	a = addrmap_lookup(m, "o'neil#1 x@example.com");
	ck_assert_str_eq(a, "sip:o'neil%231%20x@pres.example.com");
	free(a);
	addrmap_free(m);

	m = addrmap_new("%m@gw.example.com", ADDRMAP_JID, NULL, &cause);
	a = addrmap_lookup(m, "a b@example.com");
	ck_assert_str_eq(a, "a\\20b\\40example.com@gw.example.com");
	free(a);
	addrmap_free(m);

	ck_assert_int_eq(addrmap_check_pattern("sip:user@example.com",
	    &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "neither"));
	free(cause);
	ck_assert_int_eq(addrmap_check_pattern("sip:%x@example.com", &cause),
	    -1);
	ck_assert_ptr_nonnull(strstr(cause, "%x"));
	free(cause);
	ck_assert_int_eq(addrmap_check_pattern("sip:%l@x%%y", &cause), 0);

	fd = mkstemp(path);
	ck_assert_int_ne(fd, -1);
	f = fdopen(fd, "w");
	fprintf(f, "# overrides\nAlice@Example.com  sip:alice.smith@example.com"
	    "\n\nbob@example.com -   # not published\n");
	fclose(f);
	m = addrmap_new("sip:%l@example.com", ADDRMAP_SIP, path, &cause);
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(addrmap_overrides(m), 2);
	a = addrmap_lookup(m, "alice@example.com");
	ck_assert_str_eq(a, "sip:alice.smith@example.com");
	free(a);
	ck_assert_ptr_null(addrmap_lookup(m, "bob@example.com"));
	a = addrmap_lookup(m, "carol@example.com");
	ck_assert_str_eq(a, "sip:carol@example.com");
	free(a);
	addrmap_free(m);

	/* Errors name the file and the line. */
	map_refused(path, "alice@example.com sip:a@x\nalice@example.com "
	    "sip:b@x\n", ":2: alice@example.com is mapped twice");
	map_refused(path, "alice@example.com\n", ":1: expected");
	map_refused(path, "alice sip:a@x\n", "not a mailbox");
	unlink(path);
	ck_assert_ptr_null(addrmap_new("sip:%l@x", ADDRMAP_SIP, path,
	    &cause));
	free(cause);
}
END_TEST

/* ---- the sink against a fake presence server ---- */

#define FAKE_REQS	128

/* One PUBLISH as the fake server saw it (retransmissions not again). */
struct fake_req {
	char		 uri[128];
	char		 if_match[64];	/* "" without SIP-If-Match */
	char		 etag[32];	/* what the answer gave */
	char		 branch[300];
	int		 expires;
	bool		 body;
	int64_t		 at;		/* mono ms */
};

struct fake_sip {
	int		 fd;
	struct event	 ev;
	uint16_t	 port;
	bool		 silent;	/* answer nothing */
	unsigned	 etags;
	unsigned	 n;
	struct fake_req	 req[FAKE_REQS];
};

/* A header's value (up to the line end) into out, "" if absent. */
static void
fake_header(const char *msg, const char *name, char *out, size_t len)
{
	const char	*p = msg, *e;
	size_t		 nl = strlen(name);

	out[0] = '\0';
	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, nl) != 0 || p[nl] != ':')
			continue;
		p += nl + 1;
		while (*p == ' ')
			p++;
		e = strstr(p, "\r\n");
		snprintf(out, len, "%.*s", (int)(e != NULL ? (size_t)(e - p) :
		    strlen(p)), p);
		return;
	}
}

static void
fake_read(evutil_socket_t fd, short what, void *arg)
{
	struct fake_sip		*f = arg;
	struct fake_req		*r = NULL;
	struct sockaddr_in	 from;
	socklen_t		 fl = sizeof from;
	struct buf		 out = BUF_INIT;
	char			 msg[8192], via[300], fr[300], to[300];
	char			 cid[100], cseq[60], len[20], exp[20], *sp;
	ssize_t			 n;
	unsigned		 i;

	n = recvfrom(fd, msg, sizeof msg - 1, 0, (struct sockaddr *)&from,
	    &fl);
	if (n <= 0)
		return;
	msg[n] = '\0';
	if (strncmp(msg, "PUBLISH ", 8) != 0)
		return;
	fake_header(msg, "Via", via, sizeof via);
	for (i = 0; i < f->n; i++)
		if (strstr(via, f->req[i].branch) != NULL)
			r = &f->req[i];		/* a retransmission */
	if (r == NULL) {
		ck_assert_uint_lt(f->n, FAKE_REQS);
		r = &f->req[f->n++];
		sp = strchr(msg + 8, ' ');
		ck_assert_ptr_nonnull(sp);
		snprintf(r->uri, sizeof r->uri, "%.*s", (int)(sp - msg - 8),
		    msg + 8);
		fake_header(msg, "SIP-If-Match", r->if_match,
		    sizeof r->if_match);
		fake_header(msg, "Expires", exp, sizeof exp);
		r->expires = atoi(exp);
		fake_header(msg, "Content-Length", len, sizeof len);
		r->body = atoi(len) > 0;
		sp = strstr(via, "branch=");
		snprintf(r->branch, sizeof r->branch, "%s", sp != NULL ? sp :
		    via);
		if ((sp = strchr(r->branch, ';')) != NULL)
			*sp = '\0';
		snprintf(r->etag, sizeof r->etag, "e%u", ++f->etags);
		r->at = time_mono_ms();
	}
	if (f->silent)
		return;
	fake_header(msg, "From", fr, sizeof fr);
	fake_header(msg, "To", to, sizeof to);
	fake_header(msg, "Call-ID", cid, sizeof cid);
	fake_header(msg, "CSeq", cseq, sizeof cseq);
	buf_printf(&out, "SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\n"
	    "To: %s;tag=fake\r\nCall-ID: %s\r\nCSeq: %s\r\n", via, fr, to,
	    cid, cseq);
	if (r->expires > 0)
		buf_printf(&out, "SIP-ETag: %s\r\nExpires: %d\r\n", r->etag,
		    r->expires);
	buf_puts(&out, "Content-Length: 0\r\n\r\n");
	(void)sendto(fd, out.data, out.len, 0, (struct sockaddr *)&from, fl);
	buf_free(&out);
}

static void
fake_start(struct fake_sip *f, struct event_base *base)
{
	struct sockaddr_in	 sin;
	socklen_t		 sl = sizeof sin;

	memset(f, 0, sizeof *f);
	f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	ck_assert_int_ge(f->fd, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(f->fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(getsockname(f->fd, (struct sockaddr *)&sin, &sl), 0);
	f->port = ntohs(sin.sin_port);
	event_assign(&f->ev, base, f->fd, EV_READ | EV_PERSIST, fake_read, f);
	event_add(&f->ev, NULL);
}

static void
fake_stop(struct fake_sip *f)
{
	event_del(&f->ev);
	close(f->fd);
}

enum fake_kind { ANY, REFRESH, REMOVAL };

/* The last request f holds for uri, or NULL. */
static const struct fake_req *
fake_last(const struct fake_sip *f, const char *uri)
{
	unsigned	 i;

	for (i = f->n; i-- > 0; )
		if (strcmp(f->req[i].uri, uri) == 0)
			return (&f->req[i]);
	return (NULL);
}

/*
 * Run until f holds a request of kind for uri, from index from on (a
 * refresh has no body, a removal Expires 0), or ms passed.  Returns
 * the first such request, or NULL.
 */
static const struct fake_req *
wait_req(struct event_base *base, struct fake_sip *f, const char *uri,
    unsigned from, enum fake_kind kind, int ms)
{
	const struct fake_req	*r;
	int64_t			 end = time_mono_ms() + ms;
	unsigned		 i;

	for (;;) {
		for (i = from; i < f->n; i++) {
			r = &f->req[i];
			if (strcmp(r->uri, uri) != 0)
				continue;
			if (kind == ANY || (kind == REMOVAL ?
			    r->expires == 0 : !r->body && r->expires > 0))
				return (r);
		}
		if (time_mono_ms() >= end)
			return (NULL);
		sinktest_run(base, 20);
	}
}

/* What the host does at a reload; h's log must say said. */
static void
replace(struct ewsgw_sink *s, struct ewsgw_sink *old, struct sinktest *h,
    const char *said)
{
	sink_sip_ops.takeover(s, old);
	sink_sip_ops.destroy(old);
	ck_assert_msg(strstr(buf_str(&h->log), said) != NULL, "%s",
	    buf_str(&h->log));
}

/*
 * A sip sink section towards server ("server=127.0.0.1:PORT", filled
 * in), presentities in domain, and a t1 that changes the section
 * without changing where or as whom it sends.
 */
#define SIP_KV(domain, t1)						\
	{ "presentity=sip:%l@" domain, NULL, "transport=udp",		\
	    "expires=5s", t1, NULL }

START_TEST(test_takeover_same_route)
{
	struct event_base	*base = event_base_new();
	struct fake_sip		 f;
	struct sinktest		 h1, h2;
	struct ewsgw_sink	*s1, *s2;
	const struct fake_req	*ra, *rb, *r;
	char			 server[40], etag_a[32], etag_b[32];
	const char		*kv1[] = SIP_KV("example.test", "t1=500ms");
	const char		*kv2[] = SIP_KV("example.test", "t1=100ms");
	const char		*a = "sip:a@example.test";
	const char		*b = "sip:b@example.test";
	unsigned		 mark, i;
	int64_t			 lapse;

	fake_start(&f, base);
	snprintf(server, sizeof server, "server=127.0.0.1:%u", f.port);
	kv1[1] = kv2[1] = server;
	sinktest_init(&h1, base, "sip");
	sinktest_init(&h2, base, "sip");
	/* Both first: creating one can take seconds under valgrind. */
	s1 = sinktest_create(&h1, &sink_sip_ops, kv1);
	s2 = sinktest_create(&h2, &sink_sip_ops, kv2);
	ck_assert_int_eq(sinktest_publish(&h1, &sink_sip_ops, s1, "a@x",
	    "busy", "meeting", 1), EWSGW_SINK_PENDING);
	ck_assert_int_eq(sinktest_publish(&h1, &sink_sip_ops, s1, "b@x",
	    "available", NULL, 2), EWSGW_SINK_PENDING);
	ck_assert_int_eq(sinktest_wait(&h1, 1, 5000), EWSGW_SINK_OK);
	ck_assert_int_eq(sinktest_wait(&h1, 2, 5000), EWSGW_SINK_OK);
	ra = wait_req(base, &f, a, 0, ANY, 0);
	rb = wait_req(base, &f, b, 0, ANY, 0);
	ck_assert_ptr_nonnull(ra);
	ck_assert_ptr_nonnull(rb);
	ck_assert_str_eq(ra->if_match, "");
	ck_assert(ra->body);
	snprintf(etag_a, sizeof etag_a, "%s", ra->etag);
	snprintf(etag_b, sizeof etag_b, "%s", rb->etag);
	/* The server forgets b 5s after its PUBLISH. */
	lapse = rb->at + 5000;

	/* a's next change is on the wire, unanswered, at the reload. */
	f.silent = true;
	ck_assert_int_eq(sinktest_publish(&h1, &sink_sip_ops, s1, "a@x",
	    "away", NULL, 3), EWSGW_SINK_PENDING);
	ck_assert_ptr_nonnull(wait_req(base, &f, a, 2, ANY, 5000));
	f.silent = false;
	mark = f.n;

	replace(s2, s1, &h2, "2 publications kept with their entity tags, "
	    "0 published afresh, 0 to remove");

	/* Refreshing goes on, with the entity tag s1 held, in time. */
	r = wait_req(base, &f, b, mark, REFRESH, 8000);
	ck_assert_msg(r != NULL, "b was not refreshed after the reload");
	ck_assert_str_eq(r->if_match, etag_b);
	ck_assert_int_lt(r->at, lapse);
	/* a's change comes again from the engine: conditional. */
	ck_assert_int_eq(sinktest_publish(&h2, &sink_sip_ops, s2, "a@x",
	    "away", NULL, 3), EWSGW_SINK_PENDING);
	ck_assert_int_eq(sinktest_wait(&h2, 3, 5000), EWSGW_SINK_OK);
	r = fake_last(&f, a);
	ck_assert_ptr_nonnull(r);
	ck_assert(r->body);
	ck_assert_str_eq(r->if_match, etag_a);
	snprintf(etag_a, sizeof etag_a, "%s", r->etag);
	/* ... and refreshed with the tag it got, later on. */
	r = wait_req(base, &f, a, mark, REFRESH, 8000);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->if_match, etag_a);
	/* Nothing published afresh: the server holds one of each. */
	for (i = mark; i < f.n; i++)
		ck_assert_msg(f.req[i].if_match[0] != '\0', "%s published "
		    "without SIP-If-Match after the reload", f.req[i].uri);
	/* s1 never answered the change it had on the wire. */
	ck_assert_uint_eq(h1.ndone, 2);

	sink_sip_ops.destroy(s2);
	sinktest_free(&h1);
	sinktest_free(&h2);
	fake_stop(&f);
	event_base_free(base);
}
END_TEST

START_TEST(test_takeover_new_route)
{
	struct event_base	*base = event_base_new();
	struct fake_sip		 f, g;
	struct sinktest		 h1, h2, h3;
	struct ewsgw_sink	*s1, *s2, *s3;
	const struct fake_req	*r;
	char			 sf[40], sg[40], etag_a[32], etag_b[32];
	const char		*kv1[] = SIP_KV("example.test", "t1=500ms");
	const char		*kv2[] = SIP_KV("other.test", "t1=500ms");
	const char		*kv3[] = SIP_KV("example.test", "t1=500ms");
	unsigned		 mark;

	fake_start(&f, base);
	fake_start(&g, base);
	snprintf(sf, sizeof sf, "server=127.0.0.1:%u", f.port);
	snprintf(sg, sizeof sg, "server=127.0.0.1:%u", g.port);
	kv1[1] = kv3[1] = sf;
	kv2[1] = sg;
	sinktest_init(&h1, base, "sip");
	sinktest_init(&h2, base, "sip");
	sinktest_init(&h3, base, "sip");
	s1 = sinktest_create(&h1, &sink_sip_ops, kv1);
	s2 = sinktest_create(&h2, &sink_sip_ops, kv2);
	s3 = sinktest_create(&h3, &sink_sip_ops, kv3);
	sinktest_publish(&h1, &sink_sip_ops, s1, "a@x", "busy", "meeting", 1);
	sinktest_publish(&h1, &sink_sip_ops, s1, "b@x", "available", NULL, 2);
	ck_assert_int_eq(sinktest_wait(&h1, 1, 5000), EWSGW_SINK_OK);
	ck_assert_int_eq(sinktest_wait(&h1, 2, 5000), EWSGW_SINK_OK);
	r = wait_req(base, &f, "sip:a@example.test", 0, ANY, 0);
	ck_assert_ptr_nonnull(r);
	snprintf(etag_a, sizeof etag_a, "%s", r->etag);
	r = wait_req(base, &f, "sip:b@example.test", 0, ANY, 0);
	ck_assert_ptr_nonnull(r);
	snprintf(etag_b, sizeof etag_b, "%s", r->etag);
	mark = f.n;

	/* Another server and presentity: the last state is published
	 * there afresh and removed from the first server with its tag. */
	replace(s2, s1, &h2, "0 publications kept with their entity tags, "
	    "2 published afresh, 2 to remove");
	r = wait_req(base, &g, "sip:a@other.test", 0, ANY, 4000);
	ck_assert_msg(r != NULL, "a not published at the new presentity");
	ck_assert(r->body);
	ck_assert_int_gt(r->expires, 0);
	ck_assert_str_eq(r->if_match, "");
	ck_assert_ptr_nonnull(wait_req(base, &g, "sip:b@other.test", 0, ANY,
	    4000));
	r = wait_req(base, &f, "sip:a@example.test", mark, REMOVAL, 4000);
	ck_assert_msg(r != NULL, "a's old publication was not removed");
	ck_assert_str_eq(r->if_match, etag_a);
	r = wait_req(base, &f, "sip:b@example.test", mark, REMOVAL, 4000);
	ck_assert_msg(r != NULL, "b's old publication was not removed");
	ck_assert_str_eq(r->if_match, etag_b);
	/* a's next change modifies the new publication. */
	ck_assert_int_eq(sinktest_publish(&h2, &sink_sip_ops, s2, "a@x",
	    "available", NULL, 3), EWSGW_SINK_PENDING);
	ck_assert_int_eq(sinktest_wait(&h2, 3, 5000), EWSGW_SINK_OK);
	r = fake_last(&g, "sip:a@other.test");
	ck_assert_ptr_nonnull(r);
	ck_assert(r->body);
	ck_assert_str_ne(r->if_match, "");

	/* Back to the first server, which answers nothing now: the
	 * last instance goes with its removals still on the wire. */
	f.silent = true;
	replace(s3, s2, &h3, "2 published afresh, 2 to remove");
	ck_assert_ptr_nonnull(wait_req(base, &g, "sip:a@other.test", 0,
	    REMOVAL, 4000));
	sink_sip_ops.destroy(s3);
	ck_assert_uint_eq(h2.ndone, 1);
	ck_assert_uint_eq(h3.ndone, 0);
	sinktest_free(&h1);
	sinktest_free(&h2);
	sinktest_free(&h3);
	fake_stop(&f);
	fake_stop(&g);
	event_base_free(base);
}
END_TEST

static Suite *
sip_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("sip");
	tc = tcase_create("core");
	tcase_add_test(tc, test_digest_rfc2617);
	tcase_add_test(tc, test_digest_sha256_and_sess);
	tcase_add_test(tc, test_digest_refused);
	tcase_add_test(tc, test_response_parse);
	tcase_add_test(tc, test_response_proxy_and_bad);
	tcase_add_test(tc, test_frame);
	tcase_add_test(tc, test_publish_write);
	tcase_add_test(tc, test_uri_target);
	tcase_add_test(tc, test_pidf);
	tcase_add_test(tc, test_addrmap);
	suite_add_tcase(s, tc);
	tc = tcase_create("takeover");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_takeover_same_route);
	tcase_add_test(tc, test_takeover_new_route);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(sip_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	xmlCleanupParser();
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
