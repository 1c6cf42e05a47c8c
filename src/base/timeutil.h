/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Time helpers: monotonic and wall clocks in milliseconds, ISO 8601 UTC
 * parsing/formatting, and "30s"/"5m"/"24h" durations.  Pure.
 */
#ifndef EWSGW_TIMEUTIL_H
#define EWSGW_TIMEUTIL_H

#include <sys/time.h>

#include <stddef.h>
#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t	 time_mono_ms(void);
/* Microseconds on CLOCK_MONOTONIC. */
int64_t	 time_mono_us(void);
/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t	 time_wall_ms(void);

/*
 * A delay in milliseconds as the struct timeval event_add() takes; a
 * negative delay is 0.  Fills *tv and returns tv.
 */
struct timeval	*time_ms_tv(struct timeval *tv, int64_t ms);

/*
 * Parse an xs:dateTime ("2026-11-29T10:00:00Z", fractional seconds and
 * "+01:00" offsets accepted; no zone means UTC) of len bytes into seconds
 * since the epoch.  Returns 0 or -1.
 */
int	 time_parse_iso8601(const char *, size_t, int64_t *);
/* Format seconds since the epoch as "YYYY-MM-DDTHH:MM:SSZ" (21 bytes). */
#define TIME_ISO8601_LEN	21
void	 time_format_iso8601(int64_t, char [TIME_ISO8601_LEN]);

/*
 * Parse a duration: an integer with an optional unit ms, s, m, h, d (no
 * unit means default_unit_ms).  Returns 0 and milliseconds, or -1.
 */
int	 time_parse_duration(const char *, int64_t default_unit_ms, int64_t *);

#endif
