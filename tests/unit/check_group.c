/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the stream group's state machine, driven deterministically.
 * The test includes src/subs/group.c with the clock and the EWS call path
 * faked (subs_fake.h) and the mailboxes replaced by plain records, and
 * walks every transition group.h lists; its timers are called directly.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "subs_fake.h"

#define mailbox_state			fake_mailbox_state
#define mailbox_sub_id			fake_mailbox_sub_id
#define mailbox_address			fake_mailbox_address
#define mailbox_ident			fake_mailbox_ident
#define mailbox_group			fake_mailbox_group
#define mailbox_set_group		fake_mailbox_set_group
#define mailbox_events			fake_mailbox_events
#define mailbox_subscription_lost	fake_mailbox_subscription_lost
#define registry_by_subid		fake_registry_by_subid

#include "subs/group.c"

#include "base/conf.h"

/* A member as the group sees it. */
struct mailbox {
	char			 address[32];
	char			 sub_id[32];	/* "" = not subscribed */
	enum mailbox_state	 state;
	struct group		*group;
	unsigned		 events;	/* notifications delivered */
	unsigned		 lost;		/* subscription_lost calls */
	bool			 missed;	/* ... with events missed */
};

#define NMB	4
static struct mailbox	 mbs[NMB];
static struct event_base *base;
static struct config	*conf;
static struct subs_env	 env;
static struct group	*g;

const char *
mailbox_address(const struct mailbox *mb)
{
	return (mb->address);
}

enum mailbox_state
mailbox_state(const struct mailbox *mb)
{
	return (mb->state);
}

const char *
mailbox_sub_id(const struct mailbox *mb)
{
	return (mb->sub_id[0] != '\0' ? mb->sub_id : NULL);
}

void
mailbox_ident(const struct mailbox *mb, struct soap_ident *id)
{
	id->type = CONF_ID_SMTP;
	id->value = mb->address;
}

struct group *
mailbox_group(const struct mailbox *mb)
{
	return (mb->group);
}

void
mailbox_set_group(struct mailbox *mb, struct group *grp)
{
	mb->group = grp;
}

void
mailbox_events(struct mailbox *mb, const struct ews_event *ev, size_t n)
{
	mb->events++;
}

/* As the real mailbox: it drops the subscription and subscribes again. */
void
mailbox_subscription_lost(struct mailbox *mb, const char *code,
    bool missed)
{
	mb->lost++;
	mb->missed = missed;
	mb->sub_id[0] = '\0';
	mb->state = MAILBOX_SUBSCRIBING;
	group_member_changed(mb->group);
}

struct mailbox *
registry_by_subid(const struct registry *reg, const char *id)
{
	int	 i;

	for (i = 0; id != NULL && i < NMB; i++)
		if (strcmp(mbs[i].sub_id, id) == 0)
			return (&mbs[i]);
	return (NULL);
}

/* Member i has subscription "SUB-i" and is in state s. */
static void
member(int i, enum mailbox_state s)
{
	snprintf(mbs[i].sub_id, sizeof mbs[i].sub_id, "SUB-%d", i);
	mbs[i].state = s;
}

static void
setup(void)
{
	static const char text[] = "[exchange]\nurl = https://ews.test/\n"
	    "auth = negotiate\nusername = svc\n"
	    "[throttling]\nsubscriptions_per_connection = 4\n"
	    "idle_timeout = 30s\n";
	int	 i;

	conf = fake_env_setup(&env, text);
	base = env.base;
	memset(mbs, 0, sizeof mbs);
	g = group_new(&env, NULL, 1);
	for (i = NMB - 1; i >= 0; i--) {
		snprintf(mbs[i].address, sizeof mbs[i].address,
		    "m%d@example.com", i);
		mbs[i].state = MAILBOX_SUBSCRIBING;
		group_add(g, &mbs[i]);
	}
}

static void
teardown(void)
{
	group_free(g);
	fake_env_teardown(&env, conf);
}

static bool
pending(struct event *ev)
{
	return (evtimer_pending(ev, NULL) != 0);
}

/* Everyone subscribed and streaming; the group connects. */
static void
all_ready(void)
{
	int	 i;

	for (i = 0; i < NMB; i++)
		member(i, MAILBOX_WATCHING);
	group_member_changed(g);
	eval_cb(-1, 0, g);
}

/* all_ready, then the slot granted: OPEN. */
static void
open_group(void)
{
	all_ready();
	ck_assert_int_eq(g->state, GROUP_QUEUED);
	ck_assert_int_eq(fake_grant(&g->call, NULL), 0);
	ck_assert_int_eq(g->state, GROUP_OPEN);
}

/* Feed a fixture as stream bytes. */
static void
feed(const char *fixture)
{
	char	*body = fake_fixture(fixture);

	ck_assert_int_eq(on_data(body, strlen(body), g), HTTP_DATA_OK);
	free(body);
}

static void
feed_text(const char *text)
{
	ck_assert_int_eq(on_data(text, strlen(text), g), HTTP_DATA_OK);
}

#define ENV_HEAD "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/" \
	"envelope/\"><s:Body><m:GetStreamingEventsResponse xmlns:m=\"http:" \
	"//schemas.microsoft.com/exchange/services/2006/messages\" " \
	"xmlns:t=\"http://schemas.microsoft.com/exchange/services/2006/" \
	"types\"><m:ResponseMessages>"
#define ENV_TAIL "</m:ResponseMessages></m:GetStreamingEventsResponse>" \
	"</s:Body></s:Envelope>"
#define CLOSED ENV_HEAD "<m:GetStreamingEventsResponseMessage ResponseClass=" \
	"\"Success\"><m:ResponseCode>NoError</m:ResponseCode><m:Connection" \
	"Status>Closed</m:ConnectionStatus></m:GetStreamingEventsResponse" \
	"Message>" ENV_TAIL
#define EVENT(id) ENV_HEAD "<m:GetStreamingEventsResponseMessage " \
	"ResponseClass=\"Success\"><m:ResponseCode>NoError</m:ResponseCode>" \
	"<m:Notifications><m:Notification><t:SubscriptionId>" id \
	"</t:SubscriptionId><t:CreatedEvent><t:TimeStamp>2026-11-30T08:00:" \
	"00Z</t:TimeStamp><t:ItemId Id=\"I\"/><t:ParentFolderId Id=\"C\"/>" \
	"</t:CreatedEvent></m:Notification></m:Notifications></m:GetStream" \
	"ingEventsResponseMessage>" ENV_TAIL
#define SUB_LOST(id) ENV_HEAD "<m:GetStreamingEventsResponseMessage " \
	"ResponseClass=\"Error\"><m:MessageText>gone</m:MessageText>" \
	"<m:ResponseCode>ErrorSubscriptionNotFound</m:ResponseCode>" \
	"<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:ErrorSubscription" \
	"Ids><m:SubscriptionId>" id "</m:SubscriptionId></m:ErrorSubscription" \
	"Ids></m:GetStreamingEventsResponseMessage>" ENV_TAIL

#define REFUSED_IDS(ids) ENV_HEAD "<m:GetStreamingEventsResponseMessage " \
	"ResponseClass=\"Error\"><m:MessageText>invalid</m:MessageText>" \
	"<m:ResponseCode>ErrorInvalidSubscription</m:ResponseCode>" \
	"<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:ErrorSubscription" \
	"Ids>" ids "</m:ErrorSubscriptionIds><m:ConnectionStatus>Closed" \
	"</m:ConnectionStatus></m:GetStreamingEventsResponseMessage>" ENV_TAIL
#define SID(id) "<m:SubscriptionId>" id "</m:SubscriptionId>"

static const struct fake_answer ended_ok = { HTTP_RESULT_OK, 200, NULL,
    NULL, NULL, 0 };

/* transition: GROUP IDLE -> QUEUED: every member ready, none subscribing. */
START_TEST(test_idle_to_queued_when_settled)
{
	char	*body = NULL;

	ck_assert_int_eq(g->state, GROUP_IDLE);
	ck_assert_str_eq(group_anchor(g), "m0@example.com");
	all_ready();
	ck_assert(fake_queued(&g->call, EWS_OP_GET_STREAMING_EVENTS));
	ck_assert_int_eq(g->state, GROUP_QUEUED);
	ck_assert_int_eq(fake_grant(&g->call, &body), 0);
	ck_assert_ptr_nonnull(strstr(body, "SUB-0"));
	ck_assert_ptr_nonnull(strstr(body, "SUB-3"));
	free(body);
}
END_TEST

/*
 * transition: GROUP IDLE -> QUEUED
 * The settle timer runs out with some ready.
 */
START_TEST(test_idle_to_queued_after_settle)
{
	char	*body = NULL;

	member(0, MAILBOX_SYNCING);
	member(1, MAILBOX_WATCHING);
	group_member_changed(g);
	eval_cb(-1, 0, g);
	/* Two still subscribing: wait for them a little. */
	ck_assert_int_eq(g->state, GROUP_IDLE);
	ck_assert(pending(&g->retry_ev));
	ck_assert_uint_eq(fake_submits, 0);
	retry_cb(-1, 0, g);
	ck_assert_int_eq(g->state, GROUP_QUEUED);
	ck_assert_int_eq(fake_grant(&g->call, &body), 0);
	/* Only the ready ones are on the connection. */
	ck_assert_ptr_nonnull(strstr(body, "SUB-0"));
	ck_assert_ptr_nonnull(strstr(body, "SUB-1"));
	ck_assert_ptr_null(strstr(body, "SUB-2"));
	ck_assert_uint_eq(g->streamed, 2);
	ck_assert(g->on_stream[0] && g->on_stream[1]);
	ck_assert(!g->on_stream[2] && !g->on_stream[3]);
	free(body);
}
END_TEST

/* transition: GROUP QUEUED -> OPEN: the slot granted and the request sent. */
START_TEST(test_queued_to_open)
{
	open_group();
	ck_assert_uint_eq(g->connects, 1);
	ck_assert_uint_eq(g->streamed, NMB);
	ck_assert(pending(&g->idle_ev));
	ck_assert_int_eq(g->opened_at, fake_wall);
	ck_assert_int_eq(fake_verdict.result, THROTTLE_OK);
}
END_TEST

/*
 * transition: GROUP QUEUED -> IDLE
 * Granted, but no member is ready any more.
 */
START_TEST(test_queued_to_idle_nothing_to_stream)
{
	int	 i;

	all_ready();
	for (i = 0; i < NMB; i++)
		mbs[i].sub_id[0] = '\0';
	ck_assert_int_eq(fake_grant(&g->call, NULL), -1);
	ck_assert_int_eq(g->state, GROUP_IDLE);
	ck_assert(!fake_sent(&g->call));
	ck_assert_uint_eq(g->connects, 0);
}
END_TEST

/*
 * transition: GROUP OPEN -> IDLE
 * transition: GROUP IDLE -> QUEUED
 * Closed at ConnectionTimeout, renewed at once.
 */
START_TEST(test_open_renewed_at_connection_timeout)
{
	open_group();
	feed("stream-heartbeat.xml");
	feed_text(CLOSED);
	ck_assert(g->closed_by_server);
	fake_answer(&g->call, &ended_ok);
	ck_assert_int_eq(fake_verdict.result, THROTTLE_OK);
	ck_assert_int_eq(g->state, GROUP_QUEUED);
	ck_assert_uint_eq(g->drops, 0);
	ck_assert(!pending(&g->retry_ev));
	ck_assert_int_eq(fake_grant(&g->call, NULL), 0);
	ck_assert_uint_eq(g->connects, 2);
}
END_TEST

/*
 * transition: GROUP OPEN -> BACKOFF
 * A failure; the exponential back-off decides.
 */
START_TEST(test_open_to_backoff_on_failure)
{
	struct fake_answer	 a = { HTTP_RESULT_TRANSIENT, 0, NULL, NULL,
	    NULL, 0 };

	open_group();
	fake_answer(&g->call, &a);
	ck_assert_int_eq(g->state, GROUP_BACKOFF);
	ck_assert_uint_eq(g->drops, 1);
	ck_assert(pending(&g->retry_ev));
	ck_assert(!pending(&g->idle_ev));
	ck_assert_int_ge(g->wait_ms, 0);
	ck_assert_int_le(g->wait_ms, RECONNECT_BASE_MS);
	ck_assert_str_eq(g->last_error, "transient");
	ck_assert_uint_eq(g->on_stream[0], 0);
}
END_TEST

/*
 * transition: GROUP OPEN -> BACKOFF
 * Exchange's BackOffMilliseconds on the answer.
 */
START_TEST(test_open_to_backoff_server_says_how_long)
{
	struct fake_answer	 a = { HTTP_RESULT_THROTTLED, 500,
	    "ErrorServerBusy", NULL, NULL, 4321 };

	open_group();
	fake_answer(&g->call, &a);
	ck_assert_int_eq(g->state, GROUP_BACKOFF);
	ck_assert_int_eq(g->wait_ms, 4321);
}
END_TEST

/*
 * OPEN -> BACKOFF: an ErrorServerBusy envelope under HTTP 200.  The
 * verdict callback returns it to the call path, and the group waits as
 * long as it said even though the stream ended "Closed".
 */
START_TEST(test_open_to_backoff_verdict_from_body)
{
	open_group();
	feed("fault-server-busy.xml");
	feed_text(CLOSED);
	fake_answer(&g->call, &ended_ok);
	ck_assert_int_eq(fake_verdict.result, THROTTLE_BUSY);
	ck_assert_int_eq(fake_verdict.backoff_ms, 297749);
	ck_assert_int_eq(g->state, GROUP_BACKOFF);
	ck_assert_int_eq(g->wait_ms, 297749);
	ck_assert_str_eq(g->last_error, "ErrorServerBusy");
}
END_TEST

/* transition: GROUP OPEN -> BACKOFF: no complete message for idle_timeout. */
START_TEST(test_open_to_backoff_when_silent)
{
	int64_t	 opened;

	open_group();
	opened = g->last_data_at;
	/* Bytes that never complete an envelope are no sign of life. */
	fake_wall += 1000;
	feed_text("<s:Envelope xmlns:s=\"x\"><!-- ");
	ck_assert_int_eq(g->last_data_at, opened);
	idle_cb(-1, 0, g);
	ck_assert_int_eq(g->state, GROUP_BACKOFF);
	ck_assert_str_eq(g->last_error, "IdleTimeout");
	ck_assert_uint_eq(g->drops, 1);
	ck_assert_uint_eq(fake_cancels, 1);
	ck_assert(!fake_sent(&g->call));
	ck_assert(pending(&g->retry_ev));
}
END_TEST

/* A whole envelope (a heartbeat) is. */
START_TEST(test_heartbeat_keeps_it_open)
{
	open_group();
	fake_wall += 1000;
	feed("stream-heartbeat.xml");
	ck_assert_int_eq(g->last_data_at, fake_wall);
	ck_assert(pending(&g->idle_ev));
	ck_assert_int_eq(g->state, GROUP_OPEN);
}
END_TEST

/*
 * transition: GROUP OPEN -> BACKOFF
 * A member subscribed since the connection opened.
 */
START_TEST(test_open_to_backoff_to_let_a_member_in)
{
	open_group();
	mbs[2].sub_id[0] = '\0';
	mbs[2].state = MAILBOX_SUBSCRIBING;
	group_member_changed(g);
	ck_assert_uint_eq(g->on_stream[2], 0);
	ck_assert(!g->reopen);
	member(2, MAILBOX_SYNCING);
	mbs[3].sub_id[0] = '\0';
	mbs[3].state = MAILBOX_SUBSCRIBING;
	group_member_changed(g);
	ck_assert(g->reopen);
	/* One still subscribing: wait for it, then go anyway. */
	eval_cb(-1, 0, g);
	ck_assert_int_eq(g->state, GROUP_OPEN);
	ck_assert(pending(&g->retry_ev));
	retry_cb(-1, 0, g);
	ck_assert_int_eq(g->state, GROUP_BACKOFF);
	ck_assert_int_eq(g->wait_ms, REOPEN_GAP_MS);
	ck_assert_uint_eq(fake_cancels, 1);

	/* Settled at once: straight to BACKOFF for the gap. */
	retry_cb(-1, 0, g);
	ck_assert_int_eq(g->state, GROUP_QUEUED);
	ck_assert_int_eq(fake_grant(&g->call, NULL), 0);
	member(3, MAILBOX_SYNCING);
	group_member_changed(g);
	eval_cb(-1, 0, g);
	ck_assert_int_eq(g->state, GROUP_BACKOFF);
	ck_assert_int_eq(g->wait_ms, REOPEN_GAP_MS);
}
END_TEST

/*
 * transition: GROUP BACKOFF -> IDLE
 * And on to QUEUED only if a member is ready.
 */
START_TEST(test_backoff_to_idle)
{
	struct fake_answer	 a = { HTTP_RESULT_TRANSIENT, 0, NULL, NULL,
	    NULL, 0 };
	int			 i;

	open_group();
	fake_answer(&g->call, &a);
	ck_assert_int_eq(g->state, GROUP_BACKOFF);
	for (i = 0; i < NMB; i++) {
		mbs[i].sub_id[0] = '\0';
		mbs[i].state = MAILBOX_BACKOFF;
	}
	retry_cb(-1, 0, g);
	ck_assert_int_eq(g->state, GROUP_IDLE);
	ck_assert(!fake_queued(&g->call, EWS_OP_GET_STREAMING_EVENTS));

	open_group();
	fake_answer(&g->call, &a);
	retry_cb(-1, 0, g);
	ck_assert_int_eq(g->state, GROUP_QUEUED);
}
END_TEST

/* transition: GROUP any -> IDLE: the last member left. */
START_TEST(test_last_member_leaves)
{
	int	 i;

	open_group();
	for (i = 0; i < NMB; i++)
		group_remove(g, &mbs[i]);
	ck_assert_int_eq(g->state, GROUP_IDLE);
	ck_assert_uint_eq(group_size(g), 0);
	ck_assert_ptr_null(group_anchor(g));
	ck_assert_ptr_null(mbs[0].group);
	ck_assert(!fake_sent(&g->call));
	/* From QUEUED too. */
	for (i = 0; i < NMB; i++)
		group_add(g, &mbs[i]);
	ck_assert_str_eq(group_anchor(g), "m0@example.com");
	all_ready();
	ck_assert_int_eq(g->state, GROUP_QUEUED);
	for (i = NMB - 1; i >= 0; i--)
		group_remove(g, &mbs[i]);
	ck_assert_int_eq(g->state, GROUP_IDLE);
	ck_assert(!ews_call_busy(&g->call));
}
END_TEST

/* transition: GROUP any -> CLOSED: shutdown; nothing reconnects afterwards. */
START_TEST(test_close)
{
	open_group();
	group_close(g);
	ck_assert_int_eq(g->state, GROUP_CLOSED);
	ck_assert(!ews_call_busy(&g->call));
	ck_assert(!pending(&g->idle_ev));
	group_member_changed(g);
	eval_cb(-1, 0, g);
	retry_cb(-1, 0, g);
	ck_assert_int_eq(g->state, GROUP_CLOSED);
	/* Removing the last member leaves it closed. */
	group_remove(g, &mbs[0]);
	group_remove(g, &mbs[1]);
	group_remove(g, &mbs[2]);
	group_remove(g, &mbs[3]);
	ck_assert_int_eq(g->state, GROUP_CLOSED);
}
END_TEST

/* What the stream carries reaches the members it names. */
START_TEST(test_stream_to_members)
{
	struct fake_answer	 refused = { HTTP_RESULT_OK, 200,
	    "ErrorSubscriptionNotFound", NULL, NULL, 0 };

	open_group();
	feed_text(EVENT("SUB-1"));
	ck_assert_uint_eq(mbs[1].events, 1);
	ck_assert_uint_eq(mbs[0].events, 0);
	/* A subscription of no member here is ignored. */
	feed_text(EVENT("SUB-9"));
	feed_text(SUB_LOST("SUB-2"));
	ck_assert_uint_eq(mbs[2].lost, 1);
	ck_assert_uint_eq(g->on_stream[2], 0);
	/* The whole request refused: every member on it subscribes again. */
	fake_answer(&g->call, &refused);
	ck_assert_uint_eq(mbs[0].lost, 1);
	ck_assert_uint_eq(mbs[1].lost, 1);
	ck_assert_uint_eq(mbs[2].lost, 1);
	ck_assert_uint_eq(mbs[3].lost, 1);
	ck_assert_int_eq(g->state, GROUP_BACKOFF);
}
END_TEST

static unsigned	 refusals;

static void
on_refused(struct group *grp, void *arg)
{
	ck_assert_ptr_eq(grp, g);
	refusals++;
}

/*
 * A server refusing grouping names every id but the anchor's: reported,
 * nobody subscribes again, and the group waits before it reconnects.
 */
START_TEST(test_refused_grouping)
{
	int	 i;

	refusals = 0;
	group_on_refused(g, on_refused, NULL);
	open_group();
	feed_text(REFUSED_IDS(SID("SUB-1") SID("SUB-2") SID("SUB-3")));
	ck_assert_uint_eq(refusals, 1);
	for (i = 0; i < NMB; i++)
		ck_assert_uint_eq(mbs[i].lost, 0);
	fake_answer(&g->call, &ended_ok);
	ck_assert_int_eq(g->state, GROUP_BACKOFF);
}
END_TEST

/* The anchor's id named too, or not every other id: subscriptions lost. */
START_TEST(test_invalid_subscriptions_not_a_refusal)
{
	refusals = 0;
	group_on_refused(g, on_refused, NULL);
	open_group();
	feed_text(REFUSED_IDS(SID("SUB-1") SID("SUB-2")));
	ck_assert_uint_eq(refusals, 0);
	ck_assert_uint_eq(mbs[1].lost, 1);
	ck_assert_uint_eq(mbs[2].lost, 1);
	ck_assert_uint_eq(mbs[3].lost, 0);
	feed_text(REFUSED_IDS(SID("SUB-0") SID("SUB-3")));
	ck_assert_uint_eq(refusals, 0);
	ck_assert_uint_eq(mbs[0].lost, 1);
	ck_assert_uint_eq(mbs[3].lost, 1);
}
END_TEST

START_TEST(test_names_and_cookie)
{
	int	 i;

	for (i = 0; i < GROUP_STATE_MAX; i++)
		ck_assert_str_ne(group_state_name(i), "?");
	ck_assert_str_eq(group_state_name(GROUP_STATE_MAX), "?");
	ck_assert_ptr_null(group_cookie(g));
	group_set_cookie(g, "be=1");
	group_set_cookie(g, "be=1");
	ck_assert_str_eq(group_cookie(g), "be=1");
	ck_assert(group_full(g));
	ck_assert_uint_eq(group_id(g), 1);
}
END_TEST

START_TEST(test_change_logged_at_debug)
{
	char	*log;

	fake_log_begin(LOG_DEBUG);
	open_group();
	group_close(g);
	log = fake_log_end();
	ck_assert_ptr_nonnull(strstr(log, "connection 1: idle -> queued"));
	ck_assert_ptr_nonnull(strstr(log, "connection 1: queued -> open"));
	ck_assert_ptr_nonnull(strstr(log, "connection 1: open -> closed"));
	free(log);
}
END_TEST

static Suite *
group_suite(void)
{
	Suite	*s = suite_create("group");
	TCase	*tc = tcase_create("states");

	tcase_set_timeout(tc, 10);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_idle_to_queued_when_settled);
	tcase_add_test(tc, test_idle_to_queued_after_settle);
	tcase_add_test(tc, test_queued_to_open);
	tcase_add_test(tc, test_queued_to_idle_nothing_to_stream);
	tcase_add_test(tc, test_open_renewed_at_connection_timeout);
	tcase_add_test(tc, test_open_to_backoff_on_failure);
	tcase_add_test(tc, test_open_to_backoff_server_says_how_long);
	tcase_add_test(tc, test_open_to_backoff_verdict_from_body);
	tcase_add_test(tc, test_open_to_backoff_when_silent);
	tcase_add_test(tc, test_heartbeat_keeps_it_open);
	tcase_add_test(tc, test_open_to_backoff_to_let_a_member_in);
	tcase_add_test(tc, test_backoff_to_idle);
	tcase_add_test(tc, test_last_member_leaves);
	tcase_add_test(tc, test_close);
	tcase_add_test(tc, test_stream_to_members);
	tcase_add_test(tc, test_refused_grouping);
	tcase_add_test(tc, test_invalid_subscriptions_not_a_refusal);
	tcase_add_test(tc, test_names_and_cookie);
	tcase_add_test(tc, test_change_logged_at_debug);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(group_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
