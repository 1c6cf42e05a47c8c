/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Push-notification listener: an HTTP or HTTPS endpoint on the loop that
 * receives Exchange's SendNotification POSTs, parses them, hands them to
 * the owner and answers SendNotificationResult OK or Unsubscribe.
 *
 * It faces the network, so everything is bounded: only requests for the
 * secret token URL are read past their head (others get 403 at once),
 * peers outside the allowlist are closed on accept, at most
 * max_connections are open (a new one closes another, slow or silent
 * ones first), every request has an absolute deadline however
 * its bytes trickle in, bodies have a cap, and a body passes a linear
 * XML pre-scan with tight limits before libxml2 parses it.  Warnings
 * about refused requests are rate-limited.
 */
#ifndef EWSGW_PUSH_H
#define EWSGW_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct config;
struct event_base;
struct ews_notifications;
struct json_writer;
struct push;
struct push_session;

/* Hex digits of the secret token in the notification URL (256 bits). */
#define PUSH_TOKEN_LEN	64

#define PUSH_DEFAULT_MAX_BODY		(256 * 1024)
#define PUSH_DEFAULT_MAX_CONNS		256
#define PUSH_DEFAULT_TIMEOUT_MS		10000

/*
 * Graph change notifications (graph_cb, [graph] notification_url) are
 * POSTed to graph_path/TOKEN, lifecycle notifications to
 * graph_path/TOKEN/lifecycle, with the same token.  A validationToken
 * query is answered at once, 200 text/plain with the decoded token;
 * any other request must carry JSON, which goes to graph_cb (raw,
 * NUL-terminated, borrowed for the call) and is answered 202, or 400
 * when graph_cb returns PUSH_BAD.
 */
typedef int	 (*push_graph_cb)(bool lifecycle, const char *body,
		    size_t len, void *arg);

struct push_opts {
	const char	*listen;	/* "a:port" "[v6]:port" "*:port";
					   NULL: no socket (push_session) */
	const char	*path;		/* path of the url; NULL = "/" */
	const char	*certificate;	/* PEM; NULL = plain HTTP */
	const char	*key;		/* PEM; NULL = in certificate */
	const char	*allow;		/* CIDR list (cidr.h); NULL = all */
	const char	*token;		/* PUSH_TOKEN_LEN hex digits; NULL:
					   a random one (tests set it) */
	size_t		 max_body;	/* 0 = PUSH_DEFAULT_MAX_BODY */
	unsigned	 max_connections; /* 0 = PUSH_DEFAULT_MAX_CONNS */
	int64_t		 timeout_ms;	/* per request; 0 = the default */
	const char	*graph_path;	/* NULL: no Graph route */
	push_graph_cb	 graph_cb;	/* called with push_new's arg */
};

/* Verdicts of the notify callback. */
#define PUSH_OK		 1	/* known subscription: continue */
#define PUSH_UNSUBSCRIBE 0	/* unknown or unwanted: end it */
#define PUSH_BAD	(-1)	/* refuse with 400 */

/*
 * A SendNotification, parsed (ews_parse_send_notification), with the raw
 * body (NUL-terminated); all borrowed for the call.  Bodies that do not
 * parse get a 400 without a call.  Returns PUSH_OK, PUSH_UNSUBSCRIBE or
 * PUSH_BAD.
 */
typedef int	 (*push_notify_cb)(const struct ews_notifications *,
		    const char *body, size_t len, void *arg);

/*
 * Fill opts from [push] (borrows conf's strings; the path comes from the
 * path of push.url).  path is allocated, caller frees.
 */
void		 push_opts_from_config(struct push_opts *, char **path,
		    const struct config *);

/*
 * Listen on base (borrowed, must outlive the listener).  Strings in opts
 * are used during the call only.  Returns NULL with *cause set
 * (allocated, caller frees) on a bad address, allowlist or token, a busy
 * port or a bad certificate/key.
 */
struct push	*push_new(struct event_base *, const struct push_opts *,
		    push_notify_cb, void *arg, char **cause);
/* Close the listener and every connection.  NULL is fine. */
void		 push_free(struct push *);
/* The bound port (useful after listening on port 0); 0 without one. */
unsigned	 push_port(const struct push *);
/*
 * The URL to register with Exchange: url (the configured [push] url)
 * with the listener's secret token appended to its path, the only
 * request target it answers; anything else gets 403.  The token is new
 * for every listener.  Returns allocated (caller frees; it holds the
 * token, wipe it), or NULL if url has no "scheme://".
 */
char		*push_notify_url(const struct push *, const char *url);

/*
 * One connection's requests without a socket, for tests and fuzzing: the
 * same code the listener runs on the bytes a client sends.  peer is
 * copied (for log lines).
 */
struct push_session *push_session_new(struct push *, const char *peer);
void		 push_session_free(struct push_session *);
/*
 * Feed bytes the client sent; answers (interim 100 Continue included)
 * are appended to out.  *used is set to the bytes consumed: after an
 * answer feeding stops, the rest belongs to the next request.  Returns
 * PUSH_SESSION_MORE (send out, read on), PUSH_SESSION_ANSWERED (send
 * out, then the next request may follow) or PUSH_SESSION_CLOSE (send
 * out, then close without reading further).
 */
#define PUSH_SESSION_MORE	0
#define PUSH_SESSION_ANSWERED	1
#define PUSH_SESSION_CLOSE	2
int		 push_session_feed(struct push_session *, const char *,
		    size_t, size_t *used, struct buf *out);

struct push_stats {
	unsigned	 connections;	/* open now */
	uint64_t	 accepted;
	uint64_t	 denied;	/* closed on accept: not allowed */
	uint64_t	 evicted;	/* closed for a newer one at the cap */
	uint64_t	 timeouts;	/* request deadline passed */
	uint64_t	 requests;
	uint64_t	 ok;
	uint64_t	 unsubscribe;
	uint64_t	 bad;		/* refused: any 4xx or 5xx */
	uint64_t	 forbidden;	/* of those, 403: no valid token */
	uint64_t	 too_large;	/* of those, 413 */
	uint64_t	 unparsable;	/* of those, a body that failed the
					   pre-scan or the parser */
	uint64_t	 log_suppressed; /* warning lines rate-limited away */
	uint64_t	 graph_validations;	/* handshakes answered */
	uint64_t	 graph_ok;	/* Graph notification POSTs taken */
	int64_t		 busy_max_us;	/* longest accept or read callback,
					   CPU time of the loop's thread */
};
/* Live counters (borrowed). */
const struct push_stats *push_get_stats(const struct push *);
/* The counters as one JSON object value. */
void		 push_stats_json(const struct push_stats *,
		    struct json_writer *);

#endif
