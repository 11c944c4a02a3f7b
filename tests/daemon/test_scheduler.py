"""The cron adapter (jobsd.scheduler.CronScheduler) on a real job store, and its port (jobsd.timer.Timer)."""
from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

from jobsd.scheduler import CronScheduler
from jobsd.catalog import load_catalog
from jobsd.timer import Timer


def _members(cls: type) -> list[str]:
    return sorted({*cls.__annotations__, *(n for n in vars(cls) if not n.startswith("_"))})


def test_cron_scheduler_keeps_the_timer_contract(tmp_path) -> None:
    """Every member of the port exists on the adapter, methods with the same parameters, properties
    and attributes readable on a new adapter (what the daemon calls before start_paused)."""
    loop = asyncio.new_event_loop()
    try:
        adapter = CronScheduler(str(tmp_path), loop, lambda *_: None)
        members = _members(Timer)
        assert {"sync", "next_run_at", "all_next_run_times", "state", "healthy", "tick_age", "last_tick",
                "write_failure", "kick_heartbeat", "checkpoint", "start_paused", "resume", "pause", "shutdown",
                "accepting", "path"} <= set(members)
        for name in members:
            port = inspect.getattr_static(Timer, name, None)
            if callable(port):
                assert list(inspect.signature(getattr(adapter, name)).parameters) == \
                    list(inspect.signature(port).parameters)[1:], name
            else:
                getattr(adapter, name)  # an attribute or property: readable
        assert (adapter.state, adapter.accepting, adapter.last_tick, adapter.write_failure) == ("stopped", True,
                                                                                              None, None)
        adapter.shutdown()  # before start_paused: allowed by the contract
        assert adapter.accepting is False
    finally:
        loop.close()


# --- sync and hand-over on a real job store ----------------------------------------------------

def _specs(folder, crons: dict[str, str]):  # noqa: ANN001, ANN202
    jobs = folder / "jobs"
    jobs.mkdir(exist_ok=True)
    for job_id, cron in crons.items():
        (jobs / f"{job_id}.toml").write_text(f'command = ["true"]\n[schedule]\ncron = "{cron}"\ntimezone = "UTC"\n')
    return list(load_catalog(str(jobs)).specs.values())


def test_sync_and_next_run_times_never_unpickle_stored_jobs(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restart compares digests and lists next run times without loading any stored job; only a
    changed job is written again, a deleted one removed."""
    crons = {f"j{k}": f"{k} 3 * * *" for k in range(20)}
    first, _times = asyncio.run(_synced(tmp_path, _specs(tmp_path, crons)))
    assert len(first.added) == 20 and not first.changed and not first.removed

    def unpickle(*_args):  # noqa: ANN002, ANN202
        raise AssertionError("a stored job was unpickled")

    monkeypatch.setattr(SQLAlchemyJobStore, "_reconstitute_job", unpickle)
    (tmp_path / "jobs" / "j19.toml").unlink()
    del crons["j19"]
    result, times = asyncio.run(_synced(tmp_path, _specs(tmp_path, {**crons, "j3": "0 4 * * *"})))
    assert (result.added, result.changed, result.removed, result.unchanged) == ([], ["j3"], ["j19"], 18)
    assert set(times) == set(crons)
    assert times["j3"].astimezone(UTC).time() == time(4, 0) and times["j5"].astimezone(UTC).time() == time(3, 5)


async def _synced(folder, specs):  # noqa: ANN001, ANN202
    """Sync `specs` on the job store in `folder`, resume; (SyncResult, all_next_run_times())."""
    scheduler = CronScheduler(str(folder), asyncio.get_running_loop(), lambda *_: None)
    scheduler.start_paused()
    try:
        result = scheduler.sync(specs)
        scheduler.resume()
        times = scheduler.all_next_run_times()
        assert all(scheduler.next_run_at(job_id) == t for job_id, t in times.items())
        return result, times
    finally:
        scheduler.shutdown()


def test_a_window_reaches_the_service_once_compared_as_an_instant(tmp_path) -> None:
    """Windows are handed to on_fire in arrival order; one not later (as a UTC instant) than the
    latest the job already had is dropped, even where its wall time looks earlier (fall-back)."""
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2026, 10, 25, 2, 45, tzinfo=berlin)           # 00:45Z, CEST
    later = datetime(2026, 10, 25, 2, 15, fold=1, tzinfo=berlin)   # 01:15Z, CET: a smaller wall time
    fired: list[tuple[str, list[datetime]]] = []

    async def scenario() -> None:
        scheduler = CronScheduler(str(tmp_path), asyncio.get_running_loop(), lambda j, w: fired.append((j, w)))
        for job_id, windows in [("a", [first]), ("a", [first, later]), ("b", [first]), ("a", [later])]:
            scheduler._arrived(job_id, windows)  # what the APScheduler thread's listener hands over
        for _ in range(10):
            await asyncio.sleep(0)

    asyncio.run(scenario())
    assert fired == [("a", [first]), ("a", [later]), ("b", [first])]
