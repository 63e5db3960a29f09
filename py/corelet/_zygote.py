"""The zygote: a fresh interpreter (started by exec once per program, see
_host.py) that forks the hosts of later Pools and actor clusters.

Started as ``python3 -m corelet._zygote FD``. It imports corelet and the
host modules once, then serves requests on the socket FD, one at a time:
each brings a host's module and arguments, with the caller's sys.path,
environment and working directory of the moment (pickled, with a length
before), and that host's end of a socketpair (SCM_RIGHTS). The zygote forks; the
child becomes the host (``python -m module <fd> args...`` as _host.py would
start it by exec, without the exec and the imports), and the zygote sends
back its pid. Nothing of the caller's threads or locks ever reaches it: it
was started by exec and stays single-threaded. It ends when the caller
closes its socket (the caller's exit); the hosts it forked live on until
their own callers close theirs.
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
from corelet._host import adopt_authkey

_HEADER = struct.Struct("!I")


def _reap(*_):
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _become_host(sock, fd, module, args, path, env, cwd):
    sock.close()
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
            data, fds, _flags, _addr = socket.recv_fds(sock, 65536, 1)
        except InterruptedError:
            continue
        if not data:
            return  # the caller is gone
        (size,) = _HEADER.unpack_from(data)
        while len(data) < _HEADER.size + size:
            more = sock.recv(_HEADER.size + size - len(data))
            if not more:
                return
            data += more
        module, args, path, env, cwd = pickle.loads(data[_HEADER.size :])
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _become_host(sock, fds[0], module, args, path, env, cwd)
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
        os.close(fds[0])
        sock.sendall(_HEADER.pack(pid))


if __name__ == "__main__":
    main()
