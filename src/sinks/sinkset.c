/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Sink registry and delivery engine: instances from [sink] sections,
 * built-in types or dlopen()ed plugins; per instance a bounded queue
 * with per-mailbox ordering, at-least-once retry and jittered back-off.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/stat.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/backoff.h"
#include "base/conf.h"
#include "base/hashmap.h"
#include "base/log.h"
#include "base/safepath.h"
#include "base/secretfile.h"
#include "base/seqstore.h"
#include "sinks/sinkset.h"
#include "sinks/sinks.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

#define SINK_AGAIN_INITIAL	10	/* ms, first backpressure pause */
#define SINK_AGAIN_MAX		1000	/* ms */
#define SINK_FLUSH_RETRY_MAX	200	/* ms, back-off cap while flushing */
#define SINK_UNHEALTHY_FAILURES	3	/* consecutive failures */

/* One queued change, owned by its instance; strings live in data[]. */
struct sink_item {
	TAILQ_ENTRY(sink_item)	 entry;		/* in mbox->pending */
	struct sink_mbox	*mb;
	const char		*presence;
	const char		*previous;
	const char		*activity;
	const char		*source;
	int64_t			 since;
	int64_t			 until;
	uint64_t		 seq;
	uint64_t		 token;		/* while in flight */
	unsigned		 attempts;	/* failed deliveries so far */
	bool			 forget;	/* not a change: ops.forget */
	char			 data[];
};
TAILQ_HEAD(sink_items, sink_item);

/*
 * A mailbox with undelivered changes at one instance.  At most one of
 * its changes is in flight; the rest wait behind it, which is what keeps
 * per-mailbox order.  Freed as soon as it has nothing left.
 */
struct sink_mbox {
	char			*name;
	struct sink_items	 pending;
	size_t			 npending;
	struct sink_item	*inflight;
	bool			 on_ready;
	bool			 retired;	/* dropped: no retry */
	TAILQ_ENTRY(sink_mbox)	 ready_entry;	/* can be dispatched */
	TAILQ_ENTRY(sink_mbox)	 all_entry;
};
TAILQ_HEAD(sink_mboxes, sink_mbox);

struct sink_instance {
	struct ewsgw_host	 host;		/* first: what the sink sees */
	struct sinkset		*set;
	struct conf_sink	 conf;		/* deep copy, for reload */
	struct ewsgw_sink_ops	 ops;		/* copy, zero-extended */
	void			*dl;		/* dlopen handle or NULL */
	struct ewsgw_sink	*sink;
	bool			 dying;

	/* settings */
	size_t			 queue_limit;
	unsigned		 max_inflight;
	int64_t			 retry_initial;	/* ms */
	int64_t			 retry_max;	/* ms */

	/* queue */
	struct hashmap		*mboxes;	/* name -> struct sink_mbox */
	struct sink_mboxes	 all;
	struct sink_mboxes	 ready;
	size_t			 depth;		/* queued + in flight */
	bool			 coalesced;	/* pass done since last full */

	/* in-flight slots: token = generation << 32 | slot */
	struct sink_item	**slots;
	unsigned		*free_slots;
	unsigned		 nfree;
	uint32_t		 gen;

	/* pacing */
	struct event		 timer;		/* end of a pause */
	struct event		 kick;		/* deferred dispatch */
	bool			 paused;
	bool			 backing_off;	/* paused after a failure */
	bool			 dispatching;
	bool			 redispatch;
	struct backoff		 backoff;	/* .attempt: failure streak */
	unsigned		 agains;	/* consecutive */

	/* health */
	uint64_t		 delivered;
	uint64_t		 failed;
	uint64_t		 dropped;
	uint64_t		 rejected;
	uint64_t		 retrying;	/* queued items with attempts */
	char			*last_error;
	int64_t			 last_error_at;	/* wall seconds */
	int64_t			 last_success_at;

	TAILQ_ENTRY(sink_instance) entry;
};
TAILQ_HEAD(sink_instances, sink_instance);

struct sinkset {
	struct event_base	*base;
	struct sink_instances	 instances;
	struct backoff_rng	 rng;
	struct seqstore		*seq;		/* change numbers */
	uint64_t		 seq_failures;	/* reported so far */

	bool			 flushing;
	int64_t			 flush_deadline;	/* mono ms */
	struct event		 flush_ev;
	sinkset_flush_cb	 flush_cb;
	void			*flush_arg;
};

/* The configuration accessor handed to sinks. */
struct sink_cfg {
	struct ewsgw_sink_config pub;		/* first */
	const struct conf_sink	*cs;
	const char		*path;
	bool			*used;
	struct buf		*errors;
	int			*nerrors;
};

static const char	*cfg_get(const struct ewsgw_sink_config *,
			    const char *);
static void		 cfg_verror(const struct ewsgw_sink_config *,
			    const char *, const char *, va_list);
static const char	*cfg_name(const struct ewsgw_sink_config *);
static void		 cfg_init(struct sink_cfg *, const struct conf_sink *,
			    const char *, struct buf *, int *);
static int		 cfg_unknown_keys(struct sink_cfg *);
static void		 host_vlog(struct ewsgw_host *, int, const char *,
			    const char *, va_list);
static void		 host_done(struct ewsgw_host *, uint64_t, int);
static void		 host_resume(struct ewsgw_host *);
static struct event_base *host_event_base(struct ewsgw_host *);
static const char	*host_name(struct ewsgw_host *);
static int		 resolve_type(const struct sink_cfg *,
			    struct ewsgw_sink_ops *, void **);
static int		 host_settings(struct sink_cfg *,
			    struct sink_instance *);
static struct sink_instance *instance_new(struct sinkset *,
			    const struct conf_sink *, const char *,
			    struct buf *);
static void		 instance_free(struct sink_instance *);
static void		 instance_enqueue(struct sink_instance *,
			    const struct ewsgw_presence_change *, bool);
static void		 instance_adopt(struct sink_instance *,
			    struct sink_instance *);
static void		 instance_coalesce(struct sink_instance *);
static void		 instance_dispatch(struct sink_instance *);
static void		 instance_complete(struct sink_instance *,
			    struct sink_item *, int);
static void		 instance_pause(struct sink_instance *, int64_t, bool);
static void		 instance_schedule(struct sink_instance *);
static bool		 instance_healthy(struct sink_instance *, char *,
			    size_t);
static void		 instance_set_error(struct sink_instance *,
			    const char *);
static void		 instance_timer_cb(evutil_socket_t, short, void *);
static void		 instance_kick_cb(evutil_socket_t, short, void *);
static struct sink_mbox	*mbox_get(struct sink_instance *, const char *,
			    bool);
static void		 mbox_drop_pending(struct sink_instance *,
			    struct sink_mbox *);
static void		 mbox_release(struct sink_instance *,
			    struct sink_mbox *);
static void		 mbox_ready(struct sink_instance *, struct sink_mbox *,
			    bool);
static struct sink_item	*item_new(struct sink_mbox *,
			    const struct ewsgw_presence_change *,
			    const char *);
static void		 item_view(const struct sink_item *,
			    struct ewsgw_presence_change *);
static void		 item_drop(struct sink_instance *, struct sink_item *);
static void		 conf_sink_copy(struct conf_sink *,
			    const struct conf_sink *);
static void		 conf_sink_clear(struct conf_sink *);
static bool		 conf_sink_equal(const struct conf_sink *,
			    const struct conf_sink *);
static void		 errors_add(struct buf *, const char *, int,
			    const char *, const char *, ...)
			    __attribute__((format(printf, 5, 6)));
static void		 errors_merge(char **, struct buf *);
static void		 set_flush_check(struct sinkset *);
static void		 set_flush_cb(evutil_socket_t, short, void *);
static void		 metric_label(struct buf *, const char *);

static const struct ewsgw_sink_ops *const builtin_sinks[] = {
	&sink_log_ops,
	&sink_file_ops,
	&sink_exec_ops,
	&sink_webhook_ops,
	&sink_sip_ops,
	&sink_xmpp_ops,
	NULL
};

/* Types registered at run time (tests, embedders), searched after. */
#define SINK_EXTRA_TYPES	8
static const struct ewsgw_sink_ops *extra_sinks[SINK_EXTRA_TYPES];

static const struct ewsgw_host_ops host_ops = {
	.size = sizeof(struct ewsgw_host_ops),
	.vlog = host_vlog,
	.done = host_done,
	.resume = host_resume,
	.event_base = host_event_base,
	.name = host_name,
};

static const struct ewsgw_sink_config_ops cfg_ops = {
	.size = sizeof(struct ewsgw_sink_config_ops),
	.get = cfg_get,
	.verror = cfg_verror,
	.name = cfg_name,
};

const struct ewsgw_sink_ops *const *
sink_builtins(void)
{
	return (builtin_sinks);
}

int
sink_register_type(const struct ewsgw_sink_ops *ops)
{
	size_t	 i;

	if (ops == NULL || ops->abi_version != EWSGW_SINK_ABI_VERSION ||
	    ops->name == NULL || ops->create == NULL ||
	    ops->publish == NULL || ops->destroy == NULL)
		return (-1);
	for (i = 0; i < SINK_EXTRA_TYPES; i++) {
		if (extra_sinks[i] == NULL || extra_sinks[i] == ops) {
			extra_sinks[i] = ops;
			return (0);
		}
	}
	return (-1);
}

/* ---- errors ---- */

static void
errors_add(struct buf *errors, const char *path, int line, const char *name,
    const char *fmt, ...)
{
	va_list	 ap;

	buf_printf(errors, "%s:%d: sink %s: ", path != NULL ? path : "-",
	    line, name != NULL ? name : "?");
	va_start(ap, fmt);
	buf_vprintf(errors, fmt, ap);
	va_end(ap);
	buf_putc(errors, '\n');
}

/* Append what was collected to *errors (allocated, caller frees). */
static void
errors_merge(char **errors, struct buf *b)
{
	char	*s;

	if (b->len == 0 || errors == NULL) {
		buf_free(b);
		return;
	}
	if (*errors != NULL) {
		xasprintf(&s, "%s%s", *errors, buf_str(b));
		free(*errors);
		*errors = s;
		buf_free(b);
	} else
		*errors = buf_steal(b);
}

/* ---- configuration accessor ---- */

static void
cfg_init(struct sink_cfg *sc, const struct conf_sink *cs, const char *path,
    struct buf *errors, int *nerrors)
{
	memset(sc, 0, sizeof *sc);
	sc->pub.abi_version = EWSGW_SINK_ABI_VERSION;
	sc->pub.ops = &cfg_ops;
	sc->cs = cs;
	sc->path = path;
	sc->used = xcalloc(cs->nkv + 1, sizeof *sc->used);
	sc->errors = errors;
	sc->nerrors = nerrors;
}

static const char *
cfg_get(const struct ewsgw_sink_config *c, const char *key)
{
	const struct sink_cfg	*sc = (const struct sink_cfg *)c;
	const char		*value = NULL;
	size_t			 i;

	/* The last assignment wins, as for the rest of the file. */
	for (i = 0; i < sc->cs->nkv; i++) {
		if (strcmp(sc->cs->kv[i].key, key) == 0) {
			sc->used[i] = true;
			value = sc->cs->kv[i].value;
		}
	}
	return (value);
}

static void
cfg_verror(const struct ewsgw_sink_config *c, const char *key,
    const char *fmt, va_list ap)
{
	const struct sink_cfg	*sc = (const struct sink_cfg *)c;
	int			 line = sc->cs->line;
	size_t			 i;
	char			*msg;

	for (i = 0; key != NULL && i < sc->cs->nkv; i++)
		if (strcmp(sc->cs->kv[i].key, key) == 0)
			line = sc->cs->kv[i].line;
	if (xvasprintf(&msg, fmt, ap) == -1)
		return;
	errors_add(sc->errors, sc->path, line, sc->cs->name, "%s", msg);
	free(msg);
	(*sc->nerrors)++;
}

static const char *
cfg_name(const struct ewsgw_sink_config *c)
{
	return (((const struct sink_cfg *)c)->cs->name);
}

/* Every key nobody consumed is an error.  Returns their number. */
static int
cfg_unknown_keys(struct sink_cfg *sc)
{
	size_t	 i;
	int	 n = 0;

	for (i = 0; i < sc->cs->nkv; i++) {
		if (sc->used[i])
			continue;
		errors_add(sc->errors, sc->path, sc->cs->kv[i].line,
		    sc->cs->name, "unknown key '%s' for type %s",
		    sc->cs->kv[i].key, sc->cs->type);
		(*sc->nerrors)++;
		n++;
	}
	return (n);
}

int
sink_config_duration(const struct ewsgw_sink_config *c, const char *key,
    int64_t def, int64_t default_unit_ms, int64_t *out)
{
	const char	*v;

	*out = def;
	if ((v = ewsgw_sink_config_get(c, key)) == NULL)
		return (0);
	if (time_parse_duration(v, default_unit_ms, out) == -1) {
		ewsgw_sink_config_error(c, key, "%s: invalid duration '%s'",
		    key, v);
		return (-1);
	}
	return (0);
}

int
sink_config_uint(const struct ewsgw_sink_config *c, const char *key,
    unsigned def, unsigned min, unsigned max, unsigned *out)
{
	const char		*v;
	char			*end;
	unsigned long		 n;

	*out = def;
	if ((v = ewsgw_sink_config_get(c, key)) == NULL)
		return (0);
	errno = 0;
	n = strtoul(v, &end, 10);
	if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 ||
	    n < min || n > max) {
		ewsgw_sink_config_error(c, key,
		    "%s: expected an integer from %u to %u, not '%s'", key,
		    min, max, v);
		return (-1);
	}
	*out = (unsigned)n;
	return (0);
}

int
sink_config_bool(const struct ewsgw_sink_config *c, const char *key,
    int def, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1", NULL };
	static const char *const no[] = { "no", "false", "off", "0", NULL };
	const char	*v;
	int		 i;

	*out = def;
	if ((v = ewsgw_sink_config_get(c, key)) == NULL)
		return (0);
	for (i = 0; yes[i] != NULL; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = 1;
			return (0);
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = 0;
			return (0);
		}
	}
	ewsgw_sink_config_error(c, key, "%s: expected yes or no, not '%s'",
	    key, v);
	return (-1);
}

/* ---- types and plugins ---- */

/*
 * Find the ops for the section's type: a built-in, or for "plugin" the
 * module named by "path" (relative names are looked up in pkglibdir).
 * Fills *ops (copy, zero-extended) and *dl.  Returns 0 or -1 after
 * reporting the error.
 */
static int
resolve_type(const struct sink_cfg *sc, struct ewsgw_sink_ops *ops,
    void **dl)
{
	const struct ewsgw_sink_config	*c = &sc->pub;
	const struct ewsgw_sink_ops	*mod;
	const char			*path, *err;
	char				*full = NULL, why[PATH_MAX + 128];
	void				*h;
	size_t				 i, n;
	int				 rv;

	*dl = NULL;
	memset(ops, 0, sizeof *ops);
	if (sc->cs->type == NULL) {
		ewsgw_sink_config_error(c, NULL, "missing required key type");
		return (-1);
	}
	if (strcmp(sc->cs->type, "plugin") != 0) {
		for (i = 0; builtin_sinks[i] != NULL; i++) {
			if (strcmp(builtin_sinks[i]->name, sc->cs->type) == 0) {
				*ops = *builtin_sinks[i];
				return (0);
			}
		}
		for (i = 0; i < SINK_EXTRA_TYPES && extra_sinks[i] != NULL;
		    i++) {
			if (strcmp(extra_sinks[i]->name, sc->cs->type) == 0) {
				*ops = *extra_sinks[i];
				return (0);
			}
		}
		ewsgw_sink_config_error(c, NULL, "unknown sink type '%s'",
		    sc->cs->type);
		return (-1);
	}

	if ((path = ewsgw_sink_config_get(c, "path")) == NULL) {
		ewsgw_sink_config_error(c, NULL,
		    "missing required key path (the plugin module)");
		return (-1);
	}
	if (strchr(path, '/') == NULL)
		xasprintf(&full, "%s/%s", EWSGW_PKGLIBDIR, path);
	/* Code run as the daemon: only root or its user may have put it. */
	if ((rv = safe_path_check(full != NULL ? full : path, geteuid(),
	    why, sizeof why)) != 0) {
		ewsgw_sink_config_error(c, "path", "%s: %s", rv == -1 ?
		    "cannot load plugin" : "plugin refused", why);
		free(full);
		return (-1);
	}
	dlerror();
	if ((h = dlopen(full != NULL ? full : path,
	    RTLD_NOW | RTLD_LOCAL)) == NULL) {
		err = dlerror();
		ewsgw_sink_config_error(c, "path", "cannot load plugin: %s",
		    err != NULL ? err : "unknown error");
		free(full);
		return (-1);
	}
	free(full);
	mod = dlsym(h, EWSGW_SINK_MODULE_SYMBOL);
	if (mod == NULL) {
		ewsgw_sink_config_error(c, "path",
		    "plugin %s does not export %s", path,
		    EWSGW_SINK_MODULE_SYMBOL);
		goto fail;
	}
	if (mod->abi_version != EWSGW_SINK_ABI_VERSION) {
		ewsgw_sink_config_error(c, "path",
		    "plugin %s has sink ABI version %u, this ewsgw needs %u",
		    path, (unsigned)mod->abi_version, EWSGW_SINK_ABI_VERSION);
		goto fail;
	}
	if (mod->size < offsetof(struct ewsgw_sink_ops, destroy) +
	    sizeof(mod->destroy)) {
		ewsgw_sink_config_error(c, "path",
		    "plugin %s has a truncated ops table (%zu bytes)", path,
		    mod->size);
		goto fail;
	}
	n = mod->size < sizeof *ops ? mod->size : sizeof *ops;
	memcpy(ops, mod, n);
	if (ops->create == NULL || ops->publish == NULL ||
	    ops->destroy == NULL) {
		ewsgw_sink_config_error(c, "path",
		    "plugin %s lacks create, publish or destroy", path);
		goto fail;
	}
	if (ops->name == NULL)
		ops->name = "plugin";
	*dl = h;
	return (0);

fail:
	memset(ops, 0, sizeof *ops);
	dlclose(h);
	return (-1);
}

/* Consume the keys the host handles itself. */
static int
host_settings(struct sink_cfg *sc, struct sink_instance *si)
{
	const struct ewsgw_sink_config	*c = &sc->pub;
	unsigned			 limit, inflight;
	int64_t				 initial, max;
	int				 rc = 0, rd = 0;

	if (sink_config_uint(c, "queue_limit", SINK_QUEUE_LIMIT_DEFAULT, 1,
	    10000000, &limit) == -1)
		rc = -1;
	if (sink_config_uint(c, "max_inflight", SINK_MAX_INFLIGHT_DEFAULT, 1,
	    65536, &inflight) == -1)
		rc = -1;
	if (sink_config_duration(c, "retry_initial",
	    SINK_RETRY_INITIAL_DEFAULT, 1000, &initial) == -1)
		rd = -1;
	if (sink_config_duration(c, "retry_max", SINK_RETRY_MAX_DEFAULT, 1000,
	    &max) == -1)
		rd = -1;
	if (rd == 0 && initial < 1) {
		ewsgw_sink_config_error(c, "retry_initial",
		    "retry_initial must be at least 1ms");
		rd = -1;
	}
	if (rd == 0 && max < initial &&
	    ewsgw_sink_config_get(c, "retry_max") == NULL)
		max = initial;		/* only the default was below */
	if (rd == 0 && max < initial) {
		ewsgw_sink_config_error(c, "retry_max",
		    "retry_max must not be below retry_initial");
		rd = -1;
	}
	if (rd == -1)
		rc = -1;
	if (rc == 0 && si != NULL) {
		si->queue_limit = limit;
		si->max_inflight = inflight;
		si->retry_initial = initial;
		si->retry_max = max;
	}
	return (rc);
}

int
sink_validate(const struct conf_sink *cs, const char *conf_path,
    char **errors)
{
	struct buf		 eb = BUF_INIT;
	struct sink_cfg		 sc;
	struct ewsgw_sink_ops	 ops;
	void			*dl;
	int			 nerrors = 0;

	cfg_init(&sc, cs, conf_path, &eb, &nerrors);
	host_settings(&sc, NULL);
	if (resolve_type(&sc, &ops, &dl) == 0) {
		if (ops.check != NULL) {
			if (ops.check(&sc.pub) == -1 && nerrors == 0)
				errors_add(&eb, conf_path, cs->line, cs->name,
				    "invalid configuration");
			if (nerrors == 0)
				cfg_unknown_keys(&sc);
		}
		if (dl != NULL)
			dlclose(dl);
	}
	free(sc.used);
	errors_merge(errors, &eb);
	return (nerrors == 0 && eb.len == 0 ? 0 : -1);
}

int
sinkset_validate(const struct config *conf, char **errors)
{
	size_t	 i;
	int	 rc = 0;

	for (i = 0; i < conf->nsinks; i++)
		if (sink_validate(&conf->sinks[i], conf->path, errors) == -1)
			rc = -1;
	return (rc);
}

/* ---- host services ---- */

static void
host_vlog(struct ewsgw_host *h, int prio, const char *mailbox,
    const char *fmt, va_list ap)
{
	struct sink_instance	*si = (struct sink_instance *)h;
	struct log_ctx		 ctx = { .mailbox = mailbox,
				    .sink = si->conf.name };
	va_list			 ap2;
	char			*msg;

	/* Warnings and errors double as the status' last_error. */
	if (prio <= LOG_WARNING) {
		va_copy(ap2, ap);
		if (xvasprintf(&msg, fmt, ap2) != -1) {
			instance_set_error(si, msg);
			free(msg);
		}
		va_end(ap2);
	}
	log_vemit(prio, &ctx, fmt, ap);
}

static void
host_done(struct ewsgw_host *h, uint64_t token, int result)
{
	struct sink_instance	*si = (struct sink_instance *)h;
	uint32_t		 slot = (uint32_t)(token & 0xffffffffu);
	struct sink_item	*it;

	if (si->dying || slot >= si->max_inflight)
		return;
	it = si->slots[slot];
	if (it == NULL || it->token != token)
		return;		/* stale or duplicate */
	instance_complete(si, it, result);
	/* Never call back into publish() from inside the sink. */
	instance_schedule(si);
}

static void
host_resume(struct ewsgw_host *h)
{
	struct sink_instance	*si = (struct sink_instance *)h;

	if (si->dying || !si->paused || si->backing_off)
		return;		/* a failure back-off is not cut short */
	evtimer_del(&si->timer);
	si->paused = false;
	instance_schedule(si);
}

static struct event_base *
host_event_base(struct ewsgw_host *h)
{
	return (((struct sink_instance *)h)->set->base);
}

static const char *
host_name(struct ewsgw_host *h)
{
	return (((struct sink_instance *)h)->conf.name);
}

/* ---- instances ---- */

static struct sink_instance *
instance_new(struct sinkset *set, const struct conf_sink *cs,
    const char *path, struct buf *errors)
{
	struct sink_instance	*si;
	struct sink_cfg		 sc;
	int			 nerrors = 0;
	unsigned		 i;

	si = xcalloc(1, sizeof *si);
	si->host.abi_version = EWSGW_SINK_ABI_VERSION;
	si->host.ops = &host_ops;
	si->set = set;
	conf_sink_copy(&si->conf, cs);
	si->mboxes = hashmap_new();
	TAILQ_INIT(&si->all);
	TAILQ_INIT(&si->ready);
	evtimer_assign(&si->timer, set->base, instance_timer_cb, si);
	event_assign(&si->kick, set->base, -1, 0, instance_kick_cb, si);

	cfg_init(&sc, cs, path, errors, &nerrors);
	if (host_settings(&sc, si) == -1 ||
	    resolve_type(&sc, &si->ops, &si->dl) == -1)
		goto fail;
	if (si->ops.create(&si->host, &sc.pub, &si->sink) == -1 ||
	    si->sink == NULL) {
		if (nerrors == 0)
			errors_add(errors, path, cs->line, cs->name,
			    "cannot create sink of type %s", cs->type);
		si->sink = NULL;
		goto fail;
	}
	if (cfg_unknown_keys(&sc) > 0)
		goto fail;
	free(sc.used);

	si->slots = xcalloc(si->max_inflight, sizeof *si->slots);
	si->free_slots = xcalloc(si->max_inflight, sizeof *si->free_slots);
	for (i = 0; i < si->max_inflight; i++)
		si->free_slots[i] = si->max_inflight - 1 - i;
	si->nfree = si->max_inflight;
	si->gen = 1;
	backoff_init(&si->backoff, si->retry_initial, si->retry_max,
	    BACKOFF_DECORRELATED);
	return (si);

fail:
	free(sc.used);
	instance_free(si);
	return (NULL);
}

static void
instance_free(struct sink_instance *si)
{
	struct sink_mbox	*mb;
	struct sink_item	*it;
	size_t			 lost = si->depth;

	si->dying = true;
	if (si->sink != NULL)
		si->ops.destroy(si->sink);
	si->sink = NULL;
	evtimer_del(&si->timer);
	event_del(&si->kick);
	if (lost > 0)
		log_emit(LOG_WARNING, &(struct log_ctx){
		    .sink = si->conf.name },
		    "%zu undelivered changes discarded", lost);
	while ((mb = TAILQ_FIRST(&si->all)) != NULL) {
		if (mb->inflight != NULL) {
			free(mb->inflight);
			mb->inflight = NULL;
		}
		while ((it = TAILQ_FIRST(&mb->pending)) != NULL) {
			TAILQ_REMOVE(&mb->pending, it, entry);
			free(it);
		}
		mb->npending = 0;
		mbox_release(si, mb);
	}
	hashmap_free(si->mboxes, NULL);
	if (si->dl != NULL)
		dlclose(si->dl);
	free(si->slots);
	free(si->free_slots);
	free(si->last_error);
	conf_sink_clear(&si->conf);
	free(si);
}

static void
instance_set_error(struct sink_instance *si, const char *msg)
{
	free(si->last_error);
	si->last_error = xstrdup(msg);
	si->last_error_at = time_wall_ms() / 1000;
}

/* Run the dispatcher from the loop, outside any sink callback. */
static void
instance_schedule(struct sink_instance *si)
{
	if (!si->dying)
		event_active(&si->kick, EV_TIMEOUT, 1);
}

static void
instance_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	instance_dispatch(arg);
}

static void
instance_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sink_instance	*si = arg;

	si->paused = si->backing_off = false;
	instance_dispatch(si);
}

static void
instance_pause(struct sink_instance *si, int64_t ms, bool failure)
{
	struct timeval	 tv;

	if (si->set->flushing && ms > SINK_FLUSH_RETRY_MAX)
		ms = SINK_FLUSH_RETRY_MAX;
	time_ms_tv(&tv, ms);
	/* Count from now, not from the start of this loop pass. */
	event_base_update_cache_time(si->set->base);
	si->paused = true;
	si->backing_off = failure;
	evtimer_add(&si->timer, &tv);
}

static void
instance_dispatch(struct sink_instance *si)
{
	struct ewsgw_presence_change	 chg;
	struct sink_mbox		*mb;
	struct sink_item		*it;
	uint64_t			 token;
	uint32_t			 slot;
	int				 rc;

	if (si->dispatching) {
		si->redispatch = true;
		return;
	}
	si->dispatching = true;
	do {
		si->redispatch = false;
		while (!si->paused && !si->dying && si->nfree > 0 &&
		    (mb = TAILQ_FIRST(&si->ready)) != NULL) {
			TAILQ_REMOVE(&si->ready, mb, ready_entry);
			mb->on_ready = false;
			it = TAILQ_FIRST(&mb->pending);
			TAILQ_REMOVE(&mb->pending, it, entry);
			mb->npending--;
			if (it->forget) {
				/* In order, and it cannot fail. */
				if (si->ops.forget != NULL)
					si->ops.forget(si->sink, mb->name);
				item_drop(si, it);
				if (mb->npending > 0)
					mbox_ready(si, mb, false);
				else
					mbox_release(si, mb);
				continue;
			}
			mb->inflight = it;

			slot = si->free_slots[--si->nfree];
			if (++si->gen == 0)
				si->gen = 1;
			token = ((uint64_t)si->gen << 32) | slot;
			it->token = token;
			si->slots[slot] = it;

			item_view(it, &chg);
			rc = si->ops.publish(si->sink, &chg, token);
			/* The sink may have completed it already. */
			if (si->slots[slot] != it || it->token != token)
				continue;
			if (rc == EWSGW_SINK_PENDING)
				continue;
			instance_complete(si, it, rc);
		}
	} while (si->redispatch && !si->dying);
	si->dispatching = false;
	if (si->set->flushing)
		set_flush_check(si->set);
}

/*
 * A change of a mailbox handed to another node came back unsent: it is
 * dropped, never retried after the new owner's changes.
 */
static void
retired_drop(struct sink_instance *si, struct sink_item *it)
{
	struct sink_mbox	*mb = it->mb;

	si->dropped++;
	item_drop(si, it);
	mbox_release(si, mb);
}

/* An in-flight item finished with result. */
static void
instance_complete(struct sink_instance *si, struct sink_item *it, int result)
{
	struct sink_mbox	*mb = it->mb;
	uint32_t		 slot = (uint32_t)(it->token & 0xffffffffu);

	si->slots[slot] = NULL;
	si->free_slots[si->nfree++] = slot;
	it->token = 0;
	mb->inflight = NULL;

	switch (result) {
	case EWSGW_SINK_OK:
		si->delivered++;
		backoff_reset(&si->backoff);
		si->agains = 0;
		si->last_success_at = time_wall_ms() / 1000;
		item_drop(si, it);
		if (mb->npending > 0)
			mbox_ready(si, mb, false);
		else
			mbox_release(si, mb);
		break;
	case EWSGW_SINK_REJECT:
		/* The sink says this change can never go through. */
		si->rejected++;
		log_emit(LOG_WARNING, &(struct log_ctx){ .sink = si->conf.name,
		    .mailbox = mb->name }, "change %llu rejected by the sink, "
		    "skipped", (unsigned long long)it->seq);
		item_drop(si, it);
		if (mb->npending > 0)
			mbox_ready(si, mb, false);
		else
			mbox_release(si, mb);
		break;
	case EWSGW_SINK_AGAIN:
		if (mb->retired) {
			retired_drop(si, it);
			break;
		}
		/* Not taken: same place, short pause, not a failure. */
		TAILQ_INSERT_HEAD(&mb->pending, it, entry);
		mb->npending++;
		mbox_ready(si, mb, true);
		si->agains++;
		if (!si->paused) {
			int64_t d = SINK_AGAIN_INITIAL;
			unsigned n;

			for (n = 1; n < si->agains && d < SINK_AGAIN_MAX; n++)
				d *= 2;
			instance_pause(si, d < SINK_AGAIN_MAX ? d :
			    SINK_AGAIN_MAX, false);
		}
		break;
	default:
		/*
		 * Failed: the change stays first for its mailbox (order),
		 * the mailbox goes to the back of the line so one bad
		 * mailbox does not starve the others, the sink backs off.
		 */
		si->failed++;
		if (mb->retired) {
			retired_drop(si, it);
			break;
		}
		if (it->attempts++ == 0)
			si->retrying++;
		TAILQ_INSERT_HEAD(&mb->pending, it, entry);
		mb->npending++;
		mbox_ready(si, mb, false);
		si->agains = 0;
		if (si->last_error == NULL || si->last_error_at == 0)
			instance_set_error(si, "delivery failed");
		if (log_enabled(LOG_DEBUG))
			log_emit(LOG_DEBUG, &(struct log_ctx){
			    .sink = si->conf.name, .mailbox = mb->name },
			    "delivery failed (attempt %u), retrying",
			    it->attempts);
		/*
		 * Decorrelated jitter: at least retry_initial, growing
		 * towards retry_max, and never in step with other sinks.
		 */
		instance_pause(si, backoff_next(&si->backoff, &si->set->rng),
		    true);
		break;
	}
}

/* Queue a copy of c, coalescing when the queue is full. */
static void
instance_enqueue(struct sink_instance *si,
    const struct ewsgw_presence_change *c, bool forget)
{
	struct sink_mbox	*mb;
	struct sink_item	*it, *old;
	const char		*previous = c->previous;

	if (si->dying)
		return;
	mb = mbox_get(si, c->mailbox, true);
	if (si->depth >= si->queue_limit && !si->coalesced) {
		instance_coalesce(si);
		si->coalesced = true;
	}
	if (si->depth >= si->queue_limit && mb->npending > 0) {
		/* Replace this mailbox's waiting changes by the newest. */
		old = TAILQ_FIRST(&mb->pending);
		it = item_new(mb, c, old->previous);
		mbox_drop_pending(si, mb);
	} else
		it = item_new(mb, c, previous);
	it->forget = forget;
	mb->retired = false;
	TAILQ_INSERT_TAIL(&mb->pending, it, entry);
	mb->npending++;
	si->depth++;
	if (mb->inflight == NULL)
		mbox_ready(si, mb, false);
	instance_schedule(si);
}

/*
 * Keep only the newest waiting change of every mailbox, whose previous
 * becomes that of the oldest one dropped (the last state the sink saw).
 * O(queue), but it runs at most once per episode of a full queue.
 */
static void
instance_coalesce(struct sink_instance *si)
{
	struct ewsgw_presence_change	 view;
	struct sink_mbox		*mb;
	struct sink_item		*first, *last, *it;

	TAILQ_FOREACH(mb, &si->all, all_entry) {
		if (mb->npending < 2)
			continue;
		first = TAILQ_FIRST(&mb->pending);
		last = TAILQ_LAST(&mb->pending, sink_items);
		item_view(last, &view);
		view.mailbox = mb->name;
		it = item_new(mb, &view, first->previous);
		it->forget = last->forget;
		mbox_drop_pending(si, mb);
		si->dropped--;		/* the newest survives as it */
		TAILQ_INSERT_TAIL(&mb->pending, it, entry);
		mb->npending = 1;
		si->depth++;
	}
	log_emit(LOG_WARNING, &(struct log_ctx){ .sink = si->conf.name },
	    "queue full (%zu changes): keeping only the newest change per "
	    "mailbox, %llu dropped so far", si->queue_limit,
	    (unsigned long long)si->dropped);
}

/*
 * Take over what old had not delivered (a reloaded section), in order:
 * per mailbox the in-flight change first, then the waiting ones.  old's
 * sink must already be destroyed.
 */
static void
instance_adopt(struct sink_instance *si, struct sink_instance *old)
{
	struct sink_mbox	*omb, *mb;
	struct sink_item	*it;

	while ((omb = TAILQ_FIRST(&old->all)) != NULL) {
		mb = mbox_get(si, omb->name, true);
		if ((it = omb->inflight) != NULL && omb->retired) {
			omb->inflight = NULL;
			old->slots[it->token & 0xffffffffu] = NULL;
			old->dropped++;
			item_drop(old, it);
		} else if (it != NULL) {
			omb->inflight = NULL;
			old->slots[it->token & 0xffffffffu] = NULL;
			it->mb = mb;
			it->token = 0;
			TAILQ_INSERT_TAIL(&mb->pending, it, entry);
			mb->npending++;
			si->depth++;
			old->depth--;
			if (it->attempts > 0)
				si->retrying++;
		}
		while ((it = TAILQ_FIRST(&omb->pending)) != NULL) {
			TAILQ_REMOVE(&omb->pending, it, entry);
			omb->npending--;
			it->mb = mb;
			TAILQ_INSERT_TAIL(&mb->pending, it, entry);
			mb->npending++;
			si->depth++;
			old->depth--;
			if (it->attempts > 0)
				si->retrying++;
		}
		if (mb->npending > 0 && mb->inflight == NULL)
			mbox_ready(si, mb, false);
		mbox_release(old, omb);
	}
	instance_schedule(si);
}

static bool
instance_healthy(struct sink_instance *si, char *detail, size_t len)
{
	bool	 ok = true;

	detail[0] = '\0';
	if (si->ops.health != NULL && si->sink != NULL &&
	    si->ops.health(si->sink, detail, len) == 0)
		ok = false;
	if (si->backoff.attempt >= SINK_UNHEALTHY_FAILURES)
		ok = false;
	return (ok);
}

/* ---- mailboxes and items ---- */

static struct sink_mbox *
mbox_get(struct sink_instance *si, const char *name, bool create)
{
	struct sink_mbox	*mb;

	if ((mb = hashmap_get(si->mboxes, name)) != NULL || !create)
		return (mb);
	mb = xcalloc(1, sizeof *mb);
	mb->name = xstrdup(name);
	TAILQ_INIT(&mb->pending);
	hashmap_put(si->mboxes, name, mb);
	TAILQ_INSERT_TAIL(&si->all, mb, all_entry);
	return (mb);
}

/* Drop mb's waiting changes (not the one in flight), counted as dropped. */
static void
mbox_drop_pending(struct sink_instance *si, struct sink_mbox *mb)
{
	struct sink_item	*it;

	while ((it = TAILQ_FIRST(&mb->pending)) != NULL) {
		TAILQ_REMOVE(&mb->pending, it, entry);
		mb->npending--;
		si->dropped++;
		item_drop(si, it);
	}
}

/* Free mb if nothing of it is left. */
static void
mbox_release(struct sink_instance *si, struct sink_mbox *mb)
{
	if (mb->npending > 0 || mb->inflight != NULL)
		return;
	if (mb->on_ready)
		TAILQ_REMOVE(&si->ready, mb, ready_entry);
	hashmap_remove(si->mboxes, mb->name);
	TAILQ_REMOVE(&si->all, mb, all_entry);
	free(mb->name);
	free(mb);
}

static void
mbox_ready(struct sink_instance *si, struct sink_mbox *mb, bool front)
{
	if (mb->on_ready)
		return;
	if (front)
		TAILQ_INSERT_HEAD(&si->ready, mb, ready_entry);
	else
		TAILQ_INSERT_TAIL(&si->ready, mb, ready_entry);
	mb->on_ready = true;
}

/* A packed copy of c for mb, with previous overriding c->previous. */
static struct sink_item *
item_new(struct sink_mbox *mb, const struct ewsgw_presence_change *c,
    const char *previous)
{
	const char		*src[4];
	size_t			 len[4], total = 0;
	struct sink_item	*it;
	char			*p;
	const char		**dst[4];
	int			 i;

	src[0] = c->presence;
	src[1] = previous;
	src[2] = EWSGW_CHANGE_HAS(c, activity) ? c->activity : NULL;
	src[3] = EWSGW_CHANGE_HAS(c, source) ? c->source : NULL;
	for (i = 0; i < 4; i++) {
		len[i] = src[i] != NULL ? strlen(src[i]) + 1 : 0;
		total += len[i];
	}
	it = xcalloc(1, sizeof *it + total);
	it->mb = mb;
	dst[0] = &it->presence;
	dst[1] = &it->previous;
	dst[2] = &it->activity;
	dst[3] = &it->source;
	p = it->data;
	for (i = 0; i < 4; i++) {
		if (src[i] == NULL)
			continue;
		memcpy(p, src[i], len[i]);
		*dst[i] = p;
		p += len[i];
	}
	it->since = EWSGW_CHANGE_HAS(c, since) ? c->since : 0;
	it->until = EWSGW_CHANGE_HAS(c, until) ? c->until : 0;
	it->seq = EWSGW_CHANGE_HAS(c, seq) ? c->seq : 0;
	return (it);
}

static void
item_view(const struct sink_item *it, struct ewsgw_presence_change *c)
{
	memset(c, 0, sizeof *c);
	c->size = sizeof *c;
	c->mailbox = it->mb->name;
	c->presence = it->presence != NULL ? it->presence : "unknown";
	c->previous = it->previous;
	c->activity = it->activity;
	c->since = it->since;
	c->until = it->until;
	c->source = it->source;
	c->seq = it->seq;
}

/* Forget a finished or discarded item (already off every list). */
static void
item_drop(struct sink_instance *si, struct sink_item *it)
{
	if (it->attempts > 0)
		si->retrying--;
	si->depth--;
	if (si->coalesced && si->depth <= si->queue_limit / 4 * 3)
		si->coalesced = false;
	free(it);
}

/* ---- helpers for built-in sinks ---- */

void
sink_change_json(struct buf *out, const struct ewsgw_presence_change *c)
{
	struct json_writer	 w;

	json_writer_init(&w, out);
	json_obj_begin(&w);
	json_kv_str(&w, "mailbox", c->mailbox);
	json_kv_str(&w, "presence", c->presence);
	json_kv_str(&w, "previous", c->previous);
	json_kv_str(&w, "activity", c->activity);
	json_kv_time(&w, "since", c->since);
	json_kv_time(&w, "until", c->until);
	json_kv_str(&w, "source", c->source);
	json_kv_int(&w, "seq", (int64_t)c->seq);
	json_obj_end(&w);
}

int
sink_check_secret_file(const struct ewsgw_sink_config *c, const char *key,
    const char *path)
{
	struct stat	 sb;
	char		 why[256];

	if (access(path, R_OK) == -1 || stat(path, &sb) == -1) {
		ewsgw_sink_config_error(c, key, "cannot read %s: %s", path,
		    strerror(errno));
		return (-1);
	}
	switch (secret_file_judge(&sb, secret_file_is_credential(path),
	    geteuid(), why, sizeof why)) {
	case SECRET_REFUSE:
		ewsgw_sink_config_error(c, key, "%s '%s' %s", key, path, why);
		return (-1);
	case SECRET_WARN:
		log_warnx("sink %s: %s '%s' %s", ewsgw_sink_config_name(c),
		    key, path, why);
		break;
	case SECRET_OK:
		break;
	}
	return (0);
}

char *
sink_read_secret(const char *path, char **cause)
{
	struct buf	 b = BUF_INIT_SECRET;
	struct stat	 sb;
	char		 chunk[512], why[256];
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		xasprintf(cause, "cannot open %s: %s", path, strerror(errno));
		return (NULL);
	}
	/* Judged on what was opened, not on a name that may be swapped. */
	if (fstat(fd, &sb) == -1) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		close(fd);
		return (NULL);
	}
	if (secret_file_judge(&sb, secret_file_is_credential(path),
	    geteuid(), why, sizeof why) == SECRET_REFUSE) {
		xasprintf(cause, "%s %s", path, why);
		close(fd);
		return (NULL);
	}
	while ((n = read(fd, chunk, sizeof chunk)) > 0 &&
	    b.len <= SINK_MAX_SECRET)
		buf_append(&b, chunk, (size_t)n);
	explicit_bzero(chunk, sizeof chunk);
	close(fd);
	while (b.len > 0 && (b.data[b.len - 1] == '\n' ||
	    b.data[b.len - 1] == '\r' || b.data[b.len - 1] == ' ' ||
	    b.data[b.len - 1] == '\t'))
		b.data[--b.len] = '\0';
	if (n == -1 || b.len == 0 || b.len > SINK_MAX_SECRET ||
	    strpbrk(buf_str(&b), "\r\n") != NULL ||
	    strlen(buf_str(&b)) != b.len) {
		xasprintf(cause, "%s: %s", path, n == -1 ? strerror(errno) :
		    "expected one non-empty line");
		buf_free_secret(&b);
		return (NULL);
	}
	return (buf_steal(&b));
}

/* ---- configuration sections ---- */

static void
conf_sink_copy(struct conf_sink *dst, const struct conf_sink *src)
{
	size_t	 i;

	dst->name = xstrdup(src->name != NULL ? src->name : "");
	dst->type = src->type != NULL ? xstrdup(src->type) : NULL;
	dst->line = src->line;
	dst->nkv = src->nkv;
	dst->kv = xcalloc(src->nkv + 1, sizeof *dst->kv);
	for (i = 0; i < src->nkv; i++) {
		dst->kv[i].key = xstrdup(src->kv[i].key);
		dst->kv[i].value = xstrdup(src->kv[i].value);
		dst->kv[i].line = src->kv[i].line;
	}
}

static void
conf_sink_clear(struct conf_sink *cs)
{
	size_t	 i;

	for (i = 0; i < cs->nkv; i++) {
		free(cs->kv[i].key);
		free(cs->kv[i].value);
	}
	free(cs->kv);
	free(cs->name);
	free(cs->type);
	memset(cs, 0, sizeof *cs);
}

/* Same section content?  Line numbers do not matter. */
static bool
conf_sink_equal(const struct conf_sink *a, const struct conf_sink *b)
{
	size_t	 i;

	if (strcmp(a->name, b->name) != 0 || a->nkv != b->nkv)
		return (false);
	if ((a->type == NULL) != (b->type == NULL) ||
	    (a->type != NULL && strcmp(a->type, b->type) != 0))
		return (false);
	for (i = 0; i < a->nkv; i++)
		if (strcmp(a->kv[i].key, b->kv[i].key) != 0 ||
		    strcmp(a->kv[i].value, b->kv[i].value) != 0)
			return (false);
	return (true);
}

/* ---- the set ---- */

struct sinkset *
sinkset_new(struct event_base *base, const struct config *conf,
    char **errors)
{
	struct sinkset		*set;
	struct sink_instance	*si, *o;
	struct buf		 eb = BUF_INIT;
	size_t			 i;
	bool			 failed = false;

	char			*cause = NULL;
	const char		*dir = conf_state_directory(conf);

	set = xcalloc(1, sizeof *set);
	set->base = base;
	backoff_rng_seed(&set->rng, ((uint64_t)time_wall_ms() << 16) ^
	    (uint64_t)getpid() ^ (uint64_t)(uintptr_t)set);
	TAILQ_INIT(&set->instances);
	evtimer_assign(&set->flush_ev, base, set_flush_cb, set);
	if ((set->seq = seqstore_open(dir, time_wall_ms(), &cause)) == NULL) {
		buf_printf(&eb, "%s: state directory %s: %s\n", conf->path !=
		    NULL ? conf->path : "-", dir, cause);
		free(cause);
		failed = true;
	} else if (seqstore_warning(set->seq) != NULL)
		log_warnx("state directory: %s", seqstore_warning(set->seq));

	for (i = 0; i < conf->nsinks; i++) {
		TAILQ_FOREACH(o, &set->instances, entry)
			if (strcmp(o->conf.name, conf->sinks[i].name) == 0)
				break;
		if (o != NULL) {
			errors_add(&eb, conf->path, conf->sinks[i].line,
			    conf->sinks[i].name, "duplicate sink name");
			failed = true;
			continue;
		}
		if ((si = instance_new(set, &conf->sinks[i], conf->path,
		    &eb)) == NULL) {
			failed = true;
			continue;
		}
		TAILQ_INSERT_TAIL(&set->instances, si, entry);
	}
	if (failed) {
		errors_merge(errors, &eb);
		sinkset_free(set);
		return (NULL);
	}
	buf_free(&eb);
	return (set);
}

void
sinkset_forget(struct sinkset *set, const char *mailbox)
{
	struct ewsgw_presence_change	 c;
	struct sink_instance		*si;

	memset(&c, 0, sizeof c);
	c.size = sizeof c;
	c.mailbox = mailbox;
	TAILQ_FOREACH(si, &set->instances, entry)
		instance_enqueue(si, &c, true);
}

size_t
sinkset_drop(struct sinkset *set, const char *mailbox)
{
	struct sink_instance	*si;
	struct sink_mbox	*mb;
	size_t			 n = 0;

	TAILQ_FOREACH(si, &set->instances, entry) {
		if ((mb = mbox_get(si, mailbox, false)) == NULL)
			continue;
		n += mb->npending;
		mbox_drop_pending(si, mb);
		if (mb->inflight != NULL)
			mb->retired = true;
		mbox_release(si, mb);
	}
	return (n);
}

bool
sinkset_holds(struct sinkset *set, const char *mailbox)
{
	struct sink_instance	*si;
	struct sink_mbox	*mb;

	TAILQ_FOREACH(si, &set->instances, entry) {
		if (si->dying)
			continue;
		mb = mbox_get(si, mailbox, false);
		if (mb != NULL && (mb->npending > 0 || mb->inflight != NULL))
			return (true);
	}
	return (false);
}

void
sinkset_publish(struct sinkset *set, const struct ewsgw_presence_change *c)
{
	struct sink_instance	*si;

	if (c == NULL || c->mailbox == NULL ||
	    c->size < offsetof(struct ewsgw_presence_change, previous))
		return;
	TAILQ_FOREACH(si, &set->instances, entry)
		instance_enqueue(si, c, false);
}

size_t
sinkset_depth(struct sinkset *set)
{
	struct sink_instance	*si;
	size_t			 n = 0;

	TAILQ_FOREACH(si, &set->instances, entry)
		n += si->depth;
	return (n);
}

size_t
sinkset_count(struct sinkset *set)
{
	struct sink_instance	*si;
	size_t			 n = 0;

	TAILQ_FOREACH(si, &set->instances, entry)
		n++;
	return (n);
}

size_t
sinkset_healthy(struct sinkset *set)
{
	struct sink_instance	*si;
	char			 detail[256];
	size_t			 n = 0;

	TAILQ_FOREACH(si, &set->instances, entry)
		if (instance_healthy(si, detail, sizeof detail))
			n++;
	return (n);
}

void
sinkset_flush(struct sinkset *set, int64_t timeout_ms, sinkset_flush_cb cb,
    void *arg)
{
	struct sink_instance	*si;
	struct timeval		 tv;

	set->flushing = true;
	set->flush_cb = cb;
	set->flush_arg = arg;
	set->flush_deadline = time_mono_ms() +
	    (timeout_ms > 0 ? timeout_ms : 0);
	/* Cut long back-off pauses short: we are about to stop. */
	TAILQ_FOREACH(si, &set->instances, entry) {
		if (si->paused && si->backing_off)
			instance_pause(si, 0, true);
		instance_schedule(si);
	}
	evtimer_add(&set->flush_ev, time_ms_tv(&tv, timeout_ms));
	set_flush_check(set);
}

/* Finish the flush from the loop once everything is out. */
static void
set_flush_check(struct sinkset *set)
{
	if (set->flushing && sinkset_depth(set) == 0)
		event_active(&set->flush_ev, EV_TIMEOUT, 1);
}

static void
set_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sinkset		*set = arg;
	struct sink_instance	*si;
	sinkset_flush_cb	 cb;
	struct timeval		 tv;
	int64_t			 now;
	size_t			 left;

	if (!set->flushing)
		return;
	left = sinkset_depth(set);
	if (left > 0 && (now = time_mono_ms()) < set->flush_deadline) {
		/* Woken early, and more came in: keep the deadline. */
		evtimer_add(&set->flush_ev,
		    time_ms_tv(&tv, set->flush_deadline - now));
		return;
	}
	evtimer_del(&set->flush_ev);
	set->flushing = false;
	TAILQ_FOREACH(si, &set->instances, entry) {
		if (si->ops.flush != NULL && si->sink != NULL)
			si->ops.flush(si->sink);
		if (si->depth > 0)
			log_emit(LOG_WARNING,
			    &(struct log_ctx){ .sink = si->conf.name },
			    "flush: %zu changes not delivered in time",
			    si->depth);
	}
	cb = set->flush_cb;
	set->flush_cb = NULL;
	if (cb != NULL)
		cb(set->flush_arg, left);
}

int
sinkset_reload(struct sinkset *set, const struct config *conf, char **errors)
{
	struct sink_instance	**fresh, *si, *old;
	struct sink_instances	 next;
	struct buf		 eb = BUF_INIT;
	const char		*dir;
	char			*cause = NULL;
	size_t			 i, j;
	bool			 failed = false;

	fresh = xcalloc(conf->nsinks + 1, sizeof *fresh);
	for (i = 0; i < conf->nsinks; i++) {
		for (j = 0; j < i; j++) {
			if (strcmp(conf->sinks[j].name,
			    conf->sinks[i].name) == 0) {
				errors_add(&eb, conf->path,
				    conf->sinks[i].line, conf->sinks[i].name,
				    "duplicate sink name");
				failed = true;
			}
		}
		TAILQ_FOREACH(old, &set->instances, entry)
			if (conf_sink_equal(&old->conf, &conf->sinks[i]))
				break;
		if (old != NULL)
			continue;	/* unchanged: keep it */
		if ((fresh[i] = instance_new(set, &conf->sinks[i], conf->path,
		    &eb)) == NULL)
			failed = true;
	}
	dir = conf_state_directory(conf);
	if (!failed && seqstore_set_dir(set->seq, dir, &cause) == -1) {
		buf_printf(&eb, "%s: state directory %s: %s\n", conf->path !=
		    NULL ? conf->path : "-", dir, cause);
		free(cause);
		failed = true;
	}
	if (failed) {
		for (i = 0; i < conf->nsinks; i++)
			if (fresh[i] != NULL)
				instance_free(fresh[i]);
		free(fresh);
		errors_merge(errors, &eb);
		return (-1);
	}
	buf_free(&eb);

	/* Build the new list in file order, moving kept instances over. */
	TAILQ_INIT(&next);
	for (i = 0; i < conf->nsinks; i++) {
		TAILQ_FOREACH(old, &set->instances, entry)
			if (strcmp(old->conf.name, conf->sinks[i].name) == 0)
				break;
		if (fresh[i] == NULL) {
			/* Kept: still reopen its files, reread its secrets. */
			TAILQ_REMOVE(&set->instances, old, entry);
			TAILQ_INSERT_TAIL(&next, old, entry);
			if (old->ops.reopen != NULL && old->sink != NULL)
				old->ops.reopen(old->sink);
			continue;
		}
		si = fresh[i];
		if (old != NULL) {
			/*
			 * Changed: the new instance takes over the old
			 * one's state (same implementation only), then
			 * inherits its queue.
			 */
			TAILQ_REMOVE(&set->instances, old, entry);
			if (si->ops.takeover != NULL && old->sink != NULL &&
			    si->ops.takeover == old->ops.takeover)
				si->ops.takeover(si->sink, old->sink);
			old->dying = true;
			if (old->sink != NULL)
				old->ops.destroy(old->sink);
			old->sink = NULL;
			instance_adopt(si, old);
			instance_free(old);
			log_emit(LOG_NOTICE, &(struct log_ctx){
			    .sink = si->conf.name }, "reconfigured");
		} else
			log_emit(LOG_NOTICE, &(struct log_ctx){
			    .sink = si->conf.name }, "added (type %s)",
			    si->conf.type);
		TAILQ_INSERT_TAIL(&next, si, entry);
	}
	free(fresh);
	while ((old = TAILQ_FIRST(&set->instances)) != NULL) {
		TAILQ_REMOVE(&set->instances, old, entry);
		log_emit(LOG_NOTICE, &(struct log_ctx){
		    .sink = old->conf.name }, "removed");
		instance_free(old);
	}
	TAILQ_CONCAT(&set->instances, &next, entry);
	return (0);
}

void
sinkset_reopen(struct sinkset *set)
{
	struct sink_instance	*si;

	TAILQ_FOREACH(si, &set->instances, entry)
		if (si->ops.reopen != NULL && si->sink != NULL)
			si->ops.reopen(si->sink);
}

void
sinkset_status_json(struct sinkset *set, struct json_writer *w)
{
	struct sink_instance	*si;
	char			 detail[256];
	unsigned		 inflight;
	bool			 ok;

	json_arr_begin(w);
	TAILQ_FOREACH(si, &set->instances, entry) {
		ok = instance_healthy(si, detail, sizeof detail);
		inflight = si->max_inflight - si->nfree;
		json_obj_begin(w);
		json_kv_str(w, "name", si->conf.name);
		json_kv_str(w, "type", si->conf.type);
		json_kv_bool(w, "healthy", ok);
		json_kv_int(w, "queue", (int64_t)si->depth);
		json_kv_int(w, "queue_limit", (int64_t)si->queue_limit);
		json_kv_int(w, "in_flight", inflight);
		json_kv_int(w, "delivered", (int64_t)si->delivered);
		json_kv_int(w, "failed", (int64_t)si->failed);
		json_kv_int(w, "retrying", (int64_t)si->retrying);
		json_kv_int(w, "dropped", (int64_t)si->dropped);
		json_kv_int(w, "rejected", (int64_t)si->rejected);
		json_kv_int(w, "consecutive_failures", si->backoff.attempt);
		json_kv_bool(w, "paused", si->paused);
		json_kv_str(w, "last_error", si->last_error);
		json_kv_time(w, "last_error_at", si->last_error_at);
		json_kv_time(w, "last_success_at", si->last_success_at);
		json_kv_str(w, "detail", detail[0] != '\0' ? detail : NULL);
		json_obj_end(w);
	}
	json_arr_end(w);
}

void
sinkset_summary_json(struct sinkset *set, struct json_writer *w)
{
	struct sink_instance	*si;
	char			 detail[256];
	int64_t			 healthy = 0, total = 0;

	TAILQ_FOREACH(si, &set->instances, entry) {
		total++;
		if (instance_healthy(si, detail, sizeof detail))
			healthy++;
	}
	json_obj_begin(w);
	json_kv_int(w, "healthy", healthy);
	json_kv_int(w, "total", total);
	json_kv_int(w, "queue", (int64_t)sinkset_depth(set));
	json_obj_end(w);
}

/* {sink="name"} with Prometheus label escaping. */
static void
metric_label(struct buf *out, const char *name)
{
	const char	*p;

	buf_puts(out, "{sink=\"");
	for (p = name; *p != '\0'; p++) {
		if (*p == '\\' || *p == '"')
			buf_putc(out, '\\');
		if (*p == '\n')
			buf_puts(out, "\\n");
		else
			buf_putc(out, *p);
	}
	buf_puts(out, "\"}");
}

void
sinkset_metrics(struct sinkset *set, struct buf *out)
{
	static const struct {
		const char	*name;
		const char	*type;
		const char	*help;
	} m[] = {
		{ "ewsgw_sink_queue_depth", "gauge",
		    "Changes queued or in flight." },
		{ "ewsgw_sink_delivered_total", "counter",
		    "Changes delivered." },
		{ "ewsgw_sink_failures_total", "counter",
		    "Failed delivery attempts (each is retried)." },
		{ "ewsgw_sink_dropped_total", "counter",
		    "Changes superseded while the queue was full." },
		{ "ewsgw_sink_rejected_total", "counter",
		    "Changes the sink refused for good (not retried)." },
		{ "ewsgw_sink_retrying", "gauge",
		    "Queued changes that failed at least once." },
		{ "ewsgw_sink_healthy", "gauge",
		    "1 if the sink is healthy." },
	};
	struct sink_instance	*si;
	char			 detail[256];
	uint64_t		 v = 0;
	size_t			 i;

	for (i = 0; i < sizeof m / sizeof m[0]; i++) {
		buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m[i].name,
		    m[i].help, m[i].name, m[i].type);
		TAILQ_FOREACH(si, &set->instances, entry) {
			switch (i) {
			case 0:
				v = si->depth;
				break;
			case 1:
				v = si->delivered;
				break;
			case 2:
				v = si->failed;
				break;
			case 3:
				v = si->dropped;
				break;
			case 4:
				v = si->rejected;
				break;
			case 5:
				v = si->retrying;
				break;
			case 6:
				v = instance_healthy(si, detail,
				    sizeof detail) ? 1 : 0;
				break;
			}
			buf_puts(out, m[i].name);
			metric_label(out, si->conf.name);
			buf_printf(out, " %llu\n", (unsigned long long)v);
		}
	}
}

void
sinkset_free(struct sinkset *set)
{
	struct sink_instance	*si;

	if (set == NULL)
		return;
	while ((si = TAILQ_FIRST(&set->instances)) != NULL) {
		TAILQ_REMOVE(&set->instances, si, entry);
		instance_free(si);
	}
	evtimer_del(&set->flush_ev);
	seqstore_free(set->seq);
	free(set);
}

void
sinkset_seq_floor(struct sinkset *set)
{
	seqstore_floor(set->seq, time_wall_ms());
}

uint64_t
sinkset_next_seq(struct sinkset *set)
{
	uint64_t	 seq;

	seq = seqstore_next(set->seq);
	/* Said once per failed reservation, not per change. */
	if (seqstore_failures(set->seq) != set->seq_failures) {
		set->seq_failures = seqstore_failures(set->seq);
		log_warnx("state directory: %s; seq stays unique only while "
		    "the clock does not go back", seqstore_error(set->seq));
	}
	return (seq);
}
