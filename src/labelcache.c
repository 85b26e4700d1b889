/* labelcache.c - checked label pairs by their bytes (labelcache.h).
 *
 * An open-addressing table of entries (a cache line each), kept at most
 * half full and grown with them (a few pairs: a few cache lines). An entry
 * holds its key's and value's words (str_words), which for labels of up to
 * SHORT bytes are all their bytes: a probe is one load and a few word
 * compares, without reading the stored pair. The pairs' bytes are in
 * arena blocks that live as long as the entries (the cache's) or the batch
 * (pairs that did not fit). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "labelcache.h"

#define MIN_SLOTS_LOG2 6u
#define MIN_SLOTS (1u << MIN_SLOTS_LOG2)
#define MAX_SLOTS (LCACHE_PAIRS * 2u)
#define MAX_PROBES 32u /* a longer chain is treated as full */
#define BLOCK (64u * 1024u)
#define SHORT 16u /* bytes a string's two words hold */
#define NO_SLOT UINT32_MAX

/* Tests build this file with a mask that makes pairs collide. */
#ifndef LCACHE_HASH_MASK
#define LCACHE_HASH_MASK UINT64_MAX
#endif

typedef struct block {
	struct block *next;
	size_t used, cap;
	uint8_t data[];
} block;

typedef struct ent {
	uint64_t w[4]; /* key words, value words (str_words) */
	uint64_t hash;
	rec_pair p;    /* p.bytes NULL: a free slot */
} ent;

/* A label looked up in this batch, by the caller's pointers: the slot of
 * its entry. */
typedef struct seen {
	const char *key, *value;
	uint32_t stamp, slot;
} seen;
#define SEEN_LOG2 9u
/* Callers whose labels each have text of their own (a parser's output)
 * never find one in the memo: after a batch that found fewer than one in
 * MEMO_MIN_HITS, the memo is left out, and tried again every MEMO_RETRY
 * batches. */
#define MEMO_MIN_HITS 4u
#define MEMO_RETRY 64u

struct lcache {
	seen by_ptr[1u << SEEN_LOG2];
	/* Starts at 1, so that a zeroed `seen` matches nothing; changes at each
	 * batch and whenever entries move (grow), so that a stale slot number
	 * is never used. */
	uint32_t stamp;
	uint32_t batches_unmemoized; /* since the memo was last used */
	size_t memo_hits, memo_looks; /* in this batch */
	ent *slots;
	uint32_t n_slots;
	unsigned shift; /* 64 - log2(n_slots): the hash's top bits pick the slot */
	uint32_t n;
	size_t bytes;
	uint64_t gen;
	int full;       /* a pair did not fit: empty the cache at the next batch */
	block *kept;    /* the entries' bytes */
	block *batch;   /* bytes of pairs that did not fit, for this batch */
};

static void blocks_free(block *b)
{
	while (b) {
		block *next = b->next;
		free(b);
		b = next;
	}
}

static uint8_t *block_alloc(block **list, size_t n)
{
	block *b = *list;
	if (!b || b->cap - b->used < n) {
		size_t cap = n > BLOCK ? n : BLOCK;
		block *nb = malloc(sizeof *nb + cap);
		if (!nb)
			return NULL;
		nb->next = b;
		nb->used = 0;
		nb->cap = cap;
		*list = b = nb;
	}
	uint8_t *p = b->data + b->used;
	b->used += n;
	return p;
}

int lcache_new(lcache **out)
{
	lcache *c = calloc(1, sizeof *c);
	ent *slots = calloc(MIN_SLOTS, sizeof *slots);
	if (!c || !slots) {
		free(c);
		free(slots);
		return tdm_fail(TDM_ENOMEM, "out of memory");
	}
	c->slots = slots;
	c->n_slots = MIN_SLOTS;
	c->shift = 64 - MIN_SLOTS_LOG2;
	c->stamp = 1;
	*out = c;
	return 0;
}

void lcache_free(lcache *c)
{
	if (!c)
		return;
	blocks_free(c->kept);
	blocks_free(c->batch);
	free(c->slots);
	free(c);
}

static void new_stamp(lcache *c)
{
	if (++c->stamp == 0) { /* wrapped: no old `seen` may match */
		memset(c->by_ptr, 0, sizeof c->by_ptr);
		c->stamp = 1;
	}
}

void lcache_batch(lcache *c)
{
	new_stamp(c);
	if (c->memo_looks) /* the memo was used in the batch just ended */
		c->batches_unmemoized = c->memo_hits * MEMO_MIN_HITS >= c->memo_looks ? 0 : 1;
	else if (c->batches_unmemoized && ++c->batches_unmemoized > MEMO_RETRY)
		c->batches_unmemoized = 0;
	c->memo_hits = c->memo_looks = 0;
	blocks_free(c->batch);
	c->batch = NULL;
	if (!c->full)
		return;
	blocks_free(c->kept);
	c->kept = NULL;
	memset(c->slots, 0, c->n_slots * sizeof *c->slots);
	c->n = 0;
	c->bytes = 0;
	c->full = 0;
	c->gen++;
}

uint64_t lcache_gen(const lcache *c)
{
	return c->gen;
}

static inline uint64_t load(const char *s, int n)
{
	uint64_t w = 0;
	memcpy(&w, s, (size_t)n); /* a constant n: one load */
	return w;
}

static inline uint64_t rot32(uint64_t w)
{
	return w << 32 | w >> 32;
}

/* Two words that, with its length, hold every byte of a string of up to
 * SHORT bytes (overlapping loads, as XXH3 reads a short input): equal
 * words and lengths are equal bytes. A longer string's words are its first
 * and last eight bytes. The last bytes, where labels most often differ
 * (web-1, web-2), go in the low halves: in a product they reach the top
 * bits (pair_hash). */
static inline void str_words(uint64_t *a, uint64_t *b, const char *s, size_t n)
{
	if (n > 8) {
		*a = rot32(load(s, 8));
		*b = rot32(load(s + n - 8, 8));
	} else if (n >= 4) {
		*a = load(s + n - 4, 4) | load(s, 4) << 32;
		*b = 0;
	} else {
		*a = n ? (uint64_t)(uint8_t)s[0] | (uint64_t)(uint8_t)s[n / 2] << 8 |
		                 (uint64_t)(uint8_t)s[n - 1] << 16
		       : 0;
		*b = 0;
	}
}

/* The bytes of a long string its words miss. */
static uint64_t str_middle(const char *s, size_t n)
{
	uint64_t h = 0;
	for (size_t i = 8; i + 8 < n; i += 8) {
		h = (h ^ load(s + i, 8)) * 0x9e3779b97f4a7c15ull;
		h = h << 27 | h >> 37;
	}
	return h;
}

/* The key's first four bytes, big-endian, zero past its end: compared as
 * numbers, they order keys as strcmp does (rec_pair.kpre). */
static uint32_t key_order(const char *key, size_t k)
{
	uint32_t o = 0;
	for (size_t i = 0; i < 4; i++)
		o = o << 8 | (i < k ? (uint8_t)key[i] : 0);
	return o;
}

/* Products summed, not chained: they run side by side, and the top bits
 * of a product depend on every bit of its word. Quality only sets probe
 * lengths: a match is an exact compare, and MAX_PROBES bounds a chain
 * however the pairs collide. */
static inline uint64_t pair_hash(const uint64_t w[4], size_t k, size_t v)
{
	return w[0] * 0x9e3779b97f4a7c15ull + w[1] * 0xc2b2ae3d27d4eb4full +
	       w[2] * 0x165667b19e3779f9ull + w[3] * 0xd6e8feb86659fd93ull +
	       ((uint64_t)k << 32 | v) * 0xff51afd7ed558ccdull;
}

/* Doubles the table; 0 or -1 when memory is short (the cache then stays
 * as it is, and is only slower). */
static int grow(lcache *c)
{
	uint32_t n = c->n_slots * 2;
	ent *slots = calloc(n, sizeof *slots);
	if (!slots)
		return -1;
	unsigned shift = c->shift - 1;
	for (uint32_t i = 0; i < c->n_slots; i++) {
		if (!c->slots[i].p.bytes)
			continue;
		uint32_t s = (uint32_t)(c->slots[i].hash >> shift);
		while (slots[s & (n - 1)].p.bytes)
			s++;
		slots[s & (n - 1)] = c->slots[i];
	}
	free(c->slots);
	c->slots = slots;
	c->n_slots = n;
	c->shift = shift;
	new_stamp(c);
	return 0;
}

/* A pair not in the cache: checked as rec_event_check checks it, then
 * kept if it fits. `w`, `h`: its words and hash; `free_slot`: where its
 * probe ended, or NULL past MAX_PROBES. */
static int add(rec_pair *out, uint32_t *slot, lcache *c, const tdm_label *l, size_t i,
               const uint64_t w[4], uint64_t h, ent *free_slot)
{
	size_t k, v;
	int r = rec_label_check(&k, &v, l, i);
	if (r)
		return r;
	size_t len = k + v + 2;
	int keep = free_slot && c->n < LCACHE_PAIRS && c->bytes + len <= LCACHE_BYTES;
	uint8_t *bytes = block_alloc(keep ? &c->kept : &c->batch, len);
	if (!bytes)
		return tdm_fail(TDM_ENOMEM, "out of memory");
	memcpy(bytes, l->key, k + 1);
	memcpy(bytes + k + 1, l->value, v + 1);
	*out = (rec_pair){bytes, (uint32_t)k, (uint32_t)len, REC_NO_ID, key_order(l->key, k)};
	if (!keep) {
		c->full = 1;
		return 0;
	}
	out->id = c->n;
	*free_slot = (ent){{w[0], w[1], w[2], w[3]}, h, *out};
	c->n++;
	c->bytes += len;
	*slot = (uint32_t)(free_slot - c->slots);
	if (c->n * 2 > c->n_slots && c->n_slots < MAX_SLOTS && grow(c) == 0)
		*slot = NO_SLOT; /* moved */
	return 0;
}

/* `*slot`: the entry's slot, or NO_SLOT when the pair is not kept there. */
static inline int get(rec_pair *out, uint32_t *slot, lcache *c, const tdm_label *l,
                      size_t i)
{
	*slot = NO_SLOT;
	if (!l->key || !l->value) {
		size_t k, v;
		return rec_label_check(&k, &v, l, i);
	}
	size_t k = strlen(l->key), v = strlen(l->value);
	uint64_t w[4];
	str_words(&w[0], &w[1], l->key, k);
	str_words(&w[2], &w[3], l->value, v);
	uint64_t h = pair_hash(w, k, v);
	int long_pair = k > SHORT || v > SHORT;
	if (long_pair)
		h += str_middle(l->key, k) * 0x94d049bb133111ebull ^ str_middle(l->value, v);
	h &= LCACHE_HASH_MASK;
	uint32_t mask = c->n_slots - 1;
	ent *free_slot = NULL;
	for (uint32_t s = (uint32_t)(h >> c->shift), probe = 0; probe < MAX_PROBES;
	     s++, probe++) {
		ent *e = &c->slots[s & mask];
		if (!e->p.bytes) {
			free_slot = e;
			break;
		}
		if (e->w[0] == w[0] && e->w[1] == w[1] && e->w[2] == w[2] && e->w[3] == w[3] &&
		    e->p.klen == k && e->p.len == k + v + 2 &&
		    (!long_pair || (memcmp(e->p.bytes, l->key, k) == 0 &&
		                    memcmp(e->p.bytes + k + 1, l->value, v) == 0))) {
			*out = e->p;
			*slot = (uint32_t)(e - c->slots);
			return 0;
		}
	}
	return add(out, slot, c, l, i, w, h, free_slot);
}

int lcache_get(rec_pair *out, lcache *c, const tdm_label *l, size_t i)
{
	uint32_t slot;
	return get(out, &slot, c, l, i);
}

int lcache_memo_in_use(const lcache *c)
{
	return !c->batches_unmemoized;
}

/* During one tdm_append the caller's events and strings are const, so a
 * label with the very key and value pointers of one already looked up in
 * this batch is that pair: callers that label from constant strings skip
 * the lookup. Never across batches, when the caller may reuse its buffers
 * for other text. */
int lcache_get_all(rec_pair *out, lcache *c, const tdm_label *l, size_t n)
{
	if (c->batches_unmemoized) {
		for (size_t i = 0; i < n; i++) {
			uint32_t slot;
			int r = get(&out[i], &slot, c, &l[i], i);
			if (r)
				return r;
		}
		return 0;
	}
	c->memo_looks += n;
	for (size_t i = 0; i < n; i++) {
		const char *key = l[i].key, *value = l[i].value;
		uint64_t h = ((uint64_t)(uintptr_t)key ^
		              (uint64_t)(uintptr_t)value * 0x9e3779b97f4a7c15ull) *
		             0xff51afd7ed558ccdull;
		seen *m = &c->by_ptr[h >> (64 - SEEN_LOG2)];
		if (m->stamp == c->stamp && m->key == key && m->value == value) {
			out[i] = c->slots[m->slot].p;
			c->memo_hits++;
			continue;
		}
		uint32_t slot;
		int r = get(&out[i], &slot, c, &l[i], i);
		if (r)
			return r;
		if (slot != NO_SLOT)
			*m = (seen){key, value, c->stamp, slot};
	}
	return 0;
}
