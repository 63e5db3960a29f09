"""corelet: many concurrent tasklets and all your cores.

Tasklets are generator functions (``x = yield ch.recv()``) or ``async def``
coroutines (``x = await ch.recv()``), driven by corelet's C++ scheduler. A
tasklet gives up the CPU only where it yields or awaits a corelet operation
(or a bare ``yield``), so code between two such points runs alone.

    import corelet

    def producer(ch):
        for i in range(3):
            yield ch.send(i)
        ch.close()

    async def consumer(ch):
        async for item in ch:
            print(item)

    def main():
        ch = corelet.Channel()
        corelet.spawn(producer, ch)
        yield corelet.spawn(consumer, ch).join()

    corelet.run(main)

Importing corelet changes nothing in the standard library and starts no
thread. corelet.open, corelet.socket and corelet.TimeoutError (multiprocessing's)
are left out of ``__all__`` so that ``from corelet import *`` cannot shadow the
builtin open, the socket module or the builtin TimeoutError.
"""

from ._corelet import (
    Cancelled,
    Channel,
    ChannelClosed,
    Deadlock,
    Op,
    Task,
    UsageError,
    WaitQueue,
    current,
    current_id,
    ready,
    run_blocking,
    select,
    sleep,
    spawn,
)
from . import _corelet
_corelet._set_package_dir(__file__.rsplit("/", 1)[0] + "/")
from ._corelet import accounting, dump, set_accounting, set_stall_threshold, stall_threshold, stats
from ._sync import (
    Barrier,
    BoundedSemaphore,
    BrokenBarrierError,
    Condition,
    Event,
    Lock,
    RLock,
    Semaphore,
    Timer,
)
from ._queues import Empty, Full, JoinableQueue, LifoQueue, PriorityQueue, Queue
from ._io import File, create_connection, create_server, open, socket, socketpair
from ._corelet import read, wait_readable, wait_writable, write
from ._corelet import WorkerLost, num_workers, this_worker, worker_alive, worker_pid
from . import _cluster
from ._cluster import call_on, spawn_on
from ._wire import RemoteError, RemoteTraceback
from ._pool import AsyncResult, Pool
from ._actors import ActorProxy, actor_processes, register, sender, spawn_actor, stop_actor, whereis
# The cross-process primitives; importing _shared_sync and _shared_queue also
# makes them what Lock(), Queue() and the others give in plain code.
from . import _shared_sync  # noqa: F401
from ._shared_queue import Connection, Pipe, SimpleQueue
from ._shared_values import Array, RawArray, RawValue, Value
from ._process import Process, active_children, current_process, parent_process
from ._context import (
    AuthenticationError,
    BufferTooShort,
    ProcessError,
    TimeoutError,  # noqa: A004 - multiprocessing's name; not in __all__
    cpu_count,
    freeze_support,
    get_all_start_methods,
    get_context,
    get_logger,
    get_start_method,
    log_to_stderr,
    set_executable,
    set_forkserver_preload,
    set_start_method,
)


def Manager():
    """A started corelet.managers.SyncManager, as multiprocessing.Manager():
    its server is a child process running corelet's scheduler, a tasklet per
    client connection. ``with corelet.Manager() as m:`` shuts it down at the
    end. (corelet.managers is imported on the first call.)"""
    from .managers import Manager as make

    return make()


__all__ = [
    "ActorProxy",
    "Array",
    "AsyncResult",
    "AuthenticationError",
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "BufferTooShort",
    "Cancelled",
    "Channel",
    "ChannelClosed",
    "Condition",
    "Connection",
    "Deadlock",
    "Empty",
    "Event",
    "File",
    "Full",
    "JoinableQueue",
    "LifoQueue",
    "Lock",
    "Manager",
    "Op",
    "Pipe",
    "Pool",
    "PriorityQueue",
    "Process",
    "ProcessError",
    "Queue",
    "RawArray",
    "RawValue",
    "RemoteError",
    "RemoteTraceback",
    "RLock",
    "Semaphore",
    "SimpleQueue",
    "Task",
    "Timer",
    "UsageError",
    "Value",
    "WaitQueue",
    "WorkerLost",
    "accounting",
    "active_children",
    "actor_processes",
    "call_on",
    "cpu_count",
    "create_connection",
    "create_server",
    "current",
    "current_id",
    "current_process",
    "dump",
    "freeze_support",
    "get_all_start_methods",
    "get_context",
    "get_logger",
    "get_start_method",
    "log_to_stderr",
    "num_workers",
    "parent_process",
    "read",
    "ready",
    "register",
    "run",
    "run_blocking",
    "select",
    "sender",
    "set_accounting",
    "set_executable",
    "set_forkserver_preload",
    "set_stall_threshold",
    "set_start_method",
    "sleep",
    "socketpair",
    "spawn",
    "spawn_actor",
    "spawn_on",
    "stall_threshold",
    "stats",
    "stop_actor",
    "this_worker",
    "wait_readable",
    "wait_writable",
    "whereis",
    "worker_alive",
    "worker_pid",
    "write",
]


def run(
    main,
    *args,
    workers=None,
    pin=True,
    on_worker_death="restart",
    shutdown_timeout=5.0,
    idle_spin=50e-6,
    ring_bytes=1 << 20,
    quiet=False,
):
    """Runs ``main(*args)`` as the first tasklet of a scheduler, until it and
    every tasklet it spawned have ended, and returns main's result (or raises
    its exception). ``main`` may be a generator function, an ``async def`` or
    a plain function.

    ``workers=None``: one scheduler, on this thread. Raises :class:`Deadlock`
    if every remaining tasklet waits for something that can never happen.

    ``workers=N`` (0: one per CPU): this process becomes the supervisor of N
    worker processes (forked now: start them before any thread), each with
    its own interpreter and scheduler, pinned to a CPU if ``pin``; main runs
    on worker 0 and its result is pickled back. Work reaches the others
    through :func:`spawn_on` and :class:`Pool`. ``on_worker_death``:
    ``"restart"`` replaces a dead worker (calls that waited on it raise
    :class:`WorkerLost`), ``"shutdown"`` stops everything. SIGINT/SIGTERM
    stop the workers, killing them after ``shutdown_timeout`` seconds. A
    worker's death is reported on stderr unless ``quiet``.
    """
    if workers is None:
        return _corelet._run(main, *args)
    return _cluster.run_cluster(
        main, args, workers, pin, on_worker_death, shutdown_timeout, idle_spin, ring_bytes, quiet
    )
