/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Streaming versus tree parsers: each result written out in full as
 * text, the two texts compared.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "ews/ews_parse.h"

#include "ews_parse_diff.h"
#include "ews_parse_dom.h"

static const char *
nz(const char *s)
{
	return (s != NULL ? s : "(null)");
}

/*
 * Both refuse a malformed document, but libxml2 reads on past the first
 * error with callbacks off, and which later error it reports last
 * depends on the callbacks a parser installed: compare the verdict.
 */
static bool
malformed(const char *cause)
{
	return (cause != NULL && strncmp(cause, "malformed XML:", 14) == 0);
}

static void
put_status(struct buf *b, const char *what, const struct ews_status *st)
{
	buf_printf(b, "%s: class=%d code=[%s] message=[%s] backoff=%lld\n",
	    what, st->class, st->code, nz(st->message),
	    (long long)st->backoff_ms);
}

static void
put_response(struct buf *b, const struct ews_response *r)
{
	const struct ews_version *v = &r->version;

	buf_printf(b, "version: present=%d %d.%d.%d.%d [%s]\n", v->present,
	    v->major, v->minor, v->major_build, v->minor_build, v->version);
	buf_printf(b, "fault=%d faultstring=[%s]\n", r->fault,
	    nz(r->faultstring));
	put_status(b, "status", &r->status);
}

static void
put_notification(struct buf *b, const struct ews_notification *n)
{
	const struct ews_event	*ev;
	size_t			 i;

	buf_printf(b, "notification sid=[%s] prev=[%s] more=%d events=%zu\n",
	    nz(n->subscription_id), nz(n->previous_watermark), n->more_events,
	    n->nevents);
	for (i = 0; i < n->nevents; i++) {
		ev = &n->events[i];
		buf_printf(b, " event %d wm=[%s] ts=%lld folder=%d id=[%s] "
		    "parent=[%s] old=[%s] oldparent=[%s]\n", ev->type,
		    nz(ev->watermark), (long long)ev->timestamp, ev->folder,
		    nz(ev->id), nz(ev->parent_id), nz(ev->old_id),
		    nz(ev->old_parent_id));
	}
}

static void
put_item(struct buf *b, const struct ews_cal_item *it)
{
	buf_printf(b, "item id=[%s] ck=[%s] subject=[%s] %lld-%lld fb=%d "
	    "sens=%d type=%d allday=%d cancelled=%d\n", nz(it->id),
	    nz(it->change_key), nz(it->subject), (long long)it->start,
	    (long long)it->end, it->fb, it->sensitivity, it->type, it->all_day,
	    it->cancelled);
}

/* One parser, both ways. */
struct pair {
	const char	*name;
	/* Parse into a result of its own, write it out, free it. */
	int		(*run)(bool dom, const char *, size_t, char **,
			    struct buf *);
};

static int
run_response(bool dom, const char *d, size_t len, char **cause,
    struct buf *b)
{
	struct ews_response	 r;
	int			 rc;

	rc = (dom ? dom_parse_response : ews_parse_response)(d, len, &r,
	    cause);
	if (rc == 0)
		put_response(b, &r);
	ews_response_free(&r);
	return (rc);
}

static int
run_unsubscribe(bool dom, const char *d, size_t len, char **cause,
    struct buf *b)
{
	struct ews_response	 r;
	int			 rc;

	rc = (dom ? dom_parse_unsubscribe : ews_parse_unsubscribe)(d, len,
	    &r, cause);
	if (rc == 0)
		put_response(b, &r);
	ews_response_free(&r);
	return (rc);
}

static int
run_subscribe(bool dom, const char *d, size_t len, char **cause,
    struct buf *b)
{
	struct ews_subscribe	 s;
	int			 rc;

	rc = (dom ? dom_parse_subscribe : ews_parse_subscribe)(d, len, &s,
	    cause);
	if (rc == 0) {
		put_response(b, &s.r);
		buf_printf(b, "sid=[%s] watermark=[%s]\n",
		    nz(s.subscription_id), nz(s.watermark));
	}
	ews_subscribe_free(&s);
	return (rc);
}

static void
put_notifications(struct buf *b, const struct ews_notifications *n)
{
	size_t	 i;

	put_response(b, &n->r);
	for (i = 0; i < n->nmsgs; i++) {
		put_status(b, "msg", &n->msgs[i].status);
		buf_printf(b, "has=%d\n", n->msgs[i].has_notification);
		if (n->msgs[i].has_notification)
			put_notification(b, &n->msgs[i].notification);
	}
}

static int
run_get_events(bool dom, const char *d, size_t len, char **cause,
    struct buf *b)
{
	struct ews_notifications n;
	int			 rc;

	rc = (dom ? dom_parse_get_events : ews_parse_get_events)(d, len, &n,
	    cause);
	if (rc == 0)
		put_notifications(b, &n);
	ews_notifications_free(&n);
	return (rc);
}

static int
run_send_notification(bool dom, const char *d, size_t len, char **cause,
    struct buf *b)
{
	struct ews_notifications n;
	int			 rc;

	rc = (dom ? dom_parse_send_notification :
	    ews_parse_send_notification)(d, len, &n, cause);
	if (rc == 0)
		put_notifications(b, &n);
	ews_notifications_free(&n);
	return (rc);
}

static int
run_streaming(bool dom, const char *d, size_t len, char **cause,
    struct buf *b)
{
	struct ews_streaming	 s;
	struct ews_stream_msg	*m;
	size_t			 i, j;
	int			 rc;

	rc = (dom ? dom_parse_streaming : ews_parse_streaming)(d, len, &s,
	    cause);
	if (rc == 0) {
		put_response(b, &s.r);
		for (i = 0; i < s.nmsgs; i++) {
			m = &s.msgs[i];
			put_status(b, "msg", &m->status);
			buf_printf(b, "conn=%d notifications=%zu errors=%zu\n",
			    m->conn, m->nnotifications, m->nerror_ids);
			for (j = 0; j < m->nnotifications; j++)
				put_notification(b, &m->notifications[j]);
			for (j = 0; j < m->nerror_ids; j++)
				buf_printf(b, " error id [%s]\n",
				    nz(m->error_ids[j]));
		}
	}
	ews_streaming_free(&s);
	return (rc);
}

static int
run_find_item(bool dom, const char *d, size_t len, char **cause,
    struct buf *b)
{
	struct ews_calendar	 c;
	size_t			 i;
	int			 rc;

	rc = (dom ? dom_parse_find_item : ews_parse_find_item)(d, len, &c,
	    cause);
	if (rc == 0) {
		put_response(b, &c.r);
		buf_printf(b, "total=%u last=%d items=%zu\n", c.total_in_view,
		    c.includes_last, c.nitems);
		for (i = 0; i < c.nitems; i++)
			put_item(b, &c.items[i]);
	}
	ews_calendar_free(&c);
	return (rc);
}

static int
run_get_item(bool dom, const char *d, size_t len, char **cause,
    struct buf *b)
{
	struct ews_items	 it;
	size_t			 i;
	int			 rc;

	rc = (dom ? dom_parse_get_item : ews_parse_get_item)(d, len, &it,
	    cause);
	if (rc == 0) {
		put_response(b, &it.r);
		for (i = 0; i < it.nmsgs; i++) {
			put_status(b, "msg", &it.msgs[i].status);
			buf_printf(b, "has=%d\n", it.msgs[i].has_item);
			if (it.msgs[i].has_item)
				put_item(b, &it.msgs[i].item);
		}
	}
	ews_items_free(&it);
	return (rc);
}

static int
run_availability(bool dom, const char *d, size_t len, char **cause,
    struct buf *b)
{
	struct ews_availability	 a;
	struct ews_fb_mailbox	*mb;
	size_t			 i, j;
	int			 rc;

	rc = (dom ? dom_parse_availability : ews_parse_availability)(d, len,
	    &a, cause);
	if (rc == 0) {
		put_response(b, &a.r);
		for (i = 0; i < a.nmailboxes; i++) {
			mb = &a.mailboxes[i];
			put_status(b, "mailbox", &mb->status);
			buf_printf(b, "merged=[%s] events=%zu\n",
			    nz(mb->merged), mb->nevents);
			for (j = 0; j < mb->nevents; j++)
				buf_printf(b, " %lld-%lld %d\n",
				    (long long)mb->events[j].start,
				    (long long)mb->events[j].end,
				    mb->events[j].busy);
		}
	}
	ews_availability_free(&a);
	return (rc);
}

static int
run_oof(bool dom, const char *d, size_t len, char **cause, struct buf *b)
{
	struct ews_oof	 o;
	int		 rc;

	rc = (dom ? dom_parse_oof : ews_parse_oof)(d, len, &o, cause);
	if (rc == 0) {
		put_response(b, &o.r);
		buf_printf(b, "state=%d duration=%d %lld-%lld\n", o.state,
		    o.has_duration, (long long)o.start, (long long)o.end);
	}
	ews_oof_free(&o);
	return (rc);
}

static int
run_user_settings(bool dom, const char *d, size_t len, char **cause,
    struct buf *b)
{
	struct ews_user_settings us;
	struct ad_user		*u;
	size_t			 i, j;
	int			 rc;

	rc = (dom ? dom_parse_user_settings : ews_parse_user_settings)(d, len,
	    &us, cause);
	if (rc == 0) {
		put_response(b, &us.r);
		buf_printf(b, "error=%d users=%zu\n", us.error, us.nusers);
		for (i = 0; i < us.nusers; i++) {
			u = &us.users[i];
			buf_printf(b, "user error=%d code=[%s] message=[%s] "
			    "redirect=[%s] missing=%x\n", u->error, u->code,
			    nz(u->message), nz(u->redirect), u->missing);
			for (j = 0; j < AD_SETTING_MAX; j++)
				if (u->values[j] != NULL)
					buf_printf(b, " %zu=[%s]\n", j,
					    u->values[j]);
		}
	}
	ews_user_settings_free(&us);
	return (rc);
}

static const struct pair pairs[] = {
	{ "response", run_response },
	{ "unsubscribe", run_unsubscribe },
	{ "subscribe", run_subscribe },
	{ "get_events", run_get_events },
	{ "send_notification", run_send_notification },
	{ "streaming", run_streaming },
	{ "find_item", run_find_item },
	{ "get_item", run_get_item },
	{ "availability", run_availability },
	{ "oof", run_oof },
	{ "user_settings", run_user_settings },
};

int
ews_parse_diff(const char *d, size_t len, char **report,
    unsigned *accepted)
{
	struct buf	 out[2];
	char		*cause[2];
	int		 rc[2], side;
	size_t		 i;
	bool		 same;

	*report = NULL;
	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		for (side = 0; side < 2; side++) {
			buf_init(&out[side]);
			cause[side] = NULL;
			rc[side] = pairs[i].run(side == 0, d, len, &cause[side],
			    &out[side]);
			buf_printf(&out[side], "rc=%d cause=[%s]\n", rc[side],
			    malformed(cause[side]) ? "malformed XML" :
			    nz(cause[side]));
		}
		same = strcmp(buf_str(&out[0]), buf_str(&out[1])) == 0;
		if (!same)
			xasprintf(report, "%s differs\n--- tree:\n%s"
			    "--- streaming:\n%s", pairs[i].name,
			    buf_str(&out[0]), buf_str(&out[1]));
		if (same && rc[0] == 0 && accepted != NULL)
			(*accepted)++;
		for (side = 0; side < 2; side++) {
			buf_free(&out[side]);
			free(cause[side]);
		}
		if (!same)
			return (-1);
	}
	return (0);
}
