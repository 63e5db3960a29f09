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
        for _ in range(2000):  # until the child's call to finished() has run
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
    with pytest.raises(ValueError, match="workers=N"):
        corelet.spawn_actor(Counter)
