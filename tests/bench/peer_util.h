/*
 * peer_util.h - small helpers shared by the peer engines of tidemark-bench:
 * the 12-byte ordered key of LMDB and RocksDB, and the bounds file of the
 * engines that cannot answer "how many events, from when to when" cheaply.
 */
#ifndef BENCH_PEER_UTIL_H
#define BENCH_PEER_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"

#define PEER_KEY_LEN 12

/* Key = big-endian ts ‖ big-endian id: memcmp order is (ts, id) order for
 * ts >= 0, which the data model guarantees. */
static inline void peer_key_encode(unsigned char k[PEER_KEY_LEN], int64_t ts,
                                   uint32_t id)
{
	uint64_t u = (uint64_t)ts;
	for (int i = 0; i < 8; i++)
		k[i] = (unsigned char)(u >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		k[8 + i] = (unsigned char)(id >> (24 - 8 * i));
}

static inline int64_t peer_key_ts(const unsigned char *k)
{
	uint64_t u = 0;
	for (int i = 0; i < 8; i++)
		u = u << 8 | k[i];
	return (int64_t)u;
}

static inline uint32_t peer_key_id(const unsigned char *k)
{
	return (uint32_t)k[8] << 24 | (uint32_t)k[9] << 16 |
	       (uint32_t)k[10] << 8 | k[11];
}

/* Running bounds of what a write stored. */
static inline void peer_bounds_add(struct engine_bounds *b, int64_t ts)
{
	if (b->events == 0 || ts < b->min_ts)
		b->min_ts = ts;
	if (b->events == 0 || ts > b->max_ts)
		b->max_ts = ts;
	b->events++;
}

/* DIR/bench-bounds: "events min_ts max_ts\n", written when a write closes.
 * A few dozen bytes; counted in bytes on disk like everything else. */
static inline int peer_bounds_save(const char *name, const char *dir,
                                   const struct engine_bounds *b)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/bench-bounds", dir);
	FILE *f = fopen(path, "w");
	if (!f || fprintf(f, "%llu %lld %lld\n", (unsigned long long)b->events,
	                  (long long)(b->events ? b->min_ts : -1),
	                  (long long)(b->events ? b->max_ts : -1)) < 0 ||
	    fclose(f) != 0) {
		fprintf(stderr, "tidemark-bench: %s: cannot write %s: %s\n",
		        name, path, strerror(errno));
		return -1;
	}
	return 0;
}

static inline int peer_bounds_load(const char *name, const char *dir,
                                   struct engine_bounds *b)
{
	char path[4096];
	unsigned long long n;
	long long lo, hi;
	snprintf(path, sizeof path, "%s/bench-bounds", dir);
	FILE *f = fopen(path, "r");
	int ok = f && fscanf(f, "%llu %lld %lld", &n, &lo, &hi) == 3;
	if (f)
		fclose(f);
	if (!ok) {
		fprintf(stderr, "tidemark-bench: %s: cannot read %s\n", name,
		        path);
		return -1;
	}
	b->events = n;
	b->min_ts = lo;
	b->max_ts = hi;
	return 0;
}

#endif /* BENCH_PEER_UTIL_H */
