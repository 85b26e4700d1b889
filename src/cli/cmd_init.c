/*
 * cmd_init.c - `tidemark init DIR [--shard-duration D] [--grace D]
 * [--index-interval BYTES] [--keep D]`: creates a store, or checks that an existing
 * one was made with the same options.
 */
#include <errno.h>
#include <stdlib.h>
#include <tidemark.h>

#include "cli.h"
#include "timefmt.h"

static const char usage[] =
	"tidemark init DIR [--shard-duration D] [--grace D] "
	"[--index-interval BYTES] [--keep D]";

typedef struct init_args {
	const char *dir, *shard_duration, *grace, *index_interval, *keep;
} init_args;

static int parse_args(init_args *ia, int argc, char **argv)
{
	cli_argv a = {argc, argv, 1, 0};
	while (a.i < argc) {
		int r;
		if ((r = cli_option(&a, "--shard-duration",
		                    &ia->shard_duration)) ||
		    (r = cli_option(&a, "--grace", &ia->grace)) ||
		    (r = cli_option(&a, "--index-interval",
		                    &ia->index_interval)) ||
		    (r = cli_option(&a, "--keep", &ia->keep))) {
			if (r < 0)
				return cli_bad_argument(&a, usage, 1);
			continue;
		}
		if (!ia->dir && cli_operand(&a, &ia->dir))
			continue;
		if (a.i < argc)
			return cli_bad_argument(&a, usage, 0);
	}
	if (!ia->dir)
		return cli_usage_error(usage, "missing DIR");
	return 0;
}

/* A duration; the library says which values the store accepts. */
static int duration_opt(int64_t *out, const char *name, const char *value)
{
	const char *msg;
	if (!value)
		return 0;
	if ((msg = tf_parse_duration(value, out)))
		return cli_usage_error(usage, "bad duration for %s '%s': %s",
		                       name, value, msg);
	return 0;
}

static int bytes_opt(uint32_t *out, const char *value)
{
	char *end;
	unsigned long long v;
	if (!value)
		return 0;
	errno = 0;
	v = strtoull(value, &end, 10);
	if (*value < '0' || *value > '9' || *end || errno || v == 0 ||
	    v > UINT32_MAX)
		return cli_usage_error(usage, "bad --index-interval '%s': "
		                       "expected bytes, 1..4294967295", value);
	*out = (uint32_t)v;
	return 0;
}

int cmd_init(int argc, char **argv)
{
	init_args ia = {0};
	tdm_options opts = TDM_OPTIONS_INIT;
	int rc;
	if ((rc = parse_args(&ia, argc, argv)) ||
	    (rc = duration_opt(&opts.shard_duration_ns, "--shard-duration",
	                       ia.shard_duration)) ||
	    (rc = duration_opt(&opts.grace_ns, "--grace", ia.grace)) ||
	    (rc = duration_opt(&opts.keep_ns, "--keep", ia.keep)) ||
	    (rc = bytes_opt(&opts.index_interval, ia.index_interval)))
		return rc;
	rc = tdm_store_create(ia.dir, &opts);
	return rc ? cli_lib_error(rc) : EXIT_OK;
}
