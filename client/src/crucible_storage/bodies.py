"""The request bodies the client sends, as msgspec Structs (fields left UNSET are not sent).

``tests/client/test_openapi_drift.py`` checks them against the service's OpenAPI document
with the answers of ``crucible_storage.models``.
"""

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from crucible_storage.models import Timestamp


class Body(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of every request body: fields left UNSET are not sent."""


class CreateEvaluationBody(Body):
    code: str
    id: str | UnsetType = UNSET
    language: str = "python"
    status: str | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    celery_task_id: str | UnsetType = UNSET
    executor_id: str | UnsetType = UNSET
    container_id: str | UnsetType = UNSET


class UpdateEvaluationBody(Body):
    """A partial update: UNSET leaves a field alone, ``None`` clears it."""

    status: str | UnsetType = UNSET
    output: str | None | UnsetType = UNSET
    error: str | None | UnsetType = UNSET
    runtime_ms: int | None | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    started_at: Timestamp | None | UnsetType = UNSET
    completed_at: Timestamp | None | UnsetType = UNSET
    executor_id: str | None | UnsetType = UNSET
    container_id: str | None | UnsetType = UNSET
    celery_task_id: str | None | UnsetType = UNSET
    retries: int | UnsetType = UNSET
    exit_code: int | None | UnsetType = UNSET
    timeout: int | None | UnsetType = UNSET
    last_update: Timestamp | None | UnsetType = UNSET
    retry_message: str | None | UnsetType = UNSET
    final_failure: bool | UnsetType = UNSET


class AppendLogBody(Body):
    content: str
    timestamp: Timestamp | UnsetType = UNSET
    last_update: Timestamp | UnsetType = UNSET


class AddEventBody(Body):
    type: str
    message: str | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    timestamp: Timestamp | UnsetType = UNSET
    event_id: str | UnsetType = UNSET


class CeleryUpdateBody(Body):
    task_state: str
    celery_task_id: str | UnsetType = UNSET
    retries: int | UnsetType = UNSET
    output: str | None | UnsetType = UNSET
    error: str | None | UnsetType = UNSET
