/*
 * test_recover.c - the index is derived, the shard files are the truth
 * (SPEC §3): a deleted index is rebuilt, a torn tail past the committed
 * length is cut, a file shorter than the index says is indexed anew.
 */
#include "support.h"

#include <check.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)
#define T0 INT64_C(1700000000000000000)
#define SHARD (10 * SEC)
#define GRACE (2 * SEC)

/* ---- helpers ----------------------------------------------------------- */

/* Same events, same order, same seqs. */
static void same_events(const tst_evlist *a, const tst_evlist *b)
{
	ck_assert_uint_eq(a->n, b->n);
	char x[256], y[256];
	for (size_t i = 0; i < a->n; i++)
		ck_assert_msg(tst_event_cmp(a->a[i], b->a[i]) == 0 && a->a[i]->seq == b->a[i]->seq,
		              "#%zu: %s vs %s", i, tst_event_str(x, sizeof x, a->a[i]),
		              tst_event_str(y, sizeof y, b->a[i]));
}

static tdm_stat stat_of(tdm_store *s)
{
	tdm_stat st;
	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	return st;
}

static void same_stat(const tdm_stat *a, const tdm_stat *b)
{
	ck_assert_uint_eq(a->shards, b->shards);
	ck_assert_uint_eq(a->events, b->events);
	ck_assert_uint_eq(a->late_events, b->late_events);
	ck_assert_uint_eq(a->index_entries, b->index_entries);
	ck_assert_uint_eq(a->last_seq, b->last_seq);
	ck_assert_int_eq(a->min_ts, b->min_ts);
	ck_assert_int_eq(a->max_ts, b->max_ts);
}

static const tdm_label LABELS[][2] = {
	{{"host", "web-1"}, {"level", "error"}},
	{{"level", "warn"}, {"host", "web-2"}},
	{{"stream", "order-42"}, {"type", "created"}},
};

/* Events over three shards, ~20% late, with labels; `texts` keeps the
 * payloads alive. Appended in batches of 50. */
static tst_evlist fill(tdm_store *s, size_t n, uint64_t seed, char (*texts)[40])
{
	tst_rng rng;
	tst_rng_seed(&rng, seed);
	tst_evlist model = {0};
	tdm_event batch[50];
	size_t nb = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t ts = T0 + (int64_t)(i * 3 * SHARD / n);
		if (tst_rng_chance(&rng, 20))
			ts -= (int64_t)tst_rng_range(&rng, 6 * SEC);
		if (ts < T0)
			ts = T0;
		snprintf(texts[i], 40, "event %zu %" PRIu64, i, tst_rng_next(&rng) % 1000);
		tdm_event e = {ts, (uint32_t)tst_rng_range(&rng, 4), 0,
		               LABELS[i % 3], 2, texts[i], strlen(texts[i])};
		batch[nb++] = e;
		tst_evlist_add(&model, &e);
		if (nb == 50) {
			ck_assert_int_eq(tdm_append(NULL, NULL, s, batch, nb), 0);
			nb = 0;
		}
	}
	if (nb)
		ck_assert_int_eq(tdm_append(NULL, NULL, s, batch, nb), 0);
	return model;
}

static void shard_path(char *out, size_t cap, const char *dir, int64_t shard,
                       const char *ext)
{
	snprintf(out, cap, "%s/shards/%020" PRId64 ".%s", dir, shard, ext);
}

static void append_bytes(const char *path, const void *buf, size_t n)
{
	int fd = open(path, O_WRONLY | O_APPEND);
	ck_assert_msg(fd >= 0, "open %s", path);
	ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
	close(fd);
}

/* The offset and length of the last record of a shard file. */
static void last_record(const char *path, off_t *off, uint32_t *len)
{
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	off_t size = tst_file_size(path), pos = 64;
	ck_assert_int_gt(size, 64);
	for (;;) {
		uint8_t h[4];
		ck_assert_int_eq(pread(fd, h, 4, pos), 4);
		uint32_t l = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 |
		             (uint32_t)h[3] << 24;
		ck_assert_int_ge(l, 30);
		if (pos + (off_t)l >= size) {
			ck_assert_int_eq(pos + (off_t)l, size);
			*off = pos;
			*len = l;
			break;
		}
		pos += l;
	}
	close(fd);
}

static void rm_index(const char *dir)
{
	char p[4200];
	snprintf(p, sizeof p, "%s/index", dir);
	tst_rmtree(p);
	struct stat st;
	ck_assert_int_ne(stat(p, &st), 0);
}

/* ---- an index that lost commits with the power -------------------------- */

static void copy_file(const char *from, const char *to)
{
	char cmd[9000];
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
	ck_assert_int_eq(system(cmd), 0);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* A writer that does not sync every commit (durability none) leaves
 * UNSYNCED naming the boot. An index that is older than the files (its last
 * commits never reached the disk) is then the picture after a power
 * failure: found from another boot, the index is rebuilt and the events in
 * the files are kept; found from this boot (a process that died, whose
 * commits were in the page cache), files past the committed lengths belong
 * to a batch that never committed and are cut. */
static void lost_commits_case(int other_boot)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tdm_event a = {T0 + 1, 1, 0, NULL, 0, "first", 5};
	tdm_event b = {T0 + 2, 2, 0, NULL, 0, "second", 6};
	ck_assert_int_eq(tdm_append(NULL, NULL, s, &a, 1), 0);
	ck_assert_int_eq(tdm_store_close(s), 0);
	char data[4200], saved[4200], unsynced[4200];
	snprintf(data, sizeof data, "%s/index/data.mdb", dir);
	snprintf(saved, sizeof saved, "%s/data.mdb.saved", dir);
	snprintf(unsynced, sizeof unsynced, "%s/UNSYNCED", dir);
	copy_file(data, saved);

	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	ck_assert_int_eq(tdm_append(NULL, NULL, s, &b, 1), 0);
	ck_assert_int_eq(tdm_store_close(s), 0);
	struct stat st;
	ck_assert_msg(stat(unsynced, &st) == 0, "durability none leaves UNSYNCED");

	copy_file(saved, data); /* the index lost the second commit */
	unlink(saved);
	if (other_boot)
		write_text(unsynced, "00000000-0000-0000-0000-000000000000");
	s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_NONE);
	tst_evlist got = tst_read_all(s, 0, INT64_MAX);
	ck_assert_uint_eq(got.n, other_boot ? 2 : 1);
	tst_verify_clean(s);
	tst_evlist_free(&got);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}

START_TEST(test_power_loss_rebuilds_index)
{
	lost_commits_case(1);
}
END_TEST

START_TEST(test_same_boot_trusts_index)
{
	lost_commits_case(0);
}
END_TEST

/* A writer whose every commit is synced, or a clean close after syncing,
 * leaves no UNSYNCED behind. */
START_TEST(test_unsynced_marker_life)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	char unsynced[4200];
	snprintf(unsynced, sizeof unsynced, "%s/UNSYNCED", dir);
	struct stat st;
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	tdm_store *s;
	ck_assert_int_eq(tdm_store_open(&s, dir, &oo), 0); /* interval */
	ck_assert_int_eq(stat(unsynced, &st), 0);
	ck_assert_int_eq(tdm_store_close(s), 0);
	ck_assert_int_ne(stat(unsynced, &st), 0);
	oo.durability = TDM_DURABILITY_BATCH;
	ck_assert_int_eq(tdm_store_open(&s, dir, &oo), 0);
	ck_assert_int_ne(stat(unsynced, &st), 0);
	ck_assert_int_eq(tdm_store_close(s), 0);
	tst_tmpdir_drop(dir);
}
END_TEST

/* ---- a deleted index ------------------------------------------------------- */

static void rebuild_case(unsigned first_open_flags)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	static char texts[3000][40];
	tst_evlist model = fill(s, 3000, 11, texts);
	tst_evlist before = tst_read_all(s, 0, INT64_MAX);
	tdm_stat st0 = stat_of(s);
	ck_assert_uint_eq(st0.shards, 3);
	ck_assert_uint_gt(st0.late_events, 100);
	ck_assert_uint_gt(st0.index_entries, 3);
	tst_verify_clean(s);
	ck_assert_int_eq(tdm_store_close(s), 0);

	rm_index(dir);
	s = tst_store_open(dir, first_open_flags, TDM_DURABILITY_NONE);
	tst_evlist after = tst_read_all(s, 0, INT64_MAX);
	same_events(&before, &after);
	tdm_stat st1 = stat_of(s);
	same_stat(&st0, &st1);
	tst_verify_clean(s);
	tst_evlist_free(&after);
	if (first_open_flags) {
		tdm_store_close(s);
		s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	}

	/* Dedupe still knows every stored event, main and recon. */
	for (size_t i = 0; i < model.n; i += 100) {
		size_t k = model.n - i < 100 ? model.n - i : 100;
		tdm_event batch[100];
		for (size_t j = 0; j < k; j++)
			batch[j] = *model.a[i + j];
		tdm_append_result res;
		ck_assert_int_eq(tdm_append(&res, NULL, s, batch, k), 0);
		ck_assert_msg(res.duplicates == k, "batch at %zu: %" PRIu64 " of %zu duplicates",
		              i, res.duplicates, k);
	}
	/* Seq continues above the old max. */
	tdm_event e = {T0 + 3 * SHARD + 5, 1, 0, NULL, 0, "new", 3};
	ck_assert_int_eq(tdm_append(NULL, NULL, s, &e, 1), 0);
	tdm_stat st2 = stat_of(s);
	ck_assert_uint_eq(st2.last_seq, st0.last_seq + 1);
	ck_assert_uint_eq(st2.events, st0.events + 1);
	after = tst_read_all(s, 0, INT64_MAX);
	ck_assert_uint_eq(after.n, before.n + 1);
	ck_assert_uint_eq(after.a[after.n - 1]->seq, st0.last_seq + 1);
	tst_verify_clean(s);
	tdm_store_close(s);

	tst_evlist_free(&after);
	tst_evlist_free(&before);
	tst_evlist_free(&model);
	tst_tmpdir_drop(dir);
}

START_TEST(test_rebuild_index)
{
	rebuild_case(0);
}
END_TEST

/* A reader with no writer around rebuilds too. */
START_TEST(test_rebuild_index_reader)
{
	rebuild_case(TDM_OPEN_READONLY);
}
END_TEST

/* Only the LMDB data file lost (lock file left). */
START_TEST(test_rebuild_data_file_lost)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	static char texts[500][40];
	tst_evlist model = fill(s, 500, 3, texts);
	tst_evlist before = tst_read_all(s, 0, INT64_MAX);
	tdm_stat st0 = stat_of(s);
	tdm_store_close(s);
	char p[4200];
	snprintf(p, sizeof p, "%s/index/data.mdb", dir);
	ck_assert_int_eq(unlink(p), 0);
	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tst_evlist after = tst_read_all(s, 0, INT64_MAX);
	same_events(&before, &after);
	tdm_stat st1 = stat_of(s);
	same_stat(&st0, &st1);
	tst_verify_clean(s);
	tdm_store_close(s);
	tst_evlist_free(&after);
	tst_evlist_free(&before);
	tst_evlist_free(&model);
	tst_tmpdir_drop(dir);
}
END_TEST

/* ---- torn tails ------------------------------------------------------------- */

static void torn_tail_case(const char *ext, int kind, unsigned open_flags)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	static char texts[1500][40];
	tst_evlist model = fill(s, 1500, 21, texts);
	tst_evlist before = tst_read_all(s, 0, INT64_MAX);
	tdm_stat st0 = stat_of(s);
	tdm_store_close(s);

	char path[4200];
	shard_path(path, sizeof path, dir, T0 / SHARD + 1, ext);
	off_t size = tst_file_size(path);
	off_t last;
	uint32_t len;
	last_record(path, &last, &len);
	uint8_t buf[512];
	ck_assert_uint_le(len, sizeof buf);
	if (kind == 0) {
		/* Garbage. */
		tst_rng rng;
		tst_rng_seed(&rng, 5);
		tst_rng_bytes(&rng, buf, 77);
		append_bytes(path, buf, 77);
	} else if (kind == 1) {
		/* The first half of a record (a copy of the last one). */
		int fd = open(path, O_RDONLY);
		ck_assert_int_eq(pread(fd, buf, len, last), (ssize_t)len);
		close(fd);
		append_bytes(path, buf, len / 2);
	} else {
		/* A record header claiming more bytes than there are. */
		memset(buf, 0, sizeof buf);
		buf[0] = 200;
		append_bytes(path, buf, 40);
	}
	ck_assert_int_gt(tst_file_size(path), size);

	s = tst_store_open(dir, open_flags, TDM_DURABILITY_NONE);
	ck_assert_msg(tst_file_size(path) == size, "%s: %lld bytes after reopen, want %lld", ext,
	              (long long)tst_file_size(path), (long long)size);
	tst_evlist after = tst_read_all(s, 0, INT64_MAX);
	same_events(&before, &after);
	tdm_stat st1 = stat_of(s);
	same_stat(&st0, &st1);
	tst_verify_clean(s);
	tdm_store_close(s);

	/* A writer afterwards appends right after the sound records. */
	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tdm_event e[] = {{T0 + SHARD + 9 * SEC + 999, 1, 0, NULL, 0, "new", 3},
	                 {T0 + SHARD, 1, 0, NULL, 0, "new late", 8}};
	tdm_append_result res;
	ck_assert_int_eq(tdm_append(&res, NULL, s, e, 2), 0);
	ck_assert_uint_eq(res.appended, 2);
	ck_assert_uint_eq(res.late, 1);
	tst_evlist_free(&after);
	after = tst_read_all(s, 0, INT64_MAX);
	ck_assert_uint_eq(after.n, before.n + 2);
	tst_verify_clean(s);
	tdm_store_close(s);
	s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_NONE);
	tst_evlist again = tst_read_all(s, 0, INT64_MAX);
	same_events(&after, &again);
	tdm_store_close(s);

	tst_evlist_free(&again);
	tst_evlist_free(&after);
	tst_evlist_free(&before);
	tst_evlist_free(&model);
	tst_tmpdir_drop(dir);
}

START_TEST(test_garbage_tail_main)
{
	torn_tail_case("main", 0, 0);
}
END_TEST

START_TEST(test_half_record_main)
{
	torn_tail_case("main", 1, 0);
}
END_TEST

START_TEST(test_long_header_main)
{
	torn_tail_case("main", 2, 0);
}
END_TEST

START_TEST(test_garbage_tail_recon)
{
	torn_tail_case("recon", 0, 0);
}
END_TEST

START_TEST(test_half_record_recon)
{
	torn_tail_case("recon", 1, 0);
}
END_TEST

/* A reader with no writer around repairs as well. */
START_TEST(test_half_record_main_reader)
{
	torn_tail_case("main", 1, TDM_OPEN_READONLY);
}
END_TEST

/* ---- a file shorter than the index says ------------------------------------ */

static void truncated_case(int and_index_lost)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	static char texts[1500][40];
	tst_evlist model = fill(s, 1500, 31, texts);
	tst_evlist before = tst_read_all(s, 0, INT64_MAX);
	tdm_stat st0 = stat_of(s);
	tdm_store_close(s);

	char path[4200];
	shard_path(path, sizeof path, dir, T0 / SHARD + 2, "main");
	off_t last;
	uint32_t len;
	last_record(path, &last, &len);
	/* The record being cut. */
	int fd = open(path, O_RDWR);
	uint8_t rec[512];
	ck_assert_int_eq(pread(fd, rec, len, last), (ssize_t)len);
	ck_assert_int_eq(ftruncate(fd, last + len / 2), 0);
	close(fd);
	int64_t lost_ts;
	memcpy(&lost_ts, rec + 16, 8); /* little-endian hosts */
	if (and_index_lost)
		rm_index(dir);

	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	ck_assert_int_eq(tst_file_size(path), last);
	tst_evlist after = tst_read_all(s, 0, INT64_MAX);
	ck_assert_uint_eq(after.n, before.n - 1);
	/* Every other record is there, with its seq. */
	size_t j = 0, missing = 0, k = 0;
	for (size_t i = 0; i < before.n; i++) {
		if (j < after.n && tst_event_cmp(before.a[i], after.a[j]) == 0) {
			ck_assert_uint_eq(before.a[i]->seq, after.a[j]->seq);
			j++;
		} else {
			missing++;
			k = i;
			ck_assert_int_eq(before.a[i]->ts, lost_ts);
		}
	}
	ck_assert_uint_eq(missing, 1);
	tdm_stat st1 = stat_of(s);
	ck_assert_uint_eq(st1.events, st0.events - 1);
	ck_assert_uint_eq(st1.shards, st0.shards);
	tst_verify_clean(s);

	/* The lost event can be stored again; seq stays above the old max. */
	tdm_append_result res;
	uint8_t out;
	ck_assert_int_eq(tdm_append(&res, &out, s, before.a[k], 1), 0);
	ck_assert_uint_eq(res.appended, 1);
	ck_assert_int_eq(out, TDM_STORED);
	tdm_stat st2 = stat_of(s);
	if (!and_index_lost)
		ck_assert_uint_eq(st2.last_seq, st0.last_seq + 1);
	else
		ck_assert_uint_gt(st2.last_seq, st1.last_seq);
	ck_assert_uint_eq(st2.events, st0.events);
	tst_verify_clean(s);
	tdm_store_close(s);

	tst_evlist_free(&after);
	tst_evlist_free(&before);
	tst_evlist_free(&model);
	tst_tmpdir_drop(dir);
}

START_TEST(test_truncated_last_record)
{
	truncated_case(0);
}
END_TEST

START_TEST(test_truncated_last_record_no_index)
{
	truncated_case(1);
}
END_TEST

/* The files of a shard deleted: its events and entries are gone. */
START_TEST(test_shard_files_deleted)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	static char texts[900][40];
	tst_evlist model = fill(s, 900, 41, texts);
	tst_evlist before = tst_read_all(s, 0, INT64_MAX);
	tdm_store_close(s);
	char path[4200];
	size_t gone = 0;
	for (size_t i = 0; i < before.n; i++)
		gone += before.a[i]->ts / SHARD == T0 / SHARD + 1;
	shard_path(path, sizeof path, dir, T0 / SHARD + 1, "main");
	ck_assert_int_eq(unlink(path), 0);
	shard_path(path, sizeof path, dir, T0 / SHARD + 1, "recon");
	unlink(path);
	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tst_evlist after = tst_read_all(s, 0, INT64_MAX);
	ck_assert_uint_eq(after.n, before.n - gone);
	for (size_t i = 0; i < after.n; i++)
		ck_assert_int_ne(after.a[i]->ts / SHARD, T0 / SHARD + 1);
	tdm_stat st = stat_of(s);
	ck_assert_uint_eq(st.shards, 2);
	tst_verify_clean(s);
	tdm_store_close(s);
	tst_evlist_free(&after);
	tst_evlist_free(&before);
	tst_evlist_free(&model);
	tst_tmpdir_drop(dir);
}
END_TEST

static Suite *recover_suite(void)
{
	Suite *su = suite_create("recover");
	TCase *tc = tcase_create("index");
	tcase_add_test(tc, test_rebuild_index);
	tcase_add_test(tc, test_rebuild_index_reader);
	tcase_add_test(tc, test_rebuild_data_file_lost);
	tcase_add_test(tc, test_shard_files_deleted);
	tcase_add_test(tc, test_power_loss_rebuilds_index);
	tcase_add_test(tc, test_same_boot_trusts_index);
	tcase_add_test(tc, test_unsynced_marker_life);
	suite_add_tcase(su, tc);
	TCase *tt = tcase_create("tails");
	tcase_add_test(tt, test_garbage_tail_main);
	tcase_add_test(tt, test_half_record_main);
	tcase_add_test(tt, test_long_header_main);
	tcase_add_test(tt, test_garbage_tail_recon);
	tcase_add_test(tt, test_half_record_recon);
	tcase_add_test(tt, test_half_record_main_reader);
	tcase_add_test(tt, test_truncated_last_record);
	tcase_add_test(tt, test_truncated_last_record_no_index);
	suite_add_tcase(su, tt);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(recover_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
