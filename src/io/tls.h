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

#endif
