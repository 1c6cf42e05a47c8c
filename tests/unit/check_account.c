/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the service account's state machine driving the
 * scheduler's gate, with a fake clock and a fake Exchange that answers
 * every granted request after a fixed latency, at the scale of 10,000
 * mailboxes.
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/log.h"
#include "io/account.h"
#include "io/throttle.h"

#define MIN_MS		(60 * 1000LL)
#define LATENCY_MS	150

static int64_t	 now_mono;
static int64_t
fake_mono(void)
{
	return (now_mono);
}
static int64_t
fake_wall(void)
{
	return (1796500000000LL + now_mono);
}

/* What the fake Exchange answers, per mailbox. */
enum answer { ANS_OK, ANS_REFUSED, ANS_DENIED, ANS_UNREACHABLE };

struct mbx {
	struct throttle_ticket	 tk;
	unsigned		 id;
	int64_t			 done_at;	/* granted: answer time */
	int64_t			 sent_at;
	bool			 probe;
	bool			 finished;	/* answered OK */
	bool			 parked;	/* denied: its owner parks it */
	bool			 served;	/* answered OK before */
};

struct world {
	struct throttle		*t;
	struct account		*a;
	struct mbx		*m;
	unsigned		 n;
	unsigned		 in_flight, peak;
	enum answer		 (*answer)(struct world *, struct mbx *);
	enum answer		 mode;
	/* What Exchange saw. */
	unsigned		 refused;	/* failed logins */
	int64_t			 refused_at[4096];
	unsigned		 denied;
	unsigned		 connects;	/* attempts while unreachable */
	unsigned		 ok;
};

static void
on_grant(struct throttle_ticket *tk, void *arg)
{
	struct world	*w = arg;
	struct mbx	*mb = (struct mbx *)tk;

	mb->sent_at = now_mono;
	mb->done_at = now_mono + LATENCY_MS;
	mb->probe = throttle_ticket_is_probe(w->t, tk);
	if (++w->in_flight > w->peak)
		w->peak = w->in_flight;
}

static enum answer
by_mode(struct world *w, struct mbx *mb)
{
	return (w->mode);
}

static void
world_init(struct world *w, unsigned n, unsigned max_concurrency)
{
	struct throttle_limits	 l;
	struct account_opts	 o;
	unsigned		 i;

	memset(w, 0, sizeof *w);
	now_mono = 0;
	throttle_limits_default(&l);
	l.max_concurrency = max_concurrency;
	l.busy_jitter_max_ms = 0;
	w->t = throttle_new(&l);
	memset(&o, 0, sizeof o);
	o.url = "https://mail.example.com/EWS/Exchange.asmx";
	o.login_retry_ms = 1 * MIN_MS;		/* the defaults */
	o.login_retry_max_ms = 30 * MIN_MS;
	o.reach_retry_ms = 1000;
	o.reach_retry_max_ms = 5 * MIN_MS;
	o.mono = fake_mono;
	o.wall = fake_wall;
	w->a = account_new(w->t, &o);
	w->n = n;
	w->m = calloc(n, sizeof *w->m);
	ck_assert_ptr_nonnull(w->m);
	w->answer = by_mode;
	for (i = 0; i < n; i++) {
		w->m[i].id = i;
		throttle_submit(w->t, &w->m[i].tk, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_NORMAL, on_grant, w);
	}
}

static void
world_free(struct world *w)
{
	account_free(w->a);
	throttle_free(w->t);
	free(w->m);
}

/* Answer one granted request as the call path (ews.c) would. */
static void
finish(struct world *w, struct mbx *mb)
{
	struct account_report	 r;
	struct throttle_outcome	 out = { THROTTLE_DONE, 0 };
	enum answer		 ans = w->answer(w, mb);

	memset(&r, 0, sizeof r);
	r.probe = mb->probe;
	r.served = mb->served;
	r.started = mb->sent_at;
	ck_assert(r.probe == throttle_ticket_is_probe(w->t, &mb->tk));
	w->in_flight--;
	switch (ans) {
	case ANS_OK:
		r.verdict = ACCOUNT_V_ACCEPTED;
		r.code = "NoError";
		out.result = THROTTLE_OK;
		break;
	case ANS_REFUSED:
		r.verdict = ACCOUNT_V_REFUSED;
		r.code = "HTTP401";
		ck_assert_uint_lt(w->refused, 4096);
		w->refused_at[w->refused++] = now_mono;
		break;
	case ANS_DENIED:
		r.verdict = ACCOUNT_V_DENIED;
		r.code = "ErrorImpersonateUserDenied";
		w->denied++;
		break;
	case ANS_UNREACHABLE:
		r.verdict = ACCOUNT_V_UNREACHABLE;
		r.reason = "Failed to connect";
		w->connects++;
		break;
	}
	account_report(w->a, &r);
	if ((ans == ANS_REFUSED || ans == ANS_UNREACHABLE) &&
	    account_failing(w->a)) {
		/* The account's problem: the request waits again. */
		throttle_requeue(w->t, &mb->tk, now_mono, &out);
		return;
	}
	throttle_release(w->t, &mb->tk, now_mono, &out);
	if (ans == ANS_OK) {
		mb->finished = mb->served = true;
		w->ok++;
	} else if (ans == ANS_DENIED)
		mb->parked = true;	/* retried in an hour: not here */
	else
		/* Its owner retries at once (through the gate). */
		throttle_submit(w->t, &mb->tk, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_HIGH, on_grant, w);
}

/* Run the loop until virtual time end (or nothing is left to do). */
static void
run_until(struct world *w, int64_t end)
{
	int64_t		 next, wake;
	unsigned	 i;
	const char	*err;

	for (;;) {
		throttle_run(w->t, now_mono);
		err = throttle_verify(w->t);
		ck_assert_msg(err == NULL, "%s", err);
		next = INT64_MAX;
		for (i = 0; i < w->n; i++)
			if (throttle_ticket_granted(&w->m[i].tk) &&
			    w->m[i].done_at < next)
				next = w->m[i].done_at;
		wake = throttle_next_wakeup(w->t, now_mono);
		if (wake < next)
			next = wake;
		if (next == INT64_MAX || next > end) {
			now_mono = end;
			return;
		}
		ck_assert_int_ge(next, now_mono);
		now_mono = next;
		for (i = 0; i < w->n; i++)
			if (throttle_ticket_granted(&w->m[i].tk) &&
			    w->m[i].done_at <= now_mono)
				finish(w, &w->m[i]);
	}
}

/*
 * A wrong password from the start, 10,000 mailboxes, the default steps:
 * 3 failed logins in the first 5 minutes, then one per step, each step
 * at least as long as the one before; once the password is right again
 * everything is served within one step, never above the budget.
 */
START_TEST(test_wrong_password_10000)
{
	struct world	 w;
	unsigned	 i, before;
	int64_t		 gap, prev_gap = 0, fixed_at, step;

	world_init(&w, 10000, 27);
	w.mode = ANS_REFUSED;
	run_until(&w, 5 * MIN_MS);
	ck_assert_uint_eq(w.refused, 3);
	ck_assert_uint_eq(w.peak, 1);
	ck_assert_int_eq(account_state(w.a), ACCOUNT_AUTH_FAILING);
	ck_assert(account_failing(w.a));
	ck_assert_uint_eq(account_failed_logins(w.a), 3);
	/* 0, 1, 4 minutes (plus the latency of each answer). */
	ck_assert_int_eq(w.refused_at[0], LATENCY_MS);
	ck_assert_int_eq(w.refused_at[1], 1 * MIN_MS + 2 * LATENCY_MS);
	ck_assert_int_eq(w.refused_at[2], 4 * MIN_MS + 3 * LATENCY_MS);

	run_until(&w, 6 * 60 * MIN_MS);
	for (i = 1; i < w.refused; i++) {
		gap = w.refused_at[i] - w.refused_at[i - 1];
		ck_assert_int_ge(gap, prev_gap);
		ck_assert_int_le(gap, 30 * MIN_MS + LATENCY_MS);
		prev_gap = gap;
	}
	/* 0 1 4 13 40, then every 30 minutes up to 6 hours. */
	ck_assert_uint_eq(w.refused, 5 + (360 - 40) / 30);
	ck_assert_uint_eq(w.peak, 1);
	ck_assert_uint_eq(w.ok, 0);

	/* The administrator fixes the password (no reload). */
	fixed_at = now_mono;
	step = w.refused_at[w.refused - 1] + 30 * MIN_MS - fixed_at;
	w.mode = ANS_OK;
	before = w.refused;
	run_until(&w, fixed_at + step + 10 * MIN_MS);
	ck_assert_uint_eq(w.refused, before);
	ck_assert_int_eq(account_state(w.a), ACCOUNT_OK);
	ck_assert_uint_eq(w.ok, 10000);
	ck_assert_uint_le(w.peak, 27);
	for (i = 0; i < w.n; i++)
		ck_assert(w.m[i].finished);
	world_free(&w);
}
END_TEST

/* A reload tries at once, and the steps go on from where they were. */
START_TEST(test_reload_retries_now)
{
	struct world		 w;
	struct account_opts	 o;
	char			 msg[512];

	world_init(&w, 100, 10);
	w.mode = ANS_REFUSED;
	run_until(&w, 20 * MIN_MS);
	ck_assert_uint_eq(w.refused, 4);	/* 0 1 4 13 */
	ck_assert(account_problem(w.a, msg, sizeof msg));
	ck_assert_msg(strstr(msg, "authentication failing since ") == msg,
	    "%s", msg);
	ck_assert_msg(strstr(msg, ", next attempt at ") != NULL, "%s", msg);
	ck_assert_msg(strstr(msg, ", 4 failed logins") != NULL, "%s", msg);

	memset(&o, 0, sizeof o);
	o.url = "https://mail.example.com/EWS/Exchange.asmx";
	o.login_retry_ms = 1 * MIN_MS;
	o.login_retry_max_ms = 30 * MIN_MS;
	o.mono = fake_mono;
	o.wall = fake_wall;
	/* Still wrong: one more failed login now, then a longer wait. */
	account_reload(w.a, &o);
	run_until(&w, now_mono + 1000);
	ck_assert_uint_eq(w.refused, 5);
	ck_assert_int_eq(throttle_gate_until(w.t), w.refused_at[4] +
	    30 * MIN_MS);	/* 81 minutes, capped */
	/* Right now: the reload's attempt brings everyone back. */
	w.mode = ANS_OK;
	account_reload(w.a, &o);
	run_until(&w, now_mono + 5000);
	ck_assert_int_eq(account_state(w.a), ACCOUNT_OK);
	ck_assert_uint_eq(w.ok, 100);
	ck_assert(!account_problem(w.a, msg, sizeof msg));
	ck_assert_uint_eq(account_failed_logins(w.a), 0);
	ck_assert_uint_eq(account_failed_logins_total(w.a), 5);
	world_free(&w);
}
END_TEST

/*
 * The password stops working while requests are in flight: those fail
 * (and count), nothing more is sent but the probes, and a straggler
 * accepted on an old connection does not reopen the gate.
 */
START_TEST(test_password_changes_while_running)
{
	struct world		 w;
	struct account_report	 r;
	unsigned		 i;

	world_init(&w, 2000, 10);
	w.mode = ANS_OK;
	run_until(&w, 100);		/* the first probe is out */
	ck_assert_uint_eq(w.peak, 1);
	run_until(&w, 200);		/* accepted: fan out */
	ck_assert_int_eq(account_state(w.a), ACCOUNT_OK);
	ck_assert_uint_eq(w.in_flight, 10);
	w.mode = ANS_REFUSED;
	run_until(&w, 5 * MIN_MS);
	/* The ten in flight, then 0 and 1 minute later... */
	ck_assert_uint_eq(w.refused, 12);
	memset(&r, 0, sizeof r);
	r.verdict = ACCOUNT_V_ACCEPTED;
	r.started = now_mono - 10;
	account_report(w.a, &r);
	ck_assert_int_eq(account_state(w.a), ACCOUNT_AUTH_FAILING);
	for (i = 0, w.ok = 0; i < w.n; i++)
		if (w.m[i].finished)
			w.ok++;
	ck_assert_uint_le(w.peak, 10);
	world_free(&w);
}
END_TEST

static enum answer
one_in_seven(struct world *w, struct mbx *mb)
{
	return (mb->id % 7 == 3 ? ANS_DENIED : ANS_OK);
}

/*
 * An account without the role from the start: after ACCOUNT_DENIED_STREAK
 * refusals it stops and probes one mailbox per step.
 */
START_TEST(test_impersonation_denied_everywhere)
{
	struct world	 w;
	char		 msg[512];
	unsigned	 at5;

	world_init(&w, 10000, 10);
	w.mode = ANS_DENIED;
	run_until(&w, 5 * MIN_MS);
	ck_assert_int_eq(account_state(w.a), ACCOUNT_DENIED);
	ck_assert(account_failing(w.a));
	at5 = w.denied;
	/* The probe, the fan-out it opened, then one per step. */
	ck_assert_uint_le(at5, 1 + 10 + 10 + 3);
	ck_assert(account_problem(w.a, msg, sizeof msg));
	ck_assert_msg(strstr(msg, "impersonation refused since ") == msg,
	    "%s", msg);
	ck_assert_msg(strstr(msg, "ErrorImpersonateUserDenied") != NULL,
	    "%s", msg);
	run_until(&w, 65 * MIN_MS);
	ck_assert_uint_le(w.denied, at5 + 3);	/* 13, 40 */
	/* The role is back: the next probe reopens everything. */
	w.mode = ANS_OK;
	run_until(&w, 100 * MIN_MS);
	ck_assert_int_eq(account_state(w.a), ACCOUNT_OK);
	/* Everyone but the mailboxes parked on the way is served. */
	ck_assert_uint_eq(w.ok + w.denied, 10000);
	world_free(&w);
}
END_TEST

/* A few mailboxes out of scope are only parked, never the account. */
START_TEST(test_some_denied_is_per_mailbox)
{
	struct world	 w;

	world_init(&w, 3000, 10);
	w.answer = one_in_seven;
	run_until(&w, 2 * MIN_MS);
	ck_assert_int_eq(account_state(w.a), ACCOUNT_OK);
	ck_assert_uint_eq(w.ok + w.denied, 3000);
	world_free(&w);
}
END_TEST

static enum answer
scope_gap(struct world *w, struct mbx *mb)
{
	/* Mailboxes 100 to 699 (in queue order) are outside the scope. */
	return (mb->id >= 100 && mb->id < 700 ? ANS_DENIED : ANS_OK);
}

static enum answer
scope_first(struct world *w, struct mbx *mb)
{
	/* The first 600 in queue order are outside the scope. */
	return (mb->id < 600 ? ANS_DENIED : ANS_OK);
}

/*
 * The same block first in line, before anything was served: it looks
 * like the account, but a probe taken at random finds one that works
 * soon, and the rest of the block is parked one by one.
 */
START_TEST(test_scope_gap_first_in_line)
{
	struct world	 w;

	world_init(&w, 3000, 10);
	w.answer = scope_first;
	run_until(&w, 30 * MIN_MS);
	ck_assert_int_eq(account_state(w.a), ACCOUNT_OK);
	ck_assert_uint_eq(w.ok, 2400);
	ck_assert_uint_eq(w.denied, 600);
	world_free(&w);
}
END_TEST

/*
 * A block of 600 mailboxes outside the role's scope, met after others
 * were served: each is refused once and parked; the account stays OK.
 */
START_TEST(test_scope_gap_is_not_the_account)
{
	struct world	 w;

	world_init(&w, 3000, 10);
	w.answer = scope_gap;
	run_until(&w, 10 * MIN_MS);
	ck_assert_int_eq(account_state(w.a), ACCOUNT_OK);
	ck_assert_uint_eq(w.denied, 600);
	ck_assert_uint_eq(w.ok, 2400);
	world_free(&w);
}
END_TEST

/*
 * Rights taken away from a running account: mailboxes served before
 * are refused now, and that stops everything after ten.
 */
START_TEST(test_rights_taken_away_while_running)
{
	struct world	 w;
	unsigned	 i;

	world_init(&w, 2000, 10);
	w.mode = ANS_OK;
	run_until(&w, 5 * MIN_MS);
	ck_assert_uint_eq(w.ok, 2000);
	/* Everyone subscribes again (Exchange restarted). */
	for (i = 0; i < w.n; i++) {
		w.m[i].finished = false;
		throttle_submit(w.t, &w.m[i].tk, THROTTLE_SHORT, NULL,
		    THROTTLE_PRIO_HIGH, on_grant, &w);
	}
	w.mode = ANS_DENIED;
	run_until(&w, 10 * MIN_MS);
	ck_assert_int_eq(account_state(w.a), ACCOUNT_DENIED);
	/* The ten that decided it, the probe after a minute, after 4. */
	ck_assert_uint_le(w.denied, 10 + 2);
	world_free(&w);
}
END_TEST

/*
 * Exchange unreachable: named at the first failure, one attempt at a
 * time after 1 s doubling to the cap, back at the first answer.
 */
START_TEST(test_unreachable)
{
	struct world	 w;
	char		 msg[512];

	world_init(&w, 5000, 10);
	w.mode = ANS_OK;
	run_until(&w, 1000);
	ck_assert_int_eq(account_state(w.a), ACCOUNT_OK);
	w.mode = ANS_UNREACHABLE;
	run_until(&w, now_mono + LATENCY_MS);
	ck_assert_int_eq(account_state(w.a), ACCOUNT_UNREACHABLE);
	ck_assert(account_problem(w.a, msg, sizeof msg));
	ck_assert_msg(strstr(msg, "cannot reach Exchange at "
	    "https://mail.example.com/EWS/Exchange.asmx: Failed to connect")
	    == msg, "%s", msg);
	w.connects = 0;
	run_until(&w, now_mono + 10 * MIN_MS);
	/* 1 2 4 ... 256 s, then every 5 minutes: 10 attempts. */
	ck_assert_uint_le(w.connects, 11);
	ck_assert_uint_ge(w.connects, 9);
	w.mode = ANS_OK;
	run_until(&w, now_mono + 6 * MIN_MS);
	ck_assert_int_eq(account_state(w.a), ACCOUNT_OK);
	ck_assert_uint_eq(w.ok, 5000);
	ck_assert_uint_le(w.peak, 10);
	world_free(&w);
}
END_TEST

/* A failure after an answer that came later is not "unreachable". */
START_TEST(test_partial_failure_is_not_unreachable)
{
	struct world		 w;
	struct account_report	 r;

	world_init(&w, 10, 10);
	w.mode = ANS_OK;
	run_until(&w, 1000);
	memset(&r, 0, sizeof r);
	r.verdict = ACCOUNT_V_UNREACHABLE;
	r.started = 2 * LATENCY_MS - 10;	/* before the last answer */
	account_report(w.a, &r);
	ck_assert_int_eq(account_state(w.a), ACCOUNT_OK);
	now_mono += 1000;
	r.started = now_mono - 10;		/* nothing answered since */
	account_report(w.a, &r);
	ck_assert_int_eq(account_state(w.a), ACCOUNT_UNREACHABLE);
	world_free(&w);
}
END_TEST

START_TEST(test_status_output)
{
	struct world	 w;
	struct buf	 b = BUF_INIT;
	struct json_writer jw;
	struct json_value *v;
	char		*cause = NULL;

	world_init(&w, 10, 10);
	w.mode = ANS_REFUSED;
	run_until(&w, 2 * MIN_MS);
	json_writer_init(&jw, &b);
	account_json(w.a, &jw);
	v = json_parse(b.data, b.len, &cause);
	ck_assert_msg(v != NULL, "%s: %s", cause, b.data);
	ck_assert_str_eq(json_get_str(v, "state", ""), "auth-failing");
	ck_assert_int_eq(json_get_num(v, "failed_logins", -1), 2);
	ck_assert_str_eq(json_get_str(v, "next_attempt", ""),
	    "2026-12-05T19:50:40Z");	/* 60.3 s + 3 min */
	ck_assert_str_eq(json_get_str(v, "since", ""), "2026-12-05T19:46:40Z");
	json_free(v);
	buf_reset(&b);
	account_prometheus(w.a, &b);
	ck_assert_ptr_nonnull(strstr(b.data,
	    "ewsgw_account_state{state=\"auth-failing\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(b.data,
	    "ewsgw_account_failed_logins_total 2\n"));
	buf_free(&b);
	world_free(&w);
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("account");
	TCase	*tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_wrong_password_10000);
	tcase_add_test(tc, test_reload_retries_now);
	tcase_add_test(tc, test_password_changes_while_running);
	tcase_add_test(tc, test_impersonation_denied_everywhere);
	tcase_add_test(tc, test_some_denied_is_per_mailbox);
	tcase_add_test(tc, test_scope_gap_is_not_the_account);
	tcase_add_test(tc, test_scope_gap_first_in_line);
	tcase_add_test(tc, test_rights_taken_away_while_running);
	tcase_add_test(tc, test_unreachable);
	tcase_add_test(tc, test_partial_failure_is_not_unreachable);
	tcase_add_test(tc, test_status_output);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(suite());
	int	 failed;

	log_init("check_account", LOG_TARGET_STDERR, LOG_CRIT);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
