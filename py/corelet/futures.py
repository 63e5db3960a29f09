"""corelet.futures: concurrent.futures' ProcessPoolExecutor on a corelet.Pool.

    from corelet.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(4) as ex:
        f = ex.submit(pow, 2, 10)
        print(f.result(), list(ex.map(abs, [-1, -2], chunksize=8)))

It is a concurrent.futures.Executor: its futures are concurrent.futures.Future
objects, so concurrent.futures.wait / as_completed and asyncio's
run_in_executor take them. The work runs on a corelet.Pool made from plain
code (its own cluster of worker processes, started at the first submit).

A worker that is killed fails only the futures of the work it held, with
BrokenWorker: both a corelet.WorkerLost (worker, pid, signal, exitcode) and a
concurrent.futures.process.BrokenProcessPool. A new worker takes its place
and the executor goes on (concurrent.futures' own pool is broken for good
after one death).

submit hands at most a few calls per worker to the pool at a time; the rest
wait here, so cancel() works on them and shutdown(cancel_futures=True)
cancels them, as concurrent.futures does.
"""

import collections
import concurrent.futures as _cf
import itertools
import os
import threading
from concurrent.futures.process import BrokenProcessPool

from ._corelet import WorkerLost
from ._pool import Pool

__all__ = ["ProcessPoolExecutor", "BrokenWorker"]


class BrokenWorker(WorkerLost, BrokenProcessPool):
    """A worker of a ProcessPoolExecutor died while it ran this future's
    work: a corelet.WorkerLost that is also a BrokenProcessPool, for code
    written against concurrent.futures. Raised by the executor's futures
    only; WorkerLost elsewhere stays what it is."""


def _broken(e):
    b = BrokenWorker(*e.args)
    for name in ("worker", "pid", "signal", "exitcode", "sent"):
        if hasattr(e, name):
            setattr(b, name, getattr(e, name))
    b.__cause__ = e.__cause__
    return b


class _Call:
    """fn(*args, **kwargs) as one picklable callable."""

    def __init__(self, fn, args, kwargs):
        self.fn, self.args, self.kwargs = fn, args, kwargs

    @property
    def _wrapped_call(self):
        return self.fn

    def __call__(self):
        return self.fn(*self.args, **self.kwargs)


class _Chunk:
    """fn over a chunk of argument tuples (map with chunksize)."""

    def __init__(self, fn):
        self.fn = fn

    @property
    def _wrapped_call(self):
        return self.fn

    def __call__(self, chunk):
        return [self.fn(*args) for args in chunk]


def _chunks(iterables, chunksize):
    it = zip(*iterables)
    while True:
        chunk = tuple(itertools.islice(it, chunksize))
        if not chunk:
            return
        yield chunk


class ProcessPoolExecutor(_cf.Executor):
    """concurrent.futures.ProcessPoolExecutor over a corelet.Pool.
    max_workers: the pool's processes (default: the CPUs this process may
    use). mp_context is accepted for concurrent.futures' signature ('fork'
    or None). max_tasks_per_child: a worker process is replaced after that
    many calls (the Pool's maxtasksperchild; corelet's workers are forked
    from a fresh interpreter, so it needs no 'spawn' context)."""

    def __init__(self, max_workers=None, mp_context=None, initializer=None, initargs=(), *, max_tasks_per_child=None):
        if max_workers is None:
            max_workers = len(os.sched_getaffinity(0))
        elif max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if mp_context is not None:
            method = mp_context.get_start_method() if hasattr(mp_context, "get_start_method") else mp_context
            if method != "fork":
                raise ValueError(f"corelet.futures: the {method!r} start method is not available; corelet forks")
        if max_tasks_per_child is not None and (not isinstance(max_tasks_per_child, int) or max_tasks_per_child < 1):
            raise ValueError("max_tasks_per_child must be >= 1")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._max_workers = max_workers
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._max_tasks_per_child = max_tasks_per_child
        self._pool = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = collections.deque()  # (future, callable) not yet handed to the pool
        self._running = 0  # handed to the pool, not yet done
        self._window = 2 * max_workers
        self._shutdown = False

    # -- the pool and the window of calls handed to it --
    def _start_pool(self):
        if self._pool is None:
            self._pool = Pool(self._max_workers, self._initializer, self._initargs, self._max_tasks_per_child)
        return self._pool

    def _dispatch_locked(self):
        """Hands pending calls to the pool while the window has room (called
        with the lock held). A cancelled future is dropped here."""
        started = []
        while self._pending and self._running < self._window:
            f, call = self._pending.popleft()
            if not f.set_running_or_notify_cancel():
                continue
            self._running += 1
            started.append((f, call))
        if not self._pending and self._running == 0:
            self._idle.notify_all()
        return started

    def _send(self, started):
        pool = self._pool
        for f, call in started:
            try:
                # The function itself goes, with its arguments: the Pool then
                # encodes a plain function once, not at every submit.
                pool.apply_async(call.fn, call.args, call.kwargs, callback=lambda v, f=f: self._done(f, True, v),
                                 error_callback=lambda e, f=f: self._done(f, False, e))
            except BaseException as e:  # noqa: BLE001 - the call cannot be sent (pickling): its future fails
                self._done(f, False, e)

    def _done(self, f, ok, value):
        if ok:
            f.set_result(value)
        else:
            f.set_exception(_broken(value) if isinstance(value, WorkerLost) else value)
        with self._lock:
            self._running -= 1
            started = self._dispatch_locked()
        self._send(started)

    # -- concurrent.futures.Executor --
    def submit(self, fn, /, *args, **kwargs):
        """Schedules fn(*args, **kwargs); returns a concurrent.futures.Future."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._start_pool()
            f = _cf.Future()
            self._pending.append((f, _Call(fn, args, kwargs)))
            started = self._dispatch_locked()
        self._send(started)
        return f

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """As concurrent.futures' map: results in order; chunksize > 1 sends
        that many calls to a worker at a time."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if chunksize == 1:
            return super().map(fn, *iterables, timeout=timeout)
        results = super().map(_Chunk(fn), _chunks(iterables, chunksize), timeout=timeout)
        return itertools.chain.from_iterable(results)

    def shutdown(self, wait=True, *, cancel_futures=False):
        """No more submits. cancel_futures: the calls not yet running are
        cancelled. wait: returns once every running call is done and the
        workers have ended."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while self._pending:
                    f, _ = self._pending.popleft()
                    f.cancel()
                if self._running == 0:
                    self._idle.notify_all()
            pool = self._pool
        if pool is None:
            return
        if wait:
            with self._lock:
                while self._pending or self._running:
                    self._idle.wait()
            pool.close()
            pool.join()
        else:
            threading.Thread(target=self._finish_later, name="corelet.futures shutdown", daemon=True).start()

    def _finish_later(self):
        with self._lock:
            while self._pending or self._running:
                self._idle.wait()
        self._pool.close()
        self._pool.join()

    def __repr__(self):
        state = "shutdown" if self._shutdown else "running"
        return f"<corelet.futures.ProcessPoolExecutor {state} max_workers={self._max_workers}>"
