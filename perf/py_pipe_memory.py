"""A corelet.Pipe's queues in memfds (as Pipe makes them, so that an end can
be pickled to a process that did not inherit it) against the same queues in
anonymous shared memory (as before), side by side in each round: 256-byte
strings from a corelet.Process child to its parent, as py_processing.py's
Pipe table.

    PYTHONPATH=build/release/python /usr/bin/python3 perf/py_pipe_memory.py [--rounds 5] [--n 200000]
"""

import argparse
import statistics

import corelet  # PYTHONPATH names the build
from compare import machine  # perf/compare.py: the CPU, its count, the kernel
from corelet._shared_queue import Connection, SharedQueue
from py_processing import objects_per_s


def anonymous_pipe():
    q = SharedQueue(buffer=1 << 22, _shareable=False)
    return Connection(q, None), Connection(None, q)


def start(fn, args):
    p = corelet.Process(target=fn, args=args)
    p.start()
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=200_000)
    args = ap.parse_args()
    print(f"{machine()}; {args.n} strings of 256 bytes per round")
    rates = {"memfd": [], "anonymous": []}
    for _ in range(args.rounds):
        rates["memfd"].append(objects_per_s(lambda: corelet.Pipe(False), start, args.n, True))
        rates["anonymous"].append(objects_per_s(anonymous_pipe, start, args.n, True))
    for name, r in rates.items():
        print(f"{name}: median {statistics.median(r) / 1e6:.2f} M/s ({', '.join(f'{x / 1e6:.2f}' for x in r)})")
    ratios = [a / b for a, b in zip(rates["memfd"], rates["anonymous"])]
    print(f"memfd / anonymous: median {statistics.median(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)})")


if __name__ == "__main__":
    main()
