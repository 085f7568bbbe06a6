from application.errors import EvaluationNotFoundError
from application.ports.evaluation_queries import EvaluationQueries
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.running_registry import RunningRegistry
from application.queries import RunningInfo
from domain.identifiers import EvaluationId


class ListRunningEvaluations:
    """The registry answers when it can; the database when it cannot."""

    def __init__(self, registry: RunningRegistry, queries: EvaluationQueries) -> None:
        self._registry = registry
        self._queries = queries

    async def execute(self) -> list[RunningInfo]:
        tracked = await self._registry.list()
        if tracked is not None:
            return sorted(tracked, key=lambda info: info.evaluation_id)
        active = await self._queries.list_active()
        return sorted((RunningInfo.of(e) for e in active), key=lambda info: info.evaluation_id)


class GetRunningEvaluation:
    def __init__(self, registry: RunningRegistry, repository: EvaluationRepository) -> None:
        self._registry = registry
        self._repository = repository

    async def execute(self, evaluation_id: EvaluationId) -> RunningInfo:
        """Container info of a live evaluation in ``provisioning`` or ``running``.

        The record is read from the store so that a stale registry entry never
        answers for an evaluation that has finished or was deleted.
        """
        evaluation = await self._repository.get(evaluation_id)
        if evaluation is None or not evaluation.status.is_active:
            raise EvaluationNotFoundError(evaluation_id)
        return RunningInfo.of(evaluation)


class RebuildRunningRegistry:
    """Make the registry agree with the database (at start, or after Redis lost it)."""

    def __init__(self, registry: RunningRegistry, queries: EvaluationQueries) -> None:
        self._registry = registry
        self._queries = queries

    async def execute(self) -> int:
        active = [RunningInfo.of(e) for e in await self._queries.list_active()]
        await self._registry.replace_all(active)
        return len(active)
