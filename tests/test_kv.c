/*
 * test_kv.c - the LMDB layer (src/kv.c): opening, transactions, cursors
 * (reading and writing), prefix deletes, clearing, and map growth.
 */
#include "support.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

static char *dir;

static void setup(void)
{
	dir = tst_tmpdir();
}

static void teardown(void)
{
	tst_rmtree(dir);
	free(dir);
	dir = NULL;
}

static void sub(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

static kv_env *open_env(int create)
{
	char p[4096];
	sub(p, sizeof p, "index");
	kv_env *e = NULL;
	int r = kv_open(&e, p, create, 0);
	ck_assert_msg(r == 0, "kv_open: %d %s", r, tdm_error_message());
	ck_assert_ptr_nonnull(e);
	return e;
}

static void put_str(kv_txn *t, kv_table tab, const char *k, const char *v)
{
	ck_assert_int_eq(kv_put(t, tab, k, strlen(k), v, strlen(v)), 0);
}

static int get_is(kv_txn *t, kv_table tab, const char *k, const char *v)
{
	kv_val val;
	int r = kv_get(&val, t, tab, k, strlen(k));
	if (r)
		return 0;
	return val.len == strlen(v) && memcmp(val.data, v, val.len) == 0;
}

static int key_is(const kv_val *k, const char *s)
{
	return k->len == strlen(s) && memcmp(k->data, s, k->len) == 0;
}

START_TEST(test_open_missing)
{
	char p[4096];
	sub(p, sizeof p, "index");
	kv_env *e = NULL;
	ck_assert_int_eq(kv_open(&e, p, 0, 0), TDM_ENOTFOUND);
	ck_assert_ptr_null(e);
	/* A missing parent cannot be created either. */
	sub(p, sizeof p, "no/such/index");
	ck_assert_int_lt(kv_open(&e, p, 1, 0), 0);
}
END_TEST

START_TEST(test_put_get_persist)
{
	kv_env *e = open_env(1);
	kv_txn *t;
	ck_assert_int_eq(kv_begin(&t, e, 1), 0);
	put_str(t, KV_META, "k", "meta");
	put_str(t, KV_SHARDS, "k", "shards");
	put_str(t, KV_INDEX, "k", "index");
	/* Visible inside the transaction, per table. */
	ck_assert(get_is(t, KV_META, "k", "meta"));
	ck_assert(get_is(t, KV_SHARDS, "k", "shards"));
	ck_assert(get_is(t, KV_INDEX, "k", "index"));
	ck_assert_int_eq(kv_commit(t), 0);

	/* An aborted transaction leaves nothing. */
	ck_assert_int_eq(kv_begin(&t, e, 1), 0);
	put_str(t, KV_META, "k", "changed");
	put_str(t, KV_META, "new", "x");
	kv_abort(t);
	kv_abort(NULL);

	ck_assert_int_eq(kv_begin(&t, e, 0), 0);
	ck_assert(get_is(t, KV_META, "k", "meta"));
	kv_val v;
	ck_assert_int_eq(kv_get(&v, t, KV_META, "new", 3), TDM_ENOTFOUND);
	ck_assert_int_eq(kv_get(&v, t, KV_INDEX, "missing", 7), TDM_ENOTFOUND);
	/* A read transaction cannot write. */
	ck_assert_int_lt(kv_put(t, KV_META, "w", 1, "x", 1), 0);
	kv_abort(t);
	ck_assert_int_eq(kv_sync(e), 0);
	ck_assert_uint_gt(kv_disk_bytes(e), 0);
	kv_close(e);

	/* Reopened, without create. */
	e = open_env(0);
	ck_assert_int_eq(kv_begin(&t, e, 0), 0);
	ck_assert(get_is(t, KV_META, "k", "meta"));
	ck_assert(get_is(t, KV_SHARDS, "k", "shards"));
	ck_assert(get_is(t, KV_INDEX, "k", "index"));
	kv_abort(t);
	kv_close(e);
	kv_close(NULL);
}
END_TEST

START_TEST(test_snapshot_isolation)
{
	/* A read transaction sees what was committed when it began. */
	kv_env *e = open_env(1);
	kv_txn *w, *r;
	ck_assert_int_eq(kv_begin(&w, e, 1), 0);
	put_str(w, KV_META, "a", "1");
	ck_assert_int_eq(kv_commit(w), 0);
	ck_assert_int_eq(kv_begin(&r, e, 0), 0);
	ck_assert_int_eq(kv_begin(&w, e, 1), 0);
	put_str(w, KV_META, "a", "2");
	ck_assert_int_eq(kv_commit(w), 0);
	ck_assert(get_is(r, KV_META, "a", "1"));
	kv_abort(r);
	ck_assert_int_eq(kv_begin(&r, e, 0), 0);
	ck_assert(get_is(r, KV_META, "a", "2"));
	kv_abort(r);
	kv_close(e);
}
END_TEST

START_TEST(test_cursor)
{
	kv_env *e = open_env(1);
	kv_txn *t;
	ck_assert_int_eq(kv_begin(&t, e, 1), 0);
	const char *ks[] = {"b", "a", "ab", "c", "ba", "\xff"};
	for (size_t i = 0; i < 6; i++)
		put_str(t, KV_INDEX, ks[i], ks[i]);
	put_str(t, KV_META, "0", "other table");
	ck_assert_int_eq(kv_commit(t), 0);

	ck_assert_int_eq(kv_begin(&t, e, 0), 0);
	kv_cursor *c;
	ck_assert_int_eq(kv_cursor_open(&c, t, KV_INDEX), 0);
	kv_val k, v;
	/* Bytewise order, forwards and backwards. */
	const char *order[] = {"a", "ab", "b", "ba", "c", "\xff"};
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_FIRST), 0);
	ck_assert(key_is(&k, order[0]));
	ck_assert(key_is(&v, order[0]));
	for (size_t i = 1; i < 6; i++) {
		ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_NEXT), 0);
		ck_assert(key_is(&k, order[i]));
	}
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_NEXT), TDM_ENOTFOUND);
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_LAST), 0);
	ck_assert(key_is(&k, "\xff"));
	for (int i = 4; i >= 0; i--) {
		ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_PREV), 0);
		ck_assert(key_is(&k, order[i]));
	}
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_PREV), TDM_ENOTFOUND);

	/* Seek: the first key >= the one given. */
	struct {
		const char *seek, *want;
	} seeks[] = {{"\x01", "a"}, {"a", "a"}, {"aa", "ab"}, {"ab", "ab"}, {"abc", "b"},
	             {"bz", "c"}, {"c", "c"}, {"d", "\xff"}};
	for (size_t i = 0; i < sizeof seeks / sizeof seeks[0]; i++) {
		k = (kv_val){seeks[i].seek, strlen(seeks[i].seek)};
		ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_SEEK), 0);
		ck_assert_msg(key_is(&k, seeks[i].want), "seek '%s'", seeks[i].seek);
	}
	k = (kv_val){"\xff\x01", 2};
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_SEEK), TDM_ENOTFOUND);
	/* After a seek, next and prev move from there. */
	k = (kv_val){"b", 1};
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_SEEK), 0);
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_PREV), 0);
	ck_assert(key_is(&k, "ab"));
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_NEXT), 0);
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_NEXT), 0);
	ck_assert(key_is(&k, "ba"));
	kv_cursor_close(c);
	kv_cursor_close(NULL);

	/* An empty table: nothing anywhere. */
	ck_assert_int_eq(kv_cursor_open(&c, t, KV_SHARDS), 0);
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_FIRST), TDM_ENOTFOUND);
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_LAST), TDM_ENOTFOUND);
	k = (kv_val){"a", 1};
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_SEEK), TDM_ENOTFOUND);
	kv_cursor_close(c);
	kv_abort(t);
	kv_close(e);
}
END_TEST

/* Puts through a cursor, in key order as the digest flush makes them:
 * exact gets find only the key given, replaced values may change size,
 * new keys land between old ones, and a cursor put counts as a write for
 * a synced commit. */
START_TEST(test_cursor_put)
{
	char p[4096];
	sub(p, sizeof p, "index");
	kv_env *e = NULL;
	ck_assert_int_eq(kv_open(&e, p, 1, 1), 0);
	kv_txn *t;
	ck_assert_int_eq(kv_begin(&t, e, 1), 0);
	put_str(t, KV_DIGEST, "b", "1");
	put_str(t, KV_DIGEST, "d", "22");
	ck_assert_int_eq(kv_commit(t), 0);
	kv_close(e);
	ck_assert_int_eq(kv_open(&e, p, 0, 1), 0);
	ck_assert_int_eq(kv_unsynced(e), 1); /* what the files held at open */

	ck_assert_int_eq(kv_begin(&t, e, 1), 0);
	kv_cursor *c;
	ck_assert_int_eq(kv_cursor_open(&c, t, KV_DIGEST), 0);
	const char *keys[] = {"a", "b", "c", "d", "e"};
	const char *vals[] = {"new a", "1 grown", "new c", "2", "new e"};
	for (size_t i = 0; i < 5; i++) {
		kv_val k = {keys[i], 1}, v;
		int r = kv_cursor_get(c, &k, &v, KV_SET);
		int stored = keys[i][0] == 'b' || keys[i][0] == 'd';
		ck_assert_int_eq(r, stored ? 0 : TDM_ENOTFOUND);
		if (stored)
			ck_assert(key_is(&k, keys[i]));
		ck_assert_int_eq(kv_cursor_put(c, keys[i], 1, vals[i], strlen(vals[i])), 0);
	}
	kv_cursor_close(c);
	ck_assert_int_eq(kv_commit(t), 0);
	/* A synced commit that put through a cursor left nothing unsynced. */
	ck_assert_int_eq(kv_unsynced(e), 0);

	ck_assert_int_eq(kv_begin(&t, e, 0), 0);
	for (size_t i = 0; i < 5; i++)
		ck_assert_msg(get_is(t, KV_DIGEST, keys[i], vals[i]), "key %s", keys[i]);
	ck_assert_int_eq(kv_cursor_open(&c, t, KV_DIGEST), 0);
	kv_val k = {"bb", 2}, v;
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_SET), TDM_ENOTFOUND);
	size_t n = 0;
	for (int r = kv_cursor_get(c, &k, &v, KV_FIRST); !r; r = kv_cursor_get(c, &k, &v, KV_NEXT))
		ck_assert(key_is(&k, keys[n++]));
	ck_assert_uint_eq(n, 5);
	kv_cursor_close(c);
	kv_abort(t);
	kv_close(e);
}
END_TEST

START_TEST(test_del_prefix_and_clear)
{
	kv_env *e = open_env(1);
	kv_txn *t;
	ck_assert_int_eq(kv_begin(&t, e, 1), 0);
	const char *ks[] = {"a", "p", "pa", "pb", "pzz", "q", "o\xff", "p\xff"};
	for (size_t i = 0; i < 8; i++)
		put_str(t, KV_INDEX, ks[i], "v");
	put_str(t, KV_SHARDS, "pa", "other table");
	ck_assert_int_eq(kv_commit(t), 0);

	ck_assert_int_eq(kv_begin(&t, e, 1), 0);
	ck_assert_int_eq(kv_del_prefix(t, KV_INDEX, "p", 1), 0);
	ck_assert_int_eq(kv_commit(t), 0);
	ck_assert_int_eq(kv_begin(&t, e, 0), 0);
	const char *left[] = {"a", "o\xff", "q"};
	kv_cursor *c;
	kv_val k, v;
	ck_assert_int_eq(kv_cursor_open(&c, t, KV_INDEX), 0);
	int r = kv_cursor_get(c, &k, &v, KV_FIRST);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_int_eq(r, 0);
		ck_assert_msg(key_is(&k, left[i]), "key %zu", i);
		r = kv_cursor_get(c, &k, &v, KV_NEXT);
	}
	ck_assert_int_eq(r, TDM_ENOTFOUND);
	kv_cursor_close(c);
	ck_assert(get_is(t, KV_SHARDS, "pa", "other table"));
	kv_abort(t);

	/* Deleting a prefix that runs to the last key, and one that matches
	 * nothing. */
	ck_assert_int_eq(kv_begin(&t, e, 1), 0);
	ck_assert_int_eq(kv_del_prefix(t, KV_INDEX, "q", 1), 0);
	ck_assert_int_eq(kv_del_prefix(t, KV_INDEX, "zz", 2), 0);
	ck_assert_int_eq(kv_del_prefix(t, KV_SHARDS, "x", 1), 0);
	ck_assert(get_is(t, KV_INDEX, "a", "v"));
	kv_val val;
	ck_assert_int_eq(kv_get(&val, t, KV_INDEX, "q", 1), TDM_ENOTFOUND);
	/* Many keys under one prefix, spanning several pages. */
	char key[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof key, "m%06d", i);
		put_str(t, KV_INDEX, key, "0123456789abcdef0123456789abcdef");
	}
	ck_assert_int_eq(kv_del_prefix(t, KV_INDEX, "m", 1), 0);
	ck_assert_int_eq(kv_cursor_open(&c, t, KV_INDEX), 0);
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_FIRST), 0);
	ck_assert(key_is(&k, "a"));
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_NEXT), 0);
	ck_assert(key_is(&k, "o\xff"));
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_NEXT), TDM_ENOTFOUND);
	kv_cursor_close(c);

	/* Clear empties one table only. */
	ck_assert_int_eq(kv_clear(t, KV_INDEX), 0);
	ck_assert_int_eq(kv_get(&val, t, KV_INDEX, "a", 1), TDM_ENOTFOUND);
	ck_assert(get_is(t, KV_SHARDS, "pa", "other table"));
	put_str(t, KV_INDEX, "after", "clear"); /* still usable */
	ck_assert_int_eq(kv_commit(t), 0);
	kv_close(e);

	e = open_env(0);
	ck_assert_int_eq(kv_begin(&t, e, 0), 0);
	ck_assert_int_eq(kv_cursor_open(&c, t, KV_INDEX), 0);
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_FIRST), 0);
	ck_assert(key_is(&k, "after"));
	ck_assert_int_eq(kv_cursor_get(c, &k, &v, KV_NEXT), TDM_ENOTFOUND);
	kv_cursor_close(c);
	kv_abort(t);
	kv_close(e);
}
END_TEST

/* kv_sync syncs only when a commit may not be on disk: after a sync and
 * before the next write commit it has nothing to do (a store's successive
 * sync points then cost no device flush). */
START_TEST(test_sync_only_when_unsynced)
{
	kv_env *e = open_env(1);
	/* What the files held at open: the first sync syncs. */
	ck_assert_int_eq(kv_unsynced(e), 1);
	ck_assert_int_eq(kv_sync(e), 0);
	ck_assert_int_eq(kv_unsynced(e), 0);
	kv_txn *t;
	ck_assert_int_eq(kv_begin(&t, e, 0), 0);
	kv_abort(t);
	ck_assert_int_eq(kv_begin(&t, e, 0), 0);
	ck_assert_int_eq(kv_commit(t), 0); /* a read transaction writes nothing */
	ck_assert_int_eq(kv_unsynced(e), 0);
	ck_assert_int_eq(kv_begin(&t, e, 1), 0);
	put_str(t, KV_META, "k", "v");
	kv_abort(t); /* an aborted write leaves nothing to sync */
	ck_assert_int_eq(kv_unsynced(e), 0);
	ck_assert_int_eq(kv_begin(&t, e, 1), 0);
	put_str(t, KV_META, "k", "v");
	ck_assert_int_eq(kv_commit(t), 0);
	ck_assert_int_eq(kv_unsynced(e), 1);
	ck_assert_int_eq(kv_sync(e), 0);
	ck_assert_int_eq(kv_unsynced(e), 0);
	ck_assert_int_eq(kv_sync(e), 0);
	kv_close(e);

	/* With synced commits, a commit that wrote synced the whole file:
	 * nothing is left to sync, not even what was there at open. One that
	 * wrote nothing synced nothing. */
	char p[4096];
	sub(p, sizeof p, "index");
	ck_assert_int_eq(kv_open(&e, p, 0, 1), 0);
	ck_assert_int_eq(kv_unsynced(e), 1);
	ck_assert_int_eq(kv_begin(&t, e, 1), 0);
	ck_assert_int_eq(kv_commit(t), 0);
	ck_assert_int_eq(kv_unsynced(e), 1);
	ck_assert_int_eq(kv_begin(&t, e, 1), 0);
	put_str(t, KV_META, "k2", "v2");
	ck_assert_int_eq(kv_commit(t), 0);
	ck_assert_int_eq(kv_unsynced(e), 0);
	ck_assert_int_eq(kv_begin(&t, e, 0), 0);
	ck_assert(get_is(t, KV_META, "k2", "v2"));
	kv_abort(t);
	kv_close(e);
}
END_TEST

START_TEST(test_reserve_grows_map)
{
	/* More than the initial 256 MiB map, in transactions of 16 MiB with a
	 * kv_reserve before each (as the writer does): no commit may meet a
	 * full map. */
	enum { VAL = 1 << 20, PER_TXN = 16, TXNS = 20 };
	kv_env *e = open_env(1);
	uint8_t *val = tst_malloc(VAL);
	memset(val, 0x5a, VAL);
	for (int t = 0; t < TXNS; t++) {
		int r = kv_reserve(e);
		ck_assert_msg(r == 0, "kv_reserve before txn %d: %s", t, tdm_error_message());
		kv_txn *txn;
		ck_assert_int_eq(kv_begin(&txn, e, 1), 0);
		for (int i = 0; i < PER_TXN; i++) {
			uint32_t key = (uint32_t)(t * PER_TXN + i);
			memcpy(val, &key, sizeof key);
			r = kv_put(txn, KV_META, &key, sizeof key, val, VAL);
			if (r != 0)
				ck_abort_msg("put %u: %s", key, tdm_error_message());
		}
		r = kv_commit(txn);
		ck_assert_msg(r == 0, "commit %d: %s", t, tdm_error_message());
	}
	ck_assert_uint_gt(kv_disk_bytes(e), 256ull << 20);
	kv_close(e);

	/* All there after a reopen (which adopts the grown map). */
	e = open_env(0);
	kv_txn *txn;
	ck_assert_int_eq(kv_begin(&txn, e, 0), 0);
	for (uint32_t key = 0; key < TXNS * PER_TXN; key += 37) {
		kv_val v;
		ck_assert_int_eq(kv_get(&v, txn, KV_META, &key, sizeof key), 0);
		ck_assert_uint_eq(v.len, VAL);
		ck_assert_int_eq(memcmp(v.data, &key, sizeof key), 0);
		ck_assert_uint_eq(((const uint8_t *)v.data)[VAL - 1], 0x5a);
	}
	kv_abort(txn);
	/* And writing more still works. */
	ck_assert_int_eq(kv_reserve(e), 0);
	ck_assert_int_eq(kv_begin(&txn, e, 1), 0);
	uint32_t key = 100000;
	ck_assert_int_eq(kv_put(txn, KV_META, &key, sizeof key, val, VAL), 0);
	ck_assert_int_eq(kv_commit(txn), 0);
	kv_close(e);
	free(val);
}
END_TEST

static Suite *kv_suite(void)
{
	Suite *s = suite_create("kv");
	TCase *tc = tcase_create("kv");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_open_missing);
	tcase_add_test(tc, test_put_get_persist);
	tcase_add_test(tc, test_snapshot_isolation);
	tcase_add_test(tc, test_cursor);
	tcase_add_test(tc, test_cursor_put);
	tcase_add_test(tc, test_del_prefix_and_clear);
	tcase_add_test(tc, test_reserve_grows_map);
	tcase_add_test(tc, test_sync_only_when_unsynced);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(kv_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
