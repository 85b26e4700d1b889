/* seal.c - sealing: a closed shard's main and recon records rewritten as
 * one sorted sealed file (sealed.h), swapped in by one commit.
 *
 * A shard is closed when its end plus grace is at or below the store's
 * newest event: no event for it can be on time any more. Steps, each safe
 * to stop after (docs/DESIGN.md, "Sealing"):
 *  1. read the shard in read order (reader.c: main merged with recon) and
 *     write NNNN.GGGGGGGG.sealed.tmp; sync it;
 *  2. rename it to NNNN.GGGGGGGG.sealed; sync the directory. From here the
 *     sealed file is the shard's truth: recovery prefers it to the main
 *     file and to a recon file of an older generation;
 *  3. one LMDB commit replaces the shard's derived state (index entries
 *     point at blocks now) through recovery's per-shard path; synced;
 *  4. remove the old main (or older sealed) file and the recon file.
 * Readers see the state of their snapshot: old files until step 4, and an
 * error rather than a mix if they open a shard after its old files went. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "index.h"
#include "io.h"
#include "reader.h"
#include "sealed.h"
#include "store.h"

#define SEAL_ZSTD_LEVEL 6

typedef struct seal_list {
	shard_meta *a;
	size_t n, cap;
	int64_t newest;
} seal_list;

static int collect(void *ctx, const shard_meta *m)
{
	seal_list *l = ctx;
	if (m->max_ts > l->newest)
		l->newest = m->max_ts;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		shard_meta *a = realloc(l->a, cap * sizeof *a);
		if (!a)
			return tdm_fail(TDM_ENOMEM, "out of memory");
		l->a = a;
		l->cap = cap;
	}
	l->a[l->n++] = *m;
	return 0;
}

int seal_list_shards(shard_meta **out, size_t *n, int64_t *newest, tdm_store *s)
{
	seal_list l = {.newest = -1};
	kv_txn *txn;
	int r = kv_begin(&txn, s->kv, 0);
	if (r)
		return r;
	r = index_meta_each(txn, 0, INT64_MAX, collect, &l);
	kv_abort(txn);
	if (r) {
		free(l.a);
		return r;
	}
	*out = l.a;
	*n = l.n;
	*newest = l.newest;
	return 0;
}

int seal_shard_closed(const tdm_store *s, int64_t shard, int64_t newest)
{
	int64_t d = s->opts.shard_duration_ns, g = s->opts.grace_ns;
	if (shard >= (INT64_MAX - g) / d - 1)
		return 0;
	return (shard + 1) * d + g <= newest;
}

static int sync_shards_dir(tdm_store *s)
{
	char dir[4200];
	int r = store_path(dir, sizeof dir, s, SHARDS_DIR);
	if (!r && (r = io_fsync_dir(dir)) < 0)
		r = tdm_fail_errno(TDM_EIO, -r, "%s: sync", SHARDS_DIR);
	return r;
}

/* Step 1: the shard in read order into the temporary file. 1 when the
 * shard has damage (left alone for verify), 0, or an error. */
static int write_sealed(uint64_t *size, uint64_t *events, tdm_store *s,
                        const shard_meta *m, uint64_t gen, const char *tmp_rel,
                        const char *tmp_path)
{
	int64_t d = s->opts.shard_duration_ns, lo = m->shard * d;
	int64_t hi = lo > INT64_MAX - d ? INT64_MAX : lo + d;
	shard_id id = store_shard_id(s, m->shard);
	id.gen = gen;
	uint8_t hdr[SHARD_HEADER];
	shard_header_encode(hdr, SHARD_SEALED, &id);
	int fd, r = io_open(&fd, tmp_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (r < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s: create", tmp_rel);
	sealed_writer sw;
	tdm_iter *it = NULL;
	uint8_t *rec = NULL;
	size_t cap = 0;
	if ((r = sealed_writer_open(&sw, fd, tmp_rel, hdr, SEAL_ZSTD_LEVEL)) ||
	    (r = reader_open(&it, s, lo, hi, NULL)))
		goto out;
	const tdm_event *ev;
	while ((r = reader_next(&ev, it)) == 0) {
		size_t len = rec_size(ev);
		if (len > cap) {
			uint8_t *p = realloc(rec, len);
			if (!p) {
				r = tdm_fail(TDM_ENOMEM, "out of memory");
				goto out;
			}
			rec = p;
			cap = len;
		}
		rec_encode(rec, ev, ev->seq); /* same identity, same seq */
		if ((r = sealed_writer_add(&sw, rec, (uint32_t)len, ev->ts)))
			goto out;
	}
	if (r != TDM_ITEROVER)
		goto out;
	r = 0;
	if (reader_damage(NULL, it)) {
		r = 1;
		goto out;
	}
	if (sw.f.events != m->main_count + m->recon_count) {
		r = tdm_fail(TDM_ECORRUPT, "%s: read %" PRIu64 " events of a shard that"
		             " holds %" PRIu64, tmp_rel, sw.f.events,
		             m->main_count + m->recon_count);
		goto out;
	}
	*events = sw.f.events;
	if ((r = sealed_writer_finish(&sw, size)))
		goto out;
	if ((r = io_fsync(fd)) < 0)
		r = tdm_fail_errno(TDM_EIO, -r, "%s: sync", tmp_rel);
out:
	reader_close(it);
	free(rec);
	sealed_writer_free(&sw);
	io_close(fd);
	if (r)
		io_unlink(tmp_path);
	return r;
}

/* Seals one shard whose state is `m`: 0, 1 when skipped for damage, or an
 * error (the store is then failed: the next open recovers). */
static int seal_one(tdm_compact_result *res, tdm_store *s, const shard_meta *m)
{
	uint64_t gen = m->seal_gen + 1;
	char tmp_rel[80], tmp[4200], rel[80], path[4200];
	shard_relname_gen(tmp_rel, sizeof tmp_rel, m->shard, SHARD_SEALED_TMP, gen);
	shard_relname_gen(rel, sizeof rel, m->shard, SHARD_SEALED, gen);
	int r;
	if ((r = store_path(tmp, sizeof tmp, s, tmp_rel)) ||
	    (r = store_path(path, sizeof path, s, rel)))
		return r;
	uint64_t size = 0, events = 0;
	if ((r = write_sealed(&size, &events, s, m, gen, tmp_rel, tmp)))
		return r;
	if ((r = io_rename(tmp, path)) < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s: rename to %s", tmp_rel, rel);
	if ((r = sync_shards_dir(s)))
		return r;

	kv_txn *txn = NULL;
	shard_meta nm;
	memset(&nm, 0, sizeof nm);
	nm.shard = m->shard;
	nm.seal_gen = gen;
	if ((r = kv_reserve(s->kv)) || (r = kv_begin(&txn, s->kv, 1)))
		return r;
	if ((r = recover_index_shard(s, txn, &nm, 0, 0))) {
		kv_abort(txn);
		return r;
	}
	if (nm.main_count != events) {
		kv_abort(txn);
		return tdm_fail(TDM_ECORRUPT, "%s: holds %" PRIu64 " sound events of %"
		                PRIu64 " written", rel, nm.main_count, events);
	}
	if ((r = kv_commit(txn)) || (r = kv_sync(s->kv)))
		return r;
	writer_forget(s->w, m->shard);

	if ((r = m->seal_gen ? store_remove_shard_file(s, m->shard, SHARD_SEALED, m->seal_gen)
	                     : store_remove_shard_file(s, m->shard, SHARD_MAIN, 0)) ||
	    (r = store_remove_shard_file(s, m->shard, SHARD_RECON, 0)) || (r = sync_shards_dir(s)))
		return r;
	res->shards_sealed++;
	res->events += events;
	res->bytes_before += m->main_len + m->recon_len;
	res->bytes_after += size;
	return 0;
}

int seal_store(tdm_compact_result *res, tdm_store *s)
{
	memset(res, 0, sizeof *res);
	/* Everything acknowledged is on disk before files are replaced. */
	int r = writer_sync(s);
	shard_meta *a = NULL;
	size_t n = 0;
	int64_t newest;
	if (!r)
		r = seal_list_shards(&a, &n, &newest, s);
	for (size_t i = 0; i < n && !r; i++) {
		const shard_meta *m = &a[i];
		if (!seal_shard_closed(s, m->shard, newest) ||
		    m->main_count + m->recon_count == 0 || (m->seal_gen && !m->recon_count))
			continue;
		r = seal_one(res, s, m);
		if (r == 1) {
			res->shards_skipped++;
			r = 0;
		}
	}
	free(a);
	return r;
}
