"""``SealedCache``: a shared cache (Redis) whose entries are sealed like blobs (ADR 0031).

A cached record holds the code, metadata and inline output of an evaluation, so with
``ENCRYPTION=on`` an entry in Redis is sealed under a data key of its own, bound to the
entry's key. Versions and tombstones stay as the cache keeps them (its scripts compare
versions, never values). An entry that does not open is a miss: the cache never fails a
request, and the record is read from its store instead.
"""

import re

import structlog

from application.errors import BackendUnavailableError
from application.ports.cache import Cache
from infrastructure.crypto.evaluation_keys import EvaluationKeyring, Sealing
from infrastructure.crypto.keyring import Keyring, UnwrapError
from infrastructure.crypto.sealed import (
    HEADER_MAX,
    SealedDataError,
    is_sealed,
    open_all,
    parse_header,
    seal_all,
)

log = structlog.get_logger(__name__)
_CONTEXT = b"cache|"
_RECORD = re.compile(r"eval:\{(?P<id>.+)\}")  # application.services.record_cache.cache_key


class SealedCache(Cache):
    """Seals values on the way in (when ``seal``), opens them on the way out."""

    def __init__(
        self,
        inner: Cache,
        keyring: Keyring,
        *,
        seal: bool = True,
        keys: EvaluationKeyring | None = None,
        shred: bool = False,
    ) -> None:
        """``shred``: a record's entry is sealed under its evaluation's key (ADR 0033)."""
        self._inner = inner
        self._sealing = Sealing(keyring, keys, shred=shred and seal)
        self._seal = seal

    @property
    def inner(self) -> Cache:
        return self._inner

    async def get(self, key: str) -> bytes | None:
        value = await self._inner.get(key)
        if value is None or not is_sealed(value):
            return value
        context = _CONTEXT + key.encode()
        try:
            cipher = await self._sealing.of(
                parse_header(value[:HEADER_MAX]), context, _evaluation_of(key)
            )
            return open_all(cipher, value)
        except (SealedDataError, UnwrapError, BackendUnavailableError) as error:
            # Its evaluation key destroyed, or not to be had now (the database away).
            log.warning("cache_entry_unreadable", key=key, error=str(error))
            return None

    async def put_if_newer(
        self, key: str, version: int, value: bytes | None, *, warm: bool = False
    ) -> None:
        if value is not None and self._seal:
            context = _CONTEXT + key.encode()
            try:
                cipher = await self._sealing.new(context, _evaluation_of(key))
            except UnwrapError as error:
                # The evaluation key's row does not open under the keys file: the version
                # goes in without a value, so no older entry is served (the cache never
                # fails a request). A key table away is the KEK's turn (``Sealing.new``).
                log.warning("cache_entry_not_sealed", key=key, error=str(error))
                cipher = None
            value = None if cipher is None else seal_all(cipher, value)
        await self._inner.put_if_newer(key, version, value, warm=warm)

    async def delete(self, key: str) -> None:
        await self._inner.delete(key)

    async def clear(self) -> int:
        return await self._inner.clear()


def _evaluation_of(key: str) -> str | None:
    found = _RECORD.fullmatch(key)
    return None if found is None else found["id"]
