"""The journal: the only writer of run and job records (DESIGN 9).

Every change of a run or a job goes through one method here, and each does the same three things
in the same order:
  1. one store transaction: the change and its events (one per fact, `Fact.TYPE` and `attrs()`);
  2. the run folder's files: its events.jsonl lines and receipt, queued to the artifact thread
     (artifacts.py), except a run's end, whose receipt is written and synced before the commit and
     whose last lines are appended right after it (whoever sees the run finished finds both);
  3. the facts, published on the bus (bus.py): followers, WatchEvents and GetHealth's counters
     learn of the change from there.
Methods return the run row as committed (without reading it back). A store that refuses the write
raises StoreUnwritable and nothing changed (no files, no facts).

Durability (store.py): new runs of a manual request, runs' ends, missed windows and operator and
daemon changes are durable when the method returns; a run's steps in between (waiting, an attempt
started or ended, retrying) are not synced, and the next durable commit makes them so.

A queued run's first files (its events.jsonl line and queued receipt) are held back until its
first step is recorded (`born`): the artifact thread's work would otherwise compete for the CPU
and the GIL with the spawn of the run's child. Its record is in the store already.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from jobsd.artifacts import Artifacts
from jobsd.bus import Bus
from jobsd.clock import Clock, to_epoch
from jobsd.folders import make_folder
from jobsd.store import AttemptRow, EventRow, RunRow, Store
from jobsd.store_rows import JobActive, StoreUnwritable, WindowTaken
from jobsd_lib.facts import (AttemptFinished, Fact, OperatorFact, RunApproved, RunFinished, RunMissed, RunQueued, RunRejected,
                             RunRetrying, RunSkipped, RunStarted, RunWaiting, Actor)
from jobsd_lib.kernel.run import AttemptEnd, Decision, RecordEnd, Retrying, Started, Waiting
from jobsd_lib.kernel.states import RunState, Trigger, WaitReason
from jobsd_lib.spec import JobSpec

__all__ = ["Journal", "dependency_mark"]

log = logging.getLogger("jobsd.journal")
TAKEN_OVER = "taken over by the leader"  # StoreUnwritable.cause of a step of a run another host closed


class Journal:
    def __init__(self, store: Store, artifacts: Artifacts, bus: Bus, clock: Clock, host: str = "") -> None:
        self.store, self.artifacts, self.bus, self.clock = store, artifacts, bus, clock
        self.host = host  # --host-name: every run this jobsd records carries it
        self._unborn: dict[str, Callable[[], None]] = {}  # run ref -> its held-back first files

    # ------------------------------------------------------------------ plumbing
    def _event(self, fact: Fact) -> EventRow:
        return self.store.add_event(fact.ts, fact.TYPE, fact.job_id, fact.run_n, fact.attrs())

    def _lines(self, run: RunRow, events: Iterable[EventRow]) -> None:
        for ev in events:
            self.artifacts.later(f"run {run.ref}: events.jsonl", self.artifacts.append_event, run, ev)

    def _publish(self, facts: Iterable[Fact]) -> None:
        for fact in facts:
            self.bus.publish(fact)

    def record(self, *facts: Fact, durable: bool = True, change: Callable[[Store], None] | None = None) -> None:
        """A change that is not a run's (operator state, reload, gc, the heartbeat): `change(store)`
        and the facts' events in one transaction, then the facts on the bus."""
        with self.store.write(durable=durable):
            if change is not None:
                change(self.store)
            self.store.add_events([(f.ts, f.TYPE, f.job_id, f.run_n, f.attrs()) for f in facts])
        self._publish(facts)

    def _fence(self, job_id: str, window: datetime) -> None:
        """A cron window is recorded once whichever leader gets there first (DESIGN 12)."""
        if not self.store.claim_window(job_id, to_epoch(window)):
            raise WindowTaken(f"cron window {window.isoformat()} of {job_id} was recorded by another jobsd")

    def _still_ours(self, run: RunRow) -> None:
        """A step of a run that the leader of a shared store recorded interrupted meanwhile (this host
        had stopped renewing its heartbeat) is refused: the runner ends the run, whose end is then
        not recorded either (`end`)."""
        if not self.store.still_active(run.id):
            raise StoreUnwritable(f"run {run.ref} was recorded interrupted by another host meanwhile", TAKEN_OVER)

    def born(self, ref: str) -> None:
        """Queue the run's held-back first files now (once)."""
        birth = self._unborn.pop(ref, None)
        if birth is not None:
            birth()

    # ------------------------------------------------------------------ new runs
    def create_run(self, job_id: str, state: RunState, trigger: Trigger, spec: JobSpec | None, actor: Actor,
                   scheduled_at: datetime | None = None, reason: str = "", retry_of: str = "",
                   upstream: str = "") -> RunRow:
        """A new run, queued (its first files held back until `born`) or skipped (terminal at birth).

        A dependency run (trigger dependency, `upstream` the run that completed the set) moves its
        job's dependency mark to its own event in the same transaction: the successes up to there are
        used up, also across a crash (handlers/dependency.py).

        A manual run is acknowledged to its caller: its record is synced first. Nobody waits on a
        cron window's record; it commits like APScheduler's job store (WAL, synced at the next
        durable commit or checkpoint), so a power cut loses or repeats both together."""
        now = self.clock.epoch()
        queued = state is RunState.QUEUED
        with self.store.write(durable=trigger.requested):
            if trigger in (Trigger.CRON, Trigger.CATCH_UP) and scheduled_at is not None:
                self._fence(job_id, scheduled_at)
            if queued and (other := self.store.claim_job(job_id)) is not None:  # another host's run
                raise JobActive(other)
            run = self.store.create_run(
                job_id=job_id, state=state, trigger=trigger.value, now=now, reason=reason,
                wait_reason=WaitReason.SLOT.value if queued else None, scheduled_at=to_epoch(scheduled_at),
                spec_digest=spec.digest if spec else "", max_attempts=spec.retry.attempts if spec else 1,
                finished=not queued, retry_of=retry_of, upstream=upstream, host=self.host)
            fact = (RunQueued if queued else RunSkipped)(ts=now, job_id=job_id, run_n=run.n, trigger=trigger,
                                                         actor=actor, reason=reason, scheduled_at=scheduled_at,
                                                         retry_of=retry_of, upstream=upstream)
            ev = self._event(fact)
            if trigger is Trigger.DEPENDENCY:
                self.store.set_meta(dependency_mark(job_id), str(ev.seq))
        self._folder(run)
        spec_file = spec.file if spec else ""

        def birth() -> None:
            self._lines(run, [ev])
            self.artifacts.later(f"run {run.ref}: receipt", self.artifacts.write_receipt, run, spec_file, not queued)

        if queued:
            self._unborn[run.ref] = birth
        else:
            birth()
        self._publish([fact])
        return run

    def missed(self, job_id: str, window: datetime, reason: str, spec: JobSpec | None) -> RunRow:
        """A cron window that was not run: a `missed` run, terminal at birth."""
        now = self.clock.epoch()
        with self.store.write():
            self._fence(job_id, window)
            run = self.store.create_missed_run(job_id, now, to_epoch(window), reason, spec.digest if spec else "",
                                               host=self.host)
            fact = RunMissed(ts=now, job_id=job_id, run_n=run.n, window=window, reason=reason)
            ev = self._event(fact)
        self._folder(run)
        self._lines(run, [ev])
        try:
            self.artifacts.write_receipt(run, spec.file if spec else "")
        except OSError as exc:  # brought in line later (repair.py)
            log.error("run %s: cannot write its receipt: %s", run.ref, exc)
            self.artifacts.failed(run)
        self._publish([fact])
        log.warning("run %s missed: %s", run.ref, reason)
        return run

    def _folder(self, run: RunRow) -> str:
        """The run's folder. The run is recorded already: a folder that cannot be made (a full disk)
        is logged, and the run goes on (its output is dropped and counted); the folder is brought
        in line with the store later (repair.py)."""
        try:
            return self.artifacts.create(run)
        except OSError as exc:
            log.error("run %s: cannot create its folder: %s", run.ref, exc)
            self.artifacts.failed(run)
            return self.artifacts.run_dir(run.job_id, run.n)

    # ------------------------------------------------------------------ a run's steps (kernel.run.Record)
    def step(self, run: RunRow, step: Waiting | Decision | Started | AttemptEnd | Retrying) -> RunRow:
        """Record one step of an active run in a transaction of its own, not synced (but for an
        approval: whoever approved is told so once it is on disk)."""
        self.born(run.ref)  # its first files before this step's line
        if isinstance(step, Started):
            return self._started(run, step)
        now = self.clock.epoch()
        with self.store.write(durable=isinstance(step, Decision)):
            self._still_ours(run)
            if isinstance(step, Decision):
                facts = [_decision_fact(run, step)]
                fields = {**_decision_fields(step), "wait_reason": None, "wait_detail": ""}
                self.store.update_run(run.id, **fields)
                run = dataclasses.replace(run, **fields)
            elif isinstance(step, AttemptEnd):
                run, facts = self._attempt_end(run, step), [_attempt_fact(run, step)]
                self.store.update_run(run.id, exit_code=run.exit_code, signal=run.signal, pgid=None)
            elif isinstance(step, Waiting):
                facts = [RunWaiting(ts=now, job_id=run.job_id, run_n=run.n, wait_reason=step.wait_reason,
                                    detail=step.detail)]
                fields = {"wait_reason": step.wait_reason.value, "wait_detail": step.detail,
                          "waiting_since": to_epoch(step.since) if step.since else run.waiting_since}
                self.store.update_run(run.id, **fields)
                run = dataclasses.replace(run, **fields)
            else:
                facts = [RunRetrying(ts=now, job_id=run.job_id, run_n=run.n, next_attempt_at=step.at,
                                     delay=step.delay)]
                fields = {"state": RunState.RETRYING, "wait_reason": WaitReason.BACKOFF.value,
                          "next_attempt_at": to_epoch(step.at)}
                self.store.update_run(run.id, **fields)
                run = dataclasses.replace(run, **fields)
            events = [self._event(f) for f in facts]
        self._lines(run, events)
        self._publish(facts)
        return run

    def _started(self, run: RunRow, step: Started) -> RunRow:
        now = to_epoch(step.at)
        fields = {"state": RunState.RUNNING, "wait_reason": None, "wait_detail": "", "attempts": step.attempt,
                  "started_at": run.started_at or now, "next_attempt_at": None, "pgid": step.pid}
        fact = RunStarted(ts=now, job_id=run.job_id, run_n=run.n, attempt=step.attempt, pid=step.pid)
        with self.store.write(durable=False):
            self._still_ours(run)
            self.store.update_run(run.id, **fields)
            self.store.start_attempt(run.id, step.attempt, now, step.pid, step.invocation_id)
            ev = self._event(fact)
        attempt = AttemptRow(step.attempt, now, None, None, None, step.pid, 0, 0, "", False, step.invocation_id)
        run = dataclasses.replace(run, **fields, attempt_list=(*run.attempt_list, attempt))
        self._lines(run, [ev])
        self._publish([fact])
        return run

    def _attempt_end(self, run: RunRow, end: AttemptEnd) -> RunRow:
        """The attempt row's end, in the caller's transaction; the run row after it."""
        self.store.finish_attempt(run.id, end.number, finished_at=to_epoch(end.finished_at), exit_code=end.exit_code,
                                  signal=end.signal, output_bytes=end.output_bytes, dropped_bytes=end.dropped_bytes,
                                  error=end.error, timed_out=int(end.timed_out))
        return _with_attempt_end(run, end)

    # ------------------------------------------------------------------ a run's end
    @staticmethod
    def final_row(run: RunRow, end: RecordEnd) -> RunRow:
        """The run's row once `end` is recorded."""
        if end.attempt is not None:
            run = _with_attempt_end(run, end.attempt)
        return dataclasses.replace(run, **_end_fields(end))

    async def write_final_files(self, final: RunRow, spec_file: str) -> None:
        """The final receipt (synced, off the loop) and summary, before the end is committed: whoever
        sees the run finished finds its receipt final. A crash in between leaves the run active in the
        store, and the start-up reconciliation rewrites the receipt."""
        self.born(final.ref)
        try:
            await self.artifacts.done(f"run {final.ref}: receipt", self._write_final, final, spec_file)
        except OSError as exc:
            log.error("run %s: cannot write its receipt: %s", final.ref, exc)

    def _write_final(self, run: RunRow, spec_file: str) -> None:
        self.artifacts.write_receipt(run, spec_file)
        self.artifacts.write_summary(run, spec_file)

    def end(self, run: RunRow, end: RecordEnd) -> RunRow:
        """Record the run's end (with its last attempt's) in one durable transaction, then its last
        events.jsonl lines, here and now. Raises StoreUnwritable (nothing changed)."""
        final = self.final_row(run, end)
        facts: list[Fact] = []
        with self.store.write(durable=True):
            if not self.store.still_active(run.id):
                taken = True
            else:
                taken = False
                self._end(run, end, final, facts)
                events = [self._event(f) for f in facts]
        if taken:
            log.warning("run %s ended %s here, but another host had recorded it interrupted meanwhile (this host "
                        "had stopped renewing its heartbeat): its end here is not recorded", run.ref, end.state.value)
            return self.store.get_run(run.job_id, run.n) or final
        for ev in events:
            try:
                self.artifacts.append_event(final, ev)
            except OSError as exc:
                log.error("run %s: cannot write events.jsonl: %s", run.ref, exc)
                self.artifacts.failed(final)
        self._publish(facts)
        return final

    def _end(self, run: RunRow, end: RecordEnd, final: RunRow, facts: list[Fact]) -> None:
        """The end's rows, in the caller's transaction; its facts appended to `facts`."""
        if end.attempt is not None:
            self._attempt_end(run, end.attempt)
            facts.append(_attempt_fact(run, end.attempt))
        if end.decision is not None:
            facts.append(_decision_fact(run, end.decision))
        self.store.update_run(run.id, **_end_fields(end))
        facts.append(RunFinished(ts=final.finished_at, job_id=run.job_id, run_n=run.n, state=end.state,
                                 exit_code=final.exit_code, signal=final.signal, reason=end.reason))

    def free_reserve(self) -> bool:
        """Give up the store's reserve to record a run's end on a full disk (True: there was one)."""
        return self.store.release_reserve()

    def interrupted(self, run: RunRow, reason: str, log_size: Callable[[int], int], spec_file: str,
                    files: bool = True) -> RunRow:
        """A run a dead daemon left active: `interrupted`, its unfinished attempts closed with what
        their log files hold (`log_size(attempt number)`), its files brought in line. `files=False`
        for another host's run (its folder is on that host, whose start-up repair brings it in line)."""
        now = self.clock.epoch()
        fact = RunFinished(ts=now, job_id=run.job_id, run_n=run.n, state=RunState.INTERRUPTED, reason=reason)
        with self.store.write():
            if not files and not self.store.still_active(run.id):  # its host came back and ended it first
                return self.store.get_run(run.job_id, run.n) or run
            for attempt in run.attempt_list:
                if attempt.finished_at is None:
                    self.store.finish_attempt(run.id, attempt.number, finished_at=now, error=reason,
                                              output_bytes=log_size(attempt.number))
            self.store.update_run(run.id, state=RunState.INTERRUPTED, finished_at=now, wait_reason=None,
                                  next_attempt_at=None, reason=reason, pgid=None)
            ev = self._event(fact)
        updated = self.store.get_run(run.job_id, run.n)
        if not files:
            self._publish([fact])
            return updated
        try:
            make_folder(self.artifacts.run_dir(run.job_id, run.n))
            self.artifacts.append_event(updated, ev)
            self.artifacts.write_receipt(updated, spec_file)
            self.artifacts.write_summary(updated, spec_file)
        except OSError as exc:
            log.error("run %s: cannot update its artifacts: %s", run.ref, exc)
            self.artifacts.failed(updated)
        self._publish([fact])
        return updated

    # ------------------------------------------------------------------ jobs and the daemon
    def operator_state(self, fact: OperatorFact) -> None:
        """An operator's pause, resume, disable or enable of `fact.job_id` (with a pause's end and reason)."""
        self.record(fact, change=lambda store: store.set_operator_state(
            fact.job_id, fact.state.value, fact.ts, str(fact.actor), fact.until, fact.reason))

    def delete_runs(self, run_ids: Sequence[int], durable: bool = True) -> int:
        """Retention: remove finished runs' records (events stay: the audit log); their folders are
        owed (store.owed_folders) until `folders_removed`. The caller records its DaemonGc fact
        once the folders are gone (or it is stopped). durable=False for all but the last batch of a sweep: the last
        one's sync makes the earlier ones durable too, before any folder is touched."""
        with self.store.write(durable=durable):
            return self.store.delete_runs(run_ids)

    def folders_removed(self, keys: Sequence[tuple[str, int]]) -> None:
        """These runs' folders are gone. Not synced: were it lost, removing a missing folder again is harmless."""
        with self.store.write(durable=False):
            self.store.folders_removed(keys)


def dependency_mark(job_id: str) -> str:
    """The daemon_meta key of a downstream job's mark: the event seq up to which its upstreams'
    successes are used up ("" or absent: the job has no `after`)."""
    return f"after_mark:{job_id}"


def _end_fields(end: RecordEnd) -> dict[str, object]:
    fields: dict[str, object] = {"state": end.state, "finished_at": to_epoch(end.at), "wait_reason": None, "wait_detail": "",
                                 "next_attempt_at": None, "reason": end.reason}
    if end.attempt is not None:
        fields.update(exit_code=end.attempt.exit_code, signal=end.attempt.signal, pgid=None)
    elif end.exit_code is not None:  # the condition's, when it decided the end
        fields["exit_code"] = end.exit_code
    if end.decision is not None:
        fields.update(_decision_fields(end.decision))
    return fields


def _decision_fields(decision: Decision) -> dict[str, object]:
    return {"decision": "approved" if decision.approved else "rejected", "decided_by": decision.actor.label,
            "decided_at": to_epoch(decision.at), "decision_comment": decision.comment,
            "decision_client": decision.actor.client}


def _decision_fact(run: RunRow, decision: Decision) -> RunApproved:
    fact = RunApproved if decision.approved else RunRejected
    return fact(ts=to_epoch(decision.at), job_id=run.job_id, run_n=run.n, comment=decision.comment,
                actor=decision.actor)


def _with_attempt_end(run: RunRow, end: AttemptEnd) -> RunRow:
    at = to_epoch(end.finished_at)
    last = dataclasses.replace(run.attempt_list[-1], finished_at=at, exit_code=end.exit_code, signal=end.signal,
                               output_bytes=end.output_bytes, dropped_bytes=end.dropped_bytes, error=end.error,
                               timed_out=end.timed_out)
    return dataclasses.replace(run, exit_code=end.exit_code, signal=end.signal, pgid=None,
                               attempt_list=(*run.attempt_list[:-1], last))


def _attempt_fact(run: RunRow, end: AttemptEnd) -> AttemptFinished:
    return AttemptFinished(ts=to_epoch(end.finished_at), job_id=run.job_id, run_n=run.n, attempt=end.number,
                           exit_code=end.exit_code, signal=end.signal, timed_out=end.timed_out, error=end.error)
