"""Making, using once and closing a Pool(2) from plain code: corelet.Pool
against a fork-context multiprocessing.Pool, interleaved, side by side.

    PYTHONPATH=build/release/python /usr/bin/python3 perf/py_pool_startup.py [--runs 5] [--pools 20]

One pool's time is `with Pool(2) as p: p.map(abs, range(4))` from the call
to the end of the `with`. corelet's first Pool of a program also starts the
zygote that later Pools are forked from; that first one is timed apart.
"""

import argparse
import multiprocessing
import statistics
import time

import corelet  # PYTHONPATH names the build
from compare import machine  # perf/compare.py: the CPU, its count, the kernel


def once(make):
    t = time.perf_counter()
    with make(2) as p:
        p.map(abs, range(4))
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pools", type=int, default=20)
    args = ap.parse_args()
    fork = multiprocessing.get_context("fork")
    first = once(corelet.Pool)
    print(f"{machine()}; the first corelet.Pool (starts the zygote): {first * 1e3:.1f} ms")
    ratios = []
    for run in range(args.runs):
        mine, theirs = [], []
        for _ in range(args.pools):
            theirs.append(once(fork.Pool))
            mine.append(once(corelet.Pool))
        a, b = statistics.median(mine), statistics.median(theirs)
        ratios.append(a / b)
        print(f"run {run + 1}: corelet.Pool {a * 1e3:.1f} ms, multiprocessing.Pool (fork) {b * 1e3:.1f} ms, "
              f"ratio {a / b:.2f}x (medians of {args.pools})")
    print(f"ratio median {statistics.median(ratios):.2f}x (runs: {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
