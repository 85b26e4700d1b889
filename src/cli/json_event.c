/*
 * json_event.c - one NDJSON event line to one event, in a single pass over
 * the line (see json_event.h for what is accepted).
 *
 * The pass checks the syntax, decodes every string into the scratch buffer
 * and notes what each known key held; the schema is checked afterwards, so
 * a syntax error anywhere on the line wins over a schema problem, and
 * schema problems are reported in a fixed order, as the jansson-based
 * parser this replaced did (fuzz/json_oracle.c keeps it, as the oracle of
 * the differential fuzz target fuzz_json_diff).
 *
 * The scratch buffer holds len + 1 bytes. Each string's decoded bytes and
 * NUL fit in the bytes of its JSON text, quotes included, so the write
 * position never passes the read position and the buffer never grows
 * during a line: pointers into it stay valid.
 *
 * Values that no accepted line can contain (arrays, nested objects, reals,
 * true/false/null, the values of unknown keys) are still checked as JSON,
 * so the message says "not valid JSON" whenever jansson's did, with one
 * exception, in the message of a line that is rejected either way: to
 * bound the work, a repeated key is looked for only among the first
 * SEEN_KEYS unknown keys of the line, the first SEEN_KEYS keys of an
 * object inside a value, and the first 64 labels (a line with more than
 * 64 labels is refused anyway). Past those, jansson said "duplicate
 * object key" and this says what else is wrong.
 */
#include "json_event.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "timefmt.h"

/* Deepest nesting of values, counting the line's object as 1, as jansson's
 * JSON_PARSER_MAX_DEPTH. Only lines that are rejected anyway nest. */
#define MAX_DEPTH 2048

/* Keys of an object other than the labels that are compared for repeats. */
#define SEEN_KEYS 8

enum { KEY_TS, KEY_ID, KEY_LABELS, KEY_PAYLOAD, KEY_B64, N_KEYS };

/* What a known key's value was. */
enum kind { ABSENT, STRING, INTEGER, OBJECT, OTHER };

typedef struct field {
	enum kind kind;
	char *str;   /* STRING: decoded, NUL-terminated, in the scratch */
	size_t len;
	int64_t num; /* INTEGER */
} field;

/* The first problem among the labels, reported once the syntax is known
 * to be sound. */
enum label_problem { LABELS_OK, LABEL_NOT_STRING, LABEL_NUL };

typedef struct parser {
	const unsigned char *start, *p, *end;
	char *out; /* next free byte of the scratch */
	json_event_scratch *s;
	char *err;
	size_t errlen;
	field f[N_KEYS];
	const char *unknown[SEEN_KEYS]; /* the first unknown keys */
	size_t n_unknown;
	size_t n_labels;     /* labels seen; the first 64 are stored */
	enum label_problem label_problem;
	const char *label_key; /* the label it is about */
} parser;

static int fail(parser *ps, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int syntax(parser *ps, const unsigned char *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(parser *ps, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ps->err, ps->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* A syntax error at byte `at` (reported 1-based, as jansson did). */
static int syntax(parser *ps, const unsigned char *at, const char *fmt, ...)
{
	char what[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return fail(ps, "not valid JSON: %s (at byte %zu)", what,
	            (size_t)(at - ps->start) + 1);
}

/* What a syntax error says about the byte at p: the byte, or the end. */
static int unexpected(parser *ps, const char *expected)
{
	if (ps->p == ps->end)
		return syntax(ps, ps->p, "%s expected, got the end of the line",
		              expected);
	if (*ps->p > 0x20 && *ps->p < 0x7F)
		return syntax(ps, ps->p, "%s expected, got '%c'", expected,
		              *ps->p);
	return syntax(ps, ps->p, "%s expected, got byte 0x%02x", expected,
	              *ps->p);
}

static void skip_ws(parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
	                           *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

/* The next byte after whitespace, or -1 at the end of the line. */
static int next(parser *ps)
{
	skip_ws(ps);
	return ps->p < ps->end ? *ps->p : -1;
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* ---- Strings ----------------------------------------------------------- */

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Nonzero when one of the 8 bytes of w cannot be copied as it is: '"',
 * '\\', a control character (< 0x20) or a non-ASCII byte. Each term is
 * the classic "has a zero byte" / "has a byte less than n" test, exact
 * about whether any byte matches. */
static uint64_t special(uint64_t w)
{
	uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
	return (w | ((q - ONES) & ~q) | ((b - ONES) & ~b) |
	        ((w - ONES * 0x20) & ~w)) & HIGHS;
}

static int hex_value(unsigned c)
{
	if (c >= '0' && c <= '9')
		return (int)c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return (int)c - 'a' + 10;
	return -1;
}

/* The 4 hex digits at p (fewer than 4 before end: -1). */
static long hex4(const unsigned char *p, const unsigned char *end)
{
	long v = 0;
	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int h = hex_value(p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

static char *put_utf8(char *d, unsigned long cp)
{
	if (cp < 0x80) {
		*d++ = (char)cp;
	} else if (cp < 0x800) {
		*d++ = (char)(0xC0 | cp >> 6);
		*d++ = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*d++ = (char)(0xE0 | cp >> 12);
		*d++ = (char)(0x80 | (cp >> 6 & 0x3F));
		*d++ = (char)(0x80 | (cp & 0x3F));
	} else {
		*d++ = (char)(0xF0 | cp >> 18);
		*d++ = (char)(0x80 | (cp >> 12 & 0x3F));
		*d++ = (char)(0x80 | (cp >> 6 & 0x3F));
		*d++ = (char)(0x80 | (cp & 0x3F));
	}
	return d;
}

/* A \uXXXX escape at *pp, with its low surrogate if it is a high one; a
 * lone surrogate is an error (it has no UTF-8). 6 or 12 bytes of text
 * make at most 3 or 4 bytes of UTF-8. */
static int unicode_escape(parser *ps, const unsigned char **pp, char **dd)
{
	const unsigned char *p = *pp, *end = ps->end;
	long cp = hex4(p + 2, end), lo;
	if (cp < 0)
		return syntax(ps, p, "\\u must be followed by 4 hex digits");
	if (cp >= 0xDC00 && cp <= 0xDFFF)
		return syntax(ps, p, "lone low surrogate \\u%04lX", cp);
	if (cp >= 0xD800 && cp <= 0xDBFF) {
		if (end - p < 8 || p[6] != '\\' || p[7] != 'u')
			return syntax(ps, p, "high surrogate \\u%04lX not "
			              "followed by a low one", cp);
		if ((lo = hex4(p + 8, end)) < 0)
			return syntax(ps, p + 6, "\\u must be followed by 4 "
			              "hex digits");
		if (lo < 0xDC00 || lo > 0xDFFF)
			return syntax(ps, p, "high surrogate \\u%04lX followed "
			              "by \\u%04lX, not a low one", cp, lo);
		cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
		p += 6;
	}
	*dd = put_utf8(*dd, (unsigned long)cp);
	*pp = p + 6;
	return 0;
}

/* The escape at *pp (a backslash). */
static int escape(parser *ps, const unsigned char **pp, char **dd)
{
	const unsigned char *p = *pp;
	char c;
	if (ps->end - p < 2)
		return syntax(ps, p, "unterminated string");
	switch (p[1]) {
	case '"': c = '"'; break;
	case '\\': c = '\\'; break;
	case '/': c = '/'; break;
	case 'b': c = '\b'; break;
	case 'f': c = '\f'; break;
	case 'n': c = '\n'; break;
	case 'r': c = '\r'; break;
	case 't': c = '\t'; break;
	case 'u': return unicode_escape(ps, pp, dd);
	default:
		if (p[1] > 0x20 && p[1] < 0x7F)
			return syntax(ps, p, "invalid escape '\\%c'", p[1]);
		return syntax(ps, p, "invalid escape: '\\' then byte 0x%02x",
		              p[1]);
	}
	*(*dd)++ = c;
	*pp = p + 2;
	return 0;
}

/* Decodes the string whose opening quote is at ps->p into the scratch,
 * NUL-terminated; *str and *len then hold it. The bytes must be UTF-8
 * (RFC 3629) with no raw control characters. */
static int string(parser *ps, char **str, size_t *len)
{
	const unsigned char *p = ps->p + 1, *end = ps->end;
	char *d = ps->out;
	for (;;) {
		unsigned c;
		size_t n;
		/* Plain ASCII 8 bytes at a time. d + 8 stays within the
		 * scratch, since d trails p. */
		while (end - p >= 8) {
			uint64_t w;
			memcpy(&w, p, 8);
			if (special(w))
				break;
			memcpy(d, &w, 8);
			d += 8;
			p += 8;
		}
		if (p == end)
			return syntax(ps, ps->p, "unterminated string");
		c = *p;
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			*d++ = (char)c;
			p++;
		} else if (c == '"') {
			break;
		} else if (c == '\\') {
			if (escape(ps, &p, &d))
				return -1;
		} else if (c < 0x20) {
			return syntax(ps, p, "control character 0x%02x in a "
			              "string (escape it)", c);
		} else if ((n = utf8_sequence_len(p, (size_t)(end - p)))) {
			memcpy(d, p, n);
			d += n;
			p += n;
		} else {
			return syntax(ps, p, "invalid UTF-8 (byte 0x%02x)", c);
		}
	}
	*d = '\0';
	*str = ps->out;
	*len = (size_t)(d - ps->out);
	ps->out = d + 1;
	ps->p = p + 1;
	return 0;
}

/* A key: a string with no NUL byte (jansson refused those too). */
static int key(parser *ps, char **str, size_t *len)
{
	const unsigned char *at;
	if (next(ps) != '"')
		return unexpected(ps, "a string key");
	at = ps->p;
	if (string(ps, str, len))
		return -1;
	if (memchr(*str, '\0', *len))
		return syntax(ps, at, "NUL byte in an object key");
	return 0;
}

/* Whether key k is among the n keys seen (NUL-free, so strcmp will do);
 * if not, it is added while there is room. */
static int seen_before(const char **seen, size_t *n, const char *k)
{
	for (size_t i = 0; i < *n && i < SEEN_KEYS; i++)
		if (strcmp(seen[i], k) == 0)
			return 1;
	if (*n < SEEN_KEYS)
		seen[*n] = k;
	++*n;
	return 0;
}

/* ':' between a key and its value. */
static int colon(parser *ps)
{
	if (next(ps) != ':')
		return unexpected(ps, "':'");
	ps->p++;
	skip_ws(ps);
	return 0;
}

/* After a member or an element: 1 for ',' (and more follow), 0 for the
 * closing bracket, -1 for anything else. */
static int comma_or(parser *ps, char close)
{
	int c = next(ps);
	if (c == ',') {
		ps->p++;
		return 1;
	}
	if (c == close) {
		ps->p++;
		return 0;
	}
	return unexpected(ps, close == '}' ? "',' or '}'" : "',' or ']'");
}

/* ---- Numbers and other values ------------------------------------------ */

/* 1 when the real number text [b, e) overflows a double, as jansson
 * checked (strtod in the C locale: the CLI never calls setlocale). The
 * text is copied to the free part of the scratch, which has room: the
 * write position trails the read position. */
static int real_overflows(parser *ps, const unsigned char *b,
                          const unsigned char *e)
{
	double v;
	memcpy(ps->out, b, (size_t)(e - b));
	ps->out[e - b] = '\0';
	errno = 0;
	v = strtod(ps->out, NULL);
	return (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
}

/* The number at ps->p: INTEGER with *v, or OTHER for a real. Integers
 * outside int64 and reals past a double are syntax errors, as in jansson;
 * "-0" is the integer 0. */
static int number(parser *ps, enum kind *kind, int64_t *v)
{
	const unsigned char *p = ps->p, *end = ps->end, *begin = p;
	uint64_t mag = 0;
	int neg = 0, big = 0;
	if (*p == '-')
		neg = 1, p++;
	if (p == end || !is_digit(*p))
		return syntax(ps, begin, "a digit must follow '-'");
	if (*p == '0') {
		if (++p < end && is_digit(*p))
			return syntax(ps, begin, "number with a leading zero");
	} else {
		for (; p < end && is_digit(*p); p++) {
			unsigned d = *p - '0';
			if (mag > (UINT64_MAX - d) / 10)
				big = 1;
			else
				mag = mag * 10 + d;
		}
	}
	if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) {
		if (*p == '.' && (++p == end || !is_digit(*p)))
			return syntax(ps, begin, "a digit must follow '.'");
		while (p < end && is_digit(*p))
			p++;
		if (p < end && (*p == 'e' || *p == 'E')) {
			if (++p < end && (*p == '+' || *p == '-'))
				p++;
			if (p == end || !is_digit(*p))
				return syntax(ps, begin, "a digit must follow "
				              "the exponent's 'e'");
			while (p < end && is_digit(*p))
				p++;
		}
		if (real_overflows(ps, begin, p))
			return syntax(ps, begin, "real number overflow");
		*kind = OTHER;
		ps->p = p;
		return 0;
	}
	if (big || mag > (uint64_t)INT64_MAX + neg)
		return syntax(ps, begin, "integer out of the range of int64");
	*kind = INTEGER;
	*v = neg ? (int64_t)(0 - mag) : (int64_t)mag;
	ps->p = p;
	return 0;
}

static int any_value(parser *ps, int depth);

static int any_object(parser *ps, int depth)
{
	const char *seen[SEEN_KEYS];
	size_t n_seen = 0, n;
	char *k;
	int more;
	ps->p++;
	if (next(ps) == '}') {
		ps->p++;
		return 0;
	}
	do {
		const unsigned char *at;
		skip_ws(ps);
		at = ps->p;
		if (key(ps, &k, &n))
			return -1;
		if (seen_before(seen, &n_seen, k))
			return syntax(ps, at, "duplicate key \"%.64s\"", k);
		if (colon(ps) || any_value(ps, depth + 1))
			return -1;
	} while ((more = comma_or(ps, '}')) > 0);
	return more;
}

static int any_array(parser *ps, int depth)
{
	int more;
	ps->p++;
	if (next(ps) == ']') {
		ps->p++;
		return 0;
	}
	do {
		skip_ws(ps);
		if (any_value(ps, depth + 1))
			return -1;
	} while ((more = comma_or(ps, ']')) > 0);
	return more;
}

static int literal(parser *ps, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
		return unexpected(ps, "a JSON value");
	ps->p += n;
	return 0;
}

/* Any JSON value at ps->p (after whitespace), at nesting depth `depth`. */
static int any_value(parser *ps, int depth)
{
	char *str;
	size_t len;
	enum kind kind;
	int64_t num;
	if (depth > MAX_DEPTH)
		return syntax(ps, ps->p, "nested more than %d deep", MAX_DEPTH);
	switch (ps->p < ps->end ? *ps->p : -1) {
	case '"': return string(ps, &str, &len);
	case '{': return any_object(ps, depth);
	case '[': return any_array(ps, depth);
	case 't': return literal(ps, "true");
	case 'f': return literal(ps, "false");
	case 'n': return literal(ps, "null");
	case '-': case '0': case '1': case '2': case '3': case '4': case '5':
	case '6': case '7': case '8': case '9':
		return number(ps, &kind, &num);
	default:
		return unexpected(ps, "a JSON value");
	}
}

/* A value that is checked and dropped: its strings leave the scratch. */
static int skip_value(parser *ps, int depth)
{
	char *mark = ps->out;
	int rc = any_value(ps, depth);
	ps->out = mark;
	return rc;
}

/* ---- The event's members ------------------------------------------------ */

static int which_key(const char *k, size_t n)
{
	static const char *const names[N_KEYS] = {
		[KEY_TS] = "ts", [KEY_ID] = "id", [KEY_LABELS] = "labels",
		[KEY_PAYLOAD] = "payload", [KEY_B64] = "payload_b64"};
	for (int i = 0; i < N_KEYS; i++)
		if (strlen(names[i]) == n && memcmp(k, names[i], n) == 0)
			return i;
	return -1;
}

/* The object of "labels", at ps->p ('{'), into the scratch's labels. */
static int labels(parser *ps)
{
	json_event_scratch *s = ps->s;
	char *k, *v;
	size_t kn, vn;
	int more;
	ps->p++;
	if (next(ps) == '}') {
		ps->p++;
		return 0;
	}
	do {
		const unsigned char *at;
		skip_ws(ps);
		at = ps->p;
		if (key(ps, &k, &kn))
			return -1;
		for (size_t i = 0; i < ps->n_labels && i < TDM_MAX_LABELS; i++)
			if (strcmp(s->labels[i].key, k) == 0)
				return syntax(ps, at, "duplicate label "
				              "\"%.64s\"", k);
		if (colon(ps))
			return -1;
		if (ps->p < ps->end && *ps->p == '"') {
			if (string(ps, &v, &vn))
				return -1;
			if (!ps->label_problem && memchr(v, '\0', vn)) {
				ps->label_problem = LABEL_NUL;
				ps->label_key = k;
			}
		} else {
			if (skip_value(ps, 3))
				return -1;
			v = NULL;
			if (!ps->label_problem) {
				ps->label_problem = LABEL_NOT_STRING;
				ps->label_key = k;
			}
		}
		if (ps->n_labels < TDM_MAX_LABELS) {
			s->labels[ps->n_labels].key = k;
			s->labels[ps->n_labels].value = v;
		}
		ps->n_labels++;
	} while ((more = comma_or(ps, '}')) > 0);
	return more;
}

/* The value of a known key, noted in its field. */
static int member(parser *ps, int which)
{
	field *f = &ps->f[which];
	int c = ps->p < ps->end ? *ps->p : -1;
	if (c == '"' && which != KEY_ID && which != KEY_LABELS) {
		f->kind = STRING;
		return string(ps, &f->str, &f->len);
	}
	if ((c == '-' || is_digit(c)) && (which == KEY_TS || which == KEY_ID))
		return number(ps, &f->kind, &f->num);
	if (c == '{' && which == KEY_LABELS) {
		f->kind = OBJECT;
		return labels(ps);
	}
	f->kind = OTHER;
	return skip_value(ps, 2);
}

/* The line's object, at ps->p ('{'). */
static int members(parser *ps)
{
	char *k;
	size_t n;
	int more;
	ps->p++;
	if (next(ps) == '}') {
		ps->p++;
		return 0;
	}
	do {
		const unsigned char *at;
		int which;
		skip_ws(ps);
		at = ps->p;
		if (key(ps, &k, &n) || colon(ps))
			return -1;
		which = which_key(k, n);
		if (which < 0) {
			/* Kept in the scratch while they are looked at. */
			if (seen_before(ps->unknown, &ps->n_unknown, k))
				return syntax(ps, at, "duplicate key \"%.64s\"",
				              k);
			if (ps->n_unknown > SEEN_KEYS)
				ps->out = k;
			if (skip_value(ps, 2))
				return -1;
			continue;
		}
		ps->out = k; /* the key's text is not needed */
		if (ps->f[which].kind != ABSENT)
			return syntax(ps, at, "duplicate key \"%s\"", k);
		if (member(ps, which))
			return -1;
	} while ((more = comma_or(ps, '}')) > 0);
	return more;
}

/* The whole line: one object, whitespace around it. */
static int line(parser *ps)
{
	int c = next(ps);
	if (c != '{') {
		if (c < 0)
			return unexpected(ps, "'{'");
		if (skip_value(ps, 1))
			return -1;
		if (next(ps) >= 0)
			return unexpected(ps, "the end of the line");
		return fail(ps, "not a JSON object");
	}
	if (members(ps))
		return -1;
	if (next(ps) >= 0)
		return unexpected(ps, "the end of the line");
	return 0;
}

/* ---- The schema ---------------------------------------------------------- */

static int check_ts(parser *ps, tdm_event *ev)
{
	field *f = &ps->f[KEY_TS];
	const char *msg;
	switch (f->kind) {
	case ABSENT:
		return fail(ps, "missing \"ts\"");
	case STRING:
		msg = tf_parse_rfc3339(f->str, f->len, &ev->ts);
		return msg ? fail(ps, "\"ts\": %s", msg) : 0;
	case INTEGER:
		if (f->num < 0)
			return fail(ps, "\"ts\" is negative (must be >= 0)");
		ev->ts = f->num;
		return 0;
	default:
		return fail(ps, "\"ts\" must be an integer (ns) or an RFC 3339 "
		                "string");
	}
}

static int check_id(parser *ps, tdm_event *ev, int *has_id)
{
	field *f = &ps->f[KEY_ID];
	*has_id = f->kind != ABSENT;
	if (f->kind == ABSENT)
		return 0;
	if (f->kind != INTEGER)
		return fail(ps, "\"id\" must be an integer");
	if (f->num < 0 || f->num > UINT32_MAX)
		return fail(ps, "\"id\" %lld is out of range 0..4294967295",
		            (long long)f->num);
	ev->id = (uint32_t)f->num;
	return 0;
}

static int check_labels(parser *ps, tdm_event *ev)
{
	field *f = &ps->f[KEY_LABELS];
	if (f->kind == ABSENT)
		return 0;
	if (f->kind != OBJECT)
		return fail(ps, "\"labels\" must be an object");
	if (ps->label_problem == LABEL_NOT_STRING)
		return fail(ps, "label \"%.64s\" must have a string value",
		            ps->label_key);
	/* Labels are C strings: an embedded NUL would cut them. */
	if (ps->label_problem == LABEL_NUL)
		return fail(ps, "label \"%.64s\" contains a NUL byte",
		            ps->label_key);
	if (ps->n_labels > 0 && ps->n_labels <= TDM_MAX_LABELS) {
		ev->labels = ps->s->labels;
		ev->n_labels = ps->n_labels;
	}
	return 0;
}

static int payload_too_big(parser *ps, size_t len)
{
	if (len <= TDM_MAX_PAYLOAD)
		return 0;
	return fail(ps, "payload is %zu bytes; the limit is %u", len,
	            TDM_MAX_PAYLOAD);
}

static int check_payload(parser *ps, tdm_event *ev)
{
	field *text = &ps->f[KEY_PAYLOAD], *b64 = &ps->f[KEY_B64];
	long long got;
	ev->payload = "";
	ev->payload_len = 0;
	if (text->kind != ABSENT && b64->kind != ABSENT)
		return fail(ps, "both \"payload\" and \"payload_b64\" given");
	if (text->kind != ABSENT) {
		if (text->kind != STRING)
			return fail(ps, "\"payload\" must be a string");
		ev->payload = text->str;
		ev->payload_len = text->len;
		return payload_too_big(ps, text->len);
	}
	if (b64->kind == ABSENT)
		return 0;
	if (b64->kind != STRING)
		return fail(ps, "\"payload_b64\" must be a string");
	if (b64->len / 4 * 3 > TDM_MAX_PAYLOAD + 2) /* padding: 2 at most */
		return payload_too_big(ps, b64->len / 4 * 3);
	got = base64_decode((uint8_t *)b64->str, b64->str, b64->len);
	if (got < 0)
		return fail(ps, "\"payload_b64\" is not valid base64 (standard "
		                "alphabet, with padding)");
	ev->payload = b64->str;
	ev->payload_len = (size_t)got;
	return payload_too_big(ps, ev->payload_len);
}

static int check_schema(parser *ps, tdm_event *ev, int *has_id)
{
	if (ps->n_unknown)
		return fail(ps, "unknown key \"%.64s\"", ps->unknown[0]);
	if (check_ts(ps, ev) || check_id(ps, ev, has_id) ||
	    check_labels(ps, ev) || check_payload(ps, ev))
		return -1;
	/* After the payload, where tdm_event_check would find it. */
	if (ps->n_labels > TDM_MAX_LABELS)
		return fail(ps, "%zu labels, over the limit of %d",
		            ps->n_labels, TDM_MAX_LABELS);
	return 0;
}

/* ---- The scratch --------------------------------------------------------- */

/* Room for len + 1 bytes (see the top of the file). */
static int reserve(json_event_scratch *s, size_t len)
{
	size_t cap;
	char *text;
	if (s->cap > len)
		return 0;
	cap = len < 1024 ? 1024 : (len | 4095) + 1;
	if (!(text = malloc(cap)))
		return -1;
	free(s->text);
	s->text = text;
	s->cap = cap;
	return 0;
}

int json_event_parse(tdm_event *ev, int *has_id, json_event_scratch *s,
                     const char *line_text, size_t len, char *err,
                     size_t errlen)
{
	parser ps;
	memset(ev, 0, sizeof *ev);
	*has_id = 0;
	memset(&ps, 0, sizeof ps);
	ps.err = err;
	ps.errlen = errlen;
	if (reserve(s, len))
		return fail(&ps, "out of memory");
	ps.start = ps.p = (const unsigned char *)line_text;
	ps.end = ps.start + len;
	ps.out = s->text;
	ps.s = s;
	if (line(&ps) || check_schema(&ps, ev, has_id)) {
		memset(ev, 0, sizeof *ev);
		*has_id = 0;
		return -1;
	}
	return 0;
}

void json_event_scratch_trim(json_event_scratch *s, size_t keep)
{
	if (s->cap > keep) {
		free(s->text);
		s->text = NULL;
		s->cap = 0;
	}
}

void json_event_scratch_free(json_event_scratch *s)
{
	json_event_scratch_trim(s, 0);
}
