/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Built-in sink "exec": runs a command per change (/bin/sh -c) with the
 * change in EWSGW_* environment variables; exit status 0 = delivered.
 * Children are watched on the loop, bounded in number and in time.
 */
#include "config.h"

#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "sinks/sinkset.h"
#include "sinks/sinks.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

#define EXEC_MAX_PARALLEL_DEFAULT	4
#define EXEC_TIMEOUT_DEFAULT		10000	/* ms */
#define EXEC_POLL_MS			50	/* without pidfd_open */
#define EXEC_SHELL			"/bin/sh"

extern char **environ;

struct exec_child {
	struct ewsgw_sink	*s;
	pid_t			 pid;		/* 0 = free slot */
	int			 pidfd;		/* -1: polled with waitpid */
	uint64_t		 token;
	char			*mailbox;
	bool			 timed_out;
	struct event		 exit_ev;	/* pidfd readable, or poll */
	struct event		 timeout_ev;
};

struct ewsgw_sink {
	struct ewsgw_host	*host;
	char			*command;
	unsigned		 max_parallel;
	int64_t			 timeout;	/* ms */
	struct exec_child	*children;
	unsigned		 running;
	bool			 blocked;	/* said AGAIN, owe a resume */
	uint64_t		 timeouts;
	uint64_t		 spawned;
};

struct exec_settings {
	const char	*command;
	unsigned	 max_parallel;
	int64_t		 timeout;
};

static int	exec_settings(const struct ewsgw_sink_config *,
		    struct exec_settings *);
static int	exec_check(const struct ewsgw_sink_config *);
static int	exec_create(struct ewsgw_host *,
		    const struct ewsgw_sink_config *, struct ewsgw_sink **);
static int	exec_publish(struct ewsgw_sink *,
		    const struct ewsgw_presence_change *, uint64_t);
static int	exec_health(struct ewsgw_sink *, char *, size_t);
static void	exec_destroy(struct ewsgw_sink *);
static char   **exec_env(const struct ewsgw_sink *,
		    const struct ewsgw_presence_change *);
static void	exec_env_free(char **);
static void	exec_exit_cb(evutil_socket_t, short, void *);
static void	exec_timeout_cb(evutil_socket_t, short, void *);
static void	exec_reaped(struct exec_child *, int);
static void	exec_release(struct exec_child *);

const struct ewsgw_sink_ops sink_exec_ops = {
	.abi_version = EWSGW_SINK_ABI_VERSION,
	.size = sizeof(struct ewsgw_sink_ops),
	.name = "exec",
	.check = exec_check,
	.create = exec_create,
	.publish = exec_publish,
	.health = exec_health,
	.destroy = exec_destroy,
};

static int
exec_settings(const struct ewsgw_sink_config *c, struct exec_settings *es)
{
	int	 rc = 0;

	memset(es, 0, sizeof *es);
	es->command = ewsgw_sink_config_get(c, "command");
	if (es->command == NULL || *es->command == '\0') {
		ewsgw_sink_config_error(c, "command",
		    "missing required key command");
		rc = -1;
	}
	if (sink_config_uint(c, "max_parallel", EXEC_MAX_PARALLEL_DEFAULT, 1,
	    1024, &es->max_parallel) == -1)
		rc = -1;
	if (sink_config_duration(c, "timeout", EXEC_TIMEOUT_DEFAULT, 1000,
	    &es->timeout) == -1)
		rc = -1;
	else if (es->timeout < 1) {
		ewsgw_sink_config_error(c, "timeout",
		    "timeout must be positive");
		rc = -1;
	}
	return (rc);
}

static int
exec_check(const struct ewsgw_sink_config *c)
{
	struct exec_settings	 es;

	return (exec_settings(c, &es));
}

static int
exec_create(struct ewsgw_host *host, const struct ewsgw_sink_config *c,
    struct ewsgw_sink **out)
{
	struct exec_settings	 es;
	struct ewsgw_sink	*s;
	unsigned		 i;

	if (exec_settings(c, &es) == -1)
		return (-1);
	s = xcalloc(1, sizeof *s);
	s->host = host;
	s->command = xstrdup(es.command);
	s->max_parallel = es.max_parallel;
	s->timeout = es.timeout;
	s->children = xcalloc(s->max_parallel, sizeof *s->children);
	for (i = 0; i < s->max_parallel; i++) {
		s->children[i].s = s;
		s->children[i].pidfd = -1;
	}
	*out = s;
	return (0);
}

/* The inherited environment minus EWSGW_*, plus the change. */
static char **
exec_env(const struct ewsgw_sink *s, const struct ewsgw_presence_change *c)
{
	char		**env, since[TIME_ISO8601_LEN], until[TIME_ISO8601_LEN];
	size_t		  n = 0, i, j = 0;

	since[0] = until[0] = '\0';
	if (c->since != 0)
		time_format_iso8601(c->since, since);
	if (c->until != 0)
		time_format_iso8601(c->until, until);
	while (environ[n] != NULL)
		n++;
	env = xcalloc(n + 10, sizeof *env);
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "EWSGW_", 6) != 0)
			env[j++] = xstrdup(environ[i]);
	xasprintf(&env[j++], "EWSGW_MAILBOX=%s", c->mailbox);
	xasprintf(&env[j++], "EWSGW_PRESENCE=%s", c->presence);
	xasprintf(&env[j++], "EWSGW_PREVIOUS=%s",
	    c->previous != NULL ? c->previous : "");
	xasprintf(&env[j++], "EWSGW_ACTIVITY=%s",
	    c->activity != NULL ? c->activity : "");
	xasprintf(&env[j++], "EWSGW_SINCE=%s", since);
	xasprintf(&env[j++], "EWSGW_UNTIL=%s", until);
	xasprintf(&env[j++], "EWSGW_SOURCE=%s",
	    c->source != NULL ? c->source : "");
	xasprintf(&env[j++], "EWSGW_SEQ=%llu", (unsigned long long)c->seq);
	xasprintf(&env[j++], "EWSGW_SINK=%s", ewsgw_host_name(s->host));
	env[j] = NULL;
	return (env);
}

static void
exec_env_free(char **env)
{
	size_t	 i;

	for (i = 0; env[i] != NULL; i++)
		free(env[i]);
	free(env);
}

static int
exec_publish(struct ewsgw_sink *s, const struct ewsgw_presence_change *c,
    uint64_t token)
{
	struct event_base		*base = ewsgw_host_event_base(s->host);
	struct exec_child		*ch = NULL;
	posix_spawnattr_t		 attr;
	posix_spawn_file_actions_t	 fa;
	sigset_t			 none, all;
	struct timeval			 tv;
	char				*argv[4], **env;
	unsigned			 i;
	pid_t				 pid;
	int				 rc;

	if (s->running >= s->max_parallel) {
		s->blocked = true;
		return (EWSGW_SINK_AGAIN);
	}
	for (i = 0; i < s->max_parallel; i++)
		if (s->children[i].pid == 0) {
			ch = &s->children[i];
			break;
		}
	if (ch == NULL)
		return (EWSGW_SINK_AGAIN);

	/*
	 * A clean child: default signal dispositions and mask (the loop
	 * may have handlers installed), its own process group so a
	 * timeout kills the whole pipeline, stdin from /dev/null.
	 */
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
	    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null",
	    O_RDONLY, 0);
	/*
	 * Every descriptor of ours is close-on-exec; this closes one a
	 * library may have opened without the flag too, so the command
	 * sees 0-2 only (never a connection to Exchange or the listener).
	 */
	posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
	argv[0] = (char *)"sh";
	argv[1] = (char *)"-c";
	argv[2] = s->command;
	argv[3] = NULL;
	env = exec_env(s, c);
	rc = posix_spawn(&pid, EXEC_SHELL, &fa, &attr, argv, env);
	exec_env_free(env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc != 0) {
		ewsgw_host_mlog(s->host, LOG_WARNING, c->mailbox,
		    "cannot run %s: %s", EXEC_SHELL, strerror(rc));
		return (EWSGW_SINK_ERR);
	}

	ch->pid = pid;
	ch->token = token;
	ch->mailbox = xstrdup(c->mailbox);
	ch->timed_out = false;
	s->running++;
	s->spawned++;
	/* A pidfd turns child exit into a plain fd event on the loop. */
	ch->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (ch->pidfd != -1) {
		event_assign(&ch->exit_ev, base, ch->pidfd, EV_READ,
		    exec_exit_cb, ch);
		event_add(&ch->exit_ev, NULL);
	} else {
		event_assign(&ch->exit_ev, base, -1, EV_PERSIST,
		    exec_exit_cb, ch);
		event_add(&ch->exit_ev, time_ms_tv(&tv, EXEC_POLL_MS));
	}
	evtimer_assign(&ch->timeout_ev, base, exec_timeout_cb, ch);
	evtimer_add(&ch->timeout_ev, time_ms_tv(&tv, s->timeout));
	return (EWSGW_SINK_PENDING);
}

static void
exec_exit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec_child	*ch = arg;
	pid_t			 r;
	int			 status;

	do
		r = waitpid(ch->pid, &status, WNOHANG);
	while (r == -1 && errno == EINTR);
	if (r == 0) {
		if (ch->pidfd != -1)	/* spurious: wait for the next one */
			event_add(&ch->exit_ev, NULL);
		return;
	}
	if (r == -1)
		status = -1;	/* reaped by someone else: unknown */
	exec_reaped(ch, status);
}

static void
exec_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec_child	*ch = arg;

	ch->timed_out = true;
	ch->s->timeouts++;
	ewsgw_host_mlog(ch->s->host, LOG_WARNING, ch->mailbox,
	    "command timed out after %lld ms, killed",
	    (long long)ch->s->timeout);
	/* The exit event reaps it. */
	kill(-ch->pid, SIGKILL);
	kill(ch->pid, SIGKILL);
}

static void
exec_reaped(struct exec_child *ch, int status)
{
	struct ewsgw_sink	*s = ch->s;
	uint64_t		 token = ch->token;
	int			 result = EWSGW_SINK_ERR;

	if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    !ch->timed_out)
		result = EWSGW_SINK_OK;
	else if (ch->timed_out)
		;	/* already logged */
	else if (status == -1)
		ewsgw_host_mlog(s->host, LOG_WARNING, ch->mailbox,
		    "command status unknown (reaped elsewhere)");
	else if (WIFEXITED(status))
		ewsgw_host_mlog(s->host, LOG_WARNING, ch->mailbox,
		    "command exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		ewsgw_host_mlog(s->host, LOG_WARNING, ch->mailbox,
		    "command killed by signal %d", WTERMSIG(status));
	exec_release(ch);
	ewsgw_host_done(s->host, token, result);
	if (s->blocked) {
		s->blocked = false;
		ewsgw_host_resume(s->host);
	}
}

static void
exec_release(struct exec_child *ch)
{
	event_del(&ch->exit_ev);
	event_del(&ch->timeout_ev);
	if (ch->pidfd != -1)
		close(ch->pidfd);
	ch->pidfd = -1;
	ch->pid = 0;
	ch->token = 0;
	free(ch->mailbox);
	ch->mailbox = NULL;
	ch->s->running--;
}

static int
exec_health(struct ewsgw_sink *s, char *detail, size_t len)
{
	snprintf(detail, len, "%u/%u running, %llu started, %llu timed out",
	    s->running, s->max_parallel, (unsigned long long)s->spawned,
	    (unsigned long long)s->timeouts);
	return (1);
}

static void
exec_destroy(struct ewsgw_sink *s)
{
	struct exec_child	*ch;
	unsigned		 i;

	for (i = 0; i < s->max_parallel; i++) {
		ch = &s->children[i];
		if (ch->pid == 0)
			continue;
		kill(-ch->pid, SIGKILL);
		kill(ch->pid, SIGKILL);
		while (waitpid(ch->pid, NULL, 0) == -1 && errno == EINTR)
			;
		exec_release(ch);
	}
	free(s->children);
	free(s->command);
	free(s);
}
