from dataclasses import dataclass

from application.ports.clock import Clock
from application.use_cases.update_evaluation import RecordWriter
from domain.audit import AuditAction
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId


@dataclass(frozen=True, slots=True)
class DeleteEvaluation:
    """Soft delete: the record gets ``deleted_at`` and disappears from every read."""

    writer: RecordWriter
    clock: Clock

    async def execute(
        self, evaluation_id: EvaluationId, *, expected_version: int | None = None
    ) -> None:
        async def mutate(evaluation: Evaluation) -> bool:
            evaluation.deleted_at = self.clock.now()
            return True

        await self.writer.change(
            evaluation_id, mutate, action=AuditAction.DELETE, expected_version=expected_version
        )
