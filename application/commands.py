"""What the writes carry: the use cases' inputs (and the Celery update's answer).

Plain data shared by the HTTP edge, the use cases and the failover journal, which
keeps them in its intents; here rather than beside each use case, so that the
journal's ports and adapters depend on data, not on the use cases.
"""

from datetime import datetime
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus


class NewEvaluation(msgspec.Struct, kw_only=True, frozen=True):
    code: str
    id: EvaluationId | None = None
    language: str = "python"
    status: EvaluationStatus = EvaluationStatus.QUEUED
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    celery_task_id: str | None = None
    executor_id: str | None = None
    container_id: str | None = None


class EvaluationChanges(msgspec.Struct, kw_only=True, frozen=True):
    """A partial update: ``UNSET`` fields are left alone, metadata is merged."""

    status: EvaluationStatus | UnsetType = UNSET
    output: str | None | UnsetType = UNSET
    error: str | None | UnsetType = UNSET
    runtime_ms: int | None | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    started_at: datetime | None | UnsetType = UNSET
    completed_at: datetime | None | UnsetType = UNSET
    executor_id: str | None | UnsetType = UNSET
    container_id: str | None | UnsetType = UNSET
    celery_task_id: str | None | UnsetType = UNSET
    retries: int | UnsetType = UNSET
    exit_code: int | None | UnsetType = UNSET
    timeout: int | None | UnsetType = UNSET
    last_update: datetime | None | UnsetType = UNSET
    retry_message: str | None | UnsetType = UNSET
    final_failure: bool | UnsetType = UNSET
    # An admin's change of status: applied even to a finished evaluation, and audited.
    override: bool | UnsetType = UNSET


class CeleryUpdate(msgspec.Struct, kw_only=True, frozen=True):
    task_state: str
    celery_task_id: str | None = None
    retries: int | UnsetType = UNSET
    output: str | None | UnsetType = UNSET
    error: str | None | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET


class CeleryOutcome(msgspec.Struct, kw_only=True, frozen=True):
    evaluation: Evaluation
    applied: bool
    reason: str | None = None


class NewEvent(msgspec.Struct, kw_only=True, frozen=True):
    event_type: str
    message: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    timestamp: datetime | None = None
    event_id: str | None = None
