/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Helpers shared by the protocol unit tests: fixtures and a canonical
 * text form of decoded notifications, so runs can be compared.
 */
#ifndef EWSGW_PROTO_TEST_H
#define EWSGW_PROTO_TEST_H

#include <stddef.h>

#include "base/buf.h"
#include "ews/ews_parse.h"

/* Read a file (the test fails if it cannot); allocated, NUL-terminated. */
char	*pt_slurp(const char *path, size_t *len);
/* Read tests/fixtures/name; returns allocated (NUL-terminated). */
char	*pt_fixture(const char *name, size_t *len);
/*
 * fn(path, bytes, len, arg) for every regular file of each folder (below
 * the source tree), in name order; returns how many.
 */
unsigned pt_each_file(const char *const *dirs, size_t ndirs,
	    void (*fn)(const char *, const char *, size_t, void *),
	    void *arg);
/* Append one line per notification event, in order. */
void	 pt_fmt_notification(struct buf *, const struct ews_notification *);
/* Append "class code backoff message" for a status. */
void	 pt_fmt_status(struct buf *, const struct ews_status *);

#endif
