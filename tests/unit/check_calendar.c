/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: CalendarView paging (one page, several, the page cap, no
 * progress), repeats across pages dropped, and the EWS free/busy values
 * as timeline statuses.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ews/calendar.h"

#define HOUR	INT64_C(3600)
/* Monday 2026-11-30T00:00:00Z. */
#define D	INT64_C(1795996800)
#define AT(h)	(D + (int64_t)((h) * HOUR))

/* A FindItem answer of n items, one an hour from start_h, an hour long. */
static void
page(struct ews_calendar *cal, struct ews_cal_item *items, size_t n,
    double start_h, bool last)
{
	size_t	 i;

	memset(cal, 0, sizeof *cal);
	memset(items, 0, n * sizeof *items);
	for (i = 0; i < n; i++) {
		items[i].start = AT(start_h + (double)i);
		items[i].end = AT(start_h + (double)i + 1);
		items[i].fb = EWS_FB_BUSY;
	}
	cal->items = items;
	cal->nitems = n;
	cal->includes_last = last;
}

START_TEST(test_one_page)
{
	struct calendar_read	 cr;
	struct ews_calendar	 cal;
	struct ews_cal_item	 it[3];

	calendar_read_init(&cr);
	ck_assert_int_eq(calendar_read_from(&cr, AT(0)), AT(0));
	page(&cal, it, 3, 9, true);
	it[1].fb = EWS_FB_TENTATIVE;
	it[2].sensitivity = EWS_SENS_PRIVATE;
	it[2].all_day = true;
	ck_assert_int_eq(calendar_read_add(&cr, &cal), CALENDAR_DONE);
	ck_assert_uint_eq(cr.n, 3);
	ck_assert_int_eq(cr.items[0].start, AT(9));
	ck_assert_int_eq(cr.items[0].status, TL_BUSY);
	ck_assert_int_eq(cr.items[1].status, TL_TENTATIVE);
	ck_assert_int_eq(cr.items[2].sensitivity, TL_PRIVATE);
	ck_assert(cr.items[2].all_day);
	calendar_read_free(&cr);
	ck_assert_ptr_null(cr.items);
	ck_assert_uint_eq(cr.n, 0);
}
END_TEST

START_TEST(test_pages_overlap_dropped)
{
	struct calendar_read	 cr;
	struct ews_calendar	 cal;
	struct ews_cal_item	 it[3];

	calendar_read_init(&cr);
	/* 9, 10, 11 and more: the next page starts at 11, the last start. */
	page(&cal, it, 3, 9, false);
	ck_assert_int_eq(calendar_read_add(&cr, &cal), CALENDAR_MORE);
	ck_assert_int_eq(calendar_read_from(&cr, AT(0)), AT(11));
	/* 11 again, 12, 13: the end. */
	page(&cal, it, 3, 11, true);
	ck_assert_int_eq(calendar_read_add(&cr, &cal), CALENDAR_DONE);
	ck_assert_uint_eq(cr.n, 5);
	ck_assert_int_eq(cr.items[0].start, AT(9));
	ck_assert_int_eq(cr.items[2].start, AT(11));
	ck_assert_int_eq(cr.items[3].start, AT(12));
	ck_assert_int_eq(cr.items[4].start, AT(13));
	calendar_read_free(&cr);
}
END_TEST

START_TEST(test_page_cap)
{
	struct calendar_read	 cr;
	struct ews_calendar	 cal;
	struct ews_cal_item	 it[2];
	unsigned		 i;

	calendar_read_init(&cr);
	for (i = 0; i < CALENDAR_MAX_PAGES - 1; i++) {
		page(&cal, it, 2, 9 + i, false);
		ck_assert_int_eq(calendar_read_add(&cr, &cal), CALENDAR_MORE);
	}
	page(&cal, it, 2, 9 + i, false);
	ck_assert_int_eq(calendar_read_add(&cr, &cal), CALENDAR_TRUNCATED);
	/* Each page repeated the previous one's last item. */
	ck_assert_uint_eq(cr.n, CALENDAR_MAX_PAGES + 1);
	calendar_read_free(&cr);
}
END_TEST

START_TEST(test_no_progress_stops)
{
	struct calendar_read	 cr;
	struct ews_calendar	 cal;
	struct ews_cal_item	 it[2];

	calendar_read_init(&cr);
	page(&cal, it, 2, 9, false);
	ck_assert_int_eq(calendar_read_add(&cr, &cal), CALENDAR_MORE);
	/* Every item of the next page starts where it began: give up. */
	page(&cal, it, 2, 10, false);
	it[1].start = AT(10);
	ck_assert_int_eq(calendar_read_add(&cr, &cal), CALENDAR_TRUNCATED);
	calendar_read_free(&cr);

	/* An empty page without IncludesLastItemInRange is the end. */
	calendar_read_init(&cr);
	page(&cal, it, 0, 9, false);
	ck_assert_int_eq(calendar_read_add(&cr, &cal), CALENDAR_DONE);
	ck_assert_uint_eq(cr.n, 0);
	calendar_read_free(&cr);
}
END_TEST

START_TEST(test_freebusy)
{
	struct ews_fb_event	 ev[6];
	struct timeline_item	*items;
	static const enum ews_fb fb[6] = { EWS_FB_FREE, EWS_FB_TENTATIVE,
	    EWS_FB_BUSY, EWS_FB_OOF, EWS_FB_WORKING_ELSEWHERE, EWS_FB_NODATA };
	static const enum tl_status st[6] = { TL_FREE, TL_TENTATIVE, TL_BUSY,
	    TL_OOF, TL_WORKING_ELSEWHERE, TL_NODATA };
	size_t			 i;

	for (i = 0; i < 6; i++) {
		ev[i].start = AT(i);
		ev[i].end = AT(i + 1);
		ev[i].busy = fb[i];
	}
	items = calendar_from_freebusy(ev, 6);
	for (i = 0; i < 6; i++) {
		ck_assert_int_eq(items[i].start, AT(i));
		ck_assert_int_eq(items[i].end, AT(i + 1));
		ck_assert_int_eq(items[i].status, st[i]);
		ck_assert_int_eq(calendar_status(fb[i]), st[i]);
	}
	free(items);
	items = calendar_from_freebusy(NULL, 0);
	ck_assert_ptr_nonnull(items);
	free(items);
}
END_TEST

static Suite *
calendar_suite(void)
{
	Suite	*s = suite_create("calendar");
	TCase	*tc = tcase_create("calendar");

	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, test_one_page);
	tcase_add_test(tc, test_pages_overlap_dropped);
	tcase_add_test(tc, test_page_cap);
	tcase_add_test(tc, test_no_progress_stops);
	tcase_add_test(tc, test_freebusy);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(calendar_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
