/* index.h - per-shard committed state and the sparse time index.
 *
 * The main file of a shard is cut into blocks of about `index_interval`
 * bytes. Each block has one entry in KV_INDEX:
 *   key   = shard (BE64) | running max ts before the block + 1 (BE64) | offset (BE64)
 *   value = min ts of the records in the block (LE64)
 * The running max never falls, so keys are monotonic in offset even when
 * records are out of order (Kafka's time index). The first block's key is
 * the running max of nothing, -1. The last (open) block's entry holds
 * INT64_MAX: its min lives in the shard's state until the block closes. */
#ifndef TDM_INDEX_H
#define TDM_INDEX_H

#include <stdint.h>

#include "kv.h"

/* What is committed of one shard (KV_SHARDS, key shard BE64). */
typedef struct shard_meta {
	int64_t shard;
	uint64_t main_len;    /* bytes of the main file committed, header included */
	uint64_t recon_len;   /* same for the recon file; 0 when it has none */
	uint64_t main_count, recon_count;
	int64_t max_ts;       /* running max of the main file; -1 when empty */
	int64_t recon_max_ts; /* largest ts in the recon file; -1 when empty */
	int64_t min_ts;       /* smallest ts in main and recon; INT64_MAX if none */
	uint64_t max_seq;     /* largest seq in the shard */
	uint64_t block_off;   /* where the open block starts */
	int64_t block_key;    /* running max before it */
	int64_t block_min;    /* min ts in it; INT64_MAX while empty */
	uint64_t index_entries;
	uint64_t seal_gen;    /* 0: main file; else the sealed file's generation */
	uint64_t sealed_raw;  /* record bytes in the sealed file, uncompressed */
	/* The label bitmaps hold the records before these offsets (record
	 * boundaries, at most the lengths above); those after them are in the
	 * newest chunk, whose bitmaps the writer keeps in memory (labels.h). */
	uint64_t labels_main_end, labels_recon_end;
} shard_meta;

/* A shard with no records yet. */
void index_meta_init(shard_meta *m, int64_t shard);

/* 0, TDM_ENOTFOUND, or an error; TDM_ECORRUPT if the row is malformed. */
int index_meta_get(shard_meta *out, kv_txn *txn, int64_t shard);
int index_meta_put(kv_txn *txn, const shard_meta *m);
int index_meta_del(kv_txn *txn, int64_t shard);

/* Calls fn for each committed shard with lo <= shard <= hi, in order. */
int index_meta_each(kv_txn *txn, int64_t lo, int64_t hi,
                    int (*fn)(void *ctx, const shard_meta *m), void *ctx);

/* An index entry: the block at `off`, the running max before it, and the
 * min ts of its records (INT64_MAX while the block is open). */
typedef struct index_entry {
	int64_t key;
	uint64_t off;
	int64_t min;
} index_entry;

/* Where index_note_main puts entries: index_put_txn writes them to a
 * kv_txn (ctx); verify collects them instead. */
typedef int (*index_put_fn)(void *ctx, int64_t shard, const index_entry *e);
int index_put_txn(void *txn, int64_t shard, const index_entry *e);

/* Accounts a main-file record of `len` bytes at `off`: opens a new block
 * (putting the closed block's entry with its min) when the current one is
 * full. */
int index_note_main(shard_meta *m, uint64_t off, uint32_t len, int64_t ts,
                    uint32_t interval, index_put_fn put, void *ctx);

/* Accounts a recon record. */
void index_note_recon(shard_meta *m, uint64_t off, uint32_t len, int64_t ts);

/* Walks the blocks of a shard's main file that may hold records with
 * from <= ts < to, in file order. */
typedef struct index_walk {
	kv_cursor *cur;
	const shard_meta *meta;
	uint64_t end;    /* main-file bytes to consider */
	int64_t from, to, grace;
	int started, done;
	/* the next block: */
	int64_t key;     /* running max before it */
	uint64_t off;
	int64_t min;
} index_walk;

int index_walk_open(index_walk *w, kv_txn *txn, const shard_meta *m,
                    uint64_t end, int64_t from, int64_t to, int64_t grace);
void index_walk_close(index_walk *w);

/* 0 with the next run of adjacent blocks to read as [*start, *stop) and
 * the running max before it in `*key`; 1 when no later block can hold
 * ts < to. Blocks whose records all lie at or after `to` are skipped. */
int index_walk_next(index_walk *w, uint64_t *start, uint64_t *stop,
                    int64_t *key);

/* Every block a walk of [from, to) visits, skipped ones included, in file
 * order, each with the min ts of its records (the open block's from the
 * shard's state): `*out` is the caller's to free, `*n` its length. A reader
 * uses the mins to know that no unread record is older than the smallest
 * min still ahead. */
int index_walk_blocks(index_entry **out, size_t *n, kv_txn *txn,
                      const shard_meta *m, uint64_t end, int64_t from,
                      int64_t to, int64_t grace);

/* The same, and in `*stop` where the last block it visits ends. */
int index_walk_blocks_to(index_entry **out, size_t *n, uint64_t *stop,
                         kv_txn *txn, const shard_meta *m, uint64_t end,
                         int64_t from, int64_t to, int64_t grace);

/* Calls fn for each entry of a shard in order. */
int index_entries_each(kv_txn *txn, int64_t shard,
                       int (*fn)(void *ctx, const index_entry *e), void *ctx);

/* Deletes a shard's entries and its label bitmaps (labels.h). */
int index_entries_del(kv_txn *txn, int64_t shard);

#endif
