"""Pure decisions: what happens to a job's due cron windows. The one place that decides it.

The timer adapter (jobsd.scheduler) hands the daemon every due window of a job, in order: APScheduler
is registered with coalesce=False and misfire_grace_time=None, so it never drops or merges a window
itself. Everything between "windows are due" and "this one runs" is decided here, over datetimes,
with `now` passed in:

1. Where to start listing (`catch_up_start`, asked by the adapter's job store before APScheduler lists
   a job's windows): a job far behind (a month down, a clock set ahead) would owe millions of windows,
   of which only the latest MAX_MISSED are ever recorded; the listing then starts near now.
2. Windows already handed over (`new_windows`, asked by the adapter on every firing): inside one
   daemon's life no window reaches the service twice (a job-store write that failed makes APScheduler
   list windows again).
3. What each window becomes (`plan_firing`, the service's entry point; it composes the two below):
   - already recorded (`unrecorded`): APScheduler's job store and the runs table are two SQLite files.
     When the job store comes back behind the runs table (a power cut rolled back its last commits,
     which are not fsynced; an older schedule.sqlite3 restored), APScheduler hands over again windows
     the daemon has records of. A job's first firing after a start drops the windows that already
     have a record (matched exactly: a window earlier than a recorded one but never recorded itself,
     e.g. after the clock was set back, is still handled);
   - an invalid spec (the file broke after the job was scheduled): each window goes to admission,
     which records it `skipped` (reason invalid_spec); windows are recorded, never dropped;
   - no scheduled spec (removed before the scheduler synced): dropped, and logged by the caller;
   - else `decide_firing`: a window older than `misfire_grace` seconds at `now` is missed ("late"); a
     firing always arrives a little after its window, so lateness up to DISPATCH_TOLERANCE (1 s)
     counts as on time whatever misfire_grace says (misfire_grace = 0 would otherwise miss every
     window); with `coalesce`, of the windows still within grace only the latest runs, the others are
     recorded missed ("coalesced"); without `coalesce`, every window within grace is handed to
     admission (a busy job then records the extra ones as `skipped`, reason overlap). Catch-up
     (`catch_up=True`, for a job's first firing after the daemon started): when no window is left to
     run because all were late (missed while jobsd was down), the latest late window runs once with
     trigger `catch_up` instead of being recorded missed; the older late ones stay missed.
4. Whether a run may start (`kernel.decisions.admit_run`): paused, disabled, overlap, invalid spec.

At most `max_missed` missed (or invalid-spec) windows are recorded one by one, the latest ones; the
number left out is returned so the daemon can say so (a long outage of an every-second job must not
write millions of rows).

Windows are compared and ordered as UTC instants everywhere: aware datetimes of one zone compare by
wall time and ignore the fold (PITFALLS 6).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence, Set
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from jobsd_lib.kernel.dst import fire_times

__all__ = ["Run", "CatchUp", "Miss", "SkipInvalid", "AlreadyRecorded", "Unscheduled", "Held", "Action", "FireDecision",
           "ScheduleRules", "decide_firing", "plan_firing", "unrecorded", "new_windows", "catch_up_start",
           "unwritable_reason", "latest_window", "NextFire", "MAX_MISSED", "DISPATCH_TOLERANCE", "FAR_BEHIND", "BACKLOG"]

MAX_MISSED = 100
DISPATCH_TOLERANCE = 1.0  # seconds of lateness that always count as on time
FAR_BEHIND = timedelta(hours=1)  # a job this far behind may owe too many windows to list one by one
BACKLOG = MAX_MISSED + 1         # windows enough for every decision the kernel makes on a late firing

# A trigger's next fire time after `previous` (None: the first) at or after `now`; None: no more.
# APScheduler's BaseTrigger.get_next_fire_time has this shape.
NextFire = Callable[[datetime | None, datetime], datetime | None]


@dataclass(frozen=True)
class Run:
    """Hand the window to admission, trigger cron."""
    window: datetime


@dataclass(frozen=True)
class CatchUp:
    """Run the window once, trigger catch_up (it was missed while the daemon was down)."""
    window: datetime


@dataclass(frozen=True)
class Miss:
    """Record the window `missed`, with this reason."""
    window: datetime
    reason: str


@dataclass(frozen=True)
class SkipInvalid:
    """Hand the window to admission (trigger cron): the spec is invalid, so it is recorded `skipped`,
    reason invalid_spec."""
    window: datetime


@dataclass(frozen=True)
class AlreadyRecorded:
    """Drop the window: the runs table has a record of it (the job store came back behind it)."""
    window: datetime


@dataclass(frozen=True)
class Unscheduled:
    """Drop the window: the job has no scheduled spec (removed before the scheduler synced)."""
    window: datetime


@dataclass(frozen=True)
class Held:
    """Drop the window: the job is paused or disabled, so its windows are not runs and leave no
    record, not even a missed or coalesced one (DESIGN 11)."""
    window: datetime


Action = Run | CatchUp | Miss | SkipInvalid | AlreadyRecorded | Unscheduled | Held


@dataclass(frozen=True)
class FireDecision:
    actions: tuple[Action, ...]   # ascending by instant
    missed_unrecorded: int = 0    # missed (or invalid-spec) windows beyond max_missed, not recorded one by one

    def windows(self, kind: type) -> list[datetime]:
        """The windows of the actions of one kind, ascending."""
        return [a.window for a in self.actions if isinstance(a, kind)]

    @property
    def runs(self) -> list[datetime]:
        return self.windows(Run)

    @property
    def catch_ups(self) -> list[datetime]:
        return self.windows(CatchUp)

    @property
    def missed(self) -> list[datetime]:
        return self.windows(Miss)


class ScheduleRules(Protocol):
    """What the decision needs of a job's schedule (jobsd_lib.spec.ScheduleSpec has it)."""

    @property
    def misfire_grace(self) -> float: ...

    @property
    def coalesce(self) -> bool: ...

    @property
    def catch_up(self) -> bool: ...


def plan_firing(run_times: Sequence[datetime], now: datetime, schedule: ScheduleRules | None, *, first: bool,
                recorded: Set[float], valid: bool = True, held: bool = False,
                max_missed: int = MAX_MISSED, offset: timedelta = timedelta(0)) -> FireDecision:
    """Every action for one firing of a job, ascending by instant (duplicates merged).

    `schedule`: the job's schedule, None when its spec has none or is gone; `first`: the job's first
    firing since the daemon started (only then are `recorded`, the job's recorded windows as UTC epoch
    seconds, consulted, and catch-up allowed); `valid`: False when the job's spec file is invalid (its
    stored schedule still fires: those windows become SkipInvalid, whatever `schedule` is); `held`:
    the job is paused or disabled (its windows are Held: no record). `offset`: the job's jitter
    (kernel.jitter): `run_times` are fire times, each `offset` after its window. Lateness is judged
    against the fire time (a missed record says when it was due); every action names the window.
    Raises ValueError for a naive datetime.
    """
    _require_aware([now])
    if offset:
        shift = offset.total_seconds()
        plan = plan_firing(run_times, now, schedule, first=first, recorded={r + shift for r in recorded}, valid=valid,
                           held=held, max_missed=max_missed)
        return FireDecision(tuple(replace(a, window=a.window - offset) for a in plan.actions), plan.missed_unrecorded)
    windows, again = unrecorded(run_times, recorded if first else frozenset())
    dropped: list[Action] = [AlreadyRecorded(w) for w in again]
    if not valid:
        kept = windows[-max_missed:] if max_missed > 0 else []
        return FireDecision(_by_instant([*dropped, *map(SkipInvalid, kept)]), len(windows) - len(kept))
    if schedule is None:
        return FireDecision(_by_instant([*dropped, *map(Unscheduled, windows)]))
    if held:
        return FireDecision(_by_instant([*dropped, *map(Held, windows)]))
    decision = decide_firing(windows, now, schedule.misfire_grace, schedule.coalesce,
                             catch_up=schedule.catch_up and first, max_missed=max_missed)
    return FireDecision(_by_instant([*dropped, *decision.actions]), decision.missed_unrecorded)


def decide_firing(run_times: Sequence[datetime], now: datetime, misfire_grace: float, coalesce: bool,
                  catch_up: bool = False, max_missed: int = MAX_MISSED) -> FireDecision:
    """Split due windows (aware datetimes, any order) into runs, a catch-up and missed records.
    Raises ValueError for a naive datetime."""
    _require_aware([*run_times, now])
    windows = _distinct(run_times)
    grace = max(misfire_grace, DISPATCH_TOLERANCE)
    late = [w for w in windows if (now - w).total_seconds() > grace]
    eligible = [w for w in windows if (now - w).total_seconds() <= grace]
    actions: list[Action] = []
    if catch_up and late and not eligible:
        actions.append(CatchUp(late.pop()))
    actions += [Miss(w, f"missed: due {w.isoformat()}, {(now - w).total_seconds():.0f}s late, "
                        f"beyond misfire_grace {misfire_grace:g}s") for w in late]
    if coalesce and len(eligible) > 1:
        latest = eligible[-1]
        actions += [Miss(w, f"missed: coalesced into the window {latest.isoformat()}") for w in eligible[:-1]]
        actions.append(Run(latest))
    else:
        actions += [Run(w) for w in eligible]
    return _cap_misses(_by_instant(actions), max_missed)


def _cap_misses(actions: tuple[Action, ...], max_missed: int) -> FireDecision:
    """Keep the latest `max_missed` Miss actions (and every other action)."""
    misses = [a for a in actions if isinstance(a, Miss)]
    dropped = max(0, len(misses) - max_missed)
    if not dropped:
        return FireDecision(actions)
    drop = {id(a) for a in misses[:dropped]}
    return FireDecision(tuple(a for a in actions if id(a) not in drop), dropped)


def unrecorded(run_times: Sequence[datetime], recorded: Set[float]) -> tuple[list[datetime], list[datetime]]:
    """(windows without a record, windows with one), each ascending by instant, duplicates merged.
    `recorded`: the job's recorded windows as UTC epoch seconds (the runs table's scheduled_at).
    Raises ValueError for a naive datetime."""
    _require_aware(run_times)
    windows = _distinct(run_times)
    return [t for t in windows if t.timestamp() not in recorded], [t for t in windows if t.timestamp() in recorded]


def new_windows(run_times: Iterable[datetime], last: datetime | None) -> tuple[list[datetime], list[datetime]]:
    """(new, stale): the windows of a firing ascending by instant, split at `last`, the latest window
    already handed over for this job (None: none yet). Stale windows are those not after it: they were
    handed over before and must not reach the service again. Raises ValueError for a naive datetime."""
    windows = list(run_times)
    _require_aware(windows if last is None else [*windows, last])
    windows.sort(key=_utc)
    stale = 0 if last is None else sum(1 for t in windows if _utc(t) <= _utc(last))
    return windows[stale:], windows[:stale]


def catch_up_start(next_run_time: datetime | None, now: datetime, next_fire: NextFire,
                   far_behind: timedelta = FAR_BEHIND, backlog: int = BACKLOG) -> datetime | None:
    """Where to start listing a job's due windows when it is far behind, else None.

    APScheduler lists every window between a job's stored next run time and now before it hands
    them over: after a month down (or a clock set a month ahead) an every-second job owes 2.6
    million windows, ~30 s of the scheduler thread and a list of hundreds of MB, and this module
    records only the latest MAX_MISSED anyway (catch-up runs the latest). So when `next_run_time` is
    more than `far_behind` before `now`, the listing starts at the first window (`next_fire`: the
    job's trigger) of the shortest span before now (1 min, 4 min, 16 min, ...) that holds at least
    `backlog` windows; None when even the span back to the next run time holds fewer (then nothing
    is skipped).
    """
    if next_run_time is None or now - next_run_time <= far_behind:
        return None
    span = timedelta(minutes=1)
    while now - span > next_run_time:
        start = next_fire(None, now - span)
        if _holds(next_fire, start, now, backlog):
            return start
        span *= 4
    return None


def _holds(next_fire: NextFire, start: datetime | None, now: datetime, backlog: int) -> bool:
    """True when at least `backlog` windows lie from `start` up to `now` (counting stops there)."""
    window, count = start, 0
    while window is not None and window <= now and count < backlog:
        window, count = next_fire(window, now), count + 1
    return count >= backlog


def latest_window(search: Callable[[datetime], datetime | None], since: datetime, now: datetime) -> datetime | None:
    """The latest window in [since, now] (`jobs resume --catch-up`: the one missed while paused), or
    None. `search(at)` is the trigger's first fire time at or after `at` (kernel.dst.fire_times'
    Search). Looked for in spans back from now (1 min, 4 min, 16 min, ...) so that a job paused for
    a week costs tens of fire times, not one per window."""
    span = timedelta(minutes=1)
    while True:
        start = max(now - span, since)
        found, after = None, start - timedelta(microseconds=1)
        while True:
            batch = fire_times(search, after, 64)
            due = [w for w in batch if w <= now]
            if due:
                found = due[-1]
            if len(due) < 64:
                break
            after = batch[-1]
        if found is not None or start <= since:
            return found
        span *= 4


def unwritable_reason(window: datetime, cause: str) -> str:
    """Why a window that arrived while the store refused writes (a full disk) was not run: a run
    must be recorded before it starts, so it is recorded `missed` once the store works again."""
    return f"missed: due {window.isoformat()}, the store could not be written ({cause})"


def _distinct(run_times: Iterable[datetime]) -> list[datetime]:
    """The windows ascending by instant, one per instant (the first given)."""
    by_instant: dict[datetime, datetime] = {}
    for t in run_times:
        by_instant.setdefault(_utc(t), t)
    return [by_instant[k] for k in sorted(by_instant)]


def _by_instant(actions: Iterable[Action]) -> tuple[Action, ...]:
    return tuple(sorted(actions, key=lambda a: _utc(a.window)))


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _require_aware(times: Iterable[datetime]) -> None:
    for t in times:
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError(f"times must be timezone-aware, got {t!r}")
