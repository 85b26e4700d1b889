/* fuzz_json_diff.c - differential test of the CLI's event-line parser
 * (src/cli/json_event.c through event_in_parse) against the jansson-based
 * parser it replaced (json_oracle.c): every line of the input goes through
 * both, and they must agree on accepting it and, when they do, on every
 * field of the event: ts, id, the labels in order, the payload's bytes.
 * Any disagreement prints the line and aborts.
 *
 * With TDM_FUZZ_STRICT_MESSAGES=1 in the environment they must also agree
 * on whether a rejected line is "not valid JSON" (a syntax error) or a
 * schema problem; json_event.c's header comment lists the few rejected
 * lines where they knowingly differ, so that mode is for looking, not for
 * the committed corpus. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/cli/event_in.h"
#include "fuzz.h"
#include "json_oracle.h"

static void dump(const char *why, const char *line, size_t len,
                 const char *err_new, const char *err_old)
{
	fprintf(stderr, "fuzz_json_diff: %s\nline (%zu bytes): ", why, len);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c >= 0x20 && c < 0x7F && c != '\\')
			fputc(c, stderr);
		else
			fprintf(stderr, "\\x%02x", c);
	}
	fprintf(stderr, "\nnew: %s\nold: %s\n", err_new, err_old);
	abort();
}

static int same_event(const tdm_event *a, const tdm_event *b)
{
	if (a->ts != b->ts || a->id != b->id || a->n_labels != b->n_labels ||
	    a->payload_len != b->payload_len)
		return 0;
	for (size_t i = 0; i < a->n_labels; i++)
		if (strcmp(a->labels[i].key, b->labels[i].key) != 0 ||
		    strcmp(a->labels[i].value, b->labels[i].value) != 0)
			return 0;
	return a->payload_len == 0 ||
	       memcmp(a->payload, b->payload, a->payload_len) == 0;
}

static int is_syntax(const char *err)
{
	return strncmp(err, "not valid JSON", 14) == 0;
}

static void compare(event_in_mem *mem, const char *line, size_t len,
                    int strict)
{
	tdm_event ev_new, ev_old;
	oracle_mem old;
	char err_new[256] = "", err_old[256] = "";
	int rc_new = event_in_parse(&ev_new, mem, line, len, err_new,
	                            sizeof err_new);
	int rc_old = oracle_parse(&ev_old, &old, line, len, err_old,
	                          sizeof err_old);
	if (rc_new != rc_old)
		dump(rc_new ? "only the oracle accepts" : "only the new parser "
		     "accepts", line, len, err_new, err_old);
	if (rc_new == 0) {
		if (!same_event(&ev_new, &ev_old))
			dump("the events differ", line, len, "", "");
		if (tdm_event_check(&ev_new) != 0)
			abort();
		oracle_free(&old);
	} else {
		if (err_new[0] == '\0')
			dump("no message", line, len, err_new, err_old);
		if (strict && is_syntax(err_new) != is_syntax(err_old))
			dump("one says syntax error, the other not", line, len,
			     err_new, err_old);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	const char *strict_env = getenv("TDM_FUZZ_STRICT_MESSAGES");
	int strict = strict_env && strcmp(strict_env, "1") == 0;
	event_in_mem mem = {0}; /* reused line after line, as cmd_append does */
	while (p <= end) {
		const char *nl = p;
		while (nl < end && *nl != '\n')
			nl++;
		compare(&mem, p, (size_t)(nl - p), strict);
		p = nl + 1;
	}
	event_in_free(&mem);
	return 0;
}
