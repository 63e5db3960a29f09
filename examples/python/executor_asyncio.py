"""CPU-bound work from asyncio on every core: corelet.futures.ProcessPoolExecutor
is a concurrent.futures.Executor, so loop.run_in_executor takes it.

    python3 examples/python/executor_asyncio.py [N]

The event loop stays free while the workers count primes; the ticker below
shows it ticking meanwhile. A worker that is killed would fail only its own
future (corelet.futures.BrokenWorker), and the executor would go on.
"""

import asyncio
import sys

from corelet.futures import ProcessPoolExecutor


def primes_below(n):
    sieve = bytearray([1]) * n
    sieve[:2] = b"\0\0"
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, n, i)))
    return sum(sieve)


async def ticker(stop):
    ticks = 0
    while not stop.is_set():
        await asyncio.sleep(0.01)
        ticks += 1
    return ticks


async def main(n):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    ticks = asyncio.create_task(ticker(stop))
    with ProcessPoolExecutor() as ex:
        counts = await asyncio.gather(*(loop.run_in_executor(ex, primes_below, n + k) for k in range(4)))
    stop.set()
    print(f"primes below {n}..{n + 3}: {counts}")
    print(f"the event loop ticked {await ticks} times meanwhile")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000))
