#!/usr/bin/python3
"""multiprocessing.Pool code on corelet: the only change is the import.
Counts the primes below 400,000 in eight slices, sequentially and with the
Pool, and prints both times.

    PYTHONPATH=build/release/python /usr/bin/python3 examples/python/pool_dropin.py
"""

import time

from corelet import Pool  # was: from multiprocessing import Pool


def count_primes(bounds):
    lo, hi = bounds
    count = 0
    for n in range(max(lo, 2), hi):
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            count += 1
    return count


def main():
    slices = [(i * 50_000, (i + 1) * 50_000) for i in range(8)]
    t0 = time.perf_counter()
    sequential = sum(map(count_primes, slices))
    t1 = time.perf_counter()
    with Pool() as pool:
        parallel = sum(pool.map(count_primes, slices))
    t2 = time.perf_counter()
    print(f"primes below 400000: {sequential} sequentially in {t1 - t0:.2f} s")
    print(f"primes below 400000: {parallel} with corelet.Pool in {t2 - t1:.2f} s")


if __name__ == "__main__":
    main()
