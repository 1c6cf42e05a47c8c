/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * HTTP/1.1 request framing: the head is collected up to a fixed size and
 * parsed strictly (no line folding, no space before a colon, one length),
 * the body read by Content-Length or chunked up to a cap.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "io/push_req.h"

#define CHUNK_LINE_MAX	256	/* "1a2b;ext=..." */
#define TRAILER_MAX	4096

enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER };

static size_t	 req_fail(struct push_req *, int, const char *);
static int	 req_parse_head(struct push_req *);
static int	 req_header(struct push_req *, const char *, size_t,
		    const char *, size_t);
static bool	 req_token(const char *, size_t);
static bool	 req_list_has(const char *, size_t, const char *);
static size_t	 req_body_length(struct push_req *, const char *, size_t);
static size_t	 req_body_chunked(struct push_req *, const char *, size_t);

void
push_req_init(struct push_req *r, size_t max_body)
{
	memset(r, 0, sizeof *r);
	r->max_body = max_body;
	buf_init(&r->head);
	buf_init(&r->body);
	push_req_reset(r);
}

void
push_req_reset(struct push_req *r)
{
	r->state = PUSH_REQ_IDLE;
	r->method[0] = r->target[0] = r->content_type[0] = '\0';
	r->minor = 1;
	r->content_length = -1;
	r->chunked = r->close = r->expect_continue = false;
	r->status = 0;
	r->error = NULL;
	r->remaining = 0;
	r->chunk = CH_SIZE;
	r->chunk_digits = r->chunk_ext = false;
	r->line = r->trailer = 0;
	/* Keep small buffers for the next request, drop big ones. */
	if (r->body.cap > 64 * 1024)
		buf_free(&r->body);
	buf_reset(&r->body);
	buf_reset(&r->head);
}

void
push_req_free(struct push_req *r)
{
	buf_free(&r->head);
	buf_free(&r->body);
}

static size_t
req_fail(struct push_req *r, int status, const char *why)
{
	r->state = PUSH_REQ_ERROR;
	r->status = status;
	r->error = why;
	r->close = true;
	return (0);
}

/* RFC 9110 token characters. */
static bool
req_token(const char *s, size_t n)
{
	size_t	 i;

	if (n == 0)
		return (false);
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) &&
		    strchr("!#$%&'*+-.^_`|~", s[i]) == NULL)
			return (false);
	return (true);
}

/* Whether the comma-separated value list holds word (any case). */
static bool
req_list_has(const char *v, size_t n, const char *word)
{
	size_t	 wl = strlen(word), i = 0, s, e;

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == wl && strncasecmp(v + s, word, wl) == 0)
			return (true);
	}
	return (false);
}

/* One header line split into name and value (trimmed). */
static int
req_header(struct push_req *r, const char *name, size_t nlen,
    const char *v, size_t vlen)
{
	char		 num[24], *end;
	long long	 cl;

#define IS(h)	(nlen == sizeof(h) - 1 && strncasecmp(name, h, nlen) == 0)
	if (IS("Content-Length")) {
		if (vlen == 0 || vlen >= sizeof num ||
		    strspn(v, "0123456789") < vlen) {
			req_fail(r, 400, "bad Content-Length");
			return (-1);
		}
		memcpy(num, v, vlen);
		num[vlen] = '\0';
		cl = strtoll(num, &end, 10);
		if (r->content_length >= 0 && r->content_length != cl) {
			req_fail(r, 400, "two Content-Lengths");
			return (-1);
		}
		r->content_length = cl;
	} else if (IS("Transfer-Encoding")) {
		if (r->chunked || vlen != 7 || strncasecmp(v, "chunked", 7)) {
			req_fail(r, 501, "transfer coding not supported");
			return (-1);
		}
		r->chunked = true;
	} else if (IS("Connection")) {
		if (req_list_has(v, vlen, "close"))
			r->close = true;
		else if (req_list_has(v, vlen, "keep-alive") && r->minor == 0)
			r->close = false;
	} else if (IS("Expect")) {
		if (vlen != 12 || strncasecmp(v, "100-continue", 12) != 0) {
			req_fail(r, 417, "expectation not supported");
			return (-1);
		}
		r->expect_continue = true;
	} else if (IS("Content-Type")) {
		if (vlen >= sizeof r->content_type)
			vlen = sizeof r->content_type - 1;
		memcpy(r->content_type, v, vlen);
		r->content_type[vlen] = '\0';
	}
#undef IS
	return (0);
}

/* The collected head: request line, then header lines.  0 or -1. */
static int
req_parse_head(struct push_req *r)
{
	const char	*p = r->head.data, *end = p + r->head.len;
	const char	*eol, *sp1, *sp2, *colon, *v, *ve;
	size_t		 n, headers = 0;

	/* Request line: METHOD SP target SP HTTP/1.x */
	eol = memchr(p, '\n', (size_t)(end - p));
	n = (size_t)(eol - p);
	if (n > 0 && p[n - 1] == '\r')
		n--;
	sp1 = memchr(p, ' ', n);
	sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - p)) :
	    NULL;
	if (sp1 == NULL || sp2 == NULL || !req_token(p, (size_t)(sp1 - p)) ||
	    (size_t)(sp1 - p) >= sizeof r->method) {
		req_fail(r, 400, "bad request line");
		return (-1);
	}
	memcpy(r->method, p, (size_t)(sp1 - p));
	r->method[sp1 - p] = '\0';
	if ((size_t)(sp2 - sp1 - 1) > PUSH_REQ_MAX_TARGET) {
		req_fail(r, 414, "request target too long");
		return (-1);
	}
	memcpy(r->target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	r->target[sp2 - sp1 - 1] = '\0';
	if (r->target[0] != '/' || strpbrk(r->target, " \t\r") != NULL) {
		req_fail(r, 400, "bad request target");
		return (-1);
	}
	if ((size_t)(p + n - sp2 - 1) != 8 || strncmp(sp2 + 1, "HTTP/1.", 7) ||
	    (sp2[8] != '0' && sp2[8] != '1')) {
		req_fail(r, 505, "HTTP/1.0 or HTTP/1.1 only");
		return (-1);
	}
	r->minor = sp2[8] - '0';
	r->close = r->minor == 0;

	for (p = eol + 1; p < end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		n = (size_t)(eol - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n == 0)
			break;		/* the empty line */
		if (++headers > PUSH_REQ_MAX_HEADERS) {
			req_fail(r, 431, "too many header fields");
			return (-1);
		}
		colon = memchr(p, ':', n);
		if (colon == NULL || !req_token(p, (size_t)(colon - p))) {
			/* Folded lines and "Name :" included. */
			req_fail(r, 400, "bad header field");
			return (-1);
		}
		v = colon + 1;
		ve = p + n;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (memchr(v, '\r', (size_t)(ve - v)) != NULL ||
		    memchr(v, '\0', (size_t)(ve - v)) != NULL) {
			req_fail(r, 400, "bad header field");
			return (-1);
		}
		if (req_header(r, p, (size_t)(colon - p), v,
		    (size_t)(ve - v)) == -1)
			return (-1);
	}
	if (r->chunked && r->content_length >= 0) {
		/* Request smuggling territory: refuse. */
		req_fail(r, 400, "both Content-Length and chunked");
		return (-1);
	}
	return (0);
}

void
push_req_body(struct push_req *r)
{
	if (r->state != PUSH_REQ_HEAD_DONE)
		return;
	if (r->chunked) {
		r->state = PUSH_REQ_BODY;
		r->chunk = CH_SIZE;
		r->line = 0;
		r->remaining = 0;
	} else if (r->content_length > 0) {
		r->state = PUSH_REQ_BODY;
		r->remaining = (uint64_t)r->content_length;
	} else
		r->state = PUSH_REQ_DONE;
}

static size_t
req_body_length(struct push_req *r, const char *p, size_t len)
{
	size_t	 n = len < r->remaining ? len : (size_t)r->remaining;

	buf_append(&r->body, p, n);
	r->remaining -= n;
	if (r->remaining == 0)
		r->state = PUSH_REQ_DONE;
	return (n);
}

static size_t
req_body_chunked(struct push_req *r, const char *p, size_t len)
{
	size_t		 i = 0, n;
	unsigned char	 c;
	int		 d;

	while (i < len && r->state == PUSH_REQ_BODY) {
		c = (unsigned char)p[i];
		switch (r->chunk) {
		case CH_SIZE:
			i++;
			if (++r->line > CHUNK_LINE_MAX)
				return (req_fail(r, 400, "bad chunk"));
			if (c == '\n') {
				if (!r->chunk_digits)
					return (req_fail(r, 400, "bad chunk"));
				r->line = 0;
				r->chunk_digits = r->chunk_ext = false;
				r->chunk = r->remaining == 0 ? CH_TRAILER :
				    CH_DATA;
				break;
			}
			if (r->chunk_ext)
				break;	/* ";name=value" or "\r": skipped */
			if (c == ';' || c == '\r') {
				if (!r->chunk_digits)
					return (req_fail(r, 400, "bad chunk"));
				r->chunk_ext = true;
				break;
			}
			d = isdigit(c) ? c - '0' : c >= 'a' && c <= 'f' ?
			    c - 'a' + 10 : c >= 'A' && c <= 'F' ?
			    c - 'A' + 10 : -1;
			if (d < 0)
				return (req_fail(r, 400, "bad chunk"));
			r->chunk_digits = true;
			/* remaining <= max_body here: no overflow. */
			r->remaining = r->remaining * 16 + (unsigned)d;
			if (r->body.len + r->remaining > r->max_body)
				return (req_fail(r, 413, "body too large"));
			break;
		case CH_DATA:
			n = len - i < r->remaining ? len - i :
			    (size_t)r->remaining;
			buf_append(&r->body, p + i, n);
			i += n;
			r->remaining -= n;
			if (r->remaining == 0)
				r->chunk = CH_DATA_CR;
			break;
		case CH_DATA_CR:
			i++;
			if (c == '\r')
				r->chunk = CH_DATA_LF;
			else if (c == '\n')
				r->chunk = CH_SIZE;
			else
				return (req_fail(r, 400, "bad chunk"));
			break;
		case CH_DATA_LF:
			i++;
			if (c != '\n')
				return (req_fail(r, 400, "bad chunk"));
			r->chunk = CH_SIZE;
			break;
		case CH_TRAILER:
			/* Trailer fields are ignored; an empty line ends. */
			i++;
			if (++r->trailer > TRAILER_MAX)
				return (req_fail(r, 431, "trailer too large"));
			if (c == '\n') {
				if (r->line == 0)
					r->state = PUSH_REQ_DONE;
				r->line = 0;
			} else if (c != '\r')
				r->line++;
			break;
		}
	}
	return (i);
}

size_t
push_req_feed(struct push_req *r, const char *p, size_t len)
{
	const char	*nl;
	size_t		 i = 0, n;

	while (i < len) {
		switch (r->state) {
		case PUSH_REQ_IDLE:
			/* Empty lines before a request are ignored. */
			if (p[i] == '\r' || p[i] == '\n') {
				i++;
				break;
			}
			r->state = PUSH_REQ_HEAD;
			break;
		case PUSH_REQ_HEAD:
			nl = memchr(p + i, '\n', len - i);
			n = nl != NULL ? (size_t)(nl - (p + i)) + 1 : len - i;
			if (r->head.len + n > PUSH_REQ_MAX_HEAD)
				return (i + req_fail(r, 431,
				    "request head too large"));
			if (memchr(p + i, '\0', n) != NULL)
				return (i + req_fail(r, 400, "NUL in head"));
			buf_append(&r->head, p + i, n);
			i += n;
			if (nl == NULL) {
				r->line += n;
				break;
			}
			/* A line ended; an empty one ("\r\n") ends the head. */
			n += r->line;
			r->line = 0;
			if (n > 2 || (n == 2 &&
			    r->head.data[r->head.len - 2] != '\r'))
				break;
			if (req_parse_head(r) == -1)
				return (i);
			if (!r->chunked &&
			    r->content_length > (int64_t)r->max_body)
				return (i + req_fail(r, 413, "body too large"));
			r->state = PUSH_REQ_HEAD_DONE;
			return (i);
		case PUSH_REQ_BODY:
			i += r->chunked ? req_body_chunked(r, p + i, len - i) :
			    req_body_length(r, p + i, len - i);
			if (r->state != PUSH_REQ_BODY)
				return (i);
			break;
		case PUSH_REQ_HEAD_DONE:
		case PUSH_REQ_DONE:
		case PUSH_REQ_ERROR:
		default:
			return (i);
		}
	}
	return (i);
}
