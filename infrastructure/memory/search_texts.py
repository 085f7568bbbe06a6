"""``SearchTexts`` over the memory records."""

from collections.abc import Sequence

from application.ports.search_texts import SearchTexts
from application.search import SearchText, TextSearch
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId
from infrastructure.memory.evaluations import MemoryDatabase
from infrastructure.memory.search import texts_of


class MemorySearchTexts(SearchTexts):
    def __init__(self, database: MemoryDatabase, tenant: TenantId) -> None:
        self._db = database.of(tenant)

    async def texts(self, ids: Sequence[EvaluationId], search: TextSearch) -> list[SearchText]:
        return [
            item
            for evaluation_id in ids
            if (evaluation := self._db.live(evaluation_id)) is not None
            for item in texts_of(self._db, evaluation, search)
        ]
