/*
 * test_timefmt.c - unit tests of the CLI's time and duration parsers
 * (src/cli/timefmt.c is compiled straight into this program).
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "timefmt.h"

#define SEC INT64_C(1000000000)

static int64_t dur(const char *s)
{
	int64_t v = -1;
	const char *msg = tf_parse_duration(s, &v);
	ck_assert_msg(msg == NULL, "'%s': %s", s, msg);
	return v;
}

static void dur_bad(const char *s)
{
	int64_t v;
	ck_assert_msg(tf_parse_duration(s, &v) != NULL, "'%s' accepted", s);
}

static int64_t rfc(const char *s)
{
	int64_t v = -1;
	const char *msg = tf_parse_rfc3339(s, strlen(s), &v);
	ck_assert_msg(msg == NULL, "'%s': %s", s, msg);
	return v;
}

static void rfc_bad(const char *s)
{
	int64_t v;
	ck_assert_msg(tf_parse_rfc3339(s, strlen(s), &v) != NULL,
	              "'%s' accepted", s);
}

START_TEST(durations)
{
	ck_assert_int_eq(dur("500ms"), 500 * INT64_C(1000000));
	ck_assert_int_eq(dur("60s"), 60 * SEC);
	ck_assert_int_eq(dur("15m"), 900 * SEC);
	ck_assert_int_eq(dur("1h"), 3600 * SEC);
	ck_assert_int_eq(dur("1d"), 86400 * SEC);
	ck_assert_int_eq(dur("7ns"), 7);
	ck_assert_int_eq(dur("3us"), 3000);
	ck_assert_int_eq(dur("1h30m"), 5400 * SEC);
	ck_assert_int_eq(dur("1m500ms"), 60 * SEC + 500000000);
	ck_assert_int_eq(dur("123"), 123);
	ck_assert_int_eq(dur("0"), 0);
	ck_assert_int_eq(dur("9223372036854775807"), INT64_MAX);
}
END_TEST

START_TEST(bad_durations)
{
	dur_bad("");
	dur_bad("h");
	dur_bad("-5s");
	dur_bad("5x");
	dur_bad("1h30");
	dur_bad("1.5h");
	dur_bad("5 s");
	dur_bad("9223372036854775808");
	dur_bad("106752d");      /* 2^63 ns is about 106751.99 days */
	dur_bad("106751d106751d");
	dur_bad("99999999999999999999s");
}
END_TEST

START_TEST(civil_days)
{
	ck_assert_int_eq(tf_days_from_civil(1970, 1, 1), 0);
	ck_assert_int_eq(tf_days_from_civil(1970, 1, 2), 1);
	ck_assert_int_eq(tf_days_from_civil(1969, 12, 31), -1);
	ck_assert_int_eq(tf_days_from_civil(2000, 3, 1), 11017);
	ck_assert_int_eq(tf_days_from_civil(2025, 11, 22), 20414);
}
END_TEST

START_TEST(rfc3339)
{
	ck_assert_int_eq(rfc("1970-01-01T00:00:00Z"), 0);
	ck_assert_int_eq(rfc("2025-11-22T10:00:00Z"), 1763805600 * SEC);
	ck_assert_int_eq(rfc("2025-11-22T10:00:00.5Z"),
	                 1763805600 * SEC + 500000000);
	ck_assert_int_eq(rfc("2025-11-22t10:00:00.000000001z"),
	                 1763805600 * SEC + 1);
	ck_assert_int_eq(rfc("2025-11-22 10:00:00.123456789Z"),
	                 1763805600 * SEC + 123456789);
	ck_assert_int_eq(rfc("2025-11-22T12:30:00+02:30"), 1763805600 * SEC);
	ck_assert_int_eq(rfc("2025-11-22T05:00:00-05:00"), 1763805600 * SEC);
	ck_assert_int_eq(rfc("2024-02-29T00:00:00Z"), 1709164800 * SEC);
	ck_assert_int_eq(rfc("2000-02-29T00:00:00Z"), 951782400 * SEC);
	ck_assert_int_eq(rfc("2262-04-11T23:47:16.854775807Z"), INT64_MAX);
	ck_assert_int_eq(rfc("1970-01-01T01:00:00+01:00"), 0);
}
END_TEST

START_TEST(bad_rfc3339)
{
	rfc_bad("");
	rfc_bad("2025-11-22");
	rfc_bad("2025-11-22T10:00:00");       /* no zone */
	rfc_bad("2026-02-30T00:00:00Z");      /* Feb 30 */
	rfc_bad("2025-02-29T00:00:00Z");      /* not a leap year */
	rfc_bad("1900-02-29T00:00:00Z");
	rfc_bad("2026-13-01T00:00:00Z");
	rfc_bad("2026-00-01T00:00:00Z");
	rfc_bad("2026-11-00T00:00:00Z");
	rfc_bad("2025-11-22T24:00:00Z");
	rfc_bad("2025-11-22T10:60:00Z");
	rfc_bad("2025-11-22T10:00:60Z");
	rfc_bad("2025-11-22X10:00:00Z");
	rfc_bad("2025-11-22T10:00:00.Z");
	rfc_bad("2025-11-22T10:00:00.1234567890Z"); /* 10 digits */
	rfc_bad("2025-11-22T10:00:00+0200");
	rfc_bad("2025-11-22T10:00:00+24:00");
	rfc_bad("2025-11-22T10:00:00Zjunk");
	rfc_bad("1969-12-31T23:59:59Z");      /* before 1970 */
	rfc_bad("1970-01-01T00:00:00+00:01");
	rfc_bad("2262-04-11T23:47:16.854775808Z"); /* past int64 */
	rfc_bad("9999-12-31T23:59:59Z");
	rfc_bad("2026-1-22T10:00:00Z");
}
END_TEST

START_TEST(rfc3339_nul_inside)
{
	/* JSON strings may hold NULs; the length, not strlen, counts. */
	static const char s[] = "2025-11-22T10:00:00Z\0junk";
	int64_t v;
	ck_assert_ptr_nonnull(tf_parse_rfc3339(s, sizeof s - 1, &v));
	ck_assert_ptr_null(tf_parse_rfc3339(s, 20, &v));
}
END_TEST

START_TEST(times)
{
	const int64_t now = 1763805600 * SEC;
	int64_t v;
	ck_assert_ptr_null(tf_parse_time("now", now, &v));
	ck_assert_int_eq(v, now);
	ck_assert_ptr_null(tf_parse_time("now-15m", now, &v));
	ck_assert_int_eq(v, now - 900 * SEC);
	ck_assert_ptr_null(tf_parse_time("now+1h30m", now, &v));
	ck_assert_int_eq(v, now + 5400 * SEC);
	ck_assert_ptr_null(tf_parse_time("42", now, &v));
	ck_assert_int_eq(v, 42);
	ck_assert_ptr_null(tf_parse_time("2025-11-22T10:00:00Z", 0, &v));
	ck_assert_int_eq(v, now);
	ck_assert_ptr_nonnull(tf_parse_time("now-", now, &v));
	ck_assert_ptr_nonnull(tf_parse_time("now*2", now, &v));
	ck_assert_ptr_nonnull(tf_parse_time("nowish", now, &v));
	ck_assert_ptr_nonnull(tf_parse_time("now-100000d", now, &v));
	ck_assert_ptr_nonnull(tf_parse_time("now+106751d", now, &v));
	ck_assert_ptr_nonnull(tf_parse_time("-5", now, &v));
	ck_assert_ptr_nonnull(tf_parse_time("", now, &v));
	ck_assert_ptr_nonnull(tf_parse_time("12abc", now, &v));
	ck_assert_ptr_nonnull(tf_parse_time("9223372036854775808", now, &v));
}
END_TEST

static Suite *timefmt_suite(void)
{
	Suite *s = suite_create("timefmt");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, durations);
	tcase_add_test(tc, bad_durations);
	tcase_add_test(tc, civil_days);
	tcase_add_test(tc, rfc3339);
	tcase_add_test(tc, bad_rfc3339);
	tcase_add_test(tc, rfc3339_nul_inside);
	tcase_add_test(tc, times);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(timefmt_suite());
	int failed;
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
