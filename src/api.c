/* api.c - every exported function: arguments are checked here, at the
 * boundary; the modules behind trust their callers. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hash.h"
#include "index.h"
#include "labelcount.h"
#include "reader.h"
#include "record.h"
#include "replica.h"
#include "store.h"
#include "verify.h"

TDM_EXPORT int tdm_event_check(const tdm_event *ev)
{
	if (!ev)
		return tdm_fail(TDM_EINVAL, "event is NULL");
	return rec_event_check(ev);
}

TDM_EXPORT uint32_t tdm_event_content_id(const tdm_event *ev)
{
	/* The record encoding is canonical (labels sorted), so hashing it with
	 * id 0 gives the same id for the same ts, labels and payload. */
	if (!ev || rec_event_check(ev))
		return 0;
	tdm_event copy = *ev;
	copy.id = 0;
	size_t len = rec_size(&copy);
	uint8_t small[4096], *buf = len <= sizeof small ? small : malloc(len);
	if (!buf)
		return 0;
	rec_encode(buf, &copy, 0);
	uint32_t id = (uint32_t)rec_fingerprint(buf);
	if (buf != small)
		free(buf);
	return id;
}

TDM_EXPORT uint64_t tdm_event_fingerprint(const tdm_event *ev)
{
	if (!ev || rec_event_check(ev))
		return 0;
	size_t len = rec_size(ev);
	uint8_t small[4096], *buf = len <= sizeof small ? small : malloc(len);
	if (!buf)
		return 0;
	rec_encode(buf, ev, 0);
	uint64_t fp = rec_fingerprint(buf);
	if (buf != small)
		free(buf);
	return fp;
}

TDM_EXPORT int tdm_store_create(const char *dir, const tdm_options *opts)
{
	if (!dir || !*dir)
		return tdm_fail(TDM_EINVAL, "no directory given");
	if (opts && opts->version != TDM_OPTIONS_VERSION)
		return tdm_fail(TDM_EINVAL, "tdm_options version %u is not %d",
		                opts->version, TDM_OPTIONS_VERSION);
	return store_create(dir, opts);
}

TDM_EXPORT int tdm_store_open(tdm_store **out, const char *dir,
                              const tdm_open_options *oo)
{
	if (!out || !dir || !*dir)
		return tdm_fail(TDM_EINVAL, "tdm_store_open: NULL argument");
	*out = NULL;
	if (oo && oo->version != TDM_OPEN_OPTIONS_VERSION)
		return tdm_fail(TDM_EINVAL, "tdm_open_options version %u is not %d",
		                oo->version, TDM_OPEN_OPTIONS_VERSION);
	if (oo && (oo->durability < TDM_DURABILITY_NONE ||
	           oo->durability > TDM_DURABILITY_BATCH))
		return tdm_fail(TDM_EINVAL, "unknown durability mode %d", oo->durability);
	return store_open(out, dir, oo);
}

TDM_EXPORT void tdm_store_options(tdm_options *out, const tdm_store *s)
{
	*out = s->opts;
}

TDM_EXPORT int tdm_store_close(tdm_store *s)
{
	return s ? store_close(s) : 0;
}

static int writable(tdm_store *s)
{
	if (!s)
		return tdm_fail(TDM_EINVAL, "store is NULL");
	if (!s->w)
		return tdm_fail(TDM_EREADONLY, "%s: store is open read-only", s->dir);
	if (s->failed)
		return tdm_fail(TDM_EFAILED, "%s: an earlier write failed; reopen the store",
		                s->dir);
	return 0;
}

TDM_EXPORT int tdm_append(tdm_append_result *out, uint8_t *outcomes,
                          tdm_store *s, const tdm_event *events, size_t n)
{
	tdm_append_result ignored;
	if (!out)
		out = &ignored;
	memset(out, 0, sizeof *out);
	int r = writable(s);
	if (r)
		return r;
	if (n && !events)
		return tdm_fail(TDM_EINVAL, "events is NULL");
	/* The writer checks each event as rec_event_check does, before it
	 * writes anything, remembering the label pairs it checked. */
	return writer_append(out, outcomes, s, events, n);
}

TDM_EXPORT int tdm_sync(tdm_store *s)
{
	int r = writable(s);
	if (r)
		return r;
	if ((r = writer_sync(s)))
		s->failed = 1;
	return r;
}

TDM_EXPORT int tdm_iter_open(tdm_iter **out, tdm_store *s, int64_t from,
                             int64_t to, const tdm_read_options *ro)
{
	if (!out || !s)
		return tdm_fail(TDM_EINVAL, "tdm_iter_open: NULL argument");
	*out = NULL;
	if (ro && ro->version != TDM_READ_OPTIONS_VERSION)
		return tdm_fail(TDM_EINVAL, "tdm_read_options version %u is not %d",
		                ro->version, TDM_READ_OPTIONS_VERSION);
	if (ro && ro->n_where && !ro->where)
		return tdm_fail(TDM_EINVAL, "selector is NULL");
	return reader_open(out, s, from, to, ro);
}

TDM_EXPORT int tdm_iter_next(const tdm_event **ev, tdm_iter *it)
{
	if (!ev || !it)
		return tdm_fail(TDM_EINVAL, "tdm_iter_next: NULL argument");
	return reader_next(ev, it);
}

TDM_EXPORT uint64_t tdm_iter_damage(const char **first_message, const tdm_iter *it)
{
	return reader_damage(first_message, it);
}

TDM_EXPORT void tdm_iter_close(tdm_iter *it)
{
	reader_close(it);
}

static int add_shard(void *ctx, const shard_meta *m)
{
	tdm_stat *st = ctx;
	st->shards++;
	st->events += m->main_count + m->recon_count;
	st->late_events += m->recon_count;
	st->bytes += m->main_len + m->recon_len;
	st->index_entries += m->index_entries;
	st->recon_bytes += m->recon_len;
	if (m->seal_gen) {
		st->sealed_shards++;
		st->sealed_bytes += m->main_len;
		st->sealed_raw_bytes += m->sealed_raw;
	}
	if (m->max_seq > st->last_seq)
		st->last_seq = m->max_seq;
	if (m->main_count + m->recon_count) {
		if (st->min_ts < 0 || m->min_ts < st->min_ts)
			st->min_ts = m->min_ts;
		if (m->max_ts > st->max_ts)
			st->max_ts = m->max_ts;
	}
	return 0;
}

TDM_EXPORT int tdm_stat_get(tdm_stat *out, tdm_store *s)
{
	if (!out || !s)
		return tdm_fail(TDM_EINVAL, "tdm_stat_get: NULL argument");
	memset(out, 0, sizeof *out);
	out->min_ts = out->max_ts = -1;
	kv_txn *txn;
	int r = kv_begin(&txn, s->kv, 0);
	if (r)
		return r;
	r = index_meta_each(txn, 0, INT64_MAX, add_shard, out);
	kv_abort(txn);
	out->bytes += kv_disk_bytes(s->kv) + 64; /* the STORE header */
	return r;
}

TDM_EXPORT int tdm_digest_shards(tdm_shard_digest **out, size_t *n, tdm_store *s,
                                 int64_t from, int64_t to)
{
	if (!out || !n || !s)
		return tdm_fail(TDM_EINVAL, "tdm_digest_shards: NULL argument");
	return replica_shards(out, n, s, from, to);
}

TDM_EXPORT int tdm_digest_children(tdm_digest out[TDM_DIGEST_FANOUT], tdm_store *s,
                                   int64_t shard, unsigned level, uint32_t node,
                                   int64_t from, int64_t to)
{
	if (!out || !s)
		return tdm_fail(TDM_EINVAL, "tdm_digest_children: NULL argument");
	if (level >= TDM_DIGEST_LEAF_LEVEL || shard < 0 ||
	    (uint64_t)node >> (4 * level))
		return tdm_fail(TDM_EINVAL, "no digest node %" PRIu32 " at level %u",
		                node, level);
	return replica_children(out, s, shard, level, node, from, to);
}

static int leaf_check(int64_t shard, uint32_t leaf)
{
	if (shard < 0 || leaf >= (1u << (4 * TDM_DIGEST_LEAF_LEVEL)))
		return tdm_fail(TDM_EINVAL, "no digest leaf %" PRIu32, leaf);
	return 0;
}

TDM_EXPORT int tdm_digest_leaf_events(tdm_store *s, int64_t shard, uint32_t leaf,
                                      int64_t from, int64_t to, tdm_event_fn fn,
                                      void *ctx)
{
	if (!s || !fn)
		return tdm_fail(TDM_EINVAL, "tdm_digest_leaf_events: NULL argument");
	int r = leaf_check(shard, leaf);
	return r ? r : replica_leaf_events(s, shard, leaf, from, to, fn, ctx);
}

TDM_EXPORT int tdm_leaf_reader_open(tdm_leaf_reader **out, tdm_store *s)
{
	if (!out || !s)
		return tdm_fail(TDM_EINVAL, "tdm_leaf_reader_open: NULL argument");
	return replica_reader_open(out, s);
}

TDM_EXPORT int tdm_leaf_reader_events(tdm_leaf_reader *rd, int64_t shard, uint32_t leaf,
                                      int64_t from, int64_t to, tdm_event_fn fn,
                                      void *ctx)
{
	if (!rd || !fn)
		return tdm_fail(TDM_EINVAL, "tdm_leaf_reader_events: NULL argument");
	int r = leaf_check(shard, leaf);
	return r ? r : replica_reader_events(rd, shard, leaf, from, to, fn, ctx);
}

TDM_EXPORT void tdm_leaf_reader_close(tdm_leaf_reader *rd)
{
	replica_reader_close(rd);
}

TDM_EXPORT int tdm_compact(tdm_compact_result *out, tdm_store *s)
{
	tdm_compact_result ignored;
	int r = writable(s);
	if (r)
		return r;
	if ((r = seal_store(out ? out : &ignored, s)))
		s->failed = 1;
	return r;
}

TDM_EXPORT int tdm_retain(uint64_t *dropped, tdm_store *s, int64_t before)
{
	uint64_t ignored;
	int r = writable(s);
	if (r)
		return r;
	if ((r = retain_store(dropped ? dropped : &ignored, s, before)))
		s->failed = 1;
	return r;
}

TDM_EXPORT int tdm_label_counts(tdm_label_count **out, size_t *n, tdm_store *s,
                                int64_t from, int64_t to)
{
	if (!out || !n || !s)
		return tdm_fail(TDM_EINVAL, "tdm_label_counts: NULL argument");
	*out = NULL;
	*n = 0;
	return labelcount_get(out, n, s, from, to);
}

TDM_EXPORT void tdm_label_counts_free(tdm_label_count *counts, size_t n)
{
	labelcount_free(counts, n);
}

TDM_EXPORT int tdm_verify(uint64_t *problems, tdm_store *s, tdm_problem_cb cb,
                          void *ctx)
{
	uint64_t ignored;
	if (!s)
		return tdm_fail(TDM_EINVAL, "store is NULL");
	return verify_store(problems ? problems : &ignored, s, cb, ctx);
}
