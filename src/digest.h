/* digest.h - replica digests, kept at append time.
 *
 * Each shard's time range is cut into DIGEST_LEAVES buckets (leaves) of
 * equal width, and a 16-ary tree sits over them: level 0 is the shard,
 * level 4 the leaves. Every node holds the count of the events below it and
 * the sum, modulo 2^64, of their fingerprints (rec_fingerprint: ts, id,
 * labels, payload) - an order-independent digest, so a replica that stored
 * an event on time and one that stored it late agree. A leaf also records
 * where in the shard's main and recon files its events lie (spans of
 * bytes), so that reading one leaf reads a few kilobytes even when the data
 * came out of order.
 *
 * KV_DIGEST: key = shard (BE64) | level (u8) | node (BE32);
 * value = varint count | sum (LE64) [| leaf spans]. docs/FORMAT.md has the
 * bytes. Like the rest of the index it is derived and rebuilt from files. */
#ifndef TDM_DIGEST_H
#define TDM_DIGEST_H

#include <stdint.h>

#include "kv.h"
#include "tidemark.h"

#define DIGEST_FANOUT TDM_DIGEST_FANOUT
#define DIGEST_LEAF_LEVEL TDM_DIGEST_LEAF_LEVEL
#define DIGEST_LEAVES (1u << (4 * DIGEST_LEAF_LEVEL))
/* Spans a leaf keeps per file; more are merged into fewer, longer ones. */
#define DIGEST_MAX_SPANS 24
/* A record this close after a span's end extends the span: reading a few
 * bytes more beats another read. */
#define DIGEST_SPAN_GAP 512u

enum { DIGEST_MAIN = 0, DIGEST_RECON = 1 };

typedef struct digest_span {
	uint64_t off, len;
} digest_span;

typedef struct digest_leaf {
	tdm_digest d;
	uint32_t n[2];
	digest_span span[2][DIGEST_MAX_SPANS];
} digest_leaf;

/* Width in ns of one leaf of a shard of `duration` ns. */
int64_t digest_leaf_width(int64_t duration);

/* The leaf of shard `shard` that holds `ts`. */
uint32_t digest_leaf_of(int64_t duration, int64_t shard, int64_t ts);

/* The times [*lo, *hi) a node covers. */
void digest_node_range(int64_t *lo, int64_t *hi, int64_t duration,
                       int64_t shard, unsigned level, uint32_t node);

/* 0 with the node's digest (zero when it has no events), or an error;
 * TDM_ECORRUPT when the row is malformed. */
int digest_get(tdm_digest *out, kv_txn *txn, int64_t shard, unsigned level,
               uint32_t node);
/* Same for a leaf, with its spans. */
/* The digests of the 16 children of node `parent` of `level` (zero for
 * an empty child), read with one cursor walk. */
int digest_children_get(tdm_digest out[DIGEST_FANOUT], kv_txn *txn, int64_t shard,
                        unsigned level, uint32_t parent);
int digest_leaf_get(digest_leaf *out, kv_txn *txn, int64_t shard,
                    uint32_t leaf);

/* Deletes a shard's digests. */
int digest_del_shard(kv_txn *txn, int64_t shard);

/* Changes to digests gathered over a batch (or a rebuild) and applied in
 * one go: each touched leaf and ancestor is read and written once. */
typedef struct digest_acc digest_acc;

int digest_acc_new(digest_acc **out);
void digest_acc_free(digest_acc *a);

/* Accounts one record of `kind` (DIGEST_MAIN or DIGEST_RECON) stored at
 * `off` with `len` bytes in leaf `leaf` of `shard`. */
int digest_acc_note(digest_acc *a, int64_t shard, uint32_t leaf, int kind,
                    uint64_t off, uint32_t len, uint64_t fp);

/* The spans of `kind` noted so far for a leaf (none when it has none). */
void digest_acc_spans(const digest_span **spans, uint32_t *n, const digest_acc *a,
                      int64_t shard, uint32_t leaf, int kind);

/* Adds what was noted to the stored digests and forgets it. */
int digest_acc_flush(digest_acc *a, kv_txn *txn);

/* Forgets what was noted (the batch was abandoned). */
void digest_acc_reset(digest_acc *a);

/* 1 when one of the leaf's spans of `kind` holds [off, off + len). */
int digest_leaf_covers(const digest_leaf *l, int kind, uint64_t off, uint32_t len);

/* Called for each row of a shard that differs from what was noted: `have`
 * is the stored digest and `want` the noted one; both NULL for a row that
 * cannot be decoded. */
typedef void (*digest_problem_fn)(void *ctx, unsigned level, uint32_t node,
                                  const tdm_digest *have, const tdm_digest *want);

/* Compares a shard's stored digests with those noted in `want` (from
 * reading its files), reporting each difference. */
int digest_check(kv_txn *txn, digest_acc *want, int64_t shard, digest_problem_fn fn,
                 void *ctx);

#endif
