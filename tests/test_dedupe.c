/*
 * test_dedupe.c - the duplicate-detection structures (src/dedupe.c): the
 * fingerprint -> offset multimap, the grace window of time buckets of
 * such sets. A missed candidate would let a duplicate in (SPEC §3,
 * idempotent appends), so the tests hunt for false negatives.
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
	ck_assert_ptr_null(s.slots);

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
	ck_assert_uint_eq(find_all(&s, 0xabc + 2048, got, 8), 0); /* same home, absent */
	dd_set_free(&s);
	ck_assert_ptr_null(s.slots);
	ck_assert_uint_eq(s.count, 0);
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
		if (model[i].fp == fp) {
			if (nw == 4096)
				ck_abort_msg("model has more than 4096 offsets under one fingerprint");
			want[nw++] = model[i].off;
		}
	size_t ng = find_all(s, fp, got, 4096);
	qsort(want, nw, sizeof want[0], u64_cmp);
	qsort(got, ng, sizeof got[0], u64_cmp);
	if (ng != nw || memcmp(want, got, nw * sizeof want[0]) != 0)
		ck_abort_msg("fp %#llx: found %zu offsets, model has %zu",
		             (unsigned long long)fp, ng, nw);
}

/* Fingerprints sharing their low bits, so they pile up in the same probe
 * runs, and few distinct ones, so several offsets share a fingerprint.
 * Half have their home at the very start of the table, half at its very
 * end (low 20 bits all ones, minus a little: the last slots whatever the
 * table size), so the runs at the end wrap into the ones at the start. */
#define FP_HIGH 400
#define FP_LOW 6
static uint64_t fp_of(uint64_t high, uint64_t low, int at_end)
{
	uint64_t l = low * 3; /* home slots spread a bit */
	return high << 20 | (at_end ? ((uint64_t)1 << 20) - 1 - l : l);
}

static uint64_t colliding_fp(tst_rng *r)
{
	uint64_t high = tst_rng_range(r, FP_HIGH);
	uint64_t low = tst_rng_range(r, FP_LOW);
	return fp_of(high, low, tst_rng_chance(r, 50));
}

static int pair_cmp(const void *a, const void *b)
{
	const pair *x = a, *y = b;
	if (x->fp != y->fp)
		return (x->fp > y->fp) - (x->fp < y->fp);
	return (x->off > y->off) - (x->off < y->off);
}

/* Checks fp against a model sorted by pair_cmp. */
static void check_fp_sorted(const dd_set *s, const pair *sorted, size_t n, uint64_t fp)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (sorted[mid].fp < fp)
			lo = mid + 1;
		else
			hi = mid;
	}
	uint64_t got[4096];
	size_t ng = find_all(s, fp, got, 4096);
	qsort(got, ng, sizeof got[0], u64_cmp);
	size_t nw = 0;
	while (lo + nw < n && sorted[lo + nw].fp == fp)
		nw++;
	int same = ng == nw;
	for (size_t i = 0; same && i < nw; i++)
		same = got[i] == sorted[lo + i].off;
	if (!same)
		ck_abort_msg("fp %#llx: found %zu offsets, model has %zu",
		             (unsigned long long)fp, ng, nw);
}

/* Every fingerprint colliding_fp can make, plus absent neighbours that
 * share their home slots (high bits past FP_HIGH, or low bits between the
 * multiples of 3). */
static void check_all_fps(const dd_set *s, const pair *model, size_t n)
{
	pair *sorted = tst_malloc((n ? n : 1) * sizeof *sorted);
	memcpy(sorted, model, n * sizeof *sorted);
	qsort(sorted, n, sizeof *sorted, pair_cmp);
	for (uint64_t h = 0; h < FP_HIGH + 3; h++)
		for (uint64_t l = 0; l < 3 * FP_LOW; l++) {
			check_fp_sorted(s, sorted, n, h << 20 | l);
			check_fp_sorted(s, sorted, n, h << 20 | (((uint64_t)1 << 20) - 1 - l));
		}
	free(sorted);
}

START_TEST(test_set_random_vs_model)
{
	/* Add only (the set has no delete): grow through several table sizes,
	 * checking the candidates of fingerprints against the model as the
	 * probe runs lengthen, wrap and get rehashed. */
	tst_rng r;
	tst_rng_seed(&r, 99);
	dd_set s;
	dd_set_init(&s);
	size_t cap = 10000; /* one probe run of ~cap slots: lookups are slow */
	pair *model = tst_malloc(cap * sizeof *model);
	uint64_t next_off = 64;
	size_t last_mask = 0, grows = 0;

	for (size_t n = 0; n < cap;) {
		uint64_t fp = colliding_fp(&r);
		if (dd_set_add(&s, fp, next_off) != 0)
			ck_abort_msg("dd_set_add failed at %zu", n);
		model[n++] = (pair){fp, next_off};
		next_off += 1 + tst_rng_range(&r, 100);
		if (s.count != n)
			ck_abort_msg("after %zu adds: count %zu", n, s.count);
		/* The fingerprint just added and a random one. */
		check_fp_against_model(&s, model, n, fp);
		if (n % 7 == 0)
			check_fp_against_model(&s, model, n, colliding_fp(&r));
		if (s.mask != last_mask) { /* just rehashed: everything */
			last_mask = s.mask;
			grows++;
			check_all_fps(&s, model, n);
		}
	}
	ck_assert_uint_ge(grows, 6); /* 1024 -> 32768 slots */
	/* The load stays under 1/2. */
	ck_assert_uint_le(2 * s.count, s.mask + 1);
	check_all_fps(&s, model, cap);
	/* The probe runs did wrap: slot 0 holds an entry whose home is at the
	 * end of the table. */
	int wrapped = 0;
	for (size_t i = 0; i < 64 && s.slots[i].off; i++)
		wrapped |= (s.slots[i].fp & s.mask) > i;
	ck_assert_msg(wrapped, "no probe run wrapped past the end of the table");
	free(model);
	dd_set_free(&s);
}
END_TEST

START_TEST(test_set_wraparound)
{
	/* Home slots at the end of the table and at its start: probe runs wrap
	 * to slot 0 and merge with the runs there, and lookups must follow
	 * them across the wrap. 300 entries fit in 1024 slots: no growth. */
	dd_set s;
	dd_set_init(&s);
	tst_rng r;
	tst_rng_seed(&r, 4);
	pair model[300];
	size_t n = 0, mask = 1023;
	uint64_t off = 64;
	for (int i = 0; i < 300; i++) {
		uint64_t fp = (tst_rng_next(&r) & ~(uint64_t)mask) | (mask - tst_rng_range(&r, 4));
		if (i % 3 == 0)
			fp = (tst_rng_next(&r) & ~(uint64_t)mask) | tst_rng_range(&r, 3);
		if (i % 5 == 0 && n) /* another offset under an earlier fingerprint */
			fp = model[tst_rng_range(&r, n)].fp;
		ck_assert_int_eq(dd_set_add(&s, fp, off), 0);
		ck_assert_uint_eq(s.mask, mask); /* 1024 slots, never grown */
		model[n++] = (pair){fp, off};
		off += 8;
		ck_assert_uint_eq(s.count, n);
		for (size_t k = 0; k < n; k++)
			check_fp_against_model(&s, model, n, model[k].fp);
		/* Absent fingerprints with the same homes find nothing. */
		check_fp_against_model(&s, model, n, (uint64_t)(i + 1) << 40 | mask);
		check_fp_against_model(&s, model, n, (uint64_t)(i + 1) << 40);
	}
	/* The run from the end reaches well past slot 0. */
	size_t wrapped = 0;
	for (size_t i = 0; i <= mask && s.slots[i].off; i++)
		wrapped += (s.slots[i].fp & mask) > i;
	ck_assert_uint_gt(wrapped, 10);
	dd_set_free(&s);
}
END_TEST

/* ---- Window ------------------------------------------------------------ */

/* All offsets that dd_window_next gives for (fp, ts), sorted. */
static size_t window_find_all(const dd_window *w, uint64_t fp, int64_t ts,
                              uint64_t *out, size_t cap)
{
	size_t cursor = 0, n = 0;
	uint64_t off;
	while ((off = dd_window_next(w, fp, ts, &cursor)) != 0) {
		if (n == cap)
			ck_abort_msg("more than %zu candidates for one lookup", cap);
		out[n++] = off;
	}
	qsort(out, n, sizeof out[0], u64_cmp);
	return n;
}

/* Asserts that (fp, ts) finds exactly the offsets in want[0..n) (sorted). */
#define WINDOW_FINDS(w, fp, ts, ...)                                            \
	do {                                                                    \
		const uint64_t want_[] = {0, __VA_ARGS__};                      \
		size_t nw_ = sizeof want_ / sizeof want_[0] - 1;                \
		uint64_t got_[16];                                              \
		size_t ng_ = window_find_all((w), (fp), (ts), got_, 16);        \
		ck_assert_msg(ng_ == nw_ && memcmp(got_, want_ + 1,             \
		                                   nw_ * sizeof got_[0]) == 0, \
		              "fp %#llx ts %lld: %zu candidates, want %zu",   \
		              (unsigned long long)(fp), (long long)(ts), ng_,   \
		              nw_);                                             \
	} while (0)

/* Bucket ids strictly increasing, none empty. */
static void check_buckets_sorted(const dd_window *w)
{
	for (size_t i = 0; i < w->n; i++) {
		if (i && w->b[i - 1].id >= w->b[i].id)
			ck_abort_msg("bucket %zu (id %lld) after id %lld", i,
			             (long long)w->b[i].id, (long long)w->b[i - 1].id);
		if (w->b[i].set.count == 0)
			ck_abort_msg("bucket %zu (id %lld) is empty", i, (long long)w->b[i].id);
	}
}

static void check_bucket_ids(const dd_window *w, const int64_t *ids, size_t n)
{
	check_buckets_sorted(w);
	ck_assert_uint_eq(w->n, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(w->b[i].id, ids[i]);
}

START_TEST(test_window_width)
{
	const struct {
		int64_t grace, width;
	} c[] = {
		{0, 1}, {1, 1}, {15, 1}, {16, 1}, {31, 1}, {32, 2}, {160, 10},
		{175, 10}, {-5, 1}, {INT64_MIN, 1}, {60000000000, 3750000000},
		{INT64_MAX, INT64_MAX / 16},
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		dd_window w;
		dd_window_init(&w, c[i].grace);
		ck_assert_msg(w.width == c[i].width, "grace %lld: width %lld, want %lld",
		              (long long)c[i].grace, (long long)w.width,
		              (long long)c[i].width);
		ck_assert_uint_eq(w.n, 0);
		uint64_t got[4];
		ck_assert_uint_eq(window_find_all(&w, 1, 0, got, 4), 0); /* empty */
		dd_window_evict(&w, INT64_MAX);                          /* harmless */
		dd_window_evict(&w, INT64_MIN);
		dd_window_free(&w);
	}
}
END_TEST

START_TEST(test_window_buckets)
{
	/* grace 160: buckets of 10 ns; bucket k covers [10k, 10k + 10). */
	enum { A = 0xa00, B = 0xa00 + 1024 }; /* same home slot in every set */
	dd_window w;
	dd_window_init(&w, 160);
	ck_assert_int_eq(w.width, 10);

	/* Buckets created at the end, at the front and in the middle. */
	ck_assert_int_eq(dd_window_add(&w, A, 100, 10), 0); /* bucket 1 */
	ck_assert_int_eq(dd_window_add(&w, B, 104, 35), 0); /* 3, appended */
	ck_assert_int_eq(dd_window_add(&w, A, 108, 5), 0);  /* 0, at the front */
	ck_assert_int_eq(dd_window_add(&w, A, 112, 25), 0); /* 2, in the middle */
	check_bucket_ids(&w, (const int64_t[]){0, 1, 2, 3}, 4);
	/* Out of order into older buckets that exist, including the oldest. */
	ck_assert_int_eq(dd_window_add(&w, B, 116, 19), 0); /* 1 */
	ck_assert_int_eq(dd_window_add(&w, A, 120, 45), 0); /* 4, appended */
	ck_assert_int_eq(dd_window_add(&w, A, 124, 0), 0);  /* 0 */
	ck_assert_int_eq(dd_window_add(&w, A, 128, 9), 0);  /* 0 */
	ck_assert_int_eq(dd_window_add(&w, B, 132, 3), 0);  /* 0 */
	ck_assert_int_eq(dd_window_add(&w, A, 136, 39), 0); /* 3 */
	ck_assert_int_eq(dd_window_add(&w, A, 140, 75), 0); /* 7, a gap before it */
	ck_assert_int_eq(dd_window_add(&w, B, 144, 62), 0); /* 6, in the gap */
	check_bucket_ids(&w, (const int64_t[]){0, 1, 2, 3, 4, 6, 7}, 7);
	ck_assert_uint_eq(w.b[0].set.count, 4);

	/* A lookup probes the bucket of its ts only: any ts of the bucket
	 * finds every offset stored there under that fp, and nothing else. */
	for (int64_t ts = 0; ts < 10; ts++) {
		WINDOW_FINDS(&w, A, ts, 108, 124, 128); /* several offsets, one fp */
		WINDOW_FINDS(&w, B, ts, 132);
	}
	WINDOW_FINDS(&w, A, 10, 100);
	WINDOW_FINDS(&w, A, 19, 100);
	WINDOW_FINDS(&w, B, 10, 116);
	WINDOW_FINDS(&w, A, 20, 112);
	WINDOW_FINDS(&w, A, 29, 112);
	WINDOW_FINDS(&w, B, 25); /* bucket 2 holds only A */
	WINDOW_FINDS(&w, A, 30, 136);
	WINDOW_FINDS(&w, B, 39, 104);
	WINDOW_FINDS(&w, A, 40, 120);
	WINDOW_FINDS(&w, A, 50);      /* no bucket 5 */
	WINDOW_FINDS(&w, B, 55);
	WINDOW_FINDS(&w, A, 65);      /* bucket 6 holds only B */
	WINDOW_FINDS(&w, B, 60, 144);
	WINDOW_FINDS(&w, A, 79, 140);
	WINDOW_FINDS(&w, A, 80);      /* past the newest bucket */
	WINDOW_FINDS(&w, A, INT64_MAX);
	WINDOW_FINDS(&w, A + 1, 5);   /* next slot, never stored */
	WINDOW_FINDS(&w, A + 2048, 5); /* same home slot, never stored */

	/* A cutoff below every entry, or inside the oldest bucket, evicts
	 * nothing: the bucket holding the cutoff keeps all its entries, even
	 * those below the cutoff. */
	dd_window_evict(&w, INT64_MIN);
	dd_window_evict(&w, INT64_MIN + 1);
	dd_window_evict(&w, -1);
	dd_window_evict(&w, -9);
	dd_window_evict(&w, -10);
	dd_window_evict(&w, -11);
	dd_window_evict(&w, 0);
	ck_assert_uint_eq(w.n, 7);
	dd_window_evict(&w, 9);
	ck_assert_uint_eq(w.n, 7);
	WINDOW_FINDS(&w, A, 0, 108, 124, 128); /* ts 0, 5 < 9 are kept */
	WINDOW_FINDS(&w, B, 3, 132);

	/* Cutoff 10: every ts of bucket 0 is below it: the bucket goes whole. */
	dd_window_evict(&w, 10);
	check_bucket_ids(&w, (const int64_t[]){1, 2, 3, 4, 6, 7}, 6);
	WINDOW_FINDS(&w, A, 9);
	WINDOW_FINDS(&w, B, 3);
	WINDOW_FINDS(&w, A, 10, 100);
	WINDOW_FINDS(&w, B, 19, 116);

	/* Cutoff 11 and 19 lie in bucket 1: it stays, ts 10 included. */
	dd_window_evict(&w, 11);
	dd_window_evict(&w, 19);
	check_bucket_ids(&w, (const int64_t[]){1, 2, 3, 4, 6, 7}, 6);
	WINDOW_FINDS(&w, A, 10, 100);

	/* Lower cutoffs after a higher one change nothing. */
	dd_window_evict(&w, 5);
	dd_window_evict(&w, -100);
	ck_assert_uint_eq(w.n, 6);

	/* Cutoff 30 drops buckets 1 and 2 (ts up to 29), keeps 3 (ts 30..39). */
	dd_window_evict(&w, 30);
	check_bucket_ids(&w, (const int64_t[]){3, 4, 6, 7}, 4);
	WINDOW_FINDS(&w, A, 10);
	WINDOW_FINDS(&w, A, 25);
	WINDOW_FINDS(&w, A, 30, 136);
	WINDOW_FINDS(&w, B, 35, 104);

	/* A cutoff in the gap (bucket 5, which does not exist) drops what is
	 * below the gap, nothing above it. */
	dd_window_evict(&w, 55);
	check_bucket_ids(&w, (const int64_t[]){6, 7}, 2);
	WINDOW_FINDS(&w, B, 60, 144);
	WINDOW_FINDS(&w, A, 75, 140);

	/* An add into a bucket evicted before makes it again, at the front. */
	ck_assert_int_eq(dd_window_add(&w, A, 148, 1), 0);
	check_bucket_ids(&w, (const int64_t[]){0, 6, 7}, 3);
	WINDOW_FINDS(&w, A, 8, 148);
	dd_window_evict(&w, 60);
	check_bucket_ids(&w, (const int64_t[]){6, 7}, 2);

	/* Timestamps near INT64_MAX: bucket INT64_MAX / 10 covers
	 * [..800, ..809], cut short at INT64_MAX = ..807. */
	const int64_t top = INT64_MAX / 10;
	ck_assert_int_eq(dd_window_add(&w, A, 152, INT64_MAX), 0);
	ck_assert_int_eq(dd_window_add(&w, A, 156, top * 10), 0);
	ck_assert_int_eq(dd_window_add(&w, B, 160, top * 10 - 1), 0);
	ck_assert_int_eq(dd_window_add(&w, B, 164, INT64_MAX - 10), 0);
	check_bucket_ids(&w, (const int64_t[]){6, 7, top - 1, top}, 4);
	WINDOW_FINDS(&w, A, INT64_MAX - 7, 152, 156);
	WINDOW_FINDS(&w, B, INT64_MAX - 8, 160, 164);
	dd_window_evict(&w, INT64_MAX - 8); /* in bucket top - 1 */
	check_bucket_ids(&w, (const int64_t[]){top - 1, top}, 2);
	dd_window_evict(&w, top * 10);
	check_bucket_ids(&w, (const int64_t[]){top}, 1);
	dd_window_evict(&w, INT64_MAX - 1);
	dd_window_evict(&w, INT64_MAX); /* in bucket top: kept */
	check_bucket_ids(&w, (const int64_t[]){top}, 1);
	WINDOW_FINDS(&w, A, INT64_MAX, 152, 156);

	dd_window_free(&w);
	ck_assert_ptr_null(w.b);
	ck_assert_uint_eq(w.n, 0);
}
END_TEST

START_TEST(test_window_extreme_widths)
{
	/* grace 0: buckets of 1 ns, a lookup finds only its own ts. */
	dd_window w;
	dd_window_init(&w, 0);
	ck_assert_int_eq(dd_window_add(&w, 7, 64, 100), 0);
	ck_assert_int_eq(dd_window_add(&w, 7, 72, 101), 0);
	ck_assert_int_eq(dd_window_add(&w, 7, 80, 100), 0);
	ck_assert_int_eq(dd_window_add(&w, 7, 88, 0), 0);
	ck_assert_int_eq(dd_window_add(&w, 7, 96, INT64_MAX), 0);
	ck_assert_int_eq(dd_window_add(&w, 7, 104, INT64_MAX - 1), 0);
	check_bucket_ids(&w, (const int64_t[]){0, 100, 101, INT64_MAX - 1, INT64_MAX}, 5);
	WINDOW_FINDS(&w, 7, 100, 64, 80);
	WINDOW_FINDS(&w, 7, 101, 72);
	WINDOW_FINDS(&w, 7, 99);
	WINDOW_FINDS(&w, 7, 102);
	WINDOW_FINDS(&w, 7, 0, 88);
	dd_window_evict(&w, -1);
	dd_window_evict(&w, 0);
	ck_assert_uint_eq(w.n, 5);
	dd_window_evict(&w, 1);
	check_bucket_ids(&w, (const int64_t[]){100, 101, INT64_MAX - 1, INT64_MAX}, 4);
	dd_window_evict(&w, 101);
	check_bucket_ids(&w, (const int64_t[]){101, INT64_MAX - 1, INT64_MAX}, 3);
	dd_window_evict(&w, INT64_MAX);
	check_bucket_ids(&w, (const int64_t[]){INT64_MAX}, 1);
	WINDOW_FINDS(&w, 7, INT64_MAX, 96);
	dd_window_free(&w);

	/* The widest buckets: grace INT64_MAX, width INT64_MAX / 16, and
	 * INT64_MAX = 16 * width + 15 lies in bucket 16. */
	dd_window_init(&w, INT64_MAX);
	const int64_t width = INT64_MAX / 16;
	ck_assert_int_eq(dd_window_add(&w, 7, 64, 0), 0);
	ck_assert_int_eq(dd_window_add(&w, 7, 72, width - 1), 0);
	ck_assert_int_eq(dd_window_add(&w, 7, 80, width), 0);
	ck_assert_int_eq(dd_window_add(&w, 7, 88, INT64_MAX), 0);
	ck_assert_int_eq(dd_window_add(&w, 7, 96, 16 * width - 1), 0);
	check_bucket_ids(&w, (const int64_t[]){0, 1, 15, 16}, 4);
	WINDOW_FINDS(&w, 7, 1, 64, 72);
	dd_window_evict(&w, -1);
	dd_window_evict(&w, INT64_MIN);
	dd_window_evict(&w, width - 1);
	ck_assert_uint_eq(w.n, 4);
	dd_window_evict(&w, width);
	check_bucket_ids(&w, (const int64_t[]){1, 15, 16}, 3);
	dd_window_evict(&w, INT64_MAX);
	check_bucket_ids(&w, (const int64_t[]){16}, 1);
	WINDOW_FINDS(&w, 7, 16 * width, 88);
	dd_window_free(&w);
}
END_TEST

/* ---- Window against a model -------------------------------------------- */

typedef struct wentry {
	uint64_t fp;
	int64_t ts;
	int alive; /* not evicted yet by the bucket rule */
} wentry;

/* Offsets are 64 + 8 * index into the model's entries. */
#define WOFF(i) (64 + 8 * (uint64_t)(i))

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b < 0);
}

typedef struct wmodel {
	const dd_window *w;
	wentry *e;
	size_t n;
	uint32_t *seen; /* per entry: the stamp of the lookup that last saw it */
	uint32_t stamp;
	int64_t grace;
	int step;
} wmodel;

/* One lookup: each offset it gives is an alive entry with this fp in the
 * bucket of ts, given once. Returns how many it gave, and whether the
 * offset `want` (0: none) was among them. */
static size_t model_lookup(wmodel *m, uint64_t fp, int64_t ts, uint64_t want, int *found)
{
	size_t cursor = 0, n = 0;
	uint64_t off;
	int64_t id = floor_div(ts, m->w->width);
	m->stamp++;
	*found = 0;
	while ((off = dd_window_next(m->w, fp, ts, &cursor)) != 0) {
		if (off < 64 || (off - 64) % 8 || (off - 64) / 8 >= m->n)
			ck_abort_msg("grace %lld step %d: offset %llu was never added",
			             (long long)m->grace, m->step, (unsigned long long)off);
		size_t i = (size_t)((off - 64) / 8);
		const wentry *e = &m->e[i];
		if (!e->alive)
			ck_abort_msg("grace %lld step %d: evicted entry %zu (ts %lld) "
			             "returned for ts %lld",
			             (long long)m->grace, m->step, i, (long long)e->ts,
			             (long long)ts);
		if (e->fp != fp || floor_div(e->ts, m->w->width) != id)
			ck_abort_msg("grace %lld step %d: entry %zu (fp %#llx ts %lld) "
			             "returned for fp %#llx ts %lld",
			             (long long)m->grace, m->step, i,
			             (unsigned long long)e->fp, (long long)e->ts,
			             (unsigned long long)fp, (long long)ts);
		if (m->seen[i] == m->stamp)
			ck_abort_msg("grace %lld step %d: entry %zu returned twice",
			             (long long)m->grace, m->step, i);
		m->seen[i] = m->stamp;
		*found |= off == want;
		n++;
	}
	return n;
}

/* Every alive entry is found from its own (fp, ts) and from another ts of
 * its bucket; everything found is right (model_lookup); the buckets are
 * sorted and hold exactly the alive entries. */
static void model_check(wmodel *m, tst_rng *r)
{
	size_t alive = 0;
	const int64_t width = m->w->width;
	for (size_t i = 0; i < m->n; i++) {
		const wentry *e = &m->e[i];
		int found;
		if (!e->alive) {
			/* An evicted entry is never given, whatever bucket its
			 * ts maps to now. */
			if (i % 7 == (size_t)m->step % 7)
				model_lookup(m, e->fp, e->ts, 0, &found);
			continue;
		}
		alive++;
		model_lookup(m, e->fp, e->ts, WOFF(i), &found);
		if (!found)
			ck_abort_msg("grace %lld step %d: entry %zu (fp %#llx ts %lld) "
			             "not found",
			             (long long)m->grace, m->step, i,
			             (unsigned long long)e->fp, (long long)e->ts);
		/* Another ts of the same bucket finds it too. */
		int64_t other = floor_div(e->ts, width) * width +
		                (int64_t)tst_rng_range(r, (uint64_t)width);
		model_lookup(m, e->fp, other, WOFF(i), &found);
		if (!found)
			ck_abort_msg("grace %lld step %d: entry %zu (ts %lld) not found "
			             "from ts %lld of its bucket",
			             (long long)m->grace, m->step, i, (long long)e->ts,
			             (long long)other);
	}
	check_buckets_sorted(m->w);
	size_t stored = 0;
	for (size_t k = 0; k < m->w->n; k++)
		stored += m->w->b[k].set.count;
	if (stored != alive)
		ck_abort_msg("grace %lld step %d: %zu entries in the buckets, model %zu",
		             (long long)m->grace, m->step, stored, alive);
}

static void window_random_run(int64_t grace, uint64_t seed)
{
	enum { STEPS = 3000, MAX_ENTRIES = STEPS * 6 };
	tst_rng r;
	tst_rng_seed(&r, seed);
	dd_window w;
	dd_window_init(&w, grace);
	const int64_t width = w.width;
	wmodel m = {&w, tst_malloc(MAX_ENTRIES * sizeof(wentry)), 0,
	            tst_malloc(MAX_ENTRIES * sizeof(uint32_t)), 0, grace, 0};
	memset(m.seen, 0, MAX_ENTRIES * sizeof(uint32_t));
	/* The newest ts so far; adds land up to a grace (plus a little) below
	 * it, or occasionally far below, or a little above it. The cutoff
	 * trails it by about a grace: negative at first. */
	int64_t clock = (int64_t)tst_rng_range(&r, (uint64_t)width * 3);
	int64_t cutoff = INT64_MIN; /* the highest so far */
	size_t evictions = 0, removed = 0;

	for (m.step = 0; m.step < STEPS; m.step++) {
		if (tst_rng_chance(&r, 70)) {
			int k = 1 + (int)tst_rng_range(&r, 5);
			for (int j = 0; j < k; j++) {
				int64_t ts;
				if (tst_rng_chance(&r, 3)) /* far back, out of order */
					ts = clock - (int64_t)tst_rng_range(&r, (uint64_t)(4 * grace + 20 * width));
				else if (tst_rng_chance(&r, 15)) /* ahead: the clock moves */
					ts = clock += (int64_t)tst_rng_range(&r, (uint64_t)(2 * width + 2));
				else /* within the window, out of order */
					ts = clock - (int64_t)tst_rng_range(&r, (uint64_t)(grace + 2 * width));
				if (ts < 0)
					ts = (int64_t)tst_rng_range(&r, (uint64_t)width);
				/* Few fingerprints with one home slot: several offsets
				 * per fp per bucket, the same fp in many buckets. */
				uint64_t fp = (tst_rng_range(&r, 5) << 10) | 0x155;
				wentry *e = &m.e[m.n];
				*e = (wentry){fp, ts, 1};
				if (dd_window_add(&w, fp, WOFF(m.n), ts) != 0)
					ck_abort_msg("dd_window_add failed at step %d", m.step);
				m.n++;
			}
		} else {
			int64_t c;
			unsigned pick = (unsigned)tst_rng_range(&r, 10);
			if (pick == 0 && w.n) {
				/* At, just below or just above an existing bucket's
				 * edges. */
				int64_t id = w.b[tst_rng_range(&r, w.n)].id;
				int64_t edges[] = {id * width, id * width - 1, id * width + 1,
				                   (id + 1) * width - 1, (id + 1) * width};
				c = edges[tst_rng_range(&r, 5)];
			} else if (pick == 1) {
				/* Lower than before: nothing more goes. */
				c = cutoff == INT64_MIN ? INT64_MIN
				                        : cutoff - (int64_t)tst_rng_range(&r, (uint64_t)(grace + width));
			} else {
				/* Rising with the clock. */
				c = clock - grace - (int64_t)tst_rng_range(&r, (uint64_t)(width + 1));
				if (c < cutoff)
					c = cutoff;
			}
			if (c > cutoff)
				cutoff = c;
			dd_window_evict(&w, c);
			evictions++;
			int64_t keep_from = floor_div(c, width);
			for (size_t i = 0; i < m.n; i++)
				if (m.e[i].alive && floor_div(m.e[i].ts, width) < keep_from) {
					m.e[i].alive = 0;
					removed++;
				}
		}
		model_check(&m, &r);
		/* Lookups at random ts, present or not: all they give is right. */
		for (int j = 0; j < 4; j++) {
			int found;
			int64_t ts = clock - (int64_t)tst_rng_range(&r, (uint64_t)(2 * grace + 4 * width));
			model_lookup(&m, (tst_rng_range(&r, 6) << 10) | 0x155, ts < 0 ? 0 : ts, 0, &found);
		}
	}
	/* The run did what it meant to: evictions removed entries, and some
	 * stayed. */
	ck_assert_uint_gt(evictions, 100);
	ck_assert_uint_gt(removed, 0);
	ck_assert_uint_gt(w.n, 0);
	/* The end: everything goes, nothing is found. */
	dd_window_evict(&w, INT64_MAX);
	for (size_t i = 0; i < m.n; i++)
		m.e[i].alive = m.e[i].alive && m.e[i].ts / width >= INT64_MAX / width;
	model_check(&m, &r);
	ck_assert_uint_eq(w.n, 0);
	dd_window_free(&w);
	free(m.e);
	free(m.seen);
}

START_TEST(test_window_random_vs_model)
{
	static const int64_t graces[] = {
		0, 1, 2, 15, 16, 17, 31, 32, 33, 100, 160, 1000, 4099, 1000003,
		60000000000,
	};
	for (size_t i = 0; i < sizeof graces / sizeof graces[0]; i++)
		window_random_run(graces[i], 1000 + i);
}
END_TEST

/* The memo: leaves found by (shard, leaf) exactly, even when they differ
 * in one field; the least recently used one makes room; a loaded leaf has
 * exactly the fingerprints added; a clear forgets every leaf. */
START_TEST(test_memo)
{
	dd_memo m;
	dd_memo_init(&m);
	for (int round = 0; round < 3; round++) {
		for (uint32_t leaf = 0; leaf < DD_MEMO_LEAVES; leaf++) {
			ck_assert_ptr_null(dd_memo_find(&m, 7, leaf));
			dd_memo_leaf *l = dd_memo_add(&m, 7, leaf);
			ck_assert_int_eq(l->state, DD_LEAF_SEEN);
			if (leaf % 2 == 0) {
				uint64_t n = leaf == 4 ? 5000 : 10 + leaf;
				for (uint64_t i = n; i > 0; i--) /* added out of order */
					ck_assert_int_eq(dd_memo_leaf_add_fp(l, i * 0x9e3779b97f4a7c15u ^ leaf), 0);
				dd_memo_leaf_loaded(l);
			}
		}
		ck_assert_ptr_null(dd_memo_find(&m, 8, 0));
		ck_assert_ptr_null(dd_memo_find(&m, -7, 0));
		for (uint32_t leaf = 0; leaf < DD_MEMO_LEAVES; leaf++) {
			dd_memo_leaf *l = dd_memo_find(&m, 7, leaf);
			ck_assert_ptr_nonnull(l);
			ck_assert_int_eq(l->state, leaf % 2 ? DD_LEAF_SEEN : DD_LEAF_LOADED);
			uint64_t n = leaf % 2 ? 0 : leaf == 4 ? 5000 : 10 + leaf;
			for (uint64_t i = 1; i <= n; i++) {
				ck_assert(dd_memo_leaf_has(l, i * 0x9e3779b97f4a7c15u ^ leaf));
				ck_assert(!dd_memo_leaf_has(l, i * 0x9e3779b97f4a7c15u ^ leaf ^ 0x100000));
			}
			ck_assert(!dd_memo_leaf_has(l, 0));
		}
		/* Every leaf but 3 looked at again: a new leaf takes the place of
		 * leaf 3, now the least recently used. */
		for (uint32_t leaf = 0; leaf < DD_MEMO_LEAVES; leaf++)
			if (leaf != 3)
				ck_assert_ptr_nonnull(dd_memo_find(&m, 7, leaf));
		dd_memo_leaf *l = dd_memo_add(&m, 9, 3);
		ck_assert_int_eq(l->state, DD_LEAF_SEEN);
		ck_assert(!dd_memo_leaf_has(l, 3 * 0x9e3779b97f4a7c15u ^ 3));
		ck_assert_ptr_null(dd_memo_find(&m, 7, 3));
		ck_assert_ptr_eq(dd_memo_find(&m, 9, 3), l);
		ck_assert_ptr_nonnull(dd_memo_find(&m, 7, 2));
		dd_memo_clear(&m);
		for (uint32_t leaf = 0; leaf < DD_MEMO_LEAVES; leaf++)
			ck_assert_ptr_null(dd_memo_find(&m, 7, leaf));
	}
	dd_memo_free(&m);
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
	tcase_add_test(tc, test_window_width);
	tcase_add_test(tc, test_window_buckets);
	tcase_add_test(tc, test_window_extreme_widths);
	tcase_add_test(tc, test_window_random_vs_model);
	suite_add_tcase(s, tc);

	tc = tcase_create("memo");
	tcase_add_test(tc, test_memo);
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
