/* hash.c - xxHash behind one function, so the choice lives in one place. */
#include <xxhash.h>

#include "hash.h"

uint64_t tdm_hash64(const void *data, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(data, len, seed);
}
