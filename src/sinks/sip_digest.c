/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Digest responses for SIP: H(A1), H(A2) and the response with
 * OpenSSL's EVP digests; quoting per RFC 3261's quoted-string.
 */
#include "config.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "sinks/sip_digest.h"

#define DIGEST_HEX_MAX	(EVP_MAX_MD_SIZE * 2 + 1)

static void	 digest_hex(const EVP_MD *, char *, const char *, ...);
static bool	 qop_offers(const char *, const char *);
static void	 put_quoted(struct buf *, const char *, const char *,
		    const char *);

void
sip_challenge_clear(struct sip_challenge *ch)
{
	free(ch->realm);
	free(ch->nonce);
	free(ch->opaque);
	free(ch->algorithm);
	free(ch->qop);
	memset(ch, 0, sizeof *ch);
}

void
sip_challenge_copy(struct sip_challenge *dst, const struct sip_challenge *src)
{
	sip_challenge_clear(dst);
#define DUP(f) dst->f = src->f != NULL ? xstrdup(src->f) : NULL
	DUP(realm);
	DUP(nonce);
	DUP(opaque);
	DUP(algorithm);
	DUP(qop);
#undef DUP
	dst->stale = src->stale;
	dst->proxy = src->proxy;
}

/* Lower-case hex of the digest of the NULL-terminated parts joined. */
static void
digest_hex(const EVP_MD *md, char *out, const char *first, ...)
{
	EVP_MD_CTX	*ctx;
	unsigned char	 d[EVP_MAX_MD_SIZE];
	unsigned int	 n = 0, i;
	const char	*p;
	va_list		 ap;

	ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, md, NULL);
	va_start(ap, first);
	for (p = first; p != NULL; p = va_arg(ap, const char *))
		EVP_DigestUpdate(ctx, p, strlen(p));
	va_end(ap);
	EVP_DigestFinal_ex(ctx, d, &n);
	EVP_MD_CTX_free(ctx);
	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
	out[2 * n] = '\0';
	OPENSSL_cleanse(d, sizeof d);
}

/* Does the comma-separated qop list offer token? */
static bool
qop_offers(const char *list, const char *token)
{
	const char	*p = list, *e;
	size_t		 len = strlen(token);

	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		e = p;
		while (*e != '\0' && *e != ',' && *e != ' ' && *e != '\t')
			e++;
		if ((size_t)(e - p) == len && strncasecmp(p, token, len) == 0)
			return (true);
		p = e;
	}
	return (false);
}

/* sep name="value", with backslash escapes for " and \. */
static void
put_quoted(struct buf *out, const char *sep, const char *name,
    const char *value)
{
	const char	*p;

	buf_printf(out, "%s%s=\"", sep, name);
	for (p = value; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			buf_putc(out, '\\');
		buf_putc(out, *p);
	}
	buf_putc(out, '"');
}

int
sip_digest_answer(struct buf *out, const struct sip_challenge *ch,
    const char *username, const char *password, const char *method,
    const char *uri, uint32_t nc, const char *cnonce, char **cause)
{
	const EVP_MD	*md;
	const char	*alg = ch->algorithm != NULL ? ch->algorithm : "MD5";
	char		 ha1[DIGEST_HEX_MAX], ha2[DIGEST_HEX_MAX];
	char		 resp[DIGEST_HEX_MAX], ncs[9];
	bool		 sess = false, qop;

	if (ch->realm == NULL || ch->nonce == NULL) {
		*cause = xstrdup("digest challenge without realm or nonce");
		return (-1);
	}
	if (strcasecmp(alg, "MD5") == 0)
		md = EVP_md5();
	else if (strcasecmp(alg, "MD5-sess") == 0) {
		md = EVP_md5();
		sess = true;
	} else if (strcasecmp(alg, "SHA-256") == 0)
		md = EVP_sha256();
	else if (strcasecmp(alg, "SHA-256-sess") == 0) {
		md = EVP_sha256();
		sess = true;
	} else {
		xasprintf(cause, "digest algorithm %s is not supported", alg);
		return (-1);
	}
	qop = ch->qop != NULL && qop_offers(ch->qop, "auth");
	if (ch->qop != NULL && !qop) {
		xasprintf(cause, "digest qop \"%s\" is not supported (only "
		    "auth)", ch->qop);
		return (-1);
	}
	snprintf(ncs, sizeof ncs, "%08x", nc);

	digest_hex(md, ha1, username, ":", ch->realm, ":", password,
	    (const char *)NULL);
	if (sess)
		digest_hex(md, ha1, ha1, ":", ch->nonce, ":", cnonce,
		    (const char *)NULL);
	digest_hex(md, ha2, method, ":", uri, (const char *)NULL);
	if (qop)
		digest_hex(md, resp, ha1, ":", ch->nonce, ":", ncs, ":",
		    cnonce, ":auth:", ha2, (const char *)NULL);
	else
		digest_hex(md, resp, ha1, ":", ch->nonce, ":", ha2,
		    (const char *)NULL);
	OPENSSL_cleanse(ha1, sizeof ha1);

	put_quoted(out, "Digest ", "username", username);
	put_quoted(out, ", ", "realm", ch->realm);
	put_quoted(out, ", ", "nonce", ch->nonce);
	put_quoted(out, ", ", "uri", uri);
	put_quoted(out, ", ", "response", resp);
	buf_printf(out, ", algorithm=%s", alg);
	if (ch->opaque != NULL)
		put_quoted(out, ", ", "opaque", ch->opaque);
	if (qop) {
		buf_printf(out, ", qop=auth, nc=%s", ncs);
		put_quoted(out, ", ", "cnonce", cnonce);
	}
	return (0);
}
