/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Bounded JSON parsing on Jansson: a linear depth pre-scan, a size cap,
 * strict decoding with duplicate members refused, typed getters.  The
 * only file that includes <jansson.h>.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "graph/gjson.h"
#include "base/xmalloc.h"

/*
 * Nesting depth of a JSON text, counting brackets outside strings; one
 * pass, no allocation.  Stops as soon as max is exceeded.
 */
static int
gjson_depth(const char *s, size_t len, int max)
{
	size_t	 i;
	int	 depth = 0, top = 0;
	int	 in_str = 0, esc = 0;

	for (i = 0; i < len; i++) {
		char	 c = s[i];

		if (in_str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		switch (c) {
		case '"':
			in_str = 1;
			break;
		case '[':
		case '{':
			if (++depth > top)
				top = depth;
			if (top > max)
				return (top);
			break;
		case ']':
		case '}':
			depth--;
			break;
		}
	}
	return (top);
}

gjson_t *
gjson_parse(const char *s, size_t len, size_t max, char **cause)
{
	json_error_t	 e;
	json_t		*j;

	if (max == 0)
		max = GJSON_MAX_DOC;
	if (s == NULL || len == 0) {
		*cause = xstrdup("empty document");
		return (NULL);
	}
	if (len > max) {
		xasprintf(cause, "document of %zu bytes, more than %zu", len,
		    max);
		return (NULL);
	}
	if (gjson_depth(s, len, GJSON_MAX_DEPTH) > GJSON_MAX_DEPTH) {
		xasprintf(cause, "nested deeper than %d", GJSON_MAX_DEPTH);
		return (NULL);
	}
	if ((j = json_loadb(s, len, JSON_REJECT_DUPLICATES, &e)) == NULL) {
		xasprintf(cause, "bad JSON at %d:%d: %.120s", e.line, e.column,
		    e.text);
		return (NULL);
	}
	if (!json_is_object(j)) {
		json_decref(j);
		*cause = xstrdup("not a JSON object");
		return (NULL);
	}
	return (j);
}

void
gjson_free(gjson_t *j)
{
	json_decref(j);
}

bool
gjson_is_null(const gjson_t *v)
{
	return (v == NULL || json_is_null(v));
}

bool
gjson_is_object(const gjson_t *v)
{
	return (v != NULL && json_is_object(v));
}

const char *
gjson_string(const gjson_t *v)
{
	return (v != NULL && json_is_string(v) ? json_string_value(v) : NULL);
}

int
gjson_integer(const gjson_t *v, int64_t *out)
{
	if (v == NULL || !json_is_integer(v))
		return (-1);
	*out = (int64_t)json_integer_value(v);
	return (0);
}

size_t
gjson_size(const gjson_t *arr)
{
	return (arr != NULL && json_is_array(arr) ? json_array_size(arr) : 0);
}

const gjson_t *
gjson_at(const gjson_t *arr, size_t i)
{
	return (arr != NULL && json_is_array(arr) ? json_array_get(arr, i) :
	    NULL);
}

const char *
gjson_next(const gjson_t *obj, void **iter, const gjson_t **val)
{
	const char	*k;

	if (obj == NULL || !json_is_object(obj))
		return (NULL);
	/* Jansson's iterators take a non-const object; it is not changed. */
	*iter = *iter == NULL ? json_object_iter((json_t *)(uintptr_t)obj) :
	    json_object_iter_next((json_t *)(uintptr_t)obj, *iter);
	if (*iter == NULL)
		return (NULL);
	k = json_object_iter_key(*iter);
	*val = json_object_iter_value(*iter);
	return (k);
}

char *
gjson_dump(const gjson_t *v)
{
	char	*s, *c;

	if ((s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL)
		return (xstrdup("null"));
	c = xstrdup(s);		/* ours are freed with free(), as Jansson's */
	free(s);
	return (c);
}

const gjson_t *
gjson_get(const gjson_t *obj, const char *key)
{
	if (obj == NULL || !json_is_object(obj))
		return (NULL);
	return (json_object_get(obj, key));
}

const char *
gjson_str(const gjson_t *obj, const char *key)
{
	return (gjson_string(gjson_get(obj, key)));
}

bool
gjson_bool(const gjson_t *obj, const char *key, bool dflt)
{
	const json_t	*v = gjson_get(obj, key);

	if (v == NULL || !json_is_boolean(v))
		return (dflt);
	return (json_is_true(v));
}

int64_t
gjson_int(const gjson_t *obj, const char *key, int64_t dflt)
{
	int64_t	 n;

	return (gjson_integer(gjson_get(obj, key), &n) == 0 ? n : dflt);
}

const gjson_t *
gjson_obj(const gjson_t *obj, const char *key)
{
	const json_t	*v = gjson_get(obj, key);

	return (v != NULL && json_is_object(v) ? v : NULL);
}

const gjson_t *
gjson_arr(const gjson_t *obj, const char *key)
{
	const json_t	*v = gjson_get(obj, key);

	return (v != NULL && json_is_array(v) ? v : NULL);
}

char *
gjson_strdup(const gjson_t *obj, const char *key)
{
	const char	*s = gjson_str(obj, key);

	return (s != NULL ? xstrdup(s) : NULL);
}
