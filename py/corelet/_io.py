"""Sockets and files for tasklets, through corelet's reactor (io_uring, or
epoll where io_uring is not available).

A call that may wait returns an operation: ``data = yield sock.recv(4096)`` in
a generator tasklet, ``data = await sock.recv(4096)`` in an ``async def`` one.
Sockets are non-blocking underneath: a call is tried at once and waits in the
reactor only when the kernel would block. Files read and write through the
reactor (io_uring: no helper thread).

    async def echo(conn):
        with conn:
            while data := await conn.recv(65536):
                await conn.sendall(data)

    async def main():
        server = corelet.create_server(("127.0.0.1", 0))
        while True:
            conn, _addr = await server.accept()
            corelet.spawn(echo, conn)
"""

import errno
import os
import socket as _socket
import types

from ._corelet import close_fd, read as _read, wait_readable, wait_writable, write as _write

__all__ = ["socket", "socketpair", "create_connection", "create_server", "File", "open"]

_WOULD_BLOCK = (BlockingIOError, InterruptedError)


class socket:
    """A socket whose waiting calls are operations. Same constructor as
    socket.socket; ``socket.wrap(s)`` adopts an existing one. settimeout(t)
    applies to every waiting call (TimeoutError)."""

    __slots__ = ("_sock", "_timeout", "__weakref__")

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        self._sock = _socket.socket(family, type, proto, fileno)
        self._sock.setblocking(False)
        self._timeout = None

    @classmethod
    def wrap(cls, sock):
        """A corelet socket over sock (a socket.socket, now non-blocking)."""
        self = cls.__new__(cls)
        self._sock = sock
        sock.setblocking(False)
        self._timeout = None
        return self

    # ---- plain calls (never wait) ----
    def fileno(self):
        return self._sock.fileno()

    @property
    def family(self):
        return self._sock.family

    @property
    def type(self):
        return self._sock.type

    def bind(self, address):
        self._sock.bind(address)

    def listen(self, backlog=_socket.SOMAXCONN):
        self._sock.listen(backlog)

    def getsockname(self):
        return self._sock.getsockname()

    def getpeername(self):
        return self._sock.getpeername()

    def setsockopt(self, *args):
        self._sock.setsockopt(*args)

    def getsockopt(self, *args):
        return self._sock.getsockopt(*args)

    def shutdown(self, how):
        self._sock.shutdown(how)

    def settimeout(self, timeout):
        if timeout is not None and timeout < 0:
            raise ValueError("Timeout value out of range")
        self._timeout = timeout

    def gettimeout(self):
        return self._timeout

    def close(self):
        """Closes the socket; calls of other tasklets still waiting on it fail
        with OSError(EBADF)."""
        if self._sock.fileno() >= 0:
            close_fd(self._sock.detach())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        # Closed through the reactor, which forgets the fd (with epoll, a new
        # socket that gets the same number must not find it registered).
        sock = getattr(self, "_sock", None)
        if sock is not None and sock.fileno() >= 0:
            try:
                close_fd(sock.detach())
            except OSError:
                pass

    def __repr__(self):
        return f"<corelet.socket fd={self.fileno()} {self._sock!r}>"

    # ---- calls that may wait: operations ----
    @types.coroutine
    def _retry(self, call, wait, *args):
        """call(*args) on the non-blocking socket; while it would block, wait
        (wait_readable / wait_writable, with the socket's timeout) and try
        again. Cancellation and timeouts end the wait; a close meanwhile
        makes it raise OSError(EBADF)."""
        while True:
            try:
                return call(*args)
            except _WOULD_BLOCK:
                pass
            yield wait(self._sock.fileno(), self._timeout)

    def recv(self, bufsize, flags=0):
        """Operation giving up to bufsize bytes (b'' when the peer has closed)."""
        return self._retry(self._sock.recv, wait_readable, bufsize, flags)

    def recv_into(self, buffer, nbytes=0, flags=0):
        return self._retry(self._sock.recv_into, wait_readable, buffer, nbytes, flags)

    def recvfrom(self, bufsize, flags=0):
        return self._retry(self._sock.recvfrom, wait_readable, bufsize, flags)

    def send(self, data, flags=0):
        """Operation giving the number of bytes sent (maybe fewer than len(data))."""
        return self._retry(self._sock.send, wait_writable, data, flags)

    @types.coroutine
    def sendall(self, data, flags=0):
        """Operation: sends all of data."""
        view = memoryview(data).cast("B")
        while view:
            sent = yield self._retry(self._sock.send, wait_writable, view, flags)
            view = view[sent:]

    def sendto(self, data, address):
        return self._retry(self._sock.sendto, wait_writable, data, address)

    @types.coroutine
    def accept(self):
        """Operation giving (corelet socket, address) of the next connection."""
        conn, addr = yield self._retry(self._sock.accept, wait_readable)
        return socket.wrap(conn), addr

    @types.coroutine
    def recv_exactly(self, n):
        """Operation giving exactly n bytes, or None if the peer closes first."""
        parts = []
        while n:
            chunk = yield self.recv(min(n, 1 << 20))
            if not chunk:
                return None
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)

    @types.coroutine
    def connect(self, address):
        """Operation: connects; OSError (ECONNREFUSED...) if that fails."""
        err = self._sock.connect_ex(address)
        if err in (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY, errno.EINTR):
            yield wait_writable(self._sock.fileno(), self._timeout)
            err = self._sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
        if err:
            raise OSError(err, f"connect to {address!r}: {os.strerror(err)}")


def socketpair(family=_socket.AF_UNIX, type=_socket.SOCK_STREAM, proto=0):
    a, b = _socket.socketpair(family, type, proto)
    return socket.wrap(a), socket.wrap(b)


@types.coroutine
def create_connection(address, timeout=None):
    """Operation giving a connected TCP corelet socket (the first address of
    getaddrinfo that accepts; the resolution itself blocks, as in asyncio's
    default resolver it would run on a thread)."""
    host, port = address
    last = None
    for family, type_, proto, _name, sockaddr in _socket.getaddrinfo(host, port, type=_socket.SOCK_STREAM):
        s = socket(family, type_, proto)
        s.settimeout(timeout)
        try:
            yield s.connect(sockaddr)
            return s
        except OSError as e:
            last = e
            s.close()
    raise last if last else OSError(f"getaddrinfo({host!r}, {port}) returned nothing")


def create_server(address, *, family=_socket.AF_INET, backlog=_socket.SOMAXCONN, reuse_port=False):
    """A listening TCP corelet socket (SO_REUSEADDR set)."""
    s = socket(family, _socket.SOCK_STREAM)
    s.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    if reuse_port:
        s.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
    s.bind(address)
    s.listen(backlog)
    return s


class File:
    """A binary file whose reads and writes are operations through the reactor:
    ``data = yield f.read()``, ``yield f.write(b"...")``. Made by corelet.open."""

    _CHUNK = 1 << 16

    def __init__(self, path, mode="rb", perms=0o666):
        if "b" not in mode or "t" in mode:
            raise ValueError(f"corelet.open: binary modes only ('rb', 'wb', 'ab', 'r+b', ...), not {mode!r}")
        flags = {"r": os.O_RDONLY, "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                 "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND, "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL}
        base = mode.replace("b", "").replace("+", "")
        if base not in flags:
            raise ValueError(f"corelet.open: invalid mode {mode!r}")
        f = flags[base]
        if "+" in mode:
            f = (f & ~(os.O_RDONLY | os.O_WRONLY)) | os.O_RDWR
        self.name = path
        self.mode = mode
        self._fd = os.open(path, f | os.O_CLOEXEC, perms)

    def fileno(self):
        return self._fd

    @property
    def closed(self):
        return self._fd < 0

    def _check(self):
        if self._fd < 0:
            raise ValueError("I/O operation on closed file")
        return self._fd

    @types.coroutine
    def read(self, n=-1):
        """Operation giving up to n bytes from the file position (all the rest
        if n < 0); b'' at the end."""
        fd = self._check()
        if n >= 0:
            return (yield _read(fd, n))
        parts = []
        while True:
            chunk = yield _read(fd, self._CHUNK)
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)

    @types.coroutine
    def write(self, data):
        """Operation: writes all of data at the file position; gives its length."""
        fd = self._check()
        view = memoryview(data).cast("B")
        total = len(view)
        while view:
            n = yield _write(fd, view)
            view = view[n:]
        return total

    def pread(self, n, offset):
        """Operation giving up to n bytes at offset (the position is unchanged)."""
        return _read(self._check(), n, offset)

    def pwrite(self, data, offset):
        """Operation giving the bytes written at offset (maybe fewer)."""
        return _write(self._check(), data, offset)

    def seek(self, offset, whence=os.SEEK_SET):
        return os.lseek(self._check(), offset, whence)

    def close(self):
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            close_fd(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        if getattr(self, "_fd", -1) >= 0:
            try:
                close_fd(self._fd)
            except OSError:
                pass

    def __repr__(self):
        return f"<corelet.File {self.name!r} mode={self.mode!r} fd={self._fd}>"


def open(path, mode="rb", perms=0o666):  # noqa: A001 - the io-style name, on purpose
    """Opens path as a corelet.File (binary modes only)."""
    return File(path, mode, perms)
