/* fuzz_record.c - the record decoder on arbitrary bytes. A record that
 * decodes must re-encode to the same bytes: the codec has one spelling. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rec_view v;
	size_t need;
	const char *why;
	if (rec_decode(&v, data, size, &need, &why) != REC_OK)
		return 0;
	tdm_label labels[TDM_MAX_LABELS];
	tdm_event ev = {
		.ts = v.ts, .id = v.id, .labels = labels,
		.n_labels = rec_labels(labels, v.labels, v.labels_len),
		.payload = v.payload, .payload_len = v.payload_len};
	/* Decoded labels may still break the data model (bad UTF-8, limits). */
	if (rec_event_check(&ev) != 0)
		return 0;
	uint8_t *again = malloc(rec_size(&ev));
	if (!again)
		abort();
	rec_encode(again, &ev, v.seq);
	if (rec_size(&ev) != v.len || memcmp(again, data, v.len) != 0)
		abort();
	if (rec_fingerprint(again) != rec_fingerprint(data) || !rec_same_event(again, data))
		abort();
	free(again);
	return 0;
}
