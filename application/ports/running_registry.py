import builtins
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Protocol

from application.queries import RunningInfo
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId

LoadActive = Callable[[], Awaitable[builtins.list[RunningInfo]]]


class RunningRegistry(Protocol):
    """Fast index of evaluations that hold a container; the database stays the truth.

    An entry is shared with the platform's storage worker, which writes its own
    container info into it (its ``executor_id`` is the job name the gateway
    kills). So an entry is merged, never replaced: a field this service leaves
    ``None`` keeps what the entry held. Each tenant has an index of its own, and only
    ``PLATFORM_TENANT``'s is the one the worker writes (ADR 0032).
    """

    @abstractmethod
    async def track(self, tenant: TenantId, info: RunningInfo) -> None:
        """Merge ``info`` into the entry: its ``None`` fields keep the entry's values."""

    @abstractmethod
    async def untrack(self, tenant: TenantId, evaluation_id: EvaluationId) -> None: ...

    @abstractmethod
    async def get(self, tenant: TenantId, evaluation_id: EvaluationId) -> RunningInfo | None:
        """The tracked entry, a hint only: it may be stale or missing (read the database)."""

    @abstractmethod
    async def list(self, tenant: TenantId) -> builtins.list[RunningInfo] | None:
        """All tracked evaluations of ``tenant``, or ``None`` when the registry cannot be trusted.

        ``None`` means the index cannot answer or may have missed a change (its
        store lost it, a write of it failed, a rebuild raced a change, an
        indexed evaluation has no entry): the caller asks the database and calls
        ``rebuild``.
        """

    @abstractmethod
    async def rebuild(self, tenant: TenantId, load: LoadActive) -> builtins.list[RunningInfo]:
        """Make ``tenant``'s index hold exactly ``await load()`` (the database's view); return it.

        Each loaded info is merged into its entry like ``track`` does, and the
        answer is the merged entries (the database's view plus what the entries
        alone knew), or the loaded view when the store is unreachable. The
        registry calls ``load`` itself, so that it can tell whether a change was
        tracked while the database was being read; such a rebuild leaves the
        registry untrusted rather than let the older view win. ``load`` is
        called even when the index's store is unreachable.
        """
