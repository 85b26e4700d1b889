/*
 * test_index.c - per-shard state and the sparse time index (src/index.c):
 * block accounting, the walk a read uses to find and bound its range
 * (SPEC §3 and §4), state rows, and deleting entries.
 */
#include "support.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "kv.h"
#include "shard.h"

static char *dir;
static kv_env *env;

static void setup(void)
{
	dir = tst_tmpdir();
	char p[4096];
	snprintf(p, sizeof p, "%s/index", dir);
	int r = kv_open(&env, p, 1, 0);
	ck_assert_msg(r == 0, "kv_open: %s", tdm_error_message());
}

static void teardown(void)
{
	kv_close(env);
	env = NULL;
	tst_rmtree(dir);
	free(dir);
	dir = NULL;
}

static kv_txn *begin(int write)
{
	kv_txn *t;
	ck_assert_int_eq(kv_begin(&t, env, write), 0);
	return t;
}

/* ---- A synthetic main file --------------------------------------------- */

typedef struct rec {
	uint64_t off;
	uint32_t len;
	int64_t ts;
} rec;

typedef struct shard_model {
	rec *recs;
	size_t n;
	shard_meta meta;
} shard_model;

/* Records of random sizes whose ts respect the grace invariant: each is
 * >= (running max before it) - grace; some jump ahead, many lag. */
static void gen_shard(shard_model *sm, tst_rng *r, int64_t shard, size_t n,
                      int64_t t0, int64_t grace, uint32_t interval, kv_txn *txn)
{
	sm->recs = tst_malloc(n * sizeof *sm->recs);
	sm->n = n;
	index_meta_init(&sm->meta, shard);
	uint64_t off = SHARD_HEADER;
	int64_t runmax = -1;
	for (size_t i = 0; i < n; i++) {
		uint32_t len = 30 + (uint32_t)tst_rng_range(r, 400);
		int64_t ts;
		if (runmax < 0)
			ts = t0 + (int64_t)tst_rng_range(r, (uint64_t)grace);
		else if (tst_rng_chance(r, 45))
			ts = runmax - (int64_t)tst_rng_range(r, (uint64_t)grace + 1);
		else if (tst_rng_chance(r, 3))
			ts = runmax + (int64_t)tst_rng_range(r, 5 * (uint64_t)grace);
		else
			ts = runmax + (int64_t)tst_rng_range(r, (uint64_t)grace / 4);
		if (ts < 0)
			ts = 0;
		sm->recs[i] = (rec){off, len, ts};
		int rc = index_note_main(&sm->meta, off, len, ts, interval, index_put_txn, txn);
		if (rc)
			ck_abort_msg("index_note_main: %s", tdm_error_message());
		if (ts > runmax)
			runmax = ts;
		off += len;
	}
}

/* Records of 100 bytes with the given ts, one after another. */
static void fixed_shard(shard_model *sm, int64_t shard, const int64_t *ts, size_t n,
                        uint32_t interval, kv_txn *txn)
{
	sm->recs = tst_malloc(n * sizeof *sm->recs);
	sm->n = n;
	index_meta_init(&sm->meta, shard);
	for (size_t i = 0; i < n; i++) {
		sm->recs[i] = (rec){SHARD_HEADER + 100 * (uint64_t)i, 100, ts[i]};
		int rc = index_note_main(&sm->meta, sm->recs[i].off, 100, ts[i], interval,
		                         index_put_txn, txn);
		if (rc)
			ck_abort_msg("index_note_main: %s", tdm_error_message());
	}
}

typedef struct entries {
	index_entry e[4096];
	size_t n;
} entries;

static int collect_entry(void *ctx, const index_entry *e)
{
	entries *es = ctx;
	ck_assert_uint_lt(es->n, 4096);
	es->e[es->n++] = *e;
	return 0;
}

static void read_entries(entries *es, kv_txn *t, int64_t shard)
{
	es->n = 0;
	ck_assert_int_eq(index_entries_each(t, shard, collect_entry, es), 0);
}

/* ---- Block accounting -------------------------------------------------- */

START_TEST(test_note_main_blocks)
{
	const uint32_t interval = 1024;
	const int64_t grace = 1000;
	tst_rng r;
	tst_rng_seed(&r, 1);
	kv_txn *t = begin(1);
	shard_model sm;
	gen_shard(&sm, &r, 7, 3000, 1000000, grace, interval, t);
	ck_assert_int_eq(index_meta_put(t, &sm.meta), 0);
	ck_assert_int_eq(kv_commit(t), 0);

	const shard_meta *m = &sm.meta;
	uint64_t end = sm.recs[sm.n - 1].off + sm.recs[sm.n - 1].len;
	ck_assert_uint_eq(m->main_len, end);
	ck_assert_uint_eq(m->main_count, sm.n);
	int64_t max = -1, min = INT64_MAX;
	for (size_t i = 0; i < sm.n; i++) {
		if (sm.recs[i].ts > max)
			max = sm.recs[i].ts;
		if (sm.recs[i].ts < min)
			min = sm.recs[i].ts;
	}
	ck_assert_int_eq(m->max_ts, max);
	ck_assert_int_eq(m->min_ts, min);

	t = begin(0);
	static entries es;
	read_entries(&es, t, 7);
	kv_abort(t);
	ck_assert_uint_eq(es.n, m->index_entries);
	/* About one entry per interval bytes. */
	uint64_t data = end - SHARD_HEADER;
	ck_assert_uint_ge(es.n, data / (interval + 430));
	ck_assert_uint_le(es.n, data / interval + 1);
	ck_assert_uint_eq(es.e[0].off, SHARD_HEADER);
	ck_assert_int_eq(es.e[0].key, -1);

	size_t ri = 0;
	int64_t runmax = -1;
	for (size_t b = 0; b < es.n; b++) {
		const index_entry *e = &es.e[b];
		uint64_t stop = b + 1 < es.n ? es.e[b + 1].off : end;
		ck_assert_uint_lt(e->off, stop);
		/* The entry starts on a record boundary, and its key is the
		 * running max of everything before it. */
		ck_assert_uint_eq(sm.recs[ri].off, e->off);
		ck_assert_int_eq(e->key, runmax);
		if (b > 0)
			ck_assert_int_ge(e->key, es.e[b - 1].key);
		int64_t bmin = INT64_MAX;
		while (ri < sm.n && sm.recs[ri].off < stop) {
			if (sm.recs[ri].ts < bmin)
				bmin = sm.recs[ri].ts;
			if (sm.recs[ri].ts > runmax)
				runmax = sm.recs[ri].ts;
			ri++;
		}
		if (b + 1 < es.n) {
			ck_assert_int_eq(e->min, bmin);
			/* a closed block holds at least interval bytes, and not
			 * much more */
			ck_assert_uint_ge(stop - e->off, interval);
			ck_assert_uint_lt(stop - e->off, interval + 430);
		} else {
			/* the open block: min in the state, INT64_MAX in KV */
			ck_assert_int_eq(e->min, INT64_MAX);
			ck_assert_uint_eq(m->block_off, e->off);
			ck_assert_int_eq(m->block_key, e->key);
			ck_assert_int_eq(m->block_min, bmin);
		}
	}
	ck_assert_uint_eq(ri, sm.n);
	free(sm.recs);
}
END_TEST

START_TEST(test_note_small_and_recon)
{
	/* A block closes once a record starts interval bytes past its start. */
	shard_meta m;
	index_meta_init(&m, 3);
	ck_assert_uint_eq(m.main_len, SHARD_HEADER);
	ck_assert_int_eq(m.max_ts, -1);
	ck_assert_int_eq(m.min_ts, INT64_MAX);
	ck_assert_uint_eq(m.index_entries, 0);
	kv_txn *t = begin(1);
	const int64_t ts[] = {50, 40, 60, 55, 70, 65};
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(index_note_main(&m, SHARD_HEADER + 100 * (uint64_t)i, 100,
		                                 ts[i], 200, index_put_txn, t), 0);
	/* blocks at 64 (50,40), 264 (60,55), 464 (70,65) */
	static entries es;
	read_entries(&es, t, 3);
	ck_assert_uint_eq(es.n, 3);
	ck_assert_uint_eq(m.index_entries, 3);
	ck_assert_uint_eq(es.e[0].off, 64);
	ck_assert_int_eq(es.e[0].key, -1);
	ck_assert_int_eq(es.e[0].min, 40);
	ck_assert_uint_eq(es.e[1].off, 264);
	ck_assert_int_eq(es.e[1].key, 50);
	ck_assert_int_eq(es.e[1].min, 55);
	ck_assert_uint_eq(es.e[2].off, 464);
	ck_assert_int_eq(es.e[2].key, 60);
	ck_assert_int_eq(es.e[2].min, INT64_MAX);
	ck_assert_int_eq(m.block_min, 65);
	ck_assert_int_eq(m.max_ts, 70);
	ck_assert_int_eq(m.min_ts, 40);
	ck_assert_uint_eq(m.main_count, 6);
	ck_assert_uint_eq(m.main_len, 664);

	index_note_recon(&m, SHARD_HEADER, 80, 10);
	index_note_recon(&m, SHARD_HEADER + 80, 90, 20);
	ck_assert_uint_eq(m.recon_count, 2);
	ck_assert_uint_eq(m.recon_len, SHARD_HEADER + 170);
	ck_assert_int_eq(m.min_ts, 10);
	ck_assert_int_eq(m.max_ts, 70); /* recon does not move the watermark */
	kv_abort(t);
}
END_TEST

/* ---- The walk ---------------------------------------------------------- */

typedef struct block {
	uint64_t start, stop;
	int64_t key;
} block;

static size_t walk_all(block *out, size_t cap, kv_txn *t, const shard_meta *m,
                       uint64_t end, int64_t from, int64_t to, int64_t grace)
{
	index_walk w;
	int r = index_walk_open(&w, t, m, end, from, to, grace);
	if (r)
		ck_abort_msg("index_walk_open [%lld, %lld): %d %s", (long long)from,
		             (long long)to, r, tdm_error_message());
	size_t n = 0;
	uint64_t start, stop;
	int64_t key;
	while ((r = index_walk_next(&w, &start, &stop, &key)) == 0) {
		if (n == cap)
			ck_abort_msg("walk returned more than %zu runs", cap);
		out[n++] = (block){start, stop, key};
	}
	if (r != 1)
		ck_abort_msg("index_walk_next: %d %s", r, tdm_error_message());
	ck_assert_int_eq(index_walk_next(&w, &start, &stop, &key), 1);
	index_walk_close(&w);
	return n;
}

/* key - grace >= to, computed without overflow (keys reach INT64_MAX - 1,
 * `to` INT64_MAX): no record at or after a block with such a key is < to. */
static int key_past(int64_t key, int64_t grace, int64_t to)
{
	return key >= to && (uint64_t)key - (uint64_t)to >= (uint64_t)grace;
}

/* The entry starting at `off` among the first `nb` entries, or nb when off
 * is `end` (and no entry), or SIZE_MAX when off is no boundary. */
static size_t boundary(const entries *es, size_t nb, uint64_t off, uint64_t end)
{
	size_t lo = 0, hi = nb;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (es->e[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < nb && es->e[lo].off == off)
		return lo;
	return off == end ? nb : SIZE_MAX;
}

/* Checks one walk against the records of the model. The walk returns runs
 * of adjacent index blocks; what matters is that every record in
 * [from, to) lies in some run, and that what it leaves out really holds
 * nothing below `to`. */
static void check_walk(const shard_model *sm, const entries *es, kv_txn *t,
                       uint64_t end, int64_t from, int64_t to, int64_t grace,
                       size_t *runs_out, size_t *blocks_out)
{
	static block bl[4096];
	static int64_t bmin[4096];
	static unsigned char in_run[4096];
	size_t n = walk_all(bl, 4096, t, &sm->meta, end, from, to, grace);
	char q[128];
	snprintf(q, sizeof q, "[%lld, %lld) grace %lld end %llu", (long long)from,
	         (long long)to, (long long)grace, (unsigned long long)end);

	/* The blocks inside `end`, and the min ts of each from the records
	 * (all of the block's records: the index knows no better). */
	size_t nb = 0;
	while (nb < es->n && es->e[nb].off < end)
		nb++;
	size_t ri = 0;
	for (size_t b = 0; b < nb; b++) {
		uint64_t stop = b + 1 < es->n ? es->e[b + 1].off : UINT64_MAX;
		bmin[b] = INT64_MAX;
		while (ri < sm->n && sm->recs[ri].off < stop) {
			if (sm->recs[ri].ts < bmin[b])
				bmin[b] = sm->recs[ri].ts;
			ri++;
		}
		in_run[b] = 0;
	}

	/* Runs start and stop on block boundaries (entry offsets, or `end`),
	 * are non-empty, in file order, never overlap and never touch: two
	 * runs in a row have a skipped block between them (else they would be
	 * one run). No run holds a block whose key - grace >= to, nor one
	 * whose records all lie at or after `to`; the run's key is the running
	 * max before its first block. */
	for (size_t i = 0; i < n; i++) {
		size_t sb = boundary(es, nb, bl[i].start, end);
		size_t se = boundary(es, nb, bl[i].stop, end);
		if (sb == SIZE_MAX || sb == nb)
			ck_abort_msg("%s: run %zu starts at %llu, not a block inside end", q, i,
			             (unsigned long long)bl[i].start);
		if (se == SIZE_MAX)
			ck_abort_msg("%s: run %zu stops at %llu, not a block boundary", q, i,
			             (unsigned long long)bl[i].stop);
		if (se <= sb)
			ck_abort_msg("%s: run %zu is empty or backwards: [%llu, %llu)", q, i,
			             (unsigned long long)bl[i].start,
			             (unsigned long long)bl[i].stop);
		if (bl[i].key != es->e[sb].key)
			ck_abort_msg("%s: run %zu has key %lld, its first block %lld", q, i,
			             (long long)bl[i].key, (long long)es->e[sb].key);
		if (i > 0 && bl[i].start < bl[i - 1].stop)
			ck_abort_msg("%s: run %zu overlaps or precedes run %zu", q, i, i - 1);
		if (i > 0 && bl[i].start == bl[i - 1].stop)
			ck_abort_msg("%s: runs %zu and %zu are adjacent at %llu", q, i - 1, i,
			             (unsigned long long)bl[i].start);
		for (size_t b = sb; b < se; b++) {
			if (key_past(es->e[b].key, grace, to))
				ck_abort_msg("%s: run %zu holds block %zu with key %lld - grace >= to",
				             q, i, b, (long long)es->e[b].key);
			/* a block holding nothing below `to` is skipped, and ends
			 * the run */
			if (bmin[b] >= to)
				ck_abort_msg("%s: run %zu holds block %zu, min %lld >= to", q, i, b,
				             (long long)bmin[b]);
			in_run[b] = 1;
		}
	}

	/* Where the walk may start: the last block whose key is below `from`
	 * (every record before it is < from; a `from` below 0 counts as 0).
	 * Where it must stop: the first block from there whose key - grace
	 * >= to. Every block in between that no run holds was skipped, and
	 * must hold nothing below `to`: before the first run, between runs,
	 * and after the last. */
	int64_t lo = from < 0 ? 0 : from;
	size_t first = 0; /* may be nb or past: then the walk reads nothing */
	for (size_t b = 0; b < es->n; b++)
		if (es->e[b].key < lo)
			first = b;
	if (n > 0 && (first >= nb || bl[0].start < es->e[first].off))
		ck_abort_msg("%s: walk starts at %llu, before block %zu", q,
		             (unsigned long long)bl[0].start, first);
	size_t blocks = 0;
	for (size_t b = first; b < nb && !key_past(es->e[b].key, grace, to); b++) {
		if (in_run[b]) {
			blocks++;
			continue;
		}
		if (bmin[b] < to)
			ck_abort_msg("%s: block %zu (at %llu, min %lld) was skipped", q, b,
			             (unsigned long long)es->e[b].off, (long long)bmin[b]);
	}

	/* No record in [from, to) inside `end` is missed. */
	size_t bi = 0;
	for (size_t i = 0; i < sm->n; i++) {
		const rec *rc = &sm->recs[i];
		if (rc->off >= end)
			break;
		if (rc->ts < from || rc->ts >= to)
			continue;
		while (bi < n && bl[bi].stop <= rc->off)
			bi++;
		if (bi == n || bl[bi].start > rc->off)
			ck_abort_msg("%s: record %zu (ts %lld at %llu) is in no run", q, i,
			             (long long)rc->ts, (unsigned long long)rc->off);
	}
	if (runs_out)
		*runs_out += n;
	if (blocks_out)
		*blocks_out += blocks;
}

START_TEST(test_walk_random_ranges)
{
	const int64_t grace = 1000, t0 = 5000000;
	const uint32_t interval = 512;
	tst_rng r;
	tst_rng_seed(&r, 42);
	kv_txn *t = begin(1);
	/* Neighbouring shards share the table: the walk must stay in its own. */
	shard_model before, sm, after;
	gen_shard(&before, &r, 99, 300, t0 - 100000, grace, interval, t);
	gen_shard(&sm, &r, 100, 4000, t0, grace, interval, t);
	gen_shard(&after, &r, 101, 300, t0 + 10000000, grace, interval, t);
	ck_assert_int_eq(index_meta_put(t, &sm.meta), 0);
	ck_assert_int_eq(kv_commit(t), 0);

	t = begin(0);
	static entries es;
	read_entries(&es, t, 100);
	ck_assert_uint_eq(es.n, sm.meta.index_entries);
	ck_assert_uint_gt(es.n, 100);
	int64_t max = sm.meta.max_ts;
	uint64_t end = sm.meta.main_len;

	/* The queries must reach the interesting shapes: walks of several
	 * runs (a skipped block between), and runs of several blocks. */
	int several_runs = 0, long_runs = 0;
	for (int q = 0; q < 3000; q++) {
		int64_t from = t0 - 2000 + (int64_t)tst_rng_range(&r, (uint64_t)(max - t0 + 4000));
		int64_t to = from + 1 + (int64_t)tst_rng_range(&r, q % 3 ? 3000 : 50000);
		uint64_t e = end;
		if (q % 4 == 0) /* a reader's snapshot: a prefix of the file */
			e = sm.recs[tst_rng_range(&r, sm.n)].off;
		/* now and then a wider grace than the data needs */
		int64_t g = q % 5 == 0 ? 4 * grace : grace;
		size_t runs = 0, blocks = 0;
		check_walk(&sm, &es, t, e, from, to, g, &runs, &blocks);
		several_runs += runs > 1;
		long_runs += blocks > runs;
	}
	ck_assert_int_gt(several_runs, 50);
	ck_assert_int_gt(long_runs, 50);
	/* The whole range, without overflow at the top: one run, the whole
	 * file. */
	check_walk(&sm, &es, t, end, 0, INT64_MAX, grace, NULL, NULL);
	static block bl[4096];
	ck_assert_uint_eq(walk_all(bl, 4096, t, &sm.meta, end, 0, INT64_MAX, grace), 1);
	ck_assert_uint_eq(bl[0].start, SHARD_HEADER);
	ck_assert_uint_eq(bl[0].stop, end);
	ck_assert_int_eq(bl[0].key, -1);
	/* Past everything: no block can hold ts < to beyond the start; before
	 * everything: the walk ends at once. */
	check_walk(&sm, &es, t, end, max + 1, INT64_MAX, grace, NULL, NULL);
	ck_assert_uint_eq(walk_all(bl, 4096, t, &sm.meta, end, 0, t0 - grace - 1, grace), 0);
	kv_abort(t);
	free(before.recs);
	free(sm.recs);
	free(after.recs);
}
END_TEST

/* In order records, 100 bytes each, ts 1000..1999, one block per 10
 * records: block b holds ts 1000+10b .. 1009+10b under key 999+10b. */
static void in_order_shard(shard_meta *m, kv_txn *t)
{
	index_meta_init(m, 1);
	for (int i = 0; i < 1000; i++)
		if (index_note_main(m, SHARD_HEADER + 100 * (uint64_t)i, 100, 1000 + i,
		                    1000, index_put_txn, t) != 0)
			ck_abort_msg("index_note_main: %s", tdm_error_message());
	ck_assert_uint_eq(m->index_entries, 100);
}

/* Offset of record i of a shard of 100-byte records. */
#define AT(i) (SHARD_HEADER + 100 * (uint64_t)(i))

START_TEST(test_walk_stops_early)
{
	/* A read of an early range touches only the first few blocks. */
	const int64_t grace = 10;
	kv_txn *t = begin(1);
	shard_meta m;
	in_order_shard(&m, t);
	static block bl[4096];
	/* ts 1000..1999; block b holds 1000+10b .. 1009+10b, key 999+10b. */
	size_t n = walk_all(bl, 4096, t, &m, m.main_len, 1205, 1215, grace);
	/* Starts at block 20 (key 1199 < 1205; block 21 has key 1209); blocks
	 * 20 and 21 make one run; block 22 (min 1220) holds nothing below 1215
	 * and ends it, and block 23 (key 1229, minus grace >= 1215) ends the
	 * walk. */
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(bl[0].start, AT(200));
	ck_assert_uint_eq(bl[0].stop, AT(220));
	ck_assert_int_eq(bl[0].key, 1199);
	/* With a wider grace, later blocks may still hold ts < to: the walk
	 * goes on to block 32 (key 1319), skipping 22..31, and finds the same
	 * run. */
	n = walk_all(bl, 4096, t, &m, m.main_len, 1205, 1215, 100);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(bl[0].start, AT(200));
	ck_assert_uint_eq(bl[0].stop, AT(220));
	/* With no grace, block 22 (key 1219 >= 1215) ends the walk and the run
	 * in progress with it. */
	n = walk_all(bl, 4096, t, &m, m.main_len, 1205, 1215, 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(bl[0].start, AT(200));
	ck_assert_uint_eq(bl[0].stop, AT(220));
	/* A long range is one run of 30 blocks: blocks 50 and 51 hold only
	 * ts >= 1500 and block 52 (key 1519) ends the walk. */
	n = walk_all(bl, 4096, t, &m, m.main_len, 1205, 1500, grace);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(bl[0].start, AT(200));
	ck_assert_uint_eq(bl[0].stop, AT(500));
	ck_assert_int_eq(bl[0].key, 1199);
	/* A reader's snapshot ending inside a run cuts it there. */
	n = walk_all(bl, 4096, t, &m, AT(215), 1205, 1500, grace);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(bl[0].start, AT(200));
	ck_assert_uint_eq(bl[0].stop, AT(215));
	/* A range from 0 starts at the first block. */
	n = walk_all(bl, 4096, t, &m, m.main_len, 0, 1015, grace);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(bl[0].start, SHARD_HEADER);
	ck_assert_uint_eq(bl[0].stop, AT(20));
	ck_assert_int_eq(bl[0].key, -1);
	/* A range between two ts holds nothing, but its block is read. */
	n = walk_all(bl, 4096, t, &m, m.main_len, 2000, 2001, grace);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(bl[0].start, AT(990));
	ck_assert_uint_eq(bl[0].stop, m.main_len);
	/* A range before every ts walks nothing. */
	ck_assert_uint_eq(walk_all(bl, 4096, t, &m, m.main_len, 0, 1000, grace), 0);

	/* An empty shard walks nothing. */
	shard_meta empty;
	index_meta_init(&empty, 2);
	ck_assert_uint_eq(walk_all(bl, 4096, t, &empty, SHARD_HEADER, 0, INT64_MAX, grace), 0);
	kv_abort(t);
}
END_TEST

START_TEST(test_walk_runs)
{
	/* One record per block (interval 100), out of order within a grace of
	 * 1000: runs of blocks holding ts < to, split where a block holds
	 * only later ts. */
	const int64_t ts[] = {10, 20, 500, 30, 600, 700, 40, 50, 1050, 50};
	/* block:              0   1   2   3   4    5    6   7   8     9
	 * key:               -1  10  20  500 500  600  700 700 700   1050 */
	kv_txn *t = begin(1);
	shard_model sm;
	fixed_shard(&sm, 5, ts, 10, 100, t);
	ck_assert_uint_eq(sm.meta.index_entries, 10);
	static entries es;
	read_entries(&es, t, 5);
	ck_assert_uint_eq(es.n, 10);
	static block bl[4096];

	/* [0, 100): blocks 2, 4, 5 and 8 hold nothing below 100. */
	size_t n = walk_all(bl, 4096, t, &sm.meta, sm.meta.main_len, 0, 100, 1000);
	const block want[] = {{AT(0), AT(2), -1}, {AT(3), AT(4), 500},
	                      {AT(6), AT(8), 700}, {AT(9), AT(10), 1050}};
	ck_assert_uint_eq(n, 4);
	for (size_t i = 0; i < 4; i++) {
		ck_assert_uint_eq(bl[i].start, want[i].start);
		ck_assert_uint_eq(bl[i].stop, want[i].stop);
		ck_assert_int_eq(bl[i].key, want[i].key);
	}
	/* Block 9 holds ts 50, exactly its key - grace: to 51 must still
	 * read it (its key - grace, 50, is below 51), and the open block's
	 * min comes from the state (KV holds INT64_MAX). */
	n = walk_all(bl, 4096, t, &sm.meta, sm.meta.main_len, 0, 51, 1000);
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(bl[2].start, AT(6));
	ck_assert_uint_eq(bl[2].stop, AT(8));
	ck_assert_uint_eq(bl[3].start, AT(9));
	ck_assert_uint_eq(bl[3].stop, AT(10));
	/* To 50 reads neither block 7 nor block 9 (both ts 50): the third
	 * run shrinks and the fourth goes. */
	n = walk_all(bl, 4096, t, &sm.meta, sm.meta.main_len, 0, 50, 1000);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(bl[2].start, AT(6));
	ck_assert_uint_eq(bl[2].stop, AT(7));
	/* A grace of 650 (narrower than the data's) ends the walk at block 9
	 * (1050 - 650 >= 100), after the third run ended at block 8: the walk
	 * trusts the grace it is given. */
	n = walk_all(bl, 4096, t, &sm.meta, sm.meta.main_len, 0, 100, 650);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(bl[2].stop, AT(8));
	/* A snapshot ending in block 7 ends the third run there. */
	n = walk_all(bl, 4096, t, &sm.meta, AT(7) + 40, 0, 100, 1000);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(bl[2].start, AT(6));
	ck_assert_uint_eq(bl[2].stop, AT(7) + 40);
	/* From 1000: the walk starts at block 8 (the last with key < 1000),
	 * and blocks 8 (ts 1050) and 9 (ts 50, read for want of a better
	 * bound) make one run. */
	n = walk_all(bl, 4096, t, &sm.meta, sm.meta.main_len, 1000, 1100, 1000);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(bl[0].start, AT(8));
	ck_assert_uint_eq(bl[0].stop, AT(10));
	ck_assert_int_eq(bl[0].key, 700);

	/* And the general checks over every small range and grace that the
	 * data respects. */
	for (int64_t from = -5; from <= 1100; from += 5)
		for (int64_t to = from + 1; to <= 1200; to += 35)
			for (int64_t g = 1000; g <= 1200; g += 200)
				check_walk(&sm, &es, t, sm.meta.main_len, from, to, g, NULL, NULL);
	kv_abort(t);
	free(sm.recs);
}
END_TEST

START_TEST(test_walk_negative_from)
{
	const int64_t grace = 10;
	kv_txn *t = begin(1);
	shard_meta m;
	in_order_shard(&m, t);
	static block bl[4096], zero[4096];
	size_t n;
	/* A `from` below 0 means the same as 0: every ts is >= 0. The writer
	 * asks for max_ts - grace, below 0 early in the epoch (writer.c
	 * load_window -> start_for). */
	size_t n0 = walk_all(zero, 4096, t, &m, m.main_len, 0, 1015, grace);
	ck_assert_uint_eq(n0, 1);
	ck_assert_uint_eq(zero[0].start, SHARD_HEADER);
	ck_assert_uint_eq(zero[0].stop, AT(20));
	ck_assert_int_eq(zero[0].key, -1);
	const int64_t negative[] = {-1, -2, -grace, -60000000000ll, INT64_MIN + 1,
	                            INT64_MIN};
	for (size_t i = 0; i < sizeof negative / sizeof negative[0]; i++) {
		index_walk w;
		int rc = index_walk_open(&w, t, &m, m.main_len, negative[i], 1015, grace);
		ck_assert_msg(rc == 0, "index_walk_open from %lld: %d %s",
		              (long long)negative[i], rc, tdm_error_message());
		ck_assert_int_eq(w.off, SHARD_HEADER);
		ck_assert_int_eq(w.from, 0);
		index_walk_close(&w);
		n = walk_all(bl, 4096, t, &m, m.main_len, negative[i], 1015, grace);
		ck_assert_uint_eq(n, n0);
		for (size_t j = 0; j < n; j++) {
			ck_assert_uint_eq(bl[j].start, zero[j].start);
			ck_assert_uint_eq(bl[j].stop, zero[j].stop);
			ck_assert_int_eq(bl[j].key, zero[j].key);
		}
	}

	kv_abort(t);
}
END_TEST

START_TEST(test_note_extreme_ts)
{
	/* ts at the top of the range: INT64_MAX - 1 is the largest an event
	 * may have (rec_event_check rejects INT64_MAX), and the running max
	 * INT64_MAX - 1 becomes an entry key, stored + 1 without overflow. */
	const int64_t ts[] = {INT64_MAX - 5, INT64_MAX - 1, INT64_MAX - 3, INT64_MAX - 2,
	                      INT64_MAX - 1, INT64_MAX - 4};
	kv_txn *t = begin(1);
	shard_model sm;
	fixed_shard(&sm, 4, ts, 6, 100, t);
	const shard_meta *m = &sm.meta;
	ck_assert_int_eq(m->max_ts, INT64_MAX - 1);
	ck_assert_int_eq(m->min_ts, INT64_MAX - 5);
	static entries es;
	read_entries(&es, t, 4);
	ck_assert_uint_eq(es.n, 6);
	ck_assert_int_eq(es.e[0].key, -1);
	ck_assert_int_eq(es.e[1].key, INT64_MAX - 5);
	for (int i = 2; i < 6; i++)
		ck_assert_int_eq(es.e[i].key, INT64_MAX - 1);
	ck_assert_int_eq(es.e[1].min, INT64_MAX - 1);
	ck_assert_int_eq(es.e[2].min, INT64_MAX - 3);
	ck_assert_int_eq(es.e[4].min, INT64_MAX - 1);
	ck_assert_int_eq(es.e[5].min, INT64_MAX); /* the open block */
	ck_assert_int_eq(m->block_min, INT64_MAX - 4);

	static block bl[4096];
	/* To the top: from block 1 (the last with key < INT64_MAX - 4) on,
	 * every block holds a ts < INT64_MAX: one run to the end. */
	size_t n = walk_all(bl, 4096, t, m, m->main_len, INT64_MAX - 4, INT64_MAX, 10);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(bl[0].start, AT(1));
	ck_assert_uint_eq(bl[0].stop, m->main_len);
	ck_assert_int_eq(bl[0].key, INT64_MAX - 5);
	/* Below INT64_MAX - 2: blocks 1, 3 and 4 hold nothing early enough;
	 * the key - grace test must not overflow with to near the top. */
	n = walk_all(bl, 4096, t, m, m->main_len, INT64_MAX - 4, INT64_MAX - 2, 10);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(bl[0].start, AT(2));
	ck_assert_uint_eq(bl[0].stop, AT(3));
	ck_assert_int_eq(bl[0].key, INT64_MAX - 1);
	ck_assert_uint_eq(bl[1].start, AT(5));
	ck_assert_uint_eq(bl[1].stop, m->main_len);
	/* And the general checks near the top. */
	for (int64_t lo = 7; lo >= 1; lo--)
		for (int64_t hi = lo - 1; hi >= 0; hi--)
			for (int64_t g = 4; g <= 12; g += 8)
				check_walk(&sm, &es, t, m->main_len, INT64_MAX - lo,
				           INT64_MAX - hi, g, NULL, NULL);
	check_walk(&sm, &es, t, m->main_len, 0, INT64_MAX, 4, NULL, NULL);
	kv_abort(t);
	free(sm.recs);
}
END_TEST

/* ---- State rows -------------------------------------------------------- */

static shard_meta sample_meta(int64_t shard)
{
	shard_meta m = {
		.shard = shard,
		.main_len = 123456,
		.recon_len = 7890,
		.main_count = 1000,
		.recon_count = 20,
		.max_ts = 1700000000123456789ll,
		.min_ts = 1699999999000000000ll,
		.max_seq = 987654321,
		.block_off = 120000,
		.block_key = 1700000000000000000ll,
		.block_min = 1699999999500000000ll,
		.index_entries = 31,
		.labels_main_end = 120000,
		.labels_recon_end = 7890,
	};
	return m;
}

START_TEST(test_meta_roundtrip)
{
	kv_txn *t = begin(1);
	shard_meta got;
	ck_assert_int_eq(index_meta_get(&got, t, 5), TDM_ENOTFOUND);
	shard_meta m = sample_meta(5);
	ck_assert_int_eq(index_meta_put(t, &m), 0);
	shard_meta fresh;
	index_meta_init(&fresh, 6);
	ck_assert_int_eq(index_meta_put(t, &fresh), 0);
	ck_assert_int_eq(kv_commit(t), 0);

	t = begin(0);
	memset(&got, 0xab, sizeof got);
	ck_assert_int_eq(index_meta_get(&got, t, 5), 0);
	ck_assert_int_eq(got.shard, 5);
	ck_assert_uint_eq(got.main_len, m.main_len);
	ck_assert_uint_eq(got.recon_len, m.recon_len);
	ck_assert_uint_eq(got.main_count, m.main_count);
	ck_assert_uint_eq(got.recon_count, m.recon_count);
	ck_assert_int_eq(got.max_ts, m.max_ts);
	ck_assert_int_eq(got.min_ts, m.min_ts);
	ck_assert_uint_eq(got.max_seq, m.max_seq);
	ck_assert_uint_eq(got.block_off, m.block_off);
	ck_assert_int_eq(got.block_key, m.block_key);
	ck_assert_int_eq(got.block_min, m.block_min);
	ck_assert_uint_eq(got.index_entries, m.index_entries);
	ck_assert_uint_eq(got.labels_main_end, m.labels_main_end);
	ck_assert_uint_eq(got.labels_recon_end, m.labels_recon_end);
	ck_assert_int_eq(index_meta_get(&got, t, 6), 0);
	ck_assert_uint_eq(got.labels_main_end, SHARD_HEADER);
	ck_assert_uint_eq(got.labels_recon_end, 0);
	ck_assert_int_eq(got.max_ts, -1);
	ck_assert_int_eq(got.min_ts, INT64_MAX);
	ck_assert_int_eq(got.block_key, -1);
	ck_assert_int_eq(got.block_min, INT64_MAX);
	ck_assert_uint_eq(got.main_len, SHARD_HEADER);
	kv_abort(t);

	/* Delete one; the other stays. */
	t = begin(1);
	ck_assert_int_eq(index_meta_del(t, 5), 0);
	ck_assert_int_eq(index_meta_get(&got, t, 5), TDM_ENOTFOUND);
	ck_assert_int_eq(index_meta_get(&got, t, 6), 0);
	ck_assert_int_eq(kv_commit(t), 0);
}
END_TEST

START_TEST(test_meta_malformed)
{
	kv_txn *t = begin(1);
	uint8_t key[8] = {0, 0, 0, 0, 0, 0, 0, 9};
	uint8_t val[128];
	memset(val, 0, sizeof val);
	/* A row of the wrong length. */
	ck_assert_int_eq(kv_put(t, KV_SHARDS, key, 8, val, 40), 0);
	shard_meta got;
	ck_assert_int_eq(index_meta_get(&got, t, 9), TDM_ECORRUPT);
	/* The right length, inconsistent: main_len below the header. */
	ck_assert_int_eq(kv_put(t, KV_SHARDS, key, 8, val, sizeof val), 0);
	ck_assert_int_eq(index_meta_get(&got, t, 9), TDM_ECORRUPT);
	/* block_off past main_len. */
	shard_meta m = sample_meta(9);
	m.block_off = m.main_len + 1;
	ck_assert_int_eq(index_meta_put(t, &m), 0);
	ck_assert_int_eq(index_meta_get(&got, t, 9), TDM_ECORRUPT);
	/* Labels ends past the lengths, or below the header. */
	m = sample_meta(9);
	m.labels_main_end = m.main_len + 1;
	ck_assert_int_eq(index_meta_put(t, &m), 0);
	ck_assert_int_eq(index_meta_get(&got, t, 9), TDM_ECORRUPT);
	m = sample_meta(9);
	m.labels_recon_end = m.recon_len + 1;
	ck_assert_int_eq(index_meta_put(t, &m), 0);
	ck_assert_int_eq(index_meta_get(&got, t, 9), TDM_ECORRUPT);
	m = sample_meta(9);
	m.main_len = (3u << 20) + 500;
	m.labels_main_end = (3u << 20) - 100; /* records past it in two chunks */
	ck_assert_int_eq(index_meta_put(t, &m), 0);
	ck_assert_int_eq(index_meta_get(&got, t, 9), TDM_ECORRUPT);
	m.labels_main_end = (3u << 20) + 100;
	ck_assert_int_eq(index_meta_put(t, &m), 0);
	ck_assert_int_eq(index_meta_get(&got, t, 9), 0);
	m = sample_meta(9);
	m.labels_main_end = SHARD_HEADER - 1;
	ck_assert_int_eq(index_meta_put(t, &m), 0);
	ck_assert_int_eq(index_meta_get(&got, t, 9), TDM_ECORRUPT);
	m = sample_meta(9);
	ck_assert_int_eq(index_meta_put(t, &m), 0);
	ck_assert_int_eq(index_meta_get(&got, t, 9), 0);
	/* A row of 14 fields (before labels ends): every bitmap was put. */
	uint8_t old_row[128];
	kv_val v;
	ck_assert_int_eq(kv_get(&v, t, KV_SHARDS, key, 8), 0);
	memcpy(old_row, v.data, 112);
	ck_assert_int_eq(kv_put(t, KV_SHARDS, key, 8, old_row, 112), 0);
	ck_assert_int_eq(index_meta_get(&got, t, 9), 0);
	ck_assert_uint_eq(got.labels_main_end, m.main_len);
	ck_assert_uint_eq(got.labels_recon_end, m.recon_len);
	kv_abort(t);
}
END_TEST

typedef struct seen {
	int64_t shards[16];
	int n;
	int stop_at;
} seen;

static int collect_meta(void *ctx, const shard_meta *m)
{
	seen *s = ctx;
	ck_assert_int_lt(s->n, 16);
	s->shards[s->n++] = m->shard;
	ck_assert_uint_eq(m->main_len, 123456); /* the row came with it */
	if (s->stop_at && s->n == s->stop_at)
		return 77;
	return 0;
}

START_TEST(test_meta_each)
{
	const int64_t shards[] = {1ll << 40, 5, 0, 256, 1, 255, INT64_MAX};
	const int64_t sorted[] = {0, 1, 5, 255, 256, 1ll << 40, INT64_MAX};
	kv_txn *t = begin(1);
	for (int i = 0; i < 7; i++) {
		shard_meta m = sample_meta(shards[i]);
		ck_assert_int_eq(index_meta_put(t, &m), 0);
	}
	ck_assert_int_eq(kv_commit(t), 0);
	t = begin(0);

	struct {
		int64_t lo, hi;
		int first, count; /* indexes into sorted */
	} cases[] = {
		{0, INT64_MAX, 0, 7}, {-100, INT64_MAX, 0, 7}, {1, 255, 1, 3},
		{2, 254, 2, 1},       {6, 254, 0, 0},          {256, 256, 4, 1},
		{257, INT64_MAX - 1, 5, 1}, {INT64_MAX, INT64_MAX, 6, 1},
		{300, 200, 0, 0},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		seen s = {.n = 0};
		ck_assert_int_eq(index_meta_each(t, cases[c].lo, cases[c].hi, collect_meta, &s), 0);
		ck_assert_msg(s.n == cases[c].count, "case %zu: %d shards, want %d", c, s.n,
		              cases[c].count);
		for (int i = 0; i < s.n; i++)
			ck_assert_int_eq(s.shards[i], sorted[cases[c].first + i]);
	}
	/* A non-zero return stops the walk and comes back. */
	seen s = {.n = 0, .stop_at = 2};
	ck_assert_int_eq(index_meta_each(t, 0, INT64_MAX, collect_meta, &s), 77);
	ck_assert_int_eq(s.n, 2);
	kv_abort(t);
}
END_TEST

START_TEST(test_entries_del)
{
	tst_rng r;
	tst_rng_seed(&r, 3);
	kv_txn *t = begin(1);
	shard_model a, b, c;
	gen_shard(&a, &r, 10, 500, 1000, 100, 256, t);
	gen_shard(&b, &r, 11, 500, 2000, 100, 256, t);
	gen_shard(&c, &r, 12, 500, 3000, 100, 256, t);
	ck_assert_int_eq(kv_commit(t), 0);

	t = begin(1);
	static entries es;
	read_entries(&es, t, 11);
	ck_assert_uint_eq(es.n, b.meta.index_entries);
	ck_assert_int_eq(index_entries_del(t, 11), 0);
	read_entries(&es, t, 11);
	ck_assert_uint_eq(es.n, 0);
	read_entries(&es, t, 10);
	ck_assert_uint_eq(es.n, a.meta.index_entries);
	read_entries(&es, t, 12);
	ck_assert_uint_eq(es.n, c.meta.index_entries);
	ck_assert_int_eq(index_entries_del(t, 12), 0); /* the last shard */
	read_entries(&es, t, 12);
	ck_assert_uint_eq(es.n, 0);
	read_entries(&es, t, 10);
	ck_assert_uint_eq(es.n, a.meta.index_entries);
	ck_assert_int_eq(index_entries_del(t, 13), 0); /* none: fine */
	ck_assert_int_eq(kv_commit(t), 0);

	/* A walk over a shard whose entries are gone is an error, not a
	 * silently empty read. */
	t = begin(0);
	index_walk w;
	int rc = index_walk_open(&w, t, &b.meta, b.meta.main_len, 0, INT64_MAX, 100);
	ck_assert_int_eq(rc, TDM_ECORRUPT);
	kv_abort(t);
	free(a.recs);
	free(b.recs);
	free(c.recs);
}
END_TEST

static Suite *index_suite(void)
{
	Suite *s = suite_create("index");
	TCase *tc = tcase_create("index");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_note_main_blocks);
	tcase_add_test(tc, test_note_small_and_recon);
	tcase_add_test(tc, test_walk_random_ranges);
	tcase_add_test(tc, test_walk_stops_early);
	tcase_add_test(tc, test_walk_runs);
	tcase_add_test(tc, test_walk_negative_from);
	tcase_add_test(tc, test_note_extreme_ts);
	tcase_add_test(tc, test_meta_roundtrip);
	tcase_add_test(tc, test_meta_malformed);
	tcase_add_test(tc, test_meta_each);
	tcase_add_test(tc, test_entries_del);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(index_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
