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

void dd_window_init(dd_window *w, int64_t grace)
{
	memset(w, 0, sizeof *w);
	w->width = grace / DD_WINDOW_BUCKETS > 0 ? grace / DD_WINDOW_BUCKETS : 1;
}

void dd_window_free(dd_window *w)
{
	for (size_t i = 0; i < w->n; i++)
		dd_set_free(&w->b[i].set);
	free(w->b);
	w->b = NULL;
	w->n = w->cap = 0;
}

/* The index of the first bucket with id >= `id`. */
static size_t bucket_at(const dd_window *w, int64_t id)
{
	size_t lo = 0, hi = w->n;
	/* Most events land in the newest bucket: look there first. */
	if (w->n && w->b[w->n - 1].id <= id)
		return w->b[w->n - 1].id == id ? w->n - 1 : w->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (w->b[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int dd_window_add(dd_window *w, uint64_t fp, uint64_t off, int64_t ts)
{
	int64_t id = ts / w->width;
	size_t i = bucket_at(w, id);
	if (i == w->n || w->b[i].id != id) {
		if (w->n == w->cap) {
			size_t cap = w->cap ? w->cap * 2 : 32;
			dd_bucket *b = realloc(w->b, cap * sizeof *b);
			if (!b)
				return tdm_fail(TDM_ENOMEM, "dedupe: out of memory");
			w->b = b;
			w->cap = cap;
		}
		memmove(&w->b[i + 1], &w->b[i], (w->n - i) * sizeof *w->b);
		w->b[i].id = id;
		dd_set_init(&w->b[i].set);
		w->n++;
	}
	return dd_set_add(&w->b[i].set, fp, off);
}

uint64_t dd_window_next(const dd_window *w, uint64_t fp, int64_t ts, size_t *cursor)
{
	int64_t id = ts / w->width;
	size_t i = bucket_at(w, id);
	return i < w->n && w->b[i].id == id ? dd_set_next(&w->b[i].set, fp, cursor) : 0;
}

void dd_window_evict(dd_window *w, int64_t cutoff)
{
	/* Bucket id covers [id * width, (id + 1) * width). */
	size_t k = 0;
	while (k < w->n && w->b[k].id < cutoff / w->width - (cutoff % w->width < 0))
		dd_set_free(&w->b[k++].set);
	if (k) {
		memmove(w->b, w->b + k, (w->n - k) * sizeof *w->b);
		w->n -= k;
	}
}

void dd_memo_init(dd_memo *m)
{
	memset(m, 0, sizeof *m);
}

void dd_memo_free(dd_memo *m)
{
	for (size_t i = 0; i < DD_MEMO_LEAVES; i++)
		free(m->v[i].fps);
	memset(m, 0, sizeof *m);
}

void dd_memo_clear(dd_memo *m)
{
	m->n = 0;
}

dd_memo_leaf *dd_memo_find(dd_memo *m, int64_t shard, uint32_t leaf)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].shard == shard && m->v[i].leaf == leaf) {
			m->v[i].used = ++m->clock;
			return &m->v[i];
		}
	return NULL;
}

dd_memo_leaf *dd_memo_add(dd_memo *m, int64_t shard, uint32_t leaf)
{
	size_t at = m->n;
	if (at == DD_MEMO_LEAVES) {
		at = 0;
		for (size_t i = 1; i < m->n; i++)
			if (m->v[i].used < m->v[at].used)
				at = i;
	} else {
		m->n++;
	}
	dd_memo_leaf *l = &m->v[at];
	l->shard = shard;
	l->leaf = leaf;
	l->state = DD_LEAF_SEEN;
	l->n = 0;
	l->used = ++m->clock;
	return l;
}

int dd_memo_leaf_add_fp(dd_memo_leaf *l, uint64_t fp)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		uint64_t *v = realloc(l->fps, cap * sizeof *v);
		if (!v)
			return tdm_fail(TDM_ENOMEM, "dedupe: out of memory");
		l->fps = v;
		l->cap = cap;
	}
	l->fps[l->n++] = fp;
	return 0;
}

static int cmp_fp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void dd_memo_leaf_loaded(dd_memo_leaf *l)
{
	if (l->n)
		qsort(l->fps, l->n, sizeof *l->fps, cmp_fp);
	l->state = DD_LEAF_LOADED;
}

int dd_memo_leaf_has(const dd_memo_leaf *l, uint64_t fp)
{
	return l->n && bsearch(&fp, l->fps, l->n, sizeof fp, cmp_fp) != NULL;
}
