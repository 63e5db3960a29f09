"""Actors: spawn_actor proxies, calls one at a time, sender(), proxies in
messages, the registry — and ThreadingX's tutorial (spawn -> sendMessage ->
sender.finished()) ported to corelet."""

import os
import time

import pytest

import corelet


def run2(main, *args):
    return corelet.run(main, *args, workers=2)


# ---- ThreadingX's tutorial, part 1 -------------------------------------------------


class ChildService:
    def send_message(self, message):
        print("Child received message: " + message)
        corelet.sender().finished()  # the proxy of the calling actor
        return os.getpid()


class MainService:
    def __init__(self):
        self.finished_calls = 0

    def start(self):
        child = corelet.spawn_actor(ChildService, worker=1)
        child.send_message("hello from main")  # sent; its result is not waited for
        return child

    def finished(self):
        print("Finished")
        self.finished_calls += 1

    def is_finished(self):
        return self.finished_calls


def test_threadingx_tutorial_spawn_send_message_sender_finished(capfd):
    def main():
        me = corelet.spawn_actor(MainService, worker=0)
        yield me.start()
        deadline = time.monotonic() + 30  # until the child's call to finished() has run
        while time.monotonic() < deadline:
            if (yield me.is_finished()):
                return "done"
            yield corelet.sleep(0.001)
        return "timed out"

    assert run2(main) == "done"
    out = capfd.readouterr().out
    assert "Child received message: hello from main" in out and "Finished" in out


# ---- the rest -----------------------------------------------------------------------


class Counter:
    def __init__(self, start=0):
        self.n = start
        self.inside = 0
        self.most_inside = 0

    def add(self, k):
        self.n += k
        return self.n

    def slow_add(self, k):
        # Yields in the middle: other calls must still wait their turn.
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        yield corelet.sleep(0.001)
        self.n += k
        self.inside -= 1
        return self.n

    def where(self):
        return os.getpid(), corelet.this_worker()

    def stats(self):
        return self.n, self.most_inside

    def fail(self):
        raise KeyError("actor method failed")


def use_proxy(proxy):
    # A plain remote function given a proxy inside its arguments.
    t = proxy.add(100)
    return (yield t.join())


def test_calls_run_one_at_a_time_in_the_owning_worker():
    def main():
        c = corelet.spawn_actor(Counter, 5, worker=1)
        tasks = [c.slow_add(1) for _ in range(10)]
        for t in tasks:
            yield t.join()
        n, most = yield c.stats()
        pid, worker = yield c.where()
        return n, most, worker, pid != os.getpid()

    assert run2(main) == (15, 1, 1, True)


def test_results_errors_and_result_after_join():
    def main():
        c = corelet.spawn_actor(Counter)
        t = c.add(2)
        assert (yield t.join()) == 2 and t.result() == 2
        with pytest.raises(KeyError, match="actor method failed"):
            yield c.fail()
        with pytest.raises(AttributeError):
            yield c.no_such_method()
        return "ok"

    assert run2(main) == "ok"


def test_proxies_travel_inside_messages_and_arrive_usable():
    def main():
        c = corelet.spawn_actor(Counter, worker=0)
        got = yield corelet.call_on(1, use_proxy, c)  # worker 1 calls the actor on worker 0
        return got, (yield c.stats())[0]

    assert run2(main) == (100, 100)


def test_registry_register_and_whereis():
    def main():
        c = corelet.spawn_actor(Counter, 1)
        yield corelet.register("counter", c)
        found = yield corelet.call_on(1, lookup, "counter")
        missing = yield corelet.whereis("nobody")
        return found == c, missing

    assert run2(main) == (True, None)


def lookup(name):
    return (yield corelet.whereis(name))


def test_stop_and_bad_use():
    class Broken:
        def __init__(self):
            raise ValueError("cannot make it")

    def main():
        c = corelet.spawn_actor(Counter)
        assert (yield corelet.stop_actor(c)) is True
        with pytest.raises(LookupError, match="stopped"):
            yield c.add(1)
        b = corelet.spawn_actor(Broken, worker=1)
        with pytest.raises(LookupError, match="cannot make it"):
            yield b.anything()
        with pytest.raises(ValueError, match="no worker 9"):
            corelet.spawn_actor(Counter, worker=9)
        return "ok"

    assert run2(main) == "ok"


# ---- actors from plain code -----------------------------------------------------------
#
# They start a cluster of this process's own and a thread that reads its
# replies; the tests run in a child interpreter, so that this one keeps no
# thread (corelet.run(workers=N) refuses to fork once there is one).

PLAIN = r"""
import concurrent.futures, os, sys
sys.path[:0] = {paths!r}
import corelet
from test_actors import Counter, Poker

a = corelet.spawn_actor(Counter, 1)
b = corelet.spawn_actor(Counter, 100)
f = a.add(2)
assert isinstance(f, concurrent.futures.Future)
assert f.result(timeout=30) == 3
pid, _worker = a.where().result(timeout=30)
assert pid != os.getpid()
try:
    a.fail().result(timeout=30)
    raise SystemExit("no KeyError")
except KeyError as e:
    assert "actor method failed" in str(e)
p = corelet.spawn_actor(Poker)
assert p.poke(b, 10).result(timeout=30) == 110
corelet.register("plain-b", b).result(timeout=30)
assert corelet.whereis("plain-b").result(timeout=30) == b
assert corelet.stop_actor(a).result(timeout=30) is True
try:
    a.add(1).result(timeout=30)
    raise SystemExit("no LookupError")
except LookupError as e:
    assert "stopped" in str(e)
try:
    corelet.actor_processes(3)
    raise SystemExit("no ValueError")
except ValueError:
    pass
c = corelet.spawn_actor(Counter)
futures = [c.slow_add(1) for _ in range(50)]
assert sorted(f.result(timeout=30) for f in futures) == list(range(1, 51))
assert c.stats().result(timeout=30) == (50, 1)
print("plain actors ok")
"""


class Poker:
    def poke(self, other, k):
        # A proxy that came in a message, used from inside the actor cluster.
        return (yield other.add(k).join())


def test_actors_from_plain_code_give_futures():
    import subprocess
    import sys

    paths = [os.path.dirname(__file__)] + [p for p in sys.path if p]
    out = subprocess.run(
        [sys.executable, "-c", PLAIN.format(paths=paths)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert "plain actors ok" in out.stdout
