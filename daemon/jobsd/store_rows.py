"""The rows the store answers with, and its errors: plain values shared by every store (store.py,
memstore.py) and their callers."""
from __future__ import annotations

from dataclasses import dataclass, field

from jobsd_lib.errors import InternalError
from jobsd_lib.kernel.states import ACTIVE, FAILURES, OUTCOMES, RunState, sql_list

__all__ = ["RunRow", "AttemptRow", "EventRow", "OperatorRow", "StoreCorrupt", "StoreUnwritable", "WriteFailure"]

# The partial index runs_active (migrations v1) is `WHERE state IN ('queued', 'running', 'retrying')`.
# SQLite uses a partial index only for a query that repeats the index's term as written, so this is
# that text, not sql_list(ACTIVE): sorted, it put 'retrying' first, and counting or finding the
# active runs scanned the whole table (GetHealth 127 ms instead of 18 with 1,000,000 runs; caught
# by bench/startup.py, kept by tests/daemon/test_store.py).
_ACTIVE_SQL = "('queued', 'running', 'retrying')"
assert {RunState(word.strip(" '")) for word in _ACTIVE_SQL.strip("()").split(",")} == ACTIVE
_FAILED_STATES = frozenset(s.value for s in FAILURES)
_OUTCOMES_SQL = sql_list(OUTCOMES)


class WindowTaken(Exception):
    """Another jobsd on the shared store recorded this cron window first (the fence): nothing was recorded."""


class JobActive(Exception):
    """Another jobsd on the shared store has an active run of this job: nothing was recorded."""

    def __init__(self, run) -> None:  # noqa: ANN001 - the other run's RunRow
        super().__init__(f"job {run.job_id} has an active run, {run.ref}, on host {run.host or '?'}")
        self.run = run


class StoreCorrupt(Exception):
    """The database cannot be read or migrated; the daemon refuses to start (never resets it)."""


@dataclass(frozen=True)
class AttemptRow:
    number: int
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    signal: int | None
    pid: int | None
    output_bytes: int
    dropped_bytes: int
    error: str
    timed_out: bool
    invocation_id: str = ""  # the attempt's JOBSD_INVOCATION_ID


@dataclass(frozen=True)
class RunRow:
    id: int
    job_id: str
    n: int
    state: RunState
    trigger: str
    wait_reason: str | None
    reason: str
    attempts: int
    max_attempts: int
    exit_code: int | None
    signal: int | None
    scheduled_at: float | None
    queued_at: float
    started_at: float | None
    finished_at: float | None
    next_attempt_at: float | None
    spec_digest: str
    pgid: int | None
    retry_of: str = ""  # the ref of the run this one retries (trigger retry), else ""
    upstream: str = ""  # trigger dependency: the ref of the upstream run that completed the set, else ""
    wait_detail: str = ""  # what a run waiting for its gates waits for, for people
    waiting_since: float | None = None  # when it began to wait for its gates
    decision: str = ""  # [gates] approval: "approved" or "rejected" once someone decided, else ""
    decided_by: str = ""  # the actor's label (`uid=1000(alice)`)
    decided_at: float | None = None
    decision_comment: str = ""
    decision_client: str = ""  # the deciding client's claimed name (information only)
    host: str = ""  # the --host-name of the jobsd that recorded the run (and runs it); "" before v7
    attempt_list: tuple[AttemptRow, ...] = field(default=())

    @property
    def ref(self) -> str:
        return f"{self.job_id}/{self.n}"

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


@dataclass(frozen=True)
class OperatorRow:
    """A job's operator state (jobs pause/resume/disable/enable), who set it and when; for a pause,
    when it ends by itself (`until`, None: until resumed) and the operator's reason."""
    state: str  # active | paused | disabled
    changed_at: float
    changed_by: str = ""
    until: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class EventRow:
    seq: int
    ts: float
    type: str
    job_id: str
    run_n: int | None
    attrs: dict[str, str]

    @property
    def run_ref(self) -> str:
        return f"{self.job_id}/{self.run_n}" if self.run_n else ""



_RUN_COLUMNS = ("id, job_id, n, state, trigger, wait_reason, reason, attempts, max_attempts, exit_code, "
                "signal, scheduled_at, queued_at, started_at, finished_at, next_attempt_at, spec_digest, pgid, retry_of, upstream, "
                "wait_detail, waiting_since, decision, decided_by, decided_at, decision_comment, decision_client, host")

_RUN_COLUMNS_OF_R = ", ".join("r." + c.strip() for c in _RUN_COLUMNS.split(","))
_ATTEMPT_COLUMNS = ("number, started_at, finished_at, exit_code, signal, pid, output_bytes, dropped_bytes, error, "
                    "timed_out, invocation_id")


class StoreUnwritable(InternalError):
    """The store refused a write (full disk, I/O error); nothing was changed. `cause` is SQLite's word."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class WriteFailure:
    """Since when (epoch seconds) writes of a SQLite file fail, and SQLite's reason."""
    since: float
    cause: str

