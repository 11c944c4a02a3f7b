"""Pure decision: what a cron firing does with its due windows (misfire_grace, coalesce).

APScheduler hands the daemon every due window of a job (coalesce=False, misfire_grace_time=None
on the APScheduler side, so it never drops or merges windows itself). `decide_firing` then says,
for each window, whether it runs (trigger `cron`, scheduled_at = the window) or becomes a
`missed` audit record:

- a window older than `misfire_grace` seconds at `now` is missed ("late"); a firing always
  arrives a little after its window, so lateness up to DISPATCH_TOLERANCE (1 s) counts as on
  time whatever misfire_grace says (misfire_grace = 0 would otherwise miss every window);
- with `coalesce`, of the windows still within grace only the latest runs, the others are
  recorded missed ("coalesced");
- without `coalesce`, every window within grace is handed to admission (a busy job then records
  the extra ones as `skipped`, reason overlap).

Catch-up (`catch_up=True`, passed only for a job's first firing after the daemon started): when
no window is left to run because all were late (missed while jobsd was down), the latest late
window runs once with trigger `catch_up` instead of being recorded missed; the older late ones
stay missed.

Already recorded (`unrecorded`): APScheduler's job store and the runs table are two SQLite files.
When the job store comes back behind the runs table (a power cut rolled back its last commits,
which are not fsynced; an older schedule.sqlite3 restored), APScheduler hands over again windows
the daemon has records of. A job's first firing after a start drops the windows that already
have a record (matched exactly: a window earlier than a recorded one but never recorded itself,
e.g. after the clock was set back, is still handled).

At most `max_missed` missed windows are recorded one by one (the latest ones); the number left
out is returned so the daemon can say so (a long outage of an every-second job must not write
millions of rows).
"""
from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Run", "CatchUp", "Miss", "FireDecision", "decide_firing", "unrecorded", "unwritable_reason", "MAX_MISSED",
           "DISPATCH_TOLERANCE"]

MAX_MISSED = 100
DISPATCH_TOLERANCE = 1.0  # seconds of lateness that always count as on time


@dataclass(frozen=True)
class Run:
    window: datetime


@dataclass(frozen=True)
class CatchUp:
    """Run the window once, trigger catch_up (it was missed while the daemon was down)."""
    window: datetime


@dataclass(frozen=True)
class Miss:
    window: datetime
    reason: str


@dataclass(frozen=True)
class FireDecision:
    actions: tuple[Run | CatchUp | Miss, ...]   # in window order
    missed_unrecorded: int = 0        # missed windows beyond max_missed, not recorded one by one

    @property
    def runs(self) -> list[datetime]:
        return [a.window for a in self.actions if isinstance(a, Run)]

    @property
    def catch_ups(self) -> list[datetime]:
        return [a.window for a in self.actions if isinstance(a, CatchUp)]

    @property
    def missed(self) -> list[datetime]:
        return [a.window for a in self.actions if isinstance(a, Miss)]


def decide_firing(run_times: Sequence[datetime], now: datetime, misfire_grace: float, coalesce: bool,
                  catch_up: bool = False, max_missed: int = MAX_MISSED) -> FireDecision:
    """Split due windows (aware datetimes, any order) into runs and missed records."""
    for t in (*run_times, now):
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError(f"times must be timezone-aware, got {t!r}")
    windows = sorted(set(run_times))
    grace = max(misfire_grace, DISPATCH_TOLERANCE)
    late = [w for w in windows if (now - w).total_seconds() > grace]
    eligible = [w for w in windows if (now - w).total_seconds() <= grace]
    actions: list[Run | CatchUp | Miss] = []
    caught = late[-1] if catch_up and late and not eligible else None
    if caught is not None:
        actions.append(CatchUp(caught))
        late = late[:-1]
    for w in late:
        actions.append(Miss(w, f"missed: due {w.isoformat()}, {(now - w).total_seconds():.0f}s late, "
                               f"beyond misfire_grace {misfire_grace:g}s"))
    if coalesce and len(eligible) > 1:
        latest = eligible[-1]
        actions += [Miss(w, f"missed: coalesced into the window {latest.isoformat()}") for w in eligible[:-1]]
        actions.append(Run(latest))
    else:
        actions += [Run(w) for w in eligible]
    actions.sort(key=lambda a: a.window)
    misses = [a for a in actions if isinstance(a, Miss)]
    dropped = max(0, len(misses) - max_missed)
    if dropped:
        drop = {id(a) for a in misses[:dropped]}
        actions = [a for a in actions if id(a) not in drop]
    return FireDecision(tuple(actions), dropped)


def unrecorded(run_times: Sequence[datetime], recorded: Set[float]) -> tuple[list[datetime], list[datetime]]:
    """(windows without a record, windows with one), each ascending by instant. `recorded`: the
    job's recorded windows as UTC epoch seconds (the runs table's scheduled_at)."""
    for t in run_times:
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError(f"times must be timezone-aware, got {t!r}")
    windows = sorted(set(run_times), key=lambda t: t.timestamp())
    return [t for t in windows if t.timestamp() not in recorded], [t for t in windows if t.timestamp() in recorded]


def unwritable_reason(window: datetime, cause: str) -> str:
    """Why a window that arrived while the store refused writes (a full disk) was not run: a run
    must be recorded before it starts, so it is recorded `missed` once the store works again."""
    return f"missed: due {window.isoformat()}, the store could not be written ({cause})"
