"""corelet.managers: multiprocessing.managers with its server on corelet's
scheduler.

    import corelet

    with corelet.Manager() as m:            # a started SyncManager
        d, q = m.dict(), m.Queue()
        p = corelet.Process(target=work, args=(d, q))
        p.start(); print(q.get()); p.join()

A manager's server is a process that holds the shared objects; proxies in
any process call their methods over a connection. Here the server is one
corelet scheduler with a tasklet per client connection (multiprocessing's
has a thread per connection):

- a blocking method of one of corelet's own objects (``Queue.get``,
  ``Lock.acquire``, ``Event.wait``, ``Condition.wait``, ``Barrier.wait``)
  parks only the tasklet serving that connection; the server goes on serving
  everybody else;
- the methods of dict, list, Namespace, Value and Array run on the
  scheduler, one at a time (no lock needed);
- every other object's methods (types you register, and the objects they
  give back) run off the scheduler on a helper thread (``run_blocking``),
  so a method that blocks in foreign code stalls only its own caller, as
  with multiprocessing's thread per connection.

The wire is multiprocessing's: the same framing, the same HMAC challenge
(both ways, before anything is unpickled), the same requests and replies.
So a program may connect to a corelet manager with
``multiprocessing.managers.BaseManager(address, authkey).connect()``, and a
corelet manager may connect to a multiprocessing one. corelet's proxy
classes (BaseProxy, AutoProxy, DictProxy, ...) are subclasses of
multiprocessing's with one change, in ``_callmethod``: where the manager is
corelet's and on this host (a Unix socket address) a thread's calls go
through a shared-memory channel — two ipc queues in memfds, whose
descriptors the server sends over the authenticated socket — instead of
the socket. The server polls a channel for a moment after each request, so
a client that calls again at once is answered without waking a process.

Differences from multiprocessing's (tests/py/test_managers.py runs each
test body against both):

- the server started by ``start()`` from the main thread dies with the
  process that started it, however that one ends (the kernel's
  parent-death signal): multiprocessing's outlives a parent killed by
  SIGKILL;
- its address by default is an abstract Unix socket name (nothing on disk
  to leave behind) rather than a file under /tmp;
- ``serializer='xmlrpclib'`` is refused (pickle only).
"""

import functools
import hmac
import multiprocessing
import multiprocessing.managers as _mpm
import os
import pickle
import queue
import select
import signal
import socket as _socket
import struct
import sys
import threading
import time
import traceback
import types
from multiprocessing import connection as _mpc
from multiprocessing import process as _mpprocess
from multiprocessing import util as _mputil
from multiprocessing.reduction import ForkingPickler

from . import _io
from . import shared_memory as _shared_memory
from ._common import _in_tasklet
from ._corelet import Cancelled, Op, _plain_call, _run, current_id, run_blocking, spawn
from ._corelet import ShmQueue, _shmq_try_get
from ._queues import JoinableQueue as _Queue_JoinableQueue
from ._queues import Queue as _Queue
from ._sync import Barrier as _Barrier
from ._sync import BoundedSemaphore as _BoundedSemaphore
from ._sync import Condition as _Condition
from ._sync import Event as _Event
from ._sync import Lock as _Lock
from ._sync import RLock as _RLock
from ._sync import Semaphore as _Semaphore
from ._pool import Pool
from ._process import Process, _die_with_parent
from ._shared_queue import SharedQueue

# multiprocessing's own classes.
from multiprocessing.managers import Array, Namespace, RemoteError, Token, Value, dispatch  # noqa: F401

__all__ = [
    "BaseManager",
    "SharedMemoryManager",
    "SyncManager",
    "BaseProxy",
    "Token",
    "Server",
    "NamespaceProxy",
    "AutoProxy",
    "MakeProxyType",
    "RemoteError",
]

_State = _mpm.State
_CHALLENGE = b"#CHALLENGE#"
_WELCOME = b"#WELCOME#"
_FAILURE = b"#FAILURE#"
_MESSAGE_LENGTH = 20
_CHANNEL_BYTES = 1 << 20  # each way; a larger request goes over the socket, a larger reply too
# A client polls for its reply this many times, yielding its CPU before
# each poll, before its blocking get (which spins, then sleeps): where more
# processes are runnable than there are CPUs (two clients and the server on
# two), the server then gets the CPU a spinning client would have held.
_CLIENT_YIELDS = 3
_SERVER_SPIN = 50e-6  # seconds a channel is polled after a request before its tasklet parks

# Objects made by these run their methods on the scheduler: the builtins and
# multiprocessing's plain holders never block, and corelet's primitives give
# operations that park the serving tasklet alone.
_ON_SCHEDULER = {
    dict,
    list,
    Namespace,
    Value,
    Array,
    _Queue,
    _Queue_JoinableQueue,
    _Lock,
    _RLock,
    _Semaphore,
    _BoundedSemaphore,
    _Condition,
    _Event,
    _Barrier,
}
_PLAIN_TYPES = (dict, list)  # their methods never wait and never give a proxy: answered without a coroutine


class _Closed(Exception):
    """The peer closed the connection (EOF between or inside frames)."""


class _Conn:
    """multiprocessing.connection's framing over a corelet socket: a 4-byte
    big-endian length (or -1 and an 8-byte one), then the bytes. Reads are
    buffered, so a request usually costs one recv."""

    __slots__ = ("sock", "_buf")

    def __init__(self, sock):
        self.sock = sock
        self._buf = bytearray()

    async def _fill(self, n):
        buf = self._buf
        while len(buf) < n:
            data = await self.sock.recv(max(65536, n - len(buf)))
            if not data:
                raise _Closed
            buf += data

    async def recv_bytes(self, maxlength=None):
        buf = self._buf
        if len(buf) < 4:
            await self._fill(4)
        (size,) = struct.unpack_from("!i", buf)
        start = 4
        if size == -1:
            await self._fill(12)
            (size,) = struct.unpack_from("!Q", buf, 4)
            start = 12
        if maxlength is not None and size > maxlength:
            raise OSError(f"a message of {size} bytes, more than the {maxlength} allowed here")
        end = start + size
        if len(buf) < end:
            await self._fill(end)
        data = bytes(buf[start:end])
        del buf[:end]
        return data

    async def send_bytes(self, data):
        n = len(data)
        header = struct.pack("!i", n) if n <= 0x7FFFFFFF else struct.pack("!iQ", -1, n)
        if n > 16384:
            await self.sock.sendall(header)
            await self.sock.sendall(data)
        else:
            await self.sock.sendall(header + bytes(data))

    async def recv(self):
        return pickle.loads(await self.recv_bytes())

    async def send(self, obj):
        await self.send_bytes(ForkingPickler.dumps(obj))


def _digest_of(authkey, message):
    return hmac.new(authkey, message, "md5").digest()


async def _deliver_challenge(conn, authkey):
    message = os.urandom(_MESSAGE_LENGTH)
    await conn.send_bytes(_CHALLENGE + message)
    response = await conn.recv_bytes(256)
    if hmac.compare_digest(response, _digest_of(authkey, message)):
        await conn.send_bytes(_WELCOME)
        return True
    await conn.send_bytes(_FAILURE)
    return False


async def _answer_challenge(conn, authkey):
    message = await conn.recv_bytes(256)
    if not message.startswith(_CHALLENGE):
        return False
    await conn.send_bytes(_digest_of(authkey, message[len(_CHALLENGE) :]))
    return (await conn.recv_bytes(256)) == _WELCOME


def _format_exc():
    return "".join(traceback.format_exception(*sys.exc_info()))


def _listening_socket(address):
    """A listening socket for address (None: a new abstract Unix name)."""
    if address is None:
        address = f"\0corelet-manager-{os.getpid()}-{os.urandom(6).hex()}"
    family = _mpc.address_type(address)
    if family == "AF_INET":
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    elif family == "AF_UNIX":
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    else:
        raise ValueError(f"corelet.managers: address {address!r} is neither a Unix path nor a (host, port) pair")
    try:
        sock.bind(address)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    bound = sock.getsockname()
    if family == "AF_UNIX" and isinstance(bound, bytes):  # abstract names come back as bytes
        bound = bound.decode("latin-1")
    return sock, bound


class Server:
    """A manager's server: holds the objects and serves the proxies' requests,
    a tasklet per connection on one corelet scheduler. ``serve_forever()`` in
    plain code runs it (until a client asks it to shut down); in a tasklet it
    is an operation (``yield server.serve_forever()``)."""

    public = ["shutdown", "create", "accept_connection", "get_methods", "debug_info", "number_of_objects",
              "dummy", "incref", "decref", "corelet_channel"]

    def __init__(self, registry, address, authkey, serializer):
        if not isinstance(authkey, bytes):
            raise TypeError(f"Authkey {authkey!r} is type {type(authkey)!s}, not bytes")
        if serializer != "pickle":
            raise ValueError(f"corelet.managers: serializer {serializer!r} is not supported (only 'pickle')")
        self.registry = registry
        self.authkey = _mpprocess.AuthenticationString(authkey)
        self._listener, self.address = _listening_socket(address)
        # The tables multiprocessing's RebuildProxy reads (a proxy of one of
        # this server's objects unpickled here, as in a managed list held in
        # a managed dict).
        self.id_to_obj = {"0": (None, (), None)}
        self.id_to_refcount = {}
        self.id_to_local_proxy_obj = {}
        self._on_scheduler = set()  # idents whose methods run on the scheduler
        self._tasks = {}  # the connections' tasklets by id
        self._stop = None

    # ---- running ----
    def serve_forever(self):
        if _in_tasklet():
            return self._main()
        _mpprocess.current_process()._manager_server = self
        try:
            _run(self._main)  # corelet.run(self._main): one scheduler, this thread
        except KeyboardInterrupt:
            pass
        finally:
            self._listener.close()
        sys.exit(0)

    async def _main(self):
        _mpprocess.current_process()._manager_server = self
        self._stop = _Event()
        listener = _io.socket.wrap(self._listener)
        accepter = spawn(self._accept_loop, listener, name="manager accept")
        await self._stop.wait()
        self._at_shutdown()
        accepter.cancel()
        for t in list(self._tasks.values()):
            t.cancel()
        listener.close()

    async def _accept_loop(self, listener):
        while True:
            try:
                sock, _addr = await listener.accept()
            except (ConnectionAbortedError, ConnectionResetError, InterruptedError):
                continue
            task = spawn(self._handle, sock, name="manager connection")
            self._tasks[task.id] = task

    async def _handle(self, sock):
        conn = _Conn(sock)
        try:
            if not await _deliver_challenge(conn, self.authkey):
                return
            if not await _answer_challenge(conn, self.authkey):
                return
            try:
                request = await conn.recv()
                _ignore, funcname, args, kwds = request
                if funcname not in self.public:
                    raise AttributeError(f"{funcname!r} unrecognized")
                if funcname == "accept_connection":
                    await conn.send(("#RETURN", None))
                    await self._serve_client(conn)
                    return
                if funcname == "corelet_channel":
                    await self._open_channel(conn)
                    return
                if funcname == "shutdown":
                    await conn.send(("#RETURN", None))
                    self._stop.set()
                    return
                result = getattr(self, funcname)(*args, **kwds)
                if isinstance(result, types.CoroutineType):
                    result = await result
            except (_Closed, Cancelled):
                raise
            except Exception:
                msg = ("#TRACEBACK", _format_exc())
            else:
                msg = ("#RETURN", result)
            try:
                await conn.send(msg)
            except (_Closed, Cancelled, OSError):
                raise
            except Exception:
                await conn.send(("#TRACEBACK", _format_exc()))
        except (_Closed, Cancelled, OSError):
            pass
        finally:
            sock.close()
            self._tasks.pop(current_id(), None)

    async def _serve_client(self, conn):
        """Requests from the proxies of one thread of one process, in order."""
        while True:
            msg = await self._answer(await conn.recv())
            try:
                await conn.send(msg)
            except (Cancelled, _Closed, OSError):
                raise
            except Exception:
                await conn.send(("#UNSERIALIZABLE", _format_exc()))

    def _answer_plain(self, request):
        """The reply to a call of an exposed method of a dict or a list, made
        at once (no coroutine: the channel's common case); None for any
        other request, which _answer makes."""
        try:
            ident, methodname, args, kwds = request
            obj, exposed, gettypeid = self.id_to_obj[ident]
        except (ValueError, TypeError, KeyError):
            return None
        if type(obj) not in _PLAIN_TYPES or gettypeid or methodname not in exposed:
            return None
        try:
            return ("#RETURN", getattr(obj, methodname)(*args, **kwds))
        except Exception as e:
            return ("#ERROR", e)

    async def _answer(self, request):
        """The reply to one request (ident, methodname, args, kwds), as
        multiprocessing's server makes it."""
        methodname = obj = ident = None
        try:
            ident, methodname, args, kwds = request
            try:
                obj, exposed, gettypeid = self.id_to_obj[ident]
            except KeyError:
                try:
                    obj, exposed, gettypeid = self.id_to_local_proxy_obj[ident]
                except KeyError:
                    raise KeyError(ident) from None
            if methodname not in exposed:
                raise AttributeError(f"method {methodname!r} of {type(obj)!r} object is not in exposed={exposed!r}")
            function = getattr(obj, methodname)
            try:
                if ident in self._on_scheduler:
                    res = function(*args, **kwds)
                    if isinstance(res, (Op, types.GeneratorType, types.CoroutineType)):
                        res = await res
                else:
                    res = await run_blocking(functools.partial(function, *args, **kwds))
            except (Cancelled, _Closed):
                raise
            except Exception as e:
                return ("#ERROR", e)
            typeid = gettypeid and gettypeid.get(methodname, None)
            if typeid:
                rident, rexposed = await self.create(typeid, res)
                return ("#PROXY", (rexposed, Token(typeid, self.address, rident)))
            return ("#RETURN", res)
        except (Cancelled, _Closed):
            raise
        except AttributeError:
            if methodname is None:
                return ("#TRACEBACK", _format_exc())
            try:
                fallback = self.fallback_mapping[methodname]
                return ("#RETURN", fallback(self, ident, obj, *args, **kwds))
            except Exception:
                return ("#TRACEBACK", _format_exc())
        except Exception:
            return ("#TRACEBACK", _format_exc())

    async def _open_channel(self, conn):
        """A client on this host asked for a shared-memory channel: two queues
        in memfds, whose descriptors go back with the reply (SCM_RIGHTS). Its
        requests then come through one queue and the replies go through the
        other; the socket stays open, and its end is the client's end."""
        req = SharedQueue._over(ShmQueue(_CHANNEL_BYTES, 0, True))
        rep = SharedQueue._over(ShmQueue(_CHANNEL_BYTES, 0, True))
        frame = ForkingPickler.dumps(("#RETURN", None))
        await _io.wait_writable(conn.sock.fileno(), None)
        _socket.send_fds(conn.sock._sock, [struct.pack("!i", len(frame)) + bytes(frame)],
                         [req._q.fileno(), rep._q.fileno()])
        watcher = spawn(self._watch_channel, conn, req, name="manager channel watch")
        try:
            await self._serve_channel(conn, req, rep)
        finally:
            watcher.cancel()

    async def _watch_channel(self, conn, req):
        try:
            while await conn.sock.recv(4096):
                pass
        except OSError:
            pass
        req._q.close()  # the client is gone: the serving loop's get ends

    @types.coroutine
    def _serve_channel(self, conn, req, rep):
        # After a request it polls for the next one for a while (other
        # tasklets run between polls) before it parks: a client that calls
        # again at once is then answered without a wake-up of this process.
        try_get = _shmq_try_get
        clock = time.perf_counter
        spin_until = 0.0
        while True:
            try:
                got, request = try_get(req)
            except EOFError:  # closed by the watcher: the client is gone
                return
            if not got:
                if clock() < spin_until:
                    yield  # others run; then look again
                    continue
                try:
                    request = yield req.get()
                except EOFError:
                    return
            msg = self._answer_plain(request)
            if msg is None:
                msg = yield from self._answer(request)
            try:
                done = rep.put(msg)
                if done is not None:
                    yield done
            except ValueError as e:
                if "does not fit" not in str(e):
                    yield rep.put(("#UNSERIALIZABLE", _format_exc()))
                else:  # too large for the ring: it goes over the socket
                    yield rep.put(("#VIA_SOCKET", None))
                    yield from conn.send(msg)
            except Exception:
                yield rep.put(("#UNSERIALIZABLE", _format_exc()))
            spin_until = clock() + _SERVER_SPIN

    # ---- fallbacks for proxies' str(), repr() and _getvalue() ----
    def _fallback_getvalue(self, ident, obj):
        return obj

    def _fallback_str(self, ident, obj):
        return str(obj)

    def _fallback_repr(self, ident, obj):
        return repr(obj)

    fallback_mapping = {"__str__": _fallback_str, "__repr__": _fallback_repr, "#GETVALUE": _fallback_getvalue}

    def _at_shutdown(self):
        """Runs when a client has asked the server to shut down."""

    # ---- the server's public functions (multiprocessing's) ----
    def dummy(self):
        pass

    def debug_info(self):
        lines = []
        for ident in sorted(self.id_to_refcount):
            if ident != "0":
                lines.append(f"  {ident}:       refcount={self.id_to_refcount[ident]}\n    {str(self.id_to_obj[ident][0])[:75]}")
        return "\n".join(lines)

    def number_of_objects(self):
        return len(self.id_to_refcount)

    async def create(self, typeid, /, *args, **kwds):
        try:
            callable_, exposed, method_to_typeid, _proxytype = self.registry[typeid]
        except KeyError:
            raise KeyError(f"corelet.managers: no type {typeid!r} is registered with this manager") from None
        scheduler = callable_ in _ON_SCHEDULER
        if callable_ is None:
            if kwds or len(args) != 1:
                raise ValueError("Without callable, must have one non-keyword argument")
            obj = args[0]
        elif scheduler:
            obj = callable_(*args, **kwds)
        else:
            obj = await run_blocking(functools.partial(callable_, *args, **kwds))
        if exposed is None:
            exposed = _mpm.public_methods(obj)
        if method_to_typeid is not None:
            if not isinstance(method_to_typeid, dict):
                raise TypeError(f"Method_to_typeid {method_to_typeid!r}: type {type(method_to_typeid)!s}, not dict")
            exposed = list(exposed) + list(method_to_typeid)
        ident = "%x" % id(obj)
        self.id_to_obj[ident] = (obj, set(exposed), method_to_typeid)
        if scheduler:
            self._on_scheduler.add(ident)
        self.id_to_refcount.setdefault(ident, 0)
        self.incref(ident)
        return ident, tuple(exposed)

    def get_methods(self, token):
        return tuple(self.id_to_obj[token.id][1])

    def incref(self, ident):
        try:
            self.id_to_refcount[ident] += 1
        except KeyError:
            # No proxy outside holds it, but one inside the server does (a
            # managed object held in another): it is tracked again.
            if ident not in self.id_to_local_proxy_obj:
                raise
            self.id_to_refcount[ident] = 1
            self.id_to_obj[ident] = self.id_to_local_proxy_obj[ident]

    def decref(self, ident):
        if ident not in self.id_to_refcount and ident in self.id_to_local_proxy_obj:
            return
        count = self.id_to_refcount.get(ident, 0)
        if count <= 0:
            raise AssertionError(f"Id {ident!s} ({self.id_to_obj.get(ident)!r}) has refcount {count:n}, not 1+")
        if count > 1:
            self.id_to_refcount[ident] = count - 1
            return
        del self.id_to_refcount[ident]
        # Two steps, as the object may hold proxies of others of this
        # server's objects, whose own decref runs as it goes.
        self.id_to_obj[ident] = (None, (), None)
        del self.id_to_obj[ident]
        self._on_scheduler.discard(ident)


# ---- the client side: proxies with a shared-memory channel -----------------------

_NO_CHANNEL = object()


class _Channel:
    """A thread's shared-memory channel to a manager on this host: requests go
    through one queue, replies come back through the other; the socket is
    the server's sign of life (and carries a reply too large for the ring)."""

    __slots__ = ("conn", "req", "rep", "_poll", "address")

    def __init__(self, conn, req, rep, address):
        self.conn, self.req, self.rep, self.address = conn, req, rep, address
        self._poll = select.poll()
        self._poll.register(conn.fileno(), select.POLLRDHUP | select.POLLHUP | select.POLLERR)

    def call(self, request):
        """Sends request and waits for its reply, with no time limit of its
        own (a method's timeout is the server's, as over a socket), looking
        at the server's socket every 0.1 s: a server gone (closed or
        killed) raises ConnectionResetError. A request too large for the
        ring raises ValueError ("does not fit") before anything is sent."""
        self.req.put(request)
        reply = None
        for _ in range(_CLIENT_YIELDS):
            try:
                got, reply = _shmq_try_get(self.rep)
            except EOFError:
                raise ConnectionResetError(f"corelet.managers: the manager at {self.address!r} is gone") from None
            if got:
                break
            reply = None
            os.sched_yield()  # the CPU to whoever is runnable here (the server, on a busy machine)
        while reply is None:
            try:
                kind, result = self.rep.get(True, _LIVENESS_CHECK)
            except queue.Empty:
                if self._poll.poll(0):
                    raise ConnectionResetError(f"corelet.managers: the manager at {self.address!r} is gone") from None
                continue
            except EOFError:
                raise ConnectionResetError(f"corelet.managers: the manager at {self.address!r} is gone") from None
            reply = kind, result
        if reply[0] == "#VIA_SOCKET":
            return self.conn.recv()
        return reply


def _open_channel(proxy):
    """A shared-memory channel to proxy's server, or None where there can be
    none (a TCP address; a server that is not corelet's)."""
    address = proxy._token.address
    if _mpc.address_type(address) != "AF_UNIX":
        return None
    conn = proxy._Client(address, authkey=proxy._authkey)
    try:
        conn.send((None, "corelet_channel", (), {}))
        with _socket.socket(fileno=os.dup(conn.fileno())) as s:
            s.setblocking(True)
            data, fds, _flags, _addr = _socket.recv_fds(s, 4096, 2)
            try:
                if len(data) < 4:
                    data += s.recv(4 - len(data), _socket.MSG_WAITALL)
                (size,) = struct.unpack_from("!i", data)
                while len(data) < 4 + size:
                    more = s.recv(4 + size - len(data))
                    if not more:
                        raise EOFError
                    data += more
                kind, _result = pickle.loads(data[4 : 4 + size])
                if kind != "#RETURN" or len(fds) != 2:
                    conn.close()
                    return None  # multiprocessing's server: it refused the request
                req = SharedQueue._over(ShmQueue.attach(fds[0]))
                rep = SharedQueue._over(ShmQueue.attach(fds[1]))
            finally:
                for fd in fds:
                    os.close(fd)
    except BaseException:
        conn.close()
        raise
    return _Channel(conn, req, rep, address)


_LIVENESS_CHECK = 0.1  # seconds between looks at the server's socket while a call waits


class BaseProxy(_mpm.BaseProxy):
    """multiprocessing.managers.BaseProxy whose calls go through a
    shared-memory channel when the manager is corelet's and on this host
    (its address a Unix socket), and over the socket otherwise. A call to a
    manager that has died fails within 0.1 s (ConnectionResetError)."""

    def _callmethod(self, methodname, args=(), kwds={}):  # noqa: B006 - multiprocessing's signature
        tls = self._tls
        channel = tls.__dict__.get("corelet_channel", _NO_CHANNEL)
        if channel is _NO_CHANNEL:
            channel = tls.corelet_channel = _open_channel(self)
        if channel is None:
            return _mpm.BaseProxy._callmethod(self, methodname, args, kwds)
        try:
            request = (self._id, methodname, args, kwds)
            if _in_tasklet():
                # As plain code: the call blocks this thread until the reply,
                # as one over the socket would (the channel's own waits are
                # operations in a tasklet, which a proxy method cannot yield).
                kind, result = _plain_call(channel.call, request)
            else:
                kind, result = channel.call(request)
        except ValueError as e:
            if "does not fit" not in str(e):
                raise
            return _mpm.BaseProxy._callmethod(self, methodname, args, kwds)  # too large for the ring: over the socket
        if kind == "#RETURN":
            return result
        if kind == "#PROXY":
            exposed, token = result
            proxytype = self._manager._registry[token.typeid][-1]
            token.address = self._token.address
            proxy = proxytype(token, self._serializer, manager=self._manager, authkey=self._authkey, exposed=exposed)
            conn = self._Client(token.address, authkey=self._authkey)
            dispatch(conn, None, "decref", (token.id,))
            return proxy
        raise _mpm.convert_to_error(kind, result)

    def __reduce__(self):
        kwds = {}
        if getattr(_mpprocess.current_process(), "_inheriting", False):
            kwds["authkey"] = self._authkey
        if getattr(self, "_isauto", False):
            kwds["exposed"] = self._exposed_
            return (_mpm.RebuildProxy, (AutoProxy, self._token, self._serializer, kwds))
        return (_mpm.RebuildProxy, (type(self), self._token, self._serializer, kwds))


def MakeProxyType(name, exposed, _cache={}):  # noqa: B006 - a cache, as multiprocessing's
    """A proxy type (on corelet's BaseProxy) whose methods are the names in exposed."""
    exposed = tuple(exposed)
    try:
        return _cache[(name, exposed)]
    except KeyError:
        pass

    def method(meth):
        def call(self, /, *args, **kwds):
            return self._callmethod(meth, args, kwds)

        call.__name__ = meth
        return call

    ProxyType = type(name, (BaseProxy,), {meth: method(meth) for meth in exposed})
    ProxyType._exposed_ = exposed
    _cache[(name, exposed)] = ProxyType
    return ProxyType


def AutoProxy(token, serializer, manager=None, authkey=None, exposed=None, incref=True, manager_owned=False):
    """A proxy for a registered type without a proxy type of its own: its
    methods are the ones the server exposes for the object."""
    _Client = _mpm.listener_client[serializer][1]
    if exposed is None:
        conn = _Client(token.address, authkey=authkey)
        try:
            exposed = dispatch(conn, None, "get_methods", (token,))
        finally:
            conn.close()
    if authkey is None and manager is not None:
        authkey = manager._authkey
    if authkey is None:
        authkey = _mpprocess.current_process().authkey
    ProxyType = MakeProxyType("AutoProxy[%s]" % token.typeid, exposed)
    proxy = ProxyType(token, serializer, manager=manager, authkey=authkey, incref=incref, manager_owned=manager_owned)
    proxy._isauto = True
    return proxy


def _on_corelet(mp_proxy_type):
    """multiprocessing's proxy type with corelet's BaseProxy underneath."""
    return type(mp_proxy_type.__name__, (mp_proxy_type,), {"_callmethod": BaseProxy._callmethod,
                                                           "__reduce__": BaseProxy.__reduce__})


# The names proxies are known by; each is multiprocessing's class underneath
# (isinstance(p, multiprocessing.managers.DictProxy) holds).
NamespaceProxy = _on_corelet(_mpm.NamespaceProxy)
ValueProxy = _on_corelet(_mpm.ValueProxy)
ListProxy = _on_corelet(_mpm.ListProxy)
DictProxy = _on_corelet(_mpm.DictProxy)
ArrayProxy = _on_corelet(_mpm.ArrayProxy)
AcquirerProxy = _on_corelet(_mpm.AcquirerProxy)
ConditionProxy = _on_corelet(_mpm.ConditionProxy)
EventProxy = _on_corelet(_mpm.EventProxy)
BarrierProxy = _on_corelet(_mpm.BarrierProxy)
PoolProxy = _on_corelet(_mpm.PoolProxy)
IteratorProxy = _on_corelet(_mpm.IteratorProxy)


class BaseManager(_mpm.BaseManager):
    """multiprocessing.managers.BaseManager whose server runs on corelet's
    scheduler: ``register()``, ``start(initializer, initargs)``,
    ``connect()``, ``shutdown()``, ``get_server()``, ``address``, ``join()``
    and the context manager, with multiprocessing's meaning."""

    _registry = {}
    _Server = Server

    def __init__(self, address=None, authkey=None, serializer="pickle", ctx=None, *, shutdown_timeout=1.0):
        if serializer != "pickle":
            raise ValueError(f"corelet.managers: serializer {serializer!r} is not supported (only 'pickle')")
        if ctx is not None and getattr(ctx, "get_start_method", lambda: "fork")() != "fork":
            raise ValueError("corelet.managers: the manager's server is started by fork")
        super().__init__(address, authkey, serializer, ctx=None, shutdown_timeout=shutdown_timeout)
        self._process = None

    @classmethod
    def register(cls, typeid, callable=None, proxytype=None, exposed=None, method_to_typeid=None,  # noqa: A002
                 create_method=True):
        """multiprocessing's register(); a type without a proxytype gets corelet's AutoProxy."""
        super().register(typeid, callable, AutoProxy if proxytype is None else proxytype, exposed,
                         method_to_typeid, create_method)

    def _check_initial(self):
        if self._state.value == _State.STARTED:
            raise multiprocessing.ProcessError("Already started server")
        if self._state.value == _State.SHUTDOWN:
            raise multiprocessing.ProcessError("Manager has shut down")

    def get_server(self):
        """The Server object (``serve_forever()``, ``address``) for this process to run."""
        self._check_initial()
        return self._Server(self._registry, self._address, self._authkey, self._serializer)

    def connect(self):
        """Connects this manager object to a running server at ``address``."""
        try:
            super().connect()
        except multiprocessing.AuthenticationError as e:
            raise multiprocessing.AuthenticationError(
                f"the manager at {self._address!r} refused this authkey ({e})"
            ) from None

    def start(self, initializer=None, initargs=()):
        """Starts the server in a child process (forked now) and waits for its address."""
        self._check_initial()
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        reader, writer = _mpc.Pipe(duplex=False)
        parent = os.getpid() if threading.current_thread() is threading.main_thread() else None
        self._process = Process(
            target=type(self)._run_server,
            args=(self._registry, self._address, self._authkey, self._serializer, writer, initializer, initargs,
                  parent),
            name=type(self).__name__ + "-server",
        )
        self._process.start()
        writer.close()
        try:
            reply = reader.recv()
        except EOFError:
            self._process.join()
            raise multiprocessing.ProcessError(
                f"corelet.managers: the manager's server exited with code {self._process.exitcode} before it "
                "could listen (see its error above)"
            ) from None
        finally:
            reader.close()
        if isinstance(reply, BaseException):
            self._process.join()
            raise reply
        self._address = reply
        self._state.value = _State.STARTED
        self.shutdown = _mputil.Finalize(
            self,
            type(self)._finalize_manager,
            args=(self._process, self._address, self._authkey, self._state, self._Client, self._shutdown_timeout),
            exitpriority=0,
        )

    @classmethod
    def _run_server(cls, registry, address, authkey, serializer, writer, initializer=None, initargs=(),
                    parent=None):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal is for the program
        if parent is not None:
            _die_with_parent(parent)
        try:
            if initializer is not None:
                initializer(*initargs)
            server = cls._Server(registry, address, authkey, serializer)
        except BaseException as e:  # noqa: BLE001 - sent to start(), which raises it there
            writer.send(e)
            writer.close()
            return
        writer.send(server.address)
        writer.close()
        server.serve_forever()


class SyncManager(BaseManager):
    """multiprocessing.managers.SyncManager on corelet: ``dict``, ``list``,
    ``Namespace``, ``Queue``, ``JoinableQueue``, ``Lock``, ``RLock``,
    ``Semaphore``, ``BoundedSemaphore``, ``Condition``, ``Event``,
    ``Barrier``, ``Value``, ``Array`` and ``Pool``, with multiprocessing's
    proxy types. The server's objects are corelet's own, so a waiting call
    parks only the tasklet serving its caller."""


SyncManager.register("Queue", _Queue)
SyncManager.register("JoinableQueue", _Queue_JoinableQueue)
SyncManager.register("Event", _Event, EventProxy)
SyncManager.register("Lock", _Lock, AcquirerProxy)
SyncManager.register("RLock", _RLock, AcquirerProxy)
SyncManager.register("Semaphore", _Semaphore, AcquirerProxy)
SyncManager.register("BoundedSemaphore", _BoundedSemaphore, AcquirerProxy)
SyncManager.register("Condition", _Condition, ConditionProxy)
SyncManager.register("Barrier", _Barrier, BarrierProxy)
SyncManager.register("Pool", Pool, PoolProxy)
SyncManager.register("list", list, ListProxy)
SyncManager.register("dict", dict, DictProxy)
SyncManager.register("Value", Value, ValueProxy)
SyncManager.register("Array", Array, ArrayProxy)
SyncManager.register("Namespace", Namespace, NamespaceProxy)
SyncManager.register("Iterator", proxytype=IteratorProxy, create_method=False)
SyncManager.register("AsyncResult", create_method=False)


class SharedMemoryServer(Server):
    """The server of a SharedMemoryManager: it keeps the names of the
    segments its clients made through it, and unlinks them when it shuts
    down (track_segment, release_segment, list_segments, as
    multiprocessing's)."""

    public = Server.public + ["track_segment", "release_segment", "list_segments"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.segment_names = []

    def track_segment(self, segment_name):
        self.segment_names.append(segment_name)

    def release_segment(self, segment_name):
        self.segment_names.remove(segment_name)
        _shared_memory._unlink_if_there(segment_name)

    def list_segments(self):
        return list(self.segment_names)

    def _at_shutdown(self):
        for name in self.segment_names:
            _shared_memory._unlink_if_there(name)
        self.segment_names.clear()


class SharedMemoryManager(BaseManager):
    """multiprocessing.managers.SharedMemoryManager on corelet:
    ``SharedMemory(size)`` and ``ShareableList(sequence)`` make corelet
    segments (corelet.shared_memory) in the calling process and have the
    manager's server unlink them at its shutdown. A segment goes by itself
    too, once nobody holds it."""

    _Server = SharedMemoryServer

    def _tracked(self, segment):
        with self._Client(self._address, authkey=self._authkey) as conn:
            try:
                _mpm.dispatch(conn, None, "track_segment", (segment.name,))
            except BaseException:
                segment.unlink()
                raise

    def SharedMemory(self, size):  # noqa: N802 - multiprocessing's name
        """A new corelet SharedMemory of `size` bytes, unlinked at the manager's shutdown."""
        sms = _shared_memory.SharedMemory(None, create=True, size=size)
        self._tracked(sms)
        return sms

    def ShareableList(self, sequence):  # noqa: N802 - multiprocessing's name
        """A new corelet ShareableList of `sequence`, unlinked at the manager's shutdown."""
        sl = _shared_memory.ShareableList(sequence)
        self._tracked(sl.shm)
        return sl


def Manager():
    """A started SyncManager (its server is a child process running corelet's
    scheduler); ``with corelet.Manager() as m:`` shuts it down at the end."""
    m = SyncManager()
    m.start()
    return m
