/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * JSON $batch bodies and answers.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "graph/graph_batch.h"
#include "graph/gjson.h"
#include "graph/graph_error.h"
#include "base/buf.h"
#include "base/json.h"
#include "base/xmalloc.h"

int
graph_batch_body(struct buf *b, const struct graph_batch_req *r, size_t n,
    char **cause)
{
	struct json_writer	 w;
	size_t			 i, j;
	gjson_t			*body;
	char			*jc = NULL;

	if (n == 0 || n > GRAPH_BATCH_MAX) {
		xasprintf(cause, "a batch holds 1 to %d requests, not %zu",
		    GRAPH_BATCH_MAX, n);
		return (-1);
	}
	for (i = 0; i < n; i++) {
		if (r[i].id == NULL || r[i].id[0] == '\0' ||
		    r[i].method == NULL || r[i].url == NULL ||
		    r[i].url[0] != '/') {
			xasprintf(cause, "batch request %zu: needs an id, a "
			    "method and a relative url", i);
			return (-1);
		}
		for (j = 0; j < i; j++)
			if (strcmp(r[i].id, r[j].id) == 0) {
				xasprintf(cause, "batch id %.40s twice",
				    r[i].id);
				return (-1);
			}
		if (r[i].body != NULL) {
			body = gjson_parse(r[i].body, strlen(r[i].body), 0,
			    &jc);
			if (body == NULL) {
				xasprintf(cause, "batch request %.40s: body: "
				    "%s", r[i].id, jc);
				free(jc);
				return (-1);
			}
			gjson_free(body);
		}
	}
	json_writer_init(&w, b);
	json_obj_begin(&w);
	json_key(&w, "requests");
	json_arr_begin(&w);
	for (i = 0; i < n; i++) {
		json_obj_begin(&w);
		json_kv_str(&w, "id", r[i].id);
		json_kv_str(&w, "method", r[i].method);
		json_kv_str(&w, "url", r[i].url);
		if (r[i].body != NULL || r[i].prefer != NULL) {
			json_key(&w, "headers");
			json_obj_begin(&w);
			if (r[i].body != NULL)
				json_kv_str(&w, "Content-Type",
				    "application/json");
			if (r[i].prefer != NULL)
				json_kv_str(&w, "Prefer", r[i].prefer);
			json_obj_end(&w);
		}
		if (r[i].body != NULL) {
			/* Checked above: an object's text, spliced in. */
			json_key(&w, "body");
			json_raw(&w, r[i].body);
		}
		json_obj_end(&w);
	}
	json_arr_end(&w);
	json_obj_end(&w);
	return (0);
}

int
graph_parse_batch(const char *s, size_t len, struct graph_batch *out,
    char **cause)
{
	gjson_t			*root;
	const gjson_t		*arr, *e, *h, *body, *hv;
	int64_t			 st;
	struct graph_batch_resp	*r;
	const char		*ra;
	size_t			 i;

	memset(out, 0, sizeof *out);
	if ((root = gjson_parse(s, len, 0, cause)) == NULL)
		return (-1);
	if ((arr = gjson_arr(root, "responses")) == NULL ||
	    gjson_size(arr) > GRAPH_BATCH_MAX) {
		gjson_free(root);
		*cause = xstrdup("no \"responses\" array of at most 20");
		return (-1);
	}
	out->v = xcalloc(gjson_size(arr) + 1, sizeof *out->v);
	for (i = 0; i < gjson_size(arr); i++) {
		e = gjson_at(arr, i);
		if (!gjson_is_object(e) || gjson_str(e, "id") == NULL ||
		    gjson_integer(gjson_get(e, "status"), &st) != 0 ||
		    st < 100 || st > 599)
			continue;
		r = &out->v[out->n++];
		r->id = gjson_strdup(e, "id");
		r->status = (int)st;
		r->retry_after_s = -1;
		if ((h = gjson_obj(e, "headers")) != NULL) {
			const char	*k;
			void		*it = NULL;

			while ((k = gjson_next(h, &it, &hv)) != NULL) {
				if (strcasecmp(k, "Retry-After") != 0)
					continue;
				if (gjson_integer(hv, &r->retry_after_s) != 0 &&
				    (ra = gjson_string(hv)) != NULL)
					r->retry_after_s = strtoll(ra, NULL,
					    10);
				if (r->retry_after_s < 0)
					r->retry_after_s = 0;
				if (r->retry_after_s > GRAPH_RETRY_AFTER_SAT_S)
					r->retry_after_s =
					    GRAPH_RETRY_AFTER_SAT_S;
			}
		}
		if ((body = gjson_get(e, "body")) != NULL &&
		    !gjson_is_null(body)) {
			r->body = gjson_dump(body);
			r->body_len = strlen(r->body);
		}
	}
	gjson_free(root);
	return (0);
}

const struct graph_batch_resp *
graph_batch_find(const struct graph_batch *b, const char *id)
{
	size_t	 i;

	for (i = 0; i < b->n; i++)
		if (strcmp(b->v[i].id, id) == 0)
			return (&b->v[i]);
	return (NULL);
}

void
graph_batch_free(struct graph_batch *b)
{
	size_t	 i;

	for (i = 0; i < b->n; i++) {
		free(b->v[i].id);
		free(b->v[i].body);
	}
	free(b->v);
	memset(b, 0, sizeof *b);
}
