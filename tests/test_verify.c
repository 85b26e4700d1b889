/*
 * test_verify.c - tdm_verify: a sound store has no problems; a flipped byte
 * in any field of a record of a main or recon file is found and named by
 * file and offset; a rebuilt index verifies clean.
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
#define PL 20
#define REC (30 + PL)
#define N_MAIN 120
#define N_RECON 40

/* Problems seen by the callback. */
typedef struct seen {
	uint64_t n;
	char file[128];
	int64_t offset;
	char what[512];
} seen;

static void on_problem(void *ctx, const tdm_problem *p)
{
	seen *s = ctx;
	ck_assert_ptr_nonnull(p->file);
	ck_assert_ptr_nonnull(p->what);
	if (s->n++ == 0) {
		snprintf(s->file, sizeof s->file, "%s", p->file);
		s->offset = p->offset;
		snprintf(s->what, sizeof s->what, "%s", p->what);
	}
}

static seen run_verify(tdm_store *s)
{
	seen v;
	memset(&v, 0, sizeof v);
	uint64_t problems = 12345;
	int r = tdm_verify(&problems, s, on_problem, &v);
	ck_assert_msg(r == 0, "verify could not run: %d %s", r, tdm_error_message());
	ck_assert_uint_eq(problems, v.n);
	return v;
}

static void expect_clean(tdm_store *s)
{
	seen v = run_verify(s);
	ck_assert_msg(v.n == 0, "%" PRIu64 " problems; first: %s offset %" PRId64 ": %s",
	              v.n, v.file, v.offset, v.what);
	/* Without a callback too. */
	uint64_t problems = 7;
	ck_assert_int_eq(tdm_verify(&problems, s, NULL, NULL), 0);
	ck_assert_uint_eq(problems, 0);
}

/* One shard: N_MAIN main records of REC bytes at 64 + i * REC, then one
 * far ahead, then N_RECON late records at 64 + j * REC of the recon file.
 * A second shard with a few events. */
static void fill(tdm_store *s)
{
	char payload[PL];
	memset(payload, 'p', PL);
	tdm_event evs[N_MAIN + 1];
	for (int i = 0; i < N_MAIN; i++)
		evs[i] = (tdm_event){T0 + i * 10 * MS, (uint32_t)i, 0, NULL, 0, payload, PL};
	evs[N_MAIN] = (tdm_event){T0 + 6 * SEC, 0, 0, NULL, 0, payload, PL};
	tdm_append_result res;
	ck_assert_int_eq(tdm_append(&res, NULL, s, evs, N_MAIN + 1), 0);
	ck_assert_uint_eq(res.late, 0);
	tdm_event late[N_RECON];
	for (int j = 0; j < N_RECON; j++)
		late[j] = (tdm_event){T0 + j * 7 * MS + 1, 1000 + (uint32_t)j, 0, NULL, 0,
		                      payload, PL};
	ck_assert_int_eq(tdm_append(&res, NULL, s, late, N_RECON), 0);
	ck_assert_uint_eq(res.late, N_RECON);
	const tdm_label l[] = {{"host", "web-1"}};
	tdm_event other[3] = {{T0 + SHARD, 1, 0, l, 1, "a", 1},
	                      {T0 + SHARD + 5 * SEC, 1, 0, l, 1, "b", 1},
	                      {T0 + SHARD + 1, 1, 0, l, 1, "late", 4}};
	ck_assert_int_eq(tdm_append(&res, NULL, s, other, 3), 0);
	ck_assert_uint_eq(res.late, 1);
}

static void rel_name(char *out, size_t cap, int64_t shard, const char *ext)
{
	snprintf(out, cap, "shards/%020" PRId64 ".%s", shard, ext);
}

static void flip(const char *dir, const char *rel, off_t off)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	int fd = open(path, O_RDWR);
	ck_assert_msg(fd >= 0, "open %s", path);
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_lt(off, st.st_size);
	unsigned char c;
	ck_assert_int_eq(pread(fd, &c, 1, off), 1);
	c ^= 0x5a;
	ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

START_TEST(test_sound)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	expect_clean(s); /* empty */
	fill(s);
	expect_clean(s);
	tdm_store_close(s);
	s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_NONE);
	expect_clean(s);
	tdm_store_close(s);
	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	expect_clean(s);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

/* Field offsets inside a record, and what to call them. */
static const struct {
	int off; /* from the record start; negative: from its end */
	const char *name;
} FIELDS[] = {
	{0, "length"}, {4, "checksum"}, {8, "seq"}, {16, "ts"}, {21, "ts (high byte)"},
	{24, "id"}, {28, "labels_len"}, {-1, "payload (last byte)"}, {30, "payload"},
};
#define N_FIELDS (int)(sizeof FIELDS / sizeof FIELDS[0])

/* _i: field index + N_FIELDS * (0 main, 1 recon). */
START_TEST(test_flipped_byte)
{
	int field = _i % N_FIELDS, recon = _i / N_FIELDS;
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	fill(s);
	expect_clean(s);
	tdm_store_close(s);

	char rel[64];
	rel_name(rel, sizeof rel, T0 / SHARD, recon ? "recon" : "main");
	int k = recon ? 17 : 63; /* which record */
	off_t rec_off = 64 + (off_t)k * REC;
	off_t at = rec_off + (FIELDS[field].off >= 0 ? FIELDS[field].off
	                                             : REC + FIELDS[field].off);
	flip(dir, rel, at);

	for (int ro = 0; ro < 2; ro++) {
		s = tst_store_open(dir, ro ? TDM_OPEN_READONLY : 0, TDM_DURABILITY_NONE);
		seen v = run_verify(s);
		ck_assert_msg(v.n >= 1, "%s byte of %s record %d flipped: no problem found",
		              FIELDS[field].name, rel, k);
		ck_assert_msg(strcmp(v.file, rel) == 0, "%s flipped: first problem in '%s'"
		              " (offset %" PRId64 ": %s), want %s", FIELDS[field].name, v.file,
		              v.offset, v.what, rel);
		ck_assert_msg(v.offset == (int64_t)rec_off, "%s flipped in %s: first problem at"
		              " offset %" PRId64 " (%s), want the record's offset %lld",
		              FIELDS[field].name, rel, v.offset, v.what, (long long)rec_off);
		tdm_store_close(s);
	}
	/* A flip back makes it sound again. */
	flip(dir, rel, at);
	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	expect_clean(s);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

START_TEST(test_index_deleted)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	fill(s);
	tdm_stat st0;
	ck_assert_int_eq(tdm_stat_get(&st0, s), 0);
	tdm_store_close(s);
	char p[4200];
	snprintf(p, sizeof p, "%s/index", dir);
	tst_rmtree(p);
	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	expect_clean(s);
	tdm_stat st1;
	ck_assert_int_eq(tdm_stat_get(&st1, s), 0);
	ck_assert_uint_eq(st1.events, st0.events);
	ck_assert_uint_eq(st1.index_entries, st0.index_entries);
	tdm_store_close(s);
	/* The same for a reader rebuilding it. */
	tst_rmtree(p);
	s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_NONE);
	expect_clean(s);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

/* A main-file record moved out of its grace window (a sound checksum on a
 * record that cannot be there) is reported too. */
START_TEST(test_grace_violation)
{
	char *dir = tst_store_new(SHARD, GRACE, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	fill(s);
	tdm_store_close(s);
	/* Swap the last regular main record with the far-ahead one: both sound,
	 * but now an old one follows the max by more than grace. Same size. */
	char rel[64], path[4200];
	rel_name(rel, sizeof rel, T0 / SHARD, "main");
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	int fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	uint8_t a[REC], b[REC];
	off_t oa = 64 + (off_t)(N_MAIN - 1) * REC, ob = 64 + (off_t)N_MAIN * REC;
	ck_assert_int_eq(pread(fd, a, REC, oa), REC);
	ck_assert_int_eq(pread(fd, b, REC, ob), REC);
	/* Put the far one first and an old one after it. */
	uint8_t c[REC];
	ck_assert_int_eq(pread(fd, c, REC, 64), REC); /* the first, ts T0 */
	ck_assert_int_eq(pwrite(fd, b, REC, oa), REC);
	ck_assert_int_eq(pwrite(fd, c, REC, ob), REC);
	close(fd);
	s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_NONE);
	seen v = run_verify(s);
	ck_assert_uint_ge(v.n, 1);
	ck_assert_str_eq(v.file, rel);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

static Suite *verify_suite(void)
{
	Suite *su = suite_create("verify");
	TCase *tc = tcase_create("verify");
	tcase_add_test(tc, test_sound);
	tcase_add_loop_test(tc, test_flipped_byte, 0, 2 * N_FIELDS);
	tcase_add_test(tc, test_index_deleted);
	tcase_add_test(tc, test_grace_violation);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(verify_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
