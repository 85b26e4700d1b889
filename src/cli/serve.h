/*
 * serve.h - what the parts of `tidemark serve` share: the one store
 * handle, serialized by a mutex (the library is not thread-safe on one
 * handle), the limits, the tokens and the metrics.
 *
 * cmd_serve.c parses the options and runs the process; serve_store.c owns
 * the store; serve_http.c is the HTTP server (libmicrohttpd), loki_push.c
 * its Loki body parser; serve_syslog.c the syslog TCP receiver,
 * syslog_parse.c its parser; metrics.c the counters.
 */
#ifndef TIDEMARK_SERVE_H
#define TIDEMARK_SERVE_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <tidemark.h>

#include "event_batch.h"
#include "metrics.h"

typedef struct serve_ctx {
	const char *dir;
	tdm_open_options oo;
	pthread_mutex_t lock;  /* guards everything below it */
	tdm_store *store;      /* NULL after a failure it could not reopen */
	int failed;            /* an append failed: reopen before the next */
	unsigned open_iters;   /* GET /v1/events streams reading the store */

	metrics m;
	char **tokens;         /* bearer tokens; none: no check */
	size_t n_tokens;
	size_t max_body;       /* HTTP body bytes, also once decompressed */
	size_t max_line;       /* one syslog message */
	unsigned idle_timeout; /* seconds without a byte before closing */
	unsigned request_timeout; /* seconds for a whole request body */
	unsigned max_connections;
	volatile sig_atomic_t stopping;
} serve_ctx;

/* What serve_append's caller tells its client. */
enum serve_status {
	SERVE_OK = 0,
	SERVE_BAD = 1,        /* the events are bad: 400 */
	SERVE_UNAVAILABLE = 2 /* the store could not take them (disk full,
	                         I/O error): 503, retry later */
};

/* Appends `b` as one batch (all or none). On failure err says why.
 * Safe to call from any thread. */
int serve_append(tdm_append_result *out, serve_ctx *c, const event_batch *b,
                 char *err, size_t errlen);

/* Opens the store (the writer) and closes it. */
int serve_store_open(serve_ctx *c);
int serve_store_close(serve_ctx *c);

/* Store statistics for /metrics; -1 when the store is not usable. */
int serve_stat(tdm_stat *out, serve_ctx *c);

/* Monotonic microseconds. */
uint64_t serve_now_us(void);

/* Start and stop of the HTTP server and the syslog receiver; each takes
 * a socket already bound and listening. */
typedef struct serve_http serve_http;
/* Loads the HTTP library (libmicrohttpd, at run time: mhd_load.h); needed
 * once before serve_http_start. -1 with err (errlen bytes) saying why. */
int serve_http_load(char *err, size_t errlen);
int serve_http_start(serve_http **out, serve_ctx *c, int listen_fd);
void serve_http_quiesce(serve_http *h); /* stop accepting */
unsigned serve_http_busy(serve_http *h); /* requests in progress */
void serve_http_stop(serve_http *h);

typedef struct serve_syslog serve_syslog;
int serve_syslog_start(serve_syslog **out, serve_ctx *c, int listen_fd);
void serve_syslog_stop(serve_syslog *s); /* commits what it received */

#endif
