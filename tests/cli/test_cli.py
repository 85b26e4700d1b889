#!/usr/bin/env python3
"""End-to-end tests of the `tidemark` command line (SPEC §5).

Every test runs the real binary (path in $TIDEMARK) as a subprocess on a
real store in a temporary directory. Python standard library only.
"""

import base64
import json
import os
import subprocess
import tempfile
import time
import unittest

TIDEMARK = os.environ.get("TIDEMARK", "tidemark")

SEC = 1_000_000_000
HOUR = 3600 * SEC
# 2025-11-22T10:00:00Z, the start of a 1 h shard.
T0 = 1763805600 * SEC
MIB = 1 << 20


def run(*args, stdin=b"", timeout=120):
    """Runs tidemark with args; returns (exit code, stdout, stderr) as bytes."""
    p = subprocess.run([TIDEMARK, *map(str, args)], input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def ev(ts, id=None, labels=None, payload=None, b64=None, **extra):
    """One NDJSON input line (str, no newline)."""
    d = {"ts": ts}
    if id is not None:
        d["id"] = id
    if labels is not None:
        d["labels"] = labels
    if payload is not None:
        d["payload"] = payload
    if b64 is not None:
        d["payload_b64"] = b64
    d.update(extra)
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


def out_line(ts, id, labels=None, payload=b""):
    """The exact line `read` must print for an event (bytes, no newline)."""
    labels = labels or {}
    lab = ",".join(jstr(k) + ":" + jstr(v) for k, v in sorted(
        labels.items(), key=lambda kv: kv[0].encode()))
    try:
        body = '"payload":' + jstr(payload.decode("utf-8"))
    except UnicodeDecodeError:
        body = '"payload_b64":"' + base64.b64encode(payload).decode() + '"'
    text = '{"ts":%d,"id":%d,"labels":{%s},%s}' % (ts, id, lab, body)
    return text.encode("utf-8")


def jstr(s):
    # Python's escaping (\" \\ \n \r \t \b \f, other controls as \u00xx,
    # everything else raw) is exactly the encoder's.
    return json.dumps(s, ensure_ascii=False)


def lines_of(*lines):
    return "".join(line + "\n" for line in lines).encode("utf-8")


class StoreTest(unittest.TestCase):
    """A fresh store per test, and helpers to append and read it."""

    init_args = ()

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tidemark-cli-")
        self.tmp = self._tmp.name
        self.store = os.path.join(self.tmp, "store")
        rc, _, err = run("init", self.store, *self.init_args)
        self.assertEqual(rc, 0, err)

    def tearDown(self):
        self._tmp.cleanup()

    def append(self, data, *args, store=None, expect_rc=0):
        """Appends NDJSON (str lines or bytes); returns (summary, stderr)."""
        if isinstance(data, (list, tuple)):
            data = lines_of(*data)
        rc, out, err = run("append", store or self.store, *args, stdin=data)
        self.assertEqual(rc, expect_rc, err)
        self.assertEqual(out, b"")
        return summary_of(err), err.decode("utf-8", "replace")

    def read(self, *args, store=None, expect_rc=0):
        """Reads the store; returns the output lines (bytes) and stderr."""
        rc, out, err = run("read", store or self.store, *args)
        self.assertEqual(rc, expect_rc, err)
        self.assertTrue(out == b"" or out.endswith(b"\n"))
        return out.splitlines(), err.decode("utf-8", "replace")

    def read_events(self, *args, **kw):
        return [json.loads(line) for line in self.read(*args, **kw)[0]]

    def assert_counts(self, summary, appended, duplicates, late):
        self.assertEqual(summary, {"appended": appended,
                                   "duplicates": duplicates, "late": late})

    def verify(self):
        rc, out, err = run("verify", self.store)
        return rc, out, err.decode("utf-8", "replace")


def summary_of(stderr):
    """The append summary: the last stderr line, which must be JSON."""
    last = stderr.decode("utf-8", "replace").strip().splitlines()[-1]
    summary = json.loads(last)
    if list(summary) != ["appended", "duplicates", "late"]:
        raise AssertionError("bad summary line: " + last)
    return summary


class InitTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tidemark-cli-")
        self.dir = os.path.join(self._tmp.name, "s")

    def tearDown(self):
        self._tmp.cleanup()

    def test_create_and_reopen_with_same_options(self):
        opts = ("--shard-duration", "15m", "--grace", "30s",
                "--index-interval", "8192")
        self.assertEqual(run("init", self.dir, *opts)[0], 0)
        rc, _, err = run("init", self.dir, *opts)
        self.assertEqual(rc, 0, err)
        rc, out, err = run("stat", self.dir)
        self.assertEqual(rc, 0, err)
        st = json.loads(out)
        self.assertEqual(st["shard_duration_ns"], 15 * 60 * SEC)
        self.assertEqual(st["grace_ns"], 30 * SEC)
        self.assertEqual(st["index_interval"], 8192)

    def test_defaults(self):
        self.assertEqual(run("init", self.dir)[0], 0)
        st = json.loads(run("stat", self.dir)[1])
        self.assertEqual(st["shard_duration_ns"], HOUR)
        self.assertEqual(st["grace_ns"], 60 * SEC)
        self.assertEqual(st["index_interval"], 4096)
        # Spelling the defaults out is the same store.
        self.assertEqual(run("init", self.dir, "--shard-duration", "1h",
                             "--grace=60s")[0], 0)

    def test_different_options_are_refused(self):
        self.assertEqual(run("init", self.dir, "--grace", "30s")[0], 0)
        for opts in (("--grace", "31s"), ("--shard-duration", "2h"),
                     ("--grace", "30s", "--index-interval", "1024")):
            rc, out, err = run("init", self.dir, *opts)
            self.assertEqual(rc, 2, opts)
            self.assertTrue(err.startswith(b"tidemark: "), err)
        st = json.loads(run("stat", self.dir)[1])
        self.assertEqual(st["grace_ns"], 30 * SEC)

    def test_non_empty_directory_that_is_no_store(self):
        os.mkdir(self.dir)
        with open(os.path.join(self.dir, "notes.txt"), "w") as f:
            f.write("mine\n")
        rc, _, err = run("init", self.dir)
        self.assertEqual(rc, 2)
        self.assertTrue(err.startswith(b"tidemark: "), err)
        self.assertEqual(os.listdir(self.dir), ["notes.txt"])

    def test_empty_existing_directory_is_fine(self):
        os.mkdir(self.dir)
        self.assertEqual(run("init", self.dir)[0], 0)
        self.assertEqual(run("verify", self.dir)[0], 0)

    def test_zero_grace_means_strictly_in_order(self):
        self.assertEqual(run("init", self.dir, "--grace", "0")[0], 0)
        self.assertEqual(json.loads(run("stat", self.dir)[1])["grace_ns"], 0)
        rc, _, err = run("append", self.dir, stdin=b"".join(
            (ev(T0 + t, 1) + "\n").encode() for t in (5, 4, 5)))
        self.assertEqual(rc, 0)
        self.assertIn(b'"late":1', err)
        self.assertIn(b'"duplicates":1', err)

    def test_zero_shard_duration_is_refused(self):
        rc, _, err = run("init", self.dir, "--shard-duration", "0")
        self.assertEqual(rc, 2)
        self.assertIn(b"shard duration", err)
        self.assertFalse(os.path.exists(self.dir))

    def test_bad_option_values(self):
        for opts in (("--grace", "soon"), ("--grace", "-5s"),
                     ("--shard-duration", "-1h"), ("--shard-duration", ""),
                     ("--index-interval", "4k"), ("--index-interval", "0"),
                     ("--grace",), ("--frobnicate", "1")):
            rc, _, err = run("init", self.dir, *opts)
            self.assertEqual(rc, 2, opts)
            self.assertIn(b"usage:", err)
        self.assertFalse(os.path.exists(self.dir))


class RoundTripTest(StoreTest):
    def test_fields_round_trip_exactly(self):
        cases = [
            # (input line, expected output line)
            (ev(T0 + 1, 7, {"host": "web-1", "app": "api"}, "GET /"),
             out_line(T0 + 1, 7, {"host": "web-1", "app": "api"}, b"GET /")),
            (ev(T0 + 2, 0), out_line(T0 + 2, 0)),
            (ev(T0 + 3, 4294967295, {}, ""), out_line(T0 + 3, 4294967295)),
            (ev(T0 + 4, 1, b64=base64.b64encode(b"\xff\x00\xfe").decode()),
             out_line(T0 + 4, 1, None, b"\xff\x00\xfe")),
            (ev(T0 + 5, 1, {"k": "ünï"}, "héllo ✓ 𝄞 日本"),
             out_line(T0 + 5, 1, {"k": "ünï"}, "héllo ✓ 𝄞 日本".encode())),
            (ev(T0 + 6, 1, None, "a\u0000b\n\t\"\\\u001f\u007f"),
             out_line(T0 + 6, 1, None, b'a\x00b\n\t"\\\x1f\x7f')),
            # Valid UTF-8 given as base64 comes back as a JSON string.
            (ev(T0 + 7, 1, b64="aGk="), out_line(T0 + 7, 1, None, b"hi")),
            # Overlong '/', a surrogate and a code point past U+10FFFF are
            # not UTF-8: base64 on the way out.
            (ev(T0 + 8, 1, b64=base64.b64encode(b"\xc0\xaf").decode()),
             out_line(T0 + 8, 1, None, b"\xc0\xaf")),
            (ev(T0 + 9, 1, b64=base64.b64encode(b"\xed\xa0\x80").decode()),
             out_line(T0 + 9, 1, None, b"\xed\xa0\x80")),
            (ev(T0 + 10, 1, b64=base64.b64encode(b"\xf4\x90\x80\x80").decode()),
             out_line(T0 + 10, 1, None, b"\xf4\x90\x80\x80")),
            (ev(T0 + 11, 1, b64=base64.b64encode(b"ok\xe2\x82").decode()),
             out_line(T0 + 11, 1, None, b"ok\xe2\x82")),
            (ev("2025-11-22T10:00:00.000000012Z", 3, {"q": 'a"b\\c'}),
             out_line(T0 + 12, 3, {"q": 'a"b\\c'})),
            # Any JSON spelling of the same event: escaped keys, \u escapes
            # (a surrogate pair is one code point), "-0", whitespace.
            (' {\t"t\\u0073" : %d ,\r"\\u0069d":-0, "labels" : {"\\u006b":'
             '"\\u00fc\\/"} ,"payload":"\\ud834\\udd1e\\u0041\\b"} ' % (T0 + 13),
             out_line(T0 + 13, 0, {"k": "ü/"}, "𝄞A\b".encode())),
            ('{"ts":%d,"id":1,"payload_b64":"\\u0061Gk="}' % (T0 + 14),
             out_line(T0 + 14, 1, None, b"hi")),
        ]
        summary, _ = self.append([c[0] for c in cases])
        self.assert_counts(summary, len(cases), 0, 0)
        lines, err = self.read()
        self.assertEqual(lines, [c[1] for c in cases])
        self.assertEqual(err, "")
        # The output is itself valid input: appending it again stores nothing.
        summary, _ = self.append(b"\n".join(lines) + b"\n")
        self.assert_counts(summary, 0, len(cases), 0)

    def test_output_is_deterministic_across_replicas(self):
        events = [ev(T0 + (i * 7919) % 500 * SEC, i % 3,
                     {"n": str(i % 5), "a": "x"}, "line %d" % i)
                  for i in range(300)]
        other = os.path.join(self.tmp, "replica")
        self.assertEqual(run("init", other)[0], 0)
        self.append(events)
        self.append(list(reversed(events)), store=other)
        mine, _ = self.read()
        theirs, _ = self.read(store=other)
        self.assertEqual(len(mine), 300)
        self.assertEqual(mine, theirs)
        self.assertEqual(mine, self.read()[0])
        self.assertNotIn(b'"seq"', b"".join(mine))

    def test_ordering_by_ts_id_labels_payload(self):
        expected = [
            out_line(T0, 1, {"a": "1"}, b"a"),
            out_line(T0, 1, {"a": "1"}, b"b"),
            out_line(T0, 1, {"a": "2"}, b"a"),
            out_line(T0, 2, {"a": "1"}, b"a"),
            out_line(T0 + 1, 0, {}, b"z"),
            out_line(T0 + 20 * SEC, 9),
            out_line(T0 + 30 * SEC, 5),
        ]
        shuffled = [
            ev(T0 + 30 * SEC, 5), ev(T0, 2, {"a": "1"}, "a"),
            ev(T0 + 1, 0, {}, "z"), ev(T0, 1, {"a": "2"}, "a"),
            ev(T0 + 20 * SEC, 9), ev(T0, 1, {"a": "1"}, "b"),
            ev(T0, 1, {"a": "1"}, "a"),
        ]
        summary, _ = self.append(shuffled)
        self.assert_counts(summary, 7, 0, 0)
        self.assertEqual(self.read()[0], expected)
        # Storage order returns the same events, in whatever order.
        lines, _ = self.read("--storage-order")
        self.assertEqual(sorted(lines), sorted(expected))

    def test_many_batches(self):
        n = 2500
        events = [ev(T0 + (n - i) * MIB, i, {"i": str(i % 7)}, "p%05d" % i)
                  for i in range(n)]
        summary, _ = self.append(events)
        self.assertEqual(summary["appended"] + summary["duplicates"], n)
        self.assertEqual(summary["duplicates"], 0)
        got = self.read_events()
        self.assertEqual(len(got), n)
        self.assertEqual([e["ts"] for e in got],
                         sorted(T0 + (n - i) * MIB for i in range(n)))
        summary, _ = self.append(events)
        self.assert_counts(summary, 0, n, 0)

    def test_blank_lines_crlf_and_missing_final_newline(self):
        data = (b"\n   \n" + ev(T0, 1).encode() + b"\r\n\t\n" +
                ev(T0 + 1, 2).encode())
        summary, _ = self.append(data)
        self.assert_counts(summary, 2, 0, 0)
        self.assertEqual(self.read()[0], [out_line(T0, 1), out_line(T0 + 1, 2)])

    def test_empty_input(self):
        summary, _ = self.append(b"")
        self.assert_counts(summary, 0, 0, 0)
        self.assertEqual(self.read()[0], [])

    def test_durability_modes(self):
        for i, mode in enumerate(("none", "interval", "batch")):
            summary, _ = self.append([ev(T0 + i, i)], "--durability", mode)
            self.assert_counts(summary, 1, 0, 0)
        self.assertEqual(len(self.read()[0]), 3)

    def test_sync_intervals(self):
        summary, _ = self.append([ev(T0, 1), ev(T0 + 1, 2)],
                                 "--sync-interval-ms", "5",
                                 "--sync-interval-events=1")
        self.assert_counts(summary, 2, 0, 0)
        self.assertEqual(len(self.read()[0]), 2)


class SummaryTest(StoreTest):
    def test_on_time_late_and_duplicates(self):
        mid = T0 + 30 * 60 * SEC
        summary, _ = self.append([ev(mid, 1), ev(mid + 10 * SEC, 2)])
        self.assert_counts(summary, 2, 0, 0)
        # Within grace (60 s) of the shard's max: on time. Older: late.
        summary, _ = self.append([
            ev(mid - 30 * SEC, 3),           # on time
            ev(mid - 5 * 60 * SEC, 4),       # late
            ev(mid - 5 * 60 * SEC, 4),       # duplicate within the batch
            ev(mid, 1),                      # duplicate of a stored event
            ev(mid, 1, payload="other"),     # same ts and id, other content
            ev(T0 + 5 * HOUR, 5),            # far future: its own shard
            ev(mid - 20 * 60 * SEC, 6),      # still late in the first shard
        ])
        self.assert_counts(summary, 5, 2, 2)
        self.assertEqual(len(self.read()[0]), 7)
        st = json.loads(run("stat", self.store)[1])
        self.assertEqual(st["late_events"], 2)
        # A late event appended again is a duplicate too.
        summary, _ = self.append([ev(mid - 5 * 60 * SEC, 4)])
        self.assert_counts(summary, 0, 1, 0)

    def test_late_within_one_batch(self):
        mid = T0 + 30 * 60 * SEC
        summary, _ = self.append([ev(mid, 1), ev(mid - 2 * 60 * SEC, 2)])
        self.assert_counts(summary, 2, 0, 1)
        self.assertEqual(self.read()[0],
                         [out_line(mid - 2 * 60 * SEC, 2), out_line(mid, 1)])

    def test_reappending_a_file_gives_all_duplicates(self):
        events = [ev(T0 + i * SEC, i, {"h": "x"}, "e%d" % i)
                  for i in range(50)]
        self.assert_counts(self.append(events)[0], 50, 0, 0)
        self.assert_counts(self.append(events)[0], 0, 50, 0)
        self.assertEqual(len(self.read()[0]), 50)

    def test_content_id_when_id_is_omitted(self):
        line = ev(T0, None, {"h": "a"}, "retry me")
        summary, _ = self.append([line, line])
        self.assert_counts(summary, 1, 1, 0)
        self.assert_counts(self.append([line])[0], 0, 1, 0)
        (got,) = self.read_events()
        self.assertIsInstance(got["id"], int)
        self.assertTrue(0 <= got["id"] <= 0xFFFFFFFF)
        # The same event with that id spelled out is the same event...
        explicit = ev(T0, got["id"], {"h": "a"}, "retry me")
        self.assert_counts(self.append([explicit])[0], 0, 1, 0)
        # ...and the id depends on the content.
        self.assert_counts(self.append([ev(T0, None, {"h": "a"}, "other")])[0],
                           1, 0, 0)
        ids = [e["id"] for e in self.read_events()]
        self.assertEqual(len(set(ids)), 2)


class BadInputTest(StoreTest):
    """Each malformed line: exit 65 naming its line, earlier lines kept."""

    GOOD = [ev(T0, 1, {"k": "v"}, "first"), ev(T0 + SEC, 2, None, "second")]
    AFTER = ev(T0 + 2 * SEC, 3, None, "never stored")

    def check_bad_line(self, bad, must_mention=None):
        if isinstance(bad, str):
            bad = bad.encode("utf-8")
        # Line numbers count blank lines too: the bad line is line 4.
        data = lines_of(self.GOOD[0], "", self.GOOD[1]) + bad + b"\n" + \
            lines_of(self.AFTER)
        summary, err = self.append(data, expect_rc=65)
        self.assert_counts(summary, 2, 0, 0)
        self.assertIn("tidemark: line 4: ", err)
        if must_mention:
            msg = err[err.index("line 4: "):].splitlines()[0]
            self.assertIn(must_mention, msg)
        lines, _ = self.read()
        self.assertEqual(lines, [out_line(T0, 1, {"k": "v"}, b"first"),
                                 out_line(T0 + SEC, 2, None, b"second")])
        rc, out, verr = self.verify()
        self.assertEqual(rc, 0, verr)
        self.assertEqual(json.loads(out), {"ok": True, "problems": 0})

    def test_malformed_lines(self):
        big = "x" * (16 * MIB + 1)
        cases = [
            # (name, line, word the message must contain)
            ("not json", '{"ts":1,', None),
            ("garbage after", '{"ts":1} x', None),
            ("array", "[1,2]", "object"),
            ("number", "42", "object"),
            ("string", '"ts"', "object"),
            ("null", "null", "object"),
            ("missing ts", '{"id":1}', "ts"),
            ("negative ts", '{"ts":-1}', "ts"),
            ("float ts", '{"ts":1.5}', "ts"),
            ("bool ts", '{"ts":true}', "ts"),
            ("null ts", '{"ts":null}', "ts"),
            ("ts past int64", '{"ts":9223372036854775808}', None),
            ("bad date", '{"ts":"2025-02-30T00:00:00Z"}', "ts"),
            ("not a time", '{"ts":"yesterday"}', "ts"),
            ("no zone", '{"ts":"2025-11-22T10:00:00"}', "ts"),
            ("before 1970", '{"ts":"1969-12-31T23:59:59Z"}', "ts"),
            ("id too big", '{"ts":1,"id":4294967296}', "id"),
            ("negative id", '{"ts":1,"id":-1}', "id"),
            ("float id", '{"ts":1,"id":1.0}', "id"),
            ("string id", '{"ts":1,"id":"7"}', "id"),
            ("bad base64 length", '{"ts":1,"payload_b64":"abc"}', "base64"),
            ("bad base64 char", '{"ts":1,"payload_b64":"ab!="}', "base64"),
            ("base64 padding inside", '{"ts":1,"payload_b64":"ab==abcd"}',
             "base64"),
            ("base64 too much padding", '{"ts":1,"payload_b64":"a==="}',
             "base64"),
            ("base64 whitespace", '{"ts":1,"payload_b64":"aGk= "}', "base64"),
            ("base64 url alphabet", '{"ts":1,"payload_b64":"-_8="}', "base64"),
            ("base64 stray bits", '{"ts":1,"payload_b64":"aGl="}', "base64"),
            ("base64 not string", '{"ts":1,"payload_b64":5}', "payload_b64"),
            ("both payloads", '{"ts":1,"payload":"a","payload_b64":"YQ=="}',
             "payload"),
            ("payload number", '{"ts":1,"payload":5}', "payload"),
            ("payload null", '{"ts":1,"payload":null}', "payload"),
            ("payload too big", ev(1, 1, None, big), "payload"),
            ("payload_b64 too big",
             ev(1, 1, b64=base64.b64encode(big.encode()).decode()), "payload"),
            ("labels array", '{"ts":1,"labels":["a"]}', "labels"),
            ("labels string", '{"ts":1,"labels":"a=b"}', "labels"),
            ("label value number", '{"ts":1,"labels":{"a":1}}', "a"),
            ("label value null", '{"ts":1,"labels":{"a":null}}', "a"),
            ("label value object", '{"ts":1,"labels":{"a":{}}}', "a"),
            ("label value with NUL", '{"ts":1,"labels":{"a":"x\\u0000y"}}',
             "NUL"),
            ("label key with NUL", '{"ts":1,"labels":{"a\\u0000b":"x"}}',
             None),
            ("empty label key", '{"ts":1,"labels":{"":"x"}}', None),
            ("label value too long",
             ev(1, 1, {"a": "v" * 4097}), None),
            ("too many labels",
             ev(1, 1, {"k%d" % i: "v" for i in range(65)}), None),
            ("unknown key", '{"ts":1,"tss":2}', "tss"),
            ("unknown key seq", '{"ts":1,"seq":2}', "seq"),
            ("duplicate key", '{"ts":1,"ts":2}', None),
            ("duplicate label", '{"ts":1,"labels":{"a":"1","a":"2"}}', None),
            # JSON's own rules, as jansson enforced them before the CLI
            # got its own parser (src/cli/json_event.c).
            ("escaped duplicate key", '{"ts":1,"t\\u0073":2}', "duplicate"),
            ("escaped duplicate label",
             '{"ts":1,"labels":{"a":"1","\\u0061":"2"}}', "duplicate"),
            ("duplicate unknown key", '{"ts":1,"x":1,"x":2}', "duplicate"),
            ("exponent ts", '{"ts":1e3}', "ts"),
            ("leading zero", '{"ts":01}', "JSON"),
            ("plus sign", '{"ts":+1}', "JSON"),
            ("minus alone", '{"ts":-}', "JSON"),
            ("trailing comma", '{"ts":1,}', "JSON"),
            ("single quotes", "{'ts':1}", "JSON"),
            ("raw NUL after a number", '{"ts":1\x00}', "JSON"),
            ("raw NUL in a string", '{"ts":1,"payload":"a\x00"}', "JSON"),
            ("lone high surrogate", '{"ts":1,"payload":"\\ud800"}',
             "surrogate"),
            ("lone low surrogate", '{"ts":1,"payload":"\\udc00\\ud800"}',
             "surrogate"),
            ("short \\u", '{"ts":1,"payload":"\\u12"}', "JSON"),
            ("bad escape", '{"ts":1,"payload":"\\x"}', "escape"),
            ("unterminated string", '{"ts":1,"payload":"abc', "JSON"),
            ("nested too deep", '{"ts":1,"x":' + "[" * 3000 + "]" * 3000 + "}",
             "JSON"),
            ("unknown key first", '{"zz":1,"ts":-1}', "zz"),
            ("syntax error wins", '{"zz":1,"ts":1,}', "JSON"),
        ]
        for name, line, word in cases:
            with self.subTest(name):
                self.tearDown()
                self.setUp()
                self.check_bad_line(line, word)

    def test_invalid_utf8_in_line(self):
        self.check_bad_line(b'{"ts":1,"payload":"\xff"}')

    def test_raw_control_byte_in_line(self):
        self.check_bad_line(b'{"ts":1,"payload":"a\x01b"}')

    def test_ill_formed_utf8_in_line(self):
        # Overlong, surrogate, past U+10FFFF, cut short, stray continuation.
        for bad in (b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                    b"ok\xe2\x82", b"\x80"):
            with self.subTest(bad):
                self.tearDown()
                self.setUp()
                self.check_bad_line(b'{"ts":1,"payload":"' + bad + b'"}',
                                    "UTF-8")

    def test_line_longer_than_32_mib(self):
        line = ev(1, 1, None, "y" * (33 * MIB))
        self.check_bad_line(line, "longer")


class TimeArgumentTest(StoreTest):
    def test_rfc3339_bounds(self):
        self.append([ev(T0 + i * 30 * 60 * SEC, i) for i in range(5)])
        got = self.read_events("--from", "2025-11-22T10:30:00Z",
                               "--to", "2025-11-22T12:00:00Z")
        self.assertEqual([e["id"] for e in got], [1, 2, 3])
        # [from, to): the end is exclusive; offsets and fractions work.
        got = self.read_events("--from=2025-11-22T11:30:00+01:00",
                               "--to=2025-11-22 10:30:00.000000001Z")
        self.assertEqual([e["id"] for e in got], [1])
        got = self.read_events("--from", str(T0 + 1), "--to", str(T0 + HOUR))
        self.assertEqual([e["id"] for e in got], [1])
        self.assertEqual(self.read_events("--from", str(T0 + HOUR),
                                          "--to", str(T0 + HOUR)), [])

    def test_now_relative(self):
        now = time.time_ns()
        self.append([ev(now - 2 * HOUR, 1), ev(now - 10 * 60 * SEC, 2),
                     ev(now + 2 * HOUR, 3)])
        got = self.read_events("--from", "now-15m", "--to", "now")
        self.assertEqual([e["id"] for e in got], [2])
        got = self.read_events("--from", "now-1h30m")
        self.assertEqual([e["id"] for e in got], [2, 3])
        got = self.read_events("--to", "now+1h")
        self.assertEqual([e["id"] for e in got], [1, 2])

    def test_bad_times_are_usage_errors(self):
        for t in ("yesterday", "now-", "now-15x", "-5", "2025-02-30T00:00:00Z",
                  "2025-11-22T10:00:00", "1969-12-31T23:59:59Z", "",
                  "99999999999999999999", "now-100000d"):
            rc, out, err = run("read", self.store, "--from", t)
            self.assertEqual(rc, 2, t)
            self.assertEqual(out, b"")
            self.assertIn(b"usage:", err)


class WhereTest(StoreTest):
    def setUp(self):
        super().setUp()
        self.append([
            ev(T0 + 1, 1, {"host": "web-1", "level": "info"}),
            ev(T0 + 2, 2, {"host": "web-1", "level": "error"}),
            ev(T0 + 3, 3, {"host": "web-2", "level": "error"}),
            ev(T0 + 4, 4, {"host": "db-1", "level": "info"}),
            ev(T0 + 5, 5, {}),
        ])

    def ids(self, *args):
        return [e["id"] for e in self.read_events(*args)]

    def test_single_match(self):
        self.assertEqual(self.ids("--where", "host=web-1"), [1, 2])
        self.assertEqual(self.ids("--where", "level=error"), [2, 3])
        self.assertEqual(self.ids("--where", "host=nope"), [])

    def test_and_within_a_group(self):
        self.assertEqual(self.ids("--where", "host=web-1,level=error"), [2])
        self.assertEqual(self.ids("--where", "level=info,host=db-1"), [4])

    def test_or_of_groups(self):
        self.assertEqual(self.ids("--where", "host=db-1",
                                  "--where", "level=error"), [2, 3, 4])
        self.assertEqual(self.ids("--where", "host=web-1,level=error",
                                  "--where=host=db-1"), [2, 4])

    def test_wildcards(self):
        self.assertEqual(self.ids("--where", "host=*"), [1, 2, 3, 4])
        self.assertEqual(self.ids("--where", "host=web-*"), [1, 2, 3])

    def test_with_time_range(self):
        self.assertEqual(self.ids("--where", "level=error",
                                  "--from", str(T0 + 3)), [3])

    def test_bad_selectors(self):
        for sel in ("host", "=x", "host=a,", ",host=a", "host=a,level"):
            rc, _, err = run("read", self.store, "--where", sel)
            self.assertEqual(rc, 2, sel)
            self.assertIn(b"usage:", err)


class LabelsTest(StoreTest):
    """`tidemark labels DIR [--from T] [--to T]` (issue 6)."""

    def labels(self, *args, expect_rc=0):
        rc, out, err = run("labels", self.store, *args)
        self.assertEqual(rc, expect_rc, err)
        if rc:
            return err
        self.assertTrue(out.endswith(b"}\n"))
        return json.loads(out)

    def fill(self):
        # Two 1 h shards; the second has a late event; one event twice.
        self.append([
            ev(T0 + 1, 1, {"host": "web-1", "level": "info"}),
            ev(T0 + 2, 2, {"host": "web-1", "level": "error"}),
            ev(T0 + 3, 3, {"host": "web-2", "level": "error"}),
            ev(T0 + 3, 3, {"host": "web-2", "level": "error"}),
            ev(T0 + HOUR + 70 * SEC, 4, {"host": "db-1", "ü \"q\"": "v\n"}),
            ev(T0 + HOUR + 1, 5, {"host": "db-1", "level": "error"}),
            ev(T0 + HOUR + 2, 6, {}),
        ])

    def test_empty_store(self):
        self.assertEqual(self.labels(), {"labels": {}})

    def test_counts_and_shape(self):
        self.fill()
        rc, out, _ = run("labels", self.store)
        self.assertEqual(rc, 0)
        self.assertEqual(json.loads(out), {"labels": {
            "host": {"events": 5, "values": {"db-1": 2, "web-1": 2, "web-2": 1}},
            "level": {"events": 4, "values": {"error": 3, "info": 1}},
            "ü \"q\"": {"events": 1, "values": {"v\n": 1}},
        }})
        # keys and values come in bytewise order
        self.assertLess(out.index(b'"host"'), out.index(b'"level"'))
        self.assertLess(out.index(b'"db-1"'), out.index(b'"web-1"'))

    def test_range(self):
        self.fill()
        self.assertEqual(self.labels("--to", str(T0 + 3)), {"labels": {
            "host": {"events": 2, "values": {"web-1": 2}},
            "level": {"events": 2, "values": {"error": 1, "info": 1}}}})
        self.assertEqual(self.labels("--from", str(T0 + HOUR + 2)), {"labels": {
            "host": {"events": 1, "values": {"db-1": 1}},
            "ü \"q\"": {"events": 1, "values": {"v\n": 1}}}})
        self.assertEqual(self.labels("--from", str(T0 + 4), "--to",
                                     str(T0 + HOUR)), {"labels": {}})

    def test_agrees_with_read(self):
        lines = []
        for i in range(3000):
            labels = {"host": "web-%d" % (i % 7), "level": ["info", "warn", "error"][i % 3]}
            if i % 5 == 0:
                labels["scope"] = "org:acme/%d" % (i % 4)
            lines.append(ev(T0 + i * 7 * SEC, i, labels, "x" * (i % 50)))
        self.append(lines)
        for args in ((), ("--from", str(T0 + 1000 * SEC), "--to", str(T0 + 9000 * SEC))):
            counts = {}
            for e in self.read_events(*args):
                for k, v in e["labels"].items():
                    counts.setdefault(k, {}).setdefault(v, 0)
                    counts[k][v] += 1
            want = {k: {"events": sum(vs.values()), "values": vs}
                    for k, vs in counts.items()}
            self.assertEqual(self.labels(*args), {"labels": want})
            # and a selective read agrees with filtering the read
            got = self.read_events(*args, "--where", "scope=org:acme/*,level=error",
                                   "--where", "host=web-3")
            all_ = self.read_events(*args)
            self.assertEqual(got, [e for e in all_ if e["labels"].get("host") == "web-3" or (
                e["labels"].get("scope", "").startswith("org:acme/") and
                e["labels"].get("level") == "error")])

    def test_usage_errors(self):
        for args in ((), ("--from",), ("--bogus",), ("--to", "yesterday")):
            rc, _, err = run("labels", *(args if not args else (self.store, *args)))
            self.assertEqual(rc, 2, args)
            self.assertIn(b"usage:", err)
        rc, _, err = run("labels", os.path.join(self.tmp, "nope"))
        self.assertNotEqual(rc, 0)
        self.assertIn(b"tidemark:", err)


class StatTest(StoreTest):
    init_args = ("--grace", "30s")

    def test_empty(self):
        rc, out, err = run("stat", self.store)
        self.assertEqual(rc, 0, err)
        st = json.loads(out)
        self.assertEqual(list(st), [
            "shards", "events", "late_events", "bytes", "index_entries",
            "last_seq", "min_ts", "max_ts", "shard_duration_ns", "grace_ns",
            "index_interval", "keep_ns", "sealed_shards", "unsealed_shards",
            "sealed_bytes", "sealed_raw_bytes", "compression_ratio",
            "recon_bytes"])
        self.assertEqual((st["events"], st["late_events"], st["last_seq"]),
                         (0, 0, 0))
        self.assertEqual((st["min_ts"], st["max_ts"]), (-1, -1))
        self.assertEqual(st["grace_ns"], 30 * SEC)
        self.assertTrue(out.endswith(b"}\n"))

    def test_counts(self):
        mid = T0 + 30 * 60 * SEC
        self.append([ev(mid, 1, None, "x" * 100), ev(mid + HOUR, 2),
                     ev(mid - 10 * 60 * SEC, 3), ev(mid, 1, None, "x" * 100)])
        st = json.loads(run("stat", self.store)[1])
        self.assertEqual(st["shards"], 2)
        self.assertEqual(st["events"], 3)
        self.assertEqual(st["late_events"], 1)
        self.assertEqual(st["last_seq"], 3)
        self.assertEqual(st["min_ts"], mid - 10 * 60 * SEC)
        self.assertEqual(st["max_ts"], mid + HOUR)
        self.assertGreater(st["bytes"], 100)
        self.assertGreaterEqual(st["index_entries"], 0)


class SealRetainTest(StoreTest):
    """compact and retain (issue 7), from outside."""
    init_args = ("--shard-duration", "1m", "--grace", "1s")
    MIN = 60 * SEC

    def fill(self):
        lines = []
        for m in range(4):
            for i in range(300):
                ts = T0 + m * self.MIN + i * 190_000_000
                lines.append(ev(ts, i, {"host": "web-%d" % (i % 3)},
                                "GET /api/orders/%d 200 %dms" % (i * 7, i % 50)))
                if i % 25 == 0 and i:  # late: 2 s behind the newest
                    lines.append(ev(ts - 2 * SEC, 10_000 + i, None, "late %d" % i))
        self.append(lines)

    def stat(self):
        rc, out, err = run("stat", self.store)
        self.assertEqual(rc, 0, err)
        return json.loads(out)

    def test_compact_then_read_verify_stat(self):
        self.fill()
        before, _ = self.read()
        rc, out, err = run("compact", self.store)
        self.assertEqual(rc, 0, err)
        res = json.loads(out)
        self.assertEqual(res["sealed"], 3)  # the newest minute is still open
        self.assertGreater(res["bytes_before"], res["bytes_after"])
        after, _ = self.read()
        self.assertEqual(after, before)
        rc, out, err = self.verify()
        self.assertEqual(rc, 0, err)
        st = self.stat()
        self.assertEqual((st["sealed_shards"], st["unsealed_shards"]), (3, 1))
        self.assertGreater(st["compression_ratio"], 1.0)
        # A late event for a sealed shard, then a duplicate of it and of a
        # sealed event: stored once each.
        summary, _ = self.append([ev(T0 + 5 * SEC, 77, None, "very late"),
                                  ev(T0 + 5 * SEC, 77, None, "very late"),
                                  ev(T0, 0, {"host": "web-0"},
                                     "GET /api/orders/0 200 0ms")])
        self.assert_counts(summary, 1, 2, 1)
        self.assertGreater(self.stat()["recon_bytes"], 0)
        rc, out, err = run("compact", self.store)
        self.assertEqual(json.loads(out)["sealed"], 1)
        self.assertEqual(len(self.read()[0]), len(before) + 1)
        self.assertEqual(self.verify()[0], 0)

    def test_verify_after_compacting_a_few_labelled_events(self):
        # A sealed file carries no label bitmaps: verify must not ask for
        # them (it did, and exited 74 on a sound store).
        self.append([ev(T0, 1, {"host": "web-1"}, "GET /"),
                     ev(T0 + SEC, 2, {"host": "web-2", "level": "error"}, "POST /")])
        self.append([ev(T0 + 10 * self.MIN, 3, None, "a later shard")])
        rc, out, err = run("compact", self.store)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["sealed"], 1)
        rc, out, err = self.verify()
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), {"ok": True, "problems": 0})

    def test_labels_and_selectors_after_compact(self):
        # Sealed main files have no label bitmaps: counts and selective
        # reads must read them instead, and agree with what they did before.
        self.fill()
        rc, counts_before, err = run("labels", self.store)
        self.assertEqual(rc, 0, err)
        sel = ("--where", "host=web-1", "--where", "host=web-2*")
        picked_before = self.read_events(*sel)
        self.assertTrue(picked_before)
        rc, out, err = run("compact", self.store)
        self.assertEqual(rc, 0, err)
        self.assertGreater(json.loads(out)["sealed"], 0)
        rc, counts_after, err = run("labels", self.store)
        self.assertEqual(rc, 0, err)
        self.assertEqual(counts_after, counts_before)
        self.assertEqual(self.read_events(*sel), picked_before)

    def test_retain(self):
        self.fill()
        before = self.read_events()
        rc, out, err = run("retain", self.store, "--before", T0 + 2 * self.MIN)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), {"dropped_shards": 2})
        after = self.read_events()
        self.assertEqual(after, [e for e in before if e["ts"] >= T0 + 2 * self.MIN])
        # Never inside the grace window: the newest shard stays.
        rc, out, err = run("retain", self.store, "--before", T0 + 10 * self.MIN)
        self.assertEqual(json.loads(out), {"dropped_shards": 1})
        self.assertEqual(self.stat()["shards"], 1)
        self.assertEqual(self.verify()[0], 0)

    def test_keep_option(self):
        store = os.path.join(self.tmp, "kept")
        rc, _, err = run("init", store, "--shard-duration", "1m", "--grace",
                         "1s", "--keep", "2m")
        self.assertEqual(rc, 0, err)
        self.store = store
        self.fill()
        st = self.stat()
        self.assertEqual(st["keep_ns"], 2 * self.MIN)
        # The newest event is at about 3m57s: shards that ended by 1m57s go.
        self.assertEqual(st["shards"], 3)
        self.assertGreaterEqual(st["min_ts"], T0 + self.MIN)
        rc, _, err = run("init", store, "--shard-duration", "1m", "--grace", "1s")
        self.assertEqual(rc, 2, err)

    def test_usage(self):
        for args in (("compact",), ("compact", self.store, "x"),
                     ("retain", self.store), ("retain", self.store, "--before"),
                     ("retain", self.store, "--before", "yesterday"),
                     ("init", self.store + "2", "--keep", "forever")):
            rc, out, err = run(*args)
            self.assertEqual(rc, 2, (args, err))
            self.assertIn(b"usage", err, args)
        rc, _, err = run("compact", os.path.join(self.tmp, "nothing"))
        self.assertNotEqual(rc, 0)


def shard_files(store):
    root = os.path.join(store, "shards")
    found = []
    for d, _, names in os.walk(root):
        found += [os.path.join(d, n) for n in names]
    return found


class CorruptionTest(StoreTest):
    def test_flipped_byte_is_found_by_verify_and_skipped_by_read(self):
        n = 200
        events = [ev(T0 + i * SEC, i, {"h": "a"}, "payload-%04d-" % i + "z" * 80)
                  for i in range(n)]
        self.append(events)
        rc, out, err = self.verify()
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), {"ok": True, "problems": 0})
        # Damage the payload of event 100 in whichever shard file has it.
        marker = b"payload-0100-"
        hit = None
        for path in shard_files(self.store):
            with open(path, "rb") as f:
                data = f.read()
            pos = data.find(marker)
            if pos > 64:
                hit = (path, pos + len(marker) + 40)
        self.assertIsNotNone(hit, "no shard file holds the payload")
        path, pos = hit
        with open(path, "r+b") as f:
            f.seek(pos)
            b = f.read(1)
            f.seek(pos)
            f.write(bytes([b[0] ^ 0x01]))
        rel = os.path.relpath(path, self.store)

        rc, out, err = self.verify()
        self.assertEqual(rc, 74, err)
        self.assertEqual(json.loads(out)["ok"], False)
        self.assertGreaterEqual(json.loads(out)["problems"], 1)
        self.assertIn("tidemark: verify: " + rel + ": offset ", err)

        lines, err = self.read(expect_rc=74)
        self.assertIn("tidemark: skipped 1 damaged record(s); first: ", err)
        self.assertIn(os.path.basename(path), err)
        ids = [json.loads(line)["id"] for line in lines]
        self.assertEqual(ids, [i for i in range(n) if i != 100])
        self.assertNotIn(b"payload-0100", b"".join(lines))


class UsageTest(StoreTest):
    def test_usage_errors(self):
        s = self.store
        for args in ((), ("frobnicate",), ("read",), ("append",), ("stat",),
                     ("verify",), ("init",), ("read", s, "--bogus"),
                     ("read", s, "--from"), ("read", s, s),
                     ("stat", s, "extra"), ("verify", s, "--fast"),
                     ("append", s, "--durability", "always"),
                     ("append", s, "--durability"),
                     ("append", s, "--sync-interval-ms", "0"),
                     ("append", s, "--sync-interval-events", "-3"),
                     ("append", s, "--sync-interval-ms", "5000000000"),
                     ("read", s, "--to", "tomorrow")):
            rc, out, err = run(*args)
            self.assertEqual(rc, 2, args)
            self.assertEqual(out, b"", args)
            self.assertTrue(err.startswith(b"tidemark: ") or
                            err.startswith(b"usage:"), (args, err))
            self.assertIn(b"usage", err, args)

    def test_help_and_version(self):
        for flag in ("--help", "-h"):
            rc, out, err = run(flag)
            self.assertEqual(rc, 0)
            self.assertIn(b"usage: tidemark", out)
            self.assertEqual(err, b"")
        self.assertEqual(run("--version")[:2], (0, b"tidemark 0.1.0\n"))

    def test_missing_store_is_an_io_error(self):
        missing = os.path.join(self.tmp, "nothing-here")
        for cmd in ("read", "stat", "verify", "append"):
            rc, out, err = run(cmd, missing)
            self.assertEqual(rc, 74, cmd)
            self.assertTrue(err.startswith(b"tidemark: "), err)

    def test_options_after_double_dash_are_operands(self):
        self.append([ev(T0, 1)])
        rc, out, _ = run("read", "--from", str(T0), "--", self.store)
        self.assertEqual((rc, out), (0, out_line(T0, 1) + b"\n"))


class LockTest(StoreTest):
    def test_second_writer_gets_75_with_pid(self):
        holder = subprocess.Popen([TIDEMARK, "append", self.store],
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        try:
            # Wait until the holder has the lock (its pid is in LOCK), so
            # that the probe below cannot take the lock first.
            lock = os.path.join(self.store, "LOCK")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and holder.poll() is None:
                try:
                    with open(lock, "rb") as f:
                        if f.read().strip() == str(holder.pid).encode():
                            break
                except FileNotFoundError:
                    pass
                time.sleep(0.02)
            rc, out, err = run("append", self.store,
                               stdin=lines_of(ev(T0 + 9, 9)))
            self.assertEqual(rc, 75, err)
            self.assertIn(str(holder.pid).encode(), err)
            self.assertTrue(err.startswith(b"tidemark: "), err)
            # Readers are not blocked by the writer.
            self.assertEqual(run("stat", self.store)[0], 0)
            holder.stdin.write(lines_of(ev(T0, 1)))
            holder.stdin.close()
            self.assertEqual(holder.wait(timeout=60), 0)
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
        self.assert_counts(summary_of(holder.stderr.read()), 1, 0, 0)
        holder.stdout.close()
        holder.stderr.close()
        # The holder's event is there; the refused probe stored nothing.
        ids = [e["id"] for e in self.read_events()]
        self.assertIn(1, ids)
        self.assertNotIn(9, ids)


if __name__ == "__main__":
    if not os.path.isabs(TIDEMARK) and os.sep in TIDEMARK:
        TIDEMARK = os.path.abspath(TIDEMARK)
    unittest.main(verbosity=2)
