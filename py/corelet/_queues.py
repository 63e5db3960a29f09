"""Queue, LifoQueue, PriorityQueue and JoinableQueue for tasklets, with
queue.Queue's methods (and multiprocessing's JoinableQueue name).

``item = yield q.get()`` / ``await q.get()``; ``yield q.put(item)`` waits only
while a bounded queue is full. ``get_nowait``/``put_nowait`` raise queue.Empty
and queue.Full, as the standard library's do.

Hand-offs keep the order and the bound exact: an item put while a getter
waits goes straight to that getter, and a slot freed by get() is reserved for
the first waiting putter.

Made in plain code (outside any tasklet), Queue() and JoinableQueue() give
their cross-process subclass of corelet._shared_queue, as multiprocessing's
(see corelet._common); LifoQueue and PriorityQueue are in-process wherever
they are made.
"""

import heapq
import queue as _stdlib_queue
import types
from collections import deque

from ._common import _NONE, _PlainCodeShared
from ._corelet import WaitQueue, ready

__all__ = ["Queue", "LifoQueue", "PriorityQueue", "JoinableQueue", "Empty", "Full"]

Empty = _stdlib_queue.Empty
Full = _stdlib_queue.Full


class Queue(_PlainCodeShared):
    """queue.Queue for tasklets (FIFO). Made in plain code (outside any
    tasklet) it is the cross-process SharedQueue, as multiprocessing.Queue."""

    def __init__(self, maxsize=0):
        self.maxsize = maxsize
        self._init(maxsize)
        self._getters = WaitQueue()
        self._putters = WaitQueue()
        self._reserved = 0  # slots handed to woken putters that have not put yet
        self._unfinished = 0
        self._all_done = WaitQueue()

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
        return 0 < self.maxsize <= self._qsize() + self._reserved

    def put(self, item, block=True, timeout=None):
        """Operation: puts item; waits (block) while the queue is full, raising
        queue.Full after timeout seconds or at once if block is False."""
        if not self.full():
            self._do_put(item)
            return _NONE
        if not block:
            raise Full
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        return self._put_slow(item, timeout)

    def _do_put(self, item):
        self._unfinished += 1
        if not self._qsize() and self._getters.notify(item):
            return  # a waiting getter took it
        self._put(item)

    @types.coroutine
    def _put_slow(self, item, timeout):
        yield self._putters.wait(timeout, timeout_error=Full, what="Queue.put")
        self._reserved -= 1  # get() reserved this slot for us
        self._do_put(item)

    def put_nowait(self, item):
        return self.put(item, False)

    def get(self, block=True, timeout=None):
        """Operation giving the next item; waits (block) while the queue is
        empty, raising queue.Empty after timeout seconds or at once if block is
        False."""
        if self._qsize():
            return ready(self._take())
        if not block:
            raise Empty
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        return self._getters.wait(timeout, timeout_error=Empty, what="Queue.get")

    def get_nowait(self):
        """The next item now, or queue.Empty."""
        if not self._qsize():
            raise Empty
        return self._take()

    def _take(self):
        item = self._get()
        if self._putters and not 0 < self.maxsize <= self._qsize() + self._reserved:
            self._reserved += 1
            self._putters.notify(True)
        return item

    def task_done(self):
        """One item taken from the queue is processed (see join())."""
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0:
            self._all_done.notify_all(True)

    def join(self):
        """Operation: waits until every item put has been marked task_done()."""
        if self._unfinished == 0:
            return _NONE
        return self._all_done.wait(what="Queue.join")

    def __repr__(self):
        return (
            f"<corelet.{type(self).__name__} size={self._qsize()} maxsize={self.maxsize}, "
            f"{len(self._getters)} getters, {len(self._putters)} putters waiting>"
        )


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
