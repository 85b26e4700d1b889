/*
 * serve_store.c - the one store writer of `tidemark serve`. Every request
 * thread and the syslog thread append through serve_append, one batch at a
 * time under the mutex.
 *
 * After an I/O failure (a full disk) the library leaves the handle failed
 * until it is reopened; reopening runs recovery, which drops the torn
 * batch. It waits until no read stream holds an iterator on the old
 * handle; until then appends get 503 too.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "serve.h"

uint64_t serve_now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

int serve_store_open(serve_ctx *c)
{
	return tdm_store_open(&c->store, c->dir, &c->oo);
}

int serve_store_close(serve_ctx *c)
{
	int rc = 0;
	pthread_mutex_lock(&c->lock);
	if (c->store) {
		if (!c->failed)
			rc = tdm_sync(c->store);
		int close_rc = tdm_store_close(c->store);
		rc = rc ? rc : close_rc;
		c->store = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* Under the lock: a usable handle, reopening a failed one if possible. */
static int usable(serve_ctx *c, char *err, size_t errlen)
{
	if (c->store && !c->failed)
		return 1;
	if (c->open_iters) {
		snprintf(err, errlen, "the store is recovering from a write "
		         "failure; retry later");
		return 0;
	}
	if (c->store) {
		tdm_store_close(c->store);
		c->store = NULL;
	}
	int rc = tdm_store_open(&c->store, c->dir, &c->oo);
	if (rc) {
		snprintf(err, errlen, "the store cannot be reopened after a "
		         "write failure: %s", tdm_error_message());
		c->store = NULL;
		return 0;
	}
	c->failed = 0;
	return 1;
}

int serve_append(tdm_append_result *out, serve_ctx *c, const event_batch *b,
                 char *err, size_t errlen)
{
	int rc, status = SERVE_OK;
	memset(out, 0, sizeof *out);
	if (b->n == 0)
		return SERVE_OK;
	pthread_mutex_lock(&c->lock);
	if (!usable(c, err, errlen)) {
		pthread_mutex_unlock(&c->lock);
		return SERVE_UNAVAILABLE;
	}
	uint64_t t0 = serve_now_us();
	rc = tdm_append(out, NULL, c->store, b->events, b->n);
	if (rc == 0) {
		metrics_append(&c->m, out, serve_now_us() - t0);
	} else {
		snprintf(err, errlen, "%s", tdm_error_message());
		if (rc == TDM_EINVAL) {
			status = SERVE_BAD;
		} else {
			/* EIO, EFAILED, ENOMEM: nothing of the batch is
			 * committed; the handle is reopened next time. */
			c->failed = 1;
			status = SERVE_UNAVAILABLE;
			fprintf(stderr, "tidemark: append failed: %s\n", err);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return status;
}

int serve_stat(tdm_stat *out, serve_ctx *c)
{
	int rc = -1;
	pthread_mutex_lock(&c->lock);
	if (c->store && !c->failed)
		rc = tdm_stat_get(out, c->store) ? -1 : 0;
	pthread_mutex_unlock(&c->lock);
	return rc;
}
