"""The cross-process queues (Queue, JoinableQueue) and Pipe, as
multiprocessing's: a SharedQueue is the Python face of <corelet/ipc/queue.hpp>
(an ipc::Queue of byte messages in anonymous shared memory), and each
direction of a Pipe is one.

Queues reach the processes forked after they are made (corelet.Process
children and the workers of corelet.run(main, workers=N)): share them by
inheritance, as with multiprocessing; pickling one raises RuntimeError. A
Pipe's end also pickles, as a multiprocessing Connection does (see
Connection.__reduce__).
corelet.Queue() and corelet.JoinableQueue() give them when made in plain
code (see corelet._common). Their waiting methods block the calling thread
in plain code (the GIL released); inside a tasklet they are operations
(``item = yield q.get()``) that park the tasklet alone until the other
side's change wakes it: no polling, no CPU while it waits.
"""

import os
import types
import weakref
from multiprocessing.reduction import DupFd

from ._common import _in_process_only, _in_tasklet, _reduce_for_child, _register_cores
from ._common import _shareable as _shareable_now
from ._corelet import ShmQueue, _shmq_get, _shmq_put, _shmq_try_get, instancemethod
from ._queues import Empty, JoinableQueue, Queue

__all__ = ["SharedQueue", "SharedJoinableQueue", "SimpleQueue", "Connection", "Pipe"]

_DEFAULT_BUFFER = 1 << 22  # bytes of a Queue's ring (only touched pages use memory)


class SharedQueue(Queue, plain_code_of=Queue):
    """multiprocessing.Queue: put/get with block and timeout,
    put_nowait/get_nowait, qsize/empty/full, task_done/join (as
    JoinableQueue's), close.
    buffer: bytes of its ring in shared memory; one pickled item may not be
    larger (ValueError at put).

    put and get are C functions: str and bytes cross as they are, the rest as
    pickle protocol 5 (cloudpickle where pickle fails). In plain code they
    wait with the GIL released; in a tasklet put is done at once when there
    is room and get gives a complete operation when an item is there, and
    otherwise both give operations that wait (see the module docstring)."""

    def __init__(self, maxsize=0, *, buffer=_DEFAULT_BUFFER, _shareable=False):
        if maxsize < 0:
            maxsize = 0
        self._from_child_state(ShmQueue(buffer, maxsize, _shareable or _shareable_now()))

    __reduce__ = _reduce_for_child

    def _child_state(self):
        return self._q

    def _from_child_state(self, q):
        self.maxsize = q.maxsize
        self._q = q
        self._qp = q._address()  # for the C functions below; lives as long as _q

    @classmethod
    def _over(cls, shm_queue):
        """A SharedQueue over an existing ShmQueue (one attached from another
        process's descriptor, as a manager's channel is)."""
        self = cls.__new__(cls)  # the in-process base's __new__ gives this subclass's instance
        self._from_child_state(shm_queue)
        return self

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
        """This process puts and gets no more through this Queue object:
        afterwards put and get raise ValueError, as multiprocessing's. The
        other processes, and the items already in it, are not affected."""
        if "put" not in self.__dict__:
            # Instance attributes shadow the C methods: the open queue's calls cost nothing more.
            self.put = self.get = self.put_nowait = self.get_nowait = self._closed_call

    def _closed_call(self, *args, **kwargs):
        raise ValueError(f"Queue {self!r} is closed")

    def join_thread(self):
        """multiprocessing's; corelet's queues have no feeder thread."""

    def cancel_join_thread(self):
        """multiprocessing's; corelet's queues have no feeder thread."""

    # Queue's storage hooks and hand-off helpers: the items are in shared memory.
    _init = _qsize = _put = _get = _in_process_only

    def __repr__(self):
        name = type(self).__name__.removeprefix("Shared")
        return f"<corelet.{name} (shared) size={self.qsize()} maxsize={self.maxsize}>"


class SharedJoinableQueue(SharedQueue, JoinableQueue, plain_code_of=JoinableQueue):
    """multiprocessing.JoinableQueue: a SharedQueue (every one has
    task_done() and join()) that is a corelet.JoinableQueue."""


class SimpleQueue:
    """multiprocessing.SimpleQueue: put, get, empty, close, without bounds
    or timeouts. A SharedQueue underneath: in a tasklet, get gives an
    operation. close() ends this process's use of it (later calls raise
    OSError, as on a closed handle); the other processes go on."""

    def __init__(self, *, buffer=_DEFAULT_BUFFER):
        self._from_child_state(SharedQueue(buffer=buffer))

    __reduce__ = _reduce_for_child

    def _child_state(self):
        return self._queue

    def _from_child_state(self, queue):
        self._queue = queue
        self._closed = False

    def _check(self):
        if self._closed:
            raise OSError("corelet: this SimpleQueue was closed in this process")
        return self._queue

    def put(self, obj):
        return self._check().put(obj)

    def get(self):
        return self._check().get()

    def empty(self):
        return self._check().empty()

    def close(self):
        self._closed = True

    def __repr__(self):
        return f"<corelet.SimpleQueue (shared){' closed' if self._closed else ''}>"


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

    def __reduce__(self):
        """An end pickles to any process that shares this one's authkey (a
        child, a Pool worker, a manager...), through a Pipe or a Queue, as
        multiprocessing's Connection: its queues' memfds go to the receiver
        through multiprocessing's resource sharer (a Unix socket, the authkey
        challenge first). The pickle counts as a holder of the sending side
        from now on, as a duplicated descriptor would: the peer sees EOFError
        only after the receiver closes its copy too."""
        if self._closed:
            raise OSError("handle is closed")
        if self._tx is not None:
            self._tx._q.add_writer()
        return _rebuild_end, (_share(self._rx), _share(self._tx))

    def fileno(self):
        raise OSError(
            "a corelet.Pipe end has no file descriptor (it lives in shared memory): wait on it with "
            "corelet.connection.wait(), send descriptors with corelet.connection.send_handle(), or use "
            "multiprocessing.Pipe() where a descriptor is needed"
        )

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
        """Sends buf[offset:offset + size] (bytes of any buffer) as one message;
        ValueError for an offset or size outside it, as multiprocessing's."""
        q = self._check("w")
        view = memoryview(buf).cast("B")
        n = len(view)
        if offset < 0:
            raise ValueError("offset is negative")
        if n < offset:
            raise ValueError("buffer length < offset")
        if size is None:
            size = n - offset
        elif size < 0:
            raise ValueError("size is negative")
        elif offset + size > n:
            raise ValueError("buffer length < offset + size")
        return q.put(bytes(view[offset : offset + size]))

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


def _share(q):
    return None if q is None else DupFd(q._q.fileno())


def _rebuild_end(rx, tx):
    def attach(dup):
        if dup is None:
            return None
        fd = dup.detach()
        try:
            return SharedQueue._over(ShmQueue.attach(fd))
        finally:
            os.close(fd)

    return Connection(attach(rx), attach(tx))


def Pipe(duplex=True, *, buffer=_DEFAULT_BUFFER):  # noqa: N802 - multiprocessing's name
    """A pair of Connections, as multiprocessing.Pipe: duplex by default; with
    duplex=False the first can only recv and the second only send. Each
    direction is a queue in a memfd, so that an end can be sent to a process
    that did not inherit it."""
    a_to_b = SharedQueue(buffer=buffer, _shareable=True)
    if not duplex:
        return Connection(a_to_b, None), Connection(None, a_to_b)
    b_to_a = SharedQueue(buffer=buffer, _shareable=True)
    return Connection(b_to_a, a_to_b), Connection(a_to_b, b_to_a)


_register_cores({ShmQueue: "Queue"})
