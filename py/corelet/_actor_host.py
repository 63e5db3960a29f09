"""The cluster behind actors made in plain code (see _actors.py).

Run as ``python3 -m corelet._actor_host FD PROCESSES`` would run it, in a
process the program's zygote forked (see _host.py): a clean interpreter
whose corelet.run(workers=PROCESSES) hosts the actors. Worker 0
relays: it reads (call id, worker, pickled call) frames from the socket FD,
makes each call on its worker and writes the reply back unread. When the
owner closes its side the cluster stops (and the actors with it).
"""

import socket
import sys

import corelet
from corelet._host import adopt_authkey
from corelet import _corelet
from corelet._actors import CALL, REPLY
from corelet._wire import dumps, pack_exception


def _relay(fd):
    sock = corelet.socket.wrap(socket.socket(fileno=fd))
    write = corelet.Lock()

    def one(call_id, worker, payload):
        try:
            reply = yield _corelet._remote_call(worker, payload)
        except BaseException as e:  # noqa: BLE001 - WorkerLost and the like go back to the caller
            reply = dumps(("err", pack_exception(e)))
        yield write.acquire()
        try:
            yield sock.sendall(REPLY.pack(call_id, len(reply)) + reply)
        except OSError:
            pass  # the owner is gone
        finally:
            write.release()

    while True:
        head = yield sock.recv_exactly(CALL.size)
        if head is None:
            break
        call_id, worker, n = CALL.unpack(head)
        payload = yield sock.recv_exactly(n)
        if payload is None:
            break
        corelet.spawn(one, call_id, worker, payload, name=f"relay of call {call_id}")
    sock.close()


def main():
    fd, processes = int(sys.argv[1]), int(sys.argv[2])
    adopt_authkey(fd)
    corelet.run(_relay, fd, workers=processes, quiet=True, shutdown_timeout=1.0, pin=False)


if __name__ == "__main__":
    main()
