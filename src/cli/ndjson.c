/*
 * ndjson.c - the event encoder. Each line's worst-case size is reserved
 * up front, so the writers below never check bounds byte by byte.
 */
#include "ndjson.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"

/* Bytes a string may take once escaped: every byte may become \u00XX. */
#define ESCAPED_MAX(n) ((n) * 6 + 2)

static int reserve(ndjson_buf *b, size_t extra)
{
	size_t need = b->len + extra, cap = b->cap ? b->cap : 4096;
	char *p;
	if (need <= b->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	if (!(p = realloc(b->data, cap)))
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

static void put(ndjson_buf *b, const char *s, size_t n)
{
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

#define PUT_LIT(b, lit) put((b), (lit), sizeof(lit) - 1)

static void put_u64(ndjson_buf *b, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do {
		tmp[sizeof tmp - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(b, tmp + sizeof tmp - n, (size_t)n);
}

/* The escape for byte c, or 0 when it stands for itself. Control bytes
 * without a short form become \u00XX. */
static char short_escape(unsigned char c)
{
	switch (c) {
	case '"': return '"';
	case '\\': return '\\';
	case '\n': return 'n';
	case '\r': return 'r';
	case '\t': return 't';
	case '\b': return 'b';
	case '\f': return 'f';
	default: return 0;
	}
}

static int needs_escape(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\';
}

static void put_escaped_byte(ndjson_buf *b, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char e = short_escape(c);
	char *o = b->data + b->len;
	o[0] = '\\';
	if (e) {
		o[1] = e;
		b->len += 2;
		return;
	}
	memcpy(o + 1, "u00", 3);
	o[4] = hex[c >> 4];
	o[5] = hex[c & 15];
	b->len += 6;
}

/* A JSON string from UTF-8 bytes, copying unescaped runs whole. */
static void put_string(ndjson_buf *b, const void *data, size_t len)
{
	const unsigned char *s = data;
	size_t run = 0;
	b->data[b->len++] = '"';
	for (size_t i = 0; i < len; i++) {
		if (!needs_escape(s[i]))
			continue;
		put(b, (const char *)s + run, i - run);
		put_escaped_byte(b, s[i]);
		run = i + 1;
	}
	put(b, (const char *)s + run, len - run);
	b->data[b->len++] = '"';
}

static size_t labels_max(const tdm_event *ev)
{
	size_t n = 2;
	for (size_t i = 0; i < ev->n_labels; i++)
		n += ESCAPED_MAX(strlen(ev->labels[i].key)) +
		     ESCAPED_MAX(strlen(ev->labels[i].value)) + 2;
	return n;
}

static void put_labels(ndjson_buf *b, const tdm_event *ev)
{
	b->data[b->len++] = '{';
	for (size_t i = 0; i < ev->n_labels; i++) {
		const tdm_label *l = &ev->labels[i];
		if (i)
			b->data[b->len++] = ',';
		put_string(b, l->key, strlen(l->key));
		b->data[b->len++] = ':';
		put_string(b, l->value, strlen(l->value));
	}
	b->data[b->len++] = '}';
}

static void put_payload(ndjson_buf *b, const tdm_event *ev, int text)
{
	if (text) {
		PUT_LIT(b, "\"payload\":");
		put_string(b, ev->payload, ev->payload_len);
		return;
	}
	PUT_LIT(b, "\"payload_b64\":\"");
	b->len += base64_encode(b->data + b->len, ev->payload, ev->payload_len);
	b->data[b->len++] = '"';
}

int ndjson_string(ndjson_buf *b, const char *text)
{
	size_t len = strlen(text);
	if (reserve(b, ESCAPED_MAX(len)))
		return -1;
	put_string(b, text, len);
	return 0;
}

int ndjson_event(ndjson_buf *b, const tdm_event *ev)
{
	int text = utf8_valid(ev->payload, ev->payload_len);
	size_t payload_max = text ? ESCAPED_MAX(ev->payload_len)
	                          : base64_encoded_len(ev->payload_len) + 2;
	/* 80 covers the keys, punctuation and two 20-digit numbers. */
	if (reserve(b, 80 + labels_max(ev) + payload_max))
		return -1;
	PUT_LIT(b, "{\"ts\":");
	if (ev->ts < 0) /* never stored, but print it faithfully if seen */
		b->data[b->len++] = '-';
	put_u64(b, ev->ts < 0 ? -(uint64_t)ev->ts : (uint64_t)ev->ts);
	PUT_LIT(b, ",\"id\":");
	put_u64(b, ev->id);
	PUT_LIT(b, ",\"labels\":");
	put_labels(b, ev);
	b->data[b->len++] = ',';
	put_payload(b, ev, text);
	PUT_LIT(b, "}\n");
	return 0;
}

void ndjson_buf_free(ndjson_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
