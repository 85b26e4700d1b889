/* dedupe.h - the in-memory structures that make idempotent append cheap.
 *
 * dd_set:    fingerprint -> file offset multimap (open addressing).
 * dd_window: the main-file records inside a shard's grace window, in
 *            time buckets dropped whole as the watermark rises.
 * dd_memo:   for one batch, the fingerprints of the committed records of
 *            the digest leaves it read last.
 * A fingerprint only nominates candidates; the writer compares the bytes. */
#ifndef TDM_DEDUPE_H
#define TDM_DEDUPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct dd_slot {
	uint64_t fp;
	uint64_t off; /* 0: empty (records never start at offset 0) */
} dd_slot;

typedef struct dd_set {
	dd_slot *slots;
	size_t mask, count;
} dd_set;

void dd_set_init(dd_set *s);
void dd_set_free(dd_set *s);
int dd_set_add(dd_set *s, uint64_t fp, uint64_t off);
/* Candidates for `fp`: start with *cursor = 0; returns the next offset
 * stored under fp, or 0 when there are no more. */
uint64_t dd_set_next(const dd_set *s, uint64_t fp, size_t *cursor);

/* The window: main records by time bucket, each bucket a dd_set. A stored
 * copy of an on-time event has its ts, so one bucket is probed; eviction
 * frees whole buckets once they fall below the cutoff, with no per-entry
 * delete. Buckets are kept sorted by number (there are about 16 live). */
#define DD_WINDOW_BUCKETS 16

typedef struct dd_bucket {
	int64_t id; /* ts / width */
	dd_set set;
} dd_bucket;

typedef struct dd_window {
	dd_bucket *b;
	size_t n, cap;
	int64_t width; /* ns per bucket */
} dd_window;

/* `grace` sets the bucket width (grace / DD_WINDOW_BUCKETS, at least 1). */
void dd_window_init(dd_window *w, int64_t grace);
void dd_window_free(dd_window *w);
int dd_window_add(dd_window *w, uint64_t fp, uint64_t off, int64_t ts);
/* Candidates for an event with `fp` and `ts`, as dd_set_next. */
uint64_t dd_window_next(const dd_window *w, uint64_t fp, int64_t ts, size_t *cursor);
/* Frees the buckets whose every ts is < cutoff. Entries of the bucket that
 * holds the cutoff stay a little longer: harmless. */
void dd_window_evict(dd_window *w, int64_t cutoff);

/* The memo: a batch that brings a leaf several events (a replica repair
 * sends them leaf by leaf) reads the leaf's committed records once, at the
 * second event or when the next event is in the same leaf, and keeps
 * their fingerprints. Exact: a stored copy has the event's fingerprint, so
 * a fingerprint the leaf's list lacks rules out its committed records; one
 * it has only nominates, and the writer compares bytes. The last
 * DD_MEMO_LEAVES leaves looked at are kept; a batch starts with none. */
#define DD_MEMO_LEAVES 16

enum { DD_LEAF_SEEN = 1, DD_LEAF_LOADED = 2 };

typedef struct dd_memo_leaf {
	int64_t shard;
	uint32_t leaf;
	int state;     /* DD_LEAF_SEEN, or DD_LEAF_LOADED: fps holds them all */
	uint64_t *fps; /* sorted once loaded */
	size_t n, cap;
	uint64_t used; /* the memo's clock when last looked at */
} dd_memo_leaf;

typedef struct dd_memo {
	dd_memo_leaf v[DD_MEMO_LEAVES];
	size_t n;
	uint64_t clock;
} dd_memo;

void dd_memo_init(dd_memo *m);
void dd_memo_free(dd_memo *m);
/* Forgets every leaf, keeping the memory. */
void dd_memo_clear(dd_memo *m);
/* The leaf's entry, or NULL. */
dd_memo_leaf *dd_memo_find(dd_memo *m, int64_t shard, uint32_t leaf);
/* A new entry for the leaf, in state DD_LEAF_SEEN with no fingerprints,
 * in place of the least recently used one when all are taken. */
dd_memo_leaf *dd_memo_add(dd_memo *m, int64_t shard, uint32_t leaf);
int dd_memo_leaf_add_fp(dd_memo_leaf *l, uint64_t fp);
/* All of the leaf's fingerprints were added: sorts them, marks it loaded. */
void dd_memo_leaf_loaded(dd_memo_leaf *l);
int dd_memo_leaf_has(const dd_memo_leaf *l, uint64_t fp);

#endif
