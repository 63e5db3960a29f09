"""The zygote: a fresh interpreter (started by exec once per program, see
_host.py) that forks the hosts of later Pools and actor clusters.

Started as ``python3 -m corelet._zygote FD``. It imports corelet and the
host modules once, then serves requests on the socket FD, one at a time:
each brings a host's module and arguments, with the caller's sys.path,
environment and working directory of the moment and options (pickled, with
a length before), and that host's end of a socketpair (SCM_RIGHTS), then
any descriptors the host is to inherit. The zygote forks; the child becomes
the host (``python -m module <fd> args...`` as _host.py would start it by
exec, without the exec and the imports), and the zygote sends back its pid.
Nothing of the caller's threads or locks ever reaches it: it was started by
exec and stays single-threaded. It ends when the caller closes its socket
(the caller's exit); the hosts it forked live on until their own callers
close theirs, except daemonic Process children ('forkserver'), which it
kills then.

Options: "status" — the first inherited descriptor is the write end of a
pipe the zygote writes the child's exit code into when it reaps it (a
'forkserver' Process's sentinel and exit status); "daemon" — killed when
the caller exits; "preload" — modules to import before the first fork
(set_forkserver_preload).
"""

import importlib
import os
import pickle
import signal
import socket
import struct
import sys

import corelet  # noqa: F401 - imported once here, inherited by every host
import corelet._actor_host  # noqa: F401
import corelet._pool_host  # noqa: F401
import corelet._spawn_child  # noqa: F401
import corelet._spawning
from corelet._host import adopt_authkey
from corelet._spawning import STATUS

_HEADER = struct.Struct("!I")


_status_pipes = {}  # pid -> the write end of its status pipe
_daemons = set()  # pids to kill when the caller exits


def _reap(*_):
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _daemons.discard(pid)
        fd = _status_pipes.pop(pid, None)
        if fd is not None:
            try:
                os.write(fd, STATUS.pack(os.waitstatus_to_exitcode(status)))
            except OSError:
                pass  # the caller closed its end
            os.close(fd)


def _preload(modules):
    for name in modules:
        if name in sys.modules or name == "__main__":
            continue
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _become_host(sock, fd, module, args, path, env, cwd, inherited):
    sock.close()
    for other in _status_pipes.values():
        os.close(other)
    _status_pipes.clear()
    _daemons.clear()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    corelet._spawning.inherited_fds = inherited
    sys.path[:] = path
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = [module, str(fd), *map(str, args)]
    importlib.import_module(module).main()  # imported above: what `python -m module` would run


def main():
    fd = int(sys.argv[1])
    adopt_authkey(fd)
    sock = socket.socket(fileno=fd)
    signal.signal(signal.SIGCHLD, _reap)  # hosts that end are not left as zombies
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the program
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 65536, 253)  # SCM_MAX_FD
        except InterruptedError:
            continue
        if not data:
            for pid in _daemons:  # the caller is gone, and its daemonic children with it
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return
        (size,) = _HEADER.unpack_from(data)
        while len(data) < _HEADER.size + size:
            more = sock.recv(_HEADER.size + size - len(data))
            if not more:
                return
            data += more
        module, args, path, env, cwd, opts = pickle.loads(data[_HEADER.size :])
        if opts["preload"]:
            sys.path[:] = path  # where the caller finds them
            _preload(opts["preload"])
        status_fd = fds.pop(1) if opts["status"] else None
        # SIGCHLD waits until the pid is recorded: a child that ends at once
        # still gets its status written.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                if status_fd is not None:
                    os.close(status_fd)
                _become_host(sock, fds[0], module, args, path, env, cwd, fds[1:])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:  # noqa: BLE001 - reported, then the host's exit
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        if status_fd is not None:
            _status_pipes[pid] = status_fd
        if opts["daemon"]:
            _daemons.add(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        for f in fds:
            os.close(f)
        sock.sendall(_HEADER.pack(pid))


if __name__ == "__main__":
    main()
