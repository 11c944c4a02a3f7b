"""The store lock: one daemon per state directory (DESIGN 5, PITFALLS 30).

flock, not lockf (a lockf lock vanishes when the process closes any other handle to the
file). The file is opened, locked without blocking, then holds our pid and socket; it is
never deleted, so a crashed daemon leaves a file but no lock (the kernel drops flocks with
the process). The descriptor is close-on-exec, so jobs never inherit it.
"""
from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass

from jobsd_lib.errors import StoreLocked

__all__ = ["StoreLock", "acquire"]


@dataclass
class StoreLock:
    path: str
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the flock; the file stays
            self.fd = -1


def acquire(path: str, socket: str) -> StoreLock:
    """Take the lock or raise StoreLocked naming the owner's pid."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = _read_owner(fd)
        os.close(fd)
        raise StoreLocked(f"the job store is locked by another jobsd ({owner}); lock file {path}. "
                          "Stop that daemon first, or give this one another --home/--state-dir",
                          lock_file=path) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid={os.getpid()}\nsocket={socket}\n".encode(), 0)
    os.fsync(fd)
    return StoreLock(path, fd)


def _read_owner(fd: int) -> str:
    text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    if "pid" not in fields:
        return "pid unknown"
    return f"pid {fields['pid']}, socket {fields.get('socket', '?')}"
