"""Stored output and live followers.

How it works: each attempt's output is two append-only files in the run folder:
  attempt-<k>.log   the raw bytes of stdout and stderr in the order they were read (`cat` shows
                    what a terminal would have shown);
  attempt-<k>.idx   one 24-byte record a chunk: offset in .log, read time (ns, UTC), length,
                    stream (1 stdout, 2 stderr).
Data is written before its index record, so a crash leaves at worst unindexed bytes, which
readers ignore. Chunks are at most 64 KiB (PITFALLS 16).

Followers never receive pushed data: the file is the one source of truth, and a follower
reads index records from its own position, then waits on the run's Channel for "more was
written". Writing and notifying happen on the event-loop thread, so the hand-over from stored
to live output has no gap and no duplicate by construction; a slow follower only falls
behind in the file and costs the job and other followers nothing; memory per follower is one
chunk.
"""
from __future__ import annotations

import asyncio
import os
import struct
from dataclasses import dataclass

__all__ = ["Chunk", "OutputWriter", "OutputReader", "Channel", "Hub", "STDOUT", "STDERR", "MAX_CHUNK"]

STDOUT, STDERR = 1, 2
MAX_CHUNK = 64 * 1024
_RECORD = struct.Struct("<QqIB3x")  # offset, ts_ns, length, stream
_SCAN_BLOCK = 64 * 1024


@dataclass(frozen=True)
class Chunk:
    offset: int
    ts_ns: int
    stream: int
    data: bytes
    attempt: int


def log_path(run_dir: str, attempt: int) -> str:
    return os.path.join(run_dir, f"attempt-{attempt}.log")


def idx_path(run_dir: str, attempt: int) -> str:
    return os.path.join(run_dir, f"attempt-{attempt}.idx")


class OutputWriter:
    """Appends one attempt's chunks. Bytes beyond `cap` are counted in `dropped`, not stored."""

    def __init__(self, run_dir: str, attempt: int, cap: int) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        self._data = os.open(log_path(run_dir, attempt), flags, 0o640)
        self._idx = os.open(idx_path(run_dir, attempt), flags, 0o640)
        self.cap, self.stored, self.dropped, self.write_error = cap, 0, 0, ""

    def write(self, stream: int, data: bytes, ts_ns: int) -> bool:
        """Store what fits under the cap; True when anything new was stored."""
        room = max(self.cap - self.stored, 0)
        keep, self.dropped = data[:room], self.dropped + max(len(data) - room, 0)
        if not keep or self.write_error:
            self.dropped += len(keep) if self.write_error else 0
            return False
        try:
            for start in range(0, len(keep), MAX_CHUNK):
                piece = keep[start:start + MAX_CHUNK]
                _write_all(self._data, piece)
                _write_all(self._idx, _RECORD.pack(self.stored, ts_ns, len(piece), stream))
                self.stored += len(piece)
        except OSError as exc:  # a full disk: keep draining the job, count, report
            self.write_error = f"output not stored after {self.stored} bytes: {exc.strerror}"
            self.dropped += len(keep)
        return True

    def close(self) -> None:
        for fd in (self._data, self._idx):
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class OutputReader:
    """Reads one attempt's stored chunks. Safe while the writer appends."""

    def __init__(self, run_dir: str, attempt: int) -> None:
        self.run_dir, self.attempt = run_dir, attempt
        self._idx_path, self._log_path = idx_path(run_dir, attempt), log_path(run_dir, attempt)

    def count(self) -> int:
        try:
            return os.path.getsize(self._idx_path) // _RECORD.size
        except FileNotFoundError:
            return 0

    def records(self, start: int, stop: int) -> list[tuple[int, int, int, int]]:
        """(offset, ts_ns, length, stream) for records start..stop-1."""
        if stop <= start:
            return []
        with open(self._idx_path, "rb") as f:
            f.seek(start * _RECORD.size)
            raw = f.read((stop - start) * _RECORD.size)
        usable = len(raw) - len(raw) % _RECORD.size
        return [_RECORD.unpack_from(raw, pos) for pos in range(0, usable, _RECORD.size)]

    def chunks(self, start: int, stop: int, skip_before: int = 0) -> list[Chunk]:
        """Chunks for records start..stop-1; bytes before offset `skip_before` are cut off."""
        records = self.records(start, stop)
        if not records:
            return []
        first, last = records[0][0], records[-1][0] + records[-1][2]
        with open(self._log_path, "rb") as f:
            f.seek(first)
            blob = f.read(last - first)
        out = []
        for offset, ts_ns, length, stream in records:
            cut = max(skip_before - offset, 0)
            if cut < length:
                data = blob[offset - first + cut: offset - first + length]
                out.append(Chunk(offset + cut, ts_ns, stream, data, self.attempt))
        return out

    def record_at(self, offset: int) -> int:
        """Index of the record holding byte `offset` (count() when past the end)."""
        lo, hi = 0, self.count()
        while lo < hi:
            mid = (lo + hi) // 2
            rec_offset, _, length, _ = self.records(mid, mid + 1)[0]
            if rec_offset + length <= offset:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def offset_of_last_lines(self, lines: int) -> int:
        """Offset where the last `lines` lines start, scanning back from the end in blocks.

        A final line without a newline counts as a line, as `tail -n` counts it.
        """
        try:
            size = os.path.getsize(self._log_path)
        except FileNotFoundError:
            return 0
        if lines <= 0:
            return size
        with open(self._log_path, "rb") as f:
            return _scan_back(f, size, lines)


def _scan_back(f, size: int, lines: int) -> int:  # noqa: ANN001
    pos, seen, first = size, 0, True
    while pos > 0:
        start = max(pos - _SCAN_BLOCK, 0)
        f.seek(start)
        block = f.read(pos - start)
        end = len(block)
        if first and block.endswith(b"\n"):
            end -= 1  # the newline ending the last line does not start a new one
        first = False
        while True:
            nl = block.rfind(b"\n", 0, end)
            if nl < 0:
                break
            seen += 1
            if seen == lines:
                return start + nl + 1
            end = nl
        pos = start
    return 0


class Channel:
    """A run's "more was written / the run changed" signal. Followers wait; the writer bumps."""

    def __init__(self) -> None:
        self.version = 0
        self.closed = False
        self._waiters: list[asyncio.Future] = []

    def bump(self) -> None:
        self.version += 1
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        self.bump()

    async def wait(self, seen_version: int, timeout: float) -> None:
        """Return once version != seen_version (at once if it already is), or after `timeout`."""
        if self.version != seen_version or self.closed:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            pass


class Hub:
    """Channels of active runs, and the count of attached followers (shown by GetHealth)."""

    def __init__(self) -> None:
        self.channels: dict[str, Channel] = {}
        self.followers = 0

    def open(self, ref: str) -> Channel:
        return self.channels.setdefault(ref, Channel())

    def get(self, ref: str) -> Channel | None:
        return self.channels.get(ref)

    def close(self, ref: str) -> None:
        channel = self.channels.pop(ref, None)
        if channel:
            channel.close()

    def close_all(self) -> None:
        for ref in list(self.channels):
            self.close(ref)
