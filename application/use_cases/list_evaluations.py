from application.ports.evaluation_queries import EvaluationQueries
from application.queries import EvaluationPage, EvaluationQuery


class ListEvaluations:
    def __init__(self, queries: EvaluationQueries) -> None:
        self._queries = queries

    async def execute(self, query: EvaluationQuery) -> EvaluationPage:
        return await self._queries.list(query)
