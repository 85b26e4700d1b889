/*
 * event_batch.c - an array of events and a chunked arena for what they
 * point to (chunks never move, so earlier events stay valid as it grows).
 */
#include "event_batch.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_MIN (256u << 10)

struct arena_chunk {
	arena_chunk *next;
	size_t used, cap;
	char data[];
};

static void *arena_alloc(event_batch *b, size_t n)
{
	arena_chunk *c = b->chunks;
	n = (n + 7) & ~(size_t)7;
	if (!c || c->cap - c->used < n) {
		size_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
		if (!(c = malloc(sizeof *c + cap)))
			return NULL;
		c->next = b->chunks;
		c->used = 0;
		c->cap = cap;
		b->chunks = c;
	}
	void *p = c->data + c->used;
	c->used += n;
	return p;
}

static char *arena_strdup(event_batch *b, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = arena_alloc(b, n);
	if (p)
		memcpy(p, s, n);
	return p;
}

int event_batch_add(event_batch *b, const tdm_event *ev)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		tdm_event *e = realloc(b->events, cap * sizeof *e);
		if (!e)
			return -1;
		b->events = e;
		b->cap = cap;
	}
	tdm_event *out = &b->events[b->n];
	*out = *ev;
	out->labels = NULL;
	out->payload = NULL;
	if (ev->n_labels) {
		tdm_label *l = arena_alloc(b, ev->n_labels * sizeof *l);
		if (!l)
			return -1;
		for (size_t i = 0; i < ev->n_labels; i++) {
			l[i].key = arena_strdup(b, ev->labels[i].key);
			l[i].value = arena_strdup(b, ev->labels[i].value);
			if (!l[i].key || !l[i].value)
				return -1;
		}
		out->labels = l;
	}
	if (ev->payload_len) {
		void *p = arena_alloc(b, ev->payload_len);
		if (!p)
			return -1;
		memcpy(p, ev->payload, ev->payload_len);
		out->payload = p;
	}
	b->n++;
	return 0;
}

void event_batch_free(event_batch *b)
{
	while (b->chunks) {
		arena_chunk *next = b->chunks->next;
		free(b->chunks);
		b->chunks = next;
	}
	free(b->events);
	memset(b, 0, sizeof *b);
}
