/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Microsoft Graph calendar reads, pure: calendarView and
 * calendarView/delta request URLs, their pages parsed into the same
 * struct ews_cal_item the EWS path produces, and
 * mailboxSettings/automaticRepliesSetting into struct ews_oof.  Every
 * request asks for UTC (GRAPH_PREFER_UTC); an item in another zone is
 * skipped and counted, never guessed.
 */
#ifndef EWSGW_GRAPH_CAL_H
#define EWSGW_GRAPH_CAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ews/ews_parse.h"

struct buf;

#define GRAPH_DEFAULT_URL	"https://graph.microsoft.com/v1.0"
/* The header every calendar read sends (name, value). */
#define GRAPH_PREFER		"Prefer"
#define GRAPH_PREFER_UTC	"outlook.timezone=\"UTC\""
#define GRAPH_PAGE_SIZE		100	/* odata.maxpagesize / $top */
#define GRAPH_MAX_LINK		4096	/* nextLink/deltaLink bytes */

/*
 * Append base (e.g. GRAPH_DEFAULT_URL, no trailing slash) +
 * "/users/{user}/calendarView?startDateTime=..&endDateTime=..&..." to b.
 * user (an id or UPN) is percent-encoded as one path segment.  delta:
 * the calendarView/delta form (no $select, which delta refuses).
 */
void	 graph_calview_url(struct buf *b, const char *base, const char *user,
	    int64_t start, int64_t end, bool delta);
/* The relative form for a $batch request ("/users/..."). */
void	 graph_calview_path(struct buf *b, const char *user, int64_t start,
	    int64_t end, bool delta);
/* base + "/users/{user}/mailboxSettings/automaticRepliesSetting". */
void	 graph_auto_replies_url(struct buf *b, const char *base,
	    const char *user);
void	 graph_auto_replies_path(struct buf *b, const char *user);
/* Append user percent-encoded as a path segment. */
void	 graph_put_segment(struct buf *b, const char *user);

/* One page of calendarView or calendarView/delta. */
struct graph_page {
	struct ews_cal_item *items;	/* owned; change_key = @odata.etag */
	size_t		 nitems;
	char		**removed;	/* owned; ids of "@removed" entries */
	size_t		 nremoved;
	size_t		 nskipped;	/* items not in UTC or unreadable */
	char		*next_link;	/* owned; @odata.nextLink or NULL */
	char		*delta_link;	/* owned; @odata.deltaLink or NULL */
};

/*
 * Parse one page.  Returns 0, or -1 with *cause (allocated) when the body
 * is not JSON, too large or deep, has no "value" array, or has a link
 * that is not https or longer than GRAPH_MAX_LINK.  Always release *out
 * with graph_page_free.
 */
int	 graph_parse_calview(const char *, size_t, struct graph_page *,
	    char **cause);
void	 graph_page_free(struct graph_page *);

/*
 * automaticRepliesSetting (the object itself, or a mailboxSettings object
 * holding it) into out (out->r is left empty).  status disabled,
 * alwaysEnabled or scheduled; scheduled needs scheduledStartDateTime and
 * scheduledEndDateTime in UTC.  0, or -1 with *cause.
 */
int	 graph_parse_auto_replies(const char *, size_t, struct ews_oof *,
	    char **cause);

#endif
