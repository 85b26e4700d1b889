/*
 * support.h - small helpers shared by the unit tests.
 *
 * Temporary directories, a seeded random number generator, owned copies
 * and canonical comparison of events (SPEC §2 and §4), and stores made,
 * opened, read and verified through the public API. Nothing here knows
 * the library's internals: only the public tidemark.h types.
 */
#ifndef TDM_TESTS_SUPPORT_H
#define TDM_TESTS_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/* The size of the file at `path`; fails the test if it cannot be stat'ed. */
off_t tst_file_size(const char *path);

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

/* ---- Stores ------------------------------------------------------------ */

/* Makes a store in a fresh tst_tmpdir with the given options (0 leaves an
 * option at its TDM_OPTIONS_INIT default) and returns the directory, which
 * tst_tmpdir_drop removes. Fails the test if the store cannot be made. */
char *tst_store_new(int64_t shard_ns, int64_t grace_ns, uint32_t interval);

/* Opens the store at `dir` with open flags (TDM_OPEN_READONLY or 0) and an
 * enum tdm_durability. Fails the test unless that succeeds. */
tdm_store *tst_store_open(const char *dir, unsigned flags, int durability);

/* Removes a directory from tst_tmpdir or tst_store_new and frees `dir`. */
void tst_tmpdir_drop(char *dir);

/* Fails the test unless tdm_verify runs and finds no problems; the message
 * names the first one. */
void tst_verify_clean(tdm_store *s);

/* ---- Event lists ------------------------------------------------------- */

/* A growable list of owned event copies (tst_event_dup). Start from
 * {0}; free with tst_evlist_free. */
typedef struct tst_evlist {
	tdm_event **a;
	size_t n, cap;
} tst_evlist;

/* Appends a copy of `ev`. */
void tst_evlist_add(tst_evlist *l, const tdm_event *ev);
/* Frees the copies and the array and leaves the list empty. */
void tst_evlist_free(tst_evlist *l);

/* Reads [from, to) of `s` with read options `ro` (may be NULL) and appends
 * the events, in read order, to `out`. Fails the test if the read fails or
 * reports damage. */
void tst_read_into(tst_evlist *out, tdm_store *s, int64_t from, int64_t to,
                   const tdm_read_options *ro);

/* The events of [from, to), in read order, as a new list (see above). */
tst_evlist tst_read_all(tdm_store *s, int64_t from, int64_t to);

#endif /* TDM_TESTS_SUPPORT_H */
