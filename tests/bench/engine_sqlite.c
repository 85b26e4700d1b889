/*
 * engine_sqlite.c - SQLite as a peer of tidemark-bench, with the settings
 * its documentation recommends for this kind of load:
 *
 *   - WAL journal; synchronous=NORMAL for --sync end/none (commits are not
 *     synced, checkpoints are; "end" adds a TRUNCATE checkpoint, which syncs
 *     the WAL and the database), synchronous=FULL for --sync batch (every
 *     commit syncs the WAL);
 *   - table events(ts INTEGER, id INTEGER, payload BLOB) with an index on
 *     ts; one transaction per batch; prepared statements, bound and reset;
 *   - a 64 MiB page cache (cache_size=-65536) so that building the index
 *     does not thrash the default 2 MiB cache.
 *
 * scan = SELECT ts, id, payload FROM events ORDER BY ts, id
 * window = the same WHERE ts >= ? AND ts < ?
 */
#include <stdio.h>
#include <stdlib.h>

#include <sqlite3.h>

#include "engine.h"

struct sq_db {
	sqlite3 *db;
	sqlite3_stmt *begin, *commit, *insert;
	sqlite3_stmt *scan, *window;
};

static int fail(struct sq_db *d, const char *what)
{
	fprintf(stderr, "tidemark-bench: sqlite: %s: %s\n", what,
	        d && d->db ? sqlite3_errmsg(d->db) : "out of memory");
	return -1;
}

static int exec(struct sq_db *d, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(d->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, "tidemark-bench: sqlite: %s: %s\n", sql,
		        err ? err : sqlite3_errmsg(d->db));
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

static int prepare(struct sq_db *d, sqlite3_stmt **st, const char *sql)
{
	if (sqlite3_prepare_v3(d->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st,
	                       NULL) != SQLITE_OK)
		return fail(d, sql);
	return 0;
}

static void sq_free(struct sq_db *d)
{
	sqlite3_finalize(d->begin);
	sqlite3_finalize(d->commit);
	sqlite3_finalize(d->insert);
	sqlite3_finalize(d->scan);
	sqlite3_finalize(d->window);
}

static int sq_close(void *vd)
{
	struct sq_db *d = vd;
	sq_free(d);
	int rc = sqlite3_close(d->db) == SQLITE_OK ? 0 : fail(d, "close");
	free(d);
	return rc;
}

static int sq_open(void **out, const char *dir,
                   const struct engine_open_args *a)
{
	struct sq_db *d = calloc(1, sizeof *d);
	char path[4096];
	if (!d)
		return fail(NULL, "open");
	snprintf(path, sizeof path, "%s/events.db", dir);
	int flags = a->create ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
	                      : SQLITE_OPEN_READONLY;
	if (sqlite3_open_v2(path, &d->db, flags | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		fail(d, path);
		sqlite3_close(d->db);
		free(d);
		return -1;
	}
	int bad = exec(d, "PRAGMA cache_size=-65536");
	if (a->create) {
		bad = bad || exec(d, "PRAGMA journal_mode=WAL") ||
		      exec(d, a->sync == SYNC_BATCH ? "PRAGMA synchronous=FULL"
		                                    : "PRAGMA synchronous=NORMAL") ||
		      exec(d, "CREATE TABLE events(ts INTEGER NOT NULL, "
		              "id INTEGER NOT NULL, payload BLOB NOT NULL)") ||
		      exec(d, "CREATE INDEX events_ts ON events(ts)") ||
		      prepare(d, &d->begin, "BEGIN") ||
		      prepare(d, &d->commit, "COMMIT") ||
		      prepare(d, &d->insert, "INSERT INTO events(ts, id, payload) "
		                             "VALUES (?1, ?2, ?3)");
	} else {
		bad = bad ||
		      prepare(d, &d->scan, "SELECT ts, id, payload FROM events "
		                           "ORDER BY ts, id") ||
		      prepare(d, &d->window, "SELECT ts, id, payload FROM events "
		                             "WHERE ts >= ?1 AND ts < ?2 "
		                             "ORDER BY ts, id");
	}
	if (bad) {
		sq_close(d);
		return -1;
	}
	*out = d;
	return 0;
}

static int step_done(struct sq_db *d, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : fail(d, what);
}

static int sq_write_batch(void *vd, const struct bench_event *ev, size_t n,
                          struct write_counts *c)
{
	struct sq_db *d = vd;
	if (step_done(d, d->begin, "BEGIN"))
		return -1;
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_int64(d->insert, 1, ev[i].ts);
		sqlite3_bind_int64(d->insert, 2, ev[i].id);
		sqlite3_bind_blob(d->insert, 3, ev[i].payload,
		                  (int)ev[i].payload_len, SQLITE_STATIC);
		if (step_done(d, d->insert, "INSERT")) {
			exec(d, "ROLLBACK");
			return -1;
		}
	}
	if (step_done(d, d->commit, "COMMIT"))
		return -1;
	c->appended += n;
	return 0;
}

static int sq_sync(void *vd)
{
	/* Copies the WAL into the database and syncs both. */
	return exec(vd, "PRAGMA wal_checkpoint(TRUNCATE)");
}

static int sq_bounds(void *vd, struct engine_bounds *out)
{
	struct sq_db *d = vd;
	sqlite3_stmt *st;
	if (prepare(d, &st, "SELECT count(*), coalesce(min(ts), -1), "
	                    "coalesce(max(ts), -1) FROM events"))
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->events = (uint64_t)sqlite3_column_int64(st, 0);
		out->min_ts = sqlite3_column_int64(st, 1);
		out->max_ts = sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : fail(d, "bounds");
}

static int read_rows(struct sq_db *d, sqlite3_stmt *st, struct read_counts *c)
{
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(st, 2);
		size_t len = (size_t)sqlite3_column_bytes(st, 2);
		read_counts_add(c, sqlite3_column_int64(st, 0),
		                (uint32_t)sqlite3_column_int64(st, 1), p, len);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : fail(d, "SELECT");
}

static int sq_scan(void *vd, struct read_counts *c)
{
	struct sq_db *d = vd;
	return read_rows(d, d->scan, c);
}

static int sq_window(void *vd, int64_t from, int64_t to,
                     struct read_counts *c)
{
	struct sq_db *d = vd;
	sqlite3_bind_int64(d->window, 1, from);
	sqlite3_bind_int64(d->window, 2, to);
	return read_rows(d, d->window, c);
}

const struct engine engine_sqlite = {
	.name = "sqlite",
	.open = sq_open,
	.write_batch = sq_write_batch,
	.sync = sq_sync,
	.close = sq_close,
	.bounds = sq_bounds,
	.scan = sq_scan,
	.window = sq_window,
};
