#!/usr/bin/python3
"""HTTP hello on one worker and on every worker: requests/s and server CPU
time per request, side by side in one run.

Usage: /usr/bin/python3 perf/http_cores.py BUILD_DIR [--runs N] [--seconds S] [--conns C]

Runs examples/http_hello --workers 1 and --workers 2 (one process per core,
SO_REUSEPORT), alternately, under wrk (Debian's wrk, two threads). The load
generator shares the machine's two cores with the server, so the figures say
what one more worker buys on this machine, not how corelet scales with idle
cores. CPU time is the sum over the supervisor and its workers of
/proc/<pid>/schedstat (ns on CPU) during the wrk run. Standard library only.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time


def fail(msg):
    print(f"http_cores.py: {msg}", file=sys.stderr)
    sys.exit(1)


def cpu_ns(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def measure(binary, workers, seconds, conns):
    p = subprocess.Popen([binary, "127.0.0.1:0", "--workers", str(workers)], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        m = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not m:
            fail(f"http_hello printed {line!r}")
        pids = [p.pid] + children(p.pid)
        if len(pids) != workers + 1:
            fail(f"expected {workers} workers, found {pids[1:]}")
        url = f"http://127.0.0.1:{m.group(1)}/"
        subprocess.run(["wrk", "-t", "2", "-c", str(conns), "-d", "1", url], capture_output=True)  # warm-up
        before = cpu_ns(pids)
        out = subprocess.run(["wrk", "-t", "2", "-c", str(conns), "-d", str(seconds), url], capture_output=True,
                             text=True)
        used = cpu_ns(pids) - before
        m = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
        if not m or "Non-2xx" in out.stdout or "Socket errors" in out.stdout:
            fail(f"wrk: {out.stdout}{out.stderr}")
        rps = float(m.group(1))
        return rps, used / (rps * seconds)  # ns of server CPU per request
    finally:
        p.send_signal(2)  # SIGINT: the cluster stops gracefully
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--conns", type=int, default=100)
    a = ap.parse_args()
    binary = os.path.join(a.build, "examples", "http_hello")
    if not os.path.exists(binary):
        fail(f"{binary} is missing")
    if not shutil.which("wrk"):
        fail("wrk is missing (scripts/deps installs it)")
    res = {1: [], 2: []}
    for r in range(a.runs):
        for w in (1, 2):
            res[w].append(measure(binary, w, a.seconds, a.conns))
        print(f"round {r + 1}/{a.runs} done", file=sys.stderr)
    print(f"## HTTP hello, one worker vs one per core ({a.runs} rounds of {a.seconds} s, "
          f"wrk -t 2 -c {a.conns}, medians)\n")
    print("Command: `/usr/bin/python3 perf/http_cores.py " + " ".join(sys.argv[1:]) + "`\n")
    print("| workers | requests/s | server CPU per request |")
    print("|---:|---:|---:|")
    med = {}
    for w in (1, 2):
        rps = statistics.median(x[0] for x in res[w])
        cpu = statistics.median(x[1] for x in res[w])
        med[w] = rps
        print(f"| {w} | {rps:,.0f} | {cpu / 1000:,.2f} µs |")
    print(f"\n2 workers / 1 worker: {med[2] / med[1]:.2f}x requests/s")
    print("\nAll rounds (req/s, CPU µs/request):")
    for w in (1, 2):
        print(f"- {w} worker(s): " + ", ".join(f"{r:,.0f} / {c / 1000:.2f}" for r, c in res[w]))


if __name__ == "__main__":
    main()
