/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Readable tables for ewsgwctl from the daemon's JSON answers, and the
 * exit status they imply.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/ctl_cmd.h"
#include "control/ctl_render.h"
#include "base/json.h"
#include "base/xmalloc.h"

/* Cells of a text table, row by row; the first row is the heading. */
struct table {
	size_t	  ncols;
	size_t	  nrows;
	size_t	  cap;		/* rows allocated */
	char	**cells;	/* nrows * ncols, allocated */
};

struct column {
	const char	*key;		/* JSON member */
	const char	*title;
};

static void	 table_init(struct table *, size_t);
static void	 table_add(struct table *, char **);
static void	 table_print(struct table *, struct buf *);
static void	 table_free(struct table *);
static char	*value_text(const struct json_value *);
static void	 sanitize(struct buf *, const char *);
static size_t	 text_width(const char *);
static void	 render_list(const struct json_value *, const char *,
		    const struct column *, size_t, struct buf *);
static void	 render_status(const struct json_value *, struct buf *);
static void	 render_mailbox(const struct json_value *, struct buf *);
static void	 render_help(const struct json_value *, struct buf *);
static void	 render_verify(const struct json_value *, struct buf *);
static void	 render_reload(const struct json_value *, struct buf *);
static void	 render_cluster(const struct json_value *, struct buf *);
static bool	 join_strings(const struct json_value *, struct buf *);
static void	 render_members(const struct json_value *, const char *,
		    struct table *);
static void	 kv(struct table *, const char *, const char *);

static const struct column mailbox_cols[] = {
	{ "address", "ADDRESS" }, { "state", "STATE" }, { "mode", "MODE" },
	{ "presence", "PRESENCE" }, { "activity", "ACTIVITY" },
	{ "until", "UNTIL" }, { "connection", "CONN" }, { "error", "ERROR" },
	{ "reason", "WHY" },
};
static const struct column connection_cols[] = {
	{ "id", "ID" }, { "anchor", "ANCHOR" }, { "subscriptions", "SUBS" },
	{ "state", "STATE" }, { "opened", "OPENED" },
	{ "last_event", "LAST EVENT" }, { "affinity_cookie", "AFFINITY" },
};
static const struct column sink_cols[] = {
	{ "name", "NAME" }, { "type", "TYPE" }, { "healthy", "HEALTHY" },
	{ "queue", "QUEUE" }, { "queue_limit", "LIMIT" },
	{ "delivered", "DELIVERED" }, { "failed", "FAILED" },
	{ "retrying", "RETRYING" }, { "last_error", "LAST ERROR" },
};
static const struct column verify_cols[] = {
	{ "verdict", "VERDICT" }, { "name", "CHECK" }, { "mailbox", "MAILBOX" },
	{ "summary", "SUMMARY" },
};
static const struct column assignment_cols[] = {
	{ "node", "NODE" }, { "self", "SELF" }, { "mailboxes", "MAILBOXES" },
	{ "concurrency", "CONCURRENCY" }, { "subscriptions", "SUBSCRIPTIONS" },
};
static const struct column timeline_cols[] = {
	{ "start", "START" }, { "end", "END" }, { "status", "STATUS" },
	{ "all_day", "ALL DAY" }, { "private", "PRIVATE" },
};

#define NITEMS(a)	(sizeof (a) / sizeof (a)[0])

static void
table_init(struct table *t, size_t ncols)
{
	t->ncols = ncols;
	t->nrows = t->cap = 0;
	t->cells = NULL;
}

/* Takes ownership of the ncols strings in row. */
static void
table_add(struct table *t, char **row)
{
	/* Doubling: 100,000 mailboxes must not mean 100,000 copies. */
	if (t->nrows == t->cap) {
		t->cap = t->cap == 0 ? 16 : t->cap * 2;
		t->cells = xreallocarray(t->cells, t->cap * t->ncols,
		    sizeof *t->cells);
	}
	memcpy(t->cells + t->nrows * t->ncols, row, t->ncols * sizeof *row);
	t->nrows++;
}

static void
table_free(struct table *t)
{
	size_t	 i;

	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

/* Display width: UTF-8 continuation bytes take no column. */
static size_t
text_width(const char *s)
{
	size_t	 n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return (n);
}

static void
table_print(struct table *t, struct buf *out)
{
	size_t	*width, r, c, w;

	width = xcalloc(t->ncols, sizeof *width);
	for (r = 0; r < t->nrows; r++)
		for (c = 0; c < t->ncols; c++) {
			w = text_width(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	for (r = 0; r < t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];

			buf_puts(out, cell);
			if (c + 1 == t->ncols)
				break;
			for (w = text_width(cell); w < width[c] + 2; w++)
				buf_putc(out, ' ');
		}
		/* No trailing blanks when the last cells are empty. */
		while (out->len > 0 && out->data[out->len - 1] == ' ')
			out->data[--out->len] = '\0';
		buf_putc(out, '\n');
	}
	free(width);
}

/* Copy s, with control characters (terminal escapes) as '?'. */
static void
sanitize(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		buf_putc(b, c < 0x20 || c == 0x7f ? '?' : (char)c);
	}
}

/* A scalar as table text (allocated); "-" for null or absent. */
static char *
value_text(const struct json_value *v)
{
	struct buf	 b = BUF_INIT;

	if (v == NULL)
		return (xstrdup("-"));
	switch (v->type) {
	case JSON_NULL:
		buf_putc(&b, '-');
		break;
	case JSON_BOOL:
		buf_puts(&b, v->boolean ? "yes" : "no");
		break;
	case JSON_NUMBER:
		if (v->num == floor(v->num) && fabs(v->num) < 1e15)
			buf_printf(&b, "%.0f", v->num);
		else
			buf_printf(&b, "%g", v->num);
		break;
	case JSON_STRING:
		sanitize(&b, v->str);
		if (b.len == 0)
			buf_putc(&b, '-');
		break;
	case JSON_ARRAY:
	case JSON_OBJECT:
		buf_puts(&b, v->type == JSON_ARRAY ? "[...]" : "{...}");
		break;
	}
	return (buf_steal(&b));
}

static void
kv(struct table *t, const char *key, const char *value)
{
	struct buf	 b = BUF_INIT;
	char		*row[2];

	sanitize(&b, key);
	row[0] = b.len == 0 ? xstrdup("") : buf_steal(&b);
	sanitize(&b, value);
	row[1] = b.len == 0 ? xstrdup("") : buf_steal(&b);
	table_add(t, row);
}

/*
 * The next line of a multi-line text into *line (allocated, without its
 * end); NULL at the end.  Empty lines are skipped.
 */
static const char *
next_line(const char *text, char **line)
{
	size_t	 n;

	while (*text == '\n')
		text++;
	if (*text == '\0')
		return (NULL);
	n = strcspn(text, "\n");
	*line = xstrndup(text, n);
	return (text + n);
}

/* Each line of text as its own row, the key on the first only. */
static void
kv_lines(struct table *t, const char *key, const char *text)
{
	char	*line;

	while ((text = next_line(text, &line)) != NULL) {
		kv(t, key, line);
		free(line);
		key = "";
	}
}

void
ctl_render_duration(struct buf *out, double seconds)
{
	long long	 s, d, h, m;

	if (!isfinite(seconds) || seconds < 0)
		seconds = 0;
	s = (long long)seconds;
	d = s / 86400;
	h = s % 86400 / 3600;
	m = s % 3600 / 60;
	s %= 60;
	if (d > 0)
		buf_printf(out, "%lldd%02lldh%02lldm%02llds", d, h, m, s);
	else if (h > 0)
		buf_printf(out, "%lldh%02lldm%02llds", h, m, s);
	else if (m > 0)
		buf_printf(out, "%lldm%02llds", m, s);
	else
		buf_printf(out, "%llds", s);
}

/* An array of objects under key as a table with the given columns. */
static void
render_list(const struct json_value *root, const char *key,
    const struct column *cols, size_t ncols, struct buf *out)
{
	const struct json_value	*arr, *item;
	struct table		 t;
	char			**row;
	size_t			 c;

	arr = json_get(root, key);
	table_init(&t, ncols);
	row = xcalloc(ncols, sizeof *row);
	for (c = 0; c < ncols; c++)
		row[c] = xstrdup(cols[c].title);
	table_add(&t, row);
	if (arr != NULL && arr->type == JSON_ARRAY)
		for (item = arr->child; item != NULL; item = item->next) {
			for (c = 0; c < ncols; c++)
				row[c] = value_text(json_get(item,
				    cols[c].key));
			table_add(&t, row);
		}
	free(row);
	table_print(&t, out);
	table_free(&t);
}

/* "U of L per W in the busiest window" of a rate budget. */
static void
rate_use(struct buf *b, const struct json_value *o, const char *used,
    const char *limit, const char *window)
{
	buf_printf(b, "%.0f of %.0f per ", json_get_num(o, used, 0),
	    json_get_num(o, limit, 0));
	ctl_render_duration(b, json_get_num(o, window, 0));
	buf_puts(b, " in the busiest window");
}

/* Graph's budgets (per app per mailbox, per app), next to Exchange's. */
static void
render_graph_budget(const struct json_value *o, struct table *t)
{
	struct buf	 b = BUF_INIT;

	buf_printf(&b, "%.0f calls, %.0f in flight, %.0f waiting; token %s",
	    json_get_num(o, "calls", 0), json_get_num(o, "in_flight", 0),
	    json_get_num(o, "waiting", 0), json_get_str(o, "token", "?"));
	if (json_get_num(o, "token_expires_s", 0) > 0) {
		buf_puts(&b, " for ");
		ctl_render_duration(&b, json_get_num(o, "token_expires_s", 0));
	}
	buf_printf(&b, " (%.0f fetched, %.0f refused)",
	    json_get_num(o, "token_fetches", 0),
	    json_get_num(o, "token_failures", 0));
	kv(t, "graph:", buf_str(&b));
	buf_reset(&b);
	buf_printf(&b, "%.0f of %.0f in flight at most, ",
	    json_get_num(o, "max_in_flight_mailbox", 0),
	    json_get_num(o, "mailbox_concurrency", 0));
	rate_use(&b, o, "max_window_requests", "mailbox_rate",
	    "mailbox_rate_window_s");
	kv(t, "graph mailbox:", buf_str(&b));
	buf_reset(&b);
	rate_use(&b, o, "max_app_window_requests", "app_rate",
	    "app_rate_window_s");
	kv(t, "graph app:", buf_str(&b));
	buf_reset(&b);
	buf_printf(&b, "%.0f answers 429/503 (%.0f retried), %.0f mailboxes "
	    "paused by Retry-After now", json_get_num(o, "throttled", 0),
	    json_get_num(o, "retries", 0), json_get_num(o, "paused", 0));
	kv(t, "graph 429:", buf_str(&b));
	buf_free(&b);
}

static void
render_status(const struct json_value *v, struct buf *out)
{
	const struct json_value	*o, *p, *budget;
	struct table		 t;
	struct buf		 b = BUF_INIT;

	table_init(&t, 2);
	buf_printf(&b, "%s, pid %.0f, up ", json_get_str(v, "version", "?"),
	    json_get_num(v, "pid", 0));
	ctl_render_duration(&b, json_get_num(v, "uptime_s", 0));
	kv(&t, "ewsgw:", buf_str(&b));
	buf_reset(&b);
	kv(&t, "config:", json_get_str(v, "config", "-"));
	kv(&t, "mode:", json_get_str(v, "mode", "-"));
	kv(&t, "health:", json_get_bool(v, "healthy", false) ? "healthy" :
	    "UNHEALTHY");
	if ((o = json_get(v, "problems")) != NULL && o->type == JSON_ARRAY)
		for (p = o->child; p != NULL; p = p->next)
			if (p->type == JSON_STRING)
				kv(&t, "problem:", p->str);
	if (join_strings(json_get(v, "restart_pending"), &b)) {
		buf_puts(&b, " changed: restart to apply");
		kv(&t, "restart:", buf_str(&b));
		buf_reset(&b);
	}
	if ((o = json_get(v, "last_reload_error")) != NULL &&
	    o->type == JSON_STRING) {
		kv(&t, "last reload:", "REJECTED, the running configuration "
		    "stays:");
		kv_lines(&t, "", o->str);
	}

	if ((o = json_get(v, "exchange")) != NULL && o->type == JSON_OBJECT) {
		buf_printf(&b, "%s, %s", json_get_str(o, "state", "?"),
		    json_get_str(o, "url", "?"));
		if (json_get_num(o, "failed_logins_total", 0) > 0)
			buf_printf(&b, ", %.0f failed logins since start",
			    json_get_num(o, "failed_logins_total", 0));
		kv(&t, "exchange:", buf_str(&b));
		buf_reset(&b);
	}
	if ((o = json_get(v, "mailboxes")) != NULL) {
		buf_printf(&b, "%.0f", json_get_num(o, "total", 0));
		if ((o = json_get(o, "by_state")) != NULL &&
		    o->type == JSON_OBJECT && o->child != NULL) {
			buf_puts(&b, " (");
			for (p = o->child; p != NULL; p = p->next)
				buf_printf(&b, "%s%s %.0f",
				    p == o->child ? "" : ", ", p->key,
				    p->type == JSON_NUMBER ? p->num : 0);
			buf_putc(&b, ')');
		}
		kv(&t, "mailboxes:", buf_str(&b));
		buf_reset(&b);
	}
	if ((budget = json_get(v, "budget")) != NULL) {
		if ((o = json_get(budget, "concurrency")) != NULL) {
			buf_printf(&b, "%.0f of %.0f in use",
			    json_get_num(o, "in_use", 0),
			    json_get_num(o, "limit", 0));
			if (json_get(budget, "short_reserved") != NULL)
				buf_printf(&b, ", %.0f reserved for short "
				    "requests", json_get_num(budget,
				    "short_reserved", 0));
			kv(&t, "concurrency:", buf_str(&b));
			buf_reset(&b);
		}
		if ((o = json_get(budget, "subscriptions")) != NULL) {
			buf_printf(&b, "%.0f of %.0f",
			    json_get_num(o, "in_use", 0),
			    json_get_num(o, "limit", 0));
			kv(&t, "subscriptions:", buf_str(&b));
			buf_reset(&b);
		}
		if ((o = json_get(budget, "streaming_connections")) != NULL) {
			buf_printf(&b, "%.0f", json_get_num(o, "open", 0));
			/* No limit of its own, e.g. charged per anchor. */
			if (json_get_num(o, "limit", 0) > 0)
				buf_printf(&b, " of %.0f",
				    json_get_num(o, "limit", 0));
			buf_puts(&b, " open");
			if (json_get_num(o, "limit", 0) <= 0 &&
			    json_get_num(o, "per_anchor_limit", 0) > 0)
				buf_printf(&b, " (at most %.0f per anchor)",
				    json_get_num(o, "per_anchor_limit", 0));
			kv(&t, "streams:", buf_str(&b));
			buf_reset(&b);
		}
		if (json_get_str(budget, "charging", NULL) != NULL)
			kv(&t, "charging:", json_get_str(budget, "charging",
			    NULL));
	}
	if ((o = json_get(v, "graph")) != NULL && o->type == JSON_OBJECT)
		render_graph_budget(o, &t);
	if ((o = json_get(v, "oof")) != NULL && o->type == JSON_OBJECT) {
		if (strcmp(json_get_str(o, "state", "off"), "off") == 0)
			buf_puts(&b, "off");
		else {
			/* The achieved cycle, and the share it is held to. */
			if ((p = json_get(o, "cycle_s")) != NULL &&
			    p->type == JSON_NUMBER) {
				buf_puts(&b, "cycle ");
				ctl_render_duration(&b, p->num);
			} else
				buf_puts(&b, "first cycle");
			buf_printf(&b, " over %.0f mailboxes, %.0f of %.0f "
			    "requests (%.0f%%)",
			    json_get_num(o, "mailboxes", 0),
			    json_get_num(o, "slots", 0),
			    json_get_num(o, "concurrency_limit", 0),
			    json_get_num(o, "share_percent", 0));
		}
		kv(&t, "oof cycle:", buf_str(&b));
		buf_reset(&b);
	}
	if ((o = json_get(v, "sinks")) != NULL) {
		buf_printf(&b, "%.0f of %.0f healthy",
		    json_get_num(o, "healthy", 0), json_get_num(o, "total", 0));
		kv(&t, "sinks:", buf_str(&b));
		buf_reset(&b);
	}
	if ((o = json_get(v, "loop")) != NULL) {
		buf_printf(&b, "passes p99 %.1f ms, longest %.1f ms of CPU; "
		    "%.0f ms probe late by max %.1f ms",
		    json_get_num(o, "busy_p99_ms", 0),
		    json_get_num(o, "busy_max_ms", 0),
		    json_get_num(o, "probe_ms", 0),
		    json_get_num(o, "lag_max_ms", 0));
		kv(&t, "event loop:", buf_str(&b));
		buf_reset(&b);
	}
	table_print(&t, out);
	table_free(&t);
	buf_free(&b);
}

/* Scalar members of obj as "prefix.key:" rows, nested objects flattened. */
static void
render_members(const struct json_value *obj, const char *prefix,
    struct table *t)
{
	const struct json_value	*m;
	char			*key, *val, *label;

	for (m = obj->child; m != NULL; m = m->next) {
		if (m->key == NULL || m->type == JSON_ARRAY ||
		    (prefix == NULL && strcmp(m->key, "ok") == 0))
			continue;
		if (prefix != NULL)
			xasprintf(&key, "%s.%s", prefix, m->key);
		else
			key = xstrdup(m->key);
		if (m->type == JSON_OBJECT)
			render_members(m, key, t);
		else {
			val = value_text(m);
			xasprintf(&label, "%s:", key);
			kv(t, label, val);
			free(label);
			free(val);
		}
		free(key);
	}
}

static void
render_mailbox(const struct json_value *v, struct buf *out)
{
	const struct json_value	*mb = json_get(v, "mailbox");
	struct table		 t;

	if (mb == NULL || mb->type != JSON_OBJECT)
		return;
	table_init(&t, 2);
	render_members(mb, NULL, &t);
	table_print(&t, out);
	table_free(&t);
	if (json_get(mb, "timeline") != NULL) {
		buf_puts(out, "\ntimeline:\n");
		render_list(mb, "timeline", timeline_cols,
		    NITEMS(timeline_cols), out);
	}
}

/* The checklist, then what to do about each check that did not pass. */
/* The strings of array a, comma separated; false if there are none. */
static bool
join_strings(const struct json_value *a, struct buf *b)
{
	const struct json_value	*p;
	bool			 any = false;

	if (a == NULL || a->type != JSON_ARRAY)
		return (false);
	for (p = a->child; p != NULL; p = p->next) {
		if (p->type != JSON_STRING)
			continue;
		if (any)
			buf_puts(b, ", ");
		sanitize(b, p->str);
		any = true;
	}
	return (any);
}

/* "ok", and each restart-only key the reload could not apply. */
/* The node's view, then who owns how many mailboxes with which record. */
static void
render_cluster(const struct json_value *v, struct buf *out)
{
	const struct json_value	*c = json_get(v, "cluster");
	struct table		 t;
	char			*running;

	table_init(&t, 2);
	if (c != NULL && c->type == JSON_OBJECT)
		render_members(c, NULL, &t);
	running = value_text(json_get(v, "running"));
	kv(&t, "running:", running);
	free(running);
	table_print(&t, out);
	table_free(&t);
	buf_putc(out, '\n');
	render_list(v, "assignment", assignment_cols,
	    NITEMS(assignment_cols), out);
}

static void
render_reload(const struct json_value *v, struct buf *out)
{
	const struct json_value	*a, *p;

	buf_puts(out, "ok\n");
	if ((a = json_get(v, "restart_required")) == NULL ||
	    a->type != JSON_ARRAY)
		return;
	for (p = a->child; p != NULL; p = p->next) {
		if (p->type != JSON_STRING)
			continue;
		buf_puts(out, "restart needed: ");
		sanitize(out, p->str);
		buf_puts(out, " changed, the running value stays\n");
	}
}

static void
render_verify(const struct json_value *v, struct buf *out)
{
	const struct json_value	*arr, *c;
	const char		*fix;

	render_list(v, "checks", verify_cols, NITEMS(verify_cols), out);
	if ((arr = json_get(v, "checks")) != NULL && arr->type == JSON_ARRAY)
		for (c = arr->child; c != NULL; c = c->next) {
			fix = json_get_str(c, "fix", NULL);
			if (fix == NULL || *fix == '\0' ||
			    strcmp(json_get_str(c, "verdict", ""), "PASS") == 0)
				continue;
			buf_puts(out, "\n");
			sanitize(out, json_get_str(c, "name", "?"));
			buf_puts(out, ": ");
			sanitize(out, fix);
			buf_putc(out, '\n');
		}
	buf_printf(out, "\nresult: %s%s\n", json_get_bool(v, "passed", false) ?
	    "passed" : "FAILED", json_get_bool(v, "complete", true) ? "" :
	    " (incomplete)");
}

static void
render_help(const struct json_value *v, struct buf *out)
{
	const struct json_value	*arr, *c;
	struct table		 t;
	char			*row[2];

	table_init(&t, 2);
	if ((arr = json_get(v, "commands")) != NULL &&
	    arr->type == JSON_ARRAY)
		for (c = arr->child; c != NULL; c = c->next) {
			row[0] = value_text(json_get(c, "usage"));
			xasprintf(&row[1], "%s%s",
			    json_get_str(c, "help", ""),
			    json_get_bool(c, "mutates", false) ?
			    " (root or the daemon's user)" : "");
			table_add(&t, row);
		}
	table_print(&t, out);
	table_free(&t);
}

int
ctl_render(const char *command, const char *answer, size_t len, bool json,
    struct buf *out, struct buf *err)
{
	struct json_value	*v;
	struct table		 t;
	char			*cause = NULL;
	size_t			 eof = sizeof CTL_METRICS_EOF - 2; /* no \n */
	bool			 ok;
	int			 rc = CTL_EXIT_OK;

	while (len > 0 && (answer[len - 1] == '\n' || answer[len - 1] == '\r'))
		len--;
	if (len == 0) {
		buf_puts(err, "error: empty answer\n");
		return (CTL_EXIT_FAILURE);
	}
	if (answer[0] != '{') {
		/* Metrics text, or nothing we understand. */
		if (strcmp(command, "metrics") != 0 || !(len == eof ||
		    (len > eof && answer[len - eof - 1] == '\n')) ||
		    memcmp(answer + len - eof, CTL_METRICS_EOF, eof) != 0) {
			buf_puts(err, "error: malformed answer\n");
			return (CTL_EXIT_FAILURE);
		}
		buf_append(out, answer, len);
		buf_putc(out, '\n');
		return (CTL_EXIT_OK);
	}
	if ((v = json_parse(answer, len, &cause)) == NULL ||
	    v->type != JSON_OBJECT || json_get(v, "ok") == NULL) {
		buf_puts(err, "error: malformed answer");
		if (cause != NULL)
			buf_printf(err, " (%s)", cause);
		buf_putc(err, '\n');
		free(cause);
		json_free(v);
		return (CTL_EXIT_FAILURE);
	}
	ok = json_get_bool(v, "ok", false);
	if (!ok) {
		/* One line per error (a rejected reload has several). */
		const char	*text = json_get_str(v, "error",
		    "unknown error");
		char		*line;

		size_t		 before = err->len;

		while ((text = next_line(text, &line)) != NULL) {
			buf_puts(err, "error: ");
			sanitize(err, line);
			buf_putc(err, '\n');
			free(line);
		}
		if (err->len == before)
			buf_puts(err, "error: unknown error\n");
		rc = CTL_EXIT_UNHEALTHY;
	} else if ((strcmp(command, "status") == 0 &&
	    !json_get_bool(v, "healthy", false)) ||
	    (strcmp(command, "verify") == 0 &&
	    !json_get_bool(v, "passed", false)))
		rc = CTL_EXIT_UNHEALTHY;

	if (json) {
		buf_append(out, answer, len);
		buf_putc(out, '\n');
	} else if (!ok)
		;	/* the error line says it all */
	else if (strcmp(command, "status") == 0)
		render_status(v, out);
	else if (strcmp(command, "mailboxes") == 0)
		render_list(v, "mailboxes", mailbox_cols,
		    NITEMS(mailbox_cols), out);
	else if (strcmp(command, "mailbox") == 0)
		render_mailbox(v, out);
	else if (strcmp(command, "connections") == 0)
		render_list(v, "connections", connection_cols,
		    NITEMS(connection_cols), out);
	else if (strcmp(command, "sinks") == 0)
		render_list(v, "sinks", sink_cols, NITEMS(sink_cols), out);
	else if (strcmp(command, "help") == 0)
		render_help(v, out);
	else if (strcmp(command, "verify") == 0)
		render_verify(v, out);
	else if (strcmp(command, "reload") == 0)
		render_reload(v, out);
	else if (strcmp(command, "cluster") == 0)
		render_cluster(v, out);
	else if (v->child != NULL && v->child->next == NULL)
		buf_puts(out, "ok\n");
	else {
		table_init(&t, 2);
		render_members(v, NULL, &t);
		table_print(&t, out);
		table_free(&t);
	}
	json_free(v);
	return (rc);
}
