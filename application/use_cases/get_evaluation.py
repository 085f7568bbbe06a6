from dataclasses import dataclass

from application.errors import InvalidRequestError, require_found
from application.ports.evaluation_repository import EvaluationRepository
from application.queries import Projection, check_projection, project
from application.services.record_cache import RecordCache
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId


@dataclass(frozen=True, slots=True)
class LoadEvaluation:
    """The store's copy of a record, which then fills the cache (refused if a newer one
    is there): a read that already missed the cache."""

    repository: EvaluationRepository
    record_cache: RecordCache
    tenant: TenantId

    async def execute(self, evaluation_id: EvaluationId) -> Evaluation:
        evaluation = require_found(await self.repository.get(evaluation_id), evaluation_id)
        await self.record_cache.fill(self.tenant, evaluation)
        return evaluation


class GetEvaluation(LoadEvaluation):
    """Read-through: the cache first, then the store (which re-fills the cache)."""

    async def execute(self, evaluation_id: EvaluationId) -> Evaluation:
        cached = await self.record_cache.get(self.tenant, evaluation_id)
        if cached is not None:
            return cached
        return await super().execute(evaluation_id)


@dataclass(frozen=True, slots=True)
class GetEvaluationFields:
    """Some fields of one record: from the cached record when there is one, else only
    those columns from the store (the cache is not filled with a partial record)."""

    repository: EvaluationRepository
    record_cache: RecordCache
    tenant: TenantId

    async def execute(self, evaluation_id: EvaluationId, fields: frozenset[str]) -> Projection:
        try:
            wanted = check_projection(fields)
        except ValueError as exc:
            raise InvalidRequestError("fields", str(exc)) from None
        cached = await self.record_cache.get(self.tenant, evaluation_id)
        if cached is not None:
            return project(cached, wanted)
        return require_found(await self.repository.get_fields(evaluation_id, wanted), evaluation_id)
