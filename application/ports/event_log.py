import builtins
from abc import abstractmethod
from typing import Protocol

from domain.identifiers import EvaluationId
from domain.timeline import EvaluationEvent


class EventLog(Protocol):
    """The append-only timeline of each evaluation."""

    @abstractmethod
    async def append(self, event: EvaluationEvent) -> bool:
        """Add ``event``; returns ``False`` when its ``event_id`` was already stored."""

    @abstractmethod
    async def list(self, evaluation_id: EvaluationId) -> builtins.list[EvaluationEvent]:
        """The timeline in chronological order (ties kept in append order)."""
