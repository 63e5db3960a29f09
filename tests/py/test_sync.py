"""Lock, RLock, Condition, Semaphore, BoundedSemaphore, Event, Barrier, Timer,
the queues and run_blocking, for tasklets, with threading's and queue's
method names."""

import queue
import threading
import time

import pytest

import corelet


def run(main, *args):
    return corelet.run(main, *args)


# ---- Lock ---------------------------------------------------------------------


def test_lock_excludes_and_hands_over_in_fifo_order():
    log = []

    def worker(lock, i):
        yield lock.acquire()
        log.append(("in", i))
        yield corelet.sleep(0.001)  # others run and queue up meanwhile
        log.append(("out", i))
        lock.release()

    def main():
        lock = corelet.Lock()
        ts = [corelet.spawn(worker, lock, i) for i in range(4)]
        for t in ts:
            yield t.join()
        assert not lock.locked()

    run(main)
    assert log == [(k, i) for i in range(4) for k in ("in", "out")]


def test_lock_handoff_lets_nobody_barge_in():
    def main():
        lock = corelet.Lock()
        yield lock.acquire()
        order = []

        def waiter():
            yield lock.acquire()
            order.append("waiter")
            lock.release()

        t = corelet.spawn(waiter)
        yield
        lock.release()  # handed to the waiter: still locked
        assert lock.locked()
        assert (yield lock.acquire(blocking=False)) is False
        yield t.join()
        order.append("main")
        return order

    assert run(main) == ["waiter", "main"]


def test_lock_timeouts_non_blocking_and_errors():
    def main():
        lock = corelet.Lock()
        assert (yield lock.acquire()) is True
        assert (yield lock.acquire(timeout=0.01)) is False
        assert (yield lock.acquire(False)) is False
        with pytest.raises(ValueError):
            lock.acquire(False, timeout=1)
        with pytest.raises(ValueError):
            lock.acquire(timeout=-5)
        lock.release()
        with pytest.raises(RuntimeError, match="release unlocked lock"):
            lock.release()

    run(main)


def test_with_takes_a_free_lock_and_refuses_to_wait_on_a_held_one():
    async def main():
        lock = corelet.Lock()
        with lock:
            assert lock.locked()
            with pytest.raises(corelet.UsageError, match="async with"):
                with lock:
                    pass
        assert not lock.locked()
        async with lock:
            assert lock.locked()
        assert not lock.locked()

    run(main)


def test_async_with_waits_for_the_lock():
    log = []

    async def worker(lock, i):
        async with lock:
            log.append(i)
            await corelet.sleep(0.001)
            log.append(i)

    async def main():
        lock = corelet.Lock()
        ts = [corelet.spawn(worker, lock, i) for i in range(3)]
        for t in ts:
            await t

    run(main)
    assert log == [0, 0, 1, 1, 2, 2]


def test_a_cancelled_lock_waiter_does_not_take_the_lock():
    def main():
        lock = corelet.Lock()
        yield lock.acquire()

        def waiter():
            yield lock.acquire()

        t = corelet.spawn(waiter)
        yield
        t.cancel()
        with pytest.raises(corelet.Cancelled):
            yield t.join()
        lock.release()
        assert not lock.locked()  # nobody was left to hand it to

    run(main)


# ---- RLock --------------------------------------------------------------------


def test_rlock_is_reentrant_for_its_owner_only():
    def main():
        rl = corelet.RLock()
        yield rl.acquire()
        yield rl.acquire()

        def other():
            got = yield rl.acquire(timeout=0.01)
            with pytest.raises(RuntimeError):
                rl.release()
            return got

        assert (yield corelet.spawn(other).join()) is False
        rl.release()
        rl.release()
        with pytest.raises(RuntimeError):
            rl.release()

        def taker():
            yield rl.acquire()
            rl.release()
            return True

        assert (yield corelet.spawn(taker).join()) is True

    run(main)


def test_rlock_handoff_makes_the_waiter_the_owner():
    def main():
        rl = corelet.RLock()
        yield rl.acquire()

        def waiter():
            yield rl.acquire()
            yield rl.acquire()  # re-entry as the new owner
            rl.release()
            rl.release()
            return "ok"

        t = corelet.spawn(waiter)
        yield
        rl.release()
        return (yield t.join())

    assert run(main) == "ok"


# ---- Condition ----------------------------------------------------------------


def test_condition_producer_consumer():
    items = []
    got = []

    def consumer(cond):
        for _ in range(5):
            yield cond.acquire()
            yield cond.wait_for(lambda: items)
            got.append(items.pop(0))
            cond.release()

    def producer(cond):
        for i in range(5):
            yield cond.acquire()
            items.append(i)
            cond.notify()
            cond.release()
            yield corelet.sleep(0)

    def main():
        cond = corelet.Condition()
        c = corelet.spawn(consumer, cond)
        p = corelet.spawn(producer, cond)
        yield p.join()
        yield c.join()

    run(main)
    assert got == [0, 1, 2, 3, 4]


def test_condition_wait_timeout_notify_all_and_ownership_checks():
    def main():
        cond = corelet.Condition(corelet.Lock())
        with pytest.raises(RuntimeError):
            yield cond.wait()
        with pytest.raises(RuntimeError):
            cond.notify()
        yield cond.acquire()
        assert (yield cond.wait(0.01)) is False
        assert cond._lock.locked()  # taken back after the timeout
        cond.release()
        woken = []

        def waiter(i):
            yield cond.acquire()
            yield cond.wait()
            woken.append(i)
            cond.release()

        ts = [corelet.spawn(waiter, i) for i in range(3)]
        yield corelet.sleep(0)
        yield cond.acquire()
        cond.notify_all()
        cond.release()
        for t in ts:
            yield t.join()
        return woken

    assert run(main) == [0, 1, 2]


def test_condition_wait_takes_the_lock_back_when_cancelled():
    def main():
        cond = corelet.Condition(corelet.Lock())

        def waiter():
            yield cond.acquire()
            try:
                yield cond.wait()
            finally:
                assert cond._lock.locked()
                cond.release()

        t = corelet.spawn(waiter)
        yield corelet.sleep(0)
        t.cancel()
        with pytest.raises(corelet.Cancelled):
            yield t.join()
        assert not cond._lock.locked()

    run(main)


# ---- Semaphore ----------------------------------------------------------------


def test_semaphore_bounds_concurrency():
    inside = [0]
    most = [0]

    async def worker(sem):
        async with sem:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            await corelet.sleep(0.001)
            inside[0] -= 1

    async def main():
        sem = corelet.Semaphore(3)
        ts = [corelet.spawn(worker, sem) for _ in range(10)]
        for t in ts:
            await t

    run(main)
    assert most[0] == 3


def test_semaphore_errors_and_bounded_release():
    with pytest.raises(ValueError):
        corelet.Semaphore(-1)

    def main():
        sem = corelet.Semaphore(0)
        assert (yield sem.acquire(timeout=0.01)) is False
        assert (yield sem.acquire(False)) is False
        sem.release(2)
        assert (yield sem.acquire()) and (yield sem.acquire())
        with pytest.raises(ValueError):
            sem.release(0)
        b = corelet.BoundedSemaphore(1)
        yield b.acquire()
        b.release()
        with pytest.raises(ValueError, match="too many"):
            b.release()

    run(main)


# ---- Event --------------------------------------------------------------------


def test_event_wakes_every_waiter_and_wait_times_out():
    def main():
        ev = corelet.Event()
        assert (yield ev.wait(0.01)) is False

        def waiter():
            return (yield ev.wait())

        ts = [corelet.spawn(waiter) for _ in range(3)]
        yield
        ev.set()
        assert ev.is_set()
        results = []
        for t in ts:
            results.append((yield t.join()))
        assert (yield ev.wait()) is True  # set: at once
        ev.clear()
        assert not ev.is_set()
        return results

    assert run(main) == [True, True, True]


# ---- Barrier ------------------------------------------------------------------


def test_barrier_releases_all_parties_and_is_reusable():
    actions = []

    async def party(b, rounds):
        out = []
        for _ in range(rounds):
            out.append(await b.wait())
        return out

    async def main():
        b = corelet.Barrier(3, action=lambda: actions.append("all here"))
        ts = [corelet.spawn(party, b, 2) for _ in range(3)]
        return [await t for t in ts]

    results = run(main)
    assert sorted(r[0] for r in results) == [0, 1, 2]
    assert sorted(r[1] for r in results) == [0, 1, 2]
    assert actions == ["all here", "all here"]


def test_barrier_timeout_breaks_it_for_everyone():
    def main():
        b = corelet.Barrier(3)

        def waiter():
            with pytest.raises(threading.BrokenBarrierError):
                yield b.wait()
            return "broken"

        w = corelet.spawn(waiter)
        yield
        with pytest.raises(threading.BrokenBarrierError):
            yield b.wait(timeout=0.01)
        assert b.broken
        assert (yield w.join()) == "broken"
        b.reset()
        assert not b.broken and b.n_waiting == 0

    run(main)
    assert corelet.BrokenBarrierError is threading.BrokenBarrierError


def test_barrier_abort_reset_a_failing_action_and_a_cancelled_party():
    def party(b, out):
        try:
            out.append((yield b.wait()))
        except threading.BrokenBarrierError:
            out.append("broken")

    def main():
        out = []
        b = corelet.Barrier(2)
        corelet.spawn(party, b, out)
        yield  # waits
        b.abort()
        yield
        assert out == ["broken"] and b.broken
        with pytest.raises(threading.BrokenBarrierError):
            yield b.wait()  # a broken barrier refuses at once
        b.reset()
        assert not b.broken and b.parties == 2

        def boom():
            raise KeyError("action")

        bad = corelet.Barrier(2, action=boom)
        corelet.spawn(party, bad, out)
        yield
        with pytest.raises(KeyError):
            yield bad.wait()  # the last party runs the action; its error is the last party's
        yield
        assert out[-1] == "broken" and bad.broken

        c = corelet.Barrier(3)
        t = corelet.spawn(party, c, out)
        yield
        t.cancel()
        yield
        assert c.broken  # a cancelled party breaks it, as a timeout does
        return out

    assert run(main) == ["broken", "broken"]


# ---- Timer --------------------------------------------------------------------


def test_timer_runs_its_function_and_cancel_stops_it():
    fired = []

    def main():
        t1 = corelet.Timer(0.01, fired.append, args=("one",))
        t2 = corelet.Timer(0.01, fired.append, args=("two",))
        t1.start()
        t2.start()
        t2.cancel()
        yield t1.join()
        yield t2.join()
        assert t1.finished.is_set() and t2.finished.is_set()
        with pytest.raises(RuntimeError):
            t1.start()

    run(main)
    assert fired == ["one"]


def test_timer_function_may_be_a_tasklet_function():
    async def later(log):
        await corelet.sleep(0)
        log.append("async timer")

    def main():
        log = []
        t = corelet.Timer(0, later, args=(log,))
        t.start()
        yield t.join()
        return log

    assert run(main) == ["async timer"]


# ---- queues -------------------------------------------------------------------


def test_queue_orders_fifo_lifo_and_priority():
    def main():
        out = {}
        for cls, name in ((corelet.Queue, "fifo"), (corelet.LifoQueue, "lifo"), (corelet.PriorityQueue, "prio")):
            q = cls()
            for v in (3, 1, 2):
                yield q.put(v)
            got = []
            for _ in range(3):
                got.append((yield q.get()))
            out[name] = got
        return out

    assert run(main) == {"fifo": [3, 1, 2], "lifo": [2, 1, 3], "prio": [1, 2, 3]}


def test_bounded_queue_blocks_putters_and_keeps_the_bound():
    def producer(q, n):
        for i in range(n):
            yield q.put(i)

    def main():
        q = corelet.Queue(maxsize=2)
        p = corelet.spawn(producer, q, 10)
        got = []
        for _ in range(10):
            yield
            assert q.qsize() <= 2
            got.append((yield q.get()))
        yield p.join()
        return got

    assert run(main) == list(range(10))


def test_a_woken_getter_that_finds_the_item_gone_waits_for_the_next():
    # As with queue.Queue's condition variables, an item put while a getter
    # waits can still be taken by a tasklet that runs first; the woken getter
    # then waits again (its deadline unchanged) and nothing is lost.
    def getter(q, got):
        got.append((yield q.get(timeout=30)))

    def main():
        q = corelet.Queue()
        got = []
        t = corelet.spawn(getter, q, got)
        yield  # the getter waits
        yield q.put("first")  # wakes it...
        taken = q.get_nowait()  # ...but main takes the item before it runs
        yield  # the getter runs, finds nothing, waits again
        assert got == [] and q.qsize() == 0
        yield q.put("second")
        yield t.join()
        return taken, got

    assert run(main) == ("first", ["second"])


def test_a_subclass_may_keep_the_items_its_own_way():
    # queue.Queue's storage hooks: _init, _qsize, _put, _get.
    class EveryOther(corelet.Queue):
        def _init(self, maxsize):
            self.items = []

        def _qsize(self):
            return len(self.items)

        def _put(self, item):
            self.items.insert(0 if len(self.items) % 2 else len(self.items), item)

        def _get(self):
            return self.items.pop()

    def consumer(q, out):
        for _ in range(4):
            out.append((yield q.get()))

    def main():
        q = EveryOther(maxsize=3)
        out = []
        c = corelet.spawn(consumer, q, out)
        yield  # waits on the empty queue
        for v in "abcd":
            yield q.put(v)
        yield c.join()
        assert isinstance(q, corelet.Queue) and q.empty() and q.maxsize == 3
        return out

    out = run(main)
    assert sorted(out) == ["a", "b", "c", "d"]


def test_queue_nowait_timeouts_and_stdlib_exceptions():
    def main():
        q = corelet.Queue(1)
        with pytest.raises(queue.Empty):
            q.get_nowait()
        with pytest.raises(queue.Empty):
            yield q.get(timeout=0.01)
        with pytest.raises(queue.Empty):
            q.get(block=False)
        q.put_nowait("a")
        assert q.full()
        with pytest.raises(queue.Full):
            q.put_nowait("b")
        with pytest.raises(queue.Full):
            yield q.put("b", timeout=0.01)
        assert q.get_nowait() == "a" and q.empty()

    run(main)
    assert corelet.Empty is queue.Empty and corelet.Full is queue.Full


def test_joinable_queue_join_waits_for_task_done():
    log = []

    async def worker(q):
        while True:
            item = await q.get()
            await corelet.sleep(0)
            log.append(item)
            q.task_done()

    async def main():
        q = corelet.JoinableQueue()
        w = corelet.spawn(worker, q)
        for i in range(5):
            await q.put(i)
        await q.join()
        assert log == [0, 1, 2, 3, 4]
        w.cancel()
        with pytest.raises(ValueError, match="too many"):
            q.task_done()

    run(main)


def test_beazley_producer_consumer_with_a_queue():
    # The seeds' generator producer/consumer, on corelet's Queue.
    def producer(q, n):
        for i in range(n):
            yield q.put(i)
        yield q.put(None)

    def consumer(q):
        total = 0
        while True:
            item = yield q.get()
            if item is None:
                return total
            total += item

    def main():
        q = corelet.Queue(maxsize=8)
        corelet.spawn(producer, q, 1000)
        return (yield corelet.spawn(consumer, q).join())

    assert run(main) == sum(range(1000))


# ---- run_blocking -------------------------------------------------------------


def test_run_blocking_runs_on_a_helper_thread_while_tasklets_go_on():
    ticks = []

    async def ticker():
        for _ in range(5):
            ticks.append(time.monotonic())
            await corelet.sleep(0.005)

    def blocking(x):
        time.sleep(0.05)  # would stall every tasklet if run on the scheduler's thread
        return x * 2, threading.get_ident()

    async def main():
        t = corelet.spawn(ticker)
        value, ident = await corelet.run_blocking(blocking, 21)
        await t
        return value, ident

    value, ident = run(main)
    assert value == 42 and ident != threading.get_ident()
    assert len(ticks) == 5


def test_run_blocking_raises_the_functions_exception():
    def bad():
        raise LookupError("from the helper")

    def main():
        with pytest.raises(LookupError, match="from the helper"):
            yield corelet.run_blocking(bad)
        with pytest.raises(TypeError):
            corelet.run_blocking(42)

    run(main)


def test_a_cancelled_run_blocking_waits_for_the_call_then_raises_cancelled():
    done = []

    def slow():
        time.sleep(0.03)
        done.append(True)

    def caller():
        yield corelet.run_blocking(slow)

    def main():
        t = corelet.spawn(caller)
        yield corelet.sleep(0.005)
        t.cancel()
        with pytest.raises(corelet.Cancelled):
            yield t.join()
        assert done == [True]  # the call finished before the tasklet ended

    run(main)


# ---- generator calls (Beazley's trampoline) -----------------------------------


def test_a_yielded_generator_runs_as_a_call_and_its_exception_reaches_the_caller():
    def add_later(a, b):
        yield corelet.sleep(0)
        return a + b

    def fails():
        yield
        raise KeyError("inner")

    async def coro_call(x):
        await corelet.sleep(0)
        return x * 10

    def main():
        assert (yield add_later(2, 3)) == 5
        assert (yield coro_call(4)) == 40
        with pytest.raises(KeyError, match="inner"):
            yield fails()
        return "ok"

    assert run(main) == "ok"


def test_a_primitive_that_tasklets_of_another_run_wait_on_refuses_to_wake_them():
    # Two corelet.run on two threads: a wake-up from the other would go to the
    # wrong scheduler's ready queue. The lock, its waiter and the queue's
    # getter are thread 1's; thread 2's tasklet gets UsageError, and nothing
    # changes for thread 1.
    made = threading.Event()
    done = threading.Event()
    box = {}

    def thread1():
        def waiter(lock):
            yield lock.acquire()
            lock.release()

        def getter(q):
            return (yield q.get())

        def main():
            box["lock"], box["q"] = corelet.Lock(), corelet.Queue()
            yield box["lock"].acquire()
            w, g = corelet.spawn(waiter, box["lock"]), corelet.spawn(getter, box["q"])
            yield  # both wait
            made.set()
            yield corelet.run_blocking(done.wait, 30)
            box["lock"].release()  # hands the lock to its waiter here
            box["q"].put_nowait("item")
            yield w.join()
            return (yield g.join())

        box["result"] = corelet.run(main)

    t = threading.Thread(target=thread1)
    t.start()
    assert made.wait(30)

    def other():
        errors = []
        for call in (box["lock"].release, lambda: box["q"].put_nowait("x")):
            try:
                call()
            except corelet.UsageError as e:
                errors.append(str(e))
        return errors
        yield

    errors = corelet.run(other)
    done.set()
    t.join(30)
    assert len(errors) == 2 and all("another corelet.run" in e for e in errors), errors
    assert box["result"] == "item"
