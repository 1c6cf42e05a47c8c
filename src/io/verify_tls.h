/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Preflight connection probe: resolve the EWS host, connect, and for
 * https complete a TLS handshake to look at the server certificate (trust,
 * host name, expiry).  Asynchronous on the caller's event loop.
 */
#ifndef EWSGW_VERIFY_TLS_H
#define EWSGW_VERIFY_TLS_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct verify_tls;

enum verify_tls_stage {
	VERIFY_TLS_URL,		/* the URL could not be parsed */
	VERIFY_TLS_RESOLVE,	/* host name did not resolve */
	VERIFY_TLS_CONNECT,	/* TCP connect failed */
	VERIFY_TLS_HANDSHAKE,	/* TLS handshake failed */
	VERIFY_TLS_TIMEOUT,	/* no answer in time */
	VERIFY_TLS_DONE		/* connected (and handshake completed) */
};

/* What was seen; borrowed for the duration of the callback. */
struct verify_tls_info {
	enum verify_tls_stage stage;
	const char	*host;		/* from the URL, "" if unparsable */
	int		 port;
	bool		 https;
	const char	*error;		/* stage < DONE: why */
	/* https and stage DONE: */
	long		 verify_code;	/* X509_V_OK or an X509_V_ERR_* */
	const char	*verify_error;	/* text for verify_code */
	bool		 host_ok;	/* certificate names host */
	const char	*cert_name;	/* subject CN or first DNS SAN */
	const char	*issuer;	/* issuer CN or one-line name */
	int64_t		 not_after;	/* epoch seconds, 0 if unknown */
	const char	*tls_version;	/* "TLSv1.3" */
};

typedef void (*verify_tls_cb)(const struct verify_tls_info *, void *arg);

/*
 * Start the probe for url (copied).  ca_file (NULL: system store) is the
 * trust anchor the certificate is checked against; the handshake always
 * completes so that an untrusted certificate can still be described.
 * cb runs exactly once, later, from the loop, unless verify_tls_cancel
 * is called first.  Returns the handle (owned by the caller: free it with
 * verify_tls_cancel, also after cb ran).
 */
struct verify_tls *verify_tls_start(struct event_base *, const char *url,
	    const char *ca_file, int64_t timeout_ms, verify_tls_cb cb,
	    void *arg);
/* Stop (no callback afterwards) and free; NULL is fine. */
void	 verify_tls_cancel(struct verify_tls *);

#endif
