"""The service's request bodies and answers as msgspec Structs.

Answers ignore fields they do not know, so a newer service never breaks an
older client; enumerations the service may grow (statuses, log sources) are
plain ``str`` for the same reason. ``tests/client/test_openapi_drift.py``
checks every Struct here against the service's OpenAPI document.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

Timestamp = datetime
"""A timestamp sent to the service; one without tzinfo is taken as UTC."""


class EvaluationStatus(StrEnum):
    """The statuses the service knows today (answers carry them as plain ``str``)."""

    SUBMITTED = "submitted"
    QUEUED = "queued"
    PROVISIONING = "provisioning"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


class ChangeKind(StrEnum):
    """The kinds of change the feed knows today (answers carry them as plain ``str``)."""

    CREATED = "created"
    UPDATED = "updated"
    STATUS_CHANGED = "status_changed"
    DELETED = "deleted"
    PURGED = "purged"
    LOG_APPENDED = "log_appended"
    EVENT_RECORDED = "event_recorded"


class Answer(msgspec.Struct, kw_only=True):
    """Base of every answer: unknown fields are ignored (forward compatibility)."""


# ---------------------------------------------------------------- answers


class PayloadStorage(Answer):
    """Where an evaluation's output and error live (``_storage_info``)."""

    output_location: str | None
    output_size: int | None
    output_truncated: bool
    output_compressed: bool
    error_location: str | None
    error_size: int | None
    error_truncated: bool


class Evaluation(Answer):
    """A stored evaluation; ``output``/``error`` are previews when truncated."""

    id: str
    code: str
    language: str
    status: str
    output: str | None
    error: str | None
    output_truncated: bool
    error_truncated: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    runtime_ms: int | None
    metadata: dict[str, Any]
    celery_task_id: str | None
    retries: int
    executor_id: str | None
    container_id: str | None
    exit_code: int | None
    timeout: int | None
    last_update: datetime | None
    retry_message: str | None
    final_failure: bool
    version: int
    storage_info: PayloadStorage | None = msgspec.field(default=None, name="_storage_info")

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


class EvaluationFields(Answer):
    """An evaluation read with ``fields=``: ``id`` and the fields asked for; others UNSET."""

    id: str
    code: str | UnsetType = UNSET
    language: str | UnsetType = UNSET
    status: str | UnsetType = UNSET
    output: str | None | UnsetType = UNSET
    error: str | None | UnsetType = UNSET
    output_truncated: bool | UnsetType = UNSET
    error_truncated: bool | UnsetType = UNSET
    created_at: datetime | UnsetType = UNSET
    updated_at: datetime | UnsetType = UNSET
    started_at: datetime | None | UnsetType = UNSET
    completed_at: datetime | None | UnsetType = UNSET
    runtime_ms: int | None | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    celery_task_id: str | None | UnsetType = UNSET
    retries: int | UnsetType = UNSET
    executor_id: str | None | UnsetType = UNSET
    container_id: str | None | UnsetType = UNSET
    exit_code: int | None | UnsetType = UNSET
    timeout: int | None | UnsetType = UNSET
    last_update: datetime | None | UnsetType = UNSET
    retry_message: str | None | UnsetType = UNSET
    final_failure: bool | UnsetType = UNSET
    version: int | UnsetType = UNSET


class EvaluationPage(Answer):
    """One page of ``GET /evaluations``, newest first; pass ``next_cursor`` back for the next."""

    evaluations: list[Evaluation]
    total: int
    limit: int
    offset: int
    has_more: bool
    next_cursor: str | None


class EvaluationFieldsPage(Answer):
    """A page read with ``fields=``."""

    evaluations: list[EvaluationFields]
    total: int
    limit: int
    offset: int
    has_more: bool
    next_cursor: str | None


class Match(Answer):
    """Where a search hit matched: one per field that holds the text (its first match).

    ``offset`` counts UTF-8 bytes into the field (a ``Range`` on the output or error, or
    the log's ``offset``, reads on from there); ``highlight`` is the match's span in
    ``excerpt``, in characters; ``event_id`` names the event whose message matched.
    """

    field: str
    offset: int
    excerpt: str
    highlight: tuple[int, int]
    event_id: str | None = None


class SearchHit(EvaluationFields):
    """An evaluation a search found (the fields asked for, or all), and where it matched."""

    matches: list[Match] = msgspec.field(default_factory=list, name="_matches")


class SearchPage(Answer):
    """One page of search hits, newest first; pass ``next_cursor`` back for the next."""

    evaluations: list[SearchHit]
    total: int
    limit: int
    offset: int
    has_more: bool
    next_cursor: str | None


class EvaluationDeleted(Answer):
    message: str
    id: str


class RunningEvaluation(Answer):
    """An evaluation in ``provisioning`` or ``running``, as the running registry holds it."""

    eval_id: str
    status: str
    executor_id: str | None
    container_id: str | None
    started_at: datetime | None
    timeout: int | None


class RunningList(Answer):
    running_evaluations: list[RunningEvaluation]
    count: int


class CeleryUpdateResult(Answer):
    """``applied: false`` (with ``reason``) when the state machine ignored a late report."""

    applied: bool
    reason: str | None
    evaluation: Evaluation


class LogAppend(Answer):
    """Where an appended chunk went, in bytes of the log."""

    eval_id: str
    offset: int
    size: int
    next_offset: int
    status: str = "success"


class Logs(Answer):
    """``GET …/logs``: ``content`` is the log from the offset asked for."""

    eval_id: str
    output: str
    error: str
    is_running: bool
    exit_code: int | None
    status: str
    started_at: datetime | None
    completed_at: datetime | None
    runtime_ms: int | None
    last_update: datetime | None
    source: str
    content: str
    offset: int
    next_offset: int
    created_at: datetime
    executor_id: str | None
    container_id: str | None


class Event(Answer):
    type: str
    timestamp: datetime
    message: str | None
    metadata: dict[str, Any]
    event_id: str
    evaluation_id: str


class TimelineEntry(Answer):
    timestamp: datetime
    event: str
    details: str


class CompleteMetadata(Answer):
    total_events: int
    execution_time_ms: int | None
    output_size: int
    error_size: int


class CompleteEvaluation(Answer):
    """Every artifact of one evaluation; the record's output and error are whole."""

    evaluation: Evaluation
    events: list[Event]
    storage_locations: dict[str, str]
    timeline: list[TimelineEntry]
    metadata: CompleteMetadata
    logs: str


class RuntimeStatistics(Answer):
    count: int
    average_ms: float | None
    p50_ms: int | None
    p95_ms: int | None
    p99_ms: int | None
    max_ms: int | None


class StatisticsStorage(Answer):
    primary_backend: str
    cache_enabled: bool
    large_output_storage: str
    large_outputs_externalized: int


class Statistics(Answer):
    total_evaluations: int
    by_status: dict[str, int]
    by_language: dict[str, int]
    average_runtime_ms: float | None
    success_rate: float
    last_24h_count: int
    peak_hour: datetime | None
    storage_info: StatisticsStorage
    runtime: RuntimeStatistics
    bytes_by_location: dict[str, int]
    payloads_by_location: dict[str, int]
    events: int
    log_bytes: int


class Health(Answer):
    """``status`` is ``healthy``, ``degraded`` or ``unavailable`` (the last answered 503)."""

    status: str
    backends: dict[str, Any]
    pending_replay: int = 0
    oldest_pending_age_s: float | None = None
    fallback_durable: bool | None = None


class StorageThresholds(Answer):
    inline_threshold: int
    preview_size: int
    compression_threshold: int


class StorageInfo(Answer):
    """How the instance stores data (``GET /storage-info``)."""

    primary_backend: str
    fallback_backend: str | None
    cache_enabled: bool
    large_output_storage: str
    storage_thresholds: StorageThresholds
    backends_available: list[str]
    database: str
    cache: str
    file_storage_path: str
    large_file_threshold: int
    compression_threshold: int
    preview_size: int
    cache_ttl: int
    max_request_bytes: int


class Change(Answer):
    """One committed write of one evaluation; ``cursor`` resumes the feed right after it.

    ``status`` and ``version`` are the record's after the write, where the write knew
    them; ``fields`` names what an update changed, ``sizes`` the bytes it wrote.
    """

    cursor: str
    kind: str
    evaluation_id: str
    at: datetime
    status: str | None = None
    version: int | None = None
    fields: list[str] = msgspec.field(default_factory=list)
    sizes: dict[str, int] = msgspec.field(default_factory=dict)


class ChangePage(Answer):
    """A page of ``GET /changes``: pass ``next_cursor`` back as ``after`` while ``more``
    (a filtered page may be short, even empty, and still have ``more``)."""

    items: list[Change]
    next_cursor: str | None
    more: bool


class LogPiece(Answer):
    """A message of a log stream: the log from byte ``offset`` to ``next_offset``."""

    offset: int
    next_offset: int
    content: str


class WriteAccepted(Answer):
    """A 202: the write is durable in the service's failover journal, applied at replay."""

    evaluation_id: str
    journal_entry: str
    detail: str


class FieldProblem(Answer):
    field: str
    message: str


class Problem(Answer):
    """An RFC 9457 problem; lenient, because a proxy may answer an error of its own."""

    type: str = "about:blank"
    title: str = ""
    status: int = 0
    detail: str = ""
    errors: list[FieldProblem] = msgspec.field(default_factory=list)
    field: str | None = None
    latest: str | None = None  # a 410 of the change feed: where to go on
    backend: str | None = None  # a 503: the storage backend that could not serve
    cause: str | None = None  # a 503: connection-slots, connection-pool or write-conflict
