/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * SIP non-INVITE client transactions (RFC 3261 17.1.2) over UDP, TCP or
 * TLS to one server located by RFC 3263: Timer E retransmits over UDP
 * (T1 doubling to T2), Timer F ends every transaction (64 * T1);
 * responses are matched by the Via branch.  Everything on the loop.
 */
#ifndef EWSGW_SIP_TRANSPORT_H
#define EWSGW_SIP_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "sinks/sip_locate.h"
#include "sinks/sip_msg.h"

struct buf;
struct dns_resolver;
struct event_base;
struct sip_transport;
struct sip_tx;

#define SIP_T1_DEFAULT		500	/* ms, RFC 3261 */
#define SIP_T2_DEFAULT		4000	/* ms */

struct sip_transport_opts {
	struct sip_target	 target;	/* strings copied */
	SSL_CTX			*ssl_ctx;	/* borrowed; for TLS hops */
	/* The name the certificate must hold; NULL: the target host. */
	const char		*tls_name;
	int64_t			 t1;		/* ms */
	int64_t			 t2;		/* ms */
	int64_t			 connect_timeout; /* ms, TCP + TLS */
};

/*
 * Write the request into out for the hop it goes over: its Via
 * transport ("UDP", "TCP", "TLS"), our address there ("host:port") and
 * the transaction's branch.  Called once per transaction, when the
 * transport is ready; retransmissions resend the same bytes.
 */
typedef void	(*sip_tx_build_cb)(struct buf *out, const char *via_proto,
		    const char *via_host, const char *branch, void *arg);

/*
 * The transaction ended: with its final response (borrowed), or with
 * resp NULL and why (borrowed): timeout, transport error.  The
 * transaction is gone when this runs; starting new ones is fine.
 */
typedef void	(*sip_tx_done_cb)(const struct sip_response *resp,
		    const char *why, void *arg);

/*
 * A transport towards opts->target; nothing happens until the first
 * transaction.  Borrows base and dns (both outlive it).  Returns a new
 * transport; free with sip_transport_free.
 */
struct sip_transport *sip_transport_new(struct event_base *,
		    struct dns_resolver *, const struct sip_transport_opts *);

/*
 * Start a transaction: build is called when the server is reached, done
 * once at the end, always from the loop (never from inside this call).
 * Returns a handle valid until done runs or sip_tx_cancel.
 */
struct sip_tx	*sip_tx_start(struct sip_transport *, sip_tx_build_cb,
		    sip_tx_done_cb, void *arg);

/* Forget a transaction: done is not called.  NULL is fine. */
void		 sip_tx_cancel(struct sip_tx *);

/* Cancel every transaction (no callbacks), close, free. */
void		 sip_transport_free(struct sip_transport *);


/*
 * Whether the last attempt to reach the server worked, and a short
 * description ("udp 127.0.0.1:5060", or the last error) in out.
 */
bool		 sip_transport_status(const struct sip_transport *,
		    char *out, size_t len);

/* hex random token of 2 * nbytes characters (nbytes <= 32) into out. */
void		 sip_token(char *out, size_t nbytes);

#endif
