"""multiprocessing's process-level surface, tested differentially: every test
body runs once against the standard library's multiprocessing and once
against corelet (the `mp` fixture), so a difference in behaviour shows as one
failing side. The differences corelet means to have are marked with
`better_in_corelet` and listed in py/README.md ("Differences from
multiprocessing")."""

import gc
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from support import intended_difference, pid_alive, python, wait_until

import corelet

MODULES = {"multiprocessing": multiprocessing, "corelet": corelet}


@pytest.fixture(params=list(MODULES))
def mp(request):
    return MODULES[request.param]


def better_in_corelet(mp, why):
    """An intended difference: multiprocessing is expected to fail this test."""
    intended_difference(mp is multiprocessing, why)


# ---- the names ----------------------------------------------------------------

NAMES = [
    "current_process", "parent_process", "active_children", "cpu_count", "get_logger", "log_to_stderr",
    "freeze_support", "get_context", "get_start_method", "set_start_method", "get_all_start_methods",
    "set_executable", "set_forkserver_preload", "ProcessError", "AuthenticationError", "TimeoutError",
    "BufferTooShort", "RawValue", "RawArray", "Value", "Array", "SimpleQueue", "Queue", "JoinableQueue",
    "Pipe", "Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier", "Process",
    "Pool",
]


@pytest.mark.parametrize("name", NAMES)
def test_the_name_is_there(mp, name):
    assert hasattr(mp, name), f"{mp.__name__}.{name}"


def test_the_errors_are_multiprocessings_own(mp):
    # One class per error, so `except multiprocessing.TimeoutError` catches corelet's too.
    for name in ("ProcessError", "AuthenticationError", "TimeoutError", "BufferTooShort"):
        assert getattr(mp, name) is getattr(multiprocessing, name)
    assert issubclass(mp.AuthenticationError, mp.ProcessError)


def test_cpu_count_and_freeze_support(mp):
    assert mp.cpu_count() == os.cpu_count()
    assert mp.freeze_support() is None


def test_start_methods(mp):
    assert mp.get_start_method() == "fork"
    assert "fork" in mp.get_all_start_methods()
    ctx = mp.get_context("fork")
    assert ctx.get_start_method() == "fork"
    for name in ("Process", "Queue", "Lock", "Value", "Pipe", "Pool", "SimpleQueue"):
        assert hasattr(ctx, name), name
    with pytest.raises(ValueError):
        mp.get_context("no-such-method")
    with pytest.raises(RuntimeError):
        mp.set_start_method("fork")  # already set: as multiprocessing, force=True to change it
    mp.set_start_method("fork", force=True)
    assert mp.get_start_method() == "fork"


# ---- current_process / parent_process -------------------------------------------


def report_processes(q, module):
    mp = MODULES[module]
    cur, par = mp.current_process(), mp.parent_process()
    q.put((cur.name, cur.pid, cur.daemon, par.name if par else None, par.pid if par else None,
           par.is_alive() if par else None))


def test_current_and_parent_process(mp):
    me = mp.current_process()
    assert me.name == "MainProcess" and me.pid == os.getpid() and not me.daemon
    assert mp.parent_process() is None
    q = mp.Queue()
    p = mp.Process(target=report_processes, args=(q, mp.__name__), name="child-one", daemon=True)
    p.start()
    got = q.get(timeout=30)
    p.join(30)
    assert got == ("child-one", p.pid, True, "MainProcess", os.getpid(), True)


# ---- Process ----------------------------------------------------------------------


def sleep_for(s):
    time.sleep(s)


def test_join_with_a_negative_or_zero_timeout_returns_at_once(mp):
    p = mp.Process(target=sleep_for, args=(60,))
    p.start()
    try:
        t0 = time.monotonic()
        assert p.join(-1) is None
        assert p.join(0) is None
        assert time.monotonic() - t0 < 20  # generous: it must not wait the 60 s
        assert p.is_alive() and p.exitcode is None
    finally:
        p.kill()
        p.join(30)
    assert p.exitcode == -signal.SIGKILL


def test_sentinel_and_close(mp):
    p = mp.Process(target=sleep_for, args=(0,))
    with pytest.raises(ValueError):
        p.sentinel  # noqa: B018 - not started
    p.start()
    assert isinstance(p.sentinel, int)
    p.join(30)
    assert p.exitcode == 0
    p.close()
    p.close()  # twice is fine
    for call in (p.is_alive, p.join, p.start, p.terminate, p.kill):
        with pytest.raises(ValueError, match="closed"):
            call()
    with pytest.raises(ValueError, match="closed"):
        p.exitcode  # noqa: B018
    assert "closed" in repr(p) or "stopped" in repr(p)


def test_close_refuses_a_running_process(mp):
    p = mp.Process(target=sleep_for, args=(60,))
    p.start()
    try:
        with pytest.raises(ValueError):
            p.close()
    finally:
        p.kill()
        p.join(30)
    p.close()


def test_start_works_without_stdout(mp):
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = None
    try:
        p = mp.Process(target=sleep_for, args=(0,))
        p.start()
    finally:
        sys.stdout, sys.stderr = saved
    p.join(30)
    assert p.exitcode == 0


def start_a_slow_thread(path):
    def slow():
        time.sleep(0.5)
        with open(path, "w") as f:
            f.write("done")

    threading.Thread(target=slow).start()  # non-daemon: the child waits for it


def test_a_child_waits_for_its_non_daemon_threads(mp, tmp_path):
    path = tmp_path / "flag"
    p = mp.Process(target=start_a_slow_thread, args=(str(path),))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert path.read_text() == "done"


def raise_exit(code):
    sys.exit(code)


def test_exit_codes(mp):
    for arg, want in ((0, 0), (3, 3), (None, 0), ("a message", 1)):
        p = mp.Process(target=raise_exit, args=(arg,))
        p.start()
        p.join(30)
        assert p.exitcode == want, arg


# ---- daemon children and their parent's exit ---------------------------------------

DAEMON_PARENT = textwrap.dedent(
    """
    import gc, os, sys, time
    import {mod} as mp

    def linger():
        time.sleep(120)

    def start():
        p = mp.Process(target=linger, daemon=True)
        p.start()
        return p.pid

    if __name__ == "__main__":
        pid = start()           # the Process object is garbage once start() returns
        gc.collect()
        print(pid, flush=True)
        {end}
    """
)


def run_daemon_parent(mp, end):
    code = DAEMON_PARENT.format(mod=mp.__name__, end=end)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    pid = int(proc.stdout.readline())
    proc.wait(60)
    return pid


def assert_daemon_child_ends_with_its_parent(mp, end):
    pid = run_daemon_parent(mp, end)
    try:
        assert wait_until(lambda: not pid_alive(pid)), "the daemon child outlived its parent"
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_daemon_children_end_with_a_parent_that_returns(mp):
    assert_daemon_child_ends_with_its_parent(mp, "pass")


def test_daemon_children_end_with_a_parent_that_is_killed(mp):
    better_in_corelet(mp, "a daemon child ends with its parent however the parent ends")
    assert_daemon_child_ends_with_its_parent(mp, "os.kill(os.getpid(), 9)")


# ---- shared values -----------------------------------------------------------------


def add_one(v, arr):
    v.value += 1
    for i in range(len(arr)):
        arr[i] += 1


def test_raw_values_and_arrays(mp):
    v = mp.RawValue("i", 41)
    arr = mp.RawArray("d", [1.0, 2.0])
    assert not hasattr(v, "get_lock") and not hasattr(arr, "get_lock")
    p = mp.Process(target=add_one, args=(v, arr))
    p.start()
    p.join(30)
    assert v.value == 42 and list(arr) == [2.0, 3.0]
    assert len(mp.RawArray("b", 5)) == 5


def test_value_and_array_take_every_kind_of_lock(mp):
    for lock in (None, True):
        v = mp.Value("i", 1, lock=lock)
        assert hasattr(v, "get_lock")
        with v.get_lock():
            v.value += 1
        assert v.value == 2
    raw = mp.Value("i", 1, lock=False)
    assert not hasattr(raw, "get_lock")
    mine = mp.RLock()
    v = mp.Value("i", 0, lock=mine)
    assert v.get_lock() is mine
    arr = mp.Array("i", 3, lock=None)
    assert hasattr(arr, "get_lock") and list(arr) == [0, 0, 0]
    with pytest.raises(AttributeError):
        mp.Value("i", 0, lock=object())


# ---- SimpleQueue -------------------------------------------------------------------


def put_three(q):
    for x in (1, "two", [3]):
        q.put(x)


def test_simple_queue(mp):
    q = mp.SimpleQueue()
    assert q.empty()
    p = mp.Process(target=put_three, args=(q,))
    p.start()
    assert [q.get(), q.get(), q.get()] == [1, "two", [3]]
    p.join(30)
    assert q.empty()
    q.close()
    q.close()


# ---- logging -----------------------------------------------------------------------


def test_get_logger_and_log_to_stderr(mp, capfd):
    logger = mp.get_logger()
    assert isinstance(logger, logging.Logger)
    assert mp.get_logger() is logger
    old = logger.level
    try:
        assert mp.log_to_stderr(logging.INFO) is logger
        logger.info("hello from the logger")
        err = capfd.readouterr().err
        assert "hello from the logger" in err and "[INFO/MainProcess]" in err
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
        logger.setLevel(old)


# ---- Barrier.reset, as CPython's own test of it ------------------------------------

BARRIER_PARTIES = 5


def reset_party(barrier, q):
    i = barrier.wait(60)
    if i == BARRIER_PARTIES // 2:
        # Wait until the others are all in the barrier's second round.
        while barrier.n_waiting < BARRIER_PARTIES - 1:
            time.sleep(0.001)
        barrier.reset()
    else:
        try:
            barrier.wait(60)
            q.put("passed")
        except threading.BrokenBarrierError:
            q.put("broken")
    barrier.wait(60)  # the barrier works again after the reset
    q.put("third")


def test_barrier_reset_breaks_every_waiter_of_its_round(mp):
    for _ in range(5):
        b, q = mp.Barrier(BARRIER_PARTIES), mp.Queue()
        ps = [mp.Process(target=reset_party, args=(b, q)) for _ in range(BARRIER_PARTIES)]
        for p in ps:
            p.start()
        got = [q.get(timeout=60) for _ in range(2 * BARRIER_PARTIES - 1)]
        for p in ps:
            p.join(60)
        assert sorted(got) == sorted(["broken"] * (BARRIER_PARTIES - 1) + ["third"] * BARRIER_PARTIES)
        assert [p.exitcode for p in ps] == [0] * BARRIER_PARTIES


# ---- Queue.close and Connection.send_bytes ---------------------------------------


def put_then_close(q, k):
    q.put(k)
    q.close()  # this process's use ends; the other producers go on
    q.join_thread()
    try:
        q.put("after close")
    except ValueError as e:
        assert "is closed" in str(e)
    else:
        raise AssertionError("put after close did not raise")


def test_a_queue_closed_by_one_producer_stays_open_for_the_others(mp):
    q = mp.Queue()
    ps = [mp.Process(target=put_then_close, args=(q, k)) for k in range(4)]
    for p in ps:
        p.start()
    got = sorted(q.get(timeout=60) for _ in range(4))
    for p in ps:
        p.join(60)
    assert got == [0, 1, 2, 3]
    assert [p.exitcode for p in ps] == [0] * 4
    q.close()
    for call in (lambda: q.put(1), lambda: q.get(timeout=1), q.get_nowait):
        with pytest.raises(ValueError, match="is closed"):
            call()


def test_send_bytes_checks_its_offset_and_size(mp):
    a, b = mp.Pipe()
    a.send_bytes(b"abcdef", 1, 3)
    assert b.recv_bytes() == b"bcd"
    a.send_bytes(bytearray(b"xyz"), 3)
    assert b.recv_bytes() == b""
    for args, msg in (((b"abc", 5), "buffer length < offset"), ((b"abc", -1), "offset is negative"),
                      ((b"abc", 1, 5), r"buffer length < offset \+ size"), ((b"abc", 0, -1), "size is negative")):
        with pytest.raises(ValueError, match=msg):
            a.send_bytes(*args)
    assert not b.poll(0.05)  # nothing was sent by the refused calls


# ---- Pool ------------------------------------------------------------------------


def square(x):
    return x * x


def fail_on_three(x):
    if x == 3:
        raise KeyError("three")
    return x


class Ticket:
    """A picklable result object, to watch for references kept after map."""

    def __init__(self, i):
        self.i = i


def make_ticket(i):
    return Ticket(i)


class NotSendable:
    def __reduce__(self):
        raise ValueError("this item refuses to be pickled")


def numbers_then_error(n):
    yield from range(n)
    raise LookupError("the iterable failed")


def endless():
    i = 0
    while True:
        yield i
        i += 1


@pytest.fixture
def pool(mp):
    p = mp.Pool(2)
    yield p
    p.terminate()
    p.join()


def test_a_workers_module_state_lasts_from_task_to_task(mp):
    # A worker runs each task in the same interpreter and module: what a task
    # leaves in a global, the next task on that worker sees, for a function
    # of the program's __main__ too (which corelet sends by value).
    r = python(f"""
        import {mp.__name__} as mp
        calls = 0
        def count_calls(_):
            global calls
            calls += 1
            return calls
        if __name__ == "__main__":
            with mp.Pool(1) as p:
                print([p.apply(count_calls, (i,)) for i in range(3)])
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[1, 2, 3]"


def test_imap_yields_before_the_iterable_ends(pool):
    release = threading.Event()

    def numbers():
        yield from range(5)
        release.wait(60)  # no more until the first results came
        yield 5

    it = pool.imap(square, numbers())
    assert [next(it) for _ in range(5)] == [0, 1, 4, 9, 16]
    release.set()
    assert list(it) == [25]
    release.clear()
    it = pool.imap_unordered(square, numbers())
    assert sorted(next(it) for _ in range(5)) == [0, 1, 4, 9, 16]
    release.set()
    assert list(it) == [25]


def test_imap_takes_an_endless_iterable(mp):
    # multiprocessing's task thread reads an endless iterable for ever, and
    # terminate() then waits for it for ever: corelet's reads it only as far
    # as results are taken.
    better_in_corelet(mp, "imap reads an endless iterable only as far as its results are taken")
    p = mp.Pool(2)
    try:
        it = p.imap(square, endless(), chunksize=4)
        assert [next(it) for _ in range(10)] == [i * i for i in range(10)]
        it = p.imap_unordered(square, endless())
        assert len({next(it) for _ in range(10)}) == 10
    finally:
        p.terminate()
        p.join()


def test_imap_reports_an_error_of_the_iterable_in_its_place(pool):
    it = pool.imap(square, numbers_then_error(5))
    assert [next(it) for _ in range(5)] == [0, 1, 4, 9, 16]
    with pytest.raises(LookupError, match="the iterable failed"):
        next(it)


def test_imap_gives_a_failed_item_s_error_and_goes_on(pool):
    it = pool.imap(fail_on_three, range(6))
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(KeyError):
        next(it)
    assert list(it) == [4, 5]


def test_imap_next_takes_a_timeout(mp, pool):
    it = pool.imap(sleep_for, [30])
    with pytest.raises(mp.TimeoutError):
        it.next(timeout=0.05)


def test_map_keeps_no_result_alive_after_it_returns(pool):
    import weakref

    out = pool.map(make_ticket, range(3))
    refs = [weakref.ref(t) for t in out]
    assert [t.i for t in out] == [0, 1, 2]
    del out
    assert wait_until(lambda: (gc.collect(), all(r() is None for r in refs))[1], timeout=10)


def test_an_item_that_cannot_be_pickled_raises_its_own_error(pool):
    with pytest.raises(ValueError, match="refuses to be pickled"):
        pool.map(square, [1, NotSendable(), 3])
    assert pool.map(square, [1, 2]) == [1, 4]  # the pool goes on


def test_with_on_a_terminated_pool_raises(mp):
    p = mp.Pool(1)
    p.terminate()
    p.join()
    with pytest.raises(ValueError, match="Pool not running"):
        with p:
            pass


def kill_myself_at(i, at):
    if i == at:
        os.kill(os.getpid(), signal.SIGKILL)
    return i


def test_a_killed_worker_fails_only_its_work(mp, pool):
    better_in_corelet(mp, "a killed Pool worker fails its work with WorkerLost and the pool goes on")
    with pytest.raises(corelet.WorkerLost):
        pool.starmap(kill_myself_at, [(i, 3) for i in range(8)], chunksize=1)
    assert pool.map(square, range(4)) == [0, 1, 4, 9]


def test_lambdas_reach_the_workers(mp, pool):
    better_in_corelet(mp, "lambdas and closures reach the workers (cloudpickle)")
    k = 10
    assert pool.map(lambda x: x + k, range(3)) == [10, 11, 12]


# ---- the dummy and pool modules ---------------------------------------------------


def test_dummy_runs_the_same_program_over_threads(mp):
    import importlib

    dummy = importlib.import_module(mp.__name__ + ".dummy")
    q = dummy.Queue()
    t = dummy.Process(target=put_three, args=(q,))
    t.start()
    t.join(30)
    assert [q.get(timeout=10) for _ in range(3)] == [1, "two", [3]]
    with dummy.Pool(2) as p:
        assert p.map(square, range(5)) == [0, 1, 4, 9, 16]
    assert set(dummy.__all__) <= set(dir(dummy))


def test_the_pool_module_has_thread_pool(mp):
    import importlib

    pool_module = importlib.import_module(mp.__name__ + ".pool")
    with pool_module.ThreadPool(2) as tp:
        assert tp.map(square, range(4)) == [0, 1, 4, 9]
    p = pool_module.Pool(1)
    try:
        assert p.apply(square, (7,)) == 49
    finally:
        p.terminate()
        p.join()


# ---- locks -------------------------------------------------------------------------


def test_lock_and_rlock_misuse(mp):
    lock, rlock = mp.Lock(), mp.RLock()
    with pytest.raises(ValueError):
        lock.release()  # not locked
    with pytest.raises(AssertionError, match="not owned"):
        rlock.release()
    assert rlock.acquire() and rlock.acquire(False) and rlock.acquire(timeout=1)
    for _ in range(3):
        rlock.release()
    with pytest.raises(AssertionError):
        rlock.release()
    with lock:
        assert not lock.acquire(False)
        assert not lock.acquire(timeout=0.01)
    assert lock.acquire(True, 1)
    lock.release()
    with rlock, rlock:
        pass
    with pytest.raises(AssertionError):
        rlock.release()


def pid_of(_):
    return os.getpid()


def test_maxtasksperchild_replaces_a_worker_after_its_tasks(mp):
    p = mp.Pool(1, maxtasksperchild=2)
    try:
        pids = p.map(pid_of, range(6), chunksize=1)
        assert len(set(pids)) == 3, pids  # two tasks per worker process
        assert [pids.count(x) for x in dict.fromkeys(pids)] == [2, 2, 2]
        assert p.apply(square, (5,)) == 25  # and the pool goes on
    finally:
        p.terminate()
        p.join()
    with pytest.raises(ValueError):
        mp.Pool(1, maxtasksperchild=0)


def test_close_lets_an_imap_in_progress_finish(mp):
    p = mp.Pool(2)
    try:
        it = p.imap(square, range(100), chunksize=3)
        un = p.imap_unordered(square, iter(range(50)))
        assert next(it) == 0
        p.close()  # the iterables are still read: work given before close is done
        assert list(it) == [x * x for x in range(1, 100)]
        assert sorted(un) == [x * x for x in range(50)]
        p.join()
    finally:
        p.terminate()


def _quick():
    pass


def test_the_sentinel_stays_usable_after_join_until_close(mp):
    import select as _select

    p = mp.Process(target=_quick)
    p.start()
    p.join(60)
    fd = p.sentinel
    assert _select.select([fd], [], [], 0)[0] == [fd]  # readable: the process has ended
    p.close()
    with pytest.raises(ValueError):
        p.sentinel
