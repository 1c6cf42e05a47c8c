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
/* SIP PUBLISH of PIDF/RPID per mailbox (RFC 3903, 3863, 4480). */
extern const struct ewsgw_sink_ops	sink_sip_ops;
/* XMPP presence per mailbox through a component (XEP-0114). */
extern const struct ewsgw_sink_ops	sink_xmpp_ops;

/*
 * Whether a built-in type has its implementation in this build (false
 * for sip or xmpp when configure lacked their libraries).
 */
int	sink_type_built(const char *name);

#endif
