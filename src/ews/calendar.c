/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * CalendarView paging and EWS-to-timeline item conversion.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "base/xmalloc.h"
#include "ews/calendar.h"

void
calendar_read_init(struct calendar_read *cr)
{
	memset(cr, 0, sizeof *cr);
}

void
calendar_read_free(struct calendar_read *cr)
{
	free(cr->items);
	calendar_read_init(cr);
}

int64_t
calendar_read_from(const struct calendar_read *cr, int64_t start)
{
	return (cr->page > 0 ? cr->from : start);
}

enum tl_status
calendar_status(enum ews_fb fb)
{
	switch (fb) {
	case EWS_FB_FREE:		return (TL_FREE);
	case EWS_FB_TENTATIVE:		return (TL_TENTATIVE);
	case EWS_FB_BUSY:		return (TL_BUSY);
	case EWS_FB_OOF:		return (TL_OOF);
	case EWS_FB_WORKING_ELSEWHERE:	return (TL_WORKING_ELSEWHERE);
	default:			return (TL_NODATA);
	}
}

static int
cmp_item(const void *a, const void *b)
{
	const struct timeline_item	*x = a, *y = b;

	if (x->start != y->start)
		return (x->start < y->start ? -1 : 1);
	if (x->end != y->end)
		return (x->end < y->end ? -1 : 1);
	if (x->status != y->status)
		return ((int)x->status - (int)y->status);
	if (x->all_day != y->all_day)
		return ((int)x->all_day - (int)y->all_day);
	if (x->cancelled != y->cancelled)
		return ((int)x->cancelled - (int)y->cancelled);
	return ((int)x->sensitivity - (int)y->sensitivity);
}

/* Pages overlap where an item spans a page boundary: drop repeats. */
static size_t
unique_items(struct timeline_item *items, size_t n)
{
	size_t	 i, j;

	if (n < 2)
		return (n);
	qsort(items, n, sizeof *items, cmp_item);
	for (i = 1, j = 1; i < n; i++)
		if (cmp_item(&items[i], &items[j - 1]) != 0)
			items[j++] = items[i];
	return (j);
}

enum calendar_next
calendar_read_add(struct calendar_read *cr, const struct ews_calendar *cal)
{
	struct timeline_item	*it;
	size_t			 i;
	int64_t			 last = 0;
	bool			 more;

	cr->items = xreallocarray(cr->items, cr->n + cal->nitems + 1,
	    sizeof *cr->items);
	for (i = 0; i < cal->nitems; i++) {
		it = &cr->items[cr->n++];
		it->start = cal->items[i].start;
		it->end = cal->items[i].end;
		it->status = calendar_status(cal->items[i].fb);
		it->all_day = cal->items[i].all_day;
		it->cancelled = cal->items[i].cancelled;
		it->sensitivity =
		    (enum tl_sensitivity)cal->items[i].sensitivity;
		if (cal->items[i].start > last)
			last = cal->items[i].start;
	}
	more = !cal->includes_last && cal->nitems > 0;
	/* Read on from the last start, a bounded number of pages. */
	if (more && last > cr->from && ++cr->page < CALENDAR_MAX_PAGES) {
		cr->from = last;
		return (CALENDAR_MORE);
	}
	if (cr->page > 0)
		cr->n = unique_items(cr->items, cr->n);
	return (more ? CALENDAR_TRUNCATED : CALENDAR_DONE);
}

struct timeline_item *
calendar_from_freebusy(const struct ews_fb_event *ev, size_t n)
{
	struct timeline_item	*items;
	size_t			 i;

	items = xcalloc(n ? n : 1, sizeof *items);
	for (i = 0; i < n; i++) {
		items[i].start = ev[i].start;
		items[i].end = ev[i].end;
		items[i].status = calendar_status(ev[i].busy);
	}
	return (items);
}
