/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Service manager notifications (READY=1, STATUS=, ...) and the watchdog
 * timer; nothing here ever blocks the event loop.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "base/log.h"
#include "daemon/notify.h"
#include "base/xmalloc.h"

/*
 * The notification protocol is one datagram per message to the socket
 * named in $NOTIFY_SOCKET.  It is written here rather than through
 * sd_notify(3) because sd_notify blocks when the receiver's queue is
 * full, and the event loop must never block: a message that does not fit
 * right now is dropped (the next STATUS= or WATCHDOG=1 follows soon).
 */

static struct event	 watchdog_ev;
static bool		 watchdog_on;
static char		*last_status;
static int		 notify_fd = -1;
static struct sockaddr_un notify_sa;
static socklen_t	 notify_salen;
static uint64_t		 notify_dropped;

static int
notify_open(void)
{
	const char	*path;
	size_t		 len;

	if (notify_fd != -1)
		return (0);
	if ((path = getenv("NOTIFY_SOCKET")) == NULL || path[0] == '\0')
		return (-1);
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') ||
	    len >= sizeof notify_sa.sun_path)
		return (-1);
	memset(&notify_sa, 0, sizeof notify_sa);
	notify_sa.sun_family = AF_UNIX;
	memcpy(notify_sa.sun_path, path, len);
	if (path[0] == '@')
		notify_sa.sun_path[0] = '\0';	/* abstract namespace */
	notify_salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    len + (path[0] == '/' ? 1 : 0));
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	return (notify_fd == -1 ? -1 : 0);
}

static void
send_notify(const char *msg)
{
	if (notify_open() == -1)
		return;
	if (sendto(notify_fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL,
	    (struct sockaddr *)&notify_sa, notify_salen) == -1) {
		notify_dropped++;
		log_debug("service manager notification dropped: %s",
		    strerror(errno));
	}
}

static void
watchdog_cb(evutil_socket_t fd, short ev, void *arg)
{
	send_notify("WATCHDOG=1");
}

uint64_t
notify_dropped_count(void)
{
	return (notify_dropped);
}

void
notify_init(struct event_base *base)
{
	const char		*s, *p;
	unsigned long long	 usec;
	struct timeval		 tv;
	char			*end;

	/* WatchdogSec=: $WATCHDOG_USEC, for us if $WATCHDOG_PID is ours. */
	if ((s = getenv("WATCHDOG_USEC")) == NULL)
		return;
	if ((p = getenv("WATCHDOG_PID")) != NULL &&
	    strtoll(p, NULL, 10) != (long long)getpid())
		return;
	errno = 0;
	usec = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || usec == 0)
		return;
	/* Ping at half the interval, as sd_watchdog_enabled(3) advises. */
	usec /= 2;
	tv.tv_sec = (time_t)(usec / 1000000);	/* microseconds: not ms */
	tv.tv_usec = (suseconds_t)(usec % 1000000);
	event_assign(&watchdog_ev, base, -1, EV_PERSIST, watchdog_cb, NULL);
	event_add(&watchdog_ev, &tv);
	watchdog_on = true;
	log_info("watchdog pings every %llu ms", usec / 1000);
}

void
notify_shutdown(void)
{
	if (watchdog_on) {
		event_del(&watchdog_ev);
		watchdog_on = false;
	}
	free(last_status);
	last_status = NULL;
	if (notify_fd != -1) {
		close(notify_fd);
		notify_fd = -1;
	}
}
void
notify_ready(void)
{
	send_notify("READY=1");
}

void
notify_reloading(void)
{
	struct timespec	 ts;
	char		 msg[80];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL);
	send_notify(msg);
}

void
notify_stopping(void)
{
	send_notify("STOPPING=1");
}

void
notify_status(const char *status)
{
	char	*msg;

	if (last_status != NULL && strcmp(last_status, status) == 0)
		return;
	free(last_status);
	last_status = xstrdup(status);
	xasprintf(&msg, "STATUS=%s", status);
	send_notify(msg);
	free(msg);
}
