"""What `runs show`, `runs cancel` and `runs approve|reject` print (the run's JSON shape: render.run_json)."""
from jobsctl.render import result_text, size
from jobsd_lib.kernel.states import RunState


_RUN_KEYS = ("state", "trigger", "retry_of", "upstream", "wait_reason", "wait_detail", "waiting_since", "reason", "attempts", "max_attempts", "exit_code", "signal",
             "scheduled_at", "queued_at", "started_at", "finished_at", "next_attempt_at", "host", "artifacts")


def run_text(r: dict) -> str:
    lines = [f"run:             {r['run']} ({result_text(r)})"]
    lines += [f"{k + ':':16} {r[k]}" for k in _RUN_KEYS if r[k] not in (None, "")]
    if r.get("decision"):
        lines.append(f"{'decision:':16} {decision_text(r['decision'])}")
    for a in r["attempt_list"]:
        lines.append(f"{'attempt ' + str(a['number']) + ':':16} {attempt_text(a)}")
    return "\n".join(lines)


def attempt_text(a: dict) -> str:
    """`exit 3, pid 4158, 12 B of output` / `did not start: command not found: 'x'`: only what is known."""
    parts = [f"exit {a['exit_code']}"] if a["exit_code"] is not None else []
    parts += [f"signal {a['signal']}"] if a["signal"] is not None else []
    parts += ["timed out"] if a.get("timed_out") else []
    parts += [f"pid {a['pid']}"] if a["pid"] else []
    if a["pid"] or a["output_bytes"]:
        parts.append(f"{size(a['output_bytes'])} of output" + (f", {size(a['dropped_bytes'])} dropped"
                                                               if a["dropped_bytes"] else ""))
    if a["finished_at"] is None:
        parts.append("running")
    text = ", ".join(parts)
    if a["error"]:
        text = f"{text}: {a['error']}" if text else a["error"]
    return text


def attempt_marker(number: int, run: dict) -> str:
    """`--- attempt 2 of 3 (after exit 3) ---`: where a retried run's next attempt begins in its output."""
    ended = [a for a in run["attempt_list"] if a["number"] == number - 1]
    after = f" (after {_end_text(ended[0])})" if ended and _end_text(ended[0]) else ""
    return f"--- attempt {number} of {run['max_attempts']}{after} ---"


def _end_text(a: dict) -> str:
    if a.get("timed_out"):
        return "timed out"
    if a["exit_code"] is not None:
        return f"exit {a['exit_code']}"
    if a["signal"] is not None:
        return f"signal {a['signal']}"
    return a["error"] or ""


def decision_text(d: dict) -> str:
    """`approved by uid=1000(alice) at 2026-...: ship it`."""
    verb = "approved" if d["approved"] else "rejected"
    return f"{verb} by {d['by']} at {d['at']}" + (f": {d['comment']}" if d["comment"] else "")


def decided_text(data: dict) -> str:
    """What `runs approve` and `runs reject` print."""
    d = data.get("decision") or {}
    verb = "approved" if d.get("approved") else "rejected"
    return f"{verb} {data['run']}; it is {data['state']} now"


def cancel_text(data: dict) -> str:
    if data["state"] == RunState.CANCELLED.value:
        return f"cancelled {data['run']}"
    return f"cancel of {data['run']} requested; it is still {data['state']} (see `jobsctl runs show {data['run']}`)"
