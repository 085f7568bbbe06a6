from application.ports.evaluation_queries import EvaluationQueries
from application.queries import EvaluationStatistics


class GetStatistics:
    def __init__(self, queries: EvaluationQueries) -> None:
        self._queries = queries

    async def execute(self) -> EvaluationStatistics:
        return await self._queries.statistics()
