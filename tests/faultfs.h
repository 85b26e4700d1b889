/*
 * faultfs.h - a tdm_io_ops table for tests that simulates power loss and
 * fails chosen calls.
 *
 * It wraps tdm_io_posix. For every file under a root directory it tracks
 * what a power failure would leave:
 *  - the durable content of a file: its bytes as of its last fsync (a
 *    snapshot taken at the fsync; the stores of the tests are small);
 *  - the durable directory entries: a new name (create, rename, unlink) is
 *    durable once its directory is fsynced (io_fsync_dir) after the change.
 * A file that existed before the layer first saw it counts as durable as it
 * was then. The real fdatasync is not called: durability is simulated.
 *
 * Power loss at sync N: the N-th call to fsync through the layer since
 * faultfs_arm (files and directories alike) does not happen, and it and
 * every later call through the layer fail with EIO (close still releases
 * the descriptor). The process is as good as dead; the test closes its
 * handles, then calls faultfs_crash(mode) to put the files on disk into one
 * state the machine could come back up with:
 *  - FAULTFS_DROP: each file holds its durable content; names never made
 *    durable are removed, durable names that were removed or renamed since
 *    come back;
 *  - FAULTFS_KEEP: everything stays as it is (the page cache was written
 *    back after all);
 *  - FAULTFS_TEAR: each file holds its durable content plus a random prefix
 *    of the bytes appended since, whose last 0..64 bytes are garbled; a file
 *    cut back since its last sync gets a random length in between; each
 *    name change not made durable happened or not, at random.
 * Random choices come from the seed given to faultfs_install.
 *
 * Paths under an ignored prefix (LMDB's index/, which LMDB writes itself)
 * are never tracked nor rewritten. Directories are not tracked: they are
 * taken as durable.
 *
 * Single-threaded, process-wide, for tests only.
 */
#ifndef TDM_TESTS_FAULTFS_H
#define TDM_TESTS_FAULTFS_H

#include <stdint.h>

#include "io.h"

enum faultfs_mode { FAULTFS_DROP, FAULTFS_KEEP, FAULTFS_TEAR };

/* Calls that can be counted and failed. */
enum faultfs_op {
	FAULTFS_OPEN,
	FAULTFS_PWRITE,
	FAULTFS_FSYNC,
	FAULTFS_FTRUNCATE,
	FAULTFS_RENAME,
	FAULTFS_NOPS
};

extern const tdm_io_ops faultfs_ops;

/* Resets every piece of state, tracks files under `root` and points tdm_io
 * at faultfs_ops. Counting starts (as if faultfs_arm had been called). */
void faultfs_install(const char *root, uint64_t seed);
/* Never tracks paths under `prefix` (up to 8 prefixes). */
void faultfs_ignore(const char *prefix);
/* Points tdm_io back at tdm_io_posix and frees all state. */
void faultfs_uninstall(void);

/* Sets every counter to 0 and clears pending power loss and failures. */
void faultfs_arm(void);
/* Calls of `op` since faultfs_arm, the failing ones included. */
uint64_t faultfs_calls(enum faultfs_op op);
/* fsync calls since faultfs_arm (= faultfs_calls(FAULTFS_FSYNC)). */
uint64_t faultfs_syncs(void);

/* The power goes at the n-th fsync after faultfs_arm (0: never). */
void faultfs_power_loss_at(uint64_t n);
/* 1 once the power has gone. */
int faultfs_power_lost(void);

/* The k-th call of `op` after faultfs_arm (k >= 1) fails once with `err`
 * (ENOSPC, EIO, ...); the calls after it work. With `partial`, a failing
 * pwrite first writes half of its bytes (a short write), and the call that
 * follows for the rest fails. One failure can be pending at a time. */
void faultfs_fail_call(enum faultfs_op op, uint64_t k, int err, int partial);
/* How many calls were failed by faultfs_fail_call since faultfs_arm. */
uint64_t faultfs_failures(void);

/* Rewrites the tracked files as a power failure now would leave them (see
 * above). Every descriptor must be closed. Afterwards the power is back,
 * counters are 0, and the files are taken as durable as they are. Returns
 * the number of files rewritten or removed. */
unsigned faultfs_crash(enum faultfs_mode mode);

const char *faultfs_mode_name(enum faultfs_mode mode);

#endif /* TDM_TESTS_FAULTFS_H */
