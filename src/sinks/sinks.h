/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The built-in sink types, listed in sink.c's table of built-ins.
 */
#ifndef EWSGW_SINKS_H
#define EWSGW_SINKS_H

#include <ewsgw/sink.h>

/* One log line per change (journal fields MAILBOX= and SINK=). */
extern const struct ewsgw_sink_ops	sink_log_ops;
/* Atomically replaced JSON state file plus an optional change log. */
extern const struct ewsgw_sink_ops	sink_file_ops;
/* A command per change, with the change in its environment. */
extern const struct ewsgw_sink_ops	sink_exec_ops;
/* A JSON POST per change through the curl multi engine. */
extern const struct ewsgw_sink_ops	sink_webhook_ops;

#endif
