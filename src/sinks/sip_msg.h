/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * SIP messages for a PUBLISH client, pure: framing on stream transports,
 * responses parsed with libosip2 into what the sink acts on, PUBLISH
 * requests written out.  Buffers in, structs out; fuzzed and unit
 * tested without a network.
 */
#ifndef EWSGW_SIP_MSG_H
#define EWSGW_SIP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sinks/sip_digest.h"

struct buf;

/* Largest message accepted or sent (the UDP datagram limit). */
#define SIP_MSG_MAX	65535

/* A response, as far as a PUBLISH client needs it; strings owned. */
struct sip_response {
	int			 status;	/* 100..699 */
	char			*reason;
	char			*branch;	/* top Via branch */
	char			*call_id;
	uint32_t		 cseq;
	char			*cseq_method;
	char			*etag;		/* SIP-ETag, or NULL */
	int64_t			 expires;	/* seconds, -1: absent */
	int64_t			 min_expires;	/* 423 Min-Expires, -1 */
	bool			 has_challenge;
	struct sip_challenge	 challenge;	/* first Digest challenge */
};

/*
 * Where the next message of a stream (TCP, TLS) ends.  Leading CRLFs
 * (keep-alives) are counted in *skip.  Returns 1 and sets *len (the
 * message after the skipped bytes: headers and Content-Length body), 0
 * when more bytes are needed, -1 with *cause set (allocated, caller
 * frees) when the stream cannot be a SIP stream: no Content-Length, a
 * bad one, or a message over max bytes.
 */
int	 sip_frame(const char *data, size_t n, size_t max, size_t *skip,
	    size_t *len, char **cause);

/*
 * Parse one message.  Returns 1 and fills r for a response, 0 for a
 * request (r untouched: a client ignores them), -1 with *cause set
 * (allocated, caller frees) for something that is not SIP or lacks
 * Via branch, Call-ID or CSeq.  Clear r with sip_response_clear.
 */
int	 sip_response_parse(const char *data, size_t n,
	    struct sip_response *r, char **cause);
void	 sip_response_clear(struct sip_response *);

/* One PUBLISH (RFC 3903); strings borrowed. */
struct sip_publish {
	const char	*uri;		/* Request-URI and To: the presentity */
	const char	*from;		/* From URI */
	const char	*from_tag;
	const char	*call_id;
	uint32_t	 cseq;
	const char	*transport;	/* "UDP", "TCP" or "TLS" (Via) */
	const char	*via_host;	/* our address, "host:port" */
	const char	*branch;	/* must start with z9hG4bK */
	int64_t		 expires;	/* seconds; 0 removes */
	const char	*if_match;	/* SIP-If-Match or NULL (initial) */
	const char	*authorization;	/* header value or NULL */
	bool		 proxy_auth;	/* Proxy-Authorization instead */
	const char	*body;		/* application/pidf+xml, or NULL */
	size_t		 body_len;
	const char	*user_agent;
};

/* Append the whole request to out. */
void	 sip_publish_write(struct buf *out, const struct sip_publish *);

/*
 * A SIP URI's host, port and transport parameter, for where to send
 * (RFC 3263): copies host (without brackets) into host (hostlen bytes),
 * *port = 0 when absent, *tls for sips:, *transport "udp"/"tcp"/"tls"
 * or "" (hostlen-sized buffers too).  Returns 0 or -1 when uri is not a
 * sip: or sips: URI.
 */
int	 sip_uri_target(const char *uri, char *host, size_t hostlen,
	    uint16_t *port, bool *tls, char *transport, size_t tlen);

#endif
