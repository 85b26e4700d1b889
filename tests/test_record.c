/*
 * test_record.c - the record codec (src/record.c): encode/decode round
 * trips, event checks against the data model and limits (SPEC §2), damage
 * detection, fingerprints and the read order of SPEC §4.
 */
#include "support.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "record.h"

/* ---- Helpers ----------------------------------------------------------- */

static tdm_event mkev(int64_t ts, uint32_t id, const tdm_label *labels,
                      size_t n_labels, const void *payload, size_t payload_len)
{
	tdm_event ev = {ts, id, 0, labels, n_labels, payload, payload_len};
	return ev;
}

/* Encodes a checked event into a fresh buffer; *len gets its size. */
static uint8_t *encode(const tdm_event *ev, uint64_t seq, size_t *len)
{
	ck_assert_int_eq(rec_event_check(ev), 0);
	size_t n = rec_size(ev);
	uint8_t *buf = tst_malloc(n);
	rec_encode(buf, ev, seq);
	if (len)
		*len = n;
	return buf;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void decode_ok(rec_view *v, const uint8_t *buf, size_t avail)
{
	size_t need = 0;
	const char *why = NULL;
	int st = rec_decode(v, buf, avail, &need, &why);
	ck_assert_msg(st == REC_OK, "rec_decode: status %d (%s)", st,
	              why ? why : "-");
}

static int has(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

/* ---- Round trips ------------------------------------------------------- */

START_TEST(test_roundtrip_sorted_labels)
{
	/* Given unsorted: encoded sorted, as key\0value\0 pairs. */
	const tdm_label labels[] = {{"level", "error"}, {"host", "web-1"},
	                            {"a", ""}, {"\xc3\xa9t\xc3\xa9", "\xc3\xbc"}};
	const char payload[] = "GET /index.html";
	tdm_event ev = mkev(1700000000123456789ll, 0xdeadbeef, labels, 4, payload,
	                    strlen(payload));
	size_t len;
	uint8_t *buf = encode(&ev, 42, &len);

	const char canon[] = "a\0\0host\0web-1\0level\0error\0\xc3\xa9t\xc3\xa9\0\xc3\xbc";
	size_t canon_len = sizeof canon; /* the final NUL is the last value's */
	ck_assert_uint_eq(len, REC_HEADER + canon_len + strlen(payload));
	ck_assert_uint_eq(le32(buf), len);

	rec_view v;
	decode_ok(&v, buf, len);
	ck_assert_ptr_eq(v.bytes, buf);
	ck_assert_uint_eq(v.len, len);
	ck_assert_uint_eq(v.seq, 42);
	ck_assert_int_eq(v.ts, 1700000000123456789ll);
	ck_assert_uint_eq(v.id, 0xdeadbeef);
	ck_assert_uint_eq(v.labels_len, canon_len);
	ck_assert_int_eq(memcmp(v.labels, canon, canon_len), 0);
	ck_assert_uint_eq(v.payload_len, strlen(payload));
	ck_assert_int_eq(memcmp(v.payload, payload, v.payload_len), 0);

	tdm_label out[TDM_MAX_LABELS];
	ck_assert_uint_eq(rec_labels(out, v.labels, v.labels_len), 4);
	ck_assert_str_eq(out[0].key, "a");
	ck_assert_str_eq(out[0].value, "");
	ck_assert_str_eq(out[1].key, "host");
	ck_assert_str_eq(out[1].value, "web-1");
	ck_assert_str_eq(out[2].key, "level");
	ck_assert_str_eq(out[2].value, "error");
	ck_assert_str_eq(out[3].key, "\xc3\xa9t\xc3\xa9");
	ck_assert_str_eq(out[3].value, "\xc3\xbc");
	free(buf);
}
END_TEST

START_TEST(test_roundtrip_empty)
{
	tdm_event ev = mkev(0, 0, NULL, 0, NULL, 0);
	size_t len;
	uint8_t *buf = encode(&ev, 1, &len);
	ck_assert_uint_eq(len, REC_HEADER);
	rec_view v;
	decode_ok(&v, buf, len);
	ck_assert_int_eq(v.ts, 0);
	ck_assert_uint_eq(v.id, 0);
	ck_assert_uint_eq(v.seq, 1);
	ck_assert_uint_eq(v.labels_len, 0);
	ck_assert_uint_eq(v.payload_len, 0);
	tdm_label out[TDM_MAX_LABELS];
	ck_assert_uint_eq(rec_labels(out, v.labels, v.labels_len), 0);
	free(buf);
}
END_TEST

START_TEST(test_roundtrip_binary_payload)
{
	/* Every byte value, NULs included, survives. */
	uint8_t payload[512];
	for (size_t i = 0; i < sizeof payload; i++)
		payload[i] = (uint8_t)(i * 7);
	const tdm_label labels[] = {{"k", "v"}};
	/* The largest ts an event may have: INT64_MAX itself is out of range
	 * (no [from, to) could return it). */
	tdm_event ev = mkev(INT64_MAX - 1, UINT32_MAX, labels, 1, payload,
	                    sizeof payload);
	size_t len;
	uint8_t *buf = encode(&ev, UINT64_MAX, &len);
	rec_view v;
	decode_ok(&v, buf, len);
	ck_assert_int_eq(v.ts, INT64_MAX - 1);
	ck_assert_uint_eq(v.id, UINT32_MAX);
	ck_assert_uint_eq(v.seq, UINT64_MAX);
	ck_assert_uint_eq(v.payload_len, sizeof payload);
	ck_assert_int_eq(memcmp(v.payload, payload, sizeof payload), 0);
	free(buf);
}
END_TEST

START_TEST(test_roundtrip_max_sizes)
{
	/* Labels taking exactly TDM_MAX_LABELS_BYTES and a payload of exactly
	 * TDM_MAX_PAYLOAD: the largest record there is. */
	enum { N = 16 };
	char *keys[N], *values[N];
	tdm_label labels[N];
	size_t total = 0;
	for (int i = 0; i < N; i++) {
		size_t k = TDM_MAX_LABEL_KEY, v = TDM_MAX_LABEL_VALUE;
		if (i == N - 1) {
			k = 10;
			v = TDM_MAX_LABELS_BYTES - total - k - 2;
		}
		keys[i] = tst_malloc(k + 1);
		values[i] = tst_malloc(v + 1);
		memset(keys[i], 'a' + (N - 1 - i), k); /* given in reverse order */
		keys[i][k] = '\0';
		memset(values[i], 'v', v);
		values[i][v] = '\0';
		labels[i] = (tdm_label){keys[i], values[i]};
		total += k + v + 2;
	}
	ck_assert_uint_eq(total, TDM_MAX_LABELS_BYTES);
	uint8_t *payload = tst_malloc(TDM_MAX_PAYLOAD);
	tst_rng rng;
	tst_rng_seed(&rng, 7);
	tst_rng_bytes(&rng, payload, TDM_MAX_PAYLOAD);

	tdm_event ev = mkev(5, 6, labels, N, payload, TDM_MAX_PAYLOAD);
	size_t len;
	uint8_t *buf = encode(&ev, 9, &len);
	ck_assert_uint_eq(len, REC_MAX);
	rec_view v;
	decode_ok(&v, buf, len);
	ck_assert_uint_eq(v.labels_len, TDM_MAX_LABELS_BYTES);
	ck_assert_uint_eq(v.payload_len, TDM_MAX_PAYLOAD);
	ck_assert_int_eq(memcmp(v.payload, payload, TDM_MAX_PAYLOAD), 0);
	tdm_label out[TDM_MAX_LABELS];
	ck_assert_uint_eq(rec_labels(out, v.labels, v.labels_len), N);
	for (int i = 0; i < N; i++) /* sorted: index N-1 had the smallest key */
		ck_assert_str_eq(out[i].key, keys[N - 1 - i]);
	free(buf);

	/* One byte more of labels or payload is over the limit. */
	ev.payload_len = TDM_MAX_PAYLOAD + 1;
	ck_assert_int_eq(rec_event_check(&ev), TDM_EINVAL);
	ck_assert(has(tdm_error_message(), "payload"));
	ev.payload_len = TDM_MAX_PAYLOAD;
	/* The last value one byte longer: labels take one byte too many. */
	size_t vl = strlen(values[N - 1]);
	char *longer = tst_malloc(vl + 2);
	memset(longer, 'v', vl + 1);
	longer[vl + 1] = '\0';
	labels[N - 1].value = longer;
	ck_assert_int_eq(rec_event_check(&ev), TDM_EINVAL);
	ck_assert(has(tdm_error_message(), "labels"));
	free(longer);

	for (int i = 0; i < N; i++) {
		free(keys[i]);
		free(values[i]);
	}
	free(payload);
}
END_TEST

START_TEST(test_limits_counts_and_lengths)
{
	/* TDM_MAX_LABELS pairs pass; one more does not. */
	char names[TDM_MAX_LABELS + 1][8];
	tdm_label labels[TDM_MAX_LABELS + 1];
	for (int i = 0; i <= TDM_MAX_LABELS; i++) {
		snprintf(names[i], sizeof names[i], "k%03d", TDM_MAX_LABELS - i);
		labels[i] = (tdm_label){names[i], "v"};
	}
	tdm_event ev = mkev(1, 1, labels, TDM_MAX_LABELS, NULL, 0);
	size_t len;
	uint8_t *buf = encode(&ev, 1, &len);
	rec_view v;
	decode_ok(&v, buf, len);
	tdm_label out[TDM_MAX_LABELS];
	ck_assert_uint_eq(rec_labels(out, v.labels, v.labels_len), TDM_MAX_LABELS);
	ck_assert_str_eq(out[0].key, "k001");
	free(buf);
	ev.n_labels = TDM_MAX_LABELS + 1;
	ck_assert_int_eq(rec_event_check(&ev), TDM_EINVAL);

	/* Key and value lengths at and past their limits. */
	char key[TDM_MAX_LABEL_KEY + 2], value[TDM_MAX_LABEL_VALUE + 2];
	memset(key, 'k', sizeof key - 1);
	key[sizeof key - 1] = '\0';
	memset(value, 'v', sizeof value - 1);
	value[sizeof value - 1] = '\0';
	tdm_label one = {key + 1, value + 1}; /* exactly at the limits */
	ev = mkev(1, 1, &one, 1, NULL, 0);
	ck_assert_int_eq(rec_event_check(&ev), 0);
	one.key = key;
	ck_assert_int_eq(rec_event_check(&ev), TDM_EINVAL);
	one.key = key + 1;
	one.value = value;
	ck_assert_int_eq(rec_event_check(&ev), TDM_EINVAL);
}
END_TEST

/* ---- Event checks ------------------------------------------------------ */

static void expect_bad(const tdm_event *ev, const char *word)
{
	int r = rec_event_check(ev);
	ck_assert_msg(r == TDM_EINVAL, "expected TDM_EINVAL (%s), got %d", word, r);
	ck_assert_msg(has(tdm_error_message(), word),
	              "message '%s' does not name '%s'", tdm_error_message(), word);
}

START_TEST(test_check_rejections)
{
	tdm_event ev = mkev(-1, 0, NULL, 0, NULL, 0);
	expect_bad(&ev, "ts");
	ev.ts = INT64_MIN;
	expect_bad(&ev, "ts");
	ev.ts = 0;
	ck_assert_int_eq(rec_event_check(&ev), 0);
	/* INT64_MAX is out of range: no [from, to) could return it; one below
	 * is the largest valid ts. */
	ev.ts = INT64_MAX;
	expect_bad(&ev, "ts");
	expect_bad(&ev, "out of range");
	ev.ts = INT64_MAX - 1;
	ck_assert_int_eq(rec_event_check(&ev), 0);

	/* Duplicate keys, not adjacent in the input. */
	const tdm_label dup[] = {{"b", "1"}, {"a", "2"}, {"b", "3"}};
	ev = mkev(1, 0, dup, 3, NULL, 0);
	expect_bad(&ev, "twice");

	const tdm_label empty_key[] = {{"a", "1"}, {"", "2"}};
	ev = mkev(1, 0, empty_key, 2, NULL, 0);
	expect_bad(&ev, "empty key");

	const tdm_label null_value[] = {{"a", NULL}};
	ev = mkev(1, 0, null_value, 1, NULL, 0);
	ck_assert_int_eq(rec_event_check(&ev), TDM_EINVAL);

	ev = mkev(1, 0, NULL, 2, NULL, 0);
	ck_assert_int_eq(rec_event_check(&ev), TDM_EINVAL);
	ev = mkev(1, 0, NULL, 0, NULL, 3);
	expect_bad(&ev, "payload");

	/* Invalid UTF-8, in a key or in a value. */
	static const char *const bad_utf8[] = {
		"\x80",             /* stray continuation byte */
		"a\xc3",            /* truncated 2-byte sequence */
		"\xe2\x82",         /* truncated 3-byte sequence */
		"\xc0\xaf",         /* overlong '/' */
		"\xe0\x80\xaf",     /* overlong, 3 bytes */
		"\xed\xa0\x80",     /* UTF-16 surrogate */
		"\xf4\x90\x80\x80", /* past U+10FFFF */
		"\xff",             /* never valid */
		"x\xc3(",           /* bad continuation */
	};
	for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
		tdm_label l = {bad_utf8[i], "ok"};
		ev = mkev(1, 0, &l, 1, NULL, 0);
		expect_bad(&ev, "UTF-8");
		l = (tdm_label){"ok", bad_utf8[i]};
		expect_bad(&ev, "UTF-8");
	}
	/* Valid multi-byte UTF-8 of every length passes. */
	tdm_label good = {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"};
	ev = mkev(1, 0, &good, 1, NULL, 0);
	ck_assert_int_eq(rec_event_check(&ev), 0);
}
END_TEST

/* ---- Damage ------------------------------------------------------------ */

static uint8_t *sample_record(size_t *len)
{
	const tdm_label labels[] = {{"host", "web-1"}, {"level", "warn"}};
	const char payload[] = "some payload \x01\x02\x03";
	tdm_event ev = mkev(1700000000000000000ll, 77, labels, 2, payload,
	                    sizeof payload - 1);
	return encode(&ev, 12345, len);
}

START_TEST(test_every_bit_flip_detected)
{
	size_t len;
	uint8_t *rec = sample_record(&len);
	/* The record alone, and the record followed by more bytes (as in a
	 * file, where a larger length would still be available). */
	size_t big = len + 4096;
	uint8_t *buf = tst_malloc(big);
	tst_rng rng;
	tst_rng_seed(&rng, 3);
	for (size_t bit = 0; bit < len * 8; bit++) {
		for (int tail = 0; tail < 2; tail++) {
			size_t avail = tail ? big : len;
			memcpy(buf, rec, len);
			if (tail)
				tst_rng_bytes(&rng, buf + len, big - len);
			buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			rec_view v;
			size_t need = 0;
			const char *why = NULL;
			int st = rec_decode(&v, buf, avail, &need, &why);
			if (st == REC_SHORT) {
				ck_assert_msg(bit < 32, "bit %zu: REC_SHORT outside the length", bit);
				ck_assert_msg(need > avail, "bit %zu: need %zu <= avail %zu",
				              bit, need, avail);
				ck_assert_uint_eq(need, le32(buf));
			} else {
				ck_assert_msg(st == REC_BAD, "bit %zu (tail %d): status %d",
				              bit, tail, st);
				ck_assert_ptr_nonnull(why);
			}
		}
	}
	free(buf);
	free(rec);
}
END_TEST

START_TEST(test_truncated_is_short)
{
	size_t len;
	uint8_t *rec = sample_record(&len);
	for (size_t avail = 0; avail < len; avail++) {
		uint8_t *copy = tst_malloc(avail); /* ASan would see an overread */
		memcpy(copy, rec, avail);
		rec_view v;
		size_t need = 0;
		const char *why = NULL;
		int st = rec_decode(&v, copy, avail, &need, &why);
		ck_assert_msg(st == REC_SHORT, "avail %zu: status %d", avail, st);
		ck_assert_msg(need > avail && need <= len, "avail %zu: need %zu",
		              avail, need);
		free(copy);
	}
	rec_view v;
	decode_ok(&v, rec, len);
	free(rec);
}
END_TEST

START_TEST(test_bad_length_field)
{
	size_t len;
	uint8_t *rec = sample_record(&len);
	rec_view v;
	size_t need;
	const char *why = NULL;
	/* A length below the header, and one above REC_MAX. */
	uint8_t small[REC_HEADER] = {REC_HEADER - 1, 0, 0, 0};
	ck_assert_int_eq(rec_decode(&v, small, sizeof small, &need, &why), REC_BAD);
	uint8_t huge[REC_HEADER];
	uint32_t m = (uint32_t)REC_MAX + 1;
	huge[0] = (uint8_t)m, huge[1] = (uint8_t)(m >> 8);
	huge[2] = (uint8_t)(m >> 16), huge[3] = (uint8_t)(m >> 24);
	ck_assert_int_eq(rec_decode(&v, huge, sizeof huge, &need, &why), REC_BAD);
	free(rec);
}
END_TEST

START_TEST(test_bad_ts_field)
{
	/* A record with a sound checksum whose ts no event may have (as a
	 * buggy or older writer could leave): REC_BAD, not a record a read
	 * would return or mis-place. */
	const int64_t bad[] = {INT64_MAX, -1, INT64_MIN};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t len;
		uint8_t *rec = sample_record(&len);
		uint64_t u = (uint64_t)bad[i];
		for (int b = 0; b < 8; b++)
			rec[16 + b] = (uint8_t)(u >> 8 * b);
		rec_set_seq(rec, 12345); /* recomputes the checksum */
		rec_view v;
		size_t need = 0;
		const char *why = NULL;
		int st = rec_decode(&v, rec, len, &need, &why);
		ck_assert_msg(st == REC_BAD, "ts %lld: status %d", (long long)bad[i], st);
		ck_assert_ptr_nonnull(why);
		ck_assert_msg(has(why, "ts"), "ts %lld: why '%s'", (long long)bad[i], why);
		/* One below INT64_MAX decodes: the rejection is of the value. */
		u = (uint64_t)(INT64_MAX - 1);
		for (int b = 0; b < 8; b++)
			rec[16 + b] = (uint8_t)(u >> 8 * b);
		rec_set_seq(rec, 12345);
		decode_ok(&v, rec, len);
		ck_assert_int_eq(v.ts, INT64_MAX - 1);
		free(rec);
	}
}
END_TEST

/* ---- Fingerprints and identity ----------------------------------------- */

START_TEST(test_fingerprint_identity)
{
	const tdm_label l1[] = {{"a", "1"}, {"b", "2"}, {"c", "3"}};
	const tdm_label l2[] = {{"c", "3"}, {"a", "1"}, {"b", "2"}};
	const char p[] = "payload";
	tdm_event e1 = mkev(100, 5, l1, 3, p, 7);
	tdm_event e2 = mkev(100, 5, l2, 3, p, 7);
	uint8_t *r1 = encode(&e1, 1, NULL);
	uint8_t *r2 = encode(&e2, 999, NULL);
	ck_assert_uint_eq(rec_fingerprint(r1), rec_fingerprint(r2));
	ck_assert_int_eq(rec_same_event(r1, r2), 1);

	/* rec_set_seq changes the seq only: still sound, same identity. */
	uint64_t fp = rec_fingerprint(r1);
	rec_set_seq(r1, 31337);
	rec_view v;
	decode_ok(&v, r1, rec_size(&e1));
	ck_assert_uint_eq(v.seq, 31337);
	ck_assert_uint_eq(rec_fingerprint(r1), fp);
	ck_assert_int_eq(rec_same_event(r1, r2), 1);

	/* Any difference in ts, id, labels or payload is another event. */
	const tdm_label l3[] = {{"a", "1"}, {"b", "2"}, {"c", "4"}};
	const tdm_label l4[] = {{"a", "1"}, {"b", "2"}};
	const tdm_label l5[] = {{"a", "1"}, {"b", "2"}, {"d", "3"}};
	tdm_event others[] = {
		mkev(101, 5, l1, 3, p, 7), mkev(100, 6, l1, 3, p, 7),
		mkev(100, 5, l3, 3, p, 7), mkev(100, 5, l4, 2, p, 7),
		mkev(100, 5, l5, 3, p, 7), mkev(100, 5, l1, 3, p, 6),
		mkev(100, 5, l1, 3, "Payload", 7), mkev(100, 5, l1, 3, NULL, 0),
	};
	for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
		uint8_t *r = encode(&others[i], 1, NULL);
		ck_assert_msg(rec_fingerprint(r) != fp, "event %zu: same fingerprint", i);
		ck_assert_msg(!rec_same_event(r, r2), "event %zu: same event", i);
		ck_assert_msg(!rec_same_event(r2, r), "event %zu: same event", i);
		free(r);
	}
	free(r1);
	free(r2);
}
END_TEST

START_TEST(test_fingerprint_field_boundaries)
{
	/* The canonical form separates fields: moving a byte across a
	 * key/value or labels/payload boundary makes another event. */
	const tdm_label a[] = {{"ab", "c"}};
	const tdm_label b[] = {{"a", "bc"}};
	const tdm_label c[] = {{"a", "b"}};
	const tdm_label d[] = {{"a", "b"}, {"c", ""}};
	tdm_event evs[] = {
		mkev(1, 1, a, 1, NULL, 0), mkev(1, 1, b, 1, NULL, 0),
		mkev(1, 1, c, 1, "c", 1), mkev(1, 1, d, 2, NULL, 0),
		mkev(1, 1, c, 1, "c\0", 2),
	};
	size_t n = sizeof evs / sizeof evs[0];
	uint8_t *recs[8];
	for (size_t i = 0; i < n; i++)
		recs[i] = encode(&evs[i], i, NULL);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++) {
			if (i == j)
				continue;
			ck_assert_msg(rec_fingerprint(recs[i]) != rec_fingerprint(recs[j]),
			              "events %zu and %zu: same fingerprint", i, j);
			ck_assert_msg(!rec_same_event(recs[i], recs[j]),
			              "events %zu and %zu: same event", i, j);
		}
	for (size_t i = 0; i < n; i++)
		free(recs[i]);
}
END_TEST

/* ---- Read order -------------------------------------------------------- */

static int sign(int x)
{
	return (x > 0) - (x < 0);
}

static int order_of(const tdm_event *a, const tdm_event *b)
{
	uint8_t *ra = encode(a, 1, NULL), *rb = encode(b, 2, NULL);
	rec_view va, vb;
	decode_ok(&va, ra, rec_size(a));
	decode_ok(&vb, rb, rec_size(b));
	int c = rec_order(&va, &vb);
	free(ra);
	free(rb);
	return sign(c);
}

START_TEST(test_order_cases)
{
	const tdm_label a_empty[] = {{"a", ""}};
	const tdm_label a_x[] = {{"a", "x"}};
	const tdm_label a_x_b[] = {{"b", "y"}, {"a", "x"}};
	const tdm_label ab[] = {{"ab", ""}};
	const tdm_label hi[] = {{"a", "\xc3\xbc"}}; /* bytes >= 0x80 sort high */

	/* ts first, even against a smaller id, labels or payload. */
	tdm_event x = mkev(1, 9, a_x_b, 2, "zzz", 3);
	tdm_event y = mkev(2, 0, NULL, 0, NULL, 0);
	ck_assert_int_eq(order_of(&x, &y), -1);
	ck_assert_int_eq(order_of(&y, &x), 1);
	/* Large ts compare as numbers, not bytes. */
	x = mkev(0x100, 0, NULL, 0, NULL, 0);
	y = mkev(0xff, 0, NULL, 0, NULL, 0);
	ck_assert_int_eq(order_of(&x, &y), 1);
	/* Then id, unsigned. */
	x = mkev(5, 1, a_x_b, 2, "zzz", 3);
	y = mkev(5, 0x80000000u, NULL, 0, NULL, 0);
	ck_assert_int_eq(order_of(&x, &y), -1);
	/* Then labels' canonical bytes, a prefix first. */
	x = mkev(5, 1, NULL, 0, "z", 1);
	y = mkev(5, 1, a_empty, 1, NULL, 0);
	ck_assert_int_eq(order_of(&x, &y), -1);
	x = mkev(5, 1, a_empty, 1, "z", 1); /* "a\0\0" < "a\0x\0" */
	y = mkev(5, 1, a_x, 1, NULL, 0);
	ck_assert_int_eq(order_of(&x, &y), -1);
	x = mkev(5, 1, a_x, 1, "z", 1); /* "a\0x\0" < "a\0x\0b\0y\0" */
	y = mkev(5, 1, a_x_b, 2, NULL, 0);
	ck_assert_int_eq(order_of(&x, &y), -1);
	x = mkev(5, 1, a_x_b, 2, "z", 1); /* "a\0..." < "ab\0..." */
	y = mkev(5, 1, ab, 1, NULL, 0);
	ck_assert_int_eq(order_of(&x, &y), -1);
	x = mkev(5, 1, hi, 1, NULL, 0);
	y = mkev(5, 1, a_x, 1, "z", 1);
	ck_assert_int_eq(order_of(&x, &y), 1);
	/* Then payload bytes, a prefix first, unsigned. */
	x = mkev(5, 1, a_x, 1, "ab", 2);
	y = mkev(5, 1, a_x, 1, "abc", 3);
	ck_assert_int_eq(order_of(&x, &y), -1);
	x = mkev(5, 1, a_x, 1, "\x80", 1);
	y = mkev(5, 1, a_x, 1, "\x7f\xff", 2);
	ck_assert_int_eq(order_of(&x, &y), 1);
	x = mkev(5, 1, a_x, 1, NULL, 0);
	y = mkev(5, 1, a_x, 1, "\0", 1);
	ck_assert_int_eq(order_of(&x, &y), -1);
	/* Equal events compare equal whatever their seq. */
	x = mkev(5, 1, a_x_b, 2, "p", 1);
	ck_assert_int_eq(order_of(&x, &x), 0);
}
END_TEST

/* Random events from a small vocabulary (prefixes, multi-byte UTF-8) so
 * that every tie-break is exercised; rec_order must agree in sign with
 * the reference comparison of SPEC §4 in tests/support.c. */
static const char *const voc_keys[] = {"a", "ab", "b", "host", "\xc3\xa9"};
static const char *const voc_vals[] = {"", "x", "xy", "web-1", "web-10", "\xc3\xbc"};
static const char *const voc_payloads[] = {"", "a", "ab", "b", "\x80", "a\0b"};

static void random_event(tst_rng *r, tdm_event *ev, tdm_label *labels)
{
	size_t nk = sizeof voc_keys / sizeof voc_keys[0];
	size_t n = (size_t)tst_rng_range(r, 4);
	size_t used = 0;
	for (size_t i = 0; i < nk && used < n; i++) {
		if (!tst_rng_chance(r, 50))
			continue;
		labels[used].key = voc_keys[i];
		labels[used].value = voc_vals[tst_rng_range(r, sizeof voc_vals / sizeof voc_vals[0])];
		used++;
	}
	/* shuffle the input order */
	for (size_t i = used; i > 1; i--) {
		size_t j = (size_t)tst_rng_range(r, i);
		tdm_label t = labels[i - 1];
		labels[i - 1] = labels[j];
		labels[j] = t;
	}
	size_t pi = (size_t)tst_rng_range(r, sizeof voc_payloads / sizeof voc_payloads[0]);
	const char *p = voc_payloads[pi];
	size_t plen = pi == 5 ? 3 : strlen(p);
	*ev = mkev((int64_t)tst_rng_range(r, 3), (uint32_t)tst_rng_range(r, 2) * 0x80000001u,
	           labels, used, plen ? p : NULL, plen);
}

START_TEST(test_order_random_matches_reference)
{
	tst_rng r;
	tst_rng_seed(&r, 11);
	for (int i = 0; i < 20000; i++) {
		tdm_event a, b;
		tdm_label la[8], lb[8];
		random_event(&r, &a, la);
		random_event(&r, &b, lb);
		int want = sign(tst_event_cmp(&a, &b));
		int got = order_of(&a, &b);
		if (got != want) {
			char sa[256], sb[256];
			ck_abort_msg("rec_order(%s, %s) = %d, want %d",
			             tst_event_str(sa, sizeof sa, &a),
			             tst_event_str(sb, sizeof sb, &b), got, want);
		}
	}
}
END_TEST

static Suite *record_suite(void)
{
	Suite *s = suite_create("record");
	TCase *tc = tcase_create("codec");
	tcase_add_test(tc, test_roundtrip_sorted_labels);
	tcase_add_test(tc, test_roundtrip_empty);
	tcase_add_test(tc, test_roundtrip_binary_payload);
	tcase_add_test(tc, test_roundtrip_max_sizes);
	tcase_add_test(tc, test_limits_counts_and_lengths);
	suite_add_tcase(s, tc);

	tc = tcase_create("check");
	tcase_add_test(tc, test_check_rejections);
	suite_add_tcase(s, tc);

	tc = tcase_create("damage");
	tcase_add_test(tc, test_every_bit_flip_detected);
	tcase_add_test(tc, test_truncated_is_short);
	tcase_add_test(tc, test_bad_length_field);
	tcase_add_test(tc, test_bad_ts_field);
	suite_add_tcase(s, tc);

	tc = tcase_create("identity");
	tcase_add_test(tc, test_fingerprint_identity);
	tcase_add_test(tc, test_fingerprint_field_boundaries);
	suite_add_tcase(s, tc);

	tc = tcase_create("order");
	tcase_add_test(tc, test_order_cases);
	tcase_add_test(tc, test_order_random_matches_reference);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(record_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
