/* fuzz.h - the libFuzzer entry point each target defines. Under
 * -Dfuzzing_engine=none, replay.c drives it over a committed corpus so that
 * gcc builds run every target as an ordinary test. */
#ifndef TDM_FUZZ_H
#define TDM_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Makes a directory (the path into out[cap], NUL-terminated) that is
 * removed with all it holds when the process exits; aborts on failure.
 * Once per process. */
void fuzz_tempdir(char *out, size_t cap, const char *name);

#endif
