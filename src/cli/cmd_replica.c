/*
 * cmd_replica.c - `tidemark diff A B`, `tidemark repair SRC DST` and
 * `tidemark sync A B`: compare two replicas by digest, and copy the events
 * one lacks. Either side may be a local store directory or ssh:HOST:PATH.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "repl_sync.h"
#include "timefmt.h"

typedef enum mode { DIFF, REPAIR, SYNC } mode;

static const char *const usages[] = {
	[DIFF] = "tidemark diff A B [--from T] [--to T] [--remote-command CMD] [--timeout D]",
	[REPAIR] = ("tidemark repair SRC DST [--from T] [--to T] [--remote-command CMD] "
	            "[--timeout D]"),
	[SYNC] = "tidemark sync A B [--from T] [--to T] [--remote-command CMD] [--timeout D]",
};

static int timeout_arg(int *out, const char *v, const char *usage)
{
	int64_t ns;
	const char *err = tf_parse_duration(v, &ns);
	if (err || ns <= 0 || ns / 1000000 > 24 * 3600 * 1000)
		return cli_usage_error(usage, "bad --timeout '%s': %s", v,
		                       err ? err : "expected a duration from 1ms to 1d");
	*out = ns / 1000000 ? (int)(ns / 1000000) : 1;
	return 0;
}

static void print_stats(const sync_stats *st)
{
	printf("{\"only_in_a\":%" PRIu64 ",\"only_in_b\":%" PRIu64 ",\"copied_to_a\":%" PRIu64
	       ",\"copied_to_b\":%" PRIu64 ",\"shards_compared\":%" PRIu64
	       ",\"nodes_compared\":%" PRIu64 ",\"buckets_compared\":%" PRIu64
	       ",\"buckets_differing\":%" PRIu64 ",\"bytes_exchanged\":%" PRIu64 "}\n",
	       st->only_in_a, st->only_in_b, st->copied_to_a, st->copied_to_b,
	       st->shards_compared, st->nodes_compared, st->buckets_compared,
	       st->buckets_differing, st->bytes_exchanged);
}

/* The two sides. They are opened one after the other, so that a side
 * that fails to open stops the command before the other (perhaps a slow
 * ssh) is tried; they are closed at once (peer_both), each side's final
 * sync alongside the other's. */
typedef struct sides {
	peer p[2];
	const char *label[2], *spec[2], *remote_command;
	int timeout_ms;
} sides;

static int open_side(int i, void *arg)
{
	sides *x = arg;
	return peer_open(&x->p[i], x->label[i], x->spec[i], x->remote_command, x->timeout_ms);
}

static int close_side(int i, void *arg)
{
	return peer_close(&((sides *)arg)->p[i]);
}

static int run(mode m, int argc, char **argv)
{
	const char *usage = usages[m];
	const char *side[2] = {NULL, NULL}, *v, *remote_command = NULL;
	int timeout_ms = 120 * 1000;
	sync_opts o = {.from = 0, .to = INT64_MAX};
	cli_argv a = {argc, argv, 1, 0};
	int r, rc = 0, n_sides = 0;
	while (a.i < a.argc && !rc) {
		if ((r = cli_option(&a, "--from", &v)) > 0)
			rc = cli_time_arg(&o.from, "--from", v, usage);
		else if (!r && (r = cli_option(&a, "--to", &v)) > 0)
			rc = cli_time_arg(&o.to, "--to", v, usage);
		else if (!r && (r = cli_option(&a, "--remote-command", &v)) > 0)
			remote_command = v;
		else if (!r && (r = cli_option(&a, "--timeout", &v)) > 0)
			rc = timeout_arg(&timeout_ms, v, usage);
		else if (!r && n_sides < 2 && cli_operand(&a, &side[n_sides]))
			n_sides++;
		else
			return cli_bad_argument(&a, usage, r < 0);
	}
	if (rc)
		return rc;
	if (n_sides < 2)
		return cli_usage_error(usage, "two replicas are needed");
	if (o.from >= o.to)
		return cli_usage_error(usage, "--from must be before --to");
	o.copy_to_b = m != DIFF;
	o.copy_to_a = m == SYNC;
	o.progress = m != DIFF && isatty(2);

	const char *labels[3][2] = {[DIFF] = {"A", "B"}, [REPAIR] = {"SRC", "DST"},
	                            [SYNC] = {"A", "B"}};
	sides x = {.label = {labels[m][0], labels[m][1]}, .spec = {side[0], side[1]},
	           .remote_command = remote_command, .timeout_ms = timeout_ms};
	sync_stats st;
	rc = open_side(0, &x);
	if (!rc)
		rc = open_side(1, &x); /* else p[1] stays zeroed: closing it is a no-op */
	if (!rc)
		rc = repl_sync(&st, &x.p[0], &x.p[1], &o);
	/* A side that failed to open is closed too: it may hold a process and
	 * buffers, and it is not said goodbye to. */
	int c = peer_both(close_side, &x);
	rc = rc ? rc : c;
	if (rc)
		return rc;
	print_stats(&st);
	if ((rc = cli_stdout_done()))
		return rc;
	return m == DIFF && (st.only_in_a || st.only_in_b) ? EXIT_DIFFERENT : EXIT_OK;
}

int cmd_diff(int argc, char **argv)
{
	return run(DIFF, argc, argv);
}

int cmd_repair(int argc, char **argv)
{
	return run(REPAIR, argc, argv);
}

int cmd_sync(int argc, char **argv)
{
	return run(SYNC, argc, argv);
}
