/*
 * serve_http.c - the HTTP side of `tidemark serve`, on libmicrohttpd:
 *
 *   POST /v1/events          NDJSON events (SPEC §5), gzip accepted
 *   POST /loki/api/v1/push   Loki's JSON push (loki_push.c)
 *   GET  /v1/events          ?from=&to=&where= : NDJSON as `tidemark read`
 *   GET  /metrics            Prometheus text (metrics.c)
 *   GET  /healthz            "ok", no token needed
 *
 * A request body is gathered whole (at most max_body bytes, also once
 * decompressed), parsed whole and appended as one batch: a request is
 * stored all or not at all, and answered only after the append returned
 * (with `batch` durability: after the sync). Errors are answered as
 * {"error":"..."} with 400 (bad body), 401 (token), 404, 405, 408 (body
 * too slow), 413 (too large), 415 (encoding or type) or 503 (store cannot
 * write: retry).
 *
 * libmicrohttpd is called through the table mhd_load.c fills at run time
 * (serve_http_load), so only this server maps it.
 */
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "cli.h"
#include "codec.h"
#include "event_in.h"
#include "loki_push.h"
#include "mhd_load.h"
#include "ndjson.h"
#include "serve.h"
#include "timefmt.h"

#define HTTP_THREADS 4
#define STREAM_CHUNK (64u << 10) /* NDJSON gathered per read-stream step */
#define ERR_LEN 512

static const mhd_api *mhd; /* set by serve_http_load */

struct serve_http {
	struct MHD_Daemon *d;
	serve_ctx *c;
	atomic_uint busy;
};

enum route { R_POST_EVENTS, R_LOKI, R_OTHER };

typedef struct request {
	enum route route;
	int gzip;
	int refused;      /* a response is queued: drop the rest of the body */
	int too_large;    /* the body passed max_body: dropped, 413 at its end */
	uint64_t start_us;
	char *body;
	size_t len, cap;
} request;

/* ---- Responses --------------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status,
                               const char *type, const char *body,
                               size_t len)
{
	struct MHD_Response *r = mhd->create_response_from_buffer(
		len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	mhd->add_response_header(r, "Content-Type", type);
	if (status == MHD_HTTP_UNAUTHORIZED)
		mhd->add_response_header(r, "WWW-Authenticate",
		                         "Bearer realm=\"tidemark\"");
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		mhd->add_response_header(r, "Retry-After", "5");
	enum MHD_Result ok = mhd->queue_response(conn, status, r);
	mhd->destroy_response(r);
	return ok;
}

/* Appends s as a JSON string: bytes that are not UTF-8 become U+FFFD,
 * so the reply is valid JSON whatever the request held. */
static void json_string(ndjson_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = (const uint8_t *)s;
	size_t n = strlen(s), o = b->len;
	/* Each byte takes at most 6 (\u00XX) or 3 (U+FFFD) bytes out. */
	char *d = realloc(b->data, b->len + n * 6 + 5);
	if (!d)
		return;
	b->data = d;
	b->cap = b->len + n * 6 + 5;
	d[o++] = '"';
	for (size_t i = 0; i < n;) {
		uint8_t ch = p[i];
		if (ch >= 0x80) {
			size_t k = utf8_sequence_len(p + i, n - i);
			if (k == 0) {
				memcpy(d + o, "\xEF\xBF\xBD", 3);
				o += 3;
				i++;
			} else {
				memcpy(d + o, p + i, k);
				o += k;
				i += k;
			}
			continue;
		}
		if (ch == '"' || ch == '\\') {
			d[o++] = '\\';
			d[o++] = (char)ch;
		} else if (ch < 0x20) {
			memcpy(d + o, "\\u00", 4);
			d[o + 4] = hex[ch >> 4];
			d[o + 5] = hex[ch & 15];
			o += 6;
		} else {
			d[o++] = (char)ch;
		}
		i++;
	}
	d[o++] = '"';
	b->len = o;
}

/* {"error":"<msg>"} */
static enum MHD_Result respond_error(serve_http *h, struct MHD_Connection *conn,
                                     enum metrics_source src, unsigned status,
                                     const char *msg)
{
	ndjson_buf b = {0};
	enum MHD_Result r;
	atomic_fetch_add(&h->c->m.request_errors[src], 1);
	if (!(b.data = malloc(16)))
		return MHD_NO;
	b.cap = 16;
	memcpy(b.data, "{\"error\":", 9);
	b.len = 9;
	json_string(&b, msg);
	if (b.cap - b.len < 2) {
		ndjson_buf_free(&b);
		return MHD_NO;
	}
	memcpy(b.data + b.len, "}\n", 2);
	b.len += 2;
	r = respond(conn, status, "application/json", b.data, b.len);
	ndjson_buf_free(&b);
	return r;
}

static enum MHD_Result respond_summary(struct MHD_Connection *conn,
                                       const tdm_append_result *r, int loki)
{
	char text[160];
	int n = snprintf(text, sizeof text, "{\"appended\":%llu,\"duplicates\""
	                 ":%llu,\"late\":%llu}\n",
	                 (unsigned long long)r->appended,
	                 (unsigned long long)r->duplicates,
	                 (unsigned long long)r->late);
	if (!loki)
		return respond(conn, MHD_HTTP_OK, "application/json", text,
		               (size_t)n);
	/* Loki answers a push with 204 and agents expect it; the summary
	 * goes in a header. */
	struct MHD_Response *resp = mhd->create_response_from_buffer(
		0, NULL, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	text[n - 1] = '\0';
	mhd->add_response_header(resp, "X-Tidemark-Result", text);
	enum MHD_Result ok = mhd->queue_response(conn, MHD_HTTP_NO_CONTENT,
	                                         resp);
	mhd->destroy_response(resp);
	return ok;
}

/* ---- Tokens ------------------------------------------------------------ */

/* Compares without an early exit, so timing does not tell how much of a
 * token was right. */
static int same_token(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	unsigned char diff = alen != blen;
	for (size_t i = 0; i < alen; i++)
		diff |= (unsigned char)(a[i] ^ b[i % (blen ? blen : 1)]);
	return diff == 0;
}

static int authorized(const serve_ctx *c, struct MHD_Connection *conn)
{
	if (c->n_tokens == 0)
		return 1;
	const char *auth = mhd->lookup_connection_value(conn, MHD_HEADER_KIND,
	                                                "Authorization");
	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
		return 0;
	auth += 7;
	while (*auth == ' ')
		auth++;
	size_t len = strlen(auth);
	int ok = 0;
	for (size_t i = 0; i < c->n_tokens; i++)
		ok |= same_token(auth, len, c->tokens[i]);
	return ok;
}

/* ---- POST bodies ------------------------------------------------------- */

/* Inflates a gzip body (several members allowed) into *out; returns an
 * HTTP status (200 when fine) with err set otherwise. */
static unsigned gunzip(char **out, size_t *out_len, const request *rq,
                       size_t max, char *err)
{
	z_stream z = {0};
	size_t cap = rq->len * 4 + 4096, len = 0;
	char *buf;
	int zr = Z_OK;
	if (cap > max + 1)
		cap = max + 1;
	if (!(buf = malloc(cap)) || inflateInit2(&z, 15 + 16) != Z_OK) {
		free(buf);
		snprintf(err, ERR_LEN, "out of memory");
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	}
	z.next_in = (Bytef *)rq->body;
	z.avail_in = (uInt)rq->len;
	for (;;) {
		if (len == cap) {
			if (cap > max) {
				snprintf(err, ERR_LEN, "body larger than %zu bytes "
				         "once decompressed", max);
				inflateEnd(&z);
				free(buf);
				return MHD_HTTP_CONTENT_TOO_LARGE;
			}
			size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			char *p = realloc(buf, ncap);
			if (!p) {
				inflateEnd(&z);
				free(buf);
				snprintf(err, ERR_LEN, "out of memory");
				return MHD_HTTP_SERVICE_UNAVAILABLE;
			}
			buf = p;
			cap = ncap;
		}
		z.next_out = (Bytef *)buf + len;
		z.avail_out = (uInt)(cap - len);
		zr = inflate(&z, Z_NO_FLUSH);
		len = cap - z.avail_out;
		if (zr == Z_STREAM_END) {
			if (z.avail_in == 0)
				break;
			inflateReset(&z); /* another gzip member follows */
			continue;
		}
		if (zr != Z_OK && !(zr == Z_BUF_ERROR && z.avail_out == 0)) {
			snprintf(err, ERR_LEN, "bad gzip body at compressed byte "
			         "%lu: %s", z.total_in,
			         zr == Z_BUF_ERROR ? "truncated" :
			         z.msg ? z.msg : "inflate failed");
			inflateEnd(&z);
			free(buf);
			return MHD_HTTP_BAD_REQUEST;
		}
	}
	inflateEnd(&z);
	if (len > max) {
		free(buf);
		snprintf(err, ERR_LEN, "body larger than %zu bytes once "
		         "decompressed", max);
		return MHD_HTTP_CONTENT_TOO_LARGE;
	}
	*out = buf;
	*out_len = len;
	return MHD_HTTP_OK;
}

static int blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return 0;
	return 1;
}

/* NDJSON lines to events with the CLI's own parser (event_in.c), each
 * copied into the batch. */
static int parse_ndjson(event_batch *b, const char *body, size_t len,
                        char *err)
{
	event_in_mem mem = {0};
	const char *p = body, *end = body + len;
	uint64_t lineno = 0;
	int rc = 0;
	while (p < end && rc == 0) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char msg[ERR_LEN - 64];
		tdm_event ev;
		lineno++;
		if (!blank(p, n)) {
			if (event_in_parse(&ev, &mem, p, n, msg, sizeof msg)) {
				snprintf(err, ERR_LEN, "line %llu: %s",
				         (unsigned long long)lineno, msg);
				rc = -1;
			} else if (event_batch_add(b, &ev)) {
				snprintf(err, ERR_LEN, "out of memory");
				rc = -2;
			}
			event_in_recycle(&mem);
		}
		p += n + 1;
	}
	event_in_free(&mem);
	return rc;
}

static enum MHD_Result finish_post(serve_http *h, struct MHD_Connection *conn,
                                   request *rq)
{
	serve_ctx *c = h->c;
	enum metrics_source src = rq->route == R_LOKI ? SRC_LOKI : SRC_EVENTS;
	char err[ERR_LEN];
	char *body = rq->body;
	size_t len = rq->len;
	unsigned status;
	event_batch b = {0};
	tdm_append_result res;
	int rc;
	if (rq->gzip) {
		status = gunzip(&body, &len, rq, c->max_body, err);
		if (status != MHD_HTTP_OK)
			return respond_error(h, conn, src, status, err);
	}
	if (rq->route == R_LOKI)
		rc = loki_parse(&b, body ? body : "", len, err, sizeof err);
	else
		rc = parse_ndjson(&b, body, len, err);
	if (body != rq->body)
		free(body);
	if (rc) {
		event_batch_free(&b);
		return respond_error(h, conn, src, rc == -2 ?
		                     MHD_HTTP_SERVICE_UNAVAILABLE :
		                     MHD_HTTP_BAD_REQUEST, err);
	}
	rc = serve_append(&res, c, &b, err, sizeof err);
	event_batch_free(&b);
	if (rc == SERVE_BAD)
		return respond_error(h, conn, src, MHD_HTTP_BAD_REQUEST, err);
	if (rc == SERVE_UNAVAILABLE)
		return respond_error(h, conn, src,
		                     MHD_HTTP_SERVICE_UNAVAILABLE, err);
	return respond_summary(conn, &res, rq->route == R_LOKI);
}

/* ---- GET /v1/events ---------------------------------------------------- */

typedef struct stream {
	serve_ctx *c;
	tdm_iter *it;
	ndjson_buf out;
	size_t off;
	int done, failed;
	tdm_selector *where;
	size_t n_where;
	char **texts;
} stream;

static void stream_free(void *cls)
{
	stream *s = cls;
	if (s->it) {
		pthread_mutex_lock(&s->c->lock);
		tdm_iter_close(s->it);
		s->c->open_iters--;
		pthread_mutex_unlock(&s->c->lock);
	}
	for (size_t i = 0; i < s->n_where; i++) {
		free((void *)s->where[i].matches);
		free(s->texts[i]);
	}
	free(s->where);
	free(s->texts);
	ndjson_buf_free(&s->out);
	free(s);
}

/* Encodes up to STREAM_CHUNK bytes of events, holding the store's lock
 * only for that step so appends go on between steps. */
static void stream_fill(stream *s)
{
	const tdm_event *ev;
	int rc = 0;
	s->out.len = s->off = 0;
	pthread_mutex_lock(&s->c->lock);
	while (s->out.len < STREAM_CHUNK &&
	       (rc = tdm_iter_next(&ev, s->it)) == 0) {
		if (ndjson_event(&s->out, ev)) {
			rc = TDM_ENOMEM;
			break;
		}
	}
	if (rc == TDM_ITEROVER) {
		const char *first;
		if (tdm_iter_damage(&first, s->it)) {
			fprintf(stderr, "tidemark: GET /v1/events skipped "
			        "damaged records; first: %s\n",
			        first ? first : "?");
			s->failed = 1;
		}
		s->done = 1;
	} else if (rc) {
		fprintf(stderr, "tidemark: GET /v1/events: %s\n",
		        tdm_error_message());
		s->failed = 1;
	}
	pthread_mutex_unlock(&s->c->lock);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	stream *s = cls;
	(void)pos;
	if (s->off == s->out.len) {
		if (s->failed)
			/* Cut the chunked reply short: the client sees a
			 * broken transfer, not a complete partial answer. */
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (s->done)
			return MHD_CONTENT_READER_END_OF_STREAM;
		stream_fill(s);
		if (s->off == s->out.len)
			return s->failed ? MHD_CONTENT_READER_END_WITH_ERROR
			                 : MHD_CONTENT_READER_END_OF_STREAM;
	}
	size_t n = s->out.len - s->off;
	if (n > max)
		n = max;
	memcpy(buf, s->out.data + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

typedef struct query {
	stream *s;
	int64_t from, to;
	char err[ERR_LEN];
	int bad;
	size_t n_args;
} query;

static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind,
                                 const char *key, const char *value)
{
	query *q = cls;
	stream *s = q->s;
	(void)kind;
	if (q->bad)
		return MHD_NO;
	if (strcmp(key, "from") == 0 || strcmp(key, "to") == 0) {
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		const char *msg = value ? tf_parse_time(value,
			(int64_t)t.tv_sec * 1000000000 + t.tv_nsec,
			key[0] == 'f' ? &q->from : &q->to) : "empty";
		if (msg) {
			snprintf(q->err, sizeof q->err, "bad %s '%s': %s", key,
			         value ? value : "", msg);
			q->bad = 1;
		}
	} else if (strcmp(key, "where") == 0) {
		if (s->n_where == q->n_args) {
			q->bad = 1;
			snprintf(q->err, sizeof q->err, "too many where");
			return MHD_NO;
		}
		size_t i = s->n_where++;
		s->texts[i] = strdup(value ? value : "");
		if (!s->texts[i] || cli_where_group(&s->where[i], s->texts[i])) {
			snprintf(q->err, sizeof q->err, "bad where '%s': expected "
			         "key=value pairs joined by ','", value ? value : "");
			q->bad = 1;
		}
	} else {
		snprintf(q->err, sizeof q->err, "unknown query parameter '%s' "
		         "(from, to, where)", key);
		q->bad = 1;
	}
	return q->bad ? MHD_NO : MHD_YES;
}

static enum MHD_Result get_events(serve_http *h, struct MHD_Connection *conn)
{
	serve_ctx *c = h->c;
	stream *s = calloc(1, sizeof *s);
	query q = {.s = s, .from = 0, .to = INT64_MAX};
	tdm_read_options ro = TDM_READ_OPTIONS_INIT;
	int n = mhd->get_connection_values(conn, MHD_GET_ARGUMENT_KIND, NULL,
	                                   NULL);
	if (!s)
		return MHD_NO;
	s->c = c;
	q.n_args = n > 0 ? (size_t)n : 1;
	s->where = calloc(q.n_args, sizeof *s->where);
	s->texts = calloc(q.n_args, sizeof *s->texts);
	if (!s->where || !s->texts) {
		stream_free(s);
		return MHD_NO;
	}
	mhd->get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_arg, &q);
	if (q.bad) {
		stream_free(s);
		return respond_error(h, conn, SRC_READ, MHD_HTTP_BAD_REQUEST,
		                     q.err);
	}
	ro.where = s->where;
	ro.n_where = s->n_where;
	pthread_mutex_lock(&c->lock);
	int rc = c->store && !c->failed ?
	         tdm_iter_open(&s->it, c->store, q.from, q.to, &ro) : TDM_EFAILED;
	if (rc == 0)
		c->open_iters++;
	else
		snprintf(q.err, sizeof q.err, "%s", c->store && !c->failed ?
		         tdm_error_message() : "the store is recovering from a "
		         "write failure; retry later");
	pthread_mutex_unlock(&c->lock);
	if (rc) {
		s->it = NULL;
		stream_free(s);
		return respond_error(h, conn, SRC_READ, rc == TDM_EINVAL ?
		                     MHD_HTTP_BAD_REQUEST :
		                     MHD_HTTP_SERVICE_UNAVAILABLE, q.err);
	}
	struct MHD_Response *r = mhd->create_response_from_callback(
		MHD_SIZE_UNKNOWN, STREAM_CHUNK, stream_read, s, stream_free);
	if (!r) {
		stream_free(s);
		return MHD_NO;
	}
	mhd->add_response_header(r, "Content-Type", "application/x-ndjson");
	enum MHD_Result ok = mhd->queue_response(conn, MHD_HTTP_OK, r);
	mhd->destroy_response(r);
	return ok;
}

static enum MHD_Result get_metrics(serve_http *h, struct MHD_Connection *conn)
{
	tdm_stat st;
	ndjson_buf b = {0};
	int have = serve_stat(&st, h->c) == 0;
	if (metrics_render(&b, &h->c->m, have ? &st : NULL)) {
		ndjson_buf_free(&b);
		return MHD_NO;
	}
	enum MHD_Result r = respond(conn, MHD_HTTP_OK,
	                            "text/plain; version=0.0.4", b.data, b.len);
	ndjson_buf_free(&b);
	return r;
}

/* ---- Dispatch ---------------------------------------------------------- */

/* The first call of a request: its headers are in. Returns 1 when a
 * response was queued (or the connection must close: *res). */
static int start_request(serve_http *h, struct MHD_Connection *conn,
                         request *rq, const char *url, const char *method,
                         enum MHD_Result *res)
{
	serve_ctx *c = h->c;
	int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	int post = strcmp(method, "POST") == 0;
	enum metrics_source src = SRC_READ;
	rq->route = R_OTHER;
	if (strcmp(url, "/healthz") == 0) {
		*res = respond(conn, MHD_HTTP_OK, "text/plain", "ok\n", 3);
		return 1;
	}
	if (strcmp(url, "/v1/events") == 0 && post) {
		rq->route = R_POST_EVENTS;
		src = SRC_EVENTS;
	} else if (strcmp(url, "/loki/api/v1/push") == 0 && post) {
		rq->route = R_LOKI;
		src = SRC_LOKI;
	}
	atomic_fetch_add(&c->m.requests[src], 1);
	if (!authorized(c, conn)) {
		*res = respond_error(h, conn, src, MHD_HTTP_UNAUTHORIZED,
		                     "missing or bad bearer token "
		                     "(Authorization: Bearer TOKEN)");
		return 1;
	}
	if (rq->route == R_OTHER) {
		if (strcmp(url, "/v1/events") == 0 && get)
			*res = get_events(h, conn);
		else if (strcmp(url, "/metrics") == 0 && get)
			*res = get_metrics(h, conn);
		else if (strcmp(url, "/v1/events") == 0 ||
		         strcmp(url, "/metrics") == 0 ||
		         strcmp(url, "/loki/api/v1/push") == 0)
			*res = respond_error(h, conn, src,
			                     MHD_HTTP_METHOD_NOT_ALLOWED,
			                     "method not allowed on this path");
		else
			*res = respond_error(h, conn, src, MHD_HTTP_NOT_FOUND,
			                     "no such path (POST /v1/events, POST "
			                     "/loki/api/v1/push, GET /v1/events, "
			                     "GET /metrics, GET /healthz)");
		return 1;
	}
	const char *enc = mhd->lookup_connection_value(conn, MHD_HEADER_KIND,
	                                               "Content-Encoding");
	if (enc && (strcasecmp(enc, "gzip") == 0 ||
	            strcasecmp(enc, "x-gzip") == 0)) {
		rq->gzip = 1;
	} else if (enc && strcasecmp(enc, "identity") != 0) {
		*res = respond_error(h, conn, src,
		                     MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		                     "unsupported Content-Encoding (gzip or "
		                     "none)");
		return 1;
	}
	const char *type = mhd->lookup_connection_value(conn, MHD_HEADER_KIND,
	                                                "Content-Type");
	if (rq->route == R_LOKI && type &&
	    strncasecmp(type, "application/x-protobuf", 22) == 0) {
		*res = respond_error(h, conn, src,
		                     MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		                     "Loki's protobuf push is not supported: send "
		                     "JSON (Content-Type: application/json)");
		return 1;
	}
	const char *cl = mhd->lookup_connection_value(conn, MHD_HEADER_KIND,
	                                              "Content-Length");
	if (cl && strtoull(cl, NULL, 10) > c->max_body) {
		char msg[128];
		snprintf(msg, sizeof msg, "body larger than the limit of %zu "
		         "bytes", c->max_body);
		*res = respond_error(h, conn, src, MHD_HTTP_CONTENT_TOO_LARGE, msg);
		return 1;
	}
	return 0;
}

/* A chunk of body: kept, or the request refused as too large or too
 * slow. */
static enum MHD_Result take_body(serve_http *h, struct MHD_Connection *conn,
                                 request *rq, const char *data, size_t n)
{
	serve_ctx *c = h->c;
	enum metrics_source src = rq->route == R_LOKI ? SRC_LOKI : SRC_EVENTS;
	if (serve_now_us() - rq->start_us > (uint64_t)c->request_timeout * 1000000) {
		atomic_fetch_add(&c->m.request_errors[src], 1);
		return MHD_NO; /* close: no reply can be sent mid-body */
	}
	if (rq->too_large || rq->len + n > c->max_body) {
		/* libmicrohttpd replies only once the body is in: the rest is
		 * read and dropped (within the request timeout), then 413. */
		rq->too_large = 1;
		return MHD_YES;
	}
	if (rq->len + n > rq->cap) {
		size_t cap = rq->cap ? rq->cap : 65536;
		while (cap < rq->len + n)
			cap *= 2;
		if (cap > c->max_body)
			cap = c->max_body;
		char *p = realloc(rq->body, cap);
		if (!p)
			return MHD_NO;
		rq->body = p;
		rq->cap = cap;
	}
	memcpy(rq->body + rq->len, data, n);
	rq->len += n;
	return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
	serve_http *h = cls;
	request *rq = *con_cls;
	enum MHD_Result res = MHD_YES;
	(void)version;
	if (!rq) {
		if (!(rq = calloc(1, sizeof *rq)))
			return MHD_NO;
		*con_cls = rq;
		atomic_fetch_add(&h->busy, 1);
		rq->start_us = serve_now_us();
		if (start_request(h, conn, rq, url, method, &res))
			rq->refused = 1;
		return res;
	}
	if (rq->refused) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		res = take_body(h, conn, rq, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return res;
	}
	rq->refused = 1;
	if (rq->too_large) {
		char msg[128];
		snprintf(msg, sizeof msg, "body larger than the limit of %zu "
		         "bytes", h->c->max_body);
		return respond_error(h, conn, rq->route == R_LOKI ? SRC_LOKI :
		                     SRC_EVENTS, MHD_HTTP_CONTENT_TOO_LARGE, msg);
	}
	return finish_post(h, conn, rq);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
	serve_http *h = cls;
	request *rq = *con_cls;
	(void)conn;
	(void)toe;
	if (!rq)
		return;
	free(rq->body);
	free(rq);
	*con_cls = NULL;
	atomic_fetch_sub(&h->busy, 1);
}

int serve_http_load(char *err, size_t errlen)
{
	return (mhd = mhd_load(err, errlen)) ? 0 : -1;
}

int serve_http_start(serve_http **out, serve_ctx *c, int listen_fd)
{
	serve_http *h;
	if (!mhd || !(h = calloc(1, sizeof *h)))
		return -1;
	h->c = c;
	h->d = mhd->start_daemon(
		MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC, 0, NULL, NULL,
		handle, h,
		MHD_OPTION_LISTEN_SOCKET, listen_fd,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS,
		MHD_OPTION_CONNECTION_LIMIT, c->max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, c->idle_timeout,
		/* Headers and the request line must fit in this. */
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64u << 10),
		MHD_OPTION_NOTIFY_COMPLETED, completed, h,
		MHD_OPTION_END);
	if (!h->d) {
		free(h);
		return -1;
	}
	*out = h;
	return 0;
}

void serve_http_quiesce(serve_http *h)
{
	MHD_socket fd = mhd->quiesce_daemon(h->d);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
}

unsigned serve_http_busy(serve_http *h)
{
	return atomic_load(&h->busy);
}

void serve_http_stop(serve_http *h)
{
	if (!h)
		return;
	mhd->stop_daemon(h->d);
	free(h);
}
