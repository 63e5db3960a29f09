"""Sockets and files for tasklets through the reactor: echo over loopback,
errors, timeouts, close and cancel while waiting, files, both backends."""

import errno
import os
import subprocess
import sys
import textwrap

import pytest

import corelet


def run(main, *args):
    return corelet.run(main, *args)


async def _echo(conn):
    with conn:
        while data := await conn.recv(65536):
            await conn.sendall(data)


async def _serve(server):
    while True:
        conn, _addr = await server.accept()
        corelet.spawn(_echo, conn)


def _client(addr, i):
    s = yield corelet.create_connection(addr)
    with s:
        msg = (b"%d:" % i) * 5000  # larger than one segment: several sends and recvs
        yield s.sendall(msg)
        got = bytearray()
        while len(got) < len(msg):
            chunk = yield s.recv(65536)
            assert chunk, "early end of stream"
            got += chunk
        return bytes(got) == msg


def echo_round(clients):
    async def main():
        server = corelet.create_server(("127.0.0.1", 0))
        acceptor = corelet.spawn(_serve, server)
        tasks = [corelet.spawn(_client, server.getsockname(), i) for i in range(clients)]
        results = [await t for t in tasks]
        acceptor.cancel()
        with pytest.raises(corelet.Cancelled):
            await acceptor
        server.close()
        return results

    return run(main)


def test_echo_server_serves_many_clients_at_once():
    assert echo_round(200) == [True] * 200


def test_echo_on_the_epoll_backend_too():
    code = textwrap.dedent(
        """
        import sys
        sys.path[:0] = %r
        import test_io
        assert test_io.echo_round(50) == [True] * 50
        print("ok")
        """
        % ([os.path.dirname(__file__)] + [p for p in sys.path if p],)
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ, CORELET_IO="epoll"), capture_output=True, text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_connection_refused_is_an_os_error():
    async def main():
        probe = corelet.create_server(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nothing listens there now
        with pytest.raises(OSError) as info:
            await corelet.create_connection(("127.0.0.1", port))
        assert info.value.errno == errno.ECONNREFUSED

    run(main)


def test_recv_times_out_and_others_run_while_it_waits():
    ticks = []

    async def ticker():
        for _ in range(3):
            ticks.append(1)
            await corelet.sleep(0.001)

    async def main():
        a, b = corelet.socketpair()
        t = corelet.spawn(ticker)
        a.settimeout(0.05)
        with pytest.raises(TimeoutError):
            await a.recv(10)
        await t
        await b.sendall(b"late")
        assert await a.recv(10) == b"late"
        a.close()
        b.close()

    run(main)
    assert len(ticks) == 3


def test_closing_a_socket_fails_the_tasklet_waiting_on_it():
    async def reader(sock):
        with pytest.raises(OSError) as info:
            await sock.recv(10)
        return info.value.errno

    async def main():
        a, b = corelet.socketpair()
        t = corelet.spawn(reader, a)
        await corelet.sleep(0.001)
        a.close()
        assert await t == errno.EBADF
        b.close()

    run(main)


def test_cancelling_a_waiting_reader_is_clean(capfd):
    async def reader(sock):
        await sock.recv(10)

    async def main():
        a, b = corelet.socketpair()
        t = corelet.spawn(reader, a)
        await corelet.sleep(0.001)
        t.cancel()
        with pytest.raises(corelet.Cancelled):
            await t
        await b.sendall(b"still there")
        assert await a.recv(100) == b"still there"  # nothing was consumed by the cancelled read
        a.close()
        b.close()

    run(main)
    assert "never joined" not in capfd.readouterr().err


def test_file_write_read_pread_pwrite(tmp_path):
    path = str(tmp_path / "data.bin")
    payload = os.urandom(1 << 20)

    async def main():
        with corelet.open(path, "wb") as f:
            assert await f.write(payload) == len(payload)
        with corelet.open(path, "rb") as f:
            assert await f.read() == payload
            assert await f.pread(16, 1000) == payload[1000:1016]
            assert await f.read(0) == b""  # at the end
        with corelet.open(path, "r+b") as f:
            assert await f.pwrite(b"XYZ", 10) == 3
        with corelet.open(path, "ab") as f:
            await f.write(b"tail")
        with corelet.open(path, "rb") as f:
            data = await f.read()
        assert data[10:13] == b"XYZ" and data.endswith(b"tail") and len(data) == len(payload) + 4
        f.close()
        with pytest.raises(ValueError, match="closed file"):
            await f.read()

    run(main)


def test_file_modes_and_missing_files():
    with pytest.raises(ValueError, match="binary modes only"):
        corelet.open("/tmp/x", "r")
    with pytest.raises(ValueError, match="invalid mode"):
        corelet.open("/tmp/x", "qb")
    with pytest.raises(FileNotFoundError):
        corelet.open("/nonexistent/dir/file", "rb")


def test_reading_a_file_and_a_socket_at_once(tmp_path):
    path = str(tmp_path / "f.bin")
    with open(path, "wb") as f:
        f.write(b"z" * 100000)

    async def file_reader():
        with corelet.open(path, "rb") as f:
            return len(await f.read())

    async def main():
        a, b = corelet.socketpair()
        t = corelet.spawn(file_reader)
        await b.sendall(b"ping")
        assert await a.recv(4) == b"ping"
        assert await t == 100000
        a.close()
        b.close()

    run(main)
