/* dedupe.c - fingerprint sets for exact, cheap duplicate detection. */
#include <stdlib.h>
#include <string.h>

#include "dedupe.h"
#include "error.h"

void dd_set_init(dd_set *s)
{
	memset(s, 0, sizeof *s);
}

void dd_set_free(dd_set *s)
{
	free(s->slots);
	memset(s, 0, sizeof *s);
}

static void insert_slot(dd_slot *slots, size_t mask, uint64_t fp, uint64_t off)
{
	size_t i = fp & mask;
	while (slots[i].off)
		i = (i + 1) & mask;
	slots[i] = (dd_slot){fp, off};
}

static int grow(dd_set *s)
{
	size_t cap = s->slots ? (s->mask + 1) * 2 : 1024;
	dd_slot *slots = calloc(cap, sizeof *slots);
	if (!slots)
		return tdm_fail(TDM_ENOMEM, "dedupe: out of memory");
	if (s->slots)
		for (size_t i = 0; i <= s->mask; i++)
			if (s->slots[i].off)
				insert_slot(slots, cap - 1, s->slots[i].fp, s->slots[i].off);
	free(s->slots);
	s->slots = slots;
	s->mask = cap - 1;
	return 0;
}

int dd_set_add(dd_set *s, uint64_t fp, uint64_t off)
{
	/* Keep the load under 1/2 so probes stay short. */
	if (!s->slots || (s->count + 1) * 2 > s->mask + 1) {
		int r = grow(s);
		if (r)
			return r;
	}
	insert_slot(s->slots, s->mask, fp, off);
	s->count++;
	return 0;
}

void dd_set_remove(dd_set *s, uint64_t fp, uint64_t off)
{
	if (!s->slots)
		return;
	size_t i = fp & s->mask;
	while (s->slots[i].off && !(s->slots[i].fp == fp && s->slots[i].off == off))
		i = (i + 1) & s->mask;
	if (!s->slots[i].off)
		return;
	/* Backward-shift deletion: no tombstones, probes stay exact. */
	size_t j = i;
	for (;;) {
		j = (j + 1) & s->mask;
		if (!s->slots[j].off)
			break;
		size_t home = s->slots[j].fp & s->mask;
		/* Move j into the hole at i unless its home lies in (i, j]. */
		if (((j - home) & s->mask) >= ((j - i) & s->mask)) {
			s->slots[i] = s->slots[j];
			i = j;
		}
	}
	s->slots[i].off = 0;
	s->count--;
}

uint64_t dd_set_next(const dd_set *s, uint64_t fp, size_t *cursor)
{
	if (!s->slots)
		return 0;
	/* *cursor counts the probe steps already taken from fp's home. */
	for (size_t i = (fp + *cursor) & s->mask; s->slots[i].off;
	     i = (i + 1) & s->mask) {
		++*cursor;
		if (s->slots[i].fp == fp)
			return s->slots[i].off;
	}
	return 0;
}

void dd_window_init(dd_window *w)
{
	memset(w, 0, sizeof *w);
	dd_set_init(&w->set);
}

void dd_window_free(dd_window *w)
{
	dd_set_free(&w->set);
	free(w->fifo);
	memset(w, 0, sizeof *w);
}

int dd_window_add(dd_window *w, uint64_t fp, uint64_t off, int64_t ts)
{
	if (w->len == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 1024;
		struct dd_fifo_item *f = malloc(cap * sizeof *f);
		if (!f)
			return tdm_fail(TDM_ENOMEM, "dedupe: out of memory");
		for (size_t i = 0; i < w->len; i++)
			f[i] = w->fifo[(w->head + i) % w->cap];
		free(w->fifo);
		w->fifo = f;
		w->cap = cap;
		w->head = 0;
	}
	int r = dd_set_add(&w->set, fp, off);
	if (r)
		return r;
	w->fifo[(w->head + w->len) % w->cap] = (struct dd_fifo_item){fp, off, ts};
	w->len++;
	return 0;
}

void dd_window_evict(dd_window *w, int64_t cutoff)
{
	while (w->len && w->fifo[w->head].ts < cutoff) {
		dd_set_remove(&w->set, w->fifo[w->head].fp, w->fifo[w->head].off);
		w->head = (w->head + 1) % w->cap;
		w->len--;
	}
}

#define BLOOM_FIRST_CAPACITY 65536
#define BLOOM_BITS_PER_ENTRY 16 /* 8 bits set in a 512-bit block */

void dd_filter_init(dd_filter *f)
{
	memset(f, 0, sizeof *f);
}

void dd_filter_free(dd_filter *f)
{
	for (int i = 0; i < f->n; i++)
		free(f->f[i].blocks);
	memset(f, 0, sizeof *f);
}

/* The block and the 8 bits of a fingerprint: the high bits choose the
 * block, 8 slices of 9 low bits choose a bit each. */
static uint64_t *bloom_block(const struct dd_bloom *b, uint64_t fp)
{
	return b->blocks + 8 * (uint64_t)(((unsigned __int128)(fp >> 16 | fp << 48) *
	                                   b->n_blocks) >> 64);
}

static void bloom_set(struct dd_bloom *b, uint64_t fp)
{
	uint64_t *blk = bloom_block(b, fp);
	for (int i = 0; i < 8; i++) {
		unsigned bit = (unsigned)(fp >> (9 * i)) & 511;
		blk[bit >> 6] |= 1ull << (bit & 63);
	}
}

static int bloom_test(const struct dd_bloom *b, uint64_t fp)
{
	const uint64_t *blk = bloom_block(b, fp);
	for (int i = 0; i < 8; i++) {
		unsigned bit = (unsigned)(fp >> (9 * i)) & 511;
		if (!(blk[bit >> 6] & 1ull << (bit & 63)))
			return 0;
	}
	return 1;
}

int dd_filter_add(dd_filter *f, uint64_t fp)
{
	struct dd_bloom *b = f->n ? &f->f[f->n - 1] : NULL;
	if (!b || b->count == b->capacity) {
		if (f->n == DD_FILTER_MAX)
			return tdm_fail(TDM_ENOMEM, "dedupe: filter chain is full");
		uint64_t cap = b ? b->capacity * 2 : BLOOM_FIRST_CAPACITY;
		uint64_t n_blocks = cap * BLOOM_BITS_PER_ENTRY / 512;
		uint64_t *blocks = calloc(n_blocks * 8, sizeof *blocks);
		if (!blocks)
			return tdm_fail(TDM_ENOMEM, "dedupe: out of memory");
		b = &f->f[f->n++];
		*b = (struct dd_bloom){blocks, n_blocks, 0, cap};
	}
	bloom_set(b, fp);
	b->count++;
	return 0;
}

int dd_filter_maybe(const dd_filter *f, uint64_t fp)
{
	for (int i = f->n - 1; i >= 0; i--)
		if (bloom_test(&f->f[i], fp))
			return 1;
	return 0;
}
