/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The service account as Exchange sees it, judged from every answer:
 * credentials accepted or refused, Exchange reachable or not,
 * impersonation allowed or refused across the board.  These are facts
 * about the account, not about a mailbox, so they are handled once, here,
 * by the scheduler's gate (throttle.h): when the account is refused or
 * Exchange is out of reach nothing is sent but one probe per back-off
 * step, which keeps an Active Directory lockout threshold out of reach.
 *
 * States and what the gate does there:
 *
 *   PROBING        nothing proven yet (start-up, or reachable again after
 *                  an unusable answer): one request at a time
 *   OK             credentials accepted: the gate is open
 *   AUTH_FAILING   credentials refused (401 after the whole handshake, an
 *                  expired password, a disabled account): closed; one
 *                  login attempt after login_retry, the wait tripling per
 *                  refused attempt up to login_retry_max
 *   UNREACHABLE    no connection to Exchange (name, connect, TLS
 *                  handshake, connect timeout) and no answer since the
 *                  failed request was sent: closed; one attempt after
 *                  reach_retry, doubling up to reach_retry_max
 *   DENIED         impersonation refused for denied_streak requests in a
 *                  row with no success between them, counting only
 *                  requests for mailboxes served before (or any, while
 *                  nothing has been served yet), so a block of mailboxes
 *                  outside the role's scope is parked one by one while
 *                  rights taken away from a working account stop
 *                  everything: closed, with the login_retry steps
 *
 * Only the probe's answer can leave a closed or probing state: an answer
 * on a connection NTLM authenticated before the password changed proves
 * nothing about the next login.  Answers to requests that were already
 * in flight when the state changed are counted (a refused one is a
 * failed login at the domain controller) but do not move the steps.
 *
 * Pure apart from logging: the caller passes the verdicts, the clocks
 * are injectable.  Every state change goes through one function that
 * logs old -> new at debug level and runs the entry actions (the gate,
 * the one journal line the state deserves).
 */
#ifndef EWSGW_ACCOUNT_H
#define EWSGW_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct config;
struct json_writer;
struct throttle;

enum account_state {
	ACCOUNT_PROBING,
	ACCOUNT_OK,
	ACCOUNT_AUTH_FAILING,
	ACCOUNT_UNREACHABLE,
	ACCOUNT_DENIED,
	ACCOUNT_STATE_MAX
};

/* What one finished request says about the account. */
enum account_verdict {
	ACCOUNT_V_NONE,		/* nothing (cancelled, reset or timeout on a
				   live connection, TLS verification) */
	ACCOUNT_V_HTTP,		/* an HTTP answer not from past the login
				   (a balancer's 503, a 404) */
	ACCOUNT_V_ACCEPTED,	/* Exchange answered past the login */
	ACCOUNT_V_DENIED,	/* ... refusing to impersonate the mailbox */
	ACCOUNT_V_REFUSED,	/* the credentials were refused */
	ACCOUNT_V_UNREACHABLE,	/* no connection could be made */
	ACCOUNT_V_MAX
};

/* Impersonation refusals in a row that make it the account's problem. */
#define ACCOUNT_DENIED_STREAK	10

struct account_opts {
	const char	*url;		/* the EWS URL, for messages; copied */
	int64_t		 login_retry_ms;
	int64_t		 login_retry_max_ms;
	int64_t		 reach_retry_ms;
	int64_t		 reach_retry_max_ms;
	unsigned	 denied_streak;	/* 0: ACCOUNT_DENIED_STREAK */
	int64_t		 (*mono)(void);	/* ms; NULL: time_mono_ms */
	int64_t		 (*wall)(void);	/* ms; NULL: time_wall_ms */
};

struct account_report {
	enum account_verdict verdict;
	bool		 probe;		/* the request was the gate's probe */
	bool		 served;	/* this request's owner was served
					   before (impersonation worked) */
	int64_t		 started;	/* mono ms when it was sent */
	/* Both borrowed. */
	const char	*code;		/* ResponseCode or HTTP status */
	const char	*reason;	/* transport error text or NULL */
};

struct account;

/* [exchange] and [throttling] keys into opts (borrows conf's strings). */
void		 account_opts_from_config(struct account_opts *,
		    const struct config *);
/*
 * A new account in PROBING, driving t's gate (borrowed; must outlive
 * the account).  opts is copied.
 */
struct account	*account_new(struct throttle *, const struct account_opts *);
void		 account_free(struct account *);
/*
 * New settings (reload), and "try again now": a closed gate probes at
 * once (the password file was just read again), the steps so far kept.
 */
void		 account_reload(struct account *, const struct account_opts *);
/* One finished request (or a stream's first bytes: ACCEPTED). */
void		 account_report(struct account *,
		    const struct account_report *);

enum account_state account_state(const struct account *);
const char	*account_state_name(enum account_state);
/* The state is the account's problem: the daemon is not healthy. */
bool		 account_failing(const struct account *);
/* Refused logins: in the current AUTH_FAILING episode, and in total. */
uint64_t	 account_failed_logins(const struct account *);
uint64_t	 account_failed_logins_total(const struct account *);
/*
 * The status problem, one line ("authentication failing since T, next
 * attempt at T2, N failed logins: ..."), into buf; false when there is
 * none.
 */
bool		 account_problem(const struct account *, char *, size_t);
/* {"state", "since", "next_attempt", "failed_logins", ...} at w. */
void		 account_json(const struct account *, struct json_writer *);
/* Prometheus lines (ewsgw_account_*). */
void		 account_prometheus(const struct account *, struct buf *);

#endif
