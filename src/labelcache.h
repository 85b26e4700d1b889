/* labelcache.h - the label pairs a writer has checked, remembered across
 * events and batches. Agents and applications repeat the same few pairs
 * (host, level, service...): each distinct pair is checked (limits,
 * UTF-8) and encoded once, and gets a small id by which the label bitmap
 * accumulator finds its entry without hashing the pair again.
 *
 * A label is found by its bytes: a hash of them, then an exact compare
 * with the stored pair; by the caller's pointers only within one batch
 * (lcache_get_all), never across batches, when they may hold other text.
 *
 * Bounded: at most LCACHE_PAIRS pairs and LCACHE_BYTES bytes. Past that,
 * new pairs of the batch are checked and kept only until the next batch
 * (without an id), and the next batch starts with an empty cache and a new
 * generation: ids are only meaningful with their generation. */
#ifndef TDM_LABELCACHE_H
#define TDM_LABELCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "tidemark.h"

#define LCACHE_PAIRS 4096u
#define LCACHE_BYTES (1u << 20)

typedef struct lcache lcache;

int lcache_new(lcache **out);
void lcache_free(lcache *c);

/* Starts a batch. Pairs handed out before are invalid from here on. */
void lcache_batch(lcache *c);

/* Changes whenever ids are reused. */
uint64_t lcache_gen(const lcache *c);

/* The canonical pair of label `l` (label `i` of its event, for messages):
 * `*out` points into the cache, valid until the next lcache_batch. 0, or
 * TDM_EINVAL with rec_event_check's message, or TDM_ENOMEM. */
int lcache_get(rec_pair *out, lcache *c, const tdm_label *l, size_t i);

/* lcache_get of an event's `n` labels into out[0..n-1], in one call. */
int lcache_get_all(rec_pair *out, lcache *c, const tdm_label *l, size_t n);

/* 1 when this batch looks labels up by pointer first (for tests). */
int lcache_memo_in_use(const lcache *c);

#endif
