/*
 * test_model.c - the store against an in-memory model.
 *
 * Thousands of random operations (appends, reads, selector reads, reopens,
 * read-only phases) run on a real store and on a model of what SPEC §2-§4
 * say it must hold:
 *
 *   1. The store holds the set of distinct events: two events are the same
 *      when ts, id, labels and payload are all equal (§2). Appending one
 *      already held, or held earlier in the same batch, is a duplicate.
 *   2. Each shard (floor(ts / shard_duration)) has a watermark max_ts. An
 *      event with ts >= max_ts - grace is on time and raises max_ts;
 *      otherwise it is late. Events of a batch are judged one by one, in
 *      batch order; duplicates count nothing and move nothing (§3).
 *   3. read [from, to) returns exactly the model's events in that range,
 *      in §4 order (tst_event_cmp), or, with a selector, those matching it.
 *   4. seq is commit order: the events of a batch get distinct seqs above
 *      every earlier batch's, and last_seq grows by the batch's appended.
 *   5. Sealing (tdm_compact) seals every shard whose end plus grace is at or
 *      below the newest main-file event, and changes no read; afterwards
 *      every event for a sealed shard is late, until it is sealed again.
 *      Retention (tdm_retain) drops exactly the closed shards that end at or
 *      before the given time, and nothing else.
 *
 * The shard duration and grace follow from the seed (see configs).
 * A failure names the seed and the operation; rerun one seed with
 * TDM_MODEL_SEED=<seed> [TDM_MODEL_OPS=<ops>] build/tests/test_model.
 * TDM_MODEL_OPS also makes every seed run longer.
 */
#include "support.h"

#include <check.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)
#define SHARD_NS (10 * SEC)
#define GRACE_NS (2 * SEC)
#define INDEX_INTERVAL 256u
#define T0 INT64_C(1700000000000000000)

#define DEFAULT_OPS 500
#define MAX_BATCH 200
#define MAX_GEN_LABELS 4
#define MAX_PAYLOAD_GEN 3000

/* The store's shard duration and grace follow from the seed (seed % 4):
 * mostly the small ones above, also a grace near a shard's length, and short
 * shards with a 1 ns grace (almost everything out of order is late). */
static const struct {
	int64_t shard_ns, grace_ns;
} configs[4] = {
	{SHARD_NS, GRACE_NS}, {SHARD_NS, 8 * SEC}, {SEC, 1}, {SHARD_NS, GRACE_NS},
};
static const uint64_t seeds[] = {4, 5, 6, 7, 0x7469646d61726bull};
#define N_SEEDS (sizeof seeds / sizeof seeds[0])

/* Label vocabulary: keys and values that are prefixes of one another and
 * multi-byte UTF-8, so the canonical order is exercised. No '*' in values:
 * selectors give it a meaning. */
static const char *const vocab_keys[] = {
	"host", "level", "a", "ab", "b", "stream", "\xc3\xa9t\xc3\xa9",
};
static const char *const vocab_values[] = {
	"web-1", "web-2", "web-10", "", "error", "warn", "x", "xy", "\xc3\xbc",
};
static const char *const vocab_lines[] = {
	"GET /", "GET /a", "GET /index.html", "POST /api/orders", "x",
};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- The model --------------------------------------------------------- */

typedef struct mevent {
	tdm_event *ev;  /* owned; labels sorted by key */
	uint32_t batch; /* the batch that stored it: its seq lies in that batch's window */
	bool late;
} mevent;

typedef struct watermark {
	int64_t shard;
	int64_t max_ts;
	bool sealed;
} watermark;

/* seqs of a batch's events lie in (lo, hi]. */
typedef struct seq_window {
	uint64_t lo, hi;
} seq_window;

typedef struct model {
	int64_t shard_ns, grace_ns;
	mevent *ev; /* sorted by tst_event_cmp; all distinct */
	size_t n, cap;
	size_t n_late;
	watermark *wm; /* sorted by shard */
	size_t n_wm, cap_wm;
	seq_window *batches;
	size_t n_batches, cap_batches;
	uint64_t last_seq;
	bool retained; /* a retention dropped shards: last_seq may have fallen */
} model;

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return p;
	size_t c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	p = tst_realloc(p, c * elem);
	*cap = c;
	return p;
}

/* The position of `ev` in the model, or where it would go. */
static bool model_find(const model *m, const tdm_event *ev, size_t *pos)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = tst_event_cmp(m->ev[mid].ev, ev);
		if (c == 0) {
			*pos = mid;
			return true;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return false;
}

/* The first position whose ts is >= ts. */
static size_t model_lower(const model *m, int64_t ts)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->ev[mid].ev->ts < ts)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static watermark *model_watermark(model *m, int64_t shard, bool create)
{
	size_t lo = 0, hi = m->n_wm;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->wm[mid].shard == shard)
			return &m->wm[mid];
		if (m->wm[mid].shard < shard)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!create)
		return NULL;
	m->wm = grow(m->wm, &m->cap_wm, m->n_wm + 1, sizeof *m->wm);
	memmove(&m->wm[lo + 1], &m->wm[lo], (m->n_wm - lo) * sizeof *m->wm);
	m->n_wm++;
	m->wm[lo] = (watermark){shard, -1, false};
	return &m->wm[lo];
}

/* Judges one appended event as SPEC §2-§3 say and records it. `ev` has its
 * labels sorted; if it gets stored the model keeps it and *taken is set. */
static enum tdm_outcome model_append(model *m, tdm_event *ev, bool *taken)
{
	size_t pos;
	*taken = false;
	if (model_find(m, ev, &pos))
		return TDM_DUPLICATE;

	watermark *w = model_watermark(m, ev->ts / m->shard_ns, true);
	bool late = w->sealed || (w->max_ts >= 0 && ev->ts < w->max_ts - m->grace_ns);
	if (!late && ev->ts > w->max_ts)
		w->max_ts = ev->ts;

	m->ev = grow(m->ev, &m->cap, m->n + 1, sizeof *m->ev);
	memmove(&m->ev[pos + 1], &m->ev[pos], (m->n - pos) * sizeof *m->ev);
	m->ev[pos] = (mevent){ev, (uint32_t)m->n_batches, late};
	m->n++;
	m->n_late += late;
	*taken = true;
	return late ? TDM_STORED_LATE : TDM_STORED;
}

static void model_free(model *m)
{
	for (size_t i = 0; i < m->n; i++)
		tst_event_free(m->ev[i].ev);
	free(m->ev);
	free(m->wm);
	free(m->batches);
	memset(m, 0, sizeof *m);
}

/* ---- Selectors --------------------------------------------------------- */

static bool match_holds(const tdm_match *c, const tdm_event *ev)
{
	for (size_t i = 0; i < ev->n_labels; i++) {
		if (strcmp(ev->labels[i].key, c->key) != 0)
			continue;
		const char *v = ev->labels[i].value;
		size_t len = strlen(c->value);
		if (len > 0 && c->value[len - 1] == '*')
			return strncmp(v, c->value, len - 1) == 0;
		return strcmp(v, c->value) == 0;
	}
	return false;
}

static bool selected(const tdm_read_options *ro, const tdm_event *ev)
{
	if (ro == NULL || ro->n_where == 0)
		return true;
	for (size_t g = 0; g < ro->n_where; g++) {
		bool all = true;
		for (size_t i = 0; all && i < ro->where[g].n_matches; i++)
			all = match_holds(&ro->where[g].matches[i], ev);
		if (all)
			return true;
	}
	return false;
}

/* ---- A run: one seed against one store --------------------------------- */

/* One batch being appended. in[i] is what goes to tdm_append (labels in
 * a random order); canon[i] is the same event with sorted labels, owned by
 * the batch (owned[i]) or by the model. */
typedef struct batch {
	tdm_event in[MAX_BATCH];
	tdm_label labels[MAX_BATCH][MAX_GEN_LABELS];
	tdm_event *canon[MAX_BATCH];
	tdm_event *owned[MAX_BATCH];
	uint8_t expect[MAX_BATCH];
	uint8_t got[MAX_BATCH];
	size_t n;
} batch;

typedef struct run {
	uint64_t seed;
	int op;
	tst_rng rng;
	char *dir;
	tdm_store *store;
	model m;
	int64_t clock; /* the "present" of the event stream */
	batch *b;
	unsigned char scratch[MAX_PAYLOAD_GEN];
	uint64_t n_reads, n_read_events, n_reopens, n_late, n_dups;
	uint64_t n_compacts, n_retained;
} run;

static void run_fail(const run *r, int line, const char *fmt, ...)
{
	char msg[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	ck_abort_msg("test_model.c:%d: seed %" PRIu64 " op %d: %s\n"
	             "  rerun: TDM_MODEL_SEED=%" PRIu64 " TDM_MODEL_OPS=%d",
	             line, r->seed, r->op, msg, r->seed, r->op + 1);
}

#define CHECK(r, cond, ...)                                   \
	do {                                                  \
		if (!(cond))                                  \
			run_fail((r), __LINE__, __VA_ARGS__); \
	} while (0)

/* A library call that must succeed. */
#define CALL(r, expr)                                                      \
	do {                                                               \
		int rc_ = (expr);                                          \
		CHECK((r), rc_ == 0, "%s returned %d (%s): %s", #expr, rc_, \
		      tdm_strerror(rc_), tdm_error_message());             \
	} while (0)

static uint64_t rnd(run *r, uint64_t n)
{
	return tst_rng_range(&r->rng, n);
}

static bool chance(run *r, unsigned percent)
{
	return tst_rng_chance(&r->rng, percent);
}

static const tdm_event *random_model_event(run *r)
{
	return r->m.n ? r->m.ev[rnd(r, r->m.n)].ev : NULL;
}

/* ---- Generating events ------------------------------------------------- */

static size_t gen_labels(run *r, tdm_label *out)
{
	size_t n = rnd(r, MAX_GEN_LABELS + 1);
	bool used[COUNT(vocab_keys)] = {false};
	for (size_t i = 0; i < n; i++) {
		size_t k;
		do
			k = rnd(r, COUNT(vocab_keys));
		while (used[k]);
		used[k] = true;
		out[i].key = vocab_keys[k];
		out[i].value = vocab_values[rnd(r, COUNT(vocab_values))];
	}
	return n;
}

static size_t gen_payload(run *r, const void **out)
{
	uint64_t kind = rnd(r, 100);
	*out = r->scratch;
	if (kind < 20)
		return 0;
	if (kind < 55) {
		const char *line = vocab_lines[rnd(r, COUNT(vocab_lines))];
		if (chance(r, 10)) /* the same line with a NUL after it */
			return (size_t)snprintf((char *)r->scratch, 64, "%s", line) + 1;
		if (chance(r, 50))
			return (size_t)snprintf((char *)r->scratch, 64, "%s", line);
		return (size_t)snprintf((char *)r->scratch, 64, "%s?n=%u",
		                        line, (unsigned)rnd(r, 20));
	}
	size_t len = kind < 90 ? 1 + rnd(r, 64) : 300 + rnd(r, MAX_PAYLOAD_GEN - 300);
	tst_rng_bytes(&r->rng, r->scratch, len);
	for (size_t i = 0; i < len; i += 1 + rnd(r, 8))
		r->scratch[i] = 0; /* plenty of NUL bytes */
	return len;
}

static uint32_t gen_id(run *r)
{
	uint64_t kind = rnd(r, 100);
	if (kind < 50)
		return (uint32_t)rnd(r, 4); /* ties on ts+id are common */
	if (kind < 53)
		return UINT32_MAX;
	return (uint32_t)tst_rng_next(&r->rng);
}

static int64_t gen_ts(run *r)
{
	const int64_t shard = r->m.shard_ns, grace = r->m.grace_ns;
	uint64_t kind = rnd(r, 100);
	if (kind < 45) { /* in order, on a coarse grid so ts ties happen */
		r->clock += (int64_t)rnd(r, 6) * 5 * MS;
		return r->clock;
	}
	if (kind < 62) /* out of order, inside the grace window */
		return r->clock - (int64_t)rnd(r, (uint64_t)grace / MS + 1) * MS;
	if (kind < 74) /* late, or on time in a shard the clock left */
		return r->clock - grace - MS - (int64_t)rnd(r, 15 * SEC);
	if (kind < 82) /* backfill anywhere into the past of the stream */
		return T0 + (int64_t)rnd(r, (uint64_t)(r->clock - T0) + 1);
	if (kind < 89) { /* the ts of a stored event: ties of every kind */
		const tdm_event *e = random_model_event(r);
		return e ? e->ts : r->clock;
	}
	if (kind < 90) /* far future: its own shard only */
		return r->clock + (int64_t)rnd(r, 1000000) * SEC + (int64_t)rnd(r, SEC);
	if (kind < 91) { /* the edges of the time line */
		const int64_t edges[] = {
			0, 1, shard - 1, shard, shard + 1, 3 * grace,
			INT64_MAX - 1, INT64_MAX - shard, INT64_MAX / 2,
		};
		int64_t t = edges[rnd(r, COUNT(edges))];
		return t >= INT64_MAX - 3 * SEC ? t - (int64_t)rnd(r, 3) * SEC : t;
	}
	if (kind < 95 && r->m.n_wm > 0) { /* right at a shard's grace edge */
		const watermark *w = &r->m.wm[rnd(r, r->m.n_wm)];
		int64_t t = w->max_ts - grace + (int64_t)rnd(r, 3) - 1;
		return t >= 0 ? t : w->max_ts;
	}
	/* shard boundaries near the clock */
	int64_t boundary = (r->clock / shard - (int64_t)rnd(r, 3)) * shard;
	return boundary + (int64_t)rnd(r, 5) * MS - 2 * MS;
}

/* Adds an event to the batch: `src` with its labels put in random order.
 * The batch takes `owned` (which may be NULL when src is the model's). */
static void batch_add(run *r, const tdm_event *src, tdm_event *owned)
{
	batch *b = r->b;
	size_t i = b->n++;
	tdm_label *labels = b->labels[i];
	for (size_t k = 0; k < src->n_labels; k++)
		labels[k] = src->labels[k];
	for (size_t k = src->n_labels; k > 1; k--) { /* Fisher-Yates */
		size_t j = rnd(r, k);
		tdm_label t = labels[k - 1];
		labels[k - 1] = labels[j];
		labels[j] = t;
	}
	b->in[i] = *src;
	b->in[i].labels = src->n_labels ? labels : NULL;
	b->in[i].seq = tst_rng_next(&r->rng); /* ignored on input */
	b->canon[i] = owned ? owned : (tdm_event *)src;
	b->owned[i] = owned;
}

static void add_fresh(run *r)
{
	tdm_label labels[MAX_GEN_LABELS];
	tdm_event ev = {0};
	ev.ts = gen_ts(r);
	ev.id = gen_id(r);
	ev.n_labels = gen_labels(r, labels);
	ev.labels = labels;
	ev.payload_len = gen_payload(r, &ev.payload);
	tdm_event *owned = tst_event_dup(&ev);
	batch_add(r, owned, owned);
}

/* Something already stored, or earlier in this batch. */
static const tdm_event *pick_existing(run *r)
{
	if (r->b->n > 0 && (r->m.n == 0 || chance(r, 40)))
		return r->b->canon[rnd(r, r->b->n)];
	return random_model_event(r);
}

/* A near-copy of `base`: one field differs (most of the time). */
static void add_variant(run *r, const tdm_event *base, int field)
{
	tdm_label labels[MAX_GEN_LABELS];
	tdm_event ev = *base;
	if (field == 0)
		ev.id = chance(r, 50) ? base->id + 1 : gen_id(r);
	else if (field == 1)
		ev.payload_len = gen_payload(r, &ev.payload);
	else {
		ev.n_labels = gen_labels(r, labels);
		ev.labels = labels;
	}
	tdm_event *owned = tst_event_dup(&ev);
	batch_add(r, owned, owned);
}

static void gen_batch(run *r)
{
	batch *b = r->b;
	size_t want = chance(r, 20) ? 1 + rnd(r, 5) : 1 + rnd(r, MAX_BATCH);
	b->n = 0;
	while (b->n < want) {
		uint64_t kind = rnd(r, 100);
		const tdm_event *base = kind < 70 ? NULL : pick_existing(r);
		if (base == NULL)
			add_fresh(r);
		else if (kind < 85)
			batch_add(r, base, NULL); /* an exact duplicate */
		else
			add_variant(r, base, (int)(kind - 85) % 3);
	}
}

/* ---- Checks against the model ------------------------------------------ */

static void check_stat(run *r)
{
	const model *m = &r->m;
	tdm_stat st;
	CALL(r, tdm_stat_get(&st, r->store));
	CHECK(r, st.events == m->n, "stat.events %" PRIu64 ", model %zu",
	      st.events, m->n);
	CHECK(r, st.late_events == m->n_late,
	      "stat.late_events %" PRIu64 ", model %zu", st.late_events,
	      m->n_late);
	CHECK(r, st.shards == m->n_wm, "stat.shards %" PRIu64 ", model %zu",
	      st.shards, m->n_wm);
	CHECK(r, st.last_seq == m->last_seq || (m->retained && st.last_seq < m->last_seq),
	      "stat.last_seq %" PRIu64 ", model %" PRIu64, st.last_seq,
	      m->last_seq);
	int64_t min_ts = m->n ? m->ev[0].ev->ts : -1;
	int64_t max_ts = m->n ? m->ev[m->n - 1].ev->ts : -1;
	CHECK(r, st.min_ts == min_ts && st.max_ts == max_ts,
	      "stat min_ts/max_ts %" PRId64 "/%" PRId64 ", model %" PRId64
	      "/%" PRId64, st.min_ts, st.max_ts, min_ts, max_ts);
}

static int cmp_event_ptr(const void *a, const void *b)
{
	return tst_event_cmp(*(tdm_event *const *)a, *(tdm_event *const *)b);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* A read in progress and what it must return: the model's events of the
 * range that the selector takes, in §4 order. want[] points at the model's
 * events, which stay put while the model grows. */
typedef struct read_check {
	int64_t from, to;
	const tdm_read_options *ro;
	const tdm_event **want;
	uint32_t *want_batch;
	size_t n_want;
	tdm_iter *it;
} read_check;

static void read_start(run *r, read_check *rc, int64_t from, int64_t to,
                       const tdm_read_options *ro)
{
	const model *m = &r->m;
	size_t lo = model_lower(m, from), hi = model_lower(m, to);
	rc->from = from;
	rc->to = to;
	rc->ro = ro;
	rc->want = tst_malloc((hi - lo) * sizeof *rc->want);
	rc->want_batch = tst_malloc((hi - lo) * sizeof *rc->want_batch);
	rc->n_want = 0;
	for (size_t i = lo; i < hi; i++) {
		if (!selected(ro, m->ev[i].ev))
			continue;
		rc->want[rc->n_want] = m->ev[i].ev;
		rc->want_batch[rc->n_want++] = m->ev[i].batch;
	}
	CALL(r, tdm_iter_open(&rc->it, r->store, from, to, ro));
}

/* Checks the k-th event a read returned (NULL: the read ended there). */
static void read_compare(run *r, const read_check *rc, size_t k,
                         const tdm_event *g, size_t n_got)
{
	char e1[512], e2[512];
	const tdm_event *w = k < rc->n_want ? rc->want[k] : NULL;
	bool storage_order = rc->ro && (rc->ro->flags & TDM_READ_STORAGE_ORDER);
	CHECK(r, g && w && tst_event_cmp(g, w) == 0,
	      "read [%" PRId64 ", %" PRId64 ")%s%s: %zu events so far, model %zu;"
	      " first difference at #%zu:\n  got   %s\n  model %s", rc->from,
	      rc->to, storage_order ? " storage order" : "",
	      rc->ro && rc->ro->n_where ? " with selector" : "", n_got,
	      rc->n_want, k, g ? tst_event_str(e1, sizeof e1, g) : "(end)",
	      w ? tst_event_str(e2, sizeof e2, w) : "(end)");
	const seq_window *sw = &r->m.batches[rc->want_batch[k]];
	CHECK(r, g->seq > sw->lo && g->seq <= sw->hi,
	      "read [%" PRId64 ", %" PRId64 "): seq %" PRIu64 " of %s is"
	      " outside its batch's (%" PRIu64 ", %" PRIu64 "]", rc->from, rc->to,
	      g->seq, tst_event_str(e1, sizeof e1, g), sw->lo, sw->hi);
	for (size_t i = 1; i < g->n_labels; i++)
		CHECK(r, strcmp(g->labels[i - 1].key, g->labels[i].key) < 0,
		      "read [%" PRId64 ", %" PRId64 "): labels not sorted by key"
		      " in %s", rc->from, rc->to, tst_event_str(e1, sizeof e1, g));
}

/* Drains the read and compares it with what the model said at its start.
 * In §4 order events are compared as they come; in storage order they are
 * collected and sorted first. */
static void read_finish(run *r, read_check *rc)
{
	bool storage_order = rc->ro && (rc->ro->flags & TDM_READ_STORAGE_ORDER);
	size_t n_got = 0, cap = 0;
	tdm_event **got = NULL;
	uint64_t *seqs = tst_malloc((rc->n_want + 1) * sizeof *seqs);
	for (;;) {
		const tdm_event *ev;
		int rv = tdm_iter_next(&ev, rc->it);
		if (rv == TDM_ITEROVER)
			break;
		CHECK(r, rv == 0, "read [%" PRId64 ", %" PRId64 "): tdm_iter_next"
		      " after %zu events returned %d (%s): %s", rc->from, rc->to,
		      n_got, rv, tdm_strerror(rv), tdm_error_message());
		if (storage_order) {
			CHECK(r, n_got < rc->n_want, "read [%" PRId64 ", %" PRId64
			      ") storage order: more than the model's %zu events",
			      rc->from, rc->to, rc->n_want);
			got = grow(got, &cap, n_got + 1, sizeof *got);
			got[n_got] = tst_event_dup(ev);
		} else {
			read_compare(r, rc, n_got, ev, n_got);
		}
		seqs[n_got++] = ev->seq;
	}
	const char *damage_msg;
	uint64_t damage = tdm_iter_damage(&damage_msg, rc->it);
	tdm_iter_close(rc->it);
	CHECK(r, damage == 0, "read [%" PRId64 ", %" PRId64 "): %" PRIu64
	      " damaged stretches: %s", rc->from, rc->to, damage, damage_msg);

	if (storage_order && n_got > 0) {
		qsort(got, n_got, sizeof *got, cmp_event_ptr);
		for (size_t k = 0; k < n_got; k++)
			read_compare(r, rc, k, got[k], n_got);
	}
	if (n_got < rc->n_want)
		read_compare(r, rc, n_got, NULL, n_got);

	qsort(seqs, n_got, sizeof *seqs, cmp_u64);
	for (size_t k = 1; k < n_got; k++)
		CHECK(r, seqs[k - 1] != seqs[k], "read [%" PRId64 ", %" PRId64
		      "): seq %" PRIu64 " returned twice", rc->from, rc->to,
		      seqs[k]);

	r->n_reads++;
	r->n_read_events += n_got;
	for (size_t k = 0; k < n_got && storage_order; k++)
		tst_event_free(got[k]);
	free(got);
	free(seqs);
	free(rc->want);
	free(rc->want_batch);
}

/* Reads [from, to) and compares with the model. */
static void check_read(run *r, int64_t from, int64_t to,
                       const tdm_read_options *ro)
{
	read_check rc;
	read_start(r, &rc, from, to, ro);
	read_finish(r, &rc);
}

/* ---- Operations -------------------------------------------------------- */

static void op_append(run *r)
{
	batch *b = r->b;
	model *m = &r->m;
	gen_batch(r);

	/* The model first: it decides from what was stored before. */
	tdm_append_result want = {0, 0, 0};
	for (size_t i = 0; i < b->n; i++) {
		bool taken;
		b->expect[i] = (uint8_t)model_append(m, b->canon[i], &taken);
		if (taken)
			b->owned[i] = NULL; /* the model has it now */
		want.appended += b->expect[i] != TDM_DUPLICATE;
		want.late += b->expect[i] == TDM_STORED_LATE;
		want.duplicates += b->expect[i] == TDM_DUPLICATE;
	}
	m->batches = grow(m->batches, &m->cap_batches, m->n_batches + 1,
	                  sizeof *m->batches);
	m->batches[m->n_batches++] =
		(seq_window){m->last_seq, m->last_seq + want.appended};
	m->last_seq += want.appended;

	tdm_append_result res = {99, 99, 99};
	memset(b->got, 0xff, sizeof b->got);
	CALL(r, tdm_append(&res, b->got, r->store, b->in, b->n));

	char e1[512];
	for (size_t i = 0; i < b->n; i++)
		CHECK(r, b->got[i] == b->expect[i],
		      "batch of %zu: event #%zu %s: outcome %d, model %d"
		      " (0 stored, 1 late, 2 duplicate)", b->n, i,
		      tst_event_str(e1, sizeof e1, b->canon[i]), b->got[i],
		      b->expect[i]);
	CHECK(r, res.appended == want.appended && res.late == want.late &&
	      res.duplicates == want.duplicates,
	      "batch of %zu: appended/late/duplicates %" PRIu64 "/%" PRIu64
	      "/%" PRIu64 ", model %" PRIu64 "/%" PRIu64 "/%" PRIu64, b->n,
	      res.appended, res.late, res.duplicates, want.appended, want.late,
	      want.duplicates);
	r->n_late += want.late;
	r->n_dups += want.duplicates;

	for (size_t i = 0; i < b->n; i++)
		tst_event_free(b->owned[i]);
	check_stat(r);
}

static int64_t shard_start(const run *r, int64_t shard)
{
	int64_t d = r->m.shard_ns;
	return shard > INT64_MAX / d ? INT64_MAX : shard * d;
}

static void gen_range(run *r, int64_t *from, int64_t *to)
{
	const int64_t grace = r->m.grace_ns;
	const tdm_event *a = random_model_event(r), *b = random_model_event(r);
	uint64_t kind = rnd(r, 100);
	if (a == NULL || kind < 8) { /* everything */
		*from = 0;
		*to = INT64_MAX;
	} else if (kind < 30) { /* between two stored timestamps */
		*from = a->ts < b->ts ? a->ts : b->ts;
		*to = a->ts < b->ts ? b->ts : a->ts;
		if (chance(r, 50) && *to < INT64_MAX)
			*to += 1;
	} else if (kind < 38) { /* empty */
		*from = *to = a->ts;
	} else if (kind < 50) { /* exactly one timestamp */
		*from = a->ts;
		*to = a->ts + 1;
	} else if (kind < 65) { /* whole shards */
		int64_t shard = a->ts / r->m.shard_ns;
		*from = shard_start(r, shard);
		*to = shard_start(r, shard + 1 + (int64_t)rnd(r, 3));
	} else if (kind < 90) { /* a window near the present */
		*from = r->clock - (int64_t)rnd(r, 60 * SEC);
		*to = *from + (int64_t)rnd(r, 10 * SEC);
	} else if (kind < 95) { /* up to a point, or from a point on */
		*from = chance(r, 50) ? 0 : a->ts;
		*to = *from ? INT64_MAX : a->ts;
	} else { /* around a stored event, inside grace of it */
		*from = a->ts - (a->ts > grace ? (int64_t)rnd(r, grace) : 0);
		*to = a->ts + (a->ts < INT64_MAX - grace ? (int64_t)rnd(r, grace) : 0);
	}
}

static void op_read(run *r)
{
	int64_t from, to;
	gen_range(r, &from, &to);
	tdm_read_options ro = TDM_READ_OPTIONS_INIT;
	if (chance(r, 15))
		ro.flags |= TDM_READ_STORAGE_ORDER;
	check_read(r, from, to, chance(r, 50) ? &ro : NULL);
}

/* A read open across an append sees what was committed when it began. */
static void op_read_across_append(run *r)
{
	int64_t from, to;
	gen_range(r, &from, &to);
	read_check rc;
	read_start(r, &rc, from, to, NULL);
	op_append(r);
	read_finish(r, &rc);
}

static void op_read_selector(run *r)
{
	tdm_match matches[3][2];
	tdm_selector groups[3];
	char prefixes[3][2][16];
	size_t n_groups = 1 + rnd(r, 3);
	for (size_t g = 0; g < n_groups; g++) {
		groups[g].matches = matches[g];
		groups[g].n_matches = 1 + rnd(r, 2);
		for (size_t i = 0; i < groups[g].n_matches; i++) {
			tdm_match *c = &matches[g][i];
			c->key = chance(r, 5) ? "missing"
			                      : vocab_keys[rnd(r, COUNT(vocab_keys))];
			const char *v = vocab_values[rnd(r, COUNT(vocab_values))];
			uint64_t kind = rnd(r, 100);
			if (kind < 50) {
				c->value = v;
			} else if (kind < 70) {
				c->value = "*";
			} else { /* a prefix of a value, maybe all of it */
				size_t len = strlen(v);
				len = len ? rnd(r, len + 1) : 0;
				while (len > 0 && (v[len] & 0xc0) == 0x80)
					len--; /* whole UTF-8 characters only */
				snprintf(prefixes[g][i], sizeof prefixes[g][i],
				         "%.*s*", (int)len, v);
				c->value = prefixes[g][i];
			}
		}
	}
	tdm_read_options ro = TDM_READ_OPTIONS_INIT;
	ro.where = groups;
	ro.n_where = n_groups;
	int64_t from, to;
	gen_range(r, &from, &to);
	check_read(r, from, to, &ro);
}

static void open_store(run *r, bool readonly)
{
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	uint64_t kind = rnd(r, 100); /* batch durability syncs: keep it rare */
	oo.durability = kind < 45 ? TDM_DURABILITY_NONE
	              : kind < 90 ? TDM_DURABILITY_INTERVAL
	                          : TDM_DURABILITY_BATCH;
	if (readonly)
		oo.flags |= TDM_OPEN_READONLY;
	CALL(r, tdm_store_open(&r->store, r->dir, &oo));

	tdm_options o;
	tdm_store_options(&o, r->store);
	CHECK(r, o.shard_duration_ns == r->m.shard_ns &&
	      o.grace_ns == r->m.grace_ns && o.index_interval == INDEX_INTERVAL,
	      "reopened with options %" PRId64 "/%" PRId64 "/%u",
	      o.shard_duration_ns, o.grace_ns, (unsigned)o.index_interval);
}

static void close_store(run *r)
{
	CALL(r, tdm_store_close(r->store));
	r->store = NULL;
}

static void check_verify(run *r)
{
	uint64_t problems = 99;
	CALL(r, tdm_verify(&problems, r->store, NULL, NULL));
	CHECK(r, problems == 0, "tdm_verify found %" PRIu64 " problems",
	      problems);
}

/* Closes and reopens the writer; checks everything survived. */
static void op_reopen(run *r)
{
	close_store(r);
	open_store(r, false);
	r->n_reopens++;
	check_stat(r);
	check_read(r, 0, INT64_MAX, NULL);
	if (chance(r, 50))
		check_verify(r);
}

/* A read-only phase: the writer is closed, a reader reads, appends fail. */
static void op_readonly_phase(run *r)
{
	close_store(r);
	open_store(r, true);
	check_stat(r);
	check_read(r, 0, INT64_MAX, NULL);
	op_read(r);

	tdm_event ev = {0};
	ev.ts = r->clock;
	ev.payload = "read-only";
	ev.payload_len = 9;
	tdm_append_result res;
	int rc = tdm_append(&res, NULL, r->store, &ev, 1);
	CHECK(r, rc == TDM_EREADONLY, "append on a read-only store returned"
	      " %d (%s)", rc, tdm_strerror(rc));
	check_stat(r);

	close_store(r);
	open_store(r, false);
}

/* ---- Sealing and retention ---------------------------------------------- */

static int64_t model_newest(const model *m)
{
	int64_t newest = -1;
	for (size_t i = 0; i < m->n_wm; i++)
		if (m->wm[i].max_ts > newest)
			newest = m->wm[i].max_ts;
	return newest;
}

static bool model_closed(const model *m, int64_t shard, int64_t newest)
{
	return shard < (INT64_MAX - m->grace_ns) / m->shard_ns - 1 &&
	       (shard + 1) * m->shard_ns + m->grace_ns <= newest;
}

/* Seals the closed shards: their late events join the sealed file (no
 * longer late for stat) and the watermark covers them all. */
static void op_compact(run *r)
{
	model *m = &r->m;
	int64_t newest = model_newest(m);
	uint64_t want = 0;
	for (size_t i = 0; i < m->n_wm; i++) {
		watermark *w = &m->wm[i];
		if (!model_closed(m, w->shard, newest))
			continue;
		bool any_late = false;
		for (size_t k = model_lower(m, w->shard * m->shard_ns);
		     k < m->n && m->ev[k].ev->ts / m->shard_ns == w->shard; k++) {
			any_late |= m->ev[k].late;
			if (m->ev[k].late) {
				m->ev[k].late = false;
				m->n_late--;
			}
			if (m->ev[k].ev->ts > w->max_ts)
				w->max_ts = m->ev[k].ev->ts;
		}
		if (!w->sealed || any_late)
			want++;
		w->sealed = true;
	}
	tdm_compact_result res;
	CALL(r, tdm_compact(&res, r->store));
	CHECK(r, res.shards_sealed == want && res.shards_skipped == 0,
	      "compact sealed %" PRIu64 " shards, model %" PRIu64, res.shards_sealed,
	      want);
	r->n_compacts++;
	check_stat(r);
	check_read(r, 0, INT64_MAX, NULL);
	op_read(r);
	if (chance(r, 50))
		check_verify(r);
}

/* Drops closed shards ending at or before a time among the oldest. */
static void op_retain(run *r)
{
	model *m = &r->m;
	if (!m->n_wm)
		return;
	int64_t newest = model_newest(m);
	int64_t shard = m->wm[rnd(r, (m->n_wm + 2) / 3)].shard;
	int64_t before = shard_start(r, shard + 1) + (int64_t)rnd(r, (uint64_t)m->shard_ns);
	uint64_t want = 0;
	for (size_t i = 0; i < m->n_wm;) {
		watermark *w = &m->wm[i];
		if (w->shard >= INT64_MAX / m->shard_ns ||
		    (w->shard + 1) * m->shard_ns > before || !model_closed(m, w->shard, newest)) {
			i++;
			continue;
		}
		size_t lo = model_lower(m, w->shard * m->shard_ns), hi = lo;
		while (hi < m->n && m->ev[hi].ev->ts / m->shard_ns == w->shard) {
			m->n_late -= m->ev[hi].late;
			tst_event_free(m->ev[hi].ev);
			hi++;
		}
		memmove(&m->ev[lo], &m->ev[hi], (m->n - hi) * sizeof *m->ev);
		m->n -= hi - lo;
		memmove(&m->wm[i], &m->wm[i + 1], (m->n_wm - i - 1) * sizeof *m->wm);
		m->n_wm--;
		want++;
	}
	m->retained |= want > 0;
	uint64_t dropped = 99;
	CALL(r, tdm_retain(&dropped, r->store, before));
	CHECK(r, dropped == want, "retain dropped %" PRIu64 " shards, model %" PRIu64,
	      dropped, want);
	r->n_retained += dropped;
	check_stat(r);
	check_read(r, 0, INT64_MAX, NULL);
	if (chance(r, 50))
		check_verify(r);
}

static int env_int(const char *name, int fallback)
{
	const char *v = getenv(name);
	return v && *v ? atoi(v) : fallback;
}

static void run_seed(uint64_t seed, int ops)
{
	run *r = tst_malloc(sizeof *r);
	memset(r, 0, sizeof *r);
	r->b = tst_malloc(sizeof *r->b);
	r->seed = seed;
	r->m.shard_ns = configs[seed % 4].shard_ns;
	r->m.grace_ns = configs[seed % 4].grace_ns;
	r->op = -1;
	tst_rng_seed(&r->rng, seed);
	r->clock = T0 + (int64_t)rnd(r, 100) * SEC;
	r->dir = tst_tmpdir();

	tdm_options o = TDM_OPTIONS_INIT;
	o.shard_duration_ns = r->m.shard_ns;
	o.grace_ns = r->m.grace_ns;
	o.index_interval = INDEX_INTERVAL;
	CALL(r, tdm_store_create(r->dir, &o));
	open_store(r, false);
	check_stat(r);
	check_read(r, 0, INT64_MAX, NULL);

	for (r->op = 0; r->op < ops; r->op++) {
		uint64_t kind = rnd(r, 200);
		if (kind < 118)
			op_append(r);
		else if (kind < 160)
			op_read(r);
		else if (kind < 175)
			op_read_selector(r);
		else if (kind < 179)
			op_read_across_append(r);
		else if (kind < 188)
			op_reopen(r);
		else if (kind < 193)
			op_readonly_phase(r);
		else if (kind < 198)
			op_compact(r);
		else
			op_retain(r);
	}

	/* The end: everything, after a last reopen, and a sound store. */
	op_reopen(r);
	check_verify(r);
	tdm_stat st;
	CALL(r, tdm_stat_get(&st, r->store));
	CHECK(r, st.index_entries > 0, "no sparse index entries after %" PRIu64
	      " events (index_interval %u)", st.events, INDEX_INTERVAL);
	fprintf(stderr, "model seed %" PRIu64 " (shards %" PRId64 " ns, grace %"
	        PRId64 " ns): %d ops, %zu events (%" PRIu64
	        " late appends, %" PRIu64 " duplicates), %zu shards, %" PRIu64
	        " index entries, %" PRIu64 " reads returned %" PRIu64
	        " events, %" PRIu64 " reopens, %" PRIu64 " compactions (%" PRIu64
	        " sealed shards), %" PRIu64 " shards retained away\n", seed,
	        r->m.shard_ns, r->m.grace_ns, ops, r->m.n, r->n_late,
	        r->n_dups, r->m.n_wm, st.index_entries, r->n_reads,
	        r->n_read_events, r->n_reopens, r->n_compacts, st.sealed_shards,
	        r->n_retained);

	close_store(r);
	tst_rmtree(r->dir);
	free(r->dir);
	model_free(&r->m);
	free(r->b);
	free(r);
}

START_TEST(test_model_random)
{
	int ops = env_int("TDM_MODEL_OPS", DEFAULT_OPS);
	const char *one = getenv("TDM_MODEL_SEED");
	if (one && *one) {
		if (_i == 0)
			run_seed(strtoull(one, NULL, 0), ops);
		return;
	}
	run_seed(seeds[_i], ops);
}
END_TEST

/* ---- Fixed cases ------------------------------------------------------- */

static const tdm_options test_opts = {
	TDM_OPTIONS_VERSION, SHARD_NS, GRACE_NS, INDEX_INTERVAL, 0,
};

static tdm_event plain_event(int64_t ts, uint32_t id, const char *payload)
{
	tdm_event ev = {0};
	ev.ts = ts;
	ev.id = id;
	ev.payload = payload;
	ev.payload_len = strlen(payload);
	return ev;
}

static uint64_t count_all(tdm_store *s)
{
	tdm_iter *it;
	const tdm_event *ev;
	uint64_t n = 0;
	int rc;
	ck_assert_int_eq(tdm_iter_open(&it, s, 0, INT64_MAX, NULL), 0);
	while ((rc = tdm_iter_next(&ev, it)) == 0)
		n++;
	ck_assert_int_eq(rc, TDM_ITEROVER);
	tdm_iter_close(it);
	return n;
}

START_TEST(test_reopen_other_options)
{
	char *dir = tst_tmpdir();
	tdm_store *s;
	tdm_append_result res;
	tdm_event evs[3] = {
		plain_event(T0 + 5 * SEC, 1, "a"), plain_event(T0 + 6 * SEC, 2, "b"),
		plain_event(T0 + 30 * SEC, 3, "c"),
	};

	ck_assert_int_eq(tdm_store_create(dir, &test_opts), 0);
	ck_assert_int_eq(tdm_store_create(dir, &test_opts), 0); /* no-op */
	ck_assert_int_eq(tdm_store_open(&s, dir, NULL), 0);
	ck_assert_int_eq(tdm_append(&res, NULL, s, evs, 3), 0);
	ck_assert_uint_eq(res.appended, 3);
	ck_assert_int_eq(tdm_store_close(s), 0);

	tdm_options other = test_opts;
	other.grace_ns = GRACE_NS + 1;
	ck_assert_int_eq(tdm_store_create(dir, &other), TDM_EMISMATCH);
	other = test_opts;
	other.shard_duration_ns = 2 * SHARD_NS;
	ck_assert_int_eq(tdm_store_create(dir, &other), TDM_EMISMATCH);
	other = test_opts;
	other.index_interval = 2 * INDEX_INTERVAL;
	ck_assert_int_eq(tdm_store_create(dir, &other), TDM_EMISMATCH);
	ck_assert_int_eq(tdm_store_create(dir, NULL), TDM_EMISMATCH);

	/* Nothing changed: it opens with its own options and its events. */
	ck_assert_int_eq(tdm_store_open(&s, dir, NULL), 0);
	tdm_options o;
	tdm_store_options(&o, s);
	ck_assert_int_eq(o.shard_duration_ns, SHARD_NS);
	ck_assert_int_eq(o.grace_ns, GRACE_NS);
	ck_assert_uint_eq(o.index_interval, INDEX_INTERVAL);
	ck_assert_uint_eq(count_all(s), 3);
	/* The same shard rules as before: T0 + 4 s - 1 ns is late behind T0 + 6 s. */
	tdm_event late = plain_event(T0 + 6 * SEC - GRACE_NS - 1, 4, "late");
	uint8_t outcome = 99;
	ck_assert_int_eq(tdm_append(&res, &outcome, s, &late, 1), 0);
	ck_assert_int_eq(outcome, TDM_STORED_LATE);
	ck_assert_int_eq(tdm_append(&res, &outcome, s, &evs[0], 1), 0);
	ck_assert_int_eq(outcome, TDM_DUPLICATE);
	ck_assert_int_eq(tdm_store_close(s), 0);

	tst_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_create_open_errors)
{
	char *dir = tst_tmpdir();
	size_t len = strlen(dir) + 32;
	char *path = malloc(len);
	tdm_store *s = NULL;

	snprintf(path, len, "%s/missing", dir);
	ck_assert_int_eq(tdm_store_open(&s, path, NULL), TDM_ENOTFOUND);
	ck_assert_int_eq(tdm_store_open(&s, dir, NULL), TDM_ENOTFOUND);

	tdm_options bad = test_opts;
	bad.grace_ns = -1;
	ck_assert_int_eq(tdm_store_create(dir, &bad), TDM_EINVAL);
	bad = test_opts;
	bad.shard_duration_ns = -SEC;
	ck_assert_int_eq(tdm_store_create(dir, &bad), TDM_EINVAL);

	snprintf(path, len, "%s/stray", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(tdm_store_create(dir, &test_opts), TDM_EEXIST);

	tst_rmtree(dir);
	free(path);
	free(dir);
}
END_TEST

/* A bad event in the middle of a batch: the batch is refused as a whole. */
static void expect_refused(tdm_store *s, const tdm_event *bad, const char *what)
{
	tdm_stat before, after;
	ck_assert_int_eq(tdm_stat_get(&before, s), 0);

	int rc = tdm_event_check(bad);
	ck_assert_msg(rc == TDM_EINVAL, "%s: tdm_event_check returned %d", what, rc);

	tdm_event events[3] = {
		plain_event(T0 + 5 * SEC, 10, "good before"), *bad,
		plain_event(T0 + 6 * SEC, 11, "good after"),
	};
	tdm_append_result res = {0, 0, 0};
	rc = tdm_append(&res, NULL, s, events, 3);
	ck_assert_msg(rc == TDM_EINVAL, "%s: tdm_append returned %d", what, rc);
	ck_assert_msg(strstr(tdm_error_message(), "1") != NULL,
	              "%s: the message does not name index 1: %s", what,
	              tdm_error_message());

	ck_assert_int_eq(tdm_stat_get(&after, s), 0);
	ck_assert_msg(after.events == before.events &&
	              after.last_seq == before.last_seq &&
	              after.shards == before.shards,
	              "%s: the store changed: %" PRIu64 " -> %" PRIu64 " events",
	              what, before.events, after.events);
	ck_assert_uint_eq(count_all(s), before.events);
}

START_TEST(test_bad_events_change_nothing)
{
	char *dir = tst_tmpdir();
	tdm_store *s;
	ck_assert_int_eq(tdm_store_create(dir, &test_opts), 0);
	ck_assert_int_eq(tdm_store_open(&s, dir, NULL), 0);
	tdm_event first[2] = {plain_event(T0, 1, "a"), plain_event(T0 + MS, 2, "b")};
	tdm_append_result res;
	ck_assert_int_eq(tdm_append(&res, NULL, s, first, 2), 0);
	ck_assert_uint_eq(res.appended, 2);

	tdm_event bad = plain_event(-1, 0, "negative");
	expect_refused(s, &bad, "ts -1");
	bad.ts = INT64_MIN;
	expect_refused(s, &bad, "ts INT64_MIN");

	tdm_label dup_keys[] = {{"host", "a"}, {"level", "x"}, {"host", "a"}};
	bad = plain_event(T0 + 2 * MS, 3, "dup keys");
	bad.labels = dup_keys;
	bad.n_labels = 3;
	expect_refused(s, &bad, "duplicate label key");

	tdm_label empty_key[] = {{"host", "a"}, {"", "x"}};
	bad.labels = empty_key;
	bad.n_labels = 2;
	expect_refused(s, &bad, "empty label key");

	tdm_label null_key[] = {{NULL, "x"}};
	bad.labels = null_key;
	bad.n_labels = 1;
	expect_refused(s, &bad, "NULL label key");

	tdm_label null_value[] = {{"host", NULL}};
	bad.labels = null_value;
	expect_refused(s, &bad, "NULL label value");

	tdm_label bad_utf8[] = {{"host", "web-\xff"}};
	bad.labels = bad_utf8;
	expect_refused(s, &bad, "invalid UTF-8 in a label value");

	bad.labels = NULL;
	bad.n_labels = 1;
	expect_refused(s, &bad, "NULL labels with n_labels 1");

	/* Label limits: one past each. */
	static char long_key[TDM_MAX_LABEL_KEY + 2];
	memset(long_key, 'k', TDM_MAX_LABEL_KEY + 1);
	tdm_label too_long_key[] = {{long_key, "x"}};
	bad.labels = too_long_key;
	bad.n_labels = 1;
	expect_refused(s, &bad, "label key too long");

	static char long_value[TDM_MAX_LABEL_VALUE + 2];
	memset(long_value, 'v', TDM_MAX_LABEL_VALUE + 1);
	tdm_label too_long_value[] = {{"host", long_value}};
	bad.labels = too_long_value;
	expect_refused(s, &bad, "label value too long");

	static char keys[TDM_MAX_LABELS + 1][8];
	static tdm_label many[TDM_MAX_LABELS + 1];
	for (size_t i = 0; i <= TDM_MAX_LABELS; i++) {
		snprintf(keys[i], sizeof keys[i], "k%zu", i);
		many[i] = (tdm_label){keys[i], "v"};
	}
	bad.labels = many;
	bad.n_labels = TDM_MAX_LABELS + 1;
	expect_refused(s, &bad, "too many labels");

	/* 20 values of 4000 bytes: past TDM_MAX_LABELS_BYTES in any encoding. */
	static char big_value[4001];
	memset(big_value, 'w', 4000);
	for (size_t i = 0; i < 20; i++)
		many[i].value = big_value;
	bad.n_labels = 20;
	expect_refused(s, &bad, "labels too big");

	bad.labels = NULL;
	bad.n_labels = 0;
	bad.payload = NULL;
	bad.payload_len = 5;
	expect_refused(s, &bad, "NULL payload of 5 bytes");

	unsigned char *huge = calloc(1, TDM_MAX_PAYLOAD + 1);
	ck_assert_ptr_nonnull(huge);
	bad.payload = huge;
	bad.payload_len = (size_t)TDM_MAX_PAYLOAD + 1;
	expect_refused(s, &bad, "payload past TDM_MAX_PAYLOAD");

	/* The limits themselves are fine, and the good events of the refused
	 * batches were never stored: they append now as new. */
	tdm_event edge[4] = {
		plain_event(T0 + 5 * SEC, 10, "good before"),
		plain_event(T0 + 6 * SEC, 11, "good after"),
		plain_event(T0 + 7 * SEC, 12, ""),
		plain_event(T0 + 8 * SEC, 13, "labels at their limits"),
	};
	edge[2].payload = huge;
	edge[2].payload_len = TDM_MAX_PAYLOAD;
	long_key[TDM_MAX_LABEL_KEY] = '\0';
	long_value[TDM_MAX_LABEL_VALUE] = '\0';
	tdm_label at_limit[] = {{long_key, long_value}};
	edge[3].labels = at_limit;
	edge[3].n_labels = 1;
	ck_assert_int_eq(tdm_append(&res, NULL, s, edge, 4), 0);
	ck_assert_uint_eq(res.appended, 4);
	ck_assert_uint_eq(res.duplicates, 0);
	ck_assert_uint_eq(count_all(s), 6);

	tdm_iter *it;
	const tdm_event *ev;
	ck_assert_int_eq(tdm_iter_open(&it, s, T0 + 7 * SEC, T0 + 8 * SEC, NULL), 0);
	ck_assert_int_eq(tdm_iter_next(&ev, it), 0);
	ck_assert_int_eq(tst_event_cmp(ev, &edge[2]), 0);
	ck_assert_int_eq(tdm_iter_next(&ev, it), TDM_ITEROVER);
	tdm_iter_close(it);

	ck_assert_int_eq(tdm_store_close(s), 0);
	free(huge);
	tst_rmtree(dir);
	free(dir);
}
END_TEST

static Suite *model_suite(void)
{
	Suite *s = suite_create("model");
	TCase *tc = tcase_create("random");
	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc, test_model_random, 0, (int)N_SEEDS);
	suite_add_tcase(s, tc);

	tc = tcase_create("fixed");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_reopen_other_options);
	tcase_add_test(tc, test_create_open_errors);
	tcase_add_test(tc, test_bad_events_change_nothing);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(model_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
