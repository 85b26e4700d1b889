/* json_oracle.h - the jansson-based NDJSON event parser the CLI had before
 * src/cli/json_event.c, kept as the reference of fuzz_json_diff. Same
 * contract as event_in_parse of that time. */
#ifndef TDM_FUZZ_JSON_ORACLE_H
#define TDM_FUZZ_JSON_ORACLE_H

#include <stddef.h>
#include <stdint.h>
#include <tidemark.h>

typedef struct oracle_mem {
	void *root;        /* the parsed JSON (json_t *) */
	tdm_label *labels;
	uint8_t *decoded;  /* the bytes of "payload_b64" */
} oracle_mem;

/* Parses `line` into *ev and *mem: 0, or -1 with the problem in err (and
 * *mem holding nothing). Runs tdm_event_check and fills in the content id
 * when "id" is absent, as the CLI did. */
int oracle_parse(tdm_event *ev, oracle_mem *mem, const char *line,
                 size_t len, char *err, size_t errlen);

void oracle_free(oracle_mem *mem);

#endif
