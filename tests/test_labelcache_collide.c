/*
 * test_labelcache_collide.c - the label cache (src/labelcache.c) built
 * with LCACHE_HASH_MASK=0, so that every pair has the same hash: pairs are
 * told apart by the exact compare alone.
 *
 *  - colliding pairs, short and long, of every kind the compare looks at
 *    (lengths, the key/value boundary, any one byte, the middle of a long
 *    label that its head and tail words miss), get different ids and are
 *    found again by their bytes from other buffers;
 *  - MAX_PROBES bounds the chain: past it, new pairs come checked but
 *    without an id, the next batch starts over with a new generation, and
 *    pairs are then kept again;
 *  - a bad label is still refused with rec_event_check's message.
 *
 * Built from labelcache.c, record.c, hash.c and error.c alone (meson.build),
 * not with the library, which holds the usual build of labelcache.c.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "labelcache.h"
#include "record.h"

#if LCACHE_HASH_MASK != 0
#error "build with -DLCACHE_HASH_MASK=0"
#endif

#define PROBES 32 /* labelcache.c's MAX_PROBES */

static rec_pair get_ok(lcache *c, const char *key, const char *value)
{
	rec_pair p;
	tdm_label l = {key, value};
	ck_assert_msg(lcache_get(&p, c, &l, 0) == 0, "%s=%s: %s", key, value,
	              tdm_error_message());
	size_t k = strlen(key), v = strlen(value);
	ck_assert_uint_eq(p.klen, k);
	ck_assert_uint_eq(p.len, k + v + 2);
	ck_assert_msg(memcmp(p.bytes, key, k + 1) == 0 &&
	              memcmp(p.bytes + k + 1, value, v + 1) == 0,
	              "%s=%s: wrong bytes", key, value);
	return p;
}

/* Labels that differ only where one part of the compare looks. */
static size_t tricky(char (*keys)[64], char (*values)[64])
{
	size_t n = 0;
	const char *kv[][2] = {
		{"a", "bc"}, {"ab", "c"}, {"abc", ""},         /* the boundary */
		{"host", "web-1"}, {"host", "web-2"}, {"host", "web-12"},
		{"hosu", "web-1"}, {"k", "1234567"}, {"k", "12345678"},
		{"k", "123456789"}, {"k", "1234567890123456"}, {"k", "1234567890123457"},
		{"k", "2234567890123456"}, {"k", "12345678901234567"},
		/* long: the same first and last eight bytes, another middle */
		{"k", "head-bytesMIDDLE1tail-end"}, {"k", "head-bytesMIDDLE2tail-end"},
		{"key-of-seventeen1", "v"}, {"key-of-seventeen2", "v"},
		{"key-of-seXenteen1", "v"}, {"\xc3\xa9t\xc3\xa9", "\xe2\x82\xac"},
	};
	for (; n < sizeof kv / sizeof kv[0]; n++) {
		snprintf(keys[n], 64, "%s", kv[n][0]);
		snprintf(values[n], 64, "%s", kv[n][1]);
	}
	return n;
}

START_TEST(test_collisions_told_apart)
{
	lcache *c;
	ck_assert_int_eq(lcache_new(&c), 0);
	lcache_batch(c);
	char keys[32][64], values[32][64];
	size_t n = tricky(keys, values);
	ck_assert_uint_le(n, PROBES);
	rec_pair p[32];
	for (size_t i = 0; i < n; i++) {
		p[i] = get_ok(c, keys[i], values[i]);
		ck_assert_uint_eq(p[i].id, i);
	}
	/* Found again from copies, every one with its own id. */
	for (size_t r = 0; r < 3; r++)
		for (size_t i = 0; i < n; i++) {
			char k[64], v[64];
			memcpy(k, keys[i], sizeof k);
			memcpy(v, values[i], sizeof v);
			rec_pair q = get_ok(c, k, v);
			ck_assert_uint_eq(q.id, p[i].id);
			ck_assert_ptr_eq(q.bytes, p[i].bytes);
		}
	lcache_batch(c);
	ck_assert_uint_eq(get_ok(c, keys[3], values[3]).id, 3);
	lcache_free(c);
}
END_TEST

START_TEST(test_probe_bound)
{
	lcache *c;
	ck_assert_int_eq(lcache_new(&c), 0);
	lcache_batch(c);
	uint64_t gen = lcache_gen(c);
	char v[32];
	for (unsigned i = 0; i < PROBES + 10; i++) {
		snprintf(v, sizeof v, "value-%u", i);
		rec_pair p = get_ok(c, "k", v);
		if (i < PROBES)
			ck_assert_uint_eq(p.id, i);
		else
			ck_assert_uint_eq(p.id, REC_NO_ID);
	}
	/* The chain's pairs are still found; the others are checked again. */
	for (unsigned i = 0; i < PROBES + 10; i++) {
		snprintf(v, sizeof v, "value-%u", i);
		ck_assert_uint_eq(get_ok(c, "k", v).id, i < PROBES ? i : REC_NO_ID);
	}
	tdm_label bad = {"k", "\xff"};
	rec_pair p;
	ck_assert_int_eq(lcache_get(&p, c, &bad, 2), TDM_EINVAL);
	ck_assert_str_eq(tdm_error_message(), "label 2 is not valid UTF-8");
	/* The next batch starts over. */
	lcache_batch(c);
	ck_assert_uint_ne(lcache_gen(c), gen);
	snprintf(v, sizeof v, "value-%u", PROBES + 5);
	ck_assert_uint_eq(get_ok(c, "k", v).id, 0);
	ck_assert_uint_eq(get_ok(c, "other", "pair").id, 1);
	ck_assert_uint_eq(get_ok(c, "k", v).id, 0);
	lcache_free(c);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("labelcache_collide");
	TCase *tc = tcase_create("collide");
	tcase_add_test(tc, test_collisions_told_apart);
	tcase_add_test(tc, test_probe_bound);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
