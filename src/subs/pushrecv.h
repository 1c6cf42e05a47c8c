/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Push mode: the listener Exchange POSTs SendNotification to, tied to
 * the mailboxes whose subscriptions it names; and Graph's change and
 * lifecycle notifications, checked against the daemon's clientState
 * secret (random at every start), for the Graph mailboxes.
 *
 * Not a state machine: each notification goes to the mailbox it names
 * at once and leaves nothing behind here but counters; the listener's
 * connections are io/push.c's, and stopping is a flag that only goes on.
 */
#ifndef EWSGW_PUSHRECV_H
#define EWSGW_PUSHRECV_H

#include <stdint.h>

struct json_writer;
struct pushrecv;
struct registry;
struct subs_env;

/*
 * Listen on [push] listen and hand notifications to the mailboxes of
 * reg their subscription ids name (env and reg borrowed for its life).
 * NULL with *cause (allocated, caller frees) on failure.
 */
struct pushrecv	*pushrecv_new(const struct subs_env *, struct registry *,
		    char **cause);
/* Stop accepting (shutdown); answers Unsubscribe meanwhile. */
void		 pushrecv_stop(struct pushrecv *);
void		 pushrecv_free(struct pushrecv *);
/*
 * The notification URL to register with Subscribe: [push] url with the
 * listener's secret token (borrowed; never log it).
 */
const char	*pushrecv_url(const struct pushrecv *);
/*
 * Graph's notification and lifecycle URLs (with the token) and the
 * clientState, all secrets (borrowed); NULL without Graph
 * notifications.
 */
const char	*pushrecv_graph_url(const struct pushrecv *);
const char	*pushrecv_graph_lc_url(const struct pushrecv *);
const char	*pushrecv_client_state(const struct pushrecv *);
/* Graph notifications: taken, dropped for a wrong clientState
 * (forged), for an unknown subscription. */
struct pushrecv_graph_stats {
	uint64_t	 received;
	uint64_t	 forged;
	uint64_t	 unknown;
};
const struct pushrecv_graph_stats *pushrecv_graph_stats(
		    const struct pushrecv *);
/* The listener's counters as one JSON object value (status). */
void		 pushrecv_json(const struct pushrecv *, struct json_writer *);

#endif
