/*
 * test_merge.c - read ordering (src/merge.c): the min-heap and sort must
 * give records in SPEC §4 order, and mg_choose must only emit a record
 * once nothing unread can come before it.
 */
#include "support.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge.h"
#include "record.h"

/* ---- Random records ---------------------------------------------------- */

static const char *const keys[] = {"a", "ab", "b", "host", "\xc3\xa9"};
static const char *const vals[] = {"", "x", "xy", "web-1", "web-10", "\xc3\xbc"};
static const char *const payloads[] = {"", "a", "ab", "b", "\x80", "GET /"};

typedef struct sample {
	tdm_event ev;
	tdm_label labels[5];
	uint8_t *rec;
} sample;

static void make_sample(tst_rng *r, sample *s, int64_t ts_range)
{
	size_t n = 0;
	for (size_t i = 0; i < 5; i++)
		if (tst_rng_chance(r, 35))
			s->labels[n++] = (tdm_label){keys[i], vals[tst_rng_range(r, 6)]};
	const char *p = payloads[tst_rng_range(r, 6)];
	s->ev = (tdm_event){(int64_t)tst_rng_range(r, (uint64_t)ts_range),
	                    (uint32_t)tst_rng_range(r, 3), 0, s->labels, n, p, strlen(p)};
	if (rec_event_check(&s->ev) != 0)
		ck_abort_msg("bad sample: %s", tdm_error_message());
	s->rec = tst_malloc(rec_size(&s->ev));
	rec_encode(s->rec, &s->ev, tst_rng_next(r));
}

static mg_item item_of(const sample *s)
{
	rec_view v;
	size_t need;
	const char *why;
	if (rec_decode(&v, s->rec, rec_size(&s->ev), &need, &why) != REC_OK)
		ck_abort_msg("sample does not decode");
	mg_item it;
	if (mg_item_copy(&it, &v) != 0)
		ck_abort_msg("mg_item_copy failed");
	return it;
}

/* The event an item holds, for comparison with tst_event_cmp. */
static void event_of(tdm_event *ev, tdm_label *labels, const mg_item *it)
{
	size_t n = rec_labels(labels, it->v.labels, it->v.labels_len);
	*ev = (tdm_event){it->v.ts, it->v.id, it->v.seq, labels, n, it->v.payload,
	                  it->v.payload_len};
}

static int cmp_events(const void *a, const void *b)
{
	return tst_event_cmp(*(const tdm_event *const *)a, *(const tdm_event *const *)b);
}

START_TEST(test_item_copy_owns_bytes)
{
	tst_rng r;
	tst_rng_seed(&r, 1);
	sample s;
	do
		make_sample(&r, &s, 10);
	while (s.ev.n_labels == 0 || s.ev.payload_len == 0);
	mg_item it = item_of(&s);
	ck_assert_ptr_ne(it.bytes, s.rec);
	ck_assert_ptr_eq(it.v.bytes, it.bytes);
	size_t len = rec_size(&s.ev);
	ck_assert_int_eq(memcmp(it.bytes, s.rec, len), 0);
	memset(s.rec, 0xee, len); /* the copy does not look at the source */
	free(s.rec);
	tdm_event ev;
	tdm_label labels[TDM_MAX_LABELS];
	event_of(&ev, labels, &it);
	ck_assert_int_eq(tst_event_cmp(&ev, &s.ev), 0);
	ck_assert(it.v.labels >= it.bytes && it.v.labels < it.bytes + len);
	ck_assert(it.v.payload > it.bytes && it.v.payload + it.v.payload_len == it.bytes + len);
	mg_item_free(&it);
	ck_assert_ptr_null(it.bytes);
}
END_TEST

/* Pushes every sample, pops them all: the sequence must be the samples
 * sorted by the reference comparison (equal events are interchangeable). */
static void heap_vs_reference(uint64_t seed, size_t n, int64_t ts_range)
{
	tst_rng r;
	tst_rng_seed(&r, seed);
	sample *ss = tst_malloc(n * sizeof *ss);
	const tdm_event **sorted = tst_malloc(n * sizeof *sorted);
	mg_heap h = {0};
	for (size_t i = 0; i < n; i++) {
		make_sample(&r, &ss[i], ts_range);
		sorted[i] = &ss[i].ev;
		if (mg_heap_push(&h, item_of(&ss[i])) != 0)
			ck_abort_msg("push failed");
	}
	ck_assert_uint_eq(h.n, n);
	qsort(sorted, n, sizeof *sorted, cmp_events);
	for (size_t i = 0; i < n; i++) {
		const mg_item *top = mg_heap_top(&h);
		if (!top)
			ck_abort_msg("heap empty after %zu of %zu", i, n);
		uint8_t *top_bytes = top->bytes;
		mg_item it = mg_heap_pop(&h);
		if (it.bytes != top_bytes)
			ck_abort_msg("pop %zu did not hand over the top record", i);
		tdm_event ev;
		tdm_label labels[TDM_MAX_LABELS];
		event_of(&ev, labels, &it);
		if (tst_event_cmp(&ev, sorted[i]) != 0) {
			char a[256], b[256];
			ck_abort_msg("seed %llu pop %zu: got %s, want %s",
			             (unsigned long long)seed, i,
			             tst_event_str(a, sizeof a, &ev),
			             tst_event_str(b, sizeof b, sorted[i]));
		}
		mg_item_free(&it);
	}
	ck_assert_ptr_null(mg_heap_top(&h));
	ck_assert_uint_eq(h.n, 0);
	mg_heap_free(&h);
	for (size_t i = 0; i < n; i++)
		free(ss[i].rec);
	free(ss);
	free(sorted);
}

START_TEST(test_heap_pops_in_order)
{
	heap_vs_reference(1, 1, 5);
	heap_vs_reference(2, 2, 5);
	heap_vs_reference(3, 300, 3);      /* many ties on ts: labels decide */
	heap_vs_reference(4, 3000, 1000);  /* grows past the first capacity */
	heap_vs_reference(5, 2000, 1);     /* one ts, ids, labels, payloads */
}
END_TEST

START_TEST(test_heap_interleaved)
{
	/* Pushes and pops mixed, as the reader does: each pop is the smallest
	 * of what is in the heap at that moment. */
	tst_rng r;
	tst_rng_seed(&r, 6);
	enum { N = 3000 };
	sample *ss = tst_malloc(N * sizeof *ss);
	char *in = tst_malloc(N); /* which samples are in the heap */
	memset(in, 0, N);
	mg_heap h = {0};
	size_t pushed = 0, popped = 0;
	while (popped < N) {
		if (pushed < N && (h.n == 0 || tst_rng_chance(&r, 60))) {
			make_sample(&r, &ss[pushed], 50);
			if (mg_heap_push(&h, item_of(&ss[pushed])) != 0)
				ck_abort_msg("push failed");
			in[pushed++] = 1;
			continue;
		}
		mg_item it = mg_heap_pop(&h);
		popped++;
		tdm_event ev;
		tdm_label labels[TDM_MAX_LABELS];
		event_of(&ev, labels, &it);
		size_t match = N;
		for (size_t i = 0; i < pushed; i++) {
			if (!in[i])
				continue;
			int c = tst_event_cmp(&ss[i].ev, &ev);
			if (c < 0)
				ck_abort_msg("pop %zu: a smaller record was in the heap", popped);
			if (c == 0 && match == N)
				match = i;
		}
		if (match == N)
			ck_abort_msg("pop %zu: record not pushed", popped);
		in[match] = 0;
		mg_item_free(&it);
	}
	ck_assert_uint_eq(h.n, 0);
	mg_heap_free(&h);
	for (size_t i = 0; i < N; i++)
		free(ss[i].rec);
	free(ss);
	free(in);
}
END_TEST

/* The FIFO + stragglers holder: mixed pushes and pops, with mostly rising
 * ts as a nearly sorted main file gives; each pop is the smallest held. */
START_TEST(test_main_fifo_and_stragglers)
{
	tst_rng r;
	tst_rng_seed(&r, 9);
	enum { N = 3000 };
	sample *ss = tst_malloc(N * sizeof *ss);
	char *in = tst_malloc(N);
	memset(in, 0, N);
	mg_main m = {0};
	size_t pushed = 0, popped = 0, stragglers = 0;
	while (popped < N) {
		if (pushed < N && (m.n + m.stragglers.n == 0 || tst_rng_chance(&r, 60))) {
			sample *sm = &ss[pushed];
			make_sample(&r, sm, 8);
			/* Mostly in order: ts rises with the push count. */
			if (!tst_rng_chance(&r, 15))
				sm->ev.ts += (int64_t)pushed * 4;
			free(sm->rec);
			sm->rec = tst_malloc(rec_size(&sm->ev));
			rec_encode(sm->rec, &sm->ev, 1);
			size_t before = m.stragglers.n;
			if (mg_main_push(&m, item_of(sm)) != 0)
				ck_abort_msg("push failed");
			stragglers += m.stragglers.n > before;
			in[pushed++] = 1;
			continue;
		}
		const mg_item *top = mg_main_top(&m);
		ck_assert_ptr_nonnull(top);
		const uint8_t *want = top->bytes; /* the slot is reused by the pop */
		mg_item it = mg_main_pop(&m);
		ck_assert_ptr_eq(it.bytes, want);
		popped++;
		tdm_event ev;
		tdm_label labels[TDM_MAX_LABELS];
		event_of(&ev, labels, &it);
		size_t match = N;
		for (size_t i = 0; i < pushed; i++) {
			if (!in[i])
				continue;
			int c = tst_event_cmp(&ss[i].ev, &ev);
			if (c < 0)
				ck_abort_msg("pop %zu: a smaller record was held", popped);
			if (c == 0 && match == N)
				match = i;
		}
		if (match == N)
			ck_abort_msg("pop %zu: record not pushed", popped);
		in[match] = 0;
		mg_item_free(&it);
	}
	ck_assert_ptr_null(mg_main_top(&m));
	ck_assert_uint_gt(stragglers, 100); /* both paths were taken */
	ck_assert_uint_lt(stragglers, N / 2);
	mg_main_free(&m);
	for (size_t i = 0; i < N; i++)
		free(ss[i].rec);
	free(ss);
	free(in);
}
END_TEST

START_TEST(test_heap_free_frees_items)
{
	/* Freeing a non-empty heap releases its records (ASan/valgrind see a
	 * leak otherwise) and leaves it reusable. */
	tst_rng r;
	tst_rng_seed(&r, 9);
	mg_heap h = {0};
	sample s;
	for (int i = 0; i < 10; i++) {
		make_sample(&r, &s, 10);
		ck_assert_int_eq(mg_heap_push(&h, item_of(&s)), 0);
		free(s.rec);
	}
	mg_heap_free(&h);
	ck_assert_uint_eq(h.n, 0);
	ck_assert_ptr_null(mg_heap_top(&h));
	make_sample(&r, &s, 10);
	ck_assert_int_eq(mg_heap_push(&h, item_of(&s)), 0);
	ck_assert_ptr_nonnull(mg_heap_top(&h));
	free(s.rec);
	mg_heap_free(&h);
}
END_TEST

START_TEST(test_sort)
{
	tst_rng r;
	tst_rng_seed(&r, 10);
	enum { N = 2000 };
	sample *ss = tst_malloc(N * sizeof *ss);
	mg_item *items = tst_malloc(N * sizeof *items);
	const tdm_event **sorted = tst_malloc(N * sizeof *sorted);
	for (size_t i = 0; i < N; i++) {
		make_sample(&r, &ss[i], 20);
		items[i] = item_of(&ss[i]);
		sorted[i] = &ss[i].ev;
	}
	mg_sort(items, N);
	qsort(sorted, N, sizeof *sorted, cmp_events);
	for (size_t i = 0; i < N; i++) {
		tdm_event ev;
		tdm_label labels[TDM_MAX_LABELS];
		event_of(&ev, labels, &items[i]);
		if (tst_event_cmp(&ev, sorted[i]) != 0)
			ck_abort_msg("position %zu out of order", i);
		mg_item_free(&items[i]);
	}
	mg_sort(items, 0); /* nothing to do */
	for (size_t i = 0; i < N; i++)
		free(ss[i].rec);
	free(ss);
	free(items);
	free(sorted);
}
END_TEST

/* ---- mg_choose ----------------------------------------------------------- */

static mg_item *mk(int64_t ts, uint32_t id)
{
	tdm_event ev = {ts, id, 0, NULL, 0, NULL, 0};
	uint8_t *rec = tst_malloc(rec_size(&ev));
	rec_encode(rec, &ev, 1);
	rec_view v;
	size_t need;
	const char *why;
	ck_assert_int_eq(rec_decode(&v, rec, rec_size(&ev), &need, &why), REC_OK);
	mg_item *it = tst_malloc(sizeof *it);
	ck_assert_int_eq(mg_item_copy(it, &v), 0);
	free(rec);
	return it;
}

static void drop(mg_item *it)
{
	mg_item_free(it);
	free(it);
}

START_TEST(test_choose)
{
	mg_item *m5 = mk(5, 0), *m10 = mk(10, 0), *r3 = mk(3, 0), *r7 = mk(7, 0),
	        *r5a = mk(5, 1), *r5b = mk(5, 0), *r12 = mk(12, 0), *m12 = mk(12, 1);

	/* Nothing at hand. */
	ck_assert_int_eq(mg_choose(NULL, NULL, 10, 0), MG_WAIT);
	ck_assert_int_eq(mg_choose(NULL, NULL, 10, 1), MG_DONE);

	/* Only main: emit below the bound, wait at or above it. */
	ck_assert_int_eq(mg_choose(m5, NULL, 10, 0), MG_MAIN);
	ck_assert_int_eq(mg_choose(m10, NULL, 10, 0), MG_WAIT);
	ck_assert_int_eq(mg_choose(m12, NULL, 10, 0), MG_WAIT);
	ck_assert_int_eq(mg_choose(m10, NULL, 10, 1), MG_MAIN);
	ck_assert_int_eq(mg_choose(m5, NULL, INT64_MIN, 0), MG_WAIT);

	/* Only recon: the same rule, unread main records may come first. */
	ck_assert_int_eq(mg_choose(NULL, r3, 10, 0), MG_RECON);
	ck_assert_int_eq(mg_choose(NULL, r12, 10, 0), MG_WAIT);
	ck_assert_int_eq(mg_choose(NULL, r12, 10, 1), MG_RECON);

	/* Both: the smaller in read order, if below the bound. */
	ck_assert_int_eq(mg_choose(m5, r3, 10, 0), MG_RECON);
	ck_assert_int_eq(mg_choose(m5, r7, 10, 0), MG_MAIN);
	ck_assert_int_eq(mg_choose(m5, r5a, 10, 0), MG_MAIN); /* same ts: id */
	ck_assert_int_eq(mg_choose(m5, r5b, 10, 0), MG_MAIN); /* equal: main */
	ck_assert_int_eq(mg_choose(r5a, m5, 10, 0), MG_RECON); /* m5 as recon */
	ck_assert_int_eq(mg_choose(m12, r12, 10, 0), MG_WAIT);
	ck_assert_int_eq(mg_choose(m12, r12, 10, 1), MG_RECON);
	ck_assert_int_eq(mg_choose(m10, r7, 8, 0), MG_RECON);
	ck_assert_int_eq(mg_choose(m10, r7, 7, 0), MG_WAIT);
	ck_assert_int_eq(mg_choose(m10, r7, 7, 1), MG_RECON);

	drop(m5), drop(m10), drop(r3), drop(r7), drop(r5a), drop(r5b), drop(r12), drop(m12);
}
END_TEST

static Suite *merge_suite(void)
{
	Suite *s = suite_create("merge");
	TCase *tc = tcase_create("heap");
	tcase_add_test(tc, test_item_copy_owns_bytes);
	tcase_add_test(tc, test_heap_pops_in_order);
	tcase_add_test(tc, test_heap_interleaved);
	tcase_add_test(tc, test_main_fifo_and_stragglers);
	tcase_add_test(tc, test_heap_free_frees_items);
	tcase_add_test(tc, test_sort);
	suite_add_tcase(s, tc);

	tc = tcase_create("choose");
	tcase_add_test(tc, test_choose);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(merge_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
