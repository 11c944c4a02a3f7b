"""Run bench scripts on two checkouts of jobsd, interleaved: old, new, old, new...

Each checkout runs its own copy of the script with its own venv (`<tree>/.venv/bin/python
bench/<script>`), so each measures its own code; the rounds alternate so that a slow minute of
the machine falls on both. Outputs are kept in --out (one file a run) and the last lines of each
are printed. It asserts nothing: compare the figures the scripts print.

    .venv/bin/python bench/side_by_side.py --old ../wt-old [--rounds 2] [--out /tmp/side] run_latency.py ...
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

NEW = Path(__file__).resolve().parent.parent


def run(tree: Path, script: str, args: list[str], out: Path) -> float:
    began = time.monotonic()
    with open(out, "wb") as f:
        code = subprocess.call([str(tree / ".venv/bin/python"), f"bench/{script}", *args], cwd=tree, stdout=f,
                               stderr=subprocess.STDOUT)
    took = time.monotonic() - began
    print(f"--- {tree.name}: {script} {' '.join(args)} (exit {code}, {took:.0f} s) -> {out}", flush=True)
    sys.stdout.write("".join(out.read_text(errors="replace").splitlines(keepends=True)[-25:]))
    return took


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", required=True, type=Path, help="the other checkout (with its own .venv)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/side-by-side"))
    parser.add_argument("--args", default="", help="arguments passed to every script")
    parser.add_argument("scripts", nargs="+")
    opts = parser.parse_args()
    opts.out.mkdir(parents=True, exist_ok=True)
    trees = {"old": opts.old.resolve(), "new": NEW}
    for script in opts.scripts:
        for k in range(opts.rounds):
            order = ("old", "new") if k % 2 == 0 else ("new", "old")
            for name in order:
                run(trees[name], script, opts.args.split(), opts.out / f"{Path(script).stem}.{name}.{k + 1}.txt")
    print(f"repro: {os.path.relpath(sys.executable, NEW)} bench/side_by_side.py --old {opts.old} "
          f"--rounds {opts.rounds} {' '.join(opts.scripts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
