/* record.c - the record codec. Pure: bytes in, bytes or views out. */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "error.h"
#include "hash.h"
#include "record.h"

static uint32_t checksum(const uint8_t *rec, uint32_t len)
{
	return (uint32_t)tdm_hash64(rec + 8, len - 8, len);
}

/* Sorts label pointers by key. Events carry a handful of labels: an
 * insertion sort beats qsort's setup at that size. */
static void sort_labels(const tdm_label **a, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		const tdm_label *x = a[i];
		size_t j = i;
		for (; j > 0 && strcmp(a[j - 1]->key, x->key) > 0; j--)
			a[j] = a[j - 1];
		a[j] = x;
	}
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint64_t w;
		if (n - i >= 8 && (memcpy(&w, s + i, 8), !(w & 0x8080808080808080ull))) {
			i += 8; /* eight ASCII bytes */
			continue;
		}
		unsigned c = s[i];
		size_t len;
		unsigned min, cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			len = 2, min = 0x80, cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			len = 3, min = 0x800, cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			len = 4, min = 0x10000, cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += len;
	}
	return 1;
}

static size_t labels_bytes(const tdm_event *ev)
{
	size_t n = 0;
	for (size_t i = 0; i < ev->n_labels; i++)
		n += strlen(ev->labels[i].key) + strlen(ev->labels[i].value) + 2;
	return n;
}

int rec_event_check_fields(const tdm_event *ev)
{
	if (ev->ts < 0)
		return tdm_fail(TDM_EINVAL, "ts %lld is negative", (long long)ev->ts);
	if (ev->ts == INT64_MAX) /* no range [from, to) could return it */
		return tdm_fail(TDM_EINVAL, "ts %lld is out of range", (long long)ev->ts);
	if (ev->payload_len > TDM_MAX_PAYLOAD)
		return tdm_fail(TDM_EINVAL, "payload of %zu bytes is over the limit of %u",
		                ev->payload_len, TDM_MAX_PAYLOAD);
	if (ev->payload_len && !ev->payload)
		return tdm_fail(TDM_EINVAL, "payload is NULL");
	if (ev->n_labels > TDM_MAX_LABELS)
		return tdm_fail(TDM_EINVAL, "%zu labels, over the limit of %d",
		                ev->n_labels, TDM_MAX_LABELS);
	if (ev->n_labels && !ev->labels)
		return tdm_fail(TDM_EINVAL, "labels is NULL");
	return 0;
}

int rec_label_check(size_t *klen, size_t *vlen, const tdm_label *l, size_t i)
{
	if (!l->key || !l->value)
		return tdm_fail(TDM_EINVAL, "label %zu has a NULL key or value", i);
	size_t k = strlen(l->key), v = strlen(l->value);
	if (k == 0)
		return tdm_fail(TDM_EINVAL, "label %zu has an empty key", i);
	if (k > TDM_MAX_LABEL_KEY)
		return tdm_fail(TDM_EINVAL, "label key of %zu bytes is over the limit of %d",
		                k, TDM_MAX_LABEL_KEY);
	if (v > TDM_MAX_LABEL_VALUE)
		return tdm_fail(TDM_EINVAL,
		                "label '%s' value of %zu bytes is over the limit of %d",
		                l->key, v, TDM_MAX_LABEL_VALUE);
	if (!utf8_valid((const unsigned char *)l->key, k) ||
	    !utf8_valid((const unsigned char *)l->value, v))
		return tdm_fail(TDM_EINVAL, "label %zu is not valid UTF-8", i);
	*klen = k;
	*vlen = v;
	return 0;
}

int rec_event_check(const tdm_event *ev)
{
	int r = rec_event_check_fields(ev);
	if (r)
		return r;
	const tdm_label *sorted[TDM_MAX_LABELS];
	size_t bytes = 0;
	for (size_t i = 0; i < ev->n_labels; i++) {
		size_t k, v;
		if ((r = rec_label_check(&k, &v, &ev->labels[i], i)))
			return r;
		sorted[i] = &ev->labels[i];
		bytes += k + v + 2;
	}
	sort_labels(sorted, ev->n_labels);
	for (size_t i = 1; i < ev->n_labels; i++)
		if (strcmp(sorted[i - 1]->key, sorted[i]->key) == 0)
			return tdm_fail(TDM_EINVAL, "label key '%s' appears twice",
			                sorted[i]->key);
	if (bytes > TDM_MAX_LABELS_BYTES)
		return tdm_fail(TDM_EINVAL, "labels take %zu bytes, over the limit of %d",
		                bytes, TDM_MAX_LABELS_BYTES);
	return 0;
}

/* Key order of two pairs: their keys' bytes up to the NUL that ends the
 * shorter, as strcmp compares them. Keys mostly differ in their first
 * bytes, which kpre holds: only keys alike there are read. */
static int pair_key_cmp(const rec_pair *a, const rec_pair *b)
{
	if (a->kpre != b->kpre)
		return a->kpre < b->kpre ? -1 : 1;
	const uint8_t *x = a->bytes, *y = b->bytes;
	size_t i = 0;
	while (x[i] == y[i] && x[i])
		i++;
	return (int)x[i] - (int)y[i];
}

int rec_pairs_sort_check(uint32_t *labels_len, rec_pair *p, size_t n)
{
	size_t bytes = 0;
	int same = 0;
	/* Every two keys that end up next to each other were compared when
	 * the later of them was inserted: equal keys show there. Pairs mostly
	 * come in key order: then a pair is compared, not moved (nor read
	 * whole, just after lcache_get_all wrote it). */
	for (size_t i = 0; i < n; i++) {
		bytes += p[i].len;
		int c = i ? pair_key_cmp(&p[i - 1], &p[i]) : -1;
		same |= c == 0;
		if (c <= 0)
			continue;
		rec_pair x = p[i];
		size_t j = i;
		do {
			p[j] = p[j - 1];
			j--;
		} while (j > 0 && (c = pair_key_cmp(&p[j - 1], &x)) > 0);
		same |= c == 0;
		p[j] = x;
	}
	for (size_t i = 1; same && i < n; i++)
		if (pair_key_cmp(&p[i - 1], &p[i]) == 0)
			return tdm_fail(TDM_EINVAL, "label key '%s' appears twice",
			                (const char *)p[i].bytes);
	if (bytes > TDM_MAX_LABELS_BYTES)
		return tdm_fail(TDM_EINVAL, "labels take %zu bytes, over the limit of %d",
		                bytes, TDM_MAX_LABELS_BYTES);
	*labels_len = (uint32_t)bytes;
	return 0;
}

void rec_encode_pairs(uint8_t *dst, const tdm_event *ev, const rec_pair *p,
                      size_t n, uint32_t labels_len)
{
	uint8_t *at = dst + REC_HEADER;
	for (size_t i = 0; i < n; i++) {
		memcpy(at, p[i].bytes, p[i].len);
		at += p[i].len;
	}
	if (ev->payload_len)
		memcpy(at, ev->payload, ev->payload_len);
	uint32_t len = (uint32_t)(REC_HEADER + labels_len + ev->payload_len);
	put_le(dst, len, 4);
	put_le(dst + 4, 0, 4);
	put_le(dst + 8, 0, 8);
	put_le(dst + 16, (uint64_t)ev->ts, 8);
	put_le(dst + 24, ev->id, 4);
	put_le(dst + 28, labels_len, 2);
}

size_t rec_size(const tdm_event *ev)
{
	return REC_HEADER + labels_bytes(ev) + ev->payload_len;
}

void rec_encode(uint8_t *dst, const tdm_event *ev, uint64_t seq)
{
	const tdm_label *sorted[TDM_MAX_LABELS];
	for (size_t i = 0; i < ev->n_labels; i++)
		sorted[i] = &ev->labels[i];
	sort_labels(sorted, ev->n_labels);

	uint8_t *p = dst + REC_HEADER;
	for (size_t i = 0; i < ev->n_labels; i++) {
		size_t k = strlen(sorted[i]->key) + 1, v = strlen(sorted[i]->value) + 1;
		memcpy(p, sorted[i]->key, k);
		memcpy(p + k, sorted[i]->value, v);
		p += k + v;
	}
	uint16_t labels_len = (uint16_t)(p - (dst + REC_HEADER));
	if (ev->payload_len)
		memcpy(p, ev->payload, ev->payload_len);
	uint32_t len = (uint32_t)(REC_HEADER + labels_len + ev->payload_len);

	put_le(dst, len, 4);
	put_le(dst + 8, seq, 8);
	put_le(dst + 16, (uint64_t)ev->ts, 8);
	put_le(dst + 24, ev->id, 4);
	put_le(dst + 28, labels_len, 2);
	put_le(dst + 4, checksum(dst, len), 4);
}

void rec_set_seq(uint8_t *rec, uint64_t seq)
{
	uint32_t len = (uint32_t)get_le(rec, 4);
	put_le(rec + 8, seq, 8);
	put_le(rec + 4, checksum(rec, len), 4);
}

/* Labels must be (key NUL value NUL)* with non-empty keys in strictly
 * increasing order, as rec_encode writes them. */
static int labels_sound(const uint8_t *p, uint32_t len)
{
	const uint8_t *end = p + len;
	const char *prev = NULL;
	unsigned count = 0;
	while (p < end) {
		const uint8_t *k_end = memchr(p, 0, (size_t)(end - p));
		if (!k_end || k_end == p)
			return 0;
		const uint8_t *v_end = memchr(k_end + 1, 0, (size_t)(end - k_end - 1));
		if (!v_end)
			return 0;
		if (prev && strcmp(prev, (const char *)p) >= 0)
			return 0;
		if (++count > TDM_MAX_LABELS)
			return 0;
		prev = (const char *)p;
		p = v_end + 1;
	}
	return 1;
}

int rec_decode(rec_view *out, const uint8_t *buf, size_t avail, size_t *need,
               const char **why)
{
	if (avail < 4) {
		*need = REC_HEADER;
		return REC_SHORT;
	}
	uint32_t len = (uint32_t)get_le(buf, 4);
	if (len < REC_HEADER || len > REC_MAX) {
		*why = "record length out of range";
		return REC_BAD;
	}
	if (avail < len) {
		*need = len;
		return REC_SHORT;
	}
	if ((uint32_t)get_le(buf + 4, 4) != checksum(buf, len)) {
		*why = "checksum mismatch";
		return REC_BAD;
	}
	return rec_decode_trusted(out, buf, len, why);
}

int rec_decode_trusted(rec_view *out, const uint8_t *buf, uint32_t len,
                       const char **why)
{
	if (len < REC_HEADER || len > REC_MAX || get_le(buf, 4) != len) {
		*why = "record length out of range";
		return REC_BAD;
	}
	uint16_t labels_len = (uint16_t)get_le(buf + 28, 2);
	if (labels_len > len - REC_HEADER || !labels_sound(buf + REC_HEADER, labels_len)) {
		*why = "malformed labels";
		return REC_BAD;
	}
	int64_t ts = (int64_t)get_le(buf + 16, 8);
	if (ts < 0 || ts == INT64_MAX) {
		*why = "ts out of range";
		return REC_BAD;
	}
	out->bytes = buf;
	out->len = len;
	out->seq = get_le(buf + 8, 8);
	out->ts = ts;
	out->id = (uint32_t)get_le(buf + 24, 4);
	out->labels = buf + REC_HEADER;
	out->labels_len = labels_len;
	out->payload = buf + REC_HEADER + labels_len;
	out->payload_len = len - REC_HEADER - labels_len;
	return REC_OK;
}

uint64_t rec_fingerprint(const uint8_t *rec)
{
	return tdm_hash64(rec + REC_IDENTITY, (uint32_t)get_le(rec, 4) - REC_IDENTITY, 0);
}

int rec_same_event(const uint8_t *a, const uint8_t *b)
{
	uint32_t len = (uint32_t)get_le(a, 4);
	return len == (uint32_t)get_le(b, 4) &&
	       memcmp(a + REC_IDENTITY, b + REC_IDENTITY, len - REC_IDENTITY) == 0;
}

static int bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	size_t n = an < bn ? an : bn;
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c;
	return an < bn ? -1 : an > bn;
}

int rec_order(const rec_view *a, const rec_view *b)
{
	if (a->ts != b->ts)
		return a->ts < b->ts ? -1 : 1;
	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	int c = bytes_cmp(a->labels, a->labels_len, b->labels, b->labels_len);
	if (c)
		return c;
	return bytes_cmp(a->payload, a->payload_len, b->payload, b->payload_len);
}

size_t rec_labels(tdm_label *out, const uint8_t *labels, uint32_t len)
{
	size_t n = 0;
	const char *p = (const char *)labels, *end = p + len;
	while (p < end && n < TDM_MAX_LABELS) {
		out[n].key = p;
		p += strlen(p) + 1;
		out[n].value = p;
		p += strlen(p) + 1;
		n++;
	}
	return n;
}
