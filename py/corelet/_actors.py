"""Actors, as ThreadingX's processes: an object living in one worker of
corelet.run(main, workers=N), reached through a proxy whose method calls run
there one at a time.

    class Child:
        def send_message(self, message):
            print("child got", message)
            corelet.sender().finished()       # the caller's proxy

    child = corelet.spawn_actor(Child)        # a proxy, at once
    yield child.send_message("hello")         # a Task: yield / await it, or .result() once done

- spawn_actor(Cls, *args, worker=None, **kwargs) makes Cls(*args, **kwargs)
  on a worker (in turn if worker is None) and gives its proxy at once; calls
  made before the object exists wait for it (as ThreadingX queues them).
- proxy.method(*args, **kwargs) starts the call and gives a Task for its
  result (the method's exception is raised by join). Methods of one actor run
  one at a time, in the order their calls arrive; a method may be a generator
  function or an async def (it then runs as a tasklet there, still holding
  the actor).
- Proxies are picklable: they travel inside messages and arrive usable.
- corelet.sender(), inside a method, is the proxy of the actor whose method
  made the call (None if a plain tasklet made it).
- register(name, proxy) / whereis(name) form a registry, kept by worker 0.
- stop_actor(proxy): the actor ends after the calls queued before this one;
  later calls raise LookupError.
"""

import atexit
import concurrent.futures
import itertools
import os
import struct
import threading

from ._cluster import _call_payload, _check_worker, call_on
from ._corelet import current_id, num_workers, spawn, this_worker
from ._host import start_host
from ._sync import Event, Lock
from ._wire import dumps_call, is_tasklet_body, loads, raise_remote

__all__ = ["spawn_actor", "ActorProxy", "sender", "register", "whereis", "stop_actor", "actor_processes"]

_WAIT_FOR_CREATION = 30.0  # seconds a call waits for its actor to be made

# In the worker that hosts actors.
_hosted = {}    # actor id -> _Hosted
_waiting = {}   # actor id -> Event, for calls that came before the actor
_failed = {}    # actor id -> packed exception of a failed creation
_stopped = set()
_caller = {}    # tasklet id -> the proxy of the actor whose call it runs (or None)
_acting = {}    # tasklet id -> the proxy of the actor it runs a method of

# In worker 0: the registry.
_registry = {}

_ids = itertools.count(1)
_turn = itertools.count()

# The frames between plain code and its actor cluster (_actor_host).
CALL = struct.Struct("<QIQ")   # call id, worker, payload length
REPLY = struct.Struct("<QQ")   # call id, reply length


class _Hosted:
    __slots__ = ("obj", "lock", "proxy")

    def __init__(self, obj, lock, proxy):
        self.obj = obj
        self.lock = lock
        self.proxy = proxy


class ActorProxy:
    """The handle of an actor: attribute access gives its methods; calling one
    starts the call on the actor's worker and gives a Task for the result."""

    __slots__ = ("_worker", "_id", "_name")

    def __init__(self, worker, actor_id, name):
        self._worker = worker
        self._id = actor_id
        self._name = name

    def __reduce__(self):
        return ActorProxy, (self._worker, self._id, self._name)

    def __getattr__(self, method):
        if method.startswith("_"):
            raise AttributeError(method)
        return _Method(self, method)

    def __eq__(self, other):
        return isinstance(other, ActorProxy) and (self._worker, self._id) == (other._worker, other._id)

    def __hash__(self):
        return hash((self._worker, self._id))

    def __repr__(self):
        return f"<corelet.ActorProxy {self._name} #{self._id} on worker {self._worker}>"

    @property
    def worker(self):
        return self._worker


class _Method:
    __slots__ = ("_proxy", "_name")

    def __init__(self, proxy, name):
        self._proxy = proxy
        self._name = name

    def __call__(self, *args, **kwargs):
        p = self._proxy
        if num_workers() == 0:  # plain code: through the actor cluster of this process
            payload = dumps_call(_actor_call, (p._id, self._name, args, kwargs, None), {}, by_value=True)
            return _client().call(p._worker, payload)
        _check_worker(p._worker, f"{p._name}.{self._name}")
        payload = dumps_call(_actor_call, (p._id, self._name, args, kwargs, _acting.get(current_id())), {})
        return spawn(_call_payload, p._worker, payload, f"{p._name}.{self._name}", name=f"{p._name}.{self._name}")

    def __repr__(self):
        return f"<method {self._name} of {self._proxy!r}>"


def _local_event():
    e = object.__new__(Event)  # in-process whatever the context
    Event.__init__(e)
    return e


def _local_lock():
    lk = object.__new__(Lock)
    Lock.__init__(lk)
    return lk


def _actor_create(actor_id, cls, args, kwargs, proxy):
    try:
        obj = cls(*args, **kwargs)
    except BaseException as e:  # noqa: BLE001 - later calls say why
        _failed[actor_id] = e
        raise
    finally:
        ev = _waiting.pop(actor_id, None)
        if ev is not None:
            ev.set()
    _hosted[actor_id] = _Hosted(obj, _local_lock(), proxy)
    return None


def _find(actor_id):
    """The hosted actor; waits for it if its creation has not come yet."""
    while True:
        h = _hosted.get(actor_id)
        if h is not None:
            return h
        if actor_id in _failed:
            raise LookupError(f"corelet: the actor was not made: {_failed[actor_id]!r}")
        if actor_id in _stopped:
            raise LookupError("corelet: the actor was stopped")
        ev = _waiting.get(actor_id)
        if ev is None:
            ev = _waiting[actor_id] = _local_event()
        if not (yield ev.wait(_WAIT_FOR_CREATION)):
            raise LookupError(f"corelet: no actor #{actor_id} here after {_WAIT_FOR_CREATION:.0f} s")


def _actor_call(actor_id, method, args, kwargs, caller):
    h = yield _find(actor_id)
    yield h.lock.acquire()
    me = current_id()
    try:
        if actor_id not in _hosted:  # stopped while this call waited its turn
            raise LookupError("corelet: the actor was stopped")
        fn = getattr(h.obj, method)
        _caller[me] = caller
        _acting[me] = h.proxy
        result = fn(*args, **kwargs)
        if is_tasklet_body(result):
            result = yield result
        return result
    finally:
        _caller.pop(me, None)
        _acting.pop(me, None)
        h.lock.release()


def _actor_stop(actor_id):
    try:
        h = yield _find(actor_id)
    except LookupError:
        return False
    yield h.lock.acquire()  # after the calls queued before this one
    _hosted.pop(actor_id, None)
    _stopped.add(actor_id)
    h.lock.release()
    return True


def spawn_actor(cls, *args, worker=None, **kwargs):
    """Makes cls(*args, **kwargs) on a worker (the next one in turn if worker
    is None) and gives its proxy at once. Inside corelet.run(workers=N) the
    workers are that cluster's; from plain code they are those of a cluster
    this process starts at its first spawn_actor (one worker per CPU;
    actor_processes() sets another number first), and a method call gives a
    concurrent.futures.Future."""
    n = num_workers()
    if n == 0:
        client = _client()
        if worker is None:
            worker = next(_turn) % client.processes
        if not 0 <= worker < client.processes:
            raise ValueError(f"corelet.spawn_actor: no worker {worker} (workers: 0..{client.processes - 1})")
        actor_id = f"{os.getpid()}.plain.{next(_ids)}"
        proxy = ActorProxy(worker, actor_id, getattr(cls, "__qualname__", "actor"))
        payload = dumps_call(_actor_create, (actor_id, cls, args, kwargs, proxy), {}, by_value=True)
        client.call(worker, payload)  # calls made meanwhile wait for it there
        return proxy
    if worker is None:
        worker = next(_turn) % n
    _check_worker(worker, "spawn_actor")
    actor_id = f"{os.getpid()}.{this_worker()}.{next(_ids)}"
    proxy = ActorProxy(worker, actor_id, getattr(cls, "__qualname__", "actor"))
    payload = dumps_call(_actor_create, (actor_id, cls, args, kwargs, proxy), {})
    spawn(_call_payload, worker, payload, name=f"spawn_actor({proxy._name})")
    return proxy


def stop_actor(proxy):
    """The actor ends after the calls queued before; gives True if it was there
    (an operation in a tasklet, a Future in plain code)."""
    if num_workers() == 0:
        return _client().call(proxy._worker, dumps_call(_actor_stop, (proxy._id,), {}))
    return call_on(proxy._worker, _actor_stop, proxy._id)


def sender():
    """Inside an actor's method: the proxy of the actor that made the call
    (None if a plain tasklet made it)."""
    return _caller.get(current_id())


def _reg_set(name, proxy):
    _registry[name] = proxy


def _reg_get(name):
    return _registry.get(name)


def register(name, proxy):
    """Operation: names proxy in the registry (kept by worker 0); a second
    register of the name replaces it."""
    if not isinstance(proxy, ActorProxy):
        raise TypeError(f"corelet.register: {proxy!r} is not an actor proxy")
    if num_workers() == 0:
        return _client().call(0, dumps_call(_reg_set, (str(name), proxy), {}))
    return call_on(0, _reg_set, str(name), proxy)


def whereis(name):
    """The proxy registered under name, or None (an operation in a tasklet,
    a Future in plain code)."""
    if num_workers() == 0:
        return _client().call(0, dumps_call(_reg_get, (str(name),), {}))
    return call_on(0, _reg_get, str(name))


# ---- actors from plain code: a cluster of this process's own ----------------------

_client_lock = None
_the_client = None
_client_processes = None


def actor_processes(n):
    """From plain code, before the first spawn_actor: the worker processes of
    the cluster that hosts this process's actors (default: one per CPU)."""
    global _client_processes
    if _the_client is not None:
        raise ValueError("corelet.actor_processes: the actor cluster runs already")
    if n < 1:
        raise ValueError("corelet.actor_processes: at least 1")
    _client_processes = n


class _Client:
    """The socket to the actor cluster (corelet._actor_host) and the thread
    that completes the Futures of its replies."""

    def __init__(self, processes):
        self._call, self._reply = CALL, REPLY
        self.processes = processes
        self._futures = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._sock, self._host = start_host("corelet._actor_host", processes)
        self._reader = threading.Thread(target=self._read, name="corelet actor replies", daemon=True)
        self._reader.start()

    def call(self, worker, payload):
        f = concurrent.futures.Future()
        f.set_running_or_notify_cancel()
        with self._lock:
            call_id = next(self._ids)
            self._futures[call_id] = f
        try:
            with self._send_lock:
                self._sock.sendall(self._call.pack(call_id, worker, len(payload)) + payload)
        except OSError as e:
            with self._lock:
                self._futures.pop(call_id, None)
            raise RuntimeError(f"corelet: the actor cluster is gone: {e}") from e
        return f

    def _read(self):
        f = self._sock.makefile("rb", buffering=1 << 16)
        try:
            while True:
                try:
                    head = f.read(self._reply.size)
                    if len(head) < self._reply.size:
                        break
                    call_id, n = self._reply.unpack(head)
                    data = f.read(n)
                except OSError:
                    break
                with self._lock:
                    fut = self._futures.pop(call_id, None)
                if fut is None:
                    continue
                try:
                    status, value = loads(data)
                    if status == "ok":
                        fut.set_result(value)
                    else:
                        raise_remote(value)
                except BaseException as e:  # noqa: BLE001
                    fut.set_exception(e)
        finally:
            with self._lock:
                pending, self._futures = self._futures, {}
            for fut in pending.values():
                fut.set_exception(RuntimeError("corelet: the actor cluster ended"))

    def close(self):
        try:
            self._sock.shutdown(2)
        except OSError:
            pass
        try:
            self._host.wait(5)
        except Exception:  # noqa: BLE001
            self._host.kill()
        self._sock.close()


def _client():
    global _the_client, _client_lock
    if _the_client is None:
        if _client_lock is None:
            _client_lock = threading.Lock()
        with _client_lock:
            if _the_client is None:
                n = _client_processes or len(os.sched_getaffinity(0))
                _the_client = _Client(n)
                atexit.register(_the_client.close)
    return _the_client

