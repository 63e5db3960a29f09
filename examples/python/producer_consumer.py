#!/usr/bin/python3
"""Beazley's producer/consumer with generators, on corelet's scheduler: the
producer and two consumers are generator tasklets sharing a bounded Queue.

    PYTHONPATH=build/release/python /usr/bin/python3 examples/python/producer_consumer.py
"""

import corelet


def producer(q, n):
    for i in range(n):
        yield q.put(i)  # waits while the queue is full
    for _ in range(2):
        yield q.put(None)  # one end marker per consumer


def consumer(q, name):
    total = 0
    while True:
        item = yield q.get()
        if item is None:
            return name, total
        total += item


def main():
    q = corelet.Queue(maxsize=10)
    corelet.spawn(producer, q, 1000)
    consumers = [corelet.spawn(consumer, q, name) for name in ("a", "b")]
    results = []
    for c in consumers:
        results.append((yield c.join()))
    for name, total in results:
        print(f"consumer {name}: {total}")
    print("sum:", sum(t for _, t in results), "expected:", sum(range(1000)))


if __name__ == "__main__":
    corelet.run(main)
