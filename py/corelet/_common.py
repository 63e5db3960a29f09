"""What the primitive modules share: the in-process/cross-process switch of
their constructors, threading's timeout rule, ready operations, ``async
with`` and the refusal to pickle. A leaf: of the package it imports only
the extension, so every other module may import it.

One name, two kinds of object. ``corelet.Lock()`` (and Queue, JoinableQueue,
RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier) made in plain
code is the cross-process primitive, as multiprocessing's; made inside a
tasklet it is the in-process one (faster: no pickling, exact hand-offs).
Each cross-process class is a subclass of the in-process class of its name
(``class SharedLock(Lock, plain_code_of=Lock)``), so
``isinstance(corelet.Lock(), corelet.Lock)`` holds wherever the lock was
made, and code that checks types or subclasses keeps working. The
in-process class's ``__new__`` (from _PlainCodeShared below) returns an
uninitialised instance of the cross-process subclass when called in plain
code; ``type.__call__`` then runs that subclass's ``__init__`` once, as the
result is an instance of the class called. A subclass of the in-process
class (LifoQueue, or a user's ``class MyQueue(corelet.Queue)``) is not
switched: it is in-process wherever it is made.

Why this and not a factory function or a common abstract base: the public
names must stay classes (subclassed, used in isinstance), and the in-process
class must stay the implementation that a user's subclass extends (queue's
``_put``/``_get`` hooks). The cross-process class therefore overrides every
method of the in-process one; those with no cross-process meaning (the
in-process storage hooks and helpers) are _in_process_only, which raises,
so no in-process method runs on shared state. The registration goes from
the subclass to its base (``__init_subclass__``), so the in-process modules
import nothing of the cross-process ones.
"""

import copyreg
import os
import threading
from multiprocessing import context as _mpcontext
from multiprocessing.reduction import DupFd

from ._corelet import UsageError, current_id, ready

# Operations complete at once. One instance each serves every caller: such an
# operation finishes before its tasklet gives up the CPU.
_TRUE = ready(True)
_FALSE = ready(False)
_NONE = ready(None)


def _in_tasklet():
    return current_id() != 0


def _timeout(timeout, call):
    """threading's timeouts: None or -1 wait forever; other negatives are errors."""
    if timeout is None or timeout == -1:
        return None
    if timeout < 0:
        raise ValueError(f"corelet: {call}: timeout value must be a non-negative number")
    return timeout


def _public_name(obj):
    return type(obj).__name__.removeprefix("Shared")


def _not_picklable(self, *_):
    """What pickling a cross-process primitive does outside the start of a
    child (see _reduce_for_child)."""
    raise RuntimeError(
        f"corelet.{_public_name(self)} objects are shared between processes by "
        "inheritance: make them before starting the processes (as with multiprocessing)"
    )


# ---- primitives for children started by exec ('spawn', 'forkserver') ----
#
# A child forked from its parent has the parent's anonymous shared memory; one
# started by 'spawn' or 'forkserver' has none of it. A primitive made for such
# a child is therefore in a memfd (one descriptor per primitive), which the
# pickle of the child's Process carries, as multiprocessing's do: while a
# Process is being started, multiprocessing's "spawning popen" is corelet's
# (_spawning.py), and reduction.DupFd hands the descriptor to the child.
# Outside a start, pickling one raises RuntimeError, as multiprocessing's.
# Which primitives are made so: those made through a 'spawn' or 'forkserver'
# context (ctx.Lock()), and all of them once either is the start method.

_spawning_method = [False]  # set by _start.set_start_method
_making = threading.local()  # .depth: inside a spawn context's factory


def _shareable():
    """Whether a primitive made now must be able to reach a child started by exec."""
    return _spawning_method[0] or getattr(_making, "depth", 0) > 0


def _making_shareable(factory):
    """factory, calling which makes primitives a spawned child can attach."""

    def make(*args, **kwargs):
        _making.depth = getattr(_making, "depth", 0) + 1
        try:
            return factory(*args, **kwargs)
        finally:
            _making.depth -= 1

    make.__name__ = make.__qualname__ = getattr(factory, "__name__", "factory")
    make.__doc__ = getattr(factory, "__doc__", None)
    return make


def _reduce_for_child(self):
    """__reduce__ of a cross-process primitive: while a Process is being
    started by 'spawn' or 'forkserver', what rebuilds it in the child
    (self._child_state() there; its cores' memfds go by reduction.DupFd);
    otherwise RuntimeError."""
    if _mpcontext.get_spawning_popen() is None:
        _not_picklable(self)
    return _rebuild_in_child, (type(self), self._child_state())


def _rebuild_in_child(cls, state):
    obj = cls.__new__(cls)
    obj._from_child_state(state)
    return obj


def _core_for_child(core, what):
    """The memfd of a primitive's core, for the child being started."""
    fd = core.fileno()
    if fd < 0:
        raise RuntimeError(
            f"corelet.{what} was made for the 'fork' start method and cannot reach a child started by "
            f"'spawn' or 'forkserver': make it through that context (ctx = corelet.get_context('spawn'); "
            f"ctx.{what}(...)) or after corelet.set_start_method('spawn')"
        )
    return _attach_core, (type(core), DupFd(fd))


def _attach_core(core_type, dup):
    fd = dup.detach()
    try:
        return core_type.attach(fd)
    finally:
        os.close(fd)


def _register_cores(names):
    """Makes each core type (ShmLock, ...) pickle to the child being started;
    names: the core type -> the name its users know."""
    for core_type, what in names.items():
        copyreg.pickle(core_type, lambda core, what=what: _core_for_child(core, what))


def _in_process_only(self, *_args, **_kwargs):
    """What a cross-process primitive has in place of an in-process method
    that has no meaning for it (an in-process storage hook or helper)."""
    raise UsageError(
        f"corelet: {type(self).__name__} is shared between processes; this method of the in-process "
        f"{type(self).__name__.removeprefix('Shared')} does not apply to it"
    )


class _PlainCodeShared:
    """Base of an in-process primitive whose own name, called in plain code,
    makes its cross-process subclass (see the module docstring).

    ``class SharedX(X, plain_code_of=X)`` declares SharedX as what X() gives
    outside any tasklet. Only X itself switches: its subclasses (other than
    SharedX) are made as they are called."""

    __slots__ = ()

    def __init_subclass__(cls, plain_code_of=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if plain_code_of is not None:
            if not issubclass(cls, plain_code_of) or "_plain_code_class" in plain_code_of.__dict__:
                raise TypeError(f"corelet: {cls.__name__} cannot be what {plain_code_of.__name__}() makes")
            plain_code_of._plain_code_class = cls

    def __new__(cls, *_args, **_kwargs):
        # super(): the next base's __new__ (object's, or a C base's such as
        # the queues' _QueueCore), for the shared subclass too.
        shared = cls.__dict__.get("_plain_code_class")
        if shared is not None and current_id() == 0:
            return super().__new__(shared)
        return super().__new__(cls)


class _WithItsLock:
    """``with`` and ``async with`` of a Condition: those of its lock
    (``self._lock``), for the in-process and the shared Condition alike."""

    __slots__ = ()

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    async def __aenter__(self):
        await self._lock.acquire()

    async def __aexit__(self, *exc):
        self._lock.release()
        return False


class _AsyncWith:
    """``async with x:`` for primitives whose acquire() returns an operation."""

    __slots__ = ()

    async def __aenter__(self):
        await self.acquire()
        return None

    async def __aexit__(self, *exc):
        self.release()
        return False
