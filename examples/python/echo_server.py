#!/usr/bin/python3
"""An echo server: one tasklet per connection, sockets through corelet's
reactor (io_uring, or epoll). With --clients N it also runs N clients against
itself and prints what they got back, then stops.

    PYTHONPATH=build/release/python /usr/bin/python3 examples/python/echo_server.py --clients 100
    PYTHONPATH=build/release/python /usr/bin/python3 examples/python/echo_server.py 127.0.0.1:7000
"""

import argparse

import corelet


async def echo(conn):
    with conn:
        while data := await conn.recv(65536):
            await conn.sendall(data)


async def serve(server):
    while True:
        conn, _addr = await server.accept()
        corelet.spawn(echo, conn)


async def client(addr, i):
    s = await corelet.create_connection(addr)
    with s:
        msg = f"hello {i}\n".encode() * 100
        await s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            got += await s.recv(65536)
        return got == msg


async def main(host, port, clients):
    server = corelet.create_server((host, port))
    addr = server.getsockname()
    print(f"echo server on {addr[0]}:{addr[1]}", flush=True)
    acceptor = corelet.spawn(serve, server)
    if clients == 0:
        await acceptor  # serves until Ctrl-C
        return
    tasks = [corelet.spawn(client, addr, i) for i in range(clients)]
    ok = sum([await t for t in tasks])
    print(f"{ok} of {clients} clients got their bytes back")
    acceptor.cancel()
    server.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("address", nargs="?", default="127.0.0.1:0")
    ap.add_argument("--clients", type=int, default=0)
    a = ap.parse_args()
    host, port = a.address.rsplit(":", 1)
    try:
        corelet.run(main, host, int(port), a.clients)
    except KeyboardInterrupt:
        pass
