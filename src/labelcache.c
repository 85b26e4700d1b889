/* labelcache.c - checked label pairs by their bytes (labelcache.h).
 *
 * An open-addressing table over an array of entries, kept at most half
 * full and grown with them (a few pairs: a few cache lines); each slot
 * holds the high half of its pair's hash beside the entry's number, so a
 * probe reads the entry only on a likely match. The pairs' bytes are in
 * arena blocks that live as long as the entries (the cache's) or the
 * batch (pairs that did not fit). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "labelcache.h"

#define MIN_SLOTS 64u
#define MAX_SLOTS (LCACHE_PAIRS * 2u)
#define MAX_PROBES 32u /* a longer chain is treated as full */
#define BLOCK (64u * 1024u)

typedef struct block {
	struct block *next;
	size_t used, cap;
	uint8_t data[];
} block;

typedef struct ent {
	uint64_t hash;
	rec_pair p;
} ent;

struct lcache {
	uint64_t *slots;       /* hash >> 32 << 32 | entry index + 1; 0 is free */
	uint32_t n_slots;
	ent ents[LCACHE_PAIRS];
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
	uint64_t *slots = calloc(MIN_SLOTS, sizeof *slots);
	if (!c || !slots) {
		free(c);
		free(slots);
		return tdm_fail(TDM_ENOMEM, "out of memory");
	}
	c->slots = slots;
	c->n_slots = MIN_SLOTS;
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

void lcache_batch(lcache *c)
{
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

static inline uint64_t mix(uint64_t h, uint64_t w)
{
	h = (h ^ w) * 0x9e3779b97f4a7c15ull;
	return h << 27 | h >> 37;
}

/* MurmurHash3's finalizer: every input bit reaches the low bits that pick
 * the slot. */
static inline uint64_t avalanche(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ h >> 33;
}

static inline uint64_t load(const char *s, int n)
{
	uint64_t w = 0;
	memcpy(&w, s, (size_t)n); /* a constant n: one load */
	return w;
}

/* Eight bytes at a time; a short tail in overlapping loads rather than
 * byte by byte (as XXH3 does); the length is mixed in so that key and
 * value boundaries count. */
static inline uint64_t hash_str(uint64_t h, const char *s, size_t n)
{
	uint64_t w;
	if (n >= 8) {
		size_t i = 0;
		for (; i + 8 < n; i += 8)
			h = mix(h, load(s + i, 8));
		w = load(s + n - 8, 8);
	} else if (n >= 4) {
		w = load(s, 4) | load(s + n - 4, 4) << 32;
	} else if (n) {
		w = (uint64_t)(uint8_t)s[0] | (uint64_t)(uint8_t)s[n / 2] << 8 |
		    (uint64_t)(uint8_t)s[n - 1] << 16;
	} else {
		w = 0;
	}
	return mix(h, w ^ (uint64_t)n << 56);
}

/* memcmp(a, b, n) == 0 for the short strings labels are, without a call. */
static inline int same(const uint8_t *a, const char *b, size_t n)
{
	if (n >= 8) {
		size_t i = 0;
		for (; i + 8 < n; i += 8)
			if (load((const char *)a + i, 8) != load(b + i, 8))
				return 0;
		return load((const char *)a + n - 8, 8) == load(b + n - 8, 8);
	}
	if (n >= 4)
		return load((const char *)a, 4) == load(b, 4) &&
		       load((const char *)a + n - 4, 4) == load(b + n - 4, 4);
	for (size_t i = 0; i < n; i++)
		if (a[i] != (uint8_t)b[i])
			return 0;
	return 1;
}

/* Doubles the table; 0 or -1 when memory is short (the cache then stays
 * as it is, and is only slower). */
static int grow(lcache *c)
{
	uint32_t n = c->n_slots * 2;
	uint64_t *slots = calloc(n, sizeof *slots);
	if (!slots)
		return -1;
	for (uint32_t i = 0; i < c->n; i++) {
		uint32_t s = (uint32_t)c->ents[i].hash;
		while (slots[s & (n - 1)])
			s++;
		slots[s & (n - 1)] = (c->ents[i].hash >> 32 << 32) | (i + 1);
	}
	free(c->slots);
	c->slots = slots;
	c->n_slots = n;
	return 0;
}

int lcache_get(rec_pair *out, lcache *c, const tdm_label *l, size_t i)
{
	size_t k, v;
	if (!l->key || !l->value)
		return rec_label_check(&k, &v, l, i);
	k = strlen(l->key);
	v = strlen(l->value);
	uint64_t h = avalanche(hash_str(hash_str(0, l->key, k), l->value, v));
	uint64_t tag = h >> 32 << 32, mask = c->n_slots - 1;
	uint64_t *free_slot = NULL;
	for (uint32_t s = (uint32_t)h, probe = 0; probe < MAX_PROBES; s++, probe++) {
		uint64_t *slot = &c->slots[s & mask];
		if (!*slot) {
			free_slot = slot;
			break;
		}
		if ((*slot & ~0xffffffffull) != tag)
			continue;
		const ent *e = &c->ents[(uint32_t)*slot - 1];
		if (e->p.klen == k && e->p.len == k + v + 2 && same(e->p.bytes, l->key, k) &&
		    same(e->p.bytes + k + 1, l->value, v)) {
			*out = e->p;
			return 0;
		}
	}
	/* Not seen: checked as rec_event_check checks it. */
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
	*out = (rec_pair){bytes, (uint32_t)k, (uint32_t)len, REC_NO_ID};
	if (!keep) {
		c->full = 1;
		return 0;
	}
	out->id = c->n;
	c->ents[c->n] = (ent){h, *out};
	*free_slot = tag | ++c->n;
	c->bytes += len;
	if (c->n * 2 > c->n_slots && c->n_slots < MAX_SLOTS)
		grow(c);
	return 0;
}
