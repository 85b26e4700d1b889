/* writer.c - the write path.
 *
 * A batch: check every event, then for each event in order find its shard,
 * judge it on time or late against the shard's watermark, look for a stored
 * copy, and append its record to the shard's pending bytes. At the end the
 * pending bytes are written, synced as durability asks, and one LMDB commit
 * publishes the new file lengths, index entries and next seq: readers see
 * the whole batch or none of it.
 *
 * States: OPEN -> (append ok) -> OPEN; any I/O or memory failure -> FAILED,
 * which is sticky: appends return TDM_EFAILED until the store is reopened,
 * and recovery on open cuts what the failed batch left past the committed
 * lengths (docs/DESIGN.md, "Writer states").
 *
 * Invariants kept here (numbered as in docs/DESIGN.md):
 *  I1  a main record has ts >= (max ts of the main records before it) - grace;
 *  I2  a shard's window, once loaded, holds every main record with
 *      ts >= max_ts - grace;
 *  I3  every record lies in a span of its digest leaf: the leaf's row for
 *      committed records, the digest accumulator for this batch's. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "error.h"
#include "io.h"
#include "sealed.h"
#include "writer.h"

#define MAX_HOT_SHARDS 64
#define FLUSH_BYTES (1u << 20)
/* On-time events below a shard's watermark looked up through their digest
 * leaf before the shard's window is loaded instead. */
#define LEAF_PROBES_BEFORE_WINDOW 64

enum { MAIN = 0, RECON = 1 };

static shard_kind kind_of(int k)
{
	return k == MAIN ? SHARD_MAIN : SHARD_RECON;
}

/* A sealed shard's main file is its sealed file, only ever read here. */
static int sealed_main(const wshard *ws, int k)
{
	return k == MAIN && ws->meta.seal_gen;
}

static void name_of(char *out, size_t cap, const wshard *ws, int k)
{
	shard_relname_gen(out, cap, ws->shard,
	                  sealed_main(ws, k) ? SHARD_SEALED : kind_of(k),
	                  ws->meta.seal_gen);
}

/* Starts a scan of file k of a shard: sealed files are read by blocks. */
static int scan_start(shard_scan *sc, struct writer *w, wshard *ws, int k,
                      const char *name, uint64_t start, size_t chunk)
{
	store_scan_init(sc, w->s, ws->shard, ws->file[k].fd, name, start,
	                ws->file[k].written, chunk);
	return sealed_main(ws, k) ? sealed_scan_attach(sc, ws->file[k].written) : 0;
}

static int fail_io(int err, const wshard *ws, int k, const char *what)
{
	char name[64];
	name_of(name, sizeof name, ws, k);
	return tdm_fail_errno(TDM_EIO, -err, "%s: %s", name, what);
}

/* ---- shard state ---------------------------------------------------- */

static void wshard_free(wshard *ws)
{
	for (int k = 0; k < 2; k++) {
		if (ws->file[k].fd >= 0)
			io_close(ws->file[k].fd);
		free(ws->file[k].pending);
	}
	dd_window_free(&ws->window);
	lbl_acc_free(ws->labels);
	free(ws);
}

/* Opens (creating with `create`) the main or recon file of a shard. */
static int wfile_open(struct writer *w, wshard *ws, int k, int create)
{
	char rel[80], path[4200];
	name_of(rel, sizeof rel, ws, k);
	int r = store_path(path, sizeof path, w->s, rel);
	if (r)
		return r;
	shard_id id = store_shard_id(w->s, ws->shard);
	id.gen = ws->meta.seal_gen; /* a recon file names the seal it follows */
	uint64_t size;
	if ((r = shard_file_open(&ws->file[k].fd, &size, path, rel,
	                         sealed_main(ws, k) ? SHARD_SEALED : kind_of(k), &id,
	                         sealed_main(ws, k) ? SHARD_READ
	                                            : create ? SHARD_CREATE : SHARD_WRITE)))
		return r;
	if (create && size == SHARD_HEADER) {
		char dir[4200];
		if ((r = store_path(dir, sizeof dir, w->s, SHARDS_DIR)) ||
		    (r = io_fsync_dir(dir)) < 0)
			return r < 0 ? fail_io(r, ws, k, "sync directory") : r;
	}
	uint64_t committed = k == MAIN ? ws->meta.main_len : ws->meta.recon_len;
	if (committed == 0) /* a new recon file */
		committed = SHARD_HEADER;
	if (size < committed)
		return tdm_fail(TDM_ECORRUPT, "%s: file has %" PRIu64
		                " bytes, the index says %" PRIu64, rel, size, committed);
	/* Bytes past the committed length are left over from a failed batch. */
	if (size > committed && (r = io_truncate(ws->file[k].fd, committed)) < 0)
		return fail_io(r, ws, k, "truncate");
	ws->file[k].written = committed;
	if (k == RECON) {
		ws->meta.recon_len = committed;
		if (!ws->meta.labels_recon_end) /* a new recon file */
			ws->meta.labels_recon_end = committed;
	}
	return 0;
}

static int shard_cmp_key(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

static int put_newest_labels(struct writer *w, const wshard *only);

/* Drops the state of the least recently used shards between batches, so
 * memory and descriptors stay bounded when many shards are touched over
 * time. A shard with unsynced writes stays until the next sync; the label
 * bitmaps only the writer holds are put first. */
static int evict_cold(struct writer *w)
{
	while (w->n > MAX_HOT_SHARDS) {
		size_t victim = SIZE_MAX;
		for (size_t i = 0; i < w->n; i++)
			if (!w->shards[i]->file[MAIN].dirty && !w->shards[i]->file[RECON].dirty &&
			    (victim == SIZE_MAX ||
			     w->shards[i]->last_used < w->shards[victim]->last_used))
				victim = i;
		if (victim == SIZE_MAX)
			return 0;
		int r = put_newest_labels(w, w->shards[victim]);
		if (r)
			return r;
		wshard_free(w->shards[victim]);
		memmove(&w->shards[victim], &w->shards[victim + 1],
		        (w->n - victim - 1) * sizeof w->shards[0]);
		w->n--;
	}
	return 0;
}

/* Adds the labels of the committed records from the file's labels end on
 * (labels.c, L3): a writer that stopped without a sync left their bitmaps
 * unput. They lie in the chunk lbl_acc_load loaded. */
static int load_tail_labels(struct writer *w, wshard *ws, int k, uint64_t from)
{
	if (from >= ws->file[k].written)
		return 0;
	char name[64];
	name_of(name, sizeof name, ws, k);
	shard_scan sc;
	int r = scan_start(&sc, w, ws, k, name, from, 1 << 20);
	rec_view rec;
	uint64_t off;
	while (!r && (r = scan_next(&sc, &rec, &off)) == 0)
		if (rec.labels_len)
			r = lbl_acc_add(ws->labels, kind_of(k), off, rec.labels, rec.labels_len);
	if (r == 1 && sc.damaged) /* committed bytes the writer cannot read back */
		r = tdm_fail(TDM_ECORRUPT, "%s: damaged records after offset %" PRIu64, name,
		             from);
	scan_free(&sc);
	return r == 1 ? 0 : r;
}

/* The stored bitmaps of the chunks that appends extend, and the labels of
 * the records after them. A bitmap or record that is not sound makes the
 * shard's bitmaps be rebuilt from its files. */
static int load_labels(struct writer *w, kv_txn *txn, wshard *ws)
{
	for (int attempt = 0;; attempt++) {
		lbl_acc_free(ws->labels);
		ws->labels = NULL;
		int r = lbl_acc_new(&ws->labels, ws->shard);
		if (!r)
			r = lbl_acc_load(ws->labels, txn, SHARD_MAIN, ws->meta.main_len);
		if (!r && ws->meta.recon_len)
			r = lbl_acc_load(ws->labels, txn, SHARD_RECON, ws->meta.recon_len);
		if (!r && !sealed_main(ws, MAIN))
			r = load_tail_labels(w, ws, MAIN, ws->meta.labels_main_end);
		if (!r && ws->meta.recon_len)
			r = load_tail_labels(w, ws, RECON, ws->meta.labels_recon_end);
		if (r != TDM_ECORRUPT || attempt)
			return r;
		if ((r = recover_shard_labels(w->s, txn, &ws->meta)))
			return r;
	}
}

static int wshard_get(wshard **out, struct writer *w, kv_txn *txn, int64_t shard)
{
	size_t lo = 0, hi = w->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = shard_cmp_key(w->shards[mid]->shard, shard);
		if (c == 0) {
			*out = w->shards[mid];
			return 0;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	wshard *ws = calloc(1, sizeof *ws);
	if (!ws)
		return tdm_fail(TDM_ENOMEM, "out of memory");
	ws->shard = shard;
	ws->file[MAIN].fd = ws->file[RECON].fd = -1;
	dd_window_init(&ws->window, w->s->opts.grace_ns);
	int r = index_meta_get(&ws->meta, txn, shard);
	int fresh = r == TDM_ENOTFOUND;
	if (fresh) {
		index_meta_init(&ws->meta, shard);
		r = 0;
	}
	if (!r)
		r = wfile_open(w, ws, MAIN, fresh);
	if (!r && ws->meta.recon_len)
		r = wfile_open(w, ws, RECON, 0);
	if (!r)
		r = load_labels(w, txn, ws);
	if (!r && w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		wshard **a = realloc(w->shards, cap * sizeof *a);
		wshard **t = a ? realloc(w->touched, cap * sizeof *t) : NULL;
		if (a)
			w->shards = a;
		if (t)
			w->touched = t;
		if (a && t)
			w->cap = cap;
		else
			r = tdm_fail(TDM_ENOMEM, "out of memory");
	}
	if (r) {
		wshard_free(ws);
		return r;
	}
	memmove(&w->shards[lo + 1], &w->shards[lo], (w->n - lo) * sizeof w->shards[0]);
	w->shards[lo] = ws;
	w->n++;
	*out = ws;
	return 0;
}

/* ---- pending bytes ---------------------------------------------------- */

static uint8_t *pending_reserve(wfile *f, size_t n)
{
	if (f->pending_len + n > f->pending_cap) {
		size_t cap = f->pending_cap ? f->pending_cap : 64 * 1024;
		while (cap < f->pending_len + n)
			cap *= 2;
		uint8_t *p = realloc(f->pending, cap);
		if (!p)
			return NULL;
		f->pending = p;
		f->pending_cap = cap;
	}
	return f->pending + f->pending_len;
}

static int wfile_flush(wshard *ws, int k)
{
	wfile *f = &ws->file[k];
	if (!f->pending_len)
		return 0;
	int r = io_pwrite(f->fd, f->pending, f->pending_len, f->written);
	if (r < 0)
		return fail_io(r, ws, k, "write");
	f->written += f->pending_len;
	f->pending_len = 0;
	f->dirty = 1;
	return 0;
}

/* The stored record at `off` of the same length as `rec`, from the pending
 * bytes or the file; NULL when it cannot be the same (short file). */
static int stored_at(const uint8_t **out, struct writer *w, wshard *ws, int k,
                     uint64_t off, uint32_t len)
{
	wfile *f = &ws->file[k];
	*out = NULL;
	if (off >= f->written) {
		if (off - f->written + len <= f->pending_len)
			*out = f->pending + (off - f->written);
		return 0;
	}
	if (len > w->scratch_cap) {
		uint8_t *p = realloc(w->scratch, len);
		if (!p)
			return tdm_fail(TDM_ENOMEM, "out of memory");
		w->scratch = p;
		w->scratch_cap = len;
	}
	size_t got;
	int r = io_pread(f->fd, w->scratch, len, off, &got);
	if (r < 0)
		return fail_io(r, ws, k, "read");
	if (got == len)
		*out = w->scratch;
	return 0;
}

/* ---- loading dedupe state from the files ---------------------------- */

typedef int (*record_fn)(void *ctx, const rec_view *rec, uint64_t off);

/* Calls fn for each record of file k in [start, written). */
static int scan_file(struct writer *w, wshard *ws, int k, uint64_t start,
                     record_fn fn, void *ctx)
{
	int r = wfile_flush(ws, k);
	if (r)
		return r;
	char name[80];
	name_of(name, sizeof name, ws, k);
	shard_scan sc;
	r = scan_start(&sc, w, ws, k, name, start, 64 * 1024);
	rec_view rec;
	uint64_t off;
	while (!r && (r = scan_next(&sc, &rec, &off)) == 0)
		if ((r = fn(ctx, &rec, off)))
			break;
	scan_free(&sc);
	return r == 1 ? 0 : r;
}

static int add_to_window(void *ctx, const rec_view *rec, uint64_t off)
{
	wshard *ws = ctx;
	return dd_window_add(&ws->window, rec_fingerprint(rec->bytes), off, rec->ts);
}

/* Where records with ts >= cutoff can start: the last index entry whose
 * running max is below cutoff (index.h). */
static int start_for(uint64_t *start, struct writer *w, kv_txn *txn, wshard *ws,
                     int64_t cutoff)
{
	index_walk iw;
	int r = index_walk_open(&iw, txn, &ws->meta, ws->file[MAIN].written,
	                        cutoff, INT64_MAX, w->s->opts.grace_ns);
	*start = iw.done ? ws->file[MAIN].written : iw.off;
	index_walk_close(&iw);
	return r;
}

static int load_window(struct writer *w, kv_txn *txn, wshard *ws)
{
	if (ws->window_loaded)
		return 0;
	int r = wfile_flush(ws, MAIN);
	uint64_t start = SHARD_HEADER;
	if (!r && ws->meta.main_count)
		r = start_for(&start, w, txn, ws, ws->meta.max_ts - w->s->opts.grace_ns);
	if (!r && ws->meta.main_count)
		r = scan_file(w, ws, MAIN, start, add_to_window, ws);
	if (!r) {
		dd_window_evict(&ws->window, ws->meta.max_ts - w->s->opts.grace_ns);
		ws->window_loaded = 1;
	}
	return r;
}

/* ---- duplicate checks ------------------------------------------------- */

/* Compares `rec` with each main record the window nominates. */
static int window_holds(int *dup, struct writer *w, wshard *ws, const uint8_t *rec,
                        uint32_t len, uint64_t fp, int64_t ts)
{
	size_t cursor = 0;
	uint64_t off;
	*dup = 0;
	while (!*dup && (off = dd_window_next(&ws->window, fp, ts, &cursor)) != 0) {
		const uint8_t *stored;
		int r = stored_at(&stored, w, ws, MAIN, off, len);
		if (r)
			return r;
		*dup = stored && rec_same_event(stored, rec);
	}
	return 0;
}

/* Looks for `rec` among the records of file k in [off, off + len): the
 * file's bytes, or this batch's bytes not yet written. */
static int span_holds(int *dup, struct writer *w, wshard *ws, int k, uint64_t off,
                      uint64_t len, const uint8_t *rec, int64_t ts)
{
	wfile *f = &ws->file[k];
	if (off + len > f->written && off < f->written) {
		int r = wfile_flush(ws, k); /* straddles the written end: rare */
		if (r)
			return r;
	}
	if (off >= f->written) {
		/* Whole records this batch encoded: walk them in memory. */
		uint64_t end = off + len - f->written;
		for (uint64_t at = off - f->written; at + REC_HEADER <= end &&
		                                     at + REC_HEADER <= f->pending_len;) {
			rec_view v;
			size_t need;
			const char *why;
			if (rec_decode(&v, f->pending + at, f->pending_len - at, &need, &why))
				break;
			if (v.ts == ts && rec_same_event(v.bytes, rec)) {
				*dup = 1;
				return 0;
			}
			at += v.len;
		}
		return 0;
	}
	char name[80];
	name_of(name, sizeof name, ws, k);
	shard_scan sc;
	int r = scan_start(&sc, w, ws, k, name, off, (size_t)len);
	/* A sealed block is read whole: its records all carry the block's
	 * offset, and the span ends past the last such offset. */
	if (!r)
		scan_seek(&sc, off, sealed_main(ws, k) ? f->written : off + len);
	rec_view v;
	uint64_t at;
	while (!r && (r = scan_next(&sc, &v, &at)) == 0 && at < off + len)
		if (v.ts == ts && rec_same_event(v.bytes, rec)) {
			*dup = 1;
			break;
		}
	scan_free(&sc);
	return r < 0 ? r : 0;
}

/* Reads the fingerprints of the leaf's committed records, from both
 * files, into its memo entry. A leaf whose spans are not all in the files
 * (damage that verify reports) is left unloaded: its spans are read as
 * before. */
static int memo_load(dd_memo_leaf *ml, struct writer *w, wshard *ws, const digest_leaf *l)
{
	for (int k = MAIN; k <= RECON; k++) {
		int dk = k == MAIN ? DIGEST_MAIN : DIGEST_RECON;
		for (uint32_t i = 0; i < l->n[dk]; i++)
			if (ws->file[k].fd < 0 || l->span[dk][i].off < SHARD_HEADER ||
			    l->span[dk][i].len > ws->file[k].written - l->span[dk][i].off)
				return 0;
	}
	int r = 0;
	for (int k = MAIN; !r && k <= RECON; k++) {
		if (ws->file[k].fd < 0)
			continue;
		int dk = k == MAIN ? DIGEST_MAIN : DIGEST_RECON;
		char name[80];
		name_of(name, sizeof name, ws, k);
		for (uint32_t i = 0; !r && i < l->n[dk]; i++) {
			uint64_t off = l->span[dk][i].off, end = off + l->span[dk][i].len;
			shard_scan sc;
			r = scan_start(&sc, w, ws, k, name, off, (size_t)(end - off));
			if (!r)
				scan_seek(&sc, off, sealed_main(ws, k) ? ws->file[k].written : end);
			rec_view v;
			uint64_t at;
			while (!r && (r = scan_next(&sc, &v, &at)) == 0 && at < end)
				r = dd_memo_leaf_add_fp(ml, rec_fingerprint(v.bytes));
			scan_free(&sc);
			r = r < 0 ? r : 0;
		}
	}
	if (!r)
		dd_memo_leaf_loaded(ml);
	return r;
}

/* Looks for a stored copy of `rec` (time `ts`, fingerprint `fp`) in files
 * `k0`..`k1`: it lies in its digest leaf's spans, the committed ones in the
 * leaf's row and this batch's in the digest accumulator. A leaf is 55 ms of
 * a 1 h shard, a few KB to read, however far back in the file its events
 * went; its committed records are read once per batch (the memo) when
 * it gets several events. */
static int leaf_holds(int *dup, struct writer *w, kv_txn *txn, wshard *ws, int k0,
                      int k1, const uint8_t *rec, int64_t ts, uint64_t fp)
{
	uint32_t leaf = digest_leaf_of(w->s->opts.shard_duration_ns, ws->shard, ts);
	digest_leaf l;
	int r = digest_leaf_get(&l, txn, ws->shard, leaf);
	/* A leaf met once is read as it is; met again, or when the batch's
	 * next event is in it too (a repair sends events leaf by leaf), it is
	 * loaded into the memo. */
	int64_t d = w->s->opts.shard_duration_ns;
	dd_memo_leaf *ml = dd_memo_find(&w->memo, ws->shard, leaf);
	int again = ml || (w->next && w->next->ts >= 0 && w->next->ts / d == ws->shard &&
	                   digest_leaf_of(d, ws->shard, w->next->ts) == leaf);
	if (!ml)
		ml = dd_memo_add(&w->memo, ws->shard, leaf);
	if (!r && again && ml->state != DD_LEAF_LOADED)
		r = memo_load(ml, w, ws, &l);
	/* Read the committed spans only if a record there may be a copy. */
	int committed = ml->state != DD_LEAF_LOADED || dd_memo_leaf_has(ml, fp);
	for (int k = k0; !r && k <= k1 && !*dup; k++) {
		if (ws->file[k].fd < 0)
			continue;
		int dk = k == MAIN ? DIGEST_MAIN : DIGEST_RECON;
		for (uint32_t i = 0; committed && !r && i < l.n[dk] && !*dup; i++)
			r = span_holds(dup, w, ws, k, l.span[dk][i].off, l.span[dk][i].len, rec, ts);
		const digest_span *sp;
		uint32_t n;
		digest_acc_spans(&sp, &n, w->digests, ws->shard, leaf, dk);
		for (uint32_t i = 0; !r && i < n && !*dup; i++)
			r = span_holds(dup, w, ws, k, sp[i].off, sp[i].len, rec, ts);
	}
	return r;
}

static int is_duplicate(int *dup, struct writer *w, kv_txn *txn, wshard *ws,
                        int late, const uint8_t *rec, uint32_t len, int64_t ts,
                        uint64_t fp)
{
	int r;
	*dup = 0;
	if (!late) {
		/* On time: a stored copy has the same ts >= max_ts - grace, so it is
		 * a main record in the window (I2); above max_ts there is none. It
		 * is never a recon record, which lies below max_ts - grace, unless
		 * the main file lost records to damage and its watermark fell:
		 * then look there too. */
		if (ts <= ws->meta.max_ts) {
			/* The window costs a read of the grace window's records (7.8 MB
			 * at 1 ms spacing and 60 s grace): worth it for a stream of
			 * out-of-order events, not for the few of a short session (a
			 * replica repair), which the leaf answers in a few KB. */
			if (!ws->window_loaded && ws->leaf_probes < LEAF_PROBES_BEFORE_WINDOW) {
				ws->leaf_probes++;
				return leaf_holds(dup, w, txn, ws, MAIN, RECON, rec, ts, fp);
			}
			if ((r = load_window(w, txn, ws)) ||
			    (r = window_holds(dup, w, ws, rec, len, fp, ts)))
				return r;
		}
		if (*dup || ts > ws->meta.recon_max_ts)
			return 0;
		return leaf_holds(dup, w, txn, ws, RECON, RECON, rec, ts, fp);
	}
	/* Late: a copy may be anywhere in either file, but only in its leaf. */
	return leaf_holds(dup, w, txn, ws, MAIN, RECON, rec, ts, fp);
}

/* ---- the batch ---------------------------------------------------------- */

static int ensure_recon_file(struct writer *w, wshard *ws)
{
	if (ws->file[RECON].fd >= 0)
		return 0;
	return wfile_open(w, ws, RECON, 1);
}

static void touch(struct writer *w, wshard *ws)
{
	ws->last_used = ++w->clock;
	if (!ws->touched) {
		ws->touched = 1;
		w->touched[w->n_touched++] = ws;
	}
}

/* Checks every event of a batch as rec_event_check does, before anything
 * is written, and keeps each event's labels as canonical pairs in key
 * order (w->pairs, w->labels_len) for append_one. A bad event: TDM_EINVAL
 * with its number, and nothing changed. */
static int prepare(struct writer *w, const tdm_event *events, size_t n)
{
	/* Room for the pairs of the events that can pass: an event with more
	 * than TDM_MAX_LABELS labels fails before its labels are looked at. */
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += events[i].n_labels < TDM_MAX_LABELS ? events[i].n_labels
		                                             : TDM_MAX_LABELS;
	if (n > w->events_cap) {
		uint32_t *p = realloc(w->labels_len, n * sizeof *p);
		if (!p)
			return tdm_fail(TDM_ENOMEM, "out of memory");
		w->labels_len = p;
		w->events_cap = n;
	}
	if (!total)
		total = 1; /* a batch without labels still steps a pointer through it */
	if (total > w->pairs_cap) {
		rec_pair *p = realloc(w->pairs, total * sizeof *p);
		if (!p)
			return tdm_fail(TDM_ENOMEM, "out of memory");
		w->pairs = p;
		w->pairs_cap = total;
	}
	lcache_batch(w->lc);
	rec_pair *p = w->pairs;
	/* Event by event, as rec_event_check: the first bad event is named. */
	for (size_t i = 0; i < n; i++) {
		const tdm_event *ev = &events[i];
		int r = rec_event_check_fields(ev);
		if (!r)
			r = lcache_get_all(p, w->lc, ev->labels, ev->n_labels);
		if (!r)
			r = rec_pairs_sort_check(&w->labels_len[i], p, ev->n_labels);
		if (r)
			return tdm_fail_context(r, "event %zu of the batch", i);
		p += ev->n_labels;
	}
	return 0;
}

static int append_one(uint8_t *outcome, struct writer *w, kv_txn *txn,
                      const tdm_event *ev, const rec_pair *pairs, uint32_t labels_len)
{
	const tdm_options *o = &w->s->opts;
	wshard *ws = NULL;
	int r = wshard_get(&ws, w, txn, ev->ts / o->shard_duration_ns);
	if (r)
		return r;
	touch(w, ws);
	/* Every event for a sealed shard is late: its sealed file is never
	 * appended to, and the next seal merges the recon file in. */
	int late = ws->meta.seal_gen ||
	           (ws->meta.max_ts >= 0 && ev->ts < ws->meta.max_ts - o->grace_ns);
	int k = late ? RECON : MAIN;
	wfile *f = &ws->file[k];
	size_t len = REC_HEADER + labels_len + ev->payload_len;
	if (len > w->enc_cap) {
		uint8_t *p = realloc(w->enc, len);
		if (!p)
			return tdm_fail(TDM_ENOMEM, "out of memory for a %zu-byte record", len);
		w->enc = p;
		w->enc_cap = len;
	}
	rec_encode_pairs(w->enc, ev, pairs, ev->n_labels, labels_len);
	uint64_t fp = rec_fingerprint(w->enc); /* seq is not part of it */

	int dup;
	if ((r = is_duplicate(&dup, w, txn, ws, late, w->enc, (uint32_t)len, ev->ts,
	                      fp)))
		return r;
	if (dup) {
		*outcome = TDM_DUPLICATE;
		return 0;
	}
	/* Made only for an event to store: a duplicate leaves no empty file. */
	if (late && (r = ensure_recon_file(w, ws)))
		return r;
	uint8_t *rec = pending_reserve(f, len);
	if (!rec)
		return tdm_fail(TDM_ENOMEM, "out of memory for a %zu-byte record", len);
	uint64_t seq = w->next_seq++;
	rec_set_seq(w->enc, seq);
	memcpy(rec, w->enc, len);
	uint64_t off = f->written + f->pending_len;
	f->pending_len += len;
	if (seq > ws->meta.max_seq)
		ws->meta.max_seq = seq;
	if (ev->n_labels && (r = lbl_acc_add_pairs(ws->labels, kind_of(k), off, pairs,
	                                           ev->n_labels, lcache_gen(w->lc))))
		return r;

	if ((r = digest_acc_note(w->digests, ws->shard,
	                         digest_leaf_of(o->shard_duration_ns, ws->shard, ev->ts),
	                         late ? DIGEST_RECON : DIGEST_MAIN, off, (uint32_t)len, fp)))
		return r;
	if (late) {
		index_note_recon(&ws->meta, off, (uint32_t)len, ev->ts);
		*outcome = TDM_STORED_LATE;
	} else {
		if ((r = index_note_main(&ws->meta, off, (uint32_t)len, ev->ts,
		                         o->index_interval, index_put_txn, txn)))
			return r;
		/* Until an event at or below the watermark needs it, the window is
		 * not kept: in-order ingest never pays for it. */
		if (ws->window_loaded) {
			if ((r = dd_window_add(&ws->window, fp, off, ev->ts)))
				return r;
			dd_window_evict(&ws->window, ws->meta.max_ts - o->grace_ns);
		}
		*outcome = TDM_STORED;
	}
	if (f->pending_len >= FLUSH_BYTES)
		return wfile_flush(ws, k);
	return 0;
}

static int sync_files(struct writer *w, int only_touched)
{
	for (size_t i = 0; i < w->n; i++) {
		wshard *ws = w->shards[i];
		if (only_touched && !ws->touched)
			continue;
		for (int k = 0; k < 2; k++) {
			if (!ws->file[k].dirty)
				continue;
			int r = io_fsync(ws->file[k].fd);
			if (r < 0)
				return fail_io(r, ws, k, "fsync");
			ws->file[k].dirty = 0;
		}
	}
	return 0;
}

static int64_t ms_since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* Puts the shard's changed label bitmaps (but the newest chunk's, with
 * `keep_newest`) and moves its labels ends. */
static int put_labels(wshard *ws, kv_txn *txn, int keep_newest)
{
	uint64_t covered[2];
	int r = lbl_acc_flush(ws->labels, txn, ws->meta.main_len, ws->meta.recon_len,
	                      keep_newest, covered);
	if (!r) {
		ws->meta.labels_main_end = covered[0];
		ws->meta.labels_recon_end = covered[1];
	}
	return r;
}

/* At a sync, the bitmaps of the newest chunks too (of shard `only`, when
 * not NULL): a store at rest answers selective reads from its bitmaps
 * alone. */
static int put_newest_labels(struct writer *w, const wshard *only)
{
	kv_txn *txn = NULL;
	int r = 0;
	for (size_t i = 0; i < w->n && !r; i++) {
		wshard *ws = w->shards[i];
		if ((only && ws != only) ||
		    (ws->meta.labels_main_end == ws->meta.main_len &&
		     ws->meta.labels_recon_end == ws->meta.recon_len))
			continue;
		if (!txn && ((r = kv_reserve(w->s->kv)) || (r = kv_begin(&txn, w->s->kv, 1))))
			return r;
		if (!(r = put_labels(ws, txn, 0)))
			r = index_meta_put(txn, &ws->meta);
	}
	if (r) {
		kv_abort(txn);
		return r;
	}
	return txn ? kv_commit(txn) : 0;
}

static int sync_all(struct writer *w)
{
	int r = put_newest_labels(w, NULL);
	if (!r)
		r = sync_files(w, 0);
	if (!r)
		r = kv_sync(w->s->kv);
	if (!r) {
		w->unsynced_events = 0;
		clock_gettime(CLOCK_MONOTONIC, &w->last_sync);
	}
	return r;
}

static int commit_batch(struct writer *w, kv_txn *txn)
{
	int r = 0;
	for (size_t i = 0; i < w->n_touched && !r; i++) {
		wshard *ws = w->touched[i];
		if (!(r = wfile_flush(ws, MAIN)) && !(r = wfile_flush(ws, RECON))) {
			ws->meta.main_len = ws->file[MAIN].written;
			if (ws->file[RECON].fd >= 0)
				ws->meta.recon_len = ws->file[RECON].written;
			r = put_labels(ws, txn, 1);
			if (!r)
				r = index_meta_put(txn, &ws->meta);
		}
	}
	/* Batch durability: the data is on disk before the index points at it. */
	if (!r && w->s->oo.durability == TDM_DURABILITY_BATCH)
		r = sync_files(w, 1);
	if (!r)
		r = digest_acc_flush(w->digests, txn);
	if (!r)
		r = store_next_seq_put(txn, w->next_seq);
	if (r) {
		digest_acc_reset(w->digests);
		kv_abort(txn);
		return r;
	}
	return kv_commit(txn);
}

/* The store option keep_ns: once per new newest shard, drop the shards
 * that ended more than keep_ns before `newest`, the batch's newest main
 * record. */
static int apply_keep(struct writer *w, int64_t newest)
{
	int64_t d = w->s->opts.shard_duration_ns;
	if (newest < 0 || newest / d <= w->kept_shard)
		return 0;
	w->kept_shard = newest / d;
	uint64_t dropped;
	int64_t keep = w->s->opts.keep_ns;
	return newest > keep ? retain_store(&dropped, w->s, newest - keep) : 0;
}

int writer_append(tdm_append_result *res, uint8_t *outcomes, tdm_store *s,
                  const tdm_event *events, size_t n)
{
	struct writer *w = s->w;
	memset(res, 0, sizeof *res);
	if (n == 0)
		return 0;
	int r = prepare(w, events, n);
	if (r)
		return r; /* nothing changed: the store can go on */
	r = kv_reserve(s->kv);
	kv_txn *txn = NULL;
	if (!r)
		r = kv_begin(&txn, s->kv, 1);
	if (r)
		goto failed;
	w->n_touched = 0;
	dd_memo_clear(&w->memo); /* the last batch's commit changed the leaves */
	const rec_pair *pairs = w->pairs;
	for (size_t i = 0; i < n; i++) {
		uint8_t outcome = TDM_DUPLICATE;
		w->next = i + 1 < n ? &events[i + 1] : NULL;
		if ((r = append_one(&outcome, w, txn, &events[i], pairs, w->labels_len[i]))) {
			digest_acc_reset(w->digests);
			kv_abort(txn);
			goto failed;
		}
		pairs += events[i].n_labels;
		if (outcomes)
			outcomes[i] = outcome;
		res->appended += outcome != TDM_DUPLICATE;
		res->late += outcome == TDM_STORED_LATE;
		res->duplicates += outcome == TDM_DUPLICATE;
	}
	r = commit_batch(w, txn);
	int64_t newest = -1; /* read before evict_cold may free touched shards */
	for (size_t i = 0; i < w->n_touched; i++) {
		w->touched[i]->touched = 0;
		if (w->touched[i]->meta.max_ts > newest)
			newest = w->touched[i]->meta.max_ts;
	}
	if (r)
		goto failed;
	if ((r = evict_cold(w)))
		goto failed;
	if (s->opts.keep_ns > 0 && (r = apply_keep(w, newest)))
		goto failed;

	w->unsynced_events += res->appended;
	if (s->oo.durability == TDM_DURABILITY_INTERVAL &&
	    (w->unsynced_events >= s->oo.sync_interval_events ||
	     ms_since(&w->last_sync) >= (int64_t)s->oo.sync_interval_ms) &&
	    (r = sync_all(w)))
		goto failed;
	return 0;
failed:
	s->failed = 1;
	return r;
}

int writer_put_labels(tdm_store *s)
{
	return put_newest_labels(s->w, NULL);
}

int writer_sync(tdm_store *s)
{
	return sync_all(s->w);
}

int writer_open(struct writer **out, tdm_store *s)
{
	struct writer *w = calloc(1, sizeof *w);
	if (!w)
		return tdm_fail(TDM_ENOMEM, "out of memory");
	w->s = s;
	w->kept_shard = -1;
	clock_gettime(CLOCK_MONOTONIC, &w->last_sync);
	kv_txn *txn;
	int r = digest_acc_new(&w->digests);
	if (!r)
		r = lcache_new(&w->lc);
	if (!r && !(r = kv_begin(&txn, s->kv, 0))) {
		r = store_next_seq_get(&w->next_seq, txn);
		kv_abort(txn);
	}
	if (r) {
		digest_acc_free(w->digests);
		lcache_free(w->lc);
		free(w);
		return r;
	}
	*out = w;
	return 0;
}

void writer_forget(struct writer *w, int64_t shard)
{
	for (size_t i = 0; w && i < w->n; i++)
		if (w->shards[i]->shard == shard) {
			wshard_free(w->shards[i]);
			memmove(&w->shards[i], &w->shards[i + 1],
			        (w->n - i - 1) * sizeof w->shards[0]);
			w->n--;
			return;
		}
}

void writer_close(struct writer *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n; i++)
		wshard_free(w->shards[i]);
	free(w->shards);
	free(w->touched);
	free(w->scratch);
	free(w->enc);
	free(w->pairs);
	free(w->labels_len);
	lcache_free(w->lc);
	digest_acc_free(w->digests);
	dd_memo_free(&w->memo);
	free(w);
}
