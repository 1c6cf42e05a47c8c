/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Allocation wrappers that abort on exhaustion, so callers never check
 * for NULL after them.
 */
#ifndef EWSGW_XMALLOC_H
#define EWSGW_XMALLOC_H

#include <stdarg.h>
#include <stddef.h>

/* Return allocated memory, caller frees; never NULL. */
void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
int	 xasprintf(char **, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	 xvasprintf(char **, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));

/* Overwrite a secret before freeing it; NULL is fine. */
void	 xfree_secret(char *);

#endif
