/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The tree-based EWS response parsers, the reference for the streaming
 * ones: the same signatures and contracts as ews_parse_*() in
 * src/ews/ews_parse.h.  Test code.
 */
#ifndef EWSGW_EWS_PARSE_DOM_H
#define EWSGW_EWS_PARSE_DOM_H

#include "ews/ews_parse.h"

int	 dom_parse_response(const char *, size_t, struct ews_response *,
	    char **);
int	 dom_parse_unsubscribe(const char *, size_t, struct ews_response *,
	    char **);
int	 dom_parse_subscribe(const char *, size_t, struct ews_subscribe *,
	    char **);
int	 dom_parse_get_events(const char *, size_t,
	    struct ews_notifications *, char **);
int	 dom_parse_send_notification(const char *, size_t,
	    struct ews_notifications *, char **);
int	 dom_parse_streaming(const char *, size_t, struct ews_streaming *,
	    char **);
int	 dom_parse_find_item(const char *, size_t, struct ews_calendar *,
	    char **);
int	 dom_parse_get_item(const char *, size_t, struct ews_items *, char **);
int	 dom_parse_availability(const char *, size_t,
	    struct ews_availability *, char **);
int	 dom_parse_oof(const char *, size_t, struct ews_oof *, char **);
int	 dom_parse_user_settings(const char *, size_t,
	    struct ews_user_settings *, char **);

#endif
