"""Where a manager's CPU goes, corelet.Manager from 1 and 2 client processes:
the request rate, the server's CPU time (/proc/PID/stat) and the clients'
(time.process_time()), each client making 40,000 dict requests (half
`d[k] = i`, half `d[k]`).

    PYTHONPATH=build/release/python /usr/bin/python3 perf/py_managers_cpu.py
    PYTHONPATH=build/release/python /usr/bin/python3 perf/py_managers_cpu.py --server-spin 0 --rounds 4

--server-spin S sets how long the server polls a channel after a request
(corelet.managers._SERVER_SPIN, before the manager starts: its server is
forked) and runs py_managers' rate() with and without it, alternating.
"""

import argparse
import multiprocessing
import os
import statistics
import time

import corelet  # PYTHONPATH names the build
import corelet.managers
import py_managers
from compare import machine  # perf/compare.py: the CPU, its count, the kernel

CALLS = 40000


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client(d, key, calls, go, done, cpus):
    go.wait()
    t0 = time.process_time()
    for i in range(calls // 2):
        d[key] = i
        d[key]
    cpus.put(time.process_time() - t0)
    done.put(time.perf_counter())


def split(clients):
    with corelet.Manager() as m:
        d = m.dict()
        go, done, cpus = multiprocessing.Event(), multiprocessing.SimpleQueue(), multiprocessing.SimpleQueue()
        procs = [corelet.Process(target=client, args=(d, k, CALLS, go, done, cpus)) for k in range(clients)]
        for p in procs:
            p.start()
        time.sleep(0.3)  # every client forked and waiting
        s0 = cpu_seconds(m._process.pid)
        t = time.perf_counter()
        go.set()
        wall = max(done.get() for _ in procs) - t
        server = cpu_seconds(m._process.pid) - s0
        used = sum(cpus.get() for _ in procs)
        for p in procs:
            p.join()
    n = clients * CALLS
    print(f"{clients} clients: {n / wall:,.0f}/s wall {wall:.2f}s; server CPU {server:.2f}s "
          f"({server / wall * 100:.0f}% of a core, {server / n * 1e6:.1f} us/request); clients CPU {used:.2f}s "
          f"({used / wall * 100:.0f}%)")


def server_spin(spin, rounds):
    shipped = corelet.managers._SERVER_SPIN
    for clients in (1, 2):
        rates = {shipped: [], spin: []}
        for _ in range(rounds):
            for s in (shipped, spin):
                corelet.managers._SERVER_SPIN = s
                rates[s].append(py_managers.rate(corelet, clients, 20000))
        print(f"{clients} clients: " + "; ".join(
            f"server spin {s * 1e6:.0f} us: median {statistics.median(v):,.0f}/s ({', '.join(f'{x:,.0f}' for x in v)})"
            for s, v in rates.items()))
    corelet.managers._SERVER_SPIN = shipped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server-spin", type=float, default=None)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    print(machine())
    if args.server_spin is not None:
        server_spin(args.server_spin, args.rounds)
    else:
        for clients in (1, 2):
            split(clients)


if __name__ == "__main__":
    main()
