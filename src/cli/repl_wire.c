/*
 * repl_wire.c - frames, buffers and events of the replica protocol.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repl_wire.h"

/* ---- output ----------------------------------------------------------- */

void wbuf_free(wbuf *b)
{
	free(b->data);
	*b = (wbuf){0};
}

void wbuf_reset(wbuf *b)
{
	b->len = 0;
	b->failed = 0;
}

static uint8_t *wbuf_room(wbuf *b, size_t n)
{
	if (b->failed)
		return NULL;
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->len < n)
			cap *= 2;
		uint8_t *p = realloc(b->data, cap);
		if (!p) {
			b->failed = 1;
			return NULL;
		}
		b->data = p;
		b->cap = cap;
	}
	uint8_t *p = b->data + b->len;
	b->len += n;
	return p;
}

void wbuf_bytes(wbuf *b, const void *p, size_t n)
{
	uint8_t *d = wbuf_room(b, n);
	if (d && n)
		memcpy(d, p, n);
}

static void put_le(wbuf *b, uint64_t v, int n)
{
	uint8_t *d = wbuf_room(b, (size_t)n);
	for (int i = 0; d && i < n; i++)
		d[i] = (uint8_t)(v >> (8 * i));
}

void wbuf_u8(wbuf *b, uint8_t v) { put_le(b, v, 1); }
void wbuf_u16(wbuf *b, uint16_t v) { put_le(b, v, 2); }
void wbuf_u32(wbuf *b, uint32_t v) { put_le(b, v, 4); }
void wbuf_u64(wbuf *b, uint64_t v) { put_le(b, v, 8); }

void wbuf_varint(wbuf *b, uint64_t v)
{
	do {
		wbuf_u8(b, (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0)));
		v >>= 7;
	} while (v);
}

void wbuf_frame(wbuf *b, uint8_t type)
{
	wbuf_reset(b);
	wbuf_u32(b, 0);
	wbuf_u8(b, type);
}

void wbuf_end_frame(wbuf *b)
{
	if (b->failed)
		return;
	uint32_t n = (uint32_t)(b->len - 4);
	for (int i = 0; i < 4; i++)
		b->data[i] = (uint8_t)(n >> (8 * i));
}

void wbuf_event(wbuf *b, const tdm_event *ev)
{
	wbuf_u64(b, (uint64_t)ev->ts);
	wbuf_u32(b, ev->id);
	wbuf_varint(b, ev->n_labels);
	for (size_t i = 0; i < ev->n_labels; i++) {
		size_t k = strlen(ev->labels[i].key), v = strlen(ev->labels[i].value);
		wbuf_varint(b, k);
		wbuf_bytes(b, ev->labels[i].key, k);
		wbuf_varint(b, v);
		wbuf_bytes(b, ev->labels[i].value, v);
	}
	wbuf_varint(b, ev->payload_len);
	wbuf_bytes(b, ev->payload, ev->payload_len);
}

/* ---- input ------------------------------------------------------------ */

void rbuf_init(rbuf *r, const uint8_t *p, size_t n)
{
	*r = (rbuf){p, p, p + n, NULL, 0};
}

void rbuf_fail(rbuf *r, const char *what)
{
	if (!r->err) {
		r->err = what;
		r->err_at = (size_t)(r->p - r->start);
	}
	r->p = r->end;
}

const uint8_t *rbuf_bytes(rbuf *r, size_t n)
{
	if (r->err || (size_t)(r->end - r->p) < n) {
		rbuf_fail(r, "message ends too early");
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	return p;
}

static uint64_t get_le(rbuf *r, int n)
{
	const uint8_t *p = rbuf_bytes(r, (size_t)n);
	uint64_t v = 0;
	for (int i = 0; p && i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

uint8_t rbuf_u8(rbuf *r) { return (uint8_t)get_le(r, 1); }
uint16_t rbuf_u16(rbuf *r) { return (uint16_t)get_le(r, 2); }
uint32_t rbuf_u32(rbuf *r) { return (uint32_t)get_le(r, 4); }
uint64_t rbuf_u64(rbuf *r) { return get_le(r, 8); }
int64_t rbuf_i64(rbuf *r) { return (int64_t)get_le(r, 8); }

uint64_t rbuf_varint(rbuf *r)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		const uint8_t *p = rbuf_bytes(r, 1);
		if (!p)
			return 0;
		if (shift == 63 && *p > 1)
			break;
		v |= (uint64_t)(*p & 0x7f) << shift;
		if (!(*p & 0x80))
			return v;
	}
	rbuf_fail(r, "varint longer than 64 bits");
	return 0;
}

size_t rbuf_count(rbuf *r, size_t min_item)
{
	uint64_t n = rbuf_varint(r);
	if (!r->err && min_item && n > (uint64_t)(r->end - r->p) / min_item) {
		rbuf_fail(r, "count larger than the message can hold");
		return 0;
	}
	return (size_t)n;
}

int rbuf_done(rbuf *r)
{
	if (!r->err && r->p != r->end)
		rbuf_fail(r, "bytes left over at the end of the message");
	return !r->err;
}

/* ---- events ----------------------------------------------------------- */

void arena_reset(event_arena *a)
{
	a->len = 0;
	a->n_labels = 0;
}

void arena_free(event_arena *a)
{
	free(a->strings);
	free(a->labels);
	*a = (event_arena){0};
}

/* Copies n bytes and a NUL; returns the offset in the arena, or -1. */
static long arena_string(event_arena *a, const uint8_t *p, size_t n)
{
	if (a->cap - a->len < n + 1) {
		size_t cap = a->cap ? a->cap : 4096;
		while (cap - a->len < n + 1)
			cap *= 2;
		char *s = realloc(a->strings, cap);
		if (!s)
			return -1;
		a->strings = s;
		a->cap = cap;
	}
	long off = (long)a->len;
	memcpy(a->strings + a->len, p, n);
	a->strings[a->len + n] = '\0';
	a->len += n + 1;
	return off;
}

/* Labels are decoded with offsets (the arena may move); arena_finish turns
 * them into pointers. */
int rbuf_event(rbuf *r, tdm_event *ev, event_arena *a)
{
	memset(ev, 0, sizeof *ev);
	ev->ts = rbuf_i64(r);
	ev->id = rbuf_u32(r);
	size_t n = rbuf_count(r, 4);
	if (n > TDM_MAX_LABELS)
		rbuf_fail(r, "event has more labels than the limit");
	if (r->err)
		return -1;
	if (a->cap_labels - a->n_labels < n) {
		size_t cap = a->cap_labels ? a->cap_labels : 256;
		while (cap - a->n_labels < n)
			cap *= 2;
		tdm_label *l = realloc(a->labels, cap * sizeof *l);
		if (!l) {
			rbuf_fail(r, "out of memory");
			return -1;
		}
		a->labels = l;
		a->cap_labels = cap;
	}
	ev->labels = (const tdm_label *)(uintptr_t)a->n_labels; /* fixed up later */
	ev->n_labels = n;
	for (size_t i = 0; i < n; i++) {
		size_t kl = (size_t)rbuf_varint(r);
		const uint8_t *k = kl <= TDM_MAX_LABEL_KEY ? rbuf_bytes(r, kl) : NULL;
		size_t vl = k ? (size_t)rbuf_varint(r) : 0;
		const uint8_t *v = k && vl <= TDM_MAX_LABEL_VALUE ? rbuf_bytes(r, vl) : NULL;
		if (!v) {
			rbuf_fail(r, "label too long or cut short");
			return -1;
		}
		/* labels are C strings here: a NUL would silently shorten one */
		if (memchr(k, 0, kl) || memchr(v, 0, vl)) {
			rbuf_fail(r, "label with a NUL byte");
			return -1;
		}
		long ko = arena_string(a, k, kl), vo = arena_string(a, v, vl);
		if (ko < 0 || vo < 0) {
			rbuf_fail(r, "out of memory");
			return -1;
		}
		a->labels[a->n_labels++] = (tdm_label){(const char *)(uintptr_t)ko,
		                                       (const char *)(uintptr_t)vo};
	}
	size_t pl = (size_t)rbuf_varint(r);
	if (pl > TDM_MAX_PAYLOAD) {
		rbuf_fail(r, "payload larger than the limit");
		return -1;
	}
	ev->payload = rbuf_bytes(r, pl);
	ev->payload_len = pl;
	return r->err ? -1 : 0;
}

void arena_finish(event_arena *a, tdm_event *events, size_t n)
{
	for (size_t i = 0; i < n; i++)
		/* no label decoded yet: a->labels may be NULL */
		events[i].labels = events[i].n_labels ? a->labels + (uintptr_t)events[i].labels
		                                      : NULL;
	for (size_t i = 0; i < a->n_labels; i++) {
		a->labels[i].key = a->strings + (uintptr_t)a->labels[i].key;
		a->labels[i].value = a->strings + (uintptr_t)a->labels[i].value;
	}
}

/* ---- frames on file descriptors --------------------------------------- */

int frame_write(int fd, const wbuf *b)
{
	if (b->failed) {
		errno = ENOMEM;
		return -1;
	}
	for (size_t done = 0; done < b->len;) {
		ssize_t n = write(fd, b->data + done, b->len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

/* 0 with all n bytes, 1 at end of stream before any, -1 otherwise (2 when
 * no byte came for timeout_ms). */
static int read_full(int fd, uint8_t *p, size_t n, int timeout_ms)
{
	size_t done = 0;
	while (done < n) {
		if (timeout_ms >= 0) {
			struct pollfd pfd = {fd, POLLIN, 0};
			int ready = poll(&pfd, 1, timeout_ms);
			if (ready < 0 && errno == EINTR)
				continue;
			if (ready == 0)
				return 2;
		}
		ssize_t got = read(fd, p + done, n - done);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -1;
		if (got == 0)
			return done == 0 ? 1 : -1;
		done += (size_t)got;
	}
	return 0;
}

int frame_read(int fd, wbuf *body, const char **why, int timeout_ms)
{
	uint8_t hdr[4];
	int r = read_full(fd, hdr, 4, timeout_ms);
	if (r) {
		*why = r == 1   ? "the connection closed"
		       : r == 2 ? "no reply within the timeout"
		                : "connection cut inside a frame header";
		return r == 1 ? 1 : -1;
	}
	uint32_t n = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
	             (uint32_t)hdr[3] << 24;
	if (n == 0 || n > REPL_MAX_FRAME) {
		*why = "frame length out of bounds (not a tidemark replica peer?)";
		return -1;
	}
	wbuf_reset(body);
	uint8_t *p = wbuf_room(body, n);
	if (!p) {
		*why = "out of memory";
		return -1;
	}
	if ((r = read_full(fd, p, n, timeout_ms))) {
		*why = r == 2 ? "no reply within the timeout" : "connection cut inside a frame";
		return -1;
	}
	return 0;
}
