/* store.c - the store directory: its header file, the writer lock, and
 * opening and closing the whole. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "error.h"
#include "hash.h"
#include "io.h"
#include "store.h"

#define LOCK_WAIT_MS 2000

static const char STORE_MAGIC[8] = {'T', 'D', 'M', 'S', 'T', 'O', 'R', 'E'};
#define STORE_VERSION 1u
#define STORE_HEADER 64

int store_path(char *out, size_t cap, const tdm_store *s, const char *rel)
{
	int n = snprintf(out, cap, "%s/%s", s->dir, rel);
	if (n < 0 || (size_t)n >= cap)
		return tdm_fail(TDM_EINVAL, "path too long: %s/%s", s->dir, rel);
	return 0;
}

int store_remove_shard_file(tdm_store *s, int64_t shard, shard_kind kind, uint64_t gen)
{
	char rel[80], path[4200];
	shard_relname_gen(rel, sizeof rel, shard, kind, gen);
	int r = store_path(path, sizeof path, s, rel);
	if (r)
		return r;
	r = io_unlink(path);
	return r < 0 && r != -ENOENT ? tdm_fail_errno(TDM_EIO, -r, "%s: remove", rel) : 0;
}

shard_id store_shard_id(const tdm_store *s, int64_t shard)
{
	return (shard_id){shard, s->opts.shard_duration_ns, s->opts.grace_ns, 0};
}

int store_shard_open_read(int *fd, uint64_t *size, char *name, size_t cap,
                          const tdm_store *s, int64_t shard, shard_kind kind)
{
	char path[4200];
	shard_relname(name, cap, shard, kind);
	int r = store_path(path, sizeof path, s, name);
	if (r)
		return r;
	shard_id id = store_shard_id(s, shard);
	return shard_file_open(fd, size, path, name, kind, &id, SHARD_READ_ANY);
}

void store_scan_init(shard_scan *sc, const tdm_store *s, int64_t shard, int fd,
                     const char *name, uint64_t start, uint64_t end,
                     size_t first_chunk)
{
	int64_t d = s->opts.shard_duration_ns, lo = shard * d;
	scan_init(sc, fd, name, start, end, first_chunk);
	scan_bounds(sc, lo, lo > INT64_MAX - d ? INT64_MAX : lo + d);
}

static int check_options(const tdm_options *o)
{
	if (o->shard_duration_ns <= 0)
		return tdm_fail(TDM_EINVAL, "shard duration must be positive");
	if (o->grace_ns < 0)
		return tdm_fail(TDM_EINVAL, "grace must not be negative");
	if (o->index_interval < 256 || o->index_interval > (64u << 20))
		return tdm_fail(TDM_EINVAL, "index interval must be 256 B .. 64 MiB");
	if (o->keep_ns < 0)
		return tdm_fail(TDM_EINVAL, "keep must not be negative");
	return 0;
}

static void header_encode(uint8_t *h, const tdm_options *o)
{
	memset(h, 0, STORE_HEADER);
	memcpy(h, STORE_MAGIC, 8);
	put_le(h + 8, STORE_VERSION | (uint64_t)o->index_interval << 32, 8);
	put_le(h + 16, (uint64_t)o->shard_duration_ns, 8);
	put_le(h + 24, (uint64_t)o->grace_ns, 8);
	put_le(h + 32, (uint64_t)o->keep_ns, 8);
	put_le(h + 56, tdm_hash64(h, 56, 0), 8);
}

static int header_read(tdm_options *o, const char *dir)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/%s", dir, STORE_FILE);
	int fd, r = io_open(&fd, path, O_RDONLY, 0);
	if (r == -ENOENT || r == -ENOTDIR)
		return tdm_fail(TDM_ENOTFOUND, "%s: no tidemark store here", dir);
	if (r < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s", path);
	uint8_t h[STORE_HEADER];
	size_t got;
	r = io_pread(fd, h, sizeof h, 0, &got);
	io_close(fd);
	if (r < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s", path);
	if (got < STORE_HEADER || memcmp(h, STORE_MAGIC, 8) != 0)
		return tdm_fail(TDM_ECORRUPT, "%s: not a tidemark store header", path);
	if (get_le(h + 56, 8) != tdm_hash64(h, 56, 0))
		return tdm_fail(TDM_ECORRUPT, "%s: offset 56: header checksum mismatch", path);
	uint64_t vi = get_le(h + 8, 8);
	if ((uint32_t)vi != STORE_VERSION)
		return tdm_fail(TDM_ECORRUPT, "%s: format version %u is not supported",
		                path, (unsigned)(uint32_t)vi);
	*o = (tdm_options)TDM_OPTIONS_INIT;
	o->index_interval = (uint32_t)(vi >> 32);
	o->shard_duration_ns = (int64_t)get_le(h + 16, 8);
	o->grace_ns = (int64_t)get_le(h + 24, 8);
	o->keep_ns = (int64_t)get_le(h + 32, 8);
	if (check_options(o))
		return tdm_fail(TDM_ECORRUPT, "%s: options out of range", path);
	return 0;
}

/* 1 for anything but what a failed store_create leaves behind (an empty
 * shards/ and the header's temporary file), so creating can be retried. */
static int not_a_leftover(void *ctx, const char *name)
{
	const char *dir = ctx;
	if (strcmp(name, STORE_FILE ".tmp") == 0)
		return 0;
	if (strcmp(name, SHARDS_DIR) == 0) {
		char path[4200];
		snprintf(path, sizeof path, "%s/%s", dir, SHARDS_DIR);
		return io_list_dir(path, not_a_leftover, path) != 0;
	}
	return 1;
}

int store_create(const char *dir, const tdm_options *opts)
{
	tdm_options o = opts ? *opts : (tdm_options)TDM_OPTIONS_INIT;
	int r = check_options(&o);
	if (r)
		return r;

	tdm_options have;
	r = header_read(&have, dir);
	if (r == 0) {
		if (have.shard_duration_ns != o.shard_duration_ns ||
		    have.grace_ns != o.grace_ns || have.index_interval != o.index_interval ||
		    have.keep_ns != o.keep_ns)
			return tdm_fail(TDM_EMISMATCH,
			                "%s: store exists with shard duration %" PRId64
			                " ns, grace %" PRId64 " ns, index interval %u,"
			                " keep %" PRId64 " ns; they cannot change",
			                dir, have.shard_duration_ns, have.grace_ns,
			                have.index_interval, have.keep_ns);
		return 0;
	}
	if (r != TDM_ENOTFOUND)
		return r;

	if ((r = io_mkdir(dir)) < 0 && r != -EEXIST)
		return tdm_fail_errno(TDM_EIO, -r, "mkdir %s", dir);
	r = io_list_dir(dir, not_a_leftover, (void *)dir);
	if (r == 1)
		return tdm_fail(TDM_EEXIST, "%s: not empty and not a tidemark store", dir);
	if (r < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s", dir);

	char path[4200], tmp[4200];
	snprintf(path, sizeof path, "%s/%s", dir, SHARDS_DIR);
	if ((r = io_mkdir(path)) < 0 && r != -EEXIST)
		return tdm_fail_errno(TDM_EIO, -r, "mkdir %s", path);
	/* The header goes in last, by rename: a store either has a whole
	 * header or is not a store yet. */
	snprintf(path, sizeof path, "%s/%s", dir, STORE_FILE);
	snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, STORE_FILE);
	uint8_t h[STORE_HEADER];
	header_encode(h, &o);
	int fd;
	if ((r = io_open(&fd, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s", tmp);
	if ((r = io_pwrite(fd, h, sizeof h, 0)) < 0 || (r = io_fsync(fd)) < 0) {
		io_close(fd);
		return tdm_fail_errno(TDM_EIO, -r, "%s", tmp);
	}
	io_close(fd);
	if ((r = io_rename(tmp, path)) < 0 || (r = io_fsync_dir(dir)) < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s", path);
	return 0;
}

/* Takes the writer lock and writes our pid into the lock file. */
static int take_lock(int *out, const tdm_store *s, int write_pid)
{
	char path[4200];
	int r = store_path(path, sizeof path, s, LOCK_FILE);
	if (r)
		return r;
	int fd;
	if ((r = io_open(&fd, path, O_RDWR | O_CREAT, 0644)) < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s", path);
	/* A reader may hold the lock for a moment to repair the store: a
	 * writer waits for it, up to LOCK_WAIT_MS. */
	for (int waited = 0; (r = io_lock(fd)) == -EWOULDBLOCK && write_pid &&
	                     waited < LOCK_WAIT_MS; waited += 10)
		nanosleep(&(struct timespec){0, 10 * 1000000}, NULL);
	if (r < 0) {
		char pid[32] = "";
		size_t got = 0;
		io_pread(fd, pid, sizeof pid - 1, 0, &got);
		pid[got] = 0;
		pid[strcspn(pid, "\n")] = 0;
		io_close(fd);
		if (r == -EWOULDBLOCK)
			return tdm_fail(TDM_ELOCKED, "%s: locked by another writer (pid %s)",
			                s->dir, pid[0] ? pid : "unknown");
		return tdm_fail_errno(TDM_EIO, -r, "%s: lock", path);
	}
	if (write_pid) {
		char pid[32];
		int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
		if ((r = io_truncate(fd, 0)) < 0 || (r = io_pwrite(fd, pid, (size_t)n, 0)) < 0) {
			io_close(fd);
			return tdm_fail_errno(TDM_EIO, -r, "%s", path);
		}
	}
	*out = fd;
	return 0;
}

/* The kernel's id of this boot, or "" where there is none. */
static void boot_id(char out[64])
{
	int fd;
	size_t got = 0;
	out[0] = 0;
	if (io_open(&fd, "/proc/sys/kernel/random/boot_id", O_RDONLY, 0) < 0)
		return;
	if (io_pread(fd, out, 63, 0, &got) < 0)
		got = 0;
	io_close(fd);
	out[got] = 0;
	out[strcspn(out, "\n")] = 0;
}

/* The UNSYNCED file exists while a writer that does not sync every commit
 * (durability none or interval) has the store, and names the boot. Found
 * from an earlier boot, it means the machine went down with index pages
 * that may never have reached the disk: LMDB then cannot be trusted, and
 * the index is rebuilt from the shard files. A process that merely died
 * leaves the same boot id, and LMDB's unsynced pages in the page cache. */
static int index_lost_with_power(const tdm_store *s)
{
	char path[4200], seen[64] = "", now[64];
	if (store_path(path, sizeof path, s, UNSYNCED_FILE))
		return 0;
	int fd;
	if (io_open(&fd, path, O_RDONLY, 0) < 0)
		return 0;
	size_t got = 0;
	if (io_pread(fd, seen, sizeof seen - 1, 0, &got) < 0)
		got = 0;
	io_close(fd);
	seen[got] = 0;
	boot_id(now);
	return !now[0] || strcmp(seen, now) != 0;
}

/* Writes UNSYNCED for this boot, or removes it for a writer whose every
 * commit is synced. */
static int mark_unsynced(const tdm_store *s, int unsynced)
{
	char path[4200];
	int r = store_path(path, sizeof path, s, UNSYNCED_FILE);
	if (r)
		return r;
	if (!unsynced) {
		/* A marker left by a writer that did not sync its last commits
		 * (it was killed; same boot, or the index would have been
		 * rebuilt) covers its index pages still in the page cache: they
		 * go to disk before the marker goes. */
		int is_dir;
		if ((r = io_exists(path, &is_dir)) <= 0)
			return r < 0 ? tdm_fail_errno(TDM_EIO, -r, "%s", path) : 0;
		if ((r = kv_sync(s->kv)))
			return r;
		r = io_unlink(path);
		return r < 0 && r != -ENOENT ? tdm_fail_errno(TDM_EIO, -r, "%s", path) : 0;
	}
	char id[64];
	boot_id(id);
	int fd;
	if ((r = io_open(&fd, path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s", path);
	if ((r = io_pwrite(fd, id, strlen(id), 0)) == 0)
		r = io_fsync(fd);
	io_close(fd);
	if (r == 0)
		r = io_fsync_dir(s->dir);
	return r < 0 ? tdm_fail_errno(TDM_EIO, -r, "%s", path) : 0;
}

/* Opens the index; when it is missing, rejected by LMDB or possibly torn
 * by a power failure, builds it anew from the shard files (they are the
 * truth). Needs the writer lock. */
static int open_index_locked(tdm_store *s, int sync_commits)
{
	char path[4200];
	int r = store_path(path, sizeof path, s, INDEX_DIR);
	if (r)
		return r;
	int rebuild = 0;
	r = index_lost_with_power(s) ? TDM_ECORRUPT : kv_open(&s->kv, path, 0, sync_commits);
	if (r == TDM_ENOTFOUND || r == TDM_ECORRUPT) {
		static const char *const files[] = {"data.mdb", "lock.mdb"};
		for (size_t i = 0; i < 2; i++) {
			char f[4300];
			snprintf(f, sizeof f, "%s/%s", path, files[i]);
			io_unlink(f);
		}
		rebuild = 1;
		r = kv_open(&s->kv, path, 1, sync_commits);
	}
	if (r)
		return r;
	return recover_store(s, rebuild);
}

int store_open(tdm_store **out, const char *dir, const tdm_open_options *oo)
{
	tdm_store *s = calloc(1, sizeof *s);
	if (!s || !(s->dir = strdup(dir))) {
		free(s);
		return tdm_fail(TDM_ENOMEM, "out of memory");
	}
	s->lock_fd = -1;
	s->oo = oo ? *oo : (tdm_open_options)TDM_OPEN_OPTIONS_INIT;
	if (!s->oo.sync_interval_ms)
		s->oo.sync_interval_ms = 100;
	if (!s->oo.sync_interval_events)
		s->oo.sync_interval_events = 1000;
	int readonly = s->oo.flags & TDM_OPEN_READONLY;
	int sync_commits = s->oo.durability == TDM_DURABILITY_BATCH;

	int r = header_read(&s->opts, dir);
	if (r)
		goto fail;
	if (readonly) {
		/* A reader takes no lock when there is nothing to repair; else it
		 * repairs only when no writer is there to do it. */
		char path[4200];
		if ((r = store_path(path, sizeof path, s, INDEX_DIR)))
			goto fail;
		int need = index_lost_with_power(s) ? 1 : kv_open(&s->kv, path, 0, 0);
		if (need == 0)
			need = recover_needed(s);
		if (need < 0 && need != TDM_ENOTFOUND && need != TDM_ECORRUPT) {
			r = need;
			goto fail;
		}
		int fd;
		if (need && (r = take_lock(&fd, s, 0)) == 0) {
			kv_close(s->kv);
			s->kv = NULL;
			r = open_index_locked(s, 0);
			io_close(fd);
		} else if (need && r == TDM_ELOCKED && !s->kv) {
			/* A writer holds the store and is making its index (a new
			 * store's first writer, or a rebuild): give it a moment. */
			r = kv_open(&s->kv, path, 0, 0);
			for (int i = 0; r == TDM_ENOTFOUND && i < 200; i++) {
				nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
				r = kv_open(&s->kv, path, 0, 0);
			}
		} else if (need && r == TDM_ELOCKED) {
			r = 0; /* a writer has the store, and has repaired it */
		}
		if (r)
			goto fail;
	} else {
		if ((r = take_lock(&s->lock_fd, s, 1)) ||
		    (r = open_index_locked(s, sync_commits)) ||
		    (r = mark_unsynced(s, !sync_commits)) ||
		    (r = writer_open(&s->w, s)))
			goto fail;
	}
	*out = s;
	return 0;
fail:
	store_close(s);
	return r;
}

int store_close(tdm_store *s)
{
	int r = 0;
	if (s->w) {
		/* The newest chunks' label bitmaps are put whatever the durability;
		 * durability none leaves the index unsynced, and UNSYNCED with it. */
		if (!s->failed && !(r = writer_put_labels(s)) &&
		    s->oo.durability != TDM_DURABILITY_NONE && !(r = writer_sync(s)))
			r = mark_unsynced(s, 0);
		writer_close(s->w);
	}
	kv_close(s->kv);
	if (s->lock_fd >= 0)
		io_close(s->lock_fd);
	free(s->dir);
	free(s);
	return r;
}

int store_next_seq_get(uint64_t *out, kv_txn *txn)
{
	kv_val v;
	int r = kv_get(&v, txn, KV_META, META_NEXT_SEQ, strlen(META_NEXT_SEQ));
	if (r == TDM_ENOTFOUND) {
		*out = 1;
		return 0;
	}
	if (r)
		return r;
	if (v.len != 8)
		return tdm_fail(TDM_ECORRUPT, "index: malformed next_seq");
	*out = get_le(v.data, 8);
	return 0;
}

int store_next_seq_put(kv_txn *txn, uint64_t next)
{
	uint8_t v[8];
	put_le(v, next, 8);
	return kv_put(txn, KV_META, META_NEXT_SEQ, strlen(META_NEXT_SEQ), v, sizeof v);
}
