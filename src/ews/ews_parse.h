/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * EWS response parsing: a SOAP document in, small typed structs out,
 * read in one streaming pass (xmlread.h) without building a tree; no
 * network, no DTDs, bounded size and depth.
 */
#ifndef EWSGW_EWS_PARSE_H
#define EWSGW_EWS_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ews/autodiscover.h"

#define EWS_MAX_DOC	(16 * 1024 * 1024)	/* bytes per document */
#define EWS_MAX_DEPTH	64			/* element nesting */

/* ResponseClass. */
enum ews_class {
	EWS_CLASS_NONE,		/* no response message (e.g. absent) */
	EWS_CLASS_SUCCESS,
	EWS_CLASS_WARNING,
	EWS_CLASS_ERROR
};

/* The outcome of one response message, or of a SOAP Fault. */
struct ews_status {
	enum ews_class	 class;
	char		 code[64];	/* ResponseCode, "" if absent;
					   truncated if longer */
	char		*message;	/* MessageText or NULL; owned */
	int64_t		 backoff_ms;	/* MessageXml BackOffMilliseconds,
					   0 if absent */
};

/* t:ServerVersionInfo from the SOAP header. */
struct ews_version {
	bool		 present;
	int		 major;
	int		 minor;
	int		 major_build;
	int		 minor_build;
	char		 version[48];	/* Version attribute, "" if absent */
};

/* What every parsed envelope reports. */
struct ews_response {
	struct ews_version version;
	bool		 fault;		/* the Body held a SOAP Fault */
	char		*faultstring;	/* fault only; owned */
	/*
	 * Fault: class ERROR, code = detail ResponseCode (or the local part
	 * of faultcode), message = detail Message.  Otherwise the status of
	 * the first response message with class ERROR, else of the first.
	 */
	struct ews_status status;
};

/* What to do about a ResponseCode; see ews_classify(). */
enum ews_action {
	EWS_ACT_OK,
	EWS_ACT_THROTTLED,	/* honour backoff_ms, fewer connections */
	EWS_ACT_RESUBSCRIBE,	/* subscription gone: subscribe again */
	EWS_ACT_RESYNC,		/* events lost: fresh subscription + resync */
	EWS_ACT_REDISCOVER,	/* mailbox moved: Autodiscover, regroup */
	EWS_ACT_PARK,		/* this mailbox cannot be served (rights,
				   unknown address): stop retrying it */
	EWS_ACT_AUTH,		/* the service account's credentials */
	EWS_ACT_TRANSIENT,	/* back off and retry */
	EWS_ACT_FATAL,		/* a request the server will never accept,
				   or an unknown code: do not retry blindly */
	EWS_ACT_MAX
};

/* Map a ResponseCode ("NoError", "ErrorServerBusy", ...) to an action. */
enum ews_action	 ews_classify(const char *code);
/* The action for a whole status (class plus code). */
enum ews_action	 ews_status_action(const struct ews_status *);
const char	*ews_action_name(enum ews_action);
/*
 * Codes that are about the service account's login, not the request:
 * an expired password, one that must be changed, a disabled account.
 */
bool		 ews_code_login_refused(const char *code);
/* Codes refusing to impersonate the mailbox named in the request. */
bool		 ews_code_impersonation_refused(const char *code);
const char	*ews_class_name(enum ews_class);

/* LegacyFreeBusyStatus / LegacyFreeBusyType, in MergedFreeBusy order. */
enum ews_fb {
	EWS_FB_FREE,
	EWS_FB_TENTATIVE,
	EWS_FB_BUSY,
	EWS_FB_OOF,
	EWS_FB_WORKING_ELSEWHERE,
	EWS_FB_NODATA
};
enum ews_sensitivity {
	EWS_SENS_NORMAL, EWS_SENS_PERSONAL, EWS_SENS_PRIVATE,
	EWS_SENS_CONFIDENTIAL
};
enum ews_item_type {
	EWS_ITEM_SINGLE, EWS_ITEM_OCCURRENCE, EWS_ITEM_EXCEPTION,
	EWS_ITEM_RECURRING_MASTER
};
const char	*ews_fb_name(enum ews_fb);

/* One calendar item from FindItem/CalendarView or GetItem. */
struct ews_cal_item {
	char		*id;		/* ItemId Id; owned */
	char		*change_key;	/* owned, NULL if absent */
	char		*subject;	/* owned, NULL if absent; honour
					   sensitivity before showing it */
	int64_t		 start;		/* seconds since the epoch (UTC) */
	int64_t		 end;
	enum ews_fb	 fb;		/* Busy if absent, NoData if unknown */
	enum ews_sensitivity sensitivity;	/* Normal if absent */
	enum ews_item_type type;	/* Single if absent */
	bool		 all_day;
	bool		 cancelled;
};

/* FindItem with CalendarView. */
struct ews_calendar {
	struct ews_response r;
	struct ews_cal_item *items;	/* owned */
	size_t		 nitems;
	unsigned	 total_in_view;		/* TotalItemsInView */
	bool		 includes_last;		/* IncludesLastItemInRange */
};

/* GetItem: one message per requested id, in request order. */
struct ews_item_msg {
	struct ews_status status;
	bool		 has_item;	/* a CalendarItem came back */
	struct ews_cal_item item;
};
struct ews_items {
	struct ews_response r;
	struct ews_item_msg *msgs;	/* owned */
	size_t		 nmsgs;
};

/* Notification events. */
enum ews_event_type {
	EWS_EV_CREATED, EWS_EV_MODIFIED, EWS_EV_DELETED, EWS_EV_MOVED,
	EWS_EV_COPIED, EWS_EV_NEWMAIL, EWS_EV_FREEBUSY, EWS_EV_STATUS
};
const char	*ews_event_name(enum ews_event_type);

struct ews_event {
	enum ews_event_type type;
	char		*watermark;	/* owned; NULL (streaming) if absent */
	int64_t		 timestamp;	/* 0 for StatusEvent */
	bool		 folder;	/* id/old_id name folders, not items */
	char		*id;		/* ItemId/FolderId Id; NULL: Status */
	char		*parent_id;	/* ParentFolderId Id */
	char		*old_id;	/* Moved/Copied: OldItemId or
					   OldFolderId */
	char		*old_parent_id;	/* Moved/Copied: OldParentFolderId */
};

struct ews_notification {
	char		*subscription_id;	/* owned */
	char		*previous_watermark;	/* owned, NULL if absent */
	bool		 more_events;
	struct ews_event *events;		/* owned */
	size_t		 nevents;
};

/* A response message carrying at most one notification. */
struct ews_notif_msg {
	struct ews_status status;
	bool		 has_notification;
	struct ews_notification notification;
};

/* GetEvents response or a push SendNotification request body. */
struct ews_notifications {
	struct ews_response r;
	struct ews_notif_msg *msgs;	/* owned */
	size_t		 nmsgs;
};

enum ews_conn_status { EWS_CONN_NONE, EWS_CONN_OK, EWS_CONN_CLOSED };

/* One GetStreamingEventsResponseMessage. */
struct ews_stream_msg {
	struct ews_status status;
	struct ews_notification *notifications;	/* owned */
	size_t		 nnotifications;
	char		**error_ids;	/* ErrorSubscriptionIds; owned */
	size_t		 nerror_ids;
	enum ews_conn_status conn;	/* ConnectionStatus */
};

/* One envelope of a GetStreamingEvents response. */
struct ews_streaming {
	struct ews_response r;
	struct ews_stream_msg *msgs;	/* owned */
	size_t		 nmsgs;
};

struct ews_subscribe {
	struct ews_response r;
	char		*subscription_id;	/* owned; set on success */
	char		*watermark;		/* owned; push/pull only */
};

enum ews_oof_state { EWS_OOF_DISABLED, EWS_OOF_ENABLED, EWS_OOF_SCHEDULED };

struct ews_oof {
	struct ews_response r;
	enum ews_oof_state state;
	bool		 has_duration;
	int64_t		 start;		/* Duration, UTC; meaningful only */
	int64_t		 end;		/* when state is SCHEDULED */
};

/* GetUserAvailability: one entry per requested mailbox, in order. */
struct ews_fb_event {
	int64_t		 start;
	int64_t		 end;
	enum ews_fb	 busy;		/* BusyType */
};
struct ews_fb_mailbox {
	struct ews_status status;
	char		*merged;	/* MergedFreeBusy digits; owned, NULL
					   if absent */
	struct ews_fb_event *events;	/* owned */
	size_t		 nevents;
};
struct ews_availability {
	struct ews_response r;
	struct ews_fb_mailbox *mailboxes;	/* owned */
	size_t		 nmailboxes;
};

/* Autodiscover GetUserSettings. */
struct ews_user_settings {
	struct ews_response r;	/* a SOAP Fault, else the Response's
				   ErrorCode: class Success for NoError,
				   Error otherwise, with its ErrorMessage */
	enum ad_error	 error;		/* the Response's ErrorCode */
	struct ad_user	*users;		/* owned; the UserResponses in the
					   order the users were asked, maybe
					   fewer (a throttled server stops
					   early) */
	size_t		 nusers;
};

/*
 * Parsers.  Each takes a whole response document of len bytes (borrowed)
 * and fills *out, which it initialises first.  They return 0 when the
 * document is a SOAP envelope holding either the expected response or a
 * SOAP Fault (check out->r.fault and out->r.status), and -1 with *cause
 * (allocated, caller frees; may be NULL) when it is not XML, too large or
 * deep, has a DOCTYPE, is another operation's response, or lacks an
 * element a successful response requires.  Always release *out with the
 * matching _free function, whatever the result.
 */
int	 ews_parse_response(const char *, size_t, struct ews_response *,
	    char **cause);	/* any operation, e.g. Unsubscribe */
int	 ews_parse_subscribe(const char *, size_t, struct ews_subscribe *,
	    char **cause);
int	 ews_parse_unsubscribe(const char *, size_t, struct ews_response *,
	    char **cause);
int	 ews_parse_get_events(const char *, size_t,
	    struct ews_notifications *, char **cause);
int	 ews_parse_send_notification(const char *, size_t,
	    struct ews_notifications *, char **cause);
int	 ews_parse_streaming(const char *, size_t, struct ews_streaming *,
	    char **cause);
int	 ews_parse_find_item(const char *, size_t, struct ews_calendar *,
	    char **cause);
int	 ews_parse_get_item(const char *, size_t, struct ews_items *,
	    char **cause);
int	 ews_parse_availability(const char *, size_t,
	    struct ews_availability *, char **cause);
int	 ews_parse_oof(const char *, size_t, struct ews_oof *, char **cause);
/* The Body holds a:GetUserSettingsResponseMessage, not an EWS message. */
int	 ews_parse_user_settings(const char *, size_t,
	    struct ews_user_settings *, char **cause);

/*
 * Free the parser this thread keeps between documents (at exit, so that
 * nothing is left allocated; the next parse makes a new one).
 */
void	 ews_parse_cleanup(void);

void	 ews_response_free(struct ews_response *);
void	 ews_subscribe_free(struct ews_subscribe *);
void	 ews_notifications_free(struct ews_notifications *);
void	 ews_streaming_free(struct ews_streaming *);
void	 ews_calendar_free(struct ews_calendar *);
void	 ews_items_free(struct ews_items *);
void	 ews_availability_free(struct ews_availability *);
void	 ews_oof_free(struct ews_oof *);
void	 ews_user_settings_free(struct ews_user_settings *);
void	 ews_status_free(struct ews_status *);

#endif
