#!/usr/bin/python3
"""The processing package's four benchmark tables, for corelet against
multiprocessing and threading, in one run.

Usage: /usr/bin/python3 perf/py_processing.py BUILD_DIR [--runs N] [--scale F]

BUILD_DIR/python holds the corelet package. Each round runs every
measurement once, in a fixed interleaved order; the tables show medians.
  objects passed per second: 256-byte strings from a producer to a consumer
      through a Queue and through a Pipe (corelet and multiprocessing: two
      processes; threading: queue.Queue between two threads);
  lock acquire/release pairs per second (one process, uncontended);
  condition wait/notify pairs per second, by two processes (threading: two
      threads) taking turns;
  integers read from a shared array per second (a Value/Array with its lock,
      item by item, as processing's table; threading: a list).
--scale multiplies every count (0.01 for a smoke run). multiprocessing uses
the fork start method (Debian's default), as the corelet side does.
"""

import argparse
import multiprocessing
import os
import queue
import statistics
import sys
import threading
import time
from pathlib import Path

MSG = "x" * 256


def produce_q(q, n):
    for _ in range(n):
        q.put(MSG)


def produce_pipe(conn, n):
    for _ in range(n):
        conn.send(MSG)


def consume_q(q, n):
    for _ in range(n):
        q.get()


def objects_per_s(make_queue, start, n, via_pipe=False):
    if via_pipe:
        rx, tx = make_queue()
        p = start(produce_pipe, (tx, n))
        t0 = time.perf_counter()
        for _ in range(n):
            rx.recv()
    else:
        q = make_queue()
        p = start(produce_q, (q, n))
        t0 = time.perf_counter()
        for _ in range(n):
            q.get()
    dt = time.perf_counter() - t0
    p.join()
    return n / dt


def lock_pairs_per_s(lock, n):
    t0 = time.perf_counter()
    for _ in range(n):
        lock.acquire()
        lock.release()
    return n / (time.perf_counter() - t0)


def cond_partner(cond, turn, n):
    # Takes turns with the measuring side: waits for turn == 1, sets it to 0.
    for _ in range(n):
        with cond:
            while turn.value != 1:
                cond.wait()
            turn.value = 0
            cond.notify()


def cond_pairs_per_s(make_cond, make_int, start, n):
    cond = make_cond()
    turn = make_int()
    p = start(cond_partner, (cond, turn, n))
    t0 = time.perf_counter()
    for _ in range(n):
        with cond:
            turn.value = 1
            cond.notify()
            while turn.value != 0:
                cond.wait()
    dt = time.perf_counter() - t0
    p.join()
    return n / dt


class _Box:
    def __init__(self):
        self.value = 0


def array_reads_per_s(arr, n):
    size = len(arr)
    t0 = time.perf_counter()
    for i in range(n):
        arr[i % size]
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_dir")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(args.build_dir) / "python"))
    import corelet  # noqa: E402

    mp = multiprocessing.get_context("fork")

    def n(base):
        return max(100, int(base * args.scale))

    def start_cl(fn, a):
        p = corelet.Process(target=fn, args=a)
        p.start()
        return p

    def start_mp(fn, a):
        p = mp.Process(target=fn, args=a)
        p.start()
        return p

    def start_th(fn, a):
        t = threading.Thread(target=fn, args=a)
        t.start()
        return t

    benches = [
        ("Queue objects/s", "corelet", lambda: objects_per_s(corelet.Queue, start_cl, n(200_000))),
        ("Queue objects/s", "multiprocessing", lambda: objects_per_s(mp.Queue, start_mp, n(100_000))),
        ("Queue objects/s", "threading", lambda: objects_per_s(queue.Queue, start_th, n(100_000))),
        ("Pipe objects/s", "corelet", lambda: objects_per_s(lambda: corelet.Pipe(False), start_cl, n(200_000), True)),
        ("Pipe objects/s", "multiprocessing", lambda: objects_per_s(lambda: mp.Pipe(False), start_mp, n(100_000), True)),
        ("lock acquire/release pairs/s", "corelet", lambda: lock_pairs_per_s(corelet.Lock(), n(500_000))),
        ("lock acquire/release pairs/s", "multiprocessing", lambda: lock_pairs_per_s(mp.Lock(), n(500_000))),
        ("lock acquire/release pairs/s", "threading", lambda: lock_pairs_per_s(threading.Lock(), n(500_000))),
        ("condition wait/notify pairs/s", "corelet",
         lambda: cond_pairs_per_s(corelet.Condition, lambda: corelet.Value("i", 0, lock=False), start_cl, n(20_000))),
        ("condition wait/notify pairs/s", "multiprocessing",
         lambda: cond_pairs_per_s(mp.Condition, lambda: mp.Value("i", 0, lock=False), start_mp, n(20_000))),
        ("condition wait/notify pairs/s", "threading",
         lambda: cond_pairs_per_s(threading.Condition, _Box, start_th, n(20_000))),
        ("integers read from a shared array/s", "corelet", lambda: array_reads_per_s(corelet.Array("i", range(1000)), n(300_000))),
        ("integers read from a shared array/s", "multiprocessing", lambda: array_reads_per_s(mp.Array("i", range(1000)), n(300_000))),
        ("integers read from a shared array/s", "threading (a list)", lambda: array_reads_per_s(list(range(1000)), n(300_000))),
    ]
    rounds = {}
    for r in range(args.runs):
        for table, who, fn in benches:
            rounds.setdefault((table, who), []).append(fn())
        print(f"round {r + 1}/{args.runs} done", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in rounds.items()}

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; medians of {args.runs} interleaved rounds\n")
    table = None
    for (t, who), _ in rounds.items():
        if t != table:
            table = t
            print(f"\n| {t} | per second | vs multiprocessing | all rounds |")
            print("|---|---:|---:|---|")
        ref = med.get((t, "multiprocessing"))
        ratio = f"{med[(t, who)] / ref:.2f}x" if ref else ""
        print(f"| {who} | {med[(t, who)]:,.0f} | {ratio} | {', '.join(f'{v:,.0f}' for v in rounds[(t, who)])} |")
    print()
    q = med[("Queue objects/s", "corelet")] / med[("Queue objects/s", "multiprocessing")]
    p = med[("Pipe objects/s", "corelet")] / med[("Pipe objects/s", "multiprocessing")]
    print("| target | measured | met? |")
    print("|---|---|---|")
    print(f"| cross-process Queue >= 10x multiprocessing.Queue objects/s | **{q:.2f}x** | {'yes' if q >= 10 else 'no'} |")
    print(f"| Pipe >= 3x multiprocessing.Pipe | **{p:.2f}x** | {'yes' if p >= 3 else 'no'} |")


if __name__ == "__main__":
    main()
