/* shard.c - shard file names, headers and the buffered record scanner. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "error.h"
#include "hash.h"
#include "io.h"
#include "shard.h"

static const char MAGIC[8] = {'T', 'D', 'M', 'S', 'H', 'A', 'R', 'D'};
#define FORMAT_VERSION 1u
#define MAX_CHUNK (1u << 20)

const char SHARD_OTHER_GEN[] = "header is of another seal generation (the shard was sealed since)";


void shard_relname(char *out, size_t cap, int64_t shard, shard_kind kind)
{
	snprintf(out, cap, "shards/%020" PRId64 ".%s", shard,
	         kind == SHARD_MAIN ? "main" : "recon");
}

void shard_relname_gen(char *out, size_t cap, int64_t shard, shard_kind kind,
                       uint64_t gen)
{
	switch (kind) {
	case SHARD_SEALED:
	case SHARD_SEALED_TMP:
		snprintf(out, cap, "shards/%020" PRId64 ".%08" PRIu64 ".sealed%s", shard,
		         gen, kind == SHARD_SEALED_TMP ? ".tmp" : "");
		break;
	case SHARD_DROPPED:
		snprintf(out, cap, "shards/%020" PRId64 ".dropped", shard);
		break;
	default:
		shard_relname(out, cap, shard, kind);
	}
}

int shard_parse_name(int64_t *shard, shard_kind *kind, const char *name)
{
	uint64_t gen;
	if (shard_parse_name_gen(shard, kind, &gen, name) ||
	    (*kind != SHARD_MAIN && *kind != SHARD_RECON))
		return -1;
	return 0;
}

int shard_parse_name_gen(int64_t *shard, shard_kind *kind, uint64_t *gen,
                         const char *name)
{
	int64_t v = 0;
	int i;
	for (i = 0; i < 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -1;
		if (v > (INT64_MAX - (name[i] - '0')) / 10)
			return -1;
		v = v * 10 + (name[i] - '0');
	}
	if (strcmp(name + i, ".main") == 0)
		*kind = SHARD_MAIN;
	else if (strcmp(name + i, ".recon") == 0)
		*kind = SHARD_RECON;
	else if (strcmp(name + i, ".dropped") == 0)
		*kind = SHARD_DROPPED;
	else {
		/* ".GGGGGGGG.sealed" or ".GGGGGGGG.sealed.tmp" */
		const char *p = name + i;
		uint64_t g = 0;
		if (*p++ != '.')
			return -1;
		int j;
		for (j = 0; j < 8; j++) {
			if (p[j] < '0' || p[j] > '9')
				return -1;
			g = g * 10 + (uint64_t)(p[j] - '0');
		}
		if (strcmp(p + j, ".sealed") == 0)
			*kind = SHARD_SEALED;
		else if (strcmp(p + j, ".sealed.tmp") == 0)
			*kind = SHARD_SEALED_TMP;
		else
			return -1;
		*gen = g;
	}
	*shard = v;
	return 0;
}

void shard_header_encode(uint8_t *out, shard_kind kind, const shard_id *id)
{
	memset(out, 0, SHARD_HEADER);
	memcpy(out, MAGIC, 8);
	put_le(out + 8, FORMAT_VERSION | (uint64_t)kind << 32, 8);
	put_le(out + 16, (uint64_t)id->shard, 8);
	put_le(out + 24, (uint64_t)id->duration_ns, 8);
	put_le(out + 32, (uint64_t)id->grace_ns, 8);
	put_le(out + 40, id->gen, 8);
	put_le(out + 56, tdm_hash64(out, 56, 0), 8);
}

const char *shard_header_check(const uint8_t *hdr, shard_kind kind,
                               const shard_id *id)
{
	if (memcmp(hdr, MAGIC, 8) != 0)
		return "not a tidemark shard file (bad magic)";
	if (get_le(hdr + 56, 8) != tdm_hash64(hdr, 56, 0))
		return "header checksum mismatch";
	uint64_t vk = get_le(hdr + 8, 8);
	if ((uint32_t)vk != FORMAT_VERSION)
		return "unsupported shard format version";
	if ((vk >> 32) != (uint64_t)kind)
		return "header says another file kind (main/recon)";
	if ((int64_t)get_le(hdr + 16, 8) != id->shard)
		return "header names another shard";
	if ((int64_t)get_le(hdr + 24, 8) != id->duration_ns ||
	    (int64_t)get_le(hdr + 32, 8) != id->grace_ns)
		return "header has other shard duration or grace than the store";
	if (get_le(hdr + 40, 8) != id->gen)
		return SHARD_OTHER_GEN;
	return NULL;
}

int shard_file_open(int *fd, uint64_t *size, const char *path,
                    const char *name, shard_kind kind, const shard_id *id,
                    enum shard_open_mode mode)
{
	int create = mode == SHARD_CREATE || mode == SHARD_REPAIR;
	int flags = mode == SHARD_READ || mode == SHARD_READ_ANY
	                ? O_RDONLY : O_RDWR | (create ? O_CREAT : 0);
	int r = io_open(fd, path, flags, 0644);
	if (r == -ENOENT)
		return tdm_fail(TDM_ENOTFOUND, "%s: missing", name);
	if (r < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s: open", name);
	uint8_t hdr[SHARD_HEADER];
	size_t got;
	if ((r = io_size(*fd, size)) < 0 ||
	    (r = io_pread(*fd, hdr, sizeof hdr, 0, &got)) < 0) {
		io_close(*fd);
		return tdm_fail_errno(TDM_EIO, -r, "%s: read header", name);
	}
	const char *why = got < SHARD_HEADER ? "file shorter than its header"
	                                     : shard_header_check(hdr, kind, id);
	/* Shorter than a header, the file holds no record: (re)write it. */
	if ((*size == 0 && create) || (why && *size < SHARD_HEADER && mode == SHARD_REPAIR)) {
		shard_header_encode(hdr, kind, id);
		if ((r = io_truncate(*fd, 0)) < 0 || (r = io_pwrite(*fd, hdr, sizeof hdr, 0)) < 0 ||
		    (r = io_fsync(*fd)) < 0) {
			io_close(*fd);
			return tdm_fail_errno(TDM_EIO, -r, "%s: write header", name);
		}
		*size = SHARD_HEADER;
		return 0;
	}
	if (!why)
		return 0;
	tdm_fail(TDM_ECORRUPT, "%s: offset 0: %s", name, why);
	/* Another generation is not damage: the shard was sealed since. */
	if (why != SHARD_OTHER_GEN && (mode == SHARD_READ_ANY || mode == SHARD_REPAIR)) {
		return SHARD_BAD_HEADER; /* the records may all be sound */
	}
	io_close(*fd);
	return TDM_ECORRUPT;
}

void scan_init(shard_scan *sc, int fd, const char *name, uint64_t start,
               uint64_t end, size_t first_chunk)
{
	memset(sc, 0, sizeof *sc);
	sc->fd = fd;
	sc->name = name;
	sc->pos = start;
	sc->end = end;
	sc->first_chunk = first_chunk < 512 ? 512 : first_chunk;
	sc->chunk = sc->first_chunk;
	sc->ts_hi = INT64_MAX;
}

void scan_bounds(shard_scan *sc, int64_t ts_lo, int64_t ts_hi)
{
	sc->ts_lo = ts_lo;
	sc->ts_hi = ts_hi;
}

void scan_free(shard_scan *sc)
{
	if (sc->hooks)
		sc->hooks->free(sc);
	sc->hooks = NULL;
	free(sc->buf);
	sc->buf = NULL;
}

void scan_seek(shard_scan *sc, uint64_t pos, uint64_t end)
{
	if (pos < sc->buf_off || pos > sc->buf_off + sc->buf_len)
		sc->chunk = sc->first_chunk;
	sc->pos = pos;
	sc->end = end;
	if (sc->hooks)
		sc->hooks->seek(sc);
}

/* Makes bytes [pos, pos + need) available in the buffer, reading ahead by
 * the current chunk (which doubles with each sequential read). Returns the
 * number of bytes available from pos (< need only at `end`), or < 0. */
static int64_t fill(shard_scan *sc, size_t need)
{
	uint64_t have_end = sc->buf_off + sc->buf_len;
	if (sc->pos >= sc->buf_off && sc->pos + need <= have_end)
		return (int64_t)((have_end < sc->end ? have_end : sc->end) - sc->pos);

	size_t keep = 0;
	if (sc->pos >= sc->buf_off && sc->pos < have_end) {
		keep = (size_t)(have_end - sc->pos);
		memmove(sc->buf, sc->buf + (sc->pos - sc->buf_off), keep);
	}
	size_t want = need > sc->chunk ? need : sc->chunk;
	if (sc->end - sc->pos < want)
		want = (size_t)(sc->end - sc->pos);
	if (want > sc->cap) {
		uint8_t *nb = realloc(sc->buf, want);
		if (!nb)
			return tdm_fail(TDM_ENOMEM, "%s: no memory for a %zu-byte read",
			                sc->name, want);
		sc->buf = nb;
		sc->cap = want;
	}
	size_t got = 0;
	if (want > keep) {
		int r = io_pread(sc->fd, sc->buf + keep, want - keep, sc->pos + keep, &got);
		if (r < 0)
			return tdm_fail_errno(TDM_EIO, -r, "%s: read at offset %" PRIu64,
			                      sc->name, sc->pos + keep);
	}
	sc->buf_off = sc->pos;
	sc->buf_len = keep + got;
	if (sc->chunk < MAX_CHUNK)
		sc->chunk *= 2;
	return (int64_t)(sc->buf_len < sc->end - sc->pos ? sc->buf_len : sc->end - sc->pos);
}


/* Decodes the record at pos: REC_OK, REC_BAD (why set), or < 0. A record
 * running past `end` is bad: committed data ends on a record boundary. The
 * header is checked before the body is read. */
static int decode_at(shard_scan *sc, rec_view *rec, const char **why)
{
	size_t need = REC_HEADER;
	int64_t prev = -1;
	for (;;) {
		int64_t avail = fill(sc, need);
		if (avail < 0)
			return (int)avail;
		if (avail <= prev) { /* the file ends before `end` */
			*why = "record cut short at the end of the file";
			return REC_BAD;
		}
		prev = avail;
		const uint8_t *p = sc->buf + (sc->pos - sc->buf_off);
		if (avail >= REC_HEADER) {
			int64_t ts = (int64_t)get_le(p + 16, 8);
			if (get_le(p, 4) > sc->end - sc->pos) {
				*why = "record cut short at the end of the file";
				return REC_BAD;
			}
			if (ts < sc->ts_lo || ts >= sc->ts_hi) {
				*why = "ts outside the shard's time range";
				return REC_BAD;
			}
		}
		int st = rec_decode(rec, p, (size_t)avail, &need, why);
		if (st != REC_SHORT)
			return st;
		if ((uint64_t)avail >= sc->end - sc->pos) {
			*why = "record cut short at the end of the file";
			return REC_BAD;
		}
	}
}

void scan_note_damage(shard_scan *sc, uint64_t pos, const char *why)
{
	if (sc->damaged++ == 0)
		snprintf(sc->damage_msg, sizeof sc->damage_msg,
		         "%s: offset %" PRIu64 ": %s", sc->name, pos, why);
}

static void note_damage(shard_scan *sc, const char *why)
{
	scan_note_damage(sc, sc->pos, why);
}

int scan_next_strict(shard_scan *sc, rec_view *rec, uint64_t *off,
                     const char **why)
{
	if (sc->hooks)
		return sc->hooks->next(sc, rec, off, why, 1);
	if (sc->pos >= sc->end)
		return 1;
	int st = decode_at(sc, rec, why);
	if (st < 0)
		return st;
	*off = sc->pos;
	if (st == REC_BAD)
		return 2;
	sc->pos += rec->len;
	return 0;
}

int scan_next(shard_scan *sc, rec_view *rec, uint64_t *off)
{
	const char *why;
	if (sc->hooks)
		return sc->hooks->next(sc, rec, off, &why, 0);
	int st = scan_next_strict(sc, rec, off, &why);
	if (st != 2)
		return st;
	note_damage(sc, why);
	/* Resynchronise: the next offset where a sound record starts. A false
	 * match needs a 32-bit checksum to agree by chance. */
	for (sc->pos++; sc->pos < sc->end; sc->pos++) {
		st = decode_at(sc, rec, &why);
		if (st < 0)
			return st;
		if (st == REC_OK) {
			*off = sc->pos;
			sc->pos += rec->len;
			return 0;
		}
	}
	return 1;
}
