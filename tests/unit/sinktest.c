/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Test helpers: a fake host and configuration for one sink.
 */
#include "config.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "sinktest.h"

struct sinktest_config {
	struct ewsgw_sink_config	 cfg;		/* first */
	const char *const		*kv;
	bool				 read[64];
	const char			*name;
	struct buf			 errors;
};

static struct sinktest *
host_of(struct ewsgw_host *h)
{
	return ((struct sinktest *)(void *)h);
}

static void
fake_vlog(struct ewsgw_host *h, int prio, const char *mailbox,
    const char *fmt, va_list ap)
{
	struct sinktest	*t = host_of(h);

	buf_printf(&t->log, "<%d> %s%s", prio, mailbox != NULL ? mailbox :
	    "", mailbox != NULL ? ": " : "");
	buf_vprintf(&t->log, fmt, ap);
	buf_puts(&t->log, "\n");
}

static void
fake_done(struct ewsgw_host *h, uint64_t token, int result)
{
	struct sinktest	*t = host_of(h);

	ck_assert_uint_lt(t->ndone, SINKTEST_DONE_MAX);
	t->tokens[t->ndone] = token;
	t->results[t->ndone++] = result;
}

static void
fake_resume(struct ewsgw_host *h)
{
	host_of(h)->resumed++;
}

static struct event_base *
fake_base(struct ewsgw_host *h)
{
	return (host_of(h)->base);
}

static const char *
fake_name(struct ewsgw_host *h)
{
	return (host_of(h)->name);
}

static const struct ewsgw_host_ops fake_host_ops = {
	.size = sizeof(struct ewsgw_host_ops),
	.vlog = fake_vlog,
	.done = fake_done,
	.resume = fake_resume,
	.event_base = fake_base,
	.name = fake_name,
};

static const char *
cfg_get(const struct ewsgw_sink_config *c, const char *key)
{
	struct sinktest_config	*sc = (struct sinktest_config *)(void *)c;
	size_t			 i, kl = strlen(key);

	for (i = 0; sc->kv[i] != NULL; i++) {
		if (strncmp(sc->kv[i], key, kl) == 0 && sc->kv[i][kl] == '=') {
			sc->read[i] = true;
			return (sc->kv[i] + kl + 1);
		}
	}
	return (NULL);
}

static void
cfg_verror(const struct ewsgw_sink_config *c, const char *key,
    const char *fmt, va_list ap)
{
	struct sinktest_config	*sc = (struct sinktest_config *)(void *)c;

	buf_printf(&sc->errors, "%s: ", key != NULL ? key : "-");
	buf_vprintf(&sc->errors, fmt, ap);
	buf_puts(&sc->errors, "\n");
}

static const char *
cfg_name(const struct ewsgw_sink_config *c)
{
	return (((const struct sinktest_config *)(const void *)c)->name);
}

static const struct ewsgw_sink_config_ops fake_config_ops = {
	.size = sizeof(struct ewsgw_sink_config_ops),
	.get = cfg_get,
	.verror = cfg_verror,
	.name = cfg_name,
};

void
sinktest_init(struct sinktest *t, struct event_base *base, const char *name)
{
	memset(t, 0, sizeof *t);
	t->host.abi_version = EWSGW_SINK_ABI_VERSION;
	t->host.ops = &fake_host_ops;
	t->base = base;
	t->name = name;
	buf_init(&t->log);
}

void
sinktest_free(struct sinktest *t)
{
	buf_free(&t->log);
}

struct ewsgw_sink *
sinktest_create(struct sinktest *t, const struct ewsgw_sink_ops *ops,
    const char *const *kv)
{
	struct sinktest_config	 sc;
	struct ewsgw_sink	*s = NULL;
	size_t			 i;
	int			 rc;

	for (i = 0; kv[i] != NULL; i++)
		ck_assert_uint_lt(i, sizeof sc.read / sizeof sc.read[0]);
	memset(&sc, 0, sizeof sc);
	sc.cfg.abi_version = EWSGW_SINK_ABI_VERSION;
	sc.cfg.ops = &fake_config_ops;
	sc.kv = kv;
	sc.name = t->name;
	buf_init(&sc.errors);
	rc = ops->create(&t->host, &sc.cfg, &s);
	ck_assert_msg(rc == 0, "create: %s", buf_str(&sc.errors));
	for (i = 0; kv[i] != NULL; i++)
		ck_assert_msg(sc.read[i], "key not read: %s", kv[i]);
	buf_free(&sc.errors);
	return (s);
}

int
sinktest_publish(struct sinktest *t, const struct ewsgw_sink_ops *ops,
    struct ewsgw_sink *s, const char *mailbox, const char *presence,
    const char *activity, uint64_t token)
{
	struct ewsgw_presence_change	 c;
	int				 rc;

	memset(&c, 0, sizeof c);
	c.size = sizeof c;
	c.mailbox = mailbox;
	c.presence = presence;
	c.activity = activity;
	c.source = "calendar";
	c.seq = token;
	rc = ops->publish(s, &c, token);
	if (rc == EWSGW_SINK_OK || rc == EWSGW_SINK_REJECT)
		fake_done(&t->host, token, rc);
	return (rc);
}

int
sinktest_result(const struct sinktest *t, uint64_t token)
{
	unsigned	 i;

	for (i = t->ndone; i-- > 0; )
		if (t->tokens[i] == token)
			return (t->results[i]);
	return (99);
}

void
sinktest_run(struct event_base *base, int ms)
{
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void
sinktest_tick(evutil_socket_t fd, short what, void *arg)
{
}

int
sinktest_wait(struct sinktest *t, uint64_t token, int ms)
{
	struct event	*tick;
	struct timeval	 tv = { 0, 20 * 1000 };
	int64_t		 end = time_mono_ms() + ms;

	/* A ticking timer, so the loop never waits past the deadline. */
	tick = event_new(t->base, -1, EV_PERSIST, sinktest_tick, NULL);
	evtimer_add(tick, &tv);
	while (sinktest_result(t, token) == 99 && time_mono_ms() < end)
		event_base_loop(t->base, EVLOOP_ONCE);
	event_free(tick);
	return (sinktest_result(t, token));
}
