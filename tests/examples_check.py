#!/usr/bin/python3
"""Runs the I/O examples against each other on one reactor backend.

usage: examples_check.py BUILD_EXAMPLES_DIR BACKEND
Starts echo_server and http_hello on free ports (port 0; they print the
address), drives them, and checks the answers: echo_client's count, HTTP
keep-alive, pipelining, HTTP/1.0, a body skipped, 400 and 431, and md5_files;
then the cluster examples: http_hello --workers 2 (both workers answer, and
SIGINT stops all processes), primes_cluster, md5_cluster against md5sum, and
ping_pong.
"""
import glob
import signal
import time
import os
import re
import socket
import subprocess
import sys

bindir, backend = sys.argv[1], sys.argv[2]
env = dict(os.environ, CORELET_IO=backend)
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def start(name, *args):
    p = subprocess.Popen([os.path.join(bindir, name), "127.0.0.1:0", *args], env=env,
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.search(r"127\.0\.0\.1:(\d+)", line)
    check(m is not None and f"({backend})" in line, f"{name} started on {backend}: {line.strip()}")
    return p, int(m.group(1)) if m else 0


def exchange(port, data, timeout=30):  # a bound on a hang, generous for a loaded machine
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    return out


echo, port = start("echo_server")
try:
    r = subprocess.run([os.path.join(bindir, "echo_client"), f"127.0.0.1:{port}", "30", "20"], env=env,
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and "600 of 600" in r.stdout, "echo_client: " + r.stdout.strip() + r.stderr.strip())
    big = os.urandom(1 << 20)
    check(exchange(port, big) == big, "echo_server echoes 1 MiB unchanged")
finally:
    echo.kill()
    echo.wait()

http, port = start("http_hello")
hello = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    for i in range(3):  # keep-alive: three requests on one connection
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while len(got) < len(hello):
            got += s.recv(4096)
        check(got == hello, f"keep-alive request {i + 1}")
    s.close()
    out = exchange(port, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\nConnection: close\r\n\r\n")
    check(out.count(b"hello") == 3 and out.endswith(b"Connection: close\r\n\r\nhello"), "pipelined requests")
    out = exchange(port, b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello worldGET / HTTP/1.0\r\n\r\n")
    check(out.count(b"200 OK") == 2, "a request body is skipped")
    check(exchange(port, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400"), "malformed request: 400")
    check(exchange(port, b"GET / HTTP/1.1\r\nX: " + b"y" * 40000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431"),
          "oversized header: 431")
finally:
    http.kill()
    http.wait()

r = subprocess.run([os.path.join(bindir, "md5_files")], env=env, capture_output=True, text=True, timeout=120)
check(r.returncode == 0 and "0 mismatches" in r.stdout, "md5_files: " + r.stdout.strip() + r.stderr.strip())
r = subprocess.run([os.path.join(bindir, "md5_files"), "/etc/hostname"], env=env, capture_output=True, text=True)
ref = subprocess.run(["md5sum", "/etc/hostname"], capture_output=True, text=True).stdout
check(r.stdout == ref, "md5_files agrees with md5sum")

# ---- the cluster examples ----

def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


http, port = start("http_hello", "--workers", "2")
try:
    workers = children(http.pid)
    check(len(workers) == 2, f"http_hello --workers 2 runs two worker processes: {workers}")
    ok = 0
    for _ in range(40):  # SO_REUSEPORT spreads connections: all must be served
        ok += exchange(port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").endswith(b"hello")
    check(ok == 40, f"http_hello --workers 2 answered {ok} of 40 connections")
    http.send_signal(signal.SIGINT)
    http.wait(timeout=30)
    check(http.returncode == 128 + signal.SIGINT, f"SIGINT stops the cluster (status {http.returncode})")

    def gone(pid):  # dead, perhaps not yet reaped by init
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split()[2] == "Z"
        except OSError:
            return True

    deadline = time.monotonic() + 30  # waited for, not guessed: the kernel delivers the death signal
    while not all(gone(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.01)
    check(all(gone(w) for w in workers), "no worker outlives the supervisor")
finally:
    if http.poll() is None:
        http.kill()
        http.wait()

r = subprocess.run([os.path.join(bindir, "primes_cluster")], env=env, capture_output=True, text=True, timeout=120)
check(r.returncode == 0 and r.stdout.count("primes up to 400000: 33860") == 4, "primes_cluster: " + r.stdout.strip())
files = sorted(glob.glob("/etc/*.conf"))[:20]
r = subprocess.run([os.path.join(bindir, "md5_cluster"), *files], env=env, capture_output=True, text=True,
                   timeout=120)
ref = subprocess.run(["md5sum", *files], capture_output=True, text=True).stdout
check(r.returncode == 0 and r.stdout == ref, f"md5_cluster agrees with md5sum on {len(files)} files")
r = subprocess.run([os.path.join(bindir, "ping_pong"), "2000"], env=env, capture_output=True, text=True, timeout=120)
check(r.returncode == 0 and "4000 hits" in r.stdout, "ping_pong: " + r.stdout.strip())

sys.exit(1 if failures else 0)
