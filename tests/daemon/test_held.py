"""HeldWindows (daemon/jobsd/held.py): cron windows that came while the store refused writes are
recorded missed, oldest first, once it takes them; at most PER_JOB per job are held."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from jobsd.held import PER_JOB, HeldWindows
from jobsd.store import StoreUnwritable

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_held_windows_are_recorded_in_order_once_the_store_takes_them() -> None:
    async def scenario() -> None:
        recorded: list[tuple[str, datetime, str]] = []
        refusing = [True]

        def record(job_id: str, window: datetime, reason: str) -> None:
            if refusing[0]:
                raise StoreUnwritable("full", "database or disk is full")
            recorded.append((job_id, window, reason))

        held = HeldWindows(record)
        for i in (2, 0, 1):
            held.hold("tick", T0 + timedelta(seconds=i), "database or disk is full")
        assert held.holds("tick") and len(held) == 3
        assert held.flush() == 0 and len(held) == 3  # still refused: nothing lost, tried again later
        refusing[0] = False
        assert held.flush() == 3 and len(held) == 0 and not held.holds("tick")
        assert [w for _j, w, _r in recorded] == [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]
        assert recorded[0][2] == (f"missed: due {T0.isoformat()}, the store could not be written "
                                  "(database or disk is full)")
        held.cancel()

    asyncio.run(scenario())


def test_at_most_per_job_windows_are_held_the_latest() -> None:
    async def scenario() -> None:
        recorded: list[datetime] = []
        held = HeldWindows(lambda _j, window, _r: recorded.append(window))
        for i in range(PER_JOB + 5):
            held.hold("tick", T0 + timedelta(seconds=i), "disk full")
        assert len(held) == PER_JOB
        held.flush()
        assert recorded == [T0 + timedelta(seconds=i) for i in range(5, PER_JOB + 5)]
        held.cancel()

    asyncio.run(scenario())
