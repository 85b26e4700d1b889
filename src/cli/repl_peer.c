/*
 * repl_peer.c - local and remote replica sides behind one interface.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "repl_peer.h"

/* ---- local: the server's frames are queued for peer_recv ---------------- */

static int queue_frame(void *ctx, const wbuf *frame)
{
	frame_queue *q = ctx;
	if (q->n == q->cap) {
		size_t cap = q->cap ? 2 * q->cap : 4;
		wbuf *f = realloc(q->frames, cap * sizeof *f);
		if (!f)
			return -1;
		memset(f + q->cap, 0, (cap - q->cap) * sizeof *f);
		q->frames = f;
		q->cap = cap;
	}
	wbuf *f = &q->frames[q->n];
	wbuf_reset(f);
	wbuf_bytes(f, frame->data, frame->len);
	if (f->failed)
		return -1;
	q->n++;
	return 0;
}

/* ---- remote: a child process on two pipes ------------------------------ */

static void shell_quote(wbuf *b, const char *s)
{
	wbuf_u8(b, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			wbuf_bytes(b, "'\\''", 4);
		else
			wbuf_u8(b, (uint8_t)*s);
	}
	wbuf_u8(b, '\'');
}

static int spawn(peer *p, const char *host, const char *path, const char *remote_command)
{
	int in[2], out[2];
	if (pipe(in) || pipe(out)) {
		cli_error("%s: pipe: %s", p->label, strerror(errno));
		return EXIT_IOERR;
	}
	wbuf cmd = {0};
	if (!remote_command) {
		wbuf_bytes(&cmd, "tidemark serve --stdio ", 23);
		shell_quote(&cmd, path);
	}
	wbuf_u8(&cmd, 0);
	if (cmd.failed) {
		cli_error("out of memory");
		return EXIT_IOERR;
	}
	pid_t pid = fork();
	if (pid < 0) {
		cli_error("%s: fork: %s", p->label, strerror(errno));
		wbuf_free(&cmd);
		return EXIT_IOERR;
	}
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		if (remote_command)
			execl("/bin/sh", "sh", "-c", remote_command, "sh", host, path, (char *)NULL);
		else
			execlp("ssh", "ssh", "-e", "none", "--", host, (char *)cmd.data, (char *)NULL);
		fprintf(stderr, "tidemark: %s: cannot run %s: %s\n", p->label,
		        remote_command ? "/bin/sh" : "ssh", strerror(errno));
		_exit(127);
	}
	wbuf_free(&cmd);
	close(in[0]);
	close(out[1]);
	fcntl(in[1], F_SETFD, FD_CLOEXEC);
	fcntl(out[0], F_SETFD, FD_CLOEXEC);
	p->pid = pid;
	p->to_fd = in[1];
	p->from_fd = out[0];
	return 0;
}

/* "ssh:HOST:PATH"; HOST may be [v6 address]. 0, or -1 when malformed. */
static int parse_remote(char *host, size_t cap, const char **path, const char *spec)
{
	const char *h = spec + 4, *end;
	if (*h == '[') {
		end = strchr(h, ']');
		if (!end || end[1] != ':')
			return -1;
		end++;
	} else {
		end = strchr(h, ':');
	}
	if (!end || end == h || (size_t)(end - h) >= cap || !end[1])
		return -1;
	*path = end + 1;
	if (*h == '[') /* ssh wants the bare address */
		h++, end--;
	memcpy(host, h, (size_t)(end - h));
	host[end - h] = '\0';
	return 0;
}

/* Ends the remote side and says how it exited, for messages. The pipes
 * are closed first, so a side blocked on them ends; one that still does
 * not is killed after two seconds. */
static void reap(peer *p, char *out, size_t cap)
{
	out[0] = '\0';
	if (p->to_fd >= 0)
		close(p->to_fd);
	if (p->from_fd >= 0)
		close(p->from_fd);
	p->to_fd = p->from_fd = -1;
	if (p->pid <= 0)
		return;
	/* Up to 2 s for it to exit, looking again soon at first: a side that
	 * said goodbye exits within a millisecond or two. */
	int status = 0;
	pid_t got = 0;
	for (useconds_t waited = 0, step = 100;
	     (got = waitpid(p->pid, &status, WNOHANG)) == 0 && waited < 2000000;
	     waited += step, step = step < 10000 ? 2 * step : step)
		usleep(step);
	if (got == 0) {
		kill(p->pid, SIGKILL);
		got = waitpid(p->pid, &status, 0);
	}
	p->pid = 0;
	if (got <= 0)
		return;
	if (WIFEXITED(status))
		snprintf(out, cap, " (it exited with status %d)", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, cap, " (it was killed by signal %d)", WTERMSIG(status));
}

/* ---- the interface ---------------------------------------------------- */

static int error_reply(peer *p, rbuf *r);

int peer_send(peer *p, wbuf *req)
{
	wbuf_end_frame(req);
	if (req->failed) {
		cli_error("out of memory");
		return EXIT_IOERR;
	}
	p->bytes += req->len;
	if (!p->remote) {
		/* A failure leaves an ERROR frame queued for peer_recv. */
		repl_server_handle(&p->srv, req->data + 4, req->len - 4);
		return 0;
	}
	if (frame_write(p->to_fd, req) == 0)
		return 0;
	int err = errno;
	/* The side may have said why it hung up before we wrote. */
	const char *why;
	if (frame_read(p->from_fd, &p->reply, &why, 1000) == 0 && p->reply.len &&
	    p->reply.data[0] == REPL_ERROR) {
		rbuf r;
		rbuf_init(&r, p->reply.data + 1, p->reply.len - 1);
		char status[64];
		reap(p, status, sizeof status);
		p->ended = 1;
		return error_reply(p, &r);
	}
	char status[64];
	reap(p, status, sizeof status);
	p->ended = 1;
	cli_error("%s (%s): cannot send: %s%s", p->label, p->spec, strerror(err), status);
	return EXIT_IOERR;
}

static int error_reply(peer *p, rbuf *r)
{
	uint64_t code = rbuf_varint(r);
	size_t n = (size_t)rbuf_varint(r);
	const uint8_t *msg = rbuf_bytes(r, n);
	if (!rbuf_done(r) || n > 4096) {
		cli_error("%s (%s): malformed error reply", p->label, p->spec);
		return EXIT_IOERR;
	}
	int err = code > 0 && code < 64 ? -(int)code : TDM_ERROR;
	/* The text comes from the peer: no control bytes reach the terminal. */
	char text[4097];
	for (size_t i = 0; i < n; i++)
		text[i] = msg[i] < 0x20 || msg[i] == 0x7f ? '?' : (char)msg[i];
	text[n] = '\0';
	cli_error("%s (%s): %s", p->label, p->spec, text);
	return cli_exit_code(err);
}

int peer_recv(peer *p, rbuf *r, uint8_t type)
{
	if (!p->remote) {
		frame_queue *q = &p->queue;
		if (q->head == q->n) {
			cli_error("%s (%s): no reply", p->label, p->spec);
			return EXIT_IOERR;
		}
		wbuf *f = &q->frames[q->head++];
		if (q->head == q->n)
			q->head = q->n = 0;
		wbuf_reset(&p->reply);
		wbuf_bytes(&p->reply, f->data + 4, f->len - 4);
		if (p->reply.failed) {
			cli_error("out of memory");
			return EXIT_IOERR;
		}
	} else {
		const char *why;
		if (frame_read(p->from_fd, &p->reply, &why, p->timeout_ms)) {
			char status[64];
			reap(p, status, sizeof status);
			p->ended = 1;
			cli_error("%s (%s): %s%s", p->label, p->spec, why, status);
			return EXIT_IOERR;
		}
	}
	p->bytes += 4 + p->reply.len;
	rbuf_init(r, p->reply.data + 1, p->reply.len - 1);
	if (p->reply.data[0] == REPL_ERROR) {
		p->ended = 1;
		return error_reply(p, r);
	}
	if (p->reply.data[0] != type) {
		p->ended = 1;
		cli_error("%s (%s): reply of type %u where %u was expected", p->label, p->spec,
		          p->reply.data[0], type);
		return EXIT_IOERR;
	}
	return 0;
}

/* A reply that did not parse: the peer is not speaking our protocol. */
int peer_bad_reply(peer *p, rbuf *r)
{
	p->ended = 1; /* not our protocol: say nothing more to it */
	cli_error("%s (%s): malformed reply: %s at byte %zu", p->label, p->spec,
	          r->err ? r->err : "bytes left over", r->err_at + 1);
	return EXIT_IOERR;
}

static int open_side(peer *p, const char *label, const char *spec,
                     const char *remote_command, int timeout_ms)
{
	memset(p, 0, sizeof *p);
	p->timeout_ms = timeout_ms;
	p->label = label;
	p->spec = spec;
	p->to_fd = p->from_fd = -1;
	int rc;
	if (strncmp(spec, "ssh:", 4) == 0) {
		char host[256];
		const char *path;
		if (parse_remote(host, sizeof host, &path, spec)) {
			cli_error("%s: '%s' is not ssh:HOST:PATH", label, spec);
			return EXIT_USAGE;
		}
		p->remote = 1;
		signal(SIGPIPE, SIG_IGN); /* a dead peer is an error, not a death */
		if ((rc = spawn(p, host, path, remote_command)))
			return rc;
	} else {
		int e = repl_server_open(&p->srv, spec);
		if (e) {
			cli_error("%s (%s): %s", label, spec, tdm_error_message());
			return cli_exit_code(e);
		}
		p->srv_open = 1;
		p->srv.emit = queue_frame;
		p->srv.emit_ctx = &p->queue;
	}
	wbuf req = {0};
	wbuf_frame(&req, REPL_HELLO);
	wbuf_bytes(&req, REPL_MAGIC, strlen(REPL_MAGIC));
	wbuf_u8(&req, REPL_VERSION);
	rbuf r;
	rc = peer_send(p, &req);
	wbuf_free(&req);
	if (rc || (rc = peer_recv(p, &r, REPL_HELLO | REPL_REPLY)))
		return rc;
	uint8_t version = rbuf_u8(&r);
	p->shard_duration = rbuf_i64(&r);
	rbuf_i64(&r); /* its grace: replicas may differ in it */
	uint8_t leaf_level = rbuf_u8(&r), fanout = rbuf_u8(&r);
	if (!rbuf_done(&r))
		return peer_bad_reply(p, &r);
	if (version != REPL_VERSION || leaf_level != TDM_DIGEST_LEAF_LEVEL ||
	    fanout != TDM_DIGEST_FANOUT || p->shard_duration <= 0) {
		cli_error("%s (%s): speaks protocol %u with a %u-level digest tree of fan-out "
		          "%u; this tidemark speaks %d with %d and %d",
		          label, spec, version, leaf_level, fanout, REPL_VERSION,
		          TDM_DIGEST_LEAF_LEVEL, TDM_DIGEST_FANOUT);
		return EXIT_USAGE;
	}
	return 0;
}

int peer_open(peer *p, const char *label, const char *spec, const char *remote_command,
              int timeout_ms)
{
	int rc = open_side(p, label, spec, remote_command, timeout_ms);
	if (rc)
		p->ended = 1; /* no goodbye to a side that never said hello */
	return rc;
}

int peer_close(peer *p)
{
	int rc = 0;
	if (!p->ended && (p->remote ? p->to_fd >= 0 : p->srv_open)) {
		wbuf req = {0};
		rbuf r;
		wbuf_frame(&req, REPL_BYE);
		rc = peer_send(p, &req);
		if (!rc)
			rc = peer_recv(p, &r, REPL_BYE | REPL_REPLY);
		wbuf_free(&req);
	}
	if (p->srv_open) {
		int e = repl_server_close(&p->srv);
		if (e && !rc) {
			cli_error("%s (%s): %s", p->label, p->spec, tdm_error_message());
			rc = cli_exit_code(e);
		}
	}
	if (p->remote) {
		char status[64];
		reap(p, status, sizeof status);
	}
	for (size_t i = 0; i < p->queue.cap; i++)
		wbuf_free(&p->queue.frames[i]);
	free(p->queue.frames);
	wbuf_free(&p->reply);
	memset(p, 0, sizeof *p);
	return rc;
}

typedef struct both_job {
	int (*fn)(int side, void *arg);
	void *arg;
	int rc;
} both_job;

/* Side 1's thread, started at the first peer_both and kept: a sync runs a
 * dozen steps, and a thread made and joined for each cost about as much
 * as a small step's work. It runs one job at a time, handed over under
 * the mutex; it lives until the process exits. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int state; /* 0: not started, 1: running, -1: could not start */
	both_job *job; /* the job to run, NULL once done */
} side1 = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NULL};

static void *side_one(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&side1.mu);
	for (;;) {
		while (!side1.job)
			pthread_cond_wait(&side1.cv, &side1.mu);
		both_job *j = side1.job;
		pthread_mutex_unlock(&side1.mu);
		j->rc = j->fn(1, j->arg);
		pthread_mutex_lock(&side1.mu);
		side1.job = NULL;
		pthread_cond_broadcast(&side1.cv);
	}
	return NULL;
}

int peer_both(int (*fn)(int side, void *arg), void *arg)
{
	both_job j = {fn, arg, 0};
	pthread_mutex_lock(&side1.mu);
	if (side1.state == 0) {
		pthread_t t;
		side1.state = pthread_create(&t, NULL, side_one, NULL) == 0 ? 1 : -1;
		if (side1.state == 1)
			pthread_detach(t);
	}
	int threaded = side1.state == 1;
	if (threaded) {
		side1.job = &j;
		pthread_cond_broadcast(&side1.cv);
	}
	pthread_mutex_unlock(&side1.mu);
	int rc = fn(0, arg);
	if (threaded) {
		pthread_mutex_lock(&side1.mu);
		while (side1.job)
			pthread_cond_wait(&side1.cv, &side1.mu);
		pthread_mutex_unlock(&side1.mu);
	} else {
		j.rc = fn(1, arg);
	}
	return rc ? rc : j.rc;
}
