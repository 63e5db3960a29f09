"""The cluster behind a corelet.Pool made in plain code (see _pool.py).

Run as ``python3 -m corelet._pool_host FD PROCESSES MAXTASKS`` would run
it, in a process the program's zygote forked (see _host.py): a clean
interpreter, so nothing of the Pool owner's threads and locks is copied
into the workers. It inherits the Pool's queues (shared memory the owner
made, in memfds): one inbound queue per computing worker, which only the
owner puts into, and one result queue that the workers put into and only
the owner reads. Work never passes through this process: the owner puts a
bundle (the items of consecutive chunks of one job) into a worker's queue
and reads the worker's reply from the result queue (see _pool.py for the
messages).

Worker 0 controls: it runs each computing worker's serve loop as one long
remote call. When a worker dies the call fails with WorkerLost; the
controller puts a LOST notice into the result queue (after everything the
dead worker put there) and waits for the owner's ACK on the socket FD
before the replacement serves, so the owner can tell from the worker's
queue which bundle the dead one had taken. With MAXTASKS
(maxtasksperchild; 0: none) a serve loop ends after that many bundles; the
controller kills the idle worker and the replacement serves on. When the
owner closes the inbound queues (Pool.close), the workers finish what is in
them and the cluster stops; when the owner goes away (the socket's end),
the queues are closed for it.
"""

import os
import queue
import signal
import socket
import sys

import corelet
from corelet import _corelet, _spawning
from corelet._host import adopt_authkey
from corelet._shared_queue import SharedQueue
from corelet._pool import _ACK, _LOST, _NOTE, _REPLY, _TASK, _run_bundle
from corelet._wire import dumps, dumps_call, loads, pack_exception

_SERVING = "a corelet.Pool worker's serve loop"  # what WorkerLost says a worker ran
_PLAIN_WAIT = 0.0005  # seconds a serve loop waits for its next bundle before it parks

# Set in the host before corelet.run: the workers, forked from it (the
# replacements too), inherit them.
_inbound = []
_results = None


def _serve(index, maxtasks):
    """Worker index+1's serve loop (a tasklet): bundles from its queue,
    replies to the result queue, in order. It parks while the queue is
    empty, so the worker's scheduler goes on meanwhile (it must, to take
    part in the cluster's handling of another worker's death); each bundle
    runs as plain code, as _pool._run_chunk says. Ends "closed" when its
    queue is closed and empty, or "retire" after maxtasks bundles."""
    inbound, results = _inbound[index], _results
    done = 0
    while True:
        try:
            # The next bundle of a busy caller comes within microseconds:
            # waited for as plain code it is taken at once (a parked tasklet
            # is woken through its scheduler, tens of microseconds later).
            # A short wait only: the scheduler runs nothing meanwhile.
            try:
                msg = _corelet._plain_call(inbound.get, True, _PLAIN_WAIT)
            except queue.Empty:
                msg = yield inbound.get()
        except EOFError:  # closed and empty
            return "closed"
        job, first, n = _TASK.unpack_from(msg)
        body = _corelet._plain_call(_run_task, msg, n)
        del msg
        head = _NOTE.pack(_REPLY, index, job, first)
        try:
            op = results.put(head + body)
        except ValueError:  # larger than the result queue's ring
            e = ValueError(
                f"corelet.Pool: the results of a chunk take {len(body)} bytes pickled, more than the pool's "
                f"queues hold ({results._q.capacity} bytes; Pool(ring_bytes=...) sets it)"
            )
            op = results.put(head + dumps(("err", pack_exception(e))))
        if op is not None:  # the ring is full: wait for room
            yield op
        done += 1
        if maxtasks and done >= maxtasks:
            return "retire"


def _run_task(msg, n):
    view = memoryview(msg)
    try:
        return dumps(("ok", _run_bundle(bytes(view[_TASK.size : _TASK.size + n]), view[_TASK.size + n :])))
    except BaseException as e:  # noqa: BLE001 - a result that cannot be sent: its bundle fails
        return dumps(("err", pack_exception(e)))


def _controller(fd, processes, maxtasks):
    sock = corelet.socket.wrap(socket.socket(fileno=fd))
    acks = [corelet.Channel(1) for _ in range(processes)]

    def reader():
        # ACKs from the owner; its end of the socket means it is gone (or
        # closed the pool): the workers are let go.
        while True:
            try:
                data = yield sock.recv_exactly(_ACK.size)
            except OSError:
                data = None
            if data is None:
                break
            (index,) = _ACK.unpack(data)
            if 0 <= index < processes:
                yield acks[index].send(True)
        for q in _inbound:
            q._q.close()
        for ch in acks:  # a controller waiting for an ACK goes on
            ch.close()

    def serve_worker(index):
        worker = index + 1
        call = dumps_call(_serve, (index, maxtasks), {})
        while True:
            while not corelet.worker_alive(worker):  # a replacement is starting
                yield corelet.sleep(0.002)
            pid = corelet.worker_pid(worker)
            try:
                reply = yield _corelet._remote_call(worker, call, _SERVING)
            except corelet.WorkerLost as e:
                if not e.sent:
                    continue  # refused before it left: the replacement serves
                # The cluster's words for how it ended ("corelet: worker 1 (pid
                # 7) was killed by signal 9 (Killed)"); the owner names its job.
                described = str(e).removesuffix(" while running " + _SERVING)
                note = _NOTE.pack(_LOST, index, 0, 0) + dumps((e.worker, e.pid, e.signal, e.exitcode, described))
                op = _results.put(note)  # done at once (the ring has room), or an operation
                if op is not None:
                    yield op
                try:
                    yield acks[index].recv()
                except corelet.ChannelClosed:  # the owner is gone: its queues are closed
                    pass
                continue
            status, value = loads(reply)
            if status != "ok" or value == "closed":
                return
            # Retired: it is idle now, so killing it loses nothing; the
            # cluster starts its replacement.
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            while corelet.worker_pid(worker) in (0, pid) or not corelet.worker_alive(worker):
                yield corelet.sleep(0.002)

    r = corelet.spawn(reader, name="corelet.Pool owner's ACKs")
    servers = [corelet.spawn(serve_worker, i, name=f"corelet.Pool serve loop of worker {i + 1}") for i in range(processes)]
    for s in servers:
        yield s.join()
    r.cancel()
    sock.close()


def main():
    global _results
    fd, processes, maxtasks = (int(a) for a in sys.argv[1:4])
    adopt_authkey(fd)
    fds = _spawning.inherited_fds
    if len(fds) != processes + 1:
        sys.exit(f"corelet.Pool host: {len(fds)} queue descriptors inherited, {processes + 1} expected")
    _results = SharedQueue._over(_corelet.ShmQueue.attach(fds[0]))
    _inbound[:] = [SharedQueue._over(_corelet.ShmQueue.attach(f)) for f in fds[1:]]
    for f in fds:
        os.close(f)
    # A pool's worker runs one task at a time, and long CPU-bound tasks are
    # what it is for: no stall reports (multiprocessing's workers make none).
    corelet.set_stall_threshold(0)
    # quiet: a dead worker is reported to the Pool's caller as WorkerLost, not on
    # stderr; not pinned: several pools (and the caller's own threads) share the CPUs;
    # small rings: only the controller's calls cross them
    corelet.run(
        _controller, fd, processes, maxtasks, workers=processes + 1, ring_bytes=1 << 16, shutdown_timeout=2.0,
        quiet=True, pin=False,
    )


if __name__ == "__main__":
    main()
