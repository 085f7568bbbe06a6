from abc import abstractmethod
from datetime import datetime
from typing import Protocol, TypeVar

from application.intents import WriteIntent
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.timeline import EvaluationEvent, LogSlice

R = TypeVar("R")


class ScratchStore(Protocol):
    """A throwaway in-memory store that the journal's writes are applied to.

    While the primary is down (or the journal is not yet replayed) the service
    answers writes and reads from it: a known record plus the journaled writes,
    run through the same use cases as on the primary, with the clock pinned to
    each entry's instant.
    """

    @abstractmethod
    async def seed(self, evaluation: Evaluation) -> None:
        """Start from ``evaluation`` as the primary (or the cache) last knew it."""

    @abstractmethod
    async def apply(self, intent: WriteIntent[R], evaluation_id: EvaluationId, at: datetime) -> R:
        """Run ``intent`` as of ``at`` (a replayed answer); raises what the use case raises."""

    @abstractmethod
    async def get(self, evaluation_id: EvaluationId) -> Evaluation | None: ...

    @abstractmethod
    async def events(self, evaluation_id: EvaluationId) -> list[EvaluationEvent]: ...

    @abstractmethod
    async def log(self, evaluation_id: EvaluationId, offset: int) -> LogSlice: ...


class ScratchStores(Protocol):
    @abstractmethod
    def open(self) -> ScratchStore:
        """A new, empty scratch store."""
