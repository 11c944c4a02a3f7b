"""Time from a timeout's deadline to the whole process tree of the attempt being gone.

The job (timeout 0.5 s by default) is a shell that starts
  - a grandchild in its group                      `sleep 300 &`
  - a grandchild that ignores SIGTERM              `sh -c 'trap "" TERM; exec sleep 300' &`
  - an escapee in its own session (double fork)    `( setsid sleep 300 & )`
and then `wait`s. On the deadline the daemon sends SIGTERM to the group and to the escapee (found
by its environment), and SIGKILL after kill_grace (0.1 s by default) to what is left: the
SIGTERM-ignoring grandchild, so the tree cannot be gone before deadline + kill_grace.

Runs are sequential. deadline = the attempt's started_at (daemon clock, taken right after the
spawn) + timeout. For each run:
  gone (bench /proc poll)   the bench scans /proc/*/environ every --poll ms for processes with this
                            run's JOBSD_RUN (and the bench's own token) and notes the first scan
                            that finds none after the tree was seen; resolution ~ poll + scan time
  attempt finished_at       the daemon's timestamp once the attempt's wait() returned
  run finished_at           the daemon's timestamp when the run was recorded finished
All are milliseconds after the deadline; subtract kill_grace for what the daemon adds.
Also printed: how many processes of the tree the bench saw (expected 4: sh, sleep, the
SIGTERM-ignoring sleep, the escaped sleep) and how many runs ended timed_out.

Usage: .venv/bin/python bench/timeout_kill.py [--runs 50] [--timeout 0.5] [--kill-grace 0.1] [--poll 2]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
import uuid

from _common import Daemon, Deadline, percentile, processes_with_env, repro_command, short_tmpdir, write_jobs

BUDGET_SECONDS = 170
MAIN = """sleep 300 &
sh -c 'trap "" TERM; exec sleep 300' &
( setsid sleep 300 & )
wait
"""


def row(name: str, v: list[float]) -> str:
    if not v:
        return f"  {name:44} (none)"
    return (f"  {name:44} {len(v):4d} {min(v):8.1f} {percentile(v, 50):8.1f} {percentile(v, 90):8.1f} "
            f"{percentile(v, 99):8.1f} {max(v):8.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=0.5)
    ap.add_argument("--kill-grace", type=float, default=0.1)
    ap.add_argument("--poll", type=float, default=2.0, help="ms between /proc scans of the bench")
    args = ap.parse_args()
    deadline_budget = Deadline(BUDGET_SECONDS)

    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    print(f"timeout_kill: {args.runs} runs, timeout {args.timeout}s, kill_grace {args.kill_grace}s, "
          f"poll {args.poll} ms, {os.cpu_count()} cpus; uptime: {os.popen('uptime').read().strip()}")
    print("reproduce:", repro_command("timeout_kill.py", sys.argv[1:]))
    home = short_tmpdir("jbk")
    token = uuid.uuid4().hex
    daemon = Daemon(home)
    try:
        script = os.path.join(home, "tree.sh")
        with open(script, "w") as f:
            f.write(MAIN)
        write_jobs(home, {"tk": f'command = ["sh", "{script}"]\ntimeout = {args.timeout}\n'
                                f'kill_grace = {args.kill_grace}\nenv = {{ BENCH_TOKEN = "{token}" }}\n'})
        daemon.start()
        print(f"jobsd ready in {daemon.ready_seconds * 1000:.0f} ms (pid {daemon.pid}); "
              f"{sum(1 for n in os.listdir('/proc') if n.isdigit())} processes on the machine")
        ch = grpc.insecure_channel(f"unix:{daemon.sock}")
        stub = g.JobsStub(ch)
        stub.ListJobs(pb.ListJobsRequest())

        gone, att_fin, run_fin, seen, states = [], [], [], [], {}
        for i in range(args.runs):
            if deadline_budget.left() < 20:
                print(f"!! time budget: stopping after {i} runs")
                break
            run = stub.RunJob(pb.RunJobRequest(job="tk"), timeout=30)
            entries = [f"JOBSD_RUN={run.ref}", f"BENCH_TOKEN={token}"]
            most, t_gone, give_up = 0, None, time.monotonic() + args.timeout + args.kill_grace + 10
            while time.monotonic() < give_up:
                pids = processes_with_env(*entries)
                t = time.time_ns()
                most = max(most, len(pids))
                if most and not pids:
                    t_gone = t
                    break
                time.sleep(args.poll / 1000)
            final = stub.GetRun(pb.GetRunRequest(run=run.ref))
            while not final.HasField("finished_at") and time.monotonic() < give_up:
                time.sleep(0.005)
                final = stub.GetRun(pb.GetRunRequest(run=run.ref))
            states[pb.RunState.Name(final.state)] = states.get(pb.RunState.Name(final.state), 0) + 1
            seen.append(most)
            dl = final.attempt_list[0].started_at.ToNanoseconds() + int(args.timeout * 1e9)
            if t_gone is not None:
                gone.append((t_gone - dl) / 1e6)
            att_fin.append((final.attempt_list[0].finished_at.ToNanoseconds() - dl) / 1e6)
            run_fin.append((final.finished_at.ToNanoseconds() - dl) / 1e6)
        ch.close()

        grace_ms = args.kill_grace * 1000
        print(f"\nms after the deadline (attempt started_at + {args.timeout}s); kill_grace is {grace_ms:.0f} ms")
        print(f"  {'':44} {'n':>4} {'min':>8} {'median':>8} {'p90':>8} {'p99':>8} {'max':>8}")
        print(row("tree gone (bench /proc poll)", gone))
        print(row("attempt finished_at (daemon)", att_fin))
        print(row("run finished_at (daemon)", run_fin))
        print(f"\nmedian beyond kill_grace: gone {percentile(gone, 50) - grace_ms:.1f} ms, "
              f"run finished_at {percentile(run_fin, 50) - grace_ms:.1f} ms "
              f"(p99: {percentile(gone, 99) - grace_ms:.1f} / {percentile(run_fin, 99) - grace_ms:.1f} ms)")
        print(f"processes of the tree seen per run: {dict(sorted((k, seen.count(k)) for k in set(seen)))}; "
              f"outcomes: {states}; runs where the tree never vanished: {len(seen) - len(gone)}")
        print("\nreproduce:", repro_command("timeout_kill.py", sys.argv[1:]))
        return 0
    finally:
        daemon.stop()
        for pid in processes_with_env(f"BENCH_TOKEN={token}"):  # never leave a sleep 300 behind
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
