"""corelet.connection: multiprocessing.connection's API.

    from corelet.connection import Listener, Client, wait

    with Listener(("127.0.0.1", 6000), authkey=b"secret") as listener:
        with listener.accept() as conn:
            conn.send([2.25, None, "junk", float])

- ``Listener``, ``Client``, ``Connection`` (the socket and pipe ones),
  ``deliver_challenge``, ``answer_challenge`` and ``families`` are
  multiprocessing.connection's own: the same wire, the same HMAC challenge
  (made before anything is unpickled; a wrong key raises
  ``multiprocessing.AuthenticationError``), so a corelet program and a
  multiprocessing one talk to each other. Their calls block the calling
  thread, in a tasklet too (corelet.socket is the I/O that parks a tasklet).
- ``Pipe`` is corelet's, the same as ``corelet.Pipe``: its ends live in
  shared memory and have no file descriptor; they pickle (through a Pipe, a
  Queue, to a Pool worker), as multiprocessing's Connections do.
- ``send_handle(conn, handle, destination_pid)`` and ``recv_handle(conn)``
  pass a file descriptor, as multiprocessing.reduction's: over a
  Listener/Client or multiprocessing Connection (SCM_RIGHTS on its socket),
  and over a corelet Pipe end (the descriptor goes through
  multiprocessing's resource sharer; the message saying so goes through
  the Pipe, in order with the other messages). recv_handle gives a new
  descriptor, the caller's to close.
- ``wait(object_list, timeout=None)`` waits until one of the objects is
  ready and gives the list of those that are: multiprocessing's
  Connections, sockets, file descriptors and Process sentinels, and also
  corelet's Pipe ends (readable, or their peer closed). With corelet's Pipe
  ends among them, it waits on a corelet scheduler — a futex wait per end
  and a readiness wait per descriptor, none of them polling. In a tasklet
  it is an operation (``ready = yield wait([...])``).
"""

import multiprocessing.connection as _mpc
import multiprocessing.reduction as _reduction
import select
import types

from ._common import _in_tasklet
from ._corelet import _run, spawn, wait_readable
from ._shared_queue import Connection as _PipeEnd
from ._shared_queue import Pipe
from ._sync import Event

Listener = _mpc.Listener
Client = _mpc.Client
Connection = _mpc.Connection
deliver_challenge = _mpc.deliver_challenge
answer_challenge = _mpc.answer_challenge
families = _mpc.families

__all__ = ["Client", "Listener", "Pipe", "recv_handle", "send_handle", "wait"]


class _SentHandle:
    """What send_handle puts on a corelet Pipe: the descriptor, as
    multiprocessing's DupFd (the receiver fetches it from this process's
    resource sharer)."""

    def __init__(self, handle):
        self.dup = _reduction.DupFd(handle)


def send_handle(conn, handle, destination_pid):
    """Sends the file descriptor `handle` to the process at the other end of
    conn (destination_pid is multiprocessing's argument, unused on Linux);
    the caller keeps its own descriptor."""
    if not isinstance(conn, _PipeEnd):
        return _reduction.send_handle(conn, handle, destination_pid)
    return conn.send(_SentHandle(handle))


def _handle_of(message):
    if not isinstance(message, _SentHandle):
        raise OSError(f"recv_handle: the message received was a {type(message).__name__}, not a send_handle()")
    return message.dup.detach()


@types.coroutine
def _recv_handle_op(op):
    return _handle_of((yield op))


def recv_handle(conn):
    """The file descriptor that the other end sent with send_handle (a new
    descriptor of this process). On a corelet Pipe end in a tasklet, an
    operation."""
    if not isinstance(conn, _PipeEnd):
        return _reduction.recv_handle(conn)
    message = conn.recv()
    if _in_tasklet():
        return _recv_handle_op(message)
    return _handle_of(message)


def _fd(obj):
    return obj if isinstance(obj, int) else obj.fileno()


def _ready_now(objects):
    """The objects ready at this moment, in the order given."""
    ends = [o for o in objects if isinstance(o, _PipeEnd)]
    others = [o for o in objects if not isinstance(o, _PipeEnd)]
    ready = set()
    for end in ends:
        if end._check("r")._q.poll(0):
            ready.add(id(end))
    if others:
        readable, _, _ = select.select([_fd(o) for o in others], [], [], 0)
        readable = set(readable)
        ready.update(id(o) for o in others if _fd(o) in readable)
    return [o for o in objects if id(o) in ready]


@types.coroutine
def _wait_op(objects, timeout):
    ready = _ready_now(objects)
    if ready or timeout is not None and timeout <= 0:
        return ready
    fired = Event()

    def watch(obj):
        try:
            if isinstance(obj, _PipeEnd):
                ok = yield obj._check("r")._q.poll_op(timeout)
            else:
                ok = yield wait_readable(_fd(obj), timeout)
        except TimeoutError:
            return
        if ok is not False:
            fired.set()

    watchers = [spawn(watch, o, name="corelet.connection.wait") for o in objects]
    try:
        yield fired.wait(timeout)
    finally:
        for w in watchers:
            w.cancel()
    return _ready_now(objects)


def wait(object_list, timeout=None):
    """Waits until one of the objects in object_list is ready (None: no time
    limit, else seconds) and returns those that are; [] after the timeout."""
    objects = list(object_list)
    if _in_tasklet():
        return _wait_op(objects, timeout)
    if not any(isinstance(o, _PipeEnd) for o in objects):
        return _mpc.wait(objects, timeout)
    return _run(lambda: (yield _wait_op(objects, timeout)))
