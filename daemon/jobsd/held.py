"""Cron windows that reached the daemon while its store could not be written (a full disk).

Such a window can neither run (its run must be recorded before it starts) nor be recorded
`missed` now. Dropping it would leave a hole in the job's history that nobody can see, so it is
held here, in memory, and recorded `missed` (reason naming the store's error) as soon as a write
works again: `flush` is retried every RETRY seconds on the event loop until the store takes them
all. A daemon killed meanwhile loses only this memory: APScheduler's job store could not advance
either, so the windows are handed over again after the restart and handled there (late: missed).

At most PER_JOB windows are held per job (the latest; an every-second job during an hour-long
outage must not hold 3,600): the number left out is logged when they are recorded.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from jobsd.store import StoreUnwritable
from jobsd.store_rows import WindowTaken
from jobsd_lib.kernel.fire import MAX_MISSED, unwritable_reason

__all__ = ["HeldWindows", "RETRY", "PER_JOB"]

log = logging.getLogger("jobsd.held")
RETRY = 2.0         # seconds between attempts to record held windows
PER_JOB = MAX_MISSED  # windows held per job (the latest)


class HeldWindows:
    """Event-loop thread only. `record(job_id, window, reason)` writes one `missed` run, raising
    StoreUnwritable while the store still refuses."""

    def __init__(self, record: Callable[[str, datetime, str], object]) -> None:
        self._record = record
        self._held: dict[str, dict[datetime, str]] = {}  # job id -> window -> the store's error
        self._left_out: dict[str, int] = {}
        self._retry: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return sum(len(windows) for windows in self._held.values())

    def holds(self, job_id: str) -> bool:
        return bool(self._held.get(job_id))

    def cause(self, job_id: str) -> str:
        """The store's error of the job's latest held window."""
        windows = self._held[job_id]
        return windows[max(windows)]

    def hold(self, job_id: str, window: datetime, cause: str) -> None:
        windows = self._held.setdefault(job_id, {})
        if not windows:  # one line per job and outage; flush() says how many were recorded
            log.warning("cron windows of %s held from %s: the store cannot be written (%s); they are recorded "
                        "missed once writes work again", job_id, window.isoformat(), cause)
        windows.setdefault(window, cause)
        if len(windows) > PER_JOB:
            del windows[min(windows)]
            self._left_out[job_id] = self._left_out.get(job_id, 0) + 1
        self._arm()

    def flush(self) -> int:
        """Record every held window `missed` (oldest first); stop at the first refusal and try again
        later. Returns how many were recorded."""
        self.cancel()  # called early (a firing of a held job): the timer's turn is this one
        done = 0
        for job_id in sorted(self._held):
            windows = self._held[job_id]
            for window in sorted(windows):
                try:
                    self._record(job_id, window, unwritable_reason(window, windows[window]))
                except StoreUnwritable:
                    self._arm()
                    return done
                except WindowTaken:  # another leader recorded it meanwhile: nothing is owed
                    del windows[window]
                    continue
                del windows[window]
                done += 1
            del self._held[job_id]
            if left_out := self._left_out.pop(job_id, 0):
                log.warning("job %s: %d older cron windows of the outage not recorded one by one", job_id, left_out)
        if done:
            log.warning("recorded %d cron window(s) missed while the store could not be written", done)
        return done

    def _arm(self) -> None:
        if self._retry is None:
            self._retry = asyncio.get_running_loop().call_later(RETRY, self.flush)

    def cancel(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
