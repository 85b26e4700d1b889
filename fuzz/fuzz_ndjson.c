/* fuzz_ndjson.c - the CLI's NDJSON event parser, line by line, with one
 * event_in_mem reused across the lines as cmd_append does. Whatever it
 * accepts must pass the library's own event check. */
#include <stdlib.h>

#include "../src/cli/event_in.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	event_in_mem mem = {0};
	while (p <= end) {
		const char *nl = p;
		while (nl < end && *nl != '\n')
			nl++;
		tdm_event ev;
		char err[256];
		if (event_in_parse(&ev, &mem, p, (size_t)(nl - p), err, sizeof err) == 0) {
			if (tdm_event_check(&ev) != 0)
				abort();
			event_in_recycle(&mem);
		}
		p = nl + 1;
	}
	event_in_free(&mem);
	return 0;
}
