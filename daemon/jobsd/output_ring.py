"""The end of an attempt's output past its head: the latest bytes, kept in a spill file used as a ring.

OutputWriter (output.py) stores an attempt's first half of limits.output at once and hands the rest
here; when the attempt ends it appends what the ring kept, after a marker line. A spill file rather
than memory: the limit is 256 MiB by default, and several runs may be over theirs at once.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator

__all__ = ["TailRing"]


class TailRing:
    """The latest `size` bytes written past the head, in a spill file used as a ring, with their
    streams and read times (`_spans`: one per write, oldest first, cut as the ring overwrites them).

    The spill file is named like the daemon's temp files (.attempt-K.tail.tmp): one a killed jobsd
    leaves behind is removed by the start-up repair of run folders."""

    def __init__(self, path: str, size: int) -> None:
        self.path, self.size = path, size
        self.total = 0  # bytes written past the head
        self.error = ""
        self._fd = -1
        self._spans: deque[list[int]] = deque()  # [start (in `total` terms), length, stream, ts_ns]

    @property
    def held(self) -> int:
        return min(self.total, self.size)

    @property
    def dropped(self) -> int:
        return self.total - self.held

    @property
    def kept_since(self) -> int:
        """The read time (ns) of the oldest byte kept."""
        return self._spans[0][3] if self._spans else 0

    def add(self, stream: int, data: bytes, ts_ns: int) -> bool:
        """Keep `data` as the latest bytes; False when the spill file cannot be written (self.error)."""
        if len(data) > self.size:  # only its end can be kept
            self.total += len(data) - self.size
            data = data[len(data) - self.size:]
        if not data:  # size 0: nothing is kept
            return True
        try:
            if self._fd < 0:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            at = self.total % self.size
            first = data[:self.size - at]
            _pwrite_all(self._fd, first, at)
            if len(first) < len(data):
                _pwrite_all(self._fd, data[len(first):], 0)
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            return False
        self._spans.append([self.total, len(data), stream, ts_ns])
        self.total += len(data)
        while self._spans and self._spans[0][0] + self._spans[0][1] <= self.total - self.size:
            self._spans.popleft()
        return True

    def pieces(self, limit: int) -> Iterator[tuple[int, bytes, int]]:
        """(stream, bytes, read time) of what is kept, oldest first, each at most `limit` bytes."""
        keep_from = self.total - self.held
        for start, length, stream, ts_ns in self._spans:
            start, end = max(start, keep_from), start + length
            while start < end:
                step = min(end - start, limit, self.size - start % self.size)  # up to the ring's end
                yield stream, os.pread(self._fd, step, start % self.size), ts_ns
                start += step

    def discard(self) -> None:
        self._spans.clear()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            try:
                os.unlink(self.path)
            except OSError:
                pass


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
