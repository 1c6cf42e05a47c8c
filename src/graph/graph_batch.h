/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Microsoft Graph JSON batching, pure: up to GRAPH_BATCH_MAX requests in
 * one POST /$batch, and the answers matched back by id (Graph may answer
 * them in any order).  Requests in a batch still count against the
 * per-mailbox limits one by one.
 */
#ifndef EWSGW_GRAPH_BATCH_H
#define EWSGW_GRAPH_BATCH_H

#include <stddef.h>
#include <stdint.h>

struct buf;

#define GRAPH_BATCH_MAX		20

struct graph_batch_req {
	const char	*id;		/* unique in the batch */
	const char	*method;	/* "GET", "POST", "PATCH", "DELETE" */
	const char	*url;		/* relative: "/users/..." */
	const char	*body;		/* a JSON object's text, or NULL */
	const char	*prefer;	/* Prefer header value, or NULL */
};

/*
 * Append the batch body for n requests (1..GRAPH_BATCH_MAX) to b.
 * Returns 0, or -1 with *cause (allocated) for a bad count, a duplicate
 * or empty id, an absolute url, or a body that is not a JSON object.
 */
int	 graph_batch_body(struct buf *, const struct graph_batch_req *,
	    size_t n, char **cause);

struct graph_batch_resp {
	char		*id;		/* owned */
	int		 status;	/* HTTP status of the inner request */
	int64_t		 retry_after_s;	/* headers' Retry-After, -1 if none */
	char		*body;		/* owned; the body re-serialised as
					   JSON text, or NULL */
	size_t		 body_len;
};
struct graph_batch {
	struct graph_batch_resp *v;	/* owned */
	size_t		 n;
};

/* Parse a $batch answer: 0, or -1 with *cause.  Free with _free. */
int	 graph_parse_batch(const char *, size_t, struct graph_batch *,
	    char **cause);
/* The answer for id (borrowed) or NULL. */
const struct graph_batch_resp *graph_batch_find(const struct graph_batch *,
	    const char *id);
void	 graph_batch_free(struct graph_batch *);

#endif
