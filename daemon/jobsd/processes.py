"""The processes of an attempt: finding them (ProcessTree) and stopping them all (kill_group), and
what a dead daemon left behind (kill_leftovers); kill_group_now for a group that gets no grace (a
notify command). See executor.py's docstring for why an attempt's processes are found by the
JOBSD_INVOCATION_ID in their environment."""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass

from jobsd import clock

__all__ = ["MARKER_VARIABLE", "ProcessTree", "attempt_tree", "environ_has", "kill_group", "kill_group_now", "kill_leftovers",
           "kill_condition_leftovers"]

log = logging.getLogger("jobsd.executor")
MARKER_VARIABLE = "JOBSD_INVOCATION_ID"
_RESERVED_PIDS = 300  # Linux restarts at this pid when it wraps around pid_max
_PID_MARGIN = 1000  # forks the counters may miss (between the spawn and our first reading)
_PROBE_DIRECTLY = 256  # a window of at most this many pids is probed pid by pid, without listing /proc
_KILL_SWEEP = 1.0  # seconds of SIGKILL sweeps before giving up on a process that does not die
_POLL = 0.02  # no event tells us that the last member of a group (or an escaped process) died


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


def kill_group_now(pgid: int) -> None:
    """SIGKILL the group `pgid` at once, with no grace and no wait (a notify command past its
    timeout, or one a stopping jobsd gives up on). A group that is gone already is no error; one
    jobsd may not signal raises PermissionError, so that the caller does not wait for it to end."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


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


def kill_leftovers(ref: str, pgid: int | None, attempts: Iterable) -> list[int]:  # AttemptRow-like rows
    """SIGKILL what a dead daemon left of a run's unfinished attempts: every process carrying the
    attempt's JOBSD_INVOCATION_ID (its group too, for members that cleared their environment).
    Attempts recorded before invocation ids were stored fall back to the process group, if its
    leader still carries JOBSD_RUN=<ref> (a pgid can be reused after a reboot). Returns the pids."""
    killed: list[int] = []
    for attempt in attempts:
        if attempt.finished_at is not None:
            continue
        if attempt.invocation_id:
            tree = attempt_tree(attempt.invocation_id)
            pids = tree.members()
            if pgid and tree.holds(pgid):
                _signal_group(pgid, signal.SIGKILL)
        elif pgid and environ_has(pgid, f"JOBSD_RUN={ref}".encode()):
            pids = [pgid]
            _signal_group(pgid, signal.SIGKILL)
        else:
            continue
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        if pids:
            log.warning("run %s: killed %d leftover process(es) of attempt %d: %s", ref, len(pids), attempt.number,
                        " ".join(map(str, sorted(pids))))
        killed += pids
    return killed


def kill_condition_leftovers(refs: Iterable[str]) -> list[int]:
    """SIGKILL what a dead daemon left of `[gates] condition` commands of these runs (with their
    groups). A condition is no attempt: its invocation id is never recorded, so its processes are
    found by JOBSD_ATTEMPT=0 and JOBSD_RUN=<ref> in their environment, in one pass over /proc.
    Returns the pids."""
    wanted = {f"JOBSD_RUN={ref}".encode() for ref in refs}
    if not wanted:
        return []
    try:
        pids = [int(n) for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        return []
    me, killed = os.getpid(), []
    for pid in pids:
        if pid == me:
            continue
        try:
            entries = set(_read_proc(f"/proc/{pid}/environ").split(b"\0"))
        except OSError:
            continue
        if b"JOBSD_ATTEMPT=0" in entries and not wanted.isdisjoint(entries):
            _signal_group(pid, signal.SIGKILL)  # a condition leads its own session and group
            _signal(pid, signal.SIGKILL)
            killed.append(pid)
    if killed:
        log.warning("killed %d leftover condition process(es): %s", len(killed), " ".join(map(str, sorted(killed))))
    return killed
