"""What the run machine (kernel/run.py) is fed and what it returns: inputs and effects, as data."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jobsd_lib.facts import Actor
from jobsd_lib.kernel.decisions import AttemptResult
from jobsd_lib.kernel.states import RunState, WaitReason

@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 1
    backoff: float = 0.0
    factor: float = 2.0
    cap: float = 3600.0


@dataclass(frozen=True)
class Output:
    """What an attempt's output writer kept and dropped, and its write error if any."""
    stored: int = 0
    dropped: int = 0
    write_error: str = ""


@dataclass(frozen=True)
class AttemptEnd:
    """An attempt's end as recorded: its row's columns and its `run.attempt_finished` event."""
    number: int
    finished_at: datetime
    exit_code: int | None
    signal: int | None
    output_bytes: int
    dropped_bytes: int
    error: str
    timed_out: bool


# ---------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Begin:
    now: datetime


@dataclass(frozen=True)
class SlotGranted:
    now: datetime


@dataclass(frozen=True)
class SlotBusy:
    now: datetime
    detail: str = ""  # wait_detail for people: "slot: 4 of 4 busy"


@dataclass(frozen=True)
class SlotWaitAbandoned:
    """The wait for a slot ended without one (a stop woke it)."""
    now: datetime


@dataclass(frozen=True)
class AttemptStarted:
    now: datetime
    pid: int | None
    invocation_id: str = ""


@dataclass(frozen=True)
class StartFailed:
    now: datetime
    error: str
    output: Output = Output()


@dataclass(frozen=True)
class AttemptEnded:
    now: datetime
    result: AttemptResult
    output: Output = Output()


@dataclass(frozen=True)
class GatesChecked:
    """CheckGates' answer: `unmet` says which gates are not met and why ("" when all are)."""
    now: datetime
    unmet: str = ""


@dataclass(frozen=True)
class ConditionEnded:
    """RunCondition's answer: how `[gates] condition` ended (`error`: it could not be started)."""
    now: datetime
    exit_code: int | None = None
    signal: int | None = None
    error: str = ""


@dataclass(frozen=True)
class GatesRecheck:
    """AwaitGates is over: its time came, or something changed that a gate depends on."""
    now: datetime


@dataclass(frozen=True)
class Decided:
    """An approver's decision on a run waiting for approval (the caller checked who may decide)."""
    now: datetime
    approved: bool
    actor: Actor       # who: the socket's uid (label `uid=1000(alice)`) and the client's claimed name
    comment: str = ""


@dataclass(frozen=True)
class ApprovalWaitOver:
    """AwaitApproval ended with no decision: its time came, or a Wake (a stop)."""
    now: datetime


@dataclass(frozen=True)
class BackoffOver:
    now: datetime


@dataclass(frozen=True)
class StopRequested:
    now: datetime
    reason: str          # cancelled | interrupted
    actor: str = ""


@dataclass(frozen=True)
class EndRecorded:
    now: datetime


@dataclass(frozen=True)
class EndNotRecorded:
    now: datetime
    reserve_freed: bool = False  # the store's reserve was given up: try again at once
    stopping: bool = False       # jobsd stops: give up, the next start records the run interrupted


@dataclass(frozen=True)
class RetryDue:
    now: datetime


@dataclass(frozen=True)
class Crashed:
    """A bug (or a step the store refused) broke the driver; `state` is the run's state as the store has it,
    `reason` what the run's record says ("": an internal error)."""
    now: datetime
    state: RunState
    reason: str = ""


# ---------------------------------------------------------------------------- effects
@dataclass(frozen=True)
class AcquireSlot:
    """Take a slot if one is free (answer SlotGranted) or join the queue (answer SlotBusy)."""


@dataclass(frozen=True)
class AwaitSlot:
    """Wait for the queued slot or a Wake (answer SlotGranted or SlotWaitAbandoned)."""


@dataclass(frozen=True)
class DropSlotWait:
    """Leave the slot queue."""


@dataclass(frozen=True)
class ReleaseSlot:
    pass


@dataclass(frozen=True)
class Spawn:
    """Start attempt `attempt` (answer AttemptStarted or StartFailed)."""
    attempt: int


@dataclass(frozen=True)
class AwaitAttempt:
    """Wait for the attempt to end (answer AttemptEnded)."""


@dataclass(frozen=True)
class Kill:
    """Stop the running attempt: SIGTERM to its group, SIGKILL after kill_grace."""
    reason: str


@dataclass(frozen=True)
class Reap:
    """Wait for the killed attempt's processes to be gone (no answer)."""


@dataclass(frozen=True)
class CheckGates:
    """Judge the run's gates now (`[[requires]]`) and answer GatesChecked."""


@dataclass(frozen=True)
class RunCondition:
    """Run `[gates] condition` (holding the slot, killable like an attempt) and answer ConditionEnded."""


@dataclass(frozen=True)
class AwaitGates:
    """Wait until `until`, a change of what the gates read (a run of any job started or ended), or a
    Wake; answer GatesRecheck. Holds no slot."""
    until: datetime


@dataclass(frozen=True)
class AwaitApproval:
    """Wait for a decision (answer Decided), until `until` or a Wake (answer ApprovalWaitOver). Holds no slot."""
    until: datetime


@dataclass(frozen=True)
class Wake:
    """End whatever wait the driver is in (slot, backoff, retry of the end) now."""


@dataclass(frozen=True)
class Waiting:
    wait_reason: WaitReason
    detail: str = ""                 # for people: what a gate waits for
    since: datetime | None = None    # when the run began to wait for its gates


@dataclass(frozen=True)
class Decision:
    """An approval or rejection as recorded: the run's decision columns and its run.approved or
    run.rejected event (a rejection's end follows as a RecordEnd)."""
    approved: bool
    actor: Actor
    at: datetime
    comment: str = ""


@dataclass(frozen=True)
class Started:
    attempt: int
    at: datetime
    pid: int | None
    invocation_id: str


@dataclass(frozen=True)
class Retrying:
    at: datetime
    delay: float


@dataclass(frozen=True)
class Record:
    """Record a step of the run (not synced: the end makes it durable)."""
    step: Waiting | Decision | Started | AttemptEnd | Retrying


@dataclass(frozen=True)
class WaitUntil:
    """Wait until `at`, or a Wake (answer BackoffOver, or RetryDue while the end waits to be recorded)."""
    at: datetime


@dataclass(frozen=True)
class RecordEnd:
    """Record the run's end (with its last attempt's, when `attempt`) durably; first write its final
    receipt once (`first`). Answer EndRecorded or EndNotRecorded."""
    state: RunState
    reason: str
    at: datetime
    attempt: AttemptEnd | None = None
    first: bool = True
    exit_code: int | None = None  # no attempt ran: the condition's exit status, if it decided the end
    decision: Decision | None = None  # a rejection: recorded with the end, in its transaction


@dataclass(frozen=True)
class Done:
    """The run is over for this daemon (recorded: its end is in the store)."""
    recorded: bool = True
