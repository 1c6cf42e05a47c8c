/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * JSON writer and bounded parser.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

static void	sep(struct json_writer *);
static size_t	utf8_seq(const unsigned char *, size_t);

/* ---- writer ---- */

/* Bytes that go out as they are: printable ASCII but '"' and '\\'. */
static const bool plain[256] = {
	[0x20 ... 0x21] = true,		/* '"' is 0x22 */
	[0x23 ... 0x5b] = true,		/* '\\' is 0x5c */
	[0x5d ... 0x7e] = true,
};

/* Longest key written without a second look. */
#define JSON_KEY_FAST	64

void
json_writer_init(struct json_writer *w, struct buf *out)
{
	memset(w, 0, sizeof *w);
	w->out = out;
	w->first[0] = true;
}

static void
sep(struct json_writer *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	if (!w->first[w->depth])
		buf_putc(w->out, ',');
	w->first[w->depth] = false;
}

static void
open_(struct json_writer *w, char c)
{
	sep(w);
	buf_putc(w->out, c);
	if (w->depth < JSON_MAX_DEPTH - 1)
		w->depth++;
	w->first[w->depth] = true;
}

static void
close_(struct json_writer *w, char c)
{
	buf_putc(w->out, c);
	if (w->depth > 0)
		w->depth--;
}

void json_obj_begin(struct json_writer *w) { open_(w, '{'); }
void json_obj_end(struct json_writer *w) { close_(w, '}'); }
void json_arr_begin(struct json_writer *w) { open_(w, '['); }
void json_arr_end(struct json_writer *w) { close_(w, ']'); }

void
json_raw(struct json_writer *w, const char *text)
{
	sep(w);
	buf_puts(w->out, text);
}

void
json_key(struct json_writer *w, const char *k)
{
	struct buf	*b = w->out;
	char		*d;
	size_t		 i;

	sep(w);
	w->after_key = true;
	/* Keys are short identifiers: copied while they are looked at. */
	buf_reserve(b, JSON_KEY_FAST + 3);
	d = b->data + b->len;
	d[0] = '"';
	for (i = 0; i < JSON_KEY_FAST && k[i] != '\0' &&
	    plain[(unsigned char)k[i]]; i++)
		d[i + 1] = k[i];
	if (k[i] == '\0') {
		d[i + 1] = '"';
		d[i + 2] = ':';
		d[i + 3] = '\0';
		b->len += i + 3;
		return;
	}
	json_quote(b, k, strlen(k));
	buf_putc(b, ':');
}

/* Length of a valid UTF-8 sequence at p, or 0 if invalid. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	size_t		 len, i;
	unsigned int	 cp;

	if (p[0] < 0x80)
		return (1);
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = p[0] & 0x07;
	} else
		return (0);
	if (len > n)
		return (0);
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return (0);
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return (0);
	return (len);
}

void
json_quote(struct buf *b, const char *s, size_t n)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i, l, run;
	char			*d;

	/* The common case, all plain: copied while it is looked at. */
	buf_reserve(b, n + 2);
	d = b->data + b->len;
	d[0] = '"';
	for (run = 0; run < n && plain[p[run]]; run++)
		d[run + 1] = (char)p[run];
	if (run == n) {
		d[n + 1] = '"';
		d[n + 2] = '\0';
		b->len += n + 2;
		return;
	}
	/* Something to escape: piece by piece, from the start again. */
	buf_putc(b, '"');
	for (i = 0; i < n; ) {
		unsigned char c = p[i];

		/* Plain printable ASCII goes out in one piece. */
		for (run = i; run < n && plain[p[run]]; run++)
			;
		if (run > i) {
			buf_append(b, p + i, run - i);
			i = run;
			continue;
		}
		switch (c) {
		case '"':  buf_puts(b, "\\\""); i++; continue;
		case '\\': buf_puts(b, "\\\\"); i++; continue;
		case '\n': buf_puts(b, "\\n"); i++; continue;
		case '\r': buf_puts(b, "\\r"); i++; continue;
		case '\t': buf_puts(b, "\\t"); i++; continue;
		}
		if (c < 0x20 || c == 0x7f) {
			buf_printf(b, "\\u%04x", c);
			i++;
			continue;
		}
		if ((l = utf8_seq(p + i, n - i)) == 0) {
			buf_puts(b, "\\ufffd");
			i++;
			continue;
		}
		buf_append(b, p + i, l);
		i += l;
	}
	buf_putc(b, '"');
}

void
json_strn(struct json_writer *w, const char *s, size_t n)
{
	sep(w);
	json_quote(w->out, s, n);
}

void
json_str(struct json_writer *w, const char *s)
{
	if (s == NULL) {
		json_null(w);
		return;
	}
	json_strn(w, s, strlen(s));
}

void
json_int(struct json_writer *w, int64_t v)
{
	char		 tmp[24], *p = tmp + sizeof tmp;
	uint64_t	 u;

	sep(w);
	/* Digits from the right; the magnitude of INT64_MIN fits u. */
	u = v < 0 ? -(uint64_t)v : (uint64_t)v;
	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	buf_append(w->out, p, (size_t)(tmp + sizeof tmp - p));
}

void
json_double(struct json_writer *w, double v)
{
	sep(w);
	if (!isfinite(v))
		buf_puts(w->out, "null");
	else	/* 15 digits: 0.1 stays "0.1", not 0.10000000000000001 */
		buf_printf(w->out, "%.15g", v);
}

void
json_bool(struct json_writer *w, bool v)
{
	sep(w);
	buf_puts(w->out, v ? "true" : "false");
}

void
json_null(struct json_writer *w)
{
	sep(w);
	buf_puts(w->out, "null");
}

void
json_kv_str(struct json_writer *w, const char *k, const char *v)
{
	json_key(w, k);
	json_str(w, v);
}

void
json_kv_int(struct json_writer *w, const char *k, int64_t v)
{
	json_key(w, k);
	json_int(w, v);
}

void
json_kv_bool(struct json_writer *w, const char *k, bool v)
{
	json_key(w, k);
	json_bool(w, v);
}

void
json_kv_time(struct json_writer *w, const char *k, int64_t t)
{
	char	 iso[TIME_ISO8601_LEN], *d;

	json_key(w, k);
	if (t == 0 || t == INT64_MAX) {
		json_null(w);
		return;
	}
	time_format_iso8601(t, iso);
	/* Digits and punctuation only: no escaping to look for. */
	sep(w);
	buf_reserve(w->out, TIME_ISO8601_LEN + 1);
	d = w->out->data + w->out->len;
	d[0] = '"';
	memcpy(d + 1, iso, TIME_ISO8601_LEN - 1);
	d[TIME_ISO8601_LEN] = '"';
	d[TIME_ISO8601_LEN + 1] = '\0';
	w->out->len += TIME_ISO8601_LEN + 1;
}

/* ---- parser ---- */

struct jp {
	const char	*p, *end;
	char		*err;
	int		 depth;
};

static struct json_value *parse_value(struct jp *);

static void
jp_fail(struct jp *jp, const char *what)
{
	if (jp->err == NULL)
		xasprintf(&jp->err, "%s at offset %zu", what,
		    (size_t)(jp->end - jp->p));
}

static void
skip_ws(struct jp *jp)
{
	while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' ||
	    *jp->p == '\n' || *jp->p == '\r'))
		jp->p++;
}

static int
hex4(const char *p, unsigned int *out)
{
	unsigned int	 v = 0;
	int		 i;

	for (i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return (-1);
	}
	*out = v;
	return (0);
}

static void
put_utf8(struct buf *b, unsigned int cp)
{
	char	 o[4];

	if (cp < 0x80) {
		o[0] = (char)cp;
		buf_append(b, o, 1);
	} else if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		buf_append(b, o, 2);
	} else if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		buf_append(b, o, 3);
	} else {
		o[0] = (char)(0xf0 | (cp >> 18));
		o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[3] = (char)(0x80 | (cp & 0x3f));
		buf_append(b, o, 4);
	}
}

static char *
parse_string(struct jp *jp)
{
	struct buf	 b = BUF_INIT;
	unsigned int	 cp, lo;

	jp->p++;	/* opening quote */
	while (jp->p < jp->end && *jp->p != '"') {
		unsigned char c = (unsigned char)*jp->p;

		if (c < 0x20) {
			jp_fail(jp, "control character in string");
			goto fail;
		}
		if (c != '\\') {
			const char *q = jp->p;

			/* Copy up to the next quote, escape or control byte. */
			while (q < jp->end && *q != '"' && *q != '\\' &&
			    (unsigned char)*q >= 0x20)
				q++;
			buf_append(&b, jp->p, (size_t)(q - jp->p));
			jp->p = q;
			continue;
		}
		if (++jp->p >= jp->end)
			break;
		switch (*jp->p) {
		case '"': buf_putc(&b, '"'); break;
		case '\\': buf_putc(&b, '\\'); break;
		case '/': buf_putc(&b, '/'); break;
		case 'b': buf_putc(&b, '\b'); break;
		case 'f': buf_putc(&b, '\f'); break;
		case 'n': buf_putc(&b, '\n'); break;
		case 'r': buf_putc(&b, '\r'); break;
		case 't': buf_putc(&b, '\t'); break;
		case 'u':
			if (jp->end - jp->p < 5 || hex4(jp->p + 1, &cp) == -1) {
				jp_fail(jp, "bad \\u escape");
				goto fail;
			}
			jp->p += 4;
			if (cp >= 0xd800 && cp <= 0xdbff &&
			    jp->end - jp->p >= 7 &&
			    jp->p[1] == '\\' && jp->p[2] == 'u' &&
			    hex4(jp->p + 3, &lo) == 0 && lo >= 0xdc00 &&
			    lo <= 0xdfff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				    (lo - 0xdc00);
				jp->p += 6;
			} else if (cp >= 0xd800 && cp <= 0xdfff)
				cp = 0xfffd;
			if (cp == 0)
				cp = 0xfffd;	/* keep strings NUL-free */
			put_utf8(&b, cp);
			break;
		default:
			jp_fail(jp, "bad escape");
			goto fail;
		}
		jp->p++;
	}
	if (jp->p >= jp->end) {
		jp_fail(jp, "unterminated string");
		goto fail;
	}
	jp->p++;
	return (buf_steal(&b));
fail:
	buf_free(&b);
	return (NULL);
}

static struct json_value *
new_value(enum json_type t)
{
	struct json_value *v = xcalloc(1, sizeof *v);

	v->type = t;
	return (v);
}

static struct json_value *
parse_container(struct jp *jp, bool object)
{
	struct json_value	*v, *item, **tail;
	char			*key = NULL;

	if (++jp->depth > JSON_MAX_DEPTH) {
		jp_fail(jp, "nesting too deep");
		return (NULL);
	}
	v = new_value(object ? JSON_OBJECT : JSON_ARRAY);
	tail = &v->child;
	jp->p++;
	skip_ws(jp);
	if (jp->p < jp->end && *jp->p == (object ? '}' : ']')) {
		jp->p++;
		jp->depth--;
		return (v);
	}
	for (;;) {
		skip_ws(jp);
		if (object) {
			if (jp->p >= jp->end || *jp->p != '"') {
				jp_fail(jp, "expected member name");
				goto fail;
			}
			if ((key = parse_string(jp)) == NULL)
				goto fail;
			skip_ws(jp);
			if (jp->p >= jp->end || *jp->p != ':') {
				jp_fail(jp, "expected ':'");
				goto fail;
			}
			jp->p++;
		}
		if ((item = parse_value(jp)) == NULL)
			goto fail;
		item->key = key;
		key = NULL;
		*tail = item;
		tail = &item->next;
		skip_ws(jp);
		if (jp->p < jp->end && *jp->p == ',') {
			jp->p++;
			continue;
		}
		if (jp->p < jp->end && *jp->p == (object ? '}' : ']')) {
			jp->p++;
			break;
		}
		jp_fail(jp, object ? "expected ',' or '}'" :
		    "expected ',' or ']'");
		goto fail;
	}
	jp->depth--;
	return (v);
fail:
	free(key);
	json_free(v);
	return (NULL);
}

static int
match_word(struct jp *jp, const char *w)
{
	size_t	 n = strlen(w);

	if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, w, n) != 0)
		return (0);
	jp->p += n;
	return (1);
}

static struct json_value *
parse_value(struct jp *jp)
{
	struct json_value	*v;
	char			 num[64], *ep;
	size_t			 n;

	skip_ws(jp);
	if (jp->p >= jp->end) {
		jp_fail(jp, "unexpected end");
		return (NULL);
	}
	switch (*jp->p) {
	case '{':
		return (parse_container(jp, true));
	case '[':
		return (parse_container(jp, false));
	case '"':
		v = new_value(JSON_STRING);
		if ((v->str = parse_string(jp)) == NULL) {
			free(v);
			return (NULL);
		}
		return (v);
	case 't':
	case 'f':
		if (match_word(jp, "true") || match_word(jp, "false")) {
			v = new_value(JSON_BOOL);
			v->boolean = jp->p[-1] == 'e' && jp->p[-2] == 'u';
			return (v);
		}
		break;
	case 'n':
		if (match_word(jp, "null"))
			return (new_value(JSON_NULL));
		break;
	default:
		n = 0;
		while (jp->p + n < jp->end && n < sizeof num - 1 &&
		    strchr("+-0123456789.eE", jp->p[n]) != NULL)
			n++;
		if (n == 0)
			break;
		memcpy(num, jp->p, n);
		num[n] = '\0';
		v = new_value(JSON_NUMBER);
		v->num = strtod(num, &ep);
		if (*ep != '\0') {
			free(v);
			break;
		}
		jp->p += n;
		return (v);
	}
	jp_fail(jp, "unexpected character");
	return (NULL);
}

struct json_value *
json_parse(const char *s, size_t len, char **cause)
{
	struct jp		 jp;
	struct json_value	*v;

	memset(&jp, 0, sizeof jp);
	jp.p = s;
	jp.end = s + len;
	v = parse_value(&jp);
	if (v != NULL) {
		skip_ws(&jp);
		if (jp.p != jp.end) {
			jp_fail(&jp, "trailing data");
			json_free(v);
			v = NULL;
		}
	}
	if (v == NULL) {
		if (cause != NULL)
			*cause = jp.err;
		else
			free(jp.err);
	}
	return (v);
}

void
json_free(struct json_value *v)
{
	struct json_value	*next;

	while (v != NULL) {
		next = v->next;
		json_free(v->child);
		free(v->key);
		free(v->str);
		free(v);
		v = next;
	}
}

const struct json_value *
json_get(const struct json_value *obj, const char *key)
{
	const struct json_value	*v;

	if (obj == NULL || obj->type != JSON_OBJECT)
		return (NULL);
	for (v = obj->child; v != NULL; v = v->next)
		if (v->key != NULL && strcmp(v->key, key) == 0)
			return (v);
	return (NULL);
}

const char *
json_get_str(const struct json_value *obj, const char *key, const char *def)
{
	const struct json_value	*v = json_get(obj, key);

	return (v != NULL && v->type == JSON_STRING ? v->str : def);
}

double
json_get_num(const struct json_value *obj, const char *key, double def)
{
	const struct json_value	*v = json_get(obj, key);

	return (v != NULL && v->type == JSON_NUMBER ? v->num : def);
}

bool
json_get_bool(const struct json_value *obj, const char *key, bool def)
{
	const struct json_value	*v = json_get(obj, key);

	return (v != NULL && v->type == JSON_BOOL ? v->boolean : def);
}
