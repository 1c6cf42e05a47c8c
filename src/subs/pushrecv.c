/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Push mode glue: SendNotification bodies from the listener go to the
 * mailboxes whose subscriptions they name; unknown subscriptions are told
 * to unsubscribe.  Exchange's retries of one notification only cause
 * another calendar read, whose unchanged result publishes nothing.
 */
#include "config.h"

#include <sys/random.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/conf.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "ews/ews_parse.h"
#include "graph/graph_sub.h"
#include "io/push.h"
#include "subs/env.h"
#include "subs/mailbox.h"
#include "subs/pushrecv.h"
#include "subs/registry.h"

struct pushrecv {
	struct registry	*reg;		/* borrowed */
	struct push	*listener;
	char		*path;
	char		*url;		/* registered: with the token, secret */
	bool		 stopped;
	char		*graph_path;
	char		*graph_url;	/* secret: holds the token */
	char		*graph_lc_url;	/* secret */
	char		 client_state[65];	/* secret: 32 random bytes,
						   hex */
	struct pushrecv_graph_stats gst;
};

/* Graph's notifications for the mailboxes they name. */
static int
on_graph(bool lifecycle, const char *body, size_t len, void *arg)
{
	struct pushrecv		*pr = arg;
	struct graph_notifs	 ns;
	struct mailbox		*mb;
	char			*cause = NULL;
	size_t			 i;

	if (graph_parse_notifications(body, len, pr->client_state, &ns,
	    &cause) == -1) {
		log_info("push: Graph notification refused: %s", cause);
		free(cause);
		return (PUSH_BAD);
	}
	if (ns.bad_state > 0) {
		pr->gst.forged += ns.bad_state;
		log_warnx("push: %zu Graph notifications with a wrong "
		    "clientState dropped (forged, or from before a restart)",
		    ns.bad_state);
	}
	for (i = 0; i < ns.n; i++) {
		mb = registry_by_subid(pr->reg, ns.v[i].subscription_id);
		if (mb == NULL || pr->stopped ||
		    mailbox_backend(mb) != MAILBOX_BACKEND_GRAPH) {
			pr->gst.unknown++;
			continue;
		}
		pr->gst.received++;
		if (lifecycle || ns.v[i].kind != GRAPH_NOTIF_CHANGE)
			log_info("push: Graph %s for %s",
			    graph_notif_kind_name(ns.v[i].kind),
			    mailbox_address(mb));
		mailbox_graph_notify(mb, (int)ns.v[i].kind);
	}
	graph_notifs_free(&ns);
	return (PUSH_OK);
}

/* "https://host/path?q" -> "/path" (allocated). */
static char *
url_path(const char *url)
{
	const char	*s = strstr(url, "://");

	s = s != NULL ? s + 3 : url;
	s += strcspn(s, "/?#");
	return (xstrndup(s, strcspn(s, "?#")));
}

/* Whether two URL paths are one, trailing slashes aside. */
static bool
same_path(const char *a, const char *b)
{
	size_t	 na, nb;

	a = a != NULL ? a : "";
	b = b != NULL ? b : "";
	for (na = strlen(a); na > 0 && a[na - 1] == '/'; na--)
		;
	for (nb = strlen(b); nb > 0 && b[nb - 1] == '/'; nb--)
		;
	return (na == nb && strncmp(a, b, na) == 0);
}

static int
graph_setup(struct pushrecv *pr, const struct config *conf, char **cause)
{
	unsigned char	 raw[32];
	size_t		 i;

	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
		*cause = xstrdup("no random bytes for the Graph clientState");
		return (-1);
	}
	for (i = 0; i < sizeof raw; i++)
		snprintf(pr->client_state + 2 * i, 3, "%02x", raw[i]);
	explicit_bzero(raw, sizeof raw);
	if ((pr->graph_url = push_notify_url(pr->listener,
	    conf->graph.notification_url)) == NULL) {
		xasprintf(cause, "[graph] notification_url %s is not a URL",
		    conf->graph.notification_url);
		return (-1);
	}
	xasprintf(&pr->graph_lc_url, "%s/lifecycle", pr->graph_url);
	log_info("Graph notifications to %s/TOKEN",
	    conf->graph.notification_url);
	return (0);
}

static int
on_notify(const struct ews_notifications *ns, const char *body, size_t len,
    void *arg)
{
	struct pushrecv		*pr = arg;
	struct mailbox		*mb;
	size_t			 i;
	int			 verdict = PUSH_UNSUBSCRIBE;

	for (i = 0; i < ns->nmsgs; i++) {
		if (!ns->msgs[i].has_notification)
			continue;
		mb = registry_by_subid(pr->reg,
		    ns->msgs[i].notification.subscription_id);
		if (mb == NULL || pr->stopped ||
		    mailbox_mode(mb) != MAILBOX_MODE_PUSH ||
		    mailbox_backend(mb) != MAILBOX_BACKEND_EWS) {
			log_info("push: unknown subscription %.40s: "
			    "answering Unsubscribe",
			    ns->msgs[i].notification.subscription_id ?
			    ns->msgs[i].notification.subscription_id : "?");
			continue;
		}
		mailbox_events(mb, ns->msgs[i].notification.events,
		    ns->msgs[i].notification.nevents);
		verdict = PUSH_OK;
	}
	return (verdict);
}

struct pushrecv *
pushrecv_new(const struct subs_env *env, struct registry *reg, char **cause)
{
	struct pushrecv		*pr;
	struct push_opts	 o;

	pr = xcalloc(1, sizeof *pr);
	pr->reg = reg;
	push_opts_from_config(&o, &pr->path, env->conf);
	if (env->conf->graph.notifications &&
	    env->conf->graph.notification_url != NULL) {
		pr->graph_path = url_path(env->conf->graph.notification_url);
		if (same_path(pr->graph_path, o.path)) {
			xasprintf(cause, "[graph] notification_url needs a "
			    "path of its own, not [push] url's");
			free(pr->path);
			free(pr->graph_path);
			free(pr);
			return (NULL);
		}
		o.graph_path = pr->graph_path;
		o.graph_cb = on_graph;
	}
	if ((pr->listener = push_new(env->base, &o, on_notify, pr,
	    cause)) == NULL) {
		free(pr->path);
		free(pr->graph_path);
		free(pr);
		return (NULL);
	}
	if (pr->graph_path != NULL && graph_setup(pr, env->conf, cause) == -1) {
		pushrecv_free(pr);
		return (NULL);
	}
	if (env->conf->push.url == NULL)
		return (pr);	/* the listener serves Graph alone */
	if ((pr->url = push_notify_url(pr->listener,
	    env->conf->push.url)) == NULL) {
		xasprintf(cause, "[push] url %s is not a URL",
		    env->conf->push.url);
		pushrecv_free(pr);
		return (NULL);
	}
	log_info("push listener on %s for %s/TOKEN", env->conf->push.listen,
	    env->conf->push.url);
	return (pr);
}

void
pushrecv_stop(struct pushrecv *pr)
{
	pr->stopped = true;
}

void
pushrecv_free(struct pushrecv *pr)
{
	if (pr == NULL)
		return;
	push_free(pr->listener);
	free(pr->path);
	free(pr->graph_path);
	xfree_secret(pr->url);
	xfree_secret(pr->graph_url);
	xfree_secret(pr->graph_lc_url);
	explicit_bzero(pr->client_state, sizeof pr->client_state);
	free(pr);
}

const char *
pushrecv_url(const struct pushrecv *pr)
{
	return (pr->url);
}

const char *
pushrecv_graph_url(const struct pushrecv *pr)
{
	return (pr->graph_url);
}

const char *
pushrecv_graph_lc_url(const struct pushrecv *pr)
{
	return (pr->graph_lc_url);
}

const char *
pushrecv_client_state(const struct pushrecv *pr)
{
	return (pr->graph_url != NULL ? pr->client_state : NULL);
}

const struct pushrecv_graph_stats *
pushrecv_graph_stats(const struct pushrecv *pr)
{
	return (&pr->gst);
}

void
pushrecv_json(const struct pushrecv *pr, struct json_writer *w)
{
	push_stats_json(push_get_stats(pr->listener), w);
}
