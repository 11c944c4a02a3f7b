"""One method per RPC: load the facts, ask the kernel, apply the decision.

Runs on the event-loop thread only. Raises JobsdError subclasses; the API layer turns them
into gRPC statuses.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime

from jobsd import clock
from jobsd.artifacts import Artifacts
from jobsd.output import Channel, Hub
from jobsd.runner import Runner
from jobsd.specs import Catalog, load_catalog
from jobsd.store import RunRow, Store
from jobsd_lib.errors import JobBusy, JobDisabled, JobNotFound, InvalidArgument, InvalidSpec, RunNotFound, error_for_code
from jobsd_lib.kernel.decisions import Admit, Refuse, Skip, admit_run, job_state
from jobsd_lib.kernel.states import JobState, RunState, Trigger, WaitReason
from jobsd_lib.refs import decode_cursor, encode_cursor, parse_run_ref, require_job_id
from jobsd_lib.spec import JobSpec, SpecProblem

__all__ = ["Service", "JobView", "Paths"]

log = logging.getLogger("jobsd.service")
MAX_LIST_LIMIT = 1000


@dataclass(frozen=True)
class Paths:
    jobs_dir: str
    state_dir: str
    db_dir: str
    runs_dir: str
    socket: str
    lock_file: str
    store_file: str


@dataclass(frozen=True)
class JobView:
    id: str
    state: JobState
    spec: JobSpec | None
    problems: tuple[SpecProblem, ...]
    last_run: RunRow | None
    consecutive_failures: int
    next_run_at: datetime | None = None


@dataclass
class Service:
    paths: Paths
    store: Store
    runner: Runner
    artifacts: Artifacts
    hub: Hub
    events_changed: Channel
    catalog: Catalog = field(default_factory=Catalog)
    started_at: datetime = field(default_factory=clock.now)
    scheduler: object | None = None  # the cron adapter, when there is one (next_run_time, state)

    # ------------------------------------------------------------------ jobs
    def load_specs(self) -> Catalog:
        self.catalog = load_catalog(self.paths.jobs_dir)
        for job_id, problems in self.catalog.invalid.items():
            for problem in problems:
                log.warning("invalid spec %s", problem)
        return self.catalog

    def _view(self, job_id: str, operator: dict[str, str]) -> JobView:
        spec = self.catalog.specs.get(job_id)
        problems = tuple(self.catalog.invalid.get(job_id, ()))
        state = job_state(spec is not None, spec.enabled if spec else True, operator.get(job_id))
        next_run = self.scheduler.next_run_at(job_id) if self.scheduler and spec and state is JobState.ACTIVE else None
        return JobView(job_id, state, spec, problems, self.store.latest_run(job_id),
                       self.store.consecutive_failures(job_id), next_run)

    def list_jobs(self) -> list[JobView]:
        operator = self.store.operator_states()
        return [self._view(job_id, operator) for job_id in self.catalog.ids()]

    def get_job(self, job_id: str) -> JobView:
        require_job_id(job_id)
        if job_id not in self.catalog.specs and job_id not in self.catalog.invalid:
            raise JobNotFound(job_id)
        return self._view(job_id, self.store.operator_states())

    # ------------------------------------------------------------------ runs
    def run_job(self, job_id: str, trigger: Trigger = Trigger.MANUAL, scheduled_at: datetime | None = None,
                actor: str = "") -> RunRow:
        """Admit and durably record a run (committed before this returns), then start it."""
        view = self.get_job(job_id)
        active = self.store.active_run(job_id)
        decision = admit_run(job_id, trigger, view.state, active.ref if active else None)
        if isinstance(decision, Refuse):
            raise error_for_code(decision.code, decision.message, {"job": job_id})
        spec = view.spec
        now = clock.to_epoch(clock.now())
        state = RunState.QUEUED if isinstance(decision, Admit) else RunState.SKIPPED
        reason = decision.reason if isinstance(decision, Skip) else ""
        with self.store.write():
            run = self.store.create_run(
                job_id=job_id, state=state, trigger=trigger.value, now=now, reason=reason,
                wait_reason=WaitReason.SLOT.value if state is RunState.QUEUED else None,
                scheduled_at=clock.to_epoch(scheduled_at), spec_digest=spec.digest if spec else "",
                max_attempts=spec.retry.attempts if spec else 1, finished=state is RunState.SKIPPED)
            ev = self.store.add_event(now, f"run.{state.value}", job_id, run.n,
                                      {"trigger": trigger.value, "actor": actor or None, "reason": reason or None,
                                       "scheduled_at": scheduled_at.isoformat() if scheduled_at else None})
        run_dir = self.artifacts.create(run)
        self.runner.after_event(run, ev)
        self.artifacts.write_receipt(run, spec.file if spec else "")
        if state is RunState.QUEUED:
            self.runner.start(run, spec, run_dir)
        return run

    def get_run(self, ref: str) -> RunRow:
        job_id, n = parse_run_ref(ref)
        run = self.store.get_run(job_id, n)
        if run is None:
            raise RunNotFound(ref)
        return run

    def list_runs(self, job_id: str, limit: int, cursor: str, states: list[str]) -> tuple[list[RunRow], str]:
        if job_id:
            require_job_id(job_id)
        if limit < 0 or limit > MAX_LIST_LIMIT:
            raise InvalidArgument(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        limit = limit or 20
        for state in states:
            if state not in {s.value for s in RunState}:
                raise InvalidArgument(f"{state!r} is not a run state")
        rows = self.store.list_runs(job_id, limit + 1, decode_cursor(cursor), states)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].id) if more else ""

    def run_dir(self, run: RunRow) -> str:
        return self.artifacts.run_dir(run.job_id, run.n)

    # ------------------------------------------------------------------ start-up
    def reconcile_interrupted(self) -> list[RunRow]:
        """Runs a dead daemon left active become `interrupted`; their leftover processes are stopped."""
        fixed = []
        for run in self.store.active_runs():
            _kill_leftover(run)
            reason = f"jobsd stopped while the run was {run.state.value}"
            now = clock.to_epoch(clock.now())
            with self.store.write():
                self.store.update_run(run.id, state=RunState.INTERRUPTED, finished_at=now, wait_reason=None,
                                      next_attempt_at=None, reason=reason, pgid=None)
                ev = self.store.add_event(now, "run.finished", run.job_id, run.n,
                                          {"state": "interrupted", "reason": reason})
            updated = self.store.get_run(run.job_id, run.n)
            try:
                os.makedirs(self.run_dir(updated), exist_ok=True)
                self.runner.after_event(updated, ev)
                spec = self.catalog.specs.get(run.job_id)
                self.artifacts.write_receipt(updated, spec.file if spec else "")
                self.artifacts.write_summary(updated, spec.file if spec else "")
            except OSError as exc:
                log.error("run %s: cannot update its artifacts: %s", run.ref, exc)
            log.warning("run %s marked interrupted: %s", run.ref, reason)
            fixed.append(updated)
        return fixed


def _kill_leftover(run: RunRow) -> None:
    """SIGKILL the process group of a run a dead daemon left, if it is still that run's.

    A pgid can be reused after a reboot, so the group leader must carry JOBSD_RUN=<ref>.
    """
    if not run.pgid:
        return
    try:
        with open(f"/proc/{run.pgid}/environ", "rb") as f:
            environ = f.read().split(b"\0")
    except OSError:
        return
    if f"JOBSD_RUN={run.ref}".encode() in environ:
        import signal
        try:
            os.killpg(run.pgid, signal.SIGKILL)
            log.warning("run %s: killed leftover process group %s", run.ref, run.pgid)
        except OSError:
            pass
