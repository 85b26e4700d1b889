/* io.c - the file system calls of the library, behind a swappable table. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "io.h"

static int posix_open(const char *path, int flags, mode_t mode)
{
	return open(path, flags | O_CLOEXEC, mode);
}

static int posix_fsync(int fd)
{
	return fdatasync(fd);
}

const tdm_io_ops tdm_io_posix = {
	.open = posix_open,
	.close = close,
	.pread = pread,
	.pwrite = pwrite,
	.fsync = posix_fsync,
	.ftruncate = ftruncate,
	.fstat = fstat,
	.stat = stat,
	.rename = rename,
	.unlink = unlink,
	.mkdir = mkdir,
	.flock = flock,
};

const tdm_io_ops *tdm_io = &tdm_io_posix;
_Thread_local tdm_io_counters tdm_io_stats;

int io_open(int *fd, const char *path, int flags, mode_t mode)
{
	int r;
	do
		r = tdm_io->open(path, flags, mode);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	*fd = r;
	return 0;
}

int io_close(int fd)
{
	/* Linux closes the descriptor even when close() reports EINTR. */
	if (tdm_io->close(fd) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

int io_pread(int fd, void *buf, size_t n, uint64_t off, size_t *got)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = tdm_io->pread(fd, (char *)buf + done, n - done,
		                          (off_t)(off + done));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	tdm_io_stats.reads++;
	tdm_io_stats.bytes_read += done;
	*got = done;
	return 0;
}

int io_pwrite(int fd, const void *buf, size_t n, uint64_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = tdm_io->pwrite(fd, (const char *)buf + done, n - done,
		                           (off_t)(off + done));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		done += (size_t)r;
	}
	tdm_io_stats.writes++;
	tdm_io_stats.bytes_written += done;
	return 0;
}

int io_fsync(int fd)
{
	tdm_io_stats.syncs++;
	return tdm_io->fsync(fd) < 0 ? -errno : 0;
}

int io_truncate(int fd, uint64_t len)
{
	return tdm_io->ftruncate(fd, (off_t)len) < 0 ? -errno : 0;
}

int io_size(int fd, uint64_t *size)
{
	struct stat st;
	if (tdm_io->fstat(fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

int io_exists(const char *path, int *is_dir)
{
	struct stat st;
	if (tdm_io->stat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (is_dir)
		*is_dir = S_ISDIR(st.st_mode);
	return 1;
}

int io_rename(const char *from, const char *to)
{
	return tdm_io->rename(from, to) < 0 ? -errno : 0;
}

int io_unlink(const char *path)
{
	return tdm_io->unlink(path) < 0 ? -errno : 0;
}

int io_mkdir(const char *path)
{
	return tdm_io->mkdir(path, 0755) < 0 ? -errno : 0;
}

int io_fsync_dir(const char *path)
{
	int fd = -1, r = io_open(&fd, path, O_RDONLY | O_DIRECTORY, 0);
	if (r < 0)
		return r;
	r = io_fsync(fd);
	io_close(fd);
	return r;
}

int io_lock(int fd)
{
	if (tdm_io->flock(fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	return errno == EWOULDBLOCK ? -EWOULDBLOCK : -errno;
}

int io_list_dir(const char *dir, int (*fn)(void *ctx, const char *name),
                void *ctx)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	int r = 0;
	struct dirent *e;
	errno = 0;
	while (r == 0 && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		r = fn(ctx, e->d_name);
	}
	if (r == 0 && errno != 0)
		r = -errno;
	closedir(d);
	return r;
}
