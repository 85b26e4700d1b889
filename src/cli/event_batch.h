/*
 * event_batch.h - the events of one request, copied out of the parser's
 * scratch into an arena, so that a whole request can be appended as one
 * tdm_append (all or nothing) however many events it holds.
 */
#ifndef TIDEMARK_EVENT_BATCH_H
#define TIDEMARK_EVENT_BATCH_H

#include <stddef.h>
#include <tidemark.h>

typedef struct arena_chunk arena_chunk;

typedef struct event_batch {
	tdm_event *events;
	size_t n, cap;
	arena_chunk *chunks; /* labels, strings and payloads of the events */
} event_batch;

/* Copies *ev (labels, strings, payload) into the batch. Returns 0, or -1
 * when out of memory. Zero the batch before first use. */
int event_batch_add(event_batch *b, const tdm_event *ev);

/* Frees what the batch holds; it can be used again. */
void event_batch_free(event_batch *b);

#endif
