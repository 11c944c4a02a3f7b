"""PauseJob, ResumeJob, DisableJob, EnableJob: the operator's state of a job.

pause: no scheduled runs (cron windows are recorded `skipped`, reason paused); manual runs still
allowed. resume: back to active (also clears an operator disable). disable: no runs at all
(RunJob answers job_disabled, cron windows are recorded `skipped`). enable: clear the operator's
disable (or pause); a spec with `enabled = false` stays disabled: the answer's state says so
(edit the file and reload to enable it).
"""
from __future__ import annotations

import logging

from jobsd.context import Context
from jobsd.handlers.jobs import JobView, get_job
from jobsd_lib.facts import OPERATOR_FACTS, Actor

__all__ = ["set_operator_state"]

log = logging.getLogger("jobsd.operator")


def set_operator_state(ctx: Context, verb: str, job_id: str, actor: Actor) -> JobView:
    """`verb` is pause, resume, disable or enable."""
    fact_type, state = OPERATOR_FACTS[verb]
    get_job(ctx, job_id)  # validates the id; job_not_found
    fact = fact_type(ts=ctx.clock.epoch(), job_id=job_id, state=state, actor=actor)
    ctx.journal.operator_state(fact, state, actor)
    view = get_job(ctx, job_id)
    log.info("%s %s by %s (now %s)", fact.TYPE, job_id, actor or "unknown", view.state.value)
    return view
