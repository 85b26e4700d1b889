/* hash.h - the one wrapper around xxHash: checksums and fingerprints. */
#ifndef TDM_HASH_H
#define TDM_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t tdm_hash64(const void *data, size_t len, uint64_t seed);

#endif
