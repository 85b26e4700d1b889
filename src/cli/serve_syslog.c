/*
 * serve_syslog.c - the syslog TCP receiver of `tidemark serve`: one thread
 * polling the listening socket and every connection.
 *
 * Each round reads what the ready connections sent, parses every whole
 * message (syslog_parse.c) and appends them all as one batch. Bytes leave
 * a connection's buffer only once their batch is committed: when the store
 * cannot write (a full disk), nothing is dropped, the buffers stay full,
 * reading stops (TCP pushes back on the sender) and the round is retried
 * a second later. Syslog has no replies, so a message that does not parse
 * is counted, reported on stderr and skipped; a broken frame closes its
 * connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"
#include "syslog_parse.h"

#define RETRY_MS 1000
#define MAX_REPORTS_PER_SEC 10

typedef struct conn {
	int fd;
	char *buf;
	size_t len, used; /* buf[0, used) is parsed, committed once ok */
	int eof, broken;
	uint64_t last_us;
} conn;

struct serve_syslog {
	serve_ctx *c;
	int listen_fd;
	int wake[2];
	pthread_t thread;
	conn *conns;
	size_t n, cap;
	size_t buf_cap;
	int stalled;            /* the last append failed: retry, read nothing */
	uint64_t report_sec;
	unsigned reports;
};

static void report(serve_syslog *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Reports on stderr, at most a few times a second: a sender of garbage
 * must not flood the log. */
static void report(serve_syslog *s, const char *fmt, ...)
{
	uint64_t sec = serve_now_us() / 1000000;
	va_list ap;
	if (sec != s->report_sec) {
		s->report_sec = sec;
		s->reports = 0;
	}
	if (s->reports++ >= MAX_REPORTS_PER_SEC)
		return;
	fputs("tidemark: syslog: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void close_conn(serve_syslog *s, size_t i)
{
	close(s->conns[i].fd);
	free(s->conns[i].buf);
	s->conns[i] = s->conns[--s->n];
}

static void accept_conns(serve_syslog *s)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL,
		                 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (s->n >= s->c->max_connections) {
			report(s, "refusing a connection: %u open already",
			       s->c->max_connections);
			close(fd);
			continue;
		}
		if (s->n == s->cap) {
			size_t cap = s->cap ? s->cap * 2 : 16;
			conn *p = realloc(s->conns, cap * sizeof *p);
			if (!p) {
				close(fd);
				return;
			}
			s->conns = p;
			s->cap = cap;
		}
		conn *cn = &s->conns[s->n];
		memset(cn, 0, sizeof *cn);
		cn->fd = fd;
		cn->last_us = serve_now_us();
		if (!(cn->buf = malloc(s->buf_cap))) {
			close(fd);
			return;
		}
		s->n++;
	}
}

/* Reads what the socket holds, as long as the buffer has room. */
static void read_conn(serve_syslog *s, conn *cn)
{
	while (!cn->eof && cn->len < s->buf_cap) {
		ssize_t r = read(cn->fd, cn->buf + cn->len, s->buf_cap - cn->len);
		if (r > 0) {
			cn->len += (size_t)r;
			cn->last_us = serve_now_us();
		} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
			cn->eof = 1;
		} else if (errno == EAGAIN) {
			return;
		}
	}
}

/* Adds the whole messages of cn's buffer to the batch. */
static void parse_conn(serve_syslog *s, conn *cn, event_batch *b,
                       int64_t recv_ns)
{
	serve_ctx *c = s->c;
	char err[256];
	cn->used = 0;
	while (!cn->broken && cn->used < cn->len) {
		const char *msg;
		size_t mlen, used;
		int r = syslog_frame(&msg, &mlen, &used, cn->buf + cn->used,
		                     cn->len - cn->used, c->max_line, cn->eof,
		                     err, sizeof err);
		if (r == SYSLOG_FRAME_MORE)
			break;
		if (r == SYSLOG_FRAME_BAD) {
			report(s, "closing a connection: %s", err);
			atomic_fetch_add(&c->m.request_errors[SRC_SYSLOG], 1);
			cn->broken = 1;
			break;
		}
		cn->used += used;
		if (mlen == 0)
			continue;
		atomic_fetch_add(&c->m.requests[SRC_SYSLOG], 1);
		syslog_msg m;
		if (syslog_parse(&m, msg, mlen, recv_ns, err, sizeof err)) {
			report(s, "skipping a message: %s", err);
			atomic_fetch_add(&c->m.request_errors[SRC_SYSLOG], 1);
			continue;
		}
		char host[256], app[64];
		tdm_label l[4];
		size_t n = 0;
		if (m.host_len) {
			snprintf(host, sizeof host, "%.*s", (int)m.host_len, m.host);
			l[n++] = (tdm_label){"host", host};
		}
		if (m.app_len) {
			snprintf(app, sizeof app, "%.*s", (int)m.app_len, m.app);
			l[n++] = (tdm_label){"app", app};
		}
		l[n++] = (tdm_label){"severity", syslog_severity_name(m.severity)};
		l[n++] = (tdm_label){"facility", syslog_facility_name(m.facility)};
		tdm_event ev = {.ts = m.ts, .labels = l, .n_labels = n,
		                .payload = m.text, .payload_len = m.text_len};
		if (tdm_event_check(&ev) != 0) {
			report(s, "skipping a message: %s", tdm_error_message());
			atomic_fetch_add(&c->m.request_errors[SRC_SYSLOG], 1);
			continue;
		}
		/* Syslog messages carry no id: the content id, as `append`
		 * gives lines without one, so a message a sender repeats
		 * after a reconnect is stored once. */
		ev.id = tdm_event_content_id(&ev);
		if (event_batch_add(b, &ev)) {
			cn->used -= used; /* retried next round */
			break;
		}
	}
}

/* Parses every connection, appends the batch, and on success drops what
 * was committed and closes finished connections. */
static void round_trip(serve_syslog *s)
{
	event_batch b = {0};
	tdm_append_result res;
	char err[512];
	int64_t recv_ns = now_ns();
	for (size_t i = 0; i < s->n; i++)
		parse_conn(s, &s->conns[i], &b, recv_ns);
	int rc = serve_append(&res, s->c, &b, err, sizeof err);
	event_batch_free(&b);
	if (rc != SERVE_OK) {
		if (rc == SERVE_UNAVAILABLE) {
			if (!s->stalled)
				report(s, "store cannot write, holding messages "
				       "and retrying: %s", err);
			s->stalled = 1;
			return;
		}
		report(s, "dropping a batch: %s", err);
	}
	s->stalled = 0;
	uint64_t now = serve_now_us();
	uint64_t idle = (uint64_t)s->c->idle_timeout * 1000000;
	for (size_t i = s->n; i-- > 0;) {
		conn *cn = &s->conns[i];
		memmove(cn->buf, cn->buf + cn->used, cn->len - cn->used);
		cn->len -= cn->used;
		cn->used = 0;
		if (cn->len && now - cn->last_us > idle)
			report(s, "closing an idle connection with %zu bytes of "
			       "an unfinished message", cn->len);
		if (cn->broken || (cn->eof && cn->len == 0) ||
		    now - cn->last_us > idle)
			close_conn(s, i);
	}
}

static void *run(void *arg)
{
	serve_syslog *s = arg;
	struct pollfd *pf = NULL;
	size_t pf_cap = 0;
	while (!s->c->stopping) {
		size_t n = 0, need = s->n + 2;
		if (need > pf_cap) {
			struct pollfd *p = realloc(pf, need * sizeof *p);
			if (!p)
				break;
			pf = p;
			pf_cap = need;
		}
		pf[n++] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
		for (size_t i = 0; i < s->n; i++)
			pf[n++] = (struct pollfd){
				.fd = s->conns[i].fd,
				.events = !s->stalled && !s->conns[i].eof &&
				          s->conns[i].len < s->buf_cap ? POLLIN : 0};
		int r = poll(pf, n, s->stalled ? RETRY_MS : 1000);
		if (r < 0 && errno != EINTR)
			break;
		if (pf[1].revents & POLLIN)
			accept_conns(s);
		if (!s->stalled)
			for (size_t i = 0; i < n - 2 && i < s->n; i++)
				if (pf[i + 2].revents)
					read_conn(s, &s->conns[i]);
		round_trip(s);
	}
	/* Stopping: read what the connections already sent, commit the whole
	 * messages, close. */
	for (size_t i = 0; i < s->n; i++)
		read_conn(s, &s->conns[i]);
	round_trip(s);
	while (s->n)
		close_conn(s, s->n - 1);
	free(pf);
	return NULL;
}

int serve_syslog_start(serve_syslog **out, serve_ctx *c, int listen_fd)
{
	serve_syslog *s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	s->c = c;
	s->listen_fd = listen_fd;
	/* A message, its octet count and a newline. */
	s->buf_cap = c->max_line + 16;
	fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
	if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK)) {
		free(s);
		return -1;
	}
	if (pthread_create(&s->thread, NULL, run, s)) {
		close(s->wake[0]);
		close(s->wake[1]);
		free(s);
		return -1;
	}
	*out = s;
	return 0;
}

void serve_syslog_stop(serve_syslog *s)
{
	if (!s)
		return;
	if (write(s->wake[1], "x", 1) < 0) {
		/* The thread also checks `stopping` each second. */
	}
	pthread_join(s->thread, NULL);
	close(s->listen_fd);
	close(s->wake[0]);
	close(s->wake[1]);
	free(s->conns);
	free(s);
}
