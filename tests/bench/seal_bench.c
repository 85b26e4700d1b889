/*
 * seal_bench.c - tidemark-seal-bench: what sealing does to a store of
 * realistic log lines (issue 7).
 *
 *   tidemark-seal-bench UNSEALED_DIR COPY_DIR [--rounds R]
 *
 * The two directories hold the same store, filled beforehand
 * (tests/bench/seal.sh fills one with tidemark-loggen's log stream through
 * `tidemark append` and copies it). The bench seals COPY_DIR with
 * tdm_compact, timed, then scans, in read order, the time range of the
 * closed shards in both stores, alternating, R rounds (medians). One
 * RESULT line on stdout:
 *   RESULT mode=seal events=... shards_sealed=... bytes_before=...
 *   bytes_after=... ratio=... compact_secs=... compact_mb_per_s=...
 *   scan_unsealed_secs=... scan_sealed_secs=... (and events per second)
 * the CPU time of the warm scans (less sensitive than wall time to other
 * work on a shared machine), and the same scans cold: the store's shard files evicted from the page
 * cache (posix_fadvise DONTNEED) before each run, as for data kept for
 * weeks and read rarely (scan_*_cold_secs).
 * Sizes are the shard files of the sealed shards (main + recon before,
 * sealed file after). It sees only the public header.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tidemark.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int die(const char *what, int rc)
{
	fprintf(stderr, "tidemark-seal-bench: %s: %s\n", what, tdm_error_message());
	(void)rc;
	return 1;
}

static double cpu_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static const char *store_dir;
static double last_cpu; /* CPU seconds of the last scan */

/* Evicts the store's shard files from the page cache. */
static void evict(void)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/shards", store_dir);
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char f[8400];
		snprintf(f, sizeof f, "%s/%s", path, e->d_name);
		int fd = open(f, O_RDONLY);
		if (fd < 0)
			continue;
		fdatasync(fd);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
	if (d)
		closedir(d);
}

/* Scans [from, to) in read order; the best of `repeat` runs. */
static int scan(double *best, uint64_t *events, tdm_store *s, int64_t from,
                int64_t to, int repeat, int cold)
{
	*best = 1e300;
	for (int i = 0; i < repeat; i++) {
		if (cold)
			evict();
		tdm_iter *it;
		const tdm_event *ev;
		uint64_t n = 0, sum = 0;
		double t = now(), c = cpu_now();
		int r = tdm_iter_open(&it, s, from, to, NULL);
		if (r)
			return r;
		while ((r = tdm_iter_next(&ev, it)) == 0) {
			n++;
			sum += ev->payload_len; /* touch the event */
		}
		tdm_iter_close(it);
		if (r != TDM_ITEROVER)
			return r;
		t = now() - t;
		last_cpu = cpu_now() - c;
		if (t < *best)
			*best = t;
		*events = n;
		if (sum == 0 && n)
			fprintf(stderr, "no payload bytes?\n");
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return v[n / 2];
}

#define MAX_ROUNDS 64

int main(int argc, char **argv)
{
	const char *dirs[2] = {NULL, NULL};
	int rounds = 9, nd = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (nd < 2 && argv[i][0] != '-')
			dirs[nd++] = argv[i];
		else
			nd = 3;
	}
	if (nd != 2 || rounds < 1 || rounds > MAX_ROUNDS) {
		fprintf(stderr, "usage: tidemark-seal-bench UNSEALED_DIR COPY_DIR [--rounds R]\n");
		return 2;
	}
	tdm_store *s[2];
	int r;
	for (int k = 0; k < 2; k++)
		if ((r = tdm_store_open(&s[k], dirs[k], NULL)))
			return die("open", r);
	tdm_options o;
	tdm_store_options(&o, s[1]);
	tdm_stat st;
	if ((r = tdm_stat_get(&st, s[1])))
		return die("stat", r);
	/* The closed shards: those ending at or before newest - grace. */
	int64_t d = o.shard_duration_ns;
	int64_t to = st.max_ts < 0 ? 0 : (st.max_ts - o.grace_ns) / d * d;
	int64_t from = st.min_ts < 0 ? 0 : st.min_ts / d * d;
	if (to <= from) {
		fprintf(stderr, "tidemark-seal-bench: no closed shard in %s\n", dirs[1]);
		return 1;
	}
	tdm_compact_result cr;
	double t = now(), c = cpu_now();
	if ((r = tdm_compact(&cr, s[1])))
		return die("compact", r);
	double compact_secs = now() - t, compact_cpu = cpu_now() - c;
	uint64_t problems;
	if ((r = tdm_verify(&problems, s[1], NULL, NULL)) || problems) {
		fprintf(stderr, "tidemark-seal-bench: verify: %" PRIu64 " problems\n",
		        problems);
		return 1;
	}

	/* Scans of the two stores alternate, so that the machine's drift
	 * (other work on it) hits both alike; medians are reported. */
	double warm[2][MAX_ROUNDS], cold[2][MAX_ROUNDS], cpu[2][MAX_ROUNDS];
	uint64_t n[2] = {0, 0};
	for (int i = 0; i < rounds; i++)
		for (int k = 0; k < 2; k++) {
			store_dir = dirs[k];
			if ((r = scan(&cold[k][i], &n[k], s[k], from, to, 1, 1)) ||
			    (r = scan(&warm[k][i], &n[k], s[k], from, to, 1, 0)))
				return die("scan", r);
			cpu[k][i] = last_cpu;
		}
	if (n[0] != n[1]) {
		fprintf(stderr, "tidemark-seal-bench: %" PRIu64 " events unsealed, %"
		        PRIu64 " sealed\n", n[0], n[1]);
		return 1;
	}
	for (int k = 0; k < 2; k++)
		if ((r = tdm_store_close(s[k])))
			return die("close", r);
	double wu = median(warm[0], rounds), ws = median(warm[1], rounds);
	double cu = median(cold[0], rounds), cs = median(cold[1], rounds);
	double pu = median(cpu[0], rounds), ps = median(cpu[1], rounds);
	printf("RESULT mode=seal events=%" PRIu64 " shards_sealed=%" PRIu64
	       " bytes_before=%" PRIu64 " bytes_after=%" PRIu64 " ratio=%.2f"
	       " compact_secs=%.3f compact_mb_per_s=%.1f compact_cpu_mb_per_s=%.1f"
	       " scan_unsealed_secs=%.3f scan_unsealed_events_per_s=%.0f"
	       " scan_sealed_secs=%.3f scan_sealed_events_per_s=%.0f"
	       " scan_unsealed_cold_secs=%.3f scan_sealed_cold_secs=%.3f"
	       " scan_unsealed_cpu_secs=%.3f scan_sealed_cpu_secs=%.3f\n",
	       n[0], cr.shards_sealed, cr.bytes_before, cr.bytes_after,
	       cr.bytes_after ? (double)cr.bytes_before / (double)cr.bytes_after : 0.0,
	       compact_secs, (double)cr.bytes_before / 1e6 / compact_secs,
	       (double)cr.bytes_before / 1e6 / compact_cpu, wu,
	       (double)n[0] / wu, ws, (double)n[1] / ws, cu, cs, pu, ps);
	return 0;
}
