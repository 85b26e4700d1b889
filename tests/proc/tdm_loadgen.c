/*
 * tdm_loadgen.c - a writer and a reader process for the real-process
 * durability tests (tests/proc/test_proc.py). Public API only.
 *
 *   tdm_loadgen write DIR [--seed S] [--batches N] [--batch-size K]
 *                         [--durability none|interval|batch]
 *                         [--ack-log FILE] [--pause-us U] [--replay R]
 *   tdm_loadgen read DIR [--seed S] [--batch-size K] [--loops L]
 *                        [--window-s W] [--full-every F] [--reopen-every R]
 *                        [--expect-batches E]
 *
 * The events of batch b are a pure function of (seed, b, K): every slot i
 * of a batch is either a new event E(b, i) or a duplicate of a new event of
 * an earlier batch or of an earlier slot of the same batch. New events are
 * on time (out of order within the grace window) or late (older than the
 * watermark minus grace: they go to the recon file). Every new event carries
 * the labels batch=<b>, slot=<i>, size=<number of new events in batch b>
 * and host=web-<n>; its payload is text or, now and then, binary.
 *
 * write: creates the store if missing (shard 5m, grace 10s), opens it as
 * the writer and appends batches 0..N-1 in order. After each tdm_append
 * returns 0 it writes "ack <b> <appended> <duplicates>" to the ack log with
 * one write(2) (a SIGKILL keeps the page cache, so no fsync is needed).
 * A run writes "start <pid>" before it opens the store, "run <pid>" once it
 * has, and "done <pid>" at the end. Restarted with
 * the same arguments it starts again from batch 0: what was committed
 * comes back as duplicates; with --replay R it starts R batches before the
 * last batch acknowledged in the ack log instead (so long kill series stay
 * fast). --pause-us sleeps between batches. Exits 75 when another writer
 * holds the store.
 *
 * read: L times, reads a range of the store read-only (the last W seconds
 * of event time, or a W-second slice ten minutes back where late events
 * land, and the whole store every F-th loop) and checks that every
 * event returned is exactly the generated E(b, i), that no event comes
 * twice, and that each batch seen is complete within the range: it holds
 * every new event of that batch whose ts is in the range. Any violation
 * ends the program with exit 1 and a message. Prints "reads <n> events
 * <m> batches-seen <k>" at the end. The store is opened anew every R-th
 * loop (--reopen-every; 1, the default, is every loop; 0 is once). With
 * --expect-batches E, a whole-store read must also find batches 0..E-1.
 *
 * Exit codes: 0 ok, 1 check failed, 2 usage, 74 library error, 75 locked.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tidemark.h"

#define SEC 1000000000ll
/* 2025-11-22T10:00:00Z */
#define T0 (1763805600ll * SEC)
#define STEP (1 * SEC)          /* event time between two batches */
#define SHARD (5 * 60 * SEC)    /* shard duration of the store */
#define GRACE (10 * SEC)        /* grace of the store */
#define LATE_SPAN (15 * 60 * SEC)

enum { K_NEW = 0, K_NEW_LATE = 1, K_DUP_OLD = 2, K_DUP_IN = 3 };

/* ---- Deterministic generation ------------------------------------------ */

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t h4(uint64_t seed, uint64_t b, uint64_t i, uint64_t salt)
{
	return mix(mix(mix(mix(seed) ^ b) ^ i) ^ salt);
}

static uint64_t g_seed = 1;
static size_t g_k = 50;

static int kind_of(uint64_t b, size_t i)
{
	if (i == 0)
		return K_NEW;
	unsigned r = (unsigned)(h4(g_seed, b, i, 1) % 100);
	if (r < 70)
		return K_NEW;
	if (r < 80)
		return K_NEW_LATE;
	if (r < 92)
		return b > 0 ? K_DUP_OLD : K_NEW;
	return K_DUP_IN;
}

static int is_new(int kind)
{
	return kind == K_NEW || kind == K_NEW_LATE;
}

/* The number of new events in batch b (cached: the reader asks per event). */
static size_t size_of(uint64_t b)
{
	enum { CACHE = 4096 };
	static uint64_t tag[CACHE];
	static size_t val[CACHE];
	size_t c = (size_t)(b % CACHE);
	if (tag[c] == b + 1)
		return val[c];
	size_t n = 0;
	for (size_t i = 0; i < g_k; i++)
		n += is_new(kind_of(b, i));
	tag[c] = b + 1;
	val[c] = n;
	return n;
}

/* A new event slot at or below i in batch b (slot 0 always is). */
static size_t new_at_or_below(uint64_t b, size_t i)
{
	while (!is_new(kind_of(b, i)))
		i--;
	return i;
}

/* Where slot i of batch b gets its event from: (ob, oi) is a new slot. */
static void origin_of(uint64_t *ob, size_t *oi, uint64_t b, size_t i)
{
	int k = kind_of(b, i);
	if (is_new(k)) {
		*ob = b;
		*oi = i;
	} else if (k == K_DUP_IN) {
		*ob = b;
		*oi = new_at_or_below(b, (size_t)(h4(g_seed, b, i, 2) % i));
	} else {
		*ob = h4(g_seed, b, i, 3) % b;
		*oi = new_at_or_below(*ob, (size_t)(h4(g_seed, b, i, 4) % g_k));
	}
}

/* A generated event with its own storage. */
typedef struct gen_event {
	tdm_event ev;
	tdm_label labels[4];
	char batch[24], slot[24], size[24], host[24];
	unsigned char payload[256];
} gen_event;

static int64_t ts_of(uint64_t b, size_t i)
{
	int64_t now = T0 + (int64_t)b * STEP;
	uint64_t r = h4(g_seed, b, i, 5);
	if (kind_of(b, i) == K_NEW_LATE)
		return now - GRACE - SEC - (int64_t)(r % (uint64_t)LATE_SPAN);
	/* Out of order within half the grace window, or a little ahead. */
	if (r & 1)
		return now + (int64_t)((r >> 1) % (uint64_t)STEP);
	return now - (int64_t)((r >> 1) % (uint64_t)(GRACE / 2));
}

/* Fills g with the new event E(b, i); (b, i) must be a new slot. */
static void gen_new(gen_event *g, uint64_t b, size_t i)
{
	memset(&g->ev, 0, sizeof g->ev);
	snprintf(g->batch, sizeof g->batch, "%" PRIu64, b);
	snprintf(g->slot, sizeof g->slot, "%zu", i);
	snprintf(g->size, sizeof g->size, "%zu", size_of(b));
	uint64_t r = h4(g_seed, b, i, 6);
	snprintf(g->host, sizeof g->host, "web-%u", (unsigned)(r % 8));
	g->labels[0] = (tdm_label){"size", g->size};
	g->labels[1] = (tdm_label){"batch", g->batch};
	g->labels[2] = (tdm_label){"host", g->host};
	g->labels[3] = (tdm_label){"slot", g->slot};
	g->ev.labels = g->labels;
	g->ev.n_labels = 4;
	g->ev.ts = ts_of(b, i);
	g->ev.id = (uint32_t)h4(g_seed, b, i, 7);
	size_t len = (size_t)((r >> 8) % sizeof g->payload);
	int binary = (r >> 20) % 10 == 0;
	uint64_t x = h4(g_seed, b, i, 8);
	for (size_t j = 0; j < len; j++) {
		if (j % 8 == 0)
			x = mix(x);
		unsigned char c = (unsigned char)(x >> (8 * (j % 8)));
		g->payload[j] = binary ? c : (unsigned char)("abcdefghij klmnop/=:"[c % 20]);
	}
	g->ev.payload = g->payload;
	g->ev.payload_len = len;
}

/* ---- Small helpers ------------------------------------------------------ */

static int lib_fail(const char *what, int r)
{
	fprintf(stderr, "tdm_loadgen: %s: %s (%s)\n", what, tdm_error_message(),
	        tdm_strerror(r));
	return r == TDM_ELOCKED ? 75 : 74;
}

static int parse_u64(uint64_t *out, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-')
		return -1;
	*out = v;
	return 0;
}

static void write_all(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(fd, buf, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			perror("tdm_loadgen: ack log");
			exit(74);
		}
		buf += w;
		n -= (size_t)w;
	}
}

static const char usage[] =
	"usage: tdm_loadgen write DIR [--seed S] [--batches N] [--batch-size K]\n"
	"                             [--durability none|interval|batch]\n"
	"                             [--ack-log FILE] [--pause-us U] [--replay R]\n"
	"       tdm_loadgen read DIR [--seed S] [--batch-size K] [--loops L]\n"
	"                            [--window-s W] [--full-every F] [--reopen-every R]\n"
	"                            [--expect-batches E]\n";

/* ---- write ---------------------------------------------------------------- */

/* The first batch to append: R before the last one the ack log has. */
static uint64_t replay_start(const char *ack_log, uint64_t replay)
{
	FILE *f = fopen(ack_log, "r");
	if (!f)
		return 0;
	char line[256];
	uint64_t b, a, d, next = 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "ack %" SCNu64 " %" SCNu64 " %" SCNu64, &b, &a, &d) == 3 &&
		    b + 1 > next)
			next = b + 1;
	fclose(f);
	return next > replay ? next - replay : 0;
}

static int do_write(const char *dir, uint64_t batches, int durability,
                    const char *ack_log, uint64_t pause_us, uint64_t replay)
{
	tdm_options opts = TDM_OPTIONS_INIT;
	opts.shard_duration_ns = SHARD;
	opts.grace_ns = GRACE;
	int r = tdm_store_create(dir, &opts);
	if (r)
		return lib_fail("create", r);
	int fd = -1;
	char line[128];
	if (ack_log) {
		fd = open(ack_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd < 0) {
			perror(ack_log);
			return 74;
		}
		int n = snprintf(line, sizeof line, "start %ld\n", (long)getpid());
		write_all(fd, line, (size_t)n);
	}
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	oo.durability = durability;
	tdm_store *s;
	if ((r = tdm_store_open(&s, dir, &oo)))
		return lib_fail("open", r);
	if (fd >= 0) {
		int n = snprintf(line, sizeof line, "run %ld\n", (long)getpid());
		write_all(fd, line, (size_t)n);
	}
	gen_event *gen = calloc(g_k, sizeof *gen);
	tdm_event *evs = calloc(g_k, sizeof *evs);
	if (!gen || !evs) {
		fprintf(stderr, "tdm_loadgen: out of memory\n");
		return 74;
	}
	uint64_t start = ack_log && replay != UINT64_MAX ? replay_start(ack_log, replay) : 0;
	for (uint64_t b = start; b < batches; b++) {
		size_t expect_new = 0;
		for (size_t i = 0; i < g_k; i++) {
			uint64_t ob;
			size_t oi;
			origin_of(&ob, &oi, b, i);
			gen_new(&gen[i], ob, oi);
			evs[i] = gen[i].ev;
			expect_new += ob == b && oi == i;
		}
		tdm_append_result res;
		if ((r = tdm_append(&res, NULL, s, evs, g_k))) {
			char what[64];
			snprintf(what, sizeof what, "append batch %" PRIu64, b);
			r = lib_fail(what, r);
			tdm_store_close(s);
			return r;
		}
		if (res.appended > expect_new || res.appended + res.duplicates != g_k) {
			fprintf(stderr, "tdm_loadgen: batch %" PRIu64 ": appended %" PRIu64
			        " duplicates %" PRIu64 ", but it has %zu new events of %zu\n",
			        b, res.appended, res.duplicates, expect_new, g_k);
			tdm_store_close(s);
			return 1;
		}
		if (fd >= 0) {
			int n = snprintf(line, sizeof line, "ack %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
			                 b, res.appended, res.duplicates);
			write_all(fd, line, (size_t)n);
		}
		if (pause_us)
			usleep((useconds_t)pause_us);
	}
	if ((r = tdm_store_close(s)))
		return lib_fail("close", r);
	if (fd >= 0) {
		int n = snprintf(line, sizeof line, "done %ld\n", (long)getpid());
		write_all(fd, line, (size_t)n);
		close(fd);
	}
	free(gen);
	free(evs);
	return 0;
}

/* ---- read ----------------------------------------------------------------- */

/* What one read saw of one batch: how many of its events, and which slots. */
typedef struct seen_batch {
	uint64_t batch;
	size_t count;
	unsigned char *slots; /* g_k flags */
} seen_batch;

typedef struct seen {
	seen_batch *v;
	size_t n, cap;
} seen;

static seen_batch *seen_get(seen *s, uint64_t b)
{
	/* Batches mostly arrive in clusters: look at the recent ones first. */
	for (size_t j = s->n; j-- > 0;)
		if (s->v[j].batch == b)
			return &s->v[j];
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 256;
		s->v = realloc(s->v, s->cap * sizeof *s->v);
		if (!s->v) {
			fprintf(stderr, "tdm_loadgen: out of memory\n");
			exit(74);
		}
	}
	seen_batch *sb = &s->v[s->n++];
	sb->batch = b;
	sb->count = 0;
	sb->slots = calloc(g_k, 1);
	if (!sb->slots) {
		fprintf(stderr, "tdm_loadgen: out of memory\n");
		exit(74);
	}
	return sb;
}

static void seen_clear(seen *s)
{
	for (size_t j = 0; j < s->n; j++)
		free(s->v[j].slots);
	s->n = 0;
}

static const char *label_of(const tdm_event *ev, const char *key)
{
	for (size_t j = 0; j < ev->n_labels; j++)
		if (!strcmp(ev->labels[j].key, key))
			return ev->labels[j].value;
	return NULL;
}

static int events_equal(const tdm_event *a, const tdm_event *b)
{
	if (a->ts != b->ts || a->id != b->id || a->n_labels != b->n_labels ||
	    a->payload_len != b->payload_len ||
	    (a->payload_len && memcmp(a->payload, b->payload, a->payload_len)))
		return 0;
	for (size_t j = 0; j < a->n_labels; j++) {
		const char *v = label_of(b, a->labels[j].key);
		if (!v || strcmp(v, a->labels[j].value))
			return 0;
	}
	return 1;
}

static int violation(uint64_t loop, int64_t from, int64_t to, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int violation(uint64_t loop, int64_t from, int64_t to, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "tdm_loadgen: read %" PRIu64 " [%" PRId64 ", %" PRId64 "): ",
	        loop, from, to);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static int do_read(const char *dir, uint64_t loops, uint64_t window_s,
                   uint64_t full_every, uint64_t reopen_every,
                   uint64_t expect_batches)
{
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	oo.flags = TDM_OPEN_READONLY;
	tdm_store *s = NULL;
	seen sn = {0};
	gen_event g;
	uint64_t total_events = 0, total_batches = 0;
	int r, rc = 0;
	for (uint64_t loop = 0; loop < loops && !rc; loop++) {
		if (!s || (reopen_every && loop % reopen_every == 0)) {
			tdm_store_close(s);
			s = NULL;
			if ((r = tdm_store_open(&s, dir, &oo)))
				return lib_fail("open read-only", r);
		}
		/* The whole store every F-th loop; otherwise the last W seconds of
		 * event time, or on odd loops a W-second slice ten minutes back,
		 * where the late events of recent batches land. */
		int64_t from = 0, to = INT64_MAX;
		if (!(full_every && loop % full_every == 0)) {
			tdm_stat st;
			if ((r = tdm_stat_get(&st, s))) {
				rc = lib_fail("stat", r);
				break;
			}
			int64_t w = (int64_t)window_s * SEC;
			if (st.max_ts >= 0 && loop % 2 == 0) {
				from = st.max_ts - w;
			} else if (st.max_ts >= 0) {
				to = st.max_ts - 10 * 60 * SEC;
				from = to - w;
			}
			if (from < 0)
				from = 0;
			if (to < from)
				to = from;
		}
		tdm_iter *it;
		if ((r = tdm_iter_open(&it, s, from, to, NULL))) {
			rc = lib_fail("iter_open", r);
			break;
		}
		seen_clear(&sn);
		const tdm_event *ev;
		int64_t prev_ts = INT64_MIN;
		while (!rc && (r = tdm_iter_next(&ev, it)) == 0) {
			total_events++;
			const char *bs = label_of(ev, "batch"), *ss = label_of(ev, "slot");
			uint64_t b, i;
			if (!bs || !ss || parse_u64(&b, bs) || parse_u64(&i, ss) || i >= g_k) {
				rc = violation(loop, from, to, "an event without good batch/slot labels (ts %" PRId64 ")", ev->ts);
				break;
			}
			if (!is_new(kind_of(b, (size_t)i))) {
				rc = violation(loop, from, to, "batch %" PRIu64 " slot %" PRIu64 " is not a new event", b, i);
				break;
			}
			gen_new(&g, b, (size_t)i);
			if (!events_equal(ev, &g.ev)) {
				rc = violation(loop, from, to, "batch %" PRIu64 " slot %" PRIu64 ": event differs from the one written", b, i);
				break;
			}
			if (ev->ts < from || ev->ts >= to || ev->ts < prev_ts) {
				rc = violation(loop, from, to, "batch %" PRIu64 " slot %" PRIu64 ": ts %" PRId64 " out of range or order", b, i, ev->ts);
				break;
			}
			prev_ts = ev->ts;
			seen_batch *sb = seen_get(&sn, b);
			if (sb->slots[i]) {
				rc = violation(loop, from, to, "batch %" PRIu64 " slot %" PRIu64 " returned twice", b, i);
				break;
			}
			sb->slots[i] = 1;
			sb->count++;
		}
		if (!rc && r != TDM_ITEROVER)
			rc = lib_fail("iter_next", r);
		const char *dmsg;
		if (!rc && tdm_iter_damage(&dmsg, it))
			rc = violation(loop, from, to, "damage: %s", dmsg ? dmsg : "?");
		tdm_iter_close(it);
		/* Every batch seen must be whole within [from, to). */
		for (size_t j = 0; j < sn.n && !rc; j++) {
			seen_batch *sb = &sn.v[j];
			size_t expect = 0;
			for (size_t i = 0; i < g_k; i++) {
				if (!is_new(kind_of(sb->batch, i)))
					continue;
				int64_t ts = ts_of(sb->batch, i);
				if (ts >= from && ts < to) {
					expect++;
					if (!sb->slots[i])
						rc = violation(loop, from, to,
						    "partial batch %" PRIu64 ": %zu of its events seen,"
						    " slot %zu (ts %" PRId64 ") missing",
						    sb->batch, sb->count, i, ts);
				}
			}
			if (!rc && expect != sb->count)
				rc = violation(loop, from, to, "batch %" PRIu64 ": %zu events, expected %zu",
				               sb->batch, sb->count, expect);
		}
		/* On a whole-store read, batches 0..E-1 (acknowledged) must be there. */
		if (!rc && expect_batches && from == 0 && to == INT64_MAX) {
			uint64_t present = 0;
			for (size_t j = 0; j < sn.n; j++)
				present += sn.v[j].batch < expect_batches;
			if (present != expect_batches)
				rc = violation(loop, from, to, "%" PRIu64 " of the acknowledged batches"
				               " 0..%" PRIu64 " are missing", expect_batches - present,
				               expect_batches - 1);
		}
		total_batches += sn.n;
	}
	seen_clear(&sn);
	free(sn.v);
	tdm_store_close(s);
	if (!rc)
		printf("reads %" PRIu64 " events %" PRIu64 " batches-seen %" PRIu64 "\n",
		       loops, total_events, total_batches);
	return rc;
}

/* ---- main ----------------------------------------------------------------- */

int main(int argc, char **argv)
{
	if (argc < 3 || (strcmp(argv[1], "write") && strcmp(argv[1], "read"))) {
		fputs(usage, stderr);
		return 2;
	}
	int writing = !strcmp(argv[1], "write");
	const char *dir = argv[2], *ack_log = NULL;
	uint64_t batches = 100, loops = 100, window_s = 60, full_every = 100,
	         reopen_every = 1, pause_us = 0, replay = UINT64_MAX,
	         expect_batches = 0, v;
	int durability = TDM_DURABILITY_BATCH;
	for (int a = 3; a < argc; a++) {
		const char *opt = argv[a], *val = a + 1 < argc ? argv[a + 1] : NULL;
		if (!val) {
			fprintf(stderr, "tdm_loadgen: %s needs a value\n%s", opt, usage);
			return 2;
		}
		a++;
		if (!strcmp(opt, "--ack-log") && writing) {
			ack_log = val;
			continue;
		}
		if (!strcmp(opt, "--durability") && writing) {
			if (!strcmp(val, "none"))
				durability = TDM_DURABILITY_NONE;
			else if (!strcmp(val, "interval"))
				durability = TDM_DURABILITY_INTERVAL;
			else if (!strcmp(val, "batch"))
				durability = TDM_DURABILITY_BATCH;
			else {
				fprintf(stderr, "tdm_loadgen: bad durability %s\n", val);
				return 2;
			}
			continue;
		}
		if (parse_u64(&v, val)) {
			fprintf(stderr, "tdm_loadgen: %s: not a number: %s\n", opt, val);
			return 2;
		}
		if (!strcmp(opt, "--seed"))
			g_seed = v;
		else if (!strcmp(opt, "--batch-size") && v >= 1 && v <= 100000)
			g_k = (size_t)v;
		else if (!strcmp(opt, "--batches") && writing)
			batches = v;
		else if (!strcmp(opt, "--pause-us") && writing)
			pause_us = v;
		else if (!strcmp(opt, "--replay") && writing)
			replay = v;
		else if (!strcmp(opt, "--loops") && !writing)
			loops = v;
		else if (!strcmp(opt, "--window-s") && !writing)
			window_s = v;
		else if (!strcmp(opt, "--full-every") && !writing)
			full_every = v;
		else if (!strcmp(opt, "--reopen-every") && !writing)
			reopen_every = v;
		else if (!strcmp(opt, "--expect-batches") && !writing)
			expect_batches = v;
		else {
			fprintf(stderr, "tdm_loadgen: bad option %s %s\n%s", opt, val, usage);
			return 2;
		}
	}
	if (writing)
		return do_write(dir, batches, durability, ack_log, pause_us, replay);
	return do_read(dir, loops, window_s, full_every, reopen_every, expect_batches);
}
