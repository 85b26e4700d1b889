/*
 * engine_raw.c - the floor of tidemark-bench: an append-only file of
 * [ts i64, id u32, len u32, payload] records (16-byte header, host byte
 * order), one write() per batch. No checksum, no index, no ordering, no
 * dedupe: no engine that does any of those can write fewer bytes or make
 * fewer system calls, so it bounds ingest and bytes on disk from below.
 *
 *   - --sync batch: fdatasync after every write(); --sync end: one at the
 *     end; both also sync the directory once so the file itself is durable.
 *   - scan = read the file sequentially in 1 MiB reads. The events come
 *     back in ARRIVAL order: for ooo and late that is not ts order. The
 *     engine says so (scan_unordered) and the RESULT line carries
 *     ordered=0 and the count of events that came back out of order; it is
 *     the floor of reading the bytes, not of an ordered scan.
 *   - windows: not offered. Without an index a window is a full scan, so
 *     1000 windows would read the whole file 1000 times: a figure that
 *     measures memcpy, not a floor anyone could be held to. The RESULT line
 *     says skipped=no_index.
 *
 * The write saves the store's bounds in DIR/bench-bounds for the read side.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "peer_util.h"

#define HDR 16
#define READ_CHUNK (1u << 20)

struct raw_db {
	int fd;
	int create;
	enum bench_sync sync;
	char *dir;
	unsigned char *buf;
	size_t cap;
	struct engine_bounds bounds;
};

static int fail(const char *what, const char *path)
{
	fprintf(stderr, "tidemark-bench: raw: %s %s: %s\n", what, path,
	        strerror(errno));
	return -1;
}

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || fsync(fd) != 0) {
		if (fd >= 0)
			close(fd);
		return fail("fsync", dir);
	}
	close(fd);
	return 0;
}

static int raw_close(void *vd)
{
	struct raw_db *d = vd;
	int rc = 0;
	if (d->fd >= 0 && close(d->fd) != 0)
		rc = fail("close", d->dir);
	if (d->create && rc == 0)
		rc = peer_bounds_save("raw", d->dir, &d->bounds);
	free(d->buf);
	free(d->dir);
	free(d);
	return rc;
}

static int raw_open(void **out, const char *dir,
                    const struct engine_open_args *a)
{
	struct raw_db *d = calloc(1, sizeof *d);
	char path[4096];
	if (!d || !(d->dir = strdup(dir))) {
		free(d);
		fprintf(stderr, "tidemark-bench: raw: out of memory\n");
		return -1;
	}
	d->create = a->create;
	d->sync = a->sync;
	snprintf(path, sizeof path, "%s/events.raw", dir);
	d->fd = a->create ? open(path, O_WRONLY | O_CREAT | O_EXCL, 0644)
	                  : open(path, O_RDONLY);
	if (d->fd < 0) {
		fail("open", path);
		d->create = 0;
		raw_close(d);
		return -1;
	}
	if (a->create && a->sync == SYNC_BATCH && sync_dir(dir)) {
		raw_close(d);
		return -1;
	}
	*out = d;
	return 0;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int raw_write_batch(void *vd, const struct bench_event *ev, size_t n,
                           struct write_counts *c)
{
	struct raw_db *d = vd;
	size_t need = 0;
	for (size_t i = 0; i < n; i++)
		need += HDR + ev[i].payload_len;
	if (need > d->cap) {
		unsigned char *b = realloc(d->buf, need);
		if (!b) {
			fprintf(stderr, "tidemark-bench: raw: out of memory\n");
			return -1;
		}
		d->buf = b;
		d->cap = need;
	}
	unsigned char *p = d->buf;
	for (size_t i = 0; i < n; i++) {
		uint32_t len = (uint32_t)ev[i].payload_len;
		memcpy(p, &ev[i].ts, 8);
		memcpy(p + 8, &ev[i].id, 4);
		memcpy(p + 12, &len, 4);
		memcpy(p + HDR, ev[i].payload, len);
		p += HDR + len;
		peer_bounds_add(&d->bounds, ev[i].ts);
	}
	if (write_all(d->fd, d->buf, need))
		return fail("write", d->dir);
	if (d->sync == SYNC_BATCH && fdatasync(d->fd) != 0)
		return fail("fdatasync", d->dir);
	c->appended += n;
	return 0;
}

static int raw_sync(void *vd)
{
	struct raw_db *d = vd;
	if (fdatasync(d->fd) != 0)
		return fail("fdatasync", d->dir);
	return sync_dir(d->dir);
}

static int raw_bounds(void *vd, struct engine_bounds *out)
{
	struct raw_db *d = vd;
	return peer_bounds_load("raw", d->dir, out);
}

static int raw_scan(void *vd, struct read_counts *c)
{
	struct raw_db *d = vd;
	size_t have = 0; /* bytes of buf not yet parsed, from buf[0] */
	if (!d->buf) {
		d->cap = 2 * READ_CHUNK;
		if (!(d->buf = malloc(d->cap))) {
			fprintf(stderr, "tidemark-bench: raw: out of memory\n");
			return -1;
		}
	}
	posix_fadvise(d->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (;;) {
		ssize_t r = read(d->fd, d->buf + have, d->cap - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail("read", d->dir);
		if (r == 0)
			break;
		have += (size_t)r;
		size_t off = 0;
		while (have - off >= HDR) {
			const unsigned char *p = d->buf + off;
			int64_t ts;
			uint32_t id, len;
			memcpy(&ts, p, 8);
			memcpy(&id, p + 8, 4);
			memcpy(&len, p + 12, 4);
			if (HDR + (size_t)len > d->cap) {
				/* A record bigger than the buffer: grow it. */
				unsigned char *b = realloc(d->buf, HDR + len);
				if (!b)
					return -1;
				d->buf = b;
				d->cap = HDR + len;
				break;
			}
			if (have - off < HDR + (size_t)len)
				break;
			read_counts_add(c, ts, id, p + HDR, len);
			off += HDR + len;
		}
		memmove(d->buf, d->buf + off, have - off);
		have -= off;
	}
	if (have) {
		fprintf(stderr, "tidemark-bench: raw: %zu stray bytes at the "
		        "end of the file\n", have);
		c->damaged++;
	}
	return 0;
}

const struct engine engine_raw = {
	.name = "raw",
	.open = raw_open,
	.write_batch = raw_write_batch,
	.sync = raw_sync,
	.close = raw_close,
	.bounds = raw_bounds,
	.scan = raw_scan,
	.window = NULL, /* no index: see the comment at the top */
	.scan_unordered = 1,
};
