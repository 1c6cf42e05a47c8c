/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The subscription manager: the registry of mailboxes, their assignment
 * to streaming groups, push or polling within the budgets, reload by
 * mark and sweep, orderly release at shutdown, and the status views.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include <ewsgw/sink.h>

#include "base/backoff.h"
#include "base/buf.h"
#include "base/conf.h"
#include "base/hashmap.h"
#include "base/json.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "graph/graph_error.h"
#include "io/discover.h"
#include "io/ews.h"
#include "io/graph_client.h"
#include "io/throttle.h"
#include "presence/boundary.h"
#include "presence/presence.h"
#include "sinks/sinkset.h"
#include "subs/env.h"
#include "subs/group.h"
#include "subs/mailbox.h"
#include "subs/manager.h"
#include "subs/oofcycle.h"
#include "subs/poller.h"
#include "subs/pushrecv.h"
#include "subs/registry.h"

/* Mailboxes asked per Autodiscover refresh request (its limit). */
#define AD_REFRESH_BATCH	100
/* Mailboxes stopped per loop pass at shutdown: timers run in between. */
#define STOP_BATCH	1024
/* Cluster mode: how often to look whether use is within a new share. */
#define SHARE_CHECK_MS	250
/*
 * A mailbox handed to another node is released once its sinks have
 * delivered what this node published for it, so that the new owner's
 * changes never reach a sink before the old owner's; a sink that cannot
 * deliver holds the hand-over at most RETIRE_DRAIN_MS, and what it has
 * not started sending by then is dropped (the new owner reads the
 * calendar and publishes the current state), never sent late.
 */
#define RETIRE_DRAIN_MS	10000
#define RETIRE_POLL_MS	50

struct manager {
	struct subs_env		 env;		/* lent to the modules */
	struct mailbox_ctx	 mbctx;		/* lent to every mailbox */
	struct backoff_rng	 rng;
	struct presence_rules	 rules;
	struct sinkset		*sinks;		/* borrowed */
	struct registry		*reg;		/* the configured mailboxes */

	struct group		**groups;
	size_t			 ngroups;
	unsigned		 next_group_id;

	struct mailbox		**retiring;	/* removed, still stopping */
	size_t			 nretiring;
	/* Until then a retired mailbox is kept (and its release to another
	 * node held back) while the sinks still hold changes of it. */
	int64_t			 retire_drain_until;
	size_t			 running;	/* mailboxes not STOPPED */

	struct boundary		*presence_timers; /* wall clock */
	struct boundary		*action_timers;	/* monotonic */
	struct poller		*poller;
	struct oofcycle		*oof;		/* automatic replies */
	struct pushrecv		*push;
	struct discover		*discover;	/* Autodiscover before the
						   first subscriptions */
	struct hashmap		*group_keys;	/* address -> grouping
						   (owned strings) */
	bool			 discover_again; /* cluster: more taken
						   over meanwhile */
	/* Autodiscover again: a batch at a time, spread over the
	 * interval, from registry index refresh_next on. */
	struct discover		*refresh;
	struct event		 refresh_ev;
	size_t			 refresh_next;
	size_t			 sweep;		/* to ask without waiting */
	/* Being moved: out of every group until Autodiscover, asked once
	 * it subscribed again, names its server (address -> itself). */
	struct hashmap		*moving;
	/* Found in Exchange Online by Autodiscover: on Graph ([graph]
	 * auto) or watched by nothing (address -> the manager). */
	struct hashmap		*online;
	char			**urgent;	/* to ask first (owned) */
	size_t			 nurgent;
	uint64_t		 regrouped;	/* moved to another grouping */

	/* The server accepts a subscription only on its owner's stream:
	 * one mailbox per group from then on. */
	bool			 ungrouped;
	bool			 ungroup_pending;	/* split the groups */

	struct event		 rebalance_ev;	/* deferred reap + assign */
	bool			 started;
	bool			 stopping;
	manager_done_cb		 stop_cb;
	void			*stop_arg;
	struct event		 stop_timer;	/* give up waiting */
	struct event		 stop_step;	/* the next STOP_BATCH */
	size_t			 stop_next;	/* registry index */

	uint64_t		 published;	/* presence changes */

	/* Cluster mode (clustered): see manager_set_owned() and co. */
	bool			 clustered;
	struct manager_cluster_hooks ch;
	bool			 release_wanted;	/* report released() */
	bool			 share_pending;		/* report applied() */
	struct ews_share	 share;
	bool			 fenced;	/* publish nothing */
	bool			 share_since_fence;
	struct event		 share_timer;	/* look at use again */
	struct event		 fence_timer;	/* budget_until */
	uint64_t		 dropped;	/* changes not published */
	uint64_t		 counts[MAILBOX_COUNT_MAX];
};

static void	 assign(struct manager *);
static int	 discover_idle(struct manager *);
static void	 check_share(struct manager *);
static struct mailbox *add_mailbox(struct manager *,
		    const struct conf_mailbox *);
static void	 retire_mailbox(struct manager *, struct mailbox *);
static void	 rebalance_soon(struct manager *);
static void	 stop_done(struct manager *);
static void	 mailbox_json_in(struct mailbox *, struct json_writer *, bool);
static void	 stop_timeout_cb(evutil_socket_t, short, void *);
static void	 stop_step_cb(evutil_socket_t, short, void *);
static void	 fence_timer_cb(evutil_socket_t, short, void *);
static void	 on_group_refused(struct group *, void *);
static void	 refresh_schedule(struct manager *);
static bool	 discovering(const struct manager *);
static void	 refresh_cb(evutil_socket_t, short, void *);
static void	 ask_soon(struct manager *, const char *);

/* ---- what the mailboxes report ---- */

static void
on_state(struct mailbox *mb, enum mailbox_state old, void *arg)
{
	struct manager	*m = arg;

	if (mailbox_group(mb) != NULL)
		group_member_changed(mailbox_group(mb));
	/*
	 * No mailbox for the address any more: what a hybrid server says
	 * of one moved to Exchange Online.  Autodiscover tells at once
	 * rather than at the next periodic round (to_online()).
	 */
	if (mailbox_state(mb) == MAILBOX_PARKED && old != MAILBOX_PARKED &&
	    discovering(m) && mailbox_backend(mb) == MAILBOX_BACKEND_EWS &&
	    strcmp(mailbox_error(mb), "ErrorNonExistentMailbox") == 0)
		ask_soon(m, mailbox_address(mb));
	/*
	 * Graph has no mailbox for one Autodiscover had found in Exchange
	 * Online: moved back on premises (or unlicensed).  Autodiscover
	 * tells where it is now (to_onprem()).
	 */
	if (mailbox_state(mb) == MAILBOX_PARKED && old != MAILBOX_PARKED &&
	    discovering(m) && mailbox_backend(mb) == MAILBOX_BACKEND_GRAPH &&
	    hashmap_get(m->online, mailbox_address(mb)) != NULL &&
	    graph_no_mailbox(mailbox_error(mb)))
		ask_soon(m, mailbox_address(mb));
	if (mailbox_state(mb) != MAILBOX_STOPPED)
		return;
	m->running--;
	if (m->stopping) {
		if (m->running == 0 && m->stop_cb != NULL) {
			log_info("all subscriptions released");
			stop_done(m);
		}
	} else if (registry_find(m->reg, mailbox_address(mb)) != mb)
		rebalance_soon(m);	/* reaps it */
}

static void
on_subscription(struct mailbox *mb, const char *old, void *arg)
{
	struct manager	*m = arg;

	if (old != NULL)
		registry_unbind(m->reg, old, mb);
	if (mailbox_sub_id(mb) != NULL)
		registry_bind(m->reg, mailbox_sub_id(mb), mb);
	/* Moved and subscribed again: where is it now? */
	if (mailbox_sub_id(mb) != NULL &&
	    hashmap_get(m->moving, mailbox_address(mb)) != NULL)
		ask_soon(m, mailbox_address(mb));
}

/*
 * Being moved, or its subscription lost as in a move: off its group
 * (its subscription went with the move), so that its next Subscribe
 * routes by its own address, to its new server; placed again once
 * Autodiscover names that server.
 */
static void
on_moving(struct mailbox *mb, const char *code, void *arg)
{
	struct manager	*m = arg;

	if (!discovering(m) || mailbox_backend(mb) != MAILBOX_BACKEND_EWS ||
	    hashmap_get(m->moving, mailbox_address(mb)) != NULL)
		return;
	hashmap_put(m->moving, mailbox_address(mb), mb);
	/* Off its group in assign(), not from within its stream's
	 * callbacks that may have called. */
	rebalance_soon(m);
	log_emit(LOG_NOTICE, &(struct log_ctx){ .mailbox =
	    mailbox_address(mb), .response_code = code },
	    "moved or being moved (%s): regrouped once Autodiscover names "
	    "its server", code);
}

/* Exchange will not subscribe it: poll it, and free its group slot. */
static void
on_refused(struct mailbox *mb, void *arg)
{
	struct manager	*m = arg;

	if (mailbox_group(mb) != NULL)
		group_remove(mailbox_group(mb), mb);
	mailbox_set_mode(mb, MAILBOX_MODE_POLL, MAILBOX_WHY_REFUSED);
	rebalance_soon(m);
}

static void
on_poll(struct mailbox *mb, void *arg)
{
	struct manager	*m = arg;

	poller_poll_now(m->poller, mb);
}

/* The group mb streams in, none while it is being moved. */
static struct group *
group_of(struct manager *m, const struct mailbox *mb)
{
	if (hashmap_get(m->moving, mailbox_address(mb)) != NULL)
		return (NULL);
	return (mailbox_group(mb));
}

/* Subscriptions are made where the group's stream will look for them. */
static void
on_affinity(const struct mailbox *mb, const char **anchor,
    const char **cookie, void *arg)
{
	struct group	*g = group_of(arg, mb);

	*anchor = g != NULL ? group_anchor(g) : mailbox_address(mb);
	*cookie = g != NULL ? group_cookie(g) : NULL;
}

static void
on_cookie(struct mailbox *mb, const char *cookie, void *arg)
{
	struct group	*g = group_of(arg, mb);

	if (g != NULL)
		group_set_cookie(g, cookie);
}

static void
on_publish(struct mailbox *mb, const struct ewsgw_presence_change *ch,
    void *arg)
{
	struct manager			*m = arg;
	struct ewsgw_presence_change	 c = *ch;

	if (m->fenced) {
		m->dropped++;	/* the lease is gone: another node owns it */
		return;
	}
	/* Unique across restarts and reloads (sink.h), not a count. */
	c.seq = sinkset_next_seq(m->sinks);
	m->published++;
	sinkset_publish(m->sinks, &c);
}

static void
on_count(struct mailbox *mb, enum mailbox_count what, void *arg)
{
	struct manager	*m = arg;

	m->counts[what]++;
}

static const struct mailbox_hooks hooks = {
	.state = on_state,
	.subscription = on_subscription,
	.refused = on_refused,
	.poll = on_poll,
	.affinity = on_affinity,
	.cookie = on_cookie,
	.publish = on_publish,
	.count = on_count,
	.moving = on_moving,
};

/* ---- groups and modes ---- */

static struct group *
new_group(struct manager *m)
{
	struct group	*g;

	g = group_new(&m->env, m->reg, ++m->next_group_id);
	group_on_refused(g, on_group_refused, m);
	group_set_owner_only(g, m->ungrouped);
	m->groups = xreallocarray(m->groups, m->ngroups + 1,
	    sizeof *m->groups);
	m->groups[m->ngroups++] = g;
	return (g);
}

static void
drop_empty_groups(struct manager *m)
{
	size_t	 i, j;

	for (i = j = 0; i < m->ngroups; i++) {
		if (group_size(m->groups[i]) == 0)
			group_free(m->groups[i]);
		else
			m->groups[j++] = m->groups[i];
	}
	m->ngroups = j;
}

/* How many streaming connections and subscriptions the budgets allow. */
static void
capacity(struct manager *m, size_t *groups, size_t *subs)
{
	const struct config	*conf = m->env.conf;
	unsigned		 streams;

	streams = throttle_streams_total(ews_ctx_throttle(m->env.ews));
	*groups = streams == THROTTLE_UNLIMITED ? SIZE_MAX : streams;
	if (m->ungrouped && *groups > conf->throttling.ungrouped_streams)
		*groups = conf->throttling.ungrouped_streams;
	if (conf->throttling.charging == CONF_CHARGING_SERVICE_ACCOUNT)
		*subs = m->clustered ? m->share.subscriptions :
		    conf->throttling.max_subscriptions;
	else
		*subs = SIZE_MAX;	/* counted per target mailbox */
}

static bool
same_key(const char *a, const char *b)
{
	return (a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0);
}

/*
 * The grouping policy: the stream group a streaming mailbox joins, or
 * NULL when the connection budget has no room for another group.
 * Mailboxes of one Autodiscover grouping (server) fill groups in
 * address order, the last group of that grouping while it has room,
 * then a new one; without Autodiscover (or for a mailbox it could not
 * place) all share one grouping.  The group's anchor is its first
 * member.  A server that refuses grouping gets a group per mailbox.
 */
static struct group *
group_for(struct manager *m, struct mailbox *mb, size_t maxg)
{
	const char	*key;
	struct group	*g;
	size_t		 i;

	key = hashmap_get(m->group_keys, mailbox_address(mb));
	for (i = m->ngroups; i-- > 0;) {
		g = m->groups[i];
		if (!same_key(group_key(g), key))
			continue;
		if (!group_full(g) && !(m->ungrouped && group_size(g) > 0))
			return (g);
		break;
	}
	if (m->ngroups >= maxg)
		return (NULL);
	g = new_group(m);
	group_set_key(g, key);
	return (g);
}

/* Whether mb counts against the subscription budget (assign, trim). */
static bool
holds_subscription(struct mailbox *mb)
{
	if (mailbox_backend(mb) == MAILBOX_BACKEND_GRAPH)
		return (false);		/* not Exchange's budget */
	if (mailbox_mode(mb) == MAILBOX_MODE_POLL &&
	    mailbox_reason(mb) != MAILBOX_WHY_REFUSED)
		return (false);
	return (mailbox_state(mb) != MAILBOX_IDLE || mailbox_group(mb) != NULL);
}

/* Whether g is beyond the first maxg groups. */
static bool
group_beyond(struct manager *m, struct group *g, size_t maxg)
{
	size_t	 i;

	for (i = 0; i < m->ngroups && i < maxg; i++)
		if (m->groups[i] == g)
			return (false);
	return (true);
}

/* Subscriptions still held by retired mailboxes (Unsubscribe pending). */
static size_t
retiring_subscriptions(struct manager *m)
{
	size_t	 i, n = 0;

	for (i = 0; i < m->nretiring; i++)
		if (mailbox_sub_id(m->retiring[i]) != NULL)
			n++;
	return (n);
}

/*
 * Poll mb from now on, releasing its subscription with an Unsubscribe
 * (a mode change alone would leave it on the server, counted against
 * the account until it expires): the mailbox retires and a fresh one
 * for the same address takes its place in poll mode.
 */
static void
demote(struct manager *m, struct mailbox *mb, const struct hashmap *byaddr,
    enum mailbox_reason why)
{
	const struct conf_mailbox	*cm;
	struct mailbox			*nmb;

	cm = hashmap_get(byaddr, mailbox_address(mb));
	retire_mailbox(m, mb);
	if (cm == NULL)
		return;
	nmb = add_mailbox(m, cm);
	mailbox_set_mode(nmb, MAILBOX_MODE_POLL, why);
}

/* Conf mailboxes by address, for demote(); free with hashmap_free. */
static struct hashmap *
conf_by_address(const struct config *conf)
{
	struct hashmap	*byaddr;
	size_t		 i;

	byaddr = hashmap_new();
	for (i = 0; i < conf->nmailboxes; i++)
		hashmap_put(byaddr, conf->mailboxes[i].address,
		    &conf->mailboxes[i]);
	return (byaddr);
}

/* Start the mailboxes added since (demote's replacements). */
static void
start_idle(struct manager *m)
{
	size_t	 i;

	for (i = 0; i < registry_count(m->reg); i++)
		if (mailbox_state(registry_at(m->reg, i)) == MAILBOX_IDLE)
			mailbox_start(registry_at(m->reg, i));
}

/* A group's stream was refused for carrying several mailboxes. */
static void
on_group_refused(struct group *g, void *arg)
{
	struct manager	*m = arg;

	if (!m->ungrouped)
		log_warnx("the EWS server refuses several mailboxes' "
		    "subscriptions on one stream (ErrorInvalidSubscription "
		    "on connection %u): one stream per mailbox from now on, "
		    "at most %u (ungrouped_streams), the other mailboxes "
		    "polled", group_id(g),
		    m->env.conf->throttling.ungrouped_streams);
	m->ungrouped = true;
	m->ungroup_pending = true;
	rebalance_soon(m);
}

/*
 * Split every group for a server that refuses grouping: each keeps its
 * anchor, the other members get a stream of their own while the
 * connection budget allows, the rest are polled (their subscriptions
 * released).  The subscriptions kept are valid: each is streamed by
 * its owner now.
 */
static void
ungroup(struct manager *m)
{
	struct mailbox	**out = NULL, *mb;
	size_t		  nout = 0, i, maxg, maxs, polled = 0, solo;
	struct hashmap	 *byaddr;
	struct group	 *g;

	m->ungroup_pending = false;
	capacity(m, &maxg, &maxs);
	drop_empty_groups(m);
	byaddr = conf_by_address(m->env.conf);
	for (i = 0; i < m->ngroups; i++) {
		g = m->groups[i];
		group_set_owner_only(g, true);
		while (group_size(g) > (i < maxg ? 1 : 0)) {
			mb = group_member(g, group_size(g) - 1);
			group_remove(g, mb);
			out = xreallocarray(out, nout + 1, sizeof *out);
			out[nout++] = mb;
		}
		group_reopen(g);
	}
	drop_empty_groups(m);
	solo = nout;
	for (i = 0; i < nout; i++) {
		if (m->ngroups < maxg) {
			g = new_group(m);
			group_add(g, out[i]);
			group_member_changed(g);
			continue;
		}
		demote(m, out[i], byaddr, MAILBOX_WHY_CONNECTIONS);
		polled++;
		solo--;
	}
	hashmap_free(byaddr, NULL);
	free(out);
	registry_commit(m->reg);
	start_idle(m);
	if (nout > 0)
		log_notice("ungrouped: %zu mailboxes moved to streams of their "
		    "own, %zu polled (connection budget)", solo, polled);
}

/*
 * A smaller budget (cluster mode): poll the mailboxes of the groups
 * beyond the connection budget and, from the end of the address order,
 * those beyond the subscription budget, so that use comes down to it.
 */
static void
trim(struct manager *m)
{
	const struct config	*conf = m->env.conf;
	size_t			 maxg, maxs, used, i, n;
	struct mailbox		*mb, **out = NULL;
	enum mailbox_reason	*why = NULL;
	size_t			 nout = 0;
	struct hashmap		*byaddr;
	struct group		*g;

	capacity(m, &maxg, &maxs);
	drop_empty_groups(m);
	n = registry_count(m->reg);
	used = retiring_subscriptions(m);
	for (i = 0; i < n; i++)
		if (holds_subscription(registry_at(m->reg, i)))
			used++;
	if (m->ngroups <= maxg && used <= maxs)
		return;
	out = xreallocarray(NULL, n, sizeof *out);
	why = xreallocarray(NULL, n, sizeof *why);
	for (i = 0; i < n; i++) {
		mb = registry_at(m->reg, i);
		if ((g = mailbox_group(mb)) == NULL || m->ngroups <= maxg ||
		    !group_beyond(m, g, maxg))
			continue;
		why[nout] = MAILBOX_WHY_CONNECTIONS;
		out[nout++] = mb;
		used--;
	}
	for (i = n; i-- > 0 && used > maxs;) {
		mb = registry_at(m->reg, i);
		if (!holds_subscription(mb) ||
		    mailbox_mode(mb) == MAILBOX_MODE_POLL ||
		    (mailbox_group(mb) != NULL && m->ngroups > maxg &&
		    group_beyond(m, mailbox_group(mb), maxg)))
			continue;
		why[nout] = MAILBOX_WHY_SUBSCRIPTIONS;
		out[nout++] = mb;
		used--;
	}
	byaddr = conf_by_address(conf);
	for (i = 0; i < nout; i++)
		demote(m, out[i], byaddr, why[i]);
	hashmap_free(byaddr, NULL);
	free(out);
	free(why);
	registry_commit(m->reg);
	drop_empty_groups(m);
	start_idle(m);
	log_notice("cluster: %zu mailboxes polled to fit this node's share",
	    nout);
}

/*
 * Put every mailbox in a mode.  Streaming mailboxes fill groups in
 * address order; those that do not fit the budgets are polled and
 * promoted when room appears.  Mailboxes already placed stay where they
 * are, so a reload only touches the groups that must change.
 */
static void
assign(struct manager *m)
{
	const struct config	*conf = m->env.conf;
	size_t			 maxg, maxs, used = 0, i, n;
	struct mailbox		*mb;
	struct group		*g;
	enum mailbox_state	 s;

	if (m->discover != NULL)
		return;		/* the groupings are not known yet */
	capacity(m, &maxg, &maxs);
	drop_empty_groups(m);
	n = registry_count(m->reg);
	/* Subscriptions already held count first. */
	for (i = 0; i < n; i++)
		if (holds_subscription(registry_at(m->reg, i)))
			used++;
	used += retiring_subscriptions(m);
	for (i = 0; i < n; i++) {
		mb = registry_at(m->reg, i);
		s = mailbox_state(mb);
		if (mailbox_backend(mb) == MAILBOX_BACKEND_GRAPH)
			continue;	/* no group, no EWS budget */
		if (conf->exchange.mode == CONF_MODE_POLL) {
			if (mailbox_group(mb) != NULL)
				group_remove(mailbox_group(mb), mb);
			mailbox_set_mode(mb, MAILBOX_MODE_POLL,
			    MAILBOX_WHY_CONFIG);
			continue;
		}
		if (mailbox_reason(mb) == MAILBOX_WHY_REFUSED)
			continue;	/* polled */
		if (hashmap_get(m->moving, mailbox_address(mb)) != NULL) {
			/* Placed once located (on_moving). */
			if (mailbox_group(mb) != NULL)
				group_remove(mailbox_group(mb), mb);
			continue;
		}
		if (mailbox_group(mb) != NULL ||
		    (mailbox_mode(mb) == MAILBOX_MODE_PUSH &&
		    s != MAILBOX_IDLE))
			continue;	/* already placed */
		if (used >= maxs) {
			mailbox_set_mode(mb, MAILBOX_MODE_POLL,
			    MAILBOX_WHY_SUBSCRIPTIONS);
			continue;
		}
		if (conf->exchange.mode == CONF_MODE_PUSH) {
			used++;
			mailbox_set_mode(mb, MAILBOX_MODE_PUSH,
			    MAILBOX_WHY_CONFIG);
			continue;
		}
		if ((g = group_for(m, mb, maxg)) == NULL) {
			mailbox_set_mode(mb, MAILBOX_MODE_POLL,
			    MAILBOX_WHY_CONNECTIONS);
			continue;
		}
		group_add(g, mb);
		used++;
		mailbox_set_mode(mb, MAILBOX_MODE_STREAMING,
		    MAILBOX_WHY_CONFIG);
		if (s != MAILBOX_IDLE)
			group_member_changed(g);	/* may stream now */
	}
}

/* ---- adding and removing mailboxes ---- */

/*
 * The backend that watches a configured mailbox: its section's, unless
 * Autodiscover found an [exchange] one in Exchange Online: then Graph
 * with [graph] auto, else none.
 */
static enum mailbox_backend
backend_for(const struct manager *m, const struct conf_mailbox *cm)
{
	if (cm->backend == CONF_BACKEND_GRAPH)
		return (MAILBOX_BACKEND_GRAPH);
	if (hashmap_get(m->online, cm->address) == NULL)
		return (MAILBOX_BACKEND_EWS);
	return (m->env.graph != NULL && m->env.conf->graph.auto_online ?
	    MAILBOX_BACKEND_GRAPH : MAILBOX_BACKEND_NONE);
}

/* A new mailbox in the registry, IDLE until started. */
static struct mailbox *
add_mailbox(struct manager *m, const struct conf_mailbox *cm)
{
	struct mailbox	*mb;

	mb = mailbox_new(&m->mbctx, cm->address, cm->idtype, cm->id,
	    backend_for(m, cm));
	registry_add(m->reg, mb);
	m->running++;
	return (mb);
}

/*
 * Take a mailbox out of service: out of the registry, its group and the
 * poller at once; it releases its subscription and is freed once
 * STOPPED (reap).
 */
static void
retire_mailbox(struct manager *m, struct mailbox *mb)
{
	registry_remove(m->reg, mb);
	free(hashmap_remove(m->group_keys, mailbox_address(mb)));
	hashmap_remove(m->moving, mailbox_address(mb));
	if (mailbox_group(mb) != NULL)
		group_remove(mailbox_group(mb), mb);
	poller_forget(m->poller, mb);
	m->retiring = xreallocarray(m->retiring, m->nretiring + 1,
	    sizeof *m->retiring);
	m->retiring[m->nretiring++] = mb;
	m->retire_drain_until = time_mono_ms() + RETIRE_DRAIN_MS;
	mailbox_stop(mb);
}

/*
 * Whether the sinks still hold a stopped, retired mailbox's changes.
 * Past the drain time only a change in flight holds it (bounded by the
 * sink's own timeout: delivered, it still arrives before the new
 * owner's); what waits behind it is dropped, counted in *dropped.  A
 * mailbox owned here again (taken back) is never held: the sinks'
 * changes of its address are the new object's, to keep.
 */
static bool
retired_held(struct manager *m, struct mailbox *mb, bool drain,
    size_t *dropped)
{
	const char	*address = mailbox_address(mb);

	if (m->sinks == NULL || registry_find(m->reg, address) != NULL ||
	    !sinkset_holds(m->sinks, address))
		return (false);
	if (drain)
		return (true);
	if (sinkset_drop(m->sinks, address) > 0)
		(*dropped)++;
	return (sinkset_holds(m->sinks, address));
}

/* Free retired mailboxes that have stopped and whose changes the sinks
 * delivered (or RETIRE_DRAIN_MS passed). */
static void
reap(struct manager *m)
{
	size_t		 i, j;
	struct mailbox	*mb;
	struct timeval	 tv;
	size_t		 dropped = 0;
	bool		 drain, held = false;

	drain = time_mono_ms() < m->retire_drain_until;
	for (i = j = 0; i < m->nretiring; i++) {
		mb = m->retiring[i];
		if (mailbox_state(mb) != MAILBOX_STOPPED)
			m->retiring[j++] = mb;
		else if (retired_held(m, mb, drain, &dropped)) {
			held = true;
			m->retiring[j++] = mb;
		} else
			mailbox_free(mb);
	}
	m->nretiring = j;
	if (dropped > 0)
		log_warnx("cluster: sinks did not deliver %zu handed-over "
		    "mailboxes' changes within %d s: their waiting changes "
		    "are dropped, the new owner publishes the current state",
		    dropped, RETIRE_DRAIN_MS / 1000);
	/* Nothing tells us when a sink delivered: look again shortly. */
	if (held)
		event_add(&m->rebalance_ev, time_ms_tv(&tv, RETIRE_POLL_MS));
}

static void
rebalance_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct manager	*m = arg;

	if (m->stopping)
		return;
	reap(m);
	if (m->release_wanted && m->nretiring == 0) {
		m->release_wanted = false;
		if (m->ch.released != NULL)
			m->ch.released(m->ch.arg);
	}
	if (m->clustered)
		trim(m);
	if (m->ungroup_pending)
		ungroup(m);
	assign(m);
	check_share(m);
}

/* Cluster mode: report applied() once use is within the share. */
static void
check_share(struct manager *m)
{
	struct throttle_stats	 ts;
	struct timeval		 tv;

	if (!m->share_pending || m->stopping)
		return;
	throttle_stats(ews_ctx_throttle(m->env.ews), time_mono_ms(), &ts);
	if (ts.concurrency_in_use > m->share.concurrency ||
	    (m->env.conf->throttling.charging ==
	    CONF_CHARGING_SERVICE_ACCOUNT &&
	    ts.subscriptions > m->share.subscriptions)) {
		evtimer_add(&m->share_timer, time_ms_tv(&tv, SHARE_CHECK_MS));
		return;
	}
	m->share_pending = false;
	evtimer_del(&m->share_timer);
	if (m->ch.applied != NULL)
		m->ch.applied(m->ch.arg);
}

static void
share_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct manager	*m = arg;

	/* Requests end on their own; trim again for what did not. */
	rebalance_soon(m);
}

static void
rebalance_soon(struct manager *m)
{
	event_active(&m->rebalance_ev, EV_TIMEOUT, 0);
}

/* ---- life cycle ---- */

/*
 * The Graph client for the configuration's [graph] app registration, on
 * the scheduler of the EWS call path.
 */
static struct graph_client *
graph_new(struct event_base *base, const struct config *conf,
    struct ews_ctx *ews, char **cause)
{
	struct graph_client_opts	 o;

	graph_client_opts_from_config(&o, conf);
	o.drive = ews_ctx_drive(ews);
	return (graph_client_new(base, &o, cause));
}

static void
set_conf(struct manager *m, const struct config *conf)
{
	m->env.conf = conf;
	presence_rules_from_conf(&m->rules, conf);
}

struct manager *
manager_new(struct event_base *base, const struct config *conf,
    struct sinkset *sinks, const struct manager_cluster_hooks *ch,
    char **cause)
{
	struct manager	*m;
	size_t		 i;

	m = xcalloc(1, sizeof *m);
	m->env.base = base;
	m->env.rng = &m->rng;
	m->sinks = sinks;
	set_conf(m, conf);
	if ((m->env.ews = ews_ctx_new(base, conf, cause)) == NULL) {
		free(m);
		return (NULL);
	}
	if ((conf->graph.nmailboxes > 0 || conf->graph.auto_online) &&
	    (m->env.graph = graph_new(base, conf, m->env.ews,
	    cause)) == NULL) {
		ews_ctx_free(m->env.ews);
		free(m);
		return (NULL);
	}
	backoff_rng_seed(&m->rng, (uint64_t)time_wall_ms() ^
	    (uint64_t)(uintptr_t)m);
	m->reg = registry_new();
	m->group_keys = hashmap_new();
	m->moving = hashmap_new();
	m->online = hashmap_new();
	m->presence_timers = boundary_new(base, BOUNDARY_WALL,
	    mailbox_presence_timer, NULL);
	m->action_timers = boundary_new(base, BOUNDARY_MONO,
	    mailbox_action_timer, NULL);
	m->mbctx.env = &m->env;
	m->mbctx.presence_timers = m->presence_timers;
	m->mbctx.action_timers = m->action_timers;
	m->mbctx.rules = &m->rules;
	m->mbctx.hooks = &hooks;
	m->mbctx.arg = m;
	event_assign(&m->rebalance_ev, base, -1, 0, rebalance_cb, m);
	evtimer_assign(&m->stop_timer, base, stop_timeout_cb, m);
	evtimer_assign(&m->stop_step, base, stop_step_cb, m);
	evtimer_assign(&m->share_timer, base, share_timer_cb, m);
	evtimer_assign(&m->fence_timer, base, fence_timer_cb, m);
	evtimer_assign(&m->refresh_ev, base, refresh_cb, m);
	if (ch != NULL) {
		/* Nothing runs and nothing is spent until told. */
		m->clustered = true;
		m->ch = *ch;
		ews_ctx_set_share(m->env.ews, &m->share);
	}
	for (i = 0; i < conf->nmailboxes && !m->clustered; i++)
		add_mailbox(m, &conf->mailboxes[i]);
	registry_commit(m->reg);
	m->poller = poller_new(&m->env, m->reg);
	m->oof = oofcycle_new(&m->env, m->reg);
	if ((conf->exchange.mode == CONF_MODE_PUSH || (m->env.graph != NULL &&
	    conf->graph.notifications && conf->graph.notification_url !=
	    NULL)) && (m->push = pushrecv_new(&m->env, m->reg, cause)) ==
	    NULL) {
		manager_free(m);
		return (NULL);
	}
	if (m->push != NULL) {
		m->mbctx.push_url = pushrecv_url(m->push);
		m->mbctx.graph_url = pushrecv_graph_url(m->push);
		m->mbctx.graph_lc_url = pushrecv_graph_lc_url(m->push);
		m->mbctx.client_state = pushrecv_client_state(m->push);
	}
	return (m);
}

/* Place the mailboxes and start those not started yet. */
static void
start_mailboxes(struct manager *m)
{
	assign(m);
	start_idle(m);
}

/*
 * Autodiscover says row's mailbox is in Exchange Online (a hybrid
 * server redirected it to its remote routing address, or to Exchange
 * Online's service): logged once, taken off EWS (its subscription
 * released) and put on Graph with [graph] auto, else left unwatched
 * (status exchange_online) rather than refused by EWS over and over.
 * Started at once when start, else with the others.  Returns whether
 * it moved now.
 */
static bool
to_online(struct manager *m, const struct discover_result *row,
    struct hashmap **byaddr, bool start)
{
	const struct conf_mailbox	*cm;
	struct mailbox			*mb, *nmb;
	bool				 graph;

	mb = registry_find(m->reg, row->address);
	if (mb == NULL || mailbox_backend(mb) != MAILBOX_BACKEND_EWS ||
	    hashmap_get(m->online, row->address) != NULL)
		return (false);
	if (*byaddr == NULL)
		*byaddr = conf_by_address(m->env.conf);
	if ((cm = hashmap_get(*byaddr, row->address)) == NULL)
		return (false);
	hashmap_put(m->online, row->address, m);
	graph = m->env.graph != NULL && m->env.conf->graph.auto_online;
	log_emit(graph ? LOG_NOTICE : LOG_WARNING, &(struct log_ctx){
	    .mailbox = row->address, .operation = "GetUserSettings",
	    .response_code = row->code },
	    "Autodiscover: in Exchange Online (%s %s): %s", row->as != NULL ?
	    "redirected to" : "served by", row->as != NULL ? row->as :
	    row->via != NULL ? row->via : "?", graph ? "watched through "
	    "Graph from now on" : "not watched; set auto = yes in [graph] "
	    "to watch it through Graph");
	retire_mailbox(m, mb);
	registry_commit(m->reg);
	nmb = add_mailbox(m, cm);
	registry_commit(m->reg);
	if (graph)
		mailbox_carry_presence(nmb, mb);
	if (start)
		mailbox_start(nmb);
	return (true);
}

/*
 * Autodiscover names an on-premises server for a mailbox it had found in
 * Exchange Online (moved back, or the move undone): logged once, taken
 * off Graph (its subscription deleted) or out of state exchange_online,
 * and watched on EWS again from the presence it had, so that the same
 * calendar publishes no change.  Placed and started with the others
 * (start_mailboxes).  Returns whether it moved.
 */
static bool
to_onprem(struct manager *m, const struct discover_result *row,
    struct hashmap **byaddr)
{
	const struct conf_mailbox	*cm;
	struct mailbox			*mb, *nmb;

	mb = registry_find(m->reg, row->address);
	if (mb == NULL || mailbox_backend(mb) == MAILBOX_BACKEND_EWS ||
	    hashmap_get(m->online, row->address) == NULL)
		return (false);
	if (*byaddr == NULL)
		*byaddr = conf_by_address(m->env.conf);
	if ((cm = hashmap_get(*byaddr, row->address)) == NULL)
		return (false);
	hashmap_remove(m->online, row->address);
	log_emit(LOG_NOTICE, &(struct log_ctx){ .mailbox = row->address,
	    .operation = "GetUserSettings",
	    .response_code = mailbox_error(mb) },
	    "Autodiscover: on premises again (served by %s): watched through "
	    "EWS from now on", row->via != NULL ? row->via : "?");
	retire_mailbox(m, mb);
	registry_commit(m->reg);
	nmb = add_mailbox(m, cm);
	registry_commit(m->reg);
	mailbox_carry_presence(nmb, mb);
	return (true);
}

/*
 * Autodiscover answered for every mailbox: its grouping key, or none
 * (logged) for those it could not place, or Exchange Online (to_online);
 * then the subscriptions.
 */
static void
discovered(struct discover *d, const struct discover_result *rows,
    size_t n, void *arg)
{
	struct manager	*m = arg;
	struct hashmap	*byaddr = NULL;
	size_t		 i, placed = 0, online = 0;
	char		*key;

	for (i = 0; i < n; i++) {
		/*
		 * Handed over meanwhile (cluster mode): its key would stop
		 * it being asked again when it comes back.
		 */
		if (registry_find(m->reg, rows[i].address) == NULL)
			continue;
		if (rows[i].status == DISCOVER_EXCHANGE_ONLINE) {
			online += to_online(m, &rows[i], &byaddr, false);
			continue;
		}
		key = rows[i].status == DISCOVER_OK ?
		    ad_group_key(&rows[i].user) : NULL;
		if (key == NULL) {
			log_emit(LOG_WARNING, &(struct log_ctx){
			    .mailbox = rows[i].address,
			    .operation = "GetUserSettings",
			    .response_code = rows[i].code },
			    "Autodiscover: %s, grouped with the unplaced "
			    "mailboxes", discover_status_name(rows[i].status));
			continue;
		}
		free(hashmap_put(m->group_keys, rows[i].address, key));
		if (m->ch.grouped != NULL)
			m->ch.grouped(rows[i].address, key, m->ch.arg);
		placed++;
	}
	hashmap_free(byaddr, NULL);
	log_notice("Autodiscover: %zu of %zu mailboxes placed, %zu in "
	    "Exchange Online, %llu requests", placed, n, online,
	    (unsigned long long)discover_stats(d)->requests);
	discover_free(d);
	m->discover = NULL;
	/* Taken over meanwhile (cluster mode): those first, then all. */
	if (m->discover_again && !m->stopping && discover_idle(m) == 0)
		return;
	start_mailboxes(m);
	refresh_schedule(m);
}

/* What the Autodiscover runs of this manager ask. */
static void
discover_opts_for(struct manager *m, struct discover_opts *o)
{
	const struct config	*conf = m->env.conf;

	memset(o, 0, sizeof *o);
	o->url = conf->exchange.autodiscover_url;
	o->version = conf->exchange.version;
	o->settings = AD_SETTING_BIT(AD_GROUPING_INFORMATION) |
	    AD_SETTING_BIT(AD_EXTERNAL_EWS_URL) |
	    AD_SETTING_BIT(AD_INTERNAL_EWS_URL) |
	    AD_SETTING_BIT(AD_INTERNAL_MAILBOX_SERVER);
}

/* Whether groups follow Autodiscover: on, and something streams. */
static bool
discovering(const struct manager *m)
{
	return (m->env.conf->exchange.autodiscover &&
	    m->env.conf->exchange.mode != CONF_MODE_POLL);
}

/*
 * Arm the next refresh batch: every mailbox is asked once per
 * autodiscover_interval, in batches of AD_REFRESH_BATCH spread evenly
 * over it, so that a large fleet never asks at once.
 */
static void
refresh_schedule(struct manager *m)
{
	const struct config	*conf = m->env.conf;
	struct timeval		 tv;
	size_t			 n = registry_count(m->reg), batches;
	int64_t			 ms;

	if (m->stopping || m->refresh != NULL || m->discover != NULL)
		return;		/* refreshed() or discovered() call again */
	if (m->nurgent > 0 || (m->sweep > 0 && n > 0)) {
		evtimer_add(&m->refresh_ev, time_ms_tv(&tv, 0));
		return;
	}
	if (!discovering(m) || conf->exchange.autodiscover_interval_ms == 0 ||
	    n == 0) {
		evtimer_del(&m->refresh_ev);
		return;
	}
	batches = (n + AD_REFRESH_BATCH - 1) / AD_REFRESH_BATCH;
	ms = conf->exchange.autodiscover_interval_ms / (int64_t)batches;
	evtimer_add(&m->refresh_ev, time_ms_tv(&tv, ms > 0 ? ms : 1));
}

/*
 * A mailbox's grouping changed (moved to another database or server):
 * off its old group's stream (reopened without it, every other group
 * left alone), into a group of the new grouping, subscribed again
 * there, the subscription it held released where it was made.
 */
static void
regroup(struct manager *m, struct mailbox *mb, const char *key)
{
	struct group	*old = mailbox_group(mb), *g;
	size_t		 maxg, maxs;
	struct hashmap	*byaddr;
	char		*anchor, *cookie;

	free(hashmap_put(m->group_keys, mailbox_address(mb), xstrdup(key)));
	if (m->ch.grouped != NULL)
		m->ch.grouped(mailbox_address(mb), key, m->ch.arg);
	if (hashmap_get(m->moving, mailbox_address(mb)) != NULL) {
		/* Out of its group for the move: assign places it. */
		if (old != NULL)
			group_remove(old, mb);
		m->regrouped++;
		log_emit(LOG_NOTICE, &(struct log_ctx){ .mailbox =
		    mailbox_address(mb), .operation = "GetUserSettings" },
		    "Autodiscover: moved to another server");
		return;
	}
	if (old == NULL || same_key(group_key(old), key))
		return;		/* not streaming: placed when it is */
	m->regrouped++;
	anchor = xstrdup(group_anchor(old));
	cookie = group_cookie(old) != NULL ? xstrdup(group_cookie(old)) :
	    NULL;
	group_remove(old, mb);
	group_reopen(old);
	log_emit(LOG_NOTICE, &(struct log_ctx){ .mailbox =
	    mailbox_address(mb), .operation = "GetUserSettings" },
	    "Autodiscover: moved to another server; off connection %u",
	    group_id(old));
	capacity(m, &maxg, &maxs);
	drop_empty_groups(m);
	if ((g = group_for(m, mb, maxg)) == NULL) {
		/* Polled, its subscription released (by its own address). */
		byaddr = conf_by_address(m->env.conf);
		demote(m, mb, byaddr, MAILBOX_WHY_CONNECTIONS);
		hashmap_free(byaddr, NULL);
		/* Its replacement keeps the grouping retiring dropped. */
		free(hashmap_put(m->group_keys, mailbox_address(mb),
		    xstrdup(key)));
		registry_commit(m->reg);
		start_idle(m);
	} else {
		group_add(g, mb);
		mailbox_resubscribe(mb, "its server changed", anchor, cookie);
		group_member_changed(g);
	}
	free(anchor);
	free(cookie);
}

static void
refreshed(struct discover *d, const struct discover_result *rows,
    size_t n, void *arg)
{
	struct manager	*m = arg;
	struct mailbox	*mb;
	struct hashmap	*byaddr = NULL;
	size_t		 i, back = 0;
	char		*key;

	for (i = 0; i < n; i++) {
		if (rows[i].status == DISCOVER_EXCHANGE_ONLINE)
			to_online(m, &rows[i], &byaddr, !m->stopping);
		if (rows[i].status == DISCOVER_OK)
			back += to_onprem(m, &rows[i], &byaddr);
		if (rows[i].status != DISCOVER_OK ||
		    (key = ad_group_key(&rows[i].user)) == NULL)
			continue;	/* keep what it has */
		mb = registry_find(m->reg, rows[i].address);
		if (mb != NULL && !same_key(hashmap_get(m->group_keys,
		    rows[i].address), key))
			regroup(m, mb, key);
		free(key);
	}
	/*
	 * The moved ones asked since they subscribed again: placed again
	 * (assign), known or not.  One asked before (a periodic batch)
	 * may have been answered for the server it is leaving.
	 */
	for (i = 0; i < n; i++) {
		mb = registry_find(m->reg, rows[i].address);
		if (mb == NULL || mailbox_sub_id(mb) != NULL)
			hashmap_remove(m->moving, rows[i].address);
	}
	hashmap_free(byaddr, NULL);
	discover_free(d);
	m->refresh = NULL;
	/* Back on premises: placed and started (else by discovered()). */
	if (back > 0 && !m->stopping && m->discover == NULL)
		start_mailboxes(m);
	rebalance_soon(m);
	refresh_schedule(m);
}

/*
 * Whether the periodic Autodiscover asks for mb: on EWS, or found in
 * Exchange Online (on Graph or watched by none), which may move back.
 * Mailboxes listed for Graph are not asked.
 */
static bool
asked_again(const struct manager *m, const struct mailbox *mb)
{
	return (mailbox_backend(mb) == MAILBOX_BACKEND_EWS ||
	    hashmap_get(m->online, mailbox_address(mb)) != NULL);
}

/* The next batch of the registry, from where the last one ended. */
static void
refresh_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct manager		*m = arg;
	struct discover_opts	 o;
	struct mailbox		*mb;
	const char		*addrs[AD_REFRESH_BATCH];
	char			*cause = NULL;
	size_t			 i, n = registry_count(m->reg), k = 0;

	if (m->stopping || m->discover != NULL || m->refresh != NULL ||
	    (n == 0 && m->nurgent == 0)) {
		refresh_schedule(m);
		return;
	}
	if (m->nurgent > 0) {
		/* Moved mailboxes first, on their own. */
		for (i = 0; i < AD_REFRESH_BATCH && i < m->nurgent; i++)
			addrs[k++] = m->urgent[i];
	} else {
		for (i = 0; i < n && k < AD_REFRESH_BATCH; i++) {
			if (m->refresh_next >= n)
				m->refresh_next = 0;
			mb = registry_at(m->reg, m->refresh_next++);
			if (m->sweep > 0)
				m->sweep--;
			if (asked_again(m, mb))
				addrs[k++] = mailbox_address(mb);
		}
		if (k == 0) {		/* Graph only: nothing to ask */
			refresh_schedule(m);
			return;
		}
	}
	discover_opts_for(m, &o);
	m->refresh = discover_start(m->env.base, m->env.ews, &o, addrs, k,
	    refreshed, m, &cause);
	if (m->nurgent > 0) {
		for (i = 0; i < k; i++) {
			if (m->refresh == NULL)	/* placed as they were */
				hashmap_remove(m->moving, m->urgent[i]);
			free(m->urgent[i]);
		}
		m->nurgent -= k;
		memmove(m->urgent, m->urgent + k, m->nurgent *
		    sizeof *m->urgent);
	}
	if (m->refresh == NULL) {
		log_warnx("Autodiscover: %s", cause);
		free(cause);
		rebalance_soon(m);
	}
	refresh_schedule(m);
}

/*
 * Autodiscover addrs before the mailboxes are placed (discovered()
 * starts them): 0, or -1 when the run cannot start (logged).
 */
static int
discover_first(struct manager *m, const char **addrs, size_t n)
{
	struct discover_opts	 o;
	char			*cause = NULL;

	discover_opts_for(m, &o);
	m->discover = discover_start(m->env.base, m->env.ews, &o, addrs, n,
	    discovered, m, &cause);
	if (m->discover != NULL)
		return (0);
	log_warnx("Autodiscover: %s; mailboxes grouped by address", cause);
	free(cause);
	return (-1);
}

void
manager_start(struct manager *m)
{
	const char	**addrs;
	size_t		  i, k, n = registry_count(m->reg);
	int		  r = -1;

	m->started = true;
	oofcycle_start(m->oof);
	if (discovering(m) && n > 0) {
		addrs = xreallocarray(NULL, n, sizeof *addrs);
		for (i = k = 0; i < n; i++)
			if (mailbox_backend(registry_at(m->reg, i)) ==
			    MAILBOX_BACKEND_EWS)
				addrs[k++] = mailbox_address(registry_at(m->reg,
				    i));
		if (k > 0)
			r = discover_first(m, addrs, k);
		free(addrs);
	}
	if (r == 0)
		return;		/* discovered() starts them */
	start_mailboxes(m);
	refresh_schedule(m);
}

static bool
same_backend(const struct manager *m, const struct mailbox *mb,
    const struct conf_mailbox *cm)
{
	return (mailbox_backend(mb) == backend_for(m, cm));
}

void
manager_reload(struct manager *m, const struct config *conf)
{
	const struct conf_mailbox *cm;
	struct hashmap		*keep;
	struct hashmap_iter	 it;
	struct mailbox		*mb;
	const char		**addrs, *addr;
	size_t			 i, added = 0, removed = 0, nask = 0;

	set_conf(m, conf);
	ews_ctx_reload(m->env.ews, conf);
	poller_reload(m->poller);
	oofcycle_reload(m->oof);

	/* Mark: what the new file names; sweep: what it no longer does. */
	keep = hashmap_new();
	addrs = xreallocarray(NULL, conf->nmailboxes + 1, sizeof *addrs);
	for (i = 0; i < conf->nmailboxes; i++)
		if (conf->mailboxes[i].backend == CONF_BACKEND_EWS ||
		    m->env.graph != NULL)
			hashmap_put(keep, conf->mailboxes[i].address,
			    &conf->mailboxes[i]);
	/* Found in Exchange Online and no longer configured: forgotten. */
	hashmap_iter_init(&it, m->online);
	while (hashmap_iter_next(&it, &addr, NULL))
		if ((cm = hashmap_get(keep, addr)) == NULL ||
		    cm->backend != CONF_BACKEND_EWS)
			hashmap_iter_remove(&it);
	/* Gone, or moved to the other backend: retired. */
	for (i = 0; i < registry_count(m->reg); i++) {
		mb = registry_at(m->reg, i);
		if ((cm = hashmap_get(keep, mailbox_address(mb))) != NULL &&
		    same_backend(m, mb, cm))
			continue;
		removed++;
		retire_mailbox(m, mb);
	}
	registry_commit(m->reg);
	for (i = 0; i < conf->nmailboxes && !m->clustered; i++) {
		cm = &conf->mailboxes[i];
		if (hashmap_get(keep, cm->address) == NULL)
			log_warnx("reload: %s is on Graph, which starts with "
			    "a restart", cm->address);
		else if (registry_find(m->reg, cm->address) == NULL) {
			if (mailbox_backend(add_mailbox(m, cm)) ==
			    MAILBOX_BACKEND_EWS)
				addrs[nask++] = cm->address;
			added++;
		}
	}
	hashmap_free(keep, NULL);
	registry_commit(m->reg);
	/* The added ones are placed once Autodiscover has answered. */
	if (m->started && nask > 0 && m->discover == NULL && discovering(m))
		discover_first(m, addrs, nask);
	free(addrs);
	if (m->discover == NULL)
		start_mailboxes(m);
	refresh_schedule(m);
	/* Presence rules may have changed: re-evaluate everyone. */
	for (i = 0; i < registry_count(m->reg); i++)
		mailbox_recompute(registry_at(m->reg, i));
	if (added || removed)
		log_notice("reload: %zu mailboxes added, %zu removed", added,
		    removed);
	rebalance_soon(m);
}

/* ---- cluster mode ---- */

/*
 * Autodiscover the mailboxes taken over (not started yet) before they
 * are placed, as a start does for all: discovered() starts them.
 * While a run is under way they wait for the next one, which
 * discovered() starts.  0 when a run started.
 */
static int
discover_idle(struct manager *m)
{
	struct mailbox	*mb;
	const char	**addrs;
	size_t		 i, k = 0, n = registry_count(m->reg);
	int		 r = -1;

	if (m->discover != NULL) {
		m->discover_again = true;
		return (0);
	}
	m->discover_again = false;
	addrs = xreallocarray(NULL, n + 1, sizeof *addrs);
	for (i = 0; i < n; i++) {
		mb = registry_at(m->reg, i);
		if (mailbox_state(mb) == MAILBOX_IDLE &&
		    mailbox_backend(mb) == MAILBOX_BACKEND_EWS &&
		    hashmap_get(m->group_keys, mailbox_address(mb)) == NULL)
			addrs[k++] = mailbox_address(mb);
	}
	if (k > 0)
		r = discover_first(m, addrs, k);
	free(addrs);
	return (r);
}

void
manager_set_owned(struct manager *m, const bool *owned, bool may_start)
{
	const struct config	*conf = m->env.conf;
	struct hashmap		*want;
	struct mailbox		*mb;
	size_t			 i, added = 0, removed = 0;

	if (m->stopping)
		return;
	want = hashmap_new();
	for (i = 0; i < conf->nmailboxes; i++)
		if (owned[i])
			hashmap_put(want, conf->mailboxes[i].address,
			    &conf->mailboxes[i]);
	/* Lost ones first: they stop publishing and unsubscribe now. */
	for (i = 0; i < registry_count(m->reg); i++) {
		mb = registry_at(m->reg, i);
		if (hashmap_get(want, mailbox_address(mb)) != NULL)
			continue;
		retire_mailbox(m, mb);
		removed++;
	}
	hashmap_free(want, NULL);
	if (may_start) {
		m->fenced = false;
		for (i = 0; i < conf->nmailboxes; i++) {
			if (!owned[i] || registry_find(m->reg,
			    conf->mailboxes[i].address) != NULL)
				continue;
			add_mailbox(m, &conf->mailboxes[i]);
			added++;
		}
	}
	registry_commit(m->reg);
	/* Their changes must number above the previous owner's. */
	if (added > 0)
		sinkset_seq_floor(m->sinks);
	/* Taken over: placed once Autodiscover has answered for them. */
	if (added > 0 && m->started && discovering(m))
		discover_idle(m);
	if (added > 0 && m->started && m->discover == NULL) {
		assign(m);
		start_idle(m);
	}
	if (added > 0 || removed > 0)
		log_notice("cluster: %zu mailboxes taken over, %zu handed "
		    "over, %zu run here", added, removed,
		    registry_count(m->reg));
	m->release_wanted = true;
	rebalance_soon(m);
}

void
manager_set_share(struct manager *m, unsigned concurrency,
    unsigned subscriptions)
{
	if (concurrency == 0 && m->share.concurrency != 0)
		log_warnx("cluster: this node's share of max_concurrency is "
		    "0: it can send no request (more nodes than "
		    "max_concurrency?)");
	m->share.concurrency = concurrency;
	m->share.subscriptions = subscriptions;
	m->share_since_fence = true;
	ews_ctx_set_share(m->env.ews, &m->share);
	m->share_pending = true;
	rebalance_soon(m);	/* trim, then check_share */
}

void
manager_fence(struct manager *m, int64_t budget_until_ms)
{
	struct timeval	 tv;
	int64_t		 left;
	size_t		 i;

	m->fenced = true;
	if (m->stopping)
		return;		/* shutting down: everything stops anyway */
	m->release_wanted = false;
	m->share_pending = false;
	m->share_since_fence = false;
	evtimer_del(&m->share_timer);
	for (i = 0; i < registry_count(m->reg); i++) {
		/* Not delivered yet: the next owner publishes it now. */
		if (m->sinks != NULL)
			(void)sinkset_drop(m->sinks,
			    mailbox_address(registry_at(m->reg, i)));
		retire_mailbox(m, registry_at(m->reg, i));
	}
	registry_commit(m->reg);
	left = budget_until_ms - time_mono_ms();
	evtimer_add(&m->fence_timer, time_ms_tv(&tv, left > 0 ? left : 0));
	log_warnx("cluster: lease lost: publishing stopped, %zu mailboxes "
	    "dropped; unsubscribing for %lld ms", m->nretiring,
	    (long long)(left > 0 ? left : 0));
	rebalance_soon(m);
}

/* The fenced node's share may be in others' hands now: drop the rest. */
static void
fence_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct manager	*m = arg;
	struct ews_share zero = { 0, 0 };
	size_t		 i, n = 0;

	for (i = 0; i < m->nretiring; i++) {
		if (mailbox_state(m->retiring[i]) != MAILBOX_STOPPED) {
			n++;
			m->running--;
		}
		mailbox_free(m->retiring[i]);
	}
	m->nretiring = 0;
	drop_empty_groups(m);
	rebalance_soon(m);	/* a release may be waiting for these */
	if (!m->share_since_fence) {
		m->share = zero;
		ews_ctx_set_share(m->env.ews, &m->share);
	}
	if (n > 0)
		log_warnx("cluster: %zu mailboxes dropped without "
		    "Unsubscribe (budget time over)", n);
}

size_t
manager_running(struct manager *m)
{
	return (registry_count(m->reg));
}

/* ---- shutdown ---- */

static void
stop_done(struct manager *m)
{
	manager_done_cb	 cb = m->stop_cb;

	if (cb == NULL)
		return;
	m->stop_cb = NULL;
	evtimer_del(&m->stop_timer);
	evtimer_del(&m->stop_step);
	cb(m->stop_arg);
}

static void
stop_timeout_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct manager	*m = arg;

	log_warnx("stop: %zu subscriptions not released in time", m->running);
	stop_done(m);
}

/*
 * Stop the next STOP_BATCH mailboxes, then yield to the loop (a zero
 * timer, so that due timers, the hard stop among them, run first).
 */
static void
stop_step_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct manager	*m = arg;
	struct mailbox	*mb;
	size_t		 end, n = registry_count(m->reg);
	struct timeval	 tv = { 0, 0 };

	end = m->stop_next + STOP_BATCH < n ? m->stop_next + STOP_BATCH : n;
	while (m->stop_next < end && m->stop_cb != NULL) {
		mb = registry_at(m->reg, m->stop_next++);
		if (mailbox_state(mb) != MAILBOX_STOPPED)
			mailbox_stop(mb);
	}
	if (m->stop_cb == NULL)
		return;
	if (m->stop_next < n)
		evtimer_add(&m->stop_step, &tv);
	else if (m->running == 0)
		stop_done(m);
}

void
manager_shutdown(struct manager *m, int64_t timeout_ms, manager_done_cb cb,
    void *arg)
{
	struct timeval	 tv;
	size_t		 i;

	m->stopping = true;
	m->stop_cb = cb;
	m->stop_arg = arg;
	evtimer_add(&m->stop_timer, time_ms_tv(&tv, timeout_ms));
	/* Close the streams first: their slots serve the Unsubscribes. */
	for (i = 0; i < m->ngroups; i++)
		group_close(m->groups[i]);
	if (m->push != NULL)
		pushrecv_stop(m->push);
	poller_stop(m->poller);
	oofcycle_stop(m->oof);
	discover_free(m->discover);
	m->discover = NULL;
	discover_free(m->refresh);
	m->refresh = NULL;
	evtimer_del(&m->refresh_ev);
	m->stop_next = 0;
	stop_step_cb(-1, 0, m);
}

void
manager_free(struct manager *m)
{
	size_t	 i;

	if (m == NULL)
		return;
	m->stopping = true;
	discover_free(m->discover);
	discover_free(m->refresh);
	for (i = 0; i < m->ngroups; i++)
		group_free(m->groups[i]);
	free(m->groups);
	hashmap_free(m->group_keys, free);
	hashmap_free(m->moving, NULL);
	hashmap_free(m->online, NULL);
	for (i = 0; i < m->nurgent; i++)
		free(m->urgent[i]);
	free(m->urgent);
	poller_free(m->poller);
	oofcycle_free(m->oof);
	if (m->push != NULL)
		pushrecv_free(m->push);
	for (i = 0; i < registry_count(m->reg); i++)
		mailbox_free(registry_at(m->reg, i));
	for (i = 0; i < m->nretiring; i++)
		mailbox_free(m->retiring[i]);
	free(m->retiring);
	registry_free(m->reg);
	if (m->presence_timers != NULL)
		boundary_free(m->presence_timers);
	if (m->action_timers != NULL)
		boundary_free(m->action_timers);
	event_del(&m->rebalance_ev);
	event_del(&m->stop_timer);
	event_del(&m->stop_step);
	event_del(&m->share_timer);
	event_del(&m->fence_timer);
	event_del(&m->refresh_ev);
	graph_client_free(m->env.graph);
	ews_ctx_free(m->env.ews);
	free(m);
}

/* ---- status ---- */

struct counts {
	size_t	 state[MAILBOX_STATUS_MAX];
	size_t	 mode[MAILBOX_MODE_MAX];
	size_t	 presence[PRESENCE_STATE_MAX];
	size_t	 total;
	size_t	 open;		/* streaming connections open */
	size_t	 no_connection;	/* polled for want of connections */
};

static void
count_all(struct manager *m, struct counts *c)
{
	size_t			 i;
	struct mailbox		*mb;
	const struct presence	*p;

	memset(c, 0, sizeof *c);
	for (i = 0; i < registry_count(m->reg); i++) {
		mb = registry_at(m->reg, i);
		p = mailbox_presence(mb);
		c->total++;
		c->state[mailbox_status(mb)]++;
		if (mailbox_backend(mb) != MAILBOX_BACKEND_NONE)
			c->mode[mailbox_mode(mb)]++;
		if (mailbox_mode(mb) == MAILBOX_MODE_POLL &&
		    mailbox_reason(mb) == MAILBOX_WHY_CONNECTIONS)
			c->no_connection++;
		c->presence[p != NULL ? p->state : PRESENCE_UNKNOWN]++;
	}
	for (i = 0; i < m->ngroups; i++)
		if (group_state(m->groups[i]) == GROUP_OPEN)
			c->open++;
}

/* The budgets in use against each limit, as ewsgwctl status shows them. */
static void
budget_json(struct manager *m, const struct counts *c, struct json_writer *w)
{
	struct throttle_stats	 ts;

	throttle_stats(ews_ctx_throttle(m->env.ews), time_mono_ms(), &ts);
	json_key(w, "budget");
	json_obj_begin(w);
	json_kv_str(w, "charging", conf_charging_name(ts.charging));
	json_key(w, "concurrency");
	json_obj_begin(w);
	json_kv_int(w, "in_use", ts.concurrency_in_use);
	json_kv_int(w, "limit", ts.concurrency_limit);
	json_obj_end(w);
	json_kv_int(w, "short_reserved", ts.short_reserve);
	json_key(w, "subscriptions");
	json_obj_begin(w);
	json_kv_int(w, "in_use", ts.subscriptions);
	json_key(w, "limit");
	if (ts.subscription_limit == THROTTLE_UNLIMITED)
		json_null(w);
	else
		json_int(w, ts.subscription_limit);
	json_kv_str(w, "per", ts.charging == CONF_CHARGING_IMPERSONATED ?
	    "mailbox" : "service account");
	json_obj_end(w);
	json_key(w, "streaming_connections");
	json_obj_begin(w);
	json_kv_int(w, "open", (int64_t)c->open);
	json_kv_int(w, "groups", (int64_t)m->ngroups);
	json_key(w, "limit");
	if (ts.stream_limit == THROTTLE_UNLIMITED)
		json_null(w);
	else
		json_int(w, ts.stream_limit);
	json_kv_int(w, "per_anchor_limit", ts.per_anchor_limit);
	json_kv_bool(w, "grouping_refused", m->ungrouped);
	json_obj_end(w);
	json_kv_time(w, "backoff_until", ts.backoff_until == 0 ? 0 :
	    time_wall_ms() / 1000 + (ts.backoff_until - time_mono_ms()) / 1000);
	json_obj_end(w);
}

int
manager_status_json(struct manager *m, struct json_writer *w)
{
	const struct pushrecv_graph_stats *gst;
	struct counts	 c;
	int		 i, healthy = 1;
	char		 msg[128];

	count_all(m, &c);
	json_key(w, "mailboxes");
	json_obj_begin(w);
	json_kv_int(w, "total", (int64_t)c.total);
	json_key(w, "by_state");
	json_obj_begin(w);
	for (i = 0; i < MAILBOX_STATUS_MAX; i++)
		if (c.state[i] > 0)
			json_kv_int(w, mailbox_status_name(i),
			    (int64_t)c.state[i]);
	json_obj_end(w);
	json_key(w, "by_mode");
	json_obj_begin(w);
	for (i = 0; i < MAILBOX_MODE_MAX; i++)
		if (c.mode[i] > 0)
			json_kv_int(w, mailbox_mode_name(i),
			    (int64_t)c.mode[i]);
	json_obj_end(w);
	json_key(w, "by_presence");
	json_obj_begin(w);
	for (i = 0; i < PRESENCE_STATE_MAX; i++)
		if (c.presence[i] > 0)
			json_kv_int(w, presence_state_name(i),
			    (int64_t)c.presence[i]);
	json_obj_end(w);
	json_obj_end(w);

	budget_json(m, &c, w);
	json_key(w, "throttle");
	ews_ctx_budget_json(m->env.ews, w);
	json_key(w, "exchange");
	ews_ctx_account_json(m->env.ews, w);
	if (m->env.graph != NULL) {
		/* Graph's budgets next to Exchange's. */
		json_key(w, "graph");
		graph_client_stats_json(m->env.graph, w);
	}
	if (m->push != NULL && m->mbctx.graph_url != NULL) {
		gst = pushrecv_graph_stats(m->push);
		json_key(w, "graph_notifications");
		json_obj_begin(w);
		json_kv_int(w, "received", (int64_t)gst->received);
		json_kv_int(w, "forged", (int64_t)gst->forged);
		json_kv_int(w, "unknown", (int64_t)gst->unknown);
		json_obj_end(w);
	}

	json_kv_int(w, "publications", (int64_t)m->published);
	json_kv_int(w, "notifications",
	    (int64_t)m->counts[MAILBOX_COUNT_NOTIFICATION]);
	json_kv_int(w, "resubscribes",
	    (int64_t)m->counts[MAILBOX_COUNT_RESUBSCRIBE]);
	json_kv_int(w, "regrouped", (int64_t)m->regrouped);
	json_key(w, "oof");
	oofcycle_json(m->oof, w);
	if (m->push != NULL) {
		json_key(w, "push");
		pushrecv_json(m->push, w);
	}
	json_key(w, "problems");
	json_arr_begin(w);
	/* The service account's own problems come from the call path. */
	if (!ews_ctx_problems_json(m->env.ews, w))
		healthy = 0;
	if (c.state[MAILBOX_STATUS_PARKED] > 0) {
		snprintf(msg, sizeof msg, "%zu mailboxes parked: Exchange "
		    "refuses them (see ewsgwctl mailboxes)",
		    c.state[MAILBOX_STATUS_PARKED]);
		json_str(w, msg);
	}
	if (m->ungrouped) {
		snprintf(msg, sizeof msg, "the EWS server refuses grouped "
		    "streams: one stream per mailbox, %zu mailboxes polled "
		    "for want of connections", c.no_connection);
		json_str(w, msg);
	}
	if (c.state[MAILBOX_STATUS_BACKOFF] > c.total / 2 && c.total > 0) {
		json_str(w, "most mailboxes are backing off");
		healthy = 0;
	}
	json_arr_end(w);
	return (healthy);
}

void
manager_mailboxes_json(struct manager *m, struct json_writer *w)
{
	size_t	 i;

	json_key(w, "mailboxes");
	json_arr_begin(w);
	for (i = 0; i < registry_count(m->reg); i++)
		mailbox_json_in(registry_at(m->reg, i), w, false);
	json_arr_end(w);
}

/* A mailbox's object, with the connection it streams on. */
static void
mailbox_json_in(struct mailbox *mb, struct json_writer *w, bool detail)
{
	struct group	*g = mailbox_group(mb);

	mailbox_json(mb, w, detail, g != NULL ? (int64_t)group_id(g) : -1);
}

int
manager_mailbox_json(struct manager *m, const char *addr,
    struct json_writer *w)
{
	struct mailbox	*mb;

	if ((mb = registry_find(m->reg, addr)) == NULL)
		return (-1);
	json_key(w, "mailbox");
	mailbox_json_in(mb, w, true);
	return (0);
}

void
manager_connections_json(struct manager *m, struct json_writer *w)
{
	size_t	 i;

	json_key(w, "connections");
	json_arr_begin(w);
	for (i = 0; i < m->ngroups; i++)
		group_json(m->groups[i], w);
	json_arr_end(w);
}

/* Ask Autodiscover for address first, at once. */
static void
ask_soon(struct manager *m, const char *address)
{
	m->urgent = xreallocarray(m->urgent, m->nurgent + 1,
	    sizeof *m->urgent);
	m->urgent[m->nurgent++] = xstrdup(address);
	refresh_schedule(m);
}

int
manager_rediscover(struct manager *m, const char *addr, size_t *queued,
    char **cause)
{
	struct mailbox	*mb = NULL;
	size_t		 i, n = registry_count(m->reg);

	*queued = 0;
	if (!discovering(m)) {
		xasprintf(cause, "Autodiscover is off ([exchange] "
		    "autodiscover, or mode = poll)");
		return (-1);
	}
	if (addr != NULL) {
		if ((mb = registry_find(m->reg, addr)) == NULL ||
		    !asked_again(m, mb)) {
			xasprintf(cause, "unknown mailbox %s", addr);
			return (-1);
		}
		ask_soon(m, mailbox_address(mb));
		*queued = 1;
	} else {
		/* The whole registry once, a batch after the other. */
		for (i = 0; i < n; i++)
			if (asked_again(m, registry_at(m->reg, i)))
				(*queued)++;
		if (*queued > 0)
			m->sweep = n;
		refresh_schedule(m);
	}
	log_notice("Autodiscover: %zu mailboxes asked again (control "
	    "request)", *queued);
	return (0);
}

int
manager_resync(struct manager *m, const char *addr, char **cause)
{
	struct mailbox	*mb;

	if ((mb = registry_find(m->reg, addr)) == NULL) {
		xasprintf(cause, "unknown mailbox %s", addr);
		return (-1);
	}
	mailbox_resync(mb);
	return (0);
}

/* The Graph client's counters. */
static void
graph_metrics(struct graph_client *gc, struct buf *b)
{
	struct graph_client_stats	 st;
	int				 i;

	graph_client_stats(gc, &st);
	buf_printf(b, "# HELP ewsgw_graph_requests_total Graph calls "
	    "started.\n# TYPE ewsgw_graph_requests_total counter\n"
	    "ewsgw_graph_requests_total %llu\n"
	    "# HELP ewsgw_graph_throttled_total Graph answers 429 or 503 "
	    "(Retry-After honoured).\n"
	    "# TYPE ewsgw_graph_throttled_total counter\n"
	    "ewsgw_graph_throttled_total %llu\n"
	    "# HELP ewsgw_graph_results_total Graph calls by outcome.\n"
	    "# TYPE ewsgw_graph_results_total counter\n",
	    (unsigned long long)st.calls, (unsigned long long)st.throttled);
	for (i = 0; i < GRAPH_ACT_MAX; i++)
		buf_printf(b, "ewsgw_graph_results_total{action=\"%s\"} "
		    "%llu\n", graph_action_name(i),
		    (unsigned long long)st.results[i]);
	buf_printf(b, "# HELP ewsgw_graph_batches_total JSON $batch requests "
	    "sent.\n# TYPE ewsgw_graph_batches_total counter\n"
	    "ewsgw_graph_batches_total %llu\n"
	    "# HELP ewsgw_graph_batched_total Graph calls sent inside a "
	    "$batch.\n# TYPE ewsgw_graph_batched_total counter\n"
	    "ewsgw_graph_batched_total %llu\n",
	    (unsigned long long)st.batches, (unsigned long long)st.batched);
	buf_printf(b, "# HELP ewsgw_graph_in_flight Graph requests "
	    "running.\n# TYPE ewsgw_graph_in_flight gauge\n"
	    "ewsgw_graph_in_flight %u\n", st.sched.in_flight);
	buf_printf(b, "# HELP ewsgw_graph_mailbox_in_flight_max Most Graph "
	    "requests one mailbox had in flight since start.\n"
	    "# TYPE ewsgw_graph_mailbox_in_flight_max gauge\n"
	    "ewsgw_graph_mailbox_in_flight_max %u\n"
	    "# HELP ewsgw_graph_mailbox_concurrency_limit Graph requests in "
	    "flight allowed per mailbox.\n"
	    "# TYPE ewsgw_graph_mailbox_concurrency_limit gauge\n"
	    "ewsgw_graph_mailbox_concurrency_limit %u\n"
	    "# HELP ewsgw_graph_window_requests_max Most Graph requests in "
	    "one rate window since start, of one mailbox or of the app.\n"
	    "# TYPE ewsgw_graph_window_requests_max gauge\n"
	    "ewsgw_graph_window_requests_max{scope=\"mailbox\"} %llu\n"
	    "ewsgw_graph_window_requests_max{scope=\"app\"} %llu\n"
	    "# HELP ewsgw_graph_rate_limit Graph requests allowed per rate "
	    "window.\n# TYPE ewsgw_graph_rate_limit gauge\n"
	    "ewsgw_graph_rate_limit{scope=\"mailbox\"} %u\n"
	    "ewsgw_graph_rate_limit{scope=\"app\"} %u\n"
	    "# HELP ewsgw_graph_rate_window_seconds The rate windows.\n"
	    "# TYPE ewsgw_graph_rate_window_seconds gauge\n"
	    "ewsgw_graph_rate_window_seconds{scope=\"mailbox\"} %.3f\n"
	    "ewsgw_graph_rate_window_seconds{scope=\"app\"} %.3f\n",
	    st.sched.max_in_flight_mailbox, st.sched.concurrency,
	    (unsigned long long)st.sched.max_window_requests,
	    (unsigned long long)st.sched.max_app_window_requests,
	    st.sched.rate, st.sched.app_rate,
	    (double)st.sched.window_ms / 1000,
	    (double)st.sched.app_window_ms / 1000);
	buf_printf(b, "# HELP ewsgw_graph_waits_total Graph requests held "
	    "back, by the budget that held them.\n"
	    "# TYPE ewsgw_graph_waits_total counter\n"
	    "ewsgw_graph_waits_total{reason=\"mailbox_slot\"} %llu\n"
	    "ewsgw_graph_waits_total{reason=\"mailbox_rate\"} %llu\n"
	    "ewsgw_graph_waits_total{reason=\"app_rate\"} %llu\n"
	    "ewsgw_graph_waits_total{reason=\"retry_after\"} %llu\n"
	    "# HELP ewsgw_graph_paused_mailboxes Mailboxes waiting out a "
	    "Retry-After now.\n# TYPE ewsgw_graph_paused_mailboxes gauge\n"
	    "ewsgw_graph_paused_mailboxes %zu\n"
	    "# HELP ewsgw_graph_token_valid 1 while an app-only token is "
	    "held.\n# TYPE ewsgw_graph_token_valid gauge\n"
	    "ewsgw_graph_token_valid %d\n"
	    "# HELP ewsgw_graph_token_failures_total Token requests refused "
	    "or failed.\n# TYPE ewsgw_graph_token_failures_total counter\n"
	    "ewsgw_graph_token_failures_total %llu\n",
	    (unsigned long long)st.sched.waited_slot,
	    (unsigned long long)st.sched.waited_rate,
	    (unsigned long long)st.sched.waited_app,
	    (unsigned long long)st.sched.waited_pause, st.sched.paused,
	    st.auth.expires_in_ms > 0,
	    (unsigned long long)st.auth.failures);
}

void
manager_metrics(struct manager *m, struct buf *b)
{
	struct counts	 c;
	int		 i;

	count_all(m, &c);
	buf_puts(b, "# HELP ewsgw_mailboxes Mailboxes by state.\n"
	    "# TYPE ewsgw_mailboxes gauge\n");
	for (i = 0; i < MAILBOX_STATUS_MAX; i++)
		buf_printf(b, "ewsgw_mailboxes{state=\"%s\"} %zu\n",
		    mailbox_status_name(i), c.state[i]);
	buf_puts(b, "# HELP ewsgw_mailboxes_presence Mailboxes by presence.\n"
	    "# TYPE ewsgw_mailboxes_presence gauge\n");
	for (i = 0; i < PRESENCE_STATE_MAX; i++)
		buf_printf(b, "ewsgw_mailboxes_presence{presence=\"%s\"} %zu\n",
		    presence_state_name(i), c.presence[i]);
	buf_printf(b, "# HELP ewsgw_streaming_connections Open "
	    "GetStreamingEvents connections.\n"
	    "# TYPE ewsgw_streaming_connections gauge\n"
	    "ewsgw_streaming_connections %zu\n", c.open);
	buf_printf(b, "# HELP ewsgw_publications_total Presence changes "
	    "published.\n# TYPE ewsgw_publications_total counter\n"
	    "ewsgw_publications_total %llu\n",
	    (unsigned long long)m->published);
	buf_printf(b, "# HELP ewsgw_notifications_total Calendar "
	    "notifications received.\n"
	    "# TYPE ewsgw_notifications_total counter\n"
	    "ewsgw_notifications_total %llu\n",
	    (unsigned long long)m->counts[MAILBOX_COUNT_NOTIFICATION]);
	buf_printf(b, "# HELP ewsgw_resubscribes_total Subscriptions lost "
	    "and made again.\n# TYPE ewsgw_resubscribes_total counter\n"
	    "ewsgw_resubscribes_total %llu\n",
	    (unsigned long long)m->counts[MAILBOX_COUNT_RESUBSCRIBE]);
	oofcycle_metrics(m->oof, b);
	ews_ctx_metrics(m->env.ews, b);
	if (m->env.graph != NULL)
		graph_metrics(m->env.graph, b);
	if (m->push != NULL && m->mbctx.graph_url != NULL)
		buf_printf(b, "# HELP ewsgw_graph_notifications_forged_total "
		    "Graph notifications dropped for a wrong clientState.\n"
		    "# TYPE ewsgw_graph_notifications_forged_total counter\n"
		    "ewsgw_graph_notifications_forged_total %llu\n",
		    (unsigned long long)pushrecv_graph_stats(m->push)->forged);
}

struct ews_ctx *
manager_ews(struct manager *m)
{
	return (m->env.ews);
}

struct graph_client *
manager_graph(struct manager *m)
{
	return (m->env.graph);
}

bool
manager_summary(struct manager *m, char *out, size_t len)
{
	struct counts	 c;
	const char	*acct = ews_ctx_summary(m->env.ews);

	count_all(m, &c);
	snprintf(out, len, "%zu/%zu mailboxes streaming, %zu push, %zu "
	    "polling, %zu on Graph, %zu backing off, %zu parked; %zu "
	    "connections%s%s",
	    c.state[MAILBOX_STATUS_STREAMING], c.total,
	    c.state[MAILBOX_STATUS_PUSH], c.state[MAILBOX_STATUS_POLLING],
	    c.state[MAILBOX_STATUS_DELTA], c.state[MAILBOX_STATUS_BACKOFF],
	    c.state[MAILBOX_STATUS_PARKED], c.open, acct != NULL ? "; " : "",
	    acct != NULL ? acct : "");
	return (c.state[MAILBOX_STATUS_IDLE] == 0 &&
	    c.state[MAILBOX_STATUS_SUBSCRIBING] == 0 &&
	    c.state[MAILBOX_STATUS_SYNCING] == 0);
}
