#!/usr/bin/python3
"""Runs corelet's benchmarks and their baselines, prints medians and ratios.

Usage: /usr/bin/python3 perf/compare.py BUILD_DIR [--quick] [options]

Builds nothing: BUILD_DIR is a configured and built tree (see perf/README.md).
Runs, pinned to one CPU with taskset:
  1. every perf/*_bench program (corelet and Boost.Fiber variants in one run),
     with --benchmark_repetitions and random interleaving, and prints the
     medians, the ratio corelet / Boost.Fiber and the issue's target;
  2. go_reference (the same micro work on goroutines, GOMAXPROCS=1);
  3. skynet on corelet, Boost.Fiber and Go (GOMAXPROCS=1), alternating, a few
     runs each: median time, largest peak RSS;
  4. parked (1,000,000 tasklets parked at once) and its Go counterpart.
Output is Markdown: the tables and the command beside each can go into
perf/RESULTS.md as they are. Standard library only (Debian's python3).
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

MICRO = ["yield_bench", "spawn_bench", "channel_bench", "mutex_bench"]
# Row order of the tables; benchmarks not listed follow in the order they came.
ORDER = ["yield_round_trip", "spawn_join", "channel_ping_pong", "mutex_hand_off",
         "yield_round_trip_mixed_mxcsr", "context_round_trip", "context_round_trip_mixed_mxcsr"]
# The targets: corelet time / Boost.Fiber time at most this.
TARGETS = {"yield_round_trip": 1 / 2, "spawn_join": 1 / 3, "channel_ping_pong": 1 / 2}
TARGET_TEXT = {1 / 2: "<= 1/2", 1 / 3: "<= 1/3"}
TIMEOUT = 900  # seconds for any one program


def fail(msg):
    print(f"compare.py: {msg}", file=sys.stderr)
    sys.exit(1)


def shell_join(cmd, env=None):
    pre = " ".join(f"{k}={v}" for k, v in (env or {}).items())
    return (pre + " " if pre else "") + " ".join(cmd)


def run(cmd, env=None):
    """Runs cmd (extra environment `env`), returns its stdout; fails loudly."""
    full_env = dict(os.environ, **(env or {}))
    try:
        p = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        fail(f"timed out after {TIMEOUT} s: {shell_join(cmd, env)}")
    except OSError as e:
        fail(f"cannot run {cmd[0]}: {e}")
    if p.returncode != 0:
        err = p.stderr.strip()
        if len(err) > 2000:  # a deadlock report lists every tasklet
            err = err[:2000] + f"\n... ({len(err) - 2000} more characters)"
        fail(f"exit {p.returncode}: {shell_join(cmd, env)}\n{err}")
    return p.stdout


def key_values(line):
    """'name a=1 b=x' -> {'a': '1', 'b': 'x'}"""
    return dict(re.findall(r"(\w+)=(\S+)", line))


def machine():
    model = "unknown CPU"
    try:
        for line in run(["lscpu"]).splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except SystemExit:
        pass
    return f"{model}, {os.cpu_count()} CPUs, Linux {platform.release()}"


def source_dir(build):
    """The source tree the build directory was configured from."""
    try:
        for line in (build / "CMakeCache.txt").read_text().splitlines():
            if line.startswith("CMAKE_HOME_DIRECTORY:"):
                return Path(line.split("=", 1)[1])
    except OSError:
        pass
    return Path(__file__).resolve().parent.parent


def source_state(src):
    """The commit of the source tree, and which runtime files differ from it
    now (they may have changed since the build)."""
    try:
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--", "core", "sched",
                                "include", "CMakeLists.txt", "cmake"],
                               capture_output=True, text=True).stdout.split("\n")
        dirty = [d[3:] for d in dirty if d.strip()]
    except OSError:
        return "unknown (no git)"
    if not head:
        return "unknown (not a git checkout)"
    return head + (f" + uncommitted changes in {', '.join(dirty)}" if dirty else " (clean)")


def fmt_ns(v):
    return "-" if v is None else (f"{v:.0f}" if v >= 100 else f"{v:.1f}")


def fmt_ratio(v):
    return "-" if v is None else f"{v:.2f}"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def micro(build, pin, args):
    """Runs the *_bench programs; returns {concept: {runtime: (real, cpu)}} and the commands."""
    results, commands = {}, []
    for name in MICRO:
        exe = build / "perf" / name
        if not exe.exists():
            fail(f"{exe} is missing: build the tree first (see perf/README.md)")
        cmd = pin + [str(exe), f"--benchmark_repetitions={args.repetitions}",
                     f"--benchmark_min_time={args.min_time}",
                     "--benchmark_enable_random_interleaving=true",
                     "--benchmark_report_aggregates_only=true", "--benchmark_format=json"]
        commands.append(shell_join(cmd))
        print(f"running {name} ...", file=sys.stderr, flush=True)
        data = json.loads(run(cmd))
        for b in data["benchmarks"]:
            if b.get("aggregate_name") != "median":
                continue
            concept, runtime = b["run_name"].split("/", 1)
            scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]
            results.setdefault(concept, {})[runtime] = (b["real_time"] * scale, b["cpu_time"] * scale)
    return results, commands


def go_reference(build, pin, args):
    exe = build / "perf" / "go_reference"
    if not exe.exists():
        return None, None
    env = {"GOMAXPROCS": "1"}
    cmd = pin + [str(exe), str(args.go_repetitions), f"{args.min_time}s"]
    print("running go_reference ...", file=sys.stderr, flush=True)
    out = run(cmd, env)
    res = {}
    for line in out.splitlines():
        kv = key_values(line)
        if "name" in kv:
            res[kv["name"]] = float(kv["ns_per_op"])
    return res, shell_join(cmd, env)


def skynet(build, pin, args):
    progs = [("corelet", "skynet_corelet", {}), ("boost_fiber", "skynet_boost_fiber", {}),
             ("go", "skynet_go", {"GOMAXPROCS": "1"})]
    progs = [p for p in progs if (build / "perf" / p[1]).exists()]
    runs = {name: [] for name, _, _ in progs}
    commands = {}
    # Alternate the programs so that a change in the machine's load hits all alike.
    for i in range(args.skynet_runs):
        for name, exe, env in progs:
            if name == "boost_fiber" and i >= args.boost_skynet_runs:
                continue
            cmd = pin + [str(build / "perf" / exe), str(args.skynet_size)]
            commands[name] = shell_join(cmd, env)
            print(f"running {exe} ({i + 1}) ...", file=sys.stderr, flush=True)
            kv = key_values(run(cmd, env))
            if int(kv["sum"]) != args.skynet_size * (args.skynet_size - 1) // 2:
                fail(f"{exe}: wrong sum {kv['sum']}")
            runs[name].append(kv)
    return runs, commands


def parked(build, pin, args):
    out, commands = {}, {}
    for name, exe, env in [("corelet", "parked", {}), ("go", "parked_go", {"GOMAXPROCS": "1"})]:
        if not (build / "perf" / exe).exists():
            continue
        cmd = pin + [str(build / "perf" / exe), str(args.parked)]
        commands[name] = shell_join(cmd, env)
        print(f"running {exe} ...", file=sys.stderr, flush=True)
        out[name] = key_values(run(cmd, env))
    return out, commands


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", type=Path, help="the CMake build directory (built)")
    ap.add_argument("--quick", action="store_true", help="a short run: fewer repetitions and runs")
    ap.add_argument("--repetitions", type=int, help="Google Benchmark repetitions (default 10, quick 3)")
    ap.add_argument("--min-time", type=float, help="seconds per repetition (default 0.3, quick 0.1)")
    ap.add_argument("--go-repetitions", type=int, help="go_reference repetitions (default 5, quick 2)")
    ap.add_argument("--skynet-runs", type=int, help="runs of each skynet (default 5, quick 1)")
    ap.add_argument("--boost-skynet-runs", type=int,
                    help="runs of skynet_boost_fiber, which needs ~10 GiB (default 3, quick 1)")
    ap.add_argument("--skynet-size", type=int, default=1000000, help="skynet leaves (power of 10)")
    ap.add_argument("--parked", type=int, default=1000000, help="tasklets parked at once")
    ap.add_argument("--cpu", type=int, help="the CPU to pin to (default: the last one allowed)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    ap.add_argument("--clock", choices=["cpu", "real"], default="cpu",
                    help="which time to compare (default cpu: leaves out time the machine gave to "
                         "other processes; equal to real on an idle machine)")
    args = ap.parse_args()
    q = args.quick
    args.repetitions = args.repetitions or (3 if q else 10)
    args.min_time = args.min_time or (0.1 if q else 0.3)
    args.go_repetitions = args.go_repetitions or (2 if q else 5)
    args.skynet_runs = args.skynet_runs or (1 if q else 5)
    args.boost_skynet_runs = min(args.boost_skynet_runs or (1 if q else 3), args.skynet_runs)
    build = args.build.resolve()
    if not (build / "perf").is_dir():
        fail(f"{build}/perf does not exist: configure and build first (see perf/README.md)")
    src = source_dir(build)

    pin, pin_text = [], "not pinned"
    if not args.no_pin:
        if shutil.which("taskset"):
            cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
            pin, pin_text = ["taskset", "-c", str(cpu)], f"every program pinned to CPU {cpu} with taskset"
        else:
            pin_text = "not pinned (taskset not found)"
    load_before = os.getloadavg()

    micro_res, micro_cmds = micro(build, pin, args)
    go_res, go_cmd = go_reference(build, pin, args)
    sky, sky_cmds = skynet(build, pin, args)
    park, park_cmds = parked(build, pin, args)
    load_after = os.getloadavg()

    pick = 1 if args.clock == "cpu" else 0
    print(f"## corelet benchmarks, {datetime.date.today().isoformat()}\n")
    print(f"- machine: {machine()}")
    print(f"- source: {src} at {source_state(src)}")
    print(f"- {pin_text}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    clock_text = "CPU time (Google Benchmark cpu_time; getrusage user+sys for skynet)" if pick else "wall clock"
    print(f"- times compared: {clock_text}")
    print()

    print("### Micro-benchmarks: corelet against Boost.Fiber in the same run\n")
    print(f"Medians of {args.repetitions} repetitions (randomly interleaved), ns per iteration; "
          "ratio = corelet / Boost.Fiber.\n")
    print("```\n" + "\n".join(micro_cmds) + "\n```\n")
    rows, wall_rows, ref_rows = [], [], []
    concepts = [c for c in ORDER if c in micro_res] + [c for c in micro_res if c not in ORDER]
    for concept in concepts:
        r = micro_res[concept]
        if "corelet" not in r or "boost_fiber" not in r:  # a reference row, e.g. bare Boost.Context
            ref_rows += [[concept, rt, fmt_ns(v[pick]), fmt_ns(v[1 - pick])] for rt, v in r.items()]
            continue
        c, b = r.get("corelet"), r.get("boost_fiber")
        cv, bv = (c[pick] if c else None), (b[pick] if b else None)
        ratio = cv / bv if cv and bv else None
        target = TARGETS.get(concept)
        met = "-" if target is None or ratio is None else ("yes" if ratio <= target else "NO")
        rows.append([concept, fmt_ns(cv), fmt_ns(bv), fmt_ratio(ratio),
                     TARGET_TEXT.get(target, "-"), met])
        other = 1 - pick
        wall_rows.append([concept, fmt_ns(c[other] if c else None), fmt_ns(b[other] if b else None),
                          fmt_ratio(c[other] / b[other] if c and b else None)])
    print(table(["benchmark", "corelet ns", "boost.fiber ns", "ratio", "target", "met?"], rows))
    other_name = "wall-clock" if pick else "CPU-time"
    print(f"\nThe same run, {other_name} medians:\n")
    print(table(["benchmark", "corelet ns", "boost.fiber ns", "ratio"], wall_rows))

    if ref_rows:
        print("\nReference rows of the same run (no corelet / Boost.Fiber pair):\n")
        other_clock = "real" if pick else "cpu"
        print(table(["benchmark", "runtime", f"{args.clock} ns", f"{other_clock} ns"], ref_rows))

    if go_res:
        print(f"\n### Go reference for the same work (testing.Benchmark, median of {args.go_repetitions})\n")
        print(f"```\n{go_cmd}\n```\n")
        grows = []
        for concept, ns in go_res.items():
            c = micro_res.get(concept, {}).get("corelet")
            # go_reference measures wall time; compare it with corelet's wall time.
            grows.append([concept, fmt_ns(ns), fmt_ns(c[0] if c else None),
                          fmt_ratio(c[0] / ns if c else None)])
        print(table(["benchmark", "go ns", "corelet ns (wall)", "corelet / go"], grows))

    print(f"\n### skynet: {args.skynet_size:,} leaves, one core\n")
    print("Median time of the runs, largest peak RSS (getrusage ru_maxrss) of the runs.\n")
    print("```\n" + "\n".join(sky_cmds[n] for n in sky) + "\n```\n")
    tkey = "cpu_ms" if pick else "time_ms"
    med = {n: statistics.median(float(kv[tkey]) for kv in runs) for n, runs in sky.items() if runs}
    rss = {n: max(int(kv["peak_rss_kib"]) for kv in runs) / 1024 for n, runs in sky.items() if runs}
    wall = {n: statistics.median(float(kv["time_ms"]) for kv in runs) for n, runs in sky.items() if runs}
    srows = []
    for n in sky:
        if not sky[n]:
            continue
        vs = med["corelet"] / med[n] if "corelet" in med else None
        srows.append([n, len(sky[n]), f"{med[n]:.0f}", f"{wall[n]:.0f}", f"{rss[n]:.0f}",
                      "-" if n == "corelet" else fmt_ratio(vs),
                      "-" if n == "corelet" else f"{rss['corelet'] / rss[n]:.3f}"])
    print(table(["runtime", "runs", f"median {args.clock} ms", "median wall ms", "peak RSS MiB",
                 "corelet time / this", "corelet RSS / this"], srows))
    checks = []
    for n, label in [("boost_fiber", "Boost.Fiber"), ("go", "Go")]:
        if n in med:
            checks.append([f"time below {label}'s", "yes" if med["corelet"] < med[n] else "NO"])
    if "go" in rss:
        checks.append(["peak RSS below Go's", "yes" if rss["corelet"] < rss["go"] else "NO"])
    print()
    print(table(["skynet target (corelet)", "met?"], checks))

    print(f"\n### {args.parked:,} tasklets parked at once\n")
    print("```\n" + "\n".join(park_cmds.values()) + "\n```\n")
    prows = []
    for n, kv in park.items():
        prows.append([n, kv.get("tasklets"), kv.get("stacks_in_use", "-"), kv.get("bytes_per_parked"),
                      kv.get("bytes_per_queued", "-"), f"{int(kv['rss_parked_kib']) / 1024:.0f}",
                      kv.get("park_ms"), kv.get("wake_ms")])
    print(table(["runtime", "parked", "stacks in use", "resident bytes / parked", "bytes / queued (not run)",
                 "RSS parked MiB", "spawn+park ms", "wake+end ms"], prows))
    if "corelet" in park:
        ok = int(park["corelet"]["tasklets"]) == int(park["corelet"]["stacks_in_use"]) == args.parked
        print(f"\n{args.parked:,} tasklets parked at the same time in one process: {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
