"""Where a retried run's next attempt begins, `jobs run --follow` and `jobs tail` say so on stderr
(`--- attempt 2 of 3 (after exit 3) ---`), also for an attempt that printed nothing; `--raw` leaves
only the job's bytes. A real jobsctl against a real daemon."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(60)

SCRIPT = 'case $JOBSD_ATTEMPT in 1) echo first; echo oops >&2; exit 3;; 2) exit 4;; *) echo third;; esac'
MARKERS = b"--- attempt 2 of 3 (after exit 3) ---\n--- attempt 3 of 3 (after exit 4) ---\n"


@pytest.fixture
def served(daemon):
    daemon.write_job("flaky", f'command = ["sh", "-c", "{SCRIPT}"]\n[retry]\nattempts = 3\nbackoff = "0.1s"\n')
    return daemon.start()


def test_follow_and_tail_mark_each_later_attempt_and_raw_leaves_the_bytes_alone(served):
    followed = served.ctl("jobs", "run", "flaky", "--follow")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == b"first\nthird\n"
    assert followed.stderr.startswith(b"oops\n" + MARKERS), followed.stderr  # then the outcome line
    tail = served.ctl("jobs", "tail", "flaky")
    assert (tail.returncode, tail.stdout, tail.stderr) == (0, b"first\nthird\n", b"oops\n" + MARKERS)
    raw = served.ctl("jobs", "tail", "flaky", "--raw", "-f")
    assert (raw.returncode, raw.stdout, raw.stderr) == (0, b"first\nthird\n", b"oops\n")
    retried = served.ctl("runs", "retry", "flaky/1", "--follow", "--raw")
    assert retried.returncode == 0 and b"--- attempt" not in retried.stderr
