/*
 * loki_push.c - the Loki JSON push body to events, with jansson (a push
 * is a nested document, not one event per line, so the CLI's line parser
 * does not fit it).
 */
#include "loki_push.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *what, size_t si,
                size_t vi)
{
	if (vi == (size_t)-1)
		snprintf(err, errlen, "streams[%zu]: %s", si, what);
	else
		snprintf(err, errlen, "streams[%zu].values[%zu]: %s", si, vi,
		         what);
	return -1;
}

/* A string holding no NUL (labels are C strings). */
static const char *c_string(const json_t *v)
{
	const char *s = json_string_value(v);
	return s && strlen(s) == json_string_length(v) ? s : NULL;
}

/* Adds the pairs of object `o` to labels[*n]. */
static const char *add_labels(tdm_label *labels, size_t *n, json_t *o)
{
	const char *key;
	json_t *v;
	if (!json_is_object(o))
		return "labels are not an object";
	json_object_foreach(o, key, v) {
		const char *s = c_string(v);
		if (!s)
			return "a label value is not a string (or holds NUL)";
		if (strlen(key) == 0)
			return "a label key is empty";
		if (*n == TDM_MAX_LABELS)
			return "more than 64 labels";
		for (size_t i = 0; i < *n; i++)
			if (strcmp(labels[i].key, key) == 0)
				return "a structured metadata key repeats a "
				       "stream label";
		labels[*n].key = key;
		labels[*n].value = s;
		(*n)++;
	}
	return NULL;
}

/* "1700000000000000000": decimal ns, no sign, fits int64. */
static const char *parse_ts(int64_t *out, const json_t *v)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	uint64_t n = 0;
	if (!s)
		return "the timestamp is not a string of nanoseconds";
	if (len == 0 || len > 19)
		return "the timestamp is not 1 to 19 digits of nanoseconds";
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return "the timestamp is not a string of nanoseconds";
		n = n * 10 + (uint64_t)(s[i] - '0');
	}
	if (n >= (uint64_t)INT64_MAX)
		return "the timestamp is too large";
	*out = (int64_t)n;
	return NULL;
}

static int parse_stream(event_batch *b, json_t *st, size_t si, char *err,
                        size_t errlen)
{
	tdm_label labels[TDM_MAX_LABELS];
	size_t n_stream = 0, vi;
	const char *what;
	json_t *values, *val;
	if (!json_is_object(st))
		return fail(err, errlen, "not an object", si, (size_t)-1);
	if ((what = add_labels(labels, &n_stream, json_object_get(st, "stream"))))
		return fail(err, errlen, json_object_get(st, "stream") ? what :
		            "no \"stream\" label object", si, (size_t)-1);
	values = json_object_get(st, "values");
	if (!json_is_array(values))
		return fail(err, errlen, "\"values\" is not an array", si,
		            (size_t)-1);
	json_array_foreach(values, vi, val) {
		tdm_event ev = {0};
		size_t n = n_stream;
		size_t parts = json_array_size(val);
		if (!json_is_array(val) || parts < 2 || parts > 3)
			return fail(err, errlen, "not [timestamp, line] or "
			            "[timestamp, line, metadata]", si, vi);
		if ((what = parse_ts(&ev.ts, json_array_get(val, 0))))
			return fail(err, errlen, what, si, vi);
		json_t *line = json_array_get(val, 1);
		if (!json_is_string(line))
			return fail(err, errlen, "the line is not a string", si, vi);
		if (parts == 3 &&
		    (what = add_labels(labels, &n, json_array_get(val, 2))))
			return fail(err, errlen, what, si, vi);
		ev.labels = labels;
		ev.n_labels = n;
		ev.payload = json_string_value(line);
		ev.payload_len = json_string_length(line);
		if (tdm_event_check(&ev) != 0)
			return fail(err, errlen, tdm_error_message(), si, vi);
		ev.id = tdm_event_content_id(&ev);
		if (event_batch_add(b, &ev))
			return fail(err, errlen, "out of memory", si, vi);
	}
	return 0;
}

int loki_parse(event_batch *b, const char *body, size_t len, char *err,
               size_t errlen)
{
	json_error_t je;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
	                         &je);
	json_t *streams, *st;
	size_t si;
	int rc = 0;
	if (!root) {
		snprintf(err, errlen, "not valid JSON: %s at byte %d", je.text,
		         je.position);
		return -1;
	}
	streams = json_object_get(root, "streams");
	if (!json_is_object(root) || !json_is_array(streams)) {
		snprintf(err, errlen, "expected {\"streams\":[...]}");
		rc = -1;
	} else {
		json_array_foreach(streams, si, st) {
			if ((rc = parse_stream(b, st, si, err, errlen)))
				break;
		}
	}
	json_decref(root);
	return rc;
}
