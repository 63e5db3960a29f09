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
  shared memory and have no file descriptor.
- ``wait(object_list, timeout=None)`` waits until one of the objects is
  ready and gives the list of those that are: multiprocessing's
  Connections, sockets, file descriptors and Process sentinels, and also
  corelet's Pipe ends (readable, or their peer closed). With corelet's Pipe
  ends among them, it waits on a corelet scheduler — a futex wait per end
  and a readiness wait per descriptor, none of them polling. In a tasklet
  it is an operation (``ready = yield wait([...])``).
"""

import multiprocessing.connection as _mpc
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

__all__ = ["Client", "Listener", "Pipe", "wait"]


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
