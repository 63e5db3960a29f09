"""corelet.futures.ProcessPoolExecutor, tested differentially: each body runs
with concurrent.futures.ProcessPoolExecutor and with corelet's (the `Executor`
fixture), so a difference shows as one failing side. The intended
differences are marked with `better_in_corelet` (py/README.md lists them)."""

import asyncio
import concurrent.futures as cf
import os
import signal
import time

import pytest
from support import intended_difference

import corelet
import corelet.futures

EXECUTORS = {"concurrent.futures": cf.ProcessPoolExecutor, "corelet": corelet.futures.ProcessPoolExecutor}


@pytest.fixture(params=list(EXECUTORS))
def Executor(request):  # noqa: N802 - a class
    return EXECUTORS[request.param]


def better_in_corelet(Executor, why):  # noqa: N803
    intended_difference(Executor is cf.ProcessPoolExecutor, why)


def square(x):
    return x * x


def add(a, b=0):
    return a + b


def fail(x):
    raise KeyError(x)


def nap(s):
    time.sleep(s)
    return s


def suicide(x):
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


_seen = None


def remember(v):
    global _seen
    _seen = v


def seen(_):
    return _seen


def test_submit_result_and_errors(Executor):
    with Executor(2) as ex:
        assert isinstance(ex, cf.Executor)
        f = ex.submit(add, 2, b=40)
        assert isinstance(f, cf.Future)
        assert f.result(timeout=60) == 42
        bad = ex.submit(fail, "k")
        with pytest.raises(KeyError):
            bad.result(timeout=60)
        assert isinstance(bad.exception(), KeyError)


def test_map_with_chunks_and_a_timeout(Executor):
    with Executor(2) as ex:
        assert list(ex.map(square, range(20))) == [x * x for x in range(20)]
        assert list(ex.map(add, range(10), range(10), chunksize=3)) == [2 * x for x in range(10)]
        it = ex.map(nap, [2], timeout=0.1)
        with pytest.raises(TimeoutError):
            next(it)
        with pytest.raises(ValueError):
            ex.map(square, [1], chunksize=0)


def test_wait_and_as_completed(Executor):
    with Executor(2) as ex:
        fs = [ex.submit(square, i) for i in range(8)]
        done, not_done = cf.wait(fs, timeout=60)
        assert len(done) == 8 and not not_done
        assert sorted(f.result() for f in cf.as_completed(fs, timeout=60)) == [i * i for i in range(8)]


def test_run_in_executor(Executor):
    async def main(ex):
        loop = asyncio.get_running_loop()
        return await asyncio.gather(*(loop.run_in_executor(ex, square, i) for i in range(5)))

    with Executor(2) as ex:
        assert asyncio.run(main(ex)) == [0, 1, 4, 9, 16]


def wait_for_file(path):
    """Holds the one worker until the test creates `path` (60 s at most), so
    that what is submitted after it is still pending, whatever the machine's speed."""
    give_up = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < give_up:
        time.sleep(0.001)
    return "released"


def test_shutdown_cancels_what_has_not_started(Executor, tmp_path):
    release = tmp_path / "release"
    ex = Executor(1)
    fs = [ex.submit(wait_for_file, str(release))] + [ex.submit(square, i) for i in range(11)]
    ex.shutdown(wait=False, cancel_futures=True)
    release.touch()
    assert fs[0].result(timeout=60) == "released"
    cf.wait([f for f in fs if not f.cancelled()], timeout=60)  # (wait() never counts a cancelled one done)
    # Only what the executor had already handed to its worker (a few) runs.
    assert sum(f.cancelled() for f in fs) >= len(fs) - 4
    assert all(f.cancelled() or f.result() in ("released", *(i * i for i in range(11))) for f in fs)
    with pytest.raises(RuntimeError):
        ex.submit(square, 1)


def test_a_pending_future_can_be_cancelled(Executor, tmp_path):
    release = tmp_path / "release"
    with Executor(1) as ex:
        first = ex.submit(wait_for_file, str(release))
        others = [ex.submit(square, i) for i in range(5)]
        last = ex.submit(square, 3)
        assert last.cancel()
        assert last.cancelled()
        release.touch()
        assert first.result(timeout=60) == "released"
        assert [f.result(timeout=60) for f in others] == [i * i for i in range(5)]


def test_initializer(Executor):
    with Executor(1, initializer=remember, initargs=("set",)) as ex:
        assert ex.submit(seen, 0).result(timeout=60) == "set"


def test_a_killed_worker_fails_only_its_futures(Executor):
    better_in_corelet(Executor, "a killed worker fails only its own futures; the executor goes on")
    with Executor(2) as ex:
        fs = [ex.submit(suicide, i) for i in range(6)]
        errors = [f.exception(timeout=60) for f in fs]
        lost = [e for e in errors if e is not None]
        assert lost and all(isinstance(e, cf.process.BrokenProcessPool) for e in lost)
        assert all(isinstance(e, corelet.WorkerLost) and e.signal == signal.SIGKILL for e in lost)
        assert all("while running test_futures.suicide" in str(e) for e in lost), [str(e) for e in lost]
        assert [f.result() for f, e in zip(fs, errors) if e is None]  # the others went on
        assert ex.submit(square, 7).result(timeout=60) == 49  # and so does the executor


def test_worker_lost_elsewhere_is_not_a_broken_pool():
    assert not issubclass(corelet.WorkerLost, cf.process.BrokenProcessPool)
    assert issubclass(corelet.futures.BrokenWorker, corelet.WorkerLost)


def inc(x):
    return x + 1, os.getpid()


def total(xs):
    return sum(x for x, _ in xs), {pid for _, pid in xs}


def test_dask_computes_a_graph_on_the_executor(Executor):
    dask = pytest.importorskip("dask")  # Debian's python3-dask (scripts/deps installs it)
    delayed = dask.delayed
    parts = [delayed(inc)(i) for i in range(20)]
    graph = delayed(total)(parts)
    with Executor(2) as ex:
        ((result, pids),) = dask.compute(graph, scheduler=ex)
    assert result == sum(i + 1 for i in range(20))
    assert pids and os.getpid() not in pids  # the graph's tasks ran in the executor's workers


def test_no_leak_over_ten_thousand_submits():
    import gc

    def rss_kib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

    with corelet.futures.ProcessPoolExecutor(2) as ex:
        for f in [ex.submit(square, 3) for _ in range(500)]:  # warm-up
            f.result(timeout=60)
        gc.collect()
        objects, rss = len(gc.get_objects()), rss_kib()
        for start in range(0, 10_000, 500):
            fs = [ex.submit(square, i) for i in range(start, start + 500)]
            assert [f.result(timeout=60) for f in fs] == [i * i for i in range(start, start + 500)]
        del fs, f
        gc.collect()
        assert len(gc.get_objects()) - objects < 200
        assert rss_kib() - rss < 4096


def pid_of(_):
    return os.getpid()


def test_max_tasks_per_child(Executor):
    # concurrent.futures runs it with a 'spawn' context; corelet forks its
    # workers from a fresh interpreter.
    with Executor(1, max_tasks_per_child=2) as ex:
        pids = [ex.submit(pid_of, i).result(timeout=60) for i in range(6)]
    assert [pids.count(p) for p in dict.fromkeys(pids)] == [2, 2, 2], pids
    with pytest.raises(ValueError):
        Executor(1, max_tasks_per_child=0)
