/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * A small driver of the Graph client for the integration tests against
 * the Graph stand-in: runs every operation given on the command line at
 * once, prints one JSON line per finished operation and a last line with
 * the client's counters.
 *
 *   graphc -g GRAPH_URL -t TOKEN_URL -i CLIENT_ID (-s SECRET | -c CERT -k KEY)
 *	[-a CA] [-B] OP:MAILBOX ...
 *
 * OP: calview (all pages of the coming week), delta (a full round, then
 * one more round from its deltaLink), auto (automatic replies), subscribe
 * (create with -n URL, then renew, then delete), batch (calendarView and
 * automatic replies in one $batch).  With -B the calview and auto reads
 * are batchable, as the daemon's calendar reads are: the client gathers
 * them into $batch requests of its own.
 */
#include "config.h"

#include <err.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "graph/graph_batch.h"
#include "graph/graph_cal.h"
#include "graph/graph_sub.h"
#include "io/graph_client.h"
#include "io/throttle_drive.h"

struct op {
	const char		*name;
	char			*mailbox;
	int			 step;
	size_t			 items;
	size_t			 removed;
	size_t			 pages;
	char			*sub_id;
	char			*delta;
	unsigned		 attempts;
	int			 state;
};

static struct event_base	*base;
static struct graph_client	*gc;
static int			 pending;
static const char		*notify_url;
static bool			 batch_reads;	/* -B */

static void	 run(struct op *, const char *url, enum http_method,
		    const char *body);

static void
finish(struct op *op, const struct graph_result *r, const char *extra)
{
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;

	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_str(&w, "op", op->name);
	json_kv_str(&w, "mailbox", op->mailbox);
	json_kv_str(&w, "action", graph_action_name(r->action));
	json_kv_int(&w, "status", r->status);
	json_kv_str(&w, "code", r->code);
	json_kv_int(&w, "attempts", op->attempts);
	json_kv_int(&w, "items", (int64_t)op->items);
	json_kv_int(&w, "removed", (int64_t)op->removed);
	json_kv_int(&w, "pages", (int64_t)op->pages);
	if (extra != NULL)
		json_kv_str(&w, "detail", extra);
	json_obj_end(&w);
	printf("%s\n", buf_str(&b));
	fflush(stdout);
	buf_free(&b);
	free(op->sub_id);
	free(op->delta);
	if (--pending == 0)
		event_base_loopbreak(base);
}

static void
done(const struct graph_result *r, void *arg)
{
	struct op			*op = arg;
	struct graph_page		 pg;
	struct ews_oof			 oof;
	struct graph_subscription	 sub;
	struct graph_batch		 bt;
	struct buf			 u = BUF_INIT;
	char				*cause = NULL, *next;
	const struct graph_batch_resp	*x;

	if (r->attempts > op->attempts)
		op->attempts = r->attempts;
	if (r->action != GRAPH_ACT_OK) {
		finish(op, r, r->error);
		return;
	}
	if (strcmp(op->name, "calview") == 0 ||
	    strcmp(op->name, "delta") == 0) {
		if (graph_parse_calview(r->body, r->body_len, &pg, &cause)) {
			finish(op, r, cause);
			free(cause);
			return;
		}
		op->items += pg.nitems;
		op->removed += pg.nremoved;
		op->pages++;
		if (pg.next_link != NULL) {
			next = xstrdup(pg.next_link);
			graph_page_free(&pg);
			run(op, next, HTTP_GET, NULL);
			free(next);
			return;
		}
		if (strcmp(op->name, "delta") == 0 && op->step++ == 0 &&
		    pg.delta_link != NULL) {
			/* The next round: what changed since. */
			next = xstrdup(pg.delta_link);
			graph_page_free(&pg);
			run(op, next, HTTP_GET, NULL);
			free(next);
			return;
		}
		graph_page_free(&pg);
		finish(op, r, NULL);
		return;
	}
	if (strcmp(op->name, "auto") == 0) {
		if (graph_parse_auto_replies(r->body, r->body_len, &oof,
		    &cause)) {
			finish(op, r, cause);
			free(cause);
			return;
		}
		finish(op, r, oof.state == EWS_OOF_DISABLED ? "disabled" :
		    oof.state == EWS_OOF_ENABLED ? "enabled" : "scheduled");
		ews_oof_free(&oof);
		return;
	}
	if (strcmp(op->name, "subscribe") == 0) {
		if (op->step == 2) {
			finish(op, r, "deleted");
			return;
		}
		if (graph_parse_subscription(r->body, r->body_len, &sub,
		    &cause)) {
			finish(op, r, cause);
			free(cause);
			return;
		}
		if (op->step++ == 0) {
			struct buf	 body = BUF_INIT;

			op->sub_id = xstrdup(sub.id);
			graph_sub_renew_body(&body,
			    time_wall_ms() / 1000 + 7200);
			buf_printf(&u, "/subscriptions/%s", sub.id);
			run(op, buf_str(&u), HTTP_PATCH, buf_str(&body));
			buf_free(&body);
		} else {
			buf_printf(&u, "/subscriptions/%s", op->sub_id);
			run(op, buf_str(&u), HTTP_DELETE, NULL);
		}
		graph_subscription_free(&sub);
		buf_free(&u);
		return;
	}
	/* batch */
	if (graph_parse_batch(r->body, r->body_len, &bt, &cause)) {
		finish(op, r, cause);
		free(cause);
		return;
	}
	if ((x = graph_batch_find(&bt, "cal")) != NULL && x->status == 200 &&
	    graph_parse_calview(x->body, x->body_len, &pg, &cause) == 0) {
		op->items = pg.nitems;
		graph_page_free(&pg);
	}
	free(cause);
	cause = NULL;
	x = graph_batch_find(&bt, "oof");
	finish(op, r, x != NULL && x->status == 200 ? "both" : "partial");
	graph_batch_free(&bt);
}

static void
run(struct op *op, const char *url, enum http_method m, const char *body)
{
	struct graph_req	 r;

	memset(&r, 0, sizeof r);
	r.method = m;
	r.url = url;
	r.body = body;
	r.mailbox = op->mailbox;
	r.prefer_utc = true;
	r.page_size = strcmp(op->name, "delta") == 0 ? 2 : 0;
	r.tag = op->name;
	r.batchable = batch_reads && (strcmp(op->name, "calview") == 0 ||
	    strcmp(op->name, "auto") == 0);
	graph_call_start(gc, &r, done, op);
}

static void
start(struct op *op)
{
	struct buf		 u = BUF_INIT, b = BUF_INIT, p1 = BUF_INIT,
				 p2 = BUF_INIT;
	struct graph_sub_req	 s;
	struct graph_batch_req	 br[2];
	int64_t			 now = time_wall_ms() / 1000;
	char			*cause = NULL;

	if (strcmp(op->name, "calview") == 0 ||
	    strcmp(op->name, "delta") == 0) {
		graph_calview_path(&u, op->mailbox, now - 86400,
		    now + 7 * 86400, strcmp(op->name, "delta") == 0);
		run(op, buf_str(&u), HTTP_GET, NULL);
	} else if (strcmp(op->name, "auto") == 0) {
		graph_auto_replies_path(&u, op->mailbox);
		run(op, buf_str(&u), HTTP_GET, NULL);
	} else if (strcmp(op->name, "subscribe") == 0) {
		memset(&s, 0, sizeof s);
		s.user = op->mailbox;
		s.notification_url = notify_url;
		s.lifecycle_url = notify_url;
		s.client_state = "graphc-state";
		s.expires = now + 3600;
		graph_sub_create_body(&b, &s);
		run(op, "/subscriptions", HTTP_POST, buf_str(&b));
	} else if (strcmp(op->name, "batch") == 0) {
		graph_calview_path(&p1, op->mailbox, now - 86400, now + 86400,
		    false);
		graph_auto_replies_path(&p2, op->mailbox);
		memset(br, 0, sizeof br);
		br[0].id = "cal";
		br[0].method = "GET";
		br[0].url = buf_str(&p1);
		br[0].prefer = GRAPH_PREFER_UTC;
		br[1].id = "oof";
		br[1].method = "GET";
		br[1].url = buf_str(&p2);
		if (graph_batch_body(&b, br, 2, &cause) != 0)
			errx(1, "batch: %s", cause);
		run(op, "/$batch", HTTP_POST, buf_str(&b));
	} else
		errx(1, "unknown operation %s", op->name);
	buf_free(&u);
	buf_free(&b);
	buf_free(&p1);
	buf_free(&p2);
}

static void
usage(void)
{
	fprintf(stderr, "usage: graphc -g url -t token_url -i client_id "
	    "(-s secret | -c cert -k key) [-a ca] [-B] [-n notify_url] "
	    "[-r app_rate -w app_window_ms] op:mailbox ...\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct graph_client_opts o;
	struct throttle_limits	 lim;
	struct throttle_drive	*drive;
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;
	struct op		*ops;
	char			*cause = NULL, *colon;
	int			 ch, i, n;

	memset(&o, 0, sizeof o);
	throttle_limits_default(&lim);
	o.tls_verify = o.token_tls_verify = true;
	while ((ch = getopt(argc, argv, "a:Bc:g:i:k:n:r:s:t:w:")) != -1) {
		switch (ch) {
		case 'a': o.ca_file = o.token_ca_file = optarg; break;
		case 'B': batch_reads = true; break;
		case 'c': o.cert_file = optarg; break;
		case 'g': o.graph_url = optarg; break;
		case 'i': o.client_id = optarg; break;
		case 'k': o.key_file = optarg; break;
		case 'n': notify_url = optarg; break;
		case 's': o.client_secret = optarg; break;
		case 'r': lim.graph_app_rate = (unsigned)atoi(optarg); break;
		case 't': o.token_url = optarg; break;
		case 'w': lim.graph_app_window_ms = atoi(optarg); break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0 || o.graph_url == NULL)
		usage();
	log_init("graphc", LOG_TARGET_STDERR, getenv("GRAPHC_DEBUG") != NULL ?
	    LOG_DEBUG : LOG_WARNING);
	if ((base = event_base_new()) == NULL)
		errx(1, "event_base_new");
	/* The scheduler as the daemon's, Graph's budgets in it. */
	drive = throttle_drive_new(base, &lim);
	o.drive = drive;
	if ((gc = graph_client_new(base, &o, &cause)) == NULL)
		errx(1, "%s", cause);
	n = argc;
	ops = xcalloc((size_t)n, sizeof *ops);
	for (i = 0; i < n; i++) {
		if ((colon = strchr(argv[i], ':')) == NULL)
			usage();
		*colon = '\0';
		ops[i].name = argv[i];
		ops[i].mailbox = colon + 1;
	}
	pending = n;
	for (i = 0; i < n; i++)
		start(&ops[i]);
	event_base_dispatch(base);
	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_key(&w, "stats");
	graph_client_stats_json(gc, &w);
	json_obj_end(&w);
	printf("%s\n", buf_str(&b));
	buf_free(&b);
	graph_client_free(gc);
	throttle_drive_free(drive);
	free(ops);
	event_base_free(base);
	return (0);
}
