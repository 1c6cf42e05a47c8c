/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * GetUserAvailability polling in batches of up to 100 mailboxes.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "base/conf.h"
#include "base/hashmap.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "ews/ews_parse.h"
#include "ews/soap.h"
#include "io/ews.h"
#include "subs/env.h"
#include "subs/mailbox.h"
#include "subs/poller.h"
#include "subs/registry.h"

#define POLL_BATCH	SOAP_MAX_AVAIL_MAILBOXES
#define POLL_PARALLEL	2		/* batches in flight at once */
#define POLL_INTERVAL_MIN 30		/* MergedFreeBusyIntervalInMinutes */

struct poll_batch {
	struct poller	*p;
	struct ews_call	 call;
	char		*addr[POLL_BATCH];	/* owned copies */
	unsigned	 n;
};

struct poller {
	const struct subs_env	*env;		/* borrowed */
	struct registry		*reg;		/* borrowed */
	struct event		 tick;		/* next round */
	struct event		 kick;		/* urgent mailboxes waiting */
	struct hashmap		*urgent;	/* address -> mailbox */
	struct poll_batch	 batch[POLL_PARALLEL];
	size_t			 cursor;	/* into the registry's list */
	int			 round;		/* a round is running */
	bool			 stopped;
};

static void	 fill(struct poller *);

/* Watched by polling: what this module reads. */
static bool
pollable(const struct mailbox *mb)
{
	return (mailbox_state(mb) == MAILBOX_WATCHING &&
	    mailbox_mode(mb) == MAILBOX_MODE_POLL);
}
static int	 build(struct ews_call *, struct ews_send *, void *);
static void	 done(struct ews_call *, const struct ews_reply *, void *);

static const struct ews_call_ops poll_ops = {
	.op = EWS_OP_GET_USER_AVAILABILITY,
	.klass = THROTTLE_SHORT,
	.build = build,
	.done = done,
};

static void
arm_tick(struct poller *p)
{
	struct timeval	 tv;

	evtimer_add(&p->tick,
	    time_ms_tv(&tv, p->env->conf->throttling.poll_interval_ms));
}

static void
batch_clear(struct poll_batch *b)
{
	unsigned	 i;

	for (i = 0; i < b->n; i++)
		free(b->addr[i]);
	b->n = 0;
}

static int
build(struct ews_call *call, struct ews_send *s, void *arg)
{
	struct poll_batch	*b = arg;
	const struct config	*conf = b->p->env->conf;
	struct soap_header	 h;
	int64_t			 now = time_wall_ms() / 1000;
	int64_t			 horizon = conf->presence.horizon_ms / 1000;

	h.version = conf->exchange.version;
	h.impersonate = NULL;
	/* Exchange limits the window to 42 days. */
	if (horizon > 42 * 86400)
		horizon = 42 * 86400;
	if (soap_get_user_availability(&s->body, &h,
	    (const char *const *)b->addr, b->n,
	    now - conf->presence.lookback_ms / 1000, now + horizon,
	    POLL_INTERVAL_MIN, SOAP_FB_VIEW_FREEBUSY) == -1)
		return (-1);
	s->tag = b->addr[0];
	return (0);
}

static void
done(struct ews_call *call, const struct ews_reply *r, void *arg)
{
	struct poll_batch	*b = arg;
	struct poller		*p = b->p;
	struct ews_availability	 av;
	struct mailbox		*mb;
	char			*cause = NULL;
	unsigned		 i;

	memset(&av, 0, sizeof av);
	/* Per-mailbox errors come inside a 200 answer: each is its own. */
	if (r->http != NULL && r->http->result == HTTP_RESULT_OK &&
	    !r->generic.fault &&
	    ews_parse_availability(r->http->body, r->http->body_len, &av,
	    &cause) == 0 && !av.r.fault) {
		for (i = 0; i < b->n; i++) {
			mb = registry_find(p->reg, b->addr[i]);
			if (mb == NULL || !pollable(mb))
				continue;
			if (i >= av.nmailboxes) {
				mailbox_poll_result(mb, NULL, 0, "NoAnswer");
				continue;
			}
			if (av.mailboxes[i].status.class == EWS_CLASS_ERROR) {
				mailbox_poll_result(mb, NULL, 0,
				    av.mailboxes[i].status.code);
				continue;
			}
			mailbox_poll_result(mb, av.mailboxes[i].events,
			    av.mailboxes[i].nevents, NULL);
		}
	} else {
		if (cause != NULL) {
			log_warnx("GetUserAvailability: %s", cause);
			free(cause);
		}
		/* The whole batch failed: try its mailboxes again soon. */
		for (i = 0; i < b->n; i++) {
			mb = registry_find(p->reg, b->addr[i]);
			if (mb != NULL && pollable(mb))
				mailbox_poll_result(mb, NULL, 0, r->code);
		}
	}
	ews_availability_free(&av);
	batch_clear(b);
	fill(p);
}

/* Start batches while there is work and a free batch slot. */
static void
fill(struct poller *p)
{
	struct poll_batch	*b;
	struct hashmap_iter	 it;
	struct mailbox		*mb;
	const char		*key;
	void			*v;
	unsigned		 k;

	if (p->stopped)
		return;
	for (k = 0; k < POLL_PARALLEL; k++) {
		b = &p->batch[k];
		if (ews_call_busy(&b->call) || b->n > 0)
			continue;
		/* Urgent ones first, then the round in address order. */
		hashmap_iter_init(&it, p->urgent);
		while (b->n < POLL_BATCH && hashmap_iter_next(&it, &key, &v)) {
			mb = v;
			hashmap_iter_remove(&it);
			if (pollable(mb))
				b->addr[b->n++] = xstrdup(mailbox_address(mb));
		}
		while (p->round && b->n < POLL_BATCH &&
		    p->cursor < registry_count(p->reg)) {
			mb = registry_at(p->reg, p->cursor++);
			if (pollable(mb))
				b->addr[b->n++] = xstrdup(mailbox_address(mb));
		}
		if (p->cursor >= registry_count(p->reg))
			p->round = 0;
		if (b->n == 0)
			break;
		ews_call_submit(&b->call, &poll_ops, THROTTLE_PRIO_NORMAL, NULL,
		    b);
	}
}

static void
tick_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct poller	*p = arg;

	p->round = 1;
	p->cursor = 0;
	fill(p);
	arm_tick(p);
}

static void
kick_cb(evutil_socket_t fd, short ev, void *arg)
{
	fill(arg);
}

struct poller *
poller_new(const struct subs_env *env, struct registry *reg)
{
	struct poller	*p;
	unsigned	 k;

	p = xcalloc(1, sizeof *p);
	p->env = env;
	p->reg = reg;
	p->urgent = hashmap_new();
	evtimer_assign(&p->tick, env->base, tick_cb, p);
	event_assign(&p->kick, env->base, -1, 0, kick_cb, p);
	for (k = 0; k < POLL_PARALLEL; k++) {
		p->batch[k].p = p;
		ews_call_init(&p->batch[k].call, env->ews);
	}
	/* The first round right away, then every poll_interval. */
	event_active(&p->tick, EV_TIMEOUT, 0);
	return (p);
}

void
poller_stop(struct poller *p)
{
	p->stopped = true;
}

void
poller_free(struct poller *p)
{
	unsigned	 k;

	if (p == NULL)
		return;
	for (k = 0; k < POLL_PARALLEL; k++) {
		ews_call_cancel(&p->batch[k].call);
		batch_clear(&p->batch[k]);
	}
	event_del(&p->tick);
	event_del(&p->kick);
	hashmap_free(p->urgent, NULL);
	free(p);
}

void
poller_poll_now(struct poller *p, struct mailbox *mb)
{
	hashmap_put(p->urgent, mailbox_address(mb), mb);
	event_active(&p->kick, EV_TIMEOUT, 0);
}

void
poller_forget(struct poller *p, struct mailbox *mb)
{
	if (hashmap_get(p->urgent, mailbox_address(mb)) == mb)
		hashmap_remove(p->urgent, mailbox_address(mb));
}

void
poller_reload(struct poller *p)
{
	evtimer_del(&p->tick);
	arm_tick(p);
}
