/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Push-notification listener: an HTTP or HTTPS endpoint on the loop that
 * receives Exchange's SendNotification POSTs, parses them, hands them to
 * the owner and answers SendNotificationResult OK or Unsubscribe.
 */
#ifndef EWSGW_PUSH_H
#define EWSGW_PUSH_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct event_base;
struct ews_notifications;
struct json_writer;
struct push;

/* Hex digits of the secret token in the notification URL (256 bits). */
#define PUSH_TOKEN_LEN	64

struct push_opts {
	const char	*listen;	/* "a:port" "[v6]:port" "*:port" */
	const char	*path;		/* path of the url; NULL = "/" */
	const char	*certificate;	/* PEM; NULL = plain HTTP */
	const char	*key;		/* PEM; NULL = in certificate */
	size_t		 max_body;	/* 0 = 1 MiB; larger gets 413 */
	unsigned	 max_connections;	/* 0 = 256 */
	int		 timeout_s;	/* idle/read timeout; 0 = 30 */
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
 * (allocated, caller frees) on a bad address, a busy port or a bad
 * certificate/key.
 */
struct push	*push_new(struct event_base *, const struct push_opts *,
		    push_notify_cb, void *arg, char **cause);
/* Close the listener and every connection.  NULL is fine. */
void		 push_free(struct push *);
/* The bound port (useful after listening on port 0). */
unsigned	 push_port(const struct push *);
/*
 * The URL to register with Exchange: url (the configured [push] url)
 * with the listener's secret token appended to its path, the only
 * request target it answers; anything else gets 403.  The token is new
 * for every listener.  Returns allocated (caller frees; it holds the
 * token, wipe it), or NULL if url has no "scheme://".
 */
char		*push_notify_url(const struct push *, const char *url);

struct push_stats {
	uint64_t	 requests;
	uint64_t	 ok;
	uint64_t	 unsubscribe;
	uint64_t	 bad;		/* refused: 400, 403, 405, 413 */
	uint64_t	 forbidden;	/* of those, 403: no valid token */
	uint64_t	 unparsable;	/* of those, not parsable */
	unsigned	 connections;	/* open now */
	uint64_t	 paused;	/* accept paused at the limit */
};
/* Live counters (borrowed). */
const struct push_stats *push_get_stats(const struct push *);
/* The counters as one JSON object value. */
void		 push_stats_json(const struct push_stats *, struct json_writer *);

#endif
