/*
 * cmd_read.c - `tidemark read DIR [--from T] [--to T] [--where SEL]...
 * [--storage-order]`: prints the events of [from, to) as NDJSON.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tidemark.h>

#include "cli.h"
#include "ndjson.h"

static const char usage[] =
	"tidemark read DIR [--from T] [--to T] [--where k=v,...]... "
	"[--storage-order]";

#define FLUSH_AT (1u << 20) /* bytes of NDJSON gathered per fwrite */

typedef struct read_args {
	const char *dir;
	int64_t from, to;
	unsigned flags;
	tdm_selector *where; /* one group per --where */
	size_t n_where;
	char **texts;        /* copies of the --where texts, cut in place */
} read_args;

static int add_where(read_args *ra, const char *sel)
{
	char *copy = strdup(sel);
	size_t i = ra->n_where++;
	ra->texts[i] = copy;
	if (!copy || cli_where_group(&ra->where[i], copy))
		return cli_usage_error(usage, "bad --where '%s': expected "
		                       "key=value pairs joined by ','", sel);
	return 0;
}

static void free_args(read_args *ra)
{
	for (size_t i = 0; i < ra->n_where; i++) {
		free((void *)ra->where[i].matches);
		free(ra->texts[i]);
	}
	free(ra->where);
	free(ra->texts);
}

/* Tries read's options at a->i: returns 1 when one matched (*rc is then
 * an exit code if its value was bad), 0 when the argument is none of them. */
static int parse_option(read_args *ra, cli_argv *a, int *rc)
{
	const char *v;
	int r;
	*rc = 0;
	if (cli_flag(a, "--storage-order")) {
		ra->flags |= TDM_READ_STORAGE_ORDER;
		return 1;
	}
	if ((r = cli_option(a, "--from", &v)) > 0)
		*rc = cli_time_arg(&ra->from, "--from", v, usage);
	else if (r == 0 && (r = cli_option(a, "--to", &v)) > 0)
		*rc = cli_time_arg(&ra->to, "--to", v, usage);
	else if (r == 0 && (r = cli_option(a, "--where", &v)) > 0)
		*rc = add_where(ra, v);
	if (r < 0)
		*rc = cli_bad_argument(a, usage, 1);
	return r != 0;
}

static int parse_args(read_args *ra, int argc, char **argv)
{
	cli_argv a = {argc, argv, 1, 0};
	ra->from = 0;
	ra->to = INT64_MAX;
	/* At most one --where per argument: size the arrays for that. */
	ra->where = calloc((size_t)argc, sizeof *ra->where);
	ra->texts = calloc((size_t)argc, sizeof *ra->texts);
	if (!ra->where || !ra->texts) {
		cli_error("out of memory");
		return EXIT_IOERR;
	}
	while (a.i < argc) {
		int rc;
		if (parse_option(ra, &a, &rc)) {
			if (rc)
				return rc;
			continue;
		}
		if (!ra->dir && cli_operand(&a, &ra->dir))
			continue;
		if (a.i < argc)
			return cli_bad_argument(&a, usage, 0);
	}
	return ra->dir ? 0 : cli_usage_error(usage, "missing DIR");
}

/* Prints every event of the iterator; returns 0 or an exit code. */
static int print_events(tdm_iter *it)
{
	ndjson_buf out = {0};
	const tdm_event *ev;
	int rc;
	while ((rc = tdm_iter_next(&ev, it)) == 0) {
		if (ndjson_event(&out, ev)) {
			ndjson_buf_free(&out);
			cli_error("out of memory");
			return EXIT_IOERR;
		}
		if (out.len >= FLUSH_AT) {
			fwrite(out.data, 1, out.len, stdout);
			out.len = 0;
		}
	}
	if (out.len)
		fwrite(out.data, 1, out.len, stdout);
	ndjson_buf_free(&out);
	return rc == TDM_ITEROVER ? 0 : cli_lib_error(rc);
}

/* Damaged records were skipped, not printed: say so and fail. */
static int report_damage(const tdm_iter *it)
{
	const char *first;
	uint64_t n = tdm_iter_damage(&first, it);
	if (n == 0)
		return 0;
	cli_error("skipped %" PRIu64 " damaged record(s); first: %s", n,
	          first ? first : "(no message)");
	return EXIT_IOERR;
}

static int run_read(const read_args *ra)
{
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	tdm_read_options ro = TDM_READ_OPTIONS_INIT;
	tdm_store *s;
	tdm_iter *it;
	int rc, out_rc;
	oo.flags = TDM_OPEN_READONLY;
	ro.flags = ra->flags;
	ro.where = ra->where;
	ro.n_where = ra->n_where;
	if ((rc = tdm_store_open(&s, ra->dir, &oo)))
		return cli_lib_error(rc);
	if ((rc = tdm_iter_open(&it, s, ra->from, ra->to, &ro))) {
		rc = cli_lib_error(rc);
		tdm_store_close(s);
		return rc;
	}
	rc = print_events(it);
	out_rc = cli_stdout_done();
	if (!rc)
		rc = out_rc ? out_rc : report_damage(it);
	tdm_iter_close(it);
	tdm_store_close(s);
	return rc;
}

int cmd_read(int argc, char **argv)
{
	static char stdout_buf[1u << 20];
	read_args ra = {0};
	int rc = parse_args(&ra, argc, argv);
	if (rc == 0) {
		setvbuf(stdout, stdout_buf, _IOFBF, sizeof stdout_buf);
		rc = run_read(&ra);
	}
	free_args(&ra);
	return rc;
}
