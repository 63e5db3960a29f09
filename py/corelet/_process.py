"""Process, as multiprocessing's, with its three start methods; active_children,
current_process and parent_process. With 'fork' (the default) a child runs
its target in the forked copy of this process, so the shared primitives
made before start() reach it by inheritance. With 'spawn' and 'forkserver'
(see _spawning.py) it runs in a fresh interpreter, and the Process object,
target and arguments reach it pickled. When a child ends it waits for its
non-daemon threads and closes its copies of the Pipe ends, as a process's
file descriptors close at its exit. At exit, daemonic children are
terminated and the others joined; a daemonic child also ends when its
parent dies however the parent ends: by the kernel's parent-death signal
('fork' and 'spawn', for a child started from the main thread) or by the
zygote that forked it ('forkserver').
"""

import atexit
import ctypes
import os
import select
import signal
import sys
import threading
import traceback
import types
import weakref
from multiprocessing import process as _mpprocess
from multiprocessing import util as _mputil

from ._common import _in_tasklet
from ._corelet import UsageError, _run, wait_readable
from ._shared_queue import _close_inherited
from . import _spawning, _start

__all__ = ["Process", "ForkProcess", "SpawnProcess", "ForkServerProcess", "active_children", "current_process", "parent_process"]

# Started children not yet reaped. Strong references, as multiprocessing's:
# a child whose Process object the program dropped is still terminated or
# joined at exit.
_children = set()

_PR_SET_PDEATHSIG = 1


def _flush_std_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (AttributeError, ValueError, OSError):
            pass


def _die_with_parent(parent_pid):
    """In a daemonic child: the kernel sends SIGKILL when the parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


class _MainProcess:
    """What current_process() is in the program's first process."""

    def __init__(self):
        self.name = "MainProcess"
        self.daemon = False
        self.exitcode = None

    @property
    def pid(self):
        return os.getpid()

    ident = pid

    # One key for both packages' processes: multiprocessing's, which its
    # managers' proxies use.
    @property
    def authkey(self):
        return _mpprocess.current_process().authkey

    @authkey.setter
    def authkey(self, key):
        _mpprocess.current_process().authkey = key

    def is_alive(self):
        return True

    def __repr__(self):
        return f"<corelet._MainProcess name={self.name!r} pid={self.pid} started>"


class _ParentProcess:
    """What parent_process() is in a child: the process that started it."""

    def __init__(self, name, pid):
        self.name = name
        self._pid = pid
        self.daemon = False
        self._sentinel = None
        try:
            self._sentinel = os.pidfd_open(pid)
        except ProcessLookupError:
            pass  # gone already: not alive

    @property
    def pid(self):
        return self._pid

    ident = pid

    def is_alive(self):
        # Not getppid(): a 'forkserver' child's OS parent is the zygote.
        return self._sentinel is not None and not select.select([self._sentinel], [], [], 0)[0]

    @property
    def sentinel(self):
        """A file descriptor that becomes readable when the parent ends."""
        if self._sentinel is None:
            raise ProcessLookupError(f"the parent process {self._pid} has ended")
        return self._sentinel

    def join(self, timeout=None):
        if timeout is not None and timeout < 0:
            timeout = 0
        if self.is_alive():
            try:
                select.select([self.sentinel], [], [], timeout)
            except ProcessLookupError:
                pass

    def __repr__(self):
        return f"<corelet._ParentProcess name={self.name!r} pid={self._pid}>"


_current = _MainProcess()
_parent = None


def current_process():
    """The Process object of the process that calls it (multiprocessing's)."""
    return _current


def parent_process():
    """The process that started this one; None in the program's first process."""
    return _parent


class Process:
    """multiprocessing.Process: start, run, join, is_alive, exitcode,
    terminate, kill, close, pid, ident, name, daemon, authkey, sentinel.
    target may also be a generator function or an async def: the child then
    runs it with corelet.run. It starts by the start method of the moment
    (corelet.set_start_method; 'fork' by default); a context's Process
    (corelet.get_context('spawn').Process) by that context's."""

    _counter = 0
    _start_method = None  # None: the current one

    def __init__(self, group=None, target=None, name=None, args=(), kwargs=None, *, daemon=None):
        if group is not None:
            raise ValueError("group argument must be None for now")
        Process._counter += 1
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})
        self.name = name or f"Process-{Process._counter}"
        self.daemon = bool(daemon) if daemon is not None else bool(_current.daemon)
        self.authkey = _current.authkey
        self._pid = None
        self._pidfd = None
        self._status_pipe = False  # the sentinel is a zygote's status pipe ('forkserver')
        self._exitcode = None
        self._closed = False

    def __getstate__(self):
        # What a 'spawn' or 'forkserver' child gets: the Process as it was
        # before start(), and its authkey only then (multiprocessing's
        # AuthenticationString refuses to pickle otherwise).
        state = dict(self.__dict__)
        state.pop("_close_pidfd", None)
        state["_pidfd"] = None
        return state

    def _check_closed(self):
        if self._closed:
            raise ValueError("process object is closed")

    def run(self):
        if self._target is not None:
            return self._target(*self._args, **self._kwargs)
        return None

    def start(self):
        self._check_closed()
        if self._pid is not None:
            raise AssertionError("cannot start a process twice")
        if _in_tasklet():
            raise UsageError(
                "corelet.Process.start inside corelet.run: start processes from plain code, or use "
                "spawn_on / Pool inside corelet.run(workers=N)"
            )
        method = self._start_method or _start.get_start_method()
        _cleanup()
        _flush_std_streams()
        parent_pid = os.getpid()
        # The parent-death signal follows the thread that forks: only the
        # main thread lives as long as the process.
        arm_death = self.daemon and threading.current_thread() is threading.main_thread()
        if method == "fork":
            pid = os.fork()
            if pid == 0:  # the child
                os._exit(self._bootstrap(parent_pid, _current.name, arm_death, forked=True))
            self._pidfd = os.pidfd_open(pid)
        elif method == "spawn":
            pid = _spawning.start_spawn(self, arm_death, _current.name)
            self._pidfd = os.pidfd_open(pid)
        else:  # 'forkserver': the zygote kills a daemonic child when this process exits
            pid, self._pidfd = _spawning.start_forkserver(self, None if not self.daemon else "zygote", _current.name)
            self._status_pipe = True
        self._pid = pid
        # The sentinel stays open after the process ends (it is readable
        # then), until close() or until this object is collected.
        self._close_pidfd = weakref.finalize(self, os.close, self._pidfd)
        self._close_pidfd.atexit = False  # the exit handlers below still join with it
        _children.add(self)

    def _bootstrap(self, parent_pid, parent_name, death, forked):
        """Runs the child; gives its exit code. death: True to arm the
        parent-death signal. forked: the child is a fork of its parent (whose
        finalizers it drops and whose after-fork hooks it runs)."""
        global _current, _parent
        code = 0
        try:
            if death is True:
                _die_with_parent(parent_pid)
            _parent = _ParentProcess(parent_name, parent_pid)
            _current = self
            _mpprocess.current_process().authkey = self.authkey  # what managers' proxies use here
            _children.clear()
            if forked:
                _after_fork_in_child()
            result = self.run()
            if isinstance(result, (types.GeneratorType, types.CoroutineType)):
                _run(lambda: (yield result))  # corelet.run(main) with one scheduler
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, int) and e.code is not None and sys.stderr is not None:
                print(e.code, file=sys.stderr)
        except BaseException:  # noqa: BLE001 - as multiprocessing: print and exit 1
            if sys.stderr is not None:
                print(f"Process {self.name}:", file=sys.stderr)
                traceback.print_exc()
            code = 1
        finally:
            try:
                _join_non_daemon_threads()
                _at_exit()
                _close_inherited()
                _flush_std_streams()
            except BaseException:  # noqa: BLE001 - the exit code stands
                pass
        return code

    def _reap(self, block):
        if self._exitcode is not None or self._pid is None:
            return
        if self._status_pipe:
            if not block and not select.select([self._pidfd], [], [], 0)[0]:
                return
            data = os.read(self._pidfd, _spawning.STATUS.size)
            # Nothing: the zygote itself is gone (killed); the child's status with it.
            self._exitcode = _spawning.STATUS.unpack(data)[0] if len(data) == _spawning.STATUS.size else 255
            _children.discard(self)
            return
        try:
            pid, status = os.waitpid(self._pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        self._exitcode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        _children.discard(self)

    def join(self, timeout=None):
        """Waits for the process to end (timeout seconds at most; a negative
        one is zero). In a tasklet, an operation."""
        self._check_closed()
        if self._pid is None:
            raise AssertionError("can only join a started process")
        if timeout is not None and timeout < 0:
            timeout = 0
        if _in_tasklet():
            return self._join_op(timeout)
        if self._exitcode is None:
            if select.select([self._pidfd], [], [], timeout)[0]:
                self._reap(True)
        return None

    @types.coroutine
    def _join_op(self, timeout):
        if self._exitcode is None:
            try:
                yield wait_readable(self._pidfd, timeout)
            except TimeoutError:
                return None
            self._reap(True)
        return None

    def is_alive(self):
        self._check_closed()
        if self is _current:
            return True
        if self._pid is None:
            return False
        self._reap(False)
        return self._exitcode is None

    @property
    def exitcode(self):
        self._check_closed()
        if self._pid is not None:
            self._reap(False)
        return self._exitcode

    @property
    def pid(self):
        self._check_closed()
        return os.getpid() if self is _current else self._pid

    ident = pid

    @property
    def sentinel(self):
        """A file descriptor that becomes readable when the process ends."""
        self._check_closed()
        if self._pid is None:
            raise ValueError("process not started")
        return self._pidfd

    def terminate(self):
        self._check_closed()
        if self._pid is not None and self._exitcode is None:
            os.kill(self._pid, signal.SIGTERM)

    def kill(self):
        self._check_closed()
        if self._pid is not None and self._exitcode is None:
            os.kill(self._pid, signal.SIGKILL)

    def close(self):
        """Releases what the Process object holds; ValueError while the
        process runs. Afterwards most methods raise ValueError."""
        if self._closed:
            return
        if self._pid is not None:
            self._reap(False)
            if self._exitcode is None:
                raise ValueError(
                    "Cannot close a process while it is still running. You should first call join() or terminate()."
                )
        _children.discard(self)
        if self._pidfd is not None:
            self._close_pidfd()
            self._pidfd = None
        self._closed = True

    def __repr__(self):
        if self._closed:
            state = "closed"
        elif self is _current:
            state = "started"
        elif self._pid is None:
            state = "initial"
        else:
            state = "started" if self.exitcode is None else f"stopped[{self.exitcode}]"
        return f"<corelet.Process name={self.name!r} pid={self._pid} {state}{' daemon' if self.daemon else ''}>"


class ForkProcess(Process):
    """A Process that starts by 'fork' whatever the start method."""

    _start_method = "fork"


class SpawnProcess(Process):
    """A Process that starts by 'spawn': a fresh interpreter by exec."""

    _start_method = "spawn"


class ForkServerProcess(Process):
    """A Process that starts by 'forkserver': forked by the program's zygote."""

    _start_method = "forkserver"


def _cleanup():
    for p in list(_children):
        p._reap(False)


def active_children():
    """The children of this process that are still running."""
    _cleanup()
    return list(_children)


def _join_non_daemon_threads():
    # As threading's own shutdown at interpreter exit: a process ends once
    # its non-daemon threads have.
    me = threading.current_thread()
    for t in threading.enumerate():
        if t is not me and not t.daemon and t is not threading.main_thread():
            t.join()


def _after_fork_in_child():
    """What multiprocessing does in a child it forked: the parent's finalizers
    are dropped (a manager's shutdown is the parent's to run), and the
    after-fork hooks run (a manager's proxy then opens its own connection
    here instead of sharing the parent's)."""
    _mputil._finalizer_registry.clear()
    _mputil._run_after_forkers()


def _at_exit():
    # multiprocessing's finalizers of priority >= 0 first (a manager's
    # shutdown among them), as multiprocessing's own exit does, so that the
    # joins below do not wait for a server nobody told to stop.
    _mputil._run_finalizers(0)
    for p in list(_children):
        if p.daemon and p._exitcode is None:
            p._reap(False)
            if p._exitcode is None:
                p.terminate()
    for p in list(_children):
        if p._pid is not None and p._exitcode is None:
            p.join()


atexit.register(_at_exit)
