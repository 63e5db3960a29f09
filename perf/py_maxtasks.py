"""Pool(2, maxtasksperchild=N) from plain code: corelet.Pool against a
fork-context multiprocessing.Pool, side by side in each run.

    PYTHONPATH=build/release/python /usr/bin/python3 perf/py_maxtasks.py [--runs 5] [--tasks 400] [--per-child 10]

Each measurement makes the pool (started and warmed by one map first, not
timed), then times `pool.map(abs, range(TASKS), chunksize=1)`: with
maxtasksperchild=PER_CHILD a worker is replaced after every PER_CHILD tasks,
so the time is mostly the replacements' (TASKS / PER_CHILD of them).
"""

import argparse
import multiprocessing
import statistics
import time

import corelet  # PYTHONPATH names the build
from compare import machine  # perf/compare.py: the CPU, its count, the kernel


def timed(make, tasks, per_child):
    with make(2, maxtasksperchild=per_child) as p:
        p.map(abs, range(4), chunksize=1)
        t = time.perf_counter()
        result = p.map(abs, range(tasks), chunksize=1)
        dt = time.perf_counter() - t
    assert result == list(range(tasks))
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=400)
    ap.add_argument("--per-child", type=int, default=10)
    args = ap.parse_args()
    fork = multiprocessing.get_context("fork")
    print(f"{machine()}; {args.tasks} tasks, maxtasksperchild={args.per_child}")
    mine, theirs, ratios = [], [], []
    for _ in range(args.runs):
        b = timed(fork.Pool, args.tasks, args.per_child)
        a = timed(corelet.Pool, args.tasks, args.per_child)
        mine.append(a)
        theirs.append(b)
        ratios.append(a / b)
    per = args.tasks / args.per_child
    print(f"corelet.Pool {statistics.median(mine) * 1e3:.0f} ms ({statistics.median(mine) / per * 1e3:.2f} ms per "
          f"replaced worker), multiprocessing.Pool {statistics.median(theirs) * 1e3:.0f} ms "
          f"({statistics.median(theirs) / per * 1e3:.2f} ms per replaced worker)")
    print(f"corelet / multiprocessing: median {statistics.median(ratios):.2f}x "
          f"(runs: {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
