"""The Python examples (examples/python/) run and print what they should."""

import os
import re
import subprocess
import sys

import pytest
from support import child_env

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python")


def run_example(name, *args, timeout=120):
    env = child_env()
    out = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, name), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_producer_consumer():
    out = run_example("producer_consumer.py")
    assert "sum: 499500 expected: 499500" in out


@pytest.mark.parametrize("backend", ["io_uring", "epoll"])
def test_echo_server_with_clients(backend, monkeypatch):
    monkeypatch.setenv("CORELET_IO", backend)
    out = run_example("echo_server.py", "--clients", "50")
    assert "50 of 50 clients got their bytes back" in out


def test_manager_examples():
    out = run_example("manager_queue_dict.py")
    assert "squares: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in out
    assert "dict: {'2': 2, 0.25: None, 1: '1'}" in out and "list: [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]" in out
    out = run_example("manager_registered_type.py")
    assert "BAR from parent" in out and "totals: {'child0': 3, 'child1': 3, 'parent': 1}" in out
    out = run_example("manager_over_tcp.py")
    assert "results: True 20" in out and "wrong authkey: AuthenticationError" in out


def test_pool_dropin():
    out = run_example("pool_dropin.py")
    counts = re.findall(r"primes below 400000: (\d+)", out)
    assert counts == ["33860", "33860"]


def test_count_cores():
    out = run_example("count_cores.py", "200000")
    assert re.search(r"sequential [\d.]+ s, 2 threads [\d.]+ s, 2 corelet workers [\d.]+ s", out)


def test_ping_pong():
    out = run_example("ping_pong.py", "500")
    assert "final value 500" in out


def test_threadingx_tutorial():
    out = run_example("threadingx_tutorial.py")
    assert "received message: hello from main" in out and "Finished" in out


def test_md5_files(tmp_path):
    import hashlib

    paths = []
    for i in range(3):
        p = tmp_path / f"f{i}"
        p.write_bytes(os.urandom(100_000 + i))
        paths.append(str(p))
    out = run_example("md5_files.py", *paths)
    expected = "".join(f"{hashlib.md5(open(p, 'rb').read()).hexdigest()}  {p}\n" for p in paths)
    assert out == expected


@pytest.mark.parametrize("workers", ["0", "2"])
def test_http_hello(workers):
    import signal
    import socket

    env = child_env()
    proc = subprocess.Popen(
        [sys.executable, os.path.join(EXAMPLES, "http_hello.py"), "127.0.0.1:0", "--workers", workers],
        env=env, stdout=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
        answers = []
        for _ in range(2 if workers == "0" else 8):  # new connections: the kernel spreads them over the workers
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")  # two, pipelined
            data = b""
            while data.count(b"Hello, world!") < 2:
                chunk = s.recv(65536)
                assert chunk, data
                data += chunk
            s.close()
            answers.append(data)
        assert all(a.startswith(b"HTTP/1.1 200 OK") for a in answers)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    finally:
        proc.kill()


def test_executor_asyncio():
    out = run_example("executor_asyncio.py", "400000")
    assert "primes below 400000..400003: [33860, 33860, 33860, 33860]" in out
