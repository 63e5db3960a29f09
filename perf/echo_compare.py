#!/usr/bin/python3
"""The I/O comparison: echo and HTTP servers side by side, in one run.

Usage: /usr/bin/python3 perf/echo_compare.py BUILD_DIR [options]

BUILD_DIR is a configured and built tree with the examples and perf programs
(see perf/README.md). Servers, each pinned to one CPU (--server-cpu), the load
on another (--load-cpu):
  corelet io_uring  examples/echo_server, CORELET_IO=io_uring
  corelet epoll     examples/echo_server, CORELET_IO=epoll
  plain epoll       perf/echo_epoll (no corelet)
  Go                perf/echo_go (net, one goroutine per connection;
                    GOMAXPROCS=1 from the pinning)
all driven by perf/echo_load (raw liburing, no corelet):
  1. throughput, 64-byte messages in a closed loop on 1, 50, 300, 1000
     connections: --runs rounds, servers interleaved, medians;
  2. round trip on one connection: median (and p99) per run, median of runs;
  3. 10,000 idle connections held: server RSS growth per connection;
  4. HTTP: examples/http_hello (both backends) against Go's net/http under
     wrk (Debian's wrk), 50 and 300 connections.
Prints Markdown tables with the commands. Standard library only.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def fail(msg):
    print(f"echo_compare.py: {msg}", file=sys.stderr)
    sys.exit(1)


class Server:
    """A server process pinned to one CPU, listening on 127.0.0.1:<free port>."""

    def __init__(self, label, cmd, env, cpu):
        self.label = label
        self.cmd = ["taskset", "-c", str(cpu)] + cmd + ["127.0.0.1:0"]
        self.env = env
        full_env = dict(os.environ, **env)
        self.proc = subprocess.Popen(self.cmd, env=full_env, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not m:
            self.stop()
            fail(f"{label}: no address in {line!r}")
        self.address = f"127.0.0.1:{m.group(1)}"

    def rss_kib(self):
        # taskset execs the server: same pid.
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.kill()
        self.proc.wait()

    def shell(self):
        pre = " ".join(f"{k}={v}" for k, v in self.env.items())
        return (pre + " " if pre else "") + " ".join(self.cmd[:-1]) + " ADDR"


def run_load(build, cpu, args):
    cmd = ["taskset", "-c", str(cpu), str(build / "perf/echo_load")] + [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        fail(f"{' '.join(cmd)}: {p.stderr.strip()}")
    return dict(line.split() for line in p.stdout.splitlines() if line.strip())


def echo_servers(build, cpu):
    ex, perf = build / "examples", build / "perf"
    specs = [("corelet io_uring", [str(ex / "echo_server")], {"CORELET_IO": "io_uring"}),
             ("corelet epoll", [str(ex / "echo_server")], {"CORELET_IO": "epoll"}),
             ("plain epoll", [str(perf / "echo_epoll")], {})]
    if (perf / "echo_go").exists():
        specs.append(("Go net", [str(perf / "echo_go")], {}))
    return specs


def fmt(x):
    return f"{x:,.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", type=Path)
    ap.add_argument("--runs", type=int, default=5, help="rounds of the throughput and round-trip runs")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of one throughput run")
    ap.add_argument("--conns", default="1,50,300,1000")
    ap.add_argument("--idle", type=int, default=10000, help="idle connections (0: skip)")
    ap.add_argument("--wrk-conns", default="50,300")
    ap.add_argument("--wrk-seconds", type=int, default=3)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--load-cpu", type=int, default=1)
    a = ap.parse_args()
    build = a.build.resolve()
    conns = [int(c) for c in a.conns.split(",")]
    specs = echo_servers(build, a.server_cpu)
    labels = [s[0] for s in specs]

    print(f"# I/O comparison — {time.strftime('%Y-%m-%d %H:%M')} on {os.uname().release}, "
          f"{os.cpu_count()} CPUs; servers on CPU {a.server_cpu}, load on CPU {a.load_cpu}\n")

    # ---- 1 and 2: throughput and round trip, all servers up, interleaved ----
    servers = [Server(label, cmd, env, a.server_cpu) for label, cmd, env in specs]
    tput = {(s.label, c): [] for s in servers for c in conns}
    rtt = {s.label: [] for s in servers}
    try:
        for r in range(a.runs):
            order = servers[r % len(servers):] + servers[:r % len(servers)]
            for c in conns:
                for s in order:
                    out = run_load(build, a.load_cpu, ["tput", s.address, c, a.seconds])
                    tput[(s.label, c)].append(float(out["msgs_per_sec"]))
            for s in order:
                out = run_load(build, a.load_cpu, ["rtt", s.address, 1])
                rtt[s.label].append(float(out["rtt_median_ns"]))
            print(f"<!-- round {r + 1}/{a.runs} done -->", file=sys.stderr)
    finally:
        for s in servers:
            s.stop()

    med = {k: statistics.median(v) for k, v in tput.items()}
    print("## Echo throughput (64-byte messages, closed loop; messages/s, median of "
          f"{a.runs} runs of {a.seconds:g} s)\n")
    print("| connections | " + " | ".join(labels) +
          " | corelet / plain epoll | corelet / Go | corelet epoll / io_uring |")
    print("|---:|" + "---:|" * len(labels) + "---:|---:|---:|")
    for c in conns:
        row = [fmt(med[(l, c)]) for l in labels]
        cu = med[("corelet io_uring", c)]
        vs_epoll = cu / med[("plain epoll", c)]
        vs_go = cu / med[("Go net", c)] if "Go net" in labels else float("nan")
        be = med[("corelet epoll", c)] / cu
        print(f"| {c} | " + " | ".join(row) + f" | {vs_epoll:.2f} | {vs_go:.2f} | {be:.2f} |")
    print("\nSpread (min–max of the runs), messages/s:\n")
    for c in conns:
        print(f"- {c} connections: " + "; ".join(
            f"{l} {fmt(min(tput[(l, c)]))}–{fmt(max(tput[(l, c)]))}" for l in labels))

    print("\n## Round trip, one connection (median of each run's median, µs)\n")
    print("| " + " | ".join(labels) + " | corelet / plain epoll |")
    print("|" + "---:|" * (len(labels) + 1))
    rmed = {l: statistics.median(v) / 1000 for l, v in rtt.items()}
    print("| " + " | ".join(f"{rmed[l]:.1f}" for l in labels) +
          f" | {rmed['corelet io_uring'] / rmed['plain epoll']:.2f} |")

    # ---- 3: idle connections ----
    if a.idle:
        print(f"\n## {a.idle:,} idle connections held by one server\n")
        print("| server | RSS before (KiB) | RSS holding them (KiB) | bytes per connection |")
        print("|---|---:|---:|---:|")
        for label, cmd, env in specs:
            s = Server(label, cmd, env, a.server_cpu)
            try:
                before = s.rss_kib()
                load = subprocess.Popen(["taskset", "-c", str(a.load_cpu), str(build / "perf/echo_load"), "idle",
                                         s.address, str(a.idle)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
                line = load.stdout.readline()
                if not line.startswith("ready"):
                    fail(f"{label}: idle load did not get ready: {line!r}")
                time.sleep(0.5)
                after = s.rss_kib()
                load.stdin.close()
                load.wait()
            finally:
                s.stop()
            print(f"| {label} | {before:,} | {after:,} | {(after - before) * 1024 / a.idle:,.0f} |")

    # ---- 4: HTTP under wrk ----
    wrk = shutil.which("wrk")
    if not wrk:
        print("\n(wrk not installed: HTTP comparison skipped; scripts/deps installs it)")
    else:
        ex, perf = build / "examples", build / "perf"
        hspecs = [("corelet io_uring", [str(ex / "http_hello")], {"CORELET_IO": "io_uring"}),
                  ("corelet epoll", [str(ex / "http_hello")], {"CORELET_IO": "epoll"})]
        if (perf / "http_go").exists():
            hspecs.append(("Go net/http", [str(perf / "http_go")], {}))
        hservers = [Server(label, cmd, env, a.server_cpu) for label, cmd, env in hspecs]
        wconns = [int(c) for c in a.wrk_conns.split(",")]
        rps = {(s.label, c): [] for s in hservers for c in wconns}
        try:
            for r in range(max(1, a.runs // 2)):
                for c in wconns:
                    for s in hservers:
                        cmd = ["taskset", "-c", str(a.load_cpu), wrk, "-t1", f"-c{c}", f"-d{a.wrk_seconds}s",
                               f"http://{s.address}/"]
                        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
                        m = re.search(r"Requests/sec:\s+([\d.]+)", p.stdout)
                        if not m or "Non-2xx" in p.stdout or "Socket errors" in p.stdout:
                            fail(f"wrk against {s.label}: {p.stdout}{p.stderr}")
                        rps[(s.label, c)].append(float(m.group(1)))
        finally:
            for s in hservers:
                s.stop()
        hl = [s[0] for s in hspecs]
        print(f"\n## HTTP hello under wrk (requests/s, median of {max(1, a.runs // 2)} runs of {a.wrk_seconds} s)\n")
        print("| connections | " + " | ".join(hl) + " | corelet / Go |")
        print("|---:|" + "---:|" * len(hl) + "---:|")
        for c in wconns:
            m = {l: statistics.median(rps[(l, c)]) for l in hl}
            go = m.get("Go net/http", float("nan"))
            print(f"| {c} | " + " | ".join(fmt(m[l]) for l in hl) + f" | {m['corelet io_uring'] / go:.2f} |")
        print(f"\nwrk: `taskset -c {a.load_cpu} wrk -t1 -cN -d{a.wrk_seconds}s http://ADDR/`")

    print("\nServers:\n")
    for label, cmd, env in specs:
        pre = " ".join(f"{k}={v}" for k, v in env.items())
        print(f"- {label}: `{(pre + ' ') if pre else ''}taskset -c {a.server_cpu} {' '.join(cmd)} 127.0.0.1:0`")
    print(f"- load: `taskset -c {a.load_cpu} {build}/perf/echo_load tput ADDR CONNS {a.seconds:g}` and "
          f"`echo_load rtt ADDR 1`, `echo_load idle ADDR {a.idle}`")


if __name__ == "__main__":
    main()
