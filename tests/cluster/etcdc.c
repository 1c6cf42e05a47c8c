/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * A cluster node without Exchange, driven by the integration tests
 * against a real etcd: the membership module with a stand-in for the
 * subscription manager that owns N synthetic mailboxes, releases them
 * at once and applies shrinking limits after a delay.  One JSON line
 * per event on stdout (with "t", monotonic ms); commands on stdin:
 * "status", "leave", "quit".
 */
#include "config.h"

#include <err.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "cluster/budget.h"
#include "cluster/cluster.h"
#include "cluster/hrw.h"

static struct event_base	*base;
static struct cluster		*cl;
static struct hrw_item		*items;
static char			**addrs;
static size_t			 nitems;
static struct budget		 applied, pending;
static int64_t			 shrink_delay_ms;
static struct event		 ev_apply, ev_stdin;
static struct buf		 inbuf;

static void
emit(struct buf *b)
{
	printf("%s\n", buf_str(b));
	fflush(stdout);
	buf_free(b);
}

static void
begin(struct json_writer *w, struct buf *b, const char *ev)
{
	buf_init(b);
	json_writer_init(w, b);
	json_obj_begin(w);
	json_kv_str(w, "ev", ev);
	json_kv_int(w, "t", time_mono_ms());
}

static void
on_view(const struct cluster_view *v, void *arg)
{
	struct json_writer	 w;
	struct buf		 b;
	size_t			*own, *counts, i, mine = 0;
	uint64_t		*weights;
	char			 hex[17];

	own = xcalloc(nitems > 0 ? nitems : 1, sizeof *own);
	counts = xcalloc(v->n, sizeof *counts);
	weights = xcalloc(v->n, sizeof *weights);
	hrw_assign(v->members, v->n, items, nitems, 1, own, counts);
	for (i = 0; i < v->n; i++)
		weights[i] = counts[i];
	mine = counts[v->self];
	begin(&w, &b, "view");
	snprintf(hex, sizeof hex, "%016" PRIx64, v->epoch);
	json_kv_str(&w, "epoch", hex);
	json_key(&w, "members");
	json_arr_begin(&w);
	for (i = 0; i < v->n; i++)
		json_str(&w, v->members[i]);
	json_arr_end(&w);
	json_kv_int(&w, "self", (int64_t)v->self);
	json_kv_int(&w, "rev", v->revision);
	json_kv_bool(&w, "may_acquire", v->may_acquire);
	json_kv_int(&w, "owned", (int64_t)mine);
	json_obj_end(&w);
	emit(&b);
	/* Nothing to stop here: release at once. */
	cluster_set_weights(cl, v->epoch, weights, v->n);
	cluster_released(cl, v->epoch);
	free(own);
	free(counts);
	free(weights);
	(void)arg;
}

static void
report_applied(void)
{
	struct json_writer	 w;
	struct buf		 b;

	begin(&w, &b, "applied");
	budget_json(&applied, &w);
	json_obj_end(&w);
	emit(&b);
	cluster_limits_applied(cl, &applied);
}

static void
on_apply(evutil_socket_t fd, short what, void *arg)
{
	applied = pending;
	report_applied();
	(void)fd;
	(void)what;
	(void)arg;
}

static void
on_limits(const struct budget *l, void *arg)
{
	struct json_writer	 w;
	struct buf		 b;
	struct timeval		 tv;
	int			 x;
	bool			 shrink = false;

	begin(&w, &b, "limits");
	budget_json(l, &w);
	json_obj_end(&w);
	emit(&b);
	for (x = 0; x < BUDGET_RES_MAX; x++)
		if (l->v[x] < applied.v[x])
			shrink = true;
	pending = *l;
	if (!shrink) {
		event_del(&ev_apply);
		applied = *l;
		report_applied();
		return;
	}
	/* In-flight work takes a while to drain. */
	tv.tv_sec = shrink_delay_ms / 1000;
	tv.tv_usec = (shrink_delay_ms % 1000) * 1000;
	evtimer_add(&ev_apply, &tv);
	(void)arg;
}

static void
on_fenced(const char *why, int64_t until, void *arg)
{
	struct json_writer	 w;
	struct buf		 b;

	event_del(&ev_apply);
	memset(&applied, 0, sizeof applied);
	begin(&w, &b, "fenced");
	json_kv_str(&w, "why", why);
	json_kv_int(&w, "budget_until", until);
	json_obj_end(&w);
	emit(&b);
	(void)arg;
}

static void
on_lease(const struct cluster_lease_info *li, void *arg)
{
	static const char *const what[] = { "granted", "kept", "failed" };
	struct json_writer	 w;
	struct buf		 b;
	char			 hex[17];

	begin(&w, &b, "lease");
	json_kv_str(&w, "what", what[li->event]);
	snprintf(hex, sizeof hex, "%" PRIx64, (uint64_t)li->id);
	json_kv_str(&w, "id", hex);
	json_kv_int(&w, "ttl_ms", li->ttl_ms);
	json_kv_int(&w, "sent", li->sent_ms);
	json_kv_int(&w, "deadline", li->deadline_ms);
	if (li->error != NULL)
		json_kv_str(&w, "error", li->error);
	json_obj_end(&w);
	emit(&b);
	(void)arg;
}

static void
left(void *arg)
{
	struct json_writer	 w;
	struct buf		 b;

	begin(&w, &b, "left");
	json_obj_end(&w);
	emit(&b);
	event_base_loopbreak(base);
	(void)arg;
}

static void
command(const char *line)
{
	struct json_writer	 w;
	struct buf		 b;

	if (strcmp(line, "status") == 0) {
		begin(&w, &b, "status");
		json_key(&w, "cluster");
		cluster_status_json(cl, &w);
		json_obj_end(&w);
		emit(&b);
	} else if (strcmp(line, "leave") == 0)
		cluster_leave(cl, left, NULL);
	else if (strcmp(line, "quit") == 0)
		event_base_loopbreak(base);
	else
		warnx("unknown command %s", line);
}

static void
on_stdin(evutil_socket_t fd, short what, void *arg)
{
	char	 chunk[512], *nl;
	ssize_t	 n;

	n = read(fd, chunk, sizeof chunk);
	if (n <= 0) {
		event_del(&ev_stdin);	/* end of input: keep running */
		return;
	}
	buf_append(&inbuf, chunk, (size_t)n);
	while ((nl = memchr(buf_str(&inbuf), '\n', inbuf.len)) != NULL) {
		*nl = '\0';
		command(inbuf.data);
		buf_consume(&inbuf, (size_t)(nl - inbuf.data) + 1);
	}
	(void)what;
	(void)arg;
}

static void
parse_triple(const char *s, unsigned v[3])
{
	if (sscanf(s, "%u,%u,%u", &v[0], &v[1], &v[2]) != 3)
		errx(64, "expected N,N,N: %s", s);
}

static void
usage(void)
{
	fprintf(stderr, "usage: etcdc -e URL[,URL...] -c CLUSTER -n NODE "
	    "[-t TTL_S] [-m MARGIN_MS]\n"
	    "       [-A CA] [-C CERT] [-K KEY] [-b C,S,T] [-s C,S,T] "
	    "[-M MAILBOXES] [-d SHRINK_DELAY_MS] [-v]\n");
	exit(64);
}

int
main(int argc, char **argv)
{
	struct cluster_opts	 o;
	struct cluster_cbs	 cbs;
	char			*eps = NULL, *tok, *sp, *cause = NULL;
	const char		**ep = NULL;
	unsigned		 split[3] = { 1, 1, 0 };
	size_t			 nep = 0, i;
	int			 ch, verbose = 0;

	memset(&o, 0, sizeof o);
	o.ttl_ms = 10000;
	o.total.v[BUDGET_CONCURRENCY] = 10;
	o.total.v[BUDGET_SUBSCRIPTIONS] = 1000;
	o.total.v[BUDGET_STREAMS] = 10;
	while ((ch = getopt(argc, argv, "A:b:C:c:d:e:K:M:m:n:s:t:v")) != -1) {
		switch (ch) {
		case 'A': o.etcd.ca_file = optarg; break;
		case 'b': parse_triple(optarg, o.total.v); break;
		case 'C': o.etcd.client_cert = optarg; break;
		case 'c': o.cluster = optarg; break;
		case 'd': shrink_delay_ms = atoll(optarg); break;
		case 'e': eps = xstrdup(optarg); break;
		case 'K': o.etcd.client_key = optarg; break;
		case 'M': nitems = (size_t)atol(optarg); break;
		case 'm': o.margin_ms = atoll(optarg); break;
		case 'n': o.node = optarg; break;
		case 's': parse_triple(optarg, split); break;
		case 't': o.ttl_ms = atoll(optarg) * 1000; break;
		case 'v': verbose++; break;
		default: usage();
		}
	}
	if (eps == NULL || o.cluster == NULL || o.node == NULL)
		usage();
	for (tok = strtok_r(eps, ",", &sp); tok != NULL;
	    tok = strtok_r(NULL, ",", &sp)) {
		ep = xreallocarray(ep, nep + 1, sizeof *ep);
		ep[nep++] = tok;
	}
	o.etcd.endpoints = ep;
	o.etcd.nendpoints = nep;
	for (i = 0; i < 3; i++)
		o.split[i] = split[i] != 0;
	log_init("etcdc", LOG_TARGET_STDERR, verbose ? LOG_DEBUG : LOG_INFO);

	addrs = xcalloc(nitems + 1, sizeof *addrs);
	items = xcalloc(nitems + 1, sizeof *items);
	for (i = 0; i < nitems; i++) {
		xasprintf(&addrs[i], "user%zu@example.com", i);
		items[i].address = addrs[i];
	}
	if ((base = event_base_new()) == NULL)
		errx(1, "event_base_new");
	memset(&cbs, 0, sizeof cbs);
	cbs.view = on_view;
	cbs.limits = on_limits;
	cbs.fenced = on_fenced;
	cbs.lease = on_lease;
	if ((cl = cluster_new(base, &o, &cbs, NULL, &cause)) == NULL)
		errx(1, "%s", cause);
	evtimer_assign(&ev_apply, base, on_apply, NULL);
	event_assign(&ev_stdin, base, STDIN_FILENO, EV_READ | EV_PERSIST,
	    on_stdin, NULL);
	event_add(&ev_stdin, NULL);
	buf_init(&inbuf);
	cluster_start(cl);
	event_base_dispatch(base);

	cluster_free(cl);
	event_del(&ev_apply);
	event_del(&ev_stdin);
	event_base_free(base);
	buf_free(&inbuf);
	for (i = 0; i < nitems; i++)
		free(addrs[i]);
	free(addrs);
	free(items);
	free(ep);
	free(eps);
	return (0);
}
