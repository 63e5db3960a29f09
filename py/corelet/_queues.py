"""Queue, LifoQueue, PriorityQueue and JoinableQueue for tasklets, with
queue.Queue's methods (and multiprocessing's JoinableQueue name).

``item = yield q.get()`` / ``await q.get()``; ``yield q.put(item)`` waits only
while a bounded queue is full. ``get_nowait``/``put_nowait`` raise queue.Empty
and queue.Full, as the standard library's do.

The state machine — the bound, the unfinished-task count, the waiting getters,
putters and joiners — is sched's Queue (the _QueueCore base, in C++), the one
fiber tasklets use; the items live in the object's own storage (_init, _qsize,
_put and _get, which subclasses override as queue.Queue's do). As with
queue.Queue and its condition variables, a woken getter or putter looks
again when it runs, and waits again if another tasklet came first.

Made in plain code (outside any tasklet), Queue() and JoinableQueue() give
their cross-process subclass of corelet._shared_queue, as multiprocessing's
(see corelet._common); LifoQueue and PriorityQueue are in-process wherever
they are made.
"""

import heapq
import queue as _stdlib_queue
from collections import deque

from ._common import _NONE, _PlainCodeShared
from ._corelet import _QueueCore, ready

__all__ = ["Queue", "LifoQueue", "PriorityQueue", "JoinableQueue", "Empty", "Full"]

Empty = _stdlib_queue.Empty
Full = _stdlib_queue.Full

_NO_ITEM = object()


class Queue(_PlainCodeShared, _QueueCore):
    """queue.Queue for tasklets (FIFO). Made in plain code (outside any
    tasklet) it is the cross-process SharedQueue, as multiprocessing.Queue."""

    def __init__(self, maxsize=0):
        self.maxsize = maxsize
        self._init(maxsize)

    # The storage; subclasses change the order.
    def _init(self, maxsize):
        self._queue = deque()

    def _qsize(self):
        return len(self._queue)

    def _put(self, item):
        self._queue.append(item)

    def _get(self):
        return self._queue.popleft()

    # Sizes, as queue.Queue (and as racy there; here exact between yields).
    def qsize(self):
        return self._qsize()

    def empty(self):
        return not self._qsize()

    def full(self):
        return 0 < self.maxsize <= self._qsize()

    def put(self, item, block=True, timeout=None):
        """Operation: puts item; waits (block) while the queue is full, raising
        queue.Full after timeout seconds or at once if block is False."""
        if self._try_put(item):
            return _NONE
        if not block:
            raise Full
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        return self._put_op(item, timeout)

    def put_nowait(self, item):
        return self.put(item, False)

    def get(self, block=True, timeout=None):
        """Operation giving the next item; waits (block) while the queue is
        empty, raising queue.Empty after timeout seconds or at once if block is
        False."""
        item = self._try_get(_NO_ITEM)
        if item is not _NO_ITEM:
            return ready(item)
        if not block:
            raise Empty
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        return self._get_op(timeout)

    def get_nowait(self):
        """The next item now, or queue.Empty."""
        item = self._try_get(_NO_ITEM)
        if item is _NO_ITEM:
            raise Empty
        return item

    # task_done() is _QueueCore's.

    def join(self):
        """Operation: waits until every item put has been marked task_done()."""
        if self._unfinished() == 0:
            return _NONE
        return self._join_op()

    def __repr__(self):
        return f"<corelet.{type(self).__name__} size={self._qsize()} maxsize={self.maxsize}>"


class LifoQueue(Queue):
    """queue.LifoQueue for tasklets (last in, first out)."""

    def _init(self, maxsize):
        self._queue = []

    def _get(self):
        return self._queue.pop()


class PriorityQueue(Queue):
    """queue.PriorityQueue for tasklets (smallest first)."""

    def _init(self, maxsize):
        self._queue = []

    def _put(self, item):
        heapq.heappush(self._queue, item)

    def _get(self):
        return heapq.heappop(self._queue)


class JoinableQueue(Queue):
    """multiprocessing's name for a Queue with task_done() and join() (every
    corelet Queue has them, as queue.Queue does)."""
