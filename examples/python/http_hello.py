#!/usr/bin/python3
"""An HTTP/1.1 "Hello, world!" server (keep-alive), one tasklet per
connection; with --workers N, one server per worker process, all on the
same port (SO_REUSEPORT), so that every core serves. Ctrl-C stops it.

    PYTHONPATH=build/release/python /usr/bin/python3 examples/python/http_hello.py 127.0.0.1:8080 --workers 2
"""

import argparse
import socket

import corelet

BODY = b"Hello, world!"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


async def serve_connection(conn):
    with conn:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = await conn.recv(65536)
                if not data:
                    return
                buf += data
            _head, buf = buf.split(b"\r\n\r\n", 1)  # requests without a body
            await conn.sendall(RESPONSE)


async def serve(host, port, announce):
    server = corelet.create_server((host, port), reuse_port=True)
    if announce:  # once a listener is up, a client is never refused
        print(f"http_hello on {host}:{port} ({announce})", flush=True)
    while True:
        conn, _addr = await server.accept()
        corelet.spawn(serve_connection, conn)


def main(host, port, workers):
    if workers:
        n = corelet.num_workers()
        tasks = [corelet.spawn_on(w, serve, host, port, f"{n} workers" if w == 0 else None) for w in range(n)]
        for t in tasks:
            yield t.join()
    else:
        yield serve(host, port, "one process")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("address", nargs="?", default="127.0.0.1:8080")
    ap.add_argument("--workers", type=int, default=0, help="worker processes (0: one process, no cluster)")
    a = ap.parse_args()
    host, port = a.address.rsplit(":", 1)
    # Take the port now (port 0: any free one), with SO_REUSEPORT, so that every
    # worker binds the same one; this socket stays bound (not listening).
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    probe.bind((host, int(port)))
    port = probe.getsockname()[1]
    try:
        if a.workers:
            corelet.run(main, host, port, a.workers, workers=a.workers)
        else:
            corelet.run(main, host, port, 0)
    except KeyboardInterrupt:
        pass
