/*
 * event_in.h - turns one NDJSON input line into a tdm_event, checking it
 * the way SPEC §5 asks: known keys only, right types and ranges, strict
 * base64, and the library's own event check.
 */
#ifndef TIDEMARK_EVENT_IN_H
#define TIDEMARK_EVENT_IN_H

#include <stddef.h>
#include <stdint.h>
#include <tidemark.h>

/* What a parsed event's pointers point into; freed by event_in_free once
 * the event has been appended. */
typedef struct event_in_mem {
	void *root;        /* the parsed JSON (json_t *): key and value text */
	tdm_label *labels;
	uint8_t *decoded;  /* the bytes of "payload_b64" */
} event_in_mem;

/* Parses `line` into *ev and *mem. Returns 0, or -1 with what is wrong in
 * err (errlen bytes, NUL-terminated); *mem then holds nothing. */
int event_in_parse(tdm_event *ev, event_in_mem *mem, const char *line,
                   size_t len, char *err, size_t errlen);

void event_in_free(event_in_mem *mem);

#endif
