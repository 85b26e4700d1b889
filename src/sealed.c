/* sealed.c - sealed files: the block writer and the block scanner.
 *
 * A block is a header (magic, compressed and raw sizes, record count,
 * first and last ts, checksum) and the zstd frame of its records. Records
 * keep the main-file layout with their 4-byte checksum zeroed: the block's
 * checksum covers them, and the scanner puts each record's checksum back
 * after decompressing, so rec_decode and every caller see ordinary
 * records. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "bytes.h"
#include "error.h"
#include "hash.h"
#include "io.h"
#include "sealed.h"

static const char BLOCK_MAGIC[4] = {'T', 'D', 'M', 'B'};
static const char FOOTER_MAGIC[8] = {'T', 'D', 'M', 'S', 'E', 'A', 'L', 'F'};
/* A block holds at least one record; one record may be as large as REC_MAX. */
#define MAX_RAW (REC_MAX + SEALED_BLOCK_RAW)

static uint64_t block_sum(const uint8_t *hdr, const uint8_t *comp, size_t len)
{
	return tdm_hash64(comp, len, tdm_hash64(hdr, 32, 0));
}

/* ---- the writer ---------------------------------------------------------- */

int sealed_writer_open(sealed_writer *sw, int fd, const char *name,
                       const uint8_t *header, int level)
{
	memset(sw, 0, sizeof *sw);
	sw->fd = fd;
	sw->name = name;
	sw->level = level;
	sw->f.min_ts = INT64_MAX;
	sw->f.max_ts = -1;
	if (!(sw->cctx = ZSTD_createCCtx()))
		return tdm_fail(TDM_ENOMEM, "out of memory");
	int r = io_pwrite(fd, header, SHARD_HEADER, 0);
	if (r < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s: write header", name);
	sw->off = SHARD_HEADER;
	sw->f.blocks_end = SHARD_HEADER;
	return 0;
}

static int flush_block(sealed_writer *sw)
{
	if (!sw->count)
		return 0;
	size_t bound = ZSTD_compressBound(sw->raw_len) + SEALED_BLOCK_HEADER;
	if (bound > sw->out_cap) {
		uint8_t *p = realloc(sw->out, bound);
		if (!p)
			return tdm_fail(TDM_ENOMEM, "out of memory");
		sw->out = p;
		sw->out_cap = bound;
	}
	size_t n = ZSTD_compressCCtx(sw->cctx, sw->out + SEALED_BLOCK_HEADER,
	                             bound - SEALED_BLOCK_HEADER, sw->raw, sw->raw_len,
	                             sw->level);
	if (ZSTD_isError(n))
		return tdm_fail(TDM_ERROR, "%s: zstd: %s", sw->name, ZSTD_getErrorName(n));
	uint8_t *h = sw->out;
	memcpy(h, BLOCK_MAGIC, 4);
	put_le(h + 4, n, 4);
	put_le(h + 8, sw->raw_len, 4);
	put_le(h + 12, sw->count, 4);
	put_le(h + 16, (uint64_t)sw->first, 8);
	put_le(h + 24, (uint64_t)sw->last, 8);
	put_le(h + 32, block_sum(h, h + SEALED_BLOCK_HEADER, n), 8);
	int r = io_pwrite(sw->fd, h, SEALED_BLOCK_HEADER + n, sw->off);
	if (r < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s: write at offset %" PRIu64,
		                      sw->name, sw->off);
	sw->off += SEALED_BLOCK_HEADER + n;
	sw->f.blocks++;
	sw->f.blocks_end = sw->off;
	sw->raw_len = 0;
	sw->count = 0;
	return 0;
}

int sealed_writer_add(sealed_writer *sw, const uint8_t *rec, uint32_t len,
                      int64_t ts)
{
	if (sw->raw_len + len > sw->raw_cap) {
		size_t cap = sw->raw_cap ? sw->raw_cap : SEALED_BLOCK_RAW + 4096;
		while (cap < sw->raw_len + len)
			cap *= 2;
		uint8_t *p = realloc(sw->raw, cap);
		if (!p)
			return tdm_fail(TDM_ENOMEM, "out of memory");
		sw->raw = p;
		sw->raw_cap = cap;
	}
	uint8_t *p = sw->raw + sw->raw_len;
	memcpy(p, rec, len);
	put_le(p + 4, 0, 4); /* the block checksum covers it */
	sw->raw_len += len;
	if (!sw->count++)
		sw->first = ts;
	sw->last = ts;
	sw->f.events++;
	sw->f.raw_bytes += len;
	if (ts < sw->f.min_ts)
		sw->f.min_ts = ts;
	if (ts > sw->f.max_ts)
		sw->f.max_ts = ts;
	return sw->raw_len >= SEALED_BLOCK_RAW ? flush_block(sw) : 0;
}

int sealed_writer_finish(sealed_writer *sw, uint64_t *size)
{
	int r = flush_block(sw);
	if (r)
		return r;
	uint8_t f[SEALED_FOOTER] = {0};
	memcpy(f, FOOTER_MAGIC, 8);
	put_le(f + 8, sw->f.blocks, 8);
	put_le(f + 16, sw->f.events, 8);
	put_le(f + 24, sw->f.raw_bytes, 8);
	put_le(f + 32, sw->f.blocks_end, 8);
	put_le(f + 40, (uint64_t)sw->f.min_ts, 8);
	put_le(f + 48, (uint64_t)sw->f.max_ts, 8);
	put_le(f + 56, tdm_hash64(f, 56, 0), 8);
	if ((r = io_pwrite(sw->fd, f, sizeof f, sw->off)) < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s: write footer", sw->name);
	*size = sw->off + SEALED_FOOTER;
	return 0;
}

void sealed_writer_free(sealed_writer *sw)
{
	ZSTD_freeCCtx(sw->cctx);
	free(sw->raw);
	free(sw->out);
	sw->cctx = NULL;
	sw->raw = sw->out = NULL;
}

/* ---- the footer ------------------------------------------------------------ */

int sealed_footer_read(sealed_footer *out, int fd, const char *name,
                       uint64_t size)
{
	uint8_t f[SEALED_FOOTER];
	size_t got;
	if (size < SHARD_HEADER + SEALED_FOOTER)
		return tdm_fail(TDM_ECORRUPT, "%s: %" PRIu64 " bytes: too short for a"
		                " sealed file", name, size);
	int r = io_pread(fd, f, sizeof f, size - SEALED_FOOTER, &got);
	if (r < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s: read footer", name);
	if (got < sizeof f || memcmp(f, FOOTER_MAGIC, 8) != 0 ||
	    get_le(f + 56, 8) != tdm_hash64(f, 56, 0))
		return tdm_fail(TDM_ECORRUPT, "%s: offset %" PRIu64 ": bad footer", name,
		                size - SEALED_FOOTER);
	out->blocks = get_le(f + 8, 8);
	out->events = get_le(f + 16, 8);
	out->raw_bytes = get_le(f + 24, 8);
	out->blocks_end = get_le(f + 32, 8);
	out->min_ts = (int64_t)get_le(f + 40, 8);
	out->max_ts = (int64_t)get_le(f + 48, 8);
	if (out->blocks_end != size - SEALED_FOOTER)
		return tdm_fail(TDM_ECORRUPT, "%s: offset %" PRIu64 ": footer says the"
		                " blocks end at %" PRIu64, name, size - SEALED_FOOTER,
		                out->blocks_end);
	return 0;
}

/* ---- the scanner ------------------------------------------------------------ */

typedef struct block_scan {
	uint64_t blocks_end;
	int valid;           /* raw holds the block at blk_off */
	uint64_t blk_off, blk_next;
	uint8_t *comp, *raw;
	size_t comp_cap, raw_cap, raw_len, cursor;
	ZSTD_DCtx *dctx;
	int no_sums;         /* leave record checksums zero */
} block_scan;

static void hook_seek(shard_scan *sc)
{
	((block_scan *)sc->hook_state)->valid = 0;
}

static void hook_free(shard_scan *sc)
{
	block_scan *b = sc->hook_state;
	if (!b)
		return;
	ZSTD_freeDCtx(b->dctx);
	free(b->comp);
	free(b->raw);
	free(b);
	sc->hook_state = NULL;
}

static int grow(uint8_t **p, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	uint8_t *n = realloc(*p, need);
	if (!n)
		return tdm_fail(TDM_ENOMEM, "out of memory for a %zu-byte block", need);
	*p = n;
	*cap = need;
	return 0;
}

/* Reads, checks and decompresses the block at `pos`: 0, REC_BAD with
 * `*why`, or an error. */
static int load_block(shard_scan *sc, block_scan *b, uint64_t pos, uint64_t end,
                      const char **why)
{
	uint8_t h[SEALED_BLOCK_HEADER];
	size_t got;
	if (end < pos + SEALED_BLOCK_HEADER) {
		*why = "block header cut short";
		return REC_BAD;
	}
	int r = io_pread(sc->fd, h, sizeof h, pos, &got);
	if (r < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s: read at offset %" PRIu64, sc->name, pos);
	if (got < sizeof h || memcmp(h, BLOCK_MAGIC, 4) != 0) {
		*why = "not a block (bad magic)";
		return REC_BAD;
	}
	uint64_t comp_len = get_le(h + 4, 4), raw_len = get_le(h + 8, 4);
	if (comp_len > end - pos - SEALED_BLOCK_HEADER) {
		*why = "block runs past the end of the blocks";
		return REC_BAD;
	}
	if (raw_len > MAX_RAW || raw_len < REC_HEADER) {
		*why = "block size out of range";
		return REC_BAD;
	}
	if ((r = grow(&b->comp, &b->comp_cap, comp_len ? comp_len : 1)) ||
	    (r = grow(&b->raw, &b->raw_cap, raw_len)))
		return r;
	r = io_pread(sc->fd, b->comp, comp_len, pos + SEALED_BLOCK_HEADER, &got);
	if (r < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s: read at offset %" PRIu64, sc->name,
		                      pos + SEALED_BLOCK_HEADER);
	if (got < comp_len || get_le(h + 32, 8) != block_sum(h, b->comp, comp_len)) {
		*why = "block checksum mismatch";
		return REC_BAD;
	}
	if (!b->dctx && !(b->dctx = ZSTD_createDCtx()))
		return tdm_fail(TDM_ENOMEM, "out of memory");
	size_t n = ZSTD_decompressDCtx(b->dctx, b->raw, raw_len, b->comp, comp_len);
	if (ZSTD_isError(n) || n != raw_len) {
		*why = "block does not decompress to its size";
		return REC_BAD;
	}
	b->valid = 1;
	b->blk_off = pos;
	b->blk_next = pos + SEALED_BLOCK_HEADER + comp_len;
	b->raw_len = raw_len;
	b->cursor = 0;
	return 0;
}

/* The next record of the loaded block: 0, or REC_BAD. Its checksum is put
 * back first, so that it decodes as in a main file. */
static int block_record(shard_scan *sc, block_scan *b, rec_view *rec,
                        const char **why)
{
	uint8_t *p = b->raw + b->cursor;
	size_t avail = b->raw_len - b->cursor;
	uint64_t len = avail >= 4 ? get_le(p, 4) : 0;
	if (avail < REC_HEADER || len < REC_HEADER || len > avail) {
		*why = "record does not fit in its block";
		return REC_BAD;
	}
	/* The block's checksum covered the bytes: the record's own checksum is
	 * put back (so its bytes are a main file's), not checked again. */
	if (!b->no_sums)
		rec_set_seq(p, get_le(p + 8, 8));
	if (rec_decode_trusted(rec, p, (uint32_t)len, why) != REC_OK)
		return REC_BAD;
	if (rec->ts < sc->ts_lo || rec->ts >= sc->ts_hi) {
		*why = "ts outside the shard's time range";
		return REC_BAD;
	}
	b->cursor += len;
	return 0;
}

static int hook_next(shard_scan *sc, rec_view *rec, uint64_t *off,
                     const char **why, int strict)
{
	block_scan *b = sc->hook_state;
	uint64_t end = sc->end < b->blocks_end ? sc->end : b->blocks_end;
	for (;;) {
		if (b->valid && sc->pos == b->blk_off) {
			if (b->cursor < b->raw_len) {
				if (block_record(sc, b, rec, why) == 0) {
					*off = b->blk_off;
					if (b->cursor == b->raw_len) {
						sc->pos = b->blk_next;
						b->valid = 0;
					}
					return 0;
				}
				/* The checksum held, yet a record is unsound: the
				 * block's bytes are not what tidemark wrote. */
				b->valid = 0;
				if (strict) {
					*off = sc->pos;
					return 2;
				}
				scan_note_damage(sc, sc->pos, *why);
			}
			sc->pos = b->blk_next;
			b->valid = 0;
			continue;
		}
		if (sc->pos >= end)
			return 1;
		int r = load_block(sc, b, sc->pos, end, why);
		if (r < 0)
			return r;
		if (r == 0)
			continue;
		if (strict) {
			*off = sc->pos;
			return 2;
		}
		scan_note_damage(sc, sc->pos, *why);
		/* Resynchronise: the next offset where a sound block starts. */
		const char *ignored;
		for (sc->pos++; sc->pos < end; sc->pos++) {
			if ((r = load_block(sc, b, sc->pos, end, &ignored)) < 0)
				return r;
			if (r == 0)
				break;
		}
	}
}

void sealed_scan_restore_sums(shard_scan *sc, int keep)
{
	if (sc->hooks && sc->hook_state)
		((block_scan *)sc->hook_state)->no_sums = !keep;
}

static const scan_hooks HOOKS = {hook_next, hook_seek, hook_free};

int sealed_scan_attach(shard_scan *sc, uint64_t size)
{
	block_scan *b = calloc(1, sizeof *b);
	if (!b)
		return tdm_fail(TDM_ENOMEM, "out of memory");
	sealed_footer f;
	/* Without a sound footer, the blocks are read up to the end of the
	 * file: what is not a block there is reported as damage. */
	b->blocks_end = sealed_footer_read(&f, sc->fd, sc->name, size) == 0
	                    ? f.blocks_end : size;
	sc->hooks = &HOOKS;
	sc->hook_state = b;
	return 0;
}
