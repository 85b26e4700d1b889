/*
 * test_hash.c - tdm_hash64 (src/hash.c): checksums and fingerprints on
 * disk depend on it, so it must be deterministic and stay XXH3-64.
 */
#include "support.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

START_TEST(test_deterministic)
{
	tst_rng r;
	tst_rng_seed(&r, 1);
	uint8_t buf[300], copy[300];
	for (size_t len = 0; len <= sizeof buf; len += 13) {
		tst_rng_bytes(&r, buf, len);
		memcpy(copy, buf, len);
		uint64_t seed = tst_rng_next(&r);
		ck_assert_uint_eq(tdm_hash64(buf, len, seed), tdm_hash64(copy, len, seed));
	}
}
END_TEST

START_TEST(test_known_value)
{
	/* XXH3-64 of empty input, seed 0 (xxHash's own sanity value): files
	 * written by one build must verify under another. */
	ck_assert_uint_eq(tdm_hash64("", 0, 0), 0x2D06800538D394C2ull);
}
END_TEST

START_TEST(test_seed_and_input_matter)
{
	const char *s = "tidemark";
	uint64_t h = tdm_hash64(s, strlen(s), 0);
	ck_assert_uint_ne(h, tdm_hash64(s, strlen(s), 1));
	ck_assert_uint_ne(h, tdm_hash64(s, strlen(s) - 1, 0));
	ck_assert_uint_ne(h, tdm_hash64("tidemarK", strlen(s), 0));
	ck_assert_uint_ne(tdm_hash64("", 0, 0), tdm_hash64("", 0, 1));
	/* Every single-bit change of a short input changes the hash. */
	uint8_t buf[16];
	memcpy(buf, "0123456789abcdef", sizeof buf);
	uint64_t base = tdm_hash64(buf, sizeof buf, 7);
	for (size_t bit = 0; bit < sizeof buf * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ck_assert_uint_ne(tdm_hash64(buf, sizeof buf, 7), base);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
}
END_TEST

static Suite *hash_suite(void)
{
	Suite *s = suite_create("hash");
	TCase *tc = tcase_create("hash64");
	tcase_add_test(tc, test_deterministic);
	tcase_add_test(tc, test_known_value);
	tcase_add_test(tc, test_seed_and_input_matter);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hash_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
