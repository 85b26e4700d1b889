/*
 * loggen.c - tidemark-loggen: a realistic, reproducible log stream for the
 * demo, as NDJSON event lines (SPEC §5) on stdout.
 *
 *   tidemark-loggen [--events N] [--seed S] [--base NS]
 *
 * Several hosts and services (labels host, service, level) log nginx access
 * lines, application lines with request ids, JSON documents, Postgres lines,
 * the odd multi-line stack trace, and now and then a binary frame that is
 * not UTF-8 (written as payload_b64). Like a real shipper's output it is
 * mostly in time order, but:
 *   ~10% of events are out of order, up to 30 s behind the newest;
 *    ~1% are late, 2 to 10 minutes behind the newest;
 *    ~2% of lines are exact re-sends of recent lines (at-least-once delivery).
 * N is the number of lines written, re-sends included.
 *
 * At the end one JSON line on stderr says what was generated, for the demo
 * to compare with what `tidemark append` reports. "late" is counted the way
 * a store with the default shard duration (1 h) and grace (60 s) judges it,
 * so the two agree even if the stream crosses a shard boundary.
 */
#define _XOPEN_SOURCE 700 /* gmtime_r */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL
#define SHARD_NS (3600 * NS_PER_S) /* the store's default shard duration */
#define GRACE_NS (60 * NS_PER_S)   /* and grace */
/* 2025-11-22T10:20:00Z: mid-shard, so late events stay in the same hour. */
#define DEFAULT_BASE 1763806800000000000LL
#define RESEND_WINDOW 256 /* re-sends pick among the last this many lines */
#define MAX_LINE 8192

/* ---- Randomness: splitmix64, reproducible from --seed ------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi]; the modulo bias is irrelevant for a demo. */
static int64_t between(int64_t lo, int64_t hi)
{
	return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static int chance(unsigned per_mille)
{
	return rnd() % 1000 < per_mille;
}

#define PICK(arr) ((arr)[rnd() % (sizeof(arr) / sizeof((arr)[0]))])

/* ---- Building one line ---------------------------------------------------- */

struct buf {
	char data[MAX_LINE];
	size_t len;
};

static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b->data + b->len, sizeof b->data - b->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		b->len += (size_t)n < sizeof b->data - b->len
		                  ? (size_t)n : sizeof b->data - b->len - 1;
}

static void put_bytes(struct buf *b, const void *p, size_t n)
{
	if (n > sizeof b->data - b->len - 1)
		n = sizeof b->data - b->len - 1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

/* A JSON string of UTF-8 text: quotes, backslashes and control bytes are
 * escaped; other bytes pass through. */
static void put_json_string(struct buf *b, const char *s, size_t n)
{
	put(b, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			put(b, "\\%c", c);
		else if (c == '\n')
			put(b, "\\n");
		else if (c == '\t')
			put(b, "\\t");
		else if (c < 0x20)
			put(b, "\\u%04x", c);
		else
			put_bytes(b, &s[i], 1);
	}
	put(b, "\"");
}

static void put_base64(struct buf *b, const unsigned char *p, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	put(b, "\"");
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		char q[4] = {tab[v >> 18], tab[(v >> 12) & 63],
		             i + 1 < n ? tab[(v >> 6) & 63] : '=',
		             i + 2 < n ? tab[v & 63] : '='};
		put_bytes(b, q, 4);
	}
	put(b, "\"");
}

/* ---- The sources ---------------------------------------------------------- */

struct source {
	const char *host;
	const char *service;
	uint32_t next_id; /* the shipper's line counter: our event id */
};

enum { NGINX, ORDERS, PAYMENTS, AUTH, POSTGRES, AGENT };

static struct source sources[] = {
	{"web-1", "nginx", 1},   {"web-2", "nginx", 1},
	{"web-3", "nginx", 1},   {"api-1", "orders", 1},
	{"api-2", "orders", 1},  {"api-3", "payments", 1},
	{"api-4", "auth", 1},    {"db-1", "postgres", 1},
	{"edge-1", "metrics-agent", 1},
};

/* A source, weighted like a real fleet: the web tier is the chattiest and
 * the binary metrics agent the rarest. */
static struct source *pick_source(void)
{
	uint64_t u = rnd() % 1000;
	if (u < 450)
		return &sources[u % 3];      /* web-1..3 */
	if (u < 650)
		return &sources[3 + u % 2];  /* api-1..2 orders */
	if (u < 770)
		return &sources[5];          /* payments */
	if (u < 870)
		return &sources[6];          /* auth */
	if (u < 990)
		return &sources[7];          /* postgres */
	return &sources[8];                  /* metrics agent */
}

static int kind_of(const struct source *s)
{
	static const char *const names[] = {"nginx", "orders", "payments",
	                                    "auth", "postgres",
	                                    "metrics-agent"};
	for (int k = 0; k < (int)(sizeof names / sizeof names[0]); k++)
		if (strcmp(s->service, names[k]) == 0)
			return k;
	return NGINX;
}

static const char *app_level(void)
{
	uint64_t u = rnd() % 100;
	return u < 85 ? "info" : u < 90 ? "debug" : u < 97 ? "warn" : "error";
}

static void iso_time(char *out, size_t n, int64_t ts)
{
	time_t secs = (time_t)(ts / NS_PER_S);
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t k = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + k, n - k, ".%03dZ", (int)(ts % NS_PER_S / NS_PER_MS));
}

static void request_id(char *out)
{
	snprintf(out, 17, "%016llx", (unsigned long long)rnd());
}

/* Writes a payload for source s at ts into p and sets *level. Returns its
 * length, or 0 with the bytes in bin[0 .. *bin_len) for a binary payload. */
static size_t make_payload(char *p, size_t cap, const char **level,
                           unsigned char *bin, size_t *bin_len,
                           const struct source *s, int64_t ts)
{
	static const char *const paths[] = {
		"/", "/api/v1/orders", "/api/v1/orders/%u", "/api/v1/cart",
		"/static/app.js", "/healthz", "/api/v1/payments/%u/capture",
		"/login", "/api/v1/search?q=caf%%C3%%A9"};
	static const char *const agents[] = {
		("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 "
		 "Firefox/120.0"),
		"curl/8.4.0", "kube-probe/1.28", "okhttp/4.12.0"};
	static const char *const users[] = {"alice", "bob", "José", "Zoë",
	                                    "søren", "李雷", "u-1932"};
	char when[40], rid[17], path[80], pg_when[40];
	iso_time(when, sizeof when, ts);
	/* Postgres writes "2025-11-22 10:20:00.059 UTC". */
	snprintf(pg_when, sizeof pg_when, "%.10s %.12s", when, when + 11);
	request_id(rid);

	switch (kind_of(s)) {
	case NGINX: {
		static const char *const months[] = {
			"Jan", "Feb", "Mar", "Apr", "May", "Jun",
			"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
		static const unsigned statuses[] = {
			200, 200, 200, 200, 200, 200, 200, 200, 200, 200,
			200, 200, 200, 200, 200, 200, 200, 200, 200, 200,
			200, 200, 200, 200, 200, 201, 201, 204, 204, 301,
			304, 304, 304, 404, 404, 404, 429, 200, 500, 502};
		time_t secs = (time_t)(ts / NS_PER_S);
		struct tm tm;
		gmtime_r(&secs, &tm);
		unsigned status = PICK(statuses);
		snprintf(path, sizeof path, PICK(paths),
		         (unsigned)between(1000, 99999));
		*level = status >= 500 ? "error" : status >= 400 ? "warn" : "info";
		return (size_t)snprintf(p, cap,
			"10.0.%u.%u - - [%02d/%s/%d:%02d:%02d:%02d +0000] "
			"\"%s %s HTTP/1.1\" %u %u \"-\" \"%s\" rt=%.3f "
			"req_id=%s",
			(unsigned)between(0, 9), (unsigned)between(2, 254),
			tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
			tm.tm_hour, tm.tm_min, tm.tm_sec,
			chance(800) ? "GET" : "POST", path, status,
			(unsigned)between(0, 48000), PICK(agents),
			(double)between(1, 900) / 1000.0, rid);
	}
	case ORDERS:
	case AUTH: {
		static const char *const info[] = {
			"order created", "order shipped", "cart updated",
			"session started", "token refreshed", "user logged in"};
		static const char *const bad[] = {
			"inventory service timeout after 2000ms",
			"order rejected: card expired",
			"invalid token signature", "rate limit exceeded"};
		*level = app_level();
		int err = strcmp(*level, "error") == 0;
		int n = snprintf(p, cap,
			"%s %-5s %s[%u]: request_id=%s user=%s msg=\"%s\" "
			"order_id=%u dur_ms=%u",
			when, *level, s->service, (unsigned)between(1000, 1200),
			rid, PICK(users), err || strcmp(*level, "warn") == 0
			                          ? PICK(bad) : PICK(info),
			(unsigned)between(1, 999999),
			(unsigned)between(1, 2500));
		/* Now and then an error carries its stack trace. */
		if (err && chance(500) && n > 0 && (size_t)n < cap)
			n += snprintf(p + n, cap - (size_t)n,
				"\nTraceback (most recent call last):\n"
				"\tFile \"/srv/app/orders.py\", line 214, "
				"in create\n\t\tstock.reserve(item)\n"
				"TimeoutError: inventory did not answer");
		return n > 0 ? (size_t)n : 0;
	}
	case PAYMENTS:
		/* This service logs JSON documents: JSON inside the payload. */
		*level = app_level();
		return (size_t)snprintf(p, cap,
			"{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\","
			"\"request_id\":\"%s\",\"amount\":%u.%02u,"
			"\"currency\":\"%s\",\"card\":\"**** %04u\"}",
			when, *level,
			strcmp(*level, "error") == 0 ? "payment declined"
			                             : "payment captured",
			rid, (unsigned)between(1, 900), (unsigned)between(0, 99),
			chance(700) ? "EUR" : "USD",
			(unsigned)between(0, 9999));
	case POSTGRES:
		if (chance(30)) {
			*level = "error";
			return (size_t)snprintf(p, cap,
				"%s UTC [%u] ERROR:  deadlock detected\n"
				"DETAIL:  Process %u waits for ShareLock on "
				"transaction %u.",
				pg_when, (unsigned)between(100, 9999),
				(unsigned)between(100, 9999),
				(unsigned)between(100000, 999999));
		}
		*level = chance(900) ? "info" : "warn";
		return (size_t)snprintf(p, cap,
			"%s UTC [%u] LOG:  duration: %.3f ms  statement: "
			"SELECT * FROM orders WHERE id = %u",
			pg_when, (unsigned)between(100, 9999),
			(double)between(10, 90000) / 1000.0,
			(unsigned)between(1, 999999));
	default:
		/* A binary metrics frame: length-prefixed, with 0xff markers,
		 * never valid UTF-8. */
		*level = "info";
		*bin_len = (size_t)between(24, 64);
		for (size_t i = 0; i < *bin_len; i++)
			bin[i] = (unsigned char)rnd();
		bin[0] = 0xff;
		bin[1] = (unsigned char)*bin_len;
		return 0;
	}
}

/* ---- The store's judgement, modelled ------------------------------------- */

/* Per-shard watermark of main files, as the store keeps it: SPEC §3. */
struct shard_mark {
	int64_t shard, max_ts;
};
static struct shard_mark marks[64];
static size_t n_marks;

/* Returns 1 if the store will call an event at ts late, and else records
 * it in its shard's watermark. */
static int judge_late(int64_t ts)
{
	int64_t shard = ts / SHARD_NS;
	for (size_t i = 0; i < n_marks; i++) {
		if (marks[i].shard != shard)
			continue;
		if (ts < marks[i].max_ts - GRACE_NS)
			return 1;
		if (ts > marks[i].max_ts)
			marks[i].max_ts = ts;
		return 0;
	}
	if (n_marks == sizeof marks / sizeof marks[0])
		n_marks--; /* forget one: the demo never comes near this */
	marks[n_marks++] = (struct shard_mark){shard, ts};
	return 0;
}

/* ---- Main ------------------------------------------------------------------ */

struct counts {
	unsigned long long lines, unique, in_order, out_of_order, late,
		duplicates, binary, errors;
};

static uint64_t parse_num(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end || errno) {
		fprintf(stderr, "tidemark-loggen: %s wants a number, not '%s'\n"
		        "usage: tidemark-loggen [--events N] [--seed S] "
		        "[--base NS]\n", opt, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	uint64_t n_lines = 20000, seed = 1;
	int64_t base = DEFAULT_BASE;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0) {
			puts("usage: tidemark-loggen [--events N] [--seed S] "
			     "[--base NS]");
			return 0;
		}
		if (i + 1 >= argc || (strcmp(a, "--events") && strcmp(a, "--seed")
		                      && strcmp(a, "--base"))) {
			fprintf(stderr, "tidemark-loggen: bad argument '%s'\n"
			        "usage: tidemark-loggen [--events N] [--seed S] "
			        "[--base NS]\n", a);
			return 2;
		}
		uint64_t v = parse_num(a, argv[++i]);
		if (strcmp(a, "--events") == 0)
			n_lines = v;
		else if (strcmp(a, "--seed") == 0)
			seed = v;
		else
			base = (int64_t)(v > INT64_MAX / 2 ? INT64_MAX / 2 : v);
	}
	rng_state = seed;

	/* The last RESEND_WINDOW lines, for re-sending. */
	static char *recent[RESEND_WINDOW];
	size_t n_recent = 0, next_slot = 0;
	struct counts c = {0};
	int64_t newest = base; /* newest ts of an in-order event so far */
	static struct buf line;
	static char payload[4096];
	static unsigned char bin[64];

	while (c.lines < n_lines) {
		/* At-least-once delivery: a shipper re-sends a short burst of
		 * lines it already sent (0.7% x ~3 lines = ~2%). */
		if (n_recent > 0 && chance(7)) {
			size_t burst = (size_t)between(1, 5);
			size_t back = (size_t)between(1, (int64_t)n_recent);
			if (burst > back)
				burst = back;
			for (size_t k = 0; k < burst && c.lines < n_lines; k++) {
				size_t slot = (next_slot + RESEND_WINDOW - back + k)
				              % RESEND_WINDOW;
				fputs(recent[slot], stdout);
				c.lines++;
				c.duplicates++;
			}
			continue;
		}

		/* When the event happened, relative to the newest so far. */
		int64_t ts;
		uint64_t u = rnd() % 1000;
		if (c.unique > 0 && u < 10)
			ts = newest - between(120 * NS_PER_S, 600 * NS_PER_S);
		else if (c.unique > 0 && u < 110)
			ts = newest - between(1, 30 * NS_PER_S);
		else
			ts = newest += between(0, 20 * NS_PER_MS);

		struct source *s = pick_source();
		const char *level = "info";
		size_t bin_len = 0;
		size_t plen = make_payload(payload, sizeof payload, &level, bin,
		                           &bin_len, s, ts);
		if (plen >= sizeof payload)
			plen = sizeof payload - 1;

		line.len = 0;
		put(&line, "{\"ts\":%lld,\"id\":%u,\"labels\":{\"host\":\"%s\","
		    "\"service\":\"%s\",\"level\":\"%s\"},",
		    (long long)ts, s->next_id++, s->host, s->service, level);
		if (bin_len) {
			put(&line, "\"payload_b64\":");
			put_base64(&line, bin, bin_len);
			c.binary++;
		} else {
			put(&line, "\"payload\":");
			put_json_string(&line, payload, plen);
		}
		put(&line, "}\n");
		fputs(line.data, stdout);

		c.lines++;
		c.unique++;
		c.errors += strcmp(level, "error") == 0;
		if (judge_late(ts))
			c.late++;
		else if (ts < newest)
			c.out_of_order++;
		else
			c.in_order++;

		free(recent[next_slot]);
		recent[next_slot] = strdup(line.data);
		if (!recent[next_slot]) {
			fprintf(stderr, "tidemark-loggen: out of memory\n");
			return 1;
		}
		next_slot = (next_slot + 1) % RESEND_WINDOW;
		if (n_recent < RESEND_WINDOW)
			n_recent++;
	}
	for (size_t i = 0; i < RESEND_WINDOW; i++)
		free(recent[i]);

	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "tidemark-loggen: writing stdout: %s\n",
		        strerror(errno));
		return 1;
	}
	fprintf(stderr,
	        "{\"lines\":%llu,\"unique\":%llu,\"in_order\":%llu,"
	        "\"out_of_order\":%llu,\"late\":%llu,\"duplicates\":%llu,"
	        "\"binary\":%llu,\"level_error\":%llu}\n",
	        c.lines, c.unique, c.in_order, c.out_of_order, c.late,
	        c.duplicates, c.binary, c.errors);
	return 0;
}
