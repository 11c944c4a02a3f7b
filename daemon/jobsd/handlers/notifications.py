"""Notifications (DESIGN 11; which runs, and the document's version, in kernel.hooks).

- `track(ctx)` at start-up: each job's failures in a row, so that a success can tell a recovery.
- Bus subscribers `on_finished` and `on_overdue` keep those counts and decide (kernel.hooks)
  whether the job's notify command (its `[notify] command`, else `jobsd --notify-command`) hears
  about it; the command then runs in a task of its own: never in the run's way, nor the loop's.
- `_deliver` writes the JSON document to the command's stdin, waits at most NOTIFY_TIMEOUT (then
  SIGKILLs its process group) and records `notify.sent` or `notify.failed`. At most
  MAX_CONCURRENT commands run at once; the others wait their turn.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket

from jobsd.context import Context
from jobsd.executor import as_user
from jobsd.output import OutputReader, log_path
from jobsd.processes import kill_group_now
from jobsd_lib.facts import JobOverdue, NotifyFailed, NotifySent, RunFinished, iso
from jobsd_lib.kernel.hooks import DEFAULT_ON, NOTIFY_TIMEOUT, NOTIFY_VERSION, OUTPUT_LINES, chosen, run_kinds
from jobsd_lib.kernel.states import FAILURES, OUTCOMES

__all__ = ["track", "on_finished", "on_overdue", "drain", "MAX_CONCURRENT", "DRAIN_GRACE"]

log = logging.getLogger("jobsd.notify")
MAX_CONCURRENT = 4
DRAIN_GRACE = 5.0  # seconds a stopping jobsd waits for notify commands under way
_TAIL_BYTES = 8192  # at most this much of the output's end goes into the document
_SHOWN = 500        # characters of a failed command's output kept in its event
_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "USER", "LOGNAME")


def track(ctx: Context) -> None:
    ids = ctx.catalog.ids()
    ctx.notify_failures.update({j: failures for j, (_last, failures) in ctx.store.job_summaries(ids).items()})


def _command(ctx: Context, job_id: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(argv, on) for the job, or None: no command for it."""
    spec = ctx.catalog.specs.get(job_id)
    notify = spec.notify if spec is not None else None
    argv = (notify.command if notify else None) or ctx.notify_command
    return (tuple(argv), notify.on if notify else DEFAULT_ON) if argv else None


def on_finished(ctx: Context, fact: RunFinished) -> None:
    """Bus subscriber: count the job's failures in a row; notify in a task if `on` asks for it."""
    before = ctx.notify_failures.get(fact.job_id, 0)
    if fact.state in OUTCOMES:
        ctx.notify_failures[fact.job_id] = before + 1 if fact.state in FAILURES else 0
    hook = _command(ctx, fact.job_id)
    if hook is None:
        return
    kinds = chosen(run_kinds(fact.state, ctx.notify_failures.get(fact.job_id, 0), before), hook[1])
    if kinds:
        _spawn(ctx, fact.job_id, fact.run_ref, kinds, hook[0], {})


def on_overdue(ctx: Context, fact: JobOverdue) -> None:
    hook = _command(ctx, fact.job_id)
    if hook is not None and "overdue" in hook[1]:
        _spawn(ctx, fact.job_id, "", ["overdue"], hook[0], {"overdue_since": iso(fact.since), "message": fact.message})


def _spawn(ctx: Context, job_id: str, ref: str, kinds: list[str], argv: tuple[str, ...], extra: dict) -> None:
    task = asyncio.get_running_loop().create_task(_deliver(ctx, job_id, ref, kinds, argv, extra))
    ctx.notify_tasks.add(task)
    task.add_done_callback(ctx.notify_tasks.discard)


async def _deliver(ctx: Context, job_id: str, ref: str, kinds: list[str], argv: tuple[str, ...], extra: dict) -> None:
    async with ctx.notify_slots:
        try:
            document = json.dumps(_document(ctx, job_id, ref, kinds, extra)).encode() + b"\n"
            fact = await _run(ctx, argv, document, job_id, ref, kinds[0])
        except Exception as exc:  # noqa: BLE001 - a bug here must not end the daemon or the run
            log.exception("notification for %s failed", ref or job_id)
            fact = NotifyFailed(ts=ctx.clock.epoch(), job_id=job_id, event=kinds[0], run=ref, error=f"internal: {exc}")
        try:
            ctx.journal.record(fact, durable=False)
        except Exception:  # noqa: BLE001 - a full disk: the log line is all there is
            log.exception("cannot record %s for %s", fact.TYPE, ref or job_id)


async def drain(ctx: Context, grace: float = DRAIN_GRACE) -> None:
    """At shutdown: let the notify commands under way finish for up to `grace` seconds (those about
    the runs the stop just ended among them), then stop the rest (killed, no event)."""
    tasks = list(ctx.notify_tasks)
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    if pending:
        log.warning("%d notify command(s) still running after %gs at shutdown: killed", len(pending), grace)
        await asyncio.wait(pending, timeout=2)


async def _run(ctx: Context, argv: tuple[str, ...], document: bytes, job_id: str, ref: str, event: str) -> object:
    env = {k: v for k, v in os.environ.items() if k in _ENV}
    env.update(JOBSD_JOB=job_id, JOBSD_RUN=ref, JOBSD_NOTIFY_EVENT=event)
    cwd = os.path.dirname(ctx.spec_file(job_id)) or "/"
    spec = ctx.catalog.specs.get(job_id)
    identity = spec.identity if spec is not None and spec.notify.command else None  # a spec's own hook: as its user
    clock = ctx.clock
    started = clock.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(*as_user(identity, list(argv)), stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                    env=env, cwd=cwd, start_new_session=True, close_fds=True)
    except OSError as exc:
        return NotifyFailed(ts=clock.epoch(), job_id=job_id, event=event, run=ref,
                            error=f"cannot start {argv[0]!r}: {exc.strerror or exc}")
    try:
        output, _ = await asyncio.wait_for(proc.communicate(document), NOTIFY_TIMEOUT)
    except asyncio.CancelledError:  # jobsd stops (drain gave up on it): nothing of it outlives the daemon
        kill_group_now(proc.pid)
        raise
    except TimeoutError:
        kill_group_now(proc.pid)
        await proc.wait()
        return NotifyFailed(ts=clock.epoch(), job_id=job_id, event=event, run=ref, signal=signal.SIGKILL,
                            error=f"timed out after {NOTIFY_TIMEOUT:g}s")
    seconds = clock.monotonic() - started
    if proc.returncode == 0:
        log.info("notified %s of %s (%s) in %.2fs", argv[0], ref or job_id, event, seconds)
        return NotifySent(ts=clock.epoch(), job_id=job_id, event=event, run=ref, seconds=seconds)
    shown = output.decode("utf-8", "replace").strip()[:_SHOWN]
    code, sig = (proc.returncode, None) if proc.returncode >= 0 else (None, -proc.returncode)
    log.warning("notify command %s for %s failed (exit %s signal %s): %s", argv[0], ref or job_id, code, sig, shown)
    return NotifyFailed(ts=clock.epoch(), job_id=job_id, event=event, run=ref, exit_code=code, signal=sig, output=shown)


def _document(ctx: Context, job_id: str, ref: str, kinds: list[str], extra: dict) -> dict:
    """The JSON a notify command reads (docs/spec.md, `[notify]`; NOTIFY_VERSION)."""
    spec = ctx.catalog.specs.get(job_id)
    next_run = ctx.timer.next_run_at(job_id) if ctx.timer is not None and spec and spec.schedule else None
    doc = {"version": NOTIFY_VERSION, "event": kinds[0], "events": kinds, "host": socket.gethostname(),
           "job": job_id, "description": spec.description if spec else "", "next_run_at": next_run.isoformat() if next_run else None,
           "consecutive_failures": ctx.notify_failures.get(job_id, 0), "run": None, **extra}
    if ref:
        n = int(ref.rsplit("/", 1)[1])
        run = ctx.store.get_run(job_id, n)
        if run is not None:
            last = run.attempt_list[-1] if run.attempt_list else None
            doc["run"] = {
                "run": run.ref, "trigger": run.trigger, "state": run.state.value, "reason": run.reason or None,
                "scheduled_at": iso(run.scheduled_at), "queued_at": iso(run.queued_at),
                "started_at": iso(run.started_at), "finished_at": iso(run.finished_at),
                "duration_seconds": (run.finished_at - run.started_at) if run.finished_at and run.started_at else None,
                "attempt": run.attempts, "max_attempts": run.max_attempts, "exit_code": run.exit_code,
                "signal": run.signal, "artifacts": ctx.run_dir(run),
                "output_tail": _tail(ctx.run_dir(run), last.number) if last is not None else [],
            }
    return doc


def _tail(run_dir: str, attempt: int) -> list[str]:
    """The last OUTPUT_LINES lines of the attempt's output (stdout and stderr as they came)."""
    start = OutputReader(run_dir, attempt).offset_of_last_lines(OUTPUT_LINES)
    try:
        with open(log_path(run_dir, attempt), "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(start, size - _TAIL_BYTES))
            data = f.read(_TAIL_BYTES)
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-OUTPUT_LINES:]

