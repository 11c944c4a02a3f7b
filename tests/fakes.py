"""In-process fakes for kernel and ops tests only (never for the tests that prove the product)."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from jobsd_lib.kernel.drift import ClockReading

__all__ = ["FakeClock"]


class FakeClock:
    """A clock (jobsd.clock.Clock) that moves only when the test says `advance(seconds)`; waits
    (`wait_until`) end when it reaches their time, with no real seconds spent."""

    def __init__(self, start: datetime = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)) -> None:
        self._now, self._mono = start, 1000.0
        self._waiters: list[tuple[datetime, asyncio.Future]] = []

    def now(self) -> datetime:
        return self._now

    def epoch(self) -> float:
        return self._now.timestamp()

    def now_ns(self) -> int:
        return int(self._now.timestamp() * 1e9)

    def monotonic(self) -> float:
        return self._mono

    def reading(self) -> ClockReading:
        return ClockReading(self.epoch(), "fake-boot", self._mono)

    @property
    def waiting(self) -> int:
        """How many waits are pending (tests wait for a run to reach its backoff)."""
        return sum(1 for _at, future in self._waiters if not future.done())

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        for at, future in self._waiters:
            if at <= self._now and not future.done():
                future.set_result(None)
        self._waiters = [(at, fut) for at, fut in self._waiters if not fut.done()]

    async def wait_until(self, at: datetime, wake: asyncio.Event) -> None:
        if at <= self._now or wake.is_set():
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((at, future))
        woken = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait([future, woken], return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            future.cancel()
