/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the sip sink's pure parts.  Digest answers against the
 * RFC 2617 and RFC 7616 examples, response parsing (compact headers,
 * folding, challenges), stream framing, the PUBLISH text, PIDF/RPID
 * documents read back with libxml2, SIP URIs, and the mailbox to
 * address mapping with its file.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "sinks/addrmap.h"
#include "sinks/sip_digest.h"
#include "sinks/sip_msg.h"
#include "sinks/sip_pidf.h"

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
