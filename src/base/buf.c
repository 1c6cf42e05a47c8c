/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Growable byte buffer.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/xmalloc.h"

void
buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->secret = false;
}

void
buf_set_secret(struct buf *b)
{
	b->secret = true;
}

static void
buf_wipe(void *p, size_t n)
{
#ifdef HAVE_EXPLICIT_BZERO
	explicit_bzero(p, n);
#else
	volatile char *v = p;
	size_t i;
	for (i = 0; i < n; i++)
		v[i] = 0;
#endif
}

void
buf_free(struct buf *b)
{
	if (b->secret && b->data != NULL)
		buf_wipe(b->data, b->cap);
	free(b->data);
	buf_init(b);
}

void
buf_free_secret(struct buf *b)
{
	if (b->data != NULL)
		buf_wipe(b->data, b->cap);
	buf_free(b);
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void
buf_reserve(struct buf *b, size_t more)
{
	char	*p;
	size_t	 need, ncap;

	need = b->len + more + 1;
	if (need <= b->cap)
		return;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need)
		ncap *= 2;
	if (b->secret && b->data != NULL) {
		/* realloc could leave the old copy in freed memory. */
		p = xmalloc(ncap);
		memcpy(p, b->data, b->len);
		p[b->len] = '\0';
		buf_wipe(b->data, b->cap);
		free(b->data);
		b->data = p;
	} else
		b->data = xreallocarray(b->data, 1, ncap);
	b->cap = ncap;
}

void
buf_append(struct buf *b, const void *p, size_t n)
{
	/* Only growth leaves the fast path. */
	if (b->len + n + 1 > b->cap)
		buf_reserve(b, n);
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void
buf_putc(struct buf *b, char c)
{
	if (b->len + 2 > b->cap)
		buf_reserve(b, 1);
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
}

void
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list	 ap2;
	int	 n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	buf_reserve(b, (size_t)n);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

char *
buf_steal(struct buf *b)
{
	char	*p;

	p = b->data != NULL ? b->data : xstrdup("");
	buf_init(b);
	return (p);
}

const char *
buf_str(const struct buf *b)
{
	return (b->data != NULL ? b->data : "");
}
