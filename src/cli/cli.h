/*
 * cli.h - what the tidemark commands share: exit codes, error reporting
 * and option parsing. Each command lives in its own cmd_*.c file.
 */
#ifndef TIDEMARK_CLI_H
#define TIDEMARK_CLI_H

#include <stdint.h>
#include <tidemark.h>

/* Exit codes (SPEC §5; the numbers follow BSD sysexits.h). */
enum {
	EXIT_OK = 0,
	EXIT_DIFFERENT = 1, /* diff found differences */
	EXIT_USAGE = 2,     /* bad command line or store options */
	EXIT_DATAERR = 65,  /* bad input data */
	EXIT_IOERR = 74,    /* I/O error or corruption */
	EXIT_TEMPFAIL = 75  /* store locked by another writer */
};

/* The commands; argv[0] is the command name, argv[1..] its arguments. */
int cmd_init(int argc, char **argv);
int cmd_labels(int argc, char **argv);
int cmd_append(int argc, char **argv);
int cmd_read(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_repair(int argc, char **argv);
int cmd_sync(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_compact(int argc, char **argv);
int cmd_retain(int argc, char **argv);
/* `serve --stdio`: the replica protocol's store side (serve_stdio.c). */
int cmd_serve_stdio(int argc, char **argv);

/* The exit code for a TDM_E* error code. */
int cli_exit_code(int err);

/* Prints "tidemark: <formatted>" and a newline to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "tidemark: " and the library's message for `err` to stderr and
 * returns the exit code it maps to. */
int cli_lib_error(int err);

/* Prints "tidemark: <formatted>" and the command's usage line to stderr;
 * returns EXIT_USAGE. */
int cli_usage_error(const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Command-line scanning. A command walks argv with an index; an option's
 * value may follow as the next argument or after '=' ("--grace=30s"). */
typedef struct cli_argv {
	int argc;
	char **argv;
	int i;             /* next argument to look at */
	int only_operands; /* "--" was seen */
} cli_argv;

/* Returns 1 when the current argument is the flag `name` (e.g.
 * "--storage-order") and moves past it; 0 otherwise. */
int cli_flag(cli_argv *a, const char *name);

/* Returns 1 when the current argument is option `name` and stores its value
 * in *value, moving past both; 0 when it is not that option; -1 when the
 * value is missing. */
int cli_option(cli_argv *a, const char *name, const char **value);

/* Returns 1 when the current argument is an operand (not an option) and
 * stores it in *operand, moving past it; 0 otherwise. Skips a "--". */
int cli_operand(cli_argv *a, const char **operand);

/* Reports what is wrong with the current argument (unknown option, missing
 * value, extra operand) and returns EXIT_USAGE. */
int cli_bad_argument(cli_argv *a, const char *usage, int missing_value);

/* For commands whose only argument is DIR: stores it in *dir, or prints a
 * usage error and returns EXIT_USAGE. */
int cli_store_dir_arg(const char **dir, int argc, char **argv,
                      const char *usage);

/* Flushes stdout; on a write error (disk full, closed pipe) prints it and
 * returns EXIT_IOERR, else EXIT_OK. */
int cli_stdout_done(void);

/* The current time in ns since the epoch (CLOCK_REALTIME). */
int64_t cli_now_ns(void);

/* Parses a time argument (ns, RFC 3339, now[+-]D) for option `name`;
 * prints a usage error and returns EXIT_USAGE if it is bad, else 0. */
int cli_time_arg(int64_t *out, const char *name, const char *value,
                 const char *usage);

/* Splits a --where text "k=v,k2=v2" into one selector group: the text is
 * cut in place and must outlive the group; g->matches is the caller's to
 * free. 0, or -1 when malformed or out of memory. */
int cli_where_group(tdm_selector *g, char *text);

#endif
