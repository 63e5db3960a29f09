"""Starting a host: a fresh interpreter (started by exec, so no thread or held
lock of the caller reaches it) that runs a cluster for plain code — the
Pool's (_pool_host) and the actors' (_actor_host) — and talks with the caller
over a socketpair."""

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
    return parent, proc


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
