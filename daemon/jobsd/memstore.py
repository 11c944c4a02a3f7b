"""An in-memory store (jobsd.ports.StorePort) for ops tests: no SQLite, no files, no clock of its own.

How it works: the tables are dicts of frozen rows (a run carries its attempts). Every change goes
through `_put`/`_drop`, which log the old value while a `write()` is open (and refuse outside one);
a block that raises, or a write refused by `fail_writes`, replays that log backwards, so nothing
it did stays. The logs of commits made with durable=False are kept until the next durable commit
or checkpoint, so `power_cut()` can undo exactly what a power cut may lose. The numbering follows
SQLite's: run n from a per-job counter that deletes never lower, run id = the largest existing id
+ 1 (SQLite's rowid rule), event seq from a counter (AUTOINCREMENT). A lock around each change
lets `finished_ends` and `checkpoint` run in a worker thread: finished_ends reads the runs as the
open write's log says they were before it, i.e. committed rows only, without waiting for the write.
"""
from __future__ import annotations

import collections
import dataclasses
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from jobsd.store import AttemptRow, EventRow, OperatorRow, RunRow, StoreUnwritable, WriteFailure
from jobsd_lib.errors import InternalError
from jobsd_lib.facts import RunFinished
from jobsd_lib.kernel.states import FAILURES, OUTCOMES, RunState

__all__ = ["MemoryStore"]

_MISSING = object()
_FIXED_FIELDS = frozenset({"id", "job_id", "n", "attempt_list"})
_Undo = list[tuple[dict, object, object]]  # (table, key, old value or _MISSING), oldest first


def _restore(table: dict, key: object, old: object) -> None:
    if old is _MISSING:
        table.pop(key, None)
    else:
        table[key] = old


class _Transactions:
    """MemoryStore's write(): an undo log of (table, key, old value) per open write, rolled back on
    an error, kept per durable=False commit until a sync (so that power_cut can lose them), and
    the lock that lets worker-thread readers see committed rows only. Subclasses set the fields
    that MemoryStore.__init__ sets."""
    _undo: "_Undo | None"
    _unsynced: "_Undo"
    _failing: str | None
    _lock: threading.RLock
    _now: Callable[[], float]
    write_failure: WriteFailure | None

    # ------------------------------------------------------------------ what ops tests turn
    def fail_writes(self, cause: str | None) -> None:
        """From now on every write() ends in StoreUnwritable(cause) and changes nothing (None: writes work)."""
        self._failing = cause

    def power_cut(self) -> None:
        """Lose what a power cut may lose: every commit made with durable=False since the last durable one."""
        with self._lock:
            self._roll_back(self._unsynced)
            self._unsynced = []

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def write(self, durable: bool = True) -> Iterator[None]:
        if self._undo is not None:
            raise InternalError("nested store write")
        undo: _Undo = []
        self._undo = undo
        try:
            yield None
            if self._failing is not None:
                raise self._refusal(self._failing)
        except BaseException:
            self._roll_back(undo)
            raise
        finally:
            self._undo = None
        with self._lock:
            if durable:
                self._unsynced = []
            else:
                self._unsynced.extend(undo)
        self.write_failure = None

    def _refusal(self, cause: str) -> StoreUnwritable:
        if self.write_failure is None:
            self.write_failure = WriteFailure(self._now(), cause)
        return StoreUnwritable(f"jobsd cannot write its store {self.path}: {cause}; nothing was changed (free "
                               "disk space if it is full; the daemon log has details)", cause)

    def _roll_back(self, undo: _Undo) -> None:
        with self._lock:
            for table, key, old in reversed(undo):
                _restore(table, key, old)

    def _put(self, table: dict, key: object, value: object) -> None:
        with self._lock:
            self._logged(table, key)
            table[key] = value

    def _drop(self, table: dict, key: object) -> None:
        with self._lock:
            self._logged(table, key)
            del table[key]

    def _logged(self, table: dict, key: object) -> None:
        if self._undo is None:
            raise InternalError("store change outside write()")
        self._undo.append((table, key, table.get(key, _MISSING)))


class MemoryStore(_Transactions):
    """A complete StorePort in memory; see jobsd.ports for the contract of every method.

    `now` stamps write_failure.since (the only time the store takes itself). For ops tests:
    `fail_writes(cause)` makes every write raise StoreUnwritable(cause) like a full disk until
    `fail_writes(None)`, and `power_cut()` loses the commits that durable=False left unsynced.
    """

    def __init__(self, now: Callable[[], float] = lambda: 0.0, path: str = ":memory:") -> None:
        self.path = path
        self.write_failure: WriteFailure | None = None
        self._now = now
        self._failing: str | None = None
        self._reserve = True
        self._undo: _Undo | None = None  # the open write's log; None outside write()
        self._unsynced: _Undo = []  # the logs of durable=False commits since the last sync
        self._lock = threading.RLock()
        self._runs: dict[int, RunRow] = {}
        self._numbers: dict[tuple[str, int], int] = {}  # (job_id, n) -> id
        self._last_n: dict[str, int] = {}
        self._events: dict[int, EventRow] = {}
        self._last_seq: dict[str, int] = {"seq": 0}
        self._operator: dict[str, OperatorRow] = {}
        self._meta: dict[str, str] = {}
        self._owed: dict[tuple[str, int], str] = {}  # gc_folders: (job_id, n) -> the run's host

    def migrate(self) -> None:
        pass  # no schema: always this jobsd's

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ maintenance
    def checkpoint(self) -> tuple[int, int, int]:
        with self._lock:
            self._unsynced = []
        return 0, 0, 0

    def keep_reserve(self) -> bool:
        if self._failing is None:
            self._reserve = True
        return self._reserve

    def release_reserve(self) -> bool:
        had, self._reserve = self._reserve, False
        return had

    def size_bytes(self) -> int:
        """An estimate: the length of every row's repr."""
        tables = (self._runs, self._events, self._operator, self._meta)
        return sum(len(repr(row)) for table in tables for row in table.values())

    # ------------------------------------------------------------------ runs: changes
    def create_run(self, *, job_id: str, state: RunState, trigger: str, now: float, wait_reason: str | None = None,
                   reason: str = "", scheduled_at: float | None = None, spec_digest: str = "",
                   max_attempts: int = 1, finished: bool = False, retry_of: str = "",
                   upstream: str = "", host: str = "") -> RunRow:
        n = self._last_n.get(job_id, 0) + 1
        run = RunRow(max(self._runs, default=0) + 1, job_id, n, RunState(state), trigger, wait_reason, reason, 0,
                     max_attempts, None, None, scheduled_at, now, None, now if finished else None, None, spec_digest,
                     None, retry_of, upstream, host=host)
        self._put(self._last_n, job_id, n)
        self._put(self._runs, run.id, run)
        self._put(self._numbers, (job_id, n), run.id)
        return run

    def create_missed_run(self, job_id: str, now: float, scheduled_at: float, reason: str,
                          spec_digest: str = "", host: str = "") -> RunRow:
        return self.create_run(job_id=job_id, state=RunState.MISSED, trigger="cron", now=now, reason=reason,
                               scheduled_at=scheduled_at, spec_digest=spec_digest, finished=True, host=host)

    def claim_window(self, job_id: str, window: float) -> bool:
        return True  # one writer: the timer never hands a window over twice in one process

    def claim_job(self, job_id: str) -> RunRow | None:
        return None  # one writer: admission in memory (Runner.active_ref) decides

    def still_active(self, run_id: int) -> bool:
        return True  # one writer: no other jobsd closes this one's runs

    def taken_over(self, host: str, since: float) -> list[RunRow]:
        return []

    def update_run(self, run_id: int, **fields: object) -> None:
        if _FIXED_FIELDS & fields.keys():
            raise TypeError(f"update_run cannot set {sorted(_FIXED_FIELDS & fields.keys())}")
        if "state" in fields:
            fields["state"] = RunState(fields["state"])
        run = self._runs.get(run_id)
        if run is not None:
            self._put(self._runs, run_id, dataclasses.replace(run, **fields))

    def start_attempt(self, run_id: int, number: int, started_at: float, pid: int | None,
                      invocation_id: str = "") -> None:
        run = self._runs[run_id]  # KeyError: no such run (SQLite: a foreign key)
        if any(a.number == number for a in run.attempt_list):
            raise ValueError(f"run {run.ref} already has attempt {number}")
        attempt = AttemptRow(number, started_at, None, None, None, pid, 0, 0, "", False, invocation_id)
        attempts = tuple(sorted((*run.attempt_list, attempt), key=lambda a: a.number))
        self._put(self._runs, run_id, dataclasses.replace(run, attempt_list=attempts))

    def finish_attempt(self, run_id: int, number: int, **fields: object) -> None:
        if "timed_out" in fields:
            fields["timed_out"] = bool(fields["timed_out"])
        run = self._runs.get(run_id)
        if run is None or all(a.number != number for a in run.attempt_list):
            return
        attempts = tuple(dataclasses.replace(a, **fields) if a.number == number else a for a in run.attempt_list)
        self._put(self._runs, run_id, dataclasses.replace(run, attempt_list=attempts))

    def delete_runs(self, run_ids: Sequence[int]) -> int:
        deleted = 0
        for run_id in dict.fromkeys(run_ids):
            run = self._runs.get(run_id)
            if run is not None and not run.active:
                self._drop(self._runs, run_id)
                self._drop(self._numbers, (run.job_id, run.n))
                self._put(self._owed, (run.job_id, run.n), run.host)
                deleted += 1
        return deleted

    def owed_folders(self, host: str | None = None) -> list[tuple[str, int]]:
        return sorted(key for key, on in self._owed.items() if host in (None, on))

    def folders_removed(self, keys: Sequence[tuple[str, int]]) -> None:
        for key in keys:
            if key in self._owed:
                self._drop(self._owed, key)

    # ------------------------------------------------------------------ runs: reads
    def _job_runs(self, job_id: str) -> Iterator[RunRow]:
        """The job's runs, newest (highest n) first."""
        for n in range(self._last_n.get(job_id, 0), 0, -1):
            run_id = self._numbers.get((job_id, n))
            if run_id is not None:
                yield self._runs[run_id]

    def get_run(self, job_id: str, n: int) -> RunRow | None:
        run_id = self._numbers.get((job_id, n))
        return None if run_id is None else self._runs[run_id]

    def latest_run(self, job_id: str) -> RunRow | None:
        return next(self._job_runs(job_id), None)

    def latest_outcome(self, job_id: str) -> RunRow | None:
        return next((run for run in self._job_runs(job_id) if run.state in OUTCOMES), None)

    def active_run(self, job_id: str) -> RunRow | None:
        return next((run for run in self._job_runs(job_id) if run.active), None)

    def active_runs(self, host: str | None = None) -> list[RunRow]:
        return sorted((run for run in self._runs.values() if run.active and host in (None, run.host)),
                      key=lambda run: (run.queued_at, run.id))

    def list_runs(self, job_id: str, limit: int, before_id: int | None, states: Sequence[str]) -> list[RunRow]:
        wanted = {RunState(state) for state in states}
        found = []
        for run_id in sorted(self._runs, reverse=True):
            run = self._runs[run_id]
            if len(found) >= limit:
                break
            if ((before_id is None or run_id < before_id) and (not job_id or run.job_id == job_id)
                    and (not wanted or run.state in wanted)):
                found.append(run)
        return found

    def _finished(self, job_id: str, window: int) -> list[RunRow]:
        finished = (run for run in self._job_runs(job_id) if run.state in OUTCOMES)
        return [run for _, run in zip(range(window), finished)]

    def consecutive_failures(self, job_id: str, window: int = 1000) -> int:
        count = 0
        for run in self._finished(job_id, window):
            if run.state not in FAILURES:
                break
            count += 1
        return count

    def job_summaries(self, job_ids: Sequence[str], window: int = 1000) -> dict[str, tuple[RunRow | None, int]]:
        return {job_id: (self.latest_run(job_id), self.consecutive_failures(job_id, window)) for job_id in job_ids}

    def last_success(self, job_id: str) -> tuple[int, int] | None:
        event = next((e for e in reversed(self._events.values()) if e.job_id == job_id and _succeeded(e)), None)
        return (event.seq, event.run_n) if event else None

    def recent_windows(self, job_id: str, limit: int = 500) -> set[float]:
        scheduled = (run.scheduled_at for run in self._job_runs(job_id) if run.scheduled_at is not None)
        return {at for _, at in zip(range(limit), scheduled)}

    def removable_runs(self, job_id: str, keep_last: int, cutoff: float) -> list[tuple[int, str, int]]:
        return _removable(self._committed_runs().values(), job_id, keep_last, cutoff)  # maybe in a worker thread

    def _committed_runs(self) -> dict[int, RunRow]:
        """The runs as committed, for readers in a worker thread: the open write's changes undone on a copy."""
        with self._lock:
            runs = dict(self._runs)
            for table, key, old in reversed(self._undo or []):
                if table is self._runs:
                    _restore(runs, key, old)
        return runs

    def finished_ends(self, job_id: str) -> dict[int, float]:
        runs = self._committed_runs()
        return {run.n: run.finished_at for run in runs.values()
                if run.job_id == job_id and not run.active and run.finished_at is not None}

    def run_totals(self) -> dict[tuple[str, str], int]:
        return dict(collections.Counter((run.job_id, run.state.value) for run in self._runs.values()))

    def last_success_times(self) -> dict[str, float]:  # sorted: each job's newest success is set last
        return {j: ts for ts, j in sorted((e.ts, e.job_id) for e in self._events.values() if _succeeded(e))}

    def counts_by_state(self) -> dict[str, int]:
        return dict(collections.Counter(run.state.value for run in self._runs.values() if run.active))

    # ------------------------------------------------------------------ events
    def add_event(self, ts: float, type_: str, job_id: str = "", run_n: int | None = None,
                  attrs: dict[str, object] | None = None) -> EventRow:
        clean = {k: str(v) for k, v in (attrs or {}).items() if v is not None}
        seq = self._last_seq["seq"] + 1
        self._put(self._last_seq, "seq", seq)
        self._put(self._events, seq, EventRow(seq, ts, type_, job_id, run_n, dict(sorted(clean.items()))))
        return EventRow(seq, ts, type_, job_id, run_n, clean)

    def add_events(self, events: Sequence[tuple[float, str, str, int | None, dict[str, object]]]) -> None:
        for event in events:
            self.add_event(*event)

    def _copy(self, event: EventRow) -> EventRow:
        return dataclasses.replace(event, attrs=dict(event.attrs))  # as fresh as SQLite's json.loads

    def events_after(self, seq: int, job_id: str = "", limit: int = 500) -> list[EventRow]:
        found = (e for e in self._events.values() if e.seq > seq and (not job_id or e.job_id == job_id))
        return [self._copy(event) for _, event in zip(range(limit), found)]

    def last_event_seq(self, job_id: str = "", back: int = 0) -> int:
        seqs = [e.seq for e in reversed(self._events.values()) if not job_id or e.job_id == job_id]
        back = max(back, 0)
        return seqs[back] if back < len(seqs) else 0

    def run_events(self, job_id: str, n: int) -> list[EventRow]:
        return [self._copy(e) for e in self._events.values() if e.job_id == job_id and e.run_n == n]

    # ------------------------------------------------------------------ operator state and meta
    def operator_states(self) -> dict[str, str]:
        return {job_id: row.state for job_id, row in self._operator.items()}

    def operator_rows(self) -> dict[str, OperatorRow]:
        return dict(self._operator)

    def operator_state(self, job_id: str) -> str | None:
        kept = self._operator.get(job_id)
        return None if kept is None else kept.state

    def set_operator_state(self, job_id: str, state: str, now: float, actor: str, until: float | None = None,
                           reason: str = "") -> None:
        self._put(self._operator, job_id, OperatorRow(state, now, actor, until, reason))

    def get_meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self._put(self._meta, key, value)

    def set_metas(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self._put(self._meta, key, value)


def _removable(runs: Iterable[RunRow], job_id: str, keep_last: int, cutoff: float) -> list[tuple[int, str, int]]:
    """removable_runs over these runs (see StorePort)."""
    by_job: dict[str, list[RunRow]] = collections.defaultdict(list)
    for run in runs:
        if not run.active and (not job_id or run.job_id == job_id):
            by_job[run.job_id].append(run)
    doomed = []
    for job in sorted(by_job):
        finished = sorted(by_job[job], key=lambda run: -run.n)
        for run in finished[max(keep_last, 0):]:
            ended = run.finished_at if run.finished_at is not None else run.queued_at
            if not math.isfinite(cutoff) or ended < cutoff:
                doomed.append((run.id, job, run.n))
    return sorted(doomed, key=lambda row: (row[1], row[2]))


def _succeeded(event: EventRow) -> bool:
    return event.type == RunFinished.TYPE and event.attrs.get("state") == RunState.SUCCEEDED.value
