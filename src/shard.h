/* shard.h - shard files: names, headers, and a buffered record scanner.
 *
 * A shard has a main file (records in arrival order, bound by the grace
 * invariant) and a recon file (late records, unordered). Both start with a
 * 64-byte header (docs/FORMAT.md) followed by records (record.h). */
#ifndef TDM_SHARD_H
#define TDM_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

#define SHARD_HEADER 64u
#define SHARD_PATH_MAX 4096

/* SHARD_SEALED: a main file rewritten sorted in compressed blocks
 * (sealed.h); its name carries a generation. SHARD_SEALED_TMP is one being
 * written, SHARD_DROPPED a shard's data file renamed by retention. */
typedef enum shard_kind {
	SHARD_MAIN = 1,
	SHARD_RECON = 2,
	SHARD_SEALED = 3,
	SHARD_SEALED_TMP = 4,
	SHARD_DROPPED = 5
} shard_kind;

/* The facts a header must agree with. */
typedef struct shard_id {
	int64_t shard;
	int64_t duration_ns;
	int64_t grace_ns;
	uint64_t gen; /* seal generation: 0 for a shard never sealed */
} shard_id;

/* "shards/00000000000000472222.main", relative to the store. */
void shard_relname(char *out, size_t cap, int64_t shard, shard_kind kind);

/* "shards/00000000000000472222.00000003.sealed" and the like: the name of
 * any kind, `gen` used by SHARD_SEALED and SHARD_SEALED_TMP. */
void shard_relname_gen(char *out, size_t cap, int64_t shard, shard_kind kind,
                       uint64_t gen);

/* Parses a name made by shard_relname (without "shards/"); 0 or -1. Only
 * main and recon names. */
int shard_parse_name(int64_t *shard, shard_kind *kind, const char *name);

/* Parses a name of any kind made by shard_relname_gen; 0 or -1. */
int shard_parse_name_gen(int64_t *shard, shard_kind *kind, uint64_t *gen,
                         const char *name);

void shard_header_encode(uint8_t *out, shard_kind kind, const shard_id *id);

/* What shard_header_check says of a header of another seal generation:
 * not damage, but a file that was replaced (shard_file_open then fails with
 * TDM_ECORRUPT even in READ_ANY and REPAIR modes). */
extern const char SHARD_OTHER_GEN[];

/* NULL when sound, else what is wrong. */
const char *shard_header_check(const uint8_t *hdr, shard_kind kind,
                               const shard_id *id);

enum shard_open_mode {
	SHARD_READ,     /* read only */
	SHARD_WRITE,    /* read and write */
	SHARD_CREATE,   /* read and write, made with a synced header if missing */
	SHARD_READ_ANY, /* read only, even with a damaged header */
	SHARD_REPAIR    /* as CREATE, even with a damaged header; a file shorter
	                   than a header (no record) gets its header again */
};
#define SHARD_BAD_HEADER 1

/* Opens a shard file as `mode` says. `name` is for messages. Returns 0;
 * SHARD_BAD_HEADER (READ_ANY, REPAIR: the file is open and its records
 * may be read; the message says what is wrong); TDM_ENOTFOUND when
 * missing; TDM_ECORRUPT on a bad header; TDM_EIO. `*size` gets its size. */
int shard_file_open(int *fd, uint64_t *size, const char *path,
                    const char *name, shard_kind kind, const shard_id *id,
                    enum shard_open_mode mode);

/* Reads records in file order from a window of a shard file. A record that
 * is not sound is skipped: the scanner finds the next offset where a sound
 * record starts, counts the damage and remembers the first place. */
struct shard_scan;

/* A scanner of another file layout (sealed.c) plugs in here: shard.c then
 * hands next/seek/free to it. */
typedef struct scan_hooks {
	int (*next)(struct shard_scan *sc, rec_view *rec, uint64_t *off,
	            const char **why, int strict);
	void (*seek)(struct shard_scan *sc);
	void (*free)(struct shard_scan *sc);
} scan_hooks;

typedef struct shard_scan {
	int fd;
	const char *name;
	uint64_t pos, end;
	uint8_t *buf;
	size_t cap, buf_len;
	uint64_t buf_off;
	size_t first_chunk, chunk;
	int64_t ts_lo, ts_hi; /* a record outside [ts_lo, ts_hi) is unsound */
	uint64_t damaged;
	char damage_msg[256];
	const scan_hooks *hooks; /* NULL for main and recon files */
	void *hook_state;
} shard_scan;

/* Counts a damaged place and remembers the first (for hooks). */
void scan_note_damage(shard_scan *sc, uint64_t pos, const char *why);

void scan_init(shard_scan *sc, int fd, const char *name, uint64_t start,
               uint64_t end, size_t first_chunk);
void scan_free(shard_scan *sc);

/* Records of a shard lie in its time range: one outside it is unsound. The
 * check runs on the header, before the body is read, so resynchronising
 * over damage does not read megabytes for each plausible length. */
void scan_bounds(shard_scan *sc, int64_t ts_lo, int64_t ts_hi);

/* Moves to `pos` (a record boundary) and stops at `end`, keeping buffered
 * bytes if possible. Nothing past `end` is read. */
void scan_seek(shard_scan *sc, uint64_t pos, uint64_t end);

/* 0 with the next record in `*rec` (borrowed until the next call) and its
 * offset in `*off`; 1 at `end`; TDM_EIO or TDM_ENOMEM. */
int scan_next(shard_scan *sc, rec_view *rec, uint64_t *off);

/* Like scan_next, but a bad record stops the scan: returns 2 with `*off`
 * at the bad record and `*why` set. Used by recovery to find a torn tail. */
int scan_next_strict(shard_scan *sc, rec_view *rec, uint64_t *off,
                     const char **why);

#endif
