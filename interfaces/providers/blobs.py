"""Blobs: files, or process memory; S3 and files tiered to S3 are in ``s3``."""

from dataclasses import dataclass, field

from dishka import (
    Provider,
    Scope,
    provide,
)

from application.backends import Backend
from application.ports.blob_store import BlobStore
from application.ports.blob_urls import BlobUrls
from domain.payload import PayloadLocation
from infrastructure.files.blob_store import FileBlobStore
from infrastructure.files.inspector import FileBlobInspector
from infrastructure.memory.blob_store import MemoryBlobInspector, MemoryBlobStore
from infrastructure.s3.no_urls import NoBlobUrls
from interfaces.providers.keys import BlobInspector
from interfaces.providers.sealing import BlobSeal
from interfaces.settings import Settings


@dataclass(frozen=True)
class BlobPlacement:
    """Where new blobs go (``location``) and the other stores old records may point at."""

    location: PayloadLocation = PayloadLocation.FILE
    others: dict[PayloadLocation, BlobStore] = field(default_factory=dict)


class FileBlobProvider(Provider):
    scope = Scope.APP

    @provide
    def blobs(self, settings: Settings, seal: BlobSeal) -> BlobStore:
        return sealed_files(settings, seal)

    @provide
    def inspector(self, settings: Settings) -> BlobInspector:
        return FileBlobInspector(settings.storage.file_storage_path)

    @provide
    def placement(self) -> BlobPlacement:
        return BlobPlacement()


def sealed_files(settings: Settings, seal: BlobSeal) -> BlobStore:
    """The file store, sealed when encryption is configured."""
    files = FileBlobStore(settings.storage.file_storage_path, compress=not seal.active)
    return seal.wrap(files, Backend.FILE)


class NoBlobUrlsProvider(Provider):
    scope = Scope.APP
    urls = provide(NoBlobUrls, provides=BlobUrls)


class MemoryBlobProvider(Provider):
    scope = Scope.APP

    @provide
    def store(self) -> MemoryBlobStore:
        return MemoryBlobStore()

    @provide
    def blobs(self, store: MemoryBlobStore) -> BlobStore:
        return store

    @provide
    def inspector(self, store: MemoryBlobStore) -> BlobInspector:
        return MemoryBlobInspector(store)

    @provide
    def placement(self) -> BlobPlacement:
        return BlobPlacement()
