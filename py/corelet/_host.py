"""Starting a host: a fresh interpreter (started by exec, so no thread or held
lock of the caller reaches it) that runs a cluster for plain code — the
Pool's (_pool_host) and the actors' (_actor_host) — and talks with the caller
over a socketpair. The first bytes on it are the caller's authkey, which the
host takes as its own (adopt_authkey), as multiprocessing's spawn context
hands it to its children: a manager's proxy sent to a Pool worker then
authenticates as the caller's would."""

import multiprocessing.process
import os
import socket
import subprocess
import sys
import time


def start_host(module, *args):
    """Runs ``python -m module <fd> args...``; returns (the caller's socket,
    the Popen). The host finds this corelet through PYTHONPATH, and does not
    inherit CORELET_TRACE: its cluster would truncate the caller's trace file."""
    parent, child = socket.socketpair()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    env.pop("CORELET_TRACE", None)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, str(child.fileno()), *map(str, args)],
            pass_fds=[child.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    key = bytes(multiprocessing.process.current_process().authkey)
    parent.sendall(bytes([len(key)]) + key)
    return parent, proc


def adopt_authkey(fd):
    """In a host, first thing: reads the caller's authkey from fd (see start_host)."""
    with socket.socket(fileno=os.dup(fd)) as s:
        s.setblocking(True)
        size = s.recv(1, socket.MSG_WAITALL)
        key = s.recv(size[0], socket.MSG_WAITALL) if size else b""
    if len(key) != (size[0] if size else -1):
        sys.exit("corelet: the host's caller went away before it started")
    multiprocessing.process.current_process().authkey = key


def join_thread(thread, timeout=None):
    """Joins thread, then waits (up to 30 s more) until its OS thread is gone
    too: Thread.join returns once the thread's Python state is released, a
    moment before the OS thread exits — longer on a loaded machine — and a
    cluster started right after (corelet.run with workers) counts the threads
    of the process in /proc/self/task and would refuse to fork."""
    thread.join(timeout)
    if thread.is_alive() or thread.native_id is None:
        return
    task = "/proc/self/task/%d" % thread.native_id
    deadline = time.monotonic() + 30
    while os.path.exists(task) and time.monotonic() < deadline:
        time.sleep(0.0005)
