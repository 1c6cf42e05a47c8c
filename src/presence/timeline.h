/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * A compact per-mailbox calendar timeline built from CalendarView
 * results: packed 12-byte entries sorted by start, only the window the
 * presence function needs, cancelled items dropped, and never any text
 * (subjects, locations and attendees are not stored at all, so a private
 * meeting cannot leak through status output).  Pure: no clock, no I/O.
 * All times are UTC seconds since the epoch.
 */
#ifndef EWSGW_TIMELINE_H
#define EWSGW_TIMELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_writer;

/* calendar:LegacyFreeBusyStatus. */
enum tl_status {
	TL_FREE,
	TL_TENTATIVE,
	TL_BUSY,
	TL_OOF,
	TL_WORKING_ELSEWHERE,
	TL_NODATA,
	TL_STATUS_MAX
};

/* item:Sensitivity. */
enum tl_sensitivity {
	TL_NORMAL,
	TL_PERSONAL,
	TL_PRIVATE,
	TL_CONFIDENTIAL,
	TL_SENSITIVITY_MAX
};

/* One parsed CalendarView item, as the caller hands it in. */
struct timeline_item {
	int64_t			 start;		/* epoch seconds, UTC */
	int64_t			 end;		/* exclusive */
	enum tl_status		 status;
	bool			 all_day;
	bool			 cancelled;
	enum tl_sensitivity	 sensitivity;
};

/*
 * The stored form: 12 bytes.  start is relative to the timeline's base,
 * so 32 bits reach 136 years; flags hold the status (bits 0-2), all-day
 * (bit 3) and the sensitivity (bits 4-5).
 */
struct timeline_entry {
	uint32_t	 start;
	uint32_t	 duration;
	uint8_t		 flags;
};

#define TL_F_STATUS_MASK	0x07
#define TL_F_ALL_DAY		0x08
#define TL_F_SENS_SHIFT		4
#define TL_F_SENS_MASK		0x30

/* A decoded entry (absolute times), for queries. */
struct timeline_span {
	int64_t			 start;
	int64_t			 end;		/* exclusive */
	enum tl_status		 status;
	enum tl_sensitivity	 sensitivity;
	bool			 all_day;
	bool			 private;	/* Private or Confidential */
};

/*
 * Embedded in the mailbox: 24 bytes plus 12 per entry.  A timeline that
 * was never built is "not loaded" (presence is unknown); an empty but
 * loaded one means the calendar is free.
 */
struct timeline {
	int64_t			 base;		/* epoch seconds */
	struct timeline_entry	*entries;	/* sorted by start, owned */
	uint32_t		 n;
	bool			 loaded;
	bool			 truncated;	/* hit TIMELINE_MAX_ENTRIES */
};

/* More items than this in one window keep only the earliest ones. */
#define TIMELINE_MAX_ENTRIES	4096

/* An empty, not loaded timeline. */
void	 timeline_init(struct timeline *);
/* Free the entries; the timeline is empty and not loaded again. */
void	 timeline_free(struct timeline *);

/*
 * Build *tl (previous contents are not freed: pass an initialised or
 * freed timeline) from n items (borrowed), keeping the items that
 * overlap [now - lookback, now + horizon) (seconds).  Cancelled items,
 * items with end <= start and out-of-range values are dropped.  The
 * result is loaded, sorted by start (then end).  Returns the number of
 * entries kept.
 */
size_t	 timeline_build(struct timeline *, const struct timeline_item *,
	    size_t, int64_t now, int64_t lookback, int64_t horizon);
/*
 * Replace dst with src in one step (the old entries of dst are freed);
 * src is left empty and not loaded.
 */
void	 timeline_replace(struct timeline *dst, struct timeline *src);

/*
 * timeline_build into a fresh timeline, then timeline_replace: the one
 * call for a new CalendarView answer.  tl must be initialised.
 */
size_t	 timeline_update(struct timeline *, const struct timeline_item *,
	    size_t, int64_t now, int64_t lookback, int64_t horizon);

/* Drop entries that ended at or before cutoff (now - lookback). */
void	 timeline_trim(struct timeline *, int64_t cutoff);

/* Number of entries and entry i decoded (i < timeline_count()). */
size_t	 timeline_count(const struct timeline *);
void	 timeline_get(const struct timeline *, size_t,
	    struct timeline_span *);

/*
 * The entries covering t (start <= t < end), in start order: up to max
 * are written to out; returns how many cover t (may exceed max).
 */
size_t	 timeline_at(const struct timeline *, int64_t t,
	    struct timeline_span *out, size_t max);

/*
 * The next start or end of any entry strictly after t, in *next.
 * Returns 0, or -1 if there is none.
 */
int	 timeline_next_boundary(const struct timeline *, int64_t t,
	    int64_t *next);

/*
 * Write the timeline as a JSON array of {"start","end" (ISO 8601 UTC),
 * "status","all_day","private"} objects.  Never any text from the item.
 */
void	 timeline_json(const struct timeline *, struct json_writer *);

/* EWS names ("Free", "Tentative", ...); "NoData" past the range. */
const char *tl_status_name(enum tl_status);
const char *tl_sensitivity_name(enum tl_sensitivity);
/*
 * Parse an EWS LegacyFreeBusyType / SensitivityChoicesType value of
 * len bytes.  Returns 0, or -1 for an unknown value (*out untouched).
 */
int	 tl_status_parse(const char *, size_t, enum tl_status *);
int	 tl_sensitivity_parse(const char *, size_t, enum tl_sensitivity *);

#endif
