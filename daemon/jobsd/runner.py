"""The driver of runs: performs what each run's machine (jobsd_lib.kernel.run) decides, nothing else.

How it works: every active run has one asyncio task (`_drive`) on the event loop and one
RunMachine. The task feeds the machine what happened (a slot granted, an attempt started or
ended, a backoff over, the end recorded or refused) with the clock's `now`, and performs the
effects it returns: take or give back an executor slot (FIFO), spawn an attempt (executor.py),
wait, kill, and record steps and the end through the journal (the only writer of records). A
cancel or the shutdown (`stop`) is fed to the machine from the caller's coroutine; its Kill or
Wake is performed at once, and the task carries on from whatever it was waiting on.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
from dataclasses import dataclass, field

from jobsd.clock import Clock, from_epoch
from jobsd.executor import Attempt, Launch, resolve_program, start_attempt
from jobsd.journal import Journal
from jobsd.job_files import CredentialsError, JobFiles
from jobsd.output import STDERR, Hub, OutputWriter
from jobsd.store import RunRow, StoreUnwritable
from jobsd_lib.kernel import run as m
from jobsd_lib.identity import user_environment
from jobsd_lib.kernel.environment import DEFAULT_PATH, job_environment
from jobsd_lib.kernel.states import WaitReason
from jobsd_lib.kernel.gates import Finished, Requirement, Unmet, approval_detail, check_requires
from jobsd_lib.spec import JobSpec

__all__ = ["Runner", "ActiveRun", "Slots"]

log = logging.getLogger("jobsd.runner")


class Slots:
    """A FIFO pool of `size` executor slots."""

    def __init__(self, size: int) -> None:
        self.size, self.free = size, size
        self._waiters: collections.deque[asyncio.Future] = collections.deque()

    def acquire(self) -> asyncio.Future:
        """A future that completes when the slot is ours. Cancel it to give up the wait."""
        waiter = asyncio.get_running_loop().create_future()
        if self.free > 0 and not self._waiters:
            self.free -= 1
            waiter.set_result(None)
        else:
            self._waiters.append(waiter)
        return waiter

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # hand the slot straight over
                return
        self.free += 1

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())


@dataclass
class ActiveRun:
    row: RunRow            # as committed: kept current by the run's task, the only writer of an active run
    spec: JobSpec
    run_dir: str
    machine: m.RunMachine
    attempt: Attempt | None = None
    writer: OutputWriter | None = None
    task: asyncio.Task | None = None
    waiter: asyncio.Future | None = None   # the slot it waits for
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    decision: m.Decided | None = None      # an approver's decision, for the task to feed its machine
    decided: asyncio.Future | None = None  # done once that decision is recorded (or the run ended)
    suspended: bool = False                # left waiting by a shutdown: it waits on after the next start
    files: dict[str, str] | None = None    # JOBSD_STATE_DIR, JOBSD_CREDENTIALS_DIRECTORY: made before its first process

    @property
    def ref(self) -> str:
        return self.row.ref

    @property
    def stop_reason(self) -> str:
        return self.machine.stop_reason


class Runner:
    def __init__(self, journal: Journal, hub: Hub, clock: Clock, max_concurrent: int,
                 daemon_env: dict[str, str], files: JobFiles) -> None:
        self.journal, self.hub, self.clock, self.files = journal, hub, clock, files
        self.slots = Slots(max_concurrent)
        self.active: dict[str, ActiveRun] = {}
        self.daemon_env = daemon_env
        self.stopping = asyncio.Event()  # set by shutdown(): a run whose end cannot be recorded stops trying

    def active_ref(self, job_id: str) -> str | None:
        """The ref of the job's active run (queued, running or retrying), if it has one."""
        return next((ref for ref, act in self.active.items() if act.row.job_id == job_id), None)

    # ------------------------------------------------------------------ lifecycle
    def start(self, run: RunRow, spec: JobSpec, run_dir: str, resume: bool = False) -> ActiveRun:
        """Drive a run just recorded `queued`, or (`resume`) one a stopped daemon left waiting for
        approval or its gates (handlers/reconcile.py): it waits on, its wait counted from `waiting_since`."""
        r = spec.retry
        gates = spec.gates
        machine = m.RunMachine(policy=m.RetryPolicy(r.attempts, r.backoff, r.factor, r.max),
                               gate_wait=gates.requires_wait if spec.requires else None,
                               condition=gates.condition is not None, approval=gates.approval and not run.decision,
                               approval_wait=gates.approval_wait, approval_detail=approval_detail(gates.approvers))
        if resume and run.waiting_since is not None:
            machine.resume(from_epoch(run.waiting_since), WaitReason(run.wait_reason), run.wait_detail)
        act = ActiveRun(run, spec, run_dir, machine)
        self.active[run.ref] = act
        self.hub.open(run.ref)
        act.task = asyncio.get_running_loop().create_task(self._drive(act), name=f"run {run.ref}")
        return act

    def stop(self, act: ActiveRun, reason: str, actor: str = "") -> None:
        """End the run early (reason cancelled or interrupted; the first reason wins). Returns at once;
        `act.task` ends later."""
        for effect in act.machine.feed(m.StopRequested(self.clock.now(), reason, actor)):
            if isinstance(effect, m.Kill) and act.attempt is not None:
                act.attempt.stop(effect.reason)
            elif isinstance(effect, m.Wake):
                act.wake.set()

    @staticmethod
    def awaits_decision(act: ActiveRun) -> bool:
        """Does the run wait for approval, with no decision on its way and no stop requested?"""
        return (act.machine.phase is m.Phase.WAITING_APPROVAL and act.decision is None and not act.stop_reason
                and not act.suspended)

    def decide(self, act: ActiveRun, decision: m.Decided) -> asyncio.Future:
        """Hand an approver's decision to a run that `awaits_decision` (checked by the caller with no
        await in between: of two concurrent decisions exactly one is taken); a future that is done once
        the decision is recorded, or the run has ended."""
        assert self.awaits_decision(act), act.ref
        act.decision, act.decided = decision, asyncio.get_running_loop().create_future()
        act.wake.set()
        return act.decided

    def gates_changed(self) -> None:
        """A run of some job started or ended: runs waiting for their gates look again."""
        for act in self.active.values():
            if act.machine.phase is m.Phase.WAITING_GATES:
                act.wake.set()

    async def shutdown(self, grace: float) -> None:
        """Stop every active run (recorded `interrupted`) and wait for their tasks, but for runs that
        wait for approval or their gates: left `queued` as recorded, they wait on after the next start."""
        self.stopping.set()
        for act in list(self.active.values()):
            if act.machine.suspendable and act.decision is None and act.task is not None:
                log.info("run %s stays queued (%s): it waits on after the next start", act.ref, act.machine.wait_detail)
                act.suspended = True
                act.task.cancel()  # it waits in clock.wait_until: nothing of it runs or is half-written
            else:
                self.stop(act, "interrupted")
        tasks = [a.task for a in self.active.values() if a.task]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)

    # ------------------------------------------------------------------ the driver
    async def _drive(self, act: ActiveRun) -> None:
        effects = act.machine.feed(m.Begin(self.clock.now()))
        crashed = False
        try:
            while effects:
                try:
                    effects = await self._perform(act, effects)
                except Exception as exc:  # a bug or a refused step must not leave the run active forever
                    if crashed:
                        raise
                    crashed = True
                    log.exception("run %s: internal error", act.ref)
                    refused = f"jobsd could not record the run's progress: {exc.cause}" \
                        if isinstance(exc, StoreUnwritable) else ""
                    effects = act.machine.feed(m.Crashed(self.clock.now(), act.row.state, refused))
        finally:
            if act.decided is not None and not act.decided.done():
                act.decided.set_result(None)
            if act.machine.holding:
                self.slots.release()
            if act.waiter is not None:
                act.waiter.cancel()
            if act.files and "JOBSD_CREDENTIALS_DIRECTORY" in act.files and not act.suspended:
                self.files.remove(act.ref)  # whatever the outcome
            self.journal.born(act.ref)
            self.active.pop(act.ref, None)
            self.hub.close(act.ref)

    async def _perform(self, act: ActiveRun, effects: list[object]) -> list[object]:
        """Perform effects in order; the one that waits for an answer comes last and returns the
        machine's next effects."""
        for effect in effects:
            handler = _HANDLERS[type(effect)]
            answer = handler(self, act, effect)
            if asyncio.iscoroutine(answer):
                answer = await answer
            if answer is not None:
                return act.machine.feed(answer)
        return []

    # ------------------------------------------------------------------ effects
    def _check_gates(self, act: ActiveRun, _effect: m.CheckGates) -> object:
        """Judge `[[requires]]` (kernel.gates) on the required jobs' latest outcomes and active runs."""
        requires = [Requirement(r.job, r.succeeded_within) for r in act.spec.requires]
        latest = {}
        for req in requires:
            row = self.journal.store.latest_outcome(req.job)
            latest[req.job] = Finished(row.ref, row.state, row.finished_at) if row and row.finished_at else None
        running = {req.job: ref for req in requires if (ref := self.active_ref(req.job))}
        decision = check_requires(requires, latest, running, self.clock.epoch())
        return m.GatesChecked(self.clock.now(), decision.detail if isinstance(decision, Unmet) else "")

    async def _run_condition(self, act: ActiveRun, _effect: m.RunCondition) -> object:
        """`[gates] condition` as the job's attempt 0: its environment (JOBSD_ATTEMPT=0), cwd, limits
        and timeout; its output in attempt-0.log (not streamed). Killed like an attempt on a stop."""
        writer = OutputWriter(act.run_dir, 0, act.spec.limits.output)
        try:
            launch = dataclasses.replace(self._launch(act, 0, writer), argv=list(act.spec.gates.condition))
        except CredentialsError as exc:
            writer.close()
            return m.ConditionEnded(self.clock.now(), error=str(exc))
        program, problem = resolve_program(launch.argv[0], launch.cwd, launch.env.get("PATH", DEFAULT_PATH))
        try:
            if problem:
                return m.ConditionEnded(self.clock.now(), error=problem)
            try:
                act.attempt = await start_attempt(dataclasses.replace(launch, program=program), writer, lambda: None)
            except OSError as exc:
                return m.ConditionEnded(self.clock.now(), error=f"cannot start {launch.argv[0]!r}: {exc.strerror or exc}")
            result = await act.attempt.wait()
            act.attempt = None
            return m.ConditionEnded(self.clock.now(), result.exit_code, result.signal)
        finally:
            writer.close()

    async def _await_approval(self, act: ActiveRun, effect: m.AwaitApproval) -> object:
        self.journal.born(act.ref)  # it may wait a long while: its files now
        if act.decision is None:
            await self.clock.wait_until(effect.until, act.wake)
        act.wake.clear()
        if act.decision is not None:
            return dataclasses.replace(act.decision, now=self.clock.now())
        return m.ApprovalWaitOver(self.clock.now())

    async def _await_gates(self, act: ActiveRun, effect: m.AwaitGates) -> object:
        self.journal.born(act.ref)  # it may wait a while: its files now
        await self.clock.wait_until(effect.until, act.wake)
        act.wake.clear()  # a stop is known to the machine already; a gates' wake is used up
        return m.GatesRecheck(self.clock.now())

    def _acquire(self, act: ActiveRun, _effect: m.AcquireSlot) -> object:
        waiter = self.slots.acquire()
        if waiter.done():  # a free slot: no wait, no extra loop turn
            return m.SlotGranted(self.clock.now())
        act.waiter = waiter
        self.journal.born(act.ref)  # it may wait a while: its files now
        size = self.slots.size
        return m.SlotBusy(self.clock.now(), f"slot: {size - self.slots.free} of {size} busy")

    async def _await_slot(self, act: ActiveRun, _effect: m.AwaitSlot) -> object:
        waiter = act.waiter
        if not act.wake.is_set():
            wake = asyncio.ensure_future(act.wake.wait())
            await asyncio.wait([waiter, wake], return_when=asyncio.FIRST_COMPLETED)
            wake.cancel()
        if waiter.done() and not waiter.cancelled():
            act.waiter = None
            return m.SlotGranted(self.clock.now())
        return m.SlotWaitAbandoned(self.clock.now())

    def _drop_slot_wait(self, act: ActiveRun, _effect: m.DropSlotWait) -> None:
        if act.waiter is not None:
            act.waiter.cancel()
            act.waiter = None

    def _release(self, act: ActiveRun, _effect: m.ReleaseSlot) -> None:
        self.slots.release()

    async def _spawn(self, act: ActiveRun, effect: m.Spawn) -> object:
        spec, run = act.spec, act.row
        act.writer = writer = OutputWriter(act.run_dir, effect.attempt, spec.limits.output)
        try:
            launch = self._launch(act, effect.attempt, writer)
        except CredentialsError as exc:
            return self._start_failed(writer, str(exc))
        program, problem = resolve_program(launch.argv[0], launch.cwd, launch.env.get("PATH", DEFAULT_PATH))
        launch = dataclasses.replace(launch, program=program)
        if not problem and not os.path.isdir(launch.cwd):
            problem = f"working directory {launch.cwd!r} does not exist"
        if not problem:
            try:
                act.attempt = await start_attempt(launch, writer, self.hub.open(run.ref).bump)
            except OSError as exc:
                problem = f"cannot start {launch.argv[0]!r}: {exc.strerror or exc}"
        if act.attempt is not None:
            return m.AttemptStarted(self.clock.now(), act.attempt.pid, act.attempt.invocation_id)
        return self._start_failed(writer, problem)

    def _start_failed(self, writer: OutputWriter, problem: str) -> m.StartFailed:
        writer.write(STDERR, f"jobsd: {problem}\n".encode(), self.clock.now_ns())
        writer.close()
        return m.StartFailed(self.clock.now(), problem, _output(writer))

    def _launch(self, act: ActiveRun, number: int, writer: OutputWriter) -> Launch:
        """The attempt's process; the run's state folder and credentials are made before its first
        (raises CredentialsError). Without `cwd`, a job with a user starts in its home."""
        spec, run, identity = act.spec, act.row, act.spec.identity
        if act.files is None:
            act.files, warning = self.files.prepare(run.ref, spec)
            if warning:
                writer.write(STDERR, f"jobsd: warning: {warning}\n".encode(), self.clock.now_ns())
        env = job_environment(self.daemon_env, spec.env, job=run.job_id, run=run.ref, attempt=number,
                              trigger=run.trigger, scheduled_at=from_epoch(run.scheduled_at),
                              upstream=run.upstream, user=user_environment(identity) if identity else None,
                              files=act.files)
        base = os.path.dirname(spec.file) or "."
        cwd = os.path.join(base, spec.cwd) if spec.cwd else identity.home if identity else base
        return Launch(spec.argv, os.path.abspath(cwd), env, spec.timeout, spec.kill_grace, spec.limits.memory,
                      spec.limits.cpu_time, spec.limits.open_files, identity=identity, umask=spec.umask_bits)

    async def _await_attempt(self, act: ActiveRun, _effect: m.AwaitAttempt) -> object:
        result = await act.attempt.wait()
        act.attempt = None
        act.writer.close()
        return m.AttemptEnded(self.clock.now(), result, _output(act.writer))

    def _kill(self, act: ActiveRun, effect: m.Kill) -> None:
        if act.attempt is not None:
            act.attempt.stop(effect.reason)

    async def _reap(self, act: ActiveRun, _effect: m.Reap) -> None:
        if act.attempt is not None:  # nothing of the attempt may run on unattended
            await act.attempt.wait()
            act.attempt = None

    def _wake(self, act: ActiveRun, _effect: m.Wake) -> None:
        act.wake.set()

    def _record(self, act: ActiveRun, effect: m.Record) -> None:
        act.row = self.journal.step(act.row, effect.step)
        if isinstance(effect.step, m.Decision) and act.decided is not None and not act.decided.done():
            act.decided.set_result(None)  # the approver's call may answer now

    async def _wait_until(self, act: ActiveRun, effect: m.WaitUntil) -> object:
        backoff = act.machine.phase is m.Phase.BACKOFF
        await self.clock.wait_until(effect.at, act.wake)
        return m.BackoffOver(self.clock.now()) if backoff else m.RetryDue(self.clock.now())

    async def _record_end(self, act: ActiveRun, effect: m.RecordEnd) -> object:
        if effect.first:
            await self.journal.write_final_files(self.journal.final_row(act.row, effect), act.spec.file)
        try:
            # Durable (synced) and with no await before the task ends: no one sees the run finished
            # before it is on disk, or while its job still counts as busy.
            act.row = self.journal.end(act.row, effect)
        except StoreUnwritable as exc:  # a full disk: the job stays busy meanwhile
            freed = self.journal.free_reserve()
            if not freed:
                if self.stopping.is_set():
                    log.error("run %s: cannot record its end (%s); jobsd is stopping: the next start records it "
                              "interrupted", act.ref, exc)
                else:
                    log.error("run %s: cannot record its end (%s): retrying in %gs", act.ref, exc, m.FINISH_RETRY)
                    act.wake.clear()  # only a stop from now on cuts the wait short
            return m.EndNotRecorded(self.clock.now(), freed, self.stopping.is_set())
        reason = effect.reason
        log.info("run %s finished: %s%s", act.ref, effect.state.value, f" ({reason})" if reason else "")
        return m.EndRecorded(self.clock.now())

    def _done(self, act: ActiveRun, _effect: m.Done) -> None:
        pass


def _output(writer: OutputWriter) -> m.Output:
    return m.Output(writer.stored, writer.dropped, writer.write_error)


_HANDLERS = {
    m.AwaitApproval: Runner._await_approval, m.CheckGates: Runner._check_gates, m.RunCondition: Runner._run_condition, m.AwaitGates: Runner._await_gates, m.AcquireSlot: Runner._acquire, m.AwaitSlot: Runner._await_slot, m.DropSlotWait: Runner._drop_slot_wait,
    m.ReleaseSlot: Runner._release, m.Spawn: Runner._spawn, m.AwaitAttempt: Runner._await_attempt,
    m.Kill: Runner._kill, m.Reap: Runner._reap, m.Wake: Runner._wake, m.Record: Runner._record,
    m.WaitUntil: Runner._wait_until, m.RecordEnd: Runner._record_end, m.Done: Runner._done,
}
