/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the sink delivery engine (ordering, retry, isolation,
 * coalescing, health, reload, flush), configuration validation, plugin
 * loading and the built-in log, file and exec sinks.
 */
#include "config.h"

#include <sys/stat.h>

#include <check.h>
#include <sys/socket.h>

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/conf.h"
#include "evtest.h"
#include "base/json.h"
#include "base/log.h"
#include "base/safepath.h"
#include "sinks/sinkset.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

/* ---- a scriptable fake sink ---- */

#define FAKE_MAX_CALLS	256

struct fake_call {
	char		 mailbox[64];
	char		 presence[32];
	char		 previous[32];
	uint64_t	 seq;
	uint64_t	 token;
	int64_t		 at;		/* mono ms */
};

struct ewsgw_sink {
	struct ewsgw_host	*host;
	char			 name[32];
	bool			 async;		/* return PENDING */
	int			 fail_first;	/* ERR this many times */
	int			 again_first;	/* AGAIN this many times */
	char			 fail_mailbox[64];	/* always ERR */
	struct fake_call	 calls[FAKE_MAX_CALLS];
	int			 ncalls;
	bool			 healthy;
	int			 reopened;
};

/* Instances by creation order, for the tests to drive. */
static struct ewsgw_sink	*fakes[8];
static int			 nfakes;

static int
fake_create(struct ewsgw_host *host, const struct ewsgw_sink_config *c,
    struct ewsgw_sink **out)
{
	struct ewsgw_sink	*s;
	const char		*v;

	s = xcalloc(1, sizeof *s);
	s->host = host;
	s->healthy = true;
	snprintf(s->name, sizeof s->name, "%s", ewsgw_sink_config_name(c));
	if ((v = ewsgw_sink_config_get(c, "mode")) != NULL)
		s->async = strcmp(v, "async") == 0;
	if ((v = ewsgw_sink_config_get(c, "fail_first")) != NULL)
		s->fail_first = atoi(v);
	if ((v = ewsgw_sink_config_get(c, "again_first")) != NULL)
		s->again_first = atoi(v);
	if ((v = ewsgw_sink_config_get(c, "fail_mailbox")) != NULL)
		snprintf(s->fail_mailbox, sizeof s->fail_mailbox, "%s", v);
	ck_assert_int_lt(nfakes, 8);
	fakes[nfakes++] = s;
	*out = s;
	return (0);
}

static int
fake_publish(struct ewsgw_sink *s, const struct ewsgw_presence_change *c,
    uint64_t token)
{
	struct fake_call	*fc;

	ck_assert_int_lt(s->ncalls, FAKE_MAX_CALLS);
	fc = &s->calls[s->ncalls++];
	snprintf(fc->mailbox, sizeof fc->mailbox, "%s", c->mailbox);
	snprintf(fc->presence, sizeof fc->presence, "%s", c->presence);
	snprintf(fc->previous, sizeof fc->previous, "%s",
	    c->previous != NULL ? c->previous : "-");
	fc->seq = c->seq;
	fc->token = token;
	fc->at = time_mono_ms();
	if (s->again_first > 0) {
		s->again_first--;
		return (EWSGW_SINK_AGAIN);
	}
	if (strcmp(s->fail_mailbox, c->mailbox) == 0)
		return (EWSGW_SINK_ERR);
	if (s->fail_first > 0) {
		s->fail_first--;
		ewsgw_host_log(s->host, LOG_WARNING, "fake failure");
		return (EWSGW_SINK_ERR);
	}
	return (s->async ? EWSGW_SINK_PENDING : EWSGW_SINK_OK);
}

static int
fake_health(struct ewsgw_sink *s, char *detail, size_t len)
{
	snprintf(detail, len, "%d calls", s->ncalls);
	return (s->healthy ? 1 : 0);
}

static void
fake_reopen(struct ewsgw_sink *s)
{
	s->reopened++;
}

/* Recorded like a change, with presence "(forget)". */
static void
fake_forget(struct ewsgw_sink *s, const char *mailbox)
{
	struct fake_call	*fc;

	ck_assert_int_lt(s->ncalls, FAKE_MAX_CALLS);
	fc = &s->calls[s->ncalls++];
	memset(fc, 0, sizeof *fc);
	snprintf(fc->mailbox, sizeof fc->mailbox, "%s", mailbox);
	snprintf(fc->presence, sizeof fc->presence, "(forget)");
	fc->at = time_mono_ms();
}

static void
fake_destroy(struct ewsgw_sink *s)
{
	int	 i;

	for (i = 0; i < nfakes; i++)
		if (fakes[i] == s)
			fakes[i] = NULL;
	free(s);
}

static int
fake_check(const struct ewsgw_sink_config *c)
{
	ewsgw_sink_config_get(c, "mode");
	ewsgw_sink_config_get(c, "fail_first");
	ewsgw_sink_config_get(c, "again_first");
	ewsgw_sink_config_get(c, "fail_mailbox");
	return (0);
}

static const struct ewsgw_sink_ops fake_ops = {
	.abi_version = EWSGW_SINK_ABI_VERSION,
	.size = sizeof(struct ewsgw_sink_ops),
	.name = "fake",
	.check = fake_check,
	.create = fake_create,
	.publish = fake_publish,
	.health = fake_health,
	.destroy = fake_destroy,
	.reopen = fake_reopen,
	.forget = fake_forget,
};

/* ---- helpers ---- */

static struct event_base	*base;
static char			 tmpdir[256];

static void
setup(void)
{
	log_init("check_sink", LOG_TARGET_STDERR, LOG_ERR);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	ck_assert_int_eq(sink_register_type(&fake_ops), 0);
	nfakes = 0;
	memset(fakes, 0, sizeof fakes);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/check_sink.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
rm_rf(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	char		 p[512];

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		if (unlink(p) == -1 && errno == EISDIR)
			rm_rf(p);
	}
	closedir(d);
	rmdir(dir);
}

/* Entries of a directory, without "." and "..". */
static int
count_entries(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	ck_assert_ptr_nonnull(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return (n);
}

static void
teardown(void)
{
	event_base_free(base);
	base = NULL;
	rm_rf(tmpdir);
}

/*
 * A configuration built from "[sink NAME] type" headers and "key=value"
 * lines; line numbers are the index in the list plus one.
 */
static struct config *
mkconf(const char *const *lines)
{
	struct config		*conf;
	struct conf_sink	*cs = NULL;
	const char		*eq;
	char			 name[64], type[64];
	int			 i;

	conf = xcalloc(1, sizeof *conf);
	conf->path = xstrdup("/etc/ewsgw.conf");
	conf->sinks = xcalloc(8, sizeof *conf->sinks);
	for (i = 0; lines[i] != NULL; i++) {
		if (sscanf(lines[i], "[sink %63[^]]] %63s", name, type) == 2) {
			cs = &conf->sinks[conf->nsinks++];
			cs->name = xstrdup(name);
			cs->type = strcmp(type, "-") == 0 ? NULL :
			    xstrdup(type);
			cs->kv = xcalloc(16, sizeof *cs->kv);
			cs->line = i + 1;
			continue;
		}
		ck_assert_ptr_nonnull(cs);
		eq = strchr(lines[i], '=');
		ck_assert_ptr_nonnull(eq);
		cs->kv[cs->nkv].key = xstrndup(lines[i],
		    (size_t)(eq - lines[i]));
		cs->kv[cs->nkv].value = xstrdup(eq + 1);
		cs->kv[cs->nkv].line = i + 1;
		cs->nkv++;
	}
	return (conf);
}

static void
freeconf(struct config *conf)
{
	size_t	 i, j;

	for (i = 0; i < conf->nsinks; i++) {
		for (j = 0; j < conf->sinks[i].nkv; j++) {
			free(conf->sinks[i].kv[j].key);
			free(conf->sinks[i].kv[j].value);
		}
		free(conf->sinks[i].kv);
		free(conf->sinks[i].name);
		free(conf->sinks[i].type);
	}
	free(conf->sinks);
	free(conf->path);
	free(conf);
}

static struct sinkset *
mkset(const char *const *lines)
{
	struct config	*conf = mkconf(lines);
	struct sinkset	*set;
	char		*errors = NULL;

	set = sinkset_new(base, conf, &errors);
	if (set == NULL)
		ck_abort_msg("sinkset_new: %s", errors);
	ck_assert_ptr_null(errors);
	freeconf(conf);
	return (set);
}

/* sinkset_new is expected to fail; returns the errors (caller frees). */
static char *
mkset_fail(const char *const *lines)
{
	struct config	*conf = mkconf(lines);
	struct sinkset	*set;
	char		*errors = NULL;

	set = sinkset_new(base, conf, &errors);
	ck_assert_ptr_null(set);
	ck_assert_ptr_nonnull(errors);
	freeconf(conf);
	return (errors);
}

static char *
validate(const char *const *lines)
{
	struct config	*conf = mkconf(lines);
	char		*errors = NULL;
	int		 rc;

	rc = sink_validate(&conf->sinks[0], conf->path, &errors);
	ck_assert_int_eq(rc, errors == NULL ? 0 : -1);
	freeconf(conf);
	return (errors);
}

static void
publish(struct sinkset *set, const char *mailbox, const char *presence,
    const char *previous, uint64_t seq)
{
	struct ewsgw_presence_change	 c = {
		.size = sizeof c,
		.mailbox = mailbox,
		.presence = presence,
		.previous = previous,
		.activity = strcmp(presence, "busy") == 0 ? "meeting" : NULL,
		.since = 1795950000,
		.until = strcmp(presence, "busy") == 0 ? 1795953600 : 0,
		.source = "calendar",
		.seq = seq,
	};

	sinkset_publish(set, &c);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/*
 * Run the loop until cond(arg) holds or ms pass; returns cond.  The
 * deadline is a timer of the loop, not a clock read between passes: a
 * test descheduled past it on a loaded machine still gets the pass that
 * runs what was due by then, never none at all.
 */
static bool
run_until(bool (*cond)(void *), void *arg, int64_t ms)
{
	struct event	*tick, *deadline;
	struct timeval	 tv = { 0, 2000 };
	bool		 ok, expired = false;

	tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(tick, &tv);
	deadline = evtimer_new(base, deadline_cb, &expired);
	evtimer_add(deadline, time_ms_tv(&tv, ms));
	while (!(ok = cond != NULL && cond(arg)) && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(deadline);
	event_free(tick);
	return (ok);
}

static void
run_for(int64_t ms)
{
	run_until(NULL, NULL, ms);
}

static bool
depth_zero(void *arg)
{
	return (sinkset_depth(arg) == 0);
}

/* The sink's status object as a parsed tree (caller frees). */
static struct json_value *
status_of(struct sinkset *set)
{
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;
	struct json_value	*v;
	char			*cause = NULL;

	json_writer_init(&w, &b);
	sinkset_status_json(set, &w);
	v = json_parse(b.data, b.len, &cause);
	if (v == NULL)
		ck_abort_msg("status JSON: %s: %s", cause, buf_str(&b));
	buf_free(&b);
	ck_assert_int_eq(v->type, JSON_ARRAY);
	return (v);
}

static double
status_num(struct sinkset *set, int idx, const char *key)
{
	struct json_value	*v = status_of(set);
	const struct json_value	*o = v->child;
	double			 n;

	while (idx-- > 0 && o != NULL)
		o = o->next;
	ck_assert_ptr_nonnull(o);
	n = json_get_num(o, key, -1);
	json_free(v);
	return (n);
}

static char *
slurp(const char *path)
{
	struct buf	 b = BUF_INIT;
	char		 chunk[4096];
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY)) == -1)
		return (NULL);
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		buf_append(&b, chunk, (size_t)n);
	close(fd);
	if (b.data == NULL)
		return (xstrdup(""));
	return (buf_steal(&b));
}

static int
count_lines(const char *s)
{
	int	 n = 0;

	for (; s != NULL && *s != '\0'; s++)
		if (*s == '\n')
			n++;
	return (n);
}

/* A file and a string it must (want) or must not (!want) hold. */
struct file_expect {
	const char	*path;
	const char	*needle;
	bool		 want;
};

static bool
file_holds(void *arg)
{
	const struct file_expect	*fe = arg;
	char				*text;
	bool				 has;

	if ((text = slurp(fe->path)) == NULL)
		return (false);
	has = strstr(text, fe->needle) != NULL;
	free(text);
	return (has == fe->want);
}

/* The state file reached a version with needle in it (or without). */
static void
wait_state(const char *path, const char *needle, bool want)
{
	struct file_expect	 fe = { path, needle, want };

	ck_assert_msg(run_until(file_holds, &fe, 10000),
	    "%s never %s '%s'", path, want ? "held" : "lost", needle);
}

/* The state file, parsed (caller frees). */
static struct json_value *
read_state(const char *path)
{
	struct json_value	*v;
	char			*text, *cause = NULL;

	text = slurp(path);
	ck_assert_ptr_nonnull(text);
	v = json_parse(text, strlen(text), &cause);
	ck_assert_msg(v != NULL, "%s: %s", path, cause);
	free(text);
	ck_assert_ptr_nonnull(json_get(v, "mailboxes"));
	return (v);
}

/* The first sink's health is healthy. */
static bool
sink_healthy_is(struct sinkset *set, bool healthy)
{
	struct json_value	*v = status_of(set);
	bool			 h;

	h = json_get_bool(v->child, "healthy", !healthy);
	json_free(v);
	return (h == healthy);
}

static bool
sink_unhealthy(void *arg)
{
	return (sink_healthy_is(arg, false));
}

static bool
sink_healthy(void *arg)
{
	return (sink_healthy_is(arg, true));
}

/* ---- engine ---- */

static bool
fake_has_calls(void *arg)
{
	int	*want = arg;

	return (fakes[want[0]] != NULL && fakes[want[0]]->ncalls >= want[1]);
}

START_TEST(test_order_per_mailbox)
{
	const char *const lines[] = { "[sink f] fake", "mode=async", NULL };
	struct sinkset		*set = mkset(lines);
	struct ewsgw_sink	*f;
	int			 want[2] = { 0, 2 };

	publish(set, "a@x", "busy", "available", 1);
	publish(set, "a@x", "available", "busy", 2);
	publish(set, "b@x", "busy", "available", 1);
	publish(set, "a@x", "away", "available", 3);
	ck_assert(run_until(fake_has_calls, want, 2000));
	run_for(20);
	f = fakes[0];
	/* Only the first change of each mailbox is handed over. */
	ck_assert_int_eq(f->ncalls, 2);
	ck_assert_str_eq(f->calls[0].mailbox, "a@x");
	ck_assert_int_eq(f->calls[0].seq, 1);
	ck_assert_str_eq(f->calls[1].mailbox, "b@x");
	ck_assert_uint_eq(sinkset_depth(set), 4);

	/* Complete out of order: b first, then a. */
	ewsgw_host_done(f->host, f->calls[1].token, EWSGW_SINK_OK);
	run_for(20);
	ck_assert_int_eq(f->ncalls, 2);
	ewsgw_host_done(f->host, f->calls[0].token, EWSGW_SINK_OK);
	/* A second done for the same token is ignored. */
	ewsgw_host_done(f->host, f->calls[0].token, EWSGW_SINK_OK);
	want[1] = 3;
	ck_assert(run_until(fake_has_calls, want, 2000));
	run_for(20);
	ck_assert_int_eq(f->ncalls, 3);
	ck_assert_str_eq(f->calls[2].mailbox, "a@x");
	ck_assert_int_eq(f->calls[2].seq, 2);
	ewsgw_host_done(f->host, f->calls[2].token, EWSGW_SINK_OK);
	want[1] = 4;
	ck_assert(run_until(fake_has_calls, want, 2000));
	ck_assert_int_eq(f->calls[3].seq, 3);
	ck_assert_str_eq(f->calls[3].presence, "away");
	ewsgw_host_done(f->host, f->calls[3].token, EWSGW_SINK_OK);
	ck_assert(run_until(depth_zero, set, 2000));
	ck_assert(status_num(set, 0, "delivered") == 4);
	sinkset_free(set);
}
END_TEST

/*
 * Another node takes a mailbox over (cluster hand-over, fencing):
 * sinkset_drop drops the waiting changes, leaves the one in flight to
 * finish, and a failure of that one is dropped, never retried after
 * the new owner's changes; a later change of the mailbox (taken back)
 * is delivered as usual.
 */
START_TEST(test_drop_handed_over)
{
	const char *const lines[] = { "[sink f] fake", "mode=async",
	    "retry_initial=20ms", "retry_max=40ms", NULL };
	struct sinkset		*set = mkset(lines);
	struct ewsgw_sink	*f;
	int			 want[2] = { 0, 1 };

	publish(set, "a@x", "busy", "available", 1);
	publish(set, "a@x", "available", "busy", 2);
	publish(set, "a@x", "away", "available", 3);
	ck_assert(run_until(fake_has_calls, want, 2000));
	f = fakes[0];
	ck_assert(sinkset_holds(set, "a@x"));
	ck_assert_uint_eq(sinkset_drop(set, "a@x"), 2);
	ck_assert_uint_eq(sinkset_depth(set), 1);
	/* Still in flight: the hand-over must wait for it. */
	ck_assert(sinkset_holds(set, "a@x"));
	ewsgw_host_done(f->host, f->calls[0].token, EWSGW_SINK_ERR);
	ck_assert(!sinkset_holds(set, "a@x"));
	ck_assert_uint_eq(sinkset_depth(set), 0);
	run_for(100);
	ck_assert_int_eq(f->ncalls, 1);
	ck_assert(status_num(set, 0, "dropped") == 3);
	ck_assert(status_num(set, 0, "failed") == 1);
	ck_assert(status_num(set, 0, "retrying") == 0);

	/* A delivered change in flight stays delivered. */
	publish(set, "a@x", "busy", "available", 4);
	publish(set, "a@x", "available", "busy", 5);
	want[1] = 2;
	ck_assert(run_until(fake_has_calls, want, 2000));
	ck_assert_uint_eq(sinkset_drop(set, "a@x"), 1);
	ewsgw_host_done(f->host, f->calls[1].token, EWSGW_SINK_OK);
	ck_assert(!sinkset_holds(set, "a@x"));
	ck_assert(status_num(set, 0, "delivered") == 1);

	/* Taken back: failures are retried again. */
	f->fail_first = 1;
	f->async = false;
	publish(set, "a@x", "busy", "available", 6);
	ck_assert(run_until(depth_zero, set, 2000));
	ck_assert_int_eq(f->ncalls, 4);
	ck_assert_int_eq(f->calls[2].seq, 6);
	ck_assert_int_eq(f->calls[3].seq, 6);
	ck_assert(status_num(set, 0, "delivered") == 2);
	sinkset_free(set);
}
END_TEST

START_TEST(test_retry_backoff)
{
	const char *const lines[] = { "[sink f] fake", "fail_first=3",
	    "retry_initial=20ms", "retry_max=80ms", NULL };
	struct sinkset		*set = mkset(lines);
	struct ewsgw_sink	*f = fakes[0];
	struct json_value	*v;
	int			 i;

	publish(set, "a@x", "busy", "available", 7);
	publish(set, "a@x", "available", "busy", 8);
	ck_assert(run_until(depth_zero, set, 5000));
	/* Three failures, then both delivered, in order. */
	ck_assert_int_eq(f->ncalls, 5);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(f->calls[i].seq, 7);
	ck_assert_int_eq(f->calls[4].seq, 8);
	/*
	 * Jittered back-off: never less than retry_initial between
	 * attempts (less 1 ms of timer rounding).
	 */
	for (i = 1; i < 4; i++)
		ck_assert_int_ge(f->calls[i].at - f->calls[i - 1].at, 19);
	ck_assert(status_num(set, 0, "failed") == 3);
	ck_assert(status_num(set, 0, "delivered") == 2);
	ck_assert(status_num(set, 0, "retrying") == 0);
	v = status_of(set);
	ck_assert_str_eq(json_get_str(v->child, "last_error", ""),
	    "fake failure");
	ck_assert(json_get_bool(v->child, "healthy", false));
	json_free(v);
	sinkset_free(set);
}
END_TEST

START_TEST(test_again_backpressure)
{
	const char *const lines[] = { "[sink f] fake", "again_first=2",
	    "retry_initial=1h", NULL };
	struct sinkset		*set = mkset(lines);

	publish(set, "a@x", "busy", "available", 1);
	ck_assert(run_until(depth_zero, set, 5000));
	/* AGAIN is not a failure and does not wait for retry_initial. */
	ck_assert_int_eq(fakes[0]->ncalls, 3);
	ck_assert(status_num(set, 0, "failed") == 0);
	ck_assert(status_num(set, 0, "delivered") == 1);
	sinkset_free(set);
}
END_TEST

static bool
fast_done(void *arg)
{
	struct sinkset	*set = arg;

	return (status_num(set, 1, "delivered") == 5);
}

START_TEST(test_slow_sink_isolated)
{
	const char *const lines[] = {
	    "[sink slow] fake", "mode=async", "max_inflight=1",
	    "[sink fast] fake", NULL };
	struct sinkset	*set = mkset(lines);
	char		 mb[16];
	int		 i;

	for (i = 0; i < 5; i++) {
		snprintf(mb, sizeof mb, "m%d@x", i);
		publish(set, mb, "busy", "available", 1);
	}
	ck_assert(run_until(fast_done, set, 2000));
	/* The slow one holds one change and queues the rest. */
	ck_assert_int_eq(fakes[0]->ncalls, 1);
	ck_assert(status_num(set, 0, "queue") == 5);
	ck_assert(status_num(set, 0, "in_flight") == 1);
	ck_assert(status_num(set, 1, "queue") == 0);
	sinkset_free(set);
}
END_TEST

static bool
goods_delivered(void *arg)
{
	return (status_num(arg, 0, "delivered") == 3);
}

START_TEST(test_failing_mailbox_does_not_starve)
{
	const char *const lines[] = { "[sink f] fake", "fail_mailbox=bad@x",
	    "retry_initial=20ms", "retry_max=40ms", NULL };
	struct sinkset	*set = mkset(lines);

	publish(set, "bad@x", "busy", "available", 1);
	publish(set, "bad@x", "available", "busy", 2);
	publish(set, "g1@x", "busy", "available", 1);
	publish(set, "g2@x", "busy", "available", 1);
	publish(set, "g3@x", "busy", "available", 1);
	ck_assert(run_until(goods_delivered, set, 5000));
	/* bad@x keeps failing, its second change still waits behind. */
	ck_assert(status_num(set, 0, "queue") == 2);
	ck_assert(status_num(set, 0, "retrying") == 1);
	ck_assert(status_num(set, 0, "failed") >= 1);
	sinkset_free(set);
}
END_TEST

START_TEST(test_queue_full_coalesces)
{
	const char *const lines[] = { "[sink f] fake", "mode=async",
	    "max_inflight=1", "queue_limit=4", NULL };
	struct sinkset		*set = mkset(lines);
	struct ewsgw_sink	*f = fakes[0];
	int			 want[2] = { 0, 1 }, i;

	publish(set, "a@x", "busy", "available", 1);
	ck_assert(run_until(fake_has_calls, want, 2000));
	publish(set, "a@x", "available", "busy", 2);
	publish(set, "a@x", "away", "available", 3);
	publish(set, "b@x", "busy", "available", 1);
	/* Full: a's waiting changes 2 and 3 collapse into 3. */
	publish(set, "b@x", "away", "busy", 2);
	ck_assert_uint_eq(sinkset_depth(set), 4);
	/* Still full: 4 replaces a's waiting 3. */
	publish(set, "a@x", "unknown", "away", 4);
	ck_assert_uint_eq(sinkset_depth(set), 4);
	ck_assert(status_num(set, 0, "dropped") == 2);

	for (i = 0; i < 4; i++) {
		want[1] = i + 1;
		ck_assert(run_until(fake_has_calls, want, 2000));
		run_for(5);
		ck_assert_int_eq(f->ncalls, i + 1);
		ewsgw_host_done(f->host, f->calls[i].token, EWSGW_SINK_OK);
	}
	ck_assert(run_until(depth_zero, set, 2000));
	ck_assert_int_eq(f->ncalls, 4);
	/* a: 1 then the newest 4, whose previous is the last state seen. */
	ck_assert_str_eq(f->calls[0].mailbox, "a@x");
	ck_assert_int_eq(f->calls[0].seq, 1);
	for (i = 1; i < 4; i++) {
		if (strcmp(f->calls[i].mailbox, "a@x") != 0)
			continue;
		ck_assert_int_eq(f->calls[i].seq, 4);
		ck_assert_str_eq(f->calls[i].presence, "unknown");
		ck_assert_str_eq(f->calls[i].previous, "busy");
	}
	/* b keeps both: they fit in the queue. */
	{
		int b = 0;

		for (i = 0; i < 4; i++)
			if (strcmp(f->calls[i].mailbox, "b@x") == 0)
				ck_assert_int_eq(f->calls[i].seq, ++b);
		ck_assert_int_eq(b, 2);
	}
	sinkset_free(set);
}
END_TEST

START_TEST(test_health_json_and_metrics)
{
	const char *const lines[] = { "[sink s\"q] fake", "mode=async", NULL };
	struct sinkset		*set = mkset(lines);
	struct json_value	*v;
	struct buf		 m = BUF_INIT;
	struct json_writer	 w;
	int			 want[2] = { 0, 1 };

	publish(set, "a@x", "busy", "available", 1);
	publish(set, "b@x", "busy", "available", 1);
	publish(set, "b@x", "available", "busy", 2);
	ck_assert(run_until(fake_has_calls, want, 2000));
	fakes[0]->healthy = false;
	json_writer_init(&w, &m);
	v = status_of(set);
	ck_assert_ptr_nonnull(v->child);
	ck_assert_ptr_null(v->child->next);
	ck_assert_str_eq(json_get_str(v->child, "name", ""), "s\"q");
	ck_assert_str_eq(json_get_str(v->child, "type", ""), "fake");
	ck_assert(json_get_num(v->child, "queue", -1) == 3);
	ck_assert(json_get_num(v->child, "queue_limit", -1) == 10000);
	ck_assert(json_get_num(v->child, "in_flight", -1) == 2);
	ck_assert(json_get_num(v->child, "delivered", -1) == 0);
	ck_assert(!json_get_bool(v->child, "healthy", true));
	ck_assert_str_eq(json_get_str(v->child, "detail", ""), "2 calls");
	ck_assert_ptr_nonnull(json_get(v->child, "last_error"));
	ck_assert_int_eq(json_get(v->child, "last_error")->type, JSON_NULL);
	json_free(v);

	sinkset_summary_json(set, &w);
	ck_assert_str_eq(buf_str(&m),
	    "{\"healthy\":0,\"total\":1,\"queue\":3}");
	buf_reset(&m);
	sinkset_metrics(set, &m);
	ck_assert_ptr_nonnull(strstr(buf_str(&m),
	    "# TYPE ewsgw_sink_queue_depth gauge\n"
	    "ewsgw_sink_queue_depth{sink=\"s\\\"q\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(buf_str(&m),
	    "ewsgw_sink_failures_total{sink=\"s\\\"q\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(buf_str(&m),
	    "ewsgw_sink_healthy{sink=\"s\\\"q\"} 0\n"));
	buf_free(&m);
	sinkset_free(set);
}
END_TEST

static int	 flush_called;
static size_t	 flush_left;

static void
flush_cb(void *arg, size_t left)
{
	flush_called++;
	flush_left = left;
}

static bool
flushed(void *arg)
{
	return (flush_called > 0);
}

START_TEST(test_flush_bounded)
{
	const char *const lines[] = {
	    "[sink stuck] fake", "mode=async",
	    "[sink retry] fake", "fail_first=1", "retry_initial=1h",
	    NULL };
	struct sinkset	*set = mkset(lines);
	int64_t		 t0;

	publish(set, "a@x", "busy", "available", 1);
	run_for(20);
	/* "retry" is now backing off for about an hour. */
	ck_assert(status_num(set, 1, "failed") == 1);
	flush_called = 0;
	t0 = time_mono_ms();
	sinkset_flush(set, 300, flush_cb, NULL);
	ck_assert_int_eq(flush_called, 0);	/* never from inside */
	ck_assert(run_until(flushed, NULL, 5000));
	ck_assert_int_eq(flush_called, 1);
	/* The retry was brought forward; the stuck one ran out of time. */
	ck_assert(status_num(set, 1, "delivered") == 1);
	ck_assert_uint_eq(flush_left, 1);
	ck_assert_int_ge(time_mono_ms() - t0, 290);
	run_for(20);
	ck_assert_int_eq(flush_called, 1);
	sinkset_free(set);

	/* Nothing queued: completes on the next loop pass. */
	{
		const char *const l2[] = { "[sink f] fake", NULL };

		set = mkset(l2);
		flush_called = 0;
		sinkset_flush(set, 10000, flush_cb, NULL);
		ck_assert(run_until(flushed, NULL, 1000));
		ck_assert_uint_eq(flush_left, 0);
		sinkset_free(set);
	}
}
END_TEST

/* test_reload's first state: "keep" delivered both, "change" retries. */
static bool
reload_ready(void *arg)
{
	return (status_num(arg, 0, "delivered") == 2 &&
	    status_num(arg, 1, "retrying") == 1);
}

START_TEST(test_reload)
{
	const char *const v1[] = {
	    "[sink keep] fake",
	    "[sink change] fake", "mode=async", "max_inflight=1",
	    "fail_first=1", "retry_initial=1h",
	    "[sink gone] fake", NULL };
	const char *const v2[] = {
	    "[sink new] fake",
	    "[sink keep] fake",
	    "[sink change] fake", NULL };
	const char *const bad[] = {
	    "[sink keep] fake", "[sink x] nosuchtype", NULL };
	struct sinkset		*set = mkset(v1);
	struct config		*conf;
	struct ewsgw_sink	*keep = fakes[0];
	struct json_value	*v;
	char			*errors = NULL;

	publish(set, "a@x", "busy", "available", 1);
	publish(set, "a@x", "available", "busy", 2);
	ck_assert(run_until(reload_ready, set, 2000));
	ck_assert(status_num(set, 0, "delivered") == 2);
	ck_assert(status_num(set, 1, "queue") == 2);
	ck_assert(status_num(set, 1, "retrying") == 1);

	/* A bad configuration changes nothing. */
	conf = mkconf(bad);
	ck_assert_int_eq(sinkset_reload(set, conf, &errors), -1);
	ck_assert_ptr_nonnull(strstr(errors,
	    "/etc/ewsgw.conf:2: sink x: unknown sink type 'nosuchtype'"));
	free(errors);
	errors = NULL;
	freeconf(conf);
	ck_assert_int_eq(keep->reopened, 0);
	v = status_of(set);
	ck_assert_str_eq(json_get_str(v->child->next->next, "name", ""),
	    "gone");
	json_free(v);

	conf = mkconf(v2);
	ck_assert_int_eq(sinkset_reload(set, conf, &errors), 0);
	ck_assert_ptr_null(errors);
	freeconf(conf);
	v = status_of(set);
	ck_assert_str_eq(json_get_str(v->child, "name", ""), "new");
	ck_assert_str_eq(json_get_str(v->child->next, "name", ""), "keep");
	ck_assert_str_eq(json_get_str(v->child->next->next, "name", ""),
	    "change");
	ck_assert_ptr_null(v->child->next->next->next);
	json_free(v);
	/* Unchanged: same instance, counters kept, files reopened. */
	ck_assert_ptr_eq(fakes[0], keep);
	ck_assert_int_eq(keep->reopened, 1);
	ck_assert(status_num(set, 1, "delivered") == 2);
	/* Changed: the new instance delivers what the old one held. */
	ck_assert(run_until(depth_zero, set, 2000));
	ck_assert(status_num(set, 2, "delivered") == 2);
	ck_assert(status_num(set, 2, "retrying") == 0);
	sinkset_free(set);
}
END_TEST

/* ---- validation ---- */

START_TEST(test_validate_errors)
{
	const char *const unknown[] = { "[sink f] file", "path=/tmp/x.json",
	    "bogus=1", NULL };
	const char *const missing[] = { "[sink f] file",
	    "log=/tmp/x.log", NULL };
	const char *const badval[] = { "[sink e] exec", "command=true",
	    "max_parallel=zero", "timeout=soon", NULL };
	const char *const badtype[] = { "[sink t] carrierpigeon", NULL };
	const char *const notype[] = { "[sink t] -", NULL };
	const char *const good[] = { "[sink e] exec", "command=true",
	    "max_parallel=2", "timeout=5s", "queue_limit=100", NULL };
	const char *const badhost[] = { "[sink l] log",
	    "queue_limit=-5", "retry_initial=2s", "retry_max=1s", NULL };
	char	*e;

	e = validate(unknown);
	ck_assert_str_eq(e, "/etc/ewsgw.conf:3: sink f: unknown key 'bogus' "
	    "for type file\n");
	free(e);
	e = validate(missing);
	ck_assert_str_eq(e,
	    "/etc/ewsgw.conf:1: sink f: missing required key path\n");
	free(e);
	e = validate(badval);
	ck_assert_ptr_nonnull(strstr(e, "/etc/ewsgw.conf:3: sink e: "
	    "max_parallel: expected an integer"));
	ck_assert_ptr_nonnull(strstr(e, "/etc/ewsgw.conf:4: sink e: "
	    "timeout: invalid duration 'soon'"));
	ck_assert_int_eq(count_lines(e), 2);
	free(e);
	e = validate(badtype);
	ck_assert_str_eq(e, "/etc/ewsgw.conf:1: sink t: unknown sink type "
	    "'carrierpigeon'\n");
	free(e);
	e = validate(notype);
	ck_assert_str_eq(e,
	    "/etc/ewsgw.conf:1: sink t: missing required key type\n");
	free(e);
	ck_assert_ptr_null(validate(good));
	e = validate(badhost);
	ck_assert_ptr_nonnull(strstr(e, "/etc/ewsgw.conf:2: sink l: "
	    "queue_limit"));
	ck_assert_ptr_nonnull(strstr(e, "/etc/ewsgw.conf:4: sink l: "
	    "retry_max must not be below retry_initial"));
	free(e);

	/* All sections at once, as --check-config does. */
	{
		const char *const two[] = { "[sink a] log", "level=loud",
		    "[sink b] exec", NULL };
		struct config	*conf = mkconf(two);

		e = NULL;
		ck_assert_int_eq(sinkset_validate(conf, &e), -1);
		ck_assert_str_eq(e, "/etc/ewsgw.conf:2: sink a: level: unknown "
		    "log level 'loud' (debug, info, notice, warning, err)\n"
		    "/etc/ewsgw.conf:3: sink b: missing required key "
		    "command\n");
		free(e);
		freeconf(conf);
	}

	/* sinkset_new reports the same, and refuses to start. */
	e = mkset_fail(unknown);
	ck_assert_str_eq(e, "/etc/ewsgw.conf:3: sink f: unknown key 'bogus' "
	    "for type file\n");
	free(e);
}
END_TEST

START_TEST(test_validate_duplicate_name)
{
	const char *const dup[] = { "[sink a] log", "[sink a] log", NULL };
	char	*e;

	e = mkset_fail(dup);
	ck_assert_str_eq(e, "/etc/ewsgw.conf:2: sink a: duplicate sink name\n");
	free(e);
}
END_TEST

/* ---- plugins ---- */

static char *
plugin_path(const char *name)
{
	const char	*top = getenv("top_builddir");
	char		*p;

	if (top == NULL)
		top = ABS_TOP_BUILDDIR;
	xasprintf(&p, "path=%s/tests/plugins/.libs/%s.so", top, name);
	return (p);
}

START_TEST(test_plugin_example)
{
	char		*pp = plugin_path("example_sink"), *out, *text;
	const char	*lines[] = { "[sink ex] plugin", pp, NULL, NULL };
	struct sinkset	*set;

	xasprintf(&out, "output=%s/example.txt", tmpdir);
	lines[2] = out;
	ck_assert_ptr_null(validate(lines));
	set = mkset(lines);
	publish(set, "a@x", "busy", "available", 1);
	publish(set, "b@x", "away", NULL, 5);
	publish(set, "a@x", "available", "busy", 2);
	ck_assert(run_until(depth_zero, set, 2000));
	sinkset_free(set);
	text = slurp(out + strlen("output="));
	ck_assert_ptr_nonnull(text);
	ck_assert_str_eq(text, "a@x available -> busy 1\n"
	    "b@x none -> away 5\n"
	    "a@x busy -> available 2\n");
	free(text);
	free(out);
	free(pp);
}
END_TEST

START_TEST(test_plugin_rejected)
{
	char		*bad = plugin_path("bad_abi_sink");
	const char	*l1[] = { "[sink b] plugin", bad, NULL };
	const char	*l2[] = { "[sink m] plugin",
	    "path=/nonexistent/nothing.so", NULL };
	const char	*l3[] = { "[sink n] plugin", NULL };
	char		*e;

	e = mkset_fail(l1);
	ck_assert_ptr_nonnull(strstr(e, "/etc/ewsgw.conf:2: sink b: plugin "));
	ck_assert_ptr_nonnull(strstr(e, "has sink ABI version 999, this "
	    "ewsgw needs 1\n"));
	free(e);
	e = validate(l1);
	ck_assert_ptr_nonnull(strstr(e, "has sink ABI version 999"));
	free(e);
	e = mkset_fail(l2);
	ck_assert_ptr_nonnull(strstr(e,
	    "/etc/ewsgw.conf:2: sink m: cannot load plugin: "));
	free(e);
	e = validate(l3);
	ck_assert_str_eq(e, "/etc/ewsgw.conf:1: sink n: missing required "
	    "key path (the plugin module)\n");
	free(e);
	free(bad);
}
END_TEST

/* ---- built-in sinks ---- */

START_TEST(test_log_sink)
{
	const char *const lines[] = { "[sink journal] log", "level=notice",
	    NULL };
	struct sinkset	*set;
	char		 path[300], *text;
	int		 fd, saved;

	snprintf(path, sizeof path, "%s/stderr", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ne(fd, -1);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_init("check_sink", LOG_TARGET_STDERR, LOG_INFO);

	set = mkset(lines);
	publish(set, "a@x", "busy", "available", 3);
	ck_assert(run_until(depth_zero, set, 2000));
	sinkset_free(set);

	dup2(saved, STDERR_FILENO);
	close(saved);
	log_init("check_sink", LOG_TARGET_STDERR, LOG_ERR);
	text = slurp(path);
	ck_assert_ptr_nonnull(strstr(text, " notice: a@x: presence available "
	    "-> busy activity meeting since 2026-11-29T11:00:00Z until "
	    "2026-11-29T12:00:00Z (calendar, seq 3)\n"));
	ck_assert_int_eq(count_lines(text), 1);
	free(text);
}
END_TEST

START_TEST(test_file_sink)
{
	char		 state[300], logp[300], *text, *cause = NULL;
	char		*kpath, *klog;
	const char	*first;
	const char	*lines[] = { "[sink f] file", NULL, NULL,
	    "interval=0", NULL };
	struct sinkset	*set;
	struct json_value *v;
	const struct json_value *mbs, *m;
	struct stat	 st1, st2;
	char		 mb[32];
	int		 i, n;

	snprintf(state, sizeof state, "%s/state.json", tmpdir);
	snprintf(logp, sizeof logp, "%s/changes.log", tmpdir);
	xasprintf(&kpath, "path=%s", state);
	xasprintf(&klog, "log=%s", logp);
	lines[1] = kpath;
	lines[2] = klog;
	set = mkset(lines);

	publish(set, "a@x", "busy", "available", 1);
	ck_assert(run_until(depth_zero, set, 2000));
	wait_state(state, "\"a@x\":{\"presence\":\"busy\"", true);
	ck_assert_int_eq(stat(state, &st1), 0);

	for (i = 0; i < 500; i++) {
		snprintf(mb, sizeof mb, "m%03d@x", i % 50);
		publish(set, mb, i % 2 ? "available" : "busy",
		    i % 2 ? "busy" : "available", (uint64_t)i);
	}
	publish(set, "a@x", "away", "busy", 2);
	ck_assert(run_until(depth_zero, set, 5000));
	/* Written after every earlier change: the document holds them. */
	wait_state(state, "\"a@x\":{\"presence\":\"away\"", true);
	/* Replaced by rename, not rewritten in place. */
	ck_assert_int_eq(stat(state, &st2), 0);
	ck_assert(st1.st_ino != st2.st_ino);

	text = slurp(state);
	v = json_parse(text, strlen(text), &cause);
	ck_assert_ptr_nonnull(v);
	mbs = json_get(v, "mailboxes");
	ck_assert_ptr_nonnull(mbs);
	for (n = 0, m = mbs->child; m != NULL; m = m->next)
		n++;
	ck_assert_int_eq(n, 51);
	m = json_get(mbs, "a@x");
	ck_assert_str_eq(json_get_str(m, "presence", ""), "away");
	ck_assert_int_eq(json_get(m, "activity")->type, JSON_NULL);
	ck_assert_str_eq(json_get_str(m, "since", ""), "2026-11-29T11:00:00Z");
	ck_assert_int_eq(json_get(m, "until")->type, JSON_NULL);
	ck_assert_int_eq(json_get(m, "updated")->type, JSON_STRING);
	m = json_get(mbs, "m049@x");
	ck_assert_str_eq(json_get_str(m, "presence", ""), "available");
	m = json_get(mbs, "m000@x");
	ck_assert_str_eq(json_get_str(m, "presence", ""), "busy");
	ck_assert_str_eq(json_get_str(m, "activity", ""), "meeting");
	ck_assert_str_eq(json_get_str(m, "until", ""), "2026-11-29T12:00:00Z");
	json_free(v);
	free(text);

	/* The change log: one exact line per change. */
	text = slurp(logp);
	ck_assert_int_eq(count_lines(text), 502);
	first = "{\"mailbox\":\"a@x\",\"presence\":\"busy\","
	    "\"previous\":\"available\",\"activity\":\"meeting\","
	    "\"since\":\"2026-11-29T11:00:00Z\","
	    "\"until\":\"2026-11-29T12:00:00Z\",\"source\":\"calendar\","
	    "\"seq\":1}\n{\"mailbox\":\"m000@x\",";
	ck_assert(strncmp(text, first, strlen(first)) == 0);
	ck_assert_ptr_nonnull(strstr(text, "\n{\"mailbox\":\"a@x\","
	    "\"presence\":\"away\",\"previous\":\"busy\",\"activity\":null,"
	    "\"since\":\"2026-11-29T11:00:00Z\",\"until\":null,"
	    "\"source\":\"calendar\",\"seq\":2}\n"));
	free(text);

	/* Log rotation: reopen writes to a fresh file. */
	ck_assert_int_eq(unlink(logp), 0);
	sinkset_reopen(set);
	publish(set, "a@x", "available", "away", 3);
	ck_assert(run_until(depth_zero, set, 2000));
	text = slurp(logp);
	ck_assert_int_eq(count_lines(text), 1);
	free(text);
	sinkset_free(set);
	free(kpath);
	free(klog);
}
END_TEST

/*
 * More changes than one batch (max_inflight) holds: every change gets
 * exactly one line, in order per mailbox, and counts as delivered once
 * its batch is written.
 */
START_TEST(test_file_sink_log_batches)
{
	char		 state[300], logp[300], mb[32], needle[64], *text;
	char		*kpath, *klog;
	const char	*lines[] = { "[sink f] file", NULL, NULL,
	    "max_inflight=64", NULL };
	const char	*p, *q;
	struct sinkset	*set;
	int		 i;

	snprintf(state, sizeof state, "%s/state.json", tmpdir);
	snprintf(logp, sizeof logp, "%s/changes.log", tmpdir);
	xasprintf(&kpath, "path=%s", state);
	xasprintf(&klog, "log=%s", logp);
	lines[1] = kpath;
	lines[2] = klog;
	set = mkset(lines);
	/* Two changes for each of 150 mailboxes, the second 150 later. */
	for (i = 0; i < 300; i++) {
		snprintf(mb, sizeof mb, "m%03d@x", i % 150);
		publish(set, mb, i < 150 ? "busy" : "available",
		    i < 150 ? "available" : "busy", (uint64_t)i + 1);
	}
	ck_assert(run_until(depth_zero, set, 5000));
	ck_assert(status_num(set, 0, "delivered") == 300);
	ck_assert(status_num(set, 0, "failed") == 0);
	text = slurp(logp);
	ck_assert_int_eq(count_lines(text), 300);
	for (i = 0; i < 150; i++) {
		snprintf(needle, sizeof needle, "\"seq\":%d}\n", i + 1);
		ck_assert_ptr_nonnull(p = strstr(text, needle));
		ck_assert_ptr_null(strstr(p + 1, needle));
		snprintf(needle, sizeof needle, "\"seq\":%d}\n", i + 151);
		ck_assert_ptr_nonnull(q = strstr(text, needle));
		ck_assert_ptr_null(strstr(q + 1, needle));
		/* The mailbox's first change before its second. */
		ck_assert(p < q);
	}
	free(text);
	wait_state(state, "\"m149@x\":{\"presence\":\"available\"", true);
	sinkset_free(set);
	free(kpath);
	free(klog);
}
END_TEST

static bool
failed_two(void *arg)
{
	return (status_num(arg, 0, "failed") >= 2);
}

/*
 * A batch whose lines cannot be written fails every change in it; they
 * are retried in order and each line is written once when the log can
 * take it again.
 */
START_TEST(test_file_sink_log_failure)
{
	char		 state[300], logp[300], *text, *kpath, *klog;
	const char	*lines[] = { "[sink f] file", NULL, NULL,
	    "retry_initial=100ms", "retry_max=200ms", NULL };
	const char	*a1, *a3;
	struct sinkset	*set;
	int		 fd;

	snprintf(state, sizeof state, "%s/state.json", tmpdir);
	snprintf(logp, sizeof logp, "%s/changes.log", tmpdir);
	/* Every write to the log fails (ENOSPC) until it is replaced. */
	ck_assert_int_eq(symlink("/dev/full", logp), 0);
	xasprintf(&kpath, "path=%s", state);
	xasprintf(&klog, "log=%s", logp);
	lines[1] = kpath;
	lines[2] = klog;
	set = mkset(lines);
	publish(set, "a@x", "busy", "available", 1);
	publish(set, "b@x", "away", "available", 2);
	publish(set, "a@x", "available", "busy", 3);
	/* One batch (a@x's first change, b@x's): both failed at once. */
	ck_assert(run_until(failed_two, set, 5000));
	ck_assert(status_num(set, 0, "failed") == 2);
	ck_assert(status_num(set, 0, "delivered") == 0);
	ck_assert_uint_eq(sinkset_depth(set), 3);

	ck_assert_int_eq(unlink(logp), 0);
	ck_assert((fd = open(logp, O_WRONLY | O_CREAT, 0644)) != -1);
	close(fd);
	sinkset_reopen(set);
	ck_assert(run_until(depth_zero, set, 10000));
	ck_assert(status_num(set, 0, "delivered") == 3);
	text = slurp(logp);
	ck_assert_int_eq(count_lines(text), 3);
	ck_assert_ptr_nonnull(a1 = strstr(text, "{\"mailbox\":\"a@x\","
	    "\"presence\":\"busy\""));
	ck_assert_ptr_nonnull(a3 = strstr(text, "{\"mailbox\":\"a@x\","
	    "\"presence\":\"available\""));
	ck_assert(a1 < a3);
	ck_assert_ptr_nonnull(strstr(text, "\"seq\":2}\n"));
	free(text);
	wait_state(state, "\"a@x\":{\"presence\":\"available\"", true);
	wait_state(state, "\"b@x\":{\"presence\":\"away\"", true);
	sinkset_free(set);
	free(kpath);
	free(klog);
}
END_TEST

/* forget() comes in order with the mailbox's changes, and only there. */
START_TEST(test_forget_in_order)
{
	const char *const lines[] = { "[sink f] fake", "mode=async",
	    "[sink l] log", NULL };
	struct sinkset		*set = mkset(lines);
	struct ewsgw_sink	*f;
	int			 want[2] = { 0, 1 };

	publish(set, "a@x", "busy", "available", 10);
	sinkset_forget(set, "a@x");
	publish(set, "a@x", "available", "unknown", 11);
	sinkset_forget(set, "b@x");	/* nothing queued: at once */
	ck_assert(run_until(fake_has_calls, want, 2000));
	run_for(20);
	f = fakes[0];
	ck_assert_int_eq(f->ncalls, 2);
	ck_assert_str_eq(f->calls[0].mailbox, "a@x");
	ck_assert_int_eq(f->calls[0].seq, 10);
	ck_assert_str_eq(f->calls[1].mailbox, "b@x");
	ck_assert_str_eq(f->calls[1].presence, "(forget)");
	/* a's forget waits for its change to finish, and precedes c2. */
	ewsgw_host_done(f->host, f->calls[0].token, EWSGW_SINK_OK);
	want[1] = 4;
	ck_assert(run_until(fake_has_calls, want, 2000));
	ck_assert_str_eq(f->calls[2].mailbox, "a@x");
	ck_assert_str_eq(f->calls[2].presence, "(forget)");
	ck_assert_str_eq(f->calls[3].presence, "available");
	ck_assert_int_eq(f->calls[3].seq, 11);
	ewsgw_host_done(f->host, f->calls[3].token, EWSGW_SINK_OK);
	/* The log sink has no forget(): skipped, nothing left queued. */
	ck_assert(run_until(depth_zero, set, 2000));
	ck_assert(status_num(set, 0, "delivered") == 2);
	ck_assert(status_num(set, 1, "delivered") == 2);
	sinkset_free(set);
}
END_TEST

/* A mailbox the reload removed leaves the state document. */
START_TEST(test_file_sink_forget)
{
	char		 state[300], *text, *kpath;
	const char	*lines[] = { "[sink f] file", NULL, "interval=0",
	    NULL };
	struct sinkset	*set;
	struct json_value *v;
	const struct json_value *mbs;

	snprintf(state, sizeof state, "%s/state.json", tmpdir);
	xasprintf(&kpath, "path=%s", state);
	lines[1] = kpath;
	set = mkset(lines);
	publish(set, "a@x", "busy", "available", 1);
	publish(set, "b@x", "busy", "available", 2);
	publish(set, "c@x", "busy", "available", 3);
	ck_assert(run_until(depth_zero, set, 2000));
	wait_state(state, "\"c@x\"", true);
	sinkset_forget(set, "b@x");
	sinkset_forget(set, "nobody@x");
	ck_assert(run_until(depth_zero, set, 2000));
	wait_state(state, "\"b@x\"", false);
	v = read_state(state);
	mbs = json_get(v, "mailboxes");
	ck_assert_ptr_nonnull(json_get(mbs, "a@x"));
	ck_assert_ptr_null(json_get(mbs, "b@x"));
	ck_assert_ptr_nonnull(json_get(mbs, "c@x"));
	json_free(v);
	/* Back in the next reload: back in the document, in order. */
	publish(set, "b@x", "away", "unknown", 4);
	ck_assert(run_until(depth_zero, set, 2000));
	wait_state(state, "\"b@x\"", true);
	text = slurp(state);
	ck_assert_ptr_nonnull(strstr(text, "\"a@x\":{\"presence\":\"busy\""));
	ck_assert(strstr(text, "\"a@x\"") < strstr(text, "\"b@x\"") &&
	    strstr(text, "\"b@x\"") < strstr(text, "\"c@x\""));
	ck_assert_ptr_nonnull(strstr(text, "\"b@x\":{\"presence\":\"away\""));
	free(text);
	sinkset_free(set);
	free(kpath);
}
END_TEST

/*
 * Changes and forgets while writes are in flight (interval 0, one pass
 * of the loop between changes): each lands in a later write, and the
 * last document is exactly the last state of every mailbox.
 */
START_TEST(test_file_sink_churn)
{
	char		 state[300], mb[32], *kpath;
	const char	*lines[] = { "[sink f] file", NULL, "interval=0",
	    NULL };
	const char	*last[40];
	const struct json_value *mbs, *m;
	struct sinkset	*set;
	struct json_value *v;
	int		 i, k, n;

	snprintf(state, sizeof state, "%s/state.json", tmpdir);
	xasprintf(&kpath, "path=%s", state);
	lines[1] = kpath;
	set = mkset(lines);
	memset(last, 0, sizeof last);
	for (i = 0; i < 400; i++) {
		k = (i * 7) % 40;
		snprintf(mb, sizeof mb, "m%02d@x", k);
		if (i % 9 == 4) {
			sinkset_forget(set, mb);
			last[k] = NULL;
		} else {
			last[k] = i % 3 == 0 ? "busy" : i % 3 == 1 ?
			    "away" : "available";
			publish(set, mb, last[k], "unknown", (uint64_t)i + 1);
		}
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	publish(set, "zz@x", "away", "unknown", 1000);
	ck_assert(run_until(depth_zero, set, 5000));
	wait_state(state, "\"zz@x\"", true);
	v = read_state(state);
	mbs = json_get(v, "mailboxes");
	for (n = 0, k = 0; k < 40; k++) {
		snprintf(mb, sizeof mb, "m%02d@x", k);
		m = json_get(mbs, mb);
		if (last[k] == NULL) {
			ck_assert_msg(m == NULL, "%s was forgotten", mb);
			continue;
		}
		n++;
		ck_assert_msg(m != NULL, "%s missing", mb);
		ck_assert_str_eq(json_get_str(m, "presence", ""), last[k]);
	}
	for (k = 0, m = mbs->child; m != NULL; m = m->next)
		k++;
	ck_assert_int_eq(k, n + 1);
	ck_assert(n > 0 && n < 40);
	json_free(v);
	sinkset_free(set);
	free(kpath);
}
END_TEST

START_TEST(test_file_sink_write_failure)
{
	char		 dir[300], state[320], *kpath, *e;
	const char	*lines[] = { "[sink f] file", NULL, NULL };
	const char *const nodir[] = { "[sink f] file",
	    "path=/nonexistent/dir/state.json", NULL };
	struct sinkset	*set;
	struct json_value *v;

	/* A directory that is not there is refused at start. */
	e = mkset_fail(nodir);
	ck_assert_ptr_nonnull(strstr(e, "/etc/ewsgw.conf:2: sink f: cannot "
	    "write to /nonexistent/dir: "));
	free(e);

	snprintf(dir, sizeof dir, "%s/sub", tmpdir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	snprintf(state, sizeof state, "%s/state.json", dir);
	xasprintf(&kpath, "path=%s", state);
	lines[1] = kpath;
	set = mkset(lines);
	/* The directory goes away: the sink reports itself unhealthy. */
	ck_assert_int_eq(rmdir(dir), 0);
	publish(set, "a@x", "busy", "available", 1);
	ck_assert(run_until(depth_zero, set, 2000));
	ck_assert(run_until(sink_unhealthy, set, 10000));
	v = status_of(set);
	xasprintf(&e, "cannot create %s: No such file or directory", state);
	ck_assert_str_eq(json_get_str(v->child, "detail", ""), e);
	free(e);
	json_free(v);
	ck_assert_ptr_null(slurp(state));
	/*
	 * Tried again an interval later: once the directory is back, the
	 * next write holds the change made before and one made since,
	 * and the sink is healthy again.
	 */
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	publish(set, "b@x", "away", "available", 2);
	ck_assert(run_until(depth_zero, set, 2000));
	ck_assert(run_until(sink_healthy, set, 10000));
	wait_state(state, "\"b@x\"", true);
	wait_state(state, "\"a@x\":{\"presence\":\"busy\"", true);
	v = status_of(set);
	ck_assert_str_eq(json_get_str(v->child, "detail", ""), "2 mailboxes");
	json_free(v);
	sinkset_free(set);
	/* No temporary file is left behind by the failed or good writes. */
	ck_assert_int_eq(count_entries(dir), 1);
	free(kpath);
}
END_TEST

START_TEST(test_file_sink_rate_limited)
{
	char		 state[300], *text, *kpath;
	const char	*lines[] = { "[sink f] file", NULL, "interval=1h",
	    NULL };
	struct sinkset	*set;

	snprintf(state, sizeof state, "%s/state.json", tmpdir);
	xasprintf(&kpath, "path=%s", state);
	lines[1] = kpath;
	set = mkset(lines);
	publish(set, "a@x", "busy", "available", 1);
	ck_assert(run_until(depth_zero, set, 2000));
	wait_state(state, "\"presence\":\"busy\"", true);
	/* The first write is immediate, the next waits for the interval. */
	publish(set, "a@x", "away", "busy", 2);
	ck_assert(run_until(depth_zero, set, 2000));
	run_for(20);
	text = slurp(state);
	ck_assert_ptr_nonnull(strstr(text, "\"presence\":\"busy\""));
	free(text);
	/* Flush writes what is pending. */
	flush_called = 0;
	sinkset_flush(set, 1000, flush_cb, NULL);
	ck_assert(run_until(flushed, NULL, 2000));
	text = slurp(state);
	ck_assert_ptr_nonnull(strstr(text, "\"presence\":\"away\""));
	free(text);
	sinkset_free(set);
	free(kpath);
}
END_TEST

/*
 * The last state is on disk when the sink goes, with no flush before:
 * freeing the set (the daemon's exit) and a reload that replaces the
 * sink both wait for the write in flight and write what is pending.
 */
START_TEST(test_file_sink_last_write)
{
	char		 state[300], *text, *kpath;
	const char	*lines[] = { "[sink f] file", NULL, "interval=1h",
	    NULL };
	const char	*slower[] = { "[sink f] file", NULL, "interval=2h",
	    NULL };
	struct sinkset	*set;
	struct config	*conf;
	char		*errors = NULL;

	snprintf(state, sizeof state, "%s/state.json", tmpdir);
	xasprintf(&kpath, "path=%s", state);
	lines[1] = slower[1] = kpath;

	/* Exit: the first write may still be running, the second waits. */
	set = mkset(lines);
	publish(set, "a@x", "busy", "available", 1);
	publish(set, "a@x", "away", "busy", 2);
	ck_assert(run_until(depth_zero, set, 2000));
	sinkset_free(set);
	text = slurp(state);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "\"presence\":\"away\""));
	free(text);
	ck_assert_int_eq(unlink(state), 0);

	/* Reload replacing the sink: the old one's last state is written. */
	set = mkset(lines);
	publish(set, "b@x", "busy", "available", 1);
	publish(set, "b@x", "away", "busy", 2);
	ck_assert(run_until(depth_zero, set, 2000));
	conf = mkconf(slower);
	ck_assert_int_eq(sinkset_reload(set, conf, &errors), 0);
	ck_assert_ptr_null(errors);
	freeconf(conf);
	text = slurp(state);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "\"presence\":\"away\""));
	free(text);
	sinkset_free(set);
	free(kpath);
}
END_TEST

/*
 * A reload that replaces the file sink (a changed interval, then a new
 * path) hands the state document to the new instance: its writes hold
 * every mailbox, not only those that changed since, and nothing is
 * delivered again, neither to its change log nor to a replaced sink
 * that keeps no state.
 */
START_TEST(test_file_sink_reload_keeps_state)
{
	char		 state[300], moved[300], logp[300], *text;
	char		*kpath, *kmoved, *klog, *errors = NULL;
	const char	*v1[] = { "[sink f] file", NULL, NULL, "interval=0",
	    "[sink g] fake", NULL };
	const char	*v2[] = { "[sink f] file", NULL, NULL, "interval=1h",
	    "[sink g] fake", "fail_first=0", NULL };
	const char	*v3[] = { "[sink f] file", NULL, NULL, "interval=1h",
	    "[sink g] fake", NULL };
	const char	*want[] = { "a@x", "b@x", "c@x" };
	const char	*pres[] = { "busy", "away", "available" };
	const char	*docs[2];
	const struct json_value *mbs;
	struct sinkset	*set;
	struct config	*conf;
	struct json_value *v;
	size_t		 d, i;

	snprintf(state, sizeof state, "%s/state.json", tmpdir);
	snprintf(moved, sizeof moved, "%s/moved.json", tmpdir);
	snprintf(logp, sizeof logp, "%s/changes.log", tmpdir);
	xasprintf(&kpath, "path=%s", state);
	xasprintf(&kmoved, "path=%s", moved);
	xasprintf(&klog, "log=%s", logp);
	v1[1] = v2[1] = kpath;
	v3[1] = kmoved;
	v1[2] = v2[2] = v3[2] = klog;
	set = mkset(v1);
	publish(set, "a@x", "busy", "available", 1);
	publish(set, "b@x", "away", "available", 2);
	ck_assert(run_until(depth_zero, set, 2000));
	wait_state(state, "\"b@x\"", true);

	/* Same path, another interval; the fake changes too. */
	conf = mkconf(v2);
	ck_assert_int_eq(sinkset_reload(set, conf, &errors), 0);
	ck_assert_ptr_null(errors);
	freeconf(conf);
	publish(set, "c@x", "available", "unknown", 3);
	ck_assert(run_until(depth_zero, set, 2000));
	ck_assert_ptr_nonnull(fakes[1]);
	ck_assert_int_eq(fakes[1]->ncalls, 1);
	ck_assert_str_eq(fakes[1]->calls[0].mailbox, "c@x");
	/* Another path: the document moves over whole. */
	conf = mkconf(v3);
	ck_assert_int_eq(sinkset_reload(set, conf, &errors), 0);
	ck_assert_ptr_null(errors);
	freeconf(conf);
	flush_called = 0;
	sinkset_flush(set, 1000, flush_cb, NULL);
	ck_assert(run_until(flushed, NULL, 2000));

	docs[0] = state;
	docs[1] = moved;
	for (d = 0; d < 2; d++) {
		v = read_state(docs[d]);
		mbs = json_get(v, "mailboxes");
		ck_assert_ptr_nonnull(mbs);
		for (i = 0; i < 3; i++) {
			ck_assert_msg(json_get(mbs, want[i]) != NULL,
			    "%s: %s missing", docs[d], want[i]);
			ck_assert_str_eq(json_get_str(json_get(mbs, want[i]),
			    "presence", ""), pres[i]);
		}
		json_free(v);
	}
	/* One line per change, nothing replayed to any sink. */
	text = slurp(logp);
	ck_assert_int_eq(count_lines(text), 3);
	free(text);
	ck_assert_ptr_nonnull(fakes[2]);
	ck_assert_int_eq(fakes[2]->ncalls, 0);
	ck_assert(status_num(set, 1, "delivered") == 0);
	sinkset_free(set);
	free(kpath);
	free(kmoved);
	free(klog);
}
END_TEST

START_TEST(test_exec_sink_env)
{
	char		*cmd, out[300], *text;
	const char	*lines[] = { "[sink x] exec", NULL, NULL };
	struct sinkset	*set;

	snprintf(out, sizeof out, "%s/exec.out", tmpdir);
	xasprintf(&cmd, "command=echo \"$EWSGW_MAILBOX|$EWSGW_PRESENCE|"
	    "$EWSGW_PREVIOUS|$EWSGW_ACTIVITY|$EWSGW_SINCE|$EWSGW_UNTIL|"
	    "$EWSGW_SOURCE|$EWSGW_SEQ|$EWSGW_SINK\" >> %s; "
	    "test \"$EWSGW_SEQ\" != 2", out);
	lines[1] = cmd;
	/* EWSGW_ variables of the daemon itself are not passed on. */
	setenv("EWSGW_PREVIOUS", "leak", 1);
	set = mkset(lines);
	publish(set, "a@x", "busy", "available", 1);
	publish(set, "b@x", "available", NULL, 3);
	ck_assert(run_until(depth_zero, set, 5000));
	unsetenv("EWSGW_PREVIOUS");
	text = slurp(out);
	ck_assert_ptr_nonnull(strstr(text, "a@x|busy|available|meeting|"
	    "2026-11-29T11:00:00Z|2026-11-29T12:00:00Z|calendar|1|x\n"));
	ck_assert_ptr_nonnull(strstr(text, "b@x|available|||"
	    "2026-11-29T11:00:00Z||calendar|3|x\n"));
	ck_assert_int_eq(count_lines(text), 2);
	free(text);
	ck_assert(status_num(set, 0, "delivered") == 2);
	ck_assert(status_num(set, 0, "failed") == 0);
	sinkset_free(set);
	free(cmd);
}
END_TEST

static bool
file_has_line(void *arg)
{
	char	*text;
	bool	 yes;

	if ((text = slurp(arg)) == NULL)
		return (false);
	yes = strchr(text, '\n') != NULL;
	free(text);
	return (yes);
}

/*
 * The command sees descriptors 0-2 only: not the daemon's sockets, nor
 * one a library opened without close-on-exec (as curl's were).  Read
 * from /proc/PID/fd of the command itself once it has become sleep.
 */
START_TEST(test_exec_sink_fds)
{
	char		*cmd, out[300], *text, path[64], comm[32];
	char		 extra[sizeof(((struct dirent *)0)->d_name)];
	const char	*lines[] = { "[sink x] exec", NULL, NULL };
	struct sinkset	*set;
	struct dirent	*de;
	DIR		*d;
	FILE		*f;
	long		 pid;
	int		 leak_fd, leak_sock, n = 0, tries;
	bool		 slept = false;

	leak_fd = open("/dev/null", O_RDONLY);		/* no O_CLOEXEC */
	leak_sock = socket(AF_INET, SOCK_STREAM, 0);	/* no SOCK_CLOEXEC */
	ck_assert_int_ge(leak_fd, 3);
	ck_assert_int_ge(leak_sock, 3);
	snprintf(out, sizeof out, "%s/exec.pid", tmpdir);
	xasprintf(&cmd, "command=echo $$ > %s; exec sleep 3", out);
	lines[1] = cmd;
	set = mkset(lines);
	publish(set, "a@x", "busy", "available", 1);
	ck_assert(run_until(file_has_line, out, 5000));
	text = slurp(out);
	pid = strtol(text, NULL, 10);
	free(text);
	ck_assert_int_gt(pid, 0);
	snprintf(path, sizeof path, "/proc/%ld/comm", pid);
	for (tries = 0; tries < 500 && !slept; tries++) {
		if ((f = fopen(path, "r")) != NULL) {
			slept = fgets(comm, sizeof comm, f) != NULL &&
			    strncmp(comm, "sleep", 5) == 0;
			fclose(f);
		}
		if (!slept)
			usleep(10000);
	}
	ck_assert(slept);
	/*
	 * comm says sleep as soon as execve() returns, while the dynamic
	 * loader may still hold a library open for a moment: an extra fd
	 * must persist (a leaked one does) for 5 s to count.
	 */
	snprintf(path, sizeof path, "/proc/%ld/fd", pid);
	for (tries = 0; tries < 500; tries++) {
		d = opendir(path);
		ck_assert_ptr_nonnull(d);
		n = 0;
		extra[0] = '\0';
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			if (atoi(de->d_name) > 2)
				snprintf(extra, sizeof extra, "%s", de->d_name);
			n++;
		}
		closedir(d);
		if (extra[0] == '\0')
			break;
		usleep(10000);
	}
	ck_assert_msg(extra[0] == '\0', "the command has fd %s", extra);
	ck_assert_int_eq(n, 3);
	kill((pid_t)pid, SIGTERM);
	close(leak_fd);
	close(leak_sock);
	sinkset_free(set);
	free(cmd);
}
END_TEST

START_TEST(test_exec_sink_failure_and_order)
{
	char		*cmd, out[300], *text;
	const char	*lines[] = { "[sink x] exec", NULL, "max_parallel=3",
	    "retry_initial=10ms", "retry_max=20ms", NULL };
	struct sinkset	*set;

	snprintf(out, sizeof out, "%s/exec.out", tmpdir);
	/* seq 2 fails once (marker file), so it is retried. */
	xasprintf(&cmd, "command=if [ \"$EWSGW_SEQ\" = 2 ] && "
	    "[ ! -e %s.failed ]; then : > %s.failed; exit 3; fi; "
	    "echo \"$EWSGW_MAILBOX $EWSGW_SEQ\" >> %s", out, out, out);
	lines[1] = cmd;
	set = mkset(lines);
	publish(set, "a@x", "busy", "available", 1);
	publish(set, "a@x", "available", "busy", 2);
	publish(set, "a@x", "away", "available", 3);
	publish(set, "b@x", "away", "available", 1);
	ck_assert(run_until(depth_zero, set, 10000));
	text = slurp(out);
	/* a's changes in order, despite parallel children and a retry. */
	ck_assert_ptr_nonnull(strstr(text, "a@x 1\n"));
	ck_assert(strstr(text, "a@x 1\n") < strstr(text, "a@x 2\n"));
	ck_assert(strstr(text, "a@x 2\n") < strstr(text, "a@x 3\n"));
	ck_assert_ptr_nonnull(strstr(text, "b@x 1\n"));
	ck_assert_int_eq(count_lines(text), 4);
	free(text);
	ck_assert(status_num(set, 0, "failed") == 1);
	ck_assert(status_num(set, 0, "delivered") == 4);
	sinkset_free(set);
	free(cmd);
}
END_TEST

/* Whether pid is gone (or only a zombie nobody reaped yet). */
static bool
pid_gone(pid_t pid)
{
	char	 path[64], *stat, *p;
	bool	 gone;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((stat = slurp(path)) == NULL)
		return (true);
	p = strrchr(stat, ')');
	gone = p != NULL && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
	free(stat);
	return (gone);
}

/* Whether path holds a whole line (a writer may have created it empty). */
static bool
has_line(const char *path)
{
	char	*text = slurp(path);
	bool	 yes;

	yes = text != NULL && strchr(text, '\n') != NULL;
	free(text);
	return (yes);
}

START_TEST(test_exec_sink_timeout)
{
	char		 pidfile[300], *cmd, *text;
	const char	*lines[] = { "[sink x] exec", NULL,
	    "timeout=100ms", "retry_initial=1h", NULL };
	struct sinkset	*set;
	struct json_value *v;
	int64_t		 t0;
	pid_t		 grandchild;
	bool		 gone;

	/*
	 * A pipeline: the background sleep must be killed as well.  It
	 * sleeps far longer than this test may run, so a child or a
	 * grandchild that is gone was killed, it did not finish.
	 */
	snprintf(pidfile, sizeof pidfile, "%s/pid", tmpdir);
	xasprintf(&cmd, "command=sleep 3600 & echo $! > %s; wait", pidfile);
	lines[1] = cmd;
	set = mkset(lines);
	publish(set, "a@x", "busy", "available", 1);
	/*
	 * One loop pass spawns the command and arms its timeout, which
	 * only a later pass can run.  Hold the loop until the shell has
	 * started the sleep: on a loaded machine that takes longer than
	 * the timeout, which would then kill the shell before it has a
	 * child.
	 */
	event_base_loop(base, EVLOOP_ONCE);
	ck_assert(status_num(set, 0, "in_flight") == 1);
	while (!has_line(pidfile))
		usleep(10000);
	text = slurp(pidfile);
	grandchild = (pid_t)atol(text);
	ck_assert_int_gt(grandchild, 1);
	free(text);
	ck_assert(!pid_gone(grandchild));
	ck_assert(status_num(set, 0, "failed") == 0);

	/* The timeout is long past: the next passes kill and reap. */
	t0 = time_mono_ms();
	while (status_num(set, 0, "failed") < 1 && time_mono_ms() - t0 < 5000)
		run_for(10);
	ck_assert(status_num(set, 0, "failed") == 1);
	ck_assert_int_lt(time_mono_ms() - t0, 5000);
	v = status_of(set);
	ck_assert_ptr_nonnull(strstr(json_get_str(v->child, "last_error", ""),
	    "timed out"));
	ck_assert_ptr_nonnull(strstr(json_get_str(v->child, "detail", ""),
	    "1 timed out"));
	ck_assert(strstr(json_get_str(v->child, "detail", ""), "0/4 running"));
	json_free(v);
	/* Killed with its process group, not left to sleep on. */
	t0 = time_mono_ms();
	while (!pid_gone(grandchild) && time_mono_ms() - t0 < 20000)
		usleep(10000);
	if (!(gone = pid_gone(grandchild)))
		kill(grandchild, SIGKILL);
	ck_assert_msg(gone, "the background sleep survived");
	sinkset_free(set);
	free(cmd);
}
END_TEST

START_TEST(test_exec_sink_parallel_bounded)
{
	char		*cmd, *text, runs[300], out[300], *p;
	const char	*lines[] = { "[sink x] exec", NULL, "max_parallel=2",
	    NULL };
	struct sinkset	*set;
	char		 mb[16];
	int		 i, max = 0, n;

	snprintf(runs, sizeof runs, "%s/running", tmpdir);
	snprintf(out, sizeof out, "%s/counts", tmpdir);
	ck_assert_int_eq(mkdir(runs, 0700), 0);
	/* Each child counts the children running with it. */
	xasprintf(&cmd, "command=: > %s/$EWSGW_MAILBOX; "
	    "ls %s | wc -l >> %s; sleep 0.2; rm %s/$EWSGW_MAILBOX",
	    runs, runs, out, runs);
	lines[1] = cmd;
	set = mkset(lines);
	for (i = 0; i < 6; i++) {
		snprintf(mb, sizeof mb, "m%d", i);
		publish(set, mb, "busy", "available", 1);
	}
	run_for(50);
	ck_assert(status_num(set, 0, "in_flight") <= 2);
	ck_assert(run_until(depth_zero, set, 10000));
	text = slurp(out);
	ck_assert_int_eq(count_lines(text), 6);
	for (p = text; *p != '\0'; p = strchr(p, '\n') + 1) {
		n = atoi(p);
		if (n > max)
			max = n;
	}
	ck_assert_int_ge(max, 1);
	ck_assert_int_le(max, 2);
	free(text);
	ck_assert(status_num(set, 0, "failed") == 0);
	sinkset_free(set);
	free(cmd);
}
END_TEST

/* ---- webhook ---- */

#define HOOK_MAX	16

static struct {
	int	 statuses[HOOK_MAX];	/* replies in order; then 200 */
	int	 nstatuses;
	int	 n;
	char	*body[HOOK_MAX];
	char	*auth[HOOK_MAX];
	char	*ctype[HOOK_MAX];
} hook;

static void
hook_cb(struct evhttp_request *req, void *arg)
{
	int	 i = hook.n++;

	ck_assert_int_lt(i, HOOK_MAX);
	hook.body[i] = evtest_body(req);
	hook.auth[i] = evtest_header(req, "Authorization");
	hook.ctype[i] = evtest_header(req, "Content-Type");
	evtest_reply(req, i < hook.nstatuses ? hook.statuses[i] : 200, "ok");
}

static void
hook_reset(void)
{
	int	 i;

	for (i = 0; i < hook.n; i++) {
		free(hook.body[i]);
		free(hook.auth[i]);
		free(hook.ctype[i]);
	}
	memset(&hook, 0, sizeof hook);
}

static void
write_file(const char *path, const char *text)
{
	int	 fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

START_TEST(test_webhook_sink)
{
	struct evhttp	*srv;
	struct sinkset	*set;
	struct buf	 st = BUF_INIT;
	struct json_writer w;
	char		 tokfile[300], *url, *tok;
	const char	*lines[] = { "[sink hook] webhook", NULL, NULL,
	    "retry_initial=10ms", "retry_max=20ms", "timeout=5s", NULL };
	unsigned	 port;

	hook_reset();
	srv = evtest_server(base, hook_cb, NULL, &port);
	ck_assert_ptr_nonnull(srv);
	snprintf(tokfile, sizeof tokfile, "%s/token", tmpdir);
	write_file(tokfile, "s3cret-token\n");
	xasprintf(&url, "url=http://127.0.0.1:%u/hook", port);
	xasprintf(&tok, "bearer_token_file=%s", tokfile);
	lines[1] = url;
	lines[2] = tok;
	ck_assert_ptr_null(validate(lines));
	set = mkset(lines);

	/* Delivered: the exact JSON body, the bearer token. */
	publish(set, "a@x", "busy", "available", 1);
	ck_assert(run_until(depth_zero, set, 5000));
	ck_assert_int_eq(hook.n, 1);
	ck_assert_str_eq(hook.body[0], "{\"mailbox\":\"a@x\",\"presence\":"
	    "\"busy\",\"previous\":\"available\",\"activity\":\"meeting\","
	    "\"since\":\"2026-11-29T11:00:00Z\",\"until\":"
	    "\"2026-11-29T12:00:00Z\",\"source\":\"calendar\",\"seq\":1}");
	ck_assert_str_eq(hook.auth[0], "Bearer s3cret-token");
	ck_assert_str_eq(hook.ctype[0], "application/json");
	ck_assert(status_num(set, 0, "delivered") == 1);

	/* 503 is retried, 400 is rejected and not retried. */
	hook.statuses[1] = 503;
	hook.statuses[2] = 200;
	hook.statuses[3] = 400;
	hook.nstatuses = 4;
	publish(set, "a@x", "available", "busy", 2);
	ck_assert(run_until(depth_zero, set, 5000));
	ck_assert_int_eq(hook.n, 3);
	ck_assert_str_eq(hook.body[1], hook.body[2]);
	publish(set, "b@x", "away", NULL, 1);
	ck_assert(run_until(depth_zero, set, 5000));
	run_for(30);
	ck_assert_int_eq(hook.n, 4);
	ck_assert(status_num(set, 0, "delivered") == 2);
	ck_assert(status_num(set, 0, "failed") == 1);
	ck_assert(status_num(set, 0, "rejected") == 1);

	/* A rotated token is picked up on reopen (SIGHUP). */
	write_file(tokfile, "n3w-token");
	sinkset_reopen(set);
	publish(set, "c@x", "busy", "available", 1);
	ck_assert(run_until(depth_zero, set, 5000));
	ck_assert_int_eq(hook.n, 5);
	ck_assert_str_eq(hook.auth[4], "Bearer n3w-token");

	/* The secret never shows in the status. */
	json_writer_init(&w, &st);
	sinkset_status_json(set, &w);
	ck_assert_ptr_null(strstr(buf_str(&st), "3w-token"));
	ck_assert_ptr_null(strstr(buf_str(&st), "s3cret"));
	buf_free(&st);

	sinkset_free(set);
	evhttp_free(srv);
	hook_reset();
	free(url);
	free(tok);
}
END_TEST

START_TEST(test_webhook_basic_auth_and_errors)
{
	struct evhttp	*srv;
	struct sinkset	*set;
	char		 pwfile[300], *url, *pw;
	const char	*lines[] = { "[sink hook] webhook", NULL,
	    "username=u", NULL, NULL };
	const char *const both[] = { "[sink h] webhook",
	    "url=https://example.invalid/x", "bearer_token_file=/etc/passwd",
	    "username=u", "password_file=/etc/passwd", NULL };
	const char *const nourl[] = { "[sink h] webhook", "username=u", NULL };
	const char *const badurl[] = { "[sink h] webhook", "url=ftp://x/",
	    "tls_verify=maybe", NULL };
	unsigned	 port;
	char		*e;

	hook_reset();
	srv = evtest_server(base, hook_cb, NULL, &port);
	snprintf(pwfile, sizeof pwfile, "%s/pw", tmpdir);
	write_file(pwfile, "p\n");
	xasprintf(&url, "url=http://127.0.0.1:%u/hook", port);
	xasprintf(&pw, "password_file=%s", pwfile);
	lines[1] = url;
	lines[3] = pw;
	set = mkset(lines);
	publish(set, "a@x", "busy", "available", 1);
	ck_assert(run_until(depth_zero, set, 5000));
	ck_assert_int_eq(hook.n, 1);
	ck_assert_str_eq(hook.auth[0], "Basic dTpw");
	sinkset_free(set);
	evhttp_free(srv);
	hook_reset();
	free(url);
	free(pw);

	e = validate(both);
	ck_assert_ptr_nonnull(strstr(e, "/etc/ewsgw.conf:3: sink h: "
	    "bearer_token_file and username/password_file exclude"));
	free(e);
	e = validate(nourl);
	ck_assert_ptr_nonnull(strstr(e,
	    "/etc/ewsgw.conf:1: sink h: missing required key url\n"));
	ck_assert_ptr_nonnull(strstr(e, "/etc/ewsgw.conf:2: sink h: "
	    "username and password_file go together\n"));
	free(e);
	e = validate(badurl);
	ck_assert_ptr_nonnull(strstr(e, "/etc/ewsgw.conf:2: sink h: "
	    "url must start with http:// or https://\n"));
	ck_assert_ptr_nonnull(strstr(e, "/etc/ewsgw.conf:3: sink h: "
	    "tls_verify: expected yes or no, not 'maybe'\n"));
	free(e);
}
END_TEST

/*
 * Every sink secret file gets the EWS password file's checks: one that
 * everyone may read is refused at its key's FILE:LINE (what
 * --check-config and start-up report) and on every later read (a token
 * rotated by SIGHUP), and the secret never shows in the message.
 */
START_TEST(test_sink_secret_file_modes)
{
	static const struct {
		const char	*type;
		const char	*key;
	} cases[] = {
		{ "webhook", "bearer_token_file" },
		{ "webhook", "password_file" },
		{ "sip", "password_file" },
		{ "xmpp", "secret_file" },
	};
	char		 path[300], hdr[64], *kv, *want, *e, *cause = NULL;
	char		*secret;
	const char	*lines[] = { NULL, "url=https://example.invalid/x",
	    "username=u", NULL, NULL };
	size_t		 i;

	snprintf(path, sizeof path, "%s/secret", tmpdir);
	write_file(path, "s3cret-value\n");
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(hdr, sizeof hdr, "[sink h] %s", cases[i].type);
		xasprintf(&kv, "%s=%s", cases[i].key, path);
		lines[0] = hdr;
		lines[3] = kv;
		xasprintf(&want, "/etc/ewsgw.conf:4: sink h: %s '%s' is "
		    "readable by everyone (mode 0644): chmod 0600 it, or load "
		    "it as a systemd credential\n", cases[i].key, path);

		ck_assert_int_eq(chmod(path, 0644), 0);
		e = validate(lines);
		ck_assert_msg(e != NULL && strstr(e, want) != NULL,
		    "%s %s: %s", cases[i].type, cases[i].key, e);
		ck_assert_ptr_null(strstr(e, "s3cret"));
		free(e);

		ck_assert_int_eq(chmod(path, 0600), 0);
		e = validate(lines);
		ck_assert_msg(e == NULL || strstr(e, "sink h: secret") == NULL,
		    "%s", e);
		ck_assert_msg(e == NULL || strstr(e, "readable") == NULL,
		    "%s", e);
		free(e);
		free(want);
		free(kv);
	}

	/* The read itself refuses too (a later chmod, a rotated file). */
	ck_assert_int_eq(chmod(path, 0604), 0);
	ck_assert_ptr_null(sink_read_secret(path, &cause));
	ck_assert_ptr_nonnull(strstr(cause, "is readable by everyone "
	    "(mode 0604)"));
	free(cause);
	cause = NULL;
	/* Its group may read it: a warning at the check, still read. */
	ck_assert_int_eq(chmod(path, 0640), 0);
	secret = sink_read_secret(path, &cause);
	ck_assert_ptr_nonnull(secret);
	ck_assert_str_eq(secret, "s3cret-value");
	xfree_secret(secret);
	ck_assert_int_eq(chmod(path, 0600), 0);
}
END_TEST

/* Copy src to dst with mode. */
static void
copy_file(const char *src, const char *dst, mode_t mode)
{
	char	 b[8192];
	ssize_t	 n;
	int	 in, out;

	in = open(src, O_RDONLY);
	ck_assert_int_ne(in, -1);
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ne(out, -1);
	while ((n = read(in, b, sizeof b)) > 0)
		ck_assert_int_eq(write(out, b, (size_t)n), n);
	close(in);
	close(out);
	ck_assert_int_eq(chmod(dst, mode), 0);
}

/* Validation reports want (freed here) among its errors. */
static void
expect_refused(const char *const *lines, char *want)
{
	char	*e = validate(lines);

	ck_assert_msg(e != NULL && strstr(e, want) != NULL, "%s", e);
	free(e);
	free(want);
}

/*
 * A plugin is code run as the daemon: the file and every directory
 * above it must belong to root or the daemon's user and be writable by
 * nobody else (a sticky directory like /tmp passes), as sshd checks its
 * keys; anything else is refused at path's FILE:LINE before dlopen.
 */
START_TEST(test_plugin_path_trust)
{
	char		*pp = plugin_path("example_sink"), dir[300], so[340];
	char		*kv, *e, *want, *out;
	const char	*lines[] = { "[sink ex] plugin", NULL, NULL, NULL };

	snprintf(dir, sizeof dir, "%s/plugins", tmpdir);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	snprintf(so, sizeof so, "%s/example_sink.so", dir);
	copy_file(pp + strlen("path="), so, 0755);
	xasprintf(&kv, "path=%s", so);
	xasprintf(&out, "output=%s/example.txt", tmpdir);
	lines[1] = kv;
	lines[2] = out;
	ck_assert_ptr_null(validate(lines));

	/* A directory its group may write to. */
	ck_assert_int_eq(chmod(dir, 0775), 0);
	xasprintf(&want, "/etc/ewsgw.conf:2: sink ex: plugin refused: %s is "
	    "writable by its group (mode 0775): chmod go-w it\n", dir);
	expect_refused(lines, want);
	e = mkset_fail(lines);
	ck_assert_ptr_nonnull(strstr(e, "plugin refused"));
	free(e);
	/* ... unless it is sticky and everyone's, like /tmp. */
	ck_assert_int_eq(chmod(dir, 01777), 0);
	ck_assert_ptr_null(validate(lines));
	ck_assert_int_eq(chmod(dir, 0755), 0);

	/* The module itself writable by everyone. */
	ck_assert_int_eq(chmod(so, 0757), 0);
	xasprintf(&want, "/etc/ewsgw.conf:2: sink ex: plugin refused: %s is "
	    "writable by everyone (mode 0757): chmod go-w it\n", so);
	expect_refused(lines, want);
	ck_assert_int_eq(chmod(so, 0755), 0);

	/* Owned by another user than root and the daemon's. */
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(so, 4242, (gid_t)-1), 0);
		xasprintf(&want, "/etc/ewsgw.conf:2: sink ex: plugin refused: "
		    "%s belongs to uid 4242, neither root nor the daemon's "
		    "user (uid 0): chown it\n", so);
		expect_refused(lines, want);
		ck_assert_int_eq(chown(so, 0, (gid_t)-1), 0);
	} else {
		char	 why[PATH_MAX + 128];

		/* The daemon running as someone else. */
		ck_assert_int_eq(safe_path_check(so, geteuid() + 1, why,
		    sizeof why), -2);
		ck_assert_ptr_nonnull(strstr(why, "neither root nor the "
		    "daemon's user"));
	}

	/* Trusted again: accepted. */
	ck_assert_ptr_null(validate(lines));
	unlink(so);
	rmdir(dir);
	free(kv);
	free(out);
	free(pp);
}
END_TEST

static Suite *
sink_suite(void)
{
	Suite	*s = suite_create("sink");
	TCase	*tc;

	tc = tcase_create("engine");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_order_per_mailbox);
	tcase_add_test(tc, test_drop_handed_over);
	tcase_add_test(tc, test_retry_backoff);
	tcase_add_test(tc, test_again_backpressure);
	tcase_add_test(tc, test_slow_sink_isolated);
	tcase_add_test(tc, test_failing_mailbox_does_not_starve);
	tcase_add_test(tc, test_queue_full_coalesces);
	tcase_add_test(tc, test_health_json_and_metrics);
	tcase_add_test(tc, test_flush_bounded);
	tcase_add_test(tc, test_reload);
	suite_add_tcase(s, tc);

	tc = tcase_create("config");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_validate_errors);
	tcase_add_test(tc, test_validate_duplicate_name);
	tcase_add_test(tc, test_plugin_example);
	tcase_add_test(tc, test_plugin_rejected);
	tcase_add_test(tc, test_plugin_path_trust);
	suite_add_tcase(s, tc);

	tc = tcase_create("builtins");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_log_sink);
	tcase_add_test(tc, test_file_sink);
	tcase_add_test(tc, test_file_sink_forget);
	tcase_add_test(tc, test_forget_in_order);
	tcase_add_test(tc, test_file_sink_rate_limited);
	tcase_add_test(tc, test_file_sink_last_write);
	tcase_add_test(tc, test_file_sink_reload_keeps_state);
	tcase_add_test(tc, test_file_sink_write_failure);
	tcase_add_test(tc, test_file_sink_churn);
	tcase_add_test(tc, test_file_sink_log_batches);
	tcase_add_test(tc, test_file_sink_log_failure);
	tcase_add_test(tc, test_exec_sink_env);
	tcase_add_test(tc, test_exec_sink_fds);
	tcase_add_test(tc, test_exec_sink_failure_and_order);
	tcase_add_test(tc, test_exec_sink_timeout);
	tcase_add_test(tc, test_exec_sink_parallel_bounded);
	tcase_add_test(tc, test_webhook_sink);
	tcase_add_test(tc, test_webhook_basic_auth_and_errors);
	tcase_add_test(tc, test_sink_secret_file_modes);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(sink_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
