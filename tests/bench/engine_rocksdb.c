/*
 * engine_rocksdb.c - RocksDB (C API, rocksdb/c.h) as a peer of
 * tidemark-bench:
 *
 *   - key = big-endian ts ‖ id (12 bytes), value = the payload;
 *   - RocksDB's defaults (64 MiB memtable, leveled compaction, the
 *     library's default compression) plus increase_parallelism(2) for the
 *     two cores of the bench machine;
 *   - one WriteBatch per batch, WAL on; --sync batch sets sync=true in the
 *     write options (the WAL is synced at every write);
 *   - --sync end: one flush (memtable to SST files, synced, waited for) at
 *     the end, then close.
 *
 * RocksDB has no cheap exact key count, so the write saves the store's
 * bounds (events, min ts, max ts) in DIR/bench-bounds for the read side.
 * scan = an iterator from SeekToFirst; window = Seek(from, 0), then Next
 * until ts >= to, one iterator per window.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "engine.h"
#include "peer_util.h"

struct rk_db {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_writeoptions_t *wo;
	rocksdb_readoptions_t *ro;
	rocksdb_writebatch_t *wb;
	struct engine_bounds bounds; /* what was written */
	char *dir;
	int create;
};

static int fail(const char *what, char *err)
{
	fprintf(stderr, "tidemark-bench: rocksdb: %s: %s\n", what,
	        err ? err : "failed");
	free(err); /* rocksdb's error strings are malloc'd */
	return -1;
}

static void rk_free(struct rk_db *d)
{
	if (d->wb)
		rocksdb_writebatch_destroy(d->wb);
	if (d->wo)
		rocksdb_writeoptions_destroy(d->wo);
	if (d->ro)
		rocksdb_readoptions_destroy(d->ro);
	if (d->opts)
		rocksdb_options_destroy(d->opts);
	free(d->dir);
	free(d);
}

static int rk_close(void *vd)
{
	struct rk_db *d = vd;
	int rc = 0;
	if (d->db)
		rocksdb_close(d->db);
	if (d->db && d->create)
		rc = peer_bounds_save("rocksdb", d->dir, &d->bounds);
	rk_free(d);
	return rc;
}

static int rk_open(void **out, const char *dir,
                   const struct engine_open_args *a)
{
	struct rk_db *d = calloc(1, sizeof *d);
	char *err = NULL;
	if (!d || !(d->dir = strdup(dir))) {
		free(d);
		fprintf(stderr, "tidemark-bench: rocksdb: out of memory\n");
		return -1;
	}
	d->create = a->create;
	d->opts = rocksdb_options_create();
	rocksdb_options_increase_parallelism(d->opts, 2);
	d->ro = rocksdb_readoptions_create();
	if (a->create) {
		rocksdb_options_set_create_if_missing(d->opts, 1);
		rocksdb_options_set_error_if_exists(d->opts, 1);
		d->wo = rocksdb_writeoptions_create();
		rocksdb_writeoptions_set_sync(d->wo, a->sync == SYNC_BATCH);
		d->wb = rocksdb_writebatch_create();
		d->db = rocksdb_open(d->opts, dir, &err);
	} else {
		d->db = rocksdb_open_for_read_only(d->opts, dir, 0, &err);
	}
	if (err || !d->db) {
		d->db = NULL;
		rk_free(d);
		return fail("open", err);
	}
	*out = d;
	return 0;
}

static int rk_write_batch(void *vd, const struct bench_event *ev, size_t n,
                          struct write_counts *c)
{
	struct rk_db *d = vd;
	unsigned char key[PEER_KEY_LEN];
	char *err = NULL;
	rocksdb_writebatch_clear(d->wb);
	for (size_t i = 0; i < n; i++) {
		peer_key_encode(key, ev[i].ts, ev[i].id);
		rocksdb_writebatch_put(d->wb, (const char *)key, sizeof key,
		                       ev[i].payload, ev[i].payload_len);
	}
	rocksdb_write(d->db, d->wo, d->wb, &err);
	if (err)
		return fail("write", err);
	/* A put over an existing key replaces it; the workloads have none,
	 * and finding out would cost a read per event. */
	c->appended += n;
	for (size_t i = 0; i < n; i++)
		peer_bounds_add(&d->bounds, ev[i].ts);
	return 0;
}

static int rk_sync(void *vd)
{
	struct rk_db *d = vd;
	char *err = NULL;
	rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
	rocksdb_flushoptions_set_wait(fo, 1);
	rocksdb_flush(d->db, fo, &err);
	rocksdb_flushoptions_destroy(fo);
	return err ? fail("flush", err) : 0;
}

static int rk_bounds(void *vd, struct engine_bounds *out)
{
	struct rk_db *d = vd;
	return peer_bounds_load("rocksdb", d->dir, out);
}

/* Reads from the iterator's position while ts < to. */
static int walk(rocksdb_iterator_t *it, int64_t to, struct read_counts *c)
{
	char *err = NULL;
	for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const unsigned char *k =
			(const unsigned char *)rocksdb_iter_key(it, &klen);
		int64_t ts = peer_key_ts(k);
		if (ts >= to)
			break;
		const char *v = rocksdb_iter_value(it, &vlen);
		read_counts_add(c, ts, peer_key_id(k), v, vlen);
	}
	rocksdb_iter_get_error(it, &err);
	rocksdb_iter_destroy(it);
	return err ? fail("iterator", err) : 0;
}

static int rk_scan(void *vd, struct read_counts *c)
{
	struct rk_db *d = vd;
	rocksdb_iterator_t *it = rocksdb_create_iterator(d->db, d->ro);
	rocksdb_iter_seek_to_first(it);
	return walk(it, INT64_MAX, c);
}

static int rk_window(void *vd, int64_t from, int64_t to,
                     struct read_counts *c)
{
	struct rk_db *d = vd;
	unsigned char key[PEER_KEY_LEN];
	peer_key_encode(key, from, 0);
	rocksdb_iterator_t *it = rocksdb_create_iterator(d->db, d->ro);
	rocksdb_iter_seek(it, (const char *)key, sizeof key);
	return walk(it, to, c);
}

const struct engine engine_rocksdb = {
	.name = "rocksdb",
	.open = rk_open,
	.write_batch = rk_write_batch,
	.sync = rk_sync,
	.close = rk_close,
	.bounds = rk_bounds,
	.scan = rk_scan,
	.window = rk_window,
};
