/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The subscription manager: the registry of mailboxes, their assignment
 * to streaming groups, push or polling within the budgets, reload by
 * mark and sweep, orderly release at shutdown, and the status views.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "presence/boundary.h"
#include "base/buf.h"
#include "base/conf.h"
#include "io/ews.h"
#include "subs/group.h"
#include "base/hashmap.h"
#include "base/json.h"
#include "base/log.h"
#include "subs/mailbox.h"
#include "subs/manager.h"
#include "subs/poller.h"
#include "subs/pushrecv.h"
#include "sinks/sinkset.h"
#include "io/throttle.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

static void	 assign(struct manager *);
static void	 reap(struct manager *);
static struct mailbox *find_mailbox(struct manager *, const char *);

/* ---- timers shared by all mailboxes ---- */

static void
presence_due(struct timerheap_entry *e, void *arg)
{
	mailbox_boundary_due(timerheap_owner(e, struct mailbox, boundary));
}

static void
action_due(struct timerheap_entry *e, void *arg)
{
	mailbox_action_due(timerheap_owner(e, struct mailbox, action));
}

/* ---- registry ---- */

static int
cmp_mailbox(const void *a, const void *b)
{
	const struct mailbox *const *x = a, *const *y = b;

	return (strcmp((*x)->address, (*y)->address));
}

struct mailbox *
manager_mailbox_by_subid(struct manager *m, const char *id)
{
	return (id != NULL ? hashmap_get(m->by_subid, id) : NULL);
}

static struct group *
new_group(struct manager *m)
{
	struct group	*g;

	g = group_new(m, ++m->next_group_id);
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
		if (m->groups[i]->n == 0)
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
	const struct config	*conf = m->conf;
	unsigned		 streams;

	streams = throttle_streams_total(ews_ctx_throttle(m->ews));
	*groups = streams == THROTTLE_UNLIMITED ? SIZE_MAX : streams;
	if (conf->throttling.charging == CONF_CHARGING_SERVICE_ACCOUNT)
		*subs = conf->throttling.max_subscriptions;
	else
		*subs = SIZE_MAX;	/* counted per target mailbox */
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
	const struct config	*conf = m->conf;
	size_t			 maxg, maxs, used = 0, i;
	struct mailbox		*mb;
	struct group		*g;

	capacity(m, &maxg, &maxs);
	drop_empty_groups(m);
	/* Subscriptions already held count first. */
	for (i = 0; i < m->nall; i++) {
		mb = m->all[i];
		if (mb->removed)
			continue;
		if (mb->mode != MAILBOX_MODE_POLL ||
		    mb->reason == MAILBOX_WHY_REFUSED)
			if (mb->state != MAILBOX_IDLE || mb->group != NULL)
				used++;
	}
	for (i = 0; i < m->nall; i++) {
		mb = m->all[i];
		if (mb->removed)
			continue;
		if (conf->exchange.mode == CONF_MODE_POLL) {
			if (mb->group != NULL)
				group_remove(mb->group, mb);
			mailbox_set_mode(mb, MAILBOX_MODE_POLL,
			    MAILBOX_WHY_CONFIG);
			continue;
		}
		if (mb->reason == MAILBOX_WHY_REFUSED)
			continue;
		if (mb->group != NULL || (mb->mode == MAILBOX_MODE_PUSH &&
		    mb->state != MAILBOX_IDLE && mb->state != MAILBOX_POLLING))
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
		/* The last group with room, else a new one if allowed. */
		g = m->ngroups > 0 ? m->groups[m->ngroups - 1] : NULL;
		if (g == NULL || g->n >= g->cap) {
			if (m->ngroups >= maxg) {
				mailbox_set_mode(mb, MAILBOX_MODE_POLL,
				    MAILBOX_WHY_CONNECTIONS);
				continue;
			}
			g = new_group(m);
		}
		group_add(g, mb);
		used++;
		mailbox_set_mode(mb, MAILBOX_MODE_STREAMING,
		    MAILBOX_WHY_CONFIG);
	}
}

static void
rebalance_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct manager	*m = arg;

	if (m->stopping)
		return;
	reap(m);
	assign(m);
}

void
manager_rebalance_soon(struct manager *m)
{
	event_active(m->rebalance_ev, EV_TIMEOUT, 0);
}

static void
add_mailbox(struct manager *m, const struct conf_mailbox *cm)
{
	struct mailbox	*mb;

	mb = mailbox_new(m, cm->address, cm->idtype, cm->id);
	hashmap_put(m->by_address, mb->address, mb);
	m->all = xreallocarray(m->all, m->nall + 1, sizeof *m->all);
	m->all[m->nall++] = mb;
}

/* Free mailboxes removed by a reload once they have stopped. */
static void
reap(struct manager *m)
{
	size_t		 i, j;
	struct mailbox	*mb;

	for (i = j = 0; i < m->nall; i++) {
		mb = m->all[i];
		if (mb->removed && mb->state == MAILBOX_STOPPED) {
			if (mb->group != NULL)
				group_remove(mb->group, mb);
			if (hashmap_get(m->by_address, mb->address) == mb)
				hashmap_remove(m->by_address, mb->address);
			poller_forget(m->poller, mb);
			mailbox_free(mb);
			continue;
		}
		m->all[j++] = mb;
	}
	m->nall = j;
}

struct manager *
manager_new(struct event_base *base, const struct config *conf,
    struct sinkset *sinks, char **cause)
{
	struct manager	*m;
	size_t		 i;

	m = xcalloc(1, sizeof *m);
	m->base = base;
	m->conf = conf;
	m->sinks = sinks;
	if ((m->ews = ews_ctx_new(base, conf, cause)) == NULL) {
		free(m);
		return (NULL);
	}
	presence_rules_from_conf(&m->rules, conf);
	backoff_rng_seed(&m->rng, (uint64_t)time_wall_ms() ^
	    (uint64_t)(uintptr_t)m);
	m->by_address = hashmap_new();
	m->by_subid = hashmap_new();
	m->presence_timers = boundary_new(base, BOUNDARY_WALL, presence_due, m);
	m->action_timers = boundary_new(base, BOUNDARY_MONO, action_due, m);
	m->rebalance_ev = event_new(base, -1, 0, rebalance_cb, m);
	for (i = 0; i < conf->nmailboxes; i++)
		add_mailbox(m, &conf->mailboxes[i]);
	qsort(m->all, m->nall, sizeof *m->all, cmp_mailbox);
	m->poller = poller_new(m);
	if (conf->exchange.mode == CONF_MODE_PUSH &&
	    (m->push = pushrecv_new(m, cause)) == NULL) {
		manager_free(m);
		return (NULL);
	}
	return (m);
}

void
manager_start(struct manager *m)
{
	size_t	 i;

	assign(m);
	m->started = true;
	for (i = 0; i < m->nall; i++)
		mailbox_start(m->all[i]);
}

void
manager_reload(struct manager *m, const struct config *conf)
{
	struct hashmap		*keep;
	struct mailbox		*mb;
	size_t			 i, added = 0, removed = 0;

	m->conf = conf;
	presence_rules_from_conf(&m->rules, conf);
	ews_ctx_reload(m->ews, conf);
	poller_reload(m->poller);

	/* Mark: what the new file names; sweep: what it no longer does. */
	keep = hashmap_new();
	for (i = 0; i < conf->nmailboxes; i++) {
		hashmap_put(keep, conf->mailboxes[i].address,
		    &conf->mailboxes[i]);
		if (hashmap_get(m->by_address, conf->mailboxes[i].address) ==
		    NULL) {
			add_mailbox(m, &conf->mailboxes[i]);
			added++;
		}
	}
	for (i = 0; i < m->nall; i++) {
		mb = m->all[i];
		if (mb->removed || hashmap_get(keep, mb->address) != NULL)
			continue;
		mb->removed = true;
		removed++;
		if (mb->group != NULL)
			group_remove(mb->group, mb);
		mailbox_stop(mb);
	}
	hashmap_free(keep, NULL);
	qsort(m->all, m->nall, sizeof *m->all, cmp_mailbox);
	assign(m);
	for (i = 0; i < m->nall; i++)
		if (m->all[i]->state == MAILBOX_IDLE && !m->all[i]->removed)
			mailbox_start(m->all[i]);
	/* Presence rules may have changed: re-evaluate everyone. */
	for (i = 0; i < m->nall; i++)
		if (!m->all[i]->removed && m->all[i]->has_presence)
			mailbox_boundary_due(m->all[i]);
	if (added || removed)
		log_notice("reload: %zu mailboxes added, %zu removed", added,
		    removed);
	manager_rebalance_soon(m);
}

/* ---- shutdown ---- */

static void
stop_done(struct manager *m)
{
	manager_done_cb	 cb = m->stop_cb;

	if (cb == NULL)
		return;
	m->stop_cb = NULL;
	if (m->stop_timer != NULL)
		evtimer_del(m->stop_timer);
	cb(m->stop_arg);
}

static size_t
still_running(struct manager *m)
{
	size_t	 i, n = 0;

	for (i = 0; i < m->nall; i++)
		if (m->all[i]->state != MAILBOX_STOPPED)
			n++;
	return (n);
}

void
manager_mailbox_stopped(struct manager *m, struct mailbox *mb)
{
	if (m->stopping) {
		if (m->stop_cb != NULL && still_running(m) == 0) {
			log_info("all subscriptions released");
			stop_done(m);
		}
		return;
	}
	if (mb->removed)
		manager_rebalance_soon(m);	/* reaps it */
}

static void
stop_timeout_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct manager	*m = arg;

	log_warnx("stop: %zu subscriptions not released in time",
	    still_running(m));
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
	m->stop_timer = evtimer_new(m->base, stop_timeout_cb, m);
	evtimer_add(m->stop_timer, time_ms_tv(&tv, timeout_ms));
	/* Close the streams first: their slots serve the Unsubscribes. */
	for (i = 0; i < m->ngroups; i++)
		group_close(m->groups[i]);
	if (m->push != NULL)
		pushrecv_stop(m->push);
	for (i = 0; i < m->nall && m->stop_cb != NULL; i++)
		if (m->all[i]->state != MAILBOX_STOPPED)
			mailbox_stop(m->all[i]);
	if (m->stop_cb != NULL && still_running(m) == 0)
		stop_done(m);
}

void
manager_free(struct manager *m)
{
	size_t	 i;

	if (m == NULL)
		return;
	m->stopping = true;
	for (i = 0; i < m->ngroups; i++)
		group_free(m->groups[i]);
	free(m->groups);
	poller_free(m->poller);
	if (m->push != NULL)
		pushrecv_free(m->push);
	for (i = 0; i < m->nall; i++)
		mailbox_free(m->all[i]);
	free(m->all);
	hashmap_free(m->by_address, NULL);
	hashmap_free(m->by_subid, NULL);
	if (m->presence_timers != NULL)
		boundary_free(m->presence_timers);
	if (m->action_timers != NULL)
		boundary_free(m->action_timers);
	if (m->rebalance_ev != NULL)
		event_free(m->rebalance_ev);
	if (m->stop_timer != NULL)
		event_free(m->stop_timer);
	ews_ctx_free(m->ews);
	free(m);
}

/* ---- status ---- */

struct counts {
	size_t	 state[MAILBOX_STATE_MAX];
	size_t	 mode[MAILBOX_MODE_MAX];
	size_t	 presence[PRESENCE_STATE_MAX];
	size_t	 auth;		/* mailboxes whose last error was a 401 */
	size_t	 total;
	size_t	 open;		/* streaming connections open */
};

static void
count_all(struct manager *m, struct counts *c)
{
	size_t		 i;
	struct mailbox	*mb;

	memset(c, 0, sizeof *c);
	for (i = 0; i < m->nall; i++) {
		mb = m->all[i];
		if (mb->removed)
			continue;
		c->total++;
		c->state[mb->state]++;
		c->mode[mb->mode]++;
		c->presence[mb->has_presence ? mb->pres.state :
		    PRESENCE_UNKNOWN]++;
		if (strcmp(mb->error_code, "HTTP401") == 0 ||
		    strcmp(mb->error_code, "auth") == 0)
			c->auth++;
	}
	for (i = 0; i < m->ngroups; i++)
		if (m->groups[i]->state == GROUP_OPEN)
			c->open++;
}

/* The budgets in use against each limit, as ewsgwctl status shows them. */
static void
budget_json(struct manager *m, const struct counts *c, struct json_writer *w)
{
	struct throttle_stats	 ts;

	throttle_stats(ews_ctx_throttle(m->ews), time_mono_ms(), &ts);
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
	json_obj_end(w);
	json_kv_time(w, "backoff_until", ts.backoff_until == 0 ? 0 :
	    time_wall_ms() / 1000 + (ts.backoff_until - time_mono_ms()) / 1000);
	json_obj_end(w);
}

int
manager_status_json(struct manager *m, struct json_writer *w)
{
	struct counts	 c;
	int		 i, healthy = 1;
	char		 msg[128];

	count_all(m, &c);
	json_key(w, "mailboxes");
	json_obj_begin(w);
	json_kv_int(w, "total", (int64_t)c.total);
	json_key(w, "by_state");
	json_obj_begin(w);
	for (i = 0; i < MAILBOX_STATE_MAX; i++)
		if (c.state[i] > 0)
			json_kv_int(w, mailbox_state_name(i),
			    (int64_t)c.state[i]);
	json_obj_end(w);
	json_key(w, "by_mode");
	json_obj_begin(w);
	for (i = 0; i < MAILBOX_MODE_MAX; i++)
		if (c.mode[i] > 0)
			json_kv_int(w, mailbox_mode_name(i), (int64_t)c.mode[i]);
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
	ews_ctx_budget_json(m->ews, w);

	json_kv_int(w, "publications", (int64_t)m->published);
	json_kv_int(w, "notifications", (int64_t)m->notifications);
	json_kv_int(w, "resubscribes", (int64_t)m->resubscribes);
	json_key(w, "problems");
	json_arr_begin(w);
	if (c.auth > 0 || ews_ctx_auth_failing(m->ews)) {
		snprintf(msg, sizeof msg, "authentication failing: Exchange "
		    "refuses the service account's credentials (check the "
		    "password)");
		json_str(w, msg);
		healthy = 0;
	}
	if (c.state[MAILBOX_PARKED] > 0) {
		snprintf(msg, sizeof msg, "%zu mailboxes parked: Exchange "
		    "refuses them (see ewsgwctl mailboxes)",
		    c.state[MAILBOX_PARKED]);
		json_str(w, msg);
	}
	if (c.state[MAILBOX_BACKOFF] > c.total / 2 && c.total > 0) {
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
	for (i = 0; i < m->nall; i++)
		if (!m->all[i]->removed)
			mailbox_json(m->all[i], w, false);
	json_arr_end(w);
}

/* A configured mailbox by address, any case; NULL if unknown or removed. */
static struct mailbox *
find_mailbox(struct manager *m, const char *addr)
{
	struct mailbox	*mb;
	char		*lower, *p;

	lower = xstrdup(addr);
	for (p = lower; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	mb = hashmap_get(m->by_address, lower);
	free(lower);
	return (mb != NULL && !mb->removed ? mb : NULL);
}

int
manager_mailbox_json(struct manager *m, const char *addr,
    struct json_writer *w)
{
	struct mailbox	*mb;

	if ((mb = find_mailbox(m, addr)) == NULL)
		return (-1);
	json_key(w, "mailbox");
	mailbox_json(mb, w, true);
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

int
manager_resync(struct manager *m, const char *addr, char **cause)
{
	struct mailbox	*mb;

	if ((mb = find_mailbox(m, addr)) == NULL) {
		xasprintf(cause, "unknown mailbox %s", addr);
		return (-1);
	}
	mailbox_resync(mb, "resync");
	return (0);
}

void
manager_metrics(struct manager *m, struct buf *b)
{
	struct counts	 c;
	int		 i;

	count_all(m, &c);
	buf_puts(b, "# HELP ewsgw_mailboxes Mailboxes by state.\n"
	    "# TYPE ewsgw_mailboxes gauge\n");
	for (i = 0; i < MAILBOX_STATE_MAX; i++)
		buf_printf(b, "ewsgw_mailboxes{state=\"%s\"} %zu\n",
		    mailbox_state_name(i), c.state[i]);
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
	    (unsigned long long)m->notifications);
	buf_printf(b, "# HELP ewsgw_resubscribes_total Subscriptions lost "
	    "and made again.\n# TYPE ewsgw_resubscribes_total counter\n"
	    "ewsgw_resubscribes_total %llu\n",
	    (unsigned long long)m->resubscribes);
	ews_ctx_metrics(m->ews, b);
}

void
manager_summary(struct manager *m, char *out, size_t len)
{
	struct counts	 c;

	count_all(m, &c);
	snprintf(out, len, "%zu/%zu mailboxes streaming, %zu push, %zu "
	    "polling, %zu backing off, %zu parked; %zu connections%s",
	    c.state[MAILBOX_STREAMING], c.total, c.state[MAILBOX_PUSH],
	    c.state[MAILBOX_POLLING], c.state[MAILBOX_BACKOFF],
	    c.state[MAILBOX_PARKED], c.open,
	    c.auth > 0 || ews_ctx_auth_failing(m->ews) ?
	    "; AUTHENTICATION FAILING" : "");
}
