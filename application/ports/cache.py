from abc import abstractmethod
from typing import Protocol


class Cache(Protocol):
    """Versioned cache of ready-to-send bytes.

    Every entry carries the version of the record it was made from, and
    ``put_if_newer`` never replaces a newer entry: a reader that re-fills the
    cache after a writer's update cannot bring back the old value. A ``None``
    value is a tombstone that blocks stale re-fills after a delete. An entry
    written with ``warm`` is marked as warming's, so that the hits it serves are
    counted as warming's effect (docs/cache-analytics.md); a later write unmarks it.
    Implementations swallow their own outages: a cache never fails a request.
    """

    @abstractmethod
    async def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def put_if_newer(
        self, key: str, version: int, value: bytes | None, *, warm: bool = False
    ) -> None: ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    async def clear(self) -> int:
        """Delete every entry, tombstones included; returns how many were deleted.

        An operator's command, not a request path: unlike the other methods it
        raises ``BackendUnavailableError`` when the cache cannot be reached.
        """
