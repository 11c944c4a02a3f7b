"""What the operator's commands print: jobs pause|resume|disable|enable, and jobsctl check."""
from jobsctl.render import overdue_text, result_text, size, spec_error_text, when
from jobsd_lib.kernel.states import JobState, Trigger


def operator_text(data: dict, verb: str, before: dict | None = None) -> str:
    """What `jobs pause|resume|disable|enable` says; `verb` is what was done ("paused"); `before`:
    the job before a --catch-up, to tell the run it started."""
    text = f"{data['id']}: {verb}"
    if data.get("paused_until"):
        text += f" until {when(data['paused_until'])}"
    text += f"; state {data['state']}"
    if verb == "enabled" and data["state"] == JobState.DISABLED.value:
        text += " (still disabled: the spec says enabled = false; edit it and `jobsctl daemon reload`)"
    if before is not None:
        last, old = data["last_run"], before["last_run"]
        if last and last["trigger"] == Trigger.CATCH_UP.value and (old is None or old["run"] != last["run"]):
            text += f"; caught up the window {when(last['scheduled_at'])} as {last['run']}"
        elif before["state"] not in (JobState.PAUSED.value, JobState.DISABLED.value):
            text += f"; it was {before['state']}: nothing to catch up"
        else:
            text += "; no window passed meanwhile: nothing to catch up"
    return text


def check_json(listed: dict, only: list[str]) -> dict:
    """`jobsctl check --json`: {"ok", "checked", "problems": [{"job", "problem", "message"}]}."""
    from jobsd_lib.kernel.check import job_problems

    chosen = [j for j in listed["jobs"] if not only or j["id"] in only]
    problems = []
    for j in chosen:
        last = j["last_run"]
        invalid = spec_error_text(j["error"]) if j["error"] else None
        found = job_problems(j["id"], invalid, j["consecutive_failures"],
                             f"{last['run']}: {result_text(last)}" if last else "-",
                             overdue_text(j) if j.get("overdue") else None)
        problems += [{"job": p.job, "problem": p.kind, "message": p.message} for p in found]
    return {"ok": not problems, "checked": len(chosen), "problems": problems}


def check_text(data: dict) -> str:
    if data["ok"]:
        return f"ok: {data['checked']} job{'s' if data['checked'] != 1 else ''} fine"
    return "\n".join(f"{p['job']}: {p['problem']}: {p['message']}" for p in data["problems"])


def forgot_text(data: dict) -> str:
    """What `jobs forget-state` prints."""
    if not data["removed"]:
        return f"{data['job']}: no state to forget ({data['path']} does not exist)"
    return f"{data['job']}: state forgotten: removed {data['path']} ({size(data['bytes_freed'])})"
