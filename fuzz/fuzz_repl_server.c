/* fuzz_repl_server.c - the replica protocol's server (src/cli/repl_server.c),
 * what `tidemark serve --stdio` runs for an untrusted peer, fed a stream of
 * request frames exactly as serve reads them from stdin: a 4-byte
 * little-endian length, then the body (type byte first). A length past the
 * end of the input is cut to what is left, so mutated inputs still reach
 * the server; a length of 0 or above REPL_MAX_FRAME ends the stream, as
 * frame_read does.
 *
 * Every reply frame must be well formed: its length prefix matches, it
 * fits REPL_MAX_FRAME, its type is the request's | 0x80 or ERROR, and its
 * body parses completely as docs say that reply is laid out (an ERROR has
 * a code and a readable message; a FETCH event decodes, passes
 * tdm_event_check, has the fingerprint sent with it and a ts in the asked
 * range). A request answered 0 or 1 got a complete reply, -1 ended with
 * an ERROR, and nothing comes after a complete reply. PUT requests append:
 * afterwards tdm_verify must find no problem and the store must hold what
 * the replies say was appended. Each input starts from the same store.
 *
 * TDM_FUZZ_REPL_SEEDS=DIR makes the first run write the seed conversations
 * (fuzz/corpus/repl_server/) into DIR, built against this store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../src/cli/repl_server.h"
#include "fuzz.h"

static char base[256], work[256];
static int dirty; /* the work copy was written to */
static uint64_t base_events;

#define N_EVENTS 300
#define DURATION 1000000000ll /* 1 s shards */

/* ---- the store -------------------------------------------------------- */

static tdm_label lab[2] = {{"host", "web-1"}, {"level", "error"}};
static char payload[N_EVENTS][32];

static tdm_event make_event(int i)
{
	int64_t ts = 1000000000ll + i * 10000000ll;
	if (i % 10 == 3)
		ts -= 50000000; /* out of order, within grace */
	if (i % 25 == 7)
		ts -= 400000000; /* late */
	snprintf(payload[i], sizeof payload[i], "event %d", i);
	return (tdm_event){.ts = ts, .id = (uint32_t)i * 2654435761u, .labels = lab,
	                   .n_labels = (size_t)(i % 3), .payload = payload[i],
	                   .payload_len = strlen(payload[i])};
}

static void restore(void)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", work, base, work);
	if (system(cmd) != 0)
		abort();
}

static void write_seeds(const char *dir);

static void setup(void)
{
	if (base[0])
		return;
	char tmpl[64];
	fuzz_tempdir(tmpl, sizeof tmpl, "repl");
	snprintf(base, sizeof base, "%s/base", tmpl);
	snprintf(work, sizeof work, "%s/work", tmpl);
	tdm_options o = TDM_OPTIONS_INIT;
	o.shard_duration_ns = DURATION;
	o.grace_ns = 100000000; /* 100 ms */
	o.index_interval = 256;
	tdm_store *s;
	if (tdm_store_create(base, &o) || tdm_store_open(&s, base, NULL))
		abort();
	tdm_event evs[N_EVENTS];
	for (int i = 0; i < N_EVENTS; i++)
		evs[i] = make_event(i);
	tdm_append_result res;
	for (int i = 0; i < N_EVENTS; i += 50)
		if (tdm_append(&res, NULL, s, evs + i, 50))
			abort();
	tdm_stat st;
	if (tdm_stat_get(&st, s) || tdm_store_close(s))
		abort();
	base_events = st.events;
	restore();
	const char *seeds = getenv("TDM_FUZZ_REPL_SEEDS");
	if (seeds)
		write_seeds(seeds);
}

/* ---- checking replies ------------------------------------------------- */

/* What the request being answered asked for, and what came back so far. */
typedef struct conv {
	uint8_t type;
	int parsed; /* the fields below were read from the request */
	int64_t from, to;
	uint8_t want;
	uint64_t n_items;
	int done;   /* a complete reply (or an ERROR) was emitted */
	int error;  /* that was an ERROR */
	uint64_t next_item; /* FETCH: items come in order */
	uint64_t appended;  /* PUT replies, over the whole input */
	event_arena arena;
} conv;

#define CHECK(c)                                                                         \
	do {                                                                                 \
		if (!(c)) {                                                                      \
			fprintf(stderr, "fuzz_repl_server: %s:%d: check failed: %s\n", __FILE__,     \
			        __LINE__, #c);                                                       \
			abort();                                                                     \
		}                                                                                \
	} while (0)

static void begin_request(conv *c, const uint8_t *req, size_t len)
{
	c->type = req[0];
	c->done = c->error = 0;
	c->next_item = 0;
	rbuf r;
	rbuf_init(&r, req + 1, len - 1);
	c->parsed = 0;
	if (c->type == REPL_CHILDREN || c->type == REPL_LEAF_FPS || c->type == REPL_FETCH) {
		c->from = rbuf_i64(&r);
		c->to = rbuf_i64(&r);
		c->want = c->type == REPL_FETCH ? rbuf_u8(&r) : 0;
		c->n_items = rbuf_varint(&r);
		c->parsed = !r.err;
	} else if (c->type == REPL_PUT) {
		c->n_items = rbuf_varint(&r);
		c->parsed = !r.err;
	}
}

static void check_error(rbuf *r)
{
	uint64_t code = rbuf_varint(r);
	size_t n = (size_t)rbuf_varint(r);
	const uint8_t *msg = rbuf_bytes(r, n);
	CHECK(rbuf_done(r));
	CHECK(code >= 1 && code < 64);
	CHECK(n > 0);
	for (size_t i = 0; i < n; i++)
		CHECK(msg[i] >= 0x20 && msg[i] != 0x7f);
}

static void check_fetch(conv *c, rbuf *r)
{
	uint8_t last = rbuf_u8(r);
	uint32_t k = rbuf_u32(r);
	CHECK(!r->err && last <= 1);
	CHECK(c->parsed);
	for (uint32_t e = 0; e < k; e++) {
		uint64_t item = rbuf_varint(r);
		uint64_t fp = rbuf_u64(r);
		CHECK(!r->err);
		CHECK(item < c->n_items && item >= c->next_item);
		c->next_item = item;
		if (!c->want)
			continue;
		tdm_event ev;
		arena_reset(&c->arena);
		CHECK(rbuf_event(r, &ev, &c->arena) == 0);
		arena_finish(&c->arena, &ev, 1);
		CHECK(tdm_event_check(&ev) == 0);
		CHECK(tdm_event_fingerprint(&ev) == fp);
		CHECK(ev.ts >= c->from && ev.ts < c->to);
	}
	CHECK(rbuf_done(r));
	c->done = last;
}

static int check_frame(void *ctx, const wbuf *f)
{
	conv *c = ctx;
	CHECK(!f->failed);
	CHECK(f->len >= 5 && f->len - 4 <= REPL_MAX_FRAME);
	uint32_t n = (uint32_t)f->data[0] | (uint32_t)f->data[1] << 8 |
	             (uint32_t)f->data[2] << 16 | (uint32_t)f->data[3] << 24;
	CHECK(n == f->len - 4);
	CHECK(!c->done); /* nothing after a complete reply */
	uint8_t t = f->data[4];
	rbuf r;
	rbuf_init(&r, f->data + 5, f->len - 5);
	if (t == REPL_ERROR) {
		check_error(&r);
		c->done = c->error = 1;
		return 0;
	}
	CHECK(t == (c->type | REPL_REPLY));
	switch (c->type) {
	case REPL_HELLO: {
		uint8_t version = rbuf_u8(&r);
		int64_t dur = rbuf_i64(&r);
		rbuf_i64(&r);
		uint8_t leaf = rbuf_u8(&r), fanout = rbuf_u8(&r);
		CHECK(rbuf_done(&r) && version == REPL_VERSION && dur == DURATION &&
		      leaf == TDM_DIGEST_LEAF_LEVEL && fanout == TDM_DIGEST_FANOUT);
		break;
	}
	case REPL_SHARDS: {
		size_t k = rbuf_count(&r, 17);
		int64_t prev = 0;
		for (size_t i = 0; i < k; i++) {
			int64_t shard = rbuf_i64(&r);
			uint64_t count = rbuf_varint(&r);
			rbuf_u64(&r);
			CHECK(!r.err && count > 0);
			CHECK(i == 0 || shard > prev);
			prev = shard;
		}
		CHECK(rbuf_done(&r));
		break;
	}
	case REPL_CHILDREN: {
		uint64_t items = 0;
		while (r.p < r.end) {
			uint16_t mask = rbuf_u16(&r);
			for (int b = 0; b < TDM_DIGEST_FANOUT; b++)
				if (mask & (1u << b)) {
					CHECK(rbuf_varint(&r) > 0);
					rbuf_u64(&r);
				}
			CHECK(!r.err);
			items++;
		}
		CHECK(c->parsed && items == c->n_items);
		break;
	}
	case REPL_LEAF_FPS: {
		uint64_t items = 0;
		while (r.p < r.end) {
			uint32_t m = rbuf_u32(&r);
			CHECK(rbuf_bytes(&r, (size_t)m * 8) != NULL);
			items++;
		}
		CHECK(c->parsed && items == c->n_items);
		break;
	}
	case REPL_FETCH:
		check_fetch(c, &r);
		return 0;
	case REPL_PUT: {
		uint64_t appended = rbuf_varint(&r), dups = rbuf_varint(&r),
		         late = rbuf_varint(&r);
		CHECK(rbuf_done(&r) && c->parsed);
		CHECK(appended + dups == c->n_items && late <= appended);
		c->appended += appended;
		break;
	}
	case REPL_BYE:
		CHECK(rbuf_done(&r));
		break;
	default:
		CHECK(!"a reply to an unknown request");
	}
	c->done = 1;
	return 0;
}

/* A PUT the server accepted must not hold a label with a NUL byte: the
 * server would store a shorter label than the one sent. */
static void check_put_labels(const uint8_t *req, size_t len)
{
	rbuf r;
	rbuf_init(&r, req + 1, len - 1);
	size_t n = rbuf_count(&r, 14);
	for (size_t i = 0; i < n && !r.err; i++) {
		rbuf_i64(&r);
		rbuf_u32(&r);
		size_t nl = rbuf_count(&r, 2);
		for (size_t j = 0; j < 2 * nl && !r.err; j++) {
			size_t l = (size_t)rbuf_varint(&r);
			const uint8_t *p = rbuf_bytes(&r, l);
			CHECK(!p || !memchr(p, 0, l));
		}
		rbuf_bytes(&r, (size_t)rbuf_varint(&r));
	}
}

/* ---- the run ------------------------------------------------------------ */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	if (dirty) {
		restore();
		dirty = 0;
	}
	repl_server srv;
	if (repl_server_open(&srv, work))
		abort();
	conv c = {0};
	srv.emit = check_frame;
	srv.emit_ctx = &c;
	size_t off = 0;
	while (size - off >= 4) {
		uint32_t n = (uint32_t)data[off] | (uint32_t)data[off + 1] << 8 |
		             (uint32_t)data[off + 2] << 16 | (uint32_t)data[off + 3] << 24;
		off += 4;
		if (n > size - off)
			n = (uint32_t)(size - off);
		if (n == 0 || n > REPL_MAX_FRAME)
			break;
		begin_request(&c, data + off, n);
		int r = repl_server_handle(&srv, data + off, n);
		CHECK(r >= -1 && r <= 1);
		CHECK(c.done);
		CHECK(r == -1 ? c.error : !c.error);
		CHECK(r != 1 || c.type == REPL_BYE);
		if (c.type == REPL_PUT && !c.error)
			check_put_labels(data + off, n);
		off += n;
		if (r)
			break;
	}
	int wrote = srv.writable;
	CHECK(repl_server_close(&srv) == 0);
	arena_free(&c.arena);
	if (wrote) {
		dirty = 1;
		tdm_store *s;
		uint64_t problems = 1;
		tdm_stat st;
		CHECK(tdm_store_open(&s, work, NULL) == 0);
		CHECK(tdm_verify(&problems, s, NULL, NULL) == 0 && problems == 0);
		CHECK(tdm_stat_get(&st, s) == 0 && st.events == base_events + c.appended);
		CHECK(tdm_store_close(s) == 0);
	}
	return 0;
}

/* ---- seed conversations --------------------------------------------------- */

typedef struct seed {
	wbuf all; /* the frames, as serve reads them */
	wbuf req;
} seed;

static void send(seed *s)
{
	wbuf_end_frame(&s->req);
	wbuf_bytes(&s->all, s->req.data, s->req.len);
}

static void hello(seed *s, uint8_t version)
{
	wbuf_frame(&s->req, REPL_HELLO);
	wbuf_bytes(&s->req, REPL_MAGIC, strlen(REPL_MAGIC));
	wbuf_u8(&s->req, version);
	send(s);
}

static void bye(seed *s)
{
	wbuf_frame(&s->req, REPL_BYE);
	send(s);
}

static void range(seed *s, uint8_t type, int64_t from, int64_t to)
{
	wbuf_frame(&s->req, type);
	wbuf_u64(&s->req, (uint64_t)from);
	wbuf_u64(&s->req, (uint64_t)to);
}

static void save(seed *s, const char *dir, const char *name)
{
	char p[600];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "wb");
	if (!f || fwrite(s->all.data, 1, s->all.len, f) != s->all.len || fclose(f))
		abort();
	if (s->all.len >= 4096)
		fprintf(stderr, "seed %s is %zu bytes\n", name, s->all.len);
	wbuf_reset(&s->all);
}

/* Leaves (shard, leaf) that hold events, found down the digest tree. */
static int64_t leaf_shard[64];
static uint32_t leaf_id[64];
static size_t n_leaves;

static void find_leaves(tdm_store *st, int64_t shard, unsigned level, uint32_t node)
{
	tdm_digest d[TDM_DIGEST_FANOUT];
	if (tdm_digest_children(d, st, shard, level, node, INT64_MIN, INT64_MAX))
		abort();
	for (uint32_t c = 0; c < TDM_DIGEST_FANOUT && n_leaves < 64; c++) {
		if (!d[c].count)
			continue;
		if (level + 1 == TDM_DIGEST_LEAF_LEVEL) {
			leaf_shard[n_leaves] = shard;
			leaf_id[n_leaves++] = node * TDM_DIGEST_FANOUT + c;
		} else if (n_leaves < 8 || c == 0) { /* a few per shard */
			find_leaves(st, shard, level + 1, node * TDM_DIGEST_FANOUT + c);
		}
	}
}

static void fetch_item(seed *s, size_t leaf, int all, const uint64_t *fps, size_t n)
{
	wbuf_u64(&s->req, (uint64_t)leaf_shard[leaf]);
	wbuf_u32(&s->req, leaf_id[leaf]);
	wbuf_u8(&s->req, (uint8_t)all);
	wbuf_varint(&s->req, n);
	for (size_t i = 0; i < n; i++)
		wbuf_u64(&s->req, fps[i]);
}

static void put(seed *s, const tdm_event *evs, size_t n)
{
	wbuf_frame(&s->req, REPL_PUT);
	wbuf_varint(&s->req, n);
	for (size_t i = 0; i < n; i++)
		wbuf_event(&s->req, &evs[i]);
	send(s);
}

static void write_seeds(const char *dir)
{
	mkdir(dir, 0777);
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	oo.flags = TDM_OPEN_READONLY;
	tdm_store *st;
	tdm_shard_digest *sd;
	size_t n_shards;
	if (tdm_store_open(&st, base, &oo) ||
	    tdm_digest_shards(&sd, &n_shards, st, INT64_MIN, INT64_MAX))
		abort();
	for (size_t i = 0; i < n_shards; i++)
		find_leaves(st, sd[i].shard, 0, 0);
	seed s = {0};

	hello(&s, REPL_VERSION);
	range(&s, REPL_SHARDS, INT64_MIN, INT64_MAX);
	send(&s);
	bye(&s);
	save(&s, dir, "shards");

	hello(&s, REPL_VERSION);
	range(&s, REPL_SHARDS, 1500000000, 2500000000);
	send(&s);
	save(&s, dir, "shards-range-no-bye");

	/* CHILDREN down to the leaves along the first leaf of each shard. */
	hello(&s, REPL_VERSION);
	for (unsigned level = 0; level < TDM_DIGEST_LEAF_LEVEL; level++) {
		range(&s, REPL_CHILDREN, INT64_MIN, INT64_MAX);
		wbuf_varint(&s.req, n_shards);
		for (size_t i = 0; i < n_shards; i++) {
			uint32_t node = 0;
			for (size_t l = 0; l < n_leaves; l++)
				if (leaf_shard[l] == sd[i].shard) {
					node = leaf_id[l];
					break;
				}
			for (unsigned k = level; k < TDM_DIGEST_LEAF_LEVEL; k++)
				node /= TDM_DIGEST_FANOUT;
			wbuf_u64(&s.req, (uint64_t)sd[i].shard);
			wbuf_u8(&s.req, (uint8_t)level);
			wbuf_u32(&s.req, node);
		}
		send(&s);
	}
	bye(&s);
	save(&s, dir, "children");

	/* As repl_sync.c writes the count: a 4-byte varint; a narrow range. */
	hello(&s, REPL_VERSION);
	range(&s, REPL_CHILDREN, 1200000000, 1300000000);
	wbuf_bytes(&s.req, "\x81\x80\x80\x00", 4);
	wbuf_u64(&s.req, 1);
	wbuf_u8(&s.req, 0);
	wbuf_u32(&s.req, 0);
	send(&s);
	bye(&s);
	save(&s, dir, "children-varint4");

	/* A node out of range: an ERROR. */
	range(&s, REPL_CHILDREN, INT64_MIN, INT64_MAX);
	wbuf_varint(&s.req, 1);
	wbuf_u64(&s.req, 1);
	wbuf_u8(&s.req, 3);
	wbuf_u32(&s.req, 4096);
	send(&s);
	save(&s, dir, "children-bad-node");

	hello(&s, REPL_VERSION);
	range(&s, REPL_LEAF_FPS, INT64_MIN, INT64_MAX);
	wbuf_varint(&s.req, n_leaves < 12 ? n_leaves : 12);
	for (size_t l = 0; l < n_leaves && l < 12; l++) {
		wbuf_u64(&s.req, (uint64_t)leaf_shard[l]);
		wbuf_u32(&s.req, leaf_id[l]);
	}
	send(&s);
	range(&s, REPL_LEAF_FPS, 0, 1);
	wbuf_varint(&s.req, 1);
	wbuf_u64(&s.req, 7);
	wbuf_u32(&s.req, 65535);
	send(&s);
	bye(&s);
	save(&s, dir, "leaf-fps");

	for (uint8_t want = 0; want <= 1; want++) {
		hello(&s, REPL_VERSION);
		range(&s, REPL_FETCH, INT64_MIN, INT64_MAX);
		wbuf_u8(&s.req, want);
		wbuf_varint(&s.req, n_leaves < 6 ? n_leaves : 6);
		for (size_t l = 0; l < n_leaves && l < 6; l++)
			fetch_item(&s, l, 1, NULL, 0);
		send(&s);
		bye(&s);
		save(&s, dir, want ? "fetch-all-events" : "fetch-all-presence");
	}

	/* By fingerprints: real ones (the base store's events 0..9), a bogus
	 * one, and a leaf that does not hold them. */
	uint64_t fps[10];
	for (int i = 0; i < 10; i++) {
		tdm_event ev = make_event(i);
		fps[i] = tdm_event_fingerprint(&ev);
	}
	for (uint8_t want = 0; want <= 1; want++) {
		range(&s, REPL_FETCH, INT64_MIN, INT64_MAX);
		wbuf_u8(&s.req, want);
		wbuf_varint(&s.req, 3);
		fetch_item(&s, 0, 0, fps, 10);
		fetch_item(&s, 1, 0, fps + 1, 2);
		uint64_t bogus = 0x0123456789abcdefull;
		fetch_item(&s, 2, 0, &bogus, 1);
		send(&s);
		bye(&s);
		save(&s, dir, want ? "fetch-fps-events" : "fetch-fps-presence");
	}

	/* PUT: new events (on time, late, labelled), duplicates of stored
	 * ones, then a FETCH of what was put. */
	tdm_label l3[3] = {{"a", ""}, {"region", "eu-west"}, {"z", "\xc3\xa9t\xc3\xa9"}};
	tdm_event evs[6] = {
		{.ts = 3990000001, .id = 1, .payload = "new", .payload_len = 3},
		{.ts = 3000000000, .id = 2, .labels = l3, .n_labels = 3, .payload = "\0\1\2",
		 .payload_len = 3},
		{.ts = 1100000000, .id = 3, .payload = "late", .payload_len = 4},
		{.ts = 9000000000, .id = 4, .labels = lab, .n_labels = 1},
		make_event(5),
		make_event(6),
	};
	hello(&s, REPL_VERSION);
	put(&s, evs, 6);
	put(&s, evs, 2); /* again: duplicates */
	range(&s, REPL_SHARDS, INT64_MIN, INT64_MAX);
	send(&s);
	bye(&s);
	save(&s, dir, "put");

	put(&s, evs + 3, 1);
	put(&s, evs, 0);
	bye(&s);
	save(&s, dir, "put-no-hello");

	/* A bad event: a label with an empty key. */
	tdm_label bad = {"", "x"};
	tdm_event be = {.ts = 1, .id = 1, .labels = &bad, .n_labels = 1};
	put(&s, &be, 1);
	save(&s, dir, "put-bad-event");

	/* Errors: a bad magic, another version, an unknown type, a FETCH with
	 * want 2, bytes left over. */
	wbuf_frame(&s.req, REPL_HELLO);
	wbuf_bytes(&s.req, "TDMREPX\1", 8);
	send(&s);
	save(&s, dir, "hello-bad-magic");
	hello(&s, 2);
	save(&s, dir, "hello-version-2");
	wbuf_frame(&s.req, 0x42);
	send(&s);
	save(&s, dir, "unknown-type");
	range(&s, REPL_FETCH, 0, INT64_MAX);
	wbuf_u8(&s.req, 2);
	wbuf_varint(&s.req, 0);
	send(&s);
	save(&s, dir, "fetch-want-2");
	range(&s, REPL_SHARDS, 0, 1);
	wbuf_u8(&s.req, 0);
	send(&s);
	save(&s, dir, "shards-trailing");

	wbuf_free(&s.all);
	wbuf_free(&s.req);
	free(sd);
	tdm_store_close(st);
}
