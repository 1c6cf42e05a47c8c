/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * An example loadable sink: appends "mailbox previous -> presence seq"
 * per change to the file named by its "output" key.  Built as a module
 * by the test suite; a template for third-party sinks.  It needs
 * nothing of the source tree but the installed <ewsgw/sink.h>:
 *   cc -shared -fPIC -o example_sink.so example_plugin.c \
 *       $(pkg-config --cflags ewsgw-sink)
 */
#define _POSIX_C_SOURCE 200809L	/* open, write, close */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <ewsgw/sink.h>

struct ewsgw_sink {
	struct ewsgw_host	*host;
	int			 fd;
};

static int	example_check(const struct ewsgw_sink_config *);
static int	example_create(struct ewsgw_host *,
		    const struct ewsgw_sink_config *, struct ewsgw_sink **);
static int	example_publish(struct ewsgw_sink *,
		    const struct ewsgw_presence_change *, uint64_t);
static void	example_destroy(struct ewsgw_sink *);

/* The one symbol the host looks for. */
const struct ewsgw_sink_ops ewsgw_sink_module = {
	.abi_version = EWSGW_SINK_ABI_VERSION,
	.size = sizeof(struct ewsgw_sink_ops),
	.name = "example",
	.check = example_check,
	.create = example_create,
	.publish = example_publish,
	.destroy = example_destroy,
};

static int
example_check(const struct ewsgw_sink_config *c)
{
	const char	*output;

	if ((output = ewsgw_sink_config_get(c, "output")) == NULL) {
		ewsgw_sink_config_error(c, NULL,
		    "missing required key output");
		return (-1);
	}
	if (output[0] != '/') {
		ewsgw_sink_config_error(c, "output",
		    "output must be an absolute path");
		return (-1);
	}
	return (0);
}

static int
example_create(struct ewsgw_host *host, const struct ewsgw_sink_config *c,
    struct ewsgw_sink **out)
{
	struct ewsgw_sink	*s;
	int			 fd;

	if (example_check(c) == -1)
		return (-1);
	fd = open(ewsgw_sink_config_get(c, "output"),
	    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1) {
		ewsgw_sink_config_error(c, "output", "cannot open: %s",
		    strerror(errno));
		return (-1);
	}
	if ((s = calloc(1, sizeof *s)) == NULL) {
		close(fd);
		return (-1);
	}
	s->host = host;
	s->fd = fd;
	*out = s;
	ewsgw_host_log(host, LOG_INFO, "example sink ready");
	return (0);
}

static int
example_publish(struct ewsgw_sink *s, const struct ewsgw_presence_change *c,
    uint64_t token)
{
	char	 line[1024];
	int	 n;

	(void)token;	/* synchronous: done when publish returns */
	n = snprintf(line, sizeof line, "%s %s -> %s %llu\n", c->mailbox,
	    c->previous != NULL ? c->previous : "none", c->presence,
	    EWSGW_CHANGE_HAS(c, seq) ? (unsigned long long)c->seq : 0ULL);
	if (n < 0 || (size_t)n >= sizeof line)
		return (EWSGW_SINK_ERR);
	if (write(s->fd, line, (size_t)n) != n) {
		ewsgw_host_mlog(s->host, LOG_WARNING, c->mailbox,
		    "write failed: %s", strerror(errno));
		return (EWSGW_SINK_ERR);
	}
	return (EWSGW_SINK_OK);
}

static void
example_destroy(struct ewsgw_sink *s)
{
	close(s->fd);
	free(s);
}
