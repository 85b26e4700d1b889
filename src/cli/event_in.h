/*
 * event_in.h - turns one NDJSON input line into a tdm_event, checking it
 * the way SPEC §5 asks: known keys only, right types and ranges, strict
 * base64 (json_event.c), and the library's own event check.
 */
#ifndef TIDEMARK_EVENT_IN_H
#define TIDEMARK_EVENT_IN_H

#include <stddef.h>
#include <stdint.h>
#include <tidemark.h>

#include "json_event.h"

/* What a parsed event's pointers point into: decoded strings and the
 * labels, in buffers that are reused from line to line. Zero it before its
 * first use ({0}); event_in_free releases its memory. */
typedef struct event_in_mem {
	json_event_scratch scratch;
} event_in_mem;

/* Parses `line` into *ev and *mem. Returns 0, or -1 with what is wrong in
 * err (errlen bytes, NUL-terminated). Either way the previous event parsed
 * with mem is gone; *mem keeps its buffers for the next line. */
int event_in_parse(tdm_event *ev, event_in_mem *mem, const char *line,
                   size_t len, char *err, size_t errlen);

/* Done with the event parsed with mem: keeps its buffers for the next line
 * unless they grew large (a long line), which are freed. */
void event_in_recycle(event_in_mem *mem);

/* Frees every buffer of mem (which can then be used again). */
void event_in_free(event_in_mem *mem);

#endif
