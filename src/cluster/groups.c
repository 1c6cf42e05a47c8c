/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The group map followed in etcd: paged reads at one revision, a watch
 * that asks for delta reads, batched writes; see groups.h.
 */
#include "config.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "base/buf.h"
#include "base/hashmap.h"
#include "base/json.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "cluster/etcd.h"
#include "cluster/etcd_msg.h"
#include "cluster/groupmap.h"
#include "cluster/groups.h"

struct groups {
	struct event_base	*base;		/* borrowed */
	struct etcd		*etcd;		/* borrowed */
	char			*name;		/* the cluster's */
	char			*prefix;	/* /ewsgw/NAME/groups/ */
	char			*prefix_end;
	void			(*changed)(void *);
	void			*arg;		/* borrowed */
	int64_t			 timeout_ms;
	int64_t			 retry_ms;
	bool			 running;

	struct groupmap		*map;		/* etcd's at rev */
	int64_t			 rev;		/* 0: never read */

	/* The read under way: pages staged, applied when complete. */
	struct etcd_call	*read_call;
	struct groupmap		*stage;
	bool			 read_full;
	int64_t			 read_rev;	/* its first page's */
	char			*read_next;	/* next page's first key */
	bool			 want_read;	/* asked while reading */
	bool			 want_full;
	struct event		 ev_read;
	struct etcd_watch	*watch;

	/* Learnt keys not written yet, and the write under way. */
	struct hashmap		*pending;	/* address -> key (owned) */
	struct etcd_call	*write_call;
	char			**waddr;	/* owned, nw each */
	char			**wkey;
	char			**wval;
	size_t			 nw;
	struct event		 ev_write;

	struct {
		uint64_t	 reads;
		uint64_t	 full_reads;
		uint64_t	 pages;
		uint64_t	 ignored;	/* keys that are no entry */
		uint64_t	 writes;
		uint64_t	 keys_written;
	} stats;
};

static void	 read_start(struct groups *);
static void	 send_page(struct groups *);
static void	 page_done(const struct etcd_result *, void *);
static void	 read_soon(struct groups *, int64_t);
static void	 watch_cb(const struct etcd_resp *, const char *, void *);
static void	 on_read(evutil_socket_t, short, void *);
static void	 on_write(evutil_socket_t, short, void *);
static void	 write_done(const struct etcd_result *, void *);
static void	 write_end(struct groups *, bool);
static void	 write_back(struct groups *);

static void
arm(struct event *ev, int64_t ms)
{
	struct timeval	 tv;

	evtimer_add(ev, time_ms_tv(&tv, ms));
}

struct groups *
groups_new(struct event_base *base, struct etcd *etcd, const char *cluster,
    void (*changed)(void *), void *arg)
{
	struct groups	*g;

	g = xcalloc(1, sizeof *g);
	g->base = base;
	g->etcd = etcd;
	g->name = xstrdup(cluster);
	xasprintf(&g->prefix, "/ewsgw/%s/groups/", cluster);
	g->prefix_end = etcd_prefix_end(g->prefix);
	g->changed = changed;
	g->arg = arg;
	g->map = groupmap_new();
	g->stage = groupmap_new();
	g->pending = hashmap_new();
	evtimer_assign(&g->ev_read, base, on_read, g);
	evtimer_assign(&g->ev_write, base, on_write, g);
	return (g);
}

void
groups_free(struct groups *g)
{
	if (g == NULL)
		return;
	groups_stop(g);
	groupmap_free(g->map);
	groupmap_free(g->stage);
	hashmap_free(g->pending, free);
	free(g->read_next);
	free(g->name);
	free(g->prefix);
	free(g->prefix_end);
	free(g);
}

void
groups_start(struct groups *g, int64_t timeout_ms, int64_t retry_ms)
{
	g->timeout_ms = timeout_ms;
	g->retry_ms = retry_ms;
	g->running = true;
	/* Whatever happened while away (deletes too): read everything. */
	g->want_full = true;
	read_start(g);
	if (hashmap_count(g->pending) > 0)
		arm(&g->ev_write, GROUPS_WRITE_DELAY_MS);
}

void
groups_stop(struct groups *g)
{
	g->running = false;
	etcd_call_cancel(g->read_call);
	g->read_call = NULL;
	etcd_watch_cancel(g->watch);
	g->watch = NULL;
	event_del(&g->ev_read);
	event_del(&g->ev_write);
	if (g->write_call != NULL) {
		etcd_call_cancel(g->write_call);
		g->write_call = NULL;
		write_back(g);
	}
}

void
groups_audit(struct groups *g)
{
	if (g->running && !evtimer_pending(&g->ev_read, NULL))
		read_start(g);
}

const struct groupmap *
groups_map(const struct groups *g)
{
	return (g->map);
}

/* ---- reading ---- */

static void
read_soon(struct groups *g, int64_t ms)
{
	if (g->read_call != NULL)
		g->want_read = true;	/* page_done reads again */
	else if (g->running && !evtimer_pending(&g->ev_read, NULL))
		arm(&g->ev_read, ms);
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	read_start(arg);
	(void)fd;
	(void)what;
}

static void
read_start(struct groups *g)
{
	if (!g->running)
		return;
	if (g->read_call != NULL) {
		g->want_read = true;
		return;
	}
	g->read_full = g->want_full || g->rev == 0;
	g->want_full = false;
	g->want_read = false;
	groupmap_clear(g->stage);
	g->read_rev = 0;
	free(g->read_next);
	g->read_next = xstrdup(g->prefix);
	send_page(g);
}

static void
send_page(struct groups *g)
{
	struct buf	 b = BUF_INIT;

	etcd_msg_range_page(&b, g->read_next, g->prefix_end, g->read_rev,
	    GROUPS_PAGE, g->read_full ? 0 : g->rev + 1);
	g->read_call = etcd_call_start(g->etcd, "/v3/kv/range", &b,
	    g->timeout_ms, page_done, g);
	buf_free(&b);
}

/* One key of a page into the stage; false when it is no entry. */
static bool
stage_kv(struct groups *g, const struct etcd_kv *kv)
{
	size_t		 plen = strlen(g->prefix);
	const char	*address;

	if (kv->keylen <= plen || memcmp(kv->key, g->prefix, plen) != 0 ||
	    strlen(kv->key) != kv->keylen ||
	    strlen(kv->value) != kv->valuelen || kv->valuelen == 0)
		return (false);
	address = kv->key + plen;
	if (strlen(address) > GROUPMAP_ADDRESS_MAX ||
	    kv->valuelen > GROUPMAP_KEY_MAX)
		return (false);
	groupmap_set(g->stage, address, kv->value);
	return (true);
}

static void
page_done(const struct etcd_result *r, void *arg)
{
	struct groups		*g = arg;
	const struct etcd_resp	*resp = r->resp;
	const char		*last;
	bool			 changed, first = g->read_rev == 0;
	size_t			 i;

	g->read_call = NULL;
	if (r->status != ETCD_OK || resp->revision <= 0) {
		log_info("cluster %s: reading the group map: %s", g->name,
		    r->status != ETCD_OK ? r->error : "no revision");
		/* From the start: the revision may be compacted by then. */
		g->want_full = g->want_full || g->read_full;
		g->want_read = false;
		read_soon(g, g->retry_ms);
		return;
	}
	g->stats.pages++;
	if (first)
		g->read_rev = resp->revision;
	for (i = 0; i < resp->nkvs; i++) {
		/* A page starts at the key the last one ended with. */
		if (!first && strcmp(resp->kvs[i].key, g->read_next) == 0)
			continue;
		if (!stage_kv(g, &resp->kvs[i]))
			g->stats.ignored++;
	}
	if (resp->more && resp->nkvs > 0) {
		last = resp->kvs[resp->nkvs - 1].key;
		if (strcmp(last, g->read_next) != 0) {
			free(g->read_next);
			g->read_next = xstrdup(last);
			send_page(g);
			return;
		}
	}
	if (g->read_full) {
		changed = groupmap_digest(g->map) !=
		    groupmap_digest(g->stage) ||
		    groupmap_count(g->map) != groupmap_count(g->stage);
		groupmap_swap(g->map, g->stage);
		g->stats.full_reads++;
	} else
		changed = groupmap_merge(g->map, g->stage);
	groupmap_clear(g->stage);
	g->stats.reads++;
	g->rev = g->read_rev;
	if (g->watch == NULL) {
		struct buf	 b = BUF_INIT;

		etcd_msg_watch(&b, g->prefix, g->prefix_end, g->rev + 1);
		g->watch = etcd_watch_start(g->etcd, &b, watch_cb, g);
		buf_free(&b);
	}
	if (g->want_read)
		read_soon(g, GROUPS_READ_DELAY_MS);
	if (changed) {
		log_info("cluster %s: group map: %zu mailboxes in %zu groups "
		    "(revision %lld)", g->name, groupmap_count(g->map),
		    groupmap_groups(g->map), (long long)g->rev);
		g->changed(g->arg);
	}
}

/* Inside curl: decide only; reads start from the loop. */
static void
watch_cb(const struct etcd_resp *r, const char *why, void *arg)
{
	struct groups	*g = arg;
	size_t		 i;

	if (r == NULL || r->error || r->canceled) {
		if (r != NULL)
			etcd_watch_cancel(g->watch);
		g->watch = NULL;
		log_info("cluster %s: group map watch ended: %s", g->name,
		    r == NULL ? why : r->error ? r->message :
		    "cancelled by etcd (history compacted)");
		/* Deletes may be missed until a new watch: read it all. */
		g->want_full = true;
		read_soon(g, g->retry_ms);
		return;
	}
	for (i = 0; i < r->nevents; i++) {
		if (r->events[i].kv.mod_revision <= g->rev)
			continue;
		if (r->events[i].deleted)
			g->want_full = true;
		read_soon(g, GROUPS_READ_DELAY_MS);
	}
}

/* ---- writing ---- */

void
groups_learnt(struct groups *g, const char *address, const char *key)
{
	const char	*cur;

	if (strlen(address) > GROUPMAP_ADDRESS_MAX || *key == '\0' ||
	    strlen(key) > GROUPMAP_KEY_MAX)
		return;
	cur = groupmap_get(g->map, address);
	if (cur != NULL && strcmp(cur, key) == 0) {
		free(hashmap_remove(g->pending, address));
		return;
	}
	cur = hashmap_get(g->pending, address);
	if (cur != NULL && strcmp(cur, key) == 0)
		return;
	free(hashmap_put(g->pending, address, xstrdup(key)));
	if (g->running && g->write_call == NULL &&
	    !evtimer_pending(&g->ev_write, NULL))
		arm(&g->ev_write, GROUPS_WRITE_DELAY_MS);
}

static void
on_write(evutil_socket_t fd, short what, void *arg)
{
	struct groups		*g = arg;
	struct hashmap_iter	 it;
	const char		*address, *cur;
	void			*v;
	struct buf		 b = BUF_INIT;
	size_t			 n;

	if (!g->running || g->write_call != NULL ||
	    (n = hashmap_count(g->pending)) == 0)
		return;
	if (n > GROUPS_TXN_MAX)
		n = GROUPS_TXN_MAX;
	g->waddr = xcalloc(n, sizeof *g->waddr);
	g->wkey = xcalloc(n, sizeof *g->wkey);
	g->wval = xcalloc(n, sizeof *g->wval);
	g->nw = 0;
	hashmap_iter_init(&it, g->pending);
	while (g->nw < n && hashmap_iter_next(&it, &address, &v)) {
		cur = groupmap_get(g->map, address);
		if (cur != NULL && strcmp(cur, v) == 0) {
			/* Another node wrote it meanwhile. */
			free(hashmap_iter_remove(&it));
			continue;
		}
		g->waddr[g->nw] = xstrdup(address);
		xasprintf(&g->wkey[g->nw], "%s%s", g->prefix, address);
		g->wval[g->nw] = v;
		hashmap_iter_remove(&it);
		g->nw++;
	}
	if (g->nw == 0) {
		write_end(g, false);
		return;
	}
	etcd_msg_txn_puts(&b, (const char *const *)g->wkey,
	    (const char *const *)g->wval, g->nw);
	g->write_call = etcd_call_start(g->etcd, "/v3/kv/txn", &b,
	    g->timeout_ms, write_done, g);
	buf_free(&b);
	(void)fd;
	(void)what;
}

/* Free the write's arrays; back (unless newer) keeps the keys pending. */
static void
write_end(struct groups *g, bool back)
{
	size_t	 i;

	for (i = 0; i < g->nw; i++) {
		if (back && hashmap_get(g->pending, g->waddr[i]) == NULL) {
			hashmap_put(g->pending, g->waddr[i], g->wval[i]);
			g->wval[i] = NULL;
		}
		free(g->waddr[i]);
		free(g->wkey[i]);
		free(g->wval[i]);
	}
	free(g->waddr);
	free(g->wkey);
	free(g->wval);
	g->waddr = g->wkey = g->wval = NULL;
	g->nw = 0;
}

static void
write_back(struct groups *g)
{
	write_end(g, true);
}

static void
write_done(const struct etcd_result *r, void *arg)
{
	struct groups	*g = arg;

	g->write_call = NULL;
	if (r->status != ETCD_OK) {
		log_info("cluster %s: writing %zu group keys: %s", g->name,
		    g->nw, r->error);
		write_back(g);
		if (g->running)
			arm(&g->ev_write, g->retry_ms);
		return;
	}
	g->stats.writes++;
	g->stats.keys_written += g->nw;
	log_debug("cluster %s: %zu group keys written", g->name, g->nw);
	write_end(g, false);
	if (g->running && hashmap_count(g->pending) > 0)
		arm(&g->ev_write, GROUPS_WRITE_DELAY_MS);
}

/* ---- status ---- */

void
groups_status_json(const struct groups *g, struct json_writer *w)
{
	json_obj_begin(w);
	json_kv_int(w, "mailboxes", (int64_t)groupmap_count(g->map));
	json_kv_int(w, "groups", (int64_t)groupmap_groups(g->map));
	json_kv_int(w, "revision", g->rev);
	json_kv_int(w, "reads", (int64_t)g->stats.reads);
	json_kv_int(w, "full_reads", (int64_t)g->stats.full_reads);
	json_kv_int(w, "pages", (int64_t)g->stats.pages);
	json_kv_int(w, "ignored", (int64_t)g->stats.ignored);
	json_kv_int(w, "keys_written", (int64_t)g->stats.keys_written);
	json_kv_int(w, "pending", (int64_t)hashmap_count(g->pending));
	json_obj_end(w);
}
