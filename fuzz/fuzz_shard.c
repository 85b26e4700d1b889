/* fuzz_shard.c - a shard file of arbitrary bytes, opened and scanned as a
 * main or recon file. The first input byte picks the kind and whether a
 * valid header is put in front (so the fuzzer reaches the records). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "io.h"
#include "shard.h"

static char path[256];

static void setup(void)
{
	if (path[0])
		return;
	char dir[64];
	fuzz_tempdir(dir, sizeof dir, "shard");
	snprintf(path, sizeof path, "%s/00000000000000000007.main", dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	if (size < 1)
		return 0;
	shard_kind kind = data[0] & 1 ? SHARD_RECON : SHARD_MAIN;
	int with_header = data[0] & 2;
	shard_id id = {7, 3600000000000ll, 60000000000ll, 0};

	FILE *f = fopen(path, "wb");
	if (!f)
		abort();
	if (with_header) {
		uint8_t h[SHARD_HEADER];
		shard_header_encode(h, kind, &id);
		fwrite(h, 1, sizeof h, f);
	}
	fwrite(data + 1, 1, size - 1, f);
	fclose(f);

	int fd;
	uint64_t fsize;
	if (shard_file_open(&fd, &fsize, path, "fuzz", kind, &id, SHARD_READ) != 0)
		return 0;
	shard_scan sc;
	scan_init(&sc, fd, "fuzz", SHARD_HEADER, fsize, 512);
	rec_view rec;
	uint64_t off, last = 0;
	int r;
	while ((r = scan_next(&sc, &rec, &off)) == 0) {
		/* Only sound records come out, in file order, inside the file. */
		size_t need;
		const char *why;
		rec_view again;
		if (off < last || off + rec.len > fsize ||
		    rec_decode(&again, rec.bytes, rec.len, &need, &why) != REC_OK)
			abort();
		last = off + rec.len;
	}
	if (r < 0)
		abort();
	scan_free(&sc);
	io_close(fd);
	return 0;
}
