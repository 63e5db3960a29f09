"""Primitives shared between processes, as multiprocessing's: Queue,
JoinableQueue, Pipe, Lock, RLock, Semaphore, BoundedSemaphore, Event,
Condition, Value and Array, and Process.

They live in anonymous shared memory (corelet._corelet.SharedMemory), so they
reach the processes forked after they are made: corelet.Process children and
the workers of corelet.run(main, workers=N). As with multiprocessing, share
them by inheritance (make them first, then start the processes); pickling one
to send it raises RuntimeError.

corelet.Queue(), corelet.Lock() and the others give these when they are made
in plain code (outside any tasklet), and the in-process versions (faster: no
pickling, exact wake-ups) when made inside a tasklet.

Each is the Python face of one of corelet's C++ cross-process primitives
(<corelet/ipc/queue.hpp>, <corelet/ipc/sync.hpp>), so C++ processes can share
them too. Their waiting methods block the calling thread in plain code (the
GIL released), as multiprocessing's do. Inside a tasklet they are operations
(``item = yield q.get()``) that park the tasklet alone until the other side's
change wakes it: no polling, no CPU while it waits.
"""

import ctypes
import os
import pickle
import signal
import sys
import time
import traceback
import types
import weakref

from ._corelet import ShmBarrier, ShmCondition, ShmEvent, ShmLock, ShmQueue, ShmRLock, ShmSemaphore, SharedMemory
from ._corelet import UsageError, current_id, ready, wait_readable
from ._corelet import _lock_acquire, _lock_enter, _lock_release, _shmq_get, _shmq_put, _shmq_try_get
from ._corelet import instancemethod
from ._queues import Empty, Full
from ._sync import _AsyncWith
from ._wire import dumps as _wire_dumps, loads as _wire_loads

__all__ = [
    "SharedQueue",
    "SharedLock",
    "SharedRLock",
    "SharedSemaphore",
    "SharedBoundedSemaphore",
    "SharedEvent",
    "SharedCondition",
    "Pipe",
    "Connection",
    "Value",
    "Array",
    "Process",
    "active_children",
]

_DEFAULT_BUFFER = 1 << 22  # bytes of a Queue's ring (only touched pages use memory)
_WIRE = b"CLW1"


def _in_tasklet():
    return current_id() != 0


def _dumps(obj):
    """pickle 5 in band (fast for small objects); corelet._wire for what
    pickle cannot do alone (lambdas through cloudpickle)."""
    try:
        return pickle.dumps(obj, 5)
    except Exception:  # noqa: BLE001
        return _wire_dumps(obj)


def _loads(data):
    if data[:4] == _WIRE:
        return _wire_loads(data)
    return pickle.loads(data)


def _not_picklable(self, *_):
    raise RuntimeError(
        f"corelet.{type(self).__name__.removeprefix('Shared')} objects are shared between processes by "
        "inheritance: make them before starting the processes (as with multiprocessing)"
    )


def _timeout(timeout):
    if timeout is None or timeout == -1:
        return None
    if timeout < 0:
        raise ValueError("timeout value must be a non-negative number")
    return timeout


# ---- Queue --------------------------------------------------------------------------


class SharedQueue:
    """multiprocessing.Queue (and JoinableQueue): put/get with block and
    timeout, put_nowait/get_nowait, qsize/empty/full, task_done/join, close.
    buffer: bytes of its ring in shared memory; one pickled item may not be
    larger (ValueError at put).

    put and get are C functions: str and bytes cross as they are, the rest as
    pickle protocol 5 (cloudpickle where pickle fails). In plain code they
    wait with the GIL released; in a tasklet put is done at once when there
    is room and get gives a complete operation when an item is there, and
    otherwise both give operations that wait (see the module docstring)."""

    def __init__(self, maxsize=0, *, buffer=_DEFAULT_BUFFER):
        if maxsize < 0:
            maxsize = 0
        self.maxsize = maxsize
        self._q = ShmQueue(buffer, maxsize)
        self._qp = self._q._address()  # for the C functions below; lives as long as _q

    __reduce__ = _not_picklable

    put = instancemethod(_shmq_put)
    get = instancemethod(_shmq_get)

    def put_nowait(self, obj):
        """Puts obj now, or raises queue.Full."""
        if _in_tasklet():
            self.put(obj, False)  # done at once, or Full
            return None
        return self.put(obj, False)

    def get_nowait(self):
        """The next item now, or queue.Empty."""
        ok, value = _shmq_try_get(self)
        if not ok:
            raise Empty
        return value

    def qsize(self):
        return self._q.qsize()

    def empty(self):
        return self._q.qsize() == 0

    def full(self):
        return self._q.full()

    def task_done(self):
        self._q.task_done()

    def join(self):
        """Waits until every item put was marked task_done() (an operation in
        a tasklet)."""
        if _in_tasklet():
            return self._q.join_op()
        self._q.join(None)

    def close(self):
        """No more puts; getters see EOFError once it is empty."""
        self._q.close()

    def join_thread(self):
        """multiprocessing's; corelet's queues have no feeder thread."""

    def cancel_join_thread(self):
        """multiprocessing's; corelet's queues have no feeder thread."""

    def __repr__(self):
        return f"<corelet.Queue (shared) size={self.qsize()} maxsize={self.maxsize}>"


# ---- Pipe ---------------------------------------------------------------------------


class Connection:
    """One end of a Pipe: send/recv objects, send_bytes/recv_bytes buffers,
    poll, close. recv raises EOFError once the other end is closed and
    everything it sent was received. In a tasklet, recv and poll are
    operations, and send is done at once when there is room."""

    def __init__(self, rx, tx):
        self._rx = rx  # SharedQueue or None
        self._tx = tx
        self._closed = False
        _connections.add(self)

    __reduce__ = _not_picklable

    @property
    def closed(self):
        return self._closed

    @property
    def readable(self):
        return self._rx is not None

    @property
    def writable(self):
        return self._tx is not None

    def _check(self, need):
        if self._closed:
            raise OSError("handle is closed")
        q = self._rx if need == "r" else self._tx
        if q is None:
            raise OSError("connection is write-only" if need == "r" else "connection is read-only")
        return q

    def send(self, obj):
        return self._check("w").put(obj)

    def recv(self):
        return self._check("r").get()

    def send_bytes(self, buf, offset=0, size=None):
        view = memoryview(buf).cast("B")
        view = view[offset:] if size is None else view[offset : offset + size]
        return self._check("w").put(bytes(view))

    def recv_bytes(self, maxlength=None):
        data = self._check("r").get()
        if _in_tasklet():
            return self._checked_op(data, maxlength)
        return self._checked(data, maxlength)

    @staticmethod
    def _checked(data, maxlength):
        if not isinstance(data, (bytes, bytearray)):
            raise OSError("recv_bytes: the message was sent with send(), not send_bytes()")
        if maxlength is not None and len(data) > maxlength:
            raise OSError(f"message of {len(data)} bytes is longer than maxlength {maxlength}")
        return data

    @types.coroutine
    def _checked_op(self, op, maxlength):
        return self._checked((yield op), maxlength)

    def poll(self, timeout=0.0):
        """True if something can be received now (or within timeout seconds;
        None waits forever). An end whose peer closed polls True (recv then
        raises EOFError)."""
        q = self._check("r")._q
        if _in_tasklet():
            return q.poll_op(timeout)
        return q.poll(timeout)

    def close(self):
        """Closes this process's handle of this end. As with a pipe's file
        descriptors, the other end sees EOFError once every process that had
        this end open (it and those forked while it was open) has closed it,
        and everything sent was received."""
        if not self._closed:
            self._closed = True
            if self._tx is not None:
                self._tx._q.close_writer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if not getattr(self, "_closed", True):
            try:
                self.close()
            except Exception:  # noqa: BLE001 - at exit the queue may be gone
                pass


_connections = weakref.WeakSet()


def _before_fork():
    # The child gets a handle of every open sending end, as it would get the
    # fds of an os.pipe: count it before the fork, so that no close in the
    # parent can end the stream while the child still has it.
    for c in list(_connections):
        if not c._closed and c._tx is not None:
            c._tx._q.add_writer()


os.register_at_fork(before=_before_fork)


def _close_inherited():
    """A corelet.Process child ends: its handles close, as its fds would."""
    for c in list(_connections):
        c.close()


def Pipe(duplex=True, *, buffer=_DEFAULT_BUFFER):  # noqa: N802 - multiprocessing's name
    """A pair of Connections, as multiprocessing.Pipe: duplex by default; with
    duplex=False the first can only recv and the second only send."""
    a_to_b = SharedQueue(buffer=buffer)
    if not duplex:
        return Connection(a_to_b, None), Connection(None, a_to_b)
    b_to_a = SharedQueue(buffer=buffer)
    return Connection(b_to_a, a_to_b), Connection(a_to_b, b_to_a)


# ---- locks and friends ----------------------------------------------------------------


class SharedLock(_AsyncWith):
    """multiprocessing.Lock: acquire(block=True, timeout=None), release();
    any process may release it. In a tasklet acquire is an operation.
    acquire, release, __enter__ and __exit__ are C functions."""

    __slots__ = ("_core", "_lp", "__weakref__")

    def __init__(self):
        self._core = ShmLock()
        self._lp = self._core._address()  # for the C functions; lives as long as _core

    __reduce__ = _not_picklable

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


class SharedRLock(_AsyncWith):
    """multiprocessing.RLock: its holder (process and thread, or tasklet) may
    acquire it again; it is free after as many releases."""

    __slots__ = ("_core", "__weakref__")

    def __init__(self):
        self._core = ShmRLock()

    __reduce__ = _not_picklable

    def acquire(self, block=True, timeout=None):
        if _in_tasklet():
            if self._core.try_acquire():
                return _TRUE
            if not block:
                return _FALSE
            return self._core.acquire_op(_timeout(timeout))
        return self._core.acquire(block, _timeout(timeout))

    def release(self):
        try:
            self._core.release()
        except ValueError:
            raise AssertionError("attempt to release recursive lock not owned by thread") from None

    def __enter__(self):
        if _in_tasklet():
            if not self._core.try_acquire():
                raise UsageError("corelet: `with` on a held RLock cannot wait in a tasklet; use `async with`")
            return True
        return self._core.acquire(True, None)

    def __exit__(self, *exc):
        self.release()

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


class SharedSemaphore(_AsyncWith):
    """multiprocessing.Semaphore: an ipc::Semaphore in shared memory."""

    _bounded = False

    def __init__(self, value=1):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._core = ShmSemaphore(value, self._bounded)

    __reduce__ = _not_picklable

    def acquire(self, block=True, timeout=None):
        timeout = _timeout(timeout)
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


class SharedBoundedSemaphore(SharedSemaphore):
    """multiprocessing.BoundedSemaphore: a release past the initial value
    raises ValueError."""

    _bounded = True


class SharedEvent:
    """multiprocessing.Event: an ipc::Event in shared memory."""

    def __init__(self):
        self._core = ShmEvent()

    __reduce__ = _not_picklable

    def is_set(self):
        return self._core.is_set()

    def set(self):
        self._core.set()

    def clear(self):
        self._core.clear()

    def wait(self, timeout=None):
        timeout = _timeout(timeout)
        if _in_tasklet():
            return self._core.wait_op(timeout)
        return self._core.wait(timeout)


class SharedCondition:
    """multiprocessing.Condition over a shared lock (an RLock by default)."""

    def __init__(self, lock=None):
        self._lock = SharedRLock() if lock is None else lock
        self._core = ShmCondition()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    __reduce__ = _not_picklable

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    def wait(self, timeout=None):
        timeout = _timeout(timeout)
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


_TRUE = ready(True)
_FALSE = ready(False)
_NONE = ready(None)


# ---- Value and Array ----------------------------------------------------------------

_TYPECODES = {
    "c": ctypes.c_char, "u": ctypes.c_wchar, "b": ctypes.c_byte, "B": ctypes.c_ubyte,
    "h": ctypes.c_short, "H": ctypes.c_ushort, "i": ctypes.c_int, "I": ctypes.c_uint,
    "l": ctypes.c_long, "L": ctypes.c_ulong, "q": ctypes.c_longlong, "Q": ctypes.c_ulonglong,
    "f": ctypes.c_float, "d": ctypes.c_double,
}


def _ctype(typecode_or_type):
    if isinstance(typecode_or_type, str):
        try:
            return _TYPECODES[typecode_or_type]
        except KeyError:
            raise ValueError(f"corelet: unknown typecode {typecode_or_type!r}") from None
    return typecode_or_type


def _raw(ctype):
    mem = SharedMemory(max(ctypes.sizeof(ctype), 8))
    obj = ctype.from_buffer(mem)
    obj._corelet_memory = mem  # the mapping lives as long as the object
    return obj


def _lock_for(lock):
    if lock is True:
        return SharedRLock()
    if lock is False:
        return None
    if not hasattr(lock, "acquire"):
        raise AttributeError(f"{lock!r} has no method 'acquire'")
    return lock


class Synchronized:
    """A Value with its lock: .value reads and writes under the lock."""

    def __init__(self, obj, lock):
        self._obj = obj
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release

    __reduce__ = _not_picklable

    def get_lock(self):
        return self._lock

    def get_obj(self):
        return self._obj

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    @property
    def value(self):
        with self._lock:
            return self._obj.value

    @value.setter
    def value(self, v):
        with self._lock:
            self._obj.value = v

    def __repr__(self):
        return f"<corelet.Value {type(self._obj).__name__}({self._obj.value!r})>"


class SynchronizedArray(Synchronized):
    """An Array with its lock: items and slices read and write under it."""

    def __len__(self):
        return len(self._obj)

    def __getitem__(self, i):
        with self._lock:
            return self._obj[i]

    def __setitem__(self, i, v):
        with self._lock:
            self._obj[i] = v

    @property
    def value(self):  # 'c' arrays: the bytes up to the first NUL, as multiprocessing's
        with self._lock:
            return self._obj.value

    @value.setter
    def value(self, v):
        with self._lock:
            self._obj.value = v

    @property
    def raw(self):
        with self._lock:
            return self._obj.raw

    def __repr__(self):
        return f"<corelet.Array {type(self._obj).__name__} of {len(self)}>"


def Value(typecode_or_type, *args, lock=True):  # noqa: N802 - multiprocessing's name
    """A ctypes object in shared memory, as multiprocessing.Value: with a
    lock (lock=True: a new RLock; a lock object: that one) its .value is read
    and written under it; lock=False gives the raw ctypes object."""
    ctype = _ctype(typecode_or_type)
    obj = _raw(ctype)
    if args:
        if len(args) == 1 and not issubclass(ctype, ctypes.Structure):
            obj.value = args[0]
        else:
            ctypes.memmove(ctypes.addressof(obj), ctypes.addressof(ctype(*args)), ctypes.sizeof(ctype))
    lk = _lock_for(lock)
    return obj if lk is None else Synchronized(obj, lk)


def Array(typecode_or_type, size_or_initializer, *, lock=True):  # noqa: N802
    """A ctypes array in shared memory, as multiprocessing.Array."""
    ctype = _ctype(typecode_or_type)
    if isinstance(size_or_initializer, int):
        obj = _raw(ctype * size_or_initializer)
    else:
        init = list(size_or_initializer) if not isinstance(size_or_initializer, (bytes, str)) else size_or_initializer
        obj = _raw(ctype * len(init))
        obj[:] = init
    lk = _lock_for(lock)
    return obj if lk is None else SynchronizedArray(obj, lk)


# ---- Process ------------------------------------------------------------------------

_children = weakref.WeakSet()


class Process:
    """multiprocessing.Process (fork): start, run, join, is_alive, exitcode,
    terminate, kill, pid, name, daemon. target may also be a generator function
    or an async def: the child then runs it with corelet.run."""

    _counter = 0

    def __init__(self, group=None, target=None, name=None, args=(), kwargs=None, *, daemon=None):
        if group is not None:
            raise ValueError("group argument must be None for now")
        Process._counter += 1
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})
        self.name = name or f"Process-{Process._counter}"
        self.daemon = bool(daemon)
        self._pid = None
        self._pidfd = None
        self._exitcode = None

    def run(self):
        if self._target is not None:
            return self._target(*self._args, **self._kwargs)
        return None

    def start(self):
        if self._pid is not None:
            raise AssertionError("cannot start a process twice")
        if _in_tasklet():
            raise UsageError(
                "corelet.Process.start inside corelet.run: start processes from plain code, or use "
                "spawn_on / Pool inside corelet.run(workers=N)"
            )
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child
            code = 0
            try:
                _children.clear()
                result = self.run()
                if isinstance(result, (types.GeneratorType, types.CoroutineType)):
                    from . import run

                    run(lambda: (yield result))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if not isinstance(e.code, int) and e.code is not None:
                    print(e.code, file=sys.stderr)
            except BaseException:  # noqa: BLE001 - as multiprocessing: print and exit 1
                print(f"Process {self.name}:", file=sys.stderr)
                traceback.print_exc()
                code = 1
            finally:
                try:
                    _close_inherited()
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        self._pid = pid
        self._pidfd = os.pidfd_open(pid)
        _children.add(self)

    def _reap(self, block):
        if self._exitcode is not None or self._pid is None:
            return
        try:
            pid, status = os.waitpid(self._pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        self._exitcode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        os.close(self._pidfd)
        self._pidfd = None

    def join(self, timeout=None):
        """Waits for the process to end (timeout seconds at most). In a tasklet,
        an operation."""
        if self._pid is None:
            raise AssertionError("can only join a started process")
        if _in_tasklet():
            return self._join_op(timeout)
        if self._exitcode is None:
            import select

            if select.select([self._pidfd], [], [], timeout)[0]:
                self._reap(True)

    @types.coroutine
    def _join_op(self, timeout):
        if self._exitcode is None:
            try:
                yield wait_readable(self._pidfd, timeout)
            except TimeoutError:
                return None
            self._reap(True)
        return None

    def is_alive(self):
        if self._pid is None:
            return False
        self._reap(False)
        return self._exitcode is None

    @property
    def exitcode(self):
        if self._pid is not None:
            self._reap(False)
        return self._exitcode

    @property
    def pid(self):
        return self._pid

    ident = pid

    @property
    def sentinel(self):
        return self._pidfd

    def terminate(self):
        if self._pid is not None and self._exitcode is None:
            os.kill(self._pid, signal.SIGTERM)

    def kill(self):
        if self._pid is not None and self._exitcode is None:
            os.kill(self._pid, signal.SIGKILL)

    def __repr__(self):
        state = "initial" if self._pid is None else ("started" if self.exitcode is None else f"stopped[{self.exitcode}]")
        return f"<corelet.Process name={self.name!r} pid={self._pid} {state}{' daemon' if self.daemon else ''}>"


def active_children():
    return [p for p in list(_children) if p.is_alive()]


def _at_exit():
    for p in list(_children):
        if p.daemon and p.is_alive():
            p.terminate()
    for p in list(_children):
        if p._pid is not None and p._exitcode is None and p._pid != os.getpid():
            p.join()


import atexit  # noqa: E402

atexit.register(_at_exit)


# ---- Barrier ------------------------------------------------------------------------

class SharedBarrier:
    """multiprocessing.Barrier: parties processes (or threads, or tasklets)
    wait until all have come; the last to come runs the action first. An
    ipc::Barrier in shared memory. In a tasklet wait is an operation."""

    def __init__(self, parties, action=None, timeout=None):
        self._core = ShmBarrier(parties)  # ValueError unless parties >= 1
        self._action = action
        self._timeout = timeout

    __reduce__ = _not_picklable

    def wait(self, timeout=None):
        if timeout is None:
            timeout = self._timeout
        timeout = _timeout(timeout)
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


import threading as _threading  # noqa: E402

BrokenBarrierError = _threading.BrokenBarrierError
__all__.append("SharedBarrier")
