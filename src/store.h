/* store.h - the store handle shared by the modules above the index. */
#ifndef TDM_STORE_H
#define TDM_STORE_H

#include <stdint.h>

#include "index.h"
#include "kv.h"
#include "shard.h"
#include "tidemark.h"

#define STORE_FILE "STORE"
#define LOCK_FILE "LOCK"
#define UNSYNCED_FILE "UNSYNCED"
#define SHARDS_DIR "shards"
#define INDEX_DIR "index"

struct writer;

struct tdm_store {
	char *dir;
	tdm_options opts;
	tdm_open_options oo;
	int lock_fd;       /* -1 for a reader */
	kv_env *kv;
	int failed;        /* sticky: an earlier write failed */
	struct writer *w;  /* NULL for a reader */
	unsigned open_iters;
};

/* `dir`/`rel` into out; TDM_EINVAL if it does not fit. */
int store_path(char *out, size_t cap, const tdm_store *s, const char *rel);

/* The identity shard file headers must carry. */
shard_id store_shard_id(const tdm_store *s, int64_t shard);

/* Starts a scan of a shard file that treats records outside the shard's
 * time range as unsound. */
void store_scan_init(shard_scan *sc, const tdm_store *s, int64_t shard, int fd,
                     const char *name, uint64_t start, uint64_t end,
                     size_t first_chunk);

/* Creates, validates and loads the store header file. */
int store_create(const char *dir, const tdm_options *opts);
int store_open(tdm_store **out, const char *dir, const tdm_open_options *oo);
int store_close(tdm_store *s);

/* Recovery (recover.c): make the index agree with the shard files.
 * `rebuild`: start from an empty index. */
int recover_store(tdm_store *s, int rebuild);

/* 1 when recovery has work to do (an index never built, or a shard file
 * whose size is not its committed length), 0 when not, or an error. A
 * writer at work also makes it 1: its batch in flight lies past the
 * committed lengths. */
int recover_needed(tdm_store *s);

/* Rebuilds the label bitmaps of one shard from its files, up to the
 * committed lengths in `m` (recover.c): for a writer that found one of them
 * unsound. */
int recover_shard_labels(tdm_store *s, kv_txn *txn, const shard_meta *m);

/* Writer (writer.c). */
int writer_open(struct writer **out, tdm_store *s);
int writer_append(tdm_append_result *res, uint8_t *outcomes, tdm_store *s,
                  const tdm_event *events, size_t n);
int writer_sync(tdm_store *s);
void writer_close(struct writer *w);

/* KV_META keys. */
#define META_NEXT_SEQ "next_seq"
#define META_BUILT "built" /* present once the index was built from the files */
/* Present once every shard has its label bitmaps: an index built before
 * they existed lacks it and is rebuilt. */
#define META_LABELS "labels"
int store_next_seq_get(uint64_t *out, kv_txn *txn);
int store_next_seq_put(kv_txn *txn, uint64_t next);

#endif
