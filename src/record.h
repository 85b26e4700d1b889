/* record.h - one event record in a shard file: encode, decode, compare.
 * Pure functions on bytes; no I/O. The layout is in docs/FORMAT.md:
 *
 *   0  u32 len        whole record, bytes
 *   4  u32 checksum   low 32 bits of XXH3-64(bytes [8, len), seed = len)
 *   8  u64 seq
 *  16  i64 ts         } the event's identity: bytes [16, len)
 *  24  u32 id         }
 *  28  u16 labels_len }
 *  30  labels         } (key NUL value NUL)*, sorted by key
 *  ..  payload        }
 * All integers little-endian. */
#ifndef TDM_RECORD_H
#define TDM_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "tidemark.h"

#define REC_HEADER 30u
#define REC_IDENTITY 16u /* offset where the event's identity starts */
#define REC_MAX (REC_HEADER + TDM_MAX_LABELS_BYTES + TDM_MAX_PAYLOAD)

typedef struct rec_view {
	const uint8_t *bytes; /* the whole record */
	uint32_t len;
	uint64_t seq;
	int64_t ts;
	uint32_t id;
	const uint8_t *labels;
	uint32_t labels_len;
	const uint8_t *payload;
	uint32_t payload_len;
} rec_view;

enum rec_status { REC_OK = 0, REC_SHORT = 1, REC_BAD = 2 };

/* Checks an event against the data model and limits; TDM_EINVAL with a
 * message naming the field, or 0. */
int rec_event_check(const tdm_event *ev);

/* A label pair in its canonical encoding, `key NUL value NUL`. */
typedef struct rec_pair {
	const uint8_t *bytes;
	uint32_t klen;     /* key bytes, without the NUL */
	uint32_t len;      /* all the pair's bytes */
	uint32_t id;       /* the writer's pair id (labelcache.h), or REC_NO_ID */
	uint32_t kpre;     /* the key's first 4 bytes big-endian, 0 past its end */
} rec_pair;
#define REC_NO_ID UINT32_MAX

/* rec_event_check of everything but the labels themselves (their count
 * and array pointer are checked). */
int rec_event_check_fields(const tdm_event *ev);

/* Checks label `i` of an event on its own (NULL, empty key, limits,
 * UTF-8); 0 with the key's and value's lengths, or TDM_EINVAL with
 * rec_event_check's message. */
int rec_label_check(size_t *klen, size_t *vlen, const tdm_label *l, size_t i);

/* Sorts an event's checked pairs (kpre set) by key and checks what
 * rec_event_check checks across them (unique keys, total bytes); 0 with
 * the label bytes in `*labels_len`, or TDM_EINVAL with rec_event_check's
 * message. */
int rec_pairs_sort_check(uint32_t *labels_len, rec_pair *p, size_t n);

/* rec_encode of an event whose labels are `p` (n pairs, sorted by
 * rec_pairs_sort_check, `labels_len` bytes in all), leaving the checksum
 * zero: rec_set_seq writes it. The record takes
 * REC_HEADER + labels_len + payload_len bytes. */
void rec_encode_pairs(uint8_t *dst, const tdm_event *ev, const rec_pair *p,
                      size_t n, uint32_t labels_len);

/* Bytes the record of a checked event takes. */
size_t rec_size(const tdm_event *ev);

/* Encodes a checked event with `seq` into `dst` (rec_size bytes). */
void rec_encode(uint8_t *dst, const tdm_event *ev, uint64_t seq);

/* Rewrites the seq of an encoded record and its checksum. */
void rec_set_seq(uint8_t *rec, uint64_t seq);

/* Decodes the record at `buf` with `avail` bytes available.
 * REC_OK: `out` filled. REC_SHORT: need `*need` bytes (> avail) to decide.
 * REC_BAD: not a sound record (bad length, checksum or labels); `*why`
 * says which. */
int rec_decode(rec_view *out, const uint8_t *buf, size_t avail, size_t *need,
               const char **why);

/* rec_decode of a whole record (`len` bytes) whose bytes a stronger
 * checksum already covered (a sealed block's): the record's own checksum
 * is not checked again. REC_OK or REC_BAD. */
int rec_decode_trusted(rec_view *out, const uint8_t *buf, uint32_t len,
                       const char **why);

/* Fingerprint of the event identity of a record: equal events, equal
 * fingerprints, wherever and whenever they were stored. */
uint64_t rec_fingerprint(const uint8_t *rec);

/* 1 when two records hold the same event (SPEC §2), 0 otherwise. */
int rec_same_event(const uint8_t *a, const uint8_t *b);

/* Read order (SPEC §4): ts, id, labels' canonical bytes, payload bytes.
 * Negative, zero or positive like memcmp. */
int rec_order(const rec_view *a, const rec_view *b);

/* Fills `out` (room for TDM_MAX_LABELS) with pointers into a record's
 * label bytes; returns the count. The bytes must have been decoded. */
size_t rec_labels(tdm_label *out, const uint8_t *labels, uint32_t len);

#endif
