/* fuzz_labels.c - batches of events with arbitrary labels appended to one
 * store that stays open across inputs, so the writer's label cache
 * (src/labelcache.c) carries pairs from input to input, in buffers that
 * are freed and reused.
 *
 * tdm_append must accept a batch exactly when tdm_event_check accepts each
 * of its events, refuse it naming the first bad event with that event's
 * message, store nothing then, and store exactly the events given (read
 * back, compared by fingerprint and labels) otherwise.
 *
 * Input: events one after another; per event a byte n (n % 72 labels:
 * up to 71, past the limit of 64), then per label a key and a value, each
 * a length byte L then L bytes (a NUL among them ends the C string early);
 * L = 255 takes one more byte b and makes a string of 257 (or 4097 when b
 * is odd) copies of b, to reach the length limits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tidemark.h"

#define MAX_EVENTS 16
#define MAX_LABELS 71

static tdm_store *store;
static int64_t next_ts = 1000000000000ll;
static void close_store(void)
{
	tdm_store_close(store);
}

static void open_store(void)
{
	if (store)
		return;
	char tmpl[64];
	fuzz_tempdir(tmpl, sizeof tmpl, "labels");
	atexit(close_store); /* atexit runs it before the directory goes */
	char dir[300];
	snprintf(dir, sizeof dir, "%s/s", tmpl);
	tdm_options o = TDM_OPTIONS_INIT;
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	oo.durability = TDM_DURABILITY_NONE;
	if (tdm_store_create(dir, &o) || tdm_store_open(&store, dir, &oo))
		abort();
}

/* A NUL-terminated string from the input, or NULL when it ran out. */
static char *take_string(const uint8_t **p, const uint8_t *end)
{
	if (*p >= end)
		return NULL;
	size_t len = **p;
	(*p)++;
	char *s;
	if (len == 255) {
		if (*p >= end)
			return NULL;
		uint8_t b = **p;
		(*p)++;
		len = b & 1 ? 4097 : 257;
		if (!(s = malloc(len + 1)))
			abort();
		memset(s, b, len);
	} else {
		if ((size_t)(end - *p) < len)
			len = (size_t)(end - *p);
		if (!(s = malloc(len + 1)))
			abort();
		memcpy(s, *p, len);
		*p += len;
	}
	s[len] = '\0';
	return s;
}

/* The label with `key` of an event, or NULL. */
static const char *value_of(const tdm_event *ev, const char *key)
{
	for (size_t i = 0; i < ev->n_labels; i++)
		if (strcmp(ev->labels[i].key, key) == 0)
			return ev->labels[i].value;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	open_store();
	const uint8_t *p = data, *end = data + size;
	tdm_event ev[MAX_EVENTS];
	tdm_label lab[MAX_EVENTS][MAX_LABELS];
	char *owned[MAX_EVENTS * MAX_LABELS * 2];
	size_t n = 0, n_owned = 0;
	int64_t ts0 = next_ts;
	while (n < MAX_EVENTS && p < end) {
		size_t nl = *p++ % (MAX_LABELS + 1), l = 0;
		for (; l < nl; l++) {
			char *k = take_string(&p, end), *v = k ? take_string(&p, end) : NULL;
			if (k)
				owned[n_owned++] = k;
			if (!v)
				break;
			owned[n_owned++] = v;
			lab[n][l] = (tdm_label){k, v};
		}
		ev[n] = (tdm_event){.ts = next_ts++, .id = (uint32_t)n, .labels = lab[n],
		                    .n_labels = l, .payload = "p", .payload_len = 1};
		n++;
	}

	/* What tdm_append must do. */
	size_t bad = n;
	char want[1200] = "";
	for (size_t i = 0; i < n && bad == n; i++)
		if (tdm_event_check(&ev[i]) != 0) {
			bad = i;
			snprintf(want, sizeof want, "event %zu of the batch: %s", i,
			         tdm_error_message());
		}
	tdm_append_result res;
	int r = tdm_append(&res, NULL, store, ev, n);
	if (bad < n) {
		if (r != TDM_EINVAL || strcmp(tdm_error_message(), want) != 0)
			abort();
	} else if (r != 0 || res.appended != n) {
		abort();
	}

	/* What the store holds: the batch, or nothing of it. */
	tdm_iter *it;
	if (tdm_iter_open(&it, store, ts0, next_ts, NULL) != 0)
		abort();
	const tdm_event *got;
	size_t k = 0;
	while ((r = tdm_iter_next(&got, it)) != TDM_ITEROVER) {
		if (r != 0)
			abort();
		if (bad < n || k >= n || got->ts != ev[k].ts ||
		    tdm_event_fingerprint(got) != tdm_event_fingerprint(&ev[k]) ||
		    got->n_labels != ev[k].n_labels)
			abort();
		for (size_t i = 0; i < got->n_labels; i++) {
			const char *v = value_of(&ev[k], got->labels[i].key);
			if (!v || strcmp(v, got->labels[i].value) != 0)
				abort();
		}
		k++;
	}
	tdm_iter_close(it);
	if (bad == n && k != n)
		abort();
	for (size_t i = 0; i < n_owned; i++)
		free(owned[i]);
	return 0;
}
