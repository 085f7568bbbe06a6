from application.ports.clock import Clock
from application.use_cases.update_evaluation import RecordWriter
from domain.audit import AuditAction
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId


class DeleteEvaluation:
    """Soft delete: the record gets ``deleted_at`` and disappears from every read."""

    def __init__(self, writer: RecordWriter, clock: Clock) -> None:
        self._writer = writer
        self._clock = clock

    async def execute(
        self, evaluation_id: EvaluationId, *, expected_version: int | None = None
    ) -> None:
        async def mutate(evaluation: Evaluation) -> bool:
            evaluation.deleted_at = self._clock.now()
            return True

        await self._writer.change(
            evaluation_id, mutate, action=AuditAction.DELETE, expected_version=expected_version
        )
