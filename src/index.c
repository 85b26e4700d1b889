/* index.c - per-shard state rows and the sparse time index in KV. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "error.h"
#include "index.h"
#include "labels.h"
#include "shard.h"

#define META_FIELDS 16
#define META_FIELDS_V2 14 /* rows written before the labels' ends existed */
#define META_FIELDS_V1 12 /* rows written before sealing existed */

void index_meta_init(shard_meta *m, int64_t shard)
{
	memset(m, 0, sizeof *m);
	m->shard = shard;
	m->main_len = SHARD_HEADER;
	m->labels_main_end = SHARD_HEADER;
	m->max_ts = -1;
	m->recon_max_ts = -1;
	m->min_ts = INT64_MAX;
	m->block_off = SHARD_HEADER;
	m->block_key = -1;
	m->block_min = INT64_MAX;
}

static void meta_encode(uint8_t *out, const shard_meta *m)
{
	const uint64_t f[META_FIELDS] = {
		m->main_len, m->recon_len, m->main_count, m->recon_count,
		(uint64_t)m->max_ts, (uint64_t)m->min_ts, m->max_seq, m->block_off,
		(uint64_t)m->block_key, (uint64_t)m->block_min, m->index_entries,
		(uint64_t)m->recon_max_ts, m->seal_gen, m->sealed_raw,
		m->labels_main_end, m->labels_recon_end};
	for (int i = 0; i < META_FIELDS; i++)
		put_le(out + 8 * i, f[i], 8);
}

static void meta_decode(shard_meta *m, int64_t shard, const uint8_t *p,
                        size_t len)
{
	m->shard = shard;
	m->main_len = get_le(p, 8);
	m->recon_len = get_le(p + 8, 8);
	m->main_count = get_le(p + 16, 8);
	m->recon_count = get_le(p + 24, 8);
	m->max_ts = (int64_t)get_le(p + 32, 8);
	m->min_ts = (int64_t)get_le(p + 40, 8);
	m->max_seq = get_le(p + 48, 8);
	m->block_off = get_le(p + 56, 8);
	m->block_key = (int64_t)get_le(p + 64, 8);
	m->block_min = (int64_t)get_le(p + 72, 8);
	m->index_entries = get_le(p + 80, 8);
	m->recon_max_ts = (int64_t)get_le(p + 88, 8);
	m->seal_gen = len >= 8 * META_FIELDS_V2 ? get_le(p + 96, 8) : 0;
	m->sealed_raw = len >= 8 * META_FIELDS_V2 ? get_le(p + 104, 8) : 0;
	/* Older rows were written with every bitmap up to date. */
	m->labels_main_end = len >= 8 * META_FIELDS ? get_le(p + 112, 8) : m->main_len;
	m->labels_recon_end = len >= 8 * META_FIELDS ? get_le(p + 120, 8) : m->recon_len;
}

/* What lies past a labels end is in the chunk that holds the file's end
 * (labels.c, L3): a writer loads only that chunk's bitmaps. */
static int labels_end_sound(uint64_t labels_end, uint64_t len)
{
	return labels_end == len || labels_end >> LBL_CHUNK_BITS == len >> LBL_CHUNK_BITS;
}

static int meta_len_ok(size_t len)
{
	return len == 8 * META_FIELDS || len == 8 * META_FIELDS_V2 ||
	       len == 8 * META_FIELDS_V1;
}

static int meta_sound(const shard_meta *m)
{
	return m->main_len >= SHARD_HEADER && m->block_off >= SHARD_HEADER &&
	       m->block_off <= m->main_len && m->max_ts >= -1 && m->recon_max_ts >= -1 &&
	       (m->recon_len == 0 || m->recon_len >= SHARD_HEADER) &&
	       m->labels_main_end >= SHARD_HEADER && m->labels_main_end <= m->main_len &&
	       (m->recon_len ? m->labels_recon_end >= SHARD_HEADER : m->labels_recon_end == 0) &&
	       m->labels_recon_end <= m->recon_len &&
	       labels_end_sound(m->labels_main_end, m->main_len) &&
	       labels_end_sound(m->labels_recon_end, m->recon_len);
}

int index_meta_get(shard_meta *out, kv_txn *txn, int64_t shard)
{
	uint8_t key[8];
	put_be64(key, (uint64_t)shard);
	kv_val v;
	int r = kv_get(&v, txn, KV_SHARDS, key, sizeof key);
	if (r)
		return r;
	if (!meta_len_ok(v.len))
		return tdm_fail(TDM_ECORRUPT, "index: shard %lld: state row of %zu bytes",
		                (long long)shard, v.len);
	meta_decode(out, shard, v.data, v.len);
	if (!meta_sound(out))
		return tdm_fail(TDM_ECORRUPT, "index: shard %lld: state row is inconsistent",
		                (long long)shard);
	return 0;
}

int index_meta_put(kv_txn *txn, const shard_meta *m)
{
	uint8_t key[8], val[8 * META_FIELDS];
	put_be64(key, (uint64_t)m->shard);
	meta_encode(val, m);
	return kv_put(txn, KV_SHARDS, key, sizeof key, val, sizeof val);
}

int index_meta_del(kv_txn *txn, int64_t shard)
{
	uint8_t key[8];
	put_be64(key, (uint64_t)shard);
	return kv_del_prefix(txn, KV_SHARDS, key, sizeof key);
}

int index_meta_each(kv_txn *txn, int64_t lo, int64_t hi,
                    int (*fn)(void *ctx, const shard_meta *m), void *ctx)
{
	kv_cursor *c;
	int r = kv_cursor_open(&c, txn, KV_SHARDS);
	if (r)
		return r;
	uint8_t start[8];
	put_be64(start, (uint64_t)(lo < 0 ? 0 : lo));
	kv_val k = {start, sizeof start}, v;
	for (r = kv_cursor_get(c, &k, &v, KV_SEEK); r == 0;
	     r = kv_cursor_get(c, &k, &v, KV_NEXT)) {
		if (k.len != 8 || !meta_len_ok(v.len)) {
			r = tdm_fail(TDM_ECORRUPT, "index: malformed shard state row");
			break;
		}
		int64_t shard = (int64_t)get_be64(k.data);
		if (shard > hi)
			break;
		shard_meta m;
		meta_decode(&m, shard, v.data, v.len);
		if (!meta_sound(&m)) {
			r = tdm_fail(TDM_ECORRUPT, "index: shard %lld: state row is inconsistent",
			             (long long)shard);
			break;
		}
		if ((r = fn(ctx, &m)))
			break;
	}
	kv_cursor_close(c);
	return r == TDM_ENOTFOUND ? 0 : r;
}

static void entry_key(uint8_t *out, int64_t shard, int64_t key, uint64_t off)
{
	put_be64(out, (uint64_t)shard);
	put_be64(out + 8, (uint64_t)(key + 1));
	put_be64(out + 16, off);
}

static int entry_put(kv_txn *txn, int64_t shard, int64_t key, uint64_t off,
                     int64_t min)
{
	uint8_t k[24], v[8];
	entry_key(k, shard, key, off);
	put_le(v, (uint64_t)min, 8);
	return kv_put(txn, KV_INDEX, k, sizeof k, v, sizeof v);
}

int index_put_txn(void *txn, int64_t shard, const index_entry *e)
{
	return entry_put(txn, shard, e->key, e->off, e->min);
}

int index_note_main(shard_meta *m, uint64_t off, uint32_t len, int64_t ts,
                    uint32_t interval, index_put_fn put, void *ctx)
{
	int r;
	if (m->index_entries == 0) {
		index_entry first = {m->block_key, m->block_off, INT64_MAX};
		if ((r = put(ctx, m->shard, &first)))
			return r;
		m->index_entries = 1;
	} else if (off - m->block_off >= interval) {
		index_entry closed = {m->block_key, m->block_off, m->block_min};
		index_entry opened = {m->max_ts, off, INT64_MAX};
		if ((r = put(ctx, m->shard, &closed)) || (r = put(ctx, m->shard, &opened)))
			return r;
		m->block_off = off;
		m->block_key = m->max_ts;
		m->block_min = INT64_MAX;
		m->index_entries++;
	}
	if (ts < m->block_min)
		m->block_min = ts;
	if (ts > m->max_ts)
		m->max_ts = ts;
	if (ts < m->min_ts)
		m->min_ts = ts;
	m->main_len = off + len;
	m->main_count++;
	return 0;
}

void index_note_recon(shard_meta *m, uint64_t off, uint32_t len, int64_t ts)
{
	if (ts < m->min_ts)
		m->min_ts = ts;
	if (ts > m->recon_max_ts)
		m->recon_max_ts = ts;
	m->recon_len = off + len;
	m->recon_count++;
}

static int decode_entry(index_entry *e, int64_t *shard, const kv_val *k,
                        const kv_val *v)
{
	if (k->len != 24 || v->len != 8)
		return tdm_fail(TDM_ECORRUPT, "index: malformed index entry");
	*shard = (int64_t)get_be64(k->data);
	e->key = (int64_t)(get_be64((const uint8_t *)k->data + 8) - 1);
	e->off = get_be64((const uint8_t *)k->data + 16);
	e->min = (int64_t)get_le(v->data, 8);
	return 0;
}

int index_walk_open(index_walk *w, kv_txn *txn, const shard_meta *m,
                    uint64_t end, int64_t from, int64_t to, int64_t grace)
{
	memset(w, 0, sizeof *w);
	if (from < 0)
		from = 0; /* every ts is >= 0; entry keys start at -1 */
	w->meta = m;
	w->end = end;
	w->from = from;
	w->to = to;
	w->grace = grace;
	if (m->index_entries == 0 || end <= SHARD_HEADER) {
		w->done = 1;
		return 0;
	}
	int r = kv_cursor_open(&w->cur, txn, KV_INDEX);
	if (r)
		return r;

	/* The last entry with key < from: every record before its offset has
	 * ts <= key < from. The shard's first entry has key -1. */
	uint8_t target[24];
	entry_key(target, m->shard, from, 0);
	kv_val k = {target, sizeof target}, v;
	r = kv_cursor_get(w->cur, &k, &v, KV_SEEK);
	r = kv_cursor_get(w->cur, &k, &v, r == TDM_ENOTFOUND ? KV_LAST : KV_PREV);
	index_entry e;
	int64_t shard;
	if (r == 0 && (r = decode_entry(&e, &shard, &k, &v)) == 0 &&
	    (shard != m->shard || e.key >= from))
		r = tdm_fail(TDM_ECORRUPT, "index: shard %lld has no first entry",
		             (long long)m->shard);
	if (r) {
		if (r == TDM_ENOTFOUND)
			r = tdm_fail(TDM_ECORRUPT, "index: shard %lld has no entries",
			             (long long)m->shard);
		index_walk_close(w);
		return r;
	}
	w->key = e.key;
	w->off = e.off;
	w->min = e.off == m->block_off ? m->block_min : e.min;
	return 0;
}

void index_walk_close(index_walk *w)
{
	kv_cursor_close(w->cur);
	w->cur = NULL;
	w->done = 1;
}

/* key - grace >= to, without overflow: no record from here on is < to. */
static int past_range(int64_t key, int64_t grace, int64_t to)
{
	return to <= INT64_MAX - grace && key >= to + grace;
}

/* Moves to the entry after the current one; `*next_off` gets where the
 * current block ends. */
static int walk_advance(index_walk *w, uint64_t *next_off)
{
	kv_val k, v;
	index_entry e;
	int64_t shard;
	int r = kv_cursor_get(w->cur, &k, &v, KV_NEXT);
	if (r == 0 && (r = decode_entry(&e, &shard, &k, &v)) != 0)
		return r;
	if (r == 0 && shard == w->meta->shard && e.off < w->end) {
		*next_off = e.off;
		w->key = e.key;
		w->off = e.off;
		w->min = e.off == w->meta->block_off ? w->meta->block_min : e.min;
		return 0;
	}
	if (r != 0 && r != TDM_ENOTFOUND)
		return r;
	*next_off = w->off = w->end;
	return 0;
}

int index_walk_next(index_walk *w, uint64_t *start, uint64_t *stop,
                    int64_t *key)
{
	int have = 0;
	while (!w->done) {
		if (w->off >= w->end || past_range(w->key, w->grace, w->to)) {
			w->done = 1;
			break;
		}
		index_entry cur = {w->key, w->off, w->min};
		uint64_t next_off;
		int r = walk_advance(w, &next_off);
		if (r)
			return r;
		if (cur.min >= w->to) {
			/* Nothing in this block is early enough: it ends a run. */
			if (have)
				return 0;
			continue;
		}
		if (!have) {
			*start = cur.off;
			*key = cur.key;
			have = 1;
		}
		*stop = next_off; /* blocks tile the file: the run grows */
	}
	return have ? 0 : 1;
}

int index_walk_blocks(index_entry **out, size_t *n, kv_txn *txn,
                      const shard_meta *m, uint64_t end, int64_t from,
                      int64_t to, int64_t grace)
{
	uint64_t stop;
	return index_walk_blocks_to(out, n, &stop, txn, m, end, from, to, grace);
}

int index_walk_blocks_to(index_entry **out, size_t *n, uint64_t *stop,
                         kv_txn *txn, const shard_meta *m, uint64_t end,
                         int64_t from, int64_t to, int64_t grace)
{
	index_walk w;
	*out = NULL;
	*n = 0;
	int r = index_walk_open(&w, txn, m, end, from, to, grace);
	size_t cap = 0;
	while (!r && !w.done && w.off < w.end && !past_range(w.key, grace, to)) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			index_entry *a = realloc(*out, cap * sizeof *a);
			if (!a) {
				r = tdm_fail(TDM_ENOMEM, "out of memory");
				break;
			}
			*out = a;
		}
		(*out)[(*n)++] = (index_entry){w.key, w.off, w.min};
		uint64_t next_off;
		r = walk_advance(&w, &next_off);
	}
	*stop = w.off < w.end ? w.off : w.end;
	index_walk_close(&w);
	if (r) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return r;
}

int index_entries_each(kv_txn *txn, int64_t shard,
                       int (*fn)(void *ctx, const index_entry *e), void *ctx)
{
	kv_cursor *c;
	int r = kv_cursor_open(&c, txn, KV_INDEX);
	if (r)
		return r;
	uint8_t target[24];
	entry_key(target, shard, -1, 0);
	kv_val k = {target, sizeof target}, v;
	for (r = kv_cursor_get(c, &k, &v, KV_SEEK); r == 0;
	     r = kv_cursor_get(c, &k, &v, KV_NEXT)) {
		index_entry e;
		int64_t s = 0;
		if ((r = decode_entry(&e, &s, &k, &v)) || s != shard)
			break;
		if ((r = fn(ctx, &e)))
			break;
	}
	kv_cursor_close(c);
	return r == TDM_ENOTFOUND ? 0 : r;
}

int index_entries_del(kv_txn *txn, int64_t shard)
{
	uint8_t prefix[8];
	put_be64(prefix, (uint64_t)shard);
	int r = kv_del_prefix(txn, KV_INDEX, prefix, sizeof prefix);
	/* The label bitmaps index the same bytes: they go with the entries, so
	 * that every caller (recovery, sealing, retention) drops both. */
	return r ? r : lbl_del(txn, shard);
}
