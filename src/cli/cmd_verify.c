/*
 * cmd_verify.c - `tidemark verify DIR`: checks every record and the index;
 * each problem goes to stderr, a one-line verdict to stdout.
 */
#include <inttypes.h>
#include <stdio.h>
#include <tidemark.h>

#include "cli.h"

static const char usage[] = "tidemark verify DIR";

static void print_problem(void *ctx, const tdm_problem *p)
{
	(void)ctx;
	if (p->offset >= 0)
		cli_error("verify: %s: offset %" PRId64 ": %s", p->file,
		          p->offset, p->what);
	else
		cli_error("verify: %s: %s", p->file, p->what);
}

int cmd_verify(int argc, char **argv)
{
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	tdm_store *s;
	uint64_t problems = 0;
	const char *dir;
	int rc;
	if ((rc = cli_store_dir_arg(&dir, argc, argv, usage)))
		return rc;
	oo.flags = TDM_OPEN_READONLY;
	if ((rc = tdm_store_open(&s, dir, &oo)))
		return cli_lib_error(rc);
	rc = tdm_verify(&problems, s, print_problem, NULL);
	if (rc)
		rc = cli_lib_error(rc);
	tdm_store_close(s);
	if (rc)
		return rc;
	printf("{\"ok\":%s,\"problems\":%" PRIu64 "}\n",
	       problems ? "false" : "true", problems);
	rc = cli_stdout_done();
	return rc ? rc : problems ? EXIT_IOERR : EXIT_OK;
}
