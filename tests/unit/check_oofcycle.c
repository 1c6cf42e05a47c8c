/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the automatic-replies cycle's state machine, driven
 * deterministically.  The test includes src/subs/oofcycle.c with the
 * clock and the EWS call path faked (subs_fake.h) and plays the
 * registry and the mailboxes itself: it grants and answers each
 * GetUserOofSettings read, moves the clock and runs the pacing timer.
 * Every transition oofcycle.h lists has a test here (named after it).
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "subs_fake.h"

#define mailbox_state		fake_mailbox_state
#define mailbox_backend		fake_mailbox_backend
#define mailbox_oof_read_at	fake_mailbox_oof_read_at
#define mailbox_address		fake_mailbox_address
#define mailbox_oof_build	fake_mailbox_oof_build
#define mailbox_oof_result	fake_mailbox_oof_result
#define registry_count		fake_registry_count
#define registry_at		fake_registry_at
#define registry_find		fake_registry_find

#include "subs/oofcycle.c"

#define MINUTE_MS	(INT64_C(60) * 1000)

/* A mailbox as the cycle sees it. */
struct mailbox {
	char			 address[32];
	enum mailbox_state	 state;
	int64_t			 oof_read_at;	/* mono ms */
	unsigned		 results;	/* oof_result calls */
	unsigned		 failures;	/* ... with a code */
};

#define NMB	4
static struct mailbox	 mbs[NMB];
static struct event_base *base;
static struct config	*conf;
static struct subs_env	 env;
static struct oofcycle	*oc;

enum mailbox_state
mailbox_state(const struct mailbox *mb)
{
	return (mb->state);
}

enum mailbox_backend
mailbox_backend(const struct mailbox *mb)
{
	return (MAILBOX_BACKEND_EWS);
}

int64_t
mailbox_oof_read_at(const struct mailbox *mb)
{
	return (mb->oof_read_at);
}

const char *
mailbox_address(const struct mailbox *mb)
{
	return (mb->address);
}

int
mailbox_oof_build(const struct mailbox *mb, struct ews_send *snd)
{
	return (0);
}

void
mailbox_oof_result(struct mailbox *mb, const struct ews_oof *oof,
    const char *code)
{
	mb->results++;
	if (oof == NULL)
		mb->failures++;
	mb->oof_read_at = time_mono_ms();
}

size_t
registry_count(const struct registry *reg)
{
	return (NMB);
}

struct mailbox *
registry_at(const struct registry *reg, size_t i)
{
	return (i < NMB ? &mbs[i] : NULL);
}

struct mailbox *
registry_find(const struct registry *reg, const char *address)
{
	int	 i;

	for (i = 0; i < NMB; i++)
		if (strcmp(mbs[i].address, address) == 0)
			return (&mbs[i]);
	return (NULL);
}

/*
 * Two slots (50 % of 4), an interval of four minutes: one mailbox may
 * start each minute.
 */
static void
setup(void)
{
	static const char text[] = "[exchange]\nurl = https://ews.test/\n"
	    "auth = negotiate\nusername = svc\n"
	    "[throttling]\nmax_concurrency = 4\n"
	    "[presence]\noof_share = 50\noof_interval = 4m\n";
	int	 i;

	conf = fake_env_setup(&env, text);
	base = env.base;
	memset(mbs, 0, sizeof mbs);
	for (i = 0; i < NMB; i++) {
		snprintf(mbs[i].address, sizeof mbs[i].address,
		    "m%d@example.com", i);
		mbs[i].state = MAILBOX_WATCHING;
	}
	oc = oofcycle_new(&env, NULL);
}

static void
teardown(void)
{
	oofcycle_free(oc);
	fake_env_teardown(&env, conf);
}

/* Reads in flight or queued. */
static unsigned
queued(void)
{
	unsigned	 i, n = 0;

	for (i = 0; i < oc->nslot; i++)
		if (fake_queued(&oc->slot[i]->call,
		    EWS_OP_GET_USER_OOF_SETTINGS))
			n++;
	return (n);
}

/* Grant and answer every queued read with automatic replies off. */
static unsigned
answer_all(void)
{
	unsigned	 i, n = 0;

	for (i = 0; i < oc->nslot; i++) {
		if (!fake_queued(&oc->slot[i]->call,
		    EWS_OP_GET_USER_OOF_SETTINGS))
			continue;
		fake_ok(&oc->slot[i]->call, "oof-disabled.xml");
		n++;
	}
	return (n);
}

/* Run the cycle to its end: each minute's mailbox, answered. */
static void
run_cycle(void)
{
	int	 guard;

	for (guard = 0; oc->state == OOFCYCLE_RUNNING && guard < 10;
	    guard++) {
		if (answer_all() == 0) {
			fake_mono += MINUTE_MS;
			oofcycle_tick(oc);
		}
	}
	ck_assert_int_eq(oc->state, OOFCYCLE_WAITING);
}

static void
set_share(unsigned share)
{
	conf->presence.oof_share = share;
	oofcycle_reload(oc);
}

/* transition: OOFCYCLE OFF -> RUNNING: started with a share above 0. */
START_TEST(test_off_to_running_started)
{
	ck_assert_int_eq(oofcycle_state(oc), OOFCYCLE_OFF);
	ck_assert_uint_eq(oofcycle_slots(oc), 0);
	oofcycle_start(oc);
	ck_assert_int_eq(oofcycle_state(oc), OOFCYCLE_RUNNING);
	ck_assert_uint_eq(oofcycle_slots(oc), 2);
	/* Position 0: the first mailbox's read at once, the next waits. */
	ck_assert_uint_eq(queued(), 1);
	ck_assert_uint_eq(oc->cursor, 1);
	ck_assert_int_eq(oc->begun, fake_mono);
}
END_TEST

/*
 * transition: OOFCYCLE OFF -> RUNNING
 * Reloaded with a share above 0; share 0 stays OFF.
 */
START_TEST(test_off_to_running_reloaded)
{
	conf->presence.oof_share = 0;
	oofcycle_start(oc);
	ck_assert_int_eq(oofcycle_state(oc), OOFCYCLE_OFF);
	ck_assert_uint_eq(fake_submits, 0);
	set_share(25);
	ck_assert_int_eq(oofcycle_state(oc), OOFCYCLE_RUNNING);
	ck_assert_uint_eq(oofcycle_slots(oc), 1);
	ck_assert_uint_eq(queued(), 1);
}
END_TEST

/*
 * transition: OOFCYCLE RUNNING -> WAITING
 * Every mailbox read or skipped, every answer in.
 */
START_TEST(test_running_to_waiting)
{
	int64_t	 begun;

	/* One read by its own read since the cycle began: skipped. */
	oofcycle_start(oc);
	begun = oc->begun;
	mbs[2].oof_read_at = begun + 1;
	run_cycle();
	ck_assert_uint_eq(mbs[0].results, 1);
	ck_assert_uint_eq(mbs[1].results, 1);
	ck_assert_uint_eq(mbs[2].results, 0);
	ck_assert_uint_eq(mbs[3].results, 1);
	ck_assert_uint_eq(oc->skipped, 1);
	ck_assert_uint_eq(oc->cycles, 1);
	ck_assert_int_eq(oofcycle_last_ms(oc), fake_mono - begun);
	/* The next begins oof_interval after this one began. */
	ck_assert(evtimer_pending(&oc->tick, NULL));
}
END_TEST

/*
 * transition: OOFCYCLE RUNNING -> WAITING
 * A cycle that read nothing keeps no cycle time.
 */
START_TEST(test_running_to_waiting_nothing_read)
{
	int	 i;

	for (i = 0; i < NMB; i++)
		mbs[i].state = MAILBOX_SUBSCRIBING;
	oofcycle_start(oc);
	ck_assert_int_eq(oofcycle_state(oc), OOFCYCLE_WAITING);
	ck_assert_uint_eq(oc->cycles, 0);
	ck_assert_int_eq(oofcycle_last_ms(oc), -1);
	ck_assert_uint_eq(oc->skipped, NMB);
}
END_TEST

/* transition: OOFCYCLE WAITING -> RUNNING: the next cycle's time. */
START_TEST(test_waiting_to_running)
{
	oofcycle_start(oc);
	run_cycle();
	ck_assert_uint_eq(queued(), 0);
	fake_mono = oc->begun + conf->presence.oof_interval_ms;
	oofcycle_tick(oc);
	ck_assert_int_eq(oofcycle_state(oc), OOFCYCLE_RUNNING);
	ck_assert_int_eq(oc->begun, fake_mono);
	ck_assert_uint_eq(oc->cursor, 1);
	ck_assert_uint_eq(queued(), 1);
	run_cycle();
	ck_assert_uint_eq(mbs[3].results, 2);
	ck_assert_uint_eq(oc->cycles, 2);
}
END_TEST

/*
 * transition: OOFCYCLE RUNNING -> OFF
 * Reloaded with share 0, the read in flight cancelled.
 */
START_TEST(test_running_to_off)
{
	unsigned	 cancels;

	oofcycle_start(oc);
	ck_assert_uint_eq(queued(), 1);
	cancels = fake_cancels;
	set_share(0);
	ck_assert_int_eq(oofcycle_state(oc), OOFCYCLE_OFF);
	ck_assert_uint_eq(queued(), 0);
	ck_assert_uint_eq(fake_cancels, cancels + 1);
	ck_assert(!evtimer_pending(&oc->tick, NULL));
	ck_assert_uint_eq(oofcycle_slots(oc), 0);
}
END_TEST

/* transition: OOFCYCLE WAITING -> OFF: reloaded with share 0, no next cycle. */
START_TEST(test_waiting_to_off)
{
	oofcycle_start(oc);
	run_cycle();
	ck_assert(evtimer_pending(&oc->tick, NULL));
	set_share(0);
	ck_assert_int_eq(oofcycle_state(oc), OOFCYCLE_OFF);
	ck_assert(!evtimer_pending(&oc->tick, NULL));
}
END_TEST

/* transition: OOFCYCLE any -> STOPPED: shutdown, from each state; final. */
START_TEST(test_to_stopped)
{
	unsigned	 cancels;

	switch (_i) {
	case 1:
		oofcycle_start(oc);
		ck_assert_uint_eq(queued(), 1);
		break;
	case 2:
		oofcycle_start(oc);
		run_cycle();
		break;
	default:
		break;
	}
	cancels = fake_cancels;
	oofcycle_stop(oc);
	ck_assert_int_eq(oofcycle_state(oc), OOFCYCLE_STOPPED);
	ck_assert_uint_eq(queued(), 0);
	ck_assert_uint_eq(fake_cancels, cancels + (_i == 1 ? 1 : 0));
	ck_assert(!evtimer_pending(&oc->tick, NULL));
	/* Final: neither a start, a reload nor a tick leaves it. */
	oofcycle_start(oc);
	set_share(50);
	oofcycle_tick(oc);
	ck_assert_int_eq(oofcycle_state(oc), OOFCYCLE_STOPPED);
	ck_assert_uint_eq(queued(), 0);
}
END_TEST

/* "old -> new" at debug, once per change. */
START_TEST(test_change_logged_at_debug)
{
	char	*text;

	fake_log_begin(LOG_DEBUG);
	oofcycle_start(oc);
	text = fake_log_end();
	ck_assert_ptr_nonnull(strstr(text,
	    "automatic-replies cycle: off -> running"));
	free(text);
}
END_TEST

static Suite *
oofcycle_suite(void)
{
	Suite	*s = suite_create("oofcycle");
	TCase	*tc = tcase_create("transitions");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_off_to_running_started);
	tcase_add_test(tc, test_off_to_running_reloaded);
	tcase_add_test(tc, test_running_to_waiting);
	tcase_add_test(tc, test_running_to_waiting_nothing_read);
	tcase_add_test(tc, test_waiting_to_running);
	tcase_add_test(tc, test_running_to_off);
	tcase_add_test(tc, test_waiting_to_off);
	tcase_add_loop_test(tc, test_to_stopped, 0, 3);
	tcase_add_test(tc, test_change_logged_at_debug);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(oofcycle_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
