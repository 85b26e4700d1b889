/*
 * utf8.c - strict UTF-8 validation (RFC 3629), with an ASCII fast path
 * because most payloads are plain log lines.
 */
#include "codec.h"

#include <string.h>

/* Length of the ASCII run at the start of [s, s+len), 8 bytes a step. */
static size_t ascii_prefix(const uint8_t *s, size_t len)
{
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, 8);
		if (w & UINT64_C(0x8080808080808080))
			break;
	}
	while (i < len && s[i] < 0x80)
		i++;
	return i;
}

/* The ranges of the second byte exclude overlongs (E0, F0), surrogates
 * (ED) and code points past U+10FFFF (F4), as in RFC 3629's table. */
size_t utf8_sequence_len(const uint8_t *s, size_t avail)
{
	uint8_t c = s[0], lo = 0x80, hi = 0xBF;
	size_t n;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (avail < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	return n;
}

int utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t n;
		i += ascii_prefix(s + i, len - i);
		if (i == len)
			break;
		n = utf8_sequence_len(s + i, len - i);
		if (n == 0)
			return 0;
		i += n;
	}
	return 1;
}
