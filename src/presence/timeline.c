/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Per-mailbox calendar timeline: packed entries relative to a base, so a
 * typical week of meetings costs a few hundred bytes per mailbox.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "presence/timeline.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

/* Sane instants: 1970 to the end of year 9999. */
#define TL_TIME_MIN	0
#define TL_TIME_MAX	INT64_C(253402300800)

static int	 entry_cmp(const void *, const void *);
static int64_t	 clamp_add(int64_t, int64_t);
static bool	 item_keep(const struct timeline_item *, int64_t, int64_t,
		    int64_t *);
static int	 name_lookup(const char *const *, int, const char *, size_t);
static void	 decode(const struct timeline *, const struct timeline_entry *,
		    struct timeline_span *);

static const char *const status_names[TL_STATUS_MAX] = {
	[TL_FREE] = "Free",
	[TL_TENTATIVE] = "Tentative",
	[TL_BUSY] = "Busy",
	[TL_OOF] = "OOF",
	[TL_WORKING_ELSEWHERE] = "WorkingElsewhere",
	[TL_NODATA] = "NoData",
};

static const char *const sensitivity_names[TL_SENSITIVITY_MAX] = {
	[TL_NORMAL] = "Normal",
	[TL_PERSONAL] = "Personal",
	[TL_PRIVATE] = "Private",
	[TL_CONFIDENTIAL] = "Confidential",
};

void
timeline_init(struct timeline *tl)
{
	memset(tl, 0, sizeof(*tl));
}

void
timeline_free(struct timeline *tl)
{
	free(tl->entries);
	timeline_init(tl);
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct timeline_entry	*x = a, *y = b;

	if (x->start != y->start)
		return (x->start < y->start ? -1 : 1);
	if (x->duration != y->duration)
		return (x->duration < y->duration ? -1 : 1);
	return ((int)x->flags - (int)y->flags);
}

/* a + b saturated to the sane range (b may be negative). */
static int64_t
clamp_add(int64_t a, int64_t b)
{
	if (b > 0 && a > TL_TIME_MAX - b)
		return (TL_TIME_MAX);
	if (b < 0 && a < TL_TIME_MIN - b)
		return (TL_TIME_MIN);
	return (a + b);
}

/* Whether an item is kept, with its end clamped into *end. */
static bool
item_keep(const struct timeline_item *it, int64_t lo, int64_t hi,
    int64_t *end)
{
	if (it->cancelled)
		return (false);
	if ((unsigned)it->status >= TL_STATUS_MAX)
		return (false);
	if (it->start < TL_TIME_MIN || it->start >= TL_TIME_MAX)
		return (false);
	*end = it->end > TL_TIME_MAX ? TL_TIME_MAX : it->end;
	if (*end <= it->start)
		return (false);
	/* Overlaps [lo, hi). */
	return (*end > lo && it->start < hi);
}

size_t
timeline_build(struct timeline *tl, const struct timeline_item *items,
    size_t n, int64_t now, int64_t lookback, int64_t horizon)
{
	struct timeline_entry	*e = NULL;
	int64_t			 lo, hi, base, end, start;
	size_t			 i, k = 0;
	unsigned		 sens;

	if (lookback < 0)
		lookback = 0;
	if (horizon < 0)
		horizon = 0;
	lo = clamp_add(now, -lookback);
	hi = clamp_add(now, horizon);

	/* The base is the earliest start, but never so early that the
	 * window end would no longer fit in 32 bits. */
	base = lo;
	for (i = 0; i < n; i++) {
		if (item_keep(&items[i], lo, hi, &end) &&
		    items[i].start < base)
			base = items[i].start;
	}
	if (base < lo - (int64_t)(UINT32_MAX / 2))
		base = lo - (int64_t)(UINT32_MAX / 2);

	if (n > 0)
		e = xreallocarray(NULL, n, sizeof(*e));
	for (i = 0; i < n; i++) {
		if (!item_keep(&items[i], lo, hi, &end))
			continue;
		start = items[i].start < base ? base : items[i].start;
		if (start - base >= (int64_t)UINT32_MAX)
			continue;	/* absurd horizon: beyond 32 bits */
		if (end - base > (int64_t)UINT32_MAX)
			end = base + (int64_t)UINT32_MAX;
		sens = (unsigned)items[i].sensitivity;
		if (sens >= TL_SENSITIVITY_MAX)
			sens = TL_PRIVATE;	/* unknown: assume the worst */
		e[k].start = (uint32_t)(start - base);
		e[k].duration = (uint32_t)(end - start);
		e[k].flags = (uint8_t)(items[i].status & TL_F_STATUS_MASK) |
		    (items[i].all_day ? TL_F_ALL_DAY : 0) |
		    (uint8_t)(sens << TL_F_SENS_SHIFT);
		k++;
	}
	if (k > 1)
		qsort(e, k, sizeof(*e), entry_cmp);

	tl->truncated = false;
	if (k > TIMELINE_MAX_ENTRIES) {
		k = TIMELINE_MAX_ENTRIES;
		tl->truncated = true;
	}
	if (k == 0) {
		free(e);
		e = NULL;
	} else if (k < n)
		e = xreallocarray(e, k, sizeof(*e));

	tl->base = base;
	tl->entries = e;
	tl->n = (uint32_t)k;
	tl->loaded = true;
	return (k);
}

void
timeline_replace(struct timeline *dst, struct timeline *src)
{
	free(dst->entries);
	*dst = *src;
	timeline_init(src);
}

size_t
timeline_update(struct timeline *tl, const struct timeline_item *items,
    size_t n, int64_t now, int64_t lookback, int64_t horizon)
{
	struct timeline	 fresh;
	size_t		 k;

	timeline_init(&fresh);
	k = timeline_build(&fresh, items, n, now, lookback, horizon);
	timeline_replace(tl, &fresh);
	return (k);
}

void
timeline_trim(struct timeline *tl, int64_t cutoff)
{
	uint32_t	 i, k = 0;
	int64_t		 end;

	for (i = 0; i < tl->n; i++) {
		end = tl->base + (int64_t)tl->entries[i].start +
		    (int64_t)tl->entries[i].duration;
		if (end <= cutoff)
			continue;
		if (k != i)
			tl->entries[k] = tl->entries[i];
		k++;
	}
	if (k == tl->n)
		return;
	tl->n = k;
	if (k == 0) {
		free(tl->entries);
		tl->entries = NULL;
	} else
		tl->entries = xreallocarray(tl->entries, k,
		    sizeof(*tl->entries));
}

size_t
timeline_count(const struct timeline *tl)
{
	return (tl->n);
}

static void
decode(const struct timeline *tl, const struct timeline_entry *e,
    struct timeline_span *s)
{
	s->start = tl->base + (int64_t)e->start;
	s->end = s->start + (int64_t)e->duration;
	s->status = (enum tl_status)(e->flags & TL_F_STATUS_MASK);
	s->sensitivity = (enum tl_sensitivity)((e->flags & TL_F_SENS_MASK) >>
	    TL_F_SENS_SHIFT);
	s->all_day = (e->flags & TL_F_ALL_DAY) != 0;
	s->private = s->sensitivity == TL_PRIVATE ||
	    s->sensitivity == TL_CONFIDENTIAL;
}

void
timeline_get(const struct timeline *tl, size_t i, struct timeline_span *s)
{
	decode(tl, &tl->entries[i], s);
}

size_t
timeline_at(const struct timeline *tl, int64_t t, struct timeline_span *out,
    size_t max)
{
	struct timeline_span	 s;
	size_t			 i, found = 0;

	/* Sorted by start: stop at the first entry starting after t. */
	for (i = 0; i < tl->n; i++) {
		decode(tl, &tl->entries[i], &s);
		if (s.start > t)
			break;
		if (s.end <= t)
			continue;
		if (found < max)
			out[found] = s;
		found++;
	}
	return (found);
}

int
timeline_next_boundary(const struct timeline *tl, int64_t t, int64_t *next)
{
	struct timeline_span	 s;
	int64_t			 best = INT64_MAX;
	size_t			 i;

	for (i = 0; i < tl->n; i++) {
		decode(tl, &tl->entries[i], &s);
		if (s.start > t) {
			/* Every later entry starts (and ends) later. */
			if (s.start < best)
				best = s.start;
			break;
		}
		if (s.end > t && s.end < best)
			best = s.end;
	}
	if (best == INT64_MAX)
		return (-1);
	*next = best;
	return (0);
}

void
timeline_json(const struct timeline *tl, struct json_writer *w)
{
	struct timeline_span	 s;
	char			 iso[TIME_ISO8601_LEN];
	size_t			 i;

	json_arr_begin(w);
	for (i = 0; i < tl->n; i++) {
		decode(tl, &tl->entries[i], &s);
		json_obj_begin(w);
		time_format_iso8601(s.start, iso);
		json_kv_str(w, "start", iso);
		time_format_iso8601(s.end, iso);
		json_kv_str(w, "end", iso);
		json_kv_str(w, "status", tl_status_name(s.status));
		json_kv_bool(w, "all_day", s.all_day);
		json_kv_bool(w, "private", s.private);
		json_obj_end(w);
	}
	json_arr_end(w);
}

const char *
tl_status_name(enum tl_status st)
{
	if ((unsigned)st >= TL_STATUS_MAX)
		return (status_names[TL_NODATA]);
	return (status_names[st]);
}

const char *
tl_sensitivity_name(enum tl_sensitivity s)
{
	if ((unsigned)s >= TL_SENSITIVITY_MAX)
		return (sensitivity_names[TL_PRIVATE]);
	return (sensitivity_names[s]);
}

/* Index of the name of len bytes in a table, or -1. */
static int
name_lookup(const char *const *names, int count, const char *s, size_t len)
{
	int	 i;

	for (i = 0; i < count; i++) {
		if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
			return (i);
	}
	return (-1);
}

int
tl_status_parse(const char *s, size_t len, enum tl_status *out)
{
	int	 i;

	if ((i = name_lookup(status_names, TL_STATUS_MAX, s, len)) == -1)
		return (-1);
	*out = (enum tl_status)i;
	return (0);
}

int
tl_sensitivity_parse(const char *s, size_t len, enum tl_sensitivity *out)
{
	int	 i;

	if ((i = name_lookup(sensitivity_names, TL_SENSITIVITY_MAX, s,
	    len)) == -1)
		return (-1);
	*out = (enum tl_sensitivity)i;
	return (0);
}
