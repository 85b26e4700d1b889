#!/usr/bin/env python3
"""libmicrohttpd is loaded at run time, by `tidemark serve` with --http
only (src/cli/mhd_load.c): no other command maps it or the TLS libraries
it depends on, and a serve that cannot load it says so and exits 74.

What a process loaded is read from the dynamic loader's own log
(LD_DEBUG=files, written to LD_DEBUG_OUTPUT.PID). Python standard library
only."""

import contextlib
import glob
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import TIDEMARK, Server, run  # noqa: E402

EVENT = b'{"ts":1763805600000000000,"id":1,"payload":"x"}\n'
# "file=libz.so.1 [0];  needed by ./tidemark [0]" or, for dlopen,
# "... dynamically loaded by ./tidemark [0]".
LOADED = re.compile(r"file=(\S+) \[\d+\];\s+(needed|dynamically loaded) by")


@contextlib.contextmanager
def environ(**kw):
    """os.environ with kw set, for the processes started inside."""
    old = {k: os.environ.get(k) for k in kw}
    os.environ.update(kw)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v


class HttpLibTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tidemark-mhd-")
        self.tmp = self._tmp.name
        self.store = os.path.join(self.tmp, "store")
        rc, _, err = run("init", self.store)
        self.assertEqual(rc, 0, err)
        self.srv = None
        self.logs = 0

    def tearDown(self):
        if self.srv:
            self.srv.kill()
        self._tmp.cleanup()

    def ld_env(self):
        """An environment logging loads to a new file prefix."""
        self.logs += 1
        self.log = os.path.join(self.tmp, "ld%d" % self.logs)
        return {"LD_DEBUG": "files", "LD_DEBUG_OUTPUT": self.log}

    def loaded(self):
        """{file name: "needed" or "dynamically loaded"} of the process
        run with the last ld_env()."""
        files = glob.glob(self.log + ".*")
        self.assertEqual(len(files), 1, files)
        with open(files[0], encoding="utf-8", errors="replace") as f:
            found = dict(LOADED.findall(f.read()))
        # The log works: libc is in every one.
        self.assertIn("libc.so.6", found)
        return found

    def assert_no_http_lib(self, what):
        found = self.loaded()
        for name in found:
            for lib in ("libmicrohttpd", "libgnutls", "libnettle", "libgmp"):
                self.assertFalse(name.startswith(lib),
                                 "%s loaded %s" % (what, name))


class TestNotLoaded(HttpLibTest):
    def test_commands_do_not_load_it(self):
        for args, stdin in ((["--version"], b""),
                            (["append", self.store], EVENT),
                            (["read", self.store], b""),
                            (["stat", self.store], b""),
                            (["verify", self.store], b""),
                            # The replica server every ssh sync starts.
                            (["serve", "--stdio", self.store], b"")):
            env = dict(os.environ, **self.ld_env())
            p = subprocess.run([TIDEMARK, *args], input=stdin, env=env,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            self.assertEqual(p.returncode, 0, (args, p.stderr))
            self.assert_no_http_lib(" ".join(args))

    def test_serve_without_http_does_not_load_it(self):
        with environ(**self.ld_env()):
            self.srv = Server(self.store, "--http", "off")
        self.srv.syslog_send(b"<13>1 2025-11-22T10:00:00Z h app - - - hi\n")
        self.assertEqual(self.srv.stop(), 0, self.srv.stderr())
        self.assert_no_http_lib("serve --http off")

    def test_serve_loads_it_when_http_starts(self):
        with environ(**self.ld_env()):
            self.srv = Server(self.store, syslog=False)
        status, _, data = self.srv.request("GET", "/healthz")
        self.assertEqual((status, data), (200, b"ok\n"))
        self.assertEqual(self.srv.stop(), 0, self.srv.stderr())
        found = self.loaded()
        self.assertEqual(found.get("libmicrohttpd.so.12"),
                         "dynamically loaded", found)


class TestCannotLoad(HttpLibTest):
    """A library that cannot be loaded, put first in the search path with
    LD_LIBRARY_PATH (both names mhd_load.c tries)."""

    def bad_lib_dir(self, content):
        d = os.path.join(self.tmp, "lib")
        os.makedirs(d, exist_ok=True)
        for name in ("libmicrohttpd.so.12", "libmicrohttpd.so"):
            with open(os.path.join(d, name), "wb") as f:
                f.write(content)
        return d

    def serve_fails(self, lib_dir):
        p = subprocess.run([TIDEMARK, "serve", self.store, "--http",
                            "127.0.0.1:0"],
                           env=dict(os.environ, LD_LIBRARY_PATH=lib_dir),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 74, err)
        self.assertIn("tidemark: cannot load libmicrohttpd: ", err)
        self.assertIn(os.path.join(lib_dir, "libmicrohttpd.so.12"), err)
        self.assertIn("install libmicrohttpd12", err)
        # Nothing was started: no socket, no store opened.
        self.assertNotIn("listening", err)
        self.assertNotIn("serving", err)
        return err

    def test_not_a_library(self):
        d = self.bad_lib_dir(b"not an ELF file\n")
        self.serve_fails(d)
        # The store is untouched and serve without HTTP needs no library.
        with environ(LD_LIBRARY_PATH=d):
            self.srv = Server(self.store, "--http", "off")
        self.srv.syslog_send(b"<13>1 2025-11-22T10:00:00Z h app - - - hi\n")
        self.assertEqual(self.srv.stop(), 0, self.srv.stderr())
        rc, out, err = run("read", self.store)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.count(b"\n"), 1, out)

    def test_library_without_the_functions(self):
        # A real shared library of another name: zlib, which tidemark
        # links, found by ldd.
        p = subprocess.run(["ldd", TIDEMARK], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        m = re.search(rb"libz\.so\.1 => (\S+)", p.stdout)
        if not m:
            self.skipTest("no libz.so.1 in ldd's output")
        with open(m.group(1), "rb") as f:
            d = self.bad_lib_dir(f.read())
        err = self.serve_fails(d)
        self.assertIn("undefined symbol: MHD_start_daemon", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
