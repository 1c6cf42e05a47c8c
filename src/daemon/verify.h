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
struct ews_ctx;
struct graph_client;
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
 * conf and opts (borrowed for this call only: what the checks need is
 * copied).  The checks run one after another on the loop; each request
 * (except the explicit probe's streams) goes through ews, the EWS call
 * path, and waits there for a slot of its budget.  ews is borrowed (the
 * daemon's, so that the checks count against the budget the daemon
 * keeps) and must outlive the handle; NULL: the run builds its own from
 * conf.  The same for graph, the Graph call path, when conf has Graph
 * mailboxes: their checks (token, Calendars.Read, MailboxSettings.Read,
 * the application access policy) follow the EWS ones.  Returns the
 * handle; done runs later, never from inside verify_start.
 */
struct verify	*verify_start(struct event_base *, struct ews_ctx *ews,
		    struct graph_client *graph,
		    const struct config *, const struct verify_opts *,
		    verify_done_cb done, void *arg);
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
void		 verify_write_checks(const struct verify *,
		    struct json_writer *);
/* The report as text (one block per check) or as a JSON document. */
void		 verify_print(const struct verify *, FILE *, bool json);

/*
 * How long the control socket's verify may take: below ewsgwctl's and
 * the control server's 30 s, so that a slow server still gets an answer
 * with the checks done by then.
 */
#define VERIFY_CTL_TIMEOUT_MS	25000

struct ctl_reply;
struct v_ctl;
/*
 * The control provider's verify (ewsgwctl verify): run the checklist,
 * without the probe, on base (the daemon's loop) through ews and graph
 * (the daemon's call paths and budgets, borrowed; NULL: its own) and answer
 * reply with the members of verify_write_checks() when it is over, or
 * after timeout_ms (0: no limit) with the checks finished by then.  conf is
 * borrowed for this call only (the checks keep their own copy, so a
 * reload may free it).  If the client goes away first, the checks are
 * stopped and freed.  Single-flight: *slot (the caller's, NULL at first)
 * holds the running one until it is over; while it does, another call
 * returns -1 with *cause.  Returns 0 otherwise.
 */
int		 verify_control(struct ctl_reply *, struct event_base *,
		    struct ews_ctx *ews, struct graph_client *graph,
		    const struct config *, int64_t timeout_ms,
		    struct v_ctl **slot, char **cause);

#endif
