/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Built-in sink "log": one log line per change, with the journal fields
 * MAILBOX= and SINK=.  Key: level (default info).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "sinks/sinkset.h"
#include "sinks/sinks.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

struct ewsgw_sink {
	struct ewsgw_host	*host;
	int			 prio;
};

static int	log_settings(const struct ewsgw_sink_config *, int *);
static int	log_check(const struct ewsgw_sink_config *);
static int	log_create(struct ewsgw_host *,
		    const struct ewsgw_sink_config *, struct ewsgw_sink **);
static int	log_publish(struct ewsgw_sink *,
		    const struct ewsgw_presence_change *, uint64_t);
static void	log_destroy(struct ewsgw_sink *);

const struct ewsgw_sink_ops sink_log_ops = {
	.abi_version = EWSGW_SINK_ABI_VERSION,
	.size = sizeof(struct ewsgw_sink_ops),
	.name = "log",
	.check = log_check,
	.create = log_create,
	.publish = log_publish,
	.destroy = log_destroy,
};

static int
log_settings(const struct ewsgw_sink_config *c, int *prio)
{
	const char	*v;

	*prio = LOG_INFO;
	if ((v = ewsgw_sink_config_get(c, "level")) == NULL)
		return (0);
	if ((*prio = log_level_parse(v)) == -1) {
		ewsgw_sink_config_error(c, "level", "level: unknown log level "
		    "'%s' (debug, info, notice, warning, err)", v);
		return (-1);
	}
	return (0);
}

static int
log_check(const struct ewsgw_sink_config *c)
{
	int	 prio;

	return (log_settings(c, &prio));
}

static int
log_create(struct ewsgw_host *host, const struct ewsgw_sink_config *c,
    struct ewsgw_sink **out)
{
	struct ewsgw_sink	*s;
	int			 prio;

	if (log_settings(c, &prio) == -1)
		return (-1);
	s = xcalloc(1, sizeof *s);
	s->host = host;
	s->prio = prio;
	*out = s;
	return (0);
}

static int
log_publish(struct ewsgw_sink *s, const struct ewsgw_presence_change *c,
    uint64_t token)
{
	struct log_ctx	 ctx = { .mailbox = c->mailbox,
			    .sink = ewsgw_host_name(s->host) };
	char		 since[TIME_ISO8601_LEN], until[TIME_ISO8601_LEN];

	if (!log_enabled(s->prio))
		return (EWSGW_SINK_OK);
	since[0] = until[0] = '\0';
	if (c->since != 0)
		time_format_iso8601(c->since, since);
	if (c->until != 0)
		time_format_iso8601(c->until, until);
	log_emit(s->prio, &ctx, "presence %s -> %s%s%s%s%s%s%s (%s, seq %llu)",
	    c->previous != NULL ? c->previous : "none", c->presence,
	    c->activity != NULL ? " activity " : "",
	    c->activity != NULL ? c->activity : "",
	    since[0] != '\0' ? " since " : "", since,
	    until[0] != '\0' ? " until " : "", until,
	    c->source != NULL ? c->source : "unknown",
	    (unsigned long long)c->seq);
	return (EWSGW_SINK_OK);
}

static void
log_destroy(struct ewsgw_sink *s)
{
	free(s);
}
