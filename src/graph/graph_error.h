/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Microsoft Graph errors, pure: the {"error": {"code", "message"}} body,
 * Retry-After, and what to do about a status and code.
 */
#ifndef EWSGW_GRAPH_ERROR_H
#define EWSGW_GRAPH_ERROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Read no further: seconds x 1000 stays far from overflow.  Not the
 * pause's bound: the scheduler clamps every server-sent wait alike
 * (THROTTLE_BUSY_MAX_MS in io/throttle.h).
 */
#define GRAPH_RETRY_AFTER_SAT_S	1000000000
#define GRAPH_RETRY_AFTER_DEFAULT_S 10	/* 429/503 without the header */

struct graph_error {
	char		 code[64];	/* "" if absent; truncated if longer */
	char		*message;	/* owned, NULL if absent */
};

/* Parse an error body; 0 if it is one, -1 otherwise (err is empty). */
int	 graph_parse_error(const char *, size_t, struct graph_error *);
void	 graph_error_free(struct graph_error *);

enum graph_action {
	GRAPH_ACT_OK,
	GRAPH_ACT_THROTTLED,	/* 429, 503: wait Retry-After, retry */
	GRAPH_ACT_AUTH,		/* 401: token refused; a new one, once */
	GRAPH_ACT_DENIED,	/* 403: no permission, or the application
				   access policy excludes the mailbox: park
				   it, report it */
	GRAPH_ACT_NOT_FOUND,	/* 404: unknown mailbox or subscription */
	GRAPH_ACT_RESYNC,	/* 410 (delta token gone): full sync */
	GRAPH_ACT_TRANSIENT,	/* other 5xx, network: back off, retry */
	GRAPH_ACT_FATAL,	/* 400 and anything else: do not retry */
	GRAPH_ACT_MAX
};
enum graph_action graph_classify(long status, const char *code);
const char	*graph_action_name(enum graph_action);
/*
 * Whether an error code says Exchange Online has no mailbox for the
 * user: MailboxNotEnabledForRESTAPI or MailboxNotSupportedForRESTAPI
 * (on premises, inactive, soft-deleted or unlicensed), ErrorInvalidUser
 * or ResourceNotFound.  graph_classify makes them NOT_FOUND whatever
 * the 4xx status.  NULL is false.
 */
bool		 graph_no_mailbox(const char *code);

/*
 * A Retry-After value (delta-seconds, or an IMF-fixdate HTTP date
 * compared with now, epoch seconds) into seconds, saturated to
 * [0, GRAPH_RETRY_AFTER_SAT_S]; -1 if value is NULL or unreadable.
 */
int64_t	 graph_retry_after(const char *value, int64_t now);

#endif
