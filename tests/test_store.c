/*
 * test_store.c - the store directory (SPEC §3): create with defaults and
 * options, options fixed at creation, what is in the way, the writer lock,
 * readers beside a writer, a damaged STORE header, and the UNSYNCED
 * marker a killed writer leaves.
 */
#include "support.h"

#include <check.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kv.h"
#include "store.h"

#define SEC INT64_C(1000000000)
#define T0 INT64_C(1700000000000000000)

static void path_in(char *out, size_t cap, const char *dir, const char *rel)
{
	snprintf(out, cap, "%s/%s", dir, rel);
}

static off_t size_of(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return -1;
	return st.st_size;
}

static void options_eq(const tdm_store *s, int64_t shard, int64_t grace,
                       uint32_t interval)
{
	tdm_options o;
	memset(&o, 0xab, sizeof o);
	tdm_store_options(&o, s);
	ck_assert_int_eq(o.shard_duration_ns, shard);
	ck_assert_int_eq(o.grace_ns, grace);
	ck_assert_uint_eq(o.index_interval, interval);
}

static tdm_options opts(int64_t shard, int64_t grace, uint32_t interval)
{
	tdm_options o = TDM_OPTIONS_INIT;
	o.shard_duration_ns = shard;
	o.grace_ns = grace;
	o.index_interval = interval;
	return o;
}

START_TEST(test_create_defaults)
{
	char *dir = tst_tmpdir();
	ck_assert_int_eq(tdm_store_create(dir, NULL), 0);
	char p[4200];
	path_in(p, sizeof p, dir, "STORE");
	ck_assert_int_eq(size_of(p), 64);
	path_in(p, sizeof p, dir, "shards");
	ck_assert_int_ge(size_of(p), 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	options_eq(s, 3600 * SEC, 60 * SEC, 4096);
	path_in(p, sizeof p, dir, "LOCK");
	ck_assert_int_gt(size_of(p), 0);
	ck_assert_int_eq(tdm_store_close(s), 0);

	/* Again: with NULL, with TDM_OPTIONS_INIT, with the defaults spelled out. */
	ck_assert_int_eq(tdm_store_create(dir, NULL), 0);
	tdm_options init = TDM_OPTIONS_INIT;
	ck_assert_int_eq(init.version, TDM_OPTIONS_VERSION);
	ck_assert_int_eq(init.shard_duration_ns, 3600 * SEC);
	ck_assert_int_eq(init.grace_ns, 60 * SEC);
	ck_assert_uint_eq(init.index_interval, 4096);
	ck_assert_int_eq(tdm_store_create(dir, &init), 0);
	tdm_options spelled = opts(3600 * SEC, 60 * SEC, 4096);
	ck_assert_int_eq(tdm_store_create(dir, &spelled), 0);
	tst_tmpdir_drop(dir);

	/* A directory that does not exist yet is made. */
	dir = tst_tmpdir();
	char sub[4200];
	path_in(sub, sizeof sub, dir, "new-store");
	ck_assert_int_eq(tdm_store_create(sub, NULL), 0);
	s = tst_store_open(sub, 0, TDM_DURABILITY_INTERVAL);
	options_eq(s, 3600 * SEC, 60 * SEC, 4096);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

START_TEST(test_create_options)
{
	char *dir = tst_tmpdir();
	tdm_options o = opts(10 * SEC, 2 * SEC, 512);
	ck_assert_int_eq(tdm_store_create(dir, &o), 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	options_eq(s, 10 * SEC, 2 * SEC, 512);
	tdm_store_close(s);

	/* Same options: a no-op. */
	ck_assert_int_eq(tdm_store_create(dir, &o), 0);

	/* Other options: refused, and the store keeps its own. */
	tdm_options other[] = {
		opts(20 * SEC, 2 * SEC, 512), opts(10 * SEC, 3 * SEC, 512),
		opts(10 * SEC, 2 * SEC, 1024), TDM_OPTIONS_INIT,
	};
	for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
		int r = tdm_store_create(dir, &other[i]);
		ck_assert_msg(r == TDM_EMISMATCH, "options %zu: %d, want TDM_EMISMATCH", i, r);
		ck_assert_msg(strstr(tdm_error_message(), dir), "message '%s' names no dir",
		              tdm_error_message());
	}
	ck_assert_int_eq(tdm_store_create(dir, NULL), TDM_EMISMATCH);
	s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	options_eq(s, 10 * SEC, 2 * SEC, 512);
	/* It works with them: 2 s grace, 10 s shards. */
	tdm_event e[] = {{T0 + 5 * SEC, 1, 0, NULL, 0, "a", 1},
	                 {T0 + 2 * SEC, 1, 0, NULL, 0, "b", 1},
	                 {T0 + 15 * SEC, 1, 0, NULL, 0, "c", 1}};
	tdm_append_result res;
	ck_assert_int_eq(tdm_append(&res, NULL, s, e, 3), 0);
	ck_assert_uint_eq(res.late, 1);
	tdm_stat st;
	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	ck_assert_uint_eq(st.shards, 2);
	tdm_store_close(s);

	/* Bad options. */
	tdm_options bad[] = {
		opts(-1, 60 * SEC, 4096), opts(0, 60 * SEC, 4096),
		opts(3600 * SEC, -1, 4096), opts(3600 * SEC, 60 * SEC, 0),
		opts(3600 * SEC, 60 * SEC, 255), opts(3600 * SEC, 60 * SEC, (64u << 20) + 1),
	};
	/* Zero grace is fine; so are the bounds of the interval. */
	tdm_options edge[] = {opts(1, 0, 256), opts(3600 * SEC, 60 * SEC, 64u << 20)};
	for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
		char *d2 = tst_tmpdir();
		ck_assert_msg(tdm_store_create(d2, &edge[i]) == 0, "edge options %zu: %s", i,
		              tdm_error_message());
		s = tst_store_open(d2, TDM_OPEN_READONLY, TDM_DURABILITY_INTERVAL);
		options_eq(s, edge[i].shard_duration_ns, edge[i].grace_ns, edge[i].index_interval);
		tdm_store_close(s);
		tst_tmpdir_drop(d2);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *d2 = tst_tmpdir();
		int r = tdm_store_create(d2, &bad[i]);
		ck_assert_msg(r == TDM_EINVAL, "bad options %zu: %d", i, r);
		char p[4200];
		path_in(p, sizeof p, d2, "STORE");
		ck_assert_int_eq(size_of(p), -1);
		tst_tmpdir_drop(d2);
	}
	tst_tmpdir_drop(dir);
}
END_TEST

START_TEST(test_create_in_the_way)
{
	char *dir = tst_tmpdir();
	char p[4200];
	path_in(p, sizeof p, dir, "notes.txt");
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs("mine\n", f);
	fclose(f);
	int r = tdm_store_create(dir, NULL);
	ck_assert_msg(r == TDM_EEXIST, "create in a non-empty dir: %d", r);
	ck_assert_msg(strstr(tdm_error_message(), dir), "message '%s'", tdm_error_message());
	path_in(p, sizeof p, dir, "STORE");
	ck_assert_int_eq(size_of(p), -1);
	/* Nothing was added. */
	path_in(p, sizeof p, dir, "shards");
	ck_assert_int_eq(size_of(p), -1);
	tdm_store *s = (tdm_store *)1;
	ck_assert_int_eq(tdm_store_open(&s, dir, NULL), TDM_ENOTFOUND);
	ck_assert_ptr_null(s);

	/* A subdirectory is in the way as much. */
	char *d2 = tst_tmpdir();
	path_in(p, sizeof p, d2, "sub");
	ck_assert_int_eq(mkdir(p, 0755), 0);
	ck_assert_int_eq(tdm_store_create(d2, NULL), TDM_EEXIST);
	/* A regular file where the directory should be. */
	path_in(p, sizeof p, dir, "notes.txt");
	ck_assert_int_ne(tdm_store_create(p, NULL), 0);
	tst_tmpdir_drop(d2);
	tst_tmpdir_drop(dir);
}
END_TEST

START_TEST(test_open_missing)
{
	char *dir = tst_tmpdir();
	char p[4200];
	path_in(p, sizeof p, dir, "nothing-here");
	tdm_store *s = NULL;
	int r = tdm_store_open(&s, p, NULL);
	ck_assert_msg(r == TDM_ENOTFOUND, "open missing: %d", r);
	ck_assert_msg(strstr(tdm_error_message(), "nothing-here"), "message '%s'",
	              tdm_error_message());
	ck_assert_ptr_null(s);
	/* An empty directory holds no store either, read-only or not. */
	ck_assert_int_eq(tdm_store_open(&s, dir, NULL), TDM_ENOTFOUND);
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	oo.flags = TDM_OPEN_READONLY;
	ck_assert_int_eq(tdm_store_open(&s, dir, &oo), TDM_ENOTFOUND);
	/* Opening made nothing. */
	path_in(p, sizeof p, dir, "LOCK");
	ck_assert_int_eq(size_of(p), -1);
	path_in(p, sizeof p, dir, "nothing-here");
	ck_assert_int_eq(size_of(p), -1);
	tst_tmpdir_drop(dir);
}
END_TEST

START_TEST(test_lock)
{
	char *dir = tst_tmpdir();
	ck_assert_int_eq(tdm_store_create(dir, NULL), 0);
	tdm_store *w = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	tdm_store *w2 = NULL;
	int r = tdm_store_open(&w2, dir, NULL);
	ck_assert_msg(r == TDM_ELOCKED, "second writer: %d (%s)", r, tdm_error_message());
	ck_assert_ptr_null(w2);
	char want[64];
	snprintf(want, sizeof want, "pid %ld", (long)getpid());
	ck_assert_msg(strstr(tdm_error_message(), want), "message '%s' lacks '%s'",
	              tdm_error_message(), want);

	/* A reader opens beside the writer, sees its commits, cannot write. */
	tdm_event e = {T0, 1, 0, NULL, 0, "x", 1};
	ck_assert_int_eq(tdm_append(NULL, NULL, w, &e, 1), 0);
	tdm_store *rd = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_INTERVAL);
	tdm_append_result res;
	memset(&res, 0xff, sizeof res);
	r = tdm_append(&res, NULL, rd, &e, 1);
	ck_assert_msg(r == TDM_EREADONLY, "append on a reader: %d", r);
	ck_assert_uint_eq(res.appended, 0);
	ck_assert_int_eq(tdm_sync(rd), TDM_EREADONLY);
	tdm_event e2 = {T0 + 1, 1, 0, NULL, 0, "y", 1};
	ck_assert_int_eq(tdm_append(NULL, NULL, w, &e2, 1), 0);
	tdm_stat st;
	ck_assert_int_eq(tdm_stat_get(&st, rd), 0);
	ck_assert_uint_eq(st.events, 2);
	tdm_iter *it = NULL;
	ck_assert_int_eq(tdm_iter_open(&it, rd, 0, INT64_MAX, NULL), 0);
	const tdm_event *ev;
	int n = 0;
	while (tdm_iter_next(&ev, it) == 0)
		n++;
	ck_assert_int_eq(n, 2);
	tdm_iter_close(it);
	/* Another reader, and still no second writer. */
	tdm_store *rd2 = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_INTERVAL);
	ck_assert_int_eq(tdm_store_open(&w2, dir, NULL), TDM_ELOCKED);
	tdm_store_close(rd2);
	tdm_store_close(rd);

	/* Closing the writer frees the lock. */
	ck_assert_int_eq(tdm_store_close(w), 0);
	w = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	ck_assert_int_eq(tdm_stat_get(&st, w), 0);
	ck_assert_uint_eq(st.events, 2);
	tdm_store_close(w);

	/* A reader alone leaves the lock free. */
	rd = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_INTERVAL);
	w = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	tdm_store_close(w);
	tdm_store_close(rd);
	tst_tmpdir_drop(dir);
}
END_TEST

/* The lock held by another process names that process's pid. */
START_TEST(test_lock_other_process)
{
	char *dir = tst_tmpdir();
	ck_assert_int_eq(tdm_store_create(dir, NULL), 0);
	int to_child[2], to_parent[2];
	ck_assert_int_eq(pipe(to_child), 0);
	ck_assert_int_eq(pipe(to_parent), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		tdm_store *s = NULL;
		char c = tdm_store_open(&s, dir, NULL) == 0 ? 'k' : 'e';
		if (write(to_parent[1], &c, 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(2);
		tdm_store_close(s);
		_exit(0);
	}
	char c = 0;
	ck_assert_int_eq(read(to_parent[0], &c, 1), 1);
	ck_assert_int_eq(c, 'k');
	tdm_store *s = NULL;
	int r = tdm_store_open(&s, dir, NULL);
	char want[64];
	snprintf(want, sizeof want, "pid %ld", (long)pid);
	int has_pid = strstr(tdm_error_message(), want) != NULL;
	char msg[1024];
	snprintf(msg, sizeof msg, "%s", tdm_error_message());
	ck_assert_int_eq(write(to_child[1], "x", 1), 1);
	int status;
	waitpid(pid, &status, 0);
	ck_assert_msg(r == TDM_ELOCKED, "open while another process writes: %d", r);
	ck_assert_msg(has_pid, "message '%s' lacks '%s'", msg, want);
	/* It exited: the lock is free. */
	s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

START_TEST(test_corrupt_header)
{
	char *dir = tst_tmpdir();
	ck_assert_int_eq(tdm_store_create(dir, NULL), 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	tdm_event e = {T0, 1, 0, NULL, 0, "x", 1};
	ck_assert_int_eq(tdm_append(NULL, NULL, s, &e, 1), 0);
	tdm_store_close(s);
	char p[4200];
	path_in(p, sizeof p, dir, "STORE");
	uint8_t orig[64];
	int fd = open(p, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, orig, 64, 0), 64);
	/* Every byte matters: magic, version, options, padding, checksum. */
	for (int off = 0; off < 64; off++) {
		uint8_t b = orig[off] ^ 0x10;
		ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
		for (int ro = 0; ro < 2; ro++) {
			tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
			oo.flags = ro ? TDM_OPEN_READONLY : 0;
			s = NULL;
			int r = tdm_store_open(&s, dir, &oo);
			ck_assert_msg(r == TDM_ECORRUPT, "byte %d flipped (%s): %d, want TDM_ECORRUPT",
			              off, ro ? "reader" : "writer", r);
			ck_assert_ptr_null(s);
			ck_assert_msg(strstr(tdm_error_message(), "STORE"), "message '%s'",
			              tdm_error_message());
		}
		/* create on a damaged store does not overwrite it. */
		ck_assert_int_ne(tdm_store_create(dir, NULL), 0);
		ck_assert_int_eq(pwrite(fd, &orig[off], 1, off), 1);
	}
	/* A short header. */
	ck_assert_int_eq(ftruncate(fd, 40), 0);
	ck_assert_int_eq(tdm_store_open(&s, dir, NULL), TDM_ECORRUPT);
	ck_assert_int_eq(pwrite(fd, orig, 64, 0), 64);
	close(fd);
	s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	tdm_stat st;
	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	ck_assert_uint_eq(st.events, 1);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

/* A writer that syncs every commit (batch) finds the UNSYNCED marker of a
 * writer killed in this boot: the killed writer's index pages may still be
 * only in the page cache, so they are synced before the marker goes (a
 * power failure after that needs no rebuild). */
START_TEST(test_marker_removed_after_a_sync)
{
	char *dir = tst_tmpdir();
	ck_assert_int_eq(tdm_store_create(dir, NULL), 0);
	char marker[4200], id[128];
	path_in(marker, sizeof marker, dir, UNSYNCED_FILE);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_INTERVAL);
	FILE *f = fopen(marker, "r"); /* the interval writer's, naming this boot */
	ck_assert_ptr_nonnull(f);
	size_t n = fread(id, 1, sizeof id, f);
	fclose(f);
	ck_assert_uint_gt(n, 0);
	ck_assert_int_eq(tdm_store_close(s), 0);
	ck_assert_int_lt(size_of(marker), 0); /* a clean close removes it */

	f = fopen(marker, "w"); /* as the killed writer left it */
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(id, 1, n, f), n);
	fclose(f);
	s = tst_store_open(dir, 0, TDM_DURABILITY_BATCH);
	ck_assert_int_lt(size_of(marker), 0);
	ck_assert_int_eq(kv_unsynced(s->kv), 0);
	ck_assert_int_eq(tdm_store_close(s), 0);
	tst_tmpdir_drop(dir);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *su = suite_create("store");
	TCase *tc = tcase_create("store");
	tcase_add_test(tc, test_create_defaults);
	tcase_add_test(tc, test_create_options);
	tcase_add_test(tc, test_create_in_the_way);
	tcase_add_test(tc, test_open_missing);
	tcase_add_test(tc, test_lock);
	tcase_add_test(tc, test_lock_other_process);
	tcase_add_test(tc, test_corrupt_header);
	tcase_add_test(tc, test_marker_removed_after_a_sync);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
