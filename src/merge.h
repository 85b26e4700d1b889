/* merge.h - ordering records for reads. Pure: no I/O.
 *
 * The main file of a shard is nearly sorted: every record not read yet has
 * ts >= (running max so far) - grace. A min-heap holds what was read and
 * gives out a record once it is below that bound; the shard's recon
 * records, sorted in memory, are merged in. */
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
