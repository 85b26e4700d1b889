/* fuzz_tmp.c - the temporary directory a fuzz target works in, removed
 * when the process exits, so that replaying the corpus in every test run
 * leaves nothing behind. A process that ends without exit handlers (an
 * abort, libFuzzer's _Exit after a crash, a timeout or out of memory)
 * leaves its directory, in /dev/shm when there is one: remove
 * tdm-fuzz-* there after a long libFuzzer run that found crashes. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz.h"

static char top[64];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) != 0;
}

static void remove_top(void)
{
	if (nftw(top, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "fuzz: could not remove %s\n", top);
}

void fuzz_tempdir(char *out, size_t cap, const char *name)
{
	if (top[0]) /* one per process */
		abort();
	/* tmpfs when there is one: some targets sync and copy stores per input */
	snprintf(top, sizeof top, "%s/tdm-fuzz-%s.XXXXXX",
	         access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", name);
	if (!mkdtemp(top))
		abort();
	atexit(remove_top);
	if ((size_t)snprintf(out, cap, "%s", top) >= cap)
		abort();
}
