/*
 * engine_lmdb.c - LMDB as a peer of tidemark-bench:
 *
 *   - key = big-endian ts ‖ id (12 bytes), value = the payload;
 *   - MDB_APPEND when the key is above every key written so far (the
 *     in-order path: no search, pages filled to the brim), otherwise a plain
 *     put (MDB_NOOVERWRITE: a key already there counts as a duplicate);
 *   - one write transaction per batch;
 *   - --sync end/none: MDB_NOSYNC, and for "end" one mdb_env_sync at the
 *     end; --sync batch: every commit synced (LMDB's default);
 *   - a 16 GiB map (virtual address space only).
 *
 * scan = a cursor walk from MDB_FIRST; window = MDB_SET_RANGE on (from, 0),
 * then MDB_NEXT until ts >= to. Each read runs in a read transaction,
 * renewed per window as an application would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "engine.h"
#include "peer_util.h"

#define MAP_SIZE (16ULL << 30)

struct lm_db {
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *rtxn; /* read side: reset between reads */
	MDB_cursor *cur;
	unsigned char last[PEER_KEY_LEN]; /* highest key written */
	int have_last;
};

static int fail(const char *what, int rc)
{
	fprintf(stderr, "tidemark-bench: lmdb: %s: %s\n", what,
	        mdb_strerror(rc));
	return -1;
}

static int lm_close(void *vd)
{
	struct lm_db *d = vd;
	if (d->cur)
		mdb_cursor_close(d->cur);
	if (d->rtxn)
		mdb_txn_abort(d->rtxn);
	if (d->env)
		mdb_env_close(d->env);
	free(d);
	return 0;
}

static int lm_open(void **out, const char *dir,
                   const struct engine_open_args *a)
{
	struct lm_db *d = calloc(1, sizeof *d);
	MDB_txn *txn;
	int rc;
	if (!d) {
		fprintf(stderr, "tidemark-bench: lmdb: out of memory\n");
		return -1;
	}
	unsigned flags = a->create ? (a->sync == SYNC_BATCH ? 0 : MDB_NOSYNC)
	                           : MDB_RDONLY;
	if ((rc = mdb_env_create(&d->env)) ||
	    (rc = mdb_env_set_mapsize(d->env, MAP_SIZE)) ||
	    (rc = mdb_env_open(d->env, dir, flags, 0644))) {
		lm_close(d);
		return fail("mdb_env_open", rc);
	}
	if ((rc = mdb_txn_begin(d->env, NULL, a->create ? 0 : MDB_RDONLY,
	                        &txn))) {
		lm_close(d);
		return fail("mdb_txn_begin", rc);
	}
	if ((rc = mdb_dbi_open(txn, NULL, 0, &d->dbi))) {
		mdb_txn_abort(txn);
		lm_close(d);
		return fail("mdb_dbi_open", rc);
	}
	if (a->create) {
		if ((rc = mdb_txn_commit(txn))) {
			lm_close(d);
			return fail("mdb_txn_commit", rc);
		}
	} else {
		d->rtxn = txn;
		if ((rc = mdb_cursor_open(txn, d->dbi, &d->cur))) {
			lm_close(d);
			return fail("mdb_cursor_open", rc);
		}
		mdb_txn_reset(txn);
	}
	*out = d;
	return 0;
}

static int lm_write_batch(void *vd, const struct bench_event *ev, size_t n,
                          struct write_counts *c)
{
	struct lm_db *d = vd;
	MDB_txn *txn;
	unsigned char key[PEER_KEY_LEN];
	int rc = mdb_txn_begin(d->env, NULL, 0, &txn);
	if (rc)
		return fail("mdb_txn_begin", rc);
	for (size_t i = 0; i < n; i++) {
		peer_key_encode(key, ev[i].ts, ev[i].id);
		MDB_val k = {PEER_KEY_LEN, key};
		MDB_val v = {ev[i].payload_len, (void *)ev[i].payload};
		int append = !d->have_last || memcmp(key, d->last, sizeof key) > 0;
		rc = mdb_put(txn, d->dbi, &k, &v,
		             append ? MDB_APPEND : MDB_NOOVERWRITE);
		if (rc == MDB_KEYEXIST && !append) {
			c->duplicates++;
			continue;
		}
		if (rc) {
			mdb_txn_abort(txn);
			return fail("mdb_put", rc);
		}
		if (append) {
			memcpy(d->last, key, sizeof key);
			d->have_last = 1;
		}
		c->appended++;
	}
	if ((rc = mdb_txn_commit(txn)))
		return fail("mdb_txn_commit", rc);
	return 0;
}

static int lm_sync(void *vd)
{
	struct lm_db *d = vd;
	int rc = mdb_env_sync(d->env, 1);
	return rc ? fail("mdb_env_sync", rc) : 0;
}

/* Starts a read: renews the transaction and the cursor. */
static int read_begin(struct lm_db *d)
{
	int rc = mdb_txn_renew(d->rtxn);
	if (!rc)
		rc = mdb_cursor_renew(d->rtxn, d->cur);
	return rc ? fail("mdb_txn_renew", rc) : 0;
}

static int lm_bounds(void *vd, struct engine_bounds *out)
{
	struct lm_db *d = vd;
	MDB_stat st;
	MDB_val k, v;
	int rc;
	if (read_begin(d))
		return -1;
	out->events = 0;
	out->min_ts = out->max_ts = -1;
	if ((rc = mdb_stat(d->rtxn, d->dbi, &st)))
		goto out;
	out->events = st.ms_entries;
	if (st.ms_entries) {
		if ((rc = mdb_cursor_get(d->cur, &k, &v, MDB_FIRST)))
			goto out;
		out->min_ts = peer_key_ts(k.mv_data);
		if ((rc = mdb_cursor_get(d->cur, &k, &v, MDB_LAST)))
			goto out;
		out->max_ts = peer_key_ts(k.mv_data);
	}
out:
	mdb_txn_reset(d->rtxn);
	return rc ? fail("bounds", rc) : 0;
}

/* Walks from `op` (MDB_FIRST, or MDB_SET_RANGE on *k) while ts < to. */
static int walk(struct lm_db *d, MDB_val *k, MDB_cursor_op op, int64_t to,
                struct read_counts *c)
{
	MDB_val v;
	int rc;
	if (read_begin(d))
		return -1;
	for (rc = mdb_cursor_get(d->cur, k, &v, op); rc == 0;
	     rc = mdb_cursor_get(d->cur, k, &v, MDB_NEXT)) {
		const unsigned char *kk = k->mv_data;
		int64_t ts = peer_key_ts(kk);
		if (ts >= to)
			break;
		read_counts_add(c, ts, peer_key_id(kk), v.mv_data, v.mv_size);
	}
	mdb_txn_reset(d->rtxn);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : fail("mdb_cursor_get", rc);
}

static int lm_scan(void *vd, struct read_counts *c)
{
	MDB_val k = {0, NULL};
	return walk(vd, &k, MDB_FIRST, INT64_MAX, c);
}

static int lm_window(void *vd, int64_t from, int64_t to,
                     struct read_counts *c)
{
	unsigned char key[PEER_KEY_LEN];
	peer_key_encode(key, from, 0);
	MDB_val k = {PEER_KEY_LEN, key};
	return walk(vd, &k, MDB_SET_RANGE, to, c);
}

const struct engine engine_lmdb = {
	.name = "lmdb",
	.open = lm_open,
	.write_batch = lm_write_batch,
	.sync = lm_sync,
	.close = lm_close,
	.bounds = lm_bounds,
	.scan = lm_scan,
	.window = lm_window,
};
