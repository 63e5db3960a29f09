"""A type of your own on a manager (the processing package's `Foo` example,
grown a little): its object lives in the manager's server, and proxies in
any process call the exposed methods.

    PYTHONPATH=build/release/python /usr/bin/python3 examples/python/manager_registered_type.py

A registered type's methods run on a helper thread of the server
(corelet.run_blocking), so a method that blocks stalls only its caller.
"""

import os

from corelet import Process
from corelet.managers import BaseManager


class Tally:
    def __init__(self):
        self.counts = {}

    def bar(self, who):
        self.counts[who] = self.counts.get(who, 0) + 1
        return f"BAR from {who}"

    def totals(self):
        return dict(self.counts)


class NewManager(BaseManager):
    pass


NewManager.register("Tally", Tally, exposed=["bar", "totals"])


def child(tally, name):
    for _ in range(3):
        tally.bar(name)


if __name__ == "__main__":
    with NewManager() as manager:
        tally = manager.Tally()
        print(tally.bar("parent"))  # => BAR from parent
        children = [Process(target=child, args=(tally, f"child{i}")) for i in range(2)]
        for p in children:
            p.start()
        for p in children:
            p.join()
        print("totals:", dict(sorted(tally.totals().items())))
        print("server pid differs from ours:", manager._process.pid != os.getpid())
