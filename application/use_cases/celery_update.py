from dataclasses import dataclass

from msgspec import UNSET

from application.commands import CeleryOutcome, CeleryUpdate, EvaluationChanges
from application.errors import InvalidRequestError
from application.use_cases.update_evaluation import ChangeApplier, RecordWriter
from domain.audit import AuditAction
from domain.celery import (
    CELERY_STATE_TO_STATUS,
    refusal_for_celery_state,
    status_for_celery_state,
)
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus


@dataclass(frozen=True, slots=True)
class ApplyCeleryUpdate:
    """Celery redelivers: a refused or repeated update is a no-op, never an error.

    A worker that got an error would retry forever; a late ``STARTED`` after
    ``SUCCESS`` must not move a finished record backwards.
    """

    writer: RecordWriter
    applier: ChangeApplier

    async def execute(self, evaluation_id: EvaluationId, update: CeleryUpdate) -> CeleryOutcome:
        status = status_for_celery_state(update.task_state)
        if status is None:
            known = ", ".join(CELERY_STATE_TO_STATUS)
            raise InvalidRequestError("task_state", f"must be one of {known}")
        refusal: str | None = None

        async def mutate(evaluation: Evaluation) -> bool:
            nonlocal refusal
            refusal = refusal_for_celery_state(update.task_state, evaluation.status)
            if refusal is not None:
                return False
            retries = update.retries
            is_new_retry = evaluation.status is not EvaluationStatus.QUEUED
            if retries is UNSET and update.task_state.upper() == "RETRY" and is_new_retry:
                # Counted on the move back to the queue only: a redelivered RETRY is a no-op.
                retries = evaluation.retries + 1
            changes = EvaluationChanges(
                status=status,
                celery_task_id=update.celery_task_id or evaluation.celery_task_id,
                retries=retries,
                output=update.output,
                error=update.error,
                metadata=update.metadata,
            )
            return await self.applier.apply(self.writer.tenant, evaluation, changes)

        evaluation, changed = await self.writer.change(
            evaluation_id, mutate, action=AuditAction.CELERY_UPDATE
        )
        return CeleryOutcome(evaluation=evaluation, applied=changed, reason=refusal)
