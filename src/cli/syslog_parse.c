/*
 * syslog_parse.c - RFC 6587 framing and RFC 5424 / RFC 3164 parsing.
 *
 * RFC 5424 is parsed strictly (a message that says version 1 must be one);
 * RFC 3164 was never a grammar, only a description of what BSD syslogd
 * sent, so after the PRI each part (timestamp, host, tag) is taken when it
 * looks like one, and the rest is the message, as rsyslog does.
 */
#include "syslog_parse.h"

#include <stdio.h>
#include <string.h>

#include "timefmt.h"

#define NS_PER_SEC INT64_C(1000000000)
#define MAX_LEN_DIGITS 10 /* an octet count of up to 9,999,999,999 */

static int digit(char c)
{
	return c >= '0' && c <= '9';
}

int syslog_frame(const char **msg, size_t *msg_len, size_t *used,
                 const char *buf, size_t len, size_t max_len, int at_eof,
                 char *err, size_t errlen)
{
	if (len == 0)
		return SYSLOG_FRAME_MORE;
	if (digit(buf[0])) {
		size_t i = 0;
		uint64_t n = 0;
		while (i < len && digit(buf[i])) {
			if (i == MAX_LEN_DIGITS || (i == 0 && buf[0] == '0')) {
				snprintf(err, errlen, "bad octet count: not 1 to "
				         "%zu digits without a leading zero",
				         (size_t)MAX_LEN_DIGITS);
				return SYSLOG_FRAME_BAD;
			}
			n = n * 10 + (uint64_t)(buf[i++] - '0');
		}
		if (i == len)
			return at_eof ? (snprintf(err, errlen, "stream ends "
			                 "inside an octet count"),
			                 SYSLOG_FRAME_BAD) : SYSLOG_FRAME_MORE;
		if (buf[i] != ' ') {
			snprintf(err, errlen, "octet count not followed by a "
			         "space (byte 0x%02x)", (unsigned char)buf[i]);
			return SYSLOG_FRAME_BAD;
		}
		if (n > max_len) {
			snprintf(err, errlen, "message of %llu bytes is longer "
			         "than the limit of %zu", (unsigned long long)n,
			         max_len);
			return SYSLOG_FRAME_BAD;
		}
		if (len - i - 1 < n) {
			if (at_eof) {
				snprintf(err, errlen, "stream ends inside a "
				         "message of %llu bytes",
				         (unsigned long long)n);
				return SYSLOG_FRAME_BAD;
			}
			return SYSLOG_FRAME_MORE;
		}
		*msg = buf + i + 1;
		*msg_len = (size_t)n;
		*used = i + 1 + (size_t)n;
		return SYSLOG_FRAME_OK;
	}
	const char *nl = memchr(buf, '\n', len < max_len + 2 ? len : max_len + 2);
	size_t n;
	if (nl) {
		n = (size_t)(nl - buf);
		*used = n + 1;
	} else if (len > max_len + 1 || (at_eof && len > max_len)) {
		snprintf(err, errlen, "line longer than the limit of %zu bytes",
		         max_len);
		return SYSLOG_FRAME_BAD;
	} else if (at_eof) {
		n = len;
		*used = len;
	} else {
		return SYSLOG_FRAME_MORE;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n > max_len) {
		snprintf(err, errlen, "line longer than the limit of %zu bytes",
		         max_len);
		return SYSLOG_FRAME_BAD;
	}
	*msg = buf;
	*msg_len = n;
	return SYSLOG_FRAME_OK;
}

static const char *const facilities[24] = {
	"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
	"uucp", "cron", "authpriv", "ftp", "ntp", "security", "console",
	"solaris-cron", "local0", "local1", "local2", "local3", "local4",
	"local5", "local6", "local7",
};

static const char *const severities[8] = {
	"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
};

const char *syslog_facility_name(int facility)
{
	return facility >= 0 && facility < 24 ? facilities[facility] : "?";
}

const char *syslog_severity_name(int severity)
{
	return severity >= 0 && severity < 8 ? severities[severity] : "?";
}

/* A cursor over the message. */
typedef struct cur {
	const char *start, *p, *end;
	char *err;
	size_t errlen;
} cur;

static int bad(cur *c, const char *what)
{
	snprintf(c->err, c->errlen, "%s at byte %zu", what,
	         (size_t)(c->p - c->start));
	return -1;
}

static int printusascii(char ch)
{
	return ch >= 33 && ch <= 126;
}

/* "<PRI>": 1 to 3 digits, no leading zero, at most 191. */
static int parse_pri(syslog_msg *m, cur *c)
{
	int v = 0, n = 0;
	if (c->p == c->end || *c->p != '<')
		return bad(c, "no '<' opening the priority");
	c->p++;
	while (c->p < c->end && digit(*c->p) && n < 4) {
		v = v * 10 + (*c->p++ - '0');
		n++;
	}
	if (n == 0 || n > 3 || (n > 1 && c->start[1] == '0') || v > 191)
		return bad(c, "bad priority: expected <0> to <191>");
	if (c->p == c->end || *c->p != '>')
		return bad(c, "no '>' closing the priority");
	c->p++;
	m->facility = v / 8;
	m->severity = v % 8;
	return 0;
}

/* A token of printable ASCII up to the next space (or the end); returns
 * its length, 0 when there is none or it holds other bytes. */
static size_t token(const cur *c, size_t max)
{
	const char *q = c->p;
	while (q < c->end && *q != ' ') {
		if (!printusascii(*q) || (size_t)(q - c->p) == max)
			return 0;
		q++;
	}
	return (size_t)(q - c->p);
}

static int expect_space(cur *c, const char *after)
{
	char what[64];
	if (c->p < c->end && *c->p == ' ') {
		c->p++;
		return 0;
	}
	snprintf(what, sizeof what, "no space after %s", after);
	return bad(c, what);
}

/* A 5424 header field: NIL ("-") or 1..max printable bytes. */
static int field5424(const char **s, size_t *len, cur *c, size_t max,
                     const char *name)
{
	char what[64];
	size_t n = token(c, max);
	if (n == 0) {
		snprintf(what, sizeof what, "bad %s (1-%zu printable ASCII "
		         "bytes or '-')", name, max);
		return bad(c, what);
	}
	if (!(n == 1 && *c->p == '-')) {
		*s = c->p;
		*len = n;
	}
	c->p += n;
	return expect_space(c, name);
}

/* STRUCTURED-DATA: "-" or one or more [ID PARAM="value"...] elements;
 * skipped (not stored), but checked so that the message starts where it
 * should. */
static int skip_sd(cur *c)
{
	if (c->p < c->end && *c->p == '-') {
		c->p++;
		return 0;
	}
	if (c->p == c->end || *c->p != '[')
		return bad(c, "bad structured data (expected '-' or '[')");
	while (c->p < c->end && *c->p == '[') {
		c->p++;
		int in_value = 0;
		for (;;) {
			if (c->p == c->end)
				return bad(c, "structured data not closed");
			char ch = *c->p++;
			if (in_value) {
				if (ch == '\\' && c->p < c->end)
					c->p++;
				else if (ch == '"')
					in_value = 0;
			} else if (ch == '"') {
				in_value = 1;
			} else if (ch == ']') {
				break;
			}
		}
	}
	return 0;
}

static void set_text(syslog_msg *m, const char *p, const char *end)
{
	if (end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	/* An octet-counted frame may end with the sender's line feed
	 * (rsyslog's templates add one); it is not part of the message, as
	 * rsyslog itself drops it on reception. */
	if (end > p && end[-1] == '\n')
		end--;
	if (end > p && end[-1] == '\r')
		end--;
	m->text = p;
	m->text_len = (size_t)(end - p);
}

static int parse5424(syslog_msg *m, cur *c)
{
	const char *procid, *msgid;
	size_t procid_len, msgid_len;
	c->p += 2; /* "1 " */
	size_t n = token(c, 64);
	if (n == 0)
		return bad(c, "bad timestamp");
	if (!(n == 1 && *c->p == '-')) {
		const char *msg = tf_parse_rfc3339(c->p, n, &m->ts);
		if (msg) {
			char what[128];
			snprintf(what, sizeof what, "bad timestamp: %s", msg);
			return bad(c, what);
		}
		m->has_ts = 1;
	}
	c->p += n;
	if (expect_space(c, "the timestamp") ||
	    field5424(&m->host, &m->host_len, c, 255, "hostname") ||
	    field5424(&m->app, &m->app_len, c, 48, "app-name") ||
	    field5424(&procid, &procid_len, c, 128, "procid") ||
	    field5424(&msgid, &msgid_len, c, 32, "msgid") || skip_sd(c))
		return -1;
	if (c->p < c->end) {
		if (*c->p != ' ')
			return bad(c, "no space after the structured data");
		c->p++;
	}
	set_text(m, c->p, c->end);
	return 0;
}

/* "Mmm dd hh:mm:ss " (the day space-padded or not): returns 1 and sets
 * m->ts when c->p starts with one, moving past it. */
static int bsd_timestamp(syslog_msg *m, cur *c, int64_t now_ns)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	const char *p = c->p;
	unsigned mon = 0, day, hh, mm, ss;
	if (c->end - p < 16)
		return 0;
	for (mon = 0; mon < 12; mon++)
		if (memcmp(p, months + 3 * mon, 3) == 0)
			break;
	if (mon == 12 || p[3] != ' ')
		return 0;
	if ((p[4] != ' ' && !digit(p[4])) || !digit(p[5]) || p[6] != ' ' ||
	    !digit(p[7]) || !digit(p[8]) || p[9] != ':' || !digit(p[10]) ||
	    !digit(p[11]) || p[12] != ':' || !digit(p[13]) || !digit(p[14]) ||
	    p[15] != ' ')
		return 0;
	day = (unsigned)((p[4] == ' ' ? 0 : p[4] - '0') * 10 + (p[5] - '0'));
	hh = (unsigned)((p[7] - '0') * 10 + (p[8] - '0'));
	mm = (unsigned)((p[10] - '0') * 10 + (p[11] - '0'));
	ss = (unsigned)((p[13] - '0') * 10 + (p[14] - '0'));
	if (day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60)
		return 0;
	/* The year is not sent: the current one, or the one before when that
	 * would put the message more than a day in the future (a December
	 * message read in January). */
	int64_t secs_now = now_ns / NS_PER_SEC;
	int64_t days_now = secs_now / 86400;
	int64_t year = 1970 + days_now / 366;
	while (tf_days_from_civil(year + 1, 1, 1) <= days_now)
		year++;
	int64_t t = 0;
	for (int k = 0; k < 2; k++, year--) {
		int64_t days = tf_days_from_civil(year, mon + 1, day);
		t = ((days * 24 + hh) * 60 + mm) * 60 + ss;
		if (t <= secs_now + 86400)
			break;
	}
	if (t < 0)
		return 0;
	m->ts = t * NS_PER_SEC;
	m->has_ts = 1;
	c->p += 16;
	return 1;
}

/* The TAG of a BSD message: up to 48 characters of [A-Za-z0-9._/-]
 * followed by "[pid]:" or ":" and a space. */
static void bsd_tag(syslog_msg *m, cur *c)
{
	const char *q = c->p;
	while (q < c->end && q - c->p < 48 &&
	       (digit(*q) || (*q >= 'a' && *q <= 'z') ||
	        (*q >= 'A' && *q <= 'Z') || *q == '.' || *q == '_' ||
	        *q == '/' || *q == '-'))
		q++;
	const char *tag_end = q;
	if (q == c->p)
		return;
	if (q < c->end && *q == '[') {
		while (q < c->end && *q != ']' && q - tag_end < 24)
			q++;
		if (q == c->end || *q != ']')
			return;
		q++;
	}
	if (q == c->end || *q != ':')
		return;
	q++;
	if (q < c->end && *q == ' ')
		q++;
	m->app = c->p;
	m->app_len = (size_t)(tag_end - c->p);
	c->p = q;
}

static int parse3164(syslog_msg *m, cur *c, int64_t now_ns)
{
	if (bsd_timestamp(m, c, now_ns)) {
		/* A host follows a timestamp, unless the next word is
		 * already the tag ("host tag: msg" vs "tag: msg"). */
		size_t n = token(c, 255);
		if (n > 0 && c->p[n - 1] != ':' && c->p + n < c->end) {
			m->host = c->p;
			m->host_len = n;
			c->p += n + 1;
		}
	}
	bsd_tag(m, c);
	set_text(m, c->p, c->end);
	return 0;
}

int syslog_parse(syslog_msg *out, const char *buf, size_t len,
                 int64_t now_ns, char *err, size_t errlen)
{
	cur c = {buf, buf, buf + len, err, errlen};
	memset(out, 0, sizeof *out);
	out->ts = now_ns;
	if (parse_pri(out, &c))
		return -1;
	if (c.end - c.p >= 2 && c.p[0] == '1' && c.p[1] == ' ') {
		out->rfc5424 = 1;
		return parse5424(out, &c);
	}
	return parse3164(out, &c, now_ns);
}
