/* recover.c - make the index agree with the shard files. Runs at open
 * under the writer lock.
 *
 * For each shard, comparing each file's size with its committed length:
 *  - equal: nothing to do (the common case: one stat per file);
 *  - longer: a batch was written but never committed (a crash or a failed
 *    write before the commit). It was not acknowledged, and a reader must
 *    never see part of a batch, so the bytes past the committed length are
 *    cut off (a file the batch created is removed);
 *  - shorter, or no state at all (index deleted, or lost with a power
 *    failure): the shard is indexed anew from its files, which are then the
 *    only truth. An unsound record followed by sound ones is damage, kept
 *    in place and reported by verify; an unsound stretch running to the end
 *    of the file is a torn tail and cut off. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "index.h"
#include "io.h"
#include "labels.h"
#include "store.h"

typedef struct shard_files {
	int64_t shard;
	unsigned kinds; /* bit SHARD_MAIN, bit SHARD_RECON */
	int has_meta;
	shard_meta meta;
} shard_files;

typedef struct shard_list {
	shard_files *a;
	size_t n, cap;
} shard_list;

static shard_files *list_get(shard_list *l, int64_t shard)
{
	for (size_t i = l->n; i-- > 0;)
		if (l->a[i].shard == shard)
			return &l->a[i];
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		shard_files *a = realloc(l->a, cap * sizeof *a);
		if (!a)
			return NULL;
		l->a = a;
		l->cap = cap;
	}
	shard_files *f = &l->a[l->n++];
	memset(f, 0, sizeof *f);
	f->shard = shard;
	return f;
}

static int list_file(void *ctx, const char *name)
{
	int64_t shard;
	shard_kind kind;
	if (shard_parse_name(&shard, &kind, name))
		return 0; /* not ours */
	shard_files *f = list_get(ctx, shard);
	if (!f)
		return -ENOMEM;
	f->kinds |= 1u << kind;
	return 0;
}

static int list_meta(void *ctx, const shard_meta *m)
{
	shard_files *f = list_get(ctx, m->shard);
	if (!f)
		return tdm_fail(TDM_ENOMEM, "out of memory");
	f->has_meta = 1;
	f->meta = *m;
	return 0;
}

/* Cuts bytes past `keep` (nothing to do when size == keep). */
static int cut_file(int fd, const char *name, uint64_t size, uint64_t keep)
{
	if (size <= keep)
		return 0;
	int e = io_truncate(fd, keep);
	if (!e)
		e = io_fsync(fd);
	return e < 0 ? tdm_fail_errno(TDM_EIO, -e, "%s: cut at offset %" PRIu64,
	                              name, keep) : 0;
}

/* Accounts a record's labels into `labels`, putting the bitmaps of each
 * chunk once the scan has passed it (memory: one chunk's bitmaps). */
static int label_record(lbl_acc *labels, kv_txn *txn, shard_kind kind,
                        const rec_view *rec, uint64_t off, uint64_t *chunk)
{
	int r = 0;
	if (off >> LBL_CHUNK_BITS != *chunk) {
		*chunk = off >> LBL_CHUNK_BITS;
		r = lbl_acc_flush(labels, txn, kind == SHARD_MAIN ? off : 0,
		                  kind == SHARD_RECON ? off : 0);
	}
	if (!r && rec->labels_len)
		r = lbl_acc_add(labels, kind, off, rec->labels, rec->labels_len);
	return r;
}

/* Puts the bitmaps of a file scanned to its end. */
static int label_file_done(lbl_acc *labels, kv_txn *txn, shard_kind kind)
{
	return lbl_acc_flush(labels, txn, kind == SHARD_MAIN ? UINT64_MAX : 0,
	                     kind == SHARD_RECON ? UINT64_MAX : 0);
}

/* Indexes the records of a file from its header on, for a shard whose
 * state is gone, and builds its label bitmaps. An unsound record followed
 * by sound ones is damage: it is stepped over (verify reports it). An
 * unsound stretch running to the end of the file is a torn tail and is cut
 * off. */
static int index_file(tdm_store *s, kv_txn *txn, shard_meta *m, shard_kind kind,
                      lbl_acc *labels)
{
	char name[64], path[4200];
	shard_relname(name, sizeof name, m->shard, kind);
	int r = store_path(path, sizeof path, s, name);
	if (r)
		return r;
	shard_id id = store_shard_id(s, m->shard);
	int fd;
	uint64_t size;
	r = shard_file_open(&fd, &size, path, name, kind, &id, SHARD_REPAIR);
	if (r && r != SHARD_BAD_HEADER) /* a bad header: verify reports it */
		return r;

	shard_scan sc;
	store_scan_init(&sc, s, m->shard, fd, name, SHARD_HEADER, size, 1 << 20);
	uint64_t sound_end = SHARD_HEADER, chunk = 0;
	int64_t grace = s->opts.grace_ns;
	rec_view rec;
	uint64_t off;
	while ((r = scan_next(&sc, &rec, &off)) == 0) {
		if (kind == SHARD_MAIN && m->max_ts >= 0 && rec.ts < m->max_ts - grace)
			continue; /* breaks the grace invariant: cannot be ours */
		if (kind == SHARD_MAIN)
			r = index_note_main(m, off, rec.len, rec.ts, s->opts.index_interval,
			                    index_put_txn, txn);
		else
			index_note_recon(m, off, rec.len, rec.ts);
		if (r || (r = label_record(labels, txn, kind, &rec, off, &chunk)))
			break;
		if (rec.seq > m->max_seq)
			m->max_seq = rec.seq;
		sound_end = off + rec.len;
	}
	scan_free(&sc);
	if (r >= 0)
		r = cut_file(fd, name, size, sound_end);
	if (r >= 0)
		r = label_file_done(labels, txn, kind);
	if (kind == SHARD_MAIN)
		m->main_len = sound_end;
	else
		m->recon_len = sound_end;
	io_close(fd);
	return r < 0 ? r : 0;
}

/* Derives every piece of a shard's LMDB state (state row, sparse index,
 * label bitmaps) anew from its files: the one per-shard rebuild. */
static int index_shard(tdm_store *s, kv_txn *txn, shard_meta *m, int64_t shard,
                       int has_recon)
{
	lbl_acc *labels;
	int r = index_entries_del(txn, shard); /* and the label bitmaps */
	if (r || (r = lbl_acc_new(&labels, shard)))
		return r;
	index_meta_init(m, shard);
	if (!(r = index_file(s, txn, m, SHARD_MAIN, labels)) && has_recon)
		r = index_file(s, txn, m, SHARD_RECON, labels);
	lbl_acc_free(labels);
	return r ? r : index_meta_put(txn, m);
}

/* The label bitmaps of one file up to `end`, as index_file makes them. */
static int label_file(tdm_store *s, kv_txn *txn, const shard_meta *m,
                      shard_kind kind, uint64_t end, lbl_acc *labels)
{
	char name[64], path[4200];
	shard_relname(name, sizeof name, m->shard, kind);
	int r = store_path(path, sizeof path, s, name);
	if (r)
		return r;
	shard_id id = store_shard_id(s, m->shard);
	int fd;
	uint64_t size;
	r = shard_file_open(&fd, &size, path, name, kind, &id, SHARD_READ_ANY);
	if (r && r != SHARD_BAD_HEADER)
		return r;
	shard_scan sc;
	store_scan_init(&sc, s, m->shard, fd, name, SHARD_HEADER, end < size ? end : size,
	                1 << 20);
	int64_t max_ts = -1, grace = s->opts.grace_ns;
	uint64_t chunk = 0;
	rec_view rec;
	uint64_t off;
	while ((r = scan_next(&sc, &rec, &off)) == 0) {
		if (kind == SHARD_MAIN && max_ts >= 0 && rec.ts < max_ts - grace)
			continue; /* index_file leaves it out too */
		if (rec.ts > max_ts)
			max_ts = rec.ts;
		if ((r = label_record(labels, txn, kind, &rec, off, &chunk)))
			break;
	}
	scan_free(&sc);
	io_close(fd);
	return r < 0 ? r : label_file_done(labels, txn, kind);
}

int recover_shard_labels(tdm_store *s, kv_txn *txn, const shard_meta *m)
{
	lbl_acc *labels;
	int r = lbl_del(txn, m->shard);
	if (r || (r = lbl_acc_new(&labels, m->shard)))
		return r;
	if (!(r = label_file(s, txn, m, SHARD_MAIN, m->main_len, labels)) && m->recon_len)
		r = label_file(s, txn, m, SHARD_RECON, m->recon_len, labels);
	lbl_acc_free(labels);
	return r;
}

/* Cuts a file back to its committed length: what lies past it belongs to a
 * batch that never committed, and a reader must never see part of one. */
static int cut_uncommitted(tdm_store *s, int64_t shard, shard_kind kind,
                           uint64_t size, uint64_t committed)
{
	char name[64], path[4200];
	shard_relname(name, sizeof name, shard, kind);
	int r = store_path(path, sizeof path, s, name);
	if (r)
		return r;
	if (committed == 0) /* a file the failed batch created */
		return (r = io_unlink(path)) < 0 && r != -ENOENT
		           ? tdm_fail_errno(TDM_EIO, -r, "%s: remove", name) : 0;
	int fd;
	if ((r = io_open(&fd, path, O_RDWR, 0)) < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s: open", name);
	r = cut_file(fd, name, size, committed);
	io_close(fd);
	return r;
}

static int file_size(tdm_store *s, int64_t shard, shard_kind kind, uint64_t *size)
{
	char name[64], path[4200];
	shard_relname(name, sizeof name, shard, kind);
	int r = store_path(path, sizeof path, s, name);
	if (r)
		return r;
	struct stat st;
	if (tdm_io->stat(path, &st) < 0)
		return tdm_fail_errno(TDM_EIO, errno, "%s", name);
	*size = (uint64_t)st.st_size;
	return 0;
}

/* 0 when the shard's state already agrees with its files, 1 when it was
 * brought up to date, or an error. */
static int recover_shard(tdm_store *s, kv_txn *txn, shard_files *f, int rebuild)
{
	int has_main = f->kinds & (1u << SHARD_MAIN);
	int has_recon = f->kinds & (1u << SHARD_RECON);
	if (!has_main && !has_recon) {
		/* The files are gone: so are their events. */
		int r = index_entries_del(txn, f->shard);
		return r ? r : (r = index_meta_del(txn, f->shard)) ? r : 1;
	}
	uint64_t main_size = 0, recon_size = 0;
	int r = 0;
	if (has_main)
		r = file_size(s, f->shard, SHARD_MAIN, &main_size);
	if (!r && has_recon)
		r = file_size(s, f->shard, SHARD_RECON, &recon_size);
	if (r)
		return r;
	shard_meta *m = &f->meta;
	if (f->has_meta && main_size == m->main_len && recon_size == m->recon_len &&
	    !has_recon == !m->recon_len)
		return 0;

	if (f->has_meta && main_size >= m->main_len && recon_size >= m->recon_len) {
		if ((r = cut_uncommitted(s, f->shard, SHARD_MAIN, main_size, m->main_len)) ||
		    (has_recon && (r = cut_uncommitted(s, f->shard, SHARD_RECON, recon_size,
		                                       m->recon_len))))
			return r;
		return 0;
	}
	if (!f->has_meta && (!rebuild || (main_size <= SHARD_HEADER &&
	                                  recon_size <= SHARD_HEADER))) {
		/* A trusted index that does not know the shard: its files were made
		 * by a batch that never committed. Or files with no record. */
		if ((r = cut_uncommitted(s, f->shard, SHARD_MAIN, main_size, 0)) ||
		    (r = cut_uncommitted(s, f->shard, SHARD_RECON, recon_size, 0)))
			return r;
		return 0;
	}
	/* The files lost committed bytes, or the state is gone: index anew. */
	return (r = index_shard(s, txn, m, f->shard, has_recon)) ? r : 1;
}

/* Every shard the index or the shards directory knows, with its state. */
static int collect_shards(shard_list *l, tdm_store *s, kv_txn *txn)
{
	char dir[4200];
	int r = store_path(dir, sizeof dir, s, SHARDS_DIR);
	if (r || (r = index_meta_each(txn, 0, INT64_MAX, list_meta, l)))
		return r;
	r = io_list_dir(dir, list_file, l);
	if (r < 0)
		return r == -ENOMEM ? tdm_fail(TDM_ENOMEM, "out of memory")
		                    : tdm_fail_errno(TDM_EIO, -r, "%s", SHARDS_DIR);
	return 0;
}

int recover_store(tdm_store *s, int rebuild)
{
	shard_list l = {0};
	kv_txn *txn = NULL;
	int r;
	if ((r = kv_reserve(s->kv)) || (r = kv_begin(&txn, s->kv, 1)))
		goto out;
	/* An index that was never built from these files (LMDB made a new,
	 * empty one where data.mdb was lost) knows nothing: it must not be
	 * taken to say the shards are uncommitted. */
	kv_val built;
	r = kv_get(&built, txn, KV_META, META_BUILT, strlen(META_BUILT));
	if (!r) /* an index from before the label bitmaps: build them too */
		r = kv_get(&built, txn, KV_META, META_LABELS, strlen(META_LABELS));
	if (r == TDM_ENOTFOUND)
		rebuild = 1, r = 0;
	else if (r)
		goto out;
	if (rebuild) {
		for (int t = 0; t < KV_NTABLES && !r; t++)
			r = kv_clear(txn, t);
		if (r)
			goto out;
	}
	if ((r = collect_shards(&l, s, txn)))
		goto out;

	uint64_t next_seq;
	if ((r = store_next_seq_get(&next_seq, txn)))
		goto out;
	int changed = rebuild;
	for (size_t i = 0; i < l.n; i++) {
		if ((r = recover_shard(s, txn, &l.a[i], rebuild)) < 0)
			goto out;
		changed |= r;
		r = 0;
		if (l.a[i].meta.max_seq >= next_seq)
			next_seq = l.a[i].meta.max_seq + 1;
	}
	if (!changed) {
		kv_abort(txn);
		txn = NULL;
		goto out;
	}
	if ((r = store_next_seq_put(txn, next_seq)) ||
	    (r = kv_put(txn, KV_META, META_BUILT, strlen(META_BUILT), "1", 1)) ||
	    (r = kv_put(txn, KV_META, META_LABELS, strlen(META_LABELS), "1", 1)))
		goto out;
	r = kv_commit(txn);
	txn = NULL;
	if (!r)
		r = kv_sync(s->kv);
out:
	kv_abort(txn);
	free(l.a);
	return r;
}

int recover_needed(tdm_store *s)
{
	shard_list l = {0};
	kv_txn *txn = NULL;
	kv_val built;
	int r = kv_begin(&txn, s->kv, 0);
	if (r)
		return r;
	r = kv_get(&built, txn, KV_META, META_BUILT, strlen(META_BUILT));
	if (!r)
		r = kv_get(&built, txn, KV_META, META_LABELS, strlen(META_LABELS));
	if (r == TDM_ENOTFOUND) {
		r = 1;
		goto out;
	}
	if (r || (r = collect_shards(&l, s, txn)))
		goto out;
	for (size_t i = 0; i < l.n && !r; i++) {
		shard_files *f = &l.a[i];
		uint64_t main_size = 0, recon_size = 0;
		if (!f->has_meta || !(f->kinds & (1u << SHARD_MAIN)) ||
		    !(f->kinds & (1u << SHARD_RECON)) != !f->meta.recon_len) {
			r = 1;
			break;
		}
		if ((r = file_size(s, f->shard, SHARD_MAIN, &main_size)) ||
		    (f->meta.recon_len &&
		     (r = file_size(s, f->shard, SHARD_RECON, &recon_size))))
			break;
		r = main_size != f->meta.main_len || recon_size != f->meta.recon_len;
	}
out:
	kv_abort(txn);
	free(l.a);
	return r;
}
