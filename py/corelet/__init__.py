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
thread. corelet.open and corelet.socket are left out of ``__all__`` so that
``from corelet import *`` cannot shadow the builtin open or the socket module.
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

__all__ = [
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "Cancelled",
    "Channel",
    "ChannelClosed",
    "Condition",
    "Deadlock",
    "Empty",
    "Event",
    "File",
    "Full",
    "JoinableQueue",
    "LifoQueue",
    "Lock",
    "Op",
    "PriorityQueue",
    "Queue",
    "RLock",
    "Semaphore",
    "Task",
    "Timer",
    "UsageError",
    "WaitQueue",
    "current",
    "create_connection",
    "create_server",
    "current_id",
    "read",
    "ready",
    "run",
    "run_blocking",
    "select",
    "sleep",
    "socketpair",
    "spawn",
    "wait_readable",
    "wait_writable",
    "write",
]


def run(main, *args, workers=None):
    """Runs ``main(*args)`` as the first tasklet of a scheduler on this thread,
    until it and every tasklet it spawned have ended, and returns main's
    result (or raises its exception).

    ``main`` may be a generator function, an ``async def`` or a plain
    function. Raises :class:`Deadlock` if every remaining tasklet waits for
    something that can never happen.

    ``workers`` is the number of processes (one scheduler each); ``None``
    runs one scheduler in this process.
    """
    if workers is not None and workers != 1:
        raise NotImplementedError(
            "corelet.run: workers > 1 (one interpreter per core) is not built yet; "
            "see issue #5 and py/README.md"
        )
    return _corelet._run(main, *args)
