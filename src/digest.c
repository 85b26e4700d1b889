/* digest.c - replica digests in KV_DIGEST (digest.h). */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "digest.h"
#include "error.h"

#define KEY_LEN 13
#define VARINT_MAX 10
/* count, sum, and two span lists of (gap, len) pairs */
#define LEAF_VALUE_MAX (VARINT_MAX + 8 + 2 * (VARINT_MAX + DIGEST_MAX_SPANS * 2 * VARINT_MAX))

int64_t digest_leaf_width(int64_t duration)
{
	return duration / DIGEST_LEAVES + (duration % DIGEST_LEAVES != 0);
}

uint32_t digest_leaf_of(int64_t duration, int64_t shard, int64_t ts)
{
	return (uint32_t)((ts - shard * duration) / digest_leaf_width(duration));
}

void digest_node_range(int64_t *lo, int64_t *hi, int64_t duration,
                       int64_t shard, unsigned level, uint32_t node)
{
	/* The last shard may end past INT64_MAX: it ends there instead. */
	int64_t start = shard * duration;
	int64_t end = duration > INT64_MAX - start ? INT64_MAX : start + duration;
	int64_t width = digest_leaf_width(duration);
	unsigned shift = 4 * (DIGEST_LEAF_LEVEL - level);
	int64_t first = (int64_t)node << shift, leaves = (int64_t)1 << shift;
	/* Leaves past the shard's end are empty: clamp, never overflow. */
	*lo = first >= (end - start + width - 1) / width ? end : start + first * width;
	*hi = first + leaves >= (end - start + width - 1) / width
	          ? end
	          : start + (first + leaves) * width;
}

/* ---- rows ------------------------------------------------------------ */

static void key_encode(uint8_t *k, int64_t shard, unsigned level, uint32_t node)
{
	put_be64(k, (uint64_t)shard);
	k[8] = (uint8_t)level;
	k[9] = (uint8_t)(node >> 24);
	k[10] = (uint8_t)(node >> 16);
	k[11] = (uint8_t)(node >> 8);
	k[12] = (uint8_t)node;
}

static size_t varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* 0 with the value, or -1 when the bytes end or run past 64 bits. */
static int varint_get(uint64_t *v, const uint8_t **p, const uint8_t *end)
{
	uint64_t x = 0;
	for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		if (shift == 63 && b > 1)
			return -1;
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

/* A row's head: its count and sum. */
static size_t head_encode(uint8_t *out, const tdm_digest *d)
{
	size_t n = varint_put(out, d->count);
	put_le(out + n, d->sum, 8);
	return n + 8;
}

static size_t leaf_encode(uint8_t *out, const digest_leaf *l)
{
	size_t n = head_encode(out, &l->d);
	for (int k = 0; k < 2; k++) {
		n += varint_put(out + n, l->n[k]);
		uint64_t prev_end = 0;
		for (uint32_t i = 0; i < l->n[k]; i++) {
			n += varint_put(out + n, l->span[k][i].off - prev_end);
			n += varint_put(out + n, l->span[k][i].len);
			prev_end = l->span[k][i].off + l->span[k][i].len;
		}
	}
	return n;
}

static int row_corrupt(int64_t shard, unsigned level, uint32_t node)
{
	return tdm_fail(TDM_ECORRUPT, "index: shard %lld: digest row %u/%u is malformed",
	                (long long)shard, level, node);
}

/* A row's head: its count and sum. */
static int head_decode(tdm_digest *d, const uint8_t **p, const uint8_t *end)
{
	if (varint_get(&d->count, p, end) || end - *p < 8)
		return -1;
	d->sum = get_le(*p, 8);
	*p += 8;
	return 0;
}

static int leaf_decode(digest_leaf *l, const kv_val *v, int is_leaf)
{
	const uint8_t *p = v->data, *end = p + v->len;
	memset(l, 0, sizeof *l);
	if (head_decode(&l->d, &p, end))
		return -1;
	if (!is_leaf)
		return p == end ? 0 : -1;
	for (int k = 0; k < 2; k++) {
		uint64_t n, prev_end = 0;
		if (varint_get(&n, &p, end) || n > DIGEST_MAX_SPANS)
			return -1;
		for (uint32_t i = 0; i < n; i++) {
			uint64_t gap, len;
			if (varint_get(&gap, &p, end) || varint_get(&len, &p, end) || len == 0 ||
			    gap > UINT64_MAX - prev_end || len > UINT64_MAX - prev_end - gap)
				return -1;
			l->span[k][i] = (digest_span){prev_end + gap, len};
			prev_end += gap + len;
		}
		l->n[k] = (uint32_t)n;
	}
	return p == end ? 0 : -1;
}

/* A row's digest alone. A leaf row's spans are not decoded: a tree walk
 * reads 16 children per node and needs only their digests (decoding the
 * spans was most of its CPU time); they are checked where they are used
 * (row_get, digest_check). */
static int digest_decode(tdm_digest *d, const kv_val *v, int is_leaf)
{
	const uint8_t *p = v->data, *end = p + v->len;
	if (head_decode(d, &p, end))
		return -1;
	return is_leaf || p == end ? 0 : -1;
}

static int row_get(digest_leaf *out, kv_txn *txn, int64_t shard, unsigned level,
                   uint32_t node)
{
	uint8_t key[KEY_LEN];
	key_encode(key, shard, level, node);
	kv_val v;
	int r = kv_get(&v, txn, KV_DIGEST, key, sizeof key);
	if (r == TDM_ENOTFOUND) {
		memset(out, 0, sizeof *out);
		return 0;
	}
	if (r)
		return r;
	if (leaf_decode(out, &v, level == DIGEST_LEAF_LEVEL))
		return row_corrupt(shard, level, node);
	return 0;
}

int digest_get(tdm_digest *out, kv_txn *txn, int64_t shard, unsigned level,
               uint32_t node)
{
	digest_leaf l;
	int r = row_get(&l, txn, shard, level, node);
	if (!r)
		*out = l.d;
	return r;
}

int digest_children_get(tdm_digest out[DIGEST_FANOUT], kv_txn *txn, int64_t shard,
                        unsigned level, uint32_t parent)
{
	/* The children's keys are adjacent: one seek and a walk, not 16 gets. */
	memset(out, 0, DIGEST_FANOUT * sizeof *out);
	uint32_t first = parent * DIGEST_FANOUT;
	uint8_t key[KEY_LEN], end[KEY_LEN];
	key_encode(key, shard, level + 1, first);
	key_encode(end, shard, level + 1, first + DIGEST_FANOUT - 1);
	kv_cursor *c;
	int r = kv_cursor_open(&c, txn, KV_DIGEST);
	if (r)
		return r;
	kv_val k = {key, sizeof key}, v;
	for (r = kv_cursor_get(c, &k, &v, KV_SEEK); !r; r = kv_cursor_get(c, &k, &v, KV_NEXT)) {
		if (k.len != KEY_LEN || memcmp(k.data, end, KEY_LEN) > 0)
			break;
		const uint8_t *kb = k.data;
		uint32_t node = (uint32_t)kb[9] << 24 | (uint32_t)kb[10] << 16 |
		                (uint32_t)kb[11] << 8 | kb[12];
		if (digest_decode(&out[node - first], &v, level + 1 == DIGEST_LEAF_LEVEL)) {
			r = row_corrupt(shard, level + 1, node);
			break;
		}
	}
	kv_cursor_close(c);
	return r == TDM_ENOTFOUND ? 0 : r;
}

int digest_leaf_get(digest_leaf *out, kv_txn *txn, int64_t shard, uint32_t leaf)
{
	return row_get(out, txn, shard, DIGEST_LEAF_LEVEL, leaf);
}

int digest_del_shard(kv_txn *txn, int64_t shard)
{
	uint8_t prefix[8];
	put_be64(prefix, (uint64_t)shard);
	return kv_del_prefix(txn, KV_DIGEST, prefix, sizeof prefix);
}

/* ---- spans ----------------------------------------------------------- */

/* Merges the two neighbours with the smallest gap until `max` remain. */
static void spans_coarsen(digest_span *s, uint32_t *n, uint32_t max)
{
	while (*n > max) {
		uint32_t best = 0;
		uint64_t best_gap = UINT64_MAX;
		for (uint32_t i = 0; i + 1 < *n; i++) {
			uint64_t gap = s[i + 1].off - (s[i].off + s[i].len);
			if (gap < best_gap) {
				best_gap = gap;
				best = i;
			}
		}
		s[best].len = s[best + 1].off + s[best + 1].len - s[best].off;
		memmove(&s[best + 1], &s[best + 2], (*n - best - 2) * sizeof *s);
		(*n)--;
	}
}

/* Appends [off, off+len) after the spans. Offsets never fall in a file;
 * in a sealed file the records of a block share its offset, so a record
 * may start inside the last span, which then grows to hold it. */
static void span_add(digest_span *s, uint32_t *n, uint64_t off, uint64_t len)
{
	if (*n) {
		digest_span *last = &s[*n - 1];
		uint64_t end = last->off + last->len;
		if (off >= last->off && off <= end + DIGEST_SPAN_GAP) {
			if (off + len > end)
				last->len = off + len - last->off;
			return;
		}
	}
	s[(*n)++] = (digest_span){off, len};
}

/* ---- the accumulator ------------------------------------------------- */

typedef struct acc_leaf {
	int64_t shard;
	uint32_t leaf;
	tdm_digest d;
	uint32_t n[2];
	/* at most 2 * DIGEST_MAX_SPANS before they are coarsened */
	digest_span span[2][2 * DIGEST_MAX_SPANS];
} acc_leaf;

struct digest_acc {
	acc_leaf *v;
	size_t n, cap;
	uint32_t *slot; /* index + 1 into v; 0 is empty */
	size_t n_slots;
	size_t last;    /* consecutive records mostly share a leaf */
};

int digest_acc_new(digest_acc **out)
{
	digest_acc *a = calloc(1, sizeof *a);
	if (!a)
		return tdm_fail(TDM_ENOMEM, "out of memory");
	*out = a;
	return 0;
}

void digest_acc_free(digest_acc *a)
{
	if (!a)
		return;
	free(a->v);
	free(a->slot);
	free(a);
}

void digest_acc_reset(digest_acc *a)
{
	if (a->n)
		memset(a->slot, 0, a->n_slots * sizeof *a->slot);
	a->n = 0;
}

static size_t slot_of(int64_t shard, uint32_t leaf, size_t n_slots)
{
	uint64_t h = ((uint64_t)shard * 0x9e3779b97f4a7c15ull) ^ (leaf * 0xff51afd7ed558ccdull);
	return (size_t)(h ^ (h >> 29)) & (n_slots - 1);
}

static int acc_grow(digest_acc *a)
{
	size_t cap = a->cap ? 2 * a->cap : 64;
	acc_leaf *v = realloc(a->v, cap * sizeof *v);
	uint32_t *slot = calloc(2 * cap, sizeof *slot);
	if (!v || !slot) {
		if (v)
			a->v = v;
		free(slot);
		return tdm_fail(TDM_ENOMEM, "out of memory for digests");
	}
	a->v = v;
	a->cap = cap;
	free(a->slot);
	a->slot = slot;
	a->n_slots = 2 * cap;
	for (size_t i = 0; i < a->n; i++) {
		size_t s = slot_of(v[i].shard, v[i].leaf, a->n_slots);
		while (slot[s])
			s = (s + 1) & (a->n_slots - 1);
		slot[s] = (uint32_t)i + 1;
	}
	return 0;
}

static int acc_find(acc_leaf **out, digest_acc *a, int64_t shard, uint32_t leaf)
{
	if (a->n && a->last < a->n && a->v[a->last].shard == shard &&
	    a->v[a->last].leaf == leaf) {
		*out = &a->v[a->last];
		return 0;
	}
	if (a->n == a->cap) {
		int r = acc_grow(a);
		if (r)
			return r;
	}
	size_t s = slot_of(shard, leaf, a->n_slots);
	while (a->slot[s]) {
		acc_leaf *l = &a->v[a->slot[s] - 1];
		if (l->shard == shard && l->leaf == leaf) {
			a->last = a->slot[s] - 1;
			*out = l;
			return 0;
		}
		s = (s + 1) & (a->n_slots - 1);
	}
	acc_leaf *l = &a->v[a->n];
	l->shard = shard;
	l->leaf = leaf;
	l->d = (tdm_digest){0, 0};
	l->n[0] = l->n[1] = 0;
	a->slot[s] = (uint32_t)++a->n;
	a->last = a->n - 1;
	*out = l;
	return 0;
}

int digest_acc_note(digest_acc *a, int64_t shard, uint32_t leaf, int kind,
                    uint64_t off, uint32_t len, uint64_t fp)
{
	acc_leaf *l;
	int r = acc_find(&l, a, shard, leaf);
	if (r)
		return r;
	l->d.count++;
	l->d.sum += fp;
	span_add(l->span[kind], &l->n[kind], off, len);
	if (l->n[kind] == 2 * DIGEST_MAX_SPANS)
		spans_coarsen(l->span[kind], &l->n[kind], DIGEST_MAX_SPANS);
	return 0;
}

void digest_acc_spans(const digest_span **spans, uint32_t *n, const digest_acc *a,
                      int64_t shard, uint32_t leaf, int kind)
{
	*spans = NULL;
	*n = 0;
	if (!a->n)
		return;
	for (size_t s = slot_of(shard, leaf, a->n_slots); a->slot[s];
	     s = (s + 1) & (a->n_slots - 1)) {
		const acc_leaf *l = &a->v[a->slot[s] - 1];
		if (l->shard == shard && l->leaf == leaf) {
			*spans = l->span[kind];
			*n = l->n[kind];
			return;
		}
	}
}

static int acc_cmp(const void *pa, const void *pb)
{
	const acc_leaf *a = pa, *b = pb;
	if (a->shard != b->shard)
		return a->shard < b->shard ? -1 : 1;
	return a->leaf < b->leaf ? -1 : a->leaf > b->leaf;
}

/* Reads the row at `key` through the cursor: 0 with its value, 1 when
 * there is none. */
static int cursor_row(kv_val *v, kv_cursor *c, const uint8_t *key)
{
	kv_val k = {key, KEY_LEN};
	int r = kv_cursor_get(c, &k, v, KV_SET);
	return r == TDM_ENOTFOUND ? 1 : r;
}

static int add_to_row(kv_cursor *c, int64_t shard, unsigned level, uint32_t node,
                      const tdm_digest *d)
{
	uint8_t key[KEY_LEN], val[VARINT_MAX + 8];
	key_encode(key, shard, level, node);
	tdm_digest have = {0, 0};
	kv_val v;
	int r = cursor_row(&v, c, key);
	if (r < 0)
		return r;
	if (!r && digest_decode(&have, &v, 0))
		return row_corrupt(shard, level, node);
	have.count += d->count;
	have.sum += d->sum;
	return kv_cursor_put(c, key, sizeof key, val, head_encode(val, &have));
}

static int add_to_leaf(kv_cursor *c, const acc_leaf *a)
{
	uint8_t key[KEY_LEN], val[LEAF_VALUE_MAX];
	key_encode(key, a->shard, DIGEST_LEAF_LEVEL, a->leaf);
	digest_leaf l;
	kv_val v;
	int r = cursor_row(&v, c, key);
	if (r < 0)
		return r;
	if (r)
		memset(&l, 0, sizeof l);
	else if (leaf_decode(&l, &v, 1))
		return row_corrupt(a->shard, DIGEST_LEAF_LEVEL, a->leaf);
	l.d.count += a->d.count;
	l.d.sum += a->d.sum;
	for (int k = 0; k < 2; k++) {
		digest_span s[3 * DIGEST_MAX_SPANS];
		uint32_t n = l.n[k];
		memcpy(s, l.span[k], n * sizeof *s);
		for (uint32_t i = 0; i < a->n[k]; i++)
			span_add(s, &n, a->span[k][i].off, a->span[k][i].len);
		spans_coarsen(s, &n, DIGEST_MAX_SPANS);
		memcpy(l.span[k], s, n * sizeof *s);
		l.n[k] = n;
	}
	return kv_cursor_put(c, key, sizeof key, val, leaf_encode(val, &l));
}

/* The rows of one shard's leaves v[0..n): each ancestor, level by level
 * from the root, then the leaves. */
static int flush_shard(kv_cursor *c, const acc_leaf *v, size_t n)
{
	int r = 0;
	for (unsigned level = 0; level < DIGEST_LEAF_LEVEL && !r; level++) {
		unsigned shift = 4 * (DIGEST_LEAF_LEVEL - level);
		for (size_t i = 0, j; i < n && !r; i = j) {
			uint32_t node = v[i].leaf >> shift;
			tdm_digest d = {0, 0};
			for (j = i; j < n && v[j].leaf >> shift == node; j++) {
				d.count += v[j].d.count;
				d.sum += v[j].d.sum;
			}
			r = add_to_row(c, v[i].shard, level, node, &d);
		}
	}
	for (size_t i = 0; i < n && !r; i++)
		r = add_to_leaf(c, &v[i]);
	return r;
}

int digest_acc_flush(digest_acc *a, kv_txn *txn)
{
	if (!a->n)
		return 0;
	qsort(a->v, a->n, sizeof *a->v, acc_cmp);
	/* Every row is read and written through one cursor in key order
	 * (shard, level, node). A batch out of order touches a hundred leaves
	 * or more, and a search from the root for each get and each put was
	 * most of its cost; from the cursor's page it is a few compares. */
	kv_cursor *c = NULL;
	int r = kv_cursor_open(&c, txn, KV_DIGEST);
	for (size_t i = 0, j; i < a->n && !r; i = j) {
		for (j = i; j < a->n && a->v[j].shard == a->v[i].shard; j++)
			;
		r = flush_shard(c, &a->v[i], j - i);
	}
	kv_cursor_close(c);
	digest_acc_reset(a);
	return r;
}

/* ---- checking -------------------------------------------------------- */

int digest_leaf_covers(const digest_leaf *l, int kind, uint64_t off, uint32_t len)
{
	for (uint32_t i = 0; i < l->n[kind]; i++) {
		const digest_span *s = &l->span[kind][i];
		if (off >= s->off && off - s->off <= s->len && len <= s->len - (off - s->off))
			return 1;
	}
	return 0;
}

typedef struct want_row {
	unsigned level;
	uint32_t node;
	tdm_digest d;
} want_row;

static int want_cmp(const void *pa, const void *pb)
{
	const want_row *a = pa, *b = pb;
	if (a->level != b->level)
		return a->level < b->level ? -1 : 1;
	return a->node < b->node ? -1 : a->node > b->node;
}

int digest_check(kv_txn *txn, digest_acc *want, int64_t shard, digest_problem_fn fn,
                 void *ctx)
{
	/* Every row the shard should have: its leaves and their ancestors. */
	size_t n = 0, cap = (want->n + 1) * (DIGEST_LEAF_LEVEL + 1);
	want_row *rows = malloc(cap * sizeof *rows);
	if (!rows)
		return tdm_fail(TDM_ENOMEM, "out of memory");
	for (size_t i = 0; i < want->n; i++) {
		const acc_leaf *l = &want->v[i];
		if (l->shard != shard)
			continue;
		for (unsigned level = 0; level <= DIGEST_LEAF_LEVEL; level++)
			rows[n++] = (want_row){level, l->leaf >> (4 * (DIGEST_LEAF_LEVEL - level)),
			                       l->d};
	}
	qsort(rows, n, sizeof *rows, want_cmp);
	size_t m = 0; /* sum rows of the same node */
	for (size_t i = 0; i < n; i++) {
		if (m && rows[m - 1].level == rows[i].level && rows[m - 1].node == rows[i].node) {
			rows[m - 1].d.count += rows[i].d.count;
			rows[m - 1].d.sum += rows[i].d.sum;
		} else {
			rows[m++] = rows[i];
		}
	}

	uint8_t prefix[8];
	put_be64(prefix, (uint64_t)shard);
	kv_cursor *c;
	int r = kv_cursor_open(&c, txn, KV_DIGEST);
	if (r) {
		free(rows);
		return r;
	}
	kv_val k = {prefix, sizeof prefix}, v;
	size_t i = 0;
	const tdm_digest zero = {0, 0};
	for (r = kv_cursor_get(c, &k, &v, KV_SEEK); r == 0;
	     r = kv_cursor_get(c, &k, &v, KV_NEXT)) {
		if (k.len < 8 || memcmp(k.data, prefix, 8) != 0)
			break;
		const uint8_t *kb = k.data;
		digest_leaf have;
		if (k.len != KEY_LEN || kb[8] > DIGEST_LEAF_LEVEL) {
			fn(ctx, 0, 0, NULL, NULL);
			continue;
		}
		want_row got = {kb[8], (uint32_t)kb[9] << 24 | (uint32_t)kb[10] << 16 |
		                           (uint32_t)kb[11] << 8 | kb[12], {0, 0}};
		if (leaf_decode(&have, &v, got.level == DIGEST_LEAF_LEVEL)) {
			fn(ctx, got.level, got.node, NULL, NULL);
			continue;
		}
		for (; i < m && want_cmp(&rows[i], &got) < 0; i++)
			fn(ctx, rows[i].level, rows[i].node, &zero, &rows[i].d);
		const tdm_digest *w = i < m && want_cmp(&rows[i], &got) == 0 ? &rows[i++].d : &zero;
		if (w->count != have.d.count || w->sum != have.d.sum)
			fn(ctx, got.level, got.node, &have.d, w);
	}
	for (; i < m; i++)
		fn(ctx, rows[i].level, rows[i].node, &zero, &rows[i].d);
	kv_cursor_close(c);
	free(rows);
	return r == TDM_ENOTFOUND ? 0 : r;
}
