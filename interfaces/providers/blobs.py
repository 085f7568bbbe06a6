"""Blobs: files, S3 (with presigned URLs), files tiered to S3, or process memory."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from dishka import (
    Provider,
    Scope,
    provide,
)

from application.ports.blob_store import BlobStore
from application.ports.blob_urls import BlobUrls
from domain.payload import PayloadLocation
from infrastructure.files.blob_store import FileBlobStore
from infrastructure.files.inspector import FileBlobInspector
from infrastructure.memory.blob_store import MemoryBlobInspector, MemoryBlobStore
from infrastructure.s3.blob_store import NoBlobUrls, S3BlobInspector, S3BlobStore, S3BlobUrls
from infrastructure.s3.client import S3Connection
from interfaces.providers.keys import BlobInspector
from interfaces.settings import Settings


@dataclass(frozen=True)
class BlobPlacement:
    """Where new blobs go (``location``) and the other stores old records may point at."""

    location: PayloadLocation = PayloadLocation.FILE
    others: dict[PayloadLocation, BlobStore] = field(default_factory=dict)


class FileBlobProvider(Provider):
    scope = Scope.APP

    @provide
    def blobs(self, settings: Settings) -> BlobStore:
        return FileBlobStore(settings.storage.file_storage_path)

    @provide
    def inspector(self, settings: Settings) -> BlobInspector:
        return FileBlobInspector(settings.storage.file_storage_path)

    @provide
    def placement(self) -> BlobPlacement:
        return BlobPlacement()


class S3Provider(Provider):
    """The S3 client (opened at start, closed at shutdown), its store and presigned URLs."""

    scope = Scope.APP

    @provide
    async def connection(self, settings: Settings) -> AsyncIterator[S3Connection]:
        assert settings.s3.bucket is not None
        connection = S3Connection(
            bucket=settings.s3.bucket,
            endpoint_url=settings.s3.endpoint_url,
            region=settings.s3.region,
        )
        await connection.open()
        try:
            if settings.s3.create_bucket:
                await connection.ensure_bucket()
            yield connection
        finally:
            await connection.close()

    @provide
    def store(self, connection: S3Connection, settings: Settings) -> S3BlobStore:
        return S3BlobStore(connection, settings.s3.prefix)

    @provide
    def urls(self, store: S3BlobStore, connection: S3Connection, settings: Settings) -> BlobUrls:
        return S3BlobUrls(store, connection, settings.s3.presign_expiry_s)


class S3BlobProvider(Provider):
    """``BLOB_BACKEND=s3``: new blobs in S3; records still pointing at files read from them."""

    scope = Scope.APP

    @provide
    def blobs(self, store: S3BlobStore) -> BlobStore:
        return store

    @provide
    def inspector(
        self, store: S3BlobStore, connection: S3Connection, settings: Settings
    ) -> BlobInspector:
        return S3BlobInspector(store, connection, settings.s3.prefix)

    @provide
    def placement(self, settings: Settings) -> BlobPlacement:
        files: BlobStore = FileBlobStore(settings.storage.file_storage_path)
        return BlobPlacement(PayloadLocation.S3, {PayloadLocation.FILE: files})


class TieringPlacementProvider(Provider):
    """Files first, S3 as the tier below (``S3_BUCKET`` set with ``BLOB_BACKEND=file``)."""

    scope = Scope.APP

    @provide(override=True)
    def placement(self, store: S3BlobStore) -> BlobPlacement:
        return BlobPlacement(PayloadLocation.FILE, {PayloadLocation.S3: store})


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
