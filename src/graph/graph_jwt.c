/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * PS256 client assertions with OpenSSL.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "graph/graph_jwt.h"
#include "base/buf.h"
#include "base/json.h"
#include "base/xmalloc.h"

struct graph_jwt_key {
	EVP_PKEY	*pkey;
	char		 x5t_s256[48];
};

/* base64url without padding of len bytes, appended to out. */
static void
graph_b64url(struct buf *out, const unsigned char *p, size_t len)
{
	static const char	 a[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t			 i;
	uint32_t		 v;

	for (i = 0; i + 2 < len; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		buf_putc(out, a[v >> 18 & 63]);
		buf_putc(out, a[v >> 12 & 63]);
		buf_putc(out, a[v >> 6 & 63]);
		buf_putc(out, a[v & 63]);
	}
	if (len - i == 1) {
		v = (uint32_t)p[i] << 16;
		buf_putc(out, a[v >> 18 & 63]);
		buf_putc(out, a[v >> 12 & 63]);
	} else if (len - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		buf_putc(out, a[v >> 18 & 63]);
		buf_putc(out, a[v >> 12 & 63]);
		buf_putc(out, a[v >> 6 & 63]);
	}
}

static void
ssl_cause(char **cause, const char *what)
{
	unsigned long	 e = ERR_get_error();
	char		 msg[256];

	ERR_error_string_n(e, msg, sizeof msg);
	xasprintf(cause, "%s: %s", what, e != 0 ? msg : "failed");
	ERR_clear_error();
}

struct graph_jwt_key *
graph_jwt_key_new(const char *cert_pem, size_t clen, const char *key_pem,
    size_t klen, char **cause)
{
	struct graph_jwt_key	*k = NULL;
	BIO			*bio = NULL;
	X509			*x = NULL;
	EVP_PKEY		*pkey = NULL;
	unsigned char		 md[EVP_MAX_MD_SIZE];
	unsigned int		 mdlen = 0;
	struct buf		 t = BUF_INIT;

	if ((bio = BIO_new_mem_buf(cert_pem, (int)clen)) == NULL ||
	    (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		ssl_cause(cause, "certificate");
		goto out;
	}
	BIO_free(bio);
	if ((bio = BIO_new_mem_buf(key_pem, (int)klen)) == NULL ||
	    (pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL) {
		ssl_cause(cause, "private key");
		goto out;
	}
	if (EVP_PKEY_base_id(pkey) != EVP_PKEY_RSA) {
		*cause = xstrdup("private key: not RSA (PS256 needs RSA)");
		goto out;
	}
	if (X509_check_private_key(x, pkey) != 1) {
		ssl_cause(cause, "private key does not match the certificate");
		goto out;
	}
	if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1) {
		ssl_cause(cause, "certificate thumbprint");
		goto out;
	}
	k = xcalloc(1, sizeof *k);
	graph_b64url(&t, md, mdlen);
	snprintf(k->x5t_s256, sizeof k->x5t_s256, "%s", buf_str(&t));
	k->pkey = pkey;
	pkey = NULL;
out:
	buf_free(&t);
	BIO_free(bio);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return (k);
}

void
graph_jwt_key_free(struct graph_jwt_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);	/* OpenSSL clears key material */
	free(k);
}

const char *
graph_jwt_thumbprint(const struct graph_jwt_key *k)
{
	return (k->x5t_s256);
}

char *
graph_jwt_assertion(const struct graph_jwt_key *k, const char *client_id,
    const char *token_url, int64_t now, char **cause)
{
	struct json_writer	 w;
	struct buf		 hdr = BUF_INIT, cl = BUF_INIT, jti = BUF_INIT;
	struct buf		 out = BUF_INIT_SECRET;	/* the assertion */
	EVP_MD_CTX		*ctx = NULL;
	EVP_PKEY_CTX		*pctx = NULL;
	unsigned char		 rnd[16], *sig = NULL;
	size_t			 siglen = 0;
	char			*res = NULL;

	if (RAND_bytes(rnd, sizeof rnd) != 1) {
		ssl_cause(cause, "random jti");
		goto out;
	}
	graph_b64url(&jti, rnd, sizeof rnd);

	json_writer_init(&w, &hdr);
	json_obj_begin(&w);
	json_kv_str(&w, "alg", "PS256");
	json_kv_str(&w, "typ", "JWT");
	json_kv_str(&w, "x5t#S256", k->x5t_s256);
	json_obj_end(&w);
	json_writer_init(&w, &cl);
	json_obj_begin(&w);
	json_kv_str(&w, "aud", token_url);
	json_kv_str(&w, "iss", client_id);
	json_kv_str(&w, "sub", client_id);
	json_kv_str(&w, "jti", buf_str(&jti));
	json_kv_int(&w, "nbf", now);
	json_kv_int(&w, "iat", now);
	json_kv_int(&w, "exp", now + GRAPH_JWT_LIFETIME_S);
	json_obj_end(&w);

	graph_b64url(&out, (const unsigned char *)hdr.data, hdr.len);
	buf_putc(&out, '.');
	graph_b64url(&out, (const unsigned char *)cl.data, cl.len);

	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), NULL, k->pkey) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST)
	    != 1 ||
	    EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)out.data,
	    out.len) != 1) {
		ssl_cause(cause, "signing the assertion");
		goto out;
	}
	sig = xmalloc(siglen);
	if (EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)out.data,
	    out.len) != 1) {
		ssl_cause(cause, "signing the assertion");
		goto out;
	}
	buf_putc(&out, '.');
	graph_b64url(&out, sig, siglen);
	res = buf_steal(&out);
out:
	EVP_MD_CTX_free(ctx);
	free(sig);
	buf_free(&hdr);
	buf_free(&cl);
	buf_free(&jti);
	buf_free_secret(&out);
	return (res);
}
