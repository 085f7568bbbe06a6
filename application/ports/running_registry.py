import builtins
from abc import abstractmethod
from typing import Protocol

from application.queries import RunningInfo
from domain.identifiers import EvaluationId


class RunningRegistry(Protocol):
    """Fast index of evaluations that hold a container; the database stays the truth."""

    @abstractmethod
    async def track(self, info: RunningInfo) -> None: ...

    @abstractmethod
    async def untrack(self, evaluation_id: EvaluationId) -> None: ...

    @abstractmethod
    async def get(self, evaluation_id: EvaluationId) -> RunningInfo | None: ...

    @abstractmethod
    async def list(self) -> builtins.list[RunningInfo] | None:
        """All tracked evaluations, or ``None`` when the registry cannot answer."""

    @abstractmethod
    async def replace_all(self, infos: builtins.list[RunningInfo]) -> None:
        """Rebuild the registry from the database's view."""
