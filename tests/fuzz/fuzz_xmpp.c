/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * libFuzzer target: an XMPP server's stream as the xmpp sink reads it.
 * Fed whole and then in chunks whose sizes come from the first byte;
 * both runs must report the same events and the same verdict.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "sinks/xmpp_stream.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
record(enum xmpp_event ev, const struct xmpp_stanza *st, void *arg)
{
	struct buf	*b = arg;

	buf_printf(b, "%d %s %s %s %s %s %s\n", (int)ev, st->name,
	    st->type ? st->type : "-", st->from ? st->from : "-",
	    st->to ? st->to : "-", st->id ? st->id : "-",
	    st->child ? st->child : "-");
}

static int
run(const char *p, size_t n, size_t step, struct buf *out)
{
	struct xmpp_reader	*r = xmpp_reader_new(record, out);
	size_t			 off, k;
	char			*cause = NULL;
	int			 rc = 0;

	for (off = 0; off < n && rc == 0; off += k) {
		k = n - off < step ? n - off : step;
		rc = xmpp_reader_feed(r, p + off, k, &cause);
	}
	free(cause);
	xmpp_reader_free(r);
	return (rc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf	 a = BUF_INIT, b = BUF_INIT;
	size_t		 step;
	int		 ra, rb;

	if (size == 0)
		return (0);
	step = (size_t)data[0] % 17 + 1;
	ra = run((const char *)data + 1, size - 1, size, &a);
	rb = run((const char *)data + 1, size - 1, step, &b);
	/* Only whole runs compare: a refused stream may stop at different
	 * places depending on where libxml2 saw enough of it. */
	if (ra == 0 && rb == 0 && strcmp(buf_str(&a), buf_str(&b)) != 0)
		abort();
	buf_free(&a);
	buf_free(&b);
	return (0);
}
