/* io.h - the one layer that makes file system calls.
 *
 * Every other module reaches files through these wrappers, so a test can
 * swap `tdm_io_ops` to inject faults (ENOSPC, EIO, a lost fsync) and read
 * `tdm_io_counters` to see how many bytes a read touched. LMDB does its own
 * I/O inside kv.c; the index it keeps is derived and can always be rebuilt.
 *
 * The wrappers return 0 or a negative errno; they set no message (the
 * caller knows the file name and sets it). */
#ifndef TDM_IO_H
#define TDM_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

typedef struct tdm_io_ops {
	int (*open)(const char *path, int flags, mode_t mode);
	int (*close)(int fd);
	ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
	ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
	int (*fsync)(int fd);
	int (*ftruncate)(int fd, off_t len);
	int (*fstat)(int fd, struct stat *st);
	int (*stat)(const char *path, struct stat *st);
	int (*rename)(const char *from, const char *to);
	int (*unlink)(const char *path);
	int (*mkdir)(const char *path, mode_t mode);
	int (*flock)(int fd, int op);
} tdm_io_ops;

/* The table in use; tests point it elsewhere and back. */
extern const tdm_io_ops *tdm_io;
extern const tdm_io_ops tdm_io_posix;

/* Counters of what went through the layer, per thread: for tests and
 * benchmarks, which count the calls of the thread they run in (a replica
 * sync and `serve` use several threads at once). */
typedef struct tdm_io_counters {
	uint64_t reads, bytes_read;
	uint64_t writes, bytes_written;
	uint64_t syncs;
} tdm_io_counters;
extern _Thread_local tdm_io_counters tdm_io_stats;

int io_open(int *fd, const char *path, int flags, mode_t mode);
int io_close(int fd);
/* Reads up to `n` bytes at `off`; `*got` < n only at end of file. */
int io_pread(int fd, void *buf, size_t n, uint64_t off, size_t *got);
/* Writes all `n` bytes at `off`. */
int io_pwrite(int fd, const void *buf, size_t n, uint64_t off);
int io_fsync(int fd);
int io_truncate(int fd, uint64_t len);
int io_size(int fd, uint64_t *size);
/* 1 if `path` exists (is_dir set when not NULL), 0 if not, or -errno. */
int io_exists(const char *path, int *is_dir);
int io_rename(const char *from, const char *to);
int io_unlink(const char *path);
int io_mkdir(const char *path);
/* fsyncs a directory so that a create or rename in it is durable. */
int io_fsync_dir(const char *path);
/* Non-blocking exclusive lock of an open file: 0, -EWOULDBLOCK, -errno. */
int io_lock(int fd);

/* Calls `fn` for each entry of `dir` except "." and "..", stopping at the
 * first non-zero return, which is returned. */
int io_list_dir(const char *dir, int (*fn)(void *ctx, const char *name),
                void *ctx);

#endif
