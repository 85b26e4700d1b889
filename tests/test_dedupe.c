/*
 * test_dedupe.c - the duplicate-detection structures (src/dedupe.c): the
 * fingerprint -> offset multimap, the grace-window FIFO over it, and the
 * chained Bloom filter. A missed candidate would let a duplicate in
 * (SPEC §3, idempotent appends), so the tests hunt for false negatives.
 */
#include "support.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dedupe.h"

/* All offsets stored under fp, in any order. */
static size_t find_all(const dd_set *s, uint64_t fp, uint64_t *out, size_t cap)
{
	size_t cursor = 0, n = 0;
	uint64_t off;
	while ((off = dd_set_next(s, fp, &cursor)) != 0) {
		if (n == cap)
			ck_abort_msg("more than %zu offsets under one fingerprint", cap);
		out[n++] = off;
	}
	return n;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

START_TEST(test_set_basic)
{
	dd_set s;
	dd_set_init(&s);
	uint64_t got[8];
	ck_assert_uint_eq(find_all(&s, 1, got, 8), 0); /* empty, never allocated */
	dd_set_remove(&s, 1, 64);                       /* harmless */

	ck_assert_int_eq(dd_set_add(&s, 0xabc, 64), 0);
	ck_assert_int_eq(dd_set_add(&s, 0xabc, 128), 0);
	ck_assert_int_eq(dd_set_add(&s, 0xabc + 1024, 200), 0); /* same home slot */
	ck_assert_int_eq(dd_set_add(&s, 0, 300), 0);             /* fp 0 is fine */
	ck_assert_uint_eq(s.count, 4);

	size_t n = find_all(&s, 0xabc, got, 8);
	ck_assert_uint_eq(n, 2);
	qsort(got, n, sizeof got[0], u64_cmp);
	ck_assert_uint_eq(got[0], 64);
	ck_assert_uint_eq(got[1], 128);
	ck_assert_uint_eq(find_all(&s, 0xabc + 1024, got, 8), 1);
	ck_assert_uint_eq(got[0], 200);
	ck_assert_uint_eq(find_all(&s, 0, got, 8), 1);
	ck_assert_uint_eq(got[0], 300);
	ck_assert_uint_eq(find_all(&s, 0xabd, got, 8), 0);

	/* Removing needs fp and offset both. */
	dd_set_remove(&s, 0xabc, 200);
	dd_set_remove(&s, 0xabd, 64);
	ck_assert_uint_eq(s.count, 4);
	dd_set_remove(&s, 0xabc, 64);
	ck_assert_uint_eq(s.count, 3);
	ck_assert_uint_eq(find_all(&s, 0xabc, got, 8), 1);
	ck_assert_uint_eq(got[0], 128);
	ck_assert_uint_eq(find_all(&s, 0xabc + 1024, got, 8), 1);
	dd_set_free(&s);
	ck_assert_ptr_null(s.slots);
}
END_TEST

/* A simple model: the list of (fp, off) pairs present. */
typedef struct pair {
	uint64_t fp, off;
} pair;

static void check_fp_against_model(const dd_set *s, const pair *model, size_t n,
                                   uint64_t fp)
{
	uint64_t want[4096], got[4096];
	size_t nw = 0;
	for (size_t i = 0; i < n; i++)
		if (model[i].fp == fp)
			want[nw++] = model[i].off;
	size_t ng = find_all(s, fp, got, 4096);
	qsort(want, nw, sizeof want[0], u64_cmp);
	qsort(got, ng, sizeof got[0], u64_cmp);
	if (ng != nw || memcmp(want, got, nw * sizeof want[0]) != 0)
		ck_abort_msg("fp %#llx: found %zu offsets, model has %zu",
		             (unsigned long long)fp, ng, nw);
}

/* Fingerprints sharing their low bits, so they pile up in the same probe
 * runs, and few distinct ones, so several offsets share a fingerprint. */
static uint64_t colliding_fp(tst_rng *r)
{
	uint64_t high = tst_rng_range(r, 400);
	uint64_t low = tst_rng_range(r, 6) * 3; /* 6 home slots, spread a bit */
	return high << 20 | low;
}

START_TEST(test_set_random_vs_model)
{
	tst_rng r;
	tst_rng_seed(&r, 99);
	dd_set s;
	dd_set_init(&s);
	size_t cap = 20000, n = 0;
	pair *model = tst_malloc(cap * sizeof *model);
	uint64_t next_off = 64;

	for (int step = 0; step < 60000; step++) {
		/* Grow to a few thousand entries, shrink, grow again. */
		int phase = (step / 10000) % 2;
		unsigned add_pct = phase == 0 ? 65 : 35;
		if (n == 0 || (n < cap && tst_rng_chance(&r, add_pct))) {
			uint64_t fp = colliding_fp(&r);
			if (dd_set_add(&s, fp, next_off) != 0)
				ck_abort_msg("dd_set_add failed at step %d", step);
			model[n++] = (pair){fp, next_off};
			next_off += 1 + tst_rng_range(&r, 100);
		} else if (tst_rng_chance(&r, 5)) {
			/* a pair that is not there: nothing changes */
			dd_set_remove(&s, colliding_fp(&r), next_off + 7);
		} else {
			size_t i = (size_t)tst_rng_range(&r, n);
			dd_set_remove(&s, model[i].fp, model[i].off);
			model[i] = model[--n];
		}
		if (s.count != n)
			ck_abort_msg("step %d: count %zu, model %zu", step, s.count, n);
		if (step % 97 == 0)
			check_fp_against_model(&s, model, n, colliding_fp(&r));
		if (step % 5000 == 0) /* everything, every fingerprint */
			for (uint64_t h = 0; h < 400; h++)
				for (uint64_t l = 0; l < 6; l++)
					check_fp_against_model(&s, model, n, h << 20 | l * 3);
	}
	for (uint64_t h = 0; h < 400; h++)
		for (uint64_t l = 0; l < 18; l++)
			check_fp_against_model(&s, model, n, h << 20 | l);
	/* Remove everything: the set is empty again and finds nothing. */
	while (n) {
		size_t i = (size_t)tst_rng_range(&r, n);
		dd_set_remove(&s, model[i].fp, model[i].off);
		model[i] = model[--n];
	}
	ck_assert_uint_eq(s.count, 0);
	for (size_t i = 0; i <= s.mask; i++)
		ck_assert_uint_eq(s.slots[i].off, 0);
	free(model);
	dd_set_free(&s);
}
END_TEST

START_TEST(test_set_wraparound)
{
	/* Home slots at the end of the table: probe runs wrap to slot 0, and
	 * backward shifts must follow them across the wrap. */
	dd_set s;
	dd_set_init(&s);
	ck_assert_int_eq(dd_set_add(&s, 1, 64), 0); /* allocates 1024 slots */
	size_t mask = s.mask;
	dd_set_remove(&s, 1, 64);
	tst_rng r;
	tst_rng_seed(&r, 4);
	pair model[300];
	size_t n = 0;
	uint64_t off = 64;
	for (int i = 0; i < 300; i++) {
		uint64_t fp = (tst_rng_next(&r) & ~(uint64_t)mask) | (mask - tst_rng_range(&r, 4));
		if (i % 3 == 0)
			fp = (tst_rng_next(&r) & ~(uint64_t)mask) | tst_rng_range(&r, 3);
		ck_assert_int_eq(dd_set_add(&s, fp, off), 0);
		model[n++] = (pair){fp, off};
		off += 8;
	}
	ck_assert_uint_eq(s.mask, mask); /* no growth: the wrap is exercised */
	while (n) {
		size_t i = (size_t)tst_rng_range(&r, n);
		dd_set_remove(&s, model[i].fp, model[i].off);
		model[i] = model[--n];
		for (size_t k = 0; k < n; k++)
			check_fp_against_model(&s, model, n, model[k].fp);
	}
	ck_assert_uint_eq(s.count, 0);
	dd_set_free(&s);
}
END_TEST

/* ---- Window ------------------------------------------------------------ */

static int window_has(const dd_window *w, uint64_t fp, uint64_t off)
{
	size_t cursor = 0;
	uint64_t o;
	while ((o = dd_set_next(&w->set, fp, &cursor)) != 0)
		if (o == off)
			return 1;
	return 0;
}

START_TEST(test_window_evicts_in_arrival_order)
{
	dd_window w;
	dd_window_init(&w);
	const int64_t ts[] = {10, 5, 20, 3, 30};
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(dd_window_add(&w, 100 + (uint64_t)i, 64 * (uint64_t)(i + 1), ts[i]), 0);
	dd_window_evict(&w, 3); /* nothing older than 3 at the head */
	ck_assert_uint_eq(w.len, 5);
	dd_window_evict(&w, 15);
	/* 10 and 5 go; 20 stops the eviction, so 3 (arrived later) stays. */
	ck_assert_uint_eq(w.len, 3);
	ck_assert(!window_has(&w, 100, 64));
	ck_assert(!window_has(&w, 101, 128));
	ck_assert(window_has(&w, 102, 192));
	ck_assert(window_has(&w, 103, 256));
	ck_assert(window_has(&w, 104, 320));
	dd_window_evict(&w, 21); /* 20, then 3 */
	ck_assert_uint_eq(w.len, 1);
	ck_assert(!window_has(&w, 103, 256));
	ck_assert(window_has(&w, 104, 320));
	dd_window_evict(&w, INT64_MAX);
	ck_assert_uint_eq(w.len, 0);
	ck_assert_uint_eq(w.set.count, 0);
	dd_window_free(&w);
}
END_TEST

START_TEST(test_window_ring_growth)
{
	/* A FIFO that wraps around and then grows while wrapped, against a
	 * model of what must remain: entries with ts >= the last cutoff that
	 * arrived after the last evicted one. */
	dd_window w;
	dd_window_init(&w);
	tst_rng r;
	tst_rng_seed(&r, 8);
	enum { N = 20000 };
	int64_t *ts = tst_malloc(N * sizeof *ts);
	size_t head = 0; /* model: entries [head, added) are in the window */
	size_t added = 0;
	int64_t clock = 1000;
	for (int round = 0; round < 40; round++) {
		size_t k = 100 + (size_t)tst_rng_range(&r, 2 * (size_t)round * 20 + 500);
		for (size_t i = 0; i < k && added < N; i++) {
			clock += (int64_t)tst_rng_range(&r, 10);
			ts[added] = clock - (int64_t)tst_rng_range(&r, 50);
			if (dd_window_add(&w, tst_rng_next(&r) | 1, 64 + added, ts[added]) != 0)
				ck_abort_msg("dd_window_add failed at %zu", added);
			added++;
		}
		int64_t cutoff = clock - 200 - (int64_t)tst_rng_range(&r, 400);
		dd_window_evict(&w, cutoff);
		while (head < added && ts[head] < cutoff)
			head++;
		ck_assert_uint_eq(w.len, added - head);
		ck_assert_uint_eq(w.set.count, added - head);
		for (size_t i = head; i < added; i++)
			if (w.fifo[(w.head + (i - head)) % w.cap].off != 64 + i)
				ck_abort_msg("round %d: fifo entry %zu out of order", round, i);
	}
	ck_assert_uint_gt(w.cap, 1024); /* it did grow */
	free(ts);
	dd_window_free(&w);
}
END_TEST

/* ---- Filter ------------------------------------------------------------ */

START_TEST(test_filter_no_false_negatives_low_fp_rate)
{
	enum { N = 1000000 };
	dd_filter f;
	dd_filter_init(&f);
	tst_rng r;
	tst_rng_seed(&r, 2024);
	ck_assert_int_eq(dd_filter_maybe(&f, 12345), 0); /* empty: nothing */
	uint64_t *fps = tst_malloc(N * sizeof *fps);
	for (size_t i = 0; i < N; i++) {
		fps[i] = tst_rng_next(&r);
		if (dd_filter_add(&f, fps[i]) != 0)
			ck_abort_msg("dd_filter_add failed at %zu", i);
	}
	ck_assert_int_gt(f.n, 1); /* it chained */
	size_t missed = 0;
	for (size_t i = 0; i < N; i++)
		missed += !dd_filter_maybe(&f, fps[i]);
	ck_assert_msg(missed == 0, "%zu false negatives", missed);

	size_t fp = 0;
	for (size_t i = 0; i < N; i++)
		fp += (size_t)dd_filter_maybe(&f, tst_rng_next(&r));
	double rate = (double)fp / N;
	ck_assert_msg(rate < 0.02, "false positive rate %.4f over %d random probes "
	              "(%d filters)", rate, N, f.n);
	free(fps);
	dd_filter_free(&f);
	ck_assert_int_eq(f.n, 0);
}
END_TEST

START_TEST(test_filter_first_filter_fp_rate)
{
	/* One full filter alone: the header promises about 0.5%. */
	enum { N = 65536 };
	dd_filter f;
	dd_filter_init(&f);
	tst_rng r;
	tst_rng_seed(&r, 77);
	for (size_t i = 0; i < N; i++)
		if (dd_filter_add(&f, tst_rng_next(&r)) != 0)
			ck_abort_msg("dd_filter_add failed at %zu", i);
	ck_assert_int_eq(f.n, 1);
	size_t fp = 0;
	for (size_t i = 0; i < 1000000; i++)
		fp += (size_t)dd_filter_maybe(&f, tst_rng_next(&r));
	double rate = (double)fp / 1000000;
	ck_assert_msg(rate < 0.01, "false positive rate of one full filter %.4f", rate);
	dd_filter_free(&f);
}
END_TEST

static Suite *dedupe_suite(void)
{
	Suite *s = suite_create("dedupe");
	TCase *tc = tcase_create("set");
	tcase_add_test(tc, test_set_basic);
	tcase_add_test(tc, test_set_random_vs_model);
	tcase_add_test(tc, test_set_wraparound);
	suite_add_tcase(s, tc);

	tc = tcase_create("window");
	tcase_add_test(tc, test_window_evicts_in_arrival_order);
	tcase_add_test(tc, test_window_ring_growth);
	suite_add_tcase(s, tc);

	tc = tcase_create("filter");
	tcase_add_test(tc, test_filter_no_false_negatives_low_fp_rate);
	tcase_add_test(tc, test_filter_first_filter_fp_rate);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dedupe_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
