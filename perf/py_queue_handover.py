"""What a thread hand-over adds to a round trip over corelet's queues: a
process and its forked child ping-pong a 100-byte message over two
corelet queues (shared memory, waited on as plain code), with the reply
taken (a) by the thread that sent the request, and (b) by a second thread
that hands it to the sender through a threading.Event, as a Pool's result
thread hands a reply to the thread in get(). Medians of N round trips per
round, the two ways interleaved in each round.

    PYTHONPATH=build/release/python /usr/bin/python3 perf/py_queue_handover.py [--rounds 3] [--n 2000]
"""

import argparse
import os
import statistics
import threading
import time

from corelet._corelet import ShmQueue  # PYTHONPATH names the build
from corelet._shared_queue import SharedQueue
from compare import machine  # perf/compare.py: the CPU, its count, the kernel

_MSG = b"x" * 100


def round_trips(n, handover):
    requests = SharedQueue._over(ShmQueue(1 << 20, 0, True))
    replies = SharedQueue._over(ShmQueue(1 << 20, 0, True))
    pid = os.fork()
    if pid == 0:
        while (m := requests.get()) != b"q":
            replies.put(m)
        os._exit(0)
    got = threading.Event()
    if handover:
        def take():
            while replies.get() != b"q":
                got.set()

        taker = threading.Thread(target=take)
        taker.start()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        requests.put(_MSG)
        if handover:
            got.wait()
            got.clear()
        else:
            replies.get()
        samples.append((time.perf_counter() - t0) * 1e6)
    requests.put(b"q")
    os.waitpid(pid, 0)
    if handover:
        replies.put(b"q")
        taker.join()
    return statistics.median(samples)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    print(f"{machine()}; {args.n} round trips per round")
    direct, via = [], []
    for _ in range(args.rounds):
        direct.append(round_trips(args.n, False))
        via.append(round_trips(args.n, True))
    print("reply taken by the sender (us): " + ", ".join(f"{v:.1f}" for v in direct))
    print("reply handed over by a second thread (us): " + ", ".join(f"{v:.1f}" for v in via))


if __name__ == "__main__":
    main()
