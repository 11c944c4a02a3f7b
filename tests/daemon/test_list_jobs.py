"""ListJobs reads the store in a constant number of statements, however many jobs there are, and
answers what the runs table says: each job's last run (with its attempts) and how many of its
latest finished runs failed in a row (issue 19 item 8: ~3 statements a job pinned the daemon
under 200 clients).

Real parts: a real SQLite store, real spec files loaded into the catalog, the daemon's ListJobs handler.
SQLAlchemy's `before_cursor_execute` event counts the statements the store sends.
"""
from __future__ import annotations

import os

import pytest
from sqlalchemy import event

from jobsd.app import build_context
from jobsd.context import Context as Service, Paths
from jobsd.handlers.jobs import get_job, list_jobs
from jobsd.handlers.reload import load_specs
from jobsd.store import open_store
from jobsd_lib.kernel.states import JobState, RunState

FAILED = {"failed", "timed_out", "interrupted"}
# one job's history, oldest first, cycled over the jobs: failures in a row count across skipped,
# missed and cancelled runs (they are not finished runs of the job's command)
HISTORIES = [
    [],
    ["succeeded"],
    ["failed"],
    ["succeeded", "failed", "skipped", "timed_out", "cancelled", "interrupted"],
    ["failed", "failed", "succeeded", "missed"],
    ["succeeded", "failed", "running"],
    ["interrupted", "failed", "cancelled", "queued"],
]


def expected_failures(states: list[str]) -> int:
    count = 0
    for state in reversed(states):
        if state == "succeeded":
            break
        count += state in FAILED
    return count


@pytest.fixture
def make_service(home):
    """make_service(name): a Service on its own store file and jobs folder in HOME/name."""
    made = []

    def make(name: str) -> Service:
        base = os.path.join(home, name)
        os.makedirs(base)
        store = open_store(os.path.join(base, "jobsd.sqlite3"))
        made.append(store)
        runs = os.path.join(base, "runs")
        paths = Paths(os.path.join(base, "jobs"), base, base, runs, os.path.join(base, "s.sock"),
                      os.path.join(base, "lock"), store.path)
        return build_context(paths, store, environ={})

    yield make
    for store in made:
        store.close()


def add_jobs(service: Service, count: int) -> dict[str, list[str]]:
    """`count` spec files with their histories in the store; returns job id -> states, oldest first."""
    os.makedirs(service.paths.jobs_dir, exist_ok=True)
    histories = {}
    store = service.store
    with store.write():
        for k in range(count):
            job_id = f"j{k:02d}"
            with open(os.path.join(service.paths.jobs_dir, f"{job_id}.toml"), "w") as f:
                f.write('command = ["true"]\n')
            histories[job_id] = states = HISTORIES[(k + 3) % len(HISTORIES)]  # j00: a run with attempts
            for i, state in enumerate(states):
                run = store.create_run(job_id=job_id, state=RunState(state), trigger="manual", now=1000.0 + i)
                if state in ("queued", "skipped", "missed"):
                    continue
                store.start_attempt(run.id, 1, 1000.5 + i, 4242, f"inv-{job_id}-{i}")
                if state != "running":
                    store.finish_attempt(run.id, 1, finished_at=1000.8 + i, exit_code=0 if state == "succeeded" else 3)
                store.update_run(run.id, started_at=1000.5 + i, attempts=1, exit_code=None if state == "running"
                                 else (0 if state == "succeeded" else 3),
                                 finished_at=None if state == "running" else 1000.8 + i)
        if count > 1:
            store.set_operator_state("j01", JobState.PAUSED.value, 999.0, "test")
    load_specs(service)
    return histories


def counted(service: Service, listing):  # noqa: ANN001, ANN201
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_rest) -> None:  # noqa: ANN001
        statements.append(statement)

    event.listen(service.store.engine, "before_cursor_execute", count)
    try:
        return listing(), statements
    finally:
        event.remove(service.store.engine, "before_cursor_execute", count)


def check_views(service: Service, views, histories: dict[str, list[str]]) -> None:  # noqa: ANN001
    assert [v.id for v in views] == sorted(histories)
    for view in views:
        states = histories[view.id]
        assert view.consecutive_failures == expected_failures(states), view.id
        assert view.state is (JobState.PAUSED if view.id == "j01" else JobState.ACTIVE), view.id
        if not states:
            assert view.last_run is None, view.id
            continue
        last = view.last_run
        assert (last.n, last.state.value) == (len(states), states[-1]), view.id
        assert last == service.store.get_run(view.id, len(states))  # every column and attempt, as GetRun has it
        assert len(last.attempt_list) == (0 if states[-1] in ("queued", "skipped", "missed") else 1)


def test_listing_50_jobs_sends_as_many_statements_as_listing_1_and_answers_each_jobs_history(make_service):
    counts = []
    for jobs in (1, 50):
        service = make_service(f"jobs{jobs}")
        histories = add_jobs(service, jobs)
        views, statements = counted(service, lambda: list_jobs(service))
        check_views(service, views, histories)
        counts.append(len(statements))
        assert len(statements) <= 3, statements  # operator states, last runs and failures, their attempts
    assert counts[0] == counts[1]


def test_a_listing_reads_the_store_again_only_after_it_changed_and_then_shows_the_change(make_service):
    """Between two writes every listing answers the same without a statement; any write (a new
    run, a finished one, an operator's pause, gc) shows in the next listing."""
    service = make_service("jobs")
    histories = add_jobs(service, 7)
    first, _ = counted(service, lambda: list_jobs(service))
    again, statements = counted(service, lambda: list_jobs(service))
    assert again == first and statements == []

    store = service.store
    with store.write():
        run = store.create_run(job_id="j01", state=RunState.QUEUED, trigger="manual", now=2000.0)
    listed = {v.id: v for v in list_jobs(service)}
    before = len(histories["j01"])  # failed, failed, succeeded, missed
    assert listed["j01"].last_run.n == before + 1 and listed["j01"].last_run.state is RunState.QUEUED

    with store.write():
        store.update_run(run.id, state=RunState.FAILED, finished_at=2001.0, exit_code=1)
    listed = {v.id: v for v in list_jobs(service)}
    assert listed["j01"].last_run.state is RunState.FAILED and listed["j01"].consecutive_failures == 1

    with store.write():
        store.set_operator_state("j02", JobState.PAUSED.value, 2002.0, "test")
    assert {v.id: v for v in list_jobs(service)}["j02"].state is JobState.PAUSED

    with store.write():
        store.delete_runs([run.id])
    listed = {v.id: v for v in list_jobs(service)}
    assert listed["j01"].last_run.n == before and listed["j01"].consecutive_failures == 0
    assert get_job(service, "j03").last_run.n == len(histories["j03"])


def test_what_a_rolled_back_write_showed_is_not_listed_afterwards(make_service):
    """A listing made inside a write sees its uncommitted rows; after the rollback the next
    listing must not answer from them (the store's change count does not go back)."""
    service = make_service("jobs")
    histories = add_jobs(service, 3)
    with pytest.raises(RuntimeError):
        with service.store.write():
            service.store.create_run(job_id="j00", state=RunState.QUEUED, trigger="manual", now=3000.0)
            assert {v.id: v for v in list_jobs(service)}["j00"].last_run.n == len(histories["j00"]) + 1
            raise RuntimeError("the write fails")
    check_views(service, list_jobs(service), histories)
