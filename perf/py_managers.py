"""A manager's request rate: dict get and set through a proxy, from 1, 2 and
4 client processes, multiprocessing.Manager against corelet.Manager, side by
side in each round (the ratio is taken within the round).

    PYTHONPATH=build/release/python /usr/bin/python3 perf/py_managers.py [--rounds 5] [--calls 20000]

Each client is a forked process with its own proxy; they start together (an
event) and each makes CALLS requests (half `d[k] = i`, half `d[k]`). The
rate is all requests over the time from the start to the last client's end.
"""

import argparse
import multiprocessing
import statistics
import time

import corelet  # PYTHONPATH names the build
from compare import machine  # perf/compare.py: the CPU, its count, the kernel


def client(d, key, calls, go, done):
    go.wait()
    for i in range(calls // 2):
        d[key] = i
        d[key]
    done.put(time.perf_counter())


def rate(pkg, clients, calls):
    with pkg.Manager() as m:
        d = m.dict()
        go, done = multiprocessing.Event(), multiprocessing.SimpleQueue()
        procs = [pkg.Process(target=client, args=(d, k, calls, go, done)) for k in range(clients)]
        for p in procs:
            p.start()
        time.sleep(0.2)  # every client forked and waiting
        start = time.perf_counter()
        go.set()
        ends = [done.get() for _ in procs]
        for p in procs:
            p.join()
        return clients * (calls // 2) * 2 / (max(ends) - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--clients", default="1,2,4")
    args = ap.parse_args()
    print(f"{machine()}; {args.calls} requests per client")
    for clients in [int(c) for c in args.clients.split(",")]:
        ratios, mps, cls = [], [], []
        for _ in range(args.rounds):
            a = rate(multiprocessing, clients, args.calls)
            b = rate(corelet, clients, args.calls)
            mps.append(a)
            cls.append(b)
            ratios.append(b / a)
        print(f"{clients} client(s): multiprocessing {statistics.median(mps):,.0f}/s, corelet "
              f"{statistics.median(cls):,.0f}/s, ratio median {statistics.median(ratios):.2f}x "
              f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
