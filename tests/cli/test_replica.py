#!/usr/bin/env python3
"""End-to-end tests of replica repair: `tidemark diff`, `repair`, `sync` and
`serve --stdio` (issue 4, docs/PROTOCOL.md).

Every test runs the real binary (path in $TIDEMARK) as a subprocess on real
stores in temporary directories: locally, through a plain pipe
(--remote-command), with hand-made protocol frames, and through a real
OpenSSH server on 127.0.0.1 started by the test (skipped, with the reason,
only where sshd cannot run). Python standard library only.

The random test's seed is printed on failure; TIDEMARK_TEST_SEED replays it.
"""

import base64
import json
import os
import random
import shlex
import shutil
import socket
import stat
import struct
import subprocess
import tempfile
import time
import unittest

TIDEMARK = os.environ.get("TIDEMARK", "tidemark")

SEC = 1_000_000_000
MIN = 60 * SEC
HOUR = 3600 * SEC
# 2025-11-22T10:00:00Z, the start of a 1 h shard.
T0 = 1763805600 * SEC
# The width of a digest leaf (bucket) of a 1 h shard: 16^4 leaves per shard.
LEAF = -(-HOUR // 65536)

SUMMARY_KEYS = ["only_in_a", "only_in_b", "copied_to_a", "copied_to_b",
                "shards_compared", "nodes_compared", "buckets_compared",
                "buckets_differing", "bytes_exchanged"]


def run(*args, stdin=b"", timeout=120, env=None):
    """Runs tidemark with args; returns (exit code, stdout, stderr) as bytes."""
    p = subprocess.run([TIDEMARK, *map(str, args)], input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def pipe_command():
    """A --remote-command that runs `tidemark serve --stdio PATH` right here."""
    return shlex.quote(TIDEMARK) + ' serve --stdio "$2"'


def ev(ts, id, labels=None, payload=b""):
    """One NDJSON input line (str, no newline); payload is bytes."""
    d = {"ts": ts, "id": id}
    if labels:
        d["labels"] = labels
    try:
        d["payload"] = payload.decode("utf-8")
    except UnicodeDecodeError:
        d["payload_b64"] = base64.b64encode(payload).decode()
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


def jstr(s):
    return json.dumps(s, ensure_ascii=False)


def out_line(ts, id, labels=None, payload=b""):
    """The exact line `read` prints for an event (bytes, no newline)."""
    labels = labels or {}
    lab = ",".join(jstr(k) + ":" + jstr(v) for k, v in sorted(
        labels.items(), key=lambda kv: kv[0].encode()))
    try:
        body = '"payload":' + jstr(payload.decode("utf-8"))
    except UnicodeDecodeError:
        body = '"payload_b64":"' + base64.b64encode(payload).decode() + '"'
    return ('{"ts":%d,"id":%d,"labels":{%s},%s}' % (ts, id, lab, body)).encode()


class E:
    """An event: identity is (ts, id, labels, payload), SPEC §2."""

    def __init__(self, ts, id, labels=None, payload=b""):
        self.ts, self.id = ts, id
        self.labels = dict(labels or {})
        self.payload = payload if isinstance(payload, bytes) else payload.encode()

    def key(self):
        return (self.ts, self.id, tuple(sorted(self.labels.items())), self.payload)

    def __eq__(self, other):
        return self.key() == other.key()

    def __hash__(self):
        return hash(self.key())

    def __repr__(self):
        return "E(%d, %d, %r, %r)" % (self.ts - T0, self.id, self.labels,
                                      self.payload[:20])

    def line(self):
        return ev(self.ts, self.id, self.labels, self.payload)

    def out(self):
        return out_line(self.ts, self.id, self.labels, self.payload)


def local_path(spec):
    """The directory behind a replica spec (every remote here is local)."""
    if not spec.startswith("ssh:"):
        return spec
    if spec[4] == "[":
        return spec.split("]:", 1)[1]
    return spec.split(":", 2)[2]


def lines_of(events):
    return "".join(e.line() + "\n" for e in events).encode("utf-8")


class ReplicaTest(unittest.TestCase):
    """Two fresh stores, A and B, per test, and helpers."""

    init_args = ()

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tidemark-replica-")
        self.tmp = self._tmp.name
        self.a = self.new_store("a", *self.init_args)
        self.b = self.new_store("b", *self.init_args)

    def tearDown(self):
        self._tmp.cleanup()

    def new_store(self, name, *args):
        path = os.path.join(self.tmp, name)
        rc, _, err = run("init", path, *args)
        self.assertEqual(rc, 0, err)
        return path

    def append(self, store, events, late=None):
        """Appends events (E list) in one batch; checks the late count."""
        rc, out, err = run("append", store, stdin=lines_of(events))
        self.assertEqual(rc, 0, err)
        summary = json.loads(err.decode().strip().splitlines()[-1])
        if late is not None:
            self.assertEqual(summary["late"], late, summary)
        return summary

    def read(self, store, *args):
        rc, out, err = run("read", local_path(store), *args)
        self.assertEqual(rc, 0, err)
        return out

    def stat(self, store):
        rc, out, err = run("stat", local_path(store))
        self.assertEqual(rc, 0, err)
        return json.loads(out)

    def assert_verified(self, *stores):
        for s in stores:
            rc, out, err = run("verify", local_path(s))
            self.assertEqual((rc, json.loads(out)), (0, {"ok": True, "problems": 0}),
                             (s, err))

    def replica(self, cmd, a, b, *args, expect_rc=None, **kw):
        """Runs diff/repair/sync; returns the parsed summary line."""
        rc, out, err = run(cmd, a, b, *args, **kw)
        if expect_rc is not None:
            self.assertEqual(rc, expect_rc, (cmd, err))
        self.assertIn(rc, (0, 1), (cmd, err))
        self.assertEqual(out.count(b"\n"), 1, out)
        st = json.loads(out)
        self.assertEqual(list(st), SUMMARY_KEYS)
        return st

    def check_diff(self, a, b, only_a, only_b, *args, **kw):
        """diff A B: the counts, exit 1 when they are not both 0 (else 0),
        nothing copied, and neither store changed."""
        before = (self.read(a), self.read(b))
        st = self.replica("diff", a, b, *args,
                          expect_rc=1 if only_a or only_b else 0, **kw)
        self.assertEqual((st["only_in_a"], st["only_in_b"]), (only_a, only_b), st)
        self.assertEqual((st["copied_to_a"], st["copied_to_b"]), (0, 0), st)
        if only_a or only_b:
            self.assertGreater(st["buckets_differing"], 0, st)
        else:
            self.assertEqual(st["buckets_differing"], 0, st)
        self.assertEqual((self.read(a), self.read(b)), before)
        return st

    def sync(self, a, b, only_a, only_b, *args, **kw):
        """sync A B: counts found and copied both ways."""
        st = self.replica("sync", a, b, *args, expect_rc=0, **kw)
        self.assertEqual((st["only_in_a"], st["only_in_b"]), (only_a, only_b), st)
        self.assertEqual((st["copied_to_b"], st["copied_to_a"]), (only_a, only_b), st)
        return st

    def assert_converged(self, a, b, expected=None, *args, **kw):
        """Byte-identical reads (equal to `expected` events when given),
        diff equal, a second sync moves nothing, verify clean."""
        ra, rb = self.read(a), self.read(b)
        self.assertEqual(ra, rb)
        if expected is not None:
            want = sorted(e.out() for e in set(expected))
            self.assertEqual(sorted(ra.splitlines()), want)
            self.assertEqual(len(ra.splitlines()), len(want))
        self.check_diff(a, b, 0, 0, *args, **kw)
        st = self.sync(a, b, 0, 0, *args, **kw)
        self.assertEqual(st["buckets_differing"], 0)
        self.assertEqual((self.read(a), self.read(b)), (ra, rb))
        self.assert_verified(a, b)
        return ra


def base_events(n=20, start=T0, step=7 * SEC, labels=None):
    return [E(start + i * step, i, labels or {"host": "web-%d" % (i % 3)},
              b"event %d" % i) for i in range(n)]


class DivergenceTest(ReplicaTest):
    def test_events_only_on_one_side_both_directions(self):
        base = base_events(30)
        only_a = [E(T0 + 5 * MIN + i * SEC, 100 + i, {"k": "a"}, b"A%d" % i)
                  for i in range(3)]
        only_b = [E(T0 + 20 * MIN, 200, {"k": "b"}, b"B"),
                  E(T0 + 90 * MIN, 201, {"k": "b"}, b"B2")]  # another shard
        self.append(self.a, base + only_a)
        self.append(self.b, base[:10] + only_b + base[10:])
        self.check_diff(self.a, self.b, 3, 2)
        self.check_diff(self.b, self.a, 2, 3)
        self.sync(self.a, self.b, 3, 2)
        self.assert_converged(self.a, self.b, base + only_a + only_b)

    def test_on_time_in_one_replica_late_in_the_other(self):
        early = E(T0 + 5 * MIN, 1, {"h": "x"}, b"early")
        later = [E(T0 + 30 * MIN + i * SEC, 10 + i, {"h": "x"}, b"later")
                 for i in range(5)]
        self.append(self.a, [early] + later, late=0)
        # B sees `early` after its shard's watermark moved 25 min past it.
        self.append(self.b, later, late=0)
        self.append(self.b, [early], late=1)
        self.assertEqual(self.stat(self.a)["late_events"], 0)
        self.assertEqual(self.stat(self.b)["late_events"], 1)
        self.assertEqual(self.stat(self.a)["events"], self.stat(self.b)["events"])
        st = self.check_diff(self.a, self.b, 0, 0)
        self.assertEqual(st["shards_compared"], 1)
        st = self.sync(self.a, self.b, 0, 0)
        self.assertEqual(self.stat(self.b)["late_events"], 1)
        self.assert_converged(self.a, self.b, [early] + later)

    def test_same_ts_and_id_with_different_payloads_or_labels(self):
        common = base_events(5)
        ts = T0 + 10 * MIN
        a_side = [E(ts, 7, {"h": "x"}, b"alpha"), E(ts, 8, {"h": "x"}, b"same")]
        b_side = [E(ts, 7, {"h": "x"}, b"beta"), E(ts, 8, {"h": "y"}, b"same")]
        self.append(self.a, common + a_side)
        self.append(self.b, common + b_side)
        self.check_diff(self.a, self.b, 2, 2)
        self.sync(self.a, self.b, 2, 2)
        out = self.assert_converged(self.a, self.b, common + a_side + b_side)
        for p in (b"alpha", b"beta"):
            self.assertEqual(out.count(b'"payload":"%s"' % p), 1)

    def test_bucket_counts_off_by_one_but_sets_not_nested(self):
        # One leaf: A {x, y, z}, B {x, w}: A has one event more, but the
        # difference of the sums is no single event of A.
        ts = T0 + 17 * MIN
        x, y, z, w = (E(ts + i, i, {}, b"%d" % i) for i in range(4))
        self.append(self.a, [x, y, z])
        self.append(self.b, [x, w])
        st = self.check_diff(self.a, self.b, 2, 1)
        self.assertEqual(st["buckets_differing"], 1)
        self.sync(self.a, self.b, 2, 1)
        self.assert_converged(self.a, self.b, [x, y, z, w])

    def test_shard_missing_entirely_on_one_side(self):
        h0 = base_events(10, T0)
        h1 = base_events(12, T0 + HOUR)
        h2 = base_events(8, T0 + 2 * HOUR)
        h5 = base_events(4, T0 + 5 * HOUR)
        self.append(self.a, h0 + h1 + h2)
        self.append(self.b, h0 + h2 + h5)
        st = self.check_diff(self.a, self.b, 12, 4)
        self.assertEqual(st["shards_compared"], 4)
        self.sync(self.a, self.b, 12, 4)
        self.assertEqual(self.stat(self.b)["shards"], 4)
        self.assert_converged(self.a, self.b, h0 + h1 + h2 + h5)

    def test_differences_only_in_recon_files(self):
        # A per-shard watermark makes a shard with recon events and an empty
        # main file impossible through appends; the nearest case is a shard
        # whose events beyond one on-time event are all recon (late) ones.
        s = T0 + 3 * HOUR
        anchor = E(s + 50 * MIN, 1, {"h": "m"}, b"main")
        late = [E(s + i * MIN, 10 + i, {"h": "r"}, b"recon %d" % i)
                for i in range(1, 7)]
        self.append(self.a, [anchor], late=0)
        self.append(self.a, late[:4], late=4)
        self.append(self.b, [anchor], late=0)
        self.append(self.b, late[3:], late=3)
        self.check_diff(self.a, self.b, 3, 2)
        # A's shard beyond the anchor, only recon events, goes to C whole.
        c = self.new_store("c")
        self.append(c, [anchor])
        st = self.replica("repair", self.a, c, expect_rc=0)
        self.assertEqual((st["only_in_a"], st["copied_to_b"]), (4, 4))
        self.sync(self.a, self.b, 3, 2)
        self.assertEqual(self.stat(self.a)["late_events"], 6)
        self.assertEqual(self.stat(self.b)["late_events"], 6)
        self.assert_converged(self.a, self.b, [anchor] + late)
        self.check_diff(self.a, c, 2, 0)

    def test_shard_holding_only_recon_events(self):
        # Appends never make one (a per-shard watermark), but a replica that
        # lost a shard's main file has one after recovery: its late events
        # stay in the recon file, its main file is empty. Sync brings the
        # main events back from the other replica.
        s = T0 + 4 * HOUR
        main = [E(s + 40 * MIN + i * SEC, 1 + i, {"h": "m"}, b"main %d" % i)
                for i in range(5)]
        late = [E(s + i * MIN, 20 + i, {"h": "r"}, b"recon %d" % i) for i in range(1, 6)]
        for store in (self.a, self.b):
            self.append(store, main, late=0)
            self.append(store, late, late=5)
        os.remove(os.path.join(self.a, "shards", "%020d.main" % (s // HOUR)))
        st = self.stat(self.a)  # the reopen recovers: recon events only
        self.assertEqual((st["events"], st["late_events"]), (5, 5), st)
        self.assertEqual(self.read(self.a).count(b"\n"), 5)
        self.assert_verified(self.a)
        self.check_diff(self.a, self.b, 0, 5)
        self.sync(self.a, self.b, 0, 5)
        self.assert_converged(self.a, self.b, main + late)

    def test_empty_stores(self):
        st = self.check_diff(self.a, self.b, 0, 0)
        self.assertEqual((st["shards_compared"], st["buckets_compared"]), (0, 0))
        self.sync(self.a, self.b, 0, 0)
        self.assert_converged(self.a, self.b, [])
        self.assertEqual(self.read(self.a), b"")
        # One empty: everything goes one way.
        events = base_events(15) + base_events(5, T0 + 7 * HOUR)
        self.append(self.a, events)
        self.check_diff(self.a, self.b, 20, 0)
        self.check_diff(self.b, self.a, 0, 20)
        c = self.new_store("c")
        st = self.replica("repair", self.b, self.a, expect_rc=0)  # empty SRC
        self.assertEqual((st["copied_to_a"], st["copied_to_b"]), (0, 0))
        self.sync(self.b, self.a, 0, 20)
        self.assert_converged(self.a, self.b, events)
        st = self.replica("repair", self.a, c, expect_rc=0)
        self.assertEqual(st["copied_to_b"], 20)
        self.assert_converged(self.a, c, events)

    def test_different_shard_durations_are_refused(self):
        c = self.new_store("c", "--shard-duration", "15m")
        self.append(self.a, base_events(5))
        self.append(c, base_events(3))
        before = (self.read(self.a), self.read(c))
        for cmd in ("diff", "repair", "sync"):
            for x, y in ((self.a, c), (c, self.a),
                         (self.a, "ssh:x:" + c)):
                rc, out, err = run(cmd, x, y, "--remote-command", pipe_command())
                self.assertEqual(rc, 2, (cmd, x, y, err))
                self.assertEqual(out, b"")
                err = err.decode()
                self.assertTrue(err.startswith("tidemark: "), err)
                self.assertIn("shard duration", err)
                self.assertIn(c, err)
                self.assertIn("900000000000", err)
        self.assertEqual((self.read(self.a), self.read(c)), before)

    def test_different_grace_is_fine(self):
        c = self.new_store("c", "--grace", "5s")
        events = base_events(10, T0, 30 * SEC)
        self.append(self.a, events)
        self.append(c, events[5:])
        self.append(c, events[:5], late=5)
        self.check_diff(self.a, c, 0, 0)
        self.append(self.a, [E(T0 + 50 * MIN, 99)])
        self.sync(self.a, c, 1, 0)
        self.assert_converged(self.a, c, events + [E(T0 + 50 * MIN, 99)])

    def test_from_to_restricts_the_comparison(self):
        frm, to = T0 + HOUR + 13 * LEAF + 5, T0 + 3 * HOUR - 7 * LEAF - 3
        common = base_events(40, T0, 7 * MIN)
        inside_a = [E(frm, 1, {}, b"first ns"), E(T0 + 2 * HOUR, 2),
                    E(to - 1, 3, {}, b"last ns")]
        inside_b = [E(frm + 1, 4), E(T0 + 150 * MIN, 5)]
        outside_a = [E(frm - 1, 6), E(T0, 7), E(T0 + 4 * HOUR, 8)]
        outside_b = [E(to, 9, {}, b"at to"), E(T0 + 30 * MIN, 10)]
        self.append(self.a, common + inside_a + outside_a)
        self.append(self.b, common + inside_b + outside_b)
        rng = ("--from", str(frm), "--to", str(to))
        self.check_diff(self.a, self.b, 3, 2, *rng)
        self.check_diff(self.a, self.b, 6, 4)
        self.sync(self.a, self.b, 3, 2, *rng)
        self.assertEqual(self.read(self.a, *rng), self.read(self.b, *rng))
        self.check_diff(self.a, self.b, 0, 0, *rng)
        self.sync(self.a, self.b, 0, 0, *rng)
        # Outside the range nothing moved.
        self.check_diff(self.a, self.b, 3, 2)
        self.assertNotIn(b'"ts":%d,' % (to), self.read(self.a))
        self.assertNotIn(b'"ts":%d,' % (frm - 1), self.read(self.b))
        # RFC 3339 bounds name the same range (here whole hours).
        self.check_diff(self.a, self.b, 1, 1, "--from", "2025-11-22T11:00:00Z",
                        "--to", "2025-11-22T13:00:00Z")
        self.sync(self.a, self.b, 3, 2)
        self.assert_converged(self.a, self.b,
                              common + inside_a + inside_b + outside_a + outside_b)

    def test_repair_is_one_way(self):
        common = base_events(20)
        only_a = [E(T0 + 3 * MIN + i, 50 + i) for i in range(4)] + \
                 [E(T0 + 2 * HOUR, 60)]
        only_b = [E(T0 + 9 * MIN, 70), E(T0 + 9 * MIN + 1, 71), E(T0 + 5 * HOUR, 72)]
        self.append(self.a, common + only_a)
        self.append(self.b, common + only_b)
        a_before, a_stat = self.read(self.a), self.stat(self.a)
        st = self.replica("repair", self.a, self.b, expect_rc=0)
        self.assertEqual((st["only_in_a"], st["only_in_b"]), (5, 3), st)
        self.assertEqual((st["copied_to_b"], st["copied_to_a"]), (5, 0), st)
        self.assertEqual(self.read(self.a), a_before)
        self.assertEqual(self.stat(self.a)["last_seq"], a_stat["last_seq"])
        want = sorted(e.out() for e in common + only_a + only_b)
        self.assertEqual(sorted(self.read(self.b).splitlines()), want)
        st = self.replica("repair", self.a, self.b, expect_rc=0)
        self.assertEqual((st["copied_to_b"], st["copied_to_a"]), (0, 0), st)
        self.check_diff(self.a, self.b, 0, 3)
        st = self.replica("repair", self.b, self.a, expect_rc=0)
        self.assertEqual((st["only_in_a"], st["copied_to_b"]), (3, 3), st)
        self.assert_converged(self.a, self.b, common + only_a + only_b)

    def test_duplicates_are_never_stored_twice(self):
        events = base_events(30)
        self.append(self.a, events + events[:10])
        self.append(self.a, events[5:15])
        self.append(self.b, events[20:] + events[20:])
        self.check_diff(self.a, self.b, 20, 0)
        self.sync(self.a, self.b, 20, 0)
        for _ in range(2):
            self.sync(self.b, self.a, 0, 0)
            self.replica("repair", self.a, self.b, expect_rc=0)
        self.append(self.b, events[:3])  # a retry after the repair
        for s in (self.a, self.b):
            self.assertEqual(self.stat(s)["events"], 30)
        out = self.assert_converged(self.a, self.b, events)
        self.assertEqual(len(out.splitlines()), len(set(out.splitlines())))

    def test_last_representable_shard(self):
        # ts goes up to INT64_MAX - 1; the last shard's end is past INT64_MAX.
        top = (1 << 63) - 2
        last_shard = top // HOUR * HOUR
        events = [E(top, 1), E(top - 5 * SEC, 2), E(last_shard, 3), E(T0, 4)]
        self.append(self.a, events)
        self.append(self.b, [events[0]])
        self.check_diff(self.a, self.b, 3, 0)
        self.sync(self.a, self.b, 3, 0)
        self.assert_converged(self.a, self.b, events)


class RandomTest(ReplicaTest):
    """Two replicas of one random event set, with random losses,
    duplicates and arrival orders (late ones included)."""

    def universe(self, rng):
        events = set()
        hours = [0, 1, 2, 5]
        for _ in range(500):
            h = rng.choice(hours)
            start = T0 + h * HOUR
            kind = rng.random()
            if kind < 0.5:
                ts = start + rng.randrange(HOUR)
            elif kind < 0.75:  # bursts: many events per bucket
                ts = start + rng.randrange(8) * 7 * MIN + rng.randrange(3 * LEAF)
            else:  # edges of shards and buckets
                ts = start + rng.choice([0, HOUR - 1, LEAF, LEAF - 1,
                                         rng.randrange(65536) * LEAF])
            labels = {}
            for k, vals in (("host", ["web-1", "web-2", "db"]),
                            ("level", ["info", "error"]), ("zone", ["é", "∆"])):
                if rng.random() < 0.5:
                    labels[k] = rng.choice(vals)
            p = rng.random()
            if p < 0.2:
                payload = b""
            elif p < 0.5:
                payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
            elif p < 0.6:
                payload = b'quote " backslash \\ newline \n tab \t'
            else:
                payload = b"GET /%d" % rng.randrange(20)
            events.add(E(ts, rng.randrange(4), labels, payload))
        return sorted(events, key=lambda e: e.key())

    def feed(self, rng, store, events):
        """Appends events in a random order (mostly by time, some jostled
        inside grace, some much later) in several batches, with retries."""
        order = sorted(events, key=lambda e: e.ts + rng.randrange(-30 * SEC, 30 * SEC))
        late = [e for e in order if rng.random() < 0.08]
        order = [e for e in order if e not in set(late)] + late
        retries = [e for e in order if rng.random() < 0.1]
        order += retries
        cuts = sorted(rng.sample(range(1, len(order)), 3)) if len(order) > 4 else []
        for lo, hi in zip([0] + cuts, cuts + [len(order)]):
            self.append(store, order[lo:hi])

    def one_round(self, seed):
        rng = random.Random(seed)
        a = self.new_store("a%d" % seed)
        b = self.new_store("b%d" % seed)
        events = self.universe(rng)
        in_a = [e for e in events if rng.random() < 0.85]
        in_b = [e for e in events if rng.random() < 0.85]
        self.feed(rng, a, in_a)
        self.feed(rng, b, in_b)
        only_a, only_b = len(set(in_a) - set(in_b)), len(set(in_b) - set(in_a))
        self.assertGreater(only_a + only_b, 0)
        self.check_diff(a, b, only_a, only_b)
        self.check_diff(b, a, only_b, only_a)
        # Half the time the remote way, through a pipe.
        if seed % 2:
            self.sync(a, "ssh:here:" + b, only_a, only_b,
                      "--remote-command", pipe_command())
        else:
            self.sync(a, b, only_a, only_b)
        self.assert_converged(a, b, set(in_a) | set(in_b))
        lines = self.read(a).splitlines()
        keys = [(json.loads(l)["ts"], json.loads(l)["id"]) for l in lines]
        self.assertEqual(keys, sorted(keys))

    def test_random_replicas_converge(self):
        seeds = [20251122, 7]
        if os.environ.get("TIDEMARK_TEST_SEED"):
            seeds = [int(os.environ["TIDEMARK_TEST_SEED"])]
        else:
            seeds.append(random.randrange(1 << 30))
        for seed in seeds:
            with self.subTest(seed=seed):
                self.one_round(seed)


class PipeRemoteTest(ReplicaTest):
    """ssh:HOST:PATH sides through --remote-command, without ssh."""

    def diverge(self):
        common = base_events(25)
        only_a = [E(T0 + 4 * MIN, 300), E(T0 + 4 * HOUR, 301, {"x": "y"}, b"\xff\xfe")]
        only_b = [E(T0 + 11 * MIN + i, 400 + i) for i in range(3)]
        self.append(self.a, common + only_a)
        self.append(self.b, common + only_b)
        return common + only_a + only_b

    def test_one_side_remote(self):
        events = self.diverge()
        rc = ("--remote-command", pipe_command())
        local = self.check_diff(self.a, self.b, 2, 3)
        remote = self.check_diff(self.a, "ssh:x:" + self.b, 2, 3, *rc)
        self.assertEqual(remote["buckets_compared"], local["buckets_compared"])
        self.assertEqual(remote["bytes_exchanged"], local["bytes_exchanged"])
        self.check_diff("ssh:x:" + self.a, self.b, 2, 3, *rc)
        self.sync(self.a, "ssh:x:" + self.b, 2, 3, *rc)
        self.assert_converged(self.a, self.b, events)
        self.assert_converged(self.a, "ssh:x:" + self.b, events, *rc)

    def test_both_sides_remote(self):
        events = self.diverge()
        rc = ("--remote-command", pipe_command())
        ra, rb = "ssh:h1:" + self.a, "ssh:[::1]:" + self.b
        self.check_diff(ra, rb, 2, 3, *rc)
        st = self.replica("repair", ra, rb, *rc, expect_rc=0)
        self.assertEqual((st["copied_to_b"], st["copied_to_a"]), (2, 0))
        self.check_diff(ra, rb, 0, 3, *rc)
        self.sync(rb, ra, 3, 0, *rc)
        self.assert_converged(self.a, self.b, events)
        self.assert_converged(ra, rb, events, *rc)

    def test_default_command_quotes_the_path(self):
        # A stand-in `ssh` first on PATH checks how tidemark calls it and
        # runs the command here, where `tidemark` is the built binary.
        bindir = os.path.join(self.tmp, "bin")
        os.mkdir(bindir)
        log = os.path.join(self.tmp, "ssh.log")
        write_script(os.path.join(bindir, "ssh"), f"""#!/bin/sh
[ "$1" = -e ] && [ "$2" = none ] && [ "$3" = -- ] && [ $# -eq 5 ] ||
    {{ echo "fake ssh: unexpected arguments: $*" >&2; exit 99; }}
printf '%s|%s\\n' "$4" "$5" >> {shlex.quote(log)}
exec /bin/sh -c "$5"
""")
        write_script(os.path.join(bindir, "tidemark"),
                     "#!/bin/sh\nexec %s \"$@\"\n" % shlex.quote(TIDEMARK))
        odd = os.path.join(self.tmp, "it's a store; $(touch pwned)")
        events = self.diverge()
        shutil.copytree(self.b, odd)
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"])
        self.sync(self.a, "ssh:somehost:" + odd, 2, 3, env=env)
        self.assert_converged(self.a, odd, events)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "pwned")))
        self.assertFalse(os.path.exists("pwned"))
        with open(log) as f:
            first = f.readline().rstrip("\n")
        self.assertTrue(first.startswith("somehost|tidemark serve --stdio "), first)


def printf_command(data):
    """A shell command that prints these bytes."""
    return "printf '" + "".join("\\%03o" % b for b in data) + "'"


def write_script(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


class RemoteErrorTest(ReplicaTest):
    """Peers that are not there, not tidemark, or silent: exit 74 with a
    message naming the side, within seconds."""

    def run_timed(self, *args, limit=15):
        """Runs tidemark with stderr in a file (a stray child holding a pipe
        must not stall us); returns rc, stdout, stderr, seconds."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            t = time.monotonic()
            p = subprocess.Popen([TIDEMARK, *args], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=err)
            try:
                rc = p.wait(timeout=limit + 30)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            took = time.monotonic() - t
            out.seek(0)
            err.seek(0)
            return rc, out.read(), err.read().decode("utf-8", "replace"), took

    def setUp(self):
        super().setUp()
        self.append(self.a, base_events(5))
        self.append(self.b, base_events(3))
        self.before = (self.read(self.a), self.read(self.b))

    def tearDown(self):
        self.assertEqual((self.read(self.a), self.read(self.b)), self.before)
        super().tearDown()

    def test_nonexistent_remote_path(self):
        missing = os.path.join(self.tmp, "no-such-store")
        for cmd, x, y, label in (("diff", self.a, "ssh:h:" + missing, "B"),
                                 ("sync", "ssh:h:" + missing, self.b, "A"),
                                 ("repair", self.a, "ssh:h:" + missing, "DST"),
                                 ("repair", "ssh:h:" + missing, self.b, "SRC")):
            rc, out, err, took = self.run_timed(cmd, x, y, "--remote-command",
                                                pipe_command())
            self.assertEqual(rc, 74, (cmd, err))
            self.assertEqual(out, b"")
            self.assertTrue(err.startswith("tidemark: %s (ssh:h:%s)" % (label, missing)),
                            err)
            self.assertIn(missing + ": ", err.split(")", 1)[1])
            self.assertLess(took, 15)
        # The server says what is wrong and exits at once, maybe before our
        # hello reached it: its message must still be the one shown.
        for _ in range(20):
            rc, out, err, took = self.run_timed("diff", self.a, "ssh:h:" + missing,
                                                "--remote-command",
                                                "exec " + pipe_command())
            self.assertEqual(rc, 74, err)
            self.assertIn(missing + ": ", err.split(")", 1)[1])
        self.assertFalse(os.path.exists(missing))
        # A local side that is missing is named too.
        rc, out, err, _ = self.run_timed("diff", missing, self.b)
        self.assertEqual(rc, 74)
        self.assertTrue(err.startswith("tidemark: A (%s)" % missing), err)

    def test_peer_error_then_hang_up(self):
        # What a server with no store does, deterministically: a peer that
        # answers, says what went wrong and hangs up before our next request.
        # Its message must be the one shown, not "Broken pipe".
        hello = frame(0x81, bytes([1]) + struct.pack("<qq", HOUR, 60 * SEC) + bytes([4, 16]))
        msg = b"disk on fire at /srv/store"
        error = frame(0xff, varint(3) + varint(len(msg)) + msg)
        command = "head -c 13 > /dev/null; exec 0<&-; %s; sleep 1" % printf_command(
            hello + error)
        rc, out, err, took = self.run_timed("diff", self.a, "ssh:h:" + self.b,
                                            "--remote-command", command)
        self.assertEqual(rc, 74, err)
        self.assertIn("tidemark: B (ssh:h:%s): %s" % (self.b, msg.decode()), err)

    def test_garbage_peers(self):
        cases = [
            ("echo hello", None),
            ("true", None),
            ("cat > /dev/null", "timeout"),  # reads, never answers
            # A reply frame of the right type with a wrong body.
            (r"printf '\005\000\000\000\201abcd'; cat > /dev/null", "malformed reply"),
            # An ERROR frame whose message length lies.
            (r"printf '\003\000\000\000\377\005\177'; cat > /dev/null",
             "malformed error reply"),
            # A length far over the bound, then nothing: no wait for it.
            (r"printf '\377\377\377\177'; cat > /dev/null", "frame length"),
            # A frame cut short, then silence: the timeout ends it.
            (r"printf '\050\000\000\000\201'; sleep 30", "timeout"),
            ("sleep 30", "no reply within the timeout"),
        ]
        for command, msg in cases:
            with self.subTest(command=command):
                rc, out, err, took = self.run_timed(
                    "diff", self.a, "ssh:h:" + self.b, "--remote-command", command,
                    "--timeout", "1s")
                self.assertEqual(rc, 74, err)
                self.assertEqual(out, b"")
                self.assertTrue(err.startswith("tidemark: B (ssh:h:%s): " % self.b), err)
                if msg:
                    self.assertIn(msg, err)
                self.assertLess(took, 10, err)
        # The same with the remote on side A of a sync.
        rc, out, err, took = self.run_timed(
            "sync", "ssh:h:" + self.a, self.b, "--remote-command", "echo hello",
            "--timeout", "1s")
        self.assertEqual(rc, 74, err)
        self.assertTrue(err.startswith("tidemark: A (ssh:h:%s): " % self.a), err)
        self.assertLess(took, 10)

    def test_bad_specs_and_options(self):
        for args in (("diff", self.a, "ssh:host"), ("diff", self.a, "ssh:host:"),
                     ("diff", self.a, "ssh::" + self.b), ("diff", self.a),
                     ("sync", self.a, self.b, self.b),
                     ("diff", self.a, self.b, "--timeout", "0s"),
                     ("diff", self.a, self.b, "--timeout", "soon"),
                     ("repair", self.a, self.b, "--from", str(T0), "--to", str(T0))):
            rc, out, err, _ = self.run_timed(*args)
            self.assertEqual(rc, 2, (args, err))
            self.assertEqual(out, b"")

    def test_store_locked_by_a_writer(self):
        extra = E(T0 + 33 * MIN, 77)
        self.append(self.a, [extra])
        self.before = (self.read(self.a), self.before[1])
        holder = subprocess.Popen([TIDEMARK, "append", self.b], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            lock = os.path.join(self.b, "LOCK")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and holder.poll() is None:
                try:
                    with open(lock, "rb") as f:
                        if f.read().strip() == str(holder.pid).encode():
                            break
                except FileNotFoundError:
                    pass
                time.sleep(0.02)
            # Reading is not blocked: diff works.
            self.check_diff(self.a, self.b, 3, 0)
            for dst, rcmd in ((self.b, ()),
                              ("ssh:h:" + self.b, ("--remote-command", pipe_command()))):
                rc, out, err, took = self.run_timed("repair", self.a, dst, *rcmd)
                self.assertEqual(rc, 75, err)
                self.assertEqual(out, b"")
                self.assertTrue(err.startswith("tidemark: DST (%s): " % dst), err)
                self.assertIn(str(holder.pid), err)
        finally:
            holder.stdin.close()
            self.assertEqual(holder.wait(timeout=60), 0)
            holder.stderr.close()
        self.assert_verified(self.a, self.b)


# ---- serve --stdio with hand-made frames ---------------------------------

def frame(type_, body=b""):
    return struct.pack("<I", 1 + len(body)) + bytes([type_]) + body


HELLO = frame(1, b"TDMREPL" + bytes([1]))
BYE = frame(7)


def varint(v):
    out = bytearray()
    while True:
        out.append((v & 0x7f) | (0x80 if v >= 0x80 else 0))
        v >>= 7
        if not v:
            return bytes(out)


def wire_event(ts, id, labels=(), payload=b""):
    b = struct.pack("<qI", ts, id) + varint(len(labels))
    for k, v in labels:
        b += varint(len(k)) + k + varint(len(v)) + v
    return b + varint(len(payload)) + payload


def parse_frames(data):
    frames = []
    while len(data) >= 4:
        n = struct.unpack("<I", data[:4])[0]
        if n == 0 or len(data) < 4 + n:
            raise AssertionError("bad frame in reply: %r" % data[:40])
        frames.append((data[4], data[5:4 + n]))
        data = data[4 + n:]
    if data:
        raise AssertionError("bytes after the last frame: %r" % data)
    return frames


def parse_prefix(data):
    """The whole frames at the start of `data`."""
    frames = []
    while len(data) >= 4:
        n = struct.unpack("<I", data[:4])[0]
        if len(data) < 4 + n:
            break
        frames.append((data[4], data[5:4 + n]))
        data = data[4 + n:]
    return frames


def read_varint(b, i):
    v = shift = 0
    while True:
        v |= (b[i] & 0x7f) << shift
        shift += 7
        i += 1
        if not b[i - 1] & 0x80:
            return v, i


class ServeFramesTest(ReplicaTest):
    def setUp(self):
        super().setUp()
        self.events = base_events(12)
        self.append(self.a, self.events)
        self.before = self.read(self.a)

    def serve(self, data, close=True, limit=10):
        """Feeds bytes to `serve --stdio A`; returns (rc, frames, stderr)."""
        p = subprocess.Popen([TIDEMARK, "serve", "--stdio", self.a],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            if close:
                out, err = p.communicate(data, timeout=limit)
            else:
                # Keep stdin open: the server must not wait for more bytes.
                p.stdin.write(data)
                p.stdin.flush()
                p.wait(timeout=limit)
                out, err = p.communicate()
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            self.fail("serve hung on %r" % data[:60])
        return p.returncode, parse_frames(out), err.decode("utf-8", "replace")

    def assert_refused(self, data, msg=None, close=True):
        """The server ends the session non-zero, either with an ERROR frame
        as its last reply or (when the framing itself is broken) with a
        message on stderr; the store is unchanged."""
        before = self.read(self.a)
        rc, frames, err = self.serve(data, close)
        self.assertNotEqual(rc, 0, (data[:60], frames))
        errors = [body for t, body in frames if t == 0xff]
        if errors:
            self.assertEqual(frames[-1][0], 0xff, frames)
            self.assertEqual(len(errors), 1, frames)
            code, i = read_varint(errors[0], 0)
            n, i = read_varint(errors[0], i)
            text = errors[0][i:].decode()
            self.assertEqual(len(errors[0][i:]), n)
            self.assertGreater(code, 0)
            if msg:
                self.assertIn(msg, text)
        else:
            # Only the hello (if any) was answered.
            self.assertLessEqual([t for t, _ in frames], [0x81], frames)
            self.assertTrue(err.startswith("tidemark: "), err)
            if msg:
                self.assertIn(msg, err)
        self.assertEqual(self.read(self.a), before)
        self.assert_verified(self.a)
        return frames

    def test_good_session(self):
        rc, frames, err = self.serve(HELLO + BYE)
        self.assertEqual(rc, 0, err)
        self.assertEqual([t for t, _ in frames], [0x81, 0x87])
        body = frames[0][1]
        self.assertEqual(body[0], 1)
        self.assertEqual(struct.unpack("<qq", body[1:17]), (HOUR, 60 * SEC))
        self.assertEqual(body[17:], bytes([4, 16]))

    def test_bad_hello(self):
        self.assert_refused(frame(1, b"TDMREPX" + bytes([1])) + BYE, "bad hello")
        self.assert_refused(frame(1, b"TDM") + BYE, "bad hello")
        self.assert_refused(frame(1, b"TDMREPL" + bytes([1, 0])) + BYE, "bad hello")
        self.assert_refused(frame(1, b"TDMREPL" + bytes([9])) + BYE, "version")
        rc, frames, err = self.serve(b"GET / HTTP/1.0\r\n\r\n", close=False)
        self.assertNotEqual(rc, 0)

    def test_unknown_type(self):
        for t in (0, 0x42, 0x81, 0xff):
            self.assert_refused(HELLO + frame(t, b"xyz") + BYE, "unknown message type")

    def test_frame_lengths(self):
        over = struct.pack("<I", 32 * 1024 * 1024 + 1)
        self.assert_refused(HELLO + over, "frame length", close=False)
        self.assert_refused(HELLO + struct.pack("<I", 0xffffffff), "frame length",
                            close=False)
        self.assert_refused(HELLO + struct.pack("<I", 0), "frame length", close=False)
        # Cut short: a header, or part of a body, then the end of the stream.
        self.assert_refused(HELLO + b"\x10\x00")
        self.assert_refused(HELLO + struct.pack("<I", 30) + b"\x02abc")

    def test_malformed_requests(self):
        rng = struct.pack("<qq", 0, (1 << 63) - 1)
        for body, msg in (
                (frame(2, rng + b"x"), "bytes left over"),
                (frame(2, rng[:9]), "ends too early"),
                (frame(3, rng + varint(1000) + b"\x00" * 13), "count larger"),
                (frame(3, rng + varint(1) + struct.pack("<qBI", T0 // HOUR, 9, 0)),
                 None),
                (frame(3, rng + varint(1) + struct.pack("<qBI", T0 // HOUR, 1, 1 << 20)),
                 None),
                (frame(4, rng + varint(1 << 40)), "count larger"),
                (frame(5, rng + b"\x02" + varint(0)), "want flag"),
                (frame(5, rng + b"\x01" + varint(1) + struct.pack("<qIB", 0, 0, 1)
                       + varint(1) + b"\x00" * 8), "all flag"),
                (frame(6, varint(1) + wire_event(T0, 1)[:-1]), None),
                (frame(6, varint(2) + wire_event(T0, 1)), "count larger"),
                (frame(6, varint(1) + wire_event(-5, 1)), "negative"),
                (frame(6, varint(1) + wire_event((1 << 63) - 1, 1)), "out of range"),
                (frame(6, varint(1) + wire_event(T0, 1, [(b"", b"v")])), None),
                (frame(6, varint(1) + wire_event(T0, 1, [(b"k", b"\xff")])), None),
                (frame(6, varint(1) + wire_event(T0, 1, [(b"k", b"1"), (b"k", b"2")])),
                 None),
                (frame(6, varint(1) + wire_event(T0, 1, [(b"k\x00", b"1")])), None),
                (frame(6, varint(1) + wire_event(T0, 1, [(b"k", b"v\x00w")])), None),
                (frame(6, varint(1) + struct.pack("<qI", T0, 1) + varint(70)
                       + b"\x01k\x01v" * 70 + varint(0)), "labels"),
                (frame(6, varint(1) + struct.pack("<qI", T0, 1) + varint(0)
                       + varint(17 * 1024 * 1024)), "payload"),
                (frame(6, varint(2) + wire_event(T0, 500) + wire_event(T0, 1)[:-1]
                       + b"\xff"), None),
        ):
            with self.subTest(body=body[:48]):
                self.assert_refused(HELLO + body + BYE, msg)

    def test_put_twice_is_stored_once(self):
        new = wire_event(T0 + 42 * SEC, 4242, [(b"host", b"z")], b"\x00\xffbin")
        put = frame(6, varint(2) + new + new)
        rc, frames, err = self.serve(HELLO + put + put + BYE)
        self.assertEqual(rc, 0, err)
        self.assertEqual([t for t, _ in frames], [0x81, 0x86, 0x86, 0x87])
        self.assertEqual(frames[1][1], varint(1) + varint(1) + varint(0))
        self.assertEqual(frames[2][1], varint(0) + varint(2) + varint(0))
        self.assertEqual(self.stat(self.a)["events"], 13)
        out = self.read(self.a)
        self.assertEqual(out.count(b'"id":4242,'), 1)
        self.assert_verified(self.a)

    def test_put_durable_at_its_reply(self):
        """A PUT is synced before it is answered (durability batch): while
        the session still holds the store, after the PUT's reply, there is
        no UNSYNCED marker (the one an unsynced index commit needs) and the
        events are there for a reader."""
        new = wire_event(T0 + 43 * SEC, 4343, [(b"host", b"y")], b"put")
        p = subprocess.Popen([TIDEMARK, "serve", "--stdio", self.a],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            p.stdin.write(HELLO + frame(6, varint(1) + new))
            p.stdin.flush()
            got = b""
            while len(parse_prefix(got)) < 2:
                chunk = os.read(p.stdout.fileno(), 65536)
                self.assertTrue(chunk, "serve ended early")
                got += chunk
            frames = parse_prefix(got)
            self.assertEqual([t for t, _ in frames], [0x81, 0x86])
            self.assertEqual(frames[1][1], varint(1) + varint(0) + varint(0))
            # The session is open: the writer holds the store.
            self.assertFalse(os.path.exists(os.path.join(self.a, "UNSYNCED")))
            self.assertEqual(self.read(self.a).count(b'"id":4343,'), 1)
            p.stdin.write(BYE)
            p.stdin.close()
            out = p.stdout.read()
            self.assertEqual(p.wait(timeout=10), 0, p.stderr.read())
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        self.assertEqual([t for t, _ in parse_frames(out)], [0x87])
        self.assertEqual(self.stat(self.a)["events"], 13)
        self.assert_verified(self.a)

    def test_put_after_a_killed_writer(self):
        """A writer killed in this boot left UNSYNCED (its last commits'
        index pages may be only in the page cache); the session's writer
        syncs the index, then removes the marker, and stores the PUT."""
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        marker = os.path.join(self.a, "UNSYNCED")
        with open(marker, "w") as f:
            f.write(boot)
        new = wire_event(T0 + 44 * SEC, 4444, [], b"after")
        rc, frames, err = self.serve(HELLO + frame(6, varint(1) + new) + BYE)
        self.assertEqual(rc, 0, err)
        self.assertEqual([t for t, _ in frames], [0x81, 0x86, 0x87])
        self.assertFalse(os.path.exists(marker))
        self.assertEqual(self.read(self.a).count(b'"id":4444,'), 1)
        self.assertEqual(self.stat(self.a)["events"], 13)
        self.assert_verified(self.a)

    def test_missing_store(self):
        missing = os.path.join(self.tmp, "nothing")
        p = subprocess.run([TIDEMARK, "serve", "--stdio", missing], input=HELLO,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        self.assertNotEqual(p.returncode, 0)
        frames = parse_frames(p.stdout)
        self.assertEqual([t for t, _ in frames], [0xff])
        self.assertIn(missing.encode(), frames[0][1])
        self.assertFalse(os.path.exists(missing))


# ---- a real OpenSSH server on 127.0.0.1 ----------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OpenSshTest(ReplicaTest):
    sshd = None
    skip_reason = None

    @classmethod
    def setUpClass(cls):
        cls._dir = tempfile.TemporaryDirectory(prefix="tidemark-sshd-")
        d = cls.sshd_dir = cls._dir.name
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        keygen = shutil.which("ssh-keygen")
        ssh = shutil.which("ssh")
        if not os.access(sshd, os.X_OK) or not keygen or not ssh:
            cls.skip_reason = ("OpenSSH is not installed (needs sshd, ssh-keygen and "
                               "ssh: apt-get install openssh-server openssh-client)")
            return
        cls.ssh = ssh
        for name in ("host_key", "user_key"):
            p = subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C",
                                "tidemark-test", "-f", os.path.join(d, name)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if p.returncode:
                cls.skip_reason = "ssh-keygen failed: " + p.stdout.decode()
                return
        shutil.copy(os.path.join(d, "user_key.pub"), os.path.join(d, "authorized_keys"))
        cls.key = os.path.join(d, "user_key")
        cls.bindir = os.path.join(d, "bin")
        os.mkdir(cls.bindir)
        write_script(os.path.join(cls.bindir, "tidemark"),
                     "#!/bin/sh\nexec %s \"$@\"\n" % shlex.quote(TIDEMARK))
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        cls.port = free_port()
        config = os.path.join(d, "sshd_config")
        with open(config, "w") as f:
            f.write(f"""Port {cls.port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
PidFile {d}/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
SetEnv PATH={cls.bindir}:/usr/local/bin:/usr/bin:/bin
""")
        cls.log = os.path.join(d, "sshd.log")
        with open(cls.log, "wb") as log:
            cls.sshd = subprocess.Popen([sshd, "-D", "-e", "-f", config],
                                        stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and cls.sshd.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", cls.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        with open(cls.log) as f:
            cls.skip_reason = "sshd could not start: " + f.read().strip()[-500:]
        cls.stop_sshd()

    @classmethod
    def stop_sshd(cls):
        if cls.sshd and cls.sshd.poll() is None:
            cls.sshd.terminate()
            try:
                cls.sshd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                cls.sshd.kill()
                cls.sshd.wait()

    @classmethod
    def tearDownClass(cls):
        cls.stop_sshd()
        cls._dir.cleanup()

    def setUp(self):
        if self.skip_reason:
            self.skipTest(self.skip_reason)
        super().setUp()

    def ssh_options(self):
        return ["-F", "/dev/null", "-p", str(self.port), "-i", self.key,
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]

    def remote_command(self):
        return " ".join([shlex.quote(self.ssh)] + [shlex.quote(o) for o in self.ssh_options()]
                        + ['"$1"', shlex.quote(TIDEMARK), "serve", "--stdio", '"$2"'])

    def diverge(self):
        common = base_events(40, T0, 3 * MIN)
        only_a = [E(T0 + 7 * MIN + i, 500 + i, {"via": "a"}, b"\x80a") for i in range(4)]
        only_b = [E(T0 + 3 * HOUR, 600, {"via": "b"}, b"b")]
        self.append(self.a, common + only_a)
        self.append(self.b, common[::-1] + only_b, late=None)
        return common + only_a + only_b

    def test_sync_through_sshd(self):
        events = self.diverge()
        remote = "ssh:127.0.0.1:" + self.b
        rc = ("--remote-command", self.remote_command(), "--timeout", "20s")
        self.check_diff(self.a, remote, 4, 1, *rc)
        self.sync(self.a, remote, 4, 1, *rc)
        self.assert_converged(self.a, self.b, events)
        self.assert_converged(self.a, remote, events, *rc)

    def test_default_command_through_sshd(self):
        # The default `ssh -e none -- HOST "tidemark serve --stdio 'PATH'"`:
        # our `ssh` adds the port and key; the remote finds `tidemark` on
        # the PATH sshd sets (SetEnv in the test's sshd_config).
        write_script(os.path.join(self.tmp, "ssh"), "#!/bin/sh\nexec %s %s \"$@\"\n" % (
            shlex.quote(self.ssh), " ".join(shlex.quote(o) for o in self.ssh_options())))
        odd = os.path.join(self.tmp, "store with 'quotes' and spaces")
        os.rename(self.b, odd)
        self.b = odd
        events = self.diverge()
        env = dict(os.environ, PATH=self.tmp + os.pathsep + os.environ["PATH"])
        self.sync("ssh:127.0.0.1:" + self.a, self.b, 4, 1, "--timeout", "20s", env=env)
        self.assert_converged(self.a, self.b, events)
        # A remote path that is not there: named in the message, exit 74.
        rc, out, err = run("diff", self.a, "ssh:127.0.0.1:/nonexistent/store", env=env)
        self.assertEqual(rc, 74, err)
        self.assertIn(b"B (ssh:127.0.0.1:/nonexistent/store): ", err)


if __name__ == "__main__":
    if not os.path.isabs(TIDEMARK) and os.sep in TIDEMARK:
        TIDEMARK = os.path.abspath(TIDEMARK)
    unittest.main(verbosity=2)
