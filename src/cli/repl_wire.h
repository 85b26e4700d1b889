/*
 * repl_wire.h - the replica protocol's bytes (docs/PROTOCOL.md): frames,
 * a growing output buffer, a bounds-checked input cursor, and events.
 * Everything read here comes from an untrusted peer: every length is
 * checked against what is left before it is used.
 */
#ifndef TIDEMARK_REPL_WIRE_H
#define TIDEMARK_REPL_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <tidemark.h>

#define REPL_MAGIC "TDMREPL"
#define REPL_VERSION 1
/* A frame's body (type byte included) is at most this long: room for one
 * event of the largest size and its framing. */
#define REPL_MAX_FRAME (32u * 1024 * 1024)
/* Requests are cut so that their replies stay well under a frame. */
#define REPL_BATCH_BYTES (4u * 1024 * 1024)
#define REPL_BATCH_ITEMS 8192

enum repl_type {
	REPL_HELLO = 1,
	REPL_SHARDS = 2,
	REPL_CHILDREN = 3,
	REPL_LEAF_FPS = 4,
	REPL_FETCH = 5,
	REPL_PUT = 6,
	REPL_BYE = 7,
	REPL_REPLY = 0x80, /* a reply's type is the request's | REPL_REPLY */
	REPL_ERROR = 0xff
};

/* An output buffer; on allocation failure it stays in error and later
 * writes do nothing. */
typedef struct wbuf {
	uint8_t *data;
	size_t len, cap;
	int failed;
} wbuf;

void wbuf_free(wbuf *b);
void wbuf_reset(wbuf *b);
void wbuf_bytes(wbuf *b, const void *p, size_t n);
void wbuf_u8(wbuf *b, uint8_t v);
void wbuf_u16(wbuf *b, uint16_t v);
void wbuf_u32(wbuf *b, uint32_t v);
void wbuf_u64(wbuf *b, uint64_t v);
void wbuf_varint(wbuf *b, uint64_t v);
/* Starts a frame of `type`: 4 bytes of length (filled by wbuf_end_frame). */
void wbuf_frame(wbuf *b, uint8_t type);
void wbuf_end_frame(wbuf *b);
/* An event: ts, id, labels, payload (identity only: no seq). */
void wbuf_event(wbuf *b, const tdm_event *ev);

/* An input cursor over one frame's body. The first failure sticks: `err`
 * says what was wrong and where (byte offset in the frame). */
typedef struct rbuf {
	const uint8_t *p, *start, *end;
	const char *err;
	size_t err_at;
} rbuf;

void rbuf_init(rbuf *r, const uint8_t *p, size_t n);
uint8_t rbuf_u8(rbuf *r);
uint16_t rbuf_u16(rbuf *r);
uint32_t rbuf_u32(rbuf *r);
uint64_t rbuf_u64(rbuf *r);
int64_t rbuf_i64(rbuf *r);
uint64_t rbuf_varint(rbuf *r);
/* A count of items each at least `min_item` bytes long: fails when the
 * frame cannot hold that many, so no count makes us allocate blindly. */
size_t rbuf_count(rbuf *r, size_t min_item);
const uint8_t *rbuf_bytes(rbuf *r, size_t n);
void rbuf_fail(rbuf *r, const char *what);
/* 1 when every byte was read and nothing failed. */
int rbuf_done(rbuf *r);

/* Decoded events point into an arena that lives until the next reset. */
typedef struct event_arena {
	char *strings;
	size_t len, cap;
	tdm_label *labels;
	size_t n_labels, cap_labels;
} event_arena;

void arena_reset(event_arena *a);
void arena_free(event_arena *a);
/* Decodes one event, bounding every length by the protocol's limits (the
 * caller runs tdm_event_check on it); 0, or -1 with r->err set. Label
 * pointers are fixed up by arena_finish once all are read. */
int rbuf_event(rbuf *r, tdm_event *ev, event_arena *a);
/* Points every decoded event's labels into the arena (it may have moved
 * while decoding); events[i] was the i-th decoded since the reset. */
void arena_finish(event_arena *a, tdm_event *events, size_t n);

/* Frame I/O on file descriptors. Writes all of `b`. Reads one frame's body
 * into `*body` (grown as needed): 0, 1 at a clean end of stream, or -1 with
 * `*why` set. `timeout_ms` (-1: none) bounds each wait for bytes. */
int frame_write(int fd, const wbuf *b);
int frame_read(int fd, wbuf *body, const char **why, int timeout_ms);

#endif
