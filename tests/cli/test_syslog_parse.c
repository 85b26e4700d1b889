/*
 * test_syslog_parse.c - unit tests of the syslog framing and parsing of
 * `tidemark serve` (src/cli/syslog_parse.c, pure, compiled in).
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "syslog_parse.h"
#include "timefmt.h"

#define SEC INT64_C(1000000000)
/* 2026-11-22T10:00:00Z */
#define NOW (INT64_C(1795341600) * SEC)

static syslog_msg parse_ok(const char *s)
{
	syslog_msg m;
	char err[256] = "";
	int rc = syslog_parse(&m, s, strlen(s), NOW, err, sizeof err);
	ck_assert_msg(rc == 0, "'%s': %s", s, err);
	return m;
}

static void parse_bad(const char *s, const char *want)
{
	syslog_msg m;
	char err[256] = "";
	ck_assert_msg(syslog_parse(&m, s, strlen(s), NOW, err, sizeof err) == -1,
	              "'%s' accepted", s);
	ck_assert_msg(strstr(err, want), "'%s': '%s' lacks '%s'", s, err, want);
}

static int field_is(const char *p, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(p, want, n) == 0;
}

#define CK_FIELD(p, n, want) \
	ck_assert_msg(field_is(p, n, want), "got '%.*s', want '%s'", (int)(n), \
	              (p) ? (p) : "", want)

START_TEST(rfc5424)
{
	syslog_msg m = parse_ok("<165>1 2026-11-22T09:59:58.123456Z web-1.example "
	                        "nginx 4242 ID47 [ex@32473 a=\"x\\\"]\"][b c=\"d\"] "
	                        "\xEF\xBB\xBFGET / 200");
	ck_assert_int_eq(m.rfc5424, 1);
	ck_assert_int_eq(m.facility, 20);
	ck_assert_int_eq(m.severity, 5);
	ck_assert_int_eq(m.has_ts, 1);
	ck_assert_int_eq(m.ts, NOW - 2 * SEC + 123456000);
	CK_FIELD(m.host, m.host_len, "web-1.example");
	CK_FIELD(m.app, m.app_len, "nginx");
	CK_FIELD(m.text, m.text_len, "GET / 200");

	m = parse_ok("<13>1 - - - - - -");
	ck_assert_int_eq(m.has_ts, 0);
	ck_assert_int_eq(m.ts, NOW);
	ck_assert_uint_eq(m.host_len, 0);
	ck_assert_uint_eq(m.app_len, 0);
	ck_assert_uint_eq(m.text_len, 0);

	m = parse_ok("<13>1 - h a - - - two\nlines\r\n");
	CK_FIELD(m.text, m.text_len, "two\nlines");

	m = parse_ok("<0>1 2026-11-22T12:00:00+02:00 h a - - - msg with  spaces ");
	ck_assert_int_eq(m.ts, NOW);
	CK_FIELD(m.text, m.text_len, "msg with  spaces ");
	ck_assert_str_eq(syslog_facility_name(m.facility), "kern");
	ck_assert_str_eq(syslog_severity_name(m.severity), "emerg");
}
END_TEST

START_TEST(rfc5424_bad)
{
	parse_bad("<13>1 2026-13-22T10:00:00Z h a - - - x", "bad timestamp");
	parse_bad("<13>1 - h a - -", "no space after msgid");
	parse_bad("<13>1 - h a - - x", "structured data");
	parse_bad("<13>1 - h a - - [x a=\"b\"", "not closed");
	parse_bad("<13>1 - h\x01 a - - - x", "bad hostname");
	parse_bad("<13>1 - h aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa - - - x",
	          "bad app-name");
	parse_bad("<13>1 - h a - - -x", "no space after the structured data");
	parse_bad("13>1 - - - - - -", "no '<'");
	parse_bad("<192>1 - - - - - -", "bad priority");
	parse_bad("<013>1 - - - - - -", "bad priority");
	parse_bad("<>x", "bad priority");
	parse_bad("<13", "no '>'");
	parse_bad("", "no '<'");
}
END_TEST

START_TEST(rfc3164)
{
	syslog_msg m = parse_ok("<34>Nov 22 09:59:59 mymachine su[123]: 'su root' failed");
	ck_assert_int_eq(m.rfc5424, 0);
	ck_assert_int_eq(m.facility, 4);
	ck_assert_int_eq(m.severity, 2);
	ck_assert_int_eq(m.ts, NOW - SEC);
	CK_FIELD(m.host, m.host_len, "mymachine");
	CK_FIELD(m.app, m.app_len, "su");
	CK_FIELD(m.text, m.text_len, "'su root' failed");

	/* Space-padded day, no pid, no host. */
	m = parse_ok("<13>Nov  2 01:02:03 cron: job done");
	ck_assert_int_eq(m.ts, (tf_days_from_civil(2026, 11, 2) * 86400 + 3723) * SEC);
	ck_assert_uint_eq(m.host_len, 0);
	CK_FIELD(m.app, m.app_len, "cron");
	CK_FIELD(m.text, m.text_len, "job done");

	/* December read in January: last year. */
	syslog_msg j;
	char err[64];
	const char *dec = "<13>Dec 31 23:59:59 h t: x";
	int64_t jan = tf_days_from_civil(2027, 1, 1) * 86400 * SEC + 5 * SEC;
	ck_assert_int_eq(syslog_parse(&j, dec, strlen(dec), jan, err, sizeof err), 0);
	ck_assert_int_eq(j.ts, jan - 6 * SEC);

	/* No timestamp: receive time, the rest is the message. */
	m = parse_ok("<13>just a line");
	ck_assert_int_eq(m.has_ts, 0);
	ck_assert_int_eq(m.ts, NOW);
	ck_assert_uint_eq(m.app_len, 0);
	CK_FIELD(m.text, m.text_len, "just a line");

	/* A bad date is not a timestamp. */
	m = parse_ok("<13>Nov 32 10:00:00 h t: x");
	ck_assert_int_eq(m.has_ts, 0);
	CK_FIELD(m.text, m.text_len, "Nov 32 10:00:00 h t: x");
}
END_TEST

static int frame(const char *buf, size_t len, size_t max, int eof,
                 const char **msg, size_t *mlen, size_t *used, char *err)
{
	return syslog_frame(msg, mlen, used, buf, len, max, eof, err, 256);
}

START_TEST(framing)
{
	const char *msg;
	size_t mlen, used;
	char err[256];
	const char *s = "11 <13>1 - a b\n<13>x\r\n<13>tail";
	size_t len = strlen(s);
	ck_assert_int_eq(frame(s, len, 100, 0, &msg, &mlen, &used, err), SYSLOG_FRAME_OK);
	ck_assert_uint_eq(mlen, 11);
	ck_assert(memcmp(msg, "<13>1 - a b", 11) == 0);
	ck_assert_uint_eq(used, 14);
	s += used;
	len -= used;
	ck_assert_int_eq(frame(s, len, 100, 0, &msg, &mlen, &used, err), SYSLOG_FRAME_OK);
	ck_assert_uint_eq(mlen, 0); /* the newline after the octet frame */
	s += used;
	len -= used;
	ck_assert_int_eq(frame(s, len, 100, 0, &msg, &mlen, &used, err), SYSLOG_FRAME_OK);
	ck_assert_uint_eq(mlen, 5); /* the "\r" dropped */
	ck_assert(memcmp(msg, "<13>x", 5) == 0);
	s += used;
	len -= used;
	ck_assert_int_eq(frame(s, len, 100, 0, &msg, &mlen, &used, err), SYSLOG_FRAME_MORE);
	ck_assert_int_eq(frame(s, len, 100, 1, &msg, &mlen, &used, err), SYSLOG_FRAME_OK);
	ck_assert_uint_eq(mlen, 8);

	/* Partial octet frames wait; at the end of the stream they are bad. */
	ck_assert_int_eq(frame("12", 2, 100, 0, &msg, &mlen, &used, err), SYSLOG_FRAME_MORE);
	ck_assert_int_eq(frame("12 <1", 5, 100, 0, &msg, &mlen, &used, err), SYSLOG_FRAME_MORE);
	ck_assert_int_eq(frame("12 <1", 5, 100, 1, &msg, &mlen, &used, err), SYSLOG_FRAME_BAD);
	ck_assert_int_eq(frame("12", 2, 100, 1, &msg, &mlen, &used, err), SYSLOG_FRAME_BAD);

	/* Limits and malformed counts. */
	ck_assert_int_eq(frame("101 x", 5, 100, 0, &msg, &mlen, &used, err), SYSLOG_FRAME_BAD);
	ck_assert(strstr(err, "longer than the limit"));
	ck_assert_int_eq(frame("012 x", 5, 100, 0, &msg, &mlen, &used, err), SYSLOG_FRAME_BAD);
	ck_assert_int_eq(frame("12x", 3, 100, 0, &msg, &mlen, &used, err), SYSLOG_FRAME_BAD);
	ck_assert_int_eq(frame("12345678901 ", 12, 100, 0, &msg, &mlen, &used, err), SYSLOG_FRAME_BAD);
	char big[300];
	memset(big, 'a', sizeof big);
	big[0] = '<';
	ck_assert_int_eq(frame(big, sizeof big, 100, 0, &msg, &mlen, &used, err), SYSLOG_FRAME_BAD);
	ck_assert(strstr(err, "line longer"));
	ck_assert_int_eq(frame(big, 100, 100, 0, &msg, &mlen, &used, err), SYSLOG_FRAME_MORE);
	big[100] = '\n';
	ck_assert_int_eq(frame(big, 101, 100, 0, &msg, &mlen, &used, err), SYSLOG_FRAME_OK);
	ck_assert_uint_eq(mlen, 100);
	big[101] = '\n';
	big[100] = 'a';
	ck_assert_int_eq(frame(big, 102, 100, 0, &msg, &mlen, &used, err), SYSLOG_FRAME_BAD);
}
END_TEST

static Suite *syslog_suite(void)
{
	Suite *s = suite_create("syslog_parse");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, rfc5424);
	tcase_add_test(tc, rfc5424_bad);
	tcase_add_test(tc, rfc3164);
	tcase_add_test(tc, framing);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(syslog_suite());
	int failed;
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
