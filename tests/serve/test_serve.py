#!/usr/bin/env python3
"""End-to-end tests of `tidemark serve`: the real binary on real stores,
over real loopback sockets (issue 8). Python standard library only."""

import gzip
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import SEC, Server, run, wait_for  # noqa: E402

T0 = 1763805600 * SEC  # 2025-11-22T10:00:00Z


def ev(ts, id=None, labels=None, payload="x"):
    d = {"ts": ts}
    if id is not None:
        d["id"] = id
    if labels is not None:
        d["labels"] = labels
    d["payload"] = payload
    return json.dumps(d, separators=(",", ":"))


def body(*lines):
    return "".join(line + "\n" for line in lines).encode()


class ServeTest(unittest.TestCase):
    serve_args = ()

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tidemark-serve-")
        self.tmp = self._tmp.name
        self.store = os.path.join(self.tmp, "store")
        rc, _, err = run("init", self.store)
        self.assertEqual(rc, 0, err)
        self.srv = None

    def tearDown(self):
        if self.srv:
            self.srv.kill()
        self._tmp.cleanup()

    def start(self, *args, **kw):
        self.srv = Server(self.store, *(self.serve_args + args), **kw)
        return self.srv

    def stop(self):
        rc = self.srv.stop()
        self.assertEqual(rc, 0, self.srv.stderr())
        self.assertIn("tidemark: stopped", self.srv.stderr())

    def read(self, *args):
        rc, out, err = run("read", self.store, *args)
        self.assertEqual(rc, 0, err)
        return out

    def events(self, *args):
        return [json.loads(line) for line in self.read(*args).splitlines()]

    def assert_ok(self, resp, appended=None, duplicates=0, late=0):
        status, _, data = resp
        self.assertEqual(status, 200, data)
        r = json.loads(data)
        if appended is not None:
            self.assertEqual(r, {"appended": appended,
                                 "duplicates": duplicates, "late": late})
        return r

    def assert_error(self, resp, status, text):
        st, headers, data = resp
        self.assertEqual(st, status, data)
        msg = json.loads(data)["error"]
        self.assertIn(text, msg)
        return headers


class TestEvents(ServeTest):
    def test_post_read_back_as_cli_prints(self):
        s = self.start()
        lines = [ev(T0 + i * 4 * SEC, id=i, labels={"host": "web-%d" % (i % 3)},
                    payload="GET /%d" % i) for i in range(50)]
        self.assert_ok(s.post("/v1/events", body(*lines)), 50)
        # Retried: every event is a duplicate, nothing stored twice.
        self.assert_ok(s.post("/v1/events", body(*lines)), 0, duplicates=50)
        # A late one (past the 60 s grace) is counted as such.
        self.assert_ok(s.post("/v1/events", body(ev(T0 + 1))), 1, late=1)
        for query, args in [
                ("", []),
                ("?from=%d&to=%d" % (T0 + 5 * SEC, T0 + 9 * SEC),
                 ["--from", T0 + 5 * SEC, "--to", T0 + 9 * SEC]),
                ("?where=host%3Dweb-1&where=host%3Dweb-2",
                 ["--where", "host=web-1", "--where", "host=web-2"]),
                ("?from=2025-11-22T10:00:10Z&to=now", ["--from",
                 "2025-11-22T10:00:10Z", "--to", "now"])]:
            st, headers, data = s.request("GET", "/v1/events" + query)
            self.assertEqual(st, 200, data)
            self.assertEqual(headers["Content-Type"], "application/x-ndjson")
            self.assertEqual(data, self.read(*args), query)
        self.assertEqual(len(self.events()), 51)
        self.stop()
        rc, out, err = run("verify", self.store)
        self.assertEqual(rc, 0, out + err)

    def test_large_read_streams(self):
        s = self.start("--durability", "none")
        for b in range(5):
            self.assert_ok(s.post("/v1/events", body(*[
                ev(T0 + (b * 2000 + i) * 1000, payload="p" * 200)
                for i in range(2000)])), 2000)
        st, _, data = s.request("GET", "/v1/events")
        self.assertEqual(st, 200)
        self.assertEqual(data.count(b"\n"), 10000)
        self.assertEqual(data, self.read())

    def test_bad_query(self):
        s = self.start()
        self.assert_error(s.request("GET", "/v1/events?from=yesterday"), 400,
                          "bad from 'yesterday'")
        self.assert_error(s.request("GET", "/v1/events?where=nokey"), 400,
                          "bad where")
        self.assert_error(s.request("GET", "/v1/events?limit=5"), 400,
                          "unknown query parameter 'limit'")

    def test_gzip(self):
        s = self.start()
        part1 = gzip.compress(body(ev(T0, id=1), ev(T0 + 1, id=2)))
        part2 = gzip.compress(body(ev(T0 + 2, id=3)))
        self.assert_ok(s.post("/v1/events", part1 + part2,
                              headers={"Content-Encoding": "gzip"}), 3)
        self.assertEqual([e["id"] for e in self.events()], [1, 2, 3])
        self.assert_error(s.post("/v1/events", part1[:-9],
                                 headers={"Content-Encoding": "gzip"}),
                          400, "bad gzip body")
        self.assert_error(s.post("/v1/events", b"not gzip",
                                 headers={"Content-Encoding": "gzip"}),
                          400, "bad gzip body")
        self.assert_error(s.post("/v1/events", part1,
                                 headers={"Content-Encoding": "br"}),
                          415, "Content-Encoding")
        self.assertEqual(len(self.events()), 3)

    def test_bad_line_stores_nothing_of_the_request(self):
        s = self.start()
        good = [ev(T0 + i, id=i) for i in range(10)]
        for bad, what in [('{"ts":-5}', '"ts" is negative'),
                          ('{"ts":1,"id":1', "not valid JSON"),
                          ('{"ts":1,"color":"red"}', "color"),
                          ('{"ts":1,"payload_b64":"@@@@"}', "base64"),
                          ('\xff', "not valid JSON")]:
            data = body(*good[:5]) + bad.encode("latin-1") + b"\n" + \
                body(*good[5:])
            self.assert_error(s.post("/v1/events", data), 400,
                              "line 6: ")
            self.assert_error(s.post("/v1/events", data), 400, what)
        self.assertEqual(self.read(), b"")
        # Still serving.
        self.assert_ok(s.post("/v1/events", body(*good)), 10)

    def test_routes_and_methods(self):
        s = self.start()
        self.assert_error(s.request("GET", "/nope"), 404, "no such path")
        self.assert_error(s.request("DELETE", "/v1/events"), 405,
                          "method not allowed")
        self.assert_error(s.request("GET", "/loki/api/v1/push"), 405,
                          "method not allowed")
        st, _, data = s.request("GET", "/healthz")
        self.assertEqual((st, data), (200, b"ok\n"))
        self.assert_ok(s.post("/v1/events", b""), 0)
        self.assert_ok(s.post("/v1/events", b"\n  \n"), 0)

    def test_metrics(self):
        s = self.start()
        self.assert_ok(s.post("/v1/events", body(ev(T0), ev(T0 + 1))), 2)
        self.assert_ok(s.post("/v1/events", body(ev(T0))), 0, duplicates=1)
        self.assert_error(s.post("/v1/events", b"{"), 400, "JSON")
        st, headers, data = s.request("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))
        m = {}
        for line in data.decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                m[k] = float(v)
        self.assertEqual(m["tidemark_events_appended_total"], 2)
        self.assertEqual(m["tidemark_events_duplicate_total"], 1)
        self.assertEqual(m["tidemark_requests_total{source=\"events\"}"], 3)
        self.assertEqual(
            m["tidemark_request_errors_total{source=\"events\"}"], 1)
        self.assertEqual(m["tidemark_append_duration_seconds_count"], 2)
        self.assertEqual(
            m["tidemark_append_duration_seconds_bucket{le=\"+Inf\"}"], 2)
        self.assertEqual(m["tidemark_store_events"], 2)
        self.assertEqual(m["tidemark_store_shards"], 1)
        self.assertGreater(m["tidemark_store_bytes"], 0)


class TestLoki(ServeTest):
    def push(self, s, streams, **kw):
        return s.post("/loki/api/v1/push", json.dumps({"streams": streams}),
                      headers={"Content-Type": "application/json"}, **kw)

    def test_push_and_retry(self):
        s = self.start()
        streams = [
            {"stream": {"job": "nginx", "host": "web-1"},
             "values": [[str(T0 + i), "GET /%d" % i] for i in range(20)]},
            {"stream": {"job": "app"},
             "values": [[str(T0), "same line"], [str(T0), "same line"],
                        [str(T0 + 5), "traced", {"trace_id": "abc"}]]}]
        st, headers, data = self.push(s, streams)
        self.assertEqual(st, 204, data)
        self.assertEqual(json.loads(headers["X-Tidemark-Result"]),
                         {"appended": 22, "duplicates": 1, "late": 0})
        st, headers, _ = self.push(s, streams)
        self.assertEqual(st, 204)
        self.assertEqual(json.loads(headers["X-Tidemark-Result"]),
                         {"appended": 0, "duplicates": 23, "late": 0})
        evs = self.events()
        self.assertEqual(len(evs), 22)
        traced = [e for e in evs if e["payload"] == "traced"][0]
        self.assertEqual(traced["labels"], {"job": "app", "trace_id": "abc"})
        # The id is the one `tidemark append` gives a line without "id".
        other = os.path.join(self.tmp, "other")
        run("init", other)
        rc, _, err = run("append", other, stdin=body(
            ev(T0 + 5, labels={"job": "app", "trace_id": "abc"},
               payload="traced")))
        self.assertEqual(rc, 0, err)
        rc, out, _ = run("read", other)
        self.assertEqual(json.loads(out)["id"], traced["id"])

    def test_gzip_push(self):
        s = self.start()
        data = gzip.compress(json.dumps({"streams": [
            {"stream": {"a": "b"}, "values": [[str(T0), "zipped"]]}]}).encode())
        st, _, out = s.post("/loki/api/v1/push", data, headers={
            "Content-Type": "application/json", "Content-Encoding": "gzip"})
        self.assertEqual(st, 204, out)
        self.assertEqual(self.events()[0]["payload"], "zipped")

    def test_malformed(self):
        s = self.start()
        ok = {"stream": {"a": "b"}, "values": [[str(T0), "fine"]]}
        cases = [
            (b"{", "not valid JSON"),
            (b"[]", 'expected {"streams":[...]}'),
            (b'{"streams":{}}', 'expected {"streams":[...]}'),
            (b'{"streams":[{"stream":{"a":"b"},"values":[["12","x"]]}],'
             b'"streams":[]}', "not valid JSON"),
        ]
        for data, what in cases:
            self.assert_error(s.post("/loki/api/v1/push", data), 400, what)
        streams_cases = [
            ([ok, {"values": [[str(T0), "x"]]}], "streams[1]: no \"stream\""),
            ([ok, {"stream": {"a": 1}, "values": []}], "not a string"),
            ([ok, {"stream": {"a": "b"}, "values": [[T0, "x"]]}],
             "streams[1].values[0]: the timestamp is not a string"),
            ([ok, {"stream": {"a": "b"}, "values": [["-1", "x"]]}],
             "not a string of nanoseconds"),
            ([ok, {"stream": {"a": "b"}, "values": [["99999999999999999999",
                                                     "x"]]}], "digits"),
            ([ok, {"stream": {"a": "b"}, "values": [[str(T0)]]}],
             "not [timestamp, line]"),
            ([ok, {"stream": {"a": "b"}, "values": [[str(T0), 5]]}],
             "the line is not a string"),
            ([ok, {"stream": {"a": "b\u0000c"}, "values": []}], "holds NUL"),
            ([ok, {"stream": {"a": "b"}, "values": [[str(T0), "x",
                                                     {"a": "c"}]]}],
             "repeats a stream label"),
            ([ok, {"stream": {"k%d" % i: "v" for i in range(65)},
                   "values": [[str(T0), "x"]]}], "more than 64 labels"),
        ]
        for streams, what in streams_cases:
            self.assert_error(self.push(s, streams), 400, what)
        self.assert_error(s.post("/loki/api/v1/push", b"\x00\x01", headers={
            "Content-Type": "application/x-protobuf"}), 415, "protobuf")
        self.assertEqual(self.read(), b"")
        st, _, _ = self.push(s, [ok])
        self.assertEqual(st, 204)


class TestLimits(ServeTest):
    serve_args = ("--max-body", "64k", "--max-line", "1k",
                  "--idle-timeout", "1s", "--request-timeout", "3s")

    def test_oversized(self):
        s = self.start()
        big = body(*[ev(T0 + i, payload="x" * 100) for i in range(1000)])
        self.assertGreater(len(big), 64 << 10)
        self.assert_error(s.post("/v1/events", big), 413,
                          "larger than the limit of 65536")

        # Chunked, so the size is known only as it arrives.
        def chunks():
            for i in range(0, len(big), 4096):
                yield big[i:i + 4096]
        c = http.client.HTTPConnection("127.0.0.1", s.http_port, timeout=30)
        c.request("POST", "/v1/events", body=chunks(), encode_chunked=True)
        r = c.getresponse()
        self.assert_error((r.status, {}, r.read()), 413,
                          "larger than the limit")
        c.close()
        # A gzip bomb: small on the wire, too large once inflated.
        bomb = gzip.compress(b"\n" * (10 << 20))
        self.assertLess(len(bomb), 64 << 10)
        self.assert_error(s.post("/v1/events", bomb, headers={
            "Content-Encoding": "gzip"}), 413, "once decompressed")
        self.assert_error(s.post("/loki/api/v1/push", big), 413, "limit")
        # Headers past the server's memory limit.
        st, _, _ = s.request("GET", "/healthz", headers={"X-Big": "a" * 70000})
        self.assertGreaterEqual(st, 400)
        self.assertEqual(self.read(), b"")
        self.assert_ok(s.post("/v1/events", big[:1000].rsplit(b"\n", 1)[0]),
                       None)

    def test_slow_clients(self):
        s = self.start()
        # Connects and says nothing: closed after the idle timeout.
        idle = socket.create_connection(("127.0.0.1", s.http_port))
        # Sends headers and half a body, then stalls.
        stall = socket.create_connection(("127.0.0.1", s.http_port))
        stall.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 100\r\n\r\n" + ev(T0).encode()[:10])
        # Sends a byte every 0.5 s: never idle, but too slow.
        drip = socket.create_connection(("127.0.0.1", s.http_port))
        line = body(ev(T0 + 1, id=1))
        drip.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: %d\r\n\r\n" % (len(line) + 20))
        # Meanwhile others are served.
        t = time.monotonic()
        self.assert_ok(s.post("/v1/events", body(ev(T0 + 2, id=2))), 1)
        for sock in (idle, stall):
            sock.settimeout(10)
            self.assertEqual(sock.recv(100), b"")  # closed by the server
        self.assertLess(time.monotonic() - t, 5)
        closed = False
        for i in range(len(line)):
            try:
                drip.sendall(line[i:i + 1])
            except OSError:
                closed = True
                break
            time.sleep(0.5)
            if time.monotonic() - t > 8:
                break
        if not closed:
            drip.settimeout(5)
            try:
                self.assertEqual(drip.recv(100), b"")
            except ConnectionResetError:
                pass
        self.assertLess(time.monotonic() - t, 10)
        for sock in (idle, stall, drip):
            sock.close()
        self.assertEqual([e["id"] for e in self.events()], [2])
        self.assert_ok(s.post("/v1/events", body(ev(T0 + 3, id=3))), 1)


class TestTokens(ServeTest):
    def test_bearer_tokens(self):
        path = os.path.join(self.tmp, "tokens")
        with open(path, "w") as f:
            f.write("# shippers\nsecret-one\n\n  secret-two  \n")
        s = self.start("--token-file", path)
        data = body(ev(T0))
        for headers in [{}, {"Authorization": "Bearer nope"},
                        {"Authorization": "Basic c2VjcmV0LW9uZQ=="},
                        {"Authorization": "Bearer secret-on"},
                        {"Authorization": "Bearer secret-one2"}]:
            h = self.assert_error(s.post("/v1/events", data, headers=headers),
                                  401, "bearer token")
            self.assertIn("Bearer", h["WWW-Authenticate"])
            self.assert_error(s.request("GET", "/v1/events", headers=headers),
                              401, "bearer token")
            self.assert_error(s.request("GET", "/metrics", headers=headers),
                              401, "bearer token")
            self.assert_error(s.post("/loki/api/v1/push", b"{}",
                                     headers=headers), 401, "bearer token")
        self.assertEqual(self.read(), b"")
        st, _, _ = s.request("GET", "/healthz")
        self.assertEqual(st, 200)
        self.assert_ok(s.post("/v1/events", data, headers={
            "Authorization": "Bearer secret-one"}), 1)
        self.assert_ok(s.post("/v1/events", body(ev(T0 + 1)), headers={
            "Authorization": "bearer secret-two"}), 1)
        st, _, _ = s.request("GET", "/metrics", headers={
            "Authorization": "Bearer secret-two"})
        self.assertEqual(st, 200)

    def test_bad_token_files_and_options(self):
        empty = os.path.join(self.tmp, "empty")
        with open(empty, "w") as f:
            f.write("# none\n")
        for args, code, what in [
                (["--token-file", empty], 2, "holds no token"),
                (["--token-file", os.path.join(self.tmp, "missing")], 2,
                 "missing"),
                (["--http", "localhost:80"], 2, "numeric"),
                (["--http", "127.0.0.1"], 2, "ADDR:PORT"),
                (["--http", "off"], 2, "nothing to serve"),
                (["--max-body", "0"], 2, "--max-body"),
                (["--max-connections", "1k"], 2, "expected 1 to 65536"),
                (["--idle-timeout", "5ms"], 2, "--idle-timeout"),
                (["--frobnicate"], 2, "unknown option"),
                ([], 2, "missing DIR")]:
            argv = ["serve"] + ([self.store] if args else []) + args
            rc, _, err = run(*argv, timeout=10)
            self.assertEqual(rc, code, (args, err))
            self.assertIn(what, err.decode())

    def test_second_writer_refused(self):
        self.start()
        rc, _, err = run("serve", self.store, "--http", "127.0.0.1:0",
                         timeout=10)
        self.assertEqual(rc, 75, err)
        rc, _, err = run("append", self.store, stdin=body(ev(T0)))
        self.assertEqual(rc, 75, err)
        self.assertIn(str(self.srv.proc.pid), err.decode())


class TestSyslog(ServeTest):
    def test_formats_and_framings(self):
        s = self.start()
        msgs = [
            b"<165>1 2026-11-22T10:00:00.123456Z web-1 nginx 42 ID1 "
            b"[x@1 a=\"b\"] \xef\xbb\xbfGET / 200",
            b"<34>Nov 22 10:00:01 db-1 su[7]: 'su root' failed",
            b"<13>1 - - - - - -",   # nothing but the priority: received now
        ]
        octet = b"".join(b"%d %s" % (len(m), m) for m in msgs[:2])
        t_before = time.time_ns()
        s.syslog_send(octet)
        s.syslog_send(b"\n".join(msgs) + b"\r\n<14>tail without newline")
        t_after = time.time_ns()
        evs = wait_for(lambda: len(self.events()) == 4 and self.events())
        self.assertTrue(evs, self.events())
        by_payload = {e["payload"]: e for e in evs}
        a = by_payload["GET / 200"]
        self.assertEqual(a["ts"], 1795341600123456000)
        self.assertEqual(a["labels"], {"host": "web-1", "app": "nginx",
                                       "severity": "notice",
                                       "facility": "local4"})
        b = by_payload["'su root' failed"]
        self.assertEqual(b["labels"], {"host": "db-1", "app": "su",
                                       "severity": "crit",
                                       "facility": "auth"})
        self.assertEqual(b["ts"] % SEC, 0)
        c = by_payload[""]
        self.assertEqual(c["labels"], {"severity": "notice",
                                       "facility": "user"})
        self.assertTrue(t_before <= c["ts"] <= t_after)
        d = by_payload["tail without newline"]
        self.assertEqual(d["labels"]["severity"], "info")

    def test_bad_input(self):
        s = self.start("--max-line", "200")
        # A bad message is skipped; the connection goes on.
        s.syslog_send(b"garbage\n<13>1 2026-99-01T00:00:00Z h a - - - x\n"
                      b"<13>1 - h a - - - kept\n")
        wait_for(lambda: self.events())
        self.assertEqual([e["payload"] for e in self.events()], ["kept"])
        # A broken frame closes the connection; what came before stays.
        for data in [b"<13>1 - h a - - - before\n999 <13>x",
                     b"<13>1 - h a - - - before2\n" + b"<13>" + b"y" * 300 +
                     b"\n<13>1 - h a - - - after\n",
                     b"<13>1 - h a - - - before3\n12x <13>1"]:
            s.syslog_send(data)
        wait_for(lambda: len(self.events()) == 4)
        self.assertEqual(sorted(e["payload"] for e in self.events()),
                         ["before", "before2", "before3", "kept"])
        self.assertIn("closing a connection", s.stderr())
        self.assertIn("skipping a message", s.stderr())
        st, _, data = s.request("GET", "/metrics")
        self.assertIn(b'tidemark_request_errors_total{source="syslog"} 5',
                      data)

    def test_stop_commits_what_was_received(self):
        s = self.start()
        conn = s.syslog_send(b"".join(b"<13>1 - h a - - - m%d\n" % i
                                      for i in range(100)), close=False)
        time.sleep(0.3)
        self.stop()
        conn.close()
        self.assertEqual(len(self.events()), 100)


class TestStop(ServeTest):
    def test_sigterm_finishes_requests_in_progress(self):
        s = self.start()
        # A request whose body is still coming when SIGTERM arrives.
        sock = socket.create_connection(("127.0.0.1", s.http_port))
        data = body(*[ev(T0 + i, id=i) for i in range(100)])
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(data) + data[:100])
        time.sleep(0.3)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # New connections are refused now.
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", s.http_port), timeout=2)
        sock.sendall(data[100:])
        sock.settimeout(10)
        reply = sock.recv(4096)
        self.assertIn(b"200 OK", reply)
        self.assertIn(b'"appended":100', reply)
        sock.close()
        self.assertEqual(s.proc.wait(20), 0, s.stderr())
        self.assertEqual(len(self.events()), 100)
        rc, out, err = run("verify", self.store)
        self.assertEqual(rc, 0, out + err)
        # The lock is released.
        rc, _, err = run("append", self.store, stdin=body(ev(T0 + 500)))
        self.assertEqual(rc, 0, err)


class TestKill(ServeTest):
    """SIGKILL during a push load, under batch durability: no request that
    was answered 2xx is lost, and after the shipper retries what was not
    answered, every event is stored exactly once."""

    def test_sigkill_during_push(self):
        rng = random.Random(8)
        n_req, per_req = 800, 50
        reqs = [[ev(T0 + rng.randrange(0, 3600 * SEC), id=rng.randrange(1 << 32),
                    labels={"req": str(r)}, payload="r%d-%d" % (r, i))
                 for i in range(per_req)] for r in range(n_req)]
        answered = set()
        lock = threading.Lock()
        for kill_round in range(3):
            s = self.start("--durability", "batch")
            todo = [r for r in range(n_req) if r not in answered]
            stop = threading.Event()

            def pusher(mine):
                for r in mine:
                    if stop.is_set():
                        return
                    try:
                        st, _, _ = s.post("/v1/events", body(*reqs[r]),
                                          timeout=10)
                    except OSError:
                        return
                    if st == 200:
                        with lock:
                            answered.add(r)
            threads = [threading.Thread(target=pusher, args=(todo[k::4],))
                       for k in range(4)]
            for t in threads:
                t.start()
            if kill_round < 2:
                # Kill once a random share of what is left was answered,
                # so the kill always lands in the middle of the load.
                goal = len(answered) + int(len(todo) * (0.1 + rng.random() * 0.4))
                wait_for(lambda: len(answered) >= goal, 60, step=0.002)
                with lock:
                    acked = set(answered)
                s.proc.kill()
                s.proc.wait(10)
                stop.set()
                for t in threads:
                    t.join(20)
                # The kill came during the load, not after it.
                self.assertLess(len(acked), n_req)
                print("kill %d: %d of %d requests answered" %
                      (kill_round, len(acked), n_req), file=sys.stderr)
                # Every request answered before the kill is there whole.
                stored = self.events()
                got = {}
                for e in stored:
                    got.setdefault(int(e["labels"]["req"]), []).append(e)
                for r in acked:
                    self.assertEqual(len(got.get(r, [])), per_req, r)
                # Any request is there whole or not at all (one batch).
                for r, es in got.items():
                    self.assertEqual(len(es), per_req, r)
            else:
                for t in threads:
                    t.join(120)
                self.stop()
        self.assertEqual(len(answered), n_req)
        stored = self.events()
        self.assertEqual(len(stored), n_req * per_req)
        keys = {(e["ts"], e["id"], e["payload"]) for e in stored}
        self.assertEqual(len(keys), n_req * per_req)
        rc, out, err = run("verify", self.store)
        self.assertEqual(rc, 0, out + err)


class TestFullDisk(ServeTest):
    """A full disk gets 503 and stores nothing of the request; once there is
    room again, the retried request is stored."""

    def setUp(self):
        super().setUp()
        self.mnt = os.path.join(self.tmp, "small")
        os.mkdir(self.mnt)
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a small tmpfs")
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs",
                            self.mnt], capture_output=True)
        if p.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: %s" % p.stderr.decode())
        self.store = os.path.join(self.mnt, "store")
        rc, _, err = run("init", self.store)
        self.assertEqual(rc, 0, err)

    def tearDown(self):
        if self.srv:
            self.srv.kill()
        subprocess.run(["umount", self.mnt])
        super().tearDown()

    def test_full_disk_503_then_retry(self):
        s = self.start("--durability", "batch")
        filler = os.path.join(self.mnt, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        req = body(*[ev(T0 + i, id=i, payload="y" * 1000) for i in range(200)])
        st, headers, data = s.post("/v1/events", req)
        self.assertEqual(st, 503, data)
        self.assertEqual(headers.get("Retry-After"), "5")
        self.assertIn("error", json.loads(data))
        st, _, _ = s.request("GET", "/healthz")
        self.assertEqual(st, 200)
        os.unlink(filler)
        st, _, data = s.post("/v1/events", req)
        self.assertEqual(st, 200, data)
        self.assertEqual(json.loads(data)["appended"], 200)
        self.stop()
        self.assertEqual(len(self.events()), 200)
        rc, out, err = run("verify", self.store)
        self.assertEqual(rc, 0, out + err)


class TestAppendIdle(ServeTest):
    """`tidemark append` fed by a shipper that keeps its pipe open (rsyslog's
    omprog) commits each line when its input goes quiet."""

    def test_lines_committed_while_pipe_open(self):
        from serve_util import TIDEMARK
        p = subprocess.Popen([TIDEMARK, "append", self.store, "--durability",
                              "batch"], stdin=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            for i in range(3):
                p.stdin.write(body(ev(T0 + i, id=i)))
                p.stdin.flush()
                self.assertTrue(wait_for(lambda: len(self.events()) == i + 1,
                                         10), i)
            self.assertIsNone(p.poll())
        finally:
            p.stdin.close()
            err = p.stderr.read()
            p.stderr.close()
            self.assertEqual(p.wait(10), 0, err)
        self.assertIn(b'"appended":3', err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
