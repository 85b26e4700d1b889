/* verify.c - read every committed byte and check it against what the index
 * says: record checksums and labels, shard ranges, the grace invariant of
 * main files (I1), the late rule of recon files, counts, lengths and every
 * sparse index entry and replica digest (recomputed from the records and
 * compared), and that each record lies in a span of its digest leaf. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "digest.h"
#include "error.h"
#include "index.h"
#include "io.h"
#include "sealed.h"
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
	/* digests recomputed for the shard, and stored leaves looked up */
	digest_acc *digests;
	struct cached_leaf {
		int valid;
		uint32_t leaf;
		digest_leaf l;
	} leaves[64];
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

/* Notes a record into the recomputed digests and checks that its stored
 * leaf says where it is. */
static int check_digest(vctx *v, const char *name, int64_t shard, shard_kind kind,
                        const rec_view *rec, uint64_t off)
{
	uint32_t leaf = digest_leaf_of(v->s->opts.shard_duration_ns, shard, rec->ts);
	int dk = kind == SHARD_MAIN ? DIGEST_MAIN : DIGEST_RECON;
	int r = digest_acc_note(v->digests, shard, leaf, dk, off, rec->len,
	                        rec_fingerprint(rec->bytes));
	if (r)
		return r;
	struct cached_leaf *c = &v->leaves[leaf % 64];
	if (!c->valid || c->leaf != leaf) {
		if (digest_leaf_get(&c->l, v->txn, shard, leaf))
			return 0; /* a malformed row: check_shard reports it */
		c->valid = 1;
		c->leaf = leaf;
	}
	if (!digest_leaf_covers(&c->l, dk, off, rec->len))
		problem(v, name, (int64_t)off, "record is outside the spans of its digest leaf %" PRIu32,
		        leaf);
	return 0;
}

typedef struct digest_cmp {
	vctx *v;
	const char *name;
} digest_cmp;

static void digest_differs(void *ctx, unsigned level, uint32_t node,
                           const tdm_digest *have, const tdm_digest *want)
{
	digest_cmp *c = ctx;
	if (!have)
		problem(c->v, c->name, -1, "digest row %u/%" PRIu32 " is malformed", level, node);
	else
		problem(c->v, c->name, -1, "digest %u/%" PRIu32 " holds %" PRIu64
		        " events (sum %016" PRIx64 "), the files %" PRIu64 " (sum %016" PRIx64 ")",
		        level, node, have->count, have->sum, want->count, want->sum);
}

/* Scans one file over its committed length, reporting every unsound
 * record, and accounts the sound ones into `m` (a fresh state). */
static int check_file(vctx *v, const shard_meta *have, shard_meta *m,
                      shard_kind kind)
{
	char name[80], path[4200];
	int sealed = kind == SHARD_MAIN && have->seal_gen;
	shard_relname_gen(name, sizeof name, have->shard, sealed ? SHARD_SEALED : kind,
	                  have->seal_gen);
	int r = store_path(path, sizeof path, v->s, name);
	if (r)
		return r;
	shard_id id = store_shard_id(v->s, have->shard);
	id.gen = have->seal_gen;
	uint64_t size, end = kind == SHARD_MAIN ? have->main_len : have->recon_len;
	int fd;
	r = shard_file_open(&fd, &size, path, name, sealed ? SHARD_SEALED : kind, &id,
	                    SHARD_READ_ANY);
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
	uint64_t labels_end = kind == SHARD_MAIN ? have->labels_main_end : have->labels_recon_end;
	int at_labels_end = sealed || labels_end == end;
	int64_t grace = v->s->opts.grace_ns, prev_ts = -1;
	uint32_t interval = v->s->opts.index_interval;
	shard_scan sc;
	store_scan_init(&sc, v->s, have->shard, fd, name, SHARD_HEADER, end, 1 << 20);
	if (sealed) {
		sealed_footer f;
		interval = 1; /* one index entry per block */
		if (sealed_footer_read(&f, fd, name, size))
			problem(v, name, (int64_t)(size - (size < SEALED_FOOTER ? size : SEALED_FOOTER)),
			        "%s", tdm_error_message());
		else if (f.events != have->main_count || f.raw_bytes != have->sealed_raw)
			problem(v, name, (int64_t)f.blocks_end, "footer says %" PRIu64
			        " events, %" PRIu64 " bytes; the index %" PRIu64 " and %" PRIu64,
			        f.events, f.raw_bytes, have->main_count, have->sealed_raw);
		if ((r = sealed_scan_attach(&sc, size))) {
			scan_free(&sc);
			io_close(fd);
			return r;
		}
	}
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
		if (sealed && rec.ts < prev_ts)
			problem(v, name, (int64_t)off, "sealed file out of order: ts %" PRId64
			        " after %" PRId64, rec.ts, prev_ts);
		prev_ts = rec.ts;
		int indexed = kind == SHARD_RECON || m->max_ts < 0 || rec.ts >= m->max_ts - grace;
		at_labels_end |= off == labels_end;
		/* Past the labels end, the writer holds the bitmaps (labels.c, L3);
		 * a sealed file has none (recover_shard_labels). */
		if (!sealed && indexed && rec.labels_len && off < labels_end &&
		    (r = lbl_acc_add(v->labels, kind, off, rec.labels, rec.labels_len)))
			break;
		if (kind == SHARD_MAIN) {
			if (!indexed)
				problem(v, name, (int64_t)off,
				        "ts %" PRId64 " is older than max %" PRId64 " minus grace",
				        rec.ts, m->max_ts);
			if ((r = index_note_main(m, off, rec.len, rec.ts, interval,
			                         collect_entry, v)))
				break;
		} else {
			index_note_recon(m, off, rec.len, rec.ts);
		}
		if ((r = check_digest(v, name, have->shard, kind, &rec, off)))
			break;
	}
	scan_free(&sc);
	io_close(fd);
	if (r >= 0 && !at_labels_end)
		problem(v, name, (int64_t)labels_end, "the label bitmaps end at offset %" PRIu64
		        ", where no record starts", labels_end);
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
	digest_acc_reset(v->digests);
	for (size_t i = 0; i < 64; i++)
		v->leaves[i].valid = 0;
	char name[80];
	shard_relname_gen(name, sizeof name, have->shard,
	                  have->seal_gen ? SHARD_SEALED : SHARD_MAIN, have->seal_gen);
	v->shard = have->shard;
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
	digest_cmp dc = {v, name};
	return digest_check(v->txn, v->digests, have->shard, digest_differs, &dc);
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
	uint64_t gen = 0;
	if (shard_parse_name_gen(&shard, &kind, &gen, name))
		return 0;
	shard_meta m;
	int r = index_meta_get(&m, v->txn, shard);
	if (r == TDM_ENOTFOUND || (r == 0 && kind == SHARD_RECON && !m.recon_len) ||
	    (r == 0 && kind == SHARD_MAIN && m.seal_gen) ||
	    (r == 0 && kind == SHARD_SEALED && m.seal_gen != gen) ||
	    kind == SHARD_SEALED_TMP || kind == SHARD_DROPPED) {
		char rel[80];
		shard_relname_gen(rel, sizeof rel, shard, kind, gen);
		problem(v, rel, -1, "file is not in the index");
		return 0;
	}
	return r;
}

int verify_store(uint64_t *problems, tdm_store *s, tdm_problem_cb cb, void *ctx)
{
	/* Heap: the leaf cache is too big for a comfortable stack frame. */
	vctx *v = calloc(1, sizeof *v);
	if (!v)
		return tdm_fail(TDM_ENOMEM, "out of memory");
	*v = (vctx){.s = s, .cb = cb, .cb_ctx = ctx};
	char dir[4200];
	int r = digest_acc_new(&v->digests);
	if (!r)
		r = store_path(dir, sizeof dir, s, SHARDS_DIR);
	if (!r)
		r = kv_begin(&v->txn, s->kv, 0);
	if (!r)
		r = store_next_seq_get(&v->next_seq, v->txn);
	if (!r)
		r = index_meta_each(v->txn, 0, INT64_MAX, check_meta, v);
	if (!r) {
		r = io_list_dir(dir, check_listed, v);
		if (r < 0)
			r = tdm_fail_errno(TDM_EIO, -r, "%s", SHARDS_DIR);
	}
	kv_abort(v->txn);
	free(v->entries);
	digest_acc_free(v->digests);
	*problems = v->problems;
	free(v);
	return r;
}
