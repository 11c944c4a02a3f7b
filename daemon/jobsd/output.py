"""Stored output and live followers.

How it works: each attempt's output is two append-only files in the run folder:
  attempt-<k>.log   the raw bytes of stdout and stderr in the order they were read (`cat` shows
                    what a terminal would have shown);
  attempt-<k>.idx   one 24-byte record a chunk: offset in .log, read time (ns, UTC), length,
                    stream (1 stdout, 2 stderr).
Data is written before its index record, so a crash leaves at worst unindexed bytes, which
readers ignore. Chunks are at most 1 MiB (MAX_CHUNK): a quarter of gRPC's default 4 MiB
message limit (PITFALLS 16), so any client can receive them.

An attempt keeps at most limits.output bytes of output: the first half as it comes, and the last
half (the end is where the error is), held in a ring (output_ring.py) until the attempt ends and
then appended after a marker line, indexed as stderr, that says how many bytes were dropped:
`--- jobsd: N bytes of output dropped here (limits.output = L keeps the first H and the last T) ---`.

Followers never receive pushed data: the file is the one source of truth, and a follower
reads index records from its own position, then waits on the run's Channel for "more was
written". Writing and notifying happen on the event-loop thread, so the hand-over from stored
to live output has no gap and no duplicate by construction; a slow follower only falls
behind in the file and costs the job and other followers nothing. Records of one stream read
within the same millisecond reach a follower as one chunk (up to 1 MiB), read with one
pread just before it is sent, so a follower holds one chunk at a time (`OutputReader.chunks`).
"""
from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from jobsd.output_ring import TailRing
from jobsd_lib.paths import attempt_index_name, attempt_log_name  # the names, defined once (receipts name them too)

__all__ = ["Chunk", "OutputWriter", "OutputReader", "Channel", "Hub", "STDOUT", "STDERR", "MAX_CHUNK", "MIN_CHUNK"]

STDOUT, STDERR = 1, 2
MAX_CHUNK = 1 << 20  # bytes; 64 KiB chunks capped one follower at ~450 MB/s, 1 MiB at ~900 (bench/README.md)
MIN_CHUNK = 64 << 10  # the chunk limit with many followers
FOLLOWERS_BUDGET = 16 << 20  # what all followers' chunks may hold at once, before MIN_CHUNK applies
RECORD = struct.Struct("<QqIB3x")  # offset, ts_ns, length, stream
_SCAN_BLOCK = 64 * 1024
_MS = 1_000_000  # ns: records read in the same millisecond may reach a follower as one chunk


@dataclass(frozen=True)
class Chunk:
    offset: int
    ts_ns: int
    stream: int
    data: bytes
    attempt: int


def log_path(run_dir: str, attempt: int) -> str:
    return os.path.join(run_dir, attempt_log_name(attempt))


def idx_path(run_dir: str, attempt: int) -> str:
    return os.path.join(run_dir, attempt_index_name(attempt))


def tail_path(run_dir: str, attempt: int) -> str:
    """The spill file of an attempt's output past its head (see TailRing)."""
    return os.path.join(run_dir, f".attempt-{attempt}.tail.tmp")


class OutputWriter:
    """Appends one attempt's chunks, keeping the first and the last half of `cap` bytes.

    Up to `head` (half the cap) bytes go straight to the files, where followers read them at once.
    Later bytes go to a ring of the other half (`TailRing`, a spill file beside the log) that keeps
    only the latest of them; `close()` appends what it kept, after a marker line saying how much
    was dropped in between (the end of a log is where the error is). So a log holds at most `cap`
    bytes of output plus the marker; `stored` counts the output kept, `dropped` the rest.
    """

    def __init__(self, run_dir: str, attempt: int, cap: int) -> None:
        """Files that cannot be created (a full disk) make a writer that stores nothing: the attempt
        runs all the same, its output drained and counted, and the error recorded with it."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        self.cap, self.head = cap, cap // 2
        self.stored, self.write_error, self._end, self._lost, self._last = 0, "", 0, 0, b""
        self._data = self._idx = -1
        self._tail = TailRing(tail_path(run_dir, attempt), cap - self.head)
        try:
            self._data = os.open(log_path(run_dir, attempt), flags, 0o640)
            self._idx = os.open(idx_path(run_dir, attempt), flags, 0o640)
        except OSError as exc:
            self.write_error = f"output not stored: cannot create its files: {exc.strerror}"

    @property
    def dropped(self) -> int:
        """Bytes of output not kept (so far: the ring's older bytes, and what an error lost)."""
        return self._lost + self._tail.dropped

    def write(self, stream: int, data: bytes, ts_ns: int) -> bool:
        """Store what fits in the head (True when anything new was stored: followers may read it);
        the rest goes to the tail ring."""
        if self.write_error:
            self._lost += len(data)
            return False
        room = max(self.head - self.stored, 0)
        keep, rest = data[:room], data[room:]
        if rest and not self._tail.add(stream, rest, ts_ns):
            self._fail(f"output not stored after {self.stored} bytes: {self._tail.error}", len(rest))
        if keep:
            return self._append(stream, keep, ts_ns)
        return False

    def _append(self, stream: int, data: bytes, ts_ns: int, counted: bool = True) -> bool:
        try:
            for start in range(0, len(data), MAX_CHUNK):
                piece = data[start:start + MAX_CHUNK]
                _write_all(self._data, piece)
                _write_all(self._idx, RECORD.pack(self._end, ts_ns, len(piece), stream))
                self._end += len(piece)
                self.stored += len(piece) if counted else 0
                self._last = piece[-1:]
        except OSError as exc:  # a full disk: keep draining the job, count, report
            self._fail(f"output not stored after {self.stored} bytes: {exc.strerror}", len(data) if counted else 0)
        return True

    def _fail(self, error: str, lost: int) -> None:
        self.write_error, self._lost = error, self._lost + lost + self._tail.held
        self._tail.discard()

    def close(self) -> None:
        """Append what the tail ring kept (after the marker when bytes were dropped), then release the files."""
        if self._tail.held and not self.write_error:
            if self._tail.dropped:
                self._append(STDERR, self._marker(), self._tail.kept_since, counted=False)
            for stream, data, ts_ns in self._tail.pieces(MAX_CHUNK):
                if self.write_error:
                    self._lost += len(data)
                else:
                    self._append(stream, data, ts_ns)
        self._tail.discard()
        for fd in (self._data, self._idx):
            if fd >= 0:
                os.close(fd)
        self._data = self._idx = -1

    def _marker(self) -> bytes:
        lead = b"" if self._last in (b"", b"\n") else b"\n"  # the marker is a line of its own
        return lead + (f"--- jobsd: {self._tail.dropped} bytes of output dropped here (limits.output = {self.cap} "
                       f"keeps the first {self.head} and the last {self.cap - self.head}) ---\n").encode()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class OutputReader:
    """Reads one attempt's stored chunks. Safe while the writer appends.

    The two files are opened on first use and kept open (reads are then one pread each, with no
    open or stat by path); `close()` releases them, and the next read opens them again. A file
    that does not exist yet reads as empty.
    """

    def __init__(self, run_dir: str, attempt: int) -> None:
        self.run_dir, self.attempt = run_dir, attempt
        self._idx_path, self._log_path = idx_path(run_dir, attempt), log_path(run_dir, attempt)
        self._idx_fd: int | None = None
        self._log_fd: int | None = None

    def count(self) -> int:
        fd = self._idx()
        return os.fstat(fd).st_size // RECORD.size if fd is not None else 0

    def size(self) -> int:
        """Bytes in the .log (an index record may not name the last of them yet)."""
        if self._log_fd is None:
            self._log_fd = _open_existing(self._log_path)
        return os.fstat(self._log_fd).st_size if self._log_fd is not None else 0

    def records(self, start: int, stop: int) -> list[tuple[int, int, int, int]]:
        """(offset, ts_ns, length, stream) for records start..stop-1 (fewer if they are not written yet)."""
        fd = self._idx()
        if stop <= start or fd is None:
            return []
        raw = os.pread(fd, (stop - start) * RECORD.size, start * RECORD.size)
        return list(RECORD.iter_unpack(raw[:len(raw) - len(raw) % RECORD.size]))

    def chunks(self, records: list[tuple[int, int, int, int]], skip_before: int = 0,
               limit: int = MAX_CHUNK) -> Iterator[Chunk]:
        """Chunks for consecutive `records` (from `records()`); bytes before offset `skip_before` are cut off.

        Consecutive records of one stream read in the same millisecond (UTC) make one chunk of at
        most `limit` bytes, stamped with the first one's read time (a record bigger than `limit`
        goes out in pieces with its read time): a burst that was read in many
        small pieces costs a follower few messages, while output that trickles keeps every
        record's own read time. Each chunk's bytes are read with one pread when the iteration
        reaches it, so a follower holds one chunk at a time, whatever the records' sizes.
        """
        group: list[int] = []  # start, end, ts_ns, stream of the chunk being gathered
        for offset, ts_ns, length, stream in records:
            start, end = max(offset, skip_before), offset + length
            if start >= end:
                continue
            if group and stream == group[3] and ts_ns // _MS == group[2] // _MS and end - group[0] <= limit:
                group[1] = end
                continue
            if group:
                yield self._chunk(*group)
            while end - start > limit:  # a record bigger than the limit: pieces, each with its read time
                yield self._chunk(start, start + limit, ts_ns, stream)
                start += limit
            group = [start, end, ts_ns, stream]
        if group:
            yield self._chunk(*group)

    def _chunk(self, start: int, end: int, ts_ns: int, stream: int) -> Chunk:
        return Chunk(start, ts_ns, stream, os.pread(self._log(), end - start, start), self.attempt)

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

    def close(self) -> None:
        """Release the open files (safe to call again; reads reopen them)."""
        for fd in (self._idx_fd, self._log_fd):
            if fd is not None:
                os.close(fd)
        self._idx_fd = self._log_fd = None

    def _idx(self) -> int | None:
        if self._idx_fd is None:
            self._idx_fd = _open_existing(self._idx_path)
        return self._idx_fd

    def _log(self) -> int:
        # Only called once the index names bytes, which are written before their index record.
        if self._log_fd is None:
            self._log_fd = os.open(self._log_path, os.O_RDONLY | os.O_CLOEXEC)
        return self._log_fd


def _open_existing(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


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

    async def wait(self, seen_version: int, timeout: float) -> bool:
        """Return once version != seen_version (at once if it already is), or after `timeout`.

        True when something changed, False when the timeout passed first.
        """
        if self.version != seen_version or self.closed:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            if waiter in self._waiters:  # an idle follower re-waits every `timeout`: leave nothing behind
                self._waiters.remove(waiter)
            return False
        return True


class Hub:
    """Channels of active runs, and the count of attached followers (shown by GetHealth)."""

    def __init__(self) -> None:
        self.channels: dict[str, Channel] = {}
        self.followers = 0

    def chunk_limit(self) -> int:
        """The largest chunk a follower sends now: MAX_CHUNK (fastest) while few are attached, less as
        more attach so that all their chunks together stay near FOLLOWERS_BUDGET, never below MIN_CHUNK.
        A chunk in flight is held about three times over (bytes, message, gRPC's copy)."""
        return max(MIN_CHUNK, min(MAX_CHUNK, FOLLOWERS_BUDGET // max(self.followers, 1)))

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
