/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Growable byte buffer, always NUL-terminated, with an optional cap.
 */
#ifndef EWSGW_BUF_H
#define EWSGW_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct buf {
	char	*data;		/* NUL-terminated; NULL until first append */
	size_t	 len;
	size_t	 cap;
	bool	 secret;	/* wipe what growth leaves behind, and on
			   free */
};

#define BUF_INIT	{ NULL, 0, 0, false }
/* For a buffer a secret is built in: no copy is left in freed memory. */
#define BUF_INIT_SECRET	{ NULL, 0, 0, true }

void	 buf_init(struct buf *);
/* Mark a buffer as holding a secret (before the first append). */
void	 buf_set_secret(struct buf *);
/* Free the storage (wiped if secret); reusable after buf_init. */
void	 buf_free(struct buf *);
/* Wipe (for secrets) and free. */
void	 buf_free_secret(struct buf *);
void	 buf_reset(struct buf *);
void	 buf_reserve(struct buf *, size_t);
void	 buf_append(struct buf *, const void *, size_t);
void	 buf_puts(struct buf *, const char *);
void	 buf_putc(struct buf *, char);
void	 buf_printf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	 buf_vprintf(struct buf *, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));
/* Drop the first n bytes. */
void	 buf_consume(struct buf *, size_t);
/* Return the data (allocated, caller frees) and reset the buffer. */
char	*buf_steal(struct buf *);
/* Contents as a string; "" when empty.  Borrowed. */
const char *buf_str(const struct buf *);

#endif
