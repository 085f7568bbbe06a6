from abc import abstractmethod
from typing import Protocol

from domain.identifiers import EvaluationId
from domain.tenancy import TenantId
from domain.timeline import LogChunk, LogSlice


class LogTail(Protocol):
    """The latest bytes of each running evaluation's log, for cheap tailing.

    A bounded copy beside the log store, which stays the truth: ``read`` answers
    only when the tail holds everything from ``offset`` to the end of the log,
    and ``None`` sends the reader to the log store. Chunks are kept contiguous: a
    gap (a chunk that never arrived) restarts the tail at the newer chunk.
    Tails are kept per tenant (the same id in two tenants names two logs).
    Implementations swallow their own outages: a tail never fails a request.
    """

    @abstractmethod
    async def append(self, tenant: TenantId, chunk: LogChunk) -> None:
        """Add a committed chunk (ignored when older than what the tail holds)."""

    @abstractmethod
    async def read(
        self, tenant: TenantId, evaluation_id: EvaluationId, offset: int
    ) -> LogSlice | None:
        """The log from ``offset`` to its end, or ``None`` when the tail cannot tell."""

    @abstractmethod
    async def drop(self, tenant: TenantId, evaluation_id: EvaluationId) -> None:
        """Forget an evaluation's tail (it stopped running or was deleted)."""
