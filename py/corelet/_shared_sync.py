"""The cross-process Lock, RLock, Semaphore, BoundedSemaphore, Event,
Condition and Barrier, as multiprocessing's: each is the Python face of one
of <corelet/ipc/sync.hpp>'s primitives in anonymous shared memory, so C++
processes can share them too.

They reach the processes forked after they are made (corelet.Process
children and the workers of corelet.run(main, workers=N)): share them by
inheritance, as with multiprocessing; pickling one raises RuntimeError.
Those made through a 'spawn' or 'forkserver' context (or once either is the
start method) are in memfds and also reach the children that context starts,
as arguments of their Process (see corelet._common).
corelet.Lock() and the others give them when made in plain code; each is a
subclass of the in-process class of its name (see corelet._common). Their
waiting methods block the calling thread in plain code (the GIL released);
inside a tasklet they are operations (``ok = yield lock.acquire()``) that
park the tasklet alone until the other side's change wakes it: no polling,
no CPU while it waits.
"""

import time
import types

from ._common import _FALSE, _TRUE, _in_process_only, _in_tasklet, _reduce_for_child, _register_cores, _shareable, _timeout
from ._corelet import ShmBarrier, ShmCondition, ShmEvent, ShmLock, ShmRLock, ShmSemaphore, UsageError
from ._corelet import _lock_acquire, _lock_enter, _lock_release, _rlock_acquire, _rlock_enter, _rlock_release, instancemethod
from ._sync import Barrier, BoundedSemaphore, BrokenBarrierError, Condition, Event, Lock, RLock, Semaphore

__all__ = [
    "SharedLock",
    "SharedRLock",
    "SharedSemaphore",
    "SharedBoundedSemaphore",
    "SharedEvent",
    "SharedCondition",
    "SharedBarrier",
]


class SharedLock(Lock, plain_code_of=Lock):
    """multiprocessing.Lock: acquire(block=True, timeout=None), release();
    any process may release it. In a tasklet acquire is an operation.
    acquire, release, __enter__ and __exit__ are C functions."""

    __slots__ = ("_core", "_lp")  # Lock's slots (unused here) and its __weakref__ come with it

    def __init__(self):
        self._from_child_state(ShmLock(_shareable()))

    __reduce__ = _reduce_for_child

    def _child_state(self):
        return self._core

    def _from_child_state(self, core):
        self._core = core
        self._lp = core._address()  # for the C functions; lives as long as _core

    acquire = instancemethod(_lock_acquire)
    release = instancemethod(_lock_release)
    __enter__ = instancemethod(_lock_enter)
    __exit__ = instancemethod(_lock_release)  # takes and ignores the exception arguments

    def locked(self):
        return self._core.locked()

    # Condition's protocol
    def _release_save(self):
        self.release()

    def _acquire_restore(self, _saved):
        return self.acquire()

    def _is_owned(self):
        return self._core.locked()

    def __repr__(self):
        return f"<corelet.Lock (shared) {'locked' if self.locked() else 'unlocked'}>"


class SharedRLock(RLock, plain_code_of=RLock):
    """multiprocessing.RLock: its holder (process and thread, or tasklet) may
    acquire it again; it is free after as many releases."""

    __slots__ = ("_core", "_rp")

    def __init__(self):
        self._from_child_state(ShmRLock(_shareable()))

    __reduce__ = _reduce_for_child

    def _child_state(self):
        return self._core

    def _from_child_state(self, core):
        self._core = core
        self._rp = core._address()  # for the C functions; lives as long as _core

    # C functions, as SharedLock's; release by a caller that does not hold it
    # raises AssertionError, as multiprocessing's.
    acquire = instancemethod(_rlock_acquire)
    release = instancemethod(_rlock_release)
    __enter__ = instancemethod(_rlock_enter)
    __exit__ = instancemethod(_rlock_release)  # takes and ignores the exception arguments

    def _release_save(self):
        try:
            return self._core.release_all()
        except ValueError:
            raise RuntimeError("cannot release un-acquired lock") from None

    def _acquire_restore(self, depth):
        if _in_tasklet():
            return self._core.restore_op(depth)
        self._core.restore(depth)
        return None

    def _is_owned(self):
        return self._core.owned()

    _acquire_slow = _in_process_only

    def __repr__(self):
        return f"<corelet.RLock (shared){', held by the caller' if self._core.owned() else ''}>"


class SharedSemaphore(Semaphore, plain_code_of=Semaphore):
    """multiprocessing.Semaphore: an ipc::Semaphore in shared memory."""

    # No __slots__: SharedBoundedSemaphore's two bases may not both add slots
    # to Semaphore's.

    _bounded = False

    def __init__(self, value=1):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._core = ShmSemaphore(value, self._bounded, _shareable())

    __reduce__ = _reduce_for_child

    def _child_state(self):
        return self._core

    def _from_child_state(self, core):
        self._core = core

    def acquire(self, block=True, timeout=None):
        timeout = _timeout(timeout, "Semaphore.acquire")
        if _in_tasklet():
            if not block:
                return _TRUE if self._core.try_acquire() else _FALSE
            return self._core.acquire_op(timeout)
        return self._core.acquire(block, timeout)

    def release(self, n=1):
        if n < 1:
            raise ValueError("n must be one or more")
        self._core.release(n)

    def get_value(self):
        return self._core.value

    def __enter__(self):
        if _in_tasklet():
            if not self._core.try_acquire():
                raise UsageError("corelet: `with` on an exhausted Semaphore cannot wait in a tasklet")
            return True
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def __repr__(self):
        return f"<corelet.{type(self).__name__.removeprefix('Shared')} (shared) value={self.get_value()}>"


class SharedBoundedSemaphore(SharedSemaphore, BoundedSemaphore, plain_code_of=BoundedSemaphore):
    """multiprocessing.BoundedSemaphore: a release past the initial value
    raises ValueError."""

    _bounded = True


class SharedEvent(Event, plain_code_of=Event):
    """multiprocessing.Event: an ipc::Event in shared memory."""

    __slots__ = ("_core",)

    def __init__(self):
        self._core = ShmEvent(_shareable())

    __reduce__ = _reduce_for_child

    def _child_state(self):
        return self._core

    def _from_child_state(self, core):
        self._core = core

    def is_set(self):
        return self._core.is_set()

    isSet = is_set

    def set(self):
        self._core.set()

    def clear(self):
        self._core.clear()

    def wait(self, timeout=None):
        timeout = _timeout(timeout, "Event.wait")
        if _in_tasklet():
            return self._core.wait_op(timeout)
        return self._core.wait(timeout)

    def __repr__(self):
        return f"<corelet.Event (shared) {'set' if self.is_set() else 'unset'}>"


class SharedCondition(Condition, plain_code_of=Condition):
    """multiprocessing.Condition over a shared lock (an RLock by default)."""

    def __init__(self, lock=None):
        self._from_child_state((SharedRLock() if lock is None else lock, ShmCondition(_shareable())))

    __reduce__ = _reduce_for_child

    def _child_state(self):
        return self._lock, self._core

    def _from_child_state(self, state):
        self._lock, self._core = state
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def wait(self, timeout=None):
        timeout = _timeout(timeout, "Condition.wait")
        if not self._lock._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        seen = self._core.prepare()
        saved = self._lock._release_save()
        if _in_tasklet():
            return self._wait_op(seen, saved, timeout)
        try:
            return self._core.wait(seen, timeout)
        finally:
            self._lock._acquire_restore(saved)

    @types.coroutine
    def _wait_op(self, seen, saved, timeout):
        try:
            return (yield self._core.wait_op(seen, timeout))
        finally:
            r = self._lock._acquire_restore(saved)
            if r is not None:
                yield r

    def wait_for(self, predicate, timeout=None):
        if _in_tasklet():
            raise UsageError("corelet: Condition.wait_for of a shared Condition: loop on `yield cond.wait()`")
        end = None if timeout is None else time.monotonic() + timeout
        result = predicate()
        while not result:
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                break
            self.wait(left)
            result = predicate()
        return result

    def notify(self, n=1):
        if not self._lock._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        self._core.notify(n)

    def notify_all(self):
        if not self._lock._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        self._core.notify(0xFFFFFFFF)

    notifyAll = notify_all

    def __repr__(self):
        return f"<corelet.Condition (shared) ({self._lock!r})>"


class SharedBarrier(Barrier, plain_code_of=Barrier):
    """multiprocessing.Barrier: parties processes (or threads, or tasklets)
    wait until all have come; the last to come runs the action first. An
    ipc::Barrier in shared memory. In a tasklet wait is an operation."""

    def __init__(self, parties, action=None, timeout=None):
        # ValueError unless parties >= 1
        self._from_child_state((ShmBarrier(parties, _shareable()), action, timeout))

    __reduce__ = _reduce_for_child

    def _child_state(self):
        return self._core, self._action, self._timeout

    def _from_child_state(self, state):
        self._core, self._action, self._timeout = state

    def wait(self, timeout=None):
        if timeout is None:
            timeout = self._timeout
        timeout = _timeout(timeout, "Barrier.wait")
        if _in_tasklet():
            return self._wait_op(timeout)
        return self._core.wait(timeout, self._action)

    @types.coroutine
    def _wait_op(self, timeout):
        index, gen, last = yield self._core.arrive_op(timeout)
        if not last:
            return (yield self._core.wait_passed_op(index, gen, timeout))
        try:
            if self._action is not None:
                self._action()
        except BaseException:
            try:
                self._core.complete(index, gen, False)
            except BrokenBarrierError:
                pass  # reset meanwhile: the action's error is the one to report
            raise
        self._core.complete(index, gen, True)
        return index


    def abort(self):
        """Breaks the barrier: waiters raise BrokenBarrierError."""
        self._core.abort()

    def reset(self):
        """Waiters raise BrokenBarrierError; the barrier is usable again."""
        self._core.reset()

    @property
    def parties(self):
        return self._core.parties

    @property
    def n_waiting(self):
        return self._core.n_waiting

    @property
    def broken(self):
        return self._core.broken


_register_cores(
    {
        ShmLock: "Lock",
        ShmRLock: "RLock",
        ShmSemaphore: "Semaphore",
        ShmEvent: "Event",
        ShmCondition: "Condition",
        ShmBarrier: "Barrier",
    }
)
