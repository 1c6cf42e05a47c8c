/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * GetStreamingEvents body decoder: byte chunks of one long HTTP response
 * in, one callback per notification, heartbeat and error out.  Pure.
 */
#ifndef EWSGW_STREAM_H
#define EWSGW_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "ews/ews_parse.h"

#define STREAM_MAX_ENVELOPE	(1024 * 1024)	/* default cap per envelope */
#define STREAM_MAX_DEPTH	EWS_MAX_DEPTH

/*
 * Callbacks; any may be NULL.  Everything passed is borrowed for the call
 * only.  A callback must not call stream_feed() or stream_free() on the
 * stream that called it; to stop, remember it and act after stream_feed()
 * returns.  Within one envelope the order is: notifications, then errors,
 * then the connection status.
 */
struct stream_cb {
	/* One m:Notification (one subscription's events). */
	void	(*notification)(void *arg, const struct ews_notification *);
	/* ConnectionStatus: OK (heartbeat) or Closed (the body ends). */
	void	(*connection)(void *arg, enum ews_conn_status);
	/* ResponseClass Error naming the subscriptions it applies to. */
	void	(*sub_error)(void *arg, const struct ews_status *,
		    char *const *ids, size_t nids);
	/*
	 * An error for the whole connection: ResponseClass Error without
	 * ErrorSubscriptionIds (ErrorServerBusy with backoff_ms,
	 * ErrorExceededConnectionCount, ...) or a SOAP Fault.
	 */
	void	(*error)(void *arg, const struct ews_status *);
};

struct stream;

/*
 * New decoder; cb is copied, arg is passed to the callbacks,
 * max_envelope 0 means STREAM_MAX_ENVELOPE.  Returns allocated, free with
 * stream_free.
 */
struct stream	*stream_new(const struct stream_cb *cb, void *arg,
		    size_t max_envelope);
void		 stream_free(struct stream *);
/* Forget all state, ready for a new response body (after reconnect). */
void		 stream_reset(struct stream *);

/*
 * Feed len bytes of the body, split anywhere.  Complete envelopes are
 * decoded and dispatched before it returns.  Returns 0, or -1 when the
 * body is broken (not XML, an envelope over the cap or nested too deep,
 * text or a DOCTYPE between envelopes, an envelope that does not parse):
 * the stream then stays broken until stream_reset, and the caller should
 * drop the connection.
 */
int		 stream_feed(struct stream *, const char *, size_t);
/*
 * The body ended: returns 0 if it ended between envelopes, -1 if it was
 * broken or stopped inside one.
 */
int		 stream_end(struct stream *);
/* Why the stream broke (borrowed), or NULL. */
const char	*stream_error(const struct stream *);
/* Bytes of buffer the decoder holds now (for status and tests). */
size_t		 stream_buffered(const struct stream *);
/* Envelopes decoded since the last reset. */
uint64_t	 stream_count(const struct stream *);

#endif
