#!/usr/bin/python3
"""Beazley's count(n) twice: sequentially, in two threads (the GIL makes that
no faster), and on two corelet workers (two interpreters, no shared GIL).

    PYTHONPATH=build/release/python /usr/bin/python3 examples/python/count_cores.py [N]
"""

import sys
import threading
import time

import corelet


def count(n):
    while n > 0:
        n -= 1
    return n


def on_workers(n):
    def main():
        a = corelet.spawn_on(0, count, n)
        b = corelet.spawn_on(1, count, n)
        yield a.join()
        yield b.join()

    corelet.run(main, workers=2)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    t0 = time.perf_counter()
    count(n)
    count(n)
    seq = time.perf_counter() - t0

    # The workers first: a cluster forks, so it starts before any thread does.
    t0 = time.perf_counter()
    on_workers(n)
    wkr = time.perf_counter() - t0

    t0 = time.perf_counter()
    threads = [threading.Thread(target=count, args=(n,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    thr = time.perf_counter() - t0
    print(f"count({n}) twice: sequential {seq:.2f} s, 2 threads {thr:.2f} s, 2 corelet workers {wkr:.2f} s")


if __name__ == "__main__":
    main()
