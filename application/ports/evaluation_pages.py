from abc import abstractmethod
from typing import Protocol

from application.queries import EvaluationPage, EvaluationQuery, ProjectedPage


class EvaluationPages(Protocol):
    """One page of live records, newest first, and how many match: ``GET /evaluations``.

    ``total`` is always given and exact, an empty page's too. On PostgreSQL the page and
    its total are one statement (one round trip).
    """

    @abstractmethod
    async def list(self, query: EvaluationQuery) -> EvaluationPage:
        """Live records matching the filter, newest first, by offset or keyset cursor.

        ``id_prefix`` is case-sensitive and literal (``%`` and ``_`` are characters).
        """

    @abstractmethod
    async def list_fields(self, query: EvaluationQuery, fields: frozenset[str]) -> ProjectedPage:
        """``list`` reading only ``fields`` (plus ``id`` and ``version``) of each record."""
