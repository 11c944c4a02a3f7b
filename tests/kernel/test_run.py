"""The run machine (jobsd_lib.kernel.run), path by path: no processes, sockets or sleeps.

Each case is a script of (input, the effects expected back). A driver that performs those effects
and answers what happened is what daemon/jobsd/runner.py is; here the answers are written out.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobsd_lib.kernel import run as m
from jobsd_lib.kernel.decisions import AttemptResult
from jobsd_lib.facts import Actor
from jobsd_lib.kernel.states import RunState, WaitReason

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


OK = AttemptResult(exit_code=0)
FAIL = AttemptResult(exit_code=3)
TIMEOUT = AttemptResult(signal=15, timed_out=True)
KILLED_BY_CANCEL = AttemptResult(signal=15, cancelled=True)
KILLED_BY_SHUTDOWN = AttemptResult(signal=15, interrupted=True)
OUT = m.Output(stored=12, dropped=0)


def end(n: int, when: float, result: AttemptResult, out: m.Output = OUT, error: str = "") -> m.AttemptEnd:
    return m.AttemptEnd(n, at(when), result.exit_code, result.signal, out.stored, out.dropped,
                        error or result.start_error, result.timed_out)


def spawned(n: int, when: float, pid: int = 100) -> list:
    """Slot free -> spawn -> started: the steps every attempt of these cases begins with."""
    return [(m.SlotGranted(at(when)), [m.Spawn(n)]),
            (m.AttemptStarted(at(when), pid, f"inv{n}"), [m.Record(m.Started(n, at(when), pid, f"inv{n}")),
                                                          m.AwaitAttempt()])]


def recorded(when: float) -> list:
    return [(m.EndRecorded(at(when)), [m.ReleaseSlot(), m.Done(True)])]


RETRY3 = m.RetryPolicy(attempts=3, backoff=10, factor=2, cap=15)

CASES = {
    "success": (m.RetryPolicy(), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        *spawned(1, 0),
        (m.AttemptEnded(at(5), OK, OUT), [m.RecordEnd(RunState.SUCCEEDED, "", at(5), end(1, 5, OK))]),
        *recorded(5),
    ], RunState.SUCCEEDED),
    "failure, no retry": (m.RetryPolicy(), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        *spawned(1, 0),
        (m.AttemptEnded(at(5), FAIL, OUT), [m.RecordEnd(RunState.FAILED, "", at(5), end(1, 5, FAIL))]),
        *recorded(5),
    ], RunState.FAILED),
    "retry with backoff then success, the backoff holding no slot": (RETRY3, [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        *spawned(1, 0),
        (m.AttemptEnded(at(1), FAIL, OUT), [m.Record(end(1, 1, FAIL)), m.ReleaseSlot(),
                                            m.Record(m.Retrying(at(11), 10)), m.WaitUntil(at(11))]),
        (m.BackoffOver(at(11)), [m.AcquireSlot()]),
        (m.SlotBusy(at(11), "slot: 4 of 4 busy"), [m.Record(m.Waiting(WaitReason.SLOT, "slot: 4 of 4 busy", at(11))), m.AwaitSlot()]),
        *spawned(2, 12),
        (m.AttemptEnded(at(13), FAIL, OUT), [m.Record(end(2, 13, FAIL)), m.ReleaseSlot(),
                                             m.Record(m.Retrying(at(28), 15)), m.WaitUntil(at(28))]),  # capped
        (m.BackoffOver(at(28)), [m.AcquireSlot()]),
        *spawned(3, 28),
        (m.AttemptEnded(at(29), OK, OUT), [m.RecordEnd(RunState.SUCCEEDED, "", at(29), end(3, 29, OK))]),
        *recorded(29),
    ], RunState.SUCCEEDED),
    "attempts exhausted by timeouts": (m.RetryPolicy(attempts=2, backoff=0), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        *spawned(1, 0),
        (m.AttemptEnded(at(60), TIMEOUT, OUT), [m.Record(end(1, 60, TIMEOUT)), m.ReleaseSlot(),
                                                m.Record(m.Retrying(at(60), 0)), m.WaitUntil(at(60))]),
        (m.BackoffOver(at(60)), [m.AcquireSlot()]),
        *spawned(2, 60),
        (m.AttemptEnded(at(120), TIMEOUT, OUT), [m.RecordEnd(RunState.TIMED_OUT, "", at(120), end(2, 120, TIMEOUT))]),
        *recorded(120),
    ], RunState.TIMED_OUT),
    "queued behind a busy pool: waits for its slot without a record (it was created waiting)": (m.RetryPolicy(), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        (m.SlotBusy(at(0)), [m.AwaitSlot()]),
        *spawned(1, 4),
        (m.AttemptEnded(at(5), OK, OUT), [m.RecordEnd(RunState.SUCCEEDED, "", at(5), end(1, 5, OK))]),
        *recorded(5),
    ], RunState.SUCCEEDED),
    "cancel while queued for a slot": (m.RetryPolicy(), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        (m.SlotBusy(at(0)), [m.AwaitSlot()]),
        (m.StopRequested(at(1), "cancelled", "uid=0(root)"), [m.Wake()]),
        (m.SlotWaitAbandoned(at(1)), [m.DropSlotWait(),
                                      m.RecordEnd(RunState.CANCELLED, "cancelled by uid=0(root)", at(1))]),
        (m.EndRecorded(at(1)), [m.Done(True)]),  # it never held a slot
    ], RunState.CANCELLED),
    "cancel while its slot was being handed over: the slot goes back": (m.RetryPolicy(), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        (m.SlotBusy(at(0)), [m.AwaitSlot()]),
        (m.StopRequested(at(1), "cancelled"), [m.Wake()]),
        (m.SlotGranted(at(1)), [m.ReleaseSlot(), m.RecordEnd(RunState.CANCELLED, "cancelled by an operator", at(1))]),
        (m.EndRecorded(at(1)), [m.Done(True)]),
    ], RunState.CANCELLED),
    "cancel while running: kill, then the attempt's end ends the run": (RETRY3, [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        *spawned(1, 0),
        (m.StopRequested(at(2), "cancelled", "alice"), [m.Kill("cancelled")]),
        (m.StopRequested(at(3), "interrupted"), [m.Kill("interrupted")]),  # shutdown too: the first reason stays
        (m.AttemptEnded(at(4), KILLED_BY_CANCEL, OUT),
         [m.RecordEnd(RunState.CANCELLED, "cancelled by alice", at(4), end(1, 4, KILLED_BY_CANCEL))]),
        *recorded(4),
    ], RunState.CANCELLED),
    "cancel while being spawned: killed as soon as it started": (m.RetryPolicy(), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        (m.SlotGranted(at(0)), [m.Spawn(1)]),
        (m.StopRequested(at(0.1), "cancelled"), []),
        (m.AttemptStarted(at(0.2), 7), [m.Record(m.Started(1, at(0.2), 7, "")), m.Kill("cancelled"), m.AwaitAttempt()]),
        (m.AttemptEnded(at(1), KILLED_BY_CANCEL, OUT),
         [m.RecordEnd(RunState.CANCELLED, "cancelled by an operator", at(1), end(1, 1, KILLED_BY_CANCEL))]),
        *recorded(1),
    ], RunState.CANCELLED),
    "cancel during the backoff: no further attempt": (RETRY3, [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        *spawned(1, 0),
        (m.AttemptEnded(at(1), FAIL, OUT), [m.Record(end(1, 1, FAIL)), m.ReleaseSlot(),
                                            m.Record(m.Retrying(at(11), 10)), m.WaitUntil(at(11))]),
        (m.StopRequested(at(3), "cancelled", "bob"), [m.Wake()]),
        (m.BackoffOver(at(3)), [m.RecordEnd(RunState.CANCELLED, "cancelled by bob", at(3))]),
        (m.EndRecorded(at(3)), [m.Done(True)]),
    ], RunState.CANCELLED),
    "cancelled before it began": (m.RetryPolicy(), [
        (m.StopRequested(at(0), "cancelled"), []),
        (m.Begin(at(0)), [m.RecordEnd(RunState.CANCELLED, "cancelled by an operator", at(0))]),
        (m.EndRecorded(at(0)), [m.Done(True)]),
    ], RunState.CANCELLED),
    "interrupted by the shutdown while running": (RETRY3, [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        *spawned(1, 0),
        (m.StopRequested(at(2), "interrupted"), [m.Kill("interrupted")]),
        (m.AttemptEnded(at(3), KILLED_BY_SHUTDOWN, OUT),
         [m.RecordEnd(RunState.INTERRUPTED, "jobsd stopped", at(3), end(1, 3, KILLED_BY_SHUTDOWN))]),
        *recorded(3),
    ], RunState.INTERRUPTED),
    "start error: recorded started, failed with the error as reason, retried": (m.RetryPolicy(attempts=2), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        (m.SlotGranted(at(0)), [m.Spawn(1)]),
        (m.StartFailed(at(0), "cannot start 'x': No such file", OUT),
         [m.Record(m.Started(1, at(0), None, "")), m.Record(end(1, 0, AttemptResult(start_error="cannot start 'x': No such file"))),
          m.ReleaseSlot(), m.Record(m.Retrying(at(0), 0)), m.WaitUntil(at(0))]),
        (m.BackoffOver(at(0)), [m.AcquireSlot()]),
        (m.SlotGranted(at(0)), [m.Spawn(2)]),
        (m.StartFailed(at(1), "cannot start 'x': No such file", OUT),
         [m.Record(m.Started(2, at(1), None, "")),
          m.RecordEnd(RunState.FAILED, "cannot start 'x': No such file", at(1),
                      end(2, 1, AttemptResult(start_error="cannot start 'x': No such file")))]),
        *recorded(1),
    ], RunState.FAILED),
    "output write error kept on the attempt": (m.RetryPolicy(), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        *spawned(1, 0),
        (m.AttemptEnded(at(2), OK, m.Output(5, 99, "No space left on device")),
         [m.RecordEnd(RunState.SUCCEEDED, "", at(2), end(1, 2, OK, m.Output(5, 99), "No space left on device"))]),
        *recorded(2),
    ], RunState.SUCCEEDED),
    "store refuses the end: the reserve is given up, then it is recorded": (m.RetryPolicy(), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        *spawned(1, 0),
        (m.AttemptEnded(at(1), OK, OUT), [m.RecordEnd(RunState.SUCCEEDED, "", at(1), end(1, 1, OK))]),
        (m.EndNotRecorded(at(1), reserve_freed=True),
         [m.RecordEnd(RunState.SUCCEEDED, "", at(1), end(1, 1, OK), first=False)]),
        *recorded(1),
    ], RunState.SUCCEEDED),
    "store refuses the end: retried every FINISH_RETRY seconds, the job busy meanwhile": (m.RetryPolicy(), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        *spawned(1, 0),
        (m.AttemptEnded(at(1), FAIL, OUT), [m.RecordEnd(RunState.FAILED, "", at(1), end(1, 1, FAIL))]),
        (m.EndNotRecorded(at(1)), [m.WaitUntil(at(1 + m.FINISH_RETRY))]),
        (m.RetryDue(at(6)), [m.RecordEnd(RunState.FAILED, "", at(1), end(1, 1, FAIL), first=False)]),
        (m.EndNotRecorded(at(6)), [m.WaitUntil(at(6 + m.FINISH_RETRY))]),
        (m.RetryDue(at(11)), [m.RecordEnd(RunState.FAILED, "", at(1), end(1, 1, FAIL), first=False)]),
        *recorded(11),
    ], RunState.FAILED),
    "stop while its end is being recorded: nothing to kill or wake, it ends as it was ending": (m.RetryPolicy(), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        *spawned(1, 0),
        (m.AttemptEnded(at(1), OK, OUT), [m.RecordEnd(RunState.SUCCEEDED, "", at(1), end(1, 1, OK))]),
        (m.StopRequested(at(2), "cancelled", "alice"), []),
        *recorded(2),
    ], RunState.SUCCEEDED),
    "store refuses the end while jobsd stops: given up, the next start records it interrupted": (m.RetryPolicy(), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        *spawned(1, 0),
        (m.AttemptEnded(at(1), OK, OUT), [m.RecordEnd(RunState.SUCCEEDED, "", at(1), end(1, 1, OK))]),
        (m.EndNotRecorded(at(1)), [m.WaitUntil(at(6))]),
        (m.StopRequested(at(2), "interrupted"), [m.Wake()]),
        (m.RetryDue(at(2)), [m.RecordEnd(RunState.SUCCEEDED, "", at(1), end(1, 1, OK), first=False)]),
        (m.EndNotRecorded(at(2), stopping=True), [m.ReleaseSlot(), m.Done(False)]),
    ], RunState.SUCCEEDED),
    "a refused step while running (internal error): killed, reaped, failed": (RETRY3, [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        *spawned(1, 0),
        (m.Crashed(at(1), RunState.RUNNING), [m.Kill("interrupted"), m.Reap(),
                                              m.RecordEnd(RunState.FAILED, m.INTERNAL_ERROR, at(1))]),
        *recorded(1),
    ], RunState.FAILED),
    "its start could not be recorded (internal error): interrupted, as a queued run cannot fail": (m.RetryPolicy(), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        *spawned(1, 0),
        (m.Crashed(at(1), RunState.QUEUED), [m.Kill("interrupted"), m.Reap(),
                                             m.RecordEnd(RunState.INTERRUPTED, m.INTERNAL_ERROR, at(1))]),
        *recorded(1),
    ], RunState.INTERRUPTED),
    "its start refused by the store: interrupted, and the record says why": (m.RetryPolicy(), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        *spawned(1, 0),
        (m.Crashed(at(1), RunState.QUEUED, "jobsd could not record the run's progress: server gone"),
         [m.Kill("interrupted"), m.Reap(),
          m.RecordEnd(RunState.INTERRUPTED, "jobsd could not record the run's progress: server gone", at(1))]),
        *recorded(1),
    ], RunState.INTERRUPTED),
    "internal error while waiting for a slot": (m.RetryPolicy(), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        (m.SlotBusy(at(0)), [m.AwaitSlot()]),
        (m.Crashed(at(1), RunState.QUEUED), [m.DropSlotWait(), m.RecordEnd(RunState.INTERRUPTED, m.INTERNAL_ERROR, at(1))]),
        (m.EndRecorded(at(1)), [m.Done(True)]),
    ], RunState.INTERRUPTED),
    "internal error in recording the end: nothing more is tried": (m.RetryPolicy(), [
        (m.Begin(at(0)), [m.AcquireSlot()]),
        *spawned(1, 0),
        (m.AttemptEnded(at(1), OK, OUT), [m.RecordEnd(RunState.SUCCEEDED, "", at(1), end(1, 1, OK))]),
        (m.Crashed(at(1), RunState.RUNNING), [m.ReleaseSlot(), m.Done(False)]),
    ], RunState.SUCCEEDED),
}


@pytest.mark.parametrize("name", list(CASES))
def test_path(name):
    policy, script, final = CASES[name]
    machine = m.RunMachine(policy=policy)
    for step, (event, expected) in enumerate(script):
        assert machine.feed(event) == expected, f"step {step}: {event}"
    assert machine.state is final and machine.phase is m.Phase.DONE and not machine.holding


def test_attempts_and_wait_reason_follow_what_the_store_holds():
    machine = m.RunMachine(policy=RETRY3)
    machine.feed(m.Begin(at(0)))
    machine.feed(m.SlotGranted(at(0)))
    machine.feed(m.AttemptStarted(at(0), 5))
    assert (machine.state, machine.attempts, machine.wait_reason) == (RunState.RUNNING, 1, None)
    machine.feed(m.AttemptEnded(at(1), FAIL))
    assert (machine.state, machine.attempts, machine.wait_reason) == (RunState.RETRYING, 1, WaitReason.BACKOFF)


@pytest.mark.parametrize("event", [m.SlotGranted(T0), m.AttemptEnded(T0, OK), m.EndRecorded(T0), m.RetryDue(T0)])
def test_an_input_its_phase_does_not_expect_is_a_driver_bug(event):
    machine = m.RunMachine()
    with pytest.raises(RuntimeError, match="phase new"):
        machine.feed(event)


def test_something_that_is_no_input_is_refused():
    with pytest.raises(TypeError):
        m.RunMachine().feed("go")


@pytest.mark.parametrize("reason, by, text", [("cancelled", "alice", "cancelled by alice"),
                                              ("cancelled", "", "cancelled by an operator"),
                                              ("interrupted", "", "jobsd stopped"), ("", "", "")])
def test_stop_texts(reason, by, text):
    assert m.stop_text(reason, by) == text


# ---------------------------------------------------------------------- gates ([[requires]], [gates] wait)
UNMET = "backup: last success 30h ago, needs < 26h"


def feed_all(machine: m.RunMachine, script: list) -> None:
    for event, effects in script:
        assert machine.feed(event) == effects, event


def test_gates_met_at_once_go_straight_to_a_slot():
    machine = m.RunMachine(gate_wait=0.0)
    feed_all(machine, [(m.Begin(at(0)), [m.CheckGates()]), (m.GatesChecked(at(0)), [m.AcquireSlot()]), *spawned(1, 0)])
    assert machine.state is RunState.RUNNING


def test_gates_not_met_without_a_wait_skip_the_run_holding_no_slot():
    machine = m.RunMachine(gate_wait=0.0)
    feed_all(machine, [(m.Begin(at(0)), [m.CheckGates()]),
                       (m.GatesChecked(at(0), UNMET), [m.RecordEnd(RunState.SKIPPED, f"dependency_unmet: {UNMET}", at(0))]),
                       (m.EndRecorded(at(0)), [m.Done(True)])])
    assert machine.state is RunState.SKIPPED and not machine.holding


def test_a_run_waits_for_its_gates_records_each_new_reason_once_then_runs():
    machine = m.RunMachine(gate_wait=3600.0)
    running = "backup: running now (backup/7)"
    feed_all(machine, [
        (m.Begin(at(0)), [m.CheckGates()]),
        (m.GatesChecked(at(0), UNMET), [m.Record(m.Waiting(WaitReason.DEPENDENCY, UNMET, at(0))), m.AwaitGates(at(3600))]),
        (m.GatesRecheck(at(10)), [m.CheckGates()]),
        (m.GatesChecked(at(10), UNMET), [m.AwaitGates(at(3600))]),  # the same reason: nothing new to record
        (m.GatesRecheck(at(20)), [m.CheckGates()]),
        (m.GatesChecked(at(20), running), [m.Record(m.Waiting(WaitReason.DEPENDENCY, running, at(0))),
                                           m.AwaitGates(at(3600))]),
        (m.GatesRecheck(at(30)), [m.CheckGates()]),
        # met: the record stops saying it waits for backup; then it waits for a slot, since now
        (m.GatesChecked(at(30)), [m.Record(m.Waiting(WaitReason.SLOT, "", at(30))), m.AcquireSlot()]),
        (m.SlotBusy(at(30), "slot: 4 of 4 busy"), [m.Record(m.Waiting(WaitReason.SLOT, "slot: 4 of 4 busy", at(30))),
                                                  m.AwaitSlot()]),
    ])
    assert machine.state is RunState.QUEUED and machine.wait_reason is WaitReason.SLOT
    assert machine.wait_detail == "slot: 4 of 4 busy"


def test_a_gate_wait_that_runs_out_skips_and_a_stop_while_waiting_cancels():
    machine = m.RunMachine(gate_wait=60.0)
    feed_all(machine, [
        (m.Begin(at(0)), [m.CheckGates()]),
        (m.GatesChecked(at(0), UNMET), [m.Record(m.Waiting(WaitReason.DEPENDENCY, UNMET, at(0))), m.AwaitGates(at(60))]),
        (m.GatesRecheck(at(60)), [m.CheckGates()]),
        (m.GatesChecked(at(60), UNMET), [m.RecordEnd(RunState.SKIPPED, f"dependency_unmet: {UNMET}", at(60))]),
    ])
    stopped = m.RunMachine(gate_wait=60.0)
    feed_all(stopped, [
        (m.Begin(at(0)), [m.CheckGates()]),
        (m.GatesChecked(at(0), UNMET), [m.Record(m.Waiting(WaitReason.DEPENDENCY, UNMET, at(0))), m.AwaitGates(at(60))]),
        (m.StopRequested(at(5), "cancelled", "alice"), [m.Wake()]),
        (m.GatesRecheck(at(5)), [m.RecordEnd(RunState.CANCELLED, "cancelled by alice", at(5))]),
        (m.EndRecorded(at(5)), [m.Done(True)]),
    ])


# ---------------------------------------------------------------------- [gates] condition
@pytest.mark.parametrize("code, signal, state, reason, recorded_code", [
    (1, None, RunState.SKIPPED, "condition: exited 1", 1),
    (254, None, RunState.SKIPPED, "condition: exited 254", 254),
    (255, None, RunState.FAILED, "condition exited 255", 255),
    (None, 9, RunState.FAILED, "condition killed by signal 9", None),
])
def test_a_condition_that_says_no_ends_the_run_and_gives_the_slot_back(code, signal, state, reason, recorded_code):
    machine = m.RunMachine(condition=True)
    feed_all(machine, [(m.Begin(at(0)), [m.AcquireSlot()]), (m.SlotGranted(at(0)), [m.RunCondition()]),
                       (m.ConditionEnded(at(1), code, signal),
                        [m.ReleaseSlot(), m.RecordEnd(state, reason, at(1), exit_code=recorded_code)]),
                       (m.EndRecorded(at(1)), [m.Done(True)])])
    assert machine.attempts == 0 and not machine.holding


def test_a_condition_exit_0_starts_attempt_1_once_even_after_a_retry():
    machine = m.RunMachine(policy=RETRY3, condition=True)
    feed_all(machine, [(m.Begin(at(0)), [m.AcquireSlot()]), (m.SlotGranted(at(0)), [m.RunCondition()]),
                       (m.ConditionEnded(at(1), 0), [m.Spawn(1)]),
                       (m.AttemptStarted(at(1), 100, "inv1"), [m.Record(m.Started(1, at(1), 100, "inv1")), m.AwaitAttempt()]),
                       (m.AttemptEnded(at(2), FAIL, OUT), [m.Record(end(1, 2, FAIL)), m.ReleaseSlot(),
                                                          m.Record(m.Retrying(at(12), 10.0)), m.WaitUntil(at(12))]),
                       (m.BackoffOver(at(12)), [m.AcquireSlot()]),
                       (m.SlotGranted(at(12)), [m.Spawn(2)])])  # no second condition


def test_a_stop_while_the_condition_runs_kills_it_then_ends_the_run():
    machine = m.RunMachine(condition=True)
    feed_all(machine, [(m.Begin(at(0)), [m.AcquireSlot()]), (m.SlotGranted(at(0)), [m.RunCondition()]),
                       (m.StopRequested(at(1), "cancelled", "bob"), [m.Kill("cancelled")]),
                       (m.ConditionEnded(at(2), None, 15), [m.ReleaseSlot(),
                                                            m.RecordEnd(RunState.CANCELLED, "cancelled by bob", at(2))])])
    crashed = m.RunMachine(condition=True)
    feed_all(crashed, [(m.Begin(at(0)), [m.AcquireSlot()]), (m.SlotGranted(at(0)), [m.RunCondition()])])
    assert crashed.feed(m.Crashed(at(1), RunState.QUEUED)) == [
        m.Kill("interrupted"), m.Reap(), m.RecordEnd(RunState.INTERRUPTED, m.INTERNAL_ERROR, at(1))]


# ---------------------------------------------------------------------- [gates] approval
ALICE = Actor("uid=1000(alice)", 1000, "alice", "jobsctl")
ASKED = "approval by @ops"


def approval(wait: float = 3600.0, gate_wait: float | None = None) -> m.RunMachine:
    return m.RunMachine(approval=True, approval_wait=wait, approval_detail=ASKED, gate_wait=gate_wait)


def asked(since: float, wait: float = 3600.0) -> list:
    return [m.Record(m.Waiting(WaitReason.APPROVAL, ASKED, at(since))), m.AwaitApproval(at(since + wait))]


def test_an_approved_run_records_who_and_goes_on_to_its_slot_holding_none_while_it_waited():
    machine = approval()
    decision = m.Decision(True, ALICE, at(30), "ship it")
    feed_all(machine, [(m.Begin(at(0)), asked(0)),
                       (m.ApprovalWaitOver(at(10)), [m.AwaitApproval(at(3600))]),  # woken early: waits on, records nothing
                       (m.Decided(at(30), True, ALICE, "ship it"), [m.Record(decision), m.AcquireSlot()]),
                       *spawned(1, 31)])
    assert machine.state is RunState.RUNNING and machine.wait_reason is None


def test_approval_comes_before_the_requires_gates_and_the_wait_counts_from_the_first_wait():
    machine = approval(wait=600.0, gate_wait=600.0)
    decision = m.Decision(True, ALICE, at(100))
    feed_all(machine, [(m.Begin(at(0)), asked(0, 600)),
                       (m.Decided(at(100), True, ALICE), [m.Record(decision), m.CheckGates()]),
                       (m.GatesChecked(at(100), UNMET), [m.Record(m.Waiting(WaitReason.DEPENDENCY, UNMET, at(0))),
                                                         m.AwaitGates(at(600))])])


def test_a_rejection_ends_the_run_rejected_with_the_decision_in_its_end():
    machine = approval()
    decision = m.Decision(False, ALICE, at(5), "not on a friday")
    feed_all(machine, [(m.Begin(at(0)), asked(0)),
                       (m.Decided(at(5), False, ALICE, "not on a friday"),
                        [m.RecordEnd(RunState.REJECTED, "rejected by uid=1000(alice): not on a friday", at(5),
                                     decision=decision)]),
                       (m.EndRecorded(at(5)), [m.Done(True)])])
    assert machine.state is RunState.REJECTED and machine.attempts == 0 and not machine.holding


def test_no_decision_in_time_skips_the_run_approval_timeout():
    machine = approval(wait=7200.0)
    feed_all(machine, [(m.Begin(at(0)), asked(0, 7200)),
                       (m.ApprovalWaitOver(at(7200)),
                        [m.RecordEnd(RunState.SKIPPED, "approval_timeout: no decision within 2h", at(7200))])])


def test_a_stop_while_waiting_for_approval_wakes_it_and_wins_over_a_decision_on_its_way():
    stopped = approval()
    feed_all(stopped, [(m.Begin(at(0)), asked(0)),
                       (m.StopRequested(at(5), "cancelled", "bob"), [m.Wake()]),
                       (m.ApprovalWaitOver(at(5)), [m.RecordEnd(RunState.CANCELLED, "cancelled by bob", at(5))])])
    raced = approval()
    feed_all(raced, [(m.Begin(at(0)), asked(0)),
                     (m.StopRequested(at(5), "interrupted"), [m.Wake()]),
                     (m.Decided(at(5), True, ALICE), [m.RecordEnd(RunState.INTERRUPTED, "jobsd stopped", at(5))])])


def test_a_wait_resumed_after_a_restart_is_bounded_from_when_it_began_and_records_nothing_again():
    machine = approval(wait=600.0)
    machine.resume(at(0), WaitReason.APPROVAL, ASKED)
    assert not machine.suspendable  # not begun yet
    feed_all(machine, [(m.Begin(at(500)), [m.AwaitApproval(at(600))])])
    assert machine.suspendable
    feed_all(machine, [(m.ApprovalWaitOver(at(600)),
                        [m.RecordEnd(RunState.SKIPPED, "approval_timeout: no decision within 10m", at(600))])])
    gates = m.RunMachine(gate_wait=600.0)
    gates.resume(at(0), WaitReason.DEPENDENCY, UNMET)
    feed_all(gates, [(m.Begin(at(100)), [m.CheckGates()]),
                     (m.GatesChecked(at(100), UNMET), [m.AwaitGates(at(600))])])  # the same detail: no new record
    assert gates.suspendable
    gates.feed(m.StopRequested(at(101), "cancelled"))
    assert not gates.suspendable  # a stop on its way ends it; it does not wait on
