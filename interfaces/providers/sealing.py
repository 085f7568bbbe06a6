"""Encryption at rest for the blob stores, from ``ENCRYPTION`` and ``ENCRYPTION_KEYS_FILE``,
and crypto-shredding's evaluation keys (``ENCRYPTION_SHREDDING``, ADR 0033)."""

from dataclasses import dataclass

from dishka import Provider, Scope, decorate, provide

from application.backends import Backend
from application.ports.blob_store import BlobStore
from application.ports.cache import Cache
from application.ports.evaluation_keys import EvaluationKeys
from application.ports.idempotency_store import IdempotencyStore
from application.search import SearchAvailability
from domain.tenancy import TenantId
from infrastructure.crypto.blob_store import SealedBlobStore
from infrastructure.crypto.cache import SealedCache
from infrastructure.crypto.columns import ColumnSeal
from infrastructure.crypto.evaluation_keys import EvaluationKeyring
from infrastructure.crypto.idempotency import SealedIdempotencyStore
from infrastructure.crypto.keyring import Keyring, load_keyring
from infrastructure.crypto.lines import LineSeal
from interfaces.settings import Settings


@dataclass(frozen=True)
class KeysFile:
    """The keyring of ``ENCRYPTION_KEYS_FILE``, read once; ``None`` when it is unset."""

    keyring: Keyring | None = None


def keys_file(settings: Settings) -> KeysFile:
    path = settings.encryption.keys_file
    return KeysFile(None if path is None else load_keyring(path))


@dataclass(frozen=True)
class DeploymentColumnSeal:
    """The column seal of the whole deployment, shared by every tenant's (``seal.of``) so
    that data keys unwrapped for one request serve the next."""

    seal: ColumnSeal


@dataclass(frozen=True)
class BlobSeal:
    """The keyring, when there is one, whether new blobs are sealed with it, and whether
    copies outside the database are sealed under evaluation keys (``shred``)."""

    keyring: Keyring | None = None
    seal: bool = False
    keys: EvaluationKeyring | None = None
    shred: bool = False

    @property
    def active(self) -> bool:
        """Whether stores are wrapped: a store under it is built with ``compress=False``."""
        return self.keyring is not None

    def lines(self) -> LineSeal | None:
        """What seals the journal's lines and the record mirror's files."""
        if self.keyring is None:
            return None
        return LineSeal(self.keyring, seal=self.seal, keys=self.keys, shred=self.shred)

    def idempotency(self, store: IdempotencyStore) -> IdempotencyStore:
        if self.keyring is None:
            return store
        return SealedIdempotencyStore(store, self.keyring, seal=self.seal)

    def wrap(self, store: BlobStore, backend: Backend) -> BlobStore:
        if self.keyring is None:
            return store
        return SealedBlobStore(
            store, self.keyring, backend, seal=self.seal, keys=self.keys, shred=self.shred
        )

    def cache(self, cache: Cache) -> Cache:
        if self.keyring is None:
            return cache
        return SealedCache(cache, self.keyring, seal=self.seal, keys=self.keys, shred=self.shred)


def blob_seal(
    settings: Settings, keys: EvaluationKeys | None = None, source: KeysFile | None = None
) -> BlobSeal:
    """``keys``: the key table, without which data sealed under evaluation keys is not
    opened (and shredding cannot be on)."""
    encryption = settings.encryption
    keyring = (source or keys_file(settings)).keyring
    if keyring is None:
        return BlobSeal()
    ring = keys if isinstance(keys, EvaluationKeyring) or keys is None else None
    if ring is None and keys is not None:
        ring = EvaluationKeyring(keys, keyring)
    return BlobSeal(
        keyring,
        seal=encryption.enabled,
        keys=ring,
        shred=encryption.enabled and encryption.shredding and ring is not None,
    )


class SealProvider(Provider):
    scope = Scope.APP

    @provide
    def keys_file(self, settings: Settings) -> KeysFile:
        return keys_file(settings)

    @provide
    def seal(self, settings: Settings, keys: EvaluationKeys, source: KeysFile) -> BlobSeal:
        return blob_seal(settings, keys, source)

    @provide
    def search(self, settings: Settings) -> SearchAvailability:
        return SearchAvailability(sealed=settings.encryption.enabled)

    @provide
    def deployment_columns(self, seal: BlobSeal, settings: Settings) -> DeploymentColumnSeal:
        metadata_keys = frozenset(settings.encryption.metadata_keys)
        return DeploymentColumnSeal(
            ColumnSeal(seal.keyring, seal=seal.seal, metadata_keys=metadata_keys)
        )

    @provide(scope=Scope.REQUEST)
    def columns(self, columns: DeploymentColumnSeal, tenant: TenantId) -> ColumnSeal:
        """The request's tenant's: its rows' values are bound to it."""
        return columns.seal.of(tenant)


class EvaluationKeysProvider(Provider):
    """The key table seen through the keys file (registered after the table's provider):
    erasure's ``destroy`` then also drops the keys this process holds."""

    scope = Scope.APP

    @decorate
    def keys(self, keys: EvaluationKeys, source: KeysFile) -> EvaluationKeys:
        if source.keyring is None:
            return keys
        return EvaluationKeyring(keys, source.keyring)
