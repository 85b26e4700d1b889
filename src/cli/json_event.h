/*
 * json_event.h - a strict JSON parser for exactly one thing: an NDJSON
 * event line of SPEC §5,
 *
 *   {"ts":<int>|"<RFC 3339>", "id":<int>, "labels":{"k":"v",...},
 *    "payload":"<text>" | "payload_b64":"<base64>"}
 *
 * It accepts what RFC 8259 accepts and nothing else (strict UTF-8, no
 * lone surrogates, no leading zeros, no duplicate keys, text after the
 * object is an error), and then checks the schema: known keys only, the
 * right types and ranges, strict base64. It does not run the library's
 * tdm_event_check; event_in.c does.
 *
 * Allocation-light: every decoded string goes into one scratch buffer that
 * is sized to the line (decoding never makes a string longer than its JSON
 * text) and kept from line to line, so a line costs no malloc at all once
 * the buffer is big enough.
 */
#ifndef TIDEMARK_JSON_EVENT_H
#define TIDEMARK_JSON_EVENT_H

#include <stddef.h>
#include <stdint.h>
#include <tidemark.h>

/* What a parsed event's pointers point into. Zero it before first use;
 * json_event_parse reuses it, json_event_scratch_free releases it. */
typedef struct json_event_scratch {
	char *text;   /* decoded strings, each NUL-terminated; payload bytes */
	size_t cap;   /* bytes at text */
	tdm_label labels[TDM_MAX_LABELS];
} json_event_scratch;

/* Parses `line` (len bytes, no '\n') into *ev, whose pointers then point
 * into *s until the next call with s. *has_id says whether "id" was given.
 * Returns 0, or -1 with what is wrong in err (errlen bytes, NUL-terminated):
 * "not valid JSON: ..." for a syntax error (these take precedence, as they
 * did with jansson), otherwise the first schema problem in the order
 * unknown keys, ts, id, labels, payload. */
int json_event_parse(tdm_event *ev, int *has_id, json_event_scratch *s,
                     const char *line, size_t len, char *err, size_t errlen);

/* Frees the text buffer if it is larger than `keep` bytes (after a huge
 * line), so a pool of scratches does not hold on to memory. */
void json_event_scratch_trim(json_event_scratch *s, size_t keep);

void json_event_scratch_free(json_event_scratch *s);

#endif
