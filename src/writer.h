/* writer.h - per-shard writer state, shared by writer.c and its tests. */
#ifndef TDM_WRITER_H
#define TDM_WRITER_H

#include <stdint.h>
#include <time.h>

#include "dedupe.h"
#include "digest.h"
#include "index.h"
#include "labelcache.h"
#include "labels.h"
#include "store.h"

/* One shard being written: its files, the bytes of the current batch not
 * yet written, and the dedupe structures (each loaded on first need). */
typedef struct wfile {
	int fd;            /* -1 until opened */
	uint64_t written;  /* bytes in the file (committed + this batch's writes) */
	uint8_t *pending;  /* bytes appended after `written`, not yet written */
	size_t pending_len, pending_cap;
	int dirty;         /* written since the last sync */
} wfile;

typedef struct wshard {
	int64_t shard;
	shard_meta meta;   /* working state: committed + this batch */
	wfile file[2];     /* [0] main, [1] recon */
	dd_window window;  /* main records with ts >= max_ts - grace */
	int window_loaded;
	unsigned leaf_probes; /* on-time events looked up by leaf, window unloaded */
	lbl_acc *labels;   /* label bitmaps of the chunks being appended to */
	int touched;       /* in the current batch */
	uint64_t last_used;
} wshard;

struct writer {
	tdm_store *s;
	wshard **shards;   /* sorted by shard number */
	size_t n, cap;
	wshard **touched;  /* shards of the current batch */
	size_t n_touched;
	uint64_t next_seq;
	uint64_t clock;
	uint8_t *enc;      /* the record being appended */
	size_t enc_cap;
	uint8_t *scratch;  /* a stored record read back for comparison */
	size_t scratch_cap;
	int64_t kept_shard; /* newest shard retention (keep_ns) last ran for */
	uint64_t unsynced_events;
	digest_acc *digests; /* the batch's changes to replica digests */
	dd_memo memo;        /* the batch's leaves read for duplicates */
	const tdm_event *next; /* the batch's event after the one appended */
	lcache *lc;         /* label pairs checked before */
	rec_pair *pairs;    /* the batch's labels, per event in key order */
	uint32_t *labels_len; /* per event of the batch: its label bytes */
	size_t pairs_cap, events_cap;
	struct timespec last_sync;
};

#endif
