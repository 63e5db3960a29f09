"""Where a Pool's apply spends its round trip: the time from apply_async to
the worker's call, from the worker's call to the result's callback (in the
pool's result thread) and from the callback to get() returning, medians of
400 calls, corelet.Pool(2) against multiprocessing.Pool(2) (fork). The
worker's call returns time.perf_counter() (one clock for all processes).

    PYTHONPATH=build/release/python /usr/bin/python3 perf/py_pool_hops.py [--calls 400]
"""

import argparse
import multiprocessing
import statistics
import time

import corelet  # PYTHONPATH names the build
from compare import machine  # perf/compare.py: the CPU, its count, the kernel


def stamp(_):
    return time.perf_counter()


def hops(pool_class, calls):
    out, back, wake = [], [], []
    with pool_class(2) as pool:
        pool.apply(stamp, (0,))
        for i in range(calls):
            seen = {}
            t0 = time.perf_counter()
            r = pool.apply_async(stamp, (i,), callback=lambda v: seen.__setitem__("callback", time.perf_counter()))
            in_worker = r.get()
            t1 = time.perf_counter()
            out.append((in_worker - t0) * 1e6)
            back.append((seen["callback"] - in_worker) * 1e6)
            wake.append((t1 - seen["callback"]) * 1e6)
    return statistics.median(out), statistics.median(back), statistics.median(wake)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(machine())
    for r in range(args.rounds):
        for name, pool_class in (("multiprocessing", multiprocessing.Pool), ("corelet", corelet.Pool)):
            o, b, w = hops(pool_class, args.calls)
            print(f"round {r + 1} {name}: to the worker's call {o:.0f} us; back to the callback {b:.0f} us; "
                  f"callback to get() returning {w:.0f} us")


if __name__ == "__main__":
    main()
