/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: persisted change sequence numbers, across simulated
 * restarts, lost state files, clock steps and directory changes.
 */
#include "config.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/seqstore.h"

#define T0	1796500000000LL		/* wall ms, December 2026 */

static char	 dir[] = "/tmp/check_seqstore.XXXXXX";

static void
setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
teardown(void)
{
	char	 p[256];

	snprintf(p, sizeof p, "%s/%s", dir, SEQSTORE_FILE);
	unlink(p);
	rmdir(dir);
	strcpy(dir, "/tmp/check_seqstore.XXXXXX");
}

static uint64_t
stored(void)
{
	char	 p[256], buf[64];
	FILE	*f;

	snprintf(p, sizeof p, "%s/%s", dir, SEQSTORE_FILE);
	if ((f = fopen(p, "r")) == NULL)
		return (0);
	ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
	fclose(f);
	return (strtoull(buf, NULL, 10));
}

static void
put(const char *text)
{
	char	 p[256];
	FILE	*f;

	snprintf(p, sizeof p, "%s/%s", dir, SEQSTORE_FILE);
	ck_assert_ptr_nonnull(f = fopen(p, "w"));
	fputs(text, f);
	fclose(f);
}

/* Restarts continue above every number handed out, even if the clock
 * went back a day. */
START_TEST(test_restarts)
{
	struct seqstore	*s;
	char		*cause = NULL;
	uint64_t	 last = 0, v;
	int		 run, i;

	for (run = 0; run < 4; run++) {
		s = seqstore_open(dir, run == 2 ? T0 - 86400000 : T0,
		    &cause);
		ck_assert_msg(s != NULL, "%s", cause);
		ck_assert_ptr_null(seqstore_warning(s));
		for (i = 0; i < 1000; i++) {
			v = seqstore_next(s);
			ck_assert_uint_gt(v, last);
			last = v;
		}
		/* Reserved ahead: the file is above what was used. */
		ck_assert_uint_gt(stored(), last);
		ck_assert_uint_lt(last, 1ULL << 53);
		seqstore_free(s);
	}
}
END_TEST

/* One write per block: crossing it moves the reservation on. */
START_TEST(test_blocks)
{
	struct seqstore	*s;
	char		*cause = NULL;
	uint64_t	 first, v = 0, end;
	unsigned	 i;

	s = seqstore_open(dir, T0, &cause);
	ck_assert_ptr_nonnull(s);
	first = seqstore_next(s);
	end = stored();
	ck_assert_uint_eq(end, first + SEQSTORE_BLOCK);
	for (i = 1; i < SEQSTORE_BLOCK; i++)
		v = seqstore_next(s);
	ck_assert_uint_eq(v, end - 1);
	ck_assert_uint_eq(stored(), end);
	ck_assert_uint_eq(seqstore_next(s), end);
	ck_assert_uint_eq(stored(), end + SEQSTORE_BLOCK);
	ck_assert_uint_eq(seqstore_failures(s), 0);
	seqstore_free(s);
}
END_TEST

/* A hand-over: at least the clock plus a block, never backwards. */
START_TEST(test_floor)
{
	struct seqstore	*s;
	char		*cause = NULL;
	uint64_t	 a, b, clock1;

	s = seqstore_open(dir, T0, &cause);
	ck_assert_ptr_nonnull(s);
	a = seqstore_next(s);
	clock1 = (uint64_t)(T0 + 60000 - SEQSTORE_EPOCH_S * 1000) * 1000;
	seqstore_floor(s, T0 + 60000);
	b = seqstore_next(s);
	ck_assert_uint_eq(b, clock1 + SEQSTORE_BLOCK);
	ck_assert_uint_gt(b, a);
	/* The reservation covers it before it is handed out. */
	ck_assert_uint_ge(stored(), b + 1);
	/* An older clock does not move it back. */
	seqstore_floor(s, T0);
	ck_assert_uint_eq(seqstore_next(s), b + 1);
	seqstore_free(s);
}
END_TEST

/* Without a directory, or with a lost or broken file: the clock. */
START_TEST(test_clock_floor)
{
	struct seqstore	*s;
	char		*cause = NULL;
	uint64_t	 a, b;

	s = seqstore_open(NULL, T0, &cause);
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_null(seqstore_dir(s));
	a = seqstore_next(s);
	ck_assert_uint_eq(a, (uint64_t)(T0 - SEQSTORE_EPOCH_S * 1000) * 1000);
	seqstore_free(s);
	s = seqstore_open(NULL, T0 + 1, &cause);
	b = seqstore_next(s);
	ck_assert_uint_gt(b, a);
	seqstore_free(s);

	put("not a number\n");
	s = seqstore_open(dir, T0, &cause);
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_nonnull(seqstore_warning(s));
	ck_assert_uint_eq(seqstore_next(s), a);
	seqstore_free(s);
	put("-5\n");
	s = seqstore_open(dir, T0, &cause);
	ck_assert_ptr_nonnull(seqstore_warning(s));
	seqstore_free(s);
	/* A file far ahead of the clock wins. */
	put("900000000000000000\n");
	s = seqstore_open(dir, T0, &cause);
	ck_assert_ptr_null(seqstore_warning(s));
	ck_assert_uint_eq(seqstore_next(s), 900000000000000000ULL);
	seqstore_free(s);
}
END_TEST

/* A directory that cannot be written fails the open, not later. */
START_TEST(test_unwritable)
{
	struct seqstore	*s;
	char		*cause = NULL, p[300];

	snprintf(p, sizeof p, "%s/missing", dir);
	s = seqstore_open(p, T0, &cause);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(cause);
	ck_assert_ptr_nonnull(strstr(cause, "missing"));
	free(cause);
}
END_TEST

/* Reload into another directory: above both. */
START_TEST(test_set_dir)
{
	struct seqstore	*s;
	char		*cause = NULL, other[300];
	uint64_t	 v, w;

	s = seqstore_open(NULL, T0, &cause);
	v = seqstore_next(s);
	put("900000000000000000\n");
	ck_assert_int_eq(seqstore_set_dir(s, dir, &cause), 0);
	ck_assert_str_eq(seqstore_dir(s), dir);
	w = seqstore_next(s);
	ck_assert_uint_eq(w, 900000000000000000ULL);
	ck_assert_uint_eq(stored(), w + SEQSTORE_BLOCK);
	snprintf(other, sizeof other, "%s/nope", dir);
	ck_assert_int_eq(seqstore_set_dir(s, other, &cause), -1);
	free(cause);
	ck_assert_str_eq(seqstore_dir(s), dir);
	ck_assert_uint_gt(seqstore_next(s), w);
	ck_assert_int_eq(seqstore_set_dir(s, NULL, &cause), 0);
	ck_assert_uint_gt(seqstore_next(s), v);
	seqstore_free(s);
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("seqstore");
	TCase	*tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_restarts);
	tcase_add_test(tc, test_blocks);
	tcase_add_test(tc, test_clock_floor);
	tcase_add_test(tc, test_floor);
	tcase_add_test(tc, test_unwritable);
	tcase_add_test(tc, test_set_dir);
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
