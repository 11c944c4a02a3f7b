"""The tables of a job spec ([schedule], [retry], [limits], [expect], [notify], [retention],
[[requires]], [gates]) and the value types they share; JobSpec (jobsd_lib.spec) is made of them.
Import them from jobsd_lib.spec, which names them all."""
from __future__ import annotations

import grp
import pwd
import re
import shlex
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr,
                      field_validator, model_validator)

from jobsd_lib.kernel.cron import CronExpr, parse_cron, validate_timezone_name
from jobsd_lib.kernel.hooks import DEFAULT_ON
from jobsd_lib.kernel.jitter import MAX_JITTER
from jobsd_lib.kernel.retention import MAX_KEEP_LAST
from jobsd_lib.refs import check_job_id
from jobsd_lib.units import parse_duration, parse_size

__all__ = ["Duration", "Size", "JobId", "ScheduleSpec", "RetrySpec", "ExpectSpec", "NotifySpec", "RetentionSpec",
           "LimitsSpec", "RequireSpec", "GatesSpec", "DEFAULT_APPROVAL_WAIT", "MAX_APPROVERS", "approver_problem"]

Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class ScheduleSpec(_Model):
    cron: StrictStr
    timezone: StrictStr
    misfire_grace: Duration = 60.0
    coalesce: StrictBool = True
    catch_up: StrictBool = False
    jitter: Duration = 0.0  # every window shifted by one offset per job id in [0, jitter) (kernel.jitter)

    @field_validator("jitter")
    @classmethod
    def _jitter(cls, value: float) -> float:
        if value > MAX_JITTER:
            raise ValueError(f"jitter is at most {MAX_JITTER / 3600:g}h (got {value:g}s)")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        parse_cron(value)  # raises CronError, a ValueError, with a message naming the field
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return validate_timezone_name(value)

    @property
    def expr(self) -> CronExpr:
        return parse_cron(self.cron)


class RetrySpec(_Model):
    attempts: StrictInt = Field(default=1, ge=1, le=100)
    backoff: Duration = 10.0
    factor: float = Field(default=2.0, ge=1.0, le=100.0)
    max: Duration = 600.0


class ExpectSpec(_Model):
    """`[expect]` (DESIGN 11): the job is *overdue* when no run of it succeeded within
    `success_within` (from its last success, or from when jobsd first saw the job)."""
    success_within: Duration | None = Field(default=None, gt=0)


class NotifySpec(_Model):
    """`[notify]` (DESIGN 11, kernel.hooks): a command that reads a JSON document about a run that
    ended (or an overdue episode) on stdin. Without `command`, the daemon's --notify-command."""
    command: tuple[str, ...] | None = None
    on: tuple[Literal["failure", "first_failure", "recovery", "overdue", "success"], ...] = DEFAULT_ON

    @field_validator("command", mode="before")
    @classmethod
    def _command(cls, command: Any) -> Any:
        return None if command is None else _normalize_command(command, False)

    @field_validator("on")
    @classmethod
    def _on(cls, on: tuple[str, ...]) -> tuple[str, ...]:
        for i, kind in enumerate(on):
            if kind in on[:i]:
                raise ValueError(f"{kind!r} is listed twice (on[{i}])")
        return on


class RetentionSpec(_Model):
    """`[retention]` (DESIGN 11): which finished runs the daemon's hourly sweep removes, as `jobsctl
    gc` rules (kernel.retention): a run goes when neither rule given keeps it. Unset: the daemon's
    default (jobsd --retention-keep-last / --retention-older-than), else keep everything."""
    keep_last: StrictInt | None = Field(default=None, ge=0, le=MAX_KEEP_LAST)
    older_than: Duration | None = Field(default=None, gt=0)


class LimitsSpec(_Model):
    memory: Size | None = Field(default=None, gt=0)
    cpu_time: Duration | None = Field(default=None, gt=0)
    open_files: StrictInt | None = Field(default=None, ge=3, le=1048576)
    output: Size = Field(default=256 << 20, ge=0)


def _job_id(job: str) -> str:
    problem = check_job_id(job)
    if problem:
        raise ValueError(problem)
    return job


JobId = Annotated[StrictStr, AfterValidator(_job_id)]


class RequireSpec(_Model):
    """`[[requires]]`: a gate on another job's latest finished run (DESIGN 10)."""
    job: JobId
    succeeded_within: Duration = Field(gt=0)


DEFAULT_APPROVAL_WAIT = 86400.0  # seconds a run waits for approval when [gates] wait is not set
MAX_APPROVERS = 100
_APPROVER = re.compile(r"^@?[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")  # a user name, or @ and a group name


class GatesSpec(_Model):
    # how long a run may wait for its gates, from when it began to wait; unset: [[requires]] not met
    # now -> skipped at once, and an approval is waited for DEFAULT_APPROVAL_WAIT
    wait: Duration | None = Field(default=None, ge=0)
    condition: tuple[str, ...] | None = None  # systemd's ExecCondition=: 0 go, 1-254 skip, 255/signal fail
    approval: StrictBool = False  # every run waits for `jobsctl runs approve` before its first attempt
    approvers: tuple[StrictStr, ...] = ()  # user names and @groups who may decide; empty: anyone on the socket

    @field_validator("condition", mode="before")
    @classmethod
    def _condition(cls, condition: Any) -> Any:
        return None if condition is None else _normalize_command(condition, False)

    @field_validator("approvers")
    @classmethod
    def _approvers(cls, approvers: tuple[str, ...]) -> tuple[str, ...]:
        if len(approvers) > MAX_APPROVERS:
            raise ValueError(f"at most {MAX_APPROVERS} approvers, got {len(approvers)}")
        for i, name in enumerate(approvers):
            if not _APPROVER.match(name):
                raise ValueError(f"{name!r} (approvers[{i}]) is neither a user name nor @group")
            if name in approvers[:i]:
                raise ValueError(f"{name!r} is listed twice (approvers[{i}])")
            problem = approver_problem(name)
            if problem:
                raise ValueError(f"{problem} (approvers[{i}])")
        return approvers

    @model_validator(mode="after")
    def _approval(self) -> "GatesSpec":
        if self.approvers and not self.approval:
            raise ValueError("approvers is set but approval is not: add approval = true to [gates]")
        return self

    @property
    def requires_wait(self) -> float:
        return self.wait or 0.0

    @property
    def approval_wait(self) -> float:
        return DEFAULT_APPROVAL_WAIT if self.wait is None else self.wait


def approver_problem(name: str) -> str:
    """Why an approvers entry names no one on this host ("" when the user or group exists)."""
    try:
        if name.startswith("@"):
            grp.getgrnam(name[1:])
        else:
            pwd.getpwnam(name)
    except KeyError:
        return f"no {'group' if name.startswith('@') else 'user'} {name.lstrip('@')!r} on this host"
    return ""


def _normalize_command(command: Any, shell: Any) -> Any:
    """A string is split like a shell would (no shell runs it); shell jobs keep it whole."""
    if isinstance(command, str):
        if not command.strip():
            raise ValueError("command is empty")
        if shell is True:
            return (command,)
        try:
            return tuple(shlex.split(command))
        except ValueError as exc:
            raise ValueError(f"command cannot be split into words: {exc}") from None
    if isinstance(command, list):
        if not command:
            raise ValueError("command is empty")
        if shell is True:
            raise ValueError("with shell = true, command must be one string run by /bin/sh -c")
        if not all(isinstance(word, str) and word and "\0" not in word for word in command):
            raise ValueError("command must be a list of non-empty strings")
        return tuple(command)
    if command is None:
        return command  # pydantic reports it
    raise ValueError("must be a string or an array of strings")
