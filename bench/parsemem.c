/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Peak heap of the push listener's parse path: what one SendNotification
 * body costs the daemon in memory beyond the body itself.  Each body is
 * fed, as an HTTP request with the token, to push_session_feed() in
 * 16 KiB reads (the daemon's path: head checks, body buffer, XML
 * pre-scan, SendNotification parse, answer), and, separately, to the
 * pre-scan and parse alone (xml_prescan() with the listener's limits,
 * ews_parse_send_notification()).  The heap is counted by wrapping
 * malloc and friends (glibc's __libc_* entry points): live bytes as
 * malloc_usable_size() reports them, the peak above what was live
 * before (a realloc that moves a block counts both copies at that
 * moment).  Deterministic: no clock, no load dependence.
 *
 * Shapes (each filled up to the size asked for):
 *   events  ModifiedEvents with identifiers as long as Exchange's
 *           (152-character ItemId, 40-character ChangeKey), as many as
 *           fit; past the listener's 8,192 nodes the pre-scan refuses it
 *   text    64 events whose Watermark texts fill the body
 *   attrs   64 events whose ItemId Id attributes fill the body
 *
 *   bench/parsemem [-d] [-m ratio] [-r ratio] [-s shape[,shape...]]
 *       [size...]
 *
 * Sizes in bytes, with an optional k or M suffix (default 64k 256k 1M
 * 4M 16M); the listener's max_body is set to 16 MiB, its maximum, so that
 * every body is read.  -d parses with the DOM parse the listener used
 * before the streaming reader (tests/unit/ews_parse_dom.c), for the
 * parse column only.  -m and -r make it a check (tests/parsemem.sh):
 * exit 1 if any parse peak is above ratio x the body, or any request
 * peak above its ratio.  Not built with sanitizers (they own malloc).
 */
#include "config.h"

#include <err.h>
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "ews/ews_parse.h"
#include "ews/xmlscan.h"
#include "io/push.h"
#include "../tests/unit/ews_parse_dom.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#error "bench/parsemem counts malloc itself: build it without sanitizers"
#endif

#define TOKEN		"0123456789abcdef0123456789abcdef" \
	"0123456789abcdef0123456789abcdef"
#define READ_CHUNK	16384
#define MAX_BODY	(16 * 1024 * 1024)
#define FEW_EVENTS	64

/* ---- counting allocator ---- */

void	*__libc_malloc(size_t);
void	*__libc_calloc(size_t, size_t);
void	*__libc_realloc(void *, size_t);
void	 __libc_free(void *);
void	*__libc_memalign(size_t, size_t);

static size_t	 live, peak;

static void
count_add(void *p)
{
	if (p == NULL)
		return;
	live += malloc_usable_size(p);
	if (live > peak)
		peak = live;
}

static void
count_sub(void *p)
{
	if (p != NULL)
		live -= malloc_usable_size(p);
}

void *
malloc(size_t n)
{
	void	*p = __libc_malloc(n);

	count_add(p);
	return (p);
}

void *
calloc(size_t n, size_t sz)
{
	void	*p = __libc_calloc(n, sz);

	count_add(p);
	return (p);
}

void *
realloc(void *old, size_t n)
{
	size_t	 was = old != NULL ? malloc_usable_size(old) : 0;
	void	*p;

	if ((p = __libc_realloc(old, n)) == NULL)
		return (NULL);
	if (p == old) {
		/* Grown or shrunk in place. */
		live = live - was + malloc_usable_size(p);
		if (live > peak)
			peak = live;
		return (p);
	}
	/* Moved: the old block was live until the new one was filled. */
	count_add(p);
	live -= was;
	return (p);
}

void
free(void *p)
{
	count_sub(p);
	__libc_free(p);
}

void *
memalign(size_t align, size_t n)
{
	void	*p = __libc_memalign(align, n);

	count_add(p);
	return (p);
}

void *
aligned_alloc(size_t align, size_t n)
{
	return (memalign(align, n));
}

int
posix_memalign(void **out, size_t align, size_t n)
{
	void	*p = memalign(align, n);

	if (p == NULL)
		return (ENOMEM);
	*out = p;
	return (0);
}

/* ---- bodies ---- */

static const struct xml_limits push_limits = { 24, 16, 16, 8192 };

static void
fill(struct buf *b, char c, size_t n)
{
	while (n-- > 0)
		buf_putc(b, c);
}

static void
event(struct buf *b, unsigned i, size_t wm, size_t id)
{
	buf_printf(b, "<ModifiedEvent xmlns=\"http://schemas.microsoft.com/"
	    "exchange/services/2006/types\"><Watermark>AQ%06u", i);
	fill(b, 'A', wm);
	buf_printf(b, "</Watermark><TimeStamp>2026-11-29T11:30:00Z"
	    "</TimeStamp><ItemId Id=\"AAMkAD%06u", i);
	fill(b, 'B', id);
	buf_puts(b, "\" ChangeKey=\"DwAAABYAAAA7Bqz6m3y5RK0Y1jZ4hLYkAAAB\"/>"
	    "<ParentFolderId Id=\"AAMkADcal\" ChangeKey=\"AQAAAA==\"/>"
	    "</ModifiedEvent>");
}

static const char	head[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
	"<soap11:Envelope xmlns:soap11=\"http://schemas.xmlsoap.org/soap/"
	"envelope/\"><soap11:Body><msg:SendNotification xmlns:msg=\""
	"http://schemas.microsoft.com/exchange/services/2006/messages\">"
	"<msg:ResponseMessages><msg:SendNotificationResponseMessage "
	"ResponseClass=\"Success\"><msg:ResponseCode>NoError"
	"</msg:ResponseCode><msg:Notification><ty:SubscriptionId xmlns:ty=\""
	"http://schemas.microsoft.com/exchange/services/2006/types\">PUSH-1"
	"</ty:SubscriptionId><ty:PreviousWatermark xmlns:ty=\"http://"
	"schemas.microsoft.com/exchange/services/2006/types\">AQAAAB1"
	"</ty:PreviousWatermark>";
static const char	tail[] = "</msg:Notification>"
	"</msg:SendNotificationResponseMessage></msg:ResponseMessages>"
	"</msg:SendNotification></soap11:Body></soap11:Envelope>";

/* A body of about size bytes (never more) in the shape asked for. */
static int
body(struct buf *b, const char *shape, size_t size)
{
	struct buf	 one = BUF_INIT;
	size_t		 fixed, each, extra;
	unsigned	 i, n;

	event(&one, 0, 28, 146);	/* Exchange's lengths */
	each = one.len;
	buf_free(&one);
	fixed = sizeof head - 1 + sizeof tail - 1;
	if (size < fixed + FEW_EVENTS * each)
		return (-1);
	buf_puts(b, head);
	if (strcmp(shape, "events") == 0) {
		n = (unsigned)((size - fixed) / each);
		for (i = 0; i < n; i++)
			event(b, i, 28, 146);
	} else if (strcmp(shape, "text") == 0 || strcmp(shape, "attrs") == 0) {
		extra = (size - fixed - FEW_EVENTS * each) / FEW_EVENTS;
		for (i = 0; i < FEW_EVENTS; i++) {
			if (shape[0] == 't')
				event(b, i, 28 + extra, 146);
			else
				event(b, i, 28, 146 + extra);
		}
	} else
		errx(2, "unknown shape %s (events, text, attrs)", shape);
	buf_puts(b, tail);
	return (0);
}

/* ---- measuring ---- */

/* Every subscription is known: the body goes all the way. */
static int
on_notify(const struct ews_notifications *n, const char *body, size_t len,
    void *arg)
{
	return (PUSH_OK);
}

/* Peak heap above the start while the request is read and answered. */
static size_t
request(struct push *p, const struct buf *b, int *status)
{
	struct push_session	*s;
	struct buf		 req = BUF_INIT, out = BUF_INIT;
	size_t			 off = 0, used, n, base;
	int			 rc = PUSH_SESSION_MORE;

	buf_printf(&req, "POST /ewsgw/push/%s HTTP/1.1\r\nHost: gw\r\n"
	    "Content-Type: text/xml; charset=utf-8\r\n"
	    "Content-Length: %zu\r\n\r\n", TOKEN, b->len);
	buf_append(&req, b->data, b->len);
	buf_reserve(&out, 4096);
	base = peak = live;
	s = push_session_new(p, "bench");
	while (off < req.len && rc == PUSH_SESSION_MORE) {
		n = req.len - off < READ_CHUNK ? req.len - off : READ_CHUNK;
		rc = push_session_feed(s, req.data + off, n, &used, &out);
		off += used;
	}
	push_session_free(s);
	n = peak - base;
	*status = out.len > 12 && memcmp(out.data, "HTTP/1.1 ", 9) == 0 ?
	    atoi(out.data + 9) : 0;
	buf_free(&out);
	buf_free(&req);
	return (n);
}

/* Peak heap above the start for the pre-scan and parse alone. */
static size_t
parse(const struct buf *b, bool dom, int *ok, size_t *events, char **cause)
{
	struct ews_notifications n;
	size_t		 base, i;

	base = peak = live;
	*cause = NULL;
	*ok = xml_prescan(b->data, b->len, &push_limits, cause) == 0 &&
	    (dom ? dom_parse_send_notification(b->data, b->len, &n, cause) :
	    ews_parse_send_notification(b->data, b->len, &n, cause)) == 0;
	if (*ok) {
		*events = 0;
		for (i = 0; i < n.nmsgs; i++)
			if (n.msgs[i].has_notification)
				*events += n.msgs[i].notification.nevents;
		ews_notifications_free(&n);
	}
	return (peak - base);
}

static double
ratio_arg(const char *s)
{
	char	*end;
	double	 v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v > 0))
		errx(2, "bad ratio %s", s);
	return (v);
}

static size_t
size_arg(const char *s)
{
	char		*end;
	unsigned long	 v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s)
		errx(2, "bad size %s", s);
	if (*end == 'k' || *end == 'K')
		v *= 1024, end++;
	else if (*end == 'M')
		v *= 1024 * 1024, end++;
	if (*end != '\0' || v > MAX_BODY)
		errx(2, "bad size %s (at most 16M)", s);
	return (v);
}

int
main(int argc, char **argv)
{
	static const char *const sizes_default[] = { "64k", "256k", "1M",
	    "4M", "16M" };
	struct event_base	*base;
	struct push_opts	 o;
	struct push		*p;
	struct buf		 b;
	char			*shapes = xstrdup("events,text,attrs");
	char			*cause = NULL, *shape, *save = NULL;
	const char		*const *sizes;
	size_t			 nsizes, i, rpeak, ppeak, events;
	double			 pmax = 0, rmax = 0;
	bool			 dom = false, over = false;
	int			 ch, status, ok;

	while ((ch = getopt(argc, argv, "dm:r:s:")) != -1) {
		switch (ch) {
		case 'd':
			dom = true;
			break;
		case 'm':
			pmax = ratio_arg(optarg);
			break;
		case 'r':
			rmax = ratio_arg(optarg);
			break;
		case 's':
			free(shapes);
			shapes = xstrdup(optarg);
			break;
		default:
			fprintf(stderr, "usage: parsemem [-d] [-m ratio] "
			    "[-r ratio] [-s shape[,shape]] [size...]\n");
			return (2);
		}
	}
	argc -= optind;
	argv += optind;
	sizes = argc > 0 ? (const char *const *)argv : sizes_default;
	nsizes = argc > 0 ? (size_t)argc :
	    sizeof sizes_default / sizeof sizes_default[0];

	log_init("parsemem", LOG_TARGET_STDERR, LOG_CRIT);
	if ((base = event_base_new()) == NULL)
		errx(1, "event_base_new");
	memset(&o, 0, sizeof o);
	o.path = "/ewsgw/push";
	o.token = TOKEN;
	o.max_body = MAX_BODY;
	if ((p = push_new(base, &o, on_notify, NULL, &cause)) == NULL)
		errx(1, "push_new: %s", cause);

	printf("%-6s %10s %7s %13s %6s %13s %6s\n", "shape", "body",
	    "answer", "request peak", "x body", "parse peak", "x body");
	for (shape = strtok_r(shapes, ",", &save); shape != NULL;
	    shape = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < nsizes; i++) {
			buf_init(&b);
			if (body(&b, shape, size_arg(sizes[i])) == -1) {
				printf("%-6s %10s: too small for the shape\n",
				    shape, sizes[i]);
				buf_free(&b);
				continue;
			}
			rpeak = request(p, &b, &status);
			ppeak = parse(&b, dom, &ok, &events, &cause);
			printf("%-6s %10zu %7d %13zu %6.2f %13zu %6.2f",
			    shape, b.len, status, rpeak,
			    (double)rpeak / (double)b.len, ppeak,
			    (double)ppeak / (double)b.len);
			if (ok)
				printf(" %8zu events\n", events);
			else
				printf("  refused: %.60s\n", cause != NULL ?
				    cause : "?");
			if (pmax > 0 && (double)ppeak > pmax * (double)b.len) {
				printf("%-6s %10zu: parse peak over %.2f x "
				    "the body\n", shape, b.len, pmax);
				over = true;
			}
			if (rmax > 0 && (double)rpeak > rmax * (double)b.len) {
				printf("%-6s %10zu: request peak over %.2f x "
				    "the body\n", shape, b.len, rmax);
				over = true;
			}
			free(cause);
			cause = NULL;
			buf_free(&b);
		}
	}
	push_free(p);
	event_base_free(base);
	free(shapes);
	return (over ? 1 : 0);
}
