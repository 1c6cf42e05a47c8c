/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Graph subscriptions, the validation handshake, change and lifecycle
 * notifications.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "graph/graph_sub.h"
#include "graph/graph_cal.h"
#include "graph/gjson.h"
#include "base/buf.h"
#include "base/json.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

int64_t
graph_sub_max_expiry(int64_t now)
{
	return (now + (int64_t)GRAPH_SUB_MAX_MINUTES * 60 -
	    GRAPH_SUB_MARGIN_S);
}

/* The resource path for user ("/users/{user}/events"). */
static void
graph_sub_resource(struct buf *b, const char *user)
{
	buf_puts(b, "/users/");
	graph_put_segment(b, user);
	buf_puts(b, "/events");
}

void
graph_sub_url(struct buf *b, const char *base, const char *id)
{
	buf_puts(b, base != NULL ? base : GRAPH_DEFAULT_URL);
	buf_puts(b, "/subscriptions");
	if (id != NULL) {
		buf_putc(b, '/');
		graph_put_segment(b, id);
	}
}

void
graph_sub_create_body(struct buf *b, const struct graph_sub_req *r)
{
	struct json_writer	 w;
	struct buf		 res = BUF_INIT;
	char			 exp[TIME_ISO8601_LEN];

	graph_sub_resource(&res, r->user);
	time_format_iso8601(r->expires, exp);
	json_writer_init(&w, b);
	json_obj_begin(&w);
	json_kv_str(&w, "changeType", r->change_type != NULL ?
	    r->change_type : "created,updated,deleted");
	json_kv_str(&w, "notificationUrl", r->notification_url);
	if (r->lifecycle_url != NULL)
		json_kv_str(&w, "lifecycleNotificationUrl", r->lifecycle_url);
	json_kv_str(&w, "resource", buf_str(&res));
	json_kv_str(&w, "expirationDateTime", exp);
	json_kv_str(&w, "clientState", r->client_state);
	json_obj_end(&w);
	buf_free(&res);
}

void
graph_sub_renew_body(struct buf *b, int64_t expires)
{
	struct json_writer	 w;
	char			 exp[TIME_ISO8601_LEN];

	time_format_iso8601(expires, exp);
	json_writer_init(&w, b);
	json_obj_begin(&w);
	json_kv_str(&w, "expirationDateTime", exp);
	json_obj_end(&w);
}

static int
graph_time(const gjson_t *o, const char *key, int64_t *out)
{
	const char	*s = gjson_str(o, key);

	if (s == NULL)
		return (-1);
	return (time_parse_iso8601(s, strlen(s), out));
}

int
graph_parse_subscription(const char *s, size_t len,
    struct graph_subscription *sub, char **cause)
{
	gjson_t	*root;
	int	 rc = -1;

	memset(sub, 0, sizeof *sub);
	if ((root = gjson_parse(s, len, 64 * 1024, cause)) == NULL)
		return (-1);
	if (gjson_str(root, "id") == NULL || gjson_str(root, "id")[0] == '\0') {
		*cause = xstrdup("subscription without id");
		goto out;
	}
	if (graph_time(root, "expirationDateTime", &sub->expires) != 0) {
		*cause = xstrdup("subscription without a usable "
		    "expirationDateTime");
		goto out;
	}
	sub->id = gjson_strdup(root, "id");
	sub->resource = gjson_strdup(root, "resource");
	sub->change_type = gjson_strdup(root, "changeType");
	rc = 0;
out:
	gjson_free(root);
	return (rc);
}

void
graph_subscription_free(struct graph_subscription *sub)
{
	free(sub->id);
	free(sub->resource);
	free(sub->change_type);
	memset(sub, 0, sizeof *sub);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (c - 'A' + 10);
	return (-1);
}

int
graph_validation_token(const char *q, size_t len, char **token)
{
	static const char	 key[] = "validationToken=";
	const char		*p, *end = q + len, *v, *ve;
	struct buf		 b = BUF_INIT;
	int			 h, l;

	*token = NULL;
	for (p = q; p < end; ) {
		const char *amp = memchr(p, '&', (size_t)(end - p));

		ve = amp != NULL ? amp : end;
		if ((size_t)(ve - p) >= sizeof key - 1 &&
		    memcmp(p, key, sizeof key - 1) == 0) {
			v = p + sizeof key - 1;
			goto found;
		}
		p = amp != NULL ? amp + 1 : end;
	}
	return (0);
found:
	for (; v < ve; v++) {
		char	 c = *v;

		if (c == '+')
			c = ' ';
		else if (c == '%') {
			if (ve - v < 3 || (h = hexval(v[1])) < 0 ||
			    (l = hexval(v[2])) < 0)
				goto bad;
			c = (char)(h << 4 | l);
			v += 2;
		}
		if ((unsigned char)c < 0x20 || c == 0x7f)
			goto bad;
		buf_putc(&b, c);
		if (b.len > GRAPH_VALIDATION_MAX)
			goto bad;
	}
	if (b.len == 0)
		goto bad;
	*token = buf_steal(&b);
	return (1);
bad:
	buf_free(&b);
	return (-1);
}

bool
graph_secret_eq(const char *a, const char *b)
{
	size_t		 la = strlen(a), lb = strlen(b), i;
	unsigned char	 d = la != lb;

	/* Walk the expected secret's length whatever the other's. */
	for (i = 0; i < lb; i++)
		d |= (unsigned char)(b[i] ^ (i < la ? a[i] : 0));
	return (d == 0);
}

const char *
graph_notif_kind_name(enum graph_notif_kind k)
{
	switch (k) {
	case GRAPH_NOTIF_CHANGE:	return ("change");
	case GRAPH_NOTIF_REAUTHORIZE:	return ("reauthorizationRequired");
	case GRAPH_NOTIF_REMOVED:	return ("subscriptionRemoved");
	case GRAPH_NOTIF_MISSED:	return ("missed");
	default:			return ("unknown");
	}
}

static enum graph_change
graph_change(const char *s)
{
	if (s == NULL)
		return (GRAPH_CHANGE_OTHER);
	if (strcmp(s, "created") == 0)
		return (GRAPH_CHANGE_CREATED);
	if (strcmp(s, "updated") == 0)
		return (GRAPH_CHANGE_UPDATED);
	if (strcmp(s, "deleted") == 0)
		return (GRAPH_CHANGE_DELETED);
	return (GRAPH_CHANGE_OTHER);
}

int
graph_parse_notifications(const char *s, size_t len, const char *state,
    struct graph_notifs *out, char **cause)
{
	gjson_t			*root;
	const gjson_t		*arr, *e, *rd;
	struct graph_notif	*n;
	const char		*cs, *lc;
	size_t			 i;

	memset(out, 0, sizeof *out);
	if ((root = gjson_parse(s, len, GRAPH_NOTIFY_MAX_DOC, cause)) == NULL)
		return (-1);
	if ((arr = gjson_arr(root, "value")) == NULL) {
		gjson_free(root);
		*cause = xstrdup("no \"value\" array");
		return (-1);
	}
	out->v = xreallocarray(NULL, gjson_size(arr) + 1,
	    sizeof *out->v);
	for (i = 0; i < gjson_size(arr); i++) {
		e = gjson_at(arr, i);
		if (!gjson_is_object(e) || gjson_str(e, "subscriptionId") ==
		    NULL) {
			out->bad_shape++;
			continue;
		}
		cs = gjson_str(e, "clientState");
		if (state == NULL || cs == NULL ||
		    !graph_secret_eq(cs, state)) {
			out->bad_state++;
			continue;
		}
		n = &out->v[out->n++];
		memset(n, 0, sizeof *n);
		if ((lc = gjson_str(e, "lifecycleEvent")) == NULL)
			n->kind = GRAPH_NOTIF_CHANGE;
		else if (strcmp(lc, "reauthorizationRequired") == 0)
			n->kind = GRAPH_NOTIF_REAUTHORIZE;
		else if (strcmp(lc, "subscriptionRemoved") == 0)
			n->kind = GRAPH_NOTIF_REMOVED;
		else if (strcmp(lc, "missed") == 0)
			n->kind = GRAPH_NOTIF_MISSED;
		else
			n->kind = GRAPH_NOTIF_UNKNOWN;
		n->change = graph_change(gjson_str(e, "changeType"));
		n->subscription_id = gjson_strdup(e, "subscriptionId");
		n->resource = gjson_strdup(e, "resource");
		n->tenant_id = gjson_strdup(e, "tenantId");
		if ((rd = gjson_obj(e, "resourceData")) != NULL)
			n->item_id = gjson_strdup(rd, "id");
		if (graph_time(e, "subscriptionExpirationDateTime",
		    &n->sub_expires) != 0)
			n->sub_expires = 0;
	}
	gjson_free(root);
	return (0);
}

void
graph_notifs_free(struct graph_notifs *ns)
{
	size_t	 i;

	for (i = 0; i < ns->n; i++) {
		free(ns->v[i].subscription_id);
		free(ns->v[i].resource);
		free(ns->v[i].item_id);
		free(ns->v[i].tenant_id);
	}
	free(ns->v);
	memset(ns, 0, sizeof *ns);
}
