"""Job specs: one TOML file per job, `<jobs-dir>/<job-id>.toml` (DESIGN 2).

`parse_spec(job_id, data, file)` turns a file's bytes into a frozen JobSpec or raises
SpecInvalid listing every problem with its file, dotted field path and reason. Reading the
file is the caller's business (this package does no I/O), so the daemon and
`jobsctl jobs validate` give the same messages for the same bytes. What a spec file must be before
it is read at all (a regular file of at most MAX_SPEC_BYTES that only jobsd's user or root can
change, in a jobs folder of the same kind) is decided here too, from the caller's fstat/stat:
`spec_file_problem` and `jobs_folder_problem`.
"""
from __future__ import annotations

import grp
import hashlib
import pwd
import re
import shlex
import stat
import tomllib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, StrictBool, StrictInt, StrictStr, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from jobsd_lib.kernel.cron import CronError, CronExpr, parse_cron, validate_timezone_name
from jobsd_lib.kernel.graph import Edge, graph_problems
from jobsd_lib.kernel.hooks import DEFAULT_ON
from jobsd_lib.kernel.jitter import MAX_JITTER
from jobsd_lib.kernel.retention import MAX_KEEP_LAST
from jobsd_lib.refs import JOB_ID_PATTERN, check_job_id  # kept there so that a reference check needs no pydantic
from jobsd_lib.perms import write_access_problem
from jobsd_lib.units import parse_duration, parse_size

__all__ = [
    "JOB_ID_PATTERN", "JobSpec", "ScheduleSpec", "RetrySpec", "LimitsSpec", "SpecProblem",
    "SpecInvalid", "parse_spec", "RequireSpec", "GatesSpec", "ExpectSpec", "RetentionSpec", "NotifySpec", "DEFAULT_APPROVAL_WAIT", "approver_problem", "catalog_problems", "check_job_id", "spec_digest", "MAX_SPEC_BYTES", "TOO_LARGE", "UNSAFE_FILE",
    "spec_file_problem", "jobs_folder_problem",
]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_ENV = ("JOBSD_JOB", "JOBSD_RUN", "JOBSD_ATTEMPT", "JOBSD_TRIGGER", "JOBSD_SCHEDULED_TIME", "JOBSD_INVOCATION_ID",
                "JOBSD_UPSTREAM_RUN")

MAX_SPEC_BYTES = 1 << 20  # read at most this much (+1 to tell a larger file); DESIGN 2
UNSAFE_FILE = "unsafe file"  # how spec_file_problem's ownership/mode problems begin (GetHealth warns of them)
TOO_LARGE = "file is larger than 1 MiB; a spec is a small TOML file"
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))

Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


def spec_file_problem(file: str, st_mode: int, st_size: int, st_uid: int, own_uid: int,
                      owner_name: str = "", group_private: bool = False) -> str | None:
    """None when an opened spec file may be read and parsed, judged by its fstat, else why not.
    `group_private`: the file's group is its owner's own (perms.write_access_problem).

    Checked on the descriptor, before any read: a FIFO opened without blocking is refused here
    instead of hanging the reader, and a symlink is judged by its target (what was opened)."""
    if not stat.S_ISREG(st_mode):
        kind = next((name for test, name in _KINDS if test(st_mode)), "not a file")
        return f"not a regular file ({kind}): a spec is a regular <job-id>.toml file"
    unsafe = write_access_problem(file, st_uid, st_mode, own_uid, owner_name, group_private=group_private)
    if unsafe:
        return f"{UNSAFE_FILE}, {unsafe} (a spec runs with jobsd's rights, so only jobsd's user or root may change it)"
    return TOO_LARGE if st_size > MAX_SPEC_BYTES else None


def jobs_folder_problem(folder: str, st_uid: int, st_mode: int, own_uid: int, owner_name: str = "",
                        group_private: bool = False) -> str | None:
    """None when only jobsd's user or root can add files to the jobs folder, else why its specs are refused."""
    unsafe = write_access_problem(folder, st_uid, st_mode, own_uid, owner_name, group_private=group_private)
    if unsafe:
        return (f"unsafe jobs folder {folder}, {unsafe} (whoever can add a file to it could run commands "
                "with jobsd's rights)")
    return None


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


class JobSpec(_Model):
    id: str
    file: str = ""
    digest: str = ""
    description: StrictStr = ""
    shell: StrictBool = False  # before command: the command validator reads it
    command: tuple[str, ...]
    cwd: StrictStr | None = None
    env: dict[str, StrictStr] = Field(default_factory=dict, repr=False)  # may hold secrets: never in reprs
    timeout: Duration | None = Field(default=None, gt=0)
    kill_grace: Duration = 10.0
    enabled: StrictBool = True
    schedule: ScheduleSpec | None = None
    retry: RetrySpec = Field(default_factory=RetrySpec)
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    after: tuple[JobId, ...] = ()  # upstream jobs: a run starts once each succeeded (DESIGN 10)
    requires: tuple[RequireSpec, ...] = ()
    gates: GatesSpec = Field(default_factory=GatesSpec)
    expect: ExpectSpec = Field(default_factory=ExpectSpec)
    retention: RetentionSpec = Field(default_factory=RetentionSpec)
    notify: NotifySpec = Field(default_factory=NotifySpec)

    @field_validator("after")
    @classmethod
    def _after(cls, after: tuple[str, ...]) -> tuple[str, ...]:
        for i, job in enumerate(after):
            if job in after[:i]:
                raise ValueError(f"{job!r} is listed twice (after[{i}])")
        return after

    @property
    def edges(self) -> list[Edge]:
        """The jobs this spec names, with where (the job graph: kernel.graph)."""
        return [*(Edge(self.id, up, f"after[{i}]") for i, up in enumerate(self.after)),
                *(Edge(self.id, r.job, f"requires[{i}].job") for i, r in enumerate(self.requires))]

    @field_validator("command", mode="before")
    @classmethod
    def _command(cls, command: Any, info: ValidationInfo) -> Any:
        return _normalize_command(command, info.data.get("shell", False))

    @field_validator("env")
    @classmethod
    def _env(cls, env: dict[str, str]) -> dict[str, str]:
        for name, value in env.items():
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
            if name in _RESERVED_ENV:
                raise ValueError(f"{name} is set by jobsd for every attempt and cannot be overridden")
            if "\0" in value:
                raise ValueError(f"the value of {name} contains a NUL byte")
        return env

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, cwd: str | None) -> str | None:
        if cwd is not None and (not cwd or "\0" in cwd):
            raise ValueError("cwd must be a non-empty path")
        return cwd

    @property
    def argv(self) -> list[str]:
        """What to exec: the command, or /bin/sh -c COMMAND for shell jobs."""
        return ["/bin/sh", "-c", self.command[0]] if self.shell else list(self.command)


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


@dataclass(frozen=True)
class SpecProblem:
    """One reason a spec file is invalid. `field` is a dotted path, empty for the whole file."""

    file: str
    field: str
    message: str
    job: str = ""

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message}"


class SpecInvalid(ValueError):
    def __init__(self, problems: list[SpecProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def spec_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_spec(job_id: str, data: bytes, file: str) -> JobSpec:
    """Validate one spec file's bytes. Raises SpecInvalid with every problem found."""
    problem = check_job_id(job_id)
    if problem:
        raise SpecInvalid([SpecProblem(file, "", f"file name: {problem}", job_id)])
    raw = _load_toml(job_id, data, file)
    if "id" in raw or "file" in raw or "digest" in raw:
        key = next(k for k in ("id", "file", "digest") if k in raw)
        raise SpecInvalid([SpecProblem(file, key, "unknown key (the job id is the file name)", job_id)])
    try:
        return JobSpec.model_validate({**raw, "id": job_id, "file": file, "digest": spec_digest(data)})
    except ValidationError as exc:
        raise SpecInvalid([_problem(job_id, file, e) for e in exc.errors()]) from None


def catalog_problems(specs: dict[str, JobSpec], known: set[str]) -> dict[str, list[SpecProblem]]:
    """What makes valid files invalid together (kernel.graph): `after` or `[[requires]]` naming no job
    among `known` (every spec file's id, valid or not) or the job itself, and cycles. The daemon
    moves these jobs to its invalid ones; `jobs validate` reports them on their files."""
    found: dict[str, list[SpecProblem]] = {}
    edges = [edge for spec in specs.values() for edge in spec.edges]
    for problem in graph_problems(edges, known):
        file = specs[problem.job].file
        found.setdefault(problem.job, []).append(SpecProblem(file, problem.field, problem.message, problem.job))
    return found


def _load_toml(job_id: str, data: bytes, file: str) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecInvalid([SpecProblem(file, "", f"not UTF-8 text (byte {exc.start}): a spec must be UTF-8 TOML", job_id)]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecInvalid([SpecProblem(file, "", f"not valid TOML: {exc}", job_id)]) from None


# pydantic's type errors, in the words of TOML (what a spec's author wrote).
_TOML_TYPES = {"dict_type": "a table", "model_type": "a table", "model_attributes_type": "a table",
               "tuple_type": "an array", "list_type": "an array", "set_type": "an array", "frozen_set_type": "an array",
               "string_type": "a string", "int_type": "an integer", "int_parsing": "an integer",
               "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
               "bool_parsing": "true or false"}


_BOUNDS = {"greater_than_equal": ("at least", "ge"), "less_than_equal": ("at most", "le"),
           "greater_than": ("more than", "gt"), "less_than": ("less than", "lt")}


def _problem(job_id: str, file: str, error: dict[str, Any]) -> SpecProblem:
    path = ".".join(str(part) for part in error["loc"])
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "required key is missing"
    elif kind in _TOML_TYPES:  # pydantic names Python types ("a valid dictionary or instance of ScheduleSpec")
        message = f"must be {_TOML_TYPES[kind]}"
    elif kind in _BOUNDS and _BOUNDS[kind][1] in error.get("ctx", {}):
        message = f"must be {_BOUNDS[kind][0]} {error['ctx'][_BOUNDS[kind][1]]}"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    if (kind not in ("extra_forbidden", "missing") and "input" in error and not isinstance(error["input"], (dict, list))
            and "got " not in message):
        message = f"{message} (got {error['input']!r})"
    return SpecProblem(file, path, message, job_id)
