/*
 * repl_sync.h - compare two replicas top-down by digest and, if asked,
 * copy to each side the events only the other has (docs/DESIGN.md,
 * "Replica repair").
 */
#ifndef TIDEMARK_REPL_SYNC_H
#define TIDEMARK_REPL_SYNC_H

#include <stdint.h>

#include "repl_peer.h"

typedef struct sync_opts {
	int64_t from, to;
	int copy_to_b, copy_to_a;
	int progress; /* a progress line on stderr */
} sync_opts;

typedef struct sync_stats {
	uint64_t only_in_a, only_in_b;
	uint64_t copied_to_a, copied_to_b; /* appended by the receiving side */
	uint64_t shards_compared, nodes_compared, buckets_compared, buckets_differing;
	uint64_t bytes_exchanged;
} sync_stats;

/* Runs the comparison. Returns 0 or an exit code (message printed). */
int repl_sync(sync_stats *st, peer *a, peer *b, const sync_opts *o);

#endif
