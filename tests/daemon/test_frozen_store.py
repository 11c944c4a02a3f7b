"""The store and run folders written by release 650281e load, migrate and show the same history
(DESIGN 9, last bullet; pueue's state backward-compatibility test).

tests/data/frozen_v1/home is what jobsd and jobsctl at commit 650281e wrote (jobs folder, SQLite
store, APScheduler's job store, run folders), made once by tests/data/make_frozen_store.py and
never regenerated; frozen_v1/expected.json is what that release's jobsctl showed of it. Each test
here works on a copy in a short temp dir, with the CURRENT jobsd started on it (a real process on
a real socket) and the current jobsctl asked the same questions.

Compared exactly: jobs, states, schedules, commands, history (refs, states, triggers, reasons,
exit codes, signals, attempts, pids, times), each run's output bytes per stream (with and without
timestamps), the audit events, exit codes of refusals and their error codes. Normalised, because
they differ between the two homes or with the time of the test rather than with the code:
  - the home folder's path (spec files, artifacts, the receipts' spec_file): both as `<HOME>`;
  - next run times: a recorded time still ahead must be the same, one passed must be ahead now;
    the two cron jobs fire on Feb 29 only, so before 2028-02-29 nothing changes; after it their
    start-up records windows missed since, runs numbered after the frozen ones (allowed here);
  - messages of refusals and spec errors are for people and may be reworded: their code, file,
    field and exit code are compared, not their text;
  - daemon status: pid, uptime, store size, tick and start times are not compared;
  - keys a later release added to a run (ADDED_RUN_KEYS) must be there with the value an old run
    has, then are left out of the comparison with what 650281e showed.
The record formats are written out here (receipt keys, the 24-byte index record), not imported
from the daemon, so that a change to them cannot change this test with it.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import struct
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import Daemon

pytestmark = pytest.mark.timeout(240)

DATA = Path(__file__).resolve().parent.parent / "data" / "frozen_v1"
EXPECTED = json.loads((DATA / "expected.json").read_text())
OLD_HOME = EXPECTED["meta"]["home"]
JOB_IDS: list[str] = EXPECTED["meta"]["job_ids"]
LEAP_JOBS = {"ticker", "nap"}  # on "0 0 29 2 *": may gain missed windows after 2028-02-29, nothing else may
RECORD = struct.Struct("<QqIB3x")  # attempt-K.idx at 650281e: log offset, read time (ns), length, stream
STREAMS = {1: "stdout", 2: "stderr"}
RECEIPT_KEYS = {"receipt_version", "run", "job", "n", "state", "trigger", "wait_reason", "reason", "spec_file",
                "spec_digest", "attempts", "max_attempts", "exit_code", "signal", "scheduled_at", "queued_at",
                "started_at", "finished_at", "next_attempt_at", "attempt_list"}
ATTEMPT_KEYS = {"number", "started_at", "finished_at", "exit_code", "signal", "pid", "output_bytes", "dropped_bytes",
                "error", "timed_out", "output", "output_index"}
RUN_FIELDS = ("run", "job", "n", "state", "trigger", "wait_reason", "attempts", "max_attempts", "exit_code", "signal",
              "scheduled_at", "queued_at", "started_at", "finished_at", "next_attempt_at")
ATTEMPT_FIELDS = ("number", "started_at", "finished_at", "exit_code", "signal", "output_bytes", "dropped_bytes",
                  "timed_out")
ADDED_RUN_KEYS = {"retry_of": None, "upstream": None, "wait_detail": None, "waiting_since": None,
                  "decision": None,  # issue 15
                  "host": None}  # issue 17: a run recorded before store v7 names no host
ADDED_JOB_KEYS = {"paused_until": None, "state_reason": None,  # issue 16: an old pause has no end and no reason
                  "overdue": False, "overdue_since": None, "success_within": None}  # nor an [expect]
HELD_KEYS = ("state_changed_at", "state_changed_by")  # issue 16: set while paused or disabled by an operator
FROZEN_MAX = {job: max((r["n"] for r in (EXPECTED["jobs_history"][job]["json"] or {}).get("runs", [])), default=0)
              for job in JOB_IDS}
FROZEN_SEQ = max(e["seq"] for e in EXPECTED["events"]["lines"])


@dataclass
class Frozen:
    daemon: Daemon
    home: str
    schema_before: int
    views: dict


# ---------------------------------------------------------------------- running the same commands
def _recorded(done, as_json: bool = True) -> dict:  # noqa: ANN001
    if as_json:
        return {"exit": done.returncode, "json": json.loads(done.stdout) if done.stdout.strip() else None}
    return {"exit": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def _commands() -> dict[tuple[str, str], tuple[list[str], bool]]:
    """(view, key) -> (jobsctl arguments, output is JSON): the commands make_frozen_store.py recorded."""
    cmds: dict[tuple[str, str], tuple[list[str], bool]] = {("jobs_list", ""): (["jobs", "list", "--json"], True)}
    for job in JOB_IDS:
        cmds["jobs_show", job] = (["jobs", "show", job, "--json"], True)
        cmds["jobs_history", job] = (["jobs", "history", job, "--limit", "1000", "--json"], True)
    for job in EXPECTED["jobs_next"]:
        cmds["jobs_next", job] = (["jobs", "next", job, "--count", "3", "--json"], True)
    for ref in EXPECTED["runs_show"]:
        job, n = ref.split("/")
        cmds["runs_show", ref] = (["runs", "show", ref, "--json"], True)
        cmds["tail", ref] = (["jobs", "tail", job, "--run", n, "--raw"], False)  # the job's bytes (no attempt markers)
    for ref in EXPECTED["tail_timestamps"]:  # the runs with output
        job, n = ref.split("/")
        cmds["tail_timestamps", ref] = (["jobs", "tail", job, "--run", n, "-t", "--raw"], False)
    for key in EXPECTED["refusals"]:
        cmds["refusals", key] = (key.split() + ["--json"], True)
    cmds["daemon_status", ""] = (["daemon", "status", "--json"], True)
    cmds["events", ""] = (["events", "-n", "0", "--json"], False)
    return cmds


def _collect(daemon: Daemon) -> dict:
    cmds = _commands()
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = dict(zip(cmds, pool.map(lambda c: daemon.ctl(*c[0], timeout=60), cmds.values())))
    keyed: dict = {}
    for (view, key), done in answers.items():
        keyed.setdefault(view, {})[key] = _recorded(done, cmds[view, key][1])
    views = {view: (answers[""] if list(answers) == [""] else answers) for view, answers in keyed.items()}
    assert views["events"]["exit"] == 0, views["events"]["stderr"]
    views["events"] = [json.loads(line) for line in views["events"]["stdout"].decode().splitlines()]
    views["folders"] = {p.relative_to(daemon.home) for p in Path(daemon.home, "runs").glob("*/*")}
    return views


def _private_copy(home: str) -> None:
    """The checkout's modes follow its umask: take group and other write away, as jobsd wrote them."""
    for root, _dirs, files in os.walk(home):
        for name in [root, *(os.path.join(root, f) for f in files)]:
            os.chmod(name, os.stat(name).st_mode & ~0o022)
    os.chmod(home, 0o700)


def _schema_version(home: str) -> int:
    con = sqlite3.connect(f"file:{home}/db/jobsd.sqlite3?mode=ro", uri=True)
    try:
        return con.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def frozen():
    """A copy of frozen_v1/home with the current jobsd on it, and what jobsctl showed just after its
    start (taken once, before any test adds a run)."""
    home = tempfile.mkdtemp(prefix="jt", dir="/tmp")
    daemon = Daemon(home)
    try:
        shutil.copytree(DATA / "home", home, dirs_exist_ok=True)
        _private_copy(home)
        schema_before = _schema_version(home)
        daemon.start()
        yield Frozen(daemon, home, schema_before, _collect(daemon))
        code = daemon.stop()
        assert code == 0, f"jobsd exited {code}; log:\n{daemon.read_log()}"
    finally:
        if daemon.proc is not None:
            daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


# ---------------------------------------------------------------------- normalising
def _norm(value, home: str):  # noqa: ANN001, ANN202
    """`value` with the home folder's path written `<HOME>` and ADDED_RUN_KEYS checked and left out."""
    if isinstance(value, str):
        return value.replace(home, "<HOME>")
    if isinstance(value, list):
        return [_norm(v, home) for v in value]
    if isinstance(value, dict):
        if "run" in value and "max_attempts" in value and home != OLD_HOME:  # a run, not an event
            for key, default in ADDED_RUN_KEYS.items():
                assert key in value and value[key] == default, (value["run"], key, value.get(key, "<missing>"))
            value = {k: v for k, v in value.items() if k not in ADDED_RUN_KEYS}
        if "consecutive_failures" in value and "schedule" in value and home != OLD_HOME:  # a job
            for key, default in ADDED_JOB_KEYS.items():
                assert key in value and value[key] == default, (value["id"], key, value.get(key, "<missing>"))
            for key in HELD_KEYS:  # only an operator's pause or disable has them (a disable may be the spec's)
                held = value.get(key, "<missing>")
                if value["state"] == "paused":
                    assert isinstance(held, str) and held, (value["id"], key, held)
                elif value["state"] != "disabled":
                    assert held is None, (value["id"], key, held)
            value = {k: v for k, v in value.items() if k not in ADDED_JOB_KEYS and k not in HELD_KEYS}
        return {k: _norm(v, home) for k, v in value.items()}
    return value


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _next_run(job: dict, expected: dict) -> None:
    """Check next_run_at (see the module's docstring), then blank it in both."""
    want, got = expected.pop("next_run_at"), job.pop("next_run_at")
    assert (want is None) == (got is None), (job["id"], want, got)
    if want is not None and want > _now():
        assert got == want, job["id"]
    elif want is not None:
        assert got > _now(), job["id"]


def _extra_runs(views: dict, job: str) -> list[dict]:
    """Runs numbered after the frozen ones (only the leap-day jobs' windows may add them)."""
    runs = (views["jobs_history"][job]["json"] or {}).get("runs", [])
    extra = [r for r in runs if r["n"] > FROZEN_MAX[job]]
    assert not extra or (job in LEAP_JOBS and _now() >= "2028-02-29"), [r["run"] for r in extra]
    assert all(r["trigger"] == "cron" for r in extra), extra
    return extra


def _same_job(got: dict, want: dict, home: str, views: dict) -> None:
    got, want = _norm(got, home), _norm(want, OLD_HOME)
    _next_run(got, want)
    for j in (got, want):
        if j["error"]:
            j["error"].pop("message")
        if _extra_runs(views, want["id"]):
            j.pop("last_run"), j.pop("consecutive_failures")
    assert got == want


def _same_refusal(got: dict, want: dict) -> None:
    assert got["exit"] == want["exit"]
    if want["exit"] == 0:
        return
    assert got["json"]["error"]["code"] == want["json"]["error"]["code"]


def _error_code(stderr: bytes) -> str:
    return stderr.decode(errors="replace").rstrip().rsplit("[", 1)[-1].rstrip("]")


# ---------------------------------------------------------------------- the views
def test_jobs_show_the_same_states_schedules_and_last_runs(frozen: Frozen) -> None:
    got, want = frozen.views["jobs_list"], EXPECTED["jobs_list"]
    assert got["exit"] == want["exit"] == 0
    assert [j["id"] for j in got["json"]["jobs"]] == [j["id"] for j in want["json"]["jobs"]]
    for job, expected in zip(got["json"]["jobs"], want["json"]["jobs"]):
        _same_job(job, expected, frozen.home, frozen.views)
    for job in JOB_IDS:
        got, want = frozen.views["jobs_show"][job], EXPECTED["jobs_show"][job]
        _same_refusal(got, want)
        if want["exit"] == 0:
            _same_job(got["json"], want["json"], frozen.home, frozen.views)
    states = {j["id"]: j["state"] for j in frozen.views["jobs_list"]["json"]["jobs"]}
    assert (states["nap"], states["off"], states["spec-off"], states["broken"]) == \
        ("paused", "disabled", "disabled", "invalid")


def test_history_and_every_run_are_the_same(frozen: Frozen) -> None:
    for job in JOB_IDS:
        got, want = frozen.views["jobs_history"][job], EXPECTED["jobs_history"][job]
        _same_refusal(got, want)
        if want["exit"] != 0:
            continue
        extra = {r["run"] for r in _extra_runs(frozen.views, job)}
        runs = [r for r in got["json"]["runs"] if r["run"] not in extra]
        assert _norm(runs, frozen.home) == _norm(want["json"]["runs"], OLD_HOME), job
        assert got["json"]["next_cursor"] == want["json"]["next_cursor"] is None
    for ref, want in EXPECTED["runs_show"].items():
        got = frozen.views["runs_show"][ref]
        assert got["exit"] == want["exit"] == 0, ref
        assert _norm(got["json"], frozen.home) == _norm(want["json"], OLD_HOME), ref
    for key, want in EXPECTED["refusals"].items():
        _same_refusal(frozen.views["refusals"][key], want)


def test_next_run_times_and_daemon_status(frozen: Frozen) -> None:
    now = _now()
    for job in EXPECTED["jobs_next"]:
        got, want = frozen.views["jobs_next"][job], EXPECTED["jobs_next"][job]
        _same_refusal(got, want)
        if want["exit"] == 0:
            ahead = [t for t in want["json"]["times"] if t > now]
            assert got["json"]["times"][:len(ahead)] == ahead, job
            assert len(got["json"]["times"]) == len(want["json"]["times"]), job
    got, want = frozen.views["daemon_status"]["json"], EXPECTED["daemon_status"]["json"]
    for key in ("jobs", "runs", "degraded", "max_concurrent_runs"):
        assert got[key] == want[key], key
    strip = [{k: v for k, v in e.items() if k != "message"} for e in got["invalid_specs"]]
    assert _norm(strip, frozen.home) == [{k: v for k, v in e.items() if k != "message"}
                                         for e in _norm(want["invalid_specs"], OLD_HOME)]


def test_output_bytes_are_the_same(frozen: Frozen) -> None:
    for view in ("tail", "tail_timestamps"):
        for ref, want in EXPECTED[view].items():
            got = frozen.views[view][ref]
            assert got["exit"] == want["exit"], (view, ref)
            if want["exit"] != 0:  # e.g. the removed job's runs: refused, by code
                assert _error_code(got["stderr"]) == _error_code(base64.b64decode(want["stderr"])), (view, ref)
                continue
            assert got["stdout"] == base64.b64decode(want["stdout"]), (view, ref)
            assert got["stderr"] == base64.b64decode(want["stderr"]), (view, ref)
    bulk = frozen.views["tail"]["bulk/1"]
    assert b"\xff\x00\xfe" in bulk["stderr"] and b"caf\xe9\n" in bulk["stdout"]  # raw bytes, never decoded


def test_audit_events_are_kept_and_new_ones_follow(frozen: Frozen) -> None:
    got = [e for e in frozen.views["events"] if e["seq"] <= FROZEN_SEQ]
    assert _norm(got, frozen.home) == _norm(EXPECTED["events"]["lines"], OLD_HOME)
    seqs = [e["seq"] for e in frozen.views["events"]]
    assert seqs == sorted(set(seqs)) and seqs[-1] > FROZEN_SEQ  # this daemon's start, numbered after


# ---------------------------------------------------------------------- the files on disk
def _records(folder: Path, number: int) -> list[tuple[int, int, int, int]]:
    data = (folder / f"attempt-{number}.idx").read_bytes()
    assert len(data) % RECORD.size == 0, folder
    return [RECORD.unpack_from(data, at) for at in range(0, len(data), RECORD.size)]


def _check_output(folder: Path, receipt: dict, tail: dict) -> None:
    """Each attempt's log is exactly its indexed chunks; per stream, the attempts' chunks in order
    are what `jobs tail` printed."""
    streams = {"stdout": b"", "stderr": b""}
    for attempt in receipt["attempt_list"]:
        assert set(attempt) == ATTEMPT_KEYS, folder
        log = (folder / attempt["output"]).read_bytes()
        assert len(log) == attempt["output_bytes"], folder
        end = 0
        for offset, _ts_ns, length, stream in _records(folder, attempt["number"]):
            assert offset == end and stream in STREAMS, folder
            streams[STREAMS[stream]] += log[offset:offset + length]
            end = offset + length
        assert end == len(log), folder
    if tail["exit"] == 0:
        assert streams == {"stdout": tail["stdout"], "stderr": tail["stderr"]}, folder


def _check_receipt(receipt: dict, run: dict, home: str) -> None:
    assert set(receipt) == RECEIPT_KEYS and receipt["receipt_version"] == 1, run["run"]
    assert {k: receipt[k] for k in RUN_FIELDS} == {k: run[k] for k in RUN_FIELDS}
    assert (receipt["reason"] or None) == run["reason"]
    assert receipt["spec_file"].replace(OLD_HOME, "<HOME>") == f"<HOME>/jobs/{run['job']}.toml"
    assert len(receipt["attempt_list"]) == len(run["attempt_list"]) == run["attempts"]
    for mine, shown in zip(receipt["attempt_list"], run["attempt_list"]):
        assert {k: mine[k] for k in ATTEMPT_FIELDS} == {k: shown[k] for k in ATTEMPT_FIELDS}
        assert (mine["pid"] or None, mine["error"] or None) == (shown["pid"], shown["error"])


def _check_events(folder: Path, run: dict, events: dict[int, dict]) -> None:
    lines = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert lines and [e["seq"] for e in lines] == sorted({e["seq"] for e in lines}), folder
    for line in lines:
        logged = {k: v for k, v in events[line["seq"]].items() if k != "job"}
        assert line == logged, folder  # the same seq, ts, type, run and attributes as the audit log
    last, state = lines[-1], run["state"]
    assert last["type"] == {"missed": "run.missed", "skipped": "run.skipped"}.get(state, "run.finished"), folder
    assert last["type"] != "run.finished" or last["state"] == state, folder


def test_run_folders_parse_and_agree_with_runs_show(frozen: Frozen) -> None:
    events = {e["seq"]: e for e in frozen.views["events"]}
    for ref, shown in frozen.views["runs_show"].items():
        run, folder = shown["json"], Path(frozen.home, "runs", ref)
        assert run["artifacts"] == str(folder)
        receipt = json.loads((folder / "run_receipt.json").read_text())
        _check_receipt(receipt, run, frozen.home)
        _check_events(folder, run, events)
        _check_output(folder, receipt, frozen.views["tail"][ref])
        summary = folder / "summary.md"  # 650281e wrote none for most skipped and missed runs
        assert summary.exists() or not run["attempts"], ref
        assert not summary.exists() or summary.read_text().startswith(f"# Run {ref}: {run['state']}\n"), ref


def test_frozen_run_folders_are_not_rewritten(frozen: Frozen) -> None:
    """Start-up checks every run folder (repair.py): one it cannot read as final would be rewritten
    (an index it misreads would cut the log), so a format it no longer understands shows here."""
    frozen_files = {p.relative_to(DATA / "home"): p for p in (DATA / "home" / "runs").rglob("*") if p.is_file()}
    for rel, original in frozen_files.items():
        assert Path(frozen.home, rel).read_bytes() == original.read_bytes(), rel
    assert frozen.views["folders"] == {Path("runs", ref) for ref in EXPECTED["runs_show"]} | _extra_folders(frozen)


def _extra_folders(frozen: Frozen) -> set[Path]:
    return {Path("runs", r["run"]) for job in LEAP_JOBS for r in _extra_runs(frozen.views, job)}


def test_store_migrates_to_the_current_schema(frozen: Frozen) -> None:
    from jobsd.migrations import SCHEMA_VERSION

    assert frozen.schema_before == EXPECTED["meta"]["schema_version"] == 2
    assert _schema_version(frozen.home) == SCHEMA_VERSION


def test_a_new_run_is_numbered_after_the_frozen_ones(frozen: Frozen) -> None:
    """hello/1 was removed by gc in the frozen store: the next run is hello/4, never a reused number."""
    done = frozen.daemon.ctl("jobs", "run", "hello", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert (run["run"], run["state"], run["trigger"]) == ("hello/4", "succeeded", "manual")
    assert FROZEN_MAX["hello"] == 3
    receipt = json.loads(Path(frozen.home, "runs", "hello", "4", "run_receipt.json").read_text())
    assert RECEIPT_KEYS <= set(receipt) and ATTEMPT_KEYS <= set(receipt["attempt_list"][0])
    history = json.loads(frozen.daemon.ctl("jobs", "history", "hello", "--json").stdout)["runs"]
    assert [r["run"] for r in history] == ["hello/4", "hello/3", "hello/2"]
    tail = frozen.daemon.ctl("jobs", "tail", "hello", "--run", "4")
    assert tail.stdout == b"hello from hello/4 (attempt 1, trigger manual)\ndone\n" and tail.stderr == b"to stderr\n"
