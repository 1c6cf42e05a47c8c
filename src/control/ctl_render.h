/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * ewsgwctl's presentation: turn one control answer (JSON line or metrics
 * text) into readable tables, and decide the exit status.  Pure, so the
 * tests feed it JSON and compare text.
 */
#ifndef EWSGW_CTL_RENDER_H
#define EWSGW_CTL_RENDER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

/* ewsgwctl exit statuses. */
#define CTL_EXIT_OK		0	/* answered ok, and healthy */
#define CTL_EXIT_UNHEALTHY	1	/* "ok": false, "healthy": false
					   (status) or "passed": false
					   (verify) */
#define CTL_EXIT_FAILURE	2	/* cannot connect, protocol error */
#define CTL_EXIT_USAGE		64	/* sysexits.h EX_USAGE */

/*
 * Render the answer (len bytes, its final newline optional) to the
 * request whose first word is command.  With json, the JSON answer is
 * copied verbatim; metrics text is always copied verbatim.  Readable
 * output goes to out, error messages ("error: ...\n") to err; strings
 * from the daemon have control characters replaced, so they cannot drive
 * the terminal.  Returns one of CTL_EXIT_OK, CTL_EXIT_UNHEALTHY or
 * CTL_EXIT_FAILURE (not a valid answer).
 */
int	ctl_render(const char *command, const char *answer, size_t len,
	    bool json, struct buf *out, struct buf *err);

/* "1d02h03m04s" style; appended to out. */
void	ctl_render_duration(struct buf *out, double seconds);

#endif
