/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Fakes for the unit tests of the subscription manager's state machines,
 * chrony's way: a test includes this header and then the .c under test
 * (#include "subs/mailbox.c").  The macros below rename the clock and the
 * EWS call path that file calls, so the test sets the time and grants
 * and answers every request itself, deterministically; everything else
 * is the real library.  A Graph mailbox's reads and subscription
 * (graphread.h) are faked the same way: the test answers each with the
 * result graphread would hand back.
 */
#ifndef EWSGW_SUBS_FAKE_H
#define EWSGW_SUBS_FAKE_H

#define time_mono_ms		fake_time_mono_ms
#define time_wall_ms		fake_time_wall_ms
#define ews_call_init		fake_ews_call_init
#define ews_call_submit		fake_ews_call_submit
#define ews_call_cancel		fake_ews_call_cancel
#define ews_call_busy		fake_ews_call_busy
#define ews_call_request	fake_ews_call_request
#define ews_ctx_throttle	fake_ews_ctx_throttle
#define graphread_new		fake_graphread_new
#define graphread_free		fake_graphread_free
#define graphread_start		fake_graphread_start
#define graphread_busy		fake_graphread_busy
#define graphread_cancel	fake_graphread_cancel
#define graphread_subscribe	fake_graphread_subscribe
#define graphread_renew		fake_graphread_renew
#define graphread_unsubscribe	fake_graphread_unsubscribe
#define graphread_sub_busy	fake_graphread_sub_busy
#define graphread_sub_cancel	fake_graphread_sub_cancel
#define graphread_json		fake_graphread_json

#include <stdbool.h>
#include <stdint.h>

#include "base/conf.h"
#include "base/timeutil.h"
#include "io/ews.h"
#include "io/throttle.h"
#include "subs/env.h"
#include "subs/graphread.h"

extern int64_t		 fake_mono;	/* time_mono_ms() */
extern int64_t		 fake_wall;	/* time_wall_ms() */
extern unsigned		 fake_submits;	/* ews_call_submit calls */
extern unsigned		 fake_cancels;	/* cancels of a busy call */
/* What the last stream's verdict callback returned. */
extern struct throttle_outcome fake_verdict;

/* Clock at a fixed instant, counters zero, a fresh throttle. */
void	 fake_setup(void);
void	 fake_teardown(void);
/*
 * fake_setup(), then the services lent to the module under test: a new
 * loop, the configuration parsed from text (it must be valid) and a
 * seeded random source; no EWS context (the call path is faked).
 * Returns the configuration, which a test may change.
 */
struct config	*fake_env_setup(struct subs_env *, const char *text);
/* Free what fake_env_setup() made, then fake_teardown(). */
void		 fake_env_teardown(struct subs_env *, struct config *);

/* Queued for op and not yet granted (false for a NULL call). */
bool	 fake_queued(const struct ews_call *, enum ews_op);
/* Granted and sent, waiting for its answer (false for NULL). */
bool	 fake_sent(const struct ews_call *);
enum throttle_prio fake_prio(const struct ews_call *);

/*
 * Grant a queued call's slot: the owner builds the request (the body in
 * *body if body != NULL, allocated, caller frees).  Returns 0 if sent,
 * -1 if the owner refused to build it (its done then ran with http NULL,
 * as ews.c does).
 */
int	 fake_grant(struct ews_call *, char **body);

/* An answer to a sent call. */
struct fake_answer {
	enum http_result result;
	long		 status;	/* HTTP status */
	const char	*code;		/* NULL: "NoError" */
	const char	*body;		/* NULL: none */
	const char	*cookie;	/* X-BackEndOverrideCookie */
	int64_t		 backoff_ms;	/* BackOffMilliseconds */
};
/* The owner's done (and a stream's verdict first) with that answer. */
void	 fake_answer(struct ews_call *, const struct fake_answer *);
/* Grant, then answer 200 with the fixture's body. */
void	 fake_ok(struct ews_call *, const char *fixture);
/* Grant, then answer a 200 carrying a ResponseCode error. */
void	 fake_error(struct ews_call *, const char *code);

/*
 * Capture what is logged at level and above, from begin to end: end
 * returns it (allocated, caller frees) and logs to stderr again at the
 * level the tests run with.
 */
void	 fake_log_begin(int level);
char	*fake_log_end(void);

/*
 * The Graph reads of one mailbox (graphread.h), faked: what the owner
 * asked for, kept until the test answers it.
 */
enum fake_gsub_op {
	FAKE_GSUB_NONE,
	FAKE_GSUB_SUBSCRIBE,
	FAKE_GSUB_RENEW,
	FAKE_GSUB_UNSUBSCRIBE
};

struct graphread {
	char			*user;		/* owned */
	graphread_cb		 cb;
	void			*arg;
	bool			 busy;		/* a read runs */
	enum graphread_kind	 kind;		/* of the last read started */
	unsigned		 starts;
	unsigned		 cancels;	/* of a running read */
	enum fake_gsub_op	 sub_op;	/* running, or NONE */
	graphsub_cb		 sub_cb;
	char			*sub_id;	/* renew, unsubscribe; owned */
	char			*url;		/* subscribe: copies */
	char			*lc_url;
	char			*client_state;
	int64_t			 expires;
	unsigned		 subscribes;
	unsigned		 renews;
	unsigned		 unsubscribes;
	unsigned		 sub_cancels;	/* of a running one */
};

/* Answer the running read with r (borrowed). */
void	 fake_graph_read(struct graphread *, const struct graphread_result *);
/* Answer the running subscription request with r (borrowed). */
void	 fake_graph_sub(struct graphread *, const struct graphsub_result *);

/* A fixture's content (allocated, caller frees). */
char	*fake_fixture(const char *name);

#endif
