"""The cluster behind a corelet.Pool made in plain code (see _pool.py).

Run as ``python3 -m corelet._pool_host FD PROCESSES RING_BYTES MAXTASKS``
would run it, in a process the program's zygote forked (see _host.py): a
clean interpreter, so nothing of the Pool owner's threads and locks is
copied into the workers. Worker 0 dispatches: it reads jobs (a function)
and bundles (the items of consecutive chunks) from the socket FD, runs each
bundle as one remote call on the worker of 1..PROCESSES with the fewest in
flight (two at most each) and writes the replies back unread (the owner unpickles them). When the
owner closes its side, the work in hand is finished and the cluster stops.
With MAXTASKS (maxtasksperchild; 0: none) a worker that has run that many
bundles (one chunk each then) gets no more work; once its last one is
answered it is killed, idle, and the cluster's replacement takes its place.
"""

import os
import signal
import socket
import sys

import corelet
from corelet._host import adopt_authkey
from corelet import _corelet
from corelet._pool import _BUNDLE, _FRAME, _JOB, _REPLY, _run_bundle, _split_job_payload
from corelet._wire import dumps, dumps_call, pack_exception


def _dispatcher(fd, maxtasks):
    sock = corelet.socket.wrap(socket.socket(fileno=fd))
    computers = list(range(1, corelet.num_workers()))
    work = corelet.Queue()
    write = corelet.Lock()
    jobs = {}  # job id -> [its function's payload, bundles not yet answered]
    in_flight_per_worker = 2

    def reader():
        while True:
            head = yield sock.recv_exactly(_FRAME.size)
            if head is None:
                break
            kind, job, first, n = _FRAME.unpack(head)
            payload = yield sock.recv_exactly(n)
            if payload is None:
                break
            if kind == _JOB:
                what, payload = _split_job_payload(payload)
                jobs[job] = [payload, first, what]  # `first` of a JOB frame: its bundle count
            elif kind == _BUNDLE:
                yield work.put((job, first, payload))
        yield work.put(None)

    in_flight = {w: 0 for w in computers}
    done = {w: 0 for w in computers}  # bundles answered by the worker's current process
    retiring = set()  # workers that reached maxtasks: no more work until replaced
    slots = corelet.Semaphore(len(computers) * in_flight_per_worker)
    turn = [0]

    def retire(worker):
        # Idle now: nothing in flight is lost. The cluster restarts the worker.
        pid = corelet.worker_pid(worker)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while not (corelet.worker_alive(worker) and corelet.worker_pid(worker) not in (0, pid)):
            yield corelet.sleep(0.002)
        done[worker] = 0
        retiring.discard(worker)

    def run_bundle(worker, job, first, payload):
        try:
            call = dumps_call(_run_bundle, (jobs[job][0], payload), {})
            while True:
                while not corelet.worker_alive(worker):  # a replacement is starting
                    yield corelet.sleep(0.002)
                try:
                    reply = yield _corelet._remote_call(worker, call, jobs[job][2])
                except corelet.WorkerLost as e:
                    if not e.sent:
                        continue  # refused before it left: send it to the replacement
                    reply = dumps(("err", pack_exception(e)))  # lost while it ran: its chunks fail
                except BaseException as e:  # noqa: BLE001
                    reply = dumps(("err", pack_exception(e)))
                break
            yield write.acquire()
            try:
                yield sock.sendall(_FRAME.pack(_REPLY, job, first, len(reply)) + reply)
            except OSError:
                pass  # the owner is gone: the work ends with the cluster
            finally:
                write.release()
        finally:
            in_flight[worker] -= 1
            if maxtasks:
                done[worker] += 1
                if done[worker] >= maxtasks:
                    retiring.add(worker)
                if worker in retiring and in_flight[worker] == 0:
                    corelet.spawn(retire, worker, name=f"retire worker {worker}")
            slots.release()
            entry = jobs[job]
            entry[1] -= 1
            if entry[1] == 0:
                del jobs[job]

    def dispatch():
        # Each bundle goes to the worker with the fewest in flight (ties: in
        # turn), at most two per worker at once.
        running = []
        while True:
            item = yield work.get()
            if item is None:
                break
            yield slots.acquire()
            n = len(computers)
            while True:
                order = [computers[(turn[0] + i) % n] for i in range(n) if computers[(turn[0] + i) % n] not in retiring]
                if order:
                    break
                yield corelet.sleep(0.001)  # every worker is being replaced
            turn[0] += 1
            worker = min(order, key=lambda w: in_flight[w])
            if maxtasks and done[worker] + in_flight[worker] + 1 >= maxtasks:
                retiring.add(worker)  # this bundle is its last
            in_flight[worker] += 1
            running.append(corelet.spawn(run_bundle, worker, *item))
            running = [t for t in running if not t.done()]
        for t in running:
            yield t.join()

    r = corelet.spawn(reader)
    d = corelet.spawn(dispatch)
    yield r.join()
    yield d.join()
    sock.close()


def main():
    fd, processes, ring_bytes, maxtasks = (int(a) for a in sys.argv[1:5])
    adopt_authkey(fd)
    # A pool's worker runs one task at a time, and long CPU-bound tasks are
    # what it is for: no stall reports (multiprocessing's workers make none).
    corelet.set_stall_threshold(0)
    # quiet: a dead worker is reported to the Pool's caller as WorkerLost, not on
    # stderr; not pinned: several pools (and the caller's own threads) share the CPUs
    corelet.run(
        _dispatcher, fd, maxtasks, workers=processes + 1, ring_bytes=ring_bytes, shutdown_timeout=2.0, quiet=True, pin=False
    )


if __name__ == "__main__":
    main()
