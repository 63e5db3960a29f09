"""Starting a Process by 'spawn' or 'forkserver', as multiprocessing's
start methods of those names.

Both give the child a fresh interpreter, so nothing of the parent's threads,
held locks or memory reaches it: what it needs comes in a pickle. The parent
pickles (with multiprocessing's ForkingPickler) a header, multiprocessing's
preparation data (sys.path, the working directory, the main module to
re-import as ``__mp_main__``) and the Process object itself, with its target
and arguments. While it pickles, multiprocessing's "spawning popen" is a
_Start, so multiprocessing.reduction.DupFd — and with it corelet's
primitives made for such children, Pipe ends, sockets and multiprocessing's
own Connections — hands each descriptor to the child instead of through the
resource sharer; in the child, _InheritedFd.detach() gives a duplicate of it.

'spawn' execs ``python -c 'from corelet._spawn_child import spawn_main; ...'``
(set_executable's interpreter), a child of the parent: its pid, pidfd and
exit status are the parent's, as with 'fork'. The pickle comes on a pipe;
the descriptors are inherited at their numbers.

'forkserver' asks the program's zygote (see _zygote.py), a clean
interpreter started by exec once, to fork the child: the request carries the
descriptors (SCM_RIGHTS) and the write end of a status pipe; the pickle
follows on the child's socket. The zygote is the child's parent: it writes
the exit status into the status pipe when the child ends, so the parent's
sentinel is that pipe's read end, and it kills the daemonic children when
the parent that asked for them exits, however it exits (the parent's socket
to the zygote closes then).
"""

import io
import os
import struct
from multiprocessing import context as _mpcontext
from multiprocessing import spawn as _mpspawn
from multiprocessing import util as _mputil
from multiprocessing.reduction import ForkingPickler

from . import _start

__all__ = ["start_spawn", "start_forkserver", "STATUS"]

_LENGTH = struct.Struct("!Q")
STATUS = struct.Struct("!i")  # what the zygote writes into a status pipe: the exit code

# In a child while its Process is unpickled: the descriptors it inherited,
# in the order the parent's _Start numbered them.
_inherited = None


class _InheritedFd:
    """A descriptor the child inherited (multiprocessing's DupFd in a
    started child): detach() gives a duplicate the caller owns."""

    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index

    def __reduce__(self):
        return _InheritedFd, (self.index,)

    def detach(self):
        if _inherited is None:
            raise RuntimeError("corelet: a descriptor of a child's start is only valid while the child starts")
        return os.dup(_inherited[self.index])


class _Start:
    """multiprocessing's spawning popen while a Process is pickled: it
    numbers the descriptors the child is to inherit."""

    DupFd = _InheritedFd

    def __init__(self):
        self.fds = []
        self._index = {}

    def duplicate_for_child(self, fd):
        i = self._index.get(fd)
        if i is None:
            i = self._index[fd] = len(self.fds)
            self.fds.append(fd)
        return i


def _payload(process, method, death, parent_name):
    """The pickle of process for its child, and the descriptors it carries."""
    from ._shared_values import claim_ctypes_reducers

    claim_ctypes_reducers()
    start = _Start()
    buf = io.BytesIO()
    _mpcontext.set_spawning_popen(start)
    try:
        prep = _mpspawn.get_preparation_data(process.name)
        prep.pop("start_method", None)  # multiprocessing's own start method is not corelet's
        # The child's start method is the one it was started by, as multiprocessing's.
        header = (method, os.getpid(), parent_name, death)
        ForkingPickler(buf).dump(header)
        ForkingPickler(buf).dump(prep)
        ForkingPickler(buf).dump(process)
    finally:
        _mpcontext.set_spawning_popen(None)
    return buf.getvalue(), start.fds


def start_spawn(process, death, parent_name):
    """Starts process's child by exec; gives its pid (the caller's child)."""
    executable = _start.executable()
    data, fds = _payload(process, "spawn", death, parent_name)
    r, w = os.pipe()
    try:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        code = (
            f"import sys; sys.path.insert(0, {here!r}); "
            "from corelet._spawn_child import spawn_main; spawn_main()"
        )
        args = [executable, "-c", code, "--corelet-spawn", str(r), ",".join(map(str, fds))]
        pid = _mputil.spawnv_passfds(os.fsencode(executable), args, [r, *fds])
    except BaseException:
        os.close(w)
        raise
    finally:
        os.close(r)
    # The child reads as it starts; a write larger than the pipe's buffer
    # waits for it. Closed at once if the child died before reading.
    with open(w, "wb", closefd=True) as f:
        try:
            f.write(data)
        except BrokenPipeError:
            pass
    return pid


def start_forkserver(process, death, parent_name):
    """Starts process's child in the program's zygote; gives (its pid, the
    read end of its status pipe)."""
    from ._host import zygote_fork

    data, fds = _payload(process, "forkserver", death, parent_name)
    status_r, status_w = os.pipe()
    try:
        sock, pid = zygote_fork(
            "corelet._spawn_child",
            (),
            fds=[status_w, *fds],
            status=True,
            daemon=(death is not None),
            preload=_start.preload(),
        
        )
    except BaseException:
        os.close(status_r)
        raise
    finally:
        os.close(status_w)
    with sock:
        try:
            sock.sendall(_LENGTH.pack(len(data)) + data)
        except OSError:
            pass  # the child is gone already: its status says how
    return pid, status_r


inherited_fds = []  # set by the zygote in a 'forkserver' child before its main()
