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

#include <stdlib.h>
#include <string.h>

#include "base/conf.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "ews/ews_parse.h"
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
	uint64_t	 received;
	bool		 stopped;
};

static int
on_notify(const struct ews_notifications *ns, const char *body, size_t len,
    void *arg)
{
	struct pushrecv		*pr = arg;
	struct mailbox		*mb;
	size_t			 i;
	int			 verdict = PUSH_UNSUBSCRIBE;

	pr->received++;
	for (i = 0; i < ns->nmsgs; i++) {
		if (!ns->msgs[i].has_notification)
			continue;
		mb = registry_by_subid(pr->reg,
		    ns->msgs[i].notification.subscription_id);
		if (mb == NULL || pr->stopped ||
		    mailbox_mode(mb) != MAILBOX_MODE_PUSH) {
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
	if ((pr->listener = push_new(env->base, &o, on_notify, pr,
	    cause)) == NULL) {
		free(pr->path);
		free(pr);
		return (NULL);
	}
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
	xfree_secret(pr->url);
	free(pr);
}

const char *
pushrecv_url(const struct pushrecv *pr)
{
	return (pr->url);
}

uint64_t
pushrecv_received(const struct pushrecv *pr)
{
	return (pr->received);
}

void
pushrecv_json(const struct pushrecv *pr, struct json_writer *w)
{
	push_stats_json(push_get_stats(pr->listener), w);
}
