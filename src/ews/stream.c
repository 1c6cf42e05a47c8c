/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * GetStreamingEvents framing: a byte scanner that follows just enough XML
 * lexis (tags, quoted attributes, comments, CDATA, PIs) to find the end of
 * each top-level envelope, which ews_parse then decodes as one document.
 */
#include "config.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "ews/stream.h"
#include "base/xmalloc.h"

/* Keep at most this much buffer between envelopes. */
#define STREAM_KEEP_CAP	(64 * 1024)

enum scan {
	S_TEXT,		/* character data, or between envelopes */
	S_LT,		/* after '<' */
	S_STAG,		/* inside a start tag, outside quotes */
	S_DQ,		/* inside a "..." attribute value */
	S_SQ,		/* inside a '...' attribute value */
	S_ETAG,		/* inside an end tag */
	S_BANG,		/* after "<!": comment or CDATA? */
	S_SKIP		/* comment, CDATA or PI: until term{need}> */
};

struct stream {
	struct stream_cb cb;
	void		*arg;
	size_t		 max;		/* envelope cap */

	enum scan	 state;
	unsigned	 depth;		/* open elements in the envelope */
	bool		 slash;		/* STAG: last char was '/' */
	unsigned	 run;		/* S_SKIP: terms seen in a row */
	unsigned	 need;		/* S_SKIP: terms needed before '>' */
	char		 term;		/* S_SKIP: '-', ']' or '?' */
	char		 bang[8];	/* S_BANG: what followed "<!" */
	size_t		 nbang;
	uint64_t	 offset;	/* bytes fed since reset */

	struct buf	 env;		/* the envelope being collected */
	bool		 capturing;
	uint64_t	 count;
	char		*error;
};

static int	 broken(struct stream *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	 dispatch(struct stream *);
static int	 capture(struct stream *, const char *, size_t);
static bool	 name_start(unsigned char);
static void	 skip_until(struct stream *, char, unsigned);

struct stream *
stream_new(const struct stream_cb *cb, void *arg, size_t max_envelope)
{
	struct stream	*s;

	s = xcalloc(1, sizeof(*s));
	if (cb != NULL)
		s->cb = *cb;
	s->arg = arg;
	s->max = max_envelope != 0 ? max_envelope : STREAM_MAX_ENVELOPE;
	buf_init(&s->env);
	return (s);
}

void
stream_free(struct stream *s)
{
	if (s == NULL)
		return;
	buf_free(&s->env);
	free(s->error);
	free(s);
}

void
stream_reset(struct stream *s)
{
	buf_free(&s->env);
	free(s->error);
	s->error = NULL;
	s->state = S_TEXT;
	s->depth = 0;
	s->slash = false;
	s->run = 0;
	s->nbang = 0;
	s->offset = 0;
	s->capturing = false;
	s->count = 0;
}

const char *
stream_error(const struct stream *s)
{
	return (s->error);
}

size_t
stream_buffered(const struct stream *s)
{
	return (s->env.cap);
}

uint64_t
stream_count(const struct stream *s)
{
	return (s->count);
}

static int
broken(struct stream *s, const char *fmt, ...)
{
	va_list	 ap;

	if (s->error == NULL) {
		va_start(ap, fmt);
		xvasprintf(&s->error, fmt, ap);
		va_end(ap);
	}
	buf_free(&s->env);
	s->capturing = false;
	return (-1);
}

static bool
name_start(unsigned char c)
{
	return ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    c == '_' || c == ':' || c >= 0x80);
}

/* Skip a comment ("-->"), CDATA section ("]]>") or PI ("?>"). */
static void
skip_until(struct stream *s, char term, unsigned need)
{
	s->state = S_SKIP;
	s->term = term;
	s->need = need;
	s->run = 0;
}

static int
capture(struct stream *s, const char *p, size_t n)
{
	if (n > s->max || s->env.len > s->max - n)
		return (broken(s, "envelope larger than %zu bytes", s->max));
	buf_append(&s->env, p, n);
	return (0);
}

/* Decode the collected envelope and call back. */
static int
dispatch(struct stream *s)
{
	struct ews_streaming	 res;
	struct ews_stream_msg	*m;
	char			*cause = NULL;
	size_t			 i, j;
	int			 rc = 0;

	s->count++;
	if (ews_parse_streaming(s->env.data, s->env.len, &res, &cause) ==
	    -1) {
		rc = broken(s, "envelope %llu: %s",
		    (unsigned long long)s->count, cause != NULL ? cause :
		    "unparsable");
		free(cause);
		ews_streaming_free(&res);
		return (rc);
	}
	if (res.r.fault) {
		if (s->cb.error != NULL)
			s->cb.error(s->arg, &res.r.status);
	}
	for (i = 0; i < res.nmsgs; i++) {
		m = &res.msgs[i];
		for (j = 0; j < m->nnotifications; j++)
			if (s->cb.notification != NULL)
				s->cb.notification(s->arg,
				    &m->notifications[j]);
		if (m->status.class == EWS_CLASS_ERROR) {
			if (m->nerror_ids > 0) {
				if (s->cb.sub_error != NULL)
					s->cb.sub_error(s->arg, &m->status,
					    m->error_ids, m->nerror_ids);
			} else if (s->cb.error != NULL)
				s->cb.error(s->arg, &m->status);
		}
		if (m->conn != EWS_CONN_NONE && s->cb.connection != NULL)
			s->cb.connection(s->arg, m->conn);
	}
	ews_streaming_free(&res);
	/* Constant memory over hours: drop a big buffer, reuse a small one. */
	if (s->env.cap > STREAM_KEEP_CAP)
		buf_free(&s->env);
	else
		buf_reset(&s->env);
	return (rc);
}

int
stream_feed(struct stream *s, const char *data, size_t len)
{
	const unsigned char	*p = (const unsigned char *)data;
	size_t			 i, mark = 0;
	unsigned char		 c;

	if (s->error != NULL)
		return (-1);
	if (len == 0)
		return (0);
	for (i = 0; i < len; i++) {
		c = p[i];
		switch (s->state) {
		case S_TEXT:
			if (c == '<') {
				s->state = S_LT;
				break;
			}
			if (s->capturing || c == ' ' || c == '\t' ||
			    c == '\r' || c == '\n')
				break;
			/* A UTF-8 byte order mark may open the body. */
			if (s->offset + i < 3 && c ==
			    (unsigned char)"\xef\xbb\xbf"[s->offset + i])
				break;
			return (broken(s, "text between envelopes at byte "
			    "%llu", (unsigned long long)(s->offset + i)));
		case S_LT:
			if (c == '/') {
				if (s->depth == 0)
					return (broken(s, "end tag outside "
					    "an envelope"));
				s->state = S_ETAG;
			} else if (c == '!') {
				s->state = S_BANG;
				s->nbang = 0;
			} else if (c == '?')
				skip_until(s, '?', 1);
			else if (name_start(c)) {
				if (s->depth == 0) {
					/* The root '<' was not captured. */
					s->capturing = true;
					buf_putc(&s->env, '<');
					mark = i;
				}
				s->state = S_STAG;
				s->slash = false;
			} else
				return (broken(s, "bad character after '<'"));
			break;
		case S_STAG:
			if (c == '"')
				s->state = S_DQ;
			else if (c == '\'')
				s->state = S_SQ;
			else if (c == '>') {
				s->state = S_TEXT;
				if (!s->slash && ++s->depth > STREAM_MAX_DEPTH)
					return (broken(s, "envelope nested "
					    "deeper than %d",
					    STREAM_MAX_DEPTH));
				if (s->slash && s->depth == 0)
					goto complete;
			} else
				s->slash = c == '/';
			break;
		case S_DQ:
			if (c == '"')
				s->state = S_STAG;
			s->slash = false;
			break;
		case S_SQ:
			if (c == '\'')
				s->state = S_STAG;
			s->slash = false;
			break;
		case S_ETAG:
			if (c != '>')
				break;
			s->state = S_TEXT;
			if (--s->depth == 0)
				goto complete;
			break;
		case S_BANG:
			/* Only comments, and CDATA inside an envelope. */
			s->bang[s->nbang++] = (char)c;
			if (s->nbang <= 2 && memcmp(s->bang, "--",
			    s->nbang) == 0) {
				if (s->nbang == 2)
					skip_until(s, '-', 2);
				break;
			}
			if (s->depth > 0 && memcmp(s->bang, "[CDATA[",
			    s->nbang) == 0) {
				if (s->nbang == 7)
					skip_until(s, ']', 2);
				break;
			}
			return (broken(s, "markup declaration (DOCTYPE or "
			    "ENTITY) not allowed"));
		case S_SKIP:
			if (c == (unsigned char)s->term)
				s->run++;
			else if (c == '>' && s->run >= s->need)
				s->state = S_TEXT;
			else
				s->run = 0;
			break;
		}
		continue;
complete:
		if (capture(s, data + mark, i + 1 - mark) == -1)
			return (-1);
		s->capturing = false;
		if (dispatch(s) == -1)
			return (-1);
	}
	if (s->capturing && capture(s, data + mark, len - mark) == -1)
		return (-1);
	s->offset += len;
	return (0);
}

int
stream_end(struct stream *s)
{
	if (s->error != NULL)
		return (-1);
	if (s->capturing || s->state != S_TEXT)
		return (broken(s, "body ended inside an envelope"));
	return (0);
}
