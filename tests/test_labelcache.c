/*
 * test_labelcache.c - the writer's cache of checked label pairs
 * (src/labelcache.c) and the append path that uses it.
 *
 *  - the cache finds a label by its bytes: text rewritten in the same
 *    buffer is a new pair, equal text in another buffer the same pair;
 *    pairs whose key/value boundary differs are different; past its bounds
 *    (pairs, bytes) new pairs come without an id, and the next batch starts
 *    a new generation;
 *  - a bad label is refused with rec_event_check's message, also when its
 *    key was seen before with good values; tdm_append refuses the whole
 *    batch and the store goes on;
 *  - appends whose label buffers are rewritten between batches, with more
 *    distinct pairs per batch than the cache holds, store exactly what was
 *    given: reads, selectors, counts and verify (which rebuilds every
 *    bitmap from the records) agree.
 */
#include "support.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "labelcache.h"
#include "record.h"

#define MS 1000000ll
#define SEC 1000000000ll
#define T0 1700000000000000000ll

static void expect_pair(const rec_pair *p, const char *key, const char *value)
{
	size_t k = strlen(key), v = strlen(value);
	ck_assert_uint_eq(p->klen, k);
	ck_assert_uint_eq(p->len, k + v + 2);
	ck_assert_msg(memcmp(p->bytes, key, k + 1) == 0 &&
	              memcmp(p->bytes + k + 1, value, v + 1) == 0,
	              "pair %s=%s: wrong bytes", key, value);
}

static rec_pair get_ok(lcache *c, const char *key, const char *value)
{
	rec_pair p;
	tdm_label l = {key, value};
	ck_assert_msg(lcache_get(&p, c, &l, 0) == 0, "%s=%s: %s", key, value,
	              tdm_error_message());
	expect_pair(&p, key, value);
	return p;
}

START_TEST(test_found_by_bytes)
{
	lcache *c;
	ck_assert_int_eq(lcache_new(&c), 0);
	lcache_batch(c);
	char k[16] = "host", v[16] = "web-1";
	rec_pair a = get_ok(c, k, v);
	ck_assert_uint_eq(a.id, 0);
	/* Equal text elsewhere: the same pair. */
	char k2[16] = "host", v2[16] = "web-1";
	rec_pair b = get_ok(c, k2, v2);
	ck_assert_uint_eq(b.id, a.id);
	ck_assert_ptr_eq(b.bytes, a.bytes);
	/* The same buffers with other text: other pairs. */
	strcpy(v, "web-2");
	rec_pair d = get_ok(c, k, v);
	ck_assert_uint_ne(d.id, a.id);
	strcpy(v, "web-10");
	rec_pair e = get_ok(c, k, v);
	ck_assert_uint_ne(e.id, d.id);
	strcpy(k, "hos");
	strcpy(v, "tweb-1"); /* the same bytes with the boundary moved */
	rec_pair f = get_ok(c, k, v);
	ck_assert_uint_ne(f.id, a.id);
	rec_pair g = get_ok(c, "a", "bc"), h = get_ok(c, "ab", "c");
	ck_assert_uint_ne(g.id, h.id);
	rec_pair empty = get_ok(c, "k", "");
	ck_assert_uint_ne(empty.id, get_ok(c, "k", "x").id);

	/* Values differing at any one byte, of every length up to 40. */
	char base[48], other[48];
	for (size_t n = 1; n <= 40; n++) {
		memset(base, 'v', n);
		base[n] = '\0';
		rec_pair p0 = get_ok(c, "len", base);
		for (size_t at = 0; at < n; at++) {
			memcpy(other, base, n + 1);
			other[at] = 'w';
			rec_pair p1 = get_ok(c, "len", other);
			ck_assert_msg(p1.id != p0.id, "length %zu, byte %zu", n, at);
		}
		ck_assert_uint_eq(get_ok(c, "len", base).id, p0.id);
	}
	lcache_free(c);
}
END_TEST

/* lcache_get_all remembers labels by pointer within a batch only. */
START_TEST(test_by_pointer)
{
	lcache *c;
	ck_assert_int_eq(lcache_new(&c), 0);
	/* A NULL label is refused even before the first batch and when its
	 * pointers match the (zeroed) memory of the memo. */
	tdm_label null_label = {NULL, NULL};
	rec_pair p[4];
	ck_assert_int_eq(lcache_get_all(p, c, &null_label, 1), TDM_EINVAL);
	lcache_batch(c);
	ck_assert_int_eq(lcache_get_all(p, c, &null_label, 1), TDM_EINVAL);
	char v[16] = "web-1";
	const tdm_label l[4] = {{"host", v}, {"level", "info"}, {"host", v}, {"level", "info"}};
	ck_assert_int_eq(lcache_get_all(p, c, l, 2), 0);
	ck_assert_int_eq(lcache_get_all(p + 2, c, l + 2, 2), 0);
	ck_assert_ptr_eq(p[2].bytes, p[0].bytes);
	ck_assert_ptr_eq(p[3].bytes, p[1].bytes);
	ck_assert_str_eq((const char *)p[0].bytes + 5, "web-1");
	/* The next batch: the same buffer with other text is another pair. */
	lcache_batch(c);
	strcpy(v, "web-22");
	ck_assert_int_eq(lcache_get_all(p, c, l, 1), 0);
	ck_assert_uint_eq(p[0].len, sizeof "host" + sizeof "web-22");
	ck_assert_str_eq((const char *)p[0].bytes + 5, "web-22");
	/* ...and a bad text in a remembered buffer is refused. */
	lcache_batch(c);
	v[0] = (char)0xff;
	ck_assert_int_eq(lcache_get_all(p, c, l, 1), TDM_EINVAL);
	lcache_free(c);
}
END_TEST

/* The memo holds slot numbers: when the table grows within a batch and
 * entries move, a label remembered before must still give its own pair. */
START_TEST(test_by_pointer_after_growth)
{
	lcache *c;
	ck_assert_int_eq(lcache_new(&c), 0);
	lcache_batch(c);
	const tdm_label first = {"host", "web-1"};
	rec_pair p, again;
	ck_assert_int_eq(lcache_get_all(&p, c, &first, 1), 0);
	static char v[1000][8]; /* a buffer each: within a batch, text is const */
	for (unsigned i = 0; i < 1000; i++) { /* grows the table several times */
		snprintf(v[i], sizeof v[i], "v%u", i);
		const tdm_label l = {"k", v[i]};
		ck_assert_int_eq(lcache_get_all(&again, c, &l, 1), 0);
		ck_assert_str_eq((const char *)again.bytes + 2, v[i]);
		ck_assert_int_eq(lcache_get_all(&again, c, &first, 1), 0);
		ck_assert_uint_eq(again.len, p.len);
		ck_assert_int_eq(memcmp(again.bytes, "host\0web-1", p.len), 0);
		ck_assert_uint_eq(again.id, p.id);
	}
	lcache_free(c);
}
END_TEST

/* Batches whose labels all have text of their own turn the memo off for a
 * while; labels from shared strings are then found by their bytes, with
 * the same pairs, and the memo comes back. */
START_TEST(test_memo_off_and_on)
{
	lcache *c;
	ck_assert_int_eq(lcache_new(&c), 0);
	char text[64][16];
	const tdm_label shared = {"level", "info"};
	rec_pair p, q;
	lcache_batch(c);
	ck_assert(lcache_memo_in_use(c));
	ck_assert_int_eq(lcache_get_all(&p, c, &shared, 1), 0);
	unsigned off_batches = 0, back_on = 0;
	for (unsigned b = 0; b < 200; b++) {
		int was_off = !lcache_memo_in_use(c);
		lcache_batch(c);
		if (!lcache_memo_in_use(c))
			off_batches++;
		else if (was_off)
			back_on++;
		for (unsigned i = 0; i < 64; i++) { /* own text: never in the memo */
			snprintf(text[i], sizeof text[i], "web-%u", i % 8);
			const tdm_label l = {"host", text[i]};
			ck_assert_int_eq(lcache_get_all(&q, c, &l, 1), 0);
			ck_assert_str_eq((const char *)q.bytes + 5, text[i]);
		}
		for (unsigned i = 0; i < 3; i++) {
			ck_assert_int_eq(lcache_get_all(&q, c, &shared, 1), 0);
			ck_assert_ptr_eq(q.bytes, p.bytes);
			ck_assert_uint_eq(q.id, p.id);
		}
	}
	/* Off after each batch that used it (64 more each time), tried again. */
	ck_assert_uint_eq(back_on, 3);
	ck_assert_uint_eq(off_batches, 3 * 64 + 5);
	/* Shared strings alone keep it on. */
	for (unsigned b = 0; b < 70; b++) {
		lcache_batch(c);
		for (unsigned i = 0; i < 3; i++)
			ck_assert_int_eq(lcache_get_all(&q, c, &shared, 1), 0);
	}
	ck_assert(lcache_memo_in_use(c));
	lcache_free(c);
}
END_TEST

START_TEST(test_bounds)
{
	lcache *c;
	ck_assert_int_eq(lcache_new(&c), 0);
	lcache_batch(c);
	uint64_t gen = lcache_gen(c);
	char v[32];
	/* More distinct pairs than the cache holds, in one batch. */
	for (unsigned i = 0; i < LCACHE_PAIRS + 500; i++) {
		snprintf(v, sizeof v, "req-%u", i);
		rec_pair p = get_ok(c, "req", v);
		if (i < LCACHE_PAIRS / 2)
			ck_assert_uint_eq(p.id, i);
		if (i >= LCACHE_PAIRS)
			ck_assert_uint_eq(p.id, REC_NO_ID);
	}
	/* Those kept are still found, with their ids, in this batch. */
	snprintf(v, sizeof v, "req-%u", 7u);
	ck_assert_uint_eq(get_ok(c, "req", v).id, 7);
	ck_assert_uint_eq(lcache_gen(c), gen);
	/* The next batch starts over: a new generation, ids from 0. */
	lcache_batch(c);
	ck_assert_uint_ne(lcache_gen(c), gen);
	gen = lcache_gen(c);
	ck_assert_uint_eq(get_ok(c, "host", "web-1").id, 0);
	lcache_batch(c); /* not full: kept, same generation */
	ck_assert_uint_eq(lcache_gen(c), gen);
	ck_assert_uint_eq(get_ok(c, "host", "web-1").id, 0);

	/* The byte bound: long values. */
	static char big[TDM_MAX_LABEL_VALUE + 1];
	memset(big, 'x', TDM_MAX_LABEL_VALUE);
	size_t kept = 0, gone = 0;
	for (unsigned i = 0; i < 400; i++) {
		snprintf(big, 12, "%011u", i);
		big[11] = 'x';
		rec_pair p = get_ok(c, "big", big);
		if (p.id == REC_NO_ID)
			gone++;
		else
			kept++;
	}
	ck_assert_msg(kept > 0 && kept * (TDM_MAX_LABEL_VALUE + 5) <= LCACHE_BYTES && gone > 0,
	              "kept %zu, not kept %zu", kept, gone);
	lcache_free(c);
}
END_TEST

/* The bad labels, each refused as rec_event_check refuses it. */
static void bad_labels(tdm_label *out, size_t *n, char *long_key, char *long_value)
{
	static const char bad_utf8[] = {'w', (char)0xff, 0};
	static const char surrogate[] = {(char)0xed, (char)0xa0, (char)0x80, 0};
	memset(long_key, 'k', TDM_MAX_LABEL_KEY + 1);
	long_key[TDM_MAX_LABEL_KEY + 1] = '\0';
	memset(long_value, 'v', TDM_MAX_LABEL_VALUE + 1);
	long_value[TDM_MAX_LABEL_VALUE + 1] = '\0';
	size_t i = 0;
	out[i++] = (tdm_label){"host", bad_utf8};
	out[i++] = (tdm_label){"host", surrogate};
	out[i++] = (tdm_label){bad_utf8, "web-1"};
	out[i++] = (tdm_label){"", "web-1"};
	out[i++] = (tdm_label){"host", NULL};
	out[i++] = (tdm_label){NULL, "web-1"};
	out[i++] = (tdm_label){long_key, "web-1"};
	out[i++] = (tdm_label){"host", long_value};
	*n = i;
}

START_TEST(test_bad_labels)
{
	static char long_key[TDM_MAX_LABEL_KEY + 2], long_value[TDM_MAX_LABEL_VALUE + 2];
	tdm_label bad[16];
	size_t n_bad;
	bad_labels(bad, &n_bad, long_key, long_value);
	lcache *c;
	ck_assert_int_eq(lcache_new(&c), 0);
	lcache_batch(c);
	get_ok(c, "host", "web-1");
	for (size_t i = 0; i < n_bad; i++) {
		/* As the second label of an event, behind a good one. */
		tdm_label two[2] = {{"level", "info"}, bad[i]};
		tdm_event ev = {.ts = T0, .labels = two, .n_labels = 2};
		ck_assert_int_eq(rec_event_check(&ev), TDM_EINVAL);
		char want[512];
		snprintf(want, sizeof want, "%s", tdm_error_message());
		rec_pair p;
		ck_assert_int_eq(lcache_get(&p, c, &two[1], 1), TDM_EINVAL);
		ck_assert_str_eq(tdm_error_message(), want);
		/* Still refused when asked again. */
		ck_assert_int_eq(lcache_get(&p, c, &two[1], 1), TDM_EINVAL);
		ck_assert_str_eq(tdm_error_message(), want);
	}
	get_ok(c, "host", "web-1");
	lcache_free(c);
}
END_TEST

/* Keys of every length up to 40 and values of every length up to 40,
 * through each shape of the words that hold them: each pair its own. */
START_TEST(test_lengths)
{
	lcache *c;
	ck_assert_int_eq(lcache_new(&c), 0);
	lcache_batch(c);
	char k[48], v[48];
	uint32_t id = 0;
	for (size_t kn = 1; kn <= 40; kn++)
		for (size_t vn = 0; vn <= 40; vn += 3) {
			memset(k, 'a', kn);
			k[kn] = '\0';
			k[kn - 1] = 'z'; /* the last byte of one word, the first of another */
			memset(v, 'b', vn);
			v[vn] = '\0';
			ck_assert_uint_eq(get_ok(c, k, v).id, id++);
		}
	/* The same text from other buffers: the same pairs. */
	id = 0;
	for (size_t kn = 1; kn <= 40; kn++)
		for (size_t vn = 0; vn <= 40; vn += 3) {
			char k2[48], v2[48];
			memset(k2, 'a', kn);
			k2[kn] = '\0';
			k2[kn - 1] = 'z';
			memset(v2, 'b', vn);
			v2[vn] = '\0';
			ck_assert_uint_eq(get_ok(c, k2, v2).id, id++);
		}
	lcache_free(c);
}
END_TEST

static int label_key_cmp(const void *a, const void *b)
{
	return strcmp(((const tdm_label *)a)->key, ((const tdm_label *)b)->key);
}

/* An event's labels resolved and sorted as prepare() does (lcache_get_all,
 * rec_pairs_sort_check), against rec_event_check and strcmp order: keys
 * alike in their first bytes (which kpre holds) or in all of them, past
 * ASCII, in any order, with duplicates. */
START_TEST(test_sort_check)
{
	static const char *const keys[] = {
		"a", "ab", "abc", "abcd", "abcde", "abcdf", "abce", "abd", "b",
		"host", "hosts", "hostname", "\xc3\xa9", "\xc3\xa9t\xc3\xa9", "z", "zz",
		"\x7f", "0", "A", "abcd\xc3\xa9",
	};
	enum { NK = sizeof keys / sizeof keys[0] };
	lcache *c;
	ck_assert_int_eq(lcache_new(&c), 0);
	tst_rng r;
	tst_rng_seed(&r, 11);
	size_t refused = 0;
	for (int round = 0; round < 20000; round++) {
		lcache_batch(c);
		tdm_label l[8];
		size_t n = (size_t)tst_rng_range(&r, 9);
		for (size_t i = 0; i < n; i++)
			l[i] = (tdm_label){keys[tst_rng_range(&r, NK)],
			                   tst_rng_chance(&r, 2) ? "v" : "other"};
		tdm_event ev = {.ts = T0, .labels = l, .n_labels = n};
		int want = rec_event_check(&ev);
		char msg[512];
		snprintf(msg, sizeof msg, "%s", want ? tdm_error_message() : "");
		rec_pair p[8];
		uint32_t len = 0;
		int got = lcache_get_all(p, c, l, n);
		ck_assert_int_eq(got, 0);
		got = rec_pairs_sort_check(&len, p, n);
		ck_assert_int_eq(got, want);
		if (want) {
			ck_assert_str_eq(tdm_error_message(), msg);
			refused++;
			continue;
		}
		tdm_label sorted[8];
		memcpy(sorted, l, n * sizeof *l);
		qsort(sorted, n, sizeof *sorted, label_key_cmp);
		size_t bytes = 0;
		for (size_t i = 0; i < n; i++) {
			expect_pair(&p[i], sorted[i].key, sorted[i].value);
			bytes += p[i].len;
		}
		ck_assert_uint_eq(len, bytes);
	}
	ck_assert_uint_gt(refused, 1000); /* duplicate keys were met */
	lcache_free(c);
}
END_TEST

static size_t count_all(tdm_store *s)
{
	tst_evlist all = tst_read_all(s, 0, INT64_MAX);
	size_t n = all.n;
	tst_evlist_free(&all);
	return n;
}

START_TEST(test_append_refuses_batch)
{
	static char long_key[TDM_MAX_LABEL_KEY + 2], long_value[TDM_MAX_LABEL_VALUE + 2];
	tdm_label bad[16];
	size_t n_bad;
	bad_labels(bad, &n_bad, long_key, long_value);
	/* Across events: duplicate keys and too many label bytes. */
	static char vals[64][TDM_MAX_LABEL_VALUE + 1];
	static char keys[64][8];
	tdm_label many[64];
	for (int i = 0; i < 64; i++) {
		snprintf(keys[i], sizeof keys[i], "k%02d", i);
		memset(vals[i], 'a' + i % 26, TDM_MAX_LABEL_VALUE);
		many[i] = (tdm_label){keys[i], vals[i]};
	}
	tdm_label dup[3] = {{"service", "api"}, {"host", "web-1"}, {"service", "db"}};

	char *dir = tst_store_new(0, 0, 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tdm_label good[2] = {{"host", "web-1"}, {"level", "info"}};
	tdm_event batch[4];
	for (int i = 0; i < 4; i++)
		batch[i] = (tdm_event){.ts = T0 + i * MS, .labels = good, .n_labels = 2,
		                       .payload = "p", .payload_len = 1};
	ck_assert_int_eq(tdm_append(NULL, NULL, s, batch, 4), 0);
	size_t stored = 4;
	for (size_t i = 0; i < n_bad + 2; i++) {
		tdm_label two[2] = {{"level", "warn"}, bad[i < n_bad ? i : 0]};
		tdm_event ev = {.ts = T0 + SEC, .labels = two, .n_labels = 2};
		if (i == n_bad)
			ev.labels = dup, ev.n_labels = 3;
		if (i == n_bad + 1)
			ev.labels = many, ev.n_labels = 64;
		ck_assert_int_eq(tdm_event_check(&ev), TDM_EINVAL);
		char want[600];
		snprintf(want, sizeof want, "event 2 of the batch: %s", tdm_error_message());
		tdm_event b[4] = {batch[0], batch[1], ev, batch[3]};
		b[0].ts = b[1].ts = b[3].ts = T0 + 2 * SEC + (int64_t)i * MS;
		b[1].id = 1;
		tdm_append_result res;
		ck_assert_int_eq(tdm_append(&res, NULL, s, b, 4), TDM_EINVAL);
		ck_assert_str_eq(tdm_error_message(), want);
		ck_assert_uint_eq(res.appended, 0);
		ck_assert_uint_eq(count_all(s), stored);
		/* The store goes on. */
		b[2] = batch[2];
		b[2].ts = T0 + 3 * SEC + (int64_t)i * MS;
		ck_assert_int_eq(tdm_append(&res, NULL, s, b, 4), 0);
		ck_assert_uint_eq(res.appended, 3); /* b[0] and b[3] are the same event */
		stored += 3;
		ck_assert_uint_eq(count_all(s), stored);
	}
	/* Several bad events: the first is named, as event by event checks
	 * name it. */
	tdm_label bad_utf8[1] = {bad[0]};
	tdm_event two_bad[4] = {batch[0], batch[1], batch[2], batch[3]};
	two_bad[1].labels = bad_utf8;
	two_bad[1].n_labels = 1;
	two_bad[3].ts = -1;
	ck_assert_int_eq(tdm_event_check(&two_bad[1]), TDM_EINVAL);
	char want[600];
	snprintf(want, sizeof want, "event 1 of the batch: %s", tdm_error_message());
	ck_assert_int_eq(tdm_append(NULL, NULL, s, two_bad, 4), TDM_EINVAL);
	ck_assert_str_eq(tdm_error_message(), want);
	two_bad[1] = batch[1];
	two_bad[2].n_labels = TDM_MAX_LABELS + 1; /* before a bad label: named */
	ck_assert_int_eq(tdm_event_check(&two_bad[2]), TDM_EINVAL);
	snprintf(want, sizeof want, "event 2 of the batch: %s", tdm_error_message());
	ck_assert_int_eq(tdm_append(NULL, NULL, s, two_bad, 4), TDM_EINVAL);
	ck_assert_str_eq(tdm_error_message(), want);
	ck_assert_uint_eq(count_all(s), stored);

	tst_verify_clean(s);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

/* Events whose label text lives in buffers the test rewrites for every
 * batch; a unique `req` label per event passes the cache's bound in each
 * batch, alongside the few recurring host/level pairs. */
START_TEST(test_rewritten_buffers)
{
	enum { BATCH = LCACHE_PAIRS + 1000, BATCHES = 3 };
	char *dir = tst_store_new(0, 0, 0);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tdm_event *ev = tst_malloc(BATCH * sizeof *ev);
	tdm_label (*lab)[3] = tst_malloc(BATCH * sizeof *lab);
	char (*text)[3][24] = tst_malloc(BATCH * sizeof *text);
	tst_evlist sent = {0};
	tst_rng r;
	tst_rng_seed(&r, 6);
	for (int b = 0; b < BATCHES; b++) {
		for (size_t i = 0; i < BATCH; i++) {
			uint64_t k = (uint64_t)b * BATCH + i;
			/* Values change with the batch; the buffers do not. */
			snprintf(text[i][0], 24, "web-%u", (unsigned)tst_rng_range(&r, 8) + 8 * (unsigned)b);
			snprintf(text[i][1], 24, "%s", tst_rng_chance(&r, 10) ? "error" : "info");
			snprintf(text[i][2], 24, "r%" PRIu64, k * 7919 % 100003);
			lab[i][0] = (tdm_label){"req", text[i][2]};
			lab[i][1] = (tdm_label){"host", text[i][0]};
			lab[i][2] = (tdm_label){"level", text[i][1]};
			ev[i] = (tdm_event){.ts = T0 + (int64_t)k * MS, .id = (uint32_t)k,
			                    .labels = lab[i], .n_labels = 1 + i % 3,
			                    .payload = text[i][2], .payload_len = strlen(text[i][2])};
			tst_evlist_add(&sent, &ev[i]);
		}
		tdm_append_result res;
		ck_assert_msg(tdm_append(&res, NULL, s, ev, BATCH) == 0, "append: %s",
		              tdm_error_message());
		ck_assert_uint_eq(res.appended, BATCH);
		memset(text, 0, BATCH * sizeof *text); /* nothing may point here now */
	}
	tst_verify_clean(s);
	tst_evlist all = tst_read_all(s, 0, INT64_MAX);
	ck_assert_uint_eq(all.n, sent.n);
	char x[256], y[256];
	for (size_t i = 0; i < all.n; i++)
		ck_assert_msg(tst_event_cmp(all.a[i], sent.a[i]) == 0, "#%zu: got %s want %s", i,
		              tst_event_str(x, sizeof x, all.a[i]),
		              tst_event_str(y, sizeof y, sent.a[i]));
	/* Selective reads from the bitmaps: one event by its unique value, and
	 * every event of a host of the second batch. */
	const tdm_event *one = sent.a[BATCH + 17];
	tdm_match m1[] = {{"req", NULL}};
	for (size_t j = 0; j < one->n_labels; j++)
		if (strcmp(one->labels[j].key, "req") == 0)
			m1[0].value = one->labels[j].value;
	ck_assert_ptr_nonnull(m1[0].value);
	tdm_selector w1 = {m1, 1};
	tdm_read_options ro = TDM_READ_OPTIONS_INIT;
	ro.where = &w1;
	ro.n_where = 1;
	tst_evlist got = {0};
	tst_read_into(&got, s, 0, INT64_MAX, &ro);
	ck_assert_uint_eq(got.n, 1);
	ck_assert_int_eq(tst_event_cmp(got.a[0], one), 0);
	tst_evlist_free(&got);
	tdm_match m2[] = {{"host", "web-9"}, {"level", "error"}};
	tdm_selector w2 = {m2, 2};
	ro.where = &w2;
	tst_read_into(&got, s, 0, INT64_MAX, &ro);
	size_t want = 0;
	for (size_t i = 0; i < sent.n; i++) {
		const tdm_event *e = sent.a[i];
		int h = 0, l = 0;
		for (size_t j = 0; j < e->n_labels; j++) {
			h |= strcmp(e->labels[j].key, "host") == 0 && strcmp(e->labels[j].value, "web-9") == 0;
			l |= strcmp(e->labels[j].key, "level") == 0 && strcmp(e->labels[j].value, "error") == 0;
		}
		want += h && l;
	}
	ck_assert_uint_gt(want, 0);
	ck_assert_uint_eq(got.n, want);
	tst_evlist_free(&got);
	tst_evlist_free(&all);
	tst_evlist_free(&sent);
	free(ev);
	free(lab);
	free(text);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

static Suite *suite(void)
{
	Suite *su = suite_create("labelcache");
	TCase *tc = tcase_create("cache");
	tcase_add_test(tc, test_found_by_bytes);
	tcase_add_test(tc, test_by_pointer);
	tcase_add_test(tc, test_by_pointer_after_growth);
	tcase_add_test(tc, test_memo_off_and_on);
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_lengths);
	tcase_add_test(tc, test_sort_check);
	tcase_add_test(tc, test_bad_labels);
	tcase_add_test(tc, test_append_refuses_batch);
	tcase_add_test(tc, test_rewritten_buffers);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
