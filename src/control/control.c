/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Status socket server: create and own the Unix socket, accept clients,
 * check their credentials, frame request lines and queue answers, all on
 * the daemon's libevent loop with bufferevents.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>

#include "base/buf.h"
#include "control/control.h"
#include "control/ctl_cmd.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

#define CONTROL_BACKLOG		32
#define CONTROL_ACCEPT_PAUSE_MS	1000	/* after running out of fds */
#define CONTROL_PW_BUF_MAX	(1u << 20)
#define CONTROL_NGROUPS_MAX	65536

struct control_client {
	TAILQ_ENTRY(control_client)	 entry;
	struct control			*ctl;
	struct bufferevent		*bev;
	struct ctl_reply		*pending;	/* answer to come */
	enum control_access		 access;
	uid_t				 uid;
	pid_t				 pid;
	bool				 closing;	/* flush, then free */
};

/* An answer the provider gives later; see control.h. */
struct ctl_reply {
	struct control_client		*client;
	struct buf			 answer;
	struct json_writer		 w;
	void				(*cancel)(void *);
	void				*cancel_arg;
	bool				 in_exec;	/* in ctl_cmd_exec */
	bool				 finished;	/* answered in exec */
};

struct control {
	struct event_base		*base;		/* borrowed */
	char				*path;
	dev_t				 dev;		/* of the socket file */
	ino_t				 ino;
	struct evconnlistener		*listener;
	struct event			 pause_ev;
	struct control_provider		 provider;
	struct control_limits		 limits;
	uid_t				 self_uid;
	bool				 have_group;
	gid_t				 group;
	TAILQ_HEAD(, control_client)	 clients;
	unsigned			 nclients;
};

static int	control_prepare_path(const char *, char **);
static int	control_resolve_group(const char *, gid_t *, char **);
static void	control_accept(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	control_accept_error(struct evconnlistener *, void *);
static void	control_unpause(evutil_socket_t, short, void *);
static void	control_reject(evutil_socket_t, const char *);
static void	control_too_many(struct control *, evutil_socket_t);
static void	control_set_timeouts(struct control_client *);
static void	client_process(struct control_client *);
static void	client_readcb(struct bufferevent *, void *);
static void	client_writecb(struct bufferevent *, void *);
static void	client_eventcb(struct bufferevent *, short, void *);
static void	client_queue(struct control_client *, struct buf *);
static void	client_fail(struct control_client *, const char *);
static void	client_free(struct control_client *);
static void	free_answer(const void *, size_t, void *);
static void	client_answer(struct control_client *, struct buf *);
static void	reply_finish(struct ctl_reply *);

/*
 * Make path free for a new socket: refuse if something answers there (a
 * running instance) or if it is not a socket; remove a stale socket.
 */
static int
control_prepare_path(const char *path, char **cause)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	int			 fd, saved;

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return (0);
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (-1);
	}
	if (!S_ISSOCK(st.st_mode)) {
		xasprintf(cause, "%s: exists and is not a socket", path);
		return (-1);
	}
	if (control_sockaddr(&sun, path, cause) == -1)
		return (-1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		xasprintf(cause, "socket: %s", strerror(errno));
		return (-1);
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
		close(fd);
		xasprintf(cause, "%s: another instance is running (the "
		    "socket answers)", path);
		return (-1);
	}
	saved = errno;
	close(fd);
	if (saved != ECONNREFUSED) {
		xasprintf(cause, "%s: %s", path, strerror(saved));
		return (-1);
	}
	if (unlink(path) == -1 && errno != ENOENT) {
		xasprintf(cause, "unlink %s: %s", path, strerror(errno));
		return (-1);
	}
	log_info("control: removed stale socket %s", path);
	return (0);
}

static int
control_resolve_group(const char *name, gid_t *gid, char **cause)
{
	struct group	 gr, *res = NULL;
	char		*pwbuf = NULL;
	size_t		 len;
	int		 error;

	for (len = 4096; len <= CONTROL_PW_BUF_MAX; len *= 2) {
		pwbuf = xreallocarray(pwbuf, 1, len);
		error = getgrnam_r(name, &gr, pwbuf, len, &res);
		if (error != ERANGE)
			break;
	}
	if (res == NULL) {
		xasprintf(cause, "group %s: %s", name, error != 0 ?
		    strerror(error) : "no such group");
		free(pwbuf);
		return (-1);
	}
	*gid = gr.gr_gid;
	free(pwbuf);
	return (0);
}

struct control *
control_open(struct event_base *base, const char *path, mode_t mode,
    const char *group, const struct control_provider *provider, char **cause)
{
	struct control		*ctl;
	struct sockaddr_un	 sun;
	struct stat		 st;
	struct sigaction	 sa;
	mode_t			 old_umask;
	gid_t			 gid = (gid_t)-1;
	int			 fd = -1;

	if (control_sockaddr(&sun, path, cause) == -1)
		return (NULL);
	if (group != NULL && control_resolve_group(group, &gid, cause) == -1)
		return (NULL);
	if (control_prepare_path(path, cause) == -1)
		return (NULL);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		xasprintf(cause, "socket: %s", strerror(errno));
		return (NULL);
	}
	/* Nobody but us until chown and chmod below have run. */
	old_umask = umask(S_IXUSR | S_IRWXG | S_IRWXO);
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		xasprintf(cause, "bind %s: %s", path, strerror(errno));
		umask(old_umask);
		close(fd);
		return (NULL);
	}
	umask(old_umask);
	if (lstat(path, &st) == -1) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		goto fail;
	}
	/*
	 * The socket already has the daemon's group (the unit's Group=):
	 * no chown, which the unit's syscall filter need not allow then.
	 */
	if (group != NULL && st.st_gid != gid &&
	    chown(path, (uid_t)-1, gid) == -1) {
		xasprintf(cause, "chown %s to group %s: %s (the daemon must "
		    "be a member: SupplementaryGroups= in the unit)", path,
		    group, strerror(errno));
		goto fail;
	}
	if (chmod(path, mode) == -1) {
		xasprintf(cause, "chmod %s: %s", path, strerror(errno));
		goto fail;
	}
	if (lstat(path, &st) == -1) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		goto fail;
	}

	ctl = xcalloc(1, sizeof *ctl);
	ctl->base = base;
	ctl->path = xstrdup(path);
	ctl->dev = st.st_dev;
	ctl->ino = st.st_ino;
	ctl->provider = *provider;
	ctl->limits.max_line = CONTROL_MAX_LINE;
	ctl->limits.max_clients = CONTROL_MAX_CLIENTS;
	ctl->limits.idle_timeout_ms = CONTROL_IDLE_TIMEOUT_MS;
	ctl->limits.max_answer = CONTROL_MAX_ANSWER;
	ctl->self_uid = geteuid();
	ctl->have_group = group != NULL;
	ctl->group = gid;
	TAILQ_INIT(&ctl->clients);
	ctl->listener = evconnlistener_new(base, control_accept, ctl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, CONTROL_BACKLOG, fd);
	if (ctl->listener == NULL) {
		xasprintf(cause, "listen %s: %s", path, strerror(errno));
		free(ctl->path);
		free(ctl);
		goto fail;
	}
	evconnlistener_set_error_cb(ctl->listener, control_accept_error);
	evtimer_assign(&ctl->pause_ev, base, control_unpause, ctl);

	/* libevent writes with writev(); a vanished client must not kill us. */
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = SIG_IGN;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGPIPE, &sa, NULL);
	}
	log_info("control: listening on %s", path);
	return (ctl);
fail:
	unlink(path);
	close(fd);
	return (NULL);
}

void
control_close(struct control *ctl)
{
	struct control_client	*c;
	struct stat		 st;

	if (ctl == NULL)
		return;
	while ((c = TAILQ_FIRST(&ctl->clients)) != NULL)
		client_free(c);
	evconnlistener_free(ctl->listener);
	evtimer_del(&ctl->pause_ev);
	/* Leave a socket alone that someone else has put in our place. */
	if (lstat(ctl->path, &st) == 0 && st.st_dev == ctl->dev &&
	    st.st_ino == ctl->ino)
		unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}

void
control_set_limits(struct control *ctl, const struct control_limits *l)
{
	struct control_client	*c;

	if (l->max_line != 0)
		ctl->limits.max_line = l->max_line;
	if (l->max_clients != 0)
		ctl->limits.max_clients = l->max_clients;
	if (l->idle_timeout_ms != 0)
		ctl->limits.idle_timeout_ms = l->idle_timeout_ms;
	if (l->max_answer != 0)
		ctl->limits.max_answer = l->max_answer;
	TAILQ_FOREACH(c, &ctl->clients, entry) {
		bufferevent_setwatermark(c->bev, EV_READ, 0,
		    ctl->limits.max_line + 1);
		control_set_timeouts(c);
	}
}

void
control_set_provider(struct control *ctl, const struct control_provider *p)
{
	ctl->provider = *p;
}

unsigned
control_nclients(const struct control *ctl)
{
	return (ctl->nclients);
}

size_t
control_queued(const struct control *ctl)
{
	const struct control_client	*c;
	size_t				 n = 0;

	TAILQ_FOREACH(c, &ctl->clients, entry)
		n += evbuffer_get_length(bufferevent_get_output(c->bev));
	return (n);
}

int
control_sockaddr(struct sockaddr_un *sun, const char *path, char **cause)
{
	size_t	 len = path != NULL ? strlen(path) : 0;

	if (len == 0 || len >= sizeof sun->sun_path) {
		xasprintf(cause, "socket path %s", len == 0 ? "is empty" :
		    "is too long");
		return (-1);
	}
	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, len + 1);
	return (0);
}

const char *
control_path(const struct control *ctl)
{
	return (ctl->path);
}

enum control_access
control_peer_access(uid_t uid, gid_t gid, uid_t self_uid, bool have_group,
    gid_t group)
{
	struct passwd		 pw, *res = NULL;
	char			*pwbuf = NULL;
	gid_t			*groups = NULL;
	size_t			 len;
	int			 n, want, i, error;
	enum control_access	 access = CONTROL_DENY;

	if (uid == 0 || uid == self_uid)
		return (CONTROL_ADMIN);
	if (!have_group)
		return (CONTROL_DENY);
	if (gid == group)
		return (CONTROL_READ);

	for (len = 4096; len <= CONTROL_PW_BUF_MAX; len *= 2) {
		pwbuf = xreallocarray(pwbuf, 1, len);
		error = getpwuid_r(uid, &pw, pwbuf, len, &res);
		if (error != ERANGE)
			break;
	}
	if (res == NULL)
		goto done;
	for (want = 64; want <= CONTROL_NGROUPS_MAX; ) {
		groups = xreallocarray(groups, (size_t)want, sizeof *groups);
		n = want;
		if (getgrouplist(pw.pw_name, gid, groups, &n) != -1) {
			for (i = 0; i < n; i++)
				if (groups[i] == group)
					access = CONTROL_READ;
			break;
		}
		/* n now says how many there are; never loop without growth. */
		want = n > want ? n : want * 2;
	}
done:
	free(groups);
	free(pwbuf);
	return (access);
}

/* Best effort: one line into a fresh socket's empty buffer, then close. */
static void
control_reject(evutil_socket_t fd, const char *why)
{
	struct buf	 b = BUF_INIT;

	ctl_cmd_error(&b, "%s", why);
	(void)send(fd, b.data, b.len, MSG_DONTWAIT | MSG_NOSIGNAL);
	buf_free(&b);
	close(fd);
}

static void
control_too_many(struct control *ctl, evutil_socket_t fd)
{
	log_warnx("control: too many clients (%u), refusing one",
	    ctl->nclients);
	control_reject(fd, "too many clients");
}

static void
control_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control		*ctl = arg;
	struct control_client	*c;
	struct ucred		 uc;
	socklen_t		 uclen = sizeof uc;
	enum control_access	 access;

	/* Full even for root: refuse before any lookup. */
	if (ctl->nclients >= ctl->limits.max_clients + CONTROL_ADMIN_RESERVE) {
		control_too_many(ctl, fd);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &uclen) == -1) {
		log_warn("control: SO_PEERCRED");
		control_reject(fd, "cannot identify peer");
		return;
	}
	access = control_peer_access(uc.uid, uc.gid, ctl->self_uid,
	    ctl->have_group, ctl->group);
	if (access == CONTROL_DENY) {
		log_notice("control: refused uid %u pid %ld",
		    (unsigned)uc.uid, (long)uc.pid);
		control_reject(fd, "permission denied");
		return;
	}
	/* Readers cannot take the slots kept for a reload by root. */
	if (access != CONTROL_ADMIN &&
	    ctl->nclients >= ctl->limits.max_clients) {
		control_too_many(ctl, fd);
		return;
	}

	c = xcalloc(1, sizeof *c);
	c->ctl = ctl;
	c->access = access;
	c->uid = uc.uid;
	c->pid = uc.pid;
	c->bev = bufferevent_socket_new(ctl->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		log_warnx("control: cannot set up a client");
		close(fd);
		free(c);
		return;
	}
	TAILQ_INSERT_TAIL(&ctl->clients, c, entry);
	ctl->nclients++;
	bufferevent_setcb(c->bev, client_readcb, client_writecb,
	    client_eventcb, c);
	/* Never buffer more than one maximal line plus its newline. */
	bufferevent_setwatermark(c->bev, EV_READ, 0,
	    ctl->limits.max_line + 1);
	control_set_timeouts(c);
	bufferevent_enable(c->bev, EV_READ);
	log_debug("control: client uid %u pid %ld connected",
	    (unsigned)c->uid, (long)c->pid);
}

static void
control_accept_error(struct evconnlistener *l, void *arg)
{
	struct control	*ctl = arg;
	struct timeval	 tv;
	int		 error = EVUTIL_SOCKET_ERROR();

	log_warnx("control: accept: %s", strerror(error));
	if (error != EMFILE && error != ENFILE && error != ENOBUFS &&
	    error != ENOMEM)
		return;
	/* The pending connection stays ready; do not spin on it. */
	evconnlistener_disable(l);
	evtimer_add(&ctl->pause_ev, time_ms_tv(&tv, CONTROL_ACCEPT_PAUSE_MS));
}

static void
control_unpause(evutil_socket_t fd, short ev, void *arg)
{
	struct control	*ctl = arg;

	evconnlistener_enable(ctl->listener);
}

static void
control_set_timeouts(struct control_client *c)
{
	struct timeval	 tv;

	time_ms_tv(&tv, c->ctl->limits.idle_timeout_ms);
	/* Read: no request for that long; write: the peer does not read. */
	bufferevent_set_timeouts(c->bev, &tv, &tv);
}

static void
free_answer(const void *data, size_t len, void *arg)
{
	free((void *)data);
}

/* Hand the answer's storage to the output buffer without a copy. */
static void
client_queue(struct control_client *c, struct buf *answer)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	size_t		 len = answer->len;
	char		*data;

	if (len == 0)
		return;
	data = buf_steal(answer);
	if (evbuffer_add_reference(out, data, len, free_answer, NULL) == -1) {
		free(data);
		client_fail(c, "out of memory");
	}
}

/* Queue a last error line, stop reading, close once it is sent. */
static void
client_fail(struct control_client *c, const char *why)
{
	struct buf	 b = BUF_INIT;
	struct evbuffer	*in = bufferevent_get_input(c->bev);

	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	evbuffer_drain(in, evbuffer_get_length(in));
	ctl_cmd_error(&b, "%s", why);
	evbuffer_add(bufferevent_get_output(c->bev), b.data, b.len);
	buf_free(&b);
}

/*
 * Serve at most one complete request, and only when the previous answer
 * is gone: the client's next request waits (unread, in the kernel) until
 * then, so a pipelining client that never reads holds one answer at most.
 */
static void
client_process(struct control_client *c)
{
	struct control		*ctl = c->ctl;
	struct evbuffer		*in = bufferevent_get_input(c->bev);
	struct evbuffer		*out = bufferevent_get_output(c->bev);
	struct evbuffer_ptr	 eol;
	struct ctl_reply	*r;
	struct buf		 answer = BUF_INIT;
	size_t			 eol_len, len;
	bool			 deferred;
	char			*line;

	if (c->closing || c->pending != NULL)
		return;
	if (evbuffer_get_length(out) != 0) {
		bufferevent_disable(c->bev, EV_READ);
		return;
	}
	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	if (eol.pos == -1) {
		if (evbuffer_get_length(in) > ctl->limits.max_line)
			client_fail(c, "request line too long");
		return;
	}
	len = (size_t)eol.pos;
	if (len > ctl->limits.max_line) {
		client_fail(c, "request line too long");
		return;
	}
	line = (char *)evbuffer_pullup(in, (ev_ssize_t)(len + eol_len));
	if (len > 0 && line[len - 1] == '\r')
		len--;

	r = xcalloc(1, sizeof *r);
	r->client = c;
	json_writer_init(&r->w, &r->answer);
	json_obj_begin(&r->w);
	json_kv_bool(&r->w, "ok", true);
	r->in_exec = true;
	deferred = ctl_cmd_exec(&ctl->provider, c->access == CONTROL_ADMIN,
	    line, len, &answer, r);
	r->in_exec = false;
	evbuffer_drain(in, (size_t)eol.pos + eol_len);
	bufferevent_disable(c->bev, EV_READ);
	if (!deferred) {
		buf_free(&r->answer);
		free(r);
		client_answer(c, &answer);
	} else if (r->finished) {
		/* The provider answered from inside its callback. */
		client_answer(c, &r->answer);
		buf_free(&r->answer);
		free(r);
	} else
		c->pending = r;		/* reading resumes after the answer */
	buf_free(&answer);
}

/* Queue a complete answer, within the size limit. */
static void
client_answer(struct control_client *c, struct buf *answer)
{
	/* A long answer took time: start the write timeout from now. */
	event_base_update_cache_time(c->ctl->base);
	if (answer->len > c->ctl->limits.max_answer) {
		log_warnx("control: answer of %zu bytes exceeds the limit",
		    answer->len);
		buf_reset(answer);
		ctl_cmd_error(answer, "answer too large");
	}
	client_queue(c, answer);
}

struct json_writer *
control_reply_writer(struct ctl_reply *r)
{
	return (&r->w);
}

void
control_reply_on_cancel(struct ctl_reply *r, void (*cancel)(void *),
    void *arg)
{
	r->cancel = cancel;
	r->cancel_arg = arg;
}

void
control_reply_done(struct ctl_reply *r)
{
	json_obj_end(&r->w);
	buf_putc(&r->answer, '\n');
	reply_finish(r);
}

void
control_reply_fail(struct ctl_reply *r, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	buf_reset(&r->answer);
	ctl_cmd_error(&r->answer, "%s", msg);
	free(msg);
	reply_finish(r);
}

/* The answer is complete: send it, free the handle. */
static void
reply_finish(struct ctl_reply *r)
{
	struct control_client	*c = r->client;

	if (r->in_exec) {
		r->finished = true;	/* client_process sends it */
		return;
	}
	c->pending = NULL;
	client_answer(c, &r->answer);
	buf_free(&r->answer);
	free(r);
}

static void
client_readcb(struct bufferevent *bev, void *arg)
{
	client_process(arg);
}

/* The output buffer has drained completely. */
static void
client_writecb(struct bufferevent *bev, void *arg)
{
	struct control_client	*c = arg;

	if (c->closing) {
		client_free(c);
		return;
	}
	bufferevent_enable(c->bev, EV_READ);
	/* A request may already be waiting in the input buffer. */
	client_process(c);
}

static void
client_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct control_client	*c = arg;

	if (what & BEV_EVENT_TIMEOUT)
		log_debug("control: client pid %ld idle, closing",
		    (long)c->pid);
	else if ((what & BEV_EVENT_EOF) && !c->closing &&
	    evbuffer_get_length(bufferevent_get_output(bev)) != 0) {
		/* Half-closed after its request: send the answer first. */
		c->closing = true;
		bufferevent_disable(bev, EV_READ);
		return;
	}
	client_free(c);
}

static void
client_free(struct control_client *c)
{
	struct control	*ctl = c->ctl;
	struct ctl_reply *r;

	/* An answer still to come is no longer wanted. */
	if ((r = c->pending) != NULL) {
		c->pending = NULL;
		if (r->cancel != NULL)
			r->cancel(r->cancel_arg);
		buf_free(&r->answer);
		free(r);
	}
	TAILQ_REMOVE(&ctl->clients, c, entry);
	ctl->nclients--;
	bufferevent_free(c->bev);
	free(c);
}
