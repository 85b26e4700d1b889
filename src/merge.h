/* merge.h - ordering records for reads. Pure: no I/O.
 *
 * The main file of a shard is nearly sorted: every record not read yet has
 * ts >= (running max so far) - grace. What was read waits in a FIFO (the
 * records that arrived in order) and a min-heap (the stragglers) until it
 * is below that bound; the shard's recon records, sorted in memory, are
 * merged in. */
#ifndef TDM_MERGE_H
#define TDM_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

/* A record with bytes of its own. */
typedef struct mg_item {
	uint8_t *bytes;
	rec_view v;
} mg_item;

/* Copies the record of `v`; TDM_ENOMEM. */
int mg_item_copy(mg_item *out, const rec_view *v);
void mg_item_free(mg_item *it);

typedef struct mg_heap {
	mg_item *items;
	size_t n, cap;
} mg_heap;

/* Takes ownership of `it` (freed on failure). */
int mg_heap_push(mg_heap *h, mg_item it);
/* The smallest record in read order, or NULL. Borrowed. */
const mg_item *mg_heap_top(const mg_heap *h);
/* Removes the smallest record and hands it over. */
mg_item mg_heap_pop(mg_heap *h);
void mg_heap_free(mg_heap *h);

/* Main records as read, ordered for handing out: those that come in read
 * order (most of them) queue up in a FIFO, the stragglers go to a heap. */
typedef struct mg_main {
	mg_item *q; /* ring: q[head .. head + n) */
	size_t head, n, cap;
	mg_heap stragglers;
} mg_main;

/* Takes ownership of `it` (freed on failure). */
int mg_main_push(mg_main *m, mg_item it);
/* The smallest record held, or NULL. Borrowed. */
const mg_item *mg_main_top(const mg_main *m);
/* Removes the smallest record and hands it over. */
mg_item mg_main_pop(mg_main *m);
void mg_main_free(mg_main *m);

/* Sorts records in read order. */
void mg_sort(mg_item *items, size_t n);

enum mg_choice { MG_WAIT = -1, MG_MAIN = 0, MG_RECON = 1, MG_DONE = 2 };

/* What to emit next: the smaller of the heap's top and the next recon
 * record, if it is safe (ts < bound, or the main file is all read).
 * MG_WAIT: read more of the main file first. MG_DONE: both are empty and
 * the main file is all read. */
int mg_choose(const mg_item *main_top, const mg_item *recon_next,
              int64_t bound, int main_done);

#endif
