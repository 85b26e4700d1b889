/*
 * bench.c - tidemark-bench: the SPEC §7 benchmark, for every engine it knows.
 *
 *   write: tidemark-bench --engine E --dir DIR --workload inorder|ooo|late
 *              --events N [--payload 100] [--batch 1000] [--labels 0]
 *              [--sync batch|end|none] [--seed 42]
 *   read:  tidemark-bench --engine E --dir DIR --read scan|windows
 *              [--windows 1000] [--window-ms 1000] [--seed 42]
 *   labels (engines with a label query; write with --labels 3 first):
 *          tidemark-bench --engine E --dir DIR --read select|filter
 *              --where k=v,k2=v2 [--where ...]
 *          select answers the selector from the label index, filter reads
 *          every record and filters (the same events; issue 6).
 *
 * Each run prints one `RESULT key=value ...` line on stdout for scripts to
 * parse; anything else goes to stderr. Exit status: 0 done, 1 the engine
 * failed or a read came back wrong (count or order), 2 usage error.
 *
 * The raw file peer is a floor, not a store: its scan returns events in
 * arrival order (the scan line says ordered=0 and how many came back out of
 * order, instead of failing) and it has no windows (the windows line says
 * skipped=no_index).
 *
 * Timing: write time is the sum of the engine's open, write_batch, sync and
 * close calls; generating the events is not counted, so the figure is the
 * engine's alone. Read time counts from the first read call to the last
 * event, not opening the store.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>

#include "engine.h"
#include "workload.h"

#define EXIT_ENGINE 1
#define EXIT_USAGE 2

/* The peers are compiled in when Meson finds their libraries (option
 * bench_peers); the raw file needs none. */
static const struct engine *const engines[] = {
	&engine_tidemark,
#ifdef HAVE_BENCH_SQLITE
	&engine_sqlite,
#endif
#ifdef HAVE_BENCH_LMDB
	&engine_lmdb,
#endif
#ifdef HAVE_BENCH_ROCKSDB
	&engine_rocksdb,
#endif
#ifdef HAVE_BENCH_RAW
	&engine_raw,
#endif
};
#define N_ENGINES (sizeof engines / sizeof engines[0])

/* ---- Arguments ------------------------------------------------------------ */

enum read_mode { READ_NONE, READ_SCAN, READ_WINDOWS, READ_SELECT, READ_FILTER };
#define MAX_WHERE 16

struct args {
	const struct engine *engine;
	const char *dir;
	int write;              /* --workload given */
	struct workload wl;
	uint64_t events;
	uint64_t batch;
	enum bench_sync sync;
	enum read_mode read;
	uint64_t windows;
	uint64_t window_ms;
	int given_write_only;   /* an option that only a write takes */
	int given_read_only;    /* one that only a read takes */
	int given_events;
	const char *where[MAX_WHERE]; /* --where groups */
	size_t n_where;
};

static void usage(FILE *f)
{
	fputs("usage:\n"
	      "  tidemark-bench --engine E --dir DIR --workload inorder|ooo|late"
	      " --events N\n"
	      "                 [--payload 100] [--batch 1000] [--labels 0]"
	      " [--sync batch|end|none] [--seed 42]\n"
	      "  tidemark-bench --engine E --dir DIR --read scan|windows\n"
	      "                 [--windows 1000] [--window-ms 1000]"
	      " [--seed 42]\n"
	      "  tidemark-bench --engine E --dir DIR --read select|filter"
	      " --where k=v,k2=v2 [--where ...]\n"
	      "engines:",
	      f);
	for (size_t i = 0; i < N_ENGINES; i++)
		fprintf(f, " %s", engines[i]->name);
	fputs("\n", f);
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2), noreturn))
#endif
static void usage_error(const char *fmt, ...);

static void usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("tidemark-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	usage(stderr);
	exit(EXIT_USAGE);
}

/* A decimal integer in [min, max], the whole string, or a usage error. */
static uint64_t parse_u64(const char *opt, const char *s, uint64_t min,
                          uint64_t max)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end || errno || v < min || v > max)
		usage_error("%s wants an integer in [%llu, %llu], not '%s'", opt,
		            (unsigned long long)min, (unsigned long long)max, s);
	return v;
}

static void parse_args(struct args *a, int argc, char **argv)
{
	enum { O_ENGINE = 256, O_DIR, O_WORKLOAD, O_EVENTS, O_PAYLOAD, O_BATCH,
	       O_LABELS, O_SYNC, O_SEED, O_READ, O_WINDOWS, O_WINDOW_MS,
	       O_HELP, O_WHERE, O_LABEL_TEXT };
	static const struct option longopts[] = {
		{"engine", required_argument, NULL, O_ENGINE},
		{"dir", required_argument, NULL, O_DIR},
		{"workload", required_argument, NULL, O_WORKLOAD},
		{"events", required_argument, NULL, O_EVENTS},
		{"payload", required_argument, NULL, O_PAYLOAD},
		{"batch", required_argument, NULL, O_BATCH},
		{"labels", required_argument, NULL, O_LABELS},
		{"sync", required_argument, NULL, O_SYNC},
		{"seed", required_argument, NULL, O_SEED},
		{"read", required_argument, NULL, O_READ},
		{"windows", required_argument, NULL, O_WINDOWS},
		{"window-ms", required_argument, NULL, O_WINDOW_MS},
		{"help", no_argument, NULL, O_HELP},
		{"where", required_argument, NULL, O_WHERE},
		{"label-text", required_argument, NULL, O_LABEL_TEXT},
		{NULL, 0, NULL, 0},
	};
	const char *engine = "tidemark";
	int opt;

	memset(a, 0, sizeof *a);
	a->wl.seed = 42;
	a->wl.payload_len = 100;
	a->batch = 1000;
	a->sync = SYNC_END;
	a->windows = 1000;
	a->window_ms = 1000;

	opterr = 0; /* we word the errors ourselves */
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case O_ENGINE:
			engine = optarg;
			break;
		case O_DIR:
			a->dir = optarg;
			break;
		case O_WORKLOAD:
			if (wl_kind_parse(&a->wl.kind, optarg))
				usage_error("unknown workload '%s'", optarg);
			a->write = 1;
			break;
		case O_EVENTS:
			a->events = parse_u64("--events", optarg, 1,
			                      UINT64_C(1) << 40);
			a->given_events = 1;
			break;
		case O_PAYLOAD:
			/* Capped well below TDM_MAX_PAYLOAD: a batch of them
			 * must fit in memory. */
			a->wl.payload_len = parse_u64("--payload", optarg, 0,
			                              1u << 20);
			a->given_write_only = 1;
			break;
		case O_BATCH:
			a->batch = parse_u64("--batch", optarg, 1, 1000000);
			a->given_write_only = 1;
			break;
		case O_LABELS:
			a->wl.n_labels = parse_u64("--labels", optarg, 0,
			                           WL_MAX_LABELS);
			a->given_write_only = 1;
			break;
		case O_LABEL_TEXT:
			if (strcmp(optarg, "shared") == 0)
				a->wl.own_label_text = 0;
			else if (strcmp(optarg, "own") == 0)
				a->wl.own_label_text = 1;
			else
				usage_error("--label-text wants shared or own, not '%s'", optarg);
			a->given_write_only = 1;
			break;
		case O_SYNC:
			if (strcmp(optarg, "end") == 0)
				a->sync = SYNC_END;
			else if (strcmp(optarg, "batch") == 0)
				a->sync = SYNC_BATCH;
			else if (strcmp(optarg, "none") == 0)
				a->sync = SYNC_NONE;
			else
				usage_error("--sync wants batch, end or none, "
				            "not '%s'", optarg);
			a->given_write_only = 1;
			break;
		case O_SEED:
			a->wl.seed = parse_u64("--seed", optarg, 0, UINT64_MAX);
			break;
		case O_READ:
			if (strcmp(optarg, "scan") == 0)
				a->read = READ_SCAN;
			else if (strcmp(optarg, "windows") == 0)
				a->read = READ_WINDOWS;
			else if (strcmp(optarg, "select") == 0)
				a->read = READ_SELECT;
			else if (strcmp(optarg, "filter") == 0)
				a->read = READ_FILTER;
			else
				usage_error("--read wants scan, windows, select or "
				            "filter, not '%s'", optarg);
			break;
		case O_WHERE:
			if (a->n_where == MAX_WHERE)
				usage_error("at most %d --where", MAX_WHERE);
			a->where[a->n_where++] = optarg;
			break;
		case O_WINDOWS:
			a->windows = parse_u64("--windows", optarg, 1, 100000000);
			a->given_read_only = 1;
			break;
		case O_WINDOW_MS:
			a->window_ms = parse_u64("--window-ms", optarg, 1,
			                         UINT64_C(1) << 40);
			a->given_read_only = 1;
			break;
		case O_HELP:
			usage(stdout);
			exit(0);
		default:
			if (optopt)
				usage_error("option --%s needs a value",
				            longopts[optopt - O_ENGINE].name);
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);

	for (size_t i = 0; i < N_ENGINES; i++)
		if (strcmp(engine, engines[i]->name) == 0)
			a->engine = engines[i];
	if (!a->engine)
		usage_error("unknown engine '%s'", engine);
	if (!a->dir)
		usage_error("--dir is required");
	if (a->write == (a->read != READ_NONE))
		usage_error("give one of --workload (write) or --read");
	if (a->write && !a->given_events)
		usage_error("--events is required with --workload");
	if (a->write && a->given_read_only)
		usage_error("--windows and --window-ms are for --read windows");
	if (!a->write && (a->given_write_only || a->given_events))
		usage_error("--events, --payload, --batch, --labels and --sync "
		            "are for --workload");
	if (a->read == READ_SCAN && a->given_read_only)
		usage_error("--windows and --window-ms are for --read windows");
	if ((a->read == READ_SELECT || a->read == READ_FILTER) !=
	    (a->n_where > 0))
		usage_error("--where goes with --read select or filter, and they "
		            "need it");
	if ((a->read == READ_SELECT || a->read == READ_FILTER) && a->given_read_only)
		usage_error("--windows and --window-ms are for --read windows");
}

/* ---- Measuring ---------------------------------------------------------- */

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static long peak_rss_kb(void)
{
	struct rusage ru;
	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1; /* kB */
}

static uint64_t du_total;

static int du_visit(const char *path, const struct stat *st, int type,
                    struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (type == FTW_F && S_ISREG(st->st_mode))
		du_total += (uint64_t)st->st_size;
	return 0;
}

/* Sum of the sizes of the regular files under dir (apparent sizes). */
static uint64_t bytes_on_disk(const char *dir)
{
	du_total = 0;
	if (nftw(dir, du_visit, 16, FTW_PHYS) != 0)
		fprintf(stderr, "tidemark-bench: cannot walk %s: %s\n", dir,
		        strerror(errno));
	return du_total;
}

static double per_second(uint64_t n, double secs)
{
	return secs > 0 ? (double)n / secs : 0;
}

/* ---- Write -------------------------------------------------------------- */

/* Makes dir (and missing parents), or accepts it if it exists and is empty:
 * a benchmark must start from nothing. */
static int prepare_dir(const char *dir)
{
	char *path = strdup(dir);
	if (!path)
		return -1;
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0777) && errno != EEXIST) {
			fprintf(stderr, "tidemark-bench: cannot make %s: %s\n",
			        path, strerror(errno));
			free(path);
			return -1;
		}
		*p = '/';
	}
	free(path);
	if (mkdir(dir, 0777) == 0)
		return 0;
	if (errno != EEXIST) {
		fprintf(stderr, "tidemark-bench: cannot make %s: %s\n", dir,
		        strerror(errno));
		return -1;
	}

	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "tidemark-bench: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	struct dirent *de;
	int empty = 1;
	while (empty && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = 0;
	closedir(d);
	if (!empty) {
		fprintf(stderr, "tidemark-bench: %s exists and is not empty; "
		        "a write run needs a fresh directory\n", dir);
		return -1;
	}
	return 0;
}

static int run_write(const struct args *a)
{
	const struct engine *e = a->engine;
	struct engine_open_args oa = {.create = 1, .sync = a->sync};
	struct write_counts c = {0, 0, 0};
	struct wl_batch b;
	void *db;
	double t, secs = 0;

	if (prepare_dir(a->dir))
		return EXIT_ENGINE;
	if (wl_batch_init(&b, &a->wl, (size_t)a->batch)) {
		fprintf(stderr, "tidemark-bench: out of memory\n");
		return EXIT_ENGINE;
	}

	t = now();
	if (e->open(&db, a->dir, &oa)) {
		wl_batch_free(&b);
		return EXIT_ENGINE;
	}
	secs += now() - t;

	for (uint64_t i = 0; i < a->events; i += a->batch) {
		size_t n = (size_t)(a->events - i < a->batch ? a->events - i
		                                            : a->batch);
		wl_generate(&b, &a->wl, i, n);
		t = now();
		if (e->write_batch(db, b.events, n, &c)) {
			e->close(db);
			wl_batch_free(&b);
			return EXIT_ENGINE;
		}
		secs += now() - t;
	}

	t = now();
	int failed = a->sync == SYNC_END && e->sync(db);
	failed |= e->close(db) != 0;
	secs += now() - t;
	wl_batch_free(&b);
	if (failed)
		return EXIT_ENGINE;

	uint64_t bytes = bytes_on_disk(a->dir);
	printf("RESULT mode=write engine=%s workload=%s events=%llu secs=%.3f "
	       "events_per_s=%.0f bytes_on_disk=%llu bytes_per_event=%.1f "
	       "peak_rss_kb=%ld appended=%llu duplicates=%llu late=%llu\n",
	       e->name, wl_kind_name(a->wl.kind), (unsigned long long)a->events,
	       secs, per_second(a->events, secs), (unsigned long long)bytes,
	       (double)bytes / (double)a->events, peak_rss_kb(),
	       (unsigned long long)c.appended,
	       (unsigned long long)c.duplicates, (unsigned long long)c.late);

	/* The workloads hold no duplicates: every event must be stored. */
	if (c.appended != a->events || c.duplicates != 0) {
		fprintf(stderr, "tidemark-bench: %s stored %llu of %llu events "
		        "and called %llu duplicates; expected all and none\n",
		        e->name, (unsigned long long)c.appended,
		        (unsigned long long)a->events,
		        (unsigned long long)c.duplicates);
		return EXIT_ENGINE;
	}
	return 0;
}

/* ---- Read --------------------------------------------------------------- */

/* Checks what every read must satisfy; returns 0 or EXIT_ENGINE. */
static int check_read(const struct engine *e, const struct read_counts *c)
{
	int rc = 0;
	if (c->misordered && !e->scan_unordered) {
		fprintf(stderr, "tidemark-bench: %s returned %llu events out of "
		        "ts order\n", e->name, (unsigned long long)c->misordered);
		rc = EXIT_ENGINE;
	}
	if (c->damaged) {
		fprintf(stderr, "tidemark-bench: %s skipped %llu damaged records\n",
		        e->name, (unsigned long long)c->damaged);
		rc = EXIT_ENGINE;
	}
	return rc;
}

static int run_scan(const struct args *a, void *db,
                    const struct engine_bounds *bd)
{
	const struct engine *e = a->engine;
	struct read_counts c;
	read_counts_reset(&c);

	double t = now();
	if (e->scan(db, &c))
		return EXIT_ENGINE;
	double secs = now() - t;

	printf("RESULT mode=scan engine=%s events=%llu secs=%.3f "
	       "events_per_s=%.0f peak_rss_kb=%ld",
	       e->name, (unsigned long long)c.events, secs,
	       per_second(c.events, secs), peak_rss_kb());
	if (e->scan_unordered)
		printf(" ordered=0 misordered=%llu",
		       (unsigned long long)c.misordered);
	printf("\n");

	int rc = check_read(e, &c);
	if (c.events != bd->events) {
		fprintf(stderr, "tidemark-bench: %s scan returned %llu events; "
		        "its statistics say %llu\n", e->name,
		        (unsigned long long)c.events,
		        (unsigned long long)bd->events);
		rc = EXIT_ENGINE;
	}
	return rc;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

/* Nearest-rank percentile of sorted v[0 .. n), q in (0, 1]. */
static double percentile(const double *v, size_t n, double q)
{
	size_t rank = (size_t)(q * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	return v[(rank > n ? n : rank) - 1];
}

static int run_windows(const struct args *a, void *db,
                       const struct engine_bounds *bd)
{
	const struct engine *e = a->engine;
	int64_t width = (int64_t)a->window_ms * 1000000;
	size_t n = (size_t)a->windows;
	double *lat_us = malloc(n * sizeof *lat_us);
	struct read_counts c;
	struct wl_rng rng;
	double secs = 0;

	if (!lat_us) {
		fprintf(stderr, "tidemark-bench: out of memory\n");
		return EXIT_ENGINE;
	}
	read_counts_reset(&c);
	wl_rng_seed(&rng, splitmix64(a->wl.seed ^ 0x77696e646f7773)); /* "windows" */
	uint64_t span = bd->max_ts > bd->min_ts
	                        ? (uint64_t)(bd->max_ts - bd->min_ts) : 1;

	for (size_t i = 0; i < n; i++) {
		int64_t from = bd->min_ts + (int64_t)wl_rng_below(&rng, span);
		c.last_ts = INT64_MIN; /* order is checked within a window */
		double t = now();
		if (e->window(db, from, from + width, &c)) {
			free(lat_us);
			return EXIT_ENGINE;
		}
		lat_us[i] = (now() - t) * 1e6;
		secs += lat_us[i] / 1e6;
	}
	qsort(lat_us, n, sizeof *lat_us, cmp_double);

	printf("RESULT mode=windows engine=%s windows=%zu events=%llu secs=%.3f "
	       "p50_us=%.1f p99_us=%.1f peak_rss_kb=%ld\n",
	       e->name, n, (unsigned long long)c.events, secs,
	       percentile(lat_us, n, 0.50), percentile(lat_us, n, 0.99),
	       peak_rss_kb());
	free(lat_us);
	return check_read(e, &c);
}

/* A selector over the whole range, answered from the label index
 * (select) or by reading every record (filter). */
static int run_select(const struct args *a, void *db)
{
	const struct engine *e = a->engine;
	struct read_counts c;
	read_counts_reset(&c);
	double t = now();
	if (e->select(db, a->where, a->n_where, a->read == READ_FILTER, &c))
		return EXIT_ENGINE;
	double secs = now() - t;
	printf("RESULT mode=%s engine=%s where=", a->read == READ_SELECT ? "select"
	       : "filter", e->name);
	for (size_t i = 0; i < a->n_where; i++)
		printf("%s%s", i ? "|" : "", a->where[i]);
	printf(" events=%llu secs=%.4f peak_rss_kb=%ld\n",
	       (unsigned long long)c.events, secs, peak_rss_kb());
	return check_read(e, &c);
}

static int run_read(const struct args *a)
{
	const struct engine *e = a->engine;
	struct engine_open_args oa = {.create = 0, .sync = SYNC_NONE};
	struct engine_bounds bd;
	void *db;
	int rc;

	if (a->read == READ_WINDOWS && !e->window) {
		printf("RESULT mode=windows engine=%s skipped=no_index\n",
		       e->name);
		fprintf(stderr, "tidemark-bench: %s has no index; windows are "
		        "not measured (each would be a full scan)\n", e->name);
		return 0;
	}
	if ((a->read == READ_SELECT || a->read == READ_FILTER) && !e->select) {
		printf("RESULT mode=%s engine=%s skipped=no_labels\n",
		       a->read == READ_SELECT ? "select" : "filter", e->name);
		return 0;
	}
	if (e->open(&db, a->dir, &oa))
		return EXIT_ENGINE;
	if (e->bounds(db, &bd)) {
		e->close(db);
		return EXIT_ENGINE;
	}
	if (bd.events == 0 || bd.min_ts < 0) {
		fprintf(stderr, "tidemark-bench: the store in %s is empty\n",
		        a->dir);
		e->close(db);
		return EXIT_ENGINE;
	}
	rc = a->read == READ_SCAN      ? run_scan(a, db, &bd)
	     : a->read == READ_WINDOWS ? run_windows(a, db, &bd)
	                               : run_select(a, db);
	if (e->close(db) && rc == 0)
		rc = EXIT_ENGINE;
	return rc;
}

int main(int argc, char **argv)
{
	struct args a;
	parse_args(&a, argc, argv);
	int rc = a.write ? run_write(&a) : run_read(&a);
	if (fflush(stdout) != 0 && rc == 0)
		rc = EXIT_ENGINE;
	return rc;
}
