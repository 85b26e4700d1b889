/*
 * loki_push.h - Grafana Loki's JSON push body (POST /loki/api/v1/push):
 *
 *   {"streams":[{"stream":{"label":"value",...},
 *                "values":[["<ns since the epoch>","<line>"],
 *                          ["<ns>","<line>",{"metadata":"value"}],...]}]}
 *
 * Each value becomes one event: ts from the string, labels the stream's
 * (plus the value's structured metadata, if any), payload the line. Loki
 * lines carry no id: it is the content id (tdm_event_content_id), as
 * `tidemark append` gives a line without "id", so a retried push stores
 * nothing twice; the same line at the same ns with the same labels is one
 * event, as Loki itself drops such repeats.
 */
#ifndef TIDEMARK_LOKI_PUSH_H
#define TIDEMARK_LOKI_PUSH_H

#include <stddef.h>

#include "event_batch.h"

/* Parses the whole body into b. Returns 0, or -1 with what is wrong and
 * where (stream and value index) in err. */
int loki_parse(event_batch *b, const char *body, size_t len, char *err,
               size_t errlen);

#endif
