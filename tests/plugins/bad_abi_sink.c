/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * A test module built against a future, incompatible sink ABI: the host
 * must refuse to load it.
 */
#include "config.h"

#include <ewsgw/sink.h>

static int
bad_create(struct ewsgw_host *host, const struct ewsgw_sink_config *c,
    struct ewsgw_sink **out)
{
	return (-1);
}

static int
bad_publish(struct ewsgw_sink *s, const struct ewsgw_presence_change *c,
    uint64_t token)
{
	return (EWSGW_SINK_ERR);
}

static void
bad_destroy(struct ewsgw_sink *s)
{
}

const struct ewsgw_sink_ops ewsgw_sink_module = {
	.abi_version = EWSGW_SINK_ABI_VERSION + 998,
	.size = sizeof(struct ewsgw_sink_ops),
	.name = "bad",
	.create = bad_create,
	.publish = bad_publish,
	.destroy = bad_destroy,
};
