/* retain.c - retention: whole shards older than a time are dropped.
 *
 * Order (docs/DESIGN.md, "Retention"): one LMDB commit deletes the shards'
 * derived state (synced), so readers stop seeing them at once; then each
 * shard's data file (main or sealed) is renamed to NNNN.dropped and the
 * directory synced -- the shard is gone for recovery too, even one that
 * rebuilds the index from the files -- and its other files are removed.
 * A crash anywhere leaves either the whole shard or none of it: recovery
 * finishes what a .dropped file began, and removes the files of a shard a
 * trusted index no longer knows the same way. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "error.h"
#include "index.h"
#include "io.h"
#include "store.h"

static int rel_path(char *rel, size_t rcap, char *path, size_t pcap,
                    tdm_store *s, int64_t shard, shard_kind kind, uint64_t gen)
{
	shard_relname_gen(rel, rcap, shard, kind, gen);
	return store_path(path, pcap, s, rel);
}

int retain_drop_files(tdm_store *s, int64_t shard, uint64_t seal_gen)
{
	char rel[80], path[4200], drel[80], dpath[4200], dir[4200];
	int r;
	if ((r = rel_path(rel, sizeof rel, path, sizeof path, s, shard,
	                  seal_gen ? SHARD_SEALED : SHARD_MAIN, seal_gen)) ||
	    (r = rel_path(drel, sizeof drel, dpath, sizeof dpath, s, shard,
	                  SHARD_DROPPED, 0)) ||
	    (r = store_path(dir, sizeof dir, s, SHARDS_DIR)))
		return r;
	/* The rename is the point of no return: made durable before anything
	 * else goes, so no crash can leave a part of the shard. */
	if ((r = io_rename(path, dpath)) < 0 && r != -ENOENT)
		return tdm_fail_errno(TDM_EIO, -r, "%s: rename to %s", rel, drel);
	if ((r = io_fsync_dir(dir)) < 0)
		return tdm_fail_errno(TDM_EIO, -r, "%s: sync", SHARDS_DIR);
	if ((r = store_remove_shard_file(s, shard, SHARD_RECON, 0)) ||
	    (r = store_remove_shard_file(s, shard, SHARD_MAIN, 0)) ||
	    (seal_gen && (r = store_remove_shard_file(s, shard, SHARD_SEALED, seal_gen))) ||
	    (r = store_remove_shard_file(s, shard, SHARD_DROPPED, 0)))
		return r;
	return 0;
}

int retain_store(uint64_t *dropped, tdm_store *s, int64_t before)
{
	*dropped = 0;
	int r = writer_sync(s);
	shard_meta *a = NULL;
	size_t n = 0, k = 0;
	int64_t newest, d = s->opts.shard_duration_ns;
	if (!r)
		r = seal_list_shards(&a, &n, &newest, s);
	/* Whole shards that end at or before `before`, and are closed: past
	 * their grace window, so no on-time event can come for them. */
	for (size_t i = 0; i < n && !r; i++)
		if (a[i].shard < INT64_MAX / d && (a[i].shard + 1) * d <= before &&
		    seal_shard_closed(s, a[i].shard, newest))
			a[k++] = a[i];
	kv_txn *txn = NULL;
	if (!r && k && !(r = kv_reserve(s->kv)) && !(r = kv_begin(&txn, s->kv, 1))) {
		for (size_t i = 0; i < k && !r; i++)
			if (!(r = index_entries_del(txn, a[i].shard)) &&
			    !(r = digest_del_shard(txn, a[i].shard)))
				r = index_meta_del(txn, a[i].shard);
		if (r)
			kv_abort(txn);
		else if (!(r = kv_commit(txn)))
			r = kv_sync(s->kv);
	}
	for (size_t i = 0; i < k && !r; i++) {
		writer_forget(s->w, a[i].shard);
		r = retain_drop_files(s, a[i].shard, a[i].seal_gen);
	}
	if (!r && k) {
		char dir[4200];
		if (!(r = store_path(dir, sizeof dir, s, SHARDS_DIR)) &&
		    (r = io_fsync_dir(dir)) < 0)
			r = tdm_fail_errno(TDM_EIO, -r, "%s: sync", SHARDS_DIR);
	}
	if (!r)
		*dropped = k;
	free(a);
	return r;
}
