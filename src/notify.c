/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * sd_notify(3) glue and the watchdog timer; the only place that knows
 * whether libsystemd is there.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "log.h"
#include "notify.h"
#include "xmalloc.h"

static struct event	*watchdog_ev;
static char		*last_status;

#ifdef HAVE_LIBSYSTEMD
static void
send_notify(const char *msg)
{
	int	 r;

	if ((r = sd_notify(0, msg)) < 0)
		log_debug("sd_notify failed: %s", strerror(-r));
}

static void
watchdog_cb(evutil_socket_t fd, short ev, void *arg)
{
	send_notify("WATCHDOG=1");
}
#else
static void
send_notify(const char *msg)
{
}
#endif

bool
notify_enabled(void)
{
	return (getenv("NOTIFY_SOCKET") != NULL);
}

void
notify_init(struct event_base *base)
{
#ifdef HAVE_LIBSYSTEMD
	uint64_t	 usec = 0;
	struct timeval	 tv;

	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return;
	/* Ping at half the interval, as sd_watchdog_enabled(3) advises. */
	usec /= 2;
	tv.tv_sec = (time_t)(usec / 1000000);
	tv.tv_usec = (suseconds_t)(usec % 1000000);
	watchdog_ev = event_new(base, -1, EV_PERSIST, watchdog_cb, NULL);
	event_add(watchdog_ev, &tv);
	log_info("watchdog pings every %lld ms", (long long)(usec / 1000));
#else
	(void)base;
#endif
}

void
notify_shutdown(void)
{
	if (watchdog_ev != NULL) {
		event_free(watchdog_ev);
		watchdog_ev = NULL;
	}
	free(last_status);
	last_status = NULL;
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
