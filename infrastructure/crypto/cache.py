"""``SealedCache``: a shared cache (Redis) whose entries are sealed like blobs (ADR 0031).

A cached record holds the code, metadata and inline output of an evaluation, so with
``ENCRYPTION=on`` an entry in Redis is sealed under a data key of its own, bound to the
entry's key. Versions and tombstones stay as the cache keeps them (its scripts compare
versions, never values). An entry that does not open is a miss: the cache never fails a
request, and the record is read from its store instead.
"""

import structlog

from application.ports.cache import Cache
from infrastructure.crypto.keyring import Keyring
from infrastructure.crypto.sealed import (
    SealedDataError,
    is_sealed,
    open_value,
    seal_value,
)

log = structlog.get_logger(__name__)
_CONTEXT = b"cache|"


class SealedCache(Cache):
    """Seals values on the way in (when ``seal``), opens them on the way out."""

    def __init__(self, inner: Cache, keyring: Keyring, *, seal: bool = True) -> None:
        self._inner = inner
        self._keyring = keyring
        self._seal = seal

    @property
    def inner(self) -> Cache:
        return self._inner

    async def get(self, key: str) -> bytes | None:
        value = await self._inner.get(key)
        if value is None or not is_sealed(value):
            return value
        try:
            return open_value(self._keyring, _CONTEXT + key.encode(), value)
        except SealedDataError as error:
            log.warning("cache_entry_unreadable", key=key, error=str(error))
            return None

    async def put_if_newer(
        self, key: str, version: int, value: bytes | None, *, warm: bool = False
    ) -> None:
        if value is not None and self._seal:
            value = seal_value(self._keyring, _CONTEXT + key.encode(), value)
        await self._inner.put_if_newer(key, version, value, warm=warm)

    async def delete(self, key: str) -> None:
        await self._inner.delete(key)

    async def clear(self) -> int:
        return await self._inner.clear()
