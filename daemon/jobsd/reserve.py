"""The store's reserve: a file of RESERVE bytes beside the database, made when writes work and
given up when a run's end cannot be recorded for want of space (release): a run that filled the
disk with its own output would otherwise stay `running` until someone frees space, its job busy
and `jobs run --wait` waiting. What it frees is enough for many commits."""
from __future__ import annotations

import logging
import os

__all__ = ["Reserve", "RESERVE"]

log = logging.getLogger("jobsd.store")
RESERVE = 1 << 20  # bytes


class Reserve:
    def __init__(self, path: str) -> None:
        self.path = path

    def keep(self) -> bool:
        """Make the reserve if it is missing and the disk has room to spare (True: it is there)."""
        if os.path.exists(self.path):
            return True
        try:
            disk = os.statvfs(os.path.dirname(self.path) or ".")
            if disk.f_bavail * disk.f_frsize < 4 * RESERVE:  # not the last free bytes of a disk
                return False
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError:
            return False
        try:
            os.posix_fallocate(fd, 0, RESERVE)
            return True
        except OSError:
            os.unlink(self.path)
            return False
        finally:
            os.close(fd)

    def release(self) -> bool:
        """Free the reserve's space for the store (True: there was one to free)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return False
        log.warning("the disk is full: gave up the store's reserve (%d KiB) to record a run's end; it is made "
                    "again once there is space", RESERVE >> 10)
        return True
