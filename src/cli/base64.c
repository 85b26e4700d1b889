/*
 * base64.c - standard base64 (RFC 4648 §4) with padding. Decoding is
 * strict so that every payload has exactly one spelling: a line that
 * round-trips through read and append is byte-identical.
 */
#include "codec.h"

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_len(size_t len)
{
	return (len + 2) / 3 * 4;
}

size_t base64_encode(char *out, const uint8_t *in, size_t len)
{
	char *o = out;
	size_t i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		             in[i + 2];
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = alphabet[(v >> 6) & 63];
		*o++ = alphabet[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	return (size_t)(o - out);
}

/* The 6-bit value of a base64 character, or -1. */
static int sextet(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes one 4-character group into out; returns the bytes written (1-3)
 * or -1. Padding is allowed only when `last` is set. */
static int decode_group(uint8_t *out, const char *g, int last)
{
	int pad = (g[3] == '=') + (g[3] == '=' && g[2] == '=');
	int a = sextet(g[0]), b = sextet(g[1]);
	int c = pad == 2 ? 0 : sextet(g[2]), d = pad ? 0 : sextet(g[3]);
	uint32_t v;
	if ((pad && !last) || a < 0 || b < 0 || c < 0 || d < 0)
		return -1;
	v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 |
	    (uint32_t)d;
	/* Canonical form: the bits that padding drops must be zero. */
	if ((pad == 1 && (v & 0xFF)) || (pad == 2 && (v & 0xFFFF)))
		return -1;
	out[0] = (uint8_t)(v >> 16);
	out[1] = (uint8_t)(v >> 8);
	out[2] = (uint8_t)v;
	return 3 - pad;
}

long long base64_decode(uint8_t *out, const char *in, size_t len)
{
	size_t n = 0;
	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		uint8_t group[3];
		int got = decode_group(group, in + i, i + 4 == len);
		if (got < 0)
			return -1;
		for (int k = 0; k < got; k++)
			out[n++] = group[k];
	}
	return (long long)n;
}
