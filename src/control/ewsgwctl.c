/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * ewsgwctl: send one command to the daemon's status socket, print the
 * answer as tables (or raw JSON), and exit with a status scripts can use.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "control/control.h"
#include "control/ctl_cmd.h"
#include "control/ctl_render.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

#define CTL_DEFAULT_TIMEOUT_S	30
/* A little above what the daemon will ever send (CONTROL_MAX_ANSWER). */
#define CTL_CLIENT_MAX_ANSWER	((size_t)CONTROL_MAX_ANSWER + 4096)

static void	usage(FILE *);
static int	wait_fd(int, short, int64_t);
static int	ctl_connect(const char *, int64_t, char **);
static int	ctl_transact(int, const char *, bool, int64_t, struct buf *,
		    char **);

static void
usage(FILE *f)
{
	const struct ctl_cmd_entry	*e;

	fprintf(f, "usage: ewsgwctl [-s|--socket PATH] [--json] "
	    "[--timeout SEC] COMMAND [ARGS]\n\ncommands:\n");
	for (e = ctl_cmds; e->name != NULL; e++)
		fprintf(f, "  %-18s %s\n", e->usage, e->help);
	fprintf(f, "\ndefault socket: $EWSGW_SOCKET, else %s\n",
	    CTL_DEFAULT_SOCKET);
	fprintf(f, "exit status: 0 ok, 1 error answer or unhealthy, "
	    "2 cannot connect or protocol error, 64 usage\n");
}

/* Wait until fd is ready for events or the deadline passes. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd	 pfd;
	int64_t		 left;
	int		 n;

	for (;;) {
		left = deadline - time_mono_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return (-1);
		}
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0)
			return (0);
		if (n == -1 && errno != EINTR)
			return (-1);
	}
}

static int
ctl_connect(const char *path, int64_t deadline, char **cause)
{
	struct sockaddr_un	 sun;
	socklen_t		 len = sizeof sun;
	int			 fd, error = 0;

	if (control_sockaddr(&sun, path, cause) == -1)
		return (-1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		xasprintf(cause, "socket: %s", strerror(errno));
		return (-1);
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		/* A full backlog makes a Unix connect() pending. */
		if (errno != EAGAIN && errno != EINPROGRESS) {
			error = errno;
			goto fail;
		}
		if (wait_fd(fd, POLLOUT, deadline) == -1) {
			error = errno;
			goto fail;
		}
		len = sizeof error;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
			error = errno;
		if (error != 0)
			goto fail;
	}
	return (fd);
fail:
	xasprintf(cause, "cannot connect to %s: %s", path, strerror(error));
	close(fd);
	return (-1);
}

/* Send the request line, read one complete answer into answer. */
static int
ctl_transact(int fd, const char *request, bool metrics, int64_t deadline,
    struct buf *answer, char **cause)
{
	size_t	 off = 0, len = strlen(request);
	ssize_t	 n;

	while (off < len) {
		n = send(fd, request + off, len - off, MSG_NOSIGNAL);
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(fd, POLLOUT, deadline) == -1)
				goto fail;
			continue;
		}
		/* Refused and closed: the reason may be waiting to be read. */
		if (n == -1 && (errno == EPIPE || errno == ECONNRESET))
			break;
		if (n == -1)
			goto fail;
		off += (size_t)n;
	}
	for (;;) {
		buf_reserve(answer, 65536);
		n = recv(fd, answer->data + answer->len,
		    answer->cap - answer->len - 1, 0);
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(fd, POLLIN, deadline) == -1)
				goto fail;
			continue;
		}
		if (n == -1)
			goto fail;
		if (n == 0) {
			xasprintf(cause, "connection closed before the "
			    "answer was complete");
			return (-1);
		}
		answer->len += (size_t)n;
		answer->data[answer->len] = '\0';
		/*
		 * Every answer ends with a newline: look at the whole only
		 * when the new bytes hold one, or tens of MiB arriving in
		 * 64 KiB pieces would be scanned quadratically.
		 */
		if (memchr(answer->data + answer->len - (size_t)n, '\n',
		    (size_t)n) != NULL && ctl_answer_complete(answer->data,
		    answer->len, metrics) != 0)
			return (0);
		if (answer->len > CTL_CLIENT_MAX_ANSWER) {
			xasprintf(cause, "answer too large");
			return (-1);
		}
	}
fail:
	xasprintf(cause, "%s", errno == ETIMEDOUT ? "timed out waiting for "
	    "the daemon" : strerror(errno));
	return (-1);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket",	required_argument,	NULL, 's' },
		{ "json",	no_argument,		NULL, 'j' },
		{ "timeout",	required_argument,	NULL, 't' },
		{ "help",	no_argument,		NULL, 'h' },
		{ "version",	no_argument,		NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const struct ctl_cmd_entry	*e;
	const char			*path;
	struct buf			 request = BUF_INIT;
	struct buf			 answer = BUF_INIT;
	struct buf			 out = BUF_INIT, err = BUF_INIT;
	bool				 json = false;
	char				*cause = NULL, *ep;
	const char			*p;
	size_t				 n;
	long				 timeout = CTL_DEFAULT_TIMEOUT_S;
	int64_t				 deadline;
	int				 ch, fd, i, nargs, rc;

	if ((path = getenv("EWSGW_SOCKET")) == NULL || *path == '\0')
		path = CTL_DEFAULT_SOCKET;
	/* "+": options end at the command, whose words are its own. */
	while ((ch = getopt_long(argc, argv, "+hjs:t:V", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 's':
			path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 't':
			errno = 0;
			timeout = strtol(optarg, &ep, 10);
			if (errno != 0 || *ep != '\0' || ep == optarg ||
			    timeout <= 0 || timeout > 86400) {
				fprintf(stderr, "ewsgwctl: bad timeout: %s\n",
				    optarg);
				return (CTL_EXIT_USAGE);
			}
			break;
		case 'h':
			usage(stdout);
			return (CTL_EXIT_OK);
		case 'V':
			printf("ewsgwctl %s\n", PACKAGE_VERSION);
			return (CTL_EXIT_OK);
		default:
			usage(stderr);
			return (CTL_EXIT_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		usage(stderr);
		return (CTL_EXIT_USAGE);
	}
	if ((e = ctl_cmd_find(argv[0])) == NULL) {
		fprintf(stderr, "ewsgwctl: unknown command: %s\n", argv[0]);
		usage(stderr);
		return (CTL_EXIT_USAGE);
	}
	nargs = argc - 1;
	if (nargs < e->min_args || nargs > e->max_args) {
		fprintf(stderr, "usage: ewsgwctl %s\n", e->usage);
		return (CTL_EXIT_USAGE);
	}
	/* The protocol splits at blanks: one word must stay one word. */
	for (i = 0; i < argc; i++) {
		if (argv[i][0] == '\0' ||
		    argv[i][strcspn(argv[i], " \t\r\n\v\f")] != '\0') {
			fprintf(stderr, "ewsgwctl: argument must be one "
			    "word: \"%s\"\n", argv[i]);
			buf_free(&request);
			return (CTL_EXIT_USAGE);
		}
		buf_printf(&request, "%s%s", i == 0 ? "" : " ", argv[i]);
	}
	if (request.len > CONTROL_MAX_LINE) {
		fprintf(stderr, "ewsgwctl: request too long\n");
		buf_free(&request);
		return (CTL_EXIT_USAGE);
	}
	buf_putc(&request, '\n');

	deadline = time_mono_ms() + (int64_t)timeout * 1000;
	if ((fd = ctl_connect(path, deadline, &cause)) == -1 ||
	    ctl_transact(fd, buf_str(&request), strcmp(e->name, "metrics") == 0,
	    deadline, &answer, &cause) == -1) {
		fprintf(stderr, "ewsgwctl: %s\n", cause);
		free(cause);
		if (fd != -1)
			close(fd);
		buf_free(&request);
		buf_free(&answer);
		return (CTL_EXIT_FAILURE);
	}
	close(fd);

	rc = ctl_render(e->name, answer.data, answer.len, json, &out, &err);
	fwrite(out.data != NULL ? out.data : "", 1, out.len, stdout);
	/* Every line of err ends in a newline; each gets the prefix. */
	for (p = buf_str(&err); *p != '\0'; p += n) {
		n = strcspn(p, "\n");
		n += p[n] == '\n';
		fprintf(stderr, "ewsgwctl: %.*s", (int)n, p);
	}
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "ewsgwctl: stdout: %s\n", strerror(errno));
		rc = CTL_EXIT_FAILURE;
	}
	buf_free(&request);
	buf_free(&answer);
	buf_free(&out);
	buf_free(&err);
	return (rc);
}
