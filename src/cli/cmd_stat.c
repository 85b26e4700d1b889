/*
 * cmd_stat.c - `tidemark stat DIR`: the store's statistics and options as
 * one JSON object.
 */
#include <inttypes.h>
#include <stdio.h>
#include <tidemark.h>

#include "cli.h"

static const char usage[] = "tidemark stat DIR";

static void print_stat(const tdm_stat *st, const tdm_options *o)
{
	printf("{\"shards\":%" PRIu64 ",\"events\":%" PRIu64
	       ",\"late_events\":%" PRIu64 ",\"bytes\":%" PRIu64
	       ",\"index_entries\":%" PRIu64 ",\"last_seq\":%" PRIu64
	       ",\"min_ts\":%" PRId64 ",\"max_ts\":%" PRId64
	       ",\"shard_duration_ns\":%" PRId64 ",\"grace_ns\":%" PRId64
	       ",\"index_interval\":%" PRIu32 ",\"keep_ns\":%" PRId64
	       ",\"sealed_shards\":%" PRIu64 ",\"unsealed_shards\":%" PRIu64
	       ",\"sealed_bytes\":%" PRIu64 ",\"sealed_raw_bytes\":%" PRIu64
	       ",\"compression_ratio\":%.2f,\"recon_bytes\":%" PRIu64 "}\n",
	       st->shards, st->events, st->late_events, st->bytes,
	       st->index_entries, st->last_seq, st->min_ts, st->max_ts,
	       o->shard_duration_ns, o->grace_ns, o->index_interval, o->keep_ns,
	       st->sealed_shards, st->shards - st->sealed_shards, st->sealed_bytes,
	       st->sealed_raw_bytes,
	       st->sealed_bytes ? (double)st->sealed_raw_bytes / (double)st->sealed_bytes : 0.0,
	       st->recon_bytes);
}

int cmd_stat(int argc, char **argv)
{
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	tdm_options opts;
	tdm_stat st;
	tdm_store *s;
	const char *dir;
	int rc;
	if ((rc = cli_store_dir_arg(&dir, argc, argv, usage)))
		return rc;
	oo.flags = TDM_OPEN_READONLY;
	if ((rc = tdm_store_open(&s, dir, &oo)))
		return cli_lib_error(rc);
	rc = tdm_stat_get(&st, s);
	if (rc == 0) {
		tdm_store_options(&opts, s);
		print_stat(&st, &opts);
	} else {
		rc = cli_lib_error(rc);
	}
	tdm_store_close(s);
	return rc ? rc : cli_stdout_done();
}
