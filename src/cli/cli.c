/*
 * cli.c - what every command shares: exit codes for library errors,
 * error messages, and a small argv scanner (getopt_long would permute
 * argv and print its own messages; we want ours).
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <tidemark.h>

#include "timefmt.h"

int cli_exit_code(int err)
{
	switch (err) {
	case TDM_OK:
		return EXIT_OK;
	case TDM_EINVAL:
	case TDM_EMISMATCH:
	case TDM_EEXIST:
		return EXIT_USAGE;
	case TDM_ELOCKED:
		return EXIT_TEMPFAIL;
	default: /* EIO, ECORRUPT, EFAILED, ENOTFOUND, ENOMEM, ... */
		return EXIT_IOERR;
	}
}

void cli_error(const char *fmt, ...)
{
	va_list ap;
	fputs("tidemark: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_lib_error(int err)
{
	const char *msg = tdm_error_message();
	cli_error("%s", *msg ? msg : tdm_strerror(err));
	return cli_exit_code(err);
}

int cli_usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;
	fputs("tidemark: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: %s\n", usage);
	return EXIT_USAGE;
}

static const char *current(const cli_argv *a)
{
	return a->i < a->argc ? a->argv[a->i] : NULL;
}

static int is_option(const cli_argv *a, const char *arg)
{
	return !a->only_operands && arg[0] == '-' && arg[1] != '\0';
}

int cli_flag(cli_argv *a, const char *name)
{
	const char *arg = current(a);
	if (!arg || !is_option(a, arg) || strcmp(arg, name) != 0)
		return 0;
	a->i++;
	return 1;
}

int cli_option(cli_argv *a, const char *name, const char **value)
{
	const char *arg = current(a);
	size_t n = strlen(name);
	if (!arg || !is_option(a, arg) || strncmp(arg, name, n) != 0)
		return 0;
	if (arg[n] == '=') {
		*value = arg + n + 1;
		a->i++;
		return 1;
	}
	if (arg[n] != '\0')
		return 0;
	if (a->i + 1 >= a->argc)
		return -1;
	*value = a->argv[a->i + 1];
	a->i += 2;
	return 1;
}

int cli_operand(cli_argv *a, const char **operand)
{
	const char *arg = current(a);
	if (arg && !a->only_operands && strcmp(arg, "--") == 0) {
		a->only_operands = 1;
		a->i++;
		arg = current(a);
	}
	if (!arg || is_option(a, arg))
		return 0;
	*operand = arg;
	a->i++;
	return 1;
}

int cli_bad_argument(cli_argv *a, const char *usage, int missing_value)
{
	const char *arg = current(a);
	if (missing_value)
		return cli_usage_error(usage, "option '%s' needs a value", arg);
	if (is_option(a, arg))
		return cli_usage_error(usage, "unknown option '%s'", arg);
	return cli_usage_error(usage, "unexpected argument '%s'", arg);
}

int cli_store_dir_arg(const char **dir, int argc, char **argv,
                      const char *usage)
{
	cli_argv a = {argc, argv, 1, 0};
	*dir = NULL;
	while (a.i < argc) {
		if (!*dir && cli_operand(&a, dir))
			continue;
		if (a.i < argc)
			return cli_bad_argument(&a, usage, 0);
	}
	return *dir ? EXIT_OK : cli_usage_error(usage, "missing DIR");
}

int cli_stdout_done(void)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return EXIT_OK;
	cli_error("writing to stdout: %s", strerror(errno));
	return EXIT_IOERR;
}

int64_t cli_now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int cli_time_arg(int64_t *out, const char *name, const char *value,
                 const char *usage)
{
	const char *msg = tf_parse_time(value, cli_now_ns(), out);
	if (msg)
		return cli_usage_error(usage, "bad time for %s '%s': %s", name,
		                       value, msg);
	return 0;
}

int cli_where_group(tdm_selector *g, char *text)
{
	size_t n = 1;
	tdm_match *m;
	for (const char *p = text; *p; p++)
		n += *p == ',';
	if (!(m = calloc(n, sizeof *m)))
		return -1;
	g->matches = m;
	g->n_matches = n;
	for (size_t i = 0; i < n; i++) {
		char *comma = strchr(text, ',');
		char *eq = strchr(text, '=');
		if (comma)
			*comma = '\0';
		if (!eq || (comma && eq > comma) || eq == text)
			return -1;
		*eq = '\0';
		m[i].key = text;
		m[i].value = eq + 1;
		if (comma)
			text = comma + 1;
	}
	return 0;
}
