"""Starting a host: an interpreter that runs a cluster for plain code — the
Pool's (_pool_host) and the actors' (_actor_host) — and talks with the
caller over a socketpair. Hosts are forked by the program's zygote
(_zygote.py), a fresh interpreter started by exec once, so no thread or
held lock of the caller reaches them. The first bytes on a host's socket
are the caller's authkey, which the host takes as its own (adopt_authkey),
as multiprocessing's spawn context hands it to its children: a manager's
proxy sent to a Pool worker then authenticates as the caller's would."""

import multiprocessing.process
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time


def start_host(module, *args, fds=()):
    """Starts a host running ``python -m module <fd> args...``; returns (the
    caller's socket, a Popen-like handle: poll, wait, kill, pid). fds:
    descriptors the host gets as well (_spawning.inherited_fds there). The host is
    forked by this program's zygote (started by exec at the first call, see
    _zygote.py), so it costs a fork of a clean interpreter rather than an exec
    and its imports. The host finds this corelet through PYTHONPATH, and does
    not inherit CORELET_TRACE: its cluster would truncate the caller's trace
    file."""
    parent, pid = zygote_fork(module, args, fds=fds)
    try:
        return parent, _Host(pid)
    except BaseException:
        parent.close()
        raise


def zygote_fork(module, args, *, fds=(), status=False, daemon=False, preload=()):
    """What start_host does, without the handle: gives (the caller's socket,
    the pid). fds: descriptors the child gets as well (the zygote's
    _spawning.inherited_fds there); with status, the first of them is the
    write end of a pipe the zygote writes the child's exit code into
    (_spawning.STATUS) when it ends. A daemon child is killed when this
    process exits. preload: modules the zygote imports first (once; one that
    fails to import is skipped, as multiprocessing's forkserver does)."""
    parent, child = socket.socketpair()
    try:
        with _zygote_lock:
            zygote = _the_zygote()
            # What an exec now would give the host: the caller's path,
            # environment and working directory of this moment.
            opts = {"status": status, "daemon": daemon, "preload": list(preload)}
            frame = pickle.dumps((module, tuple(args), [p for p in sys.path if p], _host_env(), os.getcwd(), opts))
            socket.send_fds(zygote.sock, [_HEADER.pack(len(frame)) + frame], [child.fileno(), *fds])
            reply = zygote.sock.recv(_HEADER.size, socket.MSG_WAITALL)
            if len(reply) != _HEADER.size:
                raise RuntimeError("corelet: the zygote that starts Pool and actor hosts exited")
            (pid,) = _HEADER.unpack(reply)
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    _send_authkey(parent)
    return parent, pid


def _send_authkey(sock):
    key = bytes(multiprocessing.process.current_process().authkey)
    sock.sendall(bytes([len(key)]) + key)


class _Zygote:
    __slots__ = ("sock", "proc", "owner")

    def __init__(self):
        self.owner = os.getpid()
        self.sock, child = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "corelet._zygote", str(child.fileno())],
                pass_fds=[child.fileno()],
                env=_host_env(),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            self.sock.close()
            raise
        finally:
            child.close()
        _send_authkey(self.sock)


def _host_env():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    env.pop("CORELET_TRACE", None)
    return env


_HEADER = struct.Struct("!I")
_zygote = None
_zygote_lock = threading.Lock()


def _the_zygote():
    """This process's zygote (a process forked from one that had a zygote
    starts its own: the socket to the parent's belongs to the parent)."""
    global _zygote
    z = _zygote
    if z is None or z.owner != os.getpid() or z.proc.poll() is not None:
        z = _zygote = _Zygote()
    return z


class _Host:
    """What the caller holds of a host the zygote forked (not the caller's
    child): Popen's poll, wait, kill and pid, through a pidfd. The exit
    status is the zygote's to collect, so returncode is 0 once it ended, or
    -9 when kill() ended it."""

    __slots__ = ("pid", "_pidfd", "returncode", "_killed")

    def __init__(self, pid):
        self.pid = pid
        self._pidfd = os.pidfd_open(pid)
        self.returncode = None
        self._killed = False

    def poll(self):
        if self.returncode is None and select.select([self._pidfd], [], [], 0)[0]:
            self._ended()
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            if not select.select([self._pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"corelet host {self.pid}", timeout)
            self._ended()
        return self.returncode

    def kill(self):
        if self.returncode is None:
            self._killed = True
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _ended(self):
        self.returncode = -signal.SIGKILL if self._killed else 0
        os.close(self._pidfd)
        self._pidfd = None

    def __del__(self):
        if getattr(self, "_pidfd", None) is not None:
            os.close(self._pidfd)


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
