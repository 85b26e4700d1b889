/* fuzz_sealed.c - sealed files: a valid one built from the input, then
 * damaged where the input says, then scanned. Bytes 0..3 of the input
 * choose the damage (a position and an XOR mask; mask 0: none); the rest
 * is cut into the payloads of events written in ts order through the
 * sealed block writer. The scan must never crash, return only sound
 * records, in order, and with no damage return every record. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "io.h"
#include "record.h"
#include "sealed.h"
#include "shard.h"

#define SHARD 7
#define DUR 3600000000000ll

static char path[256];

static void setup(void)
{
	if (path[0])
		return;
	char dir[64];
	fuzz_tempdir(dir, sizeof dir, "sealed");
	snprintf(path, sizeof path, "%s/00000000000000000007.00000001.sealed", dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	if (size < 4)
		return 0;
	uint32_t pos = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16;
	uint8_t mask = data[3];
	data += 4;
	size -= 4;

	shard_id id = {SHARD, DUR, 60000000000ll, 1};
	uint8_t hdr[SHARD_HEADER];
	shard_header_encode(hdr, SHARD_SEALED, &id);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		abort();
	sealed_writer sw;
	uint64_t written = 0, fsize = 0;
	static uint8_t rec[8192];
	if (sealed_writer_open(&sw, fd, "fuzz", hdr, 1))
		abort();
	/* Payloads: runs of the input up to a 0xff byte (at most 4000). */
	size_t at = 0;
	int64_t ts = SHARD * DUR;
	while (at < size) {
		size_t n = 0;
		while (at + n < size && data[at + n] != 0xff && n < 4000)
			n++;
		tdm_event ev = {ts, (uint32_t)written, 0, NULL, 0, data + at, n};
		size_t len = rec_size(&ev);
		rec_encode(rec, &ev, written + 1);
		if (sealed_writer_add(&sw, rec, (uint32_t)len, ts))
			abort();
		written++;
		ts += (int64_t)(n % 3); /* equal ts too */
		at += n + 1;
	}
	if (sealed_writer_finish(&sw, &fsize))
		abort();
	sealed_writer_free(&sw);
	if (mask && fsize > SHARD_HEADER) {
		uint8_t b;
		off_t off = SHARD_HEADER + (off_t)(pos % (fsize - SHARD_HEADER));
		if (pread(fd, &b, 1, off) != 1)
			abort();
		b ^= mask;
		if (pwrite(fd, &b, 1, off) != 1)
			abort();
	}
	close(fd);

	uint64_t got_size;
	int r = shard_file_open(&fd, &got_size, path, "fuzz", SHARD_SEALED, &id, SHARD_READ_ANY);
	if (r && r != SHARD_BAD_HEADER)
		return 0;
	for (int strict = 0; strict < 2; strict++) {
		shard_scan sc;
		scan_init(&sc, fd, "fuzz", SHARD_HEADER, got_size, 512);
		scan_bounds(&sc, SHARD * DUR, (SHARD + 1) * DUR);
		if (sealed_scan_attach(&sc, got_size))
			abort();
		rec_view v;
		uint64_t off, n = 0;
		int64_t last = -1;
		const char *why;
		while ((r = strict ? scan_next_strict(&sc, &v, &off, &why)
		                   : scan_next(&sc, &v, &off)) == 0) {
			size_t need;
			rec_view again;
			/* The checksum was put back: the record decodes on its own. */
			if (rec_decode(&again, v.bytes, v.len, &need, &why) != REC_OK ||
			    v.ts < last || off >= got_size || v.seq == 0 || v.seq > written)
				abort();
			last = v.ts;
			n++;
		}
		if (r < 0 && r != TDM_ENOMEM)
			abort();
		if (!mask && (n != written || r != 1 || sc.damaged))
			abort();
		scan_free(&sc);
	}
	close(fd);
	return 0;
}
