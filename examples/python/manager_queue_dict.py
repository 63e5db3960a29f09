"""The processing package's Manager examples, with the import changed: a
child sends squares through a managed queue, and another fills a managed
dict and reverses a managed list, which the parent then sees.

    PYTHONPATH=build/release/python /usr/bin/python3 examples/python/manager_queue_dict.py

The manager's server is a child process running corelet's scheduler: each
client connection is a tasklet there, and a `queue.get()` that waits parks
only the tasklet serving that client.
"""

from corelet import Manager, Process


def squares(q):
    for i in range(10):
        q.put(i * i)
    q.put("STOP")


def fill(d, lst):
    d[1] = "1"
    d["2"] = 2
    d[0.25] = None
    lst.reverse()


if __name__ == "__main__":
    with Manager() as manager:
        queue = manager.Queue(maxsize=10)
        p = Process(target=squares, args=[queue])
        p.start()
        results = []
        while (result := queue.get()) != "STOP":
            results.append(result)
        p.join()
        print("squares:", results)

        d, lst = manager.dict(), manager.list(range(10))
        p = Process(target=fill, args=(d, lst))
        p.start()
        p.join()
        print("dict:", dict(sorted(d.items(), key=str)))
        print("list:", lst[:])
