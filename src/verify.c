/* verify.c - read every committed byte and check it against what the index
 * says: record checksums and labels, shard ranges, the grace invariant of
 * main files (I1), the late rule of recon files, counts, lengths and every
 * sparse index entry (recomputed from the records and compared). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "index.h"
#include "io.h"
#include "labels.h"
#include "store.h"
#include "verify.h"

typedef struct vctx {
	tdm_store *s;
	kv_txn *txn;
	tdm_problem_cb cb;
	void *cb_ctx;
	uint64_t problems;
	uint64_t next_seq;
	/* entries recomputed for the shard being checked */
	index_entry *entries;
	size_t n_entries, cap_entries;
	lbl_acc *labels; /* label bitmaps recomputed for that shard */
	int64_t shard;
} vctx;

static void problem(vctx *v, const char *file, int64_t offset, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void problem(vctx *v, const char *file, int64_t offset, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	v->problems++;
	if (v->cb) {
		tdm_problem p = {file, offset, what};
		v->cb(v->cb_ctx, &p);
	}
}

static int collect_entry(void *ctx, int64_t shard, const index_entry *e)
{
	(void)shard;
	vctx *v = ctx;
	/* A closed block's entry replaces the one put when it opened. */
	if (v->n_entries && v->entries[v->n_entries - 1].off == e->off) {
		v->entries[v->n_entries - 1] = *e;
		return 0;
	}
	if (v->n_entries == v->cap_entries) {
		size_t cap = v->cap_entries ? v->cap_entries * 2 : 256;
		index_entry *a = realloc(v->entries, cap * sizeof *a);
		if (!a)
			return tdm_fail(TDM_ENOMEM, "out of memory");
		v->entries = a;
		v->cap_entries = cap;
	}
	v->entries[v->n_entries++] = *e;
	return 0;
}

typedef struct entry_cmp {
	vctx *v;
	const char *name;
	const shard_meta *m;
	size_t i;
} entry_cmp;

static int compare_entry(void *ctx, const index_entry *e)
{
	entry_cmp *c = ctx;
	vctx *v = c->v;
	if (c->i >= v->n_entries) {
		problem(v, c->name, (int64_t)e->off,
		        "index entry (max %" PRId64 ") for no block of the file", e->key);
		return 0;
	}
	const index_entry *want = &v->entries[c->i++];
	int64_t min = e->off == c->m->block_off ? c->m->block_min : e->min;
	int64_t want_min = want->off == c->m->block_off ? c->m->block_min : want->min;
	if (e->off != want->off || e->key != want->key || min != want_min)
		problem(v, c->name, (int64_t)want->off,
		        "index entry says block at %" PRIu64 " max %" PRId64 " min %" PRId64
		        ", the file says block at %" PRIu64 " max %" PRId64 " min %" PRId64,
		        e->off, e->key, min, want->off, want->key, want_min);
	return 0;
}

/* Scans one file over its committed length, reporting every unsound
 * record, and accounts the sound ones into `m` (a fresh state). */
static int check_file(vctx *v, const shard_meta *have, shard_meta *m,
                      shard_kind kind)
{
	char name[64], path[4200];
	shard_relname(name, sizeof name, have->shard, kind);
	int r = store_path(path, sizeof path, v->s, name);
	if (r)
		return r;
	shard_id id = store_shard_id(v->s, have->shard);
	uint64_t size, end = kind == SHARD_MAIN ? have->main_len : have->recon_len;
	int fd;
	r = shard_file_open(&fd, &size, path, name, kind, &id, SHARD_READ_ANY);
	if (r == TDM_ENOTFOUND) {
		problem(v, name, -1, "%s", tdm_error_message());
		return 0;
	}
	if (r == SHARD_BAD_HEADER)
		problem(v, name, 0, "%s", tdm_error_message());
	else if (r)
		return r;
	if (size < end) {
		problem(v, name, (int64_t)size, "file has %" PRIu64 " bytes, %" PRIu64
		        " are committed", size, end);
		end = size;
	}
	int64_t grace = v->s->opts.grace_ns;
	shard_scan sc;
	store_scan_init(&sc, v->s, have->shard, fd, name, SHARD_HEADER, end, 1 << 20);
	for (;;) {
		rec_view rec;
		uint64_t off;
		const char *why;
		r = scan_next_strict(&sc, &rec, &off, &why);
		if (r == 2) {
			problem(v, name, (int64_t)off, "%s", why);
			sc.pos = off + 1;
			uint64_t damaged = sc.damaged;
			r = scan_next(&sc, &rec, &off); /* resynchronise */
			sc.damaged = damaged;
		}
		if (r)
			break;
		if (rec.seq == 0 || rec.seq >= v->next_seq)
			problem(v, name, (int64_t)off, "seq %" PRIu64 " out of range", rec.seq);
		int indexed = kind == SHARD_RECON || m->max_ts < 0 || rec.ts >= m->max_ts - grace;
		if (indexed && rec.labels_len &&
		    (r = lbl_acc_add(v->labels, kind, off, rec.labels, rec.labels_len)))
			break;
		if (kind == SHARD_MAIN) {
			if (!indexed)
				problem(v, name, (int64_t)off,
				        "ts %" PRId64 " is older than max %" PRId64 " minus grace",
				        rec.ts, m->max_ts);
			if ((r = index_note_main(m, off, rec.len, rec.ts, v->s->opts.index_interval,
			                         collect_entry, v)))
				break;
		} else {
			index_note_recon(m, off, rec.len, rec.ts);
		}
	}
	scan_free(&sc);
	io_close(fd);
	return r < 0 ? r : 0;
}

static void label_problem(void *ctx, shard_kind kind, uint64_t chunk,
                          const char *what)
{
	vctx *v = ctx;
	char name[64];
	shard_relname(name, sizeof name, v->shard, kind);
	problem(v, name, (int64_t)(chunk << LBL_CHUNK_BITS), "%s", what);
}

static int check_shard(vctx *v, const shard_meta *have)
{
	shard_meta m;
	index_meta_init(&m, have->shard);
	v->n_entries = 0;
	v->shard = have->shard;
	char name[64];
	shard_relname(name, sizeof name, have->shard, SHARD_MAIN);
	int r = lbl_acc_new(&v->labels, have->shard);
	if (!r)
		r = check_file(v, have, &m, SHARD_MAIN);
	if (!r && have->recon_len)
		r = check_file(v, have, &m, SHARD_RECON);
	/* Label bitmaps: each one sound and equal to what the records say. */
	if (!r)
		r = lbl_verify(v->txn, have->shard, v->labels, label_problem, v);
	lbl_acc_free(v->labels);
	v->labels = NULL;
	if (r)
		return r;
	if (m.main_count != have->main_count || m.recon_count != have->recon_count)
		problem(v, name, -1, "index counts %" PRIu64 " main and %" PRIu64
		        " late events, the files hold %" PRIu64 " and %" PRIu64,
		        have->main_count, have->recon_count, m.main_count, m.recon_count);
	if (m.max_ts != have->max_ts || m.recon_max_ts != have->recon_max_ts)
		problem(v, name, -1, "index says max ts %" PRId64 " (late %" PRId64
		        "), the files %" PRId64 " (late %" PRId64 ")",
		        have->max_ts, have->recon_max_ts, m.max_ts, m.recon_max_ts);
	entry_cmp c = {v, name, have, 0};
	if ((r = index_entries_each(v->txn, have->shard, compare_entry, &c)))
		return r;
	if (c.i < v->n_entries)
		problem(v, name, (int64_t)v->entries[c.i].off,
		        "%zu blocks have no index entry", v->n_entries - c.i);
	return 0;
}

static int check_meta(void *ctx, const shard_meta *m)
{
	return check_shard(ctx, m);
}

/* Shard files the index does not know of. */
static int check_listed(void *ctx, const char *name)
{
	vctx *v = ctx;
	int64_t shard;
	shard_kind kind;
	if (shard_parse_name(&shard, &kind, name))
		return 0;
	shard_meta m;
	int r = index_meta_get(&m, v->txn, shard);
	if (r == TDM_ENOTFOUND || (r == 0 && kind == SHARD_RECON && !m.recon_len)) {
		char rel[64];
		shard_relname(rel, sizeof rel, shard, kind);
		problem(v, rel, -1, "file is not in the index");
		return 0;
	}
	return r;
}

int verify_store(uint64_t *problems, tdm_store *s, tdm_problem_cb cb, void *ctx)
{
	vctx v = {.s = s, .cb = cb, .cb_ctx = ctx};
	char dir[4200];
	int r = store_path(dir, sizeof dir, s, SHARDS_DIR);
	if (!r)
		r = kv_begin(&v.txn, s->kv, 0);
	if (!r)
		r = store_next_seq_get(&v.next_seq, v.txn);
	if (!r)
		r = index_meta_each(v.txn, 0, INT64_MAX, check_meta, &v);
	if (!r) {
		r = io_list_dir(dir, check_listed, &v);
		if (r < 0)
			r = tdm_fail_errno(TDM_EIO, -r, "%s", SHARDS_DIR);
	}
	kv_abort(v.txn);
	free(v.entries);
	*problems = v.problems;
	return r;
}
