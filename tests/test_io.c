/*
 * test_io.c - the file system layer (src/io.c): the swappable call table,
 * byte counters, error propagation as negative errno, short reads at end
 * of file, the writer lock and directory listing.
 */
#include "support.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

static char *dir;

static void setup(void)
{
	dir = tst_tmpdir();
}

static void teardown(void)
{
	tdm_io = &tdm_io_posix;
	tst_rmtree(dir);
	free(dir);
	dir = NULL;
}

static void path_of(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

static int open_file(const char *name, int flags)
{
	char p[4096];
	path_of(p, sizeof p, name);
	int fd = -1;
	int r = io_open(&fd, p, flags, 0644);
	ck_assert_msg(r == 0, "io_open %s: %d", p, r);
	ck_assert_int_ge(fd, 0);
	return fd;
}

/* ---- The default table and counters ------------------------------------ */

START_TEST(test_posix_is_default)
{
	/* Nothing has swapped the table yet (teardown puts it back). */
	ck_assert_ptr_eq(tdm_io, &tdm_io_posix);
	ck_assert_ptr_nonnull(tdm_io_posix.open);
	ck_assert_ptr_nonnull(tdm_io_posix.pread);
	ck_assert_ptr_nonnull(tdm_io_posix.pwrite);
	ck_assert_ptr_nonnull(tdm_io_posix.fsync);
	ck_assert_ptr_nonnull(tdm_io_posix.flock);
}
END_TEST

START_TEST(test_counters_and_short_read)
{
	int fd = open_file("f", O_RDWR | O_CREAT);
	tdm_io_counters before = tdm_io_stats;
	char data[1000];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (char)('a' + i % 26);
	ck_assert_int_eq(io_pwrite(fd, data, 600, 0), 0);
	ck_assert_int_eq(io_pwrite(fd, data + 600, 400, 600), 0);
	ck_assert_uint_eq(tdm_io_stats.writes - before.writes, 2);
	ck_assert_uint_eq(tdm_io_stats.bytes_written - before.bytes_written, 1000);

	uint64_t size = 0;
	ck_assert_int_eq(io_size(fd, &size), 0);
	ck_assert_uint_eq(size, 1000);

	char buf[2000];
	size_t got = 12345;
	before = tdm_io_stats;
	ck_assert_int_eq(io_pread(fd, buf, 300, 100, &got), 0);
	ck_assert_uint_eq(got, 300);
	ck_assert_int_eq(memcmp(buf, data + 100, 300), 0);
	/* Short count at end of file, not an error. */
	ck_assert_int_eq(io_pread(fd, buf, 2000, 900, &got), 0);
	ck_assert_uint_eq(got, 100);
	ck_assert_int_eq(memcmp(buf, data + 900, 100), 0);
	ck_assert_int_eq(io_pread(fd, buf, 10, 1000, &got), 0);
	ck_assert_uint_eq(got, 0);
	ck_assert_int_eq(io_pread(fd, buf, 10, 5000, &got), 0);
	ck_assert_uint_eq(got, 0);
	ck_assert_uint_eq(tdm_io_stats.bytes_read - before.bytes_read, 400);
	ck_assert_uint_ge(tdm_io_stats.reads - before.reads, 2);

	before = tdm_io_stats;
	ck_assert_int_eq(io_fsync(fd), 0);
	ck_assert_uint_eq(tdm_io_stats.syncs - before.syncs, 1);

	ck_assert_int_eq(io_truncate(fd, 10), 0);
	ck_assert_int_eq(io_size(fd, &size), 0);
	ck_assert_uint_eq(size, 10);
	ck_assert_int_eq(io_close(fd), 0);
}
END_TEST

/* ---- Fault injection ---------------------------------------------------- */

static int pwrite_calls, fsync_calls;

static ssize_t enospc_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	(void)fd, (void)buf, (void)n, (void)off;
	pwrite_calls++;
	errno = ENOSPC;
	return -1;
}

static int eio_fsync(int fd)
{
	(void)fd;
	fsync_calls++;
	errno = EIO;
	return -1;
}

static ssize_t eio_pread(int fd, void *buf, size_t n, off_t off)
{
	(void)fd, (void)buf, (void)n, (void)off;
	errno = EIO;
	return -1;
}

static int eacces_open(const char *path, int flags, mode_t mode)
{
	(void)path, (void)flags, (void)mode;
	errno = EACCES;
	return -1;
}

START_TEST(test_faults_return_negative_errno)
{
	int fd = open_file("f", O_RDWR | O_CREAT);
	tdm_io_ops faulty = tdm_io_posix;
	faulty.pwrite = enospc_pwrite;
	faulty.fsync = eio_fsync;
	faulty.pread = eio_pread;
	faulty.open = eacces_open;
	tdm_io = &faulty;
	tdm_io_counters before = tdm_io_stats;

	ck_assert_int_eq(io_pwrite(fd, "abc", 3, 0), -ENOSPC);
	ck_assert_int_eq(pwrite_calls, 1);
	ck_assert_int_eq(io_fsync(fd), -EIO);
	ck_assert_int_eq(fsync_calls, 1);
	char buf[4];
	size_t got;
	ck_assert_int_eq(io_pread(fd, buf, 3, 0, &got), -EIO);
	int fd2 = -1;
	char p[4096];
	path_of(p, sizeof p, "g");
	ck_assert_int_eq(io_open(&fd2, p, O_RDWR | O_CREAT, 0644), -EACCES);
	ck_assert_int_eq(fd2, -1);
	/* A failed write counts no bytes. */
	ck_assert_uint_eq(tdm_io_stats.bytes_written, before.bytes_written);

	tdm_io = &tdm_io_posix;
	ck_assert_int_eq(io_pwrite(fd, "abc", 3, 0), 0);
	ck_assert_int_eq(io_fsync(fd), 0);
	ck_assert_int_eq(pwrite_calls, 1);
	io_close(fd);
}
END_TEST

/* A pwrite that writes at most 3 bytes per call, after one EINTR. */
static int interrupted;

static ssize_t dribble_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (!interrupted) {
		interrupted = 1;
		errno = EINTR;
		return -1;
	}
	return pwrite(fd, buf, n < 3 ? n : 3, off);
}

static ssize_t dribble_pread(int fd, void *buf, size_t n, off_t off)
{
	return pread(fd, buf, n < 5 ? n : 5, off);
}

START_TEST(test_short_transfers_completed)
{
	int fd = open_file("f", O_RDWR | O_CREAT);
	tdm_io_ops slow = tdm_io_posix;
	slow.pwrite = dribble_pwrite;
	slow.pread = dribble_pread;
	tdm_io = &slow;
	const char msg[] = "a sentence written three bytes at a time";
	tdm_io_counters before = tdm_io_stats;
	ck_assert_int_eq(io_pwrite(fd, msg, sizeof msg, 7), 0);
	ck_assert_uint_eq(tdm_io_stats.bytes_written - before.bytes_written, sizeof msg);
	char buf[100];
	size_t got;
	ck_assert_int_eq(io_pread(fd, buf, sizeof msg, 7, &got), 0);
	ck_assert_uint_eq(got, sizeof msg);
	ck_assert_str_eq(buf, msg);
	/* Short at EOF still reported exactly. */
	ck_assert_int_eq(io_pread(fd, buf, sizeof buf, 7, &got), 0);
	ck_assert_uint_eq(got, sizeof msg);
	tdm_io = &tdm_io_posix;
	ck_assert_int_eq(io_pread(fd, buf, sizeof msg, 7, &got), 0);
	ck_assert_str_eq(buf, msg);
	io_close(fd);
}
END_TEST

/* ---- Locks --------------------------------------------------------------- */

START_TEST(test_lock_is_exclusive)
{
	int a = open_file("LOCK", O_RDWR | O_CREAT);
	int b = open_file("LOCK", O_RDWR);
	ck_assert_int_eq(io_lock(a), 0);
	/* flock locks belong to the open file description: another open of
	 * the same file, even in this process, is refused. */
	ck_assert_int_eq(io_lock(b), -EWOULDBLOCK);
	ck_assert_int_eq(io_lock(b), -EWOULDBLOCK);
	/* Closing the holder releases it. */
	io_close(a);
	ck_assert_int_eq(io_lock(b), 0);
	int c = open_file("LOCK", O_RDONLY);
	ck_assert_int_eq(io_lock(c), -EWOULDBLOCK);
	io_close(b);
	io_close(c);
}
END_TEST

/* ---- Names and directories -------------------------------------------- */

typedef struct listing {
	char names[16][64];
	int n;
	int stop_after;
} listing;

static int collect(void *ctx, const char *name)
{
	listing *l = ctx;
	ck_assert_int_lt(l->n, 16);
	snprintf(l->names[l->n++], sizeof l->names[0], "%s", name);
	if (l->stop_after && l->n == l->stop_after)
		return 42;
	return 0;
}

static int listed(const listing *l, const char *name)
{
	int k = 0;
	for (int i = 0; i < l->n; i++)
		k += strcmp(l->names[i], name) == 0;
	return k;
}

START_TEST(test_list_dir)
{
	char p[4096];
	listing l = {.n = 0};
	ck_assert_int_eq(io_list_dir(dir, collect, &l), 0);
	ck_assert_int_eq(l.n, 0);

	const char *files[] = {"a.main", "b.recon", ".hidden"};
	for (int i = 0; i < 3; i++)
		io_close(open_file(files[i], O_RDWR | O_CREAT));
	path_of(p, sizeof p, "sub");
	ck_assert_int_eq(io_mkdir(p), 0);
	ck_assert_int_eq(io_mkdir(p), -EEXIST);

	ck_assert_int_eq(io_list_dir(dir, collect, &l), 0);
	ck_assert_int_eq(l.n, 4);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(listed(&l, files[i]), 1);
	ck_assert_int_eq(listed(&l, "sub"), 1);
	ck_assert_int_eq(listed(&l, "."), 0);
	ck_assert_int_eq(listed(&l, ".."), 0);

	/* The first non-zero return stops the walk and is returned. */
	listing s = {.n = 0, .stop_after = 2};
	ck_assert_int_eq(io_list_dir(dir, collect, &s), 42);
	ck_assert_int_eq(s.n, 2);

	path_of(p, sizeof p, "missing");
	ck_assert_int_eq(io_list_dir(p, collect, &l), -ENOENT);
}
END_TEST

START_TEST(test_exists_rename_unlink)
{
	char a[4096], b[4096], d[4096];
	path_of(a, sizeof a, "a");
	path_of(b, sizeof b, "b");
	path_of(d, sizeof d, "d");
	int is_dir = -1;
	ck_assert_int_eq(io_exists(a, &is_dir), 0);
	io_close(open_file("a", O_RDWR | O_CREAT));
	ck_assert_int_eq(io_exists(a, &is_dir), 1);
	ck_assert_int_eq(is_dir, 0);
	ck_assert_int_eq(io_exists(a, NULL), 1);
	ck_assert_int_eq(io_mkdir(d), 0);
	ck_assert_int_eq(io_exists(d, &is_dir), 1);
	ck_assert_int_eq(is_dir, 1);
	ck_assert_int_eq(io_fsync_dir(d), 0);
	ck_assert_int_eq(io_fsync_dir(dir), 0);

	ck_assert_int_eq(io_rename(a, b), 0);
	ck_assert_int_eq(io_exists(a, NULL), 0);
	ck_assert_int_eq(io_exists(b, NULL), 1);
	ck_assert_int_eq(io_rename(a, b), -ENOENT);
	ck_assert_int_eq(io_unlink(b), 0);
	ck_assert_int_eq(io_exists(b, NULL), 0);
	ck_assert_int_eq(io_unlink(b), -ENOENT);

	int fd = -1;
	ck_assert_int_eq(io_open(&fd, a, O_RDONLY, 0), -ENOENT);
	/* A path through a regular file is not a directory: -ENOTDIR. */
	io_close(open_file("f", O_RDWR | O_CREAT));
	char under[4200];
	snprintf(under, sizeof under, "%s/f/x", dir);
	ck_assert_int_eq(io_exists(under, NULL), -ENOTDIR);
}
END_TEST

static Suite *io_suite(void)
{
	Suite *s = suite_create("io");
	TCase *tc = tcase_create("io");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_posix_is_default);
	tcase_add_test(tc, test_counters_and_short_read);
	tcase_add_test(tc, test_faults_return_negative_errno);
	tcase_add_test(tc, test_short_transfers_completed);
	tcase_add_test(tc, test_lock_is_exclusive);
	tcase_add_test(tc, test_list_dir);
	tcase_add_test(tc, test_exists_rename_unlink);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	/* The default table, before any test touches it. */
	int posix_default = tdm_io == &tdm_io_posix;
	SRunner *sr = srunner_create(io_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (!posix_default) {
		fprintf(stderr, "tdm_io does not start as &tdm_io_posix\n");
		failed++;
	}
	return failed ? 1 : 0;
}
