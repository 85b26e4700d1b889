/*
 * test_labels.c - issue 6: the label bitmap index (src/labels.c) and the
 * reads and counts it serves.
 *
 *  - model: random labels (short and long values), out-of-order, late and
 *    duplicate events over several shards and 64 KiB chunks, appended in
 *    random batches across reopens; random selectors (AND, OR, value
 *    prefix, presence, no match, empty groups) over random ranges must give
 *    exactly the unfiltered read filtered here, in the same order (and in
 *    storage order); label counts must agree with counting the read;
 *    verify must be clean;
 *  - bytes: a selector matching 0.1% of 1M events reads well under 5% of
 *    the shard bytes through the I/O layer;
 *  - damage: a bitmap in LMDB with a flipped byte, a valid checksum over
 *    bytes that are no roaring bitmap, or positions out of range is
 *    reported by verify, and reads and counts stay exact (the shard is
 *    scanned); a writer that meets it rebuilds the shard's bitmaps; an
 *    index from before the bitmaps is rebuilt by the next writer.
 */
#include "support.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bytes.h"
#include "hash.h"
#include "index.h"
#include "io.h"
#include "kv.h"
#include "labels.h"
#include "reader.h"
#include "store.h"

#define MS 1000000ll
#define SEC 1000000000ll
#define T0 1700000000000000000ll

/* ---- the test's own selector semantics ------------------------------- */

static const char *label_of(const tdm_event *e, const char *key)
{
	for (size_t i = 0; i < e->n_labels; i++)
		if (strcmp(e->labels[i].key, key) == 0)
			return e->labels[i].value;
	return NULL;
}

static int match_ok(const tdm_match *m, const tdm_event *e)
{
	const char *v = label_of(e, m->key);
	if (!v)
		return 0;
	size_t n = strlen(m->value);
	if (n && m->value[n - 1] == '*')
		return strncmp(v, m->value, n - 1) == 0;
	return strcmp(v, m->value) == 0;
}

static int selected(const tdm_selector *w, size_t n_where, const tdm_event *e)
{
	if (!n_where)
		return 1;
	for (size_t g = 0; g < n_where; g++) {
		size_t i = 0;
		while (i < w[g].n_matches && match_ok(&w[g].matches[i], e))
			i++;
		if (i == w[g].n_matches)
			return 1;
	}
	return 0;
}

static void expect_same(const tst_evlist *got, const tst_evlist *want,
                        const char *what)
{
	char a[256], b[256];
	size_t n = got->n < want->n ? got->n : want->n;
	for (size_t i = 0; i < n; i++)
		if (tst_event_cmp(got->a[i], want->a[i]) != 0)
			ck_abort_msg("%s: #%zu: got %s want %s", what, i,
			             tst_event_str(a, sizeof a, got->a[i]),
			             tst_event_str(b, sizeof b, want->a[i]));
	ck_assert_msg(got->n == want->n, "%s: %zu events, want %zu", what, got->n,
	              want->n);
}

/* Reads with a selector and compares with `all` (the same range read
 * unfiltered, same flags) filtered here. */
static void check_selector(tdm_store *s, int64_t from, int64_t to, unsigned flags,
                           const tst_evlist *all, const tdm_selector *w,
                           size_t n_where, const char *what)
{
	tdm_read_options ro = TDM_READ_OPTIONS_INIT;
	ro.flags = flags;
	ro.where = w;
	ro.n_where = n_where;
	tst_evlist got = {0}, want = {0};
	tst_read_into(&got, s, from, to, &ro);
	for (size_t i = 0; i < all->n; i++)
		if (selected(w, n_where, all->a[i]))
			tst_evlist_add(&want, all->a[i]);
	expect_same(&got, &want, what);
	tst_evlist_free(&got);
	tst_evlist_free(&want);
}

/* How often a whole read with the selector fell back to scanning. */
static uint64_t fallbacks_of(tdm_store *s, const tdm_selector *w, size_t n_where)
{
	tdm_read_options ro = TDM_READ_OPTIONS_INIT;
	ro.where = w;
	ro.n_where = n_where;
	tdm_iter *it;
	const tdm_event *ev;
	ck_assert_int_eq(tdm_iter_open(&it, s, 0, INT64_MAX, &ro), 0);
	while (tdm_iter_next(&ev, it) == 0)
		;
	uint64_t n = reader_fallbacks(it);
	tdm_iter_close(it);
	return n;
}

/* Label counts of [from, to) against counting the events of `all`. */
static void check_counts(tdm_store *s, int64_t from, int64_t to,
                         const tst_evlist *all)
{
	tdm_label_count *c;
	size_t n;
	ck_assert_int_eq(tdm_label_counts(&c, &n, s, from, to), 0);
	uint64_t total = 0, want_total = 0;
	for (size_t i = 0; i < n; i++) {
		if (i)
			ck_assert_msg(strcmp(c[i - 1].key, c[i].key) < 0 ||
			              (strcmp(c[i - 1].key, c[i].key) == 0 &&
			               strcmp(c[i - 1].value, c[i].value) < 0),
			              "counts out of order at %zu", i);
		uint64_t want = 0;
		for (size_t k = 0; k < all->n; k++) {
			const char *v = label_of(all->a[k], c[i].key);
			want += v && strcmp(v, c[i].value) == 0;
		}
		ck_assert_msg(c[i].events == want, "%.40s=%.40s: %" PRIu64 " events, want %"
		              PRIu64, c[i].key, c[i].value, c[i].events, want);
		total += c[i].events;
	}
	for (size_t k = 0; k < all->n; k++)
		want_total += all->a[k]->n_labels;
	ck_assert_msg(total == want_total, "counts sum to %" PRIu64 ", want %" PRIu64,
	              total, want_total);
	tdm_label_counts_free(c, n);
}

/* ---- the model test -------------------------------------------------- */

static const char *const KEYS[] = {"host", "level", "service", "type", "scope", "note"};
static const char *const HOSTS[] = {"web-1", "web-2", "web-10", "web-11", "db-1"};
static const char *const LEVELS[] = {"debug", "info", "warn", "error"};
static const char *const SERVICES[] = {"api", "db", "cache"};
static const char *const TYPES[] = {"created", "updated", "deleted"};
static const char *const SCOPES[] = {"org:acme/a", "org:acme/b", "org:acme", "org:beta/x", ""};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static char long_a[600], long_b[600];

static const char *value_for(tst_rng *r, size_t key)
{
	switch (key) {
	case 0: return HOSTS[tst_rng_range(r, N_OF(HOSTS))];
	case 1: return LEVELS[tst_rng_range(r, N_OF(LEVELS))];
	case 2: return SERVICES[tst_rng_range(r, N_OF(SERVICES))];
	case 3: return TYPES[tst_rng_range(r, N_OF(TYPES))];
	case 4: return SCOPES[tst_rng_range(r, N_OF(SCOPES))];
	default: /* long values take the long-key path of labels.c */
		return tst_rng_chance(r, 50) ? long_a : long_b;
	}
}

static void make_event(tst_rng *r, tdm_event *e, tdm_label *labels, char *payload,
                       int64_t ts, uint32_t id)
{
	size_t n = 0;
	for (size_t k = 0; k < N_OF(KEYS); k++)
		if (tst_rng_chance(r, k == 5 ? 5 : 60))
			labels[n++] = (tdm_label){KEYS[k], value_for(r, k)};
	size_t plen = 1 + tst_rng_range(r, 120);
	for (size_t i = 0; i < plen; i++)
		payload[i] = (char)('a' + tst_rng_range(r, 26));
	*e = (tdm_event){.ts = ts, .id = id, .labels = labels, .n_labels = n,
	                 .payload = payload, .payload_len = plen};
}

/* A random condition: an existing value, a prefix, presence, a value no
 * event has, an empty value, or a long value. */
static void random_match(tst_rng *r, tdm_match *m, char *buf, size_t cap)
{
	size_t key = tst_rng_range(r, N_OF(KEYS));
	m->key = tst_rng_chance(r, 5) ? "absent" : KEYS[key];
	switch (tst_rng_range(r, 6)) {
	case 0:
		m->value = "*";
		break;
	case 1: { /* a prefix of a real value */
		const char *v = value_for(r, key);
		size_t n = tst_rng_range(r, strlen(v) + 1);
		if (n > cap - 2)
			n = cap - 2;
		memcpy(buf, v, n);
		buf[n] = '*';
		buf[n + 1] = '\0';
		m->value = buf;
		break;
	}
	case 2:
		m->value = tst_rng_chance(r, 50) ? "nope" : "";
		break;
	default:
		m->value = value_for(r, key);
		break;
	}
}

static void model_run(uint64_t seed, uint32_t interval, size_t n_events)
{
	tst_rng r;
	tst_rng_seed(&r, seed);
	memset(long_a, 'L', sizeof long_a - 1);
	memset(long_b, 'L', sizeof long_b - 1);
	long_b[sizeof long_b - 2] = 'M'; /* same first 200 bytes as long_a */

	char *dir = tst_store_new(20 * SEC, 2 * SEC, interval);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tdm_event *batch = tst_malloc(500 * sizeof *batch);
	tdm_label (*labels)[8] = tst_malloc(500 * sizeof *labels);
	char (*payloads)[128] = tst_malloc(500 * sizeof *payloads);
	tst_evlist sent = {0};
	size_t done = 0;
	while (done < n_events) {
		size_t n = 1 + tst_rng_range(&r, 500);
		if (n > n_events - done)
			n = n_events - done;
		for (size_t i = 0; i < n; i++) {
			size_t k = done + i;
			int64_t ts = T0 + (int64_t)k * 10 * MS;
			if (tst_rng_chance(&r, 15))
				ts -= (int64_t)tst_rng_range(&r, 1500) * MS; /* within grace */
			else if (tst_rng_chance(&r, 3))
				ts -= 3 * SEC + (int64_t)tst_rng_range(&r, 5000) * MS; /* late */
			if (sent.n && tst_rng_chance(&r, 2)) { /* a duplicate */
				batch[i] = *sent.a[tst_rng_range(&r, sent.n)];
				continue;
			}
			make_event(&r, &batch[i], labels[i], payloads[i], ts,
			           (uint32_t)tst_rng_next(&r));
			tst_evlist_add(&sent, &batch[i]);
		}
		tdm_append_result res;
		ck_assert_msg(tdm_append(&res, NULL, s, batch, n) == 0, "append: %s",
		              tdm_error_message());
		done += n;
		if (tst_rng_chance(&r, 5)) { /* bitmaps reloaded by a new writer */
			tdm_store_close(s);
			s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
		}
	}
	tst_verify_clean(s);

	int64_t end = T0 + (int64_t)n_events * 10 * MS;
	for (int q = 0; q < 60; q++) {
		int64_t from = T0 - 10 * SEC, to = end + SEC;
		if (q % 3) {
			from = T0 - 10 * SEC + (int64_t)tst_rng_range(&r, (uint64_t)(end - T0));
			to = from + (int64_t)tst_rng_range(&r, 40 * SEC);
		}
		unsigned flags = q % 5 == 4 ? TDM_READ_STORAGE_ORDER : 0;
		tdm_read_options ro = TDM_READ_OPTIONS_INIT;
		ro.flags = flags;
		if (q % 7 == 3)
			flags |= TDM_READ_SCAN; /* the scanning path agrees too */
		tst_evlist all = {0};
		tst_read_into(&all, s, from, to, &ro);
		if (q % 6 == 0)
			check_counts(s, from, to, &all);
		for (int t = 0; t < 6; t++) {
			tdm_match m[3][3];
			char bufs[3][3][32];
			tdm_selector w[3];
			size_t n_where = 1 + tst_rng_range(&r, 3);
			for (size_t g = 0; g < n_where; g++) {
				w[g].matches = m[g];
				w[g].n_matches = 1 + tst_rng_range(&r, 3);
				if (tst_rng_chance(&r, 3))
					w[g].n_matches = 0; /* matches every event */
				for (size_t i = 0; i < w[g].n_matches; i++)
					random_match(&r, &m[g][i], bufs[g][i], sizeof bufs[g][i]);
			}
			char what[128];
			snprintf(what, sizeof what, "seed %" PRIu64 " query %d.%d", seed, q, t);
			check_selector(s, from, to, flags, &all, w, n_where, what);
		}
		tst_evlist_free(&all);
	}
	tdm_store_close(s);
	/* The same answers from bitmaps rebuilt from the files. */
	char idx[4200];
	snprintf(idx, sizeof idx, "%s/index", dir);
	tst_rmtree(idx);
	s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_NONE);
	tst_verify_clean(s);
	tst_evlist all = tst_read_all(s, 0, INT64_MAX);
	const tdm_match m_or[] = {{"level", "error"}}, m_and[] = {{"scope", "org:acme/*"}, {"type", "created"}};
	const tdm_selector w[] = {{m_or, 1}, {m_and, 2}};
	check_selector(s, 0, INT64_MAX, 0, &all, w, 2, "after rebuild");
	check_counts(s, 0, INT64_MAX, &all);
	tst_evlist_free(&all);
	tdm_store_close(s);

	tst_evlist_free(&sent);
	free(batch);
	free(labels);
	free(payloads);
	tst_tmpdir_drop(dir);
}

START_TEST(test_model)
{
	static const uint32_t intervals[] = {256, 4096, 1000};
	/* The bitmaps answer every selector, however dense (a reader would
	 * scan for dense ones); the last run keeps the switch to scanning. */
	reader_scan_density = _i == 3 ? 2048 : 0;
	model_run(100 + (uint64_t)_i, intervals[_i % 3], _i == 0 ? 12000 : 4000);
}
END_TEST

/* ---- bytes read ---------------------------------------------------------- */

static uint64_t shard_bytes(const char *dir)
{
	tdm_store *s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_NONE);
	tdm_stat st;
	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	tdm_store_close(s);
	/* main and recon files only */
	uint64_t total = 0;
	for (int64_t sh = st.min_ts / 3600000000000ll; sh <= st.max_ts / 3600000000000ll; sh++) {
		char p[4300];
		snprintf(p, sizeof p, "%s/shards/%020" PRId64 ".main", dir, sh);
		total += (uint64_t)tst_file_size(p);
	}
	return total;
}

START_TEST(test_bytes_read)
{
	const size_t n = 1000000;
	char *dir = tst_store_new(0, 0, 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tdm_event *batch = tst_malloc(1000 * sizeof *batch);
	tdm_label (*labels)[3] = tst_malloc(1000 * sizeof *labels);
	char (*hosts)[16] = tst_malloc(1000 * sizeof *hosts);
	static const char *const levels[] = {"info", "info", "warn", "error"};
	static const char *const services[] = {"api", "db", "cache", "auth", "web"};
	char payload[100];
	memset(payload, 'p', sizeof payload);
	for (size_t b = 0; b < n; b += 1000) {
		for (size_t i = 0; i < 1000; i++) {
			uint64_t k = b + i;
			snprintf(hosts[i], sizeof hosts[i], "web-%03u", (unsigned)(k * 7919 % 1000));
			labels[i][0] = (tdm_label){"host", hosts[i]};
			labels[i][1] = (tdm_label){"level", levels[k % 4]};
			labels[i][2] = (tdm_label){"service", services[k % 5]};
			batch[i] = (tdm_event){.ts = T0 + (int64_t)k * MS, .id = (uint32_t)k,
			                       .labels = labels[i], .n_labels = 3,
			                       .payload = payload, .payload_len = sizeof payload};
		}
		tdm_append_result res;
		ck_assert_int_eq(tdm_append(&res, NULL, s, batch, 1000), 0);
	}
	tdm_store_close(s);
	uint64_t file_bytes = shard_bytes(dir);

	s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_NONE);
	const tdm_match m[] = {{"host", "web-007"}};
	const tdm_selector w[] = {{m, 1}};
	tdm_read_options ro = TDM_READ_OPTIONS_INIT;
	ro.where = w;
	ro.n_where = 1;
	tdm_io_counters before = tdm_io_stats;
	tdm_iter *it;
	ck_assert_int_eq(tdm_iter_open(&it, s, 0, INT64_MAX, &ro), 0);
	const tdm_event *ev;
	size_t got = 0;
	int64_t last = -1;
	int r;
	while ((r = tdm_iter_next(&ev, it)) == 0) {
		ck_assert_str_eq(label_of(ev, "host"), "web-007");
		ck_assert(ev->ts > last);
		ck_assert_uint_eq((uint64_t)(ev->ts - T0) / (uint64_t)MS * 7919 % 1000, 7);
		last = ev->ts;
		got++;
	}
	ck_assert_int_eq(r, TDM_ITEROVER);
	ck_assert_uint_eq(reader_fallbacks(it), 0);
	tdm_iter_close(it);
	uint64_t read = tdm_io_stats.bytes_read - before.bytes_read;
	ck_assert_uint_eq(got, n / 1000);
	fprintf(stderr, "bytes: selector matching %zu of %zu events read %" PRIu64
	        " of %" PRIu64 " shard bytes (%.3f%%)\n", got, n, read, file_bytes,
	        100.0 * (double)read / (double)file_bytes);
	ck_assert_msg(read * 100 < file_bytes, "read %" PRIu64 " of %" PRIu64 " bytes",
	              read, file_bytes);
	tdm_store_close(s);
	free(batch);
	free(labels);
	free(hosts);
	tst_tmpdir_drop(dir);
}
END_TEST

/* ---- damage ---------------------------------------------------------------- */

enum { FLIP, GARBAGE, OUT_OF_RANGE, N_DAMAGE };

/* Damages the bitmap `which` (from the end when negative) of KV_LABELS in
 * place, as `how` says; `key` gets its label key. */
static void damage_bitmap(char *label_key, size_t cap, tdm_store *s, long which,
                          int how)
{
	kv_txn *txn;
	ck_assert_int_eq(kv_begin(&txn, s->kv, 1), 0);
	kv_cursor *c;
	ck_assert_int_eq(kv_cursor_open(&c, txn, KV_LABELS), 0);
	kv_val k, v;
	long n = 0;
	for (int r = kv_cursor_get(c, &k, &v, KV_FIRST); r == 0; r = kv_cursor_get(c, &k, &v, KV_NEXT))
		n++;
	long at = which < 0 ? n + which : which;
	ck_assert(at >= 0 && at < n);
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_FIRST), 0);
	for (long i = 0; i < at; i++)
		ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_NEXT), 0);
	uint8_t key[600], val[8192];
	ck_assert(k.len <= sizeof key && v.len <= sizeof val);
	memcpy(key, k.data, k.len);
	memcpy(val, v.data, v.len);
	size_t klen = k.len, vlen = v.len;
	kv_cursor_close(c);
	int long_pair = key[klen - 9] == 0xff;
	size_t body = long_pair ? 8 + 2 + get_le(val + 8, 2) : 8;
	if (how == FLIP) {
		val[vlen - 1] ^= 0x10;
	} else if (how == GARBAGE) {
		memset(val + body, 0x5a, vlen - body); /* no roaring cookie */
	} else {
		/* a sound roaring bitmap, but with a position past the file */
		/* portable format, one array container of key 32 (positions from
		 * 2 MiB, past a 1 MiB chunk): cookie 12346, one container, key 32
		 * card-1 0, offset 16, value 4464 */
		uint8_t rb[] = {0x3a, 0x30, 0, 0, 1, 0, 0, 0, 32, 0, 0, 0, 16, 0, 0, 0, 0x70, 0x11};
		memcpy(val + body, rb, sizeof rb);
		vlen = body + sizeof rb;
	}
	if (how != FLIP) /* a valid checksum: decode must catch the rest */
		put_le(val, tdm_hash64(val + 8, vlen - 8, tdm_hash64(key, klen, 0)), 8);
	ck_assert_int_eq(kv_put(txn, KV_LABELS, key, klen, val, vlen), 0);
	ck_assert_int_eq(kv_commit(txn), 0);
	size_t kl = strnlen((const char *)key + 17, cap - 1);
	memcpy(label_key, key + 17, kl);
	label_key[kl] = '\0';
}

static uint64_t problems_seen;
static int label_problem_seen;

static void note_problem(void *ctx, const tdm_problem *p)
{
	(void)ctx;
	problems_seen++;
	if (strstr(p->what, "label bitmap"))
		label_problem_seen = 1;
}

/* Fills a store with 3 shards of labelled events (several chunks each, late
 * events too). */
static void fill(tdm_store *s, tst_evlist *all, size_t n)
{
	tst_rng r;
	tst_rng_seed(&r, 77);
	memset(long_a, 'L', sizeof long_a - 1);
	memset(long_b, 'L', sizeof long_b - 1);
	tdm_event batch[250];
	tdm_label labels[250][8];
	char payloads[250][128];
	for (size_t done = 0; done < n; done += 250) {
		for (size_t i = 0; i < 250; i++) {
			int64_t ts = T0 + (int64_t)(done + i) * 10 * MS;
			if (tst_rng_chance(&r, 3))
				ts -= 4 * SEC;
			make_event(&r, &batch[i], labels[i], payloads[i], ts, (uint32_t)(done + i));
			tst_evlist_add(all, &batch[i]);
		}
		tdm_append_result res;
		ck_assert_int_eq(tdm_append(&res, NULL, s, batch, 250), 0);
	}
}

START_TEST(test_damaged_bitmap)
{
	reader_scan_density = 0;
	int how = _i % N_DAMAGE;
	long which = _i < N_DAMAGE ? 3 : -1; /* an early chunk, or the last one */
	char *dir = tst_store_new(20 * SEC, 2 * SEC, 1024);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tst_evlist sent = {0};
	fill(s, &sent, 6000);
	tdm_store_close(s);

	s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_NONE);
	tst_evlist all = tst_read_all(s, 0, INT64_MAX);
	char key[300];
	damage_bitmap(key, sizeof key, s, which, how);

	/* verify names it */
	uint64_t problems;
	problems_seen = 0;
	label_problem_seen = 0;
	ck_assert_int_eq(tdm_verify(&problems, s, note_problem, NULL), 0);
	ck_assert_uint_ge(problems, 1);
	ck_assert(label_problem_seen);

	/* reads stay exact: every selector, the range whole and cut */
	const tdm_match m1[] = {{key, "*"}}, m2[] = {{"host", "web-1*"}, {"service", "api"}},
	                m3[] = {{"note", "*"}}, m4[] = {{"type", "deleted"}};
	const tdm_selector sels[][2] = {{{m1, 1}}, {{m2, 2}}, {{m3, 1}}, {{m4, 1}, {m2, 2}}};
	const size_t n_sels[] = {1, 1, 1, 2};
	uint64_t fallbacks = 0;
	for (size_t i = 0; i < 4; i++) {
		check_selector(s, 0, INT64_MAX, 0, &all, sels[i], n_sels[i], "damaged");
		fallbacks += fallbacks_of(s, sels[i], n_sels[i]);
	}
	ck_assert_uint_ge(fallbacks, 1); /* the damage was met, and stepped around */
	check_counts(s, 0, INT64_MAX, &all);
	tdm_store_close(s);

	/* A writer that extends the damaged chunk rebuilds the shard's bitmaps;
	 * deleting the index rebuilds all of them. */
	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	const tst_evlist *last = &sent;
	tdm_event again = *last->a[last->n - 1];
	again.id ^= 0x5555;
	tdm_append_result res;
	ck_assert_int_eq(tdm_append(&res, NULL, s, &again, 1), 0);
	tst_evlist_add(&sent, &again);
	if (which < 0)
		tst_verify_clean(s);
	tdm_store_close(s);
	char idx[4200];
	snprintf(idx, sizeof idx, "%s/index", dir);
	tst_rmtree(idx);
	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tst_verify_clean(s);
	tst_evlist after = tst_read_all(s, 0, INT64_MAX);
	check_selector(s, 0, INT64_MAX, 0, &after, sels[1], 1, "rebuilt");
	tst_evlist_free(&after);
	tdm_store_close(s);

	tst_evlist_free(&all);
	tst_evlist_free(&sent);
	tst_tmpdir_drop(dir);
}
END_TEST

/* ---- the newest chunk ------------------------------------------------------ */

typedef struct tails {
	size_t shards, main, recon;
} tails;

static int count_tails(void *ctx, const shard_meta *m)
{
	tails *t = ctx;
	t->shards++;
	t->main += m->labels_main_end < m->main_len;
	t->recon += m->labels_recon_end < m->recon_len;
	return 0;
}

/* Shards whose newest chunk has records no stored bitmap holds yet. */
static tails tails_of(tdm_store *s)
{
	kv_txn *txn;
	tails t = {0, 0, 0};
	ck_assert_int_eq(kv_begin(&txn, s->kv, 0), 0);
	ck_assert_int_eq(index_meta_each(txn, 0, INT64_MAX, count_tails, &t), 0);
	kv_abort(txn);
	return t;
}

static void check_all_selectors(tdm_store *s, const tst_evlist *all, const char *what,
                                int want_no_fallback)
{
	const tdm_match m1[] = {{"level", "error"}}, m2[] = {{"host", "web-1*"}, {"service", "api"}},
	                m3[] = {{"note", "*"}}, m4[] = {{"type", "deleted"}};
	const tdm_selector sels[][2] = {{{m1, 1}}, {{m2, 2}}, {{m3, 1}}, {{m4, 1}, {m2, 2}}};
	const size_t n_sels[] = {1, 1, 1, 2};
	for (size_t i = 0; i < 4; i++) {
		/* cut ranges too: the scan of the newest chunk starts mid-run */
		for (int64_t from = -5 * SEC; from < 60 * SEC; from += 7 * SEC) {
			tdm_read_options ro = TDM_READ_OPTIONS_INIT;
			tst_evlist part = {0};
			tst_read_into(&part, s, T0 + from, T0 + from + 13 * SEC, &ro);
			check_selector(s, T0 + from, T0 + from + 13 * SEC, 0, &part, sels[i],
			               n_sels[i], what);
			tst_evlist_free(&part);
			ro.flags = TDM_READ_STORAGE_ORDER;
			tst_read_into(&part, s, T0 + from, T0 + from + 13 * SEC, &ro);
			check_selector(s, T0 + from, T0 + from + 13 * SEC, TDM_READ_STORAGE_ORDER,
			               &part, sels[i], n_sels[i], what);
			tst_evlist_free(&part);
		}
		check_selector(s, 0, INT64_MAX, 0, all, sels[i], n_sels[i], what);
		if (want_no_fallback)
			ck_assert_uint_eq(fallbacks_of(s, sels[i], n_sels[i]), 0);
	}
	check_counts(s, 0, INT64_MAX, all);
}

/* A writer keeps the newest chunk's bitmaps in memory (labels.c, L3). A
 * writer that stops without closing leaves them unput: reads and counts
 * scan those records, verify finds nothing wrong, and the next writer of
 * the shard puts them. */
START_TEST(test_newest_chunk)
{
	reader_scan_density = 0;
	char *dir = tst_store_new(20 * SEC, 2 * SEC, 1024);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) { /* every batch committed and synced, then killed */
		tdm_store *s = NULL;
		tst_evlist sent = {0};
		if (tdm_store_open(&s, dir, &(tdm_open_options){TDM_OPEN_OPTIONS_VERSION, 0,
		                                              TDM_DURABILITY_BATCH, 0, 0}))
			_exit(2);
		fill(s, &sent, 6000);
		_exit(0);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	tdm_store *s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_NONE);
	tails t = tails_of(s);
	ck_assert_uint_ge(t.shards, 3);
	ck_assert_uint_ge(t.main, 1); /* else this test tests nothing */
	ck_assert_uint_ge(t.recon, 1);
	tst_verify_clean(s);
	tst_evlist all = tst_read_all(s, 0, INT64_MAX);
	ck_assert_uint_eq(all.n, 6000);
	check_all_selectors(s, &all, "newest chunks unput", 1);
	tdm_store_close(s);

	/* The next writer of each shard adds those records back, and puts them
	 * at its close. */
	s = tst_store_open(dir, 0, TDM_DURABILITY_BATCH);
	size_t added = 0;
	for (size_t i = 0; i < all.n; i++) {
		if (i && all.a[i]->ts / (20 * SEC) == all.a[i - 1]->ts / (20 * SEC))
			continue;
		tdm_event again = *all.a[i];
		again.id ^= 0x5555;
		tdm_append_result res;
		ck_assert_int_eq(tdm_append(&res, NULL, s, &again, 1), 0);
		ck_assert_uint_eq(res.appended, 1);
		added++;
	}
	ck_assert_uint_eq(added, t.shards);
	tdm_store_close(s);
	s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_NONE);
	t = tails_of(s);
	ck_assert_uint_eq(t.main + t.recon, 0);
	tst_verify_clean(s);
	tst_evlist after = tst_read_all(s, 0, INT64_MAX);
	ck_assert_uint_eq(after.n, 6000 + added);
	check_all_selectors(s, &after, "newest chunks put", 1);
	tdm_store_close(s);
	tst_evlist_free(&after);
	tst_evlist_free(&all);
	tst_tmpdir_drop(dir);
}
END_TEST

/* A writer touching more shards than it keeps (writer.c, MAX_HOT_SHARDS)
 * puts an evicted shard's newest chunk before it lets the shard go: after
 * the close every labels end is at its file's length. */
START_TEST(test_evicted_shards)
{
	reader_scan_density = 0;
	char *dir = tst_store_new(SEC, SEC / 2, 1024);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_BATCH);
	tst_rng r;
	tst_rng_seed(&r, 91);
	tdm_event *batch = tst_malloc(100 * sizeof *batch);
	tdm_label (*labels)[8] = tst_malloc(100 * sizeof *labels);
	char (*payloads)[128] = tst_malloc(100 * sizeof *payloads);
	for (size_t b = 0; b < 100; b++) { /* 100 shards of 1 s, 100 events each */
		for (size_t i = 0; i < 100; i++)
			make_event(&r, &batch[i], labels[i], payloads[i],
			           T0 + (int64_t)(b * 100 + i) * 10 * MS, (uint32_t)(b * 100 + i));
		tdm_append_result res;
		ck_assert_int_eq(tdm_append(&res, NULL, s, batch, 100), 0);
	}
	tails t = tails_of(s);
	ck_assert_uint_eq(t.shards, 100);
	/* the shards still held keep theirs, the evicted ones were put */
	ck_assert_uint_ge(t.main, 1);
	ck_assert_uint_le(t.main, 64);
	tst_verify_clean(s);
	tst_evlist all = tst_read_all(s, 0, INT64_MAX);
	ck_assert_uint_eq(all.n, 10000);
	check_all_selectors(s, &all, "writer open, shards evicted", 1);
	tdm_store_close(s);
	s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_NONE);
	t = tails_of(s);
	ck_assert_uint_eq(t.main + t.recon, 0);
	tst_verify_clean(s);
	check_all_selectors(s, &all, "closed", 1);
	tdm_store_close(s);
	tst_evlist_free(&all);
	free(batch);
	free(labels);
	free(payloads);
	tst_tmpdir_drop(dir);
}
END_TEST

/* An index made before the bitmaps (no "labels" mark): reads with
 * selectors scan, and the next writer rebuilds the index with them. */
START_TEST(test_index_without_bitmaps)
{
	char *dir = tst_store_new(20 * SEC, 2 * SEC, 1024);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tst_evlist sent = {0};
	fill(s, &sent, 2000);
	kv_txn *txn;
	ck_assert_int_eq(kv_begin(&txn, s->kv, 1), 0);
	ck_assert_int_eq(kv_clear(txn, KV_LABELS), 0);
	ck_assert_int_eq(kv_del_prefix(txn, KV_META, META_LABELS, strlen(META_LABELS)), 0);
	ck_assert_int_eq(kv_commit(txn), 0);
	tst_evlist all = tst_read_all(s, 0, INT64_MAX);
	const tdm_match m[] = {{"level", "error"}};
	const tdm_selector w[] = {{m, 1}};
	check_selector(s, 0, INT64_MAX, 0, &all, w, 1, "no bitmaps");
	check_counts(s, 0, INT64_MAX, &all);
	tdm_store_close(s);

	s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tst_verify_clean(s);
	ck_assert_int_eq(kv_begin(&txn, s->kv, 0), 0);
	kv_val v;
	ck_assert_int_eq(kv_get(&v, txn, KV_META, META_LABELS, strlen(META_LABELS)), 0);
	kv_abort(txn);
	check_selector(s, 0, INT64_MAX, 0, &all, w, 1, "rebuilt");
	tdm_store_close(s);
	tst_evlist_free(&all);
	tst_evlist_free(&sent);
	tst_tmpdir_drop(dir);
}
END_TEST

/* ---- keys of every pair length in every chunk ---------------------------- */

typedef struct pair_seen {
	size_t rows;
	uint64_t events;
} pair_seen;

static int count_pair(void *ctx, const uint8_t *pair, size_t len, uint64_t n)
{
	(void)pair;
	(void)len;
	pair_seen *ps = ctx;
	ps->rows++;
	ps->events += n;
	return 0;
}

/* A bitmap's key is shard | file | chunk | pair. Chunk numbers hold 0xff
 * bytes (chunk 255 starts at 255 MiB), pairs of every length must still
 * decode: the proc soak once found a short pair in chunk 255 read back as
 * a malformed long one. */
START_TEST(test_keys_in_high_chunks)
{
	char *dir = tst_store_new(3600 * SEC, 60 * SEC, 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	static const uint64_t chunks[] = {0, 1, 254, 255, 256, 511, 65535, 65791};
	const size_t n_chunks = sizeof chunks / sizeof *chunks;
	kv_txn *txn;
	ck_assert_int_eq(kv_begin(&txn, s->kv, 1), 0);
	lbl_acc *acc;
	ck_assert_int_eq(lbl_acc_new(&acc, 0), 0);
	size_t pairs = 0;
	for (size_t c = 0; c < n_chunks; c++)
		for (size_t vlen = 0; vlen <= 20; vlen++) {
			/* "k\0" + value + "\0": pair lengths 3 to 23 */
			uint8_t lab[32];
			lab[0] = 'k';
			lab[1] = 0;
			memset(lab + 2, 'v', vlen);
			lab[2 + vlen] = 0;
			uint64_t off = (chunks[c] << 20) + SHARD_HEADER + 64 * vlen;
			ck_assert_int_eq(lbl_acc_add(acc, SHARD_MAIN, off, lab, (uint32_t)(vlen + 3)),
			                 0);
			pairs++;
		}
	ck_assert_int_eq(lbl_acc_flush(acc, txn, 0, 0, 0, NULL), 0);
	lbl_acc_free(acc);
	pair_seen ps = {0, 0};
	int r = lbl_count(txn, 0, count_pair, &ps);
	ck_assert_msg(r == 0, "lbl_count: %d %s", r, tdm_error_message());
	ck_assert_uint_eq(ps.rows, pairs);
	ck_assert_uint_eq(ps.events, pairs);
	kv_abort(txn);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

static Suite *labels_suite(void)
{
	Suite *su = suite_create("labels");
	TCase *tc = tcase_create("model");
	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc, test_model, 0, 4);
	suite_add_tcase(su, tc);
	tc = tcase_create("damage");
	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc, test_damaged_bitmap, 0, 2 * N_DAMAGE);
	tcase_add_test(tc, test_index_without_bitmaps);
	tcase_add_test(tc, test_newest_chunk);
	tcase_add_test(tc, test_evicted_shards);
	tcase_add_test(tc, test_keys_in_high_chunks);
	suite_add_tcase(su, tc);
	tc = tcase_create("bytes");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_bytes_read);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(labels_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
