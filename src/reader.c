/* reader.c - range reads: [from, to) in read order (SPEC §4).
 *
 * For each shard that may hold the range, in shard order: load the recon
 * records in range and sort them; walk the sparse index from the last
 * block whose running max is below `from`, skipping blocks whose records
 * all fall outside the range, until the running max minus grace reaches
 * `to`; hold main records in range (merge.c: a FIFO for those that come in
 * order, a heap for stragglers) until no unread record can be older, and
 * merge them with the recon records. The iterator holds one LMDB read
 * transaction: it sees the committed lengths of one moment and never a
 * partial batch.
 *
 * Memory: main records of at most one grace window are held (one index
 * block's worth when the data came in order: the block mins ahead bound
 * what is unread); the recon records of the current shard are held whole. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "index.h"
#include "io.h"
#include "labels.h"
#include "merge.h"
#include "reader.h"
#include "sealed.h"

/* A selective read fetches a candidate record with one pread, reaching on
 * to the next candidates when they lie within FETCH_GAP bytes (one larger
 * read costs less than two system calls), up to FETCH_MAX bytes. */
#define FETCH_MIN 512u
#define FETCH_GAP 4096u
#define FETCH_MAX (1u << 20)
/* A selector whose candidates lie closer than this many bytes apart on
 * average is read faster by scanning (tests set 0: always the bitmaps). */
uint32_t reader_scan_density = 2048;

struct tdm_iter {
	tdm_store *s;
	kv_txn *txn;
	int64_t from, to;
	unsigned flags;
	int counted; /* in s->open_iters */

	/* the selector, copied */
	tdm_selector *where;
	size_t n_where;
	char *strings;
	int bitmaps; /* the selector can be answered from the label bitmaps */
	uint64_t fallbacks; /* shards read by scanning: a bitmap was unsound */

	shard_meta *shards;
	size_t n_shards, next_shard;

	/* the shard being read */
	int active;
	const shard_meta *meta;
	int main_fd;
	char main_name[80];
	shard_scan scan;
	index_walk walk;
	int in_run, main_done;
	int64_t runmax;
	/* The blocks of the walk; `min` holds the smallest block min from that
	 * block to the last, so unread records are no older than blocks[at]. */
	index_entry *blocks;
	size_t n_blocks, at;
	mg_main held;
	mg_item *recon;
	size_t n_recon, recon_pos;
	/* a selective read of the shard: candidates from the label bitmaps */
	int sel;
	index_entry *runs; /* the walk's runs as (key, start, stop in min) */
	size_t n_runs, run_at;
	lbl_cand *cand_main, *cand_recon;
	uint64_t sel_pos, run_stop;
	uint8_t *fbuf;    /* bytes [foff, foff + flen) of file ffd */
	size_t fcap, flen;
	uint64_t foff;
	int ffd;

	/* what tdm_iter_next handed out last */
	mg_item current;
	tdm_event ev;
	tdm_label labels[TDM_MAX_LABELS];

	uint64_t damaged;
	char damage_msg[256];
};

/* ---- selectors ------------------------------------------------------- */

static int match_one(const tdm_match *m, const tdm_label *labels, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(labels[i].key, m->key) != 0)
			continue;
		size_t vlen = strlen(m->value);
		if (vlen && m->value[vlen - 1] == '*')
			return strncmp(labels[i].value, m->value, vlen - 1) == 0;
		return strcmp(labels[i].value, m->value) == 0;
	}
	return 0;
}

static int selected(const tdm_iter *it, const rec_view *rec)
{
	if (!it->n_where)
		return 1;
	tdm_label labels[TDM_MAX_LABELS];
	size_t n = rec_labels(labels, rec->labels, rec->labels_len);
	for (size_t g = 0; g < it->n_where; g++) {
		const tdm_selector *sel = &it->where[g];
		size_t i = 0;
		while (i < sel->n_matches && match_one(&sel->matches[i], labels, n))
			i++;
		if (i == sel->n_matches)
			return 1;
	}
	return 0;
}

/* Copies the selector into one block of memory owned by the iterator. */
static int copy_where(tdm_iter *it, const tdm_read_options *ro)
{
	if (!ro || !ro->n_where)
		return 0;
	size_t n_matches = 0, bytes = 0;
	for (size_t g = 0; g < ro->n_where; g++)
		for (size_t i = 0; i < ro->where[g].n_matches; i++) {
			const tdm_match *m = &ro->where[g].matches[i];
			if (!m->key || !m->value)
				return tdm_fail(TDM_EINVAL, "selector %zu: NULL key or value", g);
			bytes += strlen(m->key) + strlen(m->value) + 2;
			n_matches++;
		}
	it->where = calloc(ro->n_where, sizeof *it->where);
	tdm_match *matches = calloc(n_matches ? n_matches : 1, sizeof *matches);
	it->strings = malloc(bytes ? bytes : 1);
	if (!it->where || !matches || !it->strings) {
		free(matches);
		return tdm_fail(TDM_ENOMEM, "out of memory");
	}
	it->n_where = ro->n_where;
	char *p = it->strings;
	tdm_match *m = matches;
	for (size_t g = 0; g < ro->n_where; g++) {
		it->where[g].matches = m;
		it->where[g].n_matches = ro->where[g].n_matches;
		for (size_t i = 0; i < ro->where[g].n_matches; i++, m++) {
			const tdm_match *src = &ro->where[g].matches[i];
			m->key = strcpy(p, src->key);
			p += strlen(p) + 1;
			m->value = strcpy(p, src->value);
			p += strlen(p) + 1;
		}
	}
	return 0;
}

/* ---- damage ---------------------------------------------------------- */

static void note_damage(tdm_iter *it, uint64_t count, const char *msg)
{
	if (!count)
		return;
	if (!it->damaged)
		snprintf(it->damage_msg, sizeof it->damage_msg, "%s", msg);
	it->damaged += count;
}

static void collect_damage(tdm_iter *it, const shard_scan *sc)
{
	note_damage(it, sc->damaged, sc->damage_msg);
}

/* ---- one shard --------------------------------------------------------- */

static int in_range(const tdm_iter *it, const rec_view *rec)
{
	return rec->ts >= it->from && rec->ts < it->to && selected(it, rec);
}

static void shard_close(tdm_iter *it)
{
	if (!it->active)
		return;
	collect_damage(it, &it->scan);
	scan_free(&it->scan);
	index_walk_close(&it->walk);
	free(it->blocks);
	it->blocks = NULL;
	it->n_blocks = it->at = 0;
	if (it->main_fd >= 0)
		io_close(it->main_fd);
	it->main_fd = -1;
	mg_main_free(&it->held);
	for (size_t i = it->recon_pos; i < it->n_recon; i++)
		mg_item_free(&it->recon[i]);
	free(it->recon);
	it->recon = NULL;
	it->n_recon = it->recon_pos = 0;
	lbl_cand_free(it->cand_main);
	lbl_cand_free(it->cand_recon);
	it->cand_main = it->cand_recon = NULL;
	free(it->runs);
	it->runs = NULL;
	it->n_runs = it->run_at = 0;
	it->sel = 0;
	it->flen = 0;
	it->active = 0;
}

static int gen_changed(void)
{
	return strstr(tdm_error_message(), SHARD_OTHER_GEN) != NULL;
}

static int open_file(int *fd, char *name, size_t cap, tdm_iter *it,
                     shard_kind kind)
{
	char path[4200];
	/* A sealed shard's main records are in its sealed file. */
	uint64_t gen = it->meta->seal_gen;
	uint64_t committed = kind == SHARD_MAIN ? it->meta->main_len : it->meta->recon_len;
	if (kind == SHARD_MAIN && gen)
		kind = SHARD_SEALED;
	shard_relname_gen(name, cap, it->meta->shard, kind, gen);
	int r = store_path(path, sizeof path, it->s, name);
	if (r)
		return r;
	shard_id id = store_shard_id(it->s, it->meta->shard);
	id.gen = gen;
	uint64_t size;
	r = shard_file_open(fd, &size, path, name, kind, &id, SHARD_READ_ANY);
	if (r == TDM_ENOTFOUND || (r == TDM_ECORRUPT && gen_changed()))
		/* Sealing or retention replaced the files this read's snapshot
		 * names: never mix old and new, fail. */
		return tdm_fail(TDM_ECORRUPT, "%s: the shard was sealed or dropped after"
		                " this read began; read again", name);
	if (r == SHARD_BAD_HEADER) /* the records can still be read */
		note_damage(it, 1, tdm_error_message());
	else if (r)
		return r;
	if (size < committed) {
		io_close(*fd);
		return tdm_fail(TDM_ECORRUPT, "%s: file has %" PRIu64
		                " bytes, %" PRIu64 " are committed", name, size, committed);
	}
	return 0;
}

/* Reads [off, stop) of `fd` into the fetch buffer. */
static int fetch_read(tdm_iter *it, int fd, const char *name, uint64_t off,
                      uint64_t stop)
{
	size_t n = (size_t)(stop - off), got;
	if (n > it->fcap) {
		uint8_t *p = realloc(it->fbuf, n);
		if (!p)
			return tdm_fail(TDM_ENOMEM, "out of memory");
		it->fbuf = p;
		it->fcap = n;
	}
	int r = io_pread(fd, it->fbuf, n, off, &got);
	if (r < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s: read at offset %" PRIu64, name, off);
	it->ffd = fd;
	it->foff = off;
	it->flen = got;
	return 0;
}

/* The record at `off` (a candidate just peeked from `c`) of a file read up
 * to `end`: 0 with `*rec` (borrowed until the next fetch), 1 when it is not
 * sound (the damage is counted), or an error. */
static int fetch(tdm_iter *it, int fd, const char *name, uint64_t off,
                 uint64_t end, const lbl_cand *c, rec_view *rec)
{
	int r;
	if (off < SHARD_HEADER || off >= end) { /* only a bad bitmap names one */
		char msg[256];
		snprintf(msg, sizeof msg, "%s: offset %" PRIu64 ": label bitmap names no "
		         "record", name, off);
		note_damage(it, 1, msg);
		return 1;
	}
	if (it->ffd != fd || off < it->foff || off + REC_HEADER > it->foff + it->flen) {
		uint64_t stop = off + FETCH_MIN, next;
		for (size_t k = 1; !lbl_cand_ahead(c, k, &next) && next <= stop + FETCH_GAP &&
		                   next + FETCH_MIN - off <= FETCH_MAX; k++)
			stop = next + FETCH_MIN;
		if ((r = fetch_read(it, fd, name, off, stop < end ? stop : end)))
			return r;
	}
	size_t at = (size_t)(off - it->foff), need;
	const char *why;
	r = rec_decode(rec, it->fbuf + at, it->flen - at, &need, &why);
	if (r == REC_SHORT && off + need <= end) {
		if ((r = fetch_read(it, fd, name, off, off + need)))
			return r;
		r = rec_decode(rec, it->fbuf, it->flen, &need, &why);
	}
	int64_t d = it->s->opts.shard_duration_ns, lo = it->meta->shard * d;
	if (r == REC_OK && (rec->ts < lo || (lo <= INT64_MAX - d && rec->ts >= lo + d))) {
		r = REC_BAD;
		why = "ts outside the shard";
	}
	if (r == REC_OK)
		return 0;
	char msg[256];
	snprintf(msg, sizeof msg, "%s: offset %" PRIu64 ": %s", name, off,
	         r == REC_SHORT ? "record runs past the end" : why);
	note_damage(it, 1, msg);
	return 1;
}

static int recon_add(tdm_iter *it, size_t *cap, const rec_view *rec)
{
	if (it->n_recon == *cap) {
		size_t n = *cap ? *cap * 2 : 64;
		mg_item *a = realloc(it->recon, n * sizeof *a);
		if (!a)
			return tdm_fail(TDM_ENOMEM, "out of memory");
		it->recon = a;
		*cap = n;
	}
	int r = mg_item_copy(&it->recon[it->n_recon], rec);
	it->n_recon += !r;
	return r;
}

/* The recon records the label bitmaps name, read one by one. */
static int load_recon_selected(tdm_iter *it, int fd, const char *name, size_t *cap)
{
	uint64_t pos = SHARD_HEADER, off;
	while (!lbl_cand_peek(it->cand_recon, pos, &off)) {
		rec_view rec;
		int r = fetch(it, fd, name, off, it->meta->recon_len, it->cand_recon, &rec);
		if (r < 0)
			return r;
		pos = off + (r ? 1 : rec.len);
		if (!r && in_range(it, &rec) && (r = recon_add(it, cap, &rec)))
			return r;
	}
	return 0;
}

/* The recon records of [start, recon_len) in range, read by scanning. */
static int load_recon_scan(tdm_iter *it, int fd, const char *name, uint64_t start,
                           size_t *cap)
{
	shard_scan sc;
	store_scan_init(&sc, it->s, it->meta->shard, fd, name, start, it->meta->recon_len,
	                64 * 1024);
	rec_view rec;
	uint64_t off;
	int r;
	while ((r = scan_next(&sc, &rec, &off)) == 0) {
		if (in_range(it, &rec) && (r = recon_add(it, cap, &rec)))
			break;
	}
	collect_damage(it, &sc);
	scan_free(&sc);
	return r == 1 ? 0 : r;
}

static int load_recon(tdm_iter *it)
{
	if (it->meta->recon_count == 0)
		return 0;
	char name[80];
	int fd, r = open_file(&fd, name, sizeof name, it, SHARD_RECON);
	if (r)
		return r;
	/* A selective read scans what the bitmaps do not cover yet (labels.c,
	 * L3). */
	size_t cap = 0;
	if (it->sel) {
		r = load_recon_selected(it, fd, name, &cap);
		it->flen = 0;
	}
	if (!r)
		r = load_recon_scan(it, fd, name,
		                    it->sel ? it->meta->labels_recon_end : SHARD_HEADER, &cap);
	io_close(fd);
	if (!r && !(it->flags & TDM_READ_STORAGE_ORDER))
		mg_sort(it->recon, it->n_recon);
	return r;
}

/* A selective read of a shard asks the label bitmaps which records may
 * match: those of the recon file now, those of the main file run by run of
 * the index walk. An unsound bitmap makes the rest of the shard be read by
 * scanning (verify reports it; recovery or the writer rebuilds it). */
static int select_shard(tdm_iter *it, const shard_meta *m)
{
	it->sel = 0;
	it->sel_pos = 0; /* nothing read yet */
	it->ffd = -1;
	it->flen = 0;
	/* A sealed file's records are in compressed blocks, with no bitmaps
	 * (recover.c): its shard is read by scanning. */
	if (!it->bitmaps || m->seal_gen)
		return 0;
	int r = lbl_select(&it->cand_recon, it->txn, m->shard, SHARD_RECON,
	                   SHARD_HEADER, m->labels_recon_end, it->where, it->n_where, 0);
	if (r == TDM_ECORRUPT) {
		it->fallbacks++;
		return 0;
	}
	it->sel = !r;
	return r;
}

/* blocks[i].min becomes the smallest min from block i to the last. */
static void suffix_mins(tdm_iter *it)
{
	for (size_t i = it->n_blocks; i-- > 1;)
		if (it->blocks[i].min < it->blocks[i - 1].min)
			it->blocks[i - 1].min = it->blocks[i].min;
	it->at = 0;
}

/* A selective read takes the walk's runs from the blocks it already has,
 * not from a second walk of the index: the blocks whose records are not
 * all at or after `to`, adjacent ones merged (as index_walk_next does). */
static int runs_of_blocks(tdm_iter *it, uint64_t stop)
{
	it->runs = malloc((it->n_blocks ? it->n_blocks : 1) * sizeof *it->runs);
	if (!it->runs)
		return tdm_fail(TDM_ENOMEM, "out of memory");
	it->n_runs = it->run_at = 0;
	for (size_t i = 0; i < it->n_blocks; i++) {
		const index_entry *b = &it->blocks[i];
		uint64_t end = i + 1 < it->n_blocks ? it->blocks[i + 1].off : stop;
		if (b->min >= it->to)
			continue;
		index_entry *last = it->n_runs ? &it->runs[it->n_runs - 1] : NULL;
		if (last && (uint64_t)last->min == b->off)
			last->min = (int64_t)end;
		else
			it->runs[it->n_runs++] = (index_entry){b->key, b->off, (int64_t)end};
	}
	return 0;
}

static int shard_open(tdm_iter *it, const shard_meta *m)
{
	it->meta = m;
	it->active = 1;
	it->main_fd = -1;
	it->in_run = 0;
	it->main_done = 0;
	it->runmax = -1;
	memset(&it->scan, 0, sizeof it->scan);
	memset(&it->walk, 0, sizeof it->walk);
	it->walk.done = 1;
	int r = select_shard(it, m);
	if (!r)
		r = load_recon(it);
	if (r || m->main_count == 0) {
		it->main_done = 1;
		return r;
	}
	if ((r = open_file(&it->main_fd, it->main_name, sizeof it->main_name, it,
	                   SHARD_MAIN)))
		return r;
	store_scan_init(&it->scan, it->s, m->shard, it->main_fd, it->main_name,
	                SHARD_HEADER, m->main_len, it->s->opts.index_interval);
	if (m->seal_gen) {
		if ((r = sealed_scan_attach(&it->scan, m->main_len)))
			return r;
		sealed_scan_restore_sums(&it->scan, 0); /* events only */
	}
	int64_t grace = it->s->opts.grace_ns;
	uint64_t stop;
	if (it->sel && it->from <= m->min_ts && it->to > m->max_ts) {
		/* Every main record is in range: one run, and no walk of the
		 * index, whose blocks would only let held records go a little
		 * sooner (a selective read holds few). */
		if (!(it->runs = malloc(sizeof *it->runs)))
			return tdm_fail(TDM_ENOMEM, "out of memory");
		it->runs[0] = (index_entry){-1, SHARD_HEADER, (int64_t)m->main_len};
		it->n_runs = 1;
		it->run_at = 0;
	} else if ((r = index_walk_blocks_to(&it->blocks, &it->n_blocks, &stop, it->txn,
	                                     m, m->main_len, it->from, it->to, grace)) ||
	           (it->sel && (r = runs_of_blocks(it, stop)))) {
		return r;
	}
	suffix_mins(it);
	return index_walk_open(&it->walk, it->txn, m, m->main_len, it->from, it->to,
	                       grace);
}

/* Every main record not read yet has ts >= this (invariant I1, and the
 * block mins ahead): what is below it can be handed out. */
static int64_t unread_bound(tdm_iter *it)
{
	uint64_t pos = it->sel ? it->sel_pos : it->scan.pos;
	while (it->at + 1 < it->n_blocks && it->blocks[it->at + 1].off <= pos)
		it->at++;
	/* A selective read skips records, so the running max also comes from
	 * the block the next unread record lies in (invariant I1). */
	if (it->sel && it->at < it->n_blocks && it->blocks[it->at].off <= pos &&
	    it->blocks[it->at].key > it->runmax)
		it->runmax = it->blocks[it->at].key;
	int64_t bound = it->runmax - it->s->opts.grace_ns;
	if (it->at < it->n_blocks && it->blocks[it->at].min > bound)
		bound = it->blocks[it->at].min;
	return bound;
}

static int next_main(tdm_iter *it, rec_view *rec);

/* Switches a selective read to scanning the main file from `start` (a
 * record boundary) to its end: the index walk is brought to the run that
 * holds or follows `start`. */
static int scan_from(tdm_iter *it, uint64_t start, rec_view *rec)
{
	uint64_t ws = 0, we = 0;
	int64_t wk;
	int r = 0;
	it->sel = 0;
	while (we <= start && (r = index_walk_next(&it->walk, &ws, &we, &wk)) == 0)
		;
	if (r)
		return r; /* 1: no run holds or follows `start` */
	if (ws > start) /* `start` lies between runs: nothing there is in range */
		start = ws;
	/* A scan holds what matches of a grace window unless the block mins
	 * say sooner: load them if skipped. */
	if (!it->blocks && (r = index_walk_blocks(&it->blocks, &it->n_blocks, it->txn,
	                                          it->meta, it->meta->main_len, it->from,
	                                          it->to, it->s->opts.grace_ns)))
		return r;
	suffix_mins(it);
	scan_seek(&it->scan, start, we);
	it->in_run = 1;
	return next_main(it, rec);
}

/* next_main for a selective read: the candidates of the index walk's runs,
 * each fetched at its offset; from the labels end on (labels.c, L3), a
 * scan. */
static int next_main_selected(tdm_iter *it, rec_view *rec)
{
	uint64_t labels_end = it->meta->labels_main_end;
	for (;;) {
		if (!it->in_run) {
			if (it->run_at == it->n_runs)
				return 1;
			const index_entry *run = &it->runs[it->run_at++];
			uint64_t start = run->off, stop = (uint64_t)run->min;
			int64_t key = run->key;
			int r;
			if (key > it->runmax)
				it->runmax = key;
			if (start >= labels_end)
				return scan_from(it, start, rec);
			it->sel_pos = start;
			it->run_stop = stop < labels_end ? stop : labels_end;
			it->in_run = 1;
			lbl_cand_free(it->cand_main);
			it->cand_main = NULL;
			uint64_t most = reader_scan_density
			                        ? (it->run_stop - start) / reader_scan_density : 0;
			r = lbl_select(&it->cand_main, it->txn, it->meta->shard, SHARD_MAIN,
			               start, it->run_stop, it->where, it->n_where,
			               most ? most : !!reader_scan_density);
			int dense = r == 1; /* read faster by scanning */
			if (r == TDM_ECORRUPT || dense) {
				/* Records before `start` are handled: scan from there. */
				it->fallbacks += !dense;
				return scan_from(it, start, rec);
			}
			if (r)
				return r;
		}
		uint64_t off;
		if (lbl_cand_peek(it->cand_main, it->sel_pos, &off) || off >= it->run_stop) {
			it->in_run = 0;
			if (it->run_stop == labels_end && labels_end < it->meta->main_len)
				return scan_from(it, labels_end, rec);
			it->sel_pos = it->run_stop;
			continue;
		}
		int r = fetch(it, it->main_fd, it->main_name, off, it->meta->main_len,
		              it->cand_main, rec);
		if (r < 0)
			return r;
		it->sel_pos = off + (r ? 1 : rec->len);
		if (r)
			continue;
		if (rec->ts > it->runmax)
			it->runmax = rec->ts;
		if (in_range(it, rec))
			return 0;
	}
}

/* Reads the next main record of the range into `*rec`: 0, 1 when the main
 * file holds no more of the range, or an error. */
static int next_main(tdm_iter *it, rec_view *rec)
{
	if (it->sel)
		return next_main_selected(it, rec);
	for (;;) {
		if (!it->in_run) {
			uint64_t start, stop;
			int64_t key;
			int r = index_walk_next(&it->walk, &start, &stop, &key);
			if (r)
				return r;
			if (key > it->runmax)
				it->runmax = key;
			scan_seek(&it->scan, start, stop);
			it->in_run = 1;
		}
		uint64_t off;
		int r = scan_next(&it->scan, rec, &off);
		if (r < 0)
			return r;
		if (r == 1) {
			it->in_run = 0;
			continue;
		}
		if (rec->ts > it->runmax)
			it->runmax = rec->ts;
		if (in_range(it, rec))
			return 0;
	}
}

static void hand_out(tdm_iter *it, mg_item item, const tdm_event **ev)
{
	mg_item_free(&it->current);
	it->current = item;
	const rec_view *v = &item.v;
	it->ev.ts = v->ts;
	it->ev.id = v->id;
	it->ev.seq = v->seq;
	it->ev.n_labels = rec_labels(it->labels, v->labels, v->labels_len);
	it->ev.labels = it->labels;
	it->ev.payload = v->payload;
	it->ev.payload_len = v->payload_len;
	*ev = &it->ev;
}

/* Storage order: main records as they lie in the file, then recon ones. */
static int next_storage_order(tdm_iter *it, const tdm_event **ev)
{
	rec_view rec;
	int r = it->main_done ? 1 : next_main(it, &rec);
	if (r < 0)
		return r;
	mg_item item;
	if (r == 0) {
		if ((r = mg_item_copy(&item, &rec)))
			return r;
		hand_out(it, item, ev);
		return 0;
	}
	it->main_done = 1;
	if (it->recon_pos == it->n_recon)
		return 1;
	hand_out(it, it->recon[it->recon_pos++], ev);
	return 0;
}

/* 0 with an event, 1 when the shard is exhausted, or an error. */
static int shard_next(tdm_iter *it, const tdm_event **ev)
{
	if (it->flags & TDM_READ_STORAGE_ORDER)
		return next_storage_order(it, ev);
	if (it->meta->seal_gen && it->n_recon == 0 && !mg_main_top(&it->held)) {
		/* A sealed file is in read order: with no recon record to merge,
		 * its records are handed out as they are read, without a copy
		 * (valid until the next call, as any event). */
		rec_view rec;
		int r = it->main_done ? 1 : next_main(it, &rec);
		if (r)
			return r;
		hand_out(it, (mg_item){NULL, rec}, ev);
		return 0;
	}
	for (;;) {
		const mg_item *recon =
			it->recon_pos < it->n_recon ? &it->recon[it->recon_pos] : NULL;
		switch (mg_choose(mg_main_top(&it->held), recon, unread_bound(it),
		                  it->main_done)) {
		case MG_MAIN:
			hand_out(it, mg_main_pop(&it->held), ev);
			return 0;
		case MG_RECON:
			hand_out(it, it->recon[it->recon_pos++], ev);
			return 0;
		case MG_DONE:
			return 1;
		default:
			break;
		}
		rec_view rec;
		int r = next_main(it, &rec);
		if (r < 0)
			return r;
		if (r == 1) {
			it->main_done = 1;
			continue;
		}
		mg_item item;
		if ((r = mg_item_copy(&item, &rec)) || (r = mg_main_push(&it->held, item)))
			return r;
	}
}

/* ---- the iterator ------------------------------------------------------ */

static int collect_shard(void *ctx, const shard_meta *m)
{
	tdm_iter *it = ctx;
	if (m->min_ts >= it->to || (m->max_ts < it->from && m->recon_max_ts < it->from))
		return 0;
	shard_meta *a = realloc(it->shards, (it->n_shards + 1) * sizeof *a);
	if (!a)
		return tdm_fail(TDM_ENOMEM, "out of memory");
	it->shards = a;
	it->shards[it->n_shards++] = *m;
	return 0;
}

/* Label bitmaps answer a selector when the index has them (an index made
 * before them is rebuilt by the next writer) and every group names at
 * least one condition (an empty group matches records without labels). */
static int bitmaps_usable(int *ok, const tdm_iter *it)
{
	kv_val v;
	*ok = 0;
	if (it->flags & TDM_READ_SCAN)
		return 0;
	for (size_t g = 0; g < it->n_where; g++)
		if (!it->where[g].n_matches)
			return 0;
	int r = kv_get(&v, it->txn, KV_META, META_LABELS, strlen(META_LABELS));
	if (r == TDM_ENOTFOUND)
		return 0;
	*ok = !r;
	return r;
}

int reader_open(tdm_iter **out, tdm_store *s, int64_t from, int64_t to,
                const tdm_read_options *ro)
{
	tdm_iter *it = calloc(1, sizeof *it);
	if (!it)
		return tdm_fail(TDM_ENOMEM, "out of memory");
	it->s = s;
	it->from = from < 0 ? 0 : from;
	it->to = to;
	it->flags = ro ? ro->flags : 0;
	it->main_fd = -1;
	int r = copy_where(it, ro);
	if (!r)
		r = kv_begin(&it->txn, s->kv, 0);
	if (!r && it->n_where)
		r = bitmaps_usable(&it->bitmaps, it);
	if (!r && it->from < it->to) {
		int64_t d = s->opts.shard_duration_ns;
		r = index_meta_each(it->txn, it->from / d, (it->to - 1) / d, collect_shard, it);
	}
	if (r) {
		reader_close(it);
		return r;
	}
	s->open_iters++;
	it->counted = 1;
	*out = it;
	return 0;
}

int reader_next(const tdm_event **ev, tdm_iter *it)
{
	for (;;) {
		if (!it->active) {
			if (it->next_shard == it->n_shards)
				return TDM_ITEROVER;
			int r = shard_open(it, &it->shards[it->next_shard++]);
			if (r)
				return r;
		}
		int r = shard_next(it, ev);
		if (r <= 0)
			return r;
		shard_close(it);
	}
}

uint64_t reader_fallbacks(const tdm_iter *it)
{
	return it->fallbacks;
}

uint64_t reader_damage(const char **first, const tdm_iter *it)
{
	uint64_t n = it->damaged + (it->active ? it->scan.damaged : 0);
	if (first)
		*first = n ? (it->damaged ? it->damage_msg : it->scan.damage_msg) : NULL;
	return n;
}

void reader_close(tdm_iter *it)
{
	if (!it)
		return;
	shard_close(it);
	mg_item_free(&it->current);
	kv_abort(it->txn);
	if (it->counted)
		it->s->open_iters--;
	free(it->shards);
	if (it->where)
		free((void *)it->where[0].matches);
	free(it->where);
	free(it->strings);
	free(it->fbuf);
	free(it);
}
