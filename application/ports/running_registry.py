import builtins
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Protocol

from application.queries import RunningInfo
from domain.identifiers import EvaluationId

LoadActive = Callable[[], Awaitable[builtins.list[RunningInfo]]]


class RunningRegistry(Protocol):
    """Fast index of evaluations that hold a container; the database stays the truth."""

    @abstractmethod
    async def track(self, info: RunningInfo) -> None: ...

    @abstractmethod
    async def untrack(self, evaluation_id: EvaluationId) -> None: ...

    @abstractmethod
    async def get(self, evaluation_id: EvaluationId) -> RunningInfo | None:
        """The tracked entry, a hint only: it may be stale or missing (read the database)."""

    @abstractmethod
    async def list(self) -> builtins.list[RunningInfo] | None:
        """All tracked evaluations, or ``None`` when the registry cannot be trusted.

        ``None`` means the index cannot answer or may have missed a change (its
        store lost it, a write of it failed, a rebuild raced a change): the
        caller asks the database and calls ``rebuild``.
        """

    @abstractmethod
    async def rebuild(self, load: LoadActive) -> builtins.list[RunningInfo]:
        """Replace the index with ``await load()`` (the database's view) and return that.

        The registry calls ``load`` itself, so that it can tell whether a change
        was tracked while the database was being read; such a rebuild leaves the
        registry untrusted rather than let the older view win. ``load`` is
        called even when the index's store is unreachable.
        """
