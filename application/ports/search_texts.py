from abc import abstractmethod
from collections.abc import Sequence
from typing import Protocol

from application.search import SearchText, TextSearch
from domain.identifiers import EvaluationId


class SearchTexts(Protocol):
    """The searched texts of some evaluations, for the places a search matched in them."""

    @abstractmethod
    async def texts(self, ids: Sequence[EvaluationId], search: TextSearch) -> list[SearchText]:
        """The texts of ``ids`` in the fields ``search`` looks in: code, output and error as
        stored (the preview of a large payload), the events' messages and the log pieces
        that match (a store may give more; the caller finds the matches)."""
