/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * TLS policy in one place: TLS 1.2 minimum, peer and host verification
 * against the system store or a CA file, optional client certificate,
 * for libcurl handles and for the push listener's server context.
 */
#ifndef EWSGW_TLS_H
#define EWSGW_TLS_H

#include <stdbool.h>

#include <curl/curl.h>
#include <openssl/ssl.h>

struct tls_client_opts {
	const char	*ca_file;	/* NULL = system trust store */
	const char	*client_cert;	/* PEM or NULL */
	const char	*client_key;	/* PEM or NULL (in the cert) */
	bool		 verify;	/* verify peer and host name */
};

/*
 * Apply the policy to an easy handle (strings are copied by curl).
 * Returns 0 or -1 with *cause set (allocated, caller frees).
 */
int	 tls_curl_apply(CURL *, const struct tls_client_opts *,
	    char **cause);

/*
 * Check that the files named in opts are readable, so a bad path is a
 * start-up error instead of a failure on every request.  Returns 0 or -1
 * with *cause set (allocated, caller frees).
 */
int	 tls_client_check(const struct tls_client_opts *, char **cause);

/*
 * A server context for the push listener: TLS 1.2 minimum, certificate
 * chain and key from PEM files, key checked against the certificate.
 * Returns a new SSL_CTX (caller frees with SSL_CTX_free) or NULL with
 * *cause set (allocated, caller frees).
 */
SSL_CTX	*tls_server_ctx_new(const char *cert_file, const char *key_file,
	    char **cause);

/*
 * A client context with the same policy as tls_curl_apply: TLS 1.2
 * minimum, the system trust store or opts->ca_file, an optional client
 * certificate, peer verification unless opts->verify is false.  For
 * protocols libcurl does not speak (SIP, XMPP; see netconn.h).  Returns
 * a new SSL_CTX (caller frees with SSL_CTX_free) or NULL with *cause
 * set (allocated, caller frees).
 */
SSL_CTX	*tls_client_ctx_new(const struct tls_client_opts *, char **cause);

/*
 * A connection object from a tls_client_ctx_new context that sends name
 * as SNI (unless it is an IP literal) and, when the context verifies,
 * accepts only a certificate for name (DNS name or IP address).
 * Returns a new SSL (caller frees with SSL_free) or NULL with *cause
 * set (allocated, caller frees).
 */
SSL	*tls_client_ssl_new(SSL_CTX *, const char *name, char **cause);

#endif
