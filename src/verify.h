/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Preflight diagnostics (ewsgw --verify): a checklist run against the
 * Exchange server the way an administrator sets it up, each check with
 * PASS / WARN / FAIL, what was seen, and the fix.
 */
#ifndef EWSGW_VERIFY_H
#define EWSGW_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct config;
struct event_base;
struct json_writer;
struct verify;

struct verify_opts {
	const char	**mailboxes;	/* --mailbox, borrowed */
	size_t		  nmailboxes;
	int		  json;		/* --json */
	int		  probe;	/* --probe-throttling */
};

/* Run the checklist, print the report; returns 0 when nothing failed. */
int	 verify_run(const struct config *, const struct verify_opts *);

/* How many mailboxes are tried when no --mailbox is given. */
#define VERIFY_SAMPLE	5

enum verify_verdict { VERIFY_PASS, VERIFY_WARN, VERIFY_FAIL };

/*
 * Called once when every check has run (or after verify_stop), from the
 * loop.  The handle stays valid: read it with verify_failed(),
 * verify_write_checks() or verify_print(), then free it with
 * verify_free() (which may be called from inside the callback).
 */
typedef void (*verify_done_cb)(struct verify *, void *arg);

/*
 * Start the checklist on base (borrowed, must outlive the handle) with
 * conf and opts (borrowed until done runs; the mailbox strings are
 * copied).  The checks run one after another on the loop, each request
 * within the configured budgets (except the explicit probe).  Returns
 * the handle; done runs later, never from inside verify_start.
 */
struct verify	*verify_start(struct event_base *, const struct config *,
		    const struct verify_opts *, verify_done_cb done, void *arg);
/*
 * Stop now: requests in flight are cancelled (server-side subscriptions
 * of the running check are left to expire), done is called from the
 * loop with the checks finished so far.  Safe to call twice.
 */
void		 verify_stop(struct verify *);
/* Cancel everything without calling done and free; NULL is fine. */
void		 verify_free(struct verify *);

/* Whether any check FAILed (or the run was stopped before the end). */
bool		 verify_failed(const struct verify *);
/*
 * Write the members "passed": bool, "complete": bool and
 * "checks": [{"name","verdict","summary","seen","fix"[,"mailbox"]}...]
 * into an object the caller has opened (e.g. a control answer).
 */
void		 verify_write_checks(const struct verify *, struct json_writer *);
/* The report as text (one block per check) or as a JSON document. */
void		 verify_print(const struct verify *, FILE *, bool json);

/* How long the control socket's verify may hold the daemon's loop. */
#define VERIFY_CTL_TIMEOUT_MS	30000

/*
 * For the control socket's synchronous provider: run the checklist on a
 * private event_base (the daemon's loop is not entered) for at most
 * timeout_ms and write its members into w.  Returns 0, or -1 with *cause
 * (allocated) when it could not start.
 */
int		 verify_sync_json(const struct config *, const struct verify_opts *,
		    int64_t timeout_ms, struct json_writer *w, char **cause);

#endif
