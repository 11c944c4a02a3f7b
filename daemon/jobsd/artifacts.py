"""A run's artifact folder: `<state>/runs/<job-id>/<n>/` (DESIGN 3).

run_receipt.json (the whole record; write-then-rename so a crash leaves the old or the new
file, never half of one), summary.md (for people, also write-then-rename), events.jsonl
(one event a line, appended and flushed) and each attempt's output (see output.py).

Active runs' files are written by one thread of their own, in the order they were asked for
(`later`, and `done` for the writes a caller must wait for), so the event loop does not wait on
the file system: about a tenth of its time per run. The run's folder and its output files are
made on the loop, before the child starts.

Modes are explicit, never the umask's: folders 0750, files 0640 (a stricter umask, such as the
unit's 0077, narrows them further; a permissive one such as 000 changes nothing).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable

from jobsd.output import RECORD
from jobsd.folders import FOLDER_MODE, make_folder
from jobsd.store import EventRow, RunRow
from jobsd_lib.kernel.decisions import describe_result
from jobsd_lib.paths import attempt_index_name, attempt_log_name
from jobsd_lib.times import iso

__all__ = ["Artifacts"]

log = logging.getLogger("jobsd.artifacts")


def _nothing() -> None:
    return None


def _reply(loop: asyncio.AbstractEventLoop, future: asyncio.Future, result: object, exc: BaseException | None) -> None:
    try:
        loop.call_soon_threadsafe(_settle, future, result, exc)
    except RuntimeError:  # the loop is closed: nobody waits any more
        pass


def _settle(future: asyncio.Future, result: object, exc: BaseException | None) -> None:
    if future.done():  # the waiter gave up
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)


class Artifacts:
    def __init__(self, runs_dir: str) -> None:
        self.runs_dir = runs_dir
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # (job id, n) of runs whose files could not all be written (a full disk): brought in line
        # with the store by repair.py once writes work again. Added to from any thread.
        self.dirty: set[tuple[str, int]] = set()

    def failed(self, run: RunRow) -> None:
        """A write of the run's files failed: its folder is repaired later (repair.py)."""
        self.dirty.add((run.job_id, run.n))

    # ------------------------------------------------------------------ the writer thread
    def later(self, what: str, fn: Callable[..., object], *args: object) -> None:
        """Do fn(*args) in the writer thread after everything asked for before it. An OSError is
        logged as "cannot write <what>"."""
        self._put((what, fn, args, None, None))

    def done(self, what: str, fn: Callable[..., object], *args: object) -> asyncio.Future:
        """Like later(), and a future of the result (an OSError is raised through it)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._put((what, fn, args, loop, future))
        return future

    def flushed(self) -> asyncio.Future:
        """A future done once everything asked for before it is written."""
        return self.done("nothing", _nothing)

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread is not None:
            self._work.put(None)
            self._thread.join()
            self._thread = None

    def _put(self, item: tuple) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._write, name="jobsd-artifacts", daemon=True)
            self._thread.start()
        self._work.put(item)

    def _write(self) -> None:
        while (item := self._work.get()) is not None:
            what, fn, args, loop, future = item
            try:
                result = fn(*args)
            except Exception as exc:  # noqa: BLE001 - a bug here must not stop the thread
                if isinstance(exc, OSError) and args and isinstance(args[0], RunRow):
                    self.failed(args[0])
                if loop is not None:
                    _reply(loop, future, None, exc)
                elif isinstance(exc, OSError):
                    log.error("cannot write %s: %s", what, exc)
                else:
                    log.exception("cannot write %s", what)
            else:
                if loop is not None:
                    _reply(loop, future, result, None)

    # ------------------------------------------------------------------ files

    def run_dir(self, job_id: str, n: int) -> str:
        return os.path.join(self.runs_dir, job_id, str(n))

    def create(self, run: RunRow) -> str:
        """A new, empty folder for the run. A folder already there (a store restored from an older
        backup numbers runs again) is moved aside to `<n>.orphan-<epoch>`, never appended to."""
        path = self.run_dir(run.job_id, run.n)
        if os.path.exists(path):
            aside = f"{path}.orphan-{int(run.queued_at)}"
            os.rename(path, aside)
            log.warning("run %s: moved an existing folder aside to %s", run.ref, aside)
        make_folder(os.path.dirname(path))  # runs/<job>: not os.makedirs, which gives it 0777 less the umask
        os.mkdir(path, FOLDER_MODE)
        return path

    def append_event(self, run: RunRow, event: EventRow) -> None:
        line = _event_line(run, event)
        fd = os.open(os.path.join(self.run_dir(run.job_id, run.n), "events.jsonl"),
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def write_receipt(self, run: RunRow, spec_file: str, durable: bool = True) -> None:
        """durable: fsync before the rename. A run's final receipt is; the one written when an active run
        is created is not (the store holds the record durably, and the final receipt replaces it)."""
        self._replace(run, "run_receipt.json", json.dumps(receipt(run, spec_file), indent=2, sort_keys=True) + "\n",
                      durable)

    def write_summary(self, run: RunRow, spec_file: str) -> None:
        """summary.md is for people and derived from the receipt: renamed into place, never fsynced."""
        self._replace(run, "summary.md", summary(run, spec_file), durable=False)

    def _replace(self, run: RunRow, name: str, text: str, durable: bool) -> None:
        folder = self.run_dir(run.job_id, run.n)
        tmp = os.path.join(folder, f".{name}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)  # open() would be 0666
            with open(fd, "w", encoding="utf-8") as f:
                f.write(text)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, os.path.join(folder, name))
        except OSError:
            _unlink(tmp)  # a full disk must not leave half a file behind (the old one stays)
            raise

    # ------------------------------------------------------------------ repair (see repair.py)
    def stale(self, job_id: str, n: int, finished_at: float) -> bool:
        """Does a finished run's folder need repair? Its receipt is missing or not the final one, a
        write left a temp file (removed here), or an attempt's log and index disagree. A listing,
        a stat, the receipt (see _receipt_final) and the last index record of each attempt. A
        missing folder (gc'd meanwhile) needs none."""
        folder = self.run_dir(job_id, n)
        try:
            names = os.listdir(folder)
        except OSError:
            return False
        stale = False
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):
                _unlink(os.path.join(folder, name))
                stale = True
        if not stale and not _receipt_final(os.path.join(folder, "run_receipt.json"), finished_at):
            return True
        return stale or any(_indexed_end(folder, name) is not None for name in names if name.endswith(".idx"))

    def rewrite(self, run: RunRow, events: list[EventRow], spec_file: str) -> None:
        """Bring a finished run's folder in line with the store: each attempt's log cut to what its
        index holds (bytes after the last indexed chunk are counted nowhere), events.jsonl from the
        stored events, then the receipt and summary. Writer thread (Artifacts.done)."""
        folder = self.run_dir(run.job_id, run.n)
        make_folder(folder)
        for name in os.listdir(folder):
            if name.endswith(".idx"):
                cut = _indexed_end(folder, name)
                if cut is not None:
                    _cut_output(folder, name, *cut)
        lines = "".join(_event_line(run, ev) for ev in events)
        self._replace(run, "events.jsonl", lines, durable=False)
        self.write_receipt(run, spec_file)
        self.write_summary(run, spec_file)

    def sweep(self, runs: list[tuple[str, int]], remove: bool) -> int:
        """Bytes in the folders of `runs` ((job id, n) pairs; missing folders count 0); with remove,
        delete the folders too. One pass per folder (run folders are flat). Blocking file-system
        work: call it off the event loop."""
        total = 0
        for job_id, n in runs:
            # A thread that loops in Python keeps the GIL for the whole switch interval (5 ms) each
            # time the event loop asks for it, and a gRPC call asks many times: jobs list answered
            # 12x slower beside a sweep of missing folders (bench/retention.py). sleep(0) releases
            # the GIL at once, so the loop gets it when it is waiting.
            time.sleep(0)
            folder = self.run_dir(job_id, n)
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.error("gc: cannot read %s: %s", folder, exc)
                continue
            try:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):  # not made by jobsd, but removed with the run
                        total += sum(os.lstat(os.path.join(root, f)).st_size
                                     for root, _dirs, files in os.walk(entry.path) for f in files)
                        if remove:
                            shutil.rmtree(entry.path)
                        continue
                    total += entry.stat(follow_symlinks=False).st_size
                    if remove:
                        os.unlink(entry.path)
                if remove:
                    os.rmdir(folder)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.error("gc: cannot remove %s: %s", folder, exc)
        return total


def _event_line(run: RunRow, event: EventRow) -> str:
    return json.dumps({"seq": event.seq, "ts": iso(event.ts), "type": event.type, "run": run.ref,
                       **event.attrs}, sort_keys=True) + "\n"


def _receipt_final(path: str, finished_at: float) -> bool:
    """Is the receipt at `path` the run's final one? One written 2 s or more after the run's end
    is (repaired, or written late); otherwise it is read: the final receipt names the end's time.
    (The file's mtime alone cannot tell: the kernel stamps files with a clock that lags the one
    finished_at was read from by up to a tick, and a queued receipt of a quick run is written
    within milliseconds of its end.)"""
    try:
        if os.stat(path).st_mtime >= finished_at + 2:
            return True
        with open(path, "rb") as f:
            return json.loads(f.read()).get("finished_at") == iso(finished_at)
    except (OSError, ValueError, AttributeError):
        return False


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
        log.warning("removed %s: left by a write that failed", path)
    except OSError:
        pass


def _indexed_end(folder: str, idx_name: str) -> tuple[int, int] | None:
    """(index bytes to keep, log bytes to keep) when an attempt's files disagree (a write cut short:
    a partial index record, or log bytes after the last indexed chunk), else None."""
    log_name = idx_name[:-4] + ".log"
    try:
        with open(os.path.join(folder, idx_name), "rb") as f:
            size = os.fstat(f.fileno()).st_size
            whole = size - size % RECORD.size
            end = 0
            if whole:
                f.seek(whole - RECORD.size)
                offset, _ts, length, _stream = RECORD.unpack(f.read(RECORD.size))
                end = offset + length
        log_size = os.stat(os.path.join(folder, log_name)).st_size
    except OSError:
        return None
    return (whole, end) if whole != size or log_size > end else None


def _cut_output(folder: str, idx_name: str, idx_keep: int, log_keep: int) -> None:
    os.truncate(os.path.join(folder, idx_name), idx_keep)
    os.truncate(os.path.join(folder, idx_name[:-4] + ".log"), log_keep)
    log.warning("%s: output cut to its index (%d bytes): a write was cut short", os.path.join(folder, idx_name),
                log_keep)


def receipt(run: RunRow, spec_file: str) -> dict[str, object]:
    return {
        "receipt_version": 1, "run": run.ref, "job": run.job_id, "n": run.n, "state": run.state.value,
        "trigger": run.trigger, "wait_reason": run.wait_reason, "reason": run.reason, "spec_file": spec_file,
        "spec_digest": run.spec_digest, "attempts": run.attempts, "max_attempts": run.max_attempts,
        "exit_code": run.exit_code, "signal": run.signal, "scheduled_at": iso(run.scheduled_at),
        "queued_at": iso(run.queued_at), "started_at": iso(run.started_at), "finished_at": iso(run.finished_at),
        "next_attempt_at": iso(run.next_attempt_at), "retry_of": run.retry_of or None,
        "upstream": run.upstream or None, "decision": decision_doc(run),
        "attempt_list": [{
            "number": a.number, "started_at": iso(a.started_at), "finished_at": iso(a.finished_at),
            "exit_code": a.exit_code, "signal": a.signal, "pid": a.pid, "output_bytes": a.output_bytes,
            "dropped_bytes": a.dropped_bytes, "error": a.error, "timed_out": a.timed_out,
            "output": attempt_log_name(a.number), "output_index": attempt_index_name(a.number),
        } for a in run.attempt_list],
    }


def decision_doc(run: RunRow) -> dict[str, object] | None:
    """[gates] approval: who approved or rejected the run, when, and why (None: no decision)."""
    if not run.decision:
        return None
    return {"approved": run.decision == "approved", "by": run.decided_by, "at": iso(run.decided_at),
            "comment": run.decision_comment or None, "client": run.decision_client or None}


def summary(run: RunRow, spec_file: str) -> str:
    lines = [f"# Run {run.ref}: {run.state.value}", "",
             f"- result: {describe_result(run.state, run.exit_code, run.signal)}",
             f"- trigger: {run.trigger}" + (f" of {run.retry_of}" if run.retry_of else "")
             + (f" after {run.upstream}" if run.upstream else "")
             + (f" (window {iso(run.scheduled_at)})" if run.scheduled_at else ""),
             f"- queued: {iso(run.queued_at)}", f"- started: {iso(run.started_at) or '-'}",
             f"- finished: {iso(run.finished_at) or '-'}", f"- attempts: {run.attempts} of {run.max_attempts}",
             f"- spec: {spec_file} (sha256 {run.spec_digest[:12]})"]
    if run.reason:
        lines.append(f"- reason: {run.reason}")
    if run.decision:
        lines.append(f"- {run.decision} by {run.decided_by} at {iso(run.decided_at)}"
                     + (f": {run.decision_comment}" if run.decision_comment else ""))
    lines += ["", "| attempt | started | exit | signal | output bytes | dropped | error |", "|---|---|---|---|---|---|---|"]
    for a in run.attempt_list:
        lines.append(f"| {a.number} | {iso(a.started_at)} | {a.exit_code if a.exit_code is not None else '-'} | "
                     f"{a.signal or '-'} | {a.output_bytes} | {a.dropped_bytes} | {a.error or ('timed out' if a.timed_out else '')} |")
    lines += ["", "Output of attempt K: `attempt-K.log` (raw bytes, both streams); replay it with stdout and "
              f"stderr apart: `jobsctl jobs tail {run.job_id} --run {run.n}`.", ""]
    return "\n".join(lines)
