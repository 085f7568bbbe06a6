from datetime import datetime
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from application.ports.clock import Clock
from application.services.payloads import PayloadStore
from application.services.record_writer import RecordWriter
from domain.audit import AuditAction
from domain.evaluation import Evaluation, ensure_storable_json
from domain.identifiers import EvaluationId
from domain.limits import InputLimits
from domain.payload import PayloadKind, StoredPayload
from domain.status import EvaluationStatus, StatusMove, judge_move
from domain.timestamps import as_utc


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


class ChangeApplier:
    """Applies :class:`EvaluationChanges` to a record, routing payloads on the way."""

    def __init__(self, clock: Clock, payloads: PayloadStore, limits: InputLimits) -> None:
        self._clock = clock
        self._payloads = payloads
        self._limits = limits

    async def apply(self, evaluation: Evaluation, changes: EvaluationChanges) -> bool:
        """Mutate ``evaluation``; returns whether anything changed.

        A late status report (one the evaluation has already passed) changes
        nothing at all: the fields sent with it describe a state the record
        has left. Otherwise the status moves before any payload is written.
        """
        for name in ("metadata", *_PLAIN_FIELDS):
            ensure_storable_json(name, getattr(changes, name))
        if changes.metadata is not UNSET:
            self._limits.check_json("metadata", changes.metadata)
        override = changes.override is True
        late = (
            changes.status is not UNSET
            and judge_move(evaluation.status, changes.status) is StatusMove.LATE
        )
        if late and not override:
            return False
        before = msgspec.structs.asdict(evaluation)
        for name in _PLAIN_FIELDS:
            value = getattr(changes, name)
            if value is not UNSET:
                setattr(evaluation, name, as_utc(value) if isinstance(value, datetime) else value)
        if changes.metadata is not UNSET:
            evaluation.merge_metadata(changes.metadata)
        if changes.status is not UNSET:
            evaluation.change_status(changes.status, self._clock.now(), override=override)
        if changes.output is not UNSET:
            evaluation.output = await self._store(evaluation.id, "output", changes.output)
        if changes.error is not UNSET:
            evaluation.error = await self._store(evaluation.id, "error", changes.error)
        return msgspec.structs.asdict(evaluation) != before

    async def _store(
        self, evaluation_id: EvaluationId, kind: PayloadKind, text: str | None
    ) -> StoredPayload | None:
        return None if text is None else await self._payloads.store(evaluation_id, kind, text)


_PLAIN_FIELDS = (
    "runtime_ms",
    "started_at",
    "completed_at",
    "executor_id",
    "container_id",
    "celery_task_id",
    "retries",
    "exit_code",
    "timeout",
    "last_update",
    "retry_message",
    "final_failure",
)


class UpdateEvaluation:
    def __init__(self, writer: RecordWriter, applier: ChangeApplier) -> None:
        self._writer = writer
        self._applier = applier

    async def execute(
        self,
        evaluation_id: EvaluationId,
        changes: EvaluationChanges,
        *,
        expected_version: int | None = None,
    ) -> Evaluation:
        async def mutate(evaluation: Evaluation) -> bool:
            return await self._applier.apply(evaluation, changes)

        action = AuditAction.ADMIN_OVERRIDE if changes.override is True else AuditAction.UPDATE
        evaluation, _ = await self._writer.change(
            evaluation_id, mutate, action=action, expected_version=expected_version
        )
        return evaluation
