/* labelcount.h - label pairs of a time range with their event counts
 * (labelcount.c; tdm_label_counts). */
#ifndef TDM_LABELCOUNT_H
#define TDM_LABELCOUNT_H

#include "store.h"

int labelcount_get(tdm_label_count **out, size_t *n, tdm_store *s, int64_t from,
                   int64_t to);
void labelcount_free(tdm_label_count *counts, size_t n);

#endif
