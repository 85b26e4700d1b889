/*
 * cmd_append.c - `tidemark append DIR [--durability none|interval|batch]
 * [--sync-interval-ms N] [--sync-interval-events N]`:
 * reads NDJSON events from stdin and appends them in batches.
 *
 * A bad line stops the run, but only after the batch of the lines before
 * it is committed: what came before a bad line is never lost.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tidemark.h>
#include <unistd.h>

#include "cli.h"
#include "event_in.h"
#include "linereader.h"

static const char usage[] =
	"tidemark append DIR [--durability none|interval|batch] "
	"[--sync-interval-ms N] [--sync-interval-events N] < events.ndjson";

#define BATCH_EVENTS 1000
#define BATCH_BYTES (8u << 20)    /* payload bytes that close a batch */
#define MAX_LINE (32u << 20)      /* longest input line accepted */

typedef struct batch {
	tdm_event events[BATCH_EVENTS];
	event_in_mem mem[BATCH_EVENTS]; /* reused from batch to batch */
	size_t n, payload_bytes;
	tdm_append_result total;
} batch;

static int parse_durability(int *out, const char *v)
{
	static const char *const names[] = {"none", "interval", "batch"};
	static const int modes[] = {TDM_DURABILITY_NONE,
	                            TDM_DURABILITY_INTERVAL,
	                            TDM_DURABILITY_BATCH};
	for (int i = 0; i < 3; i++) {
		if (strcmp(v, names[i]) == 0) {
			*out = modes[i];
			return 0;
		}
	}
	return cli_usage_error(usage, "bad --durability '%s': expected none, "
	                       "interval or batch", v);
}

/* A count for an interval option: 1 .. UINT32_MAX. */
static int parse_count(uint32_t *out, const char *name, const char *v)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (*v < '0' || *v > '9' || *end || errno || n == 0 || n > UINT32_MAX)
		return cli_usage_error(usage, "bad %s '%s': expected 1..4294967295",
		                       name, v);
	*out = (uint32_t)n;
	return 0;
}

static int parse_args(const char **dir, tdm_open_options *oo, int argc,
                      char **argv)
{
	cli_argv a = {argc, argv, 1, 0};
	*dir = NULL;
	while (a.i < argc) {
		const char *v;
		int r, rc = 0;
		if ((r = cli_option(&a, "--durability", &v)) > 0)
			rc = parse_durability(&oo->durability, v);
		else if (!r && (r = cli_option(&a, "--sync-interval-ms", &v)) > 0)
			rc = parse_count(&oo->sync_interval_ms, "--sync-interval-ms", v);
		else if (!r && (r = cli_option(&a, "--sync-interval-events", &v)) > 0)
			rc = parse_count(&oo->sync_interval_events, "--sync-interval-events", v);
		if (r < 0)
			return cli_bad_argument(&a, usage, 1);
		if (r > 0) {
			if (rc)
				return rc;
			continue;
		}
		if (!*dir && cli_operand(&a, dir))
			continue;
		if (a.i < argc)
			return cli_bad_argument(&a, usage, 0);
	}
	return *dir ? 0 : cli_usage_error(usage, "missing DIR");
}

/* Commits the pending events; returns 0 or an exit code. */
static int flush(batch *b, tdm_store *s)
{
	tdm_append_result r = {0};
	int rc = b->n ? tdm_append(&r, NULL, s, b->events, b->n) : 0;
	for (size_t i = 0; i < b->n; i++)
		event_in_recycle(&b->mem[i]);
	b->n = 0;
	b->payload_bytes = 0;
	if (rc) {
		int code = cli_lib_error(rc);
		/* Every event passed tdm_event_check, so an EINVAL here is
		 * still the data's fault, not the command line's. */
		return rc == TDM_EINVAL ? EXIT_DATAERR : code;
	}
	b->total.appended += r.appended;
	b->total.late += r.late;
	b->total.duplicates += r.duplicates;
	return 0;
}

static int is_blank(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
			return 0;
	return 1;
}

/* Parses one line into the batch, committing the batch when it is full.
 * On a bad line, commits the lines before it and reports this one. */
static int add_line(batch *b, tdm_store *s, const char *line, size_t len,
                    uint64_t lineno)
{
	char err[256];
	size_t i = b->n;
	int rc;
	if (event_in_parse(&b->events[i], &b->mem[i], line, len, err,
	                   sizeof err)) {
		if ((rc = flush(b, s)))
			return rc;
		cli_error("line %" PRIu64 ": %s", lineno, err);
		return EXIT_DATAERR;
	}
	b->n++;
	b->payload_bytes += b->events[i].payload_len;
	if (b->n == BATCH_EVENTS || b->payload_bytes >= BATCH_BYTES)
		return flush(b, s);
	return 0;
}

/* What stopped the reader, reported after the batch before it is
 * committed. */
static int read_failure(batch *b, tdm_store *s, int what, uint64_t lineno)
{
	int read_errno = errno; /* before flush can change it */
	int rc = flush(b, s);
	if (rc)
		return rc;
	if (what == LINE_TOO_LONG) {
		cli_error("line %" PRIu64 ": longer than %u bytes", lineno,
		          MAX_LINE);
		return EXIT_DATAERR;
	}
	cli_error("reading stdin: %s",
	          what == LINE_NOMEM ? "out of memory" : strerror(read_errno));
	return EXIT_IOERR;
}

/* Commits what is pending when stdin has nothing more for now: a shipper
 * that pipes lines as they come (rsyslog's omprog) has them stored at
 * once, not when 1000 have gathered or the pipe closes. */
typedef struct idle_flush {
	batch *b;
	tdm_store *s;
	int rc;
} idle_flush;

static void flush_when_idle(void *ctx)
{
	idle_flush *f = ctx;
	if (f->rc == 0 && f->b->n)
		f->rc = flush(f->b, f->s);
}

static int append_stdin(batch *b, tdm_store *s)
{
	line_reader r;
	idle_flush idle = {b, s, 0};
	uint64_t lineno = 0;
	char *line;
	size_t len;
	int got, rc = 0;
	line_reader_init(&r, STDIN_FILENO, MAX_LINE);
	r.idle = flush_when_idle;
	r.idle_ctx = &idle;
	while (rc == 0 && (got = line_read(&r, &line, &len)) != LINE_EOF) {
		lineno++;
		if ((rc = idle.rc))
			break;
		if (got < 0)
			rc = read_failure(b, s, got, lineno);
		else if (!is_blank(line, len))
			rc = add_line(b, s, line, len, lineno);
	}
	line_reader_free(&r);
	if (!rc)
		rc = idle.rc;
	return rc ? rc : flush(b, s);
}

static int run_append(batch *b, const char *dir, const tdm_open_options *oo)
{
	tdm_store *s;
	int rc, close_rc;
	if ((rc = tdm_store_open(&s, dir, oo)))
		return cli_lib_error(rc);
	rc = append_stdin(b, s);
	close_rc = tdm_store_close(s);
	if (close_rc && !rc)
		rc = cli_lib_error(close_rc);
	return rc;
}

int cmd_append(int argc, char **argv)
{
	static batch b; /* large: keep it off the stack */
	const char *dir;
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	int rc = parse_args(&dir, &oo, argc, argv);
	if (rc)
		return rc;
	rc = run_append(&b, dir, &oo);
	for (size_t i = 0; i < BATCH_EVENTS; i++)
		event_in_free(&b.mem[i]);
	fprintf(stderr, "{\"appended\":%" PRIu64 ",\"duplicates\":%" PRIu64
	        ",\"late\":%" PRIu64 "}\n", b.total.appended,
	        b.total.duplicates, b.total.late);
	return rc;
}
