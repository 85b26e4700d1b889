/*
 * tidemark.h - the public interface of libtidemark.
 *
 * A store is one directory of time-ranged shard files plus a derived LMDB
 * index. Events carry a timestamp (ns since the Unix epoch), a 32-bit id,
 * labels and an opaque payload; see SPEC §2 and docs/DESIGN.md.
 *
 * Conventions (as in LMDB and libgit2):
 * - Every function returns 0 on success or a negative TDM_E* code; the
 *   thread's last error message (tdm_error_message) says what and where.
 * - Out-parameters come first. What a function hands out through `**out`
 *   belongs to the caller, who frees it with the matching close/free
 *   function. A pointer returned directly is borrowed: the comment says
 *   until when it stays valid.
 * - The library never prints and never exits.
 */
#ifndef TIDEMARK_H
#define TIDEMARK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TDM_BUILDING_LIBRARY) && defined(__GNUC__)
#define TDM_EXPORT __attribute__((visibility("default")))
#else
#define TDM_EXPORT
#endif

/* ---- Error codes ------------------------------------------------------ */

enum {
	TDM_OK = 0,
	TDM_ERROR = -1,     /* anything not listed below; see the message */
	TDM_EINVAL = -2,    /* bad argument or bad event (input data) */
	TDM_EIO = -3,       /* a system call on a file failed */
	TDM_ECORRUPT = -4,  /* a file's bytes are not what tidemark wrote */
	TDM_ELOCKED = -5,   /* another process holds the writer lock */
	TDM_EMISMATCH = -6, /* options differ from those the store was made with */
	TDM_ENOTFOUND = -7, /* no store in that directory */
	TDM_EEXIST = -8,    /* something that is not a store is in the way */
	TDM_EFAILED = -9,   /* an earlier write failed; reopen the store */
	TDM_ENOMEM = -10,   /* out of memory */
	TDM_EREADONLY = -11,/* a write on a store opened read-only */
	TDM_ITEROVER = -12  /* no more events: the normal end of an iteration */
};

/* The message for the last error on this thread: what failed and where
 * (file, offset). Borrowed; valid until the next tidemark call on this
 * thread. Never NULL. */
TDM_EXPORT const char *tdm_error_message(void);

/* A short fixed description of an error code. Static storage. */
TDM_EXPORT const char *tdm_strerror(int code);

/* ---- Limits ------------------------------------------------------------ */

#define TDM_MAX_PAYLOAD (16u * 1024 * 1024) /* bytes */
#define TDM_MAX_LABELS 64                   /* pairs per event */
#define TDM_MAX_LABEL_KEY 256               /* bytes, at least 1 */
#define TDM_MAX_LABEL_VALUE 4096            /* bytes */
#define TDM_MAX_LABELS_BYTES 65535          /* canonical encoding, bytes */

/* ---- Events ------------------------------------------------------------ */

/* A label: key and value are NUL-terminated UTF-8, so neither may contain
 * a NUL byte. Keys are non-empty and unique within an event. */
typedef struct tdm_label {
	const char *key;
	const char *value;
} tdm_label;

/* One event. On input the caller owns every pointer; `seq` is ignored.
 * On output (tdm_iter_next) every pointer is borrowed from the iterator.
 * Labels need not be sorted on input; on output they are sorted by key. */
typedef struct tdm_event {
	int64_t ts;          /* ns since the Unix epoch, UTC, 0 .. INT64_MAX-1 */
	uint32_t id;
	uint64_t seq;        /* store-wide commit order; output only */
	const tdm_label *labels;
	size_t n_labels;
	const void *payload;
	size_t payload_len;  /* <= TDM_MAX_PAYLOAD */
} tdm_event;

/* Checks one event against the data model and the limits above.
 * Returns 0, or TDM_EINVAL with a message naming the field at fault. */
TDM_EXPORT int tdm_event_check(const tdm_event *ev);

/* An id derived from the event's ts, labels and payload (its `id` field is
 * ignored), for producers that have none: a retried event then gets the same
 * id and is stored once. Two identical lines that really happened twice need
 * ids of their own. */
TDM_EXPORT uint32_t tdm_event_content_id(const tdm_event *ev);

/* ---- Opening and closing ---------------------------------------------- */

typedef struct tdm_store tdm_store;

enum tdm_durability {
	TDM_DURABILITY_NONE = 0,     /* never sync: the OS writes back */
	TDM_DURABILITY_INTERVAL = 1, /* sync every sync_interval_ms or
	                                sync_interval_events, whichever first */
	TDM_DURABILITY_BATCH = 2     /* tdm_append returns after data and index
	                                are on stable storage */
};

#define TDM_OPTIONS_VERSION 1
/* Store options, fixed at creation. TDM_OPTIONS_INIT holds the defaults. */
typedef struct tdm_options {
	unsigned version;          /* TDM_OPTIONS_VERSION */
	int64_t shard_duration_ns; /* > 0; default 1 h */
	int64_t grace_ns;          /* >= 0; default 60 s */
	uint32_t index_interval;   /* 256 B .. 64 MiB; default 4096 bytes */
	int64_t keep_ns;           /* >= 0; 0 keeps everything. Else the writer
	                              drops whole shards older than the newest
	                              event minus keep_ns (see tdm_retain) */
} tdm_options;
#define TDM_OPTIONS_INIT {TDM_OPTIONS_VERSION, 3600000000000ll, 60000000000ll, 4096u, 0}

/* Flags for tdm_store_open. */
#define TDM_OPEN_READONLY 0x1u /* a reader: no writer lock, no appends */

#define TDM_OPEN_OPTIONS_VERSION 1
typedef struct tdm_open_options {
	unsigned version;              /* TDM_OPEN_OPTIONS_VERSION */
	unsigned flags;                /* TDM_OPEN_* */
	int durability;                /* enum tdm_durability; default INTERVAL */
	uint32_t sync_interval_ms;     /* 100 */
	uint32_t sync_interval_events; /* 1000 */
} tdm_open_options;
#define TDM_OPEN_OPTIONS_INIT {TDM_OPEN_OPTIONS_VERSION, 0, TDM_DURABILITY_INTERVAL, 0, 0}

/* Creates a store in `dir` (made if missing, or empty) and closes it.
 * If `dir` already holds a store made with the same options this is a no-op
 * returning 0; with other options, TDM_EMISMATCH. `opts` may be NULL for the
 * defaults. Errors: TDM_EINVAL (bad options), TDM_EEXIST (dir is not empty
 * and holds no store), TDM_EMISMATCH, TDM_EIO. */
TDM_EXPORT int tdm_store_create(const char *dir, const tdm_options *opts);

/* Opens the store in `dir`. `*out` is the caller's; close it with
 * tdm_store_close. `oo` may be NULL (a writer, interval durability).
 * A writer takes the store's writer lock and repairs what a crash left
 * (torn tails, an index behind the files); a reader takes no lock, and
 * repairs only when no writer holds the lock.
 * Errors: TDM_ENOTFOUND, TDM_ELOCKED (the message names the holder's pid),
 * TDM_ECORRUPT, TDM_EIO, TDM_EINVAL. */
TDM_EXPORT int tdm_store_open(tdm_store **out, const char *dir,
                              const tdm_open_options *oo);

/* The options the store was created with. */
TDM_EXPORT void tdm_store_options(tdm_options *out, const tdm_store *s);

/* Syncs what durability asks for, releases the lock and frees the store.
 * Iterators must be closed first. Returns the first error met while syncing;
 * the store is freed either way. NULL is a no-op. */
TDM_EXPORT int tdm_store_close(tdm_store *s);

/* ---- Appending --------------------------------------------------------- */

/* What happened to one event of a batch. */
enum tdm_outcome {
	TDM_STORED = 0,    /* on time: written to its shard's main file */
	TDM_STORED_LATE = 1,/* older than its shard's watermark minus grace:
	                       written to the shard's reconciliation file */
	TDM_DUPLICATE = 2  /* already stored (or earlier in this batch) */
};

typedef struct tdm_append_result {
	uint64_t appended;   /* stored, on time or late */
	uint64_t late;       /* of those, stored late */
	uint64_t duplicates; /* not stored: already there */
} tdm_append_result;

/* Appends a batch of `n` events as one commit: a reader sees all of it or
 * none. Each event is judged on its own: on time, late or duplicate.
 * `outcomes` may be NULL, or have room for `n` entries (enum tdm_outcome).
 * Every event is checked first; if one is bad, nothing is written and
 * TDM_EINVAL names its index in the batch. An I/O failure returns TDM_EIO
 * and leaves the store failed: later appends return TDM_EFAILED until it is
 * reopened; nothing committed before is lost.
 * Errors: TDM_EINVAL, TDM_EIO, TDM_EFAILED, TDM_EREADONLY, TDM_ENOMEM. */
TDM_EXPORT int tdm_append(tdm_append_result *out, uint8_t *outcomes,
                          tdm_store *s, const tdm_event *events, size_t n);

/* Makes everything appended so far durable, whatever the durability mode. */
TDM_EXPORT int tdm_sync(tdm_store *s);

/* ---- Reading ----------------------------------------------------------- */

typedef struct tdm_iter tdm_iter;

/* One condition on labels: `key` must be present with a value equal to
 * `value`; `value` "*" means any value; a value ending in "*" matches by
 * prefix ("org:acme/" followed by a star). */
typedef struct tdm_match {
	const char *key;
	const char *value;
} tdm_match;

/* A selector: an OR of groups, each group an AND of matches. */
typedef struct tdm_selector {
	const tdm_match *matches; /* n_matches conditions, all must hold */
	size_t n_matches;
} tdm_selector;

#define TDM_READ_STORAGE_ORDER 0x1u /* skip the sort: file order per shard */
#define TDM_READ_SCAN 0x2u /* answer a selector by reading every record of the
                              range, not from the label bitmaps (same events;
                              for comparisons and benchmarks) */

#define TDM_READ_OPTIONS_VERSION 1
typedef struct tdm_read_options {
	unsigned version; /* TDM_READ_OPTIONS_VERSION */
	unsigned flags;   /* TDM_READ_* */
	const tdm_selector *where; /* n_where groups, any may hold; none: all */
	size_t n_where;
} tdm_read_options;
#define TDM_READ_OPTIONS_INIT {TDM_READ_OPTIONS_VERSION, 0, NULL, 0}

/* Starts a read of every event with from <= ts < to, ordered by ts, id,
 * canonical labels, payload (SPEC §4). It sees what was committed when it
 * started. `ro` may be NULL. `ro` and what it points to are copied.
 * `*out` is the caller's; close it with tdm_iter_close before the store. */
TDM_EXPORT int tdm_iter_open(tdm_iter **out, tdm_store *s, int64_t from,
                             int64_t to, const tdm_read_options *ro);

/* The next event. `*ev` is borrowed: valid until the next call on `it`.
 * Returns 0, TDM_ITEROVER at the end, or an error. A damaged record is
 * skipped, never returned: the iterator goes on with the next sound one and
 * tdm_iter_damage counts it; TDM_ECORRUPT is returned only when the files
 * cannot be read at all. */
TDM_EXPORT int tdm_iter_next(const tdm_event **ev, tdm_iter *it);

/* How many damaged stretches the read skipped so far, and a message naming
 * the first one (shard file and offset); the message is borrowed from `it`
 * and NULL when there were none. */
TDM_EXPORT uint64_t tdm_iter_damage(const char **first_message,
                                    const tdm_iter *it);

/* Frees the iterator. NULL is a no-op. */
TDM_EXPORT void tdm_iter_close(tdm_iter *it);

/* ---- Sealing and retention --------------------------------------------- */

typedef struct tdm_compact_result {
	uint64_t shards_sealed;  /* shards rewritten */
	uint64_t shards_skipped; /* closed, but damaged: left for verify */
	uint64_t events;         /* events in the shards rewritten */
	uint64_t bytes_before;   /* their main and recon bytes before */
	uint64_t bytes_after;    /* their sealed files' bytes after */
} tdm_compact_result;

/* Seals every closed shard (its end plus grace at or below the newest
 * event) that is not sealed yet or has late events since its last seal:
 * its main and recon records are rewritten as one sorted file of
 * zstd-compressed blocks and its recon file is emptied. Events keep their
 * identity and seq. Each shard's swap is one commit: a reader sees the old
 * or the new shard, never a mix (a read that opens a shard after its old
 * files were removed fails with TDM_ECORRUPT and says to read again). A
 * crash at any step leaves the old or the new shard. Needs a writer.
 * Errors: TDM_EREADONLY, TDM_EFAILED, TDM_EIO, TDM_ECORRUPT, TDM_ENOMEM. */
TDM_EXPORT int tdm_compact(tdm_compact_result *out, tdm_store *s);

/* Drops every whole shard that ends at or before `before` and is closed
 * (outside its grace window): its index state first, then its files.
 * `*dropped` gets the number of shards dropped. Crash-safe: a shard is
 * dropped whole or not at all. Needs a writer. Errors as tdm_compact. */
TDM_EXPORT int tdm_retain(uint64_t *dropped, tdm_store *s, int64_t before);
/* ---- Label counts -------------------------------------------------------- */

/* One label pair and how many events carry it. */
typedef struct tdm_label_count {
	const char *key;
	const char *value;
	uint64_t events;
} tdm_label_count;

/* The label pairs of the events with from <= ts < to, each with the number
 * of those events that carry it, sorted by key, then value (bytewise).
 * Shards wholly inside the range are counted from the label bitmaps without
 * reading any event; a shard the range cuts (at most the first and the
 * last), or one whose bitmaps are not sound, is read. Each shard is counted
 * as committed when it is reached. `*out` (an array of `*n`) is the
 * caller's: free it with tdm_label_counts_free.
 * Errors: TDM_ENOMEM, TDM_EIO, TDM_ECORRUPT. */
TDM_EXPORT int tdm_label_counts(tdm_label_count **out, size_t *n, tdm_store *s,
                                int64_t from, int64_t to);

/* Frees what tdm_label_counts handed out. NULL is a no-op. */
TDM_EXPORT void tdm_label_counts_free(tdm_label_count *counts, size_t n);

/* ---- Statistics and verification -------------------------------------- */

/* ---- Replica digests (docs/DESIGN.md, "Replica digests") ------------- */

/* Each shard's time range is cut into 16^TDM_DIGEST_LEAF_LEVEL equal
 * buckets (leaves), under a tree of fan-out TDM_DIGEST_FANOUT: level 0 is
 * the whole shard. A node's digest is the count of its events and the sum,
 * modulo 2^64, of their fingerprints: it does not depend on arrival order
 * or on whether an event was stored on time or late. Two stores with the
 * same shard duration hold the same events in a node when the digests
 * agree (up to a 2^-64 chance). The tree is kept at append time. */
#define TDM_DIGEST_FANOUT 16
#define TDM_DIGEST_LEAF_LEVEL 4

typedef struct tdm_digest {
	uint64_t count;
	uint64_t sum;
} tdm_digest;

typedef struct tdm_shard_digest {
	int64_t shard; /* floor(ts / shard duration) */
	tdm_digest digest;
} tdm_shard_digest;

/* The fingerprint of an event's identity (ts, id, labels, payload): a
 * 64-bit XXH3 of its canonical bytes. The event must pass tdm_event_check. */
TDM_EXPORT uint64_t tdm_event_fingerprint(const tdm_event *ev);

/* The shards holding events with from <= ts < to, in order, each with the
 * digest of those events. `*out` (NULL when `*n` is 0) is the caller's to
 * free with free(). */
TDM_EXPORT int tdm_digest_shards(tdm_shard_digest **out, size_t *n,
                                 tdm_store *s, int64_t from, int64_t to);

/* The digests of the TDM_DIGEST_FANOUT children of node `node` at `level`
 * (0 to TDM_DIGEST_LEAF_LEVEL - 1) of `shard`, counting only events with
 * from <= ts < to. Children of node n at level l are nodes 16n..16n+15 at
 * level l + 1. TDM_EINVAL for a level or node out of range. */
TDM_EXPORT int tdm_digest_children(tdm_digest out[TDM_DIGEST_FANOUT],
                                   tdm_store *s, int64_t shard, unsigned level,
                                   uint32_t node, int64_t from, int64_t to);

/* Called for each event of a leaf; the event is borrowed for the call.
 * A nonzero return stops the walk and is returned. */
typedef int (*tdm_event_fn)(void *ctx, const tdm_event *ev, uint64_t fingerprint);

/* Calls `fn` for each event of leaf `leaf` of `shard` with from <= ts < to,
 * in storage order (not read order), reading only the bytes the leaf's
 * digest says hold its events. Damaged records are skipped. */
TDM_EXPORT int tdm_digest_leaf_events(tdm_store *s, int64_t shard, uint32_t leaf,
                                      int64_t from, int64_t to, tdm_event_fn fn,
                                      void *ctx);

/* A reader of digest leaves for a request about many of them: one view of
 * the store (leaves read through it agree with each other) and the shard
 * files it last read kept open. `*out` is the caller's: close it with
 * tdm_leaf_reader_close, before the store. */
typedef struct tdm_leaf_reader tdm_leaf_reader;
TDM_EXPORT int tdm_leaf_reader_open(tdm_leaf_reader **out, tdm_store *s);

/* tdm_digest_leaf_events, through a reader. */
TDM_EXPORT int tdm_leaf_reader_events(tdm_leaf_reader *rd, int64_t shard, uint32_t leaf,
                                      int64_t from, int64_t to, tdm_event_fn fn,
                                      void *ctx);

/* Closes what the reader holds. NULL is a no-op. */
TDM_EXPORT void tdm_leaf_reader_close(tdm_leaf_reader *rd);

typedef struct tdm_stat {
	uint64_t shards;
	uint64_t events;        /* stored events, main and recon */
	uint64_t late_events;   /* of those, in recon files */
	uint64_t bytes;         /* shard files, index and metadata on disk */
	uint64_t index_entries; /* sparse index entries */
	uint64_t last_seq;      /* 0 when empty */
	int64_t min_ts, max_ts; /* -1 when empty */
	uint64_t sealed_shards;   /* shards whose main records are sealed */
	uint64_t sealed_bytes;    /* their sealed files, bytes on disk */
	uint64_t sealed_raw_bytes;/* the same records uncompressed */
	uint64_t recon_bytes;     /* recon files, bytes */
} tdm_stat;

/* Statistics of what is committed. */
TDM_EXPORT int tdm_stat_get(tdm_stat *out, tdm_store *s);

/* One problem found by tdm_verify. Borrowed for the callback's duration. */
typedef struct tdm_problem {
	const char *file;   /* path relative to the store, e.g. shards/... */
	int64_t offset;     /* byte offset in that file, -1 if none */
	const char *what;
} tdm_problem;

typedef void (*tdm_problem_cb)(void *ctx, const tdm_problem *p);

/* Reads every record of every shard file, checks checksums, headers, the
 * grace invariant of main files, and compares the index with what the
 * files say. Calls `cb` (may be NULL) for each problem. `*problems` gets the
 * count. Returns 0 when the check ran (even if it found problems) or an
 * error when it could not run. */
TDM_EXPORT int tdm_verify(uint64_t *problems, tdm_store *s, tdm_problem_cb cb,
                          void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* TIDEMARK_H */
