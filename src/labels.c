/* labels.c - the label bitmap index: building, storing, checking and
 * querying the per-chunk CRoaring bitmaps of KV_LABELS (labels.h).
 *
 * Positions are byte offsets of records: a selective read fetches a
 * matching record with one pread at its offset, without any table from
 * record numbers to offsets. A file is cut into chunks of 1 MiB; the chunk
 * number is in the key, the low 20 bits in the bitmap (at most 16 roaring
 * containers), so files may pass 4 GiB, a selective read looks up a few
 * bitmaps per MiB of file, and a chunk's bitmaps are written once it is
 * full (or at a sync), not at every batch.
 *
 * Invariants:
 *  L1  for every sound record at offset o of file k carrying pair p (and,
 *      in a main file, keeping the grace invariant) with o below the file's
 *      labels end (shard_meta), the bitmap (k, o >> 20, p) holds o & 0xfffff;
 *      no bitmap holds anything else;
 *  L2  a stored bitmap is never empty, and is published in the same LMDB
 *      transaction as the labels end that covers its records;
 *  L3  a labels end is a record boundary at most the file's committed
 *      length, and the records from it on lie in the chunk that holds that
 *      length: the newest chunk, whose bitmaps the writer extends in memory
 *      and puts when the chunk is left behind or at a sync (lbl_acc_flush).
 *      A selective read scans those records (at most 1 MiB a file). */
#include <inttypes.h>
#include <roaring/roaring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "error.h"
#include "hash.h"
#include "labels.h"

#define KEY_HEAD 17u /* shard, kind, chunk */
#define CHUNK_SPAN (1ull << LBL_CHUNK_BITS)

/* One bitmap being built: its positions, ascending. The write path keeps
 * plain arrays and writes the portable format itself (encode below), so
 * that an append costs a store, not a roaring insert; CRoaring reads what
 * is stored. */
typedef struct lbl_ent {
	uint64_t hash;
	uint64_t chunk;
	uint8_t *pair; /* NULL: free slot */
	uint32_t *vals;
	uint32_t n, cap;
	uint16_t len;
	uint8_t kind;
	uint8_t dirty, seen;
} lbl_ent;

/* The entries of one chunk of one file by the writer's pair id
 * (labelcache.h), so that an append finds them without hashing: valid for
 * `chunk` and the pair ids' `gen`, until a rehash moves the entries. */
typedef struct lbl_direct {
	lbl_ent **ents;
	uint32_t cap, used; /* used: ids below it may be set */
	uint64_t chunk;
} lbl_direct;

struct lbl_acc {
	int64_t shard;
	lbl_ent *slots;
	size_t cap, n;
	uint8_t *buf; /* serialization */
	size_t buf_cap;
	lbl_direct direct[2]; /* main, recon */
	uint64_t direct_gen;
	/* Per file (main, recon): the newest chunk records were added to, and
	 * the first record added to it since its bitmaps were last put
	 * (UINT64_MAX: none), where the labels end stays while it is kept. */
	uint64_t newest_chunk[2], newest_from[2];
};

/* roaring_bitmap_free of 0.2.66 does not take NULL. */
static void bm_free(roaring_bitmap_t *bm)
{
	if (bm)
		roaring_bitmap_free(bm);
}

/* ---- keys and values ------------------------------------------------- */

/* LMDB keys are at most 511 bytes. A pair too long for that is keyed by
 * its key, the first LONG_VALUE bytes of its value, 0xff (never in UTF-8)
 * and a hash of the whole pair; the pair itself is then in the value. */
#define KEY_MAX 480u
#define LONG_VALUE 200u

static int pair_is_long(size_t len)
{
	return KEY_HEAD + len > KEY_MAX;
}

static size_t key_make(uint8_t *out, int64_t shard, shard_kind kind,
                       uint64_t chunk, const uint8_t *pair, size_t len)
{
	put_be64(out, (uint64_t)shard);
	out[8] = (uint8_t)kind;
	put_be64(out + 9, chunk);
	if (!len)
		return KEY_HEAD;
	if (!pair_is_long(len)) {
		memcpy(out + KEY_HEAD, pair, len);
		return KEY_HEAD + len;
	}
	size_t n = strlen((const char *)pair) + 1 + LONG_VALUE;
	memcpy(out + KEY_HEAD, pair, n);
	out[KEY_HEAD + n] = 0xff;
	put_le(out + KEY_HEAD + n + 1, tdm_hash64(pair, len, 0), 8);
	return KEY_HEAD + n + 9;
}

/* Length of the pair "key\0value\0" at p (at most `avail` bytes), or 0
 * when the bytes are not one. */
static size_t pair_len(const uint8_t *p, size_t avail)
{
	if (avail > UINT16_MAX) /* a record's label bytes: no pair is longer */
		avail = UINT16_MAX;
	const uint8_t *k = memchr(p, 0, avail);
	if (!k || k == p)
		return 0;
	const uint8_t *v = memchr(k + 1, 0, avail - (size_t)(k + 1 - p));
	return v ? (size_t)(v + 1 - p) : 0;
}

static uint64_t value_sum(const uint8_t *key, size_t klen, const uint8_t *rest,
                          size_t len)
{
	return tdm_hash64(rest, len, tdm_hash64(key, klen, 0));
}

/* CRoaring 0.2.66 prints to stderr when its _safe deserializer meets bytes
 * it cannot read, and the library must not print: so the bytes are checked
 * here first against the portable format (CRoaring's format spec), narrowed
 * to what a chunk's bitmap is: at most CHUNK_CONTAINERS containers with
 * increasing keys below that, sorted values, nothing after. 1 when sound. */
#define CHUNK_CONTAINERS (CHUNK_SPAN >> 16)
static int roaring_bytes_sound(const uint8_t *p, size_t n)
{
	enum { COOKIE_NO_RUN = 12346, COOKIE = 12347, ARRAY_MAX = 4096 };
	if (n < 8)
		return 0;
	uint32_t cookie = (uint32_t)get_le(p, 4);
	size_t size, pos;
	const uint8_t *runs = NULL;
	if ((cookie & 0xffff) == COOKIE) {
		size = (cookie >> 16) + 1;
		runs = p + 4;
		pos = 4 + (size + 7) / 8;
	} else if (cookie == COOKIE_NO_RUN) {
		size = (size_t)get_le(p + 4, 4);
		pos = 8;
	} else {
		return 0;
	}
	if (size == 0 || size > CHUNK_CONTAINERS || n < pos + 4 * size)
		return 0;
	const uint8_t *keys = p + pos;
	pos += 4 * size;
	if (!runs || size >= 4) /* the offsets of the containers */
		pos += 4 * size;
	for (size_t i = 0; i < size; i++) {
		uint32_t key = (uint32_t)get_le(keys + 4 * i, 2);
		size_t card = (size_t)get_le(keys + 4 * i + 2, 2) + 1;
		if (key >= CHUNK_CONTAINERS || (i && key <= get_le(keys + 4 * i - 4, 2)))
			return 0;
		if (runs && (runs[i / 8] >> (i % 8) & 1)) {
			if (n < pos + 2)
				return 0;
			size_t n_runs = (size_t)get_le(p + pos, 2);
			pos += 2;
			if (n_runs == 0 || n < pos + 4 * n_runs)
				return 0;
			uint32_t next = 0;
			for (size_t k = 0; k < n_runs; k++, pos += 4) {
				uint32_t start = (uint32_t)get_le(p + pos, 2);
				uint32_t len = (uint32_t)get_le(p + pos + 2, 2);
				if ((k && start < next) || start + len > 0xffff)
					return 0;
				next = start + len + 1;
			}
		} else if (card > ARRAY_MAX) {
			pos += 8192;
		} else {
			if (n < pos + 2 * card)
				return 0;
			for (size_t k = 1; k < card; k++)
				if (get_le(p + pos + 2 * k, 2) <= get_le(p + pos + 2 * k - 2, 2))
					return 0;
			pos += 2 * card;
		}
		if (n < pos)
			return 0;
	}
	return pos == n;
}

/* 1 when a key is a long pair's: its 0xff follows the label key and
 * LONG_VALUE bytes of the value, then the hash ends it. Found from the
 * pair's own bytes, never from the head's: a chunk number may hold 0xff. */
static int key_is_long(const uint8_t *key, size_t len)
{
	const uint8_t *z = len > KEY_HEAD ? memchr(key + KEY_HEAD, 0, len - KEY_HEAD) : NULL;
	if (!z)
		return 0;
	size_t at = (size_t)(z - key) + 1 + LONG_VALUE;
	return at + 9 == len && key[at] == 0xff;
}

/* Checks and decodes one stored bitmap: `*out` is the caller's, `*pair`
 * points into the key or the value. */
static int decode(roaring_bitmap_t **out, const uint8_t **pair, size_t *plen,
                  const kv_val *k, const kv_val *v)
{
	const uint8_t *key = k->data, *val = v->data;
	uint8_t want[KEY_MAX + 16];
	*out = NULL;
	if (k->len <= KEY_HEAD || k->len > KEY_MAX + 16 ||
	    (key[8] != SHARD_MAIN && key[8] != SHARD_RECON))
		return tdm_fail(TDM_ECORRUPT, "label bitmap: malformed key");
	if (v->len < 8 + 8 ||
	    get_le(val, 8) != value_sum(key, k->len, val + 8, v->len - 8))
		return tdm_fail(TDM_ECORRUPT, "label bitmap: checksum mismatch");
	const uint8_t *bytes = val + 8;
	size_t n = v->len - 8;
	if (key_is_long(key, k->len)) {
		*plen = get_le(bytes, 2);
		*pair = bytes + 2;
		if (n < 2 + *plen || pair_len(*pair, *plen) != *plen || !pair_is_long(*plen) ||
		    key_make(want, (int64_t)get_be64(key), key[8], get_be64(key + 9), *pair,
		             *plen) != k->len || memcmp(want, key, k->len) != 0)
			return tdm_fail(TDM_ECORRUPT, "label bitmap: malformed long pair");
		bytes += 2 + *plen;
		n -= 2 + *plen;
	} else {
		*pair = key + KEY_HEAD;
		*plen = k->len - KEY_HEAD;
		if (pair_len(*pair, *plen) != *plen || pair_is_long(*plen))
			return tdm_fail(TDM_ECORRUPT, "label bitmap: malformed key");
	}
	roaring_bitmap_t *bm = NULL;
	if (roaring_bytes_sound(bytes, n))
		bm = roaring_bitmap_portable_deserialize_safe((const char *)bytes, n);
	if (!bm)
		return tdm_fail(TDM_ECORRUPT, "label bitmap: not a roaring bitmap");
	if (roaring_bitmap_portable_size_in_bytes(bm) != n ||
	    roaring_bitmap_is_empty(bm) || roaring_bitmap_maximum(bm) >= CHUNK_SPAN ||
	    (get_be64(key + 9) == 0 && roaring_bitmap_minimum(bm) < SHARD_HEADER)) {
		bm_free(bm);
		return tdm_fail(TDM_ECORRUPT, "label bitmap: positions out of range");
	}
	*out = bm;
	return 0;
}

static int report_bad(const kv_val *k, int r)
{
	const uint8_t *key = k->data;
	if (k->len < KEY_HEAD)
		return r;
	return tdm_fail_context(r, "shard %" PRId64 " %s chunk %" PRIu64,
	                        (int64_t)get_be64(key), key[8] == SHARD_MAIN ? "main" : "recon",
	                        get_be64(key + 9));
}

/* ---- the accumulator --------------------------------------------------- */

int lbl_acc_new(lbl_acc **out, int64_t shard)
{
	lbl_acc *a = calloc(1, sizeof *a);
	if (!a)
		return tdm_fail(TDM_ENOMEM, "out of memory");
	a->shard = shard;
	a->direct[0].chunk = a->direct[1].chunk = UINT64_MAX;
	a->newest_chunk[0] = a->newest_chunk[1] = UINT64_MAX;
	a->newest_from[0] = a->newest_from[1] = UINT64_MAX;
	*out = a;
	return 0;
}

static void direct_clear(lbl_direct *d)
{
	if (d->used)
		memset(d->ents, 0, d->used * sizeof *d->ents);
	d->used = 0;
}

static void ent_free(lbl_ent *e)
{
	free(e->pair);
	free(e->vals);
	e->pair = NULL;
	e->vals = NULL;
}

static int ent_push(lbl_ent *e, uint32_t v)
{
	if (e->n == e->cap) {
		uint32_t cap = e->cap ? e->cap * 2 : 16;
		uint32_t *p = realloc(e->vals, cap * sizeof *p);
		if (!p)
			return tdm_fail(TDM_ENOMEM, "out of memory");
		e->vals = p;
		e->cap = cap;
	}
	uint32_t i = e->n++;
	/* Records come in offset order; keep the order whatever happens. */
	for (; i > 0 && e->vals[i - 1] >= v; i--)
		if (e->vals[i - 1] == v) {
			memmove(&e->vals[i - 1], &e->vals[i], (e->n - i) * sizeof v);
			e->n--;
			i--;
			break;
		} else {
			e->vals[i] = e->vals[i - 1];
		}
	e->vals[i] = v;
	return 0;
}

void lbl_acc_free(lbl_acc *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->cap; i++)
		if (a->slots[i].pair)
			ent_free(&a->slots[i]);
	free(a->slots);
	free(a->buf);
	free(a->direct[0].ents);
	free(a->direct[1].ents);
	free(a);
}

static uint64_t ent_hash(shard_kind kind, uint64_t chunk, const uint8_t *pair,
                         size_t len)
{
	return tdm_hash64(pair, len, chunk << 2 | (uint64_t)kind);
}

static lbl_ent *slot_for(lbl_ent *slots, size_t cap, uint64_t hash,
                         shard_kind kind, uint64_t chunk, const uint8_t *pair,
                         size_t len)
{
	for (size_t i = hash & (cap - 1);; i = (i + 1) & (cap - 1)) {
		lbl_ent *e = &slots[i];
		if (!e->pair || (e->hash == hash && e->chunk == chunk && e->kind == kind &&
		               e->len == len && memcmp(e->pair, pair, len) == 0))
			return e;
	}
}

/* Moves the entries kept by `keep` (all when NULL) into a table of `cap`. */
static int rehash(lbl_acc *a, size_t cap, const uint64_t *keep_from)
{
	lbl_ent *slots = calloc(cap, sizeof *slots);
	if (!slots)
		return tdm_fail(TDM_ENOMEM, "out of memory");
	size_t n = 0;
	for (size_t i = 0; i < a->cap; i++) {
		lbl_ent *e = &a->slots[i];
		if (!e->pair)
			continue;
		if (keep_from && e->chunk < keep_from[e->kind == SHARD_RECON]) {
			ent_free(e);
			continue;
		}
		*slot_for(slots, cap, e->hash, e->kind, e->chunk, e->pair, e->len) = *e;
		n++;
	}
	free(a->slots);
	a->slots = slots;
	a->cap = cap;
	a->n = n;
	direct_clear(&a->direct[0]);
	direct_clear(&a->direct[1]);
	return 0;
}

/* The entry of (kind, chunk, pair), made empty when new. */
static int acc_get(lbl_ent **out, lbl_acc *a, shard_kind kind, uint64_t chunk,
                   const uint8_t *pair, size_t len)
{
	if ((a->n + 1) * 4 > a->cap * 3) {
		int r = rehash(a, a->cap ? a->cap * 2 : 64, NULL);
		if (r)
			return r;
	}
	uint64_t h = ent_hash(kind, chunk, pair, len);
	lbl_ent *e = slot_for(a->slots, a->cap, h, kind, chunk, pair, len);
	if (!e->pair) {
		memset(e, 0, sizeof *e);
		if (!(e->pair = malloc(len)))
			return tdm_fail(TDM_ENOMEM, "out of memory");
		memcpy(e->pair, pair, len);
		e->hash = h;
		e->chunk = chunk;
		e->kind = (uint8_t)kind;
		e->len = (uint16_t)len;
		a->n++;
	}
	*out = e;
	return 0;
}

int lbl_acc_load(lbl_acc *a, kv_txn *txn, shard_kind kind, uint64_t end)
{
	uint8_t head[KEY_HEAD];
	key_make(head, a->shard, kind, end >> LBL_CHUNK_BITS, NULL, 0);
	kv_cursor *c;
	int r = kv_cursor_open(&c, txn, KV_LABELS);
	if (r)
		return r;
	kv_val k = {head, sizeof head}, v;
	for (r = kv_cursor_get(c, &k, &v, KV_SEEK); r == 0;
	     r = kv_cursor_get(c, &k, &v, KV_NEXT)) {
		if (k.len < KEY_HEAD || memcmp(k.data, head, KEY_HEAD) != 0)
			break;
		roaring_bitmap_t *bm;
		lbl_ent *e = NULL;
		const uint8_t *pair;
		size_t plen;
		if ((r = decode(&bm, &pair, &plen, &k, &v))) {
			r = report_bad(&k, r);
			break;
		}
		if (!(r = acc_get(&e, a, kind, end >> LBL_CHUNK_BITS, pair, plen))) {
			uint32_t n = (uint32_t)roaring_bitmap_get_cardinality(bm);
			uint32_t *vals = realloc(e->vals, (n ? n : 1) * sizeof *vals);
			if (vals) {
				roaring_bitmap_to_uint32_array(bm, vals);
				e->vals = vals;
				e->n = e->cap = n;
			} else {
				r = tdm_fail(TDM_ENOMEM, "out of memory");
			}
		}
		bm_free(bm);
		if (r)
			break;
	}
	kv_cursor_close(c);
	return r == TDM_ENOTFOUND ? 0 : r;
}

/* Records come in offset order, file by file. */
static void note_newest(lbl_acc *a, shard_kind kind, uint64_t off)
{
	int k = kind == SHARD_RECON;
	if (off >> LBL_CHUNK_BITS != a->newest_chunk[k]) {
		a->newest_chunk[k] = off >> LBL_CHUNK_BITS;
		a->newest_from[k] = off;
	} else if (a->newest_from[k] == UINT64_MAX) {
		a->newest_from[k] = off;
	}
}

int lbl_acc_add(lbl_acc *a, shard_kind kind, uint64_t off,
                const uint8_t *labels, uint32_t labels_len)
{
	uint64_t chunk = off >> LBL_CHUNK_BITS;
	note_newest(a, kind, off);
	uint32_t low = (uint32_t)(off & (CHUNK_SPAN - 1));
	for (uint32_t at = 0; at < labels_len;) {
		size_t len = pair_len(labels + at, labels_len - at);
		if (!len) /* records are checked before they get here */
			return tdm_fail(TDM_ECORRUPT, "malformed labels at offset %" PRIu64, off);
		lbl_ent *e = NULL;
		int r = acc_get(&e, a, kind, chunk, labels + at, len);
		if (r)
			return r;
		if (e->n && e->vals[e->n - 1] < low && e->n < e->cap)
			e->vals[e->n++] = low; /* the common case */
		else if ((r = ent_push(e, low)))
			return r;
		e->dirty = 1;
		at += (uint32_t)len;
	}
	return 0;
}

static void push(lbl_ent *e, uint32_t low, int *r)
{
	if (e->n && e->vals[e->n - 1] < low && e->n < e->cap)
		e->vals[e->n++] = low; /* the common case */
	else
		*r = ent_push(e, low);
	e->dirty = 1;
}

int lbl_acc_add_pairs(lbl_acc *a, shard_kind kind, uint64_t off, const rec_pair *p,
                      size_t n, uint64_t gen)
{
	uint64_t chunk = off >> LBL_CHUNK_BITS;
	uint32_t low = (uint32_t)(off & (CHUNK_SPAN - 1));
	lbl_direct *d = &a->direct[kind == SHARD_RECON];
	if (a->direct_gen != gen) {
		direct_clear(&a->direct[0]);
		direct_clear(&a->direct[1]);
		a->direct_gen = gen;
	}
	if (d->chunk != chunk) {
		direct_clear(d);
		d->chunk = chunk;
	}
	note_newest(a, kind, off);
	int r = 0;
	for (size_t i = 0; i < n && !r; i++) {
		uint32_t id = p[i].id;
		lbl_ent *e = id < d->used ? d->ents[id] : NULL;
		if (!e) {
			if ((r = acc_get(&e, a, kind, chunk, p[i].bytes, p[i].len)))
				return r;
			if (id != REC_NO_ID) { /* acc_get may have cleared the table */
				if (id >= d->cap) {
					uint32_t cap = d->cap ? d->cap : 64;
					while (cap <= id)
						cap *= 2;
					lbl_ent **t = realloc(d->ents, cap * sizeof *t);
					if (!t)
						return tdm_fail(TDM_ENOMEM, "out of memory");
					d->ents = t;
					d->cap = cap;
				}
				if (id >= d->used) {
					memset(d->ents + d->used, 0, (id + 1 - d->used) * sizeof *d->ents);
					d->used = id + 1;
				}
				d->ents[id] = e;
			}
		}
		push(e, low, &r);
	}
	return r;
}

/* Where the containers of ascending `vals` (< CHUNK_SPAN) start: at most
 * CHUNK_CONTAINERS, found by binary search rather than value by value. */
typedef struct layout {
	uint32_t n_cont;
	uint32_t start[CHUNK_CONTAINERS + 1]; /* start[n_cont] = n */
} layout;

static void layout_of(layout *l, const uint32_t *vals, uint32_t n)
{
	l->n_cont = 0;
	for (uint32_t i = 0; i < n;) {
		l->start[l->n_cont++] = i;
		uint32_t key = vals[i] >> 16, lo = i + 1, hi = n;
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			if (vals[mid] >> 16 <= key)
				lo = mid + 1;
			else
				hi = mid;
		}
		i = lo;
	}
	l->start[l->n_cont] = n;
}

/* Bytes of the portable serialization: no run containers; arrays up to
 * 4096 values, bitsets above. */
static size_t encoded_size(const layout *l)
{
	size_t size = 8;
	for (uint32_t c = 0; c < l->n_cont; c++) {
		uint32_t card = l->start[c + 1] - l->start[c];
		size += 8 + (card > 4096 ? 8192 : 2 * (size_t)card);
	}
	return size;
}

/* Writes that serialization (CRoaring's format spec, no-run cookie):
 * cookie, container count, (key, cardinality - 1) per container, the
 * containers' offsets, then each container. */
static void encode(uint8_t *out, const uint32_t *vals, const layout *l)
{
	uint32_t n_cont = l->n_cont;
	put_le(out, 12346, 4);
	put_le(out + 4, n_cont, 4);
	size_t pos = 8 + 8 * (size_t)n_cont;
	for (uint32_t c = 0; c < n_cont; c++) {
		uint32_t i = l->start[c], j = l->start[c + 1], card = j - i;
		put_le(out + 8 + 4 * c, vals[i] >> 16, 2);
		put_le(out + 8 + 4 * c + 2, card - 1, 2);
		put_le(out + 8 + 4 * n_cont + 4 * c, pos, 4);
		if (card > 4096) {
			uint8_t *bits = out + pos;
			memset(bits, 0, 8192);
			for (uint32_t k = i; k < j; k++)
				bits[(vals[k] & 0xffff) >> 3] |= (uint8_t)(1u << (vals[k] & 7));
			pos += 8192;
		} else {
			uint8_t *p = out + pos;
			for (uint32_t k = i; k < j; k++, p += 2) {
				p[0] = (uint8_t)vals[k];
				p[1] = (uint8_t)(vals[k] >> 8);
			}
			pos += 2 * (size_t)card;
		}
	}
}

static int put_ent(lbl_acc *a, kv_txn *txn, const lbl_ent *e)
{
	uint8_t key[KEY_MAX + 16];
	size_t klen = key_make(key, a->shard, e->kind, e->chunk, e->pair, e->len);
	size_t extra = pair_is_long(e->len) ? 2 + (size_t)e->len : 0;
	layout l;
	layout_of(&l, e->vals, e->n);
	size_t size = 8 + extra + encoded_size(&l);
	if (size > a->buf_cap) {
		uint8_t *p = realloc(a->buf, size);
		if (!p)
			return tdm_fail(TDM_ENOMEM, "out of memory");
		a->buf = p;
		a->buf_cap = size;
	}
	if (extra) {
		put_le(a->buf + 8, e->len, 2);
		memcpy(a->buf + 10, e->pair, e->len);
	}
	encode(a->buf + 8 + extra, e->vals, &l);
	put_le(a->buf, value_sum(key, klen, a->buf + 8, size - 8), 8);
	return kv_put(txn, KV_LABELS, key, klen, a->buf, size);
}

int lbl_acc_flush(lbl_acc *a, kv_txn *txn, uint64_t main_end, uint64_t recon_end,
                  int keep_newest, uint64_t covered[2])
{
	int closed = 0;
	uint64_t end[2] = {main_end, recon_end};
	uint64_t keep_from[2] = {main_end >> LBL_CHUNK_BITS, recon_end >> LBL_CHUNK_BITS};
	int keep[2];
	for (int k = 0; k < 2; k++)
		keep[k] = keep_newest && a->newest_from[k] != UINT64_MAX &&
		          a->newest_chunk[k] == keep_from[k];
	for (size_t i = 0; i < a->cap; i++) {
		lbl_ent *e = &a->slots[i];
		if (!e->pair)
			continue;
		int k = e->kind == SHARD_RECON;
		if (e->dirty && e->n && !(keep[k] && e->chunk == keep_from[k])) {
			int r = put_ent(a, txn, e);
			if (r)
				return r;
			e->dirty = 0;
		}
		closed |= e->chunk < keep_from[k];
	}
	for (int k = 0; k < 2; k++) {
		if (!keep[k])
			a->newest_from[k] = UINT64_MAX;
		if (covered)
			covered[k] = keep[k] ? a->newest_from[k] : end[k];
	}
	return closed ? rehash(a, a->cap, keep_from) : 0;
}

int lbl_del(kv_txn *txn, int64_t shard)
{
	uint8_t prefix[8];
	put_be64(prefix, (uint64_t)shard);
	return kv_del_prefix(txn, KV_LABELS, prefix, sizeof prefix);
}

/* ---- selection ------------------------------------------------------- */

int lbl_pair_matches(const tdm_match *m, const uint8_t *pair, size_t len)
{
	size_t klen = strlen(m->key), vlen = strlen(m->value);
	if (len < klen + 2 || memcmp(pair, m->key, klen) != 0 || pair[klen] != 0)
		return 0;
	const uint8_t *v = pair + klen + 1;
	size_t have = len - klen - 2;
	if (vlen && m->value[vlen - 1] == '*')
		return have >= vlen - 1 && memcmp(v, m->value, vlen - 1) == 0;
	return have == vlen && memcmp(v, m->value, vlen) == 0;
}

typedef struct cand_chunk {
	uint64_t base;
	uint32_t *vals;
	size_t n;
} cand_chunk;

struct lbl_cand {
	cand_chunk *a;
	size_t n, cap;
	size_t ci, vi; /* the peek position */
	uint64_t total;
};

void lbl_cand_free(lbl_cand *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		free(c->a[i].vals);
	free(c->a);
	free(c);
}

/* Adds `bm` (decoded, consumed) to the union `*out`, keeping only what
 * `within` holds when it is not NULL. */
static void union_add(roaring_bitmap_t **out, roaring_bitmap_t *bm,
                      const roaring_bitmap_t *within)
{
	if (within)
		roaring_bitmap_and_inplace(bm, within);
	if (*out) {
		roaring_bitmap_or_inplace(*out, bm);
		bm_free(bm);
	} else {
		*out = bm;
	}
}

/* The union of the bitmaps of the pairs matching `m` in one chunk, cut to
 * `within` when not NULL (an AND group's other conditions: intersecting each
 * bitmap with a small set costs less than a union of large ones): NULL with
 * 0 when there are none. */
static int match_union(roaring_bitmap_t **out, kv_cursor *cur, kv_txn *txn,
                       const uint8_t *head, const tdm_match *m,
                       const roaring_bitmap_t *within)
{
	uint8_t key[KEY_MAX + 16];
	size_t klen = strlen(m->key), vlen = strlen(m->value);
	int prefix = vlen && m->value[vlen - 1] == '*';
	*out = NULL;
	if (klen > TDM_MAX_LABEL_KEY || vlen > TDM_MAX_LABEL_VALUE + 1)
		return 0; /* no stored pair can match */
	if (prefix)
		vlen--;
	memcpy(key, head, KEY_HEAD);
	size_t n = KEY_HEAD;
	memcpy(key + n, m->key, klen + 1);
	n += klen + 1;
	kv_val k, v;
	const uint8_t *pair;
	size_t plen;
	int r;
	if (!prefix && !pair_is_long(klen + vlen + 2)) {
		memcpy(key + n, m->value, vlen);
		n += vlen;
		key[n++] = 0;
		if ((r = kv_get(&v, txn, KV_LABELS, key, n)))
			return r == TDM_ENOTFOUND ? 0 : r;
		k = (kv_val){key, n};
		roaring_bitmap_t *bm;
		if ((r = decode(&bm, &pair, &plen, &k, &v)))
			return report_bad(&k, r);
		union_add(out, bm, within);
		return 0;
	}
	/* A prefix, or a value long enough to be keyed by its start: every
	 * stored pair whose key starts the same way is checked in full. */
	size_t vn = vlen < LONG_VALUE ? vlen : LONG_VALUE;
	memcpy(key + n, m->value, vn);
	n += vn;
	k = (kv_val){key, n};
	for (r = kv_cursor_get(cur, &k, &v, KV_SEEK); r == 0;
	     r = kv_cursor_get(cur, &k, &v, KV_NEXT)) {
		if (k.len < n || memcmp(k.data, key, n) != 0)
			break;
		roaring_bitmap_t *bm;
		if ((r = decode(&bm, &pair, &plen, &k, &v))) {
			r = report_bad(&k, r);
			break;
		}
		if (lbl_pair_matches(m, pair, plen))
			union_add(out, bm, within);
		else
			bm_free(bm);
	}
	if (r == TDM_ENOTFOUND)
		r = 0;
	if (r) {
		bm_free(*out);
		*out = NULL;
	}
	return r;
}

/* A chunk's candidates below which prefix conditions are left to the
 * reader's check of each record. */
#define FEW_CANDIDATES 64

/* The selector over one chunk: NULL with 0 when nothing matches. */
static int select_chunk(roaring_bitmap_t **out, kv_cursor *cur, kv_txn *txn,
                        const uint8_t *head, const tdm_selector *where,
                        size_t n_where)
{
	roaring_bitmap_t *res = NULL;
	int r = 0;
	for (size_t g = 0; g < n_where && !r; g++) {
		roaring_bitmap_t *acc = NULL;
		size_t n = where[g].n_matches;
		/* Exact conditions first (one bitmap each), then prefixes, each
		 * bitmap of which is cut to what the group has left. */
		for (size_t j = 0; j < 2 * n; j++) {
			const tdm_match *m = &where[g].matches[j % n];
			size_t vlen = strlen(m->value);
			int prefix = vlen && m->value[vlen - 1] == '*';
			if (prefix != (j >= n))
				continue;
			/* Few candidates left from the exact pairs: fetching them costs
			 * less than decoding every bitmap a prefix matches, and the
			 * reader checks each fetched record against the selector. */
			if (prefix && acc && roaring_bitmap_get_cardinality(acc) <= FEW_CANDIDATES)
				break;
			roaring_bitmap_t *u;
			if ((r = match_union(&u, cur, txn, head, m, acc)) || !u) {
				bm_free(acc);
				acc = NULL;
				break;
			}
			if (acc) {
				roaring_bitmap_and_inplace(acc, u);
				bm_free(u);
			} else {
				acc = u;
			}
			if (roaring_bitmap_is_empty(acc)) {
				bm_free(acc);
				acc = NULL;
				break;
			}
		}
		if (!acc)
			continue;
		if (res) {
			roaring_bitmap_or_inplace(res, acc);
			bm_free(acc);
		} else {
			res = acc;
		}
	}
	if (r) {
		bm_free(res);
		res = NULL;
	}
	*out = res;
	return r;
}

static int cand_add(lbl_cand *c, uint64_t chunk, const roaring_bitmap_t *bm)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		cand_chunk *a = realloc(c->a, cap * sizeof *a);
		if (!a)
			return tdm_fail(TDM_ENOMEM, "out of memory");
		c->a = a;
		c->cap = cap;
	}
	cand_chunk *cc = &c->a[c->n];
	cc->n = (size_t)roaring_bitmap_get_cardinality(bm);
	cc->base = chunk << LBL_CHUNK_BITS;
	if (!(cc->vals = malloc(cc->n * sizeof *cc->vals)))
		return tdm_fail(TDM_ENOMEM, "out of memory");
	roaring_bitmap_to_uint32_array(bm, cc->vals);
	c->n++;
	c->total += cc->n;
	return 0;
}

int lbl_select(lbl_cand **out, kv_txn *txn, int64_t shard, shard_kind kind,
               uint64_t lo, uint64_t hi, const tdm_selector *where,
               size_t n_where, uint64_t max_cand)
{
	lbl_cand *c = calloc(1, sizeof *c);
	kv_cursor *cur = NULL;
	if (!c)
		return tdm_fail(TDM_ENOMEM, "out of memory");
	int r = kv_cursor_open(&cur, txn, KV_LABELS);
	for (uint64_t chunk = lo >> LBL_CHUNK_BITS; !r && lo < hi &&
	     chunk <= (hi - 1) >> LBL_CHUNK_BITS; chunk++) {
		uint8_t head[KEY_HEAD];
		key_make(head, shard, kind, chunk, NULL, 0);
		roaring_bitmap_t *bm;
		if ((r = select_chunk(&bm, cur, txn, head, where, n_where)) || !bm)
			continue;
		r = cand_add(c, chunk, bm);
		bm_free(bm);
		if (!r && max_cand && c->total > max_cand)
			r = 1;
	}
	kv_cursor_close(cur);
	if (r) {
		lbl_cand_free(c);
		return r;
	}
	*out = c;
	return 0;
}

int lbl_cand_peek(lbl_cand *c, uint64_t pos, uint64_t *off)
{
	while (c->ci < c->n) {
		const cand_chunk *cc = &c->a[c->ci];
		while (c->vi < cc->n && cc->base + cc->vals[c->vi] < pos)
			c->vi++;
		if (c->vi < cc->n) {
			*off = cc->base + cc->vals[c->vi];
			return 0;
		}
		c->ci++;
		c->vi = 0;
	}
	return 1;
}

int lbl_cand_ahead(const lbl_cand *c, size_t k, uint64_t *off)
{
	if (c->ci >= c->n || c->vi + k >= c->a[c->ci].n)
		return 1;
	*off = c->a[c->ci].base + c->a[c->ci].vals[c->vi + k];
	return 0;
}

uint64_t lbl_cand_count(const lbl_cand *c)
{
	return c->total;
}

/* ---- counting and checking ---------------------------------------------- */

int lbl_count(kv_txn *txn, int64_t shard,
              int (*fn)(void *ctx, const uint8_t *pair, size_t len, uint64_t n),
              void *ctx)
{
	uint8_t prefix[8];
	put_be64(prefix, (uint64_t)shard);
	kv_cursor *c;
	int r = kv_cursor_open(&c, txn, KV_LABELS);
	if (r)
		return r;
	kv_val k = {prefix, sizeof prefix}, v;
	for (r = kv_cursor_get(c, &k, &v, KV_SEEK); r == 0;
	     r = kv_cursor_get(c, &k, &v, KV_NEXT)) {
		if (k.len < 8 || memcmp(k.data, prefix, 8) != 0)
			break;
		roaring_bitmap_t *bm;
		const uint8_t *pair;
		size_t plen;
		if ((r = decode(&bm, &pair, &plen, &k, &v))) {
			r = report_bad(&k, r);
			break;
		}
		uint64_t n = roaring_bitmap_get_cardinality(bm);
		bm_free(bm);
		if ((r = fn(ctx, pair, plen, n)))
			break;
	}
	kv_cursor_close(c);
	return r == TDM_ENOTFOUND ? 0 : r;
}

static void pair_text(char *out, size_t cap, const uint8_t *pair, size_t len)
{
	const char *key = (const char *)pair;
	const char *value = key + strlen(key) + 1;
	(void)len;
	snprintf(out, cap, "%.64s=%.64s", key, value);
}

int lbl_verify(kv_txn *txn, int64_t shard, lbl_acc *expected,
               void (*report)(void *ctx, shard_kind kind, uint64_t chunk,
                              const char *what),
               void *ctx)
{
	uint8_t prefix[8];
	char what[256], label[160];
	put_be64(prefix, (uint64_t)shard);
	kv_cursor *c;
	int r = kv_cursor_open(&c, txn, KV_LABELS);
	if (r)
		return r;
	kv_val k = {prefix, sizeof prefix}, v;
	for (r = kv_cursor_get(c, &k, &v, KV_SEEK); r == 0;
	     r = kv_cursor_get(c, &k, &v, KV_NEXT)) {
		if (k.len < 8 || memcmp(k.data, prefix, 8) != 0)
			break;
		const uint8_t *key = k.data;
		shard_kind kind = k.len > 8 && key[8] == SHARD_RECON ? SHARD_RECON : SHARD_MAIN;
		uint64_t chunk = k.len >= KEY_HEAD ? get_be64(key + 9) : 0;
		roaring_bitmap_t *bm;
		const uint8_t *pair;
		size_t len;
		if (decode(&bm, &pair, &len, &k, &v)) {
			report(ctx, kind, chunk, tdm_error_message());
			continue;
		}
		pair_text(label, sizeof label, pair, len);
		lbl_ent *e = NULL;
		if (expected->cap)
			e = slot_for(expected->slots, expected->cap,
			             ent_hash(kind, chunk, pair, len), kind, chunk, pair, len);
		if (!e || !e->pair || !e->n) {
			snprintf(what, sizeof what, "label bitmap %s: no record carries it", label);
			report(ctx, kind, chunk, what);
		} else {
			e->seen = 1;
			uint64_t card = roaring_bitmap_get_cardinality(bm);
			uint32_t *vals = card == e->n ? malloc(card * sizeof *vals) : NULL;
			if (vals)
				roaring_bitmap_to_uint32_array(bm, vals);
			if (!vals || memcmp(vals, e->vals, card * sizeof *vals) != 0) {
				snprintf(what, sizeof what, "label bitmap %s: holds %" PRIu64
				         " records, not the %" PRIu32 " the file has", label, card,
				         e->n);
				report(ctx, kind, chunk, what);
			}
			free(vals);
		}
		bm_free(bm);
	}
	kv_cursor_close(c);
	if (r != TDM_ENOTFOUND)
		return r;
	for (size_t i = 0; i < expected->cap; i++) {
		lbl_ent *e = &expected->slots[i];
		if (!e->pair || e->seen || !e->n)
			continue;
		pair_text(label, sizeof label, e->pair, e->len);
		snprintf(what, sizeof what, "label bitmap %s is missing", label);
		report(ctx, e->kind, e->chunk, what);
	}
	return 0;
}
