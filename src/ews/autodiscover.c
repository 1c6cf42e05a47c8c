/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * SOAP Autodiscover model: setting and error names, the candidate URLs
 * for a domain, and the grouping key (Microsoft, "Maintain affinity
 * between a group of subscriptions and the Mailbox server").
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ews/autodiscover.h"
#include "base/xmalloc.h"

static bool	 domain_ok(const char *, size_t);

static const char *const setting_names[AD_SETTING_MAX] = {
	"GroupingInformation", "ExternalEwsUrl", "InternalEwsUrl",
	"InternalMailboxServer", "ExternalMailboxServer"
};

/* Indexed by enum ad_error; AD_ERR_OTHER has no code of its own. */
static const char *const error_names[AD_ERR_MAX] = {
	"NoError", "RedirectAddress", "RedirectUrl", "InvalidUser",
	"InvalidRequest", "InvalidSetting", "SettingIsNotAvailable",
	"ServerBusy", "InvalidDomain", "NotFederated", "InternalServerError",
	"Other"
};

const char *
ad_setting_name(enum ad_setting s)
{
	if ((unsigned)s >= AD_SETTING_MAX)
		return (NULL);
	return (setting_names[s]);
}

enum ad_setting
ad_setting_from_name(const char *name)
{
	unsigned	 i;

	if (name == NULL)
		return (AD_SETTING_MAX);
	for (i = 0; i < AD_SETTING_MAX; i++)
		if (strcmp(setting_names[i], name) == 0)
			return ((enum ad_setting)i);
	return (AD_SETTING_MAX);
}

enum ad_error
ad_error_from_code(const char *code)
{
	unsigned	 i;

	if (code == NULL || *code == '\0')
		return (AD_ERR_NONE);
	for (i = 0; i < AD_ERR_OTHER; i++)
		if (strcmp(error_names[i], code) == 0)
			return ((enum ad_error)i);
	return (AD_ERR_OTHER);
}

const char *
ad_error_name(enum ad_error e)
{
	if ((unsigned)e >= AD_ERR_MAX)
		return ("Other");
	return (error_names[e]);
}

bool
ad_error_transient(enum ad_error e)
{
	return (e == AD_ERR_SERVER_BUSY || e == AD_ERR_INTERNAL_SERVER_ERROR);
}

void
ad_user_free(struct ad_user *u)
{
	unsigned	 i;

	free(u->message);
	free(u->redirect);
	for (i = 0; i < AD_SETTING_MAX; i++)
		free(u->values[i]);
	memset(u, 0, sizeof(*u));
}

/* RFC 1123 host name: LDH labels of 1..63, no hyphen at either end. */
static bool
domain_ok(const char *d, size_t len)
{
	size_t	 i, label = 0;

	if (len == 0 || len > AD_MAX_DOMAIN)
		return (false);
	for (i = 0; i < len; i++) {
		if (d[i] == '.') {
			if (label == 0 || d[i - 1] == '-')
				return (false);
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)d[i]) && d[i] != '-')
			return (false);
		if (label == 0 && d[i] == '-')
			return (false);
		if (++label > 63)
			return (false);
	}
	return (label > 0 && d[len - 1] != '-');
}

size_t
ad_candidates(const char *s, char *out[AD_MAX_CANDIDATES])
{
	const char	*at, *d;
	char		*lower;
	size_t		 len, i;

	if (s == NULL)
		return (0);
	d = (at = strrchr(s, '@')) != NULL ? at + 1 : s;
	len = strlen(d);
	if (len > 0 && d[len - 1] == '.')
		len--;		/* a fully qualified name's root dot */
	if (!domain_ok(d, len))
		return (0);
	lower = xstrndup(d, len);
	for (i = 0; i < len; i++)
		lower[i] = (char)tolower((unsigned char)lower[i]);
	xasprintf(&out[0], "https://%s/autodiscover/autodiscover.svc", lower);
	xasprintf(&out[1], "https://autodiscover.%s/autodiscover/"
	    "autodiscover.svc", lower);
	free(lower);
	return (AD_MAX_CANDIDATES);
}

bool
ad_redirect_url_ok(const char *url)
{
	static const char	 scheme[] = "https://";
	const char		*host;

	if (url == NULL || strncasecmp(url, scheme, sizeof(scheme) - 1) != 0)
		return (false);
	host = url + sizeof(scheme) - 1;
	if (*host == '\0' || *host == '/' || *host == ':' || *host == '@')
		return (false);
	for (; *host != '\0'; host++)
		if ((unsigned char)*host <= ' ' || *host == 0x7f)
			return (false);
	return (true);
}

/* Whether host (len bytes) is name or ends in "." name, any case. */
static bool
host_is(const char *host, size_t len, const char *name)
{
	size_t	 n = strlen(name);

	if (len < n || strncasecmp(host + len - n, name, n) != 0)
		return (false);
	return (len == n || host[len - n - 1] == '.');
}

bool
ad_exchange_online(const char *s)
{
	static const char *const hosts[] = {
		"outlook.office365.com", "outlook.office.com",
		"autodiscover-s.outlook.com"
	};
	static const char	 scheme[] = "https://";
	const char		*h, *at;
	size_t			 len, i;

	if (s == NULL)
		return (false);
	if (strncasecmp(s, scheme, sizeof(scheme) - 1) != 0) {
		if ((at = strrchr(s, '@')) == NULL)
			return (false);
		h = at + 1;
		len = strlen(h);
		return (len > 0 && h[len - 1] != '.' &&
		    host_is(h, len, "mail.onmicrosoft.com") &&
		    len > sizeof("mail.onmicrosoft.com"));
	}
	h = s + sizeof(scheme) - 1;
	len = strcspn(h, ":/?#");
	for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
		if (len == strlen(hosts[i]) &&
		    strncasecmp(h, hosts[i], len) == 0)
			return (true);
	return (false);
}

char *
ad_group_key(const struct ad_user *u)
{
	const char	*url, *grouping;
	char		*key;

	url = u->values[AD_EXTERNAL_EWS_URL];
	if (url == NULL || *url == '\0')
		url = u->values[AD_INTERNAL_EWS_URL];
	grouping = u->values[AD_GROUPING_INFORMATION];
	if (grouping == NULL || *grouping == '\0')
		grouping = u->values[AD_INTERNAL_MAILBOX_SERVER];
	if ((url == NULL || *url == '\0') &&
	    (grouping == NULL || *grouping == '\0'))
		return (NULL);
	/* A separator, so that "ab"+"c" and "a"+"bc" stay apart. */
	xasprintf(&key, "%s\n%s", url != NULL ? url : "",
	    grouping != NULL ? grouping : "");
	return (key);
}
