"""Log tails in process memory, and the tail that holds nothing (caching disabled)."""

from dataclasses import dataclass

from application.ports.log_tail import LogTail
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId, qualified_id
from domain.timeline import LogChunk, LogSlice, slice_from
from infrastructure.arguments import require_positive
from infrastructure.cache_analytics import LOG_TAIL, Lookups
from infrastructure.metrics import class_removed


@dataclass(slots=True)
class _Tail:
    start: int
    data: bytes

    @property
    def end(self) -> int:
        return self.start + len(self.data)


def trimmed(start: int, data: bytes, max_bytes: int) -> tuple[int, bytes]:
    """Keep at most the last ``max_bytes`` of ``data``, starting on a character boundary."""
    if len(data) <= max_bytes:
        return start, data
    cut = len(data) - max_bytes
    while cut < len(data) and data[cut] & 0xC0 == 0x80:
        cut += 1
    return start + cut, data[cut:]


class MemoryLogTail(LogTail):
    """``LogTail`` in a dict; every method runs without awaiting, so each is atomic.

    At most ``max_tails`` tails are kept (the least recently appended go first), so
    evaluations that never report an end cannot grow it without bound; ``evictions``
    counts those dropped. A tail has no TTL here, so nothing expires. Tails are kept by
    qualified id (ADR 0032), the names Redis gives them.
    """

    def __init__(self, max_bytes: int, max_tails: int = 1000) -> None:
        require_positive(max_bytes=max_bytes, max_tails=max_tails)
        self.max_bytes = max_bytes
        self.max_tails = max_tails
        self._tails: dict[str, _Tail] = {}
        self.lookups = Lookups(LOG_TAIL)
        self.evictions = 0

    async def append(self, tenant: TenantId, chunk: LogChunk) -> None:
        content = chunk.content.encode("utf-8")
        name = qualified_id(tenant, chunk.evaluation_id)
        tail = self._tails.get(name)
        if tail is not None and chunk.offset < tail.end:
            return
        if tail is not None and chunk.offset == tail.end:
            start, data = tail.start, tail.data + content
        else:
            start, data = chunk.offset, content
        start, data = trimmed(start, data, self.max_bytes)
        self._tails.pop(name, None)
        self._tails[name] = _Tail(start, data)
        while len(self._tails) > self.max_tails:
            del self._tails[next(iter(self._tails))]
            self.evictions += 1
            class_removed(LOG_TAIL, expired=False)

    async def read(
        self, tenant: TenantId, evaluation_id: EvaluationId, offset: int
    ) -> LogSlice | None:
        tail = self._tails.get(qualified_id(tenant, evaluation_id))
        if tail is None or not tail.start <= offset <= tail.end:
            self.lookups.count(hit=False)
            return None  # before it, or past it (the tail may lag the log): ask the store
        self.lookups.count(hit=True)
        return slice_from(tail.start, tail.data, offset)

    async def drop(self, tenant: TenantId, evaluation_id: EvaluationId) -> None:
        self._tails.pop(qualified_id(tenant, evaluation_id), None)

    def __len__(self) -> int:
        return len(self._tails)

    def sizes(self) -> list[tuple[str, int]]:
        """(key, bytes of key and tail) of each tail, named as in Redis."""
        keys = ((f"logs:{{{i}}}:latest", tail) for i, tail in self._tails.items())
        return [(key, len(key) + len(tail.data)) for key, tail in keys]


class NoLogTail(LogTail):
    """``LogTail`` that keeps nothing: every read goes to the log store."""

    async def append(self, tenant: TenantId, chunk: LogChunk) -> None:  # noqa: ARG002 - keeps nothing
        return None

    async def read(
        self,
        tenant: TenantId,  # noqa: ARG002 - knows nothing
        evaluation_id: EvaluationId,  # noqa: ARG002
        offset: int,  # noqa: ARG002
    ) -> LogSlice | None:
        return None

    async def drop(self, tenant: TenantId, evaluation_id: EvaluationId) -> None:  # noqa: ARG002 - holds nothing
        return None
