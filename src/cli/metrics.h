/*
 * metrics.h - the counters of `tidemark serve` and their Prometheus text
 * exposition (format 0.0.4). Counters are atomics: request threads and the
 * syslog thread bump them without a lock.
 */
#ifndef TIDEMARK_METRICS_H
#define TIDEMARK_METRICS_H

#include <stdatomic.h>
#include <stdint.h>
#include <tidemark.h>

#include "ndjson.h"

/* Upper bounds of the append latency buckets, in microseconds. */
#define METRICS_BUCKETS 14

enum metrics_source { SRC_EVENTS, SRC_LOKI, SRC_SYSLOG, SRC_READ, N_SRC };

typedef struct metrics {
	atomic_uint_fast64_t appended, duplicates, late;
	atomic_uint_fast64_t requests[N_SRC];       /* requests / messages */
	atomic_uint_fast64_t request_errors[N_SRC]; /* refused or failed */
	atomic_uint_fast64_t append_bucket[METRICS_BUCKETS + 1]; /* + +Inf */
	atomic_uint_fast64_t append_count, append_sum_us;
} metrics;

/* Counts one tdm_append that took `us` microseconds. */
void metrics_append(metrics *m, const tdm_append_result *r, uint64_t us);

/* Writes every metric, with the store's statistics `st` (NULL when they
 * could not be read), to out. Returns 0, or -1 when out of memory. */
int metrics_render(ndjson_buf *out, const metrics *m, const tdm_stat *st);

#endif
