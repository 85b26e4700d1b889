"""Helpers of the `tidemark serve` tests: start a server on loopback ports
chosen by the kernel, talk HTTP and syslog to it, run the CLI.
Python standard library only."""

import http.client
import os
import signal
import socket
import subprocess
import threading
import time

TIDEMARK = os.environ.get("TIDEMARK", "tidemark")
SEC = 1_000_000_000


def run(*args, stdin=b"", timeout=120):
    p = subprocess.run([TIDEMARK, *map(str, args)], input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class Server:
    """`tidemark serve DIR` on 127.0.0.1 with kernel-chosen ports."""

    def __init__(self, store, *args, syslog=True):
        cmd = [TIDEMARK, "serve", store, "--http", "127.0.0.1:0", *args]
        if syslog:
            cmd += ["--syslog", "127.0.0.1:0"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.lines = []
        self.http_port = self.syslog_port = None
        ready = threading.Event()

        def reader():
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.lines.append(line)
                if "http listening on" in line:
                    self.http_port = int(line.rsplit(":", 1)[1])
                if "syslog listening on" in line:
                    self.syslog_port = int(line.rsplit(":", 1)[1])
                if "serving" in line:
                    ready.set()
            ready.set()

        self.thread = threading.Thread(target=reader, daemon=True)
        self.thread.start()
        if not ready.wait(30) or self.proc.poll() is not None:
            self.proc.kill()
            raise AssertionError("serve did not start: %r" % self.lines)

    def stderr(self):
        return "\n".join(self.lines)

    def request(self, method, path, body=None, headers=None, timeout=30):
        """(status, headers dict, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.http_port,
                                       timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, dict(r.getheaders()), data
        finally:
            c.close()

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def syslog_send(self, data, close=True):
        s = socket.create_connection(("127.0.0.1", self.syslog_port))
        s.sendall(data)
        if close:
            s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            try:
                while s.recv(4096):
                    pass
            except OSError:
                pass
            s.close()
            return None
        return s

    def stop(self, sig=signal.SIGTERM, timeout=30):
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self.thread.join(5)
        self.proc.stderr.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.thread.join(5)
        self.proc.stderr.close()


def wait_for(pred, timeout=20, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()
