/* sealed.h - the sealed file: a shard's records, fully sorted, in
 * zstd-compressed blocks of about 64 KiB (docs/FORMAT.md, "Sealed files").
 *
 * Reading plugs into the shard scanner (shard.h): a scanner attached to a
 * sealed file yields its records in order, each with the offset of its
 * block, so the sparse index, recovery, verify and the writer's dedupe scan
 * work on sealed files as on main files, with one index entry per block. */
#ifndef TDM_SEALED_H
#define TDM_SEALED_H

#include <stddef.h>
#include <stdint.h>

#include "shard.h"

#define SEALED_BLOCK_HEADER 40u
#define SEALED_FOOTER 64u
#define SEALED_BLOCK_RAW (64u * 1024) /* a block closes past this many bytes */

/* Makes `sc` (set up by scan_init on a sealed file's descriptor) read
 * blocks. `size` is the file's size; the footer after the blocks is read
 * here to know where they end. */
int sealed_scan_attach(shard_scan *sc, uint64_t size);

/* Records of a sealed block carry no checksum of their own (the block's
 * covers them); by default the scanner writes it back so that a record's
 * bytes are exactly a main file's. A caller that only decodes records (the
 * reader) skips that with keep = 0. */
void sealed_scan_restore_sums(shard_scan *sc, int keep);

/* What the footer says. */
typedef struct sealed_footer {
	uint64_t blocks, events, raw_bytes, blocks_end;
	int64_t min_ts, max_ts;
} sealed_footer;

/* Reads and checks the footer of a sealed file of `size` bytes: 0,
 * TDM_ECORRUPT (message names the file), TDM_EIO. */
int sealed_footer_read(sealed_footer *out, int fd, const char *name,
                       uint64_t size);

/* Writes a sealed file: records (in read order) in, blocks out. */
typedef struct sealed_writer {
	int fd;
	const char *name;
	int level;
	uint64_t off;
	uint8_t *raw, *out;
	size_t raw_len, raw_cap, out_cap;
	uint32_t count;
	int64_t first, last;
	void *cctx;
	sealed_footer f;
} sealed_writer;

/* Starts the file: writes `header` (SHARD_HEADER bytes) at offset 0.
 * `level` is the zstd level. */
int sealed_writer_open(sealed_writer *sw, int fd, const char *name,
                       const uint8_t *header, int level);
/* Adds one sound record (its bytes as in a main file). */
int sealed_writer_add(sealed_writer *sw, const uint8_t *rec, uint32_t len,
                      int64_t ts);
/* Writes the last block and the footer; `*size` gets the file's size. */
int sealed_writer_finish(sealed_writer *sw, uint64_t *size);
void sealed_writer_free(sealed_writer *sw);

#endif
