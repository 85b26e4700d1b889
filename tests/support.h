/*
 * support.h - small helpers shared by the unit tests.
 *
 * Temporary directories, a seeded random number generator, and owned copies
 * and canonical comparison of events (SPEC §2 and §4). Nothing here knows
 * the library's internals: only the public tidemark.h types.
 */
#ifndef TDM_TESTS_SUPPORT_H
#define TDM_TESTS_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "tidemark.h"

/* ---- Memory ------------------------------------------------------------ */

/* malloc and realloc that end the test when memory runs out. (Check's
 * ck_assert costs a write to a pipe per call: too slow for hot loops.) */
void *tst_malloc(size_t size);
void *tst_realloc(void *p, size_t size);

/* ---- Files ------------------------------------------------------------- */

/* Makes a fresh empty directory under $TMPDIR (or /tmp) and returns its
 * path, which the caller frees. Never NULL: aborts the test on failure. */
char *tst_tmpdir(void);

/* Removes `dir` and everything below it. Errors are ignored. */
void tst_rmtree(const char *dir);

/* ---- Random numbers ---------------------------------------------------- */

/* splitmix64: small, fast, and the same sequence on every machine. */
typedef struct tst_rng {
	uint64_t state;
} tst_rng;

void tst_rng_seed(tst_rng *r, uint64_t seed);
uint64_t tst_rng_next(tst_rng *r);
/* Uniform in [0, n); n must be > 0. */
uint64_t tst_rng_range(tst_rng *r, uint64_t n);
/* True with probability percent/100. */
int tst_rng_chance(tst_rng *r, unsigned percent);
/* Fills buf with n random bytes. */
void tst_rng_bytes(tst_rng *r, void *buf, size_t n);

/* ---- Events ------------------------------------------------------------ */

/* A deep copy of `ev` in one allocation (free it with tst_event_free):
 * labels sorted by key, strings and payload owned; seq copied. */
tdm_event *tst_event_dup(const tdm_event *ev);
void tst_event_free(tdm_event *ev);

/* Compares two events in SPEC §4 order: ts, id, the labels' canonical
 * encoding (pairs sorted by key, concatenated as key\0value\0..., compared
 * bytewise, a prefix first), then payload bytes (memcmp, shorter first).
 * Labels need not be sorted. seq is ignored. Returns <0, 0 or >0; 0 means
 * the same event (SPEC §2). */
int tst_event_cmp(const tdm_event *a, const tdm_event *b);

/* Writes a short readable description of `ev` into buf (always
 * terminated) and returns buf, for assertion messages. */
const char *tst_event_str(char *buf, size_t size, const tdm_event *ev);

#endif /* TDM_TESTS_SUPPORT_H */
