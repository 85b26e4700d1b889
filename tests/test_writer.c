/*
 * test_writer.c - the write path (SPEC §2-§3): on-time, late and duplicate
 * outcomes judged per event, idempotent appends across batches and
 * restarts, seq order, and failed writes (fault-injected through tdm_io).
 */
#include "support.h"

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"

#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)
#define T0 INT64_C(1700000000000000000)
#define SHARD (3600 * SEC)
#define GRACE (2 * SEC)

/* ---- helpers ----------------------------------------------------------- */

static tdm_event ev_at(int64_t ts, uint32_t id, const char *payload)
{
	tdm_event e = {ts, id, 0, NULL, 0, payload, strlen(payload)};
	return e;
}

/* Appends and checks outcomes: `want` is a string of 'S' (stored), 'L'
 * (late) and 'D' (duplicate), one per event. */
static void append_expect(tdm_store *s, const tdm_event *evs, const char *want)
{
	size_t n = strlen(want);
	uint8_t out[256];
	ck_assert(n <= sizeof out);
	memset(out, 0xee, sizeof out);
	tdm_append_result res;
	int r = tdm_append(&res, out, s, evs, n);
	ck_assert_msg(r == 0, "append: %d %s", r, tdm_error_message());
	uint64_t stored = 0, late = 0, dups = 0;
	for (size_t i = 0; i < n; i++) {
		int w = want[i] == 'S' ? TDM_STORED : want[i] == 'L' ? TDM_STORED_LATE
		                                                     : TDM_DUPLICATE;
		ck_assert_msg(out[i] == w, "event %zu (ts +%" PRId64 " ms): outcome %d, want %c",
		              i, (evs[i].ts - T0) / MS, out[i], want[i]);
		stored += want[i] != 'D';
		late += want[i] == 'L';
		dups += want[i] == 'D';
	}
	ck_assert_uint_eq(res.appended, stored);
	ck_assert_uint_eq(res.late, late);
	ck_assert_uint_eq(res.duplicates, dups);
}

/* Counts the stored events equal to `ev` (SPEC §2), over all time. */
static size_t count_copies(tdm_store *s, const tdm_event *ev)
{
	tdm_iter *it = NULL;
	int r = tdm_iter_open(&it, s, 0, INT64_MAX, NULL);
	ck_assert_msg(r == 0, "iter_open: %s", tdm_error_message());
	const tdm_event *got;
	size_t n = 0;
	while ((r = tdm_iter_next(&got, it)) == 0)
		n += tst_event_cmp(got, ev) == 0;
	ck_assert_int_eq(r, TDM_ITEROVER);
	tdm_iter_close(it);
	return n;
}

static size_t count_all(tdm_store *s)
{
	tdm_iter *it = NULL;
	ck_assert_int_eq(tdm_iter_open(&it, s, 0, INT64_MAX, NULL), 0);
	const tdm_event *got;
	size_t n = 0;
	int r;
	while ((r = tdm_iter_next(&got, it)) == 0)
		n++;
	ck_assert_int_eq(r, TDM_ITEROVER);
	tdm_iter_close(it);
	return n;
}

static uint64_t stat_events(tdm_store *s, uint64_t *late)
{
	tdm_stat st;
	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	if (late)
		*late = st.late_events;
	return st.events;
}

/* ---- outcomes -------------------------------------------------------------- */

START_TEST(test_outcomes_per_event)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	/* A fresh shard: the first event sets the watermark, whatever it is. */
	tdm_event a[] = {ev_at(T0 + 5 * SEC, 1, "a"), ev_at(T0 + SEC, 1, "b"),
	                 ev_at(T0 + 3 * SEC, 1, "c"), ev_at(T0 + 6 * SEC, 1, "d"),
	                 ev_at(T0 + 3 * SEC, 2, "e"), ev_at(T0 + 4 * SEC - 1, 1, "f")};
	/* +1 s is late (< 5 s - 2 s); +3 s is exactly at max - grace: on time;
	 * after +6 s, +3 s is late again and +4 s - 1 ns too. */
	append_expect(s, a, "SLSSLL");

	/* Old first, then new: each judged on its own. */
	tdm_event b[] = {ev_at(T0 + SEC, 1, "old"), ev_at(T0 + 10 * SEC, 1, "new"),
	                 ev_at(T0 + 11 * SEC, 1, "new")};
	append_expect(s, b, "LSS");
	/* New first, then old: the first raises the watermark for the others. */
	tdm_event c[] = {ev_at(T0 + 20 * SEC, 1, "new"), ev_at(T0 + 17 * SEC, 1, "old"),
	                 ev_at(T0 + 18 * SEC, 1, "edge"), ev_at(T0 + 12 * SEC, 1, "old")};
	append_expect(s, c, "SLSL");
	/* A far-future event only moves its own shard's watermark. */
	tdm_event d[] = {ev_at(T0 + 100 * SHARD, 1, "future"), ev_at(T0 + 19 * SEC, 1, "ok")};
	append_expect(s, d, "SS");

	uint64_t late;
	ck_assert_uint_eq(stat_events(s, &late), 15);
	ck_assert_uint_eq(late, 6);
	ck_assert_uint_eq(count_all(s), 15);
	tst_verify_clean(s);
	ck_assert_int_eq(tdm_store_close(s), 0);
	tst_tmpdir_drop(dir);
}
END_TEST

START_TEST(test_duplicates_in_batch)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tdm_event x = ev_at(T0 + 10 * SEC, 1, "x"), y = ev_at(T0 + 10 * SEC, 2, "x");
	tdm_event a[] = {x, x, y, x, y};
	append_expect(s, a, "SDSDD");
	/* Late ones repeated in a batch, and a repeat of this batch's on-time one. */
	tdm_event l = ev_at(T0 + SEC, 1, "late");
	tdm_event b[] = {l, ev_at(T0 + 11 * SEC, 1, "z"), l, x, l};
	append_expect(s, b, "LSDDD");
	/* The same again in the next batch: all duplicates. */
	append_expect(s, a, "DDDDD");
	append_expect(s, b, "DDDDD");
	ck_assert_uint_eq(count_copies(s, &x), 1);
	ck_assert_uint_eq(count_copies(s, &l), 1);
	ck_assert_uint_eq(stat_events(s, NULL), 4);
	tst_verify_clean(s);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

/* Many filler events, so the copies looked for lie in earlier index blocks
 * and outside the dedupe window. */
static void fill(tdm_store *s, int64_t from, int64_t to, int64_t step)
{
	tdm_event batch[100];
	char text[100][32];
	size_t n = 0;
	for (int64_t ts = from; ts < to; ts += step) {
		snprintf(text[n], sizeof text[n], "fill %" PRId64, ts - T0);
		batch[n] = ev_at(ts, 7, text[n]);
		if (++n == 100) {
			ck_assert_int_eq(tdm_append(NULL, NULL, s, batch, n), 0);
			n = 0;
		}
	}
	if (n)
		ck_assert_int_eq(tdm_append(NULL, NULL, s, batch, n), 0);
}

START_TEST(test_duplicates_across_reopen)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tdm_event x = ev_at(T0 + SEC, 1, "in main, then old");
	tdm_event x2 = ev_at(T0 + 2 * SEC, 9, "in main, then old, same handle");
	tdm_event on = ev_at(T0 + 600 * SEC, 1, "on time");
	append_expect(s, &x, "S");
	append_expect(s, &x2, "S");
	fill(s, T0 + 2 * SEC, T0 + 600 * SEC, 100 * MS); /* watermark far past grace */
	append_expect(s, &on, "S");
	tdm_event l = ev_at(T0 + 300 * SEC + 1, 1, "late, in recon");
	append_expect(s, &l, "L");
	/* Same handle: the late copy of x2 is in the main file. */
	append_expect(s, &x2, "D");
	append_expect(s, &l, "D");
	ck_assert_int_eq(tdm_store_close(s), 0);

	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	/* On time, found in the window. */
	append_expect(s, &on, "D");
	/* Late by position, stored in recon. */
	append_expect(s, &l, "D");
	/* Late by position, stored in the main file long ago. */
	append_expect(s, &x, "D");
	append_expect(s, &x2, "D");
	/* A filler from the middle of the main file, late now. */
	tdm_event f = ev_at(T0 + 300 * SEC, 7, "fill 300000000000");
	append_expect(s, &f, "D");
	/* But its neighbour with another payload is new, and late. */
	tdm_event g = ev_at(T0 + 300 * SEC, 7, "fill 300000000001");
	append_expect(s, &g, "L");
	ck_assert_int_eq(tdm_store_close(s), 0);

	/* Once more, with the late ones first in a mixed batch. */
	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tdm_event mix[] = {x, g, l, on, f, ev_at(T0 + 601 * SEC, 1, "new")};
	append_expect(s, mix, "DDDDDS");
	ck_assert_uint_eq(count_copies(s, &x), 1);
	ck_assert_uint_eq(count_copies(s, &x2), 1);
	ck_assert_uint_eq(count_copies(s, &l), 1);
	ck_assert_uint_eq(count_copies(s, &on), 1);
	ck_assert_uint_eq(count_copies(s, &f), 1);
	ck_assert_uint_eq(count_copies(s, &g), 1);
	tst_verify_clean(s);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

/* A batch bringing several late events to the same digest leaves (as a
 * replica repair does) reads each leaf's committed records once, for the
 * whole batch: copies of them, of each other and of the last batch's
 * events are still found, new events still stored. */
START_TEST(test_leaf_batches)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	fill(s, T0, T0 + 600 * SEC, 100 * MS); /* one filler per leaf at most */
	char text[40][48];
	tdm_event batch[40];
	char want[41] = {0};
	size_t n = 0;
	for (int i = 0; i < 8; i++) {
		int64_t ts = T0 + 100 * SEC + i * 100 * MS;
		snprintf(text[n], sizeof text[n], "fill %" PRId64, ts - T0);
		batch[n] = ev_at(ts, 7, text[n]); /* the filler itself */
		want[n++] = 'D';
		for (int j = 1; j <= 3; j++) {
			snprintf(text[n], sizeof text[n], "new %d.%d", i, j);
			batch[n] = ev_at(ts + j * MS, 7, text[n]);
			want[n++] = 'L';
		}
		snprintf(text[n], sizeof text[n], "fill %" PRId64 "x", ts - T0);
		batch[n] = ev_at(ts, 7, text[n]); /* same ts and id, new payload */
		want[n++] = 'L';
	}
	append_expect(s, batch, want);
	/* The same again, with every other event new: nothing but duplicates. */
	char want2[41];
	memset(want2, 'D', n);
	want2[n] = '\0';
	append_expect(s, batch, want2);
	/* A batch that repeats one of its own events. */
	tdm_event twice[3] = {ev_at(T0 + 200 * SEC + MS, 7, "twice"), batch[1],
	                      ev_at(T0 + 200 * SEC + MS, 7, "twice")};
	append_expect(s, twice, "LDD");
	ck_assert_uint_eq(count_copies(s, &batch[0]), 1);
	ck_assert_uint_eq(count_copies(s, &batch[1]), 1);
	ck_assert_uint_eq(count_copies(s, &batch[4]), 1);
	ck_assert_uint_eq(count_all(s), 6000 + 4 * 8 + 1); /* 4 new per filler, "twice" */
	tst_verify_clean(s);
	ck_assert_int_eq(tdm_store_close(s), 0);
	tst_tmpdir_drop(dir);
}
END_TEST

START_TEST(test_not_duplicates)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	const tdm_label l1[] = {{"host", "web-1"}, {"level", "error"}};
	const tdm_label l1r[] = {{"level", "error"}, {"host", "web-1"}};
	const tdm_label l2[] = {{"host", "web-1"}, {"level", "warn"}};
	int64_t ts = T0 + 10 * SEC;
	tdm_event e[] = {
		{ts, 1, 0, l1, 2, "GET /", 5},
		{ts, 1, 0, l1, 2, "GET /a", 6}, /* same ts and id, other payload */
		{ts, 2, 0, l1, 2, "GET /", 5},  /* same ts and content, other id */
		{ts, 1, 0, l2, 2, "GET /", 5},  /* other labels */
		{ts, 1, 0, NULL, 0, "GET /", 5},/* no labels */
		{ts, 1, 0, l1, 2, "GET ", 4},   /* payload a prefix */
		{ts + 1, 1, 0, l1, 2, "GET /", 5},
		{ts, 1, 0, l1r, 2, "GET /", 5}, /* the first, labels in another order */
	};
	append_expect(s, e, "SSSSSSSD");
	/* The same pairs when late (in recon) and after a reopen. */
	tdm_event far = ev_at(T0 + 100 * SEC, 1, "far");
	append_expect(s, &far, "S");
	tdm_event f[8];
	for (int i = 0; i < 8; i++) {
		f[i] = e[i];
		f[i].ts -= 5 * SEC;
	}
	append_expect(s, f, "LLLLLLLD");
	ck_assert_int_eq(tdm_store_close(s), 0);
	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	append_expect(s, f, "DDDDDDDD");
	append_expect(s, e, "DDDDDDDD");
	tdm_event g[] = {{ts, 3, 0, l1, 2, "GET /", 5}, {ts - 5 * SEC, 3, 0, l1, 2, "GET /", 5}};
	append_expect(s, g, "LL");
	ck_assert_uint_eq(stat_events(s, NULL), 17);
	tst_verify_clean(s);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

/* ---- seq ----------------------------------------------------------------- */

/* The seq of the stored event equal to `ev`; 0 if none. */
static uint64_t seq_of(tdm_store *s, const tdm_event *ev)
{
	tdm_iter *it = NULL;
	ck_assert_int_eq(tdm_iter_open(&it, s, ev->ts, ev->ts + 1, NULL), 0);
	const tdm_event *got;
	uint64_t seq = 0;
	while (tdm_iter_next(&got, it) == 0)
		if (tst_event_cmp(got, ev) == 0)
			seq = got->seq;
	tdm_iter_close(it);
	return seq;
}

START_TEST(test_seq_order)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	/* One batch over three shards, interleaved, with a late one and a
	 * duplicate in it: seqs follow batch order over the stored ones. */
	tdm_event a[] = {
		ev_at(T0 + 2 * SHARD, 1, "c"), ev_at(T0, 1, "a"),
		ev_at(T0 + SHARD + 10 * SEC, 1, "b"), ev_at(T0 + 10 * SEC, 1, "a2"),
		ev_at(T0 + SHARD, 1, "b-late"), ev_at(T0, 1, "a"),
		ev_at(T0 + 2 * SHARD + 1, 1, "c2"),
	};
	append_expect(s, a, "SSSSLDS");
	uint64_t want[] = {1, 2, 3, 4, 5, 0, 6};
	for (size_t i = 0; i < 7; i++)
		if (want[i])
			ck_assert_msg(seq_of(s, &a[i]) == want[i], "event %zu: seq %" PRIu64
			              ", want %" PRIu64, i, seq_of(s, &a[i]), want[i]);
	/* Duplicates take no seq. */
	append_expect(s, a, "DDDDDDD");
	tdm_event b[] = {ev_at(T0 + SHARD + 11 * SEC, 1, "d"), ev_at(T0 + 11 * SEC, 1, "e")};
	append_expect(s, b, "SS");
	ck_assert_uint_eq(seq_of(s, &b[0]), 7);
	ck_assert_uint_eq(seq_of(s, &b[1]), 8);
	tdm_stat st;
	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	ck_assert_uint_eq(st.last_seq, 8);
	ck_assert_int_eq(tdm_store_close(s), 0);

	/* After a reopen, seq continues. */
	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tdm_event c[] = {ev_at(T0 + 3 * SHARD, 1, "f"), ev_at(T0 + 12 * SEC, 1, "g"),
	                 ev_at(T0 + SEC, 1, "h-late")};
	append_expect(s, c, "SSL");
	ck_assert_uint_eq(seq_of(s, &c[0]), 9);
	ck_assert_uint_eq(seq_of(s, &c[1]), 10);
	ck_assert_uint_eq(seq_of(s, &c[2]), 11);
	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	ck_assert_uint_eq(st.last_seq, 11);
	ck_assert_uint_eq(st.events, 11);

	/* Every seq 1..11 appears exactly once. */
	uint8_t seen[12] = {0};
	tdm_iter *it = NULL;
	ck_assert_int_eq(tdm_iter_open(&it, s, 0, INT64_MAX, NULL), 0);
	const tdm_event *ev;
	while (tdm_iter_next(&ev, it) == 0) {
		ck_assert(ev->seq >= 1 && ev->seq <= 11);
		ck_assert_msg(!seen[ev->seq]++, "seq %" PRIu64 " twice", ev->seq);
	}
	tdm_iter_close(it);
	tst_verify_clean(s);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

/* ---- failed writes ------------------------------------------------------- */

enum fault_mode { FAULT_ALL, FAULT_HALF, FAULT_PATH };
static enum fault_mode fault_mode;
static char fault_path[64]; /* FAULT_PATH: only writes to this file fail */
static int fault_hits;

static int fd_is(int fd, const char *name)
{
	char link[64], target[4200];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof target - 1);
	if (n < 0)
		return 0;
	target[n] = 0;
	return strstr(target, name) != NULL;
}

static ssize_t faulty_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	fault_hits++;
	if (fault_mode == FAULT_PATH && !fd_is(fd, fault_path))
		return pwrite(fd, buf, n, off);
	if (fault_mode == FAULT_HALF && n > 1) {
		fault_mode = FAULT_ALL; /* half of it lands, then the disk is full */
		return pwrite(fd, buf, n / 2, off);
	}
	errno = ENOSPC;
	return -1;
}

static tdm_io_ops faulty_io;

static void faults_on(enum fault_mode mode, const char *path)
{
	snprintf(fault_path, sizeof fault_path, "%s", path ? path : "");
	faulty_io = tdm_io_posix;
	faulty_io.pwrite = faulty_pwrite;
	fault_mode = mode;
	fault_hits = 0;
	tdm_io = &faulty_io;
}

static void faults_off(void)
{
	tdm_io = &tdm_io_posix;
}

typedef struct committed {
	tdm_event *evs;
	size_t n;
} committed;

/* Stores 3 batches of 50 events (some late) in the shard of T0 and, with
 * `two_shards`, the next one; returns them. */
static committed store_some(tdm_store *s, int two_shards, char (*text)[32])
{
	committed c = {tst_malloc(150 * sizeof(tdm_event)), 0};
	for (int b = 0; b < 3; b++) {
		for (int i = 0; i < 50; i++) {
			int k = b * 50 + i;
			int64_t ts = T0 + 100 * SEC + k * 100 * MS;
			if (i % 10 == 9)
				ts -= 50 * SEC; /* late */
			if (two_shards && i % 2)
				ts += SHARD;
			snprintf(text[k], 32, "committed %d", k);
			c.evs[k] = ev_at(ts, (uint32_t)k, text[k]);
		}
		tdm_append_result res;
		ck_assert_int_eq(tdm_append(&res, NULL, s, c.evs + b * 50, 50), 0);
		ck_assert_uint_eq(res.appended, 50);
		c.n += 50;
	}
	return c;
}

/* The failed batch: on-time and late events in the shard(s) of store_some. */
static void failed_batch(tdm_event *evs, size_t n, char (*text)[32], int two_shards)
{
	for (size_t i = 0; i < n; i++) {
		int64_t ts = T0 + 200 * SEC + (int64_t)i * 10 * MS;
		if (i % 7 == 3)
			ts = T0 + 30 * SEC + (int64_t)i; /* late */
		if (two_shards && i >= n / 2)
			ts += SHARD;
		snprintf(text[i], 32, "failed %zu", i);
		evs[i] = ev_at(ts, 1, text[i]);
	}
}

static void check_after_failure(const char *dir, const committed *c,
                                const tdm_event *lost, size_t n_lost)
{
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	for (size_t i = 0; i < c->n; i++)
		ck_assert_msg(count_copies(s, &c->evs[i]) == 1,
		              "committed event %zu is not readable once after the failure", i);
	size_t there = 0;
	for (size_t i = 0; i < n_lost; i++)
		there += count_copies(s, &lost[i]);
	ck_assert_msg(there == 0 || there == n_lost,
	              "%zu of the %zu events of the failed batch are there after reopen:"
	              " a partial batch", there, n_lost);
	ck_assert_uint_eq(count_all(s), c->n + there);
	ck_assert_uint_eq(stat_events(s, NULL), c->n + there);
	tst_verify_clean(s);
	/* The store works again, and the lost events can be stored. */
	uint8_t out[64];
	tdm_append_result res;
	ck_assert_int_eq(tdm_append(&res, out, s, lost, n_lost), 0);
	ck_assert_uint_eq(res.appended + res.duplicates, n_lost);
	ck_assert_uint_eq(res.duplicates, there);
	ck_assert_uint_eq(count_all(s), c->n + n_lost);
	tst_verify_clean(s);
	ck_assert_int_eq(tdm_store_close(s), 0);
}

static void run_fault(enum fault_mode mode, const char *path, int two_shards)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	char text[150][32], ftext[64][32];
	committed c = store_some(s, two_shards, text);
	tdm_event lost[40];
	failed_batch(lost, 40, ftext, two_shards);

	faults_on(mode, path);
	tdm_append_result res;
	int r = tdm_append(&res, NULL, s, lost, 40);
	int hits = fault_hits;
	faults_off();
	ck_assert_msg(r == TDM_EIO, "append with a failing pwrite: %d (%s), want TDM_EIO",
	              r, tdm_error_message());
	ck_assert_msg(hits > 0, "the failing pwrite was never called");
	ck_assert_msg(strstr(tdm_error_message(), "shards/"), "message '%s' names no file",
	              tdm_error_message());
	/* Sticky: the next append fails without writing. */
	r = tdm_append(&res, NULL, s, c.evs, 1);
	ck_assert_msg(r == TDM_EFAILED, "append after a failure: %d, want TDM_EFAILED", r);
	tdm_event fresh = ev_at(T0 + 900 * SEC, 1, "after failure");
	ck_assert_int_eq(tdm_append(&res, NULL, s, &fresh, 1), TDM_EFAILED);
	ck_assert_int_eq(tdm_sync(s), TDM_EFAILED);
	/* Reads through the failed handle see only what was committed. */
	ck_assert_uint_eq(count_all(s), c.n);
	tdm_store_close(s);

	check_after_failure(dir, &c, lost, 40);
	free(c.evs);
	tst_tmpdir_drop(dir);
}

START_TEST(test_fault_enospc)
{
	run_fault(FAULT_ALL, NULL, 0);
}
END_TEST

START_TEST(test_fault_enospc_two_shards)
{
	run_fault(FAULT_ALL, NULL, 1);
}
END_TEST

/* Half of a write lands before the disk fills: a torn batch on disk. */
START_TEST(test_fault_torn_write)
{
	run_fault(FAULT_HALF, NULL, 0);
}
END_TEST

/* The first shard's writes of the batch land, the second's fail. */
START_TEST(test_fault_second_shard)
{
	char name[64];
	snprintf(name, sizeof name, "%020" PRId64 ".main", T0 / SHARD + 1);
	run_fault(FAULT_PATH, name, 1);
}
END_TEST

static Suite *writer_suite(void)
{
	Suite *su = suite_create("writer");
	TCase *tc = tcase_create("outcomes");
	tcase_add_test(tc, test_outcomes_per_event);
	tcase_add_test(tc, test_duplicates_in_batch);
	tcase_add_test(tc, test_duplicates_across_reopen);
	tcase_add_test(tc, test_leaf_batches);
	tcase_add_test(tc, test_not_duplicates);
	tcase_add_test(tc, test_seq_order);
	suite_add_tcase(su, tc);
	TCase *tf = tcase_create("faults");
	tcase_add_test(tf, test_fault_enospc);
	tcase_add_test(tf, test_fault_enospc_two_shards);
	tcase_add_test(tf, test_fault_torn_write);
	tcase_add_test(tf, test_fault_second_shard);
	suite_add_tcase(su, tf);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(writer_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
