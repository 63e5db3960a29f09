"""Lock, RLock, Condition, Semaphore, BoundedSemaphore, Event, Barrier and
Timer for tasklets, with threading's names and methods.

A method that may wait returns an operation: ``ok = yield lock.acquire()`` in
a generator tasklet, ``ok = await lock.acquire()`` in an ``async def`` one.
When it need not wait the operation is complete at once (no switch). Methods
that never wait (``release``, ``set``, ``notify``) are plain calls.

``async with lock:`` waits as needed. ``with lock:`` cannot wait (a ``with``
statement cannot yield): it takes a free lock and raises UsageError on a held
one, naming what to write instead.

Wake-ups are hand-offs: a released Lock or Semaphore unit goes to the first
waiter directly, so a tasklet that did not wait cannot barge in ahead of it.
Lock, RLock and the semaphores are sched's Semaphore, Event the flag of
sched's Event, Barrier sched's Barrier (the _Units, _Flag and _Gate types of
the extension): the state machines fiber tasklets use, with threading's
names and checks here.

Made in plain code (outside any tasklet), Lock() and the others but Timer
give their cross-process subclass of corelet._shared_sync, as
multiprocessing's (see corelet._common).
"""

import threading
import time
import types

from ._common import _FALSE, _TRUE, _AsyncWith, _PlainCodeShared, _WithItsLock, _timeout
from ._corelet import UsageError, WaitQueue, _Flag, _Gate, _Units, current_id, spawn

__all__ = ["Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Event", "Barrier", "Timer"]

BrokenBarrierError = threading.BrokenBarrierError


def _cannot_wait(obj, how):
    return UsageError(
        f"corelet: `with` on a held {type(obj).__name__} cannot wait in a tasklet; write "
        f"`{how}` (generator tasklet) or `async with` (async def tasklet)"
    )


class Lock(_PlainCodeShared, _AsyncWith):
    """threading.Lock for tasklets: ``yield lock.acquire()``, ``lock.release()``.
    One unit of sched's Semaphore (_Units): a release hands the lock to the
    first waiter."""

    __slots__ = ("_units", "__weakref__")

    def __init__(self):
        self._units = _Units(1)

    def acquire(self, blocking=True, timeout=-1):
        """Operation giving True once the lock is ours, False after timeout seconds
        (or at once if blocking is False and the lock is held)."""
        if self._units.take():
            return _TRUE
        if not blocking:
            if timeout != -1:
                raise ValueError("can't specify a timeout for a non-blocking call")
            return _FALSE
        return self._units.wait(_timeout(timeout, "Lock.acquire"), "Lock.acquire")

    def release(self):
        if self._units.value():
            raise RuntimeError("release unlocked lock")
        self._units.give()  # to the first waiter if there is one: then it stays locked

    def locked(self):
        return not self._units.value()

    def __enter__(self):
        if not self._units.take():
            raise _cannot_wait(self, "yield lock.acquire() ... lock.release()")
        return True

    def __exit__(self, *exc):
        self.release()
        return False

    # Condition's protocol
    def _release_save(self):
        self.release()

    def _acquire_restore(self, _saved):
        return self.acquire()

    def _is_owned(self):
        return self.locked()

    def __repr__(self):
        return f"<corelet.Lock {'locked' if self.locked() else 'unlocked'}, {self._units.waiting()} waiting>"


class RLock(_PlainCodeShared, _AsyncWith):
    """threading.RLock for tasklets: the owning tasklet may acquire it again;
    it is free after as many releases. Its lock is a Lock's (_Units); the
    owner and the count are the RLock's."""

    __slots__ = ("_owner", "_count", "_units", "__weakref__")

    def __init__(self):
        self._owner = None
        self._count = 0
        self._units = _Units(1)

    def acquire(self, blocking=True, timeout=-1):
        me = current_id()
        if self._owner == me and self._count:
            self._count += 1
            return _TRUE
        if self._units.take():
            self._owner = me
            self._count = 1
            return _TRUE
        if not blocking:
            if timeout != -1:
                raise ValueError("can't specify a timeout for a non-blocking call")
            return _FALSE
        return self._acquire_slow(me, _timeout(timeout, "RLock.acquire"))

    @types.coroutine
    def _acquire_slow(self, me, timeout):
        got = yield self._units.wait(timeout, "RLock.acquire")
        if got:
            self._owner = me
            self._count = 1
        return got

    def release(self):
        if self._owner != current_id() or self._count == 0:
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if self._count == 0:
            self._owner = None
            self._units.give()  # to the first waiter, which becomes the owner when it runs

    def __enter__(self):
        me = current_id()
        if self._owner == me and self._count:
            self._count += 1
            return True
        if not self._units.take():
            raise _cannot_wait(self, "yield rlock.acquire() ... rlock.release()")
        self._owner = me
        self._count = 1
        return True

    def __exit__(self, *exc):
        self.release()
        return False

    def _release_save(self):
        if self._owner != current_id() or self._count == 0:
            raise RuntimeError("cannot release un-acquired lock")
        saved = self._count
        self._count = 0
        self._owner = None
        self._units.give()
        return saved

    @types.coroutine
    def _acquire_restore(self, count):
        yield self.acquire()
        self._count = count

    def _is_owned(self):
        return self._owner == current_id() and self._count > 0

    def __repr__(self):
        return f"<corelet.RLock owner={self._owner} count={self._count}, {self._units.waiting()} waiting>"


class Condition(_WithItsLock, _PlainCodeShared):
    """threading.Condition for tasklets: ``yield cond.wait()`` releases the lock,
    waits for notify(), and takes the lock again (also when cancelled)."""

    def __init__(self, lock=None):
        self._lock = RLock() if lock is None else lock
        self.acquire = self._lock.acquire
        self.release = self._lock.release
        self._waiters = WaitQueue()

    @types.coroutine
    def wait(self, timeout=None):
        """Operation giving True when notified, False after timeout seconds."""
        if not self._lock._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        timeout = _timeout(timeout, "Condition.wait")
        saved = self._lock._release_save()
        try:
            return (yield self._waiters.wait(timeout, False, what="Condition.wait"))
        finally:
            yield self._lock._acquire_restore(saved)

    @types.coroutine
    def wait_for(self, predicate, timeout=None):
        """Waits until predicate() is true (checked with the lock held); gives its
        last value, false if timeout seconds passed first."""
        end = None
        result = predicate()
        while not result:
            wait = None
            if timeout is not None:
                if end is None:
                    end = time.monotonic() + timeout
                wait = end - time.monotonic()
                if wait <= 0:
                    break
            yield from self.wait(wait)
            result = predicate()
        return result

    def notify(self, n=1):
        if not self._lock._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        for _ in range(n):
            if not self._waiters.notify(True):
                break

    def notify_all(self):
        if not self._lock._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        self._waiters.notify_all(True)

    notifyAll = notify_all

    def __repr__(self):
        return f"<corelet.Condition({self._lock!r}), {len(self._waiters)} waiting>"


class Semaphore(_PlainCodeShared, _AsyncWith):
    """threading.Semaphore for tasklets: sched's Semaphore (_Units), whose
    released units go to the longest waiter first."""

    __slots__ = ("_units", "__weakref__")

    def __init__(self, value=1):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._units = _Units(value)

    def acquire(self, blocking=True, timeout=None):
        if self._units.take():
            return _TRUE
        if not blocking:
            if timeout is not None:
                raise ValueError("can't specify timeout for non-blocking acquire")
            return _FALSE
        return self._units.wait(_timeout(timeout, "Semaphore.acquire"), "Semaphore.acquire")

    def release(self, n=1):
        if n < 1:
            raise ValueError("n must be one or more")
        self._units.give(n)

    def __enter__(self):
        if not self._units.take():
            raise _cannot_wait(self, "yield sem.acquire() ... sem.release()")
        return True

    def __exit__(self, *exc):
        self.release()
        return False

    def __repr__(self):
        return f"<corelet.{type(self).__name__} value={self._units.value()}, {self._units.waiting()} waiting>"


class BoundedSemaphore(Semaphore):
    """A Semaphore whose release() past its initial value raises ValueError."""

    __slots__ = ("_initial",)

    def __init__(self, value=1):
        super().__init__(value)
        self._initial = value

    def release(self, n=1):
        if n < 1:
            raise ValueError("n must be one or more")
        if self._units.value() + n > self._initial:
            raise ValueError("Semaphore released too many times")
        self._units.give(n)


class Event(_PlainCodeShared):
    """threading.Event for tasklets: ``yield event.wait()``. sched's Event (_Flag)."""

    __slots__ = ("_flag", "__weakref__")

    def __init__(self):
        self._flag = _Flag()

    def is_set(self):
        return self._flag.is_set()

    isSet = is_set

    def set(self):
        self._flag.set()

    def clear(self):
        self._flag.clear()

    def wait(self, timeout=None):
        """Operation giving True once the flag is set, False after timeout seconds."""
        if self._flag.is_set():
            return _TRUE
        return self._flag.wait(_timeout(timeout, "Event.wait"), "Event.wait")

    def __repr__(self):
        return f"<corelet.Event {'set' if self.is_set() else 'unset'}, {self._flag.waiting()} waiting>"


class Barrier(_PlainCodeShared):
    """threading.Barrier for tasklets: ``index = yield barrier.wait()``.
    sched's Barrier (_Gate); the action runs here, in the last party's tasklet.

    A wait that times out or is cancelled breaks the barrier, as a timeout does
    in threading: the other waiters raise BrokenBarrierError."""

    def __init__(self, parties, action=None, timeout=None):
        self._gate = _Gate(parties)
        self._action = action
        self._timeout = timeout

    @types.coroutine
    def wait(self, timeout=None):
        if timeout is None:
            timeout = self._timeout
        index, last = self._gate.arrive()  # BrokenBarrierError if broken
        if last:
            try:
                if self._action:
                    self._action()
            except BaseException:
                self._gate.abort()
                raise
            self._gate.pass_()
            return index
        yield self._gate.wait(_timeout(timeout, "Barrier.wait"))
        return index

    def reset(self):
        """Waiters now raise BrokenBarrierError; the barrier is usable again."""
        self._gate.reset()

    def abort(self):
        self._gate.abort()

    @property
    def parties(self):
        return self._gate.parties()

    @property
    def n_waiting(self):
        return self._gate.waiting()

    @property
    def broken(self):
        return self._gate.broken()


class Timer:
    """threading.Timer for tasklets: function(*args, **kwargs) runs in its own
    tasklet after interval seconds, unless cancel() came first. function may
    be a generator function or an async def."""

    def __init__(self, interval, function, args=None, kwargs=None):
        if interval < 0:
            raise ValueError("corelet.Timer: interval must be >= 0")
        self.interval = interval
        self.function = function
        self.args = tuple(args) if args is not None else ()
        self.kwargs = dict(kwargs) if kwargs is not None else {}
        self.finished = object.__new__(Event)  # in-process whatever the context: the timer is a tasklet
        Event.__init__(self.finished)
        self._task = None
        self._calling = False

    def start(self):
        if self._task is not None:
            raise RuntimeError("timers can only be started once")
        self._task = spawn(self._run, name=f"Timer({getattr(self.function, '__qualname__', 'function')})")

    def _run(self):
        # As threading.Timer: wait on `finished` for the interval; cancel() sets it.
        if (yield self.finished.wait(self.interval)):
            return None
        self._calling = True
        try:
            result = self.function(*self.args, **self.kwargs)
            if isinstance(result, (types.GeneratorType, types.CoroutineType)):
                result = yield result
            return result
        finally:
            self.finished.set()

    def cancel(self):
        """Stops the timer if its function has not started; no effect after."""
        if not self._calling:
            self.finished.set()

    def join(self, timeout=None):
        """Operation: waits for the timer's tasklet to end."""
        if self._task is None:
            raise RuntimeError("cannot join a timer before it is started")
        return self._task.join(timeout)

    def is_alive(self):
        return self._task is not None and not self._task.done()
