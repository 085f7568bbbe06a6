"""A stored evaluation as the API shows it, whole or by field, and the answers to writes of it."""

from datetime import datetime
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from application.ports.blob_urls import SignedUrl
from application.queries import Projection
from domain.evaluation import Evaluation
from domain.status import EvaluationStatus
from interfaces.http.schemas.fields import Metadata
from interfaces.http.schemas.search import MatchBody


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
    # Where a search matched (``q``/``q_regex``), else absent.
    matches: list[MatchBody] | UnsetType = msgspec.field(default=UNSET, name="_matches")

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
    matches: list[MatchBody] | UnsetType = msgspec.field(default=UNSET, name="_matches")

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
