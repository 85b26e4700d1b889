/*
 * replica_gen.c - tidemark-replica-gen: NDJSON for the two replicas of the
 * replica repair benchmark (tests/bench/replica.sh, issue 4).
 *
 *   tidemark-replica-gen --side a|b|only-a|only-b --events N --missing M
 *                        [--seed 42]
 *
 * The events are those of the SPEC §7 `ooo` workload (workload.c, seed 42
 * unless --seed): event i at 1700000000000000000 + i ms, 10% of them shifted
 * back by up to 30 s, 100-byte payload, no labels. Both replicas hold the
 * same events, except M of them missing from A and M others missing from B
 * (drawn from their own seeded stream, disjoint):
 *
 *   a       A's events in the workload's own arrival order (event i i-th);
 *   b       B's events in another arrival order: event i arrives at
 *           i ms + a delay of its own (seeded apart from the workload): 10%
 *           delayed by up to 30 s, and 1% by 120 to 600 s, so B holds those
 *           as late (recon) events where A has them on time;
 *   only-a  the M events only A holds (missing from B), in index order;
 *   only-b  the M events only B holds.
 *
 * Lines are printed exactly as `tidemark read` prints them, so `wc -c` of
 * only-a + only-b is the NDJSON size of the events a sync must move.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workload.h"

#define NS_PER_S 1000000000LL

enum { BOTH = 0, NOT_IN_A = 1, NOT_IN_B = 2 };

typedef struct arrival {
	int64_t at;
	uint32_t i;
} arrival;

static int cmp_arrival(const void *x, const void *y)
{
	const arrival *a = x, *b = y;
	if (a->at != b->at)
		return a->at < b->at ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

static void print_event(const struct bench_event *ev)
{
	/* Payloads are printable ASCII from workload.c's alphabet: no byte
	 * needs escaping in a JSON string. */
	printf("{\"ts\":%lld,\"id\":%u,\"labels\":{},\"payload\":\"%.*s\"}\n",
	       (long long)ev->ts, ev->id, (int)ev->payload_len, ev->payload);
}

static void emit(struct wl_batch *b, const struct workload *w, uint32_t i)
{
	wl_generate(b, w, i, 1);
	print_event(&b->events[0]);
}

static void usage(void)
{
	fprintf(stderr, "usage: tidemark-replica-gen --side a|b|only-a|only-b --events N "
	                "--missing M [--seed S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *side = NULL;
	unsigned long long events = 0, missing = 0, seed = 42;
	static const struct option opts[] = {
		{"side", required_argument, NULL, 's'},
		{"events", required_argument, NULL, 'n'},
		{"missing", required_argument, NULL, 'm'},
		{"seed", required_argument, NULL, 'S'},
		{NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 's':
			side = optarg;
			break;
		case 'n':
			events = strtoull(optarg, &end, 10);
			if (*end)
				usage();
			break;
		case 'm':
			missing = strtoull(optarg, &end, 10);
			if (*end)
				usage();
			break;
		case 'S':
			seed = strtoull(optarg, &end, 10);
			if (*end)
				usage();
			break;
		default:
			usage();
		}
	}
	if (!side || optind != argc || !events || events > UINT32_MAX ||
	    2 * missing > events)
		usage();
	int mode = strcmp(side, "a") == 0        ? 0
	           : strcmp(side, "b") == 0      ? 1
	           : strcmp(side, "only-a") == 0 ? 2
	           : strcmp(side, "only-b") == 0 ? 3
	                                         : -1;
	if (mode < 0)
		usage();

	struct workload w = {WL_OOO, seed, 100, 0, 0};
	struct wl_batch b;
	uint8_t *state = calloc(events, 1);
	if (!state || wl_batch_init(&b, &w, 1)) {
		fprintf(stderr, "tidemark-replica-gen: out of memory\n");
		return 1;
	}
	/* Which events each side lacks: a stream of its own, so the sets do
	 * not move when the arrival order's seed does. */
	struct wl_rng r;
	wl_rng_seed(&r, splitmix64(seed ^ 0x6d697373ULL));
	for (int s = NOT_IN_A; s <= NOT_IN_B; s++)
		for (unsigned long long k = 0; k < missing;) {
			uint64_t i = wl_rng_below(&r, events);
			if (state[i] == BOTH) {
				state[i] = (uint8_t)s;
				k++;
			}
		}

	if (mode == 0) {
		for (uint32_t i = 0; i < events; i++)
			if (state[i] != NOT_IN_A)
				emit(&b, &w, i);
	} else if (mode == 1) {
		arrival *order = malloc(events * sizeof *order);
		if (!order) {
			fprintf(stderr, "tidemark-replica-gen: out of memory\n");
			return 1;
		}
		size_t n = 0;
		for (uint32_t i = 0; i < events; i++) {
			if (state[i] == NOT_IN_B)
				continue;
			struct wl_rng d;
			wl_rng_seed(&d, splitmix64(seed ^ 0x62626262ULL) ^ splitmix64(i));
			int64_t at = (int64_t)i * WL_STEP_NS;
			uint64_t u = wl_rng_below(&d, 1000);
			if (u < 100)
				at += (int64_t)wl_rng_below(&d, 30 * NS_PER_S + 1);
			else if (u < 110)
				at += 120 * NS_PER_S + (int64_t)wl_rng_below(&d, 480 * NS_PER_S + 1);
			order[n++] = (arrival){at, i};
		}
		qsort(order, n, sizeof *order, cmp_arrival);
		for (size_t k = 0; k < n; k++)
			emit(&b, &w, order[k].i);
		free(order);
	} else {
		int want = mode == 2 ? NOT_IN_B : NOT_IN_A;
		for (uint32_t i = 0; i < events; i++)
			if (state[i] == want)
				emit(&b, &w, i);
	}
	wl_batch_free(&b);
	free(state);
	if (fflush(stdout) || ferror(stdout)) {
		perror("tidemark-replica-gen: stdout");
		return 1;
	}
	return 0;
}
