/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The daemon's top level: event loop, signals, start-up order, reload,
 * orderly shutdown, and the status-socket provider.
 */
#ifndef EWSGW_DAEMON_H
#define EWSGW_DAEMON_H

#include <stddef.h>

struct config;


/*
 * Checks that need more than the config parser (sink sections, files
 * the sinks name).  Returns 0, or -1 with "FILE:LINE: message" lines in
 * *errors (allocated, caller frees).
 */
int	 daemon_validate(const struct config *, char **errors);

/* Run until stopped; takes ownership of conf.  Returns the exit code. */
int	 daemon_run(const char *path, struct config *conf);

#endif
