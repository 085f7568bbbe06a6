"""Request and response bodies of the REST API.

Unknown fields in a request body are rejected (422, naming the field) rather
than silently ignored: a typo such as ``"stauts"`` must not look like success.
"""

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from application.errors import InvalidRequestError
from application.queries import Projection, RunningInfo
from domain.evaluation import Evaluation, ensure_storable_text
from domain.status import EvaluationStatus
from domain.timeline import EvaluationEvent

Language = Annotated[str, Meta(min_length=1, max_length=50, examples=["python"])]
ShortText = Annotated[str, Meta(max_length=255)]
EventType = Annotated[str, Meta(min_length=1, max_length=100, examples=["container_started"])]
NonNegative = Annotated[int, Meta(ge=0, le=2**31 - 1)]  # an INTEGER column
Metadata = dict[str, Any]


class RequestBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body."""


class CreateEvaluationBody(RequestBody):
    code: str
    id: Annotated[str, Meta(examples=["eval_20240701_120000_abc123"])] | None = None
    language: Language = "python"
    status: EvaluationStatus = EvaluationStatus.QUEUED
    metadata: Metadata = msgspec.field(default_factory=dict)
    celery_task_id: ShortText | None = None
    executor_id: ShortText | None = None
    container_id: ShortText | None = None


class UpdateEvaluationBody(RequestBody):
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


class CeleryUpdateBody(RequestBody):
    task_state: Annotated[str, Meta(examples=["SUCCESS"])]
    celery_task_id: ShortText | None = None
    retries: NonNegative | UnsetType = UNSET
    output: str | None | UnsetType = UNSET
    error: str | None | UnsetType = UNSET


class AppendLogBody(RequestBody):
    content: str


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

    items: list[EvaluationFieldsBody]
    limit: int
    next_cursor: str | None
    offset: int | UnsetType = UNSET
    total: int | UnsetType = UNSET


class EvaluationList(msgspec.Struct, kw_only=True):
    """A page of evaluations, newest first. Pass ``next_cursor`` back as ``cursor``."""

    items: list[EvaluationBody]
    limit: int
    next_cursor: str | None
    offset: int | UnsetType = UNSET
    total: int | UnsetType = UNSET


class RunningBody(msgspec.Struct, kw_only=True):
    evaluation_id: str
    status: EvaluationStatus
    executor_id: str | None
    container_id: str | None
    started_at: datetime | None

    @classmethod
    def of(cls, info: RunningInfo) -> "RunningBody":
        return cls(
            evaluation_id=info.evaluation_id,
            status=info.status,
            executor_id=info.executor_id,
            container_id=info.container_id,
            started_at=info.started_at,
        )


class RunningList(msgspec.Struct, kw_only=True):
    count: int
    evaluations: list[RunningBody]


class LogAppended(msgspec.Struct, kw_only=True):
    evaluation_id: str
    offset: int
    size: int
    next_offset: int


class LogBody(msgspec.Struct, kw_only=True):
    """Log text from ``offset``; send ``next_offset`` back as ``?offset=`` to tail."""

    evaluation_id: str
    content: str
    offset: int
    next_offset: int


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


class CeleryUpdateResult(msgspec.Struct, kw_only=True):
    """``applied`` is false for a duplicate or late update: acknowledged, changed nothing."""

    applied: bool
    reason: str | None
    evaluation: EvaluationBody


class CompleteEvaluationBody(EvaluationBody, kw_only=True):
    """The record with full (never truncated) output and error, its logs and events."""

    logs: str
    events: list[EventBody]
