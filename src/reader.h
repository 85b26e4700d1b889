/* reader.h - range iterators (reader.c). */
#ifndef TDM_READER_H
#define TDM_READER_H

#include "store.h"

int reader_open(tdm_iter **out, tdm_store *s, int64_t from, int64_t to,
                const tdm_read_options *ro);
int reader_next(const tdm_event **ev, tdm_iter *it);
uint64_t reader_damage(const char **first, const tdm_iter *it);
void reader_close(tdm_iter *it);
/* Shards (or their rest) read by scanning because a label bitmap was not
 * sound: for tests. */
uint64_t reader_fallbacks(const tdm_iter *it);

/* Candidates closer than this many bytes apart on average make a selective
 * read scan instead (2048); 0: always use the bitmaps (for tests). */
extern uint32_t reader_scan_density;

#endif
