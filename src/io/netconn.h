/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * A client stream connection on the loop: TCP, or TLS verified with the
 * policy of tls.h, over a libevent bufferevent.  Connect, handshake,
 * reads and writes never block; a deadline bounds connect + handshake.
 * For the sinks that keep their own connections (sip over TCP/TLS,
 * xmpp).
 */
#ifndef EWSGW_NETCONN_H
#define EWSGW_NETCONN_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct event_base;
struct evbuffer;
struct netconn;

enum netconn_event {
	NETCONN_CONNECTED,	/* TCP up, TLS handshake verified */
	NETCONN_DRAINED,	/* everything written went out */
	NETCONN_CLOSED,		/* the peer closed (clean EOF) */
	NETCONN_ERROR		/* connect, TLS, I/O error or timeout */
};

struct netconn_opts {
	SSL_CTX		*ssl_ctx;	/* borrowed; NULL = plain TCP */
	const char	*peer_name;	/* TLS: SNI and the name verified */
	int64_t		 timeout_ms;	/* connect + handshake deadline */
};

/* Bytes arrived; consume what is complete from in (borrowed). */
typedef void	(*netconn_read_cb)(struct netconn *, struct evbuffer *in,
		    void *arg);
/*
 * State news; why is a message for NETCONN_ERROR (borrowed), else NULL.
 * After CLOSED or ERROR nothing more comes: free the connection (from
 * the callback is fine).
 */
typedef void	(*netconn_event_cb)(struct netconn *, enum netconn_event,
		    const char *why, void *arg);

/*
 * Start connecting to addr.  Callbacks come from the loop only, never
 * from inside this call.  Returns a new connection (free with
 * netconn_free) or NULL with *cause set (allocated, caller frees).
 */
struct netconn	*netconn_connect(struct event_base *, const struct sockaddr *,
		    socklen_t, const struct netconn_opts *, netconn_read_cb,
		    netconn_event_cb, void *arg, char **cause);

/*
 * Hand the connection to another owner: later callbacks get arg.  Fine
 * at any time from the loop, not from inside a callback of this
 * connection.
 */
void		 netconn_set_arg(struct netconn *, void *arg);

/* Queue bytes for sending (copied); fine before CONNECTED. */
void		 netconn_write(struct netconn *, const void *, size_t);

/* Bytes queued but not yet sent. */
size_t		 netconn_output_len(const struct netconn *);


/*
 * Our end of the connection as "IP:PORT" ("[IPv6]:PORT") into out, or
 * -1 when it has no address yet.
 */
int		 netconn_local(const struct netconn *, char *out, size_t len);

/*
 * An address as "IP:PORT" ("[IPv6]:PORT") into out.  Returns 0, or -1
 * for another family.
 */
int		 netconn_addr_string(const struct sockaddr *, char *out,
		    size_t len);

/* Close at once (nothing more is sent) and free; NULL is fine. */
void		 netconn_free(struct netconn *);

#endif
