/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * libFuzzer target: the streaming decoder.  The input is fed whole and
 * then in chunks whose sizes come from its first bytes; both runs must
 * produce the same callbacks and the same verdict.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "ews/stream.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
on_notification(void *arg, const struct ews_notification *n)
{
	struct buf	*b = arg;
	size_t		 i;

	buf_printf(b, "N %s %s %d\n", n->subscription_id,
	    n->previous_watermark != NULL ? n->previous_watermark : "-",
	    n->more_events);
	for (i = 0; i < n->nevents; i++)
		buf_printf(b, " %d %lld %s %s %s\n", n->events[i].type,
		    (long long)n->events[i].timestamp,
		    n->events[i].id != NULL ? n->events[i].id : "-",
		    n->events[i].parent_id != NULL ? n->events[i].parent_id :
		    "-", n->events[i].old_id != NULL ? n->events[i].old_id :
		    "-");
}

static void
on_connection(void *arg, enum ews_conn_status cs)
{
	buf_printf(arg, "C %d\n", cs);
}

static void
on_sub_error(void *arg, const struct ews_status *st, char *const *ids,
    size_t n)
{
	size_t	 i;

	buf_printf(arg, "X %d %s %lld", st->class, st->code,
	    (long long)st->backoff_ms);
	for (i = 0; i < n; i++)
		buf_printf(arg, " %s", ids[i]);
	buf_putc(arg, '\n');
}

static void
on_error(void *arg, const struct ews_status *st)
{
	buf_printf(arg, "E %d %s %lld %s\n", st->class, st->code,
	    (long long)st->backoff_ms, st->message != NULL ? st->message :
	    "-");
}

static const struct stream_cb cbs = {
	on_notification, on_connection, on_sub_error, on_error
};

/* Small cap so that the fuzzer reaches it. */
#define FUZZ_CAP	(64 * 1024)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf	 whole = BUF_INIT, parts = BUF_INIT;
	struct stream	*s;
	uint32_t	 seed;
	size_t		 off, n;
	int		 rw, rp;

	if (size < 2)
		return (0);
	seed = (uint32_t)data[0] << 8 | data[1];
	data += 2;
	size -= 2;

	s = stream_new(&cbs, &whole, FUZZ_CAP);
	rw = stream_feed(s, (const char *)data, size);
	if (rw == 0)
		rw = stream_end(s);
	stream_free(s);

	s = stream_new(&cbs, &parts, FUZZ_CAP);
	rp = 0;
	for (off = 0; off < size && rp == 0; off += n) {
		seed = seed * 1103515245 + 12345;
		n = (seed >> 16) % 64;
		if (n > size - off)
			n = size - off;
		rp = stream_feed(s, (const char *)data + off, n);
	}
	if (rp == 0)
		rp = stream_end(s);
	if (stream_buffered(s) > 2 * FUZZ_CAP + 2)
		abort();
	stream_free(s);

	if (rw != rp || whole.len != parts.len ||
	    (whole.len > 0 && memcmp(whole.data, parts.data, whole.len) != 0))
		abort();
	buf_free(&whole);
	buf_free(&parts);
	return (0);
}
