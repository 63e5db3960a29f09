"""corelet.Pool from plain code: multiprocessing.Pool's API, errors with
their remote traceback, WorkerLost on killed workers (and the Pool goes on),
threads and held locks in the owner, initializer, leaks."""

import gc
import logging
import multiprocessing
import os
import signal
import threading
import time

import pytest

import corelet


def square(x):
    return x * x


def pid_of(_):
    return os.getpid()


def slow_identity(x, delay=0.001):
    time.sleep(delay)
    return x


def kill_self_at(x, victim):
    if x == victim:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.002)
    return x


def raise_value_error(x):
    raise ValueError(f"bad item {x}")


_init_calls = []


def record_init(tag):
    _init_calls.append(tag)


def init_calls(_):
    return list(_init_calls)


@pytest.fixture(scope="module")
def pool():
    with corelet.Pool(2) as p:
        yield p


def test_map_starmap_apply_and_the_async_forms(pool):
    assert pool.map(square, range(20)) == [x * x for x in range(20)]
    assert pool.map(square, range(20), chunksize=1) == [x * x for x in range(20)]
    assert pool.starmap(pow, [(2, 3), (3, 2), (10, 0)]) == [8, 9, 1]
    assert pool.apply(pow, (2, 10)) == 1024
    assert pool.apply(int, ("ff",), {"base": 16}) == 255
    got = []
    r = pool.apply_async(square, (7,), callback=got.append)
    assert r.get(timeout=10) == 49
    assert r.ready() and r.successful()
    assert got == [49]
    m = pool.map_async(square, range(5))
    m.wait(10)
    assert m.get() == [0, 1, 4, 9, 16]
    assert pool.starmap_async(pow, [(2, 2)]).get(10) == [4]
    assert pool.map(square, []) == []


def test_imap_in_order_and_imap_unordered(pool):
    assert list(pool.imap(square, range(30))) == [x * x for x in range(30)]
    assert list(pool.imap(square, range(30), chunksize=4)) == [x * x for x in range(30)]
    assert sorted(pool.imap_unordered(square, range(30))) == sorted(x * x for x in range(30))


def test_work_is_spread_over_the_processes(pool):
    pids = set(pool.map(pid_of, range(200), chunksize=1))
    assert len(pids) == 2 and os.getpid() not in pids


def pid_after(seconds):
    time.sleep(seconds)
    return os.getpid()


def test_as_many_items_as_processes_run_one_per_process(pool):
    # Two slow items: one to each worker (not both queued behind one).
    assert len(set(pool.map(pid_after, [0.2, 0.2], chunksize=1))) == 2


def test_lambdas_and_functions_of_main_cross(pool):
    assert pool.map(lambda x: x + 1, [1, 2, 3]) == [2, 3, 4]


def test_exceptions_arrive_with_type_message_and_remote_traceback(pool):
    with pytest.raises(ValueError, match="bad item 3") as info:
        pool.map(raise_value_error, [3])
    assert isinstance(info.value.__cause__, corelet.RemoteTraceback)
    assert "raise_value_error" in str(info.value.__cause__)
    errors = []
    r = pool.apply_async(raise_value_error, (4,), error_callback=errors.append)
    with pytest.raises(ValueError):
        r.get(10)
    assert not r.successful() and isinstance(errors[0], ValueError)


def identity_once_released(x, path):
    # Returns x once path exists (bounded: a test that fails does not hang).
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.001)
    return x


def test_get_times_out_with_multiprocessing_timeout_error(pool, tmp_path):
    # The item cannot finish before the test releases it: the short get must
    # time out however slow or fast the machine is.
    release = tmp_path / "release"
    r = pool.apply_async(identity_once_released, (1, str(release)))
    with pytest.raises(multiprocessing.TimeoutError):
        r.get(timeout=0.01)
    assert not r.ready()
    release.touch()
    assert r.get(timeout=30) == 1


def test_unpicklable_work_fails_at_submit_naming_it(pool):
    # pickle's own error, as multiprocessing raises it, with a note naming the item.
    with pytest.raises(TypeError, match="cannot pickle '_thread.lock' object") as info:
        pool.map(square, [1, threading.Lock()])
    assert any("lock" in n and "cannot be sent to the workers" in n for n in info.value.__notes__)


def test_a_killed_worker_fails_its_tasks_with_worker_lost_and_the_pool_goes_on():
    with corelet.Pool(2) as p:
        kills = int(os.environ.get("CORELET_POOL_KILLS", "10"))
        slowest = 0.0
        for k in range(kills):
            t0 = time.monotonic()
            with pytest.raises(corelet.WorkerLost) as info:
                p.starmap(kill_self_at, [(i, 5) for i in range(16)], chunksize=1)
            slowest = max(slowest, time.monotonic() - t0)
            assert info.value.signal == signal.SIGKILL and info.value.pid > 0
            assert "while running test_pool.kill_self_at" in str(info.value), str(info.value)
            assert p.map(square, range(8)) == [x * x for x in range(8)]  # the pool goes on
        assert slowest < 30.0  # detected (an event, not a timeout), however loaded the machine


def kill_self(_):
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_worker_fails_only_the_task_it_had_taken():
    # One worker: the first task is running when it dies, the second waits
    # in the worker's queue and the others in the Pool. Only the first fails;
    # the replacement runs the rest, in order.
    with corelet.Pool(1) as p:
        doomed = p.apply_async(kill_self, (0,))
        others = [p.apply_async(square, (i,)) for i in range(4)]
        with pytest.raises(corelet.WorkerLost, match="while running test_pool.kill_self"):
            doomed.get(timeout=60)
        assert [r.get(timeout=60) for r in others] == [0, 1, 4, 9]


def big_result(n):
    return b"x" * n


def test_items_and_results_larger_than_the_pools_queues_fail_clearly():
    with corelet.Pool(1, ring_bytes=1 << 16) as p:
        with pytest.raises(ValueError, match="more than the pool's queues hold"):
            p.apply_async(len, (b"y" * (1 << 17),))
        r = p.apply_async(big_result, (1 << 17,))
        with pytest.raises(ValueError, match="the results of a chunk take .* more than the pool's queues hold"):
            r.get(timeout=60)
        assert p.apply(big_result, (100,)) == b"x" * 100  # the pool goes on
        assert p.map(square, range(5)) == [0, 1, 4, 9, 16]


def test_a_pool_made_while_another_thread_holds_the_logging_lock():
    logging.getLogger("corelet-test").addHandler(logging.NullHandler())
    held = threading.Event()
    release = threading.Event()

    def hold():
        logging._acquireLock()
        held.set()
        release.wait(30)
        logging._releaseLock()

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    try:
        with corelet.Pool(2) as p:
            assert p.map(_log_and_return, range(4)) == list(range(4))
    finally:
        release.set()
        t.join()


def _log_and_return(x):
    logging.getLogger("corelet-test").warning("worker item %s", x)
    return x


def test_initializer_runs_once_in_each_worker():
    with corelet.Pool(2, initializer=record_init, initargs=("ready",)) as p:
        per_item = p.map(init_calls, range(40), chunksize=1)
    assert all(calls == ["ready"] for calls in per_item)


def test_close_join_terminate_and_use_after():
    p = corelet.Pool(1)
    r = p.map_async(slow_identity, range(5))
    p.close()
    with pytest.raises(ValueError, match="not running"):
        p.map(square, [1])
    p.join()
    assert r.get(30) == list(range(5))
    q = corelet.Pool(1)
    pending = q.apply_async(slow_identity, (1, 120))  # could only end by the terminate
    q.terminate()
    with pytest.raises(RuntimeError, match="cluster ended"):
        pending.get(30)
    with pytest.raises(ValueError):
        corelet.Pool(0)
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="maxtasksperchild"):
            corelet.Pool(1, maxtasksperchild=bad)


def test_no_leak_over_ten_thousand_calls(pool):
    def rss_kib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

    for _ in range(500):  # warm-up
        pool.apply(square, (3,))
    gc.collect()
    objects, rss = len(gc.get_objects()), rss_kib()
    for i in range(10_000):
        assert pool.apply(square, (i,)) == i * i
    gc.collect()
    assert len(gc.get_objects()) - objects < 200
    assert rss_kib() - rss < 4096


def pid_and_square(x):
    return os.getpid(), x * x


def test_maxtasksperchild_over_many_chunks_and_two_workers():
    with corelet.Pool(2, maxtasksperchild=3) as p:
        out = p.map(pid_and_square, range(60), chunksize=2)  # 30 tasks
        assert [sq for _, sq in out] == [x * x for x in range(60)]
        by_pid = {}
        for pid, _ in out:
            by_pid[pid] = by_pid.get(pid, 0) + 1
        assert all(n <= 3 * 2 for n in by_pid.values()), by_pid  # 3 tasks of 2 items each at most
        assert len(by_pid) >= 10
        assert p.map(pid_and_square, [7])[0][1] == 49



# ---- the zygote: later Pools are forked from one clean interpreter ----------------------

def test_later_pools_are_forked_from_one_zygote_not_execed():
    from corelet import _host

    with corelet.Pool(1) as a:
        hosts_parent_a = a.apply(_host_parent_pid)
    with corelet.Pool(1) as b:
        hosts_parent_b = b.apply(_host_parent_pid)
    zygote = _host._zygote
    assert zygote is not None and zygote.owner == os.getpid()
    assert hosts_parent_a == hosts_parent_b == zygote.proc.pid  # both hosts are the zygote's children
    assert zygote.proc.pid != os.getpid()


def _host_parent_pid():
    # A worker's parent is its Pool's host; the host's parent is the zygote.
    with open(f"/proc/{os.getppid()}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_a_pool_sees_the_environment_directory_and_path_of_its_moment(tmp_path, monkeypatch):
    with corelet.Pool(1) as p:  # the zygote exists from here on
        p.apply(abs, (1,))
    monkeypatch.setenv("CORELET_TEST_MARK", "later")
    monkeypatch.chdir(tmp_path)
    with corelet.Pool(1) as p:
        assert p.apply(os.getenv, ("CORELET_TEST_MARK",)) == "later"
        assert p.apply(os.getcwd) == str(tmp_path)


def _pool_in_child(out):
    with corelet.Pool(1) as p:
        out.put(p.apply(_host_parent_pid))


def test_a_forked_child_starts_its_own_zygote():
    from corelet import _host

    with corelet.Pool(1) as p:
        p.apply(abs, (1,))
    mine = _host._zygote.proc.pid
    out = corelet.SimpleQueue()
    c = corelet.Process(target=_pool_in_child, args=(out,))
    c.start()
    theirs = out.get()
    c.join(60)
    assert c.exitcode == 0
    assert theirs != mine
