"""corelet.shared_memory — multiprocessing.shared_memory's SharedMemory and
ShareableList, whose segments go away by themselves.

    from corelet import shared_memory
    shm = shared_memory.SharedMemory(create=True, size=1024)
    shm.buf[:5] = b"hello"
    # elsewhere, any process of this user: shared_memory.SharedMemory(name=shm.name)

A segment is a POSIX shared-memory object (/dev/shm/<name>), reachable by
name from unrelated processes as multiprocessing's are (and the same
objects: either module attaches to the other's). What differs is its end:
the name is removed once no process holds the segment any more, whether its
holders closed it, exited or were killed, and unlink() is only needed to
remove the name earlier. Nothing registers with multiprocessing's resource
tracker, so there are no "leaked shared_memory objects" warnings at exit
and no segment is unlinked behind a process that still uses it (the
tracker of a process that merely attached does that in CPython 3.11).

How: each SharedMemory holds a shared flock on its own open file of the
segment for as long as it has it open or mapped; a small reaper process
(corelet/_shm_reaper.py, one per program, started at its first segment)
watches the segments the program and its children create and unlinks each
when the last shared lock is gone. A process that attaches with
multiprocessing's own SharedMemory holds no such lock: a corelet segment
may lose its name while only such processes have it (their mappings stay
valid).

ShareableList is multiprocessing's, over this SharedMemory: the same layout,
methods and errors.
"""

import errno
import fcntl
import mmap
import os
import secrets
import socket
import sys
import threading
import types
from multiprocessing import shared_memory as _mp_shm

import _posixshmem

__all__ = ["SharedMemory", "ShareableList"]

_SHM_DIR = "/dev/shm/"
_NAME_PREFIX = "/csm_"


def _new_name():
    return _NAME_PREFIX + secrets.token_hex(5)


# ---- the reaper -------------------------------------------------------------


class _ReaperLink:
    """This program's socket to its reaper, started at the first segment.
    Forked children inherit the socket and register with the same reaper."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._sock = None
        self._warned = False
        self.reaper_pid = None  # the reaper this process started, if it did

    def register(self, name, st):
        if self._pid != os.getpid():  # forked: a lock held by a thread of the parent stays held
            self._lock = threading.Lock()
            self._pid = os.getpid()
        message = b"\0".join((os.fsencode(name), str(st.st_dev).encode(), str(st.st_ino).encode()))
        with self._lock:
            for _ in range(2):
                if self._sock is None and not self._start():
                    return
                try:
                    self._sock.send(message)
                    return
                except OSError:  # the reaper is gone (killed): start another
                    self._sock.close()
                    self._sock = None

    def _start(self):
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_shm_reaper.py")
        child_fd = 3
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            self.reaper_pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", script, str(child_fd)],
                {},
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, devnull, 0),
                    (os.POSIX_SPAWN_DUP2, devnull, 1),
                    (os.POSIX_SPAWN_DUP2, devnull, 2),
                    (os.POSIX_SPAWN_DUP2, theirs.fileno(), child_fd),
                ],
                setsid=True,  # out of the program's process group: its Ctrl-C and killpg spare the reaper
            )
        except OSError as e:
            mine.close()
            if not self._warned:
                self._warned = True
                import warnings

                warnings.warn(
                    f"corelet.shared_memory: cannot start the segment reaper ({e}); segments will stay "
                    f"in {_SHM_DIR} until unlink() removes them",
                    RuntimeWarning,
                    stacklevel=4,
                )
            return False
        finally:
            os.close(devnull)
            theirs.close()
        self._sock = mine
        return True


_reaper = _ReaperLink()


# ---- SharedMemory -------------------------------------------------------------


def _unlink_if_there(name):
    """Removes the name of segment `name` (no leading slash) unless it is gone."""
    try:
        _posixshmem.shm_unlink("/" + name)
    except FileNotFoundError:
        pass  # gone already: unlinked, or reaped once nobody held it


def _hold(fd):
    """A shared lock on fd's open file: this holder counts until the file's
    last reference (fd or mapping, in any process) goes. Blocks only while
    the reaper holds its exclusive lock, for the microseconds of an unlink."""
    fcntl.flock(fd, fcntl.LOCK_SH)


class SharedMemory(_mp_shm.SharedMemory):
    """SharedMemory(name=None, create=False, size=0) — creates a segment
    (create=True: of `size` bytes, named `name` or a fresh name) or attaches
    to the one called `name`. As multiprocessing's: .name, .size, .buf (a
    memoryview), close(), unlink(), picklable (by name). The segment is
    removed when no process holds it any more (see the module's doc)."""

    def __init__(self, name=None, create=False, size=0):
        if not size >= 0:
            raise ValueError("'size' must be a positive integer")
        if create and size == 0:
            raise ValueError("'size' must be a positive number different from zero")
        if name is None and not create:
            raise ValueError("'name' can only be None if create=True")
        if create:
            self._flags = os.O_CREAT | os.O_EXCL | os.O_RDWR
            while True:
                path = _new_name() if name is None else "/" + name
                try:
                    fd = _posixshmem.shm_open(path, self._flags, mode=self._mode)
                except FileExistsError:
                    if name is None:
                        continue
                    raise
                break
            self._name, self._fd = path, fd
            try:
                _hold(fd)
                os.ftruncate(fd, size)
                st = os.fstat(fd)
                self._mmap = mmap.mmap(fd, st.st_size)
            except BaseException:
                _unlink_if_there(path[1:])
                self.close()
                raise
            _reaper.register(path[1:], st)
        else:
            path = "/" + name
            fd = _posixshmem.shm_open(path, os.O_RDWR, mode=self._mode)
            self._name, self._fd = path, fd
            try:
                _hold(fd)
                st = os.fstat(fd)
                if not self._still_named(st):
                    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
                self._mmap = mmap.mmap(fd, st.st_size)
            except BaseException:
                self.close()
                raise
        self._size = st.st_size
        self._buf = memoryview(self._mmap)

    def _still_named(self, st):
        """Whether the name still refers to this segment: an attacher that
        opened it while the reaper was removing it has a segment nobody else
        will find."""
        try:
            return os.path.samestat(os.stat(_SHM_DIR + self._name[1:], follow_symlinks=False), st)
        except FileNotFoundError:
            return False

    def unlink(self):
        """Removes the segment's name now (FileNotFoundError if it is gone);
        processes that have it keep it until they close it. Optional: the
        name goes by itself once nobody holds the segment."""
        if self._name:
            _posixshmem.shm_unlink(self._name)


# ---- ShareableList --------------------------------------------------------------


def _over_corelet_memory(function):
    """multiprocessing's own function, with corelet's SharedMemory where it
    names SharedMemory (ShareableList.__init__ makes or attaches its segment
    so)."""
    names = dict(vars(_mp_shm))
    names["SharedMemory"] = SharedMemory
    rebound = types.FunctionType(
        function.__code__, names, function.__name__, function.__defaults__, function.__closure__
    )
    rebound.__kwdefaults__ = function.__kwdefaults__
    rebound.__doc__ = function.__doc__
    rebound.__qualname__ = function.__qualname__
    return rebound


class ShareableList(_mp_shm.ShareableList):
    """multiprocessing's ShareableList (a fixed-length list of int, float,
    bool, str, bytes and None in one segment), whose segment is corelet's
    SharedMemory: it goes away when nobody holds it."""

    __init__ = _over_corelet_memory(_mp_shm.ShareableList.__init__)
