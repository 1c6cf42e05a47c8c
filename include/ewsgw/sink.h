/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The sink plugin ABI: how presence changes leave the daemon.  Built-in
 * sinks and loadable plugins (.so files exporting ewsgw_sink_module)
 * implement the same struct ewsgw_sink_ops.
 */
#ifndef EWSGW_SINK_H
#define EWSGW_SINK_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Bumped on every incompatible change.  The host refuses a module whose
 * abi_version differs, or whose ops struct is smaller than it needs.
 */
#define EWSGW_SINK_ABI_VERSION	1

/*
 * The contract every sink must keep:
 *
 * - Never block the event loop.  Work that may take time (network,
 *   child processes) is started in publish() and finished later with
 *   ewsgw_host_done(); use ewsgw_host_event_base() for fds and timers.
 * - Everything the host passes (the change record, its strings, config
 *   values) is borrowed for the duration of the call only: copy whatever
 *   is kept past the return.
 * - All strings are UTF-8 and NUL-terminated.
 * - Delivery is at least once: after EWSGW_SINK_ERR (or a late
 *   ewsgw_host_done() with EWSGW_SINK_ERR) the host retries the same
 *   change later with back-off, so a sink must tolerate duplicates
 *   (the seq field tells them apart).
 * - The host never hands a sink a change for a mailbox while an earlier
 *   change for the same mailbox is still pending at that sink, so
 *   per-mailbox order is preserved without help from the sink.
 * - Everything runs on the single loop thread; no locking is needed,
 *   and no host function may be called from another thread.
 */

/* Results of publish() and of ewsgw_host_done(). */
#define EWSGW_SINK_OK		0	/* delivered */
#define EWSGW_SINK_PENDING	1	/* will call ewsgw_host_done() */
#define EWSGW_SINK_AGAIN	2	/* backpressure: retry later */
#define EWSGW_SINK_ERR		(-1)	/* failed: retry with back-off */
#define EWSGW_SINK_REJECT	(-2)	/* refused for good: not retried */

/*
 * One presence change of one mailbox.  Append-only: new fields go at
 * the end, and a sink reads a field only when size covers it, e.g.
 * EWSGW_CHANGE_HAS(c, seq).
 */
struct ewsgw_presence_change {
	size_t		 size;		/* sizeof the struct as built */
	const char	*mailbox;	/* SMTP address, lower case */
	const char	*presence;	/* available|busy|away|unknown */
	const char	*previous;	/* the state before, or NULL */
	const char	*activity;	/* meeting|out-of-office|... or NULL */
	int64_t		 since;		/* epoch seconds, 0 = none */
	int64_t		 until;		/* epoch seconds, 0 = none */
	const char	*source;	/* calendar|oof|resync|startup|timer */
	uint64_t	 seq;		/* see below */
};

/*
 * seq: a number that is larger for every change than for any change
 * published before it, by this daemon run or an earlier one, for every
 * mailbox: a consumer that remembers the largest seq it processed per
 * mailbox can drop any change whose seq is not larger, and loses none.
 * Numbers are not consecutive (they are shared by all mailboxes and a
 * restart skips ahead), they survive restarts and reloads (a mailbox
 * added or re-added by a reload continues above everything before), and
 * they stay below 2^53, so JSON parsers that read numbers as doubles
 * keep them exact.  How: the daemon reserves ranges of 2^20 numbers in
 * the file "seq" of its state directory (one small durable write per
 * range, none per change) and starts a run above the reserved range, and
 * never below the wall clock in microseconds since 2020-01-01; without a
 * state directory the clock alone keeps restarts above earlier runs.
 * since: when the current state began, where the calendar says so (the
 * start of the meeting or of the out-of-office period that holds now,
 * or the end of the last one within the lookback), also for the first
 * change after a start; 0 when it is not known.
 */

#define EWSGW_CHANGE_HAS(c, field)					\
	((c)->size >= offsetof(struct ewsgw_presence_change, field) +	\
	    sizeof((c)->field))

/* A sink instance: defined by each sink, opaque to the host. */
struct ewsgw_sink;
struct event_base;
struct ewsgw_host;
struct ewsgw_sink_config;

/*
 * Services the host offers each sink instance.  Call them through the
 * inline wrappers below, so a plugin needs no symbol from the daemon.
 */
struct ewsgw_host_ops {
	size_t	 size;		/* sizeof(struct ewsgw_host_ops) */
	void	(*vlog)(struct ewsgw_host *, int prio, const char *mailbox,
		    const char *fmt, va_list ap);
	void	(*done)(struct ewsgw_host *, uint64_t token, int result);
	void	(*resume)(struct ewsgw_host *);
	struct event_base *(*event_base)(struct ewsgw_host *);
	const char *(*name)(struct ewsgw_host *);
};

/* The handle a sink gets in create(); valid until destroy() returns. */
struct ewsgw_host {
	uint32_t			 abi_version;
	const struct ewsgw_host_ops	*ops;
};

/*
 * The sink's configuration section.  get() returns a key's value
 * (borrowed) or NULL, and marks the key as consumed: after create() or
 * check(), every key nobody asked for is reported as unknown.  error()
 * records a configuration error at the key's FILE:LINE (the section
 * header's when key is NULL or absent).
 */
struct ewsgw_sink_config_ops {
	size_t	 size;		/* sizeof(struct ewsgw_sink_config_ops) */
	const char *(*get)(const struct ewsgw_sink_config *, const char *key);
	void	(*verror)(const struct ewsgw_sink_config *, const char *key,
		    const char *fmt, va_list ap);
	const char *(*name)(const struct ewsgw_sink_config *);
};

struct ewsgw_sink_config {
	uint32_t				 abi_version;
	const struct ewsgw_sink_config_ops	*ops;
};

/*
 * What a sink implements.  A loadable module exports exactly one symbol
 * of this type:
 *
 *	const struct ewsgw_sink_ops ewsgw_sink_module = {
 *		.abi_version = EWSGW_SINK_ABI_VERSION,
 *		.size = sizeof(struct ewsgw_sink_ops),
 *		.name = "mysink",
 *		.create = my_create, .publish = my_publish,
 *		.destroy = my_destroy,
 *	};
 */
struct ewsgw_sink_ops {
	uint32_t	 abi_version;	/* EWSGW_SINK_ABI_VERSION */
	size_t		 size;		/* sizeof(struct ewsgw_sink_ops) */
	const char	*name;		/* type name, e.g. "file" */

	/*
	 * Validate the configuration without side effects (no files
	 * opened, nothing started), reporting problems with
	 * ewsgw_sink_config_error().  Returns 0 or -1.  Optional: without
	 * it, --check-config cannot detect unknown or missing keys.
	 */
	int	(*check)(const struct ewsgw_sink_config *);

	/*
	 * Create an instance from its configuration.  Returns 0 and sets
	 * *out, or -1 after reporting why with ewsgw_sink_config_error().
	 * The host pointer stays valid until destroy() returns; the config
	 * is borrowed for the call.  Required.
	 */
	int	(*create)(struct ewsgw_host *, const struct ewsgw_sink_config *,
		    struct ewsgw_sink **out);

	/*
	 * Deliver one change.  Returns EWSGW_SINK_OK (done),
	 * EWSGW_SINK_PENDING (the sink calls ewsgw_host_done(host, token,
	 * result) exactly once later; it may do so before returning),
	 * EWSGW_SINK_AGAIN (not accepted: the host pauses this sink and
	 * retries after a short delay or when the sink calls
	 * ewsgw_host_resume()), EWSGW_SINK_ERR (retried with back-off) or
	 * EWSGW_SINK_REJECT (the change itself can never be delivered,
	 * e.g. HTTP 400: counted, logged and skipped; use it sparingly,
	 * it breaks at-least-once).  The change is borrowed for the call.
	 * Required.
	 */
	int	(*publish)(struct ewsgw_sink *,
		    const struct ewsgw_presence_change *, uint64_t token);

	/*
	 * Write out anything the sink buffers (e.g. a coalesced state
	 * file); called at shutdown once the queue is drained or the
	 * flush deadline passed.  Optional.
	 */
	void	(*flush)(struct ewsgw_sink *);

	/*
	 * Report the sink's own view of its health: return 1 if healthy,
	 * 0 if not, with a short reason in detail (NUL-terminated, at most
	 * len bytes).  Optional.
	 */
	int	(*health)(struct ewsgw_sink *, char *detail, size_t len);

	/*
	 * Release everything; cancel outstanding work without calling
	 * ewsgw_host_done().  The host redelivers what was pending to the
	 * next instance when the section is reloaded.  Required.
	 */
	void	(*destroy)(struct ewsgw_sink *);

	/* Reopen files (log rotation, SIGHUP).  Optional. */
	void	(*reopen)(struct ewsgw_sink *);

	/*
	 * The mailbox (borrowed for the call) is no longer watched: a
	 * reload removed it from the configuration.  Drop whatever the
	 * sink keeps about it (the file sink removes it from its state
	 * document).  Called in order with the mailbox's changes: after
	 * the sink finished with every earlier change of that mailbox and
	 * before any later one (it may be added again).  Must not fail.
	 * Optional; added after ABI version 1 shipped, so the host only
	 * calls it when size covers it.
	 */
	void	(*forget)(struct ewsgw_sink *, const char *mailbox);

	/*
	 * A reload changed the section: this instance, just created and
	 * given no change yet, replaces old, an instance of the same ops
	 * table that was given every change so far.  Take over whatever
	 * per-mailbox state the sink keeps and must not lose (the file
	 * sink's state document: without it the next write would omit
	 * every mailbox that did not change since), without delivering
	 * anything again.  old is destroyed right after; the changes it
	 * had not finished are handed to this instance next, in order.
	 * Optional (a sink that keeps no state needs none); added after
	 * ABI version 1 shipped, so the host only calls it when size
	 * covers it.
	 */
	void	(*takeover)(struct ewsgw_sink *, struct ewsgw_sink *old);
};

/* The symbol a loadable sink module exports. */
#define EWSGW_SINK_MODULE_SYMBOL	"ewsgw_sink_module"

/* ---- host services ---- */

/* Log a message (syslog priority) tagged SINK=<instance name>. */
static inline void
ewsgw_host_log(struct ewsgw_host *host, int prio, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void
ewsgw_host_log(struct ewsgw_host *host, int prio, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	host->ops->vlog(host, prio, NULL, fmt, ap);
	va_end(ap);
}

/* Log a message about one mailbox (adds MAILBOX=). */
static inline void
ewsgw_host_mlog(struct ewsgw_host *host, int prio, const char *mailbox,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static inline void
ewsgw_host_mlog(struct ewsgw_host *host, int prio, const char *mailbox,
    const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	host->ops->vlog(host, prio, mailbox, fmt, ap);
	va_end(ap);
}

/*
 * Complete a publish() that returned EWSGW_SINK_PENDING, with
 * EWSGW_SINK_OK, EWSGW_SINK_ERR, EWSGW_SINK_REJECT or EWSGW_SINK_AGAIN.
 * Unknown or already completed tokens are ignored.
 */
static inline void
ewsgw_host_done(struct ewsgw_host *host, uint64_t token, int result)
{
	host->ops->done(host, token, result);
}

/* After EWSGW_SINK_AGAIN: the sink can take more now. */
static inline void
ewsgw_host_resume(struct ewsgw_host *host)
{
	host->ops->resume(host);
}

/* The daemon's libevent loop, for the sink's own fds and timers. */
static inline struct event_base *
ewsgw_host_event_base(struct ewsgw_host *host)
{
	return (host->ops->event_base(host));
}

/* The instance name ([sink NAME]); borrowed. */
static inline const char *
ewsgw_host_name(struct ewsgw_host *host)
{
	return (host->ops->name(host));
}

/* ---- configuration access ---- */

/* A key's value (borrowed) or NULL; marks the key as known. */
static inline const char *
ewsgw_sink_config_get(const struct ewsgw_sink_config *cfg, const char *key)
{
	return (cfg->ops->get(cfg, key));
}

/* Report a configuration error at key's FILE:LINE (NULL: the section). */
static inline void
ewsgw_sink_config_error(const struct ewsgw_sink_config *cfg,
    const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void
ewsgw_sink_config_error(const struct ewsgw_sink_config *cfg,
    const char *key, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	cfg->ops->verror(cfg, key, fmt, ap);
	va_end(ap);
}

/* The instance name ([sink NAME]); borrowed. */
static inline const char *
ewsgw_sink_config_name(const struct ewsgw_sink_config *cfg)
{
	return (cfg->ops->name(cfg));
}

#ifdef __cplusplus
}
#endif

#endif
