/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * calendarView, calendarView/delta and automaticRepliesSetting: request
 * URLs and response pages.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "graph/graph_cal.h"
#include "graph/gjson.h"
#include "base/buf.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

#define GRAPH_SELECT \
	"id,subject,showAs,isAllDay,sensitivity,isCancelled,start,end,type"

void
graph_put_segment(struct buf *b, const char *s)
{
	static const char	 hex[] = "0123456789ABCDEF";
	const unsigned char	*p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~@", *p) != NULL)
			buf_putc(b, (char)*p);
		else {
			buf_putc(b, '%');
			buf_putc(b, hex[*p >> 4]);
			buf_putc(b, hex[*p & 15]);
		}
	}
}

void
graph_calview_path(struct buf *b, const char *user, int64_t start,
    int64_t end, bool delta)
{
	char	 s[TIME_ISO8601_LEN], e[TIME_ISO8601_LEN];

	time_format_iso8601(start, s);
	time_format_iso8601(end, e);
	buf_puts(b, "/users/");
	graph_put_segment(b, user);
	buf_printf(b, "/calendarView%s?startDateTime=%s&endDateTime=%s",
	    delta ? "/delta" : "", s, e);
	if (!delta)
		buf_printf(b, "&$select=%s&$top=%d", GRAPH_SELECT,
		    GRAPH_PAGE_SIZE);
}

void
graph_calview_url(struct buf *b, const char *base, const char *user,
    int64_t start, int64_t end, bool delta)
{
	buf_puts(b, base != NULL ? base : GRAPH_DEFAULT_URL);
	graph_calview_path(b, user, start, end, delta);
}

void
graph_auto_replies_path(struct buf *b, const char *user)
{
	buf_puts(b, "/users/");
	graph_put_segment(b, user);
	buf_puts(b, "/mailboxSettings/automaticRepliesSetting");
}

void
graph_auto_replies_url(struct buf *b, const char *base, const char *user)
{
	buf_puts(b, base != NULL ? base : GRAPH_DEFAULT_URL);
	graph_auto_replies_path(b, user);
}

/* showAs -> enum ews_fb ("unknown" and anything else: NoData). */
static enum ews_fb
graph_show_as(const char *s)
{
	if (s == NULL)
		return (EWS_FB_BUSY);	/* as EWS: Busy if absent */
	if (strcmp(s, "free") == 0)
		return (EWS_FB_FREE);
	if (strcmp(s, "tentative") == 0)
		return (EWS_FB_TENTATIVE);
	if (strcmp(s, "busy") == 0)
		return (EWS_FB_BUSY);
	if (strcmp(s, "oof") == 0)
		return (EWS_FB_OOF);
	if (strcmp(s, "workingElsewhere") == 0)
		return (EWS_FB_WORKING_ELSEWHERE);
	return (EWS_FB_NODATA);
}

static enum ews_sensitivity
graph_sensitivity(const char *s)
{
	if (s == NULL)
		return (EWS_SENS_NORMAL);
	if (strcmp(s, "personal") == 0)
		return (EWS_SENS_PERSONAL);
	if (strcmp(s, "private") == 0)
		return (EWS_SENS_PRIVATE);
	if (strcmp(s, "confidential") == 0)
		return (EWS_SENS_CONFIDENTIAL);
	return (EWS_SENS_NORMAL);
}

static enum ews_item_type
graph_type(const char *s)
{
	if (s == NULL)
		return (EWS_ITEM_SINGLE);
	if (strcmp(s, "occurrence") == 0)
		return (EWS_ITEM_OCCURRENCE);
	if (strcmp(s, "exception") == 0)
		return (EWS_ITEM_EXCEPTION);
	if (strcmp(s, "seriesMaster") == 0)
		return (EWS_ITEM_RECURRING_MASTER);
	return (EWS_ITEM_SINGLE);
}

/*
 * A dateTimeTimeZone in UTC into seconds.  Graph writes "dateTime"
 * without a zone ("2026-03-02T09:00:00.0000000") and names the zone in
 * "timeZone"; only UTC is accepted.  0 or -1.
 */
static int
graph_utc(const gjson_t *dtz, int64_t *out)
{
	const char	*dt, *tz;

	if (dtz == NULL || !gjson_is_object(dtz))
		return (-1);
	dt = gjson_str(dtz, "dateTime");
	tz = gjson_str(dtz, "timeZone");
	if (dt == NULL || tz == NULL)
		return (-1);
	if (strcasecmp(tz, "UTC") != 0 && strcasecmp(tz, "Etc/UTC") != 0)
		return (-1);
	return (time_parse_iso8601(dt, strlen(dt), out));
}

static int
graph_link(const gjson_t *root, const char *key, char **out, char **cause)
{
	const char	*s;
	const gjson_t	*v;

	if ((v = gjson_get(root, key)) == NULL || gjson_is_null(v))
		return (0);
	if ((s = gjson_string(v)) == NULL) {
		xasprintf(cause, "%s is not a string", key);
		return (-1);
	}
	if (strlen(s) > GRAPH_MAX_LINK || strncmp(s, "http", 4) != 0) {
		xasprintf(cause, "%s is not a usable URL", key);
		return (-1);
	}
	*out = xstrdup(s);
	return (0);
}

int
graph_parse_calview(const char *s, size_t len, struct graph_page *pg,
    char **cause)
{
	gjson_t			*root;
	const gjson_t		*arr, *ev, *rm;
	struct ews_cal_item	*it;
	const char		*id;
	size_t			 i, n;
	int			 rc = -1;

	memset(pg, 0, sizeof *pg);
	if ((root = gjson_parse(s, len, 0, cause)) == NULL)
		return (-1);
	if ((arr = gjson_arr(root, "value")) == NULL) {
		*cause = xstrdup("no \"value\" array");
		goto out;
	}
	if (graph_link(root, "@odata.nextLink", &pg->next_link, cause) ||
	    graph_link(root, "@odata.deltaLink", &pg->delta_link, cause))
		goto out;
	n = gjson_size(arr);
	pg->items = xreallocarray(NULL, n + 1, sizeof *pg->items);
	pg->removed = xreallocarray(NULL, n + 1, sizeof *pg->removed);
	for (i = 0; i < n; i++) {
		ev = gjson_at(arr, i);
		if (!gjson_is_object(ev) ||
		    (id = gjson_str(ev, "id")) == NULL) {
			pg->nskipped++;
			continue;
		}
		/* A delta removal: {"id": .., "@removed": {"reason": ..}}. */
		if ((rm = gjson_get(ev, "@removed")) != NULL &&
		    !gjson_is_null(rm)) {
			pg->removed[pg->nremoved++] = xstrdup(id);
			continue;
		}
		it = &pg->items[pg->nitems];
		memset(it, 0, sizeof *it);
		if (graph_utc(gjson_get(ev, "start"), &it->start) != 0 ||
		    graph_utc(gjson_get(ev, "end"), &it->end) != 0 ||
		    it->end < it->start) {
			pg->nskipped++;
			continue;
		}
		it->id = xstrdup(id);
		it->change_key = gjson_strdup(ev, "@odata.etag");
		it->subject = gjson_strdup(ev, "subject");
		it->fb = graph_show_as(gjson_str(ev, "showAs"));
		it->sensitivity = graph_sensitivity(gjson_str(ev,
		    "sensitivity"));
		it->type = graph_type(gjson_str(ev, "type"));
		it->all_day = gjson_bool(ev, "isAllDay", false);
		it->cancelled = gjson_bool(ev, "isCancelled", false);
		pg->nitems++;
	}
	rc = 0;
out:
	gjson_free(root);
	return (rc);
}

void
graph_page_free(struct graph_page *pg)
{
	size_t	 i;

	for (i = 0; i < pg->nitems; i++) {
		free(pg->items[i].id);
		free(pg->items[i].change_key);
		free(pg->items[i].subject);
	}
	free(pg->items);
	for (i = 0; i < pg->nremoved; i++)
		free(pg->removed[i]);
	free(pg->removed);
	free(pg->next_link);
	free(pg->delta_link);
	memset(pg, 0, sizeof *pg);
}

int
graph_parse_auto_replies(const char *s, size_t len, struct ews_oof *oof,
    char **cause)
{
	gjson_t		*root;
	const gjson_t	*ar;
	const char	*st;
	int		 rc = -1;

	memset(oof, 0, sizeof *oof);
	if ((root = gjson_parse(s, len, 64 * 1024, cause)) == NULL)
		return (-1);
	/* GET .../automaticRepliesSetting, or .../mailboxSettings. */
	if ((ar = gjson_obj(root, "automaticRepliesSetting")) == NULL)
		ar = root;
	if ((st = gjson_str(ar, "status")) == NULL) {
		*cause = xstrdup("automaticRepliesSetting without status");
		goto out;
	}
	if (strcmp(st, "disabled") == 0)
		oof->state = EWS_OOF_DISABLED;
	else if (strcmp(st, "alwaysEnabled") == 0)
		oof->state = EWS_OOF_ENABLED;
	else if (strcmp(st, "scheduled") == 0) {
		oof->state = EWS_OOF_SCHEDULED;
		if (graph_utc(gjson_get(ar, "scheduledStartDateTime"),
		    &oof->start) != 0 ||
		    graph_utc(gjson_get(ar, "scheduledEndDateTime"),
		    &oof->end) != 0) {
			*cause = xstrdup("scheduled automatic replies without "
			    "a UTC scheduledStartDateTime/EndDateTime");
			goto out;
		}
		oof->has_duration = true;
	} else {
		xasprintf(cause, "unknown automatic replies status %.40s", st);
		goto out;
	}
	rc = 0;
out:
	gjson_free(root);
	return (rc);
}
