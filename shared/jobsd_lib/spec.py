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

import hashlib
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import Field, PrivateAttr, StrictBool, StrictInt, StrictStr, ValidationError, ValidationInfo, field_validator, model_validator

from jobsd_lib.identity import Identity, lookup_group, lookup_user, parse_umask, resolve
from jobsd_lib.kernel import jitter
from jobsd_lib.kernel.graph import Edge, graph_problems
from jobsd_lib.refs import JOB_ID_PATTERN, check_job_id  # kept there so that a reference check needs no pydantic
from jobsd_lib.perms import write_access_problem
from jobsd_lib.spec_tables import (DEFAULT_APPROVAL_WAIT, Duration, ExpectSpec, GatesSpec, JobId, LimitsSpec, NotifySpec,
                                  RequireSpec, RetentionSpec, RetrySpec, ScheduleSpec, _Model, _normalize_command,
                                  approver_problem)

__all__ = [
    "JOB_ID_PATTERN", "JobSpec", "ScheduleSpec", "RetrySpec", "LimitsSpec", "SpecProblem",
    "SpecInvalid", "parse_spec", "RequireSpec", "GatesSpec", "ExpectSpec", "RetentionSpec", "NotifySpec", "DEFAULT_APPROVAL_WAIT", "approver_problem", "catalog_problems", "check_job_id", "spec_digest", "MAX_SPEC_BYTES", "TOO_LARGE", "UNSAFE_FILE",
    "spec_file_problem", "jobs_folder_problem",
]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_ENV = ("JOBSD_JOB", "JOBSD_RUN", "JOBSD_ATTEMPT", "JOBSD_TRIGGER", "JOBSD_SCHEDULED_TIME", "JOBSD_INVOCATION_ID",
                 "JOBSD_STATE_DIR", "JOBSD_CREDENTIALS_DIRECTORY",
                "JOBSD_UPSTREAM_RUN")

MAX_SPEC_BYTES = 1 << 20  # read at most this much (+1 to tell a larger file); DESIGN 2
UNSAFE_FILE = "unsafe file"  # how spec_file_problem's ownership/mode problems begin (GetHealth warns of them)
TOO_LARGE = "file is larger than 1 MiB; a spec is a small TOML file"
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))



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
    user: StrictStr | StrictInt | None = None  # the job's processes run as this user (jobsd_lib.identity)
    group: StrictStr | StrictInt | None = None  # default: the user's primary group
    supplementary_groups: tuple[StrictStr | StrictInt, ...] | None = None  # default: the user's groups
    umask: StrictStr | None = None  # "0027"; default: jobsd's own
    credentials: dict[StrictStr, StrictStr] = Field(default_factory=dict)  # name -> file jobsd reads (job_files.py)
    _identity: Identity | None = PrivateAttr(default=None)

    @property
    def identity(self) -> Identity | None:
        """Who the job runs as, resolved at load; None: as jobsd itself."""
        return self._identity

    @property
    def jitter_offset(self) -> timedelta:
        """How much later than each window the timer fires it (kernel.jitter; 0 without a schedule)."""
        return jitter.offset(self.id, self.schedule.jitter) if self.schedule else timedelta(0)

    @property
    def umask_bits(self) -> int | None:
        return parse_umask(self.umask) if self.umask is not None else None

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            lookup_user(value)
        return value

    @field_validator("group", "supplementary_groups")
    @classmethod
    def _groups(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        if info.data.get("user", "") is None:  # absent: the user was invalid, and said so
            raise ValueError(f"{info.field_name} applies to `user`: set user too")
        for group in value if isinstance(value, tuple) else (value,):
            lookup_group(group)
        return value

    @field_validator("credentials")
    @classmethod
    def _credentials(cls, value: dict[str, str]) -> dict[str, str]:
        for name, path in value.items():
            if not _CREDENTIAL_NAME.match(name):
                raise ValueError(f"{name!r} is not a credential name: letters, digits, '.', '_' and '-', "
                                 "at most 64, not starting with '.' or '-'")
            if not os.path.isabs(path):
                raise ValueError(f"the file of {name} must be an absolute path (got {path!r})")
        return value

    @field_validator("umask")
    @classmethod
    def _umask(cls, value: str | None) -> str | None:
        if value is not None:
            parse_umask(value)
        return value

    @model_validator(mode="after")
    def _resolve_identity(self) -> "JobSpec":
        if self.user is not None:
            self._identity = resolve(self.user, self.group, self.supplementary_groups)
        return self

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


_CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
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
            and "got " not in message and repr(error["input"]) not in message):
        message = f"{message} (got {error['input']!r})"
    return SpecProblem(file, path, message, job_id)
