/* labelcount.c - which label pairs the events of [from, to) carry, and how
 * many events carry each.
 *
 * A shard wholly inside the range is counted from its label bitmaps: the
 * cardinalities of its bitmaps, summed per pair, without reading an event
 * but those of the newest chunk a writer has not put yet.
 * A shard the range cuts is read (reader.c) and its events' labels are
 * counted; so is a sealed shard, a shard whose bitmaps are not sound, or
 * every shard of an index made before the bitmaps existed. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hash.h"
#include "io.h"
#include "labelcount.h"
#include "labels.h"
#include "reader.h"
#include "store.h"

typedef struct pair_count {
	uint8_t *pair; /* "key\0value\0", owned; NULL: free slot */
	size_t len;
	uint64_t hash, n;
} pair_count;

typedef struct count_map {
	pair_count *slots;
	size_t cap, n;
} count_map;

static pair_count *map_slot(pair_count *slots, size_t cap, uint64_t h,
                            const uint8_t *pair, size_t len)
{
	for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1))
		if (!slots[i].pair || (slots[i].hash == h && slots[i].len == len &&
		                       memcmp(slots[i].pair, pair, len) == 0))
			return &slots[i];
}

static int map_add(count_map *m, const uint8_t *pair, size_t len, uint64_t n)
{
	if ((m->n + 1) * 4 > m->cap * 3) {
		size_t cap = m->cap ? m->cap * 2 : 256;
		pair_count *a = calloc(cap, sizeof *a);
		if (!a)
			return tdm_fail(TDM_ENOMEM, "out of memory");
		for (size_t i = 0; i < m->cap; i++)
			if (m->slots[i].pair)
				*map_slot(a, cap, m->slots[i].hash, m->slots[i].pair,
				          m->slots[i].len) = m->slots[i];
		free(m->slots);
		m->slots = a;
		m->cap = cap;
	}
	uint64_t h = tdm_hash64(pair, len, 0);
	pair_count *p = map_slot(m->slots, m->cap, h, pair, len);
	if (!p->pair) {
		if (!(p->pair = malloc(len)))
			return tdm_fail(TDM_ENOMEM, "out of memory");
		memcpy(p->pair, pair, len);
		p->len = len;
		p->hash = h;
		m->n++;
	}
	p->n += n;
	return 0;
}

static void map_free(count_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].pair);
	free(m->slots);
}

/* ---- one shard -------------------------------------------------------- */

typedef struct staged {
	const uint8_t *pair; /* in LMDB's memory, valid for the transaction */
	size_t len;
	uint64_t n;
} staged;

typedef struct stage {
	staged *a;
	size_t n, cap;
} stage;

static int stage_add(void *ctx, const uint8_t *pair, size_t len, uint64_t n)
{
	stage *st = ctx;
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 256;
		staged *a = realloc(st->a, cap * sizeof *a);
		if (!a)
			return tdm_fail(TDM_ENOMEM, "out of memory");
		st->a = a;
		st->cap = cap;
	}
	st->a[st->n++] = (staged){pair, len, n};
	return 0;
}

/* From the bitmaps: 0, TDM_ECORRUPT (nothing counted), or an error. */
static int count_bitmaps(count_map *m, kv_txn *txn, int64_t shard)
{
	stage st = {0};
	int r = lbl_count(txn, shard, stage_add, &st);
	for (size_t i = 0; !r && i < st.n; i++)
		r = map_add(m, st.a[i].pair, st.a[i].len, st.a[i].n);
	free(st.a);
	return r;
}

/* The labels of the records of one file from its labels end on, which no
 * bitmap holds yet (labels.c, L3): at most the newest chunk. */
static int count_tail(count_map *m, tdm_store *s, const shard_meta *sm,
                      shard_kind kind)
{
	uint64_t from = kind == SHARD_MAIN ? sm->labels_main_end : sm->labels_recon_end;
	uint64_t end = kind == SHARD_MAIN ? sm->main_len : sm->recon_len;
	if (from >= end)
		return 0;
	char name[64];
	int fd;
	uint64_t size;
	int r = store_shard_open_read(&fd, &size, name, sizeof name, s, sm->shard, kind);
	if (r == SHARD_BAD_HEADER)
		io_close(fd);
	if (r)
		return r == SHARD_BAD_HEADER ? TDM_ECORRUPT : r;
	shard_scan sc;
	store_scan_init(&sc, s, sm->shard, fd, name, from, end < size ? end : size, 1 << 20);
	rec_view rec;
	uint64_t off;
	while (!r && (r = scan_next(&sc, &rec, &off)) == 0)
		for (uint32_t at = 0; !r && at < rec.labels_len;) {
			const uint8_t *p = rec.labels + at;
			size_t klen = strlen((const char *)p) + 1;
			size_t len = klen + strlen((const char *)p + klen) + 1;
			r = map_add(m, p, len, 1);
			at += (uint32_t)len;
		}
	/* Damage: counted by reading the shard instead, as for a bad bitmap. */
	if (r == 1)
		r = sc.damaged || size < end ? TDM_ECORRUPT : 0;
	scan_free(&sc);
	io_close(fd);
	return r;
}

/* By reading the events of [from, to). */
static int count_events(count_map *m, tdm_store *s, int64_t from, int64_t to)
{
	tdm_iter *it;
	int r = reader_open(&it, s, from, to, NULL);
	if (r)
		return r;
	const tdm_event *ev;
	uint8_t pair[TDM_MAX_LABEL_KEY + TDM_MAX_LABEL_VALUE + 2];
	while (!r && (r = reader_next(&ev, it)) == 0)
		for (size_t i = 0; i < ev->n_labels && !r; i++) {
			size_t kl = strlen(ev->labels[i].key) + 1;
			size_t vl = strlen(ev->labels[i].value) + 1;
			memcpy(pair, ev->labels[i].key, kl);
			memcpy(pair + kl, ev->labels[i].value, vl);
			r = map_add(m, pair, kl + vl, 1);
		}
	reader_close(it);
	return r == TDM_ITEROVER ? 0 : r;
}

typedef struct shards {
	shard_meta *a;
	size_t n;
	int64_t from, to;
} shards;

static int collect(void *ctx, const shard_meta *m)
{
	shards *l = ctx;
	shard_meta *a = realloc(l->a, (l->n + 1) * sizeof *a);
	if (!a)
		return tdm_fail(TDM_ENOMEM, "out of memory");
	l->a = a;
	l->a[l->n++] = *m;
	return 0;
}

static int pair_cmp(const void *a, const void *b)
{
	const pair_count *x = a, *y = b;
	int c = memcmp(x->pair, y->pair, x->len < y->len ? x->len : y->len);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int hand_out(tdm_label_count **out, size_t *n, count_map *m)
{
	pair_count *list = malloc((m->n ? m->n : 1) * sizeof *list);
	tdm_label_count *res = calloc(m->n ? m->n : 1, sizeof *res);
	if (!list || !res) {
		free(list);
		free(res);
		return tdm_fail(TDM_ENOMEM, "out of memory");
	}
	size_t k = 0;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].pair && m->slots[i].n) {
			list[k++] = m->slots[i];
			m->slots[i].pair = NULL; /* now the result's */
		}
	qsort(list, k, sizeof *list, pair_cmp);
	for (size_t i = 0; i < k; i++) {
		const char *key = (const char *)list[i].pair;
		res[i] = (tdm_label_count){key, key + strlen(key) + 1, list[i].n};
	}
	free(list);
	*out = res;
	*n = k;
	return 0;
}

int labelcount_get(tdm_label_count **out, size_t *n, tdm_store *s, int64_t from,
                   int64_t to)
{
	count_map m = {0};
	shards l = {0};
	kv_txn *txn = NULL;
	kv_val v;
	int64_t d = s->opts.shard_duration_ns;
	if (from < 0)
		from = 0;
	int r = kv_begin(&txn, s->kv, 0);
	if (r || from >= to)
		goto out;
	int bitmaps = (r = kv_get(&v, txn, KV_META, META_LABELS, strlen(META_LABELS))) == 0;
	if (r && r != TDM_ENOTFOUND)
		goto out;
	if ((r = index_meta_each(txn, from / d, (to - 1) / d, collect, &l)))
		goto out;
	for (size_t i = 0; i < l.n && !r; i++) {
		const shard_meta *sm = &l.a[i];
		int64_t hi = sm->max_ts > sm->recon_max_ts ? sm->max_ts : sm->recon_max_ts;
		if (sm->min_ts >= to || hi < from)
			continue;
		r = TDM_ECORRUPT;
		/* A sealed main file has no bitmaps (recover.c): read it. */
		if (bitmaps && !sm->seal_gen && sm->min_ts >= from && hi < to) {
			count_map part = {0};
			r = count_bitmaps(&part, txn, sm->shard);
			if (!r)
				r = count_tail(&part, s, sm, SHARD_MAIN);
			if (!r)
				r = count_tail(&part, s, sm, SHARD_RECON);
			for (size_t j = 0; !r && j < part.cap; j++)
				if (part.slots[j].pair)
					r = map_add(&m, part.slots[j].pair, part.slots[j].len,
					            part.slots[j].n);
			map_free(&part);
		}
		if (r == TDM_ECORRUPT) {
			int64_t lo = sm->shard * d;
			int64_t end = lo > INT64_MAX - d ? INT64_MAX : lo + d;
			r = count_events(&m, s, lo > from ? lo : from, end < to ? end : to);
		}
	}
out:
	kv_abort(txn);
	free(l.a);
	if (!r)
		r = hand_out(out, n, &m);
	map_free(&m);
	return r;
}

void labelcount_free(tdm_label_count *counts, size_t n)
{
	if (!counts)
		return;
	for (size_t i = 0; i < n; i++)
		free((void *)counts[i].key);
	free(counts);
}
