"""Facts: what happened to a run, a job or the daemon, typed and defined once (DESIGN 9).

The journal (daemon/jobsd/journal.py) records every change of a run or job as one or more facts:
it stores each as an event row (`TYPE` is the event's type, `attrs()` its attributes) in the
same transaction as the change, and then publishes the fact itself on the daemon's bus. Who
subscribes (followers, WatchEvents, later metrics, dependencies and hooks) reads these fields,
never the stored strings.

`attrs()` gives the attributes exactly as they have always been stored and shown (events.jsonl,
WatchEvents, `jobsctl events`): the store keeps them as strings, and None means "absent".
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from jobsd_lib.kernel.states import JobState, RunState, Trigger, WaitReason
from jobsd_lib.times import iso  # the ISO 8601 UTC text events carry; re-exported for the daemon's handlers

__all__ = ["Actor", "SCHEDULER", "Fact", "RunFact", "RunQueued", "RunSkipped", "RunMissed", "RunWaiting",
           "RunApproved", "RunRejected", "RunStarted", "AttemptFinished", "RunRetrying", "RunFinished", "JobPaused", "JobResumed", "JobDisabled",
           "JobEnabled", "OperatorFact", "JobOverdue", "JobRecovered", "NotifySent", "NotifyFailed", "JobStateForgotten", "OPERATOR_FACTS", "DaemonReloaded", "DaemonGc", "DaemonStarted", "ClockJumped", "iso"]


@dataclass(frozen=True)
class Actor:
    """Who caused a change: the label (`uid=0(root)`, `scheduler`, `SIGHUP`), and for a caller on the
    socket the uid the kernel reported, its user name, and the client's claimed name (information only)."""
    label: str = ""
    uid: int | None = None
    user: str | None = None
    client: str = ""

    def attrs(self) -> dict[str, object]:
        return {"actor": self.label or None, "actor_uid": self.uid, "actor_user": self.user,
                "client": self.client or None}

    def __str__(self) -> str:
        return self.label


SCHEDULER = Actor("scheduler")


@dataclass(frozen=True, kw_only=True)
class Fact:
    """One thing that happened, at `ts` (epoch seconds), to a job (`job_id`) and run (`run_n`), if any."""
    TYPE: ClassVar[str] = ""
    ts: float
    job_id: str = ""
    run_n: int | None = None

    @property
    def run_ref(self) -> str:
        return f"{self.job_id}/{self.run_n}" if self.run_n else ""

    def attrs(self) -> dict[str, object]:
        return {}


# ---------------------------------------------------------------------------- runs
@dataclass(frozen=True, kw_only=True)
class RunFact(Fact):
    """A fact about one run (job_id and run_n set)."""


@dataclass(frozen=True, kw_only=True)
class RunQueued(RunFact):
    TYPE: ClassVar[str] = "run.queued"
    trigger: Trigger
    actor: Actor = field(default_factory=Actor)
    reason: str = ""
    scheduled_at: datetime | None = None
    retry_of: str = ""  # trigger retry: the ref of the run repeated
    upstream: str = ""  # trigger dependency: the upstream run that completed the set

    def attrs(self) -> dict[str, object]:
        return {"trigger": self.trigger.value, **self.actor.attrs(), "reason": self.reason or None,
                "scheduled_at": self.scheduled_at.isoformat() if self.scheduled_at else None,
                "retry_of": self.retry_of or None, "upstream": self.upstream or None}


@dataclass(frozen=True, kw_only=True)
class RunSkipped(RunQueued):
    """A run that could not start (paused, disabled, overlap, invalid spec): terminal at birth."""
    TYPE: ClassVar[str] = "run.skipped"


@dataclass(frozen=True, kw_only=True)
class RunMissed(RunFact):
    """A cron window that was not run (late, coalesced, jobsd stopping, the store unwritable)."""
    TYPE: ClassVar[str] = "run.missed"
    window: datetime
    reason: str

    def attrs(self) -> dict[str, object]:
        return {"trigger": Trigger.CRON.value, **SCHEDULER.attrs(), "reason": self.reason,
                "scheduled_at": self.window.isoformat()}


@dataclass(frozen=True, kw_only=True)
class RunWaiting(RunFact):
    TYPE: ClassVar[str] = "run.waiting"
    wait_reason: WaitReason
    detail: str = ""  # waiting for gates: what for

    def attrs(self) -> dict[str, object]:
        return {"wait_reason": self.wait_reason.value, "detail": self.detail or None}


@dataclass(frozen=True, kw_only=True)
class RunApproved(RunFact):
    """An approver let a run waiting for approval go on (the audit record: who, the comment)."""
    TYPE: ClassVar[str] = "run.approved"
    actor: Actor
    comment: str = ""

    def attrs(self) -> dict[str, object]:
        return {**self.actor.attrs(), "comment": self.comment or None}


@dataclass(frozen=True, kw_only=True)
class RunRejected(RunApproved):
    """An approver said no: the run ends rejected (its run.finished follows)."""
    TYPE: ClassVar[str] = "run.rejected"


@dataclass(frozen=True, kw_only=True)
class RunStarted(RunFact):
    """An attempt began (`pid` None: its program could not be started; AttemptFinished follows)."""
    TYPE: ClassVar[str] = "run.started"
    attempt: int
    pid: int | None

    def attrs(self) -> dict[str, object]:
        return {"attempt": self.attempt, "pid": self.pid}


@dataclass(frozen=True, kw_only=True)
class AttemptFinished(RunFact):
    TYPE: ClassVar[str] = "run.attempt_finished"
    attempt: int
    exit_code: int | None
    signal: int | None
    timed_out: bool = False
    error: str = ""

    def attrs(self) -> dict[str, object]:
        return {"attempt": self.attempt, "exit_code": self.exit_code, "signal": self.signal,
                "timed_out": self.timed_out or None, "error": self.error or None}


@dataclass(frozen=True, kw_only=True)
class RunRetrying(RunFact):
    TYPE: ClassVar[str] = "run.retrying"
    next_attempt_at: datetime
    delay: float

    def attrs(self) -> dict[str, object]:
        return {"next_attempt_at": self.next_attempt_at.isoformat(), "delay": f"{self.delay:g}"}


@dataclass(frozen=True, kw_only=True)
class RunFinished(RunFact):
    """The run ended in `state` (terminal). Dependencies and notifications start from this fact."""
    TYPE: ClassVar[str] = "run.finished"
    state: RunState
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""

    def attrs(self) -> dict[str, object]:
        return {"state": self.state.value, "exit_code": self.exit_code, "signal": self.signal,
                "reason": self.reason or None}


# ---------------------------------------------------------------------------- jobs
@dataclass(frozen=True, kw_only=True)
class OperatorFact(Fact):
    state: JobState  # the operator state stored (active, paused or disabled)
    actor: Actor
    reason: str = ""            # the operator's --reason
    until: float | None = None  # a pause's end (jobs pause --until), epoch seconds
    catch_up: str = ""          # jobs resume --catch-up: the run it started for the latest window missed

    def attrs(self) -> dict[str, object]:
        return {**self.actor.attrs(), "state": self.state.value, "reason": self.reason or None,
                "until": iso(self.until), "catch_up": self.catch_up or None}


@dataclass(frozen=True, kw_only=True)
class JobPaused(OperatorFact):
    TYPE: ClassVar[str] = "job.paused"


@dataclass(frozen=True, kw_only=True)
class JobResumed(OperatorFact):
    TYPE: ClassVar[str] = "job.resumed"


@dataclass(frozen=True, kw_only=True)
class JobDisabled(OperatorFact):
    TYPE: ClassVar[str] = "job.disabled"


@dataclass(frozen=True, kw_only=True)
class JobEnabled(OperatorFact):
    TYPE: ClassVar[str] = "job.enabled"


OPERATOR_FACTS: dict[str, tuple[type[OperatorFact], JobState]] = {  # verb -> (fact, operator state)
    "pause": (JobPaused, JobState.PAUSED), "resume": (JobResumed, JobState.ACTIVE),
    "disable": (JobDisabled, JobState.DISABLED), "enable": (JobEnabled, JobState.ACTIVE)}


# ---------------------------------------------------------------------------- the daemon
def _joined(ids: Sequence[str]) -> str | None:
    return ",".join(ids) or None


@dataclass(frozen=True, kw_only=True)
class DaemonReloaded(Fact):
    TYPE: ClassVar[str] = "daemon.reloaded"
    actor: Actor
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    invalid: int = 0

    def attrs(self) -> dict[str, object]:
        return {**self.actor.attrs(), "added": _joined(self.added), "changed": _joined(self.changed),
                "removed": _joined(self.removed), "invalid": self.invalid}


@dataclass(frozen=True, kw_only=True)
class JobOverdue(Fact):
    """`[expect] success_within` passed without a success (kernel.overdue): once per episode."""
    TYPE: ClassVar[str] = "job.overdue"
    since: float        # the deadline that passed
    within: float
    message: str

    def attrs(self) -> dict[str, object]:
        return {"since": iso(self.since), "success_within": f"{self.within:g}", "message": self.message}


@dataclass(frozen=True, kw_only=True)
class JobRecovered(Fact):
    """An overdue job succeeded again (or lost its expectation): the episode is over."""
    TYPE: ClassVar[str] = "job.recovered"
    overdue_since: float
    run: str = ""       # the run whose success ended it

    def attrs(self) -> dict[str, object]:
        return {"overdue_since": iso(self.overdue_since), "by_run": self.run or None}


@dataclass(frozen=True, kw_only=True)
class NotifySent(Fact):
    """A notify command ([notify], kernel.hooks) read the document and exited 0."""
    TYPE: ClassVar[str] = "notify.sent"
    event: str           # the kind it was told about (first_failure, recovery, overdue, ...)
    run: str = ""        # the run it was about ("" for overdue)
    seconds: float = 0.0

    def attrs(self) -> dict[str, object]:
        return {"event": self.event, "about_run": self.run or None, "seconds": f"{self.seconds:.3f}"}


@dataclass(frozen=True, kw_only=True)
class NotifyFailed(Fact):
    """A notify command exited non-zero, was killed, timed out or could not start."""
    TYPE: ClassVar[str] = "notify.failed"
    event: str
    run: str = ""
    exit_code: int | None = None
    signal: int | None = None
    error: str = ""
    output: str = ""     # the start of what it printed, for the reason

    def attrs(self) -> dict[str, object]:
        return {"event": self.event, "about_run": self.run or None, "exit_code": self.exit_code,
                "signal": self.signal, "error": self.error or None, "output": self.output or None}


@dataclass(frozen=True, kw_only=True)
class JobStateForgotten(Fact):
    """`jobs forget-state`: the job's JOBSD_STATE_DIR was removed."""
    TYPE: ClassVar[str] = "job.state_forgotten"
    actor: Actor
    path: str
    bytes_freed: int

    def attrs(self) -> dict[str, object]:
        return {**self.actor.attrs(), "path": self.path, "bytes_freed": self.bytes_freed}


@dataclass(frozen=True, kw_only=True)
class DaemonGc(Fact):
    """Runs removed by retention (job_id set when gc was limited to one job)."""
    TYPE: ClassVar[str] = "daemon.gc"
    actor: Actor
    removed: int
    bytes_freed: int
    keep_last: int | None = None
    older_than: float | None = None
    policy: bool = False  # the daemon's retention sweep (each job's [retention], else these defaults)
    folders_left: int | None = None  # stopped (jobsd stopping) before every folder went: the next start removes them

    def attrs(self) -> dict[str, object]:
        return {**self.actor.attrs(), "removed": self.removed, "bytes_freed": self.bytes_freed,
                "keep_last": self.keep_last, "older_than": self.older_than,
                "policy": "retention" if self.policy else None, "folders_left": self.folders_left}


@dataclass(frozen=True, kw_only=True)
class DaemonStarted(Fact):
    """jobsd started; with what is known of the previous daemon (None fields on a first start)."""
    TYPE: ClassVar[str] = "daemon.started"
    pid: int
    version: str
    down_since: float | None = None
    down_seconds: float | None = None
    previous_clean: bool | None = None
    previous_pid: int | None = None
    rebooted: bool | None = None

    def attrs(self) -> dict[str, object]:
        attrs: dict[str, object] = {"pid": self.pid, "version": self.version}
        if self.down_since is not None:
            attrs.update(down_since=iso(self.down_since), down_seconds=f"{self.down_seconds:.1f}",
                         previous_stop="clean" if self.previous_clean else "unclean",
                         previous_pid=self.previous_pid or None,
                         rebooted=None if self.rebooted is None else str(self.rebooted).lower())
        return attrs


@dataclass(frozen=True, kw_only=True)
class ClockJumped(Fact):
    """The wall clock moved `delta` seconds more (forward) or less (back) than the time that passed."""
    TYPE: ClassVar[str] = "daemon.clock_jump"
    delta: float
    direction: str
    elapsed: float
    wall_before: float
    wall_after: float
    while_down: bool = False

    def attrs(self) -> dict[str, object]:
        return {"delta": f"{self.delta:.1f}", "direction": self.direction, "elapsed": f"{self.elapsed:.1f}",
                "wall_before": iso(self.wall_before), "wall_after": iso(self.wall_after),
                "while_down": self.while_down or None}
