/*
 * test_digest.c - replica digests (issue 4): per shard, a 16-ary tree of
 * (count, fingerprint sum) nodes over 65536 leaves, kept at append time.
 *
 * The same events in any order, batching, on time or late, give the same
 * digests; every digest, clipped or not, equals a brute-force sum over the
 * events read back with tdm_iter; a leaf's events come back exactly,
 * reading a few kilobytes; digests survive an index rebuild; verify finds
 * tampered rows; arguments are checked.
 *
 * The tree's geometry is computed here from its definition (leaf width =
 * ceil(shard duration / 65536); node n at level l covers leaves
 * [n << 4(4-l), (n+1) << 4(4-l))), not from src/digest.c.
 */
#include "support.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "kv.h"

#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)
#define T0 INT64_C(1700000000000000000)
#define LEAVES (UINT32_C(1) << (4 * TDM_DIGEST_LEAF_LEVEL))
#define FAN TDM_DIGEST_FANOUT
#define PAY_MAX 120

/* ---- the tree's geometry ------------------------------------------------ */

static int64_t leaf_width(int64_t dur)
{
	return dur / (int64_t)LEAVES + (dur % (int64_t)LEAVES != 0);
}

static uint32_t leaf_of(int64_t dur, int64_t ts)
{
	int64_t shard = ts / dur;
	return (uint32_t)((ts - shard * dur) / leaf_width(dur));
}

static void node_range(int64_t *lo, int64_t *hi, int64_t dur, int64_t shard,
                       unsigned level, uint32_t node)
{
	int64_t start = shard * dur, end = start + dur, w = leaf_width(dur);
	unsigned shift = 4 * (TDM_DIGEST_LEAF_LEVEL - level);
	*lo = start + ((int64_t)node << shift) * w;
	*hi = start + (((int64_t)node + 1) << shift) * w;
	if (*lo > end)
		*lo = end;
	if (*hi > end)
		*hi = end;
}

static int digest_eq(const tdm_digest *a, const tdm_digest *b)
{
	return a->count == b->count && a->sum == b->sum;
}

/* ---- random event sets -------------------------------------------------- */

static const char *const KEYS[] = {"host", "org", "zone"};
static const char *const VALUES[] = {"web-1", "web-2", "db-1", "org:acme/x", "eu", ""};

typedef struct evset {
	size_t n;
	tdm_event *ev;
	tdm_label *lab;   /* 3 per event */
	uint8_t *pay;     /* PAY_MAX per event */
	int64_t *arrive;  /* when the event reaches the store (an ordering key) */
	int64_t dur, grace;
} evset;

/* `n` distinct events with ts in [from, from + span): most uniform, a fifth
 * crowded into a few leaves, some sharing a ts, some sharing ts and id with
 * another event but not its payload. Arrival: on time, or delayed by up to
 * 0.9 grace (`ooo` percent, out of order but on time), or by 1.5 to 4.5
 * grace (`late` percent: late once later events came). */
static void evset_gen(evset *es, tst_rng *r, size_t n, int64_t dur, int64_t grace,
                      int64_t from, int64_t span, unsigned ooo, unsigned late)
{
	memset(es, 0, sizeof *es);
	es->n = n;
	es->dur = dur;
	es->grace = grace;
	es->ev = tst_malloc(n * sizeof *es->ev);
	es->lab = tst_malloc(3 * n * sizeof *es->lab);
	es->pay = tst_malloc(n * PAY_MAX);
	es->arrive = tst_malloc(n * sizeof *es->arrive);
	int64_t hot[12], w = leaf_width(dur);
	for (int h = 0; h < 12; h++)
		hot[h] = from + (int64_t)tst_rng_range(r, (uint64_t)span);
	for (size_t i = 0; i < n; i++) {
		tdm_event *e = &es->ev[i];
		uint64_t c = tst_rng_range(r, 100);
		int64_t ts;
		uint32_t id = (uint32_t)i * 2654435761u; /* distinct for distinct i */
		int force_pay = 0;
		if (c < 20) {
			int64_t h = hot[tst_rng_range(r, 12)], start = h / dur * dur;
			int64_t leaf_start = start + (h - start) / w * w;
			ts = leaf_start + (int64_t)tst_rng_range(r, (uint64_t)w);
			if (ts >= start + dur)
				ts = h;
		} else if (c < 25 && i > 0) {
			ts = es->ev[tst_rng_range(r, i)].ts;
		} else if (c < 28 && i > 0) {
			const tdm_event *o = &es->ev[tst_rng_range(r, i)];
			ts = o->ts;
			id = o->id;
			force_pay = 1;
		} else {
			ts = from + (int64_t)tst_rng_range(r, (uint64_t)span);
		}
		size_t pl = tst_rng_range(r, PAY_MAX + 1);
		if (force_pay && pl < 4)
			pl = 4;
		uint8_t *p = es->pay + i * PAY_MAX;
		tst_rng_bytes(r, p, pl);
		if (pl >= 4) {
			uint32_t k = (uint32_t)i;
			memcpy(p, &k, 4);
		}
		tdm_label *l = es->lab + 3 * i;
		size_t nl = tst_rng_range(r, 3);
		for (size_t k = 0; k < nl; k++)
			l[k] = (tdm_label){KEYS[(k + i) % 3],
			                   VALUES[tst_rng_range(r, sizeof VALUES / sizeof *VALUES)]};
		*e = (tdm_event){ts, id, 0, l, nl, p, pl};
		uint64_t d = tst_rng_range(r, 100);
		int64_t delay = 0;
		if (d < late)
			delay = grace * 3 / 2 + (int64_t)tst_rng_range(r, (uint64_t)grace * 3 + 1);
		else if (d < late + ooo)
			delay = (int64_t)tst_rng_range(r, (uint64_t)grace * 9 / 10 + 1);
		es->arrive[i] = ts + delay;
	}
}

static void evset_free(evset *es)
{
	free(es->ev);
	free(es->lab);
	free(es->pay);
	free(es->arrive);
	memset(es, 0, sizeof *es);
}

typedef struct keyed {
	int64_t key;
	size_t i;
} keyed;

static int keyed_cmp(const void *pa, const void *pb)
{
	const keyed *a = pa, *b = pb;
	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

/* The events' indices sorted by `key`. */
static size_t *order_by(const evset *es, const int64_t *key)
{
	keyed *k = tst_malloc(es->n * sizeof *k);
	for (size_t i = 0; i < es->n; i++)
		k[i] = (keyed){key[i], i};
	qsort(k, es->n, sizeof *k, keyed_cmp);
	size_t *o = tst_malloc(es->n * sizeof *o);
	for (size_t i = 0; i < es->n; i++)
		o[i] = k[i].i;
	free(k);
	return o;
}

static size_t *order_arrival(const evset *es)
{
	return order_by(es, es->arrive);
}

static size_t *order_shuffled(const evset *es, tst_rng *r)
{
	size_t *o = tst_malloc(es->n * sizeof *o);
	for (size_t i = 0; i < es->n; i++)
		o[i] = i;
	for (size_t i = es->n; i > 1; i--) {
		size_t j = tst_rng_range(r, i), t = o[i - 1];
		o[i - 1] = o[j];
		o[j] = t;
	}
	return o;
}

/* Appends the events in `order` in batches of 1 to max_batch events;
 * every one must be stored (none is a duplicate). `outcome[i]` gets event
 * i's outcome when not NULL. Returns how many were stored late. */
static uint64_t fill(tdm_store *s, const evset *es, const size_t *order,
                     size_t max_batch, tst_rng *r, uint8_t *outcome)
{
	tdm_event *batch = tst_malloc(max_batch * sizeof *batch);
	uint8_t *out = tst_malloc(max_batch);
	uint64_t late = 0;
	for (size_t at = 0; at < es->n;) {
		size_t b = 1 + tst_rng_range(r, max_batch);
		if (b > es->n - at)
			b = es->n - at;
		for (size_t k = 0; k < b; k++)
			batch[k] = es->ev[order[at + k]];
		tdm_append_result res;
		int rc = tdm_append(&res, out, s, batch, b);
		ck_assert_msg(rc == 0, "append: %d %s", rc, tdm_error_message());
		ck_assert_msg(res.appended == b && res.duplicates == 0,
		              "batch at %zu: %" PRIu64 " of %zu appended, %" PRIu64
		              " duplicates", at, res.appended, b, res.duplicates);
		late += res.late;
		if (outcome)
			for (size_t k = 0; k < b; k++)
				outcome[order[at + k]] = out[k];
		at += b;
	}
	free(batch);
	free(out);
	return late;
}

/* ---- leaves with events, and the nodes above them ---------------------- */

typedef struct leafkey {
	int64_t shard;
	uint32_t leaf;
} leafkey;

static int leafkey_cmp(const void *pa, const void *pb)
{
	const leafkey *a = pa, *b = pb;
	if (a->shard != b->shard)
		return a->shard < b->shard ? -1 : 1;
	return a->leaf < b->leaf ? -1 : a->leaf > b->leaf;
}

/* The distinct leaves holding the events, sorted. */
static size_t leaves_of(leafkey **out, const evset *es)
{
	leafkey *k = tst_malloc((es->n + 1) * sizeof *k);
	for (size_t i = 0; i < es->n; i++)
		k[i] = (leafkey){es->ev[i].ts / es->dur, leaf_of(es->dur, es->ev[i].ts)};
	qsort(k, es->n, sizeof *k, leafkey_cmp);
	size_t m = 0;
	for (size_t i = 0; i < es->n; i++)
		if (!m || leafkey_cmp(&k[m - 1], &k[i]))
			k[m++] = k[i];
	*out = k;
	return m;
}

/* The children digests of nodes, flattened, with which node they are of. */
typedef struct dlist {
	tdm_digest *d; /* FAN per node */
	struct nodeid {
		int64_t shard;
		unsigned level;
		uint32_t node;
	} *id;
	size_t n, cap;
} dlist;

typedef void (*children_get)(tdm_digest out[FAN], void *ctx, int64_t shard,
                             unsigned level, uint32_t node, int64_t from, int64_t to);

static void store_children(tdm_digest out[FAN], void *ctx, int64_t shard,
                           unsigned level, uint32_t node, int64_t from, int64_t to)
{
	int r = tdm_digest_children(out, ctx, shard, level, node, from, to);
	if (r)
		ck_abort_msg("digest_children(%" PRId64 ", %u, %" PRIu32 "): %d %s", shard,
		             level, node, r, tdm_error_message());
}

/* Walks every node on the path from the shard down to each leaf in `lk`
 * (sorted), each once, and gathers its children's digests. */
static void walk_paths(dlist *out, children_get get, void *ctx, const leafkey *lk,
                       size_t n, int64_t from, int64_t to)
{
	for (size_t i = 0; i < n; i++) {
		for (unsigned level = 0; level < TDM_DIGEST_LEAF_LEVEL; level++) {
			unsigned shift = 4 * (TDM_DIGEST_LEAF_LEVEL - level);
			uint32_t node = lk[i].leaf >> shift;
			if (i && lk[i - 1].shard == lk[i].shard && lk[i - 1].leaf >> shift == node)
				continue;
			if (out->n == out->cap) {
				out->cap = out->cap ? 2 * out->cap : 256;
				out->d = tst_realloc(out->d, out->cap * FAN * sizeof *out->d);
				out->id = tst_realloc(out->id, out->cap * sizeof *out->id);
			}
			get(out->d + out->n * FAN, ctx, lk[i].shard, level, node, from, to);
			out->id[out->n++] = (struct nodeid){lk[i].shard, level, node};
		}
	}
}

static void dlist_free(dlist *l)
{
	free(l->d);
	free(l->id);
	memset(l, 0, sizeof *l);
}

static void dlist_expect_eq(const dlist *have, const dlist *want, const char *what)
{
	ck_assert_uint_eq(have->n, want->n);
	for (size_t i = 0; i < have->n; i++)
		for (int c = 0; c < FAN; c++) {
			const tdm_digest *h = &have->d[i * FAN + c], *w = &want->d[i * FAN + c];
			if (!digest_eq(h, w))
				ck_abort_msg("%s: shard %" PRId64 " level %u node %" PRIu32
				             " child %d: %" PRIu64 " events sum %016" PRIx64
				             ", want %" PRIu64 " sum %016" PRIx64, what,
				             have->id[i].shard, have->id[i].level, have->id[i].node, c,
				             h->count, h->sum, w->count, w->sum);
		}
}

/* Events in leaves whose digests are nonzero: the walk saw real data. */
static uint64_t dlist_leaf_events(const dlist *l)
{
	uint64_t n = 0;
	for (size_t i = 0; i < l->n; i++)
		if (l->id[i].level == TDM_DIGEST_LEAF_LEVEL - 1)
			for (int c = 0; c < FAN; c++)
				n += l->d[i * FAN + c].count;
	return n;
}

typedef struct shardlist {
	tdm_shard_digest *a;
	size_t n;
} shardlist;

static shardlist shards_get(tdm_store *s, int64_t from, int64_t to)
{
	shardlist l = {NULL, 77};
	int r = tdm_digest_shards(&l.a, &l.n, s, from, to);
	ck_assert_msg(r == 0, "digest_shards: %d %s", r, tdm_error_message());
	ck_assert(l.n == 0 ? l.a == NULL : l.a != NULL);
	return l;
}

static void shards_expect_eq(const shardlist *have, const shardlist *want,
                             const char *what)
{
	ck_assert_msg(have->n == want->n, "%s: %zu shards, want %zu", what, have->n, want->n);
	for (size_t i = 0; i < have->n; i++) {
		const tdm_shard_digest *h = &have->a[i], *w = &want->a[i];
		ck_assert_msg(h->shard == w->shard && digest_eq(&h->digest, &w->digest),
		              "%s: shard #%zu: %" PRId64 " %" PRIu64 "/%016" PRIx64 ", want %" PRId64
		              " %" PRIu64 "/%016" PRIx64, what, i, h->shard, h->digest.count,
		              h->digest.sum, w->shard, w->digest.count, w->digest.sum);
	}
}

/* ---- the brute-force truth: what tdm_iter reads back ------------------- */

typedef struct truth {
	size_t n;
	int64_t *ts;    /* ascending */
	uint64_t *psum; /* psum[i]: fingerprints of the first i events */
	int64_t dur;
} truth;

static truth truth_read(tdm_store *s, int64_t dur)
{
	tst_evlist l = tst_read_all(s, 0, INT64_MAX);
	truth t = {l.n, tst_malloc((l.n + 1) * sizeof *t.ts),
	           tst_malloc((l.n + 1) * sizeof *t.psum), dur};
	t.psum[0] = 0;
	for (size_t i = 0; i < l.n; i++) {
		t.ts[i] = l.a[i]->ts;
		ck_assert(i == 0 || t.ts[i - 1] <= t.ts[i]);
		uint64_t fp = tdm_event_fingerprint(l.a[i]);
		ck_assert(fp != 0);
		t.psum[i + 1] = t.psum[i] + fp;
	}
	tst_evlist_free(&l);
	return t;
}

static void truth_free(truth *t)
{
	free(t->ts);
	free(t->psum);
}

static size_t lower_bound(const truth *t, int64_t ts)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->ts[mid] < ts)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The digest of the events with ts in [lo, hi) ∩ [from, to). */
static tdm_digest truth_in(const truth *t, int64_t lo, int64_t hi, int64_t from,
                           int64_t to)
{
	if (lo < from)
		lo = from;
	if (hi > to)
		hi = to;
	if (lo >= hi)
		return (tdm_digest){0, 0};
	size_t a = lower_bound(t, lo), b = lower_bound(t, hi);
	return (tdm_digest){b - a, t->psum[b] - t->psum[a]};
}

static void truth_children(tdm_digest out[FAN], void *ctx, int64_t shard,
                           unsigned level, uint32_t node, int64_t from, int64_t to)
{
	const truth *t = ctx;
	for (uint32_t c = 0; c < FAN; c++) {
		int64_t lo, hi;
		node_range(&lo, &hi, t->dur, shard, level + 1, node * FAN + c);
		out[c] = truth_in(t, lo, hi, from, to);
	}
}

static shardlist truth_shards(const truth *t, int64_t from, int64_t to)
{
	shardlist l = {tst_malloc((t->n + 1) * sizeof *l.a), 0};
	for (size_t i = 0; i < t->n;) {
		int64_t shard = t->ts[i] / t->dur;
		tdm_digest d = truth_in(t, shard * t->dur, (shard + 1) * t->dur, from, to);
		if (d.count)
			l.a[l.n++] = (tdm_shard_digest){shard, d};
		i = lower_bound(t, (shard + 1) * t->dur);
	}
	return l;
}

/* Straight through tdm_iter, for a few nodes: the truth's own check. */
static tdm_digest iter_digest(tdm_store *s, int64_t lo, int64_t hi)
{
	tdm_digest d = {0, 0};
	if (lo >= hi)
		return d;
	tst_evlist l = tst_read_all(s, lo, hi);
	for (size_t i = 0; i < l.n; i++) {
		d.count++;
		d.sum += tdm_event_fingerprint(l.a[i]);
	}
	tst_evlist_free(&l);
	return d;
}

/* ---- 1. order independence ---------------------------------------------- */

#define O_SHARD (10 * SEC)
#define O_GRACE (1 * SEC)

START_TEST(test_order_independent)
{
	tst_rng r;
	tst_rng_seed(&r, 0xd16e57);
	evset es;
	evset_gen(&es, &r, 4000, O_SHARD, O_GRACE, T0 + 3 * SEC, 36 * SEC, 15, 10);

	/* A: in ts order, but 5% held back to the end (late in A);
	 * B: in arrival order (some late); C: shuffled (mostly late). */
	int64_t *key = tst_malloc(es.n * sizeof *key);
	for (size_t i = 0; i < es.n; i++)
		key[i] = tst_rng_chance(&r, 5) ? INT64_MAX - 1 - (int64_t)i : es.ev[i].ts;
	size_t *oa = order_by(&es, key), *ob = order_arrival(&es),
	       *oc = order_shuffled(&es, &r);
	free(key);
	uint8_t *outa = tst_malloc(es.n), *outb = tst_malloc(es.n), *outc = tst_malloc(es.n);
	char *da = tst_store_new(O_SHARD, O_GRACE, 0), *db = tst_store_new(O_SHARD, O_GRACE, 0),
	     *dc = tst_store_new(O_SHARD, O_GRACE, 0);
	tdm_store *a = tst_store_open(da, 0, TDM_DURABILITY_NONE);
	tdm_store *b = tst_store_open(db, 0, TDM_DURABILITY_NONE);
	tdm_store *c = tst_store_open(dc, 0, TDM_DURABILITY_NONE);
	fill(a, &es, oa, 256, &r, outa);
	fill(b, &es, ob, 40, &r, outb);
	fill(c, &es, oc, 500, &r, outc);

	/* B again, partly: all duplicates, nothing changes. */
	tdm_append_result res;
	ck_assert_int_eq(tdm_append(&res, NULL, b, es.ev, 300), 0);
	ck_assert_uint_eq(res.duplicates, 300);

	tdm_stat sa, sb, sc;
	ck_assert_int_eq(tdm_stat_get(&sa, a), 0);
	ck_assert_int_eq(tdm_stat_get(&sb, b), 0);
	ck_assert_int_eq(tdm_stat_get(&sc, c), 0);
	ck_assert_uint_eq(sa.events, es.n);
	ck_assert_uint_eq(sb.events, es.n);
	ck_assert_uint_eq(sc.events, es.n);
	fprintf(stderr, "order: late events A %" PRIu64 ", B %" PRIu64 ", C %" PRIu64 "\n",
	        sa.late_events, sb.late_events, sc.late_events);
	ck_assert(sa.late_events > 0 && sb.late_events > 0);
	ck_assert(sa.late_events != sb.late_events && sb.late_events != sc.late_events);
	size_t late_a_only = 0, late_b_only = 0;
	for (size_t i = 0; i < es.n; i++) {
		late_a_only += outa[i] == TDM_STORED_LATE && outb[i] == TDM_STORED;
		late_b_only += outb[i] == TDM_STORED_LATE && outa[i] == TDM_STORED;
	}
	ck_assert_msg(late_a_only > 0 && late_b_only > 0,
	              "want events late in one store and on time in the other: %zu, %zu",
	              late_a_only, late_b_only);

	shardlist la = shards_get(a, 0, INT64_MAX), lb = shards_get(b, 0, INT64_MAX),
	          lc = shards_get(c, 0, INT64_MAX);
	ck_assert_uint_eq(la.n, 4); /* T0+3 s .. T0+39 s: shards 0 to 3 */
	uint64_t total = 0;
	for (size_t i = 0; i < la.n; i++) {
		uint64_t want = 0;
		for (size_t k = 0; k < es.n; k++)
			want += es.ev[k].ts / O_SHARD == la.a[i].shard;
		ck_assert_uint_eq(la.a[i].digest.count, want);
		total += want;
	}
	ck_assert_uint_eq(total, es.n);
	shards_expect_eq(&lb, &la, "B vs A");
	shards_expect_eq(&lc, &la, "C vs A");

	leafkey *lk;
	size_t nl = leaves_of(&lk, &es);
	dlist ta = {0}, tb = {0}, tc = {0};
	walk_paths(&ta, store_children, a, lk, nl, 0, INT64_MAX);
	walk_paths(&tb, store_children, b, lk, nl, 0, INT64_MAX);
	walk_paths(&tc, store_children, c, lk, nl, 0, INT64_MAX);
	ck_assert_uint_eq(dlist_leaf_events(&ta), es.n);
	dlist_expect_eq(&tb, &ta, "B vs A");
	dlist_expect_eq(&tc, &ta, "C vs A");
	/* Each parent's digest is the sum of its children's. */
	for (size_t i = 0; i < ta.n; i++) {
		tdm_digest sum = {0, 0};
		for (int k = 0; k < FAN; k++) {
			sum.count += ta.d[i * FAN + k].count;
			sum.sum += ta.d[i * FAN + k].sum;
		}
		if (ta.id[i].level == 0) {
			size_t j = 0;
			while (j < la.n && la.a[j].shard != ta.id[i].shard)
				j++;
			ck_assert(j < la.n && digest_eq(&sum, &la.a[j].digest));
		}
		ck_assert(sum.count > 0);
	}
	/* One event more in B: now they differ, down to its leaf. */
	const tdm_label lab[] = {{"host", "extra"}};
	tdm_event extra = {es.ev[0].ts, 0xabcdef, 0, lab, 1, "x", 1};
	ck_assert_int_eq(tdm_append(&res, NULL, b, &extra, 1), 0);
	ck_assert_uint_eq(res.appended, 1);
	dlist tb2 = {0};
	walk_paths(&tb2, store_children, b, lk, nl, 0, INT64_MAX);
	size_t differ = 0;
	for (size_t i = 0; i < tb2.n; i++)
		for (int k = 0; k < FAN; k++)
			differ += !digest_eq(&tb2.d[i * FAN + k], &ta.d[i * FAN + k]);
	ck_assert_uint_eq(differ, TDM_DIGEST_LEAF_LEVEL);

	dlist_free(&ta);
	dlist_free(&tb);
	dlist_free(&tb2);
	dlist_free(&tc);
	free(la.a);
	free(lb.a);
	free(lc.a);
	free(lk);
	tst_verify_clean(a);
	tst_verify_clean(b);
	tst_verify_clean(c);
	tdm_store_close(a);
	tdm_store_close(b);
	tdm_store_close(c);
	tst_tmpdir_drop(da);
	tst_tmpdir_drop(db);
	tst_tmpdir_drop(dc);
	free(oa);
	free(ob);
	free(oc);
	free(outa);
	free(outb);
	free(outc);
	evset_free(&es);
}
END_TEST

/* ---- 2. digests vs brute force -------------------------------------------- */

/* Shard durations: 10 s (leaf 152588 ns, the last leaf short), 1 ms (leaf
 * 16 ns: only 62500 leaves hold time), 196611 ns (leaf 4 ns, 49153
 * leaves), 1000 ns (leaf 1 ns, 1000 leaves) and 6553600 ns (leaf exactly
 * 100 ns). */
static const struct {
	int64_t dur, grace;
} GEOM[] = {
	{10 * SEC, 1 * SEC}, {MS, 100000}, {196611, 20000}, {1000, 300}, {6553600, 500000},
};

START_TEST(test_brute_force)
{
	int64_t dur = GEOM[_i].dur, grace = GEOM[_i].grace;
	tst_rng r;
	tst_rng_seed(&r, 0xb207e + (uint64_t)_i);
	evset es;
	int64_t from0 = T0 / dur * dur + dur / 3, span = dur * 7 / 2;
	evset_gen(&es, &r, 3000, dur, grace, from0, span, 15, 10);
	size_t *o = order_arrival(&es);
	char *dir = tst_store_new(dur, grace, 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	uint64_t late = fill(s, &es, o, 100, &r, NULL);
	ck_assert_uint_gt(late, 0);
	truth t = truth_read(s, dur);
	ck_assert_uint_eq(t.n, es.n);
	leafkey *lk;
	size_t nl = leaves_of(&lk, &es);

	for (int round = 0; round < 40; round++) {
		int64_t from, to;
		if (round == 0) {
			from = 0;
			to = INT64_MAX;
		} else if (round == 1) {
			from = -5;
			to = from0 + span;
		} else {
			from = from0 - dur / 4 + (int64_t)tst_rng_range(&r, (uint64_t)(span + dur / 2));
			uint64_t len = round % 3 == 0 ? (uint64_t)leaf_width(dur) * 3 : (uint64_t)span;
			to = from + 1 + (int64_t)tst_rng_range(&r, len);
		}
		char what[128];
		snprintf(what, sizeof what, "dur %" PRId64 " [%+" PRId64 ", %+" PRId64 ")", dur,
		         from - from0, to - from0);

		shardlist have = shards_get(s, from, to), want = truth_shards(&t, from, to);
		shards_expect_eq(&have, &want, what);

		/* The paths to the leaves at both edges, and to some with events. */
		leafkey pick[40];
		size_t np = 0;
		int64_t edges[2] = {from < 0 ? 0 : from, to - 1};
		for (int e = 0; e < 2; e++)
			if (edges[e] >= from0 - dur && edges[e] < from0 + span + dur)
				pick[np++] = (leafkey){edges[e] / dur, leaf_of(dur, edges[e])};
		size_t want_n = round == 0 ? 0 : 30;
		for (size_t k = 0; k < want_n; k++)
			pick[np++] = lk[tst_rng_range(&r, nl)];
		qsort(pick, np, sizeof *pick, leafkey_cmp);
		const leafkey *walk = round == 0 ? lk : pick;
		size_t nwalk = round == 0 ? nl : np;
		dlist dh = {0}, dw = {0};
		walk_paths(&dh, store_children, s, walk, nwalk, from, to);
		walk_paths(&dw, truth_children, &t, walk, nwalk, from, to);
		dlist_expect_eq(&dh, &dw, what);
		if (round == 0)
			ck_assert_uint_eq(dlist_leaf_events(&dh), es.n);

		/* The truth itself against tdm_iter, for a few nodes. */
		for (int k = 0; k < 3 && dh.n; k++) {
			size_t i = tst_rng_range(&r, dh.n);
			uint32_t child = (uint32_t)tst_rng_range(&r, FAN);
			int64_t lo, hi;
			node_range(&lo, &hi, dur, dh.id[i].shard, dh.id[i].level + 1,
			           dh.id[i].node * FAN + child);
			tdm_digest it = iter_digest(s, lo < from ? from : lo, hi > to ? to : hi);
			ck_assert_msg(digest_eq(&it, &dh.d[i * FAN + child]),
			              "%s: node %u/%" PRIu32 ": iter %" PRIu64 " events, digest %" PRIu64,
			              what, dh.id[i].level + 1, dh.id[i].node * FAN + child, it.count,
			              dh.d[i * FAN + child].count);
		}
		dlist_free(&dh);
		dlist_free(&dw);
		free(have.a);
		free(want.a);
	}
	/* Nodes with no events, and past the shard's end, are zero. */
	tdm_digest d[FAN];
	int64_t shard = es.ev[0].ts / dur;
	store_children(d, s, shard, 3, 4095, 0, INT64_MAX);
	tdm_digest w[FAN];
	truth_children(w, &t, shard, 3, 4095, 0, INT64_MAX);
	for (int k = 0; k < FAN; k++)
		ck_assert(digest_eq(&d[k], &w[k]));
	store_children(d, s, shard + 1000, 0, 0, 0, INT64_MAX);
	for (int k = 0; k < FAN; k++)
		ck_assert(d[k].count == 0 && d[k].sum == 0);
	shardlist none = shards_get(s, t.ts[t.n - 1] + 1, t.ts[t.n - 1] + 2 * span);
	ck_assert_uint_eq(none.n, 0);
	none = shards_get(s, from0 + 10, from0 + 10);
	ck_assert_uint_eq(none.n, 0);

	tst_verify_clean(s);
	truth_free(&t);
	free(lk);
	free(o);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
	evset_free(&es);
}
END_TEST

/* ---- 3. the events of a leaf ------------------------------------------ */

typedef struct gathered {
	tst_evlist l;
	uint64_t sum;
	size_t bad_fp, calls;
	size_t stop_after; /* 0: never */
} gathered;

static int gather(void *ctx, const tdm_event *ev, uint64_t fp)
{
	gathered *g = ctx;
	g->calls++;
	tst_evlist_add(&g->l, ev);
	g->sum += fp;
	g->bad_fp += fp != tdm_event_fingerprint(ev);
	return g->stop_after && g->calls == g->stop_after ? 7 : 0;
}

static int ev_ptr_cmp(const void *pa, const void *pb)
{
	const tdm_event *const *a = pa, *const *b = pb;
	return tst_event_cmp(*a, *b);
}

/* The same events, as multisets. */
static void expect_same_events(tst_evlist *have, tst_evlist *want, const char *what)
{
	ck_assert_msg(have->n == want->n, "%s: %zu events, want %zu", what, have->n, want->n);
	if (have->n)
		qsort(have->a, have->n, sizeof *have->a, ev_ptr_cmp);
	if (want->n)
		qsort(want->a, want->n, sizeof *want->a, ev_ptr_cmp);
	for (size_t i = 0; i < have->n; i++)
		if (tst_event_cmp(have->a[i], want->a[i])) {
			char a[160], b[160];
			ck_abort_msg("%s: event %zu is %s, want %s", what, i,
			             tst_event_str(a, sizeof a, have->a[i]),
			             tst_event_str(b, sizeof b, want->a[i]));
		}
}

static gathered leaf_events(tdm_store *s, int64_t shard, uint32_t leaf, int64_t from,
                            int64_t to)
{
	gathered g;
	memset(&g, 0, sizeof g);
	int r = tdm_digest_leaf_events(s, shard, leaf, from, to, gather, &g);
	ck_assert_msg(r == 0, "leaf_events(%" PRId64 ", %" PRIu32 "): %d %s", shard, leaf, r,
	              tdm_error_message());
	ck_assert_uint_eq(g.bad_fp, 0);
	return g;
}

/* Reads every leaf of `lk` through one tdm_leaf_reader, the shards taken
 * in turn (so the reader keeps reopening files it let go of), clipped to
 * [from, to), and checks each against tdm_digest_leaf_events. */
static void check_reader(tdm_store *s, const leafkey *lk, size_t nl, int64_t from,
                         int64_t to)
{
	tdm_leaf_reader *rd;
	ck_assert_int_eq(tdm_leaf_reader_open(&rd, s), 0);
	size_t stride = nl > 7 ? 7 : 1;
	for (size_t start = 0; start < stride; start++)
		for (size_t i = start; i < nl; i += stride) {
			gathered g;
			memset(&g, 0, sizeof g);
			int r = tdm_leaf_reader_events(rd, lk[i].shard, lk[i].leaf, from, to, gather, &g);
			ck_assert_msg(r == 0, "reader: %d %s", r, tdm_error_message());
			gathered want = leaf_events(s, lk[i].shard, lk[i].leaf, from, to);
			char what[96];
			snprintf(what, sizeof what, "reader, leaf %" PRId64 "/%" PRIu32, lk[i].shard,
			         lk[i].leaf);
			ck_assert_msg(g.sum == want.sum, "%s: fingerprint sum differs", what);
			expect_same_events(&g.l, &want.l, what);
			tst_evlist_free(&g.l);
			tst_evlist_free(&want.l);
		}
	/* A shard it does not have is empty, as for tdm_digest_leaf_events. */
	gathered g;
	memset(&g, 0, sizeof g);
	ck_assert_int_eq(tdm_leaf_reader_events(rd, 1, 0, 0, INT64_MAX, gather, &g), 0);
	ck_assert_uint_eq(g.calls, 0);
	tdm_leaf_reader_close(rd);
}

/* Checks leaf `leaf` clipped to [from, to): its events, their
 * fingerprints, and its digest. Returns how many events it holds. */
static size_t check_leaf(tdm_store *s, int64_t dur, int64_t shard, uint32_t leaf,
                         int64_t from, int64_t to)
{
	int64_t lo, hi;
	node_range(&lo, &hi, dur, shard, TDM_DIGEST_LEAF_LEVEL, leaf);
	if (lo < from)
		lo = from;
	if (hi > to)
		hi = to;
	gathered g = leaf_events(s, shard, leaf, from, to);
	tst_evlist want = {0};
	if (lo < hi)
		tst_read_into(&want, s, lo, hi, NULL);
	char what[128];
	snprintf(what, sizeof what, "leaf %" PRId64 "/%" PRIu32 " [%" PRId64 ", %" PRId64 ")",
	         shard, leaf, lo, hi);
	uint64_t sum = 0;
	for (size_t i = 0; i < want.n; i++)
		sum += tdm_event_fingerprint(want.a[i]);
	ck_assert_msg(sum == g.sum, "%s: fingerprint sum differs", what);
	expect_same_events(&g.l, &want, what);
	tdm_digest d[FAN];
	store_children(d, s, shard, TDM_DIGEST_LEAF_LEVEL - 1, leaf / FAN, from, to);
	ck_assert_msg(d[leaf % FAN].count == want.n && d[leaf % FAN].sum == sum,
	              "%s: digest %" PRIu64 " events, read %zu", what, d[leaf % FAN].count,
	              want.n);
	size_t n = want.n;
	tst_evlist_free(&g.l);
	tst_evlist_free(&want);
	return n;
}

START_TEST(test_leaf_events)
{
	const int64_t dur = 10 * SEC, grace = SEC;
	tst_rng r;
	tst_rng_seed(&r, 0x1eaf);
	evset es;
	int64_t from0 = T0 + 2 * SEC;
	evset_gen(&es, &r, 20000, dur, grace, from0, 20 * SEC, 15, 10);
	/* One very hot leaf: 150 events that arrive spread over a second (in
	 * main, far apart) or seconds later (late, in recon). More than
	 * DIGEST_MAX_SPANS stretches in either file. */
	int64_t w = leaf_width(dur), hot_ts = from0 + 4 * SEC + 12345;
	int64_t hot_start = hot_ts / dur * dur + (hot_ts % dur) / w * w;
	for (size_t i = 0; i < 150; i++) {
		tdm_event *e = &es.ev[i * 97];
		e->ts = hot_start + (int64_t)tst_rng_range(&r, (uint64_t)w);
		es.arrive[i * 97] = e->ts + (i % 10 == 1  ? 0
		                             : i % 3 == 0 ? 2 * SEC + (int64_t)(i * 40 * MS)
		                                          : (int64_t)(i * 6 * MS));
	}
	size_t *o = order_arrival(&es);
	uint8_t *out = tst_malloc(es.n);
	char *dir = tst_store_new(dur, grace, 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	fill(s, &es, o, 300, &r, out);

	/* Kinds per leaf: 1 in order, 2 out of order (on time), 4 late. */
	leafkey *lk;
	size_t nl = leaves_of(&lk, &es);
	uint8_t *kinds = calloc(nl, 1);
	ck_assert_ptr_nonnull(kinds);
	int64_t maxts[8] = {0};
	for (size_t k = 0; k < es.n; k++) {
		size_t i = o[k];
		const tdm_event *e = &es.ev[i];
		int64_t sh = e->ts / dur;
		leafkey key = {sh, leaf_of(dur, e->ts)};
		leafkey *at = bsearch(&key, lk, nl, sizeof *lk, leafkey_cmp);
		ck_assert_ptr_nonnull(at);
		int64_t *m = &maxts[sh % 8];
		kinds[at - lk] |= out[i] == TDM_STORED_LATE ? 4 : e->ts < *m ? 2 : 1;
		if (e->ts > *m)
			*m = e->ts;
	}
	size_t mixed = 0, seen_kinds = 0;
	size_t leaves_checked = 0, events_checked = 0;
	for (size_t i = 0; i < nl; i++) {
		seen_kinds |= kinds[i];
		mixed += kinds[i] == 7;
		/* Every leaf with out-of-order or late data, a tenth of the rest. */
		if (kinds[i] == 1 && i % 10)
			continue;
		events_checked += check_leaf(s, dur, lk[i].shard, lk[i].leaf, 0, INT64_MAX);
		leaves_checked++;
	}
	fprintf(stderr, "leaf events: %zu leaves (%zu with all three kinds), %zu events\n",
	        leaves_checked, mixed, events_checked);
	ck_assert_uint_eq(seen_kinds, 7);
	ck_assert_uint_gt(mixed, 0);

	/* The hot leaf, whole and clipped (cutting it anywhere). */
	int64_t hot_shard = hot_start / dur;
	uint32_t hot_leaf = leaf_of(dur, hot_start);
	leafkey hk = {hot_shard, hot_leaf};
	ck_assert_uint_eq(kinds[(leafkey *)bsearch(&hk, lk, nl, sizeof *lk, leafkey_cmp) - lk], 7);
	ck_assert_uint_ge(check_leaf(s, dur, hot_shard, hot_leaf, 0, INT64_MAX), 150);
	for (int k = 0; k < 30; k++) {
		int64_t a = hot_start - 5 + (int64_t)tst_rng_range(&r, (uint64_t)w + 10);
		int64_t b = a + 1 + (int64_t)tst_rng_range(&r, (uint64_t)w);
		check_leaf(s, dur, hot_shard, hot_leaf, a, b);
	}
	for (int k = 0; k < 30; k++) {
		size_t i = tst_rng_range(&r, nl);
		int64_t lo, hi;
		node_range(&lo, &hi, dur, lk[i].shard, TDM_DIGEST_LEAF_LEVEL, lk[i].leaf);
		int64_t a = lo + (int64_t)tst_rng_range(&r, (uint64_t)(hi - lo));
		check_leaf(s, dur, lk[i].shard, lk[i].leaf, a, a + (int64_t)tst_rng_range(&r, (uint64_t)w));
		check_leaf(s, dur, lk[i].shard, lk[i].leaf, 0, a);
	}
	/* Empty leaves and shards: no calls. */
	ck_assert_uint_eq(check_leaf(s, dur, hot_shard, LEAVES - 1, 0, INT64_MAX), 0);
	check_reader(s, lk, nl, 0, INT64_MAX);
	check_reader(s, lk, nl, from0 + 3 * SEC, from0 + 13 * SEC);
	gathered g = leaf_events(s, hot_shard + 50, 3, 0, INT64_MAX);
	ck_assert_uint_eq(g.calls, 0);
	/* A nonzero return stops the walk and comes back. */
	memset(&g, 0, sizeof g);
	g.stop_after = 3;
	ck_assert_int_eq(tdm_digest_leaf_events(s, hot_shard, hot_leaf, 0, INT64_MAX, gather, &g),
	                 7);
	ck_assert_uint_eq(g.calls, 3);
	tst_evlist_free(&g.l);

	/* Duplicates change no digest: some of every kind, one twice in a batch. */
	shardlist before = shards_get(s, 0, INT64_MAX);
	dlist d0 = {0}, d1 = {0};
	walk_paths(&d0, store_children, s, lk, nl, 0, INT64_MAX);
	tdm_event dups[201];
	for (size_t k = 0; k < 200; k++)
		dups[k] = es.ev[tst_rng_range(&r, es.n)];
	dups[200] = dups[0];
	tdm_append_result res;
	ck_assert_int_eq(tdm_append(&res, NULL, s, dups, 201), 0);
	ck_assert_uint_eq(res.duplicates, 201);
	ck_assert_uint_eq(res.appended, 0);
	shardlist after = shards_get(s, 0, INT64_MAX);
	shards_expect_eq(&after, &before, "after duplicates");
	walk_paths(&d1, store_children, s, lk, nl, 0, INT64_MAX);
	dlist_expect_eq(&d1, &d0, "after duplicates");
	tst_verify_clean(s);
	free(before.a);
	free(after.a);
	dlist_free(&d0);
	dlist_free(&d1);

	free(kinds);
	free(lk);
	free(out);
	free(o);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
	evset_free(&es);
}
END_TEST

/* ---- 4. bytes read for one leaf ------------------------------------------ */

#define B_N 200000
#define B_PAY 100

START_TEST(test_leaf_bytes)
{
	tst_rng r;
	tst_rng_seed(&r, 0xb17e5);
	const int64_t dur = 3600 * SEC, grace = 60 * SEC;
	int64_t *ts = tst_malloc(B_N * sizeof *ts), *arrive = tst_malloc(B_N * sizeof *arrive);
	uint8_t *kind = tst_malloc(B_N); /* 0 on time, 1 shifted within grace, 2 late */
	size_t n_late = 0;
	for (size_t k = 0; k < B_N; k++) {
		ts[k] = T0 + (int64_t)k * MS;
		uint64_t c = tst_rng_range(&r, 1000);
		kind[k] = 0;
		arrive[k] = ts[k];
		if (c < 10 && k < 120000) {
			kind[k] = 2;
			arrive[k] += 65 * SEC + (int64_t)tst_rng_range(&r, 15 * SEC);
			n_late++;
		} else if (c < 110) {
			kind[k] = 1;
			arrive[k] += 1 + (int64_t)tst_rng_range(&r, 30 * SEC);
		}
	}
	keyed *ord = tst_malloc(B_N * sizeof *ord);
	for (size_t k = 0; k < B_N; k++)
		ord[k] = (keyed){arrive[k], k};
	qsort(ord, B_N, sizeof *ord, keyed_cmp);

	char *dir = tst_store_new(dur, grace, 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tdm_event *batch = tst_malloc(1000 * sizeof *batch);
	uint8_t *pay = tst_malloc(1000 * B_PAY);
	static const char *const HOSTS[] = {"web-1", "web-2", "db-1", "cache-9"};
	tdm_label *labs = tst_malloc(1000 * sizeof *labs);
	uint64_t late = 0;
	for (size_t at = 0; at < B_N; at += 1000) {
		for (size_t i = 0; i < 1000; i++) {
			uint64_t k = ord[at + i].i;
			uint8_t *p = pay + i * B_PAY;
			memset(p, 'a' + (int)(k % 26), B_PAY);
			memcpy(p, &k, sizeof k);
			labs[i] = (tdm_label){"host", HOSTS[k % 4]};
			batch[i] = (tdm_event){ts[k], (uint32_t)k, 0, &labs[i], 1, p, B_PAY};
		}
		tdm_append_result res;
		ck_assert_int_eq(tdm_append(&res, NULL, s, batch, 1000), 0);
		ck_assert_uint_eq(res.appended, 1000);
		late += res.late;
	}
	ck_assert_uint_eq(late, n_late);
	tdm_store_close(s);

	/* A leaf in the middle with shifted and late events. */
	int64_t shard = T0 / dur;
	uint8_t *leafkind = calloc(LEAVES, 1);
	ck_assert_ptr_nonnull(leafkind);
	for (size_t k = 0; k < B_N; k++)
		leafkind[leaf_of(dur, ts[k])] |= (uint8_t)(1u << kind[k]);
	uint32_t leaf = LEAVES;
	for (size_t k = 60000; k < 110000 && leaf == LEAVES; k++)
		if (leafkind[leaf_of(dur, ts[k])] == 7)
			leaf = leaf_of(dur, ts[k]);
	ck_assert_uint_ne(leaf, LEAVES);
	int64_t lo, hi;
	node_range(&lo, &hi, dur, shard, TDM_DIGEST_LEAF_LEVEL, leaf);

	s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_NONE);
	memset(&tdm_io_stats, 0, sizeof tdm_io_stats);
	gathered g = leaf_events(s, shard, leaf, 0, INT64_MAX);
	uint64_t leaf_bytes = tdm_io_stats.bytes_read, leaf_reads = tdm_io_stats.reads;
	memset(&tdm_io_stats, 0, sizeof tdm_io_stats);
	tst_evlist want = tst_read_all(s, lo, hi);
	uint64_t iter_bytes = tdm_io_stats.bytes_read;
	fprintf(stderr, "leaf bytes: leaf %" PRIu32 " (%zu events): tdm_digest_leaf_events"
	        " read %" PRIu64 " bytes in %" PRIu64 " reads, tdm_iter of the leaf's range %"
	        PRIu64 " bytes\n", leaf, want.n, leaf_bytes, leaf_reads, iter_bytes);
	ck_assert_uint_ge(want.n, 50);
	expect_same_events(&g.l, &want, "the leaf");
	ck_assert_msg(leaf_bytes < 64 * 1024, "reading one leaf read %" PRIu64 " bytes",
	              leaf_bytes);
	ck_assert_msg(iter_bytes > 4 * leaf_bytes, "tdm_iter read %" PRIu64 " bytes, the leaf"
	              " %" PRIu64, iter_bytes, leaf_bytes);
	tst_evlist_free(&g.l);
	tst_evlist_free(&want);
	tdm_store_close(s);

	free(leafkind);
	free(labs);
	free(pay);
	free(batch);
	free(ord);
	free(kind);
	free(arrive);
	free(ts);
	tst_tmpdir_drop(dir);
}
END_TEST

/* ---- 5. rebuilt with the index --------------------------------------------- */

static void snapshot(dlist *out, shardlist *sl, tdm_store *s, const leafkey *lk,
                     size_t nl)
{
	*sl = shards_get(s, 0, INT64_MAX);
	memset(out, 0, sizeof *out);
	walk_paths(out, store_children, s, lk, nl, 0, INT64_MAX);
}

START_TEST(test_rebuild)
{
	const int64_t dur = 10 * SEC, grace = SEC;
	tst_rng r;
	tst_rng_seed(&r, 0x4eb1);
	evset es;
	evset_gen(&es, &r, 6000, dur, grace, T0 + 4 * SEC, 25 * SEC, 15, 10);
	size_t *o = order_arrival(&es);
	char *dir = tst_store_new(dur, grace, 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	ck_assert_uint_gt(fill(s, &es, o, 200, &r, NULL), 0);
	leafkey *lk;
	size_t nl = leaves_of(&lk, &es);
	dlist before;
	shardlist sb;
	snapshot(&before, &sb, s, lk, nl);
	ck_assert_uint_eq(dlist_leaf_events(&before), es.n);
	tdm_store_close(s);

	char idx[4200];
	snprintf(idx, sizeof idx, "%s/index", dir);
	for (int ro = 0; ro < 2; ro++) {
		tst_rmtree(idx);
		s = tst_store_open(dir, ro ? TDM_OPEN_READONLY : 0, TDM_DURABILITY_NONE);
		dlist after;
		shardlist sa;
		snapshot(&after, &sa, s, lk, nl);
		shards_expect_eq(&sa, &sb, ro ? "rebuilt by a reader" : "rebuilt by a writer");
		dlist_expect_eq(&after, &before, ro ? "rebuilt by a reader" : "rebuilt by a writer");
		tst_verify_clean(s);
		for (size_t i = 0; i < nl; i += 97)
			check_leaf(s, dur, lk[i].shard, lk[i].leaf, 0, INT64_MAX);
		dlist_free(&after);
		free(sa.a);
		tdm_store_close(s);
	}
	/* The rebuilt digests go on growing with appends. */
	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tdm_event e = {es.ev[5].ts + 1, 42, 0, NULL, 0, "new", 3};
	tdm_append_result res;
	ck_assert_int_eq(tdm_append(&res, NULL, s, &e, 1), 0);
	ck_assert_uint_eq(res.appended, 1);
	shardlist sa = shards_get(s, 0, INT64_MAX);
	for (size_t i = 0; i < sa.n; i++) {
		int here = sa.a[i].shard == e.ts / dur;
		ck_assert_uint_eq(sa.a[i].digest.count, sb.a[i].digest.count + (uint64_t)here);
		ck_assert_uint_eq(sa.a[i].digest.sum,
		                  sb.a[i].digest.sum + (here ? tdm_event_fingerprint(&e) : 0));
	}
	tst_verify_clean(s);
	tdm_store_close(s);
	free(sa.a);
	free(sb.a);
	dlist_free(&before);
	free(lk);
	free(o);
	tst_tmpdir_drop(dir);
	evset_free(&es);
}
END_TEST

/* ---- 5b. sealing leaves digests as they were ------------------------------- */

START_TEST(test_sealing)
{
	const int64_t dur = 10 * SEC, grace = SEC;
	tst_rng r;
	tst_rng_seed(&r, 0x5ea1);
	evset es;
	evset_gen(&es, &r, 6000, dur, grace, T0 + 4 * SEC, 25 * SEC, 15, 10);
	size_t *o = order_arrival(&es);
	char *dir = tst_store_new(dur, grace, 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	ck_assert_uint_gt(fill(s, &es, o, 200, &r, NULL), 0);
	leafkey *lk;
	size_t nl = leaves_of(&lk, &es);
	dlist before;
	shardlist sb;
	snapshot(&before, &sb, s, lk, nl);

	tdm_compact_result cr;
	ck_assert_int_eq(tdm_compact(&cr, s), 0);
	ck_assert_uint_gt(cr.shards_sealed, 0);
	for (int round = 0; round < 2; round++) {
		dlist after;
		shardlist sa;
		snapshot(&after, &sa, s, lk, nl);
		shards_expect_eq(&sa, &sb, round ? "sealed, index rebuilt" : "sealed");
		dlist_expect_eq(&after, &before, round ? "sealed, index rebuilt" : "sealed");
		/* Leaves of sealed shards read from the sealed blocks. */
		for (size_t i = 0; i < nl; i += 41)
			check_leaf(s, dur, lk[i].shard, lk[i].leaf, 0, INT64_MAX);
		check_reader(s, lk, nl, 0, INT64_MAX);
		check_reader(s, lk, nl, T0 + 7 * SEC, T0 + 19 * SEC);
		tst_verify_clean(s);
		dlist_free(&after);
		free(sa.a);
		tdm_store_close(s);
		char idx[4200];
		snprintf(idx, sizeof idx, "%s/index", dir);
		tst_rmtree(idx);
		s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	}
	/* A sealed shard's events come again: all duplicates, found through
	 * the leaves of the sealed file. */
	tdm_append_result res;
	for (size_t i = 0; i < es.n; i += 500) {
		size_t n = es.n - i < 500 ? es.n - i : 500;
		ck_assert_int_eq(tdm_append(&res, NULL, s, &es.ev[i], n), 0);
		ck_assert_uint_eq(res.duplicates, n);
	}
	tst_verify_clean(s);
	tdm_store_close(s);
	free(sb.a);
	dlist_free(&before);
	free(lk);
	free(o);
	tst_tmpdir_drop(dir);
	evset_free(&es);
}
END_TEST

/* ---- 6. verify finds tampered digest rows -------------------------------- */

/* Problems seen by the callback. */
typedef struct seen {
	uint64_t n;
	char file[128];
	char what[512];
	int span_problem;   /* one said a record is outside its leaf's spans */
	int64_t span_off;   /* at that record */
	int digest_named;   /* one mentioned a digest */
	int other_file;     /* one named another file than the first */
} seen;

static void on_problem(void *ctx, const tdm_problem *p)
{
	seen *s = ctx;
	if (s->n++ == 0) {
		snprintf(s->file, sizeof s->file, "%s", p->file);
		snprintf(s->what, sizeof s->what, "%s", p->what);
	} else if (strcmp(s->file, p->file)) {
		s->other_file = 1;
	}
	if (strstr(p->what, "digest"))
		s->digest_named = 1;
	if (strstr(p->what, "span") && !s->span_problem) {
		s->span_problem = 1;
		s->span_off = p->offset;
	}
}

static seen run_verify(tdm_store *s)
{
	seen v;
	memset(&v, 0, sizeof v);
	uint64_t problems = 12345;
	int r = tdm_verify(&problems, s, on_problem, &v);
	ck_assert_msg(r == 0, "verify could not run: %d %s", r, tdm_error_message());
	ck_assert_uint_eq(problems, v.n);
	return v;
}

/* The row format of docs/FORMAT.md: key shard BE64 | level | node BE32;
 * value varint count | sum LE64, and for a leaf per file (main, recon) a
 * varint span count and (gap from the previous span's end, length) pairs. */
typedef struct row {
	uint64_t count, sum;
	uint32_t n[2];
	uint64_t off[2][64], len[2][64];
} row;

static void row_key(uint8_t k[13], int64_t shard, unsigned level, uint32_t node)
{
	for (int i = 0; i < 8; i++)
		k[i] = (uint8_t)((uint64_t)shard >> (56 - 8 * i));
	k[8] = (uint8_t)level;
	for (int i = 0; i < 4; i++)
		k[9 + i] = (uint8_t)(node >> (24 - 8 * i));
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	for (; v >= 0x80; v >>= 7)
		p[n++] = (uint8_t)(v | 0x80);
	p[n++] = (uint8_t)v;
	return n;
}

static uint64_t get_varint(const uint8_t **p, const uint8_t *end)
{
	uint64_t v = 0;
	for (unsigned shift = 0; *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return v;
	}
	ck_abort_msg("a stored digest row ends inside a varint");
	return 0;
}

static void row_decode(row *rw, const uint8_t *p, size_t len, int leaf)
{
	const uint8_t *end = p + len;
	memset(rw, 0, sizeof *rw);
	rw->count = get_varint(&p, end);
	ck_assert(end - p >= 8);
	for (int i = 0; i < 8; i++)
		rw->sum |= (uint64_t)p[i] << (8 * i);
	p += 8;
	if (leaf)
		for (int k = 0; k < 2; k++) {
			rw->n[k] = (uint32_t)get_varint(&p, end);
			ck_assert_uint_le(rw->n[k], 64);
			uint64_t prev = 0;
			for (uint32_t i = 0; i < rw->n[k]; i++) {
				rw->off[k][i] = prev + get_varint(&p, end);
				rw->len[k][i] = get_varint(&p, end);
				prev = rw->off[k][i] + rw->len[k][i];
			}
		}
	ck_assert(p == end);
}

static size_t row_encode(uint8_t *out, const row *rw, int leaf)
{
	size_t n = put_varint(out, rw->count);
	for (int i = 0; i < 8; i++)
		out[n++] = (uint8_t)(rw->sum >> (8 * i));
	if (leaf)
		for (int k = 0; k < 2; k++) {
			n += put_varint(out + n, rw->n[k]);
			uint64_t prev = 0;
			for (uint32_t i = 0; i < rw->n[k]; i++) {
				n += put_varint(out + n, rw->off[k][i] - prev);
				n += put_varint(out + n, rw->len[k][i]);
				prev = rw->off[k][i] + rw->len[k][i];
			}
		}
	return n;
}

enum tamper {
	T_ROOT_SUM,       /* the shard's sum is off by one */
	T_LEAF_COUNT,     /* a leaf counts one event too many */
	T_EXTRA_ROW,      /* a row for a node that holds no events */
	T_SHORT_VALUE,    /* malformed: a value too short for its sum */
	T_TRAILING,       /* malformed: a byte after a sound value */
	T_TOO_MANY_SPANS, /* malformed: a leaf with more spans than allowed */
	T_BAD_KEY,        /* malformed: a key of the shard of the wrong length */
	T_SPANS_EMPTY,    /* right digest, but the spans hold no record */
	T_SPAN_SHORT,     /* right digest, the last main span one byte short */
	T_COUNT
};

static const char *const TAMPER_NAME[T_COUNT] = {
	"root sum", "leaf count", "extra row", "short value", "trailing byte",
	"too many spans", "bad key", "empty spans", "short span",
};

START_TEST(test_verify_tampered)
{
	const int64_t dur = 10 * SEC, grace = SEC;
	tst_rng r;
	tst_rng_seed(&r, 0x7a3b + (uint64_t)_i);
	evset es;
	evset_gen(&es, &r, 2000, dur, grace, T0 + 2 * SEC, 5 * SEC, 15, 10);
	size_t *o = order_arrival(&es);
	uint8_t *out = tst_malloc(es.n);
	char *dir = tst_store_new(dur, grace, 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	ck_assert_uint_gt(fill(s, &es, o, 200, &r, out), 0);
	tst_verify_clean(s);
	shardlist orig = shards_get(s, 0, INT64_MAX);
	ck_assert_uint_eq(orig.n, 1);
	tdm_store_close(s);

	/* The leaf of a late event holding more than one main record. */
	int64_t shard = orig.a[0].shard;
	uint32_t leaf = LEAVES;
	for (size_t i = 0; i < es.n && leaf == LEAVES; i++) {
		if (out[i] != TDM_STORED_LATE)
			continue;
		uint32_t l = leaf_of(dur, es.ev[i].ts);
		size_t mains = 0;
		for (size_t k = 0; k < es.n; k++)
			mains += out[k] == TDM_STORED && leaf_of(dur, es.ev[k].ts) == l;
		if (mains >= 2)
			leaf = l;
	}
	ck_assert_uint_ne(leaf, LEAVES);
	/* A level-3 node with no events (the shard holds 5 s of 10). */
	uint32_t empty3 = 4095;

	kv_env *env;
	char idx[4200];
	snprintf(idx, sizeof idx, "%s/index", dir);
	ck_assert_int_eq(kv_open(&env, idx, 0, 0), 0);
	kv_txn *txn;
	ck_assert_int_eq(kv_begin(&txn, env, 1), 0);
	uint8_t key[13], val[4096];
	size_t vlen = 0, klen = 13;
	kv_val v;
	row rw;
	unsigned level = 0;
	uint32_t node = 0;
	switch ((enum tamper)_i) {
	case T_ROOT_SUM:
	case T_TRAILING:
		level = _i == T_ROOT_SUM ? 0 : 1;
		node = leaf >> (4 * (TDM_DIGEST_LEAF_LEVEL - level));
		row_key(key, shard, level, node);
		ck_assert_int_eq(kv_get(&v, txn, KV_DIGEST, key, 13), 0);
		row_decode(&rw, v.data, v.len, 0);
		if (_i == T_ROOT_SUM)
			rw.sum++;
		vlen = row_encode(val, &rw, 0);
		if (_i == T_TRAILING)
			val[vlen++] = 0;
		break;
	case T_EXTRA_ROW:
		level = 3;
		node = empty3;
		row_key(key, shard, level, node);
		ck_assert_int_eq(kv_get(&v, txn, KV_DIGEST, key, 13), TDM_ENOTFOUND);
		rw = (row){.count = 1, .sum = 42};
		vlen = row_encode(val, &rw, 0);
		break;
	case T_SHORT_VALUE:
		level = 2;
		node = leaf >> 8;
		row_key(key, shard, level, node);
		val[0] = 5;
		val[1] = 1;
		vlen = 2;
		break;
	case T_BAD_KEY:
		row_key(key, shard, 4, leaf);
		klen = 12;
		vlen = 9;
		memset(val, 0, vlen);
		break;
	default: /* leaf rows */
		level = TDM_DIGEST_LEAF_LEVEL;
		node = leaf;
		row_key(key, shard, level, node);
		ck_assert_int_eq(kv_get(&v, txn, KV_DIGEST, key, 13), 0);
		row_decode(&rw, v.data, v.len, 1);
		ck_assert_uint_gt(rw.n[0], 0);
		ck_assert_uint_gt(rw.n[1], 0);
		if (_i == T_LEAF_COUNT)
			rw.count++;
		else if (_i == T_SPANS_EMPTY)
			rw.n[0] = rw.n[1] = 0;
		else if (_i == T_SPAN_SHORT)
			rw.len[0][rw.n[0] - 1]--;
		vlen = row_encode(val, &rw, 1);
		if (_i == T_TOO_MANY_SPANS) {
			rw.n[0] = 60;
			rw.n[1] = 0;
			for (uint32_t i = 0; i < 60; i++) {
				rw.off[0][i] = 64 + 100 * i;
				rw.len[0][i] = 50;
			}
			vlen = row_encode(val, &rw, 1);
		}
		break;
	}
	ck_assert_int_eq(kv_put(txn, KV_DIGEST, key, klen, val, vlen), 0);
	ck_assert_int_eq(kv_commit(txn), 0);
	kv_close(env);

	char main_name[64];
	snprintf(main_name, sizeof main_name, "shards/%020" PRId64 ".main", shard);
	for (int ro = 0; ro < 2; ro++) {
		s = tst_store_open(dir, ro ? TDM_OPEN_READONLY : 0, TDM_DURABILITY_NONE);
		seen sv = run_verify(s);
		ck_assert_msg(sv.n > 0, "%s: verify found nothing", TAMPER_NAME[_i]);
		ck_assert_msg(strcmp(sv.file, main_name) == 0, "%s: first problem in '%s' (%s),"
		              " want %s", TAMPER_NAME[_i], sv.file, sv.what, main_name);
		/* A record outside its spans is named in its own file, main or recon. */
		if (_i != T_SPANS_EMPTY)
			ck_assert_msg(!sv.other_file, "%s: a problem named another file",
			              TAMPER_NAME[_i]);
		ck_assert_msg(sv.digest_named, "%s: no problem mentions the digest (first: %s)",
		              TAMPER_NAME[_i], sv.what);
		if (_i == T_SPANS_EMPTY || _i == T_SPAN_SHORT) {
			ck_assert_msg(sv.span_problem, "%s: no record reported outside the spans"
			              " (first: %s)", TAMPER_NAME[_i], sv.what);
			ck_assert_int_ge(sv.span_off, 64);
			if (_i == T_SPAN_SHORT) {
				uint32_t last = rw.n[0] - 1;
				ck_assert_int_ge(sv.span_off, (int64_t)rw.off[0][last]);
				ck_assert_int_lt(sv.span_off, (int64_t)(rw.off[0][last] + rw.len[0][last]));
			}
		}
		/* What reads the bad row says so, and does not crash. */
		tdm_digest d[FAN];
		int rc;
		switch ((enum tamper)_i) {
		case T_SHORT_VALUE:
			rc = tdm_digest_children(d, s, shard, 1, leaf >> 12, 0, INT64_MAX);
			ck_assert_msg(rc == TDM_ECORRUPT, "children over a malformed row: %d", rc);
			break;
		case T_TRAILING:
			rc = tdm_digest_children(d, s, shard, 0, 0, 0, INT64_MAX);
			ck_assert_msg(rc == TDM_ECORRUPT, "children over a malformed row: %d", rc);
			break;
		case T_TOO_MANY_SPANS: {
			gathered g;
			memset(&g, 0, sizeof g);
			rc = tdm_digest_leaf_events(s, shard, leaf, 0, INT64_MAX, gather, &g);
			ck_assert_msg(rc == TDM_ECORRUPT, "leaf events of a malformed row: %d", rc);
			tst_evlist_free(&g.l);
			/* A tree walk reads only the leaves' digests: the spans are
			 * the leaf reader's to check, as above. */
			rc = tdm_digest_children(d, s, shard, TDM_DIGEST_LEAF_LEVEL - 1, leaf >> 4,
			                         0, INT64_MAX);
			ck_assert_int_eq(rc, 0);
			ck_assert_uint_eq(d[leaf & 15].count, rw.count);
			ck_assert_uint_eq(d[leaf & 15].sum, rw.sum);
			break;
		}
		case T_ROOT_SUM: {
			shardlist l = shards_get(s, 0, INT64_MAX);
			ck_assert_uint_eq(l.a[0].digest.sum, orig.a[0].digest.sum + 1);
			free(l.a);
			break;
		}
		case T_LEAF_COUNT:
			store_children(d, s, shard, 3, leaf >> 4, 0, INT64_MAX);
			ck_assert_uint_eq(d[leaf % FAN].count, rw.count);
			break;
		default:
			break;
		}
		tdm_store_close(s);
	}
	/* A rebuilt index is sound again, with the digests it had. */
	tst_rmtree(idx);
	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tst_verify_clean(s);
	shardlist again = shards_get(s, 0, INT64_MAX);
	shards_expect_eq(&again, &orig, "rebuilt");
	free(again.a);
	tdm_store_close(s);

	free(orig.a);
	free(out);
	free(o);
	tst_tmpdir_drop(dir);
	evset_free(&es);
}
END_TEST

/* ---- 7. arguments --------------------------------------------------------- */

static int noop(void *ctx, const tdm_event *ev, uint64_t fp)
{
	(void)ev;
	(void)fp;
	++*(int *)ctx;
	return 0;
}

START_TEST(test_arguments)
{
	char *dir = tst_store_new(10 * SEC, SEC, 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	shardlist l = shards_get(s, 0, INT64_MAX);
	ck_assert_uint_eq(l.n, 0);
	ck_assert_ptr_null(l.a);
	tdm_digest d[FAN];
	int calls = 0;
	ck_assert_int_eq(tdm_digest_children(d, s, T0 / (10 * SEC), 0, 0, 0, INT64_MAX), 0);
	for (int k = 0; k < FAN; k++)
		ck_assert(d[k].count == 0 && d[k].sum == 0);
	ck_assert_int_eq(tdm_digest_leaf_events(s, T0 / (10 * SEC), 5, 0, INT64_MAX, noop,
	                                        &calls), 0);
	ck_assert_int_eq(calls, 0);

	tdm_event e = {T0 + 1, 1, 0, NULL, 0, "a", 1};
	tdm_append_result res;
	ck_assert_int_eq(tdm_append(&res, NULL, s, &e, 1), 0);
	int64_t shard = T0 / (10 * SEC);
	l = shards_get(s, 0, INT64_MAX);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_int_eq(l.a[0].shard, shard);
	ck_assert_uint_eq(l.a[0].digest.count, 1);
	ck_assert_uint_eq(l.a[0].digest.sum, tdm_event_fingerprint(&e));
	free(l.a);
	/* Ranges that hold nothing. */
	l = shards_get(s, T0 + 2, T0 + 2);
	ck_assert_uint_eq(l.n, 0);
	l = shards_get(s, T0 + 2, T0 + 1);
	ck_assert_uint_eq(l.n, 0);
	l = shards_get(s, T0 + 2, INT64_MAX);
	ck_assert_uint_eq(l.n, 0);
	l = shards_get(s, INT64_MIN, T0 + 1);
	ck_assert_uint_eq(l.n, 0);
	l = shards_get(s, INT64_MIN, T0 + 2);
	ck_assert_uint_eq(l.n, 1);
	free(l.a);

	/* Level and node out of range. */
	static const struct {
		unsigned level;
		uint32_t node;
		int ok;
	} CASES[] = {
		{0, 0, 1}, {0, 1, 0}, {1, 15, 1}, {1, 16, 0}, {2, 255, 1}, {2, 256, 0},
		{3, 4095, 1}, {3, 4096, 0}, {4, 0, 0}, {5, 0, 0}, {UINT32_MAX, 0, 0},
		{3, UINT32_MAX, 0},
	};
	for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
		int r = tdm_digest_children(d, s, shard, CASES[i].level, CASES[i].node, 0,
		                            INT64_MAX);
		ck_assert_msg(r == (CASES[i].ok ? 0 : TDM_EINVAL), "level %u node %" PRIu32
		              ": %d", CASES[i].level, CASES[i].node, r);
		if (!CASES[i].ok)
			ck_assert_ptr_nonnull(strstr(tdm_error_message(), "node"));
	}
	ck_assert_int_eq(tdm_digest_children(NULL, s, shard, 0, 0, 0, 1), TDM_EINVAL);
	ck_assert_int_eq(tdm_digest_children(d, NULL, shard, 0, 0, 0, 1), TDM_EINVAL);
	ck_assert_int_eq(tdm_digest_children(d, s, -1, 0, 0, 0, 1), TDM_EINVAL);
	ck_assert_int_eq(tdm_digest_leaf_events(s, shard, LEAVES, 0, INT64_MAX, noop, &calls),
	                 TDM_EINVAL);
	ck_assert_int_eq(tdm_digest_leaf_events(s, shard, 0, 0, INT64_MAX, NULL, NULL),
	                 TDM_EINVAL);
	ck_assert_int_eq(tdm_digest_leaf_events(NULL, shard, 0, 0, INT64_MAX, noop, &calls),
	                 TDM_EINVAL);
	ck_assert_int_eq(tdm_digest_leaf_events(s, -1, 0, 0, INT64_MAX, noop, &calls),
	                 TDM_EINVAL);
	tdm_leaf_reader *rd;
	ck_assert_int_eq(tdm_leaf_reader_open(NULL, s), TDM_EINVAL);
	ck_assert_int_eq(tdm_leaf_reader_open(&rd, NULL), TDM_EINVAL);
	ck_assert_int_eq(tdm_leaf_reader_open(&rd, s), 0);
	ck_assert_int_eq(tdm_leaf_reader_events(rd, shard, LEAVES, 0, INT64_MAX, noop, &calls),
	                 TDM_EINVAL);
	ck_assert_int_eq(tdm_leaf_reader_events(rd, -1, 0, 0, INT64_MAX, noop, &calls),
	                 TDM_EINVAL);
	ck_assert_int_eq(tdm_leaf_reader_events(rd, shard, 0, 0, INT64_MAX, NULL, NULL),
	                 TDM_EINVAL);
	ck_assert_int_eq(tdm_leaf_reader_events(NULL, shard, 0, 0, INT64_MAX, noop, &calls),
	                 TDM_EINVAL);
	tdm_leaf_reader_close(rd);
	tdm_leaf_reader_close(NULL);
	size_t n;
	tdm_shard_digest *a;
	ck_assert_int_eq(tdm_digest_shards(NULL, &n, s, 0, 1), TDM_EINVAL);
	ck_assert_int_eq(tdm_digest_shards(&a, NULL, s, 0, 1), TDM_EINVAL);
	ck_assert_int_eq(tdm_digest_shards(&a, &n, NULL, 0, 1), TDM_EINVAL);
	/* An invalid event has no fingerprint; ts, id, labels, payload count. */
	tdm_event bad = {-1, 1, 0, NULL, 0, "a", 1};
	ck_assert_uint_eq(tdm_event_fingerprint(&bad), 0);
	ck_assert_uint_eq(tdm_event_fingerprint(NULL), 0);
	tdm_event e2 = e;
	e2.seq = 99; /* not part of it */
	ck_assert_uint_eq(tdm_event_fingerprint(&e2), tdm_event_fingerprint(&e));
	e2.id = 2;
	ck_assert_uint_ne(tdm_event_fingerprint(&e2), tdm_event_fingerprint(&e));
	e2 = e;
	e2.ts++;
	ck_assert_uint_ne(tdm_event_fingerprint(&e2), tdm_event_fingerprint(&e));
	e2 = e;
	e2.payload = "b";
	ck_assert_uint_ne(tdm_event_fingerprint(&e2), tdm_event_fingerprint(&e));
	const tdm_label l2[] = {{"b", "2"}, {"a", "1"}}, l3[] = {{"a", "1"}, {"b", "2"}};
	e2 = e;
	e2.labels = l2;
	e2.n_labels = 2;
	uint64_t fl = tdm_event_fingerprint(&e2);
	ck_assert_uint_ne(fl, tdm_event_fingerprint(&e));
	e2.labels = l3; /* label order does not count */
	ck_assert_uint_eq(tdm_event_fingerprint(&e2), fl);

	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

static Suite *digest_suite(void)
{
	Suite *su = suite_create("digest");
	TCase *tc = tcase_create("digest");
	tcase_add_test(tc, test_order_independent);
	tcase_add_loop_test(tc, test_brute_force, 0, (int)(sizeof GEOM / sizeof *GEOM));
	tcase_add_test(tc, test_leaf_events);
	tcase_add_test(tc, test_leaf_bytes);
	tcase_add_test(tc, test_rebuild);
	tcase_add_test(tc, test_sealing);
	tcase_add_loop_test(tc, test_verify_tampered, 0, T_COUNT);
	tcase_add_test(tc, test_arguments);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(digest_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
