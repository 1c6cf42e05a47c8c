/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Time helpers.  The calendar arithmetic is Howard Hinnant's
 * days-from-civil algorithm, so no libc time zone state is touched.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/timeutil.h"

static int64_t	 days_from_civil(int64_t, unsigned, unsigned);

int64_t
time_mono_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

int64_t
time_mono_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

int64_t
time_wall_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

struct timeval *
time_ms_tv(struct timeval *tv, int64_t ms)
{
	if (ms < 0)
		ms = 0;
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)(ms % 1000) * 1000;
	return (tv);
}

/* Days since 1970-01-01 for a proleptic Gregorian date. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t		 era;
	unsigned	 yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (era * 146097 + (int64_t)doe - 719468);
}

static void
civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t		 era;
	unsigned	 doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	*y = (int64_t)yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y += *m <= 2;
}

static int
digits(const char *s, size_t n, unsigned *out)
{
	unsigned	 v = 0;
	size_t		 i;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return (-1);
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return (0);
}

int
time_parse_iso8601(const char *s, size_t len, int64_t *out)
{
	unsigned	 y, mo, d, h, mi, sec, oh, om;
	size_t		 i;
	int64_t		 t;
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30,
	    31, 30, 31 };

	/* Trim surrounding white space (servers pad some values). */
	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	if (len < 19 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' ||
	    s[16] != ':')
		return (-1);
	if (digits(s, 4, &y) || digits(s + 5, 2, &mo) ||
	    digits(s + 8, 2, &d) || digits(s + 11, 2, &h) ||
	    digits(s + 14, 2, &mi) || digits(s + 17, 2, &sec))
		return (-1);
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 24 ||
	    mi > 59 || sec > 60)
		return (-1);
	if (h == 24 && (mi != 0 || sec != 0))
		return (-1);
	if (sec == 60)
		sec = 59;	/* leap second: clamp */
	i = 19;
	if (i < len && s[i] == '.') {
		i++;
		if (i >= len || !isdigit((unsigned char)s[i]))
			return (-1);
		while (i < len && isdigit((unsigned char)s[i]))
			i++;
	}
	t = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 +
	    (int64_t)mi * 60 + sec;
	if (i == len) {
		*out = t;
		return (0);
	}
	if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == len) {
		*out = t;
		return (0);
	}
	if ((s[i] == '+' || s[i] == '-') && len - i == 6 && s[i + 3] == ':' &&
	    digits(s + i + 1, 2, &oh) == 0 && digits(s + i + 4, 2, &om) == 0 &&
	    oh <= 14 && om <= 59) {
		int64_t off = (int64_t)oh * 3600 + (int64_t)om * 60;
		*out = s[i] == '+' ? t - off : t + off;
		return (0);
	}
	return (-1);
}

void
time_format_iso8601(int64_t t, char out[TIME_ISO8601_LEN])
{
	/* The date of the day formatted last (a crowd of changes at one
	 * boundary shares it); per thread, so no locking. */
	static _Thread_local int64_t	 cday = INT64_MIN;
	static _Thread_local char	 cdate[10];
	int64_t				 days, y, rem;
	unsigned			 m, d;

	days = t / 86400;
	rem = t % 86400;
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	if (days != cday) {
		civil_from_days(days, &y, &m, &d);
		if (y < 0 || y > 9999) {
			memcpy(out, "1970-01-01T00:00:00Z", TIME_ISO8601_LEN);
			return;
		}
		cdate[0] = (char)('0' + y / 1000);
		cdate[1] = (char)('0' + y / 100 % 10);
		cdate[2] = (char)('0' + y / 10 % 10);
		cdate[3] = (char)('0' + y % 10);
		cdate[4] = '-';
		cdate[5] = (char)('0' + m / 10);
		cdate[6] = (char)('0' + m % 10);
		cdate[7] = '-';
		cdate[8] = (char)('0' + d / 10);
		cdate[9] = (char)('0' + d % 10);
		cday = days;
	}
	memcpy(out, cdate, sizeof cdate);
	out[10] = 'T';
	out[11] = (char)('0' + rem / 36000);
	out[12] = (char)('0' + rem / 3600 % 10);
	out[13] = ':';
	out[14] = (char)('0' + rem % 3600 / 600);
	out[15] = (char)('0' + rem % 3600 / 60 % 10);
	out[16] = ':';
	out[17] = (char)('0' + rem % 60 / 10);
	out[18] = (char)('0' + rem % 10);
	out[19] = 'Z';
	out[20] = '\0';
}

int
time_parse_duration(const char *s, int64_t default_unit_ms, int64_t *out)
{
	char		*end;
	long long	 v;
	int64_t		 unit;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return (-1);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || v < 0)
		return (-1);
	while (isspace((unsigned char)*end))
		end++;
	if (*end == '\0')
		unit = default_unit_ms;
	else if (strcmp(end, "ms") == 0)
		unit = 1;
	else if (strcmp(end, "s") == 0 || strcmp(end, "sec") == 0)
		unit = 1000;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		unit = 60 * 1000;
	else if (strcmp(end, "h") == 0)
		unit = 3600 * 1000;
	else if (strcmp(end, "d") == 0)
		unit = 86400 * 1000;
	else
		return (-1);
	if (v > INT64_MAX / unit)
		return (-1);
	*out = (int64_t)v * unit;
	return (0);
}
