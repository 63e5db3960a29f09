"""Where a manager's CPU goes, corelet.Manager from 1 and 2 client processes:
the request rate, the server's CPU time (/proc/PID/stat) and the clients'
(time.process_time()), each client making 40,000 dict requests (half
`d[k] = i`, half `d[k]`).

    PYTHONPATH=build/release/python /usr/bin/python3 perf/py_managers_cpu.py
    PYTHONPATH=build/release/python /usr/bin/python3 perf/py_managers_cpu.py --server-spin 0 --rounds 4

--server-spin S sets how long the server polls a channel after a request
(corelet.managers._SERVER_SPIN, before the manager starts: its server is
forked) and runs py_managers' rate() with and without it, alternating.
--client-yields N does the same with the client's yielding polls of a reply
(corelet.managers._CLIENT_YIELDS), from 1, 2 and 4 clients.

    PYTHONPATH=build/release/python /usr/bin/python3 perf/py_managers_cpu.py --client-yields 0 --rounds 5

--answer times the server's answer to a dict request in this process, as a
coroutine (Server._answer) and without one (Server._answer_plain).
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


def compare(setting, value, rounds, clients_list=(1, 2, 4)):
    """py_managers' rate() with corelet.managers.<setting> as shipped and as
    `value`, alternating within each round (set before the manager and its
    clients are forked)."""
    shipped = getattr(corelet.managers, setting)
    for clients in clients_list:
        rates = {shipped: [], value: []}
        for _ in range(rounds):
            for v in (shipped, value):
                setattr(corelet.managers, setting, v)
                rates[v].append(py_managers.rate(corelet, clients, 20000))
        print(f"{clients} clients: " + "; ".join(
            f"{setting} {v}: median {statistics.median(r):,.0f}/s ({', '.join(f'{x:,.0f}' for x in r)})"
            for v, r in rates.items()), flush=True)
    setattr(corelet.managers, setting, shipped)


def answer_cost(rounds):
    """The server's answer to a dict set and get, in this process (no
    channel, no client): Server._answer driven as a coroutine against
    Server._answer_plain, which the channel's loop tries first."""
    import timeit

    server = corelet.managers.Server(corelet.managers.SyncManager._registry, None, b"key", "pickle")
    d = {}
    ident = "%x" % id(d)
    server.id_to_obj[ident] = (d, {"__setitem__", "__getitem__"}, None)
    server._on_scheduler.add(ident)
    requests = [(ident, "__setitem__", (0, 5), {}), (ident, "__getitem__", (0,), {})]

    def as_coroutine():
        for r in requests:
            try:
                server._answer(r).send(None)
            except StopIteration:
                pass

    def plain():
        for r in requests:
            server._answer_plain(r)

    n = 100_000
    times = {"Server._answer (a coroutine)": [], "Server._answer_plain": []}
    for _ in range(rounds):
        for name, fn in zip(times, (as_coroutine, plain)):
            times[name].append(timeit.timeit(fn, number=n) / n / len(requests) * 1e6)
    for name, t in times.items():
        print(f"{name}: median {statistics.median(t):.2f} us/request ({', '.join(f'{x:.2f}' for x in t)})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server-spin", type=float, default=None)
    ap.add_argument("--client-yields", type=int, default=None)
    ap.add_argument("--answer", action="store_true")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    print(machine())
    if args.answer:
        answer_cost(args.rounds)
    elif args.server_spin is not None:
        compare("_SERVER_SPIN", args.server_spin, args.rounds, (1, 2))
    elif args.client_yields is not None:
        compare("_CLIENT_YIELDS", args.client_yields, args.rounds)
    else:
        for clients in (1, 2):
            split(clients)


if __name__ == "__main__":
    main()
