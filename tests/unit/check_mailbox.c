/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the mailbox state machine, driven deterministically.  The
 * test includes src/subs/mailbox.c with the clock and the EWS call path
 * faked (subs_fake.h): it grants and answers each request with recorded
 * EWS answers (tests/fixtures), moves the clock and fires the mailbox's
 * timers itself, and plays the manager behind the hooks.  A Graph
 * mailbox's reads and subscription are faked the same way (the test
 * hands back what graphread would).  Every transition mailbox.h lists
 * has a test here (named after it).
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "subs_fake.h"

#include "subs/mailbox.c"

#define HOUR_MS		(INT64_C(3600) * 1000)
#define ADDR		"alice@example.com"
#define PUSH_URL	"https://gw.test/ews/notify/TOKEN"

static struct event_base	*base;
static struct config		*conf;
static struct subs_env		 env;
static struct presence_rules	 rules;
static struct mailbox_ctx	 ctx;
static struct mailbox		*mb;

/* What the mailbox reported: the manager's side of the hooks. */
static struct {
	enum mailbox_state	 from[32], to[32];
	unsigned		 changes;
	unsigned		 subscription;	/* id changes */
	char			 sub_id[128];	/* the id it holds, "" none */
	unsigned		 refused;
	unsigned		 polls;
	char			 cookie[64];
	unsigned		 published;
	char			 presence[32];
	char			 source[32];
	unsigned		 counts[MAILBOX_COUNT_MAX];
} seen;

static void
on_state(struct mailbox *m, enum mailbox_state old, void *arg)
{
	ck_assert_uint_lt(seen.changes, 32);
	ck_assert_int_ne(old, mailbox_state(m));
	seen.from[seen.changes] = old;
	seen.to[seen.changes++] = mailbox_state(m);
}

static void
on_subscription(struct mailbox *m, const char *old, void *arg)
{
	/* The old id is the one it held, reported once. */
	if (old != NULL)
		ck_assert_str_eq(old, seen.sub_id);
	seen.subscription++;
	snprintf(seen.sub_id, sizeof seen.sub_id, "%s",
	    mailbox_sub_id(m) != NULL ? mailbox_sub_id(m) : "");
}

/* As the manager: poll a mailbox Exchange will not subscribe. */
static void
on_refused(struct mailbox *m, void *arg)
{
	seen.refused++;
	mailbox_set_mode(m, MAILBOX_MODE_POLL, MAILBOX_WHY_REFUSED);
}

static void
on_poll(struct mailbox *m, void *arg)
{
	seen.polls++;
}

static void
on_affinity(const struct mailbox *m, const char **anchor,
    const char **cookie, void *arg)
{
	*anchor = "anchor@example.com";
	*cookie = NULL;
}

static void
on_cookie(struct mailbox *m, const char *cookie, void *arg)
{
	snprintf(seen.cookie, sizeof seen.cookie, "%s", cookie);
}

static void
on_publish(struct mailbox *m, const struct ewsgw_presence_change *ch,
    void *arg)
{
	ck_assert_str_eq(ch->mailbox, ADDR);
	seen.published++;
	/* The publisher numbers changes; the mailbox counts its own. */
	ck_assert_uint_eq(m->seq, seen.published);
	snprintf(seen.presence, sizeof seen.presence, "%s", ch->presence);
	snprintf(seen.source, sizeof seen.source, "%s", ch->source);
}

static void
on_count(struct mailbox *m, enum mailbox_count what, void *arg)
{
	seen.counts[what]++;
}

static const struct mailbox_hooks test_hooks = {
	.state = on_state,
	.subscription = on_subscription,
	.refused = on_refused,
	.poll = on_poll,
	.affinity = on_affinity,
	.cookie = on_cookie,
	.publish = on_publish,
	.count = on_count,
};

static void
setup(void)
{
	static const char text[] = "[exchange]\nurl = https://ews.test/\n"
	    "auth = negotiate\nusername = svc\n";

	memset(&seen, 0, sizeof seen);
	conf = fake_env_setup(&env, text);
	base = env.base;
	presence_rules_from_conf(&rules, conf);
	ctx.env = &env;
	ctx.presence_timers = boundary_new(base, BOUNDARY_WALL,
	    mailbox_presence_timer, NULL);
	ctx.action_timers = boundary_new(base, BOUNDARY_MONO,
	    mailbox_action_timer, NULL);
	ctx.rules = &rules;
	ctx.push_url = PUSH_URL;
	ctx.graph_url = ctx.graph_lc_url = ctx.client_state = NULL;
	ctx.hooks = &test_hooks;
	ctx.arg = NULL;
	mb = mailbox_new(&ctx, ADDR, CONF_ID_SMTP, NULL, MAILBOX_BACKEND_EWS);
}

static void
teardown(void)
{
	mailbox_free(mb);
	boundary_free(ctx.presence_timers);
	boundary_free(ctx.action_timers);
	fake_env_teardown(&env, conf);
}

/* ---- helpers: answers, time, the way to each state ---- */

/* The last change reported was from -> to. */
static void
changed(enum mailbox_state from, enum mailbox_state to)
{
	ck_assert_uint_gt(seen.changes, 0);
	ck_assert_msg(seen.from[seen.changes - 1] == from &&
	    seen.to[seen.changes - 1] == to, "last change %s -> %s, "
	    "expected %s -> %s", mailbox_state_name(seen.from[seen.changes -
	    1]), mailbox_state_name(seen.to[seen.changes - 1]),
	    mailbox_state_name(from), mailbox_state_name(to));
	ck_assert_int_eq(mailbox_state(mb), to);
}

static void
fail_transport(struct ews_call *call)
{
	struct fake_answer	 a = { HTTP_RESULT_TRANSIENT, 0, NULL, NULL,
	    NULL, 0 };

	ck_assert_int_eq(fake_grant(call, NULL), 0);
	fake_answer(call, &a);
}

/* Run the action timer at its deadline. */
static void
action_due(void)
{
	ck_assert(timerheap_scheduled(&mb->action));
	if (fake_mono < mb->action.deadline)
		fake_mono = mb->action.deadline;
	mailbox_action_timer(&mb->action, NULL);
}

static void
start(enum mailbox_mode mode)
{
	mailbox_set_mode(mb, mode, MAILBOX_WHY_CONFIG);
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_IDLE);
	mailbox_start(mb);
}

static void
to_syncing(enum mailbox_mode mode)
{
	start(mode);
	ck_assert(fake_queued(mb->sub_call, EWS_OP_SUBSCRIBE));
	fake_ok(mb->sub_call, mode == MAILBOX_MODE_PUSH ?
	    "subscribe-push-default-ns.xml" : "subscribe-streaming.xml");
	changed(MAILBOX_SUBSCRIBING, MAILBOX_SYNCING);
}

/* The whole first read: CalendarView, then automatic replies. */
static void
first_read(void)
{
	ck_assert(fake_queued(mb->read_call, EWS_OP_FIND_ITEM));
	fake_ok(mb->read_call, "finditem-calendarview.xml");
	ck_assert(fake_queued(mb->read_call, EWS_OP_GET_USER_OOF_SETTINGS));
	fake_ok(mb->read_call, "oof-disabled.xml");
}

static void
to_watching(enum mailbox_mode mode)
{
	if (mode == MAILBOX_MODE_POLL) {
		start(mode);
		return;
	}
	to_syncing(mode);
	first_read();
	changed(MAILBOX_SYNCING, MAILBOX_WATCHING);
}

static void
to_backoff(void)
{
	start(MAILBOX_MODE_STREAMING);
	fail_transport(mb->sub_call);
	changed(MAILBOX_SUBSCRIBING, MAILBOX_BACKOFF);
}

static void
to_parked(void)
{
	start(MAILBOX_MODE_STREAMING);
	fake_error(mb->sub_call, "ErrorImpersonateUserDenied");
	changed(MAILBOX_SUBSCRIBING, MAILBOX_PARKED);
}

/* Reach state s (streaming mode unless s needs otherwise). */
static void
reach(enum mailbox_state s)
{
	switch (s) {
	case MAILBOX_SUBSCRIBING:
		start(MAILBOX_MODE_STREAMING);
		break;
	case MAILBOX_SYNCING:
		to_syncing(MAILBOX_MODE_STREAMING);
		break;
	case MAILBOX_WATCHING:
		to_watching(MAILBOX_MODE_STREAMING);
		break;
	case MAILBOX_BACKOFF:
		to_backoff();
		break;
	case MAILBOX_PARKED:
		to_parked();
		break;
	default:
		break;
	}
	ck_assert_int_eq(mailbox_state(mb), s);
}

/* ---- IDLE -> ---- */

/* transition: MAILBOX IDLE -> SUBSCRIBING */
START_TEST(test_idle_to_subscribing)
{
	char	*body = NULL;

	start(MAILBOX_MODE_STREAMING);
	changed(MAILBOX_IDLE, MAILBOX_SUBSCRIBING);
	ck_assert(fake_queued(mb->sub_call, EWS_OP_SUBSCRIBE));
	ck_assert_int_eq(fake_prio(mb->sub_call), THROTTLE_PRIO_NORMAL);
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_SUBSCRIBING);
	/* The periodic re-read is staggered over the interval. */
	ck_assert_int_ge(mb->resync_at, fake_mono + 3 * HOUR_MS);
	ck_assert_int_le(mb->resync_at, fake_mono + 6 * HOUR_MS);
	/* The body is built on grant, for streaming, with impersonation. */
	ck_assert_int_eq(fake_grant(mb->sub_call, &body), 0);
	ck_assert_ptr_nonnull(strstr(body, "StreamingSubscriptionRequest"));
	ck_assert_ptr_nonnull(strstr(body, ADDR));
	free(body);
	/* Starting again does nothing. */
	mailbox_start(mb);
	ck_assert_uint_eq(seen.changes, 1);
}
END_TEST

/* transition: MAILBOX IDLE -> WATCHING */
START_TEST(test_idle_to_watching_poll)
{
	start(MAILBOX_MODE_POLL);
	changed(MAILBOX_IDLE, MAILBOX_WATCHING);
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_POLLING);
	ck_assert_str_eq(mailbox_status_name(mailbox_status(mb)), "polling");
	ck_assert_uint_eq(fake_submits, 0);
	ck_assert_int_eq(mb->resync_at, 0);
	ck_assert_ptr_null(mailbox_sub_id(mb));
}
END_TEST

/* ---- SUBSCRIBING -> ---- */

/* transition: MAILBOX SUBSCRIBING -> SYNCING */
START_TEST(test_subscribing_to_syncing)
{
	struct fake_answer	 a = { HTTP_RESULT_OK, 200, NULL, NULL,
	    "backend-7", 0 };
	char			*body = fake_fixture("subscribe-streaming.xml");

	start(MAILBOX_MODE_STREAMING);
	ck_assert_int_eq(fake_grant(mb->sub_call, NULL), 0);
	a.body = body;
	fake_answer(mb->sub_call, &a);
	free(body);
	changed(MAILBOX_SUBSCRIBING, MAILBOX_SYNCING);
	ck_assert_str_eq(mailbox_sub_id(mb),
	    "JwBleGNoMDEuY29udG9zby5jb20QAAAAr2n+Sbz8Z0yDIX9pBs4p2A==");
	ck_assert_str_eq(seen.sub_id, mailbox_sub_id(mb));
	ck_assert_str_eq(seen.cookie, "backend-7");
	ck_assert_uint_eq(throttle_subscriptions(fake_ews_ctx_throttle(NULL),
	    ADDR), 1);
	/* The first read, ahead of mailboxes not yet started. */
	ck_assert(fake_queued(mb->read_call, EWS_OP_FIND_ITEM));
	ck_assert_int_eq(fake_prio(mb->read_call), THROTTLE_PRIO_HIGH);
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_SYNCING);
}
END_TEST

/* transition: MAILBOX SUBSCRIBING -> BACKOFF */
START_TEST(test_subscribing_to_backoff)
{
	int64_t	 now;

	start(MAILBOX_MODE_STREAMING);
	now = fake_mono;
	fail_transport(mb->sub_call);
	changed(MAILBOX_SUBSCRIBING, MAILBOX_BACKOFF);
	ck_assert_str_eq(mailbox_error(mb), "transient");
	ck_assert_uint_eq(mb->failures, 1);
	/* Full jitter over the first step (1 s), at least half of it. */
	ck_assert_int_ge(mb->retry_at, now + RETRY_BASE_MS / 2);
	ck_assert_int_le(mb->retry_at, now + RETRY_BASE_MS);
	ck_assert_int_eq(mb->action.deadline, mb->retry_at);
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_BACKOFF);

	/* An answer without a SubscriptionId is no better. */
	action_due();
	changed(MAILBOX_BACKOFF, MAILBOX_SUBSCRIBING);
	fake_ok(mb->sub_call, "subscribe-missing-id.xml");
	changed(MAILBOX_SUBSCRIBING, MAILBOX_BACKOFF);
	ck_assert_str_eq(mailbox_error(mb), "BadResponse");
	ck_assert_uint_eq(mb->failures, 2);
	ck_assert_ptr_null(mailbox_sub_id(mb));
}
END_TEST

/* transition: MAILBOX SUBSCRIBING -> PARKED */
START_TEST(test_subscribing_to_parked)
{
	to_parked();
	ck_assert_str_eq(mailbox_error(mb), "ErrorImpersonateUserDenied");
	ck_assert_int_eq(mb->retry_at, fake_mono + PARK_RETRY_MS);
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_PARKED);
	ck_assert(mb->sub_call == NULL);
}
END_TEST

/* transition: MAILBOX SUBSCRIBING -> WATCHING */
START_TEST(test_subscribing_to_watching_refused)
{
	start(MAILBOX_MODE_STREAMING);
	fake_error(mb->sub_call, "ErrorExceededSubscriptionCount");
	ck_assert_uint_eq(seen.refused, 1);
	changed(MAILBOX_SUBSCRIBING, MAILBOX_WATCHING);
	ck_assert_int_eq(mailbox_mode(mb), MAILBOX_MODE_POLL);
	ck_assert_int_eq(mailbox_reason(mb), MAILBOX_WHY_REFUSED);
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_POLLING);
	ck_assert(mb->sub_call == NULL);
}
END_TEST

/* ---- SYNCING -> ---- */

/* transition: MAILBOX SYNCING -> WATCHING */
START_TEST(test_syncing_to_watching)
{
	to_syncing(MAILBOX_MODE_STREAMING);
	first_read();
	changed(MAILBOX_SYNCING, MAILBOX_WATCHING);
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_STREAMING);
	ck_assert_uint_eq(seen.published, 1);
	ck_assert_str_eq(seen.source, "startup");
	ck_assert_ptr_nonnull(mailbox_presence(mb));
	ck_assert_uint_eq(mb->failures, 0);
	ck_assert(mb->read_call == NULL);
	ck_assert(timerheap_scheduled(&mb->action));
	ck_assert_int_gt(mb->resync_at, fake_mono);
}
END_TEST

/* transition: MAILBOX SYNCING -> WATCHING */
START_TEST(test_syncing_to_watching_read_failed)
{
	int64_t	 now;

	to_syncing(MAILBOX_MODE_STREAMING);
	now = fake_mono;
	fail_transport(mb->read_call);
	changed(MAILBOX_SYNCING, MAILBOX_WATCHING);
	ck_assert_uint_eq(seen.published, 0);
	/* Read again later. */
	ck_assert_int_ge(mb->sync_at, now + RETRY_BASE_MS / 2);
	ck_assert_int_le(mb->sync_at, now + RETRY_BASE_MS);
	action_due();
	ck_assert(fake_queued(mb->read_call, EWS_OP_FIND_ITEM));
	/* A read after a calendar change skips automatic replies. */
	fake_ok(mb->read_call, "finditem-calendarview.xml");
	ck_assert(mb->read_call == NULL);
	ck_assert_str_eq(seen.source, "calendar");
}
END_TEST

/* transition: MAILBOX SYNCING -> PARKED */
START_TEST(test_syncing_to_parked)
{
	to_syncing(MAILBOX_MODE_STREAMING);
	fake_error(mb->read_call, "ErrorNonExistentMailbox");
	changed(MAILBOX_SYNCING, MAILBOX_PARKED);
	ck_assert_ptr_null(mailbox_sub_id(mb));
	ck_assert_str_eq(seen.sub_id, "");
	ck_assert_uint_eq(throttle_subscriptions(fake_ews_ctx_throttle(NULL),
	    ADDR), 0);
	ck_assert_str_eq(mailbox_error(mb), "ErrorNonExistentMailbox");
}
END_TEST

/* transition: MAILBOX SYNCING -> SUBSCRIBING */
START_TEST(test_syncing_to_subscribing_lost)
{
	to_syncing(MAILBOX_MODE_STREAMING);
	mailbox_subscription_lost(mb, "ErrorSubscriptionNotFound", true);
	changed(MAILBOX_SYNCING, MAILBOX_SUBSCRIBING);
	ck_assert_int_eq(fake_prio(mb->sub_call), THROTTLE_PRIO_HIGH);
	ck_assert_uint_eq(seen.counts[MAILBOX_COUNT_RESUBSCRIBE], 1);
	ck_assert_ptr_null(mailbox_sub_id(mb));
	ck_assert_str_eq(mailbox_error(mb), "ErrorSubscriptionNotFound");
	/* The read under way goes on; a new subscription reads again. */
	ck_assert(fake_queued(mb->read_call, EWS_OP_FIND_ITEM));
}
END_TEST

/* ---- WATCHING -> ---- */

/* transition: MAILBOX WATCHING -> PARKED */
START_TEST(test_watching_to_parked_by_read)
{
	to_watching(MAILBOX_MODE_STREAMING);
	mailbox_resync(mb);
	ck_assert_int_eq(fake_prio(mb->read_call), THROTTLE_PRIO_HIGH);
	fake_error(mb->read_call, "ErrorMailboxConfiguration");
	changed(MAILBOX_WATCHING, MAILBOX_PARKED);
	ck_assert_ptr_null(mailbox_sub_id(mb));
}
END_TEST

/* transition: MAILBOX WATCHING -> PARKED */
START_TEST(test_watching_to_parked_by_poll)
{
	struct ews_fb_event	 ev = { 0, 0, EWS_FB_BUSY };

	to_watching(MAILBOX_MODE_POLL);
	ev.start = fake_wall / 1000 - 60;
	ev.end = fake_wall / 1000 + 3600;
	mailbox_poll_result(mb, &ev, 1, NULL);
	ck_assert_uint_eq(seen.published, 1);
	ck_assert_str_eq(seen.source, "poll");
	ck_assert_str_eq(seen.presence, "busy");
	/* A mailbox error that is not the mailbox's fault changes nothing. */
	mailbox_poll_result(mb, NULL, 0, "ErrorInternalServerError");
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_WATCHING);
	ck_assert_str_eq(mailbox_error(mb), "ErrorInternalServerError");
	mailbox_poll_result(mb, NULL, 0, "ErrorMailRecipientNotFound");
	changed(MAILBOX_WATCHING, MAILBOX_PARKED);
}
END_TEST

/* transition: MAILBOX WATCHING -> PARKED */
START_TEST(test_watching_to_parked_by_oof_cycle)
{
	struct ews_oof	 oof;
	unsigned	 n;

	to_watching(MAILBOX_MODE_STREAMING);
	ck_assert_uint_eq(seen.published, 1);
	/* The first read read the settings: the cycle can skip it. */
	ck_assert_int_eq(mailbox_oof_read_at(mb), fake_mono / 1000 * 1000);
	memset(&oof, 0, sizeof oof);
	oof.state = EWS_OOF_ENABLED;
	fake_mono += 5000;
	mailbox_oof_result(mb, &oof, NULL);
	ck_assert_uint_eq(seen.published, 2);
	ck_assert_str_eq(seen.source, "oof");
	ck_assert_str_eq(seen.presence, "away");
	ck_assert_int_eq(mailbox_oof_read_at(mb), fake_mono / 1000 * 1000);
	/* The same settings again: nothing to publish, no request made. */
	n = fake_submits;
	mailbox_oof_result(mb, &oof, NULL);
	ck_assert_uint_eq(seen.published, 2);
	ck_assert_uint_eq(fake_submits, n);
	/* A failure that is not the mailbox's changes nothing... */
	mailbox_oof_result(mb, NULL, "ErrorServerBusy");
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_WATCHING);
	ck_assert_int_eq(mb->oof.state, PRESENCE_OOF_ENABLED);
	/* ... one that says Exchange refuses the mailbox parks it. */
	mailbox_oof_result(mb, NULL, "ErrorNonExistentMailbox");
	changed(MAILBOX_WATCHING, MAILBOX_PARKED);
	ck_assert_str_eq(mailbox_error(mb), "ErrorNonExistentMailbox");
	/* A mailbox not watched takes no settings. */
	n = seen.published;
	oof.state = EWS_OOF_DISABLED;
	mailbox_oof_result(mb, &oof, NULL);
	ck_assert_uint_eq(seen.published, n);
	ck_assert_int_eq(mb->oof.state, PRESENCE_OOF_ENABLED);
}
END_TEST

START_TEST(test_oof_request_built_for_the_mailbox)
{
	struct ews_send	 s;

	memset(&s, 0, sizeof s);
	ck_assert_int_eq(mailbox_oof_build(mb, &s), 0);
	ck_assert_str_eq(s.anchor, ADDR);
	ck_assert_ptr_nonnull(strstr(buf_str(&s.body), "GetUserOofSettings"));
	ck_assert_ptr_nonnull(strstr(buf_str(&s.body), ADDR));
	buf_free(&s.body);
}
END_TEST

/* transition: MAILBOX WATCHING -> SUBSCRIBING */
START_TEST(test_watching_to_subscribing_lost)
{
	to_watching(MAILBOX_MODE_STREAMING);
	mailbox_subscription_lost(mb, "ErrorExpiredSubscription", false);
	changed(MAILBOX_WATCHING, MAILBOX_SUBSCRIBING);
	ck_assert_int_eq(fake_prio(mb->sub_call), THROTTLE_PRIO_HIGH);
	/* The new subscription reads the calendar again; the same presence
	 * is not published twice. */
	fake_ok(mb->sub_call, "subscribe-streaming.xml");
	ck_assert_int_eq(mb->source, SOURCE_RESUBSCRIBE);
	first_read();
	changed(MAILBOX_SYNCING, MAILBOX_WATCHING);
	ck_assert_uint_eq(seen.published, 1);
}
END_TEST

/* transition: MAILBOX WATCHING -> SUBSCRIBING */
START_TEST(test_watching_to_subscribing_push_silent)
{
	to_watching(MAILBOX_MODE_PUSH);
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_PUSH);
	/* Two status intervals (1 min) and the slack: resubscribe. */
	ck_assert_int_eq(mb->side->push_deadline,
	    fake_mono + 2 * 60000 + 30000);
	/* A notification moves the deadline. */
	fake_mono += 60000;
	mailbox_events(mb, NULL, 0);
	ck_assert_int_eq(mb->side->push_deadline,
	    fake_mono + 2 * 60000 + 30000);
	fake_mono = mb->side->push_deadline;
	mailbox_action_timer(&mb->action, NULL);
	changed(MAILBOX_WATCHING, MAILBOX_SUBSCRIBING);
	ck_assert_str_eq(mailbox_error(mb), "PushTimeout");
}
END_TEST

/* ---- BACKOFF, PARKED -> ---- */

/* transition: MAILBOX BACKOFF -> SUBSCRIBING */
START_TEST(test_backoff_to_subscribing)
{
	to_backoff();
	fake_mono = mb->retry_at - 1;
	mailbox_action_timer(&mb->action, NULL);
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_BACKOFF);
	action_due();
	changed(MAILBOX_BACKOFF, MAILBOX_SUBSCRIBING);
	ck_assert_int_eq(fake_prio(mb->sub_call), THROTTLE_PRIO_HIGH);
	ck_assert_int_eq(mb->retry_at, 0);
}
END_TEST

/* transition: MAILBOX PARKED -> SUBSCRIBING */
START_TEST(test_parked_to_subscribing)
{
	to_parked();
	fake_mono += PARK_RETRY_MS;
	mailbox_action_timer(&mb->action, NULL);
	changed(MAILBOX_PARKED, MAILBOX_SUBSCRIBING);
	ck_assert_int_eq(fake_prio(mb->sub_call), THROTTLE_PRIO_HIGH);
}
END_TEST

/* transition: MAILBOX PARKED -> WATCHING */
START_TEST(test_parked_to_watching_poll)
{
	to_watching(MAILBOX_MODE_POLL);
	mailbox_poll_result(mb, NULL, 0, "ErrorNonExistentMailbox");
	changed(MAILBOX_WATCHING, MAILBOX_PARKED);
	fake_mono += PARK_RETRY_MS;
	mailbox_action_timer(&mb->action, NULL);
	changed(MAILBOX_PARKED, MAILBOX_WATCHING);
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_POLLING);
	ck_assert_uint_eq(fake_submits, 0);
}
END_TEST

/* ---- mode changes ---- */

static const enum mailbox_state mode_change_from[] = {
	MAILBOX_SUBSCRIBING, MAILBOX_SYNCING, MAILBOX_WATCHING,
	MAILBOX_BACKOFF, MAILBOX_PARKED
};

/* transition: MAILBOX SUBSCRIBING, SYNCING, WATCHING -> SUBSCRIBING (mode) */
/* transition: MAILBOX BACKOFF, PARKED -> SUBSCRIBING (mode) */
START_TEST(test_mode_change_to_push)
{
	enum mailbox_state	 from = mode_change_from[_i];
	char			*body = NULL;

	reach(from);
	mailbox_set_mode(mb, MAILBOX_MODE_PUSH, MAILBOX_WHY_CONFIG);
	if (from != MAILBOX_SUBSCRIBING)
		changed(from, MAILBOX_SUBSCRIBING);
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_SUBSCRIBING);
	ck_assert_ptr_null(mailbox_sub_id(mb));
	ck_assert_int_eq(fake_prio(mb->sub_call), THROTTLE_PRIO_NORMAL);
	ck_assert_int_eq(fake_grant(mb->sub_call, &body), 0);
	ck_assert_ptr_nonnull(strstr(body, "PushSubscriptionRequest"));
	ck_assert_ptr_nonnull(strstr(body, PUSH_URL));
	free(body);
}
END_TEST

/* transition: MAILBOX SUBSCRIBING, SYNCING, WATCHING -> WATCHING (mode) */
/* transition: MAILBOX BACKOFF, PARKED -> WATCHING (mode) */
START_TEST(test_mode_change_to_poll)
{
	enum mailbox_state	 from = mode_change_from[_i];

	reach(from);
	mailbox_set_mode(mb, MAILBOX_MODE_POLL, MAILBOX_WHY_SUBSCRIPTIONS);
	if (from != MAILBOX_WATCHING)
		changed(from, MAILBOX_WATCHING);
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_POLLING);
	ck_assert_ptr_null(mailbox_sub_id(mb));
	ck_assert(mb->sub_call == NULL);
	ck_assert_int_eq(mb->retry_at, 0);
	ck_assert_int_eq(mb->resync_at, 0);
	/* The same mode again only records the reason. */
	mailbox_set_mode(mb, MAILBOX_MODE_POLL, MAILBOX_WHY_CONNECTIONS);
	ck_assert_int_eq(mailbox_reason(mb), MAILBOX_WHY_CONNECTIONS);
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_WATCHING);
}
END_TEST

/* ---- stopping ---- */

/* transition: MAILBOX SYNCING, WATCHING -> UNSUBSCRIBING */
START_TEST(test_to_unsubscribing)
{
	enum mailbox_state	 from = _i == 0 ? MAILBOX_SYNCING :
	    MAILBOX_WATCHING;
	char			*body = NULL;
	char			 id[128];

	reach(from);
	snprintf(id, sizeof id, "%s", mailbox_sub_id(mb));
	mailbox_stop(mb);
	changed(from, MAILBOX_UNSUBSCRIBING);
	ck_assert(mb->read_call == NULL);
	ck_assert(fake_queued(mb->sub_call, EWS_OP_UNSUBSCRIBE));
	ck_assert_int_eq(fake_prio(mb->sub_call), THROTTLE_PRIO_HIGH);
	ck_assert(!timerheap_scheduled(&mb->boundary));
	ck_assert_int_eq(fake_grant(mb->sub_call, &body), 0);
	ck_assert_ptr_nonnull(strstr(body, id));
	free(body);
	/* Stopping again while it unsubscribes changes nothing. */
	mailbox_stop(mb);
	ck_assert(fake_sent(mb->sub_call));
}
END_TEST

static const enum mailbox_state stop_from[] = {
	MAILBOX_IDLE, MAILBOX_SUBSCRIBING, MAILBOX_BACKOFF, MAILBOX_PARKED,
	MAILBOX_SYNCING, MAILBOX_WATCHING, MAILBOX_WATCHING
};
static const enum mailbox_mode stop_mode[] = {
	MAILBOX_MODE_STREAMING, MAILBOX_MODE_STREAMING, MAILBOX_MODE_STREAMING,
	MAILBOX_MODE_STREAMING, MAILBOX_MODE_PUSH, MAILBOX_MODE_PUSH,
	MAILBOX_MODE_POLL
};

/* transition: MAILBOX IDLE, SUBSCRIBING, SYNCING -> STOPPED */
/* transition: MAILBOX WATCHING, BACKOFF, PARKED -> STOPPED */
START_TEST(test_to_stopped)
{
	enum mailbox_state	 from = stop_from[_i];

	if (from == MAILBOX_SYNCING)
		to_syncing(stop_mode[_i]);
	else if (from == MAILBOX_WATCHING)
		to_watching(stop_mode[_i]);
	else
		reach(from);
	mailbox_stop(mb);
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_STOPPED);
	if (from != MAILBOX_IDLE)
		changed(from, MAILBOX_STOPPED);
	ck_assert(mb->sub_call == NULL);
	ck_assert(mb->read_call == NULL);
	ck_assert(!timerheap_scheduled(&mb->action));
	ck_assert(!timerheap_scheduled(&mb->boundary));
	ck_assert_ptr_null(mailbox_sub_id(mb));
	ck_assert_uint_eq(throttle_subscriptions(fake_ews_ctx_throttle(NULL),
	    ADDR), 0);
	/* Nothing brings it back. */
	mailbox_resync(mb);
	mailbox_subscription_lost(mb, "ErrorSubscriptionNotFound", false);
	mailbox_set_mode(mb, MAILBOX_MODE_STREAMING, MAILBOX_WHY_CONFIG);
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_STOPPED);
	ck_assert(mb->sub_call == NULL);
}
END_TEST

/* transition: MAILBOX UNSUBSCRIBING -> STOPPED */
START_TEST(test_unsubscribing_to_stopped)
{
	reach(MAILBOX_WATCHING);
	mailbox_stop(mb);
	if (_i == 0)
		fake_ok(mb->sub_call, "unsubscribe.xml");
	else
		fail_transport(mb->sub_call);
	changed(MAILBOX_UNSUBSCRIBING, MAILBOX_STOPPED);
	ck_assert_ptr_null(mailbox_sub_id(mb));
	ck_assert_str_eq(seen.sub_id, "");
}
END_TEST

/*
 * Stopped while its Subscribe was on the wire: the answer may have made
 * a subscription on the server.  It waits, and releases one made (_i 0)
 * or stops when none was (_i 1).
 */
/* transition: MAILBOX SUBSCRIBING -> UNSUBSCRIBING */
/* transition: MAILBOX SUBSCRIBING -> STOPPED */
START_TEST(test_stopped_while_subscribe_on_the_wire)
{
	struct fake_answer	 ok = { HTTP_RESULT_OK, 200, NULL, NULL,
	    "backend-7", 0 };
	struct fake_answer	 failed = { HTTP_RESULT_TRANSIENT, 0, NULL,
	    NULL, NULL, 0 };
	char			*fixture, *body = NULL;

	fixture = fake_fixture("subscribe-streaming.xml");
	start(MAILBOX_MODE_STREAMING);
	ck_assert_int_eq(fake_grant(mb->sub_call, NULL), 0);
	mailbox_stop(mb);
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_SUBSCRIBING);
	ck_assert(fake_sent(mb->sub_call));
	ok.body = fixture;
	fake_answer(mb->sub_call, _i == 0 ? &ok : &failed);
	free(fixture);
	if (_i == 1) {
		changed(MAILBOX_SUBSCRIBING, MAILBOX_STOPPED);
		ck_assert(mb->sub_call == NULL);
		ck_assert_uint_eq(throttle_subscriptions(
		    fake_ews_ctx_throttle(NULL), ADDR), 0);
		return;
	}
	changed(MAILBOX_SUBSCRIBING, MAILBOX_UNSUBSCRIBING);
	/* Released through the backend that made it. */
	ck_assert_str_eq(seen.cookie, "backend-7");
	ck_assert(fake_queued(mb->sub_call, EWS_OP_UNSUBSCRIBE));
	ck_assert_int_eq(fake_grant(mb->sub_call, &body), 0);
	ck_assert_ptr_nonnull(strstr(body,
	    "JwBleGNoMDEuY29udG9zby5jb20QAAAAr2n+Sbz8Z0yDIX9pBs4p2A=="));
	free(body);
	/* Made while stopping, it was never reported bound; its end is (the
	 * layer above ignores an id it does not hold). */
	ck_assert_str_eq(seen.sub_id, "");
	snprintf(seen.sub_id, sizeof seen.sub_id, "%s", mailbox_sub_id(mb));
	fake_answer(mb->sub_call, &failed);
	changed(MAILBOX_UNSUBSCRIBING, MAILBOX_STOPPED);
	ck_assert_ptr_null(mailbox_sub_id(mb));
}
END_TEST

/* ---- regrouped (mailbox_resubscribe) ---- */

static const enum mailbox_state regroup_from[] = {
	MAILBOX_SUBSCRIBING, MAILBOX_SYNCING, MAILBOX_WATCHING,
	MAILBOX_BACKOFF
};

/*
 * A fresh Subscribe where its group now is.  Without the old group's
 * anchor the subscription it holds cannot be released: it is forgotten.
 */
/* transition: MAILBOX SUBSCRIBING, SYNCING -> SUBSCRIBING (regroup) */
/* transition: MAILBOX WATCHING, BACKOFF -> SUBSCRIBING (regroup) */
START_TEST(test_regroup_to_subscribing)
{
	enum mailbox_state	 from = regroup_from[_i];
	unsigned		 n;

	reach(from);
	n = fake_submits;
	mailbox_resubscribe(mb, "regrouped", NULL, NULL);
	if (from != MAILBOX_SUBSCRIBING)
		changed(from, MAILBOX_SUBSCRIBING);
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_SUBSCRIBING);
	ck_assert(fake_queued(mb->sub_call, EWS_OP_SUBSCRIBE));
	ck_assert_int_eq(fake_prio(mb->sub_call), THROTTLE_PRIO_HIGH);
	ck_assert_uint_eq(fake_submits, n + 1);
	ck_assert_uint_eq(seen.counts[MAILBOX_COUNT_RESUBSCRIBE], 1);
	ck_assert_ptr_null(mailbox_sub_id(mb));
	ck_assert_str_eq(seen.sub_id, "");
	/* Parked, it waits for its retry instead. */
	n = seen.changes;
	fake_error(mb->sub_call, "ErrorImpersonateUserDenied");
	changed(MAILBOX_SUBSCRIBING, MAILBOX_PARKED);
	mailbox_resubscribe(mb, "regrouped", NULL, NULL);
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_PARKED);
	ck_assert_uint_eq(seen.changes, n + 1);
}
END_TEST

/*
 * Holding a streaming subscription and told where it was made: released
 * there first (Unsubscribe with the old group's anchor and cookie), then
 * a new Subscribe routed by its group now.
 */
/* transition: MAILBOX SYNCING, WATCHING -> UNSUBSCRIBING (regroup) */
/* transition: MAILBOX UNSUBSCRIBING -> SUBSCRIBING (regroup) */
START_TEST(test_regroup_releases_first)
{
	enum mailbox_state	 from = _i == 0 ? MAILBOX_SYNCING :
	    MAILBOX_WATCHING;
	struct ews_send		 s;
	char			 id[128];

	reach(from);
	snprintf(id, sizeof id, "%s", mailbox_sub_id(mb));
	mailbox_resubscribe(mb, "regrouped", "old@example.com", "old-be");
	changed(from, MAILBOX_UNSUBSCRIBING);
	ck_assert(fake_queued(mb->sub_call, EWS_OP_UNSUBSCRIBE));
	ck_assert_int_eq(fake_prio(mb->sub_call), THROTTLE_PRIO_HIGH);
	memset(&s, 0, sizeof s);
	ck_assert_int_eq(mb->sub_call->ops->build(mb->sub_call, &s, mb), 0);
	ck_assert_str_eq(s.anchor, "old@example.com");
	ck_assert_str_eq(s.cookie, "old-be");
	ck_assert_ptr_nonnull(strstr(buf_str(&s.body), id));
	buf_free(&s.body);
	fake_ok(mb->sub_call, "unsubscribe.xml");
	changed(MAILBOX_UNSUBSCRIBING, MAILBOX_SUBSCRIBING);
	ck_assert_ptr_null(release_of(mb));
	ck_assert_ptr_null(mailbox_sub_id(mb));
	ck_assert_str_eq(seen.sub_id, "");
	ck_assert(fake_queued(mb->sub_call, EWS_OP_SUBSCRIBE));
	ck_assert_int_eq(fake_prio(mb->sub_call), THROTTLE_PRIO_HIGH);
	memset(&s, 0, sizeof s);
	ck_assert_int_eq(mb->sub_call->ops->build(mb->sub_call, &s, mb), 0);
	ck_assert_str_eq(s.anchor, "anchor@example.com");
	buf_free(&s.body);
	fake_ok(mb->sub_call, "subscribe-streaming.xml");
	changed(MAILBOX_SUBSCRIBING, MAILBOX_SYNCING);
}
END_TEST

/* Stopped while the release runs: it stops once released. */
/* transition: MAILBOX UNSUBSCRIBING -> STOPPED */
START_TEST(test_regroup_stopped_while_released)
{
	reach(MAILBOX_WATCHING);
	mailbox_resubscribe(mb, "regrouped", "old@example.com", NULL);
	changed(MAILBOX_WATCHING, MAILBOX_UNSUBSCRIBING);
	mailbox_stop(mb);
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_UNSUBSCRIBING);
	ck_assert(fake_queued(mb->sub_call, EWS_OP_UNSUBSCRIBE));
	fake_ok(mb->sub_call, "unsubscribe.xml");
	changed(MAILBOX_UNSUBSCRIBING, MAILBOX_STOPPED);
	ck_assert(mb->sub_call == NULL);
	ck_assert_ptr_null(release_of(mb));
}
END_TEST

/* ---- inputs that do not change the state ---- */

static const struct ews_event calendar_event = { .type = EWS_EV_CREATED };
static const struct ews_event status_event = { .type = EWS_EV_STATUS };

START_TEST(test_first_notification_read_at_once)
{
	int64_t	 t0;
	unsigned n;

	to_watching(MAILBOX_MODE_STREAMING);
	n = fake_submits;
	/* A status event alone is no change. */
	mailbox_events(mb, &status_event, 1);
	ck_assert(mb->read_call == NULL);
	ck_assert_uint_eq(seen.counts[MAILBOX_COUNT_NOTIFICATION], 0);
	/* The first change of a burst is read at once: no debounce wait. */
	t0 = fake_mono;
	mailbox_events(mb, &calendar_event, 1);
	ck_assert_uint_eq(seen.counts[MAILBOX_COUNT_NOTIFICATION], 1);
	ck_assert(fake_queued(mb->read_call, EWS_OP_FIND_ITEM));
	ck_assert_uint_eq(fake_submits, n + 1);
	ck_assert_int_eq(fake_prio(mb->read_call), THROTTLE_PRIO_NORMAL);
	ck_assert_int_eq(mb->sync_at, 0);
	ck_assert_int_eq(mb->window_end, t0 + conf->presence.debounce_ms);
	/* More while it reads: one trailing read, not one each. */
	fake_mono += 10;
	mailbox_events(mb, &calendar_event, 1);
	mailbox_events(mb, &calendar_event, 1);
	ck_assert(mb->dirty);
	ck_assert_uint_eq(fake_submits, n + 1);
	fake_ok(mb->read_call, "finditem-calendarview.xml");
	ck_assert_str_eq(seen.source, "startup");	/* nothing changed */
	ck_assert(!mb->dirty);
	ck_assert(mb->read_call == NULL);
	/* ... at the end of the window that the first read opened. */
	ck_assert_int_eq(mb->sync_at, t0 + conf->presence.debounce_ms);
	/* Another change within the window joins that trailing read. */
	fake_mono += 100;
	mailbox_events(mb, &calendar_event, 1);
	ck_assert(mb->read_call == NULL);
	ck_assert_int_eq(mb->sync_at, t0 + conf->presence.debounce_ms);
	action_due();
	ck_assert(fake_queued(mb->read_call, EWS_OP_FIND_ITEM));
	ck_assert_uint_eq(fake_submits, n + 2);
	/* The trailing read opens a window of its own. */
	ck_assert_int_eq(mb->window_end,
	    fake_mono + conf->presence.debounce_ms);
	fake_ok(mb->read_call, "finditem-calendarview.xml");
	ck_assert_int_eq(mb->sync_at, 0);
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_WATCHING);
}
END_TEST

START_TEST(test_notification_after_the_window_read_at_once)
{
	to_watching(MAILBOX_MODE_STREAMING);
	mailbox_events(mb, &calendar_event, 1);
	fake_ok(mb->read_call, "finditem-calendarview.xml");
	/* Within the window, idle: the read waits for the window's end. */
	fake_mono += conf->presence.debounce_ms - 1;
	mailbox_events(mb, &calendar_event, 1);
	ck_assert(mb->read_call == NULL);
	ck_assert_int_eq(mb->sync_at, fake_mono + 1);
	action_due();
	fake_ok(mb->read_call, "finditem-calendarview.xml");
	/* A change after the window is the first of a new burst. */
	fake_mono += conf->presence.debounce_ms;
	mailbox_events(mb, &calendar_event, 1);
	ck_assert(fake_queued(mb->read_call, EWS_OP_FIND_ITEM));
	ck_assert_int_eq(mb->sync_at, 0);
	/* With no window at all, a change during a read is read right
	 * after it. */
	fake_ok(mb->read_call, "finditem-calendarview.xml");
	conf->presence.debounce_ms = 0;
	fake_mono += 2000;
	mailbox_events(mb, &calendar_event, 1);
	ck_assert(fake_queued(mb->read_call, EWS_OP_FIND_ITEM));
	mailbox_events(mb, &calendar_event, 1);
	fake_ok(mb->read_call, "finditem-calendarview.xml");
	ck_assert_int_eq(mb->sync_at, fake_mono);
}
END_TEST

START_TEST(test_periodic_resync_reads_automatic_replies)
{
	to_watching(MAILBOX_MODE_STREAMING);
	fake_mono = mb->resync_at;
	mailbox_action_timer(&mb->action, NULL);
	ck_assert(fake_queued(mb->read_call, EWS_OP_FIND_ITEM));
	ck_assert_int_eq(fake_prio(mb->read_call), THROTTLE_PRIO_LOW);
	ck_assert_int_eq(mb->resync_at, fake_mono +
	    conf->presence.resync_interval_ms);
	fake_ok(mb->read_call, "finditem-calendarview.xml");
	ck_assert(fake_queued(mb->read_call, EWS_OP_GET_USER_OOF_SETTINGS));
	fake_ok(mb->read_call, "oof-scheduled.xml");
	ck_assert_int_eq(mb->oof.state, PRESENCE_OOF_SCHEDULED);
	ck_assert(mb->read_call == NULL);
}
END_TEST

START_TEST(test_calendar_read_in_pages)
{
	static const char	 last[] = "IncludesLastItemInRange=\"true\"";
	struct fake_answer	 a = { HTTP_RESULT_OK, 200, NULL, NULL, NULL,
	    0 };
	char			*full, *page, *p;

	/* The fixture's one page, saying more items follow. */
	full = fake_fixture("finditem-calendarview.xml");
	ck_assert_ptr_nonnull(p = strstr(full, last));
	xasprintf(&page, "%.*sIncludesLastItemInRange=\"false\"%s",
	    (int)(p - full), full, p + sizeof last - 1);
	free(full);
	to_syncing(MAILBOX_MODE_STREAMING);
	a.body = page;
	ck_assert_int_eq(fake_grant(mb->read_call, NULL), 0);
	fake_answer(mb->read_call, &a);
	/* More than one page: the next one is asked for. */
	ck_assert(fake_queued(mb->read_call, EWS_OP_FIND_ITEM));
	ck_assert_ptr_nonnull(mb->cal);
	ck_assert_uint_eq(mb->cal->page, 1);
	/* The same again makes no progress: what was read is used. */
	ck_assert_int_eq(fake_grant(mb->read_call, NULL), 0);
	fake_answer(mb->read_call, &a);
	ck_assert_ptr_null(mb->cal);
	ck_assert(fake_queued(mb->read_call, EWS_OP_GET_USER_OOF_SETTINGS));
	fake_ok(mb->read_call, "oof-disabled.xml");
	changed(MAILBOX_SYNCING, MAILBOX_WATCHING);
	free(page);
}
END_TEST

START_TEST(test_boundary_and_recompute_publish)
{
	to_watching(MAILBOX_MODE_STREAMING);
	ck_assert_uint_eq(seen.published, 1);
	/* Nothing changed: nothing published. */
	mailbox_recompute(mb);
	ck_assert_uint_eq(seen.published, 1);
	/* A day later every meeting of the fixture is over. */
	fake_wall += 48 * HOUR_MS;
	mailbox_presence_timer(&mb->boundary, NULL);
	ck_assert_uint_eq(seen.published, 2);
	ck_assert_str_eq(seen.source, "timer");
	ck_assert_str_eq(seen.presence, "available");
}
END_TEST

START_TEST(test_poll_mode_asks_the_poller)
{
	to_watching(MAILBOX_MODE_POLL);
	mailbox_resync(mb);
	ck_assert_uint_eq(fake_submits, 0);
	action_due();
	ck_assert_uint_eq(seen.polls, 1);
	/* Losing a subscription it does not hold changes nothing. */
	mailbox_subscription_lost(mb, "ErrorSubscriptionNotFound", false);
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_WATCHING);
	ck_assert_uint_eq(fake_submits, 0);
}
END_TEST

START_TEST(test_names_and_json)
{
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;
	int			 i;

	for (i = 0; i < MAILBOX_STATE_MAX; i++)
		ck_assert_str_ne(mailbox_state_name(i), "?");
	for (i = 0; i < MAILBOX_STATUS_MAX; i++)
		ck_assert_str_ne(mailbox_status_name(i), "?");
	ck_assert_str_eq(mailbox_state_name(MAILBOX_STATE_MAX), "?");
	ck_assert_str_eq(mailbox_status_name(MAILBOX_STATUS_MAX), "?");
	to_watching(MAILBOX_MODE_STREAMING);
	json_writer_init(&w, &b);
	mailbox_json(mb, &w, true, 3);
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "\"state\":\"streaming\""));
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "\"connection\":3"));
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "\"subscribed\":true"));
	buf_free(&b);
}
END_TEST

START_TEST(test_change_logged_at_debug)
{
	char	*log;

	fake_log_begin(LOG_DEBUG);
	start(MAILBOX_MODE_STREAMING);
	fake_ok(mb->sub_call, "subscribe-streaming.xml");
	log = fake_log_end();
	ck_assert_ptr_nonnull(strstr(log, ADDR ": idle -> subscribing"));
	ck_assert_ptr_nonnull(strstr(log, ADDR ": subscribing -> syncing"));
	free(log);
	/* Not a word of it at the usual levels. */
	fake_log_begin(LOG_INFO);
	first_read();
	log = fake_log_end();
	ck_assert_ptr_null(strstr(log, "->"));
	free(log);
}
END_TEST

/* ---- Graph ---- */

#define GRAPH_URL	"https://gw.test/graph/notify/TOKEN"
#define GRAPH_LC_URL	"https://gw.test/graph/lifecycle/TOKEN"
#define CLIENT_STATE	"0123456789abcdef"
#define GRAPH_SUB_ID	"7f105c7d-2dc5-4530-97cd-4e7ae6534c07"

/*
 * The mailbox on Graph instead: with change notifications (the
 * listener's URLs and clientState in the context, mode push) or
 * without (delta rounds).
 */
static void
graph_mailbox(bool notifications)
{
	mailbox_free(mb);
	ctx.graph_url = notifications ? GRAPH_URL : NULL;
	ctx.graph_lc_url = notifications ? GRAPH_LC_URL : NULL;
	ctx.client_state = notifications ? CLIENT_STATE : NULL;
	mb = mailbox_new(&ctx, ADDR, CONF_ID_SMTP, NULL,
	    MAILBOX_BACKEND_GRAPH);
	ck_assert_int_eq(mailbox_backend(mb), MAILBOX_BACKEND_GRAPH);
	ck_assert_ptr_nonnull(graph_of(mb));
	ck_assert_str_eq(graph_of(mb)->user, ADDR);
}

/* A read's answer: the window with one busy meeting now, or empty. */
static void
graph_read_ok(bool busy, bool with_oof)
{
	struct timeline_item	 it;
	struct ews_oof		 oof;
	struct graphread_result	 r;

	memset(&it, 0, sizeof it);
	it.start = fake_wall / 1000 - 60;
	it.end = fake_wall / 1000 + 3600;
	it.status = TL_BUSY;
	memset(&oof, 0, sizeof oof);
	oof.state = EWS_OOF_DISABLED;
	memset(&r, 0, sizeof r);
	r.items = busy ? &it : NULL;
	r.nitems = busy ? 1 : 0;
	r.calendar = true;
	r.oof = with_oof ? &oof : NULL;
	fake_graph_read(graph_of(mb), &r);
}

static void
graph_read_fail(const char *code, enum graph_action action)
{
	struct graphread_result	 r;

	memset(&r, 0, sizeof r);
	r.code = code;
	r.action = action;
	fake_graph_read(graph_of(mb), &r);
}

static void
graph_sub_answer(const char *code, enum graph_action action)
{
	struct graphsub_result	 r;

	memset(&r, 0, sizeof r);
	r.code = code;
	r.action = action;
	if (code == NULL) {
		r.id = GRAPH_SUB_ID;
		r.expires = fake_wall / 1000 + 3 * 86400;
	}
	fake_graph_sub(graph_of(mb), &r);
}

/* Started on Graph, subscribed if with notifications: SYNCING. */
static void
graph_to_syncing(bool notifications)
{
	graph_mailbox(notifications);
	mailbox_start(mb);
	if (notifications) {
		changed(MAILBOX_IDLE, MAILBOX_SUBSCRIBING);
		graph_sub_answer(NULL, GRAPH_ACT_OK);
		changed(MAILBOX_SUBSCRIBING, MAILBOX_SYNCING);
	} else
		changed(MAILBOX_IDLE, MAILBOX_SYNCING);
	ck_assert(graphread_busy(graph_of(mb)));
}

static void
graph_to_watching(bool notifications)
{
	graph_to_syncing(notifications);
	graph_read_ok(true, true);
	changed(MAILBOX_SYNCING, MAILBOX_WATCHING);
}

/* transition: MAILBOX IDLE -> SYNCING (graph) */
START_TEST(test_graph_idle_to_syncing_delta)
{
	graph_mailbox(false);
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_IDLE);
	mailbox_start(mb);
	changed(MAILBOX_IDLE, MAILBOX_SYNCING);
	ck_assert_int_eq(mailbox_mode(mb), MAILBOX_MODE_DELTA);
	/* The first delta round, and nothing else: no subscription, not a
	 * request on the EWS path. */
	ck_assert(graphread_busy(graph_of(mb)));
	ck_assert_int_eq(graph_of(mb)->kind, GRAPHREAD_ROUND);
	ck_assert_uint_eq(graph_of(mb)->starts, 1);
	ck_assert_uint_eq(graph_of(mb)->subscribes, 0);
	ck_assert_uint_eq(fake_submits, 0);
	ck_assert_ptr_null(mailbox_sub_id(mb));
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_SYNCING);
}
END_TEST

/* transition: MAILBOX SYNCING -> WATCHING (graph) */
START_TEST(test_graph_syncing_to_watching)
{
	int64_t	 now;

	graph_to_syncing(false);
	now = fake_mono;
	graph_read_ok(true, true);
	changed(MAILBOX_SYNCING, MAILBOX_WATCHING);
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_DELTA);
	/* What the round found reached the sink. */
	ck_assert_uint_eq(seen.published, 1);
	ck_assert_str_eq(seen.presence, "busy");
	ck_assert_str_eq(seen.source, "startup");
	ck_assert_int_eq(mb->oof.state, PRESENCE_OOF_DISABLED);
	/* The next round at a random phase of the interval. */
	ck_assert_int_gt(mb->sync_at, now);
	ck_assert_int_le(mb->sync_at, now + conf->graph.delta_interval_ms);
	ck_assert(timerheap_scheduled(&mb->action));
	/* ... which is a delta round again, and what it says is published
	 * (the meeting was cancelled). */
	action_due();
	ck_assert(graphread_busy(graph_of(mb)));
	ck_assert_int_eq(graph_of(mb)->kind, GRAPHREAD_ROUND);
	graph_read_ok(false, false);
	ck_assert_uint_eq(seen.published, 2);
	ck_assert_str_eq(seen.presence, "available");
	ck_assert_str_eq(seen.source, "poll");
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_WATCHING);
	ck_assert_int_eq(mb->sync_at, fake_mono +
	    conf->graph.delta_interval_ms);
	ck_assert_uint_eq(fake_submits, 0);
}
END_TEST

/* transition: MAILBOX SYNCING -> WATCHING (graph) */
START_TEST(test_graph_syncing_to_watching_read_failed)
{
	int64_t	 now;

	graph_to_syncing(false);
	now = fake_mono;
	graph_read_fail("serviceUnavailable", GRAPH_ACT_TRANSIENT);
	changed(MAILBOX_SYNCING, MAILBOX_WATCHING);
	ck_assert_uint_eq(seen.published, 0);
	/* Read again after the back-off step. */
	ck_assert_int_ge(mb->sync_at, now + RETRY_BASE_MS / 2);
	ck_assert_int_le(mb->sync_at, now + RETRY_BASE_MS);
	action_due();
	ck_assert(graphread_busy(graph_of(mb)));
	graph_read_ok(true, false);
	ck_assert_uint_eq(seen.published, 1);
	ck_assert_str_eq(seen.presence, "busy");
	ck_assert_str_eq(mailbox_error(mb), "");
}
END_TEST

/* transition: MAILBOX SYNCING -> PARKED (graph) */
START_TEST(test_graph_syncing_to_parked)
{
	enum graph_action	 act = _i == 0 ? GRAPH_ACT_DENIED :
	    GRAPH_ACT_NOT_FOUND;

	graph_to_syncing(false);
	graph_read_fail(_i == 0 ? "accessDenied" : "ErrorItemNotFound", act);
	changed(MAILBOX_SYNCING, MAILBOX_PARKED);
	/* 403 is told as Exchange's refusal, 404 as it came. */
	ck_assert_str_eq(mailbox_error(mb), _i == 0 ? "ErrorAccessDenied" :
	    "ErrorItemNotFound");
	ck_assert_int_eq(mb->retry_at, fake_mono + PARK_RETRY_MS);
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_PARKED);
	ck_assert_uint_eq(seen.published, 0);
}
END_TEST

/* transition: MAILBOX PARKED -> SYNCING (graph) */
START_TEST(test_graph_parked_to_syncing)
{
	graph_to_syncing(false);
	graph_read_fail("accessDenied", GRAPH_ACT_DENIED);
	changed(MAILBOX_SYNCING, MAILBOX_PARKED);
	fake_mono += PARK_RETRY_MS - 1;
	mailbox_action_timer(&mb->action, NULL);
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_PARKED);
	ck_assert(!graphread_busy(graph_of(mb)));
	fake_mono += 1;
	mailbox_action_timer(&mb->action, NULL);
	changed(MAILBOX_PARKED, MAILBOX_SYNCING);
	ck_assert(graphread_busy(graph_of(mb)));
	ck_assert_uint_eq(graph_of(mb)->starts, 2);
	ck_assert_uint_eq(graph_of(mb)->subscribes, 0);
	ck_assert_uint_eq(fake_submits, 0);
	graph_read_ok(true, true);
	changed(MAILBOX_SYNCING, MAILBOX_WATCHING);
	ck_assert_str_eq(seen.presence, "busy");
}
END_TEST

/* transition: MAILBOX WATCHING -> PARKED (graph) */
START_TEST(test_graph_watching_to_parked)
{
	graph_to_watching(false);
	mailbox_resync(mb);
	ck_assert(graphread_busy(graph_of(mb)));
	ck_assert_int_eq(graph_of(mb)->kind, GRAPHREAD_FULL);
	graph_read_fail("accessDenied", GRAPH_ACT_DENIED);
	changed(MAILBOX_WATCHING, MAILBOX_PARKED);
	ck_assert_str_eq(mailbox_error(mb), "ErrorAccessDenied");
	ck_assert_int_eq(mb->sync_at, 0);
}
END_TEST

/* transition: MAILBOX IDLE -> SUBSCRIBING (graph) */
START_TEST(test_graph_idle_to_subscribing)
{
	int64_t	 wall = fake_wall / 1000;

	graph_mailbox(true);
	mailbox_start(mb);
	changed(MAILBOX_IDLE, MAILBOX_SUBSCRIBING);
	ck_assert_int_eq(mailbox_mode(mb), MAILBOX_MODE_PUSH);
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_SUBSCRIBING);
	/* A subscription to the listener's URLs with its clientState, for
	 * the configured lifetime within Graph's maximum; no read yet, no
	 * EWS request. */
	ck_assert_int_eq(graph_of(mb)->sub_op, FAKE_GSUB_SUBSCRIBE);
	ck_assert_str_eq(graph_of(mb)->url, GRAPH_URL);
	ck_assert_str_eq(graph_of(mb)->lc_url, GRAPH_LC_URL);
	ck_assert_str_eq(graph_of(mb)->client_state, CLIENT_STATE);
	ck_assert_int_gt(graph_of(mb)->expires, wall);
	ck_assert_int_le(graph_of(mb)->expires, graph_sub_max_expiry(wall));
	ck_assert(!graphread_busy(graph_of(mb)));
	ck_assert_uint_eq(fake_submits, 0);
}
END_TEST

/* transition: MAILBOX SUBSCRIBING -> SYNCING (graph) */
START_TEST(test_graph_subscribing_to_syncing)
{
	graph_mailbox(true);
	mailbox_start(mb);
	graph_sub_answer(NULL, GRAPH_ACT_OK);
	changed(MAILBOX_SUBSCRIBING, MAILBOX_SYNCING);
	ck_assert_str_eq(mailbox_sub_id(mb), GRAPH_SUB_ID);
	ck_assert_str_eq(seen.sub_id, GRAPH_SUB_ID);
	ck_assert_uint_eq(seen.subscription, 1);
	/* Renewed well before it expires. */
	ck_assert_int_gt(mb->side->renew_at, fake_mono);
	ck_assert_int_lt(mb->side->renew_at,
	    fake_mono + 3 * 86400 * INT64_C(1000));
	/* With notifications the first read reads everything. */
	ck_assert(graphread_busy(graph_of(mb)));
	ck_assert_int_eq(graph_of(mb)->kind, GRAPHREAD_FULL);
	graph_read_ok(true, true);
	changed(MAILBOX_SYNCING, MAILBOX_WATCHING);
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_PUSH);
	ck_assert_uint_eq(seen.published, 1);
	ck_assert_str_eq(seen.presence, "busy");
	/* A full read now and then besides the notifications. */
	ck_assert_int_gt(mb->sync_at, fake_mono);
	ck_assert_int_le(mb->sync_at, fake_mono +
	    conf->graph.delta_interval_ms);
	mailbox_graph_notify(mb, GRAPH_NOTIF_CHANGE);
	ck_assert_uint_eq(seen.counts[MAILBOX_COUNT_NOTIFICATION], 1);
	ck_assert(graphread_busy(graph_of(mb)));
	ck_assert_int_eq(graph_of(mb)->kind, GRAPHREAD_CALENDAR);
	graph_read_ok(false, false);
	ck_assert_uint_eq(seen.published, 2);
	ck_assert_str_eq(seen.presence, "available");
	ck_assert_str_eq(seen.source, "calendar");
	/* Renewal at its time keeps the mailbox where it is. */
	fake_mono = mb->side->renew_at;
	mailbox_action_timer(&mb->action, NULL);
	ck_assert_int_eq(graph_of(mb)->sub_op, FAKE_GSUB_RENEW);
	ck_assert_str_eq(graph_of(mb)->sub_id, GRAPH_SUB_ID);
	graph_sub_answer(NULL, GRAPH_ACT_OK);
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_WATCHING);
	ck_assert_int_gt(mb->side->renew_at, fake_mono);
	ck_assert_uint_eq(fake_submits, 0);
}
END_TEST

/* transition: MAILBOX SUBSCRIBING -> BACKOFF (graph) */
START_TEST(test_graph_subscribing_to_backoff)
{
	int64_t	 now;

	graph_mailbox(true);
	mailbox_start(mb);
	now = fake_mono;
	graph_sub_answer("serviceUnavailable", GRAPH_ACT_TRANSIENT);
	changed(MAILBOX_SUBSCRIBING, MAILBOX_BACKOFF);
	ck_assert_str_eq(mailbox_error(mb), "serviceUnavailable");
	ck_assert_ptr_null(mailbox_sub_id(mb));
	ck_assert_uint_eq(mb->failures, 1);
	ck_assert_int_ge(mb->retry_at, now + RETRY_BASE_MS / 2);
	ck_assert_int_le(mb->retry_at, now + RETRY_BASE_MS);
	ck_assert(!graphread_busy(graph_of(mb)));
	ck_assert_int_eq(mailbox_status(mb), MAILBOX_STATUS_BACKOFF);
}
END_TEST

/* transition: MAILBOX BACKOFF -> SUBSCRIBING (graph) */
START_TEST(test_graph_backoff_to_subscribing)
{
	graph_mailbox(true);
	mailbox_start(mb);
	graph_sub_answer("serviceUnavailable", GRAPH_ACT_TRANSIENT);
	changed(MAILBOX_SUBSCRIBING, MAILBOX_BACKOFF);
	action_due();
	changed(MAILBOX_BACKOFF, MAILBOX_SUBSCRIBING);
	ck_assert_int_eq(graph_of(mb)->sub_op, FAKE_GSUB_SUBSCRIBE);
	ck_assert_uint_eq(graph_of(mb)->subscribes, 2);
	graph_sub_answer(NULL, GRAPH_ACT_OK);
	changed(MAILBOX_SUBSCRIBING, MAILBOX_SYNCING);
}
END_TEST

/* 403 (_i 0), or no mailbox for the user in Exchange Online (_i 1). */
/* transition: MAILBOX SUBSCRIBING -> PARKED (graph) */
START_TEST(test_graph_subscribing_to_parked)
{
	graph_mailbox(true);
	mailbox_start(mb);
	if (_i == 0)
		graph_sub_answer("accessDenied", GRAPH_ACT_DENIED);
	else
		graph_sub_answer("MailboxNotEnabledForRESTAPI",
		    GRAPH_ACT_NOT_FOUND);
	changed(MAILBOX_SUBSCRIBING, MAILBOX_PARKED);
	ck_assert_str_eq(mailbox_error(mb), _i == 0 ? "ErrorAccessDenied" :
	    "MailboxNotEnabledForRESTAPI");
	ck_assert_int_eq(mb->retry_at, fake_mono + PARK_RETRY_MS);
	ck_assert_ptr_null(mailbox_sub_id(mb));
	ck_assert(!graphread_sub_busy(graph_of(mb)));
	ck_assert(!graphread_busy(graph_of(mb)));
}
END_TEST

/* transition: MAILBOX PARKED -> SUBSCRIBING (graph) */
START_TEST(test_graph_parked_to_subscribing)
{
	graph_mailbox(true);
	mailbox_start(mb);
	graph_sub_answer("accessDenied", GRAPH_ACT_DENIED);
	changed(MAILBOX_SUBSCRIBING, MAILBOX_PARKED);
	fake_mono += PARK_RETRY_MS;
	mailbox_action_timer(&mb->action, NULL);
	changed(MAILBOX_PARKED, MAILBOX_SUBSCRIBING);
	ck_assert_int_eq(graph_of(mb)->sub_op, FAKE_GSUB_SUBSCRIBE);
	ck_assert_uint_eq(graph_of(mb)->subscribes, 2);
	ck_assert(!graphread_busy(graph_of(mb)));
}
END_TEST

/* Graph removed the subscription (_i 0), or it was not found when
 * renewed (_i 1): a new one. */
/* transition: MAILBOX WATCHING -> SUBSCRIBING (graph) */
START_TEST(test_graph_watching_to_subscribing)
{
	graph_to_watching(true);
	if (_i == 0)
		mailbox_graph_notify(mb, GRAPH_NOTIF_REMOVED);
	else {
		fake_mono = mb->side->renew_at;
		mailbox_action_timer(&mb->action, NULL);
		ck_assert_int_eq(graph_of(mb)->sub_op, FAKE_GSUB_RENEW);
		/* The periodic read, due long before, runs too. */
		ck_assert(graphread_busy(graph_of(mb)));
		ck_assert_int_eq(graph_of(mb)->kind, GRAPHREAD_FULL);
		graph_read_ok(true, true);
		graph_sub_answer("ResourceNotFound", GRAPH_ACT_NOT_FOUND);
	}
	changed(MAILBOX_WATCHING, MAILBOX_SUBSCRIBING);
	ck_assert_uint_eq(seen.counts[MAILBOX_COUNT_RESUBSCRIBE], 1);
	ck_assert_ptr_null(mailbox_sub_id(mb));
	ck_assert_str_eq(seen.sub_id, "");
	ck_assert_int_eq(graph_of(mb)->sub_op, FAKE_GSUB_SUBSCRIBE);
	ck_assert_uint_eq(graph_of(mb)->subscribes, 2);
	/* The new subscription reads again; the same presence is not
	 * published twice. */
	graph_sub_answer(NULL, GRAPH_ACT_OK);
	changed(MAILBOX_SUBSCRIBING, MAILBOX_SYNCING);
	ck_assert_int_eq(mb->source, SOURCE_RESUBSCRIBE);
	graph_read_ok(true, true);
	changed(MAILBOX_SYNCING, MAILBOX_WATCHING);
	ck_assert_uint_eq(seen.published, 1);
}
END_TEST

/* transition: MAILBOX SYNCING -> SUBSCRIBING (graph) */
START_TEST(test_graph_syncing_to_subscribing)
{
	graph_to_syncing(true);
	mailbox_graph_notify(mb, GRAPH_NOTIF_REMOVED);
	changed(MAILBOX_SYNCING, MAILBOX_SUBSCRIBING);
	ck_assert_int_eq(graph_of(mb)->sub_op, FAKE_GSUB_SUBSCRIBE);
	ck_assert_ptr_null(mailbox_sub_id(mb));
}
END_TEST

/*
 * Stopped holding a Graph subscription: deleted, then STOPPED.  Also
 * when parked (_i 2): Graph has no mailbox for the user any more, but
 * the subscription may live on.
 */
/* transition: MAILBOX SYNCING, WATCHING -> UNSUBSCRIBING (graph) */
/* transition: MAILBOX PARKED -> UNSUBSCRIBING (graph) */
START_TEST(test_graph_to_unsubscribing)
{
	static const enum mailbox_state from[] = {
		MAILBOX_SYNCING, MAILBOX_WATCHING, MAILBOX_PARKED
	};

	if (_i == 0)
		graph_to_syncing(true);
	else
		graph_to_watching(true);
	if (_i == 2) {
		mailbox_resync(mb);
		graph_read_fail("MailboxNotEnabledForRESTAPI",
		    GRAPH_ACT_NOT_FOUND);
		changed(MAILBOX_WATCHING, MAILBOX_PARKED);
		ck_assert_str_eq(mailbox_sub_id(mb), GRAPH_SUB_ID);
		ck_assert_int_eq(mb->side->renew_at, 0);
	}
	mailbox_stop(mb);
	changed(from[_i], MAILBOX_UNSUBSCRIBING);
	ck_assert(!graphread_busy(graph_of(mb)));
	ck_assert_int_eq(graph_of(mb)->sub_op, FAKE_GSUB_UNSUBSCRIBE);
	ck_assert_str_eq(graph_of(mb)->sub_id, GRAPH_SUB_ID);
	ck_assert_uint_eq(fake_submits, 0);
	/* Notifications meanwhile change nothing. */
	mailbox_graph_notify(mb, GRAPH_NOTIF_CHANGE);
	ck_assert(!graphread_busy(graph_of(mb)));
	mailbox_stop(mb);
	ck_assert_int_eq(graph_of(mb)->sub_op, FAKE_GSUB_UNSUBSCRIBE);
}
END_TEST

/* transition: MAILBOX UNSUBSCRIBING -> STOPPED (graph) */
START_TEST(test_graph_unsubscribing_to_stopped)
{
	graph_to_watching(true);
	mailbox_stop(mb);
	/* Gone, or not deleted (it ends when it expires): stopped. */
	graph_sub_answer(_i == 0 ? NULL : "serviceUnavailable",
	    _i == 0 ? GRAPH_ACT_OK : GRAPH_ACT_TRANSIENT);
	changed(MAILBOX_UNSUBSCRIBING, MAILBOX_STOPPED);
	ck_assert_ptr_null(mailbox_sub_id(mb));
	ck_assert_str_eq(seen.sub_id, "");
	ck_assert(!timerheap_scheduled(&mb->action));
	ck_assert(!graphread_sub_busy(graph_of(mb)));
}
END_TEST

/* Stopped while the subscription was being made: it is deleted once
 * made (_i 0), or the mailbox stops when it was not (_i 1). */
/* transition: MAILBOX SUBSCRIBING -> UNSUBSCRIBING (graph) */
/* transition: MAILBOX SUBSCRIBING -> STOPPED (graph) */
START_TEST(test_graph_subscribing_to_unsubscribing)
{
	graph_mailbox(true);
	mailbox_start(mb);
	mailbox_stop(mb);
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_SUBSCRIBING);
	ck_assert_int_eq(graph_of(mb)->sub_op, FAKE_GSUB_SUBSCRIBE);
	if (_i == 0) {
		graph_sub_answer(NULL, GRAPH_ACT_OK);
		changed(MAILBOX_SUBSCRIBING, MAILBOX_UNSUBSCRIBING);
		ck_assert_int_eq(graph_of(mb)->sub_op, FAKE_GSUB_UNSUBSCRIBE);
		ck_assert_str_eq(graph_of(mb)->sub_id, GRAPH_SUB_ID);
		ck_assert(!graphread_busy(graph_of(mb)));
		/* Made while stopping, it was never reported bound; its end
		 * is (the layer above ignores an id it does not hold). */
		ck_assert_str_eq(seen.sub_id, "");
		snprintf(seen.sub_id, sizeof seen.sub_id, "%s", GRAPH_SUB_ID);
		graph_sub_answer(NULL, GRAPH_ACT_OK);
		changed(MAILBOX_UNSUBSCRIBING, MAILBOX_STOPPED);
	} else {
		graph_sub_answer("serviceUnavailable", GRAPH_ACT_TRANSIENT);
		changed(MAILBOX_SUBSCRIBING, MAILBOX_STOPPED);
		ck_assert_uint_eq(graph_of(mb)->unsubscribes, 0);
	}
}
END_TEST

/* Without notifications there is nothing to delete; also when parked
 * (_i 2), its retry disarmed. */
/* transition: MAILBOX SYNCING, WATCHING -> STOPPED (graph) */
/* transition: MAILBOX PARKED -> STOPPED (graph) */
START_TEST(test_graph_delta_to_stopped)
{
	static const enum mailbox_state from[] = {
		MAILBOX_SYNCING, MAILBOX_WATCHING, MAILBOX_PARKED
	};

	if (_i == 1)
		graph_to_watching(false);
	else
		graph_to_syncing(false);
	if (_i == 2) {
		graph_read_fail("accessDenied", GRAPH_ACT_DENIED);
		changed(MAILBOX_SYNCING, MAILBOX_PARKED);
		ck_assert(timerheap_scheduled(&mb->action));
	}
	mailbox_stop(mb);
	changed(from[_i], MAILBOX_STOPPED);
	ck_assert(!graphread_busy(graph_of(mb)));
	ck_assert_uint_eq(graph_of(mb)->cancels, _i == 0 ? 1 : 0);
	ck_assert_uint_eq(graph_of(mb)->unsubscribes, 0);
	ck_assert(!timerheap_scheduled(&mb->action));
	ck_assert_uint_eq(fake_submits, 0);
}
END_TEST

START_TEST(test_graph_missed_and_reauthorize)
{
	graph_to_watching(true);
	/* Missed notifications: read all again, at once. */
	mailbox_graph_notify(mb, GRAPH_NOTIF_MISSED);
	ck_assert(graphread_busy(graph_of(mb)));
	ck_assert_int_eq(graph_of(mb)->kind, GRAPHREAD_FULL);
	graph_read_ok(true, true);
	/* Reauthorization asked for: renewed now, state unchanged. */
	mailbox_graph_notify(mb, GRAPH_NOTIF_REAUTHORIZE);
	ck_assert_int_eq(graph_of(mb)->sub_op, FAKE_GSUB_RENEW);
	ck_assert_uint_eq(graph_of(mb)->renews, 1);
	/* A renewal that fails but leaves time is tried again later. */
	graph_sub_answer("serviceUnavailable", GRAPH_ACT_TRANSIENT);
	ck_assert_int_eq(mailbox_state(mb), MAILBOX_WATCHING);
	ck_assert_str_eq(mailbox_sub_id(mb), GRAPH_SUB_ID);
	ck_assert_int_gt(mb->side->renew_at, fake_mono);
	ck_assert_int_le(mb->side->renew_at, fake_mono + RETRY_BASE_MS);
	action_due();
	ck_assert_int_eq(graph_of(mb)->sub_op, FAKE_GSUB_RENEW);
	ck_assert_uint_eq(graph_of(mb)->renews, 2);
	ck_assert_uint_eq(seen.changes, 3);
}
END_TEST

/*
 * 100,000 mailboxes: the struct stays in a 240-byte malloc chunk, and a
 * streaming mailbox without an error has no side allocation (what only
 * push, Graph, a release or an error needs); an error makes one.
 */
START_TEST(test_streaming_mailbox_is_small)
{
	ck_assert_uint_le(sizeof(struct mailbox), 232);
	to_watching(MAILBOX_MODE_STREAMING);
	ck_assert_ptr_nonnull(mailbox_sub_id(mb));
	ck_assert_ptr_null(mb->side);
	ck_assert_str_eq(mailbox_error(mb), "");
	set_error(mb, "ErrorServerBusy");
	ck_assert_ptr_nonnull(mb->side);
	ck_assert_str_eq(mailbox_error(mb), "ErrorServerBusy");
	set_error(mb, NULL);
	ck_assert_str_eq(mailbox_error(mb), "");
}
END_TEST

/* A UPN equal to the address is kept once; another one is kept. */
START_TEST(test_upn_equal_to_address_kept_once)
{
	struct mailbox		*m2;
	struct soap_ident	 id;

	m2 = mailbox_new(&ctx, ADDR, CONF_ID_UPN, ADDR, MAILBOX_BACKEND_EWS);
	ck_assert_ptr_null(m2->imp_id);
	mailbox_ident(m2, &id);
	ck_assert_int_eq(id.type, CONF_ID_UPN);
	ck_assert_str_eq(id.value, ADDR);
	mailbox_free(m2);
	m2 = mailbox_new(&ctx, ADDR, CONF_ID_UPN, "jo@corp.example",
	    MAILBOX_BACKEND_EWS);
	mailbox_ident(m2, &id);
	ck_assert_int_eq(id.type, CONF_ID_UPN);
	ck_assert_str_eq(id.value, "jo@corp.example");
	mailbox_free(m2);
}
END_TEST

static Suite *
mailbox_suite(void)
{
	Suite	*s = suite_create("mailbox");
	TCase	*tc = tcase_create("states");

	tcase_set_timeout(tc, 10);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_idle_to_subscribing);
	tcase_add_test(tc, test_streaming_mailbox_is_small);
	tcase_add_test(tc, test_upn_equal_to_address_kept_once);
	tcase_add_test(tc, test_idle_to_watching_poll);
	tcase_add_test(tc, test_subscribing_to_syncing);
	tcase_add_test(tc, test_subscribing_to_backoff);
	tcase_add_test(tc, test_subscribing_to_parked);
	tcase_add_test(tc, test_subscribing_to_watching_refused);
	tcase_add_test(tc, test_syncing_to_watching);
	tcase_add_test(tc, test_syncing_to_watching_read_failed);
	tcase_add_test(tc, test_syncing_to_parked);
	tcase_add_test(tc, test_syncing_to_subscribing_lost);
	tcase_add_test(tc, test_watching_to_parked_by_read);
	tcase_add_test(tc, test_watching_to_parked_by_poll);
	tcase_add_test(tc, test_watching_to_subscribing_lost);
	tcase_add_test(tc, test_watching_to_subscribing_push_silent);
	tcase_add_test(tc, test_backoff_to_subscribing);
	tcase_add_test(tc, test_parked_to_subscribing);
	tcase_add_test(tc, test_parked_to_watching_poll);
	tcase_add_test(tc, test_watching_to_parked_by_oof_cycle);
	tcase_add_test(tc, test_oof_request_built_for_the_mailbox);
	tcase_add_loop_test(tc, test_mode_change_to_push, 0,
	    sizeof mode_change_from / sizeof mode_change_from[0]);
	tcase_add_loop_test(tc, test_mode_change_to_poll, 0,
	    sizeof mode_change_from / sizeof mode_change_from[0]);
	tcase_add_loop_test(tc, test_to_unsubscribing, 0, 2);
	tcase_add_loop_test(tc, test_to_stopped, 0,
	    sizeof stop_from / sizeof stop_from[0]);
	tcase_add_loop_test(tc, test_unsubscribing_to_stopped, 0, 2);
	tcase_add_loop_test(tc, test_stopped_while_subscribe_on_the_wire, 0,
	    2);
	tcase_add_loop_test(tc, test_regroup_to_subscribing, 0,
	    sizeof regroup_from / sizeof regroup_from[0]);
	tcase_add_loop_test(tc, test_regroup_releases_first, 0, 2);
	tcase_add_test(tc, test_regroup_stopped_while_released);
	tcase_add_test(tc, test_first_notification_read_at_once);
	tcase_add_test(tc, test_notification_after_the_window_read_at_once);
	tcase_add_test(tc, test_periodic_resync_reads_automatic_replies);
	tcase_add_test(tc, test_calendar_read_in_pages);
	tcase_add_test(tc, test_boundary_and_recompute_publish);
	tcase_add_test(tc, test_poll_mode_asks_the_poller);
	tcase_add_test(tc, test_names_and_json);
	tcase_add_test(tc, test_change_logged_at_debug);
	tcase_add_test(tc, test_graph_idle_to_syncing_delta);
	tcase_add_test(tc, test_graph_syncing_to_watching);
	tcase_add_test(tc, test_graph_syncing_to_watching_read_failed);
	tcase_add_loop_test(tc, test_graph_syncing_to_parked, 0, 2);
	tcase_add_test(tc, test_graph_parked_to_syncing);
	tcase_add_test(tc, test_graph_watching_to_parked);
	tcase_add_test(tc, test_graph_idle_to_subscribing);
	tcase_add_test(tc, test_graph_subscribing_to_syncing);
	tcase_add_test(tc, test_graph_subscribing_to_backoff);
	tcase_add_test(tc, test_graph_backoff_to_subscribing);
	tcase_add_loop_test(tc, test_graph_subscribing_to_parked, 0, 2);
	tcase_add_test(tc, test_graph_parked_to_subscribing);
	tcase_add_loop_test(tc, test_graph_watching_to_subscribing, 0, 2);
	tcase_add_test(tc, test_graph_syncing_to_subscribing);
	tcase_add_loop_test(tc, test_graph_to_unsubscribing, 0, 3);
	tcase_add_loop_test(tc, test_graph_unsubscribing_to_stopped, 0, 2);
	tcase_add_loop_test(tc, test_graph_subscribing_to_unsubscribing, 0, 2);
	tcase_add_loop_test(tc, test_graph_delta_to_stopped, 0, 3);
	tcase_add_test(tc, test_graph_missed_and_reauthorize);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(mailbox_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
