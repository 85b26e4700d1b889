/* merge.c - the read-order heap, sort and the emit decision. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "merge.h"

int mg_item_copy(mg_item *out, const rec_view *v)
{
	uint8_t *b = malloc(v->len);
	if (!b)
		return tdm_fail(TDM_ENOMEM, "out of memory for a %u-byte record", v->len);
	memcpy(b, v->bytes, v->len);
	out->bytes = b;
	out->v = *v;
	out->v.bytes = b;
	out->v.labels = b + (v->labels - v->bytes);
	out->v.payload = b + (v->payload - v->bytes);
	return 0;
}

void mg_item_free(mg_item *it)
{
	free(it->bytes);
	it->bytes = NULL;
}

static int less(const mg_item *a, const mg_item *b)
{
	return rec_order(&a->v, &b->v) < 0;
}

int mg_heap_push(mg_heap *h, mg_item it)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 256;
		mg_item *a = realloc(h->items, cap * sizeof *a);
		if (!a) {
			mg_item_free(&it);
			return tdm_fail(TDM_ENOMEM, "out of memory");
		}
		h->items = a;
		h->cap = cap;
	}
	size_t i = h->n++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!less(&it, &h->items[parent]))
			break;
		h->items[i] = h->items[parent];
		i = parent;
	}
	h->items[i] = it;
	return 0;
}

const mg_item *mg_heap_top(const mg_heap *h)
{
	return h->n ? &h->items[0] : NULL;
}

mg_item mg_heap_pop(mg_heap *h)
{
	mg_item top = h->items[0];
	mg_item last = h->items[--h->n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && less(&h->items[c + 1], &h->items[c]))
			c++;
		if (!less(&h->items[c], &last))
			break;
		h->items[i] = h->items[c];
		i = c;
	}
	if (h->n)
		h->items[i] = last;
	return top;
}

void mg_heap_free(mg_heap *h)
{
	for (size_t i = 0; i < h->n; i++)
		mg_item_free(&h->items[i]);
	free(h->items);
	memset(h, 0, sizeof *h);
}

int mg_main_push(mg_main *m, mg_item it)
{
	if (m->n && less(&it, &m->q[(m->head + m->n - 1) % m->cap]))
		return mg_heap_push(&m->stragglers, it);
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 256;
		mg_item *q = malloc(cap * sizeof *q);
		if (!q) {
			mg_item_free(&it);
			return tdm_fail(TDM_ENOMEM, "out of memory");
		}
		for (size_t i = 0; i < m->n; i++)
			q[i] = m->q[(m->head + i) % m->cap];
		free(m->q);
		m->q = q;
		m->cap = cap;
		m->head = 0;
	}
	m->q[(m->head + m->n++) % m->cap] = it;
	return 0;
}

const mg_item *mg_main_top(const mg_main *m)
{
	const mg_item *h = mg_heap_top(&m->stragglers);
	const mg_item *q = m->n ? &m->q[m->head] : NULL;
	if (!q || (h && less(h, q)))
		return h;
	return q;
}

mg_item mg_main_pop(mg_main *m)
{
	if (!m->n || mg_main_top(m) != &m->q[m->head])
		return mg_heap_pop(&m->stragglers);
	mg_item it = m->q[m->head];
	m->head = (m->head + 1) % m->cap;
	m->n--;
	return it;
}

void mg_main_free(mg_main *m)
{
	for (size_t i = 0; i < m->n; i++)
		mg_item_free(&m->q[(m->head + i) % m->cap]);
	free(m->q);
	mg_heap_free(&m->stragglers);
	memset(m, 0, sizeof *m);
}

static int item_cmp(const void *a, const void *b)
{
	return rec_order(&((const mg_item *)a)->v, &((const mg_item *)b)->v);
}

void mg_sort(mg_item *items, size_t n)
{
	if (n > 1)
		qsort(items, n, sizeof *items, item_cmp);
}

int mg_choose(const mg_item *main_top, const mg_item *recon_next,
              int64_t bound, int main_done)
{
	const mg_item *c = main_top;
	int which = MG_MAIN;
	if (recon_next && (!c || less(recon_next, c))) {
		c = recon_next;
		which = MG_RECON;
	}
	if (!c)
		return main_done ? MG_DONE : MG_WAIT;
	/* Unread main records have ts >= bound, so c comes first if below it. */
	if (main_done || c->v.ts < bound)
		return which;
	return MG_WAIT;
}
