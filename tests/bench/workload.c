/*
 * workload.c - generates the events of the SPEC §7 benchmark workloads.
 *
 * Event i:
 *   ts      = WL_BASE_TS + i * 1 ms, then for `ooo` 10% of events are moved
 *             back uniformly in [0, 30 s]; for `late` another 1% are moved
 *             back uniformly in [120 s, 600 s] (beyond the 60 s grace).
 *   id      = low 32 bits of splitmix64(i).
 *   payload = exactly payload_len printable ASCII bytes, a pseudo log line.
 *   labels  = none, or n_labels of host/level/service/... when asked.
 * All randomness of event i comes from a splitmix64 stream seeded from
 * (seed, i), so events can be generated in any batch size or order.
 */
#include "workload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN 0x9e3779b97f4a7c15ULL
#define NS_PER_S 1000000000LL

/* The splitmix64 finaliser applied to x + golden: the value a splitmix64
 * generator whose state is x returns next. */
uint64_t splitmix64(uint64_t x)
{
	uint64_t z = x + GOLDEN;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void wl_rng_seed(struct wl_rng *r, uint64_t seed)
{
	r->state = seed;
}

uint64_t wl_rng_next(struct wl_rng *r)
{
	uint64_t out = splitmix64(r->state);
	r->state += GOLDEN;
	return out;
}

uint64_t wl_rng_below(struct wl_rng *r, uint64_t n)
{
	/* Reject the top partial range so every value is equally likely. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t x;
	do
		x = wl_rng_next(r);
	while (x >= limit);
	return x % n;
}

static const char *const kind_names[] = {"inorder", "ooo", "late"};

int wl_kind_parse(enum wl_kind *out, const char *name)
{
	for (size_t k = 0; k < sizeof kind_names / sizeof kind_names[0]; k++) {
		if (strcmp(name, kind_names[k]) == 0) {
			*out = (enum wl_kind)k;
			return 0;
		}
	}
	return -1;
}

const char *wl_kind_name(enum wl_kind kind)
{
	return kind_names[kind];
}

/* ---- Labels ------------------------------------------------------------- */

#define N_VALUES 16 /* distinct values per label key */

static const char *const level_names[] = {"info", "warn", "error", "debug"};

/* Label j's key and its N_VALUES values, built once: events only point at
 * them, so generating labels costs no allocation. */
static char label_keys[WL_MAX_LABELS][16];
static char label_values[WL_MAX_LABELS][N_VALUES][24];
static int labels_ready;

static void labels_init(void)
{
	static const char *const named[] = {"host", "level", "service",
	                                    "region", "env"};
	static const char *const prefix[] = {"web-", "", "svc-", "region-",
	                                     "env-"};
	if (labels_ready)
		return;
	for (int j = 0; j < WL_MAX_LABELS; j++) {
		int is_named = j < (int)(sizeof named / sizeof named[0]);
		if (is_named)
			snprintf(label_keys[j], sizeof label_keys[j], "%s", named[j]);
		else
			snprintf(label_keys[j], sizeof label_keys[j], "l%d", j);
		for (int v = 0; v < N_VALUES; v++) {
			char *dst = label_values[j][v];
			if (j == 1)
				snprintf(dst, sizeof label_values[j][v], "%s",
				         level_names[v % 4]);
			else
				snprintf(dst, sizeof label_values[j][v], "%s%d",
				         is_named ? prefix[j] : "v", v);
		}
	}
	labels_ready = 1;
}

/* ---- Batches ------------------------------------------------------------ */

int wl_batch_init(struct wl_batch *b, const struct workload *w, size_t cap)
{
	labels_init();
	memset(b, 0, sizeof *b);
	b->events = calloc(cap, sizeof *b->events);
	b->labels = calloc(cap * w->n_labels + 1, sizeof *b->labels);
	b->payloads = malloc(cap * w->payload_len + 1);
	if (w->own_label_text && w->n_labels &&
	    !(b->label_text = malloc(cap * w->n_labels * WL_LABEL_TEXT))) {
		wl_batch_free(b);
		return -1;
	}
	if (!b->events || !b->labels || !b->payloads) {
		wl_batch_free(b);
		return -1;
	}
	b->cap = cap;
	return 0;
}

void wl_batch_free(struct wl_batch *b)
{
	free(b->events);
	free(b->labels);
	free(b->payloads);
	free(b->label_text);
	memset(b, 0, sizeof *b);
}

/* Fills dst with exactly len printable bytes: a log-line-like prefix, then
 * pseudo-words, so the payload compresses about as well as real logs. */
static void make_payload(char *dst, size_t len, struct wl_rng *r, int64_t ts,
                         unsigned level)
{
	static const char *const upper[] = {"INFO ", "WARN ", "ERROR", "DEBUG"};
	static const char alphabet[] =
		"abcdefghijklmnopqrstuvwxyz      etaoinshrdlu0123456789=/:.-_,ABC";
	static const char *const verbs[] = {"GET", "POST", "PUT", "DELETE"};
	char line[192];
	uint64_t x = wl_rng_next(r);
	int n = snprintf(line, sizeof line,
	                 "%lld %s svc-%02u req=%08x %s /api/v1/items/%u "
	                 "status=%u dur_ms=%u ",
	                 (long long)(ts / 1000000), upper[level],
	                 (unsigned)(x & 7), (unsigned)(x >> 32),
	                 verbs[(x >> 3) & 3], (unsigned)((x >> 5) & 0xffff),
	                 level == 2 ? 500u : 200u,
	                 (unsigned)((x >> 21) & 0x3ff));
	size_t pre = n < 0 ? 0 : (size_t)n;
	if (pre > len)
		pre = len;
	memcpy(dst, line, pre);

	/* One draw gives ten 6-bit letters; alphabet has 64 entries. */
	for (size_t k = pre; k < len;) {
		uint64_t bits = wl_rng_next(r);
		for (int c = 0; c < 10 && k < len; c++, bits >>= 6)
			dst[k++] = alphabet[bits & 63];
	}
}

static unsigned pick_level(struct wl_rng *r)
{
	uint64_t u = wl_rng_below(r, 100);
	return u < 90 ? 0 : u < 97 ? 1 : 2; /* 90% info, 7% warn, 3% error */
}

void wl_generate(struct wl_batch *b, const struct workload *w, uint64_t first,
                 size_t n)
{
	for (size_t k = 0; k < n; k++) {
		uint64_t i = first + k;
		struct bench_event *ev = &b->events[k];
		struct wl_rng r;
		/* A stream of its own per event, independent of the batching. */
		wl_rng_seed(&r, splitmix64(w->seed) ^ splitmix64(i ^ 0x5bd1e995));

		int64_t ts = WL_BASE_TS + (int64_t)i * WL_STEP_NS;
		uint64_t u = wl_rng_below(&r, 1000);
		if (w->kind != WL_INORDER && u < 100)
			ts -= (int64_t)wl_rng_below(&r, 30 * NS_PER_S + 1);
		else if (w->kind == WL_LATE && u < 110)
			ts -= 120 * NS_PER_S +
			      (int64_t)wl_rng_below(&r, 480 * NS_PER_S + 1);

		unsigned level = pick_level(&r);
		char *payload = b->payloads + k * w->payload_len;
		make_payload(payload, w->payload_len, &r, ts, level);

		struct bench_label *labels = b->labels + k * w->n_labels;
		for (size_t j = 0; j < w->n_labels; j++) {
			unsigned v = j == 1 ? level
			                    : (unsigned)wl_rng_below(&r, N_VALUES);
			labels[j].key = label_keys[j];
			labels[j].value = label_values[j][v];
			if (b->label_text) { /* "key\0value\0" of this event's own */
				char *t = b->label_text + (k * w->n_labels + j) * WL_LABEL_TEXT;
				size_t kl = strlen(label_keys[j]) + 1;
				memcpy(t, label_keys[j], kl);
				memcpy(t + kl, label_values[j][v], strlen(label_values[j][v]) + 1);
				labels[j].key = t;
				labels[j].value = t + kl;
			}
		}

		ev->ts = ts;
		ev->id = (uint32_t)splitmix64(i);
		ev->labels = labels;
		ev->n_labels = w->n_labels;
		ev->payload = payload;
		ev->payload_len = w->payload_len;
	}
}
