/* replica.c - digest queries for replica repair: a node's digest over a
 * time range, and the events of one leaf read through its spans.
 *
 * A node wholly inside [from, to) answers from its stored row; one wholly
 * outside is empty; one that straddles an edge is the sum of its children,
 * down to the (at most two per shard) leaves at the edges, whose events are
 * read. So a clipped digest costs a few rows and two leaf reads. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "error.h"
#include "index.h"
#include "io.h"
#include "replica.h"
#include "sealed.h"

/* A shard file kept open from one leaf to the next. */
typedef struct open_file {
	int64_t shard;
	shard_kind kind;
	uint64_t gen;
	int fd;
	uint64_t size;
} open_file;

#define READER_FILES 4

/* One read transaction and the files last read, for the leaves of one
 * request: a request for many leaves of a shard opens its files once. */
struct tdm_leaf_reader {
	tdm_store *s;
	kv_txn *txn;
	open_file f[READER_FILES];
	size_t n, next; /* entries in use; the one replaced next */
};

int replica_reader_open(tdm_leaf_reader **out, tdm_store *s)
{
	tdm_leaf_reader *rd = calloc(1, sizeof *rd);
	if (!rd)
		return tdm_fail(TDM_ENOMEM, "out of memory");
	rd->s = s;
	int r = kv_begin(&rd->txn, s->kv, 0);
	if (r) {
		free(rd);
		return r;
	}
	*out = rd;
	return 0;
}

static void reader_close_files(tdm_leaf_reader *rd)
{
	for (size_t i = 0; i < rd->n; i++)
		io_close(rd->f[i].fd);
	rd->n = rd->next = 0;
}

void replica_reader_close(tdm_leaf_reader *rd)
{
	if (!rd)
		return;
	reader_close_files(rd);
	kv_abort(rd->txn);
	free(rd);
}

/* The shard file `name`, opened (and its header checked) unless the
 * reader has it open already. A bad header is no reason not to read its
 * records. */
static int reader_file(int *fd, uint64_t *size, tdm_leaf_reader *rd, int64_t shard,
                       shard_kind kind, uint64_t gen, const char *name)
{
	for (size_t i = 0; i < rd->n; i++) {
		open_file *f = &rd->f[i];
		if (f->shard == shard && f->kind == kind && f->gen == gen) {
			*fd = f->fd;
			*size = f->size;
			return 0;
		}
	}
	char path[4200];
	int r = store_path(path, sizeof path, rd->s, name);
	if (r)
		return r;
	shard_id id = store_shard_id(rd->s, shard);
	id.gen = gen;
	r = shard_file_open(fd, size, path, name, kind, &id, SHARD_READ_ANY);
	if (r && r != SHARD_BAD_HEADER)
		return r;
	open_file *f;
	if (rd->n < READER_FILES) {
		f = &rd->f[rd->n++];
	} else {
		f = &rd->f[rd->next];
		rd->next = (rd->next + 1) % READER_FILES;
		io_close(f->fd);
	}
	*f = (open_file){shard, kind, gen, *fd, *size};
	return 0;
}

typedef struct leaf_read {
	tdm_leaf_reader *rd;
	tdm_store *s;
	const shard_meta *m;
	int64_t lo, hi; /* the leaf's range clipped to the request */
	tdm_event_fn fn;
	void *ctx;
} leaf_read;

static int read_spans(leaf_read *lr, const digest_leaf *l, int kind)
{
	if (!l->n[kind])
		return 0;
	shard_kind sk = kind == DIGEST_MAIN ? SHARD_MAIN : SHARD_RECON;
	uint64_t committed = sk == SHARD_MAIN ? lr->m->main_len : lr->m->recon_len;
	/* A sealed shard's main records are in its sealed file, by block. */
	uint64_t gen = lr->m->seal_gen;
	int sealed = sk == SHARD_MAIN && gen;
	if (sealed)
		sk = SHARD_SEALED;
	char name[80];
	shard_relname_gen(name, sizeof name, lr->m->shard, sk, gen);
	uint64_t size;
	int fd;
	int r = reader_file(&fd, &size, lr->rd, lr->m->shard, sk, gen, name);
	if (r)
		return r;
	if (committed > size)
		committed = size;
	shard_scan sc;
	int started = 0;
	tdm_label labels[TDM_MAX_LABELS];
	for (uint32_t i = 0; i < l->n[kind] && !r; i++) {
		const digest_span *sp = &l->span[kind][i];
		if (sp->off < SHARD_HEADER || sp->off >= committed)
			continue; /* a span the file no longer holds: verify says so */
		uint64_t end = sp->len > committed - sp->off ? committed : sp->off + sp->len;
		if (!started) {
			store_scan_init(&sc, lr->s, lr->m->shard, fd, name, sp->off, committed,
			                (size_t)(end - sp->off));
			started = 1;
			if (sealed && (r = sealed_scan_attach(&sc, size)))
				break;
		}
		/* A sealed block is read whole: its records all carry the block's
		 * offset, and the span ends past the last such offset. */
		scan_seek(&sc, sp->off, sealed ? committed : end);
		rec_view rec;
		uint64_t off;
		int stop = 0;
		while (!stop && (r = scan_next(&sc, &rec, &off)) == 0) {
			if (off >= end)
				break;
			if (rec.ts < lr->lo || rec.ts >= lr->hi)
				continue;
			tdm_event ev = {.ts = rec.ts, .id = rec.id, .seq = rec.seq,
			                .labels = labels, .payload = rec.payload,
			                .payload_len = rec.payload_len};
			ev.n_labels = rec_labels(labels, rec.labels, rec.labels_len);
			stop = lr->fn(lr->ctx, &ev, rec_fingerprint(rec.bytes));
		}
		r = stop ? stop : r == 1 ? 0 : r;
	}
	if (started)
		scan_free(&sc);
	return r;
}

static int leaf_each(tdm_leaf_reader *rd, const shard_meta *m, uint32_t leaf,
                     int64_t from, int64_t to, tdm_event_fn fn, void *ctx)
{
	tdm_store *s = rd->s;
	leaf_read lr = {rd, s, m, 0, 0, fn, ctx};
	digest_node_range(&lr.lo, &lr.hi, s->opts.shard_duration_ns, m->shard,
	                  DIGEST_LEAF_LEVEL, leaf);
	if (lr.lo < from)
		lr.lo = from;
	if (lr.hi > to)
		lr.hi = to;
	if (lr.lo >= lr.hi)
		return 0;
	digest_leaf l;
	int r = digest_leaf_get(&l, rd->txn, m->shard, leaf);
	if (!r)
		r = read_spans(&lr, &l, DIGEST_MAIN);
	if (!r)
		r = read_spans(&lr, &l, DIGEST_RECON);
	return r;
}

static int add_event(void *ctx, const tdm_event *ev, uint64_t fp)
{
	(void)ev;
	tdm_digest *d = ctx;
	d->count++;
	d->sum += fp;
	return 0;
}

static int clipped(tdm_digest *out, tdm_store *s, kv_txn *txn, const shard_meta *m,
                   unsigned level, uint32_t node, int64_t from, int64_t to)
{
	int64_t lo, hi;
	digest_node_range(&lo, &hi, s->opts.shard_duration_ns, m->shard, level, node);
	*out = (tdm_digest){0, 0};
	if (hi <= from || lo >= to || lo >= hi)
		return 0;
	if (from <= lo && hi <= to)
		return digest_get(out, txn, m->shard, level, node);
	if (level == DIGEST_LEAF_LEVEL) {
		tdm_leaf_reader rd = {.s = s, .txn = txn};
		int r = leaf_each(&rd, m, node, from, to, add_event, out);
		reader_close_files(&rd);
		return r;
	}
	for (uint32_t c = 0; c < DIGEST_FANOUT; c++) {
		tdm_digest d;
		int r = clipped(&d, s, txn, m, level + 1, node * DIGEST_FANOUT + c, from, to);
		if (r)
			return r;
		out->count += d.count;
		out->sum += d.sum;
	}
	return 0;
}

typedef struct shard_list {
	tdm_store *s;
	kv_txn *txn;
	int64_t from, to;
	tdm_shard_digest *a;
	size_t n, cap;
} shard_list;

static int add_shard(void *ctx, const shard_meta *m)
{
	shard_list *l = ctx;
	tdm_digest d;
	int r = clipped(&d, l->s, l->txn, m, 0, 0, l->from, l->to);
	if (r || !d.count)
		return r;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		tdm_shard_digest *a = realloc(l->a, cap * sizeof *a);
		if (!a)
			return tdm_fail(TDM_ENOMEM, "out of memory");
		l->a = a;
		l->cap = cap;
	}
	l->a[l->n++] = (tdm_shard_digest){m->shard, d};
	return 0;
}

int replica_shards(tdm_shard_digest **out, size_t *n, tdm_store *s, int64_t from,
                   int64_t to)
{
	int64_t dur = s->opts.shard_duration_ns;
	shard_list l = {s, NULL, from, to, NULL, 0, 0};
	*out = NULL;
	*n = 0;
	if (from < 0)
		from = l.from = 0;
	if (from >= to)
		return 0;
	int r = kv_begin(&l.txn, s->kv, 0);
	if (r)
		return r;
	r = index_meta_each(l.txn, from / dur, (to - 1) / dur, add_shard, &l);
	kv_abort(l.txn);
	if (r) {
		free(l.a);
		return r;
	}
	*out = l.a;
	*n = l.n;
	return 0;
}

/* Runs fn on a shard's committed state in one read transaction; a shard
 * the store does not have is empty (fn is not called, 0). */
typedef int (*shard_fn)(tdm_store *s, kv_txn *txn, const shard_meta *m, void *ctx);

static int with_shard(tdm_store *s, int64_t shard, shard_fn fn, void *ctx)
{
	kv_txn *txn;
	int r = kv_begin(&txn, s->kv, 0);
	if (r)
		return r;
	shard_meta m;
	r = index_meta_get(&m, txn, shard);
	if (r == TDM_ENOTFOUND)
		r = 0;
	else if (!r)
		r = fn(s, txn, &m, ctx);
	kv_abort(txn);
	return r;
}

typedef struct children_req {
	tdm_digest *out;
	unsigned level;
	uint32_t node;
	int64_t from, to;
} children_req;

static int children_of(tdm_store *s, kv_txn *txn, const shard_meta *m, void *ctx)
{
	children_req *q = ctx;
	int64_t lo, hi;
	digest_node_range(&lo, &hi, s->opts.shard_duration_ns, m->shard, q->level, q->node);
	if (q->from <= lo && hi <= q->to) /* no child is clipped */
		return digest_children_get(q->out, txn, m->shard, q->level, q->node);
	int r = 0;
	for (uint32_t c = 0; c < DIGEST_FANOUT && !r; c++)
		r = clipped(&q->out[c], s, txn, m, q->level + 1, q->node * DIGEST_FANOUT + c,
		            q->from, q->to);
	return r;
}

int replica_children(tdm_digest *out, tdm_store *s, int64_t shard, unsigned level,
                     uint32_t node, int64_t from, int64_t to)
{
	memset(out, 0, DIGEST_FANOUT * sizeof *out);
	children_req q = {out, level, node, from, to};
	return with_shard(s, shard, children_of, &q);
}

int replica_reader_events(tdm_leaf_reader *rd, int64_t shard, uint32_t leaf,
                          int64_t from, int64_t to, tdm_event_fn fn, void *ctx)
{
	shard_meta m;
	int r = index_meta_get(&m, rd->txn, shard);
	if (r == TDM_ENOTFOUND) /* a shard the store does not have is empty */
		return 0;
	return r ? r : leaf_each(rd, &m, leaf, from, to, fn, ctx);
}

int replica_leaf_events(tdm_store *s, int64_t shard, uint32_t leaf, int64_t from,
                        int64_t to, tdm_event_fn fn, void *ctx)
{
	tdm_leaf_reader *rd = NULL;
	int r = replica_reader_open(&rd, s);
	if (!r) {
		r = replica_reader_events(rd, shard, leaf, from, to, fn, ctx);
		replica_reader_close(rd);
	}
	return r;
}
