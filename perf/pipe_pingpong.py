"""A one-byte ping-pong over two pipes between a process and its forked
child, both busy with nothing else: the round trip of two wake-ups between
processes that stay awake, for comparison with the hops of a Pool's call
(perf/py_pool_hops.py).

    /usr/bin/python3 perf/pipe_pingpong.py [--rounds 3] [--n 2000]
"""

import argparse
import os
import statistics
import time

from compare import machine  # perf/compare.py: the CPU, its count, the kernel


def round_trips(n):
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        while (b := os.read(r1, 1)) != b"q":
            os.write(w2, b)
        os._exit(0)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        os.write(w1, b"x")
        os.read(r2, 1)
        samples.append((time.perf_counter() - t0) * 1e6)
    os.write(w1, b"q")
    os.waitpid(pid, 0)
    for fd in (r1, w1, r2, w2):
        os.close(fd)
    return statistics.median(samples)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    print(f"{machine()}; {args.n} round trips per round")
    print("median round trip per round (us): " + ", ".join(f"{round_trips(args.n):.1f}" for _ in range(args.rounds)))


if __name__ == "__main__":
    main()
