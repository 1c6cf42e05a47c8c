/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * EWS request builders.  Element order follows messages.xsd/types.xsd,
 * which Exchange enforces; every string goes through soap_escape().
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "ews/soap.h"
#include "base/timeutil.h"

/* A writer that remembers the first invalid string. */
struct sw {
	struct buf	*b;
	int		 err;
};

static size_t	 utf8_char(const unsigned char *, uint32_t *);
static void	 sw_raw(struct sw *, const char *);
static void	 sw_text(struct sw *, const char *);
static void	 sw_attr(struct sw *, const char *, const char *);
static void	 sw_elem(struct sw *, const char *, const char *);
static void	 sw_elem_uint(struct sw *, const char *, unsigned long long);
static void	 sw_elem_time(struct sw *, const char *, int64_t);
static void	 sw_begin(struct sw *, struct buf *,
		    const struct soap_header *);
static int	 sw_end(struct sw *);
static void	 sw_calendar_folder(struct sw *, const char *, const char *);
static void	 sw_event_types(struct sw *, unsigned);
static void	 sw_item_shape(struct sw *);
static int	 sw_nonempty(struct sw *, const char *);

static const struct {
	unsigned	 bit;
	const char	*name;
} event_names[] = {
	{ SOAP_EV_CREATED, "CreatedEvent" },
	{ SOAP_EV_MODIFIED, "ModifiedEvent" },
	{ SOAP_EV_DELETED, "DeletedEvent" },
	{ SOAP_EV_MOVED, "MovedEvent" },
	{ SOAP_EV_COPIED, "CopiedEvent" },
	{ SOAP_EV_NEWMAIL, "NewMailEvent" },
	{ SOAP_EV_FREEBUSY, "FreeBusyChangedEvent" },
};

/* What ews_parse reads from a calendar item; see ews_parse_find_item(). */
static const char *const item_fields[] = {
	"item:Subject", "item:Sensitivity", "calendar:Start", "calendar:End",
	"calendar:IsAllDayEvent", "calendar:LegacyFreeBusyStatus",
	"calendar:IsCancelled", "calendar:CalendarItemType"
};

const char *
soap_event_name(unsigned bit)
{
	size_t	 i;

	for (i = 0; i < sizeof(event_names) / sizeof(event_names[0]); i++)
		if (event_names[i].bit == bit)
			return (event_names[i].name);
	return (NULL);
}

/*
 * Decode one UTF-8 sequence; 0 if it is malformed (overlong, surrogate,
 * beyond U+10FFFF or truncated).
 */
static size_t
utf8_char(const unsigned char *s, uint32_t *cp)
{
	size_t	 n, i;
	uint32_t c;

	if (s[0] < 0x80) {
		*cp = s[0];
		return (1);
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		c = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		c = s[0] & 0x07;
	} else
		return (0);
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return (0);	/* also stops at the NUL */
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return (0);
	*cp = c;
	return (n);
}

int
soap_escape(struct buf *out, const char *s, bool attr)
{
	const unsigned char	*p;
	size_t			 n;
	uint32_t		 c;

	/* Validate first so that a failure appends nothing. */
	for (p = (const unsigned char *)s; *p != '\0'; p += n) {
		if ((n = utf8_char(p, &c)) == 0)
			return (-1);
		if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') ||
		    c == 0xfffe || c == 0xffff)
			return (-1);
	}
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		/* A run of characters that stay as they are, at once. */
		if ((n = strcspn((const char *)p, "&<>\"'\r\n\t")) > 0) {
			buf_append(out, p, n);
			p += n - 1;
			continue;
		}
		switch (*p) {
		case '&':
			buf_puts(out, "&amp;");
			break;
		case '<':
			buf_puts(out, "&lt;");
			break;
		case '>':
			buf_puts(out, "&gt;");
			break;
		case '"':
			buf_puts(out, "&quot;");
			break;
		case '\'':
			buf_puts(out, "&apos;");
			break;
		case '\r':
			/* Parsers normalise a raw CR away. */
			buf_puts(out, "&#13;");
			break;
		default:	/* '\n', '\t' */
			/* Attribute values normalise raw whitespace. */
			if (attr)
				buf_printf(out, "&#%d;", *p);
			else
				buf_putc(out, (char)*p);
			break;
		}
	}
	return (0);
}

static void
sw_raw(struct sw *w, const char *s)
{
	buf_puts(w->b, s);
}

static void
sw_text(struct sw *w, const char *s)
{
	if (s == NULL || soap_escape(w->b, s, false) == -1)
		w->err = -1;
}

/* Append ' name="value"'. */
static void
sw_attr(struct sw *w, const char *name, const char *value)
{
	buf_putc(w->b, ' ');
	buf_puts(w->b, name);
	buf_puts(w->b, "=\"");
	if (value == NULL || soap_escape(w->b, value, true) == -1)
		w->err = -1;
	buf_putc(w->b, '"');
}

/* Append <tag>text</tag>; no printf: this runs for every request. */
static void
sw_elem(struct sw *w, const char *tag, const char *text)
{
	buf_putc(w->b, '<');
	buf_puts(w->b, tag);
	buf_putc(w->b, '>');
	sw_text(w, text);
	buf_puts(w->b, "</");
	buf_puts(w->b, tag);
	buf_putc(w->b, '>');
}

static void
sw_elem_uint(struct sw *w, const char *tag, unsigned long long v)
{
	buf_printf(w->b, "<%s>%llu</%s>", tag, v, tag);
}

static void
sw_elem_time(struct sw *w, const char *tag, int64_t t)
{
	char	 ts[TIME_ISO8601_LEN];

	time_format_iso8601(t, ts);
	buf_printf(w->b, "<%s>%s</%s>", tag, ts, tag);
}

/* Identifiers, addresses and watermarks must be present and non-empty. */
static int
sw_nonempty(struct sw *w, const char *s)
{
	if (s == NULL || *s == '\0') {
		w->err = -1;
		return (-1);
	}
	return (0);
}

static void
sw_begin(struct sw *w, struct buf *out, const struct soap_header *h)
{
	const struct soap_ident	*id;
	const char		*el;

	w->b = out;
	w->err = 0;
	buf_reset(out);
	sw_raw(w, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<soap:Envelope xmlns:soap=\"" SOAP_NS_ENV "\""
	    " xmlns:m=\"" SOAP_NS_M "\" xmlns:t=\"" SOAP_NS_T "\">"
	    "<soap:Header>");
	if (h != NULL && h->version != NULL) {
		sw_raw(w, "<t:RequestServerVersion");
		sw_attr(w, "Version", h->version);
		sw_raw(w, "/>");
	}
	if (h != NULL && (id = h->impersonate) != NULL) {
		switch (id->type) {
		case CONF_ID_SMTP:
			el = "t:SmtpAddress";
			break;
		case CONF_ID_UPN:
			el = "t:PrincipalName";
			break;
		case CONF_ID_SID:
			el = "t:SID";
			break;
		default:
			el = NULL;
			w->err = -1;
			break;
		}
		if (el != NULL && sw_nonempty(w, id->value) == 0) {
			sw_raw(w, "<t:ExchangeImpersonation><t:ConnectingSID>");
			sw_elem(w, el, id->value);
			sw_raw(w, "</t:ConnectingSID>"
			    "</t:ExchangeImpersonation>");
		}
	}
	sw_raw(w, "</soap:Header><soap:Body>");
}

static int
sw_end(struct sw *w)
{
	if (w->err != 0) {
		buf_reset(w->b);
		return (-1);
	}
	sw_raw(w, "</soap:Body></soap:Envelope>\n");
	return (0);
}

/* The calendar folder; of mailbox (a delegate's view) when not NULL. */
static void
sw_calendar_folder(struct sw *w, const char *wrapper, const char *mailbox)
{
	if (mailbox == NULL) {
		buf_printf(w->b, "<%s><t:DistinguishedFolderId "
		    "Id=\"calendar\"/></%s>", wrapper, wrapper);
		return;
	}
	buf_printf(w->b, "<%s><t:DistinguishedFolderId Id=\"calendar\">"
	    "<t:Mailbox>", wrapper);
	if (sw_nonempty(w, mailbox) == 0)
		sw_elem(w, "t:EmailAddress", mailbox);
	buf_printf(w->b, "</t:Mailbox></t:DistinguishedFolderId></%s>",
	    wrapper);
}

static void
sw_event_types(struct sw *w, unsigned events)
{
	size_t	 i;

	if ((events & SOAP_EV_ALL) == 0 || (events & ~SOAP_EV_ALL) != 0) {
		w->err = -1;
		return;
	}
	sw_raw(w, "<t:EventTypes>");
	for (i = 0; i < sizeof(event_names) / sizeof(event_names[0]); i++)
		if (events & event_names[i].bit)
			sw_elem(w, "t:EventType", event_names[i].name);
	sw_raw(w, "</t:EventTypes>");
}

static void
sw_item_shape(struct sw *w)
{
	size_t	 i;

	sw_raw(w, "<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>"
	    "<t:AdditionalProperties>");
	for (i = 0; i < sizeof(item_fields) / sizeof(item_fields[0]); i++)
		buf_printf(w->b, "<t:FieldURI FieldURI=\"%s\"/>",
		    item_fields[i]);
	sw_raw(w, "</t:AdditionalProperties></m:ItemShape>");
}

int
soap_subscribe_streaming(struct buf *out, const struct soap_header *h,
    unsigned events)
{
	return (soap_subscribe_streaming_delegate(out, h, events, NULL));
}

int
soap_subscribe_streaming_delegate(struct buf *out, const struct soap_header *h,
    unsigned events, const char *mailbox)
{
	struct sw	 w;

	sw_begin(&w, out, h);
	sw_raw(&w, "<m:Subscribe><m:StreamingSubscriptionRequest>");
	sw_calendar_folder(&w, "t:FolderIds", mailbox);
	sw_event_types(&w, events);
	sw_raw(&w, "</m:StreamingSubscriptionRequest></m:Subscribe>");
	return (sw_end(&w));
}

int
soap_subscribe_push(struct buf *out, const struct soap_header *h,
    unsigned events, const char *url, unsigned status_frequency,
    const char *watermark)
{
	struct sw	 w;

	sw_begin(&w, out, h);
	if (sw_nonempty(&w, url) == 0 && strlen(url) > SOAP_MAX_URL_LEN)
		w.err = -1;
	if (status_frequency < 1 || status_frequency > 1440)
		w.err = -1;
	sw_raw(&w, "<m:Subscribe><m:PushSubscriptionRequest>");
	sw_calendar_folder(&w, "t:FolderIds", NULL);
	sw_event_types(&w, events);
	if (watermark != NULL && sw_nonempty(&w, watermark) == 0)
		sw_elem(&w, "t:Watermark", watermark);
	sw_elem_uint(&w, "t:StatusFrequency", status_frequency);
	sw_elem(&w, "t:URL", url);
	sw_raw(&w, "</m:PushSubscriptionRequest></m:Subscribe>");
	return (sw_end(&w));
}

int
soap_subscribe_pull(struct buf *out, const struct soap_header *h,
    unsigned events, unsigned timeout, const char *watermark)
{
	struct sw	 w;

	sw_begin(&w, out, h);
	if (timeout < 1 || timeout > 1440)
		w.err = -1;
	sw_raw(&w, "<m:Subscribe><m:PullSubscriptionRequest>");
	sw_calendar_folder(&w, "t:FolderIds", NULL);
	sw_event_types(&w, events);
	if (watermark != NULL && sw_nonempty(&w, watermark) == 0)
		sw_elem(&w, "t:Watermark", watermark);
	sw_elem_uint(&w, "t:Timeout", timeout);
	sw_raw(&w, "</m:PullSubscriptionRequest></m:Subscribe>");
	return (sw_end(&w));
}

int
soap_get_streaming_events(struct buf *out, const struct soap_header *h,
    const char *const *ids, size_t nids, unsigned connection_timeout)
{
	struct sw	 w;
	size_t		 i;

	sw_begin(&w, out, h);
	if (ids == NULL || nids < 1 || nids > SOAP_MAX_STREAM_IDS ||
	    connection_timeout < 1 || connection_timeout > 30) {
		w.err = -1;
		return (sw_end(&w));
	}
	sw_raw(&w, "<m:GetStreamingEvents><m:SubscriptionIds>");
	for (i = 0; i < nids; i++)
		if (sw_nonempty(&w, ids[i]) == 0)
			sw_elem(&w, "t:SubscriptionId", ids[i]);
	sw_raw(&w, "</m:SubscriptionIds>");
	sw_elem_uint(&w, "m:ConnectionTimeout", connection_timeout);
	sw_raw(&w, "</m:GetStreamingEvents>");
	return (sw_end(&w));
}

int
soap_get_events(struct buf *out, const struct soap_header *h,
    const char *subscription_id, const char *watermark)
{
	struct sw	 w;

	sw_begin(&w, out, h);
	if (sw_nonempty(&w, subscription_id) == 0 &&
	    sw_nonempty(&w, watermark) == 0) {
		sw_raw(&w, "<m:GetEvents>");
		sw_elem(&w, "m:SubscriptionId", subscription_id);
		sw_elem(&w, "m:Watermark", watermark);
		sw_raw(&w, "</m:GetEvents>");
	}
	return (sw_end(&w));
}

int
soap_unsubscribe(struct buf *out, const struct soap_header *h,
    const char *subscription_id)
{
	struct sw	 w;

	sw_begin(&w, out, h);
	if (sw_nonempty(&w, subscription_id) == 0) {
		sw_raw(&w, "<m:Unsubscribe>");
		sw_elem(&w, "m:SubscriptionId", subscription_id);
		sw_raw(&w, "</m:Unsubscribe>");
	}
	return (sw_end(&w));
}

int
soap_find_calendar_view(struct buf *out, const struct soap_header *h,
    int64_t start, int64_t end, unsigned max_entries)
{
	struct sw	 w;
	char		 s[TIME_ISO8601_LEN], e[TIME_ISO8601_LEN];

	sw_begin(&w, out, h);
	if (end <= start)
		w.err = -1;
	time_format_iso8601(start, s);
	time_format_iso8601(end, e);
	sw_raw(&w, "<m:FindItem Traversal=\"Shallow\">");
	sw_item_shape(&w);
	sw_raw(&w, "<m:CalendarView");
	if (max_entries > 0)
		buf_printf(w.b, " MaxEntriesReturned=\"%u\"", max_entries);
	buf_printf(w.b, " StartDate=\"%s\" EndDate=\"%s\"/>", s, e);
	sw_calendar_folder(&w, "m:ParentFolderIds", NULL);
	sw_raw(&w, "</m:FindItem>");
	return (sw_end(&w));
}

int
soap_get_item(struct buf *out, const struct soap_header *h,
    const char *const *ids, size_t nids)
{
	struct sw	 w;
	size_t		 i;

	sw_begin(&w, out, h);
	if (ids == NULL || nids < 1) {
		w.err = -1;
		return (sw_end(&w));
	}
	sw_raw(&w, "<m:GetItem>");
	sw_item_shape(&w);
	sw_raw(&w, "<m:ItemIds>");
	for (i = 0; i < nids; i++) {
		if (sw_nonempty(&w, ids[i]) != 0)
			continue;
		sw_raw(&w, "<t:ItemId");
		sw_attr(&w, "Id", ids[i]);
		sw_raw(&w, "/>");
	}
	sw_raw(&w, "</m:ItemIds></m:GetItem>");
	return (sw_end(&w));
}

int
soap_get_user_availability(struct buf *out, const struct soap_header *h,
    const char *const *addresses, size_t naddresses, int64_t start,
    int64_t end, unsigned interval, enum soap_fb_view view)
{
	/* Bias 0 and identical transitions: UTC, as Microsoft's sample. */
	static const char	 tz_time[] = "<t:Bias>0</t:Bias>"
	    "<t:Time>00:00:00</t:Time><t:DayOrder>1</t:DayOrder>"
	    "<t:Month>1</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek>";
	struct sw		 w;
	const char		*vname;
	size_t			 i;

	sw_begin(&w, out, h);
	switch (view) {
	case SOAP_FB_VIEW_FREEBUSY:
		vname = "FreeBusy";
		break;
	case SOAP_FB_VIEW_DETAILED:
		vname = "Detailed";
		break;
	case SOAP_FB_VIEW_FREEBUSY_MERGED:
		vname = "FreeBusyMerged";
		break;
	case SOAP_FB_VIEW_MERGED_ONLY:
		vname = "MergedOnly";
		break;
	default:
		vname = NULL;
		break;
	}
	if (vname == NULL || addresses == NULL || naddresses < 1 ||
	    naddresses > SOAP_MAX_AVAIL_MAILBOXES || end <= start ||
	    interval < 5 || interval > 1440) {
		w.err = -1;
		return (sw_end(&w));
	}
	sw_raw(&w, "<m:GetUserAvailabilityRequest><t:TimeZone>"
	    "<t:Bias>0</t:Bias>");
	buf_printf(w.b, "<t:StandardTime>%s</t:StandardTime>"
	    "<t:DaylightTime>%s</t:DaylightTime></t:TimeZone>",
	    tz_time, tz_time);
	sw_raw(&w, "<m:MailboxDataArray>");
	for (i = 0; i < naddresses; i++) {
		if (sw_nonempty(&w, addresses[i]) != 0)
			continue;
		sw_raw(&w, "<t:MailboxData><t:Email>");
		sw_elem(&w, "t:Address", addresses[i]);
		sw_raw(&w, "</t:Email><t:AttendeeType>Required"
		    "</t:AttendeeType><t:ExcludeConflicts>false"
		    "</t:ExcludeConflicts></t:MailboxData>");
	}
	sw_raw(&w, "</m:MailboxDataArray><t:FreeBusyViewOptions>"
	    "<t:TimeWindow>");
	sw_elem_time(&w, "t:StartTime", start);
	sw_elem_time(&w, "t:EndTime", end);
	sw_raw(&w, "</t:TimeWindow>");
	sw_elem_uint(&w, "t:MergedFreeBusyIntervalInMinutes", interval);
	sw_elem(&w, "t:RequestedView", vname);
	sw_raw(&w, "</t:FreeBusyViewOptions></m:GetUserAvailabilityRequest>");
	return (sw_end(&w));
}

int
soap_get_user_oof_settings(struct buf *out, const struct soap_header *h,
    const char *address)
{
	struct sw	 w;

	sw_begin(&w, out, h);
	if (sw_nonempty(&w, address) == 0) {
		sw_raw(&w, "<m:GetUserOofSettingsRequest><t:Mailbox>");
		sw_elem(&w, "t:Address", address);
		sw_raw(&w, "</t:Mailbox></m:GetUserOofSettingsRequest>");
	}
	return (sw_end(&w));
}

int
soap_get_user_settings(struct buf *out, const char *to, const char *version,
    const char *const *addresses, size_t n, unsigned settings)
{
	struct sw	 w;
	size_t		 i;

	w.b = out;
	w.err = 0;
	buf_reset(out);
	if (addresses == NULL || n < 1 || n > AD_MAX_USERS ||
	    (settings & AD_SETTINGS_ALL) == 0 ||
	    (settings & ~AD_SETTINGS_ALL) != 0 || sw_nonempty(&w, to) != 0) {
		w.err = -1;
		return (sw_end(&w));
	}
	sw_raw(&w, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<soap:Envelope xmlns:soap=\"" SOAP_NS_ENV "\""
	    " xmlns:a=\"" AD_NS "\" xmlns:wsa=\"" AD_NS_WSA "\""
	    " xmlns:xsi=\"" AD_NS_XSI "\"><soap:Header>");
	if (version != NULL && sw_nonempty(&w, version) == 0)
		sw_elem(&w, "a:RequestedServerVersion", version);
	sw_elem(&w, "wsa:Action", AD_ACTION_GET_USER_SETTINGS);
	sw_elem(&w, "wsa:To", to);
	sw_raw(&w, "</soap:Header><soap:Body><a:GetUserSettingsRequestMessage>"
	    "<a:Request><a:Users>");
	for (i = 0; i < n; i++) {
		if (sw_nonempty(&w, addresses[i]) != 0)
			continue;
		sw_raw(&w, "<a:User>");
		sw_elem(&w, "a:Mailbox", addresses[i]);
		sw_raw(&w, "</a:User>");
	}
	sw_raw(&w, "</a:Users><a:RequestedSettings>");
	for (i = 0; i < AD_SETTING_MAX; i++)
		if (settings & AD_SETTING_BIT(i))
			sw_elem(&w, "a:Setting",
			    ad_setting_name((enum ad_setting)i));
	sw_raw(&w, "</a:RequestedSettings></a:Request>"
	    "</a:GetUserSettingsRequestMessage>");
	return (sw_end(&w));
}

void
soap_send_notification_result(struct buf *out, bool unsubscribe)
{
	buf_reset(out);
	buf_printf(out, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<soap:Envelope xmlns:soap=\"" SOAP_NS_ENV "\""
	    " xmlns:m=\"" SOAP_NS_M "\"><soap:Body>"
	    "<m:SendNotificationResult><m:SubscriptionStatus>%s"
	    "</m:SubscriptionStatus></m:SendNotificationResult>"
	    "</soap:Body></soap:Envelope>\n", unsubscribe ? "Unsubscribe" :
	    "OK");
}
