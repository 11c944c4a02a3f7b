"""Carries runs out: waits for a slot, runs attempts, retries, finishes, records everything.

How it works: every active run has one asyncio task (`_execute`) on the event loop. It waits
for an executor slot (FIFO), runs an attempt through executor.py, asks the kernel what
follows (`after_attempt`), and either finishes the run or waits out the backoff holding no
slot. Cancel and shutdown set `stop_reason` and wake whatever the task waits on; a running
attempt is stopped (SIGTERM to its group, SIGKILL after kill_grace). All store writes are
single BEGIN IMMEDIATE transactions that also append the run's events.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from jobsd import clock
from jobsd.artifacts import Artifacts
from jobsd.executor import Attempt, Launch, resolve_program, start_attempt
from jobsd.output import STDERR, Hub, OutputWriter
from jobsd.store import AttemptRow, RunRow, Store
from jobsd_lib.errors import InternalError
from jobsd_lib.kernel.decisions import AttemptResult, Finish, Retry, after_attempt
from jobsd_lib.kernel.environment import DEFAULT_PATH, job_environment
from jobsd_lib.kernel.states import TRANSITIONS, RunState, WaitReason, advance
from jobsd_lib.spec import JobSpec

__all__ = ["Runner", "ActiveRun", "Slots"]

log = logging.getLogger("jobsd.runner")
FINISH_RETRY = 5.0  # seconds between attempts to record a run's end while the store refuses writes


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
    row: RunRow
    spec: JobSpec
    run_dir: str
    stop_reason: str = ""          # "", "cancelled" or "interrupted"
    stopped_by: str = ""           # who cancelled it (the audit label of the caller)
    attempt: Attempt | None = None
    task: asyncio.Task | None = None
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    # The new run's first files (its first events.jsonl line, its queued receipt), handed to the
    # artifact thread by the run's task once its first start is recorded, or before anything else
    # it records: that thread's work would otherwise compete with the spawn and the new child for
    # the CPU and the GIL. Its record is in the store already.
    birth: Callable[[], None] | None = None

    @property
    def ref(self) -> str:
        return self.row.ref


@dataclass(frozen=True)
class _Ended:
    """An attempt's end, not yet recorded: its attempt row's columns, its event, the run row after it."""
    number: int
    columns: dict[str, object]
    attrs: dict[str, object]
    row: RunRow

    @classmethod
    def of(cls, run: RunRow, number: int, result: AttemptResult, writer: OutputWriter, now: float) -> "_Ended":
        error = result.start_error or writer.write_error
        columns = {"finished_at": now, "exit_code": result.exit_code, "signal": result.signal,
                   "output_bytes": writer.stored, "dropped_bytes": writer.dropped, "error": error,
                   "timed_out": int(result.timed_out)}
        attrs = {"attempt": number, "exit_code": result.exit_code, "signal": result.signal,
                 "timed_out": result.timed_out or None, "error": error or None}
        last = dataclasses.replace(run.attempt_list[-1], finished_at=now, exit_code=result.exit_code,
                                   signal=result.signal, output_bytes=writer.stored, dropped_bytes=writer.dropped,
                                   error=error, timed_out=result.timed_out)
        row = dataclasses.replace(run, exit_code=result.exit_code, signal=result.signal, pgid=None,
                                  attempt_list=(*run.attempt_list[:-1], last))
        return cls(number, columns, attrs, row)

    def record(self, store: Store, run: RunRow):  # noqa: ANN201 - an EventRow
        """The attempt row's end and its event, in the caller's transaction."""
        store.finish_attempt(run.id, self.number, **self.columns)
        return store.add_event(self.columns["finished_at"], "run.attempt_finished", run.job_id, run.n, self.attrs)


class Runner:
    def __init__(self, store: Store, artifacts: Artifacts, hub: Hub, events_changed, max_concurrent: int,
                 daemon_env: dict[str, str]) -> None:
        self.store, self.artifacts, self.hub = store, artifacts, hub
        self.events_changed = events_changed  # a Channel bumped after every committed event
        self.slots = Slots(max_concurrent)
        self.active: dict[str, ActiveRun] = {}
        self.daemon_env = daemon_env
        self.stopping = asyncio.Event()  # set by shutdown(): a run whose end cannot be recorded stops trying

    # ------------------------------------------------------------------ recording
    def transition(self, run: RunRow, state: RunState | None, event: str, attrs: dict[str, object] | None = None,
                   **fields: object) -> RunRow:
        """Apply a state change (checked against the kernel's table) and its event in one transaction,
        not synced: a run's end (`_finish`) makes the steps before it durable."""
        if state is not None and state is not run.state:
            advance(run.state, state)
            fields["state"] = state
        now = clock.to_epoch(clock.now())
        with self.store.write(durable=False):
            if fields:
                self.store.update_run(run.id, **fields)
            ev = self.store.add_event(now, event, run.job_id, run.n, attrs)
        changes = {k: (RunState(v) if k == "state" else v) for k, v in fields.items()}
        updated = dataclasses.replace(run, **changes)  # the row as committed, without a re-read
        self.after_event(updated, ev)
        return updated

    def after_event(self, run: RunRow, ev) -> None:  # noqa: ANN001
        """The event's line in events.jsonl (queued: the artifact thread writes it), and wake the watchers."""
        self.artifacts.later(f"run {run.ref}: events.jsonl", self.artifacts.append_event, run, ev)
        self._announce(run)

    def _announce(self, run: RunRow) -> None:
        self.events_changed.bump()
        channel = self.hub.get(run.ref)
        if channel:
            channel.bump()

    def active_ref(self, job_id: str) -> str | None:
        """The ref of the job's active run (queued, running or retrying), if it has one."""
        return next((ref for ref, act in self.active.items() if act.row.job_id == job_id), None)

    # ------------------------------------------------------------------ lifecycle
    def start(self, run: RunRow, spec: JobSpec, run_dir: str, birth: Callable[[], None] | None = None) -> ActiveRun:
        act = ActiveRun(run, spec, run_dir, birth=birth)
        self.active[run.ref] = act
        self.hub.open(run.ref)
        act.task = asyncio.get_running_loop().create_task(self._execute(act), name=f"run {run.ref}")
        return act

    def stop(self, act: ActiveRun, reason: str, actor: str = "") -> None:
        """End the run early: a queued or retrying run stops waiting, a running attempt's group is stopped
        (SIGTERM, SIGKILL after kill_grace). The first reason wins. Returns at once; `act.task` ends later."""
        if not act.stop_reason:
            act.stop_reason, act.stopped_by = reason, actor
        act.stop_requested.set()
        if act.attempt is not None:
            act.attempt.stop(reason)

    def _born(self, act: ActiveRun) -> None:
        """Queue the run's deferred first files (once; see ActiveRun.birth)."""
        birth, act.birth = act.birth, None
        if birth is not None:
            birth()

    async def _execute(self, act: ActiveRun) -> None:
        holding = False
        try:
            holding = await self._wait_for_slot(act)
            while holding:
                result, ended = await self._attempt(act)
                decision = after_attempt(result, act.row.attempts, act.spec.retry.attempts, clock.now(),
                                         act.spec.retry.backoff, act.spec.retry.factor, act.spec.retry.max)
                if isinstance(decision, Finish):
                    await self._finish(act, decision.state, result, ended=ended)  # one transaction for both
                    return
                self._record_end(act, ended)
                self.slots.release()
                holding = False
                if await self._backoff(act, decision):
                    holding = await self._wait_for_slot(act)
            await self._finish(act, RunState.CANCELLED if act.stop_reason == "cancelled" else RunState.INTERRUPTED, None)
        except Exception:  # a bug or a store that cannot be written must not leave the run active forever
            log.exception("run %s: internal error", act.ref)
            if act.attempt is not None:  # nothing of the attempt may run on unattended
                act.attempt.stop("interrupted")
                await act.attempt.wait()
                act.attempt = None
            # failed where the state table allows it (a running run); a queued or retrying run, which
            # never failed on its own, ends interrupted
            state = RunState.FAILED if RunState.FAILED in TRANSITIONS[act.row.state] else RunState.INTERRUPTED
            await self._finish(act, state, None, reason="internal error in jobsd (see the daemon log)")
        finally:
            if holding:
                self.slots.release()
            self.active.pop(act.ref, None)
            self.hub.close(act.ref)

    async def _wait_for_slot(self, act: ActiveRun) -> bool:
        """True once a slot is held; False when the run was stopped while waiting."""
        if act.stop_reason:
            return False
        waiter = self.slots.acquire()
        if waiter.done():  # a free slot: no wait, no extra loop turn
            return True
        self._born(act)
        if act.row.wait_reason != WaitReason.SLOT.value:
            act.row = self.transition(act.row, None, "run.waiting", {"wait_reason": "slot"}, wait_reason="slot")
        stop = asyncio.ensure_future(act.stop_requested.wait())
        await asyncio.wait([waiter, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if act.stop_reason:
            if waiter.done() and not waiter.cancelled():
                self.slots.release()
            waiter.cancel()
            return False
        return True

    async def _backoff(self, act: ActiveRun, decision: Retry) -> bool:
        """Wait out a retry's backoff holding no slot; False when stopped meanwhile."""
        act.row = self.transition(act.row, RunState.RETRYING, "run.retrying",
                                  {"next_attempt_at": decision.at.isoformat(), "delay": f"{decision.delay:g}"},
                                  wait_reason=WaitReason.BACKOFF.value, next_attempt_at=clock.to_epoch(decision.at))
        delay = max((decision.at - clock.now()).total_seconds(), 0.0)
        try:
            await asyncio.wait_for(act.stop_requested.wait(), delay)
        except asyncio.TimeoutError:
            pass
        return not act.stop_reason

    async def _attempt(self, act: ActiveRun) -> tuple[AttemptResult, _Ended]:
        """Run one attempt; its end is recorded by the caller (_record_end, or _finish with the run's)."""
        number = act.row.attempts + 1
        spec, run = act.spec, act.row
        writer = OutputWriter(act.run_dir, number, spec.limits.output)
        launch = self._launch(act, number)
        program, problem = resolve_program(launch.argv[0], launch.cwd, launch.env.get("PATH", DEFAULT_PATH))
        launch = dataclasses.replace(launch, program=program)
        if not problem and not os.path.isdir(launch.cwd):
            problem = f"working directory {launch.cwd!r} does not exist"
        attempt = None
        if not problem:
            try:
                attempt = act.attempt = await start_attempt(launch, writer, self.hub.open(run.ref).bump)
            except OSError as exc:
                problem = f"cannot start {launch.argv[0]!r}: {exc.strerror or exc}"
        now = clock.to_epoch(clock.now())
        act.row = self._record_start(act, number, now, attempt)
        if attempt is None:
            writer.write(STDERR, f"jobsd: {problem}\n".encode(), clock.now_ns())
            result = AttemptResult(start_error=problem)
        else:
            if act.stop_reason:
                attempt.stop(act.stop_reason)
            result = await attempt.wait()
            act.attempt = None
        writer.close()
        return result, _Ended.of(act.row, number, result, writer, clock.to_epoch(clock.now()))

    def _launch(self, act: ActiveRun, number: int) -> Launch:
        spec, run = act.spec, act.row
        env = job_environment(self.daemon_env, spec.env, job=run.job_id, run=run.ref, attempt=number,
                              trigger=run.trigger, scheduled_at=clock.from_epoch(run.scheduled_at))
        base = os.path.dirname(spec.file) or "."
        cwd = os.path.join(base, spec.cwd) if spec.cwd else base
        return Launch(spec.argv, os.path.abspath(cwd), env, spec.timeout, spec.kill_grace,
                      spec.limits.memory, spec.limits.cpu_time, spec.limits.open_files)

    def _record_start(self, act: ActiveRun, number: int, now: float, attempt: Attempt | None) -> RunRow:
        run = act.row
        pid = attempt.pid if attempt else None
        invocation = attempt.invocation_id if attempt else ""
        advance(run.state, RunState.RUNNING)
        with self.store.write(durable=False):
            self.store.update_run(run.id, state=RunState.RUNNING, wait_reason=None, attempts=number,
                                  started_at=run.started_at or now, next_attempt_at=None, pgid=pid)
            self.store.start_attempt(run.id, number, now, pid, invocation)
            ev = self.store.add_event(now, "run.started", run.job_id, run.n, {"attempt": number, "pid": pid})
        started = AttemptRow(number, now, None, None, None, pid, 0, 0, "", False, invocation)
        updated = dataclasses.replace(run, state=RunState.RUNNING, wait_reason=None, attempts=number,
                                      started_at=run.started_at or now, next_attempt_at=None, pgid=pid,
                                      attempt_list=(*run.attempt_list, started))
        self._born(act)  # its first files before this event's line, now that the start is recorded
        self.after_event(updated, ev)
        return updated

    def _record_end(self, act: ActiveRun, ended: _Ended) -> None:
        """An attempt that the run outlives (a retry follows): its end in a transaction of its own."""
        run = act.row
        with self.store.write(durable=False):
            ev = ended.record(self.store, run)
            self.store.update_run(run.id, exit_code=ended.row.exit_code, signal=ended.row.signal, pgid=None)
        act.row = ended.row
        self.after_event(ended.row, ev)

    async def _finish(self, act: ActiveRun, state: RunState, result: AttemptResult | None, reason: str = "",
                      ended: _Ended | None = None) -> None:
        """Record the run's end (with its last attempt's, when `ended`) in one durable transaction."""
        self._born(act)
        run = ended.row if ended else act.row  # kept current by this task, the only writer of an active run
        if not run.active:
            return
        advance(run.state, state)
        if not reason:
            reason = {"cancelled": f"cancelled by {act.stopped_by or 'an operator'}",
                      "interrupted": "jobsd stopped"}.get(act.stop_reason, "")
            if result is not None and result.start_error:
                reason = result.start_error
        fields = {"state": state, "finished_at": clock.to_epoch(clock.now()), "wait_reason": None,
                  "next_attempt_at": None, "reason": reason}
        if ended:
            fields.update(exit_code=run.exit_code, signal=run.signal, pgid=None)
        final = dataclasses.replace(run, **fields)
        # The final receipt first (fsynced off the loop), then the commit: whoever sees the run
        # finished finds its receipt final. A crash in between leaves the run active in the store,
        # and the start-up reconciliation rewrites the receipt.
        try:
            await self.artifacts.done(f"run {act.ref}: receipt", self._write_final, final, act.spec.file)
        except OSError as exc:
            log.error("run %s: cannot write its receipt: %s", act.ref, exc)
        while True:  # an acknowledged run is never lost: its end is recorded, however long the store refuses
            try:
                # Durable (fsynced) and with no await before the task ends: no one sees the run
                # finished before it is on disk, or while its job still counts as busy.
                with self.store.write(durable=True):
                    events = [ended.record(self.store, run)] if ended else []
                    self.store.update_run(run.id, **fields)
                    events.append(self.store.add_event(fields["finished_at"], "run.finished", run.job_id, run.n, {
                        "state": state.value, "exit_code": run.exit_code, "signal": run.signal,
                        "reason": reason or None}))
                break
            except InternalError as exc:  # the store cannot be written (full disk): the job stays busy meanwhile
                if self.store.release_reserve():
                    continue
                if self.stopping.is_set():  # the daemon stops within its bound; the next start records it
                    log.error("run %s: cannot record its end (%s); jobsd is stopping: the next start records it "
                              "interrupted", act.ref, exc)
                    return
                log.error("run %s: cannot record its end (%s): retrying in %gs", act.ref, exc, FINISH_RETRY)
                try:
                    await asyncio.wait_for(self.stopping.wait(), FINISH_RETRY)
                except asyncio.TimeoutError:
                    pass
        act.row = final
        # Its last events.jsonl lines, here (the lines before them were written with the receipt):
        # whoever sees the run finished finds them.
        for ev in events:
            try:
                self.artifacts.append_event(final, ev)
            except OSError as exc:
                log.error("run %s: cannot write events.jsonl: %s", act.ref, exc)
                self.artifacts.failed(final)
        self._announce(final)
        log.info("run %s finished: %s%s", act.ref, state.value, f" ({reason})" if reason else "")

    def _write_final(self, run: RunRow, spec_file: str) -> None:
        self.artifacts.write_receipt(run, spec_file)
        self.artifacts.write_summary(run, spec_file)

    async def shutdown(self, grace: float) -> None:
        """Stop every active run (recorded `interrupted`) and wait for their tasks."""
        self.stopping.set()
        for act in list(self.active.values()):
            self.stop(act, "interrupted")
        tasks = [a.task for a in self.active.values() if a.task]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
