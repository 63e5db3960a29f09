#!/usr/bin/python3
"""Python on every core: corelet against multiprocessing and threading, in
one run.

Usage: /usr/bin/python3 perf/py_cores.py BUILD_DIR [--runs N] [--scale F] [--kills K]

BUILD_DIR/python holds the corelet package. Each round runs every
measurement once, in a fixed interleaved order; the tables show medians.
  Pool.map overhead per task: a trivial function over many items, at
      chunksize 1 and at the default chunks, corelet.Pool(2) against
      multiprocessing.Pool(2) (both started before the clock starts);
  count: Beazley's count(n) twice, sequentially, in 2 threads, in 2 bare
      forked processes (no framework: what the machine gives), on
      multiprocessing.Pool(2) (fork, and spawn: fresh interpreters), on
      corelet.Pool(2) (fresh interpreters too: see py/README.md); and, each
      in a new interpreter (timed inside it), sequentially and on the two
      workers of corelet.run(workers=2) forked from it (the cluster's start
      and stop included) (n = 20,000,000 x scale); the pools are made fresh
      each round;
  primes: the processing seed's prime test over 8 slices below 400,000 x
      scale, the same four ways;
  WorkerLost: --kills times, a task SIGKILLs its worker in the middle of a
      corelet.Pool.map; the time until map raises WorkerLost (and that the
      pool then goes on).
--scale multiplies the loads (0.01 for a smoke run). Standard library only
(multiprocessing's fork start method, Debian's default).
"""

import argparse
import multiprocessing
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path


def nothing(x):
    return x


def count(n):
    while n > 0:
        n -= 1
    return n


def count_primes(bounds):
    lo, hi = bounds
    c = 0
    for n in range(max(lo, 2), hi):
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            c += 1
    return c


def kill_at(x, victim):
    if x == victim:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.001)
    return x


def in_bare_processes(fn, items):
    """fn(x) for each x in its own forked process, no framework: what the
    machine gives two interpreters at once."""
    pids = []
    for x in items:
        pid = os.fork()
        if pid == 0:
            try:
                fn(x)
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)


_FRESH = r"""
import sys, time
sys.path.insert(0, {pypath!r})
import corelet

def count(n):
    while n > 0:
        n -= 1
    return n

def main():
    tasks = [corelet.spawn_on(w, count, {n}) for w in range(2)]
    for t in tasks:
        yield t.join()

t0 = time.perf_counter()
if {cluster}:
    corelet.run(main, workers=2)
else:
    count({n})
    count({n})
print(time.perf_counter() - t0)
"""


def in_fresh_interpreter(pypath, n, cluster):
    """count(n) twice in a new interpreter: sequentially, or on the two
    workers of corelet.run(workers=2) (forked from it, start and stop
    included). The time is taken inside, without the interpreter's start."""
    import subprocess

    code = _FRESH.format(pypath=pypath, n=n, cluster=cluster)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def timed(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def in_threads(fn, items):
    threads = [threading.Thread(target=fn, args=(x,)) for x in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_dir")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--kills", type=int, default=100)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(args.build_dir) / "python"))
    import corelet  # noqa: E402

    n_tasks = max(100, int(200_000 * args.scale))
    n_tasks1 = max(100, int(20_000 * args.scale))
    n_count = max(10_000, int(20_000_000 * args.scale))
    top = max(8_000, int(400_000 * args.scale))
    slices = [(i * top // 8, (i + 1) * top // 8) for i in range(8)]

    cp = corelet.Pool(2)
    mp = multiprocessing.Pool(2)
    cp.map(nothing, range(100))
    mp.map(nothing, range(100))
    rows = {}

    def add(name, value):
        rows.setdefault(name, []).append(value)

    try:
        for r in range(args.runs):
            add("corelet Pool.map, chunksize 1 (us/task)", timed(cp.map, nothing, range(n_tasks1), 1) / n_tasks1 * 1e6)
            add("multiprocessing Pool.map, chunksize 1 (us/task)",
                timed(mp.map, nothing, range(n_tasks1), 1) / n_tasks1 * 1e6)
            add("corelet Pool.map, default chunks (us/task)", timed(cp.map, nothing, range(n_tasks)) / n_tasks * 1e6)
            add("multiprocessing Pool.map, default chunks (us/task)",
                timed(mp.map, nothing, range(n_tasks)) / n_tasks * 1e6)
            # The CPU-bound loads on pools of their own, made fresh each round
            # (outside the clock): after the overhead runs above, a worker's
            # heap is no longer that of a new process, which slows the
            # allocation-heavy count loop in both pools alike.
            cp2 = corelet.Pool(2)
            mp2 = multiprocessing.Pool(2)
            ms2 = multiprocessing.get_context("spawn").Pool(2)
            cp2.map(nothing, [0, 1], 1)
            mp2.map(nothing, [0, 1], 1)
            ms2.map(nothing, [0, 1], 1)
            add("count sequential (s)", timed(lambda: [count(n_count) for _ in range(2)]))
            add("count 2 threads (s)", timed(in_threads, count, [n_count, n_count]))
            add("count 2 bare forked processes (s)", timed(in_bare_processes, count, [n_count, n_count]))
            add("count multiprocessing (s)", timed(mp2.map, count, [n_count, n_count], 1))
            add("count multiprocessing, spawn (s)", timed(ms2.map, count, [n_count, n_count], 1))
            add("count corelet (s)", timed(cp2.map, count, [n_count, n_count], 1))
            pypath = str(Path(args.build_dir).resolve() / "python")
            add("count sequential, fresh interpreter (s)", in_fresh_interpreter(pypath, n_count, False))
            add("count corelet.run(workers=2), fresh interpreter (s)", in_fresh_interpreter(pypath, n_count, True))
            add("primes sequential (s)", timed(lambda: [count_primes(s) for s in slices]))
            add("primes 2 threads (s)", timed(in_threads, count_primes, slices))
            add("primes multiprocessing (s)", timed(mp2.map, count_primes, slices, 1))
            add("primes multiprocessing, spawn (s)", timed(ms2.map, count_primes, slices, 1))
            add("primes corelet (s)", timed(cp2.map, count_primes, slices, 1))
            cp2.terminate()
            mp2.terminate()
            ms2.terminate()
            print(f"round {r + 1}/{args.runs} done", file=sys.stderr)

        lost = []
        went_on = 0
        for _ in range(args.kills):
            t0 = time.monotonic()
            try:
                cp.starmap(kill_at, [(i, 3) for i in range(8)], 1)
            except corelet.WorkerLost:
                lost.append(time.monotonic() - t0)
            if cp.map(nothing, range(4)) == [0, 1, 2, 3]:
                went_on += 1
    finally:
        mp.terminate()
        cp.terminate()

    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; medians of {args.runs} interleaved rounds\n")
    print("| measurement | median | all rounds |")
    print("|---|---:|---|")
    for k, v in rows.items():
        print(f"| {k} | {med[k]:.4g} | {', '.join(f'{x:.4g}' for x in v)} |")
    print()

    def ratio(a, b):
        return med[a] / med[b]

    r1 = ratio("corelet Pool.map, chunksize 1 (us/task)", "multiprocessing Pool.map, chunksize 1 (us/task)")
    rd = ratio("corelet Pool.map, default chunks (us/task)", "multiprocessing Pool.map, default chunks (us/task)")
    sc = ratio("count sequential (s)", "count corelet (s)")
    scr = ratio("count sequential, fresh interpreter (s)", "count corelet.run(workers=2), fresh interpreter (s)")
    sms = ratio("count sequential (s)", "count multiprocessing, spawn (s)")
    st = ratio("count sequential (s)", "count 2 threads (s)")
    smp = ratio("count sequential (s)", "count multiprocessing (s)")
    sbare = ratio("count sequential (s)", "count 2 bare forked processes (s)")
    pc = ratio("primes sequential (s)", "primes corelet (s)")
    pt = ratio("primes sequential (s)", "primes 2 threads (s)")
    pm = ratio("primes sequential (s)", "primes multiprocessing (s)")
    slowest = max(lost) if lost else float("nan")
    print("| target | measured | met? |")
    print("|---|---|---|")
    print(f"| Pool.map overhead <= 1/5 of multiprocessing.Pool's at chunksize 1 | **{r1:.3f}** "
          f"(default chunks: {rd:.2f}) | {'yes' if r1 <= 0.2 else 'no'} |")
    print(f"| count >= 1.85x faster on 2 workers than sequential; threads <= 1x | corelet.run(workers=2) "
          f"**{scr:.2f}x** (both in a fresh interpreter), corelet.Pool **{sc:.2f}x**, threads **{st:.2f}x** "
          f"(multiprocessing {smp:.2f}x, "
          f"multiprocessing spawn {sms:.2f}x, two bare forked processes {sbare:.2f}x) | "
          f"{'yes' if scr >= 1.85 and st <= 1.0 else 'no'} |")
    print(f"| primes: threads vs multiprocessing vs corelet | threads {pt:.2f}x, multiprocessing {pm:.2f}x, "
          f"corelet {pc:.2f}x | — |")
    within = sum(1 for x in lost if x < 1.0)
    print(f"| WorkerLost within 1 s in 100 of 100 kills | {within} of {args.kills} within 1 s "
          f"({len(lost)} raised), slowest {slowest * 1000:.0f} ms; the pool went on {went_on} of {args.kills} times | "
          f"{'yes' if within == args.kills == 100 and went_on == args.kills else ('—' if args.kills != 100 else 'no')} |")


if __name__ == "__main__":
    main()
