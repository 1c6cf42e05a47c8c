/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The daemon's side of cluster mode: it owns the node's membership
 * (cluster/cluster.h), places the configured mailboxes over the live
 * members by rendezvous hashing, and forwards what the membership says
 * to the subscription manager's narrow entry points (owned set, budget
 * share, fence) and what the manager reports back to the membership.
 * The manager never sees the cluster.
 */
#ifndef EWSGW_CLUSTERING_H
#define EWSGW_CLUSTERING_H

struct config;
struct event_base;
struct json_writer;
struct manager;
struct manager_cluster_hooks;
struct clustering;

/*
 * For conf->cluster (conf borrowed until the next clustering_reload).
 * Returns NULL with *cause (allocated, caller frees).
 */
struct clustering *clustering_new(struct event_base *,
		    const struct config *, char **cause);
/* The hooks to hand to manager_new(). */
void		 clustering_hooks(struct clustering *,
		    struct manager_cluster_hooks *);
/* Join, with the manager made from those hooks (borrowed). */
void		 clustering_start(struct clustering *, struct manager *);
/* A new mailbox list (after manager_reload): place it again. */
void		 clustering_reload(struct clustering *, const struct config *);
/* Leave the cluster (the manager has dropped everything), then done. */
void		 clustering_leave(struct clustering *, void (*done)(void *),
		    void *);
void		 clustering_free(struct clustering *);

/* "cluster": {...} for ewsgwctl cluster and status. */
void		 clustering_status_json(struct clustering *,
		    struct json_writer *);

#endif
