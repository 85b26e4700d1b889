/*
 * cmd_labels.c - `tidemark labels DIR [--from T] [--to T]`: the label keys
 * and values that the events of [from, to) carry, with counts, as one JSON
 * object:
 *
 *   {"labels":{"host":{"events":3,"values":{"web-1":2,"web-2":1}},...}}
 *
 * Keys and values in bytewise order; a key's "events" is how many events
 * carry the key (each event has a key at most once, so it is the sum of
 * its values' counts).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tidemark.h>

#include "cli.h"
#include "ndjson.h"

static const char usage[] = "tidemark labels DIR [--from T] [--to T]";

static int parse_args(const char **dir, int64_t *from, int64_t *to, int argc,
                      char **argv)
{
	cli_argv a = {argc, argv, 1, 0};
	const char *v;
	*dir = NULL;
	*from = 0;
	*to = INT64_MAX;
	while (a.i < argc) {
		int r, rc = 0;
		if ((r = cli_option(&a, "--from", &v)) > 0)
			rc = cli_time_arg(from, "--from", v, usage);
		else if (r == 0 && (r = cli_option(&a, "--to", &v)) > 0)
			rc = cli_time_arg(to, "--to", v, usage);
		if (r < 0)
			return cli_bad_argument(&a, usage, 1);
		if (rc)
			return rc;
		if (r > 0)
			continue;
		if (!*dir && cli_operand(&a, dir))
			continue;
		if (a.i < argc)
			return cli_bad_argument(&a, usage, 0);
	}
	return *dir ? 0 : cli_usage_error(usage, "missing DIR");
}

/* Appends a JSON string to `out`; -1 when out of memory. */
static int put_str(ndjson_buf *out, const char *text)
{
	return ndjson_string(out, text);
}

static int put_raw(ndjson_buf *out, const char *text)
{
	size_t n = strlen(text);
	if (out->len + n + 1 > out->cap) {
		size_t cap = out->cap ? out->cap : 4096;
		while (cap < out->len + n + 1)
			cap *= 2;
		char *p = realloc(out->data, cap);
		if (!p)
			return -1;
		out->data = p;
		out->cap = cap;
	}
	memcpy(out->data + out->len, text, n);
	out->len += n;
	return 0;
}

static int print_counts(const tdm_label_count *c, size_t n)
{
	ndjson_buf out = {0};
	char num[64];
	int bad = put_raw(&out, "{\"labels\":{");
	for (size_t i = 0; i < n && !bad;) {
		/* one key: its total, then its values */
		uint64_t total = 0;
		size_t j = i;
		for (; j < n && strcmp(c[j].key, c[i].key) == 0; j++)
			total += c[j].events;
		snprintf(num, sizeof num, ":{\"events\":%" PRIu64 ",\"values\":{", total);
		bad |= (i ? put_raw(&out, ",") : 0) || put_str(&out, c[i].key) ||
		       put_raw(&out, num);
		for (size_t k = i; k < j && !bad; k++) {
			snprintf(num, sizeof num, ":%" PRIu64, c[k].events);
			bad |= (k > i ? put_raw(&out, ",") : 0) || put_str(&out, c[k].value) ||
			       put_raw(&out, num);
		}
		bad |= put_raw(&out, "}}");
		i = j;
	}
	bad |= put_raw(&out, "}}\n");
	if (!bad)
		fwrite(out.data, 1, out.len, stdout);
	ndjson_buf_free(&out);
	if (bad) {
		cli_error("out of memory");
		return EXIT_IOERR;
	}
	return cli_stdout_done();
}

int cmd_labels(int argc, char **argv)
{
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	tdm_label_count *counts;
	tdm_store *s;
	const char *dir;
	int64_t from, to;
	size_t n;
	int rc = parse_args(&dir, &from, &to, argc, argv);
	if (rc)
		return rc;
	oo.flags = TDM_OPEN_READONLY;
	if ((rc = tdm_store_open(&s, dir, &oo)))
		return cli_lib_error(rc);
	if ((rc = tdm_label_counts(&counts, &n, s, from, to))) {
		rc = cli_lib_error(rc);
		tdm_store_close(s);
		return rc;
	}
	rc = print_counts(counts, n);
	tdm_label_counts_free(counts, n);
	tdm_store_close(s);
	return rc;
}
