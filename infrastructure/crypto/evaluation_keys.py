"""Crypto-shredding (ADR 0033): evaluation keys, and the seals of copies outside the database.

``EvaluationKeyring`` is the key table (any ``EvaluationKeys``) seen through the KEK: each
row is a random 256-bit key wrapped by the active KEK and bound to
``evaluation_keys|<qualified id>`` (``<id>`` for the default tenant, ``<tenant>/<id>`` for
another: ADR 0032), unwrapped once and kept in an LRU. A copy names its evaluation by the
qualified id, whose key lives in that tenant's rows. ``Sealing`` draws the data key of a
blob, a cache entry or a line; with shredding on and an evaluation to bind it to, that data
key is wrapped by the evaluation's key (the header's kid ``~e``) instead of the KEK, so
destroying the row makes every such copy unreadable, wherever it went. Whatever was sealed
under a KEK opens as before.
"""

import os
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Sequence

import structlog
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from application.errors import BackendUnavailableError
from application.ports.evaluation_keys import EvaluationKeys, WrappedKey
from application.ports.sealed_blobs import Rewrap, RewrapBatch, SealedRows
from domain.tenancy import DEFAULT_TENANT, TenantId, parse_qualified_id, qualified_id
from infrastructure.crypto.keyring import (
    EVALUATION_KID,
    KEY_BYTES,
    Keyring,
    UnwrapError,
    unwrap_under,
    wrap_under,
)
from infrastructure.crypto.sealed import PREFIX_BYTES, Cipher, Header

log = structlog.get_logger(__name__)
_ROW = b"evaluation_keys|"
CACHED_KEYS = 8192


class EvaluationKeyring(EvaluationKeys, SealedRows):
    """The key table's keys, unwrapped by the KEK, through an LRU of ``cached`` keys.

    As an ``EvaluationKeys`` it passes every call to its tenant's rows (``of`` gives
    another tenant's, sharing the LRU), and ``destroy`` drops the keys from the LRU too:
    this process opens nothing under them afterwards. Another process keeps a key it holds
    in its LRU until it drops it or restarts.
    """

    def __init__(
        self,
        table: EvaluationKeys,
        keyring: Keyring,
        cached: int = CACHED_KEYS,
        *,
        tenant: TenantId = DEFAULT_TENANT,
        held: "OrderedDict[str, bytes] | None" = None,
    ) -> None:
        """``table``: ``tenant``'s rows; ``held``: the LRU, by qualified id, of another
        tenant's view of the same keyring."""
        self._table = table
        self._keyring = keyring
        self._cached = cached
        self._tenant = tenant
        self._keys: OrderedDict[str, bytes] = OrderedDict() if held is None else held

    def of(self, tenant: TenantId) -> "EvaluationKeyring":
        if tenant == self._tenant:
            return self
        return EvaluationKeyring(
            self._table.of(tenant), self._keyring, self._cached, tenant=tenant, held=self._keys
        )

    async def key(self, name: str, *, create: bool = False) -> bytes | None:
        """The key of the evaluation ``name`` (its qualified id); with ``create``, made and
        committed when it has none (``None`` otherwise: never made, or destroyed).
        ``UnwrapError`` when its row does not open under the keys file, or is bound to
        another evaluation (a row copied from another tenant's)."""
        known = self.known(name)
        if known is not None:
            return known
        try:
            tenant, evaluation_id = parse_qualified_id(name)
        except ValueError:
            raise UnwrapError(f"{name!r} names no evaluation") from None
        table = self.of(tenant)._table
        stored = await table.fetch(evaluation_id)
        if stored is None and create:
            fresh = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
            kid, wrapped = self._keyring.wrap(fresh, _ROW + name.encode())
            stored = await table.add(evaluation_id, WrappedKey(kid, wrapped))
        if stored is None:
            return None
        key = self._keyring.unwrap(stored.kid, stored.wrapped, _ROW + name.encode())
        self._remember(name, key)
        return key

    def known(self, evaluation_id: str) -> bytes | None:
        """The key of the evaluation of that qualified id if this process holds it now,
        without asking the table."""
        key = self._keys.get(evaluation_id)
        if key is not None:
            self._keys.move_to_end(evaluation_id)
        return key

    def _remember(self, evaluation_id: str, key: bytes) -> None:
        self._keys[evaluation_id] = key
        self._keys.move_to_end(evaluation_id)
        while len(self._keys) > self._cached:
            self._keys.popitem(last=False)

    def _forget(self, evaluation_ids: Sequence[str]) -> None:
        for evaluation_id in evaluation_ids:
            self._keys.pop(qualified_id(self._tenant, evaluation_id), None)

    # -- EvaluationKeys ----------------------------------------------------------------------

    async def fetch(self, evaluation_id: str) -> WrappedKey | None:
        return await self._table.fetch(evaluation_id)

    async def add(self, evaluation_id: str, key: WrappedKey) -> WrappedKey:
        return await self._table.add(evaluation_id, key)

    async def destroy(self, evaluation_ids: Sequence[str]) -> int:
        self._forget(evaluation_ids)
        destroyed = await self._table.destroy(evaluation_ids)
        self._forget(evaluation_ids)  # a lookup that ran meanwhile
        unwrap_under.cache_clear()  # it holds the destroyed keys' bytes as arguments
        return destroyed

    async def page(self, after: str | None, limit: int) -> list[tuple[str, WrappedKey]]:
        return await self._table.page(after, limit)

    async def replace(self, evaluation_id: str, old: WrappedKey, new: WrappedKey) -> bool:
        return await self._table.replace(evaluation_id, old, new)

    async def count(self) -> int:
        return await self._table.count()

    # -- rotation ----------------------------------------------------------------------------

    async def rewrap(self, batch_size: int) -> AsyncIterator[RewrapBatch]:
        """Every key not under the active KEK wrapped again by it (the key itself, and so
        everything sealed under it, unchanged), a page at a time; a key destroyed or
        rewrapped meanwhile is left as it is."""
        after: str | None = None
        while True:
            rows = await self._table.page(after, batch_size)
            if not rows:
                return
            outcomes: Counter[Rewrap] = Counter()
            for evaluation_id, stored in rows:
                if stored.kid == self._keyring.active:
                    outcomes[Rewrap.CURRENT] += 1
                    continue
                context = _ROW + qualified_id(self._tenant, evaluation_id).encode()
                key = self._keyring.unwrap(stored.kid, stored.wrapped, context)
                fresh = WrappedKey(*self._keyring.wrap(key, context))
                if await self._table.replace(evaluation_id, stored, fresh):
                    outcomes[Rewrap.REWRAPPED] += 1
            after = rows[-1][0]
            yield RewrapBatch(rows=len(rows), outcomes=outcomes)


class Sealing:
    """Draws and opens the data keys of sealed copies outside the database.

    ``shred``: a new data key bound to an evaluation is wrapped by that evaluation's key
    (made and committed first when it has none); otherwise by the active KEK. Opening
    follows the header: a KEK id, or ``~e`` for the bound evaluation's key.
    """

    def __init__(
        self, keyring: Keyring, keys: EvaluationKeyring | None = None, *, shred: bool = False
    ) -> None:
        if shred and keys is None:
            raise ValueError("shredding needs the key table")
        self.keyring = keyring
        self.keys = keys
        self.shred = shred

    async def new(self, context: bytes, evaluation_id: str | None) -> Cipher:
        """A fresh cipher for data bound to ``context`` (and to ``evaluation_id``)."""
        if not self.shred or evaluation_id is None or self.keys is None:
            return Cipher.new(self.keyring, context)
        try:
            key = await self.keys.key(evaluation_id, create=True)
        except BackendUnavailableError as error:
            # The database is away (a write on its way to the failover journal): the copy
            # is sealed under the KEK rather than refused, and erasure cannot shred it.
            log.warning("evaluation_key_unavailable", evaluation_id=evaluation_id, error=str(error))
            return Cipher.new(self.keyring, context)
        assert key is not None  # made when missing
        return under(key, evaluation_id, context)

    def new_known(self, context: bytes, evaluation_id: str | None) -> Cipher:
        """As ``new``, without asking the table: under the evaluation's key only when this
        process holds it, else the KEK (the journal, written while the database is away)."""
        key = None
        if self.shred and evaluation_id is not None and self.keys is not None:
            key = self.keys.known(evaluation_id)
        if key is None or evaluation_id is None:
            return Cipher.new(self.keyring, context)
        return under(key, evaluation_id, context)

    async def of(self, header: Header, context: bytes, evaluation_id: str | None) -> Cipher:
        """The cipher of sealed data with ``header``; ``UnwrapError`` when its key is
        unknown, destroyed, or does not open it."""
        if header.kid != EVALUATION_KID:
            return Cipher.of(header, self.keyring, context)
        if evaluation_id is None:
            raise UnwrapError("sealed under an evaluation key, and bound to no evaluation")
        if self.keys is None:
            raise UnwrapError("sealed under an evaluation key, and no key table to open it")
        key = await self.keys.key(evaluation_id)
        if key is None:
            raise UnwrapError(f"the evaluation key of {evaluation_id!r} is destroyed")
        return Cipher(header, unwrap_under(key, evaluation_id, header.wrapped, context), context)


def under(evaluation_key: bytes, evaluation_id: str, context: bytes) -> Cipher:
    """A fresh data key wrapped by ``evaluation_id``'s key (the header's kid ``~e``)."""
    data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    wrapped = wrap_under(evaluation_key, evaluation_id, data_key, context)
    header = Header(EVALUATION_KID, wrapped, os.urandom(PREFIX_BYTES))
    return Cipher(header, data_key, context)
