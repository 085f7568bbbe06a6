"""Request bodies of the REST API.

Unknown fields in a request body are rejected (422, naming the field) rather
than silently ignored: a typo such as ``"stauts"`` must not look like success.
"""

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from application.errors import InvalidRequestError
from domain.evaluation import ensure_storable_text
from domain.status import EvaluationStatus
from interfaces.http.schemas.fields import (
    EventType,
    ExitCode,
    Language,
    Metadata,
    NonNegative,
    ShortText,
)


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
