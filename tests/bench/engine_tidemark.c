/*
 * engine_tidemark.c - the tidemark engine of tidemark-bench, through the
 * public API only (tidemark.h), as an application would use it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "tidemark.h"

#define GRACE_NS (60LL * 1000000000LL) /* SPEC §7: grace 60 s */

struct tm_db {
	tdm_store *store;
	tdm_event *events; /* the batch translated to tdm_event */
	tdm_label *labels;
	size_t cap_events, cap_labels;
};

static int fail(const char *what, int rc)
{
	fprintf(stderr, "tidemark-bench: tidemark: %s: %s (%s)\n", what,
	        tdm_error_message(), tdm_strerror(rc));
	return -1;
}

static int tm_open(void **out, const char *dir,
                       const struct engine_open_args *a)
{
	struct tm_db *db = calloc(1, sizeof *db);
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	int rc;

	if (!db) {
		fprintf(stderr, "tidemark-bench: tidemark: out of memory\n");
		return -1;
	}
	if (a->create) {
		tdm_options opts = TDM_OPTIONS_INIT;
		opts.grace_ns = GRACE_NS; /* shard duration: the default */
		rc = tdm_store_create(dir, &opts);
		if (rc) {
			free(db);
			return fail("tdm_store_create", rc);
		}
		/* "end" is NONE plus one tdm_sync at the end, done by bench.c. */
		oo.durability = a->sync == SYNC_BATCH ? TDM_DURABILITY_BATCH
		                                      : TDM_DURABILITY_NONE;
	} else {
		oo.flags = TDM_OPEN_READONLY;
	}
	rc = tdm_store_open(&db->store, dir, &oo);
	if (rc) {
		free(db);
		return fail("tdm_store_open", rc);
	}
	*out = db;
	return 0;
}

/* Grows the translation arrays to hold n events and n_labels labels. */
static int reserve(struct tm_db *db, size_t n, size_t n_labels)
{
	if (n > db->cap_events) {
		tdm_event *e = realloc(db->events, n * sizeof *e);
		if (!e)
			return -1;
		db->events = e;
		db->cap_events = n;
	}
	if (n_labels > db->cap_labels) {
		tdm_label *l = realloc(db->labels, n_labels * sizeof *l);
		if (!l)
			return -1;
		db->labels = l;
		db->cap_labels = n_labels;
	}
	return 0;
}

static int tm_write_batch(void *vdb, const struct bench_event *ev, size_t n,
                           struct write_counts *c)
{
	struct tm_db *db = vdb;
	size_t total_labels = 0;
	for (size_t i = 0; i < n; i++)
		total_labels += ev[i].n_labels;
	if (reserve(db, n, total_labels)) {
		fprintf(stderr, "tidemark-bench: tidemark: out of memory\n");
		return -1;
	}

	tdm_label *lab = db->labels;
	for (size_t i = 0; i < n; i++) {
		tdm_event *e = &db->events[i];
		e->ts = ev[i].ts;
		e->id = ev[i].id;
		e->seq = 0;
		e->labels = lab;
		e->n_labels = ev[i].n_labels;
		e->payload = ev[i].payload;
		e->payload_len = ev[i].payload_len;
		for (size_t j = 0; j < ev[i].n_labels; j++, lab++) {
			lab->key = ev[i].labels[j].key;
			lab->value = ev[i].labels[j].value;
		}
	}

	tdm_append_result r = {0, 0, 0};
	int rc = tdm_append(&r, NULL, db->store, db->events, n);
	if (rc)
		return fail("tdm_append", rc);
	c->appended += r.appended;
	c->duplicates += r.duplicates;
	c->late += r.late;
	return 0;
}

static int tm_sync(void *vdb)
{
	struct tm_db *db = vdb;
	int rc = tdm_sync(db->store);
	return rc ? fail("tdm_sync", rc) : 0;
}

static int tm_close(void *vdb)
{
	struct tm_db *db = vdb;
	int rc = tdm_store_close(db->store);
	free(db->events);
	free(db->labels);
	free(db);
	return rc ? fail("tdm_store_close", rc) : 0;
}

static int tm_bounds(void *vdb, struct engine_bounds *out)
{
	struct tm_db *db = vdb;
	tdm_stat st;
	int rc = tdm_stat_get(&st, db->store);
	if (rc)
		return fail("tdm_stat_get", rc);
	out->events = st.events;
	out->min_ts = st.min_ts;
	out->max_ts = st.max_ts;
	return 0;
}

static int tm_window(void *vdb, int64_t from, int64_t to,
                      struct read_counts *c)
{
	struct tm_db *db = vdb;
	tdm_iter *it;
	const tdm_event *ev;
	int rc = tdm_iter_open(&it, db->store, from, to, NULL);
	if (rc)
		return fail("tdm_iter_open", rc);
	while ((rc = tdm_iter_next(&ev, it)) == 0)
		read_counts_add(c, ev->ts, ev->id, ev->payload, ev->payload_len);
	c->damaged += tdm_iter_damage(NULL, it);
	tdm_iter_close(it);
	return rc == TDM_ITEROVER ? 0 : fail("tdm_iter_next", rc);
}

/* "k=v,k2=v2" groups into selectors; the matches point into `text`
 * (copies, cut in place). Returns 0 or -1. */
static int parse_where(tdm_selector *sel, tdm_match *m, size_t cap, char **text,
                       const char *const *where, size_t n_where)
{
	size_t used = 0;
	for (size_t g = 0; g < n_where; g++) {
		if (!(text[g] = strdup(where[g])))
			return -1;
		sel[g].matches = m + used;
		sel[g].n_matches = 0;
		for (char *p = text[g]; p;) {
			char *comma = strchr(p, ',');
			if (comma)
				*comma = '\0';
			char *eq = strchr(p, '=');
			if (!eq || eq == p || used == cap)
				return -1;
			*eq = '\0';
			m[used++] = (tdm_match){p, eq + 1};
			sel[g].n_matches++;
			p = comma ? comma + 1 : NULL;
		}
	}
	return 0;
}

static int tm_select(void *vdb, const char *const *where, size_t n_where,
                     int scan, struct read_counts *c)
{
	struct tm_db *db = vdb;
	tdm_selector sel[16];
	tdm_match m[64];
	char *text[16] = {0};
	tdm_read_options ro = TDM_READ_OPTIONS_INIT;
	int rc = -1;
	if (n_where > 16 || parse_where(sel, m, 64, text, where, n_where)) {
		fprintf(stderr, "tidemark-bench: tidemark: bad --where\n");
		goto out;
	}
	ro.where = sel;
	ro.n_where = n_where;
	ro.flags = scan ? TDM_READ_SCAN : 0;
	tdm_iter *it;
	const tdm_event *ev;
	if ((rc = tdm_iter_open(&it, db->store, 0, INT64_MAX, &ro))) {
		rc = fail("tdm_iter_open", rc);
		goto out;
	}
	while ((rc = tdm_iter_next(&ev, it)) == 0)
		read_counts_add(c, ev->ts, ev->id, ev->payload, ev->payload_len);
	c->damaged += tdm_iter_damage(NULL, it);
	tdm_iter_close(it);
	rc = rc == TDM_ITEROVER ? 0 : fail("tdm_iter_next", rc);
out:
	for (size_t g = 0; g < n_where && g < 16; g++)
		free(text[g]);
	return rc;
}

static int tm_scan(void *db, struct read_counts *c)
{
	/* ts >= 0 by the data model, so [0, INT64_MAX) is everything but an
	 * event at exactly INT64_MAX, which no workload makes. */
	return tm_window(db, 0, INT64_MAX, c);
}

const struct engine engine_tidemark = {
	.name = "tidemark",
	.open = tm_open,
	.write_batch = tm_write_batch,
	.sync = tm_sync,
	.close = tm_close,
	.bounds = tm_bounds,
	.scan = tm_scan,
	.window = tm_window,
	.select = tm_select,
};
