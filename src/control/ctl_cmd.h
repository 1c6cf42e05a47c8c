/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The control protocol and its command table.  A request is one line of
 * whitespace-separated words; the answer is one JSON object on one line,
 * always with "ok": true|false (and "error" when false), except for
 * "metrics", which answers in the Prometheus text exposition format and
 * ends with the line "# EOF".  Pure: request in, answer text out; the
 * socket handling lives in control.c and the data comes from the daemon
 * through struct control_provider.
 */
#ifndef EWSGW_CTL_CMD_H
#define EWSGW_CTL_CMD_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/json.h"

/*
 * Where the daemon listens unless configured otherwise: the same default
 * as "socket" in [status] (conf.c), under the run-state directory chosen
 * at build time (/run with --runstatedir=/run, as Debian builds it).
 */
#ifdef EWSGW_RUNSTATEDIR
#define CTL_DEFAULT_SOCKET	EWSGW_RUNSTATEDIR "/ewsgw/status.sock"
#else
#define CTL_DEFAULT_SOCKET	"/run/ewsgw/status.sock"
#endif
/* The last line of a metrics answer. */
#define CTL_METRICS_EOF		"# EOF\n"
/* Words in one request, command included. */
#define CTL_MAX_WORDS		16

/* An answer to come, for commands that cannot answer at once; control.h. */
struct ctl_reply;

/*
 * What the daemon implements.  Every callback may be NULL: the command
 * then answers {"ok":false,"error":"COMMAND: not available"}.
 *
 * The JSON callbacks write the *members* of the answer object: ctl_cmd
 * has already opened it and written "ok": true, and closes it afterwards,
 * so a provider calls json_key()/json_kv_*() and friends and never
 * json_obj_begin() at the top level.  A callback returning -1 must set
 * *cause (allocated; ctl_cmd frees it); whatever it wrote is discarded.
 * Callbacks run on the event loop and must not block.
 */
struct control_provider {
	/* "version", "pid", "healthy", "problems", "mailboxes", ... */
	void	(*status)(struct json_writer *, void *arg);
	/* "mailboxes": [ {...}, ... ] */
	void	(*mailboxes)(struct json_writer *, void *arg);
	/* "mailbox": {...}; -1 with *cause when addr is unknown. */
	int	(*mailbox)(struct json_writer *, const char *addr, char **cause,
		    void *arg);
	/* "connections": [ ... ] */
	void	(*connections)(struct json_writer *, void *arg);
	/* "sinks": [ ... ] */
	void	(*sinks)(struct json_writer *, void *arg);
	/*
	 * Reload the configuration (same path as SIGHUP): on success write
	 * what the answer says about it ("restart_required"); -1 and
	 * *cause.
	 */
	int	(*reload)(struct json_writer *, char **cause, void *arg);
	/* Resynchronise one mailbox now; -1 and *cause. */
	int	(*resync)(const char *addr, char **cause, void *arg);
	/*
	 * Ask Autodiscover again now for one mailbox (addr) or all (NULL)
	 * and regroup those that moved: write "queued"; -1 and *cause.
	 */
	int	(*rediscover)(struct json_writer *, const char *addr,
		    char **cause, void *arg);
	/*
	 * Preflight checks, answered later (they talk to Exchange): keep
	 * reply and answer through control_reply_writer() and
	 * control_reply_done() (control.h) when the checks are over, and
	 * return 0; or return -1 with *cause to fail at once.
	 */
	int	(*verify)(struct ctl_reply *reply, char **cause, void *arg);
	/*
	 * Prometheus text exposition lines ("# HELP", "# TYPE", samples),
	 * without the final "# EOF", which ctl_cmd appends.
	 */
	void	(*metrics)(struct buf *, void *arg);
	/* Cluster mode: "cluster", "assignment", ...; -1 with *cause. */
	int	(*cluster)(struct json_writer *, char **cause, void *arg);
	void	*arg;
};

struct ctl_request {
	const struct control_provider	*provider;	/* borrowed */
	bool				 admin;		/* may mutate */
	int				 argc;		/* words, command 1st */
	char				**argv;		/* borrowed */
	struct buf			*out;		/* non-JSON answer */
	struct ctl_reply		*reply;		/* NULL: no deferral */
};

/*
 * Needs root or the daemon's uid: changes the daemon's state, or (verify)
 * sends requests to Exchange on the service account's budget.
 */
#define CTL_MUTATES	0x1

/* Handler results besides -1. */
#define CTL_ANSWER	0
#define CTL_TEXT	1
#define CTL_DEFERRED	2

struct ctl_cmd_entry {
	const char	*name;
	int		 min_args;	/* arguments after the name */
	int		 max_args;
	int		 flags;		/* CTL_* */
	/*
	 * Write the answer members (ok is already true) through w and
	 * return CTL_ANSWER; return -1 with *cause (allocated) to answer
	 * ok: false instead.  A handler with a non-JSON answer (metrics)
	 * writes to req->out and returns CTL_TEXT; one that handed
	 * req->reply to the provider returns CTL_DEFERRED.
	 */
	int		(*handler)(struct ctl_request *, struct json_writer *w,
			    char **cause);
	const char	*usage;		/* "mailbox ADDRESS" */
	const char	*help;		/* one line */
};

/* The command table, terminated by a NULL name.  Borrowed, static. */
extern const struct ctl_cmd_entry ctl_cmds[];

/* The table entry for a command name, or NULL. */
const struct ctl_cmd_entry *ctl_cmd_find(const char *);

/*
 * Execute one request line (without or with its trailing newline) and
 * append the complete answer, final newline included, to out.  admin says
 * whether the peer may run CTL_MUTATES commands.  reply (borrowed, may be
 * NULL) is offered to commands that answer later; returns true if one
 * took it, with nothing appended to out, false otherwise.  Never fails:
 * every problem becomes an ok: false answer.
 */
bool	ctl_cmd_exec(const struct control_provider *, bool admin,
	    const char *line, size_t len, struct buf *out,
	    struct ctl_reply *reply);

/*
 * Append a one-line error answer {"ok":false,"error":"..."}\n to out.
 */
void	ctl_cmd_error(struct buf *out, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/*
 * For clients with one request outstanding: whether the len bytes
 * received so far hold the complete answer to a request, metrics or
 * another.  Returns its length (one line, or for metrics text that does
 * not start with '{', everything through the final "# EOF\n"), or 0 if
 * more bytes are needed.  Constant time for metrics, so it can be asked
 * after every read.
 */
size_t	ctl_answer_complete(const char *s, size_t len, bool metrics);

#endif
