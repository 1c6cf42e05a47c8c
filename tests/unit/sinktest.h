/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Test helpers for driving one sink through its ops table, without the
 * delivery engine: a fake host that records what the sink reports
 * (completions, resumes, log lines) and a configuration section built
 * from "key=value" strings.
 */
#ifndef EWSGW_SINKTEST_H
#define EWSGW_SINKTEST_H

#include <stdbool.h>
#include <stdint.h>

#include <ewsgw/sink.h>

#include "base/buf.h"

struct event_base;

#define SINKTEST_DONE_MAX	256

struct sinktest {
	struct ewsgw_host	 host;		/* handed to the sink */
	struct event_base	*base;
	const char		*name;
	uint64_t		 tokens[SINKTEST_DONE_MAX];
	int			 results[SINKTEST_DONE_MAX];
	unsigned		 ndone;
	unsigned		 resumed;
	struct buf		 log;		/* one line per message */
};

/* A host for one sink instance named name, on base. */
void		 sinktest_init(struct sinktest *, struct event_base *,
		    const char *name);
void		 sinktest_free(struct sinktest *);

/*
 * Create an instance of ops from kv ("key=value" strings, NULL at the
 * end); the test fails if create() refuses it or leaves a key unread.
 */
struct ewsgw_sink *sinktest_create(struct sinktest *,
		    const struct ewsgw_sink_ops *, const char *const *kv);

/*
 * Hand the sink one change (activity may be NULL).  Returns what
 * publish() returned; OK and REJECT count as done at once.
 */
int		 sinktest_publish(struct sinktest *,
		    const struct ewsgw_sink_ops *, struct ewsgw_sink *,
		    const char *mailbox, const char *presence,
		    const char *activity, uint64_t token);

/* The result the sink gave for token, or 99 while it has none. */
int		 sinktest_result(const struct sinktest *, uint64_t token);

/* Run the loop for ms. */
void		 sinktest_run(struct event_base *, int ms);

/* Run the loop until token has a result or ms passed; the result. */
int		 sinktest_wait(struct sinktest *, uint64_t token, int ms);

#endif
