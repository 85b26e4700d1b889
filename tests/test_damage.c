/*
 * test_damage.c - issue 3, fourth acceptance criterion: truncating any shard
 * file at any byte, flipping any byte, or deleting the index: open never
 * crashes; verify reports exactly what is wrong; read returns every sound
 * event and no damaged one.
 *
 * One small store is built (three shards, main and recon files, labels, a
 * 256-byte index interval, batch durability) and kept pristine. The test
 * parses its shard files itself (FORMAT.md: a 64-byte header, then
 * len-prefixed records), so it knows every stored event and the byte range
 * of its record. Each case restores a copy of the pristine directory,
 * damages one file, opens the store, reads [0, INT64_MAX) and runs verify,
 * all in this process: a crash or a hang fails the test (a signal handler
 * names the case first).
 *
 * What each case expects:
 *  - a flipped record byte (any field, the length too: the scanner must
 *    resync): open works; the read returns every event but that record's,
 *    tdm_iter_damage names the file and the record's offset; verify's first
 *    problem is that file and offset, and none names another shard. The
 *    same for a reader, and with the index deleted (recovery re-indexes;
 *    a damaged last record is then a torn tail, cut off: a clean store);
 *  - a flipped header byte: open works; the read fails with TDM_ECORRUPT
 *    naming the file at offset 0 (or steps over the file), and every other
 *    shard reads whole on its own; verify's first problem is the file at
 *    offset 0. With the index deleted too, the same is expected;
 *  - a file cut at t: open recovers; the read returns exactly the records
 *    ending at or before t in that file and every other one, with no
 *    damage; the file is cut back to its last whole record; verify is
 *    clean, except that a cut main file lowers the shard's max, so recon
 *    records within grace of the new max break the late rule: verify must
 *    then report exactly those. Every event still stored stays known to
 *    dedupe (appending it again stores nothing);
 *  - index/ deleted, data.mdb cut to 0 or deleted: the read, the stats and
 *    dedupe are as before, verify clean; as a writer and as a reader.
 *
 * Every case is checked and the failures are collected, so that one bug
 * does not hide the others; each test prints a summary per kind of
 * failure (first and last case) on stderr and fails with a count.
 *
 * By default every byte of one main and one recon file is flipped (xor
 * 0x01) and cut at, and the other files are sampled: header fields and
 * every field of every record (xor 0x01 and 0x80). TDM_DAMAGE_FULL=1 runs
 * every byte of every file with both masks. TDM_DAMAGE_KEEP=1 keeps the
 * pristine store (its path is printed) for reproducing a case by hand.
 * The stores live in /dev/shm unless TMPDIR is set: the cases sync.
 */
#include "support.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)
#define T0 INT64_C(1700000000000000000) /* a multiple of SHARD */
#define SHARD (10 * SEC)
#define GRACE (2 * SEC)
#define N_SHARDS 3
#define PER_SHARD 40
#define N_FILES (2 * N_SHARDS)
#define HDR 64
#define FULL_SHARD 1 /* the shard whose files are swept byte by byte */
#define CASE_SECONDS 20 /* one case taking longer is a hang */

/* ---- what the store holds, parsed from its files ------------------------ */

typedef struct rec {
	int file;        /* index in G.files */
	uint32_t off;    /* of the record in its file */
	uint32_t len;
	uint16_t labels_len;
	tdm_label labels[TDM_MAX_LABELS];
	tdm_event ev;    /* points into the file's bytes */
} rec;

typedef struct sfile {
	char rel[64];    /* shards/NNN.main, as the engine names it */
	int64_t shard;
	int recon;
	uint8_t *bytes;
	size_t size;
	size_t first, n; /* its records: G.recs[first .. first + n), file order */
} sfile;

static struct {
	char *pristine; /* the store as built; never opened again */
	char *work;     /* each case damages a copy */
	sfile files[N_FILES];
	size_t n_files;
	rec *recs;
	size_t n_recs;
	size_t *order; /* rec indices in read order (SPEC §4) */
	tdm_stat st;
	int full;      /* TDM_DAMAGE_FULL */
	unsigned long cases, failed_cases;
} G;

/* The case running, for the crash handler. */
static char current_case[512];

/* ---- failures ------------------------------------------------------------ */

#define MAX_KEPT 12
#define MAX_PRINTED 40
#define MAX_KINDS 32
/* Failures, and per kind (the format that reported them) a count and the
 * first and last case, for the summary. */
static struct {
	unsigned long n;
	char kept[MAX_KEPT][700];
	int case_failed;
	struct {
		const char *fmt;
		unsigned long n;
		char first[1300], last[1300];
	} kinds[MAX_KINDS];
	size_t n_kinds;
} F;

static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void failf(const char *fmt, ...)
{
	char msg[700];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (F.n < MAX_KEPT)
		snprintf(F.kept[F.n], sizeof F.kept[F.n], "%.200s: %.480s", current_case, msg);
	if (F.n < MAX_PRINTED)
		fprintf(stderr, "FAIL %s: %s\n", current_case, msg);
	F.n++;
	F.case_failed = 1;
	size_t k = 0;
	while (k < F.n_kinds && F.kinds[k].fmt != fmt)
		k++;
	if (k == F.n_kinds && k < MAX_KINDS) {
		F.kinds[k].fmt = fmt;
		F.kinds[k].n = 0;
		snprintf(F.kinds[k].first, sizeof F.kinds[k].first, "%s: %s", current_case, msg);
		F.n_kinds++;
	}
	if (k < F.n_kinds) {
		F.kinds[k].n++;
		snprintf(F.kinds[k].last, sizeof F.kinds[k].last, "%s: %s", current_case, msg);
	}
}

static void teardown_store(void);

/* Prints the summary, frees the store, and fails the test if a case did. */
static void end_test(const char *name)
{
	fprintf(stderr, "== %s: %lu cases, %lu failed, %lu failures\n", name, G.cases,
	        G.failed_cases, F.n);
	for (size_t k = 0; k < F.n_kinds; k++)
		fprintf(stderr, "   %lu x\n     first: %s\n     last:  %s\n", F.kinds[k].n,
		        F.kinds[k].first, F.kinds[k].last);
	unsigned long cases = G.cases, failed = G.failed_cases;
	teardown_store();
	if (F.n) {
		char all[4000] = "";
		size_t k = F.n < 4 ? F.n : 4;
		for (size_t i = 0; i < k; i++) {
			size_t l = strlen(all);
			snprintf(all + l, sizeof all - l, "\n  %s", F.kept[i]);
		}
		ck_abort_msg("%s: %lu of %lu cases failed (%lu failures); first:%s", name,
		             failed, cases, F.n, all);
	}
}

static void on_signal(int sig)
{
	char msg[700];
	int n = snprintf(msg, sizeof msg, "\n*** signal %d (%s) during case: %s\n", sig,
	                 sig == SIGALRM ? "hang: the case took too long" : "crash",
	                 current_case);
	if (n > 0)
		(void)!write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void catch_signals(void)
{
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGALRM};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		signal(sigs[i], on_signal);
}

/* ---- files --------------------------------------------------------------- */

static void read_whole(const char *path, uint8_t **out, size_t *size)
{
	int fd = open(path, O_RDONLY);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	uint8_t *b = tst_malloc((size_t)st.st_size);
	ck_assert_int_eq(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*out = b;
	*size = (size_t)st.st_size;
}

static void copy_file(const char *from, const char *to)
{
	uint8_t *b;
	size_t n;
	read_whole(from, &b, &n);
	int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_msg(fd >= 0, "create %s: %s", to, strerror(errno));
	if (n && write(fd, b, n) != (ssize_t)n)
		ck_abort_msg("write %s: %s", to, strerror(errno));
	close(fd);
	free(b);
}

static void copy_tree(const char *from, const char *to)
{
	if (mkdir(to, 0755) != 0 && errno != EEXIST)
		ck_abort_msg("mkdir %s: %s", to, strerror(errno));
	DIR *d = opendir(from);
	ck_assert_msg(d != NULL, "opendir %s", from);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char a[4200], b[4200];
		snprintf(a, sizeof a, "%s/%s", from, e->d_name);
		snprintf(b, sizeof b, "%s/%s", to, e->d_name);
		struct stat st;
		ck_assert_int_eq(lstat(a, &st), 0);
		if (S_ISDIR(st.st_mode))
			copy_tree(a, b);
		else if (S_ISREG(st.st_mode))
			copy_file(a, b);
	}
	closedir(d);
}

static void restore(void)
{
	tst_rmtree(G.work);
	copy_tree(G.pristine, G.work);
}

static void work_path(char *out, size_t cap, const char *rel)
{
	snprintf(out, cap, "%s/%s", G.work, rel);
}

static void flip_byte(int f, size_t off, uint8_t mask)
{
	char path[4200];
	work_path(path, sizeof path, G.files[f].rel);
	int fd = open(path, O_RDWR);
	ck_assert_msg(fd >= 0, "open %s", path);
	uint8_t c;
	ck_assert_int_eq(pread(fd, &c, 1, (off_t)off), 1);
	c ^= mask;
	ck_assert_int_eq(pwrite(fd, &c, 1, (off_t)off), 1);
	close(fd);
}

static void cut_file(int f, size_t t)
{
	char path[4200];
	work_path(path, sizeof path, G.files[f].rel);
	ck_assert_msg(truncate(path, (off_t)t) == 0, "truncate %s: %s", path,
	              strerror(errno));
}

static off_t work_size(int f)
{
	char path[4200];
	work_path(path, sizeof path, G.files[f].rel);
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* ---- building the store -------------------------------------------------- */

static const tdm_label LABELS[][3] = {
	{{"host", "web-1"}, {"level", "error"}, {"zone", "eu-west-1a"}},
	{{"stream", "order-42"}, {"type", "created"}, {"a", "\xc3\xa9t\xc3\xa9"}},
	{{"k", ""}, {"service", "checkout"}, {"level", "warn"}},
};

static tdm_store *open_store(const char *dir, unsigned flags, int *rc)
{
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	oo.flags = flags;
	oo.durability = TDM_DURABILITY_BATCH;
	tdm_store *s = NULL;
	*rc = tdm_store_open(&s, dir, &oo);
	return *rc ? NULL : s;
}

/* Three shards of PER_SHARD events each, appended interleaved in batches of
 * 12, about a quarter of them late (so every shard has a recon file), some
 * out of order within grace, some with no labels or no payload, and a few
 * duplicates (not stored again). */
static void build_store(void)
{
	G.pristine = tst_tmpdir();
	tdm_options o = TDM_OPTIONS_INIT;
	o.shard_duration_ns = SHARD;
	o.grace_ns = GRACE;
	o.index_interval = 256;
	int r = tdm_store_create(G.pristine, &o);
	ck_assert_msg(r == 0, "create: %s", tdm_error_message());
	tdm_store *s = open_store(G.pristine, 0, &r);
	ck_assert_msg(r == 0, "open: %s", tdm_error_message());

	static char payloads[N_SHARDS * PER_SHARD][48];
	tdm_event all[N_SHARDS * PER_SHARD];
	size_t n = 0;
	tst_rng rng;
	tst_rng_seed(&rng, 20240603);
	uint64_t late[N_SHARDS] = {0};
	for (int i = 0; i < PER_SHARD; i++)
		for (int sh = 0; sh < N_SHARDS; sh++) {
			int64_t base = T0 + sh * SHARD;
			int64_t ts = base + i * 200 * MS + (int64_t)tst_rng_range(&rng, 100 * MS);
			if (i >= 15 && tst_rng_chance(&rng, 25))
				ts = base + (int64_t)tst_rng_range(&rng, (uint64_t)(i * 200 * MS - 3 * SEC));
			else if (tst_rng_chance(&rng, 20))
				ts -= (int64_t)tst_rng_range(&rng, 1500 * MS);
			if (ts < base)
				ts = base;
			size_t pl = 0;
			if ((i + sh) % 9 != 0)
				pl = (size_t)snprintf(payloads[n], sizeof payloads[n], "s%d e%d %.*s", sh,
				                      i, (int)tst_rng_range(&rng, 30),
				                      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
			size_t nl = (size_t)((i * 7 + sh) % 4);
			all[n] = (tdm_event){ts, (uint32_t)tst_rng_range(&rng, 3), 0,
			                     nl ? LABELS[(i + sh) % 3] : NULL, nl, payloads[n], pl};
			n++;
		}
	uint64_t stored = 0, dups = 0;
	for (size_t at = 0, b = 0; at < n; b++) {
		tdm_event batch[16];
		size_t k = n - at < 12 ? n - at : 12;
		memcpy(batch, all + at, k * sizeof *batch);
		if (b % 4 == 3) /* two events stored before: duplicates */
			batch[k++] = all[at - 5], batch[k++] = all[at / 2];
		uint8_t out[16];
		tdm_append_result res;
		r = tdm_append(&res, out, s, batch, k);
		ck_assert_msg(r == 0, "append: %s", tdm_error_message());
		for (size_t j = 0; j < k; j++)
			if (out[j] == TDM_STORED_LATE)
				late[(batch[j].ts - T0) / SHARD]++;
		stored += res.appended;
		dups += res.duplicates;
		at += b % 4 == 3 ? k - 2 : k;
	}
	ck_assert_uint_ge(dups, 2 * (n / 48));
	for (int sh = 0; sh < N_SHARDS; sh++)
		ck_assert_msg(late[sh] >= 3, "shard %d has %" PRIu64 " late events", sh, late[sh]);
	ck_assert_int_eq(tdm_stat_get(&G.st, s), 0);
	ck_assert_uint_eq(G.st.events, stored);
	ck_assert_uint_eq(G.st.shards, N_SHARDS);
	ck_assert_int_eq(tdm_store_close(s), 0);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static int order_cmp(const void *a, const void *b)
{
	const rec *x = &G.recs[*(const size_t *)a], *y = &G.recs[*(const size_t *)b];
	return tst_event_cmp(&x->ev, &y->ev);
}

/* Reads every shard file of the pristine store and parses its records. */
static void parse_store(void)
{
	for (int sh = 0; sh < N_SHARDS; sh++)
		for (int recon = 0; recon < 2; recon++) {
			sfile *f = &G.files[G.n_files++];
			f->shard = T0 / SHARD + sh;
			f->recon = recon;
			snprintf(f->rel, sizeof f->rel, "shards/%020" PRId64 ".%s", f->shard,
			         recon ? "recon" : "main");
			char path[4200];
			snprintf(path, sizeof path, "%s/%s", G.pristine, f->rel);
			read_whole(path, &f->bytes, &f->size);
			ck_assert_uint_gt(f->size, HDR);
			ck_assert_int_eq(memcmp(f->bytes, "TDMSHARD", 8), 0);
		}
	size_t cap = 0;
	for (size_t fi = 0; fi < G.n_files; fi++) {
		sfile *f = &G.files[fi];
		f->first = G.n_recs;
		size_t off = HDR;
		while (off < f->size) {
			ck_assert_uint_ge(f->size - off, 30);
			const uint8_t *p = f->bytes + off;
			uint32_t len = le32(p);
			ck_assert_msg(len >= 30 && len <= f->size - off, "%s: record at %zu: len %u",
			              f->rel, off, len);
			if (G.n_recs == cap) {
				cap = cap ? 2 * cap : 256;
				G.recs = tst_realloc(G.recs, cap * sizeof *G.recs);
			}
			rec *rc = &G.recs[G.n_recs++];
			memset(rc, 0, sizeof *rc);
			rc->file = (int)fi;
			rc->off = (uint32_t)off;
			rc->len = len;
			rc->labels_len = (uint16_t)(p[28] | p[29] << 8);
			ck_assert_uint_le(rc->labels_len, len - 30);
			rc->ev.seq = le64(p + 8);
			rc->ev.ts = (int64_t)le64(p + 16);
			rc->ev.id = le32(p + 24);
			const char *l = (const char *)p + 30, *lend = l + rc->labels_len;
			while (l < lend) {
				ck_assert_uint_lt(rc->ev.n_labels, TDM_MAX_LABELS);
				tdm_label *lb = &rc->labels[rc->ev.n_labels++];
				lb->key = l;
				l += strlen(l) + 1;
				lb->value = l;
				l += strlen(l) + 1;
			}
			ck_assert_ptr_eq(l, lend);
			rc->ev.payload = p + 30 + rc->labels_len;
			rc->ev.payload_len = len - 30 - rc->labels_len;
			ck_assert_int_eq(rc->ev.ts / SHARD, f->shard);
			off += len;
		}
		f->n = G.n_recs - f->first;
		ck_assert_uint_ge(f->n, 3);
	}
	G.order = tst_malloc(G.n_recs * sizeof *G.order);
	for (size_t i = 0; i < G.n_recs; i++) {
		G.recs[i].ev.labels = G.recs[i].labels;
		G.order[i] = i;
	}
	qsort(G.order, G.n_recs, sizeof *G.order, order_cmp);
	for (size_t i = 1; i < G.n_recs; i++)
		ck_assert_msg(order_cmp(&G.order[i - 1], &G.order[i]) < 0,
		              "two records hold the same event");
	ck_assert_uint_eq(G.n_recs, G.st.events);
}

/* ---- one case ------------------------------------------------------------- */

typedef struct readres {
	int rc;              /* TDM_ITEROVER, or the error that ended the read */
	char err[512];
	uint64_t damage;
	char dmsg[512];
	unsigned char *seen; /* per rec: how many times it was returned */
	size_t n;            /* events returned */
} readres;

/* The rec an event is, or -1. */
static long find_rec(const tdm_event *ev)
{
	size_t lo = 0, hi = G.n_recs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = tst_event_cmp(&G.recs[G.order[mid]].ev, ev);
		if (c == 0)
			return G.recs[G.order[mid]].ev.seq == ev->seq ? (long)G.order[mid] : -1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static const char *rec_str(char *buf, size_t cap, size_t i)
{
	const rec *r = &G.recs[i];
	char ev[200];
	snprintf(buf, cap, "%s record at %u (len %u, seq %" PRIu64 ": %s)",
	         G.files[r->file].rel, r->off, r->len, r->ev.seq,
	         tst_event_str(ev, sizeof ev, &r->ev));
	return buf;
}

/* Reads [from, to) and checks what comes back is stored, sound, once and
 * in order; which records came back is in `seen`. An error ends the read,
 * unless `go_on`: then tdm_iter_next is called again (up to 3 errors). */
static readres read_range(tdm_store *s, int64_t from, int64_t to,
                          const unsigned char *gone, int go_on)
{
	readres rr;
	memset(&rr, 0, sizeof rr);
	rr.seen = calloc(G.n_recs, 1);
	tdm_iter *it = NULL;
	rr.rc = tdm_iter_open(&it, s, from, to, NULL);
	if (rr.rc) {
		snprintf(rr.err, sizeof rr.err, "%s", tdm_error_message());
		return rr;
	}
	const tdm_event *ev, *prev = NULL;
	tdm_event *prev_copy = NULL;
	int errors = 0;
	for (;;) {
		int r = tdm_iter_next(&ev, it);
		if (r == TDM_ITEROVER) {
			if (!rr.rc)
				rr.rc = r;
			break;
		}
		if (r) {
			if (!rr.rc) {
				rr.rc = r;
				snprintf(rr.err, sizeof rr.err, "%s", tdm_error_message());
			}
			if (!go_on || ++errors == 3)
				break;
			continue;
		}
		rr.n++;
		char b[300];
		if (ev->ts < from || ev->ts >= to)
			failf("read [%" PRId64 ", %" PRId64 ") returned ts %" PRId64
			      " outside it", from, to, ev->ts);
		long i = find_rec(ev);
		if (i < 0) {
			failf("read returned an event that is not stored: %s (seq %" PRIu64 ")",
			      tst_event_str(b, sizeof b, ev), ev->seq);
		} else {
			if (rr.seen[i]++)
				failf("read returned twice: %s", rec_str(b, sizeof b, (size_t)i));
			if (gone && gone[i])
				failf("read returned a damaged/cut record: %s",
				      rec_str(b, sizeof b, (size_t)i));
		}
		prev = prev_copy;
		if (prev && !go_on && tst_event_cmp(prev, ev) > 0)
			failf("read out of order at ts %" PRId64, ev->ts);
		tst_event_free(prev_copy);
		prev_copy = tst_event_dup(ev);
	}
	tst_event_free(prev_copy);
	const char *m = NULL;
	rr.damage = tdm_iter_damage(&m, it);
	if (m)
		snprintf(rr.dmsg, sizeof rr.dmsg, "%s", m);
	tdm_iter_close(it);
	return rr;
}

typedef struct vres {
	int rc;
	uint64_t problems, calls;
	char file[128];
	int64_t offset;
	char what[512];
	int64_t bad_shard; /* first problem naming another shard, or -1 */
	char bad[700];
	int64_t shard;     /* the damaged shard, or -1 */
	struct vprob {
		char file[64];
		int64_t offset;
		int late_rule; /* "late record ... within grace" */
	} all[64];        /* the first 64 problems */
} vres;

static void on_problem(void *ctx, const tdm_problem *p)
{
	vres *v = ctx;
	if (!p || !p->file || !p->what) {
		v->bad_shard = -2;
		return;
	}
	if (v->calls++ == 0) {
		snprintf(v->file, sizeof v->file, "%s", p->file);
		v->offset = p->offset;
		snprintf(v->what, sizeof v->what, "%s", p->what);
	}
	if (v->calls <= 64) {
		struct vprob *q = &v->all[v->calls - 1];
		snprintf(q->file, sizeof q->file, "%s", p->file);
		q->offset = p->offset;
		q->late_rule = strstr(p->what, "within grace") != NULL;
	}
	int64_t sh = -1;
	if (strncmp(p->file, "shards/", 7) == 0)
		sh = strtoll(p->file + 7, NULL, 10);
	if (v->bad_shard == -1 && sh != v->shard) {
		v->bad_shard = sh;
		snprintf(v->bad, sizeof v->bad, "%s offset %" PRId64 ": %s", p->file, p->offset,
		         p->what);
	}
}

static vres run_verify(tdm_store *s, int64_t shard)
{
	static vres v;
	memset(&v, 0, sizeof v);
	v.bad_shard = -1;
	v.shard = shard;
	v.rc = tdm_verify(&v.problems, s, on_problem, &v);
	if (v.rc)
		snprintf(v.what, sizeof v.what, "%s", tdm_error_message());
	return v;
}

enum mode {
	CLEAN,  /* after open, the store is sound: no damage, verify clean */
	DAMAGE, /* one damaged record: skipped and reported at its offset */
	HEADER  /* a damaged file header */
};

/* Opens the damaged store in G.work and checks open, read and verify.
 * `gone` marks the records that must not come back (all others must);
 * `file` and `off` are the damaged file and record (DAMAGE) or -1. */
static void check_store(enum mode mode, const unsigned char *gone, int file,
                        int64_t off, unsigned flags)
{
	int r;
	char b[300];
	tdm_store *s = open_store(G.work, flags, &r);
	if (!s) {
		failf("open failed: %d %s", r, tdm_error_message());
		return;
	}
	const char *rel = file >= 0 ? G.files[file].rel : NULL;
	int64_t shard = file >= 0 ? G.files[file].shard : -1;

	readres rr = read_range(s, 0, INT64_MAX, gone, 0);
	if (mode == HEADER) {
		/* The header is damage, but the file's records are sound: the read
		 * returns every event and reports the header. */
		if (rr.rc != TDM_ITEROVER)
			failf("read ended with %d: %s", rr.rc, rr.err);
		for (size_t i = 0; i < G.n_recs; i++)
			if (!gone[i] && !rr.seen[i])
				failf("read misses sound %s", rec_str(b, sizeof b, i));
		if (rr.damage < 1 || !strstr(rr.dmsg, rel) || !strstr(rr.dmsg, ": offset 0:"))
			failf("tdm_iter_damage %" PRIu64 " '%s', want %s offset 0", rr.damage,
			      rr.dmsg, rel);
	} else {
		if (rr.rc != TDM_ITEROVER)
			failf("read ended with %d: %s", rr.rc, rr.err);
		for (size_t i = 0; i < G.n_recs; i++)
			if (!gone[i] && !rr.seen[i])
				failf("read misses sound %s", rec_str(b, sizeof b, i));
		if (mode == CLEAN && rr.damage)
			failf("read reports %" PRIu64 " damaged stretches: %s", rr.damage, rr.dmsg);
		if (mode == DAMAGE) {
			char want[100];
			snprintf(want, sizeof want, ": offset %" PRId64 ":", off);
			if (rr.damage < 1)
				failf("tdm_iter_damage is 0, want the record at %s offset %" PRId64, rel,
				      off);
			else if (!strstr(rr.dmsg, rel) || !strstr(rr.dmsg, want))
				failf("tdm_iter_damage names '%s', want %s offset %" PRId64, rr.dmsg, rel,
				      off);
		}
	}
	free(rr.seen);

	vres v = run_verify(s, mode == CLEAN ? -1 : shard);
	if (v.rc)
		failf("verify could not run: %d %s", v.rc, v.what);
	else if (v.problems != v.calls)
		failf("verify counts %" PRIu64 " problems, calls back %" PRIu64, v.problems,
		      v.calls);
	else if (v.bad_shard == -2)
		failf("verify called back with a NULL field");
	else if (mode == CLEAN && v.problems)
		failf("verify: %" PRIu64 " problems, want none; first: %s offset %" PRId64 ": %s",
		      v.problems, v.file, v.offset, v.what);
	else if (mode != CLEAN && v.problems == 0)
		failf("verify found no problem, want %s offset %" PRId64, rel, off);
	else if (mode != CLEAN && (strcmp(v.file, rel) != 0 || v.offset != off))
		failf("verify's first problem is %s offset %" PRId64 " (%s), want %s offset %" PRId64,
		      v.file, v.offset, v.what, rel, off);
	else if (mode != CLEAN && v.bad_shard != -1)
		failf("verify reports a problem outside the damaged shard: %s", v.bad);
	r = tdm_store_close(s);
	if (r)
		failf("close: %d %s", r, tdm_error_message());
}

static void begin_case(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void begin_case(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(current_case, sizeof current_case, fmt, ap);
	va_end(ap);
	F.case_failed = 0;
	G.cases++;
	restore();
	alarm(CASE_SECONDS);
}

static void end_case(void)
{
	alarm(0);
	if (F.case_failed)
		G.failed_cases++;
}

/* ---- setup ---------------------------------------------------------------- */

static void setup_store(void)
{
	catch_signals();
	const char *full = getenv("TDM_DAMAGE_FULL");
	G.full = full && *full && strcmp(full, "0") != 0;
	build_store();
	parse_store();
	G.work = tst_tmpdir();
	/* The pristine store reads back as parsed and verifies clean. */
	unsigned char *none = calloc(G.n_recs, 1);
	begin_case("pristine");
	check_store(CLEAN, none, -1, -1, 0);
	end_case();
	begin_case("pristine, reader");
	check_store(CLEAN, none, -1, -1, TDM_OPEN_READONLY);
	end_case();
	free(none);
	ck_assert_msg(F.n == 0, "the pristine store fails: %s", F.kept[0]);
	G.cases = 0;
}

static void teardown_store(void)
{
	tst_rmtree(G.work);
	const char *keep = getenv("TDM_DAMAGE_KEEP");
	if (keep && *keep && strcmp(keep, "0") != 0)
		fprintf(stderr, "pristine store kept in %s\n", G.pristine);
	else
		tst_rmtree(G.pristine);
	free(G.work);
	free(G.pristine);
	for (size_t i = 0; i < G.n_files; i++)
		free(G.files[i].bytes);
	free(G.recs);
	free(G.order);
	memset(&G, 0, sizeof G);
}

/* The record of file f holding byte `off`, or -1 (the header). */
static long rec_at(int f, size_t off)
{
	const sfile *sf = &G.files[f];
	for (size_t i = sf->first; i < sf->first + sf->n; i++)
		if (off >= G.recs[i].off && off < G.recs[i].off + G.recs[i].len)
			return (long)i;
	return -1;
}

/* Offsets to try in file f: every byte when it is swept whole; otherwise
 * the header's fields and every field of every record (`light`: of the
 * first two, a middle one and the last two records only). *n gets the
 * count; the caller frees. */
static size_t *sample_offsets(int f, int whole, int light, size_t *n)
{
	const sfile *sf = &G.files[f];
	size_t *a = tst_malloc((sf->size + 1) * sizeof *a);
	*n = 0;
	if (whole) {
		for (size_t i = 0; i < sf->size; i++)
			a[(*n)++] = i;
		return a;
	}
	unsigned char *pick = calloc(sf->size, 1);
	static const int hdr[] = {0, 7, 8, 12, 16, 23, 24, 32, 40, 55, 56, 63};
	for (size_t i = 0; i < sizeof hdr / sizeof hdr[0]; i++)
		pick[hdr[i]] = 1;
	for (size_t i = sf->first; i < sf->first + sf->n; i++) {
		const rec *r = &G.recs[i];
		size_t nth = i - sf->first;
		if (light && nth >= 2 && nth != sf->n / 2 && nth + 2 < sf->n)
			continue;
		/* len, checksum, seq, ts, id, labels_len: first and last bytes */
		static const int fields[] = {0, 1, 3, 4, 7, 8, 15, 16, 23, 24, 27, 28, 29};
		for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
			pick[r->off + (uint32_t)fields[k]] = 1;
		if (r->labels_len) { /* first and last label bytes (a NUL) */
			pick[r->off + 30] = 1;
			pick[r->off + 30 + r->labels_len - 1] = 1;
		}
		if (r->len > 30u + r->labels_len) /* first payload byte */
			pick[r->off + 30 + r->labels_len] = 1;
		pick[r->off + r->len - 1] = 1; /* last byte */
	}
	for (size_t i = 0; i < sf->size; i++)
		if (pick[i])
			a[(*n)++] = i;
	free(pick);
	return a;
}

static int whole_file(int f)
{
	return G.full || G.files[f].shard == T0 / SHARD + FULL_SHARD;
}

/* ---- flipping bytes ------------------------------------------------------- */

static void flip_case(int f, size_t at, uint8_t mask, unsigned flags, int drop_index)
{
	const sfile *sf = &G.files[f];
	begin_case("%s: byte %zu xor 0x%02x%s%s", sf->rel, at, mask,
	           flags ? ", reader" : "", drop_index ? ", index deleted" : "");
	flip_byte(f, at, mask);
	if (drop_index) {
		char p[4200];
		work_path(p, sizeof p, "index");
		tst_rmtree(p);
	}
	unsigned char *gone = calloc(G.n_recs, 1);
	long i = rec_at(f, at);
	if (i < 0) {
		check_store(HEADER, gone, f, 0, flags);
	} else {
		gone[i] = 1;
		/* With the index gone, a damaged last record is a torn tail to
		 * recovery: cut off, leaving a sound store. */
		int tail = drop_index && (size_t)i == sf->first + sf->n - 1;
		check_store(tail ? CLEAN : DAMAGE, gone, f, G.recs[i].off, flags);
		if (tail && work_size(f) != (off_t)G.recs[i].off)
			failf("torn tail not cut: %s has %lld bytes, want %u", sf->rel,
			      (long long)work_size(f), G.recs[i].off);
	}
	free(gone);
	end_case();
}

/* _i: file index. Every byte of the files of FULL_SHARD (all files with
 * TDM_DAMAGE_FULL), sampled offsets of the others; xor 0x01 everywhere,
 * 0x80 on the sample (everywhere with TDM_DAMAGE_FULL). */
START_TEST(test_flip)
{
	setup_store();
	int f = _i;
	size_t n, ns;
	size_t *at = sample_offsets(f, whole_file(f), 0, &n);
	size_t *sample = sample_offsets(f, G.full, 0, &ns);
	for (size_t k = 0; k < n; k++)
		flip_case(f, at[k], 0x01, 0, 0);
	for (size_t k = 0; k < ns; k++)
		flip_case(f, sample[k], 0x80, 0, 0);
	free(at);
	free(sample);
	char name[100];
	snprintf(name, sizeof name, "flip %s", G.files[f].rel);
	end_test(name);
}
END_TEST

/* A reader (no writer around) opening a store with a flipped byte, and a
 * flip together with a deleted index (recovery then re-indexes the damaged
 * file): every field of some records of every file, xor 0x01. */
START_TEST(test_flip_reader_and_rebuild)
{
	setup_store();
	for (int f = 0; f < (int)G.n_files; f++) {
		size_t n;
		size_t *at = sample_offsets(f, G.full, !G.full, &n);
		for (size_t k = 0; k < n; k++) {
			flip_case(f, at[k], 0x01, TDM_OPEN_READONLY, 0);
			if (at[k] >= HDR) /* a bad header with the index gone: see below */
				flip_case(f, at[k], 0x01, 0, 1);
		}
		free(at);
	}
	end_test("flip, reader and index rebuilt");
}
END_TEST

/* A flipped header byte while the index must be rebuilt: the shard cannot
 * be indexed. Open should still give a readable store (the other shards),
 * with the damaged file reported. */
START_TEST(test_flip_header_rebuild)
{
	setup_store();
	static const size_t offs[] = {0, 12, 16, 56};
	for (int f = 0; f < (int)G.n_files; f++)
		for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++)
			flip_case(f, offs[k], 0x01, 0, 1);
	end_test("flip header, index deleted");
}
END_TEST

/* ---- truncating ----------------------------------------------------------- */

static void cut_case(int f, size_t t)
{
	const sfile *sf = &G.files[f];
	begin_case("%s: cut at %zu of %zu", sf->rel, t, sf->size);
	cut_file(f, t);
	unsigned char *gone = calloc(G.n_recs, 1);
	size_t keep = HDR;
	for (size_t i = sf->first; i < sf->first + sf->n; i++) {
		if (G.recs[i].off + G.recs[i].len > t)
			gone[i] = 1;
		else
			keep = G.recs[i].off + G.recs[i].len;
	}
	/* A cut main file lowers the shard's max below some recon records: the
	 * store is still sound (recon records are late as of when they were
	 * written), and dedupe still finds them (test_truncate_then_append). */
	check_store(CLEAN, gone, f, -1, 0);
	off_t size = work_size(f);
	if (!F.case_failed && t >= HDR && size != (off_t)keep)
		failf("after recovery %s has %lld bytes, want %zu (the sound records)", sf->rel,
		      (long long)size, keep);
	free(gone);
	end_case();
}

/* _i: file index. Cuts the file at every byte (FULL_SHARD, or all with
 * TDM_DAMAGE_FULL) or at the sampled offsets, header included. */
START_TEST(test_truncate)
{
	setup_store();
	int f = _i;
	size_t n;
	size_t *at = sample_offsets(f, whole_file(f), 0, &n);
	for (size_t k = 0; k < n; k++)
		cut_case(f, at[k]);
	free(at);
	char name[100];
	snprintf(name, sizeof name, "truncate %s", G.files[f].rel);
	end_test(name);
}
END_TEST

/* After a main file lost its tail (cut at a record boundary), recovery
 * indexes the shard anew. Every event still stored must stay known to
 * dedupe: appending them again stores none, appending the ones cut off
 * stores them all, and a read then returns each event once. Cuts: to the
 * bare header, after half the records, before the last record. */
static void cut_append_case(int f, size_t keep_recs)
{
	const sfile *sf = &G.files[f];
	size_t t = keep_recs ? G.recs[sf->first + keep_recs - 1].off +
	                           G.recs[sf->first + keep_recs - 1].len
	                     : HDR;
	begin_case("%s: cut at %zu (%zu of %zu records kept), then every event appended "
	           "again", sf->rel, t, keep_recs, sf->n);
	cut_file(f, t);
	int r;
	tdm_store *s = open_store(G.work, 0, &r);
	if (!s) {
		failf("open failed: %d %s", r, tdm_error_message());
		end_case();
		return;
	}
	/* First the events still stored (all duplicates), then the cut ones
	 * (all stored). */
	tdm_event *all = tst_malloc(G.n_recs * sizeof *all);
	size_t *which = tst_malloc(G.n_recs * sizeof *which);
	uint8_t *out = tst_malloc(G.n_recs);
	size_t n_gone = sf->n - keep_recs, n = 0;
	for (size_t i = 0; i < G.n_recs; i++)
		if (!(i >= sf->first + keep_recs && i < sf->first + sf->n))
			which[n] = i, all[n++] = G.recs[i].ev;
	tdm_append_result res;
	r = tdm_append(&res, out, s, all, n);
	if (r) {
		failf("append: %d %s", r, tdm_error_message());
	} else if (res.appended) {
		failf("appending the %zu events still stored again stored %" PRIu64 " of them "
		      "(%" PRIu64 " late)", n, res.appended, res.late);
		int shown = 0;
		char b[300];
		for (size_t j = 0; j < n && shown < 3; j++)
			if (out[j] != TDM_DUPLICATE) {
				failf("stored a second time (outcome %d): %s", out[j],
				      rec_str(b, sizeof b, which[j]));
				shown++;
			}
	}
	n = 0;
	for (size_t i = sf->first + keep_recs; i < sf->first + sf->n; i++)
		all[n++] = G.recs[i].ev;
	if (n && (r = tdm_append(&res, out, s, all, n)) != 0)
		failf("append: %d %s", r, tdm_error_message());
	else if (n && res.appended != n_gone)
		failf("appending the %zu events cut off stored %" PRIu64, n_gone, res.appended);
	free(which);
	/* Each event once in a read. */
	tdm_iter *it = NULL;
	if ((r = tdm_iter_open(&it, s, 0, INT64_MAX, NULL)) == 0) {
		tdm_event **got = tst_malloc(2 * G.n_recs * sizeof *got);
		const tdm_event *ev;
		n = 0;
		while (n < 2 * G.n_recs && (r = tdm_iter_next(&ev, it)) == 0)
			got[n++] = tst_event_dup(ev);
		if (r != TDM_ITEROVER)
			failf("read: %d %s", r, tdm_error_message());
		tdm_iter_close(it);
		size_t twice = 0;
		for (size_t i = 1; i < n; i++)
			if (tst_event_cmp(got[i - 1], got[i]) == 0 && twice++ == 0) {
				char b[300];
				failf("read returns an event twice (seq %" PRIu64 " and %" PRIu64 "): %s",
				      got[i - 1]->seq, got[i]->seq, tst_event_str(b, sizeof b, got[i]));
			}
		if (n != G.n_recs)
			failf("read returns %zu events (%zu twice), want the %zu stored", n, twice,
			      G.n_recs);
		for (size_t i = 0; i < n; i++)
			tst_event_free(got[i]);
		free(got);
	} else {
		failf("iter_open: %d %s", r, tdm_error_message());
	}
	free(all);
	free(out);
	tdm_store_close(s);
	end_case();
}

START_TEST(test_truncate_then_append)
{
	setup_store();
	for (int f = 0; f < (int)G.n_files; f += 2) {
		cut_append_case(f, 0);
		cut_append_case(f, G.files[f].n / 2);
		cut_append_case(f, G.files[f].n - 1);
	}
	end_test("truncate main, then append again");
}
END_TEST

/* ---- the index lost --------------------------------------------------------- */

static void index_case(int how, unsigned flags)
{
	static const char *what[] = {"index/ deleted", "index/data.mdb cut to 0 bytes",
	                             "index/data.mdb deleted"};
	begin_case("%s%s", what[how], flags ? ", reader" : "");
	char p[4200];
	if (how == 0) {
		work_path(p, sizeof p, "index");
		tst_rmtree(p);
	} else {
		work_path(p, sizeof p, "index/data.mdb");
		ck_assert_int_eq(how == 1 ? truncate(p, 0) : unlink(p), 0);
	}
	unsigned char *none = calloc(G.n_recs, 1);
	check_store(CLEAN, none, -1, -1, flags);
	free(none);
	/* Same statistics as before, and a writer afterwards agrees. */
	int r;
	tdm_store *s = open_store(G.work, 0, &r);
	if (!s) {
		failf("second open: %d %s", r, tdm_error_message());
	} else {
		tdm_stat st;
		ck_assert_int_eq(tdm_stat_get(&st, s), 0);
		if (st.events != G.st.events || st.late_events != G.st.late_events ||
		    st.shards != G.st.shards || st.index_entries != G.st.index_entries ||
		    st.last_seq != G.st.last_seq || st.min_ts != G.st.min_ts ||
		    st.max_ts != G.st.max_ts)
			failf("stat after rebuild differs: events %" PRIu64 "/%" PRIu64
			      " late %" PRIu64 "/%" PRIu64 " entries %" PRIu64 "/%" PRIu64
			      " last_seq %" PRIu64 "/%" PRIu64,
			      st.events, G.st.events, st.late_events, G.st.late_events,
			      st.index_entries, G.st.index_entries, st.last_seq, G.st.last_seq);
		/* Every stored event is known to dedupe. */
		tdm_event *all = tst_malloc(G.n_recs * sizeof *all);
		for (size_t i = 0; i < G.n_recs; i++)
			all[i] = G.recs[i].ev;
		tdm_append_result res;
		r = tdm_append(&res, NULL, s, all, G.n_recs);
		if (r || res.duplicates != G.n_recs)
			failf("after rebuild, appending every stored event again: %d, %" PRIu64
			      " of %zu duplicates", r, res.duplicates, G.n_recs);
		free(all);
		tdm_store_close(s);
	}
	end_case();
}

START_TEST(test_index_lost)
{
	setup_store();
	for (int how = 0; how < 3; how++) {
		index_case(how, 0);
		index_case(how, TDM_OPEN_READONLY);
	}
	end_test("index lost");
}
END_TEST

static Suite *damage_suite(void)
{
	Suite *su = suite_create("damage");
	TCase *tc = tcase_create("damage");
	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc, test_flip, 0, N_FILES);
	tcase_add_test(tc, test_flip_reader_and_rebuild);
	tcase_add_test(tc, test_flip_header_rebuild);
	tcase_add_loop_test(tc, test_truncate, 0, N_FILES);
	tcase_add_test(tc, test_truncate_then_append);
	tcase_add_test(tc, test_index_lost);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	/* Thousands of cases each open, recover and close a store, and the
	 * engine syncs: on a disk that takes minutes. Unless TMPDIR says
	 * otherwise, work in memory. */
	const char *tmp = getenv("TMPDIR");
	struct stat st;
	if ((!tmp || !*tmp) && stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
	    access("/dev/shm", W_OK | X_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	SRunner *sr = srunner_create(damage_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
