"""The SIGKILL loop of issue 19 ("keep what held"), a few rounds: see tests/kill_loop.py.
bench/kill_loop.py runs the same loop for 100 rounds."""
from __future__ import annotations

import pytest

from tests.kill_loop import KillLoop


@pytest.mark.timeout(150)
def test_sigkill_under_load_loses_no_acknowledged_run_and_runs_no_window_twice(home: str) -> None:
    report = KillLoop(home).run(rounds=5)
    assert report.rounds == 5
    assert len(report.acknowledged) >= 10, "the load acknowledged too few runs to prove anything"
    assert report.windows >= 3 and report.receipts >= len(report.acknowledged)
