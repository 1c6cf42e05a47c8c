/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The EWS side of reading a calendar: a CalendarView larger than one
 * FindItem answer (find_count_limit items) read in pages, and EWS
 * calendar items and free/busy events turned into the backend-neutral
 * timeline items of presence/timeline.h.  Pure: answers in, items out;
 * the caller sends the requests.
 */
#ifndef EWSGW_CALENDAR_H
#define EWSGW_CALENDAR_H

#include <stddef.h>
#include <stdint.h>

#include "ews/ews_parse.h"
#include "presence/timeline.h"

/* A CalendarView bigger than find_count_limit is read in this many pages. */
#define CALENDAR_MAX_PAGES	8

/* One CalendarView read, over its pages. */
struct calendar_read {
	struct timeline_item	*items;		/* owned */
	size_t			 n;
	int64_t			 from;		/* next page's StartDate; 0
						   before the first */
	unsigned		 page;		/* pages read after the first */
};

/* What to do after a page. */
enum calendar_next {
	CALENDAR_DONE,		/* the whole window is read */
	CALENDAR_MORE,		/* read the next page (calendar_read_from) */
	CALENDAR_TRUNCATED	/* more than CALENDAR_MAX_PAGES pages: what
				   was read is all there will be */
};

/* An empty read (nothing allocated). */
void		 calendar_read_init(struct calendar_read *);
/* Free the items; the read is empty again. */
void		 calendar_read_free(struct calendar_read *);
/* StartDate for the next FindItem: start (the window's) for the first. */
int64_t		 calendar_read_from(const struct calendar_read *,
		    int64_t start);
/*
 * Add one FindItem answer's items (cal borrowed).  More items than the
 * page held are read on from the last item's start (items starting
 * there come twice and are dropped here).  After CALENDAR_DONE or
 * CALENDAR_TRUNCATED, items[0..n) is the window's content.
 */
enum calendar_next calendar_read_add(struct calendar_read *,
		    const struct ews_calendar *);

/* calendar:LegacyFreeBusyStatus / BusyType as a timeline status. */
enum tl_status	 calendar_status(enum ews_fb);
/*
 * GetUserAvailability events (borrowed) as n timeline items: returns
 * allocated (at least one element), caller frees.
 */
struct timeline_item *calendar_from_freebusy(const struct ews_fb_event *,
		    size_t n);

#endif
