/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * libFuzzer target: the push listener's request path (push_session), the
 * bytes one client sends on one connection, HTTP framing, head checks,
 * XML pre-scan, SendNotification parse and answer included.  The first
 * two bytes pick how the rest is split into reads.  Requests name the
 * path /ewsgw/push/ and the token below; the seed corpus does so.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "base/buf.h"
#include "base/log.h"
#include "ews/ews_parse.h"
#include "io/push.h"

#define FUZZ_TOKEN	"0123456789abcdef0123456789abcdef" \
	"0123456789abcdef0123456789abcdef"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct event_base	*base;
static struct push		*push;

/* Known ids answer OK, "bad" is refused, the rest unsubscribed. */
static int
on_notify(const struct ews_notifications *n, const char *body, size_t len,
    void *arg)
{
	const char	*id;
	size_t		 i;

	if (strlen(body) > len)
		abort();
	for (i = 0; i < n->nmsgs; i++) {
		if (!n->msgs[i].has_notification)
			continue;
		id = n->msgs[i].notification.subscription_id;
		if (strcmp(id, "sub-bad") == 0)
			return (PUSH_BAD);
		if (strcmp(id, "sub-known") == 0)
			return (PUSH_OK);
	}
	return (PUSH_UNSUBSCRIBE);
}

static void
setup(void)
{
	struct push_opts	 o;
	char			*cause = NULL;

	log_init("fuzz_push", LOG_TARGET_STDERR, LOG_CRIT);
	base = event_base_new();
	memset(&o, 0, sizeof o);
	o.path = "/ewsgw/push";
	o.token = FUZZ_TOKEN;
	o.max_body = 64 * 1024;		/* small: the fuzzer reaches it */
	if ((push = push_new(base, &o, on_notify, NULL, &cause)) == NULL)
		abort();
}

/* Every answer is a whole HTTP/1.1 status line and head. */
static void
check_answers(const struct buf *out)
{
	const char	*p = out->data, *end = out->data + out->len, *h;

	while (p < end) {
		if (end - p < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0)
			abort();
		if ((h = memmem(p, (size_t)(end - p), "\r\n\r\n", 4)) == NULL)
			abort();
		p = h + 4;
		/* The body (if any) runs up to the next status line. */
		if ((h = memmem(p, (size_t)(end - p), "HTTP/1.1 ", 9)) == NULL)
			break;
		p = h;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct push_session	*s;
	struct buf		 out = BUF_INIT;
	uint32_t		 seed;
	size_t			 off = 0, n, used;
	int			 rc = PUSH_SESSION_MORE;

	if (push == NULL)
		setup();
	if (size < 2)
		return (0);
	seed = (uint32_t)data[0] << 8 | data[1];
	data += 2;
	size -= 2;
	s = push_session_new(push, "fuzz");
	while (off < size && rc != PUSH_SESSION_CLOSE) {
		seed = seed * 1103515245 + 12345;
		n = seed & 0x8000 ? size - off : 1 + (seed >> 16) % 512;
		if (n > size - off)
			n = size - off;
		rc = push_session_feed(s, (const char *)data + off, n, &used,
		    &out);
		if (used > n)
			abort();
		off += used;
		if (used == 0 && rc == PUSH_SESSION_MORE)
			abort();	/* no progress */
	}
	check_answers(&out);
	push_session_free(s);
	buf_free(&out);
	return (0);
}
