/*
 * repl_server.c - answers replica protocol requests (docs/PROTOCOL.md).
 * Requests are untrusted: counts are bounded by the frame that carries
 * them, levels and nodes are checked by the library, events are checked
 * before they are appended, and no request names a file.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repl_server.h"

int repl_server_open(repl_server *srv, const char *dir)
{
	memset(srv, 0, sizeof *srv);
	srv->dir = dir;
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	oo.flags = TDM_OPEN_READONLY;
	return tdm_store_open(&srv->s, dir, &oo);
}

int repl_server_close(repl_server *srv)
{
	int r = 0;
	if (srv->s && srv->writable)
		r = tdm_sync(srv->s);
	if (srv->s) {
		int c = tdm_store_close(srv->s);
		r = r ? r : c;
	}
	srv->s = NULL;
	wbuf_free(&srv->out);
	arena_free(&srv->arena);
	free(srv->events);
	free(srv->fps);
	return r;
}

static int emit(repl_server *srv)
{
	wbuf_end_frame(&srv->out);
	if (srv->out.failed)
		return -1;
	return srv->emit(srv->emit_ctx, &srv->out);
}

/* Replies ERROR with a code and a message (the library's when `fmt` is
 * NULL); returns -1: the session ends. */
static int reply_error(repl_server *srv, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int reply_error(repl_server *srv, int code, const char *fmt, ...)
{
	char msg[512];
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
	} else {
		snprintf(msg, sizeof msg, "%s", tdm_error_message());
	}
	wbuf_frame(&srv->out, REPL_ERROR);
	wbuf_varint(&srv->out, (uint64_t)-code);
	wbuf_varint(&srv->out, strlen(msg));
	wbuf_bytes(&srv->out, msg, strlen(msg));
	emit(srv);
	return -1;
}

static int bad_request(repl_server *srv, rbuf *r)
{
	return reply_error(srv, TDM_EINVAL, "bad request: %s (byte %zu of the message)",
	                   r->err, r->err_at + 1);
}

static int do_hello(repl_server *srv, rbuf *r)
{
	const uint8_t *magic = rbuf_bytes(r, strlen(REPL_MAGIC));
	uint8_t version = rbuf_u8(r);
	if (!rbuf_done(r) || memcmp(magic, REPL_MAGIC, strlen(REPL_MAGIC)) != 0)
		return reply_error(srv, TDM_EINVAL, "bad hello: not a tidemark replica peer");
	if (version != REPL_VERSION)
		return reply_error(srv, TDM_EMISMATCH, "protocol version %u is not %d", version,
		                   REPL_VERSION);
	tdm_options o;
	tdm_store_options(&o, srv->s);
	wbuf_frame(&srv->out, REPL_HELLO | REPL_REPLY);
	wbuf_u8(&srv->out, REPL_VERSION);
	wbuf_u64(&srv->out, (uint64_t)o.shard_duration_ns);
	wbuf_u64(&srv->out, (uint64_t)o.grace_ns);
	wbuf_u8(&srv->out, TDM_DIGEST_LEAF_LEVEL);
	wbuf_u8(&srv->out, TDM_DIGEST_FANOUT);
	return emit(srv);
}

static int do_shards(repl_server *srv, rbuf *r)
{
	int64_t from = rbuf_i64(r), to = rbuf_i64(r);
	if (!rbuf_done(r))
		return bad_request(srv, r);
	tdm_shard_digest *sd;
	size_t n;
	int e = tdm_digest_shards(&sd, &n, srv->s, from, to);
	if (e)
		return reply_error(srv, e, NULL);
	wbuf_frame(&srv->out, REPL_SHARDS | REPL_REPLY);
	wbuf_varint(&srv->out, n);
	for (size_t i = 0; i < n; i++) {
		wbuf_u64(&srv->out, (uint64_t)sd[i].shard);
		wbuf_varint(&srv->out, sd[i].digest.count);
		wbuf_u64(&srv->out, sd[i].digest.sum);
	}
	free(sd);
	return emit(srv);
}

static int do_children(repl_server *srv, rbuf *r)
{
	int64_t from = rbuf_i64(r), to = rbuf_i64(r);
	size_t n = rbuf_count(r, 13);
	/* A node's reply can be 22 times its request: bound the frame (and the
	 * work) as the client does (repl_sync.c). */
	if (n > REPL_BATCH_ITEMS)
		rbuf_fail(r, "more nodes than one request may ask for");
	wbuf_frame(&srv->out, REPL_CHILDREN | REPL_REPLY);
	for (size_t i = 0; i < n && !r->err; i++) {
		int64_t shard = rbuf_i64(r);
		uint8_t level = rbuf_u8(r);
		uint32_t node = rbuf_u32(r);
		if (r->err)
			break;
		tdm_digest d[TDM_DIGEST_FANOUT];
		int e = tdm_digest_children(d, srv->s, shard, level, node, from, to);
		if (e)
			return reply_error(srv, e, NULL);
		uint16_t mask = 0;
		for (int c = 0; c < TDM_DIGEST_FANOUT; c++)
			mask |= (uint16_t)((d[c].count != 0) << c);
		wbuf_u16(&srv->out, mask);
		for (int c = 0; c < TDM_DIGEST_FANOUT; c++)
			if (d[c].count) {
				wbuf_varint(&srv->out, d[c].count);
				wbuf_u64(&srv->out, d[c].sum);
			}
	}
	if (!rbuf_done(r))
		return bad_request(srv, r);
	return emit(srv);
}

/* ---- leaves ----------------------------------------------------------- */

static int add_fp(void *ctx, const tdm_event *ev, uint64_t fp)
{
	(void)ev;
	repl_server *srv = ctx;
	if (srv->out.len - 4 > REPL_MAX_FRAME - 16)
		return TDM_ERROR; /* a leaf of millions of events */
	wbuf_u64(&srv->out, fp);
	return 0;
}

static int leaf_fps(repl_server *srv, rbuf *r, tdm_leaf_reader *rd)
{
	int64_t from = rbuf_i64(r), to = rbuf_i64(r);
	size_t n = rbuf_count(r, 12);
	wbuf_frame(&srv->out, REPL_LEAF_FPS | REPL_REPLY);
	for (size_t i = 0; i < n && !r->err; i++) {
		int64_t shard = rbuf_i64(r);
		uint32_t leaf = rbuf_u32(r);
		if (r->err)
			break;
		/* A count, then the fingerprints: the count is patched after. */
		if (srv->out.len - 4 > REPL_MAX_FRAME - 16)
			return reply_error(srv, TDM_ERROR, "leaves too large for one reply");
		size_t at = srv->out.len;
		wbuf_u32(&srv->out, 0);
		int e = tdm_leaf_reader_events(rd, shard, leaf, from, to, add_fp, srv);
		if (e == TDM_ERROR)
			return reply_error(srv, e, "leaf too large for one reply");
		if (e)
			return reply_error(srv, e, NULL);
		if (srv->out.failed)
			return reply_error(srv, TDM_ENOMEM, "out of memory");
		uint32_t k = (uint32_t)((srv->out.len - at - 4) / 8);
		for (int b = 0; b < 4; b++)
			srv->out.data[at + b] = (uint8_t)(k >> (8 * b));
	}
	if (!rbuf_done(r))
		return bad_request(srv, r);
	return emit(srv);
}

/* Both leaf requests read through one reader: the leaves of one request
 * see one state of the store, and its shard files are opened once. */
static int with_reader(repl_server *srv, rbuf *r,
                       int (*fn)(repl_server *, rbuf *, tdm_leaf_reader *))
{
	tdm_leaf_reader *rd;
	int e = tdm_leaf_reader_open(&rd, srv->s);
	if (e)
		return reply_error(srv, e, NULL);
	int rc = fn(srv, r, rd);
	tdm_leaf_reader_close(rd);
	return rc;
}

static int do_leaf_fps(repl_server *srv, rbuf *r)
{
	return with_reader(srv, r, leaf_fps);
}

typedef struct fetch {
	repl_server *srv;
	size_t item;
	int all, want_events;
	const uint64_t *fps;
	size_t n_fps;
	size_t in_frame; /* entries in the frame being filled */
	size_t count_at; /* where its entry count goes */
	int failed;
} fetch;

static void fetch_start_frame(fetch *f)
{
	wbuf_frame(&f->srv->out, REPL_FETCH | REPL_REPLY);
	f->count_at = f->srv->out.len;
	wbuf_u8(&f->srv->out, 0); /* last? */
	wbuf_u32(&f->srv->out, 0);
	f->in_frame = 0;
}

static int fetch_flush(fetch *f, int last)
{
	wbuf *o = &f->srv->out;
	if (o->failed)
		return -1;
	o->data[f->count_at] = (uint8_t)last;
	for (int b = 0; b < 4; b++)
		o->data[f->count_at + 1 + b] = (uint8_t)(f->in_frame >> (8 * b));
	return emit(f->srv);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int fetch_event(void *ctx, const tdm_event *ev, uint64_t fp)
{
	fetch *f = ctx;
	if (!f->all && (!f->n_fps || !bsearch(&fp, f->fps, f->n_fps, sizeof fp, cmp_u64)))
		return 0;
	wbuf *o = &f->srv->out;
	wbuf_varint(o, f->item);
	wbuf_u64(o, fp);
	if (f->want_events)
		wbuf_event(o, ev);
	f->in_frame++;
	if (o->len >= REPL_BATCH_BYTES) {
		if (fetch_flush(f, 0)) {
			f->failed = 1;
			return TDM_EIO;
		}
		fetch_start_frame(f);
	}
	return 0;
}

/* Replies as a run of frames, each with a flag saying whether it is the
 * last: a leaf's events may not fit in one. */
static int fetch_items(repl_server *srv, rbuf *r, tdm_leaf_reader *rd)
{
	int64_t from = rbuf_i64(r), to = rbuf_i64(r);
	uint8_t want = rbuf_u8(r);
	size_t n = rbuf_count(r, 14);
	if (want > 1)
		rbuf_fail(r, "want flag is neither 0 nor 1");
	fetch f = {.srv = srv, .want_events = want};
	fetch_start_frame(&f);
	for (size_t i = 0; i < n && !r->err; i++) {
		int64_t shard = rbuf_i64(r);
		uint32_t leaf = rbuf_u32(r);
		uint8_t all = rbuf_u8(r);
		size_t k = rbuf_count(r, 8);
		if (all > 1 || (all && k))
			rbuf_fail(r, "bad fetch item: all flag with fingerprints");
		if (r->err)
			break;
		if (k > srv->cap_fps) {
			uint64_t *p = realloc(srv->fps, k * sizeof *p);
			if (!p)
				return reply_error(srv, TDM_ENOMEM, "out of memory");
			srv->fps = p;
			srv->cap_fps = k;
		}
		for (size_t j = 0; j < k; j++)
			srv->fps[j] = rbuf_u64(r);
		if (k) /* srv->fps may still be NULL */
			qsort(srv->fps, k, sizeof *srv->fps, cmp_u64);
		f.item = i;
		f.all = all;
		f.fps = srv->fps;
		f.n_fps = k;
		int e = tdm_leaf_reader_events(rd, shard, leaf, from, to, fetch_event, &f);
		if (f.failed)
			return -1;
		if (e)
			return reply_error(srv, e, NULL);
	}
	if (!rbuf_done(r))
		return bad_request(srv, r);
	return fetch_flush(&f, 1);
}

static int do_fetch(repl_server *srv, rbuf *r)
{
	return with_reader(srv, r, fetch_items);
}

/* ---- appends ---------------------------------------------------------- */

/* The first events a peer sends make us the store's writer. Each PUT is
 * durable when it is answered (durability batch): a session has a few
 * PUTs of up to 4 MiB, and the interval mode's UNSYNCED marker would cost
 * two fsyncs at this open and a third LMDB sync at the goodbye, more than
 * the commits' own syncs. */
static int become_writer(repl_server *srv)
{
	if (srv->writable)
		return 0;
	int e = tdm_store_close(srv->s);
	srv->s = NULL;
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	oo.durability = TDM_DURABILITY_BATCH;
	if (!e)
		e = tdm_store_open(&srv->s, srv->dir, &oo);
	if (!e)
		srv->writable = 1;
	return e;
}

static int do_put(repl_server *srv, rbuf *r)
{
	size_t n = rbuf_count(r, 14);
	if (n > srv->cap_events) {
		tdm_event *p = realloc(srv->events, n * sizeof *p);
		if (!p)
			return reply_error(srv, TDM_ENOMEM, "out of memory");
		srv->events = p;
		srv->cap_events = n;
	}
	arena_reset(&srv->arena);
	for (size_t i = 0; i < n && !r->err; i++)
		rbuf_event(r, &srv->events[i], &srv->arena);
	if (!rbuf_done(r))
		return bad_request(srv, r);
	arena_finish(&srv->arena, srv->events, n);
	for (size_t i = 0; i < n; i++)
		if (tdm_event_check(&srv->events[i])) {
			char what[400];
			snprintf(what, sizeof what, "event %zu of the message: %s", i + 1,
			         tdm_error_message());
			return reply_error(srv, TDM_EINVAL, "bad request: %s", what);
		}
	tdm_append_result res = {0};
	int e = become_writer(srv);
	if (!e)
		e = tdm_append(&res, NULL, srv->s, srv->events, n);
	if (e)
		return reply_error(srv, e, NULL);
	wbuf_frame(&srv->out, REPL_PUT | REPL_REPLY);
	wbuf_varint(&srv->out, res.appended);
	wbuf_varint(&srv->out, res.duplicates);
	wbuf_varint(&srv->out, res.late);
	return emit(srv);
}

int repl_server_handle(repl_server *srv, const uint8_t *req, size_t len)
{
	if (len == 0) /* frame_read never gives one; req + 1 would be past the end */
		return reply_error(srv, TDM_EINVAL, "bad request: an empty message");
	rbuf r;
	rbuf_init(&r, req + 1, len - 1);
	switch (req[0]) {
	case REPL_HELLO:
		return do_hello(srv, &r);
	case REPL_SHARDS:
		return do_shards(srv, &r);
	case REPL_CHILDREN:
		return do_children(srv, &r);
	case REPL_LEAF_FPS:
		return do_leaf_fps(srv, &r);
	case REPL_FETCH:
		return do_fetch(srv, &r);
	case REPL_PUT:
		return do_put(srv, &r);
	case REPL_BYE: {
		int e = srv->writable ? tdm_sync(srv->s) : 0;
		if (e)
			return reply_error(srv, e, NULL);
		wbuf_frame(&srv->out, REPL_BYE | REPL_REPLY);
		return emit(srv) ? -1 : 1;
	}
	default:
		return reply_error(srv, TDM_EINVAL, "bad request: unknown message type %u", req[0]);
	}
}
