/* labels.h - the label bitmap index (KV_LABELS): per shard, per file, per
 * 1 MiB chunk of the file, one CRoaring bitmap per label pair holding the
 * low 20 bits of the byte offsets of the records that carry the pair.
 *
 *   key   = shard (BE64) | kind (u8: 1 main, 2 recon) | chunk (BE64, offset >> 20)
 *           | key NUL value NUL
 *   value = checksum (LE64: XXH3-64 of the bitmap bytes, seeded with
 *           XXH3-64 of the key) | roaring portable serialization
 *
 * Chunk-major keys keep a batch's updates on a few adjacent LMDB pages; the
 * offset is what a selective read needs to fetch a record directly. Like the
 * sparse index, all of it is derived from the shard files (docs/FORMAT.md). */
#ifndef TDM_LABELS_H
#define TDM_LABELS_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "record.h"
#include "shard.h"
#include "tidemark.h"

#define LBL_CHUNK_BITS 20

/* Bitmaps being built or extended, for one shard. */
typedef struct lbl_acc lbl_acc;

int lbl_acc_new(lbl_acc **out, int64_t shard);
void lbl_acc_free(lbl_acc *a);

/* Loads the stored bitmaps of the chunk that holds offset `end` of file
 * `kind`, so that records appended from `end` on extend them.
 * TDM_ECORRUPT when one of them is not sound. */
int lbl_acc_load(lbl_acc *a, kv_txn *txn, shard_kind kind, uint64_t end);

/* Accounts the record at `off` of file `kind` with its canonical label
 * bytes. */
int lbl_acc_add(lbl_acc *a, shard_kind kind, uint64_t off,
                const uint8_t *labels, uint32_t labels_len);

/* lbl_acc_add of the record at `off` whose labels are the pairs `p`
 * (sorted), with pair ids of generation `gen` of the writer's label cache
 * (labelcache.h; REC_NO_ID: none). */
int lbl_acc_add_pairs(lbl_acc *a, shard_kind kind, uint64_t off, const rec_pair *p,
                      size_t n, uint64_t gen);

/* Puts every bitmap changed since the last flush, then forgets those of
 * chunks that end at or before `main_end` / `recon_end` (no later record
 * can land in them). With `keep_newest`, the bitmaps of the chunk that
 * holds a file's end stay in memory, unput, to be extended by the next
 * batches (rewriting them every batch costs more than the batch: labels.c,
 * L3). `covered` (NULL: not wanted) gets each file's labels end: below it
 * the stored bitmaps hold every labelled record; main, then recon. */
int lbl_acc_flush(lbl_acc *a, kv_txn *txn, uint64_t main_end, uint64_t recon_end,
                  int keep_newest, uint64_t covered[2]);

/* Deletes every bitmap of a shard. */
int lbl_del(kv_txn *txn, int64_t shard);

/* Offsets of the records of file `kind` in [lo, hi) that a selector may
 * match (OR of groups, AND within a group), chunk by chunk. Returns 0, or 1
 * (and no `*out`) as soon as there are more than `max_cand` (when not 0),
 * or an error: TDM_ECORRUPT for an unsound bitmap. */
typedef struct lbl_cand lbl_cand;
int lbl_select(lbl_cand **out, kv_txn *txn, int64_t shard, shard_kind kind,
               uint64_t lo, uint64_t hi, const tdm_selector *where,
               size_t n_where, uint64_t max_cand);
void lbl_cand_free(lbl_cand *c);
/* The next candidate at or after `pos` (not consumed): 0 and `*off`, or 1
 * when there is none. */
int lbl_cand_peek(lbl_cand *c, uint64_t pos, uint64_t *off);
/* The `k`-th candidate after the one peek returned, within the same chunk:
 * 0 and `*off`, or 1. For reading nearby candidates with one pread. */
int lbl_cand_ahead(const lbl_cand *c, size_t k, uint64_t *off);
/* Candidates in all. */
uint64_t lbl_cand_count(const lbl_cand *c);

/* Per label pair, the number of records of the shard (both files) carrying
 * it: calls fn with "key\0value\0" bytes and the count, in key order of the
 * stored bitmaps (a pair may come once per chunk). TDM_ECORRUPT when a
 * bitmap is not sound. */
int lbl_count(kv_txn *txn, int64_t shard,
              int (*fn)(void *ctx, const uint8_t *pair, size_t len, uint64_t n),
              void *ctx);

/* Compares the stored bitmaps of a shard with `expected` (an accumulator
 * fed every sound record of its files): calls `report` for each bitmap
 * that is unsound, different, missing or extra. */
int lbl_verify(kv_txn *txn, int64_t shard, lbl_acc *expected,
               void (*report)(void *ctx, shard_kind kind, uint64_t chunk,
                              const char *what),
               void *ctx);

/* Does the label pair "key\0value\0" satisfy match `m`? */
int lbl_pair_matches(const tdm_match *m, const uint8_t *pair, size_t len);

#endif
