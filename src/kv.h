/* kv.h - the key-value layer: the only user of LMDB.
 *
 * Tables: KV_SHARDS (per-shard committed state), KV_INDEX (sparse index
 * entries), KV_META (store-wide counters), KV_DIGEST (replica digests,
 * digest.h) and KV_LABELS (label bitmaps, labels.h). All of it is derived
 * from the shard files and can be rebuilt (recover.c). */
#ifndef TDM_KV_H
#define TDM_KV_H

#include <stddef.h>
#include <stdint.h>

typedef struct kv_env kv_env;
typedef struct kv_txn kv_txn;
typedef struct kv_cursor kv_cursor;

typedef enum kv_table {
	KV_SHARDS = 0,
	KV_INDEX,
	KV_META,
	KV_DIGEST,
	KV_LABELS, /* label bitmaps (labels.h) */
	KV_NTABLES
} kv_table;

typedef struct kv_val {
	const void *data;
	size_t len;
} kv_val;

/* Opens (creating when `create`) the environment in directory `path`.
 * `sync_commits`: each commit is durable (else kv_sync makes it so).
 * TDM_ENOTFOUND when missing; TDM_ECORRUPT when LMDB rejects the files. */
int kv_open(kv_env **out, const char *path, int create, int sync_commits);
void kv_close(kv_env *env);

/* Makes every commit so far durable; does nothing when kv_unsynced is 0. */
int kv_sync(kv_env *env);
/* 1 when a commit (or what the files held at open) may not be durable
 * yet; 0 right after a kv_sync or a synced commit that put something,
 * until the next write commit of an environment without sync_commits or
 * a failed commit. */
int kv_unsynced(const kv_env *env);

/* Bytes of the environment's files. */
uint64_t kv_disk_bytes(const kv_env *env);

/* Grows the map ahead of a write transaction when less than half is free,
 * so that a commit never meets a full map. No transaction may be open. */
int kv_reserve(kv_env *env);

int kv_begin(kv_txn **out, kv_env *env, int write);
int kv_commit(kv_txn *txn);
void kv_abort(kv_txn *txn);

/* 0 and `*val` (valid until the transaction ends), or TDM_ENOTFOUND. */
int kv_get(kv_val *val, kv_txn *txn, kv_table t, const void *key, size_t klen);
int kv_put(kv_txn *txn, kv_table t, const void *key, size_t klen,
           const void *val, size_t vlen);
/* Deletes every key that starts with `prefix`. */
int kv_del_prefix(kv_txn *txn, kv_table t, const void *prefix, size_t plen);
/* Empties a table. */
int kv_clear(kv_txn *txn, kv_table t);

int kv_cursor_open(kv_cursor **out, kv_txn *txn, kv_table t);
void kv_cursor_close(kv_cursor *c);

typedef enum kv_op {
	KV_FIRST,
	KV_NEXT,
	KV_PREV,
	KV_LAST,
	KV_SEEK, /* first key >= the one given */
	KV_SET   /* exactly the key given */
} kv_op;

/* Moves the cursor; 0 with key and value, or TDM_ENOTFOUND. For KV_SEEK
 * and KV_SET `key` holds the key sought on input. */
int kv_cursor_get(kv_cursor *c, kv_val *key, kv_val *val, kv_op op);

/* kv_put through a cursor of a write transaction, which is left on the
 * key. Rows put in key order through one cursor cost a search within the
 * cursor's page each (LMDB looks there first), not one from the root. */
int kv_cursor_put(kv_cursor *c, const void *key, size_t klen, const void *val,
                  size_t vlen);

#endif
