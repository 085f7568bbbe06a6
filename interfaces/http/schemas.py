"""Request and response bodies of the REST API.

Unknown fields in a request body are rejected (422, naming the field) rather
than silently ignored: a typo such as ``"stauts"`` must not look like success.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from application.errors import InvalidRequestError
from application.ports.blob_urls import SignedUrl
from application.queries import (
    TTL_BUCKET_NAMES,
    BackendReport,
    BackendState,
    Projection,
    RunningInfo,
    RuntimeStatistics,
)
from application.use_cases.evaluation_content import CompleteEvaluation, TimelineEntry
from application.use_cases.logs import EvaluationLogs
from application.use_cases.statistics import StatisticsReport
from application.use_cases.storage_report import (
    CACHE,
    DatabaseDetails,
    FileDetails,
    StorageConfiguration,
    StorageOverview,
    StorageSummary,
)
from domain.evaluation import Evaluation, ensure_storable_text
from domain.status import EvaluationStatus
from domain.timeline import EvaluationEvent

Language = Annotated[str, Meta(min_length=1, max_length=50, examples=["python"])]
ShortText = Annotated[str, Meta(max_length=255)]
EventType = Annotated[str, Meta(min_length=1, max_length=100, examples=["container_started"])]
NonNegative = Annotated[int, Meta(ge=0, le=2**31 - 1)]  # an INTEGER column
Metadata = dict[str, Any]


class RequestBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body whose fields are all known (a typo is a 422)."""


class RecordBody(msgspec.Struct, kw_only=True):
    """Base of the bodies that write a record: an unknown field is kept, not refused.

    The controller stores what it does not know in the record's metadata under
    ``_unrecognized`` and names it in ``X-Unrecognized-Fields`` (ADR 0013).
    """


class CreateEvaluationBody(RecordBody):
    code: str
    id: Annotated[str, Meta(examples=["eval_20240701_120000_abc123"])] | None = None
    language: Language = "python"
    status: EvaluationStatus = EvaluationStatus.QUEUED
    metadata: Metadata = msgspec.field(default_factory=dict)
    celery_task_id: ShortText | None = None
    executor_id: ShortText | None = None
    container_id: ShortText | None = None


ExitCode = Annotated[int, Meta(ge=-(2**31), le=2**31 - 1)]


class UpdateEvaluationBody(RecordBody):
    status: EvaluationStatus | UnsetType = UNSET
    output: str | None | UnsetType = UNSET
    error: str | None | UnsetType = UNSET
    runtime_ms: NonNegative | None | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET
    started_at: datetime | None | UnsetType = UNSET
    completed_at: datetime | None | UnsetType = UNSET
    executor_id: ShortText | None | UnsetType = UNSET
    container_id: ShortText | None | UnsetType = UNSET
    celery_task_id: ShortText | None | UnsetType = UNSET
    retries: NonNegative | UnsetType = UNSET
    exit_code: ExitCode | None | UnsetType = UNSET
    timeout: Annotated[NonNegative, Meta(description="seconds")] | None | UnsetType = UNSET
    last_update: datetime | None | UnsetType = UNSET
    retry_message: str | None | UnsetType = UNSET
    final_failure: bool | UnsetType = UNSET


class CeleryUpdateBody(RecordBody):
    task_state: Annotated[str, Meta(examples=["SUCCESS"])]
    celery_task_id: ShortText | None = None
    retries: NonNegative | UnsetType = UNSET
    output: str | None | UnsetType = UNSET
    error: str | None | UnsetType = UNSET


class AppendLogBody(RequestBody):
    """A chunk for the log, in the platform worker's body.

    ``append`` may only be true: the log is append-only, so a rewrite (``false``)
    is a 422 naming ``append``. ``last_update`` (else ``timestamp``, else the
    time of the append) becomes the record's ``last_update``.
    """

    content: str
    append: Annotated[bool, Meta(description="must be true: the log is append-only")] = True
    timestamp: datetime | None = None
    last_update: datetime | None = None

    def written_at(self) -> datetime | None:
        """When the writer produced the content, as it says; refuses ``append: false``."""
        if not self.append:
            raise InvalidRequestError(
                "append", "must be true: the log is append-only and cannot be replaced"
            )
        return self.last_update if self.last_update is not None else self.timestamp


class AddEventBody(RequestBody):
    """One of ``type`` (the platform's name) or ``event_type`` (the earlier one) is required."""

    type: EventType | UnsetType = UNSET
    event_type: (
        Annotated[EventType, Meta(description="the earlier name of `type`, still accepted")]
        | UnsetType
    ) = UNSET
    message: str | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)
    timestamp: datetime | None = None
    event_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None

    def kind(self) -> str:
        """The event's type, under whichever of its two names the client sent.

        Checked here so that an error names the field as the client spelled it.
        """
        if isinstance(self.type, str):
            if isinstance(self.event_type, str) and self.event_type != self.type:
                raise InvalidRequestError("type", "differs from event_type; send one of them")
            return ensure_storable_text("type", self.type)
        if isinstance(self.event_type, str):
            return ensure_storable_text("event_type", self.event_type)
        raise InvalidRequestError("type", "required")


class StorageInfo(msgspec.Struct, kw_only=True):
    output_location: str | None
    output_size: int | None
    output_truncated: bool
    output_compressed: bool
    error_location: str | None
    error_size: int | None
    error_truncated: bool

    @classmethod
    def of(cls, evaluation: Evaluation) -> "StorageInfo":
        output, error = evaluation.output, evaluation.error
        return cls(
            output_location=output.location.value if output else None,
            output_size=output.size if output else None,
            output_truncated=output.truncated if output else False,
            output_compressed=output.compressed if output else False,
            error_location=error.location.value if error else None,
            error_size=error.size if error else None,
            error_truncated=error.truncated if error else False,
        )


class EvaluationBody(msgspec.Struct, kw_only=True):
    """A stored evaluation. ``output``/``error`` are previews when truncated."""

    id: str
    code: str
    language: str
    status: EvaluationStatus
    output: str | None
    error: str | None
    output_truncated: bool
    error_truncated: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    runtime_ms: int | None
    metadata: Metadata
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
    storage_info: StorageInfo | UnsetType = msgspec.field(default=UNSET, name="_storage_info")

    @classmethod
    def of(cls, evaluation: Evaluation, *, storage_info: bool = False) -> "EvaluationBody":
        output, error = evaluation.output, evaluation.error
        return cls(
            id=evaluation.id,
            code=evaluation.code,
            language=evaluation.language,
            status=evaluation.status,
            output=output.text if output else None,
            error=error.text if error else None,
            output_truncated=output.truncated if output else False,
            error_truncated=error.truncated if error else False,
            created_at=evaluation.created_at,
            updated_at=evaluation.updated_at,
            started_at=evaluation.started_at,
            completed_at=evaluation.completed_at,
            runtime_ms=evaluation.runtime_ms,
            metadata=evaluation.metadata,
            celery_task_id=evaluation.celery_task_id,
            retries=evaluation.retries,
            executor_id=evaluation.executor_id,
            container_id=evaluation.container_id,
            exit_code=evaluation.exit_code,
            timeout=evaluation.timeout,
            last_update=evaluation.last_update,
            retry_message=evaluation.retry_message,
            final_failure=evaluation.final_failure,
            version=evaluation.version,
            storage_info=StorageInfo.of(evaluation) if storage_info else UNSET,
        )


# Names ``fields=`` accepts (those of ``EvaluationBody``) and the record field each reads.
API_FIELDS: dict[str, str] = {
    **{
        name: name
        for name in EvaluationBody.__struct_fields__
        if name not in {"storage_info", "output_truncated", "error_truncated"}
    },
    "output_truncated": "output",
    "error_truncated": "error",
}


class EvaluationFieldsBody(msgspec.Struct, kw_only=True):
    """The fields of a stored evaluation named in ``fields=`` (``id`` always)."""

    id: str
    code: str | UnsetType = UNSET
    language: str | UnsetType = UNSET
    status: EvaluationStatus | UnsetType = UNSET
    output: str | None | UnsetType = UNSET
    error: str | None | UnsetType = UNSET
    output_truncated: bool | UnsetType = UNSET
    error_truncated: bool | UnsetType = UNSET
    created_at: datetime | UnsetType = UNSET
    updated_at: datetime | UnsetType = UNSET
    started_at: datetime | None | UnsetType = UNSET
    completed_at: datetime | None | UnsetType = UNSET
    runtime_ms: int | None | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET
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

    @classmethod
    def of(cls, values: Projection, names: frozenset[str]) -> "EvaluationFieldsBody":
        body: dict[str, Any] = {}
        for name in names:
            value = values[API_FIELDS[name]]
            if name in ("output", "error"):
                value = value.text if value is not None else None
            elif name in ("output_truncated", "error_truncated"):
                value = value.truncated if value is not None else False
            body[name] = value
        body["id"] = values["id"]
        return cls(**body)


class EvaluationFieldsList(msgspec.Struct, kw_only=True):
    """A page of evaluations with only the fields named in ``fields=``."""

    evaluations: list[EvaluationFieldsBody]
    total: int
    limit: int
    offset: int
    has_more: bool
    next_cursor: str | None


class EvaluationList(msgspec.Struct, kw_only=True):
    """A page of evaluations, newest first.

    ``total`` counts every match (exact, from counters); ``has_more`` says a
    next page exists. Page on with ``offset``, or pass ``next_cursor`` back as
    ``cursor`` (stable under inserts).
    """

    evaluations: list[EvaluationBody]
    total: int
    limit: int
    offset: int
    has_more: bool
    next_cursor: str | None


class RunningBody(msgspec.Struct, kw_only=True):
    """An evaluation holding a container; ``executor_id`` is the job name (the platform's)."""

    eval_id: str
    status: EvaluationStatus
    executor_id: str | None
    container_id: str | None
    started_at: datetime | None
    timeout: Annotated[int | None, Meta(description="seconds")]

    @classmethod
    def of(cls, info: RunningInfo) -> "RunningBody":
        return cls(
            eval_id=info.evaluation_id,
            status=info.status,
            executor_id=info.executor_id,
            container_id=info.container_id,
            started_at=info.started_at,
            timeout=info.timeout,
        )


class RunningList(msgspec.Struct, kw_only=True):
    running_evaluations: list[RunningBody]
    count: int


class LogAppended(msgspec.Struct, kw_only=True):
    """Where the chunk went: send ``next_offset`` back as ``?offset=`` to tail."""

    status: Literal["success"] = "success"
    eval_id: str
    offset: int
    size: int
    next_offset: int


# Where ``GET …/logs`` found the log text: the platform's two names, plus this service's.
LogSourceName = Literal["redis_cache", "memory_cache", "database", "journal"]


class LogBody(msgspec.Struct, kw_only=True):
    """An evaluation's log and state, in the platform's shape, plus byte offsets for tailing.

    ``output`` is the record's output when it has one, else the log text;
    ``content`` is the log from ``offset`` (send ``next_offset`` back as
    ``?offset=`` to tail). ``last_update`` falls back to ``started_at``.
    """

    eval_id: str
    output: str
    error: str
    is_running: bool
    exit_code: int | None
    status: EvaluationStatus
    started_at: datetime | None
    completed_at: datetime | None
    runtime_ms: int | None
    last_update: datetime | None
    source: LogSourceName
    content: str
    offset: int
    next_offset: int
    created_at: datetime
    executor_id: str | None
    container_id: str | None

    @classmethod
    def of(cls, logs: EvaluationLogs, source: LogSourceName) -> "LogBody":
        evaluation, log = logs.evaluation, logs.log
        return cls(
            eval_id=evaluation.id,
            output=evaluation.output.text if evaluation.output is not None else logs.text,
            error=evaluation.error.text if evaluation.error is not None else "",
            is_running=evaluation.status.is_active,
            exit_code=evaluation.exit_code,
            status=evaluation.status,
            started_at=evaluation.started_at,
            completed_at=evaluation.completed_at,
            runtime_ms=evaluation.runtime_ms,
            last_update=evaluation.last_update or evaluation.started_at,
            source=source,
            content=log.content,
            offset=log.offset,
            next_offset=log.next_offset,
            created_at=evaluation.created_at,
            executor_id=evaluation.executor_id,
            container_id=evaluation.container_id,
        )


class EventBody(msgspec.Struct, kw_only=True):
    """One entry of the timeline, in the platform's shape (``type``) plus its ids."""

    type: str
    timestamp: datetime
    message: str | None
    metadata: Metadata
    event_id: str
    evaluation_id: str

    @classmethod
    def of(cls, event: EvaluationEvent) -> "EventBody":
        return cls(
            type=event.event_type,
            timestamp=event.timestamp,
            message=event.message,
            metadata=event.metadata,
            event_id=event.event_id,
            evaluation_id=event.evaluation_id,
        )


class EvaluationDeleted(msgspec.Struct, kw_only=True):
    """The answer to a delete: the platform reads ``message``."""

    message: str
    id: str


class PayloadUrlBody(msgspec.Struct, frozen=True):
    """A presigned GET URL of an output in object storage."""

    url: str
    expires_at: datetime
    content_encoding: str | None = None  # "zstd": the URL serves the compressed form

    @classmethod
    def of(cls, signed: SignedUrl) -> "PayloadUrlBody":
        return cls(
            url=signed.url, expires_at=signed.expires_at, content_encoding=signed.content_encoding
        )


class CeleryUpdateResult(msgspec.Struct, kw_only=True):
    """``applied`` is false for a duplicate or late update: acknowledged, changed nothing."""

    applied: bool
    reason: str | None
    evaluation: EvaluationBody


# Storage, statistics and the complete view: the platform's field names first (its
# gateway and storage pages read them), then this service's further figures.


class StorageThresholdsBody(msgspec.Struct, kw_only=True):
    inline_threshold: int  # LARGE_FILE_THRESHOLD: larger outputs go to the blob store
    preview_size: int
    compression_threshold: int


class StorageInfoBody(msgspec.Struct, kw_only=True):
    """How this instance stores data, as configured at start (no secrets)."""

    primary_backend: str
    fallback_backend: str | None  # null: no fallback (FALLBACK_BACKEND=none)
    cache_enabled: bool
    large_output_storage: str  # "file", "s3" or "memory"
    storage_thresholds: StorageThresholdsBody
    backends_available: list[str]
    database: str
    cache: str  # "redis", "memory" or "disabled"
    file_storage_path: str
    large_file_threshold: int
    compression_threshold: int
    preview_size: int
    cache_ttl: int
    max_request_bytes: int

    @classmethod
    def of(cls, configuration: StorageConfiguration) -> "StorageInfoBody":
        c = configuration
        return cls(
            primary_backend=c.primary_backend,
            fallback_backend=None if c.fallback_backend == "none" else c.fallback_backend,
            cache_enabled=c.caching_enabled,
            large_output_storage=c.blob_backend,
            storage_thresholds=StorageThresholdsBody(
                inline_threshold=c.large_file_threshold,
                preview_size=c.preview_size,
                compression_threshold=c.compression_threshold,
            ),
            backends_available=c.backends_available,
            database=c.database,
            cache=c.cache,
            file_storage_path=c.file_storage_path,
            large_file_threshold=c.large_file_threshold,
            compression_threshold=c.compression_threshold,
            preview_size=c.preview_size,
            cache_ttl=c.cache_ttl,
            max_request_bytes=c.max_request_bytes,
        )


class StatisticsStorageBody(msgspec.Struct, kw_only=True):
    primary_backend: str
    cache_enabled: bool
    large_output_storage: str
    # Outputs and errors stored outside the database (files or S3).
    large_outputs_externalized: int


class StatisticsBody(msgspec.Struct, kw_only=True):
    """Aggregates over live evaluations: from counters kept in each write's transaction
    (constant time), and the last 24 hours from the ``created_at`` index."""

    total_evaluations: int
    by_status: dict[str, int]
    by_language: dict[str, int]
    average_runtime_ms: float | None
    success_rate: float  # completed / (completed + failed); 0.0 when neither
    last_24h_count: int
    peak_hour: datetime | None  # start of the UTC hour of the last 24 with most creations
    storage_info: StatisticsStorageBody
    runtime: RuntimeStatistics
    bytes_by_location: dict[str, int]
    payloads_by_location: dict[str, int]
    events: int
    log_bytes: int

    @classmethod
    def of(cls, report: StatisticsReport) -> "StatisticsBody":
        totals, configuration = report.totals, report.configuration
        outside = sum(n for where, n in totals.payloads_by_location.items() if where != "inline")
        return cls(
            total_evaluations=totals.total,
            by_status=totals.by_status,
            by_language=totals.by_language,
            average_runtime_ms=totals.runtime.average_ms,
            success_rate=report.success_rate,
            last_24h_count=report.last_24h_count,
            peak_hour=report.peak_hour,
            storage_info=StatisticsStorageBody(
                primary_backend=configuration.primary_backend,
                cache_enabled=configuration.caching_enabled,
                large_output_storage=configuration.blob_backend,
                large_outputs_externalized=outside,
            ),
            runtime=totals.runtime,
            bytes_by_location=totals.bytes_by_location,
            payloads_by_location=totals.payloads_by_location,
            events=totals.events,
            log_bytes=totals.log_bytes,
        )


# A measured figure as it is sent: a backend may report a flag (Redis' ``keys_exact``).
Figure = bool | float | str | None

# Metric names of this service -> the platform's, by the name it gives the backend.
_PLATFORM_METRICS: dict[str, dict[str, str]] = {
    "redis": {"hits": "cache_hits", "misses": "cache_misses"},
    "memory": {"hits": "cache_hits", "misses": "cache_misses", "evictions": "eviction_count"},
}
# Figures the detailed cache report holds that the overview of the cache shows.
_CACHE_FIGURES: dict[str, dict[str, str]] = {
    "redis": {"used_memory_bytes": "memory_used_bytes"},
    "memory": {"keys_eval": "cached_evaluations", "used_memory_bytes": "cache_size_bytes"},
}


def platform_name(report: BackendReport) -> str:
    """The platform's name of a backend: the cache is ``redis`` or ``memory`` by its kind."""
    if report.name == CACHE and report.type in _PLATFORM_METRICS:
        return report.type
    return report.name


def _ttl_stats(report: BackendReport) -> dict[str, int]:
    """Keys by remaining time to live, from the sample a detailed inspection took."""
    return {
        name: int(value)
        for name in (*TTL_BUCKET_NAMES, "ttl_sampled_keys")
        if isinstance(value := report.details.get(name), int | float)
    }


def platform_metrics(report: BackendReport) -> dict[str, Any]:
    """The report's metrics under the platform's names, with the cache's detailed figures."""
    name = platform_name(report)
    renamed = _PLATFORM_METRICS.get(name, {})
    metrics: dict[str, Any] = {
        renamed.get(key, key): value for key, value in report.metrics.items()
    }
    if name in _CACHE_FIGURES:
        for key, platform_key in _CACHE_FIGURES[name].items():
            metrics.pop(key, None)
            metrics[platform_key] = report.details.get(key, report.metrics.get(key))
        metrics["ttl_stats"] = _ttl_stats(report)
    return metrics


class BackendOverviewBody(msgspec.Struct, kw_only=True):
    type: str
    status: BackendState
    metrics: dict[str, Any]
    error: str | None


class StorageOverviewBody(msgspec.Struct, kw_only=True):
    """Every backend measured now. ``backends`` is keyed by the platform's names:
    ``database``, ``file``, ``redis`` or ``memory`` (the cache), ``fallback``."""

    status: BackendState
    summary: StorageSummary
    backends: dict[str, BackendOverviewBody]

    @classmethod
    def of(cls, overview: StorageOverview) -> "StorageOverviewBody":
        return cls(
            status=overview.status,
            summary=overview.summary,
            backends={
                platform_name(report): BackendOverviewBody(
                    type=report.type,
                    status=report.status,
                    metrics=platform_metrics(report),
                    error=report.error,
                )
                for report in overview.backends.values()
            },
        )


class EvaluationsTableBody(msgspec.Struct, kw_only=True):
    count: int
    by_status: dict[str, int]
    columns: list[str]


class TableBody(msgspec.Struct, kw_only=True):
    count: int
    columns: list[str]


class DatabaseTablesBody(msgspec.Struct, kw_only=True):
    evaluations: EvaluationsTableBody
    evaluation_events: TableBody


class MeasuredBody(msgspec.Struct, kw_only=True):
    """This service's own figures of a backend, beside the platform's shape of a page."""

    name: str
    type: str
    status: BackendState
    metrics: dict[str, Figure]
    details: dict[str, Figure]
    error: str | None


def _measured(report: BackendReport) -> dict[str, Any]:
    """The ``MeasuredBody`` fields of ``report``."""
    return {
        "name": report.name,
        "type": report.type,
        "status": report.status,
        "metrics": report.metrics,
        "details": report.details,
        "error": report.error,
    }


def _int(value: Figure) -> int:
    return int(value) if isinstance(value, int | float) else 0


class DatabaseDetailsBody(MeasuredBody, kw_only=True):
    """The records backend: live records by status, the newest, and measured figures."""

    backend: str
    connection: str  # "postgresql", "sqlite" or "memory"
    tables: DatabaseTablesBody
    recent_evaluations: list[EvaluationBody]

    @classmethod
    def of(cls, found: DatabaseDetails) -> "DatabaseDetailsBody":
        report = found.report
        return cls(
            backend=report.name,
            connection=report.type,
            tables=DatabaseTablesBody(
                evaluations=EvaluationsTableBody(
                    count=_int(report.metrics.get("evaluations")),
                    by_status=found.by_status,
                    columns=report.listings.get("evaluations_columns", []),
                ),
                evaluation_events=TableBody(
                    count=_int(report.metrics.get("events")),
                    columns=report.listings.get("evaluation_events_columns", []),
                ),
            ),
            recent_evaluations=[EvaluationBody.of(e) for e in found.recent],
            **_measured(report),
        )


class FileEntryBody(msgspec.Struct, kw_only=True):
    path: str  # the blob's key: its path under the root
    size: int  # bytes as stored (compressed when the key ends in .zst)
    modified: datetime


class FileDetailsBody(MeasuredBody, kw_only=True):
    """The blob store: its largest files (at most 50) and measured figures."""

    backend: str
    path: str  # FILE_STORAGE_PATH, or the s3:// or memory:// root
    files: list[FileEntryBody]
    total_files: int

    @classmethod
    def of(cls, found: FileDetails) -> "FileDetailsBody":
        report = found.report
        return cls(
            backend=report.name,
            path=found.root,
            files=[
                FileEntryBody(path=entry.key, size=entry.size, modified=entry.modified_at)
                for entry in found.largest
            ],
            total_files=found.total_files,
            **_measured(report),
        )


class CacheInfoBody(msgspec.Struct, kw_only=True):
    keys: list[str]  # a sample: the first 100 of our keys by name, prefix left out
    memory: dict[str, Figure]
    stats: dict[str, Figure]


_CACHE_STATS = (
    "keys",
    "entries",
    "hits",
    "misses",
    "hit_rate",
    "evictions",
    "keys_exact",
    "server_keyspace_hits",
    "server_keyspace_misses",
    "server_evicted_keys",
    "max_entries",
    "ttl_seconds",
)


class CacheDetailsBody(MeasuredBody, kw_only=True):
    """The cache (and the running registry beside it), named ``redis`` by the platform's
    pages whether it is Redis or in this process: ``backend`` says which."""

    backend: str  # "redis" or "memory"
    info: CacheInfoBody

    @classmethod
    def of(cls, report: BackendReport) -> "CacheDetailsBody":
        figures = {**report.metrics, **report.details}
        return cls(
            backend=platform_name(report),
            info=CacheInfoBody(
                keys=report.listings.get("keys", []),
                memory={key: value for key, value in figures.items() if "memory" in key},
                stats={key: figures[key] for key in _CACHE_STATS if key in figures},
            ),
            **_measured(report),
        )


class CompleteMetadataBody(msgspec.Struct, kw_only=True):
    total_events: int
    execution_time_ms: int | None
    output_size: int  # UTF-8 bytes of the whole output (0 without one)
    error_size: int


class CompleteEvaluationBody(msgspec.Struct, kw_only=True):
    """Every artifact of one evaluation: the record with its full (never truncated)
    output and error, its events and log, where each is stored, and its timeline."""

    evaluation: EvaluationBody
    events: list[EventBody]
    storage_locations: dict[str, str]
    timeline: list[TimelineEntry]
    metadata: CompleteMetadataBody
    logs: str

    @classmethod
    def of(cls, found: CompleteEvaluation) -> "CompleteEvaluationBody":
        record = found.evaluation
        evaluation = msgspec.structs.replace(
            EvaluationBody.of(record, storage_info=True),
            output=found.output,
            error=found.error,
            output_truncated=False,
            error_truncated=False,
        )
        return cls(
            evaluation=evaluation,
            events=[EventBody.of(event) for event in found.events],
            storage_locations=found.storage_locations,
            timeline=found.timeline,
            metadata=CompleteMetadataBody(
                total_events=len(found.events),
                execution_time_ms=record.runtime_ms,
                output_size=record.output.size if record.output else 0,
                error_size=record.error.size if record.error else 0,
            ),
            logs=found.logs,
        )
