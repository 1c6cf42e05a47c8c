/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Top level of the running daemon: owns the event loop, wires signals,
 * the status socket, the sinks and the subscription manager together,
 * and sequences start-up, reload and shutdown.
 */
#include "config.h"

#include <errno.h>
#ifdef HAVE_MALLOC_TRIM
#include <malloc.h>
#endif
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "base/buf.h"
#include "base/conf.h"
#include "control/control.h"
#include "daemon/clustering.h"
#include "daemon/daemon.h"
#include "daemon/looplag.h"
#include "base/hashmap.h"
#include "base/json.h"
#include "base/log.h"
#include "subs/manager.h"
#include "daemon/notify.h"
#include "sinks/sinkset.h"
#include "base/timeutil.h"
#include "daemon/verify.h"
#include "base/xmalloc.h"
#include "ews/ews_parse.h"

/* How long an orderly stop may take before we exit regardless. */
#define STOP_UNSUBSCRIBE_MS	10000
#define STOP_FLUSH_MS		5000
#define STOP_HARD_MS		25000
#define STATUS_REFRESH_MS	2000

struct daemon {
	struct event_base	*base;
	char			*path;
	struct config		*conf;
	struct sinkset		*sinks;
	struct manager		*manager;
	struct clustering	*cluster;	/* cluster mode, else NULL */
	struct control		*control;
	struct v_ctl		*verify;	/* ewsgwctl verify running */
	struct looplag		*lag;		/* loop stall probe */

	struct event		 ev_hup, ev_term, ev_int, ev_pipe;
	struct event		 ev_status;	/* STATUS= refresh */
	struct event		 ev_hard_stop;
	int64_t			 started_ms;
	int			 stopping;
	int			 exit_code;
	unsigned		 reloads, reload_failures;
	char			*last_reload_error;
	char			*restart_pending;	/* "a.b, c.d" or NULL */
	bool			 settled;	/* no mailbox starting */
};

static void	 daemon_stop(struct daemon *);
static void	 warn_cleartext(const struct config *);
static int	 daemon_reload(struct daemon *, char **);
static void	 json_key_list(struct json_writer *, const char *,
		    const char *);
static void	 forget_removed(struct sinkset *, const struct config *,
		    const struct config *);
static int	 reload_rejected(struct daemon *, char *, const char *,
		    char **);

static bool
is_http(const char *url)
{
	return (url != NULL && strncasecmp(url, "http://", 7) == 0);
}

/* Credentials configured to cross the network in clear text. */
static void
warn_cleartext(const struct config *conf)
{
	const char	*what = NULL;

	switch (conf->exchange.auth) {
	case CONF_AUTH_BASIC:
		what = "the password";
		break;
	case CONF_AUTH_NTLM:
	case CONF_AUTH_NEGOTIATE:
		if (conf->exchange.password != NULL)
			what = "the login (an NTLM response can be cracked "
			    "for the password)";
		break;
	case CONF_AUTH_OAUTH2:
		what = "the bearer token";
		break;
	}
	if (what != NULL && is_http(conf->exchange.url))
		log_warnx("url %s is plain http: %s and the calendars cross "
		    "the network unencrypted; use https://",
		    conf->exchange.url, what);
	if (conf->exchange.auth == CONF_AUTH_OAUTH2 &&
	    is_http(conf->exchange.token_url))
		log_warnx("token_url %s is plain http: the client secret "
		    "crosses the network unencrypted; use https://",
		    conf->exchange.token_url);
}

/* ---- status socket provider ---- */

static void
prov_status(struct json_writer *w, void *arg)
{
	struct daemon	*d = arg;
	int		 healthy;

	json_kv_str(w, "version", PACKAGE_VERSION);
	json_kv_int(w, "pid", (int64_t)getpid());
	json_kv_int(w, "uptime_s", (time_mono_ms() - d->started_ms) / 1000);
	json_kv_str(w, "config", d->path);
	json_kv_str(w, "mode", conf_mode_name(d->conf->exchange.mode));
	json_kv_bool(w, "stopping", d->stopping != 0);
	json_kv_int(w, "reloads", d->reloads);
	json_kv_int(w, "reload_failures", d->reload_failures);
	json_kv_str(w, "last_reload_error", d->last_reload_error);
	json_kv_int(w, "notify_dropped", (int64_t)notify_dropped_count());
	json_key_list(w, "restart_pending", d->restart_pending);
	if (d->lag != NULL)
		looplag_status_json(d->lag, w);
	healthy = manager_status_json(d->manager, w);
	if (d->cluster != NULL)
		clustering_status_json(d->cluster, w);
	json_key(w, "sinks");
	json_obj_begin(w);
	json_kv_int(w, "total", (int64_t)sinkset_count(d->sinks));
	json_kv_int(w, "healthy", (int64_t)sinkset_healthy(d->sinks));
	json_kv_int(w, "queued", (int64_t)sinkset_depth(d->sinks));
	json_obj_end(w);
	if (sinkset_healthy(d->sinks) < sinkset_count(d->sinks))
		healthy = 0;
	json_kv_bool(w, "healthy", healthy && !d->stopping);
}

static void
prov_mailboxes(struct json_writer *w, void *arg)
{
	struct daemon	*d = arg;

	manager_mailboxes_json(d->manager, w);
}

static int
prov_mailbox(struct json_writer *w, const char *addr, char **cause, void *arg)
{
	struct daemon	*d = arg;

	if (manager_mailbox_json(d->manager, addr, w) == -1) {
		xasprintf(cause, "unknown mailbox %s", addr);
		return (-1);
	}
	return (0);
}

static void
prov_connections(struct json_writer *w, void *arg)
{
	struct daemon	*d = arg;

	manager_connections_json(d->manager, w);
}

static int
prov_cluster(struct json_writer *w, char **cause, void *arg)
{
	struct daemon	*d = arg;

	if (d->cluster == NULL) {
		*cause = xstrdup("not in cluster mode ([cluster] endpoints "
		    "is not set)");
		return (-1);
	}
	clustering_status_json(d->cluster, w);
	return (0);
}

static void
prov_sinks(struct json_writer *w, void *arg)
{
	struct daemon	*d = arg;

	json_key(w, "sinks");
	sinkset_status_json(d->sinks, w);
}

static int
prov_reload(struct json_writer *w, char **cause, void *arg)
{
	struct daemon	*d = arg;

	if (daemon_reload(d, cause) == -1)
		return (-1);
	json_key_list(w, "restart_required", d->restart_pending);
	return (0);
}

/* key: the "a.b, c.d" list as a JSON array of strings ([] for NULL). */
static void
json_key_list(struct json_writer *w, const char *key, const char *list)
{
	const char	*p = list, *end;

	json_key(w, key);
	json_arr_begin(w);
	while (p != NULL && *p != '\0') {
		end = strchr(p, ',');
		json_strn(w, p, end != NULL ? (size_t)(end - p) : strlen(p));
		p = end != NULL ? end + 1 + strspn(end + 1, " ") : NULL;
	}
	json_arr_end(w);
}

static int
prov_resync(const char *addr, char **cause, void *arg)
{
	struct daemon	*d = arg;

	return (manager_resync(d->manager, addr, cause));
}

static int
prov_rediscover(struct json_writer *w, const char *addr, char **cause,
    void *arg)
{
	struct daemon	*d = arg;
	size_t		 queued;

	if (manager_rediscover(d->manager, addr, &queued, cause) == -1)
		return (-1);
	json_kv_int(w, "queued", (int64_t)queued);
	return (0);
}

/* Preflight checks on the daemon's own loop; the answer comes later. */
static int
prov_verify(struct ctl_reply *reply, char **cause, void *arg)
{
	struct daemon	*d = arg;

	return (verify_control(reply, d->base, manager_ews(d->manager),
	    manager_graph(d->manager), d->conf, VERIFY_CTL_TIMEOUT_MS,
	    &d->verify, cause));
}

static void
prov_metrics(struct buf *b, void *arg)
{
	struct daemon	*d = arg;

	buf_printf(b, "# HELP ewsgw_up Whether the daemon runs.\n"
	    "# TYPE ewsgw_up gauge\newsgw_up 1\n");
	buf_printf(b, "# HELP ewsgw_reloads_total Configuration reloads.\n"
	    "# TYPE ewsgw_reloads_total counter\n"
	    "ewsgw_reloads_total{result=\"ok\"} %u\n"
	    "ewsgw_reloads_total{result=\"rejected\"} %u\n",
	    d->reloads, d->reload_failures);
	if (d->lag != NULL)
		looplag_metrics(d->lag, b);
	manager_metrics(d->manager, b);
	sinkset_metrics(d->sinks, b);
}

/* ---- STATUS= ---- */

static void
refresh_status(struct daemon *d)
{
	char	 line[256];
	bool	 settled;

	settled = manager_summary(d->manager, line, sizeof line);
	notify_status(line);
#ifdef HAVE_MALLOC_TRIM
	/*
	 * Starting 100,000 mailboxes leaves free pages between the chunks
	 * that stay (request and answer buffers, parser state): give them
	 * back to the system once all are through, and again after a
	 * reload's additions.
	 */
	if (settled && !d->settled)
		malloc_trim(0);
#endif
	d->settled = settled;
}

static void
status_cb(evutil_socket_t fd, short ev, void *arg)
{
	refresh_status(arg);
}

/* ---- signals ---- */

static void
sighup_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct daemon	*d = arg;
	char		*cause = NULL;

	if (d->stopping)
		return;
	log_notice("SIGHUP: reloading %s", d->path);
	if (daemon_reload(d, &cause) == -1)
		free(cause);	/* already logged */
}

static void
sigterm_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct daemon	*d = arg;

	if (d->stopping) {
		log_warnx("second %s: exiting now", strsignal((int)sig));
		event_base_loopbreak(d->base);
		return;
	}
	log_notice("%s: stopping", strsignal((int)sig));
	daemon_stop(d);
}

static void
ignore_cb(evutil_socket_t sig, short ev, void *arg)
{
}

/* ---- reload ---- */

/* Mailboxes old names and new does not leave the sinks' state. */
static void
forget_removed(struct sinkset *sinks, const struct config *old,
    const struct config *new)
{
	struct hashmap	*keep;
	size_t		 i;

	keep = hashmap_new();
	for (i = 0; i < new->nmailboxes; i++)
		hashmap_put(keep, new->mailboxes[i].address,
		    &new->mailboxes[i]);
	for (i = 0; i < old->nmailboxes; i++)
		if (hashmap_get(keep, old->mailboxes[i].address) == NULL)
			sinkset_forget(sinks, old->mailboxes[i].address);
	hashmap_free(keep, NULL);
}

/*
 * A rejected reload: the running configuration stays.  errors (taken,
 * may be NULL: then what) are "FILE:LINE: message" lines; each is
 * logged as its own record and kept for ewsgwctl status.  Returns -1.
 */
static int
reload_rejected(struct daemon *d, char *errors, const char *what,
    char **cause)
{
	char	*line, *next;
	size_t	 n = 0;

	if (errors == NULL || *errors == '\0') {
		free(errors);
		errors = xstrdup(what);
	}
	for (line = errors; *line != '\0'; line = next) {
		next = line + strcspn(line, "\n");
		if (next > line)
			n++;
		next += *next != '\0';
	}
	d->reload_failures++;
	log_err("reload of %s rejected (%zu %s), running configuration "
	    "kept", d->path, n, n == 1 ? "error" : "errors");
	for (line = errors; *line != '\0'; line = next) {
		next = line + strcspn(line, "\n");
		if (next > line)
			log_err("reload rejected: %.*s", (int)(next - line),
			    line);
		next += *next != '\0';
	}
	free(d->last_reload_error);
	d->last_reload_error = errors;
	*cause = xstrdup(errors);
	notify_ready();
	return (-1);
}

static int
daemon_reload(struct daemon *d, char **cause)
{
	struct config	*nconf;
	char		*errors = NULL, *kept = NULL, *what = NULL;
	char		*copy, *p, *key;

	notify_reloading();
	nconf = conf_reload(d->path, d->conf, &errors, &kept);
	if (nconf != NULL && daemon_validate(nconf, &errors) == -1) {
		conf_free(nconf);
		nconf = NULL;
	}
	if (nconf == NULL)
		return (reload_rejected(d, errors, "invalid configuration",
		    cause));
	if (sinkset_reload(d->sinks, nconf, &errors) == -1) {
		conf_free(nconf);
		free(kept);
		return (reload_rejected(d, errors, "sinks failed", cause));
	}
	/* nconf holds the running values of these: say so, key by key. */
	p = copy = kept != NULL ? xstrdup(kept) : NULL;
	while ((key = strsep(&p, ",")) != NULL)
		log_warnx("reload: %s changed in %s; the running value stays "
		    "until a restart", key + strspn(key, " "), d->path);
	free(copy);
	free(d->restart_pending);
	d->restart_pending = kept;
	if (conf_diff_keys(d->conf, nconf, &what) > 0)
		log_info("reload: %s changed", what);
	free(what);
	log_set_level(nconf->log.level);
	manager_reload(d->manager, nconf);
	if (d->cluster != NULL)
		clustering_reload(d->cluster, nconf);
	/* After whatever they published before they stopped. */
	forget_removed(d->sinks, d->conf, nconf);
	conf_free(d->conf);
	d->conf = nconf;
	d->reloads++;
	free(d->last_reload_error);
	d->last_reload_error = NULL;
	log_notice("configuration reloaded: %zu mailboxes, %zu sinks",
	    nconf->nmailboxes, nconf->nsinks);
	refresh_status(d);
	notify_ready();
	return (0);
}

/* ---- shutdown ---- */

static void
hard_stop_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct daemon	*d = arg;

	log_warnx("orderly stop took too long; exiting");
	event_base_loopbreak(d->base);
}

static void
left_cb(void *arg)
{
	struct daemon	*d = arg;

	log_info("left the cluster");
	event_base_loopexit(d->base, NULL);
}

static void
flushed_cb(void *arg, size_t undelivered)
{
	struct daemon	*d = arg;

	if (undelivered > 0)
		log_warnx("stop: %zu presence changes not delivered",
		    undelivered);
	else
		log_info("sinks flushed");
	/*
	 * Leave only now: the others take over at once instead of after
	 * the lease TTL, and none of their changes reaches a sink before
	 * what this node published.
	 */
	if (d->cluster != NULL)
		clustering_leave(d->cluster, left_cb, d);
	else
		event_base_loopexit(d->base, NULL);
}

static void
released_cb(void *arg)
{
	struct daemon	*d = arg;

	log_info("subscriptions released");
	sinkset_flush(d->sinks, STOP_FLUSH_MS, flushed_cb, d);
}

static void
daemon_stop(struct daemon *d)
{
	struct timeval	 tv = { STOP_HARD_MS / 1000, 0 };

	d->stopping = 1;
	notify_stopping();
	evtimer_add(&d->ev_hard_stop, &tv);
	manager_shutdown(d->manager, STOP_UNSUBSCRIBE_MS, released_cb, d);
}

/* ---- validation shared by --check-config and reload ---- */

int
daemon_validate(const struct config *conf, char **errors)
{
	struct buf	 b = BUF_INIT;
	size_t		 i;
	char		*e;

	for (i = 0; i < conf->nsinks; i++) {
		e = NULL;
		if (sink_validate(&conf->sinks[i], conf->path, &e) == -1) {
			buf_puts(&b, e != NULL ? e : "invalid sink\n");
		}
		free(e);
	}
	if (b.len == 0) {
		buf_free(&b);
		return (0);
	}
	if (*errors != NULL) {
		buf_puts(&b, *errors);
		free(*errors);
	}
	*errors = buf_steal(&b);
	return (-1);
}

/* ---- run ---- */

int
daemon_run(const char *path, struct config *conf)
{
	struct daemon		 d;
	struct control_provider	 prov;
	struct manager_cluster_hooks ch;
	struct timeval		 tv;
	char			*cause = NULL;

	memset(&d, 0, sizeof d);
	d.path = xstrdup(path);
	d.conf = conf;
	d.started_ms = time_mono_ms();

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init failed");
	if ((d.base = event_base_new()) == NULL)
		fatalx("event_base_new failed");

	evsignal_assign(&d.ev_hup, d.base, SIGHUP, sighup_cb, &d);
	evsignal_assign(&d.ev_term, d.base, SIGTERM, sigterm_cb, &d);
	evsignal_assign(&d.ev_int, d.base, SIGINT, sigterm_cb, &d);
	evsignal_assign(&d.ev_pipe, d.base, SIGPIPE, ignore_cb, &d);
	event_assign(&d.ev_status, d.base, -1, EV_PERSIST, status_cb, &d);
	evtimer_assign(&d.ev_hard_stop, d.base, hard_stop_cb, &d);
	event_add(&d.ev_hup, NULL);
	event_add(&d.ev_term, NULL);
	event_add(&d.ev_int, NULL);
	event_add(&d.ev_pipe, NULL);

	if (!conf->exchange.tls_verify)
		log_warnx("tls_verify = no: the Exchange server's certificate "
		    "is NOT checked");
	warn_cleartext(conf);

	if ((d.sinks = sinkset_new(d.base, conf, &cause)) == NULL) {
		log_err("sinks: %s", cause != NULL ? cause : "failed");
		free(cause);
		d.exit_code = 1;
		goto out;
	}
	if (conf->cluster.endpoints != NULL) {
		if ((d.cluster = clustering_new(d.base, conf, &cause)) ==
		    NULL) {
			log_err("cluster: %s", cause != NULL ? cause :
			    "failed");
			free(cause);
			d.exit_code = 1;
			goto out;
		}
		clustering_hooks(d.cluster, &ch);
	}
	if ((d.manager = manager_new(d.base, conf, d.sinks,
	    d.cluster != NULL ? &ch : NULL, &cause)) == NULL) {
		log_err("%s", cause != NULL ? cause : "start-up failed");
		free(cause);
		d.exit_code = 1;
		goto out;
	}

	memset(&prov, 0, sizeof prov);
	prov.status = prov_status;
	prov.mailboxes = prov_mailboxes;
	prov.mailbox = prov_mailbox;
	prov.connections = prov_connections;
	prov.sinks = prov_sinks;
	prov.reload = prov_reload;
	prov.resync = prov_resync;
	prov.rediscover = prov_rediscover;
	prov.verify = prov_verify;
	prov.metrics = prov_metrics;
	prov.cluster = prov_cluster;
	prov.arg = &d;
	d.control = control_open(d.base, conf->status.socket,
	    conf->status.mode, conf->status.group, &prov, &cause);
	if (d.control == NULL) {
		log_err("status socket %s: %s", conf->status.socket,
		    cause != NULL ? cause : "failed");
		free(cause);
		d.exit_code = 1;
		goto out;
	}

	notify_init(d.base);
	manager_start(d.manager);
	if (d.cluster != NULL)
		clustering_start(d.cluster, d.manager);
	event_add(&d.ev_status, time_ms_tv(&tv, STATUS_REFRESH_MS));
	refresh_status(&d);
	log_notice("ewsgw %s started: %zu mailboxes, mode %s, %s",
	    PACKAGE_VERSION, conf->nmailboxes,
	    conf_mode_name(conf->exchange.mode), conf->exchange.url);
	notify_ready();

	/* From here on the loop runs: watch how long it is held up. */
	d.lag = looplag_new(d.base, LOOPLAG_PERIOD_MS);
	looplag_dispatch(d.lag);
	log_notice("ewsgw stopped");

out:
	if (d.control != NULL)
		control_close(d.control);
	/* The membership first: it calls into the manager. */
	clustering_free(d.cluster);
	if (d.manager != NULL)
		manager_free(d.manager);
	if (d.sinks != NULL)
		sinkset_free(d.sinks);
	notify_shutdown();
	looplag_free(d.lag);
	event_del(&d.ev_status);
	event_del(&d.ev_hard_stop);
	event_del(&d.ev_hup);
	event_del(&d.ev_term);
	event_del(&d.ev_int);
	event_del(&d.ev_pipe);
	event_base_free(d.base);
	curl_global_cleanup();
	ews_parse_cleanup();
	conf_free(d.conf);
	free(d.last_reload_error);
	free(d.restart_pending);
	free(d.path);
	return (d.exit_code);
}
