/*
 * repl_server.h - the store side of the replica protocol: answers one
 * request at a time against a store. `tidemark serve --stdio` runs it on
 * stdin/stdout; a local replica runs it in the same process.
 */
#ifndef TIDEMARK_REPL_SERVER_H
#define TIDEMARK_REPL_SERVER_H

#include <tidemark.h>

#include "repl_wire.h"

typedef struct repl_server {
	const char *dir;
	tdm_store *s;
	int writable;
	/* Where reply frames go; a reply may take several frames. */
	int (*emit)(void *ctx, const wbuf *frame);
	void *emit_ctx;
	wbuf out;
	event_arena arena;
	tdm_event *events;
	size_t cap_events;
	uint64_t *fps;
	size_t cap_fps;
} repl_server;

/* Opens the store at `dir` read-only; it is reopened as the writer when a
 * peer first sends events. 0 or a TDM_E* code (message set). */
int repl_server_open(repl_server *srv, const char *dir);

/* Syncs what was appended and closes the store: 0 or a TDM_E* code. */
int repl_server_close(repl_server *srv);

/* Answers one request (its frame body: type byte first) through `emit`.
 * Returns 0 to go on, 1 after BYE, or -1 when the session must end: the
 * request was malformed or the store failed; an ERROR reply was emitted. */
int repl_server_handle(repl_server *srv, const uint8_t *req, size_t len);

#endif
