/*
 * cmd_retain.c - `tidemark retain DIR --before T`: drops every whole shard
 * that ends at or before T and is past its grace window; prints the count
 * as one JSON line.
 */
#include <inttypes.h>
#include <stdio.h>
#include <tidemark.h>

#include "cli.h"

static const char usage[] = "tidemark retain DIR --before T";

int cmd_retain(int argc, char **argv)
{
	cli_argv a = {argc, argv, 1, 0};
	const char *dir = NULL, *before = NULL;
	int64_t t;
	int rc;
	while (a.i < argc) {
		if ((rc = cli_option(&a, "--before", &before))) {
			if (rc < 0)
				return cli_bad_argument(&a, usage, 1);
			continue;
		}
		if (!dir && cli_operand(&a, &dir))
			continue;
		if (a.i < argc)
			return cli_bad_argument(&a, usage, 0);
	}
	if (!dir)
		return cli_usage_error(usage, "missing DIR");
	if (!before)
		return cli_usage_error(usage, "missing --before T");
	if ((rc = cli_time_arg(&t, "--before", before, usage)))
		return rc;
	tdm_store *s;
	uint64_t dropped;
	if ((rc = tdm_store_open(&s, dir, NULL)))
		return cli_lib_error(rc);
	if ((rc = tdm_retain(&dropped, s, t))) {
		rc = cli_lib_error(rc);
		tdm_store_close(s);
		return rc;
	}
	if ((rc = tdm_store_close(s)))
		return cli_lib_error(rc);
	printf("{\"dropped_shards\":%" PRIu64 "}\n", dropped);
	return cli_stdout_done();
}
