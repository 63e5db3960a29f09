"""Process, as multiprocessing's with the fork start method, and
active_children. A child runs its target in the forked copy of this
process, so the shared primitives made before start() reach it by
inheritance; when it ends it closes its copies of the Pipe ends, as a
process's file descriptors close at its exit. At exit, daemonic children
are terminated and the others joined.
"""

import atexit
import os
import select
import signal
import sys
import traceback
import types
import weakref

from ._common import _in_tasklet
from ._corelet import UsageError, _run, wait_readable
from ._shared_queue import _close_inherited

__all__ = ["Process", "active_children"]

_children = weakref.WeakSet()


class Process:
    """multiprocessing.Process (fork): start, run, join, is_alive, exitcode,
    terminate, kill, pid, name, daemon. target may also be a generator function
    or an async def: the child then runs it with corelet.run."""

    _counter = 0

    def __init__(self, group=None, target=None, name=None, args=(), kwargs=None, *, daemon=None):
        if group is not None:
            raise ValueError("group argument must be None for now")
        Process._counter += 1
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})
        self.name = name or f"Process-{Process._counter}"
        self.daemon = bool(daemon)
        self._pid = None
        self._pidfd = None
        self._exitcode = None

    def run(self):
        if self._target is not None:
            return self._target(*self._args, **self._kwargs)
        return None

    def start(self):
        if self._pid is not None:
            raise AssertionError("cannot start a process twice")
        if _in_tasklet():
            raise UsageError(
                "corelet.Process.start inside corelet.run: start processes from plain code, or use "
                "spawn_on / Pool inside corelet.run(workers=N)"
            )
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child
            code = 0
            try:
                _children.clear()
                result = self.run()
                if isinstance(result, (types.GeneratorType, types.CoroutineType)):
                    _run(lambda: (yield result))  # corelet.run(main) with one scheduler
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if not isinstance(e.code, int) and e.code is not None:
                    print(e.code, file=sys.stderr)
            except BaseException:  # noqa: BLE001 - as multiprocessing: print and exit 1
                print(f"Process {self.name}:", file=sys.stderr)
                traceback.print_exc()
                code = 1
            finally:
                try:
                    _close_inherited()
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        self._pid = pid
        self._pidfd = os.pidfd_open(pid)
        _children.add(self)

    def _reap(self, block):
        if self._exitcode is not None or self._pid is None:
            return
        try:
            pid, status = os.waitpid(self._pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        self._exitcode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        os.close(self._pidfd)
        self._pidfd = None

    def join(self, timeout=None):
        """Waits for the process to end (timeout seconds at most). In a tasklet,
        an operation."""
        if self._pid is None:
            raise AssertionError("can only join a started process")
        if _in_tasklet():
            return self._join_op(timeout)
        if self._exitcode is None:
            if select.select([self._pidfd], [], [], timeout)[0]:
                self._reap(True)

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
        if self._pid is None:
            return False
        self._reap(False)
        return self._exitcode is None

    @property
    def exitcode(self):
        if self._pid is not None:
            self._reap(False)
        return self._exitcode

    @property
    def pid(self):
        return self._pid

    ident = pid

    @property
    def sentinel(self):
        return self._pidfd

    def terminate(self):
        if self._pid is not None and self._exitcode is None:
            os.kill(self._pid, signal.SIGTERM)

    def kill(self):
        if self._pid is not None and self._exitcode is None:
            os.kill(self._pid, signal.SIGKILL)

    def __repr__(self):
        state = "initial" if self._pid is None else ("started" if self.exitcode is None else f"stopped[{self.exitcode}]")
        return f"<corelet.Process name={self.name!r} pid={self._pid} {state}{' daemon' if self.daemon else ''}>"


def active_children():
    return [p for p in list(_children) if p.is_alive()]


def _at_exit():
    for p in list(_children):
        if p.daemon and p.is_alive():
            p.terminate()
    for p in list(_children):
        if p._pid is not None and p._exitcode is None and p._pid != os.getpid():
            p.join()


atexit.register(_at_exit)
