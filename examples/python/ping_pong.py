#!/usr/bin/python3
"""A call bounced between two worker processes: worker 0 calls worker 1,
which calls back into worker 0, ROUNDS times; prints the round trip.

    PYTHONPATH=build/release/python /usr/bin/python3 examples/python/ping_pong.py [ROUNDS]
"""

import os
import sys
import time

import corelet


def pong(i):
    return i + 1, os.getpid()


def main(rounds):
    v = 0
    pids = set()
    t0 = time.perf_counter()
    for _ in range(rounds):
        v, pid = yield corelet.call_on(1, pong, v)
        pids.add(pid)
    dt = time.perf_counter() - t0
    print(f"{rounds} calls to worker 1 (pid {pids.pop()}) from worker 0 (pid {os.getpid()}): "
          f"{dt / rounds * 1e6:.1f} us per round trip, final value {v}")


if __name__ == "__main__":
    corelet.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 10_000, workers=2)
