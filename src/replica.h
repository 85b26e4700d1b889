/* replica.h - what a replica repair asks of a store: digests clipped to a
 * time range, and the events of digest leaves (replica.c). The public
 * functions in tidemark.h check their arguments and call these. */
#ifndef TDM_REPLICA_H
#define TDM_REPLICA_H

#include "store.h"

int replica_shards(tdm_shard_digest **out, size_t *n, tdm_store *s, int64_t from,
                   int64_t to);
int replica_children(tdm_digest *out, tdm_store *s, int64_t shard, unsigned level,
                     uint32_t node, int64_t from, int64_t to);
int replica_leaf_events(tdm_store *s, int64_t shard, uint32_t leaf, int64_t from,
                        int64_t to, tdm_event_fn fn, void *ctx);
int replica_reader_open(tdm_leaf_reader **out, tdm_store *s);
int replica_reader_events(tdm_leaf_reader *rd, int64_t shard, uint32_t leaf,
                          int64_t from, int64_t to, tdm_event_fn fn, void *ctx);
void replica_reader_close(tdm_leaf_reader *rd);

#endif
