/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * HTTP/1.1 request framing for the push listener: bytes in, a request
 * head (method, target, the few headers that matter) and a body out,
 * everything bounded.  The head is reported on its own so the listener
 * can refuse a request before reading any of its body.  Pure.
 */
#ifndef EWSGW_PUSH_REQ_H
#define EWSGW_PUSH_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define PUSH_REQ_MAX_HEAD	8192	/* request line and headers */
#define PUSH_REQ_MAX_HEADERS	64
#define PUSH_REQ_MAX_TARGET	1024

enum push_req_state {
	PUSH_REQ_IDLE,		/* nothing of a request yet */
	PUSH_REQ_HEAD,		/* reading the head */
	PUSH_REQ_HEAD_DONE,	/* head complete: the caller decides */
	PUSH_REQ_BODY,		/* reading the body */
	PUSH_REQ_DONE,		/* request complete */
	PUSH_REQ_ERROR		/* malformed: answer status, close */
};

struct push_req {
	enum push_req_state	 state;
	size_t			 max_body;

	/* The head, valid from PUSH_REQ_HEAD_DONE on. */
	char			 method[16];
	char			 target[PUSH_REQ_MAX_TARGET + 1];
	int			 minor;		/* HTTP/1.minor */
	int64_t			 content_length; /* -1: none */
	bool			 chunked;
	bool			 close;		/* no keep-alive after it */
	bool			 expect_continue;
	char			 content_type[128];	/* "" if absent */

	/* The body, complete at PUSH_REQ_DONE. */
	struct buf		 body;

	/* PUSH_REQ_ERROR: what to answer. */
	int			 status;	/* 400, 413, 431, 501, 505 */
	const char		*error;		/* static */

	/* Parser state. */
	struct buf		 head;
	uint64_t		 remaining;	/* of the length or the chunk */
	int			 chunk;		/* chunked sub-state */
	bool			 chunk_digits;	/* size line has digits */
	bool			 chunk_ext;	/* size line: past the size */
	size_t			 line;		/* bytes of the line so far */
	size_t			 trailer;	/* trailer bytes so far */
};

/* Ready for a request with a body of at most max_body bytes. */
void	 push_req_init(struct push_req *, size_t max_body);
/* Forget the request (keep-alive: the next one starts IDLE). */
void	 push_req_reset(struct push_req *);
void	 push_req_free(struct push_req *);

/*
 * Feed len bytes.  Returns how many were consumed: it stops after the
 * head (state HEAD_DONE; call push_req_body() to go on), at the end of
 * the request (DONE: the rest belongs to the next one) and on an error
 * (ERROR).  In the other states everything is consumed.
 */
size_t	 push_req_feed(struct push_req *, const char *, size_t);
/* After HEAD_DONE: read the body (a request without one is DONE). */
void	 push_req_body(struct push_req *);

#endif
