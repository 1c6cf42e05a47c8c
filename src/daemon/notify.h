/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * systemd service notification: READY=1, RELOADING=1, STOPPING=1,
 * STATUS=, and WATCHDOG=1 pings.  Outside a service manager every call is
 * a no-op; no call ever blocks.
 */
#ifndef EWSGW_NOTIFY_H
#define EWSGW_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;

/* Start watchdog pings at half of WatchdogSec= if systemd asked for them. */
void	 notify_init(struct event_base *);
void	 notify_shutdown(void);
void	 notify_ready(void);
/* RELOADING=1 with MONOTONIC_USEC=, as systemd 253+ expects. */
void	 notify_reloading(void);
void	 notify_stopping(void);
/* STATUS= one-line summary; repeated identical lines are not resent. */
void	 notify_status(const char *);
/* Messages dropped because the service manager's queue was full. */
uint64_t notify_dropped_count(void);

#endif
