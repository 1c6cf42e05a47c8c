/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The sink registry and delivery engine: configured sink instances, each
 * with its own bounded queue, per-mailbox ordering, at-least-once retry
 * with jittered back-off, health and metrics.
 */
#ifndef EWSGW_SINK_ENGINE_H
#define EWSGW_SINK_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ewsgw/sink.h>

#include "base/buf.h"
#include "base/json.h"

struct config;
struct conf_sink;
struct sinkset;

/*
 * Keys every sink section understands, consumed by the host:
 *   type           log | file | exec | webhook | plugin (required)
 *   queue_limit    soft bound of queued changes (default 10000)
 *   max_inflight   changes handed to the sink at once (default 256)
 *   retry_initial  shortest back-off after a failure (default 1s)
 *   retry_max      back-off cap (default 5m); delays are drawn with
 *                  decorrelated jitter (backoff.h) between the two
 *                  and grow with consecutive failures
 *   path           for type = plugin: the module to dlopen()
 *
 * Queue-full policy: when queue_limit is reached, the queue is coalesced
 * so that each mailbox keeps only its newest undelivered change (its
 * "previous" becomes the last state the sink saw), and every discarded
 * change is counted as dropped.  The newest state of a mailbox is never
 * discarded, so past the limit the queue holds at most one change per
 * mailbox plus what is in flight: memory stays bounded by the number of
 * mailboxes, and a sink that comes back ends up with the latest state.
 */
#define SINK_QUEUE_LIMIT_DEFAULT	10000
#define SINK_MAX_INFLIGHT_DEFAULT	256
#define SINK_RETRY_INITIAL_DEFAULT	1000		/* ms */
#define SINK_RETRY_MAX_DEFAULT		(5 * 60 * 1000)	/* ms */

/* Called once when a flush finished; undelivered = changes left over. */
typedef void (*sinkset_flush_cb)(void *arg, size_t undelivered);

/*
 * Create every sink of conf->sinks on base.  Returns a new set (free
 * with sinkset_free), or NULL with "FILE:LINE: message\n" lines appended
 * to *errors (allocated, caller frees).  Borrows base and conf (the set
 * keeps copies of what it needs).
 */
struct sinkset	*sinkset_new(struct event_base *, const struct config *,
		    char **errors);

/*
 * Queue one change for every sink; copies it (borrowed).  Never blocks;
 * delivery happens on the loop.
 */
void		 sinkset_publish(struct sinkset *,
		    const struct ewsgw_presence_change *);

/*
 * The seq of the next change (include/ewsgw/sink.h): unique and
 * increasing per daemon installation across restarts and reloads, kept
 * in conf_state_directory() (base/seqstore.h).
 */
uint64_t	 sinkset_next_seq(struct sinkset *);
/* Mailboxes came from another node: see seqstore_floor(). */
void		 sinkset_seq_floor(struct sinkset *);

/*
 * The mailbox (borrowed) is no longer watched: every sink's forget()
 * runs after the changes of it already queued there, before any later
 * one.  Never blocks.
 */
void		 sinkset_forget(struct sinkset *, const char *mailbox);
/*
 * Drop what the sinks have not started delivering for mailbox (another
 * node publishes it now); a change in flight is left to finish, but is
 * dropped rather than retried if it fails.  A later change of mailbox
 * queues normally again.  Returns the number of changes dropped.
 */
size_t		 sinkset_drop(struct sinkset *, const char *mailbox);
/* Whether any sink still holds (queued or in flight) a change of mailbox. */
bool		 sinkset_holds(struct sinkset *, const char *mailbox);

/*
 * Deliver what is queued within timeout_ms (back-off delays are
 * shortened meanwhile), then call each sink's flush() and cb once, from
 * the loop (never from inside this call).  The set stays usable.
 */
void		 sinkset_flush(struct sinkset *, int64_t timeout_ms,
		    sinkset_flush_cb, void *arg);

/*
 * Apply a new configuration: sections unchanged since the last one keep
 * their instance and queue (and are reopened, as by sinkset_reopen);
 * new or changed ones get new instances (a changed one takes over its
 * predecessor's state through the sink's takeover(), then inherits its
 * undelivered changes); removed ones are destroyed.  All or nothing:
 * returns 0, or -1 with errors appended to *errors and the set
 * untouched.  Borrows conf.
 */
int		 sinkset_reload(struct sinkset *, const struct config *,
		    char **errors)
		    __attribute__((warn_unused_result));

/* Reopen files of every sink (SIGHUP, log rotation). */
void		 sinkset_reopen(struct sinkset *);

/* Write a JSON array with one health object per sink at w's position. */
void		 sinkset_status_json(struct sinkset *, struct json_writer *);

/*
 * Write {"healthy": N, "total": N, "queue": N} at w's position: the
 * sinks line of the daemon's status.
 */
void		 sinkset_summary_json(struct sinkset *, struct json_writer *);

/* Append Prometheus text-format lines for every sink to out. */
void		 sinkset_metrics(struct sinkset *, struct buf *);

/* Number of changes queued or in flight over all sinks. */
size_t		 sinkset_depth(struct sinkset *);
/* Sink instances, and how many of them report healthy. */
size_t		 sinkset_count(struct sinkset *);
size_t		 sinkset_healthy(struct sinkset *);

/* Destroy every sink; undelivered changes are logged and discarded. */
void		 sinkset_free(struct sinkset *);

/*
 * Validate one sink section without side effects, for --check-config.
 * Returns 0, or -1 with "FILE:LINE: message\n" lines appended to
 * *errors (allocated, caller frees).  conf_path names the file.
 */
int		 sink_validate(const struct conf_sink *, const char *conf_path,
		    char **errors);

/*
 * sink_validate for every section of conf (what --check-config runs).
 * Returns 0, or -1 with errors appended to *errors.  Borrows conf.
 */
int		 sinkset_validate(const struct config *, char **errors);

/* The built-in sink types, NULL-terminated; borrowed. */
const struct ewsgw_sink_ops *const *sink_builtins(void);

/*
 * Add a sink type at run time (tests, embedders); ops is borrowed and
 * must stay valid.  Returns 0, or -1 if ops is incomplete or the small
 * table is full.
 */
int	 sink_register_type(const struct ewsgw_sink_ops *);

/*
 * The change as one JSON object, appended to out: mailbox, presence,
 * previous, activity, since, until (ISO 8601 UTC or null), source, seq.
 * What the file sink's change log and the webhook send.
 */
void	 sink_change_json(struct buf *, const struct ewsgw_presence_change *);

/* Longest secret sink_read_secret accepts. */
#define SINK_MAX_SECRET	8192

/*
 * A one-line secret from path, trailing white space removed (allocated,
 * caller frees with xfree_secret), or NULL with *cause set (allocated,
 * caller frees).
 */
char	*sink_read_secret(const char *path, char **cause);
/*
 * Configuration check of a secret file named by key: readable, and
 * accepted by secret_file_judge() (base/secretfile.h, the checks the
 * EWS password file gets).  A refusal is reported at key's FILE:LINE
 * and returns -1; a group-readable file is logged as a warning.
 * sink_read_secret() refuses what this refuses, also on later reads.
 */
int	 sink_check_secret_file(const struct ewsgw_sink_config *,
	    const char *key, const char *path);

/*
 * Helpers for built-in sinks: read a key as a duration ("10s", unit
 * default_unit_ms when none) or an unsigned in [min, max].  Return 0
 * and the value (def when the key is absent) or -1 after reporting a
 * configuration error.
 */
int	 sink_config_duration(const struct ewsgw_sink_config *,
	    const char *key, int64_t def, int64_t default_unit_ms,
	    int64_t *out);
int	 sink_config_uint(const struct ewsgw_sink_config *, const char *key,
	    unsigned def, unsigned min, unsigned max, unsigned *out);
/* "yes/true/on/1" or "no/false/off/0"; same return convention. */
int	 sink_config_bool(const struct ewsgw_sink_config *, const char *key,
	    int def, int *out);

#endif
