#!/usr/bin/env python3
"""replica_floor.py BUILD_DIR [EVENTS] [MISSING] [REPS] - what one sync costs
next to what it is made of, and next to a durable copy (issue 4's time target).

Builds the two replicas of tests/bench/replica.sh once (EVENTS events of the
`ooo` workload, default 1M; MISSING events missing on each side, default 100),
then REPS rounds (default 15), each on fresh copies of both, written back:
  tidemark --version             a process start
  tidemark stat A                a start and a store open
  tidemark diff A B              the digest walk that finds the difference
  tidemark sync A B              local
  tidemark sync A ssh:x:B        through `serve --stdio` on a pipe
  cp -a A C && sync -f C         a durable copy of one replica
and prints median and min of each, and the sync's ratio to the copy, as a
Markdown table. Stores live under $TMPDIR (default /tmp), removed at the end.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def main():
    if not 2 <= len(sys.argv) <= 5:
        sys.exit(__doc__.split("\n")[0])
    build = os.path.abspath(sys.argv[1])
    given = [int(a) for a in sys.argv[2:]]
    events, missing, reps = given + [1000000, 100, 15][len(given):]
    tm = os.path.join(build, "src/cli/tidemark")
    gen = os.path.join(build, "tests/bench/tidemark-replica-gen")
    for x in (tm, gen):
        if not os.access(x, os.X_OK):
            sys.exit(f"no {x}; build with: ninja -C {sys.argv[1]}")
    work = tempfile.mkdtemp(prefix="tidemark-floor.")
    try:
        os.chdir(work)
        for side, store in (("a", "A0"), ("b", "B0")):
            subprocess.run([tm, "init", store, "--grace", "60s"], check=True,
                           stdout=subprocess.DEVNULL)
            g = subprocess.Popen([gen, "--side", side, "--events", str(events),
                                  "--missing", str(missing)], stdout=subprocess.PIPE)
            subprocess.run([tm, "append", store], stdin=g.stdout, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            g.stdout.close()
            if g.wait():
                sys.exit("tidemark-replica-gen failed")

        def fresh():
            for d in ("A", "B", "C"):
                shutil.rmtree(d, ignore_errors=True)
            subprocess.run("cp -a A0 A && cp -a B0 B && sync -f A", shell=True, check=True)

        remote = f'{tm} serve --stdio "$2"'
        # name, command, its exit code, fresh copies of both stores first
        rows = [
            ("`tidemark --version` (a process start)", [tm, "--version"], 0, True),
            ("`tidemark stat A` (a start and a store open)", [tm, "stat", "A"], 0, False),
            ("`tidemark diff A B` (finds the difference, moves nothing)",
             [tm, "diff", "A", "B"], 1, False),
            ("`tidemark sync A B` (local)", [tm, "sync", "A", "B"], 0, False),
            ("`tidemark sync A ssh:x:B` (pipe)",
             [tm, "sync", "A", "ssh:x:B", "--remote-command", remote], 0, True),
            ("`cp -a A C && sync -f C`", "cp -a A C && sync -f C", 0, False),
        ]
        res = {name: [] for name, *_ in rows}
        for _ in range(reps):
            for name, cmd, want, fresh_first in rows:
                if fresh_first:
                    fresh()
                start = time.perf_counter()
                r = subprocess.run(cmd, shell=isinstance(cmd, str), stdout=subprocess.DEVNULL)
                res[name].append((time.perf_counter() - start) * 1e3)
                if r.returncode != want:
                    sys.exit(f"{name}: exit {r.returncode}, expected {want}")
            if subprocess.run([tm, "diff", "A", "B"], stdout=subprocess.DEVNULL).returncode:
                sys.exit("diff A B after the pipe sync found a difference")
        load = open("/proc/loadavg").read().split()[:3]
        print(f"{events} events, {missing} missing on each side, {reps} rounds, "
              f"load {' '.join(load)} at the end\n")
        print("| command | median | min |\n| --- | ---: | ---: |")
        for name, *_ in rows:
            v = res[name]
            print(f"| {name} | {statistics.median(v):.2f} ms | {min(v):.2f} ms |")
        copy = statistics.median(res[rows[5][0]])
        for name in (rows[3][0], rows[4][0]):
            print(f"\ncopy / {name.split(' (')[0]}: "
                  f"{copy / statistics.median(res[name]):.1f}x (target 20x: "
                  f"{copy / 20:.1f} ms)", end="")
        print()
    finally:
        os.chdir("/")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
