/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The status socket: a Unix stream socket served on the daemon's
 * libevent loop, one request line in, one answer out (see ctl_cmd.h for
 * the protocol and struct control_provider for what the daemon supplies).
 *
 * Who may talk: root, the daemon's own uid, and members of the configured
 * group (primary or supplementary); everyone else gets one error line and
 * is closed.  Mutating commands need root or the daemon's uid.
 *
 * Hostile clients cannot stall the loop or grow memory without bound:
 * request lines are capped, the number of clients is capped (with a few
 * slots kept for root and the daemon's uid), idle clients are dropped,
 * and a client has at most one answer queued: its next request is not
 * even read until the previous answer has been sent, so a client that
 * never reads costs one answer and is dropped after the idle timeout.
 * (A cap on queued bytes alone would have to exceed the largest
 * legitimate answer, "mailboxes" for 100,000 mailboxes, tens of MiB.)
 *
 * Writes to a client that has gone away raise SIGPIPE; control_open()
 * therefore ignores SIGPIPE for the process if it is at its default.
 *
 * Wiring it into the daemon:
 *
 *	static void
 *	my_status(struct json_writer *w, void *arg)
 *	{
 *		struct daemon *d = arg;
 *
 *		json_kv_str(w, "version", PACKAGE_VERSION);
 *		json_kv_bool(w, "healthy", d->problems == 0);
 *		...
 *	}
 *
 *	struct control_provider p = { .status = my_status, ...,
 *	    .reload = my_reload, .arg = d };
 *	d->control = control_open(base, cf->status.socket, cf->status.mode,
 *	    cf->status.group, &p, &cause);
 *	if (d->control == NULL)
 *		fatalx("%s", cause);
 *	...
 *	control_close(d->control);	(at shutdown, before the event_base)
 *
 * verify answers later, through control_reply_*() below.
 */
#ifndef EWSGW_CONTROL_H
#define EWSGW_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "control/ctl_cmd.h"

struct event_base;
struct control;

/* Default limits; control_set_limits() changes them. */
#define CONTROL_MAX_LINE	4096		/* bytes per request line */
#define CONTROL_MAX_CLIENTS	64
/* Slots beyond max_clients that only root and the daemon's uid may use,
 * so that readers filling the socket cannot lock out a reload. */
#define CONTROL_ADMIN_RESERVE	4
#define CONTROL_IDLE_TIMEOUT_MS	30000		/* no request / no progress */
#define CONTROL_MAX_ANSWER	(256u << 20)	/* bigger: error instead */

struct control_limits {
	size_t		 max_line;
	unsigned	 max_clients;
	int64_t		 idle_timeout_ms;
	size_t		 max_answer;
};

/*
 * Create the socket at path and serve it on base.  Refuses to start if
 * another process answers on path (a running instance) or if path exists
 * and is not a socket; a stale socket is replaced.  The socket gets mode
 * (e.g. 0660) and, if group is not NULL, that group (by name).  The
 * provider is copied; provider->arg is borrowed and must outlive the
 * control.  Returns NULL with *cause (allocated, caller frees) on error.
 */
struct control	*control_open(struct event_base *base, const char *path,
		    mode_t mode, const char *group,
		    const struct control_provider *provider, char **cause);

/*
 * Close every client (cancelling answers to come), remove the socket
 * file, free.  NULL is fine.  Not from inside a provider callback.
 */
void		 control_close(struct control *);

/* Replace the limits (tests use a short idle timeout); 0 keeps a field. */
void		 control_set_limits(struct control *,
		    const struct control_limits *);

/* Replace the provider (for example after a reload).  Copied. */
void		 control_set_provider(struct control *,
		    const struct control_provider *);

/* Connected clients, and the answer bytes queued for all of them. */
unsigned	 control_nclients(const struct control *);
size_t		 control_queued(const struct control *);

struct sockaddr_un;

/*
 * Fill sun for path; -1 with *cause (allocated) if path is empty or too
 * long for a Unix socket.  Shared with ewsgwctl.
 */
int		 control_sockaddr(struct sockaddr_un *sun, const char *path,
		    char **cause);

/* The socket path (borrowed). */
const char	*control_path(const struct control *);

/*
 * Answers to come (struct ctl_reply, handed to provider->verify): the
 * client waits, and its next request is not read, until the provider
 * calls control_reply_done() or control_reply_fail(), from any later
 * loop callback or from inside the provider callback itself.  Either
 * sends the answer and frees the handle.
 *
 * If the answer is no longer wanted (the client is dropped, or
 * control_close() runs first), the cancel function set with
 * control_reply_on_cancel() is called once and the handle is freed: the
 * provider must then stop its work and forget the handle.
 */
/* The writer for the answer's members; "ok": true is already written. */
struct json_writer *control_reply_writer(struct ctl_reply *);
void		 control_reply_on_cancel(struct ctl_reply *,
		    void (*cancel)(void *), void *arg);
/* Send the members written so far. */
void		 control_reply_done(struct ctl_reply *);
/* Send {"ok": false, "error": ...} instead of anything written. */
void		 control_reply_fail(struct ctl_reply *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

enum control_access {
	CONTROL_DENY,		/* not allowed to connect */
	CONTROL_READ,		/* read-only commands */
	CONTROL_ADMIN		/* everything, CTL_MUTATES included */
};

/*
 * The rights of a peer with uid/gid (from SO_PEERCRED): CONTROL_ADMIN
 * for root and self_uid, CONTROL_READ for members of group (primary gid,
 * or supplementary per getgrouplist(3) of the uid's user) when
 * have_group, CONTROL_DENY otherwise.
 */
enum control_access control_peer_access(uid_t uid, gid_t gid, uid_t self_uid,
		    bool have_group, gid_t group);

#endif
