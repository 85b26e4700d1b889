/* kv.c - LMDB behind a small interface: environment, transactions, map
 * growth and the mapping of LMDB errors to tidemark codes. */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "io.h"
#include "kv.h"

#define INITIAL_MAP (256ull << 20)
#define MIN_FREE (64ull << 20)

static const char *const TABLE_NAMES[KV_NTABLES] = {"shards", "index", "meta", "digest",
                                                    "labels"};

struct kv_env {
	MDB_env *env;
	MDB_dbi dbi[KV_NTABLES];
	/* 1 while a commit may not be on disk: kv_sync has work to do. */
	int unsynced;
	int sync_commits;
	char path[4096];
};

struct kv_txn {
	kv_env *env;
	MDB_txn *txn;
	int write;
	/* A put succeeded: LMDB's commit writes, and syncs. Deletes do not set
	 * it (dropping an empty table dirties nothing): a synced commit of
	 * deletes only leaves kv_unsynced as it was, which costs at most one
	 * fdatasync more. */
	int wrote;
};

struct kv_cursor {
	MDB_cursor *cur;
	kv_txn *txn;
};

static int lmdb_fail(int rc, const char *what)
{
	int code = TDM_EIO;
	if (rc == MDB_CORRUPTED || rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
	    rc == MDB_PAGE_NOTFOUND || rc == MDB_BAD_TXN || rc == MDB_INCOMPATIBLE)
		code = TDM_ECORRUPT;
	else if (rc == ENOMEM)
		code = TDM_ENOMEM;
	return tdm_fail(code, "index: %s: %s", what, mdb_strerror(rc));
}

int kv_open(kv_env **out, const char *path, int create, int sync_commits)
{
	int is_dir = 0, r = io_exists(path, &is_dir);
	if (r < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s", path);
	if (r == 0 || !is_dir) {
		if (!create)
			return tdm_fail(TDM_ENOTFOUND, "index: %s is missing", path);
		if ((r = io_mkdir(path)) < 0 && r != -EEXIST)
			return tdm_fail_errno(TDM_EIO, -r, "index: mkdir %s", path);
		/* The new directory's name must survive a power failure. */
		char parent[4096];
		snprintf(parent, sizeof parent, "%s/..", path);
		if ((r = io_fsync_dir(parent)) < 0)
			return tdm_fail_errno(TDM_EIO, -r, "index: sync %s", parent);
	}
	kv_env *e = calloc(1, sizeof *e);
	if (!e)
		return tdm_fail(TDM_ENOMEM, "index: out of memory");
	snprintf(e->path, sizeof e->path, "%s", path);
	e->sync_commits = sync_commits;
	/* What the files held at open may not be on disk yet (another
	 * process's unsynced commits): the first kv_sync syncs. */
	e->unsynced = 1;
	int rc = mdb_env_create(&e->env);
	if (rc)
		goto fail;
	mdb_env_set_maxdbs(e->env, KV_NTABLES);
	mdb_env_set_maxreaders(e->env, 256);
	mdb_env_set_mapsize(e->env, INITIAL_MAP);
	/* NOTLS: a reader's transaction is tied to its iterator, not a thread.
	 * NORDAHEAD: index lookups touch a few pages each (a replica diff reads
	 * a few hundred digest rows); the kernel's readahead would read
	 * hundreds of KB around each from a cold cache. */
	unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | (sync_commits ? 0 : MDB_NOSYNC);
	rc = mdb_env_open(e->env, path, flags, 0644);
	if (rc)
		goto fail;
	/* The map may have been grown by another process. */
	mdb_env_set_mapsize(e->env, 0);

	MDB_txn *txn;
	if ((rc = mdb_txn_begin(e->env, NULL, 0, &txn)))
		goto fail;
	for (int t = 0; t < KV_NTABLES; t++)
		if ((rc = mdb_dbi_open(txn, TABLE_NAMES[t], MDB_CREATE, &e->dbi[t]))) {
			mdb_txn_abort(txn);
			goto fail;
		}
	if ((rc = mdb_txn_commit(txn)))
		goto fail;
	*out = e;
	return 0;
fail:
	r = lmdb_fail(rc, "open");
	if (e->env)
		mdb_env_close(e->env);
	free(e);
	return r;
}

void kv_close(kv_env *env)
{
	if (!env)
		return;
	mdb_env_close(env->env);
	free(env);
}

/* Syncs only when a commit since the last sync may not be on disk: a
 * store's sync points (each replica request's goodbye, the close after it)
 * follow one another with nothing written between, and each fdatasync of
 * an unchanged file still costs a device flush. */
int kv_sync(kv_env *env)
{
	if (!env->unsynced)
		return 0;
	int rc = mdb_env_sync(env->env, 1);
	if (rc)
		return lmdb_fail(rc, "sync");
	env->unsynced = 0;
	return 0;
}

int kv_unsynced(const kv_env *env)
{
	return env->unsynced;
}

uint64_t kv_disk_bytes(const kv_env *env)
{
	uint64_t total = 0;
	static const char *const files[] = {"data.mdb", "lock.mdb"};
	for (size_t i = 0; i < 2; i++) {
		char p[4200];
		struct stat st;
		snprintf(p, sizeof p, "%s/%s", env->path, files[i]);
		if (tdm_io->stat(p, &st) == 0)
			total += (uint64_t)st.st_size;
	}
	return total;
}

int kv_reserve(kv_env *env)
{
	MDB_envinfo info;
	MDB_stat st;
	mdb_env_info(env->env, &info);
	mdb_env_stat(env->env, &st);
	uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	uint64_t map = info.me_mapsize;
	if (map - used >= map / 2 && map - used >= MIN_FREE)
		return 0;
	uint64_t size = map * 2;
	while (size - used < size / 2 || size - used < MIN_FREE)
		size *= 2;
	int rc = mdb_env_set_mapsize(env->env, size);
	return rc ? lmdb_fail(rc, "grow map") : 0;
}

int kv_begin(kv_txn **out, kv_env *env, int write)
{
	kv_txn *t = malloc(sizeof *t);
	if (!t)
		return tdm_fail(TDM_ENOMEM, "index: out of memory");
	t->env = env;
	t->write = write;
	t->wrote = 0;
	int rc = mdb_txn_begin(env->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map: adopt its size and retry. */
		mdb_env_set_mapsize(env->env, 0);
		rc = mdb_txn_begin(env->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
	}
	if (rc) {
		free(t);
		return lmdb_fail(rc, "begin transaction");
	}
	*out = t;
	return 0;
}

int kv_commit(kv_txn *txn)
{
	int rc = mdb_txn_commit(txn->txn);
	/* A failed commit may have written pages too. A synced commit that
	 * wrote fdatasyncs the whole file: whatever was unsynced is on disk.
	 * (One that wrote nothing returns before LMDB's sync.) */
	if (txn->write && (rc || !txn->env->sync_commits))
		txn->env->unsynced = 1;
	else if (txn->write && txn->wrote)
		txn->env->unsynced = 0;
	free(txn);
	return rc ? lmdb_fail(rc, "commit") : 0;
}

void kv_abort(kv_txn *txn)
{
	if (!txn)
		return;
	mdb_txn_abort(txn->txn);
	free(txn);
}

int kv_get(kv_val *val, kv_txn *txn, kv_table t, const void *key, size_t klen)
{
	MDB_val k = {klen, (void *)key}, v;
	int rc = mdb_get(txn->txn, txn->env->dbi[t], &k, &v);
	if (rc == MDB_NOTFOUND)
		return TDM_ENOTFOUND;
	if (rc)
		return lmdb_fail(rc, "get");
	val->data = v.mv_data;
	val->len = v.mv_size;
	return 0;
}

int kv_put(kv_txn *txn, kv_table t, const void *key, size_t klen,
           const void *val, size_t vlen)
{
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	int rc = mdb_put(txn->txn, txn->env->dbi[t], &k, &v, 0);
	if (rc)
		return lmdb_fail(rc, "put");
	txn->wrote = 1;
	return 0;
}

int kv_del_prefix(kv_txn *txn, kv_table t, const void *prefix, size_t plen)
{
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn->txn, txn->env->dbi[t], &c);
	if (rc)
		return lmdb_fail(rc, "cursor");
	MDB_val k = {plen, (void *)prefix}, v;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0) {
		if ((rc = mdb_cursor_del(c, 0)))
			break;
		rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
		if (rc == EINVAL) /* deleted the last key */
			rc = MDB_NOTFOUND;
	}
	mdb_cursor_close(c);
	return rc && rc != MDB_NOTFOUND ? lmdb_fail(rc, "delete") : 0;
}

int kv_clear(kv_txn *txn, kv_table t)
{
	int rc = mdb_drop(txn->txn, txn->env->dbi[t], 0);
	return rc ? lmdb_fail(rc, "clear") : 0;
}

int kv_cursor_open(kv_cursor **out, kv_txn *txn, kv_table t)
{
	kv_cursor *c = malloc(sizeof *c);
	if (!c)
		return tdm_fail(TDM_ENOMEM, "index: out of memory");
	int rc = mdb_cursor_open(txn->txn, txn->env->dbi[t], &c->cur);
	if (rc) {
		free(c);
		return lmdb_fail(rc, "cursor");
	}
	c->txn = txn;
	*out = c;
	return 0;
}

void kv_cursor_close(kv_cursor *c)
{
	if (!c)
		return;
	mdb_cursor_close(c->cur);
	free(c);
}

int kv_cursor_get(kv_cursor *c, kv_val *key, kv_val *val, kv_op op)
{
	static const MDB_cursor_op ops[] = {
		[KV_FIRST] = MDB_FIRST, [KV_NEXT] = MDB_NEXT, [KV_PREV] = MDB_PREV,
		[KV_LAST] = MDB_LAST, [KV_SEEK] = MDB_SET_RANGE, [KV_SET] = MDB_SET_KEY};
	MDB_val k = {0, NULL}, v;
	if (op == KV_SEEK || op == KV_SET)
		k = (MDB_val){key->len, (void *)key->data};
	int rc = mdb_cursor_get(c->cur, &k, &v, ops[op]);
	if (rc == MDB_NOTFOUND)
		return TDM_ENOTFOUND;
	if (rc)
		return lmdb_fail(rc, "cursor get");
	key->data = k.mv_data;
	key->len = k.mv_size;
	val->data = v.mv_data;
	val->len = v.mv_size;
	return 0;
}

int kv_cursor_put(kv_cursor *c, const void *key, size_t klen, const void *val,
                  size_t vlen)
{
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	int rc = mdb_cursor_put(c->cur, &k, &v, 0);
	if (rc)
		return lmdb_fail(rc, "put");
	c->txn->wrote = 1;
	return 0;
}
