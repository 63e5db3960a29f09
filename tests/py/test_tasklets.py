"""Generator and async def tasklets on the C++ scheduler: run, spawn, Task,
sleep, cancellation, errors, deadlocks."""

import gc
import os
import time

import pytest

import corelet
from support import assert_ctrl_c_interrupts, python


def run(main, *args):
    return corelet.run(main, *args)


# ---- run and the three kinds of tasklet -----------------------------------


def test_run_returns_mains_result_for_each_kind_of_main():
    def gen():
        yield
        return "gen"

    async def coro():
        await corelet.sleep(0)
        return "coro"

    def plain(a, b):
        return a * b

    assert run(gen) == "gen"
    assert run(coro) == "coro"
    assert run(plain, 6, 7) == 42


def test_run_raises_mains_exception_with_its_traceback():
    def failing_main():
        yield
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing") as info:
        run(failing_main)
    assert "failing_main" in "".join(str(t.name) for t in info.traceback)


def test_nested_run_and_spawn_outside_run_are_errors():
    def main():
        with pytest.raises(ValueError, match="inside corelet.run"):
            corelet.run(lambda: None)
        yield

    run(main)
    with pytest.raises(corelet.UsageError, match="corelet.spawn"):
        corelet.spawn(lambda: None)


def test_spawn_passes_arguments_and_names_the_task():
    seen = []

    def worker(a, b, c=None):
        seen.append((a, b, c))
        yield
        return a + b

    def main():
        t = corelet.spawn(worker, 1, 2)
        u = corelet.spawn(worker, 3, 4, name="custom")
        assert t.name == "test_spawn_passes_arguments_and_names_the_task.<locals>.worker"
        assert u.name == "custom"
        assert t.id != u.id and t != u and t == t
        assert t.state == "new"
        assert (yield t.join()) == 3
        assert (yield u.join()) == 7
        assert t.state == "done" and t.done()
        return seen

    assert run(main) == [(1, 2, None), (3, 4, None)]


def test_spawn_rejects_what_is_not_callable_and_unknown_keywords():
    def main():
        with pytest.raises(TypeError, match="not callable"):
            corelet.spawn(42)
        with pytest.raises(TypeError, match="unexpected keyword argument 'priority'"):
            corelet.spawn(lambda: None, priority=1)
        yield

    run(main)


def test_current_is_the_running_task():
    def child():
        me = corelet.current()
        yield
        return me

    def main():
        assert corelet.current().name == "main"
        t = corelet.spawn(child)
        assert (yield t.join()) == t

    run(main)
    assert corelet.current() is None


# ---- scheduling order -------------------------------------------------------


def test_bare_yields_interleave_tasklets_in_fifo_order():
    log = []

    def worker(tag):
        for i in range(3):
            log.append(f"{tag}{i}")
            yield

    def main():
        a = corelet.spawn(worker, "a")
        b = corelet.spawn(worker, "b")
        yield a.join()
        yield b.join()

    run(main)
    assert log == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_async_and_generator_tasklets_mix():
    log = []

    async def coro():
        for i in range(3):
            log.append(f"c{i}")
            await corelet.sleep(0)

    def gen():
        for i in range(3):
            log.append(f"g{i}")
            yield corelet.sleep(0)

    def main():
        c = corelet.spawn(coro)
        g = corelet.spawn(gen)
        yield c.join()
        yield g.join()

    run(main)
    assert log == ["c0", "g0", "c1", "g1", "c2", "g2"]


def test_sleepers_wake_in_deadline_order():
    # A sleep's deadline is counted from when the sleeper starts it: the
    # sleepers start close together and sleep 20 ms apart, so their deadlines
    # come in the order a, b, c — unless the machine held the thread back for
    # half that between two starts. The starts are measured; a round whose
    # starts spread over 10 ms or more shows nothing and is run again.
    def one_round():
        woke, started = [], []

        async def sleeper(tag, seconds):
            started.append(time.monotonic())
            await corelet.sleep(seconds)
            woke.append(tag)

        async def main():
            tasks = [corelet.spawn(sleeper, t, s) for t, s in (("c", 0.06), ("a", 0.02), ("b", 0.04))]
            for t in tasks:
                await t

        run(main)
        return woke, max(started) - min(started)

    for _ in range(50):
        woke, spread = one_round()
        if spread < 0.01:
            break
    else:
        pytest.skip("no round started its three sleepers within 10 ms of one another")
    assert woke == ["a", "b", "c"]


def test_sleep_rejects_negative_and_nan():
    with pytest.raises(ValueError):
        corelet.sleep(-1)
    with pytest.raises(ValueError):
        corelet.sleep(float("nan"))


def test_sub_generators_delegate_with_yield_from():
    def inner(ch):
        v = yield ch.recv()
        return v * 2

    def main():
        ch = corelet.Channel(1)
        yield ch.send(21)
        return (yield from inner(ch))

    assert run(main) == 42


def test_yielding_something_else_raises_type_error_in_the_tasklet():
    def main():
        with pytest.raises(TypeError, match="may yield or await corelet operations"):
            yield 42
        return "went on"

    assert run(main) == "went on"


def test_ten_thousand_tasklets_sleep_at_once():
    done = []

    async def nap(i):
        await corelet.sleep(0.001 * (i % 7))
        done.append(i)

    async def main():
        tasks = [corelet.spawn(nap, i) for i in range(10_000)]
        for t in tasks:
            await t

    run(main)
    assert sorted(done) == list(range(10_000))


# ---- results, errors, joins ---------------------------------------------------


def test_join_raises_the_tasklets_exception_and_result_repeats_it():
    def bad():
        yield
        raise ValueError("bad value")

    def main():
        t = corelet.spawn(bad)
        with pytest.raises(ValueError, match="bad value"):
            yield t.join()
        with pytest.raises(ValueError, match="bad value"):
            t.result()
        assert isinstance(t.exception(), ValueError)

    run(main)


def test_result_before_the_end_is_an_error():
    def main():
        t = corelet.spawn(lambda: 1)
        with pytest.raises(ValueError, match="has not ended"):
            t.result()
        with pytest.raises(ValueError, match="has not ended"):
            t.exception()
        assert (yield t.join()) == 1
        assert t.result() == 1 and t.exception() is None

    run(main)


def test_join_with_timeout_and_self_join():
    def slow():
        yield corelet.sleep(10)

    def main():
        t = corelet.spawn(slow)
        with pytest.raises(TimeoutError):
            yield t.join(timeout=0.01)
        t.cancel()
        with pytest.raises(corelet.Cancelled):
            yield t.join()
        with pytest.raises(corelet.UsageError, match="cannot join itself"):
            yield corelet.current().join()

    run(main)


def test_an_exception_nobody_joins_is_printed_with_its_traceback(capfd):
    def lost_one():
        yield
        raise RuntimeError("nobody saw this")

    def main():
        corelet.spawn(lost_one)  # the handle is dropped at once
        yield corelet.sleep(0.001)

    run(main)
    gc.collect()
    err = capfd.readouterr().err
    assert "lost_one" in err and "ended with an exception nobody joined" in err
    assert "RuntimeError: nobody saw this" in err


# ---- cancellation -------------------------------------------------------------


def test_cancelled_is_a_base_exception():
    assert issubclass(corelet.Cancelled, BaseException)
    assert not issubclass(corelet.Cancelled, Exception)


def test_cancel_wakes_a_sleeping_tasklet_and_runs_its_finally():
    log = []

    async def sleeper():
        try:
            await corelet.sleep(100)
        finally:
            log.append("finally")

    async def main():
        t = corelet.spawn(sleeper)
        await corelet.sleep(0)
        t.cancel()
        with pytest.raises(corelet.Cancelled):
            await t
        assert t.cancelled()

    run(main)
    assert log == ["finally"]


def test_cancel_before_start_means_the_body_never_runs():
    ran = []

    def main():
        t = corelet.spawn(lambda: ran.append(1))
        t.cancel()
        with pytest.raises(corelet.Cancelled):
            yield t.join()

    run(main)
    assert ran == []


def test_a_tasklet_may_catch_cancelled_and_finish():
    def stubborn():
        try:
            yield corelet.sleep(100)
        except corelet.Cancelled:
            pass
        yield corelet.sleep(0)
        return "finished anyway"

    def main():
        t = corelet.spawn(stubborn)
        yield
        t.cancel()
        return (yield t.join())

    assert run(main) == "finished anyway"


def test_cancel_of_a_ready_tasklet_hits_its_next_wait():
    log = []

    def worker():
        log.append("ran")
        try:
            yield  # a bare yield is a wait too
        except corelet.Cancelled:
            log.append("cancelled at yield")
            raise

    def main():
        t = corelet.spawn(worker)
        yield  # worker runs to its yield
        t.cancel()
        with pytest.raises(corelet.Cancelled):
            yield t.join()

    run(main)
    assert log == ["ran", "cancelled at yield"]


def test_when_main_fails_the_others_are_cancelled():
    log = []

    async def waiter():
        try:
            await corelet.sleep(100)
        except corelet.Cancelled:
            log.append("cancelled")
            raise

    async def main():
        corelet.spawn(waiter)
        await corelet.sleep(0)
        raise OSError("main failed")

    with pytest.raises(OSError, match="main failed"):
        run(main)
    assert log == ["cancelled"]


# ---- deadlocks ----------------------------------------------------------------


def test_a_deadlock_names_every_blocked_tasklet_and_its_wait():
    def stuck(ch):
        yield ch.recv()

    def main():
        ch = corelet.Channel()
        t = corelet.spawn(stuck, ch, name="stuck-reader")
        yield t.join()

    with pytest.raises(corelet.Deadlock) as info:
        run(main)
    text = str(info.value)
    assert "stuck-reader" in text and "Channel.recv" in text
    assert "main" in text and "Task::join" in text or "Task.join" in text


# ---- the process around it -----------------------------------------------------


def test_import_patches_nothing_and_starts_no_thread():
    out = python(
        """
        import socket, threading, time, select, queue
        before = (socket.socket, threading.Lock, threading.Thread, time.sleep, select.select, queue.Queue)
        import corelet
        after = (socket.socket, threading.Lock, threading.Thread, time.sleep, select.select, queue.Queue)
        assert before == after, "stdlib changed"
        print(threading.active_count(), len(threading.enumerate()))
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1"]


def test_sigint_stops_a_sleeping_run_with_keyboard_interrupt():
    assert_ctrl_c_interrupts(
        """
        import corelet
        async def main():
            print('ready', flush=True)
            await corelet.sleep(60)
        corelet.run(main)
        """
    )


def test_sigint_after_main_returned_stops_the_other_tasklets():
    assert_ctrl_c_interrupts(
        """
        import corelet
        async def sleeper():
            await corelet.sleep(60)
        async def main():
            corelet.spawn(sleeper)
            print('ready', flush=True)
        corelet.run(main)
        """
    )


def test_no_leak_over_ten_thousand_spawns_joins_and_channel_messages():
    def child(ch, i):
        yield ch.send(i)
        return i

    def round_of(n):
        ch = corelet.Channel()
        total = 0
        for i in range(n):
            t = corelet.spawn(child, ch, i)
            total += yield ch.recv()
            total -= yield t.join()
        return total

    def measure():
        gc.collect()
        return len(gc.get_objects())

    def rss_kib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

    assert run(round_of, 1000) == 0  # warm-up: caches and free lists fill
    objects, rss = measure(), rss_kib()
    assert run(round_of, 10_000) == 0
    assert measure() - objects < 100
    assert rss_kib() - rss < 2048


def test_beazley_generator_scheduler():
    # Beazley's round-robin scheduler of countdown tasks: each prints its
    # count and yields; corelet's scheduler takes the place of his deque loop.
    out = []

    def countdown_task(name, n):
        while n > 0:
            out.append((name, n))
            yield
            n -= 1

    def main():
        tasks = [corelet.spawn(countdown_task, name, n) for name, n in (("a", 2), ("b", 3), ("c", 1))]
        for t in tasks:
            yield t.join()

    run(main)
    assert out == [("a", 2), ("b", 3), ("c", 1), ("a", 1), ("b", 2), ("b", 1)]
