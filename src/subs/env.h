/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * What the subscription manager lends the modules under it (mailbox,
 * group, poller, pushrecv, graphread): the loop, the EWS call path, the
 * Graph client (NULL when no mailbox is on Graph), the running
 * configuration and the random source for jitter.  The manager owns the
 * struct and alone writes its fields (conf on reload); the modules read
 * them and draw from rng.
 */
#ifndef EWSGW_SUBS_ENV_H
#define EWSGW_SUBS_ENV_H

struct backoff_rng;
struct config;
struct event_base;
struct ews_ctx;
struct graph_client;

struct subs_env {
	struct event_base	*base;
	struct ews_ctx		*ews;
	struct graph_client	*graph;		/* or NULL */
	const struct config	*conf;		/* running configuration */
	struct backoff_rng	*rng;
};

#endif
