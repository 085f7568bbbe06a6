"""Logs, events and the complete view of one evaluation."""

from datetime import datetime
from typing import Literal

import msgspec

from application.use_cases.evaluation_content import CompleteEvaluation, TimelineEntry
from application.use_cases.logs import EvaluationLogs
from domain.status import EvaluationStatus
from domain.timeline import EvaluationEvent
from interfaces.http.schemas.fields import Metadata
from interfaces.http.schemas.records import EvaluationBody


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
