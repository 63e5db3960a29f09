#!/usr/bin/python3
"""py_profile — the profiling targets for Python tasklets.

Usage: /usr/bin/python3 perf/py_profile.py BUILD_DIR [--runs N] [--scale F]

  stall: a generator tasklet that hogs its scheduler for 50 ms: when its
         report came, from the hog's start (target: 50 ms + one 5 ms tick),
         and that the report names it and its line;
  dump:  corelet.dump() of 100,000 parked Python tasklets, their stacks
         included (target: under a second);
  cost:  the tasklet switch round trip and spawn+join with accounting on and
         off (CORELET_ACCOUNTING=0), in interleaved child interpreters.
"""

import argparse
import os
import statistics
import subprocess
import sys
import textwrap

STALL = """
import time, corelet
box = {}
def hog():
    box["start"] = time.monotonic()
    end = box["start"] + 0.05
    while time.monotonic() < end:
        pass
    return None
    yield
def main():
    yield corelet.spawn(hog, name="hog").join()
    w = corelet.stats(tasklets=False)["worker"]
    print(w["stalls"], w["last_stall"] - box["start"])
corelet.run(main)
"""

DUMP = """
import time, corelet
N = {n}
def waiter(ev):
    yield ev.wait()
def main():
    ev = corelet.Event()
    for _ in range(N):
        corelet.spawn(waiter, ev)
    yield corelet.sleep(0)
    t0 = time.perf_counter()
    d = corelet.dump()
    took = time.perf_counter() - t0
    assert d.count("parked on Event.wait") == N, d[:300]
    assert d.count("in waiter") == N
    ev.set()
    print(took, len(d))
corelet.run(main)
"""

COST = """
import time, corelet
N = {n}
def switch():
    def partner(flag):
        while not flag:
            yield
    def main():
        flag = []
        p = corelet.spawn(partner, flag)
        yield
        t0 = time.perf_counter()
        for _ in range(N):
            yield
        took = time.perf_counter() - t0
        flag.append(1)
        yield p.join()
        return took / N * 1e9
    return corelet.run(main)
def spawn_join():
    def child():
        return None
        yield
    def main():
        t0 = time.perf_counter()
        for _ in range(N // 4):
            yield corelet.spawn(child).join()
        return (time.perf_counter() - t0) / (N // 4) * 1e9
    return corelet.run(main)
print(switch(), spawn_join())
"""


def child(code, env):
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                       timeout=600)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.abspath(args.build_dir), "python"))
    n_dump = max(10, int(100_000 * args.scale))
    n_cost = max(1000, int(200_000 * args.scale))
    stall, dump, on, off = [], [], [], []
    named = True
    for _ in range(args.runs):
        r = child(STALL, env)
        stalls, latency = r.stdout.split()
        named = named and int(stalls) == 1 and 'corelet: stall: tasklet "hog"' in r.stderr and " in hog" in r.stderr
        stall.append(float(latency) * 1e3)
        took, size = child(DUMP.format(n=n_dump), env).stdout.split()
        dump.append(float(took))
        on.append([float(x) for x in child(COST.format(n=n_cost), env).stdout.split()])
        off.append([float(x) for x in child(COST.format(n=n_cost), dict(env, CORELET_ACCOUNTING="0")).stdout.split()])
    med = statistics.median
    sw_on, sw_off = med(x[0] for x in on), med(x[0] for x in off)
    sj_on, sj_off = med(x[1] for x in on), med(x[1] for x in off)
    print(f"Python {sys.version.split()[0]}; medians of {args.runs} interleaved rounds\n")
    print("| target | measured |")
    print("|---|---|")
    print(f"| a 50 ms hog reported within 50 ms + one tick (55 ms), naming it | after {med(stall):.1f} ms (all: "
          f"{', '.join(f'{x:.1f}' for x in stall)}); named with its line: {'yes' if named else 'NO'} |")
    print(f"| dump of {n_dump:,} parked Python tasklets, stacks included, under 1 s | {med(dump):.3f} s "
          f"({int(size):,} bytes) |")
    print(f"| accounting's cost: switch round trip | {sw_on:.0f} ns on, {sw_off:.0f} ns off: "
          f"{(sw_on / sw_off - 1) * 100:+.1f}% |")
    print(f"| accounting's cost: spawn+join | {sj_on:.0f} ns on, {sj_off:.0f} ns off: {(sj_on / sj_off - 1) * 100:+.1f}% |")


if __name__ == "__main__":
    main()
