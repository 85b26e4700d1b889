/*
 * ndjson.h - the NDJSON encoder for events that `read` prints. Our own,
 * not jansson's: it is faster, and its output is fixed byte for byte
 * (key order ts, id, labels, payload; labels as the library orders them),
 * so two replicas holding the same events print identical text.
 */
#ifndef TIDEMARK_NDJSON_H
#define TIDEMARK_NDJSON_H

#include <stddef.h>
#include <tidemark.h>

/* A growable output buffer, reused from event to event. */
typedef struct ndjson_buf {
	char *data;
	size_t len, cap;
} ndjson_buf;

/* Appends one line: {"ts":N,"id":N,"labels":{...},"payload":"..."} and a
 * newline. The payload is a JSON string when its bytes are valid UTF-8,
 * otherwise "payload_b64" holds its base64. `seq` is never written: it is
 * local to one replica. Returns 0, or -1 when out of memory. */
int ndjson_event(ndjson_buf *b, const tdm_event *ev);

/* Appends `text` (UTF-8, NUL-terminated) as a JSON string, quotes
 * included. Returns 0, or -1 when out of memory. */
int ndjson_string(ndjson_buf *b, const char *text);

void ndjson_buf_free(ndjson_buf *b);

#endif
