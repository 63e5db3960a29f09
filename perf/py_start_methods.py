"""Starting and joining a Process that does nothing, by each start method,
corelet against multiprocessing, side by side in one run.

    /usr/bin/python3 perf/py_start_methods.py [--rounds 5] [--starts 10]

Each round starts and joins `starts` processes one after another per
(module, method) and reports milliseconds per process; the table gives the
median and every round, and corelet's time as a ratio of multiprocessing's.
Run with PYTHONPATH=<build>/python.
"""

import argparse
import multiprocessing
import statistics
import time

import corelet


def nothing():
    pass


def per_start(mp, method, starts):
    ctx = mp.get_context(method)
    t0 = time.perf_counter()
    for _ in range(starts):
        p = ctx.Process(target=nothing)
        p.start()
        p.join()
        assert p.exitcode == 0
    return (time.perf_counter() - t0) / starts * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--starts", type=int, default=10)
    a = ap.parse_args()
    methods = ("fork", "spawn", "forkserver")
    for mp in (multiprocessing, corelet):  # warm: the forkserver and the zygote start once
        for m in methods:
            per_start(mp, m, 1)
    rows = {}
    for _ in range(a.rounds):
        for m in methods:
            for mp in (multiprocessing, corelet):
                rows.setdefault((m, mp.__name__), []).append(per_start(mp, m, a.starts))
    print(f"{'method':<11} {'module':<16} {'ms/process (median)':>20}  rounds")
    for m in methods:
        for name in ("multiprocessing", "corelet"):
            r = rows[(m, name)]
            print(f"{m:<11} {name:<16} {statistics.median(r):>20.2f}  " + " ".join(f"{x:.2f}" for x in r))
        ratio = statistics.median(rows[(m, "corelet")]) / statistics.median(rows[(m, "multiprocessing")])
        print(f"{m:<11} corelet / multiprocessing: {ratio:.2f}x the time")


if __name__ == "__main__":
    main()
