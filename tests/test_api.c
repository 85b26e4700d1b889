/*
 * test_api.c - the public boundary: NULL and bad arguments, error strings,
 * event checks naming the field at fault, content ids, options versions,
 * and tdm_stat_get counts.
 */
#include "support.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)
#define T0 INT64_C(1700000000000000000)

/* Asserts code and that the message contains `part` (case-sensitive). */
#define EXPECT(expr, code, part)                                                 \
	do {                                                                     \
		int r_ = (expr);                                                 \
		ck_assert_msg(r_ == (code), "%s: %d (%s), want %s", #expr, r_,   \
		              tdm_error_message(), #code);                       \
		ck_assert_msg(strstr(tdm_error_message(), (part)) != NULL,       \
		              "%s: message '%s' lacks '%s'", #expr,              \
		              tdm_error_message(), (part));                      \
	} while (0)

START_TEST(test_null_arguments)
{
	char *dir = tst_store_new(0, 0, 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	tdm_store *out = NULL;
	tdm_event e = {T0, 1, 0, NULL, 0, "x", 1};
	tdm_append_result res;
	uint8_t outcome;

	EXPECT(tdm_store_create(NULL, NULL), TDM_EINVAL, "directory");
	EXPECT(tdm_store_create("", NULL), TDM_EINVAL, "directory");
	EXPECT(tdm_store_open(NULL, dir, NULL), TDM_EINVAL, "NULL");
	EXPECT(tdm_store_open(&out, NULL, NULL), TDM_EINVAL, "NULL");
	ck_assert_ptr_null(out);
	EXPECT(tdm_store_open(&out, "", NULL), TDM_EINVAL, "tdm_store_open");
	EXPECT(tdm_append(&res, NULL, NULL, &e, 1), TDM_EINVAL, "NULL");
	EXPECT(tdm_append(&res, NULL, s, NULL, 1), TDM_EINVAL, "NULL");
	EXPECT(tdm_sync(NULL), TDM_EINVAL, "NULL");
	tdm_iter *it = (tdm_iter *)&e;
	EXPECT(tdm_iter_open(NULL, s, 0, 1, NULL), TDM_EINVAL, "NULL");
	EXPECT(tdm_iter_open(&it, NULL, 0, 1, NULL), TDM_EINVAL, "NULL");
	tdm_read_options ro = TDM_READ_OPTIONS_INIT;
	ro.n_where = 1;
	EXPECT(tdm_iter_open(&it, s, 0, 1, &ro), TDM_EINVAL, "selector");
	const tdm_match m[] = {{"host", NULL}};
	const tdm_selector sel[] = {{m, 1}};
	ro.where = sel;
	EXPECT(tdm_iter_open(&it, s, 0, 1, &ro), TDM_EINVAL, "NULL");
	const tdm_event *ev;
	EXPECT(tdm_iter_next(&ev, NULL), TDM_EINVAL, "NULL");
	ck_assert_int_eq(tdm_iter_open(&it, s, 0, INT64_MAX, NULL), 0);
	EXPECT(tdm_iter_next(NULL, it), TDM_EINVAL, "NULL");
	tdm_iter_close(it);
	tdm_stat st;
	EXPECT(tdm_stat_get(NULL, s), TDM_EINVAL, "NULL");
	EXPECT(tdm_stat_get(&st, NULL), TDM_EINVAL, "NULL");
	uint64_t problems;
	EXPECT(tdm_verify(&problems, NULL, NULL, NULL), TDM_EINVAL, "NULL");
	EXPECT(tdm_event_check(NULL), TDM_EINVAL, "NULL");
	ck_assert_uint_eq(tdm_event_content_id(NULL), 0);
	/* NULL out-parameters that are optional. */
	ck_assert_int_eq(tdm_append(NULL, NULL, s, &e, 1), 0);
	ck_assert_int_eq(tdm_append(&res, &outcome, s, &e, 1), 0);
	ck_assert_int_eq(outcome, TDM_DUPLICATE);
	ck_assert_int_eq(tdm_verify(NULL, s, NULL, NULL), 0);
	/* An empty batch. */
	memset(&res, 0xff, sizeof res);
	ck_assert_int_eq(tdm_append(&res, NULL, s, NULL, 0), 0);
	ck_assert_uint_eq(res.appended + res.late + res.duplicates, 0);
	/* NULL closes are no-ops. */
	ck_assert_int_eq(tdm_store_close(NULL), 0);
	tdm_iter_close(NULL);
	ck_assert_int_eq(tdm_store_close(s), 0);
	tst_tmpdir_drop(dir);
}
END_TEST

START_TEST(test_strerror)
{
	const int codes[] = {TDM_OK, TDM_ERROR, TDM_EINVAL, TDM_EIO, TDM_ECORRUPT,
	                     TDM_ELOCKED, TDM_EMISMATCH, TDM_ENOTFOUND, TDM_EEXIST,
	                     TDM_EFAILED, TDM_ENOMEM, TDM_EREADONLY, TDM_ITEROVER};
	size_t n = sizeof codes / sizeof codes[0];
	const char *unknown = tdm_strerror(-1000);
	ck_assert_ptr_nonnull(unknown);
	ck_assert_str_eq(tdm_strerror(1), unknown);
	for (size_t i = 0; i < n; i++) {
		const char *a = tdm_strerror(codes[i]);
		ck_assert_ptr_nonnull(a);
		ck_assert_msg(strlen(a) > 3, "code %d: '%s'", codes[i], a);
		ck_assert_msg(strcmp(a, unknown) != 0, "code %d has the unknown text", codes[i]);
		for (size_t j = 0; j < i; j++)
			ck_assert_msg(strcmp(a, tdm_strerror(codes[j])) != 0,
			              "codes %d and %d share '%s'", codes[i], codes[j], a);
	}
	/* The message never NULL. */
	ck_assert_ptr_nonnull(tdm_error_message());
}
END_TEST

START_TEST(test_event_check)
{
	const tdm_label ok_l[] = {{"host", "web-1"}, {"level", "\xc3\xa9"}};
	tdm_event ok = {T0, 1, 0, ok_l, 2, "x", 1};
	ck_assert_int_eq(tdm_event_check(&ok), 0);
	tdm_event zero = {0, 0, 0, NULL, 0, NULL, 0};
	ck_assert_int_eq(tdm_event_check(&zero), 0);

	tdm_event e = ok;
	e.ts = -1;
	EXPECT(tdm_event_check(&e), TDM_EINVAL, "ts");

	e = ok;
	e.payload = NULL;
	EXPECT(tdm_event_check(&e), TDM_EINVAL, "payload");
	e = ok;
	e.payload_len = (size_t)TDM_MAX_PAYLOAD + 1;
	EXPECT(tdm_event_check(&e), TDM_EINVAL, "payload");

	e = ok;
	e.labels = NULL;
	EXPECT(tdm_event_check(&e), TDM_EINVAL, "labels");
	e.n_labels = TDM_MAX_LABELS + 1;
	EXPECT(tdm_event_check(&e), TDM_EINVAL, "labels");

	const tdm_label empty_key[] = {{"", "v"}};
	e = ok;
	e.labels = empty_key;
	e.n_labels = 1;
	EXPECT(tdm_event_check(&e), TDM_EINVAL, "key");

	const tdm_label null_value[] = {{"k", NULL}};
	e.labels = null_value;
	EXPECT(tdm_event_check(&e), TDM_EINVAL, "label");

	const tdm_label twice[] = {{"k", "a"}, {"j", "b"}, {"k", "c"}};
	e.labels = twice;
	e.n_labels = 3;
	EXPECT(tdm_event_check(&e), TDM_EINVAL, "'k'");

	const tdm_label bad_utf8[] = {{"k", "\xc3\x28"}};
	e.labels = bad_utf8;
	e.n_labels = 1;
	EXPECT(tdm_event_check(&e), TDM_EINVAL, "UTF-8");
	const tdm_label overlong[] = {{"\xc0\xaf", "v"}};
	e.labels = overlong;
	EXPECT(tdm_event_check(&e), TDM_EINVAL, "UTF-8");
	const tdm_label surrogate[] = {{"k", "\xed\xa0\x80"}};
	e.labels = surrogate;
	EXPECT(tdm_event_check(&e), TDM_EINVAL, "UTF-8");

	char *long_key = tst_malloc(TDM_MAX_LABEL_KEY + 2);
	memset(long_key, 'k', TDM_MAX_LABEL_KEY + 1);
	long_key[TDM_MAX_LABEL_KEY + 1] = 0;
	const tdm_label lk[] = {{long_key, "v"}};
	e.labels = lk;
	EXPECT(tdm_event_check(&e), TDM_EINVAL, "key");
	long_key[TDM_MAX_LABEL_KEY] = 0; /* at the limit: fine */
	ck_assert_int_eq(tdm_event_check(&e), 0);

	char *long_value = tst_malloc(TDM_MAX_LABEL_VALUE + 2);
	memset(long_value, 'v', TDM_MAX_LABEL_VALUE + 1);
	long_value[TDM_MAX_LABEL_VALUE + 1] = 0;
	const tdm_label lv[] = {{"key", long_value}};
	e.labels = lv;
	EXPECT(tdm_event_check(&e), TDM_EINVAL, "value");
	long_value[TDM_MAX_LABEL_VALUE] = 0;
	ck_assert_int_eq(tdm_event_check(&e), 0);

	/* Labels over TDM_MAX_LABELS_BYTES in total, each within its limits. */
	tdm_label many[TDM_MAX_LABELS];
	char keys[TDM_MAX_LABELS][8];
	for (int i = 0; i < 17; i++) {
		snprintf(keys[i], sizeof keys[i], "k%02d", i);
		many[i].key = keys[i];
		many[i].value = long_value;
	}
	e.labels = many;
	e.n_labels = 17;
	EXPECT(tdm_event_check(&e), TDM_EINVAL, "labels");
	free(long_key);
	free(long_value);

	/* A bad event in a batch: nothing of the batch is written, and the
	 * message names its index. */
	char *dir = tst_store_new(0, 0, 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	tdm_event batch[3] = {ok, ok, ok};
	batch[1].ts = T0 + 1;
	batch[2].ts = -5;
	tdm_append_result res;
	EXPECT(tdm_append(&res, NULL, s, batch, 3), TDM_EINVAL, "event 2");
	ck_assert_msg(strstr(tdm_error_message(), "ts"), "'%s'", tdm_error_message());
	ck_assert_uint_eq(res.appended, 0);
	tdm_stat st;
	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	ck_assert_uint_eq(st.events, 0);
	/* The store is not failed by bad input. */
	ck_assert_int_eq(tdm_append(&res, NULL, s, batch, 2), 0);
	ck_assert_uint_eq(res.appended, 2);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

START_TEST(test_content_id)
{
	const tdm_label l1[] = {{"host", "web-1"}, {"level", "error"}, {"a", "b"}};
	const tdm_label l2[] = {{"a", "b"}, {"level", "error"}, {"host", "web-1"}};
	const tdm_label l3[] = {{"level", "error"}, {"host", "web-1"}, {"a", "b"}};
	tdm_event a = {T0, 1, 0, l1, 3, "GET /", 5};
	tdm_event b = {T0, 999, 77, l2, 3, "GET /", 5};
	tdm_event c = {T0, 0, 0, l3, 3, "GET /xyz", 5}; /* same 5 bytes */
	uint32_t id = tdm_event_content_id(&a);
	ck_assert_uint_eq(tdm_event_content_id(&a), id);
	ck_assert_uint_eq(tdm_event_content_id(&b), id);
	ck_assert_uint_eq(tdm_event_content_id(&c), id);

	/* Anything else in the content changes it (with near certainty). */
	tdm_event d = a;
	d.ts++;
	ck_assert_uint_ne(tdm_event_content_id(&d), id);
	d = a;
	d.payload = "GET /a";
	d.payload_len = 6;
	ck_assert_uint_ne(tdm_event_content_id(&d), id);
	d = a;
	d.n_labels = 2;
	ck_assert_uint_ne(tdm_event_content_id(&d), id);
	const tdm_label l4[] = {{"host", "web-1"}, {"level", "error"}, {"a", "c"}};
	d.labels = l4;
	d.n_labels = 3;
	ck_assert_uint_ne(tdm_event_content_id(&d), id);
	/* key/value boundaries are part of it */
	const tdm_label s1[] = {{"ab", "c"}}, s2[] = {{"a", "bc"}};
	tdm_event x = {T0, 0, 0, s1, 1, NULL, 0}, y = {T0, 0, 0, s2, 1, NULL, 0};
	ck_assert_uint_ne(tdm_event_content_id(&x), tdm_event_content_id(&y));

	/* Large payloads (beyond any small buffer) work the same. */
	size_t big = 100000;
	char *p1 = tst_malloc(big), *p2 = tst_malloc(big);
	memset(p1, 'q', big);
	memset(p2, 'q', big);
	tdm_event g1 = {T0, 5, 0, l1, 3, p1, big}, g2 = {T0, 6, 0, l2, 3, p2, big};
	ck_assert_uint_eq(tdm_event_content_id(&g1), tdm_event_content_id(&g2));
	p2[big - 1] = 'r';
	ck_assert_uint_ne(tdm_event_content_id(&g1), tdm_event_content_id(&g2));
	free(p1);
	free(p2);

	/* Used as the id, a retried event is stored once. */
	char *dir = tst_store_new(0, 0, 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	a.id = tdm_event_content_id(&a);
	b.id = tdm_event_content_id(&b);
	tdm_append_result res;
	ck_assert_int_eq(tdm_append(&res, NULL, s, &a, 1), 0);
	ck_assert_int_eq(tdm_append(&res, NULL, s, &b, 1), 0);
	ck_assert_uint_eq(res.duplicates, 1);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

START_TEST(test_versions)
{
	char *dir = tst_tmpdir();
	tdm_options o = TDM_OPTIONS_INIT;
	o.version = TDM_OPTIONS_VERSION + 1;
	EXPECT(tdm_store_create(dir, &o), TDM_EINVAL, "version");
	o.version = 0;
	EXPECT(tdm_store_create(dir, &o), TDM_EINVAL, "version");
	ck_assert_int_eq(tdm_store_create(dir, NULL), 0);

	tdm_store *s = (tdm_store *)dir;
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	oo.version = 0;
	EXPECT(tdm_store_open(&s, dir, &oo), TDM_EINVAL, "version");
	ck_assert_ptr_null(s);
	oo.version = TDM_OPEN_OPTIONS_VERSION + 7;
	EXPECT(tdm_store_open(&s, dir, &oo), TDM_EINVAL, "version");
	oo = (tdm_open_options)TDM_OPEN_OPTIONS_INIT;
	oo.durability = 3;
	EXPECT(tdm_store_open(&s, dir, &oo), TDM_EINVAL, "durability");
	oo.durability = -1;
	EXPECT(tdm_store_open(&s, dir, &oo), TDM_EINVAL, "durability");
	/* None of that took the lock. */
	s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);

	tdm_read_options ro = TDM_READ_OPTIONS_INIT;
	ro.version = 99;
	tdm_iter *it = (tdm_iter *)dir;
	EXPECT(tdm_iter_open(&it, s, 0, 1, &ro), TDM_EINVAL, "version");
	ck_assert_ptr_null(it);
	tdm_store_close(s);

	/* Every durability mode opens and appends. */
	for (int d = TDM_DURABILITY_NONE; d <= TDM_DURABILITY_BATCH; d++) {
		oo = (tdm_open_options)TDM_OPEN_OPTIONS_INIT;
		oo.durability = d;
		ck_assert_int_eq(tdm_store_open(&s, dir, &oo), 0);
		tdm_event e = {T0 + d, 1, 0, NULL, 0, "x", 1};
		ck_assert_int_eq(tdm_append(NULL, NULL, s, &e, 1), 0);
		ck_assert_int_eq(tdm_sync(s), 0);
		ck_assert_int_eq(tdm_store_close(s), 0);
	}
	s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_INTERVAL);
	tdm_stat st;
	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	ck_assert_uint_eq(st.events, 3);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

START_TEST(test_stat)
{
	char *dir = tst_store_new(10 * SEC, 2 * SEC, 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	tdm_stat st;
	memset(&st, 0xcc, sizeof st);
	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	ck_assert_uint_eq(st.shards, 0);
	ck_assert_uint_eq(st.events, 0);
	ck_assert_uint_eq(st.late_events, 0);
	ck_assert_uint_eq(st.index_entries, 0);
	ck_assert_uint_eq(st.last_seq, 0);
	ck_assert_int_eq(st.min_ts, -1);
	ck_assert_int_eq(st.max_ts, -1);
	ck_assert_uint_gt(st.bytes, 0);

	/* Three shards; 600 on-time events in the middle one; two late ones,
	 * one of them the smallest ts of all; a duplicate. */
	char text[600][16];
	tdm_event evs[600];
	for (int i = 0; i < 600; i++) {
		snprintf(text[i], sizeof text[i], "e%d", i);
		evs[i] = (tdm_event){T0 + 10 * SEC + i * 10 * MS, 1, 0, NULL, 0, text[i],
		                     strlen(text[i])};
	}
	tdm_append_result res;
	ck_assert_int_eq(tdm_append(&res, NULL, s, evs, 600), 0);
	tdm_event more[] = {
		{T0 + 5 * SEC, 1, 0, NULL, 0, "a", 1},
		{T0 + 25 * SEC, 1, 0, NULL, 0, "c", 1},
		{T0 + 10 * SEC + 1, 1, 0, NULL, 0, "late", 4},
		{T0 + 2 * SEC, 1, 0, NULL, 0, "late, smallest", 14},
		{T0 + 25 * SEC, 1, 0, NULL, 0, "c", 1},
	};
	uint8_t out[5];
	ck_assert_int_eq(tdm_append(&res, out, s, more, 5), 0);
	ck_assert_uint_eq(res.appended, 4);
	ck_assert_uint_eq(res.late, 2);
	ck_assert_uint_eq(res.duplicates, 1);

	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	ck_assert_uint_eq(st.shards, 3);
	ck_assert_uint_eq(st.events, 604);
	ck_assert_uint_eq(st.late_events, 2);
	ck_assert_uint_gt(st.index_entries, 3); /* 600 events > 4 KiB */
	ck_assert_uint_lt(st.index_entries, 604); /* sparse */
	ck_assert_uint_eq(st.last_seq, 604);
	ck_assert_int_eq(st.min_ts, T0 + 2 * SEC);
	ck_assert_int_eq(st.max_ts, T0 + 25 * SEC);
	ck_assert_uint_gt(st.bytes, 600 * 32);

	/* The same from a reader, and after a reopen. */
	tdm_store *r = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_INTERVAL);
	tdm_stat st2;
	ck_assert_int_eq(tdm_stat_get(&st2, r), 0);
	ck_assert_uint_eq(st2.events, 604);
	ck_assert_uint_eq(st2.last_seq, 604);
	ck_assert_uint_eq(st2.index_entries, st.index_entries);
	tdm_store_close(r);
	tdm_store_close(s);
	s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	ck_assert_int_eq(tdm_stat_get(&st2, s), 0);
	ck_assert_uint_eq(st2.shards, 3);
	ck_assert_uint_eq(st2.events, 604);
	ck_assert_uint_eq(st2.late_events, 2);
	ck_assert_uint_eq(st2.index_entries, st.index_entries);
	ck_assert_int_eq(st2.min_ts, T0 + 2 * SEC);
	ck_assert_int_eq(st2.max_ts, T0 + 25 * SEC);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

static Suite *api_suite(void)
{
	Suite *su = suite_create("api");
	TCase *tc = tcase_create("api");
	tcase_add_test(tc, test_null_arguments);
	tcase_add_test(tc, test_strerror);
	tcase_add_test(tc, test_event_check);
	tcase_add_test(tc, test_content_id);
	tcase_add_test(tc, test_versions);
	tcase_add_test(tc, test_stat);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(api_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
