/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Graph error bodies, Retry-After and the action table.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "graph/graph_error.h"
#include "graph/gjson.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

int
graph_parse_error(const char *s, size_t len, struct graph_error *e)
{
	gjson_t		*root;
	const gjson_t	*err;
	const char	*code, *msg;
	char		*cause = NULL;

	memset(e, 0, sizeof *e);
	if ((root = gjson_parse(s, len, 64 * 1024, &cause)) == NULL) {
		free(cause);
		return (-1);
	}
	if ((err = gjson_obj(root, "error")) == NULL) {
		gjson_free(root);
		return (-1);
	}
	if ((code = gjson_str(err, "code")) != NULL)
		snprintf(e->code, sizeof e->code, "%s", code);
	if ((msg = gjson_str(err, "message")) != NULL)
		e->message = xstrndup(msg, 300);
	gjson_free(root);
	return (0);
}

void
graph_error_free(struct graph_error *e)
{
	free(e->message);
	memset(e, 0, sizeof *e);
}

enum graph_action
graph_classify(long status, const char *code)
{
	if (status >= 200 && status < 300)
		return (GRAPH_ACT_OK);
	switch (status) {
	case 429:
	case 503:
		return (GRAPH_ACT_THROTTLED);
	case 401:
		return (GRAPH_ACT_AUTH);
	case 403:
		return (GRAPH_ACT_DENIED);
	case 404:
		return (GRAPH_ACT_NOT_FOUND);
	case 410:
		return (GRAPH_ACT_RESYNC);
	}
	if (code != NULL && strcasecmp(code, "syncStateNotFound") == 0)
		return (GRAPH_ACT_RESYNC);
	if (status >= 400 && status < 500 && graph_no_mailbox(code))
		return (GRAPH_ACT_NOT_FOUND);
	if (status == 0 || status >= 500)
		return (GRAPH_ACT_TRANSIENT);
	return (GRAPH_ACT_FATAL);
}

bool
graph_no_mailbox(const char *code)
{
	static const char *const codes[] = {
		"MailboxNotEnabledForRESTAPI", "MailboxNotSupportedForRESTAPI",
		"ErrorInvalidUser", "ResourceNotFound"
	};
	size_t	 i;

	for (i = 0; code != NULL && i < sizeof codes / sizeof codes[0]; i++)
		if (strcasecmp(code, codes[i]) == 0)
			return (true);
	return (false);
}

const char *
graph_action_name(enum graph_action a)
{
	static const char *const names[GRAPH_ACT_MAX] = {
		"ok", "throttled", "auth", "denied", "not-found", "resync",
		"transient", "fatal"
	};

	return (a < GRAPH_ACT_MAX ? names[a] : "?");
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" into epoch seconds; 0 or -1. */
static int
http_date(const char *s, int64_t *out)
{
	static const char	 mon[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char			 m[4];
	const char		*p;
	int			 d, y, hh, mm, ss, n = 0;

	if ((p = strchr(s, ',')) == NULL)
		return (-1);
	if (sscanf(p + 1, " %2d %3s %4d %2d:%2d:%2d GMT%n", &d, m, &y, &hh,
	    &mm, &ss, &n) != 6 || n == 0)
		return (-1);
	if ((p = strstr(mon, m)) == NULL || (p - mon) % 3 != 0 || d < 1 ||
	    d > 31 || hh > 23 || mm > 59 || ss > 60 || y < 1970)
		return (-1);
	{
		char	 iso[32];
		int	 k;

		k = snprintf(iso, sizeof iso, "%04d-%02d-%02dT%02d:%02d:%02dZ",
		    y, (int)((p - mon) / 3 + 1), d, hh, mm, ss);
		return (time_parse_iso8601(iso, (size_t)k, out));
	}
}

int64_t
graph_retry_after(const char *v, int64_t now)
{
	int64_t		 s = 0, when;
	const char	*p;

	if (v == NULL)
		return (-1);
	while (*v == ' ')
		v++;
	if (isdigit((unsigned char)*v)) {
		for (p = v; isdigit((unsigned char)*p); p++)
			if (s < GRAPH_RETRY_AFTER_SAT_S)
				s = s * 10 + (*p - '0');
		while (*p == ' ')
			p++;
		if (*p != '\0')
			return (-1);
	} else if (http_date(v, &when) == 0)
		s = when - now;
	else
		return (-1);
	if (s < 0)
		s = 0;
	return (s > GRAPH_RETRY_AFTER_SAT_S ? GRAPH_RETRY_AFTER_SAT_S : s);
}
