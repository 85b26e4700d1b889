/*
 * workload.h - the fixed benchmark workloads of SPEC §7.
 *
 * Event i of a workload is a pure function of (workload, seed, i): it does
 * not depend on the batch size or on what was generated before, so every
 * engine is fed exactly the same events in the same order.
 */
#ifndef BENCH_WORKLOAD_H
#define BENCH_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#define WL_BASE_TS 1700000000000000000LL /* event 0 */
#define WL_STEP_NS 1000000LL             /* 1 ms between events */
#define WL_MAX_LABELS 16                 /* what --labels accepts */
#define WL_LABEL_TEXT 40                 /* bytes of one label's own text */

enum wl_kind { WL_INORDER, WL_OOO, WL_LATE };

/* Engine-neutral event: engines translate it to whatever they store. */
struct bench_label {
	const char *key;
	const char *value;
};

struct bench_event {
	int64_t ts;
	uint32_t id;
	const struct bench_label *labels;
	size_t n_labels;
	const char *payload;
	size_t payload_len;
};

struct workload {
	enum wl_kind kind;
	uint64_t seed;
	size_t payload_len; /* exact bytes per payload */
	size_t n_labels;    /* labels per event, <= WL_MAX_LABELS */
	int own_label_text; /* each event's labels in text of their own, as a
	                       parser makes them; else shared constant strings */
};

/* One batch of generated events and the memory behind them. */
struct wl_batch {
	struct bench_event *events;
	struct bench_label *labels; /* cap * n_labels */
	char *payloads;             /* cap * payload_len */
	char *label_text;           /* cap * n_labels * WL_LABEL_TEXT, or NULL */
	size_t cap;
};

uint64_t splitmix64(uint64_t x);

/* Parses "inorder", "ooo" or "late". Returns 0, or -1 if unknown. */
int wl_kind_parse(enum wl_kind *out, const char *name);
const char *wl_kind_name(enum wl_kind kind);

/* Allocates room for `cap` events of workload `w`. Returns 0 or -1. */
int wl_batch_init(struct wl_batch *b, const struct workload *w, size_t cap);
void wl_batch_free(struct wl_batch *b);

/* Fills b->events[0 .. n) with events first .. first+n-1 (n <= cap). */
void wl_generate(struct wl_batch *b, const struct workload *w, uint64_t first,
                 size_t n);

/* A small seeded generator for the read side (window start times). */
struct wl_rng {
	uint64_t state;
};
void wl_rng_seed(struct wl_rng *r, uint64_t seed);
uint64_t wl_rng_next(struct wl_rng *r);
/* Uniform in [0, n), n > 0, without modulo bias. */
uint64_t wl_rng_below(struct wl_rng *r, uint64_t n);

#endif /* BENCH_WORKLOAD_H */
