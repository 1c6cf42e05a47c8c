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

#include <stddef.h>
#include <stdint.h>

struct buf;
struct config;
struct event_base;
struct json_writer;
struct manager;
struct sinkset;

typedef void (*manager_done_cb)(void *);

/*
 * A manager for the mailboxes of conf (borrowed, as are base and sinks,
 * for its life or until the next reload).  Returns allocated (free with
 * manager_free), or NULL with *cause (allocated, caller frees).
 */
struct manager	*manager_new(struct event_base *, const struct config *,
		    struct sinkset *, char **cause);
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
void		 manager_metrics(struct manager *, struct buf *);
/* One line for systemd's STATUS=. */
void		 manager_summary(struct manager *, char *, size_t);

#endif
