/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * EWS request builders: complete SOAP 1.1 envelopes written into a buffer,
 * with every caller-supplied string escaped on the way in.  Pure.
 */
#ifndef EWSGW_SOAP_H
#define EWSGW_SOAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/conf.h"
#include "ews/autodiscover.h"

#define SOAP_NS_ENV	"http://schemas.xmlsoap.org/soap/envelope/"
#define SOAP_NS_EX	"http://schemas.microsoft.com/exchange/services/2006/"
#define SOAP_NS_M	SOAP_NS_EX "messages"
#define SOAP_NS_T	SOAP_NS_EX "types"
#define SOAP_NS_E	SOAP_NS_EX "errors"

/* Protocol limits the builders enforce (EWS-NOTES sections 2, 3, 7). */
#define SOAP_MAX_STREAM_IDS	200	/* ids per GetStreamingEvents */
#define SOAP_MAX_AVAIL_MAILBOXES 100	/* mailboxes per GetUserAvailability */
#define SOAP_MAX_URL_LEN	2082	/* push URL */

/* Whom to impersonate: t:ExchangeImpersonation/t:ConnectingSID/... */
struct soap_ident {
	enum conf_idtype	 type;	/* SMTP -> SmtpAddress, UPN ->
					   PrincipalName, SID -> SID */
	const char		*value;	/* borrowed; non-empty */
};

/* The SOAP header every request carries. */
struct soap_header {
	const char		*version;	/* RequestServerVersion, e.g.
						   "Exchange2013_SP1"; NULL
						   omits the element */
	const struct soap_ident	*impersonate;	/* NULL: no impersonation */
};

/* Event types to subscribe to (bit mask). */
#define SOAP_EV_CREATED		0x01
#define SOAP_EV_MODIFIED	0x02
#define SOAP_EV_DELETED		0x04
#define SOAP_EV_MOVED		0x08
#define SOAP_EV_COPIED		0x10
#define SOAP_EV_NEWMAIL		0x20
#define SOAP_EV_FREEBUSY	0x40	/* Exchange 2010 SP1 and later */
#define SOAP_EV_ALL		0x7f
/* What a calendar watcher needs. */
#define SOAP_EV_CALENDAR	(SOAP_EV_CREATED | SOAP_EV_MODIFIED | \
	SOAP_EV_DELETED | SOAP_EV_MOVED | SOAP_EV_COPIED | SOAP_EV_FREEBUSY)

/* t:FreeBusyViewOptions/t:RequestedView. */
enum soap_fb_view {
	SOAP_FB_VIEW_FREEBUSY,		/* CalendarEvent with BusyType */
	SOAP_FB_VIEW_DETAILED,		/* plus CalendarEventDetails */
	SOAP_FB_VIEW_FREEBUSY_MERGED,	/* FreeBusy plus MergedFreeBusy */
	SOAP_FB_VIEW_MERGED_ONLY
};

/*
 * Every builder replaces the contents of out with one complete request
 * document and returns 0, or -1 when an argument is out of range or a
 * string is not valid UTF-8 XML character data (out is then empty).
 * Strings are borrowed; times are seconds since the epoch and written as
 * UTC ("...Z").  Header fields are escaped like everything else.
 */

/* Subscribe: streaming subscription on the calendar folder. */
int	 soap_subscribe_streaming(struct buf *out, const struct soap_header *,
	    unsigned events);
/*
 * The same on mailbox's calendar as its delegate (DistinguishedFolderId
 * with t:Mailbox; mailbox NULL is the plain request).  Sent without
 * impersonation the subscription belongs to the account: Exchange refuses
 * that (ErrorSubscriptionDelegateAccessNotSupported), servers that take a
 * subscription only on a stream opened by its owner accept it from an
 * account with rights on the calendar.
 */
int	 soap_subscribe_streaming_delegate(struct buf *out,
	    const struct soap_header *, unsigned events, const char *mailbox);
/*
 * Subscribe: push subscription on the calendar folder; url is where
 * Exchange POSTs (1..2082 bytes), status_frequency 1..1440 minutes,
 * watermark NULL for a fresh subscription.
 */
int	 soap_subscribe_push(struct buf *out, const struct soap_header *,
	    unsigned events, const char *url, unsigned status_frequency,
	    const char *watermark);
/* Subscribe: pull subscription; timeout 1..1440 minutes. */
int	 soap_subscribe_pull(struct buf *out, const struct soap_header *,
	    unsigned events, unsigned timeout, const char *watermark);
/* GetStreamingEvents for 1..200 ids, connection_timeout 1..30 minutes. */
int	 soap_get_streaming_events(struct buf *out, const struct soap_header *,
	    const char *const *ids, size_t nids, unsigned connection_timeout);
/* GetEvents (pull): the subscription and the last watermark received. */
int	 soap_get_events(struct buf *out, const struct soap_header *,
	    const char *subscription_id, const char *watermark);
/* Unsubscribe (pull and streaming subscriptions). */
int	 soap_unsubscribe(struct buf *out, const struct soap_header *,
	    const char *subscription_id);
/*
 * FindItem with a CalendarView [start, end) of the calendar folder
 * (end > start), IdOnly plus the properties ews_parse reads;
 * max_entries 0 leaves MaxEntriesReturned out.
 */
int	 soap_find_calendar_view(struct buf *out, const struct soap_header *,
	    int64_t start, int64_t end, unsigned max_entries);
/* GetItem for 1..n item ids with the same properties as FindItem. */
int	 soap_get_item(struct buf *out, const struct soap_header *,
	    const char *const *ids, size_t nids);
/*
 * GetUserAvailability for 1..100 SMTP addresses over [start, end) in
 * UTC; interval 5..1440 minutes (MergedFreeBusyIntervalInMinutes).
 */
int	 soap_get_user_availability(struct buf *out,
	    const struct soap_header *, const char *const *addresses,
	    size_t naddresses, int64_t start, int64_t end, unsigned interval,
	    enum soap_fb_view);
/* GetUserOofSettings for one mailbox. */
int	 soap_get_user_oof_settings(struct buf *out,
	    const struct soap_header *, const char *address);
/*
 * Autodiscover GetUserSettings, posted to autodiscover.svc rather than to
 * EWS: the AD_SETTING_BITs in settings (at least one) for 1..AD_MAX_USERS
 * SMTP addresses, answered in this order.  to is the URL the request is
 * posted to (wsa:To, required); version the RequestedServerVersion
 * ("Exchange2010" ... "Exchange2013_SP1"), NULL omits it.
 */
int	 soap_get_user_settings(struct buf *out, const char *to,
	    const char *version, const char *const *addresses, size_t n,
	    unsigned settings);
/*
 * The push listener's answer to SendNotification: SubscriptionStatus OK,
 * or Unsubscribe to end the subscription.  Cannot fail.
 */
void	 soap_send_notification_result(struct buf *out, bool unsubscribe);

/* Event type bit to its EventType name ("CreatedEvent"); NULL if unknown. */
const char *soap_event_name(unsigned bit);

/*
 * Append s to out as escaped XML character data (attr: also safe inside a
 * double-quoted attribute).  Returns -1, appending nothing, when s is not
 * valid UTF-8 or holds a character XML 1.0 forbids.
 */
int	 soap_escape(struct buf *out, const char *s, bool attr);

#endif
