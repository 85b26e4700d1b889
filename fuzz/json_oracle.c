/*
 * json_oracle.c - the reference for fuzz_json_diff: the jansson-based
 * event_in.c that src/cli/json_event.c replaced, kept as it was apart from
 * its names. jansson is strict JSON (UTF-8 checked, lone surrogates and
 * duplicate keys refused with JSON_REJECT_DUPLICATES, integers outside
 * int64 refused); the schema checks below are the CLI's as they were.
 *
 * Where jansson and the intended behaviour differ, the oracle is made to
 * follow the intended behaviour and the place says why (see load()).
 */
#include "json_oracle.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/cli/codec.h"
#include "../src/cli/timefmt.h"

/* Where a problem is written: a bounded message buffer. */
typedef struct parse_err {
	char *buf;
	size_t len;
} parse_err;

static int fail(parse_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail(parse_err *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->buf, e->len, fmt, ap);
	va_end(ap);
	return -1;
}

static int parse_ts(tdm_event *ev, json_t *v, parse_err *e)
{
	const char *msg;
	if (!v)
		return fail(e, "missing \"ts\"");
	if (json_is_string(v)) {
		msg = tf_parse_rfc3339(json_string_value(v),
		                       json_string_length(v), &ev->ts);
		return msg ? fail(e, "\"ts\": %s", msg) : 0;
	}
	if (!json_is_integer(v))
		return fail(e, "\"ts\" must be an integer (ns) or an RFC 3339 "
		               "string");
	if (json_integer_value(v) < 0)
		return fail(e, "\"ts\" is negative (must be >= 0)");
	ev->ts = json_integer_value(v);
	return 0;
}

/* Returns 1 when "id" is present and sound, 0 when absent, -1 when bad. */
static int parse_id(tdm_event *ev, json_t *v, parse_err *e)
{
	if (!v)
		return 0;
	if (!json_is_integer(v))
		return fail(e, "\"id\" must be an integer");
	if (json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
		return fail(e, "\"id\" %lld is out of range 0..4294967295",
		            (long long)json_integer_value(v));
	ev->id = (uint32_t)json_integer_value(v);
	return 1;
}

static int parse_labels(tdm_event *ev, oracle_mem *mem, json_t *v,
                        parse_err *e)
{
	const char *key;
	size_t key_len, n = 0;
	json_t *val;
	if (!v)
		return 0;
	if (!json_is_object(v))
		return fail(e, "\"labels\" must be an object");
	if (json_object_size(v) == 0)
		return 0;
	if (!(mem->labels = calloc(json_object_size(v), sizeof *mem->labels)))
		return fail(e, "out of memory");
	json_object_keylen_foreach(v, key, key_len, val) {
		if (!json_is_string(val))
			return fail(e, "label \"%.64s\" must have a string "
			               "value", key);
		/* Labels are C strings: an embedded NUL would cut them. */
		if (strlen(key) != key_len ||
		    strlen(json_string_value(val)) != json_string_length(val))
			return fail(e, "label \"%.64s\" contains a NUL byte",
			            key);
		mem->labels[n].key = key;
		mem->labels[n].value = json_string_value(val);
		n++;
	}
	ev->labels = mem->labels;
	ev->n_labels = n;
	return 0;
}

static int payload_too_big(size_t len, parse_err *e)
{
	if (len <= TDM_MAX_PAYLOAD)
		return 0;
	return fail(e, "payload is %zu bytes; the limit is %u", len,
	            TDM_MAX_PAYLOAD);
}

static int decode_b64(tdm_event *ev, oracle_mem *mem, json_t *v,
                      parse_err *e)
{
	const char *text = json_string_value(v);
	size_t len = json_string_length(v);
	long long got;
	/* Refuse before allocating: padding removes at most 2 bytes. */
	if (len / 4 * 3 > TDM_MAX_PAYLOAD + 2)
		return payload_too_big(len / 4 * 3, e);
	if (!(mem->decoded = malloc(len / 4 * 3 + 1)))
		return fail(e, "out of memory");
	got = base64_decode(mem->decoded, text, len);
	if (got < 0)
		return fail(e, "\"payload_b64\" is not valid base64 (standard "
		               "alphabet, with padding)");
	ev->payload = mem->decoded;
	ev->payload_len = (size_t)got;
	return payload_too_big(ev->payload_len, e);
}

static int parse_payload(tdm_event *ev, oracle_mem *mem, json_t *text,
                         json_t *b64, parse_err *e)
{
	ev->payload = "";
	ev->payload_len = 0;
	if (text && b64)
		return fail(e, "both \"payload\" and \"payload_b64\" given");
	if (text) {
		if (!json_is_string(text))
			return fail(e, "\"payload\" must be a string");
		ev->payload = json_string_value(text);
		ev->payload_len = json_string_length(text);
		return payload_too_big(ev->payload_len, e);
	}
	if (!b64)
		return 0;
	if (!json_is_string(b64))
		return fail(e, "\"payload_b64\" must be a string");
	return decode_b64(ev, mem, b64, e);
}

static int check_keys(json_t *obj, parse_err *e)
{
	static const char *const known[] = {"ts", "id", "labels", "payload",
	                                    "payload_b64"};
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v) {
		size_t i = 0;
		while (i < 5 && strcmp(key, known[i]) != 0)
			i++;
		if (i == 5)
			return fail(e, "unknown key \"%.64s\"", key);
	}
	return 0;
}

/* Without JSON_DISABLE_EOF_CHECK: text after the object is an error. */
static json_t *load(const char *line, size_t len, parse_err *e)
{
	json_error_t jerr;
	json_t *root;
	/* jansson quirk (found by fuzz_json_diff, 2.14): a raw NUL byte that
	 * ends a number or true/false/null is dropped, not refused, because
	 * its lexer's look-ahead buffer is NUL-terminated and the NUL it puts
	 * back reads as "buffer empty": {"ts":1<NUL>} was accepted. A raw
	 * NUL is no JSON token and, in a string, an unescaped control
	 * character: the intended behaviour is to refuse it anywhere. */
	if (memchr(line, '\0', len)) {
		fail(e, "not valid JSON: raw NUL byte (at byte %zu)",
		     (size_t)((const char *)memchr(line, '\0', len) - line) + 1);
		return NULL;
	}
	root = json_loadb(line, len,
	                          JSON_DECODE_ANY | JSON_ALLOW_NUL |
	                          JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		fail(e, "not valid JSON: %s (at byte %d)", jerr.text,
		     jerr.position);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		fail(e, "not a JSON object");
		return NULL;
	}
	return root;
}

static int fill_event(tdm_event *ev, oracle_mem *mem, json_t *root,
                      parse_err *e)
{
	int has_id;
	if (check_keys(root, e) || parse_ts(ev, json_object_get(root, "ts"), e))
		return -1;
	if ((has_id = parse_id(ev, json_object_get(root, "id"), e)) < 0)
		return -1;
	if (parse_labels(ev, mem, json_object_get(root, "labels"), e) ||
	    parse_payload(ev, mem, json_object_get(root, "payload"),
	                  json_object_get(root, "payload_b64"), e))
		return -1;
	if (tdm_event_check(ev) != 0)
		return fail(e, "%s", tdm_error_message());
	if (!has_id)
		ev->id = tdm_event_content_id(ev);
	return 0;
}

int oracle_parse(tdm_event *ev, oracle_mem *mem, const char *line,
                   size_t len, char *err, size_t errlen)
{
	parse_err e = {err, errlen};
	memset(ev, 0, sizeof *ev);
	memset(mem, 0, sizeof *mem);
	if (!(mem->root = load(line, len, &e)))
		return -1;
	if (fill_event(ev, mem, mem->root, &e) == 0)
		return 0;
	oracle_free(mem);
	return -1;
}

void oracle_free(oracle_mem *mem)
{
	json_decref(mem->root);
	free(mem->labels);
	free(mem->decoded);
	memset(mem, 0, sizeof *mem);
}
