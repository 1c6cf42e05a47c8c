/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The service account's state machine: verdicts from finished requests
 * in, the scheduler's gate and one journal line per state change out.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/conf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "io/account.h"
#include "io/throttle.h"

/* Unreachable: the first wait, when [throttling] gives none. */
#define REACH_RETRY_MS		1000

struct account {
	struct throttle		*t;
	struct account_opts	 o;
	char			*url;		/* owned copy of o.url */

	enum account_state	 state;
	int64_t			 since;		/* wall ms the state began */
	int64_t			 next;		/* mono ms, next attempt */
	int64_t			 last_answer;	/* mono ms, any HTTP answer */

	/* Back-off steps taken, kept until the account is OK again. */
	unsigned		 auth_steps;
	unsigned		 reach_steps;
	unsigned		 denied_steps;

	uint64_t		 failed_logins;	/* since the last OK */
	uint64_t		 failed_total;
	unsigned		 denied_run;	/* refusals in a row */
	uint64_t		 denied_total;
	bool			 served_any;	/* some answer was accepted */
	char			 code[64];	/* what the state is about */
	char			 reason[256];
};

static const char *const state_names[ACCOUNT_STATE_MAX] = {
	"probing", "ok", "auth-failing", "unreachable", "impersonation-denied"
};

static void	 set_state(struct account *, enum account_state, int64_t);
static void	 reschedule(struct account *, int64_t);
static int64_t	 step_ms(const struct account *);
static void	 iso(const struct account *, int64_t, int64_t,
		    char [TIME_ISO8601_LEN]);
static void	 note(struct account *, const struct account_report *);

const char *
account_state_name(enum account_state s)
{
	return ((unsigned)s < ACCOUNT_STATE_MAX ? state_names[s] : "unknown");
}

void
account_opts_from_config(struct account_opts *o, const struct config *conf)
{
	memset(o, 0, sizeof *o);
	o->url = conf->exchange.url;
	o->login_retry_ms = conf->exchange.login_retry_ms;
	o->login_retry_max_ms = conf->exchange.login_retry_max_ms;
	/* Reaching Exchange again follows the budgets' back-off. */
	o->reach_retry_ms = REACH_RETRY_MS;
	o->reach_retry_max_ms = conf->throttling.backoff_max_ms;
}

static void
set_opts(struct account *a, const struct account_opts *o)
{
	free(a->url);
	a->o = *o;
	a->url = xstrdup(o->url != NULL ? o->url : "");
	a->o.url = a->url;
	if (a->o.mono == NULL)
		a->o.mono = time_mono_ms;
	if (a->o.wall == NULL)
		a->o.wall = time_wall_ms;
	if (a->o.login_retry_ms < 1)
		a->o.login_retry_ms = 1;
	if (a->o.login_retry_max_ms < a->o.login_retry_ms)
		a->o.login_retry_max_ms = a->o.login_retry_ms;
	if (a->o.reach_retry_ms < 1)
		a->o.reach_retry_ms = 1;
	if (a->o.reach_retry_max_ms < a->o.reach_retry_ms)
		a->o.reach_retry_max_ms = a->o.reach_retry_ms;
	if (a->o.denied_streak == 0)
		a->o.denied_streak = ACCOUNT_DENIED_STREAK;
}

struct account *
account_new(struct throttle *t, const struct account_opts *o)
{
	struct account	*a;

	a = xcalloc(1, sizeof *a);
	a->t = t;
	set_opts(a, o);
	a->last_answer = INT64_MIN;
	a->since = a->o.wall();
	a->state = ACCOUNT_PROBING;
	/* One request proves the credentials before thousands follow. */
	throttle_gate_set(t, THROTTLE_GATE_PROBE, 0);
	return (a);
}

void
account_free(struct account *a)
{
	if (a == NULL)
		return;
	free(a->url);
	free(a);
}

/* The wait before the next attempt in the current state. */
static int64_t
step_ms(const struct account *a)
{
	int64_t		 d, cap;
	unsigned	 n, i, mul;

	switch (a->state) {
	case ACCOUNT_UNREACHABLE:
		d = a->o.reach_retry_ms;
		cap = a->o.reach_retry_max_ms;
		n = a->reach_steps;
		mul = 2;
		break;
	case ACCOUNT_DENIED:
		d = a->o.login_retry_ms;
		cap = a->o.login_retry_max_ms;
		n = a->denied_steps;
		mul = 3;
		break;
	default:
		/*
		 * Tripling: with 1m and 30m, failed logins at 0, 1, 4, 13,
		 * 40, 70 ... minutes, so at most 3 in the first 5 and 4 in
		 * any 15 before the wait passes 15 minutes.
		 */
		d = a->o.login_retry_ms;
		cap = a->o.login_retry_max_ms;
		n = a->auth_steps;
		mul = 3;
		break;
	}
	for (i = 1; i < n && d < cap; i++)
		d *= mul;
	return (d < cap ? d : cap);
}

/* Close the gate until the next step. */
static void
reschedule(struct account *a, int64_t now)
{
	a->next = now + step_ms(a);
	throttle_gate_set(a->t, THROTTLE_GATE_CLOSED, a->next);
}

/* Mono time m as ISO 8601 wall time, given both clocks at now. */
static void
iso(const struct account *a, int64_t m, int64_t now,
    char out[TIME_ISO8601_LEN])
{
	time_format_iso8601((a->o.wall() + (m - now)) / 1000, out);
}

/* Remember what the state is about. */
static void
note(struct account *a, const struct account_report *r)
{
	snprintf(a->code, sizeof a->code, "%s", r->code != NULL ? r->code :
	    "");
	snprintf(a->reason, sizeof a->reason, "%s", r->reason != NULL ?
	    r->reason : (r->code != NULL ? r->code : "no answer"));
}

/* The single state change: entry actions and the one journal line. */
static void
set_state(struct account *a, enum account_state s, int64_t now)
{
	enum account_state	 old = a->state;
	char			 when[TIME_ISO8601_LEN];
	struct log_ctx		 ctx = { .response_code = a->code[0] != '\0' ?
				    a->code : NULL };

	if (old != s) {
		log_debug("account: %s -> %s", account_state_name(old),
		    account_state_name(s));
		a->since = a->o.wall();
	}
	a->state = s;
	/* Rights: a block of mailboxes outside the scope should not hold
	 * every probe. */
	throttle_gate_spread(a->t, s == ACCOUNT_DENIED);
	switch (s) {
	case ACCOUNT_PROBING:
		a->next = now;
		throttle_gate_set(a->t, THROTTLE_GATE_PROBE, 0);
		if (old == ACCOUNT_UNREACHABLE)
			log_notice("Exchange at %s answers again; checking the "
			    "service account's credentials", a->url);
		break;
	case ACCOUNT_OK:
		throttle_gate_set(a->t, THROTTLE_GATE_OPEN, 0);
		if (old == ACCOUNT_AUTH_FAILING || a->failed_logins > 0)
			log_notice("Exchange accepts the service account's "
			    "credentials again (%llu failed logins before)",
			    (unsigned long long)a->failed_logins);
		else if (old == ACCOUNT_UNREACHABLE)
			log_notice("Exchange at %s reachable again", a->url);
		else if (old == ACCOUNT_DENIED)
			log_notice("Exchange allows impersonation again");
		a->auth_steps = a->reach_steps = a->denied_steps = 0;
		a->failed_logins = 0;
		a->denied_run = 0;
		a->next = 0;
		a->code[0] = a->reason[0] = '\0';
		break;
	case ACCOUNT_AUTH_FAILING:
		reschedule(a, now);
		iso(a, a->next, now, when);
		log_emit(LOG_ERR, &ctx, "authentication failing: Exchange "
		    "refuses the service account's credentials (%s); requests "
		    "stopped, next login attempt at %s, then one per back-off "
		    "step; fix the password and reload", a->reason, when);
		break;
	case ACCOUNT_UNREACHABLE:
		reschedule(a, now);
		log_emit(LOG_WARNING, &ctx, "cannot reach Exchange at %s: %s; "
		    "requests stopped, one attempt at a time until it answers",
		    a->url, a->reason);
		break;
	case ACCOUNT_DENIED:
		reschedule(a, now);
		iso(a, a->next, now, when);
		log_emit(LOG_ERR, &ctx, "impersonation refused for %u "
		    "mailboxes in a row (%s): the service account has lost "
		    "the ApplicationImpersonation role; requests stopped, next "
		    "attempt at %s", a->denied_run, a->code, when);
		break;
	default:
		break;
	}
}

void
account_reload(struct account *a, const struct account_opts *o)
{
	int64_t	 now;

	set_opts(a, o);
	now = a->o.mono();
	switch (a->state) {
	case ACCOUNT_AUTH_FAILING:
	case ACCOUNT_UNREACHABLE:
	case ACCOUNT_DENIED:
		/* The password file was read again: try it now. */
		log_info("reload: account %s, trying again now",
		    account_state_name(a->state));
		a->next = now;
		throttle_gate_set(a->t, THROTTLE_GATE_PROBE, 0);
		break;
	default:
		break;
	}
}

void
account_report(struct account *a, const struct account_report *r)
{
	int64_t			 now = a->o.mono();
	enum account_state	 s = a->state;
	char			 when[TIME_ISO8601_LEN];

	switch (r->verdict) {
	case ACCOUNT_V_HTTP:
	case ACCOUNT_V_ACCEPTED:
	case ACCOUNT_V_DENIED:
	case ACCOUNT_V_REFUSED:
		a->last_answer = now;
		break;
	default:
		break;
	}

	switch (r->verdict) {
	case ACCOUNT_V_REFUSED:
		a->failed_total++;
		a->failed_logins++;
		if (s == ACCOUNT_AUTH_FAILING) {
			/* Requests already in flight count, but only the
			 * probe moves the step. */
			if (!r->probe)
				return;
			a->auth_steps++;
			reschedule(a, now);
			iso(a, a->next, now, when);
			log_info("login attempt refused again (%llu failed "
			    "logins); next attempt at %s",
			    (unsigned long long)a->failed_logins, when);
			return;
		}
		a->auth_steps++;
		note(a, r);
		set_state(a, ACCOUNT_AUTH_FAILING, now);
		return;

	case ACCOUNT_V_UNREACHABLE:
		if (s == ACCOUNT_UNREACHABLE) {
			if (r->probe) {
				a->reach_steps++;
				note(a, r);
				reschedule(a, now);
			}
			return;
		}
		/* An answer came after it was sent: Exchange is there. */
		if (a->last_answer > r->started)
			return;
		/* Gated: only the probe tells about now. */
		if (s != ACCOUNT_OK && s != ACCOUNT_PROBING && !r->probe)
			return;
		a->reach_steps = 1;
		note(a, r);
		set_state(a, ACCOUNT_UNREACHABLE, now);
		return;

	case ACCOUNT_V_NONE:
		/* A probe that got nowhere while unreachable: next step. */
		if (s == ACCOUNT_UNREACHABLE && r->probe) {
			a->reach_steps++;
			reschedule(a, now);
		}
		return;

	case ACCOUNT_V_HTTP:
		if (s == ACCOUNT_UNREACHABLE && r->probe) {
			a->reach_steps = 0;
			set_state(a, ACCOUNT_PROBING, now);
		}
		return;

	case ACCOUNT_V_DENIED:
		a->denied_total++;
		/*
		 * A mailbox never served may simply be outside the role's
		 * scope: its owner parks it.  One that was served before
		 * tells that the rights went away.
		 */
		if (r->served || !a->served_any)
			a->denied_run++;
		if (s == ACCOUNT_DENIED) {
			if (r->probe) {
				a->denied_steps++;
				reschedule(a, now);
			}
			return;
		}
		if (a->denied_run >= a->o.denied_streak && (r->probe ||
		    s == ACCOUNT_OK || s == ACCOUNT_PROBING)) {
			a->denied_steps++;
			note(a, r);
			set_state(a, ACCOUNT_DENIED, now);
			return;
		}
		/* The login worked; this mailbox is parked by its owner. */
		if (s == ACCOUNT_PROBING || r->probe)
			set_state(a, ACCOUNT_OK, now);
		return;

	case ACCOUNT_V_ACCEPTED:
		a->denied_run = 0;
		a->served_any = true;
		if (s != ACCOUNT_OK && (s == ACCOUNT_PROBING || r->probe))
			set_state(a, ACCOUNT_OK, now);
		return;

	default:
		return;
	}
}

enum account_state
account_state(const struct account *a)
{
	return (a->state);
}

bool
account_failing(const struct account *a)
{
	return (a->state == ACCOUNT_AUTH_FAILING ||
	    a->state == ACCOUNT_UNREACHABLE || a->state == ACCOUNT_DENIED);
}

uint64_t
account_failed_logins(const struct account *a)
{
	return (a->failed_logins);
}

uint64_t
account_failed_logins_total(const struct account *a)
{
	return (a->failed_total);
}

bool
account_problem(const struct account *a, char *buf, size_t len)
{
	char	 since[TIME_ISO8601_LEN], next[TIME_ISO8601_LEN];
	int64_t	 now = a->o.mono();

	time_format_iso8601(a->since / 1000, since);
	iso(a, a->next, now, next);
	switch (a->state) {
	case ACCOUNT_AUTH_FAILING:
		snprintf(buf, len, "authentication failing since %s, next "
		    "attempt at %s, %llu failed logins: Exchange refuses the "
		    "service account's credentials (%s); fix the password and "
		    "reload", since, next,
		    (unsigned long long)a->failed_logins, a->reason);
		return (true);
	case ACCOUNT_UNREACHABLE:
		snprintf(buf, len, "cannot reach Exchange at %s: %s (since %s, "
		    "next attempt at %s)", a->url, a->reason, since, next);
		return (true);
	case ACCOUNT_DENIED:
		snprintf(buf, len, "impersonation refused since %s, next "
		    "attempt at %s: %u mailboxes in a row answered %s; check "
		    "the service account's ApplicationImpersonation role",
		    since, next, a->denied_run, a->code);
		return (true);
	default:
		return (false);
	}
}

void
account_json(const struct account *a, struct json_writer *w)
{
	int64_t	 now = a->o.mono();

	json_obj_begin(w);
	json_kv_str(w, "url", a->url);
	json_kv_str(w, "state", account_state_name(a->state));
	json_kv_time(w, "since", a->since / 1000);
	json_kv_time(w, "next_attempt", account_failing(a) ?
	    (a->o.wall() + (a->next - now)) / 1000 : 0);
	json_kv_str(w, "code", a->code[0] != '\0' ? a->code : NULL);
	json_kv_str(w, "reason", a->reason[0] != '\0' ? a->reason : NULL);
	json_kv_int(w, "failed_logins", (int64_t)a->failed_logins);
	json_kv_int(w, "failed_logins_total", (int64_t)a->failed_total);
	json_kv_int(w, "impersonation_refused_in_a_row", a->denied_run);
	json_kv_int(w, "impersonation_refused_total",
	    (int64_t)a->denied_total);
	json_obj_end(w);
}

void
account_prometheus(const struct account *a, struct buf *b)
{
	int	 i;

	buf_puts(b, "# HELP ewsgw_account_state The service account's state "
	    "(1 for the current one).\n# TYPE ewsgw_account_state gauge\n");
	for (i = 0; i < ACCOUNT_STATE_MAX; i++)
		buf_printf(b, "ewsgw_account_state{state=\"%s\"} %d\n",
		    state_names[i], a->state == (enum account_state)i);
	buf_printf(b, "# HELP ewsgw_account_failed_logins_total Requests "
	    "whose credentials Exchange refused.\n"
	    "# TYPE ewsgw_account_failed_logins_total counter\n"
	    "ewsgw_account_failed_logins_total %llu\n",
	    (unsigned long long)a->failed_total);
	buf_printf(b, "# HELP ewsgw_account_impersonation_refused_total "
	    "Requests refused impersonation.\n"
	    "# TYPE ewsgw_account_impersonation_refused_total counter\n"
	    "ewsgw_account_impersonation_refused_total %llu\n",
	    (unsigned long long)a->denied_total);
}
