/*
 * test_reader.c - range reads (SPEC §3-§4): the acceptance test on the bytes
 * a read touches, read order with recon events merged in, exact bounds,
 * selectors, snapshots and damaged records.
 */
#include "support.h"

#include <check.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"

#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)
#define T0 INT64_C(1700000000000000000)

/* ---- helpers ----------------------------------------------------------- */

static void append_ok(tdm_store *s, const tdm_event *evs, size_t n,
                      tdm_append_result *res)
{
	tdm_append_result ignored;
	int r = tdm_append(res ? res : &ignored, NULL, s, evs, n);
	ck_assert_msg(r == 0, "append: %d %s", r, tdm_error_message());
}

static int evp_cmp(const void *a, const void *b)
{
	return tst_event_cmp(*(tdm_event *const *)a, *(tdm_event *const *)b);
}

static void evlist_sort_uniq(tst_evlist *l)
{
	if (!l->n)
		return;
	qsort(l->a, l->n, sizeof *l->a, evp_cmp);
	size_t w = 1;
	for (size_t i = 1; i < l->n; i++) {
		if (tst_event_cmp(l->a[w - 1], l->a[i]) == 0)
			tst_event_free(l->a[i]);
		else
			l->a[w++] = l->a[i];
	}
	l->n = w;
}

/* Asserts that `got` equals the events of `model` (sorted, unique) with
 * from <= ts < to that `keep` accepts, in that order. */
static void expect_range(const tst_evlist *got, const tst_evlist *model, int64_t from,
                         int64_t to, int (*keep)(const tdm_event *))
{
	size_t j = 0;
	char b1[256], b2[256];
	for (size_t i = 0; i < model->n; i++) {
		const tdm_event *m = model->a[i];
		if (m->ts < from || m->ts >= to || (keep && !keep(m)))
			continue;
		ck_assert_msg(j < got->n, "[%" PRId64 ", %" PRId64 "): missing %s (got %zu)",
		              from - T0, to - T0, tst_event_str(b1, sizeof b1, m), got->n);
		ck_assert_msg(tst_event_cmp(got->a[j], m) == 0,
		              "[%" PRId64 ", %" PRId64 ") #%zu: got %s want %s", from - T0,
		              to - T0, j, tst_event_str(b1, sizeof b1, got->a[j]),
		              tst_event_str(b2, sizeof b2, m));
		j++;
	}
	ck_assert_msg(j == got->n, "[%" PRId64 ", %" PRId64 "): %zu extra events, first %s",
	              from - T0, to - T0, got->n - j,
	              tst_event_str(b1, sizeof b1, got->a[j < got->n ? j : 0]));
}

static tdm_event ev_at(int64_t ts, uint32_t id, const tdm_label *labels,
                       size_t n_labels, const void *payload, size_t len)
{
	tdm_event e = {ts, id, 0, labels, n_labels, payload, len};
	return e;
}

static void shard_file(char *out, size_t cap, const char *dir, int64_t shard,
                       const char *ext)
{
	snprintf(out, cap, "%s/shards/%020" PRId64 ".%s", dir, shard, ext);
}

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	ck_assert_msg(fd >= 0, "open %s", path);
	unsigned char c;
	ck_assert_int_eq(pread(fd, &c, 1, off), 1);
	c ^= 0x5a;
	ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

/* ---- the acceptance test ------------------------------------------------ */

#define BIG_N 1000000
#define BIG_PAYLOAD 100
#define BIG_REC (30 + BIG_PAYLOAD)

static void big_window(tdm_store *s, int64_t from, int64_t to, uint64_t shard_size,
                       const char *what)
{
	tdm_iter *it = NULL;
	memset(&tdm_io_stats, 0, sizeof tdm_io_stats);
	int r = tdm_iter_open(&it, s, from, to, NULL);
	ck_assert_msg(r == 0, "iter_open: %s", tdm_error_message());
	const tdm_event *ev;
	uint64_t n = 0;
	int64_t expect_ts = from;
	int sound = 1;
	while ((r = tdm_iter_next(&ev, it)) == 0) {
		if (ev->ts != expect_ts || ev->payload_len != BIG_PAYLOAD)
			sound = 0;
		expect_ts += MS;
		n++;
	}
	ck_assert_int_eq(r, TDM_ITEROVER);
	tdm_iter_close(it);
	uint64_t bytes = tdm_io_stats.bytes_read;
	ck_assert_msg(sound, "%s: events not consecutive 1 ms apart", what);
	uint64_t want_n = (uint64_t)((to - from + MS - 1) / MS);
	ck_assert_msg(n == want_n, "%s: %" PRIu64 " events, want %" PRIu64, what, n, want_n);
	uint64_t limit = n * BIG_REC + 3 * 4096 + 64 * 1024;
	fprintf(stderr, "%s: %" PRIu64 " events, %" PRIu64 " bytes read (limit %" PRIu64
	        ", shard %" PRIu64 ")\n", what, n, bytes, limit, shard_size);
	ck_assert_msg(bytes <= limit, "%s: read %" PRIu64 " bytes for %" PRIu64
	              " records of %d bytes; limit %" PRIu64, what, bytes, n, BIG_REC,
	              limit);
	ck_assert_msg(bytes * 100 < shard_size, "%s: read %" PRIu64
	              " bytes, not below 1%% of the %" PRIu64 "-byte shard", what, bytes,
	              shard_size);
}

/* Built once for the acceptance tests (an unchecked fixture). */
static char *big_dir;
static uint64_t big_shard_size;
static const int64_t BIG_MAX = T0 + (BIG_N - 1) * MS;

static void big_setup(void)
{
	big_dir = tst_store_new(0, 0, 0);
	tdm_store *s = tst_store_open(big_dir, 0, TDM_DURABILITY_NONE);
	tdm_event *batch = tst_malloc(1000 * sizeof *batch);
	uint8_t *payloads = tst_malloc(1000 * BIG_PAYLOAD);
	for (size_t b = 0; b < BIG_N / 1000; b++) {
		for (size_t i = 0; i < 1000; i++) {
			uint64_t k = b * 1000 + i;
			uint8_t *p = payloads + i * BIG_PAYLOAD;
			memset(p, 'a' + (int)(k % 26), BIG_PAYLOAD);
			memcpy(p, &k, sizeof k);
			batch[i] = ev_at(T0 + (int64_t)k * MS, (uint32_t)k, NULL, 0, p,
			                 BIG_PAYLOAD);
		}
		tdm_append_result res;
		int r = tdm_append(&res, NULL, s, batch, 1000);
		if (r != 0 || res.appended != 1000)
			ck_abort_msg("batch %zu: %d appended %" PRIu64 ": %s", b, r,
			             res.appended, tdm_error_message());
	}
	free(batch);
	free(payloads);
	ck_assert_int_eq(tdm_store_close(s), 0);
	char path[4200];
	shard_file(path, sizeof path, big_dir, T0 / (3600 * SEC), "main");
	big_shard_size = (uint64_t)tst_file_size(path);
}

static void big_teardown(void)
{
	tst_tmpdir_drop(big_dir);
	big_dir = NULL;
}

START_TEST(test_acceptance_shape)
{
	tdm_store *s = tst_store_open(big_dir, 0, TDM_DURABILITY_NONE);
	tdm_stat st;
	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	ck_assert_uint_eq(st.shards, 1);
	ck_assert_uint_eq(st.events, BIG_N);
	ck_assert_int_eq(st.min_ts, T0);
	ck_assert_int_eq(st.max_ts, BIG_MAX);
	ck_assert_uint_eq(big_shard_size, 64 + (uint64_t)BIG_N * BIG_REC);
	/* Sparse: about one entry per 4 KiB. */
	ck_assert_uint_ge(st.index_entries, big_shard_size / 4096 / 2);
	ck_assert_uint_le(st.index_entries, big_shard_size / 4096 + 2);
	tdm_store_close(s);
}
END_TEST

START_TEST(test_acceptance_last_second)
{
	tdm_store *s = tst_store_open(big_dir, 0, TDM_DURABILITY_NONE);
	big_window(s, BIG_MAX - SEC, BIG_MAX + 1, big_shard_size, "last second");
	tdm_store_close(s);
}
END_TEST

START_TEST(test_acceptance_middle_second)
{
	tdm_store *s = tst_store_open(big_dir, 0, TDM_DURABILITY_NONE);
	big_window(s, T0 + 500 * SEC, T0 + 501 * SEC, big_shard_size, "middle second");
	tdm_store_close(s);
}
END_TEST

START_TEST(test_acceptance_first_second)
{
	tdm_store *s = tst_store_open(big_dir, 0, TDM_DURABILITY_NONE);
	big_window(s, T0, T0 + SEC, big_shard_size, "first second");
	tdm_store_close(s);
}
END_TEST

START_TEST(test_acceptance_reader_handle)
{
	tdm_store *s = tst_store_open(big_dir, TDM_OPEN_READONLY, TDM_DURABILITY_NONE);
	big_window(s, BIG_MAX - SEC, BIG_MAX + 1, big_shard_size, "last second, read-only");
	tdm_store_close(s);
}
END_TEST

/* ---- order, bounds and recon merge ------------------------------------- */

static const tdm_label L_A_X[] = {{"a", "x"}};
static const tdm_label L_A_XY[] = {{"a", "xy"}};
static const tdm_label L_AB_X[] = {{"ab", "x"}};
static const tdm_label L_A_X_B_Y[] = {{"b", "y"}, {"a", "x"}};
static const tdm_label L_WEB1_ERR[] = {{"host", "web-1"}, {"level", "error"}};
static const tdm_label L_WEB10_WARN[] = {{"level", "warn"}, {"host", "web-10"}};
static const tdm_label L_WEB2_ERR[] = {{"host", "web-2"}, {"level", "error"}};
static const tdm_label L_WEB1_WARN[] = {{"level", "warn"}, {"host", "web-1"}};
static const tdm_label L_LEVEL_ERR[] = {{"level", "error"}};

typedef struct labelset {
	const tdm_label *l;
	size_t n;
} labelset;

static const labelset LABELSETS[] = {
	{NULL, 0}, {L_A_X, 1}, {L_A_XY, 1}, {L_AB_X, 1}, {L_A_X_B_Y, 2},
	{L_WEB1_ERR, 2}, {L_WEB10_WARN, 2}, {L_WEB2_ERR, 2}, {L_WEB1_WARN, 2},
	{L_LEVEL_ERR, 1},
};
#define N_LABELSETS (sizeof LABELSETS / sizeof LABELSETS[0])

typedef struct blob {
	const char *p;
	size_t n;
} blob;

static const blob PAYLOADS[] = {
	{"", 0}, {"p", 1}, {"pq", 2}, {"q", 1}, {"GET /", 5}, {"\0\1", 2}, {"\0", 1},
	{"\xff\xfe", 2},
};
#define N_PAYLOADS (sizeof PAYLOADS / sizeof PAYLOADS[0])

static tdm_event random_event(tst_rng *rng, int64_t ts)
{
	const labelset *ls = &LABELSETS[tst_rng_range(rng, N_LABELSETS)];
	const blob *p = &PAYLOADS[tst_rng_range(rng, N_PAYLOADS)];
	return ev_at(ts, (uint32_t)tst_rng_range(rng, 3), ls->l, ls->n, p->p, p->n);
}

/* Shards of 10 s, grace 2 s, index blocks of 256 bytes. Events over three
 * shards, out of order within and beyond grace (late), with many ties in
 * ts, id, labels and payload. Returns the model (sorted, unique). */
static void fill_mixed(tst_evlist *model, tdm_store *s, uint64_t seed, size_t n)
{
	tst_rng rng;
	tst_rng_seed(&rng, seed);
	tdm_event *batch = tst_malloc(64 * sizeof *batch);
	size_t nb = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t ts = T0 + (int64_t)(i * 30 * SEC / n);
		if (tst_rng_chance(&rng, 30))
			ts -= (int64_t)tst_rng_range(&rng, 5 * SEC); /* some late */
		if (tst_rng_chance(&rng, 20))
			ts = T0 + (int64_t)(i * 30 * SEC / n) / SEC * SEC; /* ties */
		if (ts < T0)
			ts = T0;
		batch[nb] = random_event(&rng, ts);
		tst_evlist_add(model, &batch[nb]);
		if (++nb == 64 || tst_rng_chance(&rng, 10)) {
			append_ok(s, batch, nb, NULL);
			nb = 0;
		}
	}
	if (nb)
		append_ok(s, batch, nb, NULL);
	/* Explicit tie groups, on time and late, at a shard boundary too. */
	int64_t bases[] = {T0 + 25 * SEC, T0 + 3 * SEC, T0 + 10 * SEC, T0 + 20 * SEC - 1};
	for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++) {
		nb = 0;
		for (uint32_t id = 0; id < 2; id++)
			for (size_t l = 0; l < 5; l++)
				for (size_t p = 0; p < 4; p++) {
					if (nb == 64) {
						append_ok(s, batch, nb, NULL);
						nb = 0;
					}
					batch[nb] = ev_at(bases[b], 1 - id, LABELSETS[4 - l].l,
					                  LABELSETS[4 - l].n, PAYLOADS[3 - p].p,
					                  PAYLOADS[3 - p].n);
					tst_evlist_add(model, &batch[nb++]);
				}
		append_ok(s, batch, nb, NULL);
	}
	free(batch);
	evlist_sort_uniq(model);
}

START_TEST(test_order_and_bounds)
{
	char *dir = tst_store_new(10 * SEC, 2 * SEC, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tst_evlist model = {0};
	fill_mixed(&model, s, 42, 4000);

	tdm_stat st;
	ck_assert_int_eq(tdm_stat_get(&st, s), 0);
	ck_assert_uint_eq(st.events, model.n);
	ck_assert_msg(st.late_events > 100, "only %" PRIu64 " late events",
	              st.late_events);
	ck_assert_uint_eq(st.shards, 3);

	/* Everything. */
	tst_evlist got = {0};
	tst_read_into(&got, s, 0, INT64_MAX, NULL);
	expect_range(&got, &model, 0, INT64_MAX, NULL);
	tst_evlist_free(&got);

	/* Bounds at event timestamps, next to them, and at shard boundaries. */
	tst_rng rng;
	tst_rng_seed(&rng, 7);
	for (int k = 0; k < 200; k++) {
		int64_t a, b;
		if (k < 20) {
			int64_t bound[] = {T0, T0 + 10 * SEC, T0 + 20 * SEC, T0 + 30 * SEC};
			a = bound[k % 4] + (k / 4 % 3) - 1;
			b = bound[(k + 1) % 4] + (k / 12) - 1;
			if (b <= a)
				b = a + 10 * SEC;
		} else {
			a = model.a[tst_rng_range(&rng, model.n)]->ts + (int64_t)tst_rng_range(&rng, 3) - 1;
			b = a + (int64_t)tst_rng_range(&rng, 8 * SEC);
			if (tst_rng_chance(&rng, 50))
				b = model.a[tst_rng_range(&rng, model.n)]->ts;
		}
		tst_read_into(&got, s, a, b, NULL);
		expect_range(&got, &model, a, b, NULL);
		tst_evlist_free(&got);
	}

	/* The same after a reopen, through a read-only handle. */
	ck_assert_int_eq(tdm_store_close(s), 0);
	s = tst_store_open(dir, TDM_OPEN_READONLY, TDM_DURABILITY_NONE);
	tst_read_into(&got, s, T0 + 5 * SEC, T0 + 15 * SEC, NULL);
	expect_range(&got, &model, T0 + 5 * SEC, T0 + 15 * SEC, NULL);
	tst_evlist_free(&got);
	tdm_store_close(s);
	tst_evlist_free(&model);
	tst_tmpdir_drop(dir);
}
END_TEST

/* Events at and just past `to` that precede in-range ones in the file must
 * not come out; in-range ones after them (within grace) must. */
START_TEST(test_exact_bounds)
{
	char *dir = tst_store_new(10 * SEC, 2 * SEC, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	const int64_t to = T0 + 5 * SEC;
	/* File order: each on time against the running max. */
	int64_t order[] = {
		to - 3 * SEC, to - SEC, to, to + 1, to + SEC, to - SEC + 1,
		to + 2 * SEC - 1, to - 1, to + 2 * SEC, to + 3 * SEC,
		T0 + 10 * SEC - 1, /* last ns of the shard */
		T0 + 10 * SEC,     /* first ns of the next */
		T0 + 10 * SEC + 1,
	};
	size_t n = sizeof order / sizeof order[0];
	tdm_event evs[16];
	tst_evlist model = {0};
	for (size_t i = 0; i < n; i++) {
		evs[i] = ev_at(order[i], (uint32_t)i, NULL, 0, "x", 1);
		tst_evlist_add(&model, &evs[i]);
	}
	tdm_append_result res;
	append_ok(s, evs, n, &res);
	ck_assert_uint_eq(res.appended, n);
	ck_assert_uint_eq(res.late, 0);
	evlist_sort_uniq(&model);

	int64_t froms[] = {0, to - 3 * SEC, to - SEC, to - 1, to, to + 1, T0 + 10 * SEC - 1,
	                   T0 + 10 * SEC, T0 + 10 * SEC + 1};
	int64_t tos[] = {to - SEC, to - 1, to, to + 1, to + SEC, to + 2 * SEC,
	                 to + 2 * SEC + 1, T0 + 10 * SEC - 1, T0 + 10 * SEC,
	                 T0 + 10 * SEC + 1, T0 + 10 * SEC + 2, INT64_MAX};
	for (size_t i = 0; i < sizeof froms / sizeof froms[0]; i++)
		for (size_t j = 0; j < sizeof tos / sizeof tos[0]; j++) {
			tst_evlist got = {0};
			tst_read_into(&got, s, froms[i], tos[j], NULL);
			expect_range(&got, &model, froms[i], tos[j], NULL);
			tst_evlist_free(&got);
		}

	/* Explicitly: [.., to) has nothing at or past to. */
	tst_evlist got = {0};
	tst_read_into(&got, s, T0, to, NULL);
	ck_assert_uint_eq(got.n, 4);
	for (size_t i = 0; i < got.n; i++)
		ck_assert_msg(got.a[i]->ts < to, "event at to + %" PRId64, got.a[i]->ts - to);
	tst_evlist_free(&got);
	/* The shard boundary: [T0, T0 + 10 s) ends at the shard's last ns. */
	tst_read_into(&got, s, T0 + 10 * SEC - 1, T0 + 10 * SEC, NULL);
	ck_assert_uint_eq(got.n, 1);
	ck_assert_int_eq(got.a[0]->ts, T0 + 10 * SEC - 1);
	tst_evlist_free(&got);
	tst_read_into(&got, s, T0 + 10 * SEC, T0 + 10 * SEC + 1, NULL);
	ck_assert_uint_eq(got.n, 1);
	ck_assert_int_eq(got.a[0]->ts, T0 + 10 * SEC);
	tst_evlist_free(&got);

	tdm_store_close(s);
	tst_evlist_free(&model);
	tst_tmpdir_drop(dir);
}
END_TEST

START_TEST(test_empty)
{
	char *dir = tst_store_new(10 * SEC, 2 * SEC, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tst_evlist got = {0};
	tst_read_into(&got, s, 0, INT64_MAX, NULL);
	ck_assert_uint_eq(got.n, 0);

	tdm_event evs[3] = {ev_at(T0, 1, NULL, 0, "a", 1), ev_at(T0 + SEC, 1, NULL, 0, "b", 1),
	                    ev_at(T0 + 20 * SEC, 1, NULL, 0, "c", 1)};
	append_ok(s, evs, 3, NULL);
	/* A range between events, in an existing shard and in a missing one. */
	tst_read_into(&got, s, T0 + 1, T0 + SEC, NULL);
	ck_assert_uint_eq(got.n, 0);
	tst_read_into(&got, s, T0 + 10 * SEC, T0 + 20 * SEC, NULL);
	ck_assert_uint_eq(got.n, 0);
	tst_read_into(&got, s, 0, T0, NULL);
	ck_assert_uint_eq(got.n, 0);
	tst_read_into(&got, s, T0 + 20 * SEC + 1, INT64_MAX, NULL);
	ck_assert_uint_eq(got.n, 0);
	/* from >= to. */
	tst_read_into(&got, s, T0, T0, NULL);
	ck_assert_uint_eq(got.n, 0);
	tst_read_into(&got, s, T0 + SEC, T0, NULL);
	ck_assert_uint_eq(got.n, 0);
	tst_read_into(&got, s, INT64_MAX, 0, NULL);
	ck_assert_uint_eq(got.n, 0);
	/* A negative from is fine. */
	tst_read_into(&got, s, -5, T0 + 1, NULL);
	ck_assert_uint_eq(got.n, 1);
	tst_evlist_free(&got);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

START_TEST(test_storage_order)
{
	char *dir = tst_store_new(10 * SEC, 2 * SEC, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tst_evlist model = {0};
	fill_mixed(&model, s, 99, 2000);
	tdm_read_options ro = TDM_READ_OPTIONS_INIT;
	ro.flags = TDM_READ_STORAGE_ORDER;
	int64_t ranges[][2] = {{0, INT64_MAX}, {T0 + 3 * SEC, T0 + 17 * SEC},
	                       {T0 + 10 * SEC, T0 + 10 * SEC + 1}, {T0 + 9 * SEC, T0 + 9 * SEC + 500 * MS}};
	for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
		tst_evlist got = {0};
		tst_read_into(&got, s, ranges[k][0], ranges[k][1], &ro);
		qsort(got.a, got.n, sizeof *got.a, evp_cmp);
		expect_range(&got, &model, ranges[k][0], ranges[k][1], NULL);
		tst_evlist_free(&got);
	}
	tdm_store_close(s);
	tst_evlist_free(&model);
	tst_tmpdir_drop(dir);
}
END_TEST

/* ---- selectors ----------------------------------------------------------- */

static const char *label_of(const tdm_event *e, const char *key)
{
	for (size_t i = 0; i < e->n_labels; i++)
		if (strcmp(e->labels[i].key, key) == 0)
			return e->labels[i].value;
	return NULL;
}

static int keep_web1_and_error(const tdm_event *e)
{
	const char *h = label_of(e, "host"), *l = label_of(e, "level");
	return h && l && !strcmp(h, "web-1") && !strcmp(l, "error");
}

static int keep_web2_or_warn(const tdm_event *e)
{
	const char *h = label_of(e, "host"), *l = label_of(e, "level");
	return (h && !strcmp(h, "web-2")) || (l && !strcmp(l, "warn"));
}

static int keep_has_host(const tdm_event *e)
{
	return label_of(e, "host") != NULL;
}

static int keep_web1_prefix(const tdm_event *e)
{
	const char *h = label_of(e, "host");
	return h && !strncmp(h, "web-1", 5);
}

static int keep_level_star_and_a(const tdm_event *e)
{
	const char *a = label_of(e, "a");
	return label_of(e, "level") && a && !strcmp(a, "x");
}

static int keep_a_prefix_x(const tdm_event *e)
{
	const char *a = label_of(e, "a");
	return a && a[0] == 'x';
}

START_TEST(test_selectors)
{
	char *dir = tst_store_new(10 * SEC, 2 * SEC, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tst_evlist model = {0};
	fill_mixed(&model, s, 5, 2000);

	const tdm_match m_and[] = {{"host", "web-1"}, {"level", "error"}};
	const tdm_match m_web2[] = {{"host", "web-2"}};
	const tdm_match m_warn[] = {{"level", "warn"}};
	const tdm_match m_any_host[] = {{"host", "*"}};
	const tdm_match m_prefix[] = {{"host", "web-1*"}};
	const tdm_match m_none[] = {{"level", "*"}, {"a", "x"}};
	const tdm_match m_aprefix[] = {{"a", "x*"}};
	const tdm_selector s_and[] = {{m_and, 2}};
	const tdm_selector s_or[] = {{m_web2, 1}, {m_warn, 1}};
	const tdm_selector s_any[] = {{m_any_host, 1}};
	const tdm_selector s_prefix[] = {{m_prefix, 1}};
	const tdm_selector s_none[] = {{m_none, 2}};
	const tdm_selector s_aprefix[] = {{m_aprefix, 1}};
	struct {
		const tdm_selector *sel;
		size_t n;
		int (*keep)(const tdm_event *);
	} cases[] = {
		{s_and, 1, keep_web1_and_error}, {s_or, 2, keep_web2_or_warn},
		{s_any, 1, keep_has_host},       {s_prefix, 1, keep_web1_prefix},
		{s_none, 1, keep_level_star_and_a}, {s_aprefix, 1, keep_a_prefix_x},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		tdm_read_options ro = TDM_READ_OPTIONS_INIT;
		ro.where = cases[c].sel;
		ro.n_where = cases[c].n;
		size_t want = 0;
		for (size_t i = 0; i < model.n; i++)
			want += (size_t)cases[c].keep(model.a[i]);
		tst_evlist got = {0};
		tst_read_into(&got, s, 0, INT64_MAX, &ro);
		ck_assert_msg(got.n == want, "selector %zu: %zu events, want %zu", c, got.n, want);
		expect_range(&got, &model, 0, INT64_MAX, cases[c].keep);
		tst_evlist_free(&got);
		tst_read_into(&got, s, T0 + 8 * SEC, T0 + 12 * SEC, &ro);
		expect_range(&got, &model, T0 + 8 * SEC, T0 + 12 * SEC, cases[c].keep);
		tst_evlist_free(&got);
	}
	ck_assert(keep_level_star_and_a(&(tdm_event){0}) == 0);
	tdm_store_close(s);
	tst_evlist_free(&model);
	tst_tmpdir_drop(dir);
}
END_TEST

/* ---- snapshots ------------------------------------------------------------ */

START_TEST(test_snapshot)
{
	char *dir = tst_store_new(10 * SEC, 2 * SEC, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	tdm_event evs[100];
	for (int i = 0; i < 100; i++)
		evs[i] = ev_at(T0 + 5 * SEC + i * 10 * MS, 1, NULL, 0, "old", 3);
	append_ok(s, evs, 100, NULL);

	tdm_iter *it = NULL, *it2 = NULL;
	ck_assert_int_eq(tdm_iter_open(&it, s, 0, INT64_MAX, NULL), 0);
	ck_assert_int_eq(tdm_iter_open(&it2, s, 0, INT64_MAX, NULL), 0);
	const tdm_event *ev;
	/* it2 reads a few before the appends. */
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(tdm_iter_next(&ev, it2), 0);

	/* New events: on time in the same shard (interleaved in ts), late ones,
	 * and a new shard. */
	tdm_event more[300];
	for (int i = 0; i < 100; i++) {
		more[i] = ev_at(T0 + 5 * SEC + i * 10 * MS + 5 * MS, 1, NULL, 0, "new", 3);
		more[100 + i] = ev_at(T0 + i * MS, 1, NULL, 0, "new", 3); /* late */
		more[200 + i] = ev_at(T0 + 15 * SEC + i * MS, 1, NULL, 0, "new", 3);
	}
	tdm_append_result res;
	append_ok(s, more, 100, &res);
	append_ok(s, more + 100, 100, &res);
	ck_assert_uint_eq(res.late, 100);
	append_ok(s, more + 200, 100, &res);

	size_t n = 0;
	int r;
	while ((r = tdm_iter_next(&ev, it)) == 0) {
		ck_assert_msg(ev->payload_len == 3 && !memcmp(ev->payload, "old", 3),
		              "the iterator returned an event appended after it opened (ts +%"
		              PRId64 ")", ev->ts - T0);
		n++;
	}
	ck_assert_int_eq(r, TDM_ITEROVER);
	ck_assert_uint_eq(n, 100);
	n = 10;
	while ((r = tdm_iter_next(&ev, it2)) == 0) {
		ck_assert_msg(ev->payload_len == 3 && !memcmp(ev->payload, "old", 3),
		              "the iterator returned an event appended after it opened");
		n++;
	}
	ck_assert_int_eq(r, TDM_ITEROVER);
	ck_assert_uint_eq(n, 100);
	tdm_iter_close(it);
	tdm_iter_close(it2);

	/* A new iterator sees everything. */
	tst_evlist got = {0};
	tst_read_into(&got, s, 0, INT64_MAX, NULL);
	ck_assert_uint_eq(got.n, 400);
	tst_evlist_free(&got);
	tdm_store_close(s);
	tst_tmpdir_drop(dir);
}
END_TEST

/* ---- damage ---------------------------------------------------------------- */

/* Damaged record positions: inside an index block and at the end of one. */
static const int DAMAGED_AT[] = {74, 77, 3, 150};

START_TEST(test_damaged_record)
{
	char *dir = tst_store_new(10 * SEC, 2 * SEC, 256);
	tdm_store *s = tst_store_open(dir, 0, TDM_DURABILITY_NONE);
	enum { N = 200, PL = 20 };
	char payload[PL];
	memset(payload, 'z', sizeof payload);
	tdm_event evs[N];
	for (int i = 0; i < N; i++)
		evs[i] = ev_at(T0 + i * MS, (uint32_t)i, NULL, 0, payload, PL);
	append_ok(s, evs, N, NULL);
	ck_assert_int_eq(tdm_store_close(s), 0);

	char path[4200];
	int64_t shard = T0 / (10 * SEC);
	shard_file(path, sizeof path, dir, shard, "main");
	const off_t rec = 30 + PL;
	ck_assert_int_eq(tst_file_size(path), 64 + N * rec);
	const int bad = DAMAGED_AT[_i];
	const off_t bad_off = 64 + bad * rec;
	flip_byte(path, bad_off + rec - 3); /* a payload byte */

	for (int pass = 0; pass < 2; pass++) {
		s = tst_store_open(dir, pass ? TDM_OPEN_READONLY : 0, TDM_DURABILITY_NONE);
		int64_t ranges[][2] = {{0, INT64_MAX},
		                       {T0 + (bad - 3) * MS, T0 + (bad + 7) * MS}};
		for (size_t k = 0; k < 2; k++) {
			tdm_iter *it = NULL;
			ck_assert_int_eq(tdm_iter_open(&it, s, ranges[k][0], ranges[k][1], NULL), 0);
			const tdm_event *ev;
			int r, i = k ? bad - 3 : 0;
			size_t n = 0;
			while ((r = tdm_iter_next(&ev, it)) == 0) {
				if (i == bad)
					i++;
				ck_assert_msg(ev->ts == T0 + i * MS, "record %d damaged, range %zu, pass %d:"
				              " got ts +%" PRId64 " ms want +%d ms", bad, k, pass,
				              (ev->ts - T0) / MS, i);
				ck_assert(ev->payload_len == PL && !memcmp(ev->payload, payload, PL));
				i++;
				n++;
			}
			ck_assert_int_eq(r, TDM_ITEROVER);
			ck_assert_uint_eq(n, k == 0 ? N - 1 : 9);
			const char *msg = NULL;
			ck_assert_uint_eq(tdm_iter_damage(&msg, it), 1);
			ck_assert_ptr_nonnull(msg);
			char want[128];
			snprintf(want, sizeof want, "shards/%020" PRId64 ".main", shard);
			ck_assert_msg(strstr(msg, want), "damage message '%s' lacks '%s'", msg, want);
			snprintf(want, sizeof want, "%lld", (long long)bad_off);
			ck_assert_msg(strstr(msg, want), "damage message '%s' lacks offset %s", msg,
			              want);
			tdm_iter_close(it);
		}
		/* A read that does not touch the damaged record reports nothing. */
		tdm_iter *it = NULL;
		int64_t clean = bad < 100 ? 150 : 20;
		ck_assert_int_eq(tdm_iter_open(&it, s, T0 + clean * MS, T0 + (clean + 10) * MS,
		                               NULL), 0);
		const tdm_event *ev;
		size_t n = 0;
		while (tdm_iter_next(&ev, it) == 0)
			n++;
		ck_assert_uint_eq(n, 10);
		const char *msg = "x";
		ck_assert_uint_eq(tdm_iter_damage(&msg, it), 0);
		ck_assert_ptr_null(msg);
		tdm_iter_close(it);
		tdm_store_close(s);
	}
	tst_tmpdir_drop(dir);
}
END_TEST

static Suite *reader_suite(void)
{
	Suite *su = suite_create("reader");
	TCase *tc = tcase_create("reads");
	tcase_add_test(tc, test_order_and_bounds);
	tcase_add_test(tc, test_exact_bounds);
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_storage_order);
	tcase_add_test(tc, test_selectors);
	tcase_add_test(tc, test_snapshot);
	tcase_add_loop_test(tc, test_damaged_record, 0,
	                    (int)(sizeof DAMAGED_AT / sizeof DAMAGED_AT[0]));
	suite_add_tcase(su, tc);
	TCase *big = tcase_create("acceptance");
	tcase_set_timeout(big, 300);
	tcase_add_unchecked_fixture(big, big_setup, big_teardown);
	tcase_add_test(big, test_acceptance_shape);
	tcase_add_test(big, test_acceptance_last_second);
	tcase_add_test(big, test_acceptance_middle_second);
	tcase_add_test(big, test_acceptance_first_second);
	tcase_add_test(big, test_acceptance_reader_handle);
	suite_add_tcase(su, big);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(reader_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
