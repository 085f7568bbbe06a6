from abc import abstractmethod
from typing import Protocol

from application.queries import Projection
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId


class EvaluationRepository(Protocol):
    """Reads and writes single evaluation records (the write model)."""

    @abstractmethod
    async def add(self, evaluation: Evaluation) -> None:
        """Insert; raises ``DuplicateEvaluationError`` when the id exists (even deleted).

        An adapter may hold the insert until the next statement or the unit of work's
        commit, and raise there instead.
        """

    @abstractmethod
    async def get(self, evaluation_id: EvaluationId) -> Evaluation | None:
        """The live record, or ``None`` when unknown or soft-deleted."""

    @abstractmethod
    async def get_any(self, evaluation_id: EvaluationId) -> Evaluation | None:
        """The record soft-deleted or not (recovery's view), or ``None`` when unknown."""

    @abstractmethod
    async def get_fields(
        self, evaluation_id: EvaluationId, fields: frozenset[str]
    ) -> Projection | None:
        """Only ``fields`` of the live record (plus ``id`` and ``version``), read without
        the other columns; ``None`` when unknown or soft-deleted. ``fields`` are checked
        names (``check_projection``).
        """

    @abstractmethod
    async def update(self, evaluation: Evaluation, expected_version: int) -> None:
        """Store ``evaluation`` if the stored version is still ``expected_version``.

        Raises ``VersionConflictError`` otherwise, so no update silently
        overwrites another, and ``EvaluationNotFoundError`` when it is gone. Like
        ``add``, an adapter may raise these at the unit of work's commit instead.
        """
