"""One method per RPC: load the facts, ask the kernel, apply the decision.

Runs on the event-loop thread only. Raises JobsdError subclasses; the API layer turns them
into gRPC statuses.
"""
from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime

from jobsd import clock
from jobsd.artifacts import Artifacts
from jobsd.output import Channel, Hub
from jobsd.peer import Actor, audit_attrs
from jobsd.runner import Runner
from jobsd.specs import Catalog, load_catalog
from jobsd.folders import make_folder
from jobsd.held import HeldWindows
from jobsd.store import RunRow, Store, StoreUnwritable
from jobsd_lib.errors import (InternalError, InvalidArgument, JobNotFound, JobsdError, RunNotActive, RunNotFound,
                              error_for_code)
from jobsd_lib.kernel.decisions import Admit, Refuse, Skip, admit_run, job_state
from jobsd_lib.kernel.fire import MAX_MISSED, CatchUp, Miss, decide_firing, unrecorded
from jobsd_lib.kernel.retention import retention_policy
from jobsd_lib.kernel.states import JobState, RunState, Trigger, WaitReason
from jobsd_lib.limits import MAX_LIST_LIMIT, MAX_NEXT_COUNT
from jobsd_lib.refs import decode_cursor, encode_cursor, parse_run_ref, require_job_id
from jobsd_lib.spec import JobSpec, SpecProblem

__all__ = ["Service", "JobView", "Paths", "GcResult"]

log = logging.getLogger("jobsd.service")
DEFAULT_NEXT_COUNT = 5
CANCEL_SLACK = 5.0        # seconds CancelRun waits beyond the job's kill_grace for the run to end
GC_LISTED, GC_BATCH = 10_000, 2_000  # refs named in a gc answer; runs deleted per transaction


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


@dataclass(frozen=True)
class GcResult:
    removed: list[str]    # run refs, at most GC_LISTED of them
    removed_count: int
    bytes_freed: int
    dry_run: bool


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
    _fired: set[str] = field(default_factory=set)  # jobs that fired since start-up (catch_up applies once)
    _gc_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one gc at a time
    held_windows: HeldWindows = field(init=False)  # windows that came while the store refused writes

    def __post_init__(self) -> None:
        self.held_windows = HeldWindows(self.record_missed)

    # ------------------------------------------------------------------ jobs
    def load_specs(self) -> Catalog:
        self.catalog = load_catalog(self.paths.jobs_dir)
        for job_id, problems in self.catalog.invalid.items():
            for problem in problems:
                log.warning("invalid spec %s", problem)
        return self.catalog

    def sync_schedule(self):  # noqa: ANN201
        """Make the cron scheduler match the loaded specs (invalid specs keep their stored schedule)."""
        if self.scheduler is None:
            return None
        return self.scheduler.sync(self.catalog.specs.values(), keep=self.catalog.invalid)

    def reload(self, actor: Actor | str = "") -> tuple[list[str], list[str], list[str], Catalog]:
        """Re-read the jobs directory and re-sync the scheduler. Returns (added, changed, removed, catalog):
        job ids whose file appeared, changed (content or validity) or disappeared."""
        def digests(catalog: Catalog) -> dict[str, str]:
            return {**{j: "invalid:" + repr(p) for j, p in catalog.invalid.items()},
                    **{j: s.digest for j, s in catalog.specs.items()}}

        before = digests(self.catalog)
        catalog = self.load_specs()
        after = digests(catalog)
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        changed = sorted(j for j in set(after) & set(before) if after[j] != before[j])
        self.sync_schedule()
        now = clock.to_epoch(clock.now())
        with self.store.write():
            self.store.add_event(now, "daemon.reloaded", "", None,
                                 {**audit_attrs(actor), "added": ",".join(added) or None,
                                  "changed": ",".join(changed) or None, "removed": ",".join(removed) or None,
                                  "invalid": len(catalog.invalid)})
        self.events_changed.bump()
        log.info("reloaded specs: %d jobs (%d invalid); added %s, changed %s, removed %s", len(catalog.specs),
                 len(catalog.invalid), added or "none", changed or "none", removed or "none")
        return added, changed, removed, catalog

    def _state(self, job_id: str, operator_state: str | None) -> JobState:
        spec = self.catalog.specs.get(job_id)
        return job_state(spec is not None, spec.enabled if spec else True, operator_state)

    def _never_known(self, job_id: str) -> bool:
        """No spec (valid or not) and no run recorded: a job of the past still has its history."""
        return job_id not in self.catalog.specs and job_id not in self.catalog.invalid \
            and self.store.latest_run(job_id) is None

    def _require_known(self, job_id: str) -> None:
        if job_id in self.catalog.invalid:  # listed, so showable, even when its file name is no valid id
            return
        require_job_id(job_id)
        if job_id not in self.catalog.specs:
            raise JobNotFound(job_id)

    def _view(self, job_id: str, operator: dict[str, str], summary: tuple[RunRow | None, int],
              next_runs: dict[str, datetime] | None = None) -> JobView:
        spec = self.catalog.specs.get(job_id)
        problems = tuple(self.catalog.invalid.get(job_id, ()))
        state = self._state(job_id, operator.get(job_id))
        next_run = None
        if self.scheduler and spec and spec.schedule and state is JobState.ACTIVE:
            next_run = next_runs.get(job_id) if next_runs is not None else self.scheduler.next_run_at(job_id)
        last_run, failures = summary
        return JobView(job_id, state, spec, problems, last_run, failures, next_run)

    def list_jobs(self) -> list[JobView]:
        """Every job, in a constant number of store queries (operator states, then every job's last
        run and failure count, then those runs' attempts) and one of the scheduler's job store:
        200 clients listing 21 jobs pinned the loop when it was ~3 queries a job (issue 19)."""
        ids = self.catalog.ids()
        operator = self.store.operator_states()
        summaries = self.store.job_summaries(ids)
        next_runs = self.scheduler.all_next_run_times() if self.scheduler else {}  # one query, not one a job
        return [self._view(job_id, operator, summaries[job_id], next_runs) for job_id in ids]

    def get_job(self, job_id: str) -> JobView:
        self._require_known(job_id)
        return self._view(job_id, self.store.operator_states(), self.store.job_summaries([job_id])[job_id])

    # ------------------------------------------------------------------ operator state
    def pause_job(self, job_id: str, actor: Actor | str = "") -> JobView:
        """No scheduled runs (cron windows are recorded `skipped`, reason paused); manual runs still allowed."""
        return self._set_operator_state(job_id, JobState.PAUSED, "job.paused", actor)

    def resume_job(self, job_id: str, actor: Actor | str = "") -> JobView:
        """Back to active (also clears an operator disable)."""
        return self._set_operator_state(job_id, JobState.ACTIVE, "job.resumed", actor)

    def disable_job(self, job_id: str, actor: Actor | str = "") -> JobView:
        """No runs at all: RunJob answers job_disabled, cron windows are recorded `skipped`."""
        return self._set_operator_state(job_id, JobState.DISABLED, "job.disabled", actor)

    def enable_job(self, job_id: str, actor: Actor | str = "") -> JobView:
        """Clear the operator's disable (or pause). A spec with `enabled = false` stays disabled: the
        returned view's state says so; edit the file and reload to enable it."""
        return self._set_operator_state(job_id, JobState.ACTIVE, "job.enabled", actor)

    def _set_operator_state(self, job_id: str, state: JobState, event_type: str, actor: Actor | str) -> JobView:
        self.get_job(job_id)  # validates the id; job_not_found
        now = clock.to_epoch(clock.now())
        with self.store.write():
            self.store.set_operator_state(job_id, state.value, now, str(actor))
            self.store.add_event(now, event_type, job_id, None, {**audit_attrs(actor), "state": state.value})
        self.events_changed.bump()
        view = self.get_job(job_id)
        log.info("%s %s by %s (now %s)", event_type, job_id, actor or "unknown", view.state.value)
        return view

    # ------------------------------------------------------------------ runs
    def run_job(self, job_id: str, trigger: Trigger = Trigger.MANUAL, scheduled_at: datetime | None = None,
                actor: Actor | str = "") -> RunRow:
        """Admit and durably record a run (committed before this returns), then start it."""
        self._require_known(job_id)  # admission needs the state, not the job's history: no full view
        spec = self.catalog.specs.get(job_id)
        decision = admit_run(job_id, trigger, self._state(job_id, self.store.operator_state(job_id)),
                             self.runner.active_ref(job_id), disabled_by_spec=spec is not None and not spec.enabled)
        if isinstance(decision, Refuse):
            raise error_for_code(decision.code, decision.message, {"job": job_id})
        now = clock.to_epoch(clock.now())
        state = RunState.QUEUED if isinstance(decision, Admit) else RunState.SKIPPED
        reason = decision.reason if isinstance(decision, Skip) else ""
        # A manual run is acknowledged to its caller: its record is fsynced first. Nobody waits on a
        # cron window's record; it commits like APScheduler's job store (WAL, synced at the next
        # durable commit or checkpoint), so a power cut loses or repeats both together.
        with self.store.write(durable=trigger is Trigger.MANUAL):
            run = self.store.create_run(
                job_id=job_id, state=state, trigger=trigger.value, now=now, reason=reason,
                wait_reason=WaitReason.SLOT.value if state is RunState.QUEUED else None,
                scheduled_at=clock.to_epoch(scheduled_at), spec_digest=spec.digest if spec else "",
                max_attempts=spec.retry.attempts if spec else 1, finished=state is RunState.SKIPPED)
            ev = self.store.add_event(now, f"run.{state.value}", job_id, run.n,
                                      {"trigger": trigger.value, **audit_attrs(actor), "reason": reason or None,
                                       "scheduled_at": scheduled_at.isoformat() if scheduled_at else None})
        run_dir = self._new_folder(run)

        def birth() -> None:  # its first events.jsonl line and its receipt, by the artifact thread
            self.runner.after_event(run, ev)
            self.artifacts.later(f"run {run.ref}: receipt", self.artifacts.write_receipt, run,
                                 spec.file if spec else "", state is not RunState.QUEUED)

        if state is RunState.QUEUED:
            self.runner.start(run, spec, run_dir, birth)  # its task queues them once its start is recorded
        else:
            birth()
        return run

    # ------------------------------------------------------------------ cron
    def next_run_times(self, job_id: str, count: int = 0) -> list[datetime]:
        """The next `count` (0: DEFAULT_NEXT_COUNT; at most MAX_NEXT_COUNT, else invalid_argument) fire
        times of the job's schedule after now, as aware UTC datetimes.

        A job without a schedule (manual only) answers an empty list, not an error. The times are
        the schedule's, whatever the job's state: a paused or disabled job shows when it would fire
        (its `state` says it will not). An invalid spec answers job_invalid_spec.
        """
        view = self.get_job(job_id)
        if count < 0 or count > MAX_NEXT_COUNT:
            raise InvalidArgument(f"count must be between 1 and {MAX_NEXT_COUNT} (0 means {DEFAULT_NEXT_COUNT})")
        if view.spec is None:
            raise error_for_code("job_invalid_spec", f"job {job_id!r} has an invalid spec: `jobsctl jobs show "
                                 f"{job_id}` says why", {"job": job_id})
        if view.spec.schedule is None:
            return []
        from jobsd.triggers import build_trigger, next_fire_times

        schedule = view.spec.schedule
        return next_fire_times(build_trigger(schedule.expr, schedule.timezone), clock.now(),
                               count or DEFAULT_NEXT_COUNT)

    def on_fire(self, job_id: str, run_times: list[datetime]) -> None:
        """APScheduler found windows of `job_id` due: run or record each as the kernel decides.

        Runs go through run_job (trigger cron, scheduled_at = the window), which records
        skipped runs itself (overlap, paused, disabled); late or coalesced windows become
        `missed` records. With catch_up, the job's first firing after start-up runs its latest
        window missed while jobsd was down (trigger catch_up) when no window is on time.

        A job's first firing since start-up drops the windows that already have a record:
        APScheduler's job store can come back behind the runs table (a power cut rolls back its
        unsynced commits).
        """
        first = job_id not in self._fired
        if first:
            self._fired.add(job_id)
            run_times, again = unrecorded(run_times, self.store.recent_windows(job_id))
            if again:
                log.warning("job %s: %d cron window(s) up to %s dropped: recorded before the restart", job_id,
                            len(again), again[-1].isoformat())
            if not run_times:
                return
        spec = self.catalog.specs.get(job_id)
        if spec is None and job_id in self.catalog.invalid:
            # the file broke after the job was scheduled: its windows are recorded, never dropped
            for window in sorted(run_times)[-MAX_MISSED:]:
                self.run_job(job_id, Trigger.CRON, scheduled_at=window, actor="scheduler")  # skipped, invalid_spec
            return
        if spec is None or spec.schedule is None:
            log.warning("cron firing of %s ignored: no scheduled spec (removed before the scheduler synced)", job_id)
            return
        decision = decide_firing(run_times, clock.now(), spec.schedule.misfire_grace, spec.schedule.coalesce,
                                 catch_up=spec.schedule.catch_up and first)
        if decision.missed_unrecorded:
            log.warning("job %s: %d older missed windows not recorded one by one", job_id, decision.missed_unrecorded)
        if self.held_windows.holds(job_id):
            self.held_windows.flush()  # its history in order: the held windows first
        for action in decision.actions:
            try:
                if self.held_windows.holds(job_id):
                    self.held_windows.hold(job_id, action.window, self.held_windows.cause(job_id))
                elif isinstance(action, Miss):
                    self.record_missed(job_id, action.window, action.reason)
                elif isinstance(action, CatchUp):
                    self.run_job(job_id, Trigger.CATCH_UP, scheduled_at=action.window, actor="scheduler")
                else:
                    self.run_job(job_id, Trigger.CRON, scheduled_at=action.window, actor="scheduler")
            except StoreUnwritable as exc:  # recorded `missed` once the store works again (held.py)
                self.held_windows.hold(job_id, action.window, exc.cause)
            except JobsdError as exc:
                log.warning("cron window %s of %s: %s", action.window.isoformat(), job_id, exc)

    def record_missed(self, job_id: str, window: datetime, reason: str) -> RunRow:
        """A cron window that was not run: a `missed` run, terminal at birth, with its event."""
        spec = self.catalog.specs.get(job_id)
        now = clock.to_epoch(clock.now())
        with self.store.write():
            run = self.store.create_missed_run(job_id, now, clock.to_epoch(window), reason,
                                               spec.digest if spec else "")
            ev = self.store.add_event(now, "run.missed", job_id, run.n,
                                      {"trigger": Trigger.CRON.value, "actor": "scheduler", "reason": reason,
                                       "scheduled_at": window.isoformat()})
        self._new_folder(run)
        self.runner.after_event(run, ev)
        try:
            self.artifacts.write_receipt(run, spec.file if spec else "")
        except OSError as exc:  # brought in line later (repair.py)
            log.error("run %s: cannot write its receipt: %s", run.ref, exc)
            self.artifacts.failed(run)
        log.warning("run %s missed: %s", run.ref, reason)
        return run

    def spec_file(self, job_id: str) -> str:
        spec = self.catalog.specs.get(job_id)
        return spec.file if spec else ""

    def _new_folder(self, run: RunRow) -> str:
        """The run's folder. The run is recorded already: a folder that cannot be made (a full disk)
        is logged, and the run goes on (its output is dropped and counted); the folder is brought
        in line with the store later (repair.py)."""
        try:
            return self.artifacts.create(run)
        except OSError as exc:
            log.error("run %s: cannot create its folder: %s", run.ref, exc)
            self.artifacts.failed(run)
            return self.artifacts.run_dir(run.job_id, run.n)

    def get_run(self, ref: str) -> RunRow:
        job_id, n = parse_run_ref(ref)
        run = self.store.get_run(job_id, n)
        if run is None:
            raise RunNotFound(ref)
        return run

    async def cancel_run(self, ref: str, actor: Actor | str = "") -> RunRow:
        """Cancel a queued, running or retrying run and wait (up to kill_grace + CANCEL_SLACK) for its end.

        A queued or retrying run stops waiting at once; a running attempt's process group gets
        SIGTERM, then SIGKILL after kill_grace. The run ends `cancelled` (no retry follows) with
        reason "cancelled by <actor>". A finished run answers run_not_active.
        """
        run = self.get_run(ref)
        if not run.active:
            raise RunNotActive(f"run {run.ref} already ended ({run.state.value}); only queued, running or retrying "
                               "runs can be cancelled", run=run.ref, state=run.state.value)
        act = self.runner.active.get(run.ref)
        if act is None:  # recorded active but not carried out: only a bug gets here
            raise InternalError(f"run {run.ref} is recorded {run.state.value} but jobsd is not carrying it out; "
                                "restart jobsd to reconcile it")
        log.info("run %s: cancel requested by %s while %s", run.ref, actor or "unknown", run.state.value)
        self.runner.stop(act, "cancelled", str(actor))
        if act.task is not None:
            await asyncio.wait({act.task}, timeout=act.spec.kill_grace + CANCEL_SLACK)
        return self.get_run(run.ref)

    async def collect_garbage(self, keep_last: int | None, older_than: float | None, job_id: str = "",
                              dry_run: bool = False, actor: Actor | str = "") -> GcResult:
        """Remove finished runs' records and artifact folders by retention rules (kernel.retention).

        Active runs are never candidates. Records go first, in transactions of GC_BATCH runs with
        the loop free in between; folders are then removed off the loop. Events stay (the audit
        log); run numbers are never reused. With dry_run nothing changes.
        """
        if job_id:
            require_job_id(job_id)
        policy = retention_policy(keep_last, older_than, clock.to_epoch(clock.now()))
        if job_id and self._never_known(job_id):
            raise JobNotFound(job_id)
        async with self._gc_lock:
            doomed = self.store.removable_runs(job_id, policy.keep_last, policy.cutoff)
            refs = [f"{j}/{n}" for _id, j, n in doomed]
            keys = [(j, n) for _id, j, n in doomed]
            if dry_run:
                freed = await asyncio.to_thread(self.artifacts.sweep, keys, False)
                return GcResult(refs[:GC_LISTED], len(refs), freed, True)
            ids = [run_id for run_id, _j, _n in doomed]
            started = clock.monotonic()
            for start in range(0, len(ids), GC_BATCH):
                with self.store.write():
                    self.store.delete_runs(ids[start:start + GC_BATCH])
                await asyncio.sleep(0)  # let RPCs and runs through between batches
            records = clock.monotonic() - started
            # The artifact thread may still hold writes for these runs (a skipped or missed run's
            # first line and receipt): they land before the folders go, never after.
            await self.artifacts.flushed()
            freed = await asyncio.to_thread(self.artifacts.sweep, keys, True)
            files = clock.monotonic() - started - records
            now = clock.to_epoch(clock.now())
            with self.store.write():
                self.store.add_event(now, "daemon.gc", job_id, None, {
                    **audit_attrs(actor), "removed": len(refs), "bytes_freed": freed,
                    "keep_last": keep_last, "older_than": older_than})
            self.events_changed.bump()
            log.info("gc by %s removed %d runs, %d bytes (records %.2fs, files %.2fs)", actor or "unknown",
                     len(refs), freed, records, files)
            return GcResult(refs[:GC_LISTED], len(refs), freed, False)

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
        if job_id and not rows and self._never_known(job_id):
            raise JobNotFound(job_id)
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
                for attempt in run.attempt_list:
                    if attempt.finished_at is None:  # cut short: close it with what its log file holds
                        self.store.finish_attempt(run.id, attempt.number, finished_at=now, error=reason,
                                                  output_bytes=_file_size(os.path.join(
                                                      self.run_dir(run), f"attempt-{attempt.number}.log")))
                self.store.update_run(run.id, state=RunState.INTERRUPTED, finished_at=now, wait_reason=None,
                                      next_attempt_at=None, reason=reason, pgid=None)
                ev = self.store.add_event(now, "run.finished", run.job_id, run.n,
                                          {"state": "interrupted", "reason": reason})
            updated = self.store.get_run(run.job_id, run.n)
            try:
                make_folder(self.run_dir(updated))
                self.runner.after_event(updated, ev)
                spec = self.catalog.specs.get(run.job_id)
                self.artifacts.write_receipt(updated, spec.file if spec else "")
                self.artifacts.write_summary(updated, spec.file if spec else "")
            except OSError as exc:
                log.error("run %s: cannot update its artifacts: %s", run.ref, exc)
                self.artifacts.failed(updated)
            log.warning("run %s marked interrupted: %s", run.ref, reason)
            fixed.append(updated)
        return fixed


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _kill_leftover(run: RunRow) -> None:
    """SIGKILL what a dead daemon left of a run's unfinished attempt: every process carrying the
    attempt's JOBSD_INVOCATION_ID (its group, and processes that left it). Attempts recorded before
    invocation ids were stored fall back to the process group, if its leader still carries
    JOBSD_RUN=<ref> (a pgid can be reused after a reboot)."""
    import signal

    from jobsd.executor import attempt_tree, environ_has

    for attempt in run.attempt_list:
        if attempt.finished_at is not None:
            continue
        if attempt.invocation_id:
            tree = attempt_tree(attempt.invocation_id)
            pids = tree.members()
            if run.pgid and tree.holds(run.pgid):  # the group too, members that cleared their environment
                _signal(lambda: os.killpg(run.pgid, signal.SIGKILL))
        elif run.pgid and environ_has(run.pgid, f"JOBSD_RUN={run.ref}".encode()):
            pids = [run.pgid]
            _signal(lambda: os.killpg(run.pgid, signal.SIGKILL))
        else:
            continue
        for pid in pids:
            _signal(lambda pid=pid: os.kill(pid, signal.SIGKILL))
        if pids:
            log.warning("run %s: killed %d leftover process(es) of attempt %d: %s", run.ref, len(pids),
                        attempt.number, " ".join(map(str, sorted(pids))))


def _signal(send) -> None:  # noqa: ANN001
    try:
        send()
    except OSError:  # gone meanwhile, or not ours to signal
        pass
