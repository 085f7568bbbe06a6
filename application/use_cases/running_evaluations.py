from dataclasses import dataclass

from application.errors import EvaluationNotFoundError
from application.ports.evaluation_queries import EvaluationQueries
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.running_registry import LoadActive, RunningRegistry
from application.queries import RunningInfo
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId


def _loader(queries: EvaluationQueries) -> LoadActive:
    async def load() -> list[RunningInfo]:
        return [RunningInfo.of(evaluation) for evaluation in await queries.list_active()]

    return load


@dataclass(frozen=True, slots=True)
class ListRunningEvaluations:
    """The registry answers when it can be trusted; otherwise the database, and it is rebuilt.

    The registry cannot be trusted when its store is unreachable, lost the
    index, may have missed a change, or lists an id without an entry (see
    ``RunningRegistry.list``). The answer then comes from the database (with
    what the registry's entries add, such as the platform worker's
    ``executor_id``), and the same read rebuilds the registry, so the next
    request is served from it again.
    """

    registry: RunningRegistry
    queries: EvaluationQueries
    tenant: TenantId

    async def execute(self) -> list[RunningInfo]:
        tracked = await self.registry.list(self.tenant)
        if tracked is None:
            tracked = await self.registry.rebuild(self.tenant, _loader(self.queries))
        return sorted(tracked, key=lambda info: info.evaluation_id)


@dataclass(frozen=True, slots=True)
class GetRunningEvaluation:
    registry: RunningRegistry
    repository: EvaluationRepository
    tenant: TenantId

    async def execute(self, evaluation_id: EvaluationId) -> RunningInfo:
        """Container info of a live evaluation in ``provisioning`` or ``running``.

        The record is read from the store so that a stale registry entry never
        answers for an evaluation that has finished or was deleted. The record's
        fields win; the registry's entry fills those the record lacks (the
        platform's worker writes the job name, ``executor_id``, only there).
        """
        evaluation = await self.repository.get(evaluation_id)
        if evaluation is None or not evaluation.status.is_active:
            raise EvaluationNotFoundError(evaluation_id)
        return RunningInfo.of(evaluation).filled_from(
            await self.registry.get(self.tenant, evaluation_id)
        )


@dataclass(frozen=True, slots=True)
class RebuildRunningRegistry:
    """Make the registry agree with the database (at start, or after Redis lost it)."""

    registry: RunningRegistry
    queries: EvaluationQueries
    tenant: TenantId

    async def execute(self) -> int:
        """The number of active evaluations; the registry is left untrusted if a change raced."""
        return len(await self.registry.rebuild(self.tenant, _loader(self.queries)))
