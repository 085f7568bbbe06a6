from application.errors import InvalidRequestError
from application.ports.evaluation_queries import EvaluationQueries
from application.queries import EvaluationPage, EvaluationQuery
from domain.evaluation import ensure_storable_text
from domain.limits import InputLimits


class ListEvaluations:
    def __init__(self, queries: EvaluationQueries, limits: InputLimits) -> None:
        self._queries = queries
        self._limits = limits

    async def execute(self, query: EvaluationQuery) -> EvaluationPage:
        for name in ("language", "id_prefix"):
            value = getattr(query.filter, name)
            if value is not None:
                ensure_storable_text(name, value)
        if query.limit > self._limits.list_limit:
            raise InvalidRequestError(
                "limit", f"must be at most {self._limits.list_limit} (MAX_LIST_LIMIT)"
            )
        return await self._queries.list(query)
