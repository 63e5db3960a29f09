"""Multicore: corelet.run(main, workers=N) runs one interpreter per worker
process, each with its own scheduler and GIL; spawn_on runs a call on another
worker; Pool spreads map/apply work over the workers.

Calls cross as pickles (corelet._wire) over corelet's shared-memory rings.
A worker that dies fails every call waiting on it with WorkerLost within a
second; the cluster starts a new process in its place.
"""

import os
import signal
import types

from . import _corelet
from ._corelet import WorkerLost, num_workers, spawn, this_worker
from ._wire import callable_name, dumps, dumps_call, is_tasklet_body, loads, pack_exception, raise_remote

__all__ = ["run_cluster", "spawn_on", "call_on", "this_worker", "num_workers", "WorkerLost"]


# ---- the callee's side ----------------------------------------------------------


def _serve_call(payload):
    """Runs one remote call in a tasklet of this worker; gives the reply."""
    try:
        fn, args, kwargs = loads(payload)
        result = fn(*args, **kwargs)
        if is_tasklet_body(result):  # a generator function or async def: run it here as a tasklet body
            result = yield result
        reply = ("ok", result)
    except BaseException as e:  # noqa: BLE001 - everything goes back to the caller
        reply = ("err", pack_exception(e))
    try:
        return dumps(reply)
    except TypeError as e:
        return dumps(("err", pack_exception(TypeError(f"corelet: the result cannot be sent back: {e}"))))


_corelet._set_remote_handler(_serve_call)


# ---- the caller's side ----------------------------------------------------------


@types.coroutine
def _call_payload(worker, payload, what=""):
    reply = yield _corelet._remote_call(worker, payload, what)
    status, value = loads(reply)
    if status == "ok":
        return value
    raise_remote(value)


def _check_worker(worker, call):
    n = num_workers()
    if n == 0:
        raise ValueError(f"corelet.{call}: needs corelet.run(..., workers=N)")
    if not 0 <= worker < n:
        raise ValueError(f"corelet.{call}: no worker {worker} (workers: 0..{n - 1})")


def call_on(worker, fn, *args, **kwargs):
    """Operation: runs fn(*args, **kwargs) on worker and gives its result (or
    raises its exception, with the remote traceback as __cause__). The call is
    pickled now: an argument that cannot be pickled raises TypeError here."""
    _check_worker(worker, "call_on")
    return _call_payload(worker, dumps_call(fn, args, kwargs), callable_name(fn))


def spawn_on(worker, fn, *args, **kwargs):
    """Starts fn(*args, **kwargs) on worker at once; gives a Task whose join
    gives the result. fn may be a plain function, a generator function or an
    async def (it then runs as a tasklet there)."""
    _check_worker(worker, "spawn_on")
    payload = dumps_call(fn, args, kwargs)
    name = f"spawn_on({worker}, {getattr(fn, '__qualname__', 'fn')})"
    return spawn(_call_payload, worker, payload, callable_name(fn), name=name)


# ---- corelet.run(main, workers=N) ---------------------------------------------


_forking_workers = False  # set while run_cluster's supervisor forks workers
_hooked = False


def _after_fork_of_worker():
    """In a worker just forked by the supervisor: multiprocessing's after-fork
    work, as in a corelet.Process child (corelet._process)."""
    global _forking_workers
    if _forking_workers:
        _forking_workers = False  # the worker's own forks are its business
        from ._process import _after_fork_in_child

        _after_fork_in_child()


def _stop_idle_resource_sharer():
    """multiprocessing's resource sharer (a thread that hands pickled Pipe
    ends and descriptors to their receivers) is stopped before the cluster
    forks, which needs a single-threaded process, when it holds nothing
    that is still to be received; it starts again at the next such pickle."""
    from multiprocessing import resource_sharer

    sharer = resource_sharer._resource_sharer
    if getattr(sharer, "_thread", None) is None:
        return
    if getattr(sharer, "_cache", None):
        raise _corelet.UsageError(
            "corelet.run: a Pipe end or descriptor this process pickled has not been received yet "
            "(multiprocessing's resource sharer keeps a thread for it, and the cluster forks only "
            "a single-threaded process)"
        )
    sharer.stop(timeout=30)


def run_cluster(main, args, workers, pin, on_worker_death, shutdown_timeout, idle_spin, ring_bytes, quiet=False):
    if on_worker_death not in ("restart", "shutdown"):
        raise ValueError("corelet.run: on_worker_death is 'restart' or 'shutdown'")
    _stop_idle_resource_sharer()
    fd = os.memfd_create("corelet-run-result")
    global _forking_workers, _hooked
    if not _hooked:
        os.register_at_fork(after_in_child=_after_fork_of_worker)
        _hooked = True

    def main_of_worker0():
        try:
            result = main(*args)
            if is_tasklet_body(result):
                result = yield result
            reply = ("ok", result)
        except BaseException as e:  # noqa: BLE001
            reply = ("err", pack_exception(e))
        try:
            data = dumps(reply)
        except TypeError as e:
            data = dumps(("err", pack_exception(TypeError(f"corelet.run: main's result cannot be returned: {e}"))))
        os.pwrite(fd, data, 0)
        return 0

    try:
        _forking_workers = True
        try:
            status = _corelet._run_cluster(
                main_of_worker0, workers, pin, on_worker_death == "restart", shutdown_timeout, idle_spin, ring_bytes,
                quiet
            )
        finally:
            _forking_workers = False
        size = os.fstat(fd).st_size
        data = os.pread(fd, size, 0) if size else b""
    finally:
        os.close(fd)
    if not data:
        if status == 128 + signal.SIGINT:
            raise KeyboardInterrupt
        raise RuntimeError(f"corelet.run: the cluster stopped (status {status}) before main returned")
    status_, value = loads(data)
    if status_ == "ok":
        return value
    raise_remote(value)
