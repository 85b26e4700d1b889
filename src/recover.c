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

#include "bytes.h"
#include "digest.h"
#include "error.h"
#include "index.h"
#include "io.h"
#include "labels.h"
#include "sealed.h"
#include "store.h"

typedef struct shard_files {
	int64_t shard;
	unsigned kinds; /* bit SHARD_MAIN, SHARD_RECON, SHARD_SEALED, ... */
	uint64_t sealed_gen; /* the newest sealed file's generation, 0 if none */
	int garbage;         /* older sealed files or a sealed file being written */
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
	uint64_t gen = 0;
	if (shard_parse_name_gen(&shard, &kind, &gen, name))
		return 0; /* not ours */
	shard_files *f = list_get(ctx, shard);
	if (!f)
		return -ENOMEM;
	if (kind == SHARD_SEALED_TMP || (kind == SHARD_SEALED && f->sealed_gen)) {
		f->garbage = 1;
		if (kind == SHARD_SEALED_TMP)
			return 0;
	}
	if (kind == SHARD_SEALED && gen > f->sealed_gen)
		f->sealed_gen = gen;
	f->kinds |= 1u << kind;
	return 0;
}

/* Removes what a seal left behind: a sealed file being written when it
 * stopped, and sealed files older than the newest (which holds all they
 * held). */
static int clean_file(void *ctx, const char *name)
{
	shard_list *l = ((void **)ctx)[0];
	tdm_store *s = ((void **)ctx)[1];
	int64_t shard;
	shard_kind kind;
	uint64_t gen = 0;
	if (shard_parse_name_gen(&shard, &kind, &gen, name))
		return 0;
	shard_files *f = NULL;
	for (size_t i = 0; i < l->n && !f; i++)
		if (l->a[i].shard == shard)
			f = &l->a[i];
	if (!f || !f->garbage || !(kind == SHARD_SEALED_TMP ||
	                          (kind == SHARD_SEALED && gen < f->sealed_gen)))
		return 0;
	char rel[80], path[4200];
	shard_relname_gen(rel, sizeof rel, shard, kind, gen);
	int r = store_path(path, sizeof path, s, rel);
	if (r)
		return r;
	r = io_unlink(path);
	return r < 0 && r != -ENOENT ? r : 0;
}

/* The seal generation a shard file's header names (bytes 40..47), 0 when
 * the header cannot be read. */
static uint64_t header_gen(tdm_store *s, int64_t shard, shard_kind kind)
{
	char rel[64], path[4200];
	shard_relname(rel, sizeof rel, shard, kind);
	if (store_path(path, sizeof path, s, rel))
		return 0;
	int fd;
	uint8_t h[SHARD_HEADER];
	size_t got = 0;
	if (io_open(&fd, path, O_RDONLY, 0) < 0)
		return 0;
	if (io_pread(fd, h, sizeof h, 0, &got) < 0)
		got = 0;
	io_close(fd);
	return got == sizeof h ? get_le(h + 40, 8) : 0;
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
		                  kind == SHARD_RECON ? off : 0, 0, NULL);
	}
	if (!r && rec->labels_len)
		r = lbl_acc_add(labels, kind, off, rec->labels, rec->labels_len);
	return r;
}

/* Puts the bitmaps of a file scanned to its end. */
static int label_file_done(lbl_acc *labels, kv_txn *txn, shard_kind kind)
{
	return lbl_acc_flush(labels, txn, kind == SHARD_MAIN ? UINT64_MAX : 0,
	                     kind == SHARD_RECON ? UINT64_MAX : 0, 0, NULL);
}

/* Indexes the records of a file from its header on, for a shard whose
 * state is gone, and builds its digests and label bitmaps. An unsound
 * record followed by sound ones is damage: it is stepped over (verify
 * reports it). An unsound stretch running to the end of the file is a torn
 * tail and is cut off. A sealed file's records carry their block's offset:
 * they get no label bitmaps (a selective read of a sealed shard scans). */
static int index_file(tdm_store *s, kv_txn *txn, digest_acc *digests,
                      lbl_acc *labels, shard_meta *m, shard_kind kind, uint64_t gen)
{
	/* A sealed shard's main file is its sealed file: read whole (it was
	 * written whole, then renamed into place), one index entry a block. */
	int sealed = kind == SHARD_MAIN && m->seal_gen;
	char name[80], path[4200];
	shard_relname_gen(name, sizeof name, m->shard, sealed ? SHARD_SEALED : kind,
	                  m->seal_gen);
	int r = store_path(path, sizeof path, s, name);
	if (r)
		return r;
	shard_id id = store_shard_id(s, m->shard);
	id.gen = gen;
	int fd;
	uint64_t size;
	r = shard_file_open(&fd, &size, path, name, sealed ? SHARD_SEALED : kind, &id,
	                    sealed ? SHARD_READ_ANY : SHARD_REPAIR);
	if (r && r != SHARD_BAD_HEADER) /* a bad header: verify reports it */
		return r;

	shard_scan sc;
	store_scan_init(&sc, s, m->shard, fd, name, SHARD_HEADER, size, 1 << 20);
	uint32_t interval = s->opts.index_interval;
	if (sealed) {
		interval = 1; /* records of a block share its offset */
		if ((r = sealed_scan_attach(&sc, size))) {
			scan_free(&sc);
			io_close(fd);
			return r;
		}
	}
	uint64_t sound_end = SHARD_HEADER, chunk = 0;
	int64_t grace = s->opts.grace_ns;
	rec_view rec;
	uint64_t off;
	while ((r = scan_next(&sc, &rec, &off)) == 0) {
		if (kind == SHARD_MAIN && m->max_ts >= 0 && rec.ts < m->max_ts - grace)
			continue; /* breaks the grace invariant: cannot be ours */
		if (kind == SHARD_MAIN)
			r = index_note_main(m, off, rec.len, rec.ts, interval, index_put_txn, txn);
		else
			index_note_recon(m, off, rec.len, rec.ts);
		if (!r)
			r = digest_acc_note(digests, m->shard,
			                    digest_leaf_of(s->opts.shard_duration_ns, m->shard, rec.ts),
			                    kind == SHARD_MAIN ? DIGEST_MAIN : DIGEST_RECON, off,
			                    rec.len, rec_fingerprint(rec.bytes));
		if (r || (!sealed && (r = label_record(labels, txn, kind, &rec, off, &chunk))))
			break;
		if (rec.seq > m->max_seq)
			m->max_seq = rec.seq;
		if (sealed)
			m->sealed_raw += rec.len;
		sound_end = off + rec.len;
	}
	scan_free(&sc);
	if (sealed) /* never cut: damage inside is reported by verify */
		sound_end = size;
	else if (r >= 0)
		r = cut_file(fd, name, size, sound_end);
	if (r >= 0 && !sealed)
		r = label_file_done(labels, txn, kind);
	if (kind == SHARD_MAIN)
		m->main_len = sound_end;
	else
		m->recon_len = sound_end;
	io_close(fd);
	return r < 0 ? r : 0;
}

/* Deletes what is derived from a shard's files, but its state row. */
static int derived_del(kv_txn *txn, int64_t shard)
{
	int r = index_entries_del(txn, shard); /* and the label bitmaps */
	return r ? r : digest_del_shard(txn, shard);
}

/* The label bitmaps of one file up to `end`, as index_file makes them. */
static int label_file(tdm_store *s, kv_txn *txn, const shard_meta *m,
                      shard_kind kind, uint64_t end, lbl_acc *labels)
{
	char name[64];
	int fd;
	uint64_t size;
	int r = store_shard_open_read(&fd, &size, name, sizeof name, s, m->shard, kind);
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

int recover_shard_labels(tdm_store *s, kv_txn *txn, shard_meta *m)
{
	lbl_acc *labels;
	int r = lbl_del(txn, m->shard);
	if (r || (r = lbl_acc_new(&labels, m->shard)))
		return r;
	/* A sealed main file has no bitmaps (index_file). */
	if (!(r = m->seal_gen ? 0 : label_file(s, txn, m, SHARD_MAIN, m->main_len, labels)) &&
	    m->recon_len)
		r = label_file(s, txn, m, SHARD_RECON, m->recon_len, labels);
	lbl_acc_free(labels);
	if (!r) {
		m->labels_main_end = m->main_len;
		m->labels_recon_end = m->recon_len;
	}
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

/* The size of a shard file (`gen`: of a sealed one). */
static int file_size(tdm_store *s, int64_t shard, shard_kind kind, uint64_t gen,
                     uint64_t *size)
{
	char name[80], path[4200];
	shard_relname_gen(name, sizeof name, shard, kind, gen);
	int r = store_path(path, sizeof path, s, name);
	if (r)
		return r;
	struct stat st;
	if (tdm_io->stat(path, &st) < 0)
		return tdm_fail_errno(TDM_EIO, errno, "%s", name);
	*size = (uint64_t)st.st_size;
	return 0;
}

/* Derives every piece of a shard's LMDB state (state row, sparse index,
 * digests, label bitmaps) anew from its files: the one per-shard rebuild,
 * for recovery and sealing. */
int recover_index_shard(tdm_store *s, kv_txn *txn, shard_meta *m, int has_recon,
                        uint64_t recon_gen)
{
	uint64_t gen = m->seal_gen;
	digest_acc *digests = NULL;
	lbl_acc *labels = NULL;
	int r = digest_acc_new(&digests);
	if (!r && !(r = lbl_acc_new(&labels, m->shard)))
		r = derived_del(txn, m->shard);
	if (!r) {
		index_meta_init(m, m->shard);
		m->seal_gen = gen;
		if (!(r = index_file(s, txn, digests, labels, m, SHARD_MAIN, gen)) &&
		    !(has_recon &&
		      (r = index_file(s, txn, digests, labels, m, SHARD_RECON, recon_gen))) &&
		    !(r = digest_acc_flush(digests, txn))) {
			m->labels_main_end = m->main_len; /* index_file put them all */
			m->labels_recon_end = m->recon_len;
			r = index_meta_put(txn, m);
		}
	}
	digest_acc_free(digests);
	lbl_acc_free(labels);
	return r;
}

/* 0 when the shard's state already agrees with its files, 1 when it was
 * brought up to date, or an error. */
static int recover_shard(tdm_store *s, kv_txn *txn, shard_files *f, int rebuild)
{
	int has_main = f->kinds & (1u << SHARD_MAIN);
	int has_recon = f->kinds & (1u << SHARD_RECON);
	uint64_t recon_gen = 0;
	int r = 0;
	if (f->kinds & (1u << SHARD_DROPPED)) {
		/* Retention dropped it: finish the job. */
		if ((r = retain_drop_files(s, f->shard, f->sealed_gen)))
			return r;
		has_main = has_recon = 0;
		f->sealed_gen = 0;
	}
	if (has_recon)
		recon_gen = header_gen(s, f->shard, SHARD_RECON);
	if (f->sealed_gen) {
		/* A sealed file is whole once it has its name (written, synced,
		 * renamed): it holds every event of the main file and of the recon
		 * file of the generation before. Those are stale. */
		if (has_main && (r = store_remove_shard_file(s, f->shard, SHARD_MAIN, 0)))
			return r;
		if (has_recon && recon_gen != f->sealed_gen) {
			if ((r = store_remove_shard_file(s, f->shard, SHARD_RECON, 0)))
				return r;
			has_recon = 0;
		}
		has_main = 1;
	}
	if (!has_main && !has_recon) {
		/* The files are gone: so are their events. */
		r = derived_del(txn, f->shard);
		return r ? r : (r = index_meta_del(txn, f->shard)) ? r : 1;
	}
	uint64_t main_size = 0, recon_size = 0;
	if (f->sealed_gen)
		r = file_size(s, f->shard, SHARD_SEALED, f->sealed_gen, &main_size);
	else if (has_main)
		r = file_size(s, f->shard, SHARD_MAIN, 0, &main_size);
	if (!r && has_recon)
		r = file_size(s, f->shard, SHARD_RECON, 0, &recon_size);
	if (r)
		return r;
	shard_meta *m = &f->meta;
	if (f->has_meta && m->seal_gen != f->sealed_gen) {
		/* A seal ended between renaming its file into place and its
		 * commit, or the sealed file is gone: index what the files hold. */
		m->seal_gen = f->sealed_gen;
		if ((r = recover_index_shard(s, txn, m, has_recon, recon_gen)))
			return r;
		return 1;
	}
	if (f->has_meta && main_size == m->main_len && recon_size == m->recon_len &&
	    !has_recon == !m->recon_len)
		return 0;

	if (f->has_meta && f->sealed_gen && main_size == m->main_len &&
	    recon_size >= m->recon_len) {
		if (has_recon && (r = cut_uncommitted(s, f->shard, SHARD_RECON, recon_size,
		                                      m->recon_len)))
			return r;
		return 0;
	}
	if (f->has_meta && !f->sealed_gen && main_size >= m->main_len &&
	    recon_size >= m->recon_len) {
		if ((r = cut_uncommitted(s, f->shard, SHARD_MAIN, main_size, m->main_len)) ||
		    (has_recon && (r = cut_uncommitted(s, f->shard, SHARD_RECON, recon_size,
		                                       m->recon_len))))
			return r;
		return 0;
	}
	if (!f->has_meta && (!rebuild || (main_size <= SHARD_HEADER &&
	                                  recon_size <= SHARD_HEADER))) {
		/* A trusted index that does not know the shard: its files were made
		 * by a batch that never committed, or retention dropped it from the
		 * index before removing them. Or files with no record. */
		if (f->sealed_gen || (main_size > SHARD_HEADER && recon_size > SHARD_HEADER))
			return retain_drop_files(s, f->shard, f->sealed_gen);
		if ((r = cut_uncommitted(s, f->shard, SHARD_MAIN, main_size, 0)) ||
		    (r = cut_uncommitted(s, f->shard, SHARD_RECON, recon_size, 0)))
			return r;
		return 0;
	}
	/* The files lost committed bytes, or the state is gone: index anew. */
	m->shard = f->shard;
	m->seal_gen = f->sealed_gen;
	return (r = recover_index_shard(s, txn, m, has_recon, recon_gen)) ? r : 1;
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
	int garbage = 0;
	for (size_t i = 0; i < l.n; i++)
		garbage |= l.a[i].garbage;
	if (garbage) {
		char dir[4200];
		void *ctx[2] = {&l, s};
		if ((r = store_path(dir, sizeof dir, s, SHARDS_DIR)))
			goto out;
		if ((r = io_list_dir(dir, clean_file, ctx)) != 0) {
			r = r < 0 ? tdm_fail_errno(TDM_EIO, -r, "%s: remove leftovers", SHARDS_DIR) : r;
			goto out;
		}
	}

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
		int has_main = f->kinds & (1u << SHARD_MAIN);
		if (!f->has_meta || f->garbage || f->meta.seal_gen != f->sealed_gen ||
		    (f->kinds & (1u << SHARD_DROPPED)) || (f->sealed_gen && has_main) ||
		    (!f->sealed_gen && !has_main) ||
		    !(f->kinds & (1u << SHARD_RECON)) != !f->meta.recon_len) {
			r = 1;
			break;
		}
		if ((r = file_size(s, f->shard, f->sealed_gen ? SHARD_SEALED : SHARD_MAIN,
		                   f->sealed_gen, &main_size)) ||
		    (f->meta.recon_len &&
		     (r = file_size(s, f->shard, SHARD_RECON, 0, &recon_size))))
			break;
		r = main_size != f->meta.main_len || recon_size != f->meta.recon_len;
	}
out:
	kv_abort(txn);
	free(l.a);
	return r;
}
