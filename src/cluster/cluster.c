/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Cluster membership on etcd: lease, member key, member view, budget
 * records and fencing; see cluster.h for the contract.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/siphash.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "cluster/budget.h"
#include "cluster/cluster.h"
#include "cluster/etcd.h"
#include "cluster/etcd_msg.h"
#include "cluster/groupmap.h"
#include "cluster/groups.h"

#define RECORD_VERSION		1
#define RECORD_MAX		4096	/* bytes of a member's value */
#define MARGIN_MIN_MS		500
#define RETRY_MIN_MS		200
#define CALL_TIMEOUT_MAX_MS	5000

struct member {
	char			*name;
	int64_t			 lease;
	struct budget_peer	 peer;
};

struct cluster {
	struct event_base	*base;		/* borrowed */
	struct etcd		*etcd;
	struct cluster_cbs	 cbs;
	void			*arg;		/* borrowed */
	char			*name;
	char			*node;
	char			*prefix;	/* /ewsgw/NAME/members/ */
	char			*prefix_end;
	char			*key;		/* prefix + node */
	int64_t			 ttl_cfg_ms;
	int64_t			 margin_cfg_ms;
	struct budget		 total;
	bool			 split[BUDGET_RES_MAX];

	enum cluster_state	 state;
	char			*fence_why;	/* for the FENCED entry */

	/* Lease. */
	int64_t			 lease_id;	/* 0: none */
	int64_t			 old_lease;	/* before the last fence */
	int64_t			 ttl_ms;	/* as granted */
	int64_t			 margin_ms;
	int64_t			 last_ok_ms;	/* sent, answered */
	int64_t			 deadline_ms;
	struct etcd_call	*lease_call;	/* grant or revoke */
	struct etcd_call	*ka_call;
	int64_t			 ka_sent_ms;
	bool			 ka_failing;	/* logged once per streak */
	struct event		 ev_keepalive;
	struct event		 ev_deadline;
	struct event		 ev_retry;	/* per-state retry */

	struct etcd_call	*reg_call;
	bool			 name_busy;	/* logged once */

	/* The member view: one snapshot of the prefix. */
	struct member		*members;
	const char		**names;	/* into members, for views */
	size_t			 n;
	size_t			 self;
	uint64_t		 names_epoch;	/* of the member list alone */
	uint64_t		 epoch;		/* 0: no view */
	int64_t			 rev;
	struct etcd_call	*range_call;
	bool			 range_again;
	struct etcd_watch	*watch;
	struct event		 ev_watch_retry;
	struct event		 ev_audit;
	struct groups		*groups;	/* NULL: by address only */

	/* Budget. */
	struct budget		 applied;
	uint64_t		 released;
	struct budget		 limits;	/* last sent to the owner */
	bool			 limits_sent;
	bool			 may_acquire;	/* last reported */
	struct budget_plan	 plan;		/* last computed */
	uint64_t		*weights;
	size_t			 nweights;
	uint64_t		 weights_epoch;
	struct etcd_call	*write_call;
	struct budget		 writing;	/* record being written */
	uint64_t		 writing_epoch;
	struct event		 ev_plan;

	void			(*leave_done)(void *);
	void			*leave_arg;

	struct {
		uint64_t	 keepalives;
		uint64_t	 keepalive_failures;
		uint64_t	 fences;
		uint64_t	 views;
		uint64_t	 writes;
		uint64_t	 conflicts;
		uint64_t	 watch_ranges;	/* reads asked by the watch */
		int64_t		 rebalanced_wall_ms;
		char		*last_fence;
	} stats;
};

static const char *const cluster_state_names[CLUSTER_STATE_MAX] = {
	"idle", "granting", "registering", "member", "fenced", "leaving",
	"left"
};

static void	 set_state(struct cluster *, enum cluster_state);
static void	 fence(struct cluster *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 arm(struct event *, int64_t);
static int64_t	 call_timeout(const struct cluster *);
static int64_t	 retry_ms(const struct cluster *);
static void	 stop_member_work(struct cluster *);
static void	 stop_lease_work(struct cluster *);
static void	 view_clear(struct cluster *);
static void	 send_grant(struct cluster *);
static void	 grant_done(const struct etcd_result *, void *);
static void	 send_keepalive(struct cluster *);
static void	 keepalive_done(const struct etcd_result *, void *);
static void	 lease_trace(struct cluster *, enum cluster_lease_event,
		    int64_t, const char *);
static void	 record_value(const struct budget *, uint64_t, struct buf *);
static int	 record_parse(const char *, size_t, struct budget_peer *);
static void	 send_register(struct cluster *, bool);
static void	 register_done(const struct etcd_result *, void *);
static void	 request_range(struct cluster *);
static void	 range_done(const struct etcd_result *, void *);
static void	 adopt(struct cluster *, const struct etcd_kv *, size_t,
		    int64_t);
static void	 start_watch(struct cluster *);
static void	 watch_cb(const struct etcd_resp *, const char *, void *);
static void	 report_view(struct cluster *);
static void	 plan(struct cluster *);
static void	 plan_soon(struct cluster *);
static void	 write_done(const struct etcd_result *, void *);
static void	 on_retry(evutil_socket_t, short, void *);
static void	 on_keepalive(evutil_socket_t, short, void *);
static void	 on_deadline(evutil_socket_t, short, void *);
static void	 on_audit(evutil_socket_t, short, void *);
static void	 on_watch_retry(evutil_socket_t, short, void *);
static void	 on_plan(evutil_socket_t, short, void *);
static int	 member_cmp(const void *, const void *);
static uint64_t	 view_epoch(const struct cluster *);
static void	 new_epoch(struct cluster *, uint64_t);
static void	 groups_changed(void *);

/* Whether s is a valid cluster or node name. */
static bool
cluster_name_valid(const char *s)
{
	size_t	 i;

	for (i = 0; s[i] != '\0'; i++)
		if (!isalnum((unsigned char)s[i]) &&
		    strchr("._-", s[i]) == NULL)
			return (false);
	return (i > 0 && i <= CLUSTER_NAME_MAX);
}

const char *
cluster_state_name(enum cluster_state s)
{
	if ((unsigned)s >= CLUSTER_STATE_MAX)
		return ("unknown");
	return (cluster_state_names[s]);
}

struct cluster *
cluster_new(struct event_base *base, const struct cluster_opts *o,
    const struct cluster_cbs *cbs, void *arg, char **cause)
{
	struct cluster	*c;

	if (!cluster_name_valid(o->cluster) || !cluster_name_valid(o->node)) {
		xasprintf(cause, "invalid cluster or node name (letters, "
		    "digits, '.', '_' and '-', at most %d)",
		    CLUSTER_NAME_MAX);
		return (NULL);
	}
	if (o->ttl_ms < 2000) {
		*cause = xstrdup("lease TTL below 2 s");
		return (NULL);
	}
	c = xcalloc(1, sizeof *c);
	if ((c->etcd = etcd_new(base, &o->etcd, cause)) == NULL) {
		free(c);
		return (NULL);
	}
	c->base = base;
	c->cbs = *cbs;
	c->arg = arg;
	c->name = xstrdup(o->cluster);
	c->node = xstrdup(o->node);
	xasprintf(&c->prefix, "/ewsgw/%s/members/", c->name);
	c->prefix_end = etcd_prefix_end(c->prefix);
	xasprintf(&c->key, "%s%s", c->prefix, c->node);
	c->ttl_cfg_ms = (o->ttl_ms + 999) / 1000 * 1000;
	c->margin_cfg_ms = o->margin_ms;
	c->total = o->total;
	memcpy(c->split, o->split, sizeof c->split);
	evtimer_assign(&c->ev_keepalive, base, on_keepalive, c);
	evtimer_assign(&c->ev_deadline, base, on_deadline, c);
	evtimer_assign(&c->ev_retry, base, on_retry, c);
	evtimer_assign(&c->ev_audit, base, on_audit, c);
	evtimer_assign(&c->ev_watch_retry, base, on_watch_retry, c);
	evtimer_assign(&c->ev_plan, base, on_plan, c);
	if (o->groups)
		c->groups = groups_new(base, c->etcd, c->name,
		    groups_changed, c);
	return (c);
}

void
cluster_free(struct cluster *c)
{
	if (c == NULL)
		return;
	stop_member_work(c);
	stop_lease_work(c);
	etcd_call_cancel(c->lease_call);
	event_del(&c->ev_retry);
	event_del(&c->ev_plan);
	view_clear(c);
	groups_free(c->groups);
	etcd_free(c->etcd);
	free(c->weights);
	free(c->fence_why);
	free(c->stats.last_fence);
	free(c->name);
	free(c->node);
	free(c->prefix);
	free(c->prefix_end);
	free(c->key);
	free(c);
}

void
cluster_start(struct cluster *c)
{
	if (c->state == CLUSTER_IDLE)
		set_state(c, CLUSTER_GRANTING);
}

void
cluster_leave(struct cluster *c, void (*done)(void *), void *arg)
{
	c->leave_done = done;
	c->leave_arg = arg;
	set_state(c, CLUSTER_LEAVING);
}

/* ---- helpers ---- */

static void
arm(struct event *ev, int64_t ms)
{
	struct timeval	 tv;

	evtimer_add(ev, time_ms_tv(&tv, ms));
}

/* One try of a call: a keepalive must not outlive the next one. */
static int64_t
call_timeout(const struct cluster *c)
{
	int64_t	 t = (c->ttl_ms > 0 ? c->ttl_ms : c->ttl_cfg_ms) / 6;

	if (t < 500)
		t = 500;
	return (t > CALL_TIMEOUT_MAX_MS ? CALL_TIMEOUT_MAX_MS : t);
}

static int64_t
retry_ms(const struct cluster *c)
{
	int64_t	 t = (c->ttl_ms > 0 ? c->ttl_ms : c->ttl_cfg_ms) / 10;

	return (t < RETRY_MIN_MS ? RETRY_MIN_MS : t);
}

static void
stop_member_work(struct cluster *c)
{
	etcd_call_cancel(c->reg_call);
	c->reg_call = NULL;
	etcd_call_cancel(c->range_call);
	c->range_call = NULL;
	c->range_again = false;
	etcd_call_cancel(c->write_call);
	c->write_call = NULL;
	etcd_watch_cancel(c->watch);
	c->watch = NULL;
	event_del(&c->ev_audit);
	event_del(&c->ev_watch_retry);
	if (c->groups != NULL)
		groups_stop(c->groups);
}

static void
stop_lease_work(struct cluster *c)
{
	etcd_call_cancel(c->ka_call);
	c->ka_call = NULL;
	event_del(&c->ev_keepalive);
	event_del(&c->ev_deadline);
}

static void
view_clear(struct cluster *c)
{
	size_t	 i;

	for (i = 0; i < c->n; i++)
		free(c->members[i].name);
	free(c->members);
	free(c->names);
	c->members = NULL;
	c->names = NULL;
	c->n = 0;
	c->epoch = 0;
	c->rev = 0;
}

/* ---- states ---- */

static void
set_state(struct cluster *c, enum cluster_state new)
{
	enum cluster_state	 old = c->state;
	int64_t			 until;
	char			*why;

	if (old != new)
		log_debug("cluster: %s -> %s", cluster_state_name(old),
		    cluster_state_name(new));
	c->state = new;
	switch (new) {
	case CLUSTER_IDLE:
	case CLUSTER_STATE_MAX:
		break;
	case CLUSTER_GRANTING:
		stop_member_work(c);
		stop_lease_work(c);
		etcd_call_cancel(c->lease_call);
		c->lease_call = NULL;
		if (c->lease_id != 0)
			c->old_lease = c->lease_id;
		c->lease_id = 0;
		c->ttl_ms = 0;
		send_grant(c);
		break;
	case CLUSTER_REGISTERING:
		c->name_busy = false;
		send_register(c, false);
		break;
	case CLUSTER_MEMBER:
		c->old_lease = 0;
		log_notice("cluster %s: node %s registered (lease %" PRIx64
		    ", TTL %llds)", c->name, c->node, (uint64_t)c->lease_id,
		    (long long)(c->ttl_ms / 1000));
		request_range(c);
		if (c->groups != NULL)
			groups_start(c->groups, call_timeout(c),
			    retry_ms(c));
		arm(&c->ev_audit, c->ttl_ms);
		break;
	case CLUSTER_FENCED:
		stop_member_work(c);
		stop_lease_work(c);
		until = c->last_ok_ms + c->ttl_ms;
		why = c->fence_why;
		c->fence_why = NULL;
		view_clear(c);
		memset(&c->applied, 0, sizeof c->applied);
		c->released = 0;
		c->limits_sent = false;
		c->may_acquire = false;
		if (c->lease_id != 0)
			c->old_lease = c->lease_id;
		c->lease_id = 0;
		/* Start again after a pause, so a refusal cannot spin. */
		arm(&c->ev_retry, retry_ms(c));
		if (old != CLUSTER_MEMBER) {
			/* Nothing was held yet: no fence to report. */
			log_info("cluster %s: %s; starting again", c->name,
			    why != NULL ? why : "?");
			free(why);
			break;
		}
		c->stats.fences++;
		free(c->stats.last_fence);
		c->stats.last_fence = xstrdup(why != NULL ? why : "?");
		free(why);
		log_warnx("cluster %s: node %s fenced: %s", c->name, c->node,
		    c->stats.last_fence);
		if (c->cbs.fenced != NULL)
			c->cbs.fenced(c->stats.last_fence, until, c->arg);
		break;
	case CLUSTER_LEAVING:
		stop_member_work(c);
		stop_lease_work(c);
		etcd_call_cancel(c->lease_call);
		c->lease_call = NULL;
		event_del(&c->ev_retry);
		view_clear(c);
		if (c->lease_id == 0) {
			set_state(c, CLUSTER_LEFT);
			break;
		}
		{
			struct buf	 b = BUF_INIT;

			etcd_msg_lease_id(&b, c->lease_id);
			c->lease_call = etcd_call_start(c->etcd,
			    "/v3/lease/revoke", &b, call_timeout(c),
			    grant_done, c);
			buf_free(&b);
		}
		break;
	case CLUSTER_LEFT:
		c->lease_id = 0;
		log_notice("cluster %s: node %s left", c->name, c->node);
		/* done runs from the loop, not from inside cluster_leave. */
		event_active(&c->ev_retry, EV_TIMEOUT, 1);
		break;
	}
}

static void
fence(struct cluster *c, const char *fmt, ...)
{
	va_list	 ap;

	free(c->fence_why);
	va_start(ap, fmt);
	xvasprintf(&c->fence_why, fmt, ap);
	va_end(ap);
	if (c->state != CLUSTER_GRANTING && c->state != CLUSTER_REGISTERING &&
	    c->state != CLUSTER_MEMBER) {
		free(c->fence_why);
		c->fence_why = NULL;
		return;
	}
	set_state(c, CLUSTER_FENCED);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct cluster	*c = arg;

	switch (c->state) {
	case CLUSTER_GRANTING:
	case CLUSTER_FENCED:
		set_state(c, CLUSTER_GRANTING);
		break;
	case CLUSTER_REGISTERING:
		send_register(c, false);
		break;
	case CLUSTER_LEFT:
		if (c->leave_done != NULL)
			c->leave_done(c->leave_arg);
		break;
	default:
		break;
	}
	(void)fd;
	(void)what;
}

/* ---- lease ---- */

static void
send_grant(struct cluster *c)
{
	struct buf	 b = BUF_INIT;

	etcd_msg_lease_grant(&b, c->ttl_cfg_ms / 1000);
	c->ka_sent_ms = time_mono_ms();
	c->lease_call = etcd_call_start(c->etcd, "/v3/lease/grant", &b,
	    call_timeout(c), grant_done, c);
	buf_free(&b);
}

/* Grant, and revoke when leaving. */
static void
grant_done(const struct etcd_result *r, void *arg)
{
	struct cluster	*c = arg;

	c->lease_call = NULL;
	if (c->state == CLUSTER_LEAVING) {
		if (r->status != ETCD_OK)
			log_warnx("cluster %s: revoking the lease: %s (the "
			    "others take over when it expires)", c->name,
			    r->error);
		set_state(c, CLUSTER_LEFT);
		return;
	}
	if (r->status != ETCD_OK || r->resp->id == 0 || r->resp->ttl <= 0) {
		if (!c->ka_failing)
			log_warnx("cluster %s: no lease from etcd: %s",
			    c->name, r->status != ETCD_OK ? r->error :
			    "empty answer");
		c->ka_failing = true;
		arm(&c->ev_retry, retry_ms(c));
		return;
	}
	c->lease_id = r->resp->id;
	c->ttl_ms = r->resp->ttl * 1000;
	c->margin_ms = c->margin_cfg_ms > 0 ? c->margin_cfg_ms :
	    c->ttl_ms / 5;
	if (c->margin_ms < MARGIN_MIN_MS)
		c->margin_ms = MARGIN_MIN_MS;
	if (c->margin_ms > c->ttl_ms / 2)
		c->margin_ms = c->ttl_ms / 2;
	c->last_ok_ms = c->ka_sent_ms;
	c->deadline_ms = c->last_ok_ms + c->ttl_ms - c->margin_ms;
	if (c->ka_failing)
		log_notice("cluster %s: etcd answers again (%s)", c->name,
		    r->endpoint);
	c->ka_failing = false;
	arm(&c->ev_deadline, c->deadline_ms - time_mono_ms());
	arm(&c->ev_keepalive, c->ttl_ms / 3);
	lease_trace(c, CLUSTER_LEASE_GRANTED, c->ka_sent_ms, NULL);
	set_state(c, CLUSTER_REGISTERING);
}

static void
lease_trace(struct cluster *c, enum cluster_lease_event ev, int64_t sent,
    const char *error)
{
	struct cluster_lease_info	 li;

	if (c->cbs.lease == NULL)
		return;
	memset(&li, 0, sizeof li);
	li.event = ev;
	li.id = c->lease_id;
	li.ttl_ms = c->ttl_ms;
	li.sent_ms = sent;
	li.deadline_ms = c->deadline_ms;
	li.error = error;
	c->cbs.lease(&li, c->arg);
}

static void
on_keepalive(evutil_socket_t fd, short what, void *arg)
{
	send_keepalive(arg);
	(void)fd;
	(void)what;
}

static void
send_keepalive(struct cluster *c)
{
	struct buf	 b = BUF_INIT;

	if (c->ka_call != NULL || c->lease_id == 0)
		return;
	etcd_msg_lease_id(&b, c->lease_id);
	c->ka_sent_ms = time_mono_ms();
	c->ka_call = etcd_call_start(c->etcd, "/v3/lease/keepalive", &b,
	    call_timeout(c), keepalive_done, c);
	buf_free(&b);
}

static void
keepalive_done(const struct etcd_result *r, void *arg)
{
	struct cluster	*c = arg;
	int64_t		 now = time_mono_ms(), deadline;

	c->ka_call = NULL;
	if (r->status != ETCD_OK) {
		c->stats.keepalive_failures++;
		if (!c->ka_failing)
			log_warnx("cluster %s: lease keepalive failed: %s "
			    "(fencing in %lld ms unless etcd answers)",
			    c->name, r->error,
			    (long long)(c->deadline_ms - now));
		c->ka_failing = true;
		lease_trace(c, CLUSTER_LEASE_FAILED, c->ka_sent_ms, r->error);
		arm(&c->ev_keepalive, retry_ms(c));
		return;
	}
	if (r->resp->ttl <= 0) {
		fence(c, "lease %" PRIx64 " expired on the server",
		    (uint64_t)c->lease_id);
		return;
	}
	deadline = c->ka_sent_ms + c->ttl_ms - c->margin_ms;
	if (deadline <= now) {
		/* Answered too late to count: the deadline has passed. */
		fence(c, "keepalive answered after the fencing deadline");
		return;
	}
	if (c->ka_failing)
		log_notice("cluster %s: etcd answers again (%s)", c->name,
		    r->endpoint);
	c->ka_failing = false;
	c->stats.keepalives++;
	c->last_ok_ms = c->ka_sent_ms;
	c->deadline_ms = deadline;
	arm(&c->ev_deadline, deadline - now);
	arm(&c->ev_keepalive, c->ka_sent_ms + c->ttl_ms / 3 - now);
	lease_trace(c, CLUSTER_LEASE_KEPT, c->ka_sent_ms, NULL);
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct cluster	*c = arg;
	int64_t		 left = c->deadline_ms - time_mono_ms();

	/* libevent counts from its cached loop time: may be a bit early. */
	if (left > 0) {
		arm(&c->ev_deadline, left);
		return;
	}
	fence(c, "no keepalive answered for %lld ms (lease TTL %llds, "
	    "margin %lld ms)", (long long)(time_mono_ms() - c->last_ok_ms),
	    (long long)(c->ttl_ms / 1000), (long long)c->margin_ms);
	(void)fd;
	(void)what;
}

/* ---- registration ---- */

static void
record_value(const struct budget *b, uint64_t epoch, struct buf *out)
{
	struct json_writer	 w;
	char			 hex[17];

	snprintf(hex, sizeof hex, "%016" PRIx64, epoch);
	json_writer_init(&w, out);
	json_obj_begin(&w);
	json_kv_int(&w, "v", RECORD_VERSION);
	json_kv_str(&w, "epoch", hex);
	budget_json(b, &w);
	json_obj_end(&w);
}

/* 0 and p->valid set, or -1 (p->valid false): counts as "everything". */
static int
record_parse(const char *s, size_t len, struct budget_peer *p)
{
	struct json_value	*v;
	const char		*hex;
	char			*cause = NULL, *ep;
	double			 d;
	int			 x, rc = -1;

	memset(p, 0, sizeof *p);
	if (len > RECORD_MAX || (v = json_parse(s, len, &cause)) == NULL) {
		free(cause);
		return (-1);
	}
	if (v->type != JSON_OBJECT ||
	    json_get_num(v, "v", 0) != RECORD_VERSION)
		goto out;
	hex = json_get_str(v, "epoch", "");
	if (strlen(hex) != 16 || strspn(hex, "0123456789abcdef") != 16)
		goto out;
	errno = 0;
	p->epoch = strtoull(hex, &ep, 16);
	if (errno != 0 || *ep != '\0')
		goto out;
	for (x = 0; x < BUDGET_RES_MAX; x++) {
		d = json_get_num(v, budget_res_name(x), -1);
		if (d < 0 || d > UINT32_MAX || d != (double)(unsigned)d)
			goto out;
		p->record.v[x] = (unsigned)d;
	}
	p->valid = true;
	rc = 0;
out:
	json_free(v);
	return (rc);
}

/*
 * Put the member key: create it, or (reclaim) take it over from our
 * previous lease.  Either way the other branch reads the key.
 */
static void
send_register(struct cluster *c, bool reclaim)
{
	struct etcd_cmp	 cmp;
	struct buf	 b = BUF_INIT, v = BUF_INIT;
	struct budget	 zero;

	memset(&zero, 0, sizeof zero);
	memset(&cmp, 0, sizeof cmp);
	cmp.key = c->key;
	cmp.result = ETCD_CMP_EQUAL;
	if (reclaim) {
		cmp.target = ETCD_CMP_LEASE;
		cmp.value = c->old_lease;
	} else {
		cmp.target = ETCD_CMP_CREATE;
		cmp.value = 0;
	}
	record_value(&zero, 0, &v);
	etcd_msg_txn_put(&b, &cmp, c->key, buf_str(&v), c->lease_id, c->key,
	    NULL);
	etcd_call_cancel(c->reg_call);
	c->reg_call = etcd_call_start(c->etcd, "/v3/kv/txn", &b,
	    call_timeout(c), register_done, c);
	buf_free(&b);
	buf_free(&v);
}

static void
register_done(const struct etcd_result *r, void *arg)
{
	struct cluster		*c = arg;
	const struct etcd_kv	*kv;

	c->reg_call = NULL;
	if (r->status == ETCD_ERROR) {
		/* Most likely "requested lease not found". */
		fence(c, "registering: %s", r->error);
		return;
	}
	if (r->status != ETCD_OK) {
		log_warnx("cluster %s: registering: %s", c->name, r->error);
		arm(&c->ev_retry, retry_ms(c));
		return;
	}
	if (r->resp->succeeded) {
		set_state(c, CLUSTER_MEMBER);
		return;
	}
	kv = r->resp->nkvs > 0 ? &r->resp->kvs[0] : NULL;
	if (kv == NULL) {
		/* Gone between the compare and now: create it. */
		send_register(c, false);
		return;
	}
	if (kv->lease == c->lease_id) {
		/* An earlier try went through, its answer was lost. */
		set_state(c, CLUSTER_MEMBER);
		return;
	}
	if (c->old_lease != 0 && kv->lease == c->old_lease) {
		send_register(c, true);
		return;
	}
	if (!c->name_busy)
		log_warnx("cluster %s: node name %s is held by lease %" PRIx64
		    " (another process, or this node before a restart); "
		    "waiting until it expires", c->name, c->node,
		    (uint64_t)kv->lease);
	c->name_busy = true;
	arm(&c->ev_retry, c->ttl_ms / 3);
}

/* ---- the member view ---- */

static void
request_range(struct cluster *c)
{
	struct buf	 b = BUF_INIT;

	if (c->range_call != NULL) {
		c->range_again = true;
		return;
	}
	etcd_msg_range(&b, c->prefix, c->prefix_end, 0);
	c->range_call = etcd_call_start(c->etcd, "/v3/kv/range", &b,
	    call_timeout(c), range_done, c);
	buf_free(&b);
}

static void
range_done(const struct etcd_result *r, void *arg)
{
	struct cluster	*c = arg;

	c->range_call = NULL;
	if (r->status != ETCD_OK) {
		log_info("cluster %s: reading the members: %s", c->name,
		    r->error);
		if (c->epoch == 0)
			arm(&c->ev_watch_retry, retry_ms(c));
		return;
	}
	adopt(c, r->resp->kvs, r->resp->nkvs, r->resp->revision);
	if (c->state != CLUSTER_MEMBER)
		return;
	if (c->watch == NULL && !evtimer_pending(&c->ev_watch_retry, NULL))
		start_watch(c);
	if (c->range_again) {
		c->range_again = false;
		request_range(c);
	}
}

static int
member_cmp(const void *a, const void *b)
{
	return (strcmp(((const struct member *)a)->name,
	    ((const struct member *)b)->name));
}

/* Make a snapshot of the prefix at revision rev the view. */
static void
adopt(struct cluster *c, const struct etcd_kv *kvs, size_t nkvs, int64_t rev)
{
	struct member	*m;
	struct siphash	 h;
	static const uint8_t epoch_key[SIPHASH_KEY_LEN] = {
		'e', 'w', 's', 'g', 'w', '-', 'm', 'e',
		'm', 'b', 'e', 'r', 's', '-', 'v', '1'
	};
	size_t		 plen = strlen(c->prefix), i, n = 0, self = SIZE_MAX;
	uint64_t	 epoch;
	const char	*name;
	struct buf	 list = BUF_INIT;

	if (c->state != CLUSTER_MEMBER || (c->epoch != 0 && rev < c->rev))
		return;		/* an older snapshot than ours */
	m = xcalloc(nkvs + 1, sizeof *m);
	for (i = 0; i < nkvs; i++) {
		if (kvs[i].keylen <= plen ||
		    memcmp(kvs[i].key, c->prefix, plen) != 0)
			continue;
		name = kvs[i].key + plen;
		if (strlen(name) != kvs[i].keylen - plen ||
		    !cluster_name_valid(name)) {
			log_warnx("cluster %s: ignoring key %s%.*s: not a "
			    "node name", c->name, c->prefix,
			    (int)(kvs[i].keylen - plen > 64 ? 64 :
			    kvs[i].keylen - plen), name);
			continue;
		}
		m[n].name = xstrdup(name);
		m[n].lease = kvs[i].lease;
		if (record_parse(kvs[i].value, kvs[i].valuelen,
		    &m[n].peer) == -1)
			log_warnx("cluster %s: member %s has a record this "
			    "version cannot read: counting it as using the "
			    "whole budget", c->name, name);
		n++;
	}
	qsort(m, n, sizeof *m, member_cmp);
	siphash_init(&h, epoch_key);
	for (i = 0; i < n; i++) {
		siphash_update(&h, m[i].name, strlen(m[i].name) + 1);
		if (strcmp(m[i].name, c->node) == 0)
			self = i;
		buf_printf(&list, "%s%s", i > 0 ? ", " : "", m[i].name);
	}
	epoch = siphash_final(&h);
	if (self == SIZE_MAX || m[self].lease != c->lease_id) {
		for (i = 0; i < n; i++)
			free(m[i].name);
		free(m);
		buf_free(&list);
		fence(c, self == SIZE_MAX ? "the member key is gone" :
		    "the member key is bound to another lease");
		return;
	}

	for (i = 0; i < c->n; i++)
		free(c->members[i].name);
	free(c->members);
	free(c->names);
	c->members = m;
	c->n = n;
	c->self = self;
	c->names = xcalloc(n, sizeof *c->names);
	for (i = 0; i < n; i++)
		c->names[i] = m[i].name;
	c->rev = rev;
	c->names_epoch = epoch;
	epoch = view_epoch(c);
	if (epoch != c->epoch) {
		log_notice("cluster %s: %zu member%s: %s (epoch %016" PRIx64
		    ", revision %lld)", c->name, n, n == 1 ? "" : "s",
		    buf_str(&list), epoch, (long long)rev);
		new_epoch(c, epoch);
	}
	buf_free(&list);
	plan(c);
}

/*
 * The epoch of the view: the member list and, once any mailbox has a
 * group key, the group map's digest.  Two nodes with the same epoch
 * place every mailbox alike, so a record showing the epoch says its
 * node has released what it does not own under this very placement.
 */
static uint64_t
view_epoch(const struct cluster *c)
{
	static const uint8_t groups_key[SIPHASH_KEY_LEN] = {
		'e', 'w', 's', 'g', 'w', '-', 'g', 'r',
		'o', 'u', 'p', 'e', 'p', 'o', 'c', 'h'
	};
	uint64_t	 d, e = c->names_epoch;
	uint8_t		 in[16];
	size_t		 i;

	d = c->groups != NULL ? groupmap_digest(groups_map(c->groups)) : 0;
	if (d != 0) {
		for (i = 0; i < 8; i++) {
			in[i] = (uint8_t)(e >> (8 * i));
			in[8 + i] = (uint8_t)(d >> (8 * i));
		}
		e = siphash24(groups_key, in, sizeof in);
	}
	return (e != 0 ? e : 1);
}

/* A new placement: nothing is acquired until every record shows it. */
static void
new_epoch(struct cluster *c, uint64_t epoch)
{
	c->epoch = epoch;
	c->stats.views++;
	c->stats.rebalanced_wall_ms = time_wall_ms();
	c->may_acquire = false;
	report_view(c);
}

/* The group map changed: a new placement if it changes the epoch. */
static void
groups_changed(void *arg)
{
	struct cluster	*c = arg;
	uint64_t	 epoch;

	if (c->state != CLUSTER_MEMBER || c->epoch == 0)
		return;
	if ((epoch = view_epoch(c)) == c->epoch)
		return;
	log_notice("cluster %s: group map changed (epoch %016" PRIx64 ")",
	    c->name, epoch);
	new_epoch(c, epoch);
	if (c->state == CLUSTER_MEMBER)
		plan(c);
}

const struct groupmap *
cluster_groups(const struct cluster *c)
{
	return (c->groups != NULL ? groups_map(c->groups) : NULL);
}

void
cluster_group_learnt(struct cluster *c, const char *address,
    const char *key)
{
	if (c->groups != NULL)
		groups_learnt(c->groups, address, key);
}

static void
start_watch(struct cluster *c)
{
	struct buf	 b = BUF_INIT;

	etcd_msg_watch(&b, c->prefix, c->prefix_end, c->rev + 1);
	c->watch = etcd_watch_start(c->etcd, &b, watch_cb, c);
	buf_free(&b);
}

/* Inside curl: decide only; requests start from the loop. */
static void
watch_cb(const struct etcd_resp *r, const char *why, void *arg)
{
	struct cluster	*c = arg;
	size_t		 i;

	if (r == NULL || r->error || r->canceled) {
		if (r == NULL)
			c->watch = NULL;
		else {
			etcd_watch_cancel(c->watch);
			c->watch = NULL;
		}
		log_info("cluster %s: member watch ended: %s", c->name,
		    r == NULL ? why : r->error ? r->message :
		    "cancelled by etcd (history compacted)");
		if (c->state == CLUSTER_MEMBER)
			arm(&c->ev_watch_retry, retry_ms(c));
		return;
	}
	for (i = 0; i < r->nevents; i++) {
		if (r->events[i].kv.mod_revision > c->rev) {
			c->stats.watch_ranges++;
			request_range(c);
			break;
		}
	}
}

static void
on_watch_retry(evutil_socket_t fd, short what, void *arg)
{
	struct cluster	*c = arg;

	/* A fresh snapshot first; the watch follows from its revision. */
	if (c->state == CLUSTER_MEMBER)
		request_range(c);
	(void)fd;
	(void)what;
}

static void
on_audit(evutil_socket_t fd, short what, void *arg)
{
	struct cluster	*c = arg;

	if (c->state == CLUSTER_MEMBER) {
		request_range(c);
		if (c->groups != NULL)
			groups_audit(c->groups);
		arm(&c->ev_audit, c->ttl_ms);
	}
	(void)fd;
	(void)what;
}

static void
report_view(struct cluster *c)
{
	struct cluster_view	 v;

	if (c->cbs.view == NULL || c->epoch == 0)
		return;
	memset(&v, 0, sizeof v);
	v.epoch = c->epoch;
	v.members = c->names;
	v.n = c->n;
	v.self = c->self;
	v.revision = c->rev;
	v.may_acquire = c->may_acquire;
	c->cbs.view(&v, c->arg);
}

/* ---- budget ---- */

void
cluster_released(struct cluster *c, uint64_t epoch)
{
	if (c->state != CLUSTER_MEMBER || epoch != c->epoch ||
	    c->released == epoch)
		return;
	c->released = epoch;
	plan_soon(c);
}

void
cluster_limits_applied(struct cluster *c, const struct budget *b)
{
	if (c->state != CLUSTER_MEMBER)
		return;
	c->applied = *b;
	plan_soon(c);
}

void
cluster_set_weights(struct cluster *c, uint64_t epoch, const uint64_t *w,
    size_t n)
{
	free(c->weights);
	c->weights = xreallocarray(NULL, n > 0 ? n : 1, sizeof *c->weights);
	if (n > 0)
		memcpy(c->weights, w, n * sizeof *w);
	c->nweights = n;
	c->weights_epoch = epoch;
	plan_soon(c);
}

static void
plan_soon(struct cluster *c)
{
	event_active(&c->ev_plan, EV_TIMEOUT, 1);
}

static void
on_plan(evutil_socket_t fd, short what, void *arg)
{
	plan(arg);
	(void)fd;
	(void)what;
}

static void
plan(struct cluster *c)
{
	struct budget_input	 in;
	struct budget_peer	*peers;
	struct budget_plan	*p = &c->plan;
	struct etcd_cmp		 cmp;
	struct buf		 b = BUF_INIT, v = BUF_INIT;
	size_t			 i;

	if (c->state != CLUSTER_MEMBER || c->epoch == 0)
		return;
	peers = xcalloc(c->n, sizeof *peers);
	for (i = 0; i < c->n; i++)
		peers[i] = c->members[i].peer;
	memset(&in, 0, sizeof in);
	in.total = c->total;
	memcpy(in.split, c->split, sizeof in.split);
	if (c->weights_epoch == c->epoch && c->nweights == c->n)
		in.sub_weights = c->weights;
	in.peers = peers;
	in.n = c->n;
	in.self = c->self;
	in.epoch = c->epoch;
	in.released = c->released;
	in.applied = c->applied;
	budget_plan(&in, p);
	free(peers);

	if (!c->limits_sent || memcmp(&c->limits, &p->limits,
	    sizeof c->limits) != 0) {
		c->limits = p->limits;
		c->limits_sent = true;
		log_info("cluster %s: limits concurrency %u, subscriptions "
		    "%u, streams %u (share %u, %u, %u)", c->name,
		    p->limits.v[0], p->limits.v[1], p->limits.v[2],
		    p->share.v[0], p->share.v[1], p->share.v[2]);
		if (c->cbs.limits != NULL)
			c->cbs.limits(&p->limits, c->arg);
		if (c->state != CLUSTER_MEMBER)
			return;
	}
	if (p->may_acquire != c->may_acquire) {
		c->may_acquire = p->may_acquire;
		report_view(c);
		if (c->state != CLUSTER_MEMBER)
			return;
	}
	if (!p->write || c->write_call != NULL)
		return;
	/* Nothing under the prefix may have changed since our snapshot. */
	memset(&cmp, 0, sizeof cmp);
	cmp.target = ETCD_CMP_MOD;
	cmp.result = ETCD_CMP_LESS;
	cmp.key = c->prefix;
	cmp.range_end = c->prefix_end;
	cmp.value = c->rev + 1;
	c->writing = p->record;
	c->writing_epoch = p->record_epoch;
	record_value(&p->record, p->record_epoch, &v);
	etcd_msg_txn_put(&b, &cmp, c->key, buf_str(&v), c->lease_id,
	    c->prefix, c->prefix_end);
	c->write_call = etcd_call_start(c->etcd, "/v3/kv/txn", &b,
	    call_timeout(c), write_done, c);
	buf_free(&b);
	buf_free(&v);
}

static void
write_done(const struct etcd_result *r, void *arg)
{
	struct cluster		*c = arg;
	struct budget_peer	*me;

	c->write_call = NULL;
	if (r->status == ETCD_ERROR &&
	    r->resp->code == ETCD_CODE_NOT_FOUND) {
		fence(c, "writing the budget record: %s", r->error);
		return;
	}
	if (r->status != ETCD_OK) {
		log_info("cluster %s: writing the budget record: %s", c->name,
		    r->error);
		arm(&c->ev_plan, retry_ms(c));
		return;
	}
	if (!r->resp->succeeded) {
		/* Someone changed a record: the failure branch read them. */
		c->stats.conflicts++;
		adopt(c, r->resp->kvs, r->resp->nkvs, r->resp->revision);
		return;
	}
	c->stats.writes++;
	me = &c->members[c->self].peer;
	me->valid = true;
	me->record = c->writing;
	me->epoch = c->writing_epoch;
	/* Nothing else changed in between: the view is exact at r's. */
	c->rev = r->resp->revision;
	log_debug("cluster %s: record concurrency %u, subscriptions %u, "
	    "streams %u, epoch %016" PRIx64, c->name, me->record.v[0],
	    me->record.v[1], me->record.v[2], me->epoch);
	plan(c);
}

/* ---- status ---- */

const struct budget *
cluster_record(const struct cluster *c, const char *node)
{
	size_t	 i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->members[i].name, node) == 0)
			return (c->members[i].peer.valid ?
			    &c->members[i].peer.record : NULL);
	return (NULL);
}

void
cluster_status_json(const struct cluster *c, struct json_writer *w)
{
	const struct budget_plan	*p = &c->plan;
	int64_t				 now = time_mono_ms();
	char				 hex[17], iso[TIME_ISO8601_LEN];
	size_t				 i;

	json_obj_begin(w);
	json_kv_str(w, "cluster", c->name);
	json_kv_str(w, "node", c->node);
	json_kv_str(w, "state", cluster_state_name(c->state));
	json_kv_str(w, "endpoint", etcd_endpoint(c->etcd));
	json_key(w, "lease");
	json_obj_begin(w);
	snprintf(hex, sizeof hex, "%" PRIx64, (uint64_t)c->lease_id);
	json_kv_str(w, "id", hex);
	json_kv_int(w, "ttl_ms", c->ttl_ms);
	json_kv_int(w, "margin_ms", c->margin_ms);
	if (c->lease_id != 0) {
		json_kv_int(w, "last_keepalive_ms_ago", now - c->last_ok_ms);
		json_kv_int(w, "fence_in_ms", c->deadline_ms - now);
	}
	json_obj_end(w);
	json_kv_int(w, "revision", c->rev);
	snprintf(hex, sizeof hex, "%016" PRIx64, c->epoch);
	json_kv_str(w, "epoch", hex);
	json_kv_bool(w, "may_acquire", c->may_acquire);
	json_key(w, "members");
	json_arr_begin(w);
	for (i = 0; i < c->n; i++) {
		const struct budget_peer *pe = &c->members[i].peer;

		json_obj_begin(w);
		json_kv_str(w, "node", c->members[i].name);
		json_kv_bool(w, "self", i == c->self);
		json_kv_bool(w, "readable", pe->valid);
		snprintf(hex, sizeof hex, "%016" PRIx64, pe->epoch);
		json_kv_str(w, "epoch", hex);
		budget_json(&pe->record, w);
		json_obj_end(w);
	}
	json_arr_end(w);
	json_key(w, "share");
	json_obj_begin(w);
	budget_json(&p->share, w);
	json_obj_end(w);
	json_key(w, "limits");
	json_obj_begin(w);
	budget_json(&c->limits, w);
	json_obj_end(w);
	json_key(w, "applied");
	json_obj_begin(w);
	budget_json(&c->applied, w);
	json_obj_end(w);
	if (c->stats.rebalanced_wall_ms > 0) {
		time_format_iso8601(c->stats.rebalanced_wall_ms / 1000, iso);
		json_kv_str(w, "last_rebalance", iso);
	}
	json_kv_int(w, "keepalives", (int64_t)c->stats.keepalives);
	json_kv_int(w, "keepalive_failures",
	    (int64_t)c->stats.keepalive_failures);
	json_kv_int(w, "views", (int64_t)c->stats.views);
	json_kv_int(w, "record_writes", (int64_t)c->stats.writes);
	json_kv_int(w, "record_conflicts", (int64_t)c->stats.conflicts);
	json_kv_int(w, "watch_ranges", (int64_t)c->stats.watch_ranges);
	json_kv_int(w, "etcd_failovers",
	    (int64_t)etcd_stats(c->etcd)->failovers);
	json_kv_int(w, "fences", (int64_t)c->stats.fences);
	if (c->groups != NULL) {
		json_key(w, "group_map");
		groups_status_json(c->groups, w);
	}
	if (c->stats.last_fence != NULL)
		json_kv_str(w, "last_fence", c->stats.last_fence);
	json_obj_end(w);
}
