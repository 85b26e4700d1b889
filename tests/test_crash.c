/*
 * test_crash.c - power loss and failed calls under `batch` durability
 * (issue 3, first acceptance criterion), through the fault-injecting I/O
 * layer of faultfs.c.
 *
 * A multi-batch workload (on time, out of order, late, duplicates of
 * earlier batches and within a batch, same content with other ids, other
 * payloads, far-future shards, labels, binary and empty payloads) runs once
 * to count its syncs S. Then for sync points N in 1..S and each way the
 * disk can come back (drop, keep or tear the unsynced writes): a fresh
 * store runs the workload with the power going at the N-th sync, the files
 * are put into the state a power failure leaves, and the store is reopened
 * with the plain I/O layer. Checked each time:
 *  - open succeeds and verify finds no problem;
 *  - a full read returns each event of every acknowledged batch exactly
 *    once, no damage, and nothing else: the batch in flight was never
 *    committed, and recovery cuts uncommitted tails (so read ==
 *    acknowledged; an event of the batch in flight is reported apart);
 *  - appending the acknowledged batches again stores nothing (only
 *    duplicates), and appending new events works.
 * The default run samples sync points (at least 100 crashes); with
 * TDM_CRASH_SOAK=1 every sync point of several seeds and a longer workload
 * is tried (at least 1000 crashes). TDM_CRASH_SEED=N changes the seed.
 *
 * Also: a crash during the recovery of a crash (double crash); chains of
 * crashes on one store, the workload going on after each; an ENOSPC
 * or EIO at each pwrite and fsync of a batch (append fails with TDM_EIO,
 * the store is failed, reopen recovers); and failed calls while creating
 * and while recovering a store.
 */
#include "support.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "faultfs.h"

#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)
#define T0 INT64_C(1700000000000000000)
#define SHARD_NS (10 * SEC)
#define GRACE_NS (2 * SEC)
#define INTERVAL 256u

static int soak(void)
{
	const char *e = getenv("TDM_CRASH_SOAK");
	return e && *e && strcmp(e, "0") != 0;
}

static uint64_t base_seed(void)
{
	const char *e = getenv("TDM_CRASH_SEED");
	return e && *e ? strtoull(e, NULL, 0) : 20240601u;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- the workload ------------------------------------------------------- */

typedef struct batch {
	tdm_event *ev;    /* shallow copies of own[i], for tdm_append */
	tdm_event **own;
	size_t n;
} batch;

typedef struct workload {
	batch *b;
	size_t nb;
	int64_t end_ts;   /* above every on-time ts of the workload */
	uint64_t seed;
} workload;

static const char *const KEYS[] = {"host", "level", "stream", "type"};
static const char *const VALUES[][3] = {
	{"web-1", "web-2", "db-1"},
	{"info", "warn", "error"},
	{"order-42", "order-43", "cart-7"},
	{"created", "paid", "shipped"},
};

static tdm_event *random_event(tst_rng *rng, int64_t ts)
{
	tdm_label labels[4];
	size_t nl = 0;
	for (size_t k = 0; k < 4; k++)
		if (tst_rng_chance(rng, 40)) {
			labels[nl].key = KEYS[k];
			labels[nl].value = VALUES[k][tst_rng_range(rng, 3)];
			nl++;
		}
	/* Labels in a random order: the store sorts them. */
	if (nl == 2 && tst_rng_chance(rng, 50)) {
		tdm_label t = labels[0];
		labels[0] = labels[1];
		labels[1] = t;
	}
	uint8_t payload[96];
	size_t len = tst_rng_chance(rng, 10) ? 0 : 1 + (size_t)tst_rng_range(rng, 96);
	tst_rng_bytes(rng, payload, len); /* binary, NUL bytes included */
	tdm_event e = {ts, (uint32_t)tst_rng_range(rng, 4), 0, labels, nl, payload, len};
	return tst_event_dup(&e);
}

static void batch_push(batch *b, size_t *cap, tdm_event *e)
{
	if (b->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		b->own = tst_realloc(b->own, *cap * sizeof *b->own);
	}
	b->own[b->n++] = e;
}

static void workload_make(workload *w, uint64_t seed, size_t nb)
{
	tst_rng rng;
	tst_rng_seed(&rng, seed);
	memset(w, 0, sizeof *w);
	w->seed = seed;
	w->nb = nb;
	w->b = tst_malloc(nb * sizeof *w->b);
	memset(w->b, 0, nb * sizeof *w->b);
	int64_t now = T0 + 3 * SEC;
	for (size_t bi = 0; bi < nb; bi++) {
		batch *b = &w->b[bi];
		size_t cap = 0, n = 20 + (size_t)tst_rng_range(&rng, 41);
		while (b->n < n) {
			unsigned r = (unsigned)tst_rng_range(&rng, 100);
			tdm_event *e = NULL;
			if (r < 50) { /* on time, in order */
				e = random_event(&rng, now);
				now += 1 + (int64_t)tst_rng_range(&rng, 60 * MS);
			} else if (r < 62) { /* out of order within the grace window */
				e = random_event(&rng, now - (int64_t)tst_rng_range(&rng, 1800 * MS));
			} else if (r < 72) { /* late */
				int64_t ts = now - 2500 * MS - (int64_t)tst_rng_range(&rng, 20 * SEC);
				e = random_event(&rng, ts < T0 ? T0 + (int64_t)b->n : ts);
			} else if (r < 80 && bi > 0) { /* a duplicate of an earlier batch */
				const batch *o = &w->b[tst_rng_range(&rng, bi)];
				e = tst_event_dup(o->own[tst_rng_range(&rng, o->n)]);
			} else if (r < 87 && b->n > 0) { /* a duplicate within the batch */
				e = tst_event_dup(b->own[tst_rng_range(&rng, b->n)]);
			} else if (r < 92 && b->n > 0) { /* same content, another id */
				e = tst_event_dup(b->own[tst_rng_range(&rng, b->n)]);
				e->id += 1 + (uint32_t)tst_rng_range(&rng, 3);
			} else if (r < 96 && b->n > 0) { /* same ts and labels, other payload */
				const tdm_event *o = b->own[tst_rng_range(&rng, b->n)];
				uint8_t p[8];
				tst_rng_bytes(&rng, p, sizeof p);
				tdm_event x = *o;
				x.payload = p;
				x.payload_len = sizeof p;
				e = tst_event_dup(&x);
			} else { /* far future: a shard of its own */
				e = random_event(&rng, now + (int64_t)(100 + tst_rng_range(&rng, 3)) * SHARD_NS +
				                           (int64_t)tst_rng_range(&rng, SEC));
			}
			batch_push(b, &cap, e);
		}
		b->ev = tst_malloc(b->n * sizeof *b->ev);
		for (size_t i = 0; i < b->n; i++)
			b->ev[i] = *b->own[i];
		now += (int64_t)tst_rng_range(&rng, SEC);
	}
	w->end_ts = now + 10 * SEC;
}

static void workload_free(workload *w)
{
	for (size_t bi = 0; bi < w->nb; bi++) {
		for (size_t i = 0; i < w->b[bi].n; i++)
			tst_event_free(w->b[bi].own[i]);
		free(w->b[bi].own);
		free(w->b[bi].ev);
	}
	free(w->b);
}

/* ---- sets of events ------------------------------------------------------ */

typedef struct evset {
	const tdm_event **a;
	size_t n, cap;
} evset;

static void evset_add(evset *s, const tdm_event *e)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->a = tst_realloc(s->a, s->cap * sizeof *s->a);
	}
	s->a[s->n++] = e;
}

static int ev_ptr_cmp(const void *a, const void *b)
{
	return tst_event_cmp(*(const tdm_event *const *)a, *(const tdm_event *const *)b);
}

static void evset_sort(evset *s)
{
	if (s->n)
		qsort(s->a, s->n, sizeof *s->a, ev_ptr_cmp);
}

/* Sorts and drops repeats. */
static void evset_distinct(evset *s)
{
	evset_sort(s);
	size_t k = 0;
	for (size_t i = 0; i < s->n; i++)
		if (k == 0 || tst_event_cmp(s->a[k - 1], s->a[i]) != 0)
			s->a[k++] = s->a[i];
	s->n = k;
}

static int evset_has(const evset *s, const tdm_event *e)
{
	return s->n && bsearch(&e, s->a, s->n, sizeof *s->a, ev_ptr_cmp) != NULL;
}

/* The distinct events of batches [from, to). */
static void batches_events(evset *s, const workload *w, size_t from, size_t to)
{
	for (size_t b = from; b < to && b < w->nb; b++)
		for (size_t i = 0; i < w->b[b].n; i++)
			evset_add(s, w->b[b].own[i]);
	evset_distinct(s);
}

/* ---- problems found ------------------------------------------------------ */

/* Problems are collected, not asserted at once, so that a sweep reports
 * every kind of failure it meets; each test asserts none at its end. */
#define MAX_SHOWN 12
static unsigned n_bad;
static char bad_first[MAX_SHOWN][800];
static char scenario[256];

static void bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void bad(const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (n_bad < MAX_SHOWN) {
		snprintf(bad_first[n_bad], sizeof bad_first[n_bad], "%s: %s", scenario, what);
		fprintf(stderr, "PROBLEM %s\n", bad_first[n_bad]);
	}
	n_bad++;
}

static void bad_reset(void)
{
	n_bad = 0;
}

static void bad_assert_none(const char *test)
{
	if (n_bad)
		fprintf(stderr, "%s: %u problems\n", test, n_bad);
	ck_assert_msg(n_bad == 0, "%s: %u problems; first: %s", test, n_bad,
	              n_bad ? bad_first[0] : "");
}

/* ---- stores --------------------------------------------------------------- */

static const tdm_options OPTS = {TDM_OPTIONS_VERSION, SHARD_NS, GRACE_NS, INTERVAL, 0};

/* A fresh empty directory. Durability is simulated by faultfs, so a tmpfs
 * is as good as a disk and much faster for LMDB's own syncs. */
static char *crash_tmpdir(void)
{
	struct stat st;
	const char *env = getenv("TMPDIR");
	if ((!env || !*env) && stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
	    access("/dev/shm", W_OK) == 0) {
		char *p = tst_malloc(64);
		snprintf(p, 64, "/dev/shm/tidemark-crash-XXXXXX");
		if (mkdtemp(p))
			return p;
		free(p);
	}
	return tst_tmpdir();
}

static void drop_dir(char *dir)
{
	tst_rmtree(dir);
	free(dir);
}

/* Puts faultfs in place for `dir` (LMDB's index/ left alone) and creates a
 * store there. */
static void faultfs_store(const char *dir, uint64_t seed)
{
	faultfs_install(dir, seed);
	char idx[4200];
	snprintf(idx, sizeof idx, "%s/index", dir);
	faultfs_ignore(idx);
	int r = tdm_store_create(dir, &OPTS);
	ck_assert_msg(r == 0, "create %s: %d %s", dir, r, tdm_error_message());
}

static int open_batch(tdm_store **s, const char *dir)
{
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	oo.durability = TDM_DURABILITY_BATCH;
	*s = NULL;
	return tdm_store_open(s, dir, &oo);
}

typedef struct run_out {
	int open_rc;   /* tdm_store_open */
	size_t acked;  /* batches 0 .. acked-1 were acknowledged */
	int fail_rc;   /* the append that failed, 0 if none did */
	int next_rc;   /* an append after it */
	int close_rc;
} run_out;

/* Opens the store (batch durability) and appends the batches [from, nb)
 * until one fails; then tries one more append and closes. */
static void run_batches(run_out *o, const char *dir, const workload *w, size_t from)
{
	memset(o, 0, sizeof *o);
	o->acked = from;
	tdm_store *s;
	if ((o->open_rc = open_batch(&s, dir)))
		return;
	for (size_t b = from; b < w->nb; b++) {
		if (b == w->nb / 2 && b > from) {
			/* Close and reopen half way: dedupe state is then reloaded
			 * from the files, and duplicates of earlier batches are
			 * found there. */
			int r = tdm_store_close(s);
			s = NULL;
			if (r == 0)
				r = open_batch(&s, dir); /* s stays NULL if it fails */
			if (r) {
				o->fail_rc = r;
				o->next_rc = TDM_EFAILED;
				return;
			}
		}
		tdm_append_result res;
		int r = tdm_append(&res, NULL, s, w->b[b].ev, w->b[b].n);
		if (r) {
			o->fail_rc = r;
			o->next_rc = tdm_append(&res, NULL, s, w->b[0].ev, 1);
			break;
		}
		o->acked = b + 1;
	}
	o->close_rc = tdm_store_close(s);
}

static void note_problem(void *ctx, const tdm_problem *p)
{
	char *first = ctx;
	if (!first[0])
		snprintf(first, 512, "%s offset %lld: %s", p->file, (long long)p->offset,
		         p->what);
}

static void check_verify(tdm_store *s, const char *when)
{
	uint64_t problems = 0;
	char first[512] = "";
	int r = tdm_verify(&problems, s, note_problem, first);
	if (r)
		bad("%s: verify could not run: %d %s", when, r, tdm_error_message());
	else if (problems)
		bad("%s: verify found %" PRIu64 " problems, first: %s", when, problems, first);
}

/* Reads [0, INT64_MAX) into `out` (owned copies), sorted. */
static void read_all(evset *out, tdm_store *s, const char *when)
{
	tdm_iter *it = NULL;
	int r = tdm_iter_open(&it, s, 0, INT64_MAX, NULL);
	if (r) {
		bad("%s: iter_open: %d %s", when, r, tdm_error_message());
		return;
	}
	const tdm_event *ev;
	while ((r = tdm_iter_next(&ev, it)) == 0)
		evset_add(out, tst_event_dup(ev));
	if (r != TDM_ITEROVER)
		bad("%s: iter_next: %d %s", when, r, tdm_error_message());
	const char *msg = NULL;
	uint64_t damage = tdm_iter_damage(&msg, it);
	if (damage)
		bad("%s: the read skipped %" PRIu64 " damaged stretches, first: %s", when,
		    damage, msg ? msg : "?");
	tdm_iter_close(it);
	evset_sort(out);
}

static void evset_free_owned(evset *s)
{
	for (size_t i = 0; i < s->n; i++)
		tst_event_free((tdm_event *)s->a[i]);
	free(s->a);
	memset(s, 0, sizeof *s);
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Every seq is unique and >= 1; `stat` counts what the read returned.
 * Returns the largest seq. */
static uint64_t check_seqs(tdm_store *s, const evset *got, const char *when)
{
	uint64_t *seq = tst_malloc((got->n ? got->n : 1) * sizeof *seq), max = 0;
	for (size_t i = 0; i < got->n; i++)
		seq[i] = got->a[i]->seq;
	qsort(seq, got->n, sizeof *seq, u64_cmp);
	for (size_t i = 0; i < got->n; i++) {
		if (seq[i] == 0 || (i && seq[i] == seq[i - 1])) {
			bad("%s: seq %" PRIu64 " is 0 or given twice", when, seq[i]);
			break;
		}
		max = seq[i];
	}
	free(seq);
	tdm_stat st;
	int r = tdm_stat_get(&st, s);
	if (r)
		bad("%s: stat: %d %s", when, r, tdm_error_message());
	else if (st.events != got->n || st.last_seq < max)
		bad("%s: stat says %" PRIu64 " events, last seq %" PRIu64 "; the read found %zu,"
		    " largest seq %" PRIu64, when, st.events, st.last_seq, got->n, max);
	return max;
}

/* Compares the store's events with the acknowledged batches [0, acked);
 * batch `acked` (if any) was in flight. Returns how many events of the
 * batch in flight are there; `*max_seq` (may be NULL) gets the largest seq
 * read. */
static size_t check_events(tdm_store *s, const workload *w, size_t acked,
                           const char *when, uint64_t *max_seq)
{
	evset want = {0}, flight = {0}, got = {0};
	batches_events(&want, w, 0, acked);
	batches_events(&flight, w, acked, acked + 1);
	read_all(&got, s, when);
	uint64_t top = check_seqs(s, &got, when);
	if (max_seq)
		*max_seq = top;
	char buf[300];
	size_t dups = 0, missing = 0, from_flight = 0, unknown = 0;
	for (size_t i = 1; i < got.n; i++)
		if (tst_event_cmp(got.a[i - 1], got.a[i]) == 0 && dups++ == 0)
			bad("%s: event stored twice: %s", when,
			    tst_event_str(buf, sizeof buf, got.a[i]));
	for (size_t i = 0; i < want.n; i++)
		if (!evset_has(&got, want.a[i]) && missing++ == 0)
			bad("%s: acknowledged event lost: %s", when,
			    tst_event_str(buf, sizeof buf, want.a[i]));
	for (size_t i = 0; i < got.n; i++) {
		if (evset_has(&want, got.a[i]))
			continue;
		if (evset_has(&flight, got.a[i]))
			from_flight++;
		else if (unknown++ == 0)
			bad("%s: an event never appended: %s", when,
			    tst_event_str(buf, sizeof buf, got.a[i]));
	}
	if (missing)
		bad("%s: %zu of %zu acknowledged events lost", when, missing, want.n);
	if (from_flight)
		bad("%s: %zu of the %zu events of the unacknowledged batch %zu are"
		    " readable after recovery (want none: it never committed)",
		    when, from_flight, flight.n, acked);
	(void)dups;
	free(want.a);
	free(flight.a);
	evset_free_owned(&got);
	return from_flight;
}

/* The state after a crash or failure, with the plain I/O layer. */
static void check_recovered(const char *dir, const workload *w, size_t acked)
{
	tdm_store *s;
	int r = open_batch(&s, dir);
	if (r) {
		bad("reopen: %d %s", r, tdm_error_message());
		return;
	}
	check_verify(s, "after reopen");
	uint64_t max_seq = 0;
	check_events(s, w, acked, "after reopen", &max_seq);

	/* The acknowledged batches again: only duplicates. */
	for (size_t b = 0; b < acked; b++) {
		tdm_append_result res;
		if ((r = tdm_append(&res, NULL, s, w->b[b].ev, w->b[b].n))) {
			bad("re-append of batch %zu: %d %s", b, r, tdm_error_message());
			break;
		}
		if (res.appended)
			bad("re-append of acknowledged batch %zu stored %" PRIu64
			    " events (want only duplicates)", b, res.appended);
	}
	/* New events: on time at the end, late in the first shard, and in a
	 * new shard. */
	const tdm_label lab[] = {{"host", "after-crash"}};
	char text[4][32];
	tdm_event fresh[4];
	for (int i = 0; i < 4; i++) {
		snprintf(text[i], sizeof text[i], "fresh %d", i);
		fresh[i] = (tdm_event){w->end_ts + i * MS, 9, 0, lab, 1, text[i], strlen(text[i])};
	}
	fresh[2].ts = T0 + 1; /* late (or on time if the shard is empty) */
	fresh[3].ts = w->end_ts + 50 * SHARD_NS;
	tdm_append_result res;
	if ((r = tdm_append(&res, NULL, s, fresh, 4)))
		bad("append of new events after recovery: %d %s", r, tdm_error_message());
	else if (res.appended != 4)
		bad("append of 4 new events after recovery stored %" PRIu64, res.appended);
	tdm_stat st;
	if (r == 0 && tdm_stat_get(&st, s) == 0 && st.last_seq < max_seq + 4)
		bad("after recovery, new events got seqs up to %" PRIu64 ", not above %" PRIu64,
		    st.last_seq, max_seq);
	check_verify(s, "after new appends");
	if ((r = tdm_store_close(s)))
		bad("close after recovery: %d %s", r, tdm_error_message());
}

/* ---- power loss -------------------------------------------------------------- */

static uint64_t mix(uint64_t a, uint64_t b)
{
	tst_rng r;
	tst_rng_seed(&r, a * 0x9e3779b97f4a7c15ull ^ b);
	return tst_rng_next(&r);
}

/* The workload without a crash: every batch acknowledged. Returns the
 * number of syncs it makes, open and close included. */
static uint64_t count_syncs(const workload *w)
{
	char *dir = crash_tmpdir();
	faultfs_store(dir, 1);
	faultfs_arm();
	run_out o;
	run_batches(&o, dir, w, 0);
	uint64_t syncs = faultfs_syncs();
	faultfs_uninstall();
	if (o.open_rc || o.acked != w->nb || o.close_rc) {
		char msg[600];
		snprintf(msg, sizeof msg, "%s", tdm_error_message());
		drop_dir(dir);
		ck_abort_msg("the workload without faults: open %d, %zu of %zu batches, close %d: %s",
		             o.open_rc, o.acked, w->nb, o.close_rc, msg);
	}
	snprintf(scenario, sizeof scenario, "seed %" PRIu64 ", no crash", w->seed);
	check_recovered(dir, w, w->nb);
	drop_dir(dir);
	return syncs;
}

/* One simulated power failure at sync `n`; with `rmode` >= 0, a second one
 * at the first sync of the recovery that follows. Returns 1 if the power
 * went, 2 if it went twice. */
static int crash_once(const workload *w, uint64_t n, enum faultfs_mode mode,
                      int rmode)
{
	char *dir = crash_tmpdir();
	faultfs_store(dir, mix(w->seed, n * 3 + (uint64_t)mode));
	faultfs_arm();
	faultfs_power_loss_at(n);
	run_out o;
	run_batches(&o, dir, w, 0);
	int crashes = 0;
	if (!faultfs_power_lost()) {
		bad("the power never went (%zu of %zu batches acknowledged)", o.acked, w->nb);
	} else {
		crashes = 1;
		if (o.open_rc == 0 && o.fail_rc != TDM_EIO)
			bad("the append at the power loss returned %d, want TDM_EIO", o.fail_rc);
		if (o.open_rc == 0 && o.next_rc != TDM_EFAILED)
			bad("an append after the power loss returned %d, want TDM_EFAILED",
			    o.next_rc);
	}
	faultfs_crash(mode);
	if (rmode >= 0) {
		/* The power goes again during recovery. */
		faultfs_arm();
		faultfs_power_loss_at(1);
		tdm_store *s;
		int r = open_batch(&s, dir);
		if (faultfs_power_lost()) {
			crashes++;
			if (r == 0) {
				bad("open returned 0 though the power went during recovery");
				tdm_store_close(s);
			}
			faultfs_crash((enum faultfs_mode)rmode);
		} else if (r) {
			bad("recovery without a fault failed: %d %s", r, tdm_error_message());
		} else {
			tdm_store_close(s);
		}
	}
	faultfs_uninstall();
	check_recovered(dir, w, o.acked);
	drop_dir(dir);
	return crashes;
}

/* The sync points to try out of 1..total: all, or about `want` of them
 * spread evenly (the first and the last always). */
static size_t pick_points(uint64_t *out, uint64_t total, size_t want)
{
	if (total <= want) {
		for (uint64_t i = 0; i < total; i++)
			out[i] = i + 1;
		return (size_t)total;
	}
	size_t n = 0;
	for (size_t i = 0; i < want; i++) {
		uint64_t p = 1 + (uint64_t)((double)i * (double)(total - 1) / (double)(want - 1));
		if (n == 0 || out[n - 1] != p)
			out[n++] = p;
	}
	return n;
}

typedef struct sweep {
	unsigned crashes, runs;
	uint64_t syncs;
} sweep;

static void sweep_seed(sweep *sw, uint64_t seed, size_t nb, size_t want_points,
                       int double_crash)
{
	workload w;
	workload_make(&w, seed, nb);
	uint64_t total = count_syncs(&w);
	sw->syncs += total;
	uint64_t *points = tst_malloc(total * sizeof *points);
	size_t np = pick_points(points, total, want_points ? want_points : (size_t)total);
	static const enum faultfs_mode modes[] = {FAULTFS_DROP, FAULTFS_KEEP, FAULTFS_TEAR};
	for (size_t i = 0; i < np; i++)
		for (int m = 0; m < 3; m++) {
			int rmode = double_crash ? (int)modes[(m + 1 + i) % 3] : -1;
			snprintf(scenario, sizeof scenario,
			         "seed %" PRIu64 ", power loss at sync %" PRIu64 " of %" PRIu64
			         ", %s%s%s", seed, points[i], total, faultfs_mode_name(modes[m]),
			         double_crash ? ", then at recovery, " : "",
			         double_crash ? faultfs_mode_name((enum faultfs_mode)rmode) : "");
			sw->crashes += (unsigned)crash_once(&w, points[i], modes[m], rmode);
			sw->runs++;
		}
	free(points);
	workload_free(&w);
}

START_TEST(test_power_loss)
{
	bad_reset();
	double t = now_s();
	sweep sw = {0};
	if (soak()) {
		/* Every sync point of four seeds of a longer workload. */
		for (uint64_t k = 0; k < 4; k++)
			sweep_seed(&sw, base_seed() + k, 40, 0, 0);
	} else {
		sweep_seed(&sw, base_seed(), 25, 150, 0);
	}
	printf("crash: %u simulated power failures (%u runs, %" PRIu64
	       " sync points in all) in %.1f s, %u problems\n",
	       sw.crashes, sw.runs, sw.syncs, now_s() - t, n_bad);
	fflush(stdout);
	ck_assert_msg(soak() ? sw.crashes >= 1000 : sw.crashes >= 100,
	              "only %u simulated crashes", sw.crashes);
	bad_assert_none("power loss");
}
END_TEST

/* The power goes once while appending, and again at the first sync of the
 * recovery that follows. */
START_TEST(test_power_loss_during_recovery)
{
	bad_reset();
	double t = now_s();
	sweep sw = {0};
	if (soak()) {
		for (uint64_t k = 0; k < 2; k++)
			sweep_seed(&sw, base_seed() + 100 + k, 30, 0, 1);
	} else {
		sweep_seed(&sw, base_seed() + 100, 12, 12, 1);
	}
	printf("crash: %u simulated power failures with a crash during recovery"
	       " (%u runs) in %.1f s, %u problems\n",
	       sw.crashes, sw.runs, now_s() - t, n_bad);
	fflush(stdout);
	bad_assert_none("power loss during recovery");
}
END_TEST

/* One store through many power failures: the workload goes on from the
 * last acknowledged batch after each crash and recovery, the power going
 * again a few syncs later (in an append or in the recovery itself), until
 * every batch is acknowledged. Returns the number of crashes. */
static unsigned crash_chain(uint64_t seed, size_t nb)
{
	workload w;
	workload_make(&w, seed, nb);
	tst_rng rng;
	tst_rng_seed(&rng, seed ^ 0xc4a5);
	char *dir = crash_tmpdir();
	faultfs_store(dir, seed);
	size_t acked = 0;
	unsigned crashes = 0, rounds = 0;
	char trail[128] = "";
	while (acked < w.nb) {
		if (++rounds > 20 * w.nb) {
			bad("no progress after %u rounds (%zu of %zu batches)", rounds, acked, w.nb);
			break;
		}
		uint64_t at = 1 + tst_rng_range(&rng, 40);
		enum faultfs_mode mode = (enum faultfs_mode)tst_rng_range(&rng, 3);
		snprintf(scenario, sizeof scenario,
		         "chain seed %" PRIu64 ", crash %u (at sync %" PRIu64 " after batch %zu, %s;"
		         " before: %s)", seed, crashes + 1, at, acked, faultfs_mode_name(mode), trail);
		faultfs_arm();
		faultfs_power_loss_at(at);
		run_out o;
		run_batches(&o, dir, &w, acked);
		if (o.acked < acked)
			bad("acknowledged batches went back from %zu to %zu", acked, o.acked);
		acked = o.acked;
		if (!faultfs_power_lost()) {
			if (o.open_rc || o.fail_rc)
				bad("without a fault: open %d, append %d: %s", o.open_rc, o.fail_rc,
				    tdm_error_message());
			break;
		}
		crashes++;
		size_t used = strlen(trail);
		if (used < sizeof trail - 16)
			snprintf(trail + used, sizeof trail - used, "%s%" PRIu64 "%c", used ? " " : "",
			         at, faultfs_mode_name(mode)[0]);
		faultfs_crash(mode);
		/* Recover and look, still through the layer (no fault armed). */
		faultfs_arm();
		tdm_store *s;
		int r = open_batch(&s, dir);
		if (r) {
			bad("open after the crash: %d %s", r, tdm_error_message());
			break;
		}
		check_verify(s, "after recovery");
		check_events(s, &w, acked, "after recovery", NULL);
		if ((r = tdm_store_close(s)))
			bad("close after recovery: %d %s", r, tdm_error_message());
	}
	faultfs_uninstall();
	snprintf(scenario, sizeof scenario, "chain seed %" PRIu64 ", at the end (%u crashes: %s)",
	         seed, crashes, trail);
	check_recovered(dir, &w, acked);
	drop_dir(dir);
	workload_free(&w);
	return crashes;
}

START_TEST(test_power_loss_chain)
{
	bad_reset();
	double t = now_s();
	unsigned crashes = 0, chains = soak() ? 60 : 6;
	for (unsigned k = 0; k < chains; k++)
		crashes += crash_chain(base_seed() + 500 + k, 25);
	printf("crash: %u simulated power failures in %u chains of crashes on one store"
	       " in %.1f s, %u problems\n", crashes, chains, now_s() - t, n_bad);
	fflush(stdout);
	bad_assert_none("chains of power failures");
}
END_TEST

/* ---- failed calls ------------------------------------------------------------- */

/* How many pwrite and fsync calls each batch of the workload makes. */
static void count_calls(const workload *w, uint64_t *pwrites, uint64_t *fsyncs)
{
	char *dir = crash_tmpdir();
	faultfs_store(dir, 1);
	tdm_store *s;
	ck_assert_int_eq(open_batch(&s, dir), 0);
	for (size_t b = 0; b < w->nb; b++) {
		faultfs_arm();
		ck_assert_int_eq(tdm_append(NULL, NULL, s, w->b[b].ev, w->b[b].n), 0);
		pwrites[b] = faultfs_calls(FAULTFS_PWRITE);
		fsyncs[b] = faultfs_calls(FAULTFS_FSYNC);
	}
	ck_assert_int_eq(tdm_store_close(s), 0);
	faultfs_uninstall();
	drop_dir(dir);
}

/* Batches before `b` commit; the k-th call `op` of batch b fails with err. */
static void fail_in_batch(const workload *w, size_t b, enum faultfs_op op,
                          uint64_t k, int err, int partial)
{
	char *dir = crash_tmpdir();
	faultfs_store(dir, 1);
	tdm_store *s;
	ck_assert_int_eq(open_batch(&s, dir), 0);
	for (size_t i = 0; i < b; i++)
		ck_assert_int_eq(tdm_append(NULL, NULL, s, w->b[i].ev, w->b[i].n), 0);
	faultfs_arm();
	faultfs_fail_call(op, k, err, partial);
	tdm_append_result res;
	int r = tdm_append(&res, NULL, s, w->b[b].ev, w->b[b].n);
	if (faultfs_failures() != 1)
		bad("the failure was not injected (%" PRIu64 " failures)", faultfs_failures());
	if (r != TDM_EIO)
		bad("append with a failing call returned %d (%s), want TDM_EIO", r,
		    tdm_error_message());
	else if (!strstr(tdm_error_message(), "shards/"))
		bad("the message '%s' names no shard file", tdm_error_message());
	faultfs_fail_call(op, 0, 0, 0);
	if ((r = tdm_append(&res, NULL, s, w->b[b].ev, w->b[b].n)) != TDM_EFAILED)
		bad("the append after the failure returned %d, want TDM_EFAILED", r);
	if ((r = tdm_sync(s)) != TDM_EFAILED)
		bad("tdm_sync after the failure returned %d, want TDM_EFAILED", r);
	/* The failed handle still reads what was committed. */
	check_events(s, w, b, "failed handle", NULL);
	tdm_store_close(s);
	faultfs_uninstall();
	check_recovered(dir, w, b);
	drop_dir(dir);
}

START_TEST(test_fail_each_call)
{
	bad_reset();
	double t = now_s();
	workload w;
	size_t nb = soak() ? 16 : 8;
	workload_make(&w, base_seed() + 200, nb);
	uint64_t *pw = tst_malloc(nb * sizeof *pw), *fs = tst_malloc(nb * sizeof *fs);
	count_calls(&w, pw, fs);
	unsigned runs = 0;
	static const int errs[] = {ENOSPC, EIO};
	for (size_t b = 0; b < nb; b++) {
		for (int e = 0; e < 2; e++) {
			for (uint64_t k = 1; k <= pw[b]; k++)
				for (int partial = 0; partial < 2; partial++) {
					snprintf(scenario, sizeof scenario,
					         "batch %zu, pwrite %" PRIu64 " of %" PRIu64 " fails with %s%s",
					         b, k, pw[b], strerror(errs[e]),
					         partial ? " after half of it" : "");
					fail_in_batch(&w, b, FAULTFS_PWRITE, k, errs[e], partial);
					runs++;
				}
			for (uint64_t k = 1; k <= fs[b]; k++) {
				snprintf(scenario, sizeof scenario,
				         "batch %zu, fsync %" PRIu64 " of %" PRIu64 " fails with %s", b, k,
				         fs[b], strerror(errs[e]));
				fail_in_batch(&w, b, FAULTFS_FSYNC, k, errs[e], 0);
				runs++;
			}
		}
	}
	printf("crash: %u failed pwrite/fsync calls injected in %.1f s, %u problems\n",
	       runs, now_s() - t, n_bad);
	fflush(stdout);
	free(pw);
	free(fs);
	workload_free(&w);
	bad_assert_none("failed calls");
}
END_TEST

/* Failed calls while a store is being created: create fails cleanly, and
 * once the fault is gone the store can be created and used. */
START_TEST(test_fail_create)
{
	bad_reset();
	static const enum faultfs_op ops[] = {FAULTFS_OPEN, FAULTFS_PWRITE, FAULTFS_FSYNC,
	                                      FAULTFS_RENAME};
	static const char *const names[] = {"open", "pwrite", "fsync", "rename"};
	/* How many calls create makes. */
	uint64_t calls[4];
	{
		char *dir = crash_tmpdir();
		faultfs_install(dir, 1);
		ck_assert_int_eq(tdm_store_create(dir, &OPTS), 0);
		for (int i = 0; i < 4; i++)
			calls[i] = faultfs_calls(ops[i]);
		faultfs_uninstall();
		drop_dir(dir);
	}
	workload w;
	workload_make(&w, base_seed() + 300, 3);
	for (int i = 0; i < 4; i++)
		for (uint64_t k = 1; k <= calls[i]; k++) {
			snprintf(scenario, sizeof scenario, "create: %s %" PRIu64 " of %" PRIu64
			         " fails with ENOSPC", names[i], k, calls[i]);
			char *dir = crash_tmpdir();
			faultfs_install(dir, 1);
			faultfs_fail_call(ops[i], k, ENOSPC, 0);
			int r = tdm_store_create(dir, &OPTS);
			if (faultfs_failures() != 1)
				bad("the failure was not injected");
			if (r != TDM_EIO)
				bad("create returned %d (%s), want TDM_EIO", r, tdm_error_message());
			faultfs_uninstall();
			/* The fault is gone: create again, then use the store. */
			if ((r = tdm_store_create(dir, &OPTS)))
				bad("create after a failed create: %d %s", r, tdm_error_message());
			else {
				run_out o;
				run_batches(&o, dir, &w, 0);
				if (o.open_rc || o.acked != w.nb)
					bad("the store made after a failed create: open %d, %zu batches",
					    o.open_rc, o.acked);
				else
					check_recovered(dir, &w, w.nb);
			}
			drop_dir(dir);
		}
	/* The power goes at each sync of create. */
	static const enum faultfs_mode modes[] = {FAULTFS_DROP, FAULTFS_KEEP, FAULTFS_TEAR};
	unsigned crashes = 0;
	for (uint64_t n = 1; n <= calls[2]; n++)
		for (int m = 0; m < 3; m++) {
			snprintf(scenario, sizeof scenario, "create: power loss at sync %" PRIu64
			         " of %" PRIu64 ", %s", n, calls[2], faultfs_mode_name(modes[m]));
			char *dir = crash_tmpdir();
			faultfs_install(dir, n * 3 + (uint64_t)m);
			faultfs_power_loss_at(n);
			int r = tdm_store_create(dir, &OPTS);
			if (!faultfs_power_lost())
				bad("the power never went");
			crashes += (unsigned)faultfs_power_lost();
			if (r != TDM_EIO)
				bad("create returned %d (%s), want TDM_EIO", r, tdm_error_message());
			faultfs_crash(modes[m]);
			faultfs_uninstall();
			/* Either no store, or a whole one. */
			tdm_store *s;
			if ((r = open_batch(&s, dir)) == 0)
				tdm_store_close(s);
			else if (r != TDM_ENOTFOUND)
				bad("open after a crash in create: %d %s, want 0 or TDM_ENOTFOUND", r,
				    tdm_error_message());
			if ((r = tdm_store_create(dir, &OPTS)))
				bad("create after a crash in create: %d %s", r, tdm_error_message());
			else {
				run_out o;
				run_batches(&o, dir, &w, 0);
				if (o.open_rc || o.acked != w.nb)
					bad("the store made after a crash in create: open %d, %zu batches",
					    o.open_rc, o.acked);
				else
					check_recovered(dir, &w, w.nb);
			}
			drop_dir(dir);
		}
	printf("crash: %u simulated power failures in create\n", crashes);
	fflush(stdout);
	workload_free(&w);
	bad_assert_none("failed calls in create");
}
END_TEST

/* Failed calls during the recovery after a crash: open fails cleanly (or
 * succeeds when the call did not matter), and a later open recovers. */
START_TEST(test_fail_recovery)
{
	bad_reset();
	static const enum faultfs_op ops[] = {FAULTFS_OPEN, FAULTFS_PWRITE, FAULTFS_FSYNC,
	                                      FAULTFS_FTRUNCATE};
	static const char *const names[] = {"open", "pwrite", "fsync", "ftruncate"};
	workload w;
	workload_make(&w, base_seed() + 400, 10);
	uint64_t total;
	{
		char *dir = crash_tmpdir();
		faultfs_store(dir, 1);
		faultfs_arm();
		run_out o;
		run_batches(&o, dir, &w, 0);
		total = faultfs_syncs();
		faultfs_uninstall();
		drop_dir(dir);
	}
	unsigned runs = 0;
	/* Crash points in the second half, kept (so recovery has tails to cut). */
	for (uint64_t n = total / 2; n <= total; n += 3) {
		for (int i = 0; i < 4; i++) {
			for (uint64_t k = 1;; k++) {
				char *dir = crash_tmpdir();
				faultfs_store(dir, 1);
				faultfs_arm();
				faultfs_power_loss_at(n);
				run_out o;
				run_batches(&o, dir, &w, 0);
				faultfs_crash(FAULTFS_KEEP);
				faultfs_arm();
				faultfs_fail_call(ops[i], k, i == 0 ? EIO : ENOSPC, 0);
				snprintf(scenario, sizeof scenario,
				         "power loss at sync %" PRIu64 ", keep; then %s %" PRIu64
				         " of the recovery fails", n, names[i], k);
				tdm_store *s;
				int r = open_batch(&s, dir);
				int injected = faultfs_failures() == 1;
				if (r == 0)
					tdm_store_close(s);
				faultfs_uninstall();
				if (injected) {
					runs++;
					check_recovered(dir, &w, o.acked);
				}
				drop_dir(dir);
				if (!injected)
					break;
			}
		}
	}
	printf("crash: %u failed calls injected into recovery\n", runs);
	fflush(stdout);
	workload_free(&w);
	bad_assert_none("failed calls in recovery");
}
END_TEST

/* ---- the layer itself ----------------------------------------------------------- */

static void put_file(const char *path, const char *text)
{
	int fd;
	ck_assert_int_eq(io_open(&fd, path, O_RDWR | O_CREAT, 0644), 0);
	ck_assert_int_eq(io_pwrite(fd, text, strlen(text), 0), 0);
	ck_assert_int_eq(io_close(fd), 0);
}

static void append_file(const char *path, const char *text, int sync)
{
	int fd;
	uint64_t size;
	ck_assert_int_eq(io_open(&fd, path, O_RDWR, 0), 0);
	ck_assert_int_eq(io_size(fd, &size), 0);
	ck_assert_int_eq(io_pwrite(fd, text, strlen(text), size), 0);
	if (sync)
		ck_assert_int_eq(io_fsync(fd), 0);
	ck_assert_int_eq(io_close(fd), 0);
}

static void sync_file(const char *path)
{
	int fd;
	ck_assert_int_eq(io_open(&fd, path, O_RDWR, 0), 0);
	ck_assert_int_eq(io_fsync(fd), 0);
	ck_assert_int_eq(io_close(fd), 0);
}

/* The file's content, or "<none>". */
static const char *content(char *buf, size_t cap, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return "<none>";
	size_t n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = 0;
	return buf;
}

START_TEST(test_faultfs_model)
{
	static const enum faultfs_mode modes[] = {FAULTFS_DROP, FAULTFS_KEEP, FAULTFS_TEAR};
	for (int m = 0; m < 3; m++) {
		char *dir = crash_tmpdir();
		char a[4200], b[4200], c[4200], d[4200], tmp[4200], buf[256];
		snprintf(a, sizeof a, "%s/a", dir);           /* synced, dir synced, appended */
		snprintf(b, sizeof b, "%s/b", dir);           /* synced, never dir synced */
		snprintf(c, sizeof c, "%s/c", dir);           /* renamed over, not dir synced */
		snprintf(d, sizeof d, "%s/pre", dir);         /* there before the layer */
		snprintf(tmp, sizeof tmp, "%s/c.tmp", dir);
		FILE *f = fopen(d, "wb");
		fputs("old", f);
		fclose(f);
		faultfs_install(dir, 7);
		put_file(a, "durable");
		sync_file(a);
		put_file(c, "c-old");
		sync_file(c);
		ck_assert_int_eq(io_fsync_dir(dir), 0);
		append_file(a, "+more", 0);
		put_file(b, "b");
		sync_file(b);
		put_file(tmp, "c-new");
		sync_file(tmp);
		ck_assert_int_eq(io_rename(tmp, c), 0);
		ck_assert_int_eq(io_unlink(d), 0);
		ck_assert_uint_eq(faultfs_syncs(), 5);
		faultfs_arm();
		faultfs_power_loss_at(2);
		append_file(a, "!", 1); /* sync 1: durable */
		int fd;
		ck_assert_int_eq(io_open(&fd, a, O_RDWR, 0), 0);
		ck_assert_int_eq(io_pwrite(fd, "lost", 4, 13), 0);
		ck_assert_int_eq(io_fsync(fd), -EIO); /* sync 2: the power goes */
		ck_assert(faultfs_power_lost());
		size_t got;
		ck_assert_int_eq(io_pread(fd, buf, 4, 0, &got), -EIO);
		ck_assert_int_eq(io_pwrite(fd, "x", 1, 0), -EIO);
		io_close(fd);
		ck_assert_int_eq(io_open(&fd, a, O_RDONLY, 0), -EIO);
		faultfs_crash(modes[m]);
		faultfs_uninstall();
		if (modes[m] == FAULTFS_DROP) {
			ck_assert_str_eq(content(buf, sizeof buf, a), "durable+more!");
			ck_assert_str_eq(content(buf, sizeof buf, b), "<none>");
			ck_assert_str_eq(content(buf, sizeof buf, c), "c-old");
			ck_assert_str_eq(content(buf, sizeof buf, tmp), "<none>");
			ck_assert_str_eq(content(buf, sizeof buf, d), "old");
		} else if (modes[m] == FAULTFS_KEEP) {
			ck_assert_str_eq(content(buf, sizeof buf, a), "durable+more!lost");
			ck_assert_str_eq(content(buf, sizeof buf, b), "b");
			ck_assert_str_eq(content(buf, sizeof buf, c), "c-new");
			ck_assert_str_eq(content(buf, sizeof buf, d), "<none>");
		} else {
			const char *x = content(buf, sizeof buf, a);
			ck_assert_msg(strncmp(x, "durable+more!", 13) == 0 && strlen(x) <= 17,
			              "torn a: '%s'", x);
			x = content(buf, sizeof buf, c);
			ck_assert_msg(strcmp(x, "c-old") == 0 || strcmp(x, "c-new") == 0,
			              "torn c: '%s'", x);
		}
		drop_dir(dir);
	}
	/* A failed call fails once, with the error asked for. */
	char *dir = crash_tmpdir();
	char p[4200];
	snprintf(p, sizeof p, "%s/f", dir);
	faultfs_install(dir, 1);
	faultfs_fail_call(FAULTFS_PWRITE, 2, ENOSPC, 0);
	int fd;
	ck_assert_int_eq(io_open(&fd, p, O_RDWR | O_CREAT, 0644), 0);
	ck_assert_int_eq(io_pwrite(fd, "1", 1, 0), 0);
	ck_assert_int_eq(io_pwrite(fd, "2", 1, 1), -ENOSPC);
	ck_assert_int_eq(io_pwrite(fd, "3", 1, 1), 0);
	faultfs_fail_call(FAULTFS_PWRITE, 4, EIO, 1);
	ck_assert_int_eq(io_pwrite(fd, "4567", 4, 2), -EIO); /* "45" lands */
	ck_assert_int_eq(io_close(fd), 0);
	ck_assert_uint_eq(faultfs_failures(), 2);
	faultfs_uninstall();
	char buf[64];
	ck_assert_str_eq(content(buf, sizeof buf, p), "1345");
	drop_dir(dir);
}
END_TEST

static Suite *crash_suite(void)
{
	Suite *su = suite_create("crash");
	TCase *tl = tcase_create("layer");
	tcase_add_test(tl, test_faultfs_model);
	suite_add_tcase(su, tl);
	TCase *tc = tcase_create("power loss");
	tcase_set_timeout(tc, soak() ? 3600 : 600);
	tcase_add_test(tc, test_power_loss);
	tcase_add_test(tc, test_power_loss_during_recovery);
	tcase_add_test(tc, test_power_loss_chain);
	suite_add_tcase(su, tc);
	TCase *tf = tcase_create("failed calls");
	tcase_set_timeout(tf, soak() ? 3600 : 600);
	tcase_add_test(tf, test_fail_each_call);
	tcase_add_test(tf, test_fail_create);
	tcase_add_test(tf, test_fail_recovery);
	suite_add_tcase(su, tf);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(crash_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
