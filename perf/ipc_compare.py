#!/usr/bin/python3
"""The cross-process comparison: corelet's rings and cluster side by side with
a reference ring, a pipe and eventfds, in one run.

Usage: /usr/bin/python3 perf/ipc_compare.py BUILD_DIR [--runs N] [--scale F] [--macro]

BUILD_DIR holds perf/ipc_corelet and perf/ipc_ref (and perf/macro_cpu for
--macro). Every program pins its two processes to the first two CPUs of the
affinity mask. Each round runs every measurement once, in a fixed interleaved
order; the table shows the median of the rounds and the ratios the targets of
the multicore work are stated in:
  throughput, 64 B / 1 KiB / 64 KiB: corelet mailbox messages (and corelet's
      ring alone) against the reference ring (64-byte slots, one release store
      per message, no cached indices) and a pipe;
  round trip with a busy peer: corelet mailbox ping-pong against the
      reference ring's, and one cache line bounced;
  round trip with a sleeping peer (idle_spin = 0): against an eventfd
      ping-pong (and a pipe's);
  spawn_on round trip; Pool::map overhead per task.
--scale multiplies every message count (0.02 for a smoke run).
--macro also runs perf/macro_cpu (primes, md5, count: sequential, threads,
corelet workers). Standard library only.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path


def fail(msg):
    print(f"ipc_compare.py: {msg}", file=sys.stderr)
    sys.exit(1)


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        fail(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if not lines:
        fail(f"{' '.join(cmd)} printed no result")
    return json.loads(lines[-1])["value"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--macro", action="store_true")
    ap.add_argument("--against", metavar="BUILD", help="another build's ipc_corelet, run in the same rounds "
                    "(interleaved), for a before/after table")
    a = ap.parse_args()
    perf = Path(a.build) / "perf"
    corelet, ref = str(perf / "ipc_corelet"), str(perf / "ipc_ref")
    for p in (corelet, ref):
        if not Path(p).exists():
            fail(f"{p} is missing: build the perf programs first")

    def n(x):
        return str(max(100, int(x * a.scale)))

    # name -> command; the order is the interleaving order of a round.
    cmds = {}
    for size, count, big in ((64, 5_000_000, 20_000_000), (1024, 2_000_000, 5_000_000), (65536, 100_000, 100_000)):
        cmds[f"corelet {size}"] = [corelet, "tput", str(size), n(count)]
        cmds[f"corelet ring {size}"] = [corelet, "raw_tput", str(size), n(big)]
        cmds[f"ref ring {size}"] = [ref, "ref_tput", str(size), n(big)]
        cmds[f"pipe {size}"] = [ref, "pipe_tput", str(size), n(count // 4)]
    cmds["corelet rtt busy"] = [corelet, "rtt", n(200_000)]
    cmds["corelet ring rtt"] = [corelet, "raw_rtt", n(1_000_000)]
    cmds["ref ring rtt"] = [ref, "ref_rtt", n(1_000_000)]
    cmds["cache line rtt"] = [ref, "cacheline_rtt", n(1_000_000)]
    cmds["corelet rtt sleeping"] = [corelet, "rtt_sleep", n(30_000)]
    cmds["eventfd rtt"] = [ref, "eventfd_rtt", n(30_000)]
    cmds["pipe rtt"] = [ref, "pipe_rtt", n(30_000)]
    cmds["spawn_on rtt"] = [corelet, "spawn_on_rtt", n(100_000)]
    cmds["pool default"] = [corelet, "pool", n(1_000_000), "0"]
    cmds["pool chunk 1"] = [corelet, "pool", n(100_000), "1"]
    if a.against:
        other = str(Path(a.against) / "perf" / "ipc_corelet")
        if not Path(other).exists():
            fail(f"{other} is missing")
        for size, count, _ in ((64, 5_000_000, 0), (1024, 2_000_000, 0), (65536, 100_000, 0)):
            cmds[f"against {size}"] = [other, "tput", str(size), n(count)]
        cmds["against rtt busy"] = [other, "rtt", n(200_000)]
        cmds["against rtt sleeping"] = [other, "rtt_sleep", n(30_000)]

    results = {k: [] for k in cmds}
    for r in range(a.runs):
        for k, c in cmds.items():
            results[k].append(run(c))
        print(f"round {r + 1}/{a.runs} done", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in results.items()}

    print(f"## Cross-process messaging ({a.runs} rounds, medians)\n")
    print("Command: `/usr/bin/python3 perf/ipc_compare.py " + " ".join(sys.argv[1:]) + "`\n")
    print("| size | corelet mailbox msg/s | corelet ring alone | reference ring | pipe | corelet / reference |")
    print("|---|---|---|---|---|---|")
    for size in (64, 1024, 65536):
        c, cr, rr, p = (med[f"corelet {size}"], med[f"corelet ring {size}"], med[f"ref ring {size}"], med[f"pipe {size}"])
        print(f"| {size} B | {c:,.0f} | {cr:,.0f} | {rr:,.0f} | {p:,.0f} | **{c / rr:.2f}x** (ring alone {cr / rr:.2f}x) |")
    print()
    print("| round trip | corelet | reference | ratio |")
    print("|---|---|---|---|")
    print(f"| busy peer | {med['corelet rtt busy']:,.0f} ns | ring {med['ref ring rtt']:,.0f} ns "
          f"(one cache line {med['cache line rtt']:,.0f} ns) | **{med['corelet rtt busy'] / med['ref ring rtt']:.2f}x** |")
    print(f"| busy peer, corelet's rings alone | {med['corelet ring rtt']:,.0f} ns | ring {med['ref ring rtt']:,.0f} ns | "
          f"**{med['corelet ring rtt'] / med['ref ring rtt']:.2f}x** |")
    print(f"| sleeping peer | {med['corelet rtt sleeping']:,.0f} ns | eventfd {med['eventfd rtt']:,.0f} ns "
          f"(pipe {med['pipe rtt']:,.0f} ns) | **{med['corelet rtt sleeping'] / med['eventfd rtt']:.2f}x** |")
    print(f"| spawn_on(1, f).get() | {med['spawn_on rtt']:,.0f} ns | | |")
    # The host may move a vCPU between two runs of a round (the one cache
    # line's round trip then changes too): the ratio within each round.
    for key, label in (("corelet rtt busy", "mailbox"), ("corelet ring rtt", "rings alone")):
        ratios = [c / r for c, r in zip(results[key], results["ref ring rtt"]) if r]
        print(f"\nBusy round trip, {label} / reference ring, each round: "
              f"{', '.join(f'{x:.2f}' for x in ratios)} (median {statistics.median(ratios):.2f}x).")
    print()
    print(f"Pool::map overhead per task: {med['pool default']:,.1f} ns with the default chunks, "
          f"{med['pool chunk 1']:,.0f} ns with chunksize 1.")
    if a.against:
        print(f"\nThe same rounds, {a.against}'s ipc_corelet (against) beside {a.build}'s (this build):\n")
        print("| | against | this build | this / against (median of each round's ratio) |")
        print("|---|---|---|---|")
        for key, label, unit, higher in (("64", "mailbox 64 B", "msg/s", True), ("1024", "mailbox 1 KiB", "msg/s", True),
                                         ("65536", "mailbox 64 KiB", "msg/s", True),
                                         ("rtt busy", "busy-peer round trip", "ns", False),
                                         ("rtt sleeping", "sleeping-peer round trip", "ns", False)):
            mine = results[f"corelet {key}"]
            theirs = results[f"against {key}"]
            ratios = [m / t for m, t in zip(mine, theirs) if t]
            print(f"| {label} | {statistics.median(theirs):,.0f} {unit} | {statistics.median(mine):,.0f} {unit} | "
                  f"**{statistics.median(ratios):.2f}x** ({', '.join(f'{r:.2f}' for r in ratios)}) |")
    print("\nAll rounds:\n")
    for k, v in results.items():
        print(f"- {k}: " + ", ".join(f"{x:,.6g}" for x in v))

    if a.macro:
        mc = perf / "macro_cpu"
        if not mc.exists():
            fail(f"{mc} is missing")
        print("\n## Macro benchmarks (perf/macro_cpu)\n")
        out = subprocess.run([str(mc)], capture_output=True, text=True, timeout=1200)
        if out.returncode != 0:
            fail(f"macro_cpu failed: {out.stderr}")
        print("```")
        print("\n".join(l for l in out.stdout.splitlines() if not l.startswith("{")))
        print("```")


if __name__ == "__main__":
    main()
