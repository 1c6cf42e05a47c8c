/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * etcd v3 JSON gateway messages: request bodies and answer parsing.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/xmalloc.h"
#include "cluster/etcd_msg.h"

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void	 put_b64(struct json_writer *, const char *, const char *);
static void	 put_i64(struct json_writer *, const char *, int64_t);
static void	 put_cmp(struct json_writer *, const struct etcd_cmp *);
static void	 put_range(struct json_writer *, const char *, const char *,
		    int64_t);
static void	 one_i64(struct buf *, const char *, int64_t);
static int	 get_i64(const struct json_value *, const char *, int64_t *);
static int	 get_b64(const struct json_value *, const char *, char **,
		    size_t *);
static int	 parse_kv(const struct json_value *, struct etcd_kv *,
		    char **);
static int	 parse_kvs(const struct json_value *, struct etcd_resp *,
		    char **);
static int	 parse_events(const struct json_value *, struct etcd_resp *,
		    char **);
static void	 kv_free(struct etcd_kv *);

/* ---- base64 ---- */

void
etcd_b64_encode(struct buf *out, const void *data, size_t len)
{
	const unsigned char	*p = data;
	char			 q[4];
	uint32_t		 v;
	size_t			 i;

	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		q[0] = b64chars[v >> 18];
		q[1] = b64chars[(v >> 12) & 63];
		q[2] = b64chars[(v >> 6) & 63];
		q[3] = b64chars[v & 63];
		buf_append(out, q, 4);
	}
	if (i < len) {
		v = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		q[0] = b64chars[v >> 18];
		q[1] = b64chars[(v >> 12) & 63];
		q[2] = i + 1 < len ? b64chars[(v >> 6) & 63] : '=';
		q[3] = '=';
		buf_append(out, q, 4);
	}
}

int
etcd_b64_decode(const char *s, size_t len, struct buf *out)
{
	const char	*c;
	uint32_t	 v = 0;
	size_t		 i, pad = 0;
	int		 n = 0;
	char		 o[3];

	if (len % 4 != 0)
		return (-1);
	if (len > 0 && s[len - 1] == '=')
		pad = len > 1 && s[len - 2] == '=' ? 2 : 1;
	for (i = 0; i < len - pad; i++) {
		if (s[i] == '\0' || (c = strchr(b64chars, s[i])) == NULL)
			return (-1);
		v = v << 6 | (uint32_t)(c - b64chars);
		if (++n == 4) {
			o[0] = (char)(v >> 16);
			o[1] = (char)(v >> 8);
			o[2] = (char)v;
			buf_append(out, o, 3);
			v = 0;
			n = 0;
		}
	}
	if (pad == 2) {
		/* n == 2: 12 bits, 8 used, the rest must be zero. */
		if ((v & 0xf) != 0)
			return (-1);
		o[0] = (char)(v >> 4);
		buf_append(out, o, 1);
	} else if (pad == 1) {
		if ((v & 0x3) != 0)
			return (-1);
		o[0] = (char)(v >> 10);
		o[1] = (char)(v >> 2);
		buf_append(out, o, 2);
	}
	return (0);
}

char *
etcd_prefix_end(const char *prefix)
{
	char	*end = xstrdup(prefix);
	size_t	 n = strlen(end);

	while (n > 0) {
		if ((unsigned char)end[n - 1] < 0xff) {
			end[n - 1]++;
			end[n] = '\0';
			return (end);
		}
		n--;
	}
	free(end);
	return (NULL);
}

/* ---- request bodies ---- */

static void
put_b64(struct json_writer *w, const char *name, const char *s)
{
	struct buf	 b = BUF_INIT;

	etcd_b64_encode(&b, s, strlen(s));
	json_kv_str(w, name, buf_str(&b));
	buf_free(&b);
}

/* int64 fields go as strings, as the gateway writes them. */
static void
put_i64(struct json_writer *w, const char *name, int64_t v)
{
	char	 s[24];

	snprintf(s, sizeof s, "%lld", (long long)v);
	json_kv_str(w, name, s);
}

static void
put_range(struct json_writer *w, const char *key, const char *end,
    int64_t revision)
{
	put_b64(w, "key", key);
	if (end != NULL)
		put_b64(w, "range_end", end);
	if (revision > 0)
		put_i64(w, "revision", revision);
}

void
etcd_msg_range(struct buf *out, const char *key, const char *end,
    int64_t revision)
{
	struct json_writer	 w;

	json_writer_init(&w, out);
	json_obj_begin(&w);
	put_range(&w, key, end, revision);
	json_obj_end(&w);
}

void
etcd_msg_range_page(struct buf *out, const char *key, const char *end,
    int64_t revision, int64_t limit, int64_t min_mod_revision)
{
	struct json_writer	 w;

	json_writer_init(&w, out);
	json_obj_begin(&w);
	put_range(&w, key, end, revision);
	if (limit > 0)
		put_i64(&w, "limit", limit);
	if (min_mod_revision > 0)
		put_i64(&w, "min_mod_revision", min_mod_revision);
	json_obj_end(&w);
}

void
etcd_msg_put(struct buf *out, const char *key, const char *value,
    int64_t lease)
{
	struct json_writer	 w;

	json_writer_init(&w, out);
	json_obj_begin(&w);
	put_b64(&w, "key", key);
	put_b64(&w, "value", value);
	if (lease != 0)
		put_i64(&w, "lease", lease);
	json_obj_end(&w);
}

static void
put_cmp(struct json_writer *w, const struct etcd_cmp *c)
{
	static const char *const targets[] = {
		"VERSION", "CREATE", "MOD", "LEASE"
	};
	static const char *const fields[] = {
		"version", "create_revision", "mod_revision", "lease"
	};
	static const char *const results[] = {
		"EQUAL", "GREATER", "LESS", "NOT_EQUAL"
	};

	json_obj_begin(w);
	json_kv_str(w, "target", targets[c->target]);
	json_kv_str(w, "result", results[c->result]);
	put_b64(w, "key", c->key);
	if (c->range_end != NULL)
		put_b64(w, "range_end", c->range_end);
	put_i64(w, fields[c->target], c->value);
	json_obj_end(w);
}

void
etcd_msg_txn_put(struct buf *out, const struct etcd_cmp *cmp,
    const char *key, const char *value, int64_t lease, const char *fail_key,
    const char *fail_end)
{
	struct json_writer	 w;

	json_writer_init(&w, out);
	json_obj_begin(&w);
	json_key(&w, "compare");
	json_arr_begin(&w);
	put_cmp(&w, cmp);
	json_arr_end(&w);
	json_key(&w, "success");
	json_arr_begin(&w);
	json_obj_begin(&w);
	json_key(&w, "request_put");
	json_obj_begin(&w);
	put_b64(&w, "key", key);
	put_b64(&w, "value", value);
	if (lease != 0)
		put_i64(&w, "lease", lease);
	json_obj_end(&w);
	json_obj_end(&w);
	json_arr_end(&w);
	if (fail_key != NULL) {
		json_key(&w, "failure");
		json_arr_begin(&w);
		json_obj_begin(&w);
		json_key(&w, "request_range");
		json_obj_begin(&w);
		put_range(&w, fail_key, fail_end, 0);
		json_obj_end(&w);
		json_obj_end(&w);
		json_arr_end(&w);
	}
	json_obj_end(&w);
}

void
etcd_msg_txn_puts(struct buf *out, const char *const *keys,
    const char *const *values, size_t n)
{
	struct json_writer	 w;
	size_t			 i;

	json_writer_init(&w, out);
	json_obj_begin(&w);
	json_key(&w, "success");
	json_arr_begin(&w);
	for (i = 0; i < n; i++) {
		json_obj_begin(&w);
		json_key(&w, "request_put");
		json_obj_begin(&w);
		put_b64(&w, "key", keys[i]);
		put_b64(&w, "value", values[i]);
		json_obj_end(&w);
		json_obj_end(&w);
	}
	json_arr_end(&w);
	json_obj_end(&w);
}

/* {"name": "v"}: the lease requests carry one number each. */
static void
one_i64(struct buf *out, const char *name, int64_t v)
{
	struct json_writer	 w;

	json_writer_init(&w, out);
	json_obj_begin(&w);
	put_i64(&w, name, v);
	json_obj_end(&w);
}

void
etcd_msg_lease_grant(struct buf *out, int64_t ttl_s)
{
	one_i64(out, "TTL", ttl_s);
}

void
etcd_msg_lease_id(struct buf *out, int64_t id)
{
	one_i64(out, "ID", id);
}

void
etcd_msg_watch(struct buf *out, const char *key, const char *end,
    int64_t start_revision)
{
	struct json_writer	 w;

	json_writer_init(&w, out);
	json_obj_begin(&w);
	json_key(&w, "create_request");
	json_obj_begin(&w);
	put_b64(&w, "key", key);
	if (end != NULL)
		put_b64(&w, "range_end", end);
	if (start_revision > 0)
		put_i64(&w, "start_revision", start_revision);
	json_obj_end(&w);
	json_obj_end(&w);
}

/* ---- answers ---- */

/* A decimal string or a JSON integer; absent is 0.  -1 if malformed. */
static int
get_i64(const struct json_value *obj, const char *name, int64_t *out)
{
	const struct json_value	*v = json_get(obj, name);
	const char		*digits;
	long long		 ll;
	char			*ep;

	*out = 0;
	if (v == NULL)
		return (0);
	if (v->type == JSON_NUMBER) {
		if (v->num != v->num || v->num < -9.2e18 || v->num > 9.2e18 ||
		    (double)(int64_t)v->num != v->num)
			return (-1);
		*out = (int64_t)v->num;
		return (0);
	}
	if (v->type != JSON_STRING)
		return (-1);
	digits = v->str + (v->str[0] == '-');
	if (*digits == '\0' || strspn(digits, "0123456789") != strlen(digits))
		return (-1);
	errno = 0;
	ll = strtoll(v->str, &ep, 10);
	if (errno != 0 || *ep != '\0')
		return (-1);
	*out = ll;
	return (0);
}

/* A base64 member; absent is empty.  -1 if malformed. */
static int
get_b64(const struct json_value *obj, const char *name, char **out,
    size_t *len)
{
	const struct json_value	*v = json_get(obj, name);
	struct buf		 b = BUF_INIT;

	*out = NULL;
	*len = 0;
	if (v != NULL && v->type != JSON_STRING)
		return (-1);
	if (v != NULL && etcd_b64_decode(v->str, strlen(v->str), &b) == -1) {
		buf_free(&b);
		return (-1);
	}
	*len = b.len;
	*out = buf_steal(&b);
	return (0);
}

static int
parse_kv(const struct json_value *o, struct etcd_kv *kv, char **cause)
{
	memset(kv, 0, sizeof *kv);
	if (o->type != JSON_OBJECT || json_get(o, "key") == NULL) {
		*cause = xstrdup("key-value without a key");
		return (-1);
	}
	if (get_b64(o, "key", &kv->key, &kv->keylen) == -1 ||
	    get_b64(o, "value", &kv->value, &kv->valuelen) == -1) {
		*cause = xstrdup("bad base64 in a key-value");
		return (-1);
	}
	if (get_i64(o, "create_revision", &kv->create_revision) == -1 ||
	    get_i64(o, "mod_revision", &kv->mod_revision) == -1 ||
	    get_i64(o, "version", &kv->version) == -1 ||
	    get_i64(o, "lease", &kv->lease) == -1) {
		*cause = xstrdup("bad number in a key-value");
		return (-1);
	}
	return (0);
}

/* Append the key-values of array a (NULL: none). */
static int
parse_kvs(const struct json_value *a, struct etcd_resp *r, char **cause)
{
	const struct json_value	*v;
	size_t			 n;

	if (a == NULL)
		return (0);
	if (a->type != JSON_ARRAY) {
		*cause = xstrdup("kvs is not an array");
		return (-1);
	}
	for (n = 0, v = a->child; v != NULL; v = v->next)
		n++;
	if (n == 0)
		return (0);
	r->kvs = xreallocarray(r->kvs, r->nkvs + n, sizeof *r->kvs);
	for (v = a->child; v != NULL; v = v->next) {
		if (parse_kv(v, &r->kvs[r->nkvs], cause) == -1) {
			kv_free(&r->kvs[r->nkvs]);
			return (-1);
		}
		r->nkvs++;
	}
	return (0);
}

static int
parse_events(const struct json_value *a, struct etcd_resp *r, char **cause)
{
	const struct json_value	*v, *kv;
	const char		*type;
	size_t			 n;

	if (a == NULL)
		return (0);
	if (a->type != JSON_ARRAY) {
		*cause = xstrdup("events is not an array");
		return (-1);
	}
	for (n = 0, v = a->child; v != NULL; v = v->next)
		n++;
	if (n == 0)
		return (0);
	r->events = xcalloc(n, sizeof *r->events);
	for (v = a->child; v != NULL; v = v->next) {
		if (v->type != JSON_OBJECT ||
		    (kv = json_get(v, "kv")) == NULL) {
			*cause = xstrdup("event without a key-value");
			return (-1);
		}
		type = json_get_str(v, "type", "PUT");
		if (strcmp(type, "PUT") != 0 && strcmp(type, "DELETE") != 0) {
			*cause = xstrdup("unknown event type");
			return (-1);
		}
		r->events[r->nevents].deleted = strcmp(type, "DELETE") == 0;
		if (parse_kv(kv, &r->events[r->nevents].kv, cause) == -1) {
			kv_free(&r->events[r->nevents].kv);
			return (-1);
		}
		r->nevents++;
	}
	return (0);
}

int
etcd_resp_parse(const char *s, size_t len, struct etcd_resp *r, char **cause)
{
	struct json_value	*top;
	const struct json_value	*o, *e, *h, *v, *rr;
	int64_t			 code;
	int			 rc = -1;

	memset(r, 0, sizeof *r);
	*cause = NULL;
	if (len > ETCD_MSG_MAX) {
		*cause = xstrdup("answer too large");
		return (-1);
	}
	if ((top = json_parse(s, len, cause)) == NULL)
		return (-1);
	if (top->type != JSON_OBJECT) {
		*cause = xstrdup("answer is not a JSON object");
		goto out;
	}
	o = top;
	if ((e = json_get(top, "error")) != NULL) {
		/* Unary: {"error": "...", "code": N}; stream: {"error": {}}. */
		r->error = true;
		if (e->type == JSON_OBJECT)
			o = e;
		if (get_i64(o, "grpc_code", &code) == -1 ||
		    (code == 0 && get_i64(o, "code", &code) == -1) ||
		    code < 0 || code > 64) {
			*cause = xstrdup("bad error code");
			goto out;
		}
		r->code = (int)code;
		v = json_get(o, "message");
		if (v == NULL || v->type != JSON_STRING)
			v = e->type == JSON_STRING ? e : NULL;
		r->message = xstrdup(v != NULL ? v->str : "unknown error");
		rc = 0;
		goto out;
	}
	if ((v = json_get(top, "result")) != NULL) {
		if (v->type != JSON_OBJECT) {
			*cause = xstrdup("result is not an object");
			goto out;
		}
		o = v;
	}
	if ((h = json_get(o, "header")) != NULL &&
	    (h->type != JSON_OBJECT || get_i64(h, "revision",
	    &r->revision) == -1)) {
		*cause = xstrdup("bad header");
		goto out;
	}
	if (get_i64(o, "ID", &r->id) == -1 ||
	    get_i64(o, "TTL", &r->ttl) == -1 ||
	    get_i64(o, "compact_revision", &r->compact_revision) == -1) {
		*cause = xstrdup("bad number");
		goto out;
	}
	r->succeeded = json_get_bool(o, "succeeded", false);
	r->more = json_get_bool(o, "more", false);
	r->created = json_get_bool(o, "created", false);
	r->canceled = json_get_bool(o, "canceled", false);
	if (parse_kvs(json_get(o, "kvs"), r, cause) == -1 ||
	    parse_events(json_get(o, "events"), r, cause) == -1)
		goto out;
	if ((v = json_get(o, "responses")) != NULL) {
		if (v->type != JSON_ARRAY) {
			*cause = xstrdup("responses is not an array");
			goto out;
		}
		for (v = v->child; v != NULL; v = v->next) {
			if (v->type != JSON_OBJECT) {
				*cause = xstrdup("bad txn response");
				goto out;
			}
			if ((rr = json_get(v, "response_range")) != NULL &&
			    (rr->type != JSON_OBJECT ||
			    parse_kvs(json_get(rr, "kvs"), r, cause) == -1)) {
				if (*cause == NULL)
					*cause = xstrdup("bad range response");
				goto out;
			}
		}
	}
	rc = 0;
out:
	json_free(top);
	return (rc);
}

static void
kv_free(struct etcd_kv *kv)
{
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof *kv);
}

void
etcd_resp_free(struct etcd_resp *r)
{
	size_t	 i;

	for (i = 0; i < r->nkvs; i++)
		kv_free(&r->kvs[i]);
	free(r->kvs);
	for (i = 0; i < r->nevents; i++)
		kv_free(&r->events[i].kv);
	free(r->events);
	free(r->message);
	memset(r, 0, sizeof *r);
}
