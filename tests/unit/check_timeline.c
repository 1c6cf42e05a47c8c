/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: calendar timeline building, window, trimming, queries,
 * the JSON dump and the packed entry size.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
#include "presence/timeline.h"

#define HOUR	INT64_C(3600)
#define DAY	INT64_C(86400)
/* Monday 2026-11-30T00:00:00Z. */
#define D	INT64_C(1795996800)
#define AT(h)	(D + (int64_t)((h) * HOUR))

static struct timeline_item
item(int64_t start, int64_t end, enum tl_status st)
{
	struct timeline_item	 it;

	memset(&it, 0, sizeof(it));
	it.start = start;
	it.end = end;
	it.status = st;
	it.sensitivity = TL_NORMAL;
	return (it);
}

START_TEST(test_entry_size)
{
	struct timeline	 tl;

	ck_assert_uint_le(sizeof(struct timeline_entry), 16);
	ck_assert_uint_eq(sizeof(struct timeline_entry), 12);
	ck_assert_uint_le(sizeof(tl), 24);
}
END_TEST

START_TEST(test_build_sort_filter)
{
	struct timeline_item	 it[8];
	struct timeline		 tl;
	struct timeline_span	 s;

	it[0] = item(AT(14), AT(15), TL_BUSY);
	it[1] = item(AT(9), AT(10), TL_TENTATIVE);
	it[2] = item(AT(11), AT(12), TL_BUSY);
	it[2].cancelled = true;				/* dropped */
	it[3] = item(AT(9), AT(9.5), TL_OOF);	/* ends first */
	it[4] = item(AT(13), AT(13), TL_BUSY);		/* empty: dropped */
	it[5] = item(AT(16), AT(15), TL_BUSY);		/* negative: dropped */
	it[6] = item(D, D + DAY, TL_FREE);
	it[6].all_day = true;
	it[7] = item(AT(10), AT(11), (enum tl_status)42);/* bad: dropped */

	timeline_init(&tl);
	ck_assert(!tl.loaded);
	ck_assert_uint_eq(timeline_build(&tl, it, 8, AT(12), DAY, DAY), 4);
	ck_assert(tl.loaded);
	ck_assert(!tl.truncated);
	ck_assert_uint_eq(timeline_count(&tl), 4);
	timeline_get(&tl, 0, &s);
	ck_assert_int_eq(s.start, D);
	ck_assert_int_eq(s.end, D + DAY);
	ck_assert(s.all_day);
	ck_assert_int_eq(s.status, TL_FREE);
	timeline_get(&tl, 1, &s);
	ck_assert_int_eq(s.start, AT(9));
	ck_assert_int_eq(s.end, AT(9.5));
	ck_assert_int_eq(s.status, TL_OOF);
	timeline_get(&tl, 2, &s);
	ck_assert_int_eq(s.start, AT(9));
	ck_assert_int_eq(s.end, AT(10));
	ck_assert_int_eq(s.status, TL_TENTATIVE);
	ck_assert(!s.all_day);
	timeline_get(&tl, 3, &s);
	ck_assert_int_eq(s.start, AT(14));
	ck_assert_int_eq(s.status, TL_BUSY);
	timeline_free(&tl);
	ck_assert(!tl.loaded);
	ck_assert_uint_eq(timeline_count(&tl), 0);

	/* Nothing kept is still a loaded (free) calendar. */
	ck_assert_uint_eq(timeline_build(&tl, it + 4, 2, AT(12), DAY, DAY), 0);
	ck_assert(tl.loaded);
	ck_assert_ptr_null(tl.entries);
	timeline_free(&tl);
}
END_TEST

START_TEST(test_window)
{
	struct timeline_item	 it[6];
	struct timeline		 tl;
	struct timeline_span	 s;
	int64_t			 now = AT(12);

	it[0] = item(now - 3 * DAY, now - 2 * DAY, TL_BUSY);	/* too old */
	it[1] = item(now - 2 * DAY, now - DAY, TL_BUSY);	/* ends at lo */
	it[2] = item(now - 10 * DAY, now - DAY + 1, TL_OOF);	/* overlaps */
	it[3] = item(now + DAY - 1, now + 5 * DAY, TL_BUSY);	/* overlaps */
	it[4] = item(now + DAY, now + DAY + HOUR, TL_BUSY);	/* at hi */
	it[5] = item(now + 3 * DAY, now + 4 * DAY, TL_BUSY);	/* too far */

	timeline_init(&tl);
	ck_assert_uint_eq(timeline_build(&tl, it, 6, now, DAY, DAY), 2);
	/* Items reaching into the window keep their true start and end. */
	timeline_get(&tl, 0, &s);
	ck_assert_int_eq(s.start, now - 10 * DAY);
	ck_assert_int_eq(s.end, now - DAY + 1);
	timeline_get(&tl, 1, &s);
	ck_assert_int_eq(s.start, now + DAY - 1);
	ck_assert_int_eq(s.end, now + 5 * DAY);
	timeline_free(&tl);
}
END_TEST

START_TEST(test_absurd_values)
{
	struct timeline_item	 it[4];
	struct timeline		 tl;
	struct timeline_span	 s;
	int64_t			 now = AT(12), old = D - 55 * 365 * DAY;

	it[0] = item(INT64_MIN, INT64_MAX, TL_BUSY);	/* start out of range */
	it[1] = item(now, INT64_MAX, TL_BUSY);		/* end clamped */
	it[2] = item(-5, now, TL_BUSY);			/* before 1970 */
	it[3] = item(old, now + 1, TL_OOF);		/* 1971 */
	it[3].sensitivity = (enum tl_sensitivity)99;	/* unknown: private */

	/* An unbounded window: clamped, no overflow. */
	timeline_init(&tl);
	ck_assert_uint_eq(timeline_build(&tl, it, 4, now, INT64_MAX,
	    INT64_MAX), 2);
	timeline_get(&tl, 0, &s);
	ck_assert_int_eq(s.start, old);
	ck_assert_int_eq(s.end, now + 1);
	ck_assert(s.private);
	ck_assert_int_eq(s.sensitivity, TL_PRIVATE);
	timeline_get(&tl, 1, &s);
	ck_assert_int_eq(s.start, now);
	/* The end is cut where 32 bits from the base end. */
	ck_assert_int_eq(s.end, tl.base + (int64_t)UINT32_MAX);
	ck_assert_int_gt(s.end, now + 50 * 365 * DAY);
	timeline_free(&tl);

	/* Seen from 2100, a 1971 start is clipped to 2^31 s before the
	 * window; the end is exact. */
	now = D + 74 * 365 * DAY;
	it[3].end = now + 1;
	ck_assert_uint_eq(timeline_build(&tl, it + 3, 1, now, DAY, DAY), 1);
	timeline_get(&tl, 0, &s);
	ck_assert_int_eq(s.start, now - DAY - (int64_t)(UINT32_MAX / 2));
	ck_assert_int_eq(s.end, now + 1);
	timeline_free(&tl);

	/* A negative window is the instant now. */
	it[1] = item(now - 1, now + 1, TL_BUSY);
	ck_assert_uint_eq(timeline_build(&tl, it + 1, 1, now, -5, -5), 1);
	timeline_free(&tl);
	it[1] = item(now, now + 1, TL_BUSY);
	ck_assert_uint_eq(timeline_build(&tl, it + 1, 1, now, -5, -5), 0);
	timeline_free(&tl);
}
END_TEST

START_TEST(test_truncate)
{
	struct timeline_item	*it;
	struct timeline		 tl;
	struct timeline_span	 s;
	size_t			 i, n = TIMELINE_MAX_ENTRIES + 100;

	it = calloc(n, sizeof(*it));
	ck_assert_ptr_nonnull(it);
	/* In reverse order: the earliest ones must be the ones kept. */
	for (i = 0; i < n; i++)
		it[i] = item(D + (int64_t)(n - i) * 60,
		    D + (int64_t)(n - i) * 60 + 30, TL_BUSY);
	timeline_init(&tl);
	ck_assert_uint_eq(timeline_build(&tl, it, n, D, 30 * DAY, 30 * DAY),
	    TIMELINE_MAX_ENTRIES);
	ck_assert(tl.truncated);
	timeline_get(&tl, 0, &s);
	ck_assert_int_eq(s.start, D + 60);
	timeline_get(&tl, TIMELINE_MAX_ENTRIES - 1, &s);
	ck_assert_int_eq(s.start, D + TIMELINE_MAX_ENTRIES * 60);
	timeline_free(&tl);
	free(it);
}
END_TEST

START_TEST(test_replace_trim)
{
	struct timeline_item	 it[4];
	struct timeline		 tl, fresh;
	struct timeline_span	 s;

	it[0] = item(AT(8), AT(9), TL_BUSY);
	it[1] = item(AT(6), AT(12), TL_BUSY);	/* long: outlives the trim */
	it[2] = item(AT(10), AT(11), TL_BUSY);
	it[3] = item(AT(7), AT(10), TL_TENTATIVE);	/* ends at cutoff */

	timeline_init(&tl);
	timeline_build(&tl, it, 2, AT(8), DAY, DAY);
	timeline_init(&fresh);
	timeline_build(&fresh, it, 4, AT(8), DAY, DAY);
	timeline_replace(&tl, &fresh);
	ck_assert(!fresh.loaded);
	ck_assert_ptr_null(fresh.entries);
	ck_assert_uint_eq(timeline_count(&tl), 4);

	/* update: the same in one call, on top of a loaded timeline. */
	ck_assert_uint_eq(timeline_update(&tl, it + 2, 1, AT(8), DAY, DAY), 1);
	timeline_get(&tl, 0, &s);
	ck_assert_int_eq(s.start, AT(10));
	ck_assert_uint_eq(timeline_update(&tl, it, 4, AT(8), DAY, DAY), 4);
	ck_assert(tl.loaded);

	timeline_trim(&tl, AT(10));
	ck_assert_uint_eq(timeline_count(&tl), 2);
	timeline_get(&tl, 0, &s);
	ck_assert_int_eq(s.start, AT(6));
	ck_assert_int_eq(s.end, AT(12));
	timeline_get(&tl, 1, &s);
	ck_assert_int_eq(s.start, AT(10));
	timeline_trim(&tl, AT(10));		/* nothing more */
	ck_assert_uint_eq(timeline_count(&tl), 2);
	timeline_trim(&tl, AT(12));
	ck_assert_uint_eq(timeline_count(&tl), 0);
	ck_assert(tl.loaded);
	timeline_free(&tl);
}
END_TEST

START_TEST(test_queries)
{
	struct timeline_item	 it[4];
	struct timeline		 tl;
	struct timeline_span	 out[4];
	int64_t			 next;

	it[0] = item(AT(10), AT(13), TL_BUSY);		/* contains the next */
	it[1] = item(AT(11), AT(12), TL_TENTATIVE);
	it[2] = item(AT(12), AT(14), TL_BUSY);		/* back-to-back */
	it[3] = item(AT(16), AT(17), TL_OOF);

	timeline_init(&tl);
	timeline_build(&tl, it, 4, AT(12), DAY, DAY);

	ck_assert_uint_eq(timeline_at(&tl, AT(9), out, 4), 0);
	ck_assert_uint_eq(timeline_at(&tl, AT(10), out, 4), 1);
	ck_assert_uint_eq(timeline_at(&tl, AT(11.5), out, 4), 2);
	ck_assert_int_eq(out[0].start, AT(10));
	ck_assert_int_eq(out[1].start, AT(11));
	/* At 12:00 the tentative one has ended, the third has begun. */
	ck_assert_uint_eq(timeline_at(&tl, AT(12), out, 4), 2);
	ck_assert_int_eq(out[0].start, AT(10));
	ck_assert_int_eq(out[1].start, AT(12));
	ck_assert_uint_eq(timeline_at(&tl, AT(12), out, 1), 2);	/* count */
	ck_assert_uint_eq(timeline_at(&tl, AT(14), out, 4), 0);

	ck_assert_int_eq(timeline_next_boundary(&tl, AT(9), &next), 0);
	ck_assert_int_eq(next, AT(10));
	ck_assert_int_eq(timeline_next_boundary(&tl, AT(10), &next), 0);
	ck_assert_int_eq(next, AT(11));
	ck_assert_int_eq(timeline_next_boundary(&tl, AT(11), &next), 0);
	ck_assert_int_eq(next, AT(12));
	ck_assert_int_eq(timeline_next_boundary(&tl, AT(12), &next), 0);
	ck_assert_int_eq(next, AT(13));
	ck_assert_int_eq(timeline_next_boundary(&tl, AT(13), &next), 0);
	ck_assert_int_eq(next, AT(14));
	ck_assert_int_eq(timeline_next_boundary(&tl, AT(14), &next), 0);
	ck_assert_int_eq(next, AT(16));
	ck_assert_int_eq(timeline_next_boundary(&tl, AT(16.5), &next), 0);
	ck_assert_int_eq(next, AT(17));
	next = 7;
	ck_assert_int_eq(timeline_next_boundary(&tl, AT(17), &next), -1);
	ck_assert_int_eq(next, 7);
	timeline_free(&tl);

	/* Not loaded: no entries, no boundary. */
	ck_assert_uint_eq(timeline_at(&tl, AT(12), out, 4), 0);
	ck_assert_int_eq(timeline_next_boundary(&tl, AT(12), &next), -1);
}
END_TEST

START_TEST(test_json)
{
	struct timeline_item	 it[2];
	struct timeline		 tl;
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;

	it[0] = item(D, D + DAY, TL_OOF);
	it[0].all_day = true;
	it[1] = item(AT(9), AT(10), TL_WORKING_ELSEWHERE);
	it[1].sensitivity = TL_PRIVATE;
	timeline_init(&tl);
	timeline_build(&tl, it, 2, AT(9), DAY, DAY);
	json_writer_init(&w, &b);
	timeline_json(&tl, &w);
	ck_assert_str_eq(buf_str(&b),
	    "[{\"start\":\"2026-11-30T00:00:00Z\",\"end\":"
	    "\"2026-12-01T00:00:00Z\",\"status\":\"OOF\",\"all_day\":true,"
	    "\"private\":false},"
	    "{\"start\":\"2026-11-30T09:00:00Z\",\"end\":"
	    "\"2026-11-30T10:00:00Z\",\"status\":\"WorkingElsewhere\","
	    "\"all_day\":false,\"private\":true}]");
	buf_reset(&b);
	timeline_free(&tl);
	json_writer_init(&w, &b);
	timeline_json(&tl, &w);
	ck_assert_str_eq(buf_str(&b), "[]");
	buf_free(&b);
}
END_TEST

START_TEST(test_names)
{
	enum tl_status		 st;
	enum tl_sensitivity	 se;
	int			 i;

	for (i = 0; i < TL_STATUS_MAX; i++) {
		const char *name = tl_status_name((enum tl_status)i);
		ck_assert_int_eq(tl_status_parse(name, strlen(name), &st), 0);
		ck_assert_int_eq(st, i);
	}
	for (i = 0; i < TL_SENSITIVITY_MAX; i++) {
		const char *name = tl_sensitivity_name(
		    (enum tl_sensitivity)i);
		ck_assert_int_eq(tl_sensitivity_parse(name, strlen(name),
		    &se), 0);
		ck_assert_int_eq(se, i);
	}
	ck_assert_int_eq(tl_status_parse("Busy", 4, &st), 0);
	ck_assert_int_eq(st, TL_BUSY);
	st = TL_FREE;
	ck_assert_int_eq(tl_status_parse("Busyy", 5, &st), -1);
	ck_assert_int_eq(tl_status_parse("Bus", 3, &st), -1);
	ck_assert_int_eq(tl_status_parse("busy", 4, &st), -1);
	ck_assert_int_eq(st, TL_FREE);
	ck_assert_int_eq(tl_sensitivity_parse("Private", 7, &se), 0);
	ck_assert_int_eq(se, TL_PRIVATE);
	ck_assert_str_eq(tl_status_name(TL_STATUS_MAX), "NoData");
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("timeline");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_entry_size);
	tcase_add_test(tc, test_build_sort_filter);
	tcase_add_test(tc, test_window);
	tcase_add_test(tc, test_absurd_values);
	tcase_add_test(tc, test_truncate);
	tcase_add_test(tc, test_replace_trim);
	tcase_add_test(tc, test_queries);
	tcase_add_test(tc, test_json);
	tcase_add_test(tc, test_names);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
