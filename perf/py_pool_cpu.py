"""Where the CPU goes while a Pool(2) maps Beazley's count over two items:
the CPU time of every process on the machine during the map (from /proc),
corelet.Pool(2) against multiprocessing.Pool(2) (fork), alternating, each
pool made and warmed before the clock starts.

    PYTHONPATH=build/release/python /usr/bin/python3 perf/py_pool_cpu.py [--rounds 3] [--n 20000000]

It shows whether a pool's own processes (corelet's host, supervisor,
dispatcher) take CPU from the two workers, and each worker's CPU for its
count next to the map's wall time.
"""

import argparse
import multiprocessing
import os
import time

import corelet  # PYTHONPATH names the build
from compare import machine  # perf/compare.py: the CPU, its count, the kernel


def count(n):
    while n > 0:
        n -= 1
    return os.getpid()


def cpu_by_process():
    """{pid: (name, ticks of user + system time)} of every process now."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        out[int(entry)] = (name, int(fields[11]) + int(fields[12]))
    return out


def one_map(pool_class, n):
    tick = os.sysconf("SC_CLK_TCK")
    with pool_class(2) as pool:
        pool.map(abs, range(10))
        before = cpu_by_process()
        t0 = time.perf_counter()
        workers = pool.map(count, [n, n])
        wall = time.perf_counter() - t0
        after = cpu_by_process()
    used = {}
    for pid, (name, ticks) in after.items():
        d = ticks - before.get(pid, (name, 0))[1]
        if d > 0 and pid != os.getpid():
            used[pid] = d / tick
    work = [used.pop(pid, 0.0) for pid in workers]
    return wall, work, sum(used.values())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=20_000_000)
    args = ap.parse_args()
    print(f"{machine()}; count({args.n:,}) twice per map")
    for r in range(args.rounds):
        for name, pool_class in (("multiprocessing", multiprocessing.Pool), ("corelet", corelet.Pool)):
            wall, work, others = one_map(pool_class, args.n)
            print(f"round {r + 1} {name}: wall {wall:.3f} s; workers' CPU {work[0]:.2f} s, {work[1]:.2f} s; "
                  f"every other process {others:.2f} s")


if __name__ == "__main__":
    main()
