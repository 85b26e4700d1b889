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
struct shard_meta;

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

/* Removes a shard file (`gen`: of a sealed one); one already gone is fine. */
int store_remove_shard_file(tdm_store *s, int64_t shard, shard_kind kind, uint64_t gen);

/* The identity shard file headers must carry. */
shard_id store_shard_id(const tdm_store *s, int64_t shard);

/* Opens the main or recon file of a shard for reading (`name` gets its
 * name): shard_file_open's results, SHARD_BAD_HEADER with the file open. */
int store_shard_open_read(int *fd, uint64_t *size, char *name, size_t cap,
                          const tdm_store *s, int64_t shard, shard_kind kind);

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

/* Indexes one shard anew from its files, inside `txn`: its index entries
 * and state (and every other per-shard derived table) are replaced by what
 * the files say. `m->shard` and `m->seal_gen` say which files; the rest of
 * `*m` is overwritten with the new state. `recon_gen` is the generation
 * the recon file's header names. Used by recovery and by sealing. */
int recover_index_shard(tdm_store *s, kv_txn *txn, struct shard_meta *m,
                        int has_recon, uint64_t recon_gen);

/* 1 when recovery has work to do (an index never built, or a shard file
 * whose size is not its committed length), 0 when not, or an error. A
 * writer at work also makes it 1: its batch in flight lies past the
 * committed lengths. */
int recover_needed(tdm_store *s);

/* Rebuilds the label bitmaps of one shard from its files, up to the
 * committed lengths in `m`, and moves m's labels' ends to them (recover.c):
 * for a writer that found one of them unsound. */
int recover_shard_labels(tdm_store *s, kv_txn *txn, struct shard_meta *m);

/* Writer (writer.c). */
int writer_open(struct writer **out, tdm_store *s);
/* Checks every event (as rec_event_check; TDM_EINVAL naming the event,
 * nothing written, the store goes on), then appends the batch. */
int writer_append(tdm_append_result *res, uint8_t *outcomes, tdm_store *s,
                  const tdm_event *events, size_t n);
/* Syncs files and index; the label bitmaps of the newest chunks are put
 * first, so that a synced store answers selective reads from bitmaps alone. */
int writer_sync(tdm_store *s);
/* Puts those bitmaps without a sync (labels.c, L3). */
int writer_put_labels(tdm_store *s);
void writer_close(struct writer *w);
/* Drops the cached state of a shard (its files were replaced or removed);
 * it is loaded again from the index when next touched. Only between
 * batches, after a sync. */
void writer_forget(struct writer *w, int64_t shard);

/* Sealing (seal.c) and retention (retain.c); both need the writer. */
int seal_store(tdm_compact_result *res, tdm_store *s);
int retain_store(uint64_t *dropped, tdm_store *s, int64_t before);
/* Every shard's state, and the largest ts of all main files (-1 if none).
 * `*out` is the caller's to free. */
int seal_list_shards(struct shard_meta **out, size_t *n, int64_t *newest,
                     tdm_store *s);
/* 1 when no event for `shard` can be on time any more: its end plus grace
 * is at or below `newest`. */
int seal_shard_closed(const tdm_store *s, int64_t shard, int64_t newest);
/* Removes a dropped shard's files: the data file renamed to .dropped and
 * the directory synced first, then the rest. Missing files are fine. */
int retain_drop_files(tdm_store *s, int64_t shard, uint64_t seal_gen);

/* KV_META keys. */
#define META_NEXT_SEQ "next_seq"
/* Present once the index was built from the files. Its name changes with
 * what the index holds (v2: replica digests), so that an older index is
 * rebuilt on open. */
#define META_BUILT "built.v2"
/* Present once every shard has its label bitmaps: an index built before
 * they existed lacks it and is rebuilt. */
#define META_LABELS "labels"
int store_next_seq_get(uint64_t *out, kv_txn *txn);
int store_next_seq_put(kv_txn *txn, uint64_t next);

#endif
