"""Runs one attempt of a job as a child process group, and stops it.

How it works: `loop.subprocess_exec` with our own protocol, so every pipe read arrives as a
callback with its stream (fd 1 or 2) and goes straight to the OutputWriter, then the run's
Channel is bumped. The child gets its own session (`start_new_session=True`: never
`preexec_fn`, which crashed children beside a gRPC server, PITFALLS 14), stdin from
/dev/null, an explicit environment, and resource limits through a `prlimit` exec wrapper.

Stopping: nothing of an attempt outlives it, whether it timed out, was stopped or exited on its
own (systemd's KillMode=control-group, without a cgroup). A process that calls setsid leaves
the group, so the attempt's environment also carries JOBSD_INVOCATION_ID, a random id per
attempt that descendants inherit (a ProcessTree): `kill_group` sends SIGTERM to the group and
to every process whose /proc/<pid>/environ holds that id, waits up to kill_grace, then SIGKILLs
whatever is left and sweeps again until none is found. Reading every environ costs ~3 us a
process (and ~10 us inside the busy daemon), so a sweep reads only pids handed out since the
attempt started (see ProcessTree). A process that clears its environment and leaves the group
still escapes; its hold on the output pipe is cut by the short drain after the end (PITFALLS 20).
"""
from __future__ import annotations

import asyncio
import fcntl
import itertools
import logging
import os
import secrets
import shutil
import signal
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from jobsd import clock
from jobsd_lib.kernel.decisions import AttemptResult
from jobsd.output import STDERR, STDOUT, OutputWriter

__all__ = ["Launch", "Attempt", "ProcessTree", "attempt_tree", "environ_has", "start_attempt", "kill_group"]

log = logging.getLogger("jobsd.executor")
_DRAIN_AFTER_EXIT = 1.0  # seconds to wait for EOF once the main process is gone
_KILL_SWEEP = 1.0  # seconds of SIGKILL sweeps before giving up on a process that does not die
_POLL = 0.02  # no event tells us that the last member of a group (or an escaped process) died
_RESERVED_PIDS = 300  # Linux restarts at this pid when it wraps around pid_max
_PID_MARGIN = 1000  # forks the counters may miss (between the spawn and our first reading)
_PROBE_DIRECTLY = 256  # a window of at most this many pids is probed pid by pid, without listing /proc
MARKER_VARIABLE = "JOBSD_INVOCATION_ID"
_PIPE_FULL = 64 * 1024  # a read this big found the pipe full (Linux's default pipe buffer)
PIPE_GROWN = 1 << 20  # a busy output pipe's buffer and read size (Linux's default pipe-max-size)
MAX_GROWN_PIPES = 16  # at most 16 MiB of pipe buffers at once (the user's soft limit is 64 MiB)


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    cwd: str
    env: dict[str, str] = field(repr=False)
    timeout: float | None
    kill_grace: float
    memory: int | None = None
    cpu_time: float | None = None
    open_files: int | None = None
    program: str = ""  # the file argv[0] names (resolve_program); "": the child searches PATH


def wrap_limits(launch: Launch) -> list[str]:
    """argv with a prlimit wrapper when any limit is set (PITFALLS 22)."""
    limits = []
    if launch.memory:
        limits.append(f"--as={launch.memory}")
    if launch.cpu_time:
        limits.append(f"--cpu={max(int(launch.cpu_time), 1)}")
    if launch.open_files:
        limits.append(f"--nofile={launch.open_files}")
    if not limits:
        return launch.argv
    prlimit = shutil.which("prlimit") or "/usr/bin/prlimit"
    return [prlimit, *limits, "--", *launch.argv]


def resolve_program(argv0: str, cwd: str, path: str) -> tuple[str, str | None]:
    """(the file argv0 names, "" when it cannot be told; None) or ("", the error message when argv0
    cannot be executed). Checked before the spawn for a clear message, and the file is what the
    child then executes: without it, the child tries argv0 in every PATH folder in turn (`true`
    took 8 failed execve calls here, all while the daemon waits on vfork)."""
    if "/" in argv0:
        target = argv0 if os.path.isabs(argv0) else os.path.join(cwd, argv0)
        if not os.path.exists(target):
            return "", f"command not found: {argv0}"
        if os.path.isdir(target) or not os.access(target, os.X_OK):
            return "", f"command is not executable: {argv0}"
        return target, None
    found = shutil.which(argv0, path=path)
    if found is None:
        return "", f"command not found: {argv0!r} is not in PATH ({path})"
    return (found if os.path.isabs(found) else ""), None  # a relative PATH entry is the child's cwd's


class _Protocol(asyncio.SubprocessProtocol):
    grown = 0  # output pipes grown to PIPE_GROWN, all attempts together

    def __init__(self, writer: OutputWriter, on_output: Callable[[], None]) -> None:
        self.writer, self.on_output = writer, on_output
        self.exited = asyncio.get_running_loop().create_future()
        self.pipes_closed = asyncio.get_running_loop().create_future()
        self._open_pipes = 2
        self._transport: asyncio.SubprocessTransport | None = None
        self._tried: set[int] = set()  # fds whose pipe we tried to grow
        self._grown: set[int] = set()  # fds whose pipe we grew (counted in `grown`)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if self.writer.write(STDOUT if fd == 1 else STDERR, data, clock.now_ns()):
            self.on_output()
        if len(data) >= _PIPE_FULL and fd not in self._tried:
            self._grow(fd)

    def _grow(self, fd: int) -> None:
        """The job fills its pipe faster than we read it: give the pipe a 1 MiB buffer and read it
        1 MiB at a time. The job then writes 16 times fewer times into a full pipe, and its output
        is stored (and sent to followers) in up to 16 times fewer, bigger chunks: a job writing
        as fast as it can runs at the speed it has writing to a file. Quiet pipes stay at 64 KiB;
        at most MAX_GROWN_PIPES are grown at once (the kernel counts pipe buffers per user, and past
        its soft limit gives that user's new pipes a small buffer)."""
        self._tried.add(fd)
        pipe = self._transport.get_pipe_transport(fd) if self._transport else None
        if pipe is None or _Protocol.grown >= MAX_GROWN_PIPES:
            return
        try:
            fcntl.fcntl(pipe.get_extra_info("pipe").fileno(), fcntl.F_SETPIPE_SZ, PIPE_GROWN)
        except (OSError, AttributeError):  # EPERM past the user's pipe-buffer limit: keep 64 KiB
            return
        pipe.max_size = PIPE_GROWN  # asyncio's read size for this pipe (256 KiB by default)
        _Protocol.grown += 1
        self._grown.add(fd)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd in self._grown:
            self._grown.discard(fd)
            _Protocol.grown -= 1
        self._open_pipes -= 1
        if self._open_pipes <= 0 and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class Attempt:
    """A started attempt. `wait()` returns its AttemptResult; `stop(reason)` ends it early."""

    def __init__(self, launch: Launch, transport: asyncio.SubprocessTransport, protocol: _Protocol,
                 tree: ProcessTree | None = None) -> None:
        self.launch, self.transport, self.protocol = launch, transport, protocol
        self.pid = transport.get_pid()
        self.pgid = self.pid  # new session: the leader's pid is the group id
        self.tree = tree  # every process of the attempt, in the group or not
        self._stop_reason = ""
        self._stopper: asyncio.Task | None = None

    @property
    def invocation_id(self) -> str:
        """The attempt's JOBSD_INVOCATION_ID (stored, so a restart can find what a dead daemon left)."""
        return self.tree.marker.partition(b"=")[2].decode() if self.tree else ""

    def stop(self, reason: str) -> None:
        """Ask the attempt to end: SIGTERM to its group and escaped descendants, SIGKILL after kill_grace.

        reason: cancelled|interrupted|timed_out. The first call wins; `wait()` returns once all is gone."""
        if not self._stop_reason:
            self._stop_reason = reason
            self._stopper = asyncio.ensure_future(self._kill(self.protocol.exited))

    async def _kill(self, exited: asyncio.Future | None) -> None:
        label = f"run {self.launch.env.get('JOBSD_RUN', '?')} attempt {self.launch.env.get('JOBSD_ATTEMPT', '?')}"
        await kill_group(self.pgid, self.launch.kill_grace, exited, tree=self.tree, label=label)

    async def wait(self) -> AttemptResult:
        try:
            await asyncio.wait_for(asyncio.shield(self.protocol.exited), self.launch.timeout)
        except asyncio.TimeoutError:
            self.stop("timed_out")
            await self.protocol.exited
        code = self.transport.get_returncode()
        await self._reap_group()
        return AttemptResult(
            exit_code=code if code is not None and code >= 0 else None,
            signal=-code if code is not None and code < 0 else None,
            timed_out=self._stop_reason == "timed_out",
            cancelled=self._stop_reason == "cancelled",
            interrupted=self._stop_reason == "interrupted",
        )

    async def _reap_group(self) -> None:
        """The main process is gone: stop its leftovers (group and escaped), drain the pipes briefly, close."""
        if self._stopper is None:
            self._stopper = asyncio.ensure_future(self._kill(None))
        await self._stopper
        try:
            await asyncio.wait_for(asyncio.shield(self.protocol.pipes_closed), _DRAIN_AFTER_EXIT)
        except asyncio.TimeoutError:
            log.warning("pid %s: output pipe still open after the end (held by a process that left the group and "
                        "cleared its environment); closing it", self.pid)
        self.transport.close()


_watched_loop: asyncio.AbstractEventLoop | None = None


def _watch_children_with_pidfds(loop: asyncio.AbstractEventLoop) -> None:
    """On Python 3.11, wait for children through pidfds on the loop instead of asyncio's default
    ThreadedChildWatcher, which starts (and waits for) one thread per child: ~1 ms of the
    loop's time per run. Python 3.12+ picks pidfds itself where the kernel has them."""
    global _watched_loop
    if _watched_loop is loop or sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    _watched_loop = loop
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            os.close(os.pidfd_open(os.getpid()))  # the kernel (or a seccomp filter) may refuse pidfds
        except OSError:
            return
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(loop)
        asyncio.set_child_watcher(watcher)


async def start_attempt(launch: Launch, writer: OutputWriter, on_output: Callable[[], None]) -> Attempt:
    """Spawn the attempt. Raises OSError when the program cannot be started."""
    loop = asyncio.get_running_loop()
    _watch_children_with_pidfds(loop)
    invocation = secrets.token_hex(16)
    argv = wrap_limits(launch)
    executable = launch.program if launch.program and argv[0] == launch.argv[0] else None  # not prlimit's
    transport, protocol = await loop.subprocess_exec(
        lambda: _Protocol(writer, on_output), *argv, executable=executable,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=launch.cwd, env={**launch.env, MARKER_VARIABLE: invocation}, start_new_session=True, close_fds=True)
    tree = ProcessTree(f"{MARKER_VARIABLE}={invocation}".encode(), transport.get_pid(), _forks())
    return Attempt(launch, transport, protocol, tree)


@dataclass(frozen=True)
class ProcessTree:
    """The processes of one attempt: every process whose environment holds `marker`.

    `marker` (b"JOBSD_INVOCATION_ID=<random hex>") is inherited by every descendant that keeps its
    environment, in the group or not, whatever its uid now (a job may drop privileges). Pids are
    not read one by one: Linux hands pids out cyclically up to pid_max, so a process started
    after `first_pid` has a pid in [first_pid, last pid handed out] (wrapping at pid_max) unless
    about pid_max tasks were created meanwhile, which the kernel's fork counter tells (`forks`,
    /proc/stat "processes", read right after the spawn; -1: unknown). Then every process is read.
    """
    marker: bytes
    first_pid: int
    forks: int

    def members(self) -> list[int]:
        """Pids of live processes that carry the marker, except this process. Zombies (their environ
        is empty), processes we may not read and ones that vanish meanwhile are not members."""
        window = self._window()
        if window is not None and sum(map(len, window)) <= _PROBE_DIRECTLY:
            candidates: Iterable[int] = itertools.chain(*window)
        else:
            try:
                listed = [int(n) for n in os.listdir("/proc") if n.isdigit()]
            except OSError:  # no /proc: the group is all we can reach
                return []
            window = self._window()  # read after the listing: every pid listed was handed out before it
            candidates = listed if window is None else [p for p in listed if any(p in r for r in window)]
        me = os.getpid()
        return [pid for pid in candidates if pid != me and self.holds(pid)]

    def holds(self, pid: int) -> bool:
        """Whether `pid` is a live process carrying the marker (a reused pid is not)."""
        return environ_has(pid, self.marker)

    def _window(self) -> list[range] | None:
        """The pids handed out since first_pid, or None when they may have come round again (read all)."""
        try:  # "0.00 0.01 0.05 2/178 9194": tasks, last pid
            _, tasks, last = _read_proc("/proc/loadavg").rsplit(None, 2)
            last_pid, count = int(last), int(tasks.split(b"/")[1])
        except (OSError, ValueError, IndexError):
            return None
        pid_max = _pid_max(last_pid)
        forks, first = _forks(), self.first_pid
        if (pid_max is None or self.forks < 0 or forks < 0
                or forks - self.forks + count + _PID_MARGIN >= pid_max - _RESERVED_PIDS):
            return None
        if last_pid >= first:
            return [range(first, last_pid + 1)]
        return [range(first, pid_max), range(1, last_pid + 1)]  # wrapped once


def attempt_tree(invocation_id: str) -> ProcessTree:
    """The processes of an attempt started by an earlier daemon: every process is read (no pid window)."""
    return ProcessTree(f"{MARKER_VARIABLE}={invocation_id}".encode(), 1, -1)


def _read_proc(path: str) -> bytes:
    """A /proc file, in one read when it fits in 64 KiB (a process's environment, or /proc/stat on
    a host with very many CPUs or interrupts, can be bigger: a short read is the end)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 65536)
        while len(data) % 65536 == 0 and data:
            more = os.read(fd, 65536)
            if not more:
                break
            data += more
        return data
    finally:
        os.close(fd)


_PID_MAX_TTL = 10.0  # seconds a reading of pid_max is used for
_pid_max_read: tuple[float, int] = (float("-inf"), 0)  # (when, value)


def _pid_max(last_pid: int) -> int | None:
    """/proc/sys/kernel/pid_max, read at most every _PID_MAX_TTL seconds, and at once when a pid at
    or past the value read shows up (sysctl raised it). None when unreadable."""
    global _pid_max_read
    when, value = _pid_max_read
    now = clock.monotonic()
    if last_pid >= value or now - when > _PID_MAX_TTL:
        try:
            value = int(_read_proc("/proc/sys/kernel/pid_max"))
        except (OSError, ValueError):
            return None
        _pid_max_read = (now, value)
    return value


def _forks() -> int:
    """Tasks created since boot (/proc/stat "processes"); -1 when unreadable."""
    try:
        text = _read_proc("/proc/stat")
        start = text.index(b"\nprocesses ") + 11
        return int(text[start:text.index(b"\n", start)])
    except (OSError, ValueError):
        return -1


def environ_has(pid: int, entry: bytes) -> bool:
    """Whether the live process `pid` has `entry` (b"NAME=value", exactly) in its environment;
    False for a zombie (empty environ), a process we may not read, or one that is gone."""
    try:
        data = _read_proc(f"/proc/{pid}/environ")
    except OSError:
        return False
    return entry in data.split(b"\0")


async def kill_group(pgid: int, grace: float, exited: asyncio.Future | None, *, tree: ProcessTree | None = None,
                     label: str = "") -> None:
    """SIGTERM the group and every process of `tree`; SIGKILL what is left after `grace` seconds.

    tree None: the group only. `exited` (the main process's exit) only wakes the wait early.
    Returns once neither the group nor any process of the tree is left, or after _KILL_SWEEP
    seconds of SIGKILL sweeps (logged).
    """
    deadline = clock.monotonic() + grace
    _signal_group(pgid, signal.SIGTERM)
    _signal_group(pgid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
    termed: dict[int, str] = {}
    while True:
        for pid in tree.members() if tree else ():
            if pid not in termed:
                termed[pid] = _describe(pid, pgid)
                _signal(pid, signal.SIGTERM)
                _signal(pid, signal.SIGCONT)
        if not _group_alive(pgid) and not _any_held(tree, termed):
            _log_stopped(label, termed, {}, forced=False)
            return
        if clock.monotonic() >= deadline:
            break
        await _until_gone(pgid, tree, termed, exited, deadline)
    killed = await _kill_sweep(pgid, tree, label)
    _log_stopped(label, termed, killed, forced=True)


async def _until_gone(pgid: int, tree: ProcessTree | None, pids: dict[int, str], exited: asyncio.Future | None,
                      deadline: float) -> None:
    """Wait until the group and `pids` are gone or the deadline passes."""
    while clock.monotonic() < deadline and (_group_alive(pgid) or _any_held(tree, pids)):
        step = min(_POLL, max(deadline - clock.monotonic(), 0))
        if exited is not None and not exited.done():
            try:
                await asyncio.wait_for(asyncio.shield(exited), step)
            except asyncio.TimeoutError:
                pass
        else:
            await asyncio.sleep(step)


async def _kill_sweep(pgid: int, tree: ProcessTree | None, label: str) -> dict[int, str]:
    """SIGKILL the group and every process of the tree until none is found (new ones may appear meanwhile)."""
    killed: dict[int, str] = {}
    give_up = clock.monotonic() + _KILL_SWEEP
    while True:
        _signal_group(pgid, signal.SIGKILL)
        left = tree.members() if tree else []
        for pid in left:
            if pid not in killed:
                killed[pid] = _describe(pid, pgid)
            _signal(pid, signal.SIGKILL)
        if not left:
            return killed  # a group of zombies is as dead as it gets: SIGKILL sent, no second look
        if clock.monotonic() >= give_up:
            log.error("%s: %d process(es) still alive after SIGKILL: %s", label or f"group {pgid}", len(left),
                      ", ".join(killed.get(p, str(p)) for p in left))
            return killed
        await asyncio.sleep(0.005)  # a SIGKILLed process is usually gone within a few ms


def _any_held(tree: ProcessTree | None, pids: dict[int, str]) -> bool:
    return tree is not None and any(tree.holds(pid) for pid in pids)


_ESCAPED = " (left the group)"


def _describe(pid: int, pgid: int) -> str:
    """'1234 sleep', plus _ESCAPED when it is outside the group, for logs. Never the environment."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
        outside = os.getpgid(pid) != pgid
    except OSError:
        return str(pid)
    return f"{pid} {comm}{_ESCAPED if outside else ''}"


def _log_stopped(label: str, termed: dict[int, str], killed: dict[int, str], forced: bool) -> None:
    """One line naming what was signalled: a warning when something left the group or needed SIGKILL."""
    if not termed and not forced:
        return
    named = {**termed, **killed}
    level = logging.WARNING if forced or any(d.endswith(_ESCAPED) for d in named.values()) else logging.INFO
    log.log(level, "%s: sent SIGTERM to %s%s", label or "attempt", ", ".join(termed.values()) or "its group",
            f"; SIGKILL after kill_grace to {', '.join(killed.values()) or 'its group'}" if forced else "")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
