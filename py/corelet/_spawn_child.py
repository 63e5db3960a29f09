"""The child's side of the 'spawn' and 'forkserver' start methods (see
_spawning.py for the parent's): it reads the header, multiprocessing's
preparation data and the Process from the parent's pickle, and runs the
Process. spawn_main is what a 'spawn' child's command line runs; main is
what the zygote runs in a 'forkserver' child.
"""

import io
import os
import pickle
import socket
import sys
from multiprocessing import process as _mpprocess
from multiprocessing import spawn as _mpspawn

from . import _spawning, _start
from ._host import adopt_authkey
from ._process import Process

__all__ = ["spawn_main", "main"]

_LENGTH = _spawning._LENGTH


def _run_child(stream, fds):
    """Unpickles the Process from stream (its inherited descriptors: fds) and
    runs it; gives its exit code."""
    _spawning._inherited = fds
    mp_current = _mpprocess.current_process()
    try:
        method, parent_pid, parent_name, death = pickle.load(stream)
        _start.set_in_child(method)
        # multiprocessing's own flag: a start while main is re-imported is
        # the missing `if __name__ == "__main__":` error, and a manager's
        # proxy here does not take a reference the parent holds for it.
        mp_current._inheriting = True
        try:
            _mpspawn.prepare(pickle.load(stream))
            process = pickle.load(stream)
        finally:
            del mp_current._inheriting
    finally:
        _spawning._inherited = None
        for fd in fds:
            os.close(fd)
    if not isinstance(process, Process):
        raise TypeError(f"corelet: a started child got {type(process).__name__}, not a corelet.Process")
    return process._bootstrap(parent_pid, parent_name, death, forked=False)


def spawn_main():
    """A 'spawn' child: ``-c ... --corelet-spawn READ_FD FD,FD,...``."""
    r = int(sys.argv[-2])
    fds = [int(fd) for fd in sys.argv[-1].split(",") if fd]
    with open(r, "rb", closefd=True) as stream:
        code = _run_child(stream, fds)
    sys.exit(code)


def main():
    """A 'forkserver' child, as the zygote runs a host: sys.argv is [module,
    socket fd]; the zygote gave the descriptors (inherited_fds)."""
    fd = int(sys.argv[1])
    adopt_authkey(fd)
    with socket.socket(fileno=fd) as sock:
        sock.setblocking(True)
        head = sock.recv(_LENGTH.size, socket.MSG_WAITALL)
        if len(head) != _LENGTH.size:
            sys.exit("corelet: the parent went away before its child started")
        (size,) = _LENGTH.unpack(head)
        data = bytearray()
        while len(data) < size:
            more = sock.recv(min(size - len(data), 1 << 20))
            if not more:
                sys.exit("corelet: the parent went away before its child started")
            data += more
    sys.exit(_run_child(io.BytesIO(data), _spawning.inherited_fds))


