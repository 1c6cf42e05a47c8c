/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The subscription manager: every configured mailbox watched (streaming,
 * push or polling) inside Exchange's budgets, through drops, restarts and
 * back-off; presence computed and published.  This header is the
 * daemon's view; the manager's own modules sit under it (src/README.md
 * draws their order) and report to it through hooks.
 */
#ifndef EWSGW_MANAGER_H
#define EWSGW_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct config;
struct event_base;
struct ews_ctx;
struct json_writer;
struct manager;
struct sinkset;

typedef void (*manager_done_cb)(void *);

/*
 * Cluster mode: the manager runs only the mailboxes it is told it owns,
 * within the budget share it is given, and reports when it has done so.
 * It knows nothing of the cluster itself; the daemon forwards.
 */
struct manager_cluster_hooks {
	/* Every mailbox not owned any more has stopped (unsubscribed). */
	void	(*released)(void *);
	/* Requests and subscriptions in use are within the share. */
	void	(*applied)(void *);
	/* Autodiscover gave a mailbox run here this group key (borrowed). */
	void	(*grouped)(const char *address, const char *key, void *);
	void	*arg;
};

/*
 * A manager for the mailboxes of conf (borrowed, as are base and sinks,
 * for its life or until the next reload).  With cluster hooks (copied;
 * NULL: every mailbox, the whole budget) it starts with no mailbox and
 * a zero budget until manager_set_owned() and manager_set_share().
 * Returns allocated (free with manager_free), or NULL with *cause
 * (allocated, caller frees).
 */
struct manager	*manager_new(struct event_base *, const struct config *,
		    struct sinkset *, const struct manager_cluster_hooks *,
		    char **cause);
/*
 * Cluster mode.  owned[i] says whether this node owns conf->mailboxes[i]
 * of the running configuration.  Mailboxes no longer owned stop at once
 * (unsubscribe), then released() follows (also when none had to stop);
 * owned mailboxes not running yet start only if may_start.
 */
void		 manager_set_owned(struct manager *, const bool *owned,
		    bool may_start);
/* Cluster mode: this node's share; applied() once in use is within it. */
void		 manager_set_share(struct manager *, unsigned concurrency,
		    unsigned subscriptions);
/*
 * Cluster mode: the lease is lost.  Publish nothing more and drop every
 * mailbox; their Unsubscribe requests may go out until budget_until_ms
 * (monotonic), then whatever is left is dropped without a word.
 */
void		 manager_fence(struct manager *, int64_t budget_until_ms);
/* Mailboxes this node runs (cluster mode: owns and has started). */
size_t		 manager_running(struct manager *);
void		 manager_start(struct manager *);
/* The new config is borrowed and must stay alive (the daemon owns it). */
void		 manager_reload(struct manager *, const struct config *);
/* Release subscriptions within timeout_ms, then call cb once. */
void		 manager_shutdown(struct manager *, int64_t timeout_ms,
		    manager_done_cb, void *);
void		 manager_free(struct manager *);

/* Status socket: members of the answer object.  Returns healthy. */
int		 manager_status_json(struct manager *, struct json_writer *);
void		 manager_mailboxes_json(struct manager *, struct json_writer *);
int		 manager_mailbox_json(struct manager *, const char *,
		    struct json_writer *);
void		 manager_connections_json(struct manager *,
		    struct json_writer *);
int		 manager_resync(struct manager *, const char *, char **cause);
/*
 * Ask Autodiscover again now for the mailbox addr, or for every mailbox
 * (NULL), and regroup those whose grouping changed; *queued says how
 * many are asked.  -1 and *cause when Autodiscover is off or addr is
 * not watched.
 */
int		 manager_rediscover(struct manager *, const char *addr,
		    size_t *queued, char **cause);
void		 manager_metrics(struct manager *, struct buf *);
/*
 * One line for systemd's STATUS=.  Returns whether every mailbox is past
 * its start (none idle, subscribing or in its first read).
 */
bool		 manager_summary(struct manager *, char *, size_t);
/*
 * The EWS call path and budget every request of the manager goes
 * through, for another owner whose requests must count against the
 * same budget (ewsgwctl verify).  Valid until manager_free.
 */
struct ews_ctx	*manager_ews(struct manager *);
/* The same for Graph: its client, or NULL without Graph mailboxes. */
struct graph_client *manager_graph(struct manager *);

#endif
