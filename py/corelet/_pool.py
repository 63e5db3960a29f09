"""corelet.Pool: multiprocessing.Pool's API over corelet's workers.

From plain code (no corelet.run around it) a Pool starts a cluster of its own:
a host (``corelet._pool_host``, forked by the program's zygote, a clean
interpreter started by exec once, so that threads and locks of this process
never reach the workers; see _host.py) forks one worker per process asked
for. Work goes out in bundles (the items of consecutive chunks of one job)
straight to the workers, over queues in shared memory that this process
makes and the host's workers inherit: one inbound queue per worker, at
most two bundles in it at a time (the rest wait here, and go to the first
worker that answers), and one result queue that every worker answers into
and a thread of this process reads.

Inside ``corelet.run(main, workers=N)`` a Pool uses that cluster's workers
directly, and its waiting methods are operations (``r = yield pool.map(...)``,
``r = await pool.map(...)``).

A worker that dies fails the chunks it was running with WorkerLost (worker,
pid, signal) within a second; a new worker takes its place and the Pool goes
on. Exceptions raised by the function arrive with their type, message and
the remote traceback (as __cause__).
"""

import collections
import itertools
import multiprocessing
import os
import queue
import select
import struct
import threading
import time
import traceback
import types
import weakref

from ._cluster import _call_payload
from ._corelet import Channel, ShmQueue, WorkerLost, _plain_call, num_workers, spawn, this_worker
from ._host import join_thread, start_host
from ._shared_queue import SharedQueue
from ._wire import callable_name, dumps, dumps_call, loads, pack_exception, raise_remote

__all__ = ["Pool", "AsyncResult", "TimeoutError"]

TimeoutError = multiprocessing.TimeoutError  # noqa: A001 - multiprocessing's name, for drop-in use

# The messages between a Pool and its workers (see _pool_host for who puts
# what where). Into a worker's inbound queue: _TASK (job id, the index of
# the bundle's first chunk, the length of the job's payload), the job's
# payload (_job_payload: the initializer, the function), the bundle's
# pickled chunks. Into the result queue: _NOTE (kind, worker index, job,
# first) and a pickle (REPLY: ("ok", [(status, value) per chunk]) or
# ("err", a packed exception for the whole bundle); LOST: the dead worker's
# (worker id, pid, signal, exit code, the cluster's words for how it ended));
# STOP ends the reader. On the socket,
# to the host: _ACK (a worker index) once its LOST notice is handled.
_TASK = struct.Struct("<QQI")
_NOTE = struct.Struct("<BIQQ")
_REPLY, _LOST, _STOP = 1, 2, 3
_ACK = struct.Struct("<I")
_FRAME_BYTES = 9  # what a queue's ring takes per message besides it (ipc::Queue::kFrameBytes)
_RING = 1 << 30  # bytes of each queue's ring: only the pages in use take memory (see ipc/queue.hpp)
_DEPTH = 2  # bundles in a worker's queue at most: one it runs, one it takes next


# ---- what a worker runs -----------------------------------------------------------

_initialized = set()
_functions = {}  # (pool token, job) -> (init, fn, star), the latest few jobs


def _run_chunk(init, fn, items, star):
    """One chunk in a worker: fn over items (initializer first, once per
    process), as plain code: corelet's waits in them (a Queue.get, a Pipe's
    recv, a lock) block the worker, as in multiprocessing's, rather than
    give the operations a tasklet would wait on."""
    return _plain_call(_chunk_body, init, fn, items, star)


def _chunk_body(init, fn, items, star):
    if init is not None and init[0] not in _initialized:
        _initialized.add(init[0])
        init[1](*init[2])
    if star:
        return [fn(*x) for x in items]
    return [fn(x) for x in items]


def _run_bundle(job_payload, bundle_payload):
    """A bundle of chunks of one job in a worker; each chunk succeeds or fails
    on its own, as if it had come alone. The job (initializer, function) is
    decoded once per distinct payload: a function sent again and again is
    the same function object here, with its module state, as in a
    multiprocessing worker."""
    job = _functions.get(job_payload)
    if job is None:
        job = loads(job_payload)
        if len(_functions) >= 64:
            _functions.pop(next(iter(_functions)))
        _functions[job_payload] = job
    init, fn, star = job
    out = []
    for items in loads(bundle_payload):
        try:
            out.append(("ok", _run_chunk(init, fn, items, star)))
        except BaseException as e:  # noqa: BLE001
            out.append(("err", pack_exception(e)))
    return out


def _dumps_items(bundle):
    try:
        return dumps(bundle)
    except TypeError:
        for chunk in bundle:
            for item in chunk:
                try:
                    dumps(item)
                except TypeError as e:
                    # The pickler's own error (dumps says which object in a
                    # TypeError caused by it), as multiprocessing raises it.
                    own = e.__cause__ if e.__cause__ is not None else e
                    own.add_note(f"corelet.Pool: item {item!r:.80} cannot be sent to the workers")
                    raise own from None
        raise


def _bundles(nchunks, workers):
    """Sizes of the bundles that carry nchunks chunks: at least 4 per worker
    (while there are chunks enough), at most 256 chunks each."""
    count = min(nchunks, max(4 * workers, -(-nchunks // 256)))
    base, extra = divmod(nchunks, count) if count else (0, 0)
    return [base + (1 if i < extra else 0) for i in range(count)]


def _chunks(items, chunksize, workers):
    if chunksize is None:
        chunksize, extra = divmod(len(items), workers * 4)
        if extra:
            chunksize += 1
    if chunksize < 1:
        chunksize = 1
    return [items[i : i + chunksize] for i in range(0, len(items), chunksize)]


# ---- results --------------------------------------------------------------------


class AsyncResult:
    """multiprocessing's AsyncResult: get(timeout), wait(timeout), ready(),
    successful(). callback / error_callback run in the Pool's result thread."""

    def __init__(self, nchunks, single, callback=None, error_callback=None):
        self._chunks = [None] * nchunks
        self._left = nchunks
        self._single = single
        self._error = None
        self._event = threading.Event()
        self._callback = callback
        self._error_callback = error_callback
        self._lock = threading.Lock()
        if nchunks == 0:
            self._finish()

    def _set(self, index, ok, value):
        with self._lock:
            if self._event.is_set():
                return
            if ok:
                self._chunks[index] = value
                self._left -= 1
                done = self._left == 0
            else:
                self._error = value
                done = True
        if done:
            self._finish()

    def _finish(self):
        self._event.set()
        try:
            if self._error is None and self._callback:
                self._callback(self._value())
            elif self._error is not None and self._error_callback:
                self._error_callback(self._error)
        except Exception:  # noqa: BLE001 - as multiprocessing: a failing callback is reported, not raised
            traceback.print_exc()

    def _value(self):
        if self._single:
            return self._chunks[0][0]
        return list(itertools.chain.from_iterable(self._chunks))

    def ready(self):
        return self._event.is_set()

    def successful(self):
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._error is None

    def wait(self, timeout=None):
        self._event.wait(timeout)

    def get(self, timeout=None):
        if not self._event.wait(timeout):
            raise TimeoutError
        if self._error is not None:
            raise self._error
        return self._value()


# ---- the Pool in plain code: a cluster of its own ----------------------------------


def _watch_host(pidfd, results):
    """A Pool's thread: once its host has ended (after close, or killed),
    STOP follows whatever the workers put into the result queue."""
    try:
        select.select([pidfd], [], [])
    finally:
        os.close(pidfd)
    results.put(_NOTE.pack(_STOP, 0, 0, 0))



class Pool:
    """multiprocessing.Pool over corelet workers. See the module docstring."""

    def __new__(cls, *args, **kwargs):
        if cls is Pool and this_worker() >= 0:
            return super().__new__(ClusterPool)
        return super().__new__(cls)

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None, *, ring_bytes=_RING):
        if processes is None:
            processes = len(os.sched_getaffinity(0))
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None and (not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0):
            raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._processes = processes
        self._maxtasks = maxtasksperchild or 0
        self._init = (os.urandom(8), initializer, tuple(initargs)) if initializer else None
        self._state = "run"
        self._jobs = {}  # job id -> [its AsyncResult, its function's name]
        self._payloads = {}  # (function, star) -> its job payload (see _job_payload)
        self._next_job = itertools.count()
        # _lock guards the jobs, the bundles in flight and waiting, and every
        # put into an inbound queue (so a LOST notice sees a queue only this
        # process puts into standing still).
        self._lock = threading.Lock()
        self._flight = [collections.deque() for _ in range(processes)]  # per worker: (job, first) sent, in order
        self._waiting = collections.deque()  # (job, first, message) for the first worker with room
        self._warm = 0  # the worker that answered last
        # ring_bytes: each queue's ring; one message (a bundle, a reply) may not be larger.
        self._results = SharedQueue._over(ShmQueue(ring_bytes, 0, True))
        self._inbound = [SharedQueue._over(ShmQueue(ring_bytes, 0, True)) for _ in range(processes)]
        fds = [q._q.fileno() for q in (self._results, *self._inbound)]
        self._sock, self._host = start_host("corelet._pool_host", processes, self._maxtasks, fds=fds)
        self._imaps = weakref.WeakSet()  # the _PlainImaps still reading their iterables
        self._reader = threading.Thread(target=self._read_results, name="corelet.Pool results", daemon=True)
        self._reader.start()
        # The host's end (killed, or done after close) stops the reader, after
        # everything the workers answered.
        self._watcher = threading.Thread(
            target=_watch_host, args=(os.dup(self._host._pidfd), self._results), name="corelet.Pool host watch", daemon=True
        )
        self._watcher.start()

    # -- plumbing --
    def _job_payload(self, fn, star):
        """(initializer, fn, star) encoded, by value. A plain function without
        a closure is encoded once and the bytes kept (64 at most): encoding a
        function by value costs tens of microseconds, more than the rest of a
        call's round trip. Its globals go as they were at its first call, as a
        fork-started multiprocessing worker has them as they were at fork."""
        cacheable = type(fn) is types.FunctionType and fn.__closure__ is None
        if cacheable:
            payload = self._payloads.get((fn, star))
            if payload is not None:
                return payload
        payload = dumps((self._init, fn, star), by_value=True)
        if cacheable:
            if len(self._payloads) >= 64:  # submits from several threads may evict at once
                self._payloads.pop(next(iter(self._payloads), None), None)
            self._payloads[(fn, star)] = payload
        return payload

    def _send_locked(self, job, first, message):
        """With _lock held: message to the worker with the fewest bundles in
        its queue, or to the waiting line if every queue holds _DEPTH. Ties
        go to the worker that answered last: it may not be asleep yet (a
        queue's getter spins a moment before it sleeps), so it starts at
        once, where a worker asleep takes a wakeup across CPUs first."""
        n = self._processes
        best = None
        for i in range(n):
            w = (self._warm + i) % n
            if len(self._flight[w]) < _DEPTH and (best is None or len(self._flight[w]) < len(self._flight[best])):
                best = w
        if best is None:
            self._waiting.append((job, first, message))
            return
        self._inbound[best].put(message)
        self._flight[best].append((job, first))

    def _read_results(self):
        try:
            while True:
                try:
                    msg = self._results.get()
                except EOFError:
                    break
                kind, worker, job, first = _NOTE.unpack_from(msg)
                if kind == _STOP:
                    break
                if kind == _REPLY:
                    self._reply(worker, job, first, msg)
                elif kind == _LOST:
                    self._lost(worker, loads(memoryview(msg)[_NOTE.size :]))
                del msg
        finally:
            self._fail_all(RuntimeError("corelet.Pool: the pool's cluster ended"))

    def _reply(self, worker, job, first, msg):
        # A function of its own: none of a reply's objects stays referenced
        # by the reader thread until the next one (the caller's results
        # are the caller's alone once map returns).
        with self._lock:
            sent = self._flight[worker]
            if sent and sent[0] == (job, first):  # a worker answers in order
                sent.popleft()
            self._warm = worker
            if self._waiting:
                self._send_locked(*self._waiting.popleft())
            entry = self._jobs.get(job)
            self._close_inbound_if_done_locked()
        if entry is not None:
            self._deliver(entry, job, first, memoryview(msg)[_NOTE.size :])

    def _lost(self, worker, exit_info):
        """Worker index `worker` died: the bundle it had taken from its
        queue fails with WorkerLost naming the job's function; the bundles
        still in its queue go to its replacement, which serves once the host
        has our ACK (the queue stands still till then: nothing else takes
        from it, and we put into it under _lock)."""
        wid, pid, sig, exitcode, described = exit_info
        with self._lock:
            sent = self._flight[worker]
            taken = len(sent) - self._inbound[worker].qsize()
            lost = [sent.popleft() for _ in range(max(0, taken))]
            entries = [(self._jobs.get(job), job, first) for job, first in lost]
        try:
            self._sock.sendall(_ACK.pack(worker))
        except OSError:
            pass  # the host is gone: the reader ends with it
        for entry, job, first in entries:
            if entry is None:
                continue
            e = WorkerLost(f"{described} while running {entry[1]}")
            e.worker, e.pid, e.signal, e.exitcode, e.sent = wid, pid, sig, exitcode, True
            entry[0]._set(first, False, e)
            self._forget_if_done(entry, job)

    def _deliver(self, entry, job, first, data):
        result = entry[0]
        try:
            status, replies = loads(data)
            if status != "ok":  # the whole bundle failed (a result that cannot be sent...)
                raise_remote(replies)
        except BaseException as e:  # noqa: BLE001 - fails its job, not the thread
            result._set(first, False, e)
            replies = []
        for i, (status, value) in enumerate(replies):
            if status == "ok":
                result._set(first + i, True, value)
            else:
                try:
                    raise_remote(value)
                except BaseException as e:  # noqa: BLE001
                    result._set(first + i, False, e)
        self._forget_if_done(entry, job)

    def _forget_if_done(self, entry, job):
        if entry[0].ready():
            with self._lock:
                if self._jobs.get(job) is entry:
                    del self._jobs[job]

    def _close_inbound_if_done_locked(self):
        # After close(): once every bundle is in a worker's queue, the queues
        # close; the workers finish what is in them and the cluster stops.
        if self._state != "run" and not self._waiting and not self._imaps:
            for q in self._inbound:
                q._q.close()

    def _fail_all(self, exc):
        with self._lock:
            jobs, self._jobs = self._jobs, {}
            self._waiting.clear()
        for entry in jobs.values():
            entry[0]._set(0, False, exc)

    def _submit(self, fn, chunks, star, single, callback=None, error_callback=None, closing=False):
        # closing: an imap given before close() still sends the rest of its iterable.
        if self._state != "run" and not (closing and self._state == "close"):
            raise ValueError("Pool not running")
        try:
            job_payload = self._job_payload(fn, star)
        except TypeError:
            dumps_call(fn, (), {}, by_value=True)  # says whether the function is the culprit
            raise TypeError("corelet.Pool: the initializer or its arguments cannot be sent to the workers") from None
        result = AsyncResult(len(chunks), single, callback, error_callback)
        if not chunks:
            return result
        # With maxtasksperchild a bundle is one chunk: a worker counts its tasks by its bundles.
        sizes = [1] * len(chunks) if self._maxtasks else _bundles(len(chunks), self._processes)
        bundles = []
        first = 0
        for size in sizes:
            bundles.append((first, _dumps_items(chunks[first : first + size])))
            first += size
        job = next(self._next_job)
        ring = self._results._q.capacity
        with self._lock:
            if not self._reader.is_alive():
                raise RuntimeError("corelet.Pool: the pool's cluster is gone")
            self._jobs[job] = [result, callable_name(fn)]
            for first, payload in bundles:
                message = b"".join([_TASK.pack(job, first, len(job_payload)), job_payload, payload])
                if len(message) + _FRAME_BYTES > ring:
                    self._jobs.pop(job, None)
                    raise ValueError(
                        f"corelet.Pool: the items of a chunk take {len(message)} bytes pickled, more than the "
                        f"pool's queues hold ({ring} bytes; Pool(ring_bytes=...) sets it)"
                    )
                self._send_locked(job, first, message)
        return result

    # -- multiprocessing.Pool's methods --
    def apply_async(self, func, args=(), kwds=None, callback=None, error_callback=None):
        if kwds:
            return self._submit(_Kw(func, kwds), [[tuple(args)]], True, True, callback, error_callback)
        return self._submit(func, [[tuple(args)]], True, True, callback, error_callback)

    def apply(self, func, args=(), kwds=None):
        return self.apply_async(func, args, kwds).get()

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        items = list(iterable)
        return self._submit(func, _chunks(items, chunksize, self._processes), False, False, callback, error_callback)

    def map(self, func, iterable, chunksize=None):
        return self.map_async(func, iterable, chunksize).get()

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        items = [tuple(x) for x in iterable]
        return self._submit(func, _chunks(items, chunksize, self._processes), True, False, callback, error_callback)

    def starmap(self, func, iterable, chunksize=None):
        return self.starmap_async(func, iterable, chunksize).get()

    def imap(self, func, iterable, chunksize=1):
        """An iterator of the results in order, each as soon as its chunk is
        done (next(timeout) as multiprocessing's). The iterable is read as
        the results are taken: at most a few chunks per worker ahead."""
        return _PlainImap(self, func, iterable, chunksize, True)

    def imap_unordered(self, func, iterable, chunksize=1):
        """As imap, the results as chunks finish, in any order."""
        return _PlainImap(self, func, iterable, chunksize, False)

    def close(self):
        """No more work; the workers end once the work given is done (join).
        An imap given before reads the rest of its iterable first (as
        multiprocessing's task thread goes on reading it after close)."""
        if self._state == "run":
            self._state = "close"
            for it in list(self._imaps):
                it._read_all()
            with self._lock:
                self._close_inbound_if_done_locked()

    def terminate(self):
        """Stops the workers at once; work not done fails."""
        if self._state == "terminated":
            return
        self._state = "terminated"
        for it in list(self._imaps):
            it._wake()  # a reader waiting for room ends
        if self._host.poll() is None:
            self._host.kill()  # the workers die with it (they watch their parent)
        self._host.wait()
        join_thread(self._reader, timeout=5)
        join_thread(self._watcher, timeout=5)
        self._sock.close()

    def join(self):
        if self._state == "run":
            raise ValueError("Pool is still running")
        self._host.wait()
        join_thread(self._reader)
        join_thread(self._watcher)
        self._sock.close()

    def __enter__(self):
        if self._state != "run":
            raise ValueError("Pool not running")
        return self

    def __exit__(self, *exc):
        self.terminate()
        return False

    def __del__(self):
        if getattr(self, "_state", "terminated") != "terminated" and getattr(self, "_host", None):
            try:
                self.terminate()
            except Exception:  # noqa: BLE001
                pass

    def __repr__(self):
        return f"<corelet.Pool state={self._state} processes={self._processes}>"


class _Failed:
    """A chunk's error, in the stream of imap_unordered's finished chunks."""

    def __init__(self, exc):
        self.exc = exc


class _End:
    """The last entry of an imap's stream: how many chunks went out, and the
    iterable's error if it raised one."""

    def __init__(self, submitted, error):
        self.submitted = submitted
        self.error = error


def _left(deadline):
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class _PlainImap:
    """Pool.imap / imap_unordered in plain code. A reader thread takes the
    iterable's items chunk by chunk and submits them, at most `window` chunks
    ahead of the results taken (it waits for room, it does not poll); once
    the pool is closed it reads the rest at once, and a terminated pool ends
    it. next(timeout) as multiprocessing's IMapIterator. An error of the
    iterable is raised in its place, after the results of the items before
    it; a chunk's error in the chunk's place, and the results after it go on."""

    def __init__(self, pool, func, iterable, chunksize, ordered):
        if pool._state != "run":
            raise ValueError("Pool not running")
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize:n}")
        self._pool = pool
        self._func = func
        self._ordered = ordered
        self._window = 4 * pool._processes
        self._room = threading.Condition()  # guards _ahead and _unbounded
        self._ahead = 0  # chunks submitted and not yet taken
        self._unbounded = False  # the pool is closing: read everything now
        # Ordered: the AsyncResults in order. Unordered: the chunks' values
        # (or _Failed) as they finish. Both end with an _End.
        self._q = queue.SimpleQueue()
        self._out = collections.deque()
        self._head = None  # an AsyncResult whose next(timeout) timed out
        self._taken = 0
        self._end = None
        # A daemon thread: a pool terminated while the iterable blocks is
        # not held up by it.
        self._thread = threading.Thread(
            target=self._read, args=(iter(iterable), chunksize), name="corelet.Pool imap", daemon=True
        )
        pool._imaps.add(self)
        self._thread.start()

    def _wake(self):
        with self._room:
            self._room.notify_all()

    def _read_all(self):
        """Pool.close(): submit the rest of the iterable before the pool stops taking work."""
        with self._room:
            self._unbounded = True
            self._room.notify_all()
        self._thread.join()

    def _wait_for_room(self):
        with self._room:
            while self._ahead >= self._window and not self._unbounded and self._pool._state != "terminated":
                self._room.wait()
            self._ahead += 1
        return self._pool._state != "terminated"

    def _read(self, it, chunksize):
        submitted, error = 0, None
        try:
            while self._wait_for_room():
                chunk, last = [], False
                try:
                    for _ in range(chunksize):
                        chunk.append(next(it))
                except StopIteration:
                    last = True
                except BaseException as e:  # noqa: BLE001 - next() raises it in its place
                    error, last = e, True
                if chunk:
                    submitted += 1
                    self._send(chunk)
                if last:
                    break
        finally:
            self._pool._imaps.discard(self)
            self._q.put(_End(submitted, error))

    def _send(self, chunk):
        pool = self._pool
        try:
            if self._ordered:
                self._q.put(pool._submit(self._func, [chunk], False, False, closing=True))
            else:
                pool._submit(self._func, [chunk], False, False, callback=self._q.put,
                             error_callback=lambda e: self._q.put(_Failed(e)), closing=True)
        except BaseException as e:  # noqa: BLE001 - an item that cannot be sent: that chunk fails
            if self._ordered:
                failed = AsyncResult(1, False)
                failed._set(0, False, e)
                self._q.put(failed)
            else:
                self._q.put(_Failed(e))

    def _took_one(self):
        self._taken += 1
        with self._room:
            self._ahead -= 1
            self._room.notify()

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def next(self, timeout=None):
        """The next result; multiprocessing.TimeoutError if none comes within timeout."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while not self._out:
            if self._end is not None and (self._ordered or self._taken == self._end.submitted):
                error, self._end.error = self._end.error, None
                if error is not None:
                    raise error
                raise StopIteration
            v, self._head = self._head, None
            if v is None:
                try:
                    v = self._q.get(timeout=_left(deadline))
                except queue.Empty:
                    raise TimeoutError from None
            if isinstance(v, _End):
                self._end = v
                continue
            if self._ordered and not v._event.wait(_left(deadline)):
                self._head = v
                raise TimeoutError
            self._took_one()
            if self._ordered:
                self._out.extend(v.get())  # raises the chunk's error
            elif isinstance(v, _Failed):
                raise v.exc
            else:
                self._out.extend(v)
        return self._out.popleft()


class _Kw:
    """fn with keyword arguments, as one picklable callable (apply with kwds)."""

    def __init__(self, fn, kwds):
        self.fn = fn
        self.kwds = dict(kwds)

    @property
    def _wrapped_call(self):
        return self.fn

    def __call__(self, *args):
        return self.fn(*args, **self.kwds)


# ---- the Pool inside corelet.run(workers=N) -----------------------------------------


class ClusterPool(Pool):
    """A Pool inside corelet.run(main, workers=N): the cluster's own workers.
    Waiting methods are operations (yield or await them)."""

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None, **_ignored):
        n = num_workers()
        if processes is None:
            processes = n
        if not 1 <= processes <= n:
            raise ValueError(f"corelet.Pool: processes must be 1..{n} inside corelet.run(workers={n})")
        if maxtasksperchild is not None:
            raise ValueError("corelet.Pool: maxtasksperchild is not supported inside corelet.run(workers=N), whose workers are the cluster's")
        me = this_worker()
        # The other workers first (their chunks start while this one feeds), this one last.
        self._workers = [w for w in range(n) if w != me][: processes - 1] + [me]
        self._processes = processes
        self._init = (os.urandom(8), initializer, tuple(initargs)) if initializer else None
        self._state = "run"

    @types.coroutine
    def _run(self, fn, chunks, star):
        if self._state != "run":
            raise ValueError("Pool not running")
        payloads = [dumps_call(_run_chunk, (self._init, fn, c, star), {}) for c in chunks]
        what = callable_name(fn)
        results = [None] * len(payloads)
        cursor = [0]

        def feeder(worker):
            while cursor[0] < len(payloads):
                i = cursor[0]
                cursor[0] += 1
                results[i] = yield _call_payload(worker, payloads[i], what)

        # Interleaved, so that the first chunks go one to each worker.
        feeders = [spawn(feeder, w, name=f"Pool feeder for worker {w}") for _ in range(2) for w in self._workers]
        error = None
        for f in feeders:
            try:
                yield f.join()
            except BaseException as e:  # noqa: BLE001
                if error is None:
                    error = e
                    cursor[0] = len(payloads)  # nothing more goes out
        if error is not None:
            raise error
        return results

    @types.coroutine
    def map(self, func, iterable, chunksize=None):
        items = list(iterable)
        chunks = yield self._run(func, _chunks(items, chunksize, len(self._workers)), False)
        return list(itertools.chain.from_iterable(chunks))

    @types.coroutine
    def starmap(self, func, iterable, chunksize=None):
        items = [tuple(x) for x in iterable]
        chunks = yield self._run(func, _chunks(items, chunksize, len(self._workers)), True)
        return list(itertools.chain.from_iterable(chunks))

    @types.coroutine
    def apply(self, func, args=(), kwds=None):
        fn = _Kw(func, kwds) if kwds else func
        chunks = yield self._run(fn, [[tuple(args)]], True)
        return chunks[0][0]

    @staticmethod
    def _async(op, callback, error_callback, name):
        def body():
            try:
                result = yield op
            except BaseException as e:  # noqa: BLE001
                if error_callback:
                    error_callback(e)
                raise
            if callback:
                callback(result)
            return result

        return spawn(body, name=name)

    def apply_async(self, func, args=(), kwds=None, callback=None, error_callback=None):
        """A Task (join it for the result); the callbacks run in the Pool's worker."""
        return self._async(self.apply(func, args, kwds), callback, error_callback, "Pool.apply_async")

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        return self._async(self.map(func, iterable, chunksize), callback, error_callback, "Pool.map_async")

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        return self._async(self.starmap(func, iterable, chunksize), callback, error_callback, "Pool.starmap_async")

    def imap(self, func, iterable, chunksize=1):
        """An async iterator of the results in order (`async for r in
        pool.imap(f, xs)` in an async def tasklet)."""
        return self._imap(func, iterable, chunksize, True)

    def imap_unordered(self, func, iterable, chunksize=1):
        """An async iterator of the results as chunks finish."""
        return self._imap(func, iterable, chunksize, False)

    def _imap(self, func, iterable, chunksize, ordered):
        if self._state != "run":
            raise ValueError("Pool not running")
        items = list(iterable)
        chunks = _chunks(items, chunksize, len(self._workers))
        payloads = [dumps_call(_run_chunk, (self._init, func, c, False), {}) for c in chunks]
        what = callable_name(func)
        done = Channel(len(payloads) or 1)
        cursor = [0]

        def feeder(worker):
            while cursor[0] < len(payloads):
                i = cursor[0]
                cursor[0] += 1
                try:
                    r = yield _call_payload(worker, payloads[i], what)
                except BaseException as e:  # noqa: BLE001 - the iterator raises it
                    cursor[0] = len(payloads)
                    yield done.send((i, False, e))
                    return
                yield done.send((i, True, r))

        for _ in range(2):
            for w in self._workers:
                spawn(feeder, w, name=f"Pool.imap feeder for worker {w}")
        return _ImapIterator(done, len(payloads), ordered)


    def close(self):
        self._state = "close"

    def terminate(self):
        self._state = "terminated"

    def join(self):
        if self._state == "run":
            raise ValueError("Pool is still running")

    def __exit__(self, *exc):
        self.terminate()
        return False

    def __del__(self):
        pass


class _ImapIterator:
    def __init__(self, done, n, ordered):
        self._done = done
        self._left = n
        self._ordered = ordered
        self._next = 0
        self._waiting = {}
        self._out = []

    def __aiter__(self):
        return self

    async def __anext__(self):
        while not self._out:
            if self._ordered and self._next in self._waiting:
                self._out = list(self._waiting.pop(self._next))
                self._next += 1
                continue
            if self._left == 0:
                raise StopAsyncIteration
            i, ok, value = await self._done.recv()
            self._left -= 1
            if not ok:
                self._left = 0
                raise value
            if self._ordered:
                self._waiting[i] = value
            else:
                self._out = list(value)
        return self._out.pop(0)


