/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Autodiscover for a set of mailboxes: batched GetUserSettings (up to 100
 * users per request) through the EWS call path and its budget, retried
 * when the server is busy, redirects followed (except to Exchange Online,
 * which ends the mailbox's run), the URLs of each address's domain tried
 * in turn unless one URL is given; one result table at the end.
 */
#ifndef EWSGW_DISCOVER_H
#define EWSGW_DISCOVER_H

#include <stddef.h>
#include <stdint.h>

#include "ews/autodiscover.h"

struct event_base;
struct ews_ctx;
struct discover;

struct discover_opts {
	const char	*url;		/* the Autodiscover URL (copied); NULL:
					   ad_candidates() of each address */
	const char	*version;	/* RequestedServerVersion (copied);
					   NULL omits it */
	unsigned	 settings;	/* AD_SETTING_BITs; 0: all */
	unsigned	 max_hops;	/* redirects per mailbox; 0: 3 */
	unsigned	 max_attempts;	/* tries of one URL while it is busy
					   or unreachable; 0: 3 */
	int64_t		 retry_ms;	/* first retry delay, doubled; 0: 1 s */
	unsigned	 batch;		/* users per request, 1..100; 0: 100 */
};

enum discover_status {
	DISCOVER_OK,		/* the settings came back (user.values) */
	DISCOVER_INVALID_USER,	/* Autodiscover does not know the mailbox */
	DISCOVER_FAILED,	/* no URL answered for it; code says why */
	DISCOVER_EXCHANGE_ONLINE, /* redirected to Exchange Online (a hybrid
				   server's answer for a migrated mailbox):
				   not followed; as or via says where */
	DISCOVER_STATUS_MAX
};
const char	*discover_status_name(enum discover_status);

struct discover_result {
	char		*address;	/* as asked; owned */
	enum discover_status status;
	char		 code[64];	/* the last ErrorCode, "HTTP404",
					   transport class or "NoAnswer" */
	char		*via;		/* the URL that answered; owned, NULL */
	char		*as;		/* the address that answered after a
					   RedirectAddress; owned, NULL */
	unsigned	 hops;		/* redirects followed */
	struct ad_user	 user;		/* the answer (values); owned */
};

struct discover_stats {
	uint64_t	 requests;	/* GetUserSettings sent */
	uint64_t	 users;		/* users asked, over all requests */
	uint64_t	 redirects;	/* RedirectAddress and RedirectUrl
					   followed */
	uint64_t	 retries;	/* users asked again (busy, no
					   answer) */
	uint64_t	 next_url;	/* users moved on to the next URL */
};

/*
 * Called once, from loop context, when every address has its result:
 * rows[i] belongs to addresses[i].  rows stay valid until discover_free;
 * the callback may call discover_free.
 */
typedef void	(*discover_done_cb)(struct discover *,
		    const struct discover_result *rows, size_t n, void *arg);

/*
 * Start Autodiscover for n addresses (copied) on base, through ews (both
 * borrowed, must outlive the run).  Returns the run (free
 * with discover_free), or NULL with *cause (allocated, caller frees) when
 * the options are out of range or n is 0.  Addresses that cannot be asked
 * (no valid domain without opts->url, not UTF-8) fail at once with code
 * "InvalidAddress".
 */
struct discover	*discover_start(struct event_base *, struct ews_ctx *,
		    const struct discover_opts *, const char *const *addresses,
		    size_t n, discover_done_cb, void *arg, char **cause);
/* Cancel what is still running (no callback) and free everything. */
void		 discover_free(struct discover *);
/* Counters (borrowed, live). */
const struct discover_stats *discover_stats(const struct discover *);

#endif
