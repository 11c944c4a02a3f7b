"""The SIGKILL loop of issue 19: 100 rounds of a real jobsd under load killed at a random moment
(tests/kill_loop.py has the loop and its checks; tests/api/test_kill_loop.py runs 5 rounds).

Per round: start jobsd, RunJob in a loop from a thread (a short job, now and then a long one) and
an every-second cron job, SIGKILL after 0.3-1.5 s. Checked after every restart: every acknowledged
run is there with its number and queue time; no process of the killed daemon's runs is left once
the next one serves. At the end: no cron window recorded twice, every receipt agrees with the store.
Prints the counts; a failed check raises.

Usage: .venv/bin/python bench/kill_loop.py [--rounds 100] [--seed 19]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _common import repro_command, short_tmpdir  # noqa: E402

from tests.kill_loop import KillLoop  # noqa: E402 - the loop the suite runs, with more rounds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--seed", type=int, default=19)
    args = ap.parse_args()
    home = short_tmpdir()
    try:
        t0 = time.perf_counter()
        report = KillLoop(home, seed=args.seed).run(args.rounds)
        print(f"{report.rounds} SIGKILLs in {time.perf_counter() - t0:.0f} s: {len(report.acknowledged)} acknowledged runs, "
              f"all found with their numbers; {report.windows} cron windows, none twice; "
              f"{report.orphans_stopped} leftover processes stopped by the next start; "
              f"{report.receipts} receipts agree with the store")
        print("reproduce:", repro_command("kill_loop.py", sys.argv[1:]))
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
