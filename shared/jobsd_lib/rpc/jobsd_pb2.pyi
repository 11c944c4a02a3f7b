import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_ACTIVE: _ClassVar[JobState]
    JOB_STATE_PAUSED: _ClassVar[JobState]
    JOB_STATE_DISABLED: _ClassVar[JobState]
    JOB_STATE_INVALID: _ClassVar[JobState]

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_QUEUED: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_RETRYING: _ClassVar[RunState]
    RUN_STATE_SUCCEEDED: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]
    RUN_STATE_TIMED_OUT: _ClassVar[RunState]
    RUN_STATE_CANCELLED: _ClassVar[RunState]
    RUN_STATE_INTERRUPTED: _ClassVar[RunState]
    RUN_STATE_SKIPPED: _ClassVar[RunState]
    RUN_STATE_MISSED: _ClassVar[RunState]
    RUN_STATE_REJECTED: _ClassVar[RunState]

class Trigger(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIGGER_UNSPECIFIED: _ClassVar[Trigger]
    TRIGGER_MANUAL: _ClassVar[Trigger]
    TRIGGER_CRON: _ClassVar[Trigger]
    TRIGGER_CATCH_UP: _ClassVar[Trigger]
    TRIGGER_DEPENDENCY: _ClassVar[Trigger]
    TRIGGER_RETRY: _ClassVar[Trigger]

class WaitReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WAIT_REASON_UNSPECIFIED: _ClassVar[WaitReason]
    WAIT_REASON_SLOT: _ClassVar[WaitReason]
    WAIT_REASON_BACKOFF: _ClassVar[WaitReason]
    WAIT_REASON_DEPENDENCY: _ClassVar[WaitReason]
    WAIT_REASON_APPROVAL: _ClassVar[WaitReason]

class Stream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAM_UNSPECIFIED: _ClassVar[Stream]
    STREAM_STDOUT: _ClassVar[Stream]
    STREAM_STDERR: _ClassVar[Stream]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_ACTIVE: JobState
JOB_STATE_PAUSED: JobState
JOB_STATE_DISABLED: JobState
JOB_STATE_INVALID: JobState
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_QUEUED: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_RETRYING: RunState
RUN_STATE_SUCCEEDED: RunState
RUN_STATE_FAILED: RunState
RUN_STATE_TIMED_OUT: RunState
RUN_STATE_CANCELLED: RunState
RUN_STATE_INTERRUPTED: RunState
RUN_STATE_SKIPPED: RunState
RUN_STATE_MISSED: RunState
RUN_STATE_REJECTED: RunState
TRIGGER_UNSPECIFIED: Trigger
TRIGGER_MANUAL: Trigger
TRIGGER_CRON: Trigger
TRIGGER_CATCH_UP: Trigger
TRIGGER_DEPENDENCY: Trigger
TRIGGER_RETRY: Trigger
WAIT_REASON_UNSPECIFIED: WaitReason
WAIT_REASON_SLOT: WaitReason
WAIT_REASON_BACKOFF: WaitReason
WAIT_REASON_DEPENDENCY: WaitReason
WAIT_REASON_APPROVAL: WaitReason
STREAM_UNSPECIFIED: Stream
STREAM_STDOUT: Stream
STREAM_STDERR: Stream

class Schedule(_message.Message):
    __slots__ = ("cron", "timezone", "misfire_grace_seconds", "coalesce", "catch_up")
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    MISFIRE_GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COALESCE_FIELD_NUMBER: _ClassVar[int]
    CATCH_UP_FIELD_NUMBER: _ClassVar[int]
    cron: str
    timezone: str
    misfire_grace_seconds: float
    coalesce: bool
    catch_up: bool
    def __init__(self, cron: _Optional[str] = ..., timezone: _Optional[str] = ..., misfire_grace_seconds: _Optional[float] = ..., coalesce: _Optional[bool] = ..., catch_up: _Optional[bool] = ...) -> None: ...

class SpecError(_message.Message):
    __slots__ = ("code", "job", "file", "field", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    job: str
    file: str
    field: str
    message: str
    def __init__(self, code: _Optional[str] = ..., job: _Optional[str] = ..., file: _Optional[str] = ..., field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "state", "description", "schedule", "next_run_at", "last_run", "error", "consecutive_failures", "file", "command", "shell", "spec_digest", "enabled_in_spec", "state_changed_at", "state_changed_by", "state_reason", "paused_until", "overdue", "overdue_since", "success_within_seconds")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    SHELL_FIELD_NUMBER: _ClassVar[int]
    SPEC_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ENABLED_IN_SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGED_BY_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    PAUSED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_SINCE_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_WITHIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: JobState
    description: str
    schedule: Schedule
    next_run_at: _timestamp_pb2.Timestamp
    last_run: Run
    error: SpecError
    consecutive_failures: int
    file: str
    command: _containers.RepeatedScalarFieldContainer[str]
    shell: bool
    spec_digest: str
    enabled_in_spec: bool
    state_changed_at: _timestamp_pb2.Timestamp
    state_changed_by: str
    state_reason: str
    paused_until: _timestamp_pb2.Timestamp
    overdue: bool
    overdue_since: _timestamp_pb2.Timestamp
    success_within_seconds: float
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., description: _Optional[str] = ..., schedule: _Optional[_Union[Schedule, _Mapping]] = ..., next_run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_run: _Optional[_Union[Run, _Mapping]] = ..., error: _Optional[_Union[SpecError, _Mapping]] = ..., consecutive_failures: _Optional[int] = ..., file: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., shell: _Optional[bool] = ..., spec_digest: _Optional[str] = ..., enabled_in_spec: _Optional[bool] = ..., state_changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state_changed_by: _Optional[str] = ..., state_reason: _Optional[str] = ..., paused_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overdue: _Optional[bool] = ..., overdue_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., success_within_seconds: _Optional[float] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: str
    def __init__(self, job: _Optional[str] = ...) -> None: ...

class JobRequest(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: str
    def __init__(self, job: _Optional[str] = ...) -> None: ...

class PauseJobRequest(_message.Message):
    __slots__ = ("job", "until", "reason")
    JOB_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job: str
    until: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, job: _Optional[str] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ResumeJobRequest(_message.Message):
    __slots__ = ("job", "catch_up")
    JOB_FIELD_NUMBER: _ClassVar[int]
    CATCH_UP_FIELD_NUMBER: _ClassVar[int]
    job: str
    catch_up: bool
    def __init__(self, job: _Optional[str] = ..., catch_up: _Optional[bool] = ...) -> None: ...

class ForgetJobStateResponse(_message.Message):
    __slots__ = ("path", "removed", "bytes_freed")
    PATH_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    BYTES_FREED_FIELD_NUMBER: _ClassVar[int]
    path: str
    removed: bool
    bytes_freed: int
    def __init__(self, path: _Optional[str] = ..., removed: _Optional[bool] = ..., bytes_freed: _Optional[int] = ...) -> None: ...

class GetGraphRequest(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: str
    def __init__(self, job: _Optional[str] = ...) -> None: ...

class GraphJob(_message.Message):
    __slots__ = ("id", "state", "after", "requires")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: JobState
    after: _containers.RepeatedScalarFieldContainer[str]
    requires: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., after: _Optional[_Iterable[str]] = ..., requires: _Optional[_Iterable[str]] = ...) -> None: ...

class Graph(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[GraphJob]
    def __init__(self, jobs: _Optional[_Iterable[_Union[GraphJob, _Mapping]]] = ...) -> None: ...

class RunJobRequest(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: str
    def __init__(self, job: _Optional[str] = ...) -> None: ...

class Attempt(_message.Message):
    __slots__ = ("number", "started_at", "finished_at", "exit_code", "signal", "pid", "output_bytes", "dropped_bytes", "error", "timed_out")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_BYTES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    number: int
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    exit_code: int
    signal: int
    pid: int
    output_bytes: int
    dropped_bytes: int
    error: str
    timed_out: bool
    def __init__(self, number: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., pid: _Optional[int] = ..., output_bytes: _Optional[int] = ..., dropped_bytes: _Optional[int] = ..., error: _Optional[str] = ..., timed_out: _Optional[bool] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("ref", "job", "n", "state", "trigger", "wait_reason", "attempts", "exit_code", "signal", "scheduled_at", "queued_at", "started_at", "finished_at", "next_attempt_at", "artifacts", "reason", "attempt_list", "spec_digest", "max_attempts", "retry_of", "upstream", "wait_detail", "waiting_since", "decision", "host")
    REF_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    WAIT_REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    QUEUED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_LIST_FIELD_NUMBER: _ClassVar[int]
    SPEC_DIGEST_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    RETRY_OF_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    WAIT_DETAIL_FIELD_NUMBER: _ClassVar[int]
    WAITING_SINCE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    ref: str
    job: str
    n: int
    state: RunState
    trigger: Trigger
    wait_reason: WaitReason
    attempts: int
    exit_code: int
    signal: int
    scheduled_at: _timestamp_pb2.Timestamp
    queued_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    next_attempt_at: _timestamp_pb2.Timestamp
    artifacts: str
    reason: str
    attempt_list: _containers.RepeatedCompositeFieldContainer[Attempt]
    spec_digest: str
    max_attempts: int
    retry_of: str
    upstream: str
    wait_detail: str
    waiting_since: _timestamp_pb2.Timestamp
    decision: Decision
    host: str
    def __init__(self, ref: _Optional[str] = ..., job: _Optional[str] = ..., n: _Optional[int] = ..., state: _Optional[_Union[RunState, str]] = ..., trigger: _Optional[_Union[Trigger, str]] = ..., wait_reason: _Optional[_Union[WaitReason, str]] = ..., attempts: _Optional[int] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., queued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., artifacts: _Optional[str] = ..., reason: _Optional[str] = ..., attempt_list: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ..., spec_digest: _Optional[str] = ..., max_attempts: _Optional[int] = ..., retry_of: _Optional[str] = ..., upstream: _Optional[str] = ..., wait_detail: _Optional[str] = ..., waiting_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decision: _Optional[_Union[Decision, _Mapping]] = ..., host: _Optional[str] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("approved", "by", "at", "comment", "client")
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    approved: bool
    by: str
    at: _timestamp_pb2.Timestamp
    comment: str
    client: str
    def __init__(self, approved: _Optional[bool] = ..., by: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., comment: _Optional[str] = ..., client: _Optional[str] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: str
    def __init__(self, run: _Optional[str] = ...) -> None: ...

class RetryRunRequest(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: str
    def __init__(self, run: _Optional[str] = ...) -> None: ...

class DecideRunRequest(_message.Message):
    __slots__ = ("run", "comment")
    RUN_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    run: str
    comment: str
    def __init__(self, run: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("job", "limit", "cursor", "states")
    JOB_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    job: str
    limit: int
    cursor: str
    states: _containers.RepeatedScalarFieldContainer[RunState]
    def __init__(self, job: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ..., states: _Optional[_Iterable[_Union[RunState, str]]] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_cursor")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    next_cursor: str
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: str
    def __init__(self, run: _Optional[str] = ...) -> None: ...

class TailRequest(_message.Message):
    __slots__ = ("job", "run", "from_start", "last_lines", "offset", "follow")
    JOB_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    FROM_START_FIELD_NUMBER: _ClassVar[int]
    LAST_LINES_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    job: str
    run: int
    from_start: bool
    last_lines: int
    offset: int
    follow: bool
    def __init__(self, job: _Optional[str] = ..., run: _Optional[int] = ..., from_start: _Optional[bool] = ..., last_lines: _Optional[int] = ..., offset: _Optional[int] = ..., follow: _Optional[bool] = ...) -> None: ...

class OutputChunk(_message.Message):
    __slots__ = ("data", "stream", "read_at", "offset", "attempt")
    DATA_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    READ_AT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    stream: Stream
    read_at: _timestamp_pb2.Timestamp
    offset: int
    attempt: int
    def __init__(self, data: _Optional[bytes] = ..., stream: _Optional[_Union[Stream, str]] = ..., read_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., offset: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class TailStart(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class TailEnd(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class TailAttempt(_message.Message):
    __slots__ = ("number", "run")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    number: int
    run: Run
    def __init__(self, number: _Optional[int] = ..., run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class TailMessage(_message.Message):
    __slots__ = ("start", "chunk", "end", "attempt")
    START_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    start: TailStart
    chunk: OutputChunk
    end: TailEnd
    attempt: TailAttempt
    def __init__(self, start: _Optional[_Union[TailStart, _Mapping]] = ..., chunk: _Optional[_Union[OutputChunk, _Mapping]] = ..., end: _Optional[_Union[TailEnd, _Mapping]] = ..., attempt: _Optional[_Union[TailAttempt, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("seq", "ts", "type", "job", "run", "attrs")
    class AttrsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    ATTRS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    ts: _timestamp_pb2.Timestamp
    type: str
    job: str
    run: str
    attrs: _containers.ScalarMap[str, str]
    def __init__(self, seq: _Optional[int] = ..., ts: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[str] = ..., job: _Optional[str] = ..., run: _Optional[str] = ..., attrs: _Optional[_Mapping[str, str]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("job", "after_seq", "follow", "last")
    JOB_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    job: str
    after_seq: int
    follow: bool
    last: int
    def __init__(self, job: _Optional[str] = ..., after_seq: _Optional[int] = ..., follow: _Optional[bool] = ..., last: _Optional[int] = ...) -> None: ...

class NextRunTimesRequest(_message.Message):
    __slots__ = ("job", "count")
    JOB_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    job: str
    count: int
    def __init__(self, job: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class NextRunTimesResponse(_message.Message):
    __slots__ = ("job", "times")
    JOB_FIELD_NUMBER: _ClassVar[int]
    TIMES_FIELD_NUMBER: _ClassVar[int]
    job: str
    times: _containers.RepeatedCompositeFieldContainer[_timestamp_pb2.Timestamp]
    def __init__(self, job: _Optional[str] = ..., times: _Optional[_Iterable[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]]] = ...) -> None: ...

class GetHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Health(_message.Message):
    __slots__ = ("version", "pid", "lock_file", "socket", "started_at", "uptime_seconds", "scheduler_state", "last_tick", "jobs_active", "jobs_paused", "jobs_disabled", "jobs_invalid", "invalid_specs", "runs_active", "runs_queued", "followers", "store_path", "store_bytes", "max_concurrent_runs", "jobs_dir", "state_dir", "degraded", "warnings", "host", "labels", "hosts", "leader")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    LOCK_FILE_FIELD_NUMBER: _ClassVar[int]
    SOCKET_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_TICK_FIELD_NUMBER: _ClassVar[int]
    JOBS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    JOBS_PAUSED_FIELD_NUMBER: _ClassVar[int]
    JOBS_DISABLED_FIELD_NUMBER: _ClassVar[int]
    JOBS_INVALID_FIELD_NUMBER: _ClassVar[int]
    INVALID_SPECS_FIELD_NUMBER: _ClassVar[int]
    RUNS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    RUNS_QUEUED_FIELD_NUMBER: _ClassVar[int]
    FOLLOWERS_FIELD_NUMBER: _ClassVar[int]
    STORE_PATH_FIELD_NUMBER: _ClassVar[int]
    STORE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_RUNS_FIELD_NUMBER: _ClassVar[int]
    JOBS_DIR_FIELD_NUMBER: _ClassVar[int]
    STATE_DIR_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    version: str
    pid: int
    lock_file: str
    socket: str
    started_at: _timestamp_pb2.Timestamp
    uptime_seconds: float
    scheduler_state: str
    last_tick: _timestamp_pb2.Timestamp
    jobs_active: int
    jobs_paused: int
    jobs_disabled: int
    jobs_invalid: int
    invalid_specs: _containers.RepeatedCompositeFieldContainer[SpecError]
    runs_active: int
    runs_queued: int
    followers: int
    store_path: str
    store_bytes: int
    max_concurrent_runs: int
    jobs_dir: str
    state_dir: str
    degraded: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    host: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    hosts: _containers.RepeatedCompositeFieldContainer[Host]
    leader: str
    def __init__(self, version: _Optional[str] = ..., pid: _Optional[int] = ..., lock_file: _Optional[str] = ..., socket: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uptime_seconds: _Optional[float] = ..., scheduler_state: _Optional[str] = ..., last_tick: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., jobs_active: _Optional[int] = ..., jobs_paused: _Optional[int] = ..., jobs_disabled: _Optional[int] = ..., jobs_invalid: _Optional[int] = ..., invalid_specs: _Optional[_Iterable[_Union[SpecError, _Mapping]]] = ..., runs_active: _Optional[int] = ..., runs_queued: _Optional[int] = ..., followers: _Optional[int] = ..., store_path: _Optional[str] = ..., store_bytes: _Optional[int] = ..., max_concurrent_runs: _Optional[int] = ..., jobs_dir: _Optional[str] = ..., state_dir: _Optional[str] = ..., degraded: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ..., host: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., hosts: _Optional[_Iterable[_Union[Host, _Mapping]]] = ..., leader: _Optional[str] = ...) -> None: ...

class Host(_message.Message):
    __slots__ = ("name", "labels", "pid", "started_at", "heartbeat_at", "heartbeat_age_seconds", "stopped", "this_host")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_AT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    THIS_HOST_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    pid: int
    started_at: _timestamp_pb2.Timestamp
    heartbeat_at: _timestamp_pb2.Timestamp
    heartbeat_age_seconds: float
    stopped: bool
    this_host: bool
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., pid: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_age_seconds: _Optional[float] = ..., stopped: _Optional[bool] = ..., this_host: _Optional[bool] = ...) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadResponse(_message.Message):
    __slots__ = ("added", "changed", "removed", "errors")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    added: _containers.RepeatedScalarFieldContainer[str]
    changed: _containers.RepeatedScalarFieldContainer[str]
    removed: _containers.RepeatedScalarFieldContainer[str]
    errors: _containers.RepeatedCompositeFieldContainer[SpecError]
    def __init__(self, added: _Optional[_Iterable[str]] = ..., changed: _Optional[_Iterable[str]] = ..., removed: _Optional[_Iterable[str]] = ..., errors: _Optional[_Iterable[_Union[SpecError, _Mapping]]] = ...) -> None: ...

class CollectGarbageRequest(_message.Message):
    __slots__ = ("keep_last", "older_than_seconds", "job", "dry_run")
    KEEP_LAST_FIELD_NUMBER: _ClassVar[int]
    OLDER_THAN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    keep_last: int
    older_than_seconds: float
    job: str
    dry_run: bool
    def __init__(self, keep_last: _Optional[int] = ..., older_than_seconds: _Optional[float] = ..., job: _Optional[str] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class CollectGarbageResponse(_message.Message):
    __slots__ = ("removed", "bytes_freed", "dry_run", "removed_count")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    BYTES_FREED_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    REMOVED_COUNT_FIELD_NUMBER: _ClassVar[int]
    removed: _containers.RepeatedScalarFieldContainer[str]
    bytes_freed: int
    dry_run: bool
    removed_count: int
    def __init__(self, removed: _Optional[_Iterable[str]] = ..., bytes_freed: _Optional[int] = ..., dry_run: _Optional[bool] = ..., removed_count: _Optional[int] = ...) -> None: ...

class GetMetricsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Metrics(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...
