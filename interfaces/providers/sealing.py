"""Encryption at rest for the blob stores, from ``ENCRYPTION`` and ``ENCRYPTION_KEYS_FILE``."""

from dataclasses import dataclass

from dishka import Provider, Scope, provide

from application.backends import Backend
from application.ports.blob_store import BlobStore
from application.ports.idempotency_store import IdempotencyStore
from application.search import SearchAvailability
from infrastructure.crypto.blob_store import SealedBlobStore
from infrastructure.crypto.columns import ColumnSeal
from infrastructure.crypto.idempotency import SealedIdempotencyStore
from infrastructure.crypto.keyring import Keyring, load_keyring
from infrastructure.crypto.lines import LineSeal
from interfaces.settings import Settings


@dataclass(frozen=True)
class BlobSeal:
    """The keyring, when there is one, and whether new blobs are sealed with it."""

    keyring: Keyring | None = None
    seal: bool = False

    @property
    def active(self) -> bool:
        """Whether stores are wrapped: a store under it is built with ``compress=False``."""
        return self.keyring is not None

    def lines(self) -> LineSeal | None:
        """What seals the journal's lines and the record mirror's files."""
        return None if self.keyring is None else LineSeal(self.keyring, seal=self.seal)

    def idempotency(self, store: IdempotencyStore) -> IdempotencyStore:
        if self.keyring is None:
            return store
        return SealedIdempotencyStore(store, self.keyring, seal=self.seal)

    def wrap(self, store: BlobStore, backend: Backend) -> BlobStore:
        if self.keyring is None:
            return store
        return SealedBlobStore(store, self.keyring, backend, seal=self.seal)


def blob_seal(settings: Settings) -> BlobSeal:
    encryption = settings.encryption
    if encryption.keys_file is None:
        return BlobSeal()
    return BlobSeal(load_keyring(encryption.keys_file), seal=encryption.enabled)


class SealProvider(Provider):
    scope = Scope.APP

    @provide
    def seal(self, settings: Settings) -> BlobSeal:
        return blob_seal(settings)

    @provide
    def search(self, settings: Settings) -> SearchAvailability:
        return SearchAvailability(sealed=settings.encryption.enabled)

    @provide
    def columns(self, seal: BlobSeal, settings: Settings) -> ColumnSeal:
        metadata_keys = frozenset(settings.encryption.metadata_keys)
        return ColumnSeal(seal.keyring, seal=seal.seal, metadata_keys=metadata_keys)
