/*
 * metrics.c - counters and the Prometheus text format.
 */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static const uint64_t bucket_us[METRICS_BUCKETS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 500000, 1000000, 5000000,
};

static const char *const source_names[N_SRC] = {
	"events", "loki", "syslog", "read",
};

void metrics_append(metrics *m, const tdm_append_result *r, uint64_t us)
{
	int b = 0;
	while (b < METRICS_BUCKETS && us > bucket_us[b])
		b++;
	atomic_fetch_add(&m->append_bucket[b], 1);
	atomic_fetch_add(&m->append_count, 1);
	atomic_fetch_add(&m->append_sum_us, us);
	atomic_fetch_add(&m->appended, r->appended);
	atomic_fetch_add(&m->duplicates, r->duplicates);
	atomic_fetch_add(&m->late, r->late);
}

static int put(ndjson_buf *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int put(ndjson_buf *out, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		size_t room = out->cap - out->len;
		va_start(ap, fmt);
		int n = vsnprintf(out->data ? out->data + out->len : NULL, room,
		                  fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if ((size_t)n < room) {
			out->len += (size_t)n;
			return 0;
		}
		size_t cap = out->cap ? out->cap * 2 : 4096;
		while (cap - out->len <= (size_t)n)
			cap *= 2;
		char *p = realloc(out->data, cap);
		if (!p)
			return -1;
		out->data = p;
		out->cap = cap;
	}
}

static uint64_t get(const atomic_uint_fast64_t *v)
{
	return atomic_load(v);
}

static int counter(ndjson_buf *out, const char *name, const char *help,
                   uint64_t v)
{
	return put(out, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n",
	           name, help, name, name, v);
}

static int gauge(ndjson_buf *out, const char *name, const char *help,
                 uint64_t v)
{
	return put(out, "# HELP %s %s\n# TYPE %s gauge\n%s %" PRIu64 "\n",
	           name, help, name, name, v);
}

static int per_source(ndjson_buf *out, const char *name, const char *help,
                      const atomic_uint_fast64_t *v)
{
	int rc = put(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (int s = 0; s < N_SRC && !rc; s++)
		rc = put(out, "%s{source=\"%s\"} %" PRIu64 "\n", name,
		         source_names[s], get(&v[s]));
	return rc;
}

static int histogram(ndjson_buf *out, const metrics *m)
{
	const char *name = "tidemark_append_duration_seconds";
	uint64_t cum = 0;
	int rc = put(out, "# HELP %s Time of one store append (one request "
	             "or one syslog read), including its sync.\n"
	             "# TYPE %s histogram\n", name, name);
	for (int b = 0; b <= METRICS_BUCKETS && !rc; b++) {
		cum += get(&m->append_bucket[b]);
		if (b < METRICS_BUCKETS)
			rc = put(out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
			         (double)bucket_us[b] / 1e6, cum);
		else
			rc = put(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n",
			         name, cum);
	}
	if (!rc)
		rc = put(out, "%s_sum %.6f\n%s_count %" PRIu64 "\n", name,
		         (double)get(&m->append_sum_us) / 1e6, name,
		         get(&m->append_count));
	return rc;
}

int metrics_render(ndjson_buf *out, const metrics *m, const tdm_stat *st)
{
	int rc = counter(out, "tidemark_events_appended_total",
	                 "Events stored (on time or late).", get(&m->appended));
	rc = rc ? rc : counter(out, "tidemark_events_duplicate_total",
	                       "Events not stored: already there.",
	                       get(&m->duplicates));
	rc = rc ? rc : counter(out, "tidemark_events_late_total",
	                       "Events stored late (reconciliation files).",
	                       get(&m->late));
	rc = rc ? rc : per_source(out, "tidemark_requests_total",
	                          "HTTP requests, or syslog messages, by route.",
	                          m->requests);
	rc = rc ? rc : per_source(out, "tidemark_request_errors_total",
	                          "Requests or syslog messages refused or "
	                          "failed.", m->request_errors);
	rc = rc ? rc : histogram(out, m);
	if (st && !rc) {
		rc = gauge(out, "tidemark_store_events", "Events in the store.",
		           st->events);
		rc = rc ? rc : gauge(out, "tidemark_store_late_events",
		                     "Events in reconciliation files.",
		                     st->late_events);
		rc = rc ? rc : gauge(out, "tidemark_store_bytes",
		                     "Bytes on disk: shard files, index, "
		                     "metadata.", st->bytes);
		rc = rc ? rc : gauge(out, "tidemark_store_shards",
		                     "Shards in the store.", st->shards);
	}
	return rc;
}
