/*
 * engine.h - what tidemark-bench needs from a storage engine.
 *
 * Each engine lives in its own engine_NAME.c and exports one `struct engine`.
 * bench.c owns the workload, the clock and the report; an engine only
 * stores and reads events. Engines print their own error message to stderr
 * (prefixed "tidemark-bench: NAME: ") and return -1 on failure.
 */
#ifndef BENCH_ENGINE_H
#define BENCH_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "workload.h"

enum bench_sync {
	SYNC_END,   /* no sync per batch; bench calls sync() once at the end */
	SYNC_BATCH, /* every write_batch is durable when it returns */
	SYNC_NONE   /* never sync: the OS writes back */
};

struct engine_open_args {
	int create;           /* 1: make a new store in an empty dir (write);
	                         0: open an existing one for reading */
	enum bench_sync sync; /* write side only */
};

/* What a write reported, summed over batches. */
struct write_counts {
	uint64_t appended;   /* stored, including late */
	uint64_t duplicates; /* not stored: already there */
	uint64_t late;       /* stored outside the in-order path */
};

/* What a read saw. The checksum makes the reader touch every payload so the
 * compiler cannot skip the work; misordered counts events whose ts is below
 * the one before (a read must come back in ts order). */
struct read_counts {
	uint64_t events;
	uint64_t checksum;
	uint64_t misordered;
	uint64_t damaged;
	int64_t last_ts;
};

static inline void read_counts_reset(struct read_counts *c)
{
	c->events = c->checksum = c->misordered = c->damaged = 0;
	c->last_ts = INT64_MIN;
}

static inline void read_counts_add(struct read_counts *c, int64_t ts,
                                   uint32_t id, const void *payload,
                                   size_t len)
{
	const unsigned char *p = payload;
	if (ts < c->last_ts)
		c->misordered++;
	c->last_ts = ts;
	c->events++;
	c->checksum = c->checksum * 31 + (uint64_t)ts + id +
	              (len ? p[0] + p[len - 1] : 0);
}

/* The store's extent, for choosing read ranges. */
struct engine_bounds {
	uint64_t events;
	int64_t min_ts, max_ts; /* -1 when empty */
};

struct engine {
	const char *name;
	int (*open)(void **db, const char *dir, const struct engine_open_args *a);
	/* Stores n events as one batch and adds to *c what happened. */
	int (*write_batch)(void *db, const struct bench_event *ev, size_t n,
	                   struct write_counts *c);
	int (*sync)(void *db);
	/* Frees db whatever happens; returns -1 if closing failed. */
	int (*close)(void *db);
	int (*bounds)(void *db, struct engine_bounds *out);
	/* Reads every event in ts order. */
	int (*scan)(void *db, struct read_counts *c);
	/* Reads every event with from <= ts < to, in ts order. NULL: the
	 * engine has no index to read a window with (bench reports it as
	 * skipped rather than timing a full scan per window). */
	int (*window)(void *db, int64_t from, int64_t to, struct read_counts *c);
	/* Reads every event whose labels match a selector (n_where groups of
	 * "k=v,k2=v2", any group may hold, value "*" any, "p*" a prefix), in
	 * ts order. `scan`: read every record and filter (no label index).
	 * NULL: the engine has no labels query. */
	int (*select)(void *db, const char *const *where, size_t n_where, int scan,
	              struct read_counts *c);
	/* 1: scan returns events in arrival order, not ts order (the raw
	 * file, a floor that does no ordering work); bench reports how many
	 * came back out of order instead of failing. */
	int scan_unordered;
};

extern const struct engine engine_tidemark;
/* The peers, each compiled in when Meson finds its library (bench_peers). */
extern const struct engine engine_sqlite;
extern const struct engine engine_lmdb;
extern const struct engine engine_rocksdb;
extern const struct engine engine_raw;

#endif /* BENCH_ENGINE_H */
