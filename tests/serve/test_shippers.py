#!/usr/bin/env python3
"""`tidemark serve` and `tidemark append` fed by the real shippers from
Debian (issue 8): logger sends to rsyslog or syslog-ng, which forward to
tidemark. Every daemon is started here, in the foreground, with its own
configuration, pid and state files in a temporary directory, listening on
loopback ports only; none is the system's service.

Each test checks that every message sent is stored exactly once, with the
labels host, app, severity, facility and the time of the message.

rsyslog comes from its Debian package. syslog-ng conflicts with rsyslog
as a package (both are a system-log-daemon), so .ci/run unpacks Debian's
syslog-ng-core and syslog-ng-mod-http next to the build
($TIDEMARK_SYSLOG_NG_ROOT) unless syslog-ng is installed. A test is
skipped, saying why, only when its daemon is not there at all.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import SEC, TIDEMARK, Server, run, wait_for  # noqa: E402

HOST = socket.gethostname()
LOGGER = shutil.which("logger")
RSYSLOGD = shutil.which("rsyslogd") or (
    "/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None)


def syslog_ng():
    """(binary, extra args, environment) of syslog-ng, or None."""
    root = os.environ.get("TIDEMARK_SYSLOG_NG_ROOT") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", ".ci",
        "syslog-ng")
    if root and os.path.exists(os.path.join(root, "usr/sbin/syslog-ng")):
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.path.join(root, "usr/lib/syslog-ng")
        mods = os.path.join(root, "usr/lib/syslog-ng/3.38")
        for d in sorted(os.listdir(os.path.join(root, "usr/lib/syslog-ng"))):
            if d[:1].isdigit():
                mods = os.path.join(root, "usr/lib/syslog-ng", d)
        return (os.path.join(root, "usr/sbin/syslog-ng"),
                ["--module-path=" + mods], env)
    path = shutil.which("syslog-ng") or (
        "/usr/sbin/syslog-ng" if os.path.exists("/usr/sbin/syslog-ng")
        else None)
    return (path, [], dict(os.environ)) if path else None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=20):
    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    return wait_for(up, timeout)


class Daemon:
    def __init__(self, argv, log, env=None):
        self.log = log
        self.out = open(log, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.out,
                                     stderr=subprocess.STDOUT, env=env)

    def text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.out.close()


def logger(port, lines, *args):
    """Sends lines with logger over TCP to 127.0.0.1:port, one message a
    line, in one connection."""
    p = subprocess.run([LOGGER, "--tcp", "-n", "127.0.0.1", "-P", str(port),
                        *args], input="".join(l + "\n" for l in lines).encode(),
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("logger failed: %s" % p.stderr.decode())


# The NDJSON line rsyslog writes for `tidemark append` (README).
RSYSLOG_TEMPLATE = r'''template(name="tidemark_ndjson" type="string" string="{\"ts\":\"%timereported:::date-rfc3339%\",\"labels\":{\"host\":\"%hostname:::json%\",\"app\":\"%app-name:::json%\",\"severity\":\"%syslogseverity-text%\",\"facility\":\"%syslogfacility-text%\"},\"payload\":\"%msg:::json%\"}\n")
parser(name="tidemark.rfc3164" type="pmrfc3164" remove.msgFirstSpace="on")
'''


class ShipperTest(unittest.TestCase):
    def setUp(self):
        if not LOGGER:
            self.skipTest("logger (util-linux, bsdutils) is not installed")
        self._tmp = tempfile.TemporaryDirectory(prefix="tidemark-ship-")
        self.tmp = self._tmp.name
        self.store = os.path.join(self.tmp, "store")
        rc, _, err = run("init", self.store)
        self.assertEqual(rc, 0, err)
        self.daemons = []
        self.srv = None
        self.tag = uuid.uuid4().hex[:8]

    def tearDown(self):
        for d in self.daemons:
            d.stop()
        if self.srv:
            self.srv.kill()
        self._tmp.cleanup()

    def events(self, strict=True):
        rc, out, err = run("read", self.store)
        if rc != 0 and not strict:
            # Polled while a writer opens the store: seen once as
            # "index is missing" (exit 74) while `append` was starting;
            # the final, strict read decides.
            print("read while polling: %s" % err.decode(), file=sys.stderr)
            return []
        self.assertEqual(rc, 0, err)
        return [json.loads(l) for l in out.splitlines()]

    def rsyslog(self, body, modules=""):
        if not RSYSLOGD:
            self.skipTest("rsyslogd is not installed (apt-get install rsyslog)")
        work = os.path.join(self.tmp, "rsyslog")
        os.mkdir(work)
        portfile = os.path.join(work, "port")
        conf = os.path.join(work, "rsyslog.conf")
        with open(conf, "w") as f:
            f.write('global(workDirectory="%s")\n' % work)
            # Keep control characters (a tab) as they were sent.
            f.write('global(parser.escapeControlCharactersOnReceive="off")\n')
            f.write('module(load="imtcp")\n' + modules)
            f.write(RSYSLOG_TEMPLATE)
            f.write('input(type="imtcp" address="127.0.0.1" port="0" '
                    'listenPortFileName="%s" ruleset="ship")\n' % portfile)
            f.write('ruleset(name="ship" parser=["rsyslog.rfc5424", '
                    '"tidemark.rfc3164"]) {\n%s\n}\n' % body)
        env = dict(os.environ, TZ="UTC")
        d = Daemon([RSYSLOGD, "-n", "-f", conf, "-i",
                    os.path.join(work, "pid")],
                   os.path.join(work, "log"), env)
        self.daemons.append(d)
        def read_port():
            if not os.path.exists(portfile):
                return None
            with open(portfile) as f:
                return f.read().strip()
        port = wait_for(read_port)
        self.assertTrue(port, "rsyslogd did not start: " + d.text())
        return d, int(port)

    def messages(self, what, n):
        return ["%s %s message %d: \"quoted\" \\ and tab\tend" %
                (what, self.tag, i) for i in range(n)]

    def check(self, sent, app, severity, facility, t_before, t_after,
              precision=1000):
        """Every message of `sent` stored once, with its labels and time."""
        wait_for(lambda: len(self.events(strict=False)) >= len(sent), 30)
        evs = self.events()
        by_payload = {}
        for e in evs:
            by_payload.setdefault(e["payload"], []).append(e)
        for m in sent:
            self.assertEqual(len(by_payload.get(m, [])), 1,
                             "%r stored %d times; have %r" %
                             (m, len(by_payload.get(m, [])), evs[:3]))
            e = by_payload[m][0]
            self.assertEqual(e["labels"], {
                "host": HOST, "app": app, "severity": severity,
                "facility": facility})
            # logger stamps the message; shippers keep its time.
            lo = t_before // precision * precision
            self.assertTrue(lo <= e["ts"] <= t_after,
                            (e["ts"], t_before, t_after))
            self.assertEqual(e["ts"] % precision, 0)
        self.assertEqual(len(evs), len(sent))


class TestRsyslog(ShipperTest):
    def test_omfwd_tcp_rfc5424_octet_counted(self):
        self.srv = Server(self.store)
        d, port = self.rsyslog(
            'action(type="omfwd" target="127.0.0.1" port="%d" protocol="tcp" '
            'template="RSYSLOG_SyslogProtocol23Format" '
            'TCP_Framing="octet-counted")' % self.srv.syslog_port)
        sent = self.messages("omfwd-5424", 50)
        t0 = time.time_ns()
        logger(port, sent, "-t", "shipper-a", "-p", "local3.warning")
        t1 = time.time_ns()
        self.check(sent, "shipper-a", "warning", "local3", t0, t1)

    def test_omfwd_tcp_traditional_newline(self):
        self.srv = Server(self.store)
        d, port = self.rsyslog(
            'action(type="omfwd" target="127.0.0.1" port="%d" protocol="tcp" '
            'template="RSYSLOG_TraditionalForwardFormat")' %
            self.srv.syslog_port)
        sent = self.messages("omfwd-3164", 50)
        t0 = time.time_ns()
        logger(port, sent, "--rfc3164", "-t", "shipper-b", "-p", "mail.err")
        t1 = time.time_ns()
        self.check(sent, "shipper-b", "err", "mail", t0, t1, precision=SEC)

    def test_omprog_tidemark_append(self):
        d, port = self.rsyslog(
            'action(type="omprog" binary="%s append %s --durability batch" '
            'template="tidemark_ndjson" output="%s")' % (os.path.abspath(TIDEMARK), self.store,
               os.path.join(self.tmp, "append.log")),
            modules='module(load="omprog")\n')
        sent = self.messages("omprog", 30)
        t0 = time.time_ns()
        logger(port, sent[:15], "-t", "shipper-c", "-p", "user.info")
        logger(port, sent[15:], "--rfc3164", "-t", "shipper-c", "-p",
               "user.info")
        t1 = time.time_ns()
        # Stored while rsyslog still runs: append commits when its input
        # goes idle.
        def append_log():
            p = os.path.join(self.tmp, "append.log")
            return open(p).read() if os.path.exists(p) else ""
        self.assertTrue(wait_for(lambda: len(self.events(False)) == 30, 30),
                        d.text() + append_log())
        d.stop()
        evs = self.events()
        self.assertEqual(len(evs), 30)
        # The RFC 3164 half has whole seconds; check each half.
        by = {e["payload"]: e for e in evs}
        for i, m in enumerate(sent):
            e = by[m]
            self.assertEqual(e["labels"], {"host": HOST, "app": "shipper-c",
                                           "severity": "info",
                                           "facility": "user"})
            prec = 1000 if i < 15 else SEC
            self.assertTrue(t0 // prec * prec <= e["ts"] <= t1)


class TestSyslogNg(ShipperTest):
    def test_http_destination(self):
        sng = syslog_ng()
        if not sng:
            self.skipTest("syslog-ng is not there: install syslog-ng-core "
                          "and syslog-ng-mod-http, or run .ci/run, which "
                          "unpacks them")
        binary, extra, env = sng
        tokens = os.path.join(self.tmp, "tokens")
        with open(tokens, "w") as f:
            f.write("ship-token\n")
        self.srv = Server(self.store, "--token-file", tokens, syslog=False)
        work = os.path.join(self.tmp, "syslog-ng")
        os.mkdir(work)
        port = free_port()
        conf = os.path.join(work, "syslog-ng.conf")
        with open(conf, "w") as f:
            f.write('''@version: 3.38
options { frac-digits(6); keep-hostname(yes); stats_freq(0); };
source s_net { syslog(ip("127.0.0.1") port(%d) transport("tcp")); };
destination d_tidemark {
  http(url("http://127.0.0.1:%d/v1/events") method("POST")
       headers("Content-Type: application/x-ndjson",
               "Authorization: Bearer ship-token")
       body("$(format-json --scope none ts=${ISODATE} labels.host=${HOST} labels.app=${PROGRAM} labels.severity=${LEVEL} labels.facility=${FACILITY} payload=${MESSAGE})")
       body-suffix("\\n") batch-lines(20) batch-timeout(100));
};
log { source(s_net); destination(d_tidemark); };
''' % (port, self.srv.http_port))
        d = Daemon([binary, "-F", "-e", "--no-caps", "-f", conf,
                    "-p", os.path.join(work, "pid"),
                    "-R", os.path.join(work, "persist"),
                    "-c", os.path.join(work, "ctl"), *extra],
                   os.path.join(work, "log"), env)
        self.daemons.append(d)
        if not wait_port(port):
            self.fail("syslog-ng did not start: " + d.text())
        sent = self.messages("syslog-ng", 50)
        t0 = time.time_ns()
        logger(port, sent, "--octet-count", "-t", "shipper-d", "-p",
               "local7.notice")
        t1 = time.time_ns()
        self.check(sent, "shipper-d", "notice", "local7", t0, t1)


class TestLoggerDirect(ShipperTest):
    def test_logger_to_serve(self):
        self.srv = Server(self.store)
        a = self.messages("direct-octet", 20)
        b = self.messages("direct-newline", 20)
        t0 = time.time_ns()
        logger(self.srv.syslog_port, a, "--octet-count", "-t", "direct",
               "-p", "daemon.debug")
        logger(self.srv.syslog_port, b, "-t", "direct", "-p", "daemon.debug")
        t1 = time.time_ns()
        self.check(a + b, "direct", "debug", "daemon", t0, t1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
