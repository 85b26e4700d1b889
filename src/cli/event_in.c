/*
 * event_in.c - one input line to one event: json_event.c parses and checks
 * the line, the library checks the event, and an event without "id" gets
 * the content id.
 */
#include "event_in.h"

#include <stdio.h>
#include <string.h>

/* A scratch buffer bigger than this is freed after use rather than kept
 * for the next line: cmd_append keeps a scratch per event of its batch. */
#define KEEP_BYTES (16u << 10)

int event_in_parse(tdm_event *ev, event_in_mem *mem, const char *line,
                   size_t len, char *err, size_t errlen)
{
	int has_id;
	if (json_event_parse(ev, &has_id, &mem->scratch, line, len, err,
	                     errlen))
		return -1;
	if (tdm_event_check(ev) != 0) {
		snprintf(err, errlen, "%s", tdm_error_message());
		memset(ev, 0, sizeof *ev);
		return -1;
	}
	if (!has_id)
		ev->id = tdm_event_content_id(ev);
	return 0;
}

void event_in_recycle(event_in_mem *mem)
{
	json_event_scratch_trim(&mem->scratch, KEEP_BYTES);
}

void event_in_free(event_in_mem *mem)
{
	json_event_scratch_free(&mem->scratch);
}
