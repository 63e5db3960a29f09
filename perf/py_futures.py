#!/usr/bin/python3
"""corelet.futures.ProcessPoolExecutor against concurrent.futures', in one run.

Usage: /usr/bin/python3 perf/py_futures.py BUILD_DIR [--runs N] [--scale F]

BUILD_DIR/python holds the corelet package. Each round measures, for both
executors (2 workers, made and warmed before the clock starts):
  submit-to-result round trip: submit(f, i).result() one after the other,
      median of the calls, in µs;
  map overhead per task: list(map(f, range(n), chunksize=c)) for a trivial
      f, wall time over n, in µs, for chunksize 1 and 64.
The tables show the medians of the rounds and every round.
"""

import argparse
import concurrent.futures as cf
import statistics
import sys
import time
from pathlib import Path


def identity(x):
    return x


def round_trip_us(ex, n):
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        if ex.submit(identity, i).result() != i:
            raise SystemExit("wrong result")
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def map_us(ex, n, chunksize):
    t0 = time.perf_counter()
    out = list(ex.map(identity, range(n), chunksize=chunksize))
    dt = time.perf_counter() - t0
    if out != list(range(n)):
        raise SystemExit("wrong map result")
    return dt / n * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_dir")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0)
    a = ap.parse_args()
    sys.path.insert(0, str(Path(a.build_dir) / "python"))
    import corelet.futures

    def n(x):
        return max(10, int(x * a.scale))

    executors = {"corelet": corelet.futures.ProcessPoolExecutor(2), "concurrent.futures": cf.ProcessPoolExecutor(2)}
    for ex in executors.values():  # workers started and warm
        list(ex.map(identity, range(200)))
    tests = {
        "submit-to-result round trip (µs)": lambda ex: round_trip_us(ex, n(2000)),
        "map overhead per task, chunksize 1 (µs)": lambda ex: map_us(ex, n(20000), 1),
        "map overhead per task, chunksize 64 (µs)": lambda ex: map_us(ex, n(200000), 64),
    }
    res = {(t, e): [] for t in tests for e in executors}
    for r in range(a.runs):
        for t, fn in tests.items():
            for e, ex in executors.items():
                res[(t, e)].append(fn(ex))
        print(f"round {r + 1}/{a.runs} done", file=sys.stderr)
    for ex in executors.values():
        ex.shutdown()
    print(f"Python {sys.version.split()[0]}; medians of {a.runs} interleaved rounds; 2 workers each\n")
    for t in tests:
        base = statistics.median(res[(t, "concurrent.futures")])
        print(f"| {t} | median | corelet / concurrent.futures | all rounds |")
        print("|---|---:|---:|---|")
        for e in executors:
            m = statistics.median(res[(t, e)])
            print(f"| {e} | {m:,.2f} | {m / base:.2f}x | {', '.join(f'{x:,.2f}' for x in res[(t, e)])} |")
        print()


if __name__ == "__main__":
    main()
