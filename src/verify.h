/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Preflight diagnostics (ewsgw --verify): a checklist run against the
 * Exchange server the way an administrator sets it up, each check with
 * PASS / WARN / FAIL, what was seen, and the fix.
 */
#ifndef EWSGW_VERIFY_H
#define EWSGW_VERIFY_H

#include <stddef.h>

struct config;

struct verify_opts {
	const char	**mailboxes;	/* --mailbox, borrowed */
	size_t		  nmailboxes;
	int		  json;		/* --json */
	int		  probe;	/* --probe-throttling */
};

/* Run the checklist, print the report; returns 0 when nothing failed. */
int	 verify_run(const struct config *, const struct verify_opts *);

#endif
