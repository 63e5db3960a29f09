#!/usr/bin/python3
"""Python tasklets side by side: corelet against greenlet, gevent and asyncio.

Usage: /usr/bin/python3 perf/py_tasklets.py BUILD_DIR [--runs N] [--scale F]

BUILD_DIR/python holds the corelet package. Each round runs every measurement
once, in a fixed interleaved order, in this one process; the table shows the
median of the rounds (ns per operation) and the ratios the Python targets
are stated in:
  switch round trip: two tasklets handing the CPU back and forth; one round
      trip is both of them running once (corelet: a bare `yield` in each;
      greenlet: g.switch() and the switch back; gevent: gevent.sleep(0) in
      each of two greenlets; asyncio: `await asyncio.sleep(0)` in two tasks);
  spawn + join: start a tasklet that returns at once and wait for its end
      (corelet: `yield corelet.spawn(f).join()` with f a generator function,
      and with f an async def; asyncio: `await asyncio.create_task(f())`;
      gevent: gevent.spawn(f).join());
  channel round trip: corelet Channel ping-pong between two tasklets, and
      asyncio.Queue's, for scale.
--scale multiplies every count (0.02 for a smoke run). Standard library,
python3-greenlet and python3-gevent.
"""

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path


def corelet_switch(corelet, n):
    def yielder():
        for _ in range(n):
            yield

    def main():
        t0 = time.perf_counter()
        a = corelet.spawn(yielder)
        b = corelet.spawn(yielder)
        yield a.join()
        yield b.join()
        return time.perf_counter() - t0

    return corelet.run(main) / n


def corelet_spawn_join(corelet, n, use_async):
    def gen_child():
        return None
        yield  # noqa: unreachable - makes it a generator function

    async def async_child():
        return None

    child = async_child if use_async else gen_child

    def main():
        t0 = time.perf_counter()
        for _ in range(n):
            yield corelet.spawn(child).join()
        return time.perf_counter() - t0

    return corelet.run(main) / n


def corelet_channel(corelet, n):
    def pong(a, b):
        for _ in range(n):
            v = yield a.recv()
            yield b.send(v)

    def main():
        a, b = corelet.Channel(), corelet.Channel()
        p = corelet.spawn(pong, a, b)
        t0 = time.perf_counter()
        for i in range(n):
            yield a.send(i)
            yield b.recv()
        dt = time.perf_counter() - t0
        yield p.join()
        return dt

    return corelet.run(main) / n


def greenlet_switch(greenlet, n):
    main = greenlet.getcurrent()

    def other():
        while True:
            main.switch()

    g = greenlet.greenlet(other)
    g.switch()
    t0 = time.perf_counter()
    for _ in range(n):
        g.switch()
    dt = time.perf_counter() - t0
    g.throw(greenlet.GreenletExit)
    return dt / n


def gevent_switch(gevent, n):
    def yielder():
        for _ in range(n):
            gevent.sleep(0)

    t0 = time.perf_counter()
    a = gevent.spawn(yielder)
    b = gevent.spawn(yielder)
    gevent.joinall([a, b])
    return (time.perf_counter() - t0) / n


def gevent_spawn_join(gevent, n):
    def child():
        return None

    t0 = time.perf_counter()
    for _ in range(n):
        gevent.spawn(child).join()
    return (time.perf_counter() - t0) / n


def asyncio_switch(n):
    async def yielder():
        for _ in range(n):
            await asyncio.sleep(0)

    async def main():
        t0 = time.perf_counter()
        await asyncio.gather(yielder(), yielder())
        return time.perf_counter() - t0

    return asyncio.run(main()) / n


def asyncio_spawn_join(n):
    async def child():
        return None

    async def main():
        t0 = time.perf_counter()
        for _ in range(n):
            await asyncio.create_task(child())
        return time.perf_counter() - t0

    return asyncio.run(main()) / n


def asyncio_queue(n):
    async def pong(a, b):
        for _ in range(n):
            v = await a.get()
            await b.put(v)

    async def main():
        a, b = asyncio.Queue(1), asyncio.Queue(1)
        p = asyncio.create_task(pong(a, b))
        t0 = time.perf_counter()
        for i in range(n):
            await a.put(i)
            await b.get()
        dt = time.perf_counter() - t0
        await p
        return dt

    return asyncio.run(main()) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_dir")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(args.build_dir) / "python"))
    import corelet  # noqa: E402
    import gevent  # noqa: E402
    import greenlet  # noqa: E402

    def n(base):
        return max(10, int(base * args.scale))

    benches = [
        ("corelet switch", lambda: corelet_switch(corelet, n(500_000))),
        ("greenlet switch", lambda: greenlet_switch(greenlet, n(500_000))),
        ("gevent switch", lambda: gevent_switch(gevent, n(200_000))),
        ("asyncio switch", lambda: asyncio_switch(n(200_000))),
        ("corelet spawn+join (generator)", lambda: corelet_spawn_join(corelet, n(200_000), False)),
        ("corelet spawn+join (async def)", lambda: corelet_spawn_join(corelet, n(200_000), True)),
        ("gevent spawn+join", lambda: gevent_spawn_join(gevent, n(100_000))),
        ("asyncio create_task+await", lambda: asyncio_spawn_join(n(100_000))),
        ("corelet channel round trip", lambda: corelet_channel(corelet, n(200_000))),
        ("asyncio Queue round trip", lambda: asyncio_queue(n(100_000))),
    ]
    rounds = {name: [] for name, _ in benches}
    for r in range(args.runs):
        for name, fn in benches:
            rounds[name].append(fn() * 1e9)
        print(f"round {r + 1}/{args.runs} done", file=sys.stderr)
    med = {name: statistics.median(v) for name, v in rounds.items()}

    print(f"Python {sys.version.split()[0]}, greenlet {greenlet.__version__}, gevent {gevent.__version__}; "
          f"medians of {args.runs} interleaved rounds, ns per operation\n")
    print("| operation | ns |")
    print("|---|---:|")
    for name, _ in benches:
        print(f"| {name} | {med[name]:,.0f} |")
    print()
    sw = med["corelet switch"] / med["greenlet switch"]
    sj = med["corelet spawn+join (generator)"]
    sja = med["corelet spawn+join (async def)"]
    print("| target | measured | met? |")
    print("|---|---|---|")
    print(f"| switch round trip <= greenlet's | {med['corelet switch']:,.0f} / {med['greenlet switch']:,.0f} ns "
          f"= **{sw:.2f}x** | {'yes' if sw <= 1 else 'no'} |")
    for other in ("asyncio create_task+await", "gevent spawn+join"):
        r1, r2 = sj / med[other], sja / med[other]
        ok = r1 <= 0.2 and r2 <= 0.2
        print(f"| spawn+join <= 1/5 of {other} | generator {sj:,.0f} / {med[other]:,.0f} ns = **{r1:.3f}**; "
              f"async def {sja:,.0f} ns = **{r2:.3f}** | {'yes' if ok else 'no'} |")
    print("\nAll rounds (ns):\n")
    for name, _ in benches:
        print(f"- {name}: " + ", ".join(f"{v:,.0f}" for v in rounds[name]))


if __name__ == "__main__":
    main()
