/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * etcd v3 client over etcd's JSON/HTTP gateway, on the daemon's curl
 * multi engine and event loop: never blocks.  Calls (one request, one
 * answer) fail over to the next endpoint when one does not answer or
 * says it cannot serve (Unavailable: no leader, stopping); watches
 * stream one answer per line until they end.  Messages: etcd_msg.h.
 */
#ifndef EWSGW_ETCD_H
#define EWSGW_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "cluster/etcd_msg.h"

struct event_base;
struct etcd;
struct etcd_call;
struct etcd_watch;

struct etcd_opts {
	/* Base URLs ("https://host:2379"), copied; at least one. */
	const char *const *endpoints;
	size_t		 nendpoints;
	const char	*ca_file;	/* NULL: the system trust store */
	const char	*client_cert;	/* PEM, or NULL */
	const char	*client_key;	/* PEM, or NULL */
	int64_t		 connect_timeout_ms;	/* 0: 2 s */
};

/*
 * A client on base (borrowed, must outlive it).  TLS peers are always
 * verified.  Returns NULL with *cause set (allocated, caller frees).
 */
struct etcd	*etcd_new(struct event_base *, const struct etcd_opts *,
		    char **cause);
/* Cancel every call and watch (no callbacks) and free; NULL is fine. */
void		 etcd_free(struct etcd *);

enum etcd_status {
	ETCD_OK,		/* resp holds the answer */
	ETCD_ERROR,		/* etcd refused: resp->code, resp->message */
	ETCD_UNREACHABLE	/* no endpoint gave an answer */
};

/* The outcome; everything borrowed for the duration of the callback. */
struct etcd_result {
	enum etcd_status	 status;
	const struct etcd_resp	*resp;		/* OK and ERROR */
	const char		*error;		/* why, unless OK */
	const char		*endpoint;	/* answered, or tried last */
	int64_t			 elapsed_ms;
};

/*
 * Called once per call unless cancelled, from the loop; the call handle
 * is invalid once it returns.
 */
typedef void (*etcd_done_cb)(const struct etcd_result *, void *arg);

/*
 * POST body (a request from etcd_msg.h, copied) to path ("/v3/kv/range")
 * on the current endpoint, then on each other one in turn until one
 * answers; each try may take timeout_ms.  Never returns NULL.
 */
struct etcd_call *etcd_call_start(struct etcd *, const char *path,
		    const struct buf *body, int64_t timeout_ms,
		    etcd_done_cb, void *arg);
/* No callback will come; legal until the callback ran.  NULL is fine. */
void		 etcd_call_cancel(struct etcd_call *);

/*
 * A watch: resp is one answer of the stream (created, events, canceled,
 * or an error), borrowed.  When the stream ends, resp is NULL and why
 * says how; the handle is gone after that call.
 */
typedef void (*etcd_watch_cb)(const struct etcd_resp *resp, const char *why,
		    void *arg);

/*
 * Open a watch stream with a create request (etcd_msg_watch, copied) on
 * the current endpoint.  No fail-over inside: when it ends, the owner
 * starts a new one (the endpoint has moved on if this one failed).
 */
struct etcd_watch *etcd_watch_start(struct etcd *, const struct buf *body,
		    etcd_watch_cb, void *arg);
/* No callback will come; legal at any time, also from the callback. */
void		 etcd_watch_cancel(struct etcd_watch *);

/* The endpoint calls go to first (borrowed). */
const char	*etcd_endpoint(const struct etcd *);

struct etcd_stats {
	uint64_t	 calls;
	uint64_t	 failovers;	/* moved on to the next endpoint */
	uint64_t	 unreachable;	/* calls no endpoint answered */
	uint64_t	 watches;
};
const struct etcd_stats *etcd_stats(const struct etcd *);

#endif
