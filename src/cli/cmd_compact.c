/*
 * cmd_compact.c - `tidemark compact DIR`: seals every closed shard (sorted,
 * zstd-compressed blocks; recon files emptied) and prints what it did as
 * one JSON line.
 */
#include <inttypes.h>
#include <stdio.h>
#include <tidemark.h>

#include "cli.h"

static const char usage[] = "tidemark compact DIR";

int cmd_compact(int argc, char **argv)
{
	tdm_store *s;
	tdm_compact_result res;
	const char *dir;
	int rc;
	if ((rc = cli_store_dir_arg(&dir, argc, argv, usage)))
		return rc;
	if ((rc = tdm_store_open(&s, dir, NULL)))
		return cli_lib_error(rc);
	rc = tdm_compact(&res, s);
	if (rc) {
		rc = cli_lib_error(rc);
		tdm_store_close(s);
		return rc;
	}
	if ((rc = tdm_store_close(s)))
		return cli_lib_error(rc);
	printf("{\"sealed\":%" PRIu64 ",\"skipped_damaged\":%" PRIu64
	       ",\"events\":%" PRIu64 ",\"bytes_before\":%" PRIu64
	       ",\"bytes_after\":%" PRIu64 "}\n",
	       res.shards_sealed, res.shards_skipped, res.events, res.bytes_before,
	       res.bytes_after);
	return cli_stdout_done();
}
