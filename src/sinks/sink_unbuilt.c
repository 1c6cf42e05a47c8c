/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Stand-ins for the sinks whose libraries configure did not find: the
 * type names stay known, and a configuration using one is rejected with
 * the package to install instead of "unknown sink type".
 */
#include "config.h"

#include <stddef.h>
#include <string.h>

#include "sinks/sinks.h"

#if !defined(BUILD_SIP) || !defined(BUILD_XMPP)
static int	unbuilt_report(const struct ewsgw_sink_config *,
		    const char *, const char *);
static int	unbuilt_publish(struct ewsgw_sink *,
		    const struct ewsgw_presence_change *, uint64_t);
static void	unbuilt_destroy(struct ewsgw_sink *);

static int
unbuilt_report(const struct ewsgw_sink_config *c, const char *type,
    const char *what)
{
	ewsgw_sink_config_error(c, NULL, "this ewsgw was built without the "
	    "%s sink: configure did not find %s; install it and rebuild",
	    type, what);
	return (-1);
}

static int
unbuilt_publish(struct ewsgw_sink *s, const struct ewsgw_presence_change *c,
    uint64_t token)
{
	return (EWSGW_SINK_REJECT);
}

static void
unbuilt_destroy(struct ewsgw_sink *s)
{
}
#endif

#ifndef BUILD_SIP
static int
sip_unbuilt_check(const struct ewsgw_sink_config *c)
{
	return (unbuilt_report(c, "sip", "libosip2 and c-ares (apt-get "
	    "install libosip2-dev libc-ares-dev)"));
}

static int
sip_unbuilt_create(struct ewsgw_host *host, const struct ewsgw_sink_config *c,
    struct ewsgw_sink **out)
{
	return (sip_unbuilt_check(c));
}

const struct ewsgw_sink_ops sink_sip_ops = {
	.abi_version = EWSGW_SINK_ABI_VERSION,
	.size = sizeof(struct ewsgw_sink_ops),
	.name = "sip",
	.check = sip_unbuilt_check,
	.create = sip_unbuilt_create,
	.publish = unbuilt_publish,
	.destroy = unbuilt_destroy,
};
#endif

#ifndef BUILD_XMPP
static int
xmpp_unbuilt_check(const struct ewsgw_sink_config *c)
{
	return (unbuilt_report(c, "xmpp", "c-ares (apt-get install "
	    "libc-ares-dev)"));
}

static int
xmpp_unbuilt_create(struct ewsgw_host *host,
    const struct ewsgw_sink_config *c, struct ewsgw_sink **out)
{
	return (xmpp_unbuilt_check(c));
}

const struct ewsgw_sink_ops sink_xmpp_ops = {
	.abi_version = EWSGW_SINK_ABI_VERSION,
	.size = sizeof(struct ewsgw_sink_ops),
	.name = "xmpp",
	.check = xmpp_unbuilt_check,
	.create = xmpp_unbuilt_create,
	.publish = unbuilt_publish,
	.destroy = unbuilt_destroy,
};
#endif

int
sink_type_built(const char *name)
{
#ifndef BUILD_SIP
	if (strcmp(name, "sip") == 0)
		return (0);
#endif
#ifndef BUILD_XMPP
	if (strcmp(name, "xmpp") == 0)
		return (0);
#endif
	return (name != NULL);
}
