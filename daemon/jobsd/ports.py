"""The ports of the daemon's core: what it needs from the outside world, as small interfaces.

How it works: a port is a `typing.Protocol` whose docstrings are the contract (APScheduler's
BaseJobStore style). An implementation satisfies the port when it has every member with the
same parameters and keeps every promise written here; tests/daemon/test_store_contract.py checks
both for every store (SQLite: jobsd.store.Store; in memory: jobsd.memstore.MemoryStore; PostgreSQL
joins later). Code that only needs a store should take a `StorePort`, not a `Store`.

The store's rules that hold for every method:
- Times are UTC epoch seconds (floats) that the caller passes in (`now`, `ts`, ...); the store
  reads no clock, except to stamp `write_failure.since`.
- Threads: the store is used from one thread (the daemon's event loop). Only `finished_ends`,
  `removable_runs` and `checkpoint` may be called from a worker thread, while the loop reads and
  writes; they see committed changes only.
- Changes happen only inside `write()`. Reads may be made inside or outside it; inside, they see
  the block's own changes, which nobody else sees before the block exits.
- Answers are fresh values the caller may keep: frozen rows, new lists and dicts; except that
  `job_summaries` may hand back the same memoized dict until the store changes, and rows'
  `attrs` dicts: callers must not mutate those.
- Run states in arguments and answers are `RunState` members; `states` filters and the keys of
  `counts_by_state` are their string values. Active states: queued, running, retrying.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from jobsd.store import EventRow, OperatorRow, RunRow, WriteFailure
from jobsd_lib.kernel.states import RunState

__all__ = ["StorePort"]


@runtime_checkable
class StorePort(Protocol):
    """Runs (with their attempts), the event log, operator state and daemon meta of one daemon."""

    path: str
    """Where the store lives, for people (GetHealth's store_path): a file, a URL, or a made-up name."""

    write_failure: WriteFailure | None
    """None while writes work. Set by the first `write()` that fails (since: when, cause: the
    store's word), kept as it is by later failures, cleared by the next write that commits."""

    # ------------------------------------------------------------------ transactions
    def write(self, durable: bool = True) -> AbstractContextManager[object]:
        """One transaction: every change made in the with-block commits together when it exits,
        or none does. The value bound by `as` is the implementation's own; callers ignore it.

        durable=True: once the block has exited, the changes survive a power cut.
        durable=False: they survive a crash (a kill) of jobsd, but a power cut may lose them; a
        later durable write or a `checkpoint()` makes them durable too, and never reorders them (a
        power cut loses a suffix of the non-durable commits, never one in the middle).

        If the block raises, everything it changed is undone (run numbers and event seqs handed
        out in it included) and the exception propagates unchanged. If the store cannot take the
        write (full disk, I/O error, read-only), it raises `StoreUnwritable` (an InternalError;
        `.cause` is the store's word), sets `write_failure`, and nothing of the block stays; the
        failure may cut the block short at any change or come at its end, and may come even for a
        block that changed nothing. A `write()` inside another raises InternalError("nested store
        write") before touching anything (the outer block goes on, or rolls back if it lets the
        error through).
        """
        ...

    def migrate(self) -> None:
        """Bring the store's schema to this jobsd's version (open_store does it); a no-op when it is
        there. Raises StoreCorrupt for a schema newer than this jobsd understands."""
        ...

    def close(self) -> None:
        """Free the store's connections; the store is not used afterwards."""
        ...

    # ------------------------------------------------------------------ maintenance
    def checkpoint(self) -> tuple[int, int, int]:
        """Move committed changes to their final place without blocking the loop's reads and
        writes; may be called from a worker thread. Makes every committed change durable.
        Returns (busy, pending, done): 0 or 1, units waiting before, units moved (SQLite: WAL
        frames; a store without a log answers (0, 0, 0))."""
        ...

    def keep_reserve(self) -> bool:
        """Put back space kept for the records of runs' ends, if it is missing and there is room.
        True: the reserve is there now."""
        ...

    def release_reserve(self) -> bool:
        """Give the reserve's space to the store (a run's end could not be recorded for want of
        space). True: there was a reserve, and it is gone until `keep_reserve()` makes it again."""
        ...

    def size_bytes(self) -> int:
        """About how many bytes the store takes (GetHealth): >= 0, and it grows as rows are added."""
        ...

    # ------------------------------------------------------------------ runs: changes (inside write())
    def create_run(self, *, job_id: str, state: RunState, trigger: str, now: float, wait_reason: str | None = None,
                   reason: str = "", scheduled_at: float | None = None, spec_digest: str = "",
                   max_attempts: int = 1, finished: bool = False, retry_of: str = "",
                   upstream: str = "", host: str = "") -> RunRow:
        """Add the job's next run and return it as stored: n = the job's last number + 1 (1 for a new
        job). A number once committed is never handed out again, also after the run was deleted
        (only a power cut that loses a durable=False commit can give its numbers out again).
        `id` is unique among existing runs and larger than the id of every run that exists when it
        is made (so ids grow with creation, but an id of a deleted run may come back).
        queued_at = now; finished_at = now if `finished` (a run born terminal) else None;
        attempts 0, exit_code, signal, started_at, next_attempt_at and pgid None, no attempts;
        retry_of and upstream as given (the ref of the run a retry repeats, of the upstream run that
        started a dependency run); host as given (the --host-name of the jobsd that records it)."""
        ...

    def create_missed_run(self, job_id: str, now: float, scheduled_at: float, reason: str,
                          spec_digest: str = "", host: str = "") -> RunRow:
        """create_run of a `missed` cron window: state MISSED, trigger "cron", finished at `now`."""
        ...

    def claim_window(self, job_id: str, window: float) -> bool:
        """In the caller's transaction: record that cron window `window` (epoch seconds) of the job is
        being recorded; False when another jobsd sharing the store recorded it first (then the
        caller records nothing of it). A store only one jobsd writes may always answer True."""
        ...

    def claim_job(self, job_id: str) -> RunRow | None:
        """In the caller's transaction, before a new active run of the job is created: hold the job
        against other jobsd admitting a run of it until the commit, and return its active run (any
        host's), if it has one. A store only one jobsd writes may always answer None (that jobsd's
        admission in memory decides)."""
        ...

    def still_active(self, run_id: int) -> bool:
        """In the caller's transaction: whether the run is still active (False when another jobsd of a
        shared store recorded it interrupted meanwhile: its host had stopped renewing its heartbeat).
        A store only one jobsd writes may always answer True."""
        ...

    def taken_over(self, host: str, since: float) -> list[RunRow]:
        """Runs of `host` (with attempts) recorded `interrupted` at or after `since` (epoch) on a
        shared store: another jobsd closed them while that host was away. Else []."""
        ...

    def update_run(self, run_id: int, **fields: object) -> None:
        """Set the given RunRow fields of run `run_id` (not id, job_id, n or attempt_list; state as a
        RunState or its value); the others stay. An unknown run_id changes nothing. An unknown
        field is the caller's bug: it raises (SQLite: as StoreUnwritable, from write())."""
        ...

    def start_attempt(self, run_id: int, number: int, started_at: float, pid: int | None,
                      invocation_id: str = "") -> None:
        """Add attempt `number` to run `run_id`: unfinished (finished_at, exit_code, signal None),
        no output, error "", timed_out False. The run must exist and not have that number yet
        (otherwise it raises; SQLite: as StoreUnwritable, from write())."""
        ...

    def finish_attempt(self, run_id: int, number: int, **fields: object) -> None:
        """Set the given AttemptRow fields (not number) of one attempt; timed_out reads back as a
        bool. An unknown run or attempt changes nothing."""
        ...

    def delete_runs(self, run_ids: Sequence[int]) -> int:
        """Delete the given runs that are finished, with their attempts; active runs and unknown ids
        are left alone. Returns how many runs went. Their events stay (the audit log), and their
        numbers are never handed out again. Each deleted run's (job_id, n) is owed a folder
        removal (`owed_folders`) in the same transaction, until `folders_removed` says it is done."""
        ...

    def owed_folders(self, host: str | None = None) -> list[tuple[str, int]]:
        """(job_id, n) of the runs deleted by `delete_runs` whose folders are not yet reported
        removed, by job_id then n: what a gc stopped between the rows and the folders left. With
        `host`, only the folders of runs that host recorded (a shared store: each host's are its own)."""
        ...

    def folders_removed(self, keys: Sequence[tuple[str, int]]) -> None:
        """These owed folders are gone (or were never there); keys not owed are ignored."""
        ...

    # ------------------------------------------------------------------ runs: reads
    def get_run(self, job_id: str, n: int) -> RunRow | None:
        """Run `n` of the job with its attempts (in attempt-number order), or None."""
        ...

    def latest_run(self, job_id: str) -> RunRow | None:
        """The job's run with the highest number, in any state (with attempts), or None."""
        ...

    def latest_outcome(self, job_id: str) -> RunRow | None:
        """The job's highest-numbered run that ran its command to an end of its own (state in
        kernel.states.OUTCOMES: succeeded, failed, timed_out, interrupted), or None: what a
        `[[requires]]` gate judges (skipped, missed and cancelled records are passed over)."""
        ...

    def active_run(self, job_id: str) -> RunRow | None:
        """The job's active run with the highest number (with attempts), or None."""
        ...

    def active_runs(self, host: str | None = None) -> list[RunRow]:
        """Every active run of every job (with attempts), by queued_at, then id; with `host`, only the
        runs that host recorded (RunRow.host)."""
        ...

    def list_runs(self, job_id: str, limit: int, before_id: int | None, states: Sequence[str]) -> list[RunRow]:
        """Up to `limit` (>= 0) runs (with attempts), newest first (by id; within a job that is by n).
        job_id "" means every job; `states` (values) keeps only runs in those states, empty keeps
        all. before_id (a cursor: the id of the last run of the previous page) keeps runs with
        id < before_id, also when that run was deleted meanwhile or belongs to another job."""
        ...

    def consecutive_failures(self, job_id: str, window: int = 1000) -> int:
        """How many of the job's newest finished runs (succeeded, failed, timed_out, interrupted:
        skipped, missed, cancelled and active runs do not count) failed in a row, counting down
        from the newest and stopping at the first success; at most `window`."""
        ...

    def job_summaries(self, job_ids: Sequence[str], window: int = 1000) -> dict[str, tuple[RunRow | None, int]]:
        """For each of `job_ids`: (latest_run(job), consecutive_failures(job, window)); a job with no
        runs gives (None, 0); no ids give {}. The cost must not grow per job in round trips (ListJobs
        of hundreds of jobs). The answer may be memoized until any change commits or rolls back:
        callers must not mutate it."""
        ...

    def last_success(self, job_id: str) -> tuple[int, int] | None:
        """(seq, run n) of the job's newest `run.finished` event with state succeeded, or None: where
        in the store's order its latest success is (the job graph compares positions, not times).
        Events outlive their runs (gc), so this survives the run's removal."""
        ...

    def recent_windows(self, job_id: str, limit: int = 500) -> set[float]:
        """The scheduled_at values of the job's newest `limit` runs that have one (by n)."""
        ...

    def removable_runs(self, job_id: str, keep_last: int, cutoff: float) -> list[tuple[int, str, int]]:
        """(id, job_id, n) of the finished runs that a retention policy removes, by job_id then n:
        within each job (or only `job_id`; "" is every job) rank the finished runs by n, newest 1;
        a run goes when rank > keep_last and it finished (finished_at, else queued_at) before
        `cutoff`; a cutoff that is not finite (math.inf) keeps none by age. Active runs never go,
        nor count as ranks. May be called from a worker thread: sees committed runs only."""
        ...

    def finished_ends(self, job_id: str) -> dict[int, float]:
        """n -> finished_at of the job's finished runs that have a finished_at. May be called from a
        worker thread while the loop writes (repair at start-up); sees committed runs only."""
        ...

    def counts_by_state(self) -> dict[str, int]:
        """How many runs are in each active state, by state value; states with none are left out."""
        ...

    def run_totals(self) -> dict[tuple[str, str], int]:
        """(job id, state value) -> how many runs the store holds (metrics: read once at start-up)."""
        ...

    def last_success_times(self) -> dict[str, float]:
        """job id -> the ts of its newest `run.finished` event with state succeeded (events outlive gc)."""
        ...

    # ------------------------------------------------------------------ events
    def add_event(self, ts: float, type_: str, job_id: str = "", run_n: int | None = None,
                  attrs: dict[str, object] | None = None) -> EventRow:
        """Append an event (inside write()) and return it: seq is larger than every seq before, and
        never handed out again once committed; attrs keep only values that are not None, as str.
        job_id "" is a daemon event; run_n None an event of the job, not of one run."""
        ...

    def add_events(self, events: Sequence[tuple[float, str, str, int | None, dict[str, object]]]) -> None:
        """add_event(ts, type_, job_id, run_n, attrs) for each, in order, without the rows back: one
        statement for many (10,000 overdue events in one check)."""
        ...

    def events_after(self, seq: int, job_id: str = "", limit: int = 500) -> list[EventRow]:
        """Up to `limit` (>= 0) events with a seq > `seq`, oldest first (by seq); job_id keeps only
        that job's events ("" keeps all, daemon events included)."""
        ...

    def last_event_seq(self, job_id: str = "", back: int = 0) -> int:
        """The seq after which the newest `back` events (of job_id, or of all) follow: back 0 (or
        less) gives the newest seq; 0 when there are no events, or fewer than back + 1."""
        ...

    def run_events(self, job_id: str, n: int) -> list[EventRow]:
        """Every event of run n of the job, by seq (what its events.jsonl holds); also after the run
        was deleted."""
        ...

    # ------------------------------------------------------------------ operator state and meta
    def operator_states(self) -> dict[str, str]:
        """job id -> operator state value (active, paused, disabled) of every job that has one: a new
        dict the caller may change."""
        ...

    def operator_rows(self) -> dict[str, OperatorRow]:
        """job id -> its operator state row (state, when, by whom, a pause's `until` and reason) of
        every job that has one: a new dict the caller may change."""
        ...

    def operator_state(self, job_id: str) -> str | None:
        """The job's operator state value, or None if it never had one."""
        ...

    def set_operator_state(self, job_id: str, state: str, now: float, actor: str, until: float | None = None,
                           reason: str = "") -> None:
        """Set (or replace) the job's operator state, with when and by whom, a pause's end (`until`,
        epoch seconds; None: until resumed) and the operator's reason (inside write())."""
        ...

    def get_meta(self, key: str) -> str | None:
        """The daemon's value for `key` (the heartbeat, ...), or None."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Set (or replace) the value of `key` (inside write())."""
        ...

    def set_metas(self, values: Mapping[str, str]) -> None:
        """set_meta for each key and value (one statement for many)."""
        ...
