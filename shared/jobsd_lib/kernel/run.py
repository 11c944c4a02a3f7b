"""A run's lifecycle as a sans-I/O machine (h11's `Connection`, applied to a run; DESIGN 9).

The daemon's driver (daemon/jobsd/runner.py) feeds `RunMachine.feed` what happened, with `now`,
and performs the effects it gets back, in order, and nothing else:

    Begin -> AwaitApproval (a job with [gates] approval: Record(Waiting(approval)); Decided approved ->
             Record(Decision), then the gates below; rejected -> RecordEnd(rejected, with the decision);
             ApprovalWaitOver at the deadline -> RecordEnd(skipped, "approval_timeout: ..."))
          -> CheckGates (a job with [[requires]]: GatesChecked met -> AcquireSlot; unmet ->
             Record(Waiting(dependency)), AwaitGates -> GatesRecheck -> CheckGates ..., or, once
             [gates] wait is over, RecordEnd(skipped, "dependency_unmet: ..."))
          -> AcquireSlot                       (SlotGranted | SlotBusy -> AwaitSlot -> SlotGranted)
    SlotGranted -> Spawn(n)                    (AttemptStarted -> Record(Started), AwaitAttempt
                                                | StartFailed -> Record(Started), then as an end)
    AttemptEnded -> RecordEnd(...)             (the run is over: succeeded, failed, timed_out, ...)
                  | Record(AttemptEnd), ReleaseSlot, Record(Retrying), WaitUntil(at)
    BackoffOver -> AcquireSlot ...
    RecordEnd -> EndRecorded -> ReleaseSlot?, Done(True)
              -> EndNotRecorded -> RecordEnd again (reserve freed) | WaitUntil(+FINISH_RETRY) -> RetryDue
                                   | Done(False) (jobsd is stopping: the next start records it interrupted)

A stop (cancel or shutdown) can come at any point: StopRequested answers Kill (an attempt runs) or
Wake (the driver waits for a slot, a backoff or a retry of the end), and the next step ends the run
`cancelled` or `interrupted`. The first stop's reason wins. Crashed (a bug in the driver) ends the
run `failed` (an attempt was running) or `interrupted`, after killing and reaping its attempt.

The machine never reads a clock and raises IllegalTransition only on a driver bug (an input that
its phase does not expect).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum

from jobsd_lib.kernel.decisions import AttemptResult, Finish, after_attempt
from jobsd_lib.kernel.run_events import *  # noqa: F403 - the machine's inputs and effects, named here too
from jobsd_lib.kernel.gates import APPROVAL_TIMEOUT, Go, SkipRun, condition_outcome, short_duration, wait_over
from jobsd_lib.kernel.run_events import (AcquireSlot, AttemptEnd, AwaitApproval, AwaitAttempt, AwaitGates, AwaitSlot,
                                         CheckGates, Decision, RunCondition,
                                         DropSlotWait, Kill,
                                         Output, Record, RecordEnd, Reap, ReleaseSlot, RetryPolicy, Retrying, Spawn,
                                         Started, Waiting, WaitUntil, Wake, Done)
from jobsd_lib.kernel.states import RunState, WaitReason, advance

__all__ = ["RunMachine", "RetryPolicy", "Output", "AttemptEnd", "FINISH_RETRY", "INTERNAL_ERROR", "stop_text",
           "Begin", "SlotGranted", "SlotBusy", "SlotWaitAbandoned", "AttemptStarted", "StartFailed", "AttemptEnded",
           "BackoffOver", "GatesChecked", "GatesRecheck", "ConditionEnded", "Decided", "ApprovalWaitOver", "AwaitApproval",
           "Decision", "RunCondition", "CheckGates", "AwaitGates", "DEPENDENCY_UNMET", "StopRequested", "EndRecorded", "EndNotRecorded", "RetryDue", "Crashed",
           "AcquireSlot", "AwaitSlot", "DropSlotWait", "ReleaseSlot", "Spawn", "AwaitAttempt", "Kill", "Reap", "Wake",
           "Record", "Waiting", "Started", "Retrying", "WaitUntil", "RecordEnd", "Done", "Phase"]

FINISH_RETRY = 5.0  # seconds between tries to record a run's end while the store refuses writes
INTERNAL_ERROR = "internal error in jobsd (see the daemon log)"
DEPENDENCY_UNMET = "dependency_unmet"  # how the reason of a run skipped for its gates begins


def stop_text(stop_reason: str, stopped_by: str) -> str:
    """The reason a stopped run's record gives."""
    if stop_reason == "cancelled":
        return f"cancelled by {stopped_by or 'an operator'}"
    return "jobsd stopped" if stop_reason == "interrupted" else ""


class Phase(str, Enum):
    NEW = "new"
    WAITING_APPROVAL = "waiting_approval"  # AwaitApproval sent
    GATES = "gates"             # CheckGates sent
    WAITING_GATES = "waiting_gates"
    ACQUIRING = "acquiring"     # AcquireSlot sent
    WAITING_SLOT = "waiting_slot"
    CONDITION = "condition"     # RunCondition sent (a slot is held)
    SPAWNING = "spawning"
    RUNNING = "running"
    BACKOFF = "backoff"
    ENDING = "ending"           # RecordEnd sent
    END_RETRY = "end_retry"     # waiting to try RecordEnd again
    DONE = "done"


_WAITING = (Phase.WAITING_APPROVAL, Phase.WAITING_GATES, Phase.WAITING_SLOT, Phase.BACKOFF, Phase.END_RETRY)


@dataclass
class RunMachine:
    """One run's lifecycle. `state`, `attempts` and `wait_reason` are what the store holds once the
    effects returned so far are performed."""
    state: RunState = RunState.QUEUED
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    attempts: int = 0
    wait_reason: WaitReason | None = WaitReason.SLOT
    phase: Phase = Phase.NEW
    holding: bool = False   # a slot is ours
    stop_reason: str = ""   # "", cancelled or interrupted
    stopped_by: str = ""
    gate_wait: float | None = None  # [gates] wait in seconds for a job with gates; None: no gates
    condition: bool = False  # [gates] condition runs once, after the slot and before the first attempt
    approval: bool = False   # [gates] approval: wait for a decision first, at most approval_wait seconds
    approval_wait: float = 0.0
    approval_detail: str = "approval"  # wait_detail while waiting for it ("approval by @ops")
    waiting_since: datetime | None = None
    wait_detail: str = ""
    _end: RecordEnd | None = None

    def resume(self, since: datetime, wait_reason: WaitReason, detail: str) -> None:
        """Before Begin: the run has waited for approval or its gates under an earlier daemon since
        `since` (kernel.gates.after_restart). The wait goes on, bounded from `since`; what the record
        says already is not recorded again."""
        self._expect(Phase.NEW)
        self.waiting_since, self.wait_reason, self.wait_detail = since, wait_reason, detail

    @property
    def suspendable(self) -> bool:
        """Does the run wait for approval or its gates, with no stop requested? Such a wait can end
        with the daemon and go on under the next one (kernel.gates.after_restart)."""
        return self.phase in (Phase.WAITING_APPROVAL, Phase.WAITING_GATES) and not self.stop_reason

    def feed(self, event: object) -> list[object]:
        """The effects of `event`, to perform in order."""
        handler = getattr(self, "_on_" + type(event).__name__, None)
        if handler is None:
            raise TypeError(f"not an input of RunMachine: {event!r}")
        return handler(event)

    # ------------------------------------------------------------------ slots
    def _on_Begin(self, ev: Begin) -> list[object]:  # noqa: N802
        self._expect(Phase.NEW)
        if self.stop_reason:
            return self._finish(ev.now)
        if self.approval:
            return self._await_approval(ev.now)
        return self._gates()

    def _gates(self) -> list[object]:
        return self._check() if self.gate_wait is not None else self._acquire()

    # ------------------------------------------------------------------ approval (before any gate or slot)
    def _await_approval(self, now: datetime) -> list[object]:
        self.phase = Phase.WAITING_APPROVAL
        since = self.waiting_since
        if since is None:
            self.waiting_since = since = now
            self.wait_reason, self.wait_detail = WaitReason.APPROVAL, self.approval_detail
            record = [Record(Waiting(WaitReason.APPROVAL, self.approval_detail, since))]
        else:
            record = []
        return [*record, AwaitApproval(since + timedelta(seconds=self.approval_wait))]

    def _on_Decided(self, ev: Decided) -> list[object]:  # noqa: N802
        self._expect(Phase.WAITING_APPROVAL)
        decision = Decision(ev.approved, ev.actor, ev.now, ev.comment)
        if self.stop_reason:  # cancelled while the decision was on its way: the stop wins
            return self._finish(ev.now)
        if not ev.approved:
            reason = f"rejected by {ev.actor}" + (f": {ev.comment}" if ev.comment else "")
            return self._finish(ev.now, RunState.REJECTED, reason, decision=decision)
        self.approval, self.wait_reason, self.wait_detail = False, None, ""
        return [Record(decision), *self._gates()]

    def _on_ApprovalWaitOver(self, ev: ApprovalWaitOver) -> list[object]:  # noqa: N802
        self._expect(Phase.WAITING_APPROVAL)
        if self.stop_reason:
            return self._finish(ev.now)
        assert self.waiting_since is not None
        if wait_over(self.waiting_since.timestamp(), self.approval_wait, ev.now.timestamp()):
            return self._finish(ev.now, RunState.SKIPPED,
                                f"{APPROVAL_TIMEOUT}: no decision within {short_duration(self.approval_wait)}")
        return self._await_approval(ev.now)  # woken early with nothing to do: wait on

    # ------------------------------------------------------------------ gates (before any slot)
    def _check(self) -> list[object]:
        self.phase = Phase.GATES
        return [CheckGates()]

    def _on_GatesChecked(self, ev: GatesChecked) -> list[object]:  # noqa: N802
        self._expect(Phase.GATES)
        if self.stop_reason:
            return self._finish(ev.now)
        if not ev.unmet:
            if self.wait_reason is WaitReason.DEPENDENCY:  # the record no longer says it waits for its gates
                self.wait_reason, self.wait_detail = WaitReason.SLOT, ""
                return [Record(Waiting(WaitReason.SLOT, "", ev.now)), *self._acquire()]
            return self._acquire()
        since = self.waiting_since or ev.now
        if wait_over(since.timestamp(), self.gate_wait or 0.0, ev.now.timestamp()):
            return self._finish(ev.now, RunState.SKIPPED, f"{DEPENDENCY_UNMET}: {ev.unmet}")
        record = []
        if self.wait_reason is not WaitReason.DEPENDENCY or ev.unmet != self.wait_detail:
            record = [Record(Waiting(WaitReason.DEPENDENCY, ev.unmet, since))]
        self.wait_reason, self.wait_detail, self.waiting_since = WaitReason.DEPENDENCY, ev.unmet, since
        self.phase = Phase.WAITING_GATES
        return [*record, AwaitGates(since + timedelta(seconds=self.gate_wait or 0.0))]

    def _on_GatesRecheck(self, ev: GatesRecheck) -> list[object]:  # noqa: N802
        self._expect(Phase.WAITING_GATES)
        return self._finish(ev.now) if self.stop_reason else self._check()

    def _acquire(self) -> list[object]:
        self.phase = Phase.ACQUIRING
        return [AcquireSlot()]

    def _on_SlotBusy(self, ev: SlotBusy) -> list[object]:  # noqa: N802
        self._expect(Phase.ACQUIRING)
        self.phase = Phase.WAITING_SLOT
        if self.wait_reason is WaitReason.SLOT and ev.detail == self.wait_detail:
            return [AwaitSlot()]
        self.wait_reason, self.wait_detail = WaitReason.SLOT, ev.detail
        return [Record(Waiting(WaitReason.SLOT, ev.detail, ev.now)), AwaitSlot()]

    def _on_SlotGranted(self, ev: SlotGranted) -> list[object]:  # noqa: N802
        self._expect(Phase.ACQUIRING, Phase.WAITING_SLOT)
        self.holding = True
        if self.stop_reason:
            self.holding = False
            return [ReleaseSlot(), *self._finish(ev.now)]
        if self.condition and self.attempts == 0:
            self.phase = Phase.CONDITION
            return [RunCondition()]
        self.phase = Phase.SPAWNING
        return [Spawn(self.attempts + 1)]

    def _on_ConditionEnded(self, ev: ConditionEnded) -> list[object]:  # noqa: N802
        """systemd's ExecCondition rule (kernel.gates.condition_outcome); not started counts as failed."""
        self._expect(Phase.CONDITION)
        self.condition = False
        outcome = condition_outcome(ev.exit_code, ev.signal)
        if self.stop_reason or ev.error or not isinstance(outcome, Go):
            self.holding = False
            if self.stop_reason:
                return [ReleaseSlot(), *self._finish(ev.now)]
            if ev.error:
                return [ReleaseSlot(), *self._finish(ev.now, RunState.FAILED, f"condition: {ev.error}")]
            if isinstance(outcome, SkipRun):
                return [ReleaseSlot(), *self._finish(ev.now, RunState.SKIPPED, f"condition: exited {ev.exit_code}",
                                                     exit_code=ev.exit_code)]
            return [ReleaseSlot(), *self._finish(ev.now, RunState.FAILED, outcome.reason, exit_code=ev.exit_code)]
        self.phase = Phase.SPAWNING
        return [Spawn(1)]

    def _on_SlotWaitAbandoned(self, ev: SlotWaitAbandoned) -> list[object]:  # noqa: N802
        self._expect(Phase.WAITING_SLOT)
        return [DropSlotWait(), *self._finish(ev.now)]

    # ------------------------------------------------------------------ attempts
    def _started(self, now: datetime, pid: int | None, invocation_id: str) -> Record:
        self._expect(Phase.SPAWNING)
        advance(self.state, RunState.RUNNING)
        self.state, self.wait_reason, self.phase = RunState.RUNNING, None, Phase.RUNNING
        self.attempts += 1
        return Record(Started(self.attempts, now, pid, invocation_id))

    def _on_AttemptStarted(self, ev: AttemptStarted) -> list[object]:  # noqa: N802
        record = self._started(ev.now, ev.pid, ev.invocation_id)
        kill = [Kill(self.stop_reason)] if self.stop_reason else []  # stopped while it was being spawned
        return [record, *kill, AwaitAttempt()]

    def _on_StartFailed(self, ev: StartFailed) -> list[object]:  # noqa: N802
        record = self._started(ev.now, None, "")
        return [record, *self._after(ev.now, AttemptResult(start_error=ev.error), ev.output)]

    def _on_AttemptEnded(self, ev: AttemptEnded) -> list[object]:  # noqa: N802
        self._expect(Phase.RUNNING)
        return self._after(ev.now, ev.result, ev.output)

    def _after(self, now: datetime, result: AttemptResult, output: Output) -> list[object]:
        end = AttemptEnd(self.attempts, now, result.exit_code, result.signal, output.stored, output.dropped,
                         result.start_error or output.write_error, result.timed_out)
        p = self.policy
        decision = after_attempt(result, self.attempts, p.attempts, now, p.backoff, p.factor, p.cap)
        if isinstance(decision, Finish):
            return self._finish(now, decision.state, result.start_error, end)
        advance(self.state, RunState.RETRYING)
        self.state, self.wait_reason, self.phase, self.holding = RunState.RETRYING, WaitReason.BACKOFF, Phase.BACKOFF, False
        return [Record(end), ReleaseSlot(), Record(Retrying(decision.at, decision.delay)), WaitUntil(decision.at)]

    def _on_BackoffOver(self, ev: BackoffOver) -> list[object]:  # noqa: N802
        self._expect(Phase.BACKOFF)
        return self._finish(ev.now) if self.stop_reason else self._acquire()

    # ------------------------------------------------------------------ stops
    def _on_StopRequested(self, ev: StopRequested) -> list[object]:  # noqa: N802
        if not self.stop_reason:
            self.stop_reason, self.stopped_by = ev.reason, ev.actor
        if self.phase in (Phase.RUNNING, Phase.CONDITION):
            return [Kill(ev.reason)]
        return [Wake()] if self.phase in _WAITING else []

    def _on_Crashed(self, ev: Crashed) -> list[object]:  # noqa: N802
        if self.phase in (Phase.ENDING, Phase.END_RETRY, Phase.DONE):  # the end itself failed: nothing more to try
            release, self.holding = [ReleaseSlot()] if self.holding else [], False
            self.phase = Phase.DONE
            return [*release, Done(False)]
        self.state = ev.state  # what a step the store refused left behind
        reap = [Kill("interrupted"), Reap()] if self.phase in (Phase.RUNNING, Phase.CONDITION) else []
        if self.phase is Phase.WAITING_SLOT:
            reap = [DropSlotWait()]  # (waiting for gates: nothing to undo)
        # failed where the state table allows it (a running run); a queued or retrying run, which never
        # failed on its own, ends interrupted
        state = RunState.FAILED if self.state is RunState.RUNNING else RunState.INTERRUPTED
        return [*reap, *self._finish(ev.now, state, ev.reason or INTERNAL_ERROR)]

    # ------------------------------------------------------------------ the end
    def _finish(self, now: datetime, state: RunState | None = None, reason: str = "",
                attempt: AttemptEnd | None = None, exit_code: int | None = None,
                decision: Decision | None = None) -> list[object]:
        if state is None:
            state = RunState.CANCELLED if self.stop_reason == "cancelled" else RunState.INTERRUPTED
        advance(self.state, state)
        self.state, self.wait_reason, self.phase = state, None, Phase.ENDING
        self._end = RecordEnd(state, reason or stop_text(self.stop_reason, self.stopped_by), now, attempt,
                              exit_code=exit_code, decision=decision)
        return [self._end]

    def _on_EndRecorded(self, ev: EndRecorded) -> list[object]:  # noqa: N802
        self._expect(Phase.ENDING)
        self.phase = Phase.DONE
        release, self.holding = [ReleaseSlot()] if self.holding else [], False
        return [*release, Done(True)]

    def _on_EndNotRecorded(self, ev: EndNotRecorded) -> list[object]:  # noqa: N802
        self._expect(Phase.ENDING)
        if ev.reserve_freed:
            return [self._again()]
        if ev.stopping:
            self.phase = Phase.DONE
            release, self.holding = [ReleaseSlot()] if self.holding else [], False
            return [*release, Done(False)]
        self.phase = Phase.END_RETRY
        return [WaitUntil(ev.now + timedelta(seconds=FINISH_RETRY))]

    def _on_RetryDue(self, ev: RetryDue) -> list[object]:  # noqa: N802
        self._expect(Phase.END_RETRY)
        self.phase = Phase.ENDING
        return [self._again()]

    def _again(self) -> RecordEnd:
        assert self._end is not None
        self._end = replace(self._end, first=False)
        return self._end

    def _expect(self, *phases: Phase) -> None:
        if self.phase not in phases:
            raise RuntimeError(f"run machine in phase {self.phase.value}, expected {', '.join(p.value for p in phases)}")
