"""corelet.dummy: multiprocessing's API over threads, as multiprocessing.dummy.

The standard library's multiprocessing.dummy is that module already, so
these are its names: Process is a thread, Pool a thread pool, Queue a
queue.Queue, the locks threading's. A program written against
`multiprocessing.dummy` runs unchanged with `corelet.dummy`.
"""

from multiprocessing.dummy import (  # noqa: F401 - re-exported
    Barrier,
    BoundedSemaphore,
    Condition,
    Event,
    JoinableQueue,
    Lock,
    Manager,
    Pipe,
    Pool,
    Process,
    Queue,
    RLock,
    Semaphore,
    active_children,
    current_process,
    freeze_support,
)
from multiprocessing.dummy import Array, Namespace, Value  # noqa: F401 - not in its __all__, but there

__all__ = [
    "Process",
    "current_process",
    "active_children",
    "freeze_support",
    "Lock",
    "RLock",
    "Semaphore",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "Barrier",
    "Queue",
    "Manager",
    "Pipe",
    "Pool",
    "JoinableQueue",
]
