/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * SOAP Autodiscover: the user settings ewsgw asks for (what groups
 * mailboxes by their Mailbox server), the per-user answer, where to look
 * for the service and how to group by the answer.  Pure.  The request is
 * built by soap_get_user_settings(), the answer parsed by
 * ews_parse_user_settings().
 */
#ifndef EWSGW_AUTODISCOVER_H
#define EWSGW_AUTODISCOVER_H

#include <stdbool.h>
#include <stddef.h>

#define AD_NS	"http://schemas.microsoft.com/exchange/2010/Autodiscover"
#define AD_NS_WSA	"http://www.w3.org/2005/08/addressing"
#define AD_NS_XSI	"http://www.w3.org/2001/XMLSchema-instance"
/* wsa:Action of the request. */
#define AD_ACTION_GET_USER_SETTINGS AD_NS "/Autodiscover/GetUserSettings"

#define AD_MAX_USERS		100	/* mailboxes per GetUserSettings */
#define AD_MAX_CANDIDATES	2	/* see ad_candidates() */
#define AD_MAX_DOMAIN		253	/* DNS name, without a final dot */

/* The settings ewsgw reads (SOAP Autodiscover Setting names). */
enum ad_setting {
	AD_GROUPING_INFORMATION,	/* Exchange 2013 SP1 and later */
	AD_EXTERNAL_EWS_URL,
	AD_INTERNAL_EWS_URL,
	AD_INTERNAL_MAILBOX_SERVER,	/* the Mailbox server's FQDN */
	AD_EXTERNAL_MAILBOX_SERVER,	/* the RPC over HTTP server */
	AD_SETTING_MAX
};
#define AD_SETTING_BIT(s)	(1u << (s))
#define AD_SETTINGS_ALL		((1u << AD_SETTING_MAX) - 1)

/* Setting name ("GroupingInformation"); NULL when out of range. */
const char	*ad_setting_name(enum ad_setting);
/* AD_SETTING_MAX when the name is not one ewsgw reads. */
enum ad_setting	 ad_setting_from_name(const char *);

/* Autodiscover ErrorCode values (Response, UserResponse, UserSettingError). */
enum ad_error {
	AD_ERR_NONE,			/* NoError, or no ErrorCode at all */
	AD_ERR_REDIRECT_ADDRESS,	/* ask again with RedirectTarget */
	AD_ERR_REDIRECT_URL,		/* ask RedirectTarget (https only) */
	AD_ERR_INVALID_USER,
	AD_ERR_INVALID_REQUEST,
	AD_ERR_INVALID_SETTING,
	AD_ERR_SETTING_NOT_AVAILABLE,
	AD_ERR_SERVER_BUSY,		/* retry later, or the next URL */
	AD_ERR_INVALID_DOMAIN,
	AD_ERR_NOT_FEDERATED,
	AD_ERR_INTERNAL_SERVER_ERROR,
	AD_ERR_OTHER,			/* a code not documented */
	AD_ERR_MAX
};
enum ad_error	 ad_error_from_code(const char *);
const char	*ad_error_name(enum ad_error);
/* ServerBusy and InternalServerError: the same question may work later. */
bool		 ad_error_transient(enum ad_error);

/* One UserResponse, in the order the users were asked. */
struct ad_user {
	enum ad_error	 error;
	char		 code[48];	/* ErrorCode as sent, "" if absent */
	char		*message;	/* ErrorMessage; owned, NULL */
	char		*redirect;	/* RedirectTarget (address or URL);
					   owned, NULL if absent or nil */
	char		*values[AD_SETTING_MAX]; /* owned; NULL: not sent */
	unsigned	 missing;	/* AD_SETTING_BITs named in
					   UserSettingErrors */
};
/* Free the strings of one user and clear it. */
void		 ad_user_free(struct ad_user *);

/*
 * The SOAP Autodiscover URLs to try for an address's domain (or a bare
 * domain), in Microsoft's order: https://DOMAIN/autodiscover/
 * autodiscover.svc, then https://autodiscover.DOMAIN/autodiscover/
 * autodiscover.svc.  Fills out with allocated strings (caller frees) and
 * returns how many (AD_MAX_CANDIDATES), or 0 when the domain is not a
 * valid DNS host name (nothing is allocated then).
 */
size_t		 ad_candidates(const char *address_or_domain,
		    char *out[AD_MAX_CANDIDATES]);
/* Whether a RedirectUrl target may be followed: an https URL with a host. */
bool		 ad_redirect_url_ok(const char *);
/*
 * Whether an Autodiscover target is Exchange Online: an address in a
 * tenant's routing domain (*.mail.onmicrosoft.com, what a hybrid
 * on-premises server redirects a migrated mailbox to: its remote routing
 * address), or an https URL on outlook.office365.com, outlook.office.com
 * or autodiscover-s.outlook.com (its EWS or Autodiscover service).
 */
bool		 ad_exchange_online(const char *address_or_url);

/*
 * The key that puts mailboxes of one Mailbox server into one group
 * (Microsoft: ExternalEwsUrl and GroupingInformation concatenated).
 * Without ExternalEwsUrl the InternalEwsUrl stands in; without
 * GroupingInformation (before Exchange 2013 SP1) the InternalMailboxServer.
 * Returns allocated (caller frees), or NULL when the answer has neither an
 * EWS URL nor a grouping value to group by.
 */
char		*ad_group_key(const struct ad_user *);

#endif
