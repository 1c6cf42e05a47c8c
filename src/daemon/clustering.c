/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The daemon's side of cluster mode (clustering.h): membership views in,
 * owned sets out; budget limits in, shares out; fences forwarded.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/conf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "cluster/cluster.h"
#include "cluster/groupmap.h"
#include "cluster/hrw.h"
#include "daemon/clustering.h"
#include "subs/manager.h"

struct clustering {
	struct cluster		*c;
	struct manager		*m;		/* borrowed */
	const struct config	*conf;		/* borrowed, running */

	uint64_t		*key_hash;	/* per conf->mailboxes[i] */
	uint64_t		 hashed_epoch;	/* the group map it used */
	bool			*owned;		/* per conf->mailboxes[i] */

	/* The last view (names copied). */
	bool			 have_view;
	uint64_t		 epoch;
	char			**members;
	uint64_t		*member_hash;
	uint64_t		*counts;	/* mailboxes per member */
	size_t			 n, self;
	bool			 may_acquire;

	struct budget		 limits;	/* last limits given */
	void			(*left)(void *);
	void			*left_arg;
};

/* ---- placement ---- */

/*
 * The placement key of every mailbox: its group key in the view's group
 * map (shared by all nodes through etcd, so all place alike), cut into
 * group_slices parts, or its address when the map has none for it.
 */
static void
hash_mailboxes(struct clustering *cl)
{
	const struct config	*conf = cl->conf;
	size_t			 i, n = conf->nmailboxes;

	free(cl->key_hash);
	free(cl->owned);
	cl->key_hash = xreallocarray(NULL, n > 0 ? n : 1, sizeof *cl->key_hash);
	cl->owned = xcalloc(n > 0 ? n : 1, sizeof *cl->owned);
	for (i = 0; i < n; i++)
		cl->key_hash[i] = groupmap_place_hash(cluster_groups(cl->c),
		    conf->mailboxes[i].address, conf->cluster.group_slices);
	cl->hashed_epoch = cl->epoch;
}

static void
forget_view(struct clustering *cl)
{
	size_t	 i;

	for (i = 0; i < cl->n; i++)
		free(cl->members[i]);
	free(cl->members);
	free(cl->member_hash);
	free(cl->counts);
	cl->members = NULL;
	cl->member_hash = NULL;
	cl->counts = NULL;
	cl->n = 0;
	cl->have_view = false;
	cl->may_acquire = false;
}

/* Owners of every mailbox under the last view, to the manager. */
static void
place(struct clustering *cl)
{
	const struct config	*conf = cl->conf;
	size_t			 i, o;

	if (!cl->have_view)
		return;
	memset(cl->counts, 0, cl->n * sizeof *cl->counts);
	for (i = 0; i < conf->nmailboxes; i++) {
		o = hrw_owner((const char *const *)cl->members,
		    cl->member_hash, cl->n, cl->key_hash[i]);
		cl->counts[o]++;
		cl->owned[i] = o == cl->self;
	}
	/* Subscriptions are split by how many mailboxes each one owns. */
	cluster_set_weights(cl->c, cl->epoch, cl->counts, cl->n);
	manager_set_owned(cl->m, cl->owned, cl->may_acquire);
}

/* ---- what the membership says ---- */

static void
on_view(const struct cluster_view *v, void *arg)
{
	struct clustering	*cl = arg;
	size_t			 i;

	if (!cl->have_view || v->epoch != cl->epoch) {
		forget_view(cl);
		cl->members = xcalloc(v->n, sizeof *cl->members);
		cl->member_hash = xcalloc(v->n, sizeof *cl->member_hash);
		cl->counts = xcalloc(v->n, sizeof *cl->counts);
		for (i = 0; i < v->n; i++) {
			cl->members[i] = xstrdup(v->members[i]);
			cl->member_hash[i] = hrw_member_hash(v->members[i]);
		}
		cl->n = v->n;
		cl->have_view = true;
		log_info("cluster: %zu members, this node is %s", v->n,
		    v->members[v->self]);
	}
	cl->epoch = v->epoch;
	cl->self = v->self;
	cl->may_acquire = v->may_acquire;
	/* A new epoch may come with a new group map. */
	if (cl->hashed_epoch != cl->epoch)
		hash_mailboxes(cl);
	place(cl);
}

static void
on_limits(const struct budget *l, void *arg)
{
	struct clustering	*cl = arg;

	cl->limits = *l;
	manager_set_share(cl->m, l->v[BUDGET_CONCURRENCY],
	    l->v[BUDGET_SUBSCRIPTIONS]);
}

static void
on_fenced(const char *why, int64_t budget_until_ms, void *arg)
{
	struct clustering	*cl = arg;

	forget_view(cl);
	memset(&cl->limits, 0, sizeof cl->limits);
	manager_fence(cl->m, budget_until_ms);
}

/* ---- what the manager says ---- */

static void
on_released(void *arg)
{
	struct clustering	*cl = arg;

	if (cl->have_view)
		cluster_released(cl->c, cl->epoch);
}

static void
on_grouped(const char *address, const char *key, void *arg)
{
	struct clustering	*cl = arg;

	if (cl->conf->cluster.group_slices > 0)
		cluster_group_learnt(cl->c, address, key);
}

static void
on_applied(void *arg)
{
	struct clustering	*cl = arg;

	cluster_limits_applied(cl->c, &cl->limits);
}

/* ---- life cycle ---- */

struct clustering *
clustering_new(struct event_base *base, const struct config *conf,
    char **cause)
{
	struct clustering	*cl;
	struct cluster_opts	 o;
	struct cluster_cbs	 cbs;
	bool			 sa;

	cl = xcalloc(1, sizeof *cl);
	cl->conf = conf;
	sa = conf->throttling.charging == CONF_CHARGING_SERVICE_ACCOUNT;
	memset(&o, 0, sizeof o);
	o.etcd.endpoints = (const char *const *)conf->cluster.endpoint;
	o.etcd.nendpoints = conf->cluster.nendpoints;
	o.etcd.ca_file = conf->cluster.ca_file;
	o.etcd.client_cert = conf->cluster.client_cert;
	o.etcd.client_key = conf->cluster.client_key;
	o.cluster = conf->cluster.name;
	o.node = conf->cluster.node;
	o.ttl_ms = conf->cluster.lease_ttl_ms;
	/*
	 * Concurrency is the account's, so is the subscription count under
	 * service-account charging (else it is each mailbox's, and a
	 * mailbox has one owner).  Streams are charged to the concurrency
	 * under service-account charging and to the anchor mailbox (one
	 * owner) otherwise: never split on their own.
	 */
	o.total.v[BUDGET_CONCURRENCY] = conf->throttling.max_concurrency;
	o.total.v[BUDGET_SUBSCRIPTIONS] = conf->throttling.max_subscriptions;
	o.total.v[BUDGET_STREAMS] =
	    conf->throttling.streaming_connections_per_anchor;
	o.split[BUDGET_CONCURRENCY] = true;
	o.split[BUDGET_SUBSCRIPTIONS] = sa;
	o.split[BUDGET_STREAMS] = false;
	o.groups = conf->cluster.group_slices > 0;
	memset(&cbs, 0, sizeof cbs);
	cbs.view = on_view;
	cbs.limits = on_limits;
	cbs.fenced = on_fenced;
	if ((cl->c = cluster_new(base, &o, &cbs, cl, cause)) == NULL) {
		free(cl);
		return (NULL);
	}
	hash_mailboxes(cl);
	return (cl);
}

void
clustering_hooks(struct clustering *cl, struct manager_cluster_hooks *h)
{
	memset(h, 0, sizeof *h);
	h->released = on_released;
	h->applied = on_applied;
	h->grouped = on_grouped;
	h->arg = cl;
}

void
clustering_start(struct clustering *cl, struct manager *m)
{
	cl->m = m;
	cluster_start(cl->c);
}

void
clustering_reload(struct clustering *cl, const struct config *conf)
{
	cl->conf = conf;
	hash_mailboxes(cl);
	place(cl);
}

static void
left_cb(void *arg)
{
	struct clustering	*cl = arg;

	if (cl->left != NULL)
		cl->left(cl->left_arg);
}

void
clustering_leave(struct clustering *cl, void (*done)(void *), void *arg)
{
	cl->left = done;
	cl->left_arg = arg;
	cluster_leave(cl->c, left_cb, cl);
}

void
clustering_free(struct clustering *cl)
{
	if (cl == NULL)
		return;
	cluster_free(cl->c);
	forget_view(cl);
	free(cl->key_hash);
	free(cl->owned);
	free(cl);
}

void
clustering_status_json(struct clustering *cl, struct json_writer *w)
{
	const struct budget	*rec;
	size_t			 i;

	json_key(w, "cluster");
	cluster_status_json(cl->c, w);
	/* Who owns how many mailboxes, and may use how much. */
	json_key(w, "assignment");
	json_arr_begin(w);
	for (i = 0; i < cl->n; i++) {
		json_obj_begin(w);
		json_kv_str(w, "node", cl->members[i]);
		json_kv_bool(w, "self", i == cl->self);
		json_kv_int(w, "mailboxes", (int64_t)cl->counts[i]);
		if ((rec = cluster_record(cl->c, cl->members[i])) != NULL)
			budget_json(rec, w);
		json_obj_end(w);
	}
	json_arr_end(w);
	json_kv_int(w, "running", (int64_t)manager_running(cl->m));
}
