#!/usr/bin/python3
"""profile_loads — which loads are CPU-bound and which I/O-bound, and what
each way of running them makes of them.

Usage: /usr/bin/python3 perf/profile_loads.py BUILD_DIR [--seconds S] [--runs N]
                                              [--workers 1,2,4] [--tasks T] [--png PATH]

Two loads, each run for a fixed time and counted in operations per second:
  I/O-bound: T tasks, each in a loop "sleep 1 ms, write 64 bytes to a
    loopback TCP connection, read them back at its other end";
  CPU-bound: Beazley's count (seed 002) in chunks of ~1 ms.
Each runs on W workers (1, 2, 4) under:
  C++:    one corelet scheduler (W tasklets for count; all T tasks for I/O),
          a corelet scheduler per worker process (corelet::run(Config)),
          std::thread (W threads; a thread waits for one task at a time);
  Python: one corelet scheduler, corelet.run(workers=W), threading (W
          threads), multiprocessing (W processes).
It prints a table of medians over --runs interleaved rounds and draws a PNG
(matplotlib) of throughput against workers for each load, plus, from
corelet.stats() / corelet::stats(), how the tasklets of both loads sharing
one scheduler spend their time: running, waiting (I/O, timer), or ready and
waiting for the CPU. The C++ half is the profile_loads program in BUILD_DIR/perf.
"""

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

COUNT_CHUNK = 20_000  # count steps per CPU chunk in Python (~1 ms here)
MSG = b"x" * 64


def count(n):
    while n > 0:
        n -= 1


def tcp_pair():
    with socket.create_server(("127.0.0.1", 0)) as srv:
        a = socket.create_connection(srv.getsockname())
        b, _ = srv.accept()
    a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return a, b


def recv_exactly(sock, n):
    got = b""
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        if not chunk:
            raise EOFError
        got += chunk
    return got


# ---- blocking workers: threading and multiprocessing -----------------------------


def blocking_io(tasks, end):
    """One thread's (or process's) share: its tasks in turn, one wait at a time."""
    pairs = [tcp_pair() for _ in range(tasks)]
    ops = 0
    k = 0
    while time.monotonic() < end:
        a, b = pairs[k]
        time.sleep(0.001)
        a.sendall(MSG)
        recv_exactly(b, len(MSG))
        ops += 1
        k = (k + 1) % len(pairs)
    for a, b in pairs:
        a.close()
        b.close()
    return ops


def blocking_cpu(_tasks, end):
    ops = 0
    while time.monotonic() < end:
        count(COUNT_CHUNK)
        ops += 1
    return ops


def run_threads(load, workers, tasks, secs):
    fn = blocking_io if load == "io" else blocking_cpu
    results = [0] * workers
    end = time.monotonic() + secs + 0.05 * workers  # the pairs are made inside

    def body(i):
        results[i] = fn(max(1, tasks // workers), end)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(workers)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(results) / (end - t0)


def _mp_body(args):
    load, tasks, end = args
    return (blocking_io if load == "io" else blocking_cpu)(tasks, end)


def run_processes(pool, load, workers, tasks, secs):
    pool.map(count, [1] * workers)  # every worker started
    t0 = time.monotonic()
    end = t0 + secs + 0.05
    ops = pool.map(_mp_body, [(load, max(1, tasks // workers), end)] * workers, 1)
    return sum(ops) / (end - t0)


# ---- corelet ---------------------------------------------------------------------


def corelet_part(load, tasklets, secs):
    """Runs in a scheduler: `tasklets` I/O tasklets or CPU tasklets for secs;
    returns the operations done. (A generator: run it as a tasklet.)"""
    import corelet

    end = time.monotonic() + secs
    done = [0]

    def io_tasklet(a, b):
        while time.monotonic() < end:
            yield corelet.sleep(0.001)
            yield a.sendall(MSG)
            yield b.recv_exactly(len(MSG))
            done[0] += 1

    def cpu_tasklet():
        while time.monotonic() < end:
            count(COUNT_CHUNK)
            done[0] += 1
            yield corelet.sleep(0)  # let the others run

    pairs = []
    if load == "io":
        for _ in range(tasklets):
            a, b = tcp_pair()
            pairs.append((corelet.socket.wrap(a), corelet.socket.wrap(b)))
        tasks = [corelet.spawn(io_tasklet, a, b, name="io") for a, b in pairs]
    else:
        tasks = [corelet.spawn(cpu_tasklet, name="cpu") for _ in range(tasklets)]
    for t in tasks:
        yield t.join()
    for a, b in pairs:
        a.close()
        b.close()
    return done[0]


def run_corelet_one(load, workers, tasks, secs):
    import corelet

    n = tasks if load == "io" else workers
    t0 = time.monotonic()
    ops = corelet.run(corelet_part, load, n, secs)
    return ops / (time.monotonic() - t0)


def run_corelet_cluster(load, workers, tasks, secs):
    """In a child interpreter: a cluster may only start in a process with one thread."""
    code = (
        "import sys, time, corelet\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from profile_loads import corelet_part\n"
        f"load, workers, per, secs = {load!r}, {workers}, {max(1, tasks // workers) if load == 'io' else 1}, {secs}\n"
        "def main():\n"
        "    fs = [corelet.spawn_on(w, corelet_part, load, per, secs) for w in range(workers)]\n"
        "    t0 = time.monotonic()\n"
        "    ops = 0\n"
        "    for f in fs:\n"
        "        ops += yield f.join()\n"
        "    return ops / (time.monotonic() - t0 + 1e-9)\n"
        "print(corelet.run(main, workers=workers))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return float(r.stdout.strip().splitlines()[-1])


def python_split(secs):
    """The time split of 100 I/O and 2 CPU tasklets sharing one scheduler."""
    import corelet

    box = {}

    def main():
        both = [corelet.spawn(corelet_part, "io", 100, secs), corelet.spawn(corelet_part, "cpu", 2, secs)]
        yield corelet.sleep(secs * 0.9)
        box["st"] = corelet.stats()
        for t in both:
            yield t.join()

    corelet.run(main)
    return summarize_split(
        "Python",
        [
            (t["name"], t["run"], t["waits"]["io"], t["waits"]["timer"], t["waits"]["sync"], t["waits"]["remote"],
             t["waits"]["ready"])
            for t in box["st"]["tasklets"]
        ],
    )


def summarize_split(lang, rows):
    out = []
    for name in ("io", "cpu"):
        mine = [r for r in rows if r[0] == name]
        if not mine:
            continue
        sums = [sum(r[i] for r in mine) for i in range(1, 7)]
        total = sum(sums) or 1.0
        keys = ("run", "io", "timer", "sync", "remote", "ready")
        d = {"split": name, "lang": lang, "tasklets": len(mine)}
        d.update({k: v / total for k, v in zip(keys, sums)})
        out.append(d)
    return out


# ---- driver ----------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_dir")
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--png", default=str(Path(__file__).resolve().parent.parent / "docs" / "profile_loads.png"))
    ap.add_argument("--redraw", metavar="JSON", help="draw the picture again from a run's .json, without measuring")
    args = ap.parse_args()
    if args.redraw:
        d = json.loads(Path(args.redraw).read_text())
        med = {tuple(r[:4]): r[4] for r in d["medians"]}
        speedup = {tuple(r[:3]): r[3] for r in d["speedups"]}
        keys = sorted({k[:3] for k in med}, key=lambda k: (k[2], k[0], k[1]))
        draw(args.png, med, speedup, d["splits"], d["workers"], keys)
        return
    build = Path(args.build_dir).resolve()
    sys.path.insert(0, str(build / "python"))
    os.environ["PYTHONPATH"] = str(build / "python") + os.pathsep + os.environ.get("PYTHONPATH", "")
    os.environ.setdefault("CORELET_STALL_MS", "0")  # the CPU loads hog on purpose
    import corelet  # noqa: F401 - fails early if the build has no Python package

    exe = build / "perf" / "profile_loads"
    workers = [int(w) for w in args.workers.split(",")]
    secs, tasks = args.seconds, args.tasks
    rows = {}  # (lang, runtime, load, workers) -> [ops/s]

    def add(lang, runtime, load, w, value):
        rows.setdefault((lang, runtime, load, w), []).append(value)

    def cxx(*argv):
        r = subprocess.run([str(exe), *map(str, argv)], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"{exe} {argv}: {r.stderr}")
        return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]

    pools = {w: multiprocessing.get_context("fork").Pool(w) for w in workers}
    try:
        for rnd in range(args.runs):
            for load in ("io", "cpu"):
                for w in workers:
                    for rt in ("corelet", "cluster", "thread"):
                        for d in cxx("load", load, rt, w, secs, tasks):
                            add("C++", d["runtime"], load, w, d["ops_per_s"])
                    add("Python", "corelet, one scheduler", load, w, run_corelet_one(load, w, tasks, secs))
                    add("Python", "corelet, a scheduler per core", load, w, run_corelet_cluster(load, w, tasks, secs))
                    add("Python", "threading", load, w, run_threads(load, w, tasks, secs))
                    add("Python", "multiprocessing", load, w, run_processes(pools[w], load, w, tasks, secs))
            print(f"round {rnd + 1}/{args.runs} done", file=sys.stderr)
    finally:
        for p in pools.values():
            p.terminate()
    splits = cxx("split", secs) + python_split(secs)

    med = {k: statistics.median(v) for k, v in rows.items()}
    # CPU-bound speed-ups over the same language's one thread, round by round
    # (this host's speed drifts between rounds more than within one).
    speedup = {}
    for (lang, rt, load, w), v in rows.items():
        if load == "cpu":
            base = rows[(lang, "std::thread" if lang == "C++" else "threading", "cpu", workers[0])]
            speedup[(lang, rt, w)] = statistics.median(x / b for x, b in zip(v, base))
    print(f"{os.cpu_count()} CPUs; {tasks} I/O tasks; {secs} s per measurement; medians of {args.runs} rounds "
          "(operations per second: I/O rounds, or count chunks of ~1 ms)\n")
    print("| language | runtime | load | " + " | ".join(f"{w} workers" for w in workers) + " |")
    print("|---|---|---|" + "---:|" * len(workers))
    keys = sorted({(k[0], k[1], k[2]) for k in med}, key=lambda k: (k[2], k[0], k[1]))
    for lang, rt, load in keys:
        cells = " | ".join(f"{med[(lang, rt, load, w)]:,.0f}" for w in workers)
        print(f"| {lang} | {rt} | {'I/O-bound' if load == 'io' else 'CPU-bound'} | {cells} |")
    print("\nCPU-bound: speed-up over one thread of the same language (median of the rounds' ratios):\n")
    print("| language | runtime | " + " | ".join(f"{w} workers" for w in workers) + " |")
    print("|---|---|" + "---:|" * len(workers))
    for lang, rt, load in keys:
        if load == "cpu":
            print(f"| {lang} | {rt} | " + " | ".join(f"{speedup[(lang, rt, w)]:.2f}x" for w in workers) + " |")
    print("\nWhere the time of 100 I/O tasklets and 2 CPU tasklets sharing one scheduler goes (stats()):\n")
    print("| language | tasklets | run | I/O wait | timer wait | other waits | ready (waiting for the CPU) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for s in splits:
        print(f"| {s['lang']} | {s['tasklets']} {s['split']} | {s['run']:.0%} | {s['io']:.0%} | {s['timer']:.0%} | "
              f"{s['sync'] + s['remote']:.0%} | {s['ready']:.0%} |")
    print("\nAll rounds:")
    for k, v in rows.items():
        print(f"- {k[0]} {k[1]} {k[2]} {k[3]} workers: {', '.join(f'{x:,.0f}' for x in v)}")
    draw(args.png, med, speedup, splits, workers, keys)
    with open(Path(args.png).with_suffix(".json"), "w") as f:  # the figures behind the picture
        json.dump({"workers": workers, "medians": [[*k, v] for k, v in med.items()],
                   "speedups": [[*k, v] for k, v in speedup.items()], "splits": splits}, f, indent=1)
    print(f"\nwrote {args.png}")


def draw(path, med, speedup, splits, workers, keys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {
        "corelet, one scheduler": "tab:orange",
        "corelet, a scheduler per core": "tab:blue",
        "std::thread": "tab:green",
        "threading": "tab:green",
        "multiprocessing": "tab:brown",
    }
    styles = {"C++": "-", "Python": "--"}
    fig, axes = plt.subplots(1, 3, figsize=(17, 6.2))
    ax = axes[0]
    for lang, rt, load in keys:
        if load == "io":
            ax.plot(workers, [med[(lang, rt, load, w)] for w in workers], styles[lang], color=colors[rt], marker="o",
                    label=f"{lang}: {rt}")
    ax.set_title("I/O-bound: 200 tasks of sleep 1 ms + loopback TCP")
    ax.set_ylabel("rounds per second (log)")
    ax.set_yscale("log")
    # The CPU-bound load: each language's chunk is its own, so the panel shows
    # the speed-up over that language's one thread.
    ax = axes[1]
    for lang, rt, load in keys:
        if load == "cpu":
            ax.plot(workers, [speedup[(lang, rt, w)] for w in workers], styles[lang], color=colors[rt],
                    marker="o", label=f"{lang}: {rt}")
    ax.set_title("CPU-bound: count")
    ax.set_ylabel("speed-up over one thread")
    for ax in axes[:2]:
        ax.set_xlabel("workers (threads, processes or schedulers)")
        ax.set_xticks(workers)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    ax = axes[2]
    labels = [f"{s['lang']}\n{s['tasklets']} {s['split']}" for s in splits]
    parts = (("run", "running", "tab:blue"), ("io", "I/O wait", "tab:orange"), ("timer", "timer wait", "tab:green"),
             ("ready", "ready: waiting for the CPU", "tab:red"))
    bottom = [0.0] * len(splits)
    for key, label, color in parts:
        vals = [s[key] for s in splits]
        ax.bar(labels, vals, bottom=bottom, label=label, color=color)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_title("both loads on one scheduler: corelet.stats()")
    ax.set_ylabel("share of each tasklet's life")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
