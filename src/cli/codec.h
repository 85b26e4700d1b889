/*
 * codec.h - byte-level encodings used by the NDJSON format: a strict UTF-8
 * validator (utf8.c) and standard base64 with padding (base64.c).
 */
#ifndef TIDEMARK_CODEC_H
#define TIDEMARK_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* 1 when [s, s+len) is well-formed UTF-8: no overlong forms, no surrogates,
 * nothing above U+10FFFF, no truncated sequences. */
int utf8_valid(const uint8_t *s, size_t len);

/* Length of the well-formed multi-byte sequence at s (s[0] >= 0x80, avail
 * bytes readable), or 0 if it is not well-formed in the sense above. */
size_t utf8_sequence_len(const uint8_t *s, size_t avail);

/* Bytes base64_encode writes for `len` input bytes (no NUL added). */
size_t base64_encoded_len(size_t len);

/* Writes the base64 of [in, in+len) to out, which has room for
 * base64_encoded_len(len) bytes; returns that length. */
size_t base64_encode(char *out, const uint8_t *in, size_t len);

/* Decodes strict standard base64: length a multiple of 4, '=' only as
 * final padding, unused bits zero, no whitespace. `out` has room for
 * len / 4 * 3 bytes; it may be `in` itself (each group of 4 is read before
 * its 3 bytes are written, and the writes trail the reads), so a buffer
 * can be decoded in place. Returns the decoded length, or -1 if
 * malformed. */
long long base64_decode(uint8_t *out, const char *in, size_t len);

#endif
