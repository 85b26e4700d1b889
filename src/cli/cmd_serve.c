/*
 * cmd_serve.c - `tidemark serve DIR`: one long-running writer holding the
 * store, taking events over HTTP (serve_http.c) and syslog over TCP
 * (serve_syslog.c). It holds the store's writer lock for its lifetime.
 *
 * SIGTERM or SIGINT stops it gracefully: no new connections, the requests
 * in progress finish (their batches are committed and answered), the
 * syslog receiver commits the whole messages it holds, the store is synced
 * and closed, exit 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "serve.h"
#include "timefmt.h"

static const char usage[] =
	"tidemark serve DIR [--http ADDR:PORT|off] [--syslog ADDR:PORT] "
	"[--token-file FILE] [--durability none|interval|batch] "
	"[--max-body BYTES] [--max-line BYTES] [--idle-timeout D] "
	"[--request-timeout D] [--max-connections N]";

#define STOP_WAIT_US (10u * 1000000) /* for requests in progress at stop */

typedef struct serve_args {
	const char *dir;
	const char *http;   /* NULL: off */
	const char *syslog; /* NULL: off */
	const char *token_file;
} serve_args;

static int wake_pipe[2] = {-1, -1};
static serve_ctx ctx;

static void on_signal(int sig)
{
	int saved = errno;
	(void)sig;
	ctx.stopping = 1;
	if (write(wake_pipe[1], "x", 1) < 0) {
		/* the main loop also wakes every second */
	}
	errno = saved;
}

/* "64m", "512k", "1g" or plain bytes; 1 .. max. */
static int parse_bytes(size_t *out, const char *name, const char *v,
                       size_t max)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	unsigned shift = 0;
	if (*end == 'k' || *end == 'K')
		shift = 10;
	else if (*end == 'm' || *end == 'M')
		shift = 20;
	else if (*end == 'g' || *end == 'G')
		shift = 30;
	if (shift)
		end++;
	if (*v < '0' || *v > '9' || *end || errno || n == 0 ||
	    n > (max >> shift))
		return cli_usage_error(usage, "bad %s '%s': expected 1 to %zu "
		                       "bytes (k, m, g suffixes allowed)", name,
		                       v, max);
	*out = (size_t)(n << shift);
	return 0;
}

static int parse_count(unsigned *out, const char *name, const char *v,
                       unsigned max)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (*v < '0' || *v > '9' || *end || errno || n == 0 || n > max)
		return cli_usage_error(usage, "bad %s '%s': expected 1 to %u",
		                       name, v, max);
	*out = (unsigned)n;
	return 0;
}

static int parse_seconds(unsigned *out, const char *name, const char *v)
{
	int64_t ns;
	const char *msg = tf_parse_duration(v, &ns);
	if (msg || ns < 1000000000 || ns > INT64_C(86400) * 1000000000)
		return cli_usage_error(usage, "bad %s '%s': expected a duration "
		                       "of 1s to 1d", name, v);
	*out = (unsigned)(ns / 1000000000);
	return 0;
}

static int parse_durability(int *out, const char *v)
{
	static const char *const names[] = {"none", "interval", "batch"};
	for (int i = 0; i < 3; i++) {
		if (strcmp(v, names[i]) == 0) {
			*out = i; /* TDM_DURABILITY_NONE, _INTERVAL, _BATCH */
			return 0;
		}
	}
	return cli_usage_error(usage, "bad --durability '%s': expected none, "
	                       "interval or batch", v);
}

static int parse_option(serve_args *sa, cli_argv *a, int *rc)
{
	const char *v;
	int r;
	*rc = 0;
	if ((r = cli_option(a, "--http", &v)) > 0)
		sa->http = strcmp(v, "off") == 0 ? NULL : v;
	else if (!r && (r = cli_option(a, "--syslog", &v)) > 0)
		sa->syslog = v;
	else if (!r && (r = cli_option(a, "--token-file", &v)) > 0)
		sa->token_file = v;
	else if (!r && (r = cli_option(a, "--durability", &v)) > 0)
		*rc = parse_durability(&ctx.oo.durability, v);
	else if (!r && (r = cli_option(a, "--max-body", &v)) > 0)
		*rc = parse_bytes(&ctx.max_body, "--max-body", v, (size_t)1 << 32);
	else if (!r && (r = cli_option(a, "--max-line", &v)) > 0)
		*rc = parse_bytes(&ctx.max_line, "--max-line", v, TDM_MAX_PAYLOAD);
	else if (!r && (r = cli_option(a, "--idle-timeout", &v)) > 0)
		*rc = parse_seconds(&ctx.idle_timeout, "--idle-timeout", v);
	else if (!r && (r = cli_option(a, "--request-timeout", &v)) > 0)
		*rc = parse_seconds(&ctx.request_timeout, "--request-timeout", v);
	else if (!r && (r = cli_option(a, "--max-connections", &v)) > 0)
		*rc = parse_count(&ctx.max_connections, "--max-connections", v,
		                  65536);
	if (r < 0)
		*rc = cli_bad_argument(a, usage, 1);
	return r != 0;
}

static int parse_args(serve_args *sa, int argc, char **argv)
{
	cli_argv a = {argc, argv, 1, 0};
	sa->http = "127.0.0.1:3100";
	/* Every option here is the network server's: `--stdio` never gets
	 * this far (see cmd_serve). */
	while (a.i < argc) {
		int rc;
		if (parse_option(sa, &a, &rc)) {
			if (rc)
				return rc;
			continue;
		}
		if (!sa->dir && cli_operand(&a, &sa->dir))
			continue;
		if (a.i < argc)
			return cli_bad_argument(&a, usage, 0);
	}
	if (!sa->dir)
		return cli_usage_error(usage, "missing DIR");
	if (!sa->http && !sa->syslog)
		return cli_usage_error(usage, "nothing to serve: --http off and "
		                       "no --syslog");
	return 0;
}

/* One token per line; blank lines and lines starting with '#' skipped. */
static int read_tokens(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	if (!f) {
		cli_error("--token-file %s: %s", path, strerror(errno));
		return EXIT_USAGE;
	}
	while (fgets(line, sizeof line, f)) {
		size_t n = strcspn(line, "\r\n");
		char *t = line, **p;
		line[n] = '\0';
		while (*t == ' ' || *t == '\t')
			t++;
		n = strlen(t);
		while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
			t[--n] = '\0';
		if (n == 0 || *t == '#')
			continue;
		if (!(p = realloc(ctx.tokens, (ctx.n_tokens + 1) * sizeof *p)) ||
		    !(p[ctx.n_tokens] = strdup(t))) {
			fclose(f);
			cli_error("out of memory");
			return EXIT_IOERR;
		}
		ctx.tokens = p;
		ctx.n_tokens++;
	}
	fclose(f);
	if (ctx.n_tokens == 0) {
		cli_error("--token-file %s holds no token", path);
		return EXIT_USAGE;
	}
	return 0;
}

/* Binds and listens on "ADDR:PORT" ("[::1]:3100" for IPv6); prints where
 * (with the real port, when PORT was 0). Returns the socket or -1. */
static int listen_on(const char *spec, const char *what, int *loopback)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = {0}, *ai;
	size_t hl;
	int fd, one = 1, rc;
	if (!colon || colon == spec || !colon[1]) {
		cli_usage_error(usage, "bad --%s '%s': expected ADDR:PORT", what,
		                spec);
		return -1;
	}
	hl = (size_t)(colon - spec);
	if (spec[0] == '[' && colon[-1] == ']') {
		spec++;
		hl -= 2;
	}
	if (hl >= sizeof host) {
		cli_usage_error(usage, "bad --%s '%s'", what, spec);
		return -1;
	}
	memcpy(host, spec, hl);
	host[hl] = '\0';
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &ai))) {
		cli_usage_error(usage, "bad --%s '%s': %s (a numeric address "
		                "and port)", what, spec, gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
	                         sizeof one) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 512)) {
		cli_error("--%s %s: %s", what, spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char addr[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, addr, sizeof addr);
		port = ntohs(in->sin_port);
		*loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof addr);
		port = ntohs(in6->sin6_port);
		*loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	fprintf(stderr, "tidemark: %s listening on %s%s%s:%u\n", what,
	        ss.ss_family == AF_INET6 ? "[" : "", addr,
	        ss.ss_family == AF_INET6 ? "]" : "", port);
	return fd;
}

/* Waits for a stop signal. */
static void wait_for_stop(void)
{
	struct pollfd p = {.fd = wake_pipe[0], .events = POLLIN};
	while (!ctx.stopping)
		poll(&p, 1, 1000);
}

static int run(const serve_args *sa)
{
	serve_http *http = NULL;
	serve_syslog *sl = NULL;
	int http_fd = -1, syslog_fd = -1, loop = 1, rc;
	char err[1024];
	/* The HTTP library is loaded only now, and only for --http: no
	 * other command, nor `serve --stdio`, maps it (mhd_load.h). */
	if (sa->http && serve_http_load(err, sizeof err)) {
		cli_error("%s (the HTTP server needs it: install libmicrohttpd12, "
		          "or serve syslog only with --http off)", err);
		return EXIT_IOERR;
	}
	if (sa->http && (http_fd = listen_on(sa->http, "http", &loop)) < 0)
		return EXIT_USAGE;
	if (sa->http && !loop && ctx.n_tokens == 0)
		fprintf(stderr, "tidemark: warning: HTTP on a non-loopback "
		        "address without --token-file: anyone who can reach it "
		        "can write and read the store\n");
	if (sa->syslog && (syslog_fd = listen_on(sa->syslog, "syslog", &loop)) < 0) {
		if (http_fd >= 0)
			close(http_fd);
		return EXIT_USAGE;
	}
	if ((rc = serve_store_open(&ctx))) {
		if (http_fd >= 0)
			close(http_fd);
		if (syslog_fd >= 0)
			close(syslog_fd);
		return cli_lib_error(rc);
	}
	/* The server threads never take the stop signals: the main thread
	 * does, in wait_for_stop. */
	sigset_t stop_sigs, old;
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGTERM);
	sigaddset(&stop_sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_sigs, &old);
	int started = !(http_fd >= 0 && serve_http_start(&http, &ctx, http_fd)) &&
	              !(syslog_fd >= 0 && serve_syslog_start(&sl, &ctx, syslog_fd));
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!started) {
		cli_error("cannot start the %s server", http ? "syslog" : "HTTP");
		ctx.stopping = 1;
		serve_syslog_stop(sl);
		serve_http_stop(http);
		serve_store_close(&ctx);
		return EXIT_IOERR;
	}
	fprintf(stderr, "tidemark: serving %s (pid %ld)\n", sa->dir,
	        (long)getpid());
	wait_for_stop();
	fprintf(stderr, "tidemark: stopping\n");
	if (http) {
		serve_http_quiesce(http);
		uint64_t t0 = serve_now_us();
		while (serve_http_busy(http) && serve_now_us() - t0 < STOP_WAIT_US)
			usleep(10000);
	}
	serve_syslog_stop(sl);
	serve_http_stop(http);
	rc = serve_store_close(&ctx);
	if (rc)
		return cli_lib_error(rc);
	fprintf(stderr, "tidemark: stopped\n");
	return EXIT_OK;
}

/* `serve DIR` over HTTP and syslog. */
static int serve_network(int argc, char **argv)
{
	serve_args sa = {0};
	struct sigaction act = {0};
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	int rc;
	ctx.oo = oo;
	/* A 2xx means stored: sync each request's batch by default. */
	ctx.oo.durability = TDM_DURABILITY_BATCH;
	ctx.max_body = 64u << 20;
	ctx.max_line = 64u << 10;
	ctx.idle_timeout = 30;
	ctx.request_timeout = 60;
	ctx.max_connections = 256;
	pthread_mutex_init(&ctx.lock, NULL);
	if ((rc = parse_args(&sa, argc, argv)))
		return rc;
	ctx.dir = sa.dir;
	if (sa.token_file && (rc = read_tokens(sa.token_file)))
		return rc;
	if (pipe(wake_pipe)) {
		cli_error("pipe: %s", strerror(errno));
		return EXIT_IOERR;
	}
	act.sa_handler = on_signal;
	sigemptyset(&act.sa_mask);
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = run(&sa);
	for (size_t i = 0; i < ctx.n_tokens; i++)
		free(ctx.tokens[i]);
	free(ctx.tokens);
	return rc;
}

int cmd_serve(int argc, char **argv)
{
	/* `serve --stdio DIR` (replica repair over stdin and stdout) is another
	 * mode of this command, dispatched before any of the network server is
	 * set up or its options parsed. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--stdio") == 0)
			return cmd_serve_stdio(argc, argv);
	}
	return serve_network(argc, argv);
}
