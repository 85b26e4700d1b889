#!/usr/bin/env python3
"""Real-process durability tests (issue 3, SPEC §3 and §5).

tdm_loadgen ($TDM_LOADGEN) is a writer and a reader process on the public
API; its events are a pure function of (seed, batch, slot), so every check
here knows what each batch holds without talking to the processes. The
tidemark command ($TIDEMARK) reads and verifies the stores.

- KillTest: a writer in `batch` durability is killed with SIGKILL at random
  moments and restarted, with batches of 50 events and of 10000 (written in
  several pieces). A reader right after some kills finds every acknowledged
  batch whole and no batch in part; after a last run that ends normally every
  acknowledged batch is present exactly once, re-appends find only
  duplicates, and `tidemark verify` passes. A second writer (CLI or
  tdm_loadgen) meets exit 75 naming the holder's pid.
- ConcurrentReaderTest: readers loop over the store while a writer appends
  and never see part of a batch, nor an event twice or altered.

TDM_PROC_SOAK=1 runs the long variant (200 kills, more reads);
TDM_PROC_SEED changes the seed. Python standard library only.
"""

import json
import os
import random
import re
import signal
import subprocess
import tempfile
import time
import unittest

LOADGEN = os.environ.get("TDM_LOADGEN", "tdm_loadgen")
TIDEMARK = os.environ.get("TIDEMARK", "tidemark")
SOAK = os.environ.get("TDM_PROC_SOAK") == "1"
SEED = int(os.environ.get("TDM_PROC_SEED", "20251122"))

KILLS = 200 if SOAK else 20
BIG_KILLS = 40 if SOAK else 6
READS = 100_000 if SOAK else 10_000
BATCH_SIZE = 50
FOREVER = 10 ** 9  # batches: a writer that runs until it is killed
EXIT_LOCKED = 75


def run(*args, stdin=b"", timeout=300):
    """Runs a command; returns (exit code, stdout, stderr) as bytes."""
    p = subprocess.run([*map(str, args)], input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def spawn_writer(store, seed, *extra, ack_log=None, batch_size=BATCH_SIZE):
    args = [LOADGEN, "write", store, "--seed", seed, "--batch-size",
            batch_size, "--durability", "batch", *extra]
    if ack_log:
        args += ["--ack-log", ack_log]
    return subprocess.Popen([*map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def kill(p):
    """SIGKILLs p (if it still runs) and reaps it; returns its stderr."""
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    _, err = p.communicate(timeout=60)
    return err.decode("utf-8", "replace")


ACK_LINE = re.compile(r"(start|run|done) (\d+)|ack (\d+) (\d+) (\d+)")


def read_acks(path, offset=0):
    """The ack log from `offset`: a list of runs, each a dict with the pid,
    whether it opened the store, its acks [(batch, appended, duplicates)]
    and whether it ended. A last line without its newline is being written
    and left out. A line a SIGKILL tore (write(2) of a line that crosses a
    page can stop halfway) was never an acknowledgement: it is skipped, and
    the next run's start line that follows it on the same line is kept."""
    runs = []
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read().decode()
    for line in data.split("\n")[:-1]:
        m = ACK_LINE.fullmatch(line)
        if not m:
            torn = line.rfind("start ")
            m = ACK_LINE.fullmatch(line[torn:]) if torn > 0 else None
            if not m:
                raise AssertionError("bad ack log line: %r" % line)
        word = m.group(1)
        if word == "start":
            runs.append({"pid": int(m.group(2)), "opened": False, "acks": [],
                         "done": False})
        elif word == "run":
            runs[-1]["opened"] = True
        elif word == "done":
            runs[-1]["done"] = True
        else:
            runs[-1]["acks"].append(tuple(int(g) for g in m.group(3, 4, 5)))
    return runs


def wait_for_acks(path, offset, n, proc, timeout=300):
    """Waits until the run that writes from `offset` has acked n batches;
    returns the largest batch it acked."""
    deadline = time.monotonic() + timeout
    while True:
        runs = read_acks(path, offset) if os.path.exists(path) else []
        acks = runs[0]["acks"] if runs else []
        if len(acks) >= n:
            return max(b for b, _, _ in acks)
        if proc.poll() is not None:
            raise AssertionError("writer ended early (exit %s): %s" % (
                proc.returncode, proc.stderr.read().decode("utf-8", "replace")))
        if time.monotonic() > deadline:
            raise AssertionError("writer made no progress in %d s" % timeout)
        time.sleep(0.002)


def read_store(test, store):
    """Reads the whole store with `tidemark read`; checks that no event
    comes twice and that every batch is whole; returns {batch: size}."""
    rc, out, err = run(TIDEMARK, "read", store)
    test.assertEqual(rc, 0, err)
    lines = out.splitlines()
    test.assertEqual(len(lines), len(set(lines)), "an event is read twice")
    slots, sizes = {}, {}
    for line in lines:
        labels = json.loads(line)["labels"]
        b, s, size = int(labels["batch"]), int(labels["slot"]), int(labels["size"])
        test.assertNotIn((b, s), slots, "batch %d slot %d stored twice" % (b, s))
        slots[(b, s)] = True
        test.assertEqual(sizes.setdefault(b, size), size)
    counts = {}
    for b, _ in slots:
        counts[b] = counts.get(b, 0) + 1
    for b, size in sizes.items():
        test.assertEqual(counts[b], size,
                         "batch %d holds %d of its %d events" % (b, counts[b], size))
    return sizes


def assert_selected_batch(test, store, batch):
    """A read with --where batch=B right after a crash (label bitmaps of
    the newest chunks not put yet) returns the whole acked batch B, and
    nothing else."""
    rc, out, err = run(TIDEMARK, "read", store, "--where", "batch=%d" % batch)
    test.assertEqual(rc, 0, err)
    lines = out.splitlines()
    test.assertTrue(lines, "batch %d: no event selected" % batch)
    sizes = set()
    for line in lines:
        labels = json.loads(line)["labels"]
        test.assertEqual(int(labels["batch"]), batch)
        sizes.add(int(labels["size"]))
    test.assertEqual(len(sizes), 1)
    test.assertEqual(len(lines), sizes.pop(), "batch %d read in part" % batch)


def assert_verify(test, store):
    rc, out, err = run(TIDEMARK, "verify", store)
    test.assertEqual(rc, 0, (out + err).decode("utf-8", "replace"))


def assert_locked(test, store, holder_pid, seed):
    """A second writer, the CLI's and tdm_loadgen's, exits 75 naming the pid."""
    line = b'{"ts":1763805600000000000,"id":1,"labels":{"x":"y"},"payload":""}\n'
    rc, _, err = run(TIDEMARK, "append", store, "--durability", "batch", stdin=line)
    msg = err.decode("utf-8", "replace")
    test.assertEqual(rc, EXIT_LOCKED, msg)
    test.assertIn("pid %d" % holder_pid, msg)
    rc, _, err = run(LOADGEN, "write", store, "--seed", seed, "--batches", 1)
    msg = err.decode("utf-8", "replace")
    test.assertEqual(rc, EXIT_LOCKED, msg)
    test.assertIn("pid %d" % holder_pid, msg)


class StoreTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tidemark-proc-")
        self.store = os.path.join(self._tmp.name, "store")
        self.ack_log = os.path.join(self._tmp.name, "acks")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                kill(p)
        self._tmp.cleanup()


class KillTest(StoreTest):
    def test_sigkill_restart(self):
        """KILLS SIGKILLs at random moments: nothing acknowledged is lost,
        nothing is stored twice, every batch is whole, verify passes."""
        self.kill_series(KILLS, BATCH_SIZE, replay=50, seed=SEED)

    def test_sigkill_any_durability(self):
        """DESIGN: a killed process loses nothing acknowledged in any mode
        (the data is in the page cache). Each run picks none or interval."""
        self.kill_series(KILLS // 2, BATCH_SIZE, replay=50, seed=SEED + 2000,
                         durabilities=("none", "interval"))

    def test_sigkill_big_batches(self):
        """Batches of 10000 events (over 1 MiB: the writer writes them in
        several pieces) killed mid-write never show up in part."""
        # The last run replays only the last 3 batches: re-appending old
        # batches this dense is slow (about 1 ms per duplicate event).
        # For the same reason no run replays from batch 0.
        self.kill_series(BIG_KILLS, 10000, replay=2, seed=SEED + 1000,
                         read_every_kill=True, max_delay=1.0, final_replay=3,
                         full_replays=0)

    def kill_series(self, kills, batch_size, replay, seed, read_every_kill=False,
                    max_delay=0.3, final_replay=None, durabilities=("batch",),
                    full_replays=0.15):
        rng = random.Random(seed)
        frontier = -1  # the largest batch acked so far, over all runs
        modes = {"open": 0, "start": 0, "frontier": 0}
        locked_checks = mid_reads = 0
        for _ in range(kills):
            offset = os.path.getsize(self.ack_log) if os.path.exists(self.ack_log) else 0
            # Mostly replay the last few batches (they come back as
            # duplicates); now and then everything from batch 0.
            replay_args = [] if rng.random() < full_replays else ["--replay", replay]
            # Half the kills count from the start (a fifth within 15 ms, to
            # hit the open and its recovery; then replayed duplicates), half
            # from the moment the run reaches new batches.
            x = rng.random()
            mode = "open" if x < 0.2 else "start" if x < 0.5 else "frontier"
            delay = rng.uniform(0, 0.015 if mode == "open" else max_delay)
            check_lock = rng.random() < 0.2
            read_after = read_every_kill or rng.random() < 0.3
            durability = rng.choice(durabilities)
            p = spawn_writer(self.store, seed, "--batches", FOREVER, *replay_args,
                             "--durability", durability,
                             ack_log=self.ack_log, batch_size=batch_size)
            self.procs.append(p)
            if mode == "frontier" or check_lock:
                wait_for_acks(self.ack_log, offset, 1, p)
                if check_lock:
                    assert_locked(self, self.store, p.pid, seed)
                    locked_checks += 1
                if mode == "frontier":
                    start = replay_start(self.ack_log, offset, replay_args)
                    wait_for_acks(self.ack_log, offset,
                                  max(1, frontier - start + 1), p)
            modes[mode] += 1
            time.sleep(delay)
            if p.poll() is not None:
                self.fail("writer ended before its kill (exit %s): %s" % (
                    p.returncode, p.stderr.read().decode("utf-8", "replace")))
            err = kill(p)
            self.assertEqual(p.returncode, -signal.SIGKILL, err)
            runs = read_acks(self.ack_log, offset)
            if runs and runs[0]["acks"]:
                frontier = max(frontier, max(b for b, _, _ in runs[0]["acks"]))
            if read_after:
                # A reader right after the crash (it runs the recovery itself,
                # no writer being there): every batch acked so far is there,
                # whole and once, and no other batch is there in part.
                rc, out, err = run(LOADGEN, "read", self.store, "--seed", seed,
                                   "--batch-size", batch_size, "--loops", 1,
                                   "--full-every", 1, "--expect-batches", frontier + 1)
                self.assertEqual(rc, 0, (out + err).decode("utf-8", "replace"))
                if frontier >= 0:
                    assert_selected_batch(self, self.store, rng.randint(0, frontier))
                mid_reads += 1
        # The last run goes from batch 0 (or final_replay batches back) to a
        # few batches past the frontier and ends normally.
        total = frontier + (3 if batch_size > 1000 else 10)
        final_args = ["--replay", final_replay] if final_replay else []
        first = replay_start(self.ack_log, os.path.getsize(self.ack_log), final_args)
        p = spawn_writer(self.store, seed, "--batches", total, *final_args,
                         "--durability", durabilities[-1],
                         ack_log=self.ack_log, batch_size=batch_size)
        self.procs.append(p)
        _, err = p.communicate(timeout=1800)
        self.assertEqual(p.returncode, 0, err.decode("utf-8", "replace"))

        runs = read_acks(self.ack_log)
        # A kill can land before the writer even wrote its start line.
        self.assertLessEqual(len(runs), kills + 1)
        self.assertTrue(runs[-1]["done"])
        in_open = sum(not r["opened"] for r in runs)
        before_start = kills + 1 - len(runs)
        self.assertEqual([b for b, _, _ in runs[-1]["acks"]], list(range(first, total)))
        sizes = read_store(self, self.store)
        self.check_acks(runs, sizes, batch_size)
        self.assertEqual(sorted(sizes), list(range(total)),
                         "the store does not hold exactly batches 0..%d" % (total - 1))
        assert_verify(self, self.store)
        rc, out, err = run(TIDEMARK, "stat", self.store)
        self.assertEqual(rc, 0, err)
        st = json.loads(out)
        self.assertEqual(st["events"], sum(sizes.values()))
        self.assertGreater(st["late_events"], 0)
        self.assertGreater(st["shards"], 1)
        print("\nkills: %d (%d within 15 ms, %d from start, %d from new batches), "
              "durability %s, "
              "batch size %d, batches %d, events %d, reads after a kill %d, "
              "second-writer checks %d; kills before the open %d, during it %d"
              % (kills, modes["open"], modes["start"], modes["frontier"],
                 "/".join(durabilities),
                 batch_size, total, st["events"], mid_reads, locked_checks,
                 before_start, in_open))

    def check_acks(self, runs, sizes, batch_size):
        """Across runs: once a batch is acked, every later append of it finds
        only duplicates; a batch past what any earlier run reached is stored
        whole by its first ack; appended + duplicates is the batch size."""
        acked, reached = set(), -1
        for r in runs:
            for b, appended, dups in r["acks"]:
                self.assertEqual(appended + dups, batch_size)
                if b in acked:
                    self.assertEqual(appended, 0,
                                     "batch %d acked before, %d stored again" % (b, appended))
                elif b > reached + 1:
                    # No earlier run got to it: all of it is new.
                    self.assertEqual(appended, sizes[b], "batch %d" % b)
                acked.add(b)
            if r["acks"]:
                reached = max(reached, max(b for b, _, _ in r["acks"]))

    def test_second_writer_gets_locked(self):
        """While a writer runs, another one exits 75 naming its pid; once the
        writer is killed, the lock is free again."""
        p = spawn_writer(self.store, SEED, "--batches", FOREVER, "--pause-us", 1000,
                         ack_log=self.ack_log)
        self.procs.append(p)
        wait_for_acks(self.ack_log, 0, 3, p)
        assert_locked(self, self.store, p.pid, SEED)
        kill(p)
        line = b'{"ts":1763805600000000000,"id":1,"labels":{"x":"y"},"payload":""}\n'
        rc, _, err = run(TIDEMARK, "append", self.store, stdin=line)
        self.assertEqual(rc, 0, err)
        assert_verify(self, self.store)

    # Readers once took the writer lock for every open (to repair), so a
    # writer starting then was refused with exit 75 and a dead writer's pid.
    def test_reader_does_not_lock_out_writer(self):
        """A writer starting while readers open the store (and no writer
        runs) is never refused: readers are not writers."""
        rc, _, err = run(LOADGEN, "write", self.store, "--seed", SEED,
                         "--batches", 30)
        self.assertEqual(rc, 0, err)
        reader = subprocess.Popen(
            [LOADGEN, "read", self.store, "--seed", str(SEED), "--loops",
             str(FOREVER), "--full-every", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(reader)
        refused = []
        for i in range(100):
            # Years before the reader's ranges: it checks all it reads.
            line = b'{"ts":%d,"id":1,"labels":{"x":"y"},"payload":""}\n' % (
                1_000_000_000_000_000_000 + i)
            rc, _, err = run(TIDEMARK, "append", self.store, stdin=line)
            if rc == EXIT_LOCKED:
                refused.append(err.decode("utf-8", "replace").strip())
            else:
                self.assertEqual(rc, 0, err)
        self.assertIsNone(reader.poll(), reader.stderr.read() if reader.poll() else "")
        kill(reader)
        self.assertEqual(refused, [], "%d of 100 writers refused with no writer "
                         "running; first: %s" % (len(refused), refused[:1]))


def replay_start(ack_log, offset, replay):
    """The batch a writer started with --replay begins with (as tdm_loadgen
    computes it from the acks before `offset`)."""
    if not replay:
        return 0
    with open(ack_log, "rb") as f:
        data = f.read(offset).decode()
    last = -1
    for line in data.splitlines():
        m = ACK_LINE.fullmatch(line)
        if m and m.group(3):
            last = max(last, int(m.group(3)))
    return max(0, last + 1 - replay[1])


class ConcurrentReaderTest(StoreTest):
    def run_readers(self, reopen, reads_each, writer_args):
        """One reader per entry of `reopen` (its --reopen-every: 1 opens the
        store for every read, 0 once, then an iterator per read)."""
        n_readers = len(reopen)
        seed = SEED + n_readers
        w = spawn_writer(self.store, seed, "--batches", FOREVER, *writer_args,
                         ack_log=self.ack_log)
        self.procs.append(w)
        # Enough batches that a read's window is full.
        wait_for_acks(self.ack_log, 0, 40, w)
        readers = [subprocess.Popen(
            [LOADGEN, "read", self.store, "--seed", str(seed), "--batch-size",
             str(BATCH_SIZE), "--loops", str(reads_each), "--window-s", "20",
             "--full-every", str(max(1, reads_each // 10)), "--reopen-every", str(re)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for re in reopen]
        self.procs.extend(readers)
        reads = 0
        for r in readers:
            out, err = r.communicate(timeout=3000)
            self.assertEqual(r.returncode, 0, err.decode("utf-8", "replace"))
            fields = out.decode().split()
            self.assertEqual(fields[0:2], ["reads", str(reads_each)], out)
            reads += int(fields[1])
        if w.poll() is not None:
            self.fail("the writer stopped while readers ran (exit %s): %s" % (
                w.returncode, w.stderr.read().decode("utf-8", "replace")))
        kill(w)
        runs = read_acks(self.ack_log)
        batches = len(runs[0]["acks"])
        # Whatever the writer acked is there, whole.
        sizes = read_store(self, self.store)
        self.assertTrue({b for b, _, _ in runs[0]["acks"]} <= set(sizes))
        assert_verify(self, self.store)
        print("\nreaders %d, reads %d, writer batches acked %d"
              % (n_readers, reads, batches))

    def test_one_reader(self):
        """READS reads by one reader, opening the store for each, while a
        batch-durability writer appends."""
        self.run_readers([1], READS, ["--pause-us", 2000])

    def test_two_readers(self):
        """Two readers at once, READS/2 reads each (one opens the store for
        each read, one opens it once), while an interval-durability writer
        appends."""
        self.run_readers([1, 0], READS // 2,
                         ["--durability", "interval", "--pause-us", 5000])


if __name__ == "__main__":
    unittest.main(verbosity=2)
