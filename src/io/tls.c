/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * TLS policy for curl handles and the push listener's server context.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include "io/tls.h"
#include "base/xmalloc.h"

static char	*tls_ssl_error(const char *, const char *);
static int	 tls_readable(const char *, const char *, char **);

/* "what FILE: reason" from the OpenSSL error queue, which is emptied. */
static char *
tls_ssl_error(const char *what, const char *file)
{
	char		 reason[256];
	unsigned long	 e, last = 0;
	char		*cause;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last != 0)
		ERR_error_string_n(last, reason, sizeof reason);
	else
		snprintf(reason, sizeof reason, "unknown error");
	xasprintf(&cause, "%s %s: %s", what, file, reason);
	return (cause);
}

static int
tls_readable(const char *what, const char *file, char **cause)
{
	if (file == NULL)
		return (0);
	if (access(file, R_OK) != 0) {
		xasprintf(cause, "%s %s: %s", what, file, strerror(errno));
		return (-1);
	}
	return (0);
}

int
tls_client_check(const struct tls_client_opts *o, char **cause)
{
	if (tls_readable("ca_file", o->ca_file, cause) != 0 ||
	    tls_readable("client_cert", o->client_cert, cause) != 0 ||
	    tls_readable("client_key", o->client_key, cause) != 0)
		return (-1);
	if (o->client_key != NULL && o->client_cert == NULL) {
		*cause = xstrdup("client_key given without client_cert");
		return (-1);
	}
	return (0);
}

int
tls_curl_apply(CURL *e, const struct tls_client_opts *o, char **cause)
{
	CURLcode	 rc = CURLE_OK;

#define SET(opt, val) do {						\
	if (rc == CURLE_OK)						\
		rc = curl_easy_setopt(e, (opt), (val));			\
} while (0)
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SET(CURLOPT_SSL_VERIFYPEER, o->verify ? 1L : 0L);
	SET(CURLOPT_SSL_VERIFYHOST, o->verify ? 2L : 0L);
	if (o->ca_file != NULL)
		SET(CURLOPT_CAINFO, o->ca_file);
	if (o->client_cert != NULL) {
		SET(CURLOPT_SSLCERT, o->client_cert);
		SET(CURLOPT_SSLCERTTYPE, "PEM");
	}
	if (o->client_key != NULL) {
		SET(CURLOPT_SSLKEY, o->client_key);
		SET(CURLOPT_SSLKEYTYPE, "PEM");
	}
#undef SET
	if (rc != CURLE_OK) {
		xasprintf(cause, "TLS setup: %s", curl_easy_strerror(rc));
		return (-1);
	}
	return (0);
}

SSL_CTX *
tls_server_ctx_new(const char *cert, const char *key, char **cause)
{
	SSL_CTX	*ctx;

	if (cert == NULL) {
		*cause = xstrdup("no certificate configured");
		return (NULL);
	}
	if (key == NULL)
		key = cert;
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		*cause = tls_ssl_error("SSL_CTX_new", "");
		return (NULL);
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		*cause = tls_ssl_error("certificate", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		*cause = tls_ssl_error("key", key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*cause = tls_ssl_error("key does not match certificate", cert);
		goto fail;
	}
	return (ctx);
fail:
	SSL_CTX_free(ctx);
	return (NULL);
}

SSL_CTX *
tls_client_ctx_new(const struct tls_client_opts *o, char **cause)
{
	SSL_CTX	*ctx;

	if (tls_client_check(o, cause) == -1)
		return (NULL);
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		*cause = tls_ssl_error("SSL_CTX_new", "");
		return (NULL);
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	if (o->ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
			*cause = tls_ssl_error("ca_file", o->ca_file);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		*cause = tls_ssl_error("system trust store", "");
		goto fail;
	}
	if (o->client_cert != NULL) {
		if (SSL_CTX_use_certificate_chain_file(ctx,
		    o->client_cert) != 1) {
			*cause = tls_ssl_error("client_cert", o->client_cert);
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, o->client_key != NULL ?
		    o->client_key : o->client_cert, SSL_FILETYPE_PEM) != 1) {
			*cause = tls_ssl_error("client_key", o->client_key !=
			    NULL ? o->client_key : o->client_cert);
			goto fail;
		}
	}
	SSL_CTX_set_verify(ctx, o->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
	    NULL);
	return (ctx);
fail:
	SSL_CTX_free(ctx);
	return (NULL);
}

SSL *
tls_client_ssl_new(SSL_CTX *ctx, const char *name, char **cause)
{
	struct in6_addr	 a6;
	struct in_addr	 a4;
	SSL		*ssl;
	bool		 ip;
	int		 ok = 1;

	ERR_clear_error();
	if ((ssl = SSL_new(ctx)) == NULL) {
		*cause = tls_ssl_error("SSL_new", "");
		return (NULL);
	}
	ip = inet_pton(AF_INET, name, &a4) == 1 ||
	    inet_pton(AF_INET6, name, &a6) == 1;
	if (!ip)
		ok = SSL_set_tlsext_host_name(ssl, name);
	if (ok == 1 && (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER)) {
		if (ip)
			ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
			    name);
		else {
			SSL_set_hostflags(ssl,
			    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			ok = SSL_set1_host(ssl, name);
		}
	}
	if (ok != 1) {
		*cause = tls_ssl_error("peer name", name);
		SSL_free(ssl);
		return (NULL);
	}
	return (ssl);
}
