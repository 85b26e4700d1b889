/*
 * test_seal.c - sealing (tdm_compact) and retention (tdm_retain, keep_ns):
 * reads identical before and after, every event once, late events and
 * duplicates after a seal, sealing again, damage in a sealed file, and a
 * power failure at every sync point of a compaction and of a retention run
 * (tests/faultfs.c), with the index kept and with it lost.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "faultfs.h"
#include "support.h"
#include "tidemark.h"

#define SHARD_NS 1000000000ll /* 1 s shards */
#define GRACE_NS 100000000ll  /* 100 ms grace */
#define T0 (1700000000ll * SHARD_NS)

static const char *const WORDS[] = {
	"GET", "POST", "/api/v1/orders", "/healthz", "200", "404", "503",
	"user=alice", "user=bob", "latency_ms=", "ERROR", "INFO", "WARN",
	"connection reset by peer", "upstream timed out", "cache hit", "cache miss",
};

/* A log-like event in shard `shard` at `ms` ms into it. */
static tdm_event make_event(tst_rng *rng, char *buf, size_t cap, tdm_label *lab,
                            int64_t ts)
{
	size_t n = 0;
	int words = 4 + (int)tst_rng_range(rng, 8);
	for (int i = 0; i < words && n + 40 < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%s%u", i ? " " : "",
		                      WORDS[tst_rng_range(rng, sizeof WORDS / sizeof WORDS[0])],
		                      (unsigned)tst_rng_range(rng, 1000));
	static const char *hosts[] = {"web-1", "web-2", "db-1"};
	lab[0].key = "host";
	lab[0].value = hosts[tst_rng_range(rng, 3)];
	tdm_event e = {ts, (uint32_t)tst_rng_next(rng), 0, lab, 1, buf, n};
	return e;
}

/* Appends `per_shard` events to each of `shards` shards from `first`, with
 * out-of-order (10%), late (5%) and resent (3%) events. Returns appended. */
static uint64_t fill(tdm_store *s, uint64_t seed, int64_t first, int shards,
                     int per_shard)
{
	tst_rng rng;
	tst_rng_seed(&rng, seed);
	uint64_t appended = 0;
	enum { BATCH = 64 };
	char bufs[BATCH][256];
	tdm_label labs[BATCH][1];
	tdm_event batch[BATCH];
	size_t nb = 0;
	for (int sh = 0; sh < shards; sh++)
		for (int i = 0; i < per_shard; i++) {
			int64_t ts = (first + sh) * SHARD_NS + (int64_t)i * (SHARD_NS / per_shard);
			if (tst_rng_chance(&rng, 10))
				ts -= (int64_t)tst_rng_range(&rng, GRACE_NS / 2);
			else if (tst_rng_chance(&rng, 5))
				ts -= GRACE_NS + (int64_t)tst_rng_range(&rng, 3 * GRACE_NS);
			if (ts < (first + sh) * SHARD_NS)
				ts = (first + sh) * SHARD_NS + (int64_t)tst_rng_range(&rng, 1000);
			if (nb && tst_rng_chance(&rng, 3)) {
				batch[nb] = batch[tst_rng_range(&rng, nb)]; /* a resend */
			} else {
				batch[nb] = make_event(&rng, bufs[nb], sizeof bufs[nb], labs[nb], ts);
			}
			if (++nb == BATCH || (sh == shards - 1 && i == per_shard - 1)) {
				tdm_append_result res;
				int r = tdm_append(&res, NULL, s, batch, nb);
				ck_assert_msg(r == 0, "append: %d %s", r, tdm_error_message());
				appended += res.appended;
				nb = 0;
			}
		}
	return appended;
}

static void lists_equal(const tst_evlist *a, const tst_evlist *b, const char *when)
{
	ck_assert_msg(a->n == b->n, "%s: %zu events, want %zu", when, a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		char x[200], y[200];
		ck_assert_msg(tst_event_cmp(a->a[i], b->a[i]) == 0 && a->a[i]->seq == b->a[i]->seq,
		              "%s: event %zu is %s seq %llu, want %s seq %llu", when, i,
		              tst_event_str(x, sizeof x, a->a[i]), (unsigned long long)a->a[i]->seq,
		              tst_event_str(y, sizeof y, b->a[i]), (unsigned long long)b->a[i]->seq);
	}
}

/* Counts files in DIR/shards whose name ends with `suffix`. */
static int count_files(const char *dir, const char *suffix)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/shards", dir);
	DIR *d = opendir(path);
	ck_assert_ptr_nonnull(d);
	int n = 0;
	struct dirent *e;
	size_t sl = strlen(suffix);
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		n += l >= sl && strcmp(e->d_name + l - sl, suffix) == 0;
	}
	closedir(d);
	return n;
}

/* ---- sealing ------------------------------------------------------------- */

START_TEST(test_seal_roundtrip)
{
	char *dir = tst_store_new(SHARD_NS, GRACE_NS, 1024);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	fill(s, 1, 1700000000, 5, 3000);
	tst_evlist before = tst_read_all(s, 0, INT64_MAX);
	tdm_stat st0;
	ck_assert_int_eq(tdm_stat_get(&st0, s), 0);
	ck_assert_uint_gt(st0.late_events, 0);

	tdm_compact_result cr;
	int r = tdm_compact(&cr, s);
	ck_assert_msg(r == 0, "compact: %d %s", r, tdm_error_message());
	/* The newest shard is inside its grace window: 4 of 5 are sealed. */
	ck_assert_uint_eq(cr.shards_sealed, 4);
	ck_assert_uint_gt(cr.bytes_before, 2 * cr.bytes_after);
	ck_assert_int_eq(count_files(dir, ".sealed"), 4);
	ck_assert_int_eq(count_files(dir, ".main"), 1);
	ck_assert_int_le(count_files(dir, ".recon"), 1);
	tst_evlist after = tst_read_all(s, 0, INT64_MAX);
	lists_equal(&after, &before, "after sealing");
	tst_verify_clean(s);
	tdm_stat st;
	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	ck_assert_uint_eq(st.sealed_shards, 4);
	ck_assert_uint_eq(st.events, st0.events);
	ck_assert_uint_gt(st.sealed_raw_bytes, 2 * st.sealed_bytes);
	/* Nothing more to seal. */
	ck_assert_int_eq(tdm_compact(&cr, s), 0);
	ck_assert_uint_eq(cr.shards_sealed, 0);

	/* Sub-ranges and selectors over sealed shards. */
	tst_evlist part = tst_read_all(s, T0 + SHARD_NS / 3, T0 + 2 * SHARD_NS + 17);
	size_t want = 0, first = SIZE_MAX;
	for (size_t i = 0; i < before.n; i++)
		if (before.a[i]->ts >= T0 + SHARD_NS / 3 && before.a[i]->ts < T0 + 2 * SHARD_NS + 17) {
			if (first == SIZE_MAX)
				first = i;
			want++;
		}
	ck_assert_uint_eq(part.n, want);
	for (size_t i = 0; i < part.n; i++)
		ck_assert_int_eq(tst_event_cmp(part.a[i], before.a[first + i]), 0);
	tst_evlist_free(&part);
	tst_evlist_free(&after);
	ck_assert_int_eq(tdm_store_close(s), 0);

	/* Reopened (a reader, then a writer): the same. */
	s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_INTERVAL);
	after = tst_read_all(s, 0, INT64_MAX);
	lists_equal(&after, &before, "reopened");
	tst_evlist_free(&after);
	tdm_store_close(s);
	tst_evlist_free(&before);
	tst_tmpdir_drop(dir);
}
END_TEST

START_TEST(test_seal_late_and_duplicates)
{
	char *dir = tst_store_new(SHARD_NS, GRACE_NS, 1024);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	fill(s, 2, 1700000000, 3, 2000);
	tst_evlist before = tst_read_all(s, 0, INT64_MAX);
	ck_assert_int_eq(tdm_compact(NULL, s), 0);

	/* Every stored event again, into sealed shards and the open one: all
	 * duplicates, also after a reopen (no cached dedupe state). */
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < before.n; i += 7) {
			tdm_append_result res;
			ck_assert_int_eq(tdm_append(&res, NULL, s, before.a[i], 1), 0);
			ck_assert_msg(res.duplicates == 1, "event %zu stored twice", i);
		}
		tdm_store_close(s);
		s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	}
	/* New events for a sealed shard go to its recon file, are read in
	 * order, deduplicated, and sealed again into generation 2. */
	int recon_files = count_files(dir, ".recon");
	tst_evlist added = {0};
	tst_rng rng;
	tst_rng_seed(&rng, 99);
	for (int i = 0; i < 50; i++) {
		char buf[256];
		tdm_label lab[1];
		tdm_event e = make_event(&rng, buf, sizeof buf, lab,
		                         T0 + (int64_t)tst_rng_range(&rng, SHARD_NS));
		uint8_t out;
		tdm_append_result res;
		ck_assert_int_eq(tdm_append(&res, &out, s, &e, 1), 0);
		ck_assert_int_eq(out, TDM_STORED_LATE);
		ck_assert_int_eq(tdm_append(&res, &out, s, &e, 1), 0);
		ck_assert_int_eq(out, TDM_DUPLICATE);
		e.seq = 0;
		tst_evlist_add(&added, &e);
	}
	ck_assert_int_eq(count_files(dir, ".recon"), recon_files + 1);
	tst_evlist mid = tst_read_all(s, 0, INT64_MAX);
	ck_assert_uint_eq(mid.n, before.n + added.n);
	tst_verify_clean(s);
	tdm_compact_result cr;
	ck_assert_int_eq(tdm_compact(&cr, s), 0);
	ck_assert_uint_eq(cr.shards_sealed, 1);
	ck_assert_int_eq(count_files(dir, "00000001.sealed"), 1);
	ck_assert_int_eq(count_files(dir, "00000002.sealed"), 1);
	tst_evlist after = tst_read_all(s, 0, INT64_MAX);
	lists_equal(&after, &mid, "sealed again");
	tst_verify_clean(s);
	for (size_t i = 0; i < added.n; i++) {
		tdm_append_result res;
		ck_assert_int_eq(tdm_append(&res, NULL, s, added.a[i], 1), 0);
		ck_assert_uint_eq(res.duplicates, 1);
	}
	tdm_store_close(s);
	tst_evlist_free(&before);
	tst_evlist_free(&mid);
	tst_evlist_free(&after);
	tst_evlist_free(&added);
	tst_tmpdir_drop(dir);
}
END_TEST

/* The index is derived: deleted, it is rebuilt from sealed files. */
START_TEST(test_seal_index_rebuilt)
{
	char *dir = tst_store_new(SHARD_NS, GRACE_NS, 1024);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	fill(s, 3, 1700000000, 4, 1500);
	ck_assert_int_eq(tdm_compact(NULL, s), 0);
	tst_evlist before = tst_read_all(s, 0, INT64_MAX);
	tdm_store_close(s);
	char path[4200];
	snprintf(path, sizeof path, "%s/index/data.mdb", dir);
	ck_assert_int_eq(unlink(path), 0);
	s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	tst_evlist after = tst_read_all(s, 0, INT64_MAX);
	lists_equal(&after, &before, "index rebuilt");
	tst_verify_clean(s);
	tdm_stat st;
	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	ck_assert_uint_eq(st.sealed_shards, 3);
	tdm_store_close(s);
	tst_evlist_free(&before);
	tst_evlist_free(&after);
	tst_tmpdir_drop(dir);
}
END_TEST

/* A damaged block: its records are skipped and reported, the others read. */
START_TEST(test_seal_damage)
{
	char *dir = tst_store_new(SHARD_NS, GRACE_NS, 1024);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	fill(s, 4, 1700000000, 2, 4000);
	ck_assert_int_eq(tdm_compact(NULL, s), 0);
	tst_evlist before = tst_read_all(s, T0, T0 + SHARD_NS);
	tdm_store_close(s);
	char path[4200];
	snprintf(path, sizeof path, "%s/shards/%020lld.00000001.sealed", dir,
	         (long long)(T0 / SHARD_NS));
	int fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	char c;
	ck_assert_int_eq(pread(fd, &c, 1, 64 + 40 + 100), 1);
	c ^= 0x55;
	ck_assert_int_eq(pwrite(fd, &c, 1, 64 + 40 + 100), 1);
	close(fd);

	s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_INTERVAL);
	tdm_iter *it;
	ck_assert_int_eq(tdm_iter_open(&it, s, T0, T0 + SHARD_NS, NULL), 0);
	const tdm_event *ev;
	size_t n = 0;
	int r;
	while ((r = tdm_iter_next(&ev, it)) == 0)
		n++;
	ck_assert_int_eq(r, TDM_ITEROVER);
	const char *msg;
	ck_assert_uint_eq(tdm_iter_damage(&msg, it), 1);
	ck_assert_ptr_nonnull(strstr(msg, "block checksum"));
	ck_assert_uint_gt(n, 0);
	ck_assert_uint_lt(n, before.n);
	tdm_iter_close(it);
	uint64_t problems;
	ck_assert_int_eq(tdm_verify(&problems, s, NULL, NULL), 0);
	ck_assert_uint_gt(problems, 0);
	tdm_store_close(s);
	tst_evlist_free(&before);
	tst_tmpdir_drop(dir);
}
END_TEST

/* A read that began before a seal sees the old shard, or fails: never a
 * mix, never an event twice. */
START_TEST(test_seal_reader_snapshot)
{
	char *dir = tst_store_new(SHARD_NS, GRACE_NS, 1024);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	fill(s, 5, 1700000000, 3, 1000);
	tst_evlist before = tst_read_all(s, 0, INT64_MAX);
	tdm_store *rd = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_INTERVAL);
	tdm_iter *it;
	ck_assert_int_eq(tdm_iter_open(&it, rd, 0, INT64_MAX, NULL), 0);
	const tdm_event *ev;
	ck_assert_int_eq(tdm_iter_next(&ev, it), 0); /* the first shard is open */
	ck_assert_int_eq(tdm_compact(NULL, s), 0);
	size_t n = 1;
	int r;
	while ((r = tdm_iter_next(&ev, it)) == 0) {
		ck_assert_int_eq(tst_event_cmp(ev, before.a[n]), 0);
		n++;
	}
	ck_assert_msg(r == TDM_ITEROVER || r == TDM_ECORRUPT, "read: %d", r);
	if (r == TDM_ECORRUPT)
		ck_assert_ptr_nonnull(strstr(tdm_error_message(), "read again"));
	else
		ck_assert_uint_eq(n, before.n);
	tdm_iter_close(it);
	tdm_store_close(rd);
	tdm_store_close(s);
	tst_evlist_free(&before);
	tst_tmpdir_drop(dir);
}
END_TEST

/* ---- retention --------------------------------------------------------------- */

START_TEST(test_retain)
{
	char *dir = tst_store_new(SHARD_NS, GRACE_NS, 1024);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	fill(s, 6, 1700000000, 5, 800);
	ck_assert_int_eq(tdm_compact(NULL, s), 0); /* retention drops sealed shards too */
	tst_evlist before = tst_read_all(s, 0, INT64_MAX);
	uint64_t dropped;
	/* Before the second shard's end: only the first goes. */
	ck_assert_int_eq(tdm_retain(&dropped, s, T0 + 2 * SHARD_NS - 1), 0);
	ck_assert_uint_eq(dropped, 1);
	tst_evlist after = tst_read_all(s, 0, INT64_MAX);
	size_t first = 0;
	while (first < before.n && before.a[first]->ts < T0 + SHARD_NS)
		first++;
	ck_assert_uint_eq(after.n, before.n - first);
	for (size_t i = 0; i < after.n; i++)
		ck_assert_int_eq(tst_event_cmp(after.a[i], before.a[first + i]), 0);
	tst_verify_clean(s);
	/* Everything: the newest shard is inside its grace window and stays. */
	ck_assert_int_eq(tdm_retain(&dropped, s, INT64_MAX), 0);
	ck_assert_uint_eq(dropped, 3);
	tdm_stat st;
	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	ck_assert_uint_eq(st.shards, 1);
	ck_assert_int_eq(count_files(dir, ".sealed") + count_files(dir, ".dropped"), 0);
	ck_assert_int_le(count_files(dir, ".recon"), 1);
	ck_assert_int_eq(count_files(dir, ".main"), 1);
	tst_verify_clean(s);
	tdm_store_close(s);
	/* A reader cannot retain. */
	s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_INTERVAL);
	ck_assert_int_eq(tdm_retain(&dropped, s, INT64_MAX), TDM_EREADONLY);
	ck_assert_int_eq(tdm_compact(NULL, s), TDM_EREADONLY);
	tdm_store_close(s);
	tst_evlist_free(&before);
	tst_evlist_free(&after);
	tst_tmpdir_drop(dir);
}
END_TEST

START_TEST(test_keep_option)
{
	char *dir = tst_tmpdir();
	tdm_options o = TDM_OPTIONS_INIT;
	o.shard_duration_ns = SHARD_NS;
	o.grace_ns = GRACE_NS;
	o.keep_ns = 3 * SHARD_NS;
	ck_assert_int_eq(tdm_store_create(dir, &o), 0);
	tdm_options other = o;
	other.keep_ns = 0;
	ck_assert_int_eq(tdm_store_create(dir, &other), TDM_EMISMATCH);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	tdm_options got;
	tdm_store_options(&got, s);
	ck_assert_int_eq(got.keep_ns, 3 * SHARD_NS);
	fill(s, 7, 1700000000, 8, 200);
	tdm_stat st;
	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	/* Newest ~ shard 7 end: shards ending at or before newest - 3 s go. */
	ck_assert_uint_le(st.shards, 4);
	ck_assert_int_ge(st.min_ts, T0 + 4 * SHARD_NS);
	tst_verify_clean(s);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

/* ---- power loss at every sync point ------------------------------------------- */

static char *crash_dir(void)
{
	struct stat st;
	const char *env = getenv("TMPDIR");
	if ((!env || !*env) && stat("/dev/shm", &st) == 0 && access("/dev/shm", W_OK) == 0) {
		char *p = tst_malloc(64);
		snprintf(p, 64, "/dev/shm/tidemark-seal-XXXXXX");
		if (mkdtemp(p))
			return p;
		free(p);
	}
	return tst_tmpdir();
}

static void make_crash_store(const char *dir, uint64_t seed)
{
	faultfs_install(dir, seed);
	char idx[4200];
	snprintf(idx, sizeof idx, "%s/index", dir);
	faultfs_ignore(idx);
	tdm_options o = TDM_OPTIONS_INIT;
	o.shard_duration_ns = SHARD_NS;
	o.grace_ns = GRACE_NS;
	o.index_interval = 512;
	ck_assert_int_eq(tdm_store_create(dir, &o), 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_BATCH);
	fill(s, seed, 1700000000, 3, 300);
	tdm_store_close(s);
}

enum { OP_COMPACT, OP_COMPACT2, OP_RETAIN };

/* Runs the operation; with OP_COMPACT2 the store is sealed first, then
 * given late events, so the crash hits a second seal. */
static int run_op(const char *dir, int op)
{
	tdm_store *s;
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	oo.durability = TDM_DURABILITY_BATCH;
	int r = tdm_store_open(&s, dir, &oo);
	if (r)
		return r;
	uint64_t dropped;
	r = op == OP_RETAIN ? tdm_retain(&dropped, s, T0 + 2 * SHARD_NS) : tdm_compact(NULL, s);
	tdm_store_close(s);
	return r;
}

static void prepare_second_seal(const char *dir)
{
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_BATCH);
	ck_assert_int_eq(tdm_compact(NULL, s), 0);
	tst_rng rng;
	tst_rng_seed(&rng, 5);
	for (int i = 0; i < 20; i++) {
		char buf[256];
		tdm_label lab[1];
		tdm_event e = make_event(&rng, buf, sizeof buf, lab,
		                         T0 + (int64_t)tst_rng_range(&rng, 2 * SHARD_NS));
		ck_assert_int_eq(tdm_append(NULL, NULL, s, &e, 1), 0);
	}
	tdm_store_close(s);
}

/* After the crash: every event of the old state exactly once, shards
 * either whole or (retention) gone whole; verify clean. */
static void check_after(const char *dir, const tst_evlist *want, int op,
                        const char *what)
{
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_BATCH);
	tst_evlist got = tst_read_all(s, 0, INT64_MAX);
	if (op == OP_RETAIN) {
		/* Shards 0 and 1 of 3 may be gone, each whole. */
		size_t i = 0, j = 0;
		for (int sh = 0; sh < 3; sh++) {
			int64_t end = T0 + (sh + 1) * SHARD_NS;
			size_t wn = 0, gn = 0;
			while (i + wn < want->n && want->a[i + wn]->ts < end)
				wn++;
			while (j + gn < got.n && got.a[j + gn]->ts < end)
				gn++;
			ck_assert_msg(gn == wn || (gn == 0 && sh < 2),
			              "%s: shard %d has %zu of %zu events", what, sh, gn, wn);
			for (size_t k = 0; k < gn; k++)
				ck_assert_msg(tst_event_cmp(got.a[j + k], want->a[i + k]) == 0,
				              "%s: shard %d event %zu differs", what, sh, k);
			i += wn;
			j += gn;
		}
	} else {
		char w[64];
		snprintf(w, sizeof w, "%s", what);
		lists_equal(&got, want, w);
	}
	tst_verify_clean(s);
	tst_evlist_free(&got);
	tdm_store_close(s);
}

static void crash_sweep(int op, enum faultfs_mode mode, int lose_index)
{
	uint64_t seed = 11;
	/* A dry run counts the sync points and gives the events. */
	char *dir = crash_dir();
	make_crash_store(dir, seed);
	if (op == OP_COMPACT2)
		prepare_second_seal(dir);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_BATCH);
	tst_evlist want = tst_read_all(s, 0, INT64_MAX);
	tdm_store_close(s);
	faultfs_arm();
	ck_assert_int_eq(run_op(dir, op), 0);
	uint64_t total = faultfs_syncs();
	faultfs_uninstall();
	tst_rmtree(dir);
	free(dir);
	ck_assert_uint_gt(total, 2);

	for (uint64_t n = 1; n <= total; n++) {
		dir = crash_dir();
		make_crash_store(dir, seed);
		if (op == OP_COMPACT2)
			prepare_second_seal(dir);
		faultfs_arm();
		faultfs_power_loss_at(n);
		int r = run_op(dir, op);
		ck_assert_msg(!faultfs_power_lost() || r != 0,
		              "sync %llu: the operation succeeded after the power went",
		              (unsigned long long)n);
		faultfs_crash(mode);
		faultfs_uninstall();
		if (lose_index) {
			char p[4200];
			snprintf(p, sizeof p, "%s/index/data.mdb", dir);
			unlink(p);
		}
		char what[128];
		snprintf(what, sizeof what, "op %d, power loss at sync %llu of %llu, %s%s", op,
		         (unsigned long long)n, (unsigned long long)total,
		         faultfs_mode_name(mode), lose_index ? ", index lost" : "");
		check_after(dir, &want, op, what);
		/* And the operation, run again, completes. */
		ck_assert_int_eq(run_op(dir, op), 0);
		check_after(dir, &want, op, what);
		tst_rmtree(dir);
		free(dir);
	}
	tst_evlist_free(&want);
}

START_TEST(test_crash_compact)
{
	for (int lose = 0; lose < 2; lose++) {
		crash_sweep(OP_COMPACT, FAULTFS_DROP, lose);
		crash_sweep(OP_COMPACT, FAULTFS_TEAR, lose);
	}
}
END_TEST

START_TEST(test_crash_compact_again)
{
	for (int lose = 0; lose < 2; lose++) {
		crash_sweep(OP_COMPACT2, FAULTFS_DROP, lose);
		crash_sweep(OP_COMPACT2, FAULTFS_TEAR, lose);
	}
}
END_TEST

START_TEST(test_crash_retain)
{
	for (int lose = 0; lose < 2; lose++) {
		crash_sweep(OP_RETAIN, FAULTFS_DROP, lose);
		crash_sweep(OP_RETAIN, FAULTFS_TEAR, lose);
	}
}
END_TEST

/* A failing write or rename (ENOSPC, EIO) anywhere in a compaction: the
 * compaction reports it, the store fails, and a reopen gives the same
 * events; compacting again completes. */
START_TEST(test_fail_during_compact)
{
	static const enum faultfs_op ops[] = {FAULTFS_PWRITE, FAULTFS_FSYNC,
	                                      FAULTFS_RENAME, FAULTFS_OPEN};
	for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
		char *dir = crash_dir();
		make_crash_store(dir, 21);
		tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_BATCH);
		tst_evlist want = tst_read_all(s, 0, INT64_MAX);
		tdm_store_close(s);
		faultfs_arm();
		ck_assert_int_eq(run_op(dir, OP_COMPACT), 0);
		uint64_t calls = faultfs_calls(ops[o]);
		faultfs_uninstall();
		tst_rmtree(dir);
		free(dir);
		for (uint64_t k = 1; k <= calls; k++) {
			dir = crash_dir();
			make_crash_store(dir, 21);
			faultfs_arm();
			faultfs_fail_call(ops[o], k, ops[o] == FAULTFS_PWRITE ? 28 /* ENOSPC */ : 5,
			                  ops[o] == FAULTFS_PWRITE && k % 2);
			/* Some calls may fail harmlessly (an optional file's open): what
			 * matters is the store afterwards. */
			(void)run_op(dir, OP_COMPACT);
			faultfs_uninstall();
			char what[96];
			snprintf(what, sizeof what, "op %zu, call %llu failed", o,
			         (unsigned long long)k);
			check_after(dir, &want, OP_COMPACT, what);
			ck_assert_int_eq(run_op(dir, OP_COMPACT), 0);
			check_after(dir, &want, OP_COMPACT, what);
			tst_rmtree(dir);
			free(dir);
		}
		tst_evlist_free(&want);
	}
}
END_TEST

static Suite *seal_suite(void)
{
	Suite *su = suite_create("seal");
	TCase *tc = tcase_create("seal");
	tcase_add_test(tc, test_seal_roundtrip);
	tcase_add_test(tc, test_seal_late_and_duplicates);
	tcase_add_test(tc, test_seal_index_rebuilt);
	tcase_add_test(tc, test_seal_damage);
	tcase_add_test(tc, test_seal_reader_snapshot);
	tcase_add_test(tc, test_retain);
	tcase_add_test(tc, test_keep_option);
	suite_add_tcase(su, tc);
	TCase *tcr = tcase_create("crash");
	tcase_add_test(tcr, test_crash_compact);
	tcase_add_test(tcr, test_crash_compact_again);
	tcase_add_test(tcr, test_crash_retain);
	tcase_add_test(tcr, test_fail_during_compact);
	suite_add_tcase(su, tcr);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(seal_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
