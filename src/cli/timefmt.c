/*
 * timefmt.c - times and durations, parsed without the C library's time
 * functions (timegm depends on TZ and locale; we need neither).
 */
#include "timefmt.h"

#include <string.h>

#define NS_PER_SEC INT64_C(1000000000)

/* Howard Hinnant's days_from_civil: exact for every proleptic Gregorian
 * date, no tables, no loops. */
int64_t tf_days_from_civil(int64_t year, unsigned month, unsigned day)
{
	int64_t y = year - (month <= 2);
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;                          /* [0, 399] */
	int64_t mp = (month + 9) % 12;                        /* March = 0 */
	int64_t doy = (153 * mp + 2) / 5 + (int64_t)day - 1;  /* [0, 365] */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;  /* [0, 146096] */
	return era * 146097 + doe - 719468;
}

static int is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned dim[12] = {31, 28, 31, 30, 31, 30,
	                                 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Reads exactly `n` digits at s; -1 if any is not a digit. */
static int64_t fixed_digits(const char *s, int n)
{
	int64_t v = 0;
	for (int i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static int add_overflows(int64_t a, int64_t b, int64_t *out)
{
	return __builtin_add_overflow(a, b, out);
}

static int mul_overflows(int64_t a, int64_t b, int64_t *out)
{
	return __builtin_mul_overflow(a, b, out);
}

/* Reads a run of decimal digits into *v; returns how many there were,
 * or -1 on overflow. */
static int read_uint(const char **p, int64_t *v)
{
	int n = 0;
	*v = 0;
	for (; is_digit(**p); (*p)++, n++) {
		if (mul_overflows(*v, 10, v) || add_overflows(*v, **p - '0', v))
			return -1;
	}
	return n;
}

/* The unit at *p, as a multiplier in ns; advances *p past it. */
static int64_t read_unit(const char **p)
{
	static const struct {
		const char *name;
		int64_t ns;
	} units[] = {
		/* Two-letter units first so "ms" is not read as "m". */
		{"ns", 1}, {"us", 1000}, {"ms", 1000000},
		{"s", NS_PER_SEC}, {"m", 60 * NS_PER_SEC},
		{"h", 3600 * NS_PER_SEC}, {"d", 86400 * NS_PER_SEC},
	};
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		size_t len = strlen(units[i].name);
		if (strncmp(*p, units[i].name, len) == 0) {
			*p += len;
			return units[i].ns;
		}
	}
	return 0;
}

const char *tf_parse_duration(const char *s, int64_t *out_ns)
{
	const char *p = s;
	int64_t total = 0;
	if (*p == '\0')
		return "empty duration";
	while (*p) {
		int64_t v, unit, part;
		int n = read_uint(&p, &v);
		if (n < 0)
			return "duration too large";
		if (n == 0)
			return "expected a number (like 500ms, 60s, 15m, 1h, 1d)";
		if (*p == '\0' && p - s == n) {
			*out_ns = v; /* a bare integer: nanoseconds */
			return NULL;
		}
		unit = read_unit(&p);
		if (unit == 0)
			return "unknown unit (use ns, us, ms, s, m, h or d)";
		if (mul_overflows(v, unit, &part) ||
		    add_overflows(total, part, &total))
			return "duration too large";
	}
	*out_ns = total;
	return NULL;
}

/* "YYYY-MM-DD" at s (10 bytes): days since the epoch. */
static const char *parse_date(const char *s, int64_t *days)
{
	int64_t y = fixed_digits(s, 4);
	int64_t m = s[4] == '-' ? fixed_digits(s + 5, 2) : -1;
	int64_t d = s[7] == '-' ? fixed_digits(s + 8, 2) : -1;
	if (y < 0 || m < 0 || d < 0)
		return "expected a date like 2026-11-22";
	if (m < 1 || m > 12)
		return "month out of range";
	if (d < 1 || d > days_in_month(y, (unsigned)m))
		return "day out of range for its month";
	*days = tf_days_from_civil(y, (unsigned)m, (unsigned)d);
	return NULL;
}

/* "HH:MM:SS" at s (8 bytes): seconds into the day. Leap seconds (":60")
 * are refused: they have no nanosecond count of their own. */
static const char *parse_clock(const char *s, int64_t *secs)
{
	int64_t h = fixed_digits(s, 2);
	int64_t m = s[2] == ':' ? fixed_digits(s + 3, 2) : -1;
	int64_t sec = s[5] == ':' ? fixed_digits(s + 6, 2) : -1;
	if (h < 0 || m < 0 || sec < 0)
		return "expected a time of day like 10:00:00";
	if (h > 23 || m > 59 || sec > 59)
		return "time of day out of range";
	*secs = h * 3600 + m * 60 + sec;
	return NULL;
}

/* An optional ".fraction" of 1 to 9 digits at *p: nanoseconds. */
static const char *parse_fraction(const char **p, const char *end,
                                  int64_t *ns)
{
	int64_t scale = NS_PER_SEC;
	*ns = 0;
	if (*p == end || **p != '.')
		return NULL;
	(*p)++;
	if (*p == end || !is_digit(**p))
		return "expected digits after '.'";
	for (; *p < end && is_digit(**p); (*p)++) {
		if (scale == 1)
			return "more than 9 fraction digits";
		scale /= 10;
		*ns += (**p - '0') * scale;
	}
	return NULL;
}

/* "Z", "z" or "+HH:MM"/"-HH:MM" filling [p, end): seconds east of UTC. */
static const char *parse_offset(const char *p, const char *end,
                                int64_t *secs)
{
	int64_t h, m;
	if (end - p == 1 && (*p == 'Z' || *p == 'z')) {
		*secs = 0;
		return NULL;
	}
	if (end - p != 6 || (*p != '+' && *p != '-') || p[3] != ':')
		return "expected 'Z' or an offset like +02:00 at the end";
	h = fixed_digits(p + 1, 2);
	m = fixed_digits(p + 4, 2);
	if (h < 0 || m < 0 || h > 23 || m > 59)
		return "offset out of range";
	*secs = (*p == '-' ? -1 : 1) * (h * 3600 + m * 60);
	return NULL;
}

const char *tf_parse_rfc3339(const char *s, size_t len, int64_t *out_ns)
{
	const char *end = s + len, *p, *err;
	int64_t days, clock, frac, offset, secs, ns;
	if (len < 20) /* "YYYY-MM-DDTHH:MM:SSZ" is the shortest */
		return "expected an RFC 3339 time like 2026-11-22T10:00:00Z";
	if ((err = parse_date(s, &days)))
		return err;
	if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
		return "expected 'T' between date and time";
	if ((err = parse_clock(s + 11, &clock)))
		return err;
	p = s + 19;
	if ((err = parse_fraction(&p, end, &frac)) ||
	    (err = parse_offset(p, end, &offset)))
		return err;
	/* Days since 1970 fit easily in seconds; only the ns scale overflows. */
	secs = days * 86400 + clock - offset;
	if (secs < 0)
		return "time is before 1970-01-01T00:00:00Z";
	if (mul_overflows(secs, NS_PER_SEC, &ns) ||
	    add_overflows(ns, frac, &ns))
		return "time is too far in the future (after 2262)";
	*out_ns = ns;
	return NULL;
}

/* "now", "now-D" or "now+D". */
static const char *parse_now(const char *s, int64_t now_ns, int64_t *out_ns)
{
	const char *err;
	int64_t d, t;
	if (s[3] == '\0') {
		*out_ns = now_ns;
		return NULL;
	}
	if (s[3] != '-' && s[3] != '+')
		return "expected now, now-DURATION or now+DURATION";
	if ((err = tf_parse_duration(s + 4, &d)))
		return err;
	if (s[3] == '-' ? __builtin_sub_overflow(now_ns, d, &t)
	                : add_overflows(now_ns, d, &t))
		return "time out of range";
	if (t < 0)
		return "time is before 1970-01-01T00:00:00Z";
	*out_ns = t;
	return NULL;
}

const char *tf_parse_time(const char *s, int64_t now_ns, int64_t *out_ns)
{
	const char *p = s;
	int64_t v;
	int n;
	if (strncmp(s, "now", 3) == 0)
		return parse_now(s, now_ns, out_ns);
	n = read_uint(&p, &v);
	if (n > 0 && *p == '\0') {
		*out_ns = v;
		return NULL;
	}
	if (n < 0)
		return "time too large for int64 nanoseconds";
	if (*s == '-')
		return "time is before 1970-01-01T00:00:00Z";
	return tf_parse_rfc3339(s, strlen(s), out_ns);
}
