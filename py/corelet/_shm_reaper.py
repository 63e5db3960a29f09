"""The reaper of corelet.shared_memory's segments: removes a segment's name
(/dev/shm/<name>) once no process holds the segment any more, however its
holders ended (close, exit, kill).

It runs as a script of its own (``python -I -S _shm_reaper.py FD``, started
by corelet.shared_memory at a program's first segment), so that it needs
nothing of the program and outlives it while other processes still hold
segments. FD is a SOCK_SEQPACKET socket on which the program and the
processes it forks register the segments they create, one message each:
``name \\0 st_dev \\0 st_ino``.

How "no process holds it" is seen:
- every holder keeps a shared flock (LOCK_SH) on its own open file
  description of the segment, from attach until the description's last
  reference goes (its fd closed in every process that inherited it, and its
  mapping unmapped): the kernel drops the lock then, kill or not;
- the reaper has its own description of each segment it watches, and an
  inotify watch on it: every last close of a description of the segment
  raises IN_CLOSE_*; on each, and once at registration, the reaper tries an
  exclusive lock without waiting. It gets one only when no holder's shared
  lock is left; holding it, it unlinks the name if the name still refers to
  this segment (not to one made since under the same name), then lets go.
  An attacher that opened the name meanwhile gets its shared lock only after
  that, sees the name gone, and reports the segment as not found;
- a segment unlinked by its user (SharedMemory.unlink()) is dropped on its
  IN_ATTRIB (link count 0).

The reaper ends when every process that could register (the socket's other
ends) is gone and it watches nothing.
"""

import ctypes
import errno
import fcntl
import os
import select
import socket
import struct
import sys

IN_CLOSE_WRITE = 0x008
IN_CLOSE_NOWRITE = 0x010
IN_ATTRIB = 0x004
IN_DELETE_SELF = 0x400
IN_IGNORED = 0x8000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_MASK = IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_ATTRIB | IN_DELETE_SELF
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)

SHM_DIR = "/dev/shm/"


class _Inotify:
    def __init__(self):
        libc = ctypes.CDLL(None, use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._rm = libc.inotify_rm_watch
        self._rm.argtypes = (ctypes.c_int, ctypes.c_int)
        self.fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")

    def add(self, path):
        wd = self._add(self.fd, os.fsencode(path), _MASK)
        if wd < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch", path)
        return wd

    def remove(self, wd):
        self._rm(self.fd, wd)

    def events(self):
        try:
            data = os.read(self.fd, 64 * 1024)
        except BlockingIOError:
            return
        at = 0
        while at + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, at)
            at += _EVENT.size + length
            yield wd, mask


class Reaper:
    def __init__(self, sock):
        self.sock = sock
        self.inotify = _Inotify()
        self.watched = {}  # wd -> (name, fd)
        self.registering = True

    def register(self, message):
        try:
            name, dev, ino = message.split(b"\0")
            name = os.fsdecode(name)
            dev, ino = int(dev), int(ino)
        except ValueError:
            return  # not a registration: ignored
        if "/" in name or not name:
            return
        try:
            fd = os.open(SHM_DIR + name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return  # gone already (its holders closed it and it was unlinked)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (dev, ino):  # another segment by now under that name
            os.close(fd)
            return
        try:
            # Through /proc/self/fd: the watch is on this very inode, whatever
            # the name refers to by now.
            wd = self.inotify.add(f"/proc/self/fd/{fd}")
        except OSError:
            os.close(fd)
            return
        self.watched[wd] = (name, fd)
        self.try_reap(wd)  # its holders may all have closed it before the watch

    def try_reap(self, wd):
        name, fd = self.watched[wd]
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return  # a holder is left
            raise
        try:
            if os.path.samestat(os.stat(SHM_DIR + name, follow_symlinks=False), os.fstat(fd)):
                os.unlink(SHM_DIR + name)
        except FileNotFoundError:
            pass
        self.drop(wd)

    def drop(self, wd):
        entry = self.watched.pop(wd, None)
        if entry is not None:
            self.inotify.remove(wd)
            os.close(entry[1])

    def on_event(self, wd, mask):
        if wd not in self.watched:
            return
        if mask & IN_IGNORED:
            os.close(self.watched.pop(wd)[1])
            return
        if mask & (IN_ATTRIB | IN_DELETE_SELF):
            if os.fstat(self.watched[wd][1]).st_nlink == 0:
                self.drop(wd)  # unlinked by its user
                return
        if mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE):
            self.try_reap(wd)

    def run(self):
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(self.inotify.fd, select.POLLIN)
        while self.registering or self.watched:
            for fd, _ in poller.poll():
                if fd == self.inotify.fd:
                    for wd, mask in self.inotify.events():
                        self.on_event(wd, mask)
                    continue
                try:
                    message = self.sock.recv(4096)
                except BlockingIOError:
                    continue
                if not message:  # every process that could register is gone
                    self.registering = False
                    poller.unregister(self.sock.fileno())
                else:
                    self.register(message)


def main(argv):
    sock = socket.socket(fileno=int(argv[1]))
    sock.setblocking(False)
    Reaper(sock).run()


if __name__ == "__main__":
    main(sys.argv)
