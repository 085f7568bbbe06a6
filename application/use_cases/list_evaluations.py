from application.errors import InvalidRequestError
from application.ports.evaluation_queries import EvaluationQueries
from application.queries import EvaluationPage, EvaluationQuery, ProjectedPage, check_projection
from domain.evaluation import ensure_storable_text
from domain.limits import InputLimits


def _check(query: EvaluationQuery, limits: InputLimits) -> None:
    for name in ("language", "id_prefix"):
        value = getattr(query.filter, name)
        if value is not None:
            ensure_storable_text(name, value)
    if query.limit > limits.list_limit:
        raise InvalidRequestError("limit", f"must be at most {limits.list_limit} (MAX_LIST_LIMIT)")


class ListEvaluations:
    def __init__(self, queries: EvaluationQueries, limits: InputLimits) -> None:
        self._queries = queries
        self._limits = limits

    async def execute(self, query: EvaluationQuery) -> EvaluationPage:
        _check(query, self._limits)
        return await self._queries.list(query)


class ListEvaluationFields:
    """The page ``ListEvaluations`` gives, reading only ``fields`` (plus ``id``, ``version``)."""

    def __init__(self, queries: EvaluationQueries, limits: InputLimits) -> None:
        self._queries = queries
        self._limits = limits

    async def execute(self, query: EvaluationQuery, fields: frozenset[str]) -> ProjectedPage:
        _check(query, self._limits)
        try:
            wanted = check_projection(fields)
        except ValueError as exc:
            raise InvalidRequestError("fields", str(exc)) from None
        return await self._queries.list_fields(query, wanted)
